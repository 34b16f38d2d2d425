/*
 * base64.c - unit tests for auth/base64.c: the RFC 4648 §10 vectors,
 * round trips of every length 0..300, rejected inputs (whitespace, bad
 * characters, bad padding, non-canonical trailing bits) and output
 * buffers that are too small.
 */
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "t/unit/tap.h"

/* RFC 4648 §10. */
static const struct { const char *plain, *b64; } vectors[] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

/* Inputs a strict decoder refuses, each with why; lengths are explicit
 * (sizeof - 1) so embedded NULs count, and most are a multiple of 4 so
 * the length check alone cannot be what rejects them. */
#define BAD(s, why) { s, sizeof(s) - 1, why }
static const struct { const char *in; size_t len; const char *why; } bad[] = {
	BAD("Zg", "missing padding"),
	BAD("Zg=", "short padding"),
	BAD("Zm9", "length not a multiple of 4"),
	BAD("Zm9v ", "trailing space (length 5)"),
	BAD("Zm9 ", "trailing space"),
	BAD(" Zm9", "leading space"),
	BAD("Zm9vYm\r\n", "trailing CRLF"),
	BAD("Zm9\nYmFy", "line break inside"),
	BAD("Zm9\tYmFy", "tab inside"),
	BAD("Zm9*", "character outside the alphabet"),
	BAD("Zm9-", "base64url '-'"),
	BAD("Zm9_", "base64url '_'"),
	BAD("Zm9\x80", "8-bit byte"),
	BAD("Zg==Zm9v", "padding in the middle"),
	BAD("Z===", "three padding characters"),
	BAD("====", "only padding"),
	BAD("Z=g=", "padding then data"),
	BAD("=Zm9", "padding first"),
	BAD("Zh==", "non-zero bits hidden by == (canonical Zg==)"),
	BAD("Zm9=", "non-zero bits hidden by = (canonical Zm8=)"),
	BAD("Zm9\0", "NUL byte"),
};

/* test_vectors - encode and decode of the RFC vectors. */
static void test_vectors(struct tap *t)
{
	char out[64];
	size_t n, outlen;

	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const char *p = vectors[i].plain, *b = vectors[i].b64;

		n = auth_base64_encode(p, strlen(p), out, sizeof(out));
		TAP_OK(t, n == strlen(b) && strcmp(out, b) == 0, "encode \"%s\" = \"%s\"", p, out);
		outlen = 99;
		TAP_OK(t, auth_base64_decode(b, strlen(b), out, sizeof(out), &outlen) == 0 &&
			  outlen == strlen(p) && memcmp(out, p, outlen) == 0, "decode \"%s\"", b);
	}
}

/* round_trip - encodes and decodes len random bytes; 1 when all agrees. */
static int round_trip(size_t len)
{
	char in[300], enc[404], dec[300];
	size_t n, outlen;

	for (size_t i = 0; i < len; i++)
		in[i] = (char)(rand() & 0xff);
	n = auth_base64_encode(in, len, enc, sizeof(enc));
	if (n != (len + 2) / 3 * 4 || strlen(enc) != n)
		return 0;
	if (auth_base64_decode(enc, n, dec, sizeof(dec), &outlen) != 0)
		return 0;
	return outlen == len && memcmp(in, dec, len) == 0;
}

/* test_round_trips - every length 0..300; exact-size buffers are enough. */
static void test_round_trips(struct tap *t)
{
	size_t len, fails = 0;

	srand(4648);
	for (len = 0; len <= 300; len++)
		fails += !round_trip(len);
	TAP_OK(t, fails == 0, "round trips of lengths 0..300 (%zu failed)", fails);
}

/* test_bad - every bad input is refused. */
static void test_bad(struct tap *t)
{
	char out[64];
	size_t outlen;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		TAP_OK(t, auth_base64_decode(bad[i].in, bad[i].len, out, sizeof(out), &outlen) == -1,
		       "rejects %s", bad[i].why);
	}
}

/* test_small_buffers - exact sizes work, one byte less fails. */
static void test_small_buffers(struct tap *t)
{
	char out[16];
	size_t outlen;

	TAP_OK(t, auth_base64_encode("foo", 3, out, 5) == 4, "encode into exactly 4+1 bytes");
	TAP_OK(t, auth_base64_encode("foo", 3, out, 4) == 0, "encode refuses 4 bytes (no room for NUL)");
	TAP_OK(t, auth_base64_encode("f", 1, out, 4) == 0, "encode of 1 byte refuses 4 bytes");
	TAP_OK(t, auth_base64_encode("", 0, out, 1) == 0 && out[0] == '\0', "empty encodes to \"\"");
	TAP_OK(t, auth_base64_decode("Zm9vYmE=", 8, out, 5, &outlen) == 0 && outlen == 5,
	       "decode into exactly 5 bytes");
	TAP_OK(t, auth_base64_decode("Zm9vYmE=", 8, out, 4, &outlen) == -1,
	       "decode refuses a 4-byte buffer for 5 bytes");
	TAP_OK(t, auth_base64_decode("", 0, out, 0, &outlen) == 0 && outlen == 0,
	       "empty decodes into a 0-byte buffer");
}

int main(void)
{
	struct tap t = { 0 };

	test_vectors(&t);
	test_round_trips(&t);
	test_bad(&t);
	test_small_buffers(&t);
	return tap_done(&t);
}
