/*
 * writer.c - where a message becomes durable. One writer thread owns all
 * writes of new messages; the event loops (SMTP sessions, however many
 * loops there are) hand it jobs and get completions back each through
 * its own completion port (port.c).
 *
 * Group commit (disk syncs bound a durable queue: ~3,300/s on the bench
 * machine, BENCHMARKS.md): each message is its own transaction committed
 * with DB_TXN_NOSYNC, which releases its locks at once; after every job
 * that was waiting, the thread calls log_flush() once and only then
 * reports the batch's commits as done: one disk sync covers every message
 * that finished during the previous one, and the batch grows with load.
 *
 * Memory per message stays bounded: body bytes fill one 60 KB chunk at
 * a time, at most QUEUE_MAX_INFLIGHT full chunks wait for the writer,
 * and queue_incoming_write tells the caller to stop reading until one
 * is written.
 *
 * Delivery state (schedule.c) rides on it as TASK jobs: updates are
 * write tasks, committed with the batch's messages and reported after
 * the same log flush; due scans and chunk reads are read tasks, run
 * after the batch was flushed and reported so they never delay a 250.
 *
 * Statistics counters and sketches (stats.c) ride on the same thread: a
 * uv_timer hands those added in the last second to the writer as one STATS job
 * (at most one in flight, plus a final one at stop). The writer runs
 * STATS jobs after the batch's message commits are flushed and reported,
 * so they never delay a 250; they need no flush of their own. It also
 * deletes expired statistics days at start and hourly, at most
 * QUEUE_STATS_EXPIRE_STEP keys between two batches.
 *
 * The messages' side of it, queue_incoming_*, is in incoming.c.
 *
 * Threads: the queue_incoming_* calls, the async and timer callbacks and
 * every user callback run on the loop thread; the writer thread only touches jobs,
 * the fields of struct queue_incoming marked "writer thread", and
 * Berkeley DB. It must not call user callbacks or libuv (but
 * uv_async_send), and must not block except in the database.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>

#include "util/util.h"
#include "queue/writer_int.h"

/* ---- writer thread ---- */

/* writer_txn - one job's transaction: top level, or a child of the
 * batch's parent when replication groups the batch (writer_run_group). */
static int writer_txn(struct queue *q, queue_txn_fn fn, void *arg)
{
	DB_TXN *parent = q->writer != NULL ? q->writer->parent : NULL;

	return queue_txn_run_in(q, parent, 0, DB_TXN_NOSYNC, fn, arg);
}

/* writer_put_chunk - stores one chunk of in; a collision never overwrites. */
static int writer_put_chunk(struct queue *q, DB_TXN *txn, const char *qid, uint32_t n,
			    const void *bytes, size_t len)
{
	unsigned char kbuf[QUEUE_BODY_KEYLEN];
	DBT key = { .data = kbuf, .size = sizeof(kbuf) };
	DBT data = { .data = (void *)bytes, .size = (uint32_t)len };

	queue_body_key(kbuf, qid, n);
	return q->body->put(q->body, txn, &key, &data, DB_NOOVERWRITE);
}

/* writer_chunk_txn - the transaction of a CHUNK job. */
static int writer_chunk_txn(struct queue *q, DB_TXN *txn, void *arg)
{
	struct wjob *job = arg;

	return writer_put_chunk(q, txn, job->in->qid, job->chunkno, job->data, job->len);
}

/* writer_put_tail - the last chunk: whole, or in pieces when short
 * (QUEUE_PIECED_TAIL, queue_impl.h), numbered on from n. */
static int writer_put_tail(struct queue *q, DB_TXN *txn, const char *qid, uint32_t n,
			   const unsigned char *bytes, size_t len)
{
	size_t step = len >= QUEUE_PIECED_TAIL ? len : QUEUE_PIECE_SIZE;
	int rc = 0;

	for (size_t off = 0; off < len && rc == 0; off += step, n++)
		rc = writer_put_chunk(q, txn, qid, n, bytes + off, len - off < step ? len - off : step);
	return rc;
}

