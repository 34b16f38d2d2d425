/*
 * queue_schedule.c - the delivery side of the queue against a real
 * Berkeley DB environment in a temporary directory, with a uv loop and
 * the writer thread: the due scan (past, future, 0, held; order; max),
 * chunk reads of 0 B, 1 KB and 200 KB bodies, updates (deferred, done,
 * with a bounce, of a deleted message), hold/release/flush, and a spool
 * from before schedule.db getting its index built at open.
 * White-box where it must count body chunks (queue_impl.h).
 */
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

#include "queue/queue_impl.h"
#include "t/unit/tap.h"

struct ctx {
	struct queue *q;
	uv_loop_t loop;
	struct queue_id_gen gen;
	uv_thread_t main;
	char spool[64];
	int64_t now;
};

/* One message the test queued: its id and body. */
struct msg {
	char qid[QUEUE_ID_LEN + 1];
	unsigned char *body;
	size_t size;
};

/* What a callback saw; calls counts them (each must run exactly once). */
struct result {
	int calls, status;
	bool off_loop;		/* ran on another thread than the loop's */
	char ids[16][QUEUE_ID_LEN + 1];
	size_t n;
	char errmsg[200];
};

/* rm_one - nftw callback removing one file or directory. */
static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static struct ctx *g_ctx;	/* for the callbacks' thread check */

/* on_loop - true when called on the loop's thread. */
static bool on_loop(void)
{
	uv_thread_t self = uv_thread_self();

	return uv_thread_equal(&self, &g_ctx->main) != 0;
}

/* on_commit - queue_incoming_commit's callback. */
static void on_commit(void *arg, int status, const char *errmsg)
{
	struct result *r = arg;

	(void)errmsg;
	r->calls++;
	r->status = status;
}

/* on_resume - the writer has room again (the sends below just wait). */
static void on_resume(void *arg)
{
	(*(int *)arg)++;
}

/* queue_msg - queues a message of size bytes; rcpt recipients, all pending. */
static void queue_msg(struct ctx *c, struct msg *m, size_t size, int64_t next, uint32_t flags,
		      size_t nrcpt)
{
	struct queue_rcpt rcpt[3] = { { .addr = "a@example.org" }, { .addr = "b@example.org" },
				      { .addr = "c@example.net" } };
	struct queue_envelope env = { .sender = "s@example.com", .rcpt = rcpt, .nrcpt = nrcpt,
				      .arrival = c->now, .next_attempt = next, .flags = flags,
				      .protocol = "ESMTP" };
	struct result r = { 0 };
	struct queue_incoming *in;
	struct timeval tv;
	int resumed = 0;

	gettimeofday(&tv, NULL);
	queue_id_next(&c->gen, tv.tv_sec, (int32_t)tv.tv_usec, m->qid);
	m->size = size;
	if ((m->body = malloc(size ? size : 1)) == NULL)
		abort();
	for (size_t i = 0; i < size; i++)
		m->body[i] = (unsigned char)((i * 7 + (size_t)next) ^ (i >> 9));
	if ((in = queue_incoming_new(queue_port_main(c->q), m->qid, on_resume, &resumed)) == NULL)
		abort();
	for (size_t off = 0; off < size; off += 8192) {
		int before = resumed;
		int rc = queue_incoming_write(in, m->body + off, size - off < 8192 ? size - off : 8192);

		if (rc < 0)
			abort();
		while (rc == 1 && resumed == before)
			uv_run(&c->loop, UV_RUN_ONCE);
	}
	if (queue_incoming_commit(in, &env, on_commit, &r) != 0)
		abort();
	uv_run(&c->loop, UV_RUN_DEFAULT);
	if (r.calls != 1 || r.status != 0)
		abort();
}

/* on_due - records the ids the scan returned. */
static void on_due(void *arg, int status, struct queue_envelope *envs, size_t n)
{
	struct result *r = arg;

	r->calls++;
	r->off_loop |= !on_loop();
	r->status = status;
	r->n = n;
	for (size_t i = 0; i < n && i < 16; i++)
		memcpy(r->ids[i], envs[i].qid, sizeof(r->ids[i]));
}

