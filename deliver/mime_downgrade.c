/*
 * mime_downgrade.c - 8-bit MIME to 7-bit for a next hop without 8BITMIME,
 * as Postfix's smtp client does (mime_state with MIME_OPT_DOWNGRADE):
 * streamed over the body chunks as they go out, header by header, part
 * by part. An 8-bit message (BODY=8BITMIME, or 8-bit octets without it:
 * QUEUE_FLAG_8BITMIME) whose next hop does not offer 8BITMIME goes
 * through it (deliver/client_send.c).
 *
 *   - a leaf part (any type but multipart and message types) whose
 *     Content-Transfer-Encoding is 8bit or binary, or missing (a client
 *     that said BODY=8BITMIME may have put 8-bit octets there without
 *     saying so; quoted-printable of 7-bit text decodes to the same
 *     text): its body becomes quoted-printable and its header says so;
 *   - multipart and message/rfc822 with 8bit or binary: the header
 *     says 7bit, their parts are converted as above (recursively, up to
 *     MD_DEPTH levels; deeper, or without a usable boundary, the body
 *     goes as it is);
 *   - a message without MIME-Version: in its header is not MIME: it
 *     goes as it is (Postfix sends such 8-bit mail unchanged too).
 * Every other byte passes unchanged; Content-Type is never touched. An
 * entity's Content-Transfer-Encoding field is held until its header
 * ends (Content-Type may follow it) and goes out last in that header,
 * changed or not (DKIM signs fields by name: the order among different
 * names does not matter to it).
 * A converted message is a changed message: DKIM signatures over the
 * body break, as with Postfix; that is why 8BITMIME next hops get the
 * message as it came.
 *
 * Must not: do I/O, keep more than the fixed state in struct
 * smtp_mime_downgrade (a header field over MD_FIELD_MAX goes out as it
 * is and is not interpreted), lose or reorder a byte outside the parts
 * it converts, or emit a line over 76 octets in a part it encodes.
 *
 * Follows: RFC 2045 §6.7 (quoted-printable: =XX, soft line breaks, no
 * trailing white space), §6.4 (multipart and message/rfc822 are 7bit,
 * 8bit or binary only), RFC 2046 §5.1.1 (boundary delimiters, at most
 * 70 characters; a close delimiter ends the parts; transport padding),
 * §5.1.5 (multipart/digest: parts default to message/rfc822), RFC 6152
 * §3 (a server without 8BITMIME gets 7-bit data), RFC 5321 §4.5.3.1.6.
 */
#include <stdlib.h>
#include <string.h>

#include "deliver/deliver.h"

enum { MD_HEADER, MD_BODY, MD_RAW };
enum { BODY_PASS, BODY_QP };
enum { CT_LEAF, CT_MULTI, CT_MESSAGE, CT_OPAQUE };
enum { CTE_NONE, CTE_7BIT, CTE_8BIT, CTE_BINARY, CTE_OTHER };

#define QP_LINE 76	/* octets of an encoded line, the soft break's '=' included */

/* ---- output ---- */

struct md_out {
	char *p;
	size_t len, cap;
	bool oom;
};

