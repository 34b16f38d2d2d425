/*
 * fuzz_record.c - libFuzzer target for the queue's envelope record
 * decoder (queue_record_decode and queue_record_peek in queue/record.c):
 * what mtaq and the delivery runner read back from envelope.db, where a
 * damaged record must be an error, never a crash or a leak.
 *
 * Input: one mode byte, then the record. Mode bit 0 set: the record is
 * given without its trailing checksum field and this target appends a
 * correct one, so mutations reach the field parser instead of stopping
 * at the CRC check. The seeds in t/fuzz/corpus/record/ are real
 * queue_record_encode output (make fuzz-seeds, t/fuzz/gen_record_seeds.c).
 *
 * Checks: decode returns 0, or -1 with a reason and the envelope zeroed;
 * peek fails only on records decode also refuses, and agrees with it on
 * next_attempt and flags; a decoded envelope encodes, decodes again to
 * the same envelope, and that encodes to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue.h"

/* crc32 - CRC-32 (IEEE), written independently of record.c's. */
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

static bool same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* same_env - field by field. */
static bool same_env(const struct queue_envelope *a, const struct queue_envelope *b)
{
	if (a->version != b->version || strcmp(a->qid, b->qid) != 0 || a->arrival != b->arrival ||
	    a->arrival_usec != b->arrival_usec || !same_str(a->sender, b->sender) ||
	    a->nrcpt != b->nrcpt || !same_str(a->client_ip, b->client_ip) ||
	    !same_str(a->client_name, b->client_name) || !same_str(a->helo, b->helo) ||
	    !same_str(a->listener, b->listener) || !same_str(a->protocol, b->protocol) ||
	    !same_str(a->auth_user, b->auth_user) || a->size != b->size ||
	    a->next_attempt != b->next_attempt || a->flags != b->flags)
		return false;
	for (size_t i = 0; i < a->nrcpt; i++)
		if (!same_str(a->rcpt[i].addr, b->rcpt[i].addr) || a->rcpt[i].state != b->rcpt[i].state ||
		    a->rcpt[i].attempts != b->rcpt[i].attempts ||
		    !same_str(a->rcpt[i].last_reply, b->rcpt[i].last_reply))
			return false;
	return true;
}

/* zeroed - what a failed decode leaves. */
static bool zeroed(const struct queue_envelope *env)
{
	static const struct queue_envelope zero;

	return memcmp(env, &zero, sizeof(zero)) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct queue_envelope env, env2;
	unsigned char *buf, *enc1, *enc2;
	size_t len, len1, len2;
	char err[256];
	int64_t next = -1;
	uint32_t flags = 0xdeadbeef;
	int peek, rc;

	if (size < 1)
		return 0;
	/* An exact-size copy: reading past the record is an ASan error. */
	len = size - 1 + ((data[0] & 1) ? 10 : 0);
	buf = malloc(len ? len : 1);
	if (buf == NULL)
		abort();
	memcpy(buf, data + 1, size - 1);
	if (data[0] & 1) {
		uint32_t crc = crc32(buf, size - 1);
		unsigned char *t = buf + size - 1;

		t[0] = 0xff, t[1] = 0xff, t[2] = 0, t[3] = 0, t[4] = 0, t[5] = 4;
		t[6] = (unsigned char)(crc >> 24), t[7] = (unsigned char)(crc >> 16);
		t[8] = (unsigned char)(crc >> 8), t[9] = (unsigned char)crc;
	}

	/* On -1 next and flags may hold what was read before the damage: unused then. */
	peek = queue_record_peek(buf, len, &next, &flags);
	if (peek != 0 && peek != -1)
		abort();
	err[0] = '\0';
	rc = queue_record_decode(buf, len, &env, err, sizeof(err));
	if (rc != 0) {
		if (rc != -1 || err[0] == '\0' || memchr(err, '\0', sizeof(err)) == NULL ||
		    !zeroed(&env))
			abort();
		free(buf);
		return 0;
	}
	if (peek != 0 || next != env.next_attempt || flags != env.flags)
		abort();
	if (!queue_id_valid(env.qid) || env.sender == NULL)
		abort();
	for (size_t i = 0; i < env.nrcpt; i++)
		if (env.rcpt[i].addr == NULL || env.rcpt[i].state > QUEUE_RCPT_FAILED)
			abort();

	/* Round trip: encode, decode, same envelope; encode again, same bytes. */
	enc1 = queue_record_encode(&env, &len1);
	if (enc1 == NULL)
		abort();
	if (queue_record_decode(enc1, len1, &env2, err, sizeof(err)) != 0 || !same_env(&env, &env2))
		abort();
	enc2 = queue_record_encode(&env2, &len2);
	if (enc2 == NULL || len1 != len2 || memcmp(enc1, enc2, len1) != 0)
		abort();
	free(enc1);
	free(enc2);
	queue_envelope_free(&env);
	queue_envelope_free(&env2);
	free(buf);
	return 0;
}
