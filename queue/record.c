/*
 * record.c - the envelope record: struct queue_envelope <-> bytes.
 *
 * Format (all integers big-endian):
 *   u32 version
 *   repeated { u16 tag, u32 length, length bytes }
 *   last field: tag QR_CRC, 4 bytes: CRC-32 of every byte before it.
 * Recipients are one QR_RCPT field each whose bytes are themselves
 * tagged fields. Unknown tags are skipped, so fields can be added
 * without a format break. Strings are stored without a terminator and
 * may hold any byte but NUL, so CR/LF in an address cannot confuse it.
 *
 * Must not: read outside the buffer it is given, trust any count or
 * length in it, or do I/O. Damage is reported, never "repaired".
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue.h"

enum qr_tag {
	QR_QID = 1, QR_ARRIVAL = 2, QR_SENDER = 3, QR_NRCPT = 4, QR_RCPT = 5,
	QR_CLIENT_IP = 6, QR_CLIENT_NAME = 7, QR_HELO = 8, QR_LISTENER = 9,
	QR_PROTOCOL = 10, QR_AUTH_USER = 11, QR_SIZE = 12, QR_NEXT_ATTEMPT = 13,
	QR_FLAGS = 14, QR_DIGEST = 15, QR_HEADER_PREFIX = 16, QR_DSN_RET = 17, QR_ENVID = 18,
	QR_CRC = 0xffff,
};

/* Inside a QR_RCPT field. */
enum qr_rcpt_tag {
	QRR_ADDR = 1, QRR_STATE = 2, QRR_ATTEMPTS = 3, QRR_LAST_REPLY = 4, QRR_ORCPT = 5,
	QRR_NOTIFY = 6, QRR_DSN_ORCPT = 7,
};

#define QR_FIELD_HDR 6			/* u16 tag + u32 length */
#define QR_MAX_STRING (1u << 20)	/* a reply text or address is never near this */
#define QR_MAX_RCPT 100000u
#define QR_MIN_RCPT_BYTES (QR_FIELD_HDR + QR_FIELD_HDR + 1)	/* RCPT holding a 1-byte address */

/* ---- helpers shared by both directions ---- */

/*
 * qr_crc32 - CRC-32 (IEEE, reflected 0xedb88320), four bits at a time.
 * Every record is encoded on the loop thread and decoded by the schedule
 * index on each write, so the bitwise loop showed in profiles; the
 * 16-entry table (entry i: i shifted through the polynomial 4 times)
 * is 4x fewer steps and gives the same value, so old spools still check.
 */
static uint32_t qr_crc32(const unsigned char *p, size_t len)
{
	static const uint32_t nibble[16] = {
		0x00000000u, 0x1db71064u, 0x3b6e20c8u, 0x26d930acu,
		0x76dc4190u, 0x6b6b51f4u, 0x4db26158u, 0x5005713cu,
		0xedb88320u, 0xf00f9344u, 0xd6d6a3e8u, 0xcb61b38cu,
		0x9b64c2b0u, 0x86d3d2d4u, 0xa00ae278u, 0xbdbdf21cu,
	};
	uint32_t crc = 0xffffffffu;

	for (size_t i = 0; i < len; i++) {
		crc ^= p[i];
		crc = (crc >> 4) ^ nibble[crc & 15u];
		crc = (crc >> 4) ^ nibble[crc & 15u];
	}
	return ~crc;
}

/* ---- encoding ---- */

struct qr_buf {
	unsigned char *p;
	size_t len, cap;
	bool oom;
	bool toolong;	/* a string decode would refuse: refuse it here too */
};

/* qr_reserve - makes room for n more bytes; remembers failure. */
static bool qr_reserve(struct qr_buf *b, size_t n)
{
	size_t cap;
	unsigned char *p;

	if (b->oom)
		return false;
	if (b->cap - b->len >= n)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap - b->len < n)
		cap *= 2;
	p = realloc(b->p, cap);
	if (p == NULL) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

/* qr_put_be - appends an n-byte big-endian integer. */
static void qr_put_be(struct qr_buf *b, uint64_t v, int n)
{
	if (!qr_reserve(b, (size_t)n))
		return;
	for (int i = n - 1; i >= 0; i--)
		b->p[b->len++] = (unsigned char)(v >> (8 * i));
}

/* qr_put_field - appends one tagged field. */
static void qr_put_field(struct qr_buf *b, uint16_t tag, const void *data, size_t len)
{
	qr_put_be(b, tag, 2);
	qr_put_be(b, len, 4);
	if (len > 0 && qr_reserve(b, len)) {
		memcpy(b->p + b->len, data, len);
		b->len += len;
	}
}

