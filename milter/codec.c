/*
 * codec.c - the Sendmail milter protocol, version 6, as bytes: packets
 * encoded for a milter, packets decoded from it, and the `milter =` line
 * of mtad.conf. Pure: no I/O, no allocation, no logging; every length is
 * checked against the buffer it lands in and every packet from a milter
 * is bounded by MILTER_PACKET_MAX, so a hostile filter cannot make mtad
 * read past a buffer or grow one.
 *
 * Must not: do I/O, call into mtad (this folder is floor 0 and includes
 * nothing of mtad), trust a length or a string from a milter.
 *
 * Follows: Sendmail's libmilter protocol (mfdef.h, version 6) as Postfix's
 * src/milter/milter8.c speaks it; RFC 5321 §4.2 for the reply codes a
 * milter may give (SMFIR_REPLYCODE).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "milter/milter.h"

/* ---- the configuration line ---- */

const char *milter_action_name(enum milter_action a)
{
	return a == MILTER_ACCEPT ? "accept" : a == MILTER_REJECT ? "reject" : "tempfail";
}

/* spec_err - formats err; always -1. */
static int spec_err(char *err, size_t errlen, const char *fmt, const char *arg)
{
	snprintf(err, errlen, fmt, arg);
	return -1;
}

/* spec_address - "unix:/path" or "inet:127.0.0.1:PORT" (loopback only: the
 * protocol is clear text and unauthenticated). */
static int spec_address(const char *a, struct milter_spec *out, char *err, size_t errlen)
{
	if (strncmp(a, "unix:", 5) == 0) {
		if (a[5] != '/' || strlen(a + 5) >= sizeof(out->path))
			return spec_err(err, errlen, "milter address \"%s\": unix: needs an absolute path", a);
		out->unix_socket = true;
		snprintf(out->path, sizeof(out->path), "%s", a + 5);
		return 0;
	}
	if (strncmp(a, "inet:", 5) == 0) {
		const char *colon = strrchr(a + 5, ':');
		char *end;
		long port;

		if (!colon || (size_t)(colon - (a + 5)) >= sizeof(out->path) || colon == a + 5)
			return spec_err(err, errlen, "milter address \"%s\": expected inet:ADDRESS:PORT", a);
		port = strtol(colon + 1, &end, 10);
		if (*end || colon[1] == '\0' || port < 1 || port > 65535)
			return spec_err(err, errlen, "milter address \"%s\": port must be 1..65535", a);
		snprintf(out->path, sizeof(out->path), "%.*s", (int)(colon - (a + 5)), a + 5);
		if (strcmp(out->path, "127.0.0.1") != 0 && strcmp(out->path, "::1") != 0 &&
		    strncmp(out->path, "127.", 4) != 0)
			return spec_err(err, errlen, "milter address \"%s\": only loopback addresses "
					"(the milter protocol is unencrypted)", a);
		out->port = (int)port;
		return 0;
	}
	return spec_err(err, errlen, "milter address \"%s\": expected unix:/path or inet:127.0.0.1:PORT", a);
}

/* spec_seconds - a timeout value, 1..3600. */
static int spec_seconds(const char *v, unsigned *out)
{
	char *end;
	long n = strtol(v, &end, 10);

	if (*v == '\0' || *end || n < 1 || n > 3600)
		return -1;
	*out = (unsigned)n;
	return 0;
}

