/*
 * dns.c - the resolver: c-ares queries driven by the libuv loop. Answers
 * the questions the SMTP policy asks (is there a forward-confirmed name
 * for this client? does this HELO name have addresses?), and for delivery
 * the mail exchangers of a domain and the addresses of a host.
 *
 * c-ares tells us through its socket-state callback which sockets to
 * watch; each gets a uv_poll_t, and one uv_timer_t follows ares_timeout()
 * so retries and timeouts happen without anyone calling select().
 *
 * Must not: block the loop; ask any server but the ones configured (with
 * an explicit list /etc/resolv.conf is not read, and /etc/hosts never is:
 * only ares_query, no search domains, no HOSTALIASES); call a user's
 * callback after mtad_dns_cancel or mtad_dns_free, or from inside a call
 * the user made; hand out a name that is not a sane host name (a PTR
 * record is attacker-controlled and ends up in logs and Received:
 * headers); hold more than MAX_INFLIGHT lookups; keep global state
 * beyond the reference count c-ares keeps for ares_library_init.
 *
 * Follows: RFC 1035 (names), RFC 1123 §2.1 (host names), RFC 3596
 * (ip6.arpa), RFC 5321 §5.1 (MX), RFC 7505 (null MX), RFC 8601 §3
 * ("iprev": PTR, then forward confirmation).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>
#include <arpa/nameser.h>

#include "util/util.h"

#define MAX_INFLIGHT 4000	/* lookups (each one or two DNS queries) */
#define MAX_PTR 3		/* PTR names tried for forward confirmation */
#define MAX_ADDRS 64		/* A/AAAA records looked at per answer */
#define MAX_MX 32
#define NAME_MAX_LEN 253	/* RFC 1035 §2.3.4 in text form, no trailing dot */
#define SERVERS_MAX 1024	/* the server list, as text */

/* One socket c-ares asked us to watch. */
struct dns_sock {
	uv_poll_t poll;
	ares_socket_t fd;
	struct mtad_dns *dns;
	struct dns_sock *next;
};

struct mtad_dns {
	uv_loop_t *loop;
	ares_channel channel;
	uv_timer_t timer;
	struct dns_sock *socks;	/* watched, not closing */
	unsigned inflight;	/* lookups not yet freed, cancelled ones too */
	unsigned handles;	/* uv handles not yet closed (timer + polls) */
	unsigned depth;		/* > 0 while inside ares_process_fd */
	bool dying;		/* mtad_dns_free was called */
};

enum query_kind { Q_FORWARD, Q_REVERSE, Q_MX, Q_ADDRS };

struct mtad_dns_query {
	struct mtad_dns *dns;
	enum query_kind kind;
	union {
		mtad_dns_addr_cb addr;
		mtad_dns_name_cb name;
		mtad_dns_mx_cb mx;
		mtad_dns_addrs_cb addrs;
	} cb;
	void *arg;
	unsigned refs;		/* DNS queries outstanding, plus our own holds */
	bool cancelled;
	bool tempfail;		/* some answer was a server failure */
	bool confirmed;		/* reverse: name[] is forward-confirmed */
	unsigned naddrs;	/* forward: addresses seen */
	int family;		/* reverse: the client's address */
	unsigned char addr[16];
	char ptr[MAX_PTR][NAME_MAX_LEN + 1];
	unsigned nptr, iptr;	/* reverse: PTR names, the one being confirmed */
	struct mtad_dns_mx mx[MAX_MX];
	size_t nmx;
	unsigned char v4[MAX_ADDRS][4];	/* addresses: kept apart so IPv4 comes first */
	unsigned char v6[MAX_ADDRS][16];
	unsigned nv4, nv6;
};

/* ---- host names ---- */

/* label_ok - one label of len bytes: LDH, no hyphen at either end. */
static bool label_ok(const char *s, size_t len)
{
	if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return false;
	return true;
}

/* mtad_dns_hostname_ok - see mtad.h. */
bool mtad_dns_hostname_ok(const char *name)
{
	size_t len = name ? strlen(name) : 0;
	const char *label = name, *dot;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > NAME_MAX_LEN)
		return false;
	for (;;) {
		dot = memchr(label, '.', len - (size_t)(label - name));
		if (!dot)
			break;
		if (!label_ok(label, (size_t)(dot - label)))
			return false;
		label = dot + 1;
	}
	if (!label_ok(label, len - (size_t)(label - name)))
		return false;
	/* A numeric last label would let "192.0.2.1" pass as a name. */
	for (const char *p = label; p < name + len; p++)
		if (!isdigit((unsigned char)*p))
			return true;
	return false;
}

