/*
 * local.h - the host's mail system: what a machine's own programs and
 * files say about mail for its local names. Its first part: aliases
 * (/etc/aliases, aliases(5)), compiled by newaliases into aliases.db,
 * loaded by mtad, and used to expand a local recipient into the
 * addresses mail for it goes to.
 *
 * Floor 1: includes util/util.h only. local/aliases.c is pure (parsing,
 * the table, expansion: no I/O, no clock); local/aliases_db.c does the
 * file I/O (reading the source and the include files, writing and
 * reading the Berkeley DB file) and is called at start, on SIGHUP and by
 * newaliases, never from the event loop while mail is being received.
 */
#ifndef LOCAL_LOCAL_H
#define LOCAL_LOCAL_H

#include <stdbool.h>
#include <stddef.h>

#include "util/util.h"

/* ---- aliases (local/aliases.c, local/aliases_db.c) ---- */

/*
 * The source format (aliases(5), as Sendmail and Postfix read it):
 *
 *     # a comment line
 *     root: alice, bob@example.org
 *     staff: :include:/etc/mail/staff,
 *            carol            (a line starting with a blank or tab continues)
 *     "odd name": "|/usr/bin/prog -x", /var/mail/archive
 *
 * A name is a local part (no '@', no blank unless quoted), compared
 * without case (stored lower-cased). Targets are separated by commas
 * (and by the end of a line); each is an address user@domain, a bare
 * local name (user@hostname), \name (the local user name itself, never
 * looked up again, as in Sendmail), :include:/absolute/path, a pipe
 * |command or a file /path (both parsed but refused at expansion: mtad
 * stores no mailboxes and runs no programs). A target holding a comma
 * or a blank where none may be is quoted: "|prog a, b". Blank lines and
 * lines whose first non-blank is '#' are skipped, also between
 * continuation lines.
 *
 * Errors name "FILE:LINE: what": a line without ':', an empty name, a
 * name listed twice, a name with no targets, a bad target, a line
 * longer than LOCAL_ALIASES_LINE_MAX, more than LOCAL_ALIASES_TARGETS_MAX
 * targets for one name; and "FILE: larger than 16 MB".
 */
#define LOCAL_ALIASES_FILE_MAX (16u << 20)	/* bytes of source */
#define LOCAL_ALIASES_LINE_MAX 8192		/* bytes of one line, newline not counted */
#define LOCAL_ALIASES_TARGETS_MAX 1000		/* targets of one name */
#define LOCAL_ALIASES_NAMES_MAX 1000000		/* names in one table */
#define LOCAL_ALIAS_NAME_MAX 255		/* bytes of a name */
#define LOCAL_INCLUDE_FILE_MAX (1u << 20)	/* bytes of one :include: file */
#define LOCAL_INCLUDE_TARGETS_MAX 10000		/* addresses in one :include: file */
#define LOCAL_INCLUDE_DEPTH_MAX 5		/* :include: inside :include: ... */
#define LOCAL_INCLUDES_MAX 1000			/* :include: files in one table */
#define LOCAL_ALIAS_DEPTH_MAX 20		/* nesting in one expansion */
#define LOCAL_ALIAS_STEPS_MAX 100000		/* targets looked at in one expansion */

/* An alias table in memory: names to targets, and the include files' addresses. */
struct local_aliases;

/*
 * local_aliases_parse - a table from the text of an aliases file (len
 * bytes, need not end in a newline or hold a NUL; file names it in
 * errors). Pure: the :include: files it names are recorded, not read:
 * until their text is attached (local_aliases_include_text) an
 * expansion refuses them ("include file not read"). NULL with err
 * "FILE:LINE: what" (see above), or "FILE: out of memory".
 */
struct local_aliases *local_aliases_parse(const char *text, size_t len, const char *file,
					  char *err, size_t errlen);

/*
 * local_aliases_include_text - attaches the text of the :include: file
 * path (named by an alias, or by a file attached before): addresses
 * separated by commas and/or newlines, '#' comment lines, the targets
 * of the aliases format (a nested :include: is recorded, up to
 * LOCAL_INCLUDE_DEPTH_MAX deep). Pure. -1 with err "PATH:LINE: what"
 * when the text is bad, larger than LOCAL_INCLUDE_FILE_MAX or holds
 * more than LOCAL_INCLUDE_TARGETS_MAX addresses, when no alias or file
 * names path, or when its text is already attached.
 */
int local_aliases_include_text(struct local_aliases *a, const char *path, const char *text,
			       size_t len, char *err, size_t errlen);

/*
 * local_aliases_lookup - the targets of name (any case), as stored (a
 * quoted target without its quotes, ":include:" in lower case), in the
 * order written; NULL when name has no alias. *n gets their number.
 */
const char *const *local_aliases_lookup(const struct local_aliases *a, const char *name,
					size_t *n);

/* local_aliases_counts - how many names, and :include: files named (read or not). */
void local_aliases_counts(const struct local_aliases *a, size_t *names, size_t *includes);

/* local_aliases_free - frees a table; NULL is allowed. */
void local_aliases_free(struct local_aliases *a);

