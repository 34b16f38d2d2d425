/*
 * policy.c - unit tests for policy/: the HELO rules with the seed
 * thread's own names (mail.msu.edu, sys28 and sys19, Outlook's
 * "benderclmsuedu", Eudora's "nibbler.sys19.mail.msu.edu"), the whole
 * rule x mode x override x authenticated x trusted matrix, DNS states,
 * relay control and its old tricks, and CIDR parsing and matching.
 * Every refusal is checked against the exact reply text.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "policy/policy.h"
#include "t/unit/tap.h"

#define NMODES 3

/* ---- the replies, as the issue and the seed spell them ---- */

struct reply {
	int code;
	const char *enhanced, *text;
};

static const struct reply replies[POLICY_NRULES] = {
	[POLICY_NO_HELO] = { 503, "5.5.1", "Error: send HELO/EHLO first" },
	[POLICY_HELO_SYNTAX] = { 501, "5.5.4", "Syntax: HELO/EHLO hostname" },
	[POLICY_OWN_NAME] = { 550, "5.7.1", "Invalid HELO. HELO/EHLO with my domain name." },
	[POLICY_OWN_ADDRESS] = { 550, "5.7.1", "Invalid HELO. HELO/EHLO with my address." },
	[POLICY_LOCALHOST] = { 550, "5.7.1", "Invalid HELO. HELO/EHLO as localhost." },
	[POLICY_NON_FQDN] = { 550, "5.7.1",
			      "Invalid HELO. HELO/EHLO needs a fully qualified host name." },
	[POLICY_UNDER_OWN_NAME] = { 550, "5.7.1",
				    "Invalid HELO. HELO/EHLO with a name under my domain name." },
	[POLICY_BARE_IP] = { 550, "5.7.1",
			     "Invalid HELO. HELO/EHLO with an IP address needs brackets." },
	[POLICY_LITERAL_MISMATCH] = { 550, "5.7.1",
				      "Invalid HELO. HELO/EHLO address literal is not your address." },
	[POLICY_UNRESOLVABLE] = { 550, "5.7.1", "Invalid HELO. HELO/EHLO name does not resolve." },
	[POLICY_NO_RDNS] = { 450, "4.7.1", "Client host rejected: cannot find your reverse hostname" },
	[POLICY_RELAY] = { 554, "5.7.1", "Relay access denied" },
};

static const struct reply unresolvable_later = {
	450, "4.7.1", "Invalid HELO. HELO/EHLO name cannot be checked now, try again later."
};

/* ---- the campus: mail.msu.edu in March 2005 ---- */

static const char *const local_domains[] = { "msu.edu", "mail.msu.edu" };
/* the last two: an IDN written as A-label and one written as U-label (SMTPUTF8) */
static const char *const relay_domains[] = { "physics.msu.edu", "relay.test.",
					     "xn--bcher-kva.test", "m\xc3\xbcnchen.test" };
static struct mtad_addr own_addrs[2];	/* 35.8.1.28, 2001:db8::28 */

#define SYS28 "sys28.mail.msu.edu"
#define SYS19 "sys19.mail.msu.edu"
#define BENDER "35.8.1.192"	/* bender.cl.msu.edu in the seed's transcript */

/* settings - the campus relay named hostname, every rule as the mode says. */
static struct policy_settings settings(const char *hostname, enum policy_mode mode)
{
	struct policy_settings s;

	memset(&s, 0, sizeof(s));
	s.mode = mode;
	memset(s.rule_override, -1, sizeof(s.rule_override));
	s.hostname = hostname;
	s.local_domains = local_domains;
	s.nlocal_domains = 2;
	s.relay_domains = relay_domains;
	s.nrelay_domains = 4;
	s.own_addrs = own_addrs;
	s.nown_addrs = 2;
	return s;
}

/* client - a session with nothing known about DNS. */
static struct policy_client client(const char *helo, const char *ip)
{
	struct policy_client c = { helo, ip, POLICY_DNS_UNKNOWN, POLICY_DNS_UNKNOWN, false, false };

	return c;
}

/* check - one verdict against the rule wanted and, for a refusal, its exact reply. */
static void check(struct tap *t, struct policy_verdict v, enum policy_rule want,
		  bool later, const char *label)
{
	const struct reply *r = later ? &unresolvable_later : &replies[want];
	bool ok = v.rule == want;

	if (ok && want != POLICY_ACCEPT)
		ok = v.code == r->code && v.enhanced != NULL && v.text != NULL &&
		     strcmp(v.enhanced, r->enhanced) == 0 && strcmp(v.text, r->text) == 0;
	TAP_OK(t, ok, "%s -> %s", label, policy_rule_name(want));
	if (!ok)
		printf("#   got %s: %d %s %s\n", policy_rule_name(v.rule), v.code,
		       v.enhanced ? v.enhanced : "(null)", v.text ? v.text : "(null)");
}

/* ---- the seed's names, in every mode and for every kind of client ---- */

#define ACC POLICY_ACCEPT
#define NOHELO POLICY_NO_HELO
#define SYNTAX POLICY_HELO_SYNTAX
#define NAME POLICY_OWN_NAME
#define ADDR POLICY_OWN_ADDRESS
#define LOCAL POLICY_LOCALHOST
#define FQDN POLICY_NON_FQDN
#define UNDER POLICY_UNDER_OWN_NAME
#define BARE POLICY_BARE_IP
#define LIT POLICY_LITERAL_MISMATCH

struct helo_case {
	const char *hostname, *helo, *ip;
	enum policy_rule want[NMODES];	/* off, relaxed, strict */
};

