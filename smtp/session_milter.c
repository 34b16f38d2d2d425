/*
 * session_milter.c - the milter client: a session's content filters
 * (`milter =` lines, in order) asked over the Sendmail milter protocol,
 * version 6, at every stage of a transaction, before the session
 * replies. A reject or tempfail from a milter is the reply to that
 * command (MAIL, RCPT, DATA, or the end of DATA), never a bounce.
 *
 * Must not: block the loop (each milter is a libuv TCP or pipe stream
 * of the session's loop, every wait has a timer: connect_timeout,
 * command_timeout, content_timeout), trust a milter (packets are
 * bounded by milter/codec.c, modifications checked and counted), or
 * say 250 before the message is durable (the commit is session.c's).
 *
 * Follows: libmilter's protocol version 6 as Postfix's milter8.c speaks
 * it (OPTNEG, macros, SMFIP_NO* and NR flags, SMFIR_* replies), RFC 5321
 * §4.2 (replies), RFC 5322 §2.2 (header fields and their folding).
 *
 * Stages: milters are connected when the first MAIL of a session comes,
 * and CONNECT and HELO are sent to them then, with the MAIL (a reject
 * at connect or HELO is the reply to MAIL and to every later MAIL of
 * the session, as Postfix's smtpd_delay_reject does for its own
 * checks). RCPT is asked for each recipient that passed mtad's own
 * checks; DATA before the 354. The message goes to the milters as it is
 * queued, Received: first: each header field, EOH, the body in chunks
 * of at most 64 KB (the session's input is paused while a chunk waits
 * for its replies), and EOM before the final reply.
 *
 * Where modifications land (the design): mtad streams a message into
 * the queue as it arrives, but a milter's header and body changes come
 * only at EOM, and nothing of the message is held in memory beyond its
 * header section (bounded by MILTER_HEADER_MAX, which the milters need
 * whole anyway). When a milter negotiated such actions (SMFIF_ADDHDRS,
 * CHGHDRS or CHGBODY), the session is in edit mode: the header is held
 * and the queue file gets the body alone, from its first byte; at EOM
 * the header fields are edited (added, inserted, changed, deleted) and
 * the result, with its empty line, becomes the envelope's header_prefix
 * (queue.h), which every reader puts in front of the body, committed in
 * the same transaction as the envelope. SMFIR_REPLBODY streams: its
 * first packet starts the queue file over under the same id
 * (session_queue_restart; the original body's chunks are dropped in the
 * writer's order) and each packet goes to the queue as it arrives, the
 * link's reads paused while the queue is busy, as the client's are.
 * A milter that fails in the middle of its replacement leaves half a
 * body: that is a temporary failure whatever its default_action says.
 * Sender and recipient changes are envelope changes and always apply.
 *
 * The hook for built-in DKIM signing: every byte of the final message,
 * header fields after all edits then the body, reaches the queue
 * through session_queue_write() in session.c; a signer fed there sees
 * exactly what is queued, after the milters.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "milter/milter.h"
#include "smtp/session_int.h"

#define MILTER_PREFIX_MAX (512u * 1024)		/* the edited header section */
#define MILTER_HEADER_MAX (100u * 1024)		/* Postfix's header_size_limit */
#define MILTER_FIELDS_MAX 1000			/* header fields, sent and after edits */
#define MILTER_MODS_MAX 1000			/* modifications of one message */
#define MILTER_FIELD_NAME_MAX 1000
#define MILTER_BODY_BUF (3u * MILTER_CHUNK_MAX)	/* body bytes waiting to go to the milters */

enum mstage { MS_MAIL, MS_RCPT, MS_DATA, MS_HEADER, MS_EOH, MS_BODY, MS_EOM };

/* What the milters said about a stage. */
enum mverdict { MV_CONTINUE, MV_REJECT, MV_TEMPFAIL, MV_DISCARD };

enum link_state { L_IDLE, L_CONNECTING, L_OPTNEG, L_READY, L_FAILED, L_CLOSED };

/* A modification of the message, copied out of its packet. */
struct mmod {
	char cmd;		/* SMFIR_* */
	uint32_t index;
	char *a, *b;		/* name and value, or address and arguments */
	const char *milter;
};

struct session_milters;

/* One milter's connection for one session. */
struct milter_link {
	struct session_milters *ms;
	const struct milter_spec *spec;
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} h;
	uv_connect_t creq;
	uv_timer_t timer;
	bool handle_open, timer_open;
	enum link_state state;
	bool session_accepted;	/* SMFIR_ACCEPT at connect or HELO: skipped for the session */
	bool message_accepted;	/* SMFIR_ACCEPT later: skipped for this message */
	bool skip_body;		/* SMFIR_SKIP: no more body chunks */
	bool connect_sent, helo_sent, step_sent, waiting;
	uint32_t actions, protocol;
	struct milter_decoder dec;
	unsigned char *rbuf;
};

/* The milters of one session. */
struct session_milters {
	struct smtp_session *s;	/* NULL once the session is gone: callbacks stop */
	struct milter_link link[MILTER_MAX];
	/* The `milter =` lines as the session began: a SIGHUP rewrites the
	 * configuration in place, and a session keeps the filters it has. */
	struct milter_spec spec[MILTER_MAX];
	size_t n, open_handles;
	bool session_verdict_set;	/* a connect or HELO reject: every MAIL gets it */
	int session_code;
	char session_text[MILTER_REPLY_MAX];

	/* The stage being asked. */
	enum mstage stage;
	size_t cur;
	void (*done)(struct session_milters *ms);
	enum mverdict verdict;
	int code;
	char text[MILTER_REPLY_MAX];	/* the reply's text; lines after the first as "\r\nCCC-..." */
	const char *verdict_milter;
	const char *rcpt;	/* MS_RCPT: the address asked about */
	char *field_name, *field_value;	/* MS_HEADER: the field being sent */
	const char *chunk;	/* MS_BODY */
	size_t chunk_len;
	bool running;
	bool stepping;		/* stage_next's loop runs: a failure inside it does not call it again */
	bool discard;		/* a milter said DISCARD: accepted, then dropped */

	/* The message. */
	bool in_message;
	bool edit;		/* header held for changes at EOM, the queue gets the body alone */
	bool eoh;		/* the header section was sent */
	bool header_too_big;
	bool failed;		/* out of memory or a queue write error */
	char *hdr;		/* the header section, up to MILTER_HEADER_MAX */
	size_t hdr_len;
	size_t hdr_end;		/* the header's length, CRLF of its last field included */
	size_t field_next;	/* the next field to send */
	unsigned separator;	/* bytes of the header's empty line not yet passed */
	char *body;		/* body bytes not yet sent to the milters */
	size_t body_len;
	bool body_stage;	/* a body chunk is being asked */
	uint64_t total;
	struct mmod mods[MILTER_MODS_MAX];
	size_t nmods;
	bool quarantine;
	char quarantine_reason[256];
	size_t repl_link;	/* 1 + the link whose replacement body is in the queue file; 0: none */
	bool repl_broken;	/* that link failed before its replacement was whole */
	uint64_t repl_len;
	struct milter_link *repl_paused;	/* its reads wait for the queue */
	char *prefix;		/* edit mode at EOM: the header section as it goes out */
};

static void stage_next(struct session_milters *ms);
static void link_fail(struct milter_link *l, const char *why);

/* ---- which sessions, log lines ---- */

