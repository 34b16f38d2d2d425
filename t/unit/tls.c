/*
 * tls.c - unit tests for tls/: real handshakes between an OpenSSL client
 * (memory BIOs, no verification) and a tls_conn, entirely in memory.
 * Versions, plaintext both ways (1 MB too), close_notify, garbage and
 * truncated input, byte-at-a-time input, configuration errors, reload,
 * and resumption by session tickets (TLS 1.3 and 1.2): key rotation on
 * a clock the test moves (tls_int.h), tickets across a reload.
 * Certificates are made at start with the openssl command in a mkdtemp
 * directory that is removed at the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "t/unit/tap.h"
#include "tls/tls.h"
#include "tls/tls_int.h"	/* the ticket keys' clock */

#define MB (1024 * 1024)

/* The temporary directory and the files made in it. */
struct files {
	char dir[64];
	char cert1[128], key1[128];	/* CN=mx.campus.test */
	char cert2[128], key2[128];	/* CN=mx2.campus.test */
	char bad[128];			/* not PEM at all */
};

/* The client end: an SSL object between two memory BIOs. */
struct client {
	SSL_CTX *ctx;
	SSL *ssl;
	BIO *rbio, *wbio;
	int done;
};

/* make_cert - a self-signed P-256 certificate and key with CN cn. */
static int make_cert(const char *cert, const char *key, const char *cn)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		 "-subj /CN=%s -days 2 -keyout %s -out %s >/dev/null 2>&1", cn, key, cert);
	return system(cmd) == 0 ? 0 : -1;
}

/* make_files - the temporary directory with two certificates and junk. */
static int make_files(struct files *f)
{
	FILE *fp;

	snprintf(f->dir, sizeof(f->dir), "/tmp/mtad-tls-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->cert1, sizeof(f->cert1), "%s/cert1.pem", f->dir);
	snprintf(f->key1, sizeof(f->key1), "%s/key1.pem", f->dir);
	snprintf(f->cert2, sizeof(f->cert2), "%s/cert2.pem", f->dir);
	snprintf(f->key2, sizeof(f->key2), "%s/key2.pem", f->dir);
	snprintf(f->bad, sizeof(f->bad), "%s/bad.pem", f->dir);
	if ((fp = fopen(f->bad, "w")) == NULL)
		return -1;
	fputs("this is not a certificate\n", fp);
	if (fclose(fp) != 0)
		return -1;
	if (make_cert(f->cert1, f->key1, "mx.campus.test") != 0)
		return -1;
	return make_cert(f->cert2, f->key2, "mx2.campus.test");
}

/* remove_files - everything make_files made (missing files are fine). */
static void remove_files(struct files *f)
{
	unlink(f->cert1);
	unlink(f->key1);
	unlink(f->cert2);
	unlink(f->key2);
	unlink(f->bad);
	rmdir(f->dir);
}

/* settings - cert and key, everything else default. */
static struct tls_settings settings(const char *cert, const char *key)
{
	struct tls_settings set = { .cert_file = cert, .key_file = key, .chain_file = "",
				    .min_version = NULL, .ciphers = "", .ciphersuites = "" };
	return set;
}

/* client_new - a client with max_version (0: any), not yet started. */
static int client_new(struct client *cl, int max_version)
{
	memset(cl, 0, sizeof(*cl));
	cl->ctx = SSL_CTX_new(TLS_client_method());
	if (cl->ctx == NULL)
		return -1;
	SSL_CTX_set_verify(cl->ctx, SSL_VERIFY_NONE, NULL);
	if (max_version != 0 && SSL_CTX_set_max_proto_version(cl->ctx, max_version) != 1)
		return -1;
	cl->ssl = SSL_new(cl->ctx);
	cl->rbio = BIO_new(BIO_s_mem());
	cl->wbio = BIO_new(BIO_s_mem());
	if (cl->ssl == NULL || cl->rbio == NULL || cl->wbio == NULL) {
		BIO_free(cl->rbio);
		BIO_free(cl->wbio);
		cl->rbio = cl->wbio = NULL;
		return -1;
	}
	SSL_set_bio(cl->ssl, cl->rbio, cl->wbio);
	SSL_set_connect_state(cl->ssl);
	return 0;
}

/* client_free - the client's SSL (with its BIOs) and context. */
static void client_free(struct client *cl)
{
	SSL_free(cl->ssl);
	SSL_CTX_free(cl->ctx);
	ERR_clear_error();
}

/* to_server - the client's waiting bytes into the tls_conn, step bytes at a time. */
static size_t to_server(struct client *cl, struct tls_conn *s, size_t step)
{
	char buf[16384];
	size_t total = 0;
	int n;

	if (step > sizeof(buf))
		step = sizeof(buf);
	while ((n = BIO_read(cl->wbio, buf, (int)step)) > 0) {
		if (tls_conn_feed(s, buf, (size_t)n) != 0)
			return total;
		total += (size_t)n;
		if (step < sizeof(buf))
			(void)tls_conn_handshake(s);
	}
	return total;
}

/* to_client - the tls_conn's waiting output into the client. */
static size_t to_client(struct tls_conn *s, struct client *cl)
{
	char buf[16384];
	size_t n, total = 0;

	while ((n = tls_conn_output(s, buf, sizeof(buf))) > 0) {
		if (BIO_write(cl->rbio, buf, (int)n) != (int)n)
			return total;
		total += n;
	}
	return total;
}

/*
 * handshake - drives both ends until both finish, one fails, or nothing
 * moves. step limits how many bytes the server gets per feed (1 for the
 * byte-at-a-time test). Returns the server's last status.
 */
static enum tls_status handshake(struct client *cl, struct tls_conn *s, size_t step)
{
	enum tls_status st = TLS_WANT_MORE;

	for (int round = 0; round < 100; round++) {
		size_t moved;

		if (!cl->done) {
			int r = SSL_do_handshake(cl->ssl);

			if (r == 1)
				cl->done = 1;
			else if (SSL_get_error(cl->ssl, r) != SSL_ERROR_WANT_READ)
				break;
		}
		moved = to_server(cl, s, step);
		st = tls_conn_handshake(s);
		moved += to_client(s, cl);
		if (st == TLS_FAILED || (st == TLS_DONE && cl->done))
			break;
		if (moved == 0 && round > 0)
			break;
	}
	ERR_clear_error();
	return st;
}

/* server_read_all - reads plaintext until want bytes came or it stops. */
static size_t server_read_all(struct tls_conn *s, char *buf, size_t want)
{
	size_t got = 0, n;

	while (got < want && tls_conn_read(s, buf + got, want - got, &n) == TLS_DONE)
		got += n;
	return got;
}

/* client_read_all - the client reads until want bytes came or it stops. */
static size_t client_read_all(struct client *cl, char *buf, size_t want)
{
	size_t got = 0, n;

	while (got < want && SSL_read_ex(cl->ssl, buf + got, want - got, &n) == 1)
		got += n;
	ERR_clear_error();
	return got;
}

/* peer_cn - the common name of the certificate the client got. */
static void peer_cn(struct client *cl, char *cn, int len)
{
	X509 *x = SSL_get1_peer_certificate(cl->ssl);

	cn[0] = '\0';
	if (x == NULL)
		return;
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, len) < 0)
		cn[0] = '\0';
	X509_free(x);
}

