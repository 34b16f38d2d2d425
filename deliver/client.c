/*
 * client.c - the outbound SMTP and LMTP client: one TCP connection (or,
 * for LMTP, one Unix socket) to one peer, the greeting, EHLO (HELO when
 * EHLO is refused; LHLO for LMTP, with no fallback), STARTTLS, then one
 * message after another over the same connection (the transactions are
 * in client_send.c, with PIPELINING and SIZE when the peer offers
 * them), and QUIT at the end. An LMTP server's 5xx to the greeting or
 * LHLO is reported as a deferral (451 4.3.5): the server is
 * misconfigured, not the mail.
 *
 * Writes, and with TLS the ciphertext's way through a tls_conn, go
 * through tls/'s pump (tls/pump.c), which mtad/listen.c shares on the
 * server side; the reply parser only ever sees plaintext.
 *
 * Must not: block; wait without a deadline (connect, the greeting, each
 * reply, the TLS handshake and each body write have opt->timeout; a body
 * chunk being read is bounded by the reader: the runner answers it with
 * an error after smtp_queue_read_timeout, deliver/group.c);
 * buffer without bound (one reply of at most 64 KB, one body chunk at a
 * time: the next is asked for when the last one is written); trust the
 * peer (malformed, oversized or unexpected replies, and plaintext sent
 * after the 220 to STARTTLS, end the connection); send an address that
 * could inject a command (CR, LF, other controls, spaces, < >); call back
 * after smtp_client_close, or synchronously from an API call; free the
 * client while libuv or the body reader still holds it.
 *
 * Follows: RFC 5321 (§3.3 mail transactions, §4.1.1.4 DATA, §4.2 replies,
 * §4.5.2 transparency, §4.5.3.2 timeouts), RFC 2920 (PIPELINING),
 * RFC 1870 (SIZE), RFC 3207 (STARTTLS), RFC 2034/3463 (enhanced codes),
 * RFC 2033 (LMTP: §4.1 LHLO).
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/client_int.h"

#define CIPHER_READ 16384	/* ciphertext read buffer while TLS is on */
#define QUIT_WAIT_MS 2000	/* how long QUIT waits for its 221 */
#define DEFAULT_TIMEOUT 300	/* seconds, when opt->timeout is 0 (RFC 5321 §4.5.3.2) */

static void process_input(struct smtp_client *c);

/* ---- small helpers ---- */

/* phase - what we were doing, for failure texts (Postfix's wording). */
static const char *phase(const struct smtp_client *c)
{
	switch (c->state) {
	case C_CONNECT: return "connecting";
	case C_GREETING: return "receiving the initial server greeting";
	case C_EHLO: return c->lmtp ? "performing the LHLO handshake"
				    : "performing the EHLO handshake";
	case C_HELO: return "performing the HELO handshake";
	case C_STARTTLS: return "sending STARTTLS";
	case C_HANDSHAKE: return "performing the TLS handshake";
	case C_MAIL: return "sending MAIL FROM";
	case C_RCPT: return "sending RCPT TO";
	case C_DATA: return "sending DATA command";
	case C_BODY: return "sending message body";
	case C_BDAT: return "sending message body";
	case C_DOT: return "sending end of data -- message may be sent more than once";
	case C_RSET: return "sending RSET";
	case C_QUIT: return "sending QUIT";
	default: return "idle";
	}
}

static void timer_cb(uv_timer_t *t);

/* client_step_timer - the deadline for the step that starts now (replaces the last one). */
void client_step_timer(struct smtp_client *c, uint64_t ms)
{
	(void)uv_timer_start(&c->timer, timer_cb, ms, 0);
}

/* ---- closing and freeing ---- */

/* client_free - everything, once libuv and the body reader are done with it. */
void client_free(struct smtp_client *c)
{
	if (c->handles_open > 0 || c->reading_chunk)
		return;
	tls_pump_free(&c->pump);
	free(c->cipher_in);
	free(c->results);
	free(c->rstate);
	free(c->downgrade);
	free(c);
}

