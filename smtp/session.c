/*
 * session.c - the SMTP server session: input buffering, pipelining,
 * the DATA phase and BDAT chunks, the queue commit, timeouts and the
 * session's lifetime.
 *
 * RFC 5321 (session), RFC 2920 (PIPELINING: every complete command in
 * the buffer is processed in order, replies are gathered and flushed
 * before waiting for input or for the queue), RFC 3461 §4 (longer MAIL
 * and RCPT lines for DSN's parameters, which the envelope keeps), RFC
 * 3030 (CHUNKING: a chunk is read by its count and never parsed, also
 * when refused, so no chunk byte is ever taken for a command; BDAT LAST
 * ends the message through the same session_end_data as DATA's final
 * dot).
 *
 * This file must not block: the slow steps, signing a message (DKIM,
 * on libuv's thread pool, session_dkim.c) and making it durable (the
 * queue's writer thread), are handed off and the session waits in
 * STATE_COMMIT until their callbacks. It never touches a socket; bytes
 * come in through smtp_session_received() and leave through struct smtp_io.
 * The commands themselves live in verbs.c; this file gives them their
 * primitives (reply, close, resume, timers) and calls up only at the
 * edges of a session's life (see session_int.h).
 *
 * Memory: a session holds its 16 KB input buffer only while input waits
 * in it (a partial command, pipelined commands, body bytes) and its reply
 * buffer only while replies gather; both come from and go back to the
 * server's small spare lists. An idle connection holds neither.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "local/local.h"
#include "dkim/dkim.h"
#include "smtp/session_int.h"

static void session_process(struct smtp_session *s);

/* ---- buffers lent to sessions while they hold bytes ---- */

/* A spare buffer's first bytes link it to the next. */
struct smtp_spare_buf {
	struct smtp_spare_buf *next;
};

/* spare_take - a buffer of size bytes from the spares, else malloc; NULL when out of memory. */
static void *spare_take(struct smtp_spare *sp, size_t size)
{
	struct smtp_spare_buf *b = sp->first;

	if (!b)
		return malloc(size);
	sp->first = b->next;
	sp->count--;
	return b;
}

/* spare_give - a buffer back to the spares, or freed when there are enough. */
static void spare_give(struct smtp_spare *sp, void *buf)
{
	struct smtp_spare_buf *b = buf;

	if (!b)
		return;
	if (sp->count >= SMTP_SPARE_MAX) {
		free(b);
		return;
	}
	b->next = sp->first;
	sp->first = b;
	sp->count++;
}

/* spare_drain - frees every spare buffer. */
static void spare_drain(struct smtp_spare *sp)
{
	while (sp->first) {
		struct smtp_spare_buf *b = sp->first;

		sp->first = b->next;
		free(b);
	}
	sp->count = 0;
}

/*
 * session_input_release - an empty input buffer goes back to the server,
 * unless session_process is using it (the command line being run points
 * into it).
 */
static void session_input_release(struct smtp_session *s)
{
	if (!s->in || s->inlen > 0 || s->processing)
		return;
	spare_give(&s->srv->spare_in, s->in);
	s->in = NULL;
}

/* session_output_release - the reply buffer goes back once its replies are sent. */
static void session_output_release(struct smtp_session *s)
{
	s->outlen = 0;
	spare_give(&s->srv->spare_out, s->out);
	s->out = NULL;
}

/* smtp_shared_init - see smtp.h. */
int smtp_shared_init(struct smtp_shared *sh, const struct mtad_config *cfg)
{
	memset(sh, 0, sizeof(*sh));
	atomic_init(&sh->spool_free, POLICY_SPACE_UNKNOWN);
	atomic_init(&sh->messages, 0);
	if (uv_mutex_init(&sh->lock) != 0)
		return -1;
	/* Bounded: a spray of addresses cannot grow the table without limit. */
	sh->auth_limit = auth_limiter_new(cfg->auth_ip_max_failures, cfg->auth_ip_window, 65536);
	/* One entry per login that sent (and per trusted address): bounded. */
	sh->quota = policy_quota_new(SMTP_QUOTA_KEYS);
	if (!sh->auth_limit || !sh->quota) {
		if (sh->auth_limit)
			auth_limiter_free(sh->auth_limit);
		policy_quota_free(sh->quota);
		sh->auth_limit = NULL;
		sh->quota = NULL;
		uv_mutex_destroy(&sh->lock);
		return -1;
	}
	return 0;
}

/* smtp_shared_fini - after every loop's last session. */
void smtp_shared_fini(struct smtp_shared *sh)
{
	if (!sh->auth_limit)
		return;
	auth_limiter_free(sh->auth_limit);
	sh->auth_limit = NULL;
	policy_sender_map_free(sh->sender_map);
	sh->sender_map = NULL;
	policy_quota_free(sh->quota);
	sh->quota = NULL;
	dkim_keys_unref(sh->dkim);
	sh->dkim = NULL;
	free(sh->auth_block);
	sh->auth_block = NULL;
	policy_limit_map_free(sh->limit_map);
	sh->limit_map = NULL;
	local_aliases_free(sh->aliases);
	sh->aliases = NULL;
	policy_rcpt_map_free(sh->rcpt_map);
	sh->rcpt_map = NULL;
	uv_mutex_destroy(&sh->lock);
}

/* smtp_server_init - state for all sessions of one loop. */
int smtp_server_init(struct smtp_server *srv, uv_loop_t *loop,
		     const struct mtad_config *cfg, const struct smtp_server_deps *deps)
{
	memset(srv, 0, sizeof(*srv));
	srv->loop = loop;
	srv->cfg = cfg;
	srv->queue = deps->queue;
	srv->port = deps->port;
	srv->shared = deps->shared;
	srv->auth = deps->auth;
	srv->dns = deps->dns;
	queue_id_lane(&srv->ids, deps->lane, deps->lanes);
	smtp_server_policy_update(srv);
	/* Normalizing, a bare LF decodes to two bytes (smtp.h). */
	srv->scratch = malloc(SMTP_DATA_OUT_MAX(SMTP_READ_SIZE));
	if (!srv->scratch)
		return -1;
	return 0;
}

/* smtp_server_fini - releases what smtp_server_init took (after the last session). */
void smtp_server_fini(struct smtp_server *srv)
{
	spare_drain(&srv->spare_in);
	spare_drain(&srv->spare_out);
	free(srv->scratch);
	srv->scratch = NULL;
}

