/*
 * fuzz_mime_downgrade.c - libFuzzer target for deliver/mime_downgrade.c:
 * the input is a message body as the queue holds it (any octets). The
 * first byte chooses a chunk size, the rest is fed in chunks of it.
 *
 * Checks besides the sanitizers: the output is the same for one call
 * and for the chunked feed; a message without "MIME-Version" anywhere
 * comes out with the same octets (its Content-Transfer-Encoding field
 * may move to the end of the header); when nothing was converted and
 * the input has no Content-Transfer-Encoding field, the output is the
 * input; a converted output is longer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/deliver.h"

/* run - the converter over data in chunks of step; the output (malloc'd). */
static char *run(const uint8_t *data, size_t size, size_t step, size_t *len, bool *converted)
{
	struct smtp_mime_downgrade *md = malloc(sizeof(*md));
	char *all = NULL, *out;
	size_t olen, i = 0;

	*len = 0;
	if (!md)
		abort();
	smtp_mime_downgrade_init(md);
	while (i < size) {
		size_t k = size - i > step ? step : size - i;

		if (smtp_mime_downgrade_feed(md, (const char *)data + i, k, &out, &olen) != 0)
			abort();
		if (olen) {
			all = realloc(all, *len + olen);
			memcpy(all + *len, out, olen);
			*len += olen;
		}
		free(out);
		i += k;
	}
	if (smtp_mime_downgrade_finish(md, &out, &olen) != 0)
		abort();
	if (olen) {
		all = realloc(all, *len + olen);
		memcpy(all + *len, out, olen);
		*len += olen;
	}
	free(out);
	*converted = md->converted;
	free(md);
	return all;
}

/* has - the octets contain needle, ignoring ASCII case. */
static bool has(const uint8_t *p, size_t n, const char *needle)
{
	size_t k = strlen(needle);

	for (size_t i = 0; i + k <= n; i++) {
		size_t j = 0;

		while (j < k && (p[i + j] | 0x20) == (needle[j] | 0x20))
			j++;
		if (j == k)
			return true;
	}
	return false;
}

/* same_octets - the same octets, in any order. */
static bool same_octets(const char *a, size_t alen, const uint8_t *b, size_t blen)
{
	size_t count[256] = { 0 };

	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++) {
		count[(unsigned char)a[i]]++;
		count[b[i]]--;
	}
	for (size_t i = 0; i < 256; i++)
		if (count[i] != 0)
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t step, a_len, b_len;
	bool a_conv, b_conv;
	char *a, *b;

	if (size == 0)
		return 0;
	step = 1 + data[0] % 64;
	data++;
	size--;
	a = run(data, size, size ? size : 1, &a_len, &a_conv);
	b = run(data, size, step, &b_len, &b_conv);
	if (a_len != b_len || (a_len && memcmp(a, b, a_len) != 0) || a_conv != b_conv)
		abort();
	if (!has(data, size, "mime-version") && !same_octets(a, a_len, data, size))
		abort();
	if (!a_conv && !has(data, size, "content-transfer-encoding") &&
	    (a_len != size || (size && memcmp(a, data, size) != 0)))
		abort();
	free(a);
	free(b);
	return 0;
}