static void handle_closed(uv_handle_t *h)
{
	struct smtp_client *c = h->data;

	c->handles_open--;
	client_free(c);
}

/* hard_close - close_notify when TLS is up, then both handles (idempotent). */
static void hard_close(struct smtp_client *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_timer_stop(&c->timer);
	if (c->state != C_DEAD)
		tls_pump_shutdown(&c->pump, true);
	uv_close((uv_handle_t *)c->stream, handle_closed);
	uv_close((uv_handle_t *)&c->timer, handle_closed);
}

/* ---- writing ---- */

/* written - a write finished: a failure ends the connection; after a body chunk, the next. */
static void written(void *ctx, int status)
{
	struct smtp_client *c = ctx;

	if (c->closing || c->state == C_DEAD)
		return;
	if (status < 0) {
		client_fail(c, 0, "4.4.2", "lost connection with %s while %s: %s", c->peer,
			    phase(c), uv_strerror(status));
		return;
	}
	/* The chunk is out: the next one may come (one chunk in memory at a time). */
	if (c->state == C_BODY && c->pump.writes_pending == 0 && !c->reading_chunk)
		client_request_chunk(c);
}

/* client_send_plain - SMTP bytes to the peer, encrypted when TLS is on; failures end the connection. */
int client_send_plain(struct smtp_client *c, const char *data, size_t len)
{
	int r = tls_pump_send(&c->pump, data, len) == 0 ? 0 : -1;

	if (r != 0)
		client_fail(c, 0, "4.4.2", "cannot send to %s while %s", c->peer, phase(c));
	return r;
}

/* client_send_line - one command, formatted. */
int client_send_line(struct smtp_client *c, const char *fmt, ...)
{
	char line[SMTP_COMMAND_MAX + 64];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	return client_send_plain(c, line, (size_t)n);
}

/* ---- outcomes ---- */

/* stop_reading - nothing more from a peer we gave up on. */
static void stop_reading(struct smtp_client *c)
{
	if (!c->closing)
		uv_read_stop(c->stream);
}

/* report_ready - the one ready callback (none after smtp_client_close). */
static void report_ready(struct smtp_client *c, const struct smtp_client_reply *r)
{
	smtp_client_ready_cb cb = c->ready_cb;

	c->ready_cb = NULL;
	if (cb != NULL && !c->user_closed)
		cb(c->ready_arg, r);
}

/*
 * client_finish_message - reports the message: every recipient has its result
 * (one still open gets data's), then the client is ready again (ok) or
 * dead. The callback may send the next message or close the client.
 */
void client_finish_message(struct smtp_client *c, bool ok)
{
	struct smtp_client_reply *results = c->results, data = c->data;
	smtp_client_sent_cb cb = c->sent_cb;
	void *arg = c->sent_arg;

	for (size_t i = 0; i < c->msg.nrcpt; i++)
		if (c->rstate[i] == R_PENDING || c->rstate[i] == R_ACCEPTED)
			results[i] = data;
	free(c->rstate);
	c->rstate = NULL;
	c->results = NULL;
	c->sent_cb = NULL;
	if (!c->closing)
		uv_timer_stop(&c->timer);
	if (ok) {
		c->state = C_READY;
	} else {
		c->state = C_DEAD;
		stop_reading(c);
	}
	if (cb != NULL && !c->user_closed)
		cb(arg, ok, results, &data);
	free(results);
}

/* fail_message - a failure mid-transaction: the undecided recipients get r. */
static void fail_message(struct smtp_client *c, const struct smtp_client_reply *r)
{
	c->data = *r;
	for (size_t i = 0; i < c->msg.nrcpt; i++) {
		if (c->rstate[i] == R_PENDING || c->rstate[i] == R_ACCEPTED) {
			c->results[i] = *r;
			c->rstate[i] = R_DONE;
		}
	}
	/* The body reader still holds the client: report when it returns,
	 * so the caller never sees the result while its read is running. */
	if (c->reading_chunk) {
		c->fail_pending = true;
		return;
	}
	client_finish_message(c, false);
}

