/*
 * smtp.h - the SMTP protocol: command parser, DATA decoder, and the
 * server session state machine.
 *
 * The parsers and the decoder are pure functions over bytes (no I/O,
 * no allocation) so they can be unit-tested and fuzzed. The session is
 * driven by a transport (mtad/listen.c, later tls/) through
 * smtp_session_inbuf()/smtp_session_received() and writes its replies
 * through struct smtp_io; it never touches a socket itself.
 */
#ifndef SMTP_SMTP_H
#define SMTP_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "policy/policy.h"
#include "queue/queue.h"

/* RFC 5321 §4.5.3.1 limits. */
#define SMTP_COMMAND_MAX 512	/* command line including CRLF */
#define SMTP_PATH_MAX 256	/* path including < > */
#define SMTP_DOMAIN_MAX 255
#define SMTP_LOCAL_MAX 64

/* ---- command parser (smtp/command.c) ---- */

enum smtp_verb {
	SMTP_UNKNOWN = 0,
	SMTP_HELO, SMTP_EHLO, SMTP_MAIL, SMTP_RCPT, SMTP_DATA, SMTP_RSET,
	SMTP_NOOP, SMTP_QUIT, SMTP_HELP, SMTP_VRFY, SMTP_EXPN,
	SMTP_STARTTLS, SMTP_AUTH,
};

struct smtp_command {
	enum smtp_verb verb;
	const char *arg;	/* points into the line, after the verb and its space(s) */
	size_t arglen;		/* trailing spaces removed */
};

/*
 * smtp_command_parse - splits one command line (CRLF already removed)
 * into verb and argument. Verbs are case-insensitive. MAIL and RCPT
 * are recognised as "MAIL FROM:" and "RCPT TO:" and arg then starts
 * after the colon (and after spaces: "MAIL FROM: <a@b>" is tolerated,
 * as Postfix does). "MAIL" or "RCPT" without "FROM:" / "TO:" gives the
 * verb with arg == NULL: the caller replies 501 5.5.4. Otherwise arg is
 * never NULL (arglen 0 when there is no argument). Returns 0, or -1
 * when the line holds a NUL or another control character, TAB and DEL
 * included (the caller replies 500 5.5.2).
 */
int smtp_command_parse(const char *line, size_t len, struct smtp_command *cmd);

/* Text of a verb for logs ("MAIL", "unknown"). */
const char *smtp_verb_name(enum smtp_verb verb);

enum smtp_body_type { SMTP_BODY_UNSPECIFIED, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };

struct smtp_path {
	char addr[SMTP_PATH_MAX];	/* without < >, NUL-terminated; "" for <> */
	size_t len;
	bool null_path;			/* MAIL FROM:<> */
	bool had_route;			/* a source route was given (and dropped) */
};

struct smtp_mail_params {
	bool has_size;
	uint64_t size;		/* saturates at UINT64_MAX: the caller's limit check says 552 */
	enum smtp_body_type body;
};

/* Result of parsing a MAIL FROM / RCPT TO argument: a full reply. */
struct smtp_parse_error {
	int code;		/* 501, 553, 555 ... */
	const char *enhanced;	/* "5.5.4" */
	const char *text;	/* human text, no CRLF */
};

/*
 * smtp_parse_mail_from / smtp_parse_rcpt_to - parse the argument after
 * "MAIL FROM:" / "RCPT TO:" (RFC 5321 §4.1.2 path syntax, ESMTP
 * parameters). Addresses with control characters, spaces outside
 * quotes, or shell metacharacters in an unquoted local part are
 * refused. Source routes are accepted and dropped (RFC 5321 C). On
 * error returns -1 and fills err (static strings):
 *   501 5.5.4 Syntax: MAIL FROM:<address>   no <...>, or junk right after '>'
 *   501 5.1.3 Bad address syntax / Bad domain syntax / Path too long /
 *             Local part too long / Address must include a domain /
 *             Bad source route syntax / Bad domain in source route /
 *             Null recipient address not allowed (RCPT TO:<>)
 *   553 5.1.3 Address contains forbidden characters  (controls; ` $ | &)
 *   553 5.6.7 Non-ASCII addresses are not supported
 *   501 5.5.4 Bad parameter syntax / Bad SIZE parameter /
 *             Duplicate SIZE parameter / Duplicate BODY parameter /
 *             Unsupported BODY type
 *   555 5.5.4 Unsupported parameter   (anything but SIZE, BODY; any on RCPT)
 * RCPT TO:<postmaster> (any case) needs no domain (RFC 5321 §4.1.1.3).
 */
