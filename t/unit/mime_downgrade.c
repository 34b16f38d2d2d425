/*
 * mime_downgrade.c - unit tests for deliver/mime_downgrade.c: exact
 * output for a top-level 8bit text, a multipart with 8bit, base64 and
 * nested parts, message/rfc822, a message that is not MIME; the same
 * output whatever the chunk boundaries; and quoted-printable that
 * decodes back to the original octets, with lines of at most 76.
 */
#include <stdlib.h>
#include <string.h>

#include "deliver/deliver.h"
#include "t/unit/tap.h"

#define S(x) x, sizeof(x) - 1

/* run - the whole input through a converter in chunks of `step` (0: one call). */
static char *run(const char *in, size_t n, size_t step, size_t *outlen, bool *converted)
{
	struct smtp_mime_downgrade *md = malloc(sizeof(*md));
	char *all = NULL, *out;
	size_t len = 0, olen, i = 0;

	if (!md)
		return NULL;
	smtp_mime_downgrade_init(md);
	do {
		size_t k = step && n - i > step ? step : n - i;

		if (smtp_mime_downgrade_feed(md, in + i, k, &out, &olen) != 0)
			abort();
		all = realloc(all, len + olen + 1);
		if (olen)
			memcpy(all + len, out, olen);
		len += olen;
		free(out);
		i += k;
	} while (i < n);
	if (smtp_mime_downgrade_finish(md, &out, &olen) != 0)
		abort();
	all = realloc(all, len + olen + 1);
	if (olen)
		memcpy(all + len, out, olen);
	len += olen;
	free(out);
	all[len] = '\0';
	*outlen = len;
	if (converted)
		*converted = md->converted;
	free(md);
	return all;
}

/* same - run() gives want, for one call and for every chunk size up to 9 and a few more. */
static void same(struct tap *t, const char *in, size_t n, const char *want, size_t wlen,
		 const char *what)
{
	static const size_t steps[] = { 0, 1, 2, 3, 4, 5, 7, 9, 13, 64, 1000 };
	size_t len;

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		char *got = run(in, n, steps[i], &len, NULL);
		bool ok = got && len == wlen && memcmp(got, want, wlen) == 0;

		TAP_OK(t, ok, "%s (chunks of %zu)", what, steps[i]);
		if (!ok && got)
			printf("# got:  [%s]\n# want: [%s]\n", got, want);
		free(got);
		if (!ok)
			break;
	}
}

