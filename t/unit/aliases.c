/*
 * aliases.c - unit tests for the aliases (local/aliases.c,
 * local/aliases_db.c): parsing aliases(5) text (continuations,
 * comments, quotes, every error with its file:line), the compiled
 * value written and read back the same, newaliases and the load of a
 * real Berkeley DB hash file in a mkdtemp directory (its format, its
 * mode, a stale or missing file, a failed compile leaving the old file,
 * include files nested, missing, too deep), and expansion (qualified
 * names, keep a copy, loops, pipes and files, duplicates, other
 * domains, case, max_out, depth, a diamond graph and the step bound).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <db.h>

#include "local/local.h"
#include "local/local_int.h"
#include "t/unit/tap.h"

#define HOST "mx.campus.test"

/* ---- what an expansion told ---- */

#define SEEN_MAX 8

struct seen {
	unsigned emitted, refused, emit_calls;
	char out[SEEN_MAX][SMTP_PATH_MAX];	/* the first emitted */
	char alias[SEEN_MAX][300], target[SEEN_MAX][300], why[SEEN_MAX][100];	/* the first refused */
	int fail_emit_at;	/* emit returns -1 on this call (from 1); 0 never */
};

static bool is_local(void *arg, const char *domain)
{
	(void)arg;
	return strcasecmp(domain, HOST) == 0 || strcasecmp(domain, "campus.test") == 0;
}

static int on_emit(void *arg, const char *addr)
{
	struct seen *s = arg;

	if (++s->emit_calls == (unsigned)s->fail_emit_at)
		return -1;
	if (s->emitted < SEEN_MAX)
		snprintf(s->out[s->emitted], sizeof(s->out[0]), "%s", addr);
	s->emitted++;
	return 0;
}

static void on_refuse(void *arg, const char *alias, const char *target, const char *why)
{
	struct seen *s = arg;

	if (s->refused < SEEN_MAX) {
		snprintf(s->alias[s->refused], sizeof(s->alias[0]), "%s", alias);
		snprintf(s->target[s->refused], sizeof(s->target[0]), "%s", target);
		snprintf(s->why[s->refused], sizeof(s->why[0]), "%s", why);
	}
	s->refused++;
}

static const struct local_alias_ops ops = { is_local, on_emit, on_refuse };

static int expand(const struct local_aliases *a, const char *addr, struct seen *s, unsigned max)
{
	int fail_at = s->fail_emit_at;

	memset(s, 0, sizeof(*s));
	s->fail_emit_at = fail_at;
	return local_aliases_expand(a, addr, HOST, &ops, s, max);
}

/* emitted - the first emitted recipients are exactly want (NULL-terminated). */
static bool emitted(const struct seen *s, const char *const *want)
{
	unsigned i;

	for (i = 0; want[i]; i++)
		if (i >= s->emitted || strcmp(s->out[i], want[i]) != 0)
			return false;
	return i == s->emitted;
}

static struct local_aliases *parse(const char *text, char *err, size_t errlen)
{
	return local_aliases_parse(text, strlen(text), "f", err, errlen);
}

/* targets_are - name's targets are exactly want (NULL-terminated). */
static bool targets_are(const struct local_aliases *a, const char *name, const char *const *want)
{
	size_t n, i;
	const char *const *t = local_aliases_lookup(a, name, &n);

	for (i = 0; want[i]; i++)
		if (t == NULL || i >= n || strcmp(t[i], want[i]) != 0)
			return false;
	return t != NULL && i == n;
}

/* ---- parsing ---- */

static void test_parse(struct tap *t)
{
	char err[256] = "";
	struct local_aliases *a = parse(
		"# the postmaster\n"
		"\n"
		"Root: alice, bob@example.org\r\n"
		"staff: carol,\n"
		"\tdave@campus.test , \n"
		"  # a comment between continuation lines\n"
		"\n"
		"   :INCLUDE: /etc/mail/staff\n"
		"\"Odd Name\": \"|/usr/bin/prog -x, y\", /var/mail/archive,|/bin/true arg\n"
		"keep:\\keep,\"john doe\"@example.org\n"
		"last:eve", err, sizeof(err));
	size_t names, includes;

	TAP_OK(t, a != NULL, "an aliases file parses: %s", a ? "" : err);
	if (a == NULL)
		return;
	TAP_OK(t, targets_are(a, "root", (const char *[]){ "alice", "bob@example.org", NULL }),
	       "a name is stored lower-cased; CRLF is one line end");
	TAP_OK(t, targets_are(a, "ROOT", (const char *[]){ "alice", "bob@example.org", NULL }),
	       "and looked up in any case");
	TAP_OK(t, targets_are(a, "staff", (const char *[]){ "carol", "dave@campus.test",
			      ":include:/etc/mail/staff", NULL }),
	       "continuation lines, blank and comment lines between them, :include: normalised");
	TAP_OK(t, targets_are(a, "odd name", (const char *[]){ "|/usr/bin/prog -x, y",
			      "/var/mail/archive", "|/bin/true arg", NULL }),
	       "a quoted name; a quoted pipe with a comma; a file; a bare pipe with a blank");
	TAP_OK(t, targets_are(a, "keep", (const char *[]){ "\\keep", "\"john doe\"@example.org",
			      NULL }), "\\name, and a quoted local part kept as written");
	TAP_OK(t, targets_are(a, "last", (const char *[]){ "eve", NULL }),
	       "the last line without a newline");
	local_aliases_counts(a, &names, &includes);
	TAP_OK(t, names == 5 && includes == 1, "5 names, 1 include file (%zu, %zu)", names, includes);
	TAP_OK(t, local_aliases_lookup(a, "nobody", &names) == NULL && names == 0, "no such name");
	local_aliases_free(a);

	a = parse("", err, sizeof(err));
	TAP_OK(t, a != NULL, "an empty file is an empty table");
	local_aliases_free(a);
}

