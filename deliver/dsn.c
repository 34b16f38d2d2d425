/*
 * dsn.c - builds delivery status notifications: the bounce (or delay
 * warning) mtad sends to the sender of a message it could not deliver.
 * A multipart/report with a human explanation in the Postfix manner, the
 * machine-readable message/delivery-status, and the original header
 * section as text/rfc822-headers.
 *
 * Must not: copy a CR, LF or other control character from an address or
 * a diagnostic into a header field or a report field (they come from
 * the network; one CRLF would let a remote server write our headers);
 * write a line over 998 octets or a bare LF; choose a MIME boundary that
 * occurs in the text it encloses; include more than HEADERS_MAX bytes of
 * the original headers, or leave out the fields every reader puts in
 * front of the stored bytes (header_prefix: smtp_dsn_headers); do I/O
 * or keep global state (only malloc).
 *
 * Also the success notices ("delivered" after an LMTP final delivery,
 * "relayed" to a next hop without DSN, RFC 3461 §5.2.2) and delay
 * warnings, and with RET=FULL the whole message (the caller caps it).
 *
 * Follows: RFC 3461 §6 (DSN contents), RFC 3462/6522 (multipart/report),
 * RFC 3464 (message/delivery-status), RFC 3463 (status codes), RFC 2046
 * §5.1.1 (boundaries), RFC 5322 §2.1.1, §2.2.3, §3.3 (line length,
 * folding, dates), RFC 3834 §5 (Auto-Submitted), RFC 3798/5321 §4.5.5
 * (the DSN itself goes out with a null sender: the caller's job).
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "deliver/deliver.h"

#define HEADERS_MAX 65536	/* of the original header section */
#define LINE_MAX_OCTETS 990	/* forced fold before RFC 5322's 998 */
#define FOLD_AT 78		/* preferred line length */
#define SHORT_MAX 512		/* sender, host name, queue id as written */
#define BOUNDARY_TRIES 10000

/* A growing output buffer; oom makes every later append a no-op. */
struct out {
	char *p;
	size_t len, cap;
	bool oom;
};

/* ---- output ---- */

