/*
 * session_sender.c - what an authenticated sender may do: sender
 * ownership (sender_login) and sending quotas (send_rate_limit,
 * send_recipient_limit; also for trusted clients without a login, by
 * address, 450 4.7.1 at MAIL or RCPT so nothing of it is queued).
 *
 * Sender ownership: an
 * authenticated login sends only as addresses it owns (policy/sender.c
 * decides), in MAIL FROM and in the From: header, which is read as the
 * body streams by (smtp/from_scan.c) and checked at the end of DATA,
 * before the 250. Unauthenticated sessions (relay_networks included)
 * are not affected; the null sender <> is always allowed.
 *
 * Must not: let a From: header the scanner could not keep whole pass
 * unchecked in strict mode, keep the scanner (4 KB) outside the DATA of
 * an authenticated session, or log anything of a failed login.
 *
 * Follows: RFC 6409 §6.1 (the submission server may enforce the
 * sender), RFC 5321 §3.3 and RFC 3463 (553 5.7.1: not authorised to send
 * as this sender).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "smtp/session_int.h"

/* sender_mode_off / strict - what sender_login says. */
static bool sender_checked(const struct smtp_session *s)
{
	return s->auth_user[0] != '\0' && strcmp(s->srv->cfg->sender_login, "off") != 0;
}

static bool sender_strict(const struct smtp_session *s)
{
	return strcmp(s->srv->cfg->sender_login, "strict") == 0;
}

/*
 * quota_key - whose quota a transaction counts against: the login,
 * "uid=N" for the local socket, or "[address]" for a trusted client that
 * did not log in; NULL for everybody else (mail from the world to local
 * domains has none).
 */
static const char *quota_key(const struct smtp_session *s, char *buf, size_t size)
{
	if (s->auth_user[0])
		return s->auth_user;
	if (s->local_uid >= 0)
		snprintf(buf, size, "uid=%ld", s->local_uid);
	else if (s->trusted)
		snprintf(buf, size, "[%s]", s->client_ip);
	else
		return NULL;
	return buf;
}

/*
 * sender_stat - adds n to one of the sender's counters, for `mtaq
 * senders`: day_kind (SENDER_*) for today, slot_kind (SLOT_*) for these
 * ten minutes; QUEUE_STATS_OTHER skips one of them.
 */
static void sender_stat(struct smtp_session *s, enum queue_stats_kind day_kind,
			enum queue_stats_kind slot_kind, uint64_t n)
{
	char buf[64], day[QUEUE_STATS_DAY_LEN + 1], key[QUEUE_STATS_KEY_MAX + 1];
	const char *who = quota_key(s, buf, sizeof(buf));
	unsigned slot;

	if (!who || n == 0 || queue_stats_slot(time(NULL), day, &slot) < 0)
		return;
	/* A name that cannot be a key (a '/', a blank) is not counted. */
	if (day_kind != QUEUE_STATS_OTHER &&
	    queue_stats_key_format(key, sizeof(key), day, day_kind, who, 0) > 0)
		(void)queue_stats_add(s->srv->queue, key, n);
	if (slot_kind != QUEUE_STATS_OTHER &&
	    queue_stats_key_format(key, sizeof(key), day, slot_kind, who, slot) > 0)
		(void)queue_stats_add(s->srv->queue, key, n);
}

/*
 * login_display - the login as its user knows it: "alice" for
 * "alice@REALM" when REALM is ours (sasl_realm, or the host name).
 */
static void login_display(const struct smtp_session *s, char *out, size_t size)
{
	const struct mtad_config *cfg = s->srv->cfg;
	const char *realm = cfg->sasl_realm[0] ? cfg->sasl_realm : cfg->hostname;
	size_t local = policy_login_local(s->auth_user);

	if (s->auth_user[local] == '@' && strcasecmp(s->auth_user + local + 1, realm) == 0)
		snprintf(out, size, "%.*s", (int)local, s->auth_user);
	else
		snprintf(out, size, "%s", s->auth_user);
}

/*
 * sender_allowed - may the login send as addr? Not owned: in strict mode
 * 553 5.7.1 and false; in warn mode a warning and true.
 */