int smtp_parse_mail_from(const char *arg, size_t len, struct smtp_path *path,
			 struct smtp_mail_params *params,
			 struct smtp_parse_error *err);
int smtp_parse_rcpt_to(const char *arg, size_t len, struct smtp_path *path,
		       struct smtp_parse_error *err);

/*
 * smtp_parse_helo - validates a HELO/EHLO argument: a domain name or an
 * address literal ([1.2.3.4], [IPv6:...]). Returns 0 or -1. Liberal on
 * purpose (names are policy's business): no dot needed, underscores,
 * leading hyphens, all-digit labels and one trailing dot pass; spaces,
 * other punctuation, 8-bit, empty labels and labels over 63 fail.
 */
int smtp_parse_helo(const char *arg, size_t len);

/* ---- DATA decoder (smtp/data.c) ---- */

/*
 * Decodes a DATA stream: removes dot-stuffing and finds the end marker.
 * Only <CRLF>.<CRLF> ends the message (the CRLF of the DATA command
 * counts as the first one). A bare LF or bare CR is passed through and
 * flagged, and is never a line start for dot handling, so no byte
 * sequence makes two messages out of one (SMTP smuggling). Bytes past
 * the size limit are consumed and counted but not output.
 */
struct smtp_data_decoder {
	int state;
	uint64_t limit;		/* max decoded size */
	uint64_t size;		/* decoded bytes seen (may exceed limit) */
	size_t line_len;	/* current line, for long-line accounting */
	size_t longest_line;
	bool bare_lf, bare_cr, too_big, done;
	/*
	 * ".\r" at a line start outputs nothing until the next byte shows
	 * whether it was the end marker; if it was not, that byte yields two
	 * ("\r" and itself). A byte that then does not fit in this call's
	 * output waits here for the next call, so out never needs more than
	 * inlen bytes.
	 */
	bool has_carry;
	char carry;
};

void smtp_data_init(struct smtp_data_decoder *dec, uint64_t limit);

/*
 * smtp_data_decode - consumes up to inlen bytes. Decoded bytes are
 * written to out (room for inlen bytes is enough) and counted in
 * *outlen. Returns the number of input bytes consumed: all of them,
 * unless the end marker was consumed; then dec->done is set and the
 * rest of the input (pipelined commands) is left for the caller. Once
 * done, further calls consume nothing. longest_line counts decoded
 * octets (after unstuffing), without the CRLF.
 */
size_t smtp_data_decode(struct smtp_data_decoder *dec, const char *in,
			size_t inlen, char *out, size_t *outlen);

/* ---- replies (smtp/reply.c) ---- */

/*
 * smtp_reply_format - formats "CODE ENH text\r\n" into buf (enhanced
 * code omitted when NULL). Returns the length, truncating the text to
 * keep the reply under 512 octets.
 */
size_t smtp_reply_format(char *buf, size_t size, int code, const char *enhanced,
			 const char *text);

#define SMTP_REPLY_LINE_MAX 512	/* octets including CRLF, RFC 5321 §4.5.3.1.5 */

/*
 * smtp_reply_add - appends one line of a multi-line reply to buf, which
 * holds *len bytes: "CODE-ENH text\r\n" when more lines follow,
 * "CODE ENH text\r\n" for the last (enhanced may be NULL, as in EHLO
 * replies). The text is truncated like smtp_reply_format's. Returns 0
 * and advances *len, or -1 with buf unchanged when the line does not
 * fit. buf stays NUL-terminated.
 *
 * smtp_reply_format and smtp_reply_add replace control characters in
 * the text with '?', so quoting client input cannot split a reply.
 * Both return 0 / -1 for a code outside 100..599 or a buffer too small
 * for the code and enhanced code.
 */
int smtp_reply_add(char *buf, size_t size, size_t *len, int code, const char *enhanced,
		   const char *text, bool more);

/* ---- outbound: routes (smtp/route.c), DSNs (smtp/dsn.c), client (smtp/client.c) ---- */

enum smtp_tls_policy { SMTP_TLS_NONE, SMTP_TLS_MAY, SMTP_TLS_VERIFY };

/*
 * A route: mail for domain (and its subdomains when the config says
 * ".domain") goes to host: "[host]:port" means that host, no MX lookup;
 * "host" or "host:port" means MX lookup of host. Written in mtad.conf as
 *   route = campus.test [mailhub.campus.test]:25
 *   route = .campus.test [10.1.2.3]:2525 tls=verify
 *   relayhost = [smarthost.example]:587
 */
