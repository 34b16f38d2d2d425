/*
 * schedule.c - delivery state: which messages are due (schedule.db),
 * reading a body chunk by chunk for the SMTP client, recording the
 * outcome of an attempt (with a bounce in the same transaction), and
 * mtaq's hold, release, flush, requeue and expire.
 *
 * schedule.db is a secondary index of envelope.db that Berkeley DB keeps
 * (env.c associates it with queue_schedule_key below): key = next_attempt
 * as u64 big-endian + qid, so a cursor from the first key walks messages
 * in due order, and a message moves in the schedule in the very
 * transaction that changes its envelope. Held and undecodable records
 * get no key, so they are never due.
 *
 * The async calls package their work as queue_task jobs for the writer
 * thread (writer.c): an update is a write task, committed with
 * DB_TXN_NOSYNC and reported after the batch's single log flush; due
 * scans and chunk reads are read tasks run after that flush. Their
 * callbacks run on the loop thread from the writer's completions.
 *
 * Must not: touch the disk on the loop thread, call a callback twice or
 * inside the call that asked for it, or let a damaged record stop the
 * scan (it is logged and skipped; mtaq reports it).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"
#include "queue/queue_impl.h"

/* Envelopes a due scan allocates room for at first. */
#define SCHED_DUE_INITIAL 16
/* A txn fn's verdict on a record that does not decode (not a DB error). */
#define SCHED_DAMAGED EBADMSG

/* sched_be64 - reads a big-endian u64. */
static uint64_t sched_be64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

/* sched_time - next_attempt as a schedule time: negative counts as 0. */
static uint64_t sched_time(int64_t t)
{
	return t < 0 ? 0 : (uint64_t)t;
}

/* sched_status - a Berkeley DB result as a QUEUE_* status and its text. */
static int sched_status(int rc, char *errmsg, size_t size, const char *what, const char *qid)
{
	if (rc == 0)
		return QUEUE_OK;
	if (rc == DB_NOTFOUND) {
		snprintf(errmsg, size, "no such message: %s", qid);
		return QUEUE_NOTFOUND;
	}
	if (rc == SCHED_DAMAGED) {
		snprintf(errmsg, size, "%s: damaged record", qid);
		return QUEUE_DAMAGED;
	}
	snprintf(errmsg, size, "%s %s: %s", what, qid, db_strerror(rc));
	return QUEUE_ERROR;
}

/* queue_schedule_key - see queue_impl.h. */
int queue_schedule_key(DB *secondary, const DBT *key, const DBT *data, DBT *result)
{
	int64_t next_attempt;
	uint32_t flags;
	unsigned char *k;
	uint64_t t;

	(void)secondary;
	/* Runs on every envelope write: peek, do not decode. */
	if (key->size != QUEUE_ID_LEN ||
	    queue_record_peek(data->data, data->size, &next_attempt, &flags) < 0)
		return DB_DONOTINDEX;	/* mtaq reports it; never due */
	if (flags & QUEUE_FLAG_HELD)
		return DB_DONOTINDEX;
	t = sched_time(next_attempt);
	if ((k = malloc(QUEUE_SCHEDULE_KEYLEN)) == NULL)
		return ENOMEM;
	for (int i = 0; i < 8; i++)
		k[i] = (unsigned char)(t >> (56 - 8 * i));
	memcpy(k + 8, key->data, QUEUE_ID_LEN);
	memset(result, 0, sizeof(*result));
	result->data = k;
	result->size = QUEUE_SCHEDULE_KEYLEN;
	result->flags = DB_DBT_APPMALLOC;	/* Berkeley DB frees it */
	return 0;
}

/* ---- due scan ---- */

struct sched_due {
	struct queue_task task;		/* first: the task is the struct */
	uint64_t now;
	size_t max;
	queue_due_cb cb;
	void *arg;
	char (*skip)[QUEUE_ID_LEN + 1];	/* in flight: not decoded, not counted */
	size_t nskip;
	struct queue_envelope *envs;
	size_t n, cap;
	int status;
	char errmsg[200];
};

