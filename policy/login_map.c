/*
 * login_map.c - what the two login maps (sender.c's sender_login_map,
 * quota.c's send_limit_map) share: walking a map file's lines, and
 * finding a login in the sorted lines.
 *
 * Pure: no I/O, no allocation. Must not: read past the text it is
 * given (a map need not end in a newline, nor hold a NUL).
 *
 * Follows: no RFC; the maps' format is mtad's own (mtad.conf(5)).
 */
#include <string.h>
#include <strings.h>

#include "policy/policy_int.h"

/* policy_trim - see policy_int.h. */
void policy_trim(const char **s, const char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t'))
		(*s)++;
	while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r'))
		(*e)--;
}

/* policy_map_line - see policy_int.h. */
bool policy_map_line(struct policy_map_lines *it, const char **s, const char **e)
{
	while (it->p < it->end) {
		const char *nl = memchr(it->p, '\n', (size_t)(it->end - it->p));

		*s = it->p;
		*e = nl ? nl : it->end;
		it->p = nl ? nl + 1 : it->end;
		it->lineno++;
		policy_trim(s, e);
		if (*s != *e && **s != '#')
			return true;
	}
	return false;
}

/* policy_login_find - see policy_int.h. */
size_t policy_login_find(const void *base, size_t n, size_t size, const char *login, size_t len)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *k = *(char *const *)((const char *)base + mid * size);
		int c = strncasecmp(k, login, len);

		if (c == 0 && k[len] != '\0')
			c = 1;
		if (c == 0)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return n;
}
