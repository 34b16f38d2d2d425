/*
 * route.c - delivery routes: parses `route = DOMAIN NEXTHOP [tls=...]`
 * and `relayhost = NEXTHOP [tls=...]` values, and finds the route for a
 * recipient domain.
 *
 * NEXTHOP in brackets ("[mailhub.test]:2525", "[192.0.2.1]",
 * "[2001:db8::1]:25") is the host itself, no MX lookup; bare ("relay.test",
 * "relay.test:2525") means the MX records of that name. IPv6 addresses
 * are written in brackets without RFC 5321's "IPv6:" tag: this is
 * configuration, not an address literal, and Postfix writes it so too.
 * "lmtp:[host]:port" and "lmtp:unix:/path" are LMTP next hops (routes
 * only): a host in brackets (no MX: LMTP talks to one mailbox server)
 * or an absolute socket path.
 *
 * Must not: accept a host that is neither a sane host name nor a
 * numeric address (it becomes a DNS query, a TLS peer name and a log
 * field); accept trailing junk or an option twice (a typo must not
 * silently change where mail goes); do I/O or keep global state.
 *
 * Follows: RFC 1123 §2.1 (host names), RFC 5321 §5.1 (MX or the host
 * itself), RFC 3207 / RFC 7672-style policy names (none, may, verify),
 * RFC 2033 (LMTP: §1 not for the wide area, §5 not port 25 by default);
 * RFC 5890 (a domain or host written with U-labels is kept, looked up
 * and compared in its A-label form, util/idna.c).
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "deliver/deliver.h"

#define BLANKS " \t"
#define MAX_FIELDS 3		/* DOMAIN NEXTHOP tls=... */
#define QUOTE_MAX 100		/* of the value, in error messages */
#define FIELD_MAX 64		/* of a field quoted in the reason */

/* SHOW - the printf length of a quoted field: the reason must fit in 256 bytes. */
#define SHOW(len) ((int)((len) > FIELD_MAX ? FIELD_MAX : (len)))

/* One blank-separated field of the value. */
struct field {
	const char *p;
	size_t len;
};

/* What is being parsed, for error messages. */
struct ctx {
	const char *value;
	bool relayhost;
	char *err;
	size_t errlen;
};

/* fail - "bad route \"VALUE\": what"; returns -1. */
static int fail(const struct ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int fail(const struct ctx *c, const char *fmt, ...)
{
	char what[200];
	size_t vlen = strlen(c->value);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	/* A long value is cut so the reason, which matters most, still fits. */
	if (c->errlen > 0)
		snprintf(c->err, c->errlen, "bad %s \"%.*s%s\": %s",
			 c->relayhost ? "relayhost" : "route",
			 (int)(vlen > QUOTE_MAX ? QUOTE_MAX : vlen), c->value,
			 vlen > QUOTE_MAX ? "..." : "", what);
	return -1;
}

/* split - the blank-separated fields of value; returns how many (max + 1 when more). */
static size_t split(const char *value, struct field *f, size_t max)
{
	size_t n = 0;
	const char *p = value;

	for (;;) {
		p += strspn(p, BLANKS);
		if (*p == '\0' || n > max)
			return n;
		if (n < max) {
			f[n].p = p;
			f[n].len = strcspn(p, BLANKS);
		}
		n++;
		p += strcspn(p, BLANKS);
	}
}

/*
 * lower_copy - len bytes of s, lower-cased (U-labels as A-labels), one
 * trailing dot dropped; false if too long or not a name in UTF-8.
 */
static bool lower_copy(char *out, size_t outlen, const char *s, size_t len)
{
	char alabel[MTAD_DOMAIN_ASCII_MAX + 2];
	int n;

	if (!mtad_ascii(s, len)) {
		if ((n = mtad_domain_to_ascii(s, len, alabel, sizeof(alabel))) <= 0)
			return false;
		s = alabel;
		len = (size_t)n;
	}
	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len >= outlen)
		return false;
	mtad_str_lower(out, s, len);
	return true;
}

/* name_ok - len bytes at s are a sane host name (mtad_dns_hostname_ok wants a string). */
static bool name_ok(const char *s, size_t len)
{
	char buf[SMTP_DOMAIN_MAX + 1];

	if (len >= sizeof(buf))
		return false;
	if (!mtad_ascii(s, len))	/* U-labels: the name DNS will be asked */
		return mtad_domain_to_ascii(s, len, buf, sizeof(buf)) > 0 &&
		       mtad_dns_hostname_ok(buf);
	memcpy(buf, s, len);
	buf[len] = '\0';
	return mtad_dns_hostname_ok(buf);
}

/* is_address - len bytes at s are a numeric address of family af. */
static bool is_address(int af, const char *s, size_t len)
{
	char buf[64];
	unsigned char bin[16];

	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return inet_pton(af, buf, bin) == 1;
}

