/*
 * stats.c - persistent statistics counters (stats.db): the in-memory
 * table the loop thread adds to, the transaction the writer thread
 * applies it with, daily expiry, and iteration for mtaq.
 *
 * On disk: stats.db, a btree in the queue's environment. Key = the
 * counter name without a NUL ("20261127/reject/own-name"; its format is
 * stats_key.c's, and so is the check every key passes); value = the
 * count as 8 bytes, big-endian (the same on every machine, so a spool
 * can be read elsewhere); a sketch's value is its encoding (sketch.c).
 * Keys start with the day, so one day's
 * counters are adjacent, days sort in order, and expiry deletes from
 * the first key up to the first kept day.
 *
 * Flow: queue_stats_add (loop thread, no I/O) sums deltas in a bounded
 * hash table owned by the queue (struct queue.stats_pending). About once
 * a second writer.c detaches it (queue_stats_take) and the writer thread
 * adds each key to stats.db in one transaction (queue_stats_apply),
 * after the message batch it arrived with is flushed and reported, so a
 * message's 250 never waits for statistics. The transaction commits with
 * DB_TXN_WRITE_NOSYNC: no sync of its own, but the log record is in the
 * kernel once the commit returns, so a killed mtad loses at most the
 * table not yet handed over (~1 s); a power failure can also lose what
 * no later message flush or checkpoint synced. Acceptable for statistics.
 *
 * What clients choose (HELO names, client addresses) never becomes a
 * key: queue_stats_note adds it to the table's per-day sketches
 * (sketch.c: a top-K of names, a top-K of addresses, a HyperLogLog of
 * addresses per rule), and the apply transaction merges each into the
 * stored sketch of its day, so stats.db holds a fixed number of keys of
 * bounded size per day whatever clients send. The address hash uses the
 * spool's random key (QUEUE_STATS_HASH_KEY, made once), so the sketches
 * of one day from before and after a restart merge, and clients cannot
 * choose addresses that collide. The counter table is still keyed with a
 * random SipHash key per table and never holds more than
 * QUEUE_STATS_MAX_PENDING keys; updates beyond that, and sketch updates
 * beyond QUEUE_STATS_SKETCH_DAYS days or QUEUE_STATS_SKETCH_RULES rules
 * a flush, are dropped, counted and logged once per flush.
 *
 * Must not: do I/O in queue_stats_add or queue_stats_note, trust a key's caller (every key
 * is checked here and again when read back), or hold locks while
 * queue_stats_foreach's callback runs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util/util.h"
#include "queue/queue_impl.h"
#include "queue/sketch_impl.h"

/* Rows copied per read transaction in queue_stats_foreach. */
#define STATS_BATCH 256
/* Keys deleted per expiry transaction: bounds its locks and log. */
#define STATS_EXPIRE_BATCH 1000
/* Initial table sizes (both grow by doubling). */
#define STATS_MIN_ENTRIES 64
#define STATS_MIN_SLOTS 128

struct stats_entry {
	char *key;
	size_t len;
	uint64_t hash;
	uint64_t delta;
};

/* One rule's distinct client addresses on one day. */
struct stats_rule_hll {
	char rule[QUEUE_STATS_RULE_MAX + 1];
	struct sketch_hll hll;
};

/* One day's summaries of what clients chose (~115 KB in memory with
 * every rule). */
struct stats_day {
	char day[QUEUE_STATS_DAY_LEN + 1];
	struct sketch_top helo, ip;
	struct stats_rule_hll *rule[QUEUE_STATS_SKETCH_RULES];
	size_t nrules;
};

struct queue_stats_table {
	uint64_t seed[2];	/* SipHash key, random per table */
	/* Sketches by day: more than one only around midnight. */
	struct stats_day *day[QUEUE_STATS_SKETCH_DAYS];
	size_t ndays;
	struct stats_entry *ent;	/* dense, in insertion order */
	size_t n, cap;
	uint32_t *slot;		/* open addressing: index + 1 into ent, 0 = empty */
	size_t nslots;		/* a power of two */
	uint64_t dropped;	/* updates refused since the table was made */
};

/* ---- the in-memory table (loop thread) ---- */

/* stats_hash - SipHash-1-3 of the key under the table's random key. */
static uint64_t stats_hash(const uint64_t k[2], const char *key, size_t len)
{
	return sketch_hash(k, key, len);
}