static const struct helo_case helo_cases[] = {
	/* The seed: "ehlo sys28.mail.msu.edu" -> 550 Invalid HELO. HELO/EHLO with my domain name. */
	{ SYS28, SYS28, BENDER, { ACC, NAME, NAME } },
	{ SYS28, "SYS28.MAIL.MSU.EDU.", BENDER, { ACC, NAME, NAME } },
	{ SYS28, "msu.edu", BENDER, { ACC, NAME, NAME } },
	{ SYS28, "Mail.Msu.Edu.", BENDER, { ACC, NAME, NAME } },
	{ SYS19, SYS19, BENDER, { ACC, NAME, NAME } },
	/* Outlook and Pegasus strip the dots. */
	{ SYS28, "benderclmsuedu", BENDER, { ACC, ACC, FQDN } },
	{ SYS28, "bender.", BENDER, { ACC, ACC, FQDN } },
	/* Eudora: machinename.server.they.connect.to */
	{ SYS19, "nibbler.sys19.mail.msu.edu", BENDER, { ACC, ACC, UNDER } },
	{ SYS19, "NIBBLER.SYS19.MAIL.MSU.EDU.", BENDER, { ACC, ACC, UNDER } },
	{ SYS28, "nibbler.sys19.mail.msu.edu", BENDER, { ACC, ACC, ACC } },
	{ SYS28, "xsys28.mail.msu.edu", BENDER, { ACC, ACC, ACC } },
	{ SYS28, "sys28.mail.msu.edu.example", BENDER, { ACC, ACC, ACC } },
	{ SYS28, "cl.msu.edu", BENDER, { ACC, ACC, ACC } },
	/* localhost, by name and address, bracketed or bare */
	{ SYS28, "localhost", BENDER, { ACC, LOCAL, LOCAL } },
	{ SYS28, "LocalHost.", BENDER, { ACC, LOCAL, LOCAL } },
	{ SYS28, "localhost.localdomain", BENDER, { ACC, LOCAL, LOCAL } },
	{ SYS28, "LOCALHOST.LOCALDOMAIN.", BENDER, { ACC, LOCAL, LOCAL } },
	{ SYS28, "[127.0.0.1]", BENDER, { ACC, LOCAL, LOCAL } },
	{ SYS28, "[127.1.2.3]", BENDER, { ACC, LOCAL, LOCAL } },
	{ SYS28, "[IPv6:::1]", BENDER, { ACC, LOCAL, LOCAL } },
	{ SYS28, "[ipv6:0:0:0:0:0:0:0:1]", BENDER, { ACC, LOCAL, LOCAL } },
	{ SYS28, "[::1]", BENDER, { ACC, LOCAL, LOCAL } },
	{ SYS28, "[IPv6:::ffff:127.0.0.1]", BENDER, { ACC, LOCAL, LOCAL } },
	{ SYS28, "127.0.0.1", BENDER, { ACC, LOCAL, LOCAL } },
	{ SYS28, "::1", BENDER, { ACC, LOCAL, LOCAL } },
	{ SYS28, "localhost.msu.edu", BENDER, { ACC, ACC, ACC } },
	{ SYS28, "[128.0.0.1]", "128.0.0.1", { ACC, ACC, ACC } },
	/* our own addresses */
	{ SYS28, "[35.8.1.28]", BENDER, { ACC, ADDR, ADDR } },
	{ SYS28, "35.8.1.28", BENDER, { ACC, ADDR, ADDR } },
	{ SYS28, "[IPv6:2001:db8::28]", BENDER, { ACC, ADDR, ADDR } },
	{ SYS28, "[IPv6:2001:DB8:0::28]", "2001:db8::28", { ACC, ADDR, ADDR } },
	{ SYS28, "2001:db8::28", BENDER, { ACC, ADDR, ADDR } },
	{ SYS28, "[IPv6:::ffff:35.8.1.28]", BENDER, { ACC, ADDR, ADDR } },
	{ SYS28, "[35.8.1.29]", "35.8.1.29", { ACC, ACC, ACC } },
	/* bare addresses need brackets (strict) */
	{ SYS28, BENDER, BENDER, { ACC, ACC, BARE } },
	{ SYS28, "35.8.1.192.", BENDER, { ACC, ACC, BARE } },
	{ SYS28, "2001:db8::5", "2001:db8::5", { ACC, ACC, BARE } },
	/* literals must be the client (strict) */
	{ SYS28, "[35.8.1.193]", BENDER, { ACC, ACC, LIT } },
	{ SYS28, "[35.8.1.192]", BENDER, { ACC, ACC, ACC } },
	{ SYS28, "[35.8.1.192]", "::ffff:35.8.1.192", { ACC, ACC, ACC } },
	{ SYS28, "[IPv6:::ffff:35.8.1.192]", BENDER, { ACC, ACC, ACC } },
	{ SYS28, "[IPv6:2001:db8::5]", "2001:db8::5", { ACC, ACC, ACC } },
	{ SYS28, "[IPv6:2001:db8::5]", "2001:db8::6", { ACC, ACC, LIT } },
	{ SYS28, "[35.8.1.192]", "2001:db8::5", { ACC, ACC, LIT } },
	{ SYS28, "[35.8.1.192]", "not an address", { ACC, ACC, LIT } },
	{ SYS28, "[35.8.1.192]", NULL, { ACC, ACC, LIT } },
	{ SYS28, "[IPv7:whatever]", BENDER, { ACC, ACC, LIT } },
	{ SYS28, "[1.2.3]", BENDER, { ACC, ACC, LIT } },
	{ SYS28, "[10.0.0.0/8]", BENDER, { ACC, ACC, LIT } },
	/* the rules' order: the first that refuses names the reply */
	{ SYS28, "[35.8.1.28]", "35.8.1.99", { ACC, ADDR, ADDR } },
	{ SYS28, "[127.0.0.1]", "35.8.1.99", { ACC, LOCAL, LOCAL } },
	/* names that pass everything */
	{ SYS28, "bender.cl.msu.edu", BENDER, { ACC, ACC, ACC } },
	{ SYS28, "BENDER.CL.MSU.EDU.", BENDER, { ACC, ACC, ACC } },
	{ SYS28, "-odd_name.example", BENDER, { ACC, ACC, ACC } },
	{ SYS28, "1.2.3.4.5", BENDER, { ACC, ACC, ACC } },
	{ NULL, SYS28, BENDER, { ACC, ACC, ACC } },
	/* protocol errors: in every mode, for every client */
	{ SYS28, NULL, BENDER, { NOHELO, NOHELO, NOHELO } },
	{ SYS28, "", BENDER, { SYNTAX, SYNTAX, SYNTAX } },
	{ SYS28, ".", BENDER, { SYNTAX, SYNTAX, SYNTAX } },
	{ SYS28, "bad name", BENDER, { SYNTAX, SYNTAX, SYNTAX } },
	{ SYS28, "a..b", BENDER, { SYNTAX, SYNTAX, SYNTAX } },
	{ SYS28, ".a", BENDER, { SYNTAX, SYNTAX, SYNTAX } },
	{ SYS28, "a.b..", BENDER, { SYNTAX, SYNTAX, SYNTAX } },
	{ SYS28, "a/b", BENDER, { SYNTAX, SYNTAX, SYNTAX } },
	{ SYS28, "10.0.0.0/8", BENDER, { SYNTAX, SYNTAX, SYNTAX } },
	{ SYS28, "user@host.example", BENDER, { SYNTAX, SYNTAX, SYNTAX } },
	{ SYS28, "host\tname", BENDER, { SYNTAX, SYNTAX, SYNTAX } },
	{ SYS28, "h\xc3\xa9.example", BENDER, { SYNTAX, SYNTAX, SYNTAX } },
	{ SYS28, "::1:", BENDER, { SYNTAX, SYNTAX, SYNTAX } },
	{ SYS28, "[1.2.3.4", BENDER, { SYNTAX, SYNTAX, SYNTAX } },
	{ SYS28, "[]", BENDER, { SYNTAX, SYNTAX, SYNTAX } },
	{ SYS28, "[1.2.3.4].", BENDER, { SYNTAX, SYNTAX, SYNTAX } },
	{ SYS28, "[1.2.3.4]x", BENDER, { SYNTAX, SYNTAX, SYNTAX } },
	{ SYS28, "[1.2 .3.4]", BENDER, { SYNTAX, SYNTAX, SYNTAX } },
	{ SYS28, "[a[b]", BENDER, { SYNTAX, SYNTAX, SYNTAX } },
	{ SYS28, "[a\\b]", BENDER, { SYNTAX, SYNTAX, SYNTAX } },
};

