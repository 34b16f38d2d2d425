/*
 * dns.c - unit tests for util/dns.c against t/lib/fake-dns, a loopback
 * DNS server started here with a records file in a mkdtemp directory.
 * Forward (A, AAAA, both, NXDOMAIN, NODATA, SERVFAIL, REFUSED, timeout,
 * a truncated answer retried over TCP), reverse with forward confirmation (IPv4, IPv6, mapped, no PTR, a PTR
 * that does not confirm, hostile and overlong PTR names, failures), MX,
 * addresses for delivery (A only, AAAA only, both with IPv4 first, the
 * ways of finding none, cancel, free with one in flight and from inside
 * its callback), cancel, free with queries in flight and from inside a callback, 500
 * lookups at once, the in-flight bound, server list parsing, and the
 * server's query log to show that only it was asked.
 *
 * Only the fake server's address is ever configured; "system" is only
 * initialised, never queried. The server is found as $MTAD_TOP/t/lib/
 * fake-dns or t/lib/fake-dns (make runs tests from the top); without it
 * the test is skipped. The server is stopped by its PID, and also exits
 * when this process dies (its stdin is a pipe from here).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/util.h"
#include "t/unit/tap.h"

#define WAIT_MS 10000	/* upper bound for any wait: a failure, not a hang */
#define MANY 500

/* The fake server and its files. */
struct server {
	char dir[64];
	char records[128];
	char log[128];
	pid_t pid;
	int stdin_fd;		/* closing it makes the server exit */
	int port;
	char servers[64];	/* "127.0.0.1:PORT" */
};

/* What a callback saw. */
struct result {
	int calls;
	enum mtad_dns_status status;
	char name[MTAD_HOSTNAME_MAX + 1];
	unsigned n;
	struct mtad_dns_mx mx[8];
	size_t nmx;
	struct mtad_dns *free_me;	/* free this resolver from inside the callback */
	int *freed;			/* set once free_me was freed */
	bool late;			/* called after *freed was set */
	int *counter;			/* counts calls across results */
	bool no_addrs;			/* addresses: the array was NULL */
	bool bad_port;			/* addresses: one had a port other than 0 */
};

/* ---- the fake server ---- */

/* fake_dns_path - where t/lib/fake-dns is, or NULL. */
static const char *fake_dns_path(char *buf, size_t len)
{
	const char *top = getenv("MTAD_TOP");

	if (top) {
		snprintf(buf, len, "%s/t/lib/fake-dns", top);
		return access(buf, X_OK) == 0 ? buf : NULL;
	}
	snprintf(buf, len, "t/lib/fake-dns");
	return access(buf, X_OK) == 0 ? buf : NULL;
}

/* write_records - the zone every test below relies on. */
static int write_records(const char *path)
{
	FILE *f = fopen(path, "w");
	char longname[300];

	if (!f)
		return -1;
	fputs("A    a4.example 192.0.2.10\n"
	      "AAAA a6.example 2001:db8::10\n"
	      "A    both.example 192.0.2.11\n"
	      "A    both.example 192.0.2.12\n"
	      "AAAA both.example 2001:db8::11\n"
	      "MX   nodata.example 10 mx.nodata.example\n"
	      "SERVFAIL broken.example\n"
	      "REFUSED  closed.example\n"
	      "TIMEOUT  slow.example\n"
	      "PTR  10.2.0.192.in-addr.arpa A4.Example.\n"
	      "PTR  0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa a6.example\n"
	      "PTR  20.2.0.192.in-addr.arpa liar.example\n"
	      "A    liar.example 192.0.2.99\n"
	      "PTR  21.2.0.192.in-addr.arpa evil\\010name.example\n"
	      "PTR  23.2.0.192.in-addr.arpa 192.0.2.23\n"
	      "SERVFAIL 30.2.0.192.in-addr.arpa\n"
	      "PTR  31.2.0.192.in-addr.arpa fwdbroken.example\n"
	      "SERVFAIL fwdbroken.example\n"
	      "TIMEOUT 32.2.0.192.in-addr.arpa\n"
	      "PTR  40.2.0.192.in-addr.arpa liar.example\n"
	      "PTR  40.2.0.192.in-addr.arpa second.example\n"
	      "A    second.example 192.0.2.40\n"
	      "MX   campus.test 20 MX2.campus.test.\n"
	      "MX   campus.test 10 mx1.campus.test\n"
	      "MX   null.test 0 .\n"
	      "MX   evilmx.test 10 evil\\032mx.test\n", f);
	/* Four 63-octet labels: valid on the wire, 255 characters as text. */
	memset(longname, 0, sizeof(longname));
	for (int i = 0; i < 4; i++) {
		memset(longname + i * 64, 'a' + i, 63);
		if (i < 3)
			longname[i * 64 + 63] = '.';
	}
	fprintf(f, "PTR  22.2.0.192.in-addr.arpa %s\n", longname);
	fprintf(f, "A    %s 192.0.2.22\n", longname);
	/* Too big for 512 octets of UDP: truncated, then asked again over TCP. */
	for (int i = 1; i <= 60; i++)
		fprintf(f, "A    big.example 203.0.113.%d\n", i);
	for (int i = 0; i < MANY; i++)
		fprintf(f, "A    n%d.many.example 198.51.100.%d\n", i, i % 250 + 1);
	return fclose(f) == 0 ? 0 : -1;
}

