/*
 * aliases_db.c - the aliases files: newaliases (the source, say
 * /etc/aliases, compiled into path.db), and the table mtad loads from
 * path.db and the :include: files its aliases name.
 *
 * Blocking file I/O: run by newaliases, and by mtad at start and on
 * SIGHUP before the table is handed to the event loops, never while a
 * message is being received. Must not: put in place a path.db that is
 * not complete and synced (a crash, a full disk or a bad source leaves
 * the old one, and at worst a stray temporary file after a crash);
 * load a path.db older than its source (a forgotten newaliases is an
 * error, not old aliases quietly in force); load a table with an
 * :include: file it could not read (the error names the file); read a
 * file past its bound in local.h; let Berkeley DB write to stderr (its
 * error codes are reported in err instead).
 *
 * Follows: Berkeley DB 5.3 DB_HASH files as Postfix's postalias(1) and
 * Sendmail's newaliases(1) write them (keys and values with a trailing
 * NUL; the "@" = "@" mark that the file is complete; read with or
 * without the NULs, postalias' YP_ keys skipped); aliases(5).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <db.h>

#include "local/local.h"
#include "local/local_int.h"

#define DB_SUFFIX ".db"
#define TMP_SUFFIX ".db.tmp.XXXXXX"
/* A compiled file holds at most twice its source (quotes, NULs, the mark). */
#define DB_BYTES_MAX (2 * (size_t)LOCAL_ALIASES_FILE_MAX)

/* quiet - Berkeley DB's diagnostics would go to stderr; its error codes go into err. */
static void quiet(const DB_ENV *env, const char *pfx, const char *msg)
{
	(void)env;
	(void)pfx;
	(void)msg;
}

/* ---- reading a whole file ---- */

/*
 * read_all - the rest of fd into a buffer holding at most max bytes
 * and a NUL; the buffer grows only while what was read fits, so a file
 * that grows while it is read costs at most twice max. -1 with errno.
 */
static int read_all(int fd, size_t max, char **text, size_t *len)
{
	size_t cap = 4096;
	char *buf = malloc(cap), *grown;

	*len = 0;
	while (buf != NULL) {
		ssize_t n;

		if (*len + 1 == cap) {
			if ((grown = realloc(buf, cap * 2)) == NULL)
				break;
			buf = grown;
			cap *= 2;
		}
		if ((n = read(fd, buf + *len, cap - *len - 1)) < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		if (n == 0) {
			buf[*len] = '\0';
			*text = buf;
			return 0;
		}
		if ((*len += (size_t)n) > max) {
			errno = EFBIG;	/* it grew since fstat */
			break;
		}
	}
	free(buf);
	return -1;
}

/*
 * file_read - the whole of path (a regular file of at most max bytes,
 * too_large saying max in words) as a NUL-terminated text. -1 with err
 * "WHAT PATH: why".
 */
static int file_read(const char *what, const char *path, size_t max, const char *too_large,
		     char **text, size_t *len, char *err, size_t errlen)
{
	/* O_NONBLOCK: a FIFO named as an include file must not hang mtad's reload */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK), rc = -1;
	struct stat st;

	if (fd < 0) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0)
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		snprintf(err, errlen, "%s %s: not a regular file", what, path);
	else if ((uint64_t)st.st_size > max)
		snprintf(err, errlen, "%s %s: larger than %s", what, path, too_large);
	else if ((rc = read_all(fd, max, text, len)) != 0)
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
	close(fd);	/* read-only: nothing to lose */
	return rc;
}

/* ---- newaliases ---- */

struct writer {
	DB *db;
	const char *tmp;
	char *err;
	size_t errlen;
};

/* put - one name and its value, each with its NUL, as postalias writes them; 1 with err. */
static int put(void *arg, const char *name, const char *value, size_t vlen)
{
	struct writer *w = arg;
	DBT k = { .data = (void *)name, .size = (u_int32_t)strlen(name) + 1 };
	DBT v = { .data = (void *)value, .size = (u_int32_t)vlen + 1 };
	int rc = w->db->put(w->db, NULL, &k, &v, DB_NOOVERWRITE);

	if (rc != 0)
		snprintf(w->err, w->errlen, "%s: writing %s: %s", w->tmp, name, db_strerror(rc));
	return rc != 0 ? 1 : 0;
}

