/*
 * sketch.c - the space-saving top-K and the HyperLogLog of
 * queue/sketch.c: heavy hitters found among 100,000 distinct names,
 * the count bounds, merges of many partial summaries, the error at
 * 1,000 to 1,000,000 distinct items, and encodings round-tripped and
 * refused when malformed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/sketch_impl.h"
#include "t/unit/tap.h"

static const uint64_t KEY[2] = { 0x0123456789abcdefull, 0xfedcba9876543210ull };

/* The heavy names and how often each is sent among the distinct ones. */
static const char *const HEAVY[] = { "heavy-a.example", "heavy-b.example", "heavy-c.example",
				     "heavy-d.example", "heavy-e.example" };
#define NHEAVY 5
#define HEAVY_COUNT(i) (3000u - 400u * (unsigned)(i))	/* 3000 ... 1400 */
#define NDISTINCT 100000u
#define NTOTAL (NDISTINCT + 3000u + 2600u + 2200u + 1800u + 1400u)

/* stream_name - the i-th name of the test stream: the heavy names
 * spread evenly through 100,000 names seen once. */
static const char *stream_name(unsigned i, char *buf, size_t size)
{
	for (int h = 0; h < NHEAVY; h++)
		if (i % 19 == (unsigned)h && i / 19 < HEAVY_COUNT(h))
			return HEAVY[h];
	snprintf(buf, size, "bot%u.dyn.example", i);
	return buf;
}

static const struct sketch_top_item *find(const struct sketch_top *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->item[i].name, name) == 0)
			return &t->item[i];
	return NULL;
}

/* check_heavy - every heavy name is in t, its count an upper bound and
 * count - error a lower bound of the truth, both within N/K. */
static void check_heavy(struct tap *t, const struct sketch_top *top, const char *label)
{
	uint64_t bound = NTOTAL / SKETCH_TOP_K, sum = 0;

	for (int h = 0; h < NHEAVY; h++) {
		const struct sketch_top_item *it = find(top, HEAVY[h]);
		uint64_t truth = HEAVY_COUNT(h);

		TAP_OK(t, it != NULL, "%s: %s (%llu times) is in the top", label, HEAVY[h],
		       (unsigned long long)truth);
		if (it == NULL)
			continue;
		TAP_OK(t, it->count >= truth && it->count - it->error <= truth,
		       "%s: %s: %llu - %llu brackets %llu", label, HEAVY[h],
		       (unsigned long long)it->count, (unsigned long long)it->error,
		       (unsigned long long)truth);
		TAP_OK(t, it->count - truth <= bound, "%s: %s: overcount %llu <= N/K = %llu", label,
		       HEAVY[h], (unsigned long long)(it->count - truth), (unsigned long long)bound);
	}
	for (size_t i = 0; i < top->n; i++)
		sum += top->item[i].count;
	TAP_OK(t, top->n == SKETCH_TOP_K, "%s: exactly K = %d counters", label, SKETCH_TOP_K);
	TAP_OK(t, sum <= NTOTAL, "%s: the counters add up to at most N (%llu <= %u)", label,
	       (unsigned long long)sum, NTOTAL);
	TAP_OK(t, sketch_top_min(top) <= bound, "%s: smallest counter %llu <= N/K", label,
	       (unsigned long long)sketch_top_min(top));
}

static void test_top_stream(struct tap *t)
{
	static struct sketch_top top;
	char buf[64];
	int bad = 0;

	sketch_top_init(&top);
	for (unsigned i = 0; i < NTOTAL; i++)
		bad += sketch_top_add(&top, stream_name(i, buf, sizeof(buf)), 1) != 0;
	TAP_OK(t, bad == 0, "top: %u names added", NTOTAL);
	TAP_OK(t, sizeof(top) < 30 * 1024, "top: the summary is %zu bytes, whatever was added",
	       sizeof(top));
	check_heavy(t, &top, "one stream");
	sketch_top_sort(&top);
	TAP_OK(t, strcmp(top.item[0].name, HEAVY[0]) == 0 &&
			  strcmp(top.item[4].name, HEAVY[4]) == 0,
	       "top: sorted, the heaviest first (%s, ..., %s)", top.item[0].name, top.item[4].name);
}