/*
 * fail_with - the connection is no longer usable: r goes to whoever
 * waits (the ready callback, or the message's open recipients). A client
 * that is closing just closes.
 */
static void fail_with(struct smtp_client *c, const struct smtp_client_reply *r)
{
	enum client_state was = c->state;

	if (c->closing || was == C_DEAD)
		return;
	c->state = C_DEAD;
	stop_reading(c);
	uv_timer_stop(&c->timer);
	if (c->user_closed) {
		hard_close(c);
		return;
	}
	if (c->results != NULL)
		fail_message(c, r);
	else if (c->ready_cb != NULL)
		report_ready(c, r);
}

/* client_fail - fail_with a reply of our own: code 0 (temporary) or e.g. 450 4.7.5. */
void client_fail(struct smtp_client *c, int code, const char *enhanced,
			const char *fmt, ...)
{
	struct smtp_client_reply r;
	va_list ap;

	memset(&r, 0, sizeof(r));
	r.code = code;
	snprintf(r.enhanced, sizeof(r.enhanced), "%s", enhanced);
	va_start(ap, fmt);
	vsnprintf(r.text, sizeof(r.text), fmt, ap);
	va_end(ap);
	fail_with(c, &r);
}

/*
 * refuse_setup - setup ended on a reply: still in sync, so close may QUIT.
 * An LMTP server that refuses its greeting or LHLO with 5xx is
 * misconfigured, and the mail is fine: that becomes a deferral.
 */
static void refuse_setup(struct smtp_client *c, const struct smtp_client_reply *r)
{
	struct smtp_client_reply soft = *r;

	if (c->lmtp)
		smtp_client_lmtp_deferral(&soft, c->peer,
					  c->state == C_GREETING ? "the greeting" : "LHLO");
	c->state = C_REFUSED;
	uv_timer_stop(&c->timer);
	report_ready(c, &soft);
}

/* tls_required - setup cannot go on without TLS: 450 4.7.5, as a temporary failure. */
static void tls_required(struct smtp_client *c, const char *why)
{
	struct smtp_client_reply r;

	r.code = 450;
	r.size = 0;
	snprintf(r.enhanced, sizeof(r.enhanced), "4.7.5");
	snprintf(r.text, sizeof(r.text), "TLS required but %.480s", why);
	refuse_setup(c, &r);
}

/* ---- setup: greeting, EHLO, STARTTLS ---- */

static int start_tls(struct smtp_client *c);

/* send_ehlo - EHLO, or LHLO to an LMTP server (again after STARTTLS: the extensions may differ). */
static void send_ehlo(struct smtp_client *c)
{
	c->ext = 0;
	c->peer_size = 0;
	c->state = C_EHLO;
	client_step_timer(c, c->timeout_ms);
	(void)client_send_line(c, "%s %s\r\n", c->lmtp ? "LHLO" : "EHLO", c->helo);
}

/* setup_done - EHLO or HELO accepted: STARTTLS, or ready (policy allowing). */
static void setup_done(struct smtp_client *c, const struct smtp_client_reply *r)
{
	char why[SMTP_DOMAIN_MAX + 128];
	bool can_tls = c->tls_policy != SMTP_TLS_NONE && c->tls_client != NULL;

	c->ehlo = *r;
	if (c->pump.tls == NULL && can_tls && (c->ext & SMTP_EXT_STARTTLS)) {
		c->state = C_STARTTLS;
		client_step_timer(c, c->timeout_ms);
		(void)client_send_line(c, "STARTTLS\r\n");
		return;
	}
	if (c->pump.tls == NULL && c->tls_policy == SMTP_TLS_VERIFY) {
		snprintf(why, sizeof(why), c->tls_client == NULL ? "no TLS client is configured"
			 : "%s does not offer STARTTLS", c->peer);
		tls_required(c, why);
		return;
	}
	c->state = C_READY;
	uv_timer_stop(&c->timer);
	report_ready(c, r);
}

