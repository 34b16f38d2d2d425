/*
 * mtaq_stats.c - `mtaq stats`: the HELO policy statistics of stats.db
 * for today and the last N days, as a table or --json: per rule the
 * rejected attempts, connections and distinct clients, the accepted
 * messages, the top refused HELO names and client addresses, and the
 * group commit's messages per log sync.
 *
 * Keys are taken apart by queue_stats_key_parse (queue/stats_key.c owns
 * their format) and rules are sorted in the policy's order
 * (policy_rule_lookup), so neither is written down here.
 *
 * Must not: trust a stored sketch (one that does not decode is said and
 * skipped, and the exit status says so), print a name but through
 * put_text or json_str, or change stats.db (opened read-only).
 *
 * Follows: RFC 8259 (JSON).
 */
#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy/policy.h"
#include "queue/mtaq_int.h"
#include "queue/sketch_impl.h"

#define MTAQ_TOP_HELO 10	/* HELO names and client addresses shown */

enum { TODAY = 0, PERIOD = 1 };

struct rule_row {
	char *name;
	uint64_t rejected[2], conns[2];
	struct sketch_hll clients[2];	/* distinct addresses (merged days) */
};

struct stats {
	struct queue *q;
	void *rules;		/* tsearch tree of struct rule_row */
	uint64_t auth[2], unauth[2];
	uint64_t committed[2];	/* commit/messages */
	uint64_t syncs[QUEUE_SYNC_BUCKETS][2];	/* commit/syncs/N by bucket */
	/* The period's refused HELO names and client addresses: each day's
	 * top-K merged (and the keys written before issue 11 added). */
	struct sketch_top *helo_top, *ip_top;
	uint64_t hash_key[2];	/* the spool's, for addresses in old keys */
	struct rule_row **rule_list;
	size_t nrules;
	bool today;		/* the day being read is today */
	bool any, oom;
	bool failed;		/* a read failed (said) */
	bool damaged;		/* a sketch did not decode (said, skipped) */
	char day[QUEUE_STATS_DAY_LEN + 1], first[QUEUE_STATS_DAY_LEN + 1];
};

/* name_cmp - tsearch order of rows (both structs start with the name). */
static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* row_of - the row named name (len bytes) in tree, created with size bytes when new. */
static void *row_of(void **tree, const char *name, size_t len, size_t size, size_t *count)
{
	char *key = strndup(name, len);
	char **found, **row;

	if (key == NULL)
		return NULL;
	if ((found = tfind(&key, tree, name_cmp)) != NULL) {
		free(key);
		return *found;
	}
	if ((row = calloc(1, size)) == NULL) {
		free(key);
		return NULL;
	}
	*row = key;
	if (tsearch(row, tree, name_cmp) == NULL) {
		free(key);
		free(row);
		return NULL;
	}
	(*count)++;
	return row;
}

/* count2 - adds n to the period and, for today's keys, to today. */
static void count2(const struct stats *st, uint64_t v[2], uint64_t n)
{
	v[PERIOD] += n;
	if (st->today)
		v[TODAY] += n;
}

/* count_ip - one "ip/RULE/IP" key of before issue 11 (value: the
 * address's refusals): into the rule's address sketches, hashed as mtad
 * hashes them, and the top addresses. */
static int count_ip(struct stats *st, const struct queue_stats_key *k, uint64_t value)
{
	struct rule_row *r;
	uint64_t h;

	r = row_of(&st->rules, k->name, k->name_len, sizeof(*r), &st->nrules);
	if (r == NULL)
		return -1;
	h = sketch_hash(st->hash_key, k->ip, strlen(k->ip));
	sketch_hll_add(&r->clients[PERIOD], h);
	if (st->today)
		sketch_hll_add(&r->clients[TODAY], h);
	(void)sketch_top_add(st->ip_top, k->ip, value);
	return 0;
}

/* day_blob - the stored sketch key (of the day being read) into buf;
 * its length, 0 when there is none, -1 on error (said). */
static long day_blob(struct stats *st, const char *key, void **buf)
{
	size_t len;
	int rc;

	rc = queue_stats_get(st->q, key, buf, &len);
	if (rc == QUEUE_NOTFOUND)
		return 0;
	if (rc != QUEUE_OK) {
		fprintf(stderr, "mtaq: %s\n", queue_strerror(st->q));
		st->failed = true;
		return -1;
	}
	if (len == 0) {		/* not a sketch: as if none */
		free(*buf);
		*buf = NULL;
	}
	return (long)len;
}

/* read_clients - the day's address sketch of rule r, merged into today's
 * and the period's. A sketch that does not decode is said and skipped. */