/* qr_put_str - a string field; NULL strings are left out. */
static void qr_put_str(struct qr_buf *b, uint16_t tag, const char *s)
{
	size_t len;

	if (s == NULL)
		return;
	len = strlen(s);
	if (len > QR_MAX_STRING)
		b->toolong = true;
	else
		qr_put_field(b, tag, s, len);
}

/* qr_put_uint - an integer field of n bytes. */
static void qr_put_uint(struct qr_buf *b, uint16_t tag, uint64_t v, int n)
{
	qr_put_be(b, tag, 2);
	qr_put_be(b, (uint64_t)n, 4);
	qr_put_be(b, v, n);
}

/* qr_put_rcpt - one recipient as a nested field list. */
static void qr_put_rcpt(struct qr_buf *b, const struct queue_rcpt *r)
{
	struct qr_buf in = { 0 };

	qr_put_str(&in, QRR_ADDR, r->addr ? r->addr : "");
	qr_put_uint(&in, QRR_STATE, (uint32_t)r->state, 4);
	qr_put_uint(&in, QRR_ATTEMPTS, r->attempts, 4);
	qr_put_str(&in, QRR_LAST_REPLY, r->last_reply);
	qr_put_str(&in, QRR_ORCPT, r->orcpt);
	/* DSN fields only when given: records without them stay as they were. */
	if (r->notify != 0)
		qr_put_uint(&in, QRR_NOTIFY, r->notify, 4);
	qr_put_str(&in, QRR_DSN_ORCPT, r->dsn_orcpt);
	b->toolong |= in.toolong;
	if (in.oom)
		b->oom = true;
	else
		qr_put_field(b, QR_RCPT, in.p, in.len);
	free(in.p);
}

/* queue_record_encode - see queue.h. */
unsigned char *queue_record_encode(const struct queue_envelope *env, size_t *len)
{
	struct qr_buf b = { 0 };

	qr_put_be(&b, QUEUE_RECORD_VERSION, 4);
	qr_put_field(&b, QR_QID, env->qid, strnlen(env->qid, QUEUE_ID_LEN));
	qr_put_be(&b, QR_ARRIVAL, 2);
	qr_put_be(&b, 12, 4);
	qr_put_be(&b, (uint64_t)env->arrival, 8);
	qr_put_be(&b, (uint32_t)env->arrival_usec, 4);
	qr_put_str(&b, QR_SENDER, env->sender ? env->sender : "");
	qr_put_uint(&b, QR_NRCPT, env->nrcpt, 4);
	for (size_t i = 0; i < env->nrcpt; i++)
		qr_put_rcpt(&b, &env->rcpt[i]);
	qr_put_str(&b, QR_CLIENT_IP, env->client_ip);
	qr_put_str(&b, QR_CLIENT_NAME, env->client_name);
	qr_put_str(&b, QR_HELO, env->helo);
	qr_put_str(&b, QR_LISTENER, env->listener);
	qr_put_str(&b, QR_PROTOCOL, env->protocol);
	qr_put_str(&b, QR_AUTH_USER, env->auth_user);
	qr_put_str(&b, QR_HEADER_PREFIX, env->header_prefix);
	if (env->dsn_ret != 0)
		qr_put_uint(&b, QR_DSN_RET, env->dsn_ret, 4);
	qr_put_str(&b, QR_ENVID, env->envid);
	qr_put_uint(&b, QR_SIZE, env->size, 8);
	qr_put_uint(&b, QR_NEXT_ATTEMPT, (uint64_t)env->next_attempt, 8);
	qr_put_uint(&b, QR_FLAGS, env->flags, 4);
	if (env->has_digest)
		qr_put_field(&b, QR_DIGEST, env->digest, QUEUE_DIGEST_LEN);
	if (!b.oom)
		qr_put_uint(&b, QR_CRC, qr_crc32(b.p, b.len), 4);
	if (b.oom || b.toolong || env->nrcpt > QR_MAX_RCPT) {
		free(b.p);
		errno = b.oom ? ENOMEM : EINVAL;
		return NULL;
	}
	*len = b.len;
	return b.p;
}

/* ---- decoding ---- */

struct qr_cur {
	const unsigned char *p;
	size_t len, off;
};

struct qr_field {
	uint16_t tag;
	const unsigned char *data;
	size_t len;
};

/* qr_fail - writes the reason for rejecting a record; returns -1. */
static int qr_fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int qr_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* qr_get_be - reads an n-byte big-endian integer from data. */
static uint64_t qr_get_be(const unsigned char *data, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v = (v << 8) | data[i];
	return v;
}