/* read_port - the "port N" line from the server, within WAIT_MS. */
static int read_port(int fd)
{
	char buf[64];
	size_t n = 0;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int port;

	while (n < sizeof(buf) - 1 && !memchr(buf, '\n', n)) {
		if (poll(&p, 1, WAIT_MS) <= 0)
			return -1;
		ssize_t got = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (got <= 0)
			return -1;
		n += (size_t)got;
	}
	buf[n] = '\0';
	return sscanf(buf, "port %d", &port) == 1 ? port : -1;
}

/* start_server - records file, fork/exec fake-dns, wait for its port. */
static int start_server(struct server *s, const char *prog)
{
	int in[2], out[2];

	snprintf(s->dir, sizeof(s->dir), "/tmp/mtad-dns-XXXXXX");
	if (!mkdtemp(s->dir))
		return -1;
	snprintf(s->records, sizeof(s->records), "%s/records", s->dir);
	snprintf(s->log, sizeof(s->log), "%s/queries", s->dir);
	if (write_records(s->records) < 0 || pipe(in) < 0 || pipe(out) < 0)
		return -1;
	s->pid = fork();
	if (s->pid < 0)
		return -1;
	if (s->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		execl(prog, prog, "--port", "0", "--records", s->records, "--log", s->log,
		      "--stdin", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	s->stdin_fd = in[1];
	s->port = read_port(out[0]);
	close(out[0]);
	snprintf(s->servers, sizeof(s->servers), "127.0.0.1:%d", s->port);
	return s->port > 0 ? 0 : -1;
}

/* stop_server - SIGTERM by PID, reap, remove the directory. */
static void stop_server(struct server *s)
{
	if (s->pid > 0) {
		close(s->stdin_fd);
		kill(s->pid, SIGTERM);
		waitpid(s->pid, NULL, 0);
	}
	unlink(s->records);
	unlink(s->log);
	rmdir(s->dir);
}

/* log_count - how many logged queries contain needle ("" = all). */
static int log_count(struct server *s, const char *needle)
{
	FILE *f = fopen(s->log, "r");
	char line[512];
	int n = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

/* ---- the loop ---- */

static void on_watchdog(uv_timer_t *t)
{
	*(int *)t->data = 1;
}

/* run_until - run the loop until *count >= want or WAIT_MS; false on timeout. */
static bool run_until(uv_loop_t *loop, int *count, int want)
{
	uv_timer_t dog;
	int expired = 0;

	uv_timer_init(loop, &dog);
	dog.data = &expired;
	uv_timer_start(&dog, on_watchdog, WAIT_MS, 0);
	while (*count < want && !expired)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&dog, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	return *count >= want;
}

/* run_for - let the loop run ms milliseconds (answers that must not come). */
static void run_for(uv_loop_t *loop, unsigned ms)
{
	uv_timer_t t;
	int expired = 0;

	uv_timer_init(loop, &t);
	t.data = &expired;
	uv_timer_start(&t, on_watchdog, ms, 0);
	while (!expired)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
}

static void on_addr(void *arg, enum mtad_dns_status status, unsigned naddrs)
{
	struct result *r = arg;

	r->calls++;
	r->status = status;
	r->n = naddrs;
	if (r->counter)
		(*r->counter)++;
	if (r->freed && *r->freed)
		r->late = true;
	if (r->free_me) {
		mtad_dns_free(r->free_me);
		*r->freed = 1;
	}
}

static void on_name(void *arg, enum mtad_dns_status status, const char *name)
{
	struct result *r = arg;

	r->calls++;
	r->status = status;
	snprintf(r->name, sizeof(r->name), "%s", name ? name : "(null)");
	if (r->counter)
		(*r->counter)++;
}

static void on_mx(void *arg, enum mtad_dns_status status, const struct mtad_dns_mx *mx,
		  size_t nmx)
{
	struct result *r = arg;

	r->calls++;
	r->status = status;
	r->nmx = nmx < 8 ? nmx : 8;
	if (mx)
		memcpy(r->mx, mx, r->nmx * sizeof(*mx));
	if (r->counter)
		(*r->counter)++;
}

/* on_addrs - the addresses as text in name ("192.0.2.1 2001:db8::1"), n counts them. */
static void on_addrs(void *arg, enum mtad_dns_status status,
		     const struct sockaddr_storage *addrs, size_t naddrs)
{
	struct result *r = arg;
	char ip[INET6_ADDRSTRLEN];
	size_t len = 0;

	r->calls++;
	r->status = status;
	r->n = (unsigned)naddrs;
	r->no_addrs = addrs == NULL;
	r->name[0] = '\0';
	for (size_t i = 0; addrs && i < naddrs; i++) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&addrs[i];
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&addrs[i];

		if (addrs[i].ss_family == AF_INET) {
			inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
			r->bad_port |= sin->sin_port != 0;
		} else if (addrs[i].ss_family == AF_INET6) {
			inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
			r->bad_port |= sin6->sin6_port != 0;
		} else
			snprintf(ip, sizeof(ip), "family-%d", addrs[i].ss_family);
		len += (size_t)snprintf(r->name + len, sizeof(r->name) - len, "%s%s",
					i ? " " : "", ip);
		if (len >= sizeof(r->name))
			break;
	}
	if (r->counter)
		(*r->counter)++;
	if (r->freed && *r->freed)
		r->late = true;
	if (r->free_me) {
		mtad_dns_free(r->free_me);
		*r->freed = 1;
	}
}

/* addresses - one addresses lookup, waited for. */
static struct result addresses(uv_loop_t *loop, struct mtad_dns *dns, const char *name)
{
	struct result r = { 0 };
	int done = 0;

	r.counter = &done;
	if (mtad_dns_addresses(dns, name, on_addrs, &r))
		run_until(loop, &done, 1);
	else
		r.calls = -1;
	return r;
}

/* forward - one forward lookup, waited for. */
static struct result forward(uv_loop_t *loop, struct mtad_dns *dns, const char *name)
{
	struct result r = { 0 };
	int done = 0;

	r.counter = &done;
	if (mtad_dns_forward(dns, name, on_addr, &r))
		run_until(loop, &done, 1);
	else
		r.calls = -1;
	return r;
}

/* reverse - one reverse lookup, waited for. */
static struct result reverse(uv_loop_t *loop, struct mtad_dns *dns, const char *ip)
{
	struct result r = { 0 };
	int done = 0;

	r.counter = &done;
	if (mtad_dns_reverse(dns, ip, on_name, &r))
		run_until(loop, &done, 1);
	else
		r.calls = -1;
	return r;
}

/* ---- tests ---- */

/* test_hostname_ok - the check every name from DNS passes before use. */
static void test_hostname_ok(struct tap *t)
{
	static const struct { const char *name; bool ok; } cases[] = {
		{ "mx.campus.test", true }, { "MX.Campus.Test.", true }, { "a", true },
		{ "a-b.c0", true }, { "1.2.3.example", true }, { "xn--bcher-kva.example", true },
		{ "", false }, { ".", false }, { "a..b", false }, { ".a", false },
		{ "a.b..", false }, { "-a.example", false }, { "a-.example", false },
		{ "evil\nname.example", false }, { "evil name", false }, { "a_b.example", false },
		{ "192.0.2.1", false }, { "host.123", false }, { "[192.0.2.1]", false },
		{ "caf\xc3\xa9.example", false }, { "a\\.b", false }, { "a%b", false },
	};
	char label64[80], long254[300];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		TAP_OK(t, mtad_dns_hostname_ok(cases[i].name) == cases[i].ok,
		       "hostname_ok(\"%s\") is %s", cases[i].ok ? cases[i].name : "(bad)",
		       cases[i].ok ? "true" : "false");
	TAP_OK(t, !mtad_dns_hostname_ok(NULL), "hostname_ok(NULL) is false");
	memset(label64, 'a', 64);
	strcpy(label64 + 64, ".example");
	TAP_OK(t, !mtad_dns_hostname_ok(label64), "a 64-character label is refused");
	TAP_OK(t, mtad_dns_hostname_ok(label64 + 1), "a 63-character label is fine");
	for (int i = 0; i < 127; i++)
		memcpy(long254 + 2 * i, "a.", 2);
	long254[253] = '\0';		/* 253 characters: a.a. ... a */
	TAP_OK(t, mtad_dns_hostname_ok(long254), "253 characters is fine");
	long254[253] = 'a';
	long254[254] = '\0';		/* ... "aa" at the end: 254 */
	TAP_OK(t, !mtad_dns_hostname_ok(long254), "254 characters is refused");
}

/* test_new - server lists: accepted forms, refused forms with a message. */
static void test_new(struct tap *t, uv_loop_t *loop)
{
	static const char *good[] = {
		"127.0.0.1", "127.0.0.1:5353", "[::1]:5353", "::1",
		"127.0.0.1:53, 127.0.0.2:53", " 127.0.0.1  [::1]:53,,10.0.0.1 ",
	};
	static const char *bad[] = {
		"", " , ", "ns.example", "127.0.0.1:99999x", "[::1", "[::1]:", "::1:53x",
		"127.0.0.1:0", "127.0.0.1:65536", "[127.0.0.1]:53", "1.2.3.4.5", "system,127.0.0.1",
	};
	char err[256];
	struct mtad_dns *dns;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		err[0] = '\0';
		dns = mtad_dns_new(loop, good[i], 500, 1, err, sizeof(err));
		TAP_OK(t, dns != NULL, "servers \"%s\" accepted (%s)", good[i], err);
		mtad_dns_free(dns);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		dns = mtad_dns_new(loop, bad[i], 500, 1, err, sizeof(err));
		TAP_OK(t, dns == NULL && err[0], "servers \"%s\" refused: %s", bad[i], err);
		mtad_dns_free(dns);
	}
	/* Initialised from /etc/resolv.conf, but never asked anything here. */
	dns = mtad_dns_new(loop, "system", 500, 1, err, sizeof(err));
	TAP_OK(t, dns != NULL, "\"system\" initialises (%s)", dns ? "ok" : err);
	mtad_dns_free(dns);
	uv_run(loop, UV_RUN_NOWAIT);
}

/* test_forward - A, AAAA, both, and the ways of finding nothing. */
static void test_forward(struct tap *t, uv_loop_t *loop, struct mtad_dns *dns,
			 struct mtad_dns *quick)
{
	struct result r;
	uint64_t start;

	r = forward(loop, dns, "a4.example");
	TAP_OK(t, r.calls == 1 && r.status == MTAD_DNS_FOUND && r.n == 1, "A only: FOUND, 1 address");
	r = forward(loop, dns, "a6.example");
	TAP_OK(t, r.calls == 1 && r.status == MTAD_DNS_FOUND && r.n == 1, "AAAA only: FOUND, 1 address");
	r = forward(loop, dns, "Both.Example.");
	TAP_OK(t, r.calls == 1 && r.status == MTAD_DNS_FOUND && r.n == 3,
	       "A and AAAA (mixed case, trailing dot): FOUND, 3 addresses (got %u)", r.n);
	r = forward(loop, dns, "big.example");
	TAP_OK(t, r.calls == 1 && r.status == MTAD_DNS_FOUND && r.n == 60,
	       "60 A records (truncated UDP, then TCP): FOUND, 60 addresses (got %u)", r.n);
	r = forward(loop, dns, "nx.example");
	TAP_OK(t, r.calls == 1 && r.status == MTAD_DNS_NOTFOUND && r.n == 0, "NXDOMAIN: NOTFOUND");
	r = forward(loop, dns, "nodata.example");
	TAP_OK(t, r.calls == 1 && r.status == MTAD_DNS_NOTFOUND, "name with only MX (NODATA): NOTFOUND");
	r = forward(loop, dns, "broken.example");
	TAP_OK(t, r.calls == 1 && r.status == MTAD_DNS_TEMPFAIL, "SERVFAIL: TEMPFAIL");
	r = forward(loop, dns, "closed.example");
	TAP_OK(t, r.calls == 1 && r.status == MTAD_DNS_TEMPFAIL, "REFUSED: TEMPFAIL");
	start = uv_now(loop);
	r = forward(loop, quick, "slow.example");
	uv_update_time(loop);
	TAP_OK(t, r.calls == 1 && r.status == MTAD_DNS_TEMPFAIL, "no answer: TEMPFAIL");
	TAP_OK(t, uv_now(loop) - start < 2000, "... after the 200 ms timeout, not more (%llu ms)",
	       (unsigned long long)(uv_now(loop) - start));
	TAP_OK(t, mtad_dns_forward(dns, "bad name", on_addr, &r) == NULL, "malformed name: NULL");
	TAP_OK(t, mtad_dns_forward(dns, "192.0.2.1", on_addr, &r) == NULL, "IP literal: NULL");
	TAP_OK(t, mtad_dns_forward(dns, "[192.0.2.1]", on_addr, &r) == NULL, "address literal: NULL");
}

/* test_reverse - PTR plus forward confirmation, and every way it can fail. */
static void test_reverse(struct tap *t, uv_loop_t *loop, struct mtad_dns *dns,
			 struct mtad_dns *quick)
{
	struct result r;

	r = reverse(loop, dns, "192.0.2.10");
	TAP_OK(t, r.calls == 1 && r.status == MTAD_DNS_FOUND && strcmp(r.name, "a4.example") == 0,
	       "IPv4 confirmed: FOUND a4.example, lower case, no dot (got %s)", r.name);
	r = reverse(loop, dns, "2001:db8::10");
	TAP_OK(t, r.calls == 1 && r.status == MTAD_DNS_FOUND && strcmp(r.name, "a6.example") == 0,
	       "IPv6 confirmed: FOUND a6.example (got %s)", r.name);
	r = reverse(loop, dns, "::ffff:192.0.2.10");
	TAP_OK(t, r.calls == 1 && r.status == MTAD_DNS_FOUND && strcmp(r.name, "a4.example") == 0,
	       "IPv4-mapped IPv6 is looked up as IPv4 (got %s)", r.name);
	r = reverse(loop, dns, "192.0.2.50");
	TAP_OK(t, r.calls == 1 && r.status == MTAD_DNS_NOTFOUND && strcmp(r.name, "(null)") == 0,
	       "no PTR: NOTFOUND, name NULL");
	r = reverse(loop, dns, "192.0.2.20");
	TAP_OK(t, r.calls == 1 && r.status == MTAD_DNS_NOTFOUND, "PTR that does not confirm: NOTFOUND");
	r = reverse(loop, dns, "192.0.2.40");
	TAP_OK(t, r.calls == 1 && r.status == MTAD_DNS_FOUND && strcmp(r.name, "second.example") == 0,
	       "two PTRs, the second confirms: FOUND second.example (got %s)", r.name);
	r = reverse(loop, dns, "192.0.2.21");
	TAP_OK(t, r.calls == 1 && r.status == MTAD_DNS_NOTFOUND && strcmp(r.name, "(null)") == 0,
	       "PTR \"evil\\nname.example\": NOTFOUND, no name");
	r = reverse(loop, dns, "192.0.2.22");
	TAP_OK(t, r.calls == 1 && r.status == MTAD_DNS_NOTFOUND, "PTR of 255 characters: NOTFOUND");
	r = reverse(loop, dns, "192.0.2.23");
	TAP_OK(t, r.calls == 1 && r.status == MTAD_DNS_NOTFOUND, "PTR that is an IP address: NOTFOUND");
	r = reverse(loop, dns, "192.0.2.30");
	TAP_OK(t, r.calls == 1 && r.status == MTAD_DNS_TEMPFAIL, "PTR SERVFAIL: TEMPFAIL");
	r = reverse(loop, dns, "192.0.2.31");
	TAP_OK(t, r.calls == 1 && r.status == MTAD_DNS_TEMPFAIL, "forward SERVFAIL: TEMPFAIL");
	r = reverse(loop, quick, "192.0.2.32");
	TAP_OK(t, r.calls == 1 && r.status == MTAD_DNS_TEMPFAIL, "PTR timeout: TEMPFAIL");
	TAP_OK(t, mtad_dns_reverse(dns, "192.0.2", on_name, &r) == NULL, "not an address: NULL");
	TAP_OK(t, mtad_dns_reverse(dns, "fe80::1%eth0", on_name, &r) == NULL, "scoped address: NULL");
}

/* test_mx - sorted exchanges, null MX, none, malformed. */
static void test_mx(struct tap *t, uv_loop_t *loop, struct mtad_dns *dns)
{
	static const char *names[] = { "campus.test", "null.test", "nx.test", "evilmx.test" };
	struct result r[4] = { 0 };
	int done = 0;

	for (int i = 0; i < 4; i++) {
		r[i].counter = &done;
		TAP_OK(t, mtad_dns_mx(dns, names[i], on_mx, &r[i]) != NULL, "MX %s started", names[i]);
	}
	TAP_OK(t, run_until(loop, &done, 4), "4 MX answers");
	TAP_OK(t, r[0].status == MTAD_DNS_FOUND && r[0].nmx == 2 && r[0].mx[0].preference == 10 &&
	       strcmp(r[0].mx[0].host, "mx1.campus.test") == 0 && r[0].mx[1].preference == 20 &&
	       strcmp(r[0].mx[1].host, "mx2.campus.test") == 0,
	       "campus.test: 10 mx1, 20 mx2 (sorted, lower case, no dot)");
	TAP_OK(t, r[1].status == MTAD_DNS_FOUND && r[1].nmx == 1 && r[1].mx[0].host[0] == '\0',
	       "null MX: FOUND, one entry with host \"\"");
	TAP_OK(t, r[2].status == MTAD_DNS_NOTFOUND && r[2].nmx == 0, "no MX: NOTFOUND");
	TAP_OK(t, r[3].status == MTAD_DNS_TEMPFAIL && r[3].nmx == 0, "malformed exchange only: TEMPFAIL");
}

/* test_addresses - the addresses delivery connects to: IPv4 first, port 0. */
static void test_addresses(struct tap *t, uv_loop_t *loop, struct mtad_dns *dns,
			   struct mtad_dns *quick)
{
	static const struct {
		const char *name;
		enum mtad_dns_status status;
		const char *want;	/* the addresses in order */
		const char *what;
	} cases[] = {
		{ "a4.example", MTAD_DNS_FOUND, "192.0.2.10", "A only" },
		{ "a6.example", MTAD_DNS_FOUND, "2001:db8::10", "AAAA only" },
		{ "both.example", MTAD_DNS_FOUND, "192.0.2.11 192.0.2.12 2001:db8::11",
		  "A and AAAA: IPv4 first, in answer order" },
		{ "Both.Example.", MTAD_DNS_FOUND, "192.0.2.11 192.0.2.12 2001:db8::11",
		  "mixed case, trailing dot" },
		{ "nx.example", MTAD_DNS_NOTFOUND, "", "NXDOMAIN: NOTFOUND" },
		{ "nodata.example", MTAD_DNS_NOTFOUND, "", "only MX (NODATA): NOTFOUND" },
		{ "broken.example", MTAD_DNS_TEMPFAIL, "", "SERVFAIL: TEMPFAIL" },
		{ "closed.example", MTAD_DNS_TEMPFAIL, "", "REFUSED: TEMPFAIL" },
	};
	static const char *bad[] = { "bad name", "192.0.2.1", "[192.0.2.1]", "", "a..b" };
	struct result r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t want_n = cases[i].want[0] ? 1 : 0;

		for (const char *p = cases[i].want; *p; p++)
			want_n += *p == ' ';
		r = addresses(loop, dns, cases[i].name);
		TAP_OK(t, r.calls == 1 && r.status == cases[i].status && r.n == want_n &&
		       strcmp(r.name, cases[i].want) == 0 && !r.bad_port && r.no_addrs == !want_n,
		       "addresses %s: %s (got %d call(s), status %d, \"%s\")", cases[i].name,
		       cases[i].what, r.calls, (int)r.status, r.name);
	}
	r = addresses(loop, quick, "slow.example");
	TAP_OK(t, r.calls == 1 && r.status == MTAD_DNS_TEMPFAIL && r.n == 0 && r.no_addrs,
	       "addresses with no answer: TEMPFAIL");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		TAP_OK(t, mtad_dns_addresses(dns, bad[i], on_addrs, &r) == NULL,
		       "addresses of \"%s\": NULL", bad[i]);
	TAP_OK(t, mtad_dns_addresses(dns, "a4.example", NULL, &r) == NULL, "no callback: NULL");
}