static int read_clients(struct stats *st, struct rule_row *r)
{
	char key[QUEUE_STATS_KEY_MAX + 1];
	struct sketch_hll *h;
	void *buf = NULL;
	long len;

	if (queue_stats_key_format(key, sizeof(key), st->day, QUEUE_STATS_CLIENTS, r->name, 0) < 0)
		return 0;	/* a name no key can hold: it has no sketch */
	if ((len = day_blob(st, key, &buf)) <= 0)
		return (int)len;
	if ((h = malloc(sizeof(*h))) == NULL) {
		free(buf);
		return -1;
	}
	if (sketch_hll_decode(h, buf, (size_t)len) < 0) {
		fprintf(stderr, "mtaq: %s is damaged; skipped\n", key);
		st->damaged = true;
	} else {
		sketch_hll_merge(&r->clients[PERIOD], h);
		if (st->today)
			sketch_hll_merge(&r->clients[TODAY], h);
	}
	free(h);
	free(buf);
	return 0;
}

/* read_top - the day's top-K what (QUEUE_STATS_TOP_HELO, _IP) merged into into. */
static int read_top(struct stats *st, enum queue_stats_kind what, struct sketch_top *into)
{
	char key[QUEUE_STATS_KEY_MAX + 1];
	struct sketch_top *t;
	void *buf = NULL;
	long len;

	if (queue_stats_key_format(key, sizeof(key), st->day, what, NULL, 0) < 0)
		return 0;	/* not reached: the day is queue_stats_day's */
	if ((len = day_blob(st, key, &buf)) <= 0)
		return (int)len;
	if ((t = malloc(sizeof(*t))) == NULL) {
		free(buf);
		return -1;
	}
	if (sketch_top_decode(t, buf, (size_t)len) < 0) {
		fprintf(stderr, "mtaq: %s is damaged; skipped\n", key);
		st->damaged = true;
	} else {
		sketch_top_merge(into, t);
	}
	free(t);
	free(buf);
	return 0;
}

/* sync_total - log syncs that carried messages, in group g. */
static uint64_t sync_total(const struct stats *st, int g)
{
	uint64_t n = 0;

	for (size_t b = 0; b < QUEUE_SYNC_BUCKETS; b++)
		n += st->syncs[b][g];
	return n;
}

/* sync_label - "1", "2-3", ... "64+": the batch sizes of bucket b. */
static void sync_label(size_t b, char *buf, size_t size)
{
	if (b == 0)
		snprintf(buf, size, "1");
	else if (b + 1 == QUEUE_SYNC_BUCKETS)
		snprintf(buf, size, "%u+", 1u << b);
	else
		snprintf(buf, size, "%u-%u", 1u << b, (2u << b) - 1);
}

/* count_rule - a reject/RULE or conn/RULE counter: the rule's row, and
 * for reject/RULE its address sketch (written with it); -1 on ENOMEM. */
static int count_rule(struct stats *st, const struct queue_stats_key *k, uint64_t **v)
{
	bool reject = k->kind == QUEUE_STATS_REJECT;
	struct rule_row *r = row_of(&st->rules, k->name, k->name_len, sizeof(*r), &st->nrules);

	if (r == NULL)
		return -1;
	*v = reject ? r->rejected : r->conns;
	return reject ? read_clients(st, r) : 0;
}

/* stats_fn - queue_stats_foreach callback for one day's keys, taken
 * apart by queue_stats_key_parse; kinds it does not know are skipped. */
static int stats_fn(void *arg, const char *key, uint64_t value)
{
	struct stats *st = arg;
	struct queue_stats_key k;
	uint64_t *v = NULL;
	int rc = 0;

	if (queue_stats_key_parse(key, &k) < 0)
		return 0;
	switch (k.kind) {
	case QUEUE_STATS_REJECT:
	case QUEUE_STATS_CONN: rc = count_rule(st, &k, &v); break;
	case QUEUE_STATS_OLD_IP: rc = count_ip(st, &k, value); break;
	case QUEUE_STATS_OLD_HELO:
		(void)sketch_top_add(st->helo_top, k.name, value);
		break;
	case QUEUE_STATS_COMMIT_MESSAGES: v = st->committed; break;
	case QUEUE_STATS_COMMIT_SYNCS: v = st->syncs[k.bucket]; break;
	case QUEUE_STATS_ACCEPT_AUTH: v = st->auth; break;
	case QUEUE_STATS_ACCEPT_UNAUTH: v = st->unauth; break;
	default: break;		/* sketches (read by day), and what we do not know */
	}
	if (v != NULL)
		count2(st, v, value);
	if (rc < 0 && !st->failed)
		st->oom = true;
	return st->oom || st->failed;
}