/* due_skipped - the key's message is one the caller has in flight. */
static bool due_skipped(const struct sched_due *d, const DBT *key)
{
	for (size_t i = 0; i < d->nskip; i++)
		if (memcmp((const char *)key->data + 8, d->skip[i], QUEUE_ID_LEN) == 0)
			return true;
	return false;
}

/* due_clear - frees the envelopes collected so far (a retried scan starts over). */
static void due_clear(struct sched_due *d)
{
	for (size_t i = 0; i < d->n; i++)
		queue_envelope_free(&d->envs[i]);
	d->n = 0;
}

/*
 * due_damaged_new - true the first time a scan meets this damaged record
 * (writer thread). It stays due, so every scan (each second) meets it
 * again; the log says so once, not every second, for up to
 * QUEUE_DAMAGED_SEEN damaged records at a time.
 */
static bool due_damaged_new(struct queue *q, const char *qid)
{
	for (size_t i = 0; i < QUEUE_DAMAGED_SEEN; i++)
		if (memcmp(q->damaged_seen[i], qid, QUEUE_ID_LEN) == 0)
			return false;
	memcpy(q->damaged_seen[q->damaged_next], qid, QUEUE_ID_LEN);
	q->damaged_next = (q->damaged_next + 1) % QUEUE_DAMAGED_SEEN;
	return true;
}

/* due_add - decodes one record onto the list; a damaged one is skipped. */
static int due_add(struct queue *q, struct sched_due *d, const DBT *key, const DBT *data)
{
	char why[200];

	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : SCHED_DUE_INITIAL;
		struct queue_envelope *p = realloc(d->envs, cap * sizeof(*p));

		if (p == NULL)
			return ENOMEM;
		d->envs = p;
		d->cap = cap;
	}
	if (queue_record_decode(data->data, data->size, &d->envs[d->n], why, sizeof(why)) < 0) {
		/* The index callback refuses such records: changed since? */
		if (due_damaged_new(q, (const char *)key->data + 8))
			mtad_log(MTAD_LOG_WARNING, "queue: %.*s: damaged record in the schedule: "
				 "%s; it stays queued, never delivered (mtaq list reports it, "
				 "mtaq delete removes it)",
				 QUEUE_ID_LEN, (const char *)key->data + 8, why);
		return 0;
	}
	d->n++;
	return 0;
}

/* due_txn - walks schedule.db from the start while due (a txn fn). */
static int due_txn(struct queue *q, DB_TXN *txn, void *arg)
{
	struct sched_due *d = arg;
	DBT key = { .flags = DB_DBT_REALLOC }, data = { .flags = DB_DBT_REALLOC };
	uint32_t how = DB_FIRST;
	DBC *c;
	int rc;

	due_clear(d);
	if ((rc = q->schedule->cursor(q->schedule, txn, &c, DB_READ_COMMITTED)) != 0)
		return rc;
	while (d->n < d->max && (rc = c->get(c, &key, &data, how)) == 0) {
		how = DB_NEXT;
		if (key.size != QUEUE_SCHEDULE_KEYLEN)
			continue;
		if (sched_be64(key.data) > d->now)
			break;
		if (due_skipped(d, &key))
			continue;
		if ((rc = due_add(q, d, &key, &data)) != 0)
			break;
	}
	if (rc == DB_NOTFOUND)
		rc = 0;
	free(key.data);
	free(data.data);
	if ((c->close(c)) != 0 && rc == 0)
		rc = EIO;
	return rc;
}

/* due_run - the writer's half. */
static int due_run(struct queue *q, struct queue_task *task)
{
	struct sched_due *d = (struct sched_due *)task;
	int rc = queue_txn_run(q, DB_READ_COMMITTED, 0, due_txn, d);

	if (rc != 0) {
		due_clear(d);
		d->status = QUEUE_ERROR;
		snprintf(d->errmsg, sizeof(d->errmsg), "reading schedule.db: %s", db_strerror(rc));
		mtad_log(MTAD_LOG_WARNING, "queue: %s", d->errmsg);
	}
	return 0;
}

