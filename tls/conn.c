/*
 * conn.c - one connection's TLS engine (server or client side): an SSL object
 * between two ciphertext queues. The transport feeds ciphertext in and sends
 * what tls_conn_output gives; the session reads and writes plaintext.
 *
 * Must not: touch a socket or block; leave anything in OpenSSL's
 * (per-thread) error queue after a call, since the next connection's
 * SSL_get_error would read it as its own failure; grow without bound on
 * a peer that sends junk (after a failure, further input is dropped);
 * keep any buffer memory on an idle connection (a queue holds memory
 * only while bytes wait in it, and OpenSSL's record buffers go back
 * through SSL_MODE_RELEASE_BUFFERS).
 *
 * After every call the caller sends tls_conn_output_pending() bytes:
 * reads can produce output too (TLS 1.3 key updates, alerts).
 */
#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls/tls.h"
#include "tls/tls_int.h"

#define QUEUE_MIN 1024		/* first allocation of a queue that gets bytes */

/*
 * A ciphertext queue: the bytes data[start..end) wait to be read. It
 * owns memory only while it is not empty: the read that empties it
 * frees the buffer. (OpenSSL's memory BIO keeps its largest size for
 * the connection's lifetime: the handshake's flight, or a DATA burst,
 * pinned on every idle connection.)
 */
struct queue {
	char *data;
	size_t start, end, cap;
	bool eof;		/* empty now reads as end of file, not "retry" */
};

struct tls_queue_method {
	BIO_METHOD *meth;
	atomic_uint refs;
};

struct tls_conn {
	SSL *ssl;
	struct tls_queue_method *queues;	/* a reference, for the two BIOs */
	struct tls_tickets *tickets;	/* server side: a reference, for the ticket hook */
	struct queue in;	/* ciphertext from the peer, read by SSL through rbio */
	struct queue out;	/* ciphertext for the peer, written by SSL through wbio */
	bool failed;		/* fatal: every call now says TLS_FAILED */
	bool closed;		/* the peer's close_notify arrived */
	bool verify;		/* client side: the peer's name was set for checking */
	char error[120];	/* why it failed, for the log */
};

/* ---- the queues ---- */

static size_t queue_pending(const struct queue *q)
{
	return q->end - q->start;
}

/* queue_put - appends len bytes; 0, or -1 when out of memory. */
static int queue_put(struct queue *q, const char *data, size_t len)
{
	size_t used = queue_pending(q), cap;
	char *p;

	if (len == 0)
		return 0;
	if (len > SIZE_MAX / 2 - used)
		return -1;
	if (q->end + len > q->cap) {
		if (used + len <= q->cap) {
			/* Room enough once the read part is dropped. */
			memmove(q->data, q->data + q->start, used);
		} else {
			for (cap = q->cap ? q->cap : QUEUE_MIN; cap < used + len; cap *= 2)
				;
			if (q->start == 0) {
				p = realloc(q->data, cap);
				if (p == NULL)
					return -1;
			} else {
				p = malloc(cap);
				if (p == NULL)
					return -1;
				memcpy(p, q->data + q->start, used);
				free(q->data);
			}
			q->data = p;
			q->cap = cap;
		}
		q->start = 0;
		q->end = used;
	}
	memcpy(q->data + q->end, data, len);
	q->end += len;
	return 0;
}

/* queue_take - moves up to len bytes out; an emptied queue frees its memory. */
static size_t queue_take(struct queue *q, char *buf, size_t len)
{
	size_t n = queue_pending(q);

	if (n > len)
		n = len;
	if (n > 0)
		memcpy(buf, q->data + q->start, n);
	q->start += n;
	if (q->start == q->end) {
		free(q->data);
		q->data = NULL;
		q->start = q->end = q->cap = 0;
	}
	return n;
}

/* ---- the queues as BIOs, for the SSL object ---- */

static int qbio_write(BIO *b, const char *data, size_t len, size_t *written)
{
	struct queue *q = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	*written = 0;
	if (queue_put(q, data, len) != 0)
		return 0;
	*written = len;
	return 1;
}

static int qbio_read(BIO *b, char *buf, size_t len, size_t *readbytes)
{
	struct queue *q = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	*readbytes = 0;
	if (len == 0)
		return 0;
	if (queue_pending(q) == 0) {
		/* "More may come", until the transport saw the peer close. */
		if (!q->eof)
			BIO_set_retry_read(b);
		return 0;
	}
	*readbytes = queue_take(q, buf, len);
	return 1;
}