/* due - a due scan run to completion. */
static struct result due(struct ctx *c, int64_t now, size_t max)
{
	struct result r = { 0 };

	if (queue_due_async(c->q, now, max, NULL, 0, on_due, &r) != 0)
		abort();
	uv_run(&c->loop, UV_RUN_DEFAULT);
	return r;
}

/* due_skipping - a due scan told that one message is in flight. */
static struct result due_skipping(struct ctx *c, int64_t now, size_t max, const char *qid)
{
	struct result r = { 0 };
	char skip[1][QUEUE_ID_LEN + 1];

	memcpy(skip[0], qid, QUEUE_ID_LEN + 1);
	if (queue_due_async(c->q, now, max, (const char (*)[QUEUE_ID_LEN + 1])skip, 1, on_due, &r) != 0)
		abort();
	uv_run(&c->loop, UV_RUN_DEFAULT);
	return r;
}

/* due_is - the scan returned exactly these ids, in this order, once. */
static bool due_is(const struct result *r, const struct msg *const *want, size_t n)
{
	if (r->calls != 1 || r->off_loop || r->status != QUEUE_OK || r->n != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(r->ids[i], want[i]->qid) != 0)
			return false;
	return true;
}

/* due_has - qid is among the ids a scan returned. */
static bool due_has(const struct result *r, const char *qid)
{
	for (size_t i = 0; i < r->n && i < 16; i++)
		if (strcmp(r->ids[i], qid) == 0)
			return true;
	return false;
}

/* A whole body read back chunk by chunk, each read asked for from the callback. */
struct reader {
	struct ctx *c;
	char qid[QUEUE_ID_LEN + 1];
	unsigned char *got;
	size_t len;
	uint32_t index, chunks;
	int status, calls, bad_last;
	bool done, off_loop;
};

/* on_chunk - appends a chunk; asks for the next until last. */
static void on_chunk(void *arg, int status, const void *data, size_t len, bool last)
{
	struct reader *rd = arg;
	unsigned char *p;

	rd->calls++;
	rd->off_loop |= !on_loop();
	rd->status = status;
	if (status != QUEUE_OK) {
		rd->done = true;
		return;
	}
	if ((p = realloc(rd->got, rd->len + len + 1)) == NULL)
		abort();
	rd->got = p;
	memcpy(rd->got + rd->len, data, len);
	rd->len += len;
	rd->chunks += len > 0;
	/* only the last chunk may be short, or a tail stored in pieces */
	if (!last && len != QUEUE_CHUNK_SIZE && len != QUEUE_PIECE_SIZE)
		rd->bad_last++;
	if (last) {
		rd->done = true;
		return;
	}
	if (queue_chunk_async(rd->c->q, rd->qid, ++rd->index, on_chunk, rd) != 0)
		abort();
}

/* read_body - the body of qid through queue_chunk_async; rd->got to free. */
static void read_body(struct ctx *c, const char *qid, uint32_t first, struct reader *rd)
{
	memset(rd, 0, sizeof(*rd));
	rd->c = c;
	rd->index = first;
	memcpy(rd->qid, qid, sizeof(rd->qid));
	if (queue_chunk_async(c->q, qid, first, on_chunk, rd) != 0)
		abort();
	uv_run(&c->loop, UV_RUN_DEFAULT);
}

/* body_count - chunks of qid in body.db. */
static size_t body_count(struct queue *q, const char *qid)
{
	DBT key = { .flags = DB_DBT_MALLOC }, data = { .flags = DB_DBT_MALLOC };
	size_t n = 0;
	DBC *cur;

	if (q->body->cursor(q->body, NULL, &cur, 0) != 0)
		abort();
	while (cur->get(cur, &key, &data, DB_NEXT) == 0) {
		n += memcmp(key.data, qid, QUEUE_ID_LEN) == 0;
		free(key.data);
		free(data.data);
	}
	cur->close(cur);
	return n;
}

