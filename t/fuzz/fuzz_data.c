/*
 * fuzz_data.c - libFuzzer target for the DATA decoder (smtp_data_init /
 * smtp_data_decode in smtp/data.c). Input: one byte choosing the size
 * limit, two bytes choosing a split point (the top bit of the first:
 * bare_newline = normalize), then the bytes a client sends after
 * "DATA\r\n". The stream is decoded three ways: in one call, in two
 * calls split at the chosen point, and one byte per call; every call gets
 * an output buffer of exactly inlen bytes (2 * inlen normalizing), so
 * writing past it is an ASan error.
 *
 * Checks: per call, consumed <= inlen and output <= inlen, and all input
 * is consumed unless the end marker was; over the calls, output (with a
 * carried byte) <= input consumed; once done, nothing more is consumed;
 * all three ways give the same output, end and flags; and they match a
 * plain reference: the message ends exactly after the
 * first <CRLF>.<CRLF> (the DATA line's CRLF counting as the first), the
 * output is that text with line-start dots removed, cut at the limit,
 * and bare CR / bare LF are flagged when present (SMTP smuggling).
 * Normalizing, the reference goes line by line (Postfix 3.9): a bare LF
 * ends a line stored as CRLF, a "." line ends the message only between
 * two CRLF line ends, else it is dropped.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp.h"

#define BYTEWISE_MAX 4096	/* inputs up to this are also fed a byte per call */

static bool normalize;	/* this input is decoded with smtp_data_normalize */

struct result {
	char *out;
	size_t outlen, consumed;
	struct smtp_data_decoder dec;
};

/* feed - one smtp_data_decode call with an exact-size output buffer. */
static void feed(struct result *r, const char *in, size_t inlen)
{
	bool was_done = r->dec.done;
	size_t room = normalize ? SMTP_DATA_OUT_MAX(inlen) : inlen;
	char *out = malloc(room);
	size_t outlen = (size_t)-1, n;

	if (out == NULL && inlen > 0)
		abort();
	n = smtp_data_decode(&r->dec, in, inlen, out, &outlen);
	if (n > inlen || outlen > room)
		abort();
	if (was_done && (n != 0 || outlen != 0))
		abort();
	/* Only the end marker leaves input behind, never a carried byte. */
	if (n < inlen && !r->dec.done)
		abort();
	memcpy(r->out + r->outlen, out, outlen);
	r->outlen += outlen;
	r->consumed += n;
	/* Every byte out (or carried) stands for its own byte in: the dots only
	 * take away (normalizing, a bare LF gives two). */
	if (r->outlen + r->dec.has_carry > (normalize ? 2 * r->consumed : r->consumed))
		abort();
	free(out);
}

/* finish - a byte still carried at the end belongs to the output. */
static void finish(struct result *r)
{
	if (r->dec.has_carry)
		r->out[r->outlen++] = r->dec.carry;
}

static void start(struct result *r, uint64_t limit, size_t len)
{
	memset(r, 0, sizeof(*r));
	r->out = malloc(2 * len + 1);
	if (r->out == NULL)
		abort();
	smtp_data_init(&r->dec, limit);
	if (normalize)
		smtp_data_normalize(&r->dec);
}

/* same - two decodes agree on everything the session looks at. */
static void same(const struct result *a, const struct result *b)
{
	if (a->outlen != b->outlen || memcmp(a->out, b->out, a->outlen) != 0 ||
	    a->consumed != b->consumed || a->dec.done != b->dec.done ||
	    a->dec.size != b->dec.size || a->dec.too_big != b->dec.too_big ||
	    a->dec.bare_lf != b->dec.bare_lf || a->dec.bare_cr != b->dec.bare_cr ||
	    a->dec.longest_line != b->dec.longest_line ||
	    a->dec.bare_lf_count != b->dec.bare_lf_count ||
	    a->dec.dropped_dots != b->dec.dropped_dots)
		abort();
}

/* raw - byte i of the stream with the DATA line's CRLF in front (i >= -2). */
static char raw(const char *in, long i)
{
	return i == -2 ? '\r' : i == -1 ? '\n' : in[i];
}