/* test_top_merge - the stream cut into 200 pieces (the once-a-second
 * tables), each summarized and merged into the running day, as the
 * writer does; and the same pieces merged pairwise as a tree. */
static void test_top_merge(struct tap *t)
{
	static struct sketch_top day, piece, tree[8];
	unsigned per = NTOTAL / 200 + 1;
	char buf[64];

	sketch_top_init(&day);
	for (int k = 0; k < 8; k++)
		sketch_top_init(&tree[k]);
	for (unsigned p = 0; p * per < NTOTAL; p++) {
		sketch_top_init(&piece);
		for (unsigned i = p * per; i < (p + 1) * per && i < NTOTAL; i++)
			sketch_top_add(&piece, stream_name(i, buf, sizeof(buf)), 1);
		sketch_top_merge(&day, &piece);
		sketch_top_merge(&tree[p % 8], &piece);
	}
	check_heavy(t, &day, "200 merges");
	for (int k = 1; k < 8; k++)
		sketch_top_merge(&tree[0], &tree[k]);
	check_heavy(t, &tree[0], "8 partial days merged");
}

static void test_top_small(struct tap *t)
{
	static struct sketch_top a, b;
	const struct sketch_top_item *it;
	char big[SKETCH_NAME_MAX + 2];

	sketch_top_init(&a);
	sketch_top_init(&b);
	sketch_top_add(&a, "mx.campus.test", 2);
	sketch_top_add(&a, "localhost", 1);
	sketch_top_add(&b, "localhost", 2);
	sketch_top_add(&b, "mx.campus.test", 1);
	sketch_top_add(&b, "other.example", 5);
	sketch_top_merge(&a, &b);
	it = find(&a, "mx.campus.test");
	TAP_OK(t, a.n == 3 && it && it->count == 3 && it->error == 0,
	       "top: under K names the counts are exact, also merged");
	it = find(&a, "other.example");
	TAP_OK(t, it && it->count == 5 && it->error == 0, "top: a name only in src is taken as is");
	TAP_OK(t, sketch_top_add(&a, "", 1) < 0, "top: an empty name is refused");
	TAP_OK(t, sketch_top_add(&a, "a b", 1) < 0, "top: a blank is refused");
	TAP_OK(t, sketch_top_add(&a, "caf\xc3\xa9", 1) < 0, "top: 8-bit bytes are refused");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	TAP_OK(t, sketch_top_add(&a, big, 1) < 0, "top: %zu bytes are refused", strlen(big));
	big[SKETCH_NAME_MAX] = '\0';
	TAP_OK(t, sketch_top_add(&a, big, 1) == 0, "top: %d bytes are taken", SKETCH_NAME_MAX);
	TAP_OK(t, a.n == 4, "top: and nothing else was");
}

