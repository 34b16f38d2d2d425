/*
 * pump.c - moves one connection's bytes between its libuv stream and
 * its tls_conn: the part of a TLS transport that the server
 * (mtad/listen.c) and the SMTP client (deliver/client.c) share. Writes
 * go out with a counted backlog (plaintext before TLS too), the
 * engine's output is flushed after every step, ciphertext from the
 * socket is fed in, the handshake driven, and plaintext handed to the
 * owner while it takes it.
 *
 * Must not: block; read on its own (the owner's read callback brings
 * the ciphertext, so the owner chooses the buffer and when to read);
 * hold more than one chunk of engine output on the stack at a time, or
 * anything once written; call back after the owner's failure callback
 * in the same step; log (the owner words its own lines).
 *
 * Follows: RFC 8446 §6.1 (close_notify, not waited for), RFC 3207 and
 * RFC 8314 through its owners.
 */
#include <stdlib.h>
#include <string.h>

#include "tls/tls.h"

#define PUMP_CHUNK 16384	/* engine output moved to the socket per write */
#define CLOSE_NOTIFY_MAX 512	/* a close_notify alert, and room to spare */

struct pump_write {
	uv_write_t req;
	struct tls_pump *p;
	size_t len;
	char data[];
};

/* tls_pump_init - see tls.h. */
void tls_pump_init(struct tls_pump *p, uv_stream_t *stream, const struct tls_pump_ops *ops,
		   void *ctx, bool try_write, size_t backlog_max)
{
	memset(p, 0, sizeof(*p));
	p->stream = stream;
	p->ops = ops;
	p->ctx = ctx;
	p->try_write = try_write;
	p->backlog_max = backlog_max;
}

static void pump_written(uv_write_t *req, int status)
{
	struct pump_write *w = (struct pump_write *)req;
	struct tls_pump *p = w->p;

	p->backlog -= w->len;
	p->writes_pending--;
	free(w);
	if (p->over && p->backlog < p->backlog_max / 2) {
		p->over = false;
		if (p->ops->backlog)
			p->ops->backlog(p->ctx, false);
	}
	if (p->ops->written)
		p->ops->written(p->ctx, status);
}

/* pump_write - bytes for the socket: at once when it takes them (try_write), else queued. */
static int pump_write(struct tls_pump *p, const char *data, size_t len)
{
	struct pump_write *w;
	uv_buf_t buf;
	int n = 0, r;

	if (len == 0)
		return 0;
	if (p->try_write && p->backlog == 0) {
		buf = uv_buf_init((char *)data, (unsigned)len);
		n = uv_try_write(p->stream, &buf, 1);
		if (n == (int)len)
			return 0;
		if (n < 0)
			n = 0;
	}
	w = malloc(sizeof(*w) + len - (size_t)n);
	if (!w)
		return UV_ENOMEM;
	w->p = p;
	w->len = len - (size_t)n;
	memcpy(w->data, data + n, w->len);
	buf = uv_buf_init(w->data, (unsigned)w->len);
	if ((r = uv_write(&w->req, p->stream, &buf, 1, pump_written)) != 0) {
		free(w);
		return r;
	}
	p->backlog += w->len;
	p->writes_pending++;
	if (p->backlog_max > 0 && p->backlog > p->backlog_max && !p->over) {
		p->over = true;
		if (p->ops->backlog)
			p->ops->backlog(p->ctx, true);
	}
	return 0;
}

/* pump_flush - the ciphertext the engine has ready, to the socket. 0 or a libuv error. */
static int pump_flush(struct tls_pump *p)
{
	char buf[PUMP_CHUNK];
	size_t n;
	int r;

	while (tls_conn_output_pending(p->tls) > 0 &&
	       (n = tls_conn_output(p->tls, buf, sizeof(buf))) > 0)
		if ((r = pump_write(p, buf, n)) != 0)
			return r;
	return 0;
}

