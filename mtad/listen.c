/*
 * listen.c - the listeners and the plain TCP transport under each SMTP
 * session: accepting, connection limits (total, per client IP, and what
 * the descriptor limit has room for), reading into the session's buffer,
 * writing its replies, and closing politely.
 *
 * Writing, and with TLS (implicit, or after STARTTLS) the ciphertext's
 * way through a tls_conn, go through tls/'s pump (tls/pump.c), which the
 * SMTP client shares; the session above sees plaintext either way.
 *
 * Must not block and must not trust the peer: writes that the client
 * does not read are bounded (reading stops until they drain), a TLS
 * handshake has a deadline, and a closing connection gets a few seconds
 * to take our last reply before it is dropped. Must not spin or drop
 * waiting clients when out of descriptors: accepting pauses instead.
 *
 * Threads: the listeners, accepting and the limits' admission run on
 * the main loop; a connection then lives on the event loop it was handed
 * to (loops.c) and is touched only there. The counts behind the limits
 * (connections in all, per client address) are the daemon's, under
 * limits_lock: one thread admits, every loop releases, so the limits
 * are exact however many loops there are.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "mtad/daemon.h"

#define WRITE_BACKLOG_MAX (256 * 1024)	/* unread replies before we stop reading */
#define LINGER_MS 3000			/* time a closing peer gets to read our last reply */

struct ip_count {
	struct ip_count *next;
	unsigned count;
	char ip[INET6_ADDRSTRLEN];
};

struct conn {
	/* TCP for network clients, a pipe on the local submission socket. */
	union {
		uv_tcp_t tcp;
		uv_pipe_t pipe;
		uv_stream_t stream;
		uv_handle_t handle;
	} sock;
	uv_timer_t linger;	/* the TLS handshake deadline, then the closing linger */
	uv_shutdown_t shutdown;
	struct daemon *d;
	struct mtad_loop *lp;	/* the loop it lives on */
	struct smtp_session *session;
	struct conn *prev, *next;
	struct ip_count *ip;
	const struct mtad_listen *lcfg;
	struct tls_pump pump;	/* writes; TLS once it starts (pump.tls) */
	int handles_open;
	bool paused_by_session;
	bool paused_by_backlog;
	bool reading;
	bool closing;
	char listener[80];
	char session_ip[INET6_ADDRSTRLEN];	/* the client, for log lines */
	long uid;		/* on the local socket: the peer's uid (SO_PEERCRED); else -1 */
};

static void listener_readable(uv_poll_t *p, int status, int events);
static void listener_closed(uv_handle_t *h);

/* ---- connections per client address ---- */

/* ip_hash - FNV-1a over the address text. */
static unsigned ip_hash(const char *ip)
{
	uint32_t h = 2166136261u;

	for (; *ip; ip++)
		h = (h ^ (unsigned char)*ip) * 16777619u;
	return h % IP_BUCKETS;
}

/* ip_find - the counter for an address, created at zero when asked. */
static struct ip_count *ip_find(struct daemon *d, const char *ip, bool create)
{
	unsigned b = ip_hash(ip);
	struct ip_count *e;

	for (e = d->per_ip[b]; e; e = e->next)
		if (strcmp(e->ip, ip) == 0)
			return e;
	if (!create || !(e = calloc(1, sizeof(*e))))
		return NULL;
	snprintf(e->ip, sizeof(e->ip), "%s", ip);
	e->next = d->per_ip[b];
	d->per_ip[b] = e;
	return e;
}

/* ip_release - one connection from this address ended (under limits_lock). */
static void ip_release(struct daemon *d, struct ip_count *e)
{
	struct ip_count **pp;

	if (e == NULL || --e->count > 0)
		return;
	for (pp = &d->per_ip[ip_hash(e->ip)]; *pp; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			free(e);
			return;
		}
	}
}

/* limits_release_ip - the address's count ends early (QUIT; any loop). */
static void limits_release_ip(struct daemon *d, struct ip_count *e)
{
	uv_mutex_lock(&d->limits_lock);
	ip_release(d, e);
	uv_mutex_unlock(&d->limits_lock);
}

/* listen_release - see daemon.h: the connection's count, and its address's if held. */
void listen_release(struct daemon *d, struct ip_count *e)
{
	uv_mutex_lock(&d->limits_lock);
	ip_release(d, e);
	d->nconns--;
	uv_mutex_unlock(&d->limits_lock);
}

