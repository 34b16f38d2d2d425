/*
 * session_int.h - private to smtp/: the server session as session.c
 * (input, DATA, queue commit, lifetime) and verbs.c (the command table)
 * share it. Nothing outside smtp/ includes this file.
 *
 * Who calls whom, one way:
 *
 *   verbs.c            the command table: checks and runs every verb,
 *     |  \             RCPT and AUTH included; calls all three below
 *     |   verb_auth.c, session_policy.c
 *     |  /             (never verbs.c; between them, nothing)
 *   session.c          the primitives: reply, flush, close, resume,
 *                      timers, log lines, transaction reset, DATA start
 *
 * session.c calls up only where a session's life has its edges: each
 * input line goes to verbs_dispatch, a new and a freed session to
 * session_policy_start/stop and verb_auth_forget, a queued message to
 * session_policy_accepted. What finishes after an asynchronous wait
 * comes back through a pointer the caller stored, not a call upwards:
 * a MAIL that waited for the policy's DNS answer goes on through
 * s->mail_go_on (set by verbs.c), the AUTH failure delay ends through
 * the timer callback verb_auth.c gave session_set_timer.
 */
#ifndef SMTP_SESSION_INT_H
#define SMTP_SESSION_INT_H

#include <netinet/in.h>

#include "auth/auth.h"
#include "util/util.h"
#include "queue/queue.h"
#include "smtp/smtp.h"

#define SESSION_OUT_SIZE 4096	/* replies gathered before one send */
#define SESSION_HELO_MAX 255
/* Disk a committed message takes, for the free-space estimate between
 * two measures (session.c, session_space_used): its bytes once in the
 * log and once in body.db, plus up to a 64 KB page of rounding. */
#define SMTP_SPACE_FACTOR 2
#define SMTP_SPACE_PER_MESSAGE (64u * 1024)

enum session_state {
	STATE_COMMAND,		/* reading command lines */
	STATE_DATA,		/* reading the message body */
	STATE_COMMIT,		/* body complete, waiting for its DKIM signature
				 * (thread pool) and then for the queue */
	STATE_TLS_HANDSHAKE,	/* after STARTTLS, waiting for the transport */
	STATE_AUTH_WAIT,	/* a SASL step runs off the loop */
	STATE_AUTH_INPUT,	/* 334 sent, the next line is the client's response */
	STATE_AUTH_DELAY,	/* a failed AUTH waits before its 535 */
	STATE_POLICY_WAIT,	/* MAIL waits for a DNS answer the HELO rules need */
	STATE_RCPT_WAIT,	/* RCPT waits for recipient verification's probe */
	STATE_MILTER_WAIT,	/* MAIL, RCPT or DATA waits for the milters' answer */
	STATE_MILTER_EOM,	/* the end of DATA waits for the milters' answer */
	STATE_CLOSING,		/* replies flushed, transport closing */
};

/* Per verb, for the Postfix-style "disconnect ... ehlo=1 mail=1/2" line. */
struct session_verb_count {
	unsigned ok;
	unsigned total;
};

struct smtp_session {
	struct smtp_server *srv;
	struct smtp_io io;
	uv_timer_t timer;
	enum session_state state;

	char client_ip[INET6_ADDRSTRLEN];
	char listener[80];
	enum mtad_log_service log_svc;	/* smtpd, submission/smtpd, smtps/smtpd, pickup */
	enum mtad_listen_tls tls_mode;	/* the listener's role */
	bool submission;
	bool auth_plaintext;
	bool helo_reject_ehlo;

