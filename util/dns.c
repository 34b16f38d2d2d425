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
 * The lookups themselves (forward, addresses, reverse, MX) are in
 * util/dns_query.c; this file is the resolver's life and its sockets.
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

#include "util/dns_int.h"

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

/* mtad_dns_hostname_ok - see util.h. */
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
void dns_update_timer(struct mtad_dns *dns)
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
	dns_update_timer(dns);
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

/* mtad_dns_new - see util.h. */
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

/* mtad_dns_free - see util.h. The memory goes once the loop ran the close callbacks. */
void mtad_dns_free(struct mtad_dns *dns)
{
	if (!dns || dns->dying)
		return;
	dns->dying = true;	/* from here on no callback reaches a user */
	if (dns->depth == 0)
		destroy(dns);
}