/* test_addresses_cancel - cancelled addresses lookups (answered and timing out): no callback. */
static void test_addresses_cancel(struct tap *t, uv_loop_t *loop, struct mtad_dns *dns,
				  struct mtad_dns *quick)
{
	struct result a = { 0 }, b = { 0 }, after = { 0 };
	struct mtad_dns_query *q;
	int done = 0;

	q = mtad_dns_addresses(dns, "both.example", on_addrs, &a);
	TAP_OK(t, q != NULL, "addresses lookup started");
	mtad_dns_cancel(q);
	q = mtad_dns_addresses(quick, "slow.example", on_addrs, &b);
	mtad_dns_cancel(q);
	after.counter = &done;
	mtad_dns_addresses(dns, "a6.example", on_addrs, &after);
	run_until(loop, &done, 1);
	run_for(loop, 600);	/* past the 200 ms timeout of the slow one */
	TAP_OK(t, after.calls == 1 && strcmp(after.name, "2001:db8::10") == 0,
	       "an addresses lookup after the cancelled ones is answered");
	TAP_OK(t, a.calls == 0 && b.calls == 0, "cancelled addresses lookups: no callback");
}

/* test_addresses_free - free with one in flight, and from inside an addresses callback. */
static void test_addresses_free(struct tap *t, const char *servers)
{
	uv_loop_t loop;
	struct result r = { 0 }, first = { 0 }, other = { 0 };
	struct mtad_dns *dns;
	char err[256];
	int freed = 0;

	uv_loop_init(&loop);
	dns = mtad_dns_new(&loop, servers, 200, 1, err, sizeof(err));
	TAP_OK(t, dns != NULL, "resolver for addresses (%s)", dns ? servers : err);
	if (!dns)
		return;
	TAP_OK(t, mtad_dns_addresses(dns, "both.example", on_addrs, &r) != NULL,
	       "one addresses lookup in flight");
	mtad_dns_free(dns);
	uv_run(&loop, UV_RUN_DEFAULT);
	TAP_OK(t, r.calls == 0, "freed with it in flight: no callback");
	dns = mtad_dns_new(&loop, servers, 2000, 1, err, sizeof(err));
	if (!dns) {
		TAP_OK(t, 0, "another resolver: %s", err);
		return;
	}
	first.free_me = dns;
	first.freed = &freed;
	other.freed = &freed;
	mtad_dns_addresses(dns, "a4.example", on_addrs, &first);
	mtad_dns_addresses(dns, "slow.example", on_addrs, &other);
	uv_run(&loop, UV_RUN_DEFAULT);
	TAP_OK(t, first.calls == 1 && freed && strcmp(first.name, "192.0.2.10") == 0,
	       "an addresses callback freed the resolver");
	TAP_OK(t, other.calls == 0 && !other.late, "the other lookup never called back");
	TAP_OK(t, uv_loop_close(&loop) == 0, "every handle closed");
}