/* due_done - the loop's half: the envelopes are ours again after cb. */
static void due_done(struct queue_task *task)
{
	struct sched_due *d = (struct sched_due *)task;

	d->cb(d->arg, d->status, d->envs, d->n);
	due_clear(d);
	free(d->envs);
	free(d->skip);
	free(d);
}

/* queue_due_async - see queue.h. */
int queue_due_async(struct queue *q, int64_t now, size_t max,
		    const char (*skip)[QUEUE_ID_LEN + 1], size_t nskip,
		    queue_due_cb cb, void *arg)
{
	struct sched_due *d = calloc(1, sizeof(*d));

	if (d == NULL || (nskip > 0 && (d->skip = calloc(nskip, sizeof(*skip))) == NULL)) {
		free(d);
		errno = ENOMEM;
		return -1;
	}
	if (nskip > 0)
		memcpy(d->skip, skip, nskip * sizeof(*skip));
	d->nskip = nskip;
	d->task = (struct queue_task){ .write = false, .run = due_run, .done = due_done };
	d->now = sched_time(now);
	d->max = max;
	d->cb = cb;
	d->arg = arg;
	if (queue_task_submit(q, &d->task) != 0) {
		free(d->skip);
		free(d);
		return -1;
	}
	return 0;
}

/* ---- body chunks ---- */

struct sched_chunk {
	struct queue_task task;
	char qid[QUEUE_ID_LEN + 1];
	uint32_t index;
	queue_chunk_cb cb;
	void *arg;
	DBT data;		/* DB_DBT_REALLOC: the chunk */
	bool found, last;
	int status;
	char errmsg[200];
};

/* chunk_next - after chunk index: is the next key chunk index + 1 of
 * the same message? Fetches the key only. */
static int chunk_next(DBC *c, struct sched_chunk *k)
{
	unsigned char kbuf[QUEUE_BODY_KEYLEN], next[QUEUE_BODY_KEYLEN];
	DBT key = { .data = kbuf, .ulen = sizeof(kbuf), .flags = DB_DBT_USERMEM };
	DBT none = { .flags = DB_DBT_USERMEM | DB_DBT_PARTIAL };
	int rc;

	if (k->index == UINT32_MAX) {
		k->last = true;
		return 0;
	}
	queue_body_key(next, k->qid, k->index + 1);
	rc = c->get(c, &key, &none, DB_NEXT);
	if (rc == DB_NOTFOUND || rc == DB_BUFFER_SMALL) {	/* the end, or not a chunk key */
		k->last = true;
		return 0;
	}
	if (rc == 0)
		k->last = key.size != QUEUE_BODY_KEYLEN || memcmp(kbuf, next, sizeof(next)) != 0;
	return rc;
}

/* chunk_empty - no chunk 0: an empty body, or no such message? */
static int chunk_empty(struct queue *q, DB_TXN *txn, struct sched_chunk *k)
{
	DBT key = { .data = k->qid, .size = QUEUE_ID_LEN };
	DBT data = { .flags = DB_DBT_MALLOC };
	struct queue_envelope env;
	int rc;

	rc = q->envelope->get(q->envelope, txn, &key, &data, DB_READ_COMMITTED);
	if (rc == DB_NOTFOUND) {
		k->status = QUEUE_NOTFOUND;
		snprintf(k->errmsg, sizeof(k->errmsg), "no such message: %s", k->qid);
		return 0;
	}
	if (rc != 0)
		return rc;
	rc = queue_record_decode(data.data, data.size, &env, NULL, 0);
	free(data.data);
	if (rc == 0 && env.size == 0) {
		k->last = true;		/* an empty body has no chunk at all */
	} else {
		k->status = QUEUE_DAMAGED;
		snprintf(k->errmsg, sizeof(k->errmsg), "%s: body missing or record damaged",
			 k->qid);
	}
	if (rc == 0)
		queue_envelope_free(&env);
	return 0;
}

