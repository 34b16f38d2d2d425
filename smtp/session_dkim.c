/*
 * session_dkim.c - DKIM signing of what our own users send (issue 17):
 * mail from an authenticated session, from a trusted client
 * (relay_networks) or from the local submission socket, whose header
 * From: domain has a key (`dkim_sign`), exactly that domain (a key for
 * example.org does not sign a.example.org: the safe default, a parent
 * key is one more dkim_sign line away). Mail merely relayed from outside
 * is never signed.
 *
 * How: the signer (dkim/) sees every byte the session writes to the
 * queue (session_write_body), in the order it is stored, so it signs
 * what leaves: our Received: first (not a signed field), the header
 * with the Date: and Message-ID: a submission got (session_submit.c),
 * then the body, hashed chunk by chunk as it streams; nothing is read
 * twice. The body is already on its way to the queue behind our
 * Received: header when the signature can be computed, so the
 * DKIM-Signature fields cannot go in front inside the stream: they go
 * into the envelope's header_prefix (queue/queue.h), committed with it
 * in the same durable transaction and put in front of the body by every
 * reader (delivery, mtaq show). The body's size and SHA-256 stay those
 * of the stored bytes, so the end-to-end check is unchanged; a 250
 * still means the signed message is on disk.
 *
 * Off the loop: at the end of the message the signer prepares on the
 * loop what each signature covers (cheap: the body is already hashed),
 * and the private-key operations (RSA ~0.4 ms, Ed25519 less) run on
 * libuv's thread pool (uv_queue_work) while the session waits in
 * STATE_COMMIT, reading nothing further; sign_done hands the fields to
 * session_commit. The job holds its own reference to the key set, so a
 * SIGHUP that replaces the keys meanwhile frees the old set only after
 * the job. A session that goes away meanwhile lets go of the job (it is
 * cancelled if not started, else its callback just frees it); mtad's
 * stop waits for it as for the queue (a loop ends only when no work is
 * pending), so a client waiting for its reply gets it.
 *
 * For milter (the other half of issue 17): a filter that changes the
 * header or replaces the body runs before the signature; the session
 * then feeds the final fields and body to dkim_signer_header/_body
 * (dkim/dkim.h) instead of the stream.
 *
 * Must not: sign for a From: domain without a key, or mail that is not
 * our users'; queue a message unsigned when a key exists and signing
 * failed (451 instead, session.c); keep any of the body (dkim/ keeps
 * only the signed fields, bounded); do private-key work on the event
 * loop; free a job a pool thread may be using, or let the pool thread
 * touch the session.
 *
 * Follows: RFC 6376 (DKIM), RFC 8463 (Ed25519), RFC 6409 §8 (a
 * submission server may sign).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dkim/dkim.h"
#include "smtp/session_int.h"

/* session_dkim_start - see session_int.h. */
int session_dkim_start(struct smtp_session *s)
{
	const struct dkim_keys *keys = s->srv->shared->dkim;

	if (dkim_keys_count(keys) == 0)
		return 0;
	/* Our users only: a login, a trusted network, the local socket. */
	if (!s->auth_user[0] && !s->trusted && s->local_uid < 0)
		return 0;
	s->dkim = dkim_signer_new();
	return s->dkim ? 0 : -1;
}

/* session_dkim_unsigned - the header is complete: true when its From:
 * domain has no key (or there is no single one), so the body need not
 * be hashed. A header too large to sign is said. */
static bool session_dkim_unsigned(struct smtp_session *s)
{
	const struct dkim_key *k;
	const char *domain = dkim_signer_from_domain(s->dkim);

	if (domain != NULL)
		return dkim_keys_find(s->srv->shared->dkim, domain, &k, 1) == 0;
	if (dkim_signer_too_big(s->dkim))
		session_log(s, MTAD_LOG_WARNING, "%s: not DKIM-signed: more header than %d bytes "
			    "or %d signed fields", s->qid, DKIM_HEADER_KEEP_MAX, DKIM_HEADER_FIELDS_MAX);
	return true;
}

/* session_dkim_feed - see session_int.h. Once the header is over and
 * its From: has no key, the signer goes: relayed mail of a trusted
 * network for other domains costs no hashing. */
void session_dkim_feed(struct smtp_session *s, const char *data, size_t len)
{
	bool header = s->dkim && !dkim_signer_in_body(s->dkim);

	if (s->dkim == NULL)
		return;
	if (s->queue_body_only) {
		dkim_signer_body(s->dkim, data, len);	/* the header comes at the end */
		return;
	}
	dkim_signer_feed(s->dkim, data, len);
	if (header && dkim_signer_in_body(s->dkim) && session_dkim_unsigned(s))
		session_dkim_stop(s);
}

/* session_dkim_header - see session_int.h. */
void session_dkim_header(struct smtp_session *s, const char *field, size_t len)
{
	if (s->dkim != NULL)
		dkim_signer_header(s->dkim, field, len);
}

/* session_dkim_restart - see session_int.h. The header has not been
 * given yet (queue_body_only), so a new signer is the old one reset. */
int session_dkim_restart(struct smtp_session *s)
{
	if (s->dkim == NULL)
		return 0;
	dkim_signer_free(s->dkim);
	s->dkim = dkim_signer_new();
	return s->dkim ? 0 : -1;
}