/* stats_table_new - an empty table with a fresh hash key; NULL on ENOMEM. */
static struct queue_stats_table *stats_table_new(void)
{
	struct queue_stats_table *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->ent = calloc(STATS_MIN_ENTRIES, sizeof(*t->ent));
	t->slot = calloc(STATS_MIN_SLOTS, sizeof(*t->slot));
	if (t->ent == NULL || t->slot == NULL) {
		queue_stats_table_free(t);
		return NULL;
	}
	t->cap = STATS_MIN_ENTRIES;
	t->nslots = STATS_MIN_SLOTS;
	/* Without the random source, the clock and an address still keep
	 * the key unknown to a remote client in practice. */
	if (getrandom(t->seed, sizeof(t->seed), GRND_NONBLOCK) != (ssize_t)sizeof(t->seed)) {
		t->seed[0] = uv_hrtime();
		t->seed[1] = (uint64_t)(uintptr_t)t ^ ((uint64_t)time(NULL) << 20);
	}
	return t;
}

/* queue_stats_table_free - see queue_impl.h. */
void queue_stats_table_free(struct queue_stats_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++)
		free(t->ent[i].key);
	for (size_t d = 0; d < t->ndays; d++) {
		for (size_t r = 0; r < t->day[d]->nrules; r++)
			free(t->day[d]->rule[r]);
		free(t->day[d]);
	}
	free(t->ent);
	free(t->slot);
	free(t);
}

/* queue_stats_table_size - see queue_impl.h. */
size_t queue_stats_table_size(const struct queue_stats_table *t)
{
	return t == NULL ? 0 : t->n;
}

/* stats_find - the slot holding key, or the empty slot where it would go. */
static uint32_t *stats_find(struct queue_stats_table *t, const char *key, size_t len,
			    uint64_t hash)
{
	size_t mask = t->nslots - 1;

	for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
		struct stats_entry *e;

		if (t->slot[i] == 0)
			return &t->slot[i];
		e = &t->ent[t->slot[i] - 1];
		if (e->hash == hash && e->len == len && memcmp(e->key, key, len) == 0)
			return &t->slot[i];
	}
}

/* stats_grow - room for one more key: entries doubled when full, slots
 * doubled (and rehashed) above a 3/4 load. -1 on ENOMEM. */
static int stats_grow(struct queue_stats_table *t)
{
	if (t->n == t->cap) {
		size_t cap = t->cap * 2;
		struct stats_entry *ent = realloc(t->ent, cap * sizeof(*ent));

		if (ent == NULL)
			return -1;
		t->ent = ent;
		t->cap = cap;
	}
	if ((t->n + 1) * 4 > t->nslots * 3) {
		size_t nslots = t->nslots * 2;
		uint32_t *slot = calloc(nslots, sizeof(*slot));

		if (slot == NULL)
			return -1;
		free(t->slot);
		t->slot = slot;
		t->nslots = nslots;
		for (size_t i = 0; i < t->n; i++)
			*stats_find(t, t->ent[i].key, t->ent[i].len, t->ent[i].hash) = (uint32_t)(i + 1);
	}
	return 0;
}

/* stats_table_add - adds delta to key (saturating); -1 with errno when dropped. */
static int stats_table_add(struct queue_stats_table *t, const char *key, size_t len,
			   uint64_t delta)
{
	uint64_t hash = stats_hash(t->seed, key, len);
	uint32_t *slot = stats_find(t, key, len, hash);
	struct stats_entry *e;

	if (*slot != 0) {
		e = &t->ent[*slot - 1];
		e->delta = e->delta > UINT64_MAX - delta ? UINT64_MAX : e->delta + delta;
		return 0;
	}
	if (t->n >= QUEUE_STATS_MAX_PENDING) {
		t->dropped++;
		errno = ENOSPC;
		return -1;
	}
	if (stats_grow(t) < 0) {
		t->dropped++;
		errno = ENOMEM;
		return -1;
	}
	e = &t->ent[t->n];
	if ((e->key = malloc(len + 1)) == NULL) {
		t->dropped++;
		errno = ENOMEM;
		return -1;
	}
	memcpy(e->key, key, len + 1);
	e->len = len;
	e->hash = hash;
	e->delta = delta;
	/* The slot array may have been rebuilt by stats_grow. */
	*stats_find(t, key, len, hash) = (uint32_t)(++t->n);
	return 0;
}

