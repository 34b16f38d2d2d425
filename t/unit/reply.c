/*
 * reply.c - unit tests for smtp/reply.c: single-line replies, the
 * 512-octet limit, control characters in the text, small buffers, and
 * multi-line replies built with smtp_reply_add.
 */
#include <string.h>

#include "smtp/smtp.h"
#include "t/unit/tap.h"

struct format_case {
	int code;
	const char *enhanced, *text, *want;
	size_t size;		/* buffer size; 0: 600 */
};

static const struct format_case format_cases[] = {
	{ 250, "2.1.0", "Ok", "250 2.1.0 Ok\r\n", 0 },
	{ 220, NULL, "mx.campus.test ESMTP mtad", "220 mx.campus.test ESMTP mtad\r\n", 0 },
	{ 354, NULL, "End data with <CR><LF>.<CR><LF>", "354 End data with <CR><LF>.<CR><LF>\r\n", 0 },
	{ 250, "2.0.0", "", "250 2.0.0 \r\n", 0 },
	{ 250, "2.0.0", NULL, "250 2.0.0 \r\n", 0 },
	{ 501, "5.1.3", "Bad <a\r\n250 2.1.0 Ok>", "501 5.1.3 Bad <a??250 2.1.0 Ok>\r\n", 0 },
	{ 550, "5.7.1", "del\x7f nul-less tab\t", "550 5.7.1 del? nul-less tab?\r\n", 0 },
	{ 250, "2.0.0", "\xc3\xa9t\xc3\xa9", "250 2.0.0 \xc3\xa9t\xc3\xa9\r\n", 0 },
	/* small buffers: text truncated, never the CRLF */
	{ 250, "2.0.0", "Ok", "250 2.0.0 O\r\n", 14 },
	{ 250, "2.0.0", "Ok", "250 2.0.0 \r\n", 13 },
	{ 250, "2.0.0", "Ok", "", 12 },
	{ 250, NULL, "Ok", "250 \r\n", 7 },
	{ 250, NULL, "Ok", "", 1 },
	/* codes outside 100..599 */
	{ 99, NULL, "x", "", 0 },
	{ 600, NULL, "x", "", 0 },
};

/* test_format - table of single replies. */
static void test_format(struct tap *t)
{
	const struct format_case *c;
	char buf[600];
	size_t n;

	for (c = format_cases; c < format_cases + sizeof(format_cases) / sizeof(format_cases[0]); c++) {
		memset(buf, 'Z', sizeof(buf));
		n = smtp_reply_format(buf, c->size ? c->size : sizeof(buf), c->code, c->enhanced, c->text);
		TAP_OK(t, n == strlen(c->want) && strcmp(buf, c->want) == 0 &&
		       buf[c->size ? c->size : sizeof(buf) - 1] == 'Z',
		       "reply %d %s (size %zu): %zu bytes", c->code, c->enhanced ? c->enhanced : "-",
		       c->size, n);
	}
	buf[0] = 'Q';
	TAP_OK(t, smtp_reply_format(buf, 0, 250, NULL, "x") == 0 && buf[0] == 'Q',
	       "size 0 writes nothing");
}

/* test_long_text - the line stops at 512 octets including CRLF. */
static void test_long_text(struct tap *t)
{
	char text[2000], buf[2000];
	size_t n;

	memset(text, 'x', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	n = smtp_reply_format(buf, sizeof(buf), 550, "5.7.1", text);
	TAP_OK(t, n == 512 && strlen(buf) == 512 && memcmp(buf, "550 5.7.1 xxx", 13) == 0 &&
	       memcmp(buf + 510, "\r\n", 2) == 0, "long text: 512 octets ending in CRLF (%zu)", n);
	memset(text, 'y', 500);
	text[500] = '\0';
	n = smtp_reply_format(buf, sizeof(buf), 550, "5.7.1", text);
	TAP_OK(t, n == 512 && buf[509] == 'y', "500 octets of text fit exactly");
	text[499] = '\0';
	n = smtp_reply_format(buf, sizeof(buf), 550, "5.7.1", text);
	TAP_OK(t, n == 511 && buf[508] == 'y', "499 octets of text: 511");
}

/* test_multiline - an EHLO reply and an enhanced multi-line reply. */
static void test_multiline(struct tap *t)
{
	static const char *ehlo[] = { "mx.campus.test Hello client.example [127.0.0.1]",
				      "SIZE 52428800", "PIPELINING", "8BITMIME", "HELP" };
	static const char want[] = "250-mx.campus.test Hello client.example [127.0.0.1]\r\n"
				   "250-SIZE 52428800\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 HELP\r\n";
	char buf[1024], small[42];
	size_t len = 0, i;
	int r = 0;

	for (i = 0; i < 5; i++)
		r |= smtp_reply_add(buf, sizeof(buf), &len, 250, NULL, ehlo[i], i < 4);
	TAP_OK(t, r == 0 && len == strlen(want) && strcmp(buf, want) == 0, "EHLO reply");
	len = 0;
	r = smtp_reply_add(buf, sizeof(buf), &len, 550, "5.7.1", "first", true);
	r |= smtp_reply_add(buf, sizeof(buf), &len, 550, "5.7.1", "second\r\n", false);
	TAP_OK(t, r == 0 && strcmp(buf, "550-5.7.1 first\r\n550 5.7.1 second??\r\n") == 0,
	       "enhanced code on every line, text sanitised");
	len = 0;
	r = smtp_reply_add(small, sizeof(small), &len, 250, NULL, "0123456789012345678901234567", true);
	TAP_OK(t, r == 0 && len == 34, "first line fits a small buffer");
	r = smtp_reply_add(small, sizeof(small), &len, 250, NULL, "more", false);
	TAP_OK(t, r == -1 && len == 34 && strlen(small) == 34, "a line that does not fit: -1, buffer unchanged");
	r = smtp_reply_add(small, sizeof(small), &len, 250, NULL, "x", false);
	TAP_OK(t, r == 0 && len == 41 && strcmp(small + 34, "250 x\r\n") == 0,
	       "a line that fits exactly (with its NUL)");
	len = 50;
	TAP_OK(t, smtp_reply_add(small, sizeof(small), &len, 250, NULL, "x", false) == -1,
	       "a length past the buffer is refused");
}

int main(void)
{
	struct tap t = { 0, 0 };

	test_format(&t);
	test_long_text(&t);
	test_multiline(&t);
	return tap_done(&t);
}
