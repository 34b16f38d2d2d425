/*
 * verify.c - recipient verification (recipient_verify = yes): does the
 * next hop of a local domain accept this recipient? An RCPT probe over
 * the SMTP client (deliver/client*.c: connect, EHLO, MAIL FROM:<>,
 * RCPT TO:<addr>, RSET, QUIT; no DATA ever), its answer kept in a
 * bounded cache (policy/verify_cache.c) for recipient_verify_positive_ttl
 * or _negative_ttl. Concurrent questions about one address share one
 * probe; at most VERIFY_MAX_PROBES run at once per loop (more get a
 * temporary failure: a flood of made-up names must not become a flood
 * of connections to the mailbox server).
 *
 * One struct deliver_verify per event loop (mtad/loops.c): its probes
 * run on that loop, its callbacks come back on it, and its cache is its
 * own, so nothing here is locked (the cost: each loop asks once).
 *
 * Must not: block (DNS through util/dns.c, the connection through
 * libuv), send DATA, keep more than recipient_verify_cache_size answers,
 * cache a temporary failure, or call a waiter after it was cancelled.
 * Over an LMTP route (lmtp:[host]:port or lmtp:unix:/path) the probe
 * says LHLO, and a Unix socket is connected as delivery connects it.
 *
 * Follows: RFC 5321 §3.3 (a transaction ended by RSET, §4.1.1.5),
 * RFC 3463 (4.1.1 / 5.1.1), RFC 6531 (a UTF-8 address probed with
 * SMTPUTF8, its domain routed as its A-label); Postfix's verify(8) as the model.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "deliver/deliver.h"
#include "policy/policy.h"

#define VERIFY_MAX_PROBES 32

struct deliver_verify_wait {
	struct probe *p;
	deliver_verify_cb cb;
	void *arg;
	struct deliver_verify_wait *next;
};

struct probe {
	struct deliver_verify *v;
	char addr[SMTP_PATH_MAX];
	char host[256];			/* the next hop, for texts */
	int port;
	bool lmtp;			/* an LMTP route: LHLO */
	char path[SMTP_ROUTE_PATH_MAX];	/* an LMTP route's Unix socket, or "" */
	struct mtad_dns_query *query;
	struct smtp_client *client;
	const char *rcpt[1];
	struct deliver_verify_wait *waiters;
	struct probe *next;
};

struct deliver_verify {
	uv_loop_t *loop;
	const struct mtad_config *cfg;
	struct mtad_dns *dns;
	struct smtp_route routes[MTAD_MAX_ROUTES];
	size_t nroutes;
	struct smtp_route relayhost;
	struct policy_verify_cache *cache;	/* made at the first question */
	struct probe *probes;
	unsigned nprobes;
};

/* now_sec - the wall clock, for the cache's times to live. */
static int64_t now_sec(void)
{
	return (int64_t)time(NULL);
}

/* deliver_verify_reload - see deliver.h. */
void deliver_verify_reload(struct deliver_verify *v)
{
	char err[256];

	v->nroutes = 0;
	for (size_t i = 0; i < v->cfg->nroutes && i < MTAD_MAX_ROUTES; i++)
		if (smtp_route_parse(v->cfg->routes[i], false, &v->routes[v->nroutes], err,
				     sizeof(err)) == 0)
			v->nroutes++;
	memset(&v->relayhost, 0, sizeof(v->relayhost));
	if (v->cfg->relayhost[0] &&
	    smtp_route_parse(v->cfg->relayhost, true, &v->relayhost, err, sizeof(err)) != 0)
		memset(&v->relayhost, 0, sizeof(v->relayhost));
}

/* deliver_verify_new - see deliver.h. */
struct deliver_verify *deliver_verify_new(uv_loop_t *loop, const struct mtad_config *cfg,
					  struct mtad_dns *dns)
{
	struct deliver_verify *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	v->loop = loop;
	v->cfg = cfg;
	v->dns = dns;
	deliver_verify_reload(v);
	return v;
}

/* probe_unlink - p leaves the loop's list of probes. */
static void probe_unlink(struct probe *p)
{
	struct probe **pp = &p->v->probes;

	while (*pp != p)
		pp = &(*pp)->next;
	*pp = p->next;
	p->v->nprobes--;
}

/* probe_end - the answer goes to every waiter (known answers to the cache too); p is freed. */
static void probe_end(struct probe *p, int code, const char *text)
{
	struct deliver_verify *v = p->v;
	struct deliver_verify_wait *w = p->waiters, *next;

	if (p->query)
		mtad_dns_cancel(p->query);
	if (p->client)
		smtp_client_close(p->client);
	probe_unlink(p);
	if ((code / 100 == 2 || code / 100 == 5) && v->cache &&
	    policy_verify_cache_put(v->cache, p->addr, code / 100 == 2, now_sec()) != 0)
		mtad_log(MTAD_LOG_WARNING, "recipient verify: out of memory caching <%s>", p->addr);
	mtad_log(MTAD_LOG_INFO, "recipient verify: <%s> via %s:%d: %d %s", p->addr, p->host,
		 p->port, code, text);
	for (; w; w = next) {
		next = w->next;
		w->cb(w->arg, code, text);
		free(w);
	}
	free(p);
}

