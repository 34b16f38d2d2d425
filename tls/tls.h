/*
 * tls.h - TLS for mtad's connections: OpenSSL 3 driven through memory
 * BIOs, so the transport (mtad/listen.c) moves the ciphertext over its
 * libuv stream and the SMTP session above only ever sees plaintext.
 *
 * Nothing here blocks. A tls_conn is a pure engine fed with ciphertext
 * and asked for plaintext, and the reverse; it touches no socket. The
 * pump (tls/pump.c, at the end) is the one piece that does: it moves a
 * connection's bytes between its libuv stream and its tls_conn, for
 * both the server's transport (mtad/listen.c) and the SMTP client
 * (deliver/client.c).
 * RFC 3207 (STARTTLS), RFC 8314 (implicit TLS), RFC 8446/5246.
 */
#ifndef TLS_TLS_H
#define TLS_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

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

/*
 * Loads certificate and key (checked against each other). NULL + err on
 * failure. Resumption is by session tickets only (TLS 1.3 and 1.2, no
 * session cache), under keys the server makes in memory and rotates
 * every 12 hours; a ticket resumes for up to two rotation periods
 * (clients are told 2 hours, OpenSSL's session lifetime), across
 * reloads too.
 */
struct tls_server *tls_server_new(const struct tls_settings *set, char *err, size_t errlen);

/*
 * tls_server_reload - loads the files again for new connections (SIGHUP);
 * connections already open keep what they started with, and the ticket
 * keys stay, so clients keep resuming. On failure the old configuration
 * stays and err says why.
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

/* After the handshake: true when a ticket resumed a session (no full handshake). */
bool tls_conn_resumed(const struct tls_conn *c);

/* Why the last step failed, for the log ("wrong version number", ...). */
const char *tls_conn_error(const struct tls_conn *c);

/*
 * ---- the pump (tls/pump.c) ----
 *
 * What a transport does with a tls_conn, written once: writes to its
 * libuv stream with a counted backlog (plaintext before TLS starts,
 * ciphertext after), the engine's output flushed to the socket after
 * each step, ciphertext from the socket fed in, the handshake driven,
 * then plaintext read into the owner's buffer for as long as the owner
 * takes it (pull: inbuf says how much room there is now, 0 = not now;
 * tls_pump_read starts again when the owner resumes). The owner keeps
 * its uv_tcp_t, reads (alloc and read callbacks: the ciphertext buffer
 * is its choice), timers and closing; it embeds a struct tls_pump and
 * reads tls and handshaking, never writes them.
 *
 * Callbacks run only from inside tls_pump_* calls and the stream's
 * write callbacks; the owner must not free the pump from inside one
 * (closing the stream, which frees later, is fine).
 */
enum tls_pump_failure {
	TLS_PUMP_NOMEM,		/* ciphertext could not be fed to the engine */
	TLS_PUMP_HANDSHAKE,	/* the handshake failed; why NULL: the peer closed */
	TLS_PUMP_READ,		/* after it: an error, or why NULL: close_notify */
	TLS_PUMP_SEND,		/* the engine's output could not be queued for the socket */
};

struct tls_pump_ops {
	/* Where plaintext goes now: *len bytes of room at *buf, 0 = not now. */
	void (*inbuf)(void *ctx, char **buf, size_t *len);
	/* n bytes were put there. */
	void (*received)(void *ctx, size_t n);
	void (*handshake_done)(void *ctx);
	/* The TLS side failed; nothing more is read until the owner acts. */
	void (*failed)(void *ctx, enum tls_pump_failure what, const char *why);
	/* A queued write finished (status < 0: a libuv error). May be NULL. */
	void (*written)(void *ctx, int status);
	/* The backlog went over backlog_max (true), or back under half of it. May be NULL. */
	void (*backlog)(void *ctx, bool over);
};

struct tls_pump {
	uv_stream_t *stream;
	const struct tls_pump_ops *ops;
	void *ctx;
	struct tls_conn *tls;		/* NULL until TLS starts; freed by tls_pump_free */
	bool handshaking;
	bool try_write;			/* write at once when nothing is queued */
	bool over;			/* backlog() said true last */
	bool pumping, pump_again;	/* tls_pump_read re-entered: loop instead */
	size_t backlog_max;		/* 0 = no limit */
	size_t backlog;			/* bytes queued on the stream, not yet written */
	size_t writes_pending;		/* queued writes not yet called back */
};

/*
 * tls_pump_init - a pump over stream, plaintext for now. try_write:
 * bytes go out with uv_try_write when nothing waits (else every write
 * is queued and called back). backlog_max: 0, or the queued bytes
 * above which ops->backlog(ctx, true) is called.
 */
void tls_pump_init(struct tls_pump *p, uv_stream_t *stream, const struct tls_pump_ops *ops,
		   void *ctx, bool try_write, size_t backlog_max);

/*
 * tls_pump_send - bytes for the peer: encrypted once TLS is on, then
 * written or queued. 0, or a libuv error: UV_ENOMEM, uv_write's error,
 * or UV_EPROTO when the engine refused them (the engine's output, an
 * alert perhaps, is flushed all the same).
 */
int tls_pump_send(struct tls_pump *p, const char *data, size_t len);

/*
 * tls_pump_start - TLS begins with tls (the pump owns it from now).
 * hello: the client side, whose ClientHello goes out now. 0, or -1 when
 * the handshake failed at once or its output could not be queued.
 */
int tls_pump_start(struct tls_pump *p, struct tls_conn *tls, bool hello);

/*
 * tls_pump_input - n bytes of ciphertext from the stream: fed, the
 * handshake advanced (handshake_done when it completes), then plaintext
 * for the owner (tls_pump_read).
 */
void tls_pump_input(struct tls_pump *p, const char *data, size_t n);

/*
 * tls_pump_read - plaintext the engine holds, into the owner's buffer
 * while inbuf gives room (the engine may hold some that arrived while
 * the owner was paused: call this when it resumes). Does nothing before
 * TLS or during the handshake; re-entered from a callback, it loops.
 */
void tls_pump_read(struct tls_pump *p);

/*
 * tls_pump_shutdown - close_notify, when TLS is up (best effort, never
 * waited for: RFC 8446 §6.1). now: the stream is closed right after,
 * so only what the socket takes at once is written; else it is queued
 * like any output.
 */
void tls_pump_shutdown(struct tls_pump *p, bool now);

/* tls_pump_free - the tls_conn (after the stream is closed). */
void tls_pump_free(struct tls_pump *p);

#endif
