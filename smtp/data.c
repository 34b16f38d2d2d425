/*
 * data.c - the DATA decoder: a state machine that removes dot-stuffing,
 * finds the end of the message, and measures it. Line starts, CR and LF
 * go through it a byte at a time; the text between them in one memcpy.
 *
 * Two modes (bare_newline in mtad.conf). reject: a bare LF or CR is
 * data, never a line start, and flagged (the session refuses the
 * message). normalize (Postfix 3.9's smtpd_forbid_bare_newline =
 * normalize): a bare LF ends a line as CRLF would and is stored as CRLF,
 * a bare CR stays data; a line start after a bare LF unstuffs a dot as
 * any line start does, but a "." line ends the message only when both
 * its own ending and the one before it are CRLF: otherwise it is dropped,
 * as Postfix drops it, and the message goes on.
 *
 * Must not: end a message on anything but <CRLF>.<CRLF> ("\n.\n",
 * "\r.\r", "\n.\r\n" and "\r\n.\n" stay inside the message in both
 * modes: SMTP smuggling, 2023), drop or rewrite bytes other than the
 * stuffing dot (and, normalizing, add the CR of a bare LF or drop a
 * "." line next to one), write more than inlen bytes of output (2 *
 * inlen normalizing), or do I/O. State lives only in struct
 * smtp_data_decoder, so the end marker may be split across reads at any
 * byte.
 *
 * Follows: RFC 5321 §4.1.1.4 (DATA, end of mail data), §4.5.2
 * (transparency), §4.5.3.1.6 (text line length); RFC 1870 (size).
 */
#include <string.h>

#include "smtp/smtp.h"

enum data_state {
	D_LINE_START = 0,	/* after CRLF: a '.' here is special */
	D_TEXT,			/* inside a line */
	D_CR,			/* after a '\r' inside a line (already output) */
	D_DOT,			/* line start, '.' seen and dropped */
	D_DOT_CR,		/* line start, ".\r" seen, nothing output yet */
};

/* Where decoded bytes go in one call. */
struct sink {
	char *buf;
	size_t room;		/* inlen: the caller's promise */
	size_t len;
};

/* smtp_data_init - a decoder at the start of the body (after "DATA\r\n"). */
void smtp_data_init(struct smtp_data_decoder *dec, uint64_t limit)
{
	memset(dec, 0, sizeof(*dec));
	dec->state = D_LINE_START;
	dec->limit = limit;
}

/* smtp_data_normalize - see smtp.h. */
void smtp_data_normalize(struct smtp_data_decoder *dec)
{
	dec->normalize = true;
}

/* emit - one decoded byte: counted always, output only while within the limit. */
static void emit(struct smtp_data_decoder *dec, struct sink *o, char c)
{
	if (++dec->size > dec->limit)
		dec->too_big = true;
	if (dec->too_big)
		return;
	if (o->len < o->room)
		o->buf[o->len++] = c;
	else {
		/* Only the ".\r" case can get here; see smtp.h. */
		dec->carry = c;
		dec->has_carry = true;
	}
}

/* line_octet - one more octet on the current line (CRLF is not counted). */
static void line_octet(struct smtp_data_decoder *dec)
{
	if (++dec->line_len > dec->longest_line)
		dec->longest_line = dec->line_len;
}

/* line_end - a line ended: with a bare LF (normalizing), or a CRLF. */
static void line_end(struct smtp_data_decoder *dec, bool bare)
{
	dec->line_len = 0;
	dec->prev_bare = bare;
	dec->state = D_LINE_START;
}

/*
 * text_byte - a byte inside a line; a bare LF is data (reject), or a
 * line end stored as CRLF (normalize).
 */
static void text_byte(struct smtp_data_decoder *dec, struct sink *o, char c)
{
	if (c == '\n') {
		dec->bare_lf = true;
		dec->bare_lf_count++;
		if (dec->normalize) {
			/* Ends the line as CRLF would: stored as CRLF. */
			emit(dec, o, '\r');
			emit(dec, o, '\n');
			line_end(dec, true);
			return;
		}
	}
	emit(dec, o, c);
	if (c == '\r') {
		/* Counted as a line octet only once we know it is a bare CR. */
		dec->state = D_CR;
		return;
	}
	line_octet(dec);
	dec->state = D_TEXT;
}

/* bare_cr - the '\r' before c was not part of a CRLF. */
static void bare_cr(struct smtp_data_decoder *dec)
{
	dec->bare_cr = true;
	line_octet(dec);
}