struct smtp_route {
	char domain[256];	/* "" for relayhost */
	bool subdomains;	/* ".campus.test": the domain and everything under it */
	char host[256];
	int port;		/* 25 unless given */
	bool mx;		/* look up MX of host (no brackets) */
	enum smtp_tls_policy tls;
	bool tls_given;		/* tls= was written; else tls is MAY and smtp_tls may apply */
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
 * host stores the name (lower case) or the address, without brackets;
 * port is 25 unless given. Returns 0, or -1 with err set to
 * "bad route \"VALUE\": what is wrong" ("bad relayhost ..."). An empty
 * relayhost is an error too: "no relayhost" is the caller's "".
 */
int smtp_route_parse(const char *value, bool relayhost, struct smtp_route *out,
		     char *err, size_t errlen);

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
	const char *action;		/* "failed" or "delayed" */
	const char *status;		/* "5.1.1" */
	const char *remote_mta;		/* "mx.example.org", or NULL */
	const char *diagnostic;		/* "550 5.1.1 no such user", or NULL */
	const char *orig_addr;		/* Original-Recipient (ORCPT), or NULL: none written */
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
};

/*
 * smtp_dsn_build - an RFC 3464 delivery status notification
 * (multipart/report; message/delivery-status; the original headers as
 * text/rfc822-headers), from MAILER-DAEMON@hostname, CRLF line ends.
 * Subject "Delayed Mail (still being retried)" when every recipient's
 * action is "delayed", else "Undelivered Mail Returned to Sender".
 * A NULL action is "failed"; a NULL status is 5.0.0 (4.0.0 delayed).
 * Control characters in the fields become spaces or '?'; long fields
 * are folded, so no line exceeds 998 octets. At most 64 KB of the
 * original headers are included, cut at a line end.
 * Returns a malloc'd, NUL-terminated message and its length, or NULL
 * (out of memory, or orig_sender is "": no DSN about a DSN).
 */
char *smtp_dsn_build(const struct smtp_dsn_info *info, size_t *len);

/* The SMTP client: one connection to one peer, several messages over it. */
struct smtp_client;
struct tls_client;

struct smtp_client_options {
	const char *helo_name;		/* our name in EHLO */
	const char *peer_name;		/* for logs, SNI and certificate checks */
	enum smtp_tls_policy tls;
	struct tls_client *tls_client;	/* NULL: no STARTTLS */
	unsigned timeout;		/* seconds per step */
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
 * Body chunks come from the caller (the queue), asynchronously: read is
 * called for index 0, 1, ... one at a time, the next only once the last
 * chunk is written to the socket. done must be called exactly once per
 * read (from inside read too), with data valid only during the call,
 * last true on the final chunk; status != 0 means the message cannot be
 * read (451 4.3.0, the connection is dropped: half a message must not
 * be delivered). done must still be called after smtp_client_close;
 * the client is freed then. No timeout runs while a read is out, and
 * the sent callback never runs during one.
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
};

/*
 * Called once per message: results[i] for rcpt[i] (2xx sent, 4xx
 * deferred, 5xx failed), and data for the message as a whole (the reply
 * to the end of DATA, or why it never got there). ok is false when the
 * connection is no longer usable.
 *
 * A recipient's result is its RCPT reply when refused, else the reply
 * to the end of data (or to DATA when that failed). When MAIL is
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

#define SMTP_CLIENT_REPLY_LINES 100
#define SMTP_CLIENT_REPLY_MAX 65536

/*
 * Dot-stuffing for the body sent after DATA (smtp/client_dot.c), pure
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

/* ---- the queue runner (smtp/deliver.c) ---- */

struct smtp_deliver;
struct mtad_dns;
struct mtad_config;

/*
 * smtp_deliver_new - scans the queue every second and delivers what is
 * due, by route, relayhost or MX. dns and tls may be NULL (no lookups:
 * only routes to addresses work; no STARTTLS). ids makes bounce ids.
 */
struct smtp_deliver *smtp_deliver_new(uv_loop_t *loop, const struct mtad_config *cfg,
				      struct queue *queue, struct mtad_dns *dns,
				      struct tls_client *tls, struct queue_id_gen *ids);
/* Routes again from the configuration (SIGHUP). */
void smtp_deliver_reload(struct smtp_deliver *d);
/* Stop: then queue_writer_stop, then smtp_deliver_free. */
void smtp_deliver_stop(struct smtp_deliver *d);
void smtp_deliver_free(struct smtp_deliver *d);

/* ---- the server session (smtp/session.c) ---- */

struct mtad_config;
struct mtad_listen;
struct queue;
struct auth_server;
struct auth_limiter;
struct mtad_dns;