/*
 * limits_admit - counts a new connection from ip against every limit;
 * NULL when admitted, else why not (the connection is counted either
 * way until listen_release). *counted is the address's counter, if it
 * was counted. Main loop.
 */
static const char *limits_admit(struct daemon *d, const char *ip, struct ip_count **counted)
{
	const char *why = NULL;
	struct ip_count *e;

	*counted = NULL;
	uv_mutex_lock(&d->limits_lock);
	d->nconns++;
	if (d->nconns > d->cfg.max_connections)
		why = "too many connections";
	else if (d->nconns > d->conn_fd_capacity)
		why = "too many connections (descriptor limit)";
	else if (!(e = ip_find(d, ip, true)))
		why = "out of memory";
	else {
		e->count++;
		*counted = e;
		if (e->count > d->cfg.max_connections_per_ip)
			why = "too many connections from your address";
	}
	uv_mutex_unlock(&d->limits_lock);
	return why;
}

/* listen_conn_gone - see daemon.h. */
static void accept_resume(struct daemon *d);

void listen_conn_gone(struct daemon *d)
{
	unsigned left;

	accept_resume(d);	/* if out of descriptors: one is free now */
	uv_mutex_lock(&d->limits_lock);
	left = d->nconns;
	uv_mutex_unlock(&d->limits_lock);
	if (d->stopping && left == 0 && !d->gone_called) {
		d->gone_called = true;
		d->connections_gone(d);
	}
}

/* ---- reading ---- */

/* conn_update_reading - reads only when neither the session nor the backlog objects. */
static void conn_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

static void conn_update_reading(struct conn *c)
{
	bool want = !c->closing && !c->paused_by_session && !c->paused_by_backlog;

	if (want && !c->reading) {
		if (uv_read_start(&c->sock.stream, conn_alloc_cb, conn_read_cb) == 0)
			c->reading = true;
	} else if (!want && c->reading) {
		uv_read_stop(&c->sock.stream);
		c->reading = false;
	}
}

/*
 * conn_alloc_cb - plaintext goes straight into the session; ciphertext
 * into the daemon's one read buffer, which conn_read_cb empties into the
 * TLS engine before anything else can read (one loop, one read at a
 * time), so an idle TLS connection owns no read buffer of its own. The
 * session's buffer exists only while input waits in it: asking for it
 * may allocate it, and conn_read_cb gives it back (smtp_session_read_done)
 * when the read left it empty. No room (out of memory) makes libuv call
 * back with UV_ENOBUFS; reading must not be stopped in here.
 */
static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;
	char *p;
	size_t len;

	(void)suggested;
	if (c->pump.tls) {
		*buf = uv_buf_init(c->lp->cipher_in, sizeof(c->lp->cipher_in));
		return;
	}
	smtp_session_inbuf(c->session, &p, &len);
	*buf = uv_buf_init(p, (unsigned)len);
}

static void conn_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = stream->data;

	(void)buf;
	if (nread > 0 && c->pump.tls)
		tls_pump_input(&c->pump, c->lp->cipher_in, (size_t)nread);
	else if (nread > 0)
		smtp_session_received(c->session, (size_t)nread);
	/* EAGAIN, a full buffer (the session has paused us), or no memory
	 * for one: the session keeps, returns or lacks its buffer. */
	if (nread >= 0 || nread == UV_ENOBUFS) {
		smtp_session_read_done(c->session);
		return;
	}
	if (c->pump.tls && c->pump.handshaking)
		mtad_log(MTAD_LOG_WARNING, "TLS handshake failed from unknown[%s]: %s",
			 c->session_ip, nread == UV_EOF ? "connection closed by the client"
							: uv_strerror((int)nread));
	smtp_session_eof(c->session, nread == UV_EOF ? NULL : uv_strerror((int)nread));
}

/* ---- writing, and TLS through the pump ---- */

/* conn_send - the session's replies, encrypted when TLS is on. */
static void conn_send(void *ctx, const char *data, size_t len)
{
	struct conn *c = ctx;
	int r;

	if (c->closing || len == 0)
		return;
	r = tls_pump_send(&c->pump, data, len);
	if (r == UV_EPROTO)
		mtad_log(MTAD_LOG_WARNING, "TLS write failed for unknown[%s]", c->session_ip);
	else if (r == UV_ENOMEM)
		mtad_log(MTAD_LOG_WARNING, "out of memory writing a reply");
}