/* tls_pump_send - see tls.h. */
int tls_pump_send(struct tls_pump *p, const char *data, size_t len)
{
	int wr, fr;

	if (p->tls == NULL)
		return pump_write(p, data, len);
	wr = tls_conn_write(p->tls, data, len);
	fr = pump_flush(p);
	return wr != 0 ? UV_EPROTO : fr;
}

/* tls_pump_start - see tls.h. */
int tls_pump_start(struct tls_pump *p, struct tls_conn *tls, bool hello)
{
	p->tls = tls;
	p->handshaking = true;
	if (!hello)
		return 0;
	if (tls_conn_handshake(tls) == TLS_FAILED)
		return -1;
	return pump_flush(p) == 0 ? 0 : -1;
}

/* pump_failed - tells the owner, with the engine's reason (NULL: the peer closed). */
static void pump_failed(struct tls_pump *p, enum tls_pump_failure what, enum tls_status st)
{
	p->ops->failed(p->ctx, what, st == TLS_CLOSED ? NULL : tls_conn_error(p->tls));
}

/* pump_send_failed - the engine's output could not be queued. */
static void pump_send_failed(struct tls_pump *p, int r)
{
	p->ops->failed(p->ctx, TLS_PUMP_SEND, uv_strerror(r));
}

/* pump_plaintext - reads while the owner has room; false after a failure. */
static bool pump_plaintext(struct tls_pump *p)
{
	for (;;) {
		enum tls_status st;
		size_t len = 0, n = 0;
		char *buf = NULL;
		int r;

		p->ops->inbuf(p->ctx, &buf, &len);
		if (len == 0)
			return true;
		st = tls_conn_read(p->tls, buf, len, &n);
		/* Reading may answer the peer (a key update, an alert). */
		if ((r = pump_flush(p)) != 0) {
			pump_send_failed(p, r);
			return false;
		}
		if (st == TLS_WANT_MORE || (st == TLS_DONE && n == 0))
			return true;
		if (st != TLS_DONE) {
			pump_failed(p, TLS_PUMP_READ, st);
			return false;
		}
		p->ops->received(p->ctx, n);
	}
}

/* tls_pump_read - see tls.h. */
void tls_pump_read(struct tls_pump *p)
{
	if (p->tls == NULL || p->handshaking)
		return;
	if (p->pumping) {
		p->pump_again = true;
		return;
	}
	p->pumping = true;
	do {
		p->pump_again = false;
		if (!pump_plaintext(p))
			break;
	} while (p->pump_again);
	p->pumping = false;
}

/* tls_pump_input - see tls.h. */
void tls_pump_input(struct tls_pump *p, const char *data, size_t n)
{
	enum tls_status st;
	int r;

	if (tls_conn_feed(p->tls, data, n) != 0) {
		p->ops->failed(p->ctx, TLS_PUMP_NOMEM, "out of memory");
		return;
	}
	if (p->handshaking) {
		st = tls_conn_handshake(p->tls);
		if ((r = pump_flush(p)) != 0) {
			pump_send_failed(p, r);
			return;
		}
		if (st == TLS_WANT_MORE)
			return;
		if (st != TLS_DONE) {
			pump_failed(p, TLS_PUMP_HANDSHAKE, st);
			return;
		}
		p->handshaking = false;
		p->ops->handshake_done(p->ctx);
	}
	tls_pump_read(p);
}

/* tls_pump_shutdown - see tls.h. */
void tls_pump_shutdown(struct tls_pump *p, bool now)
{
	char buf[CLOSE_NOTIFY_MAX];
	uv_buf_t b;
	size_t n;

	if (p->tls == NULL || p->handshaking)
		return;
	tls_conn_shutdown(p->tls);
	if (!now) {
		(void)pump_flush(p);	/* best effort: the connection is closing */
		return;
	}
	n = tls_conn_output(p->tls, buf, sizeof(buf));
	b = uv_buf_init(buf, (unsigned)n);
	if (n > 0)
		(void)uv_try_write(p->stream, &b, 1);
}

/* tls_pump_free - see tls.h. */
void tls_pump_free(struct tls_pump *p)
{
	tls_conn_free(p->tls);
	p->tls = NULL;
}