/* qr_next - the next field, or 0 at the end, or -1 when truncated. */
static int qr_next(struct qr_cur *c, struct qr_field *f)
{
	size_t left = c->len - c->off;
	uint64_t flen;

	if (left == 0)
		return 0;
	if (left < QR_FIELD_HDR)
		return -1;
	f->tag = (uint16_t)qr_get_be(c->p + c->off, 2);
	flen = qr_get_be(c->p + c->off + 2, 4);
	if (flen > left - QR_FIELD_HDR)
		return -1;
	f->data = c->p + c->off + QR_FIELD_HDR;
	f->len = (size_t)flen;
	c->off += QR_FIELD_HDR + f->len;
	return 1;
}

/* qr_str - copies a string field; refuses NUL bytes and absurd lengths. */
static int qr_str(const struct qr_field *f, char **out, const char *what,
		  char *err, size_t errlen)
{
	if (*out != NULL)
		return qr_fail(err, errlen, "%s appears twice", what);
	if (f->len > QR_MAX_STRING)
		return qr_fail(err, errlen, "%s is %zu bytes long", what, f->len);
	if (memchr(f->data, '\0', f->len) != NULL)
		return qr_fail(err, errlen, "%s contains a NUL byte", what);
	*out = malloc(f->len + 1);
	if (*out == NULL)
		return qr_fail(err, errlen, "out of memory");
	memcpy(*out, f->data, f->len);
	(*out)[f->len] = '\0';
	return 0;
}

/* qr_uint - reads a fixed-width integer field. */
static int qr_uint(const struct qr_field *f, size_t width, uint64_t *v,
		   const char *what, char *err, size_t errlen)
{
	if (f->len != width)
		return qr_fail(err, errlen, "%s has length %zu, not %zu", what, f->len, width);
	*v = qr_get_be(f->data, width);
	return 0;
}

/* qr_rcpt_field - applies one field inside a recipient. */
static int qr_rcpt_field(const struct qr_field *f, struct queue_rcpt *r,
			 char *err, size_t errlen)
{
	uint64_t v = 0;

	switch (f->tag) {
	case QRR_ADDR:
		return qr_str(f, &r->addr, "recipient address", err, errlen);
	case QRR_LAST_REPLY:
		return qr_str(f, &r->last_reply, "recipient reply", err, errlen);
	case QRR_ORCPT:
		return qr_str(f, &r->orcpt, "original recipient", err, errlen);
	case QRR_DSN_ORCPT:
		return qr_str(f, &r->dsn_orcpt, "recipient ORCPT", err, errlen);
	case QRR_NOTIFY:
		if (qr_uint(f, 4, &v, "recipient NOTIFY", err, errlen) < 0)
			return -1;
		if (v == 0 || v > 0xf || ((v & QUEUE_NOTIFY_NEVER) && v != QUEUE_NOTIFY_NEVER))
			return qr_fail(err, errlen, "recipient NOTIFY %llu unknown",
				       (unsigned long long)v);
		r->notify = (uint32_t)v;
		return 0;
	case QRR_STATE:
		if (qr_uint(f, 4, &v, "recipient state", err, errlen) < 0)
			return -1;
		if (v > QUEUE_RCPT_FAILED)
			return qr_fail(err, errlen, "recipient state %llu unknown",
				       (unsigned long long)v);
		r->state = (enum queue_rcpt_state)v;
		return 0;
	case QRR_ATTEMPTS:
		if (qr_uint(f, 4, &v, "recipient attempts", err, errlen) < 0)
			return -1;
		r->attempts = (uint32_t)v;
		return 0;
	default:
		return 0;	/* a newer writer's field: skip */
	}
}

/* qr_rcpt - decodes one QR_RCPT field into r. */
static int qr_rcpt(const struct qr_field *outer, struct queue_rcpt *r,
		   char *err, size_t errlen)
{
	struct qr_cur c = { outer->data, outer->len, 0 };
	struct qr_field f;
	int rc;

	while ((rc = qr_next(&c, &f)) > 0)
		if (qr_rcpt_field(&f, r, err, errlen) < 0)
			return -1;
	if (rc < 0)
		return qr_fail(err, errlen, "recipient field truncated");
	if (r->addr == NULL)
		return qr_fail(err, errlen, "recipient without address");
	return 0;
}