/* fill - a recognisable pattern, so a lost or repeated chunk shows. */
static void fill(char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)(i * 7 + i / 251);
}

/* queue_clean - nothing left in this thread's OpenSSL error queue. */
static int queue_clean(void)
{
	return ERR_peek_error() == 0;
}

/* test_handshake - default settings: TLS 1.3, getters, certificate. */
static void test_handshake(struct tap *t, struct tls_server *srv)
{
	struct client cl;
	struct tls_conn *s = tls_conn_new(srv);
	char cn[64];

	TAP_OK(t, s != NULL && client_new(&cl, 0) == 0, "server conn and client made");
	TAP_OK(t, strcmp(tls_conn_version(s), "") == 0 && strcmp(tls_conn_cipher(s), "") == 0 &&
	       tls_conn_bits(s) == 0, "getters are empty before the handshake");
	TAP_OK(t, tls_conn_write(s, "x", 1) == -1 && tls_conn_error(s)[0] != '\0',
	       "write before the handshake fails: %s", tls_conn_error(s));
	TAP_OK(t, handshake(&cl, s, 16384) == TLS_DONE && cl.done, "handshake completes");
	TAP_OK(t, strcmp(tls_conn_version(s), "TLSv1.3") == 0, "version: %s", tls_conn_version(s));
	TAP_OK(t, strncmp(tls_conn_cipher(s), "TLS_", 4) == 0, "cipher: %s", tls_conn_cipher(s));
	TAP_OK(t, tls_conn_bits(s) >= 128, "bits: %d", tls_conn_bits(s));
	peer_cn(&cl, cn, sizeof(cn));
	TAP_OK(t, strcmp(cn, "mx.campus.test") == 0, "client sees CN %s", cn);
	TAP_OK(t, queue_clean(), "error queue empty after the handshake");
	tls_conn_free(s);
	client_free(&cl);
}

