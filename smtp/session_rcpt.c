/*
 * session_rcpt.c - a recipient the checks let through joins the
 * transaction: as given, or, when it is a local name with an alias
 * (alias_maps, local/local.h), as the addresses the alias expands to,
 * each remembering the address the client gave (ORCPT), so `mtaq show`
 * and the delivery log can say both. Expansion happens here, when the
 * message is received, not at delivery: what is queued is final.
 *
 * Must not: do I/O (the table and its include files were read at start
 * or reload), take more recipients than max_recipients allows (an alias
 * that would go past it is refused as a whole, never cut short), add a
 * recipient twice, or accept an alias that leads nowhere deliverable.
 *
 * Before that, for the host name and the local domains, whether the
 * recipient exists at all (issue 16, no backscatter): postmaster
 * always, an alias name, a key of local_recipient_maps, or, with
 * recipient_verify = yes and no map, what the next hop says to an RCPT
 * probe (mtad hands the server the prober: srv->verifier). The probe is
 * asynchronous: the RCPT waits in STATE_RCPT_WAIT, input paused, for at
 * most recipient_verify_timeout seconds (then 450). Authenticated and
 * trusted clients are checked too: a typo in a local address fails at
 * RCPT for everyone instead of coming back as a bounce.
 *
 * Follows: RFC 5321 §3.9.1 (aliases: the envelope recipient is replaced,
 * the header is not touched), RFC 3461 §4.2 (ORCPT), RFC 5321 §4.1.1.3
 * (postmaster), RFC 3463 (5.1.1 and 4.1.1: bad destination mailbox),
 * RFC 3461 §4.1, §4.2 (NOTIFY= and ORCPT= kept with each recipient);
 * RFC 6531 §3.3 (local domains compared in A-label form, util/idna.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "local/local.h"
#include "smtp/session_int.h"

/* What one expansion collects before any of it joins the transaction. */
struct expansion {
	struct smtp_session *s;
	const char *given;	/* the address the client gave */
	char **addr;
	unsigned n, max;	/* max: the room left under max_recipients */
	bool too_many;
	unsigned refused;
};

/* is_local - the host name or a local domain: where aliases apply. */
static bool is_local(void *arg, const char *domain)
{
	const struct expansion *x = arg;
	const struct policy_settings *set = &x->s->srv->policy;

	size_t len = strlen(domain);

	/* In A-label form (RFC 6531 §3.3): a look-alike is not local. */
	if (mtad_domain_same(domain, len, x->s->srv->cfg->hostname, strlen(x->s->srv->cfg->hostname)))
		return true;
	for (size_t i = 0; i < set->nlocal_domains; i++)
		if (mtad_domain_same(domain, len, set->local_domains[i], strlen(set->local_domains[i])))
			return true;
	return false;
}

/* emit - one final recipient; past the room left, the alias is refused as a whole. */
static int emit(void *arg, const char *addr)
{
	struct expansion *x = arg;

	if (x->n == x->max) {
		x->too_many = true;
		return 0;
	}
	if (!(x->addr[x->n] = strdup(addr)))
		return -1;
	x->n++;
	return 0;
}

/* refuse - a target mtad will not deliver to: the log says which and why. */
static void refuse(void *arg, const char *alias, const char *target, const char *why)
{
	struct expansion *x = arg;

	x->refused++;
	session_log(x->s, MTAD_LOG_WARNING, "%s: alias %s of <%s>: target %s refused: %s",
		    x->s->client_label, alias, x->given, target, why);
}

/*
 * dsn_attach - recipient slot i gets the DSN parameters of the RCPT being
 * decided (RFC 3461 §4.1, §4.2; every address an alias expands to gets
 * the same, as Postfix copies them). -1 out of memory.
 */
static int dsn_attach(struct smtp_session *s, unsigned i)
{
	s->notify[i] = s->rcpt_params.notify;
	s->dsn_orcpt[i] = NULL;
	if (s->rcpt_params.has_orcpt && !(s->dsn_orcpt[i] = strdup(s->rcpt_params.orcpt)))
		return -1;
	return 0;
}

/* in_transaction - is addr a recipient already (any case)? */
static bool in_transaction(const struct smtp_session *s, const char *addr)
{
	for (unsigned i = 0; i < s->nrcpt; i++)
		if (strcasecmp(s->rcpt[i], addr) == 0)
			return true;
	return false;
}

