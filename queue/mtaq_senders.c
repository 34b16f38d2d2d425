/*
 * mtaq_senders.c - `mtaq senders [--json]`: what each sender (an
 * authenticated login, or "[address]" of a trusted client sending
 * without one) did today and in the last hour, from the statistics mtad
 * keeps: messages accepted, their recipients, attempts refused by a
 * quota and by sender ownership, and the distinct client addresses a
 * login came from. The admin's first look when a password may be stolen.
 *
 * The last hour is the ten-minute slot an hour ago and every one since
 * (sender/HHMM/... keys), so it covers 60 to 70 minutes; its addresses
 * are those new to the login in their clock hour, so one that came back
 * across an hour's turn counts twice.
 *
 * Must not: change stats.db (opened read-only), print a sender's name
 * raw (put_text, json_str), or hold more than one row per sender.
 *
 * Follows: no RFC; the counters are mtad's own (queue.h, sender/...).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "queue/mtaq_int.h"

enum { S_MSGS, S_RCPTS, S_QUOTA, S_OWNER, S_ADDRS, S_N };

/* The slots of the last hour: now and every ten minutes back to an hour ago. */
#define HOUR_SLOTS 7

struct sender_row {
	char *name;
	uint64_t v[S_N];	/* today */
	uint64_t hour[S_N];	/* the last hour */
};

struct senders {
	struct sender_row *rows;
	size_t n, cap;
	bool nomem;
	char today[QUEUE_STATS_DAY_LEN + 1];
	struct {
		char day[QUEUE_STATS_DAY_LEN + 1];
		unsigned slot;
	} window[HOUR_SLOTS];
	size_t nwindow;
};

/* row_for - the row of name (len bytes), made when new; NULL out of memory. */
static struct sender_row *row_for(struct senders *st, const char *name, size_t len)
{
	for (size_t i = 0; i < st->n; i++)
		if (strlen(st->rows[i].name) == len && memcmp(st->rows[i].name, name, len) == 0)
			return &st->rows[i];
	if (st->n == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 64;
		struct sender_row *grown = realloc(st->rows, cap * sizeof(*grown));

		if (!grown)
			return NULL;
		st->rows = grown;
		st->cap = cap;
	}
	if (!(st->rows[st->n].name = strndup(name, len)))
		return NULL;
	memset(st->rows[st->n].v, 0, sizeof(st->rows[st->n].v));
	memset(st->rows[st->n].hour, 0, sizeof(st->rows[st->n].hour));
	return &st->rows[st->n++];
}

/* column_of - the column a key counts in, and whether it is today's
 * (*hour false) or the last hour's; -1 for neither. */
static int column_of(const struct senders *st, const struct queue_stats_key *k, bool *hour)
{
	static const enum queue_stats_kind day_kind[S_N] = {
		QUEUE_STATS_SENDER_MSGS, QUEUE_STATS_SENDER_RCPTS, QUEUE_STATS_SENDER_QUOTA,
		QUEUE_STATS_SENDER_OWNER, QUEUE_STATS_SENDER_ADDRS,
	};
	static const enum queue_stats_kind slot_kind[S_N] = {
		QUEUE_STATS_SLOT_MSGS, QUEUE_STATS_SLOT_RCPTS, QUEUE_STATS_SLOT_QUOTA,
		QUEUE_STATS_SLOT_OWNER, QUEUE_STATS_SLOT_ADDRS,
	};

	for (int c = 0; c < S_N; c++) {
		if (k->kind == day_kind[c] && strcmp(k->day, st->today) == 0) {
			*hour = false;
			return c;
		}
		if (k->kind != slot_kind[c])
			continue;
		for (size_t w = 0; w < st->nwindow; w++)
			if (st->window[w].slot == k->bucket && strcmp(st->window[w].day, k->day) == 0) {
				*hour = true;
				return c;
			}
	}
	return -1;
}

/* senders_fn - queue_stats_foreach: one sender/... counter. */
static int senders_fn(void *arg, const char *key, uint64_t value)
{
	struct senders *st = arg;
	struct queue_stats_key k;
	struct sender_row *r;
	bool hour;
	int col;

	if (queue_stats_key_parse(key, &k) != 0 || (col = column_of(st, &k, &hour)) < 0)
		return 0;
	if (!(r = row_for(st, k.name, k.name_len))) {
		st->nomem = true;
		return 1;
	}
	if (hour)
		r->hour[col] += value;
	else
		r->v[col] += value;
	return 0;
}

/* row_order - the busiest sender first, then by name. */
static int row_order(const void *a, const void *b)
{
	const struct sender_row *x = a, *y = b;

	if (x->v[S_MSGS] != y->v[S_MSGS])
		return x->v[S_MSGS] < y->v[S_MSGS] ? 1 : -1;
	return strcmp(x->name, y->name);
}

/* since - the start of the last hour's first slot, "YYYY-MM-DD HH:MM". */
static void since(const struct senders *st, char out[17])
{
	const char *d = st->window[st->nwindow - 1].day;
	unsigned slot = st->window[st->nwindow - 1].slot;

	snprintf(out, 17, "%.4s-%.2s-%.2s %02u:%02u", d, d + 4, d + 6, slot / 6 % 100,
		 slot % 6 * 10);
}

