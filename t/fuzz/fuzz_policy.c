/*
 * fuzz_policy.c - libFuzzer target for the policy decisions in policy/:
 * policy_helo_verdict (the HELO rules), policy_relay_verdict, and the
 * address and network parsing under them (mtad_addr_parse,
 * mtad_net_contains, mtad_in_networks). The HELO name, client
 * address and recipient come from the client; the settings from
 * mtad.conf; both are built from the input here.
 *
 * Input: 8 header bytes (mode, flags, the two DNS answers, 32 bits of
 * rule overrides), then LF-separated fields: hostname, HELO, client IP,
 * recipient, local domains, relay domains, own addresses, trusted
 * networks (lists separated by blanks). Flag bit 4 makes the own
 * addresses raw struct bytes instead of text, as "the struct may come
 * from anywhere" (util/addr.c).
 *
 * Checks: verdicts are a rule with its code, enhanced code and text;
 * authenticated and trusted clients are refused only for the protocol
 * errors (no HELO, HELO syntax) and may always relay; a refusing rule is
 * enabled; a name smtp_parse_helo accepts is never a policy syntax error;
 * parsed addresses have a valid family and prefix, no host bits, and
 * contain themselves; rule and mode names map back to themselves.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "policy/policy.h"
#include "smtp/smtp.h"

#define NFIELDS 8
#define MAX_LIST 8

/* A field of the input as a NUL-terminated string (cut at an embedded NUL). */
struct text {
	char *s;
	size_t len;	/* bytes of the field, NULs included */
};

/* check_addr - what mtad_addr_parse promises about a parsed address. */
static void check_addr(const struct mtad_addr *a)
{
	unsigned max = a->family == AF_INET ? 32 : 128;

	if ((a->family != AF_INET && a->family != AF_INET6) || a->prefix > max)
		abort();
	for (unsigned bit = a->prefix; bit < max; bit++)
		if (a->bytes[bit / 8] & (0x80u >> (bit % 8)))
			abort();
	if (!mtad_net_contains(a, a))
		abort();
}

/* parse_list - blank-separated addresses; each also checked as literal and not. */
static size_t parse_list(const char *s, struct mtad_addr *out, size_t max)
{
	size_t n = 0;

	while (*s && n < max) {
		size_t w;
		struct mtad_addr a, b;
		int ra, rb;

		s += strspn(s, " ");
		w = strcspn(s, " ");
		if (w == 0)
			break;
		ra = mtad_addr_parse(s, w, false, &a);
		rb = mtad_addr_parse(s, w, true, &b);
		if (ra == 0)
			check_addr(&a);
		if (rb == 0)
			check_addr(&b);
		/* "literal" only adds the bracketed forms. */
		if (s[0] != '[' && (ra != rb || (ra == 0 && memcmp(&a, &b, sizeof(a)) != 0)))
			abort();
		if (s[0] == '[' && ra == 0)
			abort();
		if (rb == 0)
			out[n++] = b;
		s += w;
	}
	return n;
}

/* split_names - blank-separated names into list (pointers into s, which is cut). */
static size_t split_names(char *s, const char **list, size_t max)
{
	size_t n = 0;

	for (char *tok = strtok(s, " "); tok != NULL && n < max; tok = strtok(NULL, " "))
		list[n++] = tok;
	return n;
}