/* dkim_log_added - one line per signature, as opendkim logs it. */
static void dkim_log_added(struct smtp_session *s, const struct dkim_sign_job *job)
{
	for (size_t i = 0; i < dkim_sign_job_keys(job); i++)
		mtad_log_svc(MTAD_SVC_CLEANUP, MTAD_LOG_INFO,
			     "%s: DKIM-Signature field added (s=%s, d=%s)", s->qid,
			     dkim_key_selector(dkim_sign_job_key(job, i)),
			     dkim_key_domain(dkim_sign_job_key(job, i)));
}

/* One message's signature on libuv's thread pool. */
struct session_dkim_job {
	uv_work_t req;
	struct smtp_session *s;		/* NULL once the session let go of it */
	struct dkim_sign_job *sign;	/* dkim/: the data to sign and a reference to its keys */
};

/* sign_work - on a pool thread: the private-key operations, nothing else
 * (the job and its refcounted, read-only keys only). */
static void sign_work(uv_work_t *req)
{
	struct session_dkim_job *j = req->data;

	dkim_sign_job_run(j->sign);
}

/* sign_done - on the session's loop: the signature (or its failure) to
 * the session, which commits the message or says 451; a job the session
 * let go of (its client left, the transaction was reset) only frees
 * itself, and with it its reference to the keys. */
static void sign_done(uv_work_t *req, int status)
{
	struct session_dkim_job *j = req->data;
	struct smtp_session *s = j->s;
	char err[256];
	size_t len;

	if (s == NULL) {
		dkim_sign_job_free(j->sign);
		free(j);
		return;
	}
	s->dkim_job = NULL;
	if (status != 0)
		snprintf(err, sizeof(err), "signing job: %s", uv_strerror(status));
	if (status != 0 || dkim_sign_job_result(j->sign, &s->dkim_prefix, &len, err,
						sizeof(err)) != 0) {
		session_log(s, MTAD_LOG_ERROR, "%s: DKIM signing failed: %s", s->qid, err);
		s->dkim_failed = true;
	} else {
		dkim_log_added(s, j->sign);
	}
	dkim_sign_job_free(j->sign);
	free(j);
	session_commit(s);	/* takes the signature, or says 451 */
	if (s->state == STATE_COMMAND)
		session_resume(s, STATE_COMMAND);	/* refused at once: read on */
}

/* session_dkim_sign - see session_int.h. */
bool session_dkim_sign(struct smtp_session *s)
{
	struct session_dkim_job *j;
	struct dkim_sign_job *sign;
	const struct dkim_key *k;
	const char *domain;
	char err[256];
	int rc;

	if (s->dkim == NULL)
		return false;
	domain = dkim_signer_from_domain(s->dkim);
	if (domain == NULL || dkim_keys_find(s->srv->shared->dkim, domain, &k, 1) == 0) {
		/* A message that is all header (no empty line): decided here. */
		(void)session_dkim_unsigned(s);
		session_dkim_stop(s);
		return false;
	}
	/* The job takes its own reference to the keys: a SIGHUP meanwhile
	 * replaces the session's set, not the one being signed with. */
	sign = dkim_signer_prepare(s->dkim, s->srv->shared->dkim, time(NULL),
				   s->srv->cfg->dkim_expire, err, sizeof(err));
	dkim_signer_free(s->dkim);
	s->dkim = NULL;
	if (sign == NULL || (j = calloc(1, sizeof(*j))) == NULL) {
		session_log(s, MTAD_LOG_ERROR, "%s: DKIM signing failed: %s", s->qid,
			    sign ? "out of memory" : err);
		dkim_sign_job_free(sign);
		s->dkim_failed = true;
		return false;
	}
	j->req.data = j;
	j->s = s;
	j->sign = sign;
	if ((rc = uv_queue_work(s->srv->loop, &j->req, sign_work, sign_done)) != 0) {
		session_log(s, MTAD_LOG_ERROR, "%s: DKIM signing failed: cannot start the "
			    "signing job: %s", s->qid, uv_strerror(rc));
		dkim_sign_job_free(sign);
		free(j);
		s->dkim_failed = true;
		return false;
	}
	s->dkim_job = j;
	return true;
}

/* session_dkim_finish - see session_int.h. */
int session_dkim_finish(struct smtp_session *s, char **prefix)
{
	bool failed = s->dkim_failed;

	*prefix = failed ? NULL : s->dkim_prefix;
	if (!failed)
		s->dkim_prefix = NULL;	/* the caller's now */
	session_dkim_stop(s);
	return failed ? -1 : 0;
}

/* session_dkim_detach - see session_int.h. */
bool session_dkim_detach(struct smtp_session *s)
{
	bool running = s->dkim_job != NULL;

	session_dkim_stop(s);
	return running;
}

/* session_dkim_stop - see session_int.h. */
void session_dkim_stop(struct smtp_session *s)
{
	if (s->dkim_job != NULL) {
		/* Not freed here: a pool thread may be signing with it. A
		 * job not yet started is cancelled (its callback comes with
		 * UV_ECANCELED); either way sign_done frees it. */
		s->dkim_job->s = NULL;
		(void)uv_cancel((uv_req_t *)&s->dkim_job->req);
		s->dkim_job = NULL;
	}
	dkim_signer_free(s->dkim);
	s->dkim = NULL;
	free(s->dkim_prefix);
	s->dkim_prefix = NULL;
	s->dkim_failed = false;
}
