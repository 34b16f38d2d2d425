/*
 * client_reply.c - the SMTP client's reply parser: one complete reply,
 * single or multi-line, into code, enhanced status code and text, plus
 * the extensions an EHLO reply announces; and what an LMTP server's
 * refusal of its greeting or LHLO means (a deferral).
 *
 * Must not: trust the peer (every line is checked for the same code
 * and the right separator, the number of lines and the total size are
 * bounded, so a peer cannot make us buffer without end), read past len,
 * let control characters from the peer into our text (it ends up in
 * logs and DSNs), allocate, or do I/O.
 *
 * Follows: RFC 5321 §4.2 (reply syntax; §4.2.1 multi-line replies),
 * §4.5.3.1.5 (reply line length); RFC 3463 / RFC 2034 (enhanced status
 * codes); RFC 1870 (SIZE), RFC 2920, RFC 3207, RFC 6152 (keywords);
 * RFC 2033 (LMTP), RFC 3463 §3.4 (4.3.5: system incorrectly configured).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "deliver/deliver.h"

#define LINE_KEEP 512	/* bytes of one line looked at; the rest is dropped */

/* Keywords of an EHLO reply that the client uses. */
static const struct {
	const char *name;
	unsigned flag;
} extensions[] = {
	{ "PIPELINING", SMTP_EXT_PIPELINING },
	{ "STARTTLS", SMTP_EXT_STARTTLS },
	{ "SIZE", SMTP_EXT_SIZE },
	{ "8BITMIME", SMTP_EXT_8BITMIME },
	{ "ENHANCEDSTATUSCODES", SMTP_EXT_ENHANCED },
	{ "DSN", SMTP_EXT_DSN },
	{ "SMTPUTF8", SMTP_EXT_SMTPUTF8 },
	{ "CHUNKING", SMTP_EXT_CHUNKING },
};

/* is_digit - ASCII only: isdigit() depends on the locale. */
static bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

/*
 * prefix_ok - the first bytes of a line (as many as have arrived, up
 * to 4) can still start a reply line: three digits making 200..599,
 * then ' ', '-' or the line end. Checking early means junk fails at
 * once instead of after 64 KB.
 */
static bool prefix_ok(const char *line, size_t avail)
{
	for (size_t i = 0; i < 3 && i < avail; i++)
		if (!is_digit(line[i]))
			return false;
	if (avail >= 1 && (line[0] < '2' || line[0] > '5'))
		return false;
	if (avail >= 4 && line[3] != ' ' && line[3] != '-' && line[3] != '\r' && line[3] != '\n')
		return false;
	return true;
}

/* digits - 1 to 3 digits at s; returns how many, 0 when none or too many. */
static size_t digits(const char *s, size_t len)
{
	size_t n = 0;

	while (n < len && is_digit(s[n]))
		n++;
	return n >= 1 && n <= 3 ? n : 0;
}

/*
 * enhanced_len - the length of "C.SSS.DDD" at the start of text when it
 * is an enhanced code of the reply's class (RFC 3463 §2) followed by a
 * space or the end, else 0.
 */
static size_t enhanced_len(const char *text, size_t len, int code)
{
	size_t n, m;

	if (len < 5 || text[0] != '0' + code / 100 || text[1] != '.')
		return 0;
	n = digits(text + 2, len - 2);
	if (n == 0 || 2 + n >= len || text[2 + n] != '.')
		return 0;
	m = digits(text + 3 + n, len - 3 - n);
	if (m == 0)
		return 0;
	n += 3 + m;
	return n == len || text[n] == ' ' ? n : 0;
}

