/*
 * deliver.c - the queue runner: picks up due messages, groups each one's
 * recipients by where their mail goes (route, relayhost, or MX: mx.c),
 * resolves every group's next hop, merges the groups whose destination
 * key is the same (domains served by the same MX hosts: one transaction,
 * several domains' recipients), hands each group to the SMTP client
 * (group.c), and has the outcome recorded (outcome.c): sent, deferred
 * with an exponential backoff, or failed with a bounce (RFC 3464) to the
 * sender. This file is the loop: the scan every second, the concurrency
 * limits, the body reads' deadline (smtp_queue_read_timeout), start and
 * stop.
 *
 * Every state change is a queue transaction (queue_update_async), so a
 * crash at any moment can cause a message to be delivered twice, never
 * zero times. The runner never blocks: the queue work runs on the writer
 * thread, DNS on c-ares, SMTP on libuv. It must never send mail anywhere
 * that the configuration and DNS did not name, and never bounces a
 * bounce (null sender).
 *
 * RFC 5321 §4.5.4 (retry), §5.1 (MX, then A/AAAA), RFC 7505 (Null MX),
 * RFC 3464 (DSN).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "deliver/deliver_int.h"

#define SCAN_INTERVAL_MS 1000

/* ---- routes ---- */

/* deliver_routes - parses the configured routes (already checked by the config parser). */
static void deliver_routes(struct deliver *d)
{
	char err[256];

	d->nroutes = 0;
	for (size_t i = 0; i < d->cfg->nroutes; i++)
		if (smtp_route_parse(d->cfg->routes[i], false, &d->routes[d->nroutes], err,
				     sizeof(err)) == 0)
			d->nroutes++;
	d->has_relayhost = d->cfg->relayhost[0] &&
			   smtp_route_parse(d->cfg->relayhost, true, &d->relayhost, err,
					    sizeof(err)) == 0;
}

/* rcpt_domain - the part after the last @ ("" for a bare postmaster). */
static const char *rcpt_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : "";
}

/* ---- one message ---- */

/* attempt_groups - pending recipients grouped by next hop (route or domain). */
static int attempt_groups(struct attempt *a)
{
	struct deliver *d = a->d;

	a->groups = calloc(a->env.nrcpt, sizeof(*a->groups));
	if (!a->groups)
		return -1;
	for (size_t i = 0; i < a->env.nrcpt; i++) {
		char alabel[MTAD_DOMAIN_ASCII_MAX + 2];
		const char *dom = rcpt_domain(a->env.rcpt[i].addr);
		const struct smtp_route *r;
		struct group *g = NULL;

		if (a->env.rcpt[i].state != QUEUE_RCPT_PENDING)
			continue;
		if (dom[0] == '\0')
			dom = d->cfg->hostname;	/* "postmaster" */
		/* Routes, MX lookups and connection sharing see the A-label form
		 * (RFC 5890): an SMTPUTF8 recipient's U-label domain is a name
		 * DNS knows only that way. The address itself goes out as it is. */
		if (mtad_domain_to_ascii(dom, strlen(dom), alabel, sizeof(alabel)) > 0)
			dom = alabel;
		r = smtp_route_lookup(d->routes, d->nroutes, d->has_relayhost ? &d->relayhost : NULL,
				      dom);
		for (size_t k = 0; k < a->ngroups && !g; k++)
			if (a->groups[k].route == r && (r || strcasecmp(a->groups[k].domain, dom) == 0))
				g = &a->groups[k];
		if (!g) {
			g = &a->groups[a->ngroups++];
			g->att = a;
			g->route = r;
			snprintf(g->domain, sizeof(g->domain), "%s", dom);
			g->rcpt = calloc(a->env.nrcpt, sizeof(*g->rcpt));
			g->rcpt_addrs = calloc(a->env.nrcpt, sizeof(*g->rcpt_addrs));
			g->rcpt_notify = calloc(a->env.nrcpt, sizeof(*g->rcpt_notify));
			g->rcpt_dsn_orcpt = calloc(a->env.nrcpt, sizeof(*g->rcpt_dsn_orcpt));
			g->rcpt_orig = calloc(a->env.nrcpt, sizeof(*g->rcpt_orig));
			if (!g->rcpt || !g->rcpt_addrs || !g->rcpt_notify || !g->rcpt_dsn_orcpt ||
			    !g->rcpt_orig)
				return -1;
		}
		g->rcpt_addrs[g->nrcpt] = a->env.rcpt[i].addr;
		g->rcpt[g->nrcpt++] = i;
	}
	return 0;
}

