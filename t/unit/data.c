/*
 * data.c - unit tests for smtp/data.c, the DATA decoder: dot-unstuffing,
 * the end marker split at every byte and fed one byte at a time, bare
 * LF/CR (SMTP smuggling sequences never end a message), the size limit,
 * long lines, pipelined input after the end. Every call gets an output
 * buffer of exactly inlen bytes from malloc, so ASAN catches an overrun.
 * Finally every string of up to 8 bytes over {'.', CR, LF, 'a'} is
 * checked against a reference decoder written the obvious way. The same
 * again with smtp_data_normalize (bare_newline = normalize: a bare LF is
 * a line end stored as CRLF, a "." line next to one is dropped, never
 * the end), against a line-by-line reference of Postfix 3.9's rules;
 * its output buffers are 2 * inlen bytes (SMTP_DATA_OUT_MAX).
 */
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp.h"
#include "t/unit/tap.h"

#define UNLIMITED UINT64_MAX

static bool normalize;	/* feed() decodes with smtp_data_normalize */

/* What decoding one input produced. */
struct result {
	char out[32768];
	size_t outlen;		/* including a byte the decoder still holds */
	size_t consumed;
	struct smtp_data_decoder dec;
};

/* feed - decodes in[0..len) in chunks of at most chunk bytes (split at split first). */
static int feed(const char *in, size_t len, uint64_t limit, size_t split, size_t chunk,
		struct result *r)
{
	size_t pos = 0, n, got, used;
	char *in_copy, *out;

	smtp_data_init(&r->dec, limit);
	if (normalize)
		smtp_data_normalize(&r->dec);
	r->outlen = r->consumed = 0;
	while (pos < len && !r->dec.done) {
		n = pos < split && split < len ? split - pos : len - pos;
		n = n > chunk ? chunk : n;
		/* Exact-size heap copies: any read or write past them trips ASAN. */
		in_copy = malloc(n);
		out = malloc(normalize ? SMTP_DATA_OUT_MAX(n) : n);
		if (in_copy == NULL || out == NULL)
			return -1;
		memcpy(in_copy, in + pos, n);
		used = smtp_data_decode(&r->dec, in_copy, n, out, &got);
		if (got > (normalize ? SMTP_DATA_OUT_MAX(n) : n) || used > n ||
		    (used < n && !r->dec.done) ||
		    r->outlen + got > sizeof(r->out))
			return -1;
		memcpy(r->out + r->outlen, out, got);
		r->outlen += got;
		pos += used;
		free(in_copy);
		free(out);
	}
	/* A byte held for the next call is output the caller will see. */
	if (r->dec.has_carry && r->outlen < sizeof(r->out))
		r->out[r->outlen++] = r->dec.carry;
	r->consumed = pos;
	return 0;
}

/* same - two results agree on everything the caller can see. */
static int same(const struct result *a, const struct result *b)
{
	return a->outlen == b->outlen && memcmp(a->out, b->out, a->outlen) == 0 &&
	       a->consumed == b->consumed && a->dec.done == b->dec.done &&
	       a->dec.bare_lf == b->dec.bare_lf && a->dec.bare_cr == b->dec.bare_cr &&
	       a->dec.too_big == b->dec.too_big && a->dec.size == b->dec.size &&
	       a->dec.longest_line == b->dec.longest_line;
}

/* every_split - one call, two calls split at every position, one byte at a time. */
static int every_split(const char *in, size_t len, uint64_t limit, struct result *whole)
{
	struct result r = { .outlen = 0 };
	size_t split;

	if (feed(in, len, limit, len, len ? len : 1, whole) < 0)
		return -1;
	for (split = 1; split < len; split++)
		if (feed(in, len, limit, split, len, &r) < 0 || !same(whole, &r))
			return -1;
	if (feed(in, len, limit, len, 1, &r) < 0 || !same(whole, &r))
		return -1;
	return 0;
}

struct data_case {
	const char *name;
	const char *in;
	size_t inlen;
	const char *out;	/* expected decoded message */
	size_t outlen;
	long consumed;		/* -1: the message has not ended */
	bool bare_lf, bare_cr;
	size_t longest;
};

#define S(x) x, sizeof(x) - 1

