/*
 * space.c - unit tests for policy_space_verdict (policy/space.c): the
 * free-space reserve of the spool, at its edges (exactly at the
 * reserve, one byte under), with and without a SIZE announcement, no
 * reserve (0), an unknown measurement, and sizes and free counts near
 * UINT64_MAX that must not wrap into a "yes".
 */
#include <stdint.h>
#include <stdio.h>

#include "policy/policy.h"
#include "t/unit/tap.h"

#define MB (1024ull * 1024)

struct space_case {
	uint64_t free, reserve, size;
	bool room;
	const char *what;
};

static const struct space_case cases[] = {
	{ 300 * MB, 256 * MB, 0, true, "above the reserve, no SIZE" },
	{ 256 * MB, 256 * MB, 0, true, "exactly at the reserve is not below it" },
	{ 256 * MB - 1, 256 * MB, 0, false, "one byte under the reserve" },
	{ 0, 256 * MB, 0, false, "a full disk" },
	{ 300 * MB, 256 * MB, 44 * MB, true, "SIZE that lands exactly on the reserve" },
	{ 300 * MB, 256 * MB, 44 * MB + 1, false, "SIZE one byte over what the reserve leaves" },
	{ 300 * MB, 256 * MB, 50 * MB, false, "SIZE that would cross the reserve" },
	{ 100 * MB, 256 * MB, 1, false, "below the reserve, small SIZE" },
	{ 0, 0, 0, true, "reserve 0 is no reserve, even on a full disk" },
	{ 0, 0, UINT64_MAX, true, "reserve 0 with any SIZE" },
	{ POLICY_SPACE_UNKNOWN, 256 * MB, 0, true, "free space not measured: room" },
	{ POLICY_SPACE_UNKNOWN, 256 * MB, 50 * MB, true, "not measured, with SIZE: room" },
	{ 300 * MB, 256 * MB, UINT64_MAX, false, "SIZE near 2^64 does not wrap" },
	{ UINT64_MAX - 1, UINT64_MAX - 1, 1, false, "free near 2^64, one byte over" },
	{ UINT64_MAX - 1, 1, UINT64_MAX - 2, true, "free near 2^64, huge SIZE that fits" },
	{ 5, UINT64_MAX - 1, 0, false, "a reserve bigger than any disk" },
};

int main(void)
{
	struct tap t = { 0, 0 };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct space_case *c = &cases[i];
		bool got = policy_space_verdict(c->free, c->reserve, c->size);

		TAP_OK(&t, got == c->room, "%s: free %llu, reserve %llu, size %llu -> %s",
		       c->what, (unsigned long long)c->free, (unsigned long long)c->reserve,
		       (unsigned long long)c->size, c->room ? "room" : "452");
	}
	return tap_done(&t);
}
