/*
 * incoming.c - one message being received, on the loop thread: its body
 * bytes gathered into 60 KB chunks and handed to the writer thread
 * (writer.c), the sender paused while QUEUE_MAX_INFLIGHT chunks wait,
 * the SHA-256 of the body taken as the bytes come, and at the end the
 * envelope encoded and committed with the last, partial chunk.
 *
 * Must not: touch Berkeley DB (only the writer thread does), hold more
 * than QUEUE_MAX_INFLIGHT full chunks of one message, or report a commit
 * before the writer's log flush (the callback comes from writer.c).
 *
 * Follows: RFC 5321 §4.5.3.1.7 (message size), §6.1 (a 250 is a promise).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"
#include "queue/writer_int.h"

/* incoming_free - releases an incoming message and what it still holds. */
void incoming_free(struct queue_incoming *in)
{
	queue_body_check_free(in->check);
	free(in->buf);
	free(in->final);
	free(in);
}

/* ---- incoming messages (loop thread) ---- */

/* queue_incoming_new - see queue.h. */
struct queue_incoming *queue_incoming_new(struct queue_port *port, const char *qid,
					  queue_resume_cb resume, void *arg)
{
	struct queue_incoming *in;

	if (port == NULL || port->w->q->writer == NULL || !queue_id_valid(qid))
		return NULL;
	if ((in = calloc(1, sizeof(*in))) == NULL)
		return NULL;
	if ((in->final = calloc(1, sizeof(*in->final))) == NULL ||
	    (in->check = queue_body_check_new()) == NULL) {
		free(in->final);
		free(in);
		return NULL;
	}
	in->q = port->w->q;
	in->port = port;
	memcpy(in->qid, qid, sizeof(in->qid));
	in->resume = resume;
	in->arg = arg;
	in->final->in = in;
	return in;
}

/* incoming_send_chunk - hands the full buffer to the writer. */
static int incoming_send_chunk(struct queue_incoming *in)
{
	struct wjob *job = calloc(1, sizeof(*job));

	if (job == NULL)
		return -1;
	job->type = WJOB_CHUNK;
	job->in = in;
	job->data = in->buf;
	job->len = in->buflen;
	job->chunkno = in->nchunks++;
	in->buf = NULL;
	in->buflen = 0;
	in->inflight++;
	writer_submit(in->port, job);
	return 0;
}

/* queue_incoming_write - see queue.h; -1 also once the writer stopped. */
int queue_incoming_write(struct queue_incoming *in, const void *data, size_t len)
{
	const unsigned char *p = data;

	if (in->q->writer == NULL || in->final == NULL)
		return -1;
	in->size += len;
	queue_body_check_add(in->check, data, len);
	while (len > 0 && !in->failed) {
		size_t n;

		if (in->buf == NULL && (in->buf = malloc(QUEUE_CHUNK_SIZE)) == NULL)
			return -1;
		n = QUEUE_CHUNK_SIZE - in->buflen;
		if (n > len)
			n = len;
		memcpy(in->buf + in->buflen, p, n);
		in->buflen += n;
		p += n;
		len -= n;
		if (in->buflen == QUEUE_CHUNK_SIZE && incoming_send_chunk(in) < 0)
			return -1;
	}
	if (in->inflight < QUEUE_MAX_INFLIGHT)
		return 0;
	in->blocked = true;
	return 1;
}

/* incoming_encode - the envelope to store: the caller's, with our id,
 * size and digest. */
static void incoming_encode(struct queue_incoming *in, const struct queue_envelope *env,
			    struct wjob *job)
{
	struct queue_envelope copy = *env;

	copy.version = QUEUE_RECORD_VERSION;
	memcpy(copy.qid, in->qid, sizeof(copy.qid));
	copy.size = in->size;
	copy.has_digest = true;
	if (queue_body_check_final(in->check, copy.digest) < 0) {
		snprintf(job->errmsg, sizeof(job->errmsg), "cannot compute the body's SHA-256");
		return;
	}
	job->data = queue_record_encode(&copy, &job->len);
	if (job->data == NULL)
		snprintf(job->errmsg, sizeof(job->errmsg), "encoding the envelope: %s",
			 strerror(errno));
}

/* queue_incoming_commit - see queue.h. */
int queue_incoming_commit(struct queue_incoming *in, const struct queue_envelope *env,
			  queue_commit_cb cb, void *arg)
{
	struct wjob *job = in->final;

	in->final = NULL;
	job->type = WJOB_COMMIT;
	job->cb = cb;
	job->cbarg = arg;
	if (in->q->writer == NULL) {
		/* Shut down under a live session: nobody can call back later. */
		incoming_free(in);	/* in->final is NULL now: not freed twice */
		cb(arg, ESHUTDOWN, "queue writer stopped");
		free(job);
		return 0;
	}
	incoming_encode(in, env, job);
	job->tail = in->buf;
	job->taillen = in->buflen;
	job->chunkno = in->nchunks;
	in->buf = NULL;
	writer_submit(in->port, job);
	return 0;
}

/* queue_incoming_abort - see queue.h. */
void queue_incoming_abort(struct queue_incoming *in)
{
	struct wjob *job = in->final;

	in->final = NULL;
	free(in->buf);
	in->buf = NULL;
	/* Nothing reached the writer, or it is gone: no job to wait for
	 * (chunks left by a stopped writer are orphans for the next start). */
	if (in->nchunks == 0 || in->q->writer == NULL) {
		free(job);
		queue_body_check_free(in->check);
		free(in);
		return;
	}
	job->type = WJOB_ABORT;
	writer_submit(in->port, job);
}
