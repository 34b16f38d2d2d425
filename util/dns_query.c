/*
 * dns_query.c - the lookups of the resolver (util/dns.c): whether a name
 * has addresses, the addresses themselves for delivery, the client's
 * forward-confirmed reverse name, and a domain's mail exchangers. Each
 * lookup is one or a few c-ares queries whose answers are parsed here
 * and handed to the user's callback once, from the loop.
 *
 * Must not: call a user's callback after mtad_dns_cancel or
 * mtad_dns_free, or from inside the call that started the lookup; hand
 * out a name that is not a sane host name (PTR and MX names are
 * attacker-controlled); keep more than MAX_PTR, MAX_ADDRS or MAX_MX
 * entries of any answer.
 *
 * Follows: RFC 1035, RFC 3596 (ip6.arpa), RFC 5321 §5.1 (MX), RFC 7505
 * (null MX), RFC 8601 §3 ("iprev": PTR, then forward confirmation).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>
#include <arpa/nameser.h>

#include "util/dns_int.h"

/* canonical - name lower-cased, without trailing dot, into out; false if not sane. */
static bool canonical(const char *name, char out[NAME_MAX_LEN + 1])
{
	size_t len;

	if (!mtad_dns_hostname_ok(name))
		return false;
	len = strlen(name);
	if (name[len - 1] == '.')
		len--;
	mtad_str_lower(out, name, len);
	return true;
}

/* ---- lookups: common parts ---- */

/*
 * deliver_addrs - the addresses as sockaddrs, IPv4 first, port 0. Built
 * only now, on the stack, so a query in flight holds 20 bytes an address
 * rather than a sockaddr_storage.
 */
static void deliver_addrs(struct mtad_dns_query *q)
{
	struct sockaddr_storage ss[2 * MAX_ADDRS];
	struct sockaddr_in *sin;
	struct sockaddr_in6 *sin6;
	size_t n = 0;
	enum mtad_dns_status st;

	for (unsigned i = 0; i < q->nv4; i++) {
		memset(&ss[n], 0, sizeof(ss[n]));
		sin = (struct sockaddr_in *)&ss[n++];
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, q->v4[i], 4);
	}
	for (unsigned i = 0; i < q->nv6; i++) {
		memset(&ss[n], 0, sizeof(ss[n]));
		sin6 = (struct sockaddr_in6 *)&ss[n++];
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, q->v6[i], 16);
	}
	st = n ? MTAD_DNS_FOUND : q->tempfail ? MTAD_DNS_TEMPFAIL : MTAD_DNS_NOTFOUND;
	q->cb.addrs(q->arg, st, n ? ss : NULL, n);
}

/* deliver - the user's callback with the result, unless cancelled. */
static void deliver(struct mtad_dns_query *q)
{
	enum mtad_dns_status st;

	switch (q->kind) {
	case Q_FORWARD:
		st = q->naddrs ? MTAD_DNS_FOUND : q->tempfail ? MTAD_DNS_TEMPFAIL : MTAD_DNS_NOTFOUND;
		q->cb.addr(q->arg, st, q->naddrs);
		break;
	case Q_REVERSE:
		st = q->confirmed ? MTAD_DNS_FOUND : q->tempfail ? MTAD_DNS_TEMPFAIL : MTAD_DNS_NOTFOUND;
		q->cb.name(q->arg, st, q->confirmed ? q->ptr[q->iptr] : NULL);
		break;
	case Q_MX:
		st = q->nmx ? MTAD_DNS_FOUND : q->tempfail ? MTAD_DNS_TEMPFAIL : MTAD_DNS_NOTFOUND;
		q->cb.mx(q->arg, st, q->nmx ? q->mx : NULL, q->nmx);
		break;
	case Q_ADDRS:
		deliver_addrs(q);
		break;
	}
}

/* unref - one DNS query (or hold) less; the last one delivers and frees. */
static void unref(struct mtad_dns_query *q)
{
	struct mtad_dns *dns = q->dns;

	if (--q->refs > 0)
		return;
	if (!q->cancelled && !dns->dying)
		deliver(q);
	dns->inflight--;
	free(q);
}

/* dropped - should this answer be ignored (cancelled, or the resolver is going)? */
static bool dropped(struct mtad_dns_query *q, int status)
{
	return q->cancelled || q->dns->dying || status == ARES_EDESTRUCTION ||
	       status == ARES_ECANCELLED;
}

