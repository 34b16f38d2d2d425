/*
 * route.c - unit tests for deliver/route.c: a table of route and relayhost
 * values, good ones with every field of the result checked and bad ones
 * with the exact error text (LMTP next hops too: TCP and Unix socket,
 * never MX, never the relayhost); then lookup: exact domain over ".parent",
 * the longest parent, label boundaries, relayhost or NULL when nothing
 * matches, case and a trailing dot.
 */
#include <string.h>

#include "deliver/deliver.h"
#include "t/unit/tap.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* A value and what parsing it must give. */
struct parse_case {
	const char *value;
	bool relayhost;
	/* good: */
	const char *domain;
	bool subdomains;
	const char *host;
	int port;
	bool mx;
	enum smtp_tls_policy tls;
	bool tls_given;
	/* bad: the exact error (domain etc. unused) */
	const char *err;
	/* LMTP: */
	bool lmtp;
	const char *path;	/* NULL: "" */
};

#define GOOD(v, d, sub, h, p, mx, tls, given) { v, false, d, sub, h, p, mx, tls, given, NULL, false, NULL }
#define RELAY(v, h, p, mx, tls, given) { v, true, "", false, h, p, mx, tls, given, NULL, false, NULL }
#define LMTP(v, d, h, p, path, tls, given) \
	{ v, false, d, false, h, p, false, tls, given, NULL, true, path }
#define BAD(v, e) { v, false, NULL, false, NULL, 0, false, 0, false, e, false, NULL }
#define BAD_RELAY(v, e) { v, true, NULL, false, NULL, 0, false, 0, false, e, false, NULL }