/* writer_commit_txn - the transaction of a COMMIT job: tail chunk, envelope. */
static int writer_commit_txn(struct queue *q, DB_TXN *txn, void *arg)
{
	struct wjob *job = arg;
	DBT key = { .data = job->in->qid, .size = QUEUE_ID_LEN };
	DBT data = { .data = job->data, .size = (uint32_t)job->len };
	int rc;

	if ((rc = writer_put_tail(q, txn, job->in->qid, job->chunkno, job->tail, job->taillen)) != 0)
		return rc;
	return q->envelope->put(q->envelope, txn, &key, &data, DB_NOOVERWRITE);
}

/* writer_body_del_txn - deletes every chunk of the message in arg. */
static int writer_body_del_txn(struct queue *q, DB_TXN *txn, void *arg)
{
	struct queue_incoming *in = arg;

	return queue_body_del(q, txn, in->qid);
}

/* writer_forget - removes what a failed or aborted message left in body.db. */
static void writer_forget(struct queue *q, struct queue_incoming *in)
{
	int rc;

	if (in->w_collision || in->w_written == 0)
		return;
	rc = writer_txn(q, writer_body_del_txn, in);
	if (rc != 0)	/* not fatal: the next start removes orphans */
		mtad_log(MTAD_LOG_WARNING, "queue: %s: cannot delete body: %s", in->qid,
			 db_strerror(rc));
	in->w_written = 0;
}

/* writer_fail - records a job's failure text. */
static void writer_fail(struct wjob *job, int rc, const char *what)
{
	job->status = rc;
	if (rc == DB_KEYEXIST)
		snprintf(job->errmsg, sizeof(job->errmsg), "%s: queue id %s already in use",
			 what, job->in->qid);
	else
		snprintf(job->errmsg, sizeof(job->errmsg), "%s: %s", what, db_strerror(rc));
}

/* writer_unreplicated_txn - takes a message that went unacknowledged
 * out again: envelope (the schedule entry goes with it) and body. */
static int writer_unreplicated_txn(struct queue *q, DB_TXN *txn, void *arg)
{
	struct queue_incoming *in = arg;
	DBT key = { .data = in->qid, .size = QUEUE_ID_LEN };
	int rc = q->envelope->del(q->envelope, txn, &key, 0);

	if (rc != 0 && rc != DB_NOTFOUND)
		return rc;
	return queue_body_del(q, txn, in->qid);
}

/* The text a message's failure carries when the replicas did not answer. */
#define WRITER_UNACKED_TEXT "not acknowledged by a replica in time (replication_ack)"

/*
 * writer_mark_unreplicated - job's message was committed but not
 * acknowledged, and its removal returned del_rc: a copy here alone is
 * not the promise a 250 makes, so the client is told 451. Should the
 * removal have failed, the message stays and is delivered: a duplicate
 * when the client sends again, never a loss.
 */
static void writer_mark_unreplicated(struct wjob *job, int del_rc)
{
	struct queue_incoming *in = job->in;

	job->status = QUEUE_UNREPLICATED;
	snprintf(job->errmsg, sizeof(job->errmsg), "%s", WRITER_UNACKED_TEXT);
	in->w_status = QUEUE_UNREPLICATED;
	memcpy(in->w_err, job->errmsg, sizeof(in->w_err));
	in->w_written = 0;
	if (del_rc != 0)
		mtad_log(MTAD_LOG_ERROR, "queue: %s: unacknowledged, and cannot be removed (%s): "
			 "it stays queued", in->qid, db_strerror(del_rc));
	mtad_log(MTAD_LOG_WARNING, "queue: %s: %s; removed, the client is told 451", in->qid,
		 job->errmsg);
}

/* writer_unreplicated - one message's own commit went unacknowledged
 * (a batch that could not get a parent transaction): out it comes. */
static void writer_unreplicated(struct queue *q, struct wjob *job)
{
	writer_mark_unreplicated(job, writer_txn(q, writer_unreplicated_txn, job->in));
}