static long qbio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct queue *q = BIO_get_data(b);

	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_PENDING:
		return (long)queue_pending(q);
	case BIO_CTRL_EOF:
		return q->eof && queue_pending(q) == 0;
	case BIO_CTRL_FLUSH:
		return 1;	/* the transport sends what is queued */
	default:
		return 0;	/* WPENDING, DUP, PUSH, POP, KTLS...: nothing to do */
	}
}

static int qbio_create(BIO *b)
{
	BIO_set_init(b, 0);
	return 1;
}

/* qbio_destroy - SSL_free frees its BIOs; the queue's memory goes with them. */
static int qbio_destroy(BIO *b)
{
	struct queue *q = BIO_get_data(b);

	if (q != NULL) {
		free(q->data);
		memset(q, 0, sizeof(*q));
	}
	BIO_set_data(b, NULL);
	BIO_set_init(b, 0);
	return 1;
}

/* tls_queue_method_new - the BIO kind, one reference held by the caller; NULL on failure. */
struct tls_queue_method *tls_queue_method_new(void)
{
	struct tls_queue_method *m = malloc(sizeof(*m));
	int type = BIO_get_new_index();

	if (m == NULL || type == -1)
		goto fail;
	m->meth = BIO_meth_new(type | BIO_TYPE_SOURCE_SINK, "mtad ciphertext queue");
	if (m->meth == NULL)
		goto fail;
	if (BIO_meth_set_write_ex(m->meth, qbio_write) != 1 ||
	    BIO_meth_set_read_ex(m->meth, qbio_read) != 1 ||
	    BIO_meth_set_ctrl(m->meth, qbio_ctrl) != 1 ||
	    BIO_meth_set_create(m->meth, qbio_create) != 1 ||
	    BIO_meth_set_destroy(m->meth, qbio_destroy) != 1) {
		BIO_meth_free(m->meth);
		goto fail;
	}
	atomic_init(&m->refs, 1);
	return m;
fail:
	free(m);
	ERR_clear_error();
	return NULL;
}

void tls_queue_method_hold(struct tls_queue_method *m)
{
	atomic_fetch_add(&m->refs, 1);
}

void tls_queue_method_drop(struct tls_queue_method *m)
{
	if (m == NULL || atomic_fetch_sub(&m->refs, 1) != 1)
		return;
	BIO_meth_free(m->meth);
	free(m);
}

/* queue_bio - a BIO over one of the connection's queues, or NULL. */
static BIO *queue_bio(struct tls_conn *c, struct queue *q)
{
	BIO *b = BIO_new(c->queues->meth);

	if (b == NULL)
		return NULL;
	BIO_set_data(b, q);
	BIO_set_init(b, 1);
	return b;
}

/* conn_bios - the two queues handed to the SSL object (which then owns the BIOs). */
static int conn_bios(struct tls_conn *c)
{
	BIO *rbio = queue_bio(c, &c->in), *wbio = queue_bio(c, &c->out);

	if (rbio == NULL || wbio == NULL) {
		BIO_free(rbio);
		BIO_free(wbio);
		return -1;
	}
	SSL_set_bio(c->ssl, rbio, wbio);
	return 0;
}

/* conn_alloc - a connection on ctx with the configuration's BIO kind; NULL on failure. */
static struct tls_conn *conn_alloc(SSL_CTX *ctx, struct tls_queue_method *queues)
{
	struct tls_conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	ERR_clear_error();
	c->queues = queues;
	tls_queue_method_hold(queues);
	c->ssl = SSL_new(ctx);
	if (c->ssl == NULL || conn_bios(c) != 0) {
		tls_conn_free(c);
		ERR_clear_error();
		return NULL;
	}
	return c;
}

/* tls_conn_new - a server side connection with srv's current context and ticket keys. */
struct tls_conn *tls_conn_new(struct tls_server *srv)
{
	struct tls_conn *c = conn_alloc(srv->ctx, srv->queues);

	if (c == NULL)
		return NULL;
	c->tickets = srv->tickets;
	tls_tickets_hold(srv->tickets);
	if (tls_tickets_attach(srv->tickets, c->ssl) != 0) {
		tls_conn_free(c);
		ERR_clear_error();
		return NULL;
	}
	SSL_set_accept_state(c->ssl);
	return c;
}