/* chunk_txn - chunk index and whether index + 1 exists (a txn fn). */
static int chunk_txn(struct queue *q, DB_TXN *txn, void *arg)
{
	struct sched_chunk *k = arg;
	unsigned char kbuf[QUEUE_BODY_KEYLEN];
	DBT key = { .data = kbuf, .size = sizeof(kbuf) };
	DBC *c;
	int rc, crc;

	k->found = k->last = false;
	k->status = QUEUE_OK;
	queue_body_key(kbuf, k->qid, k->index);
	if ((rc = q->body->cursor(q->body, txn, &c, DB_READ_COMMITTED)) != 0)
		return rc;
	rc = c->get(c, &key, &k->data, DB_SET);
	if (rc == 0) {
		k->found = true;
		rc = chunk_next(c, k);
	}
	crc = c->close(c);
	if (rc == DB_NOTFOUND && k->index > 0) {
		k->status = QUEUE_NOTFOUND;
		snprintf(k->errmsg, sizeof(k->errmsg), "%s has no chunk %u", k->qid, k->index);
		rc = 0;
	} else if (rc == DB_NOTFOUND && crc == 0) {
		return chunk_empty(q, txn, k);
	}
	return rc != 0 ? rc : crc;
}

/* chunk_run - the writer's half. */
static int chunk_run(struct queue *q, struct queue_task *task)
{
	struct sched_chunk *k = (struct sched_chunk *)task;
	int rc = queue_txn_run(q, DB_READ_COMMITTED, 0, chunk_txn, k);

	if (rc != 0) {
		k->status = QUEUE_ERROR;
		snprintf(k->errmsg, sizeof(k->errmsg), "reading the body of %s: %s", k->qid,
			 db_strerror(rc));
		mtad_log(MTAD_LOG_WARNING, "queue: %s", k->errmsg);
	}
	return 0;
}

/* chunk_done - the loop's half; the bytes go when cb returns. */
static void chunk_done(struct queue_task *task)
{
	struct sched_chunk *k = (struct sched_chunk *)task;

	if (k->status == QUEUE_OK && k->found)
		k->cb(k->arg, QUEUE_OK, k->data.data, k->data.size, k->last);
	else if (k->status == QUEUE_OK)
		k->cb(k->arg, QUEUE_OK, "", 0, true);	/* the empty body */
	else
		k->cb(k->arg, k->status, NULL, 0, true);
	free(k->data.data);
	free(k);
}

