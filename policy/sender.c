/*
 * sender.c - sender ownership: which addresses an authenticated login
 * may send as, and the addresses a From: header names.
 *
 * By default a login owns LOCALPART@D for every local domain D, where
 * LOCALPART is the login without its realm ("alice@mx.campus.test" is
 * alice). A login with a line in sender_login_map owns exactly what
 * that line lists instead: addresses, and @domain for any address in a
 * domain. The null sender <> belongs to everybody (bounces).
 *
 * Pure: no I/O, no clock, no globals. The map is parsed from text the
 * caller read (mtad/main.c, at start and on SIGHUP) into one allocation
 * per line; everything else works on the caller's buffers. Must not:
 * grow past POLICY_SENDER_MAP_MAX lines, accept a line it cannot read
 * back exactly (an error names file:line), or let a From: header with
 * more addresses than it can check pass unchecked.
 *
 * Follows: RFC 5322 §3.4 (address lists: display names, angle
 * addresses, groups, comments, quoted strings), §3.2.2 (folding white
 * space and comments), RFC 6409 §6.1 (a submission server may check
 * that the sender is the authenticated user), RFC 6531 §3.3 (a sender's
 * U-label domain compared with the local domains in A-label form).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/policy.h"
#include "policy/policy_int.h"

struct sender_line {
	char *login;		/* as written, compared without case; first (policy_login_find) */
	char **owned;		/* "a@b" or "@b" */
	size_t nowned;
};

struct policy_sender_map {
	struct sender_line *lines;	/* sorted by login, case-folded */
	size_t n;
};

/* ---- the map ---- */

static int line_cmp(const void *a, const void *b)
{
	return strcasecmp(((const struct sender_line *)a)->login,
			  ((const struct sender_line *)b)->login);
}

static void line_free(struct sender_line *l)
{
	for (size_t i = 0; i < l->nowned; i++)
		free(l->owned[i]);
	free(l->owned);
	free(l->login);
}

/* policy_sender_map_free - see policy.h. */
void policy_sender_map_free(struct policy_sender_map *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n; i++)
		line_free(&m->lines[i]);
	free(m->lines);
	free(m);
}

/* owned_ok - "local@domain" or "@domain": printable, no spaces, one @, a dotted-or-not domain. */
static bool owned_ok(const char *s, size_t len)
{
	const char *at = memchr(s, '@', len);

	if (at == NULL || len >= SMTP_PATH_MAX || at == s + len - 1 ||
	    memchr(at + 1, '@', (size_t)(s + len - at - 1)) != NULL)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] <= ' ' || s[i] >= 127 || strchr("<>,;:\"()[]\\", s[i]) != NULL)
			return false;
	return true;
}

/* add_owned - one comma-separated item of a line. */
static int add_owned(struct sender_line *l, const char *s, size_t len)
{
	char **grown;

	if (l->nowned == POLICY_SENDER_OWNED_MAX)
		return -1;
	if ((grown = realloc(l->owned, (l->nowned + 1) * sizeof(*grown))) == NULL)
		return -1;
	l->owned = grown;
	if ((l->owned[l->nowned] = strndup(s, len)) == NULL)
		return -1;
	l->nowned++;
	return 0;
}

/* parse_line - "login: a@b, @c" into l; NULL, or what is wrong. */
static const char *parse_line(const char *s, const char *e, struct sender_line *l)
{
	const char *colon = memchr(s, ':', (size_t)(e - s)), *ls = s, *le;

	if (colon == NULL)
		return "expected \"login: address, @domain, ...\"";
	le = colon;
	policy_trim(&ls, &le);
	if (ls == le || le - ls > 255 || memchr(ls, ' ', (size_t)(le - ls)) ||
	    memchr(ls, '\t', (size_t)(le - ls)))
		return "bad login name";
	if ((l->login = strndup(ls, (size_t)(le - ls))) == NULL)
		return "out of memory";
	for (const char *p = colon + 1; p < e;) {
		const char *comma = memchr(p, ',', (size_t)(e - p)), *is = p, *ie;

		ie = comma ? comma : e;
		p = comma ? comma + 1 : e;
		policy_trim(&is, &ie);
		if (is == ie)
			continue;
		if (!owned_ok(is, (size_t)(ie - is)))
			return "bad address (expected local@domain or @domain)";
		if (add_owned(l, is, (size_t)(ie - is)) != 0)
			return l->nowned == POLICY_SENDER_OWNED_MAX ? "too many addresses on one line"
								  : "out of memory";
	}
	return NULL;
}