/* is_ip_literal - SNI carries names only (RFC 6066 §3); addresses are checked as such. */
static bool is_ip_literal(const char *host)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* client_name - SNI, and the name (or address) the certificate must match. */
static int client_name(struct tls_conn *c, const char *host, bool verify)
{
	bool ip = is_ip_literal(host);

	if (!ip && *host != '\0' && SSL_set_tlsext_host_name(c->ssl, host) != 1)
		return -1;
	if (!verify)
		return 0;
	/* Checked with the chain (RFC 6125 via X509_check_host); SSL_VERIFY_NONE
	 * on the context means a mismatch is recorded, not fatal. */
	if (ip)
		return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host) == 1 ? 0 : -1;
	SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	return SSL_set1_host(c->ssl, host) == 1 ? 0 : -1;
}

/* tls_conn_new_client - a client side connection to host (see tls.h). */
struct tls_conn *tls_conn_new_client(struct tls_client *cli, const char *host, bool verify)
{
	struct tls_conn *c = conn_alloc(cli->ctx, cli->queues);

	if (c == NULL)
		return NULL;
	if (client_name(c, host, verify) != 0) {
		tls_conn_free(c);
		ERR_clear_error();
		return NULL;
	}
	c->verify = verify;
	SSL_set_connect_state(c->ssl);
	return c;
}

/* tls_conn_verified - the chain verified and the name matched (asked for at creation). */
bool tls_conn_verified(const struct tls_conn *c)
{
	X509 *peer;

	if (!c->verify || c->failed || !SSL_is_init_finished(c->ssl))
		return false;
	peer = SSL_get0_peer_certificate(c->ssl);
	return peer != NULL && SSL_get_verify_result(c->ssl) == X509_V_OK;
}

/* tls_conn_verify_error - why the peer's certificate did not verify. */
const char *tls_conn_verify_error(const struct tls_conn *c)
{
	if (!SSL_is_init_finished(c->ssl))
		return "handshake not finished";
	if (SSL_get0_peer_certificate(c->ssl) == NULL)
		return "no peer certificate";
	if (!c->verify)
		return "verification not requested";
	return X509_verify_cert_error_string(SSL_get_verify_result(c->ssl));
}

/* tls_conn_free - the SSL object, its BIOs and queues, its references. */
void tls_conn_free(struct tls_conn *c)
{
	if (c == NULL)
		return;
	SSL_free(c->ssl);	/* the BIOs' destroy frees the queues' memory */
	free(c->in.data);	/* in case the SSL object never got its BIOs */
	free(c->out.data);
	tls_queue_method_drop(c->queues);
	tls_tickets_drop(c->tickets);
	free(c);
}

/* conn_reason - the first queued error's reason, else what SSL_get_error said. */
static void conn_reason(struct tls_conn *c, int ssl_error)
{
	unsigned long e = ERR_peek_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

	if (r != NULL)
		snprintf(c->error, sizeof(c->error), "%s", r);
	else if (e != 0)
		ERR_error_string_n(e, c->error, sizeof(c->error));
	else if (ssl_error == SSL_ERROR_SYSCALL)
		/* Memory BIOs have no system calls: this is our EOF. */
		snprintf(c->error, sizeof(c->error), "unexpected eof while reading");
	else
		snprintf(c->error, sizeof(c->error), "TLS error %d", ssl_error);
}

/* conn_status - maps a call that did not succeed; fatal ones mark the conn. */
static enum tls_status conn_status(struct tls_conn *c, int ret)
{
	int e = SSL_get_error(c->ssl, ret);

	if (e == SSL_ERROR_WANT_READ)
		return TLS_WANT_MORE;
	if (e == SSL_ERROR_ZERO_RETURN) {
		c->closed = true;
		return TLS_CLOSED;
	}
	/* WANT_WRITE cannot happen (the write BIO grows) and the others
	 * (X509 lookup, async) are for features not used: all fatal. */
	conn_reason(c, e);
	c->failed = true;
	return TLS_FAILED;
}

/* tls_conn_feed - ciphertext from the peer; dropped once it can no longer be read. 0 or -1. */
int tls_conn_feed(struct tls_conn *c, const char *data, size_t len)
{
	/* The caller closes after TLS_FAILED or TLS_CLOSED; until it does,
	 * a peer still streaming (junk, or records after its close_notify,
	 * which OpenSSL never reads) must not grow the buffer. */
	if (c->failed || c->closed || c->in.eof)
		return 0;
	return queue_put(&c->in, data, len);
}

/* tls_conn_feed_eof - the peer closed: what is cut short now fails. */
void tls_conn_feed_eof(struct tls_conn *c)
{
	/* An empty input queue now reads as end of file instead of "retry". */
	c->in.eof = true;
}

/* tls_conn_input_pending - ciphertext fed but not yet consumed. */
size_t tls_conn_input_pending(const struct tls_conn *c)
{
	return queue_pending(&c->in);
}

