/*
 * limiter.c - unit tests for auth/limiter.c: under, at and over the
 * failure limit, the window sliding, expiry, IPv6 keys, and the bound on
 * tracked addresses with least-recently-failed eviction.
 */
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "t/unit/tap.h"

/* fail_n - n failures from ip at time now. */
static void fail_n(struct auth_limiter *lim, const char *ip, unsigned n, int64_t now)
{
	while (n-- > 0)
		auth_limiter_failure(lim, ip, now);
}

/* test_limit - 3 failures in 60 s block; 2 do not; other addresses are unaffected. */
static void test_limit(struct tap *t)
{
	struct auth_limiter *lim = auth_limiter_new(3, 60, 100);

	TAP_OK(t, lim != NULL, "limiter created");
	TAP_OK(t, !auth_limiter_blocked(lim, "192.0.2.1", 1000), "unknown address not blocked");
	fail_n(lim, "192.0.2.1", 2, 1000);
	TAP_OK(t, !auth_limiter_blocked(lim, "192.0.2.1", 1000), "2 failures (under): not blocked");
	auth_limiter_failure(lim, "192.0.2.1", 1001);
	TAP_OK(t, auth_limiter_blocked(lim, "192.0.2.1", 1001), "3 failures (at the limit): blocked");
	auth_limiter_failure(lim, "192.0.2.1", 1002);
	TAP_OK(t, auth_limiter_blocked(lim, "192.0.2.1", 1002), "4 failures (over): blocked");
	TAP_OK(t, !auth_limiter_blocked(lim, "192.0.2.10", 1002), "another address is not blocked");
	TAP_OK(t, !auth_limiter_blocked(lim, "192.0.2.", 1002), "a prefix of the address is not blocked");
	auth_limiter_free(lim);
}

/* test_window - the failures age out one by one; spread-out failures never block. */
static void test_window(struct tap *t)
{
	struct auth_limiter *lim = auth_limiter_new(3, 60, 100);

	auth_limiter_failure(lim, "198.51.100.7", 0);
	auth_limiter_failure(lim, "198.51.100.7", 10);
	auth_limiter_failure(lim, "198.51.100.7", 20);
	TAP_OK(t, auth_limiter_blocked(lim, "198.51.100.7", 59), "blocked at t=59 (all 3 within 60 s)");
	TAP_OK(t, !auth_limiter_blocked(lim, "198.51.100.7", 60), "free at t=60: the first failure aged out");
	auth_limiter_failure(lim, "198.51.100.7", 61);
	TAP_OK(t, auth_limiter_blocked(lim, "198.51.100.7", 61), "one more failure at t=61 blocks again");
	TAP_OK(t, !auth_limiter_blocked(lim, "198.51.100.7", 70), "free at t=70");
	TAP_OK(t, !auth_limiter_blocked(lim, "198.51.100.7", 1000), "long after: free (and forgotten)");
	auth_limiter_failure(lim, "198.51.100.7", 1001);
	auth_limiter_failure(lim, "198.51.100.7", 1002);
	TAP_OK(t, !auth_limiter_blocked(lim, "198.51.100.7", 1002), "old failures do not count after expiry");

	for (int64_t now = 2000; now < 3000; now += 30)
		auth_limiter_failure(lim, "198.51.100.8", now);
	TAP_OK(t, !auth_limiter_blocked(lim, "198.51.100.8", 3000), "one failure every 30 s never blocks");
	auth_limiter_free(lim);
}

/* test_ipv6 - IPv6 text keys, including the longest form, are exact. */
static void test_ipv6(struct tap *t)
{
	struct auth_limiter *lim = auth_limiter_new(2, 300, 100);
	const char *longest = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";

	fail_n(lim, "2001:db8::1", 2, 5);
	TAP_OK(t, auth_limiter_blocked(lim, "2001:db8::1", 6), "IPv6 address blocked");
	TAP_OK(t, !auth_limiter_blocked(lim, "2001:db8::2", 6), "neighbour IPv6 address not blocked");
	fail_n(lim, longest, 2, 5);
	TAP_OK(t, auth_limiter_blocked(lim, longest, 6), "45-character IPv6 text works as a key");
	fail_n(lim, "fe80::1%eth0", 1, 5);
	TAP_OK(t, !auth_limiter_blocked(lim, "fe80::1", 6), "scoped and unscoped addresses differ");
	auth_limiter_free(lim);
}