/* listener_matches - milter_listeners names this session's listener? */
static bool listener_matches(const struct smtp_session *s)
{
	char copy[sizeof(s->srv->cfg->milter_listeners)], *save = NULL, *w;
	bool local = s->local_uid >= 0;

	snprintf(copy, sizeof(copy), "%s", s->srv->cfg->milter_listeners);
	for (w = strtok_r(copy, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
		if ((strcmp(w, "all") == 0 && !local) || (strcmp(w, "local") == 0 && local) ||
		    strcmp(w, s->listener) == 0)
			return true;
	}
	return false;
}

/* milter_log_action - Postfix's "QID: milter-reject: STAGE from host[ip]: TEXT; from=<> to=<> proto=ESMTP helo=<>". */
static void milter_log_action(struct smtp_session *s, const char *action, const char *stage,
			      const char *rcpt, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void milter_log_action(struct smtp_session *s, const char *action, const char *stage,
			      const char *rcpt, const char *fmt, ...)
{
	char reason[MILTER_REPLY_MAX + 64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	for (char *c = reason; *c; c++)	/* a multi-line reply on one log line */
		if (*c == '\r' || *c == '\n')
			*c = ' ';
	session_log(s, MTAD_LOG_INFO, "%s: %s: %s from %s: %s; from=<%s>%s%s%s proto=%s helo=<%s>",
		    s->qid[0] ? s->qid : "NOQUEUE", action, stage, s->client_label, reason,
		    s->sender.addr, rcpt ? " to=<" : "", rcpt ? rcpt : "", rcpt ? ">" : "",
		    s->esmtp ? "ESMTP" : "SMTP", s->helo);
}

static const char *stage_name(enum mstage st)
{
	static const char *const names[] = { "MAIL", "RCPT", "DATA", "END-OF-HEADER",
					     "END-OF-HEADER", "END-OF-MESSAGE", "END-OF-MESSAGE" };

	return names[st];
}

/* ---- the links: connect, write, read, close ---- */

static void link_handle_closed(uv_handle_t *h)
{
	struct milter_link *l = h->data;
	struct session_milters *ms = l->ms;

	if (--ms->open_handles == 0 && ms->s == NULL)
		free(ms);
}

/* link_close - the connection and its timer go (QUIT first when it is up). */
static void link_close(struct milter_link *l, bool quit)
{
	if (quit && l->state == L_READY && l->handle_open) {
		uv_buf_t b = uv_buf_init((char *)"\0\0\0\1Q", 5);

		/* Best effort, as Postfix does: uv_try_write never blocks. */
		(void)uv_try_write(&l->h.stream, &b, 1);
	}
	if (l->state != L_FAILED && l->state != L_IDLE)
		l->state = L_CLOSED;
	free(l->rbuf);
	l->rbuf = NULL;
	if (l->handle_open) {
		l->handle_open = false;
		uv_close(&l->h.handle, link_handle_closed);
	}
	if (l->timer_open) {
		l->timer_open = false;
		uv_close((uv_handle_t *)&l->timer, link_handle_closed);
	}
}

struct link_write {
	uv_write_t req;
	struct milter_link *l;
	unsigned char data[];
};

static void link_written(uv_write_t *req, int status)
{
	struct link_write *w = (struct link_write *)req;
	struct milter_link *l = w->l;

	free(w);
	if (status < 0 && status != UV_ECANCELED && l->ms->s && l->state == L_READY)
		link_fail(l, uv_strerror(status));
}

/* link_send - bytes to the milter (copied); -1 when they cannot be queued. */
static int link_send(struct milter_link *l, const struct milter_buf *b)
{
	struct link_write *w;
	uv_buf_t buf;

	if (b->overflow)
		return -1;
	if (!(w = malloc(sizeof(*w) + b->len)))
		return -1;
	memcpy(w->data, b->data, b->len);
	w->l = l;
	buf = uv_buf_init((char *)w->data, (unsigned)b->len);
	if (uv_write(&w->req, &l->h.stream, &buf, 1, link_written) != 0) {
		free(w);
		return -1;
	}
	return 0;
}

static void link_timeout(uv_timer_t *t)
{
	struct milter_link *l = t->data;

	if (l->ms->s)
		link_fail(l, "timeout");
}

/* link_wait - a reply is due within secs. */
static void link_wait(struct milter_link *l, unsigned secs)
{
	l->waiting = true;
	if (uv_timer_start(&l->timer, link_timeout, (uint64_t)secs * 1000, 0) != 0)
		link_fail(l, "cannot start a timer");
}

/* stage_timeout - the timeout of the stage asked now. */
static unsigned stage_timeout(const struct session_milters *ms, const struct milter_link *l)
{
	return ms->stage >= MS_HEADER ? l->spec->content_timeout : l->spec->command_timeout;
}

/*
 * link_fail - the milter is unreachable, timed out or broke the
 * protocol: logged as Postfix's warning, the connection goes, and its
 * default_action decides the stage being asked (accept: the milter is
 * skipped for the rest of the session).
 */
static void link_fail(struct milter_link *l, const char *why)
{
	struct session_milters *ms = l->ms;
	struct smtp_session *s = ms->s;
	if (l->spec->unix_socket)
		session_log(s, MTAD_LOG_WARNING, "milter %s: unix:%s: %s; default_action=%s",
			    l->spec->name, l->spec->path, why,
			    milter_action_name(l->spec->default_action));
	else
		session_log(s, MTAD_LOG_WARNING, "milter %s: inet:%s:%d: %s; default_action=%s",
			    l->spec->name, l->spec->path, l->spec->port, why,
			    milter_action_name(l->spec->default_action));
	l->waiting = false;
	if (ms->stage == MS_EOM && ms->repl_link == (size_t)(l - ms->link) + 1)
		ms->repl_broken = true;
	if (ms->repl_paused == l)
		ms->repl_paused = NULL;
	l->state = L_FAILED;
	link_close(l, false);
	l->state = L_FAILED;
	/* The stage asking this milter goes on (its default_action decides). */
	if (ms->running && !ms->stepping && &ms->link[ms->cur] == l)
		stage_next(ms);
}

/* link_default - the verdict of a failed milter for the stage asked: true when the stage stops. */
static bool link_default(struct session_milters *ms, struct milter_link *l)
{
	bool half_body = ms->repl_broken && ms->repl_link == (size_t)(l - ms->link) + 1;

	if (l->spec->default_action == MILTER_ACCEPT && !half_body)
		return false;
	ms->verdict_milter = l->spec->name;
	if (l->spec->default_action == MILTER_REJECT && !half_body) {
		ms->verdict = MV_REJECT;
		ms->code = 550;
		snprintf(ms->text, sizeof(ms->text), "5.7.1 Command rejected");
	} else {
		ms->verdict = MV_TEMPFAIL;
		ms->code = 451;
		snprintf(ms->text, sizeof(ms->text), "4.7.1 Service unavailable - try again later");
	}
	return true;
}

static void link_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static __thread char scratch[16384];	/* read into, then copied by the decoder at once */

	(void)h;
	(void)suggested;
	*buf = uv_buf_init(scratch, sizeof(scratch));
}

static void link_packet(struct milter_link *l, char cmd, const unsigned char *data, size_t len);

static void link_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct milter_link *l = st->data;
	size_t off = 0;

	if (n == 0 || !l->ms->s || l->state == L_CLOSED || l->state == L_FAILED)
		return;
	if (n < 0) {
		link_fail(l, n == UV_EOF ? "connection closed by the milter" : uv_strerror((int)n));
		return;
	}
	while (off < (size_t)n && l->rbuf && l->ms->s && l->state != L_FAILED) {
		bool complete;
		size_t len;

		off += milter_decode(&l->dec, buf->base + off, (size_t)n - off, &complete);
		if (l->dec.error) {
			link_fail(l, "bad packet length");
			return;
		}
		if (!complete)
			continue;
		len = l->dec.len - 1;
		milter_decoder_reset(&l->dec);	/* the packet stays in rbuf until the next read */
		link_packet(l, (char)l->dec.data[0], l->dec.data + 1, len);
	}
}

/* link_negotiated - the OPTNEG reply: the milter is ready for the stage asked. */
static void link_negotiated(struct milter_link *l, const unsigned char *data, size_t len)
{
	struct milter_optneg o;

	uv_timer_stop(&l->timer);
	l->waiting = false;
	if (milter_parse_optneg(data, len, &o) != 0) {
		link_fail(l, "bad OPTNEG reply");
		return;
	}
	/* What it asks for beyond what we offered is a protocol error, as in Postfix. */
	if ((o.actions & ~MILTER_ACTIONS_OFFERED) || (o.protocol & ~MILTER_PROTOCOL_OFFERED)) {
		link_fail(l, "it asks for actions or protocol steps that were not offered");
		return;
	}
	l->actions = o.actions;
	l->protocol = o.protocol;
	l->state = L_READY;
	stage_next(l->ms);
}

static void link_connected(uv_connect_t *req, int status)
{
	struct milter_link *l = req->data;
	unsigned char mem[32];
	struct milter_buf b;

	if (!l->ms->s || l->state != L_CONNECTING)
		return;
	if (status < 0) {
		link_fail(l, uv_strerror(status));
		return;
	}
	milter_buf_init(&b, mem, sizeof(mem));
	milter_put_optneg(&b, MILTER_VERSION, MILTER_ACTIONS_OFFERED, MILTER_PROTOCOL_OFFERED);
	l->state = L_OPTNEG;
	if (link_send(l, &b) != 0 || uv_read_start(&l->h.stream, link_alloc, link_read) != 0) {
		link_fail(l, "cannot write");
		return;
	}
	link_wait(l, l->spec->connect_timeout);
}

/* link_connect - opens the connection; the stage goes on when OPTNEG is done. */
static void link_connect(struct milter_link *l)
{
	uv_loop_t *loop = l->ms->s->srv->loop;
	int r;

	if (!(l->rbuf = malloc(MILTER_PACKET_MAX))) {
		link_fail(l, "out of memory");
		return;
	}
	milter_decoder_init(&l->dec, l->rbuf);
	if (uv_timer_init(loop, &l->timer) != 0) {
		free(l->rbuf);
		l->rbuf = NULL;
		l->state = L_FAILED;
		return;
	}
	l->timer.data = l;
	l->timer_open = true;
	l->ms->open_handles++;
	r = l->spec->unix_socket ? uv_pipe_init(loop, &l->h.pipe, 0) : uv_tcp_init(loop, &l->h.tcp);
	l->state = L_CONNECTING;
	if (r != 0) {
		link_fail(l, uv_strerror(r));
		return;
	}
	l->handle_open = true;
	l->ms->open_handles++;
	l->h.handle.data = l;
	l->creq.data = l;
	if (l->spec->unix_socket) {
		uv_pipe_connect(&l->creq, &l->h.pipe, l->spec->path, link_connected);
	} else {
		struct sockaddr_storage ss;

		r = strchr(l->spec->path, ':')
			    ? uv_ip6_addr(l->spec->path, l->spec->port, (struct sockaddr_in6 *)&ss)
			    : uv_ip4_addr(l->spec->path, l->spec->port, (struct sockaddr_in *)&ss);
		if (r == 0)
			r = uv_tcp_connect(&l->creq, &l->h.tcp, (struct sockaddr *)&ss, link_connected);
		if (r != 0) {
			link_fail(l, uv_strerror(r));
			return;
		}
	}
	link_wait(l, l->spec->connect_timeout);
}

/* ---- what each stage sends ---- */

/* if_addr - the listener's address without its port. */
static void if_addr(const struct smtp_session *s, char *buf, size_t size)
{
	const char *colon = strrchr(s->listener, ':');
	size_t n = colon ? (size_t)(colon - s->listener) : strlen(s->listener);

	if (n > 0 && s->listener[0] == '[')
		snprintf(buf, size, "%.*s", (int)(n - 2), s->listener + 1);
	else
		snprintf(buf, size, "%.*s", (int)n, s->listener);
}

/* put_connect - macros and SMFIC_CONNECT. */
static void put_connect(struct smtp_session *s, struct milter_buf *b)
{
	char addr[80], underscore[600];
	bool local = s->local_uid >= 0;
	const char *m[] = {
		"j", s->srv->cfg->hostname, "{daemon_name}", "mtad",
		"v", "mtad " MTAD_VERSION, "{daemon_addr}", addr,
		"{if_name}", s->srv->cfg->hostname, "{if_addr}", addr,
		"_", underscore, "{client_addr}", local ? "127.0.0.1" : s->client_ip,
		"{client_name}", local ? "localhost" : s->client_name,
	};

	if_addr(s, addr, sizeof(addr));
	snprintf(underscore, sizeof(underscore), "%s [%s]", local ? "localhost" : s->client_name,
		 local ? "127.0.0.1" : s->client_ip);
	milter_put_macros(b, SMFIC_CONNECT, m, sizeof(m) / sizeof(m[0]) / 2);
	if (local)
		milter_put_connect(b, "localhost", 'U', 0, "");
	else
		milter_put_connect(b, s->client_name, strchr(s->client_ip, ':') ? '6' : '4', 0,
				   s->client_ip);
}

/* put_envelope - macros and MAIL or RCPT. */
static void put_envelope(struct session_milters *ms, struct milter_buf *b)
{
	struct smtp_session *s = ms->s;
	char path[SMTP_PATH_MAX + 2];

	if (ms->stage == MS_MAIL) {
		const char *m[] = { "{auth_authen}", s->auth_user[0] ? s->auth_user : NULL,
				    "{auth_type}", s->auth_user[0] ? s->auth_mech : NULL,
				    "{mail_addr}", s->sender.addr };
		const char *args[1] = { path };

		milter_put_macros(b, SMFIC_MAIL, m, 3);
		snprintf(path, sizeof(path), "<%s>", s->sender.addr);
		milter_put_strings(b, SMFIC_MAIL, args, 1);
	} else {
		const char *m[] = { "{rcpt_addr}", ms->rcpt };
		const char *args[1] = { path };

		milter_put_macros(b, SMFIC_RCPT, m, 1);
		snprintf(path, sizeof(path), "<%s>", ms->rcpt);
		milter_put_strings(b, SMFIC_RCPT, args, 1);
	}
}

/* stage_cmd and the step this stage skips (SMFIP_NO*) and does not reply to (SMFIP_NR_*). */
static void stage_flags(enum mstage st, char *cmd, uint32_t *no, uint32_t *nr)
{
	static const struct { char cmd; uint32_t no, nr; } t[] = {
		[MS_MAIL] = { SMFIC_MAIL, SMFIP_NOMAIL, SMFIP_NR_MAIL },
		[MS_RCPT] = { SMFIC_RCPT, SMFIP_NORCPT, SMFIP_NR_RCPT },
		[MS_DATA] = { SMFIC_DATA, SMFIP_NODATA, SMFIP_NR_DATA },
		[MS_HEADER] = { SMFIC_HEADER, SMFIP_NOHDRS, SMFIP_NR_HDR },
		[MS_EOH] = { SMFIC_EOH, SMFIP_NOEOH, SMFIP_NR_EOH },
		[MS_BODY] = { SMFIC_BODY, SMFIP_NOBODY, SMFIP_NR_BODY },
		[MS_EOM] = { SMFIC_BODYEOB, 0, 0 },
	};

	*cmd = t[st].cmd;
	*no = t[st].no;
	*nr = t[st].nr;
}

/* put_stage - the stage's packet (and macros) into b. */
static void put_stage(struct session_milters *ms, struct milter_buf *b)
{
	struct smtp_session *s = ms->s;
	const char *qid[] = { "i", s->qid[0] ? s->qid : NULL };

	switch (ms->stage) {
	case MS_MAIL:
	case MS_RCPT:
		put_envelope(ms, b);
		break;
	case MS_DATA:
		milter_put_packet(b, SMFIC_DATA, NULL, 0);
		break;
	case MS_HEADER: {
		const char *f[] = { ms->field_name, ms->field_value };

		milter_put_strings(b, SMFIC_HEADER, f, 2);
		break;
	}
	case MS_EOH:
		milter_put_macros(b, SMFIC_EOH, qid, 1);
		milter_put_packet(b, SMFIC_EOH, NULL, 0);
		break;
	case MS_BODY:
		milter_put_packet(b, SMFIC_BODY, ms->chunk, ms->chunk_len);
		break;
	case MS_EOM:
		milter_put_macros(b, SMFIC_BODYEOB, qid, 1);
		milter_put_packet(b, SMFIC_BODYEOB, NULL, 0);
		break;
	}
}

/* link_skips - this link has nothing to do with the stage. */
static bool link_skips(const struct session_milters *ms, const struct milter_link *l)
{
	if (l->session_accepted || (l->message_accepted && ms->stage != MS_MAIL))
		return true;
	return ms->stage == MS_BODY && l->skip_body;
}

/*
 * link_step - sends what the link needs next for the stage: CONNECT and
 * HELO once per session, then the stage's packet. Returns true when a
 * reply is awaited, false when the link is done with the stage.
 */
static bool link_step(struct session_milters *ms, struct milter_link *l)
{
	struct smtp_session *s = ms->s;
	unsigned char mem[MILTER_CHUNK_MAX + 2048];
	struct milter_buf b;
	uint32_t no, nr;
	char cmd;

	milter_buf_init(&b, mem, sizeof(mem));
	if (!l->connect_sent) {
		l->connect_sent = true;
		if (!(l->protocol & SMFIP_NOCONNECT)) {
			put_connect(s, &b);
			if (link_send(l, &b) != 0)
				return link_fail(l, "cannot write"), false;
			if (!(l->protocol & SMFIP_NR_CONN))
				return link_wait(l, l->spec->command_timeout), true;
		}
	}
	milter_buf_init(&b, mem, sizeof(mem));
	if (!l->helo_sent && s->helo[0]) {
		const char *h[1] = { s->helo };

		l->helo_sent = true;
		if (!(l->protocol & SMFIP_NOHELO)) {
			milter_put_strings(&b, SMFIC_HELO, h, 1);
			if (link_send(l, &b) != 0)
				return link_fail(l, "cannot write"), false;
			if (!(l->protocol & SMFIP_NR_HELO))
				return link_wait(l, l->spec->command_timeout), true;
		}
	}
	if (l->step_sent)
		return false;
	l->step_sent = true;
	stage_flags(ms->stage, &cmd, &no, &nr);
	if (l->protocol & no)
		return false;
	milter_buf_init(&b, mem, sizeof(mem));
	put_stage(ms, &b);
	if (link_send(l, &b) != 0)
		return link_fail(l, "cannot write"), false;
	if (l->protocol & nr)
		return false;
	link_wait(l, stage_timeout(ms, l));
	return true;
}

/* stage_finish - every milter answered (or one decided): the stage's callback. */
static void stage_finish(struct session_milters *ms)
{
	ms->running = false;
	ms->done(ms);
}

/* stage_next - asks the next milter, or finishes the stage. */
static void stage_next(struct session_milters *ms)
{
	if (!ms->s || !ms->running || ms->stepping)
		return;
	ms->stepping = true;
	while (ms->cur < ms->n) {
		struct milter_link *l = &ms->link[ms->cur];

		if (l->state == L_FAILED) {
			if (link_default(ms, l)) {
				ms->stepping = false;
				return stage_finish(ms);
			}
			ms->cur++;
			continue;
		}
		if (l->state == L_IDLE) {
			link_connect(l);
			if (l->state != L_FAILED)
				break;	/* link_negotiated comes back here */
			continue;
		}
		if (l->state != L_READY)
			break;	/* still connecting */
		if (!link_skips(ms, l) && link_step(ms, l))
			break;	/* link_packet comes back here */
		if (l->state == L_FAILED)
			continue;
		ms->cur++;
	}
	ms->stepping = false;
	if (ms->cur >= ms->n)
		stage_finish(ms);
}

/* stage_begin - asks every milter in turn, then calls done. */
static void stage_begin(struct session_milters *ms, enum mstage st,
			void (*done)(struct session_milters *ms))
{
	ms->stage = st;
	ms->cur = 0;
	ms->done = done;
	ms->verdict = MV_CONTINUE;
	ms->code = 0;
	ms->text[0] = '\0';
	ms->verdict_milter = NULL;
	ms->running = true;
	for (size_t i = 0; i < ms->n; i++)
		ms->link[i].step_sent = false;
	stage_next(ms);
}

/* ---- what a milter answers ---- */

/* keep_mod - a modification for EOM, copied; false when it is refused. */
static bool keep_mod(struct session_milters *ms, struct milter_link *l, char cmd,
		     const unsigned char *data, size_t len)
{
	struct mmod *m = &ms->mods[ms->nmods];
	const char *str[2] = { NULL, NULL };

	if (ms->nmods >= MILTER_MODS_MAX)
		return false;
	memset(m, 0, sizeof(*m));
	m->cmd = cmd;
	m->milter = l->spec->name;
	if (cmd == SMFIR_ADDHEADER || cmd == SMFIR_INSHEADER || cmd == SMFIR_CHGHEADER) {
		struct milter_header_mod h;

		if (milter_parse_header_mod(cmd, data, len, &h) != 0)
			return false;
		m->index = h.index;
		str[0] = h.name;
		str[1] = h.value;
	} else {
		int n = milter_parse_strings(data, len, str, 2);

		if (n < 1 || (cmd != SMFIR_ADDRCPT_PAR && cmd != SMFIR_CHGFROM && n != 1) ||
		    strlen(str[0]) >= SMTP_PATH_MAX)
			return false;
	}
	if (!(m->a = strdup(str[0])) || (str[1] && !(m->b = strdup(str[1])))) {
		free(m->a);
		return false;
	}
	ms->nmods++;
	return true;
}

/* action_allowed - the modification cmd needs an action the milter negotiated. */
static bool action_allowed(const struct milter_link *l, char cmd)
{
	switch (cmd) {
	case SMFIR_ADDHEADER: return l->actions & SMFIF_ADDHDRS;
	case SMFIR_INSHEADER:
	case SMFIR_CHGHEADER: return l->actions & SMFIF_CHGHDRS;
	case SMFIR_ADDRCPT: return l->actions & SMFIF_ADDRCPT;
	case SMFIR_ADDRCPT_PAR: return l->actions & SMFIF_ADDRCPT_PAR;
	case SMFIR_DELRCPT: return l->actions & SMFIF_DELRCPT;
	case SMFIR_CHGFROM: return l->actions & SMFIF_CHGFROM;
	case SMFIR_REPLBODY: return l->actions & SMFIF_CHGBODY;
	case SMFIR_QUARANTINE: return l->actions & SMFIF_QUARANTINE;
	}
	return false;
}

/*
 * link_replbody - a piece of the milter's replacement body, straight to
 * the queue (CRLF as sent: libmilter bodies use CRLF). Its first piece
 * starts the queue file over: a second milter's replacement replaces
 * the first. The link stops reading while the queue is busy.
 */
static void link_replbody(struct milter_link *l, const unsigned char *data, size_t len)
{
	struct session_milters *ms = l->ms;
	struct smtp_session *s = ms->s;
	size_t me = (size_t)(l - ms->link) + 1;
	uint64_t limit = s->srv->cfg->message_size_limit;

	if (ms->repl_link != me) {
		ms->repl_link = me;
		ms->repl_len = 0;
		if (session_queue_restart(s) != 0)
			return link_fail(l, "cannot start the queue file over");
	}
	if (limit > 0 && ms->repl_len + len > limit) {
		session_log(s, MTAD_LOG_WARNING, "%s: milter %s: replacement body over "
			    "message_size_limit (%llu bytes)", s->qid, l->spec->name,
			    (unsigned long long)limit);
		return link_fail(l, "replacement body too big");
	}
	ms->repl_len += len;
	if (session_queue_write(s, (const char *)data, len) < 0)
		return link_fail(l, "queue file write error");
	if (s->paused_by_queue && ms->repl_paused == NULL) {
		ms->repl_paused = l;
		(void)uv_read_stop(&l->h.stream);
	}
}

/* session_milter_queue_resume - see session_int.h. */
void session_milter_queue_resume(struct smtp_session *s)
{
	struct session_milters *ms = s->milters;
	struct milter_link *l = ms ? ms->repl_paused : NULL;

	if (l == NULL)
		return;
	ms->repl_paused = NULL;
	if (l->state == L_READY && l->handle_open &&
	    uv_read_start(&l->h.stream, link_alloc, link_read) != 0)
		link_fail(l, "cannot read");
}

/* link_modification - SMFIR_ADDHEADER etc.: only at EOM, only when negotiated. */
static void link_modification(struct milter_link *l, char cmd, const unsigned char *data,
			      size_t len)
{
	struct session_milters *ms = l->ms;

	if (ms->stage != MS_EOM || !action_allowed(l, cmd)) {
		link_fail(l, "modification outside END-OF-MESSAGE or not negotiated");
		return;
	}
	if (cmd == SMFIR_QUARANTINE) {
		const char *r[1];

		if (milter_parse_strings(data, len, r, 1) != 1)
			return link_fail(l, "bad QUARANTINE");
		ms->quarantine = true;
		snprintf(ms->quarantine_reason, sizeof(ms->quarantine_reason), "%s", r[0]);
		/* It goes into a log line: no line breaks or controls from a filter. */
		for (char *c = ms->quarantine_reason; *c; c++)
			if ((unsigned char)*c < ' ' || *c == 127)
				*c = '?';
		return;
	}
	if (cmd == SMFIR_REPLBODY)
		return link_replbody(l, data, len);
	if (!keep_mod(ms, l, cmd, data, len))
		link_fail(l, "bad or too many modifications");
}

/* link_reply - an answer that ends the stage for this link. */
static void link_reply(struct milter_link *l, char cmd, const unsigned char *data, size_t len)
{
	struct session_milters *ms = l->ms;
	const char *text;
	int code;

	switch (cmd) {
	case SMFIR_CONTINUE:
		break;
	case SMFIR_ACCEPT:
		if (ms->stage == MS_MAIL && !l->step_sent)
			l->session_accepted = true;
		else
			l->message_accepted = true;
		break;
	case SMFIR_SKIP:
		if (ms->stage != MS_BODY || !(l->protocol & SMFIP_SKIP))
			return link_fail(l, "SKIP outside the body");
		l->skip_body = true;
		break;
	case SMFIR_REJECT:
		ms->verdict = MV_REJECT;
		ms->code = 550;
		snprintf(ms->text, sizeof(ms->text), "5.7.1 Command rejected");
		break;
	case SMFIR_TEMPFAIL:
		ms->verdict = MV_TEMPFAIL;
		ms->code = 451;
		snprintf(ms->text, sizeof(ms->text), "4.7.1 Service unavailable - try again later");
		break;
	case SMFIR_REPLYCODE:
		if (milter_parse_replycode(data, len, &code, &text) != 0)
			return link_fail(l, "bad REPLYCODE");
		ms->verdict = code / 100 == 5 ? MV_REJECT : MV_TEMPFAIL;
		ms->code = code;
		snprintf(ms->text, sizeof(ms->text), "%s", text);
		break;
	case SMFIR_DISCARD:
		if (ms->stage == MS_MAIL && !l->step_sent)
			return link_fail(l, "DISCARD at CONNECT or HELO");
		ms->verdict = MV_DISCARD;
		break;
	default:
		return link_fail(l, "unknown reply");
	}
	if (ms->verdict != MV_CONTINUE)
		ms->verdict_milter = l->spec->name;
	/* A reject at CONNECT or HELO holds for the whole session. */
	if (ms->verdict != MV_CONTINUE && ms->stage == MS_MAIL && !l->step_sent) {
		ms->session_verdict_set = ms->verdict != MV_DISCARD;
		ms->session_code = ms->code;
		snprintf(ms->session_text, sizeof(ms->session_text), "%s", ms->text);
	}
	if (ms->verdict != MV_CONTINUE)
		return stage_finish(ms);
	stage_next(ms);
}

/* link_packet - one complete packet from the milter. */
static void link_packet(struct milter_link *l, char cmd, const unsigned char *data, size_t len)
{
	struct session_milters *ms = l->ms;

	if (l->state == L_OPTNEG) {
		if (cmd != SMFIC_OPTNEG)
			return link_fail(l, "expected OPTNEG");
		return link_negotiated(l, data, len);
	}
	if (!l->waiting || !ms->running || &ms->link[ms->cur] != l)
		return link_fail(l, "a packet nobody asked for");
	if (cmd == SMFIR_PROGRESS) {
		link_wait(l, stage_timeout(ms, l));	/* still working: the wait starts over */
		return;
	}
	if (strchr("+-2ebhimq", cmd) && cmd != '\0') {
		link_modification(l, cmd, data, len);
		return;
	}
	uv_timer_stop(&l->timer);
	l->waiting = false;
	link_reply(l, cmd, data, len);
}

/* ---- the session's side ---- */

/* session_milter_active - see session_int.h. */
bool session_milter_active(struct smtp_session *s)
{
	struct session_milters *ms;

	if (s->milters)
		return true;
	if (s->srv->cfg->nmilters == 0 || !listener_matches(s))
		return false;
	if (!(ms = calloc(1, sizeof(*ms)))) {
		session_log(s, MTAD_LOG_WARNING, "out of memory for the milters of %s", s->client_label);
		return false;
	}
	ms->s = s;
	ms->n = s->srv->cfg->nmilters;
	for (size_t i = 0; i < ms->n; i++) {
		ms->link[i].ms = ms;
		ms->spec[i] = s->srv->cfg->milters[i];
		ms->link[i].spec = &ms->spec[i];
	}
	s->milters = ms;
	return true;
}

/*
 * milter_resume - the command's reply is given: the session reads on.
 * When the milters answered at once (no reply due), this runs inside
 * session_process, whose loop goes on by itself: never a second one.
 */
static void milter_resume(struct smtp_session *s, enum session_state next)
{
	if (!s->processing) {
		session_resume(s, next);
		return;
	}
	s->state = next;
	if (!s->transport_gone)
		s->io.pause(s->io.ctx, false);
}

/* milter_wait - the command's reply waits for the milters: input paused. */
static void milter_wait(struct smtp_session *s)
{
	s->state = STATE_MILTER_WAIT;
	uv_timer_stop(&s->timer);
	s->io.pause(s->io.ctx, true);
}

/* split_enhanced - "5.7.1 text" (n bytes): the enhanced code into enh when it matches code's class; returns where the text starts. */
static size_t split_enhanced(const char *line, size_t n, int code, char *enh, size_t size)
{
	size_t e = strspn(line, "0123456789.");

	enh[0] = '\0';
	if (e > n)
		e = n;
	if (e >= 5 && e < size && (e == n || line[e] == ' ') && line[0] == (char)('0' + code / 100)) {
		memcpy(enh, line, e);
		enh[e] = '\0';
		return e + (e < n);
	}
	return 0;
}

/* reply_lines - a milter's multi-line reply (smfi_setmlreply), each line with its own enhanced code. */
static void reply_lines(struct session_milters *ms)
{
	char buf[MILTER_REPLY_MAX + MILTER_REPLY_LINES * 16], line[SMTP_REPLY_LINE_MAX], enh[16];
	const char *p = ms->text, *next;
	size_t len = 0;

	buf[0] = '\0';
	while (p != NULL) {
		size_t n = milter_reply_line(p, &next), at;

		if (n >= sizeof(line))
			n = sizeof(line) - 1;
		at = split_enhanced(p, n, ms->code, enh, sizeof(enh));
		snprintf(line, sizeof(line), "%.*s", (int)(n - at), p + at);
		if (smtp_reply_add(buf, sizeof(buf), &len, ms->code, enh[0] ? enh : NULL, line,
				   next != NULL) != 0)
			break;
		p = next;
	}
	session_reply_raw(ms->s, buf, len);
}

/* reply_verdict - the milters' reject, tempfail or default action as the reply, logged. */
static void reply_verdict(struct session_milters *ms, const char *rcpt)
{
	struct smtp_session *s = ms->s;
	char enhanced[16];
	size_t at;

	if (strstr(ms->text, "\r\n")) {
		reply_lines(ms);
	} else {
		/* "5.7.1 text": the enhanced code apart, for session_reply. */
		at = split_enhanced(ms->text, strlen(ms->text), ms->code, enhanced, sizeof(enhanced));
		session_reply(s, ms->code, enhanced[0] ? enhanced : NULL, "%s", ms->text + at);
	}
	milter_log_action(s, "milter-reject", stage_name(ms->stage), rcpt, "%d %s", ms->code,
			  ms->text);
}

static void mail_done(struct session_milters *ms)
{
	struct smtp_session *s = ms->s;

	s->state = STATE_COMMAND;
	if (ms->verdict == MV_CONTINUE || ms->verdict == MV_DISCARD) {
		/* DISCARD at MAIL: the message is accepted and dropped at its end. */
		ms->discard = ms->verdict == MV_DISCARD;
		s->in_transaction = true;
		s->verbs[SMTP_MAIL].ok++;
		s->commands_ok++;
		session_reply(s, 250, "2.1.0", "Ok");
		ms->in_message = true;
	} else {
		reply_verdict(ms, NULL);
		memset(&s->sender, 0, sizeof(s->sender));
	}
	milter_resume(s, STATE_COMMAND);
}

/* session_milter_mail - see session_int.h. */
bool session_milter_mail(struct smtp_session *s)
{
	struct session_milters *ms = s->milters;

	if (ms->session_verdict_set) {
		ms->verdict = ms->session_code / 100 == 5 ? MV_REJECT : MV_TEMPFAIL;
		ms->code = ms->session_code;
		ms->stage = MS_MAIL;
		snprintf(ms->text, sizeof(ms->text), "%s", ms->session_text);
		reply_verdict(ms, NULL);
		memset(&s->sender, 0, sizeof(s->sender));
		return false;
	}
	for (size_t i = 0; i < ms->n; i++)
		ms->link[i].message_accepted = false;
	milter_wait(s);
	stage_begin(ms, MS_MAIL, mail_done);
	return false;
}

static void rcpt_done(struct session_milters *ms)
{
	struct smtp_session *s = ms->s;
	char addr[SMTP_PATH_MAX];

	snprintf(addr, sizeof(addr), "%s", ms->rcpt);
	free((char *)ms->rcpt);
	ms->rcpt = NULL;
	s->state = STATE_COMMAND;
	if (ms->verdict == MV_CONTINUE || ms->verdict == MV_DISCARD) {
		if (ms->verdict == MV_DISCARD)
			ms->discard = true;
		if (session_rcpt_take(s, addr)) {
			s->verbs[SMTP_RCPT].ok++;
			s->commands_ok++;
		}
	} else {
		reply_verdict(ms, addr);
	}
	milter_resume(s, STATE_COMMAND);
}

/* session_milter_rcpt - see session_int.h. */
bool session_milter_rcpt(struct smtp_session *s, const char *addr)
{
	struct session_milters *ms = s->milters;

	if (!(ms->rcpt = strdup(addr))) {
		session_reply(s, 451, "4.3.0", "Error: out of memory");
		return false;
	}
	milter_wait(s);
	stage_begin(ms, MS_RCPT, rcpt_done);
	return false;
}

/* edit_wanted - a milter of this session may change the header or body. */
static bool edit_wanted(const struct session_milters *ms)
{
	for (size_t i = 0; i < ms->n; i++)
		if (ms->link[i].state == L_READY &&
		    (ms->link[i].actions & (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY)))
			return true;
	return false;
}

static void message_forget(struct session_milters *ms);

static void data_done(struct session_milters *ms)
{
	struct smtp_session *s = ms->s;

	s->state = STATE_COMMAND;
	if (ms->verdict != MV_CONTINUE && ms->verdict != MV_DISCARD) {
		reply_verdict(ms, NULL);
		milter_resume(s, STATE_COMMAND);
		return;
	}
	if (ms->verdict == MV_DISCARD)
		ms->discard = true;
	ms->verdict = MV_CONTINUE;
	if (!(ms->hdr = malloc(MILTER_HEADER_MAX)) || !(ms->body = malloc(MILTER_BODY_BUF)) ||
	    !(ms->field_name = malloc(MILTER_FIELD_NAME_MAX)) ||
	    !(ms->field_value = malloc(MILTER_HEADER_MAX))) {
		message_forget(ms);
		session_reply(s, 451, "4.3.0", "Error: out of memory");
		milter_resume(s, STATE_COMMAND);
		return;
	}
	ms->edit = edit_wanted(ms);
	s->queue_body_only = ms->edit;
	ms->in_message = true;
	session_start_data(s);
	if (s->state == STATE_DATA) {
		s->verbs[s->chunking ? SMTP_BDAT : SMTP_DATA].ok++;	/* a first BDAT waited too */
		s->commands_ok++;
	}
	milter_resume(s, s->state == STATE_DATA ? STATE_DATA : STATE_COMMAND);
}

/* session_milter_data - see session_int.h. */
bool session_milter_data(struct smtp_session *s)
{
	milter_wait(s);
	stage_begin(s->milters, MS_DATA, data_done);
	return false;
}

/* ---- the message as it streams ---- */

/* milter_pause / milter_unpause - the session's input waits for a stage of the message. */
static void milter_pause(struct smtp_session *s)
{
	if (!s->paused_by_milter) {
		s->paused_by_milter = true;
		s->io.pause(s->io.ctx, true);
	}
}

static void milter_unpause(struct smtp_session *s)
{
	if (!s->paused_by_milter)
		return;
	s->paused_by_milter = false;
	if (!s->transport_gone)
		s->io.pause(s->io.ctx, false);
	/* Within session_process (the milters answered at once, with no
	 * reply due), its loop reads on by itself; never a second one. */
	if (!s->processing)
		session_continue(s);
}

/* body_out - body bytes go to the queue and wait for the milters. */
static int body_out(struct session_milters *ms, const char *p, size_t n)
{
	size_t sep = ms->separator < n ? ms->separator : n;

	if (n == 0 || (ms->eoh && ms->verdict != MV_CONTINUE))
		return 0;	/* decided before the end: nothing more is kept */
	/* The empty line that ends the header is no body byte for the
	 * milters, and in edit mode it goes with the header at EOM. */
	if (ms->edit ? n > sep && session_queue_write(ms->s, p + sep, n - sep) < 0
		     : session_queue_write(ms->s, p, n) < 0)
		return -1;
	ms->separator -= (unsigned)sep;
	p += sep;
	n -= sep;
	if (ms->body_len + n > MILTER_BODY_BUF)
		return -1;
	memcpy(ms->body + ms->body_len, p, n);
	ms->body_len += n;
	return 0;
}

static void body_pump(struct session_milters *ms);

static void body_chunk_done(struct session_milters *ms)
{
	ms->body_stage = false;
	memmove(ms->body, ms->body + ms->chunk_len, ms->body_len - ms->chunk_len);
	ms->body_len -= ms->chunk_len;
	if (ms->verdict != MV_CONTINUE)
		ms->body_len = 0;	/* decided: no more is shown, EOM gives the verdict */
	body_pump(ms);
}

/* field_split - the next field of the held header: name and value (folding as "\n"). */
static bool field_split(struct session_milters *ms, char *name, size_t nsize, char *value,
			size_t vsize)
{
	const char *p = ms->hdr + ms->field_next, *end = ms->hdr + ms->hdr_end, *e = p;
	const char *colon;
	size_t vn = 0;

	if (p >= end)
		return false;
	/* the field runs to a CRLF not followed by white space */
	while (e < end) {
		const char *lf = memchr(e, '\n', (size_t)(end - e));

		e = lf ? lf + 1 : end;
		if (e >= end || (*e != ' ' && *e != '\t'))
			break;
	}
	ms->field_next = (size_t)(e - ms->hdr);
	colon = memchr(p, ':', (size_t)(e - p));
	if (!colon || (size_t)(colon - p) >= nsize) {
		snprintf(name, nsize, "X-Mtad-Broken-Header");
		colon = p - 1;
	} else {
		snprintf(name, nsize, "%.*s", (int)(colon - p), p);
	}
	for (const char *q = colon + 1; q < e && vn + 1 < vsize; q++) {
		if (*q == '\r' && q + 1 < e && q[1] == '\n')
			continue;
		if (vn == 0 && (*q == ' ' || *q == '\t') && q == colon + 1)
			continue;	/* the one space after the colon: Postfix strips it */
		value[vn++] = *q;
	}
	while (vn > 0 && value[vn - 1] == '\n')
		vn--;
	value[vn] = '\0';
	return true;
}

static void header_next(struct session_milters *ms);

static void header_done(struct session_milters *ms)
{
	if (ms->verdict != MV_CONTINUE) {
		ms->field_next = ms->hdr_end;
		ms->eoh = true;
		ms->body_len = 0;
		return body_pump(ms);
	}
	header_next(ms);
}

static void eoh_done(struct session_milters *ms)
{
	ms->eoh = true;
	if (ms->verdict != MV_CONTINUE)
		ms->body_len = 0;
	body_pump(ms);
}

/* header_next - the next field to the milters, or EOH after the last. */
static void header_next(struct session_milters *ms)
{
	if (field_split(ms, ms->field_name, MILTER_FIELD_NAME_MAX, ms->field_value,
			MILTER_HEADER_MAX)) {
		stage_begin(ms, MS_HEADER, header_done);
		return;
	}
	stage_begin(ms, MS_EOH, eoh_done);
}

/* body_pump - after the header: full chunks to the milters, one stage at a time; input reads on when none waits. */
static void body_pump(struct session_milters *ms)
{
	struct smtp_session *s = ms->s;

	if (!s || ms->body_stage || ms->running)
		return;
	if (ms->eoh && ms->body_len >= MILTER_CHUNK_MAX && ms->verdict == MV_CONTINUE) {
		ms->chunk = ms->body;
		ms->chunk_len = MILTER_CHUNK_MAX;
		ms->body_stage = true;
		milter_pause(s);
		stage_begin(ms, MS_BODY, body_chunk_done);
		return;
	}
	if (s->state == STATE_MILTER_EOM) {
		session_milter_eom(s);
		return;
	}
	milter_unpause(s);
}

/* header_add - header bytes until the empty line; returns how many of n were header. */
static size_t header_add(struct session_milters *ms, const char *p, size_t n)
{
	size_t from = ms->hdr_len > 3 ? ms->hdr_len - 3 : 0, take = n;
	char *end;

	if (take > MILTER_HEADER_MAX - ms->hdr_len)
		take = MILTER_HEADER_MAX - ms->hdr_len;
	memcpy(ms->hdr + ms->hdr_len, p, take);
	ms->hdr_len += take;
	end = memmem(ms->hdr + from, ms->hdr_len - from, "\r\n\r\n", 4);
	if (end) {
		size_t header = (size_t)(end - ms->hdr) + 2;	/* up to the empty line */
		size_t over = ms->hdr_len - header;		/* the empty line and body bytes */

		ms->hdr_end = header;
		ms->hdr_len = header;
		ms->separator = 2;
		return take - over;
	}
	if (ms->hdr_len == MILTER_HEADER_MAX)
		ms->header_too_big = true;
	return take;
}

/* session_milter_write - see session_int.h. */
int session_milter_write(struct smtp_session *s, const char *p, size_t n)
{
	struct session_milters *ms = s->milters;

	if (!ms->hdr)
		return session_queue_write(s, p, n);
	if (ms->failed)
		return 0;	/* refused at the end */
	if (!ms->hdr_end && !ms->header_too_big) {
		size_t h = header_add(ms, p, n);

		p += h;
		n -= h;
		if (ms->header_too_big)
			return 0;
		if (!ms->hdr_end)
			return 0;
		/* The header is whole: unless held, it goes to the queue now. */
		if (!ms->edit && session_queue_write(s, ms->hdr, ms->hdr_end) < 0)
			return -1;
		if (body_out(ms, p, n) < 0)
			return -1;
		ms->field_next = 0;
		milter_pause(s);
		header_next(ms);
		return 0;
	}
	if (ms->header_too_big)
		return 0;
	if (body_out(ms, p, n) < 0)
		return -1;
	if (ms->body_len >= MILTER_CHUNK_MAX)
		body_pump(ms);
	return 0;
}

/* ---- the end of the message ---- */

/* crlf_value - a milter's value with every bare "\n" made CRLF, into buf. */
static size_t crlf_value(const char *v, char *buf, size_t size)
{
	size_t n = 0;

	for (; *v && n + 2 < size; v++) {
		if (*v == '\n' && (n == 0 || buf[n - 1] != '\r'))
			buf[n++] = '\r';
		buf[n++] = *v;
	}
	return n;
}

struct hfield {
	const char *raw;	/* "Name: value\r\n", folded lines included */
	size_t len;
	char *own;		/* raw when it was made here */
};

/* field_named - the field starts with name and a colon. */
static bool field_named(const struct hfield *f, const char *name)
{
	size_t n = strlen(name);

	return f->len > n && strncasecmp(f->raw, name, n) == 0 && f->raw[n] == ':';
}

/* make_field - "Name: value\r\n" from a milter's parts. */
static int make_field(struct hfield *f, const char *name, const char *value)
{
	size_t cap = strlen(name) + 2 * strlen(value) + 8;
	char *p = malloc(cap);
	size_t n;

	if (!p)
		return -1;
	n = (size_t)snprintf(p, cap, "%s:%s", name, value[0] == ' ' || value[0] == '\t' ? "" : " ");
	n += crlf_value(value, p + n, cap - n);
	p[n++] = '\r';
	p[n++] = '\n';
	f->raw = p;
	f->len = n;
	f->own = p;
	return 0;
}

/* header_edit - one header modification on the field list. */
static int header_edit(struct hfield *f, size_t *nf, const struct mmod *m)
{
	struct hfield nu = { 0 };

	if (m->cmd == SMFIR_CHGHEADER) {
		uint32_t seen = 0;

		for (size_t i = 0; i < *nf; i++) {
			if (!field_named(&f[i], m->a) || ++seen != (m->index ? m->index : 1))
				continue;
			free(f[i].own);
			if (m->b[0] == '\0') {	/* an empty value deletes */
				memmove(f + i, f + i + 1, (*nf - i - 1) * sizeof(*f));
				(*nf)--;
				return 0;
			}
			return make_field(&f[i], m->a, m->b);
		}
		if (m->b[0] == '\0')
			return 0;
	}
	if (*nf >= MILTER_FIELDS_MAX || make_field(&nu, m->a, m->b) != 0)
		return -1;
	if (m->cmd == SMFIR_INSHEADER && m->index < *nf) {
		memmove(f + m->index + 1, f + m->index, (*nf - m->index) * sizeof(*f));
		f[m->index] = nu;
	} else {
		f[*nf] = nu;
	}
	(*nf)++;
	return 0;
}

/* header_fields - the held header as a list of fields. */
static size_t header_fields(struct session_milters *ms, struct hfield *f)
{
	size_t nf = 0, pos = 0;

	while (pos < ms->hdr_end && nf < MILTER_FIELDS_MAX) {
		const char *p = ms->hdr + pos, *e = p, *end = ms->hdr + ms->hdr_end;

		while (e < end) {
			const char *lf = memchr(e, '\n', (size_t)(end - e));

			e = lf ? lf + 1 : end;
			if (e >= end || (*e != ' ' && *e != '\t'))
				break;
		}
		f[nf++] = (struct hfield){ p, (size_t)(e - p), NULL };
		pos = (size_t)(e - ms->hdr);
	}
	return nf;
}

/* prefix_join - the fields and the empty line as one string (ms->prefix); the signer gets each field. */
static int prefix_join(struct session_milters *ms, const struct hfield *f, size_t nf)
{
	size_t total = 2, n = 0;

	for (size_t i = 0; i < nf; i++)
		total += f[i].len;
	if (total > MILTER_PREFIX_MAX) {
		session_log(ms->s, MTAD_LOG_WARNING, "%s: header over %u bytes after the milters' "
			    "changes", ms->s->qid, MILTER_PREFIX_MAX);
		return -1;
	}
	if (!(ms->prefix = malloc(total + 1)))
		return -1;
	for (size_t i = 0; i < nf; i++) {
		memcpy(ms->prefix + n, f[i].raw, f[i].len);
		n += f[i].len;
		session_dkim_header(ms->s, f[i].raw, f[i].len);
	}
	memcpy(ms->prefix + n, "\r\n", 3);
	return 0;
}

/* header_build - the held header with every header modification, for header_prefix. */
static int header_build(struct session_milters *ms)
{
	struct hfield *f = calloc(MILTER_FIELDS_MAX, sizeof(*f));
	size_t nf;
	int rc = 0;

	if (!f)
		return -1;
	nf = header_fields(ms, f);
	for (size_t i = 0; i < ms->nmods && rc == 0; i++) {
		char c = ms->mods[i].cmd;

		if (c == SMFIR_ADDHEADER || c == SMFIR_INSHEADER || c == SMFIR_CHGHEADER)
			rc = header_edit(f, &nf, &ms->mods[i]);
	}
	if (rc == 0)
		rc = prefix_join(ms, f, nf);
	for (size_t i = 0; i < nf; i++)
		free(f[i].own);
	free(f);
	return rc;
}

/* envelope_edit - change sender, add and delete recipients. */
static int envelope_edit(struct session_milters *ms)
{
	struct smtp_session *s = ms->s;

	for (size_t i = 0; i < ms->nmods; i++) {
		const struct mmod *m = &ms->mods[i];
		char addr[SMTP_PATH_MAX];
		size_t n = strlen(m->a);

		/* "<a@b>" or "a@b" */
		if (n >= 2 && m->a[0] == '<' && m->a[n - 1] == '>')
			snprintf(addr, sizeof(addr), "%.*s", (int)(n - 2), m->a + 1);
		else
			snprintf(addr, sizeof(addr), "%s", m->a);
		if (m->cmd == SMFIR_CHGFROM) {
			snprintf(s->sender.addr, sizeof(s->sender.addr), "%s", addr);
		} else if (m->cmd == SMFIR_ADDRCPT || m->cmd == SMFIR_ADDRCPT_PAR) {
			if (s->nrcpt >= s->rcpt_cap || !(s->rcpt[s->nrcpt] = strdup(addr)))
				return -1;
			s->notify[s->nrcpt] = 0;	/* no DSN parameters: the defaults */
			s->dsn_orcpt[s->nrcpt] = NULL;
			s->orcpt[s->nrcpt++] = NULL;
		} else if (m->cmd == SMFIR_DELRCPT) {
			for (unsigned r = 0; r < s->nrcpt; r++) {
				if (strcasecmp(s->rcpt[r], addr) != 0)
					continue;
				free(s->rcpt[r]);
				free(s->orcpt[r]);
				free(s->dsn_orcpt[r]);
				memmove(s->rcpt + r, s->rcpt + r + 1, (s->nrcpt - r - 1) * sizeof(char *));
				memmove(s->orcpt + r, s->orcpt + r + 1, (s->nrcpt - r - 1) * sizeof(char *));
				memmove(s->dsn_orcpt + r, s->dsn_orcpt + r + 1,
					(s->nrcpt - r - 1) * sizeof(char *));
				memmove(s->notify + r, s->notify + r + 1,
					(s->nrcpt - r - 1) * sizeof(unsigned));
				s->nrcpt--;
				r--;
			}
		}
	}
	return 0;
}

/* message_write - the milters' changes: the envelope, and in edit mode the header. -1: no memory. */
static int message_write(struct session_milters *ms)
{
	if (envelope_edit(ms) != 0)
		return -1;
	if (!ms->edit) {
		for (size_t i = 0; i < ms->nmods; i++)
			if (ms->mods[i].cmd != SMFIR_CHGFROM && ms->mods[i].cmd != SMFIR_ADDRCPT &&
			    ms->mods[i].cmd != SMFIR_ADDRCPT_PAR && ms->mods[i].cmd != SMFIR_DELRCPT)
				return -1;	/* not negotiated, so never kept: cannot happen */
		return 0;
	}
	if (!ms->hdr_end)
		ms->hdr_end = ms->hdr_len;	/* all header, no body */
	return header_build(ms);
}

/* session_milter_header - see session_int.h. */
const char *session_milter_header(const struct smtp_session *s)
{
	return s->milters ? s->milters->prefix : NULL;
}

/* message_forget - what the message held goes. */
static void message_forget(struct session_milters *ms)
{
	for (size_t i = 0; i < ms->nmods; i++) {
		free(ms->mods[i].a);
		free(ms->mods[i].b);
	}
	ms->nmods = 0;
	free(ms->hdr);
	free(ms->body);
	free(ms->prefix);
	free(ms->field_name);
	free(ms->field_value);
	ms->hdr = ms->body = ms->prefix = ms->field_name = ms->field_value = NULL;
	ms->hdr_len = ms->hdr_end = ms->field_next = ms->body_len = 0;
	ms->separator = 0;
	ms->repl_link = 0;
	ms->repl_len = 0;
	ms->eoh = ms->header_too_big = ms->failed = ms->edit = ms->repl_broken = false;
	ms->quarantine = ms->body_stage = ms->discard = false;
	ms->in_message = false;
	/* The transaction ended while a link waited for the queue: it reads on. */
	session_milter_queue_resume(ms->s);
}

static void message_forget(struct session_milters *ms);

static void eom_done(struct session_milters *ms)
{
	struct smtp_session *s = ms->s;

	s->state = STATE_COMMAND;
	if (ms->verdict == MV_REJECT || ms->verdict == MV_TEMPFAIL) {
		reply_verdict(ms, NULL);
		session_reset_transaction(s);
		milter_resume(s, STATE_COMMAND);
		return;
	}
	if (ms->verdict == MV_DISCARD || ms->discard) {
		session_reply(s, 250, "2.0.0", "Ok: queued as %s", s->qid);
		milter_log_action(s, "milter-discard", "END-OF-MESSAGE", NULL,
				  "milter triggers DISCARD action");
		session_reset_transaction(s);
		milter_resume(s, STATE_COMMAND);
		return;
	}
	if (ms->edit && memchr(ms->hdr, '\0', ms->hdr_end ? ms->hdr_end : ms->hdr_len)) {
		/* RFC 5322 §2.2: no NUL in a header field; the edited header
		 * is stored as a string (queue.h header_prefix). */
		session_reply(s, 550, "5.6.0", "Error: NUL byte in the message header");
		session_reset_transaction(s);
		milter_resume(s, STATE_COMMAND);
		return;
	}
	if (message_write(ms) != 0) {
		session_reply(s, 451, "4.3.0", "Error: queue file write error");
		session_reset_transaction(s);
		milter_resume(s, STATE_COMMAND);
		return;
	}
	ms->in_message = false;	/* ended by EOM: no ABORT for it */
	if (ms->quarantine) {
		s->queue_flags |= QUEUE_FLAG_HELD;
		milter_log_action(s, "milter-hold", "END-OF-MESSAGE", NULL,
				  "milter triggers HOLD action: %s", ms->quarantine_reason);
	}
	session_commit(s);
	/* Refused at once (no memory, no queue file): the 451 is given,
	 * and the session must read on, as after any other EOM reply. */
	if (s->state == STATE_COMMAND)
		milter_resume(s, STATE_COMMAND);
}

/* session_milter_eom - see session_int.h. */
void session_milter_eom(struct smtp_session *s)
{
	struct session_milters *ms = s->milters;

	if (!ms->hdr) {
		session_commit(s);	/* no DATA stage ran: nothing to ask */
		return;
	}
	s->state = STATE_MILTER_EOM;
	s->paused_by_milter = false;	/* the state holds the input now */
	uv_timer_stop(&s->timer);
	s->io.pause(s->io.ctx, true);
	if (ms->failed || ms->header_too_big) {
		s->state = STATE_COMMAND;
		session_reply(s, 552, "5.3.4", "Error: message header too big for the content filters");
		session_reset_transaction(s);
		milter_resume(s, STATE_COMMAND);
		return;
	}
	if (!ms->hdr_end && !ms->running) {
		/* All header, no empty line: the header is whole now. */
		ms->hdr_end = ms->hdr_len;
		if (!ms->edit && session_queue_write(s, ms->hdr, ms->hdr_end) < 0) {
			ms->failed = true;
			return session_milter_eom(s);
		}
		header_next(ms);
		return;
	}
	if (ms->running || ms->body_stage || !ms->eoh)
		return;	/* body_pump comes back here */
	if (ms->verdict != MV_CONTINUE)
		return eom_done(ms);
	if (ms->body_len > 0) {
		/* The last, short chunk. */
		ms->chunk = ms->body;
		ms->chunk_len = ms->body_len;
		ms->body_stage = true;
		stage_begin(ms, MS_BODY, body_chunk_done);
		return;
	}
	stage_begin(ms, MS_EOM, eom_done);
}

/* session_milter_abort - see session_int.h. */
void session_milter_abort(struct smtp_session *s)
{
	struct session_milters *ms = s->milters;
	unsigned char mem[8];
	struct milter_buf b;

	if (!ms)
		return;
	free((char *)ms->rcpt);
	ms->rcpt = NULL;
	if (ms->in_message) {
		/* The milters forget the message (and keep the connection). */
		for (size_t i = 0; i < ms->n; i++) {
			if (ms->link[i].state != L_READY)
				continue;
			milter_buf_init(&b, mem, sizeof(mem));
			milter_put_packet(&b, SMFIC_ABORT, NULL, 0);
			if (link_send(&ms->link[i], &b) != 0)
				link_fail(&ms->link[i], "cannot write");
		}
	}
	message_forget(ms);
	s->queue_flags = 0;
	if (s->paused_by_milter) {
		s->paused_by_milter = false;
		if (!s->transport_gone)
			s->io.pause(s->io.ctx, false);
	}
}

/* session_milter_stop - see session_int.h. */
void session_milter_stop(struct smtp_session *s)
{
	struct session_milters *ms = s->milters;

	if (!ms)
		return;
	session_milter_abort(s);
	ms->running = false;
	ms->s = NULL;
	s->milters = NULL;
	for (size_t i = 0; i < ms->n; i++)
		link_close(&ms->link[i], true);
	if (ms->open_handles == 0)
		free(ms);
}