/* qr_nrcpt - the recipient count; allocates the array once it is believed. */
static int qr_nrcpt(const struct qr_field *f, size_t reclen, struct queue_envelope *env,
		    char *err, size_t errlen)
{
	uint64_t n = 0;

	if (env->rcpt != NULL)
		return qr_fail(err, errlen, "recipient count appears twice");
	if (qr_uint(f, 4, &n, "recipient count", err, errlen) < 0)
		return -1;
	/* Each recipient takes bytes: a count the record cannot hold is damage. */
	if (n > QR_MAX_RCPT || n * QR_MIN_RCPT_BYTES > reclen)
		return qr_fail(err, errlen, "absurd recipient count %llu", (unsigned long long)n);
	env->rcpt = calloc(n ? n : 1, sizeof(*env->rcpt));
	if (env->rcpt == NULL)
		return qr_fail(err, errlen, "out of memory");
	env->nrcpt = (size_t)n;
	return 0;
}

struct qr_state {
	size_t reclen;		/* whole record, for plausibility checks */
	size_t rcpt_seen;
	bool have_qid, have_arrival, have_nrcpt;
};

/* qr_env_int - applies one integer field of the envelope. */
static int qr_env_int(const struct qr_field *f, struct queue_envelope *env,
		      char *err, size_t errlen)
{
	uint64_t v = 0;

	switch (f->tag) {
	case QR_SIZE:
		return qr_uint(f, 8, &env->size, "size", err, errlen);
	case QR_NEXT_ATTEMPT:
		if (qr_uint(f, 8, &v, "next attempt", err, errlen) < 0)
			return -1;
		env->next_attempt = (int64_t)v;
		return 0;
	case QR_FLAGS:
		if (qr_uint(f, 4, &v, "flags", err, errlen) < 0)
			return -1;
		env->flags = (uint32_t)v;
		return 0;
	case QR_DSN_RET:
		if (qr_uint(f, 4, &v, "RET", err, errlen) < 0)
			return -1;
		if (v != QUEUE_RET_FULL && v != QUEUE_RET_HDRS)
			return qr_fail(err, errlen, "RET %llu unknown", (unsigned long long)v);
		env->dsn_ret = (uint32_t)v;
		return 0;
	default:
		return 0;
	}
}

/* qr_env_field - applies one top-level field. */
static int qr_env_field(const struct qr_field *f, struct queue_envelope *env,
			struct qr_state *st, char *err, size_t errlen)
{
	switch (f->tag) {
	case QR_QID:
		if (st->have_qid || f->len != QUEUE_ID_LEN)
			return qr_fail(err, errlen, "bad queue id field");
		memcpy(env->qid, f->data, QUEUE_ID_LEN);
		env->qid[QUEUE_ID_LEN] = '\0';
		if (!queue_id_valid(env->qid))
			return qr_fail(err, errlen, "malformed queue id");
		st->have_qid = true;
		return 0;
	case QR_ARRIVAL:
		if (st->have_arrival || f->len != 12)
			return qr_fail(err, errlen, "bad arrival field");
		env->arrival = (int64_t)qr_get_be(f->data, 8);
		env->arrival_usec = (int32_t)qr_get_be(f->data + 8, 4);
		st->have_arrival = true;
		return 0;
	case QR_NRCPT:
		st->have_nrcpt = true;
		return qr_nrcpt(f, st->reclen, env, err, errlen);
	case QR_RCPT:
		if (!st->have_nrcpt || st->rcpt_seen >= env->nrcpt)
			return qr_fail(err, errlen, "more recipients than counted");
		return qr_rcpt(f, &env->rcpt[st->rcpt_seen++], err, errlen);
	case QR_SENDER: return qr_str(f, &env->sender, "sender", err, errlen);
	case QR_CLIENT_IP: return qr_str(f, &env->client_ip, "client address", err, errlen);
	case QR_CLIENT_NAME: return qr_str(f, &env->client_name, "client name", err, errlen);
	case QR_HELO: return qr_str(f, &env->helo, "helo", err, errlen);
	case QR_LISTENER: return qr_str(f, &env->listener, "listener", err, errlen);
	case QR_PROTOCOL: return qr_str(f, &env->protocol, "protocol", err, errlen);
	case QR_AUTH_USER: return qr_str(f, &env->auth_user, "auth user", err, errlen);
	case QR_HEADER_PREFIX: return qr_str(f, &env->header_prefix, "header prefix", err, errlen);
	case QR_ENVID: return qr_str(f, &env->envid, "ENVID", err, errlen);
	case QR_DIGEST:
		if (env->has_digest || f->len != QUEUE_DIGEST_LEN)
			return qr_fail(err, errlen, "bad body digest field");
		memcpy(env->digest, f->data, QUEUE_DIGEST_LEN);
		env->has_digest = true;
		return 0;
	default:
		return qr_env_int(f, env, err, errlen);
	}
}

