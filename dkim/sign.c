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
 * The end is split for the event loop's sake: dkim_signer_prepare (on
 * the loop: body hash, each field up to b=, the header data to sign,
 * copied into a job), dkim_sign_job_run (the private-key operations
 * only, on any thread: it reads the job and the keys, nothing shared is
 * written) and dkim_sign_job_result (on the loop: b= folded into each
 * field). dkim_signer_finish does the three in one.
 *
 * Must not: do I/O, keep more than DKIM_HEADER_KEEP_MAX bytes or
 * DKIM_HEADER_FIELDS_MAX fields of header (a message with more is not
 * signed, and the caller says so), keep any of the body, sign a
 * message whose From: gives no single domain, or touch in
 * dkim_sign_job_run anything but its job and the (read-only) keys.
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

/* sign_data - b='s value for key over the header data, base64, into
 * out. Pure and thread-safe: its own contexts, the key only read. */
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

/* One signature between prepare and result. */
struct sig_part {
	const struct dkim_key *key;
	char field[SIG_FIELD_MAX + 1];	/* folded, up to and with "b=" */
	size_t used, col;		/* field's length; the column after "b=" */
	char *data;			/* the header data the signature covers */
	size_t len;
	char b[1400];			/* b='s value (base64), by dkim_sign_job_run */
	bool ok;			/* b is set */
};

struct dkim_sign_job {
	struct dkim_keys *ks;		/* one reference, or NULL (dkim_signer_finish's keys) */
	bool ran;
	size_t n;
	struct sig_part part[];
};

/* part_prepare - key's field up to "b=" and the data it signs; -1 when out of memory. */
static int part_prepare(const struct dkim_signer *sg, struct sig_part *p, const char *bh,
			time_t now, uint32_t expire)
{
	char t[24], x[24], h[1024];
	unsigned count[NNAMES];
	const char *tags[9][2];
	size_t ntags = 0, col;
	long used;

	if (h_list(sg, h, sizeof(h), count) != 0)
		return -1;
	snprintf(t, sizeof(t), "%lld", (long long)now);
	snprintf(x, sizeof(x), "%lld", (long long)now + expire);
	tags[ntags][0] = "v", tags[ntags++][1] = "1";
	tags[ntags][0] = "a", tags[ntags++][1] = dkim_alg_name(p->key->alg);
	tags[ntags][0] = "c", tags[ntags++][1] = "relaxed/relaxed";
	tags[ntags][0] = "d", tags[ntags++][1] = p->key->domain;
	tags[ntags][0] = "s", tags[ntags++][1] = p->key->selector;
	tags[ntags][0] = "t", tags[ntags++][1] = t;
	if (expire > 0)
		tags[ntags][0] = "x", tags[ntags++][1] = x;
	tags[ntags][0] = "h", tags[ntags++][1] = h;
	tags[ntags][0] = "bh", tags[ntags++][1] = bh;
	used = snprintf(p->field, sizeof(p->field), "DKIM-Signature:");
	col = (size_t)used;
	for (size_t i = 0; i < ntags && used >= 0; i++)
		used = dkim_fold(p->field, sizeof(p->field), (size_t)used, &col, tags[i][0],
				 tags[i][1], false);
	if (used < 0 ||
	    (used = dkim_fold(p->field, sizeof(p->field), (size_t)used, &col, "b", "", true)) < 0)
		return -1;
	if ((p->data = header_data(sg, count, p->field, (size_t)used, &p->len)) == NULL)
		return -1;
	p->used = (size_t)used;
	p->col = col;
	return 0;
}

/* part_result - the folded field with b='s value, CRLF ended, into out. */
static long part_result(const struct sig_part *p, char *out, size_t size)
{
	size_t col = p->col - 2;
	long used;

	if (!p->ok || p->used < 2 || p->used + 1 > size)
		return -1;
	/* b='s value after the "b=" already placed: folded the same way. */
	memcpy(out, p->field, p->used - 2);
	if ((used = dkim_fold(out, size, p->used - 2, &col, "b", p->b, true)) < 0 ||
	    (size_t)used + 3 > size)
		return -1;
	memcpy(out + used, "\r\n", 3);
	return used + 2;
}

