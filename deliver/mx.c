/*
 * mx.c - where a group's mail goes: the route's host (or an LMTP route's
 * Unix socket), the relayhost, or
 * the domain's MX records in preference order (equal ones shuffled),
 * else its own addresses (RFC 5321 §5.1); a null MX fails at once
 * (RFC 7505). Also whether an address is one of our own listeners.
 *
 * Must not: connect anywhere the configuration and DNS did not name;
 * block (DNS is c-ares on the loop); keep more than MAX_ADDRS addresses
 * per group; deliver to ourselves (a stale MX or a missing route would
 * hand mail to mtad forever: loops_to_myself, with util/'s list of this
 * machine's addresses).
 *
 * Follows: RFC 5321 §5.1 (MX, then A/AAAA), RFC 7505 (Null MX).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/deliver_int.h"

/*
 * loops_to_myself - is addr one of our own listeners? A stale MX or a
 * missing route would otherwise make mtad hand mail to itself forever.
 * A wildcard listener is any of this machine's addresses
 * (mtad_own_addresses, taken at start).
 */
bool loops_to_myself(const struct deliver *d, const struct sockaddr_storage *addr)
{
	int port = ntohs(addr->ss_family == AF_INET6
				 ? ((const struct sockaddr_in6 *)addr)->sin6_port
				 : ((const struct sockaddr_in *)addr)->sin_port);
	struct mtad_addr a;

	if (!mtad_addr_from_sockaddr((const struct sockaddr *)addr, &a))
		return false;
	for (size_t i = 0; i < d->cfg->nlisten; i++) {
		const struct mtad_listen *l = &d->cfg->listen[i];
		struct mtad_addr la;
		bool wildcard = strcmp(l->address, "0.0.0.0") == 0 || strcmp(l->address, "::") == 0;

		if (l->port != port)
			continue;
		if (!wildcard && mtad_addr_parse(l->address, strlen(l->address), false, &la) == 0 &&
		    mtad_addr_same(&la, &a))
			return true;
		for (size_t k = 0; wildcard && k < d->nown; k++)
			if (mtad_addr_same(&d->own[k], &a))
				return true;
	}
	return false;
}

/* ---- resolving the next hop ---- */

