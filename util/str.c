/*
 * str.c - small string helpers every floor needs.
 *
 * Must not: depend on the locale (a verdict or a key must not change
 * with LC_CTYPE), allocate, or read past the length it is given.
 *
 * Follows: RFC 5321 §2.4 (domains and verbs are case-insensitive, ASCII).
 */
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