static const struct data_case cases[] = {
	{ "empty message", S(".\r\n"), S(""), 3, 0, 0, 0 },
	{ "one line", S("hello\r\n.\r\n"), S("hello\r\n"), 10, 0, 0, 5 },
	{ "dot-stuffed line", S("..leading dot\r\n.\r\n"), S(".leading dot\r\n"), 18, 0, 0, 12 },
	{ "dot-stuffed lone dot", S("..\r\n.\r\n"), S(".\r\n"), 7, 0, 0, 1 },
	{ "unstuffed dot line (lenient)", S(".x\r\n.\r\n"), S("x\r\n"), 7, 0, 0, 1 },
	{ "dot inside a line stays", S("a.b\r\na.\r\n.\r\n"), S("a.b\r\na.\r\n"), 12, 0, 0, 3 },
	{ "empty lines", S("\r\n\r\n.\r\n"), S("\r\n\r\n"), 7, 0, 0, 0 },
	{ "pipelined command left", S("x\r\n.\r\nQUIT\r\n"), S("x\r\n"), 6, 0, 0, 1 },
	{ "second message left", S("x\r\n.\r\nMAIL FROM:<a@b>\r\n.\r\n"), S("x\r\n"), 6, 0, 0, 1 },
	{ "no end yet", S("abc\r\n"), S("abc\r\n"), -1, 0, 0, 3 },
	{ "no end yet, dot pending", S("abc\r\n."), S("abc\r\n"), -1, 0, 0, 3 },
	{ "no end yet, dot CR pending", S("abc\r\n.\r"), S("abc\r\n"), -1, 0, 0, 3 },
	{ "no end yet, CR pending", S("abc\r"), S("abc\r"), -1, 0, 0, 3 },
	/* SMTP smuggling: none of these end the message. */
	{ "smuggle LF.CRLF", S("a\n.\r\nMAIL FROM:<x@y>\r\n"),
	  S("a\n.\r\nMAIL FROM:<x@y>\r\n"), -1, 1, 0, 15 },
	{ "smuggle CRLF.LF", S("a\r\n.\nMAIL FROM:<x@y>\r\n"),
	  S("a\r\n\nMAIL FROM:<x@y>\r\n"), -1, 1, 0, 16 },
	{ "smuggle LF.LF", S("a\n.\nRCPT TO:<x@y>\n"), S("a\n.\nRCPT TO:<x@y>\n"), -1, 1, 0, 18 },
	{ "smuggle CR.CR", S("a\r.\rDATA\r"), S("a\r.\rDATA\r"), -1, 0, 1, 8 },
	{ "smuggle CR.CRLF", S("a\r.\r\nX\r\n"), S("a\r.\r\nX\r\n"), -1, 0, 1, 3 },
	{ "smuggle CRLF.CR", S("a\r\n.\rX\r\n"), S("a\r\n\rX\r\n"), -1, 0, 1, 2 },
	{ "smuggle at start LF.LF", S("\n.\n"), S("\n.\n"), -1, 1, 0, 3 },
	{ "smuggle then real end", S("a\n.\r\nb\r\n.\r\nQUIT\r\n"), S("a\n.\r\nb\r\n"), 11, 1, 0, 3 },
	{ "bare LF at line start", S("\nx\r\n.\r\n"), S("\nx\r\n"), 7, 1, 0, 2 },
	{ "bare CR in text", S("a\rb\r\n.\r\n"), S("a\rb\r\n"), 8, 0, 1, 3 },
	{ "CR CR LF", S("a\r\r\n.\r\n"), S("a\r\r\n"), 7, 0, 1, 2 },
	{ "dot CR CR LF", S(".\r\r\n.\r\n"), S("\r\r\n"), 7, 0, 1, 1 },
	{ "dot CR dot", S(".\r.\r\n.\r\n"), S("\r.\r\n"), 8, 0, 1, 2 },
	{ "NUL passes", S("a\0b\r\n.\r\n"), S("a\0b\r\n"), 8, 0, 0, 3 },
	{ "8-bit passes", S("caf\xc3\xa9\r\n.\r\n"), S("caf\xc3\xa9\r\n"), 10, 0, 0, 5 },
};

