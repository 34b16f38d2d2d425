/*
 * client.c - the client side TLS configuration, for delivery: one
 * SSL_CTX with TLS 1.2 as the minimum and the CA certificates that
 * verify peers (a file, or the system's default store).
 *
 * Must not: refuse a handshake because of the certificate (STARTTLS
 * "may" takes any; tls/conn.c records the verification result so the
 * SMTP client can insist when its route says "verify"), prompt for
 * anything, or leave anything in OpenSSL's error queue.
 *
 * Follows: RFC 3207, RFC 8446, RFC 5246, RFC 8996, RFC 9325; RFC 6125
 * (the name check, done per connection through SSL_set1_host).
 */
#include <stdio.h>
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls/tls.h"
#include "tls/tls_int.h"

/* client_fail - err = "<what>: <first OpenSSL error>"; clears the queue. */
static void client_fail(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_peek_error();
	char reason[256];

	if (e != 0)
		ERR_error_string_n(e, reason, sizeof(reason));
	else
		snprintf(reason, sizeof(reason), "failed (no OpenSSL reason)");
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s: %s", what, reason);
	ERR_clear_error();
}

/* client_ctx - versions, options and the trust store. */
static int client_ctx(SSL_CTX *ctx, const char *ca_file, char *err, size_t errlen)
{
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		client_fail(err, errlen, "TLS client minimum version");
		return -1;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	/* As on the server side: buffers go back while idle, and
	 * SSL_write_ex takes all or fails. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_clear_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
	/* Verification is recorded, never enforced here: see the header. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (ca_file != NULL && *ca_file != '\0') {
		if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
			char what[512];

			snprintf(what, sizeof(what), "tls_ca_file %s", ca_file);
			client_fail(err, errlen, what);
			return -1;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		client_fail(err, errlen, "the system's CA certificates");
		return -1;
	}
	return 0;
}

/* tls_client_new - the delivery side's context; NULL and err on failure. */
struct tls_client *tls_client_new(const char *ca_file, char *err, size_t errlen)
{
	struct tls_client *cli = malloc(sizeof(*cli));

	ERR_clear_error();
	if (cli == NULL || (cli->queues = tls_queue_method_new()) == NULL) {
		free(cli);
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "out of memory");
		return NULL;
	}
	cli->ctx = SSL_CTX_new(TLS_client_method());
	if (cli->ctx == NULL) {
		client_fail(err, errlen, "SSL_CTX_new");
		tls_queue_method_drop(cli->queues);
		free(cli);
		return NULL;
	}
	if (client_ctx(cli->ctx, ca_file, err, errlen) != 0) {
		SSL_CTX_free(cli->ctx);
		tls_queue_method_drop(cli->queues);
		free(cli);
		return NULL;
	}
	ERR_clear_error();
	return cli;
}

/* tls_client_free - drops the context; open connections keep their reference. */
void tls_client_free(struct tls_client *cli)
{
	if (cli == NULL)
		return;
	SSL_CTX_free(cli->ctx);
	tls_queue_method_drop(cli->queues);
	free(cli);
}