static void print_json(const struct senders *st)
{
	static const char *const field[S_N] = {
		"messages", "recipients", "refused_quota", "refused_sender", "addresses",
	};
	char from[17];

	since(st, from);
	printf("{\"day\":\"%.4s-%.2s-%.2s\",\"last_hour_since\":\"%s\",\"senders\":[",
	       st->today, st->today + 4, st->today + 6, from);
	for (size_t i = 0; i < st->n; i++) {
		printf("%s{\"sender\":", i ? "," : "");
		json_str(stdout, st->rows[i].name);
		for (int c = 0; c < S_N; c++)
			printf(",\"%s\":%llu", field[c], (unsigned long long)st->rows[i].v[c]);
		printf(",\"last_hour\":{");
		for (int c = 0; c < S_N; c++)
			printf("%s\"%s\":%llu", c ? "," : "", field[c],
			       (unsigned long long)st->rows[i].hour[c]);
		printf("}}");
	}
	printf("]}\n");
}

/* print_counts - one period's five columns. */
static void print_counts(const uint64_t *v)
{
	printf(" %9llu %10llu %6llu %6llu %9llu", (unsigned long long)v[S_MSGS],
	       (unsigned long long)v[S_RCPTS], (unsigned long long)v[S_QUOTA],
	       (unsigned long long)v[S_OWNER], (unsigned long long)v[S_ADDRS]);
}

static void print_table(const struct senders *st)
{
	char from[17];

	since(st, from);
	printf("senders of %.4s-%.2s-%.2s, today and in the last hour (since %s): messages and "
	       "recipients accepted; attempts refused by a quota and by sender ownership; "
	       "distinct client addresses of a login\n",
	       st->today, st->today + 4, st->today + 6, from);
	printf("%-32s %-45s | %s\n", "", "today", "last hour");
	printf("%-32s", "sender");
	for (int p = 0; p < 2; p++)
		printf("%s %9s %10s %6s %6s %9s", p ? " |" : "", "messages", "recipients", "quota",
		       "sender", "addresses");
	printf("\n");
	for (size_t i = 0; i < st->n; i++) {
		size_t len = strlen(st->rows[i].name);

		put_text(stdout, st->rows[i].name);
		printf("%*s", (int)(len < 32 ? 32 - len : 0), "");
		print_counts(st->rows[i].v);
		printf(" |");
		print_counts(st->rows[i].hour);
		printf("\n");
	}
	if (st->n == 0)
		printf("(none today)\n");
}

/* hour_window - today's date and the slots of the last hour, newest first. */
static int hour_window(struct senders *st, time_t now)
{
	if (queue_stats_day(now, 0, st->today) < 0)
		return -1;
	for (int i = 0; i < HOUR_SLOTS; i++) {
		char day[QUEUE_STATS_DAY_LEN + 1];
		unsigned slot;
		bool seen = false;

		if (queue_stats_slot(now - (time_t)i * 600, day, &slot) < 0)
			return -1;
		/* A slot seen already (the clock went back an hour) counts once. */
		for (size_t w = 0; w < st->nwindow; w++)
			seen |= st->window[w].slot == slot && strcmp(st->window[w].day, day) == 0;
		if (seen)
			continue;
		memcpy(st->window[st->nwindow].day, day, sizeof(day));
		st->window[st->nwindow++].slot = slot;
	}
	return 0;
}

/* read_day - every sender key of day into st. */
static int read_day(struct mtaq *m, struct senders *st, const char *day)
{
	char prefix[QUEUE_STATS_KEY_MAX + 1];

	snprintf(prefix, sizeof(prefix), "%s/sender/", day);
	return queue_stats_foreach(m->q, prefix, senders_fn, st);
}

/* cmd_senders - see mtaq_int.h. */
int cmd_senders(struct mtaq *m)
{
	struct senders st = { 0 };
	int rc;

	if (hour_window(&st, time(NULL)) < 0) {
		fprintf(stderr, "mtaq: cannot tell today's date\n");
		return 1;
	}
	rc = read_day(m, &st, st.today);
	/* Just after midnight the last hour began yesterday. */
	if (rc == QUEUE_OK && !st.nomem && strcmp(st.window[st.nwindow - 1].day, st.today) != 0)
		rc = read_day(m, &st, st.window[st.nwindow - 1].day);
	if (st.nomem || rc != QUEUE_OK)
		fprintf(stderr, "mtaq: %s\n", st.nomem ? "out of memory" : queue_strerror(m->q));
	else {
		if (st.n > 1)
			qsort(st.rows, st.n, sizeof(*st.rows), row_order);
		if (m->json)
			print_json(&st);
		else
			print_table(&st);
	}
	for (size_t i = 0; i < st.n; i++)
		free(st.rows[i].name);
	free(st.rows);
	return st.nomem || rc != QUEUE_OK;
}
