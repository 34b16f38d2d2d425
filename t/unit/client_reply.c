/*
 * client_reply.c - unit tests for deliver/client_reply.c, the SMTP client's
 * reply parser: single and multi-line replies, EHLO keywords and SIZE,
 * enhanced codes (taken, derived, of the wrong class), bad and mixed
 * codes, bare LF, the line and size bounds, and every valid reply split
 * at every byte (0 until it is complete). Every call reads an exact-size
 * heap copy, so ASAN catches a read past len. Then what an LMTP server's
 * refused greeting or LHLO becomes: 5xx a 451 4.3.5 deferral that keeps
 * what was said, 4xx and 2xx untouched, long texts cut.
 */
#include <stdlib.h>
#include <string.h>

#include "deliver/deliver.h"
#include "t/unit/tap.h"

struct parse_case {
	const char *in;
	int ret;		/* expected return: -2 means strlen(in) */
	int code;
	const char *enhanced;
	const char *text;
	unsigned ext;		/* expected flags (parsed with ext_flags) */
	uint64_t size;
};

static const struct parse_case cases[] = {
	{ "250 ok\r\n", -2, 250, "2.0.0", "ok", 0, 0 },
	{ "250 2.1.0 Sender ok\r\n", -2, 250, "2.1.0", "Sender ok", 0, 0 },
	{ "550 5.1.1 <x@y>: no such user\r\n", -2, 550, "5.1.1", "<x@y>: no such user", 0, 0 },
	{ "550 4.1.1 wrong class\r\n", -2, 550, "5.0.0", "4.1.1 wrong class", 0, 0 },
	{ "450 4.7.1000 four digits\r\n", -2, 450, "4.0.0", "4.7.1000 four digits", 0, 0 },
	{ "250 2.0.0\r\n", -2, 250, "2.0.0", "", 0, 0 },
	{ "250\r\n", -2, 250, "2.0.0", "", 0, 0 },
	{ "354 End data with <CR><LF>.<CR><LF>\r\n", -2, 354, "3.0.0",
	  "End data with <CR><LF>.<CR><LF>", 0, 0 },
	{ "221 bye\n", -2, 221, "2.0.0", "bye", 0, 0 },
	{ "250-first\r\n250 second\r\n", -2, 250, "2.0.0", "first; second", 0, 0 },
	{ "550-5.7.1 line one\r\n550-5.7.1 line two\r\n550 5.7.1 line three\r\n", -2, 550,
	  "5.7.1", "line one; line two; line three", 0, 0 },
	{ "250-mx.example Hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n"
	  "250-ENHANCEDSTATUSCODES\r\n250-starttls\r\n250 DSN\r\n", -2, 250, "2.0.0",
	  "mx.example Hello; PIPELINING; SIZE 10240000; 8BITMIME; ENHANCEDSTATUSCODES; "
	  "starttls; DSN",
	  SMTP_EXT_PIPELINING | SMTP_EXT_SIZE | SMTP_EXT_8BITMIME | SMTP_EXT_ENHANCED |
	  SMTP_EXT_STARTTLS | SMTP_EXT_DSN, 10240000 },
	{ "250-mx\r\n250-dsn\r\n250 X-DSN\r\n", -2, 250, "2.0.0", "mx; dsn; X-DSN",
	  SMTP_EXT_DSN, 0 },
	{ "250-mx\n250-SIZE\n250 PIPELINING\n", -2, 250, "2.0.0", "mx; SIZE; PIPELINING",
	  SMTP_EXT_SIZE | SMTP_EXT_PIPELINING, 0 },
	{ "250-mx\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n", -2, 250, "2.0.0", "mx; 8BITMIME; SMTPUTF8",
	  SMTP_EXT_8BITMIME | SMTP_EXT_SMTPUTF8, 0 },
	{ "250-mx\r\n250 smtputf8\r\n", -2, 250, "2.0.0", "mx; smtputf8", SMTP_EXT_SMTPUTF8, 0 },
	{ "250-mx\r\n250 SIZE 99999999999999999999999\r\n", -2, 250, "2.0.0",
	  "mx; SIZE 99999999999999999999999", SMTP_EXT_SIZE, UINT64_MAX },
	{ "250 PIPELINING\r\n", -2, 250, "2.0.0", "PIPELINING", 0, 0 },
	{ "250-mx\r\n250 PIPELININGX\r\n", -2, 250, "2.0.0", "mx; PIPELININGX", 0, 0 },
	{ "250 ok\r\n250 next\r\n", 8, 250, "2.0.0", "ok", 0, 0 },
	{ "250 a\tb\r\n", -2, 250, "2.0.0", "a?b", 0, 0 },
	{ "250 a\rb\r\n", -2, 250, "2.0.0", "a?b", 0, 0 },
	/* incomplete */
	{ "", 0, 0, NULL, NULL, 0, 0 },
	{ "25", 0, 0, NULL, NULL, 0, 0 },
	{ "250 ok", 0, 0, NULL, NULL, 0, 0 },
	{ "250 ok\r", 0, 0, NULL, NULL, 0, 0 },
	{ "250-ok\r\n", 0, 0, NULL, NULL, 0, 0 },
	{ "250-ok\r\n250", 0, 0, NULL, NULL, 0, 0 },
	/* malformed */
	{ "x", -1, 0, NULL, NULL, 0, 0 },
	{ "2x0 ok\r\n", -1, 0, NULL, NULL, 0, 0 },
	{ "199 ok\r\n", -1, 0, NULL, NULL, 0, 0 },
	{ "600 ok\r\n", -1, 0, NULL, NULL, 0, 0 },
	{ "099 ok\r\n", -1, 0, NULL, NULL, 0, 0 },
	{ "25\r\n", -1, 0, NULL, NULL, 0, 0 },
	{ "2500 ok\r\n", -1, 0, NULL, NULL, 0, 0 },
	{ "250_ok\r\n", -1, 0, NULL, NULL, 0, 0 },
	{ "250-ok\r\n251 ok\r\n", -1, 0, NULL, NULL, 0, 0 },
	{ "250-ok\r\n550 no\r\n", -1, 0, NULL, NULL, 0, 0 },
	{ "250-ok\r\nhello\r\n", -1, 0, NULL, NULL, 0, 0 },
	{ "\r\n", -1, 0, NULL, NULL, 0, 0 },
	{ " 250 ok\r\n", -1, 0, NULL, NULL, 0, 0 },
	{ "250 ok\r\n", -2, 250, "2.0.0", "ok", 0, 0 },
};