/* any_fn - queue_stats_foreach callback: is there any counter at all? */
static int any_fn(void *arg, const char *key, uint64_t value)
{
	(void)key;
	(void)value;
	*(bool *)arg = true;
	return 1;
}

/* rule_rank - the place of a rule: the policy's rules in the order they
 * are checked (enum policy_rule, relay last), then the rest. */
static size_t rule_rank(const char *name)
{
	int r = policy_rule_lookup(name);

	return r < 0 ? POLICY_NRULES : (size_t)r;
}

/* rule_list_order - qsort: known rules in check order, others alphabetically. */
static int rule_list_order(const void *a, const void *b)
{
	const struct rule_row *x = *(struct rule_row *const *)a, *y = *(struct rule_row *const *)b;
	size_t rx = rule_rank(x->name), ry = rule_rank(y->name);

	if (rx != ry)
		return rx < ry ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* collect_rule - twalk_r callback gathering rows for sorting. */
static void collect_rule(const void *node, VISIT which, void *arg)
{
	struct stats *st = arg;

	if (which == postorder || which == leaf)
		st->rule_list[st->nrules++] = *(struct rule_row *const *)node;
}

/* stats_sort - the rules as a sorted array, the tops sorted; -1 on ENOMEM. */
static int stats_sort(struct stats *st)
{
	size_t nr = st->nrules;

	st->rule_list = calloc(nr ? nr : 1, sizeof(*st->rule_list));
	if (st->rule_list == NULL)
		return -1;
	st->nrules = 0;
	twalk_r(st->rules, collect_rule, st);
	qsort(st->rule_list, st->nrules, sizeof(*st->rule_list), rule_list_order);
	sketch_top_sort(st->helo_top);
	sketch_top_sort(st->ip_top);
	return 0;
}

/* rule_free - tdestroy callback. */
static void rule_free(void *p)
{
	struct rule_row *r = p;

	free(r->name);
	free(r);
}

/* iso_day - "YYYY-MM-DD" from a key's "YYYYMMDD". */
static void iso_day(const char *day, char out[11])
{
	snprintf(out, 11, "%.4s-%.2s-%.2s", day, day + 4, day + 6);
}

/* json_group - {"rejected":..,"connections":..,"clients":..,
 * "clients_estimated":..} of one column group. */
static void json_group(const struct rule_row *r, int g)
{
	printf("{\"rejected\":%llu,\"connections\":%llu,\"clients\":%llu,"
	       "\"clients_estimated\":%s}",
	       (unsigned long long)r->rejected[g], (unsigned long long)r->conns[g],
	       (unsigned long long)sketch_hll_count(&r->clients[g]),
	       sketch_hll_exact(&r->clients[g]) ? "false" : "true");
}

/* json_top - a top list: [{"name":..,"count":..,"max_overcount":..},...]. */
static void json_top(const struct sketch_top *t)
{
	size_t top = t->n < MTAQ_TOP_HELO ? t->n : MTAQ_TOP_HELO;

	putchar('[');
	for (size_t i = 0; i < top; i++) {
		fputs(i > 0 ? ",{\"name\":" : "{\"name\":", stdout);
		json_str(stdout, t->item[i].name);
		printf(",\"count\":%llu,\"max_overcount\":%llu}",
		       (unsigned long long)t->item[i].count, (unsigned long long)t->item[i].error);
	}
	putchar(']');
}

/* stats_json - `stats --json`. */
static void stats_json(const struct stats *st, int days)
{
	char today[11];

	iso_day(st->day, today);
	printf("{\"today\":\"%s\",\"days\":%d,\"rules\":{", today, days);
	for (size_t i = 0; i < st->nrules; i++) {
		const struct rule_row *r = st->rule_list[i];

		if (i > 0)
			putchar(',');
		json_str(stdout, r->name);
		fputs(":{\"today\":", stdout);
		json_group(r, TODAY);
		fputs(",\"period\":", stdout);
		json_group(r, PERIOD);
		putchar('}');
	}
	printf("},\"accepted\":{\"today\":{\"authenticated\":%llu,\"unauthenticated\":%llu},"
	       "\"period\":{\"authenticated\":%llu,\"unauthenticated\":%llu}},"
	       "\"top_kept_per_day\":%d,\"top_helo\":",
	       (unsigned long long)st->auth[TODAY], (unsigned long long)st->unauth[TODAY],
	       (unsigned long long)st->auth[PERIOD], (unsigned long long)st->unauth[PERIOD],
	       SKETCH_TOP_K);
	json_top(st->helo_top);
	fputs(",\"top_clients\":", stdout);
	json_top(st->ip_top);
	fputs(",\"group_commit\":{", stdout);
	for (int g = 0; g < 2; g++)
		printf("\"%s\":{\"messages\":%llu,\"syncs\":%llu},", g == TODAY ? "today" : "period",
		       (unsigned long long)st->committed[g], (unsigned long long)sync_total(st, g));
	fputs("\"period_syncs_by_batch\":{", stdout);
	for (size_t b = 0; b < QUEUE_SYNC_BUCKETS; b++) {
		char label[24];

		sync_label(b, label, sizeof(label));
		printf("%s\"%s\":%llu", b ? "," : "", label, (unsigned long long)st->syncs[b][PERIOD]);
	}
	puts("}}}");
}

/* stats_text_commit - the group commit: messages per log sync. */
static void stats_text_commit(const struct stats *st)
{
	printf("\ngroup commit (messages made durable per log sync)\n");
	for (int g = 0; g < 2; g++) {
		uint64_t syncs = sync_total(st, g);

		printf("  %-7s %llu messages in %llu log syncs", g == TODAY ? "today:" : "period:",
		       (unsigned long long)st->committed[g], (unsigned long long)syncs);
		if (syncs > 0)
			printf(", %.1f per sync", (double)st->committed[g] / (double)syncs);
		putchar('\n');
	}
	if (sync_total(st, PERIOD) == 0)
		return;
	printf("  log syncs by messages per sync (period):");
	for (size_t b = 0; b < QUEUE_SYNC_BUCKETS; b++) {
		char label[24];

		sync_label(b, label, sizeof(label));
		printf(" %s: %llu", label, (unsigned long long)st->syncs[b][PERIOD]);
	}
	putchar('\n');
}

/* group_title - "----- label -----" over one column group of width w. */
static void group_title(const char *label, int w)
{
	int pad = w - (int)strlen(label) - 2;

	printf("  %.*s %s %.*s", pad / 2, "--------------------", label, pad - pad / 2,
	       "--------------------");
}

/* text_count - a count right-aligned in w columns, "~" before it when estimated. */
static void text_count(uint64_t n, bool estimated, int w)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%s%llu", estimated ? "~" : "", (unsigned long long)n);
	printf("%*s", w, buf);
}