/* reply_text - "550 5.1.1 text" of a reply, or the client's own text (code 0). */
static void reply_text(const struct smtp_client_reply *r, char *buf, size_t size)
{
	if (r->code == 0)
		snprintf(buf, size, "%s", r->text);
	else
		snprintf(buf, size, "%d %s %s", r->code, r->enhanced, r->text);
}

/* probe_sent - the RCPT reply is the answer (the client sent RSET after it, never DATA). */
static void probe_sent(void *arg, bool ok, const struct smtp_client_reply *results,
		       const struct smtp_client_reply *data)
{
	struct probe *p = arg;
	char text[600];

	(void)ok;
	(void)data;
	reply_text(&results[0], text, sizeof(text));
	probe_end(p, results[0].code, text);
}

/* probe_ready - connected and greeted: the envelope, then RSET. */
static void probe_ready(void *arg, const struct smtp_client_reply *r)
{
	struct probe *p = arg;
	struct smtp_client_message msg = {
		.sender = "", .rcpt = p->rcpt, .nrcpt = 1, .envelope_only = true,
		/* a UTF-8 address is probed with SMTPUTF8 (RFC 6531), or refused
		 * 5.6.7 by a next hop that could never take its mail */
		.smtputf8 = !mtad_ascii(p->rcpt[0], strlen(p->rcpt[0])),
	};
	char text[600];

	if (r->code / 100 != 2) {
		reply_text(r, text, sizeof(text));
		/* Refused at the greeting or EHLO: says nothing about the address. */
		probe_end(p, r->code / 100 == 5 ? 450 : (r->code ? r->code : 450), text);
		return;
	}
	if (smtp_client_send(p->client, &msg, probe_sent, p) != 0)
		probe_end(p, 450, "cannot start the probe's transaction");
}

/* probe_connect - to ss (the first address of the next hop) or, when p has
 * one, to its LMTP Unix socket (ss NULL); -1 when it cannot start. */
static int probe_connect(struct probe *p, const struct sockaddr_storage *ss)
{
	struct sockaddr_storage sa;
	struct smtp_client_options opt = {
		.helo_name = p->v->cfg->hostname, .peer_name = p->host, .tls = SMTP_TLS_NONE,
		.tls_client = NULL, .timeout = p->v->cfg->recipient_verify_timeout,
		.lmtp = p->lmtp,
	};

	if (p->path[0]) {
		p->client = smtp_client_connect_unix(p->v->loop, p->path, &opt, probe_ready, p);
		return p->client ? 0 : -1;
	}
	sa = *ss;
	if (sa.ss_family == AF_INET)
		((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)p->port);
	else
		((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)p->port);
	p->client = smtp_client_connect(p->v->loop, (struct sockaddr *)&sa, &opt, probe_ready, p);
	return p->client ? 0 : -1;
}

/* probe_resolved - the next hop's addresses. */
static void probe_resolved(void *arg, enum mtad_dns_status status,
			   const struct sockaddr_storage *addrs, size_t naddrs)
{
	struct probe *p = arg;

	p->query = NULL;
	if (status != MTAD_DNS_FOUND || naddrs == 0) {
		probe_end(p, 450, status == MTAD_DNS_NOTFOUND ? "next hop not found in DNS"
							      : "next hop lookup failed");
		return;
	}
	if (probe_connect(p, &addrs[0]) != 0)
		probe_end(p, 450, "cannot connect to the next hop");
}

/* literal - host as an IPv4 or IPv6 address, port 0; false when it is a name. */
static bool literal(const char *host, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	return uv_ip4_addr(host, 0, (struct sockaddr_in *)ss) == 0 ||
	       uv_ip6_addr(host, 0, (struct sockaddr_in6 *)ss) == 0;
}

/*
 * probe_start - where addr's domain goes: its route, else relayhost,
 * else the domain itself. A route by name (MX form included) is probed
 * at the name's own addresses: a local domain's route names its
 * mailbox hosts. Answers through probe_end, never from inside this call
 * unless it returns -1.
 */