/* conn_backlog - replies the client does not read: stop reading until half are out. */
static void conn_backlog(void *ctx, bool over)
{
	struct conn *c = ctx;

	c->paused_by_backlog = over;
	conn_update_reading(c);
}

/* conn_inbuf - the session's input buffer, while it takes plaintext. */
static void conn_inbuf(void *ctx, char **buf, size_t *len)
{
	struct conn *c = ctx;

	*len = 0;
	if (c->closing || c->paused_by_session)
		return;
	smtp_session_inbuf(c->session, buf, len);
}

static void conn_received(void *ctx, size_t n)
{
	struct conn *c = ctx;

	smtp_session_received(c->session, n);
}

static void conn_pause(void *ctx, bool paused)
{
	struct conn *c = ctx;

	c->paused_by_session = paused;
	conn_update_reading(c);
	if (!paused && c->pump.tls) {
		tls_pump_read(&c->pump);	/* plaintext the engine held meanwhile */
		smtp_session_read_done(c->session);
	}
}

/* conn_handshake_done - TLS is up: log it like Postfix, and the session starts over. */
static void conn_handshake_done(void *ctx)
{
	struct conn *c = ctx;
	const char *version = tls_conn_version(c->pump.tls), *cipher = tls_conn_cipher(c->pump.tls);
	int bits = tls_conn_bits(c->pump.tls);

	uv_timer_stop(&c->linger);
	mtad_log(MTAD_LOG_INFO, "Anonymous TLS connection established from unknown[%s]: "
		 "%s with cipher %s (%d/%d bits)", c->session_ip, version, cipher, bits, bits);
	smtp_session_tls_ready(c->session, version, cipher, bits);
	if (c->lcfg->tls == MTAD_TLS_IMPLICIT)
		smtp_session_start(c->session);
}

/* conn_tls_failed - the handshake failed, the client closed TLS, or a write could not be queued. */
static void conn_tls_failed(void *ctx, enum tls_pump_failure what, const char *why)
{
	struct conn *c = ctx;

	switch (what) {
	case TLS_PUMP_HANDSHAKE:
		mtad_log(MTAD_LOG_WARNING, "TLS handshake failed from unknown[%s]: %s",
			 c->session_ip, why ? why : "closed by the client");
		smtp_session_eof(c->session, NULL);
		return;
	case TLS_PUMP_SEND:
		mtad_log(MTAD_LOG_WARNING, "cannot write to unknown[%s]: %s", c->session_ip, why);
		smtp_session_eof(c->session, why);
		return;
	default:	/* NOMEM, READ: why NULL is the client's close_notify */
		smtp_session_eof(c->session, why);
		return;
	}
}

static const struct tls_pump_ops conn_pump_ops = {
	.inbuf = conn_inbuf, .received = conn_received, .handshake_done = conn_handshake_done,
	.failed = conn_tls_failed, .backlog = conn_backlog,
};

/* conn_handshake_timeout - the client did not finish the handshake in time. */
static void conn_handshake_timeout(uv_timer_t *t)
{
	struct conn *c = t->data;

	mtad_log(MTAD_LOG_WARNING, "TLS handshake timeout from unknown[%s]", c->session_ip);
	smtp_session_eof(c->session, NULL);
}

/* conn_tls_start - the server side of a TLS handshake begins (implicit or STARTTLS). */
static int conn_tls_start(void *ctx)
{
	struct conn *c = ctx;
	struct tls_conn *tls;

	if (!c->d->tls || c->pump.tls)
		return -1;
	tls = tls_conn_new(c->d->tls);
	if (!tls)
		return -1;
	(void)tls_pump_start(&c->pump, tls, false);	/* the server waits for the hello */
	if (uv_timer_start(&c->linger, conn_handshake_timeout,
			   (uint64_t)c->d->cfg.tls_handshake_timeout * 1000, 0) != 0)
		mtad_log(MTAD_LOG_WARNING, "cannot time the TLS handshake of [%s]", c->session_ip);
	conn_update_reading(c);
	return 0;
}

/* ---- closing ---- */

/* conn_handle_closed - frees the connection once both its handles are closed. */
static void conn_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct daemon *d = c->d;
	struct mtad_loop *lp = c->lp;

	if (--c->handles_open > 0)
		return;
	if (c->session)
		smtp_session_free(c->session);
	tls_pump_free(&c->pump);
	if (c->prev)
		c->prev->next = c->next;
	else
		lp->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	lp->nconns--;
	listen_release(d, c->ip);
	free(c);
	if (lp->index == 0)
		listen_conn_gone(d);
	else
		(void)uv_async_send(&d->main_wake);	/* the main loop looks at the counts */
	loops_closed(lp);
}

