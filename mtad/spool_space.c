/*
 * spool_space.c - measures the free space of the spool's filesystem
 * every second, for the reserve (queue_minfree) that MAIL and DATA
 * enforce with 452 4.3.1 (smtp/verbs.c, policy_space_verdict).
 *
 * The measure is statvfs(): f_bavail (the blocks an unprivileged user
 * may take, which is what mtad's user can write; root's reserved blocks
 * are not counted) times f_frsize. It runs on libuv's thread pool, one
 * at a time, never on the loop: on a hung network filesystem statvfs
 * may block, and a command must never wait for it. The result goes to
 * d->shared.spool_free, which sessions lower themselves after each
 * committed message until the next measure. Only the first measure, at
 * start before any connection is served, is taken on the loop thread.
 *
 * Must not: block the loop, stop mtad when the measure fails (the
 * reserve is then not enforced, and that is logged), or read the
 * configuration from the worker thread (SIGHUP rewrites it in place):
 * the worker gets its own copy of the spool path.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

#include "mtad/daemon.h"

#define SPOOL_SPACE_INTERVAL_MS 1000
#define MiB(b) ((unsigned long long)((b) >> 20))

/* space_measure - statvfs of path: free bytes for mtad's user, or -errno. */
static int space_measure(const char *path, uint64_t *avail)
{
	struct statvfs st;

	if (statvfs(path, &st) != 0)
		return -errno;
	if (st.f_frsize != 0 && st.f_bavail > UINT64_MAX / st.f_frsize)
		*avail = UINT64_MAX - 1;	/* never POLICY_SPACE_UNKNOWN */
	else
		*avail = (uint64_t)st.f_bavail * st.f_frsize;
	return 0;
}

/*
 * space_note - the new measure for the sessions, and one log line when
 * the spool goes below the reserve or back above it (not one per refused
 * message), or when measuring fails or works again.
 */
static void space_note(struct daemon *d, int error, uint64_t avail)
{
	struct spool_space *sp = &d->space;
	uint64_t reserve = mtad_config_minfree(&d->cfg);
	bool low;

	if (error != 0) {
		if (!sp->failing)
			mtad_log(MTAD_LOG_WARNING, "spool %s: cannot measure free space (%s): "
				 "queue_minfree is not enforced until it can", sp->path,
				 strerror(-error));
		sp->failing = true;
		atomic_store(&d->shared.spool_free, POLICY_SPACE_UNKNOWN);
		return;
	}
	if (sp->failing)
		mtad_log(MTAD_LOG_INFO, "spool %s: free space measured again", sp->path);
	sp->failing = false;
	atomic_store(&d->shared.spool_free, avail);
	low = !policy_space_verdict(avail, reserve, 0);
	if (low && !sp->low)
		mtad_log(MTAD_LOG_WARNING, "spool %s: %llu MB free, below queue_minfree (%llu MB): "
			 "new mail gets 452 4.3.1 until there is room; queued mail is still "
			 "delivered", sp->path, MiB(avail), MiB(reserve));
	else if (!low && sp->low)
		mtad_log(MTAD_LOG_INFO, "spool %s: %llu MB free, above queue_minfree (%llu MB) "
			 "again: accepting mail", sp->path, MiB(avail), MiB(reserve));
	sp->low = low;
}

/* space_work - on the thread pool: only the statvfs, nothing shared but sp's result. */
static void space_work(uv_work_t *req)
{
	struct spool_space *sp = req->data;

	sp->result_error = space_measure(sp->path, &sp->result_free);
}

/* space_done - back on the loop. */
static void space_done(uv_work_t *req, int status)
{
	struct spool_space *sp = req->data;

	sp->busy = false;
	if (status == 0)
		space_note(sp->d, sp->result_error, sp->result_free);
}

/* space_tick - every second: a new measure, unless the last is still running. */
static void space_tick(uv_timer_t *timer)
{
	struct spool_space *sp = timer->data;
	int rc;

	if (sp->busy)
		return;
	sp->work.data = sp;
	if ((rc = uv_queue_work(timer->loop, &sp->work, space_work, space_done)) != 0) {
		mtad_log(MTAD_LOG_WARNING, "spool %s: cannot queue the free space measure: %s",
			 sp->path, uv_strerror(rc));
		return;
	}
	sp->busy = true;
}

/* spool_space_start - see daemon.h. */
int spool_space_start(struct daemon *d, char *err, size_t errlen)
{
	struct spool_space *sp = &d->space;
	uint64_t avail = 0;
	int rc;

	sp->d = d;
	snprintf(sp->path, sizeof(sp->path), "%s", d->cfg.spool_directory);
	rc = space_measure(sp->path, &avail);	/* before avail is read below */
	space_note(d, rc, avail);
	if ((rc = uv_timer_init(d->loop, &sp->timer)) != 0) {
		snprintf(err, errlen, "free space timer: %s", uv_strerror(rc));
		return -1;
	}
	sp->timer.data = sp;
	sp->open = true;
	if ((rc = uv_timer_start(&sp->timer, space_tick, SPOOL_SPACE_INTERVAL_MS,
				 SPOOL_SPACE_INTERVAL_MS)) != 0) {
		snprintf(err, errlen, "free space timer: %s", uv_strerror(rc));
		return -1;
	}
	return 0;
}

/* spool_space_stop - see daemon.h. */
void spool_space_stop(struct daemon *d)
{
	if (!d->space.open)
		return;
	uv_close((uv_handle_t *)&d->space.timer, NULL);
	d->space.open = false;
}