/* on_update - queue_update_async's callback. */
static void on_update(void *arg, int status, const char *errmsg)
{
	struct result *r = arg;

	r->calls++;
	r->off_loop |= !on_loop();
	r->status = status;
	snprintf(r->errmsg, sizeof(r->errmsg), "%s", errmsg ? errmsg : "");
}

/* update - queue_update_async run to completion. */
static struct result update(struct ctx *c, const struct queue_envelope *env,
			    const struct queue_new_message *bounce)
{
	struct result r = { 0 };

	if (queue_update_async(c->q, env, bounce, on_update, &r) != 0)
		abort();
	uv_run(&c->loop, UV_RUN_DEFAULT);
	return r;
}

/* test_due - past, 0, future and held; order and max. */
static void test_due(struct tap *t, struct ctx *c, struct msg *m)
{
	struct result r;

	r = due(c, c->now, 10);
	TAP_OK(t, due_is(&r, (const struct msg *[]){ &m[1], &m[0], &m[4] }, 3),
	       "due: next_attempt 0, then now-100, then now-50; not future, not held (%zu)", r.n);
	r = due(c, c->now, 2);
	TAP_OK(t, due_is(&r, (const struct msg *[]){ &m[1], &m[0] }, 2), "due: max 2 respected");
	r = due(c, c->now + 7200, 10);
	TAP_OK(t, due_is(&r, (const struct msg *[]){ &m[1], &m[0], &m[4], &m[2] }, 4),
	       "due: two hours later the future one is due too, the held one never");
	r = due(c, -1, 10);
	TAP_OK(t, due_is(&r, (const struct msg *[]){ &m[1] }, 1), "due: at time 0 only next 0");
	r = due_skipping(c, c->now, 1, m[1].qid);
	TAP_OK(t, due_is(&r, (const struct msg *[]){ &m[0] }, 1),
	       "due: an in-flight id is skipped and not counted in max");
}

/* test_chunks - 0 B, 1 KB, 200 KB bodies read back; missing ones. */
static void test_chunks(struct tap *t, struct ctx *c, struct msg *m)
{
	/* 1 KB: two pieces (960 + 64, queue_impl.h); 200 KB: 3 x 60 KB + 20 KB */
	static const uint32_t want_chunks[] = { 0, 2, 4 };
	struct reader rd;

	for (int i = 0; i < 3; i++) {
		read_body(c, m[i].qid, 0, &rd);
		TAP_OK(t, rd.status == QUEUE_OK && rd.done && rd.len == m[i].size &&
		       (m[i].size == 0 || memcmp(rd.got, m[i].body, m[i].size) == 0),
		       "%zu-byte body read back byte-exact", m[i].size);
		TAP_OK(t, rd.chunks == want_chunks[i] && rd.bad_last == 0 &&
		       rd.calls == (int)(want_chunks[i] ? want_chunks[i] : 1) && !rd.off_loop,
		       "%zu bytes: %u chunk(s), one callback each on the loop thread", m[i].size,
		       rd.chunks);
		free(rd.got);
	}
	read_body(c, m[2].qid, 7, &rd);
	TAP_OK(t, rd.status == QUEUE_NOTFOUND && rd.calls == 1, "chunk past the end: NOTFOUND");
	free(rd.got);
	read_body(c, "2ZZZZZZZZZZZZZ", 0, &rd);
	TAP_OK(t, rd.status == QUEUE_NOTFOUND && rd.calls == 1, "unknown message: NOTFOUND");
	free(rd.got);
	TAP_OK(t, queue_chunk_async(c->q, "../x", 0, on_chunk, &rd) == -1,
	       "malformed id refused at once, no callback");
}