/* test_eviction - never more than max_entries; the least recently failed goes first. */
static void test_eviction(struct tap *t)
{
	struct auth_limiter *lim = auth_limiter_new(2, 3600, 64);
	char ip[64];
	int blocked = 0;

	fail_n(lim, "203.0.113.1", 2, 100);	/* the oldest failer */
	fail_n(lim, "203.0.113.2", 2, 100);
	auth_limiter_failure(lim, "203.0.113.2", 101);	/* .2 failed again: now recent */
	for (int i = 0; i < 62; i++) {
		snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 256, i % 256);
		fail_n(lim, ip, 2, 200 + i);
	}
	TAP_OK(t, auth_limiter_blocked(lim, "203.0.113.1", 300), "full table: all 64 still tracked");
	snprintf(ip, sizeof(ip), "10.1.0.0");
	fail_n(lim, ip, 2, 300);
	TAP_OK(t, !auth_limiter_blocked(lim, "203.0.113.1", 300), "65th address evicts the least recently failed");
	TAP_OK(t, auth_limiter_blocked(lim, "203.0.113.2", 300), "a more recent failer is kept");
	TAP_OK(t, auth_limiter_blocked(lim, "10.1.0.0", 300), "the new address is tracked");

	for (int i = 0; i < 100000; i++) {
		snprintf(ip, sizeof(ip), "2001:db8::%x:%x", i >> 16, i & 0xffff);
		fail_n(lim, ip, 2, 1000 + i / 100);
	}
	for (int i = 0; i < 100000; i++) {
		snprintf(ip, sizeof(ip), "2001:db8::%x:%x", i >> 16, i & 0xffff);
		blocked += auth_limiter_blocked(lim, ip, 2000);
	}
	TAP_OK(t, blocked == 64, "after 100000 addresses exactly 64 are tracked (%d)", blocked);
	TAP_OK(t, auth_limiter_blocked(lim, "2001:db8::1:869f", 2000), "the newest address is among them");
	auth_limiter_free(lim);
}

/* test_edges - zero sizes disable the limiter instead of misbehaving. */
static void test_edges(struct tap *t)
{
	struct auth_limiter *lim = auth_limiter_new(0, 60, 10);

	fail_n(lim, "192.0.2.1", 10, 1);
	TAP_OK(t, !auth_limiter_blocked(lim, "192.0.2.1", 1), "max_failures 0: never blocks");
	auth_limiter_free(lim);
	lim = auth_limiter_new(3, 60, 0);
	fail_n(lim, "192.0.2.1", 10, 1);
	TAP_OK(t, lim != NULL && !auth_limiter_blocked(lim, "192.0.2.1", 1), "max_entries 0: tracks nothing");
	auth_limiter_free(lim);
	lim = auth_limiter_new(1, 60, 1);
	auth_limiter_failure(lim, "192.0.2.1", 1);
	TAP_OK(t, auth_limiter_blocked(lim, "192.0.2.1", 1), "max_failures 1: one failure blocks");
	auth_limiter_failure(lim, "192.0.2.2", 2);
	TAP_OK(t, !auth_limiter_blocked(lim, "192.0.2.1", 2) && auth_limiter_blocked(lim, "192.0.2.2", 2),
	       "one slot: the second address replaces the first");
	auth_limiter_free(lim);
	auth_limiter_free(NULL);
	TAP_OK(t, 1, "auth_limiter_free(NULL) is fine");
}

int main(void)
{
	struct tap t = { 0 };

	test_limit(&t);
	test_window(&t);
	test_ipv6(&t);
	test_eviction(&t);
	test_edges(&t);
	return tap_done(&t);
}