/* spec_option - one KEY=VALUE word after the address. */
static int spec_option(const char *w, struct milter_spec *out, char *err, size_t errlen)
{
	const char *eq = strchr(w, '=');
	unsigned *t = NULL;

	if (!eq)
		return spec_err(err, errlen, "milter option \"%s\": expected KEY=VALUE", w);
	if (strncmp(w, "connect_timeout=", 16) == 0)
		t = &out->connect_timeout;
	else if (strncmp(w, "command_timeout=", 16) == 0)
		t = &out->command_timeout;
	else if (strncmp(w, "content_timeout=", 16) == 0)
		t = &out->content_timeout;
	if (t) {
		if (spec_seconds(eq + 1, t) < 0)
			return spec_err(err, errlen, "milter option \"%s\": seconds 1..3600", w);
		return 0;
	}
	if (strncmp(w, "default_action=", 15) != 0)
		return spec_err(err, errlen, "unknown milter option \"%s\" (connect_timeout, "
				"command_timeout, content_timeout, default_action)", w);
	if (strcmp(eq + 1, "tempfail") == 0)
		out->default_action = MILTER_TEMPFAIL;
	else if (strcmp(eq + 1, "accept") == 0)
		out->default_action = MILTER_ACCEPT;
	else if (strcmp(eq + 1, "reject") == 0)
		out->default_action = MILTER_REJECT;
	else
		return spec_err(err, errlen, "milter option \"%s\": tempfail, accept or reject", w);
	return 0;
}

/* spec_name - letters, digits, '-', '_', '.': it appears in log lines. */
static bool spec_name_ok(const char *n)
{
	if (*n == '\0' || strlen(n) >= MILTER_NAME_MAX)
		return false;
	for (; *n; n++)
		if (!isalnum((unsigned char)*n) && *n != '-' && *n != '_' && *n != '.')
			return false;
	return true;
}

/* milter_spec_parse - see milter.h. */
int milter_spec_parse(const char *value, struct milter_spec *out, char *err, size_t errlen)
{
	char copy[MILTER_LINE_MAX], *save = NULL, *w;
	int i = 0;

	memset(out, 0, sizeof(*out));
	/* Postfix: milter_connect_timeout 30s, milter_command_timeout 30s,
	 * milter_content_timeout 300s, milter_default_action tempfail. */
	out->connect_timeout = 30;
	out->command_timeout = 30;
	out->content_timeout = 300;
	out->default_action = MILTER_TEMPFAIL;
	if (strlen(value) >= sizeof(copy))
		return spec_err(err, errlen, "milter line is too long%s", "");
	snprintf(copy, sizeof(copy), "%s", value);
	for (w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save), i++) {
		if (i == 0 && !spec_name_ok(w))
			return spec_err(err, errlen, "milter name \"%s\": letters, digits, '-', '_', '.'", w);
		if (i == 0)
			snprintf(out->name, sizeof(out->name), "%s", w);
		else if (i == 1 && spec_address(w, out, err, errlen) < 0)
			return -1;
		else if (i > 1 && spec_option(w, out, err, errlen) < 0)
			return -1;
	}
	if (i < 2)
		return spec_err(err, errlen, "milter \"%s\": expected NAME unix:/path|inet:127.0.0.1:PORT "
				"[option=value ...]", value);
	return 0;
}

/* ---- encoding ---- */

void milter_buf_init(struct milter_buf *b, void *mem, size_t cap)
{
	b->data = mem;
	b->len = 0;
	b->cap = cap;
	b->overflow = false;
}

/* buf_room - true when n more bytes fit; else the overflow is noted. */
static bool buf_room(struct milter_buf *b, size_t n)
{
	if (b->overflow || n > b->cap - b->len) {
		b->overflow = true;
		return false;
	}
	return true;
}

static void put_u32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* packet_begin - the length and command of a packet of len data bytes; false when it does not fit. */
static bool packet_begin(struct milter_buf *b, char cmd, size_t len)
{
	if (len >= MILTER_PACKET_MAX || !buf_room(b, 5 + len))
		return false;
	put_u32(b->data + b->len, (uint32_t)len + 1);
	b->data[b->len + 4] = (unsigned char)cmd;
	b->len += 5;
	return true;
}

/* buf_add - bytes the caller made room for with packet_begin. */
static void buf_add(struct milter_buf *b, const void *p, size_t n)
{
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
}

void milter_put_packet(struct milter_buf *b, char cmd, const void *data, size_t len)
{
	if (packet_begin(b, cmd, len))
		buf_add(b, data, len);
}

