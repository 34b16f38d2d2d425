/*
 * record.c - unit tests for the envelope record: hostile envelopes
 * round-trip byte for byte, damaged buffers (truncated at every length,
 * flipped bytes) give an error and never a crash, unknown tags skipped.
 */
#include <stdlib.h>
#include <string.h>

#include "queue/queue.h"
#include "t/unit/tap.h"

/* crc32 - independent CRC-32 (IEEE) to forge records with new fields. */
static uint32_t crc32(const unsigned char *p, size_t len)
{
	uint32_t crc = 0xffffffffu;

	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc & 1) ? (crc >> 1) ^ 0xedb88320u : crc >> 1;
	}
	return ~crc;
}

/* xstrdup - strdup or die. */
static char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		abort();
	return p;
}

/* hostile - an envelope full of bytes that break line-based formats. */
static void hostile(struct queue_envelope *env, size_t nrcpt, size_t longlen)
{
	char *lng = malloc(longlen + 1);

	if (lng == NULL)
		abort();
	for (size_t i = 0; i < longlen; i++)
		lng[i] = (char)(1 + i % 255);	/* every byte value but NUL */
	lng[longlen] = '\0';
	memset(env, 0, sizeof(*env));
	memcpy(env->qid, "0123456789BCDF", QUEUE_ID_LEN + 1);
	env->arrival = 1700000000;
	env->arrival_usec = 999999;
	env->sender = xstrdup("evil\r\nRCPT TO:<x@y>\r\n.\r\n@\xff\xfe.example");
	env->client_ip = xstrdup("192.0.2.1");
	env->client_name = xstrdup("unknown");
	env->helo = lng;
	env->listener = xstrdup("127.0.0.1:2525");
	env->protocol = xstrdup("ESMTP");
	env->auth_user = NULL;
	/* The DKIM-Signature fields delivery puts in front (issue 17). */
	env->header_prefix = nrcpt == 1 ? xstrdup("DKIM-Signature: v=1; a=rsa-sha256;\r\n\tb=x\r\n") : NULL;
	env->size = 0xfedcba9876543210ull;
	env->next_attempt = -5;
	env->flags = QUEUE_FLAG_HELD;
	env->nrcpt = nrcpt;
	env->rcpt = calloc(nrcpt ? nrcpt : 1, sizeof(*env->rcpt));
	if (env->rcpt == NULL)
		abort();
	for (size_t i = 0; i < nrcpt; i++) {
		char buf[64];

		snprintf(buf, sizeof(buf), "r%zu\r\n.\r\n\xff@example.org", i);
		env->rcpt[i].addr = xstrdup(buf);
		env->rcpt[i].state = (enum queue_rcpt_state)(i % 3);
		env->rcpt[i].attempts = (uint32_t)i * 1000003u;
		env->rcpt[i].last_reply = i % 2 ? xstrdup("451-4.3.0 a\r\n451 4.3.0 b") : NULL;
		/* DSN (RFC 3461): NOTIFY bits and ORCPT as given, on some recipients only. */
		env->rcpt[i].notify = i % 3 == 0 ? 0 : i % 3 == 1 ? QUEUE_NOTIFY_NEVER
			: QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY;
		env->rcpt[i].dsn_orcpt = i % 2 ? NULL : xstrdup("rfc822;a+2Bb\r\n@example.org");
	}
	env->dsn_ret = nrcpt % 3;	/* none, FULL, HDRS */
	env->envid = nrcpt == 1 ? xstrdup("QQ314159 \r\n\xff") : NULL;
}

