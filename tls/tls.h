/*
 * tls.h - TLS for mtad's connections: OpenSSL 3 driven through memory
 * BIOs, so the transport (mtad/listen.c) moves the ciphertext over its
 * libuv stream and the SMTP session above only ever sees plaintext.
 *
 * Nothing here touches a socket or blocks: a tls_conn is a pure engine
 * fed with ciphertext and asked for plaintext, and the reverse.
 * RFC 3207 (STARTTLS), RFC 8314 (implicit TLS), RFC 8446/5246.
 */
#ifndef TLS_TLS_H
#define TLS_TLS_H

#include <stdbool.h>
#include <stddef.h>

struct tls_settings {
	const char *cert_file;		/* PEM certificate (may hold the chain too) */
	const char *key_file;		/* PEM private key */
	const char *chain_file;		/* PEM intermediates, or NULL/"" */
	const char *min_version;	/* "TLSv1.2" or "TLSv1.3" */
	const char *ciphers;		/* TLS 1.2 cipher list, "" = OpenSSL's default */
	const char *ciphersuites;	/* TLS 1.3 suites, "" = OpenSSL's default */
};

/* The server side configuration: certificate, key, versions, ciphers. */
struct tls_server;

/* Loads certificate and key (checked against each other). NULL + err on failure. */
struct tls_server *tls_server_new(const struct tls_settings *set, char *err, size_t errlen);

/*
 * tls_server_reload - loads the files again for new connections (SIGHUP);
 * connections already open keep what they started with. On failure the
 * old configuration stays and err says why.
 */
int tls_server_reload(struct tls_server *srv, const struct tls_settings *set,
		      char *err, size_t errlen);
void tls_server_free(struct tls_server *srv);

/*
 * The client side, for delivery: CA certificates from ca_file, or the
 * system's default store when NULL/"". Certificates are verified only
 * for connections that ask for it (per route).
 */
struct tls_client;
struct tls_client *tls_client_new(const char *ca_file, char *err, size_t errlen);
void tls_client_free(struct tls_client *cli);

/*
 * tls_conn_new_client - a client connection to host (SNI, and the name
 * checked when verify is true). Starts in the handshake: call
 * tls_conn_handshake and send its output.
 */
struct tls_conn *tls_conn_new_client(struct tls_client *cli, const char *host, bool verify);

/* After the handshake: did the peer's certificate verify for the host? */
bool tls_conn_verified(const struct tls_conn *c);

/*
 * tls_conn_verify_error - why it did not, for logs and DSNs
 * ("certificate has expired", "hostname mismatch", "no peer certificate").
 */
const char *tls_conn_verify_error(const struct tls_conn *c);

/* One connection's TLS state (server or client side). */
struct tls_conn;

enum tls_status {
	TLS_DONE,	/* the step finished (handshake complete, data read) */
	TLS_WANT_MORE,	/* needs more ciphertext from the peer */
	TLS_CLOSED,	/* the peer sent close_notify */
	TLS_FAILED,	/* protocol error; tls_conn_error() says why */
};

struct tls_conn *tls_conn_new(struct tls_server *srv);
void tls_conn_free(struct tls_conn *c);

/* Ciphertext that arrived from the peer. Returns 0, or -1 on out of memory. */
int tls_conn_feed(struct tls_conn *c, const char *data, size_t len);

/*
 * tls_conn_feed_eof - the transport saw the peer close its side: a
 * handshake or record cut short now fails ("unexpected eof while
 * reading") instead of waiting for bytes that will never come.
 */
void tls_conn_feed_eof(struct tls_conn *c);

/* Ciphertext fed but not yet consumed (for backpressure on reads). */
size_t tls_conn_input_pending(const struct tls_conn *c);

/* Advances the handshake with what was fed; output may be pending afterwards. */
enum tls_status tls_conn_handshake(struct tls_conn *c);

/*
 * tls_conn_read - plaintext decrypted from what was fed: up to len bytes
 * into buf, count in *n (TLS_DONE with *n > 0, or TLS_WANT_MORE).
 */
enum tls_status tls_conn_read(struct tls_conn *c, char *buf, size_t len, size_t *n);

/* Encrypts plaintext for the peer (all of it; it waits in the output). 0 or -1. */
int tls_conn_write(struct tls_conn *c, const char *data, size_t len);

/* Ciphertext waiting to be sent to the peer. */
size_t tls_conn_output_pending(const struct tls_conn *c);

/* Moves up to len bytes of waiting ciphertext into buf; returns the count. */
size_t tls_conn_output(struct tls_conn *c, char *buf, size_t len);

/* Queues a close_notify alert (then send the output). */
void tls_conn_shutdown(struct tls_conn *c);

/* After the handshake: "TLSv1.3", "TLS_AES_256_GCM_SHA384", secret bits. */
const char *tls_conn_version(const struct tls_conn *c);
const char *tls_conn_cipher(const struct tls_conn *c);
int tls_conn_bits(const struct tls_conn *c);

/* Why the last step failed, for the log ("wrong version number", ...). */
const char *tls_conn_error(const struct tls_conn *c);

#endif
