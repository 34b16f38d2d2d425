/*
 * client_send.c - the SMTP client's mail transactions (deliver/client.c
 * makes and keeps the connection): MAIL, RCPT and DATA (pipelined when
 * the peer offers PIPELINING), the body one chunk at a time,
 * dot-stuffed, the end of data (LMTP: a reply per accepted recipient);
 * or, when the peer offers CHUNKING (and smtp_use_chunking allows), the
 * body as BDAT chunks, one per queue chunk, not dot-stuffed, the last
 * with LAST, each waiting for its reply before the next goes;
 * RSET after a transaction that cannot be finished, and each
 * recipient's verdict.
 *
 * Must not: send an address that could inject a command (CR, LF, other
 * controls, spaces, < >: decided here with 553, never sent); hold more
 * than one body chunk in memory (the next is asked for when the last
 * is written); report a message while the body reader holds the client;
 * deliver half a message (a failed read drops the connection before the
 * final dot); touch the socket or TLS other than through client.c's
 * client_send_plain/client_send_line.
 *
 * Follows: RFC 5321 (§3.3 mail transactions, §4.1.1.4 DATA, §4.5.2
 * transparency), RFC 2920 (PIPELINING), RFC 1870 (SIZE), RFC 3463,
 * RFC 2033 §4.2 (LMTP's replies to the end of data), RFC 3030 (BDAT,
 * §2 its replies, §3 with LMTP: a reply per recipient after BDAT LAST),
 * RFC 3461 §4, §5.2 (DSN's RET, ENVID, NOTIFY, ORCPT passed on to a
 * peer that offers DSN), RFC 6531 §3.2 (SMTPUTF8 on MAIL when the
 * message needs it and the peer offers it; when it does not, the
 * message bounces, 5.6.7, never downgraded), RFC 6152 (BODY=8BITMIME
 * passed on to a peer that offers 8BITMIME; to one that does not, 8-bit
 * MIME parts go as quoted-printable, §3 and deliver/mime_downgrade.c, as
 * Postfix does, always with DATA).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/client_int.h"

/* ---- small helpers ---- */

/* set_reply - fills a reply of our own. */
static void set_reply(struct smtp_client_reply *r, int code, const char *enhanced,
		      const char *text)
{
	memset(r, 0, sizeof(*r));
	r->code = code;
	snprintf(r->enhanced, sizeof(r->enhanced), "%s", enhanced);
	snprintf(r->text, sizeof(r->text), "%s", text);
}

/* addr_ok - an address that can go into MAIL FROM:<> / RCPT TO:<> as it is. */
static bool addr_ok(const char *a)
{
	size_t n = 0;

	for (; a[n] != '\0'; n++) {
		unsigned char ch = (unsigned char)a[n];

		/* Quoted local parts may hold spaces, but the queue never has
		 * them unquoted; refusing all keeps command injection out. */
		if (ch <= ' ' || ch == 0x7f || ch == '<' || ch == '>')
			return false;
	}
	return n < SMTP_PATH_MAX - 2;
}

/* ---- the mail transaction ---- */

/* next_sent - the next recipient from i on that goes to the peer. */
static size_t next_sent(const struct smtp_client *c, size_t i)
{
	while (i < c->msg.nrcpt && c->rstate[i] == R_LOCAL)
		i++;
	return i;
}

/* smtp_client_offers_dsn - see deliver.h. */
bool smtp_client_offers_dsn(const struct smtp_client *c)
{
	return (c->ext & SMTP_EXT_DSN) != 0;
}

/* ---- DSN parameters (RFC 3461 §4), when the peer offers DSN ---- */

#define DSN_ORCPT_MAX 500	/* RFC 3461 §4.2: longer is not sent */

/* xtext_ok - only what an esmtp-value may hold ("!".."~" but "="; RFC 5321 §4.1.2):
 * an ORCPT from the queue never injects a parameter or a command. */
static bool xtext_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 33 || (unsigned char)*s > 126)
			return false;
	return true;
}