/* canonical - name lower-cased, without trailing dot, into out; false if not sane. */
static bool canonical(const char *name, char out[NAME_MAX_LEN + 1])
{
	size_t len;

	if (!mtad_dns_hostname_ok(name))
		return false;
	len = strlen(name);
	if (name[len - 1] == '.')
		len--;
	for (size_t i = 0; i < len; i++)
		out[i] = (char)tolower((unsigned char)name[i]);
	out[len] = '\0';
	return true;
}

/* ---- the loop side: sockets and the timer ---- */

/* release - the last uv handle is closed: the resolver's memory can go. */
static void release(struct mtad_dns *dns)
{
	if (--dns->handles == 0)
		free(dns);
}

/* on_sock_closed - a uv_poll_t is closed; only now may its memory go. */
static void on_sock_closed(uv_handle_t *h)
{
	struct dns_sock *s = h->data;
	struct mtad_dns *dns = s->dns;

	free(s);
	release(dns);
}

/* on_timer_closed - the timer is closed (mtad_dns_free). */
static void on_timer_closed(uv_handle_t *h)
{
	release(h->data);
}

static void process(struct mtad_dns *dns, ares_socket_t rfd, ares_socket_t wfd);
static void on_timer(uv_timer_t *t);

/* update_timer - wake up when c-ares next has a timeout to handle. */
static void update_timer(struct mtad_dns *dns)
{
	struct timeval tv, *tvp;
	uint64_t ms;
	int rc;

	tvp = ares_timeout(dns->channel, NULL, &tv);
	if (!tvp) {
		uv_timer_stop(&dns->timer);
		return;
	}
	/* Round up: waking a millisecond early would only spin the loop. */
	ms = (uint64_t)tvp->tv_sec * 1000 + ((uint64_t)tvp->tv_usec + 999) / 1000;
	rc = uv_timer_start(&dns->timer, on_timer, ms, 0);
	if (rc < 0)
		mtad_log(MTAD_LOG_WARNING, "dns: timer: %s", uv_strerror(rc));
}

/* on_timer - retries and timeouts: c-ares checks its clock with no socket. */
static void on_timer(uv_timer_t *t)
{
	process(t->data, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}

/* on_poll - a watched socket is ready (or failed: let c-ares find out how). */
static void on_poll(uv_poll_t *p, int status, int events)
{
	struct dns_sock *s = p->data;
	bool err = status < 0;

	process(s->dns, (err || (events & UV_READABLE)) ? s->fd : ARES_SOCKET_BAD,
		(err || (events & UV_WRITABLE)) ? s->fd : ARES_SOCKET_BAD);
}

/* find_sock - the entry for fd, and where it hangs in the list. */
static struct dns_sock **find_sock(struct mtad_dns *dns, ares_socket_t fd)
{
	struct dns_sock **pp = &dns->socks;

	while (*pp && (*pp)->fd != fd)
		pp = &(*pp)->next;
	return pp;
}

/* new_sock - start watching fd; NULL (logged) if libuv refuses it. */
static struct dns_sock *new_sock(struct mtad_dns *dns, ares_socket_t fd)
{
	struct dns_sock *s = calloc(1, sizeof(*s));
	int rc;

	if (!s) {
		mtad_log(MTAD_LOG_WARNING, "dns: out of memory for a socket");
		return NULL;
	}
	rc = uv_poll_init_socket(dns->loop, &s->poll, fd);
	if (rc < 0) {
		/* The query will time out through the timer instead. */
		mtad_log(MTAD_LOG_WARNING, "dns: poll: %s", uv_strerror(rc));
		free(s);
		return NULL;
	}
	s->poll.data = s;
	s->fd = fd;
	s->dns = dns;
	s->next = dns->socks;
	dns->socks = s;
	dns->handles++;
	return s;
}

/* close_sock - stop watching; the memory goes in the close callback. */
static void close_sock(struct dns_sock **pp)
{
	struct dns_sock *s = *pp;

	*pp = s->next;
	uv_poll_stop(&s->poll);
	uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

/* on_sock_state - c-ares wants fd watched for reading/writing, or forgotten. */
static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct mtad_dns *dns = data;
	struct dns_sock **pp = find_sock(dns, fd);
	struct dns_sock *s = *pp;
	int events = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);
	int rc;

	if (!events) {
		/* Called before c-ares closes fd, so libuv never sees a dead fd. */
		if (s)
			close_sock(pp);
		return;
	}
	if (!s && !(s = new_sock(dns, fd)))
		return;
	rc = uv_poll_start(&s->poll, events, on_poll);
	if (rc < 0)
		mtad_log(MTAD_LOG_WARNING, "dns: poll start: %s", uv_strerror(rc));
}