static const char *const mode_label[NMODES] = { "off", "relaxed", "strict" };

/* always_on - the protocol errors no mode, override or login turns off. */
static bool always_on(enum policy_rule r)
{
	return r == POLICY_NO_HELO || r == POLICY_HELO_SYNTAX;
}

/* test_helo_cases - each row in each mode, unauthenticated, authenticated, trusted, both. */
static void test_helo_cases(struct tap *t)
{
	size_t i;
	int mode, flags;
	char label[512];

	for (i = 0; i < sizeof(helo_cases) / sizeof(helo_cases[0]); i++) {
		const struct helo_case *c = &helo_cases[i];

		for (mode = 0; mode < NMODES; mode++) {
			struct policy_settings s = settings(c->hostname, (enum policy_mode)mode);

			for (flags = 0; flags < 4; flags++) {
				struct policy_client cl = client(c->helo, c->ip);
				enum policy_rule want = c->want[mode];

				cl.authenticated = flags & 1;
				cl.trusted = flags & 2;
				if (flags != 0 && !always_on(want))
					want = POLICY_ACCEPT;
				snprintf(label, sizeof(label), "%s: HELO %s from %s, %s%s%s",
					 c->hostname ? c->hostname : "(no hostname)",
					 c->helo ? c->helo : "(none)", c->ip ? c->ip : "(null)",
					 mode_label[mode], cl.authenticated ? ", authenticated" : "",
					 cl.trusted ? ", trusted" : "");
				check(t, policy_helo_verdict(&s, &cl), want, false, label);
			}
		}
	}
}

/* ---- the matrix: every rule x mode x override x authenticated x trusted ---- */

/* The issue's default modes, written out again here rather than read from the code. */
static const bool default_on[POLICY_NRULES][NMODES] = {
	[POLICY_NO_HELO] = { true, true, true },
	[POLICY_HELO_SYNTAX] = { true, true, true },
	[POLICY_OWN_NAME] = { false, true, true },
	[POLICY_OWN_ADDRESS] = { false, true, true },
	[POLICY_LOCALHOST] = { false, true, true },
	[POLICY_NON_FQDN] = { false, false, true },
	[POLICY_UNDER_OWN_NAME] = { false, false, true },
	[POLICY_BARE_IP] = { false, false, true },
	[POLICY_LITERAL_MISMATCH] = { false, false, true },
	[POLICY_UNRESOLVABLE] = { false, false, true },
	[POLICY_NO_RDNS] = { false, false, false },
};

/* One HELO per rule that trips that rule and no other, whatever the rest are set to. */
struct example {
	enum policy_rule rule;
	const char *hostname, *helo, *ip;
	enum policy_dns rdns, helo_dns;
};

static const struct example examples[] = {
	{ POLICY_NO_HELO, SYS28, NULL, BENDER, POLICY_DNS_FOUND, POLICY_DNS_FOUND },
	{ POLICY_HELO_SYNTAX, SYS28, "bad name", BENDER, POLICY_DNS_FOUND, POLICY_DNS_FOUND },
	{ POLICY_OWN_NAME, SYS28, SYS28, BENDER, POLICY_DNS_FOUND, POLICY_DNS_FOUND },
	{ POLICY_OWN_ADDRESS, SYS28, "[35.8.1.28]", "35.8.1.28", POLICY_DNS_FOUND, POLICY_DNS_UNKNOWN },
	{ POLICY_LOCALHOST, SYS28, "localhost.localdomain", BENDER, POLICY_DNS_FOUND, POLICY_DNS_FOUND },
	{ POLICY_NON_FQDN, SYS28, "benderclmsuedu", BENDER, POLICY_DNS_FOUND, POLICY_DNS_FOUND },
	{ POLICY_UNDER_OWN_NAME, SYS19, "nibbler.sys19.mail.msu.edu", BENDER,
	  POLICY_DNS_FOUND, POLICY_DNS_FOUND },
	{ POLICY_BARE_IP, SYS28, BENDER, BENDER, POLICY_DNS_FOUND, POLICY_DNS_UNKNOWN },
	{ POLICY_LITERAL_MISMATCH, SYS28, "[35.8.1.193]", BENDER, POLICY_DNS_FOUND, POLICY_DNS_UNKNOWN },
	{ POLICY_UNRESOLVABLE, SYS28, "bender.cl.msu.edu", BENDER, POLICY_DNS_FOUND, POLICY_DNS_NOTFOUND },
	{ POLICY_NO_RDNS, SYS28, "bender.cl.msu.edu", BENDER, POLICY_DNS_NOTFOUND, POLICY_DNS_FOUND },
};

