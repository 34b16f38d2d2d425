/*
 * xtext.c - RFC 3461's xtext, the encoding of DSN's ENVID= and ORCPT=
 * values: decoded by the server's parameter parser (smtp/command.c),
 * encoded again by the client (deliver/client_send.c) and decoded for
 * the reports (deliver/outcome.c).
 *
 * Must not: allocate, do I/O, write past the buffer it is given, or let
 * a control character through a decode (the values end up in report
 * fields and log lines).
 *
 * Follows: RFC 3461 §4 (xtext), §4.2 and §4.4 (printable US-ASCII only).
 */
#include "util/util.h"

/* hex_digit - an upper-case hex digit's value (xtext's "+XX"), or -1. */
static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* mtad_xtext_decode - see util.h. */
int mtad_xtext_decode(const char *s, size_t len, char *out, size_t outsize)
{
	size_t i, n = 0;

	if (outsize == 0)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '+') {
			int hi, lo;

			if (i + 2 >= len)
				return -1;
			hi = hex_digit(s[i + 1]);
			lo = hex_digit(s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			return -1;
		}
		/* Printable US-ASCII only (RFC 3461 §4.2, §4.4): never a control. */
		if (c < 0x20 || c > 0x7e || n + 1 >= outsize)
			return -1;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return (int)n;
}

/* mtad_xtext_encode - see util.h. */
int mtad_xtext_encode(const char *s, char *out, size_t outsize)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		bool plain = c >= '!' && c <= '~' && c != '+' && c != '=';

		if (n + (plain ? 1 : 3) >= outsize)
			return -1;
		if (plain) {
			out[n++] = (char)c;
		} else {
			out[n++] = '+';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		}
	}
	if (outsize == 0)
		return -1;
	out[n] = '\0';
	return (int)n;
}