/* parse_copy - parses an exact-size heap copy of in[0..len). */
static int parse_copy(const char *in, size_t len, struct smtp_client_reply *r, unsigned *ext)
{
	char *copy = malloc(len ? len : 1);
	int ret;

	memcpy(copy, in, len);
	ret = smtp_client_parse_reply(copy, len, r, ext);
	free(copy);
	return ret;
}

/* show - in for a test name: CR, LF and TAB escaped, at most 48 characters. */
static const char *show(const char *in)
{
	static char buf[64];
	size_t n = 0;

	for (; *in && n < 48; in++) {
		const char *esc = *in == '\r' ? "\\r" : *in == '\n' ? "\\n" : *in == '\t' ? "\\t" : NULL;

		if (esc) {
			memcpy(buf + n, esc, 2);
			n += 2;
		} else {
			buf[n++] = *in;
		}
	}
	buf[n] = '\0';
	return buf;
}

/* check_case - one table row, then (when complete) every split point. */
static void check_case(struct tap *t, const struct parse_case *pc)
{
	struct smtp_client_reply r;
	size_t len = strlen(pc->in);
	int want = pc->ret == -2 ? (int)len : pc->ret;
	unsigned ext = 0;
	int ret = parse_copy(pc->in, len, &r, &ext);
	bool splits_ok = true;

	TAP_OK(t, ret == want, "%s: returns %d (got %d)", show(pc->in), want, ret);
	if (want > 0) {
		TAP_OK(t, r.code == pc->code && strcmp(r.enhanced, pc->enhanced) == 0 &&
		       strcmp(r.text, pc->text) == 0,
		       "%s: %d %s \"%s\" (got %d %s \"%s\")", show(pc->in), pc->code,
		       pc->enhanced, pc->text, r.code, r.enhanced, r.text);
		TAP_OK(t, ext == pc->ext && r.size == pc->size, "%s: ext %#x size %llu (got %#x %llu)",
		       show(pc->in), pc->ext, (unsigned long long)pc->size, ext,
		       (unsigned long long)r.size);
		for (int cut = 0; cut < want; cut++)
			if (parse_copy(pc->in, (size_t)cut, &r, NULL) != 0)
				splits_ok = false;
		TAP_OK(t, splits_ok, "%s: 0 (need more) at every cut before the end", show(pc->in));
	}
}

/* repeat - a reply of n lines "250-x" ... "250 x". */
static char *repeat(int n, size_t *len)
{
	char *buf = malloc((size_t)n * 8 + 1);

	*len = 0;
	for (int i = 0; i < n; i++)
		*len += (size_t)sprintf(buf + *len, "250%cx\r\n", i + 1 < n ? '-' : ' ');
	return buf;
}

