/*
 * sign.c - one message's DKIM signer: the fields of the signed set kept
 * in relaxed form as the header streams by, the body hashed as its
 * chunks stream by (SHA-256 of the relaxed body, one pass, nothing of
 * the body kept), and at the end one DKIM-Signature field per key,
 * folded, for the session to put in front of the stored message.
 *
 * Signed fields (only those present): From (listed once more than it
 * appears, so a From: added on the way breaks the signature), To, Cc,
 * Subject, Date, Message-ID, MIME-Version, Content-Type,
 * Content-Transfer-Encoding, Reply-To, In-Reply-To, References. Instances
 * are taken from the bottom up, as a verifier does (RFC 6376 §5.4.2).
 *
 * Must not: do I/O, keep more than DKIM_HEADER_KEEP_MAX bytes or
 * DKIM_HEADER_FIELDS_MAX fields of header (a message with more is not
 * signed, and the caller says so), keep any of the body, or sign a
 * message whose From: gives no single domain.
 *
 * Follows: RFC 6376 §3.5 (the tags), §3.7 (the hashes), §5.4 (which
 * fields), RFC 8463 §3 (ed25519-sha256 signs the SHA-256 of the header
 * data), RFC 5322 §2.2.3 (folding: lines of at most 78 octets).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "dkim/dkim_int.h"

static const char *const signed_names[] = {
	"from", "to", "cc", "subject", "date", "message-id", "mime-version", "content-type",
	"content-transfer-encoding", "reply-to", "in-reply-to", "references",
};
#define NNAMES (sizeof(signed_names) / sizeof(signed_names[0]))
#define NAME_MAX_LEN 32		/* longer names are of no signed field */
#define SIG_FIELD_MAX 4096	/* one folded DKIM-Signature field */

enum feed_state { F_LINE_START, F_CR_AT_START, F_NAME, F_VALUE, F_BODY };

struct kept {
	unsigned name;		/* index in signed_names */
	size_t off, len;	/* the relaxed field in sg->keep, CRLF included */
};

struct dkim_signer {
	EVP_MD_CTX *body_sha;
	struct dkim_body_canon canon;
	char *keep;		/* relaxed fields, DKIM_HEADER_KEEP_MAX bytes at most */
	size_t keep_len, keep_cap;
	struct kept fields[DKIM_HEADER_FIELDS_MAX];
	size_t nfields;
	unsigned nfrom;
	char from_domain[DKIM_DOMAIN_MAX + 1];	/* "" when none or not usable */
	bool too_big;		/* more header than kept: not signed */
	bool failed;		/* out of memory: not signed */
	/* dkim_signer_feed's parse of the header section. */
	enum feed_state state;
	char *cur;		/* the field being read, when it is a signed one */
	size_t cur_len, cur_cap;
	char name[NAME_MAX_LEN + 1];
	size_t name_len;
	bool cur_keep;
};

/* body_out - relaxed body bytes into the body hash. */
static void body_out(void *arg, const void *data, size_t len)
{
	struct dkim_signer *sg = arg;

	if (EVP_DigestUpdate(sg->body_sha, data, len) != 1)
		sg->failed = true;
}

/* dkim_signer_new - see dkim.h. */
struct dkim_signer *dkim_signer_new(void)
{
	struct dkim_signer *sg = calloc(1, sizeof(*sg));