/* conn_finish - closes both handles (idempotent). */
static void conn_finish(struct conn *c)
{
	if (!uv_is_closing(&c->sock.handle))
		uv_close(&c->sock.handle, conn_handle_closed);
	if (!uv_is_closing((uv_handle_t *)&c->linger))
		uv_close((uv_handle_t *)&c->linger, conn_handle_closed);
}

static void conn_linger_timeout(uv_timer_t *t)
{
	conn_finish(t->data);
}

static void conn_drain_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;

	(void)suggested;
	*buf = uv_buf_init(c->lp->drain, sizeof(c->lp->drain));
}

static void conn_drain_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	(void)buf;
	if (nread < 0)
		conn_finish(stream->data);
}

/*
 * conn_shutdown_done - our replies are out. Reading what the client still
 * sends until it closes keeps the kernel from answering it with a reset
 * that could destroy our last reply before the client read it.
 */
static void conn_shutdown_done(uv_shutdown_t *req, int status)
{
	struct conn *c = req->data;

	if (status != 0 ||
	    uv_read_start(&c->sock.stream, conn_drain_alloc, conn_drain_read) != 0)
		conn_finish(c);
}

/* conn_close - the session is done with the connection. */
static void conn_close(void *ctx)
{
	struct conn *c = ctx;

	if (c->closing)
		return;
	tls_pump_shutdown(&c->pump, false);
	c->closing = true;
	conn_update_reading(c);
	/* A client that said QUIT may reconnect at once: it no longer counts. */
	if (c->ip) {
		limits_release_ip(c->d, c->ip);
		c->ip = NULL;
	}
	c->shutdown.data = c;
	if (uv_timer_start(&c->linger, conn_linger_timeout, LINGER_MS, 0) != 0 ||
	    uv_shutdown(&c->shutdown, &c->sock.stream, conn_shutdown_done) != 0)
		conn_finish(c);
}

/* ---- accepting ---- */

/* conn_refuse - over a limit: a 421 without reading anything, then close. */
static void conn_refuse(struct conn *c, const char *ip, const char *why)
{
	char line[SMTP_COMMAND_MAX];
	int n = snprintf(line, sizeof(line), "421 4.7.0 %s Error: %s\r\n",
			 c->d->cfg.hostname, why);
	uv_buf_t buf = uv_buf_init(line, n > 0 ? (unsigned)n : 0);

	mtad_log(MTAD_LOG_WARNING, "refused connection from unknown[%s]: %s", ip, why);
	(void)uv_try_write(&c->sock.stream, &buf, 1);
	c->closing = true;
	conn_finish(c);
}

/* conn_start_session - the SMTP session on top of an admitted connection. */
static void conn_start_session(struct conn *c, const char *ip)
{
	struct smtp_io io = {
		.ctx = c, .send = conn_send, .pause = conn_pause, .close = conn_close,
		.starttls = conn_tls_start,
	};

	snprintf(c->session_ip, sizeof(c->session_ip), "%s", ip);
	c->session = smtp_session_new(&c->lp->smtp, &io, ip, c->listener, c->lcfg, c->uid);
	if (!c->session) {
		conn_refuse(c, ip, "out of memory");
		return;
	}
	if (!c->lcfg->local)
		(void)uv_tcp_nodelay(&c->sock.tcp, 1);
	if (c->lcfg->tls == MTAD_TLS_IMPLICIT) {
		/* RFC 8314: the handshake first; the greeting when it is done. */
		if (conn_tls_start(c) != 0)
			smtp_session_eof(c->session, "cannot start TLS");
		return;
	}
	conn_update_reading(c);
	smtp_session_start(c->session);
}

/* conn_counts_drop - the counts of a connection that never was. */
static void conn_counts_drop(struct mtad_loop *lp, struct ip_count *ip)
{
	listen_release(lp->d, ip);
	if (lp->index == 0)
		listen_conn_gone(lp->d);
	else
		(void)uv_async_send(&lp->d->main_wake);
}

/* conn_link - puts a connection on its loop's list (conn_handle_closed takes it off). */
static void conn_link(struct mtad_loop *lp, struct conn *c)
{
	c->lp = lp;
	c->d = lp->d;
	c->next = lp->conns;
	if (lp->conns)
		lp->conns->prev = c;
	lp->conns = c;
	lp->nconns++;
}

