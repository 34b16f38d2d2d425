/*
 * deliver.h - the delivery wing: mail leaves mtad here. The queue runner
 * (deliver.c) picks what is due, finds where it goes (routes, relayhost,
 * MX through util/'s DNS: mx.c), talks SMTP to the next hop, or LMTP
 * to a mailbox server (group.c, client*.c, with STARTTLS through tls/), and records the outcome in the
 * queue (outcome.c), writing bounces (dsn.c) when mail cannot be
 * delivered. The runner's files share deliver_int.h, the client's
 * client_int.h; only this header is public.
 *
 * The route parser, the reply parser, the dot-stuffer and the DSN
 * builder are pure functions (no I/O), unit-tested and fuzzed. Nothing
 * here knows the server session (smtp/): mail arrives through the queue.
 */
#ifndef DELIVER_DELIVER_H
#define DELIVER_DELIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "queue/queue.h"
#include "util/util.h"

/* ---- outbound: routes (deliver/route.c), DSNs (deliver/dsn.c), client (deliver/client.c) ---- */

enum smtp_tls_policy { SMTP_TLS_NONE, SMTP_TLS_MAY, SMTP_TLS_VERIFY };

/*
 * A route: mail for domain (and its subdomains when the config says
 * ".domain") goes to host: "[host]:port" means that host, no MX lookup;
 * "host" or "host:port" means MX lookup of host. Written in mtad.conf as
 *   route = campus.test [mailhub.campus.test]:25
 *   route = .campus.test [10.1.2.3]:2525 tls=verify
 *   relayhost = [smarthost.example]:587
 */
#define SMTP_ROUTE_PATH_MAX 108	/* sun_path, with its NUL */
#define LMTP_PORT 24		/* RFC 2033 §5: LMTP must not use 25 */

struct smtp_route {
	char domain[256];	/* "" for relayhost */
	bool subdomains;	/* ".campus.test": the domain and everything under it */
	char host[256];
	int port;		/* 25 unless given */
	bool mx;		/* look up MX of host (no brackets) */
	enum smtp_tls_policy tls;
	bool tls_given;		/* tls= was written; else tls is MAY and smtp_tls may apply */
	bool lmtp;		/* "lmtp:...": LHLO, one reply per recipient after the data */
	char path[SMTP_ROUTE_PATH_MAX];	/* "lmtp:unix:/path": that socket (host is "") */
};

/*
 * smtp_route_parse - "DOMAIN NEXTHOP [tls=none|may|verify]" (relayhost:
 * "NEXTHOP [tls=...]"), fields separated by blanks. DOMAIN is a host
 * name or ".name"; one trailing dot is dropped, letters are lower-cased.
 * NEXTHOP is one of
 *   [host] [host]:port          that host, no MX lookup
 *   [192.0.2.1] [192.0.2.1]:port
 *   [2001:db8::1] [2001:db8::1]:port   (no "IPv6:" prefix)
 *   host host:port              MX lookup of host
 *   lmtp:[host] lmtp:[host]:port    LMTP (RFC 2033) to that host, port 24
 *                                    unless given (routes only, no MX)
 *   lmtp:unix:/path             LMTP over that Unix socket (an absolute
 *                               path, shorter than sun_path; no tls=)
 * host stores the name (lower case) or the address, without brackets;
 * port is 25 unless given. A relayhost cannot be LMTP: LMTP is for the
 * final hop to the mailbox servers (RFC 2033 §1), not for mail that
 * leaves for the world. Returns 0, or -1 with err set to
 * "bad route \"VALUE\": what is wrong" ("bad relayhost ..."). An empty
 * relayhost is an error too: "no relayhost" is the caller's "".
 */
int smtp_route_parse(const char *value, bool relayhost, struct smtp_route *out,
		     char *err, size_t errlen);

/*
 * deliver_config_route - the configuration's hook for route and
 * relayhost lines (struct mtad_config_checks): smtp_route_parse without
 * the result. 0, or -1 with err.
 */
