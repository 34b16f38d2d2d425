/*
 * tls_pump.c - unit tests for tls/pump.c: two pumps on one libuv loop,
 * joined by a Unix socketpair, one the server side (a tls_server with a
 * certificate made at start by the openssl command), the other the
 * client side. Plaintext before TLS, the handshake both ways, plaintext
 * both ways, held while the owner gives no room and pulled later, the
 * write backlog going over its limit while the peer does not read and
 * back under when it does, close_notify, and a handshake fed garbage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "t/unit/tap.h"
#include "tls/tls.h"

#define MB (1024 * 1024)
#define BACKLOG_MAX (64 * 1024)

/* One end: a pipe over half of the socketpair, its pump, what it got. */
struct end {
	uv_pipe_t pipe;
	struct tls_pump pump;
	char cipher[16384];
	char *in;		/* plaintext (or raw bytes before TLS) received */
	size_t inlen, incap;
	bool paused;		/* inbuf gives no room */
	bool handshake_done;
	int failed;
	enum tls_pump_failure what;
	bool why_null;
	int over, under;	/* backlog callbacks */
	int written, write_errors;
};

static void end_inbuf(void *ctx, char **buf, size_t *len)
{
	struct end *e = ctx;
	size_t room = e->incap - e->inlen;

	*len = 0;
	if (e->paused || room == 0)
		return;
	*buf = e->in + e->inlen;
	*len = room < 1000 ? room : 1000;	/* small steps: the loop runs many times */
}

static void end_received(void *ctx, size_t n)
{
	((struct end *)ctx)->inlen += n;
}

static void end_handshake_done(void *ctx)
{
	((struct end *)ctx)->handshake_done = true;
}

static void end_failed(void *ctx, enum tls_pump_failure what, const char *why)
{
	struct end *e = ctx;

	e->failed++;
	e->what = what;
	e->why_null = why == NULL;
}

static void end_written(void *ctx, int status)
{
	struct end *e = ctx;

	e->written++;
	if (status < 0)
		e->write_errors++;
}

static void end_backlog(void *ctx, bool over)
{
	struct end *e = ctx;

	if (over)
		e->over++;
	else
		e->under++;
}

static const struct tls_pump_ops end_ops = {
	.inbuf = end_inbuf, .received = end_received, .handshake_done = end_handshake_done,
	.failed = end_failed, .written = end_written, .backlog = end_backlog,
};

static void end_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct end *e = h->data;

	(void)suggested;
	*buf = uv_buf_init(e->cipher, sizeof(e->cipher));
}

/* end_read - ciphertext to the pump once TLS is on, else raw bytes kept. */
static void end_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct end *e = s->data;

	if (nread < 0) {
		uv_read_stop(s);
		return;
	}
	if (e->pump.tls) {
		tls_pump_input(&e->pump, buf->base, (size_t)nread);
		return;
	}
	if ((size_t)nread <= e->incap - e->inlen) {
		memcpy(e->in + e->inlen, buf->base, (size_t)nread);
		e->inlen += (size_t)nread;
	}
}

/* end_open - one end over fd; try_write and backlog_max as a transport would choose. */
static int end_open(uv_loop_t *loop, struct end *e, int fd, bool try_write, size_t backlog_max)
{
	memset(e, 0, sizeof(*e));
	e->incap = 2 * MB;
	if (!(e->in = malloc(e->incap)) || uv_pipe_init(loop, &e->pipe, 0) != 0)
		return -1;
	e->pipe.data = e;
	if (uv_pipe_open(&e->pipe, fd) != 0)
		return -1;
	tls_pump_init(&e->pump, (uv_stream_t *)&e->pipe, &end_ops, e, try_write, backlog_max);
	return uv_read_start((uv_stream_t *)&e->pipe, end_alloc, end_read);
}

static void end_close(struct end *e)
{
	uv_close((uv_handle_t *)&e->pipe, NULL);
}

static void end_free(struct end *e)
{
	tls_pump_free(&e->pump);
	free(e->in);
}

static void tick(uv_timer_t *t)
{
	(void)t;
}

/* run_until - runs the loop until *flag is true, or 10 s. */
static bool run_until(uv_loop_t *loop, const bool *flag)
{
	uint64_t start = uv_now(loop);

	while (!*flag && uv_now(loop) - start < 10000)
		uv_run(loop, UV_RUN_ONCE);
	return *flag;
}

