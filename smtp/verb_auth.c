/*
 * verb_auth.c - the AUTH command (RFC 4954) in the server session: the
 * checks before an exchange, the 334 round trips, and what a failure
 * costs the client.
 *
 * The SASL work itself (password checks) runs off the loop in auth/;
 * the session waits in STATE_AUTH_WAIT meanwhile. Every failure is
 * answered only after a delay (auth_failure_delay plus jitter) so that
 * guessing is slow, is counted per session (auth_max_failures, then 421)
 * and per client address across sessions (auth_ip_max_failures, then
 * 454 for a while) — never per account, so the real user keeps working
 * from another address. The address limit is asked when each attempt
 * starts, and an attempt holds its place in the count until it ends, so
 * parallel connections cannot overshoot it; auth_ip_exempt networks
 * (a shared NAT) are not counted at all.
 *
 * Never logged: passwords, and the user name of a failed attempt (people
 * type their password into the user field; Postfix logs none either).
 * The failure line keeps the shape fail2ban's filter in INSTALL reads.
 *
 * verbs.c's table calls verb_auth_check and verb_auth; this file calls
 * only session.c's primitives, never verbs.c (see session_int.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smtp/session_int.h"

static void auth_done(void *arg, enum auth_result result, const char *challenge,
		      size_t challenge_len, const char *user, const char *reason);
static void auth_delay_done(struct smtp_session *s);

/* auth_release - the attempt leaves the address limiter's count, once; failed: a failed password check. */
static void auth_release(struct smtp_session *s, bool failed)
{
	if (!s->auth_limited)
		return;
	s->auth_limited = false;
	uv_mutex_lock(&s->srv->shared->lock);
	auth_limiter_end(s->srv->shared->auth_limit, s->client_ip, failed, (int64_t)time(NULL));
	uv_mutex_unlock(&s->srv->shared->lock);
}

/* auth_end - the exchange is over: freed, and out of the count if still in it (not a failure). */
static void auth_end(struct smtp_session *s)
{
	auth_release(s, false);
	if (s->auth_ex) {
		auth_exchange_free(s->auth_ex);
		s->auth_ex = NULL;
	}
}

/* verb_auth_forget - the session ends: an open exchange goes (never while a step runs). */
void verb_auth_forget(struct smtp_session *s)
{
	auth_end(s);
}

/* auth_exempt - the client is in auth_ip_exempt: the address limit does not count it. */
static bool auth_exempt(const struct smtp_session *s)
{
	return mtad_in_networks(s->srv->cfg->auth_ip_exempt, s->srv->cfg->nauth_ip_exempt, s->client_ip);
}

/*
 * auth_admit - the address limit, asked as the attempt starts; true when
 * admitted (then the attempt is counted until auth_release). Refused: 454.
 */
static bool auth_admit(struct smtp_session *s, const char *mech)
{
	struct smtp_shared *sh = s->srv->shared;
	char key[AUTH_LIMITER_KEY_MAX];
	const char *client;
	bool admitted;

	if (auth_exempt(s))
		return true;
	/* One limiter for every loop: a guesser cannot spread its tries. */
	uv_mutex_lock(&sh->lock);
	admitted = auth_limiter_begin(sh->auth_limit, s->client_ip, (int64_t)time(NULL));
	uv_mutex_unlock(&sh->lock);
	if (admitted) {
		s->auth_limited = true;
		return true;
	}
	client = auth_limiter_key(s->client_ip, key, sizeof(key));
	session_log(s, MTAD_LOG_WARNING, "%s: SASL %s refused: too many failures "
		    "from this address (%s)", s->client_label, mech, client ? client : s->client_ip);
	session_reply(s, 454, "4.7.0", "Temporary authentication failure: too many "
		      "failures from your address, try again later");
	return false;
}

/*
 * verb_auth_check - the AUTH row's check step, before any SASL work:
 * true when AUTH may run; false when refused (the reply is given).
 */