/* qr_check_frame - version word and trailing checksum, before any parsing. */
static int qr_check_frame(const unsigned char *buf, size_t len, char *err, size_t errlen)
{
	uint32_t version;
	size_t body;

	if (len < 4 + QR_FIELD_HDR + 4)
		return qr_fail(err, errlen, "record truncated (%zu bytes)", len);
	version = (uint32_t)qr_get_be(buf, 4);
	if (version != QUEUE_RECORD_VERSION)
		return qr_fail(err, errlen, "unsupported record version %u", version);
	body = len - QR_FIELD_HDR - 4;
	if (qr_get_be(buf + body, 2) != QR_CRC || qr_get_be(buf + body + 2, 4) != 4)
		return qr_fail(err, errlen, "record truncated (no checksum)");
	if (qr_get_be(buf + body + QR_FIELD_HDR, 4) != qr_crc32(buf, body))
		return qr_fail(err, errlen, "checksum mismatch");
	return 0;
}

/* qr_decode_fields - walks the fields between version word and checksum. */
static int qr_decode_fields(const unsigned char *buf, size_t len,
			    struct queue_envelope *env, char *err, size_t errlen)
{
	struct qr_cur c = { buf, len - QR_FIELD_HDR - 4, 4 };
	struct qr_state st = { .reclen = len };
	struct qr_field f;
	int rc;

	while ((rc = qr_next(&c, &f)) > 0)
		if (qr_env_field(&f, env, &st, err, errlen) < 0)
			return -1;
	if (rc < 0)
		return qr_fail(err, errlen, "field truncated at offset %zu", c.off);
	if (!st.have_qid || !st.have_arrival || !st.have_nrcpt || env->sender == NULL)
		return qr_fail(err, errlen, "required field missing");
	if (st.rcpt_seen != env->nrcpt)
		return qr_fail(err, errlen, "%zu recipients, %zu counted", st.rcpt_seen, env->nrcpt);
	return 0;
}

/* queue_record_peek - see queue.h. */
int queue_record_peek(const unsigned char *buf, size_t len,
		      int64_t *next_attempt, uint32_t *flags)
{
	struct qr_cur c;
	struct qr_field f;
	int rc;

	*next_attempt = 0;
	*flags = 0;
	if (buf == NULL || qr_check_frame(buf, len, NULL, 0) < 0)
		return -1;
	c = (struct qr_cur){ buf, len - QR_FIELD_HDR - 4, 4 };
	while ((rc = qr_next(&c, &f)) > 0) {
		uint64_t v = 0;

		if (f.tag == QR_NEXT_ATTEMPT) {
			if (qr_uint(&f, 8, &v, "next attempt", NULL, 0) < 0)
				return -1;
			*next_attempt = (int64_t)v;
		} else if (f.tag == QR_FLAGS) {
			if (qr_uint(&f, 4, &v, "flags", NULL, 0) < 0)
				return -1;
			*flags = (uint32_t)v;
		}
	}
	return rc < 0 ? -1 : 0;
}

/* queue_record_decode - see queue.h. env is zeroed first and freed on error. */
int queue_record_decode(const unsigned char *buf, size_t len,
			struct queue_envelope *env, char *err, size_t errlen)
{
	memset(env, 0, sizeof(*env));
	if (buf == NULL)
		return qr_fail(err, errlen, "no record");
	if (qr_check_frame(buf, len, err, errlen) < 0)
		return -1;
	env->version = QUEUE_RECORD_VERSION;
	if (qr_decode_fields(buf, len, env, err, errlen) < 0) {
		queue_envelope_free(env);
		return -1;
	}
	return 0;
}

/* queue_envelope_free - see queue.h. */
void queue_envelope_free(struct queue_envelope *env)
{
	if (env == NULL)
		return;
	for (size_t i = 0; env->rcpt != NULL && i < env->nrcpt; i++) {
		free(env->rcpt[i].addr);
		free(env->rcpt[i].last_reply);
		free(env->rcpt[i].orcpt);
		free(env->rcpt[i].dsn_orcpt);
	}
	free(env->rcpt);
	free(env->sender);
	free(env->client_ip);
	free(env->client_name);
	free(env->helo);
	free(env->listener);
	free(env->protocol);
	free(env->auth_user);
	free(env->header_prefix);
	free(env->envid);
	memset(env, 0, sizeof(*env));
}
