/*
 * store.c - reading and changing queued messages: iteration, lookup,
 * body output, deletion, and the transaction helpers writer.c shares.
 *
 * Used by mtaq while mtad is writing, so no call may hold locks while it
 * runs a caller's callback or writes to a (possibly slow) stream: rows
 * are copied out in short read-committed transactions, then handed on.
 * Every transaction is retried when chosen as a deadlock victim.
 *
 * Must not: write new messages (writer.c does), or keep errors anywhere
 * but the struct queue it was given.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue_impl.h"

/* Envelopes copied per read transaction in queue_foreach. */
#define STORE_BATCH 64

/* queue_seterr - see queue_impl.h. */
void queue_seterr(struct queue *q, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(q->err, sizeof(q->err), fmt, ap);
	va_end(ap);
}

/* queue_strerror - see queue.h. */
const char *queue_strerror(struct queue *q)
{
	return q->err[0] ? q->err : "no error";
}

/* queue_body_key - see queue_impl.h. */
void queue_body_key(unsigned char key[QUEUE_BODY_KEYLEN], const char *qid, uint32_t n)
{
	memcpy(key, qid, QUEUE_ID_LEN);
	key[QUEUE_ID_LEN] = (unsigned char)(n >> 24);
	key[QUEUE_ID_LEN + 1] = (unsigned char)(n >> 16);
	key[QUEUE_ID_LEN + 2] = (unsigned char)(n >> 8);
	key[QUEUE_ID_LEN + 3] = (unsigned char)n;
}

/* queue_txn_run - see queue_impl.h. */
int queue_txn_run(struct queue *q, uint32_t begin_flags, uint32_t commit_flags,
		  queue_txn_fn fn, void *arg)
{
	return queue_txn_run_in(q, NULL, begin_flags, commit_flags, fn, arg);
}

/* queue_txn_run_in - see queue_impl.h. */
int queue_txn_run_in(struct queue *q, DB_TXN *parent, uint32_t begin_flags,
		     uint32_t commit_flags, queue_txn_fn fn, void *arg)
{
	DB_TXN *txn;
	int rc = DB_LOCK_DEADLOCK;

	for (int try = 0; try < QUEUE_DEADLOCK_RETRIES && rc == DB_LOCK_DEADLOCK; try++) {
		if ((rc = q->env->txn_begin(q->env, parent, &txn, begin_flags)) != 0)
			return rc;
		rc = fn(q, txn, arg);
		if (rc != 0) {
			(void)txn->abort(txn);	/* abort only fails on a panicked env */
			continue;
		}
		/* A failed commit has already aborted the transaction. */
		rc = txn->commit(txn, commit_flags);
	}
	return rc;
}

/* store_closecur - closes a cursor, keeping the first error. */
static int store_closecur(DBC *c, int rc)
{
	int crc = c->close(c);

	return rc != 0 ? rc : crc;
}

/* queue_body_del - see queue_impl.h. */
int queue_body_del(struct queue *q, DB_TXN *txn, const char *qid)
{
	unsigned char kbuf[QUEUE_BODY_KEYLEN];
	DBT key = { 0 }, data = { 0 };
	DBC *c;
	int rc;

	if ((rc = q->body->cursor(q->body, txn, &c, 0)) != 0)
		return rc;
	queue_body_key(kbuf, qid, 0);
	key.data = kbuf;
	key.size = key.ulen = sizeof(kbuf);
	key.flags = DB_DBT_USERMEM;
	/* Only keys are needed: fetch no chunk bytes. */
	data.flags = DB_DBT_USERMEM | DB_DBT_PARTIAL;
	rc = c->get(c, &key, &data, DB_SET_RANGE);
	while (rc == 0 && key.size == QUEUE_BODY_KEYLEN && memcmp(kbuf, qid, QUEUE_ID_LEN) == 0) {
		if ((rc = c->del(c, 0)) != 0)
			break;
		rc = c->get(c, &key, &data, DB_NEXT);
	}
	if (rc == DB_NOTFOUND || rc == 0)
		rc = 0;
	return store_closecur(c, rc);
}

/* ---- queue_foreach ---- */

struct store_item {
	DBT key, data;		/* DB_DBT_MALLOC copies */
};

