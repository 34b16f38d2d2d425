/*
 * limiter.c - unit tests for auth/limiter.c: under, at and over the
 * failure limit, the window sliding, expiry, the client keys (IPv4
 * address, IPv6 /64, IPv4-mapped as IPv4), attempts in flight counted
 * against the limit, and the bound on tracked clients with
 * least-recently-active eviction that never drops an attempt in flight.
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

/* key_is - auth_limiter_key(ip) is want. */
static bool key_is(const char *ip, const char *want)
{
	char buf[AUTH_LIMITER_KEY_MAX];
	const char *k = auth_limiter_key(ip, buf, sizeof(buf));

	return k != NULL && strcmp(k, want) == 0;
}

/* test_keys - what a client is counted as. */
static void test_keys(struct tap *t)
{
	char small[8];

	TAP_OK(t, key_is("192.0.2.1", "192.0.2.1"), "IPv4: the address");
	TAP_OK(t, key_is("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"), "IPv6: the /64");
	TAP_OK(t, key_is("2001:DB8:1:2::1", "2001:db8:1:2::/64"), "IPv6 in capitals: the same /64");
	TAP_OK(t, key_is("::1", "::/64"), "::1: ::/64");
	TAP_OK(t, key_is("::ffff:192.0.2.7", "192.0.2.7"), "IPv4-mapped IPv6: the IPv4 address");
	TAP_OK(t, key_is("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", "ffff:ffff:ffff:ffff::/64"),
	       "the longest IPv6 text: its /64");
	TAP_OK(t, key_is("fe80::1%eth0", "fe80::1%eth0"), "text inet_pton refuses is its own key");
	TAP_OK(t, auth_limiter_key("192.0.2.1", small, sizeof(small)) == NULL, "a short buffer: NULL");
}

/* test_ipv6 - an IPv6 client is its /64; mapped IPv4 is IPv4. */
static void test_ipv6(struct tap *t)
{
	struct auth_limiter *lim = auth_limiter_new(2, 300, 100);
	const char *longest = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";

	auth_limiter_failure(lim, "2001:db8::1", 5);
	auth_limiter_failure(lim, "2001:db8::ffff:2", 5);
	TAP_OK(t, auth_limiter_blocked(lim, "2001:db8::1", 6),
	       "two failures from two addresses of one /64 block it");
	TAP_OK(t, auth_limiter_blocked(lim, "2001:db8::abcd:1234:5678:9abc", 6),
	       "... for every address in that /64");
	TAP_OK(t, !auth_limiter_blocked(lim, "2001:db8:0:1::1", 6), "the next /64 is not blocked");
	fail_n(lim, longest, 2, 5);
	TAP_OK(t, auth_limiter_blocked(lim, longest, 6), "45-character IPv6 text works");
	fail_n(lim, "fe80::1%eth0", 2, 5);
	TAP_OK(t, !auth_limiter_blocked(lim, "fe80::1", 6), "scoped and unscoped addresses differ");
	fail_n(lim, "::ffff:198.51.100.9", 2, 5);
	TAP_OK(t, auth_limiter_blocked(lim, "198.51.100.9", 6), "IPv4-mapped failures count for the IPv4 address");
	TAP_OK(t, !auth_limiter_blocked(lim, "::ffff:198.51.100.10", 6), "... and not for its neighbour");
	auth_limiter_free(lim);
}