/*
 * conn_new - a connection with its two handles on lp's loop, linked
 * into its list; it holds one count of the limits (and ip's, if not
 * NULL) from here on, and gives them back when it is freed. NULL when
 * out of memory (the counts are given back all the same); the caller
 * still owns the socket.
 */
static struct conn *conn_new(struct mtad_loop *lp, struct listener *l, struct ip_count *ip)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c || (l->cfg->local ? uv_pipe_init(lp->loop, &c->sock.pipe, 0)
				 : uv_tcp_init(lp->loop, &c->sock.tcp)) != 0) {
		free(c);
		conn_counts_drop(lp, ip);
		return NULL;
	}
	conn_link(lp, c);
	c->ip = ip;
	tls_pump_init(&c->pump, &c->sock.stream, &conn_pump_ops, c, true, WRITE_BACKLOG_MAX);
	c->sock.handle.data = c;
	c->linger.data = c;
	c->handles_open = 1;
	if (uv_timer_init(lp->loop, &c->linger) != 0) {
		uv_close(&c->sock.handle, conn_handle_closed);
		return NULL;
	}
	c->handles_open = 2;
	snprintf(c->listener, sizeof(c->listener), "%s", l->name);
	c->lcfg = l->cfg;
	return c;
}

/*
 * ---- the listening sockets ----
 *
 * mtad accepts by itself (a uv_poll_t on the listening socket, then
 * accept4) rather than through uv_listen: when the process is out of
 * descriptors libuv's uv_listen silently accepts and closes whatever
 * waits (or, once its spare descriptor is gone, calls back with EMFILE
 * in a loop that never returns). Here EMFILE and ENFILE pause accepting
 * on every listener, with one log line, until a connection closes or
 * ACCEPT_PAUSE_MS pass; clients wait in the kernel's backlog meanwhile.
 * Normally it does not come to that: conn_admit refuses with 421 the
 * connections the descriptor limit has no room for (main.c).
 */
#define ACCEPT_BATCH 64		/* accepts per wake-up; then the loop does other work */
#define ACCEPT_PAUSE_MS 1000	/* the longest pause after EMFILE/ENFILE */
#define ACCEPT_WARN_MS 10000	/* at most one "out of descriptors" line per this */

/* accept_resume - listen again (after a pause); a stopping daemon stays deaf. */
static void accept_resume(struct daemon *d)
{
	if (!d->accept_paused || d->stopping)
		return;
	d->accept_paused = false;
	if (uv_timer_stop(&d->accept_timer) != 0)
		mtad_log(MTAD_LOG_WARNING, "cannot stop the accept pause timer");
	for (size_t i = 0; i < d->nlisteners; i++) {
		struct listener *l = &d->listeners[i];
		int r = uv_poll_start(&l->poll, UV_READABLE, listener_readable);

		if (r != 0)
			mtad_log(MTAD_LOG_WARNING, "listen %s: cannot accept again: %s",
				 l->name, uv_strerror(r));
	}
}

static void accept_pause_over(uv_timer_t *t)
{
	accept_resume(t->data);
}

/* listen_count - connections open on every loop. */
static unsigned listen_count(struct daemon *d)
{
	unsigned n;

	uv_mutex_lock(&d->limits_lock);
	n = d->nconns;
	uv_mutex_unlock(&d->limits_lock);
	return n;
}

/* accept_pause - no descriptors: stop accepting on every listener for a while. */
static void accept_pause(struct listener *l, int err)
{
	struct daemon *d = l->d;
	uint64_t now = uv_now(d->loop);

	if (d->accept_paused)
		return;
	if (d->accept_warned == 0 || now - d->accept_warned >= ACCEPT_WARN_MS) {
		mtad_log(MTAD_LOG_WARNING, "accept on %s: %s with %u connections open: "
			 "new connections wait until one closes", l->name, strerror(err),
			 listen_count(d));
		d->accept_warned = now ? now : 1;
	}
	for (size_t i = 0; i < d->nlisteners; i++)
		if (uv_poll_stop(&d->listeners[i].poll) != 0)
			mtad_log(MTAD_LOG_WARNING, "listen %s: cannot pause", d->listeners[i].name);
	d->accept_paused = true;
	if (uv_timer_start(&d->accept_timer, accept_pause_over, ACCEPT_PAUSE_MS, 0) != 0)
		accept_resume(d);	/* no timer: better a busy loop than a deaf server */
}

