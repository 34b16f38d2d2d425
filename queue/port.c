/*
 * port.c - completion ports: the way a finished writer job gets back to
 * the event loop that submitted it. With several event loops (mtad's
 * `loops`), each loop's sessions hand their messages to the one writer
 * thread, so one log sync still covers every loop's commits, and each
 * loop gets its own 250s back on its own thread.
 *
 * Must not: run a completion on any thread but the port's loop; let the
 * writer thread touch a job after handing it over (the loop may free it
 * at once); close a port while a job of it is still with the writer
 * (its completion would have nowhere to go).
 *
 * Threads: port_deliver runs on the writer thread; everything else on
 * the port's loop thread. The wake-up is sent while the port's lock is
 * held, so the loop cannot drain, close and free the port between the
 * append and the send.
 */
#include <stdlib.h>

#include "util/util.h"
#include "queue/writer_int.h"

static void port_async_cb(uv_async_t *async)
{
	port_drain(async->data);
}

/* port_init - see writer_int.h. */
int port_init(struct queue_port *p, struct queue_writer *w, uv_loop_t *loop, uv_close_cb on_close)
{
	int rc;

	p->w = w;
	p->on_close = on_close;
	p->done_tail = &p->done;
	if ((rc = uv_mutex_init(&p->lock)) != 0)
		return rc;
	if ((rc = uv_async_init(loop, &p->async, port_async_cb)) != 0) {
		uv_mutex_destroy(&p->lock);
		return rc;
	}
	p->async.data = p;
	uv_unref((uv_handle_t *)&p->async);	/* an idle port lets the loop end */
	return 0;
}

/* port_submitted - see writer_int.h. */
void port_submitted(struct queue_port *p)
{
	if (p->outstanding++ == 0)
		uv_ref((uv_handle_t *)&p->async);
}

/* port_deliver - see writer_int.h. */
void port_deliver(struct wjob *job)
{
	struct queue_port *p = job->port;

	job->next = NULL;
	uv_mutex_lock(&p->lock);
	*p->done_tail = job;
	p->done_tail = &job->next;
	if (uv_async_send(&p->async) != 0)
		mtad_log(MTAD_LOG_ERROR, "queue: cannot wake an event loop");
	uv_mutex_unlock(&p->lock);
}

/* port_drain - see writer_int.h. */
void port_drain(struct queue_port *p)
{
	struct wjob *list;

	uv_mutex_lock(&p->lock);
	list = p->done;
	p->done = NULL;
	p->done_tail = &p->done;
	uv_mutex_unlock(&p->lock);
	while (list != NULL) {
		struct wjob *job = list;

		list = job->next;
		if (--p->outstanding == 0)
			uv_unref((uv_handle_t *)&p->async);
		writer_complete(p->w, job);
	}
	if (p->closing && p->outstanding == 0 && !uv_is_closing((uv_handle_t *)&p->async))
		uv_close((uv_handle_t *)&p->async, p->on_close);
}

/* port_shut - see writer_int.h. */
void port_shut(struct queue_port *p)
{
	p->closing = true;
	if (p->outstanding == 0 && !uv_is_closing((uv_handle_t *)&p->async))
		uv_close((uv_handle_t *)&p->async, p->on_close);
}

/* port_free - the handle of a port from queue_port_new is closed. */
static void port_free(uv_handle_t *handle)
{
	struct queue_port *p = handle->data;

	atomic_fetch_sub(&p->w->ports, 1);
	uv_mutex_destroy(&p->lock);
	free(p);
}

/* queue_port_new - see queue.h. */
struct queue_port *queue_port_new(struct queue *q, uv_loop_t *loop)
{
	struct queue_port *p;

	if (q->writer == NULL || (p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	if (port_init(p, q->writer, loop, port_free) != 0) {
		free(p);
		return NULL;
	}
	atomic_fetch_add(&q->writer->ports, 1);
	return p;
}

/* queue_port_close - see queue.h. */
void queue_port_close(struct queue_port *p)
{
	if (p != NULL && p != &p->w->port)
		port_shut(p);
}

/* queue_port_main - see queue.h. */
struct queue_port *queue_port_main(struct queue *q)
{
	return q->writer != NULL ? &q->writer->port : NULL;
}