int deliver_config_route(const char *value, bool relayhost, char *err, size_t errlen);

/*
 * smtp_route_lookup - where mail for domain goes: the most specific
 * route, else relayhost (when set), else NULL (MX lookup of the domain).
 * A route for exactly the domain wins over ".parent" routes; of those
 * the longest matching parent wins; among equals, the first. Case and
 * one trailing dot of domain are ignored. A relayhost with host "" is
 * taken as not set.
 */
const struct smtp_route *smtp_route_lookup(const struct smtp_route *routes, size_t n,
					   const struct smtp_route *relayhost,
					   const char *domain);

/* One recipient in a DSN. */
struct smtp_dsn_rcpt {
	const char *addr;
	const char *action;		/* "failed", "delayed", "delivered", "relayed" */
	const char *status;		/* "5.1.1" */
	const char *remote_mta;		/* "mx.example.org", or NULL */
	const char *diagnostic;		/* "550 5.1.1 no such user", or NULL */
	const char *orig_addr;		/* Original-Recipient (ORCPT), or NULL: none written */
	const char *orig_type;		/* its address type (ORCPT's), NULL: "rfc822" */
};

struct smtp_dsn_info {
	const char *hostname;		/* the reporting MTA */
	const char *orig_qid;
	const char *orig_sender;	/* where the DSN goes */
	int64_t orig_arrival;
	int64_t now;
	const struct smtp_dsn_rcpt *rcpt;
	size_t nrcpt;
	const char *headers;		/* the original message's header section */
	size_t headers_len;
	const char *envid;		/* Original-Envelope-Id (DSN's ENVID), or NULL */
	/* The whole original message (RET=FULL, within the size cap) as
	 * message/rfc822 instead of its headers; NULL: the headers only. */
	const char *message;
	size_t message_len;
};

/*
 * smtp_dsn_build - an RFC 3464 delivery status notification
 * (multipart/report; message/delivery-status; the original headers as
 * text/rfc822-headers), from MAILER-DAEMON@hostname, CRLF line ends.
 * Subject (Postfix's): "Undelivered Mail Returned to Sender" when a
 * recipient failed, else "Delayed Mail (still being retried)" when one
 * is delayed, else "Successful Mail Delivery Report" (delivered,
 * relayed). Original-Envelope-Id when envid is set (RFC 3464 §2.2.1);
 * the original message as message/rfc822 when message is set, else its
 * headers as text/rfc822-headers.
 * A NULL action is "failed"; a NULL status is 5.0.0 (4.0.0 delayed).
 * Control characters in the fields become spaces or '?'; long fields
 * are folded, so no line exceeds 998 octets. At most 64 KB of the
 * original headers are included, cut at a line end.
 * Returns a malloc'd, NUL-terminated message and its length, or NULL
 * (out of memory, or orig_sender is "": no DSN about a DSN).
 */
char *smtp_dsn_build(const struct smtp_dsn_info *info, size_t *len);

/*
 * smtp_dsn_headers - the original header section as every reader sees
 * the message: the envelope's header_prefix (queue.h: the DKIM-Signature
 * fields, or a milter's whole header section with its empty line) and
 * then the stored bytes of chunk 0, joined, cut after the last CRLF
 * before the empty line wherever it falls (in the prefix, between the
 * two, or in the stored bytes). Bounded: no more than smtp_dsn_build
 * can quote (64 KB and a byte) is copied. prefix may be NULL. Pure;
 * returns a malloc'd copy of *hlen bytes (for smtp_dsn_info.headers),
 * or NULL when out of memory.
 */
char *smtp_dsn_headers(const char *prefix, const void *data, size_t len, size_t *hlen);

/* The SMTP client: one connection to one peer, several messages over it. */
struct smtp_client;
struct tls_client;