/* sockaddr_ip - the client's address as text; 0, or -1. */
static int sockaddr_ip(const struct sockaddr_storage *ss, char *ip, size_t iplen)
{
	if (ss->ss_family == AF_INET6)
		return uv_ip6_name((const struct sockaddr_in6 *)ss, ip, iplen);
	if (ss->ss_family == AF_INET)
		return uv_ip4_name((const struct sockaddr_in *)ss, ip, iplen);
	return -1;
}

/* fd_close - closes a socket nobody will use. */
static void fd_close(int fd)
{
	if (close(fd) != 0)
		mtad_log(MTAD_LOG_WARNING, "close: %s", strerror(errno));
}

/*
 * conn_open - fd becomes a connection on lp (lp's thread); refused: a
 * 421 with why. The counts taken at admission go with it, or are
 * released here when it cannot be made.
 */
static void conn_open(struct mtad_loop *lp, struct listener *l, int fd, const char *ip,
		      long uid, struct ip_count *counted, const char *why)
{
	struct conn *c = conn_new(lp, l, counted);

	if (!c) {
		fd_close(fd);
		return;
	}
	c->uid = uid;
	if ((l->cfg->local ? uv_pipe_open(&c->sock.pipe, fd) : uv_tcp_open(&c->sock.tcp, fd)) != 0) {
		fd_close(fd);
		c->closing = true;
		conn_finish(c);
		return;
	}
	if (why)
		conn_refuse(c, ip, why);
	else if (lp->stopping)
		conn_refuse(c, ip, "shutting down");
	else
		conn_start_session(c, ip);
}

/* listen_adopt - see daemon.h. */
void listen_adopt(struct mtad_loop *lp, struct handoff *h)
{
	conn_open(lp, h->l, h->fd, h->ip_text, h->uid, h->ip, NULL);
	free(h);
}

/* listen_shutdown_sessions - see daemon.h. */
void listen_shutdown_sessions(struct mtad_loop *lp)
{
	struct conn *c, *next;

	for (c = lp->conns; c; c = next) {
		next = c->next;
		if (c->session && !c->closing)
			smtp_session_shutdown(c->session);
	}
}

/*
 * listener_hand - an admitted connection goes to the next loop: at once
 * when that is the main loop, else through the worker's mailbox.
 */
static void listener_hand(struct listener *l, int fd, const char *ip, long uid,
			  struct ip_count *counted)
{
	struct daemon *d = l->d;
	struct mtad_loop *lp = loops_pick(d);
	struct handoff *h;

	if (lp->index == 0) {
		conn_open(lp, l, fd, ip, uid, counted, NULL);
		return;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		conn_open(&d->loops[0], l, fd, ip, uid, counted, "out of memory");
		return;
	}
	h->fd = fd;
	h->l = l;
	h->ip = counted;
	h->uid = uid;
	snprintf(h->ip_text, sizeof(h->ip_text), "%s", ip);
	if (loops_hand(lp, h))
		return;
	free(h);
	conn_open(&d->loops[0], l, fd, ip, uid, counted, "shutting down");	/* that loop is stopping */
}

/*
 * peer_of - who is on the other end: the client's address as text, and
 * on the local socket "local" and the peer's uid (the kernel says it:
 * SO_PEERCRED cannot be forged). 0, or -1 when it cannot be told.
 */
static int peer_of(const struct listener *l, int fd, const struct sockaddr_storage *ss,
		   char ip[INET6_ADDRSTRLEN], long *uid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	*uid = -1;
	if (!l->cfg->local)
		return sockaddr_ip(ss, ip, INET6_ADDRSTRLEN);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred)) {
		mtad_log(MTAD_LOG_WARNING, "%s: cannot tell the peer's uid: %s", l->name,
			 strerror(errno));
		return -1;
	}
	*uid = (long)cred.uid;
	snprintf(ip, INET6_ADDRSTRLEN, "local");
	return 0;
}

/* listener_take - an accepted socket: counted, then a connection (or refused). */
static void listener_take(struct listener *l, int fd, const struct sockaddr_storage *ss)
{
	struct daemon *d = l->d;
	char ip[INET6_ADDRSTRLEN];
	struct ip_count *counted;
	const char *why;
	long uid;

	if (peer_of(l, fd, ss, ip, &uid) != 0) {
		fd_close(fd);
		return;
	}
	why = limits_admit(d, ip, &counted);
	if (why)
		conn_open(&d->loops[0], l, fd, ip, uid, counted, why);	/* 421 from here */
	else
		listener_hand(l, fd, ip, uid, counted);
}