/* test_cases - each case through every way of splitting it. */
static void test_cases(struct tap *t)
{
	const struct data_case *c;
	struct result r = { .outlen = 0 };
	size_t outlen;

	for (c = cases; c < cases + sizeof(cases) / sizeof(cases[0]); c++) {
		outlen = c->outlen;
		TAP_OK(t, every_split(c->in, c->inlen, UNLIMITED, &r) == 0,
		       "%s: same result for every split", c->name);
		TAP_OK(t, r.outlen == outlen && memcmp(r.out, c->out, outlen) == 0 &&
		       r.dec.size == outlen, "%s: decoded text", c->name);
		TAP_OK(t, c->consumed < 0 ? !r.dec.done && r.consumed == c->inlen
			  : r.dec.done && r.consumed == (size_t)c->consumed,
		       "%s: %s after %zu bytes", c->name, r.dec.done ? "ends" : "does not end",
		       r.consumed);
		TAP_OK(t, r.dec.bare_lf == c->bare_lf && r.dec.bare_cr == c->bare_cr,
		       "%s: bare LF %d, bare CR %d", c->name, r.dec.bare_lf, r.dec.bare_cr);
		TAP_OK(t, r.dec.longest_line == c->longest, "%s: longest line %zu",
		       c->name, r.dec.longest_line);
	}
}

/* test_done - after the end marker nothing more is consumed. */
static void test_done(struct tap *t)
{
	struct smtp_data_decoder dec;
	char out[16];
	size_t outlen = 99, n;

	smtp_data_init(&dec, UNLIMITED);
	n = smtp_data_decode(&dec, ".\r\nQUIT\r\n", 9, out, &outlen);
	TAP_OK(t, n == 3 && dec.done && outlen == 0, "end marker at once");
	n = smtp_data_decode(&dec, "QUIT\r\n", 6, out, &outlen);
	TAP_OK(t, n == 0 && outlen == 0, "a finished decoder consumes nothing");
	smtp_data_init(&dec, UNLIMITED);
	n = smtp_data_decode(&dec, "", 0, out, &outlen);
	TAP_OK(t, n == 0 && outlen == 0 && !dec.done, "empty input");
}

/* body_of - a message of size bytes of 'x' lines (lines of 78 + CRLF), then the end. */
static char *body_of(size_t size, size_t *len)
{
	char *b = malloc(size + 3);
	size_t i;

	if (b == NULL)
		return NULL;
	for (i = 0; i < size; i++)
		b[i] = i % 80 == 78 ? '\r' : i % 80 == 79 ? '\n' : 'x';
	/* A whole message ends with CRLF: make the last two bytes one. */
	if (size >= 2) {
		b[size - 2] = '\r';
		b[size - 1] = '\n';
	}
	memcpy(b + size, ".\r\n", 3);
	*len = size + 3;
	return b;
}

/* test_limit - exactly the limit passes, one byte more is too big but still consumed. */
static void test_limit(struct tap *t)
{
	static const size_t limit = 1000;
	struct result r = { .outlen = 0 };
	size_t len;
	char *b;

	b = body_of(limit, &len);
	TAP_OK(t, b && every_split(b, len, limit, &r) == 0, "limit: splits agree");
	TAP_OK(t, b && r.dec.done && !r.dec.too_big && r.outlen == limit &&
	       memcmp(r.out, b, limit) == 0 && r.dec.size == limit,
	       "message of exactly the limit is complete and not too big");
	free(b);
	b = body_of(limit + 1, &len);
	TAP_OK(t, b && every_split(b, len, limit, &r) == 0, "limit+1: splits agree");
	TAP_OK(t, b && r.dec.done && r.dec.too_big && r.outlen == limit &&
	       r.dec.size == limit + 1 && r.consumed == len,
	       "limit+1: too big, output stops at the limit, input consumed to the end");
	free(b);
	TAP_OK(t, every_split(S("abc\r\n.\r\n"), 0, &r) == 0 && r.dec.too_big &&
	       r.outlen == 0 && r.dec.done, "limit 0: everything is too big");
	TAP_OK(t, every_split(S(".\r\n"), 0, &r) == 0 && !r.dec.too_big && r.dec.done,
	       "limit 0: the empty message fits");
}

/* test_long_lines - longest_line over a 10000-octet line and after it. */
static void test_long_lines(struct tap *t)
{
	char *b = malloc(20000);
	struct result r = { .outlen = 0 };
	size_t n = 0;

	if (b == NULL)
		return;
	memset(b, 'y', 10000);
	n = 10000;
	memcpy(b + n, "\r\nshort\r\n..\r\n.\r\n", 16);
	n += 16;
	TAP_OK(t, feed(b, n, UNLIMITED, 5000, 3000, &r) == 0 && r.dec.done &&
	       r.dec.longest_line == 10000 && r.dec.size == 10000 + 2 + 7 + 3,
	       "10000-octet line measured across chunks (%zu)", r.dec.longest_line);
	memset(b, 'z', 999);
	memcpy(b + 999, "\r\n.\r\n", 5);
	TAP_OK(t, every_split(b, 1004, UNLIMITED, &r) == 0 && r.dec.longest_line == 999,
	       "999-octet line");
	free(b);
}

