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
 * For milter (the other half of issue 17): a filter that changes the
 * header or replaces the body runs before the signature; the session
 * then feeds the final fields and body to dkim_signer_header/_body
 * (dkim/dkim.h) instead of the stream.
 *
 * Must not: sign for a From: domain without a key, or mail that is not
 * our users'; queue a message unsigned when a key exists and signing
 * failed (451 instead, session.c); keep any of the body (dkim/ keeps
 * only the signed fields, bounded).
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
static void dkim_log_added(struct smtp_session *s, const struct dkim_key *const *k, size_t n)
{
	for (size_t i = 0; i < n; i++)
		mtad_log_svc(MTAD_SVC_CLEANUP, MTAD_LOG_INFO,
			     "%s: DKIM-Signature field added (s=%s, d=%s)", s->qid,
			     dkim_key_selector(k[i]), dkim_key_domain(k[i]));
}

/* session_dkim_finish - see session_int.h. */
int session_dkim_finish(struct smtp_session *s, char **prefix)
{
	const struct dkim_key *k[DKIM_MAX_KEYS];
	const char *domain;
	char err[256];
	size_t n, len;

	*prefix = NULL;
	if (s->dkim == NULL)
		return 0;
	domain = dkim_signer_from_domain(s->dkim);
	n = domain ? dkim_keys_find(s->srv->shared->dkim, domain, k, DKIM_MAX_KEYS) : 0;
	if (n == 0) {
		/* A message that is all header (no empty line): decided here. */
		(void)session_dkim_unsigned(s);
		session_dkim_stop(s);
		return 0;
	}
	if (dkim_signer_finish(s->dkim, k, n, time(NULL), s->srv->cfg->dkim_expire, prefix, &len,
			       err, sizeof(err)) < 0) {
		session_log(s, MTAD_LOG_ERROR, "%s: DKIM signing failed: %s", s->qid, err);
		session_dkim_stop(s);
		return -1;
	}
	dkim_log_added(s, k, n);
	session_dkim_stop(s);
	return 0;
}

/* session_dkim_stop - see session_int.h. */
void session_dkim_stop(struct smtp_session *s)
{
	dkim_signer_free(s->dkim);
	s->dkim = NULL;
}
