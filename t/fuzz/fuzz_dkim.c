/*
 * fuzz_dkim.c - libFuzzer target for DKIM's canonicalization and signer
 * input (dkim/canon.c, dkim/sign.c): what a client sends becomes the
 * bytes they hash. Input: the first two bytes pick two cuts; the rest is
 * a message (header section, empty line, body).
 *
 * Checks: the relaxed body fed whole and fed in three pieces at the
 * cuts gives the same bytes (so the same body hash, whatever the
 * network's split); the output never ends in an empty line and ends in
 * CRLF unless empty; a signer fed the message in the same three pieces
 * finds the same From: domain as one fed whole; relaxed header output
 * fits the room dkim_canon_header promises.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dkim/dkim.h"

struct buf {
	char *p;
	size_t len, cap;
};

static void buf_out(void *arg, const void *data, size_t len)
{
	struct buf *b = arg;

	if (b->len + len > b->cap) {
		b->cap = (b->len + len) * 2 + 16;
		if ((b->p = realloc(b->p, b->cap)) == NULL)
			abort();
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
}

static void canon_body(const char *p, size_t size, size_t a, size_t b, struct buf *out)
{
	struct dkim_body_canon c;

	dkim_body_canon_init(&c, buf_out, out);
	dkim_body_canon_feed(&c, p, a);
	dkim_body_canon_feed(&c, p + a, b - a);
	dkim_body_canon_feed(&c, p + b, size - b);
	dkim_body_canon_finish(&c);
}

static void check_body(const char *p, size_t size, size_t a, size_t b)
{
	struct buf whole = { 0 }, split = { 0 };

	canon_body(p, size, size, size, &whole);
	canon_body(p, size, a, b, &split);
	if (whole.len != split.len || (whole.len && memcmp(whole.p, split.p, whole.len) != 0))
		abort();
	if (whole.len > 0 && (whole.len < 2 || memcmp(whole.p + whole.len - 2, "\r\n", 2) != 0))
		abort();
	if (whole.len >= 4 && memcmp(whole.p + whole.len - 4, "\r\n\r\n", 4) == 0)
		abort();
	free(whole.p);
	free(split.p);
}

static void check_signer(const char *p, size_t size, size_t a, size_t b)
{
	struct dkim_signer *x = dkim_signer_new(), *y = dkim_signer_new();
	const char *dx, *dy;

	if (!x || !y)
		abort();
	dkim_signer_feed(x, p, size);
	dkim_signer_feed(y, p, a);
	dkim_signer_feed(y, p + a, b - a);
	dkim_signer_feed(y, p + b, size - b);
	dx = dkim_signer_from_domain(x);
	dy = dkim_signer_from_domain(y);
	if ((dx == NULL) != (dy == NULL) || (dx && strcmp(dx, dy) != 0))
		abort();
	dkim_signer_free(x);
	dkim_signer_free(y);
}

static void check_header(const char *p, size_t size)
{
	char *out = malloc(size + 3);

	if (out == NULL)
		abort();
	if (dkim_canon_header(p, size, out, true) > size + 3)
		abort();
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t a, b;
	const char *p;

	if (size < 2)
		return 0;
	p = (const char *)data + 2;
	a = data[0] % (size - 1);
	b = a + data[1] % (size - 1 - a);
	size -= 2;
	if (a > size || b > size)
		return 0;
	check_body(p, size, a, b);
	check_signer(p, size, a, b);
	if (size < 4096)
		check_header(p, size);
	return 0;
}