/* test_bounds - line count, long lines, the 64 KB limit. */
static void test_bounds(struct tap *t)
{
	struct smtp_client_reply r;
	size_t len;
	char *buf = repeat(100, &len);
	int ret = parse_copy(buf, len, &r, NULL);

	TAP_OK(t, ret == (int)len && r.code == 250 && strlen(r.text) == 100 * 3 - 2,
	       "100 lines: taken (text %zu)", strlen(r.text));
	free(buf);
	buf = repeat(101, &len);
	TAP_OK(t, parse_copy(buf, len, &r, NULL) == -1, "101 lines: malformed");
	free(buf);

	/* One 2000-byte line: accepted, 512 bytes of it kept, text capped at 511. */
	buf = malloc(4096);
	memcpy(buf, "250 ", 4);
	memset(buf + 4, 'a', 2000);
	memcpy(buf + 2004, "\r\n", 2);
	ret = parse_copy(buf, 2006, &r, NULL);
	TAP_OK(t, ret == 2006 && strlen(r.text) == 511, "a 2000-byte line: taken, text %zu",
	       strlen(r.text));
	free(buf);

	/* 64 KB without a line end: malformed, not "need more". */
	buf = malloc(SMTP_CLIENT_REPLY_MAX + 10);
	memcpy(buf, "250 ", 4);
	memset(buf + 4, 'a', SMTP_CLIENT_REPLY_MAX + 6);
	TAP_OK(t, parse_copy(buf, SMTP_CLIENT_REPLY_MAX - 1, &r, NULL) == 0,
	       "64 KB - 1 without a line end: need more");
	TAP_OK(t, parse_copy(buf, SMTP_CLIENT_REPLY_MAX, &r, NULL) == -1,
	       "64 KB without a line end: malformed");
	TAP_OK(t, parse_copy(buf, SMTP_CLIENT_REPLY_MAX + 10, &r, NULL) == -1,
	       "more than 64 KB: malformed");
	/* ... and a complete reply whose end lies past 64 KB. */
	memcpy(buf + SMTP_CLIENT_REPLY_MAX + 2, "\r\n", 2);
	TAP_OK(t, parse_copy(buf, SMTP_CLIENT_REPLY_MAX + 4, &r, NULL) == -1,
	       "a line ending past 64 KB: malformed");
	free(buf);
}

/* test_multi_text - the joined text stops at 511 characters. */
static void test_multi_text(struct tap *t)
{
	struct smtp_client_reply r;
	char buf[4096];
	size_t len = 0;

	for (int i = 0; i < 10; i++) {
		len += (size_t)sprintf(buf + len, "550%c5.7.1 ", i < 9 ? '-' : ' ');
		memset(buf + len, 'a' + i, 100);
		len += 100;
		len += (size_t)sprintf(buf + len, "\r\n");
	}
	TAP_OK(t, parse_copy(buf, len, &r, NULL) == (int)len && strlen(r.text) == 511 &&
	       strncmp(r.text + 100, "; bbb", 5) == 0 && strcmp(r.enhanced, "5.7.1") == 0,
	       "ten 100-byte lines: joined with \"; \", cut at 511");
}

/* lmtp_reply - a parsed reply, for the deferral tests. */
static struct smtp_client_reply lmtp_reply(const char *line)
{
	struct smtp_client_reply r;

	(void)smtp_client_parse_reply(line, strlen(line), &r, NULL);
	return r;
}

/* test_lmtp_deferral - 5xx to greeting or LHLO: a deferral; the rest as it was. */
static void test_lmtp_deferral(struct tap *t)
{
	struct smtp_client_reply r = lmtp_reply("500 5.5.1 Error: unknown command\r\n"), was;
	char long_line[700];

	smtp_client_lmtp_deferral(&r, "mailstore[192.0.2.7]", "LHLO");
	TAP_OK(t, r.code == 451 && strcmp(r.enhanced, "4.3.5") == 0 &&
	       strcmp(r.text, "LMTP server mailstore[192.0.2.7] refused LHLO: "
		      "500 5.5.1 Error: unknown command") == 0,
	       "500 to LHLO: 451 4.3.5 (%d %s %s)", r.code, r.enhanced, r.text);
	r = lmtp_reply("554 no thanks\r\n");
	smtp_client_lmtp_deferral(&r, "/run/dovecot/lmtp", "the greeting");
	TAP_OK(t, r.code == 451 && strcmp(r.text, "LMTP server /run/dovecot/lmtp refused the "
					"greeting: 554 5.0.0 no thanks") == 0,
	       "554 greeting, no enhanced code: derived one kept (%s)", r.text);
	r = was = lmtp_reply("421 4.3.2 shutting down\r\n");
	smtp_client_lmtp_deferral(&r, "x", "LHLO");
	TAP_OK(t, memcmp(&r, &was, sizeof(r)) == 0, "a 4xx is left alone");
	r = was = lmtp_reply("250 ok\r\n");
	smtp_client_lmtp_deferral(&r, "x", "LHLO");
	TAP_OK(t, memcmp(&r, &was, sizeof(r)) == 0, "a 2xx is left alone");
	memset(long_line, 'z', sizeof(long_line));
	memcpy(long_line, "550 ", 4);
	memcpy(long_line + sizeof(long_line) - 3, "\r\n", 3);
	r = lmtp_reply(long_line);
	smtp_client_lmtp_deferral(&r, NULL, NULL);
	TAP_OK(t, r.code == 451 && strlen(r.text) < sizeof(r.text) &&
	       strlen(r.text) == 35 + 300 &&
	       strncmp(r.text, "LMTP server ? refused ?: 550 5.0.0 zzz", 38) == 0,
	       "a long text is cut at 300, NULL names shown as ? (%zu)", strlen(r.text));
}

int main(void)
{
	struct tap t = { 0 };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_case(&t, &cases[i]);
	test_bounds(&t);
	test_multi_text(&t);
	test_lmtp_deferral(&t);
	return tap_done(&t);
}
