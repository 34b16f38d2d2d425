/*
 * verify_cache.c - what recipient verification (recipient_verify)
 * learnt about addresses: known or unknown, each until its time to live
 * runs out (recipient_verify_positive_ttl, _negative_ttl, as Postfix's
 * address_verify_positive_expire_time and _negative_expire_time), so a
 * next hop is asked once about an address, not once per message.
 *
 * Keyed by addresses a client chose, so it has a hard bound: at most
 * max entries; when full, the least recently used goes (a dictionary
 * attack then only pushes out old answers, never grows the memory).
 * A hash table with chaining, and one LRU list through the entries.
 *
 * Pure: no I/O, no clock (the caller passes the time, so tests can
 * inject it), no lock (one cache per event loop: deliver/verify.c).
 * Must not: grow past max, or answer from an entry that has expired.
 *
 * Follows: no RFC (Postfix's verify(8) cache is the model).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/policy.h"

struct cache_entry {
	struct cache_entry *next_hash;
	struct cache_entry *lru_prev, *lru_next;	/* lru_prev toward the newest */
	uint64_t hash;
	int64_t expires;
	bool known;
	char addr[];		/* lower case */
};

struct policy_verify_cache {
	struct cache_entry **buckets;
	size_t nbuckets;	/* a power of two */
	size_t n, max;
	unsigned positive_ttl, negative_ttl;
	struct cache_entry *newest, *oldest;
};

/* hash - FNV-1a of the address, without case. */
static uint64_t hash(const char *addr)
{
	uint64_t h = 14695981039346656037ull;

	for (const unsigned char *p = (const unsigned char *)addr; *p; p++) {
		unsigned char c = *p >= 'A' && *p <= 'Z' ? (unsigned char)(*p + 32) : *p;

		h = (h ^ c) * 1099511628211ull;
	}
	return h;
}

/* policy_verify_cache_new - see policy.h. */
struct policy_verify_cache *policy_verify_cache_new(size_t max, unsigned positive_ttl,
						    unsigned negative_ttl)
{
	struct policy_verify_cache *c = calloc(1, sizeof(*c));
	size_t nb = 16;

	if (!c || max == 0) {
		free(c);
		return NULL;
	}
	while (nb < max && nb < ((size_t)1 << 24))
		nb *= 2;
	if (!(c->buckets = calloc(nb, sizeof(*c->buckets)))) {
		free(c);
		return NULL;
	}
	c->nbuckets = nb;
	c->max = max;
	c->positive_ttl = positive_ttl;
	c->negative_ttl = negative_ttl;
	return c;
}

/* lru_unlink - e leaves the LRU list. */
static void lru_unlink(struct policy_verify_cache *c, struct cache_entry *e)
{
	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else
		c->newest = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		c->oldest = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

/* lru_push - e becomes the most recently used. */
static void lru_push(struct policy_verify_cache *c, struct cache_entry *e)
{
	e->lru_prev = NULL;
	e->lru_next = c->newest;
	if (c->newest)
		c->newest->lru_prev = e;
	c->newest = e;
	if (!c->oldest)
		c->oldest = e;
}

/* slot - where e's (or addr's) chain starts. */
static struct cache_entry **slot(const struct policy_verify_cache *c, uint64_t h)
{
	return &c->buckets[h & (c->nbuckets - 1)];
}

/* drop - e leaves the cache and is freed. */
static void drop(struct policy_verify_cache *c, struct cache_entry *e)
{
	struct cache_entry **pp = slot(c, e->hash);

	while (*pp != e)
		pp = &(*pp)->next_hash;
	*pp = e->next_hash;
	lru_unlink(c, e);
	free(e);
	c->n--;
}

/* find - addr's entry, or NULL. */
static struct cache_entry *find(const struct policy_verify_cache *c, const char *addr, uint64_t h)
{
	for (struct cache_entry *e = *slot(c, h); e; e = e->next_hash)
		if (e->hash == h && strcasecmp(e->addr, addr) == 0)
			return e;
	return NULL;
}

/* policy_verify_cache_get - see policy.h. */
enum policy_verify_state policy_verify_cache_get(struct policy_verify_cache *c, const char *addr,
						 int64_t now)
{
	uint64_t h = hash(addr);
	struct cache_entry *e = find(c, addr, h);

	if (!e)
		return POLICY_VERIFY_UNCACHED;
	if (now >= e->expires) {
		drop(c, e);
		return POLICY_VERIFY_UNCACHED;
	}
	lru_unlink(c, e);
	lru_push(c, e);
	return e->known ? POLICY_VERIFY_KNOWN : POLICY_VERIFY_UNKNOWN;
}

/* policy_verify_cache_put - see policy.h. */
int policy_verify_cache_put(struct policy_verify_cache *c, const char *addr, bool known,
			    int64_t now)
{
	uint64_t h = hash(addr);
	struct cache_entry *e = find(c, addr, h);
	size_t len = strlen(addr);

	if (e)
		drop(c, e);
	if (c->n == c->max)
		drop(c, c->oldest);	/* the bound: the least recently used goes */
	if (!(e = calloc(1, sizeof(*e) + len + 1)))
		return -1;
	mtad_str_lower(e->addr, addr, len);
	e->hash = h;
	e->known = known;
	e->expires = now + (int64_t)(known ? c->positive_ttl : c->negative_ttl);
	e->next_hash = *slot(c, h);
	*slot(c, h) = e;
	lru_push(c, e);
	c->n++;
	return 0;
}

/* policy_verify_cache_count - see policy.h. */
size_t policy_verify_cache_count(const struct policy_verify_cache *c)
{
	return c ? c->n : 0;
}

/* policy_verify_cache_free - see policy.h. */
void policy_verify_cache_free(struct policy_verify_cache *c)
{
	if (!c)
		return;
	while (c->oldest)
		drop(c, c->oldest);
	free(c->buckets);
	free(c);
}