/* take - the expansion's addresses join the transaction (taking them over). */
static int take(struct smtp_session *s, struct expansion *x)
{
	for (unsigned i = 0; i < x->n; i++) {
		char *orcpt = NULL;

		if (in_transaction(s, x->addr[i]))
			continue;
		if (strcasecmp(x->addr[i], x->given) != 0 && !(orcpt = strdup(x->given)))
			return -1;
		if (dsn_attach(s, s->nrcpt) != 0) {
			free(orcpt);
			return -1;
		}
		s->rcpt[s->nrcpt] = x->addr[i];
		s->orcpt[s->nrcpt++] = orcpt;
		x->addr[i] = NULL;
	}
	return 0;
}

/* expand - addr through the aliases; false when refused (reply given). */
static bool expand(struct smtp_session *s, const char *addr)
{
	const struct local_alias_ops ops = { .is_local = is_local, .emit = emit, .refuse = refuse };
	struct expansion x = { .s = s, .given = addr, .max = s->rcpt_cap - s->nrcpt };
	bool ok = false;
	int n;

	if (!(x.addr = calloc(x.max, sizeof(*x.addr)))) {
		session_reply(s, 451, "4.3.0", "Error: out of memory");
		return false;
	}
	/* One more than there is room for: emit sees it and the alias is
	 * refused as a whole, never cut short. */
	n = local_aliases_expand(s->srv->shared->aliases, addr, s->srv->cfg->hostname, &ops, &x,
				 x.max + 1);
	if (n < 0 || (n > 0 && !x.too_many && take(s, &x) != 0)) {
		session_reply(s, 451, "4.3.0", "Error: out of memory");
	} else if (x.too_many) {
		session_reply(s, 452, "4.5.3", "Error: too many recipients");
		session_log_reject(s, "RCPT", addr, NULL, "452 4.5.3 <%s>: alias expands past "
				   "max_recipients", addr);
	} else if (n == 0) {
		session_reply(s, 550, "5.1.1", "<%s>: alias has no deliverable address", addr);
		session_log_reject(s, "RCPT", addr, NULL, "550 5.1.1 <%s>: alias has no deliverable "
				   "address (%u targets refused)", addr, x.refused);
	} else {
		ok = true;
	}
	for (unsigned i = 0; i < x.n; i++)
		free(x.addr[i]);
	free(x.addr);
	return ok;
}

/* session_rcpt_add - see session_int.h: the milters are asked first, when there are. */
bool session_rcpt_add(struct smtp_session *s, const char *addr)
{
	if (s->milters)
		return session_milter_rcpt(s, addr);	/* they call session_rcpt_take */
	return session_rcpt_take(s, addr);
}

/* session_rcpt_take - see session_int.h. */
bool session_rcpt_take(struct smtp_session *s, const char *addr)
{
	if (s->srv->shared->aliases) {
		if (!expand(s, addr))
			return false;
	} else {
		/* Without aliases a repeated RCPT is kept, as it always was. */
		if (dsn_attach(s, s->nrcpt) != 0 || !(s->rcpt[s->nrcpt] = strdup(addr))) {
			free(s->dsn_orcpt[s->nrcpt]);
			s->dsn_orcpt[s->nrcpt] = NULL;
			session_reply(s, 451, "4.3.0", "Error: out of memory");
			return false;
		}
		s->orcpt[s->nrcpt++] = NULL;
	}
	session_reply(s, 250, "2.1.5", "Ok");
	return true;
}

/* ---- does a local recipient exist? ---- */

/* domain_is_local - the host name or one of local_domains. */
static bool domain_is_local(struct smtp_session *s, const char *domain)
{
	struct expansion x = { .s = s };

	return is_local(&x, domain);
}

/* rcpt_take - the checks are passed: the quota, then the transaction. */
static bool rcpt_take(struct smtp_session *s, const char *addr)
{
	if (!session_quota_rcpt(s))
		return false;	/* too many recipients today: 450 4.7.1 */
	return session_rcpt_add(s, addr);
}

/* reject_unknown - Postfix's reply and log line for a recipient that does not exist. */
static void reject_unknown(struct smtp_session *s, const char *addr)
{
	session_reply(s, 550, "5.1.1", "<%s>: Recipient address rejected: User unknown", addr);
	session_log_reject(s, "RCPT", addr, NULL,
			   "550 5.1.1 <%s>: Recipient address rejected: User unknown", addr);
}

/* reject_unverified - the probe got no answer: try later (450 4.1.1, as Postfix). */
static void reject_unverified(struct smtp_session *s, const char *addr, const char *why)
{
	session_reply(s, 450, "4.1.1", "<%s>: Recipient address rejected: unverified address: %s",
		      addr, why);
	session_log_reject(s, "RCPT", addr, NULL, "450 4.1.1 <%s>: Recipient address rejected: "
			   "unverified address: %s", addr, why);
}