/*
 * reference - the obvious decoder: the message ends at the first
 * "\r\n.\r\n" counting the DATA command's CRLF; "\r\n." becomes "\r\n".
 */
static void reference(const char *in, size_t len, struct result *r)
{
	char buf[64];
	size_t n = len + 2, end = n, i, o = 0, line = 0, longest = 0;

	memcpy(buf, "\r\n", 2);
	memcpy(buf + 2, in, len);
	memset(&r->dec, 0, sizeof(r->dec));
	for (i = 0; i + 5 <= n; i++)
		if (memcmp(buf + i, "\r\n.\r\n", 5) == 0) {
			end = i + 2;
			r->dec.done = true;
			break;
		}
	r->consumed = r->dec.done ? end + 3 - 2 : len;
	for (i = 2; i < end; i++) {
		if (buf[i] == '.' && buf[i - 1] == '\n' && buf[i - 2] == '\r') {
			/* At the very end the dot may still be an end marker's. */
			continue;
		}
		if (buf[i] == '\n' && buf[i - 1] != '\r')
			r->dec.bare_lf = true;
		if (buf[i] == '\r' && i + 1 < end && buf[i + 1] != '\n')
			r->dec.bare_cr = true;
		/* An unfinished ".\r" at the end is held back. */
		if (!r->dec.done && buf[i] == '\r' && i == end - 1 && buf[i - 1] == '.' &&
		    buf[i - 2] == '\n' && buf[i - 3] == '\r')
			continue;
		r->out[o++] = buf[i];
	}
	r->outlen = o;
	r->dec.size = o;
	for (i = 0; i < o; i++) {
		if (r->out[i] == '\r' && i + 1 < o && r->out[i + 1] == '\n') {
			line = 0;
			i++;
			continue;
		}
		if (r->out[i] == '\r' && i + 1 == o && !r->dec.done)
			break;	/* maybe half of a CRLF */
		if (++line > longest)
			longest = line;
	}
	r->dec.longest_line = longest;
}

/* show_mismatch - prints both results as diagnostics. */
static void show_mismatch(const char *in, size_t len, const struct result *a,
			  const struct result *b)
{
	const struct result *r[2] = { a, b };
	size_t i, j;

	printf("# input:");
	for (i = 0; i < len; i++)
		printf(" %02x", (unsigned char)in[i]);
	printf("\n");
	for (j = 0; j < 2; j++) {
		printf("# %s: consumed %zu done %d lf %d cr %d size %llu longest %zu out:",
		       j ? "decoder" : "reference", r[j]->consumed, r[j]->dec.done,
		       r[j]->dec.bare_lf, r[j]->dec.bare_cr, (unsigned long long)r[j]->dec.size,
		       r[j]->dec.longest_line);
		for (i = 0; i < r[j]->outlen; i++)
			printf(" %02x", (unsigned char)r[j]->out[i]);
		printf("\n");
	}
}

/*
 * within_limit - decoding under a size limit: the same size and end,
 * the reference's output cut at the limit, too_big past it.
 */
static bool within_limit(const char *in, size_t len, uint64_t limit, const struct result *want)
{
	struct result got;
	size_t keep = want->dec.size > limit ? (size_t)limit : want->outlen;

	if (every_split(in, len, limit, &got) < 0)
		return false;
	return got.dec.size == want->dec.size && got.dec.done == want->dec.done &&
	       got.consumed == want->consumed && got.dec.too_big == (want->dec.size > limit) &&
	       got.outlen == keep && memcmp(got.out, want->out, keep) == 0;
}