/* parse_domain - DOMAIN or .DOMAIN into out. */
static int parse_domain(const struct ctx *c, struct field f, struct smtp_route *out)
{
	struct field name = f;

	if (f.p[0] == '.') {
		out->subdomains = true;
		name.p++;
		name.len--;
	}
	if (!name_ok(name.p, name.len) ||
	    !lower_copy(out->domain, sizeof(out->domain), name.p, name.len))
		return fail(c, "\"%.*s\" is not a domain name", SHOW(f.len), f.p);
	return 0;
}

/* parse_port - decimal 1..65535; -1 if not. */
static int parse_port(const char *p, size_t len)
{
	int v = 0;

	if (len == 0 || len > 5)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v >= 1 && v <= 65535 ? v : -1;
}

/* parse_bracketed - "[host]" or "[host]:port": a name or an address, no MX lookup. */
static int parse_bracketed(const struct ctx *c, struct field f, struct smtp_route *out)
{
	const char *close = memchr(f.p, ']', f.len);
	const char *host = f.p + 1;
	size_t hlen, rest;

	if (!close)
		return fail(c, "\"%.*s\" has no closing ]", SHOW(f.len), f.p);
	hlen = (size_t)(close - host);
	rest = f.len - (size_t)(close + 1 - f.p);
	if (rest > 0) {
		if (close[1] != ':')
			return fail(c, "expected :PORT after ] in \"%.*s\"", SHOW(f.len), f.p);
		out->port = parse_port(close + 2, rest - 1);
		if (out->port < 0)
			return fail(c, "bad port \"%.*s\" (1..65535)", SHOW(rest - 1), close + 2);
	}
	if (hlen == 0)
		return fail(c, "\"%.*s\" names no host", SHOW(f.len), f.p);
	if (hlen > 5 && strncasecmp(host, "IPv6:", 5) == 0)
		return fail(c, "write IPv6 addresses without \"IPv6:\", as [2001:db8::1]");
	if (!is_address(AF_INET, host, hlen) && !is_address(AF_INET6, host, hlen) &&
	    !name_ok(host, hlen))
		return fail(c, "\"%.*s\" is not a host name or address", SHOW(hlen), host);
	if (!lower_copy(out->host, sizeof(out->host), host, hlen))
		return fail(c, "\"%.*s\" is not a host name or address", SHOW(hlen), host);
	out->mx = false;
	return 0;
}

/* parse_mx_host - "host" or "host:port": MX lookup of a host name. */
static int parse_mx_host(const struct ctx *c, struct field f, struct smtp_route *out)
{
	const char *colon = memchr(f.p, ':', f.len);
	size_t hlen = colon ? (size_t)(colon - f.p) : f.len;

	/* A bare address would be looked up as a name: say what was meant. */
	if (is_address(AF_INET6, f.p, f.len))
		return fail(c, "an address needs brackets: [%.*s]", SHOW(f.len), f.p);
	if (is_address(AF_INET, f.p, hlen))
		return fail(c, "an address needs brackets: [%.*s]", SHOW(hlen), f.p);
	if (colon) {
		out->port = parse_port(colon + 1, f.len - hlen - 1);
		if (out->port < 0)
			return fail(c, "bad port \"%.*s\" (1..65535)", SHOW(f.len - hlen - 1),
				    colon + 1);
	}
	if (!name_ok(f.p, hlen))
		return fail(c, "\"%.*s\" is not a host name", SHOW(hlen), f.p);
	if (!lower_copy(out->host, sizeof(out->host), f.p, hlen))
		return fail(c, "\"%.*s\" is not a host name", SHOW(hlen), f.p);
	out->mx = true;
	return 0;
}

/* parse_unix_path - "/path" of an LMTP socket: absolute, fits sun_path, printable. */
static int parse_unix_path(const struct ctx *c, struct field f, struct smtp_route *out)
{
	if (f.len == 0 || f.p[0] != '/')
		return fail(c, "an LMTP socket path must be absolute, not \"%.*s\"",
			    SHOW(f.len), f.p);
	if (f.len >= sizeof(out->path))
		return fail(c, "the LMTP socket path is longer than %zu bytes",
			    sizeof(out->path) - 1);
	for (size_t i = 0; i < f.len; i++)
		if ((unsigned char)f.p[i] < 0x21 || (unsigned char)f.p[i] > 0x7e)
			return fail(c, "the LMTP socket path has a control or non-ASCII byte");
	memcpy(out->path, f.p, f.len);
	out->path[f.len] = '\0';
	out->port = 0;
	return 0;
}