	/* What the policy knows about the client (session_policy.c). */
	char client_name[256];		/* forward-confirmed reverse name, or "unknown" */
	char client_label[256 + INET6_ADDRSTRLEN + 2];	/* "name[ip]" for log lines */
	enum policy_dns rdns;
	enum policy_dns helo_dns;
	bool rdns_pending, helo_dns_pending;
	struct mtad_dns_query *rdns_query, *helo_query;
	bool trusted;			/* in relay_networks, or local */
	long local_uid;			/* on the local socket: the user's uid; else -1 */
	bool greet_pending;		/* the 220 waits for the reverse name */
	struct policy_verdict blocked;	/* a rejected MAIL: RCPT gets the same reply */
	struct policy_verdict mail_verdict;	/* the HELO rules at this MAIL, once */
	bool mail_judged;		/* mail_verdict is computed for this MAIL */
	/* A MAIL the policy let go on after its DNS wait: verbs.c finishes it. */
	void (*mail_go_on)(struct smtp_session *s);
	unsigned policy_rejections;
	uint32_t rules_seen;		/* rules already counted for this connection */

	/* TLS, once the handshake is done. */
	bool tls_active;
	char tls_info[160];	/* "TLSv1.3 with cipher ... (256/256 bits)" */

	/* AUTH (verb_auth.c). */
	struct auth_exchange *auth_ex;
	char auth_mech[16];
	char auth_user[256];	/* "" until authenticated */
	struct smtp_from_scan *from_scan;	/* DATA of an authenticated session: its From: */
	bool auth_limited;	/* the attempt is counted by the address limit */
	bool auth_expect_user;	/* AUTH LOGIN: the next response is the user name */
	unsigned auth_failures;

	/* What the client said about itself. */
	bool helo_seen;
	bool esmtp;
	char helo[SESSION_HELO_MAX + 1];

	/* The mail transaction. */
	bool in_transaction;
	struct smtp_path sender;
	struct smtp_mail_params params;
	char **rcpt;
	char **orcpt;		/* per recipient: the address given when an alias led to it, or NULL */
	unsigned *notify;	/* per recipient: DSN NOTIFY= bits (SMTP_NOTIFY_*), 0 when not given */
	char **dsn_orcpt;	/* per recipient: DSN ORCPT= as given, or NULL */
	struct smtp_rcpt_params rcpt_params;	/* the DSN parameters of the RCPT being decided */
	unsigned nrcpt;
	unsigned rcpt_cap;	/* max_recipients when the session began */
	void *rcpt_wait;	/* recipient verification under way (session_rcpt.c) */
	char rcpt_waiting[SMTP_PATH_MAX];	/* ... for this address */

	/* The message being received. */
	char qid[QUEUE_ID_LEN + 1];
	struct queue_incoming *incoming;
	struct smtp_data_decoder dec;	/* DATA; BDAT counts its size and limit here */
	/*
	 * BDAT (RFC 3030). A chunk is read by its count, never parsed: in
	 * STATE_DATA its bytes go to the message, in STATE_COMMAND (a chunk
	 * refused) they are read and dropped, so the client's next command
	 * is found where it is (RFC 3030 §2) and no chunk byte is ever read
	 * as a command.
	 */
	bool chunking;		/* this message comes in BDAT chunks (DATA now 503) */
	bool rcpt_tried;	/* a RCPT came in this transaction: BDAT without one is 503, after refused ones 554 */
	bool bdat_open;		/* a chunk is being read (or dropped) */
	bool bdat_last;		/* ... and it is the last */
	bool bdat_failed;	/* a chunk was refused: the rest are dropped, 551, until LAST or RSET */
	uint64_t bdat_size;	/* the chunk's size, for its reply */
	uint64_t bdat_left;	/* its bytes still to come */
	int bdat_code;		/* a refused chunk: its reply, given once it is read */
	char bdat_enhanced[8];
	char bdat_text[96];
	bool note_bare_lf;	/* a bare LF was normalized: "notes=bare_lf" at disconnect */
	uint64_t header_size;	/* the Received: header we prepended, and fields we added */
	/* A submission (local or authenticated): its header section is held
	 * back (up to SESSION_HOLD_MAX) for its bare names to get the host
	 * name, and Date: and Message-ID: are added where it ends when it
	 * has none (RFC 6409 §8; session_submit.c). */
	bool add_fields;
	struct smtp_header_scan fields;
	char *hold;		/* the header section so far, while held */
	size_t hold_len;
	struct dkim_signer *dkim;	/* signing this message (session_dkim.c), or NULL */
	struct session_dkim_job *dkim_job;	/* its signature computed off the loop, or NULL */
	char *dkim_prefix;	/* the signature once computed (malloc'd), or NULL */
	bool dkim_failed;	/* a key exists and signing failed: 451, never unsigned */
	/* The queue gets the body alone: a milter may edit the header, which
	 * session_milter.c holds and hands over at the end, for the
	 * envelope's header_prefix (queue.h); the signer takes it apart. */
	bool queue_body_only;
	int64_t arrival_sec;
	int32_t arrival_usec;

