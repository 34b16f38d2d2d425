/*
 * policy.c - the HELO rules and relay control: given the facts about a
 * session, which rule (if any) refuses it and with what reply.
 *
 * Must not: do I/O, allocate, keep state, read the clock or the locale,
 * or read more than 256 bytes of any name (the HELO argument is at most
 * 255 bytes but is checked here again, not trusted). Must not refuse an
 * authenticated or trusted client on any rule but the two protocol
 * errors (no HELO, HELO syntax): their broken mail clients are the
 * reason this is policy and not syntax. Must not let an unauthenticated
 * client relay, by a foreign domain or by the old tricks (%-hack,
 * !-paths, quoted @, source routes, domain literals) on a local one.
 *
 * Follows: RFC 5321 §4.1.1.1 (HELO/EHLO), §4.1.3 (address literals),
 * §4.5.1 (postmaster), §3.6.1 and appendix C (source routes and relaying),
 * §2.3.5 (domain names; a trailing dot names the same host); RFC 3463
 * (enhanced codes); RFC 2505 §2 (anti-relay); RFC 5890 and RFC 6531 §3.3
 * (a recipient's U-label domain is compared in its A-label form, so a
 * Unicode look-alike of a local domain is foreign: util/idna.c).
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "policy/policy.h"

/* RFC 5321 §4.5.3.1.2: a domain is at most 255 octets. */
#define NAME_MAX_LEN 255
/* RFC 5321 §4.5.3.1.3 allows 256 for a path; room for a source route too. */
#define PATH_MAX_LEN 1024

enum { M_OFF = 1 << POLICY_MODE_OFF, M_RELAXED = 1 << POLICY_MODE_RELAXED,
       M_STRICT = 1 << POLICY_MODE_STRICT, M_ALL = M_OFF | M_RELAXED | M_STRICT };

/* What each rule is called, its reply, and the modes that turn it on. */
struct rule_info {
	const char *name;
	int code;
	const char *enhanced;
	const char *text;
	unsigned modes;
};

static const struct rule_info rules[POLICY_NRULES] = {
	[POLICY_ACCEPT] = { "accept", 250, "2.0.0", "Ok", 0 },
	[POLICY_NO_HELO] = { "no-helo", 503, "5.5.1", "Error: send HELO/EHLO first", M_ALL },
	[POLICY_HELO_SYNTAX] = { "helo-syntax", 501, "5.5.4", "Syntax: HELO/EHLO hostname", M_ALL },
	[POLICY_OWN_NAME] = { "own-name", 550, "5.7.1",
		"Invalid HELO. HELO/EHLO with my domain name.", M_RELAXED | M_STRICT },
	[POLICY_OWN_ADDRESS] = { "own-address", 550, "5.7.1",
		"Invalid HELO. HELO/EHLO with my address.", M_RELAXED | M_STRICT },
	[POLICY_LOCALHOST] = { "localhost", 550, "5.7.1",
		"Invalid HELO. HELO/EHLO as localhost.", M_RELAXED | M_STRICT },
	[POLICY_NON_FQDN] = { "non-fqdn", 550, "5.7.1",
		"Invalid HELO. HELO/EHLO needs a fully qualified host name.", M_STRICT },
	[POLICY_UNDER_OWN_NAME] = { "under-own-name", 550, "5.7.1",
		"Invalid HELO. HELO/EHLO with a name under my domain name.", M_STRICT },
	[POLICY_BARE_IP] = { "bare-ip", 550, "5.7.1",
		"Invalid HELO. HELO/EHLO with an IP address needs brackets.", M_STRICT },
	[POLICY_LITERAL_MISMATCH] = { "literal-mismatch", 550, "5.7.1",
		"Invalid HELO. HELO/EHLO address literal is not your address.", M_STRICT },
	[POLICY_UNRESOLVABLE] = { "unresolvable", 550, "5.7.1",
		"Invalid HELO. HELO/EHLO name does not resolve.", M_STRICT },
	[POLICY_NO_RDNS] = { "no-rdns", 450, "4.7.1",
		"Client host rejected: cannot find your reverse hostname", 0 },
	[POLICY_RELAY] = { "relay", 554, "5.7.1", "Relay access denied", M_ALL },
};

