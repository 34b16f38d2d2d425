/*
 * queue_stats.c - the statistics counters against a real Berkeley DB
 * environment in a temporary directory, with a libuv loop and the
 * writer thread: sums, key checks, the bound on distinct keys, the
 * once-a-second timer, expiry of old days (direct and at writer start),
 * the final flush at stop and reopening, and counters written while 100
 * messages commit. White-box where it triggers expiry (queue_impl.h).
 * And the keys' format (stats_key.c): format and parse round trips for
 * every kind and every policy rule, malformed keys and unusable parts.
 */
#include <errno.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "policy/policy.h"
#include "queue/queue_impl.h"
#include "queue/sketch_impl.h"
#include "t/unit/tap.h"

struct ctx {
	struct queue *q;
	uv_loop_t loop;
	struct queue_id_gen gen;
	char spool[64];
	char today[QUEUE_STATS_DAY_LEN + 1];
};

struct msg {
	char qid[QUEUE_ID_LEN + 1];
	struct queue_incoming *in;
	int done, status;
};

/* rm_one - nftw callback removing one file or directory. */
static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

/* key_of - "DAY/what" into buf. */
static const char *key_of(char *buf, size_t size, const char *day, const char *what)
{
	snprintf(buf, size, "%s/%s", day, what);
	return buf;
}

/* flush - hands the pending counters to the writer and waits for them. */
static void flush(struct ctx *c)
{
	queue_stats_flush(c->q);
	uv_run(&c->loop, UV_RUN_DEFAULT);
}

struct lookup {
	const char *key;
	uint64_t value;
	int found;
	size_t rows;
	int ordered;
	char last[QUEUE_STATS_KEY_MAX + 1];
};

/* lookup_fn - queue_stats_foreach callback: finds one key, counts rows, checks order. */
static int lookup_fn(void *arg, const char *key, uint64_t value)
{
	struct lookup *l = arg;

	if (l->rows > 0 && strcmp(l->last, key) >= 0)
		l->ordered = 0;
	snprintf(l->last, sizeof(l->last), "%s", key);
	l->rows++;
	if (l->key != NULL && strcmp(l->key, key) == 0) {
		l->found++;
		l->value = value;
	}
	return 0;
}

/* stat_get - the stored value of key (0 when absent; *found says which). */
static uint64_t stat_get(struct queue *q, const char *key, int *found)
{
	struct lookup l = { .key = key, .ordered = 1 };

	if (queue_stats_foreach(q, key, lookup_fn, &l) != QUEUE_OK)
		abort();
	if (found != NULL)
		*found = l.found;
	return l.value;
}

/* stat_rows - how many counters start with prefix (-1 when out of order). */
static long stat_rows(struct queue *q, const char *prefix)
{
	struct lookup l = { .ordered = 1 };

	if (queue_stats_foreach(q, prefix, lookup_fn, &l) != QUEUE_OK)
		abort();
	return l.ordered ? (long)l.rows : -1;
}

/* test_sum - many adds to one key sum up; a later flush adds to the stored value. */
static void test_sum(struct tap *t, struct ctx *c)
{
	char k1[64], k2[64];
	int ok = 0, found;

	key_of(k1, sizeof(k1), c->today, "reject/own-name");
	key_of(k2, sizeof(k2), c->today, "ip/own-name/192.0.2.7");
	for (int i = 0; i < 1000; i++)
		ok += queue_stats_add(c->q, k1, 1) == 0;
	ok += queue_stats_add(c->q, k2, 5) == 0;
	TAP_OK(t, ok == 1001, "1001 adds accepted");
	TAP_OK(t, queue_stats_table_size(c->q->stats_pending) == 2, "two distinct keys pending");
	TAP_OK(t, stat_get(c->q, k1, &found) == 0 && found == 0, "nothing on disk before a flush");
	flush(c);
	TAP_OK(t, c->q->stats_pending == NULL, "the flush took the table");
	TAP_OK(t, stat_get(c->q, k1, &found) == 1000 && found == 1, "1000 adds of 1 read back as 1000");
	TAP_OK(t, stat_get(c->q, k2, NULL) == 5, "delta 5 read back");
	queue_stats_add(c->q, k1, 234);
	TAP_OK(t, queue_stats_add(c->q, k1, 0) == 0, "delta 0 is a no-op");
	flush(c);
	TAP_OK(t, stat_get(c->q, k1, NULL) == 1234, "a second flush adds to the stored 1000");
	TAP_OK(t, queue_stats_add(c->q, k1, UINT64_MAX) == 0 &&
		  queue_stats_add(c->q, k1, 7) == 0, "huge deltas accepted");
	flush(c);
	TAP_OK(t, stat_get(c->q, k1, NULL) == UINT64_MAX, "sums saturate instead of wrapping");
}

/* test_keys - malformed keys are refused. */
static void test_keys(struct tap *t, struct ctx *c)
{
	char k[QUEUE_STATS_KEY_MAX + 8];
	size_t n;

	n = (size_t)snprintf(k, sizeof(k), "%s/helo/", c->today);
	memset(k + n, 'a', QUEUE_STATS_KEY_MAX - n);
	k[QUEUE_STATS_KEY_MAX] = '\0';
	TAP_OK(t, queue_stats_add(c->q, k, 1) == 0, "a %d-byte key is accepted", QUEUE_STATS_KEY_MAX);
	k[QUEUE_STATS_KEY_MAX] = 'a';
	k[QUEUE_STATS_KEY_MAX + 1] = '\0';
	errno = 0;
	TAP_OK(t, queue_stats_add(c->q, k, 1) == -1 && errno == EINVAL,
	       "a %d-byte key is refused", QUEUE_STATS_KEY_MAX + 1);
	static const char *const bad[] = {
		"/helo/x", "2026112/helo/x", "2026x127/helo/x", "20261127helo/x", "20261127/",
		"20261127/helo/a b", "20261127/helo/a\r\nb", "20261127/helo/\x7f",
		"20261127/helo/\xc3\xa9", "helo/x",
	};
	long before = stat_rows(c->q, "");
	int refused = 0;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		refused += queue_stats_add(c->q, bad[i], 1) == -1 && errno == EINVAL;
	TAP_OK(t, refused == (int)(sizeof(bad) / sizeof(bad[0])),
	       "%d malformed keys (no date, blank, CR LF, DEL, 8-bit) refused", refused);
	TAP_OK(t, queue_stats_add(c->q, NULL, 1) == -1, "a NULL key is refused");
	flush(c);
	TAP_OK(t, stat_rows(c->q, "") == before + 1, "only the good key reached the disk");
	k[QUEUE_STATS_KEY_MAX] = '\0';
	TAP_OK(t, stat_get(c->q, k, NULL) == 1, "the longest key reads back");
}

