/*
 * sketch.c - fixed-size summaries of client-chosen strings for the
 * statistics (stats.c stores them, mtaq reads them): the space-saving
 * top-K (Metwally, Agrawal, El Abbadi, "Efficient computation of
 * frequent and top-k elements in data streams", 2005) with the parallel
 * merge of Cafaro, Pulimeno, Tempesta (2016), a HyperLogLog (Flajolet,
 * Fusy, Gandouet, Meunier, 2007) with a small exact sparse start as in
 * HyperLogLog++ (Heule, Nunkesser, Hall, 2013), their byte encodings,
 * and SipHash-1-3 (Aumasson, Bernstein, 2012).
 *
 * Why: stats.db used to hold one key per HELO name and per client
 * address, so one client could fill the spool by varying them. These
 * summaries have a size fixed at compile time whatever is added.
 *
 * Must not: do I/O, allocate, or trust an encoding it is asked to
 * decode (every length, count and name is checked).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "queue/sketch_impl.h"

/* ---- helpers ---- */

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static void put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

static unsigned get16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}


/* name_len - the length of a name a summary may hold, or 0. */
static size_t name_len(const char *name, size_t max)
{
	size_t len = strnlen(name, max + 1);

	if (len == 0 || len > SKETCH_NAME_MAX || len > max)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)name[i] < 0x21 || (unsigned char)name[i] > 0x7e)
			return 0;
	return len;
}

/* ---- top-K (space-saving) ---- */

void sketch_top_init(struct sketch_top *t)
{
	t->n = 0;
}

/* top_find - the item named name, or NULL. */
static struct sketch_top_item *top_find(struct sketch_top *t, const char *name, size_t len)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->item[i].len == len && memcmp(t->item[i].name, name, len) == 0)
			return &t->item[i];
	return NULL;
}

/* top_min_index - the item with the smallest count (t->n > 0). */
static size_t top_min_index(const struct sketch_top *t)
{
	size_t m = 0;

	for (size_t i = 1; i < t->n; i++)
		if (t->item[i].count < t->item[m].count)
			m = i;
	return m;
}

uint64_t sketch_top_min(const struct sketch_top *t)
{
	return t->n < SKETCH_TOP_K ? 0 : t->item[top_min_index(t)].count;
}

/* top_set - (re)fills an item. */
static void top_set(struct sketch_top_item *it, const char *name, size_t len, uint64_t count,
		    uint64_t error)
{
	memcpy(it->name, name, len);
	it->name[len] = '\0';
	it->len = len;
	it->count = count;
	it->error = error;
}

/* top_offer - a name not in t with its count and error: appended while
 * there is room, else it replaces the smallest counter if larger (the
 * merge's selection of the K largest). */
static void top_offer(struct sketch_top *t, const struct sketch_top_item *c)
{
	size_t m;

	if (t->n < SKETCH_TOP_K) {
		t->item[t->n++] = *c;
		return;
	}
	m = top_min_index(t);
	if (c->count > t->item[m].count)
		t->item[m] = *c;
}

int sketch_top_add(struct sketch_top *t, const char *name, uint64_t count)
{
	size_t len = name_len(name, SKETCH_NAME_MAX);
	struct sketch_top_item *it;

	if (len == 0)
		return -1;
	if (count == 0)
		return 0;
	if ((it = top_find(t, name, len)) != NULL) {
		it->count = sat_add(it->count, count);
	} else if (t->n < SKETCH_TOP_K) {
		top_set(&t->item[t->n++], name, len, count, 0);
	} else {
		/* Space-saving: the newcomer inherits the smallest counter as
		 * its possible overcount. */
		it = &t->item[top_min_index(t)];
		top_set(it, name, len, sat_add(it->count, count), it->count);
	}
	return 0;
}

void sketch_top_merge(struct sketch_top *dst, const struct sketch_top *src)
{
	uint64_t mdst = sketch_top_min(dst), msrc = sketch_top_min(src);
	bool matched[SKETCH_TOP_K] = { false };
	size_t ndst = dst->n;

	/* Names in dst: plus their src count, or src's smallest counter,
	 * the most src can have seen of a name it does not hold. */
	for (size_t i = 0; i < ndst; i++) {
		struct sketch_top_item *d = &dst->item[i];
		uint64_t c = msrc, e = msrc;

		for (size_t j = 0; j < src->n; j++) {
			if (!matched[j] && src->item[j].len == d->len &&
			    memcmp(src->item[j].name, d->name, d->len) == 0) {
				matched[j] = true;
				c = src->item[j].count;
				e = src->item[j].error;
				break;
			}
		}
		d->count = sat_add(d->count, c);
		d->error = sat_add(d->error, e);
	}
	/* Names only in src, symmetrically; the K largest stay. */
	for (size_t j = 0; j < src->n; j++) {
		struct sketch_top_item c;

		if (matched[j])
			continue;
		c = src->item[j];
		c.count = sat_add(c.count, mdst);
		c.error = sat_add(c.error, mdst);
		top_offer(dst, &c);
	}
}