/* run_for - runs the loop for ms milliseconds. */
static void run_for(uv_loop_t *loop, uint64_t ms)
{
	uint64_t start = uv_now(loop);

	while (uv_now(loop) - start < ms)
		uv_run(loop, UV_RUN_ONCE);
}

static void pattern(char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)('a' + (i * 7 + seed) % 26);
}

/* make_cert - a self-signed P-256 certificate for mx.campus.test in dir. */
static int make_cert(const char *dir, char *cert, char *key, size_t size)
{
	char cmd[512];

	snprintf(cert, size, "%s/cert.pem", dir);
	snprintf(key, size, "%s/key.pem", dir);
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		 "-subj /CN=mx.campus.test -days 2 -keyout %s -out %s >/dev/null 2>&1", key, cert);
	return system(cmd) == 0 ? 0 : -1;
}

/* test_tls - plaintext, the handshake, both directions, backlog, close_notify. */
static void test_tls(struct tap *t, uv_loop_t *loop, struct tls_server *srv,
		     struct tls_client *cli)
{
	struct end *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));	/* client, server */
	size_t big = 300 * 1024;
	char *want = malloc(MB);
	int sv[2];
	bool cond;

	if (!a || !b || !want || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 ||
	    end_open(loop, a, sv[0], false, 0) != 0 || end_open(loop, b, sv[1], true, BACKLOG_MAX) != 0) {
		TAP_OK(t, 0, "set up two ends");
		return;
	}

	/* Before TLS: the bytes go out as they are. */
	TAP_OK(t, tls_pump_send(&a->pump, "EHLO x\r\n", 8) == 0, "plaintext: sent");
	run_for(loop, 50);
	TAP_OK(t, b->inlen == 8 && memcmp(b->in, "EHLO x\r\n", 8) == 0, "plaintext: arrives unchanged");
	TAP_OK(t, a->written == 1 && a->pump.writes_pending == 0,
	       "plaintext: without try_write the write is queued and called back");
	b->inlen = 0;

	/* The handshake: the client's hello goes out from start. */
	TAP_OK(t, tls_pump_start(&b->pump, tls_conn_new(srv), false) == 0, "server side starts");
	TAP_OK(t, tls_pump_start(&a->pump, tls_conn_new_client(cli, "mx.campus.test", false), true) == 0,
	       "client side starts: the ClientHello is sent");
	cond = run_until(loop, &a->handshake_done) && run_until(loop, &b->handshake_done);
	TAP_OK(t, cond, "handshake done on both sides");
	TAP_OK(t, !a->pump.handshaking && !b->pump.handshaking, "... and neither is handshaking");
	TAP_OK(t, strncmp(tls_conn_version(a->pump.tls), "TLSv1.", 6) == 0, "... %s",
	       tls_conn_version(a->pump.tls));

	/* Client to server while the server gives no room: held, then pulled. */
	b->paused = true;
	pattern(want, big, 1);
	TAP_OK(t, tls_pump_send(&a->pump, want, big) == 0, "300 KB sent to a paused owner");
	run_for(loop, 200);
	TAP_OK(t, b->inlen == 0, "nothing reaches an owner that gives no room");
	TAP_OK(t, a->pump.writes_pending == 0, "... yet the sender's writes finished (the engine holds it)");
	b->paused = false;
	tls_pump_read(&b->pump);
	TAP_OK(t, b->inlen == big && memcmp(b->in, want, big) == 0,
	       "tls_pump_read hands over all of it, intact (%zu bytes)", b->inlen);

	/* Server to client while the client does not read: the backlog. */
	uv_read_stop((uv_stream_t *)&a->pipe);
	pattern(want, MB, 2);
	for (size_t off = 0; off < MB; off += 16384)
		if (tls_pump_send(&b->pump, want + off, 16384) != 0)
			break;
	run_for(loop, 100);
	TAP_OK(t, b->over == 1 && b->pump.over, "the backlog went over its limit once (%zu bytes queued)",
	       b->pump.backlog);
	TAP_OK(t, b->under == 0, "... and stays over while nobody reads");
	if (uv_read_start((uv_stream_t *)&a->pipe, end_alloc, end_read) != 0)
		TAP_OK(t, 0, "read again");
	for (int i = 0; i < 1000 && (a->inlen < MB || b->pump.backlog > 0); i++)
		run_for(loop, 10);
	TAP_OK(t, b->under == 1 && !b->pump.over && b->pump.backlog == 0,
	       "once read, it comes back under (called once) and drains to 0");
	TAP_OK(t, a->inlen == MB && memcmp(a->in, want, MB) == 0, "the client got 1 MB intact");
	TAP_OK(t, b->write_errors == 0 && a->write_errors == 0, "no write failed");

	/* close_notify: the peer sees the end of TLS, not an error. */
	tls_pump_shutdown(&a->pump, false);
	for (int i = 0; i < 100 && !b->failed; i++)
		run_for(loop, 10);
	TAP_OK(t, b->failed == 1 && b->what == TLS_PUMP_READ && b->why_null,
	       "close_notify reaches the server as TLS_PUMP_READ with no reason");
	TAP_OK(t, a->failed == 0, "the client side saw no failure");

	end_close(a);
	end_close(b);
	run_for(loop, 10);
	end_free(a);
	end_free(b);
	free(a);
	free(b);
	free(want);
}

