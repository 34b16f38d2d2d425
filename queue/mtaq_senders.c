/*
 * mtaq_senders.c - `mtaq senders [--json]`: what each sender (an
 * authenticated login, or "[address]" of a trusted client sending
 * without one) did today, from the statistics mtad keeps: messages
 * accepted, their recipients, attempts refused by a quota and by sender
 * ownership, and the distinct client addresses a login came from. The
 * admin's first look when a password may be stolen.
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

struct sender_row {
	char *name;
	uint64_t v[S_N];
};

struct senders {
	struct sender_row *rows;
	size_t n, cap;
	bool nomem;
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
	return &st->rows[st->n++];
}

/* senders_fn - queue_stats_foreach: one sender/... counter of the day. */
static int senders_fn(void *arg, const char *key, uint64_t value)
{
	struct senders *st = arg;
	struct queue_stats_key k;
	struct sender_row *r;
	int col;

	if (queue_stats_key_parse(key, &k) != 0)
		return 0;
	switch (k.kind) {
	case QUEUE_STATS_SENDER_MSGS: col = S_MSGS; break;
	case QUEUE_STATS_SENDER_RCPTS: col = S_RCPTS; break;
	case QUEUE_STATS_SENDER_QUOTA: col = S_QUOTA; break;
	case QUEUE_STATS_SENDER_OWNER: col = S_OWNER; break;
	case QUEUE_STATS_SENDER_ADDRS: col = S_ADDRS; break;
	default: return 0;
	}
	if (!(r = row_for(st, k.name, k.name_len))) {
		st->nomem = true;
		return 1;
	}
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

static void print_json(const struct senders *st, const char *day)
{
	static const char *const field[S_N] = {
		"messages", "recipients", "refused_quota", "refused_sender", "addresses",
	};

	printf("{\"day\":\"%.4s-%.2s-%.2s\",\"senders\":[", day, day + 4, day + 6);
	for (size_t i = 0; i < st->n; i++) {
		printf("%s{\"sender\":", i ? "," : "");
		json_str(stdout, st->rows[i].name);
		for (int c = 0; c < S_N; c++)
			printf(",\"%s\":%llu", field[c], (unsigned long long)st->rows[i].v[c]);
		printf("}");
	}
	printf("]}\n");
}

static void print_table(const struct senders *st, const char *day)
{
	printf("senders of %.4s-%.2s-%.2s (messages and recipients accepted; attempts refused "
	       "by a quota and by sender ownership; distinct client addresses of a login)\n",
	       day, day + 4, day + 6);
	printf("%-40s %9s %10s %7s %7s %9s\n", "sender", "messages", "recipients", "quota",
	       "sender", "addresses");
	for (size_t i = 0; i < st->n; i++) {
		const uint64_t *v = st->rows[i].v;

		put_text(stdout, st->rows[i].name);
		printf("%*s %9llu %10llu %7llu %7llu %9llu\n",
		       (int)(strlen(st->rows[i].name) < 40 ? 40 - strlen(st->rows[i].name) : 0), "",
		       (unsigned long long)v[S_MSGS], (unsigned long long)v[S_RCPTS],
		       (unsigned long long)v[S_QUOTA], (unsigned long long)v[S_OWNER],
		       (unsigned long long)v[S_ADDRS]);
	}
	if (st->n == 0)
		printf("(none today)\n");
}

/* cmd_senders - see mtaq_int.h. */
int cmd_senders(struct mtaq *m)
{
	struct senders st = { 0 };
	char day[QUEUE_STATS_DAY_LEN + 1], prefix[QUEUE_STATS_KEY_MAX + 1];
	int rc;

	if (queue_stats_day(time(NULL), 0, day) < 0) {
		fprintf(stderr, "mtaq: cannot tell today's date\n");
		return 1;
	}
	snprintf(prefix, sizeof(prefix), "%s/sender/", day);
	rc = queue_stats_foreach(m->q, prefix, senders_fn, &st);
	if (st.nomem || rc != QUEUE_OK)
		fprintf(stderr, "mtaq: %s\n", st.nomem ? "out of memory" : queue_strerror(m->q));
	else {
		if (st.n > 1)
			qsort(st.rows, st.n, sizeof(*st.rows), row_order);
		if (m->json)
			print_json(&st, day);
		else
			print_table(&st, day);
	}
	for (size_t i = 0; i < st.n; i++)
		free(st.rows[i].name);
	free(st.rows);
	return st.nomem || rc != QUEUE_OK;
}
