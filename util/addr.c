/*
 * addr.c - mtad's one address type (struct mtad_addr): IPv4 and IPv6
 * addresses and networks for the configuration, the policy and delivery:
 * parsing "192.0.2.1", "2001:db8::/32" and HELO address literals,
 * converting a socket's sockaddr, and asking
 * whether an address is inside a network.
 *
 * Must not: allocate, do I/O, read past len, accept text inet_pton would
 * not (so "1.2.3", "01.2.3.4", zone ids and embedded NULs fail), accept a
 * prefix longer than the family allows or a prefix inside brackets, or
 * let an IPv4 client escape an IPv4 network by arriving over an IPv6
 * socket as ::ffff:a.b.c.d.
 *
 * Follows: RFC 4291 §2.2 (IPv6 text), §2.5.5.2 (IPv4-mapped); RFC 4632
 * (CIDR); RFC 5321 §4.1.3 (address literals).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "util/util.h"

/* Longest address text inet_pton can take, "ffff:...:255.255.255.255". */
#define ADDR_TEXT_MAX 45

/* has_tag - does s start with "IPv6:" in any case? */
static bool has_tag(const char *s, size_t len)
{
	static const char tag[] = "ipv6:";
	size_t i;

	if (len < sizeof(tag) - 1)
		return false;
	for (i = 0; i < sizeof(tag) - 1; i++)
		if (mtad_lower(s[i]) != tag[i])
			return false;
	return true;
}

/*
 * parse_host - one address, no prefix. family 0: IPv6 if it has a
 * colon, else IPv4; AF_INET6: only IPv6 (after an "IPv6:" tag).
 */
static int parse_host(const char *s, size_t len, int family, struct mtad_addr *out)
{
	char buf[ADDR_TEXT_MAX + 1];

	/* inet_pton wants a C string: copy, and refuse what copying would hide. */
	if (len == 0 || len > ADDR_TEXT_MAX || memchr(s, '\0', len) != NULL)
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (family == 0)
		family = memchr(s, ':', len) != NULL ? AF_INET6 : AF_INET;
	memset(out, 0, sizeof(*out));
	if (inet_pton(family, buf, out->bytes) != 1)
		return -1;
	out->family = family;
	out->prefix = family == AF_INET ? 32 : 128;
	return 0;
}

/* parse_prefix - the digits after '/': 1 to 3 of them, at most max. */
static int parse_prefix(const char *s, size_t len, unsigned max, unsigned *out)
{
	unsigned v = 0;
	size_t i;

	if (len == 0 || len > 3)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

/* mask - clears the host bits below the prefix. */
static void mask(struct mtad_addr *a)
{
	unsigned i;

	for (i = 0; i < sizeof(a->bytes); i++) {
		unsigned bit = i * 8;

		if (bit >= a->prefix)
			a->bytes[i] = 0;
		else if (bit + 8 > a->prefix)
			a->bytes[i] &= (uint8_t)(0xff00u >> (a->prefix - bit));
	}
}

/*
 * parse_literal - "[1.2.3.4]", "[IPv6:2001:db8::1]" or "[::1]". The tag
 * is optional for IPv6 because people write "[::1]"; with the tag the
 * content must be IPv6. A literal is one address, never a network.
 */
static int parse_literal(const char *s, size_t len, struct mtad_addr *out)
{
	int family = 0;

	if (len < 2 || s[len - 1] != ']')
		return -1;
	s++;
	len -= 2;
	if (has_tag(s, len)) {
		s += 5;
		len -= 5;
		family = AF_INET6;
	}
	return parse_host(s, len, family, out);
}

/* mtad_addr_parse - see util.h. */
int mtad_addr_parse(const char *text, size_t len, bool literal, struct mtad_addr *out)
{
	const char *slash;
	unsigned prefix;

	if (text == NULL || out == NULL)
		return -1;
	if (len > 0 && text[0] == '[')
		return literal ? parse_literal(text, len, out) : -1;
	slash = memchr(text, '/', len);
	if (slash == NULL)
		return parse_host(text, len, 0, out);
	if (parse_host(text, (size_t)(slash - text), 0, out) < 0)
		return -1;
	if (parse_prefix(slash + 1, len - (size_t)(slash - text) - 1, out->prefix, &prefix) < 0)
		return -1;
	out->prefix = prefix;
	mask(out);
	return 0;
}

/*
 * as_ipv4 - an IPv4-mapped address or network (::ffff:0:0/96 and
 * longer) rewritten as the IPv4 one it stands for; anything else as is.
 * Shorter IPv6 networks, ::/0 included, stay IPv6 and so never hold an
 * IPv4 client: an admin who trusts "::/0" has not said a word about IPv4.
 */
static struct mtad_addr as_ipv4(const struct mtad_addr *a)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	struct mtad_addr v4;

	if (a->family != AF_INET6 || a->prefix < 96 || a->prefix > 128 ||
	    memcmp(a->bytes, mapped, sizeof(mapped)) != 0)
		return *a;
	memset(&v4, 0, sizeof(v4));
	v4.family = AF_INET;
	memcpy(v4.bytes, a->bytes + 12, 4);
	v4.prefix = a->prefix - 96;
	return v4;
}