	if (sg == NULL)
		return NULL;
	if ((sg->body_sha = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(sg->body_sha, EVP_sha256(), NULL) != 1) {
		dkim_signer_free(sg);
		return NULL;
	}
	dkim_body_canon_init(&sg->canon, body_out, sg);
	return sg;
}

/* dkim_signer_free - see dkim.h. */
void dkim_signer_free(struct dkim_signer *sg)
{
	if (sg == NULL)
		return;
	EVP_MD_CTX_free(sg->body_sha);
	free(sg->keep);
	free(sg->cur);
	free(sg);
}

/* name_index - the field name's place in signed_names, or -1. */
static int name_index(const char *name, size_t len)
{
	while (len > 0 && (name[len - 1] == ' ' || name[len - 1] == '\t'))
		len--;
	for (size_t i = 0; i < NNAMES; i++)
		if (strlen(signed_names[i]) == len && strncasecmp(signed_names[i], name, len) == 0)
			return (int)i;
	return -1;
}

/* keep_room - room for n more bytes in sg->keep, within the bound. */
static bool keep_room(struct dkim_signer *sg, size_t n)
{
	size_t cap;
	char *p;

	if (n > DKIM_HEADER_KEEP_MAX - sg->keep_len) {
		sg->too_big = true;
		return false;
	}
	if (sg->keep_len + n <= sg->keep_cap)
		return true;
	cap = sg->keep_cap ? sg->keep_cap * 2 : 4096;
	while (cap < sg->keep_len + n)
		cap *= 2;
	if (cap > DKIM_HEADER_KEEP_MAX)
		cap = DKIM_HEADER_KEEP_MAX;
	if ((p = realloc(sg->keep, cap)) == NULL) {
		sg->failed = true;
		return false;
	}
	sg->keep = p;
	sg->keep_cap = cap;
	return true;
}

/* note_from - a From: field: the first one gives the domain, a second spoils it. */
static void note_from(struct dkim_signer *sg, const char *field, size_t len)
{
	const char *colon = memchr(field, ':', len);

	if (++sg->nfrom > 1 || colon == NULL ||
	    dkim_from_domain(colon + 1, len - (size_t)(colon + 1 - field), sg->from_domain,
			     sizeof(sg->from_domain)) != 0)
		sg->from_domain[0] = '\0';
}

/* dkim_signer_header - see dkim.h. */
void dkim_signer_header(struct dkim_signer *sg, const char *field, size_t len)
{
	const char *colon = memchr(field, ':', len);
	int idx;

	if (colon == NULL || (idx = name_index(field, (size_t)(colon - field))) < 0)
		return;
	if (sg->nfields >= DKIM_HEADER_FIELDS_MAX) {
		sg->too_big = true;
		return;
	}
	if (!keep_room(sg, len + 3))
		return;
	sg->fields[sg->nfields] = (struct kept){ (unsigned)idx, sg->keep_len, 0 };
	sg->fields[sg->nfields].len = dkim_canon_header(field, len, sg->keep + sg->keep_len, true);
	sg->keep_len += sg->fields[sg->nfields].len;
	sg->nfields++;
	if (idx == 0)
		note_from(sg, field, len);
}

/* dkim_signer_body - see dkim.h. */
void dkim_signer_body(struct dkim_signer *sg, const void *data, size_t len)
{
	dkim_body_canon_feed(&sg->canon, data, len);
}

/* cur_add - bytes of the field being read, kept when it is a signed one. */
static void cur_add(struct dkim_signer *sg, const char *p, size_t n)
{
	if (!sg->cur_keep)
		return;
	if (sg->cur_len + n > DKIM_HEADER_KEEP_MAX) {
		sg->too_big = true;
		sg->cur_keep = false;
		return;
	}
	if (sg->cur_len + n > sg->cur_cap) {
		size_t cap = sg->cur_cap ? sg->cur_cap : 1024;
		char *q;

		while (cap < sg->cur_len + n)
			cap *= 2;
		if ((q = realloc(sg->cur, cap)) == NULL) {
			sg->failed = true;
			sg->cur_keep = false;
			return;
		}
		sg->cur = q;
		sg->cur_cap = cap;
	}
	memcpy(sg->cur + sg->cur_len, p, n);
	sg->cur_len += n;
}

/* field_end - the field read so far is complete. */
static void field_end(struct dkim_signer *sg)
{
	if (sg->cur_keep && sg->cur_len > 0)
		dkim_signer_header(sg, sg->cur, sg->cur_len);
	sg->cur_len = 0;
	sg->cur_keep = false;
	sg->name_len = 0;
}

/* field_start - a line that starts a new field. The name is kept whole
 * until its colon decides whether the field is a signed one. */
static void field_start(struct dkim_signer *sg)
{
	field_end(sg);
	sg->state = F_NAME;
	sg->cur_keep = true;
}

/* name_byte - one byte of a field name. */
static void name_byte(struct dkim_signer *sg, char c)
{
	if (c == ':') {
		if (name_index(sg->name, sg->name_len) < 0) {
			sg->cur_keep = false;
			sg->cur_len = 0;
		}
		sg->state = F_VALUE;
	} else if (c == '\n') {
		sg->state = F_LINE_START;	/* a line without a colon: no field */
		sg->cur_keep = false;
		sg->cur_len = 0;
		return;
	} else if (sg->name_len < NAME_MAX_LEN) {
		sg->name[sg->name_len++] = c;
	} else {
		sg->cur_keep = false;		/* too long for any signed name */
	}
	cur_add(sg, &c, 1);
}

/* feed_header_byte - one byte of the header section; true when the body starts. */
static bool feed_header_byte(struct dkim_signer *sg, char c)
{
	switch (sg->state) {
	case F_CR_AT_START:
		if (c == '\n') {
			field_end(sg);
			sg->state = F_BODY;
			return true;
		}
		field_start(sg);
		name_byte(sg, '\r');
		name_byte(sg, c);
		return false;
	case F_LINE_START:
		if (c == ' ' || c == '\t') {
			sg->state = F_VALUE;	/* a folded line continues the field */
			cur_add(sg, &c, 1);
			return false;
		}
		if (c == '\r') {
			sg->state = F_CR_AT_START;
			return false;
		}
		field_start(sg);
		name_byte(sg, c);
		return false;
	case F_NAME:
		name_byte(sg, c);
		return false;
	default:
		cur_add(sg, &c, 1);
		if (c == '\n')
			sg->state = F_LINE_START;
		return false;
	}
}

/* dkim_signer_feed - see dkim.h. The header goes byte by byte (it is
 * small), the body in runs. */
void dkim_signer_feed(struct dkim_signer *sg, const void *data, size_t len)
{
	const char *p = data;
	size_t i = 0;

	while (i < len && sg->state != F_BODY)
		if (feed_header_byte(sg, p[i++]))
			break;
	if (i < len)
		dkim_signer_body(sg, p + i, len - i);
}

/* dkim_signer_in_body - see dkim.h. */
bool dkim_signer_in_body(const struct dkim_signer *sg)
{
	return sg->state == F_BODY;
}

/* dkim_signer_too_big - see dkim.h. */
bool dkim_signer_too_big(const struct dkim_signer *sg)
{
	return sg->too_big;
}

/* dkim_signer_from_domain - see dkim.h. */
const char *dkim_signer_from_domain(const struct dkim_signer *sg)
{
	if (sg->too_big || sg->failed || sg->nfrom != 1 || sg->from_domain[0] == '\0')
		return NULL;
	return sg->from_domain;
}

/* dkim_fold - see dkim.h. */
long dkim_fold(char *buf, size_t size, size_t used, size_t *col, const char *tag,
	       const char *value, bool last)
{
	size_t tlen = strlen(tag), vlen = strlen(value);
	size_t need = tlen + 1 + vlen + (last ? 0 : 1);	/* "tag=value;" */
	bool breakable = strcmp(tag, "b") == 0 || strcmp(tag, "bh") == 0 || strcmp(tag, "h") == 0;
	size_t v = 0;

#define PUT(s, n) do { if (used + (n) >= size) return -1; \
		memcpy(buf + used, (s), (n)); used += (n); *col += (n); } while (0)
#define FOLD() do { if (used + 3 >= size) return -1; \
		memcpy(buf + used, "\r\n\t", 3); used += 3; *col = 1; } while (0)

	/* A space between tags, or a fold when the tag would pass column 78.
	 * The decision is the same whether the space is already there or
	 * not: the signature's b= is placed twice (empty, then filled). */
	bool sp = used > 0 && (buf[used - 1] == ' ' || buf[used - 1] == '\t');
	size_t at = *col + (sp ? 0 : 1);

	if (*col > 0 && at + (breakable ? tlen + 2 : need) > 78)
		FOLD();
	else if (*col > 0 && !sp)
		PUT(" ", 1);
	PUT(tag, tlen);
	PUT("=", 1);
	while (v < vlen) {
		size_t room = *col < 78 ? 78 - *col : 0, n = vlen - v;

		if (n + (last ? 0 : 1) > room) {
			if (!breakable)
				n = vlen - v;	/* too long to fold: one long line */
			else if (strcmp(tag, "h") == 0) {
				/* h= breaks after a colon. */
				size_t cut = 0;

				for (size_t k = 0; k < n && k < room; k++)
					if (value[v + k] == ':')
						cut = k + 1;
				n = cut;
			} else {
				n = room > (last ? 0u : 1u) ? room - (last ? 0u : 1u) : 0;
			}
			if (n == 0 && *col <= 1)
				n = vlen - v < 77 ? vlen - v : 77;	/* nothing fits better */
		}
		if (n == 0) {
			FOLD();
			continue;
		}
		PUT(value + v, n);
		v += n;
		if (v < vlen)
			FOLD();
	}
	if (!last)
		PUT(";", 1);
	buf[used] = '\0';
	return (long)used;
