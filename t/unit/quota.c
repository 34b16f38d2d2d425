/*
 * quota.c - unit tests for the sending quotas (policy/quota.c): the
 * limit holds within a window, a refused attempt is not counted, the
 * window slides (half of the last minute still counts half), keys are
 * per login without case, the first refusal of a window is the one to
 * log, and the table never holds more than max_keys.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "t/unit/tap.h"

#define MINUTE 60000ull
#define DAY 86400000ull

static void test_minute(struct tap *t)
{
	struct policy_quota *q = policy_quota_new(100);
	struct policy_quota_result r;
	uint64_t now = 10 * MINUTE;	/* the start of a window */
	int ok = 1;

	if (!q)
		abort();
	for (int i = 1; i <= 30; i++)
		ok &= policy_quota_message(q, "alice", now + (uint64_t)i, 30, &r) == POLICY_QUOTA_OK &&
		      r.count == (uint64_t)i;
	TAP_OK(t, ok, "30 messages in a minute pass, counted 1..30");
	TAP_OK(t, policy_quota_message(q, "ALICE", now + 40, 30, &r) == POLICY_QUOTA_OVER &&
	       r.count == 31 && r.warn, "the 31st (any case) is over, would make 31, and is logged");
	TAP_OK(t, policy_quota_message(q, "alice", now + 50, 30, &r) == POLICY_QUOTA_OVER && !r.warn,
	       "the 32nd: over, not logged again in this window");
	TAP_OK(t, policy_quota_message(q, "bob", now + 60, 30, &r) == POLICY_QUOTA_OK,
	       "another login has its own count");
	/* 1.5 minutes later: half of the full window still counts (15) */
	TAP_OK(t, policy_quota_message(q, "alice", now + MINUTE + MINUTE / 2, 30, &r) == POLICY_QUOTA_OK &&
	       r.count == 16, "the window slides: half a minute on, 15 of 30 still count (+1 = %llu)",
	       (unsigned long long)r.count);
	TAP_OK(t, policy_quota_message(q, "alice", now + 3 * MINUTE, 30, &r) == POLICY_QUOTA_OK &&
	       r.count == 1, "two quiet minutes: a fresh start");
	TAP_OK(t, policy_quota_message(q, "carol", now, 0, &r) == POLICY_QUOTA_OK, "limit 0: none");
	policy_quota_free(q);
}

static void test_day_and_bound(struct tap *t)
{
	struct policy_quota *q = policy_quota_new(3);
	struct policy_quota_result r;
	char key[16];

	if (!q)
		abort();
	for (int i = 0; i < 5; i++)
		(void)policy_quota_recipient(q, "bob", DAY + (uint64_t)i, 5, &r);
	TAP_OK(t, policy_quota_recipient(q, "bob", DAY + 10, 5, &r) == POLICY_QUOTA_OVER &&
	       r.count == 6, "the 6th recipient of a day over a limit of 5");
	TAP_OK(t, policy_quota_recipient(q, "bob", 3 * DAY, 5, &r) == POLICY_QUOTA_OK,
	       "two days later: allowed again");
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "u%d", i);
		(void)policy_quota_message(q, key, 4 * DAY + (uint64_t)i, 30, &r);
	}
	TAP_OK(t, policy_quota_keys(q) == 3, "never more than max_keys (%zu)", policy_quota_keys(q));
	policy_quota_free(q);
}

static void test_spread(struct tap *t)
{
	struct policy_quota *q = policy_quota_new(10);
	char addr[32];
	struct policy_login_result r = { 0 };
	bool warned_early = false;
	unsigned n = 0;

	if (!q)
		abort();
	for (int i = 1; i <= 10; i++) {
		snprintf(addr, sizeof(addr), "192.0.2.%d", i);
		n = policy_quota_login(q, "alice", addr, 5 * 3600000ull + (uint64_t)i, 1, 10, &r);
		warned_early |= r.warn || !r.new_today || !r.new_hour;
	}
	TAP_OK(t, n == 10 && !warned_early, "ten addresses in an hour: counted, new today, no warning");
	n = policy_quota_login(q, "alice", "192.0.2.1", 5 * 3600000ull + 20, 1, 10, &r);
	TAP_OK(t, n == 10 && !r.warn && !r.new_today && !r.new_hour,
	       "an address seen before is not counted again");
	n = policy_quota_login(q, "alice", "198.51.100.1", 5 * 3600000ull + 30, 1, 10, &r);
	TAP_OK(t, n == 11 && r.warn, "the eleventh: warn");
	n = policy_quota_login(q, "alice", "198.51.100.2", 5 * 3600000ull + 40, 1, 10, &r);
	TAP_OK(t, n == 12 && !r.warn, "once an hour");
	n = policy_quota_login(q, "alice", "192.0.2.1", 6 * 3600000ull, 1, 10, &r);
	TAP_OK(t, n == 1 && !r.warn && !r.new_today && r.new_hour,
	       "the next hour starts over; the day does not");
	(void)policy_quota_login(q, "alice", "192.0.2.1", 6 * 3600000ull + 1, 2, 10, &r);
	TAP_OK(t, r.new_today, "a new day does");
	policy_quota_seed_recipients(q, "bob", 5, 7 * 3600000ull);
	{
		struct policy_quota_result qr;

		TAP_OK(t, policy_quota_recipient(q, "bob", 7 * 3600000ull + 1, 5, &qr) ==
		       POLICY_QUOTA_OVER && qr.count == 6, "seeded recipients count (a restart)");
	}
	policy_quota_free(q);
}

static void test_limit_map(struct tap *t)
{
	static const char text[] = "# x\nalice: 2 -\nBob@realm.test: 0 7\n[192.0.2.7]: 100 100\n";
	char err[256];
	struct policy_limit_map *m = policy_limit_map_parse(text, sizeof(text) - 1, "f", err,
							    sizeof(err));
	struct policy_limits g = { 30, 2000 }, l;

	TAP_OK(t, m != NULL, "a limit map parses %s", m ? "" : err);
	l = policy_limits_for(m, "alice@realm.test", g);
	TAP_OK(t, l.messages_per_minute == 2 && l.recipients_per_day == 2000,
	       "alice (any realm): 2 a minute, the global 2000 a day");
	l = policy_limits_for(m, "bob@REALM.test", g);
	TAP_OK(t, l.messages_per_minute == 0 && l.recipients_per_day == 7, "bob@realm: none, 7");
	l = policy_limits_for(m, "bob@other.test", g);
	TAP_OK(t, l.messages_per_minute == 30, "bob@ another realm: the global limits");
	l = policy_limits_for(m, "[192.0.2.7]", g);
	TAP_OK(t, l.recipients_per_day == 100, "a trusted address");
	policy_limit_map_free(m);
	TAP_OK(t, policy_limit_map_parse("a: 1\n", 5, "f", err, sizeof(err)) == NULL &&
	       strncmp(err, "f:1: expected two", 17) == 0, "one limit only: %s", err);
	TAP_OK(t, policy_limit_map_parse("a: 1 2 3\n", 9, "f", err, sizeof(err)) == NULL,
	       "three limits");
	TAP_OK(t, policy_limit_map_parse("a: -1 2\n", 8, "f", err, sizeof(err)) == NULL,
	       "a negative number");
}

int main(void)
{
	struct tap t = { 0 };

	test_minute(&t);
	test_day_and_bound(&t);
	test_spread(&t);
	test_limit_map(&t);
	return tap_done(&t);
}
