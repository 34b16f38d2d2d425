/*
 * qid.c - queue ids: 14 characters that sort by arrival.
 *
 * Layout: 7 characters of seconds, 4 of the fraction of the second,
 * 3 of a sequence number, all in base 31 over an ASCII-ordered alphabet
 * without vowels (no words spelled by accident), so strcmp order is
 * arrival order. Pure arithmetic: no clock reads, no I/O, no globals;
 * the caller owns the generator and passes the time in.
 */
#include <string.h>

#include "queue/queue.h"

static const char qid_alphabet[] = "0123456789BCDFGHJKLMNPQRSTVWXYZ";

#define QID_RADIX 31
#define QID_SEC_DIGITS 7
#define QID_TICK_DIGITS 4
#define QID_SEQ_DIGITS 3
#define QID_TICKS 923521	/* 31^4: four digits cannot hold 10^6 microseconds */
#define QID_SEQS 29791		/* 31^3 */
#define QID_SEC_MAX 27512614110LL	/* 31^7 - 1 */

/* qid_put - writes value as ndigits base-31 digits, most significant first. */
static void qid_put(char *out, int ndigits, int64_t value)
{
	for (int i = ndigits - 1; i >= 0; i--) {
		out[i] = qid_alphabet[value % QID_RADIX];
		value /= QID_RADIX;
	}
}

/* qid_tick - maps microseconds onto the 31^4 ticks, keeping order. */
static int32_t qid_tick(int32_t usec)
{
	if (usec < 0)
		usec = 0;
	if (usec > 999999)
		usec = 999999;
	return (int32_t)((int64_t)usec * QID_TICKS / 1000000);
}

/* qid_step - how far apart this generator's sequence numbers are. */
static uint32_t qid_step(const struct queue_id_gen *gen)
{
	return gen->lanes > 0 ? gen->lanes : 1;
}

/* qid_advance - moves the generator one step past its last id. */
static void qid_advance(struct queue_id_gen *gen)
{
	/* The sequence carries into the tick and the tick into the
	 * second, so even 29791 ids in one tick stay unique and ordered. */
	gen->seq += qid_step(gen);
	if (gen->seq < QID_SEQS)
		return;
	gen->seq = gen->lane;
	if (++gen->last_usec < QID_TICKS)
		return;
	gen->last_usec = 0;
	gen->last_sec++;
}

/*
 * queue_id_next - next id for time (sec, usec). gen->last_usec holds
 * the last tick (1/923521 s), not microseconds. A zeroed generator is
 * ready to use.
 */
void queue_id_next(struct queue_id_gen *gen, int64_t sec, int32_t usec,
		   char out[QUEUE_ID_LEN + 1])
{
	int32_t tick = qid_tick(usec);

	if (sec < 0)
		sec = 0;
	if (sec > QID_SEC_MAX)
		sec = QID_SEC_MAX;
	/* A clock that stands still or steps back must not make an id
	 * repeat or sort before an earlier one: keep the last time. */
	if (sec < gen->last_sec || (sec == gen->last_sec && tick <= gen->last_usec)) {
		qid_advance(gen);
	} else {
		gen->last_sec = sec;
		gen->last_usec = tick;
		gen->seq = gen->lane;
	}
	qid_put(out, QID_SEC_DIGITS, gen->last_sec > QID_SEC_MAX ? QID_SEC_MAX : gen->last_sec);
	qid_put(out + QID_SEC_DIGITS, QID_TICK_DIGITS, gen->last_usec);
	qid_put(out + QID_SEC_DIGITS + QID_TICK_DIGITS, QID_SEQ_DIGITS, gen->seq);
	out[QUEUE_ID_LEN] = '\0';
}

/* queue_id_lane - see queue.h; out-of-range values fall back to lane 0 of 1. */
void queue_id_lane(struct queue_id_gen *gen, unsigned lane, unsigned lanes)
{
	if (lanes == 0 || lanes > QUEUE_ID_LANES_MAX || lane >= lanes) {
		lane = 0;
		lanes = 1;
	}
	gen->lane = lane;
	gen->lanes = lanes;
	gen->seq = lane;
}

/* queue_id_valid - exactly 14 characters, all from the alphabet. */
bool queue_id_valid(const char *s)
{
	if (s == NULL || strlen(s) != QUEUE_ID_LEN)
		return false;
	for (size_t i = 0; i < QUEUE_ID_LEN; i++)
		if (s[i] == '\0' || strchr(qid_alphabet, s[i]) == NULL)
			return false;
	return true;
}