static void test_exact(struct tap *t)
{
	same(t, S("Received: x\r\nSubject: s\r\n\r\ncaf\xc3\xa9 = \r\n"),
	     S("Received: x\r\nSubject: s\r\n\r\ncaf\xc3\xa9 = \r\n"),
	     "not MIME (no MIME-Version): as it is");
	same(t, S("Received: x\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
		  "Content-Transfer-Encoding: 8bit\r\nSubject: s\r\n\r\ncaf\xc3\xa9 = ok \r\nline2\t\r\n"
		  "tab\there\r\n"),
	     S("Received: x\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
	       "Subject: s\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
	       "caf=C3=A9 =3D ok=20\r\nline2=09\r\ntab\there\r\n"),
	     "top-level 8bit text: quoted-printable, trailing white space encoded");
	same(t, S("MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n\xff\r\n"),
	     S("MIME-Version: 1.0\r\nContent-Type: text/plain\r\n"
	       "Content-Transfer-Encoding: quoted-printable\r\n\r\n=FF\r\n"),
	     "no Content-Transfer-Encoding: quoted-printable, the field added");
	same(t, S("MIME-Version: 1.0\r\nContent-Transfer-Encoding: Quoted-Printable\r\n\r\n=C3=A9\r\n"),
	     S("MIME-Version: 1.0\r\nContent-Transfer-Encoding: Quoted-Printable\r\n\r\n=C3=A9\r\n"),
	     "quoted-printable already: as it is");
	same(t, S("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n"
		  "Content-Transfer-Encoding: 8bit\r\n\r\npreamble\r\n--b1\r\nContent-Type: text/plain\r\n"
		  "Content-Transfer-Encoding: 8BIT\r\n\r\n\xc3\xa9t\xc3\xa9\r\n--b1 \r\n"
		  "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
		  "AAAA\r\n--b1--\r\nepilogue\r\n"),
	     S("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n"
	       "Content-Transfer-Encoding: 7bit\r\n\r\npreamble\r\n--b1\r\nContent-Type: text/plain\r\n"
	       "Content-Transfer-Encoding: quoted-printable\r\n\r\n=C3=A9t=C3=A9\r\n--b1 \r\n"
	       "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	       "AAAA\r\n--b1--\r\nepilogue\r\n"),
	     "multipart: 7bit; the 8bit part quoted-printable, base64 as it is");
	same(t, S("MIME-Version: 1.0\r\nContent-Type: multipart/mixed;\r\n boundary=outer\r\n\r\n"
		  "--outer\r\nContent-Type: multipart/alternative; boundary=\"in ner\"\r\n\r\n"
		  "--in ner\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
		  "--in nerX is no boundary \xc3\xa9\r\n--in ner--\r\n"
		  "--outer\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
		  "Subject: inner\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
		  "\xc3\xbc\r\n--outer--\r\n"),
	     S("MIME-Version: 1.0\r\nContent-Type: multipart/mixed;\r\n boundary=outer\r\n\r\n"
	       "--outer\r\nContent-Type: multipart/alternative; boundary=\"in ner\"\r\n\r\n"
	       "--in ner\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
	       "--in nerX is no boundary =C3=A9\r\n--in ner--\r\n"
	       "--outer\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
	       "Subject: inner\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
	       "=C3=BC\r\n--outer--\r\n"),
	     "nested multipart, a near-boundary line, message/rfc822 with its own 8bit body");
	same(t, S("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n"
		  "\xc3\xa9\r\n--b                                                  \t   \r\n\r\nx\r\n--b--\r\n"),
	     S("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
	       "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	       "=C3=A9\r\n--b                                                  \t   \r\n"
	       "Content-Transfer-Encoding: quoted-printable\r\n\r\nx\r\n--b--\r\n"),
	     "a delimiter with transport padding, parts without headers");
	same(t, S("MIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\n\xc3\xa9\r\n"),
	     S("MIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\n\xc3\xa9\r\n"),
	     "multipart without a boundary: as it is");
	same(t, S("MIME-Version: 1.0\r\nContent-Type: text/plain\r\n"),
	     S("MIME-Version: 1.0\r\nContent-Type: text/plain\r\n"),
	     "a header that never ends: as it is");
	same(t, S("MIME-Version: 1.0\r\nContent-Transfer-Encoding: 8bit\r\n"),
	     S("MIME-Version: 1.0\r\nContent-Transfer-Encoding: 8bit\r\n"),
	     "... its held Content-Transfer-Encoding too");
	same(t, S("MIME-Version: 1.0\r\nContent-Transfer-Encoding: 8bit\r\n\r\nbare\nLF \n"),
	     S("MIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nbare\r\nLF=20\r\n"),
	     "8bit text: a bare LF ends a line (CRLF out)");
	same(t, S("MIME-Version: 1.0\r\nContent-Transfer-Encoding: binary\r\n\r\nbare\nLF\r\n"),
	     S("MIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nbare=0ALF\r\n"),
	     "binary: a bare LF is data (=0A)");
	same(t, S("MIME-Version: 1.0\r\n\r\na\rb\r\n\r\nend \r\r\n"),
	     S("MIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
	       "a=0Db\r\n\r\nend =0D\r\n"),
	     "a bare CR is data: =0D");
}

/* qp_decode - RFC 2045 quoted-printable back to octets (soft breaks removed). */
static size_t qp_decode(const char *in, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (in[i] == '=' && i + 2 < n && in[i + 1] == '\r' && in[i + 2] == '\n') {
			i += 2;
		} else if (in[i] == '=' && i + 2 < n) {
			char h[3] = { in[i + 1], in[i + 2], 0 };

			out[o++] = (char)strtol(h, NULL, 16);
			i += 2;
		} else {
			out[o++] = in[i];
		}
	}
	return o;
}