/* want_enabled - the rule's state from the table above and an override (-1, 0, 1). */
static bool want_enabled(enum policy_rule r, int mode, int override)
{
	if (always_on(r) || override < 0)
		return default_on[r][mode];
	return override == 1;
}

/* test_matrix_case - one example in one mode with one override, for the four kinds of client. */
static void test_matrix_case(struct tap *t, const struct example *e, int mode, int override)
{
	struct policy_settings s = settings(e->hostname, (enum policy_mode)mode);
	bool on = want_enabled(e->rule, mode, override);
	char label[512];
	int flags;

	s.rule_override[e->rule] = (int8_t)override;
	snprintf(label, sizeof(label), "policy_rule_enabled %s, %s, override %d",
		 policy_rule_name(e->rule), mode_label[mode], override);
	TAP_OK(t, policy_rule_enabled(&s, e->rule) == on, "%s is %s", label, on ? "on" : "off");
	for (flags = 0; flags < 4; flags++) {
		struct policy_client cl = client(e->helo, e->ip);
		enum policy_rule want = on ? e->rule : POLICY_ACCEPT;

		cl.rdns = e->rdns;
		cl.helo_dns = e->helo_dns;
		cl.authenticated = flags & 1;
		cl.trusted = flags & 2;
		if (flags != 0 && !always_on(e->rule))
			want = POLICY_ACCEPT;
		snprintf(label, sizeof(label), "matrix %s: HELO %s, %s, override %d%s%s",
			 policy_rule_name(e->rule), e->helo ? e->helo : "(none)",
			 mode_label[mode], override, cl.authenticated ? ", authenticated" : "",
			 cl.trusted ? ", trusted" : "");
		check(t, policy_helo_verdict(&s, &cl), want, false, label);
	}
}

/* test_matrix - every example x {off, relaxed, strict} x override {-1, 0, 1}. */
static void test_matrix(struct tap *t)
{
	size_t i;
	int mode, override;

	for (i = 0; i < sizeof(examples) / sizeof(examples[0]); i++)
		for (mode = 0; mode < NMODES; mode++)
			for (override = -1; override <= 1; override++)
				test_matrix_case(t, &examples[i], mode, override);
}

/* ---- overrides spelled out, and the DNS states ---- */

struct dns_case {
	enum policy_mode mode;
	enum policy_rule rule;	/* forced: */
	int override;		/* -1, 0, 1 */
	const char *hostname, *helo;
	enum policy_dns helo_dns, rdns;
	enum policy_rule want;
	bool later;		/* the 450 "try again later" reply */
};

static const struct dns_case dns_cases[] = {
	/* overrides: the admin's "Can we turn these EHLO rules off?" either way */
	{ POLICY_MODE_RELAXED, FQDN, 1, SYS28, "benderclmsuedu", 0, 0, FQDN, false },
	{ POLICY_MODE_STRICT, FQDN, 0, SYS28, "benderclmsuedu", 0, 0, ACC, false },
	{ POLICY_MODE_STRICT, NAME, 0, SYS28, SYS28, 0, 0, ACC, false },
	{ POLICY_MODE_STRICT, NAME, 0, SYS28, "msu.edu", 0, 0, ACC, false },
	{ POLICY_MODE_OFF, LOCAL, 1, SYS28, "localhost", 0, 0, LOCAL, false },
	{ POLICY_MODE_RELAXED, UNDER, 1, SYS19, "nibbler.sys19.mail.msu.edu", 0, 0, UNDER, false },
	{ POLICY_MODE_STRICT, UNDER, 0, SYS19, "nibbler.sys19.mail.msu.edu", 0, 0, ACC, false },
	{ POLICY_MODE_STRICT, FQDN, 5, SYS28, "benderclmsuedu", 0, 0, FQDN, false },
	{ POLICY_MODE_RELAXED, FQDN, 5, SYS28, "benderclmsuedu", 0, 0, ACC, false },
	/* the two protocol errors ignore overrides */
	{ POLICY_MODE_STRICT, NOHELO, 0, SYS28, NULL, 0, 0, NOHELO, false },
	{ POLICY_MODE_STRICT, SYNTAX, 0, SYS28, "bad name", 0, 0, SYNTAX, false },
	{ POLICY_MODE_OFF, SYNTAX, 0, SYS28, "", 0, 0, SYNTAX, false },
	/* unresolvable: strict, names only, UNKNOWN is no lookup */
	{ POLICY_MODE_STRICT, ACC, -1, SYS28, "bender.cl.msu.edu", POLICY_DNS_UNKNOWN, 0, ACC, false },
	{ POLICY_MODE_STRICT, ACC, -1, SYS28, "bender.cl.msu.edu", POLICY_DNS_FOUND, 0, ACC, false },
	{ POLICY_MODE_STRICT, ACC, -1, SYS28, "bender.cl.msu.edu", POLICY_DNS_NOTFOUND, 0,
	  POLICY_UNRESOLVABLE, false },
	{ POLICY_MODE_STRICT, ACC, -1, SYS28, "bender.cl.msu.edu", POLICY_DNS_TEMPFAIL, 0,
	  POLICY_UNRESOLVABLE, true },
	{ POLICY_MODE_RELAXED, ACC, -1, SYS28, "bender.cl.msu.edu", POLICY_DNS_NOTFOUND, 0, ACC, false },
	{ POLICY_MODE_RELAXED, ACC, -1, SYS28, "bender.cl.msu.edu", POLICY_DNS_TEMPFAIL, 0, ACC, false },
	{ POLICY_MODE_OFF, ACC, -1, SYS28, "bender.cl.msu.edu", POLICY_DNS_NOTFOUND, 0, ACC, false },
	{ POLICY_MODE_RELAXED, POLICY_UNRESOLVABLE, 1, SYS28, "bender.cl.msu.edu",
	  POLICY_DNS_TEMPFAIL, 0, POLICY_UNRESOLVABLE, true },
	{ POLICY_MODE_STRICT, ACC, -1, SYS28, "[35.8.1.192]", POLICY_DNS_NOTFOUND, 0, ACC, false },
	{ POLICY_MODE_STRICT, ACC, -1, SYS28, "benderclmsuedu", POLICY_DNS_NOTFOUND, 0, FQDN, false },
	/* no-rdns: off in every mode unless switched on; UNKNOWN accepts */
	{ POLICY_MODE_STRICT, ACC, -1, SYS28, "bender.cl.msu.edu", 0, POLICY_DNS_NOTFOUND, ACC, false },
	{ POLICY_MODE_STRICT, ACC, -1, SYS28, "bender.cl.msu.edu", 0, POLICY_DNS_TEMPFAIL, ACC, false },
	{ POLICY_MODE_RELAXED, POLICY_NO_RDNS, 1, SYS28, "bender.cl.msu.edu", 0, POLICY_DNS_UNKNOWN,
	  ACC, false },
	{ POLICY_MODE_RELAXED, POLICY_NO_RDNS, 1, SYS28, "bender.cl.msu.edu", 0, POLICY_DNS_FOUND,
	  ACC, false },
	{ POLICY_MODE_RELAXED, POLICY_NO_RDNS, 1, SYS28, "bender.cl.msu.edu", 0, POLICY_DNS_NOTFOUND,
	  POLICY_NO_RDNS, false },
	{ POLICY_MODE_RELAXED, POLICY_NO_RDNS, 1, SYS28, "bender.cl.msu.edu", 0, POLICY_DNS_TEMPFAIL,
	  POLICY_NO_RDNS, false },
	{ POLICY_MODE_OFF, POLICY_NO_RDNS, 1, SYS28, "[35.8.1.192]", 0, POLICY_DNS_NOTFOUND,
	  POLICY_NO_RDNS, false },
	/* both DNS rules: unresolvable comes first */
	{ POLICY_MODE_STRICT, POLICY_NO_RDNS, 1, SYS28, "bender.cl.msu.edu", POLICY_DNS_NOTFOUND,
	  POLICY_DNS_NOTFOUND, POLICY_UNRESOLVABLE, false },
	{ POLICY_MODE_STRICT, POLICY_NO_RDNS, 1, SYS28, "bender.cl.msu.edu", POLICY_DNS_FOUND,
	  POLICY_DNS_TEMPFAIL, POLICY_NO_RDNS, false },
};

