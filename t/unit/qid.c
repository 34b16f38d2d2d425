/*
 * qid.c - unit tests for queue ids: format, ordering (also within one
 * microsecond and with the clock going back), validity.
 */
#include <stdlib.h>
#include <string.h>

#include "queue/queue.h"
#include "t/unit/tap.h"

#define NIDS 100000

/* all_alphabet - every character is from the queue id alphabet. */
static int all_alphabet(const char *id)
{
	return strspn(id, "0123456789BCDFGHJKLMNPQRSTVWXYZ") == QUEUE_ID_LEN;
}

/* check_sequence - ids for a list of times strictly increase. */
static int check_sequence(const int64_t *sec, const int32_t *usec, size_t n)
{
	struct queue_id_gen gen = { 0 };
	char prev[QUEUE_ID_LEN + 1] = "", id[QUEUE_ID_LEN + 1];

	for (size_t i = 0; i < n; i++) {
		queue_id_next(&gen, sec[i], usec[i], id);
		if (!queue_id_valid(id) || (i > 0 && strcmp(prev, id) >= 0))
			return 0;
		memcpy(prev, id, sizeof(prev));
	}
	return 1;
}

/* test_format - length, alphabet, sortable by time. */
static void test_format(struct tap *t)
{
	struct queue_id_gen gen = { 0 };
	char a[QUEUE_ID_LEN + 1], b[QUEUE_ID_LEN + 1];

	queue_id_next(&gen, 1700000000, 123456, a);
	TAP_OK(t, strlen(a) == QUEUE_ID_LEN, "id has 14 characters: %s", a);
	TAP_OK(t, all_alphabet(a), "id uses the alphabet only");
	TAP_OK(t, strpbrk(a, "AEIOU") == NULL, "no vowels");
	queue_id_next(&gen, 1700000001, 0, b);
	TAP_OK(t, strcmp(a, b) < 0, "a later second sorts later");
	TAP_OK(t, strncmp(a + 11, "000", 3) == 0, "fresh time starts sequence at 000");
	memset(&gen, 0, sizeof(gen));
	queue_id_next(&gen, 0, 0, a);
	TAP_OK(t, strncmp(a, "00000000000", 11) == 0, "time zero encodes as zeros: %s", a);
	queue_id_next(&gen, 0, 999999, b);
	TAP_OK(t, strcmp(a, b) < 0 && all_alphabet(b), "largest microsecond fits: %s", b);
}

/* test_order - many ids: same microsecond, backwards clock, all unique. */
static void test_order(struct tap *t)
{
	int64_t *sec = malloc(NIDS * sizeof(*sec));
	int32_t *usec = malloc(NIDS * sizeof(*usec));

	if (sec == NULL || usec == NULL)
		abort();
	for (size_t i = 0; i < NIDS; i++) {
		sec[i] = 1700000000;
		usec[i] = 5;
	}
	TAP_OK(t, check_sequence(sec, usec, NIDS), "%d ids in one microsecond increase", NIDS);
	for (size_t i = 0; i < NIDS; i++) {
		sec[i] = 1700000000 + (int64_t)(i / 1000);
		usec[i] = (int32_t)((i * 7919) % 1000000);
	}
	TAP_OK(t, check_sequence(sec, usec, NIDS), "jumpy microseconds within seconds increase");
	for (size_t i = 0; i < NIDS; i++) {
		sec[i] = 1700000000 - (int64_t)i;	/* the clock runs backwards */
		usec[i] = 999999;
	}
	TAP_OK(t, check_sequence(sec, usec, NIDS), "a clock going backwards never repeats");
	for (size_t i = 0; i < NIDS; i++) {
		sec[i] = 1700000000 + (int64_t)(i % 3);	/* forward, back, forward */
		usec[i] = (int32_t)(i % 1000000);
	}
	TAP_OK(t, check_sequence(sec, usec, NIDS), "a clock stepping back and forth increases");
	free(sec);
	free(usec);
}

/* test_valid - queue_id_valid accepts ids and rejects everything else. */
static void test_valid(struct tap *t)
{
	static const char *bad[] = {
		"", "0000000000000", "000000000000000", "0000000000000A",
		"0000000000000a", "000000000000 0", "../../etc/pwd", "00000000000-00",
	};
	char nul[] = "0000000\0000000";

	TAP_OK(t, queue_id_valid("0123456789BCDF"), "good id accepted");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		TAP_OK(t, !queue_id_valid(bad[i]), "rejected: \"%s\"", bad[i]);
	TAP_OK(t, !queue_id_valid(nul), "embedded NUL rejected");
	TAP_OK(t, !queue_id_valid(NULL), "NULL rejected");
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

/*
 * test_lanes - the generators of four event loops, all in the same
 * microsecond (and on through many ticks): every id is distinct, each
 * lane's own ids still increase.
 */
static void test_lanes(struct tap *t)
{
	enum { LANES = 4, PER_LANE = 40000 };
	struct queue_id_gen gen[LANES];
	char (*ids)[QUEUE_ID_LEN + 1] = malloc((size_t)LANES * PER_LANE * sizeof(*ids));
	int increasing = 1, distinct = 1;

	if (ids == NULL)
		abort();
	for (unsigned l = 0; l < LANES; l++) {
		memset(&gen[l], 0, sizeof(gen[l]));
		queue_id_lane(&gen[l], l, LANES);
	}
	for (size_t i = 0; i < PER_LANE; i++)
		for (unsigned l = 0; l < LANES; l++) {
			char *id = ids[i * LANES + l];

			queue_id_next(&gen[l], 1700000000, 5, id);
			if (i > 0 && strcmp(ids[(i - 1) * LANES + l], id) >= 0)
				increasing = 0;
		}
	TAP_OK(t, increasing, "each lane's ids increase");
	qsort(ids, (size_t)LANES * PER_LANE, sizeof(*ids), cmp_id);
	for (size_t i = 1; i < (size_t)LANES * PER_LANE; i++)
		if (strcmp(ids[i - 1], ids[i]) == 0)
			distinct = 0;
	TAP_OK(t, distinct, "%d ids from %d lanes in one microsecond are all distinct",
	       LANES * PER_LANE, LANES);
	memset(&gen[0], 0, sizeof(gen[0]));
	queue_id_lane(&gen[0], 3, 2);	/* nonsense: lane 0 of 1 */
	queue_id_next(&gen[0], 1700000000, 5, ids[0]);
	queue_id_next(&gen[0], 1700000000, 5, ids[1]);
	TAP_OK(t, strcmp(ids[0] + 11, "000") == 0 && strcmp(ids[1] + 11, "001") == 0,
	       "a bad lane falls back to lane 0 of 1");
	free(ids);
}

int main(void)
{
	struct tap t = { 0 };

	test_format(&t);
	test_order(&t);
	test_lanes(&t);
	test_valid(&t);
	return tap_done(&t);
}
