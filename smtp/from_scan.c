/*
 * from_scan.c - finds the From: header field(s) in a message as its
 * body streams by, so the sender ownership check (policy/sender.c) can
 * read the addresses at the end of DATA without keeping the message.
 *
 * Pure: no I/O, no allocation (the caller owns the scanner), no clock.
 * Must not: read past the header section (the first empty line), keep
 * more than SMTP_FROM_MAX bytes of From: values (more is flagged, and
 * the caller refuses what it cannot check), or mistake a field whose
 * name only starts with "From" ("From-X:") for From:.
 *
 * Follows: RFC 5322 §2.2 (header fields: name, colon, body), §2.2.3
 * (unfolding: a line starting with white space continues the field),
 * §3.6.2 (From:).
 */
#include <string.h>
#include <strings.h>

#include "smtp/smtp.h"

enum { SCAN_LINE_START, SCAN_CR_AT_START, SCAN_NAME, SCAN_VALUE };

/* smtp_from_scan_init - see smtp.h. */
void smtp_from_scan_init(struct smtp_from_scan *f)
{
	memset(f, 0, sizeof(*f));
	f->state = SCAN_LINE_START;
}

/* from_append - one byte of a From: value, bounded. */
static void from_append(struct smtp_from_scan *f, char c)
{
	if (f->len < sizeof(f->value))
		f->value[f->len++] = c;
	else
		f->overflow = true;
}

/* name_byte - one byte of a field name: decides at the colon. */
static void name_byte(struct smtp_from_scan *f, char c)
{
	if (c == ':') {
		f->in_from = f->name_len == 4 && strncasecmp(f->name, "from", 4) == 0;
		if (f->in_from && f->len > 0)
			from_append(f, ',');	/* several From: fields make one list */
		if (f->in_from)
			f->fields++;
		f->state = SCAN_VALUE;
	} else if (c == '\n') {
		f->state = SCAN_LINE_START;	/* not a field: ignored */
	} else if (f->name_len < sizeof(f->name)) {
		f->name[f->name_len++] = c;
	} else {
		f->name_len = sizeof(f->name) + 1;	/* longer than "from": not it */
	}
}

/* line_start_byte - the first byte of a line. */
static void line_start_byte(struct smtp_from_scan *f, char c)
{
	if (c == '\n') {
		f->done = true;
	} else if (c == '\r') {
		f->state = SCAN_CR_AT_START;
	} else if (c == ' ' || c == '\t') {
		if (f->in_from)
			from_append(f, ' ');	/* unfolding */
		f->state = SCAN_VALUE;
	} else {
		f->in_from = false;
		f->name_len = 0;
		f->state = SCAN_NAME;
		name_byte(f, c);
	}
}

/* smtp_from_scan_feed - see smtp.h. */
void smtp_from_scan_feed(struct smtp_from_scan *f, const char *p, size_t n)
{
	for (size_t i = 0; i < n && !f->done; i++) {
		char c = p[i];

		switch (f->state) {
		case SCAN_LINE_START:
			line_start_byte(f, c);
			break;
		case SCAN_CR_AT_START:
			if (c == '\n')
				f->done = true;		/* the empty line: headers are over */
			else
				line_start_byte(f, c);
			break;
		case SCAN_NAME:
			name_byte(f, c);
			break;
		default:
			if (c == '\n')
				f->state = SCAN_LINE_START;
			else if (c != '\r' && f->in_from)
				from_append(f, c);
			break;
		}
	}
}