/* test_defer - some recipients pending: the new envelope moves in the schedule. */
static void test_defer(struct tap *t, struct ctx *c, struct msg *m)
{
	struct queue_envelope env;
	struct result r;

	if (queue_get(c->q, m->qid, &env) != QUEUE_OK)
		abort();
	env.rcpt[0].state = QUEUE_RCPT_SENT;
	env.rcpt[0].attempts = env.rcpt[1].attempts = 1;
	free(env.rcpt[1].last_reply);
	env.rcpt[1].last_reply = strdup("451 4.3.0 try later");
	env.next_attempt = c->now + 600;
	r = update(c, &env, NULL);
	queue_envelope_free(&env);
	TAP_OK(t, r.calls == 1 && r.status == QUEUE_OK && !r.off_loop, "deferred update: OK (%s)",
	       r.errmsg);
	r = due(c, c->now, 10);
	TAP_OK(t, r.status == QUEUE_OK && !due_has(&r, m->qid), "deferred message no longer due");
	r = due(c, c->now + 600, 10);
	TAP_OK(t, due_has(&r, m->qid), "... and due again at its next attempt");
	TAP_OK(t, queue_get(c->q, m->qid, &env) == QUEUE_OK && env.next_attempt == c->now + 600 &&
	       env.rcpt[0].state == QUEUE_RCPT_SENT && env.rcpt[1].attempts == 1 &&
	       env.rcpt[1].last_reply && strcmp(env.rcpt[1].last_reply, "451 4.3.0 try later") == 0,
	       "stored envelope has the new states, attempts and reply");
	queue_envelope_free(&env);
	TAP_OK(t, body_count(c->q, m->qid) == 4, "body kept (4 chunks)");
}

/* test_done - every recipient done: the message goes. */
static void test_done(struct tap *t, struct ctx *c, struct msg *m)
{
	struct queue_envelope env;
	struct result r;

	if (queue_get(c->q, m->qid, &env) != QUEUE_OK)
		abort();
	for (size_t i = 0; i < env.nrcpt; i++)
		env.rcpt[i].state = i ? QUEUE_RCPT_FAILED : QUEUE_RCPT_SENT;
	r = update(c, &env, NULL);
	queue_envelope_free(&env);
	TAP_OK(t, r.calls == 1 && r.status == QUEUE_OK, "finished update: OK (%s)", r.errmsg);
	TAP_OK(t, queue_get(c->q, m->qid, &env) == QUEUE_NOTFOUND, "finished: envelope deleted");
	TAP_OK(t, body_count(c->q, m->qid) == 0, "finished: body chunks deleted");
	r = due(c, c->now + 100000, 10);
	TAP_OK(t, !due_has(&r, m->qid), "finished: gone from the schedule");
	/* Updating it again: it was deleted meanwhile. */
	if (queue_get(c->q, m[1].qid, &env) != QUEUE_OK)	/* any envelope, renamed */
		abort();
	memcpy(env.qid, m->qid, sizeof(env.qid));
	r = update(c, &env, NULL);
	TAP_OK(t, r.calls == 1 && r.status == QUEUE_NOTFOUND, "update of a deleted message: NOTFOUND");
	TAP_OK(t, queue_get(c->q, m->qid, &env) == QUEUE_NOTFOUND, "... and nothing written");
	queue_envelope_free(&env);
}

/* bounce_env - a bounce's envelope to sender, with a fresh id. */
static void bounce_env(struct ctx *c, struct queue_envelope *b, struct queue_rcpt *r)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	memset(b, 0, sizeof(*b));
	queue_id_next(&c->gen, tv.tv_sec, (int32_t)tv.tv_usec, b->qid);
	*r = (struct queue_rcpt){ .addr = "s@example.com" };
	b->sender = "";
	b->rcpt = r;
	b->nrcpt = 1;
	b->arrival = tv.tv_sec;
	b->protocol = "local";
}