/* A DNS failure is not the client's fault: the name check says try later. */
static const struct policy_verdict unresolvable_tempfail = {
	POLICY_UNRESOLVABLE, 450, "4.7.1",
	"Invalid HELO. HELO/EHLO name cannot be checked now, try again later."
};

static const char *const mode_names[] = {
	[POLICY_MODE_OFF] = "off", [POLICY_MODE_RELAXED] = "relaxed",
	[POLICY_MODE_STRICT] = "strict",
};

/* The HELO argument, taken apart once. */
struct helo {
	const char *name;	/* the text without one trailing dot */
	size_t len;
	bool literal;		/* [...] */
	bool is_addr;		/* addr holds a parsed address (literal or bare) */
	struct mtad_addr addr;
};

/* ---- names ---- */

/* name_len - a domain's length without one trailing dot; > NAME_MAX_LEN if too long. */
static size_t name_len(const char *s)
{
	size_t len = strnlen(s, NAME_MAX_LEN + 2);

	if (len > 0 && s[len - 1] == '.')
		len--;
	return len;
}

/* same_text - equal in any ASCII case (mtad_lower: the locale must not
 * change a verdict). */
static bool same_text(const char *a, const char *b, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (mtad_lower(a[i]) != mtad_lower(b[i]))
			return false;
	return true;
}

/* name_is - is the name (len bytes, trailing dot already gone) the domain d? */
static bool name_is(const char *name, size_t len, const char *d)
{
	size_t dlen;

	if (d == NULL)
		return false;
	dlen = name_len(d);
	if (!mtad_ascii(d, dlen))	/* a U-label in mtad.conf: both as A-labels */
		return mtad_domain_same(name, len, d, dlen);
	return dlen > 0 && dlen == len && same_text(name, d, len);
}

/* name_in - is the name one of the n domains? */
static bool name_in(const char *name, size_t len, const char *const *list, size_t n)
{
	size_t i;

	if (list == NULL)
		return false;
	for (i = 0; i < n; i++)
		if (name_is(name, len, list[i]))
			return true;
	return false;
}

/* name_under - does the name end in "." + d (a host in d, not d itself)? */
static bool name_under(const char *name, size_t len, const char *d)
{
	size_t dlen;

	if (d == NULL)
		return false;
	dlen = name_len(d);
	if (dlen == 0 || dlen > NAME_MAX_LEN || len < dlen + 2)
		return false;
	return name[len - dlen - 1] == '.' && same_text(name + len - dlen, d, dlen);
}

/* ---- HELO syntax ---- */

/* name_char - what a host name may hold: letters, digits, '-', '_' (Windows), '.'. */
static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

/* dcontent - RFC 5321 §4.1.3: what an address literal may hold between the brackets. */
static bool dcontent(char c)
{
	return c >= 33 && c <= 126 && c != '[' && c != ']' && c != '\\';
}

/*
 * name_shape - labels of name characters, none empty or over 63 (the one
 * trailing dot allowed is already gone). No dot at all is fine here:
 * that is non-fqdn's call.
 */
static bool name_shape(const char *s, size_t len)
{
	size_t i, label = 0;

	for (i = 0; i < len; i++) {
		if (!name_char(s[i]))
			return false;
		if (s[i] != '.')
			label++;
		else if (label == 0)
			return false;
		else
			label = 0;
		if (label > 63)
			return false;
	}
	return label > 0;
}

/* literal_shape - "[" dcontent... "]". Whether it is an address is decided later. */
static bool literal_shape(const char *s, size_t len)
{
	size_t i;

	if (len < 3 || s[0] != '[' || s[len - 1] != ']')
		return false;
	for (i = 1; i < len - 1; i++)
		if (!dcontent(s[i]))
			return false;
	return true;
}

/*
 * helo_parse - syntax and classification in one pass. A bare IPv6
 * address holds colons no name can, but the rules want to name it
 * (localhost, own-address, bare-ip), so it counts as syntax.
 */
static bool helo_parse(const char *s, struct helo *h)
{
	size_t len = strnlen(s, NAME_MAX_LEN + 1);

	memset(h, 0, sizeof(*h));
	if (len == 0 || len > NAME_MAX_LEN)
		return false;
	h->name = s;
	if (s[0] == '[') {
		if (!literal_shape(s, len))
			return false;
		h->len = len;
		h->literal = true;
		h->is_addr = mtad_addr_parse(s, len, true, &h->addr) == 0;
		return true;
	}
	if (s[len - 1] == '.')
		len--;
	h->len = len;
	/* No '/': "10.0.0.0/8" is no host; and "1.2.3.4." is still 1.2.3.4. */
	if (memchr(s, '/', len) == NULL)
		h->is_addr = mtad_addr_parse(s, len, false, &h->addr) == 0;
	return len > 0 && (h->is_addr || name_shape(s, len));
}