void milter_put_optneg(struct milter_buf *b, uint32_t version, uint32_t actions,
		       uint32_t protocol)
{
	unsigned char d[12];

	put_u32(d, version);
	put_u32(d + 4, actions);
	put_u32(d + 8, protocol);
	milter_put_packet(b, SMFIC_OPTNEG, d, sizeof(d));
}

void milter_put_strings(struct milter_buf *b, char cmd, const char *const *strs, size_t n)
{
	size_t len = 0;

	for (size_t i = 0; i < n; i++)
		len += strlen(strs[i] ? strs[i] : "") + 1;
	if (!packet_begin(b, cmd, len))
		return;
	for (size_t i = 0; i < n; i++)
		buf_add(b, strs[i] ? strs[i] : "", strlen(strs[i] ? strs[i] : "") + 1);
}

void milter_put_connect(struct milter_buf *b, const char *name, char family, uint16_t port,
			const char *addr)
{
	size_t nl = strlen(name) + 1, al = strlen(addr) + 1;
	unsigned char p[2] = { (unsigned char)(port >> 8), (unsigned char)port };

	/* SMFIA_UNKNOWN ('U'): the family alone; '4', '6' and 'L' (a Unix
	 * socket: the port is 0 and the address its path) carry both. */
	if (family == 'U') {
		if (packet_begin(b, SMFIC_CONNECT, nl + 1)) {
			buf_add(b, name, nl);
			buf_add(b, &family, 1);
		}
		return;
	}
	if (!packet_begin(b, SMFIC_CONNECT, nl + 1 + 2 + al))
		return;
	buf_add(b, name, nl);
	buf_add(b, &family, 1);
	buf_add(b, p, 2);
	buf_add(b, addr, al);
}

void milter_put_macros(struct milter_buf *b, char cmd, const char *const *pairs, size_t n)
{
	size_t len = 1;

	for (size_t i = 0; i + 1 < 2 * n; i += 2)
		if (pairs[i + 1])
			len += strlen(pairs[i]) + 1 + strlen(pairs[i + 1]) + 1;
	if (!packet_begin(b, SMFIC_MACRO, len))
		return;
	buf_add(b, &cmd, 1);
	for (size_t i = 0; i + 1 < 2 * n; i += 2) {
		if (!pairs[i + 1])
			continue;
		buf_add(b, pairs[i], strlen(pairs[i]) + 1);
		buf_add(b, pairs[i + 1], strlen(pairs[i + 1]) + 1);
	}
}

/* ---- decoding ---- */

void milter_decoder_init(struct milter_decoder *d, void *mem)
{
	memset(d, 0, sizeof(*d));
	d->data = mem;
}

void milter_decoder_reset(struct milter_decoder *d)
{
	d->hdrlen = 0;
	d->len = 0;
	d->got = 0;
}

size_t milter_decode(struct milter_decoder *d, const void *in, size_t n, bool *complete)
{
	const unsigned char *p = in;
	size_t used = 0, take;

	*complete = false;
	if (d->error)
		return 0;
	while (d->hdrlen < 4 && used < n)
		d->hdr[d->hdrlen++] = p[used++];
	if (d->hdrlen < 4)
		return used;
	if (d->len == 0) {
		d->len = get_u32(d->hdr);
		if (d->len == 0 || d->len > MILTER_PACKET_MAX) {
			d->error = true;
			return used;
		}
	}
	take = d->len - d->got;
	if (take > n - used)
		take = n - used;
	memcpy(d->data + d->got, p + used, take);
	d->got += take;
	used += take;
	*complete = d->got == d->len;
	return used;
}

int milter_parse_optneg(const unsigned char *data, size_t len, struct milter_optneg *out)
{
	/* Version 6 may append the macro lists (SMFIP SETSYMLIST) after the
	 * three words; we do not use them, so extra bytes are ignored. */
	if (len < 12)
		return -1;
	out->version = get_u32(data);
	out->actions = get_u32(data + 4);
	out->protocol = get_u32(data + 8);
	if (out->version < 2 || out->version > MILTER_VERSION)
		return -1;
	return 0;
}