/* test_bounce - a failed message queues its bounce in the same transaction. */
static void test_bounce(struct tap *t, struct ctx *c, struct msg *all)
{
	struct msg *m = &all[4], *other = &all[1], *gone = &all[5];
	struct queue_envelope env, benv, got;
	struct queue_rcpt brcpt;
	struct msg body = { 0 };
	struct reader rd;
	struct result r;
	size_t blen = 130 * 1024;

	if ((body.body = malloc(blen)) == NULL || queue_get(c->q, m->qid, &env) != QUEUE_OK)
		abort();
	for (size_t i = 0; i < blen; i++)
		body.body[i] = (unsigned char)(i % 251);
	for (size_t i = 0; i < env.nrcpt; i++)
		env.rcpt[i].state = QUEUE_RCPT_FAILED;
	bounce_env(c, &benv, &brcpt);
	r = update(c, &env, &(struct queue_new_message){ &benv, body.body, blen });
	TAP_OK(t, r.calls == 1 && r.status == QUEUE_OK, "update with bounce: OK (%s)", r.errmsg);
	TAP_OK(t, queue_get(c->q, m->qid, &got) == QUEUE_NOTFOUND, "original deleted");
	TAP_OK(t, queue_get(c->q, benv.qid, &got) == QUEUE_OK && got.size == blen &&
	       got.sender[0] == '\0' && got.nrcpt == 1, "bounce queued with its size");
	queue_envelope_free(&got);
	r = due(c, c->now, 10);
	TAP_OK(t, due_has(&r, benv.qid), "bounce is due at once");
	read_body(c, benv.qid, 0, &rd);
	TAP_OK(t, rd.status == QUEUE_OK && rd.len == blen && memcmp(rd.got, body.body, blen) == 0 &&
	       rd.chunks == 3, "bounce body reads back in 3 chunks");
	free(rd.got);

	/* Its id taken: nothing happens at all. */
	queue_envelope_free(&env);
	if (queue_get(c->q, other->qid, &env) != QUEUE_OK)
		abort();
	env.rcpt[0].state = QUEUE_RCPT_FAILED;
	r = update(c, &env, &(struct queue_new_message){ &benv, "x", 1 });
	TAP_OK(t, r.calls == 1 && r.status == QUEUE_ERROR && strstr(r.errmsg, "already in use"),
	       "bounce id in use: refused (%s)", r.errmsg);
	TAP_OK(t, queue_get(c->q, other->qid, &got) == QUEUE_OK &&
	       got.rcpt[0].state == QUEUE_RCPT_PENDING, "... and the original is untouched");
	queue_envelope_free(&got);

	/* A deleted message: no bounce either. */
	bounce_env(c, &benv, &brcpt);
	memcpy(env.qid, gone->qid, sizeof(env.qid));
	r = update(c, &env, &(struct queue_new_message){ &benv, "x", 1 });
	TAP_OK(t, r.status == QUEUE_NOTFOUND && queue_get(c->q, benv.qid, &got) == QUEUE_NOTFOUND,
	       "deleted message: NOTFOUND and no bounce queued");
	queue_envelope_free(&env);
	free(body.body);
}

/* test_hold - hold, release, flush through the mtaq calls. */
static void test_hold(struct tap *t, struct ctx *c, struct msg *m)
{
	struct queue_envelope env;
	struct result r;

	TAP_OK(t, queue_set_hold(c->q, m[1].qid, true) == QUEUE_OK, "hold");
	r = due(c, c->now, 10);
	TAP_OK(t, r.status == QUEUE_OK && !due_has(&r, m[1].qid), "held: not due");
	TAP_OK(t, queue_get(c->q, m[1].qid, &env) == QUEUE_OK && (env.flags & QUEUE_FLAG_HELD),
	       "held: flag stored");
	/* A delivery that started before the hold records its outcome: the hold stays. */
	env.flags = 0;
	env.rcpt[0].attempts = 1;
	r = update(c, &env, NULL);
	queue_envelope_free(&env);
	TAP_OK(t, r.status == QUEUE_OK && queue_get(c->q, m[1].qid, &env) == QUEUE_OK &&
	       (env.flags & QUEUE_FLAG_HELD) && env.rcpt[0].attempts == 1,
	       "an update during the hold keeps it");
	queue_envelope_free(&env);
	TAP_OK(t, queue_set_hold(c->q, m[1].qid, false) == QUEUE_OK, "release");
	r = due(c, c->now, 10);
	TAP_OK(t, due_has(&r, m[1].qid), "released: due again");
	r = due(c, c->now, 10);
	TAP_OK(t, !due_has(&r, m[2].qid), "future message not due");
	TAP_OK(t, queue_flush_message(c->q, m[2].qid) == QUEUE_OK, "flush");
	r = due(c, c->now, 10);
	TAP_OK(t, due_has(&r, m[2].qid) && due_has(&r, m[1].qid), "flushed: due now");
	TAP_OK(t, queue_flush_message(c->q, m[3].qid) == QUEUE_OK, "flush a held message");
	r = due(c, c->now, 10);
	TAP_OK(t, !due_has(&r, m[3].qid), "... it stays held, not due");
	TAP_OK(t, queue_set_hold(c->q, "2ZZZZZZZZZZZZZ", true) == QUEUE_NOTFOUND &&
	       queue_flush_message(c->q, "2ZZZZZZZZZZZZZ") == QUEUE_NOTFOUND &&
	       queue_set_hold(c->q, "bad", false) == QUEUE_NOTFOUND, "unknown ids: NOTFOUND");
}