/* writer_do_chunk - writes one full chunk in its own transaction. */
static void writer_do_chunk(struct queue *q, struct wjob *job)
{
	struct queue_incoming *in = job->in;
	int rc;

	if (in->w_status != 0) {	/* the message failed already */
		job->status = in->w_status;
		return;
	}
	(void)queue_repl_unacked(q);	/* an earlier task's, not this chunk's */
	rc = writer_txn(q, writer_chunk_txn, job);
	if (rc == 0) {
		in->w_written++;
		if (queue_repl_unacked(q)) {
			/* The whole message will be 451: the commit sees w_status. */
			in->w_status = QUEUE_UNREPLICATED;
			snprintf(in->w_err, sizeof(in->w_err), "%s", WRITER_UNACKED_TEXT);
		}
		return;
	}
	writer_fail(job, rc, "writing body");
	in->w_status = rc;
	in->w_collision = rc == DB_KEYEXIST;
	memcpy(in->w_err, job->errmsg, sizeof(in->w_err));
	mtad_log(MTAD_LOG_WARNING, "queue: %s: %s", in->qid, job->errmsg);
}

/* writer_do_commit - tail and envelope in one transaction; 1 when committed. */
static int writer_do_commit(struct queue *q, struct wjob *job)
{
	struct queue_incoming *in = job->in;
	int rc;

	if (in->w_status != 0) {
		job->status = in->w_status;
		memcpy(job->errmsg, in->w_err, sizeof(job->errmsg));
	} else if (job->data == NULL) {
		job->status = ENOMEM;	/* errmsg was written by queue_incoming_commit */
	} else if ((void)queue_repl_unacked(q),
		   (rc = writer_txn(q, writer_commit_txn, job)) != 0) {
		writer_fail(job, rc, "committing message");
		in->w_collision |= rc == DB_KEYEXIST;
		mtad_log(MTAD_LOG_WARNING, "queue: %s: %s", in->qid, job->errmsg);
	} else if (queue_repl_unacked(q)) {
		writer_unreplicated(q, job);
		return 0;
	} else {
		return 1;
	}
	writer_forget(q, in);
	return 0;
}

/* writer_run - runs a batch in order; returns how many transactions the
 * log flush must cover, and in *messages how many of them are messages. */
static unsigned writer_run(struct queue *q, struct wjob *batch, unsigned *messages)
{
	unsigned committed = 0;

	*messages = 0;
	for (struct wjob *job = batch; job != NULL; job = job->next) {
		switch (job->type) {
		case WJOB_CHUNK:
			writer_do_chunk(q, job);
			break;
		case WJOB_COMMIT:
			*messages += (unsigned)writer_do_commit(q, job);
			break;
		case WJOB_ABORT:
			writer_forget(q, job->in);
			break;
		case WJOB_TASK:
			committed += job->task->run(q, job->task) > 0;
			break;
		case WJOB_STATS:	/* writer_split took them out */
			break;
		}
	}
	return committed + *messages;
}

/* writer_unreplicated_all_txn - takes every message the batch committed
 * out again, in one transaction (one wait, not one per message, when
 * the replicas do not answer). */
static int writer_unreplicated_all_txn(struct queue *q, DB_TXN *txn, void *arg)
{
	int rc = 0;

	for (struct wjob *job = arg; job != NULL && rc == 0; job = job->next)
		if (job->type == WJOB_COMMIT && job->status == 0)
			rc = writer_unreplicated_txn(q, txn, job->in);
	return rc;
}

/* writer_group_unacked - the batch's parent commit went unacknowledged:
 * its messages come out again (451); a message still arriving will
 * fail at its commit. */
static void writer_group_unacked(struct queue *q, struct wjob *batch)
{
	int rc = writer_txn(q, writer_unreplicated_all_txn, batch);

	for (struct wjob *job = batch; job != NULL; job = job->next) {
		if (job->status != 0)
			continue;
		if (job->type == WJOB_COMMIT) {
			writer_mark_unreplicated(job, rc);
		} else if (job->type == WJOB_CHUNK) {
			job->in->w_status = QUEUE_UNREPLICATED;
			snprintf(job->in->w_err, sizeof(job->in->w_err), "%s", WRITER_UNACKED_TEXT);
		}
	}
}