bool verb_auth_check(struct smtp_session *s)
{
	if (!s->srv->auth) {
		session_reply(s, 502, "5.5.1", "Error: command not implemented");
	} else if (!s->tls_active && !s->auth_plaintext) {
		session_reply(s, 538, "5.7.11",
			      "Encryption required for requested authentication mechanism");
	} else if (!s->esmtp) {
		session_reply(s, 503, "5.5.1", "Error: send EHLO first");
	} else if (s->auth_user[0]) {
		session_reply(s, 503, "5.5.1", "Error: already authenticated");
	} else if (s->in_transaction) {
		session_reply(s, 503, "5.5.1", "Error: MAIL transaction in progress");
	} else {
		return true;
	}
	return false;
}

/* ---- auth_block: logins refused whatever the password ---- */

/* auth_blocked - is name (len bytes, as typed or as SASL gave it) in auth_block? */
static bool auth_blocked(const struct smtp_session *s, const char *name, size_t len)
{
	const char *list = s->srv->shared->auth_block;

	return list != NULL && len > 0 && policy_login_listed(list, name, len);
}

/* plain_user - PLAIN's authcid (RFC 4616: authzid NUL authcid NUL passwd); false when malformed. */
static bool plain_user(const char *d, size_t n, const char **user, size_t *len)
{
	const char *nul = memchr(d, '\0', n), *end;

	if (!nul)
		return false;
	*user = nul + 1;
	end = memchr(*user, '\0', (size_t)(d + n - *user));
	if (!end)
		return false;
	*len = (size_t)(end - *user);
	return true;
}

/*
 * typed_user_blocked - the user name the client typed, where the
 * mechanism shows it before any password check (PLAIN's response,
 * LOGIN's first one), is in auth_block.
 */
static bool typed_user_blocked(struct smtp_session *s, const char *mech, const char *d, size_t n)
{
	const char *user = d;
	size_t len = n;

	if (strcmp(mech, "PLAIN") == 0 && !plain_user(d, n, &user, &len))
		return false;
	return auth_blocked(s, user, len);
}

/*
 * auth_refuse_blocked - 535 5.7.8 as for a wrong password, so the
 * client learns nothing; the log names the blocked login (an admin's
 * list, never a typed password).
 */
static void auth_refuse_blocked(struct smtp_session *s, const char *mech, const char *name,
				size_t len)
{
	session_log(s, MTAD_LOG_WARNING, "%s: SASL %s login refused: %.*s is in auth_block",
		    s->client_label, mech, (int)(len > 255 ? 255 : len), name);
	auth_end(s);
	s->auth_expect_user = false;
	s->auth_failures++;
	session_reply(s, 535, "5.7.8", "Authentication credentials invalid");
	if (s->auth_failures >= s->srv->cfg->auth_max_failures) {
		session_reply(s, 421, "4.7.0", "%s Error: too many failed authentication attempts",
			      s->srv->cfg->hostname);
		session_close(s);
	}
}

/* auth_decode - a base64 response; "=" is the empty response (RFC 4954 §4). */
static int auth_decode(const char *b64, size_t len, char *out, size_t outsize, size_t *outlen)
{
	if (len == 1 && b64[0] == '=') {
		*outlen = 0;
		return 0;
	}
	return auth_base64_decode(b64, len, out, outsize, outlen);
}

/* auth_wait - a SASL step is running: stop reading until it is back. */
static void auth_wait(struct smtp_session *s)
{
	s->state = STATE_AUTH_WAIT;
	s->io.pause(s->io.ctx, true);
	uv_timer_stop(&s->timer);
}

