/*
 * destkey.c - unit tests for deliver_dest_key (deliver/group.c), the key
 * of a delivery destination: a table of host lists and the exact key
 * each must give (order, case, a trailing dot and repeated names do not
 * matter; another host set, port, protocol or TLS policy is another
 * key), then the edges: no host, too many, the longest names.
 */
#include <stdlib.h>
#include <string.h>

#include "deliver/deliver_int.h"
#include "t/unit/tap.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

struct key_case {
	bool lmtp;
	enum smtp_tls_policy tls;
	int port;
	const char *hosts[6];	/* NULL-terminated */
	const char *want;
};

static const struct key_case cases[] = {
	{ false, SMTP_TLS_MAY, 25, { "mx.shared.test" }, "smtp may 25 mx.shared.test" },
	/* the same set, however DNS gave it: one destination */
	{ false, SMTP_TLS_MAY, 25, { "mx2.example.org", "mx1.example.org" },
	  "smtp may 25 mx1.example.org,mx2.example.org" },
	{ false, SMTP_TLS_MAY, 25, { "MX1.Example.ORG.", "mx2.example.org" },
	  "smtp may 25 mx1.example.org,mx2.example.org" },
	/* a host with several addresses is named once per address */
	{ false, SMTP_TLS_MAY, 25, { "mx2.example.org", "mx1.example.org", "mx2.example.org",
				     "mx1.example.org." },
	  "smtp may 25 mx1.example.org,mx2.example.org" },
	/* another port, policy or protocol: another destination */
	{ false, SMTP_TLS_MAY, 2525, { "mx.shared.test" }, "smtp may 2525 mx.shared.test" },
	{ false, SMTP_TLS_NONE, 25, { "mx.shared.test" }, "smtp none 25 mx.shared.test" },
	{ false, SMTP_TLS_VERIFY, 25, { "mx.shared.test" }, "smtp verify 25 mx.shared.test" },
	{ true, SMTP_TLS_NONE, 24, { "mailstore.campus.test" }, "lmtp none 24 mailstore.campus.test" },
	/* routes to addresses: the literal is the name */
	{ false, SMTP_TLS_MAY, 25, { "192.0.2.1" }, "smtp may 25 192.0.2.1" },
	{ false, SMTP_TLS_MAY, 25, { "2001:db8::1", "192.0.2.1" }, "smtp may 25 192.0.2.1,2001:db8::1" },
	/* a lone dot stays (it is not a name mtad connects to, but must not vanish) */
	{ false, SMTP_TLS_MAY, 25, { "." }, "smtp may 25 ." },
};

static void test_table(struct tap *t)
{
	for (size_t i = 0; i < N(cases); i++) {
		const struct key_case *c = &cases[i];
		size_t n = 0;
		char *key;

		while (n < N(c->hosts) && c->hosts[n])
			n++;
		key = deliver_dest_key(c->lmtp, c->tls, c->port, c->hosts, n);
		TAP_OK(t, key && strcmp(key, c->want) == 0, "case %zu: \"%s\" (got \"%s\")", i,
		       c->want, key ? key : "(null)");
		free(key);
	}
}

static void test_edges(struct tap *t)
{
	const char *hosts[MAX_ADDRS + 1];
	char names[MAX_ADDRS + 1][256];
	char *key;
	size_t want = 0;

	for (size_t i = 0; i <= MAX_ADDRS; i++) {
		/* 255 characters each, distinct in the first one */
		memset(names[i], 'a', 255);
		names[i][0] = (char)('a' + i);
		names[i][255] = '\0';
		hosts[i] = names[i];
	}
	TAP_OK(t, deliver_dest_key(false, SMTP_TLS_MAY, 25, hosts, 0) == NULL, "no host: NULL");
	TAP_OK(t, deliver_dest_key(false, SMTP_TLS_MAY, 25, hosts, MAX_ADDRS + 1) == NULL,
	       "more than MAX_ADDRS names: NULL");
	TAP_OK(t, deliver_dest_key(false, (enum smtp_tls_policy)7, 25, hosts, 1) == NULL,
	       "an unknown TLS policy: NULL");
	key = deliver_dest_key(true, SMTP_TLS_VERIFY, 65535, hosts, MAX_ADDRS);
	want = strlen("lmtp verify 65535") + MAX_ADDRS * 256;
	TAP_OK(t, key && strlen(key) == want, "MAX_ADDRS names of 255 characters: all kept (%zu)",
	       key ? strlen(key) : 0);
	TAP_OK(t, key && strncmp(key, "lmtp verify 65535 aaaa", 22) == 0 &&
		  key[strlen(key) - 256] == ',' && key[strlen(key) - 255] == 'p',
	       "... sorted, the last one starting with 'p'");
	free(key);
}

int main(void)
{
	struct tap t = { 0 };

	test_table(&t);
	test_edges(&t);
	return tap_done(&t);
}