/* put - n bytes to the output; remembers failure. */
static void put(struct md_out *o, const void *s, size_t n)
{
	size_t cap;
	char *p;

	if (o->oom || n == 0)
		return;
	if (o->len + n > o->cap) {
		cap = o->cap ? o->cap : 4096;
		while (cap < o->len + n)
			cap *= 2;
		if ((p = realloc(o->p, cap)) == NULL) {
			o->oom = true;
			return;
		}
		o->p = p;
		o->cap = cap;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void puts_(struct md_out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* ---- small helpers ---- */

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* prefix_ci - s[0..len) starts with word, ignoring ASCII case. */
static bool prefix_ci(const char *s, size_t len, const char *word)
{
	size_t n = strlen(word);

	if (len < n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lower(s[i]) != word[i])
			return false;
	return true;
}

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* field_value - the value of "Name: value" (after the colon and white space). */
static const char *field_value(const char *f, size_t len, size_t *vlen)
{
	const char *colon = memchr(f, ':', len);
	size_t i;

	if (!colon) {
		*vlen = 0;
		return f + len;
	}
	i = (size_t)(colon - f) + 1;
	while (i < len && (is_wsp(f[i]) || f[i] == '\r' || f[i] == '\n'))
		i++;
	*vlen = len - i;
	return f + i;
}

/* is_field - the field is "name:" (case-insensitive, white space before the colon allowed). */
static bool is_field(const char *f, size_t len, const char *name)
{
	size_t n = strlen(name);

	if (!prefix_ci(f, len, name))
		return false;
	while (n < len && is_wsp(f[n]))
		n++;
	return n < len && f[n] == ':';
}

/* ---- header fields ---- */

/* parse_cte - the encoding a Content-Transfer-Encoding value names. */
static int parse_cte(const char *v, size_t len)
{
	static const struct { const char *name; int cte; } names[] = {
		{ "7bit", CTE_7BIT }, { "8bit", CTE_8BIT }, { "binary", CTE_BINARY },
	};
	size_t n = 0;

	while (n < len && !is_wsp(v[n]) && v[n] != '\r' && v[n] != '\n' && v[n] != ';' && v[n] != '(')
		n++;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (n == strlen(names[i].name) && prefix_ci(v, n, names[i].name))
			return names[i].cte;
	return CTE_OTHER;	/* quoted-printable, base64, x-token: 7-bit already */
}

/*
 * parse_boundary - the boundary= parameter of a Content-Type value into
 * out (1..70 characters, RFC 2046 §5.1.1); false when there is none.
 */
static bool parse_boundary(const char *v, size_t len, char *out, size_t *outlen)
{
	bool quoted = false;
	size_t i, j, n = 0;

	for (i = 0; i < len; i++) {
		if (quoted && v[i] == '\\') {
			i++;
		} else if (v[i] == '"') {
			quoted = !quoted;
		} else if (v[i] == ';' && !quoted) {
			for (j = i + 1; j < len && (is_wsp(v[j]) || v[j] == '\r' || v[j] == '\n'); j++)
				;
			if (prefix_ci(v + j, len - j, "boundary="))
				break;
		}
	}
	if (i >= len)
		return false;
	i = j + 9;
	quoted = i < len && v[i] == '"';
	if (quoted)
		i++;
	for (; i < len && n <= MD_BOUNDARY_MAX; i++) {
		if (quoted ? v[i] == '"' : (v[i] == ';' || is_wsp(v[i]) || v[i] == '\r' || v[i] == '\n'))
			break;
		if (quoted && v[i] == '\\' && i + 1 < len)
			i++;
		if (n < MD_BOUNDARY_MAX)
			out[n] = v[i];
		n++;
	}
	if (n == 0 || n > MD_BOUNDARY_MAX)
		return false;
	*outlen = n;
	return true;
}

/* content_type - what a Content-Type value makes of the entity. */
static void content_type(struct smtp_mime_downgrade *md, const char *v, size_t len)
{
	md->ctype_seen = true;
	if (prefix_ci(v, len, "multipart/")) {
		md->ctype = parse_boundary(v, len, md->boundary, &md->boundary_len) ? CT_MULTI
										     : CT_OPAQUE;
		md->digest = prefix_ci(v, len, "multipart/digest");
	} else if (prefix_ci(v, len, "message/rfc822") || prefix_ci(v, len, "message/global")) {
		md->ctype = CT_MESSAGE;
	} else if (prefix_ci(v, len, "message/")) {
		md->ctype = CT_OPAQUE;	/* partial, external-body: 7bit by RFC 2046 */
	} else {
		md->ctype = CT_LEAF;
	}
}

/*
 * field_done - one complete header field (its line ends included): the
 * Content-Transfer-Encoding field is held back until the header ends
 * (it may have to change); the others go out as they are.
 */
static void field_done(struct smtp_mime_downgrade *md, struct md_out *o)
{
	const char *f = md->field, *v;
	size_t len = md->field_len, vlen;

	md->field_len = 0;
	if (len == 0)
		return;
	v = field_value(f, len, &vlen);
	if (md->top && is_field(f, len, "mime-version"))
		md->mime = true;
	if (!md->ctype_seen && is_field(f, len, "content-type"))
		content_type(md, v, vlen);
	if (!md->cte_held && md->cte == CTE_NONE && is_field(f, len, "content-transfer-encoding")) {
		md->cte = parse_cte(v, vlen);
		if (len <= sizeof(md->cte_field)) {
			memcpy(md->cte_field, f, len);
			md->cte_len = len;
			md->cte_held = true;
			return;
		}
		md->cte = CTE_OTHER;	/* too long to hold: it and its part go as they are */
	}
	put(o, f, len);
}

/* field_overflow - a field longer than MD_FIELD_MAX: out as it is, not interpreted. */
static void field_overflow(struct smtp_mime_downgrade *md, struct md_out *o)
{
	const char *f = md->field;
	size_t len = md->field_len;

	if (is_field(f, len, "content-type") && !md->ctype_seen) {
		md->ctype_seen = true;
		md->ctype = CT_OPAQUE;	/* its boundary cannot be known: hands off */
	}
	if (is_field(f, len, "content-transfer-encoding") && md->cte == CTE_NONE)
		md->cte = CTE_OTHER;
	put(o, f, len);
	md->field_len = 0;
	md->field_skip = true;
}

/* entity_reset - a new entity (a part, or a message/rfc822 body) starts with its header. */
static void entity_reset(struct smtp_mime_downgrade *md, bool digest_part)
{
	md->mode = MD_HEADER;
	md->ctype = digest_part ? CT_MESSAGE : CT_LEAF;
	md->ctype_seen = false;
	md->digest = false;
	md->cte = CTE_NONE;
	md->cte_held = false;
	md->cte_len = 0;
	md->field_len = 0;
	md->field_skip = false;
	md->line_start = true;
	md->hdr_cr = false;
}

/* put_cte - the entity's Content-Transfer-Encoding field as it goes out. */
static void put_cte(struct smtp_mime_downgrade *md, struct md_out *o, const char *replace)
{
	if (replace) {
		puts_(o, "Content-Transfer-Encoding: ");
		puts_(o, replace);
		puts_(o, "\r\n");
	} else if (md->cte_held) {
		put(o, md->cte_field, md->cte_len);
	}
	md->cte_held = false;
}

/* header_end - the empty line after an entity's header: decide its body. */
static void header_end(struct smtp_mime_downgrade *md, struct md_out *o)
{
	bool eight = md->cte == CTE_8BIT || md->cte == CTE_BINARY;

	md->mode = MD_BODY;
	md->body = BODY_PASS;
	if (md->top && !md->mime) {
		put_cte(md, o, NULL);	/* not MIME: the whole message as it is */
		md->mode = MD_RAW;
		return;
	}
	md->top = false;
	switch (md->ctype) {
	case CT_LEAF:
		if (eight || md->cte == CTE_NONE) {
			put_cte(md, o, "quoted-printable");
			md->body = BODY_QP;
			md->qp_binary = md->cte == CTE_BINARY;
			md->converted = true;
		} else {
			put_cte(md, o, NULL);
		}
		break;
	case CT_MULTI:
		if (md->nbnd >= MD_DEPTH) {
			put_cte(md, o, NULL);	/* too deep: as it is */
			break;
		}
		put_cte(md, o, eight ? "7bit" : NULL);
		memcpy(md->bnd[md->nbnd].b, md->boundary, md->boundary_len);
		md->bnd[md->nbnd].len = md->boundary_len;
		md->bnd[md->nbnd].digest = md->digest;
		md->nbnd++;
		break;
	case CT_MESSAGE:
		if (md->nested >= MD_DEPTH) {
			put_cte(md, o, NULL);
			break;
		}
		put_cte(md, o, eight ? "7bit" : NULL);
		md->nested++;
		md->pending_nested = true;	/* after the empty line: its header */
		break;
	default:
		put_cte(md, o, NULL);
		break;
	}
}

/* ---- quoted-printable (RFC 2045 §6.7) ---- */

/* qp_token - t (literal or "=XX") onto the encoded line, with a soft break before it if needed. */
static void qp_token(struct smtp_mime_downgrade *md, struct md_out *o, const char *t, size_t n)
{
	if (md->col + n > QP_LINE - 1) {
		puts_(o, "=\r\n");
		md->col = 0;
	}
	put(o, t, n);
	md->col += (unsigned)n;
}

static void qp_hex(struct smtp_mime_downgrade *md, struct md_out *o, unsigned char c)
{
	static const char hex[] = "0123456789ABCDEF";
	char t[3] = { '=', hex[c >> 4], hex[c & 15] };

	qp_token(md, o, t, 3);
}

/* qp_flush - the held white space and CR, now known not to end the line. */
static void qp_flush(struct smtp_mime_downgrade *md, struct md_out *o)
{
	if (md->qp_ws) {
		qp_token(md, o, &md->qp_ws, 1);
		md->qp_ws = 0;
	}
	if (md->qp_cr) {
		qp_hex(md, o, '\r');	/* a bare CR is data */
		md->qp_cr = false;
	}
}

/* qp_eol - the line ends: white space before it is encoded (§6.7 rule 3). */
static void qp_eol(struct smtp_mime_downgrade *md, struct md_out *o)
{
	if (md->qp_ws) {
		qp_hex(md, o, (unsigned char)md->qp_ws);
		md->qp_ws = 0;
	}
	md->qp_cr = false;
	puts_(o, "\r\n");
	md->col = 0;
}

/* qp_byte - one body byte of a part being encoded. */
static void qp_byte(struct smtp_mime_downgrade *md, struct md_out *o, char c)
{
	unsigned char u = (unsigned char)c;

	if (c == '\n' && md->qp_binary && !md->qp_cr) {
		qp_flush(md, o);
		qp_hex(md, o, '\n');	/* binary: a bare LF is data, kept exactly */
		return;
	}
	if (c == '\n') {
		qp_eol(md, o);	/* CRLF, or in text a bare LF: a line end either way */
		return;
	}
	if (md->qp_cr && c != '\n') {
		char ws = md->qp_ws;

		/* "\r" then not "\n": the white space before it was not at a line end */
		md->qp_ws = 0;
		if (ws)
			qp_token(md, o, &ws, 1);
		qp_hex(md, o, '\r');
		md->qp_cr = false;
	}
	if (c == '\r') {
		md->qp_cr = true;
		return;
	}
	qp_flush(md, o);
	if (c == ' ' || c == '\t')
		md->qp_ws = c;
	else if (u >= 33 && u <= 126 && c != '=')
		qp_token(md, o, &c, 1);
	else
		qp_hex(md, o, u);
}

/* ---- bodies and boundaries ---- */

static void header_in(struct smtp_mime_downgrade *md, struct md_out *o, char c);

/* body_byte - one byte of a body, as its mode says. */
static void body_byte(struct smtp_mime_downgrade *md, struct md_out *o, char c)
{
	if (md->body == BODY_QP)
		qp_byte(md, o, c);
	else
		put(o, &c, 1);
}

/*
 * boundary_match - the held line (without its line end) is a delimiter
 * of one of the open multiparts: its level, *close for "--b--"; -1 if none.
 */
static int boundary_match(const struct smtp_mime_downgrade *md, bool *close)
{
	const char *h = md->hold;
	size_t len = md->hold_len;

	while (len > 0 && (h[len - 1] == '\r' || h[len - 1] == '\n'))
		len--;
	while (len > 0 && is_wsp(h[len - 1]))
		len--;	/* transport padding */
	if (len < 2 || h[0] != '-' || h[1] != '-')
		return -1;
	for (int i = (int)md->nbnd - 1; i >= 0; i--) {
		size_t bl = md->bnd[i].len;

		if (len < 2 + bl || memcmp(h + 2, md->bnd[i].b, bl) != 0)
			continue;
		if (len == 2 + bl) {
			*close = false;
			return i;
		}
		if (len == 4 + bl && h[2 + bl] == '-' && h[3 + bl] == '-') {
			*close = true;
			return i;
		}
	}
	return -1;
}

/* hold_release - the held line start was no delimiter: through the body as usual. */
static void hold_release(struct smtp_mime_downgrade *md, struct md_out *o)
{
	size_t n = md->hold_len;

	md->holding = false;
	md->hold_len = 0;
	md->line_start = false;
	for (size_t i = 0; i < n; i++) {
		body_byte(md, o, md->hold[i]);
		if (md->hold[i] == '\n')
			md->line_start = true;
	}
}

/* hold_line_end - the held line ended: a delimiter, or body after all. */
static void hold_line_end(struct smtp_mime_downgrade *md, struct md_out *o)
{
	bool close = false;
	int level = boundary_match(md, &close);

	if (level < 0) {
		hold_release(md, o);
		return;
	}
	/* The encoder's line ended with the line before the delimiter. */
	md->qp_ws = 0;
	md->qp_cr = false;
	md->col = 0;
	put(o, md->hold, md->hold_len);
	md->holding = false;
	md->hold_len = 0;
	md->line_start = true;
	md->pending_nested = false;
	md->nested = 0;
	if (close) {
		md->nbnd = (size_t)level;	/* the epilogue: as it is */
		md->mode = MD_BODY;
		md->body = BODY_PASS;
		return;
	}
	md->nbnd = (size_t)level + 1;
	entity_reset(md, md->bnd[level].digest);
}

/* body_in - one byte in body mode: line starts that may be delimiters are held. */
static void body_in(struct smtp_mime_downgrade *md, struct md_out *o, char c)
{
	if (md->holding) {
		md->hold[md->hold_len++] = c;
		if (c == '\n')
			hold_line_end(md, o);
		else if (md->hold_len >= sizeof(md->hold) || (md->hold_len == 2 && c != '-'))
			hold_release(md, o);
		return;
	}
	if (md->line_start && c == '-' && md->nbnd > 0) {
		md->holding = true;
		md->hold[0] = c;
		md->hold_len = 1;
		return;
	}
	if (md->line_start && md->pending_nested) {
		/* message/rfc822: the embedded message's header starts here. */
		md->pending_nested = false;
		entity_reset(md, false);
		header_in(md, o, c);
		return;
	}
	body_byte(md, o, c);
	md->line_start = c == '\n';
}

/* ---- headers ---- */

/* header_byte - one byte of the field being gathered (or of one too long to gather). */
static void header_byte(struct smtp_mime_downgrade *md, struct md_out *o, char c)
{
	if (md->field_skip) {
		put(o, &c, 1);
		return;
	}
	md->field[md->field_len++] = c;
	if (md->field_len >= sizeof(md->field))
		field_overflow(md, o);
}

/* header_done - the empty line (eol) ends the header: its body begins. */
static void header_done(struct smtp_mime_downgrade *md, struct md_out *o, const char *eol)
{
	header_end(md, o);
	puts_(o, eol);
	md->line_start = true;
}

/* header_in - one byte of a header section, gathered field by field. */
static void header_in(struct smtp_mime_downgrade *md, struct md_out *o, char c)
{
	if (md->hdr_cr) {
		md->hdr_cr = false;
		if (c == '\n') {
			header_done(md, o, "\r\n");
			return;
		}
		header_byte(md, o, '\r');	/* a bare CR starting a (broken) field */
		md->line_start = false;
	} else if (md->line_start) {
		if (!is_wsp(c)) {
			field_done(md, o);	/* the previous field is complete */
			md->field_skip = false;
		}
		if (c == '\r') {
			md->hdr_cr = true;
			return;
		}
		if (c == '\n') {
			header_done(md, o, "\n");
			return;
		}
	}
	header_byte(md, o, c);
	md->line_start = c == '\n';
}

/* ---- the interface ---- */

/* smtp_mime_downgrade_init - see deliver.h. */
void smtp_mime_downgrade_init(struct smtp_mime_downgrade *md)
{
	memset(md, 0, sizeof(*md));
	entity_reset(md, false);
	md->top = true;
}

/* feed - one byte where the state says. */
static void feed(struct smtp_mime_downgrade *md, struct md_out *o, char c)
{
	if (md->mode == MD_HEADER)
		header_in(md, o, c);
	else
		body_in(md, o, c);
}

/* done - the output of a call; -1 when memory ran out. */
static int done(struct md_out *o, char **out, size_t *outlen)
{
	if (o->oom) {
		free(o->p);
		return -1;
	}
	*out = o->p;
	*outlen = o->len;
	return 0;
}

/* smtp_mime_downgrade_feed - see deliver.h. */
int smtp_mime_downgrade_feed(struct smtp_mime_downgrade *md, const char *in, size_t n,
			     char **out, size_t *outlen)
{
	struct md_out o = { 0 };
	size_t i;

	for (i = 0; i < n && md->mode != MD_RAW; i++)
		feed(md, &o, in[i]);
	if (i < n)
		put(&o, in + i, n - i);	/* not MIME: the rest as it is */
	return done(&o, out, outlen);
}

/* smtp_mime_downgrade_finish - see deliver.h. */
int smtp_mime_downgrade_finish(struct smtp_mime_downgrade *md, char **out, size_t *outlen)
{
	struct md_out o = { 0 };

	if (md->mode == MD_HEADER) {
		if (md->hdr_cr)
			header_byte(md, &o, '\r');
		md->hdr_cr = false;
		field_done(md, &o);
		put_cte(md, &o, NULL);	/* a header without an end: as it came */
	} else if (md->mode == MD_BODY) {
		if (md->holding)
			hold_release(md, &o);
		if (md->body == BODY_QP) {
			if (md->qp_ws)
				qp_hex(md, &o, (unsigned char)md->qp_ws);
			if (md->qp_cr)
				qp_hex(md, &o, '\r');
			md->qp_ws = 0;
			md->qp_cr = false;
		}
	}
	md->mode = MD_RAW;
	return done(&o, out, outlen);
}
