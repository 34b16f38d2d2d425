/*
 * canon.c - DKIM's relaxed canonicalization of header fields and of the
 * body, the body streamed in chunks split anywhere (a session hashes
 * the body as it arrives and never reads it twice), and the domain of
 * the From: address, which chooses the signing key.
 *
 * Pure: no I/O, no allocation, no clock.
 * Must not: keep more than a few flags between chunks (the body can be
 * 50 MB), give a different output for a different split of the same
 * bytes (t/fuzz/fuzz_dkim.c checks it), or find a domain in a From: that
 * holds more than one address (such mail is not signed).
 *
 * Follows: RFC 6376 §3.4.2 (relaxed header), §3.4.4 (relaxed body),
 * §3.4.5 (its example), RFC 5322 §3.4 (addresses), §2.2.3 (unfolding).
 */
#include <string.h>

#include "dkim/dkim.h"

static bool is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* dkim_canon_header - see dkim.h. */
size_t dkim_canon_header(const char *field, size_t len, char *out, bool crlf)
{
	const char *colon = memchr(field, ':', len);
	size_t n = 0, name_end, i;
	bool wsp = false, started = false;

	if (colon == NULL)
		return 0;
	name_end = (size_t)(colon - field);
	while (name_end > 0 && is_wsp((unsigned char)field[name_end - 1]))
		name_end--;
	for (i = 0; i < name_end; i++) {
		unsigned char c = (unsigned char)field[i];

		out[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	out[n++] = ':';
	for (i = (size_t)(colon - field) + 1; i < len; i++) {
		unsigned char c = (unsigned char)field[i];

		if (c == '\r' || c == '\n')
			continue;	/* unfolding: the line break goes, its white space stays */
		if (is_wsp(c)) {
			wsp = true;
			continue;
		}
		/* White space between the colon and the value is not written. */
		if (wsp && started)
			out[n++] = ' ';
		wsp = false;
		started = true;
		out[n++] = (char)c;
	}
	if (crlf) {
		out[n++] = '\r';
		out[n++] = '\n';
	}
	return n;
}

/* dkim_body_canon_init - see dkim.h. */
void dkim_body_canon_init(struct dkim_body_canon *c, dkim_out_fn out, void *arg)
{
	memset(c, 0, sizeof(*c));
	c->out = out;
	c->arg = arg;
}

/* canon_content - a byte that is not white space or a line end: what
 * waited before it (empty lines, one SP) is written first. */
static void canon_content(struct dkim_body_canon *c, const char *p, size_t n)
{
	static const char crlf[] = "\r\n";

	for (; c->blank_lines > 0; c->blank_lines--)
		c->out(c->arg, crlf, 2);
	if (c->wsp)
		c->out(c->arg, " ", 1);
	c->wsp = false;
	c->content = true;
	c->out(c->arg, p, n);
}

/* canon_line_end - a CRLF: a line with content ends now, an empty one waits. */
static void canon_line_end(struct dkim_body_canon *c)
{
	c->wsp = false;		/* white space at the end of a line goes */
	if (c->content)
		c->out(c->arg, "\r\n", 2);
	else
		c->blank_lines++;
	c->content = false;
}

/* dkim_body_canon_feed - see dkim.h. Runs of ordinary bytes go out in one call. */
void dkim_body_canon_feed(struct dkim_body_canon *c, const void *data, size_t len)
{
	const char *p = data;
	size_t i = 0;

	while (i < len) {
		unsigned char b = (unsigned char)p[i];
		size_t run;

		if (c->cr) {
			c->cr = false;
			if (b == '\n') {
				canon_line_end(c);
				i++;
				continue;
			}
			canon_content(c, "\r", 1);	/* a bare CR is an ordinary byte */
		}
		if (b == '\r') {
			c->cr = true;
			i++;
		} else if (is_wsp(b)) {
			c->wsp = true;
			i++;
		} else {
			for (run = i + 1; run < len && p[run] != '\r' && !is_wsp((unsigned char)p[run]);
			     run++)
				;
			canon_content(c, p + i, run - i);
			i = run;
		}
	}
}

/* dkim_body_canon_finish - see dkim.h. */
void dkim_body_canon_finish(struct dkim_body_canon *c)
{
	if (c->cr) {
		c->cr = false;
		canon_content(c, "\r", 1);
	}
	if (c->content)
		c->out(c->arg, "\r\n", 2);
	c->content = false;
	c->wsp = false;
	c->blank_lines = 0;
}

/* domain_ok - a plain host name: letters, digits, '-', dots between labels. */
static bool domain_ok(const char *d, size_t n)
{
	size_t label = 0;

	if (n == 0 || n > DKIM_DOMAIN_MAX || d[0] == '.' || d[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)d[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-') || ++label > 63)
			return false;
	}
	return true;
}

/*
 * dkim_from_domain - see dkim.h. Comments and quoted strings are
 * skipped; a ',' outside them means a second address; the address is
 * the one in <> when there is one, else the bare addr-spec.
 */
int dkim_from_domain(const char *value, size_t len, char *out, size_t size)
{
	size_t at = 0, end = 0, depth = 0;
	bool quoted = false, have_at = false, in_angle = false, angle_done = false;

	for (size_t i = 0; i < len; i++) {
		char c = value[i];

		if (quoted) {
			if (c == '\\' && i + 1 < len)
				i++;
			else if (c == '"')
				quoted = false;
			continue;
		}
		if (depth > 0) {
			if (c == '\\' && i + 1 < len)
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			continue;
		}
		if (c == '"') {
			quoted = true;
		} else if (c == '(') {
			depth = 1;
		} else if (c == ',' || c == ';') {
			return -1;	/* a second address, or a group */
		} else if (c == '<') {
			if (angle_done || in_angle)
				return -1;
			in_angle = true;
			have_at = false;
		} else if (c == '>' && in_angle) {
			in_angle = false;
			angle_done = true;
			end = i;
		} else if (c == '@' && (in_angle || !angle_done)) {
			at = i + 1;
			have_at = true;
		}
	}
	if (quoted || depth > 0 || in_angle || !have_at)
		return -1;
	if (!angle_done) {
		/* A bare addr-spec: the domain runs to white space, a comment or the end. */
		end = at;
		while (end < len && !is_wsp((unsigned char)value[end]) && value[end] != '(' &&
		       value[end] != '\r' && value[end] != '\n')
			end++;
	}
	if (end < at || end - at >= size || !domain_ok(value + at, end - at))
		return -1;
	for (size_t i = 0; i < end - at; i++) {
		char c = value[at + i];

		out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	out[end - at] = '\0';
	return 0;
}
