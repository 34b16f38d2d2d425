/*
 * outcome.c - what one attempt at a message decided: each recipient's
 * verdict and its Postfix-style log line, expiry after
 * max_queue_lifetime, the next try (exponential backoff), a bounce
 * (RFC 3464) to the sender, postmaster or nobody, a damaged body held,
 * and the one queue transaction that records it all; the cool ring for
 * messages whose outcome the queue could not record.
 *
 * Must not: bounce a bounce to its null sender, or a failed double
 * bounce to anyone; quote in a bounce another header section than the
 * one delivery sends (the envelope's header_prefix in front of the
 * stored bytes: smtp_dsn_headers); record half an outcome (the envelope and its bounce
 * go in one queue_update_async); delete a message whose body is damaged.
 *
 * Follows: RFC 5321 §4.5.4 (retry), RFC 3464 (DSN), RFC 3463 (codes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "deliver/deliver_int.h"

/* ---- recording outcomes ---- */

/* deliver_now - see deliver_int.h. */
double deliver_now(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return (double)time(NULL);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* seconds_text - a duration as Postfix writes delay= and delays=: "0",
 * "0.12", "12.3" or "1234" (fewer decimals as it grows). */
static const char *seconds_text(double v, char *buf, size_t size)
{
	if (v < 0.005)
		snprintf(buf, size, "0");
	else if (v < 10)
		snprintf(buf, size, "%.2f", v);
	else if (v < 100)
		snprintf(buf, size, "%.1f", v);
	else
		snprintf(buf, size, "%.0f", v);
	return buf;
}

/*
 * delays_text - "delay=D, delays=a/b/c/d": in all; before the runner took
 * the message; until its group started; connection setup (DNS, connect,
 * greeting, TLS; until now when no connection came); transmission.
 */
static void delays_text(const struct attempt *a, char *buf, size_t size)
{
	double now = deliver_now();
	double arrival = (double)a->env.arrival + (double)a->env.arrival_usec / 1e6;
	double ready = a->t_group_ready > 0 ? a->t_group_ready : now;
	char t[5][24];

	snprintf(buf, size, "delay=%s, delays=%s/%s/%s/%s",
		 seconds_text(now - arrival, t[0], sizeof(t[0])),
		 seconds_text(a->t_active - arrival, t[1], sizeof(t[1])),
		 seconds_text(a->t_group_start - a->t_active, t[2], sizeof(t[2])),
		 seconds_text(ready - a->t_group_start, t[3], sizeof(t[3])),
		 seconds_text(now - ready, t[4], sizeof(t[4])));
}

/* attempt_decide - one recipient's outcome in this attempt, and its Postfix-style log line. */
void attempt_decide(struct attempt *a, size_t i, int code, const char *enhanced,
		    const char *text, const char *relay)
{
	struct queue_rcpt *r = &a->env.rcpt[i];
	char delays[160];
	const char *status = code >= 200 && code < 300 ? "sent"
			     : code >= 500 ? "bounced" : "deferred";

	if (a->decided[i])
		return;
	a->decided[i] = true;
	snprintf(a->reply[i], sizeof(a->reply[i]), "%d %s %s", code ? code : 451, enhanced, text);
	snprintf(a->dsn[i], sizeof(a->dsn[i]), "%s", enhanced);
	snprintf(a->relay[i], sizeof(a->relay[i]), "%s", relay ? relay : "none");
	r->attempts++;
	free(r->last_reply);
	r->last_reply = strdup(a->reply[i]);
	if (code >= 200 && code < 300)
		r->state = QUEUE_RCPT_SENT;
	else if (code >= 500)
		r->state = QUEUE_RCPT_FAILED;
	/* orig_to: the address an alias expanded (Postfix's field). */
	delays_text(a, delays, sizeof(delays));
	mtad_log_svc(a->log_svc, MTAD_LOG_INFO, "%s: to=<%s>, %s%s%srelay=%s, %s, dsn=%s, "
		     "status=%s (%s)", a->env.qid, r->addr, r->orcpt ? "orig_to=<" : "",
		     r->orcpt ? r->orcpt : "", r->orcpt ? ">, " : "", a->relay[i], delays,
		     enhanced, status, a->reply[i]);
}

/* group_decide - the same outcome for every recipient of a group. */
void group_decide(struct group *g, int code, const char *enhanced, const char *text)
{
	for (size_t i = 0; i < g->nrcpt; i++)
		attempt_decide(g->att, g->rcpt[i], code, enhanced, text, g->relay[0] ? g->relay : NULL);
}

/* deliver_cool - qid waits retry_min before it may be tried again. */
static void deliver_cool(struct deliver *d, const char *qid)
{
	size_t i = d->cooling_next++ % MAX_COOLING;

	memcpy(d->cooling[i].qid, qid, QUEUE_ID_LEN + 1);
	d->cooling[i].until = time(NULL) + d->cfg->retry_min;
}

/* attempt_all_decided - no recipient pending: the queue deleted the message
 * (queue_update_async), unless its body was damaged and it is held. */
static bool attempt_all_decided(const struct attempt *a)
{
	if (a->damaged)
		return false;
	for (size_t i = 0; i < a->env.nrcpt; i++)
		if (a->env.rcpt[i].state == QUEUE_RCPT_PENDING)
			return false;
	return true;
}

/* attempt_updated - the queue has the outcome. */
static void attempt_updated(void *arg, int status, const char *errmsg)
{
	struct attempt *a = arg;
	struct deliver *d = a->d;

	a->queue_wait = false;
	if (status == 0 && attempt_all_decided(a))
		mtad_log_svc(MTAD_SVC_QMGR, MTAD_LOG_INFO, "%s: removed", a->env.qid);
	if (status != 0 && status != QUEUE_NOTFOUND) {
		mtad_log(MTAD_LOG_WARNING, "%s: cannot record the delivery outcome: %s; "
			 "not tried again for %u s", a->env.qid, errmsg ? errmsg : "unknown error",
			 d->cfg->retry_min);
		deliver_cool(d, a->env.qid);
	}
	attempt_unlink(a);
	attempt_free(a);
	deliver_more(d);
}

/* retry_delay - exponential backoff from retry_min, capped at retry_max. */
static int64_t retry_delay(const struct mtad_config *cfg, uint32_t attempts)
{
	int64_t delay = cfg->retry_min;

	for (uint32_t i = 1; i < attempts && delay < cfg->retry_max; i++)
		delay *= 2;
	return delay < cfg->retry_max ? delay : cfg->retry_max;
}

/* expire - a message past max_queue_lifetime, or that mtaq expire marked
 * (Postfix's postsuper -e): what is still pending fails. */
static void expire(struct attempt *a, int64_t now)
{
	bool by_admin = a->env.flags & QUEUE_FLAG_EXPIRE;

	if (!by_admin && now - a->env.arrival < (int64_t)a->d->cfg->max_queue_lifetime)
		return;
	for (size_t i = 0; i < a->env.nrcpt; i++)
		if (a->env.rcpt[i].state == QUEUE_RCPT_PENDING) {
			char why[700];

			if (by_admin)
				snprintf(why, sizeof(why), "message administratively expired (last: %s)",
					 a->env.rcpt[i].last_reply ? a->env.rcpt[i].last_reply : "none");
			else
				snprintf(why, sizeof(why), "message expired after %u days in the queue "
					 "(last: %s)", a->d->cfg->max_queue_lifetime / 86400,
					 a->env.rcpt[i].last_reply ? a->env.rcpt[i].last_reply : "none");
			a->decided[i] = false;
			a->env.rcpt[i].attempts--;	/* attempt_attempt_decide() counts one more */
			attempt_decide(a, i, 550, "5.4.7", why, a->relay[i][0] ? a->relay[i] : NULL);
		}
}

/* bounce_needed - recipients that failed in this attempt, when the sender can get a DSN. */
static size_t bounce_count(const struct attempt *a)
{
	size_t n = 0;

	for (size_t i = 0; i < a->env.nrcpt; i++)
		if (a->decided[i] && a->env.rcpt[i].state == QUEUE_RCPT_FAILED)
			n++;
	return n;
}

struct bounce_ctx {
	struct attempt *a;
};

/*
 * bounce_target - who hears about failed recipients: the sender; for a
 * bounce that failed (null sender) postmaster when double_bounce says
 * so, else nobody; never anyone for a failed double bounce, so a broken
 * postmaster address cannot make mail go round.
 */
static const char *bounce_target(const struct attempt *a, char *buf, size_t size, bool *dbl)
{
	*dbl = false;
	if (a->env.sender[0] != '\0')
		return a->env.sender;
	if (strcmp(a->d->cfg->double_bounce, "postmaster") != 0 ||
	    (a->env.listener && strcmp(a->env.listener, "double-bounce") == 0))
		return NULL;
	*dbl = true;
	snprintf(buf, size, "postmaster@%s", a->d->cfg->hostname);
	return buf;
}

/* attempt_record - the new envelope (and a bounce) to the queue. */
static void attempt_record(struct attempt *a, const char *headers, size_t hlen)
{
	struct queue_new_message bounce_msg;
	struct queue_envelope benv;
	struct queue_rcpt brcpt;
	char helo[MTAD_HOSTNAME_MAX + 1];
	char notify_buf[MTAD_HOSTNAME_MAX + 16];
	const char *notify;
	bool double_bounce;
	char *body = NULL;
	size_t blen = 0, nb = bounce_count(a);
	uint32_t max_attempts = 0;
	int64_t now = time(NULL);

	for (size_t i = 0; i < a->env.nrcpt; i++)
		if (a->env.rcpt[i].attempts > max_attempts)
			max_attempts = a->env.rcpt[i].attempts;
	a->env.next_attempt = now + retry_delay(a->d->cfg, max_attempts);
	memset(&benv, 0, sizeof(benv));
	notify = bounce_target(a, notify_buf, sizeof(notify_buf), &double_bounce);
	if (nb > 0 && !notify) {
		mtad_log_svc(MTAD_SVC_BOUNCE, MTAD_LOG_INFO, "%s: not bouncing a bounce (null sender): %zu recipient(s) "
			 "dropped", a->env.qid, nb);
		nb = 0;
	}
	if (nb > 0) {
		struct smtp_dsn_rcpt *dr = calloc(nb, sizeof(*dr));
		struct smtp_dsn_info info = {
			.hostname = a->d->cfg->hostname, .orig_qid = a->env.qid,
			.orig_sender = notify, .orig_arrival = a->env.arrival, .now = now,
			.rcpt = dr, .headers = headers, .headers_len = hlen,
		};
		struct timeval tv;

		for (size_t i = 0, k = 0; dr && i < a->env.nrcpt; i++)
			if (a->decided[i] && a->env.rcpt[i].state == QUEUE_RCPT_FAILED)
				dr[k++] = (struct smtp_dsn_rcpt){
					.addr = a->env.rcpt[i].addr, .action = "failed",
					.status = a->dsn[i], .remote_mta = NULL,
					.diagnostic = a->reply[i] };
		info.nrcpt = dr ? nb : 0;
		body = dr ? smtp_dsn_build(&info, &blen) : NULL;
		free(dr);
		gettimeofday(&tv, NULL);
		benv.version = QUEUE_RECORD_VERSION;
		queue_id_next(a->d->ids, tv.tv_sec, (int32_t)tv.tv_usec, benv.qid);
		benv.arrival = tv.tv_sec;
		benv.arrival_usec = (int32_t)tv.tv_usec;
		benv.sender = "";
		brcpt = (struct queue_rcpt){ .addr = (char *)notify, .state = QUEUE_RCPT_PENDING };
		benv.rcpt = &brcpt;
		benv.nrcpt = 1;
		benv.client_ip = "127.0.0.1";
		benv.client_name = "localhost";
		snprintf(helo, sizeof(helo), "%s", a->d->cfg->hostname);
		benv.helo = helo;
		benv.listener = double_bounce ? "double-bounce" : "bounce";
		benv.protocol = "local";
		benv.size = blen;
		bounce_msg = (struct queue_new_message){ &benv, body, blen };
		if (body)
			mtad_log_svc(MTAD_SVC_BOUNCE, MTAD_LOG_INFO, "%s: sender non-delivery "
				     "notification: %s", a->env.qid, benv.qid);
	}
	a->queue_wait = true;
	if (queue_update_async(a->d->queue, &a->env, body ? &bounce_msg : NULL,
			       attempt_updated, a) != 0) {
		mtad_log(MTAD_LOG_WARNING, "%s: cannot record the delivery outcome", a->env.qid);
		attempt_unlink(a);
		attempt_free(a);
	}
	free(body);
}

/* headers_arrived - the original header section, for the DSN: the
 * envelope's header_prefix (DKIM-Signature fields, a milter's header)
 * and chunk 0's header part, as delivery sends them. */
static void headers_arrived(void *arg, int status, const void *data, size_t len, bool last)
{
	struct attempt *a = arg;
	char *headers = NULL;
	size_t hlen = 0;

	(void)last;
	a->queue_wait = false;
	if (a->d->stopping) {
		/* Not recorded: the recipients stay pending and are tried after the restart. */
		attempt_unlink(a);
		attempt_free(a);
		return;
	}
	if (status == 0 && data)
		headers = smtp_dsn_headers(a->env.header_prefix, data, len, &hlen);
	/* Out of memory: the bounce goes without the headers, as when unreadable. */
	attempt_record(a, headers, hlen);
	free(headers);
}

/*
 * attempt_hold_damaged - a body that failed its check is never sent and
 * never deleted by mtad: the message is held for the operator (mtaq
 * verify, show, delete) with one line saying why.
 */
static void attempt_hold_damaged(struct attempt *a)
{
	a->env.flags |= QUEUE_FLAG_HELD | QUEUE_FLAG_DAMAGED;
	mtad_log(MTAD_LOG_ERROR, "%s: held: the queued body is damaged (%s); it was not "
		 "delivered; see mtaq verify", a->env.qid, a->damage);
}

/* attempt_finish - the outcome of every group is known: retry, done, bounce. */
void attempt_finish(struct attempt *a)
{
	if (a->damaged)
		attempt_hold_damaged(a);
	else
		expire(a, time(NULL));
	if (bounce_count(a) > 0 &&
	    queue_chunk_async(a->d->queue, a->env.qid, 0, headers_arrived, a) == 0) {
		a->queue_wait = true;
		return;
	}
	attempt_record(a, NULL, 0);
}