/* after_cr - the byte after an output '\r': LF ends the line. */
static void after_cr(struct smtp_data_decoder *dec, struct sink *o, char c)
{
	if (c == '\n') {
		emit(dec, o, c);
		line_end(dec, false);
		return;
	}
	bare_cr(dec);
	text_byte(dec, o, c);
}

/* after_dot_cr - the byte after ".\r" at a line start: LF ends the message. */
static void after_dot_cr(struct smtp_data_decoder *dec, struct sink *o, char c)
{
	if (c == '\n') {
		if (dec->normalize && dec->prev_bare) {
			/* "<LF>.<CR><LF>": Postfix drops the line, never ends. */
			dec->dropped_dots++;
			line_end(dec, false);
			return;
		}
		dec->done = true;
		return;
	}
	/* A stuffed line that starts with a bare CR: the dot goes, the CR stays. */
	emit(dec, o, '\r');
	bare_cr(dec);
	text_byte(dec, o, c);
}

/* step - one input byte through the state machine. */
static void step(struct smtp_data_decoder *dec, struct sink *o, char c)
{
	switch ((enum data_state)dec->state) {
	case D_LINE_START:
		if (c == '.')
			dec->state = D_DOT;	/* stuffing or end marker: never output */
		else
			text_byte(dec, o, c);
		break;
	case D_TEXT:
		text_byte(dec, o, c);
		break;
	case D_CR:
		after_cr(dec, o, c);
		break;
	case D_DOT:
		if (c == '\r')
			dec->state = D_DOT_CR;
		else if (c == '\n' && dec->normalize) {
			/* "." ended by a bare LF: dropped, never the end. */
			dec->bare_lf = true;
			dec->bare_lf_count++;
			dec->dropped_dots++;
			line_end(dec, true);
		} else
			text_byte(dec, o, c);
		break;
	case D_DOT_CR:
		after_dot_cr(dec, o, c);
		break;
	}
}

/* text_run - how many bytes from p on hold neither CR nor LF. */
static size_t text_run(const char *p, size_t len)
{
	const char *lf = memchr(p, '\n', len);
	const char *cr;

	if (lf != NULL)
		len = (size_t)(lf - p);
	cr = memchr(p, '\r', len);
	return cr != NULL ? (size_t)(cr - p) : len;
}

/*
 * text_bulk - n bytes inside a line with no CR or LF among them: what
 * text_byte would do n times (output within the limit, line length),
 * in one go. The byte-at-a-time loop cost ~50 instructions per body
 * byte, the largest single cost of accepting a message.
 */
static void text_bulk(struct smtp_data_decoder *dec, struct sink *o, const char *p, size_t n)
{
	uint64_t before = dec->size;
	size_t keep = n;

	dec->size += n;
	if (dec->size > dec->limit) {
		keep = dec->limit > before ? (size_t)(dec->limit - before) : 0;
		if (keep > n)
			keep = n;
	}
	if (!dec->too_big) {
		memcpy(o->buf + o->len, p, keep);
		o->len += keep;
	}
	if (dec->size > dec->limit)
		dec->too_big = true;
	dec->line_len += n;
	if (dec->line_len > dec->longest_line)
		dec->longest_line = dec->line_len;
}

/* smtp_data_decode - see smtp.h. */
size_t smtp_data_decode(struct smtp_data_decoder *dec, const char *in,
			size_t inlen, char *out, size_t *outlen)
{
	struct sink o = { out, dec->normalize ? 2 * inlen : inlen, 0 };
	size_t i = 0;

	if (dec->has_carry && inlen > 0) {
		out[o.len++] = dec->carry;
		dec->has_carry = false;
	}
	/*
	 * A carry only arises on the last byte of a call, so stopping on it
	 * never leaves input behind; the check makes an overflow impossible
	 * even if that reasoning were wrong.
	 */
	while (i < inlen && !dec->done && !dec->has_carry) {
		if (dec->state == D_TEXT) {
			/* Within a line: never more out than the room left. */
			size_t n = text_run(in + i, inlen - i);

			if (n > o.room - o.len)
				n = o.room - o.len;
			if (n > 0) {
				text_bulk(dec, &o, in + i, n);
				i += n;
				continue;
			}
		}
		step(dec, &o, in[i++]);
	}
	*outlen = o.len;
	return i;
}