/* test_dns_cases - overrides and DNS states, unauthenticated; then each one authenticated. */
static void test_dns_cases(struct tap *t)
{
	size_t i;
	char label[512];

	for (i = 0; i < sizeof(dns_cases) / sizeof(dns_cases[0]); i++) {
		const struct dns_case *c = &dns_cases[i];
		struct policy_settings s = settings(c->hostname, c->mode);
		struct policy_client cl = client(c->helo, BENDER);
		enum policy_rule want = c->want;

		if (c->rule != POLICY_ACCEPT)
			s.rule_override[c->rule] = (int8_t)c->override;
		cl.helo_dns = c->helo_dns;
		cl.rdns = c->rdns;
		snprintf(label, sizeof(label), "HELO %s, %s, %s=%d, helo_dns %d, rdns %d",
			 c->helo ? c->helo : "(none)", policy_mode_name(c->mode),
			 policy_rule_name(c->rule), c->override, c->helo_dns, c->rdns);
		check(t, policy_helo_verdict(&s, &cl), want, c->later, label);
		cl.authenticated = true;
		if (!always_on(want))
			want = POLICY_ACCEPT;
		snprintf(label + strlen(label), sizeof(label) - strlen(label), ", authenticated");
		check(t, policy_helo_verdict(&s, &cl), want, c->later, label);
	}
}

/* test_helo_bounds - the longest names, and no read past 256 bytes of an unterminated one. */
static void test_helo_bounds(struct tap *t)
{
	struct policy_settings s = settings(SYS28, POLICY_MODE_STRICT);
	char name[256], unterminated[256];
	struct policy_client cl = client(name, BENDER);
	size_t i;

	/* 255 bytes: four labels of 63 and dots. */
	for (i = 0; i < 255; i++)
		name[i] = (i + 1) % 64 == 0 ? '.' : 'a';
	name[255] = '\0';
	check(t, policy_helo_verdict(&s, &cl), POLICY_ACCEPT, false, "255-byte HELO");
	name[63] = 'a';
	check(t, policy_helo_verdict(&s, &cl), POLICY_HELO_SYNTAX, false, "HELO with a 64-byte label");
	memset(unterminated, 'a', sizeof(unterminated));
	unterminated[100] = '.';
	cl.helo = unterminated;
	check(t, policy_helo_verdict(&s, &cl), POLICY_HELO_SYNTAX, false,
	      "256 bytes without a NUL: too long, and not read past");
	check(t, policy_helo_verdict(&s, NULL), POLICY_NO_HELO, false, "no client at all");
	cl.helo = "bender.cl.msu.edu";
	check(t, policy_helo_verdict(NULL, &cl), POLICY_ACCEPT, false, "no settings: nothing to enforce");
}

/* ---- relay control ---- */

struct relay_case {
	const char *rcpt;
	bool had_route;
	enum policy_rule want;	/* for a client neither authenticated nor trusted */
};

#define RELAY POLICY_RELAY