/* mail_dsn - " RET=HDRS ENVID=xtext" into buf (size >= 320); "" when none or not offered. */
static const char *mail_dsn(const struct smtp_client *c, char *buf, size_t size)
{
	char envid[3 * 100 + 1];
	size_t n = 0;

	buf[0] = '\0';
	if (!(c->ext & SMTP_EXT_DSN))
		return buf;
	if (c->msg.dsn_ret == QUEUE_RET_FULL || c->msg.dsn_ret == QUEUE_RET_HDRS)
		n += (size_t)snprintf(buf, size, " RET=%s",
				      c->msg.dsn_ret == QUEUE_RET_HDRS ? "HDRS" : "FULL");
	/* An ENVID that does not fit 100 xtext characters is not ours: left out. */
	if (c->msg.dsn_envid && c->msg.dsn_envid[0] &&
	    mtad_xtext_encode(c->msg.dsn_envid, envid, sizeof(envid)) > 0 && strlen(envid) <= 100)
		snprintf(buf + n, size - n, " ENVID=%s", envid);
	return buf;
}

/* rcpt_dsn - " NOTIFY=... ORCPT=..." for recipient i into buf; "" when none or not offered. */
static const char *rcpt_dsn(const struct smtp_client *c, size_t i, char *buf, size_t size)
{
	static const char *const names[4] = { "NEVER", "SUCCESS", "FAILURE", "DELAY" };
	uint32_t notify = c->msg.dsn_notify ? c->msg.dsn_notify[i] : 0;
	const char *given = c->msg.dsn_orcpt ? c->msg.dsn_orcpt[i] : NULL;
	const char *orig = c->msg.orig_rcpt ? c->msg.orig_rcpt[i] : NULL;
	char xt[3 * SMTP_PATH_MAX + 1];
	size_t n = 0;

	buf[0] = '\0';
	if (!(c->ext & SMTP_EXT_DSN))
		return buf;
	for (unsigned k = 0; k < 4; k++)
		if (notify & (1u << k))
			n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? "," : " NOTIFY=", names[k]);
	/* As given; else the address an alias expanded (Postfix does the same). */
	if (given && given[0] && strlen(given) <= DSN_ORCPT_MAX && xtext_ok(given))
		snprintf(buf + n, size - n, " ORCPT=%s", given);
	else if (orig && orig[0] && mtad_xtext_encode(orig, xt, sizeof(xt)) > 0 &&
		 strlen(xt) + 7 <= DSN_ORCPT_MAX)
		snprintf(buf + n, size - n, " ORCPT=rfc822;%s", xt);
	return buf;
}