struct smtp_client_options {
	const char *helo_name;		/* our name in EHLO */
	const char *peer_name;		/* for logs, SNI and certificate checks */
	enum smtp_tls_policy tls;
	struct tls_client *tls_client;	/* NULL: no STARTTLS */
	unsigned timeout;		/* seconds per step */
	bool lmtp;			/* speak LMTP (RFC 2033) instead of SMTP */
	bool chunking;			/* BDAT when the peer offers CHUNKING (smtp_use_chunking) */
};

/* The outcome of one recipient, or of the whole message. */
struct smtp_client_reply {
	int code;			/* 250, 450, 550 ...; 0 when the connection failed */
	char enhanced[16];		/* "5.1.1", or derived from the code */
	char text[512];			/* the peer's text, or what went wrong */
	uint64_t size;			/* EHLO replies: the peer's SIZE limit, 0 = none */
};

typedef void (*smtp_client_ready_cb)(void *arg, const struct smtp_client_reply *reply);

/*
 * smtp_client_connect - connects to addr (port set), reads the greeting,
 * EHLO (HELO when EHLO is refused), STARTTLS when offered and the policy
 * allows (required for SMTP_TLS_VERIFY, with the certificate checked),
 * then cb with 2xx, or with the failure (the client is then unusable:
 * smtp_client_close it).
 *
 * cb runs once, never from inside this call. Failures: the peer's own
 * reply when it refused the greeting, EHLO/HELO; code 0 with 4.4.1
 * (connect failed), 4.4.2 (timeout, lost connection, malformed reply),
 * 4.7.0 (TLS handshake failed); 450 4.7.5 "TLS required but ..." when
 * the policy is SMTP_TLS_VERIFY and STARTTLS is missing, refused or the
 * certificate does not verify. Returns NULL (no callback) when the
 * connect cannot even start. opt is copied.
 */
struct smtp_client *smtp_client_connect(uv_loop_t *loop, const struct sockaddr *addr,
					const struct smtp_client_options *opt,
					smtp_client_ready_cb cb, void *arg);

/*
 * smtp_client_connect_unix - the same over the Unix socket at path (an
 * absolute path shorter than SMTP_ROUTE_PATH_MAX), for LMTP: no
 * STARTTLS (opt->tls and tls_client are ignored); the peer is named by
 * its path in texts. A missing socket or a refused connect is a cb with
 * code 0 and 4.4.1. NULL (no callback) when path is unusable or the
 * connect cannot even start.
 *
 * With opt->lmtp (either connect): LHLO instead of EHLO and no HELO
 * fallback; a 5xx to the greeting or LHLO comes to cb as 451 4.3.5
 * (smtp_client_lmtp_deferral); after the end of data each recipient
 * the peer accepted gets its own reply, in RCPT order (RFC 2033 §4.2).
 */
struct smtp_client *smtp_client_connect_unix(uv_loop_t *loop, const char *path,
					     const struct smtp_client_options *opt,
					     smtp_client_ready_cb cb, void *arg);

/*
 * smtp_client_lmtp_deferral - an LMTP server's 5xx to its greeting or
 * LHLO (step: "the greeting", "LHLO") means the server is misconfigured,
 * not that the mail is bad: r becomes 451 4.3.5 "LMTP server PEER
 * refused STEP: CODE ENHANCED TEXT" (parts cut to fit). Other codes are
 * left alone. Pure.
 */
void smtp_client_lmtp_deferral(struct smtp_client_reply *r, const char *peer, const char *step);

/*
 * Body chunks come from the caller (the queue), asynchronously: read is
 * called for index 0, 1, ... one at a time, the next only once the last
 * chunk is written to the socket. done must be called exactly once per
 * read (from inside read too), with data valid only during the call,
 * last true on the final chunk; status != 0 means the message cannot be
 * read (451 4.3.0, the connection is dropped: half a message must not
 * be delivered). done must still be called after smtp_client_close;
 * the client is freed then. No timeout of the client runs while a read
 * is out (the reader bounds it: the runner calls done with an error
 * after smtp_queue_read_timeout), and the sent callback never runs
 * during one.
 */