/* test_requeue_expire - requeue starts over; expire marks and makes due,
 * and an attempt recorded meanwhile keeps the mark. */
static void test_requeue_expire(struct tap *t, struct ctx *c, struct msg *m)
{
	struct queue_envelope env;
	struct result r;

	if (queue_get(c->q, m->qid, &env) != QUEUE_OK)
		abort();
	/* recipient 0 was sent in test_defer, 1 and 2 wait */
	env.rcpt[1].attempts = 3;
	env.next_attempt = c->now + 7200;
	r = update(c, &env, NULL);
	queue_envelope_free(&env);
	TAP_OK(t, r.status == QUEUE_OK && !due_has((r = due(c, c->now, 10), &r), m->qid),
	       "deferred: not due");
	TAP_OK(t, queue_requeue_message(c->q, m->qid) == QUEUE_OK, "requeue");
	r = due(c, c->now, 10);
	TAP_OK(t, due_has(&r, m->qid), "requeued: due now");
	TAP_OK(t, queue_get(c->q, m->qid, &env) == QUEUE_OK && env.rcpt[1].attempts == 0 &&
	       env.rcpt[0].attempts == 1 && env.rcpt[0].state == QUEUE_RCPT_SENT,
	       "... the pending recipient starts over, the sent one is untouched");
	/* the runner records an attempt with its own copy: next try in an hour */
	env.rcpt[1].attempts = 1;
	env.next_attempt = c->now + 3600;
	TAP_OK(t, queue_expire_message(c->q, m->qid) == QUEUE_OK, "expire");
	r = update(c, &env, NULL);
	queue_envelope_free(&env);
	TAP_OK(t, r.status == QUEUE_OK && queue_get(c->q, m->qid, &env) == QUEUE_OK &&
	       (env.flags & QUEUE_FLAG_EXPIRE) && env.next_attempt == 0 &&
	       env.rcpt[1].attempts == 1, "an attempt recorded after expire keeps the mark, due now");
	queue_envelope_free(&env);
	r = due(c, c->now, 10);
	TAP_OK(t, due_has(&r, m->qid), "expired: due (the runner bounces it)");
	TAP_OK(t, queue_requeue_message(c->q, "2ZZZZZZZZZZZZZ") == QUEUE_NOTFOUND &&
	       queue_expire_message(c->q, "bad") == QUEUE_NOTFOUND, "unknown ids: NOTFOUND");
}

/* reopen - closes the queue and opens it again with the writer. */
static int reopen(struct ctx *c, bool drop_schedule)
{
	char err[200];
	DB_ENV *env;

	queue_writer_stop(c->q);
	uv_run(&c->loop, UV_RUN_DEFAULT);
	queue_close(c->q);
	c->q = NULL;
	if (drop_schedule) {
		/* What a spool from before schedule.db looks like. */
		if (db_env_create(&env, 0) != 0 ||
		    env->open(env, c->spool, DB_INIT_TXN | DB_INIT_LOG | DB_INIT_LOCK |
			      DB_INIT_MPOOL | DB_THREAD, 0600) != 0 ||
		    env->dbremove(env, NULL, "schedule.db", NULL, DB_AUTO_COMMIT) != 0 ||
		    env->close(env, 0) != 0)
			return -1;
	}
	if ((c->q = queue_open(&(struct queue_options){ .spool_directory = c->spool }, err,
			       sizeof(err))) == NULL)
		return -1;
	return queue_writer_start(c->q, &c->loop, err, sizeof(err));
}