/* destroy - the channel goes (queries end without reaching users), then the handles. */
static void destroy(struct mtad_dns *dns)
{
	/* Calls our query callbacks with ARES_EDESTRUCTION, and on_sock_state. */
	ares_destroy(dns->channel);
	while (dns->socks)
		close_sock(&dns->socks);
	uv_timer_stop(&dns->timer);
	uv_close((uv_handle_t *)&dns->timer, on_timer_closed);
	ares_library_cleanup();
}

/* process - let c-ares read, write or time out; a free requested meanwhile happens after. */
static void process(struct mtad_dns *dns, ares_socket_t rfd, ares_socket_t wfd)
{
	dns->depth++;
	ares_process_fd(dns->channel, rfd, wfd);
	dns->depth--;
	if (dns->dying) {
		/* ares_destroy inside ares_process_fd would pull the rug from c-ares. */
		if (dns->depth == 0)
			destroy(dns);
		return;
	}
	update_timer(dns);
}

/* ---- creating and freeing the resolver ---- */

/* port_ok - 1..65535 in decimal digits only. */
static bool port_ok(const char *p, size_t len)
{
	unsigned long v = 0;

	if (len == 0 || len > 5)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(p[i] - '0');
	}
	return v >= 1 && v <= 65535;
}

/* addr_ok - a numeric address of family af, len bytes at p. */
static bool addr_ok(int af, const char *p, size_t len)
{
	char buf[64];
	unsigned char bin[16];

	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, p, len);
	buf[len] = '\0';
	return inet_pton(af, buf, bin) == 1;
}

/*
 * server_ok - "IP", "IPV4:PORT", "[IPV6]" or "[IPV6]:PORT". c-ares is
 * lenient with some malformed entries; a typo must not become a server.
 */
static bool server_ok(const char *p, size_t len)
{
	const char *colon = memchr(p, ':', len), *end;

	if (p[0] == '[') {
		end = memchr(p, ']', len);
		if (!end || !addr_ok(AF_INET6, p + 1, (size_t)(end - p - 1)))
			return false;
		len -= (size_t)(end + 1 - p);
		return len == 0 || (end[1] == ':' && port_ok(end + 2, len - 1));
	}
	if (addr_ok(AF_INET, p, len) || addr_ok(AF_INET6, p, len))
		return true;
	return colon && addr_ok(AF_INET, p, (size_t)(colon - p)) &&
	       port_ok(colon + 1, len - (size_t)(colon + 1 - p));
}

/*
 * server_csv - "IP, IP:PORT [IPV6]:PORT" into c-ares' "IP,IP:PORT,[IPV6]:PORT";
 * false (bad points at the culprit) if empty, too long or malformed.
 */
static bool server_csv(const char *in, char *out, size_t outlen, const char **bad)
{
	size_t n = 0, len;

	*bad = NULL;
	for (const char *p = in; *p;) {
		p += strspn(p, ", \t");
		len = strcspn(p, ", \t");
		if (len == 0)
			break;
		if (!server_ok(p, len)) {
			*bad = p;
			return false;
		}
		if (n + len + 2 > outlen)
			return false;
		if (n > 0)
			out[n++] = ',';
		memcpy(out + n, p, len);
		n += len;
		p += len;
	}
	out[n] = '\0';
	return n > 0;
}