static const struct relay_case relay_cases[] = {
	/* local and relay domains, any case, trailing dots */
	{ "user@msu.edu", false, ACC },
	{ "user@MSU.EDU", false, ACC },
	{ "user@msu.edu.", false, ACC },
	{ "user@mail.msu.edu", false, ACC },
	{ "user@sys28.mail.msu.edu", false, ACC },
	{ "user@Sys28.Mail.Msu.Edu.", false, ACC },
	{ "user@physics.msu.edu", false, ACC },
	{ "user@relay.test", false, ACC },
	{ "user@relay.test.", false, ACC },
	{ "\"john smith\"@msu.edu", false, ACC },
	{ "\"quoted\\\"x\"@msu.edu", false, ACC },
	/* foreign domains, near misses included */
	{ "user@gmail.example", false, RELAY },
	{ "user@cl.msu.edu", false, RELAY },
	{ "user@msu.edu.example", false, RELAY },
	{ "user@xmsu.edu", false, RELAY },
	{ "user@msu.edu..", false, RELAY },
	/* IDN (SMTPUTF8): compared as A-labels; a look-alike is foreign */
	{ "user@b\xc3\xbc" "cher.test", false, ACC },
	{ "user@B\xc3\xbc" "CHER.TEST", false, ACC },
	{ "user@xn--bcher-kva.test", false, ACC },
	{ "user@xn--mnchen-3ya.test", false, ACC },
	{ "user@m\xc3\xbcnchen.test", false, ACC },
	{ "jos\xc3\xa9@msu.edu", false, ACC },
	{ "user@ms\xd1\x83.edu", false, RELAY },		/* Cyrillic u */
	{ "user@m\xd1\x95u.edu", false, RELAY },		/* Cyrillic dze for s */
	{ "user@\xef\xbd\x8dsu.edu", false, RELAY },	/* fullwidth m: no NFKC mapping */
	{ "user@b\xc3\xbc" "cher.test\xc3", false, RELAY },	/* not UTF-8 */
	/* postmaster needs no domain (RFC 5321 §4.5.1) */
	{ "postmaster", false, ACC },
	{ "Postmaster", false, ACC },
	{ "POSTMASTER", false, ACC },
	{ "postmaster@msu.edu", false, ACC },
	{ "postmaster@gmail.example", false, RELAY },
	{ "postmasters", false, RELAY },
	{ "postmaste", false, RELAY },
	{ "postmaster.", false, RELAY },
	/* the open-relay tricks, refused even for a local domain */
	{ "user%gmail.example@msu.edu", false, RELAY },
	{ "gmail.example!user@msu.edu", false, RELAY },
	{ "\"user%gmail.example\"@msu.edu", false, RELAY },
	{ "\"gmail.example!user\"@msu.edu", false, RELAY },
	{ "\"a@b\"@msu.edu", false, RELAY },
	{ "\"user@gmail.example\"@msu.edu", false, RELAY },
	{ "\"a\\\"@gmail.example\"@msu.edu", false, RELAY },
	{ "a@gmail.example@msu.edu", false, RELAY },
	{ "user@msu.edu", true, RELAY },
	{ "user@[35.8.1.28]", false, RELAY },
	{ "user@[IPv6:2001:db8::28]", false, RELAY },
	/* no domain at all */
	{ "user", false, RELAY },
	{ "user@", false, RELAY },
	{ "user@.", false, RELAY },
	{ "\"user@msu.edu", false, RELAY },
	{ "", false, RELAY },
};

/* test_relay - each row for the four kinds of client. */
static void test_relay(struct tap *t)
{
	struct policy_settings s = settings(SYS28, POLICY_MODE_STRICT);
	char label[512], long_rcpt[1025];
	size_t i;
	int flags;

	for (i = 0; i < sizeof(relay_cases) / sizeof(relay_cases[0]); i++) {
		const struct relay_case *c = &relay_cases[i];

		for (flags = 0; flags < 4; flags++) {
			bool auth = flags & 1, trusted = flags & 2;

			snprintf(label, sizeof(label), "RCPT TO:<%s>%s%s%s", c->rcpt,
				 c->had_route ? " with a source route" : "",
				 auth ? ", authenticated" : "", trusted ? ", trusted" : "");
			check(t, policy_relay_verdict(&s, c->rcpt, c->had_route, auth, trusted),
			      flags ? POLICY_ACCEPT : c->want, false, label);
		}
	}
	/* The mode does not matter: relay control is not a HELO rule. */
	s = settings(SYS28, POLICY_MODE_OFF);
	s.rule_override[POLICY_RELAY] = 0;
	check(t, policy_relay_verdict(&s, "user@gmail.example", false, false, false),
	      POLICY_RELAY, false, "relay control with helo_policy off and an override");
	check(t, policy_relay_verdict(&s, NULL, false, true, true), POLICY_RELAY, false, "no rcpt");
	memset(long_rcpt, 'a', sizeof(long_rcpt));
	check(t, policy_relay_verdict(&s, long_rcpt, false, false, false), POLICY_RELAY, false,
	      "1025 bytes without a NUL: refused, and not read past");
}

/* ---- addresses ---- */

struct parse_case {
	const char *text;
	size_t len;		/* 0: strlen(text) */
	bool literal;
	int family;		/* 0: must fail */
	const char *want;	/* the (masked) address, as inet_pton text */
	unsigned prefix;
};

static const struct parse_case parse_cases[] = {
	{ "192.0.2.1", 0, false, AF_INET, "192.0.2.1", 32 },
	{ "10.0.0.0/8", 0, false, AF_INET, "10.0.0.0", 8 },
	{ "10.1.2.3/8", 0, false, AF_INET, "10.0.0.0", 8 },
	{ "10.255.255.255/9", 0, false, AF_INET, "10.128.0.0", 9 },
	{ "0.0.0.0/0", 0, false, AF_INET, "0.0.0.0", 0 },
	{ "1.2.3.4/0", 0, false, AF_INET, "0.0.0.0", 0 },
	{ "1.2.3.4/32", 0, false, AF_INET, "1.2.3.4", 32 },
	{ "2001:db8::1", 0, false, AF_INET6, "2001:db8::1", 128 },
	{ "2001:DB8::/32", 0, false, AF_INET6, "2001:db8::", 32 },
	{ "2001:db8:ffff::1/33", 0, false, AF_INET6, "2001:db8:8000::", 33 },
	{ "::/0", 0, false, AF_INET6, "::", 0 },
	{ "::1/128", 0, false, AF_INET6, "::1", 128 },
	{ "::ffff:1.2.3.4", 0, false, AF_INET6, "::ffff:1.2.3.4", 128 },
	{ "1.2.3.45", 7, false, AF_INET, "1.2.3.4", 32 },
	{ "[1.2.3.4]", 0, true, AF_INET, "1.2.3.4", 32 },
	{ "[IPv6:2001:db8::1]", 0, true, AF_INET6, "2001:db8::1", 128 },
	{ "[ipv6:2001:DB8::1]", 0, true, AF_INET6, "2001:db8::1", 128 },
	{ "[iPv6:::ffff:1.2.3.4]", 0, true, AF_INET6, "::ffff:1.2.3.4", 128 },
	{ "[::1]", 0, true, AF_INET6, "::1", 128 },
	{ "1.2.3.4", 0, true, AF_INET, "1.2.3.4", 32 },
	{ "10.0.0.0/8", 0, true, AF_INET, "10.0.0.0", 8 },
	/* refused */
	{ "10.0.0.0/33", 0, false, 0, NULL, 0 },
	{ "::1/129", 0, false, 0, NULL, 0 },
	{ "1.2.3", 0, false, 0, NULL, 0 },
	{ "", 0, false, 0, NULL, 0 },
	{ "10.0.0.0/", 0, false, 0, NULL, 0 },
	{ "/8", 0, false, 0, NULL, 0 },
	{ "[1.2.3.4", 0, true, 0, NULL, 0 },
	{ "1.2.3.4]", 0, true, 0, NULL, 0 },
	{ "[1.2.3.4]", 0, false, 0, NULL, 0 },
	{ "[]", 0, true, 0, NULL, 0 },
	{ "[", 0, true, 0, NULL, 0 },
	{ "[IPv6:]", 0, true, 0, NULL, 0 },
	{ "[IPv6:1.2.3.4]", 0, true, 0, NULL, 0 },
	{ "[10.0.0.0/8]", 0, true, 0, NULL, 0 },
	{ "[1.2.3.4]/32", 0, true, 0, NULL, 0 },
	{ "IPv6:::1", 0, true, 0, NULL, 0 },
	{ "01.2.3.4", 0, false, 0, NULL, 0 },
	{ "1.2.3.4.5", 0, false, 0, NULL, 0 },
	{ "256.1.1.1", 0, false, 0, NULL, 0 },
	{ "fe80::1%eth0", 0, false, 0, NULL, 0 },
	{ "2001:db8::1::2", 0, false, 0, NULL, 0 },
	{ "1.2.3.4/8x", 0, false, 0, NULL, 0 },
	{ "1.2.3.4/-1", 0, false, 0, NULL, 0 },
	{ "1.2.3.4/+8", 0, false, 0, NULL, 0 },
	{ "1.2.3.4/0008", 0, false, 0, NULL, 0 },
	{ "1.2.3.4/ 8", 0, false, 0, NULL, 0 },
	{ "1.2.3.4/8/8", 0, false, 0, NULL, 0 },
	{ " 1.2.3.4", 0, false, 0, NULL, 0 },
	{ "1.2.3.4 ", 0, false, 0, NULL, 0 },
	{ "1.2.3.4\0x", 9, false, 0, NULL, 0 },
	{ "localhost", 0, false, 0, NULL, 0 },
	{ "1111:2222:3333:4444:5555:6666:7777:8888:9999", 0, false, 0, NULL, 0 },
};