/* stats_clients_estimated - is any address count an estimate? */
static bool stats_clients_estimated(const struct stats *st)
{
	for (size_t i = 0; i < st->nrules; i++)
		for (int g = 0; g < 2; g++)
			if (!sketch_hll_exact(&st->rule_list[i]->clients[g]))
				return true;
	return false;
}

/* text_top - one top list. Counts that may be too high are marked "~"
 * and, when there are any, a column gives the least each can be. */
static void text_top(const char *title, const char *what, const struct sketch_top *t)
{
	size_t top = t->n < MTAQ_TOP_HELO ? t->n : MTAQ_TOP_HELO;
	bool approx = false;

	if (top == 0)
		return;
	for (size_t i = 0; i < top; i++)
		approx |= t->item[i].error > 0;
	printf("\n%s\n%9s  %s%s\n", title, "count", approx ? "at least  " : "", what);
	for (size_t i = 0; i < top; i++) {
		text_count(t->item[i].count, t->item[i].error > 0, 9);
		if (approx)
			printf("  %8llu",
			       (unsigned long long)(t->item[i].count - t->item[i].error));
		fputs("  ", stdout);
		put_text(stdout, t->item[i].name);
		putchar('\n');
	}
	if (approx)
		printf("(~: approximate: each day keeps only its %d most frequent; the true\n"
		       " count is between \"at least\" and \"count\")\n",
		       SKETCH_TOP_K);
}

/* stats_text - the report for a terminal. Keys were checked by
 * queue_stats_foreach (graphic ASCII only), so names print as they are. */