/* test_cancel - cancelled before the answer (and before a timeout): never called. */
static void test_cancel(struct tap *t, uv_loop_t *loop, struct mtad_dns *dns,
			struct mtad_dns *quick)
{
	struct result a = { 0 }, b = { 0 }, c = { 0 }, after = { 0 };
	struct mtad_dns_query *q;
	int done = 0;

	q = mtad_dns_forward(dns, "a4.example", on_addr, &a);
	mtad_dns_cancel(q);
	q = mtad_dns_reverse(dns, "192.0.2.10", on_name, &b);
	mtad_dns_cancel(q);
	q = mtad_dns_forward(quick, "slow.example", on_addr, &c);
	mtad_dns_cancel(q);
	after.counter = &done;
	mtad_dns_forward(dns, "both.example", on_addr, &after);
	run_until(loop, &done, 1);
	run_for(loop, 600);	/* past the 200 ms timeout of the slow one */
	TAP_OK(t, after.calls == 1, "a query after the cancelled ones is answered");
	TAP_OK(t, a.calls == 0 && b.calls == 0 && c.calls == 0,
	       "cancelled forward, reverse and timing-out queries: no callback");
}

/* test_free_inflight - free with queries in flight: no callbacks, every handle closed. */
static void test_free_inflight(struct tap *t, const char *servers)
{
	uv_loop_t loop;
	struct result r[6] = { 0 };
	struct mtad_dns *dns;
	char err[256];

	uv_loop_init(&loop);
	dns = mtad_dns_new(&loop, servers, 200, 1, err, sizeof(err));
	TAP_OK(t, dns != NULL, "second resolver (%s)", dns ? servers : err);
	if (!dns)
		return;
	mtad_dns_forward(dns, "a4.example", on_addr, &r[0]);
	mtad_dns_forward(dns, "slow.example", on_addr, &r[1]);
	mtad_dns_reverse(dns, "192.0.2.10", on_name, &r[2]);
	mtad_dns_reverse(dns, "192.0.2.32", on_name, &r[3]);
	mtad_dns_mx(dns, "campus.test", on_mx, &r[4]);
	mtad_dns_free(dns);
	uv_run(&loop, UV_RUN_DEFAULT);
	TAP_OK(t, r[0].calls + r[1].calls + r[2].calls + r[3].calls + r[4].calls == 0,
	       "freed with 5 lookups in flight: no callback");
	TAP_OK(t, uv_loop_close(&loop) == 0, "every handle of the resolver is closed");
}