/* set_servers - replace the channel's servers with list; check they all took. */
static int set_servers(ares_channel channel, const char *list, char *err, size_t errlen)
{
	char csv[SERVERS_MAX];
	struct ares_addr_port_node *got = NULL;
	int rc;
	size_t want = 1, have = 0;

	const char *bad;

	if (!server_csv(list, csv, sizeof(csv), &bad)) {
		if (bad)
			snprintf(err, errlen, "dns servers: not IP, IP:PORT or [IPV6]:PORT: \"%.*s\"",
				 (int)strcspn(bad, ", \t"), bad);
		else
			snprintf(err, errlen, "dns servers: empty or too long: \"%s\"", list);
		return -1;
	}
	for (const char *p = csv; *p; p++)
		want += *p == ',';
	rc = ares_set_servers_ports_csv(channel, csv);
	if (rc == ARES_SUCCESS)
		rc = ares_get_servers_ports(channel, &got);
	for (struct ares_addr_port_node *s = got; s; s = s->next)
		have++;
	ares_free_data(got);
	if (rc != ARES_SUCCESS || have != want) {
		snprintf(err, errlen, "dns servers: \"%s\": %s", list,
			 rc != ARES_SUCCESS ? ares_strerror(rc) : "not a list of IP[:PORT]");
		return -1;
	}
	return 0;
}

/* init_channel - the c-ares channel with our options, servers set; -1 with err. */
static int init_channel(struct mtad_dns *dns, const char *servers, unsigned timeout_ms,
			unsigned tries, char *err, size_t errlen)
{
	struct ares_options o;
	int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS |
		   ARES_OPT_SOCK_STATE_CB | ARES_OPT_NOROTATE;
	bool system = strcmp(servers, "system") == 0;
	int rc;

	memset(&o, 0, sizeof(o));
	o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	o.timeout = (int)(timeout_ms ? timeout_ms : 1);
	o.tries = (int)(tries ? tries : 1);
	o.lookups = (char *)"b";	/* never /etc/hosts (only ares_gethostbyname uses it anyway) */
	o.sock_state_cb = on_sock_state;
	o.sock_state_cb_data = dns;
	if (!system) {
		/* An empty list and no resolv.conf: nothing can sneak in before ours. */
		mask |= ARES_OPT_SERVERS | ARES_OPT_RESOLVCONF;
		o.nservers = 0;
		o.resolvconf_path = (char *)"/dev/null";
	}
	rc = ares_init_options(&dns->channel, &o, mask);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "dns: c-ares init: %s", ares_strerror(rc));
		return -1;
	}
	if (!system && set_servers(dns->channel, servers, err, errlen) < 0) {
		ares_destroy(dns->channel);
		return -1;
	}
	return 0;
}

/* mtad_dns_new - see mtad.h. */
struct mtad_dns *mtad_dns_new(uv_loop_t *loop, const char *servers, unsigned timeout_ms,
			      unsigned tries, char *err, size_t errlen)
{
	struct mtad_dns *dns;
	int rc;

	if (!servers)
		servers = "system";
	dns = calloc(1, sizeof(*dns));
	if (!dns) {
		snprintf(err, errlen, "dns: out of memory");
		return NULL;
	}
	rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "dns: c-ares library init: %s", ares_strerror(rc));
		free(dns);
		return NULL;
	}
	if (init_channel(dns, servers, timeout_ms, tries, err, errlen) < 0) {
		ares_library_cleanup();
		free(dns);
		return NULL;
	}
	dns->loop = loop;
	rc = uv_timer_init(loop, &dns->timer);
	if (rc < 0) {
		snprintf(err, errlen, "dns: timer: %s", uv_strerror(rc));
		ares_destroy(dns->channel);
		ares_library_cleanup();
		free(dns);
		return NULL;
	}
	dns->timer.data = dns;
	dns->handles = 1;
	return dns;
}

/* mtad_dns_free - see mtad.h. The memory goes once the loop ran the close callbacks. */
void mtad_dns_free(struct mtad_dns *dns)
{
	if (!dns || dns->dying)
		return;
	dns->dying = true;	/* from here on no callback reaches a user */
	if (dns->depth == 0)
		destroy(dns);
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
	update_timer(dns);
	return ended ? NULL : q;
}

/* mtad_dns_cancel - see mtad.h. c-ares still answers later; unref frees then. */
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

/* mtad_dns_forward - see mtad.h. Both families at once: one round trip. */
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

/* mtad_dns_addresses - see mtad.h. The forward lookup, keeping what it finds. */
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

/* mtad_dns_reverse - see mtad.h. */
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

/* mtad_dns_mx - see mtad.h. */
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