/* stats_add - queue_stats_add under the lock. */
static int stats_add(struct queue *q, const char *key, uint64_t delta)
{
	size_t len;

	if (key == NULL || (len = queue_stats_key_len(key, QUEUE_STATS_KEY_MAX)) == 0) {
		errno = EINVAL;
		return -1;
	}
	if (q->writer == NULL) {
		errno = ESHUTDOWN;
		return -1;
	}
	if (delta == 0)
		return 0;
	if (q->stats_pending == NULL && (q->stats_pending = stats_table_new()) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	return stats_table_add(q->stats_pending, key, len, delta);
}

/* stats_day_of - the table's sketches of day, made when new; NULL
 * (errno set) past QUEUE_STATS_SKETCH_DAYS or out of memory. */
static struct stats_day *stats_day_of(struct queue_stats_table *t, const char *day)
{
	struct stats_day *d;

	for (size_t i = 0; i < t->ndays; i++)
		if (strcmp(t->day[i]->day, day) == 0)
			return t->day[i];
	if (t->ndays == QUEUE_STATS_SKETCH_DAYS) {
		errno = ENOSPC;
		return NULL;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	memcpy(d->day, day, QUEUE_STATS_DAY_LEN);
	sketch_top_init(&d->helo);
	sketch_top_init(&d->ip);
	t->day[t->ndays++] = d;
	return d;
}

/* stats_rule_of - the day's address sketch of rule, made when new; NULL
 * (errno set) past QUEUE_STATS_SKETCH_RULES or out of memory. */
static struct sketch_hll *stats_rule_of(struct stats_day *d, const char *rule)
{
	struct stats_rule_hll *r;

	for (size_t i = 0; i < d->nrules; i++)
		if (strcmp(d->rule[i]->rule, rule) == 0)
			return &d->rule[i]->hll;
	if (d->nrules == QUEUE_STATS_SKETCH_RULES) {
		errno = ENOSPC;
		return NULL;
	}
	if ((r = malloc(sizeof(*r))) == NULL)
		return NULL;
	snprintf(r->rule, sizeof(r->rule), "%s", rule);
	sketch_hll_init(&r->hll);
	d->rule[d->nrules++] = r;
	return &r->hll;
}

/* stats_note_ok - are the day and the rule usable in keys? */
static bool stats_note_ok(const char *day, const char *rule)
{
	char key[QUEUE_STATS_KEY_MAX + 1];

	if (strnlen(rule, QUEUE_STATS_RULE_MAX + 1) > QUEUE_STATS_RULE_MAX)
		return false;
	return queue_stats_key_format(key, sizeof(key), day, QUEUE_STATS_CLIENTS, rule, 0) > 0;
}

/* stats_note - queue_stats_note under the lock. */
static int stats_note(struct queue *q, const char *day, const char *rule, const char *ip,
		      const char *helo)
{
	struct queue_stats_table *t;
	struct stats_day *d;
	struct sketch_hll *h;

	if (day == NULL || rule == NULL || ip == NULL || !stats_note_ok(day, rule)) {
		errno = EINVAL;
		return -1;
	}
	if (q->writer == NULL) {
		errno = ESHUTDOWN;
		return -1;
	}
	if (q->stats_pending == NULL && (q->stats_pending = stats_table_new()) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	t = q->stats_pending;
	if ((d = stats_day_of(t, day)) == NULL || (h = stats_rule_of(d, rule)) == NULL) {
		t->dropped++;
		return -1;
	}
	sketch_hll_add(h, sketch_hash(q->sketch_key, ip, strnlen(ip, QUEUE_STATS_KEY_MAX)));
	/* Names that are not graphic ASCII are the caller's to clean;
	 * sketch_top_add refuses them rather than store them. */
	if (ip[0] != '\0' && sketch_top_add(&d->ip, ip, 1) < 0)
		t->dropped++;
	if (helo != NULL && helo[0] != '\0' && sketch_top_add(&d->helo, helo, 1) < 0)
		t->dropped++;
	return 0;
}

/* queue_stats_add - see queue.h; any event loop. */
int queue_stats_add(struct queue *q, const char *key, uint64_t delta)
{
	int rc;

	uv_mutex_lock(&q->stats_lock);
	rc = stats_add(q, key, delta);
	uv_mutex_unlock(&q->stats_lock);
	return rc;
}

/* queue_stats_note - see queue.h; any event loop. */
int queue_stats_note(struct queue *q, const char *day, const char *rule, const char *ip,
		     const char *helo)
{
	int rc;

	uv_mutex_lock(&q->stats_lock);
	rc = stats_note(q, day, rule, ip, helo);
	uv_mutex_unlock(&q->stats_lock);
	return rc;
}

/* stats_take - the pending table, handed over whole (under the lock). */
static struct queue_stats_table *stats_take(struct queue *q)
{
	struct queue_stats_table *t = q->stats_pending;

	if (t == NULL || (t->n == 0 && t->ndays == 0 && t->dropped == 0))
		return NULL;
	q->stats_pending = NULL;
	return t;
}

/* queue_stats_take - see queue_impl.h. */
struct queue_stats_table *queue_stats_take(struct queue *q)
{
	struct queue_stats_table *t;

	uv_mutex_lock(&q->stats_lock);
	t = stats_take(q);
	uv_mutex_unlock(&q->stats_lock);
	if (t == NULL)
		return NULL;
	if (t->dropped > 0)
		mtad_log(MTAD_LOG_WARNING,
			 "queue: statistics: %llu counter updates dropped (more than %d distinct "
			 "keys in one flush, a name that cannot be stored, or out of memory)",
			 (unsigned long long)t->dropped, QUEUE_STATS_MAX_PENDING);
	if (t->n == 0 && t->ndays == 0) {
		queue_stats_table_free(t);
		return NULL;
	}
	return t;
}

/* ---- writing (writer thread) ---- */

/* stats_entry_cmp - qsort order: by key, so pages are visited in order. */
static int stats_entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct stats_entry *)a)->key, ((const struct stats_entry *)b)->key);
}