/* writer_group_failed - the batch's parent commit failed: nothing of it
 * is in the queue; each message of it fails (its earlier chunks go). */
static void writer_group_failed(struct queue *q, struct wjob *batch, int rc)
{
	for (struct wjob *job = batch; job != NULL; job = job->next) {
		if ((job->type != WJOB_COMMIT && job->type != WJOB_CHUNK) || job->status != 0)
			continue;
		writer_fail(job, rc, "committing the batch");
		job->in->w_status = rc;
		memcpy(job->in->w_err, job->errmsg, sizeof(job->in->w_err));
		if (job->type == WJOB_COMMIT) {
			mtad_log(MTAD_LOG_WARNING, "queue: %s: %s", job->in->qid, job->errmsg);
			writer_forget(q, job->in);
		}
	}
}

/*
 * writer_run_group - the batch as one parent transaction whose children
 * are its jobs: in a replication group each top-level commit waits for
 * the replicas' acknowledgement, one network round trip per message
 * (3,286 msg/s against 13,911 alone, BENCHMARKS.md); one parent waits
 * once for the whole batch, as the log flush is shared (group commit).
 * A child that fails (a queue id in use) aborts alone. The batch holds
 * its locks until the parent commits: TASK jobs, which take their own
 * transactions, run after it (writer_main), never inside.
 */
static unsigned writer_run_group(struct queue *q, struct wjob *batch, unsigned *messages)
{
	struct queue_writer *w = q->writer;
	DB_TXN *parent;
	unsigned committed;
	int rc;

	if (q->env->txn_begin(q->env, NULL, &parent, 0) != 0)
		return writer_run(q, batch, messages);	/* one wait per message */
	w->parent = parent;
	committed = writer_run(q, batch, messages);
	w->parent = NULL;
	(void)queue_repl_unacked(q);
	if ((rc = parent->commit(parent, DB_TXN_NOSYNC)) != 0) {
		writer_group_failed(q, batch, rc);
		*messages = 0;
		return 0;
	}
	if (queue_repl_unacked(q)) {
		writer_group_unacked(q, batch);
		*messages = 0;
	}
	return committed;
}

/* writer_is_task - a TASK job (the write tasks left after the reads). */
static bool writer_is_task(const struct wjob *job)
{
	return job->type == WJOB_TASK;
}

/* writer_is_stats, writer_is_read - what writer_split takes out of a batch. */
static bool writer_is_stats(const struct wjob *job)
{
	return job->type == WJOB_STATS;
}

static bool writer_is_read(const struct wjob *job)
{
	return job->type == WJOB_TASK && !job->task->write;
}

/* writer_split - takes the jobs that match out of *batch, keeping both orders. */
static struct wjob *writer_split(struct wjob **batch, bool (*match)(const struct wjob *))
{
	struct wjob *out = NULL, **otail = &out, **p = batch;

	while (*p != NULL) {
		struct wjob *job = *p;

		if (!match(job)) {
			p = &job->next;
			continue;
		}
		*p = job->next;
		job->next = NULL;
		*otail = job;
		otail = &job->next;
	}
	return out;
}

/* writer_run_stats - one transaction per STATS job; no flush of their own. */
static void writer_run_stats(struct queue *q, struct wjob *list)
{
	for (struct wjob *job = list; job != NULL; job = job->next) {
		int rc = queue_stats_apply(q, job->stats);

		if (rc == 0)
			continue;
		job->status = rc;
		mtad_log(MTAD_LOG_WARNING, "queue: statistics: %zu counters lost: %s",
			 queue_stats_table_size(job->stats), db_strerror(rc));
	}
}

