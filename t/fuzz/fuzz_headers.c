/*
 * fuzz_headers.c - libFuzzer target for what mtad does to the header
 * section of a submission: the scanner that finds where it ends and
 * whether Date: and Message-ID: are in it (smtp/header_scan.c), and the
 * host name for bare names in an address list (local/qualify.c).
 * Input: the first byte picks the split; the rest is a message.
 *
 * Checks: fed in two pieces, the scanner finds the same end and fields
 * as fed whole; qualifying never loses a byte of the value, fits the
 * room local_qualify_room promises, and qualifying its own output again finds
 * nothing more to do.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "local/local.h"
#include "smtp/smtp.h"

#define HOST "mx.campus.test"

static void check_scan(const char *p, size_t size, size_t split)
{
	struct smtp_header_scan a, b;
	size_t end_a, end_b;

	smtp_header_scan_init(&a);
	end_a = smtp_header_scan_feed(&a, p, size);
	smtp_header_scan_init(&b);
	end_b = smtp_header_scan_feed(&b, p, split);
	if (!b.done)
		end_b = split + smtp_header_scan_feed(&b, p + split, size - split);
	if (a.done != b.done || a.has_date != b.has_date ||
	    a.has_message_id != b.has_message_id || (a.done && end_a != end_b) || end_a > size)
		abort();
}

static void check_qualify(const char *p, size_t size)
{
	/* The room session_submit.c gives it. */
	size_t room = local_qualify_room(size, HOST), n = 0, n2 = 0;
	char *out = malloc(room), *again = malloc(local_qualify_room(room, HOST));
	int q;

	if (!out || !again)
		abort();
	q = local_qualify_addresses(p, size, HOST, out, room, &n);
	if (q < 0 || n < size || n != size + (size_t)q * (sizeof(HOST)) || out[n] != '\0')
		abort();
	if (memchr(p, '\0', size) == NULL &&
	    local_qualify_addresses(out, n, HOST, again, local_qualify_room(room, HOST), &n2) != 0)
		abort();
	free(out);
	free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t split;

	if (size < 1)
		return 0;
	split = data[0] % size;
	data++;
	size--;
	if (split > size)
		split = size;
	check_scan((const char *)data, size, split);
	check_qualify((const char *)data, size);
	return 0;
}