/* test_bound - at most QUEUE_STATS_MAX_PENDING distinct keys between flushes. */
static void test_bound(struct tap *t, struct ctx *c)
{
	char k[64], prefix[32];
	int ok = 0;

	key_of(prefix, sizeof(prefix), c->today, "bound/");
	for (int i = 0; i < QUEUE_STATS_MAX_PENDING; i++) {
		snprintf(k, sizeof(k), "%s%05d", prefix, i);
		ok += queue_stats_add(c->q, k, 1) == 0;
	}
	TAP_OK(t, ok == QUEUE_STATS_MAX_PENDING, "%d distinct keys accepted", ok);
	snprintf(k, sizeof(k), "%sextra", prefix);
	errno = 0;
	TAP_OK(t, queue_stats_add(c->q, k, 1) == -1 && errno == ENOSPC,
	       "key %d is dropped (ENOSPC)", QUEUE_STATS_MAX_PENDING + 1);
	snprintf(k, sizeof(k), "%s%05d", prefix, 42);
	TAP_OK(t, queue_stats_add(c->q, k, 9) == 0, "a key already in the table still counts");
	flush(c);
	TAP_OK(t, stat_rows(c->q, prefix) == QUEUE_STATS_MAX_PENDING,
	       "%d counters stored, in key order", QUEUE_STATS_MAX_PENDING);
	TAP_OK(t, stat_get(c->q, k, NULL) == 10, "the repeated key holds 10");
	snprintf(k, sizeof(k), "%sextra", prefix);
	TAP_OK(t, queue_stats_add(c->q, k, 1) == 0, "after the flush new keys are taken again");
	flush(c);
}

/* on_tick - the test's own (referenced) timer: ends the wait. */
static void on_tick(uv_timer_t *timer)
{
	uv_close((uv_handle_t *)timer, NULL);
}

/* test_timer - without queue_stats_flush the counters reach the disk within ~1 s. */
static void test_timer(struct tap *t, struct ctx *c)
{
	uv_timer_t wait;
	char k[64];

	key_of(k, sizeof(k), c->today, "conn/non-fqdn");
	queue_stats_add(c->q, k, 3);
	if (uv_timer_init(&c->loop, &wait) != 0 ||
	    uv_timer_start(&wait, on_tick, QUEUE_STATS_FLUSH_MS + 500, 0) != 0)
		abort();
	uv_run(&c->loop, UV_RUN_DEFAULT);
	TAP_OK(t, stat_get(c->q, k, NULL) == 3, "the writer's timer flushed within %d ms",
	       QUEUE_STATS_FLUSH_MS + 500);
}

/* test_expire_slots - the ten-minute sender keys go once their day is
 * two days old; the day's own sender keys and yesterday's slots stay. */
static void test_expire_slots(struct tap *t, struct ctx *c)
{
	char d1[QUEUE_STATS_DAY_LEN + 1], d2[QUEUE_STATS_DAY_LEN + 1], k[80], prefix[40];
	size_t removed = 99;
	int rc;

	if (queue_stats_day(time(NULL), -1, d1) < 0 || queue_stats_day(time(NULL), -2, d2) < 0)
		abort();
	for (unsigned slot = 0; slot < QUEUE_STATS_SLOTS; slot += 20) {
		if (queue_stats_key_format(k, sizeof(k), d2, QUEUE_STATS_SLOT_MSGS, "alice", slot) < 0 ||
		    queue_stats_add(c->q, k, 1) != 0 ||
		    queue_stats_key_format(k, sizeof(k), d1, QUEUE_STATS_SLOT_MSGS, "alice", slot) < 0 ||
		    queue_stats_add(c->q, k, 1) != 0)
			abort();
	}
	queue_stats_add(c->q, key_of(k, sizeof(k), d2, "sender/msgs/alice"), 8);
	queue_stats_add(c->q, key_of(k, sizeof(k), d2, "reject/localhost"), 1);
	flush(c);
	snprintf(prefix, sizeof(prefix), "%s/sender/", d2);
	TAP_OK(t, stat_rows(c->q, prefix) == 9, "two days ago: 8 slots and the day's count");
	rc = queue_stats_expire(c->q, time(NULL), 0, &removed);
	TAP_OK(t, rc == 0 && removed == 8, "expiry removed %zu slot keys (expected 8)", removed);
	TAP_OK(t, stat_rows(c->q, prefix) == 1 &&
		  stat_get(c->q, key_of(k, sizeof(k), d2, "sender/msgs/alice"), NULL) == 8 &&
		  stat_get(c->q, key_of(k, sizeof(k), d2, "reject/localhost"), NULL) == 1,
	       "... and kept the day's own counters");
	snprintf(prefix, sizeof(prefix), "%s/sender/", d1);
	TAP_OK(t, stat_rows(c->q, prefix) == 8, "yesterday's slots are kept");
}