/* ---- the rules ---- */

/* is_localhost - the names and addresses that mean "this machine" to the client. */
static bool is_localhost(const struct helo *h)
{
	static const struct mtad_addr loop4 = { AF_INET, { 127 }, 8 };
	static const struct mtad_addr loop6 = { AF_INET6, { [15] = 1 }, 128 };

	if (h->is_addr)
		return mtad_net_contains(&loop4, &h->addr) || mtad_net_contains(&loop6, &h->addr);
	return !h->literal && (name_is(h->name, h->len, "localhost") ||
			       name_is(h->name, h->len, "localhost.localdomain"));
}

/* is_own_address - one of ours (an own_addrs entry with a prefix covers its network). */
static bool is_own_address(const struct policy_settings *set, const struct helo *h)
{
	size_t i;

	if (!h->is_addr || set->own_addrs == NULL)
		return false;
	for (i = 0; i < set->nown_addrs; i++)
		if (mtad_net_contains(&set->own_addrs[i], &h->addr))
			return true;
	return false;
}

/* literal_mismatch - a literal that is not (or cannot be shown to be) the client. */
static bool literal_mismatch(const struct helo *h, const char *client_ip)
{
	struct mtad_addr client;

	if (!h->literal)
		return false;
	/* [IPv7:...] or a client address we cannot read: nothing to match. */
	if (!h->is_addr || client_ip == NULL ||
	    mtad_addr_parse(client_ip, strnlen(client_ip, 64), false, &client) < 0)
		return true;
	return !mtad_net_contains(&h->addr, &client) || !mtad_net_contains(&client, &h->addr);
}

/* is_name - a host name: not a literal and not a bare address. */
static bool is_name(const struct helo *h)
{
	return !h->literal && !h->is_addr;
}

/* refused - does rule r (already enabled) refuse this HELO? */
static bool refused(enum policy_rule r, const struct policy_settings *set,
		    const struct policy_client *c, const struct helo *h)
{
	switch (r) {
	case POLICY_OWN_NAME:
		return is_name(h) && (name_is(h->name, h->len, set->hostname) ||
				      name_in(h->name, h->len, set->local_domains, set->nlocal_domains));
	case POLICY_OWN_ADDRESS:
		return is_own_address(set, h);
	case POLICY_LOCALHOST:
		return is_localhost(h);
	case POLICY_NON_FQDN:
		return is_name(h) && memchr(h->name, '.', h->len) == NULL;
	case POLICY_UNDER_OWN_NAME:
		return is_name(h) && name_under(h->name, h->len, set->hostname);
	case POLICY_BARE_IP:
		return !h->literal && h->is_addr;
	case POLICY_LITERAL_MISMATCH:
		return literal_mismatch(h, c->client_ip);
	case POLICY_UNRESOLVABLE:
		/* Only names are looked up; UNKNOWN (no resolver) is no evidence. */
		return is_name(h) && (c->helo_dns == POLICY_DNS_NOTFOUND ||
				      c->helo_dns == POLICY_DNS_TEMPFAIL);
	case POLICY_NO_RDNS:
		return c->rdns == POLICY_DNS_NOTFOUND || c->rdns == POLICY_DNS_TEMPFAIL;
	default:
		return false;
	}
}

/* verdict - the reply for a rule. */
static struct policy_verdict verdict(enum policy_rule r)
{
	struct policy_verdict v = { r, rules[r].code, rules[r].enhanced, rules[r].text };

	return v;
}

