/*
 * fuzz_sender.c - libFuzzer target for sender ownership: the From:
 * scanner (smtp/from_scan.c) over a body, the address-list reader and
 * the map parsers (policy/sender.c, policy/quota.c's send_limit_map)
 * and auth_block's list. Input: the first byte picks the
 * split; the rest is a message (fed in two pieces) and a map text.
 *
 * Checks: feeding in two pieces finds what feeding whole finds; the
 * scanner never keeps more than SMTP_FROM_MAX bytes; every address read
 * fits SMTP_PATH_MAX and is NUL-terminated; a map that parses answers
 * lookups for its own lines without crashing; a limit is never negative
 * once '-' has become the global one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "smtp/smtp.h"

static const char *const local[] = { "campus.test" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct smtp_from_scan a, b;
	static char out[POLICY_FROM_MAX][SMTP_PATH_MAX];
	char err[256];
	struct policy_sender_map *m;
	size_t split, n = 0;

	if (size < 1)
		return 0;
	split = data[0] % (size);
	data++;
	size--;
	if (split > size)
		split = size;
	smtp_from_scan_init(&a);
	smtp_from_scan_feed(&a, (const char *)data, size);
	smtp_from_scan_init(&b);
	smtp_from_scan_feed(&b, (const char *)data, split);
	smtp_from_scan_feed(&b, (const char *)data + split, size - split);
	if (a.len != b.len || memcmp(a.value, b.value, a.len) != 0 || a.done != b.done ||
	    a.overflow != b.overflow || a.len > SMTP_FROM_MAX)
		abort();
	if (policy_from_addresses(a.value, a.len, out, POLICY_FROM_MAX, &n) == 0) {
		if (n > POLICY_FROM_MAX)
			abort();
		for (size_t i = 0; i < n; i++) {
			if (strnlen(out[i], SMTP_PATH_MAX) >= SMTP_PATH_MAX)
				abort();
			(void)policy_sender_owned(NULL, "alice@realm", out[i], local, 1);
		}
	}
	{
		struct policy_limit_map *lm = policy_limit_map_parse((const char *)data, size, "fuzz",
								     err, sizeof(err));
		struct policy_limits g = { 30, 2000 }, l = policy_limits_for(lm, "alice@realm", g);

		if (l.messages_per_minute < 0 || l.recipients_per_day < 0)
			abort();
		policy_limit_map_free(lm);
		(void)policy_login_listed("alice, bob", (const char *)data, strnlen((const char *)data, size));
	}
	m = policy_sender_map_parse((const char *)data, size, "fuzz", err, sizeof(err));
	if (m != NULL) {
		(void)policy_sender_owned(m, "alice", "alice@campus.test", local, 1);
		(void)policy_sender_owned(m, "x@y", "a@b", local, 1);
		policy_sender_map_free(m);
	}
	return 0;
}