typedef void (*smtp_client_chunk_done)(struct smtp_client *c, int status,
				       const void *data, size_t len, bool last);
typedef void (*smtp_client_read_fn)(void *arg, uint32_t index, struct smtp_client *c,
				    smtp_client_chunk_done done);

struct smtp_client_message {
	const char *sender;
	const char *const *rcpt;
	size_t nrcpt;
	uint64_t size;			/* for SIZE= */
	smtp_client_read_fn read;	/* body chunks, CRLF text, not dot-stuffed */
	void *read_arg;
	/*
	 * A recipient probe (deliver/verify.c): MAIL and RCPT, then RSET
	 * where DATA would go; each result is its RCPT reply (2xx: the peer
	 * would take it), read is not used and may be NULL.
	 */
	bool envelope_only;
	/*
	 * RFC 6531: the client said SMTPUTF8. To a peer that offers it,
	 * MAIL carries SMTPUTF8; to one that does not, every recipient
	 * fails here with 554 5.6.7 (§3.2: no downgrade), Postfix's text.
	 */
	bool smtputf8;
	/* RFC 6152: the client said BODY=8BITMIME; sent on when offered. */
	bool body_8bitmime;
	/*
	 * DSN (RFC 3461), sent only when the peer offers DSN: RET= (a
	 * QUEUE_RET_* value, 0 none) and ENVID= (decoded; NULL none) on
	 * MAIL; per recipient, NOTIFY= (QUEUE_NOTIFY_* bits, 0 none) and
	 * ORCPT=, as given (dsn_orcpt[i]: "type;xtext") or else made from
	 * an alias's original address (orig_rcpt[i], plain). Each array may
	 * be NULL, each entry 0 or NULL.
	 */
	uint32_t dsn_ret;
	const char *dsn_envid;
	const uint32_t *dsn_notify;
	const char *const *dsn_orcpt;
	const char *const *orig_rcpt;
};

/*
 * smtp_client_offers_dsn - did the peer's last EHLO (LHLO) offer DSN?
 * After a sent callback: whether it took over the success notices of
 * the recipients it accepted (RFC 3461 §5.2.2).
 */
bool smtp_client_offers_dsn(const struct smtp_client *c);


/*
 * Called once per message: results[i] for rcpt[i] (2xx sent, 4xx
 * deferred, 5xx failed), and data for the message as a whole (the reply
 * to the end of DATA, or why it never got there). ok is false when the
 * connection is no longer usable.
 *
 * A recipient's result is its RCPT reply when refused, else the reply
 * to the end of data (LMTP: its own reply to it), or to DATA when that
 * failed. When MAIL is
 * refused everyone gets its reply. Decided here, without the peer:
 * 552 5.3.4 "message size exceeds the peer's limit" (SIZE), 553 5.1.7
 * (a sender, or 553 5.1.3 a recipient, with spaces, controls or < >).
 * Code 0 (temporary) when the connection failed first; the text says
 * so: "lost connection with HOST[IP] while sending RCPT TO",
 * "conversation with HOST[IP] timed out while sending message body".
 * data is the reply that ended the transaction: end of data, DATA,
 * MAIL, or the last RCPT when nobody was accepted. results and data
 * are valid during the call only.
 */
typedef void (*smtp_client_sent_cb)(void *arg, bool ok, const struct smtp_client_reply *results,
				    const struct smtp_client_reply *data);

/*
 * Sends one message (PIPELINING when offered; SIZE honoured). Only
 * after a 2xx ready callback or an ok sent callback (may be called from
 * inside either). Returns -1, and cb never runs, when the client is not
 * ready (busy, failed, closed, or the peer left while it was idle) or
 * nrcpt is 0. msg is copied; its strings and rcpt array must last until
 * cb.
 */