/* put - append n bytes (the buffer stays NUL-terminated). */
static void put(struct out *o, const char *s, size_t n)
{
	size_t cap;
	char *p;

	if (o->oom)
		return;
	if (o->len + n + 1 > o->cap) {
		cap = o->cap ? o->cap : 4096;
		while (cap < o->len + n + 1)
			cap *= 2;
		p = realloc(o->p, cap);
		if (!p) {
			o->oom = true;
			return;
		}
		o->p = p;
		o->cap = cap;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

/* put_s - append a trusted string. */
static void put_s(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* put_f - append a short formatted line part (our own fixed text and clean values). */
static void put_f(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put_f(struct out *o, const char *fmt, ...)
{
	char buf[SHORT_MAX * 2 + 128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		put(o, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* put_clean - append s, whitespace controls as spaces, other controls and 8-bit as '?'. */
static void put_clean(struct out *o, const char *s)
{
	char c;

	for (; s && *s; s++) {
		c = *s;
		if (c == '\r' || c == '\n' || c == '\t')
			c = ' ';
		else if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f)
			c = '?';
		put(o, &c, 1);
	}
}

/* clean - s made safe for one header line, cut to SHORT_MAX - 1 bytes. */
static const char *clean(const char *s, char buf[SHORT_MAX])
{
	struct out o = { 0 };

	put_clean(&o, s ? s : "");
	snprintf(buf, SHORT_MAX, "%s", o.p ? o.p : "");
	free(o.p);
	return buf;
}

/*
 * wrap - write the clean text s as lines of about FOLD_AT octets, broken
 * at spaces, each continuation starting with indent (whitespace, so a
 * continuation line can never be a boundary line); a word too long for
 * one line is broken at LINE_MAX_OCTETS. Ends with CRLF.
 */
static void wrap(struct out *o, const char *s, const char *indent)
{
	size_t col = 0, ilen = strlen(indent), wlen, room;

	while (*s) {
		s += strspn(s, " ");
		wlen = strcspn(s, " ");
		if (wlen == 0)
			break;
		if (col > ilen && col + 1 + wlen > FOLD_AT) {
			put(o, "\r\n", 2);
			put(o, indent, ilen);
			col = ilen;
		} else if (col > 0) {
			put(o, " ", 1);
			col++;
		}
		while (wlen > 0) {
			room = LINE_MAX_OCTETS - col;
			if (room == 0) {
				put(o, "\r\n", 2);
				put(o, indent, ilen);
				col = ilen;
				continue;
			}
			room = wlen < room ? wlen : room;
			put(o, s, room);
			col += room;
			s += room;
			wlen -= room;
		}
	}
	put(o, "\r\n", 2);
}

/* field - "Name: prefixVALUE", value cleaned and the whole folded. */
static void field(struct out *o, struct out *scratch, const char *name, const char *prefix,
		  const char *value)
{
	scratch->len = 0;
	put_s(scratch, name);
	put_s(scratch, ": ");
	put_s(scratch, prefix);
	put_clean(scratch, value);
	if (!scratch->oom)
		wrap(o, scratch->p, " ");
}

/* ---- values ---- */

/* rfc5322_date - "Tue, 05 Mar 2024 10:00:00 +0000" for t (UTC; no locale, no tz file). */
static const char *rfc5322_date(int64_t t, char buf[40])
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm)) {
		tt = 0;
		gmtime_r(&tt, &tm);
	}
	snprintf(buf, 40, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday],
		 tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		 tm.tm_sec);
	return buf;
}

/* token - the letters and digits of s (at most max), or fallback: for ids and boundaries. */
static const char *token(const char *s, size_t max, const char *fallback, char *buf)
{
	size_t n = 0;

	for (; s && *s && n < max; s++)
		if (isalnum((unsigned char)*s))
			buf[n++] = *s;
	buf[n] = '\0';
	return n ? buf : fallback;
}

/* token_dash - the letters, digits and '-' of s (at most max), or fallback: an address type. */
static const char *token_dash(const char *s, size_t max, const char *fallback, char *buf)
{
	size_t n = 0;

	for (; s && *s && n < max; s++)
		if (isalnum((unsigned char)*s) || *s == '-')
			buf[n++] = *s;
	buf[n] = '\0';
	return n ? buf : fallback;
}

/* host_token - s as letters, digits, '.' and '-' only (at most max): a boundary's tail. */
static const char *host_token(const char *s, size_t max, char *buf)
{
	size_t n = 0;

	for (; s && *s && n < max; s++)
		if (isalnum((unsigned char)*s) || *s == '.' || *s == '-')
			buf[n++] = *s;
	buf[n] = '\0';
	return buf;
}

/* status_ok - RFC 3463 syntax: class 2, 4 or 5, then two numbers of 1..3 digits. */
static bool status_ok(const char *s)
{
	size_t n;

	if (!s || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return false;
	s += 2;
	for (int part = 0; part < 2; part++) {
		n = strspn(s, "0123456789");
		if (n < 1 || n > 3)
			return false;
		s += n;
		if (part == 0 && *s++ != '.')
			return false;
	}
	return *s == '\0';
}

/* action_of - the recipient's RFC 3464 action; anything unknown is "failed". */
static const char *action_of(const struct smtp_dsn_rcpt *r)
{
	static const char *known[] = { "failed", "delayed", "delivered", "relayed", "expanded" };

	for (size_t i = 0; r->action && i < sizeof(known) / sizeof(known[0]); i++)
		if (strcasecmp(r->action, known[i]) == 0)
			return known[i];
	return "failed";
}

static bool is_success(const struct smtp_dsn_rcpt *r);

/* status_of - the recipient's status, or the generic one of its action. */
static const char *status_of(const struct smtp_dsn_rcpt *r)
{
	if (status_ok(r->status))
		return r->status;
	if (is_success(r))
		return "2.0.0";
	return strcmp(action_of(r), "delayed") == 0 ? "4.0.0" : "5.0.0";
}

/* smtp_reply_text - does the diagnostic look like an SMTP reply ("550 ...")? */
static bool smtp_reply_text(const char *s)
{
	return isdigit((unsigned char)s[0]) && isdigit((unsigned char)s[1]) &&
	       isdigit((unsigned char)s[2]) && (s[3] == ' ' || s[3] == '-' || s[3] == '\0');
}

/* The kind of a notice, from its worst recipient: a failure, a delay, a success. */
enum dsn_kind { KIND_FAILURE, KIND_DELAY, KIND_SUCCESS };

/* notice_kind - any failed recipient makes it a bounce; else any delayed a warning. */
static enum dsn_kind notice_kind(const struct smtp_dsn_info *info)
{
	enum dsn_kind kind = KIND_SUCCESS;

	if (info->nrcpt == 0)
		return KIND_FAILURE;
	for (size_t i = 0; i < info->nrcpt; i++) {
		const char *act = action_of(&info->rcpt[i]);

		if (strcmp(act, "failed") == 0)
			return KIND_FAILURE;
		if (strcmp(act, "delayed") == 0)
			kind = KIND_DELAY;
	}
	return kind;
}

/* is_success - "delivered", "relayed" (and "expanded"): class 2 actions. */
static bool is_success(const struct smtp_dsn_rcpt *r)
{
	const char *act = action_of(r);

	return strcmp(act, "failed") != 0 && strcmp(act, "delayed") != 0;
}

/* ---- the original headers ---- */

/* header_span - how much of the header section goes in: whole lines, up to the blank line, capped. */
static size_t header_span(const char *h, size_t len)
{
	size_t end = 0, i = 0, start;

	while (i < len) {
		start = i;
		while (i < len && h[i] != '\n' && h[i] != '\r')
			i++;
		if (i == start)
			break;		/* the empty line: the body follows */
		if (i < len && h[i] == '\r')
			i++;
		if (i < len && h[i] == '\n' && h[i - 1] != '\n')
			i++;
		if (i > HEADERS_MAX)
			break;		/* only whole lines */
		end = i;
	}
	return end;
}

/* smtp_dsn_headers - see deliver.h. */
char *smtp_dsn_headers(const char *prefix, const void *data, size_t len, size_t *hlen)
{
	size_t cap = HEADERS_MAX + 1, plen = prefix ? strnlen(prefix, cap) : 0, n;
	char *out = malloc(cap), *end;

	*hlen = 0;
	if (out == NULL)
		return NULL;
	memcpy(out, prefix ? prefix : "", plen);
	n = data ? (len < cap - plen ? len : cap - plen) : 0;
	if (n > 0)
		memcpy(out + plen, data, n);
	n += plen;
	/* The empty line may be the prefix's own, or start the stored bytes. */
	end = memmem(out, n, "\r\n\r\n", 4);
	*hlen = end ? (size_t)(end - out) + 2 : n;
	return out;
}

/* contains - does needle occur in h[0..len), ignoring case (boundaries are compared so by some)? */
static bool contains(const char *h, size_t len, const char *needle)
{
	size_t n = strlen(needle);

	for (size_t i = 0; i + n <= len; i++)
		if (strncasecmp(h + i, needle, n) == 0)
			return true;
	return false;
}

/* in_fields - does needle occur in any recipient's text? */
static bool in_fields(const struct smtp_dsn_info *info, const char *needle)
{
	for (size_t i = 0; i < info->nrcpt; i++) {
		const char *f[] = { info->rcpt[i].addr, info->rcpt[i].orig_addr,
				    info->rcpt[i].remote_mta, info->rcpt[i].diagnostic };

		for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++)
			if (f[k] && contains(f[k], strlen(f[k]), needle))
				return true;
	}
	return false;
}

/*
 * boundary - "QID.TIME/host", with ".N" added until it occurs nowhere in
 * the enclosed text (the headers come from the sender, who may have
 * guessed it). At most 70 characters (RFC 2046). false if none is free.
 */
static bool boundary(const struct smtp_dsn_info *info, size_t hlen, char out[80])
{
	char qid[24], host[40];

	for (unsigned i = 0; i < BOUNDARY_TRIES; i++) {
		snprintf(out, 80, "%s.%" PRId64 "/%s", token(info->orig_qid, 20, "dsn", qid),
			 info->now, host_token(info->hostname, 30, host));
		if (i > 0)
			snprintf(out + strlen(out), 80 - strlen(out), ".%u", i);
		if (!contains(info->headers, hlen, out) && !in_fields(info, out) &&
		    !(info->message && contains(info->message, info->message_len, out)))
			return true;
	}
	return false;
}

/* copy_headers - the header section as CRLF lines, bare CR/LF made CRLF, NUL as '?', long lines broken. */
static bool copy_headers(struct out *o, const char *h, size_t len)
{
	size_t col = 0;
	bool eight = false;

	for (size_t i = 0; i < len; i++) {
		char c = h[i];

		if (c == '\r' || c == '\n') {
			if (c == '\r' && i + 1 < len && h[i + 1] == '\n')
				i++;
			put(o, "\r\n", 2);
			col = 0;
			continue;
		}
		if (col == LINE_MAX_OCTETS) {
			/* A continuation: unfolded, the line reads the same plus one blank. */
			put(o, "\r\n\t", 3);
			col = 1;
		}
		eight |= (unsigned char)c >= 0x80;
		put(o, c ? &c : "?", 1);
		col++;
	}
	if (col > 0)
		put(o, "\r\n", 2);
	return eight;
}

/* ---- the parts ---- */

/* top_headers - the DSN's own header section and the MIME preamble. */
static void top_headers(struct out *o, const struct smtp_dsn_info *info, const char *bound,
			enum dsn_kind kind, bool eight)
{
	char host[SHORT_MAX], sender[SHORT_MAX], date[40], qid[24];
	struct tm tm;
	time_t now = (time_t)info->now;

	clean(info->hostname, host);
	if (!gmtime_r(&now, &tm))
		memset(&tm, 0, sizeof(tm));
	put_f(o, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", host);
	put_f(o, "To: <%s>\r\n", clean(info->orig_sender, sender));
	put_f(o, "Subject: %s\r\n", kind == KIND_DELAY ? "Delayed Mail (still being retried)"
				    : kind == KIND_SUCCESS ? "Successful Mail Delivery Report"
				    : "Undelivered Mail Returned to Sender");
	put_f(o, "Date: %s\r\n", rfc5322_date(info->now, date));
	/* The kind is in the id: a warning and the bounce later are two messages. */
	put_f(o, "Message-ID: <%04d%02d%02d%02d%02d%02d.%s.%s@%s>\r\n", tm.tm_year + 1900,
	      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	      token(info->orig_qid, 20, "dsn", qid), kind == KIND_DELAY ? "delay"
						      : kind == KIND_SUCCESS ? "success" : "bounce",
	      host_token(info->hostname, SHORT_MAX - 1, sender));
	put_s(o, "Auto-Submitted: auto-replied\r\n");
	put_s(o, "MIME-Version: 1.0\r\n");
	put_s(o, "Content-Type: multipart/report; report-type=delivery-status;\r\n");
	put_f(o, "\tboundary=\"%s\"\r\n", bound);
	put_f(o, "Content-Transfer-Encoding: %s\r\n", eight ? "8bit" : "7bit");
	put_s(o, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");
}

/* explanation - part 1: what happened, for people, in Postfix's words. */
static void explanation(struct out *o, struct out *scratch, const struct smtp_dsn_info *info,
			const char *bound, enum dsn_kind kind)
{
	char host[SHORT_MAX];

	put_f(o, "--%s\r\n", bound);
	put_s(o, "Content-Description: Notification\r\n"
		 "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
	put_f(o, "This is the mail system at host %s.\r\n\r\n", clean(info->hostname, host));
	if (kind == KIND_SUCCESS)
		put_s(o, "Your message was successfully delivered to the destination(s)\r\n"
			 "listed below. If the message was delivered to mailbox you will\r\n"
			 "receive no further notifications. Otherwise you may still receive\r\n"
			 "notifications of mail delivery errors from other systems.\r\n\r\n");
	else if (kind == KIND_DELAY)
		put_s(o, "####################################################################\r\n"
			 "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\r\n"
			 "####################################################################\r\n\r\n"
			 "Your message could not yet be delivered to one or more recipients.\r\n"
			 "The mail system will keep trying; you will be told if it gives up.\r\n\r\n");
	else
		put_s(o, "I'm sorry to have to inform you that your message could not\r\n"
			 "be delivered to one or more recipients. Its headers are attached below.\r\n\r\n");
	if (kind != KIND_SUCCESS)
		put_s(o, "For further assistance, please send mail to postmaster.\r\n\r\n"
			 "If you do so, please include this problem report.\r\n\r\n");
	put_s(o, "                   The mail system\r\n");
	for (size_t i = 0; i < info->nrcpt; i++) {
		const struct smtp_dsn_rcpt *r = &info->rcpt[i];

		scratch->len = 0;
		put_s(scratch, "<");
		put_clean(scratch, r->addr);
		put_s(scratch, ">: ");
		if (is_success(r) && r->remote_mta && r->diagnostic) {
			/* Postfix's words for a success: "delivery via HOST: 250 ..." */
			put_s(scratch, "delivery via ");
			put_clean(scratch, r->remote_mta);
			put_s(scratch, ": ");
		} else if (r->remote_mta && r->diagnostic) {
			put_s(scratch, "host ");
			put_clean(scratch, r->remote_mta);
			put_s(scratch, " said: ");
		}
		if (r->diagnostic)
			put_clean(scratch, r->diagnostic);
		else
			put_f(scratch, "delivery %s (status %s)", is_success(r) ? action_of(r)
				       : strcmp(action_of(r), "delayed") == 0
				       ? "temporarily failed" : "failed", status_of(r));
		put_s(o, "\r\n");
		if (!scratch->oom)
			wrap(o, scratch->p, "    ");
	}
}

/* report - part 2: message/delivery-status, one field group per recipient. */
static void report(struct out *o, struct out *scratch, const struct smtp_dsn_info *info,
		   const char *bound)
{
	char date[40];

	put_f(o, "\r\n--%s\r\n", bound);
	put_s(o, "Content-Description: Delivery report\r\n"
		 "Content-Type: message/delivery-status\r\n\r\n");
	field(o, scratch, "Reporting-MTA", "dns; ", info->hostname);
	field(o, scratch, "X-Mtad-Queue-ID", "", info->orig_qid);
	if (info->envid && info->envid[0])
		field(o, scratch, "Original-Envelope-Id", "", info->envid);
	put_f(o, "Arrival-Date: %s\r\n", rfc5322_date(info->orig_arrival, date));
	for (size_t i = 0; i < info->nrcpt; i++) {
		const struct smtp_dsn_rcpt *r = &info->rcpt[i];

		put_s(o, "\r\n");
		field(o, scratch, "Final-Recipient", "rfc822; ", r->addr);
		if (r->orig_addr) {
			char type[SHORT_MAX], prefix[SHORT_MAX + 4];

			snprintf(prefix, sizeof(prefix), "%s; ", r->orig_type && r->orig_type[0]
				 ? token_dash(r->orig_type, 64, "rfc822", type) : "rfc822");
			field(o, scratch, "Original-Recipient", prefix, r->orig_addr);
		}
		put_f(o, "Action: %s\r\n", action_of(r));
		put_f(o, "Status: %s\r\n", status_of(r));
		if (r->remote_mta)
			field(o, scratch, "Remote-MTA", "dns; ", r->remote_mta);
		/* RFC 3464 "smtp" means the text is an SMTP reply; our own words are not. */
		if (r->diagnostic)
			field(o, scratch, "Diagnostic-Code",
			      smtp_reply_text(r->diagnostic) ? "smtp; " : "X-mtad; ", r->diagnostic);
		put_f(o, "Last-Attempt-Date: %s\r\n", rfc5322_date(info->now, date));
	}
}

/* smtp_dsn_build - see deliver.h. */
char *smtp_dsn_build(const struct smtp_dsn_info *info, size_t *len)
{
	struct out o = { 0 }, scratch = { 0 }, hdrs = { 0 };
	size_t hlen;
	char bound[80];
	enum dsn_kind kind;
	bool eight, full;

	if (!info || !info->orig_sender || !info->orig_sender[0] || (info->nrcpt && !info->rcpt))
		return NULL;
	hlen = info->headers ? header_span(info->headers, info->headers_len) : 0;
	full = info->message != NULL && info->message_len > 0;
	if (!boundary(info, hlen, bound))
		return NULL;
	kind = notice_kind(info);
	/* RET=FULL: the message as it was, its lines made CRLF and cut at 998. */
	eight = full ? copy_headers(&hdrs, info->message, info->message_len)
		     : copy_headers(&hdrs, info->headers, hlen);
	top_headers(&o, info, bound, kind, eight);
	explanation(&o, &scratch, info, bound, kind);
	report(&o, &scratch, info, bound);
	if (full || hlen > 0) {
		put_f(&o, "\r\n--%s\r\n", bound);
		put_f(&o, "Content-Description: %s%s\r\n"
			  "Content-Type: %s\r\n\r\n", kind == KIND_FAILURE ? "Undelivered " : "",
		      full ? "Message" : "Message Headers",
		      full ? "message/rfc822" : "text/rfc822-headers");
		put(&o, hdrs.p, hdrs.len);
	}
	put_f(&o, "\r\n--%s--\r\n", bound);
	free(scratch.p);
	free(hdrs.p);
	if (o.oom || scratch.oom || hdrs.oom) {
		free(o.p);
		return NULL;
	}
	*len = o.len;
	return o.p;
}