/*
 * attempt_merge - groups whose destination has the same key go as one:
 * the later group's recipients join the earlier one (same hosts, port,
 * protocol and TLS policy), so one MAIL carries RCPTs of several
 * domains. The arrays of every group have room for all the message's
 * recipients.
 */
static void attempt_merge(struct attempt *a)
{
	for (size_t i = 0; i < a->ngroups; i++) {
		struct group *g = &a->groups[i];

		if (!g->resolved || g->nrcpt == 0 || g->key == NULL)
			continue;
		for (size_t j = i + 1; j < a->ngroups; j++) {
			struct group *o = &a->groups[j];

			if (!o->resolved || o->nrcpt == 0 || o->key == NULL ||
			    strcmp(o->key, g->key) != 0)
				continue;
			for (size_t k = 0; k < o->nrcpt; k++) {
				g->rcpt_addrs[g->nrcpt] = o->rcpt_addrs[k];
				g->rcpt[g->nrcpt++] = o->rcpt[k];
			}
			o->nrcpt = 0;
		}
	}
	a->merged = true;
}

/* group_log_svc - its lines go under mtad/lmtp or mtad/smtp, as Postfix's two clients. */
static enum mtad_log_service group_log_svc(const struct group *g)
{
	return g->route && g->route->lmtp ? MTAD_SVC_LMTP : MTAD_SVC_SMTP;
}

/*
 * attempt_resolve - the next hop of every group, one after the other
 * (mx.c; at most one DNS lookup in flight per message). Returns true
 * when all are known, false when a lookup answers later
 * (attempt_resolved then goes on).
 */
static bool attempt_resolve(struct attempt *a)
{
	while (a->nresolved < a->ngroups) {
		struct group *g = &a->groups[a->nresolved++];

		g->resolving = true;
		g->t_resolve = deliver_now();
		a->t_group_start = g->t_resolve;	/* a decision now: c = its lookup */
		a->t_group_ready = 0;
		a->log_svc = group_log_svc(g);
		a->in_resolve = true;
		a->resolved_now = false;
		group_start(g);
		a->in_resolve = false;
		if (!a->resolved_now)
			return false;
	}
	return true;
}

/* attempt_resolved - a group's next hop is known (or it was decided): the attempt goes on. */
void attempt_resolved(struct group *g)
{
	struct attempt *a = g->att;

	g->resolve_secs = deliver_now() - g->t_resolve;
	if (a->in_resolve) {
		a->resolved_now = true;	/* attempt_resolve's loop goes on */
		return;
	}
	attempt_next_group(a);
}

/* attempt_next_group - every next hop first; then one destination after the other; then the outcome. */
void attempt_next_group(struct attempt *a)
{
	struct group *g;

	if (a->d->stopping) {
		attempt_finish(a);
		return;
	}
	if (!attempt_resolve(a))
		return;
	if (!a->merged)
		attempt_merge(a);
	for (;;) {
		while (a->current < a->ngroups &&
		       (!a->groups[a->current].resolved || a->groups[a->current].nrcpt == 0))
			a->current++;
		if (a->current >= a->ngroups) {
			attempt_finish(a);
			return;
		}
		g = &a->groups[a->current++];
		/* delays=c is this group's own lookup and connection setup. */
		a->t_group_start = deliver_now() - g->resolve_secs;
		a->t_group_ready = 0;
		a->log_svc = group_log_svc(g);
		if (!a->damaged)
			break;
		/* Found by an earlier group: no more sending. */
		group_decide(g, 451, "4.3.0", "the queued body is damaged; message held");
	}
	group_connect_next(g);
}

/* attempt_free - everything one message's attempt took. */
void attempt_free(struct attempt *a)
{
	for (size_t i = 0; i < a->ngroups; i++) {
		struct group *g = &a->groups[i];

		if (g->query)
			mtad_dns_cancel(g->query);
		if (g->chunk)
			g->chunk->g = NULL;	/* chunk_arrived frees it */
		if (g->waiting)
			dest_unwait(a->d, g);
		if (g->dest)
			g->dest->conns--;
		free(g->mx);
		queue_body_check_free(g->check);
		if (g->client)
			smtp_client_close(g->client);
		free(g->rcpt);
		free(g->rcpt_addrs);
		free(g->key);
		free(g->rcpt_notify);
		free(g->rcpt_dsn_orcpt);
		free(g->rcpt_orig);
	}
	free(a->groups);
	free(a->decided);
	free(a->reply);
	free(a->dsn);
	free(a->relay);
	free(a->hop);
	queue_envelope_free(&a->env);
	free(a);
}

