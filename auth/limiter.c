/*
 * limiter.c - the per-client-address AUTH failure limiter: an address
 * with max_failures failed AUTH attempts within the last window seconds
 * is refused until the oldest of them ages out.
 *
 * A client is its IPv4 address, or its IPv6 /64: one IPv6 host usually
 * holds a whole /64 and could otherwise take a fresh address for every
 * guess. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) counts as IPv4.
 *
 * Attempts in flight count as failures until they end: an attempt is
 * admitted (auth_limiter_begin) only while recorded failures plus
 * attempts still running stay below max_failures, and it ends
 * (auth_limiter_end) as a failure or not. So N parallel connections
 * that all start guessing before any answer is back still get no more
 * than max_failures password checks per window, not N.
 *
 * Layout: one allocation of max_entries slots (key, attempts in flight,
 * a ring of its last max_failures failure times), a hash of chains over
 * the slots, and a list ordered by last activity (an attempt begun or a
 * failure). When every slot is taken, the least recently active client
 * with nothing in flight is forgotten: a slot with an attempt in flight
 * is never dropped, or its count would be lost.
 *
 * Must not: grow past max_entries, read the clock (the caller passes
 * now, so tests control time), do I/O, or lock accounts - it counts per
 * address only, so a guessing client cannot lock a user out.
 *
 * Follows: RFC 4954 §6 (454 4.7.0 for a temporary refusal is the SMTP
 * session's business; this file only answers "blocked or not").
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"

#define LIM_IP_MAX AUTH_LIMITER_KEY_MAX	/* longest IPv6 text is 45 (+ "/64"); longer keys are cut */
#define LIM_NONE UINT32_MAX	/* "no slot" in chains and lists */

struct lim_entry {
	char ip[LIM_IP_MAX];	/* the key: "192.0.2.1" or "2001:db8::/64" */
	uint32_t chain;		/* next in hash bucket, or next free slot */
	uint32_t older, newer;	/* neighbours in last-activity order */
	unsigned nfail;		/* failure times in the ring, <= max_failures */
	unsigned head;		/* ring index the next failure goes to */
	unsigned inflight;	/* attempts begun and not yet ended */
};

struct auth_limiter {
	unsigned max_failures;
	int64_t window;
	uint32_t nslots;
	struct lim_entry *slot;
	int64_t *times;		/* nslots rings of max_failures */
	uint32_t *bucket;	/* nbuckets chain heads */
	uint32_t mask;		/* nbuckets - 1 */
	uint32_t free_list;
	uint32_t oldest, newest;	/* ends of the last-activity list */
};

/* lim_hash - FNV-1a over the address text. */
static uint32_t lim_hash(const char *ip)
{
	uint32_t h = 2166136261u;

	for (; *ip != '\0'; ip++)
		h = (h ^ (unsigned char)*ip) * 16777619u;
	return h;
}

/* lim_buckets - a power of two at least twice the slots, so chains stay short. */
static uint32_t lim_buckets(uint32_t nslots)
{
	uint32_t n = 1;

	while (n < nslots * 2u && n < (1u << 30))
		n <<= 1;
	return n;
}

/* auth_limiter_new - an empty limiter; NULL when out of memory or the sizes overflow. */
struct auth_limiter *auth_limiter_new(unsigned max_failures, unsigned window,
				      size_t max_entries)
{
	struct auth_limiter *lim;
	uint32_t i;

	/* Keep slot indices and the bucket count in 32 bits. */
	if (max_entries > (1u << 28) || max_failures > (1u << 16))
		return NULL;
	lim = calloc(1, sizeof(*lim));
	if (lim == NULL)
		return NULL;
	lim->max_failures = max_failures;
	lim->window = window;
	lim->nslots = (uint32_t)max_entries;
	lim->mask = lim_buckets(lim->nslots) - 1;
	lim->slot = calloc(lim->nslots ? lim->nslots : 1, sizeof(*lim->slot));
	lim->times = calloc((size_t)lim->nslots * max_failures + 1, sizeof(*lim->times));
	lim->bucket = malloc(((size_t)lim->mask + 1) * sizeof(*lim->bucket));
	if (lim->slot == NULL || lim->times == NULL || lim->bucket == NULL) {
		auth_limiter_free(lim);
		return NULL;
	}
	for (i = 0; i <= lim->mask; i++)
		lim->bucket[i] = LIM_NONE;
	for (i = 0; i < lim->nslots; i++)
		lim->slot[i].chain = i + 1 < lim->nslots ? i + 1 : LIM_NONE;
	lim->free_list = lim->nslots ? 0 : LIM_NONE;
	lim->oldest = lim->newest = LIM_NONE;
	return lim;
}

/* auth_limiter_free - frees everything; NULL is fine. */
void auth_limiter_free(struct auth_limiter *lim)
{
	if (lim == NULL)
		return;
	free(lim->slot);
	free(lim->times);
	free(lim->bucket);
	free(lim);
}

