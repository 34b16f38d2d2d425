/*
 * verbs.c - the SMTP commands of the server session: one table row per
 * verb, RCPT and AUTH included, each with a check step (the session
 * state the verb needs; refused with the reply given) and a run step
 * that carries it out (OpenSMTPD's layout: checking never mixes with
 * doing, and a new verb is one row).
 *
 * RFC 5321 §4.1 (commands, reply codes; §4.5.3.1.10 452 for a full
 * spool), RFC 1870 (SIZE, §6.1 the free-space check), RFC 6152
 * (8BITMIME), RFC 3461 (DSN), RFC 3030 (CHUNKING: BDAT, its chunk read
 * by count in session.c), RFC 2034/3463 (enhanced status codes on every
 * reply but the greeting and the EHLO lines), RFC 6531 (SMTPUTF8:
 * advertised; a UTF-8 recipient in a transaction whose MAIL did not
 * declare it gets 553 5.6.7, §3.7.4.2).
 *
 * No I/O here: replies go to the session's output buffer; nothing from
 * the envelope is ever interpreted beyond the path syntax checks. This
 * is the top of the session: it calls session_policy.c, verb_auth.c and
 * session.c; the first two never call back here, and session.c only
 * hands it each input line (verbs_dispatch; see session_int.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/session_int.h"

/* What a verb needs before it may run. */
enum verb_needs {
	NEEDS_HELO = 1 << 0,
	NEEDS_MAIL = 1 << 1,
	NEEDS_RCPT = 1 << 2,
	NEEDS_NO_MAIL = 1 << 3,
};

struct verb_row {
	enum smtp_verb verb;
	/* True when the verb may run; else the reply is given. */
	bool (*check)(struct smtp_session *s);
	/* Returns true when the command succeeded (for the disconnect counts). */
	bool (*run)(struct smtp_session *s, const struct smtp_command *cmd);
};

static bool check_nothing(struct smtp_session *s);
static bool check_mail(struct smtp_session *s);
static bool check_rcpt(struct smtp_session *s);
static bool check_data(struct smtp_session *s);
static bool check_starttls(struct smtp_session *s);

static bool verb_helo(struct smtp_session *s, const struct smtp_command *cmd);
static bool verb_ehlo(struct smtp_session *s, const struct smtp_command *cmd);
static bool verb_mail(struct smtp_session *s, const struct smtp_command *cmd);
static bool verb_rcpt(struct smtp_session *s, const struct smtp_command *cmd);
static bool verb_data(struct smtp_session *s, const struct smtp_command *cmd);
static bool verb_bdat(struct smtp_session *s, const struct smtp_command *cmd);
static bool verb_rset(struct smtp_session *s, const struct smtp_command *cmd);
static bool verb_noop(struct smtp_session *s, const struct smtp_command *cmd);
static bool verb_quit(struct smtp_session *s, const struct smtp_command *cmd);
static bool verb_help(struct smtp_session *s, const struct smtp_command *cmd);
static bool verb_vrfy(struct smtp_session *s, const struct smtp_command *cmd);
static bool verb_starttls(struct smtp_session *s, const struct smtp_command *cmd);
static bool verb_not_implemented(struct smtp_session *s, const struct smtp_command *cmd);
static bool verb_unknown(struct smtp_session *s, const struct smtp_command *cmd);

static const struct verb_row verb_table[] = {
	{ SMTP_HELO, check_nothing, verb_helo },
	{ SMTP_EHLO, check_nothing, verb_ehlo },
	{ SMTP_MAIL, check_mail, verb_mail },
	{ SMTP_RCPT, check_rcpt, verb_rcpt },
	{ SMTP_DATA, check_data, verb_data },
	/* Its checks are in verb_bdat: a refused chunk must still be read. */
	{ SMTP_BDAT, check_nothing, verb_bdat },
	{ SMTP_RSET, check_nothing, verb_rset },
	{ SMTP_NOOP, check_nothing, verb_noop },
	{ SMTP_QUIT, check_nothing, verb_quit },
	{ SMTP_HELP, check_nothing, verb_help },
	{ SMTP_VRFY, check_nothing, verb_vrfy },
	{ SMTP_EXPN, check_nothing, verb_not_implemented },
	{ SMTP_STARTTLS, check_starttls, verb_starttls },
	{ SMTP_AUTH, verb_auth_check, verb_auth },	/* verb_auth.c */
	{ SMTP_UNKNOWN, check_nothing, verb_unknown },
};