int smtp_client_send(struct smtp_client *c, const struct smtp_client_message *msg,
		     smtp_client_sent_cb cb, void *arg);

/*
 * QUIT politely (when usable: idle, or setup refused by a reply; the
 * 221 is waited for at most 2 seconds) and free; no callback follows.
 * May be called from inside any callback.
 */
void smtp_client_close(struct smtp_client *c);

/* What the peer offered, for logs: "TLSv1.3 ..." or "" */
const char *smtp_client_tls_info(const struct smtp_client *c);

/*
 * smtp_client_parse_reply - one complete reply (possibly multi-line)
 * at the start of buf: returns its length, 0 when more bytes are needed,
 * -1 when it is malformed. Pure, for the client and for fuzzing.
 *
 * Lines end in CRLF or a bare LF. Every line has the same code, 200 to
 * 599, then ' ' (last line), '-' (more follow) or the end of the line.
 * More than SMTP_CLIENT_REPLY_LINES lines, or SMTP_CLIENT_REPLY_MAX
 * bytes without the end of the reply, is malformed. out->enhanced is
 * the first line's enhanced code when it has one of the code's class
 * ("550 5.1.1 ..."), else derived ("5.0.0"). out->text joins the text of
 * every line, enhanced codes removed, with "; ", control characters as
 * '?', each line cut at 512 bytes and the whole at 511 characters.
 * When ext_flags is not NULL it gets the SMTP_EXT_* keywords found as
 * the first word of the second and later lines (an EHLO reply; the
 * first line is the peer's name), and out->size the SIZE value.
 */
int smtp_client_parse_reply(const char *buf, size_t len, struct smtp_client_reply *out,
			    unsigned *ext_flags);

#define SMTP_EXT_PIPELINING 0x01
#define SMTP_EXT_STARTTLS 0x02
#define SMTP_EXT_SIZE 0x04
#define SMTP_EXT_8BITMIME 0x08
#define SMTP_EXT_ENHANCED 0x10
#define SMTP_EXT_SMTPUTF8 0x400

/*
 * 8-bit MIME made 7-bit for a next hop without 8BITMIME, as Postfix does
 * (deliver/mime_downgrade.c, pure, streaming): 8bit/binary (or
 * unlabelled) leaf parts become quoted-printable, multipart and
 * message/rfc822 headers say 7bit; a message without MIME-Version goes
 * as it is. Fed the body in chunks split anywhere; each call returns
 * what can go out so far in a malloc'd *out (NULL, 0 when nothing) that
 * the caller frees; -1 when memory ran out. finish flushes the rest.
 * converted: some part was re-encoded.
 */
#define MD_FIELD_MAX 2048	/* a longer header field goes out uninterpreted */
#define MD_DEPTH 16		/* nested multiparts followed; deeper ones go as they are */
#define MD_BOUNDARY_MAX 70	/* RFC 2046 §5.1.1 */

struct smtp_mime_downgrade {
	int mode, body, ctype, cte;
	bool top, mime, converted, ctype_seen, digest, cte_held, field_skip;
	bool line_start, hdr_cr, holding, pending_nested, qp_cr, qp_binary;
	char qp_ws;
	unsigned col;
	size_t nested, nbnd, boundary_len, cte_len, field_len, hold_len;
	char boundary[MD_BOUNDARY_MAX];
	struct {
		char b[MD_BOUNDARY_MAX];
		size_t len;
		bool digest;
	} bnd[MD_DEPTH];
	char cte_field[256];
	char field[MD_FIELD_MAX];
	/* A line start that may be a delimiter: "--", the boundary, "--", up to
	 * 256 octets of transport padding (more, and it is taken as text). */
	char hold[2 + MD_BOUNDARY_MAX + 2 + 256 + 2];
};

void smtp_mime_downgrade_init(struct smtp_mime_downgrade *md);
int smtp_mime_downgrade_feed(struct smtp_mime_downgrade *md, const char *in, size_t n,
			     char **out, size_t *outlen);
