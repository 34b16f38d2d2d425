/*
 * conn.c - one connection's TLS engine (server or client side): an SSL object
 * between two memory BIOs. The transport feeds ciphertext in and sends
 * what tls_conn_output gives; the session reads and writes plaintext.
 *
 * Must not: touch a socket or block; leave anything in OpenSSL's
 * (per-thread) error queue after a call, since the next connection's
 * SSL_get_error would read it as its own failure; grow without bound on
 * a peer that sends junk (after a failure, further input is dropped);
 * keep a burst's buffer memory on an idle connection.
 *
 * After every call the caller sends tls_conn_output_pending() bytes:
 * reads can produce output too (TLS 1.3 key updates, alerts).
 */
#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls/tls.h"
#include "tls/tls_int.h"

/* A drained memory BIO never shrinks; one holding more than this is
 * replaced so a connection back to idle costs little (a DATA upload
 * fed in 64 KB reads would otherwise pin 64 KB+ for its lifetime). */
#define CONN_BIO_KEEP 16384

struct tls_conn {
	SSL *ssl;
	BIO *rbio;		/* ciphertext from the peer (owned by ssl) */
	BIO *wbio;		/* ciphertext for the peer (owned by ssl) */
	bool failed;		/* fatal: every call now says TLS_FAILED */
	bool closed;		/* the peer's close_notify arrived */
	bool eof;		/* the transport saw the peer close */
	bool verify;		/* client side: the peer's name was set for checking */
	char error[120];	/* why it failed, for the log */
};

/* conn_bios - two fresh memory BIOs handed to the SSL object. */
static int conn_bios(struct tls_conn *c)
{
	c->rbio = BIO_new(BIO_s_mem());
	c->wbio = BIO_new(BIO_s_mem());
	if (c->rbio == NULL || c->wbio == NULL) {
		BIO_free(c->rbio);
		BIO_free(c->wbio);
		return -1;
	}
	/* An empty read BIO means "more may come" (retry), the default
	 * for BIO_s_mem, until tls_conn_feed_eof says otherwise. */
	SSL_set_bio(c->ssl, c->rbio, c->wbio);
	return 0;
}

/* tls_conn_new - a server side connection with srv's current context. */
struct tls_conn *tls_conn_new(struct tls_server *srv)
{
	struct tls_conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	ERR_clear_error();
	c->ssl = SSL_new(srv->ctx);
	if (c->ssl == NULL || conn_bios(c) != 0) {
		SSL_free(c->ssl);
		free(c);
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
	struct tls_conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	ERR_clear_error();
	c->ssl = SSL_new(cli->ctx);
	if (c->ssl == NULL || conn_bios(c) != 0 || client_name(c, host, verify) != 0) {
		SSL_free(c->ssl);
		free(c);
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

/* tls_conn_free - the SSL object, its BIOs, its reference to the context. */
void tls_conn_free(struct tls_conn *c)
{
	if (c == NULL)
		return;
	SSL_free(c->ssl);
	free(c);
}

/* bio_oversized - empty, but holding on to a large allocation. */
static bool bio_oversized(BIO *b)
{
	BUF_MEM *m = NULL;

	if (BIO_ctrl_pending(b) != 0)
		return false;
	if (BIO_get_mem_ptr(b, &m) <= 0 || m == NULL)
		return false;
	return m->max > CONN_BIO_KEEP;
}

/* conn_trim - swaps a drained, grown BIO for a new one (a failed swap keeps the old). */
static void conn_trim(struct tls_conn *c)
{
	BIO *b;

	/* The read BIO is kept once at EOF: its EOF mark lives in it. */
	if (!c->eof && bio_oversized(c->rbio) && (b = BIO_new(BIO_s_mem())) != NULL) {
		SSL_set0_rbio(c->ssl, b);
		c->rbio = b;
	}
	if (bio_oversized(c->wbio) && (b = BIO_new(BIO_s_mem())) != NULL) {
		SSL_set0_wbio(c->ssl, b);
		c->wbio = b;
	}
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
	if (c->failed || c->closed || c->eof)
		return 0;
	while (len > 0) {
		int chunk = len > INT_MAX ? INT_MAX : (int)len;
		int n = BIO_write(c->rbio, data, chunk);

		if (n <= 0) {
			ERR_clear_error();
			return -1;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* tls_conn_feed_eof - the peer closed: what is cut short now fails. */
void tls_conn_feed_eof(struct tls_conn *c)
{
	/* An empty read BIO now reads as end of file instead of "retry". */
	BIO_set_mem_eof_return(c->rbio, 0);
	c->eof = true;
}

/* tls_conn_input_pending - ciphertext fed but not yet consumed. */
size_t tls_conn_input_pending(const struct tls_conn *c)
{
	return BIO_ctrl_pending(c->rbio);
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
	conn_trim(c);
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
	conn_trim(c);
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
	return BIO_ctrl_pending(c->wbio);
}

/* tls_conn_output - moves up to len bytes of waiting ciphertext into buf. */
size_t tls_conn_output(struct tls_conn *c, char *buf, size_t len)
{
	size_t n = 0;

	if (len == 0 || BIO_read_ex(c->wbio, buf, len, &n) != 1)
		n = 0;
	ERR_clear_error();
	conn_trim(c);
	return n;
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

/* tls_conn_error - why the last step failed, "" if nothing did. */
const char *tls_conn_error(const struct tls_conn *c)
{
	return c->error;
}
