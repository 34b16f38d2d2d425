/*
 * bodycheck.c - unit tests for the end-to-end body check (queue/
 * bodycheck.c) and the digest field of the envelope record: SHA-256
 * against the FIPS 180-4 example, the same digest whatever the chunking,
 * a mismatch in length or in one byte found and said, a record without
 * a digest checked by length alone, and the digest kept by encode/decode.
 */
#include <stdlib.h>
#include <string.h>

#include "queue/queue.h"
#include "t/unit/tap.h"

/* SHA-256("abc"), FIPS 180-4 appendix B.1. */
static const unsigned char abc_sha256[QUEUE_DIGEST_LEN] = {
	0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
	0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61,
	0xf2, 0x00, 0x15, 0xad,
};

/* digest_in_pieces - the digest of buf fed in pieces of step bytes. */
static int digest_in_pieces(const unsigned char *buf, size_t len, size_t step,
			    unsigned char out[QUEUE_DIGEST_LEN])
{
	struct queue_body_check *c = queue_body_check_new();
	int rc;

	if (c == NULL)
		return -1;
	for (size_t off = 0; off < len; off += step)
		queue_body_check_add(c, buf + off, len - off < step ? len - off : step);
	rc = queue_body_check_len(c) == len ? queue_body_check_final(c, out) : -1;
	queue_body_check_free(c);
	return rc;
}

/* test_known - the standard's example, one-shot and fed. */
static void test_known(struct tap *t)
{
	unsigned char d[QUEUE_DIGEST_LEN];

	TAP_OK(t, queue_body_digest("abc", 3, d) == 0 && memcmp(d, abc_sha256, sizeof(d)) == 0,
	       "queue_body_digest(\"abc\") is the FIPS 180-4 value");
	TAP_OK(t, digest_in_pieces((const unsigned char *)"abc", 3, 1, d) == 0 &&
		  memcmp(d, abc_sha256, sizeof(d)) == 0, "... and so is abc fed a byte at a time");
}

/* test_chunking - 200 KB in 60 KB chunks, odd pieces, or at once: one digest. */
static void test_chunking(struct tap *t)
{
	size_t len = 200 * 1024;
	unsigned char *buf = malloc(len), whole[QUEUE_DIGEST_LEN], d[QUEUE_DIGEST_LEN];
	static const size_t steps[] = { 60 * 1024, 4093, 1, 200 * 1024 };

	if (buf == NULL)
		return;
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(i * 7 + i / 251);
	TAP_OK(t, queue_body_digest(buf, len, whole) == 0, "digest of 200 KB");
	for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++)
		TAP_OK(t, digest_in_pieces(buf, len, steps[s], d) == 0 &&
			  memcmp(d, whole, sizeof(d)) == 0, "... the same fed in pieces of %zu",
		       steps[s]);
	free(buf);
}

/* verify - feeds body to a new check and verifies it against env. */
static int verify(const struct queue_envelope *env, const char *body, char *why, size_t wl)
{
	struct queue_body_check *c = queue_body_check_new();
	int rc;

	if (c == NULL)
		return -2;
	queue_body_check_add(c, body, strlen(body));
	rc = queue_body_check_verify(c, env, why, wl);
	queue_body_check_free(c);
	return rc;
}

/* test_verify - intact, short, one byte changed, no digest. */
static void test_verify(struct tap *t)
{
	const char *body = "Subject: x\r\n\r\nhello\r\n";
	struct queue_envelope env = { .size = strlen(body), .has_digest = true };
	char why[200] = "";

	(void)queue_body_digest(body, strlen(body), env.digest);
	TAP_OK(t, verify(&env, body, why, sizeof(why)) == 0, "the body as recorded: intact");
	TAP_OK(t, verify(&env, "Subject: x\r\n\r\nhell\r\n", why, sizeof(why)) == -1 &&
		  strstr(why, "bytes, its envelope says") != NULL,
	       "one byte short: damaged, and the length is named (%s)", why);
	TAP_OK(t, verify(&env, "Subject: x\r\n\r\nhellp\r\n", why, sizeof(why)) == -1 &&
		  strstr(why, "SHA-256") != NULL,
	       "one byte changed: damaged, and the digest is named (%s)", why);
	env.has_digest = false;
	TAP_OK(t, verify(&env, "Subject: x\r\n\r\nhellp\r\n", why, sizeof(why)) == 0,
	       "a record from before the digest: the length alone is checked");
	TAP_OK(t, verify(&env, "Subject: x\r\n\r\nhell\r\n", why, sizeof(why)) == -1,
	       "... and a wrong length is still caught");
}

/* test_record - the digest survives encode/decode; a bad length is refused. */
static void test_record(struct tap *t)
{
	struct queue_rcpt r = { .addr = "u@x.test" };
	struct queue_envelope env = {
		.version = QUEUE_RECORD_VERSION, .qid = "20R30BMWVXK000", .sender = "a@b.test",
		.rcpt = &r, .nrcpt = 1, .size = 3, .has_digest = true,
	}, back;
	unsigned char *rec;
	size_t len;
	char err[200];

	memcpy(env.digest, abc_sha256, sizeof(env.digest));
	rec = queue_record_encode(&env, &len);
	TAP_OK(t, rec != NULL, "an envelope with a digest encodes");
	if (rec == NULL)
		return;
	TAP_OK(t, queue_record_decode(rec, len, &back, err, sizeof(err)) == 0 &&
		  back.has_digest && memcmp(back.digest, abc_sha256, sizeof(abc_sha256)) == 0,
	       "... and decodes with the same digest");
	queue_envelope_free(&back);
	free(rec);
	env.has_digest = false;
	rec = queue_record_encode(&env, &len);
	TAP_OK(t, rec != NULL && queue_record_decode(rec, len, &back, err, sizeof(err)) == 0 &&
		  !back.has_digest, "without one, it decodes without one");
	if (rec != NULL)
		queue_envelope_free(&back);
	free(rec);
}

int main(void)
{
	struct tap t = { 0 };

	test_known(&t);
	test_chunking(&t);
	test_verify(&t);
	test_record(&t);
	return tap_done(&t);
}
