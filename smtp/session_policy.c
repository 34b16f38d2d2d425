/*
 * session_policy.c - the session's side of the HELO policy and relay
 * control: gathering the facts (reverse name, whether the HELO name
 * resolves, trusted network), asking policy/ for a verdict at MAIL FROM
 * and RCPT TO, and what a rejection costs: the reply, one log line,
 * statistics, and 421 after max_policy_rejections.
 *
 * The HELO rules are applied at MAIL, not at EHLO, because the client
 * may still STARTTLS and AUTH: an authenticated session is never judged
 * by its HELO name (the reason mtad exists; see the README). A listener
 * with helo_reject_at=ehlo, where no AUTH is offered, judges at EHLO.
 *
 * DNS answers arrive asynchronously (util/dns.c); the greeting waits for
 * the client's reverse name, and when a rule needs the HELO name's
 * lookup still on its way, MAIL waits for it with input paused. Nothing
 * here blocks or does I/O itself.
 *
 * The HELO verdict is computed once per MAIL (mail_waits), even when
 * the MAIL waits for DNS. This file calls only session.c's primitives,
 * never verbs.c: a MAIL that waited goes on through s->mail_go_on,
 * which verbs.c set (see session_int.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "smtp/session_int.h"

/* ---- the server's policy settings ---- */

/* smtp_server_policy_update - see smtp.h. */
void smtp_server_policy_update(struct smtp_server *srv)
{
	size_t nown = mtad_own_addresses(srv->cfg, srv->own_addrs, POLICY_MAX_ADDRS);

	policy_settings_build(&srv->policy, srv->cfg, srv->policy_local, srv->policy_relay,
			      srv->own_addrs, nown);
}

/* ---- statistics ---- */

/* stats_today - the local date, the day part of statistics keys ("" when
 * there is none: then no key is made). */
static void stats_today(char day[16])
{
	if (queue_stats_day(time(NULL), 0, day) < 0)
		day[0] = '\0';
}

/* stats_add - one counter of the day's statistics (the key's format is
 * queue_stats_key_format's); rule for the per-rule counters, else NULL. */
static void stats_add(struct smtp_session *s, const char *day, enum queue_stats_kind what,
		      const char *rule)
{
	char key[QUEUE_STATS_KEY_MAX + 1];

	if (queue_stats_key_format(key, sizeof(key), day, what, rule, 0) > 0)
		queue_stats_add(s->srv->queue, key, 1);
}

/* stats_helo - the HELO name as the statistics keep it: lower case,
 * graphic ASCII (odd bytes and '/' become '_'). */
static void stats_helo(const struct smtp_session *s, char out[SESSION_HELO_MAX + 1])
{
	size_t n = 0;

	for (const char *p = s->helo; *p && n < SESSION_HELO_MAX; p++) {
		char c = *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p;

		out[n++] = (c > ' ' && c < 0x7f && c != '/') ? c : '_';
	}
	out[n] = '\0';
}

/* session_policy_count - one policy rejection: statistics, then the
 * per-connection limit. The client's address and HELO name only go into
 * the fixed-size sketches (queue_stats_note), never into a key: keys
 * named after them let one client fill the spool (issue 11). */
void session_policy_count(struct smtp_session *s, enum policy_rule rule)
{
	const char *name = policy_rule_name(rule);
	char day[16], helo[SESSION_HELO_MAX + 1];
	bool with_helo = rule != POLICY_RELAY && rule != POLICY_NO_HELO && s->helo[0];

	stats_today(day);
	stats_add(s, day, QUEUE_STATS_REJECT, name);
	if (!(s->rules_seen & (1u << rule))) {
		s->rules_seen |= 1u << rule;
		stats_add(s, day, QUEUE_STATS_CONN, name);
	}
	if (with_helo)
		stats_helo(s, helo);
	(void)queue_stats_note(s->srv->queue, day, name, s->client_ip, with_helo ? helo : NULL);
	if (++s->policy_rejections < s->srv->cfg->max_policy_rejections)
		return;
	session_log(s, MTAD_LOG_INFO, "too many rejected commands from %s", s->client_label);
	session_reply(s, 421, "4.7.0", "%s Error: too many rejected commands",
		      s->srv->cfg->hostname);
	session_close(s);
}

/* session_policy_accepted - a message was queued: counted by how the client came. */
void session_policy_accepted(struct smtp_session *s)
{
	char day[16];

	stats_today(day);
	stats_add(s, day, s->auth_user[0] ? QUEUE_STATS_ACCEPT_AUTH : QUEUE_STATS_ACCEPT_UNAUTH,
		  NULL);
}

/*
 * policy_reject - the rule's reply (naming rcpt when given), one log
 * line in Postfix's shape (to=<log_rcpt> for a RCPT), the count.
 */