/* tls_conn_handshake - advances the handshake with what was fed. */
enum tls_status tls_conn_handshake(struct tls_conn *c)
{
	enum tls_status st;
	int ret;

	if (c->failed)
		return TLS_FAILED;
	ERR_clear_error();
	ret = SSL_do_handshake(c->ssl);
	st = ret == 1 ? TLS_DONE : conn_status(c, ret);
	ERR_clear_error();
	return st;
}

/* tls_conn_read - up to len bytes of plaintext; TLS_DONE with *n > 0. */
enum tls_status tls_conn_read(struct tls_conn *c, char *buf, size_t len, size_t *n)
{
	enum tls_status st;
	int ret;

	*n = 0;
	if (c->failed)
		return TLS_FAILED;
	/* Nothing can be read into nothing; WANT_MORE ends a read loop
	 * where TLS_DONE with 0 bytes would spin it. */
	if (len == 0)
		return TLS_WANT_MORE;
	ERR_clear_error();
	ret = SSL_read_ex(c->ssl, buf, len, n);
	st = ret == 1 ? TLS_DONE : conn_status(c, 0);
	if (st != TLS_DONE)
		*n = 0;
	ERR_clear_error();
	return st;
}

/* tls_conn_write - encrypts all of data into the output. 0, or -1 with tls_conn_error. */
int tls_conn_write(struct tls_conn *c, const char *data, size_t len)
{
	size_t done = 0;
	int ret;

	if (c->failed)
		return -1;
	if (len == 0)
		return 0;
	ERR_clear_error();
	ret = SSL_write_ex(c->ssl, data, len, &done);
	if (ret == 1 && done == len) {
		ERR_clear_error();
		return 0;
	}
	/* Without SSL_MODE_ENABLE_PARTIAL_WRITE a success is complete, so
	 * only a failure gets here: fatal, or a write before the handshake
	 * finished (WANT_MORE), which is the caller's mistake. */
	if (ret != 1 && conn_status(c, ret) != TLS_FAILED)
		snprintf(c->error, sizeof(c->error), "write before the handshake finished");
	else if (ret == 1)
		snprintf(c->error, sizeof(c->error), "short write");
	ERR_clear_error();
	return -1;
}

/* tls_conn_output_pending - ciphertext waiting for the peer. */
size_t tls_conn_output_pending(const struct tls_conn *c)
{
	return queue_pending(&c->out);
}

/* tls_conn_output - moves up to len bytes of waiting ciphertext into buf. */
size_t tls_conn_output(struct tls_conn *c, char *buf, size_t len)
{
	return queue_take(&c->out, buf, len);
}

/* tls_conn_shutdown - queues close_notify; the result does not matter. */
void tls_conn_shutdown(struct tls_conn *c)
{
	/* After a fatal alert there is no session left to close. We send
	 * close_notify once and never wait for the peer's: the transport
	 * closes after sending it (RFC 8446 §6.1 allows that). */
	if (c->failed)
		return;
	ERR_clear_error();
	(void)SSL_shutdown(c->ssl);
	ERR_clear_error();
}

/* tls_conn_version - "TLSv1.3" once the handshake is done, else "". */
const char *tls_conn_version(const struct tls_conn *c)
{
	return SSL_is_init_finished(c->ssl) ? SSL_get_version(c->ssl) : "";
}

/* tls_conn_cipher - the negotiated cipher's name once done, else "". */
const char *tls_conn_cipher(const struct tls_conn *c)
{
	const SSL_CIPHER *cipher = SSL_get_current_cipher(c->ssl);

	if (!SSL_is_init_finished(c->ssl) || cipher == NULL)
		return "";
	return SSL_CIPHER_get_name(cipher);
}

/* tls_conn_bits - the cipher's secret bits once done, else 0. */
int tls_conn_bits(const struct tls_conn *c)
{
	const SSL_CIPHER *cipher = SSL_get_current_cipher(c->ssl);

	if (!SSL_is_init_finished(c->ssl) || cipher == NULL)
		return 0;
	return SSL_CIPHER_get_bits(cipher, NULL);
}

/* tls_conn_resumed - the handshake resumed a session (a ticket) instead of a full one. */
bool tls_conn_resumed(const struct tls_conn *c)
{
	return SSL_is_init_finished(c->ssl) && SSL_session_reused(c->ssl) == 1;
}

/* tls_conn_error - why the last step failed, "" if nothing did. */
const char *tls_conn_error(const struct tls_conn *c)
{
	return c->error;
}
