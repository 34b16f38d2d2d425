/*
 * aliases.c - the alias table: aliases(5) text and :include: files
 * parsed into it, the entries of a compiled file read into it and
 * written from it, and a recipient expanded through it.
 *
 * Pure: no I/O, no clock, no globals. It allocates the table and, for
 * each expansion, its bookkeeping; local/aliases_db.c reads and writes
 * the files. Must not: store a target it could not write into a
 * compiled value and read back the same (the value is parsed by the
 * same code); let a count grow past its bound in local.h (line length,
 * targets, names, include files and their nesting, expansion depth,
 * steps and output); emit a recipient twice; or expand a pipe or a
 * file into anything but a refusal.
 *
 * Follows: aliases(5) as Sendmail 8 and Postfix read it (names,
 * continuation lines, '#' comment lines, :include:, |command, /file,
 * \name, quoted targets); RFC 5321 §2.4 (local parts are the host's to
 * compare: aliases without case, as Sendmail and Postfix do) and
 * §4.5.3.1 (path lengths).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "local/local.h"
#include "local/local_int.h"

#define STR_(x) #x
#define STR(x) STR_(x)

#define INCLUDE_PREFIX ":include:"
#define INCLUDE_PREFIX_LEN (sizeof(INCLUDE_PREFIX) - 1)
/* A stored target is never longer than a line: one buffer fits any. */
#define TARGET_MAX LOCAL_ALIASES_LINE_MAX

static const char not_delivered[] =
	"pipes and files are not delivered by mtad: it stores no mailboxes";

/* What a target is, told by its stored text (target_kind). */
enum target_kind {
	T_ADDRESS,	/* user@domain */
	T_NAME,		/* user: user@hostname, looked up again */
	T_KEEP,		/* \user: user@hostname, not looked up */
	T_INCLUDE,	/* :include:/path */
	T_PIPE,		/* |command */
	T_FILE,		/* /path */
};

struct target_list {
	char **v;
	size_t n, cap;
};

/* An alias (its name and targets) or an :include: file (its path and addresses). */
struct node {
	char *name;
	struct target_list targets;
	int line;	/* alias: the line of its name in the source; 0 from a compiled file */
	unsigned depth;	/* include: 1 when an alias names it, n + 1 inside a depth-n file */
	bool include;	/* an :include: file, not an alias */
	bool read;	/* include: its text is attached */
};

/* Nodes by name: in the order added, and hashed (open addressing). */
struct node_table {
	struct node **v;
	size_t n, cap;
	uint32_t *slots;	/* index + 1 into v; 0 is free */
	size_t nslots;		/* a power of two, more than twice n */
};

struct local_aliases {
	struct node_table aliases;	/* names lower-cased */
	struct node_table includes;	/* paths as written */
};

/* ---- the table ---- */

/* hash_of - FNV-1a: cheap, and good enough for names an admin writes. */
static uint64_t hash_of(const char *s, size_t len)
{
	uint64_t h = 14695981039346656037ull;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

/* table_slot - the slot holding name (len bytes), or the free slot where it would go. */
static size_t table_slot(const struct node_table *t, const char *name, size_t len)
{
	size_t mask = t->nslots - 1, i = (size_t)hash_of(name, len) & mask;

	while (t->slots[i] != 0) {
		const struct node *n = t->v[t->slots[i] - 1];

		if (strncmp(n->name, name, len) == 0 && n->name[len] == '\0')
			return i;
		i = (i + 1) & mask;
	}
	return i;
}

static struct node *table_find(const struct node_table *t, const char *name, size_t len)
{
	size_t i;

	if (t->nslots == 0)
		return NULL;
	i = table_slot(t, name, len);
	return t->slots[i] != 0 ? t->v[t->slots[i] - 1] : NULL;
}

/* table_rehash - twice the slots, every node placed again. */
static int table_rehash(struct node_table *t)
{
	size_t nslots = t->nslots ? t->nslots * 2 : 64;
	uint32_t *slots = calloc(nslots, sizeof(*slots));

	if (slots == NULL)
		return -1;
	free(t->slots);
	t->slots = slots;
	t->nslots = nslots;
	for (size_t i = 0; i < t->n; i++)
		t->slots[table_slot(t, t->v[i]->name, strlen(t->v[i]->name))] = (uint32_t)(i + 1);
	return 0;
}

/* table_add - a new node named name (not in t: the caller looked); NULL when out of memory. */
static struct node *table_add(struct node_table *t, const char *name, size_t len)
{
	struct node *n;

	if ((t->n + 1) * 2 >= t->nslots && table_rehash(t) != 0)
		return NULL;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct node **v = realloc(t->v, cap * sizeof(*v));

		if (v == NULL)
			return NULL;
		t->v = v;
		t->cap = cap;
	}
	if ((n = calloc(1, sizeof(*n))) == NULL)
		return NULL;
	if ((n->name = strndup(name, len)) == NULL) {
		free(n);
		return NULL;
	}
	t->v[t->n++] = n;
	t->slots[table_slot(t, name, len)] = (uint32_t)t->n;
	return n;
}