/* check_verdict - a rule in range with a full reply. */
static void check_verdict(const struct policy_verdict *v)
{
	if ((int)v->rule < POLICY_ACCEPT || v->rule >= POLICY_NRULES || v->enhanced == NULL ||
	    v->text == NULL || v->code < 200 || v->code > 599)
		abort();
	if ((v->rule == POLICY_ACCEPT) != (v->code == 250))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct text f[NFIELDS] = { { 0 } };
	struct policy_settings set;
	struct policy_client client;
	struct mtad_addr own[MAX_LIST], trusted[MAX_LIST];
	const char *local[MAX_LIST], *relay[MAX_LIST];
	struct policy_verdict v, rv;
	uint32_t overrides;
	uint8_t flags;
	size_t pos = 8;
	bool auth, trust;

	if (size < 8)
		return 0;
	flags = data[1];
	overrides = (uint32_t)data[4] << 24 | (uint32_t)data[5] << 16 | (uint32_t)data[6] << 8 | data[7];
	for (int i = 0; i < NFIELDS; i++) {
		const char *p = (const char *)data + pos;
		const char *lf = pos < size ? memchr(p, '\n', size - pos) : NULL;
		size_t n = pos >= size ? 0 : lf ? (size_t)(lf - p) : size - pos;

		f[i].s = malloc(n + 1);
		if (f[i].s == NULL)
			abort();
		memcpy(f[i].s, p, n);
		f[i].s[n] = '\0';
		f[i].len = n;
		pos += n + (lf != NULL);
	}

	memset(&set, 0, sizeof(set));
	set.mode = (enum policy_mode)(data[0] % 4);	/* 3: out of range, counts as relaxed */
	for (int r = 0; r < POLICY_NRULES; r++) {
		static const int8_t values[4] = { -1, 0, 1, 7 };

		set.rule_override[r] = values[(overrides >> (2 * (r % 16))) & 3];
	}
	set.hostname = f[0].s[0] || !(flags & 0x80) ? f[0].s : NULL;
	set.nlocal_domains = split_names(f[4].s, local, MAX_LIST);
	set.local_domains = local;
	set.nrelay_domains = split_names(f[5].s, relay, MAX_LIST);
	set.relay_domains = relay;
	if (flags & 0x10) {
		/* Raw structs: any family, any prefix. */
		size_t n = f[6].len / sizeof(struct mtad_addr);

		if (n > MAX_LIST)
			n = MAX_LIST;
		memcpy(own, f[6].s, n * sizeof(struct mtad_addr));
		for (size_t i = 0; i < n; i++)
			own[i].family = own[i].family & 1 ? AF_INET : own[i].family & 2 ? AF_INET6 :
					own[i].family;
		set.nown_addrs = n;
	} else {
		set.nown_addrs = parse_list(f[6].s, own, MAX_LIST);
	}
	set.own_addrs = own;
	set.ntrusted = parse_list(f[7].s, trusted, MAX_LIST);
	set.trusted = trusted;

	auth = flags & 0x01;
	trust = flags & 0x02;
	memset(&client, 0, sizeof(client));
	client.helo = (flags & 0x20) ? NULL : f[1].s;
	client.client_ip = (flags & 0x40) ? NULL : f[2].s;
	client.rdns = (enum policy_dns)(data[2] % 4);
	client.helo_dns = (enum policy_dns)(data[3] % 4);
	client.authenticated = auth;
	client.trusted = trust;

	v = policy_helo_verdict(&set, &client);
	check_verdict(&v);
	if ((v.rule == POLICY_NO_HELO) != (client.helo == NULL))
		abort();
	if ((auth || trust) && v.rule != POLICY_ACCEPT && v.rule != POLICY_NO_HELO &&
	    v.rule != POLICY_HELO_SYNTAX)
		abort();
	if (v.rule > POLICY_HELO_SYNTAX && !policy_rule_enabled(&set, v.rule))
		abort();
	if (v.rule == POLICY_RELAY)
		abort();
	/* What the SMTP parser took as a HELO name, the policy takes as one too. */
	if (client.helo != NULL && strlen(f[1].s) == f[1].len &&
	    smtp_parse_helo(f[1].s, f[1].len) == 0 && v.rule == POLICY_HELO_SYNTAX)
		abort();
	v = policy_helo_verdict(NULL, &client);
	check_verdict(&v);
	if (client.helo != NULL && v.rule != POLICY_ACCEPT && v.rule != POLICY_HELO_SYNTAX)
		abort();

	rv = policy_relay_verdict(&set, f[3].s, flags & 0x04, auth, trust);
	check_verdict(&rv);
	if (rv.rule != POLICY_ACCEPT && rv.rule != POLICY_RELAY)
		abort();
	if ((auth || trust) && rv.rule != POLICY_ACCEPT)
		abort();
	rv = policy_relay_verdict(NULL, f[3].s, flags & 0x04, auth, trust);
	check_verdict(&rv);

	(void)mtad_in_networks(trusted, set.ntrusted, f[2].s);
	(void)mtad_in_networks(own, set.nown_addrs, f[2].s);

	for (int r = POLICY_ACCEPT + 1; r < POLICY_NRULES; r++)
		if (policy_rule_lookup(policy_rule_name((enum policy_rule)r)) != r)
			abort();
	if (policy_rule_lookup(f[0].s) >= POLICY_NRULES || policy_mode_lookup(f[0].s) > POLICY_MODE_STRICT)
		abort();

	for (int i = 0; i < NFIELDS; i++)
		free(f[i].s);
	return 0;
}