static void test_top_encoding(struct tap *t)
{
	static struct sketch_top a, b;
	static unsigned char buf[SKETCH_TOP_ENCODED_MAX];
	char name[SKETCH_NAME_MAX + 1];
	size_t len, small;
	int same = 1;

	sketch_top_init(&a);
	for (unsigned i = 0; i < 300; i++) {
		memset(name, 'a' + (char)(i % 26), sizeof(name) - 1);
		name[sizeof(name) - 1] = '\0';
		snprintf(name, 8, "%05u", i);
		name[5] = '.';
		sketch_top_add(&a, name, i % 7 + 1);
	}
	len = sketch_top_encode(&a, buf, sizeof(buf));
	TAP_OK(t, len <= SKETCH_TOP_ENCODED_MAX && len > 100 * 256,
	       "top encoding: K names of 255 bytes take %zu bytes", len);
	TAP_OK(t, sketch_top_decode(&b, buf, len) == 0 && b.n == a.n, "top encoding: decoded");
	for (size_t i = 0; i < a.n; i++)
		same &= strcmp(a.item[i].name, b.item[i].name) == 0 &&
			a.item[i].count == b.item[i].count && a.item[i].error == b.item[i].error;
	TAP_OK(t, same, "top encoding: the same names, counts and errors");
	small = sketch_top_encode(&a, buf, 10);
	TAP_OK(t, small == len, "top encoding: too small a buffer gives the size needed");
	len = sketch_top_encode(&a, buf, sizeof(buf));
	TAP_OK(t, sketch_top_decode(&b, buf, len - 1) < 0, "top encoding: truncated is refused");
	buf[0] = 'X';
	TAP_OK(t, sketch_top_decode(&b, buf, len) < 0, "top encoding: a wrong magic is refused");
	buf[0] = 'T';
	buf[7] = ' ';
	TAP_OK(t, sketch_top_decode(&b, buf, len) < 0, "top encoding: a blank in a name is refused");
	sketch_top_init(&a);
	sketch_top_add(&a, "x", 1);
	sketch_top_add(&a, "y", 1);
	len = sketch_top_encode(&a, buf, sizeof(buf));
	buf[6 + 1 + 1 + 16 + 1] = 'x';	/* the second name becomes the first */
	TAP_OK(t, sketch_top_decode(&b, buf, len) < 0, "top encoding: a name twice is refused");
	len = sketch_top_encode(&a, buf, sizeof(buf));
	buf[6 + 1 + 1 + 15] = 9;	/* error 9 > count 1 */
	TAP_OK(t, sketch_top_decode(&b, buf, len) < 0,
	       "top encoding: an error above the count is refused");
}

/* hll_of - n distinct items, numbered from first. */
static void hll_of(struct sketch_hll *h, unsigned first, unsigned n)
{
	sketch_hll_init(h);
	for (unsigned i = first; i < first + n; i++) {
		char ip[48];
		int len = snprintf(ip, sizeof(ip), "2001:db8:%x:%x::1", i >> 16, i & 0xffff);

		sketch_hll_add(h, sketch_hash(KEY, ip, (size_t)len));
	}
}

static double rel_error(uint64_t est, uint64_t truth)
{
	return ((double)est - (double)truth) / (double)truth;
}

static void test_hll(struct tap *t)
{
	static struct sketch_hll h, g;
	static const unsigned sizes[] = { 1000, 5000, 10000, 20000, 100000, 1000000 };
	/* Three standard errors: 3 * 1.04 / sqrt(4096). */
	const double bound = 3 * 1.04 / 64;

	hll_of(&h, 0, 100);
	for (unsigned i = 0; i < 100; i++) {
		char ip[48];
		int len = snprintf(ip, sizeof(ip), "2001:db8:%x:%x::1", i >> 16, i & 0xffff);

		sketch_hll_add(&h, sketch_hash(KEY, ip, (size_t)len));
	}
	TAP_OK(t, sketch_hll_exact(&h) && sketch_hll_count(&h) == 100,
	       "hll: 100 distinct added twice: exactly 100");
	hll_of(&h, 0, SKETCH_HLL_SPARSE_MAX + 1);
	TAP_OK(t, !sketch_hll_exact(&h), "hll: %d distinct: estimated", SKETCH_HLL_SPARSE_MAX + 1);
	TAP_OK(t, sketch_hll_count(&h) >= SKETCH_HLL_SPARSE_MAX - 2 &&
			  sketch_hll_count(&h) <= SKETCH_HLL_SPARSE_MAX + 4,
	       "hll: ... as %llu", (unsigned long long)sketch_hll_count(&h));
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		double e;

		hll_of(&h, 7, sizes[s]);
		e = rel_error(sketch_hll_count(&h), sizes[s]);
		TAP_OK(t, e < bound && e > -bound, "hll: %u distinct: %llu, error %+.2f%% (bound %.1f%%)",
		       sizes[s], (unsigned long long)sketch_hll_count(&h), 100 * e, 100 * bound);
	}
	/* union: 0..60k and 40k..100k */
	hll_of(&h, 0, 60000);
	hll_of(&g, 40000, 60000);
	sketch_hll_merge(&h, &g);
	TAP_OK(t, rel_error(sketch_hll_count(&h), 100000) < bound &&
			  rel_error(sketch_hll_count(&h), 100000) > -bound,
	       "hll: merge is the union: 60k and 60k overlapping by 20k: %llu",
	       (unsigned long long)sketch_hll_count(&h));
	hll_of(&h, 0, 50);
	hll_of(&g, 25, 50);
	sketch_hll_merge(&h, &g);
	TAP_OK(t, sketch_hll_exact(&h) && sketch_hll_count(&h) == 75,
	       "hll: small merges stay exact: 75");
	hll_of(&g, 0, 100000);
	sketch_hll_merge(&h, &g);
	TAP_OK(t, !sketch_hll_exact(&h) && rel_error(sketch_hll_count(&h), 100000) < bound &&
			  rel_error(sketch_hll_count(&h), 100000) > -bound,
	       "hll: sparse into dense and back: %llu", (unsigned long long)sketch_hll_count(&h));
}