/* What one STATS transaction works with: the table, and room to merge
 * a stored sketch (too big for the writer's stack). */
struct stats_apply {
	struct queue_stats_table *t;
	struct sketch_top top;
	struct sketch_hll hll;
	unsigned char buf[SKETCH_TOP_ENCODED_MAX > SKETCH_HLL_ENCODED_MAX ? SKETCH_TOP_ENCODED_MAX
									 : SKETCH_HLL_ENCODED_MAX];
};

/* stats_blob_get - the stored sketch under key into a->buf: its length,
 * 0 when there is none (or it is not one we can read: logged, replaced),
 * or -1 with the Berkeley DB error in *rc. */
static long stats_blob_get(struct queue *q, DB_TXN *txn, struct stats_apply *a, DBT *key,
			   int *rc)
{
	DBT data = { .data = a->buf, .ulen = sizeof(a->buf), .flags = DB_DBT_USERMEM };

	*rc = q->stats->get(q->stats, txn, key, &data, DB_RMW);
	if (*rc == 0)
		return (long)data.size;
	if (*rc == DB_NOTFOUND || *rc == DB_BUFFER_SMALL) {
		if (*rc == DB_BUFFER_SMALL)
			mtad_log(MTAD_LOG_WARNING, "queue: statistics: %.*s is too big, replaced",
				 (int)key->size, (char *)key->data);
		*rc = 0;
		return 0;
	}
	return -1;
}

/* stats_blob_put - stores len bytes of a->buf under key. */
static int stats_blob_put(struct queue *q, DB_TXN *txn, struct stats_apply *a, DBT *key,
			  size_t len)
{
	DBT data = { .data = a->buf, .size = (uint32_t)len };

	return q->stats->put(q->stats, txn, key, &data, 0);
}

/* stats_malformed - a stored sketch we cannot decode: logged, replaced. */
static void stats_malformed(const char *key)
{
	mtad_log(MTAD_LOG_WARNING, "queue: statistics: %s is not a well-formed sketch, replaced",
		 key);
}