/* attempt_unlink - off the active list. */
void attempt_unlink(struct attempt *a)
{
	struct deliver *d = a->d;

	for (struct attempt **pp = &d->active; *pp; pp = &(*pp)->next)
		if (*pp == a) {
			*pp = a->next;
			d->nactive--;
			d->active_changed = true;
			return;
		}
}

/* attempt_start - one due message. */
static void attempt_start(struct deliver *d, struct queue_envelope *env)
{
	struct attempt *a = calloc(1, sizeof(*a));

	if (!a)
		return;
	a->d = d;
	/* The scan's envelope moves into the attempt (queue.h allows it). */
	a->env = *env;
	memset(env, 0, sizeof(*env));
	env = &a->env;
	if (!(a->decided = calloc(env->nrcpt, sizeof(*a->decided))) ||
	    !(a->reply = calloc(env->nrcpt, sizeof(*a->reply))) ||
	    !(a->dsn = calloc(env->nrcpt, sizeof(*a->dsn))) ||
	    !(a->relay = calloc(env->nrcpt, sizeof(*a->relay))) ||
	    !(a->hop = calloc(env->nrcpt ? env->nrcpt : 1, sizeof(*a->hop))) ||
	    /* mtaq expire: no group, so no try; attempt_finish bounces it. */
	    (!(env->flags & QUEUE_FLAG_EXPIRE) && attempt_groups(a) != 0)) {
		attempt_free(a);
		return;
	}
	a->started = time(NULL);
	a->t_active = deliver_now();
	a->t_group_start = a->t_active;	/* expiry without a group: b = 0 */
	a->log_svc = MTAD_SVC_SMTP;
	/* Postfix's qmgr line: the message enters delivery (each try). */
	mtad_log_svc(MTAD_SVC_QMGR, MTAD_LOG_INFO, "%s: from=<%s>, size=%llu, nrcpt=%zu "
		     "(queue active)", env->qid, env->sender, (unsigned long long)env->size,
		     env->nrcpt);
	a->next = d->active;
	d->active = a;
	d->nactive++;
	d->active_changed = true;
	attempt_next_group(a);
}

/* in_flight - a message already being delivered (the scan may see it again). */
static bool in_flight(const struct deliver *d, const char *qid)
{
	for (const struct attempt *a = d->active; a; a = a->next)
		if (strcmp(a->env.qid, qid) == 0)
			return true;
	return false;
}

/* due_arrived - the scan's result. */
static void due_arrived(void *arg, int status, struct queue_envelope *envs, size_t n)
{
	struct deliver *d = arg;
	size_t asked = d->asked;

	d->scanning = false;
	if (status != 0 || d->stopping)
		return;
	d->more_due = n >= asked;
	for (size_t i = 0; i < n && d->nactive < d->cfg->delivery_concurrency; i++)
		if (!in_flight(d, envs[i].qid))
			attempt_start(d, &envs[i]);
}

/* deliver_close_idle - kept connections past IDLE_SECONDS (all of them when stopping). */
static void deliver_close_idle(struct deliver *d, bool all)
{
	int64_t now = time(NULL);

	for (size_t i = 0; i < d->ndests; i++) {
		struct dest *dest = &d->dests[i];

		if (!dest->idle || (!all && now - dest->idle_since < IDLE_SECONDS))
			continue;
		smtp_client_close(dest->idle);
		dest->idle = NULL;
		dest->conns--;
	}
}

/*
 * deliver_scan - asks the queue for up to room due messages. In-flight
 * messages are still due until their attempt is recorded; the scan
 * skips them by queue id rather than decoding them again (under a
 * backlog it runs after every attempt), and the cooling ones too.
 */
static void deliver_scan(struct deliver *d, unsigned room)
{
	char (*skip)[QUEUE_ID_LEN + 1] = NULL;
	size_t nskip = 0;
	int64_t now = time(NULL);

	if (!(skip = calloc(d->nactive + MAX_COOLING, sizeof(*skip))))
		return;		/* the next tick tries again */
	for (const struct attempt *a = d->active; a && nskip < d->nactive; a = a->next)
		memcpy(skip[nskip++], a->env.qid, QUEUE_ID_LEN + 1);
	for (size_t i = 0; i < MAX_COOLING; i++)
		if (d->cooling[i].until > now)
			memcpy(skip[nskip++], d->cooling[i].qid, QUEUE_ID_LEN + 1);
	d->asked = room;
	d->scanning = queue_due_async(d->queue, time(NULL), room, (const char (*)[QUEUE_ID_LEN + 1])skip,
				      nskip, due_arrived, d) == 0;
	free(skip);
}