/* test_free_in_callback - a callback frees the resolver: the other answers never come. */
static void test_free_in_callback(struct tap *t, const char *servers)
{
	uv_loop_t loop;
	struct result first = { 0 }, r[20] = { 0 };
	struct mtad_dns *dns;
	char err[256];
	int others = 0, freed = 0, late = 0;

	uv_loop_init(&loop);
	dns = mtad_dns_new(&loop, servers, 2000, 2, err, sizeof(err));
	TAP_OK(t, dns != NULL, "third resolver (%s)", dns ? servers : err);
	if (!dns)
		return;
	first.free_me = dns;
	first.freed = &freed;
	mtad_dns_forward(dns, "a4.example", on_addr, &first);
	for (int i = 0; i < 20; i++) {
		r[i].counter = &others;
		r[i].freed = &freed;
		mtad_dns_forward(dns, i % 2 ? "both.example" : "slow.example", on_addr, &r[i]);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	for (int i = 0; i < 20; i++)
		late += r[i].late;
	TAP_OK(t, first.calls == 1 && freed, "the first answer came, and its callback freed the resolver");
	TAP_OK(t, late == 0 && others <= 10,
	       "no callback after the free (%d answers came before it)", others);
	TAP_OK(t, uv_loop_close(&loop) == 0, "every handle closed after a free from a callback");
}

/* test_many - MANY forward lookups at once, all answered. */
static void test_many(struct tap *t, uv_loop_t *loop, struct mtad_dns *dns)
{
	static struct result r[MANY];
	char name[64];
	int done = 0, started = 0, found = 0;

	for (int i = 0; i < MANY; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		r[i].counter = &done;
		snprintf(name, sizeof(name), "n%d.many.example", i);
		started += mtad_dns_forward(dns, name, on_addr, &r[i]) != NULL;
	}
	TAP_OK(t, started == MANY, "%d lookups started at once", started);
	TAP_OK(t, run_until(loop, &done, MANY), "all %d answered (%d)", MANY, done);
	for (int i = 0; i < MANY; i++)
		found += r[i].calls == 1 && r[i].status == MTAD_DNS_FOUND && r[i].n == 1;
	TAP_OK(t, found == MANY, "each exactly once, FOUND, 1 address (%d)", found);
}

/* test_bound - a server that never answers: the lookup past the bound is NULL. */
static void test_bound(struct tap *t)
{
	uv_loop_t loop;
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM, 0), started = 0;
	struct result r = { 0 };
	struct mtad_dns *dns;
	char servers[64], err[256];

	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
		TAP_OK(t, 0, "a silent UDP socket: %s", strerror(errno));
		return;
	}
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", ntohs(sin.sin_port));
	uv_loop_init(&loop);
	dns = mtad_dns_new(&loop, servers, 5000, 1, err, sizeof(err));
	TAP_OK(t, dns != NULL, "resolver for a silent server (%s)", dns ? servers : err);
	if (dns) {
		while (started < 10000 && mtad_dns_forward(dns, "silent.example", on_addr, &r))
			started++;
		TAP_OK(t, started >= 1000 && started < 10000,
		       "lookups are bounded: the one after %d is NULL", started);
		mtad_dns_free(dns);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	TAP_OK(t, r.calls == 0 && uv_loop_close(&loop) == 0, "freed: no callbacks, handles closed");
	close(fd);
}