/* stats_merge_top - merges a pending top-K into the day's stored one. */
static int stats_merge_top(struct queue *q, DB_TXN *txn, struct stats_apply *a,
			   const char *day, enum queue_stats_kind what, const struct sketch_top *add)
{
	char k[QUEUE_STATS_KEY_MAX + 1];
	int klen = queue_stats_key_format(k, sizeof(k), day, what, NULL, 0);
	DBT key = { .data = k, .size = (uint32_t)klen };
	int rc;
	long len;

	if (klen < 0)
		return 0;	/* not reached: queue_stats_note checked the day */
	if ((len = stats_blob_get(q, txn, a, &key, &rc)) < 0)
		return rc;
	if (len == 0 || sketch_top_decode(&a->top, a->buf, (size_t)len) < 0) {
		if (len > 0)
			stats_malformed(k);
		sketch_top_init(&a->top);
	}
	sketch_top_merge(&a->top, add);
	return stats_blob_put(q, txn, a, &key, sketch_top_encode(&a->top, a->buf, sizeof(a->buf)));
}

/* stats_merge_hll - merges a pending address sketch into the day's stored one. */
static int stats_merge_hll(struct queue *q, DB_TXN *txn, struct stats_apply *a,
			   const char *day, const struct stats_rule_hll *add)
{
	char k[QUEUE_STATS_KEY_MAX + 1];
	int klen = queue_stats_key_format(k, sizeof(k), day, QUEUE_STATS_CLIENTS, add->rule, 0);
	DBT key = { .data = k, .size = (uint32_t)klen };
	int rc;
	long len;

	if (klen < 0)
		return 0;	/* not reached: queue_stats_note checked day and rule */
	if ((len = stats_blob_get(q, txn, a, &key, &rc)) < 0)
		return rc;
	if (len == 0 || sketch_hll_decode(&a->hll, a->buf, (size_t)len) < 0) {
		if (len > 0)
			stats_malformed(k);
		sketch_hll_init(&a->hll);
	}
	sketch_hll_merge(&a->hll, &add->hll);
	return stats_blob_put(q, txn, a, &key, sketch_hll_encode(&a->hll, a->buf, sizeof(a->buf)));
}