/* test_inflight - attempts in flight count until they end. */
static void test_inflight(struct tap *t)
{
	struct auth_limiter *lim = auth_limiter_new(5, 600, 100);
	unsigned admitted = 0, checks = 0;

	/* 20 connections all start an attempt before any answer is back. */
	for (int i = 0; i < 20; i++)
		admitted += auth_limiter_begin(lim, "192.0.2.50", 1000);
	TAP_OK(t, admitted == 5, "20 parallel attempts, limit 5: 5 admitted (%u)", admitted);
	TAP_OK(t, auth_limiter_inflight(lim, "192.0.2.50") == 5, "5 in flight");
	TAP_OK(t, auth_limiter_blocked(lim, "192.0.2.50", 1000), "blocked while they run");
	for (int i = 0; i < 5; i++) {
		auth_limiter_end(lim, "192.0.2.50", true, 1001);
		checks++;
		/* each connection tries again as soon as its failure is back */
		if (auth_limiter_begin(lim, "192.0.2.50", 1001))
			checks += 100;
	}
	TAP_OK(t, checks == 5, "after the 5 fail, no connection gets another attempt (%u)", checks);
	TAP_OK(t, auth_limiter_inflight(lim, "192.0.2.50") == 0, "nothing in flight");
	TAP_OK(t, !auth_limiter_begin(lim, "192.0.2.50", 1599), "still refused at the end of the window");
	TAP_OK(t, auth_limiter_begin(lim, "192.0.2.50", 1601), "admitted once the failures age out");
	auth_limiter_end(lim, "192.0.2.50", false, 1601);

	/* Attempts that end without a failure give their place back. */
	for (int i = 0; i < 5; i++)
		auth_limiter_begin(lim, "2001:db8:5::1", 2000);
	TAP_OK(t, !auth_limiter_begin(lim, "2001:db8:5::2", 2000),
	       "5 in flight from a /64: a sixth from another address of it is refused");
	for (int i = 0; i < 5; i++)
		auth_limiter_end(lim, "2001:db8:5::1", false, 2001);
	TAP_OK(t, !auth_limiter_blocked(lim, "2001:db8:5::2", 2001), "5 successes later: not blocked");
	TAP_OK(t, auth_limiter_begin(lim, "2001:db8:5::3", 2001), "and admitted");
	auth_limiter_end(lim, "2001:db8:5::3", true, 2002);
	for (int i = 0; i < 4; i++)
		TAP_OK(t, auth_limiter_begin(lim, "2001:db8:5::4", 2003), "attempt %d after 1 failure admitted",
		       i + 1);
	TAP_OK(t, !auth_limiter_begin(lim, "2001:db8:5::4", 2003), "1 failure + 4 in flight: the 6th refused");
	auth_limiter_end(lim, "2001:db8:5::1", false, 2003);
	TAP_OK(t, auth_limiter_begin(lim, "2001:db8:5::4", 2003), "one ends well: room for one more");

	/* An in-flight client survives a long expiry: nothing is forgotten. */
	TAP_OK(t, auth_limiter_begin(lim, "203.0.113.77", 3000), "an attempt starts");
	TAP_OK(t, !auth_limiter_blocked(lim, "203.0.113.77", 999999), "not blocked much later");
	TAP_OK(t, auth_limiter_inflight(lim, "203.0.113.77") == 1, "... and still in flight");
	auth_limiter_free(lim);
}

/* test_inflight_eviction - a full table never drops a client with an attempt in flight. */
static void test_inflight_eviction(struct tap *t)
{
	struct auth_limiter *lim = auth_limiter_new(2, 3600, 4);
	char ip[64];

	TAP_OK(t, auth_limiter_begin(lim, "192.0.2.1", 100), "A: attempt in flight (oldest)");
	TAP_OK(t, auth_limiter_begin(lim, "192.0.2.1", 100), "A: a second one");
	for (int i = 0; i < 10; i++) {
		snprintf(ip, sizeof(ip), "10.0.0.%d", i);
		auth_limiter_failure(lim, ip, 200 + i);
	}
	TAP_OK(t, auth_limiter_inflight(lim, "192.0.2.1") == 2, "A kept through 10 newer clients");
	TAP_OK(t, !auth_limiter_begin(lim, "192.0.2.1", 300), "and still counted: a third is refused");
	for (int i = 0; i < 3; i++) {
		snprintf(ip, sizeof(ip), "198.51.100.%d", i);
		TAP_OK(t, auth_limiter_begin(lim, ip, 400), "client %d in flight", i);
	}
	TAP_OK(t, !auth_limiter_begin(lim, "203.0.113.9", 400),
	       "every slot has an attempt in flight: a new client is refused (fails closed)");
	auth_limiter_end(lim, "198.51.100.0", false, 401);
	TAP_OK(t, auth_limiter_begin(lim, "203.0.113.9", 401), "one ends: the new client fits");
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
		snprintf(ip, sizeof(ip), "2001:db8:%x:%x::1", i >> 16, i & 0xffff);
		fail_n(lim, ip, 2, 1000 + i / 100);
	}
	for (int i = 0; i < 100000; i++) {
		snprintf(ip, sizeof(ip), "2001:db8:%x:%x::1", i >> 16, i & 0xffff);
		blocked += auth_limiter_blocked(lim, ip, 2000);
	}
	TAP_OK(t, blocked == 64, "after 100000 /64s exactly 64 are tracked (%d)", blocked);
	TAP_OK(t, auth_limiter_blocked(lim, "2001:db8:1:869f::2", 2000), "the newest /64 is among them");
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
	test_keys(&t);
	test_ipv6(&t);
	test_inflight(&t);
	test_inflight_eviction(&t);
	test_eviction(&t);
	test_edges(&t);
	return tap_done(&t);
}