/* test_expire - days older than stats_keep_days (8) go; the rest stay. */
static void test_expire(struct tap *t, struct ctx *c)
{
	char d8[QUEUE_STATS_DAY_LEN + 1], d9[QUEUE_STATS_DAY_LEN + 1], k[64], err[200];
	const char *old = "20000101/reject/bare-ip";
	size_t removed = 99;
	int found, rc;

	if (queue_stats_day(time(NULL), -8, d8) < 0 || queue_stats_day(time(NULL), -9, d9) < 0)
		abort();
	queue_stats_add(c->q, key_of(k, sizeof(k), d8, "reject/localhost"), 1);
	queue_stats_add(c->q, key_of(k, sizeof(k), d9, "reject/localhost"), 1);
	queue_stats_add(c->q, key_of(k, sizeof(k), d9, "helo/old.example"), 1);
	queue_stats_add(c->q, old, 1);
	flush(c);
	TAP_OK(t, stat_rows(c->q, d9) == 2 && stat_rows(c->q, "20000101/") == 1,
	       "old days written through queue_stats_add");
	rc = queue_stats_expire(c->q, time(NULL), 0, &removed);
	TAP_OK(t, rc == 0 && removed == 3, "expiry removed %zu keys (expected 3)", removed);
	TAP_OK(t, stat_rows(c->q, d9) == 0 && stat_rows(c->q, "20000101/") == 0,
	       "9 days ago and 2000-01-01 are gone");
	TAP_OK(t, stat_rows(c->q, d8) == 1, "8 days ago is kept");
	TAP_OK(t, stat_get(c->q, key_of(k, sizeof(k), c->today, "reject/own-name"), NULL) ==
		  UINT64_MAX, "today is kept");
	rc = queue_stats_expire(c->q, time(NULL), 0, &removed);
	TAP_OK(t, rc == 0 && removed == 0, "a second expiry finds nothing");
	test_expire_slots(t, c);

	/* A limited expiry stops at the limit. */
	for (int i = 0; i < 2 * QUEUE_STATS_EXPIRE_STEP + 500; i++) {
		snprintf(k, sizeof(k), "20000102/ip/bare-ip/10.0.%d.%d", i / 256, i % 256);
		queue_stats_add(c->q, k, 1);
	}
	flush(c);
	rc = queue_stats_expire(c->q, time(NULL), QUEUE_STATS_EXPIRE_STEP, &removed);
	TAP_OK(t, rc == 0 && removed == QUEUE_STATS_EXPIRE_STEP &&
		  stat_rows(c->q, "20000102/") == QUEUE_STATS_EXPIRE_STEP + 500,
	       "expiry with a limit of %d deleted %zu", QUEUE_STATS_EXPIRE_STEP, removed);

	/* At writer start: the writer deletes the rest a step at a time,
	 * the first step before its first job. */
	queue_stats_add(c->q, old, 1);
	flush(c);
	TAP_OK(t, stat_get(c->q, old, &found) == 1 && found, "old key planted again");
	queue_writer_stop(c->q);
	uv_run(&c->loop, UV_RUN_DEFAULT);
	TAP_OK(t, queue_writer_start(c->q, &c->loop, err, sizeof(err)) == 0, "writer restarted");
	queue_stats_add(c->q, key_of(k, sizeof(k), c->today, "conn/non-fqdn"), 1);
	flush(c);
	TAP_OK(t, stat_get(c->q, old, &found) == 0 && !found, "expired at writer start");
	TAP_OK(t, stat_get(c->q, k, NULL) == 4, "today's counter kept and added to");
	for (int i = 0; i < 100 && stat_rows(c->q, "20000102/") > 0; i++)
		usleep(50 * 1000);
	TAP_OK(t, stat_rows(c->q, "20000102/") == 0, "the writer deleted %d old keys in steps",
	       QUEUE_STATS_EXPIRE_STEP + 500);
}

/* on_commit - records the outcome of a message commit. */
static void on_commit(void *arg, int status, const char *errmsg)
{
	struct msg *m = arg;

	(void)errmsg;
	m->done++;
	m->status = status;
}

/* on_resume - not needed: the test bodies are one partial chunk. */
static void on_resume(void *arg)
{
	(void)arg;
}

/* test_concurrent - 100 message commits with counters added and flushed among them. */
static void test_concurrent(struct tap *t, struct ctx *c)
{
	enum { N = 100 };
	struct msg *m = calloc(N, sizeof(*m));
	struct queue_rcpt rcpt = { .addr = "rcpt@example.org" };
	struct queue_envelope env = { .sender = "s@example.com", .rcpt = &rcpt, .nrcpt = 1,
				      .client_ip = "192.0.2.9", .protocol = "ESMTP" };
	char k[64], ip[80];
	uint64_t c0, f0, c1, f1;
	int ok = 0, adds = 0;

	if (m == NULL)
		abort();
	queue_writer_stats(c->q, &c0, &f0);
	key_of(k, sizeof(k), c->today, "accept/unauth");
	for (int i = 0; i < N; i++) {
		struct timeval tv;

		gettimeofday(&tv, NULL);
		queue_id_next(&c->gen, tv.tv_sec, (int32_t)tv.tv_usec, m[i].qid);
		if ((m[i].in = queue_incoming_new(queue_port_main(c->q), m[i].qid, on_resume, &m[i])) == NULL ||
		    queue_incoming_write(m[i].in, "Subject: x\r\n\r\nhi\r\n", 18) < 0 ||
		    queue_incoming_commit(m[i].in, &env, on_commit, &m[i]) != 0)
			abort();
		adds += queue_stats_add(c->q, k, 1) == 0;
		snprintf(ip, sizeof(ip), "%s/ip/relay/198.51.100.%d", c->today, i);
		adds += queue_stats_add(c->q, ip, 1) == 0;
		if (i % 10 == 9) {
			queue_stats_flush(c->q);	/* lands in the writer's batches */
			uv_run(&c->loop, UV_RUN_NOWAIT);
		}
	}
	uv_run(&c->loop, UV_RUN_DEFAULT);
	queue_writer_stats(c->q, &c1, &f1);
	for (int i = 0; i < N; i++)
		ok += m[i].done == 1 && m[i].status == 0;
	TAP_OK(t, ok == N && c1 - c0 == N, "%d of %d commits succeeded beside the counters", ok, N);
	TAP_OK(t, adds == 2 * N, "%d counter adds accepted", adds);
	TAP_OK(t, stat_get(c->q, k, NULL) == N, "accept counter holds %d", N);
	snprintf(ip, sizeof(ip), "%s/ip/relay/", c->today);
	TAP_OK(t, stat_rows(c->q, ip) == N, "%d distinct address keys stored", N);
	free(m);
}

