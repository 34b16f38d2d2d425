/*
 * session_submit.c - what the header section of a submission (mail from
 * the local socket or from an authenticated client) gets before it is
 * queued, as RFC 6409 §8 lets a submission server do: bare names in its
 * address fields get the host name (§8.6: "To: root" would otherwise
 * send every reply to the recipient's own root), and Date: and
 * Message-ID: are added when it has none (§8.2, §8.3).
 *
 * The header section is held back until its empty line, up to
 * SESSION_HOLD_MAX bytes (mail clients write a few KB); a longer one goes
 * to the queue as it came, and only gets the missing fields. The body is
 * never held.
 *
 * Must not: change anything but the bare names of the address fields
 * and the two fields added, hold more than SESSION_HOLD_MAX bytes, or
 * touch mail that is not a submission (relayed mail stays byte for byte).
 *
 * Follows: RFC 6409 §8, RFC 5322 §2.2 (fields, folding), §3.6.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "local/local.h"
#include "smtp/session_int.h"

/* submission_fields - the Date: and Message-ID: the message lacks, into buf; their length. */
static size_t submission_fields(struct smtp_session *s, char *buf, size_t size)
{
	char date[64];
	struct tm tm;
	time_t now = (time_t)s->arrival_sec;
	size_t n = 0;
	int w;

	if (!s->fields.has_date && localtime_r(&now, &tm) &&
	    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm) > 0 &&
	    (w = snprintf(buf, size, "Date: %s\r\n", date)) > 0 && (size_t)w < size)
		n = (size_t)w;
	/* The queue id is unique on this host, the host name in the world. */
	if (!s->fields.has_message_id &&
	    (w = snprintf(buf + n, size - n, "Message-ID: <%s.%lld@%s>\r\n", s->qid,
			  (long long)s->arrival_sec, s->srv->cfg->hostname)) > 0 &&
	    (size_t)w < size - n) {
		/* The log's message-id= names the one added: "<...>" without the CRLF. */
		size_t id_len = (size_t)w - 14;	/* "Message-ID: " and CRLF off */

		s->fields.message_id_len = id_len < sizeof(s->fields.message_id)
					   ? id_len : sizeof(s->fields.message_id);
		memcpy(s->fields.message_id, buf + n + 12, s->fields.message_id_len);
		n += (size_t)w;
	}
	return n;
}

/* add_fields - the missing fields go into the message now. */
static int add_fields(struct smtp_session *s)
{
	char buf[64 + QUEUE_ID_LEN + 32 + MTAD_HOSTNAME_MAX + 16];
	size_t n;

	s->add_fields = false;
	if ((n = submission_fields(s, buf, sizeof(buf))) == 0)
		return 0;
	s->header_size += n;
	if (s->local_uid < 0)
		session_log(s, MTAD_LOG_INFO, "%s: added%s%s to a submission from %s", s->qid,
			    s->fields.has_date ? "" : " Date:",
			    s->fields.has_message_id ? "" : " Message-ID:", s->client_label);
	return session_write_body(s, buf, n);
}

/* address_field - one whose bare names get the host name (RFC 6409 §8.6). */
static bool address_field(const char *f, size_t len)
{
	static const char *const names[] = {
		"from", "to", "cc", "bcc", "reply-to", "sender", "resent-from", "resent-to",
		"resent-cc",
	};
	const char *colon = memchr(f, ':', len);

	for (size_t i = 0; colon && i < sizeof(names) / sizeof(names[0]); i++)
		if ((size_t)(colon - f) == strlen(names[i]) &&
		    strncasecmp(f, names[i], strlen(names[i])) == 0)
			return true;
	return false;
}

/* write_field - one header field (its lines, folds and all), qualified
 * when it is an address field. -1 out of memory. */
