/*
 * writer_int.h - private to queue/: the writer thread's jobs and the
 * incoming message, shared by writer.c (the thread, group commit) and
 * incoming.c (the loop side of one message being received). Nothing
 * outside queue/ includes this file.
 */
#ifndef QUEUE_WRITER_INT_H
#define QUEUE_WRITER_INT_H

#include <uv.h>

#include "queue/queue_impl.h"

/* Full chunks waiting for the writer before the sender is paused. */
#define QUEUE_MAX_INFLIGHT 2

enum wjob_type { WJOB_CHUNK, WJOB_COMMIT, WJOB_ABORT, WJOB_STATS, WJOB_TASK };

struct wjob {
	struct wjob *next;
	enum wjob_type type;
	struct queue_incoming *in;
	unsigned char *data;	/* CHUNK: the chunk; COMMIT: encoded envelope */
	size_t len;
	unsigned char *tail;	/* COMMIT: the last, partial chunk (may be NULL) */
	size_t taillen;
	uint32_t chunkno;	/* number of data (CHUNK) or of tail (COMMIT) */
	struct queue_stats_table *stats;	/* STATS: the counters to add */
	struct queue_task *task;	/* TASK: schedule.c's work */
	queue_commit_cb cb;
	void *cbarg;
	int status;		/* 0 or a Berkeley DB / errno value */
	char errmsg[200];
};

struct queue_incoming {
	struct queue *q;
	char qid[QUEUE_ID_LEN + 1];
	queue_resume_cb resume;
	void *arg;
	struct wjob *final;	/* preallocated COMMIT/ABORT job: they cannot fail on memory */
	/* loop thread */
	unsigned char *buf;	/* chunk being filled */
	size_t buflen;
	uint32_t nchunks;	/* full chunks handed to the writer */
	uint64_t size;
	struct queue_body_check *check;	/* SHA-256 of the bytes as they came */
	unsigned inflight;
	bool blocked;		/* write returned 1: resume owed */
	bool failed;		/* a chunk failed: commit will fail too */
	/* writer thread */
	uint32_t w_written;	/* chunks in body.db */
	int w_status;		/* first chunk failure */
	bool w_collision;	/* chunk keys held by another message: delete nothing */
	char w_err[200];
};

struct queue_writer {
	struct queue *q;
	uv_async_t async;
	uv_timer_t timer;	/* statistics flush; unreferenced */
	unsigned handles;	/* handles still open: w is freed at 0 */
	uv_thread_t thread;
	uv_mutex_t lock;
	uv_cond_t cond;
	/* under lock */
	struct wjob *pending, **pending_tail;
	struct wjob *done, **done_tail;
	bool stopping;
	/* loop thread: jobs submitted and not yet completed; the async
	 * handle keeps the loop alive only while there are some */
	size_t outstanding;
	size_t stats_inflight;	/* STATS jobs submitted and not completed */
	uint64_t commits_counted;	/* q->commits already in the statistics */
	/* writer thread */
	bool active;		/* work since the last checkpoint */
	uint64_t last_checkpoint;	/* uv_hrtime() */
	uint64_t last_expire;	/* uv_hrtime() when the last statistics expiry ended */
	bool expiring;		/* expired statistics keys may be left to delete */
};

/* writer_submit - queues a job for the writer thread (loop thread). */
void writer_submit(struct queue_writer *w, struct wjob *job);

/* incoming_free - releases an incoming message and what it still holds. */
void incoming_free(struct queue_incoming *in);

#endif