/* parse_fails - text is refused with an error starting with want. */
static bool parse_fails(const char *text, const char *want, char *err, size_t errlen)
{
	struct local_aliases *a = parse(text, err, errlen);

	local_aliases_free(a);
	return a == NULL && strncmp(err, want, strlen(want)) == 0;
}

static void test_parse_errors(struct tap *t)
{
	char err[256] = "";
	static const struct {
		const char *text, *want, *what;
	} cases[] = {
		{ "a: b\nno colon here\n", "f:2: expected \"name: target, ...\"", "a line without ':'" },
		{ "  : b\n", "f:1: a continuation line", "a continuation first" },
		{ ": b\n", "f:1: an empty name", "an empty name" },
		{ "\"\": b\n", "f:1: an empty name", "an empty quoted name" },
		{ "root: a\n# c\nx: y\nROOT: b\n", "f:4: alias root is listed twice (first at line 1)",
		  "a name twice, any case" },
		{ "a:\nb: c\n", "f:1: alias a has no targets", "a name without targets" },
		{ "a: ,\n", "f:1: alias a has no targets", "only commas" },
		{ "a@b: c\n", "f:1: an @ in a name", "a name with a domain" },
		{ "a b: c\n", "f:1: a blank or quote in a name", "an unquoted blank in a name" },
		{ "a: \"|prog\n", "f:1: a quote that is not closed", "an unclosed quote" },
		{ "a: :include:etc/x\n", "f:1: :include: needs an absolute path", "a relative include" },
		{ "a: b c\n", "f:1: a blank or one of", "a blank in an address" },
		{ "a: x@\n", "f:1: an address without a domain", "no domain" },
		{ "a: @x\n", "f:1: an address without a local part", "no local part" },
		{ "a: @x@y\n", "f:1: more than one @", "a source route" },
		{ "a: x@y@z\n", "f:1: more than one @", "two @" },
		{ "a: <x@y>\n", "f:1: a blank or one of", "angle brackets" },
		{ "a: |\n", "f:1: an empty pipe command", "an empty pipe" },
		{ "a: \"\"\n", "f:1: an empty target", "an empty quoted target" },
		{ "a: b\x01\n", "f:1: a control character", "a control character" },
		{ "a: \\x@y\n", "f:1: an @ in a name", "\\name with a domain" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		TAP_OK(t, parse_fails(cases[i].text, cases[i].want, err, sizeof(err)), "%s: %s",
		       cases[i].what, err);
	{
		struct local_aliases *a = local_aliases_parse("a: b\nc: d\0e\n", 12, "f", err,
							      sizeof(err));

		TAP_OK(t, a == NULL && strcmp(err, "f:2: a NUL byte") == 0, "a NUL byte: %s", err);
	}
}

/* long_line - "x: " and an address up to len bytes in all. */
static char *long_line(size_t len)
{
	char *s = malloc(len + 3);

	if (s == NULL)
		abort();
	memset(s, 'a', len);
	memcpy(s, "x: ", 3);
	s[len] = '\n';
	s[len + 1] = '\0';
	return s;
}

/* many_targets - "big:" and n targets, ten to a continuation line. */
static char *many_targets(unsigned n)
{
	char *s = malloc(20 + (size_t)n * 16), *p = s;

	if (s == NULL)
		abort();
	p += sprintf(p, "big:");
	for (unsigned i = 0; i < n; i++)
		p += sprintf(p, "%su%u", i % 10 == 0 ? "\n\t" : ", ", i);
	sprintf(p, "\n");
	return s;
}

static void test_parse_bounds(struct tap *t)
{
	char err[256] = "";
	char *s = long_line(LOCAL_ALIASES_LINE_MAX);
	struct local_aliases *a;

	/* an 8192-byte line whose address is too long: the line is not the problem */
	TAP_OK(t, parse_fails(s, "f:1: an address longer", err, sizeof(err)),
	       "a line of 8192 bytes is read: %s", err);
	free(s);
	s = long_line(LOCAL_ALIASES_LINE_MAX + 1);
	TAP_OK(t, parse_fails(s, "f:1: a line longer than 8192 bytes", err, sizeof(err)),
	       "a line of 8193 bytes: %s", err);
	free(s);

	s = many_targets(LOCAL_ALIASES_TARGETS_MAX);
	a = parse(s, err, sizeof(err));
	TAP_OK(t, a != NULL, "1000 targets: %s", a ? "" : err);
	local_aliases_free(a);
	free(s);
	s = many_targets(LOCAL_ALIASES_TARGETS_MAX + 1);
	TAP_OK(t, parse_fails(s, "f:102: alias big has more than 1000 targets", err, sizeof(err)),
	       "1001 targets, at the line of the 1001st: %s", err);
	free(s);

	s = malloc(LOCAL_ALIASES_FILE_MAX + 1);
	if (s == NULL)
		abort();
	memset(s, '\n', LOCAL_ALIASES_FILE_MAX + 1);
	a = local_aliases_parse(s, LOCAL_ALIASES_FILE_MAX, "f", err, sizeof(err));
	TAP_OK(t, a != NULL, "16 MB of blank lines: %s", a ? "" : err);
	local_aliases_free(a);
	a = local_aliases_parse(s, LOCAL_ALIASES_FILE_MAX + 1, "f", err, sizeof(err));
	TAP_OK(t, a == NULL && strcmp(err, "f: larger than 16 MB") == 0, "one byte more: %s", err);
	free(s);
}

/* ---- the compiled value ---- */

struct copy {
	struct local_aliases *to;
	char why[256];
	unsigned n;
	bool value_ok;
};

static int copy_entry(void *arg, const char *name, const char *value, size_t vlen)
{
	struct copy *c = arg;

	c->n++;
	if (strlen(value) != vlen)
		c->value_ok = false;
	return aliases_db_entry(c->to, name, strlen(name) + 1, value, vlen + 1, c->why,
				sizeof(c->why)) != 0;
}

/* same_value - the value of name as aliases_each gives it is want. */
static int value_of(void *arg, const char *name, const char *value, size_t vlen)
{
	const char **want = arg;

	(void)vlen;
	if (strcmp(name, want[0]) == 0)
		want[1] = strcmp(value, want[2]) == 0 ? "yes" : value;
	return 0;
}

static void test_compiled_value(struct tap *t)
{
	static const char text[] =
		"root: alice, bob@example.org\n"
		"q: \"|prog a, b\", \"john doe\"@example.org, \"|echo \\\"hi\", \"|x \", \\root\n"
		"inc: :include:/etc/x\n";
	char err[256] = "";
	struct local_aliases *a = parse(text, err, sizeof(err));
	struct copy c = { .value_ok = true };
	const char *want[3] = { "root", NULL, "alice,bob@example.org" };
	size_t names, includes;
	int rc;

	if (a == NULL || (c.to = aliases_new()) == NULL) {
		TAP_OK(t, 0, "set-up: %s", err);
		local_aliases_free(a);
		return;
	}
	rc = aliases_each(a, value_of, want);
	TAP_OK(t, rc == 0 && want[1] && strcmp(want[1], "yes") == 0,
	       "a value is the targets joined by ',' (%s)", want[1] ? want[1] : "none");
	want[0] = "q";
	want[1] = NULL;
	want[2] = "\"|prog a, b\",\"\\\"john doe\\\"@example.org\",\"|echo \\\"hi\",\"|x \",\\root";
	rc = aliases_each(a, value_of, want);
	TAP_OK(t, rc == 0 && want[1] && strcmp(want[1], "yes") == 0,
	       "targets with a comma, a quote or an end blank are quoted (%s)", want[1] ? want[1] : "none");
	TAP_OK(t, aliases_each(a, copy_entry, &c) == 0 && c.n == 3 && c.value_ok,
	       "every value reads back as an entry: %s", c.why);
	TAP_OK(t, targets_are(c.to, "q", (const char *[]){ "|prog a, b", "\"john doe\"@example.org",
			      "|echo \"hi", "|x ", "\\root", NULL }),
	       "and gives the same targets");
	local_aliases_counts(c.to, &names, &includes);
	TAP_OK(t, names == 3 && includes == 1, "and records the include file");
	TAP_OK(t, aliases_db_entry(c.to, "@", 2, "@", 2, c.why, sizeof(c.why)) == 0 &&
	       aliases_db_entry(c.to, "YP_LAST_MODIFIED", 16, "1796393780", 10, c.why,
				sizeof(c.why)) == 0 &&
	       aliases_db_entry(c.to, "YP_MASTER_NAME", 14, "vm.example", 10, c.why,
				sizeof(c.why)) == 0 &&
	       local_aliases_lookup(c.to, "yp_master_name", &names) == NULL,
	       "the \"@\" mark and postalias' YP_ keys are skipped, not aliases");
	TAP_OK(t, aliases_db_entry(c.to, "Root", 4, "x", 1, c.why, sizeof(c.why)) != 0 &&
	       strstr(c.why, "twice"), "a name twice in a file: %s", c.why);
	TAP_OK(t, aliases_db_entry(c.to, "a\0b", 3, "x", 1, c.why, sizeof(c.why)) != 0 &&
	       strstr(c.why, "NUL"), "a NUL inside a key: %s", c.why);
	TAP_OK(t, aliases_db_entry(c.to, "z", 1, "x y", 3, c.why, sizeof(c.why)) != 0 &&
	       strstr(c.why, "alias z: a blank"), "a bad value: %s", c.why);
	TAP_OK(t, aliases_db_entry(c.to, "w", 1, "", 0, c.why, sizeof(c.why)) != 0 &&
	       strstr(c.why, "no targets"), "an empty value: %s", c.why);
	local_aliases_free(c.to);
	local_aliases_free(a);
}

/* ---- files: newaliases and load ---- */

struct dir {
	char path[64];
	char aliases[128];	/* DIR/aliases */
	char db[160];		/* DIR/aliases.db */
};

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return -1;
	if (fputs(text, f) < 0) {
		fclose(f);
		return -1;
	}
	return fclose(f);
}

/* file_bytes - the whole of a (small) file, malloc'ed; NULL when unreadable. */
static char *file_bytes(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *buf = malloc(1 << 20);

	*len = 0;
	if (f == NULL || buf == NULL) {
		if (f)
			fclose(f);
		free(buf);
		return NULL;
	}
	*len = fread(buf, 1, 1 << 20, f);
	fclose(f);
	return buf;
}

/* same_file - path holds exactly len bytes of want. */
static bool same_file(const char *path, const char *want, size_t len)
{
	size_t n;
	char *b = file_bytes(path, &n);
	bool same = b != NULL && n == len && memcmp(b, want, len) == 0;

	free(b);
	return same;
}

/* files_like - how many files in d's directory have a name starting with prefix. */
static unsigned files_like(const struct dir *d, const char *prefix)
{
	DIR *dir = opendir(d->path);
	struct dirent *e;
	unsigned n = 0;

	if (dir == NULL)
		return 999;
	while ((e = readdir(dir)) != NULL)
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
			n++;
	closedir(dir);
	return n;
}

/* db_get - the value of key (with its NUL) in the hash file, into out. */
static bool db_get(const char *path, const char *key, char *out, size_t cap, size_t *len)
{
	DB *db;
	DBT k = { .data = (void *)key, .size = (u_int32_t)strlen(key) + 1 }, v = { 0 };
	bool found = false;

	if (db_create(&db, NULL, 0) != 0)
		return false;
	if (db->open(db, NULL, path, NULL, DB_HASH, DB_RDONLY, 0) == 0 &&
	    db->get(db, NULL, &k, &v, 0) == 0 && v.size <= cap) {
		memcpy(out, v.data, v.size);
		*len = v.size;
		found = true;
	}
	db->close(db, 0);
	return found;
}

/* db_put_raw - writes one entry as given (no NULs added) into a new hash file. */
static int db_put_raw(const char *path, const char *key, size_t klen, const char *val,
		      size_t vlen)
{
	DB *db;
	DBT k = { .data = (void *)key, .size = (u_int32_t)klen };
	DBT v = { .data = (void *)val, .size = (u_int32_t)vlen };
	int rc;

	unlink(path);
	if (db_create(&db, NULL, 0) != 0)
		return -1;
	rc = db->open(db, NULL, path, NULL, DB_HASH, DB_CREATE, 0644);
	if (rc == 0)
		rc = db->put(db, NULL, &k, &v, 0);
	return db->close(db, 0) == 0 && rc == 0 ? 0 : -1;
}

/* touch_ahead - sets path's mtime to s seconds from now. */
static int touch_ahead(const char *path, int s)
{
	struct timespec ts[2];

	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec += s;
	ts[1] = ts[0];
	return utimensat(AT_FDCWD, path, ts, 0);
}

static void test_compile_load(struct tap *t, const struct dir *d)
{
	char text[1024], err[512] = "", val[256];
	struct local_aliases *a;
	struct stat st;
	struct seen s = { 0 };
	size_t len;

	snprintf(text, sizeof(text),
		 "root: alice, bob@example.org\n"
		 "Staff: :include:%s/staff, carol\n"
		 "pipe: \"|/usr/bin/prog a, b\"\n", d->path);
	if (write_file(d->aliases, text) != 0) {
		TAP_OK(t, 0, "set-up: write %s", d->aliases);
		return;
	}
	snprintf(val, sizeof(val), "%s/staff", d->path);
	write_file(val, "# the staff\ndave, erin@example.org\nfrank@campus.test\n");

	TAP_OK(t, local_aliases_compile(d->aliases, err, sizeof(err)) == 0, "newaliases: %s", err);
	memset(&st, 0, sizeof(st));
	stat(d->db, &st);
	TAP_OK(t, (st.st_mode & 07777) == 0644,
	       "aliases.db is there, mode 0644 (%o)", (unsigned)(st.st_mode & 07777));
	TAP_OK(t, files_like(d, "aliases.db.tmp") == 0, "no temporary file left");
	TAP_OK(t, db_get(d->db, "root", val, sizeof(val), &len) &&
	       len == sizeof("alice,bob@example.org") &&
	       memcmp(val, "alice,bob@example.org", len) == 0,
	       "key \"root\\0\" holds \"alice,bob@example.org\\0\" (postalias' format)");
	TAP_OK(t, db_get(d->db, "@", val, sizeof(val), &len) && len == 2 && memcmp(val, "@", 2) == 0,
	       "and \"@\\0\" holds \"@\\0\" (the file is complete)");
	TAP_OK(t, db_get(d->db, "staff", val, sizeof(val), &len), "a name is a lower-cased key");

	a = local_aliases_load(d->aliases, err, sizeof(err));
	TAP_OK(t, a != NULL, "it loads: %s", a ? "" : err);
	if (a != NULL) {
		TAP_OK(t, targets_are(a, "root", (const char *[]){ "alice", "bob@example.org", NULL }) &&
		       targets_are(a, "pipe", (const char *[]){ "|/usr/bin/prog a, b", NULL }),
		       "with the targets written (a quoted one too)");
		TAP_OK(t, expand(a, "staff@" HOST, &s, 100) == 4 &&
		       emitted(&s, (const char *[]){ "dave@" HOST, "erin@example.org",
				   "frank@campus.test", "carol@" HOST, NULL }),
		       "the include file was read at load: %s %s %s %s", s.out[0], s.out[1], s.out[2],
		       s.out[3]);
		local_aliases_free(a);
	}

	memset(&st, 0, sizeof(st));
	if (chmod(d->db, 0640) == 0 && local_aliases_compile(d->aliases, err, sizeof(err)) == 0)
		stat(d->db, &st);
	TAP_OK(t, (st.st_mode & 07777) == 0640,
	       "newaliases again keeps the old file's mode 0640 (%o)", (unsigned)(st.st_mode & 07777));

	TAP_OK(t, touch_ahead(d->aliases, 10) == 0 &&
	       local_aliases_load(d->aliases, err, sizeof(err)) == NULL &&
	       strstr(err, "aliases.db is older than ") && strstr(err, ": run newaliases"),
	       "a source changed after newaliases: %s", err);
	a = touch_ahead(d->aliases, 0) == 0 && local_aliases_compile(d->aliases, err, sizeof(err)) == 0
		? local_aliases_load(d->aliases, err, sizeof(err)) : NULL;
	TAP_OK(t, a != NULL, "newaliases makes it fresh again: %s", a ? "" : err);
	local_aliases_free(a);

	unlink(d->db);
	a = local_aliases_load(d->aliases, err, sizeof(err));
	TAP_OK(t, a == NULL && strstr(err, "aliases.db: no such file: run newaliases") &&
	       strncmp(err, d->db, strlen(d->db)) == 0, "no aliases.db: %s", err);
	local_aliases_free(a);
}

static void test_load_errors(struct tap *t, const struct dir *d)
{
	static const char missing[] = ":include:/nonexistent/mtad-aliases-test";
	char err[512] = "";
	struct local_aliases *a;

	write_file(d->aliases, "x: y\n");
	write_file(d->db, "this is not a database, just text that is long enough to read");
	touch_ahead(d->db, 20);
	a = local_aliases_load(d->aliases, err, sizeof(err));
	TAP_OK(t, a == NULL && strstr(err, "not a Berkeley DB hash file"), "a text file: %s", err);
	local_aliases_free(a);

	a = db_put_raw(d->db, "x", 1, "y@example.org", 13) == 0 && touch_ahead(d->db, 20) == 0
		? local_aliases_load(d->aliases, err, sizeof(err)) : NULL;
	TAP_OK(t, a != NULL && targets_are(a, "x", (const char *[]){ "y@example.org", NULL }),
	       "an entry without NULs (postalias -n) loads: %s", a ? "" : err);
	local_aliases_free(a);

	db_put_raw(d->db, "x", 2, "y b", 4);
	touch_ahead(d->db, 20);
	a = local_aliases_load(d->aliases, err, sizeof(err));
	TAP_OK(t, a == NULL && strstr(err, "aliases.db: alias x: a blank"), "a malformed value: %s",
	       err);
	local_aliases_free(a);
	db_put_raw(d->db, "x\0y", 4, "z", 2);
	touch_ahead(d->db, 20);
	a = local_aliases_load(d->aliases, err, sizeof(err));
	TAP_OK(t, a == NULL && strstr(err, "malformed key: a NUL"), "a NUL in a key: %s", err);
	local_aliases_free(a);

	db_put_raw(d->db, "x", 2, missing, sizeof(missing));
	touch_ahead(d->db, 20);
	a = local_aliases_load(d->aliases, err, sizeof(err));
	TAP_OK(t, a == NULL &&
	       strcmp(err, ":include: file /nonexistent/mtad-aliases-test: No such file or directory") == 0,
	       "an include file that is not there: %s", err);
	local_aliases_free(a);
}

/* chain - DIR/incN includes DIR/inc(N+1) ... up to DIR/inc(last), which lists a user. */
static void chain(const struct dir *d, int last)
{
	char path[160], text[256];

	for (int i = 1; i <= last; i++) {
		snprintf(path, sizeof(path), "%s/inc%d", d->path, i);
		if (i < last)
			snprintf(text, sizeof(text), "# level %d\n:include:%s/inc%d\n", i, d->path, i + 1);
		else
			snprintf(text, sizeof(text), "deep@example.org\n");
		write_file(path, text);
	}
}

static void test_includes(struct tap *t, const struct dir *d)
{
	char text[256], err[512] = "", inc2[160];
	struct local_aliases *a;
	struct seen s = { 0 };

	snprintf(text, sizeof(text), "list: :include:%s/inc1\n", d->path);
	write_file(d->aliases, text);
	chain(d, LOCAL_INCLUDE_DEPTH_MAX);
	a = local_aliases_compile(d->aliases, err, sizeof(err)) == 0 ?
		local_aliases_load(d->aliases, err, sizeof(err)) : NULL;
	TAP_OK(t, a != NULL, "includes nested 5 deep load: %s", a ? "" : err);
	TAP_OK(t, a && expand(a, "list", &s, 10) == 1 &&
	       emitted(&s, (const char *[]){ "deep@example.org", NULL }),
	       "and expand to the innermost file's address");
	local_aliases_free(a);

	chain(d, LOCAL_INCLUDE_DEPTH_MAX + 1);
	a = local_aliases_load(d->aliases, err, sizeof(err));
	TAP_OK(t, a == NULL && strstr(err, "/inc5:2: :include: nested more than 5 deep"),
	       "6 deep: %s", err);
	local_aliases_free(a);

	/* a loop of include files loads (each is read once) and is refused at expansion */
	snprintf(text, sizeof(text), "x@example.org, :include:%s/inc1\n", d->path);
	snprintf(inc2, sizeof(inc2), "%s/inc2", d->path);
	write_file(inc2, text);
	a = local_aliases_load(d->aliases, err, sizeof(err));
	TAP_OK(t, a != NULL, "include files that include each other load: %s", a ? "" : err);
	TAP_OK(t, a && expand(a, "list", &s, 10) == 1 && s.refused == 1 &&
	       strcmp(s.why[0], "alias loop") == 0 && strstr(s.alias[0], "/inc2") &&
	       strstr(s.target[0], ":include:"), "and their loop is refused: %s %s %s", s.alias[0],
	       s.target[0], s.why[0]);
	local_aliases_free(a);
}

/*
 * test_atomic - a newaliases that fails leaves the old aliases.db as it
 * was, and no temporary file: a bad source, a file size limit hit while
 * writing (RLIMIT_FSIZE fails for root too), a directory that is a
 * file.
 */
static void test_atomic(struct tap *t, const struct dir *d)
{
	char err[512] = "", *old, *big, path[160];
	struct rlimit saved, small;
	size_t len;

	write_file(d->aliases, "root: alice\n");
	if (local_aliases_compile(d->aliases, err, sizeof(err)) != 0 ||
	    (old = file_bytes(d->db, &len)) == NULL) {
		TAP_OK(t, 0, "set-up: %s", err);
		return;
	}
	write_file(d->aliases, "root: alice\nbad line\n");
	TAP_OK(t, local_aliases_compile(d->aliases, err, sizeof(err)) != 0 && strstr(err, "aliases:2:") &&
	       same_file(d->db, old, len) && files_like(d, "aliases.db.tmp") == 0,
	       "a bad source: the old file stays, nothing left behind: %s", err);

	big = many_targets(LOCAL_ALIASES_TARGETS_MAX);
	{
		/* 200 names of 1000 targets: megabytes of hash file */
		FILE *f = fopen(d->aliases, "w");

		for (int i = 0; f && i < 200; i++)
			fprintf(f, "n%d%s", i, big + 3);
		if (f)
			fclose(f);
	}
	free(big);
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &saved);
	small = saved;
	small.rlim_cur = 256 * 1024;
	TAP_OK(t, setrlimit(RLIMIT_FSIZE, &small) == 0, "a file size limit of 256 KB");
	TAP_OK(t, local_aliases_compile(d->aliases, err, sizeof(err)) != 0 &&
	       same_file(d->db, old, len) && files_like(d, "aliases.db.tmp") == 0,
	       "a write that fails half-way: the old file stays, nothing left behind: %s", err);
	setrlimit(RLIMIT_FSIZE, &saved);
	signal(SIGXFSZ, SIG_DFL);
	err[0] = '\0';
	TAP_OK(t, local_aliases_compile(d->aliases, err, sizeof(err)) == 0,
	       "without the limit it is written: %s", err);
	free(old);

	snprintf(path, sizeof(path), "%s/aliases/aliases", d->path);
	TAP_OK(t, local_aliases_compile(path, err, sizeof(err)) != 0 && strstr(err, "Not a directory"),
	       "a directory that is a file: %s", err);
}