/* map_add - appends a parsed line; -1 when full or out of memory. */
static int map_add(struct policy_sender_map *m, size_t *cap, struct sender_line *l)
{
	if (m->n == POLICY_SENDER_MAP_MAX)
		return -1;
	if (m->n == *cap) {
		size_t want = *cap ? *cap * 2 : 16;
		struct sender_line *grown = realloc(m->lines, want * sizeof(*grown));

		if (grown == NULL)
			return -1;
		m->lines = grown;
		*cap = want;
	}
	m->lines[m->n++] = *l;
	return 0;
}

/* map_duplicate - the first login listed twice, or NULL (the map is sorted). */
static const char *map_duplicate(const struct policy_sender_map *m)
{
	for (size_t i = 1; i < m->n; i++)
		if (strcasecmp(m->lines[i - 1].login, m->lines[i].login) == 0)
			return m->lines[i].login;
	return NULL;
}

/* policy_sender_map_parse - see policy.h. */
struct policy_sender_map *policy_sender_map_parse(const char *text, size_t len, const char *file,
						  char *err, size_t errlen)
{
	struct policy_sender_map *m = calloc(1, sizeof(*m));
	struct policy_map_lines it = { .p = text, .end = text + len };
	const char *s, *e, *dup;
	size_t cap = 0;

	if (m == NULL) {
		snprintf(err, errlen, "%s: out of memory", file);
		return NULL;
	}
	while (policy_map_line(&it, &s, &e)) {
		struct sender_line l = { 0 };
		const char *why;

		if ((why = parse_line(s, e, &l)) == NULL && map_add(m, &cap, &l) != 0)
			why = "too many lines, or out of memory";
		if (why != NULL) {
			snprintf(err, errlen, "%s:%d: %s", file, it.lineno, why);
			line_free(&l);
			policy_sender_map_free(m);
			return NULL;
		}
	}
	if (m->n > 1)
		qsort(m->lines, m->n, sizeof(*m->lines), line_cmp);
	if ((dup = map_duplicate(m)) != NULL) {
		snprintf(err, errlen, "%s: login %s is listed twice", file, dup);
		policy_sender_map_free(m);
		return NULL;
	}
	return m;
}

/* map_find - the line of login's first len bytes (any case), or NULL. */
static const struct sender_line *map_find(const struct policy_sender_map *m, const char *login,
					  size_t len)
{
	size_t i;

	if (m == NULL)
		return NULL;
	i = policy_login_find(m->lines, m->n, sizeof(*m->lines), login, len);
	return i < m->n ? &m->lines[i] : NULL;
}

/* policy_login_local - see policy.h. */
size_t policy_login_local(const char *login)
{
	const char *at = strrchr(login, '@');

	return at ? (size_t)(at - login) : strlen(login);
}

/* line_owns - addr matches an item of the login's line. */
static bool line_owns(const struct sender_line *l, const char *addr)
{
	const char *at = strrchr(addr, '@');

	for (size_t i = 0; i < l->nowned; i++) {
		const char *o = l->owned[i];

		if (o[0] == '@' ? at != NULL && strcasecmp(at, o) == 0 : strcasecmp(addr, o) == 0)
			return true;
	}
	return false;
}