static void list_clear(struct target_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	*l = (struct target_list){ 0 };
}

static int list_add(struct target_list *l, const char *s, size_t len)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 4;
		char **v = realloc(l->v, cap * sizeof(*v));

		if (v == NULL)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	if ((l->v[l->n] = strndup(s, len)) == NULL)
		return -1;
	l->n++;
	return 0;
}

static void table_free(struct node_table *t)
{
	for (size_t i = 0; i < t->n; i++) {
		list_clear(&t->v[i]->targets);
		free(t->v[i]->name);
		free(t->v[i]);
	}
	free(t->v);
	free(t->slots);
}

/* aliases_new - see local_int.h. */
struct local_aliases *aliases_new(void)
{
	return calloc(1, sizeof(struct local_aliases));
}

/* local_aliases_free - see local.h. */
void local_aliases_free(struct local_aliases *a)
{
	if (a == NULL)
		return;
	table_free(&a->aliases);
	table_free(&a->includes);
	free(a);
}

/* alias_find - the alias of the local part s (len bytes, any case), or NULL. */
static const struct node *alias_find(const struct local_aliases *a, const char *s, size_t len)
{
	char name[LOCAL_ALIAS_NAME_MAX + 1];

	if (len == 0 || len > LOCAL_ALIAS_NAME_MAX)
		return NULL;
	mtad_str_lower(name, s, len);
	return table_find(&a->aliases, name, len);
}

/* local_aliases_lookup - see local.h. */
const char *const *local_aliases_lookup(const struct local_aliases *a, const char *name,
					size_t *n)
{
	const struct node *alias = alias_find(a, name, strlen(name));

	*n = alias ? alias->targets.n : 0;
	return alias ? (const char *const *)alias->targets.v : NULL;
}

/* local_aliases_counts - see local.h. */
void local_aliases_counts(const struct local_aliases *a, size_t *names, size_t *includes)
{
	*names = a->aliases.n;
	*includes = a->includes.n;
}

/* ---- targets: the items of a line or of a compiled value ---- */

static void trim(const char **s, const char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t'))
		(*s)++;
	while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
		(*e)--;
}

/* quote_end - just past the quote closing the one at s, or NULL when it is not closed. */
static const char *quote_end(const char *s, const char *e)
{
	for (const char *q = s + 1; q < e; q++) {
		if (*q == '\\' && q + 1 < e)
			q++;
		else if (*q == '"')
			return q + 1;
	}
	return NULL;
}

/*
 * item_next - the next item of [*p, e): up to a comma outside quotes,
 * trimmed, into [*s, *ie) (it may be empty). false at the end; *why
 * is set when a quote is not closed.
 */
static bool item_next(const char **p, const char *e, const char **s, const char **ie,
		      const char **why)
{
	const char *q = *p;

	if (q >= e)
		return false;
	while (q < e && *q != ',') {
		if (*q != '"')
			q++;
		else if ((q = quote_end(q, e)) == NULL) {
			*why = "a quote that is not closed";
			return true;
		}
	}
	*s = *p;
	*ie = q;
	*p = q < e ? q + 1 : e;
	trim(s, ie);
	return true;
}

/* target_kind - what a stored target is. */
static enum target_kind target_kind(const char *t)
{
	if (t[0] == '|')
		return T_PIPE;
	if (t[0] == '/')
		return T_FILE;
	if (t[0] == '\\')
		return T_KEEP;
	if (strncasecmp(t, INCLUDE_PREFIX, INCLUDE_PREFIX_LEN) == 0)
		return T_INCLUDE;
	return strchr(t, '@') ? T_ADDRESS : T_NAME;
}

/*
 * name_check - a name once unquoted (bare: from outside quotes):
 * 1..LOCAL_ALIAS_NAME_MAX bytes, no control character, no '@' (a name
 * is a local part: the lookup never sees a domain), and bare, no blank
 * or quote. NULL, or what is wrong.
 */
static const char *name_check(const char *s, size_t len, bool bare)
{
	if (len == 0)
		return "an empty name";
	if (len > LOCAL_ALIAS_NAME_MAX)
		return "a name longer than " STR(LOCAL_ALIAS_NAME_MAX) " bytes";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < ' ' || c == 0x7f)
			return "a control character in a name";
		if (c == '@')
			return "an @ in a name (a name is a local part, without a domain)";
		if (bare && (c == ' ' || c == '\t' || c == '"'))
			return "a blank or quote in a name (quote the whole name)";
	}
	return NULL;
}