/* listener_readable - connections are waiting: accept a batch of them. */
static void listener_readable(uv_poll_t *p, int status, int events)
{
	struct listener *l = p->data;

	(void)events;
	if (status != 0) {
		mtad_log(MTAD_LOG_WARNING, "listen %s: %s", l->name, uv_strerror(status));
		accept_pause(l, EIO);
		return;
	}
	for (int i = 0; i < ACCEPT_BATCH && !l->d->stopping && !l->d->accept_paused; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			listener_take(l, fd, &ss);
			continue;
		}
		switch (errno) {
		case EAGAIN:
#if EWOULDBLOCK != EAGAIN
		case EWOULDBLOCK:
#endif
			return;
		case EINTR: case ECONNABORTED: case EPROTO: case EPERM:
		case ENETDOWN: case ENOPROTOOPT: case EHOSTDOWN: case ENONET:
		case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
			continue;	/* that client's problem (accept(2) NOTES) */
		default:
			/* EMFILE, ENFILE, ENOBUFS, ENOMEM, or worse: retrying
			 * at once would spin the loop. */
			accept_pause(l, errno);
			return;
		}
	}
}

/* listener_closed - the poll handle is gone: now the socket may be closed. */
static void listener_closed(uv_handle_t *h)
{
	struct listener *l = h->data;

	if (l->fd >= 0 && close(l->fd) != 0)
		mtad_log(MTAD_LOG_WARNING, "close %s: %s", l->name, strerror(errno));
	l->fd = -1;
}

/* listener_socket - a non-blocking socket bound to ss (listen_accept
 * makes it listen); the fd, or -errno. */
static int listener_socket(const struct sockaddr_storage *ss, bool v6)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), e, on = 1;

	if (fd < 0)
		return -errno;
	/* As uv_tcp_bind did: a restart binds at once despite TIME_WAIT,
	 * and [::] does not take the IPv4 port as well. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
	    (v6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) != 0) ||
	    bind(fd, (const struct sockaddr *)ss,
		 v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)) != 0) {
		e = errno;
		(void)close(fd);	/* the error that matters is e */
		return -e;
	}
	return fd;
}

/*
 * listener_watch - the next listener (its name set) is fd, a bound
 * socket, or -errno when making it failed; errors read "PREFIX LABEL:
 * why". The role cfg says what its connections are. It accepts from
 * listen_accept on.
 */
static int listener_watch(struct daemon *d, const struct mtad_listen *cfg, int fd,
			  const char *prefix, const char *label, char *err, size_t errlen)
{
	struct listener *l = &d->listeners[d->nlisteners];
	int r = fd < 0 ? uv_translate_sys_error(-fd) : 0;

	l->fd = fd;
	if (r == 0 && (r = uv_poll_init_socket(d->loop, &l->poll, l->fd)) != 0)
		(void)close(l->fd);	/* reported below */
	if (r != 0) {
		l->fd = -1;
		snprintf(err, errlen, "%s %s: %s", prefix, label, uv_strerror(r));
		return -1;
	}
	l->d = d;
	l->cfg = cfg;
	l->poll.data = l;
	d->nlisteners++;	/* from here on the handle must be closed */
	return 0;
}

/*
 * listen_accept - see daemon.h. Until now the sockets were only bound:
 * a connection to a bound socket that does not listen is refused at
 * once (RST, ECONNREFUSED on the local socket), so a replica's clients
 * go to the next MX host without waiting.
 */
int listen_accept(struct daemon *d, char *err, size_t errlen)
{
	for (size_t i = 0; i < d->nlisteners; i++) {
		struct listener *l = &d->listeners[i];
		int r = 0;

		if (l->fd < 0 || uv_is_active((uv_handle_t *)&l->poll))
			continue;
		if (listen(l->fd, 511) != 0)
			r = uv_translate_sys_error(errno);
		else
			r = uv_poll_start(&l->poll, UV_READABLE, listener_readable);
		if (r != 0) {
			snprintf(err, errlen, "listen %s: %s", l->name, uv_strerror(r));
			return -1;
		}
		mtad_log(MTAD_LOG_INFO, "listening on %s", l->name);
	}
	return 0;
}