/* test_only_our_server - everything asked above reached the fake server. */
static void test_only_our_server(struct tap *t, struct server *s)
{
	/* At least: a slow server makes c-ares send some of them again. */
	TAP_OK(t, log_count(s, "udp n499.many.example A\n") >= 1 &&
	       log_count(s, "udp n0.many.example AAAA\n") >= 1, "the server saw the many lookups");
	TAP_OK(t, log_count(s, "udp 10.2.0.192.in-addr.arpa PTR\n") >= 2 &&
	       log_count(s, " a4.example A\n") >= 3, "... the PTR and confirmation queries");
	TAP_OK(t, log_count(s, "tcp big.example A\n") == 1, "... the TCP retry of the truncated answer");
	TAP_OK(t, log_count(s, "udp ") >= 2 * MANY + 40, "... %d queries in all", log_count(s, ""));
}

int main(void)
{
	struct tap t = { 0 };
	struct server s = { 0 };
	char path[1024], err[256];
	const char *prog = fake_dns_path(path, sizeof(path));
	uv_loop_t *loop = uv_default_loop();
	struct mtad_dns *dns, *quick;

	signal(SIGPIPE, SIG_IGN);
	test_hostname_ok(&t);
	test_new(&t, loop);
	if (!prog) {
		printf("# t/lib/fake-dns not found: run from the repository top or set MTAD_TOP\n");
		printf("# skipping the tests that need a DNS server\n");
		return tap_done(&t);
	}
	if (start_server(&s, prog) < 0) {
		TAP_OK(&t, 0, "fake-dns started (%s; needs libnet-dns-perl)", prog);
		stop_server(&s);
		return tap_done(&t);
	}
	dns = mtad_dns_new(loop, s.servers, 2000, 2, err, sizeof(err));
	quick = mtad_dns_new(loop, s.servers, 200, 1, err, sizeof(err));
	TAP_OK(&t, dns && quick, "resolvers for %s", s.servers);
	if (dns && quick) {
		test_forward(&t, loop, dns, quick);
		test_reverse(&t, loop, dns, quick);
		test_mx(&t, loop, dns);
		test_addresses(&t, loop, dns, quick);
		test_addresses_cancel(&t, loop, dns, quick);
		test_addresses_free(&t, s.servers);
		test_cancel(&t, loop, dns, quick);
		test_many(&t, loop, dns);
		test_free_inflight(&t, s.servers);
		test_free_in_callback(&t, s.servers);
		test_bound(&t);
	}
	mtad_dns_free(dns);
	mtad_dns_free(quick);
	uv_run(loop, UV_RUN_DEFAULT);
	TAP_OK(&t, uv_loop_close(loop) == 0, "the main loop closes: nothing left behind");
	test_only_our_server(&t, &s);
	stop_server(&s);
	return tap_done(&t);
}
