/*
 * server.c - the server side TLS configuration: one SSL_CTX built from
 * struct tls_settings (certificate, chain, key, minimum version,
 * ciphers), and its replacement on reload (SIGHUP). The session ticket
 * keys (tickets.c) belong to the server and serve every context it
 * builds, so tickets handed out before a reload still resume after it.
 *
 * Must not: hand out a half-built context (a failed reload keeps the
 * old one), prompt for a key passphrase (a daemon has no terminal),
 * leave anything in OpenSSL's error queue, or read files anywhere but
 * in tls_server_new and tls_server_reload.
 *
 * Follows: RFC 8446 (TLS 1.3), RFC 5246 (TLS 1.2), RFC 8996 (no TLS 1.0
 * or 1.1), RFC 9325 (no compression, no renegotiation; resumption through
 * rotated ticket keys only, §3.4).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "tls/tls.h"
#include "tls/tls_int.h"

/* unset - a setting left NULL or "". */
static int unset(const char *s)
{
	return s == NULL || *s == '\0';
}

/*
 * fail - err = "<what>: <first queued OpenSSL error>", then clears the
 * queue. The first error is the root cause (fopen's errno, a PEM
 * parse); later ones only say which call gave up. Returns -1.
 */
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	char what[512], reason[256];
	unsigned long e = ERR_peek_error();
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (e != 0)
		ERR_error_string_n(e, reason, sizeof(reason));
	else
		snprintf(reason, sizeof(reason), "failed (no OpenSSL reason)");
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s: %s", what, reason);
	ERR_clear_error();
	return -1;
}

/* say - err = a message of ours, for problems OpenSSL did not see. Returns -1. */
static int say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* no_passphrase - keys must be unencrypted: nobody is there to type one. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* ctx_protocol - minimum version, options and modes. */
static int ctx_protocol(SSL_CTX *ctx, const struct tls_settings *set,
			char *err, size_t errlen)
{
	int version;

	if (unset(set->min_version) || strcmp(set->min_version, "TLSv1.2") == 0)
		version = TLS1_2_VERSION;
	else if (strcmp(set->min_version, "TLSv1.3") == 0)
		version = TLS1_3_VERSION;
	else
		return say(err, errlen, "min_version \"%s\": must be TLSv1.2 or TLSv1.3",
			   set->min_version);
	if (SSL_CTX_set_min_proto_version(ctx, version) != 1)
		return fail(err, errlen, "min_version %s", set->min_version);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
			    SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Idle connections give their record buffers back: there will be
	 * thousands. Partial writes stay off, so SSL_write_ex either takes
	 * everything or fails (the memory BIO never pushes back). */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_clear_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
	if (tls_tickets_setup(ctx) != 0)
		return fail(err, errlen, "session tickets");
	return 0;
}

/* ctx_ciphers - the TLS 1.2 list and TLS 1.3 suites, when configured. */
static int ctx_ciphers(SSL_CTX *ctx, const struct tls_settings *set,
		       char *err, size_t errlen)
{
	/* Both calls skip names they do not know and fail only when nothing
	 * usable is left, so "no cipher match" means the whole list. */
	if (!unset(set->ciphers) && SSL_CTX_set_cipher_list(ctx, set->ciphers) != 1)
		return fail(err, errlen, "ciphers \"%s\"", set->ciphers);
	if (!unset(set->ciphersuites) && SSL_CTX_set_ciphersuites(ctx, set->ciphersuites) != 1)
		return fail(err, errlen, "ciphersuites \"%s\"", set->ciphersuites);
	return 0;
}

/*
 * ctx_chain - appends the intermediates in file to the certificate's own
 * chain. Not SSL_CTX_add_extra_chain_cert: OpenSSL ignores the extra
 * certificates as soon as the cert_file itself held a chain.
 */
