/*
 * base64.c - strict base64 for SMTP AUTH: the 334 challenges we send and
 * the responses (and initial responses) clients send.
 *
 * Must not: accept anything but the canonical encoding - no whitespace,
 * no line breaks, no characters outside the alphabet, no missing or
 * misplaced padding, and no non-zero bits in the last character before
 * the padding (RFC 4648 §3.5 lets a decoder reject them; we do, so every
 * accepted string has exactly one decoding and one encoding). Must not
 * write past outsize, or do I/O.
 *
 * Follows: RFC 4648 §4 (base64 alphabet, padding required); RFC 4954 §4
 * (AUTH responses are base64; "=" alone is the empty initial response,
 * which the SMTP session handles before calling us).
 */
#include <stdint.h>

#include "auth/auth.h"

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* b64_value - the 6-bit value of an alphabet character, or -1. */
static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* b64_padding - how many '=' end the input (0..2), or -1 when misplaced. */
static int b64_padding(const char *in, size_t len)
{
	int pad = 0;

	if (len >= 1 && in[len - 1] == '=')
		pad++;
	if (len >= 2 && in[len - 2] == '=')
		pad++;
	/* "x===" and "====" are not padding that any encoder writes. */
	if (pad == 2 && len >= 3 && in[len - 3] == '=')
		return -1;
	if (pad == 1 && len >= 2 && in[len - 2] == '=')
		return -1;
	return pad;
}

/* b64_quantum - decodes one 4-character group into 1..3 bytes; -1 on a bad character. */
static int b64_quantum(const char *q, int pad, char *out)
{
	uint32_t bits = 0;
	int i, v;

	for (i = 0; i < 4 - pad; i++) {
		v = b64_value((unsigned char)q[i]);
		if (v < 0)
			return -1;
		bits = bits << 6 | (uint32_t)v;
	}
	bits <<= 6 * pad;
	/* Canonical only: the bits the padding hides must be zero. */
	if ((pad == 1 && (bits & 0xff) != 0) || (pad == 2 && (bits & 0xffff) != 0))
		return -1;
	out[0] = (char)(bits >> 16);
	if (pad < 2)
		out[1] = (char)(bits >> 8);
	if (pad < 1)
		out[2] = (char)bits;
	return 3 - pad;
}

/* auth_base64_decode - strict RFC 4648 decode; see auth.h. */
int auth_base64_decode(const char *in, size_t len, char *out, size_t outsize, size_t *outlen)
{
	size_t i, n = 0;
	int pad, got;

	if (len % 4 != 0)
		return -1;
	pad = b64_padding(in, len);
	if (pad < 0)
		return -1;
	if (len / 4 * 3 - (size_t)pad > outsize)
		return -1;
	for (i = 0; i < len; i += 4) {
		/* Padding belongs to the last quantum only. */
		got = b64_quantum(in + i, i + 4 == len ? pad : 0, out + n);
		if (got < 0)
			return -1;
		n += (size_t)got;
	}
	*outlen = n;
	return 0;
}

/*
 * auth_base64_encode - encodes len bytes plus a NUL; returns the length
 * without the NUL, or 0 when outsize is too small. Empty input gives ""
 * and also returns 0 (outsize must still be at least 1).
 */
size_t auth_base64_encode(const char *in, size_t len, char *out, size_t outsize)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t i, n = 0;
	uint32_t bits;

	if (len > (SIZE_MAX - 1) / 4 * 3 - 2 || (len + 2) / 3 * 4 + 1 > outsize)
		return 0;
	for (i = 0; i + 2 < len; i += 3) {
		bits = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[n++] = b64_alphabet[bits >> 18 & 63];
		out[n++] = b64_alphabet[bits >> 12 & 63];
		out[n++] = b64_alphabet[bits >> 6 & 63];
		out[n++] = b64_alphabet[bits & 63];
	}
	if (i < len) {
		bits = (uint32_t)p[i] << 16;
		if (i + 1 < len)
			bits |= (uint32_t)p[i + 1] << 8;
		out[n++] = b64_alphabet[bits >> 18 & 63];
		out[n++] = b64_alphabet[bits >> 12 & 63];
		out[n++] = i + 1 < len ? b64_alphabet[bits >> 6 & 63] : '=';
		out[n++] = '=';
	}
	out[n] = '\0';
	return n;
}