static void policy_reject(struct smtp_session *s, const char *verb,
			  const struct policy_verdict *v, const char *rcpt, const char *log_rcpt)
{
	char extra[160];

	if (rcpt)
		session_reply(s, v->code, v->enhanced, "<%s>: %s", rcpt, v->text);
	else
		session_reply(s, v->code, v->enhanced, "%s", v->text);
	snprintf(extra, sizeof(extra), "rule=%s listener=%s", policy_rule_name(v->rule),
		 s->listener);
	session_log_reject(s, verb, log_rcpt, extra, "%d %s %s%s%s%s", v->code, v->enhanced,
			   rcpt ? "<" : "", rcpt ? rcpt : "", rcpt ? ">: " : "", v->text);
	session_policy_count(s, v->rule);
}

/* ---- DNS facts ---- */

/* dns_fact - a resolver answer as the policy reads it. */
static enum policy_dns dns_fact(enum mtad_dns_status st)
{
	switch (st) {
	case MTAD_DNS_FOUND: return POLICY_DNS_FOUND;
	case MTAD_DNS_NOTFOUND: return POLICY_DNS_NOTFOUND;
	default: return POLICY_DNS_TEMPFAIL;
	}
}

/* label_update - "name[ip]" for log lines. */
static void label_update(struct smtp_session *s)
{
	snprintf(s->client_label, sizeof(s->client_label), "%s[%s]", s->client_name, s->client_ip);
}

static void policy_dns_arrived(struct smtp_session *s);

/* rdns_done - the client's reverse name (forward-confirmed) or its absence. */
static void rdns_done(void *arg, enum mtad_dns_status st, const char *name)
{
	struct smtp_session *s = arg;

	s->rdns_query = NULL;
	s->rdns_pending = false;
	s->rdns = dns_fact(st);
	if (st == MTAD_DNS_FOUND && name) {
		snprintf(s->client_name, sizeof(s->client_name), "%s", name);
		label_update(s);
	}
	policy_dns_arrived(s);
}

/* helo_done - whether the HELO name has A/AAAA records. */
static void helo_done(void *arg, enum mtad_dns_status st, unsigned naddrs)
{
	struct smtp_session *s = arg;

	(void)naddrs;
	s->helo_query = NULL;
	s->helo_dns_pending = false;
	s->helo_dns = dns_fact(st);
	policy_dns_arrived(s);
}

/* session_policy_start - a new connection: trusted?, and its reverse name on the way. */
void session_policy_start(struct smtp_session *s)
{
	const struct policy_settings *set = &s->srv->policy;

	if (s->local_uid >= 0) {
		/* sendmail(1) on this machine: the kernel vouches for the uid. */
		snprintf(s->client_name, sizeof(s->client_name), "localhost");
		snprintf(s->client_label, sizeof(s->client_label), "local[uid=%ld]", s->local_uid);
		s->trusted = true;
		return;
	}
	snprintf(s->client_name, sizeof(s->client_name), "unknown");
	label_update(s);
	s->trusted = mtad_in_networks(set->trusted, set->ntrusted, s->client_ip);
	if (!s->srv->dns)
		return;
	s->rdns_query = mtad_dns_reverse(s->srv->dns, s->client_ip, rdns_done, s);
	s->rdns_pending = s->rdns_query != NULL;
}

/* session_policy_stop - no DNS callback may reach a session that is going away. */
void session_policy_stop(struct smtp_session *s)
{
	if (s->rdns_query)
		mtad_dns_cancel(s->rdns_query);
	if (s->helo_query)
		mtad_dns_cancel(s->helo_query);
	s->rdns_query = s->helo_query = NULL;
	s->rdns_pending = s->helo_dns_pending = false;
}

/* helo_is_name - a host name, not an address literal or a bare address. */
static bool helo_is_name(const char *helo)
{
	struct mtad_addr a;

	return helo[0] != '[' && mtad_addr_parse(helo, strlen(helo), false, &a) != 0;
}

/* client_facts - what the policy is told about this session. */
static struct policy_client client_facts(const struct smtp_session *s)
{
	return (struct policy_client){
		.helo = s->helo_seen ? s->helo : NULL,
		.client_ip = s->client_ip,
		.rdns = s->rdns,
		.helo_dns = s->helo_dns,
		.authenticated = s->auth_user[0] != '\0',
		.trusted = s->trusted,
	};
}

/*
 * session_policy_ehlo - a new HELO/EHLO name: look it up when the rules
 * need it, and judge it now on a helo_reject_at=ehlo listener. Returns
 * false when the name was refused (the reply is given).
 */