static int top_item_order(const void *a, const void *b)
{
	const struct sketch_top_item *x = a, *y = b;

	if (x->count != y->count)
		return x->count < y->count ? 1 : -1;
	return strcmp(x->name, y->name);
}

void sketch_top_sort(struct sketch_top *t)
{
	qsort(t->item, t->n, sizeof(t->item[0]), top_item_order);
}

size_t sketch_top_encode(const struct sketch_top *t, unsigned char *buf, size_t size)
{
	size_t need = 6, off;

	for (size_t i = 0; i < t->n; i++)
		need += 1 + t->item[i].len + 16;
	if (need > size)
		return need;
	memcpy(buf, "TOP1", 4);
	put16(buf + 4, (unsigned)t->n);
	off = 6;
	for (size_t i = 0; i < t->n; i++) {
		const struct sketch_top_item *it = &t->item[i];

		buf[off++] = (unsigned char)it->len;
		memcpy(buf + off, it->name, it->len);
		off += it->len;
		sketch_put64(buf + off, it->count);
		sketch_put64(buf + off + 8, it->error);
		off += 16;
	}
	return off;
}

int sketch_top_decode(struct sketch_top *t, const unsigned char *buf, size_t len)
{
	size_t n, off = 6;

	sketch_top_init(t);
	if (len < 6 || memcmp(buf, "TOP1", 4) != 0 || (n = get16(buf + 4)) > SKETCH_TOP_K)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char name[SKETCH_NAME_MAX + 1];
		size_t nl;
		uint64_t count, error;

		if (off >= len || (nl = buf[off]) == 0 || len - off - 1 < nl + 16)
			return -1;
		memcpy(name, buf + off + 1, nl);
		name[nl] = '\0';
		count = sketch_get64(buf + off + 1 + nl);
		error = sketch_get64(buf + off + 9 + nl);
		if (name_len(name, nl) != nl || error > count || top_find(t, name, nl) != NULL)
			return -1;
		top_set(&t->item[t->n++], name, nl, count, error);
		off += 1 + nl + 16;
	}
	return off == len ? 0 : -1;
}

/* ---- HyperLogLog ---- */

void sketch_hll_init(struct sketch_hll *h)
{
	h->dense = false;
	h->n = 0;
	memset(h->reg, 0, sizeof(h->reg));
}

/* hll_dense_add - the register of hash: the first P bits choose it, the
 * position of the first 1 bit in the rest is its value. */
static void hll_dense_add(struct sketch_hll *h, uint64_t hash)
{
	uint32_t idx = (uint32_t)(hash >> (64 - SKETCH_HLL_P));
	uint64_t rest = hash << SKETCH_HLL_P;
	uint8_t rho = rest == 0 ? (uint8_t)(64 - SKETCH_HLL_P + 1)
				: (uint8_t)(__builtin_clzll(rest) + 1);

	if (rho > h->reg[idx])
		h->reg[idx] = rho;
}

/* hll_densify - from the exact hashes to the registers. */
static void hll_densify(struct sketch_hll *h)
{
	for (size_t i = 0; i < h->n; i++)
		hll_dense_add(h, h->sparse[i]);
	h->dense = true;
	h->n = 0;
}

void sketch_hll_add(struct sketch_hll *h, uint64_t hash)
{
	if (!h->dense) {
		for (size_t i = 0; i < h->n; i++)
			if (h->sparse[i] == hash)
				return;
		if (h->n < SKETCH_HLL_SPARSE_MAX) {
			h->sparse[h->n++] = hash;
			return;
		}
		hll_densify(h);
	}
	hll_dense_add(h, hash);
}

void sketch_hll_merge(struct sketch_hll *dst, const struct sketch_hll *src)
{
	if (!src->dense) {
		for (size_t i = 0; i < src->n; i++)
			sketch_hll_add(dst, src->sparse[i]);
		return;
	}
	if (!dst->dense)
		hll_densify(dst);
	for (size_t i = 0; i < SKETCH_HLL_M; i++)
		if (src->reg[i] > dst->reg[i])
			dst->reg[i] = src->reg[i];
}

bool sketch_hll_exact(const struct sketch_hll *h)
{
	return !h->dense;
}

uint64_t sketch_hll_count(const struct sketch_hll *h)
{
	const double m = SKETCH_HLL_M, alpha = 0.7213 / (1.0 + 1.079 / m);
	double sum = 0, e;
	unsigned zeros = 0;

	if (!h->dense)
		return h->n;
	for (size_t i = 0; i < SKETCH_HLL_M; i++) {
		sum += ldexp(1.0, -(int)h->reg[i]);
		zeros += h->reg[i] == 0;
	}
	e = alpha * m * m / sum;
	/* Small range: linear counting over the empty registers is better. */
	if (e <= 2.5 * m && zeros > 0)
		e = m * log(m / zeros);
	return (uint64_t)llround(e);
}

