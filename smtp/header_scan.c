/*
 * header_scan.c - finds where a message's header section ends as the
 * body streams by, and whether it has Date: and Message-ID:, so the
 * session can add the ones a submission lacks right there (RFC 6409
 * §8.2, §8.3) without holding the message back; and keeps the first
 * Message-ID: value (bounded) for the log's message-id= line.
 *
 * Pure: no I/O, no allocation, no clock. Must not: look past the header
 * section, or take more than one byte of the next line to decide that
 * the section is over (the bytes before that byte may already be on
 * their way to the queue).
 *
 * Follows: RFC 5322 §2.2 (fields: name, colon, body; the section ends at
 * the first empty line), §2.2.3 (a line starting with white space
 * continues a field), §3.6.1 (Date:), §3.6.4 (Message-ID:).
 */
#include <string.h>
#include <strings.h>

#include "smtp/smtp.h"

/* smtp_header_scan_init - see smtp.h. */
void smtp_header_scan_init(struct smtp_header_scan *h)
{
	memset(h, 0, sizeof(*h));
	h->at_line_start = true;
}

/* name_done - the field's name is complete: is it one we look for? */
static void name_done(struct smtp_header_scan *h)
{
	while (h->name_len > 0 && (h->name[h->name_len - 1] == ' ' || h->name[h->name_len - 1] == '\t'))
		h->name_len--;	/* RFC 5322 §4.5: "Date :" is obsolete but seen */
	if (h->name_len == 4 && strncasecmp(h->name, "date", 4) == 0)
		h->has_date = true;
	else if (h->name_len == 10 && strncasecmp(h->name, "message-id", 10) == 0) {
		/* Only the first one: a second (RFC 5322 allows one) is not logged. */
		h->in_message_id = !h->has_message_id;
		h->has_message_id = true;
	}
	h->in_name = false;
}

/* smtp_header_scan_feed - see smtp.h. */
size_t smtp_header_scan_feed(struct smtp_header_scan *h, const char *p, size_t n)
{
	if (h->done)
		return 0;
	for (size_t i = 0; i < n && !h->done; i++) {
		char c = p[i];

		if (h->at_line_start) {
			h->at_line_start = false;
			if (c == '\r' || c == '\n') {
				h->done = true;	/* the empty line: the body follows */
				return i;
			}
			h->in_name = c != ' ' && c != '\t';
			h->name_len = 0;
			if (h->in_name)
				h->in_message_id = false;	/* a new field; else it folds on */
		}
		if (c == '\n') {
			h->at_line_start = true;
			h->in_name = false;
		} else if (h->in_message_id && !h->in_name) {
			/* White space before the value takes no room. */
			bool lead = h->message_id_len == 0 && (c == ' ' || c == '\t');

			if (c != '\r' && !lead && h->message_id_len < sizeof(h->message_id))
				h->message_id[h->message_id_len++] = c;
		} else if (h->in_name && c == ':') {
			name_done(h);
		} else if (h->in_name && h->name_len < sizeof(h->name)) {
			h->name[h->name_len++] = c;
		} else if (h->in_name) {
			h->in_name = false;	/* longer than any name we look for */
		}
	}
	return n;
}

/* is_wsp - white space around a field's value (RFC 5322 §2.2.3 folds included). */
static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* smtp_header_message_id - see smtp.h. */
size_t smtp_header_message_id(const struct smtp_header_scan *h, const char **id)
{
	const char *p = h->message_id;
	size_t n = h->message_id_len;

	while (n > 0 && is_wsp(*p)) {
		p++;
		n--;
	}
	while (n > 0 && is_wsp(p[n - 1]))
		n--;
	*id = p;
	return n;
}
