/*
 * client_dot.c - unit tests for deliver/client_dot.c, the client's
 * dot-stuffing: line-start dots (first byte, after CRLF, split across
 * chunks at every position), the CRLF added before ".\r\n", empty
 * bodies, bare LF repaired. Every result is decoded again with the
 * server's DATA decoder (smtp/data.c), which must give back the body
 * and find the end exactly at the end. Output buffers are exact-size
 * heap blocks of 2 * inlen, so ASAN catches an overrun.
 */
#include <stdlib.h>
#include <string.h>

#include "deliver/deliver.h"
#include "smtp/smtp.h"
#include "t/unit/tap.h"

/* encode - in split at cut (and the rest in one piece); returns a malloc'd result. */
static char *encode(const char *in, size_t len, size_t cut, size_t *outlen)
{
	struct smtp_dot_encoder e;
	char *res = malloc(2 * len + 5), *out;
	size_t n = 0, pieces[2] = { cut, len - cut }, pos = 0;

	smtp_dot_init(&e);
	for (int i = 0; i < 2; i++) {
		out = malloc(2 * pieces[i] + 1);
		size_t got = smtp_dot_encode(&e, in + pos, pieces[i], out);
		memcpy(res + n, out, got);
		n += got;
		pos += pieces[i];
		free(out);
	}
	n += smtp_dot_finish(&e, res + n);
	*outlen = n;
	return res;
}

/* roundtrip - the server's decoder gives want back and ends exactly at the end. */
static bool roundtrip(const char *enc, size_t len, const char *want, size_t wantlen)
{
	struct smtp_data_decoder dec;
	char *out = malloc(len + 1);
	size_t got, used;
	bool ok;

	smtp_data_init(&dec, UINT64_MAX);
	used = smtp_data_decode(&dec, enc, len, out, &got);
	ok = dec.done && used == len && got == wantlen && memcmp(out, want, got) == 0;
	free(out);
	return ok;
}

struct dot_case {
	const char *in;
	const char *out;	/* the wire form, end marker included */
	const char *decoded;	/* what the peer stores: in, with CRLF added */
};

static const struct dot_case cases[] = {
	{ "", ".\r\n", "" },
	{ "a\r\n", "a\r\n.\r\n", "a\r\n" },
	{ "a", "a\r\n.\r\n", "a\r\n" },
	{ ".\r\n", "..\r\n.\r\n", ".\r\n" },
	{ ".", "..\r\n.\r\n", ".\r\n" },
	{ "a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n.\r\n", "a\r\n.\r\nb\r\n" },
	{ "a\r\n..b\r\n", "a\r\n...b\r\n.\r\n", "a\r\n..b\r\n" },
	{ "a.b\r\n.c", "a.b\r\n..c\r\n.\r\n", "a.b\r\n.c\r\n" },
	{ "a\n.\nb", "a\r\n..\r\nb\r\n.\r\n", "a\r\n.\r\nb\r\n" },
	{ "\r\n\r\n.", "\r\n\r\n..\r\n.\r\n", "\r\n\r\n.\r\n" },
	{ "a\r.b\r\n", "a\r.b\r\n.\r\n", "a\r.b\r\n" },
};

int main(void)
{
	struct tap t = { 0 };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct dot_case *dc = &cases[i];
		size_t len = strlen(dc->in), outlen;
		bool all = true, rt = true;

		for (size_t cut = 0; cut <= len; cut++) {
			char *res = encode(dc->in, len, cut, &outlen);

			if (outlen != strlen(dc->out) || memcmp(res, dc->out, outlen) != 0)
				all = false;
			if (!roundtrip(res, outlen, dc->decoded, strlen(dc->decoded)))
				rt = false;
			free(res);
		}
		TAP_OK(&t, all, "case %zu: the wire form at every split", i);
		TAP_OK(&t, rt, "case %zu: the server's decoder gives the body back", i);
	}

	/* A larger body of dot lines, fed in chunks of every size 1..64. */
	{
		char body[2000], *wire = malloc(5000);
		size_t blen = 0, wlen;
		bool ok = true;

		for (int i = 0; blen + 20 < sizeof(body); i++)
			blen += (size_t)sprintf(body + blen, "%s%d\r\n", i % 3 ? "." : "..x", i);
		for (size_t chunk = 1; chunk <= 64; chunk++) {
			struct smtp_dot_encoder e;

			smtp_dot_init(&e);
			wlen = 0;
			for (size_t pos = 0; pos < blen; pos += chunk) {
				size_t n = blen - pos < chunk ? blen - pos : chunk;

				wlen += smtp_dot_encode(&e, body + pos, n, wire + wlen);
			}
			wlen += smtp_dot_finish(&e, wire + wlen);
			if (!roundtrip(wire, wlen, body, blen))
				ok = false;
		}
		TAP_OK(&t, ok, "a 2 KB body of dot lines in chunks of 1..64 bytes round-trips");
		free(wire);
	}
	return tap_done(&t);
}
