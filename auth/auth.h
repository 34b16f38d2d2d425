/*
 * auth.h - SMTP AUTH (RFC 4954) for mtad: Cyrus libsasl2 on the server
 * side, run off the event loop, plus the pure pieces the SMTP session
 * needs around it: base64, and the per-client-address failure limiter.
 *
 * Password checks (sasldb lookups, saslauthd round trips) run on libuv's
 * thread pool; results come back on the loop thread. The SASL options
 * come from mtad.conf through libsasl2's callbacks, never from a
 * system-wide file.
 */
#ifndef AUTH_AUTH_H
#define AUTH_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#define AUTH_LINE_MAX 12288	/* RFC 4954 §4: AUTH lines a server must accept */

struct auth_settings {
	const char *mechanisms;		/* "PLAIN LOGIN" */
	const char *pwcheck_method;	/* "auxprop" (sasldb) or "saslauthd" */
	const char *sasldb_path;	/* for auxprop */
	const char *saslauthd_path;	/* the saslauthd socket, for saslauthd */
	const char *service;		/* SASL service name, "smtp" */
	const char *hostname;		/* server FQDN */
	const char *realm;		/* user realm; "" = hostname */
};

struct auth_server;

/* Initialises libsasl2 (once per process) with these settings. */
struct auth_server *auth_server_new(const struct auth_settings *set, uv_loop_t *loop,
				    char *err, size_t errlen);
void auth_server_free(struct auth_server *srv);

/* The configured mechanism list for EHLO, "PLAIN LOGIN". */
const char *auth_server_mechanisms(const struct auth_server *srv);

/* True when mech (any case) is one of the configured mechanisms. */
bool auth_server_offers(const struct auth_server *srv, const char *mech);

/* One authentication exchange of one session. */
struct auth_exchange;

enum auth_result {
	AUTH_SUCCESS,	/* authenticated: user is set */
	AUTH_CONTINUE,	/* send a 334 with the challenge, wait for the response */
	AUTH_FAILURE,	/* bad credentials: 535 5.7.8 */
	AUTH_TEMPFAIL,	/* the password backend is down: 454 4.7.0 */
};

/*
 * Called on the loop thread when a step finished. challenge (raw bytes,
 * not base64) is set for AUTH_CONTINUE; user for AUTH_SUCCESS only (a
 * failed attempt's name is never handed out: it may be a password);
 * reason is a short text for logs, with the names typed left out.
 */
typedef void (*auth_done_cb)(void *arg, enum auth_result result,
			     const char *challenge, size_t challenge_len,
			     const char *user, const char *reason);

/*
 * auth_exchange_new - one session's exchange; its steps call back on
 * loop (the session's event loop: with several loops, one auth_server
 * serves them all, since libsasl2 is process-wide).
 */
struct auth_exchange *auth_exchange_new(struct auth_server *srv, uv_loop_t *loop,
					const char *client_ip);

/*
 * auth_exchange_start - begins mechanism mech with an optional initial
 * response (already base64-decoded; has_response false when none was
 * given, true with len 0 for "="). The work runs off the loop; cb is
 * called exactly once. Returns 0, or -1 when nothing was started.
 */
int auth_exchange_start(struct auth_exchange *ex, const char *mech,
			const char *response, size_t len, bool has_response,
			auth_done_cb cb, void *arg);

/* auth_exchange_step - the client's (decoded) answer to a 334. Same contract. */
int auth_exchange_step(struct auth_exchange *ex, const char *response, size_t len,
		       auth_done_cb cb, void *arg);

/* Frees the exchange; must not be called while a step is in flight. */
void auth_exchange_free(struct auth_exchange *ex);

/* ---- pure helpers (auth/base64.c, auth/limiter.c) ---- */

/*
 * auth_base64_decode - strict RFC 4648 base64 (padding required, no
 * whitespace). Returns 0 with the length in *outlen, or -1 for bad
 * input or when outsize is too small.
 */
int auth_base64_decode(const char *in, size_t len, char *out, size_t outsize, size_t *outlen);

/* auth_base64_encode - encodes len bytes; returns the length written (NUL-terminated), or 0 when outsize is too small. */
size_t auth_base64_encode(const char *in, size_t len, char *out, size_t outsize);

/*
 * The per-client failure limiter: after max_failures failures within
 * window seconds, a client is refused (454 4.7.0) until its failures age
 * out. A client is an IPv4 address or an IPv6 /64. Attempts in flight
 * count as failures until they end, so parallel connections cannot
 * overshoot the limit. Bounded: at most max_entries clients are tracked
 * (the least recently active are forgotten first, never one with an
 * attempt in flight). Never locks an account.
 */
struct auth_limiter;

#define AUTH_LIMITER_KEY_MAX 64

struct auth_limiter *auth_limiter_new(unsigned max_failures, unsigned window,
				      size_t max_entries);
void auth_limiter_free(struct auth_limiter *lim);

/*
 * auth_limiter_key - the client ip is counted as: "192.0.2.1",
 * "2001:db8:1:2::/64", "::ffff:192.0.2.1" as "192.0.2.1". Written into
 * buf (size at least AUTH_LIMITER_KEY_MAX) or ip itself; NULL when buf
 * is too small.
 */
const char *auth_limiter_key(const char *ip, char *buf, size_t size);

/* True when ip's failures within the window plus its attempts in flight reach max_failures. */
bool auth_limiter_blocked(struct auth_limiter *lim, const char *ip, int64_t now);

/*
 * auth_limiter_begin - an AUTH attempt from ip starts now: false when
 * blocked (then nothing is counted); true when admitted, and then it is
 * in flight until exactly one auth_limiter_end.
 */
bool auth_limiter_begin(struct auth_limiter *lim, const char *ip, int64_t now);

/* auth_limiter_end - an admitted attempt is over; failed: it was a failed password check. */
void auth_limiter_end(struct auth_limiter *lim, const char *ip, bool failed, int64_t now);

/* The attempts in flight for ip's client (/64 for IPv6). */
unsigned auth_limiter_inflight(const struct auth_limiter *lim, const char *ip);

/* auth_limiter_failure - one failure from ip at now, outside any attempt (tests). */
void auth_limiter_failure(struct auth_limiter *lim, const char *ip, int64_t now);

#endif
