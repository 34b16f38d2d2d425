/*
 * queue_store.c - the queue against a real Berkeley DB environment in a
 * temporary directory: messages of 0 B, 1 KB and 1 MB through the
 * writer, read back byte-exact; abort, delete, orphan cleanup at start;
 * 200 concurrent commits sharing log flushes (group commit).
 * White-box where it must count body chunks (queue_impl.h).
 */
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "queue/queue_impl.h"
#include "t/unit/tap.h"

struct msg {
	char qid[QUEUE_ID_LEN + 1];
	struct queue_incoming *in;
	unsigned char *body;
	size_t size, sent;
	int resumed, pauses, done, status;
	char errmsg[200];
};

struct ctx {
	struct queue *q;
	uv_loop_t loop;
	struct queue_id_gen gen;
};

/* rm_one - nftw callback removing one file or directory. */
static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

/* new_qid - a fresh id from the clock. */
static void new_qid(struct ctx *c, char qid[QUEUE_ID_LEN + 1])
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	queue_id_next(&c->gen, tv.tv_sec, (int32_t)tv.tv_usec, qid);
}

/* on_resume - the writer has room again. */
static void on_resume(void *arg)
{
	((struct msg *)arg)->resumed++;
}

/* on_commit - records the outcome; must run exactly once. */
static void on_commit(void *arg, int status, const char *errmsg)
{
	struct msg *m = arg;

	m->done++;
	m->status = status;
	snprintf(m->errmsg, sizeof(m->errmsg), "%s", errmsg ? errmsg : "");
}

/* msg_init - a message body of size bytes with a recognisable pattern. */
static void msg_init(struct ctx *c, struct msg *m, size_t size, unsigned seed)
{
	memset(m, 0, sizeof(*m));
	new_qid(c, m->qid);
	m->size = size;
	m->body = malloc(size ? size : 1);
	if (m->body == NULL)
		abort();
	for (size_t i = 0; i < size; i++)
		m->body[i] = (unsigned char)((i * 131 + seed) ^ (i >> 8));
	m->in = queue_incoming_new(queue_port_main(c->q), m->qid, on_resume, m);
}

/* msg_send - writes the body in 4 KB pieces, pausing when told to. */
static void msg_send(struct ctx *c, struct msg *m)
{
	while (m->sent < m->size) {
		size_t n = m->size - m->sent < 4096 ? m->size - m->sent : 4096;
		int rc = queue_incoming_write(m->in, m->body + m->sent, n);

		m->sent += n;
		if (rc < 0)
			abort();
		if (rc == 1) {
			int before = m->resumed;

			m->pauses++;
			while (m->resumed == before)
				uv_run(&c->loop, UV_RUN_ONCE);
		}
	}
}

/* envelope - a small envelope for tests. */
static void envelope(struct queue_envelope *env, struct queue_rcpt *rcpt)
{
	memset(env, 0, sizeof(*env));
	memset(rcpt, 0, sizeof(*rcpt));
	rcpt->addr = "rcpt\r\n@example.org";
	env->sender = "sender@example.com";
	env->rcpt = rcpt;
	env->nrcpt = 1;
	env->arrival = 1700000000;
	env->client_ip = "192.0.2.7";
	env->protocol = "ESMTP";
}

/* msg_commit - commits m with the test envelope. */
static void msg_commit(struct msg *m)
{
	struct queue_envelope env;
	struct queue_rcpt rcpt;

	envelope(&env, &rcpt);
	if (queue_incoming_commit(m->in, &env, on_commit, m) != 0)
		abort();
}

/* body_count - chunks of qid in body.db (or of all ids when qid is NULL). */
static size_t body_count(struct queue *q, const char *qid)
{
	DBT key = { .flags = DB_DBT_MALLOC }, data = { .flags = DB_DBT_MALLOC };
	size_t n = 0;
	DBC *cur;

	if (q->body->cursor(q->body, NULL, &cur, 0) != 0)
		abort();
	while (cur->get(cur, &key, &data, DB_NEXT) == 0) {
		if (qid == NULL || memcmp(key.data, qid, QUEUE_ID_LEN) == 0)
			n++;
		free(key.data);
		free(data.data);
	}
	cur->close(cur);
	return n;
}

/* body_equal - the stored body is exactly m's. */
static int body_equal(struct queue *q, const struct msg *m)
{
	char *got = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&got, &len);
	int rc, same;

	if (f == NULL)
		abort();
	rc = queue_body_write(q, m->qid, f);
	fclose(f);
	same = rc == QUEUE_OK && len == m->size && memcmp(got, m->body, len) == 0;
	free(got);
	return same;
}

