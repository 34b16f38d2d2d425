/*
 * fuzz_client_reply.c - libFuzzer target for the SMTP client's reply
 * parser (smtp_client_parse_reply in deliver/client_reply.c): what a remote
 * server sends us when we deliver. The input is the bytes received; the
 * first byte's low bit says whether the reply is read as an EHLO reply
 * (extension flags wanted) or not.
 *
 * Checks: the result is -1, 0 or a length within the input ending at a
 * LF; a complete reply has a code 200..599, an enhanced code of its class
 * and a text with no control characters under 512 bytes; every shorter
 * prefix of a complete reply is "need more" (0), never "malformed"; and
 * bytes after the reply do not change it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/deliver.h"

/* parse - on an exact-size heap copy, so reading past len is an ASan error. */
static int parse(const char *in, size_t len, struct smtp_client_reply *out, unsigned *ext)
{
	char *copy = malloc(len ? len : 1);
	int rc;

	if (copy == NULL)
		abort();
	memcpy(copy, in, len);
	rc = smtp_client_parse_reply(copy, len, out, ext);
	free(copy);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_client_reply r, r2;
	unsigned ext = 0, ext2 = 0;
	unsigned *want_ext;
	const char *in;
	size_t len, tlen;
	int rc;

	if (size < 1)
		return 0;
	want_ext = (data[0] & 1) ? &ext : NULL;
	in = (const char *)data + 1;
	len = size - 1;
	rc = parse(in, len, &r, want_ext);
	if (rc < -1 || (rc > 0 && ((size_t)rc > len || in[rc - 1] != '\n')))
		abort();
	if (rc <= 0)
		return 0;

	if (r.code < 200 || r.code > 599)
		abort();
	if (memchr(r.enhanced, '\0', sizeof(r.enhanced)) == NULL || r.enhanced[0] != '0' + r.code / 100 ||
	    r.enhanced[1] != '.')
		abort();
	tlen = strnlen(r.text, sizeof(r.text));
	if (tlen >= sizeof(r.text))
		abort();
	for (size_t i = 0; i < tlen; i++)
		if ((unsigned char)r.text[i] < 0x20 || r.text[i] == 0x7f)
			abort();
	if (want_ext == NULL && r.size != 0)
		abort();

	/* A reply cut short is incomplete, not malformed. */
	if (parse(in, (size_t)rc - 1, &r2, NULL) != 0)
		abort();
	if (rc > 4 && parse(in, (size_t)rc / 2, &r2, NULL) != 0)
		abort();
	/* What follows the reply is the next reply's business. */
	if (parse(in, (size_t)rc, &r2, want_ext ? &ext2 : NULL) != rc ||
	    memcmp(&r, &r2, sizeof(r)) != 0 || ext != ext2)
		abort();
	return 0;
}