static void stats_text(const struct stats *st, int days)
{
	char today[11], first[11];

	iso_day(st->day, today);
	iso_day(st->first, first);
	if (days == 0)
		printf("HELO policy statistics for today (%s)\n\n", today);
	else
		printf("HELO policy statistics for today (%s) and the last %d day%s (%s to %s)\n\n",
		       today, days, days == 1 ? "" : "s", first, today);
	if (st->nrules == 0) {
		puts("no rejected attempts in this period");
	} else {
		printf("%-18s", "");
		group_title("today", 29);
		group_title("period", 29);
		printf("\n%-18s", "rule");
		for (int g = 0; g < 2; g++)
			printf("  %9s %11s %7s", "rejected", "connections", "clients");
		putchar('\n');
		for (size_t i = 0; i < st->nrules; i++) {
			const struct rule_row *r = st->rule_list[i];

			printf("%-18s", r->name);
			for (int g = 0; g < 2; g++) {
				printf("  %9llu %11llu ", (unsigned long long)r->rejected[g],
				       (unsigned long long)r->conns[g]);
				text_count(sketch_hll_count(&r->clients[g]),
					   !sketch_hll_exact(&r->clients[g]), 7);
			}
			putchar('\n');
		}
		if (stats_clients_estimated(st))
			printf("(~: estimated, within a few per cent)\n");
	}
	printf("\naccepted messages   today:  %llu authenticated, %llu unauthenticated\n"
	       "                    period: %llu authenticated, %llu unauthenticated\n",
	       (unsigned long long)st->auth[TODAY], (unsigned long long)st->unauth[TODAY],
	       (unsigned long long)st->auth[PERIOD], (unsigned long long)st->unauth[PERIOD]);
	stats_text_commit(st);
	text_top("top rejected HELO names (period)", "name", st->helo_top);
	text_top("top rejected client addresses (period)", "address", st->ip_top);
}

/* read_hash_key - the spool's sketch hash key, for addresses in old keys. */
static int read_hash_key(struct stats *st)
{
	unsigned char *buf = NULL;
	size_t len;
	int rc = queue_stats_get(st->q, QUEUE_STATS_HASH_KEY, (void **)&buf, &len);

	if (rc == QUEUE_ERROR) {
		fprintf(stderr, "mtaq: %s\n", queue_strerror(st->q));
		return -1;
	}
	for (size_t i = 0; rc == QUEUE_OK && len == 16 && i < 16; i++)
		st->hash_key[i / 8] = st->hash_key[i / 8] << 8 | buf[i];
	free(buf);
	return 0;
}

/* stats_read - reads today and the days before it into st. */
static int stats_read(struct mtaq *m, struct stats *st, time_t now)
{
	if (read_hash_key(st) < 0)
		return -1;
	for (int off = -m->days; off <= 0; off++) {
		char prefix[QUEUE_STATS_KEY_MAX + 1];

		if (queue_stats_day(now, off, st->day) < 0) {
			fprintf(stderr, "mtaq: cannot compute the local date\n");
			return -1;
		}
		if (off == -m->days)
			memcpy(st->first, st->day, sizeof(st->first));
		st->today = off == 0;
		if (queue_stats_key_format(prefix, sizeof(prefix), st->day, QUEUE_STATS_DAY,
					   NULL, 0) < 0 ||
		    queue_stats_foreach(m->q, prefix, stats_fn, st) != QUEUE_OK || st->oom) {
			fprintf(stderr, "mtaq: %s\n", st->oom ? "out of memory" : queue_strerror(m->q));
			return -1;
		}
		if (st->failed || read_top(st, QUEUE_STATS_TOP_HELO, st->helo_top) < 0 ||
		    read_top(st, QUEUE_STATS_TOP_IP, st->ip_top) < 0) {
			if (!st->failed)
				fprintf(stderr, "mtaq: out of memory\n");
			return -1;
		}
	}
	return 0;
}

/* stats_init_read - empty tops, then the days read into them. */
static int stats_init_read(struct mtaq *m, struct stats *st)
{
	sketch_top_init(st->helo_top);
	sketch_top_init(st->ip_top);
	return stats_read(m, st, time(NULL));
}

/* cmd_stats - `mtaq stats [--json] [--days N]`. */
int cmd_stats(struct mtaq *m)
{
	struct stats st = { .q = m->q };
	int status = 0;

	if (queue_stats_foreach(m->q, "", any_fn, &st.any) != QUEUE_OK) {
		fprintf(stderr, "mtaq: %s\n", queue_strerror(m->q));
		return 1;
	}
	if (!st.any && !m->json) {
		puts("no policy statistics recorded yet");
		return 0;
	}
	st.helo_top = malloc(sizeof(*st.helo_top));
	st.ip_top = malloc(sizeof(*st.ip_top));
	if (st.helo_top == NULL || st.ip_top == NULL) {
		fprintf(stderr, "mtaq: out of memory\n");
		status = 1;
	} else if (stats_init_read(m, &st) < 0) {
		status = 1;
	} else if (stats_sort(&st) < 0) {
		fprintf(stderr, "mtaq: out of memory\n");
		status = 1;
	} else if (m->json) {
		stats_json(&st, m->days);
	} else {
		stats_text(&st, m->days);
	}
	free(st.rule_list);
	free(st.helo_top);
	free(st.ip_top);
	tdestroy(st.rules, rule_free);
	return status || st.damaged;
}