/* test_parse - mtad_addr_parse, field by field. */
static void test_parse(struct tap *t)
{
	size_t i;
	char huge[300];
	struct mtad_addr a;

	for (i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const struct parse_case *c = &parse_cases[i];
		size_t len = c->len ? c->len : strlen(c->text);
		int ret = mtad_addr_parse(c->text, len, c->literal, &a);
		uint8_t want[16] = { 0 };
		bool ok;

		if (c->family == 0) {
			TAP_OK(t, ret == -1, "parse \"%.*s\"%s fails", (int)len, c->text,
			       c->literal ? " (literal)" : "");
			continue;
		}
		inet_pton(c->family, c->want, want);
		ok = ret == 0 && a.family == c->family && a.prefix == c->prefix &&
		     memcmp(a.bytes, want, sizeof(want)) == 0;
		TAP_OK(t, ok, "parse \"%.*s\"%s = %s/%u", (int)len, c->text,
		       c->literal ? " (literal)" : "", c->want, c->prefix);
	}
	memset(huge, '1', sizeof(huge));
	TAP_OK(t, mtad_addr_parse(huge, sizeof(huge), true, &a) == -1, "parse 300 digits fails");
	TAP_OK(t, mtad_addr_parse(NULL, 0, false, &a) == -1, "parse NULL fails");
}

struct contains_case {
	const char *net, *addr;
	bool want;
};

static const struct contains_case contains_cases[] = {
	{ "10.0.0.0/8", "10.255.1.2", true },
	{ "10.0.0.0/8", "11.0.0.1", false },
	{ "10.0.0.0/9", "10.127.255.255", true },
	{ "10.0.0.0/9", "10.128.0.0", false },
	{ "0.0.0.0/0", "1.2.3.4", true },
	{ "0.0.0.0/0", "::ffff:1.2.3.4", true },
	{ "0.0.0.0/0", "2001:db8::1", false },
	{ "::/0", "2001:db8::1", true },
	{ "::/0", "1.2.3.4", false },
	{ "::/0", "::ffff:1.2.3.4", false },
	{ "35.8.1.192/32", "35.8.1.192", true },
	{ "35.8.1.192/32", "35.8.1.193", false },
	{ "35.8.1.192", "::ffff:35.8.1.192", true },
	{ "35.8.0.0/16", "::ffff:35.8.1.192", true },
	{ "35.8.0.0/16", "::ffff:35.9.1.192", false },
	{ "::ffff:35.8.0.0/112", "35.8.1.192", true },
	{ "::ffff:35.8.0.0/112", "35.9.0.1", false },
	{ "::ffff:0.0.0.0/96", "8.8.8.8", true },
	{ "::ffff:1.2.3.4", "1.2.3.4", true },
	{ "::1/128", "::1", true },
	{ "::1", "::2", false },
	{ "127.0.0.0/8", "::1", false },
	{ "2001:db8::/32", "2001:db8:ffff::1", true },
	{ "2001:db8::/33", "2001:db8:8000::1", false },
	{ "2001:db8::/33", "2001:db8:7fff::1", true },
	{ "2001:db8::/32", "2001:db9::1", false },
	{ "10.0.0.0/8", "10.1.0.0/16", true },
	{ "10.1.0.0/16", "10.0.0.0/8", false },
};