/* test_exhaustive - all inputs of up to 8 bytes over . CR LF a, every split. */
static void test_exhaustive(struct tap *t)
{
	static const char alphabet[4] = { '.', '\r', '\n', 'a' };
	char in[8];
	struct result want, got;
	size_t len, i, bad = 0, total = 0;
	unsigned long k, max;

	for (len = 0; len <= 8; len++) {
		for (max = 1, i = 0; i < len; i++)
			max *= 4;
		for (k = 0; k < max; k++) {
			unsigned long v = k;

			for (i = 0; i < len; i++, v /= 4)
				in[i] = alphabet[v % 4];
			reference(in, len, &want);
			total++;
			if (every_split(in, len, UNLIMITED, &got) < 0 || !same(&want, &got)) {
				if (bad++ < 5)
					show_mismatch(in, len, &want, &got);
			}
			for (uint64_t lim = 0; lim <= 4; lim += 2)
				if (!within_limit(in, len, lim, &want) && bad++ < 5)
					printf("# limit %llu differs for the input above\n",
					       (unsigned long long)lim);
		}
	}
	TAP_OK(t, bad == 0, "%zu inputs agree with the reference decoder, also under size limits 0, 2, 4 (%zu differ)", total, bad);
}

/* Cases under bare_newline = normalize. */
struct norm_case {
	const char *name;
	const char *in;
	size_t inlen;
	const char *out;
	size_t outlen;
	long consumed;		/* -1: the message has not ended */
	unsigned bare_lfs;
	unsigned dropped;
};

static const struct norm_case norm_cases[] = {
	{ "CRLF only: as before", S("a\r\n..\r\n.\r\nQUIT\r\n"), S("a\r\n.\r\n"), 10, 0, 0 },
	{ "bare LF line end stored as CRLF", S("a\nb\n\r\n.\r\n"), S("a\r\nb\r\n\r\n"), 9, 2, 0 },
	{ "bare CR stays data", S("a\rb\r\n.\r\n"), S("a\rb\r\n"), 8, 0, 0 },
	{ "dot unstuffed after a bare LF", S("a\n..x\n.\r\n"), S("a\r\n.x\r\n"), -1, 2, 1 },
	/* Smuggling: none of these end the message. */
	{ "LF.CRLF dropped, not the end", S("a\n.\r\nMAIL FROM:<x@y>\r\n"),
	  S("a\r\nMAIL FROM:<x@y>\r\n"), -1, 1, 1 },
	{ "CRLF.LF dropped, not the end", S("a\r\n.\nMAIL FROM:<x@y>\r\n"),
	  S("a\r\nMAIL FROM:<x@y>\r\n"), -1, 1, 1 },
	{ "LF.LF dropped, not the end", S("a\n.\nRCPT TO:<x@y>\n"),
	  S("a\r\nRCPT TO:<x@y>\r\n"), -1, 3, 1 },
	{ "CR.CR is data", S("a\r.\rDATA\r"), S("a\r.\rDATA\r"), -1, 0, 0 },
	{ "CR.CRLF is data", S("a\r.\r\nX\r\n"), S("a\r.\r\nX\r\n"), -1, 0, 0 },
	{ "after a bare-LF line, CRLF.CRLF is dropped", S("a\n\r\n.\r\n"),
	  S("a\r\n\r\n"), 7, 1, 0 },
	{ "dot line after bare LF, then the real end", S("a\n.\r\nb\r\n.\r\nQUIT\r\n"),
	  S("a\r\nb\r\n"), 11, 1, 1 },
	{ "at the start, LF.LF", S("\n.\n"), S("\r\n"), -1, 2, 1 },
	{ "all bare LFs", S("\n\n\n\n"), S("\r\n\r\n\r\n\r\n"), -1, 4, 0 },
};

/* test_normalize - the normalize cases, through every split; and its size limit. */
static void test_normalize(struct tap *t)
{
	const struct norm_case *c;
	struct result r = { .outlen = 0 };

	normalize = true;
	for (c = norm_cases; c < norm_cases + sizeof(norm_cases) / sizeof(norm_cases[0]); c++) {
		TAP_OK(t, every_split(c->in, c->inlen, UNLIMITED, &r) == 0,
		       "normalize %s: same result for every split", c->name);
		TAP_OK(t, r.outlen == c->outlen && memcmp(r.out, c->out, c->outlen) == 0 &&
		       r.dec.size == c->outlen, "normalize %s: decoded text", c->name);
		TAP_OK(t, c->consumed < 0 ? !r.dec.done && r.consumed == c->inlen
			  : r.dec.done && r.consumed == (size_t)c->consumed,
		       "normalize %s: %s after %zu bytes", c->name,
		       r.dec.done ? "ends" : "does not end", r.consumed);
		TAP_OK(t, r.dec.bare_lf_count == c->bare_lfs && r.dec.dropped_dots == c->dropped,
		       "normalize %s: %llu bare LF, %llu dot lines dropped", c->name,
		       (unsigned long long)r.dec.bare_lf_count,
		       (unsigned long long)r.dec.dropped_dots);
	}
	/* A bare LF's CR counts against the limit: 5 bytes in, 6 out. */
	TAP_OK(t, every_split(S("ab\n\r\n.\r\n"), 6, &r) == 0 && !r.dec.too_big && r.dec.done &&
	       r.outlen == 6, "normalize: the added CR counts, at the limit");
	TAP_OK(t, every_split(S("ab\n\r\n.\r\n"), 5, &r) == 0 && r.dec.too_big && r.dec.done &&
	       r.outlen == 5 && memcmp(r.out, "ab\r\n\r", 5) == 0, "normalize: one over: too big");
	normalize = false;
}