static const struct parse_case parse_cases[] = {
	GOOD("campus.test [mailhub.campus.test]:25", "campus.test", false, "mailhub.campus.test",
	     25, false, SMTP_TLS_MAY, false),
	GOOD(".campus.test [10.1.2.3]:2525 tls=verify", "campus.test", true, "10.1.2.3", 2525,
	     false, SMTP_TLS_VERIFY, true),
	GOOD("Campus.TEST. [MailHub.Campus.Test.]", "campus.test", false, "mailhub.campus.test",
	     25, false, SMTP_TLS_MAY, false),
	GOOD("  campus.test\t relay.campus.test  ", "campus.test", false, "relay.campus.test", 25,
	     true, SMTP_TLS_MAY, false),
	GOOD("campus.test relay.campus.test:587 tls=none", "campus.test", false,
	     "relay.campus.test", 587, true, SMTP_TLS_NONE, true),
	GOOD("campus.test [2001:DB8::1]:2525 tls=may", "campus.test", false, "2001:db8::1", 2525,
	     false, SMTP_TLS_MAY, true),
	GOOD("campus.test [::1]", "campus.test", false, "::1", 25, false, SMTP_TLS_MAY, false),
	GOOD("campus.test [192.0.2.1]:65535", "campus.test", false, "192.0.2.1", 65535, false,
	     SMTP_TLS_MAY, false),
	GOOD("localhost [mailhub]", "localhost", false, "mailhub", 25, false, SMTP_TLS_MAY, false),
	/* U-labels in mtad.conf: kept, compared and looked up as A-labels */
	GOOD("m\xc3\xbcnchen.test m\xc3\xbcnchen.test:2525", "xn--mnchen-3ya.test", false,
	     "xn--mnchen-3ya.test", 2525, true, SMTP_TLS_MAY, false),
	GOOD(".B\xc3\xbc" "cher.test [mx.b\xc3\xbc" "cher.test]", "xn--bcher-kva.test", true,
	     "mx.xn--bcher-kva.test", 25, false, SMTP_TLS_MAY, false),
	BAD("b\xc3" "cher.test [mx.test]",
	    "bad route \"b\xc3" "cher.test [mx.test]\": \"b\xc3" "cher.test\" is not a domain name"),
	RELAY("[smarthost.example]:587", "smarthost.example", 587, false, SMTP_TLS_MAY, false),
	RELAY("smarthost.example tls=verify", "smarthost.example", 25, true, SMTP_TLS_VERIFY, true),
	RELAY("[192.0.2.7]", "192.0.2.7", 25, false, SMTP_TLS_MAY, false),

	LMTP("campus.test lmtp:[127.0.0.1]:24024", "campus.test", "127.0.0.1", 24024, NULL,
	     SMTP_TLS_MAY, false),
	LMTP("campus.test lmtp:[Mailstore.Campus.TEST]", "campus.test", "mailstore.campus.test",
	     24, NULL, SMTP_TLS_MAY, false),
	LMTP("campus.test lmtp:[::1]:2424 tls=verify", "campus.test", "::1", 2424, NULL,
	     SMTP_TLS_VERIFY, true),
	LMTP("campus.test lmtp:unix:/run/dovecot/lmtp", "campus.test", "", 0,
	     "/run/dovecot/lmtp", SMTP_TLS_MAY, false),

	BAD("", "bad route \"\": expected DOMAIN NEXTHOP [tls=none|may|verify]"),
	BAD("a.test lmtp:mailstore.test",
	    "bad route \"a.test lmtp:mailstore.test\": LMTP needs lmtp:[host], lmtp:[host]:port or "
	    "lmtp:unix:/path, not \"lmtp:mailstore.test\" (no MX lookup)"),
	BAD("a.test lmtp:", "bad route \"a.test lmtp:\": LMTP needs lmtp:[host], lmtp:[host]:port or "
	    "lmtp:unix:/path, not \"lmtp:\" (no MX lookup)"),
	BAD("a.test lmtp:[b.test]:0", "bad route \"a.test lmtp:[b.test]:0\": bad port \"0\" (1..65535)"),
	BAD("a.test lmtp:[b_c.test]",
	    "bad route \"a.test lmtp:[b_c.test]\": \"b_c.test\" is not a host name or address"),
	BAD("a.test lmtp:unix:run/lmtp",
	    "bad route \"a.test lmtp:unix:run/lmtp\": an LMTP socket path must be absolute, not \"run/lmtp\""),
	BAD("a.test lmtp:unix:", "bad route \"a.test lmtp:unix:\": an LMTP socket path must be absolute, not \"\""),
	BAD("a.test lmtp:unix:/run/lmtp tls=none",
	    "bad route \"a.test lmtp:unix:/run/lmtp tls=none\": tls= does not apply to a Unix socket"),
	BAD("a.test lmtp:unix:/run/\x01lmtp",
	    "bad route \"a.test lmtp:unix:/run/\x01lmtp\": the LMTP socket path has a control or non-ASCII byte"),
	BAD("a.test LMTP:[b.test]", "bad route \"a.test LMTP:[b.test]\": bad port \"[b.test]\" (1..65535)"),
	BAD_RELAY("lmtp:[b.test]:24",
		  "bad relayhost \"lmtp:[b.test]:24\": LMTP is for routes to mailbox servers, not for the relayhost"),
	BAD("campus.test", "bad route \"campus.test\": expected DOMAIN NEXTHOP [tls=none|may|verify]"),
	BAD("a.test [b.test] tls=may extra",
	    "bad route \"a.test [b.test] tls=may extra\": expected DOMAIN NEXTHOP [tls=none|may|verify]"),
	BAD("a.test [b.test] port=25",
	    "bad route \"a.test [b.test] port=25\": unexpected \"port=25\" (the only option is tls=none|may|verify)"),
	BAD("a.test [b.test] tls=yes",
	    "bad route \"a.test [b.test] tls=yes\": tls must be none, may or verify, not \"yes\""),
	BAD("a.test [b.test] tls=VERIFY",
	    "bad route \"a.test [b.test] tls=VERIFY\": tls must be none, may or verify, not \"VERIFY\""),
	BAD("a_b.test [b.test]", "bad route \"a_b.test [b.test]\": \"a_b.test\" is not a domain name"),
	BAD(". [b.test]", "bad route \". [b.test]\": \".\" is not a domain name"),
	BAD("..test [b.test]", "bad route \"..test [b.test]\": \"..test\" is not a domain name"),
	BAD("a.test.. [b.test]", "bad route \"a.test.. [b.test]\": \"a.test..\" is not a domain name"),
	BAD("192.0.2.1 [b.test]", "bad route \"192.0.2.1 [b.test]\": \"192.0.2.1\" is not a domain name"),
	BAD("[a.test] [b.test]", "bad route \"[a.test] [b.test]\": \"[a.test]\" is not a domain name"),
	BAD("a.test [b.test", "bad route \"a.test [b.test\": \"[b.test\" has no closing ]"),
	BAD("a.test []:25", "bad route \"a.test []:25\": \"[]:25\" names no host"),
	BAD("a.test [b.test]25", "bad route \"a.test [b.test]25\": expected :PORT after ] in \"[b.test]25\""),
	BAD("a.test [b.test]:", "bad route \"a.test [b.test]:\": bad port \"\" (1..65535)"),
	BAD("a.test [b.test]:0", "bad route \"a.test [b.test]:0\": bad port \"0\" (1..65535)"),
	BAD("a.test [b.test]:65536", "bad route \"a.test [b.test]:65536\": bad port \"65536\" (1..65535)"),
	BAD("a.test [b.test]:+25", "bad route \"a.test [b.test]:+25\": bad port \"+25\" (1..65535)"),
	BAD("a.test b.test:smtp", "bad route \"a.test b.test:smtp\": bad port \"smtp\" (1..65535)"),
	BAD("a.test [b_c.test]", "bad route \"a.test [b_c.test]\": \"b_c.test\" is not a host name or address"),
	BAD("a.test [1.2.3.4.5]", "bad route \"a.test [1.2.3.4.5]\": \"1.2.3.4.5\" is not a host name or address"),
	BAD("a.test [IPv6:2001:db8::1]:25",
	    "bad route \"a.test [IPv6:2001:db8::1]:25\": write IPv6 addresses without \"IPv6:\", as [2001:db8::1]"),
	BAD("a.test 192.0.2.1", "bad route \"a.test 192.0.2.1\": an address needs brackets: [192.0.2.1]"),
	BAD("a.test 192.0.2.1:25", "bad route \"a.test 192.0.2.1:25\": an address needs brackets: [192.0.2.1]"),
	BAD("a.test 2001:db8::1", "bad route \"a.test 2001:db8::1\": an address needs brackets: [2001:db8::1]"),
	BAD("a.test b..test", "bad route \"a.test b..test\": \"b..test\" is not a host name"),
	BAD("a.test -b.test:25", "bad route \"a.test -b.test:25\": \"-b.test\" is not a host name"),
	BAD_RELAY("", "bad relayhost \"\": expected NEXTHOP [tls=none|may|verify]"),
	BAD_RELAY("a.test [b.test]",
		  "bad relayhost \"a.test [b.test]\": unexpected \"[b.test]\" (the only option is tls=none|may|verify)"),
	BAD_RELAY("[b.test] tls=may tls=none",
		  "bad relayhost \"[b.test] tls=may tls=none\": expected NEXTHOP [tls=none|may|verify]"),
	BAD_RELAY("[b.test]:99999", "bad relayhost \"[b.test]:99999\": bad port \"99999\" (1..65535)"),
};