/* verb_auth - AUTH mechanism [initial-response], after verb_auth_check. */
bool verb_auth(struct smtp_session *s, const struct smtp_command *cmd)
{
	char mech[sizeof(s->auth_mech)];
	char decoded[AUTH_LINE_MAX];
	size_t mechlen, rest, declen = 0;
	const char *resp;

	mechlen = 0;
	while (cmd->arg && mechlen < cmd->arglen && cmd->arg[mechlen] != ' ')
		mechlen++;
	if (mechlen == 0) {
		session_reply(s, 501, "5.5.4", "Syntax: AUTH mechanism");
		return false;
	}
	if (mechlen >= sizeof(mech) ||
	    (memcpy(mech, cmd->arg, mechlen), mech[mechlen] = '\0',
	     !auth_server_offers(s->srv->auth, mech))) {
		session_reply(s, 504, "5.5.4", "Unrecognized authentication type");
		return false;
	}
	resp = cmd->arg + mechlen;
	rest = cmd->arglen - mechlen;
	while (rest > 0 && *resp == ' ') {
		resp++;
		rest--;
	}
	if (rest > 0 && auth_decode(resp, rest, decoded, sizeof(decoded), &declen) != 0) {
		session_reply(s, 501, "5.5.2", "Cannot decode response");
		return false;
	}
	for (char *p = mech; *p; p++)
		*p = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
	if (rest > 0 && typed_user_blocked(s, mech, decoded, declen)) {
		const char *user = decoded;
		size_t ulen = declen;

		if (strcmp(mech, "PLAIN") == 0)
			(void)plain_user(decoded, declen, &user, &ulen);
		auth_refuse_blocked(s, mech, user, ulen);	/* no password check */
		return false;
	}
	if (!auth_admit(s, mech))
		return false;
	s->auth_expect_user = strcmp(mech, "LOGIN") == 0 && rest == 0;
	snprintf(s->auth_mech, sizeof(s->auth_mech), "%s", mech);
	s->auth_ex = auth_exchange_new(s->srv->auth, s->srv->loop, s->client_ip);
	if (!s->auth_ex || auth_exchange_start(s->auth_ex, s->auth_mech, decoded, declen,
					       rest > 0, auth_done, s) != 0) {
		auth_end(s);
		session_reply(s, 454, "4.7.0", "Temporary authentication failure");
		return false;
	}
	auth_wait(s);
	return false;	/* counted as a success in auth_succeeded, if it is one */
}

/* verb_auth_response - the client's line after a 334. */
void verb_auth_response(struct smtp_session *s, const char *line, size_t len)
{
	char decoded[AUTH_LINE_MAX];
	size_t declen;

	if (len == 1 && line[0] == '*') {
		auth_end(s);
		s->state = STATE_COMMAND;
		session_reply(s, 501, "5.0.0", "Authentication aborted");
		return;
	}
	if (auth_base64_decode(line, len, decoded, sizeof(decoded), &declen) != 0) {
		auth_end(s);
		s->state = STATE_COMMAND;
		session_reply(s, 501, "5.5.2", "Cannot decode response");
		return;
	}
	if ((s->auth_expect_user || strcmp(s->auth_mech, "PLAIN") == 0) &&
	    typed_user_blocked(s, s->auth_expect_user ? "LOGIN" : "PLAIN", decoded, declen)) {
		const char *user = decoded;
		size_t ulen = declen;

		if (!s->auth_expect_user)
			(void)plain_user(decoded, declen, &user, &ulen);
		s->state = STATE_COMMAND;
		auth_refuse_blocked(s, s->auth_mech, user, ulen);	/* no password check */
		return;
	}
	s->auth_expect_user = false;
	if (auth_exchange_step(s->auth_ex, decoded, declen, auth_done, s) != 0) {
		auth_end(s);
		s->state = STATE_COMMAND;
		session_reply(s, 454, "4.7.0", "Temporary authentication failure");
		return;
	}
	auth_wait(s);
}

/* auth_challenge - 334 and the challenge in base64; the next line answers it. */
static void auth_challenge(struct smtp_session *s, const char *challenge, size_t len)
{
	char b64[AUTH_LINE_MAX];

	if (len > (sizeof(b64) - 1) / 4 * 3 ||
	    (len > 0 && auth_base64_encode(challenge, len, b64, sizeof(b64)) == 0)) {
		auth_end(s);
		session_reply(s, 454, "4.7.0", "Temporary authentication failure");
		session_resume(s, STATE_COMMAND);
		return;
	}
	if (len == 0)
		b64[0] = '\0';
	session_reply_raw(s, "334 ", 4);
	session_reply_raw(s, b64, strlen(b64));
	session_reply_raw(s, "\r\n", 2);
	session_resume(s, STATE_AUTH_INPUT);
}