/* policy_settings_build - see policy.h. */
void policy_settings_build(struct policy_settings *set, const struct mtad_config *cfg,
			   const char **local, const char **relay,
			   const struct mtad_addr *own, size_t nown)
{
	int mode = policy_mode_lookup(cfg->helo_policy);

	memset(set, 0, sizeof(*set));
	set->mode = mode < 0 ? POLICY_MODE_RELAXED : (enum policy_mode)mode;
	for (int r = 0; r < POLICY_NRULES; r++)
		set->rule_override[r] = r < MTAD_MAX_RULES ? cfg->helo_rule[r] : -1;
	set->hostname = cfg->hostname;
	for (size_t i = 0; i < cfg->nlocal_domains && i < POLICY_MAX_DOMAINS; i++)
		local[set->nlocal_domains++] = cfg->local_domains[i];
	for (size_t i = 0; i < cfg->nrelay_domains && i < POLICY_MAX_DOMAINS; i++)
		relay[set->nrelay_domains++] = cfg->relay_domains[i];
	set->local_domains = local;
	set->relay_domains = relay;
	set->nown_addrs = nown;
	set->own_addrs = own;
	set->ntrusted = cfg->nrelay_networks;
	set->trusted = cfg->relay_networks;
}

/*
 * policy_rule_enabled - see policy.h. no-helo, helo-syntax and relay are
 * always on and their overrides are ignored (the config layer refuses
 * them anyway): a protocol error is not a policy, and relay control is
 * not a HELO rule. A mode out of range counts as relaxed.
 */
bool policy_rule_enabled(const struct policy_settings *set, enum policy_rule rule)
{
	enum policy_mode mode;

	if (set == NULL || rule <= POLICY_ACCEPT || rule >= POLICY_NRULES)
		return false;
	if (rules[rule].modes == M_ALL)
		return true;
	if (set->rule_override[rule] == 0 || set->rule_override[rule] == 1)
		return set->rule_override[rule] == 1;
	mode = set->mode;
	if (mode != POLICY_MODE_OFF && mode != POLICY_MODE_STRICT)
		mode = POLICY_MODE_RELAXED;
	return (rules[rule].modes & (1u << mode)) != 0;
}

/* policy_helo_verdict - see policy.h. */
struct policy_verdict policy_helo_verdict(const struct policy_settings *set,
					  const struct policy_client *client)
{
	struct helo h;
	int r;

	if (client == NULL || client->helo == NULL)
		return verdict(POLICY_NO_HELO);
	if (!helo_parse(client->helo, &h))
		return verdict(POLICY_HELO_SYNTAX);
	if (set == NULL || client->authenticated || client->trusted)
		return verdict(POLICY_ACCEPT);
	for (r = POLICY_OWN_NAME; r <= POLICY_NO_RDNS; r++) {
		if (!policy_rule_enabled(set, (enum policy_rule)r) ||
		    !refused((enum policy_rule)r, set, client, &h))
			continue;
		if (r == POLICY_UNRESOLVABLE && client->helo_dns == POLICY_DNS_TEMPFAIL)
			return unresolvable_tempfail;
		return verdict((enum policy_rule)r);
	}
	return verdict(POLICY_ACCEPT);
}

/* ---- relay ---- */

/* last_at - the '@' that starts the domain: the last one outside quotes, or NULL. */
static const char *last_at(const char *s, size_t len)
{
	const char *at = NULL;
	bool quoted = false;
	size_t i;

	for (i = 0; i < len; i++) {
		if (quoted && s[i] == '\\' && i + 1 < len)
			i++;	/* quoted-pair: the next octet is plain text */
		else if (s[i] == '"')
			quoted = !quoted;
		else if (s[i] == '@' && !quoted)
			at = s + i;
	}
	return at;
}

/*
 * relay_trick - a local part that asks the next hop to route on: '%'
 * (the %-hack), '!' (UUCP paths), or an '@' (only possible quoted, since
 * the domain starts at the last unquoted one). Quoting does not make
 * them harmless: a sendmail downstream may still honour them.
 */
static bool relay_trick(const char *local, size_t len)
{
	return memchr(local, '%', len) != NULL || memchr(local, '!', len) != NULL ||
	       memchr(local, '@', len) != NULL;
}

/* is_postmaster - "postmaster" with no domain, any case (RFC 5321 §4.5.1). */
static bool is_postmaster(const char *rcpt)
{
	return strnlen(rcpt, 11) == 10 && same_text(rcpt, "postmaster", 10);
}

/* ours - a domain mail is delivered or relayed to from anyone. */
static bool ours(const struct policy_settings *set, const char *d, size_t len)
{
	return name_is(d, len, set->hostname) ||
	       name_in(d, len, set->local_domains, set->nlocal_domains) ||
	       name_in(d, len, set->relay_domains, set->nrelay_domains);
}

