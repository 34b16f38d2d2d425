/*
 * header_scan.c - unit tests for smtp/header_scan.c: where the header
 * section ends and whether Date: and Message-ID: are in it, for every
 * way the message can be cut into chunks; the Message-ID: value kept for
 * the log (the first field's, unfolded, trimmed, bounded).
 */
#include <stdio.h>
#include <string.h>

#include "smtp/smtp.h"
#include "t/unit/tap.h"

/* scan_split - the message fed in two pieces cut at every position; the
 * end's offset in the whole message (or its length when none), the same
 * for every cut. *date and *msgid from the last cut. */
static long scan_split(const char *msg, bool *date, bool *msgid, bool *same)
{
	size_t len = strlen(msg);
	long first = -2;

	*same = true;
	for (size_t cut = 0; cut <= len; cut++) {
		struct smtp_header_scan h;
		size_t at;
		long end;

		smtp_header_scan_init(&h);
		at = smtp_header_scan_feed(&h, msg, cut);
		if (h.done)
			end = (long)at;
		else {
			at = smtp_header_scan_feed(&h, msg + cut, len - cut);
			end = h.done ? (long)(cut + at) : (long)len;
		}
		if (first == -2)
			first = end;
		*same &= end == first;
		*date = h.has_date;
		*msgid = h.has_message_id;
	}
	return first;
}

static void check(struct tap *t, const char *label, const char *msg, long want_end,
		  bool want_date, bool want_msgid)
{
	bool date, msgid, same;
	long end = scan_split(msg, &date, &msgid, &same);

	TAP_OK(t, end == want_end && same && date == want_date && msgid == want_msgid,
	       "%s: end %ld (want %ld), same at every cut %d, date %d, message-id %d", label, end,
	       want_end, same, date, msgid);
}

/* check_id - the Message-ID: value kept, for every cut into two pieces. */
static void check_id(struct tap *t, const char *label, const char *msg, const char *want)
{
	size_t len = strlen(msg);
	bool same = true;

	for (size_t cut = 0; cut <= len; cut++) {
		struct smtp_header_scan h;
		const char *id;
		size_t n;

		smtp_header_scan_init(&h);
		(void)smtp_header_scan_feed(&h, msg, cut);
		(void)smtp_header_scan_feed(&h, msg + cut, len - cut);
		n = smtp_header_message_id(&h, &id);
		same &= n == strlen(want) && memcmp(id, want, n) == 0;
	}
	TAP_OK(t, same, "message-id, %s: \"%s\" at every cut", label, want);
}

/* test_message_id - what the log's message-id= gets. */
static void test_message_id(struct tap *t)
{
	char big[SMTP_MESSAGE_ID_MAX + 64], want[SMTP_MESSAGE_ID_MAX + 1];
	struct smtp_header_scan h;
	const char *id;
	size_t n;

	check_id(t, "plain", "Subject: x\r\nMessage-ID: <a.1@b.example>\r\n\r\nbody\r\n",
		 "<a.1@b.example>");
	check_id(t, "none", "Subject: x\r\n\r\nMessage-ID: <in@body>\r\n", "");
	check_id(t, "folded", "Message-Id:\r\n  <a@b>  \r\nSubject: x\r\n\r\n", "<a@b>");
	check_id(t, "the first of two", "message-id: <one@x>\r\nMessage-ID: <two@x>\r\n\r\n",
		 "<one@x>");
	check_id(t, "not a look-alike", "Message-IDs: <no@x>\r\nX-Message-ID: <no@y>\r\n\r\n", "");
	check_id(t, "the next field ends it", "Message-ID: <a@b>\r\nTo: c@d\r\n\r\n", "<a@b>");
	check_id(t, "bare LF", "Message-ID: <lf@x>\nSubject: y\n\n", "<lf@x>");
	check_id(t, "no empty line", "Message-ID: <end@x>", "<end@x>");

	/* Longer than kept: cut at SMTP_MESSAGE_ID_MAX, the rest dropped. */
	memset(want, 'a', sizeof(want) - 1);
	want[0] = '<';
	want[sizeof(want) - 1] = '\0';
	snprintf(big, sizeof(big), "Message-ID: %s%s\r\n\r\n", want, "bbbb@x>");
	smtp_header_scan_init(&h);
	(void)smtp_header_scan_feed(&h, big, strlen(big));
	n = smtp_header_message_id(&h, &id);
	TAP_OK(t, h.done && n == SMTP_MESSAGE_ID_MAX && memcmp(id, want, n) == 0,
	       "message-id: a value longer than %d bytes is cut there (%zu)", SMTP_MESSAGE_ID_MAX,
	       n);
}

int main(void)
{
	struct tap t = { 0 };
	struct smtp_header_scan h;

	check(&t, "no fields", "Subject: x\r\n\r\nbody\r\n", 12, false, false);
	check(&t, "both", "Date: Fri, 4 Dec 2026 10:00:00 +0000\r\nMessage-ID: <a@b>\r\n\r\nx\r\n",
	      57, true, true);
	check(&t, "any case, obsolete space", "DATE : x\r\nmessage-ID:<a@b>\r\n\r\n", 28, true, true);
	check(&t, "a folded field is one field",
	      "Subject: x\r\n Date: no\r\nX-Date: no\r\nMessage-IDs: no\r\n\r\n", 52, false, false);
	check(&t, "in the body it does not count", "Subject: x\r\n\r\nDate: y\r\n", 12, false,
	      false);
	check(&t, "no empty line: the end is the message's", "Subject: x\r\nDate: y\r\n", 21, true,
	      false);
	check(&t, "the empty message", "", 0, false, false);
	check(&t, "empty line first", "\r\nbody\r\n", 0, false, false);
	check(&t, "bare LF lines", "Date: y\n\nbody\n", 8, true, false);
	check(&t, "a name longer than any we look for",
	      "X-A-Very-Long-Field-Name-Date: x\r\nMessage-ID: <a>\r\n\r\n", 51, false, true);

	smtp_header_scan_init(&h);
	(void)smtp_header_scan_feed(&h, "A: b\r\n\r\n", 8);
	TAP_OK(&t, h.done && smtp_header_scan_feed(&h, "Date: x\r\n", 9) == 0 && !h.has_date,
	       "once done, nothing more is read");
	test_message_id(&t);
	return tap_done(&t);
}
