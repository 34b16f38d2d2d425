/*
 * owner.c - who owns the queue environment: the spool lock that mtad
 * holds for its lifetime, and the marker that says the environment was
 * last closed cleanly, so that no process ever runs recovery under a
 * running mtad (see env.c).
 *
 *   SPOOL/mtad.lock    an open-file-description (OFD) write lock on its
 *                      first byte: held by mtad from before it opens the
 *                      queue until it exits, and by `mtaq recover` while
 *                      it recovers. The kernel drops it when the holder
 *                      dies however it dies, so it never goes stale.
 *                      Unlike flock(2), an OFD lock can be tested
 *                      without being taken (F_OFD_GETLK): mtaq looks
 *                      and never holds it, so no mtaq (a `show | less`
 *                      left open) can keep mtad from starting.
 *   SPOOL/queue.clean  exists only while nothing needs recovery: mtad
 *                      (and `mtaq recover`) create it after closing the
 *                      environment cleanly; mtad removes it before it
 *                      opens the queue. Missing while no mtad runs
 *                      means mtad died with the environment open.
 *
 * Must not: take the lock in a way that blocks, or create the marker
 * before the environment is closed (a crash in between would make the
 * next mtaq trust a damaged environment). Pure file-system work, no
 * Berkeley DB; no RFC applies.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"
#include "queue/queue_impl.h"

#define OWNER_LOCK "mtad.lock"
#define OWNER_CLEAN "queue.clean"

/* owner_path - SPOOL/name into buf; -1 when it does not fit. */
static int owner_path(char *buf, size_t size, const char *spool, const char *name)
{
	int n = snprintf(buf, size, "%s/%s", spool, name);

	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* owner_flock - the lock request on the first byte of the lock file. */
static struct flock owner_flock(short type)
{
	return (struct flock){ .l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
}

/* queue_spool_lock - see queue.h. */
int queue_spool_lock(const char *spool, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct flock fl = owner_flock(F_WRLCK);
	int fd;

	if (owner_path(path, sizeof(path), spool, OWNER_LOCK) < 0) {
		snprintf(err, errlen, "%s: path too long", spool);
		return -1;
	}
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
		int e = errno;

		close(fd);
		snprintf(err, errlen, "%s: %s", path,
			 e == EAGAIN || e == EACCES ? "locked: mtad (or mtaq recover) is using "
			 "this spool" : strerror(e));
		errno = e == EACCES ? EAGAIN : e;
		return -1;
	}
	return fd;
}

/* queue_spool_owned - see queue.h. */
int queue_spool_owned(const char *spool)
{
	char path[PATH_MAX];
	struct flock fl = owner_flock(F_WRLCK);
	int fd;

	if (owner_path(path, sizeof(path), spool, OWNER_LOCK) < 0)
		return -1;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? 0 : -1;	/* no mtad ever started here */
	if (fcntl(fd, F_OFD_GETLK, &fl) != 0) {
		close(fd);
		return -1;
	}
	close(fd);
	return fl.l_type != F_UNLCK;
}

/* queue_clean_mark - see queue_impl.h. */
int queue_clean_mark(const char *spool)
{
	char path[PATH_MAX];
	int fd, rc = 0;

	if (owner_path(path, sizeof(path), spool, OWNER_CLEAN) < 0)
		return -1;
	if ((fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return -1;
	if (fsync(fd) != 0)
		rc = -1;
	if (close(fd) != 0)
		rc = -1;
	return rc;
}

/*
 * queue_clean_clear - see queue_impl.h. The removal is made durable (the
 * directory synced): after a machine crash a marker that came back would
 * let mtaq join an environment that needs recovery.
 */
int queue_clean_clear(const char *spool)
{
	char path[PATH_MAX];
	int dfd, rc = 0;

	if (owner_path(path, sizeof(path), spool, OWNER_CLEAN) < 0)
		return -1;
	if (unlink(path) != 0)
		return errno == ENOENT ? 0 : -1;
	if ((dfd = open(spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	if (fsync(dfd) != 0)
		rc = -1;
	if (close(dfd) != 0)
		rc = -1;
	return rc;
}

/* queue_clean_marked - see queue_impl.h. */
bool queue_clean_marked(const char *spool)
{
	char path[PATH_MAX];

	return owner_path(path, sizeof(path), spool, OWNER_CLEAN) == 0 &&
	       access(path, F_OK) == 0;
}

/* queue_env_exists - see queue_impl.h: the first region file is there. */
bool queue_env_exists(const char *spool)
{
	char path[PATH_MAX];

	return owner_path(path, sizeof(path), spool, "__db.001") == 0 && access(path, F_OK) == 0;
}
