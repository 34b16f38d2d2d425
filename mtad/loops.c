/*
 * loops.c - every core: N event loops for SMTP sessions (`loops`; auto
 * is one per core). Loop 0 is the main loop, which also accepts, runs
 * delivery, the spool measure and the signals; loops 1..N-1 each run on
 * a thread of their own. The main loop accepts every connection, counts
 * it against the limits (listen.c: exact, since one thread admits), and
 * hands it round robin to a loop, which then runs the session, its TLS
 * and its SASL steps to the end. All loops hand their messages to the
 * one queue writer thread, so one log sync still covers every loop's
 * commits, and each loop gets its completions back through its own
 * queue port.
 *
 * Between the main loop and a worker there is only a mailbox: handed
 * connections and three requests (stop, the queue failed, pause for a
 * reload), under the worker's lock, with a uv_async_t to wake it. A
 * reload stops every worker at a barrier between two callbacks, so the
 * configuration, the policy and the TLS context can be replaced in
 * place while no session runs.
 *
 * Must not: let one loop touch another loop's sessions or handles; block
 * a loop except at the reload barrier (the main loop waits there only
 * while every worker is between callbacks) and in loops_join after the
 * last connection is gone; start more loops than QUEUE_ID_LANES_MAX.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mtad/daemon.h"

/* loops_count - the configured number, auto = the cores this process may use. */
static unsigned loops_count(const struct mtad_config *cfg)
{
	unsigned n = cfg->loops;

	if (n == 0) {
		long cores = sysconf(_SC_NPROCESSORS_ONLN);

		n = cores > 0 ? (unsigned)cores : 1;
	}
	return n > MTAD_LOOPS_MAX ? MTAD_LOOPS_MAX : n;
}

/* ---- a worker's side ---- */

/* worker_close - the worker's last handles go; its uv_run then returns. */
static void worker_close(struct mtad_loop *lp)
{
	if (lp->closed)
		return;
	lp->closed = true;
	if (lp->wake_open)
		uv_close((uv_handle_t *)&lp->wake, NULL);
	deliver_verify_free(lp->verify);	/* its probes' connections close on this loop */
	lp->verify = NULL;
	queue_port_close(lp->port);	/* closes once its last commit is back */
	lp->port = NULL;
	if (lp->dns) {
		mtad_dns_free(lp->dns);
		lp->dns = NULL;
	}
}

/* loops_closed - see daemon.h. */
void loops_closed(struct mtad_loop *lp)
{
	if (lp->index > 0 && lp->stopping && lp->nconns == 0)
		worker_close(lp);
}

/* worker_stop - no new sessions here; those open say 421. */
static void worker_stop(struct mtad_loop *lp, bool queue_failed)
{
	if (queue_failed)
		lp->smtp.queue_failed = true;
	if (lp->stopping)
		return;
	lp->stopping = true;
	lp->smtp.stopping = true;
	listen_shutdown_sessions(lp);
	loops_closed(lp);
}

/* worker_wake - the main loop put something in the mailbox. */
static void worker_wake(uv_async_t *async)
{
	struct mtad_loop *lp = async->data;
	struct handoff *list;
	bool stop, failed, pause;

	uv_mutex_lock(&lp->lock);
	list = lp->inbox;
	lp->inbox = NULL;
	lp->inbox_tail = &lp->inbox;
	stop = lp->ask_stop;
	failed = lp->ask_queue_failed;
	pause = lp->ask_pause;
	lp->ask_pause = false;
	uv_mutex_unlock(&lp->lock);
	if (pause) {
		/* The main loop reloads between these two waits. */
		uv_barrier_wait(&lp->d->reload_barrier);
		uv_barrier_wait(&lp->d->reload_barrier);
	}
	while (list != NULL) {
		struct handoff *h = list;

		list = h->next;
		listen_adopt(lp, h);	/* frees h */
	}
	if (stop || failed)
		worker_stop(lp, failed);
}

/* worker_main - the worker thread: its loop until it has closed down. */
static void worker_main(void *arg)
{
	struct mtad_loop *lp = arg;
	char name[16];

	/* `top -H` and /proc/PID/task/N/comm show which thread is which loop. */
	snprintf(name, sizeof(name), "mtad-loop%u", lp->index);
	(void)pthread_setname_np(pthread_self(), name);	/* a name is only a help */
	(void)uv_run(lp->loop, UV_RUN_DEFAULT);
}

/* ---- the main loop's side ---- */

/* main_wake_cb - a worker's connection closed: accepting or a stop may go on. */
static void main_wake_cb(uv_async_t *async)
{
	listen_conn_gone(async->data);
}