int smtp_mime_downgrade_finish(struct smtp_mime_downgrade *md, char **out, size_t *outlen);
#define SMTP_EXT_DSN 0x20
#define SMTP_EXT_CHUNKING 0x200	/* RFC 3030 (a high bit: others add theirs below) */

#define SMTP_CLIENT_REPLY_LINES 100
#define SMTP_CLIENT_REPLY_MAX 65536

/*
 * Dot-stuffing for the body sent after DATA (deliver/client_dot.c), pure
 * and streaming: a '.' at the start of a line (also the first byte, and
 * across chunk boundaries) gets another '.', and a bare LF goes out as
 * CRLF so the peer's idea of a line start is ours.
 */
struct smtp_dot_encoder {
	bool line_start;	/* the next byte starts a line */
	bool after_cr;		/* the last byte was '\r' */
};

void smtp_dot_init(struct smtp_dot_encoder *e);
/* Encodes in into out (room for 2 * inlen bytes); returns the output length. */
size_t smtp_dot_encode(struct smtp_dot_encoder *e, const char *in, size_t inlen, char *out);
/* The end: CRLF unless the body ended with one, then ".\r\n" (room for 5). */
size_t smtp_dot_finish(struct smtp_dot_encoder *e, char *out);

/* ---- recipient verification (deliver/verify.c) ---- */

/*
 * One per event loop: RCPT probes to a local domain's next hop (route,
 * relayhost, else the domain), answers cached per recipient_verify_*
 * (policy/verify_cache.c, at most recipient_verify_cache_size), one
 * probe per address at a time, all on loop. cfg is read at every
 * question (it is replaced in place on SIGHUP); routes are parsed again
 * by deliver_verify_reload. The probe speaks SMTP; an LMTP route
 * (when the client learns LHLO) goes through the same client calls.
 */
struct deliver_verify;
struct deliver_verify_wait;
/* code: 250 the next hop takes it, 550 (5xx) it does not, 450 no answer; text says why. */
typedef void (*deliver_verify_cb)(void *arg, int code, const char *text);

struct deliver_verify *deliver_verify_new(uv_loop_t *loop, const struct mtad_config *cfg,
					  struct mtad_dns *dns);
void deliver_verify_reload(struct deliver_verify *v);
/*
 * deliver_verify_rcpt - is addr (LOCAL@DOMAIN) deliverable? Answered now
 * (from the cache, or a failure to ask): returns the code (250, 550,
 * 450) with text. Else returns 0 and cb runs later, on the loop, unless
 * *wait is given to deliver_verify_cancel first.
 */
int deliver_verify_rcpt(struct deliver_verify *v, const char *addr, deliver_verify_cb cb,
			void *arg, struct deliver_verify_wait **wait, char *text, size_t textlen);
/* deliver_verify_cancel - the waiter goes away: no callback (the probe itself goes on). */
void deliver_verify_cancel(struct deliver_verify_wait *w);
/* deliver_verify_free - after every session of the loop is gone: probes dropped. */
void deliver_verify_free(struct deliver_verify *v);

/* ---- the queue runner (deliver/deliver.c) ---- */

struct deliver;
struct mtad_dns;
struct mtad_config;

/*
 * deliver_new - scans the queue every second and delivers what is
 * due, by route, relayhost or MX. dns and tls may be NULL (no lookups:
 * only routes to addresses work; no STARTTLS). ids makes bounce ids.
 */
struct deliver *deliver_new(uv_loop_t *loop, const struct mtad_config *cfg,
				      struct queue *queue, struct mtad_dns *dns,
				      struct tls_client *tls, struct queue_id_gen *ids);
/* Routes again from the configuration (SIGHUP). */
void deliver_reload(struct deliver *d);
/* Stop: then queue_writer_stop, then deliver_free. */
void deliver_stop(struct deliver *d);
void deliver_free(struct deliver *d);

#endif