/* hll_pack - the registers, 6 bits each (they are at most 53), in
 * groups of four to three bytes: 3 KB, one overflow page in stats.db. */
static void hll_pack(const uint8_t *reg, unsigned char *out)
{
	for (size_t i = 0; i < SKETCH_HLL_M; i += 4, out += 3) {
		uint32_t v = (uint32_t)reg[i] << 18 | (uint32_t)reg[i + 1] << 12 |
			     (uint32_t)reg[i + 2] << 6 | reg[i + 3];

		out[0] = (unsigned char)(v >> 16);
		out[1] = (unsigned char)(v >> 8);
		out[2] = (unsigned char)v;
	}
}

/* hll_unpack - the reverse; -1 when a register is above its maximum. */
static int hll_unpack(const unsigned char *in, uint8_t *reg)
{
	for (size_t i = 0; i < SKETCH_HLL_M; i += 4, in += 3) {
		uint32_t v = (uint32_t)in[0] << 16 | (uint32_t)in[1] << 8 | in[2];

		for (int j = 3; j >= 0; j--, v >>= 6)
			if ((reg[i + (size_t)j] = (uint8_t)(v & 0x3f)) > 64 - SKETCH_HLL_P + 1)
				return -1;
	}
	return 0;
}

size_t sketch_hll_encode(const struct sketch_hll *h, unsigned char *buf, size_t size)
{
	size_t need = h->dense ? SKETCH_HLL_ENCODED_MAX : 8 + 8 * h->n;

	if (need > size)
		return need;
	memcpy(buf, "HLL1", 4);
	buf[4] = SKETCH_HLL_P;
	buf[5] = h->dense;
	if (h->dense) {
		hll_pack(h->reg, buf + 6);
		return need;
	}
	put16(buf + 6, (unsigned)h->n);
	for (size_t i = 0; i < h->n; i++)
		sketch_put64(buf + 8 + 8 * i, h->sparse[i]);
	return need;
}

int sketch_hll_decode(struct sketch_hll *h, const unsigned char *buf, size_t len)
{
	size_t n;

	sketch_hll_init(h);
	if (len < 6 || memcmp(buf, "HLL1", 4) != 0 || buf[4] != SKETCH_HLL_P || buf[5] > 1)
		return -1;
	if (buf[5] == 1) {
		if (len != SKETCH_HLL_ENCODED_MAX || hll_unpack(buf + 6, h->reg) < 0) {
			sketch_hll_init(h);
			return -1;
		}
		h->dense = true;
		return 0;
	}
	if (len < 8 || (n = get16(buf + 6)) > SKETCH_HLL_SPARSE_MAX || len != 8 + 8 * n)
		return -1;
	for (size_t i = 0; i < n; i++)
		sketch_hll_add(h, sketch_get64(buf + 8 + 8 * i));
	return h->n == n ? 0 : -1;
}

/* ---- SipHash-1-3 ---- */

#define SIP_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIP_ROUND(v0, v1, v2, v3)                                                      \
	do {                                                                           \
		v0 += v1; v1 = SIP_ROTL(v1, 13); v1 ^= v0; v0 = SIP_ROTL(v0, 32);      \
		v2 += v3; v3 = SIP_ROTL(v3, 16); v3 ^= v2;                             \
		v0 += v3; v3 = SIP_ROTL(v3, 21); v3 ^= v0;                             \
		v2 += v1; v1 = SIP_ROTL(v1, 17); v1 ^= v2; v2 = SIP_ROTL(v2, 32);      \
	} while (0)

uint64_t sketch_hash(const uint64_t k[2], const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t v0 = k[0] ^ 0x736f6d6570736575ull, v1 = k[1] ^ 0x646f72616e646f6dull;
	uint64_t v2 = k[0] ^ 0x6c7967656e657261ull, v3 = k[1] ^ 0x7465646279746573ull;
	uint64_t last = (uint64_t)len << 56;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t m = 0;

		for (int j = 7; j >= 0; j--)
			m = (m << 8) | p[i + (size_t)j];
		v3 ^= m;
		SIP_ROUND(v0, v1, v2, v3);
		v0 ^= m;
	}
	for (size_t j = 0; i + j < len; j++)
		last |= (uint64_t)p[i + j] << (8 * j);
	v3 ^= last;
	SIP_ROUND(v0, v1, v2, v3);
	v0 ^= last;
	v2 ^= 0xff;
	for (int r = 0; r < 3; r++)
		SIP_ROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}
