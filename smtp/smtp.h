/*
 * smtp.h - the SMTP protocol: command parser, DATA decoder, and the
 * server session state machine.
 *
 * The parsers and the decoder are pure functions over bytes (no I/O,
 * no allocation) so they can be unit-tested and fuzzed. The session is
 * driven by a transport (mtad/listen.c, with tls/ under TLS) through
 * smtp_session_inbuf()/smtp_session_received() and writes its replies
 * through struct smtp_io; it never touches a socket itself.
 */
#ifndef SMTP_SMTP_H
#define SMTP_SMTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "policy/policy.h"
#include "queue/queue.h"
#include "util/util.h"

/* ---- command parser (smtp/command.c) ---- */

enum smtp_verb {
	SMTP_UNKNOWN = 0,
	SMTP_HELO, SMTP_EHLO, SMTP_MAIL, SMTP_RCPT, SMTP_DATA, SMTP_RSET,
	SMTP_NOOP, SMTP_QUIT, SMTP_HELP, SMTP_VRFY, SMTP_EXPN,
	SMTP_STARTTLS, SMTP_AUTH, SMTP_BDAT,
	SMTP_VERB_COUNT		/* not a verb: how many there are */
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

/* DSN (RFC 3461): RET=, NOTIFY= bits, and the bounds of ENVID and ORCPT. */
enum smtp_dsn_ret { SMTP_RET_UNSPECIFIED = 0, SMTP_RET_FULL = 1, SMTP_RET_HDRS = 2 };
#define SMTP_NOTIFY_NEVER 0x1
#define SMTP_NOTIFY_SUCCESS 0x2
#define SMTP_NOTIFY_FAILURE 0x4
#define SMTP_NOTIFY_DELAY 0x8
#define SMTP_ENVID_MAX 100	/* decoded characters, RFC 3461 §4.4 */
#define SMTP_ORCPT_MAX 500	/* the parameter's value as given, RFC 3461 §4.2 */
/* RFC 3461 §4: with DSN's parameters a MAIL or RCPT line may be this much
 * longer than RFC 5321's 512 octets (RCPT's NOTIFY= and ORCPT=). */
#define SMTP_DSN_LINE_EXTRA 515

struct smtp_path {
	char addr[SMTP_PATH_MAX];	/* without < >, NUL-terminated; "" for <> */
	size_t len;
	bool null_path;			/* MAIL FROM:<> */
	bool had_route;			/* a source route was given (and dropped) */
	bool utf8;			/* non-ASCII (well-formed UTF-8): needs SMTPUTF8 */
};

struct smtp_mail_params {
	bool has_size;
	uint64_t size;		/* saturates at UINT64_MAX: the caller's limit check says 552 */
	enum smtp_body_type body;
	bool smtputf8;		/* SMTPUTF8 (RFC 6531 §3.4) */
	/* DSN (RFC 3461 §4.3, §4.4): RET= and ENVID= (xtext decoded). */
	enum smtp_dsn_ret ret;
	bool has_envid;
	char envid[SMTP_ENVID_MAX + 1];
};

/* DSN's RCPT parameters (RFC 3461 §4.1, §4.2). */
struct smtp_rcpt_params {
	unsigned notify;	/* SMTP_NOTIFY_* bits; 0: no NOTIFY= given */
	bool has_orcpt;
	char orcpt[SMTP_ORCPT_MAX + 1];	/* "rfc822;xtext" as given (type, ';', xtext) */
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
 *   500 5.5.2 Error: bad UTF-8 syntax   (8-bit octets that are not UTF-8, C1 controls)
 *   553 5.6.7 Must declare SMTPUTF8 to send unicode address   (MAIL only:
 *             UTF-8 in the path without the SMTPUTF8 parameter; for RCPT
 *             the caller decides, from path->utf8 and the MAIL's parameter)
 *   501 5.5.4 Bad parameter syntax / Bad SIZE parameter /
 *             Duplicate SIZE parameter / Duplicate BODY parameter /
 *             Unsupported BODY type
 *             Bad SMTPUTF8 parameter / Duplicate SMTPUTF8 parameter
 *   501 5.5.4 DSN (RFC 3461): Bad RET parameter / Duplicate RET parameter /
 *             Bad ENVID parameter / Duplicate ENVID parameter (MAIL);
 *             Bad NOTIFY parameter / Duplicate NOTIFY parameter /
 *             Bad ORCPT parameter / Duplicate ORCPT parameter (RCPT)
 *   555 5.5.4 Unsupported parameter   (anything but SIZE, BODY, SMTPUTF8,
 *             RET, ENVID on MAIL; NOTIFY, ORCPT on RCPT)
 * UTF-8 is accepted in local parts and domains (RFC 6531 §3.3; a domain's
 * A-label form must be a valid name); path->utf8 says it was there.
 * ENVID is xtext, decoded into params->envid: printable ASCII, at most
 * 100 characters. ORCPT is "addr-type;xtext" (the type an atom, the
 * decoded address printable ASCII), kept as given in rparams->orcpt.
 * NOTIFY is NEVER alone, or a list of SUCCESS, FAILURE, DELAY.
 * rparams may be NULL: the RCPT parameters are checked and dropped.
 * RCPT TO:<postmaster> (any case) needs no domain (RFC 5321 §4.1.1.3).
 */
/* The text of the 501 5.1.3 for a path without a domain: the local socket's
 * sessions qualify such a path with the host name instead (verbs.c). */
#define SMTP_TEXT_NO_DOMAIN "Address must include a domain"
/* 553 5.6.7: a UTF-8 address in a transaction without SMTPUTF8 (Postfix's text). */
#define SMTP_TEXT_NEED_SMTPUTF8 "Must declare SMTPUTF8 to send unicode address"

int smtp_parse_mail_from(const char *arg, size_t len, struct smtp_path *path,
			 struct smtp_mail_params *params,
			 struct smtp_parse_error *err);
int smtp_parse_rcpt_to(const char *arg, size_t len, struct smtp_path *path,
		       struct smtp_rcpt_params *rparams, struct smtp_parse_error *err);


/*
 * smtp_parse_helo - validates a HELO/EHLO argument: a domain name or an
 * address literal ([1.2.3.4], [IPv6:...]). Returns 0 or -1. Liberal on
 * purpose (names are policy's business): no dot needed, underscores,
 * leading hyphens, all-digit labels and one trailing dot pass; spaces,
 * other punctuation, 8-bit, empty labels and labels over 63 fail.
 */
int smtp_parse_helo(const char *arg, size_t len);

/*
 * smtp_parse_bdat - RFC 3030 §2: "BDAT" SP chunk-size [SP "LAST"], the
 * argument after the verb: 1 to 20 digits (a value up to UINT64_MAX /
 * 2, so sizes add up without overflow) and, after one or more spaces,
 * LAST in any case. Returns 0 with *size and *last, or -1 (the caller
 * cannot know where the chunk ends: 501 and the connection closes).
 */
int smtp_parse_bdat(const char *arg, size_t len, uint64_t *size, bool *last);

/* ---- From: header scanner (smtp/from_scan.c) ---- */

#define SMTP_FROM_MAX 4096	/* bytes of From: values kept */

/*
 * Fed the decoded body as it streams; afterwards value[0..len) holds the
 * From: field bodies, unfolded, several fields joined with ','. overflow:
 * there was more than SMTP_FROM_MAX. done: the header section ended.
 */
struct smtp_from_scan {
	int state;
	bool done, in_from, overflow;
	unsigned fields;	/* From: fields seen */
	unsigned name_len;
	char name[5];
	size_t len;
	char value[SMTP_FROM_MAX];
};

void smtp_from_scan_init(struct smtp_from_scan *f);
void smtp_from_scan_feed(struct smtp_from_scan *f, const char *p, size_t n);

/* ---- header section scanner (smtp/header_scan.c) ---- */

#define SMTP_MESSAGE_ID_MAX 256	/* bytes of the Message-ID: value kept for the log */

/*
 * Fed the decoded message as it streams: where its header section ends,
 * whether Date: and Message-ID: were in it, and the first Message-ID:
 * field's value (unfolded, at most SMTP_MESSAGE_ID_MAX bytes; the rest
 * is dropped), for the log's message-id= line.
 */
struct smtp_header_scan {
	bool done;		/* the empty line came */
	bool has_date, has_message_id;
	bool at_line_start, in_name;
	bool in_message_id;	/* reading the first Message-ID: field's value */
	unsigned name_len;
	char name[12];		/* of the field being read, while it may still be one we look for */
	size_t message_id_len;
	char message_id[SMTP_MESSAGE_ID_MAX];
};

void smtp_header_scan_init(struct smtp_header_scan *h);
/*
 * smtp_header_scan_feed - n more bytes. Returns where in p the header
 * section ends (the start of the empty line, where fields may be
 * added), or n when it does not end within these bytes; once done,
 * consumes nothing and returns 0.
 */
size_t smtp_header_scan_feed(struct smtp_header_scan *h, const char *p, size_t n);
/*
 * smtp_header_message_id - the Message-ID: value seen (or set by whoever
 * added the field), without the white space around it: its start in
 * *id and its length; 0 when there is none.
 */
size_t smtp_header_message_id(const struct smtp_header_scan *h, const char **id);

/* ---- DATA decoder (smtp/data.c) ---- */

/*
 * Decodes a DATA stream: removes dot-stuffing and finds the end marker.
 * Only <CRLF>.<CRLF> ends the message (the CRLF of the DATA command
 * counts as the first one). By default a bare LF or bare CR is passed
 * through and flagged, and is never a line start for dot handling, so
 * no byte sequence makes two messages out of one (SMTP smuggling).
 * After smtp_data_normalize, a bare LF ends a line and is output as
 * CRLF (counted in bare_lf_count), a bare CR stays data, and a "."
 * line next to a bare LF (before or after it) is dropped, never the
 * end: Postfix 3.9's smtpd_forbid_bare_newline = normalize. Bytes past
 * the size limit are consumed and counted but not output.
 */
struct smtp_data_decoder {
	int state;
	uint64_t limit;		/* max decoded size */
	uint64_t size;		/* decoded bytes seen (may exceed limit) */
	size_t line_len;	/* current line, for long-line accounting */
	size_t longest_line;
	bool bare_lf, bare_cr, too_big, done;
	bool normalize;		/* smtp_data_normalize: bare LF is a line end */
	bool prev_bare;		/* normalizing: the last line ended with a bare LF */
	uint64_t bare_lf_count;	/* bare LFs seen (normalized, or refused) */
	uint64_t dropped_dots;	/* normalizing: "." lines next to a bare LF, dropped */
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
/* smtp_data_normalize - after smtp_data_init: bare LF is a line end (bare_newline = normalize). */
void smtp_data_normalize(struct smtp_data_decoder *dec);

/*
 * smtp_data_decode - consumes up to inlen bytes. Decoded bytes are
 * written to out (room for inlen bytes is enough; SMTP_DATA_OUT_MAX(inlen)
 * when normalizing, as a bare LF becomes two bytes) and counted in
 * *outlen. Returns the number of input bytes consumed: all of them,
 * unless the end marker was consumed; then dec->done is set and the
 * rest of the input (pipelined commands) is left for the caller. Once
 * done, further calls consume nothing. longest_line counts decoded
 * octets (after unstuffing), without the CRLF.
 */
size_t smtp_data_decode(struct smtp_data_decoder *dec, const char *in,
			size_t inlen, char *out, size_t *outlen);
#define SMTP_DATA_OUT_MAX(inlen) (2 * (inlen))

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

/* ---- the server session (smtp/session.c) ---- */

struct mtad_config;
struct mtad_listen;
struct queue;
struct auth_server;
struct auth_limiter;
struct mtad_dns;
struct local_aliases;

/*
 * Buffers no session holds now, kept for the next session that needs
 * one so that a busy server does not malloc and free per command
 * (session.c). A list through the free buffers themselves, at most
 * SMTP_SPARE_MAX long: more are freed.
 */
struct smtp_spare_buf;
struct smtp_spare {
	struct smtp_spare_buf *first;
	unsigned count;
};

#define SMTP_SPARE_MAX 64

/*
 * What the sessions of every event loop share, so that limits stay
 * global and exact however many loops there are. Owned by mtad; any
 * thread may use it, through the lock or the atomics.
 */
struct dkim_keys;	/* dkim/dkim.h */

struct smtp_shared {
	uv_mutex_t lock;		/* guards auth_limit and quota */
	/* sender_login_map, or NULL: replaced only while every loop waits
	 * (reload), read by any loop's sessions otherwise. */
	struct policy_sender_map *sender_map;
	char *auth_block;	/* auth_block's names (policy_login_listed), or NULL; likewise */
	struct policy_limit_map *limit_map;	/* send_limit_map, or NULL; likewise */
	struct local_aliases *aliases;	/* alias_maps (local/local.h), or NULL; likewise */
	struct policy_rcpt_map *rcpt_map;	/* local_recipient_maps, or NULL; likewise */
	struct dkim_keys *dkim;		/* dkim_sign's keys, or NULL; likewise. This
					 * is one reference: a signing job on the
					 * thread pool holds its own (dkim_keys_ref) */
	struct auth_limiter *auth_limit;	/* AUTH failures per client address */
	struct policy_quota *quota;	/* sending quotas per login (policy.h); under lock */
	/*
	 * Free bytes in the spool's filesystem for mtad's user, as the
	 * daemon last measured them (mtad/spool_space.c, every second,
	 * off the loop), less what sessions committed since. MAIL and DATA
	 * compare it with queue_minfree (policy_space_verdict).
	 * POLICY_SPACE_UNKNOWN until measured.
	 */
	_Atomic uint64_t spool_free;
	_Atomic uint64_t messages;	/* accepted since start */
};

#define SMTP_QUOTA_KEYS 100000	/* logins and trusted addresses the quotas remember */

/* smtp_shared_init - -1 when out of memory; cfg gives the AUTH limits. */
int smtp_shared_init(struct smtp_shared *sh, const struct mtad_config *cfg);
void smtp_shared_fini(struct smtp_shared *sh);

/*
 * Recipient verification at RCPT for local domains (issue 16), given to
 * the server by mtad (deliver/'s probe per loop) so smtp/ needs no
 * deliver/ header. verify answers now (returns 250, 550 or 450 with
 * text) or returns 0, sets *wait, and calls cb later on the session's
 * loop unless cancel(wait) came first. ctx NULL: no verification.
 */
typedef void (*smtp_rcpt_verified_cb)(void *arg, int code, const char *text);
struct smtp_rcpt_verifier {
	void *ctx;
	int (*verify)(void *ctx, const char *addr, smtp_rcpt_verified_cb cb, void *arg,
		      void **wait, char *text, size_t textlen);
	void (*cancel)(void *wait);
};

/* What one event loop's smtp_server uses besides its loop and config. */
struct smtp_server_deps {
	struct queue *queue;
	struct queue_port *port;	/* the loop's completion port (queue.h) */
	struct smtp_shared *shared;
	struct auth_server *auth;	/* NULL when no listener offers AUTH */
	struct mtad_dns *dns;		/* the loop's resolver; NULL: no DNS lookups */
	unsigned lane, lanes;		/* this loop's share of the queue ids */
};

/*
 * State shared by all sessions of one event loop; owned by that loop
 * (mtad/main.c, mtad/loops.c). cfg may be replaced between sessions
 * (reload, while every loop waits).
 */
struct smtp_server {
	uv_loop_t *loop;
	const struct mtad_config *cfg;
	struct queue *queue;
	struct queue_port *port;	/* where this loop's commits come back */
	struct smtp_shared *shared;
	struct auth_server *auth;	/* NULL when no listener offers AUTH */
	struct mtad_dns *dns;		/* NULL: no DNS lookups (dns_servers = none) */
	struct smtp_rcpt_verifier verifier;	/* recipient_verify's probes (set by mtad) */
	/* The HELO and relay policy, rebuilt from cfg by smtp_server_policy_update. */
	struct policy_settings policy;
	const char *policy_local[POLICY_MAX_DOMAINS + 1];
	const char *policy_relay[POLICY_MAX_DOMAINS];
	struct mtad_addr own_addrs[POLICY_MAX_ADDRS];
	struct queue_id_gen ids;
	char *scratch;		/* DATA decoder output, SMTP_DATA_OUT_MAX(SMTP_READ_SIZE) bytes */
	struct smtp_spare spare_in;	/* input buffers, SMTP_READ_SIZE bytes */
	struct smtp_spare spare_out;	/* reply buffers, SESSION_OUT_SIZE bytes */
	bool stopping;		/* shutting down: no new transactions */
	bool queue_failed;	/* ... because the queue failed (421 4.3.0) */
};

#define SMTP_READ_SIZE 16384	/* session input buffer, lent only while input waits */

/*
 * How a session reaches its connection. The transport in mtad/listen.c
 * implements these, for plain TCP and for TLS (implicit or after
 * STARTTLS, through tls/); the session never sees a socket, so it does
 * not care how the bytes travel.
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

/* One event loop's server; deps->auth and deps->dns may be NULL. */
int smtp_server_init(struct smtp_server *srv, uv_loop_t *loop,
		     const struct mtad_config *cfg, const struct smtp_server_deps *deps);

/*
 * smtp_server_policy_update - rebuilds the policy settings from cfg and
 * this machine's addresses (start-up and SIGHUP). New sessions and the
 * next MAIL of existing ones use them.
 */
void smtp_server_policy_update(struct smtp_server *srv);
void smtp_server_fini(struct smtp_server *srv);

/*
 * A new connection from client_ip on a listener (its name and its
 * configuration: TLS role, submission, plaintext AUTH). On the local
 * submission socket (lcfg->local) uid is the submitting user's, as the
 * kernel told it; the session is then trusted as relay_networks are,
 * never judged by the HELO rules, and its Received: says the uid.
 * Network sessions pass -1.
 */
struct smtp_session *smtp_session_new(struct smtp_server *srv, const struct smtp_io *io,
				      const char *client_ip, const char *listener,
				      const struct mtad_listen *lcfg, long uid);
/* Sends the greeting and starts the command timer. */
void smtp_session_start(struct smtp_session *s);
/*
 * Where the transport should put the next bytes read. 0 bytes: the
 * buffer is full (the session has paused reading), or no buffer could
 * be allocated (smtp_session_read_done then deals with it).
 */
void smtp_session_inbuf(struct smtp_session *s, char **buf, size_t *len);
/* n bytes were put there: process them. */
void smtp_session_received(struct smtp_session *s, size_t n);
/*
 * The transport's read is over, whatever it put into the buffer it was
 * given (perhaps nothing: EAGAIN, or no whole TLS record yet). An input
 * buffer left empty goes back to the server; when none could be had the
 * session says 421 and closes, or pauses until its asynchronous step
 * (queue commit, SASL, DNS) ends and reading resumes.
 */
void smtp_session_read_done(struct smtp_session *s);
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