/* writer_flush - the one log sync of a batch; on failure no commit counts as durable. */
static void writer_flush(struct queue *q, struct wjob *batch)
{
	int rc = q->env->log_flush(q->env, NULL);

	atomic_fetch_add(&q->flushes, 1);
	if (rc == 0)
		return;
	mtad_log(MTAD_LOG_ERROR, "queue: log flush failed: %s", db_strerror(rc));
	/* The transactions are committed in memory and may still reach the
	 * disk: saying "failed" risks a duplicate, never a lost message. */
	for (struct wjob *job = batch; job != NULL; job = job->next) {
		if (job->type == WJOB_COMMIT && job->status == 0)
			writer_fail(job, rc, "flushing the log");
		else if (job->type == WJOB_TASK)
			job->task->flush_rc = rc;
	}
}

/* writer_run_reads - the read tasks, after the batch's flush. */
static void writer_run_reads(struct queue *q, struct wjob *list)
{
	for (struct wjob *job = list; job != NULL; job = job->next)
		(void)job->task->run(q, job->task);
}

/* writer_take - waits for work (or the checkpoint timeout); takes all of it. */
static struct wjob *writer_take(struct queue_writer *w, bool *stopping)
{
	uint64_t timeout = (uint64_t)w->q->opt.checkpoint_interval * 1000000000ull;
	struct wjob *batch;

	uv_mutex_lock(&w->lock);
	if (w->pending == NULL && !w->stopping && !w->expiring)
		(void)uv_cond_timedwait(&w->cond, &w->lock, timeout);	/* timeout: checkpoint */
	batch = w->pending;
	w->pending = NULL;
	w->pending_tail = &w->pending;
	*stopping = w->stopping;
	uv_mutex_unlock(&w->lock);
	return batch;
}

/* writer_deliver - hands a finished batch back, each job to the loop
 * that submitted it (port.c). */
static void writer_deliver(struct wjob *batch)
{
	while (batch != NULL) {
		struct wjob *job = batch;

		batch = job->next;
		port_deliver(job);	/* job belongs to its loop from here on */
	}
}

/* writer_checkpoint - bounds recovery time and lets old log files go. */
static void writer_checkpoint(struct queue_writer *w, bool force)
{
	uint64_t now = uv_hrtime();
	uint64_t every = (uint64_t)w->q->opt.checkpoint_interval * 1000000000ull;
	int rc;

	if (!w->active || (!force && now - w->last_checkpoint < every))
		return;
	if ((rc = w->q->env->txn_checkpoint(w->q->env, 0, 0, 0)) != 0)
		mtad_log(MTAD_LOG_WARNING, "queue: checkpoint failed: %s", db_strerror(rc));
	w->active = false;
	w->last_checkpoint = now;
}

/* writer_expire - one step of deleting statistics days older than
 * stats_keep_days; the expiry is over when a step finds fewer keys. */
static void writer_expire(struct queue_writer *w)
{
	size_t removed = 0;
	int rc = queue_stats_expire(w->q, time(NULL), QUEUE_STATS_EXPIRE_STEP, &removed);

	if (rc != 0)
		mtad_log(MTAD_LOG_WARNING, "queue: statistics expiry failed: %s", db_strerror(rc));
	if (rc != 0 || removed < QUEUE_STATS_EXPIRE_STEP) {
		w->expiring = false;
		w->last_expire = uv_hrtime();
	}
	if (removed > 0)
		w->active = true;
}

/* writer_count_sync - one log sync made this many messages durable. */
static void writer_count_sync(struct queue *q, unsigned messages)
{
	size_t b = 0;

	while (b + 1 < QUEUE_SYNC_BUCKETS && messages >= 2u << b)
		b++;
	atomic_fetch_add(&q->sync_batches[b], 1);
	atomic_fetch_add(&q->message_syncs, 1);
}

/* writer_main - the writer thread: take everything, run it, one flush,
 * report; then the statistics jobs that came with it. */