/* parse_lmtp - after "lmtp:": "[host]", "[host]:port" (24 unless given) or "unix:/path". */
static int parse_lmtp(const struct ctx *c, struct field f, struct smtp_route *out)
{
	out->lmtp = true;
	if (c->relayhost)
		return fail(c, "LMTP is for routes to mailbox servers, not for the relayhost");
	if (f.len >= 5 && memcmp(f.p, "unix:", 5) == 0)
		return parse_unix_path(c, (struct field){ f.p + 5, f.len - 5 }, out);
	if (f.len == 0 || f.p[0] != '[')
		return fail(c, "LMTP needs lmtp:[host], lmtp:[host]:port or lmtp:unix:/path, "
			    "not \"lmtp:%.*s\" (no MX lookup)", SHOW(f.len), f.p);
	out->port = LMTP_PORT;
	return parse_bracketed(c, f, out);
}

/* parse_nexthop - NEXTHOP, bracketed or not, or LMTP; port 25 unless given. */
static int parse_nexthop(const struct ctx *c, struct field f, struct smtp_route *out)
{
	out->port = 25;
	if (f.len >= 5 && memcmp(f.p, "lmtp:", 5) == 0)
		return parse_lmtp(c, (struct field){ f.p + 5, f.len - 5 }, out);
	if (f.p[0] == '[')
		return parse_bracketed(c, f, out);
	return parse_mx_host(c, f, out);
}

/* parse_option - "tls=none|may|verify", the only option there is. */
static int parse_option(const struct ctx *c, struct field f, struct smtp_route *out)
{
	static const struct { const char *name; enum smtp_tls_policy tls; } policies[] = {
		{ "none", SMTP_TLS_NONE }, { "may", SMTP_TLS_MAY }, { "verify", SMTP_TLS_VERIFY },
	};

	if (f.len < 4 || strncmp(f.p, "tls=", 4) != 0)
		return fail(c, "unexpected \"%.*s\" (the only option is tls=none|may|verify)",
			    SHOW(f.len), f.p);
	for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++) {
		if (f.len - 4 == strlen(policies[i].name) &&
		    memcmp(f.p + 4, policies[i].name, f.len - 4) == 0) {
			out->tls = policies[i].tls;
			out->tls_given = true;
			return 0;
		}
	}
	return fail(c, "tls must be none, may or verify, not \"%.*s\"", SHOW(f.len - 4), f.p + 4);
}

/* smtp_route_parse - see deliver.h. */
int smtp_route_parse(const char *value, bool relayhost, struct smtp_route *out,
		     char *err, size_t errlen)
{
	const struct ctx c = { value ? value : "", relayhost, err, errlen };
	struct field f[MAX_FIELDS];
	size_t n = split(c.value, f, MAX_FIELDS), i = 0;
	size_t need = relayhost ? 1 : 2;

	memset(out, 0, sizeof(*out));
	out->tls = SMTP_TLS_MAY;
	if (n < need || n > need + 1)
		return fail(&c, relayhost ? "expected NEXTHOP [tls=none|may|verify]"
					  : "expected DOMAIN NEXTHOP [tls=none|may|verify]");
	if (!relayhost && parse_domain(&c, f[i++], out) < 0)
		return -1;
	if (parse_nexthop(&c, f[i++], out) < 0)
		return -1;
	if (i < n && parse_option(&c, f[i], out) < 0)
		return -1;
	if (out->path[0] && out->tls_given)
		return fail(&c, "tls= does not apply to a Unix socket");
	return 0;
}

/* smtp_route_lookup - see deliver.h. */
const struct smtp_route *smtp_route_lookup(const struct smtp_route *routes, size_t n,
					   const struct smtp_route *relayhost,
					   const char *domain)
{
	const struct smtp_route *best = NULL;
	size_t len = domain ? strlen(domain) : 0, best_len = 0, rlen;

	if (len > 0 && domain[len - 1] == '.')
		len--;
	for (size_t i = 0; i < n && len > 0; i++) {
		rlen = strlen(routes[i].domain);
		if (rlen == 0 || rlen > len || strncasecmp(domain + len - rlen, routes[i].domain, rlen))
			continue;
		if (rlen == len && !routes[i].subdomains)
			return &routes[i];	/* exact: nothing is more specific */
		/* A suffix counts only at a label boundary: "xcampus.test" is not under "campus.test". */
		if (!routes[i].subdomains || (rlen < len && domain[len - rlen - 1] != '.'))
			continue;
		if (!best || rlen > best_len) {
			best = &routes[i];
			best_len = rlen;
		}
	}
	if (best)
		return best;
	return relayhost && relayhost->host[0] ? relayhost : NULL;
}

/* deliver_config_route - see deliver.h. */
int deliver_config_route(const char *value, bool relayhost, char *err, size_t errlen)
{
	struct smtp_route r;

	return smtp_route_parse(value, relayhost, &r, err, errlen);
}
