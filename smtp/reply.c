/*
 * reply.c - formats SMTP replies: single lines, and multi-line replies
 * built one line at a time ("250-..." then "250 ...").
 *
 * Must not: write past the caller's buffer, produce a line over 512
 * octets, or pass a CR, LF or other control character from the text
 * (which may quote client input) into the reply, where it would end the
 * line early and let the rest read as a second reply.
 *
 * Follows: RFC 5321 §4.2 (reply syntax, multi-line replies), §4.5.3.1.5
 * (reply line ≤ 512 octets including CRLF); RFC 2034 §3 (the enhanced
 * code repeated on each line of a multi-line reply).
 */
#include <stdio.h>
#include <string.h>

#include "smtp/smtp.h"

/* format_line - "CODE<sep>[ENH ]text\r\n" into buf (NUL-terminated); returns the length or 0. */
static size_t format_line(char *buf, size_t size, int code, char sep,
			  const char *enhanced, const char *text)
{
	size_t max, n, i, room, tlen;
	int h;

	if (size == 0)
		return 0;
	buf[0] = '\0';
	max = size - 1 < SMTP_REPLY_LINE_MAX ? size - 1 : SMTP_REPLY_LINE_MAX;
	if (code < 100 || code > 599)
		return 0;
	h = snprintf(buf, size, "%d%c%s%s", code, sep, enhanced ? enhanced : "",
		     enhanced ? " " : "");
	if (h < 0 || (size_t)h + 2 > max) {
		buf[0] = '\0';
		return 0;
	}
	n = (size_t)h;
	room = max - n - 2;
	tlen = text ? strnlen(text, room) : 0;
	for (i = 0; i < tlen; i++) {
		unsigned char c = (unsigned char)text[i];

		buf[n++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	memcpy(buf + n, "\r\n", 3);
	return n + 2;
}

/* smtp_reply_format - see smtp.h. */
size_t smtp_reply_format(char *buf, size_t size, int code, const char *enhanced,
			 const char *text)
{
	return format_line(buf, size, code, ' ', enhanced, text);
}

/* smtp_reply_add - see smtp.h. */
int smtp_reply_add(char *buf, size_t size, size_t *len, int code, const char *enhanced,
		   const char *text, bool more)
{
	char line[SMTP_REPLY_LINE_MAX + 1];
	size_t n = format_line(line, sizeof(line), code, more ? '-' : ' ', enhanced, text);

	if (n == 0 || *len > size || size - *len < n + 1)
		return -1;
	memcpy(buf + *len, line, n + 1);
	*len += n;
	return 0;
}