/* policy_sender_owned - see policy.h. */
bool policy_sender_owned(const struct policy_sender_map *m, const char *login, const char *addr,
			 const char *const *local_domains, size_t nlocal)
{
	const struct sender_line *l;
	const char *at;
	size_t local = policy_login_local(login);

	if (addr[0] == '\0')
		return true;	/* <>: bounces and notifications */
	if ((l = map_find(m, login, strlen(login))) != NULL ||
	    (l = map_find(m, login, local)) != NULL)
		return line_owns(l, addr);
	at = strrchr(addr, '@');
	if (at == NULL || (size_t)(at - addr) != local || strncasecmp(addr, login, local) != 0)
		return false;
	/* In A-label form: alice owns alice@bücher.example when the local
	 * domain is xn--bcher-kva.example, never alice@ a look-alike. */
	for (size_t i = 0; i < nlocal; i++)
		if (mtad_domain_same(at + 1, strlen(at + 1), local_domains[i], strlen(local_domains[i])))
			return true;
	return false;
}

/* policy_login_listed - see policy.h. */
bool policy_login_listed(const char *list, const char *login, size_t len)
{
	const char *p = list;
	size_t local = 0;

	while (local < len && login[local] != '@')
		local++;
	while (*p) {
		size_t n;

		if (*p == '#') {	/* a comment, to the end of its line */
			p += strcspn(p, "\n");
			continue;
		}
		n = strcspn(p, ", \t\r\n#");
		if ((n == len || n == local) && n > 0 && strncasecmp(p, login, n) == 0)
			return true;
		p += n;
		p += strspn(p, ", \t\r\n");
	}
	return false;
}

/* ---- From: header addresses ---- */

/* skip_comment - past a (possibly nested) comment starting at *p == '('. */
static const char *skip_comment(const char *p, const char *e)
{
	int depth = 0;

	for (; p < e; p++) {
		if (*p == '\\' && p + 1 < e)
			p++;
		else if (*p == '(')
			depth++;
		else if (*p == ')' && --depth == 0)
			return p + 1;
	}
	return e;
}

/* skip_quoted - past a quoted string starting at *p == '"'. */
static const char *skip_quoted(const char *p, const char *e)
{
	for (p++; p < e; p++) {
		if (*p == '\\' && p + 1 < e)
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return e;
}

/* from_add - one mailbox's address into out; -1 when out is full or it is too long. */
static int from_add(char out[][SMTP_PATH_MAX], size_t max, size_t *n, const char *s, size_t len)
{
	while (len > 0 && (*s == ' ' || *s == '\t'))
		s++, len--;
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len == 0)
		return 0;
	if (*n == max || len >= SMTP_PATH_MAX)
		return -1;
	memcpy(out[*n], s, len);
	out[*n][len] = '\0';
	(*n)++;
	return 0;
}

/*
 * policy_from_addresses - see policy.h. One pass over the unfolded
 * value: comments and quoted strings (display names) are skipped, an
 * angle address is the mailbox's address, otherwise the bare text of
 * the mailbox is; "name:" opens a group and ';' closes it.
 */
int policy_from_addresses(const char *value, size_t len, char out[][SMTP_PATH_MAX], size_t max,
			  size_t *n)
{
	const char *p = value, *e = value + len;
	char bare[SMTP_PATH_MAX];
	size_t blen = 0;
	bool angle = false, too_long = false;

	*n = 0;
	while (p <= e) {
		char c = p < e ? *p : ',';

		if (p < e && c == '(') {
			p = skip_comment(p, e);
			continue;
		}
		if (p < e && c == '"') {
			p = skip_quoted(p, e);
			blen = 0;	/* a display name: not an address */
			continue;
		}
		if (p < e && c == '<') {
			const char *gt = memchr(p, '>', (size_t)(e - p));
			const char *a = p + 1, *ae = gt ? gt : e;

			if (from_add(out, max, n, a, (size_t)(ae - a)) != 0)
				return -1;
			angle = true;
			p = gt ? gt + 1 : e;
			continue;
		}
		if (c == ':' && !angle) {
			blen = 0;	/* a group's display name */
			too_long = false;
		} else if (c == ',' || c == ';') {
			if (too_long || (!angle && from_add(out, max, n, bare, blen) != 0))
				return -1;
			blen = 0;
			angle = too_long = false;
		} else if (!angle) {
			if (blen + 1 < sizeof(bare))
				bare[blen++] = c;
			else
				too_long = true;
		}
		p++;
	}
	return 0;
}
