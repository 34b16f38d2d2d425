/*
 * writer_int.h - private to queue/: the writer thread's jobs and the
 * incoming message, shared by writer.c (the thread, group commit) and
 * incoming.c (the loop side of one message being received). Nothing
 * outside queue/ includes this file.
 */
#ifndef QUEUE_WRITER_INT_H
#define QUEUE_WRITER_INT_H

#include <stdatomic.h>

#include <uv.h>

#include "queue/queue_impl.h"

/* Full chunks waiting for the writer before the sender is paused. */
#define QUEUE_MAX_INFLIGHT 2

enum wjob_type { WJOB_CHUNK, WJOB_COMMIT, WJOB_ABORT, WJOB_STATS, WJOB_TASK };

struct queue_port;

struct wjob {
	struct wjob *next;
	enum wjob_type type;
	struct queue_port *port;	/* whose loop runs the completion */
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
	struct queue_port *port;	/* the loop that receives it */
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

/*
 * A completion port (port.c): where finished jobs go back to the loop
 * that submitted them. The writer has its own (the loop it was started
 * on, which also runs statistics and delivery tasks); each further
 * event loop opens one with queue_port_new. Jobs of one message all go
 * through one port, so their completions keep their order.
 */
struct queue_port {
	struct queue_writer *w;
	uv_async_t async;
	uv_close_cb on_close;	/* frees the port (or the writer's share of it) */
	uv_mutex_t lock;	/* guards done */
	struct wjob *done, **done_tail;
	/* the port's loop thread: jobs submitted and not yet completed;
	 * the async handle keeps the loop alive only while there are some */
	size_t outstanding;
	bool closing;		/* closes once outstanding reaches 0 */
};

struct queue_writer {
	struct queue *q;
	struct queue_port port;	/* the loop queue_writer_start was given */
	uv_timer_t timer;	/* statistics flush; unreferenced */
	unsigned handles;	/* handles still open: w is freed at 0 */
	uv_thread_t thread;
	uv_mutex_t lock;
	uv_cond_t cond;
	/* under lock */
	struct wjob *pending, **pending_tail;
	bool stopping;
	atomic_uint ports;	/* ports opened with queue_port_new, not yet closed */
	/* the writer's own loop thread */
	size_t stats_inflight;	/* STATS jobs submitted and not completed */
	uint64_t commits_counted;	/* q->commits already in the statistics */
	/* writer thread */
	DB_TXN *parent;		/* the batch's parent transaction (replication), or NULL */
	bool active;		/* work since the last checkpoint */
	uint64_t last_checkpoint;	/* uv_hrtime() */
	uint64_t last_expire;	/* uv_hrtime() when the last statistics expiry ended */
	bool expiring;		/* expired statistics keys may be left to delete */
};

/* writer_submit - queues a job for the writer thread; its completion
 * runs on port's loop (the loop thread of port). */
void writer_submit(struct queue_port *port, struct wjob *job);

/* writer_complete - the loop-thread half of one finished job (writer.c). */
void writer_complete(struct queue_writer *w, struct wjob *job);

/* port.c */
/* port_init - the port's lock and async handle on loop (unreferenced). */
int port_init(struct queue_port *p, struct queue_writer *w, uv_loop_t *loop, uv_close_cb on_close);
/* port_submitted - a job for this port went to the writer (port's loop thread). */
void port_submitted(struct queue_port *p);
/* port_deliver - writer thread: hands one finished job to its port's loop. */
void port_deliver(struct wjob *job);
/* port_drain - runs the completions waiting at p (port's loop thread). */
void port_drain(struct queue_port *p);
/* port_shut - closes p's handle now, or once its last job completes. */
void port_shut(struct queue_port *p);

/* incoming_free - releases an incoming message and what it still holds. */
void incoming_free(struct queue_incoming *in);

#endif