struct store_batch {
	struct store_item item[STORE_BATCH];
	size_t n;
	unsigned char *after;	/* last key handed out, NULL at the start */
	size_t afterlen;
	bool end;
};

/* store_batch_clear - frees the copied rows. */
static void store_batch_clear(struct store_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->item[i].key.data);
		free(b->item[i].data.data);
	}
	b->n = 0;
}

/* store_position - puts the cursor on the first key after b->after. */
static int store_position(DBC *c, struct store_batch *b, struct store_item *it)
{
	int rc;

	it->key.flags = it->data.flags = DB_DBT_MALLOC;
	if (b->after == NULL)
		return c->get(c, &it->key, &it->data, DB_FIRST);
	it->key.data = b->after;
	it->key.size = (uint32_t)b->afterlen;
	rc = c->get(c, &it->key, &it->data, DB_SET_RANGE);
	if (rc != 0 || it->key.size != b->afterlen || memcmp(it->key.data, b->after, b->afterlen))
		return rc;
	/* Landed on the key already handed out: step past it. */
	free(it->key.data);
	free(it->data.data);
	memset(it, 0, sizeof(*it));
	it->key.flags = it->data.flags = DB_DBT_MALLOC;
	return c->get(c, &it->key, &it->data, DB_NEXT);
}

/* store_fetch - copies up to STORE_BATCH rows after b->after (a txn fn). */
static int store_fetch(struct queue *q, DB_TXN *txn, void *arg)
{
	struct store_batch *b = arg;
	DBC *c;
	int rc;

	store_batch_clear(b);
	b->end = false;
	if ((rc = q->envelope->cursor(q->envelope, txn, &c, DB_READ_COMMITTED)) != 0)
		return rc;
	memset(&b->item[0], 0, sizeof(b->item[0]));
	rc = store_position(c, b, &b->item[0]);
	while (rc == 0) {
		struct store_item *it;

		if (++b->n == STORE_BATCH)
			break;
		it = &b->item[b->n];
		memset(it, 0, sizeof(*it));
		it->key.flags = it->data.flags = DB_DBT_MALLOC;
		rc = c->get(c, &it->key, &it->data, DB_NEXT);
	}
	if (rc == DB_NOTFOUND) {
		b->end = true;
		rc = 0;
	}
	return store_closecur(c, rc);
}

/* store_keyid - the qid text of a row's key ("?" for a malformed key). */
static void store_keyid(const DBT *key, char qid[QUEUE_ID_LEN + 1])
{
	size_t n = key->size < QUEUE_ID_LEN ? key->size : QUEUE_ID_LEN;

	memcpy(qid, key->data, n);
	qid[n] = '\0';
	if (key->size != QUEUE_ID_LEN || strlen(qid) != QUEUE_ID_LEN)
		strcpy(qid, "?");
}

/* store_deliver - decodes each copied row and calls fn; 1 when fn stopped. */
static int store_deliver(struct queue *q, struct store_batch *b, queue_foreach_fn fn, void *arg)
{
	for (size_t i = 0; i < b->n; i++) {
		struct store_item *it = &b->item[i];
		struct queue_envelope env;
		char qid[QUEUE_ID_LEN + 1], why[200];
		int stop;

		store_keyid(&it->key, qid);
		if (queue_record_decode(it->data.data, it->data.size, &env, why, sizeof(why)) < 0) {
			queue_seterr(q, "%s", why);
			stop = fn(qid, NULL, arg);
		} else if (strcmp(env.qid, qid) != 0) {
			queue_seterr(q, "record holds queue id %s", env.qid);
			queue_envelope_free(&env);
			stop = fn(qid, NULL, arg);
		} else {
			stop = fn(qid, &env, arg);
			queue_envelope_free(&env);
		}
		if (stop)
			return 1;
	}
	return 0;
}

/* store_advance - remembers the last key of the batch as the next start. */
static int store_advance(struct store_batch *b)
{
	const DBT *last = &b->item[b->n - 1].key;
	unsigned char *p = malloc(last->size ? last->size : 1);

	if (p == NULL)
		return -1;
	memcpy(p, last->data, last->size);
	free(b->after);
	b->after = p;
	b->afterlen = last->size;
	return 0;
}