/* test_parse - every case of the table. */
static void test_parse(struct tap *t)
{
	struct smtp_route r;
	char err[256];

	for (size_t i = 0; i < N(parse_cases); i++) {
		const struct parse_case *c = &parse_cases[i];
		int rc;

		strcpy(err, "(none)");
		rc = smtp_route_parse(c->value, c->relayhost, &r, err, sizeof(err));
		if (c->err) {
			TAP_OK(t, rc == -1 && strcmp(err, c->err) == 0, "bad: %s -> %s", c->err, err);
			continue;
		}
		TAP_OK(t, rc == 0 && strcmp(r.domain, c->domain) == 0 &&
		       r.subdomains == c->subdomains && strcmp(r.host, c->host) == 0 &&
		       r.port == c->port && r.mx == c->mx && r.tls == c->tls &&
		       r.tls_given == c->tls_given && r.lmtp == c->lmtp &&
		       strcmp(r.path, c->path ? c->path : "") == 0,
		       "%s \"%s\": domain \"%s\"%s host \"%s\" port %d%s tls %d%s%s%s (%s)",
		       c->relayhost ? "relayhost" : "route", c->value, r.domain,
		       r.subdomains ? " +subdomains" : "", r.host, r.port, r.mx ? " MX" : "",
		       (int)r.tls, r.tls_given ? " given" : "", r.lmtp ? " LMTP " : "", r.path,
		       rc ? err : "ok");
	}
}

/* test_parse_edges - a long value, a small err buffer, the longest names. */
static void test_parse_edges(struct tap *t)
{
	struct smtp_route r;
	char err[256], small[16], value[600], label[64];
	int rc;

	memset(value, 'x', 400);
	value[400] = '\0';
	rc = smtp_route_parse(value, false, &r, err, sizeof(err));
	TAP_OK(t, rc == -1 && strlen(err) < sizeof(err) - 1 &&
	       strstr(err, "xxx...\": expected DOMAIN NEXTHOP") != NULL,
	       "a 400-character value is quoted cut, the reason still fits: %.40s...", err);
	rc = smtp_route_parse("a.test", false, &r, small, sizeof(small));
	TAP_OK(t, rc == -1 && strcmp(small, "bad route \"a.te") == 0, "a small err buffer is cut: %s",
	       small);
	TAP_OK(t, smtp_route_parse(NULL, true, &r, err, sizeof(err)) == -1, "NULL value: error");

	/* 253 characters: the longest name. */
	memset(label, 'a', 63);
	label[63] = '\0';
	snprintf(value, sizeof(value), "%s.%s.%s.%.61s [%s.%s.%s.%.61s]:25", label, label, label,
		 label, label, label, label, label);
	rc = smtp_route_parse(value, false, &r, err, sizeof(err));
	TAP_OK(t, rc == 0 && strlen(r.domain) == 253 && strlen(r.host) == 253,
	       "253-character domain and host (%s)", rc ? err : "ok");
	snprintf(value, sizeof(value), "%s.%s.%s.%.62s [b.test]", label, label, label, label);
	rc = smtp_route_parse(value, false, &r, err, sizeof(err));
	TAP_OK(t, rc == -1 && strstr(err, "is not a domain name") != NULL,
	       "254-character domain: refused");

	/* An LMTP socket path: 107 bytes fit sun_path with its NUL, 108 do not. */
	memset(label, 'p', 63);
	snprintf(value, sizeof(value), "a.test lmtp:unix:/%.63s%.43s", label, label);
	rc = smtp_route_parse(value, false, &r, err, sizeof(err));
	TAP_OK(t, rc == 0 && strlen(r.path) == 107, "a 107-byte LMTP socket path (%s)",
	       rc ? err : "ok");
	snprintf(value, sizeof(value), "a.test lmtp:unix:/%.63s%.44s", label, label);
	rc = smtp_route_parse(value, false, &r, err, sizeof(err));
	TAP_OK(t, rc == -1 && strstr(err, "socket path is longer than 107 bytes") != NULL,
	       "a 108-byte LMTP socket path: refused (%s)", err);
}