static void writer_main(void *arg)
{
	struct queue_writer *w = arg;
	struct queue *q = w->q;
	bool stopping = false;

	w->last_checkpoint = uv_hrtime();
	w->expiring = true;	/* at start, then hourly */
	queue_repl_writer_is_me(q);
	for (;;) {
		struct wjob *batch, *stats, *reads;

		if (w->expiring)
			writer_expire(w);
		batch = writer_take(w, &stopping);
		stats = writer_split(&batch, writer_is_stats);
		reads = writer_split(&batch, writer_is_read);

		if (batch != NULL) {
			unsigned messages, committed;

			if (queue_repl_waits(q)) {
				struct wjob *tasks = writer_split(&batch, writer_is_task), **end;
				unsigned none;

				committed = batch != NULL ? writer_run_group(q, batch, &messages) : 0;
				if (batch == NULL)
					messages = 0;
				committed += writer_run(q, tasks, &none);
				for (end = &batch; *end != NULL; end = &(*end)->next)
					;
				*end = tasks;	/* flushed and reported with the rest */
			} else {
				committed = writer_run(q, batch, &messages);
			}

			if (committed > 0)
				writer_flush(q, batch);
			if (messages > 0) {
				writer_count_sync(q, messages);
				queue_repl_acked(q);
			}
			atomic_fetch_add(&q->commits, messages);
			w->active = true;
			writer_deliver(batch);
		}
		if (reads != NULL) {
			writer_run_reads(q, reads);
			writer_deliver(reads);
		}
		if (stats != NULL) {
			writer_run_stats(q, stats);
			w->active = true;
			writer_deliver(stats);
		}
		if (batch == NULL && stats == NULL && reads == NULL && stopping)
			break;
		if (!w->expiring &&
		    uv_hrtime() - w->last_expire >= QUEUE_STATS_EXPIRE_EVERY * 1000000000ull)
			w->expiring = true;
		writer_checkpoint(w, false);
	}
	writer_checkpoint(w, true);	/* a clean stop leaves little to recover */
}

/* ---- loop thread ---- */

/* writer_submit - see writer_int.h. */
void writer_submit(struct queue_port *port, struct wjob *job)
{
	struct queue_writer *w = port->w;

	job->next = NULL;
	job->port = port;
	port_submitted(port);
	uv_mutex_lock(&w->lock);
	*w->pending_tail = job;
	w->pending_tail = &job->next;
	uv_cond_signal(&w->cond);
	uv_mutex_unlock(&w->lock);
}

/* writer_complete_chunk - a chunk is written: maybe let the sender go on. */
static void writer_complete_chunk(struct wjob *job)
{
	struct queue_incoming *in = job->in;

	in->inflight--;
	if (job->status != 0)
		in->failed = true;
	free(job->data);
	free(job);
	/* After commit/abort nobody waits for resume; in lives on until the
	 * final job (always later in the list) completes. */
	if (in->final != NULL && in->blocked && in->inflight < QUEUE_MAX_INFLIGHT) {
		in->blocked = false;
		in->resume(in->arg);
	}
}

/* writer_complete - see writer_int.h. */
void writer_complete(struct queue_writer *w, struct wjob *job)
{
	switch (job->type) {
	case WJOB_STATS:
		w->stats_inflight--;
		queue_stats_table_free(job->stats);
		break;
	case WJOB_CHUNK:
		writer_complete_chunk(job);
		return;
	case WJOB_COMMIT:
		incoming_free(job->in);
		job->cb(job->cbarg, job->status, job->status ? job->errmsg : NULL);
		break;
	case WJOB_ABORT:
		incoming_free(job->in);
		break;
	case WJOB_TASK:
		job->task->done(job->task);
		break;
	}
	free(job->data);
	free(job->tail);
	free(job);
}

/*
 * writer_take_syncs - the group commit's batch sizes since the last
 * call into today's statistics (loop thread), so `mtaq stats` can show
 * how many messages each log sync carried.
 */