#undef PUT
#undef FOLD
}

/* h_list - the h= value: each signed name as often as it appears (from
 * once more), in signed_names' order; counts per name in count. */
static int h_list(const struct dkim_signer *sg, char *out, size_t size, unsigned count[NNAMES])
{
	size_t used = 0;

	memset(count, 0, NNAMES * sizeof(count[0]));
	for (size_t i = 0; i < sg->nfields; i++)
		count[sg->fields[i].name]++;
	out[0] = '\0';
	for (size_t n = 0; n < NNAMES; n++)
		for (unsigned k = 0; k < count[n] + (n == 0 ? 1u : 0u); k++) {
			int w = snprintf(out + used, size - used, "%s%s", used ? ":" : "",
					 signed_names[n]);

			if (w < 0 || (size_t)w >= size - used)
				return -1;
			used += (size_t)w;
		}
	return 0;
}

/* header_data - the signed fields as h= lists them (each name's
 * instances from the bottom up) and then the signature field without
 * b='s value and without its CRLF: what the signature covers. */
static char *header_data(const struct dkim_signer *sg, const unsigned count[NNAMES],
			 const char *sig, size_t siglen, size_t *len)
{
	char *d = malloc(sg->keep_len + siglen + 1);
	size_t n = 0;

	if (d == NULL)
		return NULL;
	for (size_t name = 0; name < NNAMES; name++) {
		unsigned left = count[name];

		for (size_t i = sg->nfields; i-- > 0 && left > 0;) {
			if (sg->fields[i].name != name)
				continue;
			memcpy(d + n, sg->keep + sg->fields[i].off, sg->fields[i].len);
			n += sg->fields[i].len;
			left--;
		}
	}
	n += dkim_canon_header(sig, siglen, d + n, false);
	*len = n;
	return d;
}

