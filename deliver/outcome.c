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
 * Which notices (RFC 3461 §5, §6; Postfix's bounce, defer and trace):
 * a failure, unless NOTIFY leaves FAILURE out; with NOTIFY=SUCCESS,
 * "delivered" after LMTP, "relayed" after a peer without DSN, nothing
 * after one with DSN (it reports from then on); "delayed" once per
 * message after delay_warning_time (QUEUE_FLAG_DELAY_WARNED), unless
 * NOTIFY leaves DELAY out (no NOTIFY: FAILURE and DELAY); NEVER: none.
 * One DSN per attempt names them all.
 *
 * Follows: RFC 5321 §4.5.4 (retry), RFC 3464 (DSN), RFC 3463 (codes),
 * RFC 3461 §4.3 (RET), §5.2.2 (relayed), §6 (the notices).
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
			a->hop[i] = HOP_NONE;	/* our verdict, not a peer's: no Remote-MTA */
			a->env.rcpt[i].attempts--;	/* attempt_attempt_decide() counts one more */
			attempt_decide(a, i, 550, "5.4.7", why, a->relay[i][0] ? a->relay[i] : NULL);
		}
}

/* attempt_note_hop - see deliver_int.h. */
void attempt_note_hop(struct attempt *a, size_t i, int hop)
{
	a->hop[i] = (unsigned char)hop;
}

/*
 * notify_of - recipient i's NOTIFY (RFC 3461 §4.1), or what Postfix
 * does without one: failures, and delays when delay warnings are on.
 */
static uint32_t notify_of(const struct attempt *a, size_t i)
{
	if (a->env.rcpt[i].notify != 0)
		return a->env.rcpt[i].notify;
	return QUEUE_NOTIFY_FAILURE | (a->d->cfg->delay_warning_time > 0 ? QUEUE_NOTIFY_DELAY : 0);
}

/*
 * delay_due - this attempt sends the message's one delay warning: it is
 * still pending after delay_warning_time and none was sent (Postfix's
 * delay_warning_time; never for a bounce, whose sender is null).
 */
static bool delay_due(const struct attempt *a, int64_t now)
{
	unsigned w = a->d->cfg->delay_warning_time;

	if (w == 0 || (a->env.flags & QUEUE_FLAG_DELAY_WARNED) || a->env.sender[0] == '\0' ||
	    a->damaged || now - a->env.arrival < (int64_t)w)
		return false;
	for (size_t i = 0; i < a->env.nrcpt; i++)
		if (a->env.rcpt[i].state == QUEUE_RCPT_PENDING)
			return true;
	return false;
}

/*
 * notice_action - what recipient i's DSN says after this attempt
 * (RFC 3464 §2.3.3), or NULL for none: "failed", NOTIFY allowing;
 * "delivered" (LMTP) or "relayed" (a peer without DSN) with
 * NOTIFY=SUCCESS, nothing when the peer offers DSN (it takes over,
 * RFC 3461 §5.2.2); "delayed" in the delay warning. A bounce's failures
 * only (it has no NOTIFY; who hears of them is bounce_target's choice).
 */
static const char *notice_action(const struct attempt *a, size_t i, bool warn)
{
	const struct queue_rcpt *r = &a->env.rcpt[i];
	uint32_t notify = notify_of(a, i);

	if (notify & QUEUE_NOTIFY_NEVER)
		return NULL;
	if (a->decided[i] && r->state == QUEUE_RCPT_FAILED)
		return notify & QUEUE_NOTIFY_FAILURE ? "failed" : NULL;
	if (a->env.sender[0] == '\0')
		return NULL;
	if (a->decided[i] && r->state == QUEUE_RCPT_SENT && (notify & QUEUE_NOTIFY_SUCCESS))
		return a->hop[i] == HOP_LMTP ? "delivered" : a->hop[i] == HOP_PLAIN ? "relayed" : NULL;
	if (r->state == QUEUE_RCPT_PENDING && warn && (notify & QUEUE_NOTIFY_DELAY))
		return "delayed";
	return NULL;
}

/* notice_count - recipients this attempt's DSN names; *failed: of them, failures. */
static size_t notice_count(const struct attempt *a, bool warn, size_t *failed)
{
	size_t n = 0;

	*failed = 0;
	for (size_t i = 0; i < a->env.nrcpt; i++) {
		const char *act = notice_action(a, i, warn);

		n += act != NULL;
		*failed += act != NULL && strcmp(act, "failed") == 0;
	}
	return n;
}

