/*
 * bodycheck.c - the end-to-end body check: the SHA-256 and length of a
 * message body, taken as the bytes arrive from the client and kept in
 * the envelope, and taken again by every reader (delivery, mtaq show,
 * mtaq verify) before it trusts what the queue gave back.
 *
 * Why: Berkeley DB's page checksums (DB_CHKSUM, env.c) catch a page
 * damaged on disk, but not a chunk missing from the middle of a body, a
 * chunk from another message, or a bug anywhere between the session
 * and the database. The digest is over the whole body, so any of those
 * shows as a mismatch, and a mismatch means the message is held, never
 * delivered (deliver/deliver.c).
 *
 * Must not: do I/O, allocate per chunk, or accept a body whose length or
 * digest differ from the envelope's (no "close enough").
 *
 * Follows: FIPS 180-4 (SHA-256, through OpenSSL's EVP interface).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "queue/queue.h"

struct queue_body_check {
	EVP_MD_CTX *md;
	uint64_t len;
	bool failed;		/* OpenSSL refused an update: never "intact" */
};

/* queue_body_check_new - see queue.h. */
struct queue_body_check *queue_body_check_new(void)
{
	struct queue_body_check *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	if ((c->md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1) {
		queue_body_check_free(c);
		return NULL;
	}
	return c;
}

/* queue_body_check_free - see queue.h. */
void queue_body_check_free(struct queue_body_check *c)
{
	if (c == NULL)
		return;
	EVP_MD_CTX_free(c->md);
	free(c);
}

/* queue_body_check_add - see queue.h. */
void queue_body_check_add(struct queue_body_check *c, const void *data, size_t len)
{
	c->len += len;
	if (len > 0 && EVP_DigestUpdate(c->md, data, len) != 1)
		c->failed = true;
}

/* queue_body_check_len - see queue.h. */
uint64_t queue_body_check_len(const struct queue_body_check *c)
{
	return c->len;
}

/* queue_body_check_final - see queue.h. */
int queue_body_check_final(struct queue_body_check *c, unsigned char out[QUEUE_DIGEST_LEN])
{
	unsigned int n = 0;

	if (c->failed || EVP_DigestFinal_ex(c->md, out, &n) != 1 || n != QUEUE_DIGEST_LEN)
		return -1;
	return 0;
}

/* hex8 - the first 4 bytes of a digest as text, for log lines. */
static void hex8(const unsigned char *d, char out[9])
{
	snprintf(out, 9, "%02x%02x%02x%02x", d[0], d[1], d[2], d[3]);
}

/* queue_body_check_verify - see queue.h. */
int queue_body_check_verify(struct queue_body_check *c, const struct queue_envelope *env,
			    char *why, size_t whylen)
{
	unsigned char got[QUEUE_DIGEST_LEN];
	char want_hex[9], got_hex[9];

	if (c->len != env->size) {
		snprintf(why, whylen, "the body has %llu bytes, its envelope says %llu",
			 (unsigned long long)c->len, (unsigned long long)env->size);
		return -1;
	}
	if (queue_body_check_final(c, got) < 0) {
		snprintf(why, whylen, "cannot compute the body's SHA-256");
		return -1;
	}
	if (env->has_digest && memcmp(got, env->digest, QUEUE_DIGEST_LEN) != 0) {
		hex8(env->digest, want_hex);
		hex8(got, got_hex);
		snprintf(why, whylen, "the body's SHA-256 is %s..., its envelope says %s...",
			 got_hex, want_hex);
		return -1;
	}
	return 0;
}

/* queue_body_digest - see queue.h. */
int queue_body_digest(const void *data, size_t len, unsigned char out[QUEUE_DIGEST_LEN])
{
	unsigned int n = 0;

	if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != QUEUE_DIGEST_LEN)
		return -1;
	return 0;
}
