/*
 * str.c - small string helpers every floor needs.
 *
 * Must not: depend on the locale (a verdict or a key must not change
 * with LC_CTYPE), allocate, or read past the length it is given.
 *
 * Follows: RFC 5321 §2.4 (domains and verbs are case-insensitive, ASCII).
 */
#include <string.h>

#include "util/util.h"

/* mtad_lower - see util.h. */
char mtad_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* mtad_str_lower - see util.h. */
void mtad_str_lower(char *dst, const char *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = mtad_lower(src[i]);
	dst[n] = '\0';
}

/* mtad_hostport_parse - see util.h. */
int mtad_hostport_parse(const char *s, char *host, size_t hostlen, unsigned *port)
{
	const char *colon, *h = s;
	size_t n;
	unsigned long p = 0;

	if (*s == '[') {		/* [IPV6]:PORT */
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -1;
		h = s + 1;
		n = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', (size_t)(colon - s)) != NULL)
			return -1;
		n = (size_t)(colon - s);
	}
	if (n == 0 || n >= hostlen)
		return -1;
	for (const char *d = colon + 1; *d; d++) {
		if (*d < '0' || *d > '9' || p > 65535)
			return -1;
		p = p * 10 + (unsigned long)(*d - '0');
	}
	if (colon[1] == '\0' || p == 0 || p > 65535)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= 'A' && h[i] <= 'Z') ||
		      (h[i] >= '0' && h[i] <= '9') || h[i] == '.' || h[i] == '-' ||
		      (h[i] == ':' && *s == '[')))
			return -1;
	memcpy(host, h, n);
	host[n] = '\0';
	*port = (unsigned)p;
	return 0;
}