/* stats_apply_sketches - every day's sketches of the table, merged. */
static int stats_apply_sketches(struct queue *q, DB_TXN *txn, struct stats_apply *a)
{
	for (size_t i = 0; i < a->t->ndays; i++) {
		const struct stats_day *d = a->t->day[i];
		int rc = 0;

		if (d->helo.n > 0)
			rc = stats_merge_top(q, txn, a, d->day, QUEUE_STATS_TOP_HELO, &d->helo);
		if (rc == 0 && d->ip.n > 0)
			rc = stats_merge_top(q, txn, a, d->day, QUEUE_STATS_TOP_IP, &d->ip);
		for (size_t r = 0; rc == 0 && r < d->nrules; r++)
			rc = stats_merge_hll(q, txn, a, d->day, d->rule[r]);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* stats_apply_txn - adds every delta of the table, then merges its
 * sketches (a txn fn: the stored values are read again on a retry). */
static int stats_apply_txn(struct queue *q, DB_TXN *txn, void *arg)
{
	struct stats_apply *a = arg;
	struct queue_stats_table *t = a->t;

	for (size_t i = 0; i < t->n; i++) {
		const struct stats_entry *e = &t->ent[i];
		unsigned char buf[8];
		DBT key = { .data = e->key, .size = (uint32_t)e->len };
		DBT data = { .data = buf, .ulen = sizeof(buf), .flags = DB_DBT_USERMEM };
		uint64_t v = 0;
		int rc = q->stats->get(q->stats, txn, &key, &data, DB_RMW);

		if (rc == 0 && data.size == sizeof(buf))
			v = sketch_get64(buf);
		else if (rc == 0 || rc == DB_BUFFER_SMALL)	/* not ours: start over */
			mtad_log(MTAD_LOG_WARNING, "queue: statistics: %s had a malformed value",
				 e->key);
		else if (rc != DB_NOTFOUND)
			return rc;
		v = v > UINT64_MAX - e->delta ? UINT64_MAX : v + e->delta;
		sketch_put64(buf, v);
		data = (DBT){ .data = buf, .size = sizeof(buf) };
		if ((rc = q->stats->put(q->stats, txn, &key, &data, 0)) != 0)
			return rc;
	}
	return stats_apply_sketches(q, txn, a);
}

/* queue_stats_apply - see queue_impl.h. The table's hash index is not
 * used after this, so the entries may be reordered. */
int queue_stats_apply(struct queue *q, struct queue_stats_table *t)
{
	struct stats_apply *a = malloc(sizeof(*a));
	int rc;

	if (a == NULL)
		return ENOMEM;
	a->t = t;
	qsort(t->ent, t->n, sizeof(*t->ent), stats_entry_cmp);
	rc = queue_txn_run(q, 0, DB_TXN_WRITE_NOSYNC, stats_apply_txn, a);
	free(a);
	return rc;
}

/* stats_key_txn - reads the sketch hash key, storing a new one when
 * there is none (a txn fn). */
static int stats_key_txn(struct queue *q, DB_TXN *txn, void *arg)
{
	unsigned char buf[16];
	DBT key = { .data = (void *)QUEUE_STATS_HASH_KEY, .size = sizeof(QUEUE_STATS_HASH_KEY) - 1 };
	DBT data = { .data = buf, .ulen = sizeof(buf), .flags = DB_DBT_USERMEM };
	uint64_t *k = arg;
	int rc = q->stats->get(q->stats, txn, &key, &data, DB_RMW);

	if (rc == 0 && data.size == sizeof(buf)) {
		k[0] = sketch_get64(buf);
		k[1] = sketch_get64(buf + 8);
		return 0;
	}
	if (rc != 0 && rc != DB_NOTFOUND && rc != DB_BUFFER_SMALL)
		return rc;
	if (getrandom(buf, sizeof(buf), 0) != (ssize_t)sizeof(buf))
		return errno ? errno : EIO;
	k[0] = sketch_get64(buf);
	k[1] = sketch_get64(buf + 8);
	data = (DBT){ .data = buf, .size = sizeof(buf) };
	return q->stats->put(q->stats, txn, &key, &data, 0);
}

/* queue_stats_key_load - see queue_impl.h. */
int queue_stats_key_load(struct queue *q)
{
	uint64_t k[2];
	int rc = queue_txn_run(q, 0, DB_TXN_WRITE_NOSYNC, stats_key_txn, k);

	if (rc != 0)
		return rc;
	q->sketch_key[0] = k[0];
	q->sketch_key[1] = k[1];
	return 0;
}

/* Days before yesterday whose ten-minute sender keys are looked for. */
#define STATS_SLOT_DAYS 31

/* One expiry: the keys from lo (the first key when empty) up to, not
 * including, hi. */
struct stats_expire {
	char lo[QUEUE_STATS_DAY_LEN + 16];
	char hi[QUEUE_STATS_DAY_LEN + 16];
	size_t max;		/* keys this transaction may delete */
	DBT key;		/* DB_DBT_REALLOC buffer, reused */
	size_t removed;		/* by the last transaction */
	bool end;
};

/* stats_closecur - closes a cursor, keeping the first error. */
static int stats_closecur(DBC *c, int rc)
{
	int crc = c->close(c);

	return rc != 0 ? rc : crc;
}

/* stats_before - does the key sort before hi? */
static bool stats_before(const DBT *key, const char *hi)
{
	size_t hlen = strlen(hi), n = key->size < hlen ? key->size : hlen;
	int cmp = memcmp(key->data, hi, n);

	return cmp < 0 || (cmp == 0 && key->size < hlen);
}

/* stats_first - positions c on the first key at or after lo. */
static int stats_first(DBC *c, struct stats_expire *x, DBT *data)
{
	size_t len = strlen(x->lo);

	if (len == 0)
		return c->get(c, &x->key, data, DB_FIRST | DB_RMW);
	/* DB_SET_RANGE reads the search key from x->key, then overwrites it. */
	free(x->key.data);
	if (!(x->key.data = strdup(x->lo)))
		return ENOMEM;
	x->key.size = (u_int32_t)len;
	return c->get(c, &x->key, data, DB_SET_RANGE | DB_RMW);
}

/* stats_expire_txn - deletes up to x->max keys of [lo, hi). */
static int stats_expire_txn(struct queue *q, DB_TXN *txn, void *arg)
{
	struct stats_expire *x = arg;
	DBT data = { .flags = DB_DBT_USERMEM | DB_DBT_PARTIAL };
	DBC *c;
	int rc;

	x->removed = 0;
	x->end = false;
	if ((rc = q->stats->cursor(q->stats, txn, &c, 0)) != 0)
		return rc;
	rc = stats_first(c, x, &data);
	while (rc == 0 && x->removed < x->max) {
		if (!stats_before(&x->key, x->hi)) {
			x->end = true;
			break;
		}
		if ((rc = c->del(c, 0)) != 0)
			break;
		x->removed++;
		rc = c->get(c, &x->key, &data, DB_NEXT | DB_RMW);
	}
	if (rc == DB_NOTFOUND) {
		x->end = true;
		rc = 0;
	}
	return stats_closecur(c, rc);
}

/* stats_expire_range - deletes [x->lo, x->hi) in transactions of at most
 * STATS_EXPIRE_BATCH keys, and at most limit keys in all (0: no limit),
 * counting into *removed. */
static int stats_expire_range(struct queue *q, struct stats_expire *x, size_t limit,
			      size_t *removed)
{
	int rc;

	do {
		x->max = STATS_EXPIRE_BATCH;
		if (limit != 0 && limit - *removed < x->max)
			x->max = limit - *removed;
		rc = queue_txn_run(q, 0, DB_TXN_WRITE_NOSYNC, stats_expire_txn, x);
		if (rc == 0)
			*removed += x->removed;
	} while (rc == 0 && !x->end && (limit == 0 || *removed < limit));
	return rc;
}

/* queue_stats_expire - see queue_impl.h. First whole days, then the
 * ten-minute sender keys of the days before yesterday still kept. */
int queue_stats_expire(struct queue *q, time_t now, size_t limit, size_t *removed)
{
	struct stats_expire x = { .key = { .flags = DB_DBT_REALLOC } };
	unsigned keep = q->opt.stats_keep_days < 36500 ? q->opt.stats_keep_days : 36500;
	int rc;

	*removed = 0;
	if (queue_stats_day(now, -(int)keep, x.hi) < 0)
		return EINVAL;
	rc = stats_expire_range(q, &x, limit, removed);
	for (unsigned ago = 2; rc == 0 && ago <= keep && ago < 2 + STATS_SLOT_DAYS &&
	     (limit == 0 || *removed < limit); ago++) {
		char day[QUEUE_STATS_DAY_LEN + 1];

		if (queue_stats_day(now, -(int)ago, day) < 0) {
			rc = EINVAL;
			break;
		}
		/* "D/sender/0" .. "D/sender/9...": the slots sort before ':'. */
		snprintf(x.lo, sizeof(x.lo), "%s/sender/0", day);
		snprintf(x.hi, sizeof(x.hi), "%s/sender/:", day);
		rc = stats_expire_range(q, &x, limit, removed);
	}
	free(x.key.data);
	return rc;
}

/* ---- reading (any thread; mtaq) ---- */

struct stats_row {
	char key[QUEUE_STATS_KEY_MAX + 1];
	uint64_t value;
};

struct stats_scan {
	const char *prefix;
	size_t plen;
	unsigned char *after;	/* last key of the batches before, NULL at the start */
	size_t afterlen;
	unsigned char *last;	/* last key of this batch: after, once it committed */
	size_t lastlen;
	struct stats_row row[STATS_BATCH];
	size_t n;
	bool end;
};

/* stats_keep_row - copies a well-formed row into the batch. */
static void stats_keep_row(struct stats_scan *s, const DBT *key, const DBT *data)
{
	struct stats_row *r = &s->row[s->n];

	if (key->size > QUEUE_STATS_KEY_MAX || data->size != 8)
		return;
	memcpy(r->key, key->data, key->size);
	r->key[key->size] = '\0';
	if (queue_stats_key_len(r->key, QUEUE_STATS_KEY_MAX) != key->size)
		return;
	r->value = sketch_get64(data->data);
	s->n++;
}

/* stats_remember - keeps key as the place the next batch starts after. */
static int stats_remember(struct stats_scan *s, const DBT *key)
{
	unsigned char *p = malloc(key->size ? key->size : 1);

	if (p == NULL)
		return ENOMEM;
	memcpy(p, key->data, key->size);
	free(s->last);
	s->last = p;
	s->lastlen = key->size;
	return 0;
}

/* stats_scan_txn - copies up to STATS_BATCH rows under the prefix (a txn fn). */
static int stats_scan_txn(struct queue *q, DB_TXN *txn, void *arg)
{
	struct stats_scan *s = arg;
	DBT key = { .flags = DB_DBT_MALLOC }, data = { .flags = DB_DBT_MALLOC };
	bool first = true;
	DBC *c;
	int rc;

	/* A deadlock retry starts again from the batch's beginning. */
	s->n = 0;
	s->end = false;
	free(s->last);
	s->last = NULL;
	if ((rc = q->stats->cursor(q->stats, txn, &c, DB_READ_COMMITTED)) != 0)
		return rc;
	key.data = s->after ? s->after : (unsigned char *)s->prefix;
	key.size = (uint32_t)(s->after ? s->afterlen : s->plen);
	rc = c->get(c, &key, &data, DB_SET_RANGE);
	while (rc == 0) {
		bool again = first && s->after != NULL && key.size == s->afterlen &&
			     memcmp(key.data, s->after, key.size) == 0;

		first = false;
		if (key.size < s->plen || memcmp(key.data, s->prefix, s->plen) != 0) {
			s->end = true;
		} else if (!again) {
			stats_keep_row(s, &key, &data);
			rc = stats_remember(s, &key);
		}
		free(key.data);
		free(data.data);
		key = (DBT){ .flags = DB_DBT_MALLOC };
		data = (DBT){ .flags = DB_DBT_MALLOC };
		if (rc != 0 || s->end || s->n == STATS_BATCH)
			break;
		rc = c->get(c, &key, &data, DB_NEXT);
	}
	if (rc == DB_NOTFOUND) {
		s->end = true;
		rc = 0;
	}
	return stats_closecur(c, rc);
}

/* queue_stats_foreach - see queue.h. */
int queue_stats_foreach(struct queue *q, const char *prefix, queue_stats_fn fn, void *arg)
{
	struct stats_scan *s = calloc(1, sizeof(*s));
	int rc = QUEUE_OK;

	if (s == NULL) {
		queue_seterr(q, "out of memory");
		return QUEUE_ERROR;
	}
	s->prefix = prefix ? prefix : "";
	s->plen = strlen(s->prefix);
	for (;;) {
		int dbrc = queue_txn_run(q, DB_READ_COMMITTED, 0, stats_scan_txn, s);
		bool stop = false;

		if (dbrc != 0) {
			queue_seterr(q, "reading stats.db: %s", db_strerror(dbrc));
			rc = QUEUE_ERROR;
			break;
		}
		for (size_t i = 0; i < s->n && !stop; i++)
			stop = fn(arg, s->row[i].key, s->row[i].value) != 0;
		if (stop || s->end || s->last == NULL)
			break;
		free(s->after);
		s->after = s->last;
		s->afterlen = s->lastlen;
		s->last = NULL;
	}
	free(s->after);
	free(s->last);
	free(s);
	return rc;
}

struct stats_get {
	const char *key;
	DBT data;
};

/* stats_get_txn - one value, copied (a txn fn). */
static int stats_get_txn(struct queue *q, DB_TXN *txn, void *arg)
{
	struct stats_get *g = arg;
	DBT key = { .data = (void *)g->key, .size = (uint32_t)strlen(g->key) };

	free(g->data.data);
	g->data = (DBT){ .flags = DB_DBT_MALLOC };
	return q->stats->get(q->stats, txn, &key, &g->data, 0);
}

/* queue_stats_get - see queue.h. */
int queue_stats_get(struct queue *q, const char *key, void **data, size_t *len)
{
	struct stats_get g = { .key = key, .data = { .flags = DB_DBT_MALLOC } };
	int rc = queue_txn_run(q, DB_READ_COMMITTED, 0, stats_get_txn, &g);

	*data = NULL;
	*len = 0;
	if (rc == DB_NOTFOUND) {
		free(g.data.data);
		return QUEUE_NOTFOUND;
	}
	if (rc != 0) {
		free(g.data.data);
		queue_seterr(q, "reading stats.db: %s", db_strerror(rc));
		return QUEUE_ERROR;
	}
	*data = g.data.data;
	*len = g.data.size;
	return QUEUE_OK;
}