/* test_old_spool - no schedule.db: the index is built at open. */
static void test_old_spool(struct tap *t, struct ctx *c, struct msg *m)
{
	char path[128];
	struct stat st;
	struct result before, after;

	before = due(c, c->now + 100000, 16);
	TAP_OK(t, reopen(c, true) == 0, "reopened after removing schedule.db");
	snprintf(path, sizeof(path), "%s/schedule.db", c->spool);
	TAP_OK(t, stat(path, &st) == 0, "schedule.db created again");
	after = due(c, c->now + 100000, 16);
	TAP_OK(t, before.n >= 3 && after.n == before.n &&
	       memcmp(before.ids, after.ids, sizeof(before.ids)) == 0,
	       "rebuilt index gives the same %zu due messages in the same order", after.n);
	TAP_OK(t, !due_has(&after, m[3].qid), "held message still not indexed");
	TAP_OK(t, reopen(c, false) == 0, "reopened with schedule.db present");
	after = due(c, c->now + 100000, 16);
	TAP_OK(t, after.n == before.n, "no duplicate index entries on a normal open");
}

int main(void)
{
	char dir[] = "/tmp/queue_schedule.XXXXXX", err[200] = "";
	struct ctx c = { 0 };
	struct msg m[6];
	struct tap t = { 0 };

	g_ctx = &c;
	c.main = uv_thread_self();
	c.now = time(NULL);
	if (mkdtemp(dir) == NULL || uv_loop_init(&c.loop) != 0)
		abort();
	snprintf(c.spool, sizeof(c.spool), "%s/spool", dir);
	c.q = queue_open(&(struct queue_options){ .spool_directory = c.spool }, err, sizeof(err));
	TAP_OK(&t, c.q != NULL, "queue_open creates %s (%s)", c.spool, err);
	if (c.q == NULL)
		return tap_done(&t);
	TAP_OK(&t, queue_writer_start(c.q, &c.loop, err, sizeof(err)) == 0, "writer started");
	queue_msg(&c, &m[0], 0, c.now - 100, 0, 2);		/* due */
	queue_msg(&c, &m[1], 1024, 0, 0, 1);			/* due first */
	queue_msg(&c, &m[2], 200 * 1024, c.now + 3600, 0, 3);	/* future */
	queue_msg(&c, &m[3], 10, 0, QUEUE_FLAG_HELD, 1);	/* held */
	queue_msg(&c, &m[4], 10, c.now - 50, 0, 2);		/* due third */
	queue_msg(&c, &m[5], 10, c.now - 10, 0, 1);		/* deleted below */
	TAP_OK(&t, queue_delete(c.q, m[5].qid) == QUEUE_OK, "6 messages queued, one deleted");
	test_due(&t, &c, m);
	test_chunks(&t, &c, m);
	test_defer(&t, &c, &m[2]);
	test_done(&t, &c, &m[0]);
	test_bounce(&t, &c, m);
	test_hold(&t, &c, m);
	test_requeue_expire(&t, &c, &m[2]);
	test_old_spool(&t, &c, m);
	queue_writer_stop(c.q);
	TAP_OK(&t, queue_due_async(c.q, c.now, 1, NULL, 0, on_due, NULL) == -1 &&
	       queue_update_async(c.q, &(struct queue_envelope){ .qid = "2ZZZZZZZZZZZZZ" }, NULL,
				  on_update, NULL) == -1,
	       "writer stopped: calls refused, no callback");
	uv_run(&c.loop, UV_RUN_DEFAULT);
	queue_close(c.q);
	TAP_OK(&t, uv_loop_close(&c.loop) == 0, "loop closes: no handle left behind");
	for (int i = 0; i < 6; i++)
		free(m[i].body);
	TAP_OK(&t, nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0, "temp directory removed");
	return tap_done(&t);
}
