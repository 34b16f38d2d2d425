/*
 * idna.c - UTF-8 checks and internationalized domain names for
 * SMTPUTF8: is a string well-formed UTF-8 that may go into an address,
 * and a domain's A-label form (RFC 3492 Punycode behind "xn--"), the
 * one form DNS lookups, routes and relay control compare, so that a
 * Unicode look-alike of a local domain (a Cyrillic 'а' in campus.test)
 * is a different, foreign domain and can never relay.
 *
 * Must not: allocate, do I/O, depend on the locale, or read past the
 * length it is given. Out of scope (they need Unicode tables, which
 * means libidn2; see the README): NFC normalisation and the IDNA2008
 * code point tables (RFC 5892). Only ASCII letters are lower-cased.
 * A U-label that is not in NFC therefore gets an A-label no registry
 * would issue; it can only fail to match, never match something else.
 *
 * Follows: RFC 3629 (UTF-8: no overlong forms, no surrogates, nothing
 * above U+10FFFF), RFC 3492 (Punycode), RFC 5890 §2.3.2.1 (A-labels,
 * "xn--"), RFC 6531 §3.3 (UTF-8 in addresses; C0 and C1 controls are
 * refused as RFC 6530 §10.1 advises), RFC 1035 §2.3.4 (63-octet labels,
 * 255-octet names).
 */
#include <string.h>

#include "util/util.h"

/* mtad_utf8_next - see util.h. */
size_t mtad_utf8_next(const char *str, size_t len, uint32_t *cp)
{
	const unsigned char *s = (const unsigned char *)str;
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n, i;
	uint32_t c;

	if (len == 0)
		return 0;
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		c = s[0] & 0x1fu;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		c = s[0] & 0x0fu;
		if (s[0] == 0xe0)
			lo = 0xa0;	/* overlong below U+0800 */
		else if (s[0] == 0xed)
			hi = 0x9f;	/* UTF-16 surrogates */
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		c = s[0] & 0x07u;
		if (s[0] == 0xf0)
			lo = 0x90;	/* overlong below U+10000 */
		else if (s[0] == 0xf4)
			hi = 0x8f;	/* above U+10FFFF */
	} else {
		return 0;	/* a continuation byte, C0/C1 (overlong), F5..FF */
	}
	if (len < n)
		return 0;
	for (i = 1; i < n; i++) {
		unsigned char b = s[i];

		if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xbf))
			return 0;
		c = (c << 6) | (b & 0x3fu);
	}
	*cp = c;
	return n;
}

/* mtad_utf8_valid - see util.h. */
bool mtad_utf8_valid(const char *s, size_t len)
{
	size_t i = 0, n;
	uint32_t cp;

	while (i < len) {
		if ((n = mtad_utf8_next(s + i, len - i, &cp)) == 0)
			return false;
		if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
			return false;	/* C0, DEL, C1 */
		i += n;
	}
	return true;
}

/* mtad_ascii - see util.h. */
bool mtad_ascii(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			return false;
	return true;
}

/* ---- Punycode (RFC 3492 §5, §6.1, §6.3) ---- */

enum { PC_BASE = 36, PC_TMIN = 1, PC_TMAX = 26, PC_SKEW = 38, PC_DAMP = 700,
       PC_BIAS = 72, PC_N = 128 };

/* adapt - the bias after a delta (RFC 3492 §6.1). */
static uint32_t adapt(uint32_t delta, uint32_t numpoints, bool first)
{
	uint32_t k = 0;

	delta = first ? delta / PC_DAMP : delta / 2;
	delta += delta / numpoints;
	while (delta > ((PC_BASE - PC_TMIN) * PC_TMAX) / 2) {
		delta /= PC_BASE - PC_TMIN;
		k += PC_BASE;
	}
	return k + (PC_BASE - PC_TMIN + 1) * delta / (delta + PC_SKEW);
}

/* digit - a base-36 digit as Punycode writes it (lower case). */
static char digit(uint32_t d)
{
	return (char)(d < 26 ? 'a' + d : '0' + d - 26);
}