/* listener_bind - one configured address: bind and listen. */
static int listener_bind(struct daemon *d, const struct mtad_listen *cfg, char *err, size_t errlen)
{
	struct listener *l = &d->listeners[d->nlisteners];
	struct sockaddr_storage ss;
	bool v6 = strchr(cfg->address, ':') != NULL;
	int r;

	memset(&ss, 0, sizeof(ss));
	if (v6)
		r = uv_ip6_addr(cfg->address, cfg->port, (struct sockaddr_in6 *)&ss);
	else
		r = uv_ip4_addr(cfg->address, cfg->port, (struct sockaddr_in *)&ss);
	snprintf(l->name, sizeof(l->name), v6 ? "[%s]:%d" : "%s:%d", cfg->address, cfg->port);
	if (r != 0) {
		l->fd = -1;
		snprintf(err, errlen, "listen %s: %s", l->name, uv_strerror(r));
		return -1;
	}
	return listener_watch(d, cfg, listener_socket(&ss, v6), "listen", l->name, err, errlen);
}

/*
 * local_socket - a listening Unix socket at path that any local user may
 * connect to (mode 0666 in a directory mtad makes 0755 when missing). A
 * socket left by an earlier mtad is replaced; anything else there is an
 * error. The fd, or -errno.
 */
static int local_socket(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char dir[sizeof(sun.sun_path)];
	struct stat st;
	char *slash;
	int fd, e;

	if (strlen(path) >= sizeof(sun.sun_path) || path[0] != '/')
		return -ENAMETOOLONG;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	memcpy(dir, path, strlen(path) + 1);
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		/* chmod: a umask (the unit's is 0077) must not lock users out. */
		if (mkdir(dir, 0755) == 0 ? chmod(dir, 0755) != 0 : errno != EEXIST)
			return -errno;
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		if (unlink(path) != 0)
			return -errno;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	if (bind(fd, (const struct sockaddr *)&sun, sizeof(sun)) != 0 ||
	    chmod(path, 0666) != 0) {
		e = errno;
		(void)close(fd);	/* the error that matters is e */
		return -e;
	}
	return fd;
}

/* listener_bind_local - local_socket: bind and listen. */
static int listener_bind_local(struct daemon *d, char *err, size_t errlen)
{
	struct listener *l = &d->listeners[d->nlisteners];

	d->local_listen = (struct mtad_listen){ .tls = MTAD_TLS_NONE, .local = true };
	snprintf(d->local_listen.address, sizeof(d->local_listen.address), "local");
	snprintf(l->name, sizeof(l->name), "local:%.60s", d->cfg.local_socket);
	return listener_watch(d, &d->local_listen, local_socket(d->cfg.local_socket),
			      "local_socket", d->cfg.local_socket, err, errlen);
}

/* listen_start - binds every configured listener, the local socket last
 * (a second mtad fails at its ports before it takes the socket over). */
int listen_start(struct daemon *d, char *err, size_t errlen)
{
	int r;

	if (uv_mutex_init(&d->limits_lock) != 0) {
		snprintf(err, errlen, "cannot create the connection limits' lock");
		return -1;
	}
	d->limits_open = true;
	if ((r = uv_timer_init(d->loop, &d->accept_timer)) != 0) {
		snprintf(err, errlen, "accept timer: %s", uv_strerror(r));
		return -1;
	}
	d->accept_timer.data = d;
	d->accept_timer_open = true;
	for (size_t i = 0; i < d->cfg.nlisten; i++)
		if (listener_bind(d, &d->cfg.listen[i], err, errlen) != 0)
			return -1;
	if (d->cfg.local_socket[0] && listener_bind_local(d, err, errlen) != 0)
		return -1;
	return 0;
}

/* listen_stop - stop accepting (after loops_stop told every session to say 421). */
void listen_stop(struct daemon *d)
{
	for (size_t i = 0; i < d->nlisteners; i++)
		if (!uv_is_closing((uv_handle_t *)&d->listeners[i].poll))
			uv_close((uv_handle_t *)&d->listeners[i].poll, listener_closed);
	if (d->accept_timer_open && !uv_is_closing((uv_handle_t *)&d->accept_timer))
		uv_close((uv_handle_t *)&d->accept_timer, NULL);
	if (!d->limits_open) {
		/* Stopped before anything was counted. */
		if (!d->gone_called) {
			d->gone_called = true;
			d->connections_gone(d);
		}
		return;
	}
	listen_conn_gone(d);
}