/*
 * deliver_publish - the in-flight set to mtaq (queue_active_set), when
 * it changed since the last tick: at most one small file write a second,
 * on the thread pool, never an fsync.
 */
static void deliver_publish(struct deliver *d)
{
	char (*ids)[QUEUE_ID_LEN + 1];
	size_t n = 0;

	if (!d->active_changed || d->published == NULL)
		return;
	if ((ids = calloc(d->nactive ? d->nactive : 1, sizeof(*ids))) == NULL)
		return;		/* the next tick tries again */
	for (const struct attempt *a = d->active; a && n < d->nactive; a = a->next)
		memcpy(ids[n++], a->env.qid, QUEUE_ID_LEN + 1);
	queue_active_set(d->published, (const char (*)[QUEUE_ID_LEN + 1])ids, n);
	free(ids);
	d->active_changed = false;
}

/* deliver_tick - every second: anything due? */
static void deliver_tick(uv_timer_t *t)
{
	struct deliver *d = t->data;
	unsigned room = d->cfg->delivery_concurrency - d->nactive;

	deliver_close_idle(d, false);
	if (d->scanning || d->stopping || d->nactive >= d->cfg->delivery_concurrency)
		return;
	deliver_scan(d, room);
}

/* deliver_second - the timer: the in-flight set once a second, body reads
 * past their deadline, then the scan. */
static void deliver_second(uv_timer_t *t)
{
	deliver_publish(t->data);
	deliver_read_timeouts(t->data);
	deliver_tick(t);
}

/*
 * deliver_more - an attempt ended: when the last scan left due messages
 * behind, look again now rather than at the next tick, so a backlog is
 * worked off at the speed of delivery, not one batch a second.
 */
void deliver_more(struct deliver *d)
{
	if (d->more_due && !d->scanning && !d->stopping)
		deliver_tick(&d->timer);
}

/* deliver_new - see deliver.h. */
struct deliver *deliver_new(uv_loop_t *loop, const struct mtad_config *cfg,
				      struct queue *queue, struct mtad_dns *dns,
				      struct tls_client *tls, struct queue_id_gen *ids)
{
	struct deliver *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	*d = (struct deliver){ .loop = loop, .cfg = cfg, .queue = queue, .dns = dns,
				    .tls = tls, .ids = ids };
	deliver_routes(d);
	d->nown = mtad_own_addresses(cfg, d->own, MAX_OWN);
	/* Without it mtaq shows no message as active; delivery goes on. */
	d->published = queue_active_new(loop, cfg->spool_directory);
	d->active_changed = true;	/* an empty set at start replaces a dead mtad's */
	if (uv_timer_init(loop, &d->timer) != 0) {
		queue_active_free(d->published);
		free(d);
		return NULL;
	}
	d->timer.data = d;
	if (uv_timer_start(&d->timer, deliver_second, SCAN_INTERVAL_MS, SCAN_INTERVAL_MS) != 0) {
		queue_active_free(d->published);
		uv_close((uv_handle_t *)&d->timer, (uv_close_cb)free);
		return NULL;
	}
	return d;
}

/* deliver_reload - routes again after SIGHUP. */
void deliver_reload(struct deliver *d)
{
	deliver_routes(d);
}

/* deliver_closed - the timer is closed: the runner's memory goes. */
static void deliver_closed(uv_handle_t *h)
{
	free(h->data);
}

/*
 * deliver_stop - no new attempts. Attempts in the middle of DNS or
 * SMTP are abandoned: their recipients stay pending in the queue and are
 * tried again after the restart (delivered twice at worst, never lost).
 * Attempts waiting for the queue finish when the queue answers (call
 * queue_writer_stop next, then deliver_free).
 */
void deliver_stop(struct deliver *d)
{
	struct attempt *a, *next;

	d->stopping = true;
	uv_timer_stop(&d->timer);
	deliver_close_idle(d, true);
	for (a = d->active; a; a = next) {
		next = a->next;
		if (!a->queue_wait) {
			attempt_unlink(a);
			attempt_free(a);
		}
	}
}

/* deliver_free - after deliver_stop and queue_writer_stop. */
void deliver_free(struct deliver *d)
{
	while (d->active) {
		struct attempt *a = d->active;

		attempt_unlink(a);
		attempt_free(a);
	}
	queue_active_free(d->published);
	d->published = NULL;
	dest_keys_free(d);
	uv_close((uv_handle_t *)&d->timer, deliver_closed);
}