/* db_mode - the permissions for the new file: the old one's, or 0644. */
static int db_mode(const char *db, mode_t *mode, char *err, size_t errlen)
{
	struct stat st;

	*mode = 0644;
	if (stat(db, &st) == 0)
		*mode = st.st_mode & 07777;
	else if (errno != ENOENT) {
		snprintf(err, errlen, "%s: %s", db, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * tmp_create - a new empty hash file under a unique name in tmp (its
 * XXXXXX replaced), open in *dbp: mkstemp finds a free name and
 * Berkeley DB creates the file there with DB_EXCL, so nobody else's
 * file is ever written. A handle whose open failed cannot be opened
 * again: each try has its own.
 */
static int tmp_create(DB **dbp, char *tmp, char *err, size_t errlen)
{
	size_t len = strlen(tmp);
	int rc = EEXIST;

	for (int tries = 0; tries < 100 && rc == EEXIST; tries++) {
		int fd;

		memcpy(tmp + len - 6, "XXXXXX", 6);
		if ((fd = mkstemp(tmp)) < 0 || close(fd) != 0 || unlink(tmp) != 0) {
			snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
			return -1;
		}
		if ((rc = db_create(dbp, NULL, 0)) != 0)
			break;
		(*dbp)->set_errcall(*dbp, quiet);
		rc = (*dbp)->open(*dbp, NULL, tmp, NULL, DB_HASH, DB_CREATE | DB_EXCL, 0600);
		if (rc == 0)
			return 0;
		(*dbp)->close(*dbp, DB_NOSYNC);	/* never opened: nothing to write */
		if (rc != EEXIST)
			unlink(tmp);	/* ours (DB_EXCL): a half-made file, if any */
	}
	snprintf(err, errlen, "%s: %s", tmp, db_strerror(rc));
	return -1;
}

/* file_sync - fsync of a file Berkeley DB has closed: its data on disk before the rename. */
static int file_sync(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0 || fsync(fd) != 0) {
		snprintf(err, errlen, "%s: sync: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	rc = close(fd);
	if (rc != 0)
		snprintf(err, errlen, "%s: close: %s", path, strerror(errno));
	return rc;
}

/* db_close - closes the new file (synced unless the write failed): rc, or the close's failure. */
static int db_close(struct writer *w, int rc)
{
	int dbrc = w->db->close(w->db, rc == 0 ? 0 : DB_NOSYNC);

	if (dbrc != 0 && rc == 0) {
		snprintf(w->err, w->errlen, "%s: close: %s", w->tmp, db_strerror(dbrc));
		rc = -1;
	}
	return rc;
}

/*
 * db_write - the table, and the "@" mark, into a new file at tmp
 * (created there, its XXXXXX replaced), closed, with mode, synced. On
 * failure the file is removed.
 */
static int db_write(const struct local_aliases *a, char *tmp, mode_t mode, char *err,
		    size_t errlen)
{
	struct writer w = { .tmp = tmp, .err = err, .errlen = errlen };
	int rc, dbrc;

	if (tmp_create(&w.db, tmp, err, errlen) != 0)
		return -1;
	if ((rc = aliases_each(a, put, &w)) == 0)
		rc = put(&w, "@", "@", 1);
	if (rc < 0)	/* put's failures (1) wrote err */
		snprintf(err, errlen, "%s: out of memory", tmp);
	if (rc == 0 && (dbrc = w.db->sync(w.db, 0)) != 0) {
		snprintf(err, errlen, "%s: sync: %s", tmp, db_strerror(dbrc));
		rc = -1;
	}
	rc = db_close(&w, rc);
	if (rc == 0 && chmod(tmp, mode) != 0) {
		snprintf(err, errlen, "%s: chmod: %s", tmp, strerror(errno));
		rc = -1;
	}
	if (rc == 0 && file_sync(tmp, err, errlen) != 0)
		rc = -1;
	if (rc != 0)
		unlink(tmp);	/* the failure is in err already */
	return rc != 0 ? -1 : 0;
}

/* dir_sync - the rename in path's directory on disk. */
static int dir_sync(const char *path, char *err, size_t errlen)
{
	char copy[MTAD_PATH_MAX];
	const char *dir;
	int fd, rc;

	snprintf(copy, sizeof(copy), "%s", path);
	dir = dirname(copy);
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fsync(fd) != 0) {
		snprintf(err, errlen, "%s: sync of the directory: %s", dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if ((rc = close(fd)) != 0)
		snprintf(err, errlen, "%s: close: %s", dir, strerror(errno));
	return rc;
}

/* local_aliases_compile - see local.h. */
int local_aliases_compile(const char *path, char *err, size_t errlen)
{
	char db[MTAD_PATH_MAX], tmp[MTAD_PATH_MAX];
	struct local_aliases *a;
	char *text;
	size_t len;
	mode_t mode;
	int rc;

	if ((size_t)snprintf(db, sizeof(db), "%s" DB_SUFFIX, path) >= sizeof(db) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s" TMP_SUFFIX, path) >= sizeof(tmp)) {
		snprintf(err, errlen, "%s: name too long", path);
		return -1;
	}
	if (file_read("aliases file", path, LOCAL_ALIASES_FILE_MAX, "16 MB", &text, &len, err,
		      errlen) != 0)
		return -1;
	a = local_aliases_parse(text, len, path, err, errlen);
	free(text);
	if (a == NULL)
		return -1;
	rc = db_mode(db, &mode, err, errlen) == 0 ? db_write(a, tmp, mode, err, errlen) : -1;
	local_aliases_free(a);
	if (rc == 0 && rename(tmp, db) != 0) {
		snprintf(err, errlen, "rename %s to %s: %s", tmp, db, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return rc == 0 ? dir_sync(db, err, errlen) : -1;
}

/* ---- loading ---- */

/* db_fresh - path.db exists and is not older than path. */
static int db_fresh(const char *path, const char *db, char *err, size_t errlen)
{
	struct stat src, st;

	if (stat(db, &st) != 0) {
		if (errno == ENOENT)
			snprintf(err, errlen, "%s: no such file: run newaliases", db);
		else
			snprintf(err, errlen, "%s: %s", db, strerror(errno));
		return -1;
	}
	if (stat(path, &src) != 0) {
		snprintf(err, errlen, "aliases file %s: %s", path, strerror(errno));
		return -1;
	}
	if (st.st_mtim.tv_sec < src.st_mtim.tv_sec ||
	    (st.st_mtim.tv_sec == src.st_mtim.tv_sec && st.st_mtim.tv_nsec < src.st_mtim.tv_nsec)) {
		snprintf(err, errlen, "%s is older than %s: run newaliases", db, path);
		return -1;
	}
	return 0;
}

/* db_entries - every entry of the open db into a. */
static int db_entries(DB *dbp, const char *db, struct local_aliases *a, char *err, size_t errlen)
{
	DBC *c;
	DBT k = { 0 }, v = { 0 };
	size_t bytes = 0;
	char why[512];
	int rc;

	if ((rc = dbp->cursor(dbp, NULL, &c, 0)) != 0) {
		snprintf(err, errlen, "%s: %s", db, db_strerror(rc));
		return -1;
	}
	while ((rc = c->get(c, &k, &v, DB_NEXT)) == 0) {
		if ((bytes += (size_t)k.size + v.size) > DB_BYTES_MAX) {
			snprintf(err, errlen, "%s: more than 32 MB of entries", db);
			break;
		}
		if (aliases_db_entry(a, k.data, k.size, v.data, v.size, why, sizeof(why)) != 0) {
			snprintf(err, errlen, "%s: %s", db, why);
			break;
		}
	}
	if (rc != 0 && rc != DB_NOTFOUND)
		snprintf(err, errlen, "%s: reading: %s", db, db_strerror(rc));
	c->close(c);	/* read-only: its result changes nothing */
	return rc == DB_NOTFOUND ? 0 : -1;
}

/* db_read - path.db's entries into a: opened read-only, no environment, closed again. */
static int db_read(const char *db, struct local_aliases *a, char *err, size_t errlen)
{
	DB *dbp;
	int rc;

	if ((rc = db_create(&dbp, NULL, 0)) != 0) {
		snprintf(err, errlen, "%s: %s", db, db_strerror(rc));
		return -1;
	}
	dbp->set_errcall(dbp, quiet);
	if ((rc = dbp->open(dbp, NULL, db, NULL, DB_HASH, DB_RDONLY, 0)) != 0) {
		snprintf(err, errlen, "%s: not a Berkeley DB hash file, or unreadable: %s", db,
			 db_strerror(rc));
		dbp->close(dbp, DB_NOSYNC);
		return -1;
	}
	rc = db_entries(dbp, db, a, err, errlen);
	dbp->close(dbp, DB_NOSYNC);	/* read-only: nothing to write back */
	return rc;
}

/* includes_read - every :include: file named, and those they name, read and attached. */
static int includes_read(struct local_aliases *a, char *err, size_t errlen)
{
	size_t cursor = 0;
	const char *path;

	while ((path = aliases_include_unread(a, &cursor)) != NULL) {
		char *text;
		size_t len;
		int rc;

		if (file_read(":include: file", path, LOCAL_INCLUDE_FILE_MAX, "1 MB", &text, &len,
			      err, errlen) != 0)
			return -1;
		rc = local_aliases_include_text(a, path, text, len, err, errlen);
		free(text);
		if (rc != 0)
			return -1;
	}
	return 0;
}

/* local_aliases_load - see local.h. */
struct local_aliases *local_aliases_load(const char *path, char *err, size_t errlen)
{
	char db[MTAD_PATH_MAX];
	struct local_aliases *a;

	if ((size_t)snprintf(db, sizeof(db), "%s" DB_SUFFIX, path) >= sizeof(db)) {
		snprintf(err, errlen, "%s: name too long", path);
		return NULL;
	}
	if (db_fresh(path, db, err, errlen) != 0)
		return NULL;
	if ((a = aliases_new()) == NULL) {
		snprintf(err, errlen, "%s: out of memory", db);
		return NULL;
	}
	if (db_read(db, a, err, errlen) != 0 || includes_read(a, err, errlen) != 0) {
		local_aliases_free(a);
		return NULL;
	}
	return a;
}