/* on_starttls - the reply to STARTTLS. */
static void on_starttls(struct smtp_client *c, const struct smtp_client_reply *r)
{
	char why[600];

	if (r->code / 100 == 2) {
		/* Anything after the 220 was sent before TLS and must not be
		 * read as if it came over it (CVE-2011-0411 style injection). */
		if (c->inlen > 0) {
			client_fail(c, 0, "4.7.0", "%s sent data after its reply to STARTTLS",
				    c->peer);
			return;
		}
		if (start_tls(c) != 0)
			client_fail(c, 0, "4.7.0", "cannot start TLS with %s", c->peer);
		return;
	}
	if (c->tls_policy == SMTP_TLS_VERIFY) {
		snprintf(why, sizeof(why), "STARTTLS failed: %d %s", r->code, r->text);
		tls_required(c, why);
		return;
	}
	/* "may": carry on in the clear, where the EHLO left us. */
	c->state = C_READY;
	uv_timer_stop(&c->timer);
	report_ready(c, &c->ehlo);
}

/* on_setup_reply - greeting, EHLO, HELO, STARTTLS replies. */
static void on_setup_reply(struct smtp_client *c, const struct smtp_client_reply *r,
			   unsigned ext)
{
	bool ok = r->code / 100 == 2;

	switch (c->state) {
	case C_GREETING:
		if (ok)
			send_ehlo(c);
		else
			refuse_setup(c, r);
		break;
	case C_EHLO:
		if (ok) {
			c->ext = ext;
			c->peer_size = (ext & SMTP_EXT_SIZE) ? r->size : 0;
			setup_done(c, r);
		} else if (r->code / 100 == 5 && !c->lmtp) {	/* LMTP has no HELO */
			c->state = C_HELO;
			client_step_timer(c, c->timeout_ms);
			(void)client_send_line(c, "HELO %s\r\n", c->helo);
		} else {
			refuse_setup(c, r);
		}
		break;
	case C_HELO:
		if (ok)
			setup_done(c, r);
		else
			refuse_setup(c, r);
		break;
	case C_STARTTLS:
		on_starttls(c, r);
		break;
	default:
		break;
	}
}

/* ---- reading replies ---- */

/* unexpected - a reply nobody asked for: the conversation is out of step. */
static void unexpected(struct smtp_client *c, const struct smtp_client_reply *r)
{
	client_fail(c, 0, "4.4.2", "unexpected reply from %s while %s: %d %s", c->peer,
		    phase(c), r->code, r->text);
}

/* handle_reply - one complete reply, by state. */
static void handle_reply(struct smtp_client *c, const struct smtp_client_reply *r,
			 unsigned ext)
{
	switch (c->state) {
	case C_GREETING: case C_EHLO: case C_HELO: case C_STARTTLS:
		on_setup_reply(c, r, ext);
		return;
	case C_MAIL: case C_RCPT: case C_DATA: case C_BDAT: case C_DOT: case C_RSET:
		/* 421: the peer is going away (RFC 5321 §3.8); what is open
		 * gets its reply, and the connection is done. */
		if (r->code == 421) {
			fail_with(c, r);
			return;
		}
		/* Each reply starts the next step's deadline: a non-pipelined
		 * envelope of many RCPTs gets smtp_timeout per command, as
		 * Postfix's smtp_rcpt_timeout. What follows may stop it (the
		 * body read, the end of the message) or set its own. */
		client_step_timer(c, c->timeout_ms);
		client_on_transaction_reply(c, r);
		return;
	case C_QUIT:
		hard_close(c);
		return;
	default:
		unexpected(c, r);
		return;
	}
}

/* live - still worth parsing input for. */
static bool live(const struct smtp_client *c)
{
	return !c->closing && c->state != C_DEAD && c->state != C_HANDSHAKE;
}