/* mail_line - "MAIL FROM:<s> SIZE=n BODY=8BITMIME SMTPUTF8 RET= ENVID=\r\n" into buf; returns the length. */
static size_t mail_line(const struct smtp_client *c, char *buf, size_t size)
{
	char size_param[32] = "", dsn[320];
	bool body8 = c->msg.body_8bitmime && (c->ext & SMTP_EXT_8BITMIME);
	bool utf8 = c->msg.smtputf8 && (c->ext & SMTP_EXT_SMTPUTF8);
	int n;

	mail_dsn(c, dsn, sizeof(dsn));
	if (c->ext & SMTP_EXT_SIZE)
		snprintf(size_param, sizeof(size_param), " SIZE=%llu", (unsigned long long)c->msg.size);
	n = snprintf(buf, size, "MAIL FROM:<%s>%s%s%s%s\r\n", c->msg.sender, size_param,
		     body8 ? " BODY=8BITMIME" : "", utf8 ? " SMTPUTF8" : "", dsn);
	return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

/* rcpt_line - "RCPT TO:<r>\r\n" into buf; returns the length. */
static size_t rcpt_line(const struct smtp_client *c, size_t i, char *buf, size_t size)
{
	char dsn[DSN_ORCPT_MAX + 64];
	int n = snprintf(buf, size, "RCPT TO:<%s>%s\r\n", c->msg.rcpt[i],
			 rcpt_dsn(c, i, dsn, sizeof(dsn)));

	return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

/* A command line: the path, SIZE, and the DSN parameters at their longest. */
#define CMD_MAX (SMTP_PATH_MAX + 64 + DSN_ORCPT_MAX + 64)

/* send_pipelined - MAIL, every RCPT and DATA in one write (RFC 2920 §3.1). */
static void send_pipelined(struct smtp_client *c)
{
	char *buf = malloc(CMD_MAX * (c->msg.nrcpt + 2));
	size_t len;

	if (buf == NULL) {
		client_fail(c, 0, "4.3.0", "out of memory sending to %s", c->peer);
		return;
	}
	len = mail_line(c, buf, CMD_MAX);
	for (size_t i = next_sent(c, 0); i < c->msg.nrcpt; i = next_sent(c, i + 1))
		len += rcpt_line(c, i, buf + len, CMD_MAX);
	/* A probe ends where DATA would go (both 6 bytes); with BDAT the
	 * chunks wait for the RCPT replies (no body for nobody). */
	if (c->msg.envelope_only || !c->bdat) {
		memcpy(buf + len, c->msg.envelope_only ? "RSET\r\n" : "DATA\r\n", 6);
		len += 6;
	}
	(void)client_send_plain(c, buf, len);
	free(buf);
}

/* client_start_transaction - MAIL (and with PIPELINING, the rest of the envelope). */
void client_start_transaction(struct smtp_client *c)
{
	char line[CMD_MAX];

	c->state = C_MAIL;
	c->next_rcpt = next_sent(c, 0);
	client_step_timer(c, c->timeout_ms);
	c->pipelining = (c->ext & SMTP_EXT_PIPELINING) != 0;
	/* BDAT when offered, but not for a body that must be made 7-bit:
	 * the MIME downgrade goes out with DATA, dot-stuffed as it streams. */
	c->bdat = c->chunking && (c->ext & SMTP_EXT_CHUNKING) && !c->msg.envelope_only &&
		  !(c->msg.body_8bitmime && !(c->ext & SMTP_EXT_8BITMIME));
	if (c->pipelining)
		send_pipelined(c);
	else
		(void)client_send_plain(c, line, mail_line(c, line, sizeof(line)));
}

/* send_rset - a transaction the peer opened but we cannot finish. */
static void send_rset(struct smtp_client *c)
{
	c->state = C_RSET;
	client_step_timer(c, c->timeout_ms);
	(void)client_send_line(c, "RSET\r\n");
}

static void start_body(struct smtp_client *c);

/* envelope_done - every RCPT answered: DATA, or RSET when nobody was accepted. */
static void envelope_done(struct smtp_client *c)
{
	if (c->bdat) {
		/* No DATA: the chunks go now, when somebody takes them. */
		if (c->mail_failed)
			client_finish_message(c, true);
		else if (c->accepted == 0)
			send_rset(c);
		else
			start_body(c);
		return;
	}
	if (c->pipelining) {
		/* DATA (RSET for a probe) went with the envelope. */
		c->state = c->msg.envelope_only ? C_RSET : C_DATA;
		return;
	}
	if (c->accepted == 0 || c->msg.envelope_only) {
		send_rset(c);
		return;
	}
	c->state = C_DATA;
	(void)client_send_line(c, "DATA\r\n");
}

/* on_mail - the MAIL reply. */
static void on_mail(struct smtp_client *c, const struct smtp_client_reply *r)
{
	char line[CMD_MAX];

	if (r->code / 100 == 2) {
		c->mail_ok = true;
		c->state = C_RCPT;
		if (!c->pipelining)
			(void)client_send_plain(c, line, rcpt_line(c, c->next_rcpt, line, sizeof(line)));
		return;
	}
	/* Every recipient gets the reason; pipelined RCPT and DATA replies
	 * that follow (503s) are read and ignored. */
	c->data = *r;
	for (size_t i = 0; i < c->msg.nrcpt; i++) {
		if (c->rstate[i] == R_PENDING) {
			c->results[i] = *r;
			c->rstate[i] = R_DONE;
		}
	}
	if (c->pipelining) {
		c->mail_failed = true;
		c->state = C_RCPT;
		return;
	}
	client_finish_message(c, true);
}

/* on_rcpt - one RCPT reply, for the recipient whose turn it is. */
static void on_rcpt(struct smtp_client *c, const struct smtp_client_reply *r)
{
	char line[CMD_MAX];
	size_t i = c->next_rcpt;

	if (!c->mail_failed) {
		c->results[i] = *r;
		if (r->code / 100 == 2 && c->msg.envelope_only) {
			c->rstate[i] = R_DONE;	/* a probe: the RCPT reply is the answer */
			c->accepted++;
		} else if (r->code / 100 == 2) {
			c->rstate[i] = R_ACCEPTED;
			c->accepted++;
		} else {
			c->rstate[i] = R_DONE;
			c->data = *r;
		}
		i = next_sent(c, i + 1);
	} else {
		/* The recipients are decided already: count through them. */
		i = next_sent(c, i + 1);
	}
	c->next_rcpt = i;
	if (i >= c->msg.nrcpt) {
		envelope_done(c);
		return;
	}
	if (!c->pipelining)
		(void)client_send_plain(c, line, rcpt_line(c, i, line, sizeof(line)));
}

/* decide_accepted - the final word for recipients the peer accepted. */
static void decide_accepted(struct smtp_client *c, const struct smtp_client_reply *r)
{
	c->data = *r;
	for (size_t i = 0; i < c->msg.nrcpt; i++) {
		if (c->rstate[i] == R_ACCEPTED) {
			c->results[i] = *r;
			c->rstate[i] = R_DONE;
		}
	}
}

/* next_accepted - the next recipient from i on that waits for its LMTP end-of-data reply. */
static size_t next_accepted(const struct smtp_client *c, size_t i)
{
	while (i < c->msg.nrcpt && c->rstate[i] != R_ACCEPTED)
		i++;
	return i;
}

/*
 * on_lmtp_dot - one of LMTP's replies to the end of data: one per
 * accepted recipient, in RCPT order (RFC 2033 §4.2), so each is sent,
 * deferred or refused on its own. The message is done after the last;
 * each reply may take a full step (the server delivers one by one).
 */
static void on_lmtp_dot(struct smtp_client *c, const struct smtp_client_reply *r)
{
	size_t i = next_accepted(c, c->next_dot);

	if (i >= c->msg.nrcpt)
		return;	/* cannot happen: the message ended with the last one */
	c->results[i] = *r;
	c->rstate[i] = R_DONE;
	c->data = *r;
	c->next_dot = next_accepted(c, i + 1);
	if (c->next_dot >= c->msg.nrcpt)
		client_finish_message(c, true);
	else
		client_step_timer(c, c->timeout_ms);
}

/*
 * downgrade_start - a BODY=8BITMIME message to a peer without 8BITMIME:
 * its 8-bit MIME parts go as quoted-printable (RFC 6152 §3, as Postfix).
 * false when out of memory.
 */
static bool downgrade_start(struct smtp_client *c)
{
	if (!c->msg.body_8bitmime || (c->ext & SMTP_EXT_8BITMIME)) {
		free(c->downgrade);
		c->downgrade = NULL;
		return true;
	}
	if (!c->downgrade && !(c->downgrade = malloc(sizeof(*c->downgrade))))
		return false;
	smtp_mime_downgrade_init(c->downgrade);
	return true;
}

/* start_body - 354: the body, one chunk at a time. */
static void start_body(struct smtp_client *c)
{
	if (!downgrade_start(c)) {
		client_fail(c, 451, "4.3.0", "out of memory sending to %s", c->peer);
		return;
	}
	c->next_dot = 0;
	c->state = C_BODY;
	c->chunk_index = 0;
	c->body_last = false;
	smtp_dot_init(&c->dot);
	client_request_chunk(c);
}

/* on_data - the reply to DATA. */
static void on_data(struct smtp_client *c, const struct smtp_client_reply *r)
{
	if (r->code == 354 && c->accepted > 0 && !c->mail_failed) {
		start_body(c);
		return;
	}
	if (r->code / 100 == 3) {
		/* Go-ahead with nobody to deliver to: sending nothing is wrong,
		 * and an empty message would be wrong too. */
		client_fail(c, 0, "4.5.0", "%s accepted DATA without accepted recipients",
			    c->peer);
		return;
	}
	decide_accepted(c, r);
	if (c->mail_ok)
		send_rset(c);	/* the transaction is open: MAIL was accepted */
	else
		client_finish_message(c, true);
}

/*
 * on_bdat - the reply to a chunk that is not the last: the next chunk,
 * or, refused, the message is over for every accepted recipient and
 * RSET ends what the peer still holds of it (a server drops the chunks
 * after a refused one until LAST or RSET: RFC 3030 §2, Postfix).
 */
static void on_bdat(struct smtp_client *c, const struct smtp_client_reply *r)
{
	if (r->code / 100 == 2) {
		c->state = C_BODY;
		if (c->pump.writes_pending == 0 && !c->reading_chunk)
			client_request_chunk(c);
		return;
	}
	decide_accepted(c, r);
	send_rset(c);
}

/* client_on_transaction_reply - a reply while a message is under way. */
void client_on_transaction_reply(struct smtp_client *c, const struct smtp_client_reply *r)
{
	switch (c->state) {
	case C_MAIL:
		on_mail(c, r);
		break;
	case C_RCPT:
		on_rcpt(c, r);
		break;
	case C_DATA:
		on_data(c, r);
		break;
	case C_BDAT:
		on_bdat(c, r);
		break;
	case C_DOT:
		if (c->lmtp) {
			on_lmtp_dot(c, r);
			break;
		}
		decide_accepted(c, r);
		client_finish_message(c, true);
		break;
	case C_RSET:
		client_finish_message(c, r->code / 100 == 2);
		break;
	default:
		break;
	}
}

/* ---- the body ---- */

/*
 * chunk_downgraded - a chunk through the 8-bit to 7-bit conversion, then
 * as chunk_done sends it (the converter's output may be several times
 * the chunk: quoted-printable is at most about 3.3 times its input).
 */
static void chunk_downgraded(struct smtp_client *c, const void *data, size_t len, bool last)
{
	char *conv = NULL, *tail = NULL, *out = NULL;
	size_t clen = 0, tlen = 0, n;

	if (smtp_mime_downgrade_feed(c->downgrade, data, len, &conv, &clen) != 0 ||
	    (last && smtp_mime_downgrade_finish(c->downgrade, &tail, &tlen) != 0) ||
	    !(out = malloc(2 * (clen + tlen) + 8))) {
		free(conv);
		free(tail);
		client_fail(c, 451, "4.3.0", "out of memory sending to %s", c->peer);
		return;
	}
	n = smtp_dot_encode(&c->dot, conv ? conv : "", clen, out);
	n += smtp_dot_encode(&c->dot, tail ? tail : "", tlen, out + n);
	free(conv);
	free(tail);
	c->chunk_index++;
	c->body_last = last;
	if (last) {
		n += smtp_dot_finish(&c->dot, out + n);
		c->state = C_DOT;
	}
	client_step_timer(c, c->timeout_ms);
	if (client_send_plain(c, out, n) == 0 && c->state == C_BODY && c->pump.writes_pending == 0)
		client_request_chunk(c);
	free(out);
}

/*
 * bdat_chunk - one queue chunk as one BDAT chunk, bytes as stored (no
 * dot-stuffing, no end marker: RFC 3030 §2), "BDAT n LAST" for the last
 * (an empty last chunk is "BDAT 0 LAST"); an empty chunk that is not
 * the last is not sent (Postfix refuses "BDAT 0" without LAST).
 */
static void bdat_chunk(struct smtp_client *c, const void *data, size_t len, bool last)
{
	char head[48];
	char *out;
	int h;

	c->chunk_index++;
	c->body_last = last;
	if (len == 0 && !last) {
		client_request_chunk(c);
		return;
	}
	h = snprintf(head, sizeof(head), "BDAT %zu%s\r\n", len, last ? " LAST" : "");
	out = malloc((size_t)h + len);
	if (h < 0 || out == NULL) {
		free(out);
		client_fail(c, 451, "4.3.0", "out of memory sending to %s", c->peer);
		return;
	}
	memcpy(out, head, (size_t)h);
	memcpy(out + h, data, len);
	/* The reply may come before the write callback: the state first. */
	c->state = last ? C_DOT : C_BDAT;
	client_step_timer(c, c->timeout_ms);
	(void)client_send_plain(c, out, (size_t)h + len);
	free(out);
}

/* chunk_done - a body chunk from the caller: dot-stuffed and written. */
static void chunk_done(struct smtp_client *c, int status, const void *data, size_t len,
		       bool last)
{
	char *out;
	size_t n;

	c->reading_chunk = false;
	if (c->closing) {
		client_free(c);	/* frees only when the handles are closed too */
		return;
	}
	if (c->fail_pending) {
		c->fail_pending = false;
		client_finish_message(c, false);
		return;
	}
	if (c->state != C_BODY)
		return;
	if (status != 0) {
		/* Half a message must not be delivered: drop the connection. */
		client_fail(c, 451, "4.3.0", "error reading the queued message for %s", c->peer);
		return;
	}
	if (c->bdat) {
		bdat_chunk(c, data, len, last);
		return;
	}
	if (c->downgrade) {
		chunk_downgraded(c, data, len, last);
		return;
	}
	out = malloc(2 * len + 8);
	if (out == NULL) {
		client_fail(c, 451, "4.3.0", "out of memory sending to %s", c->peer);
		return;
	}
	n = smtp_dot_encode(&c->dot, data, len, out);
	c->chunk_index++;
	c->body_last = last;
	if (last) {
		n += smtp_dot_finish(&c->dot, out + n);
		c->state = C_DOT;	/* the reply may come before the write callback */
	}
	client_step_timer(c, c->timeout_ms);
	if (client_send_plain(c, out, n) == 0 && c->state == C_BODY && c->pump.writes_pending == 0)
		client_request_chunk(c);	/* an empty chunk: nothing to wait for */
	free(out);
}

/* client_request_chunk - asks the caller for the next chunk (no deadline: it is local). */
void client_request_chunk(struct smtp_client *c)
{
	uv_timer_stop(&c->timer);
	c->reading_chunk = true;
	c->msg.read(c->msg.read_arg, c->chunk_index, c, chunk_done);
}

/* ---- messages ---- */

/* local_verdicts - recipients decided without the peer; true when none is left to send. */
static bool local_verdicts(struct smtp_client *c, const struct smtp_client_message *msg)
{
	struct smtp_client_reply r;
	size_t left = 0;

	if (!addr_ok(msg->sender))
		set_reply(&r, 553, "5.1.7", "bad sender address syntax");
	else if ((c->ext & SMTP_EXT_SIZE) && c->peer_size > 0 && msg->size > c->peer_size)
		set_reply(&r, 552, "5.3.4", "message size exceeds the peer's limit");
	else if (msg->smtputf8 && !(c->ext & SMTP_EXT_SMTPUTF8)) {
		char text[sizeof(r.text)];

		snprintf(text, sizeof(text), "SMTPUTF8 is required, but was not offered by host %s",
			 c->peer);
		set_reply(&r, 554, "5.6.7", text);
	}
	else
		r.code = 0;
	for (size_t i = 0; i < msg->nrcpt; i++) {
		if (r.code != 0)
			c->results[i] = r;
		else if (!addr_ok(msg->rcpt[i]))
			set_reply(&c->results[i], 553, "5.1.3", "bad recipient address syntax");
		else {
			left++;
			continue;
		}
		c->rstate[i] = R_LOCAL;
		c->data = c->results[i];
	}
	return left == 0;
}

/* smtp_client_send - see deliver.h. */
int smtp_client_send(struct smtp_client *c, const struct smtp_client_message *msg,
		     smtp_client_sent_cb cb, void *arg)
{
	if (c == NULL || c->state != C_READY || c->user_closed || msg->nrcpt == 0 ||
	    (msg->read == NULL && !msg->envelope_only))
		return -1;
	c->results = calloc(msg->nrcpt, sizeof(*c->results));
	c->rstate = calloc(msg->nrcpt, 1);
	if (c->results == NULL || c->rstate == NULL) {
		free(c->results);
		free(c->rstate);
		c->results = NULL;
		c->rstate = NULL;
		return -1;
	}
	c->msg = *msg;
	c->sent_cb = cb;
	c->sent_arg = arg;
	c->accepted = 0;
	c->mail_ok = c->mail_failed = c->fail_pending = false;
	memset(&c->data, 0, sizeof(c->data));
	if (local_verdicts(c, msg)) {
		/* Reported from the loop, never from inside this call. */
		c->state = C_LOCAL;
		client_step_timer(c, 0);
		return 0;
	}
	client_start_transaction(c);
	return 0;
}