static void test_hll_encoding(struct tap *t)
{
	static struct sketch_hll h, g;
	static unsigned char buf[SKETCH_HLL_ENCODED_MAX];
	size_t len;

	hll_of(&h, 0, 10);
	len = sketch_hll_encode(&h, buf, sizeof(buf));
	TAP_OK(t, len == 8 + 80, "hll encoding: 10 exact hashes in %zu bytes", len);
	TAP_OK(t, sketch_hll_decode(&g, buf, len) == 0 && sketch_hll_exact(&g) &&
			  sketch_hll_count(&g) == 10,
	       "hll encoding: sparse decoded");
	memcpy(buf + 16, buf + 8, 8);
	TAP_OK(t, sketch_hll_decode(&g, buf, len) < 0, "hll encoding: a hash twice is refused");
	hll_of(&h, 0, 5000);
	len = sketch_hll_encode(&h, buf, sizeof(buf));
	TAP_OK(t, len == SKETCH_HLL_ENCODED_MAX, "hll encoding: dense in %zu bytes", len);
	TAP_OK(t, sketch_hll_decode(&g, buf, len) == 0 && !sketch_hll_exact(&g) &&
			  memcmp(g.reg, h.reg, sizeof(h.reg)) == 0,
	       "hll encoding: dense decoded");
	TAP_OK(t, sketch_hll_decode(&g, buf, len - 1) < 0, "hll encoding: truncated is refused");
	{
		unsigned char saved = buf[99];	/* the first byte of a group of four */

		buf[99] = 0xff;		/* its first register becomes 63 */
		TAP_OK(t, sketch_hll_decode(&g, buf, len) < 0,
		       "hll encoding: a register above 53 is refused");
		buf[99] = saved;
	}
	TAP_OK(t, sketch_hll_decode(&g, buf, len) == 0, "hll encoding: ... and the rest is fine");
	buf[4] = 14;
	TAP_OK(t, sketch_hll_decode(&g, buf, len) < 0, "hll encoding: another precision is refused");
}

static void test_hash(struct tap *t)
{
	const uint64_t other[2] = { KEY[0] ^ 1, KEY[1] };

	TAP_OK(t, sketch_hash(KEY, "192.0.2.1", 9) == sketch_hash(KEY, "192.0.2.1", 9),
	       "hash: the same input, the same hash");
	TAP_OK(t, sketch_hash(KEY, "192.0.2.1", 9) != sketch_hash(other, "192.0.2.1", 9),
	       "hash: another key, another hash");
	TAP_OK(t, sketch_hash(KEY, "192.0.2.1", 9) != sketch_hash(KEY, "192.0.2.2", 9),
	       "hash: another input, another hash");
}

int main(void)
{
	struct tap t = { 0 };

	test_top_stream(&t);
	test_top_merge(&t);
	test_top_small(&t);
	test_top_encoding(&t);
	test_hll(&t);
	test_hll_encoding(&t);
	test_hash(&t);
	return tap_done(&t);
}