/* ---- expansion ---- */

static void test_expand(struct tap *t)
{
	char err[256] = "";
	struct local_aliases *a = parse(
		"root: alice, bob@example.org\n"
		"postmaster: root\n"
		"me: me, bob\n"
		"self: self@" HOST "\n"
		"a: b\n"
		"b: a\n"
		"prog: |/usr/bin/prog, /var/mail/x, alice\n"
		"dup: alice, ALICE@" HOST ", alice@campus.test, Alice@MX.Campus.Test, bob\n"
		"ten: u0,u1,u2,u3,u4,u5,u6,u7,u8,u9\n"
		"keep: \\keep, \\root\n"
		"inc: :include:/not/read, carol\n"
		"long: " "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
		err, sizeof(err));
	struct seen s = { 0 };

	if (a == NULL) {
		TAP_OK(t, 0, "set-up: %s", err);
		return;
	}
	TAP_OK(t, expand(a, "root@" HOST, &s, 100) == 2 && s.refused == 0 &&
	       emitted(&s, (const char *[]){ "alice@" HOST, "bob@example.org", NULL }),
	       "root: alice, bob@example.org: a bare name is qualified, a foreign address kept");
	TAP_OK(t, expand(a, "postmaster", &s, 100) == 2 &&
	       emitted(&s, (const char *[]){ "alice@" HOST, "bob@example.org", NULL }),
	       "a bare postmaster, through root");
	TAP_OK(t, expand(a, "ROOT@Campus.Test", &s, 100) == 2, "any case, any local domain");
	TAP_OK(t, expand(a, "root@example.org", &s, 100) == 1 &&
	       emitted(&s, (const char *[]){ "root@example.org", NULL }),
	       "another domain: not aliased, emitted unchanged, 1");
	TAP_OK(t, expand(a, "Nobody@" HOST, &s, 100) == 1 &&
	       emitted(&s, (const char *[]){ "Nobody@" HOST, NULL }), "no alias: emitted unchanged, 1");
	TAP_OK(t, expand(a, "me@" HOST, &s, 100) == 2 && s.refused == 0 &&
	       emitted(&s, (const char *[]){ "me@" HOST, "bob@" HOST, NULL }),
	       "me: me, bob keeps a copy for me, no loop");
	TAP_OK(t, expand(a, "self@" HOST, &s, 100) == 1 && s.refused == 0 &&
	       emitted(&s, (const char *[]){ "self@" HOST, NULL }), "self: self@hostname too");
	TAP_OK(t, expand(a, "a@" HOST, &s, 100) == 0 && s.refused == 1 &&
	       strcmp(s.alias[0], "b") == 0 && strcmp(s.target[0], "a") == 0 &&
	       strcmp(s.why[0], "alias loop") == 0, "a: b, b: a: the target closing it is refused");
	TAP_OK(t, expand(a, "prog@" HOST, &s, 100) == 1 && s.refused == 2 &&
	       strcmp(s.target[0], "|/usr/bin/prog") == 0 && strcmp(s.target[1], "/var/mail/x") == 0 &&
	       strcmp(s.why[0], "pipes and files are not delivered by mtad: it stores no mailboxes") == 0,
	       "a pipe and a file are refused, the rest delivered");
	TAP_OK(t, expand(a, "dup@" HOST, &s, 100) == 3 &&
	       emitted(&s, (const char *[]){ "alice@" HOST, "alice@campus.test", "bob@" HOST, NULL }),
	       "duplicates once, compared without case");
	TAP_OK(t, expand(a, "ten@" HOST, &s, 3) == 3 && s.refused == 7 &&
	       strcmp(s.why[0], "too many recipients") == 0 && strcmp(s.target[0], "u3@" HOST) == 0,
	       "max_out 3 of 10: 7 refused");
	TAP_OK(t, expand(a, "keep@" HOST, &s, 100) == 2 &&
	       emitted(&s, (const char *[]){ "keep@" HOST, "root@" HOST, NULL }),
	       "\\name is not looked up again");
	TAP_OK(t, expand(a, "inc@" HOST, &s, 100) == 1 && s.refused == 1 &&
	       strcmp(s.why[0], "include file not read") == 0, "an include not read is refused");
	TAP_OK(t, expand(a, "long@" HOST, &s, 100) == 0 && s.refused == 1 &&
	       strstr(s.why[0], "too long"), "a name too long with the hostname is refused");
	s.fail_emit_at = 2;
	TAP_OK(t, expand(a, "ten@" HOST, &s, 100) == -1 && s.emitted == 1,
	       "emit failing stops it: -1");
	s.fail_emit_at = 1;
	TAP_OK(t, expand(a, "nobody@" HOST, &s, 100) == -1, "also when not aliased");
	s.fail_emit_at = 0;
	local_aliases_free(a);
}