static bool sender_allowed(struct smtp_session *s, const char *verb, const char *addr)
{
	const struct policy_settings *set = &s->srv->policy;
	char login[sizeof(s->auth_user)];

	if (policy_sender_owned(s->srv->shared->sender_map, s->auth_user, addr,
				set->local_domains, set->nlocal_domains))
		return true;
	login_display(s, login, sizeof(login));
	sender_stat(s, QUEUE_STATS_SENDER_OWNER, QUEUE_STATS_SLOT_OWNER, 1);
	if (!sender_strict(s)) {
		session_log(s, MTAD_LOG_WARNING, "%s: sasl_username=%s sends as <%s> in %s, which it does "
			    "not own (sender_login = warn)", s->client_label, s->auth_user, addr, verb);
		return true;
	}
	session_reply(s, 553, "5.7.1", "<%s>: sender address not owned by user %s", addr, login);
	session_log_reject(s, verb, NULL, NULL, "553 5.7.1 <%s>: sender address not owned by user %s",
			   addr, login);
	return false;
}

/* session_sender_mail - see session_int.h. */
bool session_sender_mail(struct smtp_session *s)
{
	return !sender_checked(s) || sender_allowed(s, "MAIL", s->sender.addr);
}

/* session_sender_data - see session_int.h. */
int session_sender_data(struct smtp_session *s)
{
	if (!sender_checked(s))
		return 0;
	if (!s->from_scan && !(s->from_scan = malloc(sizeof(*s->from_scan))))
		return -1;
	smtp_from_scan_init(s->from_scan);
	return 0;
}

/* session_sender_feed - see session_int.h. */
void session_sender_feed(struct smtp_session *s, const char *p, size_t n)
{
	if (s->from_scan && !s->from_scan->done)
		smtp_from_scan_feed(s->from_scan, p, n);
}

/* from_unreadable - a From: header too big to check whole. */
static bool from_unreadable(struct smtp_session *s)
{
	char login[sizeof(s->auth_user)];

	if (!sender_strict(s)) {
		session_log(s, MTAD_LOG_WARNING, "%s: sasl_username=%s: From: header too long to check "
			    "(sender_login = warn)", s->client_label, s->auth_user);
		return true;
	}
	login_display(s, login, sizeof(login));
	session_reply(s, 553, "5.7.1", "From: header has more addresses than can be checked "
		      "for user %s", login);
	session_log_reject(s, "END-OF-MESSAGE", NULL, NULL, "553 5.7.1 From: header too long to check "
			   "for user %s", login);
	return false;
}

/* session_sender_end - see session_int.h. */
bool session_sender_end(struct smtp_session *s)
{
	char (*addrs)[SMTP_PATH_MAX];
	size_t n = 0;
	bool ok = true;

	if (!s->from_scan || !sender_checked(s))
		return true;
	if (!(addrs = malloc(POLICY_FROM_MAX * sizeof(*addrs))))
		return from_unreadable(s);
	if (s->from_scan->overflow ||
	    policy_from_addresses(s->from_scan->value, s->from_scan->len, addrs, POLICY_FROM_MAX,
				  &n) != 0)
		ok = from_unreadable(s);
	for (size_t i = 0; ok && i < n; i++)
		ok = sender_allowed(s, "END-OF-MESSAGE", addrs[i]);
	free(addrs);
	return ok;
}

/* ---- sending quotas ---- */

/* notice_done - the notice is queued (or not). */
static void notice_done(void *arg, int status, const char *errmsg)
{
	char *qid = arg;

	if (status != 0)
		mtad_log(MTAD_LOG_WARNING, "%s: cannot queue the sending limit notice: %s", qid,
			 errmsg ? errmsg : "queue error");
	free(qid);
}

static void notice_resume(void *arg)
{
	(void)arg;	/* one small write: never paused */
}

