/*
 * idna.c - unit tests for util/idna.c: UTF-8 well-formedness (overlongs,
 * surrogates, truncation, controls), RFC 3492 Punycode against the
 * RFC's own samples and values Python's codec gives, and domains in
 * A-label form, look-alikes of an ASCII domain included.
 */
#include <string.h>

#include "util/util.h"
#include "t/unit/tap.h"

static const struct {
	const char *in;
	bool valid;
	const char *what;
} utf8_cases[] = {
	{ "jos\xc3\xa9", true, "two-octet e-acute" },
	{ "\xce\xb4\xce\xbf\xce\xba\xce\xb9\xce\xbc\xce\xae", true, "Greek" },
	{ "\xe6\x97\xa5\xe6\x9c\xac", true, "three-octet CJK" },
	{ "\xf0\x9f\x98\x80", true, "four-octet emoji" },
	{ "\xf4\x8f\xbf\xbf", true, "U+10FFFF" },
	{ "\xc0\xaf", false, "overlong slash (C0 AF)" },
	{ "\xc1\xbf", false, "overlong C1 BF" },
	{ "\xe0\x80\xaf", false, "overlong three-octet" },
	{ "\xf0\x80\x80\xaf", false, "overlong four-octet" },
	{ "\xed\xa0\x80", false, "surrogate U+D800" },
	{ "\xed\xbf\xbf", false, "surrogate U+DFFF" },
	{ "\xf4\x90\x80\x80", false, "above U+10FFFF" },
	{ "\xf5\x80\x80\x80", false, "F5 lead" },
	{ "\xff", false, "FF" },
	{ "\x80", false, "lone continuation" },
	{ "\xc3", false, "truncated two-octet" },
	{ "\xe6\x97", false, "truncated three-octet" },
	{ "a\xc3" "b", false, "continuation missing" },
	{ "\xc2\x85", false, "C1 control NEL" },
	{ "\xc2\x9f", false, "C1 control U+009F" },
	{ "\xc2\xa0", true, "U+00A0 is no control" },
	{ "a\x01" "b", false, "C0 control" },
	{ "a\x7f", false, "DEL" },
};

static void test_utf8(struct tap *t)
{
	uint32_t cp = 0;

	for (size_t i = 0; i < sizeof(utf8_cases) / sizeof(utf8_cases[0]); i++)
		TAP_OK(t, mtad_utf8_valid(utf8_cases[i].in, strlen(utf8_cases[i].in)) ==
		       utf8_cases[i].valid, "utf8: %s", utf8_cases[i].what);
	TAP_OK(t, mtad_utf8_next("\xe2\x82\xac", 3, &cp) == 3 && cp == 0x20ac, "next: U+20AC");
	TAP_OK(t, mtad_utf8_next("\xf0\x9f\x98\x80", 4, &cp) == 4 && cp == 0x1f600, "next: U+1F600");
	TAP_OK(t, mtad_utf8_next("\xe2\x82", 2, &cp) == 0, "next: short input");
	TAP_OK(t, mtad_utf8_next("", 0, &cp) == 0, "next: empty");
	TAP_OK(t, mtad_ascii("abc", 3) && !mtad_ascii("a\xc3\xa9", 3), "ascii");
}

/* RFC 3492 §7.1 samples (code points) and their encodings. */
static const uint32_t rfc_arabic[] = { 0x0644, 0x064A, 0x0647, 0x0645, 0x0627, 0x0628, 0x062A,
	0x0643, 0x0644, 0x0645, 0x0648, 0x0634, 0x0639, 0x0631, 0x0628, 0x064A, 0x061F };
static const uint32_t rfc_chinese[] = { 0x4ED6, 0x4EEC, 0x4E3A, 0x4EC0, 0x4E48, 0x4E0D, 0x8BF4,
	0x4E2D, 0x6587 };
static const uint32_t rfc_mixed[] = { 0x0033, 0x5E74, 0x0042, 0x7D44, 0x91D1, 0x516B, 0x5148,
	0x751F };	/* (L) 3<nen>B<gumi><kinpachi><sensei> */
static const uint32_t rfc_ascii_only[] = { '-', '>', ' ', '$', '1', '.', '0', '0', ' ', '<', '-' };