/* failed - a status that is not an answer: note server failures; true if no answer. */
static bool failed(struct mtad_dns_query *q, int status)
{
	if (status == ARES_SUCCESS)
		return false;
	/* NXDOMAIN and NODATA are answers ("none"); anything else is not. */
	if (status != ARES_ENOTFOUND && status != ARES_ENODATA)
		q->tempfail = true;
	return true;
}

/* send_query - ask for name/type; cb gets q. The reference is held until cb. */
static void send_query(struct mtad_dns_query *q, const char *name, int type,
		       ares_callback cb)
{
	q->refs++;
	/* May call cb before returning (e.g. out of memory): refs covers that. */
	ares_query(q->dns->channel, name, ns_c_in, type, cb, q);
}

/* new_query - a lookup holding one reference for its starter; NULL if over the bound. */
static struct mtad_dns_query *new_query(struct mtad_dns *dns, enum query_kind kind, void *arg)
{
	struct mtad_dns_query *q;

	if (!dns || dns->dying || dns->inflight >= MAX_INFLIGHT)
		return NULL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->dns = dns;
	q->kind = kind;
	q->arg = arg;
	q->refs = 1;
	dns->inflight++;
	return q;
}

/* started - drop the starter's hold; if everything already ended, it is "not looked up". */
static struct mtad_dns_query *started(struct mtad_dns_query *q)
{
	struct mtad_dns *dns = q->dns;
	bool ended = q->refs == 1;

	/* Never call back from inside the user's own call. */
	if (ended)
		q->cancelled = true;
	unref(q);
	dns_update_timer(dns);
	return ended ? NULL : q;
}

/* mtad_dns_cancel - see util.h. c-ares still answers later; unref frees then. */
void mtad_dns_cancel(struct mtad_dns_query *q)
{
	if (q)
		q->cancelled = true;
}

/* ---- forward and addresses: A and AAAA ---- */

/*
 * count_addrs - how many addresses of type an answer holds (at most
 * MAX_ADDRS); -1 if it is malformed. mtad_dns_addresses keeps them too.
 */
static int count_addrs(struct mtad_dns_query *q, int type, const unsigned char *abuf, int alen)
{
	struct ares_addrttl a[MAX_ADDRS];
	struct ares_addr6ttl a6[MAX_ADDRS];
	int n = MAX_ADDRS, rc;

	if (type == ns_t_a)
		rc = ares_parse_a_reply(abuf, alen, NULL, a, &n);
	else
		rc = ares_parse_aaaa_reply(abuf, alen, NULL, a6, &n);
	if (rc == ARES_ENODATA)
		return 0;
	if (rc != ARES_SUCCESS)
		return -1;
	for (int i = 0; q->kind == Q_ADDRS && i < n; i++) {
		/* One answer per family, so the bound only guards against a second. */
		if (type == ns_t_a && q->nv4 < MAX_ADDRS)
			memcpy(q->v4[q->nv4++], &a[i].ipaddr, 4);
		else if (type == ns_t_aaaa && q->nv6 < MAX_ADDRS)
			memcpy(q->v6[q->nv6++], &a6[i].ip6addr, 16);
	}
	return n;
}

/* on_forward - one of the A/AAAA answers: add its addresses. */
static void on_forward(struct mtad_dns_query *q, int type, int status,
		       const unsigned char *abuf, int alen)
{
	int n;

	if (!dropped(q, status) && !failed(q, status)) {
		n = count_addrs(q, type, abuf, alen);
		if (n < 0)
			q->tempfail = true;
		else
			q->naddrs += (unsigned)n;
	}
	unref(q);
}

/* on_a, on_aaaa - c-ares callbacks for the two queries of forward and addresses. */
static void on_a(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	(void)timeouts;
	on_forward(arg, ns_t_a, status, abuf, alen);
}

static void on_aaaa(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	(void)timeouts;
	on_forward(arg, ns_t_aaaa, status, abuf, alen);
}