/* queue_chunk_async - see queue.h. */
int queue_chunk_async(struct queue *q, const char *qid, uint32_t index, queue_chunk_cb cb,
		      void *arg)
{
	struct sched_chunk *k;

	if (!queue_id_valid(qid)) {
		errno = EINVAL;
		return -1;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	k->task = (struct queue_task){ .write = false, .run = chunk_run, .done = chunk_done };
	memcpy(k->qid, qid, sizeof(k->qid));
	k->index = index;
	k->cb = cb;
	k->arg = arg;
	k->data.flags = DB_DBT_REALLOC;
	if (queue_task_submit(q, &k->task) != 0) {
		free(k);
		return -1;
	}
	return 0;
}

/* ---- recording an attempt ---- */

struct sched_update {
	struct queue_task task;
	char qid[QUEUE_ID_LEN + 1];
	bool finished;		/* every recipient SENT or FAILED: delete */
	unsigned char *rec;	/* the new envelope, encoded (NULL when finished) */
	size_t reclen;
	unsigned char *held;	/* rec with the flags mtaq set meanwhile, made when needed */
	size_t heldlen;
	/* the bounce, or bqid[0] == '\0' */
	char bqid[QUEUE_ID_LEN + 1];
	unsigned char *brec, *bbody;
	size_t breclen, blen;
	queue_update_cb cb;
	void *arg;
	int status;
	char errmsg[200];
};

/*
 * update_carry - rec with the flags mtaq set while the attempt ran: a
 * hold, and an expiry request (then due at once: the next pass bounces
 * it, rather than after this attempt's backoff).
 */
static int update_carry(struct sched_update *u, uint32_t carry)
{
	struct queue_envelope env;

	if (u->held != NULL)
		return 0;
	if (queue_record_decode(u->rec, u->reclen, &env, NULL, 0) < 0)
		return EINVAL;	/* we encoded it: cannot happen */
	env.flags |= carry;
	if (carry & QUEUE_FLAG_EXPIRE)
		env.next_attempt = 0;
	u->held = queue_record_encode(&env, &u->heldlen);
	queue_envelope_free(&env);
	return u->held != NULL ? 0 : ENOMEM;
}

/* update_replace - puts the new envelope, keeping a hold or expiry set meanwhile. */
static int update_replace(struct queue *q, DB_TXN *txn, struct sched_update *u,
			  const DBT *old)
{
	DBT key = { .data = u->qid, .size = QUEUE_ID_LEN };
	DBT data = { .data = u->rec, .size = (uint32_t)u->reclen };
	struct queue_envelope cur;
	int rc;

	if (queue_record_decode(old->data, old->size, &cur, NULL, 0) == 0) {
		uint32_t carry = cur.flags & (QUEUE_FLAG_HELD | QUEUE_FLAG_EXPIRE);

		queue_envelope_free(&cur);
		if (carry != 0) {
			if ((rc = update_carry(u, carry)) != 0)
				return rc;
			data.data = u->held;
			data.size = (uint32_t)u->heldlen;
		}
	}
	return q->envelope->put(q->envelope, txn, &key, &data, 0);
}

/* update_bounce - the bounce's chunks and envelope; refuses a used id. */
static int update_bounce(struct queue *q, DB_TXN *txn, struct sched_update *u)
{
	unsigned char kbuf[QUEUE_BODY_KEYLEN];
	DBT key = { .data = kbuf, .size = sizeof(kbuf) };
	DBT ekey = { .data = u->bqid, .size = QUEUE_ID_LEN };
	DBT edata = { .data = u->brec, .size = (uint32_t)u->breclen };
	int rc;

	for (size_t off = 0, n = 0; off < u->blen; off += QUEUE_CHUNK_SIZE, n++) {
		size_t len = u->blen - off < QUEUE_CHUNK_SIZE ? u->blen - off : QUEUE_CHUNK_SIZE;
		DBT data = { .data = u->bbody + off, .size = (uint32_t)len };

		queue_body_key(kbuf, u->bqid, (uint32_t)n);
		if ((rc = q->body->put(q->body, txn, &key, &data, DB_NOOVERWRITE)) != 0)
			return rc;
	}
	return q->envelope->put(q->envelope, txn, &ekey, &edata, DB_NOOVERWRITE);
}

/* update_txn - the whole outcome of an attempt (a txn fn). */
static int update_txn(struct queue *q, DB_TXN *txn, void *arg)
{
	struct sched_update *u = arg;
	DBT key = { .data = u->qid, .size = QUEUE_ID_LEN };
	DBT old = { .flags = DB_DBT_MALLOC };
	int rc;

	/* Write-locked from here: mtaq cannot delete or hold it under us. */
	if ((rc = q->envelope->get(q->envelope, txn, &key, &old, DB_RMW)) != 0)
		return rc;	/* DB_NOTFOUND: deleted meanwhile; write nothing */
	if (u->finished) {
		if ((rc = q->envelope->del(q->envelope, txn, &key, 0)) == 0)
			rc = queue_body_del(q, txn, u->qid);
	} else {
		rc = update_replace(q, txn, u, &old);
	}
	free(old.data);
	if (rc == 0 && u->bqid[0] != '\0')
		rc = update_bounce(q, txn, u);
	return rc;
}

/* update_run - the writer's half: 1 when committed (the flush covers it). */
static int update_run(struct queue *q, struct queue_task *task)
{
	struct sched_update *u = (struct sched_update *)task;
	int rc = queue_txn_run(q, 0, DB_TXN_NOSYNC, update_txn, u);

	if (rc == 0)
		return 1;
	if (rc == DB_KEYEXIST) {
		u->status = QUEUE_ERROR;
		snprintf(u->errmsg, sizeof(u->errmsg), "bounce of %s: queue id %s already in use",
			 u->qid, u->bqid);
	} else {
		u->status = sched_status(rc, u->errmsg, sizeof(u->errmsg), "updating", u->qid);
	}
	if (u->status != QUEUE_NOTFOUND)
		mtad_log(MTAD_LOG_WARNING, "queue: %s", u->errmsg);
	return 0;
}

/* update_free - releases an update and its copies. */
static void update_free(struct sched_update *u)
{
	free(u->rec);
	free(u->held);
	free(u->brec);
	free(u->bbody);
	free(u);
}

/* update_done - the loop's half, after the batch's log flush. */
static void update_done(struct queue_task *task)
{
	struct sched_update *u = (struct sched_update *)task;

	if (u->status == QUEUE_OK && task->flush_rc != 0) {
		u->status = QUEUE_ERROR;
		snprintf(u->errmsg, sizeof(u->errmsg), "flushing the log: %s",
			 db_strerror(task->flush_rc));
	}
	u->cb(u->arg, u->status, u->status != QUEUE_OK ? u->errmsg : NULL);
	update_free(u);
}

/* update_finished - true when no recipient is left pending. */
static bool update_finished(const struct queue_envelope *env)
{
	for (size_t i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].state == QUEUE_RCPT_PENDING)
			return false;
	return true;
}