/* auth_delay_timer - the session's timer, set by auth_failed, ran out. */
static void auth_delay_timer(uv_timer_t *timer)
{
	struct smtp_session *s = timer->data;

	if (s->state == STATE_AUTH_DELAY)
		auth_delay_done(s);
}

/*
 * auth_failed - the line fail2ban's filter in INSTALL reads, and the
 * reason (which sasl.c has cleared of the name typed), then the wait.
 * Already counted by the address limit in auth_done.
 */
static void auth_failed(struct smtp_session *s, const char *reason)
{
	unsigned base = s->srv->cfg->auth_failure_delay;
	uint64_t delay = base + (base ? arc4random_uniform(base + 1) : 0);

	session_log(s, MTAD_LOG_WARNING, "%s: SASL %s authentication failed: "
		    "authentication failure", s->client_label, s->auth_mech);
	session_log(s, MTAD_LOG_INFO, "%s: SASL %s failure reason: %s",
		    s->client_label, s->auth_mech, reason && reason[0] ? reason : "none given");
	s->auth_failures++;
	s->state = STATE_AUTH_DELAY;
	if (session_set_timer(s, delay, auth_delay_timer) != 0)
		auth_delay_done(s);
}

/* auth_delay_done - the delay is over: 535, or 421 after too many. */
static void auth_delay_done(struct smtp_session *s)
{
	session_reply(s, 535, "5.7.8", "Authentication credentials invalid");
	if (s->auth_failures >= s->srv->cfg->auth_max_failures) {
		session_reply(s, 421, "4.7.0", "%s Error: too many failed authentication attempts",
			      s->srv->cfg->hostname);
		session_close(s);
		return;
	}
	session_resume(s, STATE_COMMAND);
}

/* auth_succeeded - 235; the session now belongs to user. */
static void auth_succeeded(struct smtp_session *s, const char *user)
{
	if (user && auth_blocked(s, user, strlen(user))) {
		/* Blocked under another spelling (realm, authzid): still no. */
		auth_refuse_blocked(s, s->auth_mech, user, strlen(user));
		if (s->state != STATE_CLOSING)
			session_resume(s, STATE_COMMAND);
		return;
	}
	snprintf(s->auth_user, sizeof(s->auth_user), "%s", user && user[0] ? user : "?");
	session_log(s, MTAD_LOG_INFO, "%s: sasl_method=%s, sasl_username=%s",
		    s->client_label, s->auth_mech, s->auth_user);
	session_login_spread(s);
	s->verbs[SMTP_AUTH].ok++;
	s->commands_ok++;
	session_reply(s, 235, "2.7.0", "Authentication successful");
	session_resume(s, STATE_COMMAND);
}

/* auth_done - a SASL step came back from the thread pool. */
static void auth_done(void *arg, enum auth_result result, const char *challenge,
		      size_t challenge_len, const char *user, const char *reason)
{
	struct smtp_session *s = arg;

	/* A failed check counts even when the client has gone meanwhile. */
	if (result != AUTH_CONTINUE)
		auth_release(s, result == AUTH_FAILURE);
	if (session_free_if_gone(s))
		return;
	if (result != AUTH_CONTINUE)
		auth_end(s);
	switch (result) {
	case AUTH_SUCCESS:
		auth_succeeded(s, user);
		break;
	case AUTH_CONTINUE:
		auth_challenge(s, challenge, challenge_len);
		break;
	case AUTH_FAILURE:
		auth_failed(s, reason);
		break;
	case AUTH_TEMPFAIL:
		session_log(s, MTAD_LOG_WARNING, "%s: SASL %s: password check unavailable: %s",
			    s->client_label, s->auth_mech, reason ? reason : "no reason");
		session_reply(s, 454, "4.7.0", "Temporary authentication failure");
		session_resume(s, STATE_COMMAND);
		break;
	}
}