static int ctx_chain(SSL_CTX *ctx, const char *file, char *err, size_t errlen)
{
	BIO *in = BIO_new_file(file, "r");
	unsigned long last;
	X509 *x;
	int n = 0;

	if (in == NULL)
		return fail(err, errlen, "chain_file %s", file);
	while ((x = PEM_read_bio_X509(in, NULL, no_passphrase, NULL)) != NULL) {
		if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
			X509_free(x);
			BIO_free(in);
			return fail(err, errlen, "chain_file %s", file);
		}
		n++;
	}
	BIO_free(in);
	/* A clean end of file reads as "no start line"; anything else is
	 * a damaged certificate, and a file with none is a mistake. */
	last = ERR_peek_last_error();
	if (n == 0 || ERR_GET_LIB(last) != ERR_LIB_PEM ||
	    ERR_GET_REASON(last) != PEM_R_NO_START_LINE)
		return fail(err, errlen, "chain_file %s", file);
	ERR_clear_error();
	return 0;
}

/* ctx_keys - certificate (with chain), extra chain, key, and their match. */
static int ctx_keys(SSL_CTX *ctx, const struct tls_settings *set,
		    char *err, size_t errlen)
{
	if (unset(set->cert_file))
		return say(err, errlen, "cert_file: not set");
	if (unset(set->key_file))
		return say(err, errlen, "key_file: not set");
	if (SSL_CTX_use_certificate_chain_file(ctx, set->cert_file) != 1)
		return fail(err, errlen, "cert_file %s", set->cert_file);
	if (!unset(set->chain_file) && ctx_chain(ctx, set->chain_file, err, errlen) != 0)
		return -1;
	if (SSL_CTX_use_PrivateKey_file(ctx, set->key_file, SSL_FILETYPE_PEM) != 1)
		return fail(err, errlen, "key_file %s (for cert_file %s)",
			    set->key_file, set->cert_file);
	/* Catches a key of another type than the certificate, which
	 * SSL_CTX_use_PrivateKey_file accepts into a slot of its own. */
	if (SSL_CTX_check_private_key(ctx) != 1)
		return fail(err, errlen, "key_file %s does not match cert_file %s",
			    set->key_file, set->cert_file);
	return 0;
}

/* ctx_build - a complete SSL_CTX from the settings, or NULL and err. */
static SSL_CTX *ctx_build(const struct tls_settings *set, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	/* Whatever another part of the process left queued must not be
	 * reported as the reason our files failed. */
	ERR_clear_error();
	if (set == NULL) {
		say(err, errlen, "no TLS settings");
		return NULL;
	}
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		fail(err, errlen, "SSL_CTX_new");
		return NULL;
	}
	if (ctx_protocol(ctx, set, err, errlen) != 0 ||
	    ctx_ciphers(ctx, set, err, errlen) != 0 ||
	    ctx_keys(ctx, set, err, errlen) != 0) {
		SSL_CTX_free(ctx);
		ERR_clear_error();
		return NULL;
	}
	ERR_clear_error();
	return ctx;
}

/* tls_server_new - loads certificate and key; NULL and err on failure. */
struct tls_server *tls_server_new(const struct tls_settings *set, char *err, size_t errlen)
{
	struct tls_server *srv = calloc(1, sizeof(*srv));

	if (srv == NULL || (srv->queues = tls_queue_method_new()) == NULL ||
	    (srv->tickets = tls_tickets_new()) == NULL) {
		say(err, errlen, "out of memory");
		tls_server_free(srv);
		return NULL;
	}
	srv->ctx = ctx_build(set, err, errlen);
	if (srv->ctx == NULL) {
		tls_server_free(srv);
		return NULL;
	}
	return srv;
}

/*
 * tls_server_reload - a new context for connections made from now on.
 * Connections already open hold a reference to the old SSL_CTX (SSL_new
 * takes one, SSL_free drops it), so freeing it here only drops ours;
 * the last connection using it frees it. The ticket keys stay: they
 * are the server's, not the context's. On failure nothing changes.
 */
int tls_server_reload(struct tls_server *srv, const struct tls_settings *set,
		      char *err, size_t errlen)
{
	SSL_CTX *ctx = ctx_build(set, err, errlen);

	if (ctx == NULL)
		return -1;
	SSL_CTX_free(srv->ctx);
	srv->ctx = ctx;
	return 0;
}

/* tls_server_free - drops the configuration; open connections keep theirs. */
void tls_server_free(struct tls_server *srv)
{
	if (srv == NULL)
		return;
	SSL_CTX_free(srv->ctx);
	tls_queue_method_drop(srv->queues);
	tls_tickets_drop(srv->tickets);
	free(srv);
}