/* update_copy_bounce - encodes the bounce and copies its body into u. */
static int update_copy_bounce(struct sched_update *u, const struct queue_new_message *b)
{
	struct queue_envelope copy;

	if (b->env == NULL || !queue_id_valid(b->env->qid) || (b->body == NULL && b->len > 0)) {
		errno = EINVAL;
		return -1;
	}
	copy = *b->env;
	copy.version = QUEUE_RECORD_VERSION;
	copy.size = b->len;
	copy.has_digest = true;
	if (queue_body_digest(b->body != NULL ? b->body : "", b->len, copy.digest) < 0) {
		errno = ENOMEM;
		return -1;
	}
	memcpy(u->bqid, b->env->qid, sizeof(u->bqid));
	if ((u->brec = queue_record_encode(&copy, &u->breclen)) == NULL)
		return -1;
	if ((u->bbody = malloc(b->len ? b->len : 1)) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	if (b->len > 0)
		memcpy(u->bbody, b->body, b->len);
	u->blen = b->len;
	return 0;
}

/* queue_update_async - see queue.h. */
int queue_update_async(struct queue *q, const struct queue_envelope *env,
		       const struct queue_new_message *bounce, queue_update_cb cb, void *arg)
{
	struct sched_update *u;

	if (!queue_id_valid(env->qid)) {
		errno = EINVAL;
		return -1;
	}
	if ((u = calloc(1, sizeof(*u))) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	u->task = (struct queue_task){ .write = true, .run = update_run, .done = update_done };
	memcpy(u->qid, env->qid, sizeof(u->qid));
	u->finished = update_finished(env);
	u->cb = cb;
	u->arg = arg;
	if ((!u->finished && (u->rec = queue_record_encode(env, &u->reclen)) == NULL) ||
	    (bounce != NULL && update_copy_bounce(u, bounce) != 0) ||
	    queue_task_submit(q, &u->task) != 0) {
		int saved = errno;

		update_free(u);
		errno = saved;
		return -1;
	}
	return 0;
}

/* ---- mtaq: hold, release, flush, requeue, expire ---- */

enum sched_op { SCHED_HOLD, SCHED_RELEASE, SCHED_FLUSH, SCHED_REQUEUE, SCHED_EXPIRE };

struct sched_modify {
	const char *qid;
	enum sched_op op;
};

/*
 * modify_apply - the operator's change to one envelope. A requeue starts
 * the pending recipients over (no attempts counted, so the backoff
 * starts at retry_min again; their last reply stays for mtaq show). An
 * expiry is a flag the runner acts on (deliver/outcome.c): the next pass
 * bounces what is pending without trying it.
 */
static void modify_apply(struct queue_envelope *env, enum sched_op op)
{
	switch (op) {
	case SCHED_HOLD:
		env->flags |= QUEUE_FLAG_HELD;
		break;
	case SCHED_RELEASE:
		env->flags &= ~(uint32_t)(QUEUE_FLAG_HELD | QUEUE_FLAG_DAMAGED);	/* try again */
		break;
	case SCHED_REQUEUE:
		for (size_t i = 0; i < env->nrcpt; i++)
			if (env->rcpt[i].state == QUEUE_RCPT_PENDING)
				env->rcpt[i].attempts = 0;
		env->next_attempt = 0;
		break;
	case SCHED_EXPIRE:
		env->flags |= QUEUE_FLAG_EXPIRE;
		env->next_attempt = 0;
		break;
	case SCHED_FLUSH:
		env->next_attempt = 0;
		break;
	}
}

/* modify_txn - read, change, write back one envelope (a txn fn). */
static int modify_txn(struct queue *q, DB_TXN *txn, void *arg)
{
	struct sched_modify *m = arg;
	DBT key = { .data = (void *)m->qid, .size = QUEUE_ID_LEN };
	DBT data = { .flags = DB_DBT_MALLOC };
	struct queue_envelope env;
	unsigned char *rec;
	size_t len;
	int rc;

	if ((rc = q->envelope->get(q->envelope, txn, &key, &data, DB_RMW)) != 0)
		return rc;
	rc = queue_record_decode(data.data, data.size, &env, NULL, 0);
	free(data.data);
	if (rc < 0)
		return SCHED_DAMAGED;
	modify_apply(&env, m->op);
	rec = queue_record_encode(&env, &len);
	queue_envelope_free(&env);
	if (rec == NULL)
		return errno;
	data = (DBT){ .data = rec, .size = (uint32_t)len };
	rc = q->envelope->put(q->envelope, txn, &key, &data, 0);
	free(rec);
	return rc;
}

/* sched_modify - one operator change, committed synchronously. */
static int sched_modify(struct queue *q, const char *qid, enum sched_op op)
{
	struct sched_modify m = { qid, op };
	char why[200];
	int rc, status;

	if (!queue_id_valid(qid)) {
		queue_seterr(q, "invalid queue id");
		return QUEUE_NOTFOUND;
	}
	rc = queue_txn_run(q, 0, DB_TXN_SYNC, modify_txn, &m);
	status = sched_status(rc, why, sizeof(why), "changing", qid);
	if (status != QUEUE_OK)
		queue_seterr(q, "%s", why);
	return status;
}

/* queue_set_hold - see queue.h. */
int queue_set_hold(struct queue *q, const char *qid, bool hold)
{
	return sched_modify(q, qid, hold ? SCHED_HOLD : SCHED_RELEASE);
}

/* queue_flush_message - see queue.h. */
int queue_flush_message(struct queue *q, const char *qid)
{
	return sched_modify(q, qid, SCHED_FLUSH);
}

/* queue_requeue_message - see queue.h. */
int queue_requeue_message(struct queue *q, const char *qid)
{
	return sched_modify(q, qid, SCHED_REQUEUE);
}

/* queue_expire_message - see queue.h. */
int queue_expire_message(struct queue *q, const char *qid)
{
	return sched_modify(q, qid, SCHED_EXPIRE);
}
