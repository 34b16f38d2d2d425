/*
 * file.c - a whole map or list file read into memory, for the pure
 * parsers above (maps, auth_block, the policy test's sender map).
 *
 * Must not: be called on an event loop (blocking I/O: start, SIGHUP,
 * mtad -n and mtaq only), read more than LIST_FILE_MAX bytes, or leave
 * a buffer behind on an error.
 *
 * Follows: no RFC; the size limit is mtad's own.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define LIST_FILE_MAX (64 * 1024 * 1024)	/* a map or list larger than this is refused */

/*
 * mtad_file_slurp - see util.h.
 */
int mtad_file_slurp(const char *what, const char *path, char **text, size_t *len,
		     char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	size_t cap = 0;
	int rc = -1;

	*text = NULL;
	*len = 0;
	if (!f) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return -1;
	}
	for (;;) {
		size_t n;

		if (*len + 1 >= cap) {
			char *grown = cap < LIST_FILE_MAX ? realloc(*text, cap ? cap * 2 : 65536) : NULL;

			if (!grown) {
				snprintf(err, errlen, "%s %s: too large or out of memory", what, path);
				goto out;
			}
			*text = grown;
			cap = cap ? cap * 2 : 65536;
		}
		n = fread(*text + *len, 1, cap - *len - 1, f);
		*len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s %s: read error", what, path);
		goto out;
	}
	(*text)[*len] = '\0';
	rc = 0;
out:
	if (rc != 0) {
		free(*text);
		*text = NULL;
	}
	if (fclose(f) != 0 && rc == 0)
		mtad_log(MTAD_LOG_WARNING, "%s %s: close: %s", what, path, strerror(errno));
	return rc;
}