/* process_input - every complete reply in the buffer, in order. */
static void process_input(struct smtp_client *c)
{
	struct smtp_client_reply r;
	unsigned ext;
	int n;

	while (live(c) && c->inlen > 0) {
		n = smtp_client_parse_reply(c->in, c->inlen, &r, &ext);
		if (n == 0)
			return;
		if (n < 0) {
			client_fail(c, 0, "4.4.2", "malformed reply from %s while %s", c->peer,
				    phase(c));
			return;
		}
		c->inlen -= (size_t)n;
		memmove(c->in, c->in + n, c->inlen);
		handle_reply(c, &r, ext);
	}
}

/* lost - the peer closed, or the socket failed. */
static void lost(struct smtp_client *c, ssize_t nread)
{
	if (c->state == C_QUIT) {
		hard_close(c);
		return;
	}
	if (nread == UV_EOF)
		client_fail(c, 0, "4.4.2", "lost connection with %s while %s", c->peer, phase(c));
	else
		client_fail(c, 0, "4.4.2", "lost connection with %s while %s: %s", c->peer,
			    phase(c), uv_strerror((int)nread));
}

/* handshake_done - TLS is up: check the certificate when asked to, then EHLO again. */
static void handshake_done(void *ctx)
{
	struct smtp_client *c = ctx;
	struct tls_conn *tls = c->pump.tls;
	char why[SMTP_DOMAIN_MAX + 256];
	int bits = tls_conn_bits(tls);

	snprintf(c->tls_info, sizeof(c->tls_info), "%s with cipher %s (%d/%d bits)",
		 tls_conn_version(tls), tls_conn_cipher(tls), bits, bits);
	if (c->tls_policy == SMTP_TLS_VERIFY && !tls_conn_verified(tls)) {
		snprintf(why, sizeof(why), "the certificate of %s did not verify: %s", c->peer,
			 tls_conn_verify_error(tls));
		tls_required(c, why);
		return;
	}
	send_ehlo(c);
}

/* tls_inbuf - room in the reply buffer for plaintext; none left is a reply over 64 KB. */
static void tls_inbuf(void *ctx, char **buf, size_t *len)
{
	struct smtp_client *c = ctx;
	size_t room = sizeof(c->in) - c->inlen;

	*len = 0;
	if (!live(c))
		return;
	if (room == 0) {
		client_fail(c, 0, "4.4.2", "malformed reply from %s while %s", c->peer, phase(c));
		return;
	}
	*buf = c->in + c->inlen;
	*len = room;
}

/* tls_received - plaintext from the TLS engine: parse what is complete. */
static void tls_received(void *ctx, size_t n)
{
	struct smtp_client *c = ctx;

	c->inlen += n;
	process_input(c);
}

/* tls_failed - the handshake or the TLS stream failed: the connection is lost. */
static void tls_failed(void *ctx, enum tls_pump_failure what, const char *why)
{
	struct smtp_client *c = ctx;

	switch (what) {
	case TLS_PUMP_NOMEM:
		client_fail(c, 0, "4.3.0", "out of memory talking to %s", c->peer);
		return;
	case TLS_PUMP_SEND:
		client_fail(c, 0, "4.4.2", "cannot send to %s", c->peer);
		return;
	case TLS_PUMP_HANDSHAKE:
		client_fail(c, 0, "4.7.0", "TLS handshake with %s failed: %s", c->peer,
			    why ? why : "closed by the peer");
		return;
	case TLS_PUMP_READ:
		client_fail(c, 0, "4.4.2", "lost connection with %s while %s: %s", c->peer,
			    phase(c), why ? why : "TLS closed");
		return;
	}
}

static const struct tls_pump_ops client_pump_ops = {
	.inbuf = tls_inbuf, .received = tls_received, .handshake_done = handshake_done,
	.failed = tls_failed, .written = written,
};

