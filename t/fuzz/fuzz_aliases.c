/*
 * fuzz_aliases.c - libFuzzer target for the aliases (local/aliases.c):
 * the aliases(5) parser, the include file parser, the compiled value
 * written and read back, and expansion over the table in memory. No
 * files: local/aliases_db.c's I/O is the unit test's (t/unit/aliases.c).
 *
 * Input: an aliases text; after a line "%%" the rest is the text of the
 * include file /inc (attached when an alias names it).
 *
 * Checks: every name's compiled value reads back as the same targets
 * (what newaliases writes, mtad loads); an expansion emits each
 * recipient once (case-insensitive), at most max_out of them, each
 * shorter than a path and an address (local@domain: a pipe or a file
 * is never one, every name is qualified), and returns how many it
 * emitted.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "local/local.h"
#include "local/local_int.h"

#define MAX_OUT 40
#define NAMES 8

struct check {
	char out[MAX_OUT][SMTP_PATH_MAX];
	unsigned n;
};

static bool is_local(void *arg, const char *domain)
{
	(void)arg;
	return strcasecmp(domain, "h.test") == 0 || strcasecmp(domain, "local.test") == 0;
}

static int on_emit(void *arg, const char *addr)
{
	struct check *c = arg;
	size_t len = strlen(addr);

	if (c->n >= MAX_OUT || len >= SMTP_PATH_MAX || addr[0] == '@' || strchr(addr, '@') == NULL)
		abort();
	for (unsigned i = 0; i < c->n; i++)
		if (strcasecmp(c->out[i], addr) == 0)
			abort();
	memcpy(c->out[c->n++], addr, len + 1);
	return 0;
}

static void on_refuse(void *arg, const char *alias, const char *target, const char *why)
{
	(void)arg;
	if (alias == NULL || target == NULL || why == NULL || why[0] == '\0')
		abort();
}

static const struct local_alias_ops ops = { is_local, on_emit, on_refuse };

/* expand_one - addr through a, checked. */
static void expand_one(const struct local_aliases *a, const char *addr)
{
	static struct check c;
	int n;

	c.n = 0;
	n = local_aliases_expand(a, addr, "h.test", &ops, &c, MAX_OUT);
	if (n < 0 || (unsigned)n != c.n)
		abort();
}

struct round_trip {
	struct local_aliases *copy;
	const struct local_aliases *orig;
	char names[NAMES][LOCAL_ALIAS_NAME_MAX + 1];
	unsigned nnames;
};

/* same_targets - name has the same targets in both tables. */
static bool same_targets(const struct local_aliases *x, const struct local_aliases *y,
			 const char *name)
{
	size_t nx, ny;
	const char *const *tx = local_aliases_lookup(x, name, &nx);
	const char *const *ty = local_aliases_lookup(y, name, &ny);

	if (tx == NULL || ty == NULL || nx != ny)
		return false;
	for (size_t i = 0; i < nx; i++)
		if (strcmp(tx[i], ty[i]) != 0)
			return false;
	return true;
}

/* copy_entry - a compiled entry into the copy; it must read back the same. */
static int copy_entry(void *arg, const char *name, const char *value, size_t vlen)
{
	struct round_trip *r = arg;
	char why[256];

	if (strlen(value) != vlen)
		abort();
	if (aliases_db_entry(r->copy, name, strlen(name) + 1, value, vlen + 1, why,
			     sizeof(why)) != 0 || !same_targets(r->orig, r->copy, name))
		abort();
	if (r->nnames < NAMES)
		strcpy(r->names[r->nnames++], name);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct round_trip r;
	const char *text = (const char *)data, *sep = memmem(text, size, "\n%%\n", 4);
	size_t len = sep ? (size_t)(sep - text) + 1 : size;
	struct local_aliases *a;
	char err[512];

	if ((a = local_aliases_parse(text, len, "fuzz", err, sizeof(err))) == NULL)
		return 0;
	if (sep != NULL)
		(void)local_aliases_include_text(a, "/inc", sep + 4, size - len - 3, err,
						 sizeof(err));
	r.orig = a;
	r.nnames = 0;
	if ((r.copy = aliases_new()) == NULL || aliases_each(a, copy_entry, &r) != 0)
		abort();
	local_aliases_free(r.copy);
	for (unsigned i = 0; i < r.nnames; i++) {
		char addr[LOCAL_ALIAS_NAME_MAX + 16];

		strcpy(addr, r.names[i]);
		expand_one(a, addr);	/* bare: name@h.test */
		strcat(addr, "@Local.Test");
		expand_one(a, addr);
	}
	expand_one(a, "root@elsewhere.test");
	local_aliases_free(a);
	return 0;
}