/* lim_find - the slot holding ip, or LIM_NONE. */
static uint32_t lim_find(const struct auth_limiter *lim, const char *ip)
{
	uint32_t i = lim->bucket[lim_hash(ip) & lim->mask];

	while (i != LIM_NONE && strcmp(lim->slot[i].ip, ip) != 0)
		i = lim->slot[i].chain;
	return i;
}

/* lim_unlist - takes slot i out of the last-failure list. */
static void lim_unlist(struct auth_limiter *lim, uint32_t i)
{
	struct lim_entry *e = &lim->slot[i];

	if (e->older != LIM_NONE)
		lim->slot[e->older].newer = e->newer;
	else
		lim->oldest = e->newer;
	if (e->newer != LIM_NONE)
		lim->slot[e->newer].older = e->older;
	else
		lim->newest = e->older;
	e->older = e->newer = LIM_NONE;
}

/* lim_list_newest - puts slot i at the newest end of the list. */
static void lim_list_newest(struct auth_limiter *lim, uint32_t i)
{
	struct lim_entry *e = &lim->slot[i];

	e->older = lim->newest;
	e->newer = LIM_NONE;
	if (lim->newest != LIM_NONE)
		lim->slot[lim->newest].newer = i;
	else
		lim->oldest = i;
	lim->newest = i;
}

/* lim_remove - forgets slot i: out of its bucket and the list, onto the free list. */
static void lim_remove(struct auth_limiter *lim, uint32_t i)
{
	uint32_t *p = &lim->bucket[lim_hash(lim->slot[i].ip) & lim->mask];

	while (*p != i)
		p = &lim->slot[*p].chain;
	*p = lim->slot[i].chain;
	lim_unlist(lim, i);
	lim->slot[i].chain = lim->free_list;
	lim->free_list = i;
}

/*
 * lim_evict - frees the least recently active slot with no attempt in
 * flight; false when every slot has one. The walk passes at most as
 * many slots as there are attempts in flight.
 */
static bool lim_evict(struct auth_limiter *lim)
{
	uint32_t i = lim->oldest;

	while (i != LIM_NONE && lim->slot[i].inflight > 0)
		i = lim->slot[i].newer;
	if (i == LIM_NONE)
		return false;
	lim_remove(lim, i);
	return true;
}

/* lim_add - a fresh slot for ip, forgetting the least recently active when full; LIM_NONE when none can go. */
static uint32_t lim_add(struct auth_limiter *lim, const char *ip)
{
	uint32_t i, b;
	struct lim_entry *e;

	if (lim->free_list == LIM_NONE && !lim_evict(lim))
		return LIM_NONE;
	i = lim->free_list;
	e = &lim->slot[i];
	lim->free_list = e->chain;
	memset(e, 0, sizeof(*e));
	/* The caller passed ip through auth_limiter_key: it fits. */
	memcpy(e->ip, ip, strlen(ip) + 1);
	b = lim_hash(e->ip) & lim->mask;
	e->chain = lim->bucket[b];
	lim->bucket[b] = i;
	e->older = e->newer = LIM_NONE;
	lim_list_newest(lim, i);
	return i;
}

/* lim_time - the k-th most recent failure of slot i (k = 0 is the newest). */
static int64_t lim_time(const struct auth_limiter *lim, uint32_t i, unsigned k)
{
	const struct lim_entry *e = &lim->slot[i];
	unsigned pos = (e->head + lim->max_failures - 1 - k) % lim->max_failures;

	return lim->times[(size_t)i * lim->max_failures + pos];
}

/* lim_expired - none of slot i's failures is within the window any more. */
static bool lim_expired(const struct auth_limiter *lim, uint32_t i, int64_t now)
{
	return lim->slot[i].nfail == 0 || now - lim_time(lim, i, 0) >= lim->window;
}

/* lim_live - how many of slot i's failures are within the window. */
static unsigned lim_live(const struct auth_limiter *lim, uint32_t i, int64_t now)
{
	unsigned k = 0;

	while (k < lim->slot[i].nfail && now - lim_time(lim, i, k) < lim->window)
		k++;
	return k;
}

/* lim_cut - text cut to the stored key length, so lookups match what lim_add stored. */
static const char *lim_cut(const char *ip, char *buf)
{
	if (strlen(ip) < LIM_IP_MAX)
		return ip;
	memcpy(buf, ip, LIM_IP_MAX - 1);
	buf[LIM_IP_MAX - 1] = '\0';
	return buf;
}

/*
 * auth_limiter_key - see auth.h. Text inet_pton does not take (a zone
 * id, say) is its own key, cut to the stored length.
 */
