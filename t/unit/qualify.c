/*
 * qualify.c - unit tests for local/qualify.c: bare names in address-list
 * header fields get the host name; nothing else changes.
 */
#include <stdio.h>
#include <string.h>

#include "local/local.h"
#include "t/unit/tap.h"

/* shown - s for a TAP line: CR, LF and TAB as \r \n \t. */
static const char *shown(const char *s, char *buf, size_t size)
{
	size_t n = 0;

	for (; *s && n + 3 < size; s++) {
		const char *esc = *s == '\r' ? "\\r" : *s == '\n' ? "\\n" : *s == '\t' ? "\\t" : NULL;

		if (esc) {
			memcpy(buf + n, esc, 2);
			n += 2;
		} else {
			buf[n++] = *s;
		}
	}
	buf[n] = '\0';
	return buf;
}

static void check(struct tap *t, const char *in, const char *want, int want_n)
{
	char out[512], a[600], b[600];
	size_t len = 0;
	int n = local_qualify_addresses(in, strlen(in), "mx.campus.test", out, sizeof(out), &len);

	TAP_OK(t, n == want_n && strcmp(out, want) == 0 && len == strlen(want),
	       "\"%s\" -> \"%s\" (%d qualified)", shown(in, a, sizeof(a)),
	       n >= 0 ? shown(out, b, sizeof(b)) : "-", n);
}

int main(void)
{
	struct tap t = { 0 };
	char small[8];
	size_t len;

	check(&t, " root", " root@mx.campus.test", 1);
	check(&t, " root, alice@campus.test", " root@mx.campus.test, alice@campus.test", 1);
	check(&t, " Root <root>", " Root <root@mx.campus.test>", 1);
	check(&t, " \"Root, the admin\" <root>, bob", " \"Root, the admin\" <root@mx.campus.test>, bob@mx.campus.test", 2);
	check(&t, " root (the admin)", " root@mx.campus.test (the admin)", 1);
	check(&t, " (comment, with root) alice@x.test", " (comment, with root) alice@x.test", 0);
	check(&t, " alice@campus.test", " alice@campus.test", 0);
	check(&t, " <alice@campus.test>", " <alice@campus.test>", 0);
	check(&t, " staff: root, carol;", " staff: root@mx.campus.test, carol@mx.campus.test;", 2);
	check(&t, " undisclosed-recipients:;", " undisclosed-recipients:;", 0);
	check(&t, " first.last", " first.last@mx.campus.test", 1);
	check(&t, " root,\r\n\tbob", " root@mx.campus.test,\r\n\tbob@mx.campus.test", 2);
	check(&t, " \"quoted\"", " \"quoted\"", 0);
	check(&t, " <>", " <>", 0);
	check(&t, " <@route:a@b>", " <@route:a@b>", 0);
	check(&t, "", "", 0);
	check(&t, " Two Words", " Two Words", 0);
	TAP_OK(&t, local_qualify_addresses(" root", 5, "mx.campus.test", small, sizeof(small), &len) == -1,
	       "an output too small: -1");
	return tap_done(&t);
}