/* job_prepare - a job for keys (nkeys of them), or NULL with err. */
static struct dkim_sign_job *job_prepare(struct dkim_signer *sg, const struct dkim_key *const *keys,
					 size_t nkeys, time_t now, uint32_t expire, char *err,
					 size_t errlen)
{
	unsigned char hash[32];
	char bh[48];
	struct dkim_sign_job *job;

	field_end(sg);	/* a message without a body: its header ends here */
	dkim_body_canon_finish(&sg->canon);
	if (dkim_signer_from_domain(sg) == NULL) {
		snprintf(err, errlen, "%s", sg->failed ? "out of memory" : sg->too_big ?
			 "header too large to sign" : "no single From: address");
		return NULL;
	}
	if (nkeys == 0 || nkeys > DKIM_MAX_KEYS) {
		snprintf(err, errlen, "no key for %s", sg->from_domain);
		return NULL;
	}
	if (EVP_DigestFinal_ex(sg->body_sha, hash, NULL) != 1 ||
	    (job = calloc(1, sizeof(*job) + nkeys * sizeof(job->part[0]))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	EVP_EncodeBlock((unsigned char *)bh, hash, sizeof(hash));
	for (size_t i = 0; i < nkeys; i++) {
		job->part[i].key = keys[i];
		job->n = i + 1;
		if (part_prepare(sg, &job->part[i], bh, now, expire) != 0) {
			snprintf(err, errlen, "cannot prepare the signature of %s._domainkey.%s",
				 keys[i]->selector, keys[i]->domain);
			dkim_sign_job_free(job);
			return NULL;
		}
	}
	return job;
}

/* dkim_signer_prepare - see dkim.h. */
struct dkim_sign_job *dkim_signer_prepare(struct dkim_signer *sg, struct dkim_keys *ks,
					  time_t now, uint32_t expire, char *err, size_t errlen)
{
	const struct dkim_key *k[DKIM_MAX_KEYS];
	const char *domain = dkim_signer_from_domain(sg);
	struct dkim_sign_job *job;
	size_t n = domain ? dkim_keys_find(ks, domain, k, DKIM_MAX_KEYS) : 0;

	if (domain != NULL && n == 0) {
		snprintf(err, errlen, "no key for %s", domain);
		return NULL;
	}
	if ((job = job_prepare(sg, k, n, now, expire, err, errlen)) != NULL)
		job->ks = dkim_keys_ref(ks);
	return job;
}

/* dkim_sign_job_run - see dkim.h: nothing here but the job and its keys. */
void dkim_sign_job_run(struct dkim_sign_job *job)
{
	for (size_t i = 0; i < job->n; i++) {
		struct sig_part *p = &job->part[i];

		p->ok = sign_data(p->key, p->data, p->len, p->b, sizeof(p->b)) == 0;
	}
	job->ran = true;
}

/* dkim_sign_job_result - see dkim.h. */
int dkim_sign_job_result(struct dkim_sign_job *job, char **out, size_t *outlen, char *err,
			 size_t errlen)
{
	char *text;
	size_t used = 0;

	*out = NULL;
	*outlen = 0;
	if (!job->ran) {
		snprintf(err, errlen, "not signed (the signing job did not run)");
		return -1;
	}
	if ((text = malloc(job->n * SIG_FIELD_MAX + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < job->n; i++) {
		const struct dkim_key *k = job->part[i].key;
		long n = part_result(&job->part[i], text + used, SIG_FIELD_MAX + 1);

		if (n < 0) {
			snprintf(err, errlen, "cannot sign with %s._domainkey.%s (%s)", k->selector,
				 k->domain, dkim_alg_name(k->alg));
			free(text);
			return -1;
		}
		used += (size_t)n;
	}
	*out = text;
	*outlen = used;
	return 0;
}

size_t dkim_sign_job_keys(const struct dkim_sign_job *job)
{
	return job->n;
}

const struct dkim_key *dkim_sign_job_key(const struct dkim_sign_job *job, size_t i)
{
	return i < job->n ? job->part[i].key : NULL;
}

/* dkim_sign_job_free - see dkim.h. */
void dkim_sign_job_free(struct dkim_sign_job *job)
{
	if (job == NULL)
		return;
	for (size_t i = 0; i < job->n; i++)
		free(job->part[i].data);
	dkim_keys_unref(job->ks);
	free(job);
}

/* dkim_signer_finish - see dkim.h: the three steps in one, on this thread. */
int dkim_signer_finish(struct dkim_signer *sg, const struct dkim_key *const *keys, size_t nkeys,
		       time_t now, uint32_t expire, char **out, size_t *outlen, char *err,
		       size_t errlen)
{
	struct dkim_sign_job *job = job_prepare(sg, keys, nkeys, now, expire, err, errlen);
	int rc;

	*out = NULL;
	*outlen = 0;
	if (job == NULL)
		return -1;
	dkim_sign_job_run(job);
	rc = dkim_sign_job_result(job, out, outlen, err, errlen);
	dkim_sign_job_free(job);
	return rc;
}