/*
 * address_check - user@domain or a bare name: shorter than a path, no
 * blank, special character or second @ outside a quoted local part, a
 * local part and a domain that are not empty.
 */
static const char *address_check(const char *t, size_t len)
{
	const char *at = NULL;
	bool quoted = false;

	if (len + 2 >= SMTP_PATH_MAX)
		return "an address longer than " STR(SMTP_PATH_MAX) " bytes with its <>";
	for (size_t i = 0; i < len; i++) {
		if (quoted) {
			if (t[i] == '\\' && i + 1 < len)
				i++;
			else if (t[i] == '"')
				quoted = false;
		} else if (t[i] == '"') {
			quoted = true;
		} else if (t[i] == '@') {
			if (at != NULL)
				return "more than one @ in an address (quote the local part)";
			at = t + i;
		} else if (strchr(" \t<>()[],;:\\", t[i]) != NULL) {
			return "a blank or one of <>()[],;:\\ in an address (quote the target)";
		}
	}
	if (quoted)
		return "a quote that is not closed";
	if (at == t)
		return "an address without a local part";
	if (at != NULL && (at[1] == '\0' || strchr(at, '"') != NULL))
		return "an address without a domain after its last @";
	return NULL;
}

/* include_norm - ":include:" lower-cased, its path trimmed; the path absolute and not too long. */
static const char *include_norm(char *t, size_t *len)
{
	const char *s = t + INCLUDE_PREFIX_LEN, *e = t + *len;

	trim(&s, &e);
	if (s == e || *s != '/')
		return ":include: needs an absolute path";
	if ((size_t)(e - s) >= MTAD_PATH_MAX)
		return "an :include: path longer than " STR(MTAD_PATH_MAX) " bytes";
	memcpy(t, INCLUDE_PREFIX, INCLUDE_PREFIX_LEN);
	memmove(t + INCLUDE_PREFIX_LEN, s, (size_t)(e - s));
	*len = INCLUDE_PREFIX_LEN + (size_t)(e - s);
	t[*len] = '\0';
	return NULL;
}

/* target_check - a target as stored (t[*len] is NUL): checked, and an :include: normalised. */
static const char *target_check(char *t, size_t *len)
{
	if (*len == 0)
		return "an empty target";
	for (size_t i = 0; i < *len; i++)
		if (((unsigned char)t[i] < ' ' && t[i] != '\t') || t[i] == 0x7f)
			return "a control character in a target";
	switch (target_kind(t)) {
	case T_PIPE:
		return *len > 1 ? NULL : "an empty pipe command";
	case T_FILE:
		return NULL;
	case T_INCLUDE:
		return include_norm(t, len);
	case T_KEEP:
		return name_check(t + 1, *len - 1, true);
	case T_ADDRESS:
	case T_NAME:
		break;
	}
	return address_check(t, *len);
}

/*
 * unquote - the inside of the quoted [s, e) (its quotes at both ends)
 * into out (cap bytes with the NUL), backslashes dropped. -1 when it
 * does not fit.
 */
static int unquote(const char *s, const char *e, char *out, size_t cap, size_t *len)
{
	size_t n = 0;

	for (const char *q = s + 1; q < e - 1; q++) {
		if (*q == '\\' && q + 1 < e - 1)
			q++;
		if (n + 1 >= cap)
			return -1;
		out[n++] = *q;
	}
	out[n] = '\0';
	*len = n;
	return 0;
}

/*
 * target_norm - the item [s, e) as it is stored, into out (cap bytes):
 * an item quoted whole loses its quotes ("|prog a, b" is |prog a, b);
 * one quoted in part ("john doe"@example.org) is kept as written.
 */
static const char *target_norm(const char *s, const char *e, char *out, size_t cap, size_t *len)
{
	if (*s == '"' && quote_end(s, e) == e) {
		if (unquote(s, e, out, cap, len) != 0)
			return "a target longer than " STR(TARGET_MAX) " bytes";
	} else {
		if ((size_t)(e - s) >= cap)
			return "a target longer than " STR(TARGET_MAX) " bytes";
		memcpy(out, s, (size_t)(e - s));
		out[e - s] = '\0';
		*len = (size_t)(e - s);
	}
	return target_check(out, len);
}

/*
 * include_record - an :include: path named at depth: added to the
 * includes (to be read), or its depth lowered when it is there.
 */