/* add_addrs - addresses of one host, with the port of the next hop. */
static void add_addrs(struct group *g, const char *host, const struct sockaddr_storage *addrs,
		      size_t n, int port)
{
	for (size_t i = 0; i < n && g->naddrs < MAX_ADDRS; i++) {
		struct sockaddr_storage *ss = &g->addrs[g->naddrs];

		*ss = addrs[i];
		if (ss->ss_family == AF_INET6)
			((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
		else
			((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
		snprintf(g->hosts[g->naddrs++], sizeof(g->hosts[0]), "%s", host);
	}
}

/* literal_addr - "1.2.3.4" or "2001:db8::1" as an address, without DNS. */
static bool literal_addr(const char *host, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		ss->ss_family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		ss->ss_family = AF_INET6;
		return true;
	}
	return false;
}

/* An MX host whose addresses are being looked up. */
struct mx_wait {
	struct group *g;
	char hosts[MAX_ADDRS][256];
	size_t nhosts, next;
	int port;
};

static void mx_next_host(struct mx_wait *w);

/* mx_host_addrs - addresses of one MX host; then the next host. */
static void mx_host_addrs(void *arg, enum mtad_dns_status st,
			  const struct sockaddr_storage *addrs, size_t n)
{
	struct mx_wait *w = arg;

	w->g->query = NULL;
	if (st == MTAD_DNS_FOUND)
		add_addrs(w->g, w->hosts[w->next - 1], addrs, n, w->port);
	mx_next_host(w);
}

/* mx_next_host - resolve the MX hosts one by one, in preference order. */
static void mx_next_host(struct mx_wait *w)
{
	struct group *g = w->g;

	while (w->next < w->nhosts) {
		const char *host = w->hosts[w->next++];
		struct sockaddr_storage ss;

		if (literal_addr(host, &ss)) {
			add_addrs(g, host, &ss, 1, w->port);
			continue;
		}
		g->query = mtad_dns_addresses(g->att->d->dns, host, mx_host_addrs, w);
		if (g->query)
			return;
	}
	g->mx = NULL;
	free(w);
	group_connect_next(g);
}

/* mx_shuffle - equal preferences in random order (RFC 5321 §5.1). */
static void mx_shuffle(struct mtad_dns_mx *mx, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++) {
		size_t j = i;

		while (j + 1 < n && mx[j + 1].preference == mx[i].preference)
			j++;
		for (size_t k = j; k > i; k--) {
			size_t r = i + arc4random_uniform((uint32_t)(k - i + 1));
			struct mtad_dns_mx t = mx[k];

			mx[k] = mx[r];
			mx[r] = t;
		}
		i = j;
	}
}

static void group_resolve_host(struct group *g, const char *host, int port);

/* mx_done - the MX records of the destination. */
static void mx_done(void *arg, enum mtad_dns_status st, const struct mtad_dns_mx *mx, size_t n)
{
	struct mx_wait *w = arg;
	struct group *g = w->g;
	struct mtad_dns_mx sorted[MAX_ADDRS];

	g->query = NULL;
	if (st == MTAD_DNS_TEMPFAIL) {
		free(w);
		g->mx = NULL;
		group_decide(g, 451, "4.4.3", "temporary DNS failure looking up MX");
		group_done(g);
		return;
	}
	if (st == MTAD_DNS_NOTFOUND) {
		/* RFC 5321 §5.1: no MX, the domain's own address is the mail host. */
		int port = w->port;
		char host[256];

		snprintf(host, sizeof(host), "%s", w->hosts[0]);
		free(w);
		g->mx = NULL;
		group_resolve_host(g, host, port);
		return;
	}
	if (n == 1 && mx[0].host[0] == '\0') {
		free(w);
		g->mx = NULL;
		group_decide(g, 556, "5.1.10", "the domain accepts no mail (null MX, RFC 7505)");
		group_done(g);
		return;
	}
	n = n < MAX_ADDRS ? n : MAX_ADDRS;
	memcpy(sorted, mx, n * sizeof(*mx));
	mx_shuffle(sorted, n);
	w->nhosts = 0;
	for (size_t i = 0; i < n; i++)
		if (sorted[i].host[0])
			snprintf(w->hosts[w->nhosts++], sizeof(w->hosts[0]), "%s", sorted[i].host);
	w->next = 0;
	mx_next_host(w);
}

/* host_addrs_done - the addresses of a host named without MX lookup. */
static void host_addrs_done(void *arg, enum mtad_dns_status st,
			    const struct sockaddr_storage *addrs, size_t n)
{
	struct mx_wait *w = arg;
	struct group *g = w->g;

	g->query = NULL;
	g->mx = NULL;
	if (st == MTAD_DNS_FOUND)
		add_addrs(g, w->hosts[0], addrs, n, w->port);
	free(w);
	if (st == MTAD_DNS_NOTFOUND)
		group_decide(g, 550, "5.1.2", "host or domain name not found");
	else if (st == MTAD_DNS_TEMPFAIL)
		group_decide(g, 451, "4.4.3", "temporary DNS failure looking up the host");
	if (st != MTAD_DNS_FOUND) {
		group_done(g);
		return;
	}
	group_connect_next(g);
}

/* new_wait - the DNS state of one group. */
static struct mx_wait *new_wait(struct group *g, const char *host, int port)
{
	struct mx_wait *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->g = g;
	w->port = port;
	snprintf(w->hosts[0], sizeof(w->hosts[0]), "%s", host);
	g->mx = w;
	return w;
}

/* group_resolve_host - a host's own addresses (no MX). */
static void group_resolve_host(struct group *g, const char *host, int port)
{
	struct sockaddr_storage ss;
	struct mx_wait *w;

	if (literal_addr(host, &ss)) {
		add_addrs(g, host, &ss, 1, port);
		group_connect_next(g);
		return;
	}
	if (!g->att->d->dns) {
		group_decide(g, 451, "4.4.3", "no DNS resolver (dns_servers = none) and no route "
			     "with an address for this destination");
		group_done(g);
		return;
	}
	w = new_wait(g, host, port);
	g->query = w ? mtad_dns_addresses(g->att->d->dns, host, host_addrs_done, w) : NULL;
	if (!g->query) {
		free(w);
		g->mx = NULL;
		group_decide(g, 451, "4.4.3", "cannot look up the destination");
		group_done(g);
	}
}

/* group_start - route, relayhost or MX: where this group's mail goes. */
void group_start(struct group *g)
{
	const char *host = g->route ? g->route->host : g->domain;
	int port = g->route ? g->route->port : 25;
	struct mx_wait *w;

	if (g->att->damaged) {	/* found by an earlier group: no more sending */
		group_decide(g, 451, "4.3.0", "the queued body is damaged; message held");
		group_done(g);
		return;
	}
	if (g->route && g->route->path[0]) {
		/* LMTP over a Unix socket: one "address", the path itself. */
		g->naddrs = 1;
		snprintf(g->hosts[0], sizeof(g->hosts[0]), "%s", g->route->path);
		group_connect_next(g);
		return;
	}
	if (g->route && !g->route->mx) {
		group_resolve_host(g, host, port);
		return;
	}
	if (!g->att->d->dns) {
		group_decide(g, 451, "4.4.3", "no DNS resolver (dns_servers = none) and no route "
			     "for this domain");
		group_done(g);
		return;
	}
	w = new_wait(g, host, port);
	g->query = w ? mtad_dns_mx(g->att->d->dns, host, mx_done, w) : NULL;
	if (!g->query) {
		free(w);
		g->mx = NULL;
		group_decide(g, 451, "4.4.3", "cannot look up MX");
		group_done(g);
	}
}