/* streq - both NULL, or equal bytes. */
static int streq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* same - every field equal. */
static int same(const struct queue_envelope *a, const struct queue_envelope *b)
{
	if (strcmp(a->qid, b->qid) || a->arrival != b->arrival ||
	    a->arrival_usec != b->arrival_usec || !streq(a->sender, b->sender) ||
	    !streq(a->client_ip, b->client_ip) || !streq(a->client_name, b->client_name) ||
	    !streq(a->helo, b->helo) || !streq(a->listener, b->listener) ||
	    !streq(a->protocol, b->protocol) || !streq(a->auth_user, b->auth_user) ||
	    !streq(a->header_prefix, b->header_prefix) ||
	    a->dsn_ret != b->dsn_ret || !streq(a->envid, b->envid) ||
	    a->size != b->size || a->next_attempt != b->next_attempt || a->flags != b->flags ||
	    a->nrcpt != b->nrcpt)
		return 0;
	for (size_t i = 0; i < a->nrcpt; i++)
		if (!streq(a->rcpt[i].addr, b->rcpt[i].addr) || a->rcpt[i].state != b->rcpt[i].state ||
		    a->rcpt[i].attempts != b->rcpt[i].attempts ||
		    !streq(a->rcpt[i].last_reply, b->rcpt[i].last_reply) ||
		    a->rcpt[i].notify != b->rcpt[i].notify ||
		    !streq(a->rcpt[i].dsn_orcpt, b->rcpt[i].dsn_orcpt))
			return 0;
	return 1;
}

/* roundtrip - encode, decode, compare. */
static void roundtrip(struct tap *t, size_t nrcpt, size_t longlen)
{
	struct queue_envelope in, out;
	unsigned char *buf;
	size_t len;
	char err[200] = "";
	int rc;

	hostile(&in, nrcpt, longlen);
	buf = queue_record_encode(&in, &len);
	TAP_OK(t, buf != NULL, "encode %zu recipients, %zu-byte string", nrcpt, longlen);
	rc = buf ? queue_record_decode(buf, len, &out, err, sizeof(err)) : -1;
	TAP_OK(t, rc == 0, "decode %zu recipients (%s)", nrcpt, err);
	TAP_OK(t, rc == 0 && same(&in, &out), "byte-exact round trip, %zu recipients", nrcpt);
	{
		int64_t next = 0;
		uint32_t flags = 0;

		TAP_OK(t, buf && queue_record_peek(buf, len, &next, &flags) == 0 &&
		       next == in.next_attempt && flags == in.flags,
		       "peek reads next attempt and flags, %zu recipients", nrcpt);
	}
	if (rc == 0)
		queue_envelope_free(&out);
	queue_envelope_free(&in);
	free(buf);
}

/* test_truncated - every prefix of a record is refused with a reason. */
static void test_truncated(struct tap *t)
{
	struct queue_envelope in, out;
	size_t len, bad = 0, noreason = 0;
	unsigned char *buf;

	hostile(&in, 3, 50);
	buf = queue_record_encode(&in, &len);
	for (size_t n = 0; buf && n < len; n++) {
		/* An exact-size copy so ASAN sees any read past the end. */
		unsigned char *cut = malloc(n ? n : 1);
		char err[200] = "";

		if (cut == NULL)
			abort();
		memcpy(cut, buf, n);
		if (queue_record_decode(cut, n, &out, err, sizeof(err)) == 0) {
			bad++;
			queue_envelope_free(&out);
		} else if (err[0] == '\0') {
			noreason++;
		}
		free(cut);
	}
	TAP_OK(t, buf && bad == 0, "all %zu truncations refused", len);
	TAP_OK(t, noreason == 0, "each refusal gives a reason");
	queue_envelope_free(&in);
	free(buf);
}

/* test_flipped - every single-byte change is refused or decodes sanely. */
static void test_flipped(struct tap *t)
{
	struct queue_envelope in, out;
	size_t len, accepted = 0;
	unsigned char *buf;

	hostile(&in, 3, 50);
	buf = queue_record_encode(&in, &len);
	for (size_t i = 0; buf && i < len; i++) {
		static const unsigned char masks[] = { 0x01, 0x80, 0xff };

		for (size_t m = 0; m < sizeof(masks); m++) {
			char err[200];

			buf[i] ^= masks[m];
			int64_t next;
			uint32_t flags;

			if (queue_record_decode(buf, len, &out, err, sizeof(err)) == 0) {
				accepted++;
				queue_envelope_free(&out);
			}
			if (queue_record_peek(buf, len, &next, &flags) == 0)
				accepted++;
			buf[i] ^= masks[m];
		}
	}
	TAP_OK(t, buf && accepted == 0, "flipped bytes are caught by the checksum, decode and peek (%zu accepted)",
	       accepted);
	queue_envelope_free(&in);
	free(buf);
}

