/*
 * rcpt_verify.c - unit tests for recipient verification's pure parts:
 * local_recipient_maps (policy/rcpt_map.c: the three key forms, case,
 * comments, postmap-style values, errors as file:line) and the answer
 * cache (policy/verify_cache.c: positive and negative times to live
 * with injected time, the hard bound with least-recently-used eviction).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "t/unit/tap.h"

static struct policy_rcpt_map *map_of(const char *text, char *err, size_t errlen)
{
	return policy_rcpt_map_parse(text, strlen(text), "rcpts", err, errlen);
}

static void test_map(struct tap *t)
{
	char err[256] = "";
	struct policy_rcpt_map *m = map_of("# users\n\nalice\nBob@Campus.Test  OK\n"
					   "\t@lists.campus.test\r\ncarol # no: a value", err,
					   sizeof(err));

	TAP_OK(t, m != NULL, "a map with comments, blanks, CRLF and values parses (%s)", err);
	if (!m)
		return;
	TAP_OK(t, policy_rcpt_map_count(m) == 4, "four keys");
	TAP_OK(t, policy_rcpt_known(m, "alice@campus.test") &&
	       policy_rcpt_known(m, "ALICE@other.local"), "a local part is known in every domain");
	TAP_OK(t, policy_rcpt_known(m, "bob@campus.test"), "a full address, any case");
	TAP_OK(t, !policy_rcpt_known(m, "bob@other.local"), "... only in its own domain");
	TAP_OK(t, policy_rcpt_known(m, "anyone@lists.campus.test"), "@domain takes every local part");
	TAP_OK(t, !policy_rcpt_known(m, "anyone@campus.test"), "not of another domain");
	TAP_OK(t, !policy_rcpt_known(m, "alic@campus.test") && !policy_rcpt_known(m, "alicex@campus.test"),
	       "not a prefix or an extension");
	TAP_OK(t, policy_rcpt_known(m, "carol@campus.test"), "what follows a blank is ignored");
	TAP_OK(t, !policy_rcpt_known(NULL, "alice@campus.test"), "no map knows nobody");
	policy_rcpt_map_free(m);

	m = map_of("jos\xc3\xa9@xn--bcher-kva.test\n@xn--mnchen-3ya.test\n", err, sizeof(err));
	TAP_OK(t, m && policy_rcpt_known(m, "jos\xc3\xa9@b\xc3\xbc" "cher.test") &&
	       policy_rcpt_known(m, "x@M\xc3\xbcnchen.test") &&
	       !policy_rcpt_known(m, "jos\xc3\xa9@b\xc3\xbc" "cher.test\xc3"),
	       "SMTPUTF8: a recipient's U-label domain is looked up as its A-label");
	policy_rcpt_map_free(m);

	m = map_of("", err, sizeof(err));
	TAP_OK(t, m && policy_rcpt_map_count(m) == 0 && !policy_rcpt_known(m, "a@b"),
	       "an empty map parses and knows nobody");
	policy_rcpt_map_free(m);

	m = map_of("alice\nbob@\n", err, sizeof(err));
	TAP_OK(t, !m && strcmp(err, "rcpts:2: bad key: want LOCALPART, LOCALPART@DOMAIN or @DOMAIN") == 0,
	       "a key ending in @ is an error at file:line (%s)", err);
	m = map_of("# x\na@b@c\n", err, sizeof(err));
	TAP_OK(t, !m && strncmp(err, "rcpts:2: bad key", 16) == 0, "two @ is an error (%s)", err);
	{
		char text[400];

		memset(text, 'x', 300);
		text[300] = '\0';
		m = map_of(text, err, sizeof(err));
		TAP_OK(t, !m && strcmp(err, "rcpts:1: key too long") == 0, "an over-long key (%s)", err);
	}
}

static void test_cache_ttl(struct tap *t)
{
	struct policy_verify_cache *c = policy_verify_cache_new(10, 100, 10);

	TAP_OK(t, c != NULL, "a cache of 10");
	if (!c)
		return;
	TAP_OK(t, policy_verify_cache_get(c, "a@x", 0) == POLICY_VERIFY_UNCACHED, "empty: uncached");
	TAP_OK(t, policy_verify_cache_put(c, "A@X", true, 1000) == 0 &&
	       policy_verify_cache_put(c, "b@x", false, 1000) == 0, "two answers stored");
	TAP_OK(t, policy_verify_cache_get(c, "a@x", 1099) == POLICY_VERIFY_KNOWN,
	       "known, any case, until its positive TTL");
	TAP_OK(t, policy_verify_cache_get(c, "b@x", 1009) == POLICY_VERIFY_UNKNOWN,
	       "unknown until its negative TTL");
	TAP_OK(t, policy_verify_cache_get(c, "b@x", 1010) == POLICY_VERIFY_UNCACHED,
	       "the negative answer expires after 10 s");
	TAP_OK(t, policy_verify_cache_count(c) == 1, "... and leaves the cache");
	TAP_OK(t, policy_verify_cache_get(c, "a@x", 1100) == POLICY_VERIFY_UNCACHED,
	       "the positive one after 100 s");
	TAP_OK(t, policy_verify_cache_put(c, "a@x", false, 2000) == 0 &&
	       policy_verify_cache_put(c, "a@x", true, 2000) == 0 &&
	       policy_verify_cache_count(c) == 1 &&
	       policy_verify_cache_get(c, "a@x", 2050) == POLICY_VERIFY_KNOWN,
	       "a new answer replaces the old one, one entry");
	policy_verify_cache_free(c);
	TAP_OK(t, policy_verify_cache_new(0, 1, 1) == NULL, "a cache of 0 is refused");
}

static void test_cache_bound(struct tap *t)
{
	struct policy_verify_cache *c = policy_verify_cache_new(100, 1000, 1000);
	char addr[64];
	bool all_ok = true;

	if (!c) {
		TAP_OK(t, false, "a cache of 100");
		return;
	}
	for (int i = 0; i < 100000; i++) {
		snprintf(addr, sizeof(addr), "user%d@campus.test", i);
		if (policy_verify_cache_put(c, addr, false, 0) != 0 ||
		    policy_verify_cache_count(c) > 100)
			all_ok = false;
		if (i == 50)	/* touched: the recently used one stays */
			(void)policy_verify_cache_get(c, "user0@campus.test", 1);
	}
	TAP_OK(t, all_ok && policy_verify_cache_count(c) == 100,
	       "100,000 distinct addresses: never more than 100 entries");
	TAP_OK(t, policy_verify_cache_get(c, "user99999@campus.test", 2) == POLICY_VERIFY_UNKNOWN &&
	       policy_verify_cache_get(c, "user99900@campus.test", 2) == POLICY_VERIFY_UNKNOWN,
	       "the newest 100 are there");
	TAP_OK(t, policy_verify_cache_get(c, "user99899@campus.test", 2) == POLICY_VERIFY_UNCACHED,
	       "older ones were evicted");
	policy_verify_cache_free(c);

	c = policy_verify_cache_new(3, 1000, 1000);
	if (!c)
		return;
	(void)policy_verify_cache_put(c, "a@x", true, 0);
	(void)policy_verify_cache_put(c, "b@x", true, 0);
	(void)policy_verify_cache_put(c, "c@x", true, 0);
	(void)policy_verify_cache_get(c, "a@x", 1);	/* a is now the most recent */
	(void)policy_verify_cache_put(c, "d@x", true, 2);
	TAP_OK(t, policy_verify_cache_get(c, "b@x", 3) == POLICY_VERIFY_UNCACHED &&
	       policy_verify_cache_get(c, "a@x", 3) == POLICY_VERIFY_KNOWN,
	       "the least recently used goes, not the oldest stored");
	policy_verify_cache_free(c);
}

int main(void)
{
	struct tap t = { 0 };

	test_map(&t);
	test_cache_ttl(&t);
	test_cache_bound(&t);
	return tap_done(&t);
}