int milter_parse_strings(const unsigned char *data, size_t len, const char **out, size_t max)
{
	size_t n = 0, start = 0;

	if (len == 0 || data[len - 1] != '\0')
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (data[i] != '\0')
			continue;
		if (n == max)
			return -1;
		out[n++] = (const char *)data + start;
		start = i + 1;
	}
	return (int)n;
}

/* header_text_ok - a field name is printable without ':' or space; a value
 * has no NUL (guaranteed by the parse) and no bare CR or LF: folding is
 * "\n" followed by a space or tab, as libmilter passes it. */
static bool header_name_ok(const char *n)
{
	if (*n == '\0' || strlen(n) > 997)
		return false;
	for (; *n; n++)
		if (*n <= ' ' || *n >= 127 || *n == ':')
			return false;
	return true;
}

static bool header_value_ok(const char *v)
{
	if (strlen(v) > 16 * 1024)
		return false;
	for (; *v; v++) {
		if (*v == '\r' && v[1] == '\n')
			v++;
		if ((*v == '\n' && v[1] != ' ' && v[1] != '\t') || (*v == '\r'))
			return false;
	}
	return true;
}

int milter_parse_header_mod(char cmd, const unsigned char *data, size_t len,
			    struct milter_header_mod *out)
{
	const char *s[2];

	out->index = 0;
	if (cmd == SMFIR_INSHEADER || cmd == SMFIR_CHGHEADER) {
		if (len < 4)
			return -1;
		out->index = get_u32(data);
		data += 4;
		len -= 4;
	} else if (cmd != SMFIR_ADDHEADER) {
		return -1;
	}
	if (milter_parse_strings(data, len, s, 2) != 2)
		return -1;
	if (!header_name_ok(s[0]) || !header_value_ok(s[1]))
		return -1;
	out->name = s[0];
	out->value = s[1];
	return 0;
}

/* reply_line_ok - one line of a reply: "CCC" as code, then sep ('-' before another line, ' ' or nothing last), no controls. */
static bool reply_line_ok(const char *l, size_t n, const char *code, bool last)
{
	if (n < 3 || memcmp(l, code, 3) != 0)
		return false;
	if (n > 3 && l[3] != (last ? ' ' : '-'))
		return false;
	if (n == 3 && !last)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)l[i] < ' ' || l[i] == 127)
			return false;
	return true;
}

int milter_parse_replycode(const unsigned char *data, size_t len, int *code, const char **text)
{
	const char *s[1];
	const char *t, *l;
	size_t lines = 0;

	if (milter_parse_strings(data, len, s, 1) != 1)
		return -1;
	t = s[0];
	if (strlen(t) < 3 || strlen(t) > MILTER_REPLY_MAX)
		return -1;
	if ((t[0] != '4' && t[0] != '5') || !isdigit((unsigned char)t[1]) ||
	    !isdigit((unsigned char)t[2]))
		return -1;
	for (l = t; l != NULL; lines++) {
		const char *crlf = strstr(l, "\r\n");
		size_t n = crlf ? (size_t)(crlf - l) : strlen(l);

		if (lines >= MILTER_REPLY_LINES || !reply_line_ok(l, n, t, crlf == NULL))
			return -1;
		l = crlf ? crlf + 2 : NULL;
	}
	*code = (t[0] - '0') * 100 + (t[1] - '0') * 10 + (t[2] - '0');
	*text = t[3] ? t + 4 : t + 3;
	return 0;
}

size_t milter_reply_line(const char *p, const char **next)
{
	const char *crlf = strstr(p, "\r\n"), *nl;

	if (crlf == NULL) {
		*next = NULL;
		return strlen(p);
	}
	nl = crlf + 2;	/* the next line: "CCC-text", "CCC text" or a last "CCC" */
	*next = nl[3] ? nl + 4 : nl + 3;
	return (size_t)(crlf - p);
}