/* sign_data - b='s value for key over the header data, base64, into out. */
static int sign_data(const struct dkim_key *key, const char *data, size_t len, char *out,
		     size_t outsize)
{
	unsigned char hash[32], sig[1024];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	if (ctx == NULL)
		return -1;
	if (key->alg == DKIM_ED25519_SHA256) {
		/* RFC 8463 §3: Ed25519 (pure) over the SHA-256 of the data. */
		ok = EVP_Digest(data, len, hash, NULL, EVP_sha256(), NULL) == 1 &&
		     EVP_DigestSignInit(ctx, NULL, NULL, NULL, key->pkey) == 1 &&
		     EVP_DigestSign(ctx, sig, &siglen, hash, sizeof(hash)) == 1;
	} else {
		ok = EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key->pkey) == 1 &&
		     EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)data, len) == 1;
	}
	EVP_MD_CTX_free(ctx);
	if (!ok || 4 * ((siglen + 2) / 3) + 1 > outsize)
		return -1;
	EVP_EncodeBlock((unsigned char *)out, sig, (int)siglen);
	return 0;
}

/* one_signature - the folded DKIM-Signature field of key, CRLF ended, into out. */
static long one_signature(const struct dkim_signer *sg, const struct dkim_key *key,
			  const char *bh, time_t now, uint32_t expire, char *out, size_t size)
{
	char t[24], x[24], h[1024], b[1400];
	unsigned count[NNAMES];
	const char *tags[9][2];
	size_t ntags = 0, col, hdlen;
	long used;
	char *hd;

	if (h_list(sg, h, sizeof(h), count) != 0)
		return -1;
	snprintf(t, sizeof(t), "%lld", (long long)now);
	snprintf(x, sizeof(x), "%lld", (long long)now + expire);
	tags[ntags][0] = "v", tags[ntags++][1] = "1";
	tags[ntags][0] = "a", tags[ntags++][1] = dkim_alg_name(key->alg);
	tags[ntags][0] = "c", tags[ntags++][1] = "relaxed/relaxed";
	tags[ntags][0] = "d", tags[ntags++][1] = key->domain;
	tags[ntags][0] = "s", tags[ntags++][1] = key->selector;
	tags[ntags][0] = "t", tags[ntags++][1] = t;
	if (expire > 0)
		tags[ntags][0] = "x", tags[ntags++][1] = x;
	tags[ntags][0] = "h", tags[ntags++][1] = h;
	tags[ntags][0] = "bh", tags[ntags++][1] = bh;
	used = snprintf(out, size, "DKIM-Signature:");
	col = (size_t)used;
	for (size_t i = 0; i < ntags && used >= 0; i++)
		used = dkim_fold(out, size, (size_t)used, &col, tags[i][0], tags[i][1], false);
	if (used < 0 || (used = dkim_fold(out, size, (size_t)used, &col, "b", "", true)) < 0)
		return -1;
	if ((hd = header_data(sg, count, out, (size_t)used, &hdlen)) == NULL)
		return -1;
	if (sign_data(key, hd, hdlen, b, sizeof(b)) != 0) {
		free(hd);
		return -1;
	}
	free(hd);
	/* b='s value after the "b=" already placed: folded the same way. */
	used -= 2;
	col -= 2;
	if ((used = dkim_fold(out, size, (size_t)used, &col, "b", b, true)) < 0 ||
	    (size_t)used + 3 > size)
		return -1;
	memcpy(out + used, "\r\n", 3);
	return used + 2;
}