/* test_small_data - one command and one reply, then more than fit one read. */
static void test_small_data(struct tap *t, struct client *cl, struct tls_conn *s)
{
	char buf[256];
	size_t n;

	TAP_OK(t, SSL_write(cl->ssl, "EHLO client\r\n", 13) == 13, "client writes a command");
	to_server(cl, s, 16384);
	n = server_read_all(s, buf, 13);
	TAP_OK(t, n == 13 && memcmp(buf, "EHLO client\r\n", 13) == 0, "server reads it");
	TAP_OK(t, tls_conn_read(s, buf, sizeof(buf), &n) == TLS_WANT_MORE && n == 0,
	       "then WANT_MORE with 0 bytes");
	TAP_OK(t, tls_conn_write(s, "250 ok\r\n", 8) == 0 && tls_conn_output_pending(s) > 0,
	       "server write leaves output pending");
	to_client(s, cl);
	TAP_OK(t, tls_conn_output_pending(s) == 0, "output drained");
	n = client_read_all(cl, buf, 8);
	TAP_OK(t, n == 8 && memcmp(buf, "250 ok\r\n", 8) == 0, "client reads the reply");
}

/* send_mb_to_server - 1 MB from the client in 3000 byte writes, read back. */
static int send_mb_to_server(struct client *cl, struct tls_conn *s, const char *data, char *got)
{
	size_t off = 0, total = 0, n;

	while (off < MB) {
		size_t chunk = MB - off < 3000 ? MB - off : 3000;

		if (SSL_write(cl->ssl, data + off, (int)chunk) != (int)chunk)
			return 0;
		off += chunk;
		to_server(cl, s, 16384);
		while (tls_conn_read(s, got + total, MB - total, &n) == TLS_DONE)
			total += n;
	}
	return total == MB && memcmp(data, got, MB) == 0;
}

/* send_mb_to_client - 1 MB from the server in 64 KB writes, read back. */
static int send_mb_to_client(struct client *cl, struct tls_conn *s, const char *data, char *got)
{
	size_t total = 0;

	for (size_t off = 0; off < MB; off += 65536) {
		if (tls_conn_write(s, data + off, 65536) != 0)
			return 0;
		to_client(s, cl);
		total += client_read_all(cl, got + total, off + 65536 - total);
	}
	return total == MB && memcmp(data, got, MB) == 0;
}

/*
 * send_in_one_feed - 256 KB of records fed in one call, then read: the
 * read buffer grows past what a drained conn keeps and is replaced.
 */
static int send_in_one_feed(struct client *cl, struct tls_conn *s, const char *data, char *got)
{
	const size_t len = 256 * 1024;
	char *wire;
	long n;

	if (SSL_write(cl->ssl, data, (int)len) != (int)len)
		return 0;
	n = BIO_get_mem_data(cl->wbio, &wire);
	if (n <= 0 || tls_conn_feed(s, wire, (size_t)n) != 0)
		return 0;
	(void)BIO_reset(cl->wbio);
	memset(got, 0, len);
	return server_read_all(s, got, len) == len && memcmp(data, got, len) == 0 &&
	       tls_conn_input_pending(s) == 0;
}

/* test_data - plaintext both ways, 1 MB both ways, close_notify both ways. */
static void test_data(struct tap *t, struct tls_server *srv)
{
	struct client cl;
	struct tls_conn *s = tls_conn_new(srv);
	char *data = malloc(MB), *got = malloc(MB), buf[64];
	size_t n;

	if (s == NULL || data == NULL || got == NULL || client_new(&cl, 0) != 0 ||
	    handshake(&cl, s, 16384) != TLS_DONE) {
		TAP_OK(t, 0, "setup for the data tests");
		goto out;
	}
	test_small_data(t, &cl, s);
	fill(data, MB);
	TAP_OK(t, send_mb_to_server(&cl, s, data, got), "1 MB client to server in chunks");
	TAP_OK(t, tls_conn_input_pending(s) == 0, "all input consumed");
	TAP_OK(t, send_in_one_feed(&cl, s, data, got), "256 KB fed in one call, read back");
	test_small_data(t, &cl, s);
	memset(got, 0, MB);
	TAP_OK(t, send_mb_to_client(&cl, s, data, got), "1 MB server to client in chunks");
	TAP_OK(t, SSL_shutdown(cl.ssl) == 0, "client sends close_notify");
	to_server(&cl, s, 16384);
	TAP_OK(t, tls_conn_read(s, buf, sizeof(buf), &n) == TLS_CLOSED && n == 0,
	       "server read says TLS_CLOSED");
	TAP_OK(t, tls_conn_read(s, buf, sizeof(buf), &n) == TLS_CLOSED, "and keeps saying so");
	TAP_OK(t, tls_conn_feed(s, data, 65536) == 0 && tls_conn_input_pending(s) == 0,
	       "input after close_notify is dropped");
	tls_conn_shutdown(s);
	TAP_OK(t, tls_conn_output_pending(s) > 0, "server close_notify is output");
	to_client(s, &cl);
	TAP_OK(t, SSL_read(cl.ssl, buf, sizeof(buf)) == 0 &&
	       SSL_get_error(cl.ssl, 0) == SSL_ERROR_ZERO_RETURN, "client sees close_notify");
	ERR_clear_error();
	TAP_OK(t, queue_clean(), "error queue empty after the data tests");
	client_free(&cl);
out:
	tls_conn_free(s);
	free(data);
	free(got);
}