static void writer_take_syncs(struct queue_writer *w)
{
	struct queue *q = w->q;
	uint64_t commits = atomic_load(&q->commits);
	char day[QUEUE_STATS_DAY_LEN + 1], key[QUEUE_STATS_KEY_MAX + 1];

	if (queue_stats_day(time(NULL), 0, day) < 0)
		return;
	for (unsigned b = 0; b < QUEUE_SYNC_BUCKETS; b++) {
		uint64_t n = atomic_exchange(&q->sync_batches[b], 0);

		if (n > 0 && queue_stats_key_format(key, sizeof(key), day, QUEUE_STATS_COMMIT_SYNCS,
						    NULL, b) > 0)
			(void)queue_stats_add(q, key, n);
	}
	if (commits > w->commits_counted &&
	    queue_stats_key_format(key, sizeof(key), day, QUEUE_STATS_COMMIT_MESSAGES, NULL, 0) > 0)
		(void)queue_stats_add(q, key, commits - w->commits_counted);
	w->commits_counted = commits;
}

/* writer_submit_stats - hands the pending counters to the writer, if any. */
static void writer_submit_stats(struct queue_writer *w)
{
	struct queue_stats_table *t;
	struct wjob *job;
	bool none;

	writer_take_syncs(w);
	uv_mutex_lock(&w->q->stats_lock);
	none = w->q->stats_pending == NULL;
	uv_mutex_unlock(&w->q->stats_lock);
	if (none)
		return;
	if ((job = calloc(1, sizeof(*job))) == NULL)
		return;		/* the table stays pending: next tick */
	if ((t = queue_stats_take(w->q)) == NULL) {
		free(job);
		return;
	}
	job->type = WJOB_STATS;
	job->stats = t;
	w->stats_inflight++;
	writer_submit(&w->port, job);
}

/* writer_timer_cb - about once a second: flush the counters unless the
 * previous flush is still running (the table keeps growing, bounded). */
static void writer_timer_cb(uv_timer_t *timer)
{
	struct queue_writer *w = timer->data;

	if (w->stats_inflight == 0)
		writer_submit_stats(w);
}

/* queue_stats_flush - see queue.h. */
void queue_stats_flush(struct queue *q)
{
	if (q->writer != NULL)
		writer_submit_stats(q->writer);
}

