/*
 * fuzz_idna.c - libFuzzer target for util/idna.c: the input is a domain
 * as a client may send it after SMTPUTF8 (any octets). Checks besides
 * the sanitizers: an accepted name is ASCII, lower case, NUL-terminated
 * at its length, within 253 octets (plus a trailing dot), its labels
 * within 63; mtad_utf8_valid agrees with walking mtad_utf8_next; and
 * converting an A-label form again gives the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	char out[MTAD_DOMAIN_ASCII_MAX + 2], again[MTAD_DOMAIN_ASCII_MAX + 2];
	size_t i = 0, n, label = 0;
	uint32_t cp;
	bool walk = true;
	int len;

	while (i < size) {
		if ((n = mtad_utf8_next(s + i, size - i, &cp)) == 0 || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff)) {
			walk = false;
			break;
		}
		if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
			walk = false;
		i += n;
	}
	if (mtad_utf8_valid(s, size) != walk)
		abort();
	len = mtad_domain_to_ascii(s, size, out, sizeof(out));
	if (len < 0)
		return 0;
	if ((size_t)len != strlen(out) || !mtad_ascii(out, (size_t)len))
		abort();
	if (out[0] != '[') {
		for (i = 0; i < (size_t)len; i++) {
			if (out[i] >= 'A' && out[i] <= 'Z')
				abort();
			label = out[i] == '.' ? 0 : label + 1;
			if (label > 63)
				abort();
		}
		if ((size_t)len > MTAD_DOMAIN_ASCII_MAX + (out[len - 1] == '.'))
			abort();
	}
	if (mtad_domain_to_ascii(out, (size_t)len, again, sizeof(again)) != len ||
	    memcmp(out, again, (size_t)len) != 0)
		abort();
	return 0;
}