/* start_tls - after the 220 to STARTTLS: the ClientHello goes out. */
static int start_tls(struct smtp_client *c)
{
	struct tls_conn *tls;

	c->cipher_in = malloc(CIPHER_READ);
	tls = c->cipher_in != NULL
	      ? tls_conn_new_client(c->tls_client, c->peer_name, c->tls_policy == SMTP_TLS_VERIFY)
	      : NULL;
	if (tls == NULL)
		return -1;
	c->state = C_HANDSHAKE;
	client_step_timer(c, c->timeout_ms);
	return tls_pump_start(&c->pump, tls, true);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct smtp_client *c = h->data;

	(void)suggested;
	if (c->pump.tls != NULL)
		*buf = uv_buf_init(c->cipher_in, CIPHER_READ);
	else
		*buf = uv_buf_init(c->in + c->inlen, (unsigned)(sizeof(c->in) - c->inlen));
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct smtp_client *c = stream->data;

	(void)buf;
	if (c->closing || c->state == C_DEAD)
		return;
	if (nread > 0 && c->pump.tls != NULL) {
		tls_pump_input(&c->pump, c->cipher_in, (size_t)nread);
	} else if (nread > 0) {
		c->inlen += (size_t)nread;
		process_input(c);
		/* A full buffer without a complete reply: a reply over 64 KB. */
		if (live(c) && c->inlen == sizeof(c->in))
			client_fail(c, 0, "4.4.2", "malformed reply from %s while %s", c->peer,
				    phase(c));
	} else if (nread < 0 && nread != UV_ENOBUFS) {
		lost(c, nread);
	}
}

/* ---- connecting, the timer ---- */

static void timer_cb(uv_timer_t *t)
{
	struct smtp_client *c = t->data;

	if (c->state == C_QUIT) {
		hard_close(c);
		return;
	}
	if (c->state == C_LOCAL) {
		client_finish_message(c, true);
		return;
	}
	client_fail(c, 0, "4.4.2", "conversation with %s timed out while %s", c->peer, phase(c));
}

static void connect_cb(uv_connect_t *req, int status)
{
	struct smtp_client *c = req->data;

	if (c->closing)
		return;
	if (status < 0) {
		client_fail(c, 0, "4.4.1", "connect to %s: %s", c->peer, uv_strerror(status));
		return;
	}
	if (c->stream == (uv_stream_t *)&c->sock.tcp)
		(void)uv_tcp_nodelay(&c->sock.tcp, 1);
	if (uv_read_start(c->stream, alloc_cb, read_cb) != 0) {
		client_fail(c, 0, "4.4.1", "cannot read from %s", c->peer);
		return;
	}
	c->state = C_GREETING;
	client_step_timer(c, c->timeout_ms);
}

/* client_helo_name - our EHLO/LHLO name from the options, without what could inject a command. */
static void client_helo_name(struct smtp_client *c, const struct smtp_client_options *opt)
{
	const char *helo = opt->helo_name ? opt->helo_name : "localhost";

	snprintf(c->helo, sizeof(c->helo), "%.*s", (int)strcspn(helo, " \t\r\n"), helo);
	if (c->helo[0] == '\0')
		snprintf(c->helo, sizeof(c->helo), "localhost");
}

/* client_names - our EHLO name and the peer's label "name[ip]", from the options. */
static void client_names(struct smtp_client *c, const struct sockaddr *addr,
			 const struct smtp_client_options *opt)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	client_helo_name(c, opt);
	if (addr->sa_family == AF_INET6)
		uv_ip6_name((const struct sockaddr_in6 *)addr, ip, sizeof(ip));
	else
		uv_ip4_name((const struct sockaddr_in *)addr, ip, sizeof(ip));
	snprintf(c->peer_name, sizeof(c->peer_name), "%s",
		 opt->peer_name && *opt->peer_name ? opt->peer_name : ip);
	snprintf(c->peer, sizeof(c->peer), "%s[%s]", c->peer_name, ip);
}

/* client_new - a client with its options, no handles yet; NULL when out of memory. */
static struct smtp_client *client_new(uv_loop_t *loop, const struct smtp_client_options *opt,
				      smtp_client_ready_cb cb, void *arg)
{
	struct smtp_client *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->loop = loop;
	c->lmtp = opt->lmtp;
	c->chunking = opt->chunking;
	c->tls_policy = opt->tls;
	c->tls_client = opt->tls_client;
	c->timeout_ms = (uint64_t)(opt->timeout ? opt->timeout : DEFAULT_TIMEOUT) * 1000;
	c->ready_cb = cb;
	c->ready_arg = arg;
	return c;
}