/* queue_task_submit - see queue_impl.h. */
int queue_task_submit(struct queue *q, struct queue_task *task)
{
	struct wjob *job;

	if (q->writer == NULL) {
		errno = ESHUTDOWN;
		return -1;
	}
	if ((job = calloc(1, sizeof(*job))) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	job->type = WJOB_TASK;
	job->task = task;
	task->flush_rc = 0;
	writer_submit(&q->writer->port, job);
	return 0;
}

/* writer_handle_gone - releases the writer once its last handle is closed. */
static void writer_handle_gone(struct queue_writer *w)
{
	if (--w->handles > 0)
		return;
	uv_mutex_destroy(&w->port.lock);
	uv_cond_destroy(&w->cond);
	uv_mutex_destroy(&w->lock);
	free(w);
}

static void writer_timer_closed(uv_handle_t *handle)
{
	writer_handle_gone(handle->data);
}

static void writer_port_closed(uv_handle_t *handle)
{
	struct queue_port *p = handle->data;

	writer_handle_gone(p->w);
}

/* writer_close - closes the writer's handles; w goes once both closed. */
static void writer_close(struct queue_writer *w)
{
	uv_close((uv_handle_t *)&w->timer, writer_timer_closed);
	port_shut(&w->port);
}

/* writer_init - the writer's lock, condition, async handle and timer. */
static int writer_init(struct queue_writer *w, uv_loop_t *loop)
{
	int rc;

	if ((rc = uv_mutex_init(&w->lock)) != 0)
		return rc;
	if ((rc = uv_cond_init(&w->cond)) != 0) {
		uv_mutex_destroy(&w->lock);
		return rc;
	}
	if ((rc = port_init(&w->port, w, loop, writer_port_closed)) != 0) {
		uv_cond_destroy(&w->cond);
		uv_mutex_destroy(&w->lock);
		return rc;
	}
	w->handles = 1;
	w->pending_tail = &w->pending;
	if ((rc = uv_timer_init(loop, &w->timer)) != 0) {
		port_shut(&w->port);
		return rc;
	}
	w->timer.data = w;
	w->handles = 2;
	/* Unreferenced: statistics alone never keep the loop running. */
	uv_unref((uv_handle_t *)&w->timer);
	if ((rc = uv_timer_start(&w->timer, writer_timer_cb, QUEUE_STATS_FLUSH_MS,
				 QUEUE_STATS_FLUSH_MS)) != 0) {
		writer_close(w);
		return rc;
	}
	return 0;
}

/* writer_key_fallback - statistics are not worth refusing to start: a
 * key of this run only, so today's address counts from before and after
 * this start may count an address twice. */
static void writer_key_fallback(struct queue *q, int rc)
{
	mtad_log(MTAD_LOG_WARNING,
		 "queue: statistics: cannot read or store the sketch key (%s); address counts "
		 "may count a client twice today",
		 db_strerror(rc));
	if (getrandom(q->sketch_key, sizeof(q->sketch_key), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(q->sketch_key)) {
		q->sketch_key[0] = uv_hrtime();
		q->sketch_key[1] = (uint64_t)time(NULL);
	}
}

/* queue_writer_start - see queue.h. */
int queue_writer_start(struct queue *q, uv_loop_t *loop, char *err, size_t errlen)
{
	struct queue_writer *w;
	size_t orphans;
	int rc;

	if (q->writer != NULL) {
		snprintf(err, errlen, "queue writer already running");
		return -1;
	}
	if ((rc = queue_orphans_remove(q, &orphans)) != 0) {
		snprintf(err, errlen, "removing orphaned bodies: %s", db_strerror(rc));
		return -1;
	}
	if (orphans > 0)
		mtad_log(MTAD_LOG_INFO, "queue: removed the bodies of %zu unfinished messages",
			 orphans);
	if ((rc = queue_stats_key_load(q)) != 0)
		writer_key_fallback(q, rc);
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	w->q = q;
	if ((rc = writer_init(w, loop)) != 0) {
		snprintf(err, errlen, "queue writer: %s", uv_strerror(rc));
		if (w->handles == 0)	/* else the close callbacks free it */
			free(w);
		return -1;
	}
	if ((rc = uv_thread_create(&w->thread, writer_main, w)) != 0) {
		snprintf(err, errlen, "queue writer thread: %s", uv_strerror(rc));
		writer_close(w);
		return -1;
	}
	q->writer = w;
	q->wrote = true;
	return 0;
}

/* writer_log_syncs - the group commit's summary at stop. */
static void writer_log_syncs(struct queue *q)
{
	uint64_t commits = atomic_load(&q->commits), syncs = atomic_load(&q->message_syncs);

	if (syncs > 0)
		mtad_log(MTAD_LOG_INFO, "queue: group commit: %llu messages in %llu log syncs, "
			 "%.1f per sync", (unsigned long long)commits, (unsigned long long)syncs,
			 (double)commits / (double)syncs);
}

/* queue_writer_stop - see queue.h. */
void queue_writer_stop(struct queue *q)
{
	struct queue_writer *w = q->writer;

	if (w == NULL)
		return;
	writer_submit_stats(w);	/* the last counters: written before the thread ends */
	uv_mutex_lock(&w->lock);
	w->stopping = true;
	uv_cond_signal(&w->cond);
	uv_mutex_unlock(&w->lock);
	if (uv_thread_join(&w->thread) != 0)
		mtad_log(MTAD_LOG_ERROR, "queue: cannot join the writer thread");
	if (atomic_load(&w->ports) != 0)
		mtad_log(MTAD_LOG_ERROR, "queue: the writer stopped with %u event loops still open",
			 atomic_load(&w->ports));
	writer_log_syncs(q);
	/* Callbacks below that call back into the queue find it stopped. */
	q->writer = NULL;
	port_drain(&w->port);
	writer_close(w);
}

/* queue_writer_stats - see queue.h. */
void queue_writer_stats(struct queue *q, uint64_t *commits, uint64_t *flushes)
{
	*commits = atomic_load(&q->commits);
	*flushes = atomic_load(&q->flushes);
}