/* mtad_dns_forward - see util.h. Both families at once: one round trip. */
struct mtad_dns_query *mtad_dns_forward(struct mtad_dns *dns, const char *name,
					mtad_dns_addr_cb cb, void *arg)
{
	char qname[NAME_MAX_LEN + 1];
	struct mtad_dns_query *q;

	if (!cb || !canonical(name, qname) || !(q = new_query(dns, Q_FORWARD, arg)))
		return NULL;
	q->cb.addr = cb;
	send_query(q, qname, ns_t_a, on_a);
	send_query(q, qname, ns_t_aaaa, on_aaaa);
	return started(q);
}

/* mtad_dns_addresses - see util.h. The forward lookup, keeping what it finds. */
struct mtad_dns_query *mtad_dns_addresses(struct mtad_dns *dns, const char *name,
					  mtad_dns_addrs_cb cb, void *arg)
{
	char qname[NAME_MAX_LEN + 1];
	struct mtad_dns_query *q;

	if (!cb || !canonical(name, qname) || !(q = new_query(dns, Q_ADDRS, arg)))
		return NULL;
	q->cb.addrs = cb;
	send_query(q, qname, ns_t_a, on_a);
	send_query(q, qname, ns_t_aaaa, on_aaaa);
	return started(q);
}

/* ---- reverse: PTR, then A or AAAA of the PTR name ---- */

/* parse_ip - ip as bytes; an IPv4-mapped IPv6 address counts as IPv4. */
static bool parse_ip(const char *ip, int *family, unsigned char addr[16])
{
	struct in6_addr a6;

	if (inet_pton(AF_INET, ip, addr) == 1) {
		*family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, ip, &a6) != 1)
		return false;
	if (IN6_IS_ADDR_V4MAPPED(&a6)) {
		*family = AF_INET;
		memcpy(addr, a6.s6_addr + 12, 4);
	} else {
		*family = AF_INET6;
		memcpy(addr, a6.s6_addr, 16);
	}
	return true;
}