static const char *include_record(struct local_aliases *a, const char *path, unsigned depth)
{
	size_t len = strlen(path);
	struct node *n = table_find(&a->includes, path, len);

	if (n != NULL) {
		if (depth < n->depth)
			n->depth = depth;
		return NULL;
	}
	if (depth > LOCAL_INCLUDE_DEPTH_MAX)
		return ":include: nested more than " STR(LOCAL_INCLUDE_DEPTH_MAX) " deep";
	if (a->includes.n == LOCAL_INCLUDES_MAX)
		return "more than " STR(LOCAL_INCLUDES_MAX) " :include: files";
	if ((n = table_add(&a->includes, path, len)) == NULL)
		return "out of memory";
	n->include = true;
	n->depth = depth;
	return NULL;
}

/*
 * targets_add - the items of [s, e) (a line, or a compiled value) onto
 * n's targets, at most max (then the why is full); an :include: named
 * is recorded at depth. NULL, or what is wrong.
 */
static const char *targets_add(struct local_aliases *a, struct node *n, const char *s,
			       const char *e, size_t max, const char *full, unsigned depth)
{
	char t[TARGET_MAX + 1];
	const char *is, *ie, *why = NULL;
	size_t len;

	while (item_next(&s, e, &is, &ie, &why)) {
		if (why != NULL)
			return why;
		if (is == ie)
			continue;	/* "a,,b" or a trailing comma */
		if ((why = target_norm(is, ie, t, sizeof(t), &len)) != NULL)
			return why;
		if (n->targets.n == max)
			return full;
		if (target_kind(t) == T_INCLUDE &&
		    (why = include_record(a, t + INCLUDE_PREFIX_LEN, depth)) != NULL)
			return why;
		if (list_add(&n->targets, t, len) != 0)
			return "out of memory";
	}
	return NULL;
}

/* ---- lines ---- */

struct lines {
	const char *p, *end;
	int lineno;	/* of the line last returned, from 1 */
};

/*
 * line_next - the next line into [*s, *e), without its newline and a
 * CR before it. 1, 0 at the end, -1 with *why when it is longer than
 * LOCAL_ALIASES_LINE_MAX or holds a NUL byte.
 */
static int line_next(struct lines *it, const char **s, const char **e, const char **why)
{
	const char *nl;

	if (it->p >= it->end)
		return 0;
	nl = memchr(it->p, '\n', (size_t)(it->end - it->p));
	*s = it->p;
	*e = nl ? nl : it->end;
	it->p = nl ? nl + 1 : it->end;
	it->lineno++;
	if (*e > *s && (*e)[-1] == '\r')
		(*e)--;
	if (*e - *s > LOCAL_ALIASES_LINE_MAX)
		*why = "a line longer than " STR(LOCAL_ALIASES_LINE_MAX) " bytes";
	else if (memchr(*s, '\0', (size_t)(*e - *s)) != NULL)
		*why = "a NUL byte";
	else
		return 1;
	return -1;
}

/* says_nothing - a blank line, or a comment ('#' its first non-blank). */
static bool says_nothing(const char *s, const char *e)
{
	while (s < e && (*s == ' ' || *s == '\t'))
		s++;
	return s == e || *s == '#';
}

/* ---- parsing an aliases file ---- */

struct parser {
	struct local_aliases *a;
	const char *file;
	int lineno;
	struct node *cur;	/* the alias whose lines are being read */
	char *err;
	size_t errlen;
};