/* test_contains - mtad_net_contains, and mtad_in_networks over a list. */
static void test_contains(struct tap *t)
{
	static const char *const trusted_text[] = {
		"10.0.0.0/8", "2001:db8::/32", "::ffff:192.168.0.0/112",
	};
	static const struct { const char *ip; bool want; } in_cases[] = {
		{ "10.1.1.1", true }, { "::ffff:10.1.1.1", true }, { "192.168.3.4", true },
		{ "::ffff:192.168.3.4", true }, { "2001:db8::9", true }, { "8.8.8.8", false },
		{ "2001:db9::1", false }, { "garbage", false }, { "", false },
		{ "10.0.0.0/8", false }, { "[10.1.1.1]", false },
	};
	struct mtad_addr net, addr, trusted[3], bad;
	size_t i;

	for (i = 0; i < sizeof(contains_cases) / sizeof(contains_cases[0]); i++) {
		const struct contains_case *c = &contains_cases[i];
		bool parsed = mtad_addr_parse(c->net, strlen(c->net), false, &net) == 0 &&
			      mtad_addr_parse(c->addr, strlen(c->addr), false, &addr) == 0;

		TAP_OK(t, parsed && mtad_net_contains(&net, &addr) == c->want,
		       "%s %s %s", c->net, c->want ? "contains" : "does not contain", c->addr);
	}
	mtad_addr_parse("1.2.3.4", 7, false, &addr);
	TAP_OK(t, !mtad_net_contains(NULL, &addr) && !mtad_net_contains(&addr, NULL),
	       "contains with NULL is false");
	bad = addr;
	bad.family = 99;
	TAP_OK(t, !mtad_net_contains(&bad, &addr), "a network of an unknown family holds nothing");
	bad = addr;
	bad.prefix = 200;
	TAP_OK(t, !mtad_net_contains(&bad, &addr), "a network with prefix 200 holds nothing");

	for (i = 0; i < 3; i++)
		mtad_addr_parse(trusted_text[i], strlen(trusted_text[i]), false, &trusted[i]);
	for (i = 0; i < sizeof(in_cases) / sizeof(in_cases[0]); i++)
		TAP_OK(t, mtad_in_networks(trusted, 3, in_cases[i].ip) == in_cases[i].want,
		       "\"%s\" %s relay_networks", in_cases[i].ip, in_cases[i].want ? "in" : "not in");
	TAP_OK(t, !mtad_in_networks(trusted, 3, NULL), "NULL is in no network");
	TAP_OK(t, !mtad_in_networks(trusted, 0, "10.1.1.1"), "an empty list holds nothing");
}

/* ---- names ---- */

/* test_names - rule and mode names both ways, as mtad.conf spells them. */
static void test_names(struct tap *t)
{
	static const char *const want[POLICY_NRULES] = {
		"accept", "no-helo", "helo-syntax", "own-name", "own-address", "localhost",
		"non-fqdn", "under-own-name", "bare-ip", "literal-mismatch", "unresolvable",
		"no-rdns", "relay",
	};
	int r, m;

	for (r = 0; r < POLICY_NRULES; r++)
		TAP_OK(t, strcmp(policy_rule_name((enum policy_rule)r), want[r]) == 0 &&
		       policy_rule_lookup(want[r]) == (r == POLICY_ACCEPT ? -1 : r),
		       "rule %d is \"%s\" and back", r, want[r]);
	TAP_OK(t, strcmp(policy_rule_name(POLICY_NRULES), "unknown") == 0, "rule out of range");
	TAP_OK(t, policy_rule_lookup("Own-Name") == -1 && policy_rule_lookup("own") == -1 &&
	       policy_rule_lookup("") == -1 && policy_rule_lookup(NULL) == -1,
	       "unknown rule names are -1");
	for (m = 0; m < NMODES; m++)
		TAP_OK(t, strcmp(policy_mode_name((enum policy_mode)m), mode_label[m]) == 0 &&
		       policy_mode_lookup(mode_label[m]) == m, "mode %d is \"%s\" and back", m,
		       mode_label[m]);
	TAP_OK(t, strcmp(policy_mode_name((enum policy_mode)7), "unknown") == 0, "mode out of range");
	TAP_OK(t, policy_mode_lookup("STRICT") == -1 && policy_mode_lookup("on") == -1 &&
	       policy_mode_lookup(NULL) == -1, "unknown mode names are -1");
}

/* test_settings_build - mtad.conf's policy keys, as sessions and mtaq
 * policy-test both get them. */
static void test_settings_build(struct tap *t)
{
	static const char text[] =
		"hostname = mx.campus.test\n"
		"helo_policy = strict\n"
		"helo_rule.non-fqdn = off\n"
		"local_domains = campus.test, other.test\n"
		"relay_domains = relay.test\n"
		"relay_networks = 192.0.2.0/24\n";
	static const struct mtad_config_checks checks = {
		.helo_rule = policy_config_rule, .helo_rule_name = policy_config_rule_name,
	};
	struct mtad_config *cfg = calloc(1, sizeof(*cfg));
	const char *local[POLICY_MAX_DOMAINS], *relay[POLICY_MAX_DOMAINS];
	struct policy_settings set;
	char err[256] = "";
	struct policy_verdict v;

	if (cfg == NULL)
		abort();
	mtad_config_defaults(cfg);
	TAP_OK(t, mtad_config_parse(cfg, &checks, text, sizeof(text) - 1, "test.conf", err,
				    sizeof(err)) == 0, "settings: the config parses (%s)", err);
	policy_settings_build(&set, cfg, local, relay, own_addrs, 2);
	TAP_OK(t, set.mode == POLICY_MODE_STRICT && strcmp(set.hostname, "mx.campus.test") == 0,
	       "settings: mode and hostname");
	TAP_OK(t, set.nlocal_domains == 2 && strcmp(set.local_domains[1], "other.test") == 0 &&
	       set.nrelay_domains == 1 && strcmp(set.relay_domains[0], "relay.test") == 0,
	       "settings: local and relay domains");
	TAP_OK(t, set.ntrusted == 1 && set.nown_addrs == 2, "settings: trusted networks, own addresses");
	TAP_OK(t, !policy_rule_enabled(&set, POLICY_NON_FQDN) &&
	       policy_rule_enabled(&set, POLICY_BARE_IP), "settings: helo_rule.non-fqdn = off under strict");
	v = policy_helo_verdict(&set, &(struct policy_client){ .helo = "mx.campus.test",
							      .client_ip = "198.51.100.7" });
	TAP_OK(t, v.rule == POLICY_OWN_NAME, "settings: a verdict from them (own-name)");
	free(cfg);
}

int main(void)
{
	struct tap t = { 0, 0 };

	if (mtad_addr_parse("35.8.1.28", 9, false, &own_addrs[0]) != 0 ||
	    mtad_addr_parse("2001:db8::28", 12, false, &own_addrs[1]) != 0) {
		printf("Bail out! cannot parse the fixture addresses\n");
		return 1;
	}
	test_helo_cases(&t);
	test_matrix(&t);
	test_dns_cases(&t);
	test_helo_bounds(&t);
	test_relay(&t);
	test_parse(&t);
	test_contains(&t);
	test_names(&t);
	test_settings_build(&t);
	return tap_done(&t);
}