/* notice_text - the notice: headers and a few lines, CRLF. Its length, or -1. */
static int notice_text(const struct smtp_session *s, const char *qid, const char *who,
		       const char *what, uint64_t count, const char *per, char *buf, size_t size)
{
	const char *host = s->srv->cfg->hostname;
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	int n;

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	n = snprintf(buf, size,
		     "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
		     "To: postmaster@%s\r\n"
		     "Subject: mtad: sending limit exceeded by %s\r\n"
		     "Date: %s\r\n"
		     "Message-ID: <%s@%s>\r\n"
		     "Auto-Submitted: auto-generated\r\n"
		     "\r\n"
		     "%s went over its %s limit: %llu %s, from %s.\r\n"
		     "mtad answers its further mail with 450 4.7.1 until the window has passed.\r\n"
		     "\r\n"
		     "If the password may be stolen:\r\n"
		     "  mtaq senders                  what each login sent today\r\n"
		     "  mtaq hold --login NAME        keep its queued mail from delivery\r\n"
		     "  auth_block = NAME             in mtad.conf, then SIGHUP: no more logins\r\n"
		     "\r\n"
		     "One notice per limit and window; send_limit_notify = none stops them.\r\n",
		     host, host, who, date, qid, host, who, what, (unsigned long long)count, per,
		     s->client_ip);
	return n > 0 && (size_t)n < size ? n : -1;
}

/*
 * quota_notice - a short message to postmaster@hostname (as a double
 * bounce goes), queued like any other: the refusal that is worth a
 * look, once per window. Nothing waits for it.
 */
static void quota_notice(struct smtp_session *s, const char *who, const char *what,
			 uint64_t count, const char *per)
{
	char qid[QUEUE_ID_LEN + 1], to[MTAD_HOSTNAME_MAX + 16], helo[MTAD_HOSTNAME_MAX + 1], body[2048];
	struct queue_rcpt rcpt = { .addr = to, .state = QUEUE_RCPT_PENDING };
	struct queue_envelope env = { 0 };
	struct queue_incoming *in;
	struct timeval tv;
	char *arg;
	int n;

	if (strcmp(s->srv->cfg->send_limit_notify, "none") == 0)
		return;
	gettimeofday(&tv, NULL);
	queue_id_next(&s->srv->ids, tv.tv_sec, (int32_t)tv.tv_usec, qid);
	snprintf(to, sizeof(to), "postmaster@%s", s->srv->cfg->hostname);
	snprintf(helo, sizeof(helo), "%s", s->srv->cfg->hostname);
	if ((n = notice_text(s, qid, who, what, count, per, body, sizeof(body))) < 0 ||
	    !(arg = strdup(qid)))
		return;
	if (!(in = queue_incoming_new(s->srv->port, qid, notice_resume, NULL))) {
		free(arg);
		return;
	}
	if (queue_incoming_write(in, body, (size_t)n) < 0) {
		queue_incoming_abort(in);
		free(arg);
		return;
	}
	env = (struct queue_envelope){
		.arrival = tv.tv_sec, .arrival_usec = (int32_t)tv.tv_usec, .sender = "",
		.rcpt = &rcpt, .nrcpt = 1, .client_ip = "127.0.0.1", .client_name = "localhost",
		.helo = helo, .listener = "notice", .protocol = "local",
	};
	mtad_log(MTAD_LOG_INFO, "%s: sending limit notice for %s to <%s>", qid, who, to);
	(void)queue_incoming_commit(in, &env, notice_done, arg);	/* always 0; cb reports */
}

/* quota_refuse - 450 4.7.1, and the log line once per window. */
static void quota_refuse(struct smtp_session *s, const char *what, const char *per,
			 const struct policy_quota_result *r)
{
	char login[sizeof(s->auth_user)];

	if (s->auth_user[0])
		login_display(s, login, sizeof(login));
	else
		snprintf(login, sizeof(login), "[%s]", s->client_ip);
	session_reply(s, 450, "4.7.1", "%s: sending rate limit exceeded, try again later", login);
	sender_stat(s, QUEUE_STATS_SENDER_QUOTA, QUEUE_STATS_SLOT_QUOTA, 1);
	if (!r->warn)
		return;
	if (s->auth_user[0])
		session_log(s, MTAD_LOG_WARNING, "sasl_username=%s %s limit exceeded: %llu %s from %s",
			    s->auth_user, what, (unsigned long long)r->count, per, s->client_ip);
	else
		session_log(s, MTAD_LOG_WARNING, "client=[%s] %s limit exceeded: %llu %s", s->client_ip,
			    what, (unsigned long long)r->count, per);
	quota_notice(s, login, what, r->count, per);
}