static int probe_start(struct probe *p)
{
	char alabel[MTAD_DOMAIN_ASCII_MAX + 2];
	const char *domain = strrchr(p->addr, '@') + 1;
	const struct smtp_route *r;
	struct sockaddr_storage ss;

	/* Routes and DNS know a U-label domain by its A-label. */
	if (mtad_domain_to_ascii(domain, strlen(domain), alabel, sizeof(alabel)) > 0)
		domain = alabel;
	r = smtp_route_lookup(p->v->routes, p->v->nroutes, &p->v->relayhost, domain);

	snprintf(p->host, sizeof(p->host), "%s", r ? r->host : domain);
	p->port = r ? r->port : 25;
	p->lmtp = r && r->lmtp;
	if (r && r->path[0]) {
		snprintf(p->path, sizeof(p->path), "%s", r->path);
		snprintf(p->host, sizeof(p->host), "%s", r->path);
		return probe_connect(p, NULL);
	}
	if (literal(p->host, &ss))
		return probe_connect(p, &ss);
	if (!p->v->dns)
		return -1;
	p->query = mtad_dns_addresses(p->v->dns, p->host, probe_resolved, p);
	return p->query ? 0 : -1;
}

/* find_probe - the probe running for addr, or NULL. */
static struct probe *find_probe(struct deliver_verify *v, const char *addr)
{
	for (struct probe *p = v->probes; p; p = p->next)
		if (strcasecmp(p->addr, addr) == 0)
			return p;
	return NULL;
}

/* new_probe - a probe for addr on its way; NULL (text set) when none can start. */
static struct probe *new_probe(struct deliver_verify *v, const char *addr, const char **why)
{
	struct probe *p;

	*why = "too many verification probes at once";
	if (v->nprobes >= VERIFY_MAX_PROBES || !strchr(addr, '@') || strlen(addr) >= SMTP_PATH_MAX)
		return NULL;
	*why = "out of memory";
	if (!(p = calloc(1, sizeof(*p))))
		return NULL;
	p->v = v;
	snprintf(p->addr, sizeof(p->addr), "%s", addr);
	p->rcpt[0] = p->addr;
	p->next = v->probes;
	v->probes = p;
	v->nprobes++;
	return p;
}

/* deliver_verify_rcpt - see deliver.h. */
int deliver_verify_rcpt(struct deliver_verify *v, const char *addr, deliver_verify_cb cb,
			void *arg, struct deliver_verify_wait **wait, char *text, size_t textlen)
{
	struct probe *p;
	struct deliver_verify_wait *w;
	const char *why;
	bool fresh = false;

	*wait = NULL;
	if (!v->cache && !(v->cache = policy_verify_cache_new(v->cfg->recipient_verify_cache_size,
							      v->cfg->recipient_verify_positive_ttl,
							      v->cfg->recipient_verify_negative_ttl))) {
		snprintf(text, textlen, "out of memory");
		return 450;
	}
	switch (policy_verify_cache_get(v->cache, addr, now_sec())) {
	case POLICY_VERIFY_KNOWN:
		snprintf(text, textlen, "cached: deliverable");
		return 250;
	case POLICY_VERIFY_UNKNOWN:
		snprintf(text, textlen, "cached: undeliverable");
		return 550;
	default:
		break;
	}
	if (!(p = find_probe(v, addr))) {
		if (!(p = new_probe(v, addr, &why))) {
			snprintf(text, textlen, "%s", why);
			return 450;
		}
		fresh = true;
	}
	if (!(w = calloc(1, sizeof(*w)))) {
		if (fresh)
			probe_end(p, 450, "out of memory");
		snprintf(text, textlen, "out of memory");
		return 450;
	}
	*w = (struct deliver_verify_wait){ .p = p, .cb = cb, .arg = arg, .next = p->waiters };
	p->waiters = w;
	*wait = w;
	if (fresh && probe_start(p) != 0) {
		*wait = NULL;
		p->waiters = NULL;
		free(w);
		probe_end(p, 450, "cannot start the probe");
		snprintf(text, textlen, "cannot reach the next hop of %s", strrchr(addr, '@') + 1);
		return 450;
	}
	return 0;
}

/* deliver_verify_cancel - see deliver.h. */
void deliver_verify_cancel(struct deliver_verify_wait *w)
{
	struct deliver_verify_wait **pp;

	if (!w)
		return;
	for (pp = &w->p->waiters; *pp != w; pp = &(*pp)->next)
		;
	*pp = w->next;
	free(w);
	/* The probe goes on without waiters: its answer still fills the cache. */
}

/* deliver_verify_free - see deliver.h. */
void deliver_verify_free(struct deliver_verify *v)
{
	if (!v)
		return;
	while (v->probes) {
		struct probe *p = v->probes;
		struct deliver_verify_wait *w, *next;

		for (w = p->waiters; w; w = next) {
			next = w->next;
			free(w);
		}
		p->waiters = NULL;
		if (p->query)
			mtad_dns_cancel(p->query);
		if (p->client)
			smtp_client_close(p->client);
		v->probes = p->next;
		free(p);
	}
	policy_verify_cache_free(v->cache);
	free(v);
}
