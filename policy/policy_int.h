/*
 * policy_int.h - private to policy/: what the two login maps
 * (sender.c's sender_login_map, quota.c's send_limit_map) share
 * (login_map.c). Nothing outside policy/ includes this file.
 */
#ifndef POLICY_POLICY_INT_H
#define POLICY_POLICY_INT_H

#include <stdbool.h>
#include <stddef.h>

/* policy_trim - moves *s and *e (a line, or a part of one) past blanks
 * and tabs at both ends, and a CR at the end. */
void policy_trim(const char **s, const char **e);

/* The lines of a map's text: start with { .p = text, .end = text + len }. */
struct policy_map_lines {
	const char *p, *end;
	int lineno;		/* of the line last returned, from 1 */
};

/*
 * policy_map_line - the next line that says something, trimmed, into
 * [*s, *e): blank lines and '#' comments are skipped. false at the end.
 */
bool policy_map_line(struct policy_map_lines *it, const char **s, const char **e);

/*
 * policy_login_find - index of the element of base[0..n) (each size
 * bytes, sorted by login without case, each starting with its
 * `char *login`) whose login is exactly login's first len bytes, any
 * case; n when there is none.
 */
size_t policy_login_find(const void *base, size_t n, size_t size, const char *login, size_t len);

#endif