/* test_sizes - 0 B, 1 KB, 1 MB round trips. */
static void test_sizes(struct tap *t, struct ctx *c, struct msg *m)
{
	static const size_t sizes[] = { 0, 1024, 1024 * 1024 };

	for (size_t i = 0; i < 3; i++) {
		struct queue_envelope env;

		msg_init(c, &m[i], sizes[i], (unsigned)i);
		TAP_OK(t, m[i].in != NULL, "incoming %zu bytes", sizes[i]);
		msg_send(c, &m[i]);
		msg_commit(&m[i]);
		uv_run(&c->loop, UV_RUN_DEFAULT);
		TAP_OK(t, m[i].done == 1 && m[i].status == 0, "%zu bytes committed once (%s)",
		       sizes[i], m[i].errmsg);
		TAP_OK(t, queue_get(c->q, m[i].qid, &env) == QUEUE_OK, "queue_get %s", m[i].qid);
		TAP_OK(t, env.size == sizes[i] && strcmp(env.rcpt[0].addr, "rcpt\r\n@example.org") == 0,
		       "envelope size and recipient stored");
		queue_envelope_free(&env);
		TAP_OK(t, body_equal(c->q, &m[i]), "%zu-byte body byte-exact", sizes[i]);
	}
	TAP_OK(t, m[2].pauses > 0, "1 MB message was paused %d times (bounded memory)", m[2].pauses);
}

/* count_fn - queue_foreach callback: counts and checks the order. */
static int count_fn(const char *qid, const struct queue_envelope *env, void *arg)
{
	char *last = arg;

	if (env == NULL || strcmp(last, qid) >= 0)
		return 1;
	memcpy(last, qid, QUEUE_ID_LEN + 1);
	last[QUEUE_ID_LEN + 1]++;
	return 0;
}

/* queue_size - messages queue_foreach sees (all in order, undamaged) or -1. */
static int queue_size(struct queue *q)
{
	char last[QUEUE_ID_LEN + 2] = { 0 };

	if (queue_foreach(q, count_fn, last) != QUEUE_OK)
		return -1;
	return (unsigned char)last[QUEUE_ID_LEN + 1];
}

/* test_abort - an aborted message leaves nothing. */
static void test_abort(struct tap *t, struct ctx *c)
{
	struct msg a, b;

	msg_init(c, &a, 300 * 1024, 7);
	msg_send(c, &a);
	queue_incoming_abort(a.in);
	uv_run(&c->loop, UV_RUN_DEFAULT);
	TAP_OK(t, body_count(c->q, a.qid) == 0, "abort after chunks: no chunk left");
	msg_init(c, &b, 100, 8);
	msg_send(c, &b);
	queue_incoming_abort(b.in);
	uv_run(&c->loop, UV_RUN_DEFAULT);
	TAP_OK(t, queue_body_write(c->q, b.qid, stdout) == QUEUE_NOTFOUND,
	       "abort before any chunk: no message");
	TAP_OK(t, a.done == 0 && b.done == 0, "no commit callback for aborted messages");
	free(a.body);
	free(b.body);
}

/* test_duplicate - a second commit under a used id fails, cb still once. */
static void test_duplicate(struct tap *t, struct ctx *c, const struct msg *first)
{
	struct msg d;

	msg_init(c, &d, 10, 9);
	queue_incoming_abort(d.in);
	memcpy(d.qid, first->qid, sizeof(d.qid));
	d.in = queue_incoming_new(queue_port_main(c->q), d.qid, on_resume, &d);
	msg_send(c, &d);
	msg_commit(&d);
	uv_run(&c->loop, UV_RUN_DEFAULT);
	TAP_OK(t, d.done == 1 && d.status != 0 && strstr(d.errmsg, "already in use"),
	       "duplicate id refused: %s", d.errmsg);
	TAP_OK(t, body_equal(c->q, first), "the first message is untouched");
	free(d.body);
}