const char *auth_limiter_key(const char *ip, char *buf, size_t size)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	uint8_t a[16];
	char text[INET6_ADDRSTRLEN];
	const uint8_t *bytes = a;
	const char *suffix = "";
	int family = AF_INET6;

	if (size < LIM_IP_MAX)
		return NULL;
	if (inet_pton(AF_INET, ip, a) == 1) {
		family = AF_INET;
	} else if (inet_pton(AF_INET6, ip, a) != 1) {
		return lim_cut(ip, buf);
	} else if (memcmp(a, mapped, sizeof(mapped)) == 0) {
		family = AF_INET;	/* an IPv4 client on an IPv6 socket */
		bytes = a + 12;
	} else {
		memset(a + 8, 0, 8);	/* the interface identifier: the rest is the /64 */
		suffix = "/64";
	}
	if (inet_ntop(family, bytes, text, sizeof(text)) == NULL)
		return lim_cut(ip, buf);
	/* Fits: at most 45 characters and "/64" in LIM_IP_MAX. */
	if (snprintf(buf, size, "%s%s", text, suffix) < 0)
		return lim_cut(ip, buf);
	return buf;
}

/* lim_lookup - the slot of ip's key (LIM_NONE when untracked), the key in buf. */
static uint32_t lim_lookup(const struct auth_limiter *lim, const char *ip, char *buf,
			   const char **key)
{
	*key = auth_limiter_key(ip, buf, LIM_IP_MAX);
	return lim_find(lim, *key);
}

/* lim_off - a limiter that tracks nothing and refuses nothing. */
static bool lim_off(const struct auth_limiter *lim)
{
	return lim->max_failures == 0 || lim->nslots == 0;
}

/*
 * auth_limiter_blocked - true when ip's failures within the last window
 * seconds plus its attempts in flight reach max_failures. Forgets ip
 * when all its failures are older and nothing is in flight.
 */
bool auth_limiter_blocked(struct auth_limiter *lim, const char *ip, int64_t now)
{
	char buf[LIM_IP_MAX];
	const char *key;
	uint32_t i;

	if (lim_off(lim))
		return false;
	i = lim_lookup(lim, ip, buf, &key);
	if (i == LIM_NONE)
		return false;
	if (lim->slot[i].inflight == 0 && lim_expired(lim, i, now)) {
		lim_remove(lim, i);
		return false;
	}
	return (uint64_t)lim_live(lim, i, now) + lim->slot[i].inflight >= lim->max_failures;
}

/* lim_touch - slot i was active now: newest end of the list. */
static void lim_touch(struct auth_limiter *lim, uint32_t i)
{
	lim_unlist(lim, i);
	lim_list_newest(lim, i);
}

/*
 * auth_limiter_begin - see auth.h. Refuses, too, when the table is full
 * of attempts in flight (more parallel AUTHs than max_entries): failing
 * closed, since a count that cannot be kept cannot limit anything.
 */
bool auth_limiter_begin(struct auth_limiter *lim, const char *ip, int64_t now)
{
	char buf[LIM_IP_MAX];
	const char *key;
	uint32_t i;

	if (lim_off(lim))
		return true;
	if (auth_limiter_blocked(lim, ip, now))
		return false;
	i = lim_lookup(lim, ip, buf, &key);
	if (i == LIM_NONE)
		i = lim_add(lim, key);
	if (i == LIM_NONE)
		return false;
	lim->slot[i].inflight++;
	lim_touch(lim, i);
	return true;
}

/* auth_limiter_end - see auth.h. */
void auth_limiter_end(struct auth_limiter *lim, const char *ip, bool failed, int64_t now)
{
	char buf[LIM_IP_MAX];
	const char *key;
	uint32_t i;

	if (lim_off(lim))
		return;
	i = lim_lookup(lim, ip, buf, &key);
	if (i != LIM_NONE && lim->slot[i].inflight > 0)
		lim->slot[i].inflight--;
	if (failed)
		auth_limiter_failure(lim, ip, now);
}

/* auth_limiter_inflight - attempts in flight for ip's key (tests, logs). */
unsigned auth_limiter_inflight(const struct auth_limiter *lim, const char *ip)
{
	char buf[LIM_IP_MAX];
	const char *key;
	uint32_t i;

	if (lim_off(lim))
		return 0;
	i = lim_lookup(lim, ip, buf, &key);
	return i == LIM_NONE ? 0 : lim->slot[i].inflight;
}

/* auth_limiter_failure - records one failed AUTH from ip at now. */
void auth_limiter_failure(struct auth_limiter *lim, const char *ip, int64_t now)
{
	char buf[LIM_IP_MAX];
	const char *key;
	struct lim_entry *e;
	uint32_t i;

	if (lim_off(lim))
		return;
	i = lim_lookup(lim, ip, buf, &key);
	if (i != LIM_NONE && lim_expired(lim, i, now))
		lim->slot[i].nfail = 0;
	if (i == LIM_NONE)
		i = lim_add(lim, key);
	if (i == LIM_NONE)
		return;	/* every slot has an attempt in flight: begin refuses meanwhile */
	e = &lim->slot[i];
	lim->times[(size_t)i * lim->max_failures + e->head] = now;
	e->head = (e->head + 1) % lim->max_failures;
	if (e->nfail < lim->max_failures)
		e->nfail++;
	lim_touch(lim, i);
}
