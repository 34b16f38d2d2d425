/*
 * fuzz_milter.c - libFuzzer target for milter/codec.c's decoding of what
 * a milter sends: the packet decoder fed the input in pieces of sizes
 * taken from the input itself, and every complete packet through the
 * reply parsers (OPTNEG, header modifications, reply code, strings).
 *
 * Checks: the decoder never takes more bytes than given, a complete
 * packet's length is 1..MILTER_PACKET_MAX, an error stops it for good;
 * parsed strings lie inside the packet; a reply code is 400..599.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "milter/milter.h"

/* check_packet - every parser over one complete packet. */
static void check_packet(const struct milter_decoder *d)
{
	const unsigned char *data = d->data + 1;
	size_t len = d->len - 1;
	struct milter_optneg o;
	struct milter_header_mod h;
	const char *s[8], *text;
	int code, n;

	if (d->len < 1 || d->len > MILTER_PACKET_MAX)
		abort();
	(void)milter_parse_optneg(data, len, &o);
	if (milter_parse_header_mod((char)d->data[0], data, len, &h) == 0 &&
	    (h.name < (const char *)data || h.value >= (const char *)data + len))
		abort();
	if (milter_parse_replycode(data, len, &code, &text) == 0) {
		const char *p = text, *next;
		size_t lines = 0;

		if (code < 400 || code > 599)
			abort();
		/* Every line of a reply it accepted is walked inside the packet. */
		for (; p != NULL; p = next, lines++) {
			size_t n = milter_reply_line(p, &next);

			if (p < (const char *)data || p + n > (const char *)data + len ||
			    lines >= MILTER_REPLY_LINES)
				abort();
		}
	}
	n = milter_parse_strings(data, len, s, 8);
	for (int i = 0; i < n; i++)
		if (s[i] < (const char *)data || s[i] >= (const char *)data + len)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t len)
{
	static unsigned char *mem;
	struct milter_decoder d;
	size_t pos = 1;

	if (len == 0)
		return 0;
	if (!mem && !(mem = malloc(MILTER_PACKET_MAX)))
		abort();
	milter_decoder_init(&d, mem);
	while (pos < len) {
		size_t piece = (size_t)(in[0] % 17) + 1, used;
		bool complete;

		if (piece > len - pos)
			piece = len - pos;
		used = milter_decode(&d, in + pos, piece, &complete);
		if (used > piece)
			abort();
		if (d.error) {
			if (milter_decode(&d, in + pos, piece, &complete) != 0)
				abort();
			break;
		}
		if (complete) {
			check_packet(&d);
			milter_decoder_reset(&d);
		}
		pos += used;
	}
	return 0;
}
