/*
 * limiter.c - the per-client-address AUTH failure limiter: an address
 * with max_failures failed AUTH attempts within the last window seconds
 * is refused until the oldest of them ages out.
 *
 * Layout: one allocation of max_entries slots (address, a ring of its
 * last max_failures failure times), a hash of chains over the slots, and
 * a list ordered by last failure. When every slot is taken, the address
 * that failed least recently is forgotten: that is also the one whose
 * failures expire first, so expired entries never push out live ones.
 *
 * Must not: grow past max_entries, read the clock (the caller passes
 * now, so tests control time), do I/O, or lock accounts - it counts per
 * address only, so a guessing client cannot lock a user out.
 *
 * Follows: RFC 4954 §6 (454 4.7.0 for a temporary refusal is the SMTP
 * session's business; this file only answers "blocked or not").
 */
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"

#define LIM_IP_MAX 64		/* longest IPv6 text is 45; longer keys are cut */
#define LIM_NONE UINT32_MAX	/* "no slot" in chains and lists */

struct lim_entry {
	char ip[LIM_IP_MAX];
	uint32_t chain;		/* next in hash bucket, or next free slot */
	uint32_t older, newer;	/* neighbours in last-failure order */
	unsigned nfail;		/* failure times in the ring, <= max_failures */
	unsigned head;		/* ring index the next failure goes to */
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
	uint32_t oldest, newest;	/* ends of the last-failure list */
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

/* lim_add - a fresh slot for ip, forgetting the least recent failer when full. */
static uint32_t lim_add(struct auth_limiter *lim, const char *ip)
{
	uint32_t i, b;
	struct lim_entry *e;

	if (lim->free_list == LIM_NONE)
		lim_remove(lim, lim->oldest);
	i = lim->free_list;
	e = &lim->slot[i];
	lim->free_list = e->chain;
	memset(e, 0, sizeof(*e));
	/* The caller passed ip through lim_key: it fits. */
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

/* lim_key - ip cut to the stored key length, so lookups match what lim_add stored. */
static const char *lim_key(const char *ip, char *buf)
{
	if (strlen(ip) < LIM_IP_MAX)
		return ip;
	memcpy(buf, ip, LIM_IP_MAX - 1);
	buf[LIM_IP_MAX - 1] = '\0';
	return buf;
}

/*
 * auth_limiter_blocked - true when ip has max_failures failures within
 * the last window seconds. Forgets ip when all its failures are older.
 */
bool auth_limiter_blocked(struct auth_limiter *lim, const char *ip, int64_t now)
{
	char buf[LIM_IP_MAX];
	uint32_t i;

	if (lim->max_failures == 0 || lim->nslots == 0)
		return false;
	ip = lim_key(ip, buf);
	i = lim_find(lim, ip);
	if (i == LIM_NONE)
		return false;
	if (lim_expired(lim, i, now)) {
		lim_remove(lim, i);
		return false;
	}
	/* The ring holds the last max_failures times; the oldest decides. */
	return lim->slot[i].nfail == lim->max_failures &&
	       now - lim_time(lim, i, lim->max_failures - 1) < lim->window;
}

/* auth_limiter_failure - records one failed AUTH from ip at now. */
void auth_limiter_failure(struct auth_limiter *lim, const char *ip, int64_t now)
{
	char buf[LIM_IP_MAX];
	struct lim_entry *e;
	uint32_t i;

	if (lim->max_failures == 0 || lim->nslots == 0)
		return;
	ip = lim_key(ip, buf);
	i = lim_find(lim, ip);
	if (i != LIM_NONE && lim_expired(lim, i, now))
		lim->slot[i].nfail = 0;
	if (i == LIM_NONE)
		i = lim_add(lim, ip);
	e = &lim->slot[i];
	lim->times[(size_t)i * lim->max_failures + e->head] = now;
	e->head = (e->head + 1) % lim->max_failures;
	if (e->nfail < lim->max_failures)
		e->nfail++;
	lim_unlist(lim, i);
	lim_list_newest(lim, i);
}
