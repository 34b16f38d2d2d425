/*
 * fuzz_bdat.c - libFuzzer target for the BDAT argument parser
 * (smtp_parse_bdat in smtp/command.c): the input is what follows "BDAT "
 * on a command line, as smtp_command_parse hands it over.
 *
 * Checks besides the sanitizers: it is accepted exactly when a plain
 * reference accepts it (1 to 20 digits, a value up to UINT64_MAX / 2,
 * then nothing, or spaces and LAST in any case), with the same size and
 * LAST; nothing is read past len (the copy is exactly len bytes, not
 * NUL-terminated).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp/smtp.h"

/* reference - the grammar written the obvious way. */
static int reference(const char *p, size_t len, uint64_t *size, bool *last)
{
	unsigned __int128 v = 0;
	size_t digits = 0, i;

	while (digits < len && p[digits] >= '0' && p[digits] <= '9')
		digits++;
	if (digits == 0 || digits > 20)
		return -1;
	for (i = 0; i < digits; i++)
		v = v * 10 + (unsigned)(p[i] - '0');
	if (v > UINT64_MAX / 2)
		return -1;
	*size = (uint64_t)v;
	*last = false;
	if (digits == len)
		return 0;
	if (p[digits] != ' ')
		return -1;
	for (i = digits; i < len && p[i] == ' '; i++)
		;
	if (len - i != 4 || strncasecmp(p + i, "LAST", 4) != 0 || memchr(p + i, '\0', 4))
		return -1;
	*last = true;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size ? size : 1);
	uint64_t got_size = 1, want_size = 2;
	bool got_last = false, want_last = true;
	int got, want;

	if (copy == NULL)
		abort();
	memcpy(copy, data, size);
	got = smtp_parse_bdat(copy, size, &got_size, &got_last);
	want = reference(copy, size, &want_size, &want_last);
	if (got != want || (got == 0 && (got_size != want_size || got_last != want_last)))
		abort();
	free(copy);
	return 0;
}