/* dkim_signer_finish - see dkim.h. */
int dkim_signer_finish(struct dkim_signer *sg, const struct dkim_key *const *keys, size_t nkeys,
		       time_t now, uint32_t expire, char **out, size_t *outlen, char *err,
		       size_t errlen)
{
	unsigned char hash[32];
	char bh[48], *text = NULL;
	size_t used = 0;

	*out = NULL;
	*outlen = 0;
	field_end(sg);	/* a message without a body: its header ends here */
	dkim_body_canon_finish(&sg->canon);
	if (dkim_signer_from_domain(sg) == NULL) {
		snprintf(err, errlen, "%s", sg->failed ? "out of memory" : sg->too_big ?
			 "header too large to sign" : "no single From: address");
		return -1;
	}
	if (EVP_DigestFinal_ex(sg->body_sha, hash, NULL) != 1 ||
	    (text = malloc(nkeys * SIG_FIELD_MAX + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	EVP_EncodeBlock((unsigned char *)bh, hash, sizeof(hash));
	for (size_t i = 0; i < nkeys; i++) {
		long n = one_signature(sg, keys[i], bh, now, expire, text + used, SIG_FIELD_MAX + 1);

		if (n < 0) {
			snprintf(err, errlen, "cannot sign with %s._domainkey.%s (%s)",
				 keys[i]->selector, keys[i]->domain, dkim_alg_name(keys[i]->alg));
			free(text);
			return -1;
		}
		used += (size_t)n;
	}
	*out = text;
	*outlen = used;
	return 0;
}
