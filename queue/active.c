/*
 * active.c - which messages mtad's runner is delivering right now, for
 * mtaq's "active" state (Postfix's active queue). The queue records an
 * attempt only when it ends, so the in-flight set lives in the runner's
 * memory; the runner hands it here when it changed, at most once a
 * second, and a libuv thread-pool job writes it to SPOOL/active:
 * "mtad PID" and one queue id a line, through a temporary file and a
 * rename, so a reader sees a whole file.
 *
 * Cheap by design: no fsync (after a crash the file is stale, and mtaq
 * trusts it only while its writer holds the spool lock: queue_active_read),
 * one job at a time (a newer set waits for it and replaces an older
 * waiting one), at most delivery_concurrency ids.
 *
 * Must not: block the loop (the file work runs on the thread pool),
 * call into the job's buffers while it runs, or let a reader take ids
 * from a dead mtad.
 *
 * Follows: no RFC; mtaq(8) documents the state.
 */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue/queue_impl.h"
#include "util/util.h"

#define ACTIVE_FILE "active"
#define ACTIVE_MAX 100000	/* ids a reader takes at most (delivery_concurrency <= 10000) */

struct queue_active {
	uv_loop_t *loop;
	uv_work_t work;
	char path[PATH_MAX], tmp[PATH_MAX];
	char (*job)[QUEUE_ID_LEN + 1];	/* what the job writes; the loop's only while idle */
	size_t njob, capjob;
	char (*next)[QUEUE_ID_LEN + 1];	/* the newest set, waiting for the job */
	size_t nnext, capnext;
	bool busy, waiting, closing;
	int job_errno;
};

/* active_write - the thread pool's half: the file, whole or not at all. */
static void active_write(uv_work_t *w)
{
	struct queue_active *a = w->data;
	FILE *f = fopen(a->tmp, "we");
	bool ok;

	a->job_errno = 0;
	if (f == NULL) {
		a->job_errno = errno;
		return;
	}
	ok = fprintf(f, "mtad %ld\n", (long)getpid()) > 0;
	for (size_t i = 0; ok && i < a->njob; i++)
		ok = fprintf(f, "%s\n", a->job[i]) > 0;
	if (fclose(f) != 0 || !ok || rename(a->tmp, a->path) != 0) {
		a->job_errno = errno ? errno : EIO;
		(void)unlink(a->tmp);
	}
}

static void active_start(struct queue_active *a);

/* active_free_now - everything, once no job runs. */
static void active_free_now(struct queue_active *a)
{
	free(a->job);
	free(a->next);
	free(a);
}

/* active_written - the loop's half: the waiting set next, or the end. */
static void active_written(uv_work_t *w, int status)
{
	struct queue_active *a = w->data;

	a->busy = false;
	if (status == 0 && a->job_errno != 0)
		mtad_log(MTAD_LOG_WARNING, "queue: %s: %s (mtaq cannot show which messages are "
			 "being delivered)", a->path, strerror(a->job_errno));
	if (a->closing) {
		active_free_now(a);
		return;
	}
	if (a->waiting)
		active_start(a);
}

/* active_start - the waiting set becomes the job's. */
static void active_start(struct queue_active *a)
{
	char (*swap)[QUEUE_ID_LEN + 1] = a->job;
	size_t cap = a->capjob;

	a->job = a->next;
	a->njob = a->nnext;
	a->capjob = a->capnext;
	a->next = swap;
	a->capnext = cap;
	a->nnext = 0;
	a->waiting = false;
	a->work.data = a;
	a->busy = uv_queue_work(a->loop, &a->work, active_write, active_written) == 0;
}

/* queue_active_new - see queue.h. */
struct queue_active *queue_active_new(uv_loop_t *loop, const char *spool)
{
	struct queue_active *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return NULL;
	a->loop = loop;
	if (snprintf(a->path, sizeof(a->path), "%s/" ACTIVE_FILE, spool) >= (int)sizeof(a->path) ||
	    snprintf(a->tmp, sizeof(a->tmp), "%s/" ACTIVE_FILE ".tmp", spool) >=
	    (int)sizeof(a->tmp)) {
		active_free_now(a);
		return NULL;
	}
	return a;
}

/* queue_active_set - see queue.h. */
void queue_active_set(struct queue_active *a, const char (*ids)[QUEUE_ID_LEN + 1], size_t n)
{
	if (a == NULL || a->closing)
		return;
	if (n > a->capnext) {
		/* The job never reads next: it may move (delivery_concurrency grew). */
		void *p = realloc(a->next, n * sizeof(*ids));

		if (p == NULL)
			return;	/* the next change tries again */
		a->next = p;
		a->capnext = n;
	}
	if (n > 0)
		memcpy(a->next, ids, n * sizeof(*ids));
	a->nnext = n;
	a->waiting = true;
	if (!a->busy)
		active_start(a);
}

/* queue_active_free - see queue.h. */
void queue_active_free(struct queue_active *a)
{
	if (a == NULL)
		return;
	if (a->busy)
		a->closing = true;	/* active_written frees it */
	else
		active_free_now(a);
}

/* active_writer_alive - the file's writer is a running process and the
 * spool is locked: an mtad runs, and it is the one that wrote the file
 * (a new mtad writes its own set at its start). */
static bool active_writer_alive(const char *spool, long pid)
{
	if (pid <= 0 || queue_spool_owned(spool) != 1)
		return false;
	return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

/* queue_active_read - see queue.h. */
int queue_active_read(const char *spool, char (**ids)[QUEUE_ID_LEN + 1], size_t *n)
{
	char path[PATH_MAX], line[64];
	FILE *f;
	long pid = 0;
	size_t cap = 0;

	*ids = NULL;
	*n = 0;
	if (snprintf(path, sizeof(path), "%s/" ACTIVE_FILE, spool) >= (int)sizeof(path))
		return -1;
	if ((f = fopen(path, "re")) == NULL)
		return errno == ENOENT ? 0 : -1;
	if (fgets(line, sizeof(line), f) == NULL || sscanf(line, "mtad %ld", &pid) != 1 ||
	    !active_writer_alive(spool, pid)) {
		fclose(f);
		return 0;	/* no mtad, or not this one's: nothing is being delivered */
	}
	while (*n < ACTIVE_MAX && fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (!queue_id_valid(line))
			continue;
		if (*n == cap) {
			size_t grown = cap ? cap * 2 : 64;
			void *p = realloc(*ids, grown * sizeof(**ids));

			if (p == NULL) {
				free(*ids);
				*ids = NULL;
				*n = 0;
				fclose(f);
				return -1;
			}
			*ids = p;
			cap = grown;
		}
		memcpy((*ids)[(*n)++], line, QUEUE_ID_LEN + 1);
	}
	fclose(f);
	return 0;
}
