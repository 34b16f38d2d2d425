/*
 * rcpt_map.c - local_recipient_maps: which recipients of the local
 * domains exist, so that mail for anyone else is refused at RCPT with
 * 550 5.1.1 instead of being queued and bounced later to a sender that
 * is usually forged (backscatter). One key a line: "alice" (that local
 * part in every local domain), "alice@campus.test" (that address), or
 * "@campus.test" (every local part of that domain); anything after the
 * first blank is ignored, so a postmap(1) source ("key value") works as
 * it is. '#' comments and blank lines are skipped; case does not matter.
 *
 * Pure: no I/O (mtad/main.c reads the file at start and on SIGHUP), no
 * clock. Must not: read past the text it is given, keep more than
 * POLICY_RCPT_MAP_MAX keys, or accept a key it could never match.
 *
 * Follows: RFC 5321 §4.1.1.3 (postmaster needs no entry: it is always
 * known, checked by the caller), RFC 3463 (5.1.1), RFC 6531 (a UTF-8
 * recipient's domain is looked up as its A-label, util/idna.c; keys
 * name domains that way).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/policy.h"
#include "policy/policy_int.h"

struct policy_rcpt_map {
	char **keys;		/* lower case, sorted */
	size_t n, cap;
};

/* key_cmp - qsort and bsearch order: plain bytes (keys are lower case). */
static int key_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* key_check - why the key [s, e) can never match an address, or NULL. */
static const char *key_check(const char *s, const char *e)
{
	const char *at = memchr(s, '@', (size_t)(e - s));

	if ((size_t)(e - s) >= SMTP_PATH_MAX)
		return "key too long";
	for (const char *p = s; p < e; p++)
		if ((unsigned char)*p < 0x21 || (unsigned char)*p == 0x7f)
			return "control character in key";
	if (at && (at + 1 == e || memchr(at + 1, '@', (size_t)(e - at - 1))))
		return "bad key: want LOCALPART, LOCALPART@DOMAIN or @DOMAIN";
	return NULL;
}

/* map_add - one key, lower-cased; -1 when the map is full or out of memory. */
static int map_add(struct policy_rcpt_map *m, const char *s, const char *e)
{
	char *k;

	if (m->n == POLICY_RCPT_MAP_MAX)
		return -1;
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		char **keys = realloc(m->keys, cap * sizeof(*keys));

		if (!keys)
			return -1;
		m->keys = keys;
		m->cap = cap;
	}
	if (!(k = malloc((size_t)(e - s) + 1)))
		return -1;
	mtad_str_lower(k, s, (size_t)(e - s));
	k[e - s] = '\0';
	m->keys[m->n++] = k;
	return 0;
}

/* policy_rcpt_map_parse - see policy.h. */
struct policy_rcpt_map *policy_rcpt_map_parse(const char *text, size_t len, const char *file,
					      char *err, size_t errlen)
{
	struct policy_rcpt_map *m = calloc(1, sizeof(*m));
	struct policy_map_lines it = { .p = text, .end = text + len };
	const char *s, *e;

	if (!m) {
		snprintf(err, errlen, "%s: out of memory", file);
		return NULL;
	}
	while (policy_map_line(&it, &s, &e)) {
		const char *blank = s, *why;

		while (blank < e && *blank != ' ' && *blank != '\t')
			blank++;
		if ((why = key_check(s, blank)) == NULL && map_add(m, s, blank) != 0)
			why = "too many keys, or out of memory";
		if (why) {
			snprintf(err, errlen, "%s:%d: %s", file, it.lineno, why);
			policy_rcpt_map_free(m);
			return NULL;
		}
	}
	if (m->n > 1)
		qsort(m->keys, m->n, sizeof(*m->keys), key_cmp);
	return m;
}

/* has - is key (lower case) in the map? */
static bool has(const struct policy_rcpt_map *m, const char *key)
{
	return m->n > 0 && bsearch(&key, m->keys, m->n, sizeof(*m->keys), key_cmp) != NULL;
}

/* policy_rcpt_known - see policy.h. */
bool policy_rcpt_known(const struct policy_rcpt_map *m, const char *addr)
{
	char key[SMTP_PATH_MAX], alabel[MTAD_DOMAIN_ASCII_MAX + 2];
	size_t len = strlen(addr);
	const char *at = strrchr(addr, '@');
	int n;

	if (!m || len >= sizeof(key))
		return false;
	mtad_str_lower(key, addr, len);
	key[len] = '\0';
	/* An SMTPUTF8 recipient's domain is looked up in A-label form, as
	 * routes and relay control see it: the map's keys are written so. */
	if (at && !mtad_ascii(at + 1, strlen(at + 1))) {
		n = mtad_domain_to_ascii(at + 1, strlen(at + 1), alabel, sizeof(alabel));
		if (n <= 0 || (size_t)(at - addr) + 1 + (size_t)n >= sizeof(key))
			return false;
		memcpy(key + (at - addr) + 1, alabel, (size_t)n + 1);
	}
	if (has(m, key))
		return true;
	if (!at)
		return false;
	if (has(m, key + (at - addr)))		/* "@domain" */
		return true;
	key[at - addr] = '\0';			/* "localpart" */
	return has(m, key);
}

/* policy_rcpt_map_count - see policy.h. */
size_t policy_rcpt_map_count(const struct policy_rcpt_map *m)
{
	return m ? m->n : 0;
}

/* policy_rcpt_map_free - see policy.h. */
void policy_rcpt_map_free(struct policy_rcpt_map *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		free(m->keys[i]);
	free(m->keys);
	free(m);
}