/* dropped_count - failures nobody will hear of because NOTIFY said so (for the log). */
static size_t dropped_count(const struct attempt *a)
{
	size_t n = 0;

	for (size_t i = 0; i < a->env.nrcpt; i++)
		if (a->decided[i] && a->env.rcpt[i].state == QUEUE_RCPT_FAILED &&
		    !(notify_of(a, i) & QUEUE_NOTIFY_FAILURE))
			n++;
	return n;
}

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

/* ORCPT as given is at most 500 characters (RFC 3461 §4.2): decoded, no more. */
#define NOTICE_ORCPT_MAX 500
/* Postfix's bounce_size_limit: RET=FULL returns a message up to this size whole. */
#define DSN_FULL_MAX 50000

/* The DSN's per-recipient strings that are not in the attempt already. */
struct notice_rcpt {
	char remote[256];		/* Remote-MTA: the host of "host[ip]:port" */
	char orig_type[64];		/* ORCPT's address type */
	char orig[NOTICE_ORCPT_MAX + 1];	/* ORCPT's address, decoded */
};

/* notice_fill - one recipient's report fields. */
static void notice_fill(const struct attempt *a, size_t i, const char *action,
			struct smtp_dsn_rcpt *dr, struct notice_rcpt *nr)
{
	const struct queue_rcpt *r = &a->env.rcpt[i];
	const char *semi = r->dsn_orcpt ? strchr(r->dsn_orcpt, ';') : NULL;

	*dr = (struct smtp_dsn_rcpt){ .addr = r->addr, .action = action };
	if (a->decided[i]) {
		dr->status = a->dsn[i];
		dr->diagnostic = a->reply[i];
	} else {
		dr->status = "4.0.0";
		dr->diagnostic = r->last_reply;
	}
	/* Remote-MTA only for what a peer answered (RFC 3464 §2.3.5). */
	if (a->decided[i] && a->hop[i] != HOP_NONE && strcmp(a->relay[i], "none") != 0) {
		snprintf(nr->remote, sizeof(nr->remote), "%.*s",
			 (int)strcspn(a->relay[i], "["), a->relay[i]);
		dr->remote_mta = nr->remote;
	}
	/* Original-Recipient: ORCPT as given (its xtext decoded), else the address an alias expanded. */
	if (semi && (size_t)(semi - r->dsn_orcpt) < sizeof(nr->orig_type) &&
	    mtad_xtext_decode(semi + 1, strlen(semi + 1), nr->orig, sizeof(nr->orig)) > 0) {
		snprintf(nr->orig_type, sizeof(nr->orig_type), "%.*s", (int)(semi - r->dsn_orcpt),
			 r->dsn_orcpt);
		dr->orig_type = nr->orig_type;
		dr->orig_addr = nr->orig;
	} else if (r->orcpt) {
		dr->orig_addr = r->orcpt;
	}
}

/* notice_successes - recipients of this attempt's DSN that were delivered or relayed. */
static size_t notice_successes(const struct attempt *a)
{
	size_t n = 0;

	for (size_t i = 0; i < a->env.nrcpt; i++) {
		const char *act = notice_action(a, i, false);

		n += act != NULL && strcmp(act, "failed") != 0;
	}
	return n;
}

/*
 * notice_build - the DSN of this attempt (failures, successes and the
 * delay warning together, RFC 3464 allows one report for them all), or
 * NULL. With RET=FULL and a failure the whole message goes back when it
 * is at most DSN_FULL_MAX bytes (Postfix's bounce_size_limit) and chunk
 * 0 holds it all; else its headers (RET=HDRS, no RET, or too big).
 */
static char *notice_build(struct attempt *a, const char *to, bool warn, int64_t now,
			  const char *headers, size_t hlen, size_t *blen)
{
	size_t failed, n = notice_count(a, warn, &failed), k = 0;
	struct smtp_dsn_rcpt *dr = calloc(n ? n : 1, sizeof(*dr));
	struct notice_rcpt *nr = calloc(n ? n : 1, sizeof(*nr));
	struct smtp_dsn_info info = {
		.hostname = a->d->cfg->hostname, .orig_qid = a->env.qid, .orig_sender = to,
		.orig_arrival = a->env.arrival, .now = now, .headers = headers,
		.headers_len = hlen, .envid = a->env.envid,
	};
	char *body = NULL, *whole = NULL;

	if (dr && nr) {
		for (size_t i = 0; i < a->env.nrcpt; i++) {
			const char *act = notice_action(a, i, warn);

			if (act)
				notice_fill(a, i, act, &dr[k], &nr[k]), k++;
		}
		if (failed > 0 && a->env.dsn_ret == QUEUE_RET_FULL && a->chunk0 &&
		    a->chunk0_len == a->env.size) {
			/* The message as delivery sends it: header_prefix (DKIM,
			 * a milter's header) in front of the stored bytes. */
			size_t plen = a->env.header_prefix ? strlen(a->env.header_prefix) : 0;

			if (plen + a->chunk0_len <= DSN_FULL_MAX &&
			    (whole = malloc(plen + a->chunk0_len + 1)) != NULL) {
				memcpy(whole, a->env.header_prefix ? a->env.header_prefix : "", plen);
				memcpy(whole + plen, a->chunk0, a->chunk0_len);
				info.message = whole;
				info.message_len = plen + a->chunk0_len;
			}
		}
		info.rcpt = dr;
		info.nrcpt = k;
		body = smtp_dsn_build(&info, blen);
	}
	free(whole);
	free(dr);
	free(nr);
	return body;
}