/* session_timeout - the client said nothing for too long. */
static void session_timeout(uv_timer_t *timer)
{
	struct smtp_session *s = timer->data;

	if (s->state != STATE_COMMAND && s->state != STATE_DATA && s->state != STATE_AUTH_INPUT)
		return;
	session_log(s, MTAD_LOG_INFO, "timeout after %s from %s",
		    s->bdat_open || s->chunking ? "BDAT" : s->state == STATE_DATA ? "DATA" : "command",
		    s->client_label);
	session_reply(s, 421, "4.4.2", "%s Error: timeout exceeded",
		      s->srv->cfg->hostname);
	session_close(s);
}

/* session_arm_timer - (re)starts the idle timer for the current state. */
static void session_arm_timer(struct smtp_session *s)
{
	/* A chunk being read, even one being dropped, is data. */
	unsigned secs = s->state == STATE_DATA || s->bdat_open ? s->srv->cfg->data_timeout
							       : s->srv->cfg->command_timeout;

	if (uv_timer_start(&s->timer, session_timeout, (uint64_t)secs * 1000, 0) != 0)
		session_log(s, MTAD_LOG_WARNING, "cannot start timer for [%s]", s->client_ip);
}

/*
 * session_set_timer - the session's one timer, ms from now, calling done
 * (the AUTH failure delay: verb_auth.c's own callback, so that the idle
 * timeout here never calls up into it).
 */
int session_set_timer(struct smtp_session *s, uint64_t ms, uv_timer_cb done)
{
	return uv_timer_start(&s->timer, done, ms, 0);
}

/*
 * session_service - the program name of a listener's lines, as Postfix's
 * master.cf names them: smtps (port 465) and submission (587) are smtpd
 * under another name, which pflogsumm and fail2ban's filter both read.
 */
static enum mtad_log_service session_service(const struct mtad_listen *lcfg)
{
	if (lcfg->local)
		return MTAD_SVC_PICKUP;
	if (lcfg->tls == MTAD_TLS_IMPLICIT)
		return MTAD_SVC_SMTPS;
	return lcfg->submission ? MTAD_SVC_SUBMISSION : MTAD_SVC_SMTPD;
}

/* smtp_session_new - a session for a freshly accepted connection. */
struct smtp_session *smtp_session_new(struct smtp_server *srv, const struct smtp_io *io,
				      const char *client_ip, const char *listener,
				      const struct mtad_listen *lcfg, long uid)
{
	struct smtp_session *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->rcpt_cap = srv->cfg->max_recipients;
	s->rcpt = calloc(s->rcpt_cap, sizeof(*s->rcpt));
	s->orcpt = calloc(s->rcpt_cap, sizeof(*s->orcpt));
	s->notify = calloc(s->rcpt_cap, sizeof(*s->notify));
	s->dsn_orcpt = calloc(s->rcpt_cap, sizeof(*s->dsn_orcpt));
	if (!s->rcpt || !s->orcpt || !s->notify || !s->dsn_orcpt ||
	    uv_timer_init(srv->loop, &s->timer) != 0) {
		free(s->rcpt);
		free(s->orcpt);
		free(s->notify);
		free(s->dsn_orcpt);
		free(s);
		return NULL;
	}
	s->timer.data = s;
	s->srv = srv;
	s->io = *io;
	s->state = STATE_COMMAND;
	snprintf(s->client_ip, sizeof(s->client_ip), "%s", client_ip);
	snprintf(s->listener, sizeof(s->listener), "%s", listener);
	s->tls_mode = lcfg->tls;
	s->submission = lcfg->submission;
	s->auth_plaintext = lcfg->auth_plaintext;
	s->helo_reject_ehlo = lcfg->helo_reject_ehlo;
	s->local_uid = lcfg->local ? uid : -1;
	s->log_svc = session_service(lcfg);
	session_policy_start(s);
	/* Postfix's line; " to LISTENER" is ours (its readers stop before it). */
	session_log(s, MTAD_LOG_INFO, "connect from %s to %s", s->client_label, s->listener);
	return s;
}