/* route - a route for lookups, parsed so the test uses real values. */
static struct smtp_route route(const char *value, bool relayhost)
{
	struct smtp_route r;
	char err[256];

	if (smtp_route_parse(value, relayhost, &r, err, sizeof(err)) != 0)
		printf("# %s\n", err);
	return r;
}

/* test_lookup - the most specific route wins, else relayhost, else NULL. */
static void test_lookup(struct tap *t)
{
	struct smtp_route routes[6], relay = route("[smarthost.test]:587", true), none;
	const struct smtp_route *got;
	static const struct { const char *domain; int want; } cases[] = {
		/* want: index into routes, -1 relayhost, -2 NULL (with relayhost NULL) */
		{ "campus.test", 1 },		/* exact beats .campus.test (listed first) */
		{ "CAMPUS.Test.", 1 },
		{ "mail.campus.test", 0 },
		{ "cs.campus.test", 2 },	/* ".cs.campus.test" covers cs.campus.test itself */
		{ "x.cs.campus.test", 2 },	/* longest parent */
		{ "X.CS.Campus.TEST.", 2 },
		{ "deep.x.cs.campus.test", 2 },
		{ "lab.campus.test", 3 },	/* exact beats .campus.test */
		{ "a.lab.campus.test", 0 },	/* "lab.campus.test" is exact only */
		{ "xcampus.test", -1 },		/* a suffix, not a parent */
		{ "other.test", 4 },
		{ "other.test.", 4 },
		{ "sub.other.test", 4 },
		{ "example.org", -1 },
		{ "test", -1 },
		{ "", -1 },
		{ ".", -1 },
	};

	routes[0] = route(".campus.test [hub.campus.test]", false);
	routes[1] = route("campus.test [10.1.2.3]:2525", false);
	routes[2] = route(".cs.campus.test [cs-hub.campus.test]", false);
	routes[3] = route("lab.campus.test lab-relay.campus.test", false);
	routes[4] = route(".other.test [first.other.test]", false);
	routes[5] = route(".other.test [second.other.test]", false);
	/* routes[4] and [5] are equal: the first wins for other.test and below. */
	for (size_t i = 0; i < N(cases); i++) {
		const struct smtp_route *want = cases[i].want >= 0 ? &routes[cases[i].want] : &relay;

		got = smtp_route_lookup(routes, N(routes), &relay, cases[i].domain);
		TAP_OK(t, got == want, "lookup \"%s\": %s", cases[i].domain,
		       got ? got->host : "NULL");
	}
	/* routes[5] is a later equal of routes[4]: sub.other.test goes to the first. */
	TAP_OK(t, smtp_route_lookup(routes, N(routes), NULL, "sub.other.test") == &routes[4],
	       "of two equal routes the first wins");
	TAP_OK(t, smtp_route_lookup(routes, N(routes), NULL, "example.org") == NULL,
	       "no route, no relayhost: NULL (MX lookup of the domain)");
	TAP_OK(t, smtp_route_lookup(NULL, 0, &relay, "campus.test") == &relay,
	       "no routes at all: relayhost");
	memset(&none, 0, sizeof(none));
	TAP_OK(t, smtp_route_lookup(routes, N(routes), &none, "example.org") == NULL,
	       "a relayhost with host \"\" counts as not set");
	TAP_OK(t, smtp_route_lookup(routes, N(routes), NULL, NULL) == NULL, "NULL domain: NULL");
}

int main(void)
{
	struct tap t = { 0 };

	test_parse(&t);
	test_parse_edges(&t);
	test_lookup(&t);
	return tap_done(&t);
}