/*
 * space_refused - the spool's filesystem is at its reserve
 * (queue_minfree), or would be after the SIZE the client announced:
 * 452 4.3.1, RFC 5321 §4.5.3.1.10 and RFC 1870 §6.1, at MAIL and again
 * at DATA (free space may have gone meanwhile), before any body byte is
 * read. Berkeley DB keeps what is left for the messages already in DATA
 * and for the deletes of delivered mail.
 */
static bool space_refused(struct smtp_session *s, const char *verb)
{
	uint64_t size = s->params.has_size ? s->params.size : 0;
	uint64_t spool_free = atomic_load(&s->srv->shared->spool_free);
	char extra[32];

	if (policy_space_verdict(spool_free, mtad_config_minfree(s->srv->cfg), size))
		return false;
	session_reply(s, 452, "4.3.1", "Insufficient system storage");
	snprintf(extra, sizeof(extra), "free=%llu", (unsigned long long)spool_free);
	session_log_reject(s, verb, NULL, extra, "452 4.3.1 Insufficient system storage");
	return true;
}

/* reply_parse_error - the reply a path parser chose. */
static void reply_parse_error(struct smtp_session *s, const char *verb,
			      const struct smtp_parse_error *err)
{
	session_reply(s, err->code, err->enhanced, "%s", err->text);
	session_log_reject(s, verb, NULL, NULL, "%d %s %s", err->code, err->enhanced, err->text);
}