/* nested - c0: c1, ... c(n-1): user: n nested aliases. */
static struct local_aliases *nested(int n, char *err, size_t errlen)
{
	char *text = malloc((size_t)n * 32 + 32), *p = text;
	struct local_aliases *a;

	if (text == NULL)
		abort();
	for (int i = 0; i < n - 1; i++)
		p += sprintf(p, "c%d: c%d\n", i, i + 1);
	sprintf(p, "c%d: user@example.org\n", n - 1);
	a = parse(text, err, errlen);
	free(text);
	return a;
}

/* diamond - levels of two aliases, each naming both of the next level: 2^levels paths. */
static struct local_aliases *diamond(int levels, char *err, size_t errlen)
{
	char *text = malloc((size_t)levels * 64 + 64), *p = text;
	struct local_aliases *a;

	if (text == NULL)
		abort();
	for (int i = 0; i < levels; i++) {
		p += sprintf(p, "l%d: m%d, n%d\n", i, i + 1, i + 1);
		p += sprintf(p, "m%d: l%d\nn%d: l%d\n", i + 1, i + 1, i + 1, i + 1);
	}
	sprintf(p, "l%d: x@example.org, y@example.org\n", levels);
	a = parse(text, err, errlen);
	free(text);
	return a;
}

/* wide - top names 150 aliases of 1000 foreign addresses each: 150,000 targets. */
static struct local_aliases *wide(char *err, size_t errlen)
{
	char *text = malloc(150 * 1000 * 24 + 150 * 16 + 64), *p = text;
	struct local_aliases *a;