/*
 * State shared by all sessions of one server; owned by the event loop
 * (mtad/main.c). cfg may be replaced between sessions (reload).
 */
struct smtp_server {
	uv_loop_t *loop;
	const struct mtad_config *cfg;
	struct queue *queue;
	struct auth_server *auth;	/* NULL when no listener offers AUTH */
	struct auth_limiter *auth_limit;	/* failures per client address */
	struct mtad_dns *dns;		/* NULL: no DNS lookups (dns_servers = none) */
	/* The HELO and relay policy, rebuilt from cfg by smtp_server_policy_update. */
	struct policy_settings policy;
	const char *policy_local[POLICY_MAX_DOMAINS + 1];
	const char *policy_relay[POLICY_MAX_DOMAINS];
	struct policy_addr own_addrs[POLICY_MAX_ADDRS];
	struct policy_addr trusted[POLICY_MAX_NETWORKS];
	/* auth_ip_exempt: clients the AUTH address limit does not count. */
	struct policy_addr auth_exempt[POLICY_MAX_NETWORKS];
	size_t nauth_exempt;
	struct queue_id_gen ids;
	char *scratch;		/* DATA decoder output, SMTP_READ_SIZE bytes */
	uint64_t messages;	/* accepted since start */
	/*
	 * Free bytes in the spool's filesystem for mtad's user, as the
	 * daemon last measured them (mtad/spool_space.c, every second,
	 * off the loop), less what sessions committed since. MAIL and DATA
	 * compare it with queue_minfree (policy_space_verdict).
	 * POLICY_SPACE_UNKNOWN until measured.
	 */
	uint64_t spool_free;
	bool stopping;		/* shutting down: no new transactions */
	bool queue_failed;	/* ... because the queue failed (421 4.3.0) */
};

#define SMTP_READ_SIZE 16384	/* session input buffer */

/*
 * How a session reaches its connection. The transport (plain TCP in
 * mtad/listen.c, TLS later) implements these; the session never sees a
 * socket, so it does not care how the bytes travel.
 */
struct smtp_io {
	void *ctx;
	/* Queues bytes for sending (copied). */
	void (*send)(void *ctx, const char *data, size_t len);
	/* Stops (true) or restarts (false) reading from the peer. */
	void (*pause)(void *ctx, bool paused);
	/* Sends what is queued, then closes; the transport later calls smtp_session_free. */
	void (*close)(void *ctx);
	/*
	 * STARTTLS: sends what is queued in the clear, then runs the TLS
	 * handshake and calls smtp_session_tls_ready (or smtp_session_eof).
	 * Returns -1 when TLS cannot start.
	 */
	int (*starttls)(void *ctx);
};

struct smtp_session;

/* auth and dns may be NULL (no AUTH anywhere, no DNS lookups). */
int smtp_server_init(struct smtp_server *srv, uv_loop_t *loop,
		     const struct mtad_config *cfg, struct queue *queue,
		     struct auth_server *auth, struct mtad_dns *dns);

/*
 * smtp_server_policy_update - rebuilds the policy settings from cfg and
 * this machine's addresses (start-up and SIGHUP). New sessions and the
 * next MAIL of existing ones use them.
 */
void smtp_server_policy_update(struct smtp_server *srv);
void smtp_server_fini(struct smtp_server *srv);

/*
 * A new connection from client_ip on a listener (its name and its
 * configuration: TLS role, submission, plaintext AUTH).
 */
struct smtp_session *smtp_session_new(struct smtp_server *srv, const struct smtp_io *io,
				      const char *client_ip, const char *listener,
				      const struct mtad_listen *lcfg);
/* Sends the greeting and starts the command timer. */
void smtp_session_start(struct smtp_session *s);
/* Where the transport should put the next bytes read (may be 0 bytes: pause). */
void smtp_session_inbuf(struct smtp_session *s, char **buf, size_t *len);
/* n bytes were put there: process them. */
void smtp_session_received(struct smtp_session *s, size_t n);
/*
 * The TLS handshake finished (after STARTTLS, or before the greeting on
 * an implicit TLS listener): the session starts over, under TLS.
 */
void smtp_session_tls_ready(struct smtp_session *s, const char *version,
			    const char *cipher, int bits);
/* The peer closed or the connection failed. */
void smtp_session_eof(struct smtp_session *s, const char *why);
/* The server is stopping: 421 and close. */
void smtp_session_shutdown(struct smtp_session *s);
/*
 * The transport is gone. The session frees itself now, or when the
 * queue commit it is waiting for has finished.
 */
void smtp_session_free(struct smtp_session *s);

#endif