/* put_be - writes an n-byte big-endian integer. */
static void put_be(unsigned char *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

/* test_unknown_tag - a field from a future version is skipped. */
static void test_unknown_tag(struct tap *t)
{
	static const char extra[] = "schedule: whatever a later version stores";
	struct queue_envelope in, out;
	size_t len, xlen = 6 + sizeof(extra);
	unsigned char *buf, *rec;
	char err[200] = "";
	int rc;

	hostile(&in, 2, 10);
	buf = queue_record_encode(&in, &len);
	rec = malloc(len + xlen);
	if (buf == NULL || rec == NULL)
		abort();
	/* The new field goes just before the 10-byte checksum field. */
	memcpy(rec, buf, len - 10);
	put_be(rec + len - 10, 0x7777, 2);
	put_be(rec + len - 8, sizeof(extra), 4);
	memcpy(rec + len - 4, extra, sizeof(extra));
	memcpy(rec + len - 10 + xlen, buf + len - 10, 6);
	put_be(rec + len + xlen - 4, crc32(rec, len + xlen - 10), 4);
	rc = queue_record_decode(rec, len + xlen, &out, err, sizeof(err));
	TAP_OK(t, rc == 0, "record with an unknown tag decodes (%s)", err);
	TAP_OK(t, rc == 0 && same(&in, &out), "known fields intact around it");
	if (rc == 0)
		queue_envelope_free(&out);
	put_be(rec, 2, 4);
	TAP_OK(t, queue_record_decode(rec, len + xlen, &out, err, sizeof(err)) < 0 &&
	       strstr(err, "version") != NULL, "unknown version refused: %s", err);
	queue_envelope_free(&in);
	free(buf);
	free(rec);
}

/* test_dsn_values - DSN fields a writer never makes are damage, not defaults. */
static void test_dsn_values(struct tap *t)
{
	struct queue_envelope in, out;
	unsigned char *buf;
	size_t len;
	char err[200] = "";

	hostile(&in, 2, 10);
	in.rcpt[1].notify = QUEUE_NOTIFY_NEVER | QUEUE_NOTIFY_SUCCESS;
	buf = queue_record_encode(&in, &len);
	TAP_OK(t, buf && queue_record_decode(buf, len, &out, err, sizeof(err)) < 0 &&
	       strstr(err, "NOTIFY") != NULL, "NOTIFY=NEVER with SUCCESS refused: %s", err);
	free(buf);
	in.rcpt[1].notify = 0;
	in.dsn_ret = 3;
	buf = queue_record_encode(&in, &len);
	TAP_OK(t, buf && queue_record_decode(buf, len, &out, err, sizeof(err)) < 0 &&
	       strstr(err, "RET") != NULL, "RET 3 refused: %s", err);
	free(buf);
	queue_envelope_free(&in);
}

/* test_absurd - a count no buffer could hold is refused before allocating. */
static void test_absurd(struct tap *t)
{
	unsigned char rec[4 + 10 + 10];
	struct queue_envelope out;
	char err[200] = "";

	put_be(rec, QUEUE_RECORD_VERSION, 4);
	put_be(rec + 4, 4, 2);	/* recipient count */
	put_be(rec + 6, 4, 4);
	put_be(rec + 10, 0xffffffffu, 4);
	put_be(rec + 14, 0xffff, 2);
	put_be(rec + 16, 4, 4);
	put_be(rec + 20, crc32(rec, 14), 4);
	TAP_OK(t, queue_record_decode(rec, sizeof(rec), &out, err, sizeof(err)) < 0 &&
	       strstr(err, "absurd") != NULL, "4 billion recipients refused: %s", err);
	put_be(rec + 4, 3, 2);	/* sender, claiming 4 GB */
	put_be(rec + 6, 0xfffffff0u, 4);
	put_be(rec + 20, crc32(rec, 14), 4);
	TAP_OK(t, queue_record_decode(rec, sizeof(rec), &out, err, sizeof(err)) < 0,
	       "a length past the end refused: %s", err);
}

int main(void)
{
	struct tap t = { 0 };

	roundtrip(&t, 0, 0);
	roundtrip(&t, 1, 1);
	roundtrip(&t, 1000, 300);
	roundtrip(&t, 5, 200000);
	roundtrip(&t, 2, 10);	/* RET=HDRS */
	test_truncated(&t);
	test_flipped(&t);
	test_unknown_tag(&t);
	test_absurd(&t);
	test_dsn_values(&t);
	return tap_done(&t);
}