/* queue_foreach - see queue.h. During fn, queue_strerror says why a record is damaged. */
int queue_foreach(struct queue *q, queue_foreach_fn fn, void *arg)
{
	struct store_batch *b = calloc(1, sizeof(*b));
	int rc = QUEUE_OK;

	if (b == NULL) {
		queue_seterr(q, "out of memory");
		return QUEUE_ERROR;
	}
	for (;;) {
		int dbrc = queue_txn_run(q, DB_READ_COMMITTED, 0, store_fetch, b);

		if (dbrc != 0) {
			queue_seterr(q, "reading envelope.db: %s", db_strerror(dbrc));
			rc = QUEUE_ERROR;
			break;
		}
		if (b->n == 0 || store_deliver(q, b, fn, arg) != 0 || b->end)
			break;
		if (store_advance(b) < 0) {
			queue_seterr(q, "out of memory");
			rc = QUEUE_ERROR;
			break;
		}
	}
	store_batch_clear(b);
	free(b->after);
	free(b);
	return rc;
}

/* ---- single messages ---- */

/* store_read - one auto-committed, read-committed get, retried on deadlock. */
static int store_read(DB *db, DBT *key, DBT *data)
{
	int rc = DB_LOCK_DEADLOCK;

	data->flags = DB_DBT_REALLOC;
	for (int try = 0; try < QUEUE_DEADLOCK_RETRIES && rc == DB_LOCK_DEADLOCK; try++)
		rc = db->get(db, NULL, key, data, DB_READ_COMMITTED);
	return rc;
}

/* queue_get - see queue.h. env is untouched unless QUEUE_OK. */
int queue_get(struct queue *q, const char *qid, struct queue_envelope *env)
{
	DBT data = { 0 };
	char why[200];
	int rc;

	if (!queue_id_valid(qid)) {
		queue_seterr(q, "invalid queue id");
		return QUEUE_NOTFOUND;
	}
	rc = store_read(q->envelope, &(DBT){ .data = (void *)qid, .size = QUEUE_ID_LEN }, &data);
	if (rc == DB_NOTFOUND) {
		free(data.data);
		queue_seterr(q, "no such message: %s", qid);
		return QUEUE_NOTFOUND;
	}
	if (rc != 0) {
		free(data.data);
		queue_seterr(q, "reading %s: %s", qid, db_strerror(rc));
		return QUEUE_ERROR;
	}
	rc = queue_record_decode(data.data, data.size, env, why, sizeof(why));
	free(data.data);
	if (rc < 0) {
		queue_seterr(q, "%s", why);
		return QUEUE_DAMAGED;
	}
	return QUEUE_OK;
}

/* store_chunks - hands each chunk to fn in order, through the body check. */
static int store_chunks(struct queue *q, const char *qid, queue_body_fn fn, void *arg,
			struct queue_body_check *check)
{
	unsigned char kbuf[QUEUE_BODY_KEYLEN];
	DBT key = { .data = kbuf, .size = sizeof(kbuf) }, data = { 0 };
	int rc;

	for (uint32_t n = 0;; n++) {
		queue_body_key(kbuf, qid, n);
		if ((rc = store_read(q->body, &key, &data)) != 0)
			break;
		queue_body_check_add(check, data.data, data.size);
		if (fn(arg, data.data, data.size) != 0) {
			free(data.data);
			queue_seterr(q, "writing the body of %s: %s", qid, strerror(errno));
			return QUEUE_ERROR;
		}
	}
	free(data.data);
	if (rc != DB_NOTFOUND) {
		queue_seterr(q, "reading the body of %s: %s", qid, db_strerror(rc));
		return QUEUE_ERROR;
	}
	return QUEUE_OK;
}

/*
 * queue_body_read - see queue.h. The bytes go to fn as they are read
 * (a body can be large): the verdict on them comes at the end, from the
 * length and SHA-256 the envelope recorded at arrival.
 */