/* fail - "FILE:LINE: what" into err; -1. */
__attribute__((format(printf, 3, 4)))
static int fail(struct parser *ps, int line, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(ps->err, ps->errlen, "%s:%d: ", ps->file, line);

	if (n < 0 || (size_t)n >= ps->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* line_targets - the targets on [s, e) for the alias being read. */
static int line_targets(struct parser *ps, const char *s, const char *e)
{
	static const char full[] = "more than " STR(LOCAL_ALIASES_TARGETS_MAX) " targets";
	const char *why = targets_add(ps->a, ps->cur, s, e, LOCAL_ALIASES_TARGETS_MAX, full, 1);

	if (why == full)
		return fail(ps, ps->lineno, "alias %s has %s", ps->cur->name, why);
	return why ? fail(ps, ps->lineno, "%s", why) : 0;
}

/* finish - the alias read so far must have a target: an empty one would lose mail silently. */
static int finish(struct parser *ps)
{
	if (ps->cur != NULL && ps->cur->targets.n == 0)
		return fail(ps, ps->cur->line, "alias %s has no targets", ps->cur->name);
	ps->cur = NULL;
	return 0;
}

/* find_colon - the first ':' of [s, e) outside quotes, or NULL. */
static const char *find_colon(const char *s, const char *e)
{
	while (s < e && *s != ':') {
		if (*s != '"')
			s++;
		else if ((s = quote_end(s, e)) == NULL)
			return NULL;
	}
	return s < e ? s : NULL;
}

/* name_parse - [s, e) trimmed, unquoted when quoted whole, checked, lower-cased into name. */
static const char *name_parse(const char *s, const char *e, char *name, size_t *len)
{
	char raw[LOCAL_ALIAS_NAME_MAX + 1];
	const char *why;
	bool bare;

	trim(&s, &e);
	bare = !(s < e && *s == '"' && quote_end(s, e) == e);
	if (!bare) {
		if (unquote(s, e, raw, sizeof(raw), len) != 0)
			return "a name longer than " STR(LOCAL_ALIAS_NAME_MAX) " bytes";
		s = raw;
	} else {
		*len = (size_t)(e - s);
	}
	if ((why = name_check(s, *len, bare)) != NULL)
		return why;
	mtad_str_lower(name, s, *len);
	return NULL;
}

/* alias_start - "name: targets" begins a new alias. */
static int alias_start(struct parser *ps, const char *s, const char *e)
{
	const char *colon = find_colon(s, e), *why;
	char name[LOCAL_ALIAS_NAME_MAX + 1];
	struct node *old;
	size_t len;

	if (colon == NULL)
		return fail(ps, ps->lineno, "expected \"name: target, ...\" (no ':')");
	if ((why = name_parse(s, colon, name, &len)) != NULL)
		return fail(ps, ps->lineno, "%s", why);
	if ((old = table_find(&ps->a->aliases, name, len)) != NULL)
		return fail(ps, ps->lineno, "alias %s is listed twice (first at line %d)", name,
			    old->line);
	if (ps->a->aliases.n == LOCAL_ALIASES_NAMES_MAX)
		return fail(ps, ps->lineno, "more than " STR(LOCAL_ALIASES_NAMES_MAX) " names");
	if ((ps->cur = table_add(&ps->a->aliases, name, len)) == NULL)
		return fail(ps, ps->lineno, "out of memory");
	ps->cur->line = ps->lineno;
	return line_targets(ps, colon + 1, e);
}

/* parse_line - one line: nothing, a continuation, or a new alias. */
static int parse_line(struct parser *ps, const char *s, const char *e)
{
	if (says_nothing(s, e))
		return 0;
	if (*s == ' ' || *s == '\t') {
		if (ps->cur == NULL)
			return fail(ps, ps->lineno, "a continuation line with no alias before it");
		return line_targets(ps, s, e);
	}
	if (finish(ps) != 0)
		return -1;
	return alias_start(ps, s, e);
}

/* local_aliases_parse - see local.h. */
struct local_aliases *local_aliases_parse(const char *text, size_t len, const char *file,
					  char *err, size_t errlen)
{
	struct parser ps = { .a = NULL, .file = file, .err = err, .errlen = errlen };
	struct lines it = { .p = text, .end = text + len };
	const char *s, *e, *why = NULL;
	int rc;

	if (len > LOCAL_ALIASES_FILE_MAX) {
		snprintf(err, errlen, "%s: larger than 16 MB", file);
		return NULL;
	}
	if ((ps.a = aliases_new()) == NULL) {
		snprintf(err, errlen, "%s: out of memory", file);
		return NULL;
	}
	while ((rc = line_next(&it, &s, &e, &why)) > 0) {
		ps.lineno = it.lineno;
		if (parse_line(&ps, s, e) != 0)
			break;
	}
	if (rc < 0)
		fail(&ps, it.lineno, "%s", why);
	if (rc != 0 || finish(&ps) != 0) {
		local_aliases_free(ps.a);
		return NULL;
	}
	return ps.a;
}

/* ---- include files ---- */

/* include_lines - the lines of an include file's text onto its node. */
static int include_lines(struct local_aliases *a, struct node *n, const char *text, size_t len,
			 char *err, size_t errlen)
{
	static const char full[] = "more than " STR(LOCAL_INCLUDE_TARGETS_MAX) " addresses";
	struct lines it = { .p = text, .end = text + len };
	const char *s, *e, *why = NULL;
	int rc;

	while ((rc = line_next(&it, &s, &e, &why)) > 0) {
		if (says_nothing(s, e))
			continue;
		why = targets_add(a, n, s, e, LOCAL_INCLUDE_TARGETS_MAX, full, n->depth + 1);
		if (why != NULL)
			break;
	}
	if (why == NULL)
		return 0;
	snprintf(err, errlen, "%s:%d: %s", n->name, it.lineno, why);
	return -1;
}

/* local_aliases_include_text - see local.h. */
int local_aliases_include_text(struct local_aliases *a, const char *path, const char *text,
			       size_t len, char *err, size_t errlen)
{
	struct node *n = table_find(&a->includes, path, strlen(path));

	if (n == NULL) {
		snprintf(err, errlen, "%s: not named by any :include:", path);
		return -1;
	}
	if (n->read) {
		snprintf(err, errlen, "%s: already read", path);
		return -1;
	}
	if (len > LOCAL_INCLUDE_FILE_MAX) {
		snprintf(err, errlen, "%s: larger than 1 MB", path);
		return -1;
	}
	if (include_lines(a, n, text, len, err, errlen) != 0) {
		list_clear(&n->targets);	/* unread, as it was */
		return -1;
	}
	n->read = true;
	return 0;
}

/* aliases_include_unread - see local_int.h. */
const char *aliases_include_unread(const struct local_aliases *a, size_t *cursor)
{
	for (; *cursor < a->includes.n; (*cursor)++)
		if (!a->includes.v[*cursor]->read)
			return a->includes.v[*cursor]->name;
	return NULL;
}

/* ---- the compiled form ---- */

/* strip_nul - a compiled key or value may end in one NUL (Postfix, Sendmail) or not. */
static size_t strip_nul(const char *s, size_t len)
{
	return len > 0 && s[len - 1] == '\0' ? len - 1 : len;
}

/*
 * bookkeeping - a key that is no alias: Sendmail's "@" (the file is
 * complete), and the NIS keys postalias adds (YP_LAST_MODIFIED,
 * YP_MASTER_NAME; upper case, so no name collides: names are lower).
 */
static bool bookkeeping(const char *key, size_t klen)
{
	static const char *const keys[] = { "@", "YP_LAST_MODIFIED", "YP_MASTER_NAME" };

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (klen == strlen(keys[i]) && memcmp(key, keys[i], klen) == 0)
			return true;
	return false;
}

/* db_name - a compiled key: a name already unquoted and lower-cased, but checked again. */
static const char *db_name(const char *key, size_t klen, char *name)
{
	const char *why;

	if (memchr(key, '\0', klen) != NULL)
		return "a NUL byte inside a key";
	if ((why = name_check(key, klen, false)) != NULL)
		return why;
	mtad_str_lower(name, key, klen);
	return NULL;
}

/* aliases_db_entry - see local_int.h. */
int aliases_db_entry(struct local_aliases *a, const char *key, size_t klen, const char *value,
		     size_t vlen, char *why, size_t whylen)
{
	static const char full[] = "more than " STR(LOCAL_ALIASES_TARGETS_MAX) " targets";
	char name[LOCAL_ALIAS_NAME_MAX + 1];
	const char *w;
	struct node *n;

	klen = strip_nul(key, klen);
	vlen = strip_nul(value, vlen);
	if (bookkeeping(key, klen))
		return 0;
	if ((w = db_name(key, klen, name)) != NULL) {
		snprintf(why, whylen, "malformed key: %s", w);
		return -1;
	}
	if (table_find(&a->aliases, name, klen) != NULL) {
		snprintf(why, whylen, "alias %s is there twice", name);
		return -1;
	}
	if (a->aliases.n == LOCAL_ALIASES_NAMES_MAX) {
		snprintf(why, whylen, "more than " STR(LOCAL_ALIASES_NAMES_MAX) " names");
		return -1;
	}
	if ((n = table_add(&a->aliases, name, klen)) == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	w = memchr(value, '\0', vlen) ? "a NUL byte inside the value"
				       : targets_add(a, n, value, value + vlen,
						     LOCAL_ALIASES_TARGETS_MAX, full, 1);
	if (w == NULL && n->targets.n == 0)
		w = "no targets";
	if (w == NULL)
		return 0;
	snprintf(why, whylen, "alias %s: %s", name, w);
	return -1;
}

/*
 * needs_quotes - a stored target that the item splitter would not give
 * back as it is: a comma or quote in it, or a blank at an end (trimmed).
 */
static bool needs_quotes(const char *t)
{
	size_t len = strlen(t);

	return strpbrk(t, ",\"") != NULL || t[0] == ' ' || t[0] == '\t' ||
	       (len > 0 && (t[len - 1] == ' ' || t[len - 1] == '\t'));
}

/* value_size - the bytes of n's compiled value with its NUL, quoting at its worst. */
static size_t value_size(const struct node *n)
{
	size_t size = 1;

	for (size_t i = 0; i < n->targets.n; i++)
		size += 2 * strlen(n->targets.v[i]) + 3;
	return size;
}

/* value_join - n's targets joined by ',' into out (value_size bytes); its length. */
static size_t value_join(const struct node *n, char *out)
{
	size_t len = 0;

	for (size_t i = 0; i < n->targets.n; i++) {
		const char *t = n->targets.v[i];
		bool q = needs_quotes(t);

		if (i > 0)
			out[len++] = ',';
		if (q)
			out[len++] = '"';
		for (; *t; t++) {
			if (q && (*t == '"' || *t == '\\'))
				out[len++] = '\\';
			out[len++] = *t;
		}
		if (q)
			out[len++] = '"';
	}
	out[len] = '\0';
	return len;
}

/* aliases_each - see local_int.h. */
int aliases_each(const struct local_aliases *a,
		 int (*fn)(void *arg, const char *name, const char *value, size_t vlen), void *arg)
{
	for (size_t i = 0; i < a->aliases.n; i++) {
		const struct node *n = a->aliases.v[i];
		char *value = malloc(value_size(n));
		int rc;

		if (value == NULL)
			return -1;
		rc = fn(arg, n->name, value, value_join(n, value));
		free(value);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* ---- expansion ---- */

/*
 * One expansion's marks, by key: 'A' + an alias name and 'I' + an
 * include path (being expanded, or done, and at what depth), 'E' + a
 * recipient lower-cased (emitted or refused as one too many).
 */
struct mark {
	char *key;
	unsigned depth;
	bool done;
};

struct marks {
	struct mark *slots;
	size_t nslots, n;	/* nslots a power of two, more than twice n */
};

#define MARK_KEY_MAX (MTAD_PATH_MAX + 1)

/* marks_slot - the slot of key, or the free one where it would go. */
static size_t marks_slot(const struct marks *m, const char *key)
{
	size_t mask = m->nslots - 1, i = (size_t)hash_of(key, strlen(key)) & mask;

	while (m->slots[i].key != NULL && strcmp(m->slots[i].key, key) != 0)
		i = (i + 1) & mask;
	return i;
}

static int marks_grow(struct marks *m)
{
	struct marks g = { .nslots = m->nslots ? m->nslots * 2 : 64, .n = m->n };

	if ((g.slots = calloc(g.nslots, sizeof(*g.slots))) == NULL)
		return -1;
	for (size_t i = 0; i < m->nslots; i++)
		if (m->slots[i].key != NULL)
			g.slots[marks_slot(&g, m->slots[i].key)] = m->slots[i];
	free(m->slots);
	*m = g;
	return 0;
}

/*
 * marks_get - the mark of kind + text (lower-cased for 'E'), added
 * when missing (*added). NULL when out of memory, which only adding
 * can run into: a mark that is there is always found. A pointer holds
 * only until the next marks_get.
 */
static struct mark *marks_get(struct marks *m, char kind, const char *text, bool *added)
{
	char key[MARK_KEY_MAX + 1];
	size_t len = strlen(text), i;

	if (len >= MARK_KEY_MAX)
		len = MARK_KEY_MAX - 1;	/* never: paths and addresses are shorter */
	key[0] = kind;
	if (kind == 'E') {
		mtad_str_lower(key + 1, text, len);
	} else {
		memcpy(key + 1, text, len);
		key[len + 1] = '\0';
	}
	*added = false;
	if (m->nslots > 0) {
		i = marks_slot(m, key);
		if (m->slots[i].key != NULL)
			return &m->slots[i];
	}
	if ((m->n + 1) * 2 >= m->nslots && marks_grow(m) != 0)
		return NULL;
	i = marks_slot(m, key);
	if ((m->slots[i].key = strdup(key)) == NULL)
		return NULL;
	m->n++;
	*added = true;
	return &m->slots[i];
}

static void marks_free(struct marks *m)
{
	for (size_t i = 0; i < m->nslots; i++)
		free(m->slots[i].key);
	free(m->slots);
}

struct expansion {
	const struct local_aliases *a;
	const char *hostname;
	const struct local_alias_ops *ops;
	void *arg;
	unsigned max_out, emitted;
	unsigned long steps;
	bool deep;	/* a target was refused as too deep: a node reached higher up goes further */
	bool stop;	/* emit failed, memory ran out, or too many steps */
	int rc;		/* -1 once emit or memory failed */
	struct marks marks;
};

static void expand_targets(struct expansion *x, const struct node *node, const struct node *owner,
			   unsigned depth);

static void refuse(struct expansion *x, const struct node *from, const char *target,
		   const char *why)
{
	x->ops->refuse(x->arg, from->name, target, why);
}

static void out_of_memory(struct expansion *x)
{
	x->rc = -1;
	x->stop = true;
}

/* emit - a final recipient, once; past max_out a refusal. */
static void emit(struct expansion *x, const struct node *from, const char *addr)
{
	struct mark *m;
	bool added;

	if ((m = marks_get(&x->marks, 'E', addr, &added)) == NULL) {
		out_of_memory(x);
		return;
	}
	if (!added)
		return;
	if (x->emitted == x->max_out) {
		refuse(x, from, addr, "too many recipients");
		return;
	}
	if (x->ops->emit(x->arg, addr) != 0) {
		x->rc = -1;
		x->stop = true;
		return;
	}
	x->emitted++;
}

/*
 * descend - expands node (an alias, or an include file listed by
 * target of from) at depth; owner is the alias whose own name is "keep
 * a copy". A node being expanded further up is a loop; one expanded
 * already is skipped (its recipients are out), unless a depth refusal
 * happened and it is reached higher up now.
 */
static void descend(struct expansion *x, const struct node *from, const char *target,
		    const struct node *node, const struct node *owner, unsigned depth)
{
	char kind = node->include ? 'I' : 'A';
	struct mark *m;
	bool added;

	if (depth > LOCAL_ALIAS_DEPTH_MAX) {
		x->deep = true;
		refuse(x, from, target, "alias nesting too deep");
		return;
	}
	if ((m = marks_get(&x->marks, kind, node->name, &added)) == NULL) {
		out_of_memory(x);
		return;
	}
	if (!added && !m->done) {
		refuse(x, from, target, "alias loop");
		return;
	}
	if (!added && (!x->deep || m->depth <= depth))
		return;
	m->depth = depth;
	m->done = false;
	expand_targets(x, node, owner, depth);
	if ((m = marks_get(&x->marks, kind, node->name, &added)) != NULL)
		m->done = true;	/* always found: it was added above */
}

/* qualify - name@hostname into out (SMTP_PATH_MAX bytes); false when too long for a path. */
static bool qualify(const struct expansion *x, const char *name, char *out)
{
	int n = snprintf(out, SMTP_PATH_MAX, "%s@%s", name, x->hostname);

	return n >= 0 && (size_t)n + 2 < SMTP_PATH_MAX;
}

/* resolve - addr, whose local part (len bytes) is ours: its alias, itself, or emitted. */
static void resolve(struct expansion *x, const struct node *from, const struct node *owner,
		    const char *target, const char *addr, size_t len, unsigned depth)
{
	const struct node *alias = alias_find(x->a, addr, len);

	if (alias == NULL || alias == owner)
		emit(x, from, addr);	/* a user, or the alias itself: keep a copy */
	else
		descend(x, from, target, alias, alias, depth + 1);
}

/* expand_include - the addresses of an include file read at load time. */
static void expand_include(struct expansion *x, const struct node *from, const struct node *owner,
			   const char *target, unsigned depth)
{
	const char *path = target + INCLUDE_PREFIX_LEN;
	const struct node *inc = table_find(&x->a->includes, path, strlen(path));

	if (inc == NULL || !inc->read)
		refuse(x, from, target, "include file not read");
	else
		descend(x, from, target, inc, owner, depth + 1);
}

/* expand_target - one target of node. */
static void expand_target(struct expansion *x, const struct node *node, const struct node *owner,
			  const char *t, unsigned depth)
{
	char addr[SMTP_PATH_MAX];
	const char *at;

	switch (target_kind(t)) {
	case T_PIPE:
	case T_FILE:
		refuse(x, node, t, not_delivered);
		return;
	case T_INCLUDE:
		expand_include(x, node, owner, t, depth);
		return;
	case T_KEEP:
		if (qualify(x, t + 1, addr))
			emit(x, node, addr);
		else
			refuse(x, node, t, "address too long with the hostname");
		return;
	case T_NAME:
		if (qualify(x, t, addr))
			resolve(x, node, owner, t, addr, strlen(t), depth);
		else
			refuse(x, node, t, "address too long with the hostname");
		return;
	case T_ADDRESS:
		at = strrchr(t, '@');
		if (x->ops->is_local(x->arg, at + 1))
			resolve(x, node, owner, t, t, (size_t)(at - t), depth);
		else
			emit(x, node, t);
		return;
	}
}

/* expand_targets - every target of node, each one step. */
static void expand_targets(struct expansion *x, const struct node *node, const struct node *owner,
			   unsigned depth)
{
	for (size_t i = 0; i < node->targets.n && !x->stop; i++) {
		if (++x->steps > LOCAL_ALIAS_STEPS_MAX) {
			refuse(x, node, node->targets.v[i], "alias expansion too large");
			x->stop = true;
			return;
		}
		expand_target(x, node, owner, node->targets.v[i], depth);
	}
}

/* local_aliases_expand - see local.h. */
int local_aliases_expand(const struct local_aliases *a, const char *addr, const char *hostname,
			 const struct local_alias_ops *ops, void *arg, unsigned max_out)
{
	struct expansion x = { .a = a, .hostname = hostname, .ops = ops, .arg = arg,
			       .max_out = max_out };
	const char *at = strrchr(addr, '@');
	const struct node *alias = NULL;

	if (at == NULL || ops->is_local(arg, at + 1))
		alias = alias_find(a, addr, at ? (size_t)(at - addr) : strlen(addr));
	if (alias == NULL)
		return ops->emit(arg, addr) == 0 ? 1 : -1;	/* not aliased */
	descend(&x, alias, addr, alias, alias, 1);
	marks_free(&x.marks);
	return x.rc < 0 ? -1 : (int)x.emitted;
}
