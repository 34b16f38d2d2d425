/*
 * fuzz_rcpt_map.c - libFuzzer target for local_recipient_maps
 * (policy/rcpt_map.c) and the recipient verification cache
 * (policy/verify_cache.c): what a map file may hold, and what addresses
 * clients may make up.
 *
 * Input: a map text; after a line "%%" the rest is one address per
 * line, looked up in the map and pushed through a cache of 4 entries
 * with a clock that moves by the line's length.
 *
 * Checks: a map that parses answers for every address without reading
 * out of bounds; a refused map sets its error text; the cache never
 * holds more than its bound, and an answer just put is read back until
 * its time to live runs out.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

#define CACHE_MAX 4
#define ADDR_MAX 300

/* lookups - each line after "%%" against the map and the cache. */
static void lookups(const struct policy_rcpt_map *m, const char *p, const char *end)
{
	struct policy_verify_cache *c = policy_verify_cache_new(CACHE_MAX, 100, 10);
	int64_t now = 1000;

	if (!c)
		return;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl ? nl : end) - p);
		char addr[ADDR_MAX];

		if (len < sizeof(addr)) {
			bool known;

			memcpy(addr, p, len);
			addr[len] = '\0';
			known = policy_rcpt_known(m, addr);
			if (policy_verify_cache_put(c, addr, known, now) == 0 &&
			    policy_verify_cache_get(c, addr, now) !=
				    (known ? POLICY_VERIFY_KNOWN : POLICY_VERIFY_UNKNOWN))
				abort();
			now += (int64_t)(len % 20);
		}
		if (policy_verify_cache_count(c) > CACHE_MAX)
			abort();
		p = nl ? nl + 1 : end;
	}
	policy_verify_cache_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data, *end = text + size;
	const char *split = NULL;
	char err[256] = "";
	struct policy_rcpt_map *m;

	for (const char *p = text; p + 3 <= end; p++)
		if ((p == text || p[-1] == '\n') && memcmp(p, "%%\n", 3) == 0) {
			split = p;
			break;
		}
	m = policy_rcpt_map_parse(text, split ? (size_t)(split - text) : size, "map", err,
				  sizeof(err));
	if (!m && err[0] == '\0')
		abort();
	if (m && policy_rcpt_map_count(m) > POLICY_RCPT_MAP_MAX)
		abort();
	if (split)
		lookups(m, split + 3, end);
	policy_rcpt_map_free(m);
	return 0;
}