/* policy_relay_verdict - see policy.h. */
struct policy_verdict policy_relay_verdict(const struct policy_settings *set,
					   const char *rcpt, bool had_route,
					   bool authenticated, bool trusted)
{
	char alabel[MTAD_DOMAIN_ASCII_MAX + 2];
	const char *at, *domain;
	size_t len, dlen;
	int n;

	if (rcpt == NULL)
		return verdict(POLICY_RELAY);
	if (authenticated || trusted || is_postmaster(rcpt))
		return verdict(POLICY_ACCEPT);
	len = strnlen(rcpt, PATH_MAX_LEN + 1);
	if (set == NULL || had_route || len > PATH_MAX_LEN || (at = last_at(rcpt, len)) == NULL)
		return verdict(POLICY_RELAY);
	domain = at + 1;
	dlen = len - (size_t)(domain - rcpt);
	if (dlen > 0 && domain[dlen - 1] == '.')
		dlen--;
	if (dlen == 0 || domain[0] == '[' || relay_trick(rcpt, (size_t)(at - rcpt)))
		return verdict(POLICY_RELAY);
	/* SMTPUTF8: the A-label form is the domain; one that has none is no one's. */
	if ((n = mtad_domain_to_ascii(domain, dlen, alabel, sizeof(alabel))) <= 0)
		return verdict(POLICY_RELAY);
	return ours(set, alabel, (size_t)n) ? verdict(POLICY_ACCEPT) : verdict(POLICY_RELAY);
}

/* ---- names of rules and modes ---- */

/* policy_rule_name - see policy.h; "accept" for POLICY_ACCEPT, "unknown" out of range. */
const char *policy_rule_name(enum policy_rule rule)
{
	if (rule < POLICY_ACCEPT || rule >= POLICY_NRULES)
		return "unknown";
	return rules[rule].name;
}

/* policy_rule_lookup - see policy.h. "accept" is no rule, so it is not found. */
int policy_rule_lookup(const char *name)
{
	int r;

	if (name == NULL)
		return -1;
	for (r = POLICY_ACCEPT + 1; r < POLICY_NRULES; r++)
		if (strcmp(name, rules[r].name) == 0)
			return r;
	return -1;
}

/* policy_config_rule - see policy.h: the config's hook for helo_rule.NAME. */
int policy_config_rule(const char *name, char *err, size_t errlen)
{
	int r = policy_rule_lookup(name);

	if (r < 0 || r == POLICY_RELAY || r >= MTAD_MAX_RULES) {
		snprintf(err, errlen, "unknown HELO rule \"%s\"", name ? name : "");
		return -1;
	}
	/* A protocol error is not a policy: these two cannot be switched off. */
	if (r == POLICY_NO_HELO || r == POLICY_HELO_SYNTAX) {
		snprintf(err, errlen, "helo_rule.%s is always on", name);
		return -1;
	}
	return r;
}

/* policy_config_rule_name - see policy.h. */
const char *policy_config_rule_name(int rule)
{
	return policy_rule_name((enum policy_rule)rule);
}

/* policy_config_rule_default - see policy.h: the mode's word on a rule nothing overrides. */
int policy_config_rule_default(int rule, const char *mode)
{
	struct policy_settings set;
	char why[128];
	int m = policy_mode_lookup(mode);

	if (rule < 0 || rule >= MTAD_MAX_RULES || policy_config_rule(policy_rule_name((enum policy_rule)rule),
								    why, sizeof(why)) != rule)
		return -1;
	memset(&set, 0, sizeof(set));
	memset(set.rule_override, -1, sizeof(set.rule_override));
	set.mode = m < 0 ? POLICY_MODE_RELAXED : (enum policy_mode)m;
	return policy_rule_enabled(&set, (enum policy_rule)rule) ? 1 : 0;
}

/* policy_mode_name - see policy.h; "unknown" out of range. */
const char *policy_mode_name(enum policy_mode mode)
{
	if (mode < POLICY_MODE_OFF || mode > POLICY_MODE_STRICT)
		return "unknown";
	return mode_names[mode];
}

/* policy_mode_lookup - see policy.h. */
int policy_mode_lookup(const char *name)
{
	int m;

	if (name == NULL)
		return -1;
	for (m = POLICY_MODE_OFF; m <= POLICY_MODE_STRICT; m++)
		if (strcmp(name, mode_names[m]) == 0)
			return m;
	return -1;
}