/* test_tls12 - a client capped at TLS 1.2 gets TLS 1.2 by default... */
static void test_tls12(struct tap *t, struct tls_server *srv)
{
	struct client cl;
	struct tls_conn *s = tls_conn_new(srv);
	char buf[16];
	size_t n;

	if (s == NULL || client_new(&cl, TLS1_2_VERSION) != 0) {
		TAP_OK(t, 0, "setup for TLS 1.2");
		tls_conn_free(s);
		return;
	}
	TAP_OK(t, handshake(&cl, s, 16384) == TLS_DONE && cl.done, "TLS 1.2 handshake completes");
	TAP_OK(t, strcmp(tls_conn_version(s), "TLSv1.2") == 0, "version: %s", tls_conn_version(s));
	TAP_OK(t, strncmp(tls_conn_cipher(s), "ECDHE-ECDSA-", 12) == 0, "cipher: %s",
	       tls_conn_cipher(s));
	SSL_write(cl.ssl, "QUIT\r\n", 6);
	to_server(&cl, s, 16384);
	TAP_OK(t, server_read_all(s, buf, 6) == 6 && memcmp(buf, "QUIT\r\n", 6) == 0 &&
	       tls_conn_read(s, buf, sizeof(buf), &n) == TLS_WANT_MORE, "data over TLS 1.2");
	tls_conn_free(s);
	client_free(&cl);
}

/* test_min13 - ...and min_version=TLSv1.3 refuses it. */
static void test_min13(struct tap *t, const struct files *f)
{
	struct tls_settings set = settings(f->cert1, f->key1);
	struct tls_server *srv;
	struct tls_conn *s;
	struct client cl;
	char err[512] = "";

	set.min_version = "TLSv1.3";
	srv = tls_server_new(&set, err, sizeof(err));
	TAP_OK(t, srv != NULL, "min_version TLSv1.3 accepted %s", err);
	if (srv == NULL || (s = tls_conn_new(srv)) == NULL)
		goto out;
	if (client_new(&cl, TLS1_2_VERSION) == 0) {
		TAP_OK(t, handshake(&cl, s, 16384) == TLS_FAILED, "TLS 1.2 only client fails");
		TAP_OK(t, tls_conn_error(s)[0] != '\0', "reason: %s", tls_conn_error(s));
		TAP_OK(t, SSL_do_handshake(cl.ssl) != 1 &&
		       ERR_GET_REASON(ERR_peek_error()) == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION,
		       "the client got a protocol_version alert");
		ERR_clear_error();
		TAP_OK(t, queue_clean(), "error queue empty after the failure");
	}
	client_free(&cl);
	tls_conn_free(s);
	if (client_new(&cl, 0) == 0 && (s = tls_conn_new(srv)) != NULL) {
		TAP_OK(t, handshake(&cl, s, 16384) == TLS_DONE &&
		       strcmp(tls_conn_version(s), "TLSv1.3") == 0 && tls_conn_error(s)[0] == '\0',
		       "a TLS 1.3 client still works, no error carried over");
		tls_conn_free(s);
	}
	client_free(&cl);
out:
	tls_server_free(srv);
}

/* garbage - feeds text to a new conn; the handshake status, reason in why. */
static enum tls_status garbage(struct tls_server *srv, const char *text, char *why, size_t len)
{
	struct tls_conn *s = tls_conn_new(srv);
	enum tls_status st;

	if (s == NULL)
		return TLS_DONE;
	if (tls_conn_feed(s, text, strlen(text)) != 0) {
		tls_conn_free(s);
		return TLS_DONE;
	}
	st = tls_conn_handshake(s);
	snprintf(why, len, "%s", tls_conn_error(s));
	tls_conn_free(s);
	return st;
}