/* remember_helo - keeps the client's name; a new HELO/EHLO resets the transaction. */
static bool remember_helo(struct smtp_session *s, const struct smtp_command *cmd, bool esmtp)
{
	if (!cmd->arg || cmd->arglen == 0 || cmd->arglen > SESSION_HELO_MAX ||
	    smtp_parse_helo(cmd->arg, cmd->arglen) != 0) {
		session_reply(s, 501, "5.5.4", "Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
		session_policy_count(s, POLICY_HELO_SYNTAX);
		return false;
	}
	session_reset_transaction(s);
	s->bdat_failed = false;
	memcpy(s->helo, cmd->arg, cmd->arglen);
	s->helo[cmd->arglen] = '\0';
	s->esmtp = esmtp;
	/* Refused (reply given): MAIL needs a new HELO. */
	s->helo_seen = session_policy_ehlo(s);
	return s->helo_seen;
}

/* verb_helo - HELO: the RFC 821 greeting, one line, no extensions. */
static bool verb_helo(struct smtp_session *s, const struct smtp_command *cmd)
{
	if (!remember_helo(s, cmd, false))
		return false;
	session_reply(s, 250, NULL, "%s", s->srv->cfg->hostname);
	return true;
}

/*
 * verbs_auth_offered - AUTH only where the password cannot be read off
 * the wire: under TLS, unless the listener allows plaintext AUTH.
 */
static bool verbs_auth_offered(const struct smtp_session *s)
{
	return s->srv->auth && (s->tls_active || s->auth_plaintext);
}

/* verb_ehlo - EHLO: the greeting line in the seed's shape, then the extensions. */
static bool verb_ehlo(struct smtp_session *s, const struct smtp_command *cmd)
{
	char reply[1024], auth[160] = "";
	bool starttls = s->tls_mode == MTAD_TLS_STARTTLS && !s->tls_active;
	int n;

	if (!remember_helo(s, cmd, true))
		return false;
	if (verbs_auth_offered(s))
		snprintf(auth, sizeof(auth), "250-AUTH %s\r\n", auth_server_mechanisms(s->srv->auth));
	n = snprintf(reply, sizeof(reply),
		     "250-%s Hello %s [%s]\r\n"
		     "250-SIZE %llu\r\n"
		     "250-PIPELINING\r\n"
		     "250-8BITMIME\r\n"
		     "250-DSN\r\n"
		     "250-SMTPUTF8\r\n"
		     "250-ENHANCEDSTATUSCODES\r\n"
		     "250-CHUNKING\r\n"
		     "%s%s"
		     "250 HELP\r\n",
		     s->srv->cfg->hostname, s->helo, s->client_ip,
		     (unsigned long long)s->srv->cfg->message_size_limit,
		     auth, starttls ? "250-STARTTLS\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(reply)) {
		session_reply(s, 451, "4.3.0", "Error: internal error");
		return false;
	}
	session_reply_raw(s, reply, (size_t)n);
	return true;
}

/*
 * mail_open - the transaction starts: the end of every accepted MAIL,
 * after the milters when there are (false: their answer replies, and
 * counts the command).
 */
static bool mail_open(struct smtp_session *s)
{
	if (session_milter_active(s))
		return session_milter_mail(s);
	s->in_transaction = true;
	session_reply(s, 250, "2.1.0", "Ok");
	return true;
}

/* mail_waited - s->mail_go_on: a MAIL that waited for the policy's DNS answer goes on. */
static void mail_waited(struct smtp_session *s)
{
	if (!mail_open(s))
		return;
	s->verbs[SMTP_MAIL].ok++;
	s->commands_ok++;
}

/*
 * local_qualified - on the local socket (sendmail -bs, scripts), an
 * address without a domain gets the host name, as RFC 6409 §8.1 lets a
 * submission server do (`RCPT TO:<root>`). The argument with
 * "@hostname" put before its '>' into buf; false when that is not
 * what it needs (a network session, or no '>').
 */
static bool local_qualified(const struct smtp_session *s, const struct smtp_command *cmd,
			    const struct smtp_parse_error *err, char *buf, size_t size,
			    size_t *len)
{
	const char *gt = memchr(cmd->arg, '>', cmd->arglen);
	int n;

	if (s->local_uid < 0 || !gt || strcmp(err->text, SMTP_TEXT_NO_DOMAIN) != 0)
		return false;
	n = snprintf(buf, size, "%.*s@%s%.*s", (int)(gt - cmd->arg), cmd->arg,
		     s->srv->cfg->hostname, (int)(cmd->arglen - (size_t)(gt - cmd->arg)), gt);
	if (n < 0 || (size_t)n >= size)
		return false;
	*len = (size_t)n;
	return true;
}

static bool verb_mail(struct smtp_session *s, const struct smtp_command *cmd)
{
	char qualified[SMTP_COMMAND_MAX + SMTP_DSN_LINE_EXTRA + MTAD_HOSTNAME_MAX + 2];
	size_t qlen;
	struct smtp_parse_error err;

	/* Outside a transaction the sender is this command's, once parsed. */
	memset(&s->sender, 0, sizeof(s->sender));
	if (s->submission && !s->auth_user[0]) {
		/* RFC 6409 §4.3: the submission port takes mail from known users
		 * only. The log names the sender the client gave, when it parses. */
		if (!cmd->arg ||
		    smtp_parse_mail_from(cmd->arg, cmd->arglen, &s->sender, &s->params, &err) != 0)
			memset(&s->sender, 0, sizeof(s->sender));
		session_reply(s, 530, "5.7.0", "Authentication required");
		session_log_reject(s, "MAIL", NULL, NULL, "530 5.7.0 Authentication required");
		memset(&s->sender, 0, sizeof(s->sender));
		return false;
	}
	if (!cmd->arg) {
		session_reply(s, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
		return false;
	}
	if (smtp_parse_mail_from(cmd->arg, cmd->arglen, &s->sender, &s->params, &err) != 0 &&
	    (!local_qualified(s, cmd, &err, qualified, sizeof(qualified), &qlen) ||
	     smtp_parse_mail_from(qualified, qlen, &s->sender, &s->params, &err) != 0)) {
		reply_parse_error(s, "MAIL", &err);
		return false;
	}
	if (s->params.has_size && s->params.size > s->srv->cfg->message_size_limit) {
		session_reply(s, 552, "5.3.4", "Message size exceeds fixed limit");
		session_log_reject(s, "MAIL", NULL, NULL, "552 5.3.4 Message size exceeds fixed limit");
		return false;
	}
	if (space_refused(s, "MAIL"))
		return false;
	if (!session_sender_mail(s))
		return false;	/* not the login's address: 553 5.7.1 */
	if (!session_quota_mail(s))
		return false;	/* too many messages this minute: 450 4.7.1 */
	s->mail_go_on = mail_waited;
	if (!session_policy_mail(s))
		return false;	/* refused, or waiting for DNS: mail_waited then */
	return mail_open(s);
}

static bool verb_rcpt(struct smtp_session *s, const struct smtp_command *cmd)
{
	char qualified[SMTP_COMMAND_MAX + SMTP_DSN_LINE_EXTRA + MTAD_HOSTNAME_MAX + 2];
	struct smtp_path path;
	struct smtp_parse_error err;
	size_t qlen;

	if (!s->in_transaction) {
		/* check_rcpt let it through for this: the refused MAIL's reply again. */
		bool parsed = cmd->arg &&
			      smtp_parse_rcpt_to(cmd->arg, cmd->arglen, &path, NULL, &err) == 0;

		return session_policy_blocked(s, parsed ? path.addr : NULL);
	}
	if (!cmd->arg) {
		session_reply(s, 501, "5.5.4", "Syntax: RCPT TO:<address>");
		return false;
	}
	/* DSN's NOTIFY= and ORCPT= wait in s->rcpt_params until the recipient joins. */
	if (smtp_parse_rcpt_to(cmd->arg, cmd->arglen, &path, &s->rcpt_params, &err) != 0 &&
	    (!local_qualified(s, cmd, &err, qualified, sizeof(qualified), &qlen) ||
	     smtp_parse_rcpt_to(qualified, qlen, &path, &s->rcpt_params, &err) != 0)) {
		reply_parse_error(s, "RCPT", &err);
		return false;
	}
	if (path.utf8 && !s->params.smtputf8) {
		err = (struct smtp_parse_error){ 553, "5.6.7", SMTP_TEXT_NEED_SMTPUTF8 };
		reply_parse_error(s, "RCPT", &err);
		return false;
	}
	if (!session_policy_rcpt(s, &path))
		return false;
	if (s->nrcpt >= s->rcpt_cap) {
		session_reply(s, 452, "4.5.3", "Error: too many recipients");
		session_log_reject(s, "RCPT", path.addr, NULL, "452 4.5.3 Error: too many recipients");
		return false;
	}
	/* Does a local recipient exist (perhaps waiting for a probe)? Then
	 * the quota (450 4.7.1) and the transaction. */
	return session_rcpt_check(s, path.addr);
}

static bool verb_data(struct smtp_session *s, const struct smtp_command *cmd)
{
	if (cmd->arglen > 0) {
		session_reply(s, 501, "5.5.4", "Syntax: DATA");
		return false;
	}
	if (space_refused(s, "DATA"))
		return false;
	if (s->milters)
		return session_milter_data(s);	/* it starts the data when they agree */
	session_start_data(s);
	return s->state == STATE_DATA;
}

/*
 * bdat_refused - this chunk is refused: session.c reads and drops it,
 * then gives the reply (RFC 3030 §2: the chunk is read whatever the
 * reply, or the stream would be out of step); one too big to be worth
 * reading gets the reply and the session ends.
 */
static bool bdat_refused(struct smtp_session *s, int code, const char *enhanced,
			 const char *text)
{
	uint64_t limit = s->srv->cfg->message_size_limit;

	if (s->bdat_size > limit + limit / 2) {
		/* Postfix's bound: a refused chunk over 1.5 times the size
		 * limit is not read for nothing; the session ends. */
		session_log(s, MTAD_LOG_WARNING, "%s: too much BDAT content -- disabling further "
			    "input from %s", s->qid[0] ? s->qid : "NOQUEUE", s->client_label);
		s->bdat_open = false;
		session_reply(s, code, enhanced, "%s", text);
		session_close(s);
		return false;
	}
	session_bdat_refuse(s, code, enhanced, text);
	return false;
}

/*
 * bdat_first - the first chunk of a message: DATA's checks and start
 * (the queue id, the Received: header, the milters' DATA stage), then
 * the chunk is read. Postfix's smtpd_chunking model.
 */
static bool bdat_first(struct smtp_session *s)
{
	uint64_t spool_free = atomic_load(&s->srv->shared->spool_free);
	uint64_t size = s->params.has_size ? s->params.size : 0;
	char extra[32];

	if (!policy_space_verdict(spool_free, mtad_config_minfree(s->srv->cfg), size)) {
		snprintf(extra, sizeof(extra), "free=%llu", (unsigned long long)spool_free);
		session_log_reject(s, "BDAT", NULL, extra, "452 4.3.1 Insufficient system storage");
		return bdat_refused(s, 452, "4.3.1", "Insufficient system storage");
	}
	if (s->bdat_size > s->srv->cfg->message_size_limit) {
		session_log(s, MTAD_LOG_WARNING, "NOQUEUE: BDAT request from %s exceeds message "
			    "size limit", s->client_label);
		return bdat_refused(s, 552, "5.3.4", "Chunk exceeds message size limit");
	}
	if (s->milters)
		return session_milter_data(s);	/* it starts the message when they agree */
	session_start_data(s);
	return s->state == STATE_DATA;	/* else 451 given: the chunk is dropped */
}

/*
 * verb_bdat - RFC 3030: "BDAT size [LAST]". Whatever the answer, the
 * chunk's bytes are read (session.c) before the next command, except
 * when the size cannot be read: then nobody knows where the chunk ends,
 * and the session closes after its 501 (Postfix hangs up with 521).
 */
static bool verb_bdat(struct smtp_session *s, const struct smtp_command *cmd)
{
	char text[96];
	uint64_t size;
	bool last;

	if (smtp_parse_bdat(cmd->arg, cmd->arglen, &size, &last) != 0) {
		session_log(s, MTAD_LOG_WARNING, "%s: malformed BDAT command syntax from %s: %.*s",
			    s->qid[0] ? s->qid : "NOQUEUE", s->client_label,
			    (int)(cmd->arglen < 100 ? cmd->arglen : 100), cmd->arg);
		session_reply(s, 501, "5.5.4", "Syntax: BDAT count [LAST]");
		session_close(s);
		return false;
	}
	s->bdat_open = true;
	s->bdat_size = s->bdat_left = size;
	s->bdat_last = last;
	s->bdat_code = 0;
	if (s->bdat_failed) {
		snprintf(text, sizeof(text), "Discarded %llu bytes after earlier error",
			 (unsigned long long)size);
		return bdat_refused(s, 551, "5.0.0", text);
	}
	if (!s->helo_seen)
		return bdat_refused(s, 503, "5.5.1", "Error: send HELO/EHLO first");
	if (size == 0 && !last) {
		/* Postfix's guard against a stream of empty chunks. */
		session_log(s, MTAD_LOG_WARNING, "%s: null BDAT request from %s",
			    s->qid[0] ? s->qid : "NOQUEUE", s->client_label);
		return bdat_refused(s, 551, "5.7.1", "Null BDAT request");
	}
	if (!s->in_transaction)
		return bdat_refused(s, 503, "5.5.1", "Error: need MAIL command");
	if (s->nrcpt == 0 && !s->rcpt_tried)
		return bdat_refused(s, 503, "5.5.1", "Error: need RCPT command");
	if (s->nrcpt == 0)
		return bdat_refused(s, 554, "5.5.1", "Error: no valid recipients");
	if (!s->chunking)
		return bdat_first(s);
	if (s->dec.size > s->dec.limit || size > s->dec.limit - s->dec.size) {
		session_log(s, MTAD_LOG_WARNING, "%s: BDAT request from %s exceeds message size limit",
			    s->qid, s->client_label);
		return bdat_refused(s, 552, "5.3.4", "Chunk exceeds message size limit");
	}
	session_bdat_begin(s);
	return true;
}

static bool verb_rset(struct smtp_session *s, const struct smtp_command *cmd)
{
	(void)cmd;
	session_reset_transaction(s);
	s->bdat_failed = false;
	session_reply(s, 250, "2.0.0", "Ok");
	return true;
}

static bool verb_noop(struct smtp_session *s, const struct smtp_command *cmd)
{
	(void)cmd;
	session_reply(s, 250, "2.0.0", "Ok");
	return true;
}

static bool verb_quit(struct smtp_session *s, const struct smtp_command *cmd)
{
	(void)cmd;
	session_reply(s, 221, "2.0.0", "Bye");
	session_close(s);
	return true;
}

static bool verb_help(struct smtp_session *s, const struct smtp_command *cmd)
{
	static const char help[] =
		"214-2.0.0 Commands supported:\r\n"
		"214-2.0.0 HELO EHLO STARTTLS AUTH MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY\r\n"
		"214 2.0.0 See RFC 5321 for details\r\n";

	(void)cmd;
	session_reply_raw(s, help, sizeof(help) - 1);
	return true;
}

/*
 * verb_starttls - RFC 3207: 220, then the transport runs the handshake.
 * The session forgets the client now; what it pipelined after STARTTLS
 * is thrown away by session.c, never run.
 */
static bool verb_starttls(struct smtp_session *s, const struct smtp_command *cmd)
{
	if (cmd->arglen > 0) {
		session_reply(s, 501, "5.5.4", "Syntax: STARTTLS");
		return false;
	}
	session_reply(s, 220, "2.0.0", "Ready to start TLS");
	session_flush(s);
	session_forget_client(s);
	s->state = STATE_TLS_HANDSHAKE;
	if (s->io.starttls(s->io.ctx) != 0) {
		s->state = STATE_COMMAND;
		session_reply(s, 454, "4.7.0", "TLS not available due to local problem");
		return false;
	}
	return true;
}

/* verb_vrfy - RFC 5321 §3.5.3: 252, without confirming anything (no address harvesting). */
static bool verb_vrfy(struct smtp_session *s, const struct smtp_command *cmd)
{
	(void)cmd;
	session_reply(s, 252, "2.5.2", "Cannot VRFY user, but will accept message and attempt delivery");
	return true;
}

static bool verb_not_implemented(struct smtp_session *s, const struct smtp_command *cmd)
{
	(void)cmd;
	session_reply(s, 502, "5.5.1", "Error: command not implemented");
	return false;
}

static bool verb_unknown(struct smtp_session *s, const struct smtp_command *cmd)
{
	(void)cmd;
	session_reply(s, 500, "5.5.2", "Error: command not recognized");
	return false;
}

/* ---- check steps ---- */

/* session_has - the session state in needs is there; else 503 (RFC 5321 §4.1.4). */
static bool session_has(struct smtp_session *s, unsigned needs)
{
	const char *missing = NULL;

	if ((needs & NEEDS_HELO) && !s->helo_seen)
		missing = "Error: send HELO/EHLO first";
	else if ((needs & NEEDS_NO_MAIL) && s->in_transaction)
		missing = "Error: nested MAIL command";
	else if ((needs & NEEDS_MAIL) && !s->in_transaction)
		missing = "Error: need MAIL command";
	else if ((needs & NEEDS_RCPT) && s->nrcpt == 0)
		missing = "Error: need RCPT command";
	if (!missing)
		return true;
	session_reply(s, 503, "5.5.1", "%s", missing);
	return false;
}

static bool check_nothing(struct smtp_session *s)
{
	(void)s;
	return true;
}

/* check_mail - after HELO/EHLO, outside a transaction; MAIL without HELO is a policy count. */
static bool check_mail(struct smtp_session *s)
{
	if (s->bdat_failed) {
		/* Chunks of a failed message may still be on their way. */
		session_reply(s, 503, "5.5.1", "Error: MAIL after BDAT");
		return false;
	}
	if (session_has(s, NEEDS_HELO | NEEDS_NO_MAIL))
		return true;
	if (!s->helo_seen)
		session_policy_count(s, POLICY_NO_HELO);
	return false;
}

/* check_rcpt - after MAIL; after a MAIL the HELO rules refused, the rule's reply first. */
static bool check_rcpt(struct smtp_session *s)
{
	/* After a MAIL the HELO rules refused: verb_rcpt repeats the rule's reply. */
	if (!s->in_transaction && s->blocked.rule != POLICY_ACCEPT)
		return true;
	if (s->in_transaction)
		s->rcpt_tried = true;
	if (s->chunking) {
		session_reply(s, 503, "5.5.1", "Error: RCPT after BDAT");
		return false;
	}
	return session_has(s, NEEDS_MAIL);
}

static bool check_data(struct smtp_session *s)
{
	if (s->chunking) {
		/* RFC 3030 §2: one message, DATA or BDAT, never both. */
		session_reply(s, 503, "5.5.1", "Error: DATA after BDAT");
		return false;
	}
	return session_has(s, NEEDS_MAIL | NEEDS_RCPT);
}

/* check_starttls - RFC 3207: on a STARTTLS listener, once. */
static bool check_starttls(struct smtp_session *s)
{
	if (s->tls_mode != MTAD_TLS_STARTTLS) {
		session_reply(s, 502, "5.5.1", "Error: command not implemented");
		return false;
	}
	if (s->tls_active) {
		session_reply(s, 503, "5.5.1", "Error: TLS already active");
		return false;
	}
	return true;
}

/* ---- the table ---- */

/* verb_find - the table row for a verb (the last row catches the rest). */
static const struct verb_row *verb_find(enum smtp_verb verb)
{
	size_t n = sizeof(verb_table) / sizeof(verb_table[0]);

	for (size_t i = 0; i < n - 1; i++)
		if (verb_table[i].verb == verb)
			return &verb_table[i];
	return &verb_table[n - 1];
}

/*
 * verbs_dispatch - one input line: the client's answer to a 334 goes to
 * the AUTH exchange; a command is parsed, checked and run.
 */
void verbs_dispatch(struct smtp_session *s, const char *line, size_t len)
{
	struct smtp_command cmd;
	const struct verb_row *row;
	bool ok;

	if (s->state == STATE_AUTH_INPUT) {
		verb_auth_response(s, line, len);
		return;
	}
	s->commands_total++;
	if (smtp_command_parse(line, len, &cmd) != 0) {
		s->verbs[SMTP_UNKNOWN].total++;
		session_reply(s, 500, "5.5.2", "Error: command contains invalid characters");
		return;
	}
	row = verb_find(cmd.verb);
	s->verbs[row->verb].total++;
	ok = row->check(s) && row->run(s, &cmd);
	if (ok) {
		s->verbs[row->verb].ok++;
		s->commands_ok++;
	}
}