/*
 * client_open - the stream (initialised by the caller) gets its pump and
 * the timer; then the connect can start. -1: the client is being closed.
 */
static int client_open(struct smtp_client *c, uv_stream_t *stream)
{
	c->stream = stream;
	tls_pump_init(&c->pump, stream, &client_pump_ops, c, false, 0);
	stream->data = c;
	c->timer.data = c;
	c->connect_req.data = c;
	c->handles_open = 1;
	if (uv_timer_init(c->loop, &c->timer) != 0) {
		c->closing = true;
		uv_close((uv_handle_t *)stream, handle_closed);
		return -1;
	}
	c->handles_open = 2;
	c->state = C_CONNECT;
	return 0;
}

/* smtp_client_connect - see deliver.h; NULL when the connect cannot even start. */
struct smtp_client *smtp_client_connect(uv_loop_t *loop, const struct sockaddr *addr,
					const struct smtp_client_options *opt,
					smtp_client_ready_cb cb, void *arg)
{
	struct smtp_client *c = client_new(loop, opt, cb, arg);

	if (c == NULL)
		return NULL;
	client_names(c, addr, opt);
	if (uv_tcp_init(loop, &c->sock.tcp) != 0) {
		free(c);
		return NULL;
	}
	if (client_open(c, (uv_stream_t *)&c->sock.tcp) != 0)
		return NULL;
	if (uv_tcp_connect(&c->connect_req, &c->sock.tcp, addr, connect_cb) != 0) {
		c->user_closed = true;
		hard_close(c);
		return NULL;
	}
	client_step_timer(c, c->timeout_ms);
	return c;
}

/* smtp_client_connect_unix - see deliver.h; NULL when the connect cannot even start. */
struct smtp_client *smtp_client_connect_unix(uv_loop_t *loop, const char *path,
					     const struct smtp_client_options *opt,
					     smtp_client_ready_cb cb, void *arg)
{
	struct smtp_client *c;

	if (path == NULL || path[0] != '/' || strlen(path) >= SMTP_ROUTE_PATH_MAX)
		return NULL;
	c = client_new(loop, opt, cb, arg);
	if (c == NULL)
		return NULL;
	client_helo_name(c, opt);
	c->tls_client = NULL;	/* no STARTTLS over a local socket */
	c->tls_policy = SMTP_TLS_NONE;
	snprintf(c->peer_name, sizeof(c->peer_name), "%s", path);
	snprintf(c->peer, sizeof(c->peer), "%s", path);
	if (uv_pipe_init(loop, &c->sock.pipe, 0) != 0) {
		free(c);
		return NULL;
	}
	if (client_open(c, (uv_stream_t *)&c->sock.pipe) != 0)
		return NULL;
	/* Failures, a missing socket included, come to connect_cb. */
	uv_pipe_connect(&c->connect_req, &c->sock.pipe, path, connect_cb);
	client_step_timer(c, c->timeout_ms);
	return c;
}

/* smtp_client_close - QUIT when the conversation allows it, then free; no callbacks. */
void smtp_client_close(struct smtp_client *c)
{
	if (c == NULL || c->user_closed)
		return;
	c->user_closed = true;
	c->ready_cb = NULL;
	c->sent_cb = NULL;
	if (c->closing)
		return;
	if (c->state == C_READY || c->state == C_REFUSED) {
		c->state = C_QUIT;
		client_step_timer(c, c->timeout_ms < QUIT_WAIT_MS ? c->timeout_ms : QUIT_WAIT_MS);
		if (client_send_line(c, "QUIT\r\n") == 0)
			return;
	}
	hard_close(c);
}

/* smtp_client_tls_info - "TLSv1.3 with cipher ... (256/256 bits)", or "". */
const char *smtp_client_tls_info(const struct smtp_client *c)
{
	return c->pump.tls != NULL && !c->pump.handshaking ? c->tls_info : "";
}