/*
 * local_aliases_compile - what newaliases does: parses path (say
 * /etc/aliases) and writes path.db, a Berkeley DB 5.3 hash file as
 * Postfix's postalias and Sendmail write it: for each name the key is
 * the name in lower case plus a NUL byte and the value its targets
 * joined by ',' plus a NUL byte (a target holding ',' or '"', or with a
 * blank at an end, is quoted);
 * and the key "@" with the value "@" says the file is complete
 * (Sendmail's mark). The :include: files are not read (they are read
 * when mtad loads the table). Atomic: the file is built under a unique
 * temporary name in the same directory, synced, renamed over path.db,
 * and the directory synced; on any failure path.db is as it was and
 * the temporary file is removed. The new file gets the mode of the old
 * path.db, or 0644. Blocking I/O. 0, or -1 with err.
 */
int local_aliases_compile(const char *path, char *err, size_t errlen);

/*
 * local_aliases_load - the table mtad uses: every entry of path.db
 * (opened read-only, no Berkeley DB environment, closed before
 * returning), and the text of every :include: file an alias names, and
 * of the files those name, read now. Include files are read when mtad
 * loads the aliases (at start and on SIGHUP), not for each message: an
 * expansion never does file I/O on the event loop, and a changed
 * include file takes effect at the next reload. Blocking I/O.
 *
 * NULL with err: "PATH.db: no such file: run newaliases"; "PATH.db is
 * older than PATH: run newaliases" (path's mtime is later); the source
 * path itself missing or unreadable; "PATH.db: ..." when the file is
 * not a hash database or an entry is malformed (a NUL inside a key or
 * value, a bad target, a name twice); an include file that cannot be
 * read or is bad, named with its path.
 */
struct local_aliases *local_aliases_load(const char *path, char *err, size_t errlen);

/* What the caller is told about each target (callbacks keep this module free of the session's types). */
struct local_alias_ops {
	/* is the domain one of ours (the hostname or a local domain)? */
	bool (*is_local)(void *arg, const char *domain);
	/* a final recipient; return 0, or -1 to stop (out of memory) */
	int (*emit)(void *arg, const char *addr);
	/*
	 * a target that is refused: a pipe, a file, a loop, too deep, too
	 * many. alias is the alias whose target it is, or the path of the
	 * include file that lists it.
	 */
	void (*refuse)(void *arg, const char *alias, const char *target, const char *why);
};

/*
 * local_aliases_expand - the final recipients of addr ("local@domain",
 * or a bare "local" meaning local@hostname), each given once to
 * ops->emit. Pure: no I/O; it allocates its bookkeeping and only reads
 * the table, so the event loops' threads may expand through one table
 * at once.
 *
 * When addr's domain is not local, or its local part (any case) has no
 * alias, addr itself is emitted unchanged and 1 is returned. Otherwise
 * the alias is expanded, recursively:
 *   - a bare name is qualified with hostname and looked up again, as is
 *     an address whose domain is local (ops->is_local); an address with
 *     no alias behind it, or in another domain, is emitted;
 *   - \name is emitted as name@hostname without a lookup;
 *   - :include: expands to the file's addresses (read at load time);
 *   - pipes and files are refused ("pipes and files are not delivered
 *     by mtad: it stores no mailboxes");
 *   - a target naming the alias being expanded ("root: root, bob") is
 *     emitted, not expanded again: Sendmail's "keep a copy";
 *   - a target naming an alias already being expanded further up (a: b,
 *     b: a) is refused ("alias loop") and not emitted;
 *   - deeper than LOCAL_ALIAS_DEPTH_MAX: "alias nesting too deep";
 *   - a final recipient already emitted (case-insensitive) is skipped;
 *     past max_out distinct ones, the rest are refused ("too many
 *     recipients");
 *   - an alias or include file reached again by another path is not
 *     expanded again (its recipients are out already), so a diamond-
 *     shaped graph costs its size, not its paths; and after
 *     LOCAL_ALIAS_STEPS_MAX targets the expansion stops with one refusal
 *     ("alias expansion too large").
 * Returns the number of final recipients emitted (0 with refusals:
 * nothing deliverable), or -1 when ops->emit returned -1 or memory ran
 * out (what was emitted before stays emitted).
 */
int local_aliases_expand(const struct local_aliases *a, const char *addr, const char *hostname,
			 const struct local_alias_ops *ops, void *arg, unsigned max_out);

/* ---- bare names in headers (local/qualify.c) ---- */

/*
 * local_qualify_addresses - an address-list field's value (To, Cc, From,
 * Reply-To...; len bytes, folds kept as they are) into out with
 * "@hostname" after every bare name: a mailbox that is a single
 * dot-atom without '@', alone or inside <>. Display names, quoted
 * strings, comments, group names and addresses with a domain stay as
 * they are. Pure. Returns how many names it qualified (0: out is the
 * value), with out NUL-terminated and *outlen its length; -1 when out
 * (size bytes) is too small.
 */
int local_qualify_addresses(const char *value, size_t len, const char *hostname, char *out,
			    size_t size, size_t *outlen);

/* local_qualify_room - an out size that is always enough for a value of
 * len bytes: every bare name takes at least a byte and a separator. */
size_t local_qualify_room(size_t len, const char *hostname);

#endif
