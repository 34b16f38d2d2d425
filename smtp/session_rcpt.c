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
 * Follows: RFC 5321 §3.9.1 (aliases: the envelope recipient is replaced,
 * the header is not touched), RFC 3461 §4.2 (ORCPT).
 */
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

	if (strcasecmp(domain, x->s->srv->cfg->hostname) == 0)
		return true;
	for (size_t i = 0; i < set->nlocal_domains; i++)
		if (strcasecmp(domain, set->local_domains[i]) == 0)
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

/* session_rcpt_add - see session_int.h. */
bool session_rcpt_add(struct smtp_session *s, const char *addr)
{
	if (s->srv->shared->aliases) {
		if (!expand(s, addr))
			return false;
	} else {
		/* Without aliases a repeated RCPT is kept, as it always was. */
		if (!(s->rcpt[s->nrcpt] = strdup(addr))) {
			session_reply(s, 451, "4.3.0", "Error: out of memory");
			return false;
		}
		s->orcpt[s->nrcpt++] = NULL;
	}
	session_reply(s, 250, "2.1.5", "Ok");
	return true;
}