/* test_garbage - a handshake fed something that is not TLS fails with a reason. */
static void test_garbage(struct tap *t, uv_loop_t *loop, struct tls_server *srv)
{
	struct end *c = calloc(1, sizeof(*c)), *d = calloc(1, sizeof(*d));
	const char *junk = "GET / HTTP/1.0\r\n\r\n";
	int sv[2];

	if (!c || !d || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 ||
	    end_open(loop, c, sv[0], true, 0) != 0 || end_open(loop, d, sv[1], true, 0) != 0) {
		TAP_OK(t, 0, "set up two ends");
		return;
	}
	TAP_OK(t, tls_pump_start(&d->pump, tls_conn_new(srv), false) == 0, "server side starts");
	TAP_OK(t, tls_pump_send(&c->pump, junk, strlen(junk)) == 0, "an HTTP request instead of a hello");
	for (int i = 0; i < 100 && !d->failed; i++)
		run_for(loop, 10);
	TAP_OK(t, d->failed == 1 && d->what == TLS_PUMP_HANDSHAKE && !d->why_null,
	       "the handshake fails, with the engine's reason");
	TAP_OK(t, !d->handshake_done && d->pump.handshaking, "... and is never reported done");
	end_close(c);
	end_close(d);
	run_for(loop, 10);
	end_free(c);
	end_free(d);
	free(c);
	free(d);
}

int main(void)
{
	struct tap t = { 0 };
	char dir[] = "/tmp/mtad-pump-XXXXXX", cert[128], key[128], err[256];
	struct tls_server *srv = NULL;
	struct tls_client *cli = NULL;
	uv_loop_t loop;
	uv_timer_t timer;

	if (mkdtemp(dir) == NULL || make_cert(dir, cert, key, sizeof(cert)) != 0) {
		TAP_OK(&t, 0, "make a certificate");
		return tap_done(&t);
	}
	struct tls_settings set = { .cert_file = cert, .key_file = key, .chain_file = "",
				    .min_version = "TLSv1.2", .ciphers = "", .ciphersuites = "" };
	srv = tls_server_new(&set, err, sizeof(err));
	cli = tls_client_new(NULL, err, sizeof(err));
	TAP_OK(&t, srv && cli, "server and client configurations (%s)", srv && cli ? "ok" : err);
	if (srv && cli && uv_loop_init(&loop) == 0) {
		/* A timer that keeps UV_RUN_ONCE from sleeping long. */
		uv_timer_init(&loop, &timer);
		uv_timer_start(&timer, tick, 5, 5);
		test_tls(&t, &loop, srv, cli);
		test_garbage(&t, &loop, srv);
		uv_close((uv_handle_t *)&timer, NULL);
		uv_run(&loop, UV_RUN_DEFAULT);
		TAP_OK(&t, uv_loop_close(&loop) == 0, "every handle closed");
	}
	tls_server_free(srv);
	tls_client_free(cli);
	unlink(cert);
	unlink(key);
	rmdir(dir);
	return tap_done(&t);
}