/* append_text - one line's text onto out->text, after "; " unless first. */
static void append_text(struct smtp_client_reply *out, const char *text, size_t len,
			bool first)
{
	size_t pos = strlen(out->text), room = sizeof(out->text) - 1;

	if (!first && pos + 2 <= room) {
		memcpy(out->text + pos, "; ", 2);
		pos += 2;
	}
	for (size_t i = 0; i < len && pos < room; i++) {
		unsigned char ch = (unsigned char)text[i];

		out->text[pos++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	out->text[pos] = '\0';
}

/* size_value - the number after "SIZE", saturating; 0 when absent (no limit). */
static uint64_t size_value(const char *s, size_t len)
{
	uint64_t v = 0;
	size_t i = 0;

	while (i < len && s[i] == ' ')
		i++;
	for (; i < len && is_digit(s[i]); i++) {
		unsigned d = (unsigned)(s[i] - '0');

		v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
	}
	return v;
}

/* keyword - an EHLO line's first word: sets its flag (and the SIZE value). */
static void keyword(struct smtp_client_reply *out, unsigned *ext, const char *text,
		    size_t len)
{
	size_t w = 0;

	while (w < len && text[w] != ' ')
		w++;
	for (size_t i = 0; i < sizeof(extensions) / sizeof(extensions[0]); i++) {
		if (strlen(extensions[i].name) != w ||
		    strncasecmp(text, extensions[i].name, w) != 0)
			continue;
		*ext |= extensions[i].flag;
		if (extensions[i].flag == SMTP_EXT_SIZE)
			out->size = size_value(text + w, len - w);
	}
}

/* take_line - one complete line's text (code and separator already checked). */
static void take_line(struct smtp_client_reply *out, unsigned *ext, const char *text,
		      size_t len, int code, int index)
{
	size_t e;

	if (len > LINE_KEEP)
		len = LINE_KEEP;
	e = enhanced_len(text, len, code);
	if (index == 0 && e > 0 && e < sizeof(out->enhanced)) {
		memcpy(out->enhanced, text, e);
		out->enhanced[e] = '\0';
	}
	if (ext != NULL && index > 0)
		keyword(out, ext, text, len);
	if (e > 0) {
		text += e;
		len -= e;
		while (len > 0 && *text == ' ') {
			text++;
			len--;
		}
	}
	append_text(out, text, len, index == 0);
}

/* line_code - the three digits of a line known to start with them. */
static int line_code(const char *line)
{
	return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
}

/* smtp_client_parse_reply - see deliver.h. */
int smtp_client_parse_reply(const char *buf, size_t len, struct smtp_client_reply *out,
			    unsigned *ext_flags)
{
	size_t pos = 0, scan = len < SMTP_CLIENT_REPLY_MAX ? len : SMTP_CLIENT_REPLY_MAX;
	int code = 0;

	memset(out, 0, sizeof(*out));
	if (ext_flags != NULL)
		*ext_flags = 0;
	for (int lines = 0; lines < SMTP_CLIENT_REPLY_LINES; lines++) {
		const char *line = buf + pos, *lf;
		size_t n, end;

		if (!prefix_ok(line, len - pos))
			return -1;
		lf = memchr(line, '\n', scan - pos);
		if (lf == NULL)
			return len >= SMTP_CLIENT_REPLY_MAX ? -1 : 0;
		n = (size_t)(lf - line);
		end = n > 0 && line[n - 1] == '\r' ? n - 1 : n;
		if (end < 3 || (end > 3 && line[3] != ' ' && line[3] != '-'))
			return -1;
		if (lines > 0 && line_code(line) != code)
			return -1;
		code = line_code(line);
		take_line(out, ext_flags, line + (end > 3 ? 4 : 3), end > 3 ? end - 4 : 0,
			  code, lines);
		pos += n + 1;
		if (end == 3 || line[3] == ' ') {
			out->code = code;
			if (out->enhanced[0] == '\0')
				snprintf(out->enhanced, sizeof(out->enhanced), "%d.0.0", code / 100);
			return (int)pos;
		}
	}
	return -1;
}

/* smtp_client_lmtp_deferral - see deliver.h. */
void smtp_client_lmtp_deferral(struct smtp_client_reply *r, const char *peer, const char *step)
{
	struct smtp_client_reply was = *r;

	if (r->code < 500)
		return;
	r->code = 451;
	snprintf(r->enhanced, sizeof(r->enhanced), "4.3.5");
	snprintf(r->text, sizeof(r->text), "LMTP server %.100s refused %.20s: %d %.15s %.300s",
		 peer ? peer : "?", step ? step : "?", was.code, was.enhanced, was.text);
}