static int write_field(struct smtp_session *s, const char *f, size_t len)
{
	const char *host = s->srv->cfg->hostname;
	const char *value = memchr(f, ':', len);
	size_t vlen, size, n;
	char *out;
	int q;

	if (!address_field(f, len))
		return session_write_body(s, f, len);
	value++;
	vlen = len - (size_t)(value - f);
	size = local_qualify_room(vlen, host);
	if (!(out = malloc(size)))
		return -1;
	q = local_qualify_addresses(value, vlen, host, out, size, &n);
	if (q > 0)
		s->header_size += n - vlen;
	if (session_write_body(s, f, (size_t)(value - f)) < 0 ||
	    session_write_body(s, q > 0 ? out : value, q > 0 ? n : vlen) < 0) {
		free(out);
		return -1;
	}
	free(out);
	return 0;	/* q < 0 cannot be (out has room for every name): the value went as it was */
}

/* hold_drop - nothing is held any more. */
static void hold_drop(struct smtp_session *s)
{
	free(s->hold);
	s->hold = NULL;
	s->hold_len = 0;
}

/* hold_flush - the held header section goes out, field by field, qualified. */
static int hold_flush(struct smtp_session *s)
{
	const char *p = s->hold, *end = s->hold + s->hold_len;
	int rc = 0;

	while (rc == 0 && p < end) {
		const char *f = p;

		/* A field: its first line and every line that starts with white space. */
		do {
			const char *nl = memchr(p, '\n', (size_t)(end - p));

			p = nl ? nl + 1 : end;
		} while (p < end && (*p == ' ' || *p == '\t'));
		rc = write_field(s, f, (size_t)(p - f));
	}
	hold_drop(s);
	return rc;
}

/* hold_take - len more header bytes into the hold; false when they do not fit. */
static bool hold_take(struct smtp_session *s, const char *p, size_t len)
{
	if (s->hold_len + len > SESSION_HOLD_MAX)
		return false;
	memcpy(s->hold + s->hold_len, p, len);
	s->hold_len += len;
	return true;
}

/* hold_give_up - the header is longer than may be held: what was held
 * goes to the queue as it came, and the rest streams. */
static int hold_give_up(struct smtp_session *s)
{
	int rc = s->hold_len > 0 ? session_write_body(s, s->hold, s->hold_len) : 0;

	hold_drop(s);
	return rc;
}

/* session_submit_start - see session_int.h. */
int session_submit_start(struct smtp_session *s)
{
	smtp_header_scan_init(&s->fields);
	s->add_fields = s->local_uid >= 0 || s->auth_user[0];
	if (s->add_fields && !(s->hold = malloc(SESSION_HOLD_MAX)))
		return -1;
	s->hold_len = 0;
	return 0;
}

/* session_submit_write - see session_int.h. */
int session_submit_write(struct smtp_session *s, const char *p, size_t n)
{
	size_t end;

	if (!s->add_fields) {
		/* Only looked at, for the message-id= line (done: at once). */
		(void)smtp_header_scan_feed(&s->fields, p, n);
		return session_write_body(s, p, n);
	}
	end = smtp_header_scan_feed(&s->fields, p, n);	/* n while the header goes on */
	if (s->hold && hold_take(s, p, end)) {
		if (!s->fields.done)
			return 0;
		if (hold_flush(s) < 0)
			return -1;
	} else {
		if ((s->hold && hold_give_up(s) < 0) || (end > 0 && session_write_body(s, p, end) < 0))
			return -1;
		if (!s->fields.done)
			return 0;
	}
	if (add_fields(s) < 0)
		return -1;
	return end < n ? session_write_body(s, p + end, n - end) : 0;
}

/* session_submit_end - see session_int.h. */
int session_submit_end(struct smtp_session *s)
{
	if (!s->add_fields)
		return 0;
	if (s->hold && hold_flush(s) < 0)
		return -1;
	return add_fields(s);
}

/* session_submit_stop - see session_int.h. */
void session_submit_stop(struct smtp_session *s)
{
	hold_drop(s);
	s->add_fields = false;
}