/* arpa_name - 4.3.2.1.in-addr.arpa or the 32 nibbles of ip6.arpa (RFC 3596). */
static void arpa_name(int family, const unsigned char *a, char *out, size_t outlen)
{
	size_t n = 0;

	if (family == AF_INET) {
		snprintf(out, outlen, "%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1], a[0]);
		return;
	}
	for (int i = 15; i >= 0; i--)
		n += (size_t)snprintf(out + n, outlen - n, "%x.%x.", a[i] & 0xf, a[i] >> 4);
	snprintf(out + n, outlen - n, "ip6.arpa");
}

/* add_ptr - keep a sane, new PTR name for confirmation; others are ignored. */
static void add_ptr(struct mtad_dns_query *q, const char *name)
{
	char c[NAME_MAX_LEN + 1];

	if (q->nptr >= MAX_PTR || !canonical(name, c))
		return;
	for (unsigned i = 0; i < q->nptr; i++)
		if (strcmp(q->ptr[i], c) == 0)
			return;
	memcpy(q->ptr[q->nptr++], c, sizeof(c));
}

/* collect_ptrs - the PTR names of an answer (c-ares lists all of them as aliases). */
static void collect_ptrs(struct mtad_dns_query *q, const unsigned char *abuf, int alen)
{
	struct hostent *h = NULL;
	int rc;

	rc = ares_parse_ptr_reply(abuf, alen, q->addr, q->family == AF_INET ? 4 : 16,
				  q->family, &h);
	if (rc == ARES_ENOMEM)
		q->tempfail = true;
	/* Anything else but success is "no usable PTR": c-ares refuses hostile names. */
	if (rc != ARES_SUCCESS)
		return;
	for (char **a = h->h_aliases; a && *a; a++)
		add_ptr(q, *a);
	add_ptr(q, h->h_name);
	ares_free_hostent(h);
}

/* has_addr - does an A/AAAA answer hold the client's address? */
static bool has_addr(struct mtad_dns_query *q, const unsigned char *abuf, int alen)
{
	struct ares_addrttl a[MAX_ADDRS];
	struct ares_addr6ttl a6[MAX_ADDRS];
	int n = MAX_ADDRS;

	if (q->family == AF_INET) {
		if (ares_parse_a_reply(abuf, alen, NULL, a, &n) != ARES_SUCCESS)
			return false;
		for (int i = 0; i < n; i++)
			if (memcmp(&a[i].ipaddr, q->addr, 4) == 0)
				return true;
		return false;
	}
	if (ares_parse_aaaa_reply(abuf, alen, NULL, a6, &n) != ARES_SUCCESS)
		return false;
	for (int i = 0; i < n; i++)
		if (memcmp(&a6[i].ip6addr, q->addr, 16) == 0)
			return true;
	return false;
}

static void on_confirm(void *arg, int status, int timeouts, unsigned char *abuf, int alen);

/* confirm - look up the addresses of PTR name number iptr. */
static void confirm(struct mtad_dns_query *q)
{
	send_query(q, q->ptr[q->iptr], q->family == AF_INET ? ns_t_a : ns_t_aaaa, on_confirm);
}

/* on_confirm - the PTR name's addresses: confirmed, or try the next name. */
static void on_confirm(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct mtad_dns_query *q = arg;

	(void)timeouts;
	if (dropped(q, status)) {
		unref(q);
		return;
	}
	if (!failed(q, status) && has_addr(q, abuf, alen))
		q->confirmed = true;
	else if (q->iptr + 1 < q->nptr) {
		q->iptr++;
		confirm(q);
	}
	unref(q);
}

/* on_ptr - the PTR answer: confirm its first sane name. */
static void on_ptr(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct mtad_dns_query *q = arg;

	(void)timeouts;
	if (!dropped(q, status) && !failed(q, status)) {
		collect_ptrs(q, abuf, alen);
		if (q->nptr > 0)
			confirm(q);
	}
	unref(q);
}

/* mtad_dns_reverse - see util.h. */
struct mtad_dns_query *mtad_dns_reverse(struct mtad_dns *dns, const char *ip,
					mtad_dns_name_cb cb, void *arg)
{
	char qname[80];		/* 32 nibbles * 2 + "ip6.arpa" */
	struct mtad_dns_query *q;
	unsigned char addr[16];
	int family;

	if (!cb || !ip || !parse_ip(ip, &family, addr) || !(q = new_query(dns, Q_REVERSE, arg)))
		return NULL;
	q->cb.name = cb;
	q->family = family;
	memcpy(q->addr, addr, sizeof(addr));
	arpa_name(family, addr, qname, sizeof(qname));
	send_query(q, qname, ns_t_ptr, on_ptr);
	return started(q);
}

/* ---- MX ---- */

/* by_preference - qsort order of MX entries. */
static int by_preference(const void *a, const void *b)
{
	const struct mtad_dns_mx *x = a, *y = b;

	return (x->preference > y->preference) - (x->preference < y->preference);
}

/* collect_mx - sane exchanges of an answer, sorted; none sane at all is a failure. */
static void collect_mx(struct mtad_dns_query *q, const unsigned char *abuf, int alen)
{
	struct ares_mx_reply *list = NULL;
	size_t total = 0;
	int rc = ares_parse_mx_reply(abuf, alen, &list);

	if (rc != ARES_SUCCESS) {
		if (rc != ARES_ENODATA)
			q->tempfail = true;
		return;
	}
	for (struct ares_mx_reply *m = list; m; m = m->next) {
		struct mtad_dns_mx *e = &q->mx[q->nmx];

		total++;
		if (q->nmx >= MAX_MX)
			continue;
		e->preference = m->priority;
		/* The root, ".", is RFC 7505's null MX. */
		if (m->host[0] == '\0' || strcmp(m->host, ".") == 0)
			e->host[0] = '\0';
		else if (!canonical(m->host, e->host))
			continue;
		q->nmx++;
	}
	ares_free_data(list);
	if (total > 0 && q->nmx == 0)
		q->tempfail = true;
	qsort(q->mx, q->nmx, sizeof(q->mx[0]), by_preference);
}

/* on_mx - c-ares callback for the MX query. */
static void on_mx(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct mtad_dns_query *q = arg;

	(void)timeouts;
	if (!dropped(q, status) && !failed(q, status))
		collect_mx(q, abuf, alen);
	unref(q);
}

/* mtad_dns_mx - see util.h. */
struct mtad_dns_query *mtad_dns_mx(struct mtad_dns *dns, const char *domain,
				   mtad_dns_mx_cb cb, void *arg)
{
	char qname[NAME_MAX_LEN + 1];
	struct mtad_dns_query *q;

	if (!cb || !canonical(domain, qname) || !(q = new_query(dns, Q_MX, arg)))
		return NULL;
	q->cb.mx = cb;
	send_query(q, qname, ns_t_mx, on_mx);
	return started(q);
}