/* mtad_punycode_encode - see util.h. */
int mtad_punycode_encode(const uint32_t *cp, size_t n, char *out, size_t size, size_t *outlen)
{
	uint32_t code = PC_N, delta = 0, bias = PC_BIAS, h, b, m, q, k, t;
	size_t o = 0, j;

	if (n > MTAD_PUNYCODE_MAX_IN)
		return -1;
	for (j = 0; j < n; j++) {
		if (cp[j] > 0x10ffff)
			return -1;
		if (cp[j] < 0x80) {
			if (o >= size)
				return -1;
			out[o++] = (char)cp[j];
		}
	}
	h = b = (uint32_t)o;
	if (b > 0) {
		if (o >= size)
			return -1;
		out[o++] = '-';
	}
	while (h < n) {
		m = UINT32_MAX;
		for (j = 0; j < n; j++)
			if (cp[j] >= code && cp[j] < m)
				m = cp[j];
		/* n is small (MTAD_PUNYCODE_MAX_IN) and code points below
		 * 0x110000: delta stays far from overflowing, checked anyway. */
		if (m - code > (UINT32_MAX - delta) / (h + 1))
			return -1;
		delta += (m - code) * (h + 1);
		code = m;
		for (j = 0; j < n; j++) {
			if (cp[j] < code && ++delta == 0)
				return -1;
			if (cp[j] != code)
				continue;
			for (q = delta, k = PC_BASE;; k += PC_BASE) {
				t = k <= bias ? PC_TMIN : k >= bias + PC_TMAX ? PC_TMAX : k - bias;
				if (q < t)
					break;
				if (o >= size)
					return -1;
				out[o++] = digit(t + (q - t) % (PC_BASE - t));
				q = (q - t) / (PC_BASE - t);
			}
			if (o >= size)
				return -1;
			out[o++] = digit(q);
			bias = adapt(delta, h + 1, h == b);
			delta = 0;
			h++;
		}
		delta++;
		code++;
	}
	*outlen = o;
	return 0;
}

/* ---- domains ---- */

/*
 * label_to_ascii - one label into out[0..size): ASCII lower-cased, or
 * "xn--" and the Punycode of its code points (ASCII ones lower-cased).
 * Returns the octets written or -1 (bad UTF-8, a control, empty, over
 * 63 octets, a U-label with hyphens where RFC 5891 forbids them).
 */
static int label_to_ascii(const char *s, size_t len, char *out, size_t size)
{
	uint32_t cp[MTAD_PUNYCODE_MAX_IN];
	size_t n = 0, i = 0, step, plen;

	if (len == 0)
		return -1;
	if (mtad_ascii(s, len)) {
		if (len > 63 || len > size)
			return -1;
		for (i = 0; i < len; i++) {
			if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
				return -1;	/* the rest of ASCII syntax is the parser's */
			out[i] = mtad_lower(s[i]);
		}
		return (int)len;
	}
	/* RFC 5891 §4.2.3.1: a U-label neither starts nor ends with a hyphen,
	 * nor has "--" in its third and fourth places (the "xn--" space). */
	if (s[0] == '-' || s[len - 1] == '-')
		return -1;
	while (i < len) {
		if (n >= MTAD_PUNYCODE_MAX_IN || (step = mtad_utf8_next(s + i, len - i, &cp[n])) == 0)
			return -1;
		if (cp[n] < 0xa0 && (cp[n] < 0x20 || cp[n] >= 0x7f))
			return -1;	/* controls */
		if (cp[n] >= 'A' && cp[n] <= 'Z')
			cp[n] += 'a' - 'A';
		n++;
		i += step;
	}
	if (n >= 4 && cp[2] == '-' && cp[3] == '-')
		return -1;
	if (size < 4)
		return -1;
	memcpy(out, "xn--", 4);
	if (mtad_punycode_encode(cp, n, out + 4, size - 4, &plen) < 0 || 4 + plen > 63)
		return -1;
	return (int)(4 + plen);
}

/* mtad_domain_to_ascii - see util.h. */
int mtad_domain_to_ascii(const char *d, size_t len, char *out, size_t size)
{
	size_t o = 0, start = 0, i;
	int n;

	if (size == 0)
		return -1;
	if (len > 0 && d[0] == '[') {
		/* An address literal is no name: as it is (the parser checked it). */
		if (len >= size || !mtad_ascii(d, len))
			return -1;
		for (i = 0; i < len; i++)
			if ((unsigned char)d[i] < 0x20 || d[i] == 0x7f)
				return -1;
		memcpy(out, d, len);
		out[len] = '\0';
		return (int)len;
	}
	for (i = 0; i <= len; i++) {
		if (i < len && d[i] != '.')
			continue;
		if (i == len && start == len && len > 0)
			break;	/* one trailing dot: the root */
		n = label_to_ascii(d + start, i - start, out + o, size - o);
		if (n < 0)
			return -1;
		o += (size_t)n;
		if (i < len) {
			if (o >= size)
				return -1;
			out[o++] = '.';
		}
		start = i + 1;
	}
	if (o >= size || o > MTAD_DOMAIN_ASCII_MAX + (size_t)(o > 0 && out[o - 1] == '.'))
		return -1;
	out[o] = '\0';
	return (int)o;
}

/* mtad_domain_same - see util.h. */
bool mtad_domain_same(const char *a, size_t alen, const char *b, size_t blen)
{
	char x[MTAD_DOMAIN_ASCII_MAX + 2], y[MTAD_DOMAIN_ASCII_MAX + 2];
	int xn, yn;

	if (alen > 0 && a[alen - 1] == '.')
		alen--;
	if (blen > 0 && b[blen - 1] == '.')
		blen--;
	xn = mtad_domain_to_ascii(a, alen, x, sizeof(x));
	yn = mtad_domain_to_ascii(b, blen, y, sizeof(y));
	return xn > 0 && xn == yn && memcmp(x, y, (size_t)xn) == 0;
}
