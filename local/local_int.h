/*
 * local_int.h - private to local/: what the files' side of the aliases
 * (aliases_db.c) needs from the table (aliases.c) to fill it from a
 * compiled file and to write one. Nothing outside local/ includes this
 * file (t/ may, to check the compiled form round trip).
 */
#ifndef LOCAL_LOCAL_INT_H
#define LOCAL_LOCAL_INT_H

#include <stddef.h>

#include "local/local.h"

/* aliases_new - an empty table; NULL when out of memory. */
struct local_aliases *aliases_new(void);

/*
 * aliases_db_entry - one entry of a compiled file: key (a name, a
 * trailing NUL allowed) and value (its targets joined by ',', a
 * trailing NUL allowed). The key "@" (Sendmail's mark that the file is
 * complete) and postalias' YP_LAST_MODIFIED and YP_MASTER_NAME are
 * skipped. -1 with why (no file name: the caller adds it)
 * when the entry is malformed, a name is there twice, or memory ran out.
 */
int aliases_db_entry(struct local_aliases *a, const char *key, size_t klen, const char *value,
		     size_t vlen, char *why, size_t whylen);

/*
 * aliases_each - calls fn for every name in the order added, with its
 * compiled value: the targets joined by ',' (one holding ',' or '"'
 * quoted), NUL-terminated, vlen bytes without the NUL. Stops at the
 * first fn that returns non-zero and returns that; -1 when out of
 * memory; 0 when all went through.
 */
int aliases_each(const struct local_aliases *a,
		 int (*fn)(void *arg, const char *name, const char *value, size_t vlen), void *arg);

/*
 * aliases_include_unread - the path of the next :include: file named
 * but not attached yet, from *cursor on (start with 0), in the order
 * they were named (nearest first: those an alias names come before
 * those named inside include files); NULL when none is left.
 */
const char *aliases_include_unread(const struct local_aliases *a, size_t *cursor);

#endif
