/*
 * util_addr.c - unit tests for the ground floor's address helpers that
 * the policy tests (t/unit/policy.c, parsing and networks) do not reach:
 * a socket's sockaddr as struct mtad_addr, "the same host" across
 * IPv4-mapped IPv6, this machine's own addresses, and mtad_str_lower.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "util/util.h"
#include "t/unit/tap.h"

/* addr - a literal parsed, or a zeroed address when it does not parse. */
static struct mtad_addr addr(const char *text)
{
	struct mtad_addr a;

	if (mtad_addr_parse(text, strlen(text), true, &a) != 0)
		memset(&a, 0, sizeof(a));
	return a;
}

static void test_from_sockaddr(struct tap *t)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(25) };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(25) };
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct mtad_addr a, want;

	inet_pton(AF_INET, "192.0.2.7", &sin.sin_addr);
	inet_pton(AF_INET6, "2001:db8::7", &sin6.sin6_addr);
	want = addr("192.0.2.7");
	TAP_OK(t, mtad_addr_from_sockaddr((struct sockaddr *)&sin, &a) && a.family == AF_INET &&
	       a.prefix == 32 && memcmp(a.bytes, want.bytes, 4) == 0, "sockaddr_in 192.0.2.7");
	want = addr("2001:db8::7");
	TAP_OK(t, mtad_addr_from_sockaddr((struct sockaddr *)&sin6, &a) && a.family == AF_INET6 &&
	       a.prefix == 128 && memcmp(a.bytes, want.bytes, 16) == 0, "sockaddr_in6 2001:db8::7");
	TAP_OK(t, !mtad_addr_from_sockaddr((struct sockaddr *)&sun, &a), "AF_UNIX is no address");
}

static void test_same(struct tap *t)
{
	struct mtad_addr v4 = addr("192.0.2.7"), mapped = addr("::ffff:192.0.2.7");
	struct mtad_addr other = addr("192.0.2.8"), v6 = addr("2001:db8::7");
	struct mtad_addr net = addr("192.0.2.7");

	net.prefix = 24;
	TAP_OK(t, mtad_addr_same(&v4, &v4), "an address is itself");
	TAP_OK(t, mtad_addr_same(&v4, &mapped) && mtad_addr_same(&mapped, &v4),
	       "IPv4-mapped IPv6 is the IPv4 address, both ways");
	TAP_OK(t, !mtad_addr_same(&v4, &other), "192.0.2.7 is not 192.0.2.8");
	TAP_OK(t, !mtad_addr_same(&v4, &v6), "different families differ");
	TAP_OK(t, mtad_addr_same(&v4, &net), "prefixes are ignored");
}

static void test_own(struct tap *t)
{
	struct mtad_config cfg;
	struct mtad_addr own[64], lo = addr("127.0.0.1"), listen = addr("192.0.2.99");
	size_t n;
	bool has_lo = false, has_listen = false;

	mtad_config_defaults(&cfg);
	snprintf(cfg.listen[0].address, sizeof(cfg.listen[0].address), "192.0.2.99");
	n = mtad_own_addresses(&cfg, own, 64);
	for (size_t i = 0; i < n; i++) {
		has_lo |= mtad_addr_same(&own[i], &lo);
		has_listen |= mtad_addr_same(&own[i], &listen);
	}
	TAP_OK(t, has_lo, "loopback is one of ours (getifaddrs)");
	TAP_OK(t, has_listen, "a configured listen address is one of ours");
	TAP_OK(t, mtad_own_addresses(&cfg, own, 1) == 1, "at most max addresses");
	snprintf(cfg.listen[0].address, sizeof(cfg.listen[0].address), "0.0.0.0");
	n = mtad_own_addresses(&cfg, own, 64);
	has_listen = false;
	for (size_t i = 0; i < n; i++)
		has_listen |= own[i].family == AF_INET && memcmp(own[i].bytes, "\0\0\0\0", 4) == 0;
	TAP_OK(t, !has_listen, "the wildcard 0.0.0.0 is not an address of ours");
}

static void test_lower(struct tap *t)
{
	char buf[32];

	mtad_str_lower(buf, "MX.Campus.TEST-9", 16);
	TAP_OK(t, strcmp(buf, "mx.campus.test-9") == 0, "mtad_str_lower: %s", buf);
	mtad_str_lower(buf, "ABC", 2);
	TAP_OK(t, strcmp(buf, "ab") == 0, "mtad_str_lower stops at n and terminates");
	TAP_OK(t, mtad_lower((char)0xC4) == (char)0xC4, "8-bit bytes are left alone");
	TAP_OK(t, mtad_lower('@') == '@' && mtad_lower('[') == '[', "neighbours of A-Z stay");
}

int main(void)
{
	struct tap t = { 0, 0 };

	test_from_sockaddr(&t);
	test_same(&t);
	test_own(&t);
	test_lower(&t);
	return tap_done(&t);
}