/* session_greet - the 220 greeting, and the command timer starts. */
void session_greet(struct smtp_session *s)
{
	char line[SMTP_COMMAND_MAX];
	int n = snprintf(line, sizeof(line), "220 %s ESMTP mtad\r\n",
			 s->srv->cfg->hostname);

	session_reply_raw(s, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	session_flush(s);
	session_arm_timer(s);
}

/*
 * smtp_session_start - greets the client; while its reverse name is
 * still being looked up the greeting waits for it (as Postfix's does),
 * so the name is in every log line and Received: header of the session.
 */
void smtp_session_start(struct smtp_session *s)
{
	if (s->rdns_pending) {
		s->greet_pending = true;
		s->state = STATE_POLICY_WAIT;
		s->io.pause(s->io.ctx, true);
		return;
	}
	session_greet(s);
}

/* session_reply_raw - appends preformatted reply text to the output. */
void session_reply_raw(struct smtp_session *s, const char *text, size_t len)
{
	if (s->state == STATE_CLOSING)
		return;
	if (s->outlen + len > SESSION_OUT_SIZE)
		session_flush(s);
	if (!s->out && len <= SESSION_OUT_SIZE)
		s->out = spare_take(&s->srv->spare_out, SESSION_OUT_SIZE);
	if (!s->out || len > SESSION_OUT_SIZE) {
		/* Too long to gather, or no memory to gather it in: sent on
		 * its own (send copies), after what was gathered before. */
		s->io.send(s->io.ctx, text, len);
		return;
	}
	memcpy(s->out + s->outlen, text, len);
	s->outlen += len;
}

/*
 * session_reply - appends one reply line. Every 4xx/5xx counts as an
 * error for max_errors (RFC 5321 §4.3.2: a server may close after too
 * many).
 */
void session_reply(struct smtp_session *s, int code, const char *enhanced,
		   const char *fmt, ...)
{
	char text[SMTP_COMMAND_MAX];
	char line[SMTP_COMMAND_MAX];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	n = smtp_reply_format(line, sizeof(line), code, enhanced, text);
	session_reply_raw(s, line, n);
	if (code >= 400)
		s->errors++;
}

/* session_flush - hands the gathered replies to the transport (which copies them). */
void session_flush(struct smtp_session *s)
{
	if (s->outlen > 0)
		s->io.send(s->io.ctx, s->out, s->outlen);
	session_output_release(s);
}

/* session_close - flush and let the transport close the connection. */
void session_close(struct smtp_session *s)
{
	if (s->state == STATE_CLOSING)
		return;
	session_flush(s);
	s->state = STATE_CLOSING;
	uv_timer_stop(&s->timer);
	s->io.close(s->io.ctx);
}

/* session_log_reject - see session_int.h: one line per refused command, as Postfix does. */
void session_log_reject(struct smtp_session *s, const char *verb, const char *rcpt,
			const char *extra, const char *fmt, ...)
{
	char reason[SMTP_COMMAND_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	/* s->sender is cleared at each MAIL and between transactions, so it
	 * is the sender this command belongs to, or "". */
	session_log(s, MTAD_LOG_INFO, "%s: reject: %s from %s: %s; from=<%s>%s%s%s proto=%s "
		    "helo=<%s>%s%s", s->qid[0] ? s->qid : "NOQUEUE", verb, s->client_label, reason,
		    s->sender.addr, rcpt ? " to=<" : "", rcpt ? rcpt : "", rcpt ? ">" : "",
		    s->esmtp ? "ESMTP" : "SMTP", s->helo, extra ? " " : "", extra ? extra : "");
}

/*
 * session_queue_release - the message is committed or aborted: the queue
 * owes no resume any more (queue_incoming_write's "wait" ends with the
 * message), so a pause for it ends here. Without this a message whose
 * final dot arrived in the same read as the chunk that filled the
 * writer's window got its reply, and then its session read nothing more.
 */
static void session_queue_release(struct smtp_session *s)
{
	if (!s->paused_by_queue)
		return;
	s->paused_by_queue = false;
	if (!s->transport_gone)
		s->io.pause(s->io.ctx, false);
}

/* session_reset_transaction - forgets sender, recipients and any message in progress. */
void session_reset_transaction(struct smtp_session *s)
{
	for (unsigned i = 0; i < s->nrcpt; i++) {
		free(s->rcpt[i]);
		free(s->orcpt[i]);
		free(s->dsn_orcpt[i]);
		s->rcpt[i] = s->orcpt[i] = s->dsn_orcpt[i] = NULL;
		s->notify[i] = 0;
	}
	s->nrcpt = 0;
	s->in_transaction = false;
	s->chunking = false;	/* not bdat_open: a chunk being dropped is still read */
	s->rcpt_tried = false;
	memset(&s->sender, 0, sizeof(s->sender));
	memset(&s->params, 0, sizeof(s->params));
	if (s->incoming) {
		queue_incoming_abort(s->incoming);
		s->incoming = NULL;
		session_queue_release(s);
	}
	s->qid[0] = '\0';
	s->header_size = 0;
	session_sender_stop(s);
	session_submit_stop(s);
	session_dkim_stop(s);
	session_milter_abort(s);
	s->queue_flags = 0;
	s->queue_body_only = false;
	s->body_8bit = false;
}

/* session_queue_resume - the queue took our body chunks: read on. */
static void session_queue_resume(void *arg)
{
	struct smtp_session *s = arg;

	if (!s->paused_by_queue)
		return;
	if (s->state == STATE_MILTER_EOM) {
		/* A milter's replacement body is being written: its link
		 * reads on; the client waits for the reply, still paused. */
		s->paused_by_queue = false;
		session_milter_queue_resume(s);
		return;
	}
	session_queue_release(s);
	if (!s->transport_gone)
		session_process(s);
}

/* session_queue_restart - see session_int.h. */
int session_queue_restart(struct smtp_session *s)
{
	if (s->incoming) {
		queue_incoming_abort(s->incoming);
		s->incoming = NULL;
	}
	s->paused_by_queue = false;	/* the old file owes no resume (queue.h) */
	s->incoming = queue_incoming_new(s->srv->port, s->qid, session_queue_resume, s);
	if (s->incoming == NULL)
		return -1;
	return session_dkim_restart(s);
}

/* session_write_body - see session_int.h. */
int session_write_body(struct smtp_session *s, const char *data, size_t len)
{
	if (s->milters)
		return session_milter_write(s, data, len);
	return session_queue_write(s, data, len);
}

/* session_queue_write - see session_int.h. */
int session_queue_write(struct smtp_session *s, const char *data, size_t len)
{
	int r = queue_incoming_write(s->incoming, data, len);

	if (r < 0)
		return -1;
	/* 8-bit content is 8BITMIME content, declared or not (as Postfix's
	 * cleanup sees it): delivery then says BODY=8BITMIME or converts. */
	if (!s->body_8bit && !mtad_ascii(data, len))
		s->body_8bit = true;
	session_dkim_feed(s, data, len);
	if (r == 1) {
		s->paused_by_queue = true;
		s->io.pause(s->io.ctx, true);
	}
	return 0;
}

/* session_protocol - RFC 3848 names: ESMTP, plus S for TLS and A for AUTH. */
const char *session_protocol(const struct smtp_session *s)
{
	static const char *const names[] = { "ESMTP", "ESMTPA", "ESMTPS", "ESMTPSA" };

	if (!s->esmtp)
		return "SMTP";
	return names[(s->tls_active ? 2 : 0) + (s->auth_user[0] ? 1 : 0)];
}

/*
 * received_header - the RFC 5321 §4.4 trace header. The client's name is
 * its forward-confirmed reverse name (session_policy.c looks it up before
 * the greeting), or "unknown" without one, as Postfix writes it. The
 * authenticated user is not written: it is kept in the queue and the
 * log, not shown to every recipient.
 */
static int received_header(struct smtp_session *s, char *buf, size_t size)
{
	char date[64], tls[sizeof(s->tls_info) + 16] = "";
	struct tm tm;
	time_t now = (time_t)s->arrival_sec;
	int n;

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	if (s->local_uid >= 0) {
		/* Postfix's form for its pickup: no client, the submitting uid. */
		n = snprintf(buf, size, "Received: by %s (mtad, from userid %ld)\r\n"
			     "\tid %s; %s\r\n", s->srv->cfg->hostname, s->local_uid, s->qid, date);
		return n > 0 && (size_t)n < size ? n : -1;
	}
	if (s->tls_active)
		snprintf(tls, sizeof(tls), "\t(using %s)\r\n", s->tls_info);
	n = snprintf(buf, size,
		     "Received: from %s (%s [%s])\r\n"
		     "%s"
		     "\tby %s (mtad) with %s id %s%s\r\n",
		     s->helo, s->client_name, s->client_ip, tls, s->srv->cfg->hostname,
		     session_protocol(s), s->qid, s->nrcpt == 1 ? "" : ";");
	if (n > 0 && (size_t)n < size && s->nrcpt == 1)
		n += snprintf(buf + n, size - (size_t)n, "\tfor <%s>; %s\r\n", s->rcpt[0], date);
	else if (n > 0 && (size_t)n < size)
		n += snprintf(buf + n, size - (size_t)n, "\t%s\r\n", date);
	return n > 0 && (size_t)n < size ? n : -1;
}

/* session_start_data - after 354: a queue id, a queue handle, the trace header. */
void session_start_data(struct smtp_session *s)
{
	char header[2048];
	struct timeval tv;
	int n;

	gettimeofday(&tv, NULL);
	s->arrival_sec = tv.tv_sec;
	s->arrival_usec = (int32_t)tv.tv_usec;
	queue_id_next(&s->srv->ids, tv.tv_sec, (int32_t)tv.tv_usec, s->qid);
	s->incoming = queue_incoming_new(s->srv->port, s->qid, session_queue_resume, s);
	n = received_header(s, header, sizeof(header));
	if (session_dkim_start(s) != 0) {
		session_reply(s, 451, "4.3.0", "Error: out of memory");
		session_reset_transaction(s);
		return;
	}
	if (!s->incoming || n < 0 || session_write_body(s, header, (size_t)n) < 0) {
		session_reply(s, 451, "4.3.0", "Error: queue file write error");
		session_reset_transaction(s);
		return;
	}
	s->header_size = (uint64_t)n;
	if (session_submit_start(s) != 0 || session_sender_data(s) != 0) {
		session_reply(s, 451, "4.3.0", "Error: out of memory");
		session_reset_transaction(s);
		return;
	}
	smtp_data_init(&s->dec, s->srv->cfg->message_size_limit);
	if (strcmp(s->srv->cfg->bare_newline, "normalize") == 0)
		smtp_data_normalize(&s->dec);
	s->state = STATE_DATA;
	if (s->bdat_open)
		s->chunking = true;	/* the first chunk is read now: no 354 */
	else
		session_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
	if (s->local_uid >= 0)
		session_log(s, MTAD_LOG_INFO, "%s: uid=%ld from=<%s>", s->qid, s->local_uid,
			    s->sender.addr);
	else if (s->auth_user[0])
		session_log(s, MTAD_LOG_INFO, "%s: client=%s, sasl_method=%s, sasl_username=%s",
			    s->qid, s->client_label, s->auth_mech, s->auth_user);
	else
		session_log(s, MTAD_LOG_INFO, "%s: client=%s", s->qid, s->client_label);
}

/*
 * session_space_used - a committed message takes its size in the log
 * and again in body.db once its pages are written, and its last chunk
 * a whole 64 KB page there (measured: 4000 messages of 20 KB took 94 MB
 * of log and 245 MB of body.db, ~85 KB each; this estimates 104 KB):
 * taken off the measured free space at once, so a burst of messages
 * within one measuring interval cannot run far past the reserve. The
 * next measure corrects it either way.
 */
static void session_space_used(struct smtp_shared *sh, uint64_t size)
{
	uint64_t used = size > UINT64_MAX / SMTP_SPACE_FACTOR - SMTP_SPACE_PER_MESSAGE
				? UINT64_MAX : size * SMTP_SPACE_FACTOR + SMTP_SPACE_PER_MESSAGE;
	uint64_t free_now = atomic_load(&sh->spool_free), left;

	/* Every loop's sessions take from the one figure: compare and swap. */
	do {
		if (free_now == POLICY_SPACE_UNKNOWN)
			return;
		left = free_now > used ? free_now - used : 0;
	} while (!atomic_compare_exchange_weak(&sh->spool_free, &free_now, left));
}

/* log_message_id - Postfix's cleanup line, to find a message by its Message-ID:. */
static void log_message_id(const struct smtp_session *s)
{
	const char *id;
	size_t n = smtp_header_message_id(&s->fields, &id);

	if (n == 0)
		mtad_log_svc(MTAD_SVC_CLEANUP, MTAD_LOG_INFO, "%s: message-id=<>", s->qid);
	else
		mtad_log_svc(MTAD_SVC_CLEANUP, MTAD_LOG_INFO, "%s: message-id=%.*s", s->qid,
			     (int)n, id);
}

/* session_commit_done - the queue says whether the message is durable. */
static void session_commit_done(void *arg, int status, const char *errmsg)
{
	struct smtp_session *s = arg;

	if (s->transport_gone && status == 0)
		session_log(s, MTAD_LOG_INFO, "%s: queued, but the client left before the reply", s->qid);
	if (session_free_if_gone(s))
		return;
	if (status == 0) {
		atomic_fetch_add(&s->srv->shared->messages, 1);
		session_sender_committed(s);
		session_space_used(s->srv->shared, s->dec.size + s->header_size);
		log_message_id(s);
		session_log(s, MTAD_LOG_INFO, "%s: from=<%s>, size=%llu, nrcpt=%u, client=[%s], helo=<%s>",
			    s->qid, s->sender.addr,
			    (unsigned long long)(s->dec.size + s->header_size), s->nrcpt,
			    s->client_ip, s->helo);
		session_reply(s, 250, "2.0.0", "Ok: queued as %s", s->qid);
		session_policy_accepted(s);
	} else {
		session_log(s, MTAD_LOG_WARNING, "%s: queue commit failed: %s", s->qid,
			    errmsg ? errmsg : "unknown error");
		/* A full spool is RFC 5321's "insufficient system storage"
		 * (452, allowed after DATA) and RFC 3463's X.3.1 "mail system
		 * full": the client knows to retry later, maybe elsewhere
		 * (t/80-disk-full.t). Any other failure is a local error. */
		if (status == ENOSPC)
			session_reply(s, 452, "4.3.1", "Error: insufficient system storage");
		else if (status == QUEUE_UNREPLICATED)
			/* replication_ack: no second copy, so no promise. */
			session_reply(s, 451, "4.3.0", "Error: the message could not be replicated, "
				      "try again later");
		else
			session_reply(s, 451, "4.3.0", "Error: queue file write error");
	}
	session_reset_transaction(s);
	session_resume(s, STATE_COMMAND);
}

/*
 * session_free_if_gone - after an asynchronous step: when the transport
 * went away meanwhile, the session ends here. Returns true if it did.
 */
bool session_free_if_gone(struct smtp_session *s)
{
	if (!s->transport_gone)
		return false;
	s->state = STATE_CLOSING;
	smtp_session_free(s);
	return true;
}

/* session_resume - back to reading input (in state next) after an asynchronous step. */
void session_resume(struct smtp_session *s, enum session_state next)
{
	s->state = next;
	if (s->srv->stopping) {
		smtp_session_shutdown(s);
		return;
	}
	s->io.pause(s->io.ctx, false);
	session_arm_timer(s);
	session_process(s);
	if (s->eof_pending && s->state != STATE_COMMIT && s->state != STATE_AUTH_WAIT &&
	    s->state != STATE_CLOSING) {
		s->eof_pending = false;
		smtp_session_eof(s, NULL);
	}
}

/* session_fill_envelope - the envelope record for the message just received. */
static void session_fill_envelope(struct smtp_session *s, struct queue_envelope *env,
				  struct queue_rcpt *rcpt)
{
	memset(env, 0, sizeof(*env));
	env->version = QUEUE_RECORD_VERSION;
	memcpy(env->qid, s->qid, sizeof(env->qid));
	env->arrival = s->arrival_sec;
	env->arrival_usec = s->arrival_usec;
	env->sender = s->sender.addr;
	for (unsigned i = 0; i < s->nrcpt; i++)
		rcpt[i] = (struct queue_rcpt){ .addr = s->rcpt[i], .orcpt = s->orcpt[i],
					       .state = QUEUE_RCPT_PENDING,
					       .notify = s->notify[i], .dsn_orcpt = s->dsn_orcpt[i] };
	env->rcpt = rcpt;
	env->nrcpt = s->nrcpt;
	env->client_ip = s->client_ip;
	env->client_name = s->client_name;
	env->helo = s->helo;
	env->listener = s->listener;
	env->protocol = (char *)session_protocol(s);
	env->auth_user = s->auth_user[0] ? s->auth_user : NULL;
	env->size = s->dec.size + s->header_size;
	env->flags = s->queue_flags;
	/* What delivery must know of the MAIL (RFC 6531 §3.2, RFC 6152). */
	if (s->params.smtputf8)
		env->flags |= QUEUE_FLAG_SMTPUTF8;
	if (s->params.body == SMTP_BODY_8BITMIME || s->body_8bit)
		env->flags |= QUEUE_FLAG_8BITMIME;
	/* DSN (RFC 3461): the queue's values are smtp.h's. */
	_Static_assert(QUEUE_RET_FULL == SMTP_RET_FULL && QUEUE_RET_HDRS == SMTP_RET_HDRS &&
		       QUEUE_NOTIFY_NEVER == SMTP_NOTIFY_NEVER &&
		       QUEUE_NOTIFY_SUCCESS == SMTP_NOTIFY_SUCCESS &&
		       QUEUE_NOTIFY_FAILURE == SMTP_NOTIFY_FAILURE &&
		       QUEUE_NOTIFY_DELAY == SMTP_NOTIFY_DELAY, "DSN values differ");
	env->dsn_ret = (uint32_t)s->params.ret;
	env->envid = s->params.has_envid ? s->params.envid : NULL;
}

/*
 * session_header_prefix - what goes in front of the stored bytes: the
 * DKIM-Signature fields (*prefix, from the signer) and, when the queue
 * got the body alone, the header section as the milters left it.
 */
static int session_header_prefix(struct smtp_session *s, char **prefix)
{
	const char *header = session_milter_header(s);
	size_t a = *prefix ? strlen(*prefix) : 0, b;
	char *p;

	if (header == NULL)
		return 0;
	b = strlen(header);
	if ((p = malloc(a + b + 1)) == NULL)
		return -1;
	if (a)
		memcpy(p, *prefix, a);
	memcpy(p + a, header, b + 1);
	free(*prefix);
	*prefix = p;
	return 0;
}

/* session_commit - hands the complete message to the queue's writer. */
void session_commit(struct smtp_session *s)
{
	struct queue_envelope env;
	struct queue_rcpt *rcpt;
	struct queue_incoming *in = s->incoming;
	char *signature = NULL;

	if (session_dkim_sign(s)) {
		/* Signed off the loop: session_dkim.c calls here again with
		 * the signature. Input waits as for the queue, below. */
		s->state = STATE_COMMIT;
		uv_timer_stop(&s->timer);
		return;
	}
	rcpt = calloc(s->nrcpt, sizeof(*rcpt));
	if (!rcpt || session_dkim_finish(s, &signature) != 0) {
		free(rcpt);
		session_reply(s, 451, "4.3.0", "Error: %s", rcpt ? "cannot sign the message" :
			      "out of memory");
		session_reset_transaction(s);
		s->state = STATE_COMMAND;
		return;
	}
	session_fill_envelope(s, &env, rcpt);
	if (session_header_prefix(s, &signature) != 0) {
		free(signature);
		free(rcpt);
		session_reply(s, 451, "4.3.0", "Error: out of memory");
		session_reset_transaction(s);
		s->state = STATE_COMMAND;
		return;
	}
	env.header_prefix = signature;	/* in front of the body when read (queue.h) */
	if (signature && !(env.flags & QUEUE_FLAG_8BITMIME) && !mtad_ascii(signature, strlen(signature)))
		env.flags |= QUEUE_FLAG_8BITMIME;	/* a milter's header, stored apart */
	s->incoming = NULL;	/* consumed by the commit, whatever happens */
	/*
	 * Reading goes on while the writer commits: what arrives waits in
	 * the input buffer (session_process runs nothing in STATE_COMMIT, a
	 * full buffer pauses the transport). Stopping and restarting the
	 * read would cost two epoll_ctl calls per message.
	 */
	s->state = STATE_COMMIT;
	uv_timer_stop(&s->timer);
	session_queue_release(s);	/* the commit's callback is the only resume now */
	if (queue_incoming_commit(in, &env, session_commit_done, s) != 0) {
		s->state = STATE_COMMAND;
		session_reply(s, 451, "4.3.0", "Error: queue file write error");
		session_reset_transaction(s);
	}
	free(signature);
	free(rcpt);
}

/*
 * session_end_data - the end marker was seen: refuse or commit. A body
 * that broke a rule was read to its end, so the client's next command
 * is understood; nothing of it is kept.
 */
static void session_end_data(struct smtp_session *s)
{
	const char *reason = NULL;

	if (s->dec.too_big) {
		session_reply(s, 552, "5.3.4", "Error: message file too big");
		reason = "552 5.3.4 Error: message file too big";
	} else if (!s->chunking && !s->dec.normalize && (s->dec.bare_lf || s->dec.bare_cr)) {
		session_reply(s, 550, "5.6.0",
			      "Error: bare <CR> or <LF> in message; lines must end with <CR><LF>");
		reason = "550 5.6.0 bare <CR> or <LF> in message";
	}
	if (!reason && s->dec.bare_lf_count > 0 && !s->chunking) {
		/* Postfix's words for it, with the count of this message. */
		s->note_bare_lf = true;
		session_log(s, MTAD_LOG_INFO, "%s: bare <LF> received from %s: %llu normalized, "
			    "%llu \".\" line(s) dropped", s->qid, s->client_label,
			    (unsigned long long)s->dec.bare_lf_count,
			    (unsigned long long)s->dec.dropped_dots);
	}
	if (reason) {
		session_log_reject(s, "END-OF-MESSAGE", NULL, NULL, "%s", reason);
		session_reset_transaction(s);
		s->state = STATE_COMMAND;
		return;
	}
	if (!session_sender_end(s)) {
		/* From: names an address the login does not own: 553 given. */
		session_reset_transaction(s);
		s->state = STATE_COMMAND;
		return;
	}
	/* A submission that is all header (no empty line): it ends here. */
	if (session_submit_end(s) < 0) {
		session_reply(s, 451, "4.3.0", "Error: queue file write error");
		session_reset_transaction(s);
		s->state = STATE_COMMAND;
		return;
	}
	if (s->milters)
		session_milter_eom(s);	/* the milters' verdict first; it commits */
	else
		session_commit(s);
}

/*
 * session_data_step - decodes what is buffered of the body. Returns
 * false when processing must wait (more input, or the queue).
 */
static bool session_data_step(struct smtp_session *s)
{
	size_t outlen = 0, used;
	bool keep;

	if (s->inlen == 0)
		return false;	/* and s->in may be NULL */
	used = smtp_data_decode(&s->dec, s->in, s->inlen, s->srv->scratch, &outlen);
	keep = !s->dec.too_big && (s->dec.normalize || (!s->dec.bare_lf && !s->dec.bare_cr));
	memmove(s->in, s->in + used, s->inlen - used);
	s->inlen -= used;
	if (keep && outlen > 0)
		session_sender_feed(s, s->srv->scratch, outlen);
	if (keep && outlen > 0 && session_submit_write(s, s->srv->scratch, outlen) < 0) {
		/* Out of memory: give up on this message but read its end. */
		s->dec.too_big = true;
	}
	if (s->dec.done) {
		session_end_data(s);
		return s->state == STATE_COMMAND;
	}
	if (s->paused_by_milter)
		return false;
	return false;
}

/* session_bdat_refuse - see session_int.h. */
void session_bdat_refuse(struct smtp_session *s, int code, const char *enhanced,
			 const char *text)
{
	s->bdat_code = code;
	snprintf(s->bdat_enhanced, sizeof(s->bdat_enhanced), "%s", enhanced);
	snprintf(s->bdat_text, sizeof(s->bdat_text), "%s", text);
}

/* session_bdat_begin - see session_int.h. */
void session_bdat_begin(struct smtp_session *s)
{
	s->state = STATE_DATA;
}

/*
 * session_bdat_dropped - a refused chunk is read: its reply. A refused
 * non-LAST chunk fails the message, and the chunks the client has
 * pipelined after it are dropped too (551) until its BDAT LAST.
 */
static void session_bdat_dropped(struct smtp_session *s)
{
	bool failed = s->in_transaction || s->bdat_failed;

	if (s->bdat_code) {
		session_reply(s, s->bdat_code, s->bdat_enhanced, "%s", s->bdat_text);
		s->bdat_code = 0;
	}
	s->bdat_failed = failed && !s->bdat_last;
	if (s->in_transaction)
		session_reset_transaction(s);
}

/*
 * session_bdat_end - the chunk is read. Into the message: 250 with its
 * size, or for LAST the very end of DATA (session_end_data: the From:
 * check, the milters' EOM, DKIM, the commit, the 250 after it).
 * Returns false when processing must wait.
 */
static bool session_bdat_end(struct smtp_session *s)
{
	s->bdat_open = false;
	if (s->state != STATE_DATA) {
		session_bdat_dropped(s);
		session_arm_timer(s);	/* command_timeout again */
		return true;
	}
	if (s->bdat_last) {
		s->dec.done = true;
		session_end_data(s);
		return s->state == STATE_COMMAND;
	}
	s->state = STATE_COMMAND;
	session_reply(s, 250, "2.0.0", "%llu octets received", (unsigned long long)s->bdat_size);
	session_arm_timer(s);
	return true;
}

/*
 * session_bdat_step - the buffered bytes of the chunk being read: into
 * the message in STATE_DATA, dropped otherwise. Never parsed: CR, LF
 * and dots are data (RFC 3030 §2), and only the count says where the
 * chunk ends. Returns false when processing must wait.
 */
static bool session_bdat_step(struct smtp_session *s)
{
	size_t n = s->inlen < s->bdat_left ? s->inlen : (size_t)s->bdat_left;

	if (n > 0 && s->state == STATE_DATA) {
		/* verb_bdat checked the size: too_big is only a failed write. */
		s->dec.size += n;
		if (!s->dec.too_big) {
			session_sender_feed(s, s->in, n);
			if (session_submit_write(s, s->in, n) < 0)
				s->dec.too_big = true;	/* out of memory: read the rest, refuse */
		}
	}
	if (n > 0) {
		memmove(s->in, s->in + n, s->inlen - n);
		s->inlen -= n;
		s->bdat_left -= n;
	}
	if (s->bdat_left > 0)
		return false;
	return session_bdat_end(s);
}

/*
 * session_line_max - the longest line accepted now: 512 octets for
 * commands, but RFC 4954 §4 asks for 12288 for AUTH and its responses,
 * and RFC 3461 §4 for 515 more in MAIL and RCPT (DSN's parameters).
 */
static size_t session_line_max(const struct smtp_session *s)
{
	if (s->state == STATE_AUTH_INPUT ||
	    (s->inlen >= 5 && strncasecmp(s->in, "AUTH ", 5) == 0))
		return AUTH_LINE_MAX;
	if (s->inlen >= 5 &&
	    (strncasecmp(s->in, "MAIL ", 5) == 0 || strncasecmp(s->in, "RCPT ", 5) == 0))
		return SMTP_COMMAND_MAX + SMTP_DSN_LINE_EXTRA;
	return SMTP_COMMAND_MAX;
}

/*
 * session_command_step - runs one complete command line from the
 * buffer. Returns false when no complete line is buffered.
 */
static bool session_command_step(struct smtp_session *s)
{
	char *eol;
	size_t linelen, used, max = session_line_max(s);

	if (s->inlen == 0)
		return false;	/* and s->in may be NULL */
	eol = memchr(s->in, '\n', s->inlen);
	if (!eol) {
		if (s->inlen >= max) {
			/* Too long already: answer once, drop the rest up to its LF. */
			if (!s->skip_to_eol)
				session_reply(s, 500, "5.5.2", "Error: line too long");
			s->skip_to_eol = true;
			s->inlen = 0;
		}
		return false;
	}
	used = (size_t)(eol - s->in) + 1;
	linelen = used - 1;
	if (linelen > 0 && s->in[linelen - 1] == '\r')
		linelen--;
	if (s->skip_to_eol)
		s->skip_to_eol = false;
	else if (used > max)
		session_reply(s, 500, "5.5.2", "Error: line too long");
	else
		verbs_dispatch(s, s->in, linelen);	/* a command, or the answer to a 334 */
	if (s->state == STATE_TLS_HANDSHAKE) {
		/* Plaintext pipelined after STARTTLS is never run (CVE-2011-0411). */
		s->inlen = 0;
		return false;
	}
	memmove(s->in, s->in + used, s->inlen - used);
	s->inlen -= used;
	/* A whole line: the client has until command_timeout (data_timeout
	 * after DATA) for the next one. Only here: see smtp_session_received. */
	if (s->state == STATE_COMMAND || s->state == STATE_DATA || s->state == STATE_AUTH_INPUT)
		session_arm_timer(s);
	return true;
}

/* session_too_many_errors - RFC 5321 §4.3.2 lets us hang up on a broken client. */
static bool session_too_many_errors(struct smtp_session *s)
{
	if (s->errors < s->srv->cfg->max_errors)
		return false;
	session_log(s, MTAD_LOG_INFO, "too many errors after %s from %s",
		    s->state == STATE_DATA ? "DATA" : "command", s->client_label);
	session_reply(s, 421, "4.7.0", "%s Error: too many errors", s->srv->cfg->hostname);
	session_close(s);
	return true;
}

/* session_run_buffered - the steps of session_process; false when it closed the session. */
static bool session_run_buffered(struct smtp_session *s)
{
	for (;;) {
		bool more;

		if ((s->state != STATE_COMMAND && s->state != STATE_DATA &&
		     s->state != STATE_AUTH_INPUT) || s->paused_by_queue || s->paused_by_milter)
			return true;
		if (s->bdat_open)
			more = session_bdat_step(s);
		else if (s->state == STATE_DATA)
			more = session_data_step(s);
		else
			more = session_command_step(s);
		if (session_too_many_errors(s))
			return false;
		if (!more)
			return true;
	}
}

/*
 * session_process - runs everything buffered, in order, until the
 * buffer holds no complete command or the session must wait. Replies
 * go out together at the end (PIPELINING). A buffer left empty goes
 * back to the server: what is left of a partial line stays.
 */
static void session_process(struct smtp_session *s)
{
	bool outer = !s->processing;

	s->processing = true;
	if (session_run_buffered(s))
		session_flush(s);
	if (outer) {
		s->processing = false;
		session_input_release(s);
	}
}

/* session_continue - see session_int.h. */
void session_continue(struct smtp_session *s)
{
	if (!s->transport_gone)
		session_process(s);
}

/*
 * smtp_session_inbuf - free room in the input buffer for the transport;
 * the buffer is taken from the server's spares when the session has
 * none. Without memory for one: no room, and smtp_session_read_done
 * acts on it (not here: libuv's alloc callback must not stop reading).
 */
void smtp_session_inbuf(struct smtp_session *s, char **buf, size_t *len)
{
	*buf = NULL;
	*len = 0;
	if (!s->in && !(s->in = spare_take(&s->srv->spare_in, SMTP_READ_SIZE))) {
		s->in_nomem = true;
		return;
	}
	*buf = s->in + s->inlen;
	*len = SMTP_READ_SIZE - s->inlen;
}

/*
 * session_input_nomem - no input buffer: a session waiting for its
 * client says 421 and closes (memory comes back with it); one waiting
 * for its own step pauses, and session_resume reads on (and tries again)
 * when that step ends.
 */
static void session_input_nomem(struct smtp_session *s)
{
	if (s->state == STATE_CLOSING)
		return;
	if (s->state != STATE_COMMAND && s->state != STATE_DATA &&
	    s->state != STATE_AUTH_INPUT) {
		s->io.pause(s->io.ctx, true);
		return;
	}
	session_log(s, MTAD_LOG_WARNING, "out of memory for the input of %s", s->client_label);
	session_reply(s, 421, "4.3.0", "%s Error: out of memory", s->srv->cfg->hostname);
	session_close(s);
}

/* smtp_session_read_done - see smtp.h. */
void smtp_session_read_done(struct smtp_session *s)
{
	if (s->in_nomem) {
		s->in_nomem = false;
		session_input_nomem(s);
	}
	session_input_release(s);
}

/* smtp_session_received - n new bytes are in the input buffer. */
void smtp_session_received(struct smtp_session *s, size_t n)
{
	if (s->state == STATE_CLOSING)
		return;
	s->inlen += n;
	/*
	 * In DATA any bytes are progress (a big message takes long on a slow
	 * link): data_timeout starts again. Between commands only a complete
	 * line restarts command_timeout (session_command_step): a client that
	 * sends one byte every few seconds and never a whole line ("slowloris")
	 * held its connection forever when every byte restarted it
	 * (t/83-slow-clients.t).
	 */
	if (s->state == STATE_DATA || s->bdat_open)
		session_arm_timer(s);
	session_process(s);
	if (s->inlen == SMTP_READ_SIZE && s->state != STATE_CLOSING)
		s->io.pause(s->io.ctx, true);	/* full while waiting: resumes later */
}

/* session_log_disconnect - Postfix's summary line: verb=ok/total. */
static void session_log_disconnect(struct smtp_session *s)
{
	static const enum smtp_verb shown[] = {
		SMTP_HELO, SMTP_EHLO, SMTP_STARTTLS, SMTP_AUTH, SMTP_MAIL, SMTP_RCPT,
		SMTP_DATA, SMTP_BDAT, SMTP_RSET, SMTP_NOOP, SMTP_VRFY, SMTP_EXPN, SMTP_HELP,
		SMTP_QUIT, SMTP_UNKNOWN,
	};
	char line[512];
	size_t n = 0;

	for (size_t i = 0; i < sizeof(shown) / sizeof(shown[0]) && n < sizeof(line); i++) {
		const struct session_verb_count *c = &s->verbs[shown[i]];
		int w;

		if (c->total == 0)
			continue;
		w = snprintf(line + n, sizeof(line) - n, " %s=%u", smtp_verb_name(shown[i]), c->ok);
		if (w > 0 && c->ok != c->total && (size_t)w < sizeof(line) - n)
			w += snprintf(line + n + (size_t)w, sizeof(line) - n - (size_t)w, "/%u",
				      c->total);
		if (w > 0)
			n += (size_t)w;
	}
	if (n >= sizeof(line))
		n = sizeof(line) - 1;
	mtad_str_lower(line, line, n);	/* Postfix writes ehlo=1, not EHLO=1 */
	/* Postfix's aggregated note (smtpd_forbid_bare_newline = note). */
	session_log(s, MTAD_LOG_INFO, "disconnect from %s%s commands=%u/%u%s",
		    s->client_label, line, s->commands_ok, s->commands_total,
		    s->note_bare_lf ? " notes=bare_lf" : "");
}

/* smtp_session_eof - the client went away (or the connection broke). */
void smtp_session_eof(struct smtp_session *s, const char *why)
{
	/* Between two chunks a transaction is open too: Postfix says "after BDAT". */
	bool in_bdat = s->bdat_open || (s->chunking && s->state == STATE_COMMAND);

	if (s->state != STATE_CLOSING && (s->state != STATE_COMMAND || in_bdat) && why)
		session_log(s, MTAD_LOG_INFO, "lost connection after %s from %s: %s",
			    in_bdat || (s->chunking && s->state == STATE_DATA) ? "BDAT" :
			    s->state == STATE_DATA ? "DATA" : "END-OF-MESSAGE", s->client_label, why);
	if ((s->state == STATE_COMMIT || s->state == STATE_MILTER_WAIT ||
	     s->state == STATE_MILTER_EOM) && why == NULL) {
		/* A half-close after the message (and perhaps QUIT): the
		 * client still reads, so the 250 and what is buffered come
		 * first; session_resume ends the session after that. */
		s->eof_pending = true;
		return;
	}
	if (s->state == STATE_COMMIT || s->state == STATE_AUTH_WAIT) {
		/* The step finishes on its own; the transport closes now. */
		s->io.close(s->io.ctx);
		return;
	}
	s->state = STATE_CLOSING;
	uv_timer_stop(&s->timer);
	session_output_release(s);	/* nobody reads them now */
	s->io.close(s->io.ctx);
}

/* smtp_session_shutdown - mtad is stopping (RFC 5321 §3.8: 421 then close). */
void smtp_session_shutdown(struct smtp_session *s)
{
	if (s->state == STATE_CLOSING)
		return;
	if (s->state == STATE_COMMIT || s->state == STATE_AUTH_WAIT) {
		/* Its reply comes first; session_resume then closes. */
		return;
	}
	if (s->state == STATE_TLS_HANDSHAKE) {
		session_close(s);
		return;
	}
	if (s->srv->queue_failed)
		session_reply(s, 421, "4.3.0", "%s Error: queue failure, service restarting",
			      s->srv->cfg->hostname);
	else
		session_reply(s, 421, "4.3.2", "%s Service shutting down",
			      s->srv->cfg->hostname);
	session_close(s);
}

/* session_timer_closed - last step of freeing: the timer handle is closed. */
static void session_timer_closed(uv_handle_t *h)
{
	struct smtp_session *s = h->data;

	session_reset_transaction(s);
	verb_auth_forget(s);	/* an exchange waiting at a 334 leaves the limiter's count */
	session_output_release(s);
	s->inlen = 0;
	s->processing = false;
	session_input_release(s);
	free(s->rcpt);
	free(s->orcpt);
	free(s->notify);
	free(s->dsn_orcpt);
	free(s);
}

/*
 * session_forget_client - STARTTLS: RFC 3207 §4.2, the session starts
 * over and discards all knowledge obtained from the client, the AUTH
 * identity included: a login made in the clear (auth_plaintext) must not
 * carry over into the TLS session. No exchange can be open here (AUTH
 * input is never read as a command). The failure count stays: it is our
 * penalty, not the client's claim, and STARTTLS must not reset it.
 */
void session_forget_client(struct smtp_session *s)
{
	session_reset_transaction(s);
	session_milter_stop(s);	/* the milters saw the clear-text session: a new one */
	s->helo_seen = false;
	s->esmtp = false;
	s->helo[0] = '\0';
	s->auth_user[0] = '\0';
	s->auth_mech[0] = '\0';
}

/* smtp_session_tls_ready - the handshake is done: a fresh session under TLS. */
void smtp_session_tls_ready(struct smtp_session *s, const char *version,
			    const char *cipher, int bits)
{
	s->tls_active = true;
	snprintf(s->tls_info, sizeof(s->tls_info), "%s with cipher %s (%d/%d bits)",
		 version, cipher, bits, bits);
	if (s->state == STATE_TLS_HANDSHAKE)
		session_resume(s, STATE_COMMAND);
}

/* smtp_session_free - the transport is gone; free now or after the commit. */
void smtp_session_free(struct smtp_session *s)
{
	session_policy_stop(s);	/* no DNS answer may reach it now */
	session_rcpt_stop(s);	/* nor a recipient probe's */
	if (!s->transport_gone) {
		s->transport_gone = true;
		session_log_disconnect(s);
	}
	if (s->state == STATE_COMMIT && session_dkim_detach(s))
		s->state = STATE_CLOSING;	/* only signing ran: nothing to wait for */
	if (s->state == STATE_COMMIT || s->state == STATE_AUTH_WAIT)
		return;	/* the step's callback frees it */
	session_milter_stop(s);	/* no milter's answer may reach it now */
	uv_timer_stop(&s->timer);
	uv_close((uv_handle_t *)&s->timer, session_timer_closed);
}