/* reference - what the decoder must do, written as plainly as possible. */
static void reference(const char *in, size_t len, uint64_t limit, const struct result *r)
{
	size_t end = len, i, n = 0;
	bool done = false, bare_lf = false, bare_cr = false, pending_cr = false;
	uint64_t size;
	char *want = malloc(len + 1);

	if (want == NULL)
		abort();
	/* The end: the first CRLF "." CRLF, counting the DATA line's CRLF. */
	for (i = 0; i + 3 <= len; i++)
		if (raw(in, (long)i - 2) == '\r' && raw(in, (long)i - 1) == '\n' &&
		    in[i] == '.' && in[i + 1] == '\r' && in[i + 2] == '\n') {
			end = i + 3;
			done = true;
			break;
		}
	/* The text: everything before the end marker's ".\r\n", line-start dots removed. */
	for (i = 0; i < (done ? end - 3 : end); i++) {
		bool line_start = raw(in, (long)i - 2) == '\r' && raw(in, (long)i - 1) == '\n';

		if (!(line_start && in[i] == '.'))
			want[n++] = in[i];
		if (in[i] == '\n' && raw(in, (long)i - 1) != '\r')
			bare_lf = true;
		if (in[i] == '\r' && i + 1 < end && in[i + 1] != '\n')
			bare_cr = true;
	}
	/* A stream that stops on a line-start ".\r" has not decided about that CR yet. */
	if (!done && len >= 2 && in[len - 2] == '.' && in[len - 1] == '\r' &&
	    raw(in, (long)len - 4) == '\r' && raw(in, (long)len - 3) == '\n')
		pending_cr = true;
	if (pending_cr)
		n--;
	size = n;
	if (n > limit)
		n = (size_t)limit;
	if (r->dec.done != done || r->consumed != end || r->dec.size != size ||
	    r->dec.too_big != (size > limit) || r->outlen != n || memcmp(r->out, want, n) != 0 ||
	    r->dec.bare_lf != bare_lf || r->dec.bare_cr != bare_cr)
		abort();
	free(want);
}

/* norm_reference - the normalizing decoder, line by line (see the top). */
static void norm_reference(const char *in, size_t len, uint64_t limit, const struct result *r)
{
	size_t pos = 0, o = 0;
	bool prev_bare = false, done = false;
	char *want = malloc(2 * len + 1);

	if (want == NULL)
		abort();
	while (pos < len) {
		const char *lf = memchr(in + pos, '\n', len - pos);
		const char *c = in + pos;
		size_t end, clen;
		bool bare;

		if (!lf) {
			/* Unfinished: a leading dot is held, and ".\r" as a whole. */
			clen = len - pos;
			if (clen > 0 && c[0] == '.') {
				c++;
				clen--;
				if (clen == 1 && c[0] == '\r')
					clen = 0;
			}
			memcpy(want + o, c, clen);
			o += clen;
			pos = len;
			break;
		}
		end = (size_t)(lf - in);
		bare = end == pos || in[end - 1] != '\r';
		clen = end - pos - (bare ? 0 : 1);
		if (clen > 0 && c[0] == '.') {
			if (clen == 1) {
				pos = end + 1;
				if (bare || prev_bare) {
					prev_bare = bare;
					continue;
				}
				done = true;
				break;
			}
			c++;
			clen--;
		}
		memcpy(want + o, c, clen);
		o += clen;
		memcpy(want + o, "\r\n", 2);
		o += 2;
		prev_bare = bare;
		pos = end + 1;
	}
	if (r->dec.done != done || r->consumed != pos || r->dec.size != o ||
	    r->dec.too_big != (o > limit) || r->outlen != (o > limit ? (size_t)limit : o) ||
	    memcmp(r->out, want, r->outlen) != 0)
		abort();
	free(want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct result whole, split, bytes;
	uint64_t limit;
	size_t cut, len;
	const char *in;

	if (size < 3)
		return 0;
	/* Small limits reach the too-big paths; 0xc0 and up is no limit. */
	limit = data[0] < 0x80 ? data[0] : data[0] < 0xc0 ? (uint64_t)(data[0] - 0x80) * 64 : UINT64_MAX;
	in = (const char *)data + 3;
	len = size - 3;
	normalize = (data[1] & 0x80) != 0;
	cut = ((size_t)(data[1] & 0x7f) << 8 | data[2]) % (len + 1);

	start(&whole, limit, len);
	feed(&whole, in, len);
	feed(&whole, in + whole.consumed, len - whole.consumed);	/* pipelined rest: untouched once done */
	finish(&whole);
	if (normalize)
		norm_reference(in, len, limit, &whole);
	else
		reference(in, len, limit, &whole);

	start(&split, limit, len);
	feed(&split, in, cut);
	if (split.consumed == cut)
		feed(&split, in + cut, len - cut);
	finish(&split);
	same(&whole, &split);

	if (len <= BYTEWISE_MAX) {
		start(&bytes, limit, len);
		for (size_t i = 0; i < len && !bytes.dec.done; i++)
			feed(&bytes, in + i, 1);
		finish(&bytes);
		same(&whole, &bytes);
		free(bytes.out);
	}
	free(whole.out);
	free(split.out);
	return 0;
}