static void test_punycode(struct tap *t)
{
	static const struct {
		const uint32_t *cp;
		size_t n;
		const char *want;
	} cases[] = {
		{ rfc_arabic, sizeof(rfc_arabic) / 4, "egbpdaj6bu4bxfgehfvwxn" },
		{ rfc_chinese, sizeof(rfc_chinese) / 4, "ihqwcrb4cv8a8dqg056pqjye" },
		{ rfc_mixed, sizeof(rfc_mixed) / 4, "3B-ww4c5e180e575a65lsy2b" },
		{ rfc_ascii_only, sizeof(rfc_ascii_only) / 4, "-> $1.00 <--" },
	};
	char out[128];
	size_t len;
	uint32_t big[MTAD_PUNYCODE_MAX_IN + 1], bad = 0x110000;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		TAP_OK(t, mtad_punycode_encode(cases[i].cp, cases[i].n, out, sizeof(out), &len) == 0 &&
		       len == strlen(cases[i].want) && memcmp(out, cases[i].want, len) == 0,
		       "punycode: RFC 3492 sample %s", cases[i].want);
	TAP_OK(t, mtad_punycode_encode(rfc_chinese, 9, out, 10, &len) == -1, "punycode: no room");
	for (size_t i = 0; i < MTAD_PUNYCODE_MAX_IN + 1; i++)
		big[i] = 0x4e00 + (uint32_t)i;
	TAP_OK(t, mtad_punycode_encode(big, MTAD_PUNYCODE_MAX_IN + 1, out, sizeof(out), &len) == -1,
	       "punycode: too many code points");
	TAP_OK(t, mtad_punycode_encode(&bad, 1, out, sizeof(out), &len) == -1,
	       "punycode: above U+10FFFF");
}

static void test_domains(struct tap *t)
{
	static const struct {
		const char *in, *want;	/* want NULL: refused */
	} cases[] = {
		{ "campus.test", "campus.test" },
		{ "CAMPUS.Test", "campus.test" },
		{ "b\xc3\xbc" "cher.test", "xn--bcher-kva.test" },
		{ "B\xc3\xbc" "CHER.test", "xn--bcher-kva.test" },
		{ "\xcf\x80\xce\xb1\xcf\x81\xce\xac\xce\xb4\xce\xb5\xce\xb9\xce\xb3\xce\xbc\xce\xb1.test",
		  "xn--hxajbheg2az3al.test" },
		/* Cyrillic a (U+0430) in campus: a different, foreign domain. */
		{ "c\xd0\xb0mpus.test", "xn--cmpus-4ve.test" },
		{ "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e.jp", "xn--wgv71a119e.jp" },
		{ "xn--bcher-kva.test", "xn--bcher-kva.test" },
		{ "campus.test.", "campus.test." },
		{ "[192.0.2.1]", "[192.0.2.1]" },
		{ "", NULL },
		{ ".", NULL },
		{ "a..b", NULL },
		{ "b\xc3" "cher.test", NULL },
		{ "b\xc2\x85.test", NULL },
		{ "\xed\xa0\x80.test", NULL },
		{ "-b\xc3\xbc.test", NULL },
		{ "b\xc3\xbc-.test", NULL },
		{ "b\xc3\xbc--x.test", NULL },
		{ "-ascii-.test", "-ascii-.test" },	/* ASCII syntax is the parser's business */
	};
	char out[MTAD_DOMAIN_ASCII_MAX + 2], in[600];
	int n;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = mtad_domain_to_ascii(cases[i].in, strlen(cases[i].in), out, sizeof(out));
		if (cases[i].want)
			TAP_OK(t, n == (int)strlen(cases[i].want) && strcmp(out, cases[i].want) == 0,
			       "to_ascii: %s -> %s (got %d %s)", cases[i].want, cases[i].want, n,
			       n >= 0 ? out : "");
		else
			TAP_OK(t, n == -1, "to_ascii: case %zu refused", i);
	}
	/* A U-label whose A-label is over 63 octets. */
	in[0] = '\0';
	for (int i = 0; i < 20; i++)	/* 60 octets, 72 as Punycode */
		strcat(in, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
	strcat(in, ".test");
	TAP_OK(t, mtad_domain_to_ascii(in, strlen(in), out, sizeof(out)) == -1,
	       "to_ascii: A-label over 63 octets");
	/* A name over 253 octets. */
	memset(in, 'a', 300);
	for (int i = 60; i < 300; i += 61)
		in[i] = '.';
	TAP_OK(t, mtad_domain_to_ascii(in, 300, out, sizeof(out)) == -1, "to_ascii: name over 253");
	TAP_OK(t, mtad_domain_to_ascii("b\xc3\xbc" "cher.test", 11, out, 8) == -1,
	       "to_ascii: out too small");
	TAP_OK(t, mtad_domain_same("xn--bcher-kva.TEST", 18, "b\xc3\xbc" "cher.test.", 12),
	       "same: A-label and U-label");
	TAP_OK(t, !mtad_domain_same("campus.test", 11, "c\xd0\xb0mpus.test", 12),
	       "same: the Cyrillic look-alike is another domain");
	TAP_OK(t, !mtad_domain_same("", 0, "", 0), "same: empty names are nothing");
}

int main(void)
{
	struct tap t = { 0, 0 };

	test_utf8(&t);
	test_punycode(&t);
	test_domains(&t);
	return tap_done(&t);
}