/* test_reopen - the last adds go at stop; everything survives close and reopen. */
static void test_reopen(struct tap *t, struct ctx *c)
{
	char k[64], err[200] = "";

	key_of(k, sizeof(k), c->today, "accept/auth");
	queue_stats_add(c->q, k, 11);	/* no flush: queue_writer_stop must write it */
	queue_writer_stop(c->q);
	uv_run(&c->loop, UV_RUN_DEFAULT);
	errno = 0;
	TAP_OK(t, queue_stats_add(c->q, k, 1) == -1 && errno == ESHUTDOWN,
	       "no adds without a writer");
	queue_close(c->q);
	c->q = queue_open(&(struct queue_options){ .spool_directory = c->spool }, err, sizeof(err));
	TAP_OK(t, c->q != NULL, "reopened (%s)", err);
	if (c->q == NULL)
		abort();
	TAP_OK(t, stat_get(c->q, k, NULL) == 11, "the add made just before stop survived");
	TAP_OK(t, stat_get(c->q, key_of(k, sizeof(k), c->today, "accept/unauth"), NULL) == 100,
	       "counters survive close and reopen");
	TAP_OK(t, stat_rows(c->q, "") > QUEUE_STATS_MAX_PENDING, "foreach over everything (%ld rows)",
	       stat_rows(c->q, ""));
}

/* get_top, get_hll - a stored sketch of the day, decoded; -1 when absent or malformed. */
static int get_top(struct queue *q, const char *day, const char *what, struct sketch_top *t)
{
	char k[QUEUE_STATS_KEY_MAX + 1];
	void *buf;
	size_t len;
	int rc;

	snprintf(k, sizeof(k), "%s/%s", day, what);
	if (queue_stats_get(q, k, &buf, &len) != QUEUE_OK)
		return -1;
	rc = sketch_top_decode(t, buf, len);
	free(buf);
	return rc;
}

static int get_hll(struct queue *q, const char *day, const char *rule, struct sketch_hll *h)
{
	char k[QUEUE_STATS_KEY_MAX + 1];
	void *buf;
	size_t len;
	int rc;

	snprintf(k, sizeof(k), "%s/sketch/clients/%s", day, rule);
	if (queue_stats_get(q, k, &buf, &len) != QUEUE_OK)
		return -1;
	rc = sketch_hll_decode(h, buf, len);
	free(buf);
	return rc;
}

static uint64_t top_count(const struct sketch_top *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->item[i].name, name) == 0)
			return t->item[i].count;
	return 0;
}

/* test_note - refusals go into the day's sketches, merged on disk. */
static void test_note(struct tap *t, struct ctx *c)
{
	static struct sketch_top top;
	static struct sketch_hll hll;
	char k[64];
	unsigned char *key;
	size_t len;
	int ok = 0;

	for (int i = 0; i < 3; i++)
		ok += queue_stats_note(c->q, c->today, "own-name", "192.0.2.7", "mx.campus.test") == 0;
	ok += queue_stats_note(c->q, c->today, "own-name", "192.0.2.8", NULL) == 0;
	ok += queue_stats_note(c->q, c->today, "relay", "192.0.2.9", NULL) == 0;
	TAP_OK(t, ok == 5, "note: 5 refusals noted");
	flush(c);
	TAP_OK(t, get_top(c->q, c->today, "sketch/helo", &top) == 0 && top.n == 1 &&
			  top_count(&top, "mx.campus.test") == 3,
	       "note: the HELO name's top has mx.campus.test 3 times");
	TAP_OK(t, get_top(c->q, c->today, "sketch/ip", &top) == 0 && top.n == 3 &&
			  top_count(&top, "192.0.2.7") == 3 && top_count(&top, "192.0.2.9") == 1,
	       "note: the address top has 192.0.2.7 3 times, 192.0.2.9 once");
	TAP_OK(t, get_hll(c->q, c->today, "own-name", &hll) == 0 && sketch_hll_exact(&hll) &&
			  sketch_hll_count(&hll) == 2,
	       "note: own-name came from exactly 2 addresses");
	queue_stats_note(c->q, c->today, "own-name", "192.0.2.10", "mx.campus.test");
	queue_stats_note(c->q, c->today, "own-name", "192.0.2.7", "MX.example");
	flush(c);
	TAP_OK(t, get_top(c->q, c->today, "sketch/helo", &top) == 0 &&
			  top_count(&top, "mx.campus.test") == 4 && top_count(&top, "MX.example") == 1,
	       "note: a second flush merges into the stored top");
	TAP_OK(t, get_hll(c->q, c->today, "own-name", &hll) == 0 && sketch_hll_count(&hll) == 3,
	       "note: ... and into the stored address sketch (3)");
	errno = 0;
	TAP_OK(t, queue_stats_note(c->q, c->today, "own/name", "192.0.2.7", NULL) < 0 &&
			  errno == EINVAL, "note: a rule with a slash is refused");
	TAP_OK(t, queue_stats_note(c->q, "2026", "relay", "192.0.2.7", NULL) < 0 && errno == EINVAL,
	       "note: a short day is refused");
	TAP_OK(t, queue_stats_note(c->q, c->today, "relay", NULL, NULL) < 0 && errno == EINVAL,
	       "note: no address is refused");
	queue_stats_note(c->q, c->today, "relay", "192.0.2.7", "a b");
	queue_stats_note(c->q, "20000101", "relay", "192.0.2.7", NULL);
	errno = 0;
	TAP_OK(t, queue_stats_note(c->q, "20000102", "relay", "192.0.2.7", NULL) < 0 &&
			  errno == ENOSPC, "note: a third day in one flush is dropped");
	flush(c);
	TAP_OK(t, get_top(c->q, c->today, "sketch/helo", &top) == 0 && top_count(&top, "a b") == 0,
	       "note: a name with a blank is not stored");
	/* A value that is not a sketch (a counter) is replaced, not merged. */
	queue_stats_add(c->q, key_of(k, sizeof(k), c->today, "sketch/clients/relay"), 7);
	flush(c);
	queue_stats_note(c->q, c->today, "relay", "192.0.2.7", NULL);
	flush(c);
	TAP_OK(t, get_hll(c->q, c->today, "relay", &hll) == 0 && sketch_hll_count(&hll) == 1,
	       "note: a malformed stored sketch is replaced");
	TAP_OK(t, queue_stats_get(c->q, QUEUE_STATS_HASH_KEY, (void **)&key, &len) == QUEUE_OK &&
			  len == 16,
	       "note: the spool's hash key is stored");
	if (len == 16) {
		uint64_t k0 = 0;

		for (int i = 0; i < 8; i++)
			k0 = k0 << 8 | key[i];
		TAP_OK(t, k0 == c->q->sketch_key[0] && c->q->sketch_key[0] != 0,
		       "note: ... and is the one in use");
	}
	free(key);
}