/* quota_now - milliseconds on the clock every loop shares. */
static uint64_t quota_now(void)
{
	return uv_hrtime() / 1000000u;
}

/* quota_limits - the key's limits: its send_limit_map line, else the settings. */
static struct policy_limits quota_limits(const struct smtp_session *s, const char *key)
{
	struct policy_limits global = {
		.messages_per_minute = s->srv->cfg->send_rate_limit,
		.recipients_per_day = s->srv->cfg->send_recipient_limit,
	};

	/*
	 * Mail from this machine (cron, logcheck) has no quota unless
	 * send_limit_map names its uid ("uid=33: 60 1000" for a web
	 * server's PHP): a refused cron mail is lost, not retried.
	 */
	if (s->local_uid >= 0)
		global = (struct policy_limits){ 0, 0 };
	return policy_limits_for(s->srv->shared->limit_map, key, global);
}

/*
 * quota_check - one more message (MAIL) or recipient (RCPT) of this
 * session's sender, under its limits; false when refused (450 given).
 */
static bool quota_check(struct smtp_session *s, bool rcpt)
{
	struct smtp_shared *sh = s->srv->shared;
	struct policy_quota_result r;
	struct policy_limits lim;
	char buf[64];
	const char *key = quota_key(s, buf, sizeof(buf));
	enum policy_quota_verdict v;
	long long limit;

	if (!key)
		return true;
	lim = quota_limits(s, key);
	limit = rcpt ? lim.recipients_per_day : lim.messages_per_minute;
	if (limit <= 0)
		return true;
	uv_mutex_lock(&sh->lock);
	v = rcpt ? policy_quota_recipient(sh->quota, key, quota_now(), (unsigned)limit, &r)
		 : policy_quota_message(sh->quota, key, quota_now(), (unsigned)limit, &r);
	uv_mutex_unlock(&sh->lock);
	if (v == POLICY_QUOTA_OK)
		return true;
	if (rcpt)
		quota_refuse(s, "recipient", "recipients in 1 day", &r);
	else
		quota_refuse(s, "rate", "messages in 60 s", &r);
	return false;
}

/* session_quota_mail - see session_int.h. */
bool session_quota_mail(struct smtp_session *s)
{
	return quota_check(s, false);
}

/* session_quota_rcpt - see session_int.h. */
bool session_quota_rcpt(struct smtp_session *s)
{
	return quota_check(s, true);
}

/* session_login_spread - see session_int.h. */
void session_login_spread(struct smtp_session *s)
{
	struct smtp_shared *sh = s->srv->shared;
	unsigned limit = s->srv->cfg->auth_login_max_addresses, n;
	struct policy_login_result r;
	char day[QUEUE_STATS_DAY_LEN + 1];

	if (!s->auth_user[0] || queue_stats_day(time(NULL), 0, day) < 0)
		return;
	uv_mutex_lock(&sh->lock);
	n = policy_quota_login(sh->quota, s->auth_user, s->client_ip, quota_now(),
			       (uint32_t)strtoul(day, NULL, 10), limit, &r);
	uv_mutex_unlock(&sh->lock);
	sender_stat(s, r.new_today ? QUEUE_STATS_SENDER_ADDRS : QUEUE_STATS_OTHER,
		    r.new_hour ? QUEUE_STATS_SLOT_ADDRS : QUEUE_STATS_OTHER, 1);
	if (r.warn)
		session_log(s, MTAD_LOG_WARNING, "sasl_username=%s logged in from %u client addresses "
			    "within an hour (auth_login_max_addresses = %u), now from %s: the "
			    "password may be stolen", s->auth_user, n, limit, s->client_ip);
}

/* session_sender_committed - see session_int.h. */
void session_sender_committed(struct smtp_session *s)
{
	sender_stat(s, QUEUE_STATS_SENDER_MSGS, QUEUE_STATS_SLOT_MSGS, 1);
	sender_stat(s, QUEUE_STATS_SENDER_RCPTS, QUEUE_STATS_SLOT_RCPTS, s->nrcpt);
}

/* session_sender_stop - see session_int.h. */
void session_sender_stop(struct smtp_session *s)
{
	free(s->from_scan);
	s->from_scan = NULL;
}
