/*
 * sketch_impl.h - fixed-size summaries of what clients choose (sketch.c):
 * a space-saving top-K of names and a HyperLogLog of distinct items,
 * with their byte encodings for stats.db. Private to queue/ (stats.c,
 * mtaq_stats.c) and its unit tests. Pure: no I/O, no allocation.
 */
#ifndef QUEUE_SKETCH_IMPL_H
#define QUEUE_SKETCH_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Top-K: K = 100 counters. A name seen more than N/K times (N: the sum
 * of all counts added) is always in the summary, and each count is at
 * most N/K too high (the item's error says by how much at most), so
 * with K = 100 the ten names mtaq shows are right unless the day's
 * traffic is nearly flat, and one stored summary is at most ~27 KB
 * (255-byte names) or ~6 KB (addresses).
 */
/* sketch_get64, sketch_put64 - a u64 stored big-endian: the one
 * encoding of every number in stats.db (counters and sketches alike). */
static inline uint64_t sketch_get64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static inline void sketch_put64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

#define SKETCH_TOP_K 100
#define SKETCH_NAME_MAX 255	/* bytes; graphic ASCII only */

struct sketch_top_item {
	uint64_t count;		/* an upper bound of the true count */
	uint64_t error;		/* count - error is a lower bound */
	size_t len;
	char name[SKETCH_NAME_MAX + 1];
};

struct sketch_top {
	size_t n;
	struct sketch_top_item item[SKETCH_TOP_K];
};

void sketch_top_init(struct sketch_top *t);

/*
 * sketch_top_add - count more occurrences of name (space-saving: a new
 * name takes the place of the smallest counter when all K are in use).
 * Returns 0, or -1 when name is empty, too long or not graphic ASCII.
 */
int sketch_top_add(struct sketch_top *t, const char *name, uint64_t count);

/* sketch_top_merge - adds src into dst (Cafaro et al.'s merge: a name
 * missing from a full summary counts that summary's smallest counter,
 * then the K largest are kept); the bounds above hold for the sum. */
void sketch_top_merge(struct sketch_top *dst, const struct sketch_top *src);

/* sketch_top_sort - largest count first, then by name. */
void sketch_top_sort(struct sketch_top *t);

/* sketch_top_min - the smallest counter of a full summary (the most a
 * name not in it can have been seen), 0 when not full. */
uint64_t sketch_top_min(const struct sketch_top *t);

/*
 * Encodings: "TOP1", u16 n, then n times: u8 length, the name, u64
 * count, u64 error (integers big-endian). encode returns the bytes
 * written, or the size needed when it is more than size (nothing
 * useful is written then); decode returns 0 or -1 when the bytes are
 * not a well-formed summary.
 */
#define SKETCH_TOP_ENCODED_MAX (6 + SKETCH_TOP_K * (1 + SKETCH_NAME_MAX + 16))
size_t sketch_top_encode(const struct sketch_top *t, unsigned char *buf, size_t size);
int sketch_top_decode(struct sketch_top *t, const unsigned char *buf, size_t len);

/*
 * HyperLogLog with 2^12 registers: a standard error of 1.04/64 = 1.6%
 * for 3 KB stored. Up to SKETCH_HLL_SPARSE_MAX distinct hashes are kept as they
 * are (the count is then exact, and small days stay small on disk);
 * beyond, the registers. Items are 64-bit hashes (sketch_hash with a
 * key the client does not know, so addresses cannot be chosen to land
 * in few registers).
 */
#define SKETCH_HLL_P 12
#define SKETCH_HLL_M (1u << SKETCH_HLL_P)
#define SKETCH_HLL_SPARSE_MAX 128	/* 1 KB */

struct sketch_hll {
	bool dense;
	size_t n;		/* sparse: hashes held */
	uint64_t sparse[SKETCH_HLL_SPARSE_MAX];
	uint8_t reg[SKETCH_HLL_M];	/* dense: max leading zeros + 1 */
};

void sketch_hll_init(struct sketch_hll *h);
void sketch_hll_add(struct sketch_hll *h, uint64_t hash);
void sketch_hll_merge(struct sketch_hll *dst, const struct sketch_hll *src);

/* sketch_hll_count - the distinct items added (exact while sparse). */
uint64_t sketch_hll_count(const struct sketch_hll *h);

/* sketch_hll_exact - is the count exact (up to 64-bit hash collisions)? */
bool sketch_hll_exact(const struct sketch_hll *h);

/*
 * "HLL1", u8 p (12), u8 0 then u16 n and n u64 hashes (sparse), or u8 1
 * then the 2^p registers, 6 bits each, packed big-endian (dense: 3 KB,
 * one 4 KB overflow page). Same conventions as the top-K's.
 */
#define SKETCH_HLL_ENCODED_MAX (6 + SKETCH_HLL_M / 4 * 3)
size_t sketch_hll_encode(const struct sketch_hll *h, unsigned char *buf, size_t size);
int sketch_hll_decode(struct sketch_hll *h, const unsigned char *buf, size_t len);

/* sketch_hash - SipHash-1-3 of data under the 128-bit key. */
uint64_t sketch_hash(const uint64_t key[2], const void *data, size_t len);

#endif