/*
 * norm_reference - Postfix 3.9's rules line by line: lines end at each
 * LF (CRLF or bare); a line-start dot goes; a "." line ends the message
 * when it and the line before end in CRLF, else it is dropped; what is
 * left of an unfinished line is output as the decoder can know it.
 */
static void norm_reference(const char *in, size_t len, struct result *r)
{
	size_t pos = 0, o = 0;
	bool prev_bare = false;

	memset(&r->dec, 0, sizeof(r->dec));
	while (pos < len) {
		const char *lf = memchr(in + pos, '\n', len - pos);
		size_t end, clen;
		const char *c = in + pos;
		bool bare;

		if (!lf) {
			/* Unfinished: a leading dot is held (dropped), and ".\r" too. */
			clen = len - pos;
			if (clen > 0 && c[0] == '.') {
				c++;
				clen--;
				if (clen == 1 && c[0] == '\r')
					clen = 0;
			}
			memcpy(r->out + o, c, clen);
			o += clen;
			pos = len;
			break;
		}
		end = (size_t)(lf - in);
		bare = end == pos || in[end - 1] != '\r';
		clen = end - pos - (bare ? 0 : 1);
		if (bare)
			r->dec.bare_lf_count++;
		if (clen > 0 && c[0] == '.') {
			if (clen == 1) {
				pos = end + 1;
				if (bare || prev_bare) {
					r->dec.dropped_dots++;
					prev_bare = bare;
					continue;
				}
				r->dec.done = true;
				break;
			}
			c++;
			clen--;
		}
		memcpy(r->out + o, c, clen);
		o += clen;
		memcpy(r->out + o, "\r\n", 2);
		o += 2;
		prev_bare = bare;
		pos = end + 1;
	}
	r->consumed = pos;
	r->outlen = o;
	r->dec.size = o;
}

/* test_norm_exhaustive - all inputs of up to 8 bytes over . CR LF a, normalizing. */
static void test_norm_exhaustive(struct tap *t)
{
	static const char alphabet[4] = { '.', '\r', '\n', 'a' };
	char in[8];
	struct result want, got;
	size_t len, i, bad = 0, total = 0;
	unsigned long k, max;

	normalize = true;
	for (len = 0; len <= 8; len++) {
		for (max = 1, i = 0; i < len; i++)
			max *= 4;
		for (k = 0; k < max; k++) {
			unsigned long v = k;

			for (i = 0; i < len; i++, v /= 4)
				in[i] = alphabet[v % 4];
			norm_reference(in, len, &want);
			total++;
			if (every_split(in, len, UNLIMITED, &got) < 0 || got.outlen != want.outlen ||
			    memcmp(got.out, want.out, got.outlen) != 0 ||
			    got.consumed != want.consumed || got.dec.done != want.dec.done ||
			    got.dec.size != want.dec.size ||
			    got.dec.bare_lf_count != want.dec.bare_lf_count ||
			    got.dec.dropped_dots != want.dec.dropped_dots) {
				if (bad++ < 5)
					show_mismatch(in, len, &want, &got);
			}
		}
	}
	normalize = false;
	TAP_OK(t, bad == 0, "normalize: %zu inputs agree with the line-by-line reference (%zu differ)",
	       total, bad);
}

int main(void)
{
	struct tap t = { 0, 0 };

	test_cases(&t);
	test_done(&t);
	test_limit(&t);
	test_long_lines(&t);
	test_exhaustive(&t);
	test_normalize(&t);
	test_norm_exhaustive(&t);
	return tap_done(&t);
}