/* bound_fill - 8 days kept plus today, every rule, 3,000 distinct
 * 255-byte HELO names and addresses a day per rule, flushed every 2,000. */
static unsigned bound_fill(struct ctx *c)
{
	static const char *const rules[] = {
		"no-helo", "helo-syntax", "own-name", "own-address", "localhost", "non-fqdn",
		"under-own-name", "bare-ip", "literal-mismatch", "unresolvable", "no-rdns", "relay",
	};
	char name[SKETCH_NAME_MAX + 1], ip[64], day[QUEUE_STATS_DAY_LEN + 1];
	unsigned n = 0, ok = 0;

	memset(name, 'x', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	for (int d = 0; d <= 8; d++) {
		if (queue_stats_day(time(NULL), -d, day) < 0)
			abort();
		for (size_t r = 0; r < sizeof(rules) / sizeof(rules[0]); r++) {
			for (unsigned i = 0; i < 3000; i++, n++) {
				snprintf(name, 12, "%010u", n);
				name[10] = '.';
				snprintf(ip, sizeof(ip), "2001:db8:%x:%x::%x", n >> 16, n & 0xffff, d);
				ok += queue_stats_note(c->q, day, rules[r], ip, name) == 0;
				if (n % 2000 == 1999)
					flush(c);
			}
		}
	}
	flush(c);
	return n == ok ? n : 0;
}

/* test_note_bound - the most refusals can store, in a spool of its own:
 * stats.db stays under 2 MB. */
static void test_note_bound(struct tap *t)
{
	char dir[] = "/tmp/queue_stats_bound.XXXXXX", path[128], err[200] = "";
	struct ctx c = { 0 };
	struct stat st;
	unsigned n;

	if (mkdtemp(dir) == NULL || uv_loop_init(&c.loop) != 0)
		abort();
	snprintf(c.spool, sizeof(c.spool), "%s/spool", dir);
	c.q = queue_open(&(struct queue_options){ .spool_directory = c.spool }, err, sizeof(err));
	if (c.q == NULL || queue_writer_start(c.q, &c.loop, err, sizeof(err)) != 0) {
		TAP_OK(t, 0, "bound: a second spool (%s)", err);
		abort();
	}
	n = bound_fill(&c);
	TAP_OK(t, n > 0, "bound: %u refusals noted", n);
	queue_writer_stop(c.q);
	uv_run(&c.loop, UV_RUN_DEFAULT);
	queue_close(c.q);	/* the cache goes to the file */
	snprintf(path, sizeof(path), "%s/stats.db", c.spool);
	if (stat(path, &st) < 0)
		TAP_OK(t, 0, "bound: stat %s: %s", path, strerror(errno));
	else
		TAP_OK(t, st.st_size < 2 * 1024 * 1024, "bound: stats.db is %lld KB (< 2 MB)",
		       (long long)st.st_size / 1024);
	TAP_OK(t, uv_loop_close(&c.loop) == 0 && nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0,
	       "bound: spool removed");
}

/* ---- the key format (stats_key.c, pure) ---- */

/* round_trip - format then parse gives back what went in. */
static void round_trip(struct tap *t, enum queue_stats_kind kind, const char *rule,
		       unsigned bucket, const char *want)
{
	char key[QUEUE_STATS_KEY_MAX + 1];
	struct queue_stats_key k;
	int n = queue_stats_key_format(key, sizeof(key), "20261127", kind, rule, bucket);

	TAP_OK(t, n > 0 && strcmp(key, want) == 0 && (size_t)n == strlen(want),
	       "key format: %s", want);
	TAP_OK(t, n > 0 && queue_stats_key_parse(key, &k) == 0 && k.kind == kind &&
	       strcmp(k.day, "20261127") == 0 &&
	       (rule == NULL ? k.name == NULL :
		k.name_len == strlen(rule) && strncmp(k.name, rule, k.name_len) == 0) &&
	       (kind != QUEUE_STATS_COMMIT_SYNCS && kind < QUEUE_STATS_SLOT_MSGS ?
		k.bucket == 0 : k.bucket == bucket),
	       "key parse: %s", want);
}

/* parses_as - key parses (0) to kind, or is malformed (-1, kind < 0). */
static void parses_as(struct tap *t, const char *key, int kind, const char *label)
{
	struct queue_stats_key k;
	int rc = queue_stats_key_parse(key, &k);

	TAP_OK(t, kind < 0 ? rc == -1 : rc == 0 && k.kind == (enum queue_stats_kind)kind,
	       "key parse: %s (rc %d, kind %d)", label, rc, rc == 0 ? (int)k.kind : -1);
}

/* test_slot_keys - the ten-minute sender keys: every slot of the day
 * round-trips as HHMM; a slot that is no ten minutes of a day is not one. */
static void test_slot_keys(struct tap *t)
{
	static const enum queue_stats_kind sk[] = {
		QUEUE_STATS_SLOT_MSGS, QUEUE_STATS_SLOT_RCPTS, QUEUE_STATS_SLOT_QUOTA,
		QUEUE_STATS_SLOT_OWNER, QUEUE_STATS_SLOT_ADDRS,
	};
	char key[QUEUE_STATS_KEY_MAX + 1];
	struct queue_stats_key k;
	int ok = 1;

	for (size_t i = 0; i < sizeof(sk) / sizeof(sk[0]); i++)
		for (unsigned slot = 0; slot < QUEUE_STATS_SLOTS; slot++) {
			int n = queue_stats_key_format(key, sizeof(key), "20261204", sk[i], "alice",
						       slot);

			ok &= n > 0 && queue_stats_key_parse(key, &k) == 0 && k.kind == sk[i] &&
			      k.bucket == slot && k.name_len == 5 && strncmp(k.name, "alice", 5) == 0;
		}
	TAP_OK(t, ok, "key format: the five slot kinds round-trip in all 144 slots");
	round_trip(t, QUEUE_STATS_SLOT_MSGS, "alice", 0, "20261127/sender/0000/msgs/alice");
	round_trip(t, QUEUE_STATS_SLOT_ADDRS, "bob", 81, "20261127/sender/1330/addrs/bob");
	round_trip(t, QUEUE_STATS_SLOT_RCPTS, "[192.0.2.7]", QUEUE_STATS_SLOTS - 1,
		   "20261127/sender/2350/rcpts/[192.0.2.7]");
	TAP_OK(t, queue_stats_key_format(key, sizeof(key), "20261127", QUEUE_STATS_SLOT_MSGS,
					 "alice", QUEUE_STATS_SLOTS) < 0 &&
	       queue_stats_key_format(key, sizeof(key), "20261127", QUEUE_STATS_SLOT_MSGS,
				      "a/b", 3) < 0,
	       "key format: a slot past the day, or a sender with '/', is no key");
	TAP_OK(t, queue_stats_slot(0, key, &(unsigned){ 0 }) == 0 && strlen(key) == 8,
	       "queue_stats_slot: a date and a slot");
	parses_as(t, "20261127/sender/2400/msgs/a", QUEUE_STATS_OTHER, "slot 2400");
	parses_as(t, "20261127/sender/1305/msgs/a", QUEUE_STATS_OTHER, "slot 13:05");
	parses_as(t, "20261127/sender/1360/msgs/a", QUEUE_STATS_OTHER, "slot 13:60");
	parses_as(t, "20261127/sender/130/msgs/a", QUEUE_STATS_OTHER, "a 3-digit slot");
	parses_as(t, "20261127/sender/1300/msgs/", QUEUE_STATS_OTHER, "a slot without a sender");
	parses_as(t, "20261127/sender/1300/msgs/a/b", QUEUE_STATS_OTHER, "a sender with '/'");
	parses_as(t, "20261127/sender/1300/mail/a", QUEUE_STATS_OTHER, "an unknown counter");
}

/* test_key_format - every kind mtad writes round-trips; malformed keys
 * and unusable parts are refused; old keys still parse. */
static void test_key_format(struct tap *t)
{
	char key[QUEUE_STATS_KEY_MAX + 1], long_rule[QUEUE_STATS_KEY_MAX + 2];
	char too_long[QUEUE_STATS_KEY_MAX + 2], big[QUEUE_STATS_KEY_MAX + 16];
	struct queue_stats_key k;

	round_trip(t, QUEUE_STATS_REJECT, "own-name", 0, "20261127/reject/own-name");
	round_trip(t, QUEUE_STATS_CONN, "relay", 0, "20261127/conn/relay");
	round_trip(t, QUEUE_STATS_CLIENTS, "no-rdns", 0, "20261127/sketch/clients/no-rdns");
	round_trip(t, QUEUE_STATS_TOP_HELO, NULL, 0, "20261127/sketch/helo");
	round_trip(t, QUEUE_STATS_TOP_IP, NULL, 0, "20261127/sketch/ip");
	round_trip(t, QUEUE_STATS_ACCEPT_AUTH, NULL, 0, "20261127/accept/auth");
	round_trip(t, QUEUE_STATS_ACCEPT_UNAUTH, NULL, 0, "20261127/accept/unauth");
	round_trip(t, QUEUE_STATS_COMMIT_MESSAGES, NULL, 0, "20261127/commit/messages");
	round_trip(t, QUEUE_STATS_COMMIT_SYNCS, NULL, 0, "20261127/commit/syncs/1");
	round_trip(t, QUEUE_STATS_COMMIT_SYNCS, NULL, 3, "20261127/commit/syncs/8");
	round_trip(t, QUEUE_STATS_COMMIT_SYNCS, NULL, QUEUE_SYNC_BUCKETS - 1,
		   "20261127/commit/syncs/64");

	/* Every rule the policy has fits each per-rule key, and comes back
	 * as the name policy_rule_lookup knows. */
	for (int r = POLICY_ACCEPT + 1; r < POLICY_NRULES; r++) {
		const char *name = policy_rule_name((enum policy_rule)r);
		bool ok = true;

		for (int kind = QUEUE_STATS_REJECT; kind <= QUEUE_STATS_CLIENTS; kind++) {
			char n[QUEUE_STATS_RULE_MAX + 1];

			ok &= queue_stats_key_format(key, sizeof(key), "20261127",
						     (enum queue_stats_kind)kind, name, 0) > 0 &&
			      queue_stats_key_parse(key, &k) == 0 && (int)k.kind == kind &&
			      k.name_len <= QUEUE_STATS_RULE_MAX;
			if (ok)
				snprintf(n, sizeof(n), "%.*s", (int)k.name_len, k.name);
			ok &= ok && policy_rule_lookup(n) == r;
		}
		TAP_OK(t, ok, "key format: rule %s round-trips through policy_rule_lookup", name);
	}

	TAP_OK(t, queue_stats_key_format(key, sizeof(key), "20261127", QUEUE_STATS_DAY, NULL, 0) == 9 &&
	       strcmp(key, "20261127/") == 0, "key format: the day's prefix");
	TAP_OK(t, queue_stats_key_format(key, sizeof(key), "2026112", QUEUE_STATS_REJECT, "x", 0) < 0 &&
	       queue_stats_key_format(key, sizeof(key), "2026112x", QUEUE_STATS_ACCEPT_AUTH, NULL, 0) < 0 &&
	       queue_stats_key_format(key, sizeof(key), "202611270", QUEUE_STATS_ACCEPT_AUTH, NULL, 0) < 0 &&
	       queue_stats_key_format(key, sizeof(key), NULL, QUEUE_STATS_ACCEPT_AUTH, NULL, 0) < 0 &&
	       queue_stats_key_format(key, sizeof(key), "2026112", QUEUE_STATS_DAY, NULL, 0) < 0,
	       "key format: a day that is not 8 digits is refused");
	TAP_OK(t, queue_stats_key_format(key, sizeof(key), "20261127", QUEUE_STATS_REJECT, NULL, 0) < 0 &&
	       queue_stats_key_format(key, sizeof(key), "20261127", QUEUE_STATS_CONN, "", 0) < 0 &&
	       queue_stats_key_format(key, sizeof(key), "20261127", QUEUE_STATS_CLIENTS, "a/b", 0) < 0 &&
	       queue_stats_key_format(key, sizeof(key), "20261127", QUEUE_STATS_REJECT, "a b", 0) < 0 &&
	       queue_stats_key_format(key, sizeof(key), "20261127", QUEUE_STATS_REJECT, "caf\xc3\xa9", 0) < 0,
	       "key format: a rule that is empty, holds '/' or is not graphic ASCII is refused");
	memset(long_rule, 'r', sizeof(long_rule) - 1);
	long_rule[sizeof(long_rule) - 1] = '\0';
	long_rule[QUEUE_STATS_KEY_MAX - 16] = '\0';	/* "20261127/reject/" + this = the max */
	TAP_OK(t, queue_stats_key_format(key, sizeof(key), "20261127", QUEUE_STATS_REJECT,
					 long_rule, 0) == QUEUE_STATS_KEY_MAX,
	       "key format: a key of QUEUE_STATS_KEY_MAX bytes");
	long_rule[QUEUE_STATS_KEY_MAX - 16] = 'r';
	long_rule[QUEUE_STATS_KEY_MAX - 15] = '\0';
	TAP_OK(t, queue_stats_key_format(big, sizeof(big), "20261127", QUEUE_STATS_REJECT,
					 long_rule, 0) < 0 &&
	       queue_stats_key_format(key, 10, "20261127", QUEUE_STATS_ACCEPT_AUTH, NULL, 0) < 0 &&
	       queue_stats_key_format(key, 0, "20261127", QUEUE_STATS_ACCEPT_AUTH, NULL, 0) < 0,
	       "key format: a key too long for stats.db or for buf is refused");
	TAP_OK(t, queue_stats_key_format(key, sizeof(key), "20261127", QUEUE_STATS_COMMIT_SYNCS,
					 NULL, QUEUE_SYNC_BUCKETS) < 0 &&
	       queue_stats_key_format(key, sizeof(key), "20261127", QUEUE_STATS_OTHER, NULL, 0) < 0 &&
	       queue_stats_key_format(key, sizeof(key), "20261127", QUEUE_STATS_OLD_IP, "x", 0) < 0 &&
	       queue_stats_key_format(key, sizeof(key), "20261127", QUEUE_STATS_OLD_HELO, "x", 0) < 0 &&
	       queue_stats_key_format(key, sizeof(key), "20261127", (enum queue_stats_kind)99, NULL, 0) < 0,
	       "key format: a bucket out of range and kinds never written are refused");

	/* Keys written before issue 11: read, never written. */
	TAP_OK(t, queue_stats_key_parse("20261127/ip/own-name/192.0.2.1", &k) == 0 &&
	       k.kind == QUEUE_STATS_OLD_IP && k.name_len == 8 &&
	       strncmp(k.name, "own-name", 8) == 0 && strcmp(k.ip, "192.0.2.1") == 0,
	       "key parse: ip/RULE/IP");
	TAP_OK(t, queue_stats_key_parse("20261127/helo/a/b", &k) == 0 &&
	       k.kind == QUEUE_STATS_OLD_HELO && strcmp(k.name, "a/b") == 0 && k.name_len == 3,
	       "key parse: helo/NAME (a name may hold '/')");
	parses_as(t, "20261127/ip/192.0.2.1", QUEUE_STATS_OTHER, "ip/ without a rule");
	parses_as(t, "20261127/ip//192.0.2.1", QUEUE_STATS_OTHER, "ip/ with an empty rule");
	parses_as(t, "20261127/ip/own-name/", QUEUE_STATS_OTHER, "ip/ without an address");
	parses_as(t, "20261127/helo/", QUEUE_STATS_OTHER, "helo/ without a name");
	parses_as(t, "20261127/reject/", QUEUE_STATS_OTHER, "reject/ without a rule");
	parses_as(t, "20261127/conn/a/b", QUEUE_STATS_OTHER, "conn/ with two segments");
	parses_as(t, "20261127/sketch/clients/", QUEUE_STATS_OTHER, "sketch/clients/ without a rule");
	parses_as(t, "20261127/commit/syncs/3", QUEUE_STATS_OTHER, "syncs/3: not a bucket");
	{
		static const enum queue_stats_kind sk[] = {
			QUEUE_STATS_SENDER_MSGS, QUEUE_STATS_SENDER_RCPTS, QUEUE_STATS_SENDER_QUOTA,
			QUEUE_STATS_SENDER_OWNER, QUEUE_STATS_SENDER_ADDRS,
		};
		int ok = 1;

		for (size_t i = 0; i < sizeof(sk) / sizeof(sk[0]); i++) {
			int n = queue_stats_key_format(key, sizeof(key), "20261204", sk[i],
						       "alice@mx.campus.test", 0);

			ok &= n > 0 && queue_stats_key_parse(key, &k) == 0 && k.kind == sk[i] &&
			      k.name_len == 20 && strncmp(k.name, "alice@mx.campus.test", 20) == 0;
		}
		TAP_OK(t, ok, "key format: the five sender/ kinds round-trip (%s)", key);
		TAP_OK(t, queue_stats_key_format(key, sizeof(key), "20261204", QUEUE_STATS_SENDER_MSGS,
						 "a/b", 0) < 0 &&
		       queue_stats_key_format(key, sizeof(key), "20261204", QUEUE_STATS_SENDER_MSGS,
					      "a b", 0) < 0,
		       "key format: a sender with '/' or a blank is no key");
		parses_as(t, "20261204/sender/msgs/[192.0.2.7]", QUEUE_STATS_SENDER_MSGS,
			  "sender/msgs/[address]");
	}
	test_slot_keys(t);
	parses_as(t, "20261127/commit/syncs/128", QUEUE_STATS_OTHER, "syncs/128: past the buckets");
	parses_as(t, "20261127/commit/syncs/01", QUEUE_STATS_OTHER, "syncs/01: not as written");
	parses_as(t, "20261127/accept/authx", QUEUE_STATS_OTHER, "accept/authx");
	parses_as(t, "20261127/whatever", QUEUE_STATS_OTHER, "an unknown kind");

	/* Malformed: refused, whoever wrote them. */
	parses_as(t, "2026112/reject/x", -1, "a 7-digit day");
	parses_as(t, "2026112x/reject/x", -1, "a day that is not digits");
	parses_as(t, "20261127reject/x", -1, "no '/' after the day");
	parses_as(t, "20261127/", -1, "only the day's prefix");
	parses_as(t, "", -1, "the empty key");
	parses_as(t, "20261127/reject/a b", -1, "a blank");
	parses_as(t, "20261127/reject/a\tb", -1, "a control character");
	parses_as(t, "20261127/helo/caf\xc3\xa9", -1, "an 8-bit byte");
	parses_as(t, QUEUE_STATS_HASH_KEY, -1, "the hash key (no day)");
	memset(too_long, 'x', sizeof(too_long) - 1);
	too_long[sizeof(too_long) - 1] = '\0';
	memcpy(too_long, "20261127/helo/", 14);
	parses_as(t, too_long, -1, "a key of QUEUE_STATS_KEY_MAX + 1 bytes");
	too_long[QUEUE_STATS_KEY_MAX] = '\0';
	parses_as(t, too_long, QUEUE_STATS_OLD_HELO, "a key of QUEUE_STATS_KEY_MAX bytes");
	TAP_OK(t, queue_stats_key_parse(NULL, &k) == -1, "key parse: NULL");
}

int main(void)
{
	char dir[] = "/tmp/queue_stats.XXXXXX", err[200] = "";
	struct ctx c = { 0 };
	struct tap t = { 0 };

	if (mkdtemp(dir) == NULL || uv_loop_init(&c.loop) != 0 ||
	    queue_stats_day(time(NULL), 0, c.today) < 0)
		abort();
	snprintf(c.spool, sizeof(c.spool), "%s/spool", dir);
	c.q = queue_open(&(struct queue_options){ .spool_directory = c.spool }, err, sizeof(err));
	TAP_OK(&t, c.q != NULL, "queue_open creates %s (%s)", c.spool, err);
	if (c.q == NULL)
		return tap_done(&t);
	TAP_OK(&t, c.q->opt.stats_keep_days == 8, "stats_keep_days defaults to 8");
	TAP_OK(&t, stat_rows(c.q, "") == 0, "a new stats.db is empty");
	TAP_OK(&t, queue_stats_add(c.q, "20261127/reject/own-name", 1) == -1 && errno == ESHUTDOWN,
	       "adds need the writer");
	TAP_OK(&t, queue_writer_start(c.q, &c.loop, err, sizeof(err)) == 0, "writer started");
	test_sum(&t, &c);
	test_keys(&t, &c);
	test_bound(&t, &c);
	test_timer(&t, &c);
	test_expire(&t, &c);
	test_concurrent(&t, &c);
	test_note(&t, &c);
	test_note_bound(&t);
	test_reopen(&t, &c);
	test_key_format(&t);
	queue_close(c.q);
	TAP_OK(&t, uv_loop_close(&c.loop) == 0, "loop closes: no handle left behind");
	TAP_OK(&t, nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0, "temp directory removed");
	return tap_done(&t);
}