	unsigned errors;
	struct session_verb_count verbs[SMTP_VERB_COUNT];
	unsigned commands_ok, commands_total;

	bool paused_by_queue;	/* body chunks in flight: wait */
	bool paused_by_milter;	/* a header field or body chunk waits for the milters */
	struct session_milters *milters;	/* session_milter.c; NULL: none for this session */
	uint32_t queue_flags;	/* QUEUE_FLAG_HELD: a milter quarantined the message */
	bool body_8bit;		/* an octet over 127 was queued: 8BITMIME content */
	bool skip_to_eol;	/* discarding the rest of an over-long line */
	bool transport_gone;	/* smtp_session_free was called */
	bool eof_pending;	/* the client half-closed during a commit: after its reply */

	/*
	 * The input and reply buffers are lent by the server (srv->spare_in,
	 * spare_out) only while they hold bytes: an idle session has
	 * neither (issue 13). in is SMTP_READ_SIZE bytes, out
	 * SESSION_OUT_SIZE; NULL means inlen (outlen) is 0.
	 */
	size_t inlen;
	size_t outlen;
	char *in;
	char *out;
	bool processing;	/* session_process runs: s->in is in use, keep it */
	bool in_nomem;		/* no input buffer could be had (smtp_session_read_done) */
};

/* session.c */
void session_reply(struct smtp_session *s, int code, const char *enhanced,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void session_reply_raw(struct smtp_session *s, const char *text, size_t len);
void session_close(struct smtp_session *s);
void session_flush(struct smtp_session *s);
void session_greet(struct smtp_session *s);
int session_set_timer(struct smtp_session *s, uint64_t ms, uv_timer_cb done);
void session_resume(struct smtp_session *s, enum session_state next);
void session_forget_client(struct smtp_session *s);
bool session_free_if_gone(struct smtp_session *s);
const char *session_protocol(const struct smtp_session *s);
void session_reset_transaction(struct smtp_session *s);
void session_start_data(struct smtp_session *s);
/*
 * session_bdat_refuse - the chunk being read is refused: it is read and
 * dropped, then this reply is given (a non-LAST chunk of a transaction
 * also fails the chunks that follow, as Postfix does).
 */
void session_bdat_refuse(struct smtp_session *s, int code, const char *enhanced,
			 const char *text);
/* session_bdat_begin - a BDAT command was accepted: its chunk is read into the message. */
void session_bdat_begin(struct smtp_session *s);
/* session_log - one line under the session's program name (mtad/smtpd, ...). */
#define session_log(s, level, ...) mtad_log_svc((s)->log_svc, (level), __VA_ARGS__)
/*
 * session_log_reject - Postfix's reject line: "QID|NOQUEUE: reject: VERB
 * from name[ip]: REASON; from=<sender> to=<rcpt> proto=ESMTP helo=<name>",
 * with to= when rcpt is not NULL; the sender is the one of this MAIL or
 * transaction ("" before any). extra (or NULL) goes at the end.
 */
void session_log_reject(struct smtp_session *s, const char *verb, const char *rcpt,
			const char *extra, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/*
 * session_queue_restart - a milter replaces the body: the queue file
 * starts over under the same id (what it had is dropped, in the
 * writer's order, before the new chunks land) and so does the signer's
 * body hash. -1: no memory; s->incoming is then NULL.
 */
int session_queue_restart(struct smtp_session *s);
/* session_write_body - message bytes to the queue (through the milters when there are), pausing when it is busy; -1 no memory. */
int session_write_body(struct smtp_session *s, const char *data, size_t len);
/*
 * session_queue_write - bytes of the final message to the queue: the
 * one place every queued byte passes, after the milters' changes (the
 * hook for a DKIM signer). -1 no memory.
 */
int session_queue_write(struct smtp_session *s, const char *data, size_t len);
/* session_commit - the complete message to the queue's writer; the reply comes from its callback. */
void session_commit(struct smtp_session *s);
/* session_continue - runs what is buffered (after a pause that was not a state). */
void session_continue(struct smtp_session *s);

/* verbs.c */
void verbs_dispatch(struct smtp_session *s, const char *line, size_t len);

/* session_policy.c */
void session_policy_start(struct smtp_session *s);
void session_policy_stop(struct smtp_session *s);
bool session_policy_ehlo(struct smtp_session *s);
bool session_policy_mail(struct smtp_session *s);
bool session_policy_blocked(struct smtp_session *s, const char *rcpt);
bool session_policy_rcpt(struct smtp_session *s, const struct smtp_path *path);
void session_policy_count(struct smtp_session *s, enum policy_rule rule);
void session_policy_accepted(struct smtp_session *s);

/* session_sender.c */
/* session_sender_mail - sender_login at MAIL: false when refused (553 given). */
bool session_sender_mail(struct smtp_session *s);
/* session_sender_data - at DATA: the From: scanner when the login is checked; -1 no memory. */
int session_sender_data(struct smtp_session *s);
/* session_sender_feed - decoded body bytes, for the From: scanner. */
void session_sender_feed(struct smtp_session *s, const char *p, size_t n);
/* session_sender_end - at the end of DATA: false when From: is refused (553 given). */
bool session_sender_end(struct smtp_session *s);
/* session_quota_mail / _rcpt - the sending quotas: false when refused (450 given). */
bool session_quota_mail(struct smtp_session *s);
bool session_quota_rcpt(struct smtp_session *s);
/* session_sender_committed - a message is durable: today's counters of its sender. */
void session_sender_committed(struct smtp_session *s);
/* session_login_spread - after a login: warns when it comes from too many addresses. */
void session_login_spread(struct smtp_session *s);
/* session_sender_stop - the transaction is over: the scanner goes. */
void session_sender_stop(struct smtp_session *s);

/* session_submit.c */
#define SESSION_HOLD_MAX (16 * 1024)	/* header bytes of a submission held back */
/* session_submit_start - at DATA: is it a submission (local, authenticated)? -1 no memory. */
int session_submit_start(struct smtp_session *s);
/* session_submit_write - decoded message bytes, through the header's treatment. -1 no memory. */
int session_submit_write(struct smtp_session *s, const char *p, size_t n);
/* session_submit_end - the message is complete: a header still held goes out. -1 no memory. */
int session_submit_end(struct smtp_session *s);
/* session_submit_stop - the transaction is over: what was held goes. */
void session_submit_stop(struct smtp_session *s);

/* session_dkim.c */
/* session_dkim_start - at DATA, before our Received:: a signer when the
 * session is our users' and a key is loaded. -1 no memory. */
int session_dkim_start(struct smtp_session *s);
/* session_dkim_feed - every byte written to the queue, in order. */
void session_dkim_feed(struct smtp_session *s, const char *data, size_t len);
/* session_dkim_header - one final header field, when the queue gets the body alone (queue_body_only). */
void session_dkim_header(struct smtp_session *s, const char *field, size_t len);
/* session_dkim_restart - a milter replaces the body: its hash starts over; -1 no memory. */
int session_dkim_restart(struct smtp_session *s);
/* session_dkim_sign - the message is complete: when it is to be signed,
 * its signature goes to libuv's thread pool and true is returned: the
 * caller waits (STATE_COMMIT, input held) and session_commit is called
 * again when the signature is ready (or failed). false: nothing to wait
 * for (not signed, already signed, or a failure session_dkim_finish
 * reports). */
bool session_dkim_sign(struct smtp_session *s);
/* session_dkim_finish - after session_dkim_sign: *prefix is the
 * DKIM-Signature fields (malloc'd, the caller's) or NULL when it is not
 * signed. -1 when a key exists and signing failed (the message must not
 * go). */
int session_dkim_finish(struct smtp_session *s, char **prefix);
/* session_dkim_stop - the transaction is over: the signer goes; a
 * signing job still running is left to finish for nobody (its callback
 * frees it) or cancelled if it has not started. */
void session_dkim_stop(struct smtp_session *s);
/* session_dkim_detach - the transport went while the signature was being
 * computed: the job is left (as session_dkim_stop), true when there was
 * one, so the session need not wait for it. */
bool session_dkim_detach(struct smtp_session *s);

/* session_rcpt.c */
/*
 * session_rcpt_add - a recipient the checks let through joins the
 * transaction, through the aliases when there are some; the reply (250,
 * or why not) is given. false when refused.
 */
bool session_rcpt_add(struct smtp_session *s, const char *addr);
/*
 * session_rcpt_check - for a local domain, does the recipient exist
 * (local_recipient_maps, aliases, or recipient_verify's probe)? Then,
 * and for other domains, the quota and session_rcpt_add. true when the
 * recipient was taken; false when refused (reply given) or waiting for
 * a probe (STATE_RCPT_WAIT: the reply comes when it answers).
 */
bool session_rcpt_check(struct smtp_session *s, const char *addr);
/* session_rcpt_take - session_rcpt_add after the milters: the recipient joins, the reply is given. */
bool session_rcpt_take(struct smtp_session *s, const char *addr);
/* session_rcpt_stop - the session goes: no probe answer may reach it. */
void session_rcpt_stop(struct smtp_session *s);

/* session_milter.c: the content filters (milter = lines). The verbs ask
 * them only when session_milter_active; each returns false when the
 * command's reply waits for them (STATE_MILTER_WAIT). */
bool session_milter_active(struct smtp_session *s);
bool session_milter_mail(struct smtp_session *s);
bool session_milter_rcpt(struct smtp_session *s, const char *addr);
bool session_milter_data(struct smtp_session *s);
/* session_milter_write - message bytes in DATA, to the milters and (now or at EOM) the queue. */
int session_milter_write(struct smtp_session *s, const char *p, size_t n);
/* session_milter_eom - the end of DATA: the milters' verdict and changes, then the commit or the refusal. */
void session_milter_eom(struct smtp_session *s);
/* session_milter_queue_resume - the queue took a replacement body's chunks: the milter's link reads on. */
void session_milter_queue_resume(struct smtp_session *s);
/* session_milter_header - the edited header section (empty line included) that goes in front of the body, or NULL. */
const char *session_milter_header(const struct smtp_session *s);
/* session_milter_abort - the transaction ends: the milters forget the message. */
void session_milter_abort(struct smtp_session *s);
/* session_milter_stop - the session ends (or starts over after STARTTLS): the connections close. */
void session_milter_stop(struct smtp_session *s);

/* verb_auth.c */
bool verb_auth_check(struct smtp_session *s);
bool verb_auth(struct smtp_session *s, const struct smtp_command *cmd);
void verb_auth_response(struct smtp_session *s, const char *line, size_t len);
void verb_auth_forget(struct smtp_session *s);

#endif