	if (text == NULL)
		abort();
	p += sprintf(p, "top: w0");
	for (int i = 1; i < 150; i++)
		p += sprintf(p, "%sw%d", i % 10 == 0 ? "\n " : ", ", i);
	for (int i = 0; i < 150; i++) {
		p += sprintf(p, "\nw%d:", i);
		for (int j = 0; j < 1000; j++)
			p += sprintf(p, "%sx%d.%d@example.org", j % 100 == 0 ? "\n " : ",", i, j);
	}
	sprintf(p, "\n");
	a = parse(text, err, errlen);
	free(text);
	return a;
}

static void test_bounds(struct tap *t)
{
	char err[256] = "";
	struct local_aliases *a = nested(LOCAL_ALIAS_DEPTH_MAX, err, sizeof(err));
	struct seen s = { 0 };
	clock_t start;
	double cpu;
	int n;

	TAP_OK(t, a && expand(a, "c0@" HOST, &s, 10) == 1 && s.refused == 0,
	       "20 nested aliases expand: %s", a ? "" : err);
	local_aliases_free(a);
	a = nested(LOCAL_ALIAS_DEPTH_MAX + 1, err, sizeof(err));
	TAP_OK(t, a && expand(a, "c0@" HOST, &s, 10) == 0 && s.refused == 1 &&
	       strcmp(s.why[0], "alias nesting too deep") == 0 && strcmp(s.target[0], "c20") == 0,
	       "21: the 21st is refused (%s %s)", s.target[0], s.why[0]);
	local_aliases_free(a);

	a = diamond(9, err, sizeof(err));
	start = clock();
	TAP_OK(t, a && expand(a, "l0@" HOST, &s, 10) == 2 && s.refused == 0 &&
	       emitted(&s, (const char *[]){ "x@example.org", "y@example.org", NULL }),
	       "a diamond graph of 2^9 paths: each address once");
	local_aliases_free(a);
	a = diamond(60, err, sizeof(err));
	n = a ? expand(a, "l0@" HOST, &s, 10) : -2;
	cpu = (double)(clock() - start) / CLOCKS_PER_SEC;
	TAP_OK(t, n == 0 && s.refused == 2 &&
	       strcmp(s.why[0], "alias nesting too deep") == 0 && strcmp(s.alias[0], "m10") == 0 &&
	       strcmp(s.alias[1], "n10") == 0,
	       "2^60 paths, deeper than 20: refused once from each side (%u)", s.refused);
	TAP_OK(t, cpu < 2.0, "both in well under 2 s of CPU (%.3f)", cpu);
	local_aliases_free(a);

	a = wide(err, sizeof(err));
	n = a ? expand(a, "top@" HOST, &s, 200000) : -2;
	TAP_OK(t, n == LOCAL_ALIAS_STEPS_MAX - 100 &&
	       s.refused == 1 && strcmp(s.why[0], "alias expansion too large") == 0,
	       "150,000 targets: stopped after 100,000 steps with one refusal (%u, %s)",
	       s.emitted, a ? s.why[0] : err);
	local_aliases_free(a);
}

