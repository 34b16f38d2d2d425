/*
 * client_dot.c - dot-stuffing for the SMTP client's DATA: the body goes
 * out in chunks, and a line may start in one chunk and go on in the
 * next, so the state between calls is the encoder's.
 *
 * Must not: end the message early (a '.' alone on a line is stuffed
 * like any other line start), let a bare LF through (a peer that takes
 * it for a line end would then see an unstuffed "." line: SMTP
 * smuggling the other way round), write more than 2 * inlen bytes, or
 * do I/O. DATA's bodies are CRLF text when stored (bare_newline
 * normalizes or refuses them), but a BDAT chunk is stored as sent, bare
 * LF included (RFC 3030): sent on with DATA to a peer without CHUNKING,
 * that LF becomes CRLF here. With BDAT the bytes go unchanged
 * (client_send.c).
 *
 * Follows: RFC 5321 §4.5.2 (transparency), §4.1.1.4 (end of mail data).
 */
#include <string.h>

#include "deliver/deliver.h"

/* smtp_dot_init - an encoder at the start of the body: a line start. */
void smtp_dot_init(struct smtp_dot_encoder *e)
{
	e->line_start = true;
	e->after_cr = false;
}

/* smtp_dot_encode - see deliver.h; each input byte gives at most two. */
size_t smtp_dot_encode(struct smtp_dot_encoder *e, const char *in, size_t inlen, char *out)
{
	size_t n = 0;

	for (size_t i = 0; i < inlen; i++) {
		char ch = in[i];

		if (e->line_start && ch == '.')
			out[n++] = '.';
		else if (ch == '\n' && !e->after_cr)
			out[n++] = '\r';
		out[n++] = ch;
		e->line_start = ch == '\n';
		e->after_cr = ch == '\r';
	}
	return n;
}

/* smtp_dot_finish - the end of data; an empty body is just ".\r\n". */
size_t smtp_dot_finish(struct smtp_dot_encoder *e, char *out)
{
	size_t n = 0;

	if (!e->line_start) {
		memcpy(out, "\r\n", 2);
		n = 2;
	}
	memcpy(out + n, ".\r\n", 3);
	e->line_start = true;
	e->after_cr = false;
	return n + 3;
}