/* test_concurrent - 200 messages committed together share flushes. */
static void test_concurrent(struct tap *t, struct ctx *c)
{
	enum { N = 200 };
	struct msg *m = calloc(N, sizeof(*m));
	uint64_t c0, f0, c1, f1;
	int ok = 0, exact = 0;

	if (m == NULL)
		abort();
	queue_writer_stats(c->q, &c0, &f0);
	for (int i = 0; i < N; i++) {
		msg_init(c, &m[i], 1024, (unsigned)i);
		msg_send(c, &m[i]);
	}
	for (int i = 0; i < N; i++)
		msg_commit(&m[i]);
	uv_run(&c->loop, UV_RUN_DEFAULT);
	queue_writer_stats(c->q, &c1, &f1);
	for (int i = 0; i < N; i++) {
		ok += m[i].done == 1 && m[i].status == 0;
		exact += body_equal(c->q, &m[i]);
		free(m[i].body);
	}
	TAP_OK(t, ok == N, "%d of %d concurrent commits succeeded", ok, N);
	TAP_OK(t, exact == N, "%d of %d bodies byte-exact", exact, N);
	TAP_OK(t, c1 - c0 == N, "writer counted %llu commits", (unsigned long long)(c1 - c0));
	TAP_OK(t, f1 - f0 < N, "%llu log flushes for %d messages (group commit)",
	       (unsigned long long)(f1 - f0), N);
	free(m);
}

/* test_orphans - chunks without an envelope go at writer start. */
static void test_orphans(struct tap *t, struct ctx *c, const struct msg *kept)
{
	unsigned char kbuf[QUEUE_BODY_KEYLEN];
	DBT key = { .data = kbuf, .size = sizeof(kbuf) }, data = { .data = "x", .size = 1 };
	char orphan[QUEUE_ID_LEN + 1], err[200];

	new_qid(c, orphan);
	for (uint32_t n = 0; n < 3; n++) {
		queue_body_key(kbuf, orphan, n);
		if (c->q->body->put(c->q->body, NULL, &key, &data, 0) != 0)
			abort();
	}
	TAP_OK(t, body_count(c->q, orphan) == 3, "orphan chunks planted");
	queue_writer_stop(c->q);
	uv_run(&c->loop, UV_RUN_DEFAULT);
	TAP_OK(t, queue_writer_start(c->q, &c->loop, err, sizeof(err)) == 0, "writer restarted");
	TAP_OK(t, body_count(c->q, orphan) == 0, "orphan chunks removed at start");
	TAP_OK(t, body_equal(c->q, kept), "a committed message keeps its body");
}

/* test_delete - envelope and all chunks go in one call. */
static void test_delete(struct tap *t, struct ctx *c, const struct msg *m)
{
	struct queue_envelope env;

	TAP_OK(t, queue_delete(c->q, m->qid) == QUEUE_OK, "delete %s", m->qid);
	TAP_OK(t, queue_get(c->q, m->qid, &env) == QUEUE_NOTFOUND, "gone from envelope.db");
	TAP_OK(t, body_count(c->q, m->qid) == 0, "no chunk left");
	TAP_OK(t, queue_delete(c->q, m->qid) == QUEUE_NOTFOUND, "second delete: not found");
	TAP_OK(t, queue_delete(c->q, "../etc/passwd") == QUEUE_NOTFOUND, "bad id: not found");
}

int main(void)
{
	char dir[] = "/tmp/queue_store.XXXXXX", spool[64], err[200] = "";
	struct ctx c = { 0 };
	struct msg m[3];
	struct tap t = { 0 };

	if (mkdtemp(dir) == NULL || uv_loop_init(&c.loop) != 0)
		abort();
	snprintf(spool, sizeof(spool), "%s/spool", dir);
	c.q = queue_open(&(struct queue_options){ .spool_directory = spool }, err, sizeof(err));
	TAP_OK(&t, c.q != NULL, "queue_open creates %s (%s)", spool, err);
	if (c.q == NULL)
		return tap_done(&t);
	TAP_OK(&t, queue_writer_start(c.q, &c.loop, err, sizeof(err)) == 0, "writer started");
	test_sizes(&t, &c, m);
	TAP_OK(&t, queue_size(c.q) == 3, "queue_foreach sees 3 messages in order");
	test_abort(&t, &c);
	test_duplicate(&t, &c, &m[1]);
	test_concurrent(&t, &c);
	TAP_OK(&t, queue_size(c.q) == 203, "queue_foreach sees 203 messages in order");
	test_orphans(&t, &c, &m[2]);
	test_delete(&t, &c, &m[2]);
	queue_writer_stop(c.q);
	uv_run(&c.loop, UV_RUN_DEFAULT);
	queue_close(c.q);
	TAP_OK(&t, uv_loop_close(&c.loop) == 0, "loop closes: no handle left behind");
	for (int i = 0; i < 3; i++)
		free(m[i].body);
	TAP_OK(&t, nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0, "temp directory removed");
	return tap_done(&t);
}