int queue_body_read(struct queue *q, const char *qid, queue_body_fn fn, void *arg)
{
	struct queue_envelope env;
	struct queue_body_check *check;
	char why[200];
	int rc;

	if ((rc = queue_get(q, qid, &env)) != QUEUE_OK)
		return rc;
	if ((check = queue_body_check_new()) == NULL) {
		queue_envelope_free(&env);
		queue_seterr(q, "out of memory");
		return QUEUE_ERROR;
	}
	rc = store_chunks(q, qid, fn, arg, check);
	if (rc == QUEUE_OK && queue_body_check_verify(check, &env, why, sizeof(why)) < 0) {
		queue_seterr(q, "%s: %s", qid, why);
		rc = QUEUE_DAMAGED;
	}
	queue_body_check_free(check);
	queue_envelope_free(&env);
	return rc;
}

/* queue_message_read - see queue.h. */
int queue_message_read(struct queue *q, const char *qid, queue_body_fn fn, void *arg)
{
	struct queue_envelope env;
	int rc;

	if ((rc = queue_get(q, qid, &env)) != QUEUE_OK)
		return rc;
	if (env.header_prefix != NULL &&
	    fn(arg, env.header_prefix, strlen(env.header_prefix)) != 0) {
		queue_envelope_free(&env);
		queue_seterr(q, "writing the header of %s: %s", qid, strerror(errno));
		return QUEUE_ERROR;
	}
	queue_envelope_free(&env);
	return queue_body_read(q, qid, fn, arg);
}

/* store_fwrite - a queue_body_fn writing to a stdio stream. */
static int store_fwrite(void *arg, const void *data, size_t len)
{
	return fwrite(data, 1, len, arg) == len ? 0 : -1;
}

/* queue_body_write - see queue.h. */
int queue_body_write(struct queue *q, const char *qid, FILE *out)
{
	return queue_message_read(q, qid, store_fwrite, out);
}

/*
 * store_unschedule - removes qid's entries from schedule.db through the
 * plain (not associated) handle, looking at every key: the index cannot
 * find them from a record it cannot decode (see store_delete_txn).
 */
static int store_unschedule(struct queue *q, DB_TXN *txn, const char *qid)
{
	DBT key = { .flags = DB_DBT_REALLOC };
	DBT data = { .flags = DB_DBT_USERMEM | DB_DBT_PARTIAL };	/* keys only */
	DBC *c;
	int rc;

	if ((rc = q->schedule_plain->cursor(q->schedule_plain, txn, &c, 0)) != 0)
		return rc;
	while ((rc = c->get(c, &key, &data, DB_NEXT)) == 0) {
		if (key.size == QUEUE_SCHEDULE_KEYLEN &&
		    memcmp((const char *)key.data + 8, qid, QUEUE_ID_LEN) == 0 &&
		    (rc = c->del(c, 0)) != 0)
			break;
	}
	free(key.data);
	if (rc == DB_NOTFOUND)
		rc = 0;
	return store_closecur(c, rc);
}

/*
 * store_delete_txn - removes envelope, schedule entry and chunks of the
 * qid in arg. Berkeley DB finds the schedule entry to delete by asking
 * queue_schedule_key for the stored record's key; a record damaged since
 * it was indexed (a flipped byte on disk) gets no key, so its entry was
 * left behind, pointing at nothing: every due scan then failed with
 * DB_SECONDARY_BAD and mtad delivered nothing at all any more
 * (t/82-damaged-record.t). Such a record's entry is removed by hand.
 */
static int store_delete_txn(struct queue *q, DB_TXN *txn, void *arg)
{
	const char *qid = arg;
	DBT key = { .data = (void *)qid, .size = QUEUE_ID_LEN };
	DBT data = { .flags = DB_DBT_MALLOC };
	int64_t next_attempt;
	uint32_t flags;
	bool damaged;
	int rc;

	if ((rc = q->envelope->get(q->envelope, txn, &key, &data, DB_RMW)) != 0)
		return rc;
	damaged = queue_record_peek(data.data, data.size, &next_attempt, &flags) < 0;
	free(data.data);
	if (damaged && (rc = store_unschedule(q, txn, qid)) != 0)
		return rc;
	if ((rc = q->envelope->del(q->envelope, txn, &key, 0)) != 0)
		return rc;
	return queue_body_del(q, txn, qid);
}