/* verifier_verify / verifier_cancel - deliver/verify.c as the session sees it (smtp.h). */
static int verifier_verify(void *ctx, const char *addr, smtp_rcpt_verified_cb cb, void *arg,
			   void **wait, char *text, size_t textlen)
{
	struct deliver_verify_wait *w = NULL;
	int code = deliver_verify_rcpt(ctx, addr, cb, arg, &w, text, textlen);

	*wait = w;
	return code;
}

static void verifier_cancel(void *wait)
{
	deliver_verify_cancel(wait);
}

/* verifier_open - the loop's recipient verifier, handed to its server. */
static int verifier_open(struct daemon *d, struct mtad_loop *lp, struct mtad_dns *dns)
{
	if (!(lp->verify = deliver_verify_new(lp->loop, &d->cfg, dns)))
		return -1;
	lp->smtp.verifier = (struct smtp_rcpt_verifier){
		.ctx = lp->verify, .verify = verifier_verify, .cancel = verifier_cancel,
	};
	return 0;
}

/* worker_open - a worker's loop, mailbox, resolver, queue port and server. */
static int worker_open(struct daemon *d, struct mtad_loop *lp, char *err, size_t errlen)
{
	struct smtp_server_deps deps = {
		.queue = d->queue, .shared = &d->shared, .auth = d->auth,
		.lane = lp->index, .lanes = d->nloops,
	};

	lp->loop = &lp->own;
	if (uv_loop_init(&lp->own) != 0)
		goto fail;
	lp->own_open = true;
	if (uv_mutex_init(&lp->lock) != 0)
		goto fail;
	lp->lock_open = true;
	lp->inbox_tail = &lp->inbox;
	if (uv_async_init(lp->loop, &lp->wake, worker_wake) != 0)
		goto fail;
	lp->wake.data = lp;
	lp->wake_open = true;
	if (strcmp(d->cfg.dns_servers, "none") != 0 &&
	    !(lp->dns = mtad_dns_new(lp->loop, d->cfg.dns_servers, d->cfg.dns_timeout * 1000, 2,
				     err, errlen)))
		return -1;
	if (!(lp->port = queue_port_new(d->queue, lp->loop)))
		goto fail;
	deps.port = lp->port;
	deps.dns = lp->dns;
	if (smtp_server_init(&lp->smtp, lp->loop, &d->cfg, &deps) != 0)
		goto fail;
	lp->smtp_open = true;
	if (verifier_open(d, lp, lp->dns) != 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "event loop %u: cannot set up (out of memory?)", lp->index);
	return -1;
}