/* prefix_ok - a prefix the family can have (the struct may come from anywhere). */
static bool prefix_ok(const struct mtad_addr *a)
{
	if (a->family == AF_INET)
		return a->prefix <= 32;
	return a->family == AF_INET6 && a->prefix <= 128;
}

/* same_bits - are the first n bits of a and b equal? */
static bool same_bits(const uint8_t *a, const uint8_t *b, unsigned n)
{
	unsigned whole = n / 8, rest = n % 8;
	uint8_t m;

	if (memcmp(a, b, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	m = (uint8_t)(0xff00u >> rest);
	return (a[whole] & m) == (b[whole] & m);
}

/*
 * mtad_net_contains - see util.h. addr may itself be a network: it is
 * inside net when it is no wider and starts with net's bits.
 */
bool mtad_net_contains(const struct mtad_addr *net, const struct mtad_addr *addr)
{
	struct mtad_addr n, a;

	if (net == NULL || addr == NULL)
		return false;
	n = as_ipv4(net);
	a = as_ipv4(addr);
	if (!prefix_ok(&n) || !prefix_ok(&a) || n.family != a.family || a.prefix < n.prefix)
		return false;
	return same_bits(n.bytes, a.bytes, n.prefix);
}

/* mtad_in_networks - see util.h. Unparsable text is in no network. */
bool mtad_in_networks(const struct mtad_addr *nets, size_t n, const char *ip)
{
	struct mtad_addr a;
	size_t i;

	if (nets == NULL || ip == NULL)
		return false;
	if (parse_host(ip, strnlen(ip, ADDR_TEXT_MAX + 1), 0, &a) < 0)
		return false;
	for (i = 0; i < n; i++)
		if (mtad_net_contains(&nets[i], &a))
			return true;
	return false;
}

/* mtad_addr_from_sockaddr - see util.h. */
bool mtad_addr_from_sockaddr(const struct sockaddr *sa, struct mtad_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (sa->sa_family == AF_INET) {
		out->family = AF_INET;
		memcpy(out->bytes, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		out->prefix = 32;
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		out->family = AF_INET6;
		memcpy(out->bytes, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		out->prefix = 128;
		return true;
	}
	return false;
}

/* mtad_addr_same - see util.h. */
bool mtad_addr_same(const struct mtad_addr *a, const struct mtad_addr *b)
{
	struct mtad_addr x = as_ipv4(a), y = as_ipv4(b);
	size_t n = x.family == AF_INET ? 4 : 16;

	return x.family == y.family && memcmp(x.bytes, y.bytes, n) == 0;
}