/* test_garbage - plaintext SMTP, HTTP, and a flood of junk. */
static void test_garbage(struct tap *t, struct tls_server *srv)
{
	char why[128], *junk = malloc(65536);
	struct tls_conn *s = tls_conn_new(srv);
	enum tls_status st = TLS_DONE;
	size_t most = 0;

	TAP_OK(t, garbage(srv, "EHLO x\r\n", why, sizeof(why)) == TLS_FAILED && why[0] != '\0',
	       "plaintext EHLO fails: %s", why);
	TAP_OK(t, queue_clean(), "error queue empty");
	TAP_OK(t, garbage(srv, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", why, sizeof(why)) == TLS_FAILED &&
	       strcmp(why, "http request") == 0, "HTTP request fails: %s", why);
	if (junk == NULL || s == NULL) {
		TAP_OK(t, 0, "setup for the junk flood");
		goto out;
	}
	memset(junk, 0x16, 65536);	/* looks like handshake records */
	for (int i = 0; i < 160; i++) {	/* 10 MB */
		if (tls_conn_feed(s, junk, 65536) != 0)
			break;
		st = tls_conn_handshake(s);
		if (tls_conn_input_pending(s) > most)
			most = tls_conn_input_pending(s);
	}
	TAP_OK(t, st == TLS_FAILED, "10 MB of junk fails: %s", tls_conn_error(s));
	TAP_OK(t, most <= 65536, "input after the failure is dropped (most held: %zu)", most);
	TAP_OK(t, queue_clean(), "error queue empty after the flood");
out:
	tls_conn_free(s);
	free(junk);
}

/* test_truncated - half a ClientHello waits; the peer's EOF then fails it. */
static void test_truncated(struct tap *t, struct tls_server *srv)
{
	struct client cl;
	struct tls_conn *s = tls_conn_new(srv);
	char hello[4096], buf[16];
	size_t n = 0;

	if (s == NULL || client_new(&cl, 0) != 0) {
		TAP_OK(t, 0, "setup for the truncated ClientHello");
		tls_conn_free(s);
		return;
	}
	(void)SSL_do_handshake(cl.ssl);
	ERR_clear_error();
	n = (size_t)BIO_read(cl.wbio, hello, sizeof(hello));
	TAP_OK(t, n > 100 && n < sizeof(hello), "ClientHello captured (%zu bytes)", n);
	TAP_OK(t, tls_conn_feed(s, hello, n / 2) == 0 && tls_conn_handshake(s) == TLS_WANT_MORE,
	       "half a ClientHello wants more");
	tls_conn_feed_eof(s);
	TAP_OK(t, tls_conn_handshake(s) == TLS_FAILED && tls_conn_error(s)[0] != '\0',
	       "EOF after it fails: %s", tls_conn_error(s));
	TAP_OK(t, tls_conn_read(s, buf, sizeof(buf), &n) == TLS_FAILED, "reads fail too");
	tls_conn_shutdown(s);
	TAP_OK(t, queue_clean(), "error queue empty");
	tls_conn_free(s);
	client_free(&cl);
}

/* test_bytewise - the handshake fed one byte at a time. */
static void test_bytewise(struct tap *t, struct tls_server *srv)
{
	struct client cl;
	struct tls_conn *s = tls_conn_new(srv);
	char buf[16];

	if (s == NULL || client_new(&cl, 0) != 0) {
		TAP_OK(t, 0, "setup for byte-at-a-time");
		tls_conn_free(s);
		return;
	}
	TAP_OK(t, handshake(&cl, s, 1) == TLS_DONE && cl.done, "byte-at-a-time handshake completes");
	SSL_write(cl.ssl, "NOOP\r\n", 6);
	to_server(&cl, s, 1);
	TAP_OK(t, server_read_all(s, buf, 6) == 6 && memcmp(buf, "NOOP\r\n", 6) == 0,
	       "byte-at-a-time record decrypts");
	tls_conn_free(s);
	client_free(&cl);
}

/* expect_error - tls_server_new fails and err mentions want (and want2). */
static void expect_error(struct tap *t, const struct tls_settings *set, const char *want,
			 const char *want2, const char *what)
{
	char err[512] = "";
	struct tls_server *srv = tls_server_new(set, err, sizeof(err));

	TAP_OK(t, srv == NULL && strstr(err, want) != NULL && (want2 == NULL || strstr(err, want2)),
	       "%s: %s", what, err);
	TAP_OK(t, queue_clean(), "error queue empty after: %s", what);
	tls_server_free(srv);
}

/* test_config_errors - every bad setting is refused with a precise message. */
static void test_config_errors(struct tap *t, const struct files *f)
{
	char missing[160];
	struct tls_settings set;

	snprintf(missing, sizeof(missing), "%s/nonexistent.pem", f->dir);
	set = settings(missing, f->key1);
	expect_error(t, &set, missing, "No such file", "missing cert_file");
	set = settings(f->cert1, missing);
	expect_error(t, &set, missing, "No such file", "missing key_file");
	set = settings(f->bad, f->key1);
	expect_error(t, &set, f->bad, "no start line", "cert_file without a certificate");
	set = settings(f->cert1, f->key2);
	expect_error(t, &set, f->key2, "key values mismatch", "key not matching cert");
	set = settings(NULL, f->key1);
	expect_error(t, &set, "cert_file", "not set", "no cert_file");
	set = settings(f->cert1, f->key1);
	set.ciphers = "NOSUCHCIPHER:ALSONOT";
	expect_error(t, &set, "NOSUCHCIPHER:ALSONOT", "no cipher match", "bad cipher list");
	set = settings(f->cert1, f->key1);
	set.ciphersuites = "TLS_NOPE";
	expect_error(t, &set, "ciphersuites \"TLS_NOPE\"", NULL, "bad ciphersuites");
	set = settings(f->cert1, f->key1);
	set.min_version = "TLSv1.1";
	expect_error(t, &set, "min_version \"TLSv1.1\"", NULL, "bad min_version");
	set = settings(f->cert1, f->key1);
	set.chain_file = f->bad;
	expect_error(t, &set, f->bad, "chain_file", "chain_file without certificates");
}

/* test_chain - a chain_file's certificates go out after the leaf. */
static void test_chain(struct tap *t, const struct files *f)
{
	struct tls_settings set = settings(f->cert1, f->key1);
	struct tls_server *srv;
	struct tls_conn *s = NULL;
	struct client cl;
	char err[512] = "";

	set.chain_file = f->cert2;	/* any certificate will do as an "intermediate" */
	srv = tls_server_new(&set, err, sizeof(err));
	TAP_OK(t, srv != NULL, "chain_file accepted %s", err);
	if (srv == NULL || client_new(&cl, 0) != 0)
		goto out;
	if ((s = tls_conn_new(srv)) != NULL && handshake(&cl, s, 16384) == TLS_DONE) {
		STACK_OF(X509) *chain = SSL_get_peer_cert_chain(cl.ssl);

		TAP_OK(t, chain != NULL && sk_X509_num(chain) == 2, "client got leaf + chain (%d)",
		       chain != NULL ? sk_X509_num(chain) : -1);
	} else {
		TAP_OK(t, 0, "handshake with a chain");
	}
	client_free(&cl);
out:
	tls_conn_free(s);
	tls_server_free(srv);
}

/* test_reload - new connections get the new certificate, old ones go on. */
static void test_reload(struct tap *t, const struct files *f, struct tls_server *srv)
{
	struct tls_settings set2 = settings(f->cert2, f->key2), bad = settings(f->cert1, f->key2);
	struct client old, cl;
	struct tls_conn *os = tls_conn_new(srv), *s = NULL;
	char err[512] = "", cn[64], buf[16];

	if (os == NULL || client_new(&old, 0) != 0 || handshake(&old, os, 16384) != TLS_DONE) {
		TAP_OK(t, 0, "setup for reload");
		tls_conn_free(os);
		return;
	}
	TAP_OK(t, tls_server_reload(srv, &set2, err, sizeof(err)) == 0, "reload with cert2 %s", err);
	if (client_new(&cl, 0) == 0 && (s = tls_conn_new(srv)) != NULL) {
		TAP_OK(t, handshake(&cl, s, 16384) == TLS_DONE, "new connection after reload");
		peer_cn(&cl, cn, sizeof(cn));
		TAP_OK(t, strcmp(cn, "mx2.campus.test") == 0, "new connection sees CN %s", cn);
	}
	tls_conn_free(s);
	client_free(&cl);
	TAP_OK(t, tls_server_reload(srv, &bad, err, sizeof(err)) == -1 &&
	       strstr(err, "key values mismatch") != NULL, "failed reload reports: %s", err);
	if (client_new(&cl, 0) == 0 && (s = tls_conn_new(srv)) != NULL &&
	    handshake(&cl, s, 16384) == TLS_DONE) {
		peer_cn(&cl, cn, sizeof(cn));
		TAP_OK(t, strcmp(cn, "mx2.campus.test") == 0, "failed reload kept cert2 (%s)", cn);
	}
	tls_conn_free(s);
	client_free(&cl);
	/* The old context's last reference is now the old connection's. */
	tls_server_free(srv);
	SSL_write(old.ssl, "RSET\r\n", 6);
	to_server(&old, os, 16384);
	TAP_OK(t, server_read_all(os, buf, 6) == 6 && memcmp(buf, "RSET\r\n", 6) == 0,
	       "old connection reads after reload and server free");
	TAP_OK(t, tls_conn_write(os, "250 2.0.0 ok\r\n", 14) == 0 && to_client(os, &old) > 0 &&
	       client_read_all(&old, buf, 14) == 14 && memcmp(buf, "250 2.0.0 ok\r\n", 14) == 0,
	       "old connection writes after reload");
	tls_conn_free(os);
	client_free(&old);
}

/* ---- resumption ---- */

/* What a connection did: completed, resumed (server and client agree), the new session. */
struct round {
	int done;
	int resumed;		/* 1, 0, or -1 when the two ends disagree */
	SSL_SESSION *session;	/* the client's, with the newest ticket; caller frees */
};

/*
 * session_on - a client capped at max_version (options opts) offering
 * offer (NULL: none) handshakes with s; then it reads, so TLS 1.3's
 * tickets (sent after the handshake) reach its session.
 */
static struct round session_on(struct tls_conn *s, int max_version, long opts,
			       SSL_SESSION *offer)
{
	struct round r = { 0, -1, NULL };
	struct client cl;
	char buf[16];

	if (s == NULL || client_new(&cl, max_version) != 0)
		goto out;
	SSL_set_options(cl.ssl, (uint64_t)opts);
	if ((offer == NULL || SSL_set_session(cl.ssl, offer) == 1) &&
	    handshake(&cl, s, 16384) == TLS_DONE && cl.done) {
		(void)SSL_read(cl.ssl, buf, sizeof(buf));	/* WANT_READ, tickets taken */
		r.done = 1;
		r.resumed = tls_conn_resumed(s) ? 1 : 0;
		if ((SSL_session_reused(cl.ssl) == 1) != (r.resumed == 1))
			r.resumed = -1;
		r.session = SSL_get1_session(cl.ssl);
		/* As a mail client after QUIT: freed without close_notify,
		 * OpenSSL would mark the session not resumable. */
		(void)SSL_shutdown(cl.ssl);
	}
out:
	client_free(&cl);
	tls_conn_free(s);
	return r;
}

/* session_round - session_on with a new connection of srv. */
static struct round session_round(struct tls_server *srv, int max_version, SSL_SESSION *offer)
{
	return session_on(tls_conn_new(srv), max_version, 0, offer);
}

/* vname - "TLS 1.3" or "TLS 1.2", for the test names. */
static const char *vname(int version)
{
	return version == TLS1_3_VERSION ? "TLS 1.3" : "TLS 1.2";
}

/* test_resume - a second connection with the first one's ticket skips the full handshake. */
static void test_resume(struct tap *t, struct tls_server *srv, struct tls_server *other,
			int version)
{
	struct round first = session_round(srv, version, NULL), again, elsewhere, noticket;

	TAP_OK(t, first.done && first.resumed == 0 && first.session != NULL &&
	       SSL_SESSION_is_resumable(first.session), "%s: first connection, full handshake, "
	       "resumable ticket", vname(version));
	again = session_round(srv, version, first.session);
	TAP_OK(t, again.done && again.resumed == 1, "%s: second connection resumes (%d)",
	       vname(version), again.resumed);
	elsewhere = session_round(other, version, first.session);
	TAP_OK(t, elsewhere.done && elsewhere.resumed == 0,
	       "%s: another tls_server's keys do not open the ticket", vname(version));
	if (version == TLS1_2_VERSION) {
		/* A client without tickets offers only the session id: no cache, no resumption. */
		struct round a = session_on(tls_conn_new(srv), version, SSL_OP_NO_TICKET, NULL);
		noticket = session_on(tls_conn_new(srv), version, SSL_OP_NO_TICKET, a.session);
		TAP_OK(t, a.done && noticket.done && noticket.resumed == 0,
		       "TLS 1.2 without tickets: the session id is not cached, full handshake");
		SSL_SESSION_free(a.session);
		SSL_SESSION_free(noticket.session);
	}
	TAP_OK(t, queue_clean(), "%s: error queue empty after resumption", vname(version));
	SSL_SESSION_free(first.session);
	SSL_SESSION_free(again.session);
	SSL_SESSION_free(elsewhere.session);
}

static int64_t fake_now(void *arg)
{
	return *(const int64_t *)arg;
}

/*
 * test_rotation - period 100 s on a clock the test moves: a ticket from
 * before one rotation resumes, one from two rotations ago does not, nor
 * one whose key is two periods old though nothing rotated it out.
 */
static void test_rotation(struct tap *t, const struct files *f, int version)
{
	struct tls_settings set = settings(f->cert1, f->key1);
	struct tls_server *srv;
	struct round a, b, c, r;
	int64_t now = 1000;
	char err[512] = "";

	srv = tls_server_new(&set, err, sizeof(err));
	if (srv == NULL) {
		TAP_OK(t, 0, "server for the rotation tests %s", err);
		return;
	}
	tls_tickets_set_clock(srv->tickets, 100, fake_now, &now);
	a = session_round(srv, version, NULL);		/* key A, born 1000 */
	now = 1150;
	b = session_round(srv, version, NULL);		/* rotates: key B, A previous */
	r = session_round(srv, version, a.session);
	TAP_OK(t, b.done && b.resumed == 0 && r.done && r.resumed == 1,
	       "%s: a ticket from before the rotation still resumes", vname(version));
	SSL_SESSION_free(r.session);
	now = 1300;
	c = session_round(srv, version, NULL);		/* rotates: key C, B previous, A gone */
	r = session_round(srv, version, a.session);
	TAP_OK(t, c.done && r.done && r.resumed == 0,
	       "%s: a ticket from two rotations ago: full handshake", vname(version));
	SSL_SESSION_free(r.session);
	r = session_round(srv, version, b.session);
	TAP_OK(t, r.done && r.resumed == 1, "%s: one rotation ago still resumes", vname(version));
	SSL_SESSION_free(r.session);
	now = 1500;					/* C is two periods old, still current */
	r = session_round(srv, version, c.session);
	TAP_OK(t, r.done && r.resumed == 0,
	       "%s: a key two periods old opens nothing, rotated or not", vname(version));
	SSL_SESSION_free(r.session);
	TAP_OK(t, queue_clean(), "%s: error queue empty after the rotation tests", vname(version));
	SSL_SESSION_free(a.session);
	SSL_SESSION_free(b.session);
	SSL_SESSION_free(c.session);
	tls_server_free(srv);
}

/*
 * test_resume_reload - tickets from before a reload resume after it (the
 * keys are the server's), and a handshake begun before the server is
 * freed still opens its ticket.
 */
static void test_resume_reload(struct tap *t, const struct files *f)
{
	struct tls_settings set1 = settings(f->cert1, f->key1), set2 = settings(f->cert2, f->key2);
	struct tls_server *srv = tls_server_new(&set1, NULL, 0);
	struct round v13, v12, r;
	struct tls_conn *pending;

	if (srv == NULL) {
		TAP_OK(t, 0, "server for the reload resumption tests");
		return;
	}
	v13 = session_round(srv, TLS1_3_VERSION, NULL);
	v12 = session_round(srv, TLS1_2_VERSION, NULL);
	TAP_OK(t, tls_server_reload(srv, &set2, NULL, 0) == 0, "reload with cert2");
	r = session_round(srv, TLS1_3_VERSION, v13.session);
	TAP_OK(t, r.done && r.resumed == 1, "TLS 1.3: a ticket from before the reload resumes");
	SSL_SESSION_free(r.session);
	r = session_round(srv, TLS1_2_VERSION, v12.session);
	TAP_OK(t, r.done && r.resumed == 1, "TLS 1.2: a ticket from before the reload resumes");
	SSL_SESSION_free(r.session);
	pending = tls_conn_new(srv);
	tls_server_free(srv);		/* the pending connection keeps the keys */
	r = session_on(pending, TLS1_3_VERSION, 0, v13.session);
	TAP_OK(t, r.done && r.resumed == 1, "a connection made before the server was freed resumes");
	SSL_SESSION_free(r.session);
	SSL_SESSION_free(v13.session);
	SSL_SESSION_free(v12.session);
}

int main(void)
{
	struct tap t = { 0 };
	struct files f;
	struct tls_settings set;
	struct tls_server *srv;
	char err[512] = "";

	memset(&f, 0, sizeof(f));
	if (make_files(&f) != 0) {
		TAP_OK(&t, 0, "made certificates with the openssl command");
		remove_files(&f);
		return tap_done(&t);
	}
	set = settings(f.cert1, f.key1);
	srv = tls_server_new(&set, err, sizeof(err));
	TAP_OK(&t, srv != NULL, "tls_server_new with default settings %s", err);
	if (srv != NULL) {
		struct tls_server *other = tls_server_new(&set, err, sizeof(err));

		if (other != NULL) {
			test_resume(&t, srv, other, TLS1_3_VERSION);
			test_resume(&t, srv, other, TLS1_2_VERSION);
		} else {
			TAP_OK(&t, 0, "a second tls_server %s", err);
		}
		tls_server_free(other);
		test_handshake(&t, srv);
		test_data(&t, srv);
		test_tls12(&t, srv);
		test_garbage(&t, srv);
		test_truncated(&t, srv);
		test_bytewise(&t, srv);
		test_reload(&t, &f, srv);	/* frees srv */
	}
	test_min13(&t, &f);
	test_config_errors(&t, &f);
	test_chain(&t, &f);
	test_rotation(&t, &f, TLS1_3_VERSION);
	test_rotation(&t, &f, TLS1_2_VERSION);
	test_resume_reload(&t, &f);
	remove_files(&f);
	return tap_done(&t);
}