/* main_open - loop 0: the main loop's own server. */
static int main_open(struct daemon *d, struct mtad_loop *lp, char *err, size_t errlen)
{
	struct smtp_server_deps deps = {
		.queue = d->queue, .port = queue_port_main(d->queue), .shared = &d->shared,
		.auth = d->auth, .dns = d->dns, .lane = 0, .lanes = d->nloops,
	};

	lp->loop = d->loop;
	if (smtp_server_init(&lp->smtp, lp->loop, &d->cfg, &deps) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	lp->smtp_open = true;
	if (verifier_open(d, lp, d->dns) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* loops_start - see daemon.h. */
int loops_start(struct daemon *d, char *err, size_t errlen)
{
	unsigned n = loops_count(&d->cfg);

	if (!(d->loops = calloc(n, sizeof(*d->loops)))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	d->nloops = n;
	for (unsigned i = 0; i < n; i++) {
		d->loops[i].d = d;
		d->loops[i].index = i;
	}
	if (main_open(d, &d->loops[0], err, errlen) != 0)
		return -1;
	if (n == 1)
		return 0;
	if (uv_async_init(d->loop, &d->main_wake, main_wake_cb) != 0 ||
	    uv_barrier_init(&d->reload_barrier, n) != 0) {
		snprintf(err, errlen, "cannot set up the event loops");
		return -1;
	}
	d->main_wake.data = d;
	d->main_wake_open = true;
	uv_unref((uv_handle_t *)&d->main_wake);	/* never keeps the main loop alive */
	d->reload_barrier_open = true;
	for (unsigned i = 1; i < n; i++) {
		struct mtad_loop *lp = &d->loops[i];

		if (worker_open(d, lp, err, errlen) != 0)
			return -1;
		if (uv_thread_create(&lp->thread, worker_main, lp) != 0) {
			snprintf(err, errlen, "event loop %u: cannot start its thread", i);
			return -1;
		}
		lp->thread_started = true;
	}
	mtad_log(MTAD_LOG_INFO, "%u event loops for sessions", n);
	return 0;
}

/* loops_pick - see daemon.h. */
struct mtad_loop *loops_pick(struct daemon *d)
{
	struct mtad_loop *lp = &d->loops[d->next_loop];

	d->next_loop = (d->next_loop + 1) % d->nloops;
	return lp;
}

/* loops_hand - see daemon.h. */
bool loops_hand(struct mtad_loop *lp, struct handoff *h)
{
	bool taken;

	uv_mutex_lock(&lp->lock);
	taken = !lp->ask_stop;
	if (taken) {
		h->next = NULL;
		*lp->inbox_tail = h;
		lp->inbox_tail = &h->next;
		(void)uv_async_send(&lp->wake);	/* only fails on a closed handle */
	}
	uv_mutex_unlock(&lp->lock);
	return taken;
}

/* loops_ask - puts a request into every worker's mailbox. */
static void loops_ask(struct daemon *d, bool stop, bool queue_failed, bool pause)
{
	for (unsigned i = 1; i < d->nloops; i++) {
		struct mtad_loop *lp = &d->loops[i];

		if (!lp->thread_started)
			continue;
		uv_mutex_lock(&lp->lock);
		lp->ask_stop |= stop;
		lp->ask_queue_failed |= queue_failed;
		lp->ask_pause |= pause;
		(void)uv_async_send(&lp->wake);
		uv_mutex_unlock(&lp->lock);
	}
}

/* loops_stop - see daemon.h. */
void loops_stop(struct daemon *d, bool queue_failed)
{
	struct mtad_loop *lp0;

	if (d->nloops == 0)
		return;
	lp0 = &d->loops[0];
	if (queue_failed)
		lp0->smtp.queue_failed = true;
	lp0->stopping = true;
	lp0->smtp.stopping = true;
	listen_shutdown_sessions(lp0);
	loops_ask(d, true, queue_failed, false);
}

/* loops_pause - see daemon.h: returns once every worker waits at the barrier. */
void loops_pause(struct daemon *d)
{
	if (!d->reload_barrier_open)
		return;
	loops_ask(d, false, false, true);
	uv_barrier_wait(&d->reload_barrier);
}

/* loops_resume - see daemon.h. */
void loops_resume(struct daemon *d)
{
	if (d->reload_barrier_open)
		uv_barrier_wait(&d->reload_barrier);
}

/* loops_join - see daemon.h. */
void loops_join(struct daemon *d)
{
	for (unsigned i = 1; i < d->nloops; i++) {
		struct mtad_loop *lp = &d->loops[i];

		if (!lp->thread_started)
			continue;
		if (uv_thread_join(&lp->thread) != 0)
			mtad_log(MTAD_LOG_ERROR, "cannot join event loop %u", i);
		lp->thread_started = false;
	}
}

/* worker_free - a worker whose thread has ended (or never started). */
static void worker_free(struct mtad_loop *lp)
{
	struct handoff *h, *next;

	if (lp->own_open) {
		/* A worker that never ran still has its handles: close them here. */
		worker_close(lp);
		(void)uv_run(&lp->own, UV_RUN_DEFAULT);
	}
	for (h = lp->inbox; h; h = next) {
		next = h->next;
		(void)close(h->fd);
		listen_release(lp->d, h->ip);
		free(h);
	}
	if (lp->smtp_open)
		smtp_server_fini(&lp->smtp);
	if (lp->own_open && uv_loop_close(&lp->own) != 0)
		mtad_log(MTAD_LOG_WARNING, "event loop %u still had handles at exit", lp->index);
	if (lp->lock_open)
		uv_mutex_destroy(&lp->lock);
}

/* loops_free - see daemon.h. */
void loops_free(struct daemon *d)
{
	if (d->loops == NULL)
		return;
	for (unsigned i = 1; i < d->nloops; i++)
		worker_free(&d->loops[i]);
	/* Loop 0's probes: after the main loop stopped, their handles close unrun. */
	deliver_verify_free(d->loops[0].verify);
	d->loops[0].verify = NULL;
	if (d->loops[0].smtp_open)
		smtp_server_fini(&d->loops[0].smtp);
	if (d->main_wake_open) {
		uv_close((uv_handle_t *)&d->main_wake, NULL);
		d->main_wake_open = false;
	}
	if (d->reload_barrier_open) {
		uv_barrier_destroy(&d->reload_barrier);
		d->reload_barrier_open = false;
	}
	free(d->loops);
	d->loops = NULL;
	d->nloops = 0;
}