static int include(struct local_aliases *a, const char *path, const char *text, char *err,
		   size_t errlen)
{
	return local_aliases_include_text(a, path, text, strlen(text), err, errlen);
}

/* test_include_text - the pure side of include files. */
static void test_include_text(struct tap *t)
{
	char err[256] = "";
	struct local_aliases *a = parse("l: :include:/a, dave\n", err, sizeof(err));
	struct seen s = { 0 };
	size_t names, includes;

	if (a == NULL) {
		TAP_OK(t, 0, "set-up: %s", err);
		return;
	}
	TAP_OK(t, local_aliases_include_text(a, "/b", "x", 1, err, sizeof(err)) != 0 &&
	       strcmp(err, "/b: not named by any :include:") == 0, "a file nobody names: %s", err);
	TAP_OK(t, include(a, "/a", "ok@x.test\nbad address\n", err, sizeof(err)) != 0 &&
	       strstr(err, "/a:2: a blank"), "a bad line: %s", err);
	err[0] = '\0';
	TAP_OK(t, include(a, "/a", "# members\nalice, bob\n\n:include:/b,l\n", err, sizeof(err)) == 0,
	       "a good file after a bad one: %s", err);
	TAP_OK(t, include(a, "/a", "", err, sizeof(err)) != 0 &&
	       strstr(err, "already read"), "twice: %s", err);
	local_aliases_counts(a, &names, &includes);
	TAP_OK(t, includes == 2, "a nested :include: is recorded");
	TAP_OK(t, expand(a, "l", &s, 10) == 4 && s.refused == 1 &&
	       emitted(&s, (const char *[]){ "alice@" HOST, "bob@" HOST, "l@" HOST, "dave@" HOST,
			   NULL }) &&
	       strcmp(s.alias[0], "/a") == 0 && strcmp(s.why[0], "include file not read") == 0,
	       "an include file naming its alias keeps a copy; /b, not read, is refused (%s %s)",
	       s.alias[0], s.why[0]);
	local_aliases_free(a);
}

int main(void)
{
	struct tap t = { 0 };
	struct dir d = { .path = "/tmp/mtad-aliases-XXXXXX" };
	char cmd[128];

	test_parse(&t);
	test_parse_errors(&t);
	test_parse_bounds(&t);
	test_compiled_value(&t);
	test_expand(&t);
	test_include_text(&t);
	test_bounds(&t);
	if (mkdtemp(d.path) == NULL) {
		TAP_OK(&t, 0, "set-up: mkdtemp: %s", strerror(errno));
		return tap_done(&t);
	}
	snprintf(d.aliases, sizeof(d.aliases), "%s/aliases", d.path);
	snprintf(d.db, sizeof(d.db), "%s/aliases.db", d.path);
	test_compile_load(&t, &d);
	test_load_errors(&t, &d);
	test_includes(&t, &d);
	test_atomic(&t, &d);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d.path);
	if (system(cmd) != 0)
		fprintf(stderr, "# could not remove %s\n", d.path);
	return tap_done(&t);
}