bool session_policy_ehlo(struct smtp_session *s)
{
	const struct policy_settings *set = &s->srv->policy;
	struct policy_verdict v;

	if (s->helo_query)
		mtad_dns_cancel(s->helo_query);
	s->helo_query = NULL;
	s->helo_dns_pending = false;
	s->helo_dns = POLICY_DNS_UNKNOWN;
	s->blocked.rule = POLICY_ACCEPT;
	if (s->srv->dns && policy_rule_enabled(set, POLICY_UNRESOLVABLE) && helo_is_name(s->helo)) {
		s->helo_query = mtad_dns_forward(s->srv->dns, s->helo, helo_done, s);
		s->helo_dns_pending = s->helo_query != NULL;
	}
	if (!s->helo_reject_ehlo)
		return true;
	v = policy_helo_verdict(set, &(struct policy_client){
		.helo = s->helo, .client_ip = s->client_ip, .rdns = s->rdns,
		.helo_dns = POLICY_DNS_UNKNOWN, .trusted = s->trusted });
	if (v.rule == POLICY_ACCEPT)
		return true;
	policy_reject(s, s->esmtp ? "EHLO" : "HELO", &v, NULL, NULL);
	return false;
}

/*
 * mail_waits - the verdict needs a DNS answer still on its way: one a
 * rule that is on depends on (then the verdict is not computed yet), or
 * the client's name for the log line of a rejection (then the verdict
 * is kept for that line: only the no-rdns rule reads the reverse lookup,
 * and it is off, or the first test had waited). Accepted mail does not
 * wait for the name. The verdict is computed here, once per MAIL.
 */
static bool mail_waits(struct smtp_session *s)
{
	const struct policy_settings *set = &s->srv->policy;
	struct policy_client c;

	if ((s->helo_dns_pending && policy_rule_enabled(set, POLICY_UNRESOLVABLE)) ||
	    (s->rdns_pending && policy_rule_enabled(set, POLICY_NO_RDNS)))
		return true;
	if (!s->mail_judged) {
		c = client_facts(s);
		s->mail_verdict = policy_helo_verdict(set, &c);
		s->mail_judged = true;
	}
	return s->rdns_pending && s->mail_verdict.rule != POLICY_ACCEPT;
}

/* mail_verdict - the HELO rules' verdict at MAIL given; true when MAIL may go on. */
static bool mail_verdict(struct smtp_session *s)
{
	struct policy_verdict v = s->mail_verdict;

	if (v.rule == POLICY_ACCEPT) {
		s->blocked.rule = POLICY_ACCEPT;
		return true;
	}
	s->blocked = v;
	policy_reject(s, "MAIL", &v, NULL, NULL);
	return false;
}

/*
 * session_policy_mail - MAIL FROM was parsed: judge the session. Returns
 * true to go on now; false when refused (reply given) or when the
 * verdict waits for DNS (state STATE_POLICY_WAIT; s->mail_go_on
 * finishes the command later, if it may go on).
 */
bool session_policy_mail(struct smtp_session *s)
{
	if (s->auth_user[0] || s->trusted)
		return true;
	s->mail_judged = false;
	if (mail_waits(s)) {
		s->state = STATE_POLICY_WAIT;
		s->io.pause(s->io.ctx, true);
		uv_timer_stop(&s->timer);
		return false;
	}
	return mail_verdict(s);
}

/* policy_dns_arrived - an answer came; a MAIL waiting for it is judged now. */
static void policy_dns_arrived(struct smtp_session *s)
{
	if (s->greet_pending) {
		if (s->rdns_pending)
			return;
		s->greet_pending = false;
		session_greet(s);
		session_resume(s, STATE_COMMAND);
		return;
	}
	if (s->state != STATE_POLICY_WAIT || mail_waits(s))
		return;
	s->state = STATE_COMMAND;
	if (mail_verdict(s))
		s->mail_go_on(s);
	if (s->state == STATE_COMMAND)
		session_resume(s, STATE_COMMAND);
}

/*
 * session_policy_blocked - RCPT outside a transaction: after a MAIL the
 * HELO rules refused, the rule's reply again (rcpt, when the command's
 * address parsed, only for the log's to=). Returns true to go on (to
 * the usual 503: not a policy matter).
 */
bool session_policy_blocked(struct smtp_session *s, const char *rcpt)
{
	if (s->in_transaction || s->blocked.rule == POLICY_ACCEPT)
		return true;
	policy_reject(s, "RCPT", &s->blocked, NULL, rcpt);
	return false;
}

/* session_policy_rcpt - relay control for one recipient. Returns true to go on. */
bool session_policy_rcpt(struct smtp_session *s, const struct smtp_path *path)
{
	struct policy_verdict v;

	v = policy_relay_verdict(&s->srv->policy, path->addr, path->had_route,
				 s->auth_user[0] != '\0', s->trusted);
	if (v.rule == POLICY_ACCEPT)
		return true;
	policy_reject(s, "RCPT", &v, path->addr, path->addr);
	return false;
}