/* store_open_plain - schedule.db once more, not associated (store_unschedule). */
static int store_open_plain(struct queue *q)
{
	DB *db;
	int rc;

	if (q->schedule_plain != NULL)
		return 0;
	if ((rc = db_create(&db, q->env, 0)) != 0)
		return rc;
	if ((rc = db->open(db, NULL, "schedule.db", NULL, DB_BTREE,
			   DB_AUTO_COMMIT | DB_THREAD, 0)) != 0) {
		db->close(db, 0);
		return rc;
	}
	q->schedule_plain = db;
	return 0;
}

/* queue_delete - see queue.h; an operator's action, so it commits synchronously. */
int queue_delete(struct queue *q, const char *qid)
{
	int rc;

	if (!queue_id_valid(qid)) {
		queue_seterr(q, "invalid queue id");
		return QUEUE_NOTFOUND;
	}
	if ((rc = store_open_plain(q)) != 0) {
		queue_seterr(q, "opening schedule.db: %s", db_strerror(rc));
		return QUEUE_ERROR;
	}
	rc = queue_txn_run(q, 0, DB_TXN_SYNC, store_delete_txn, (void *)qid);
	if (rc == DB_NOTFOUND) {
		queue_seterr(q, "no such message: %s", qid);
		return QUEUE_NOTFOUND;
	}
	if (rc != 0) {
		queue_seterr(q, "deleting %s: %s", qid, db_strerror(rc));
		return QUEUE_ERROR;
	}
	return QUEUE_OK;
}

/* ---- orphan chunks ---- */

struct store_orphan {
	unsigned char from[QUEUE_BODY_KEYLEN + 1];	/* the scan goes on from here */
	/* Results of one step, applied only once its transaction committed. */
	unsigned char next[QUEUE_BODY_KEYLEN + 1];
	bool end, dropped;
};

/* store_orphan_step - looks at the next qid in body.db; drops it without envelope. */
static int store_orphan_step(struct queue *q, DB_TXN *txn, void *arg)
{
	struct store_orphan *o = arg;
	unsigned char kbuf[QUEUE_BODY_KEYLEN + 1];
	char qid[QUEUE_ID_LEN + 1];
	DBT key = { .data = kbuf, .size = sizeof(o->from), .ulen = sizeof(kbuf),
		    .flags = DB_DBT_USERMEM };
	DBT data = { .flags = DB_DBT_USERMEM | DB_DBT_PARTIAL };
	DBT ekey = { .data = qid, .size = QUEUE_ID_LEN };
	DBT edata = { .flags = DB_DBT_USERMEM | DB_DBT_PARTIAL };
	DBC *c;
	int rc;

	o->end = o->dropped = false;
	memcpy(kbuf, o->from, sizeof(o->from));
	if ((rc = q->body->cursor(q->body, txn, &c, 0)) != 0)
		return rc;
	rc = store_closecur(c, c->get(c, &key, &data, DB_SET_RANGE));
	if (rc == DB_NOTFOUND) {
		o->end = true;
		return 0;
	}
	if (rc != 0)
		return rc;
	memcpy(qid, kbuf, QUEUE_ID_LEN);
	qid[QUEUE_ID_LEN] = '\0';
	rc = q->envelope->get(q->envelope, txn, &ekey, &edata, 0);
	if (rc == DB_NOTFOUND) {
		if ((rc = queue_body_del(q, txn, qid)) != 0)
			return rc;
		o->dropped = true;
	} else if (rc != 0) {
		return rc;
	}
	/* Next: the first key above every chunk key of this qid. */
	memcpy(o->next, qid, QUEUE_ID_LEN);
	memset(o->next + QUEUE_ID_LEN, 0xff, sizeof(o->next) - QUEUE_ID_LEN);
	return 0;
}

/* queue_orphans_remove - see queue_impl.h. */
int queue_orphans_remove(struct queue *q, size_t *removed)
{
	struct store_orphan o = { .from = { 0 } };
	int rc;

	*removed = 0;
	for (;;) {
		rc = queue_txn_run(q, 0, DB_TXN_NOSYNC, store_orphan_step, &o);
		if (rc != 0 || o.end)
			return rc;
		*removed += o.dropped;
		memcpy(o.from, o.next, sizeof(o.from));
	}
}
