/*
 * verify.c - `mtaq verify`: every message in the queue, checked as
 * delivery would check it: the envelope record decodes (its CRC), and
 * the body read back has the length and SHA-256 its envelope recorded
 * at arrival. Messages that delivery found damaged and held are named
 * too, whatever their body reads like now.
 *
 * Must not: change the queue (a damaged message stays for the operator
 * to look at, with mtaq show and delete), or hold a lock while it
 * reports (queue_foreach and queue_body_read copy rows out).
 */
#include <string.h>

#include "queue/queue_impl.h"

struct verify_ctx {
	struct queue *q;
	queue_verify_fn fn;
	void *arg;
	size_t checked, damaged;
};

/* verify_discard - a queue_body_fn that keeps nothing: only the check counts. */
static int verify_discard(void *arg, const void *data, size_t len)
{
	(void)arg;
	(void)data;
	(void)len;
	return 0;
}

/* verify_one - one message of the walk. */
static int verify_one(const char *qid, const struct queue_envelope *env, void *arg)
{
	struct verify_ctx *v = arg;
	char why[300];
	int rc;

	v->checked++;
	if (env == NULL) {
		snprintf(why, sizeof(why), "envelope record: %s", queue_strerror(v->q));
		v->damaged++;
		v->fn(v->arg, qid, why);
		return 0;
	}
	rc = queue_body_read(v->q, qid, verify_discard, NULL);
	if (rc == QUEUE_NOTFOUND) {	/* delivered or deleted during the walk */
		v->checked--;
		return 0;
	}
	if (rc == QUEUE_OK && !(env->flags & QUEUE_FLAG_DAMAGED))
		return 0;
	if (rc == QUEUE_OK)
		snprintf(why, sizeof(why), "held by delivery as damaged; its body reads back "
			 "intact now");
	else
		snprintf(why, sizeof(why), "%s", queue_strerror(v->q));
	v->damaged++;
	v->fn(v->arg, qid, why);
	return rc == QUEUE_ERROR;	/* the database itself failed: stop */
}

/* queue_verify - see queue.h. */
int queue_verify(struct queue *q, queue_verify_fn fn, void *arg, size_t *checked,
		 size_t *damaged)
{
	struct verify_ctx v = { .q = q, .fn = fn, .arg = arg };
	int rc = queue_foreach(q, verify_one, &v);

	*checked = v.checked;
	*damaged = v.damaged;
	return rc;
}