/* verdict - a probe's (or the cache's) answer, given. */
static bool verdict(struct smtp_session *s, const char *addr, int code, const char *text)
{
	if (code / 100 == 2)
		return rcpt_take(s, addr);
	if (code / 100 == 5)
		reject_unknown(s, addr);
	else
		reject_unverified(s, addr, text);
	return false;
}

/* wait_over - the RCPT that waited is answered (or timed out): the session reads on. */
static void wait_over(struct smtp_session *s, int code, const char *text)
{
	uv_timer_stop(&s->timer);
	s->rcpt_wait = NULL;
	s->state = STATE_COMMAND;
	if (verdict(s, s->rcpt_waiting, code, text)) {
		s->verbs[SMTP_RCPT].ok++;
		s->commands_ok++;
	}
	if (s->state == STATE_COMMAND)
		session_resume(s, STATE_COMMAND);
}

/* probe_answered - srv->verifier's callback, on this session's loop. */
static void probe_answered(void *arg, int code, const char *text)
{
	struct smtp_session *s = arg;

	if (s->state != STATE_RCPT_WAIT) {
		s->rcpt_wait = NULL;
		return;
	}
	wait_over(s, code, text);
}

/* probe_timeout - recipient_verify_timeout passed: 450, the probe goes on for the cache. */
static void probe_timeout(uv_timer_t *timer)
{
	struct smtp_session *s = timer->data;

	if (s->state != STATE_RCPT_WAIT)
		return;
	s->srv->verifier.cancel(s->rcpt_wait);
	wait_over(s, 450, "verification timed out");
}

/* probe - recipient_verify: ask the next hop, now or later. */
static bool probe(struct smtp_session *s, const char *addr)
{
	const struct smtp_rcpt_verifier *v = &s->srv->verifier;
	char text[600];
	int code;

	code = v->verify(v->ctx, addr, probe_answered, s, &s->rcpt_wait, text, sizeof(text));
	if (code != 0)
		return verdict(s, addr, code, text);
	snprintf(s->rcpt_waiting, sizeof(s->rcpt_waiting), "%s", addr);
	s->state = STATE_RCPT_WAIT;
	s->io.pause(s->io.ctx, true);
	if (session_set_timer(s, (uint64_t)s->srv->cfg->recipient_verify_timeout * 1000,
			      probe_timeout) != 0) {
		v->cancel(s->rcpt_wait);
		s->rcpt_wait = NULL;
		s->state = STATE_COMMAND;
		s->io.pause(s->io.ctx, false);
		reject_unverified(s, addr, "internal error");
	}
	return false;
}

/* is_postmaster - RFC 5321 §4.1.1.3: postmaster@ every local domain is always there. */
static bool is_postmaster(const char *addr)
{
	return strncasecmp(addr, "postmaster@", 11) == 0 || strcasecmp(addr, "postmaster") == 0;
}

/* has_alias - an alias name (the local part) is a known recipient. */
static bool has_alias(const struct smtp_session *s, const char *addr, const char *at)
{
	char local[SMTP_PATH_MAX];
	size_t n;

	if (!s->srv->shared->aliases || (size_t)(at - addr) >= sizeof(local))
		return false;
	memcpy(local, addr, (size_t)(at - addr));
	local[at - addr] = '\0';
	return local_aliases_lookup(s->srv->shared->aliases, local, &n) != NULL;
}

/* session_rcpt_check - see session_int.h. */
bool session_rcpt_check(struct smtp_session *s, const char *addr)
{
	const char *at = strrchr(addr, '@');
	const struct policy_rcpt_map *map = s->srv->shared->rcpt_map;
	bool verify = s->srv->verifier.ctx && strcmp(s->srv->cfg->recipient_verify, "yes") == 0;

	if (!at || (!map && !verify) || !domain_is_local(s, at + 1) || is_postmaster(addr) ||
	    has_alias(s, addr, at))
		return rcpt_take(s, addr);
	if (map) {
		if (policy_rcpt_known(map, addr))
			return rcpt_take(s, addr);
		reject_unknown(s, addr);
		return false;
	}
	return probe(s, addr);
}

/* session_rcpt_stop - see session_int.h. */
void session_rcpt_stop(struct smtp_session *s)
{
	if (s->rcpt_wait)
		s->srv->verifier.cancel(s->rcpt_wait);
	s->rcpt_wait = NULL;
}