/* attempt_record - the new envelope (and a DSN) to the queue. */
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
	size_t blen = 0, failed, nb, dropped = dropped_count(a);
	uint32_t max_attempts = 0;
	int64_t now = time(NULL);
	bool warn = delay_due(a, now);

	nb = notice_count(a, warn, &failed);
	for (size_t i = 0; i < a->env.nrcpt; i++)
		if (a->env.rcpt[i].attempts > max_attempts)
			max_attempts = a->env.rcpt[i].attempts;
	a->env.next_attempt = now + retry_delay(a->d->cfg, max_attempts);
	/* Once per message, whether or not a recipient asked for it. */
	if (warn)
		a->env.flags |= QUEUE_FLAG_DELAY_WARNED;
	memset(&benv, 0, sizeof(benv));
	notify = bounce_target(a, notify_buf, sizeof(notify_buf), &double_bounce);
	if (dropped > 0)
		mtad_log_svc(MTAD_SVC_BOUNCE, MTAD_LOG_INFO, "%s: no non-delivery notification: "
			     "%zu recipient(s) with NOTIFY without FAILURE", a->env.qid, dropped);
	if (nb > 0 && !notify) {
		mtad_log_svc(MTAD_SVC_BOUNCE, MTAD_LOG_INFO, "%s: not bouncing a bounce (null sender): %zu recipient(s) "
			 "dropped", a->env.qid, nb);
		nb = 0;
	}
	if (nb > 0) {
		struct timeval tv;

		body = notice_build(a, notify, warn, now, headers, hlen, &blen);
		a->chunk0 = NULL;	/* the queue's bytes, valid only in its callback */
		gettimeofday(&tv, NULL);
		benv.version = QUEUE_RECORD_VERSION;
		queue_id_next(a->d->ids, tv.tv_sec, (int32_t)tv.tv_usec, benv.qid);
		benv.arrival = tv.tv_sec;
		benv.arrival_usec = (int32_t)tv.tv_usec;
		benv.sender = "";
		/* A UTF-8 sender gets the bounce only over SMTPUTF8 (RFC 6531). */
		if (!mtad_ascii(notify, strlen(notify)))
			benv.flags |= QUEUE_FLAG_SMTPUTF8;
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
		/* Postfix's words: bounce, defer (a delay warning) or trace (success). */
		if (body)
			mtad_log_svc(MTAD_SVC_BOUNCE, MTAD_LOG_INFO, "%s: %s: %s", a->env.qid,
				     failed > 0 ? "sender non-delivery notification"
				     : warn && nb > notice_successes(a) ? "sender delay notification"
				     : "sender delivery status notification", benv.qid);
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
 * chunk0_arrived - the first body chunk, for the DSN: kept in view
 * while headers_arrived builds it (RET=FULL returns all of it when it
 * is the whole message), then forgotten (the queue owns the bytes).
 */
static void chunk0_arrived(void *arg, int status, const void *data, size_t len, bool last)
{
	struct attempt *a = arg;

	/* Only a chunk that is the whole message can be returned whole. */
	a->chunk0 = status == 0 && last ? data : NULL;
	a->chunk0_len = a->chunk0 ? len : 0;
	headers_arrived(arg, status, data, len, last);
	/* headers_arrived may have freed a (a stop): nothing more here. */
}

/* notice_wanted - will this attempt send a DSN (so the headers are read)? */
static bool notice_wanted(const struct attempt *a)
{
	size_t failed;

	return notice_count(a, delay_due(a, time(NULL)), &failed) > 0;
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
	if (notice_wanted(a) &&
	    queue_chunk_async(a->d->queue, a->env.qid, 0, chunk0_arrived, a) == 0) {
		a->queue_wait = true;
		return;
	}
	attempt_record(a, NULL, 0);
}