static void test_roundtrip(struct tap *t)
{
	static const char head[] = "MIME-Version: 1.0\r\nContent-Transfer-Encoding: binary\r\n\r\n";
	static const char ohead[] = "MIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n";
	size_t hl = sizeof(head) - 1, ohl = sizeof(ohead) - 1, len, dlen;
	unsigned seed = 12345;
	bool all_ok = true, lines_ok = true, ascii_ok = true;

	for (int round = 0; round < 200; round++) {
		size_t n = 1 + (size_t)(round * 37 % 3000);
		char *in = malloc(hl + n + 2), *dec, *out;

		memcpy(in, head, hl);
		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			unsigned r = (seed >> 16) & 0xff;

			/* mostly text, some 8-bit, spaces, '=', CRLF, bare CR and LF */
			in[hl + i] = r < 150 ? (char)('a' + r % 26) : r < 170 ? ' ' : r < 175 ? '=' :
				     r < 190 ? (char)(0x80 + r) : r < 195 ? '\t' : r < 200 ? '\r' :
				     r < 205 ? '\n' : 'x';
			if (r >= 240 && i + 1 < n) {
				in[hl + i] = '\r';
				in[hl + ++i] = '\n';
			}
		}
		memcpy(in + hl + n, "\r\n", 2);
		out = run(in, hl + n + 2, 1 + (size_t)round % 17, &len, NULL);
		if (!out || len < ohl || memcmp(out, ohead, ohl) != 0) {
			all_ok = false;
			free(out);
			free(in);
			break;
		}
		for (size_t i = ohl, col = 0; i < len; i++) {
			unsigned char c = (unsigned char)out[i];

			if (c >= 0x80 || (c < 0x20 && c != '\r' && c != '\n' && c != '\t'))
				ascii_ok = false;
			if (c == '\r' && i + 1 < len && out[i + 1] == '\n') {
				if (col > 76 || (col > 0 && (out[i - 1] == ' ' || out[i - 1] == '\t')))
					lines_ok = false;
				col = 0;
				i++;
				continue;
			}
			if (c == '\r' || c == '\n')
				ascii_ok = false;	/* only CRLF line ends */
			col++;
		}
		dec = malloc(len);
		dlen = qp_decode(out + ohl, len - ohl, dec);
		/* binary: every octet back exactly, bare CR and LF included */
		if (dlen != n + 2 || memcmp(dec, in + hl, n + 2) != 0)
			all_ok = false;
		free(dec);
		free(out);
		free(in);
	}
	TAP_OK(t, all_ok, "200 random 8-bit bodies: quoted-printable decodes to the original");
	TAP_OK(t, lines_ok, "... every encoded line at most 76 octets, no white space at its end");
	TAP_OK(t, ascii_ok, "... only 7-bit octets, CRLF line ends");
}

static void test_long_field(struct tap *t)
{
	size_t n = MD_FIELD_MAX + 100, len;
	char *in = malloc(n + 200), *out;
	size_t k = 0;
	bool converted = true;

	k += (size_t)sprintf(in + k, "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; x=\"");
	memset(in + k, 'a', MD_FIELD_MAX);
	k += MD_FIELD_MAX;
	k += (size_t)sprintf(in + k, "\"; boundary=b\r\n\r\n--b\r\n\r\n\xc3\xa9\r\n--b--\r\n");
	out = run(in, k, 100, &len, &converted);
	TAP_OK(t, out && len == k && memcmp(out, in, k) == 0 && !converted,
	       "a Content-Type over MD_FIELD_MAX: the message goes as it is");
	free(out);
	free(in);
}

int main(void)
{
	struct tap t = { 0, 0 };

	test_exact(&t);
	test_roundtrip(&t);
	test_long_field(&t);
	return tap_done(&t);
}
