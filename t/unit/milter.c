/*
 * milter.c - unit tests for milter/codec.c: the `milter =` line (good
 * lines with every field, bad ones with their error), packets encoded
 * byte for byte as libmilter reads them, the incremental decoder (split
 * anywhere, bad lengths), and the parsers of a milter's replies (OPTNEG,
 * header modifications, reply codes), malformed ones refused.
 */
#include <stdlib.h>
#include <string.h>

#include "milter/milter.h"
#include "t/unit/tap.h"

static void test_spec(struct tap *t)
{
	struct milter_spec s;
	char err[256];

	TAP_OK(t, milter_spec_parse("dkim inet:127.0.0.1:8891", &s, err, sizeof(err)) == 0 &&
	       strcmp(s.name, "dkim") == 0 && !s.unix_socket && strcmp(s.path, "127.0.0.1") == 0 &&
	       s.port == 8891 && s.connect_timeout == 30 && s.command_timeout == 30 &&
	       s.content_timeout == 300 && s.default_action == MILTER_TEMPFAIL, "inet line, defaults");
	TAP_OK(t, milter_spec_parse("clamav unix:/run/clamav/clamav-milter.ctl connect_timeout=5 "
				    "command_timeout=7 content_timeout=9 default_action=accept",
				    &s, err, sizeof(err)) == 0 && s.unix_socket &&
	       strcmp(s.path, "/run/clamav/clamav-milter.ctl") == 0 && s.connect_timeout == 5 &&
	       s.command_timeout == 7 && s.content_timeout == 9 && s.default_action == MILTER_ACCEPT,
	       "unix line with every option");
	TAP_OK(t, milter_spec_parse("x inet:127.0.0.1:1 default_action=reject", &s, err,
				    sizeof(err)) == 0 && s.default_action == MILTER_REJECT, "reject");
	static const struct { const char *v, *err; } bad[] = {
		{ "onlyname", "expected NAME" },
		{ "a/b inet:127.0.0.1:1", "milter name" },
		{ "x tcp:127.0.0.1:1", "expected unix:/path" },
		{ "x unix:relative", "absolute path" },
		{ "x inet:127.0.0.1:0", "port must be" },
		{ "x inet:127.0.0.1:99999", "port must be" },
		{ "x inet:127.0.0.1:", "port must be" },
		{ "x inet:192.0.2.1:25", "only loopback" },
		{ "x inet:8891", "expected inet:" },
		{ "x inet:127.0.0.1:1 timeout=3", "unknown milter option" },
		{ "x inet:127.0.0.1:1 command_timeout=0", "seconds" },
		{ "x inet:127.0.0.1:1 command_timeout=5s", "seconds" },
		{ "x inet:127.0.0.1:1 default_action=discard", "tempfail, accept or reject" },
		{ "x inet:127.0.0.1:1 loose", "KEY=VALUE" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		TAP_OK(t, milter_spec_parse(bad[i].v, &s, err, sizeof(err)) == -1 &&
		       strstr(err, bad[i].err) != NULL, "bad \"%s\": %s", bad[i].v, err);
	}
}

static void test_encode(struct tap *t)
{
	unsigned char mem[256];
	struct milter_buf b;

	milter_buf_init(&b, mem, sizeof(mem));
	milter_put_optneg(&b, 6, 0x1ff, 0x1fffff);
	TAP_OK(t, b.len == 17 && memcmp(mem, "\0\0\0\x0dO\0\0\0\x06\0\0\x01\xff\0\x1f\xff\xff", 17) == 0,
	       "OPTNEG bytes");
	milter_buf_init(&b, mem, sizeof(mem));
	milter_put_connect(&b, "mx.example", '4', 2525, "192.0.2.1");
	TAP_OK(t, b.len == 5 + 11 + 1 + 2 + 10 && mem[4] == 'C' && memcmp(mem + 5, "mx.example\0" "4\x09\xdd" "192.0.2.1\0", 24) == 0,
	       "CONNECT: name, family, port, address");
	milter_buf_init(&b, mem, sizeof(mem));
	milter_put_connect(&b, "localhost", 'U', 0, "");
	TAP_OK(t, b.len == 5 + 10 + 1 && memcmp(mem, "\0\0\0\x0c" "Clocalhost\0U", 16) == 0,
	       "CONNECT of an unknown family: name and family only");
	milter_buf_init(&b, mem, sizeof(mem));
	milter_put_connect(&b, "localhost", 'L', 0, "/s");
	TAP_OK(t, b.len == 5 + 10 + 1 + 2 + 3 && memcmp(mem + 15, "L\0\0/s\0", 6) == 0,
	       "CONNECT over a Unix socket: port 0 and the path");
	milter_buf_init(&b, mem, sizeof(mem));
	const char *pairs[] = { "j", "mx.test", "{auth_authen}", NULL, "{client_addr}", "192.0.2.1" };
	milter_put_macros(&b, SMFIC_CONNECT, pairs, 3);
	TAP_OK(t, b.len == 5 + 1 + 10 + 24 && mem[4] == 'D' && mem[5] == 'C' &&
	       memcmp(mem + 6, "j\0mx.test\0{client_addr}\0" "192.0.2.1\0", 34) == 0,
	       "MACRO: stage, pairs, NULL values left out");
	milter_buf_init(&b, mem, sizeof(mem));
	const char *mail[] = { "<a@b>", "SIZE=10" };
	milter_put_strings(&b, SMFIC_MAIL, mail, 2);
	TAP_OK(t, b.len == 5 + 14 && memcmp(mem, "\0\0\0\x0fM<a@b>\0SIZE=10\0", 19) == 0, "MAIL strings");
	milter_buf_init(&b, mem, 8);
	milter_put_packet(&b, SMFIC_BODY, "0123456789", 10);
	TAP_OK(t, b.overflow && b.len == 0, "overflow is noted, nothing half written");
	milter_put_packet(&b, SMFIC_EOH, NULL, 0);
	TAP_OK(t, b.overflow && b.len == 0, "and stays");
}

static void test_decode(struct tap *t)
{
	unsigned char *mem = malloc(MILTER_PACKET_MAX);
	struct milter_decoder d;
	static const unsigned char wire[] = "\0\0\0\x0dy550 5.7.1 no" "\0\0\0\x01" "c";
	bool complete = false;
	size_t used = 0;

	milter_decoder_init(&d, mem);
	/* byte by byte */
	for (size_t i = 0; i < 17 && !complete; i++)
		used += milter_decode(&d, wire + i, 1, &complete);
	TAP_OK(t, complete && used == 17 && d.data[0] == 'y' && d.len == 13, "split byte by byte");
	int code = 0;
	const char *text = NULL;
	TAP_OK(t, milter_parse_replycode(d.data + 1, d.len - 1, &code, &text) == -1,
	       "a reply code without its NUL is refused");
	milter_decoder_reset(&d);
	used = milter_decode(&d, wire + 17, sizeof(wire) - 1 - 17, &complete);
	TAP_OK(t, complete && used == 5 && d.data[0] == 'c', "a second packet whole");
	milter_decoder_reset(&d);
	used = milter_decode(&d, "\0\0\0\0", 4, &complete);
	TAP_OK(t, d.error && !complete, "length 0 is an error");
	milter_decoder_init(&d, mem);
	used = milter_decode(&d, "\0\x10\0\x01", 4, &complete);
	TAP_OK(t, d.error && !complete, "a length over MILTER_PACKET_MAX is an error");
	free(mem);
}

static void test_replies(struct tap *t)
{
	struct milter_optneg o;
	struct milter_header_mod h;
	int code;
	const char *text;
	const char *s[4];

	TAP_OK(t, milter_parse_optneg((const unsigned char *)"\0\0\0\x06\0\0\0\x01\0\0\0\x10", 12, &o) == 0 &&
	       o.version == 6 && o.actions == 1 && o.protocol == 0x10, "OPTNEG reply");
	TAP_OK(t, milter_parse_optneg((const unsigned char *)"\0\0\0\x07\0\0\0\x01\0\0\0\x10", 12, &o) == -1,
	       "version 7 refused");
	TAP_OK(t, milter_parse_optneg((const unsigned char *)"\0\0\0\x06\0\0\0", 7, &o) == -1, "short OPTNEG");
	TAP_OK(t, milter_parse_header_mod('h', (const unsigned char *)"X-A\0v 1\0", 8, &h) == 0 &&
	       strcmp(h.name, "X-A") == 0 && strcmp(h.value, "v 1") == 0, "ADDHEADER");
	TAP_OK(t, milter_parse_header_mod('i', (const unsigned char *)"\0\0\0\x02X-B\0w\n\tx\0", 13, &h) == 0 &&
	       h.index == 2 && strcmp(h.value, "w\n\tx") == 0, "INSHEADER with a folded value");
	TAP_OK(t, milter_parse_header_mod('m', (const unsigned char *)"\0\0\0\x01Subject\0\0", 13, &h) == 0 &&
	       h.index == 1 && h.value[0] == '\0', "CHGHEADER to empty (a delete)");
	TAP_OK(t, milter_parse_header_mod('h', (const unsigned char *)"X A\0v\0", 6, &h) == -1, "space in name");
	TAP_OK(t, milter_parse_header_mod('h', (const unsigned char *)"X:A\0v\0", 6, &h) == -1, "colon in name");
	TAP_OK(t, milter_parse_header_mod('h', (const unsigned char *)"X\0a\nb\0", 6, &h) == -1,
	       "a newline not followed by white space (header injection)");
	TAP_OK(t, milter_parse_header_mod('h', (const unsigned char *)"X\0a\rb\0", 6, &h) == -1, "bare CR");
	TAP_OK(t, milter_parse_header_mod('h', (const unsigned char *)"X\0v", 3, &h) == -1, "no final NUL");
	TAP_OK(t, milter_parse_header_mod('i', (const unsigned char *)"\0\0", 2, &h) == -1, "short index");
	TAP_OK(t, milter_parse_replycode((const unsigned char *)"550 5.7.1 go away\0", 18, &code, &text) == 0 &&
	       code == 550 && strcmp(text, "5.7.1 go away") == 0, "REPLYCODE 550");
	TAP_OK(t, milter_parse_replycode((const unsigned char *)"451\0", 4, &code, &text) == 0 &&
	       code == 451 && text[0] == '\0', "a bare code");
	TAP_OK(t, milter_parse_replycode((const unsigned char *)"250 ok\0", 7, &code, &text) == -1, "2xx refused");
	TAP_OK(t, milter_parse_replycode((const unsigned char *)"550 a\r\n550 b\0", 13, &code, &text) == -1,
	       "multi-line with ' ' on a line that is not the last: refused");
	{
		static const char ml[] = "550-5.7.1 one\r\n550-5.7.1 two\r\n550 5.7.1 three";
		const char *next, *p;
		size_t n;

		TAP_OK(t, milter_parse_replycode((const unsigned char *)ml, sizeof(ml), &code, &text) == 0 &&
		       code == 550, "smfi_setmlreply's multi-line form");
		n = milter_reply_line(text, &next);
		TAP_OK(t, n == 9 && memcmp(text, "5.7.1 one", 9) == 0 && next, "... line 1");
		p = next;
		n = milter_reply_line(p, &next);
		TAP_OK(t, n == 9 && memcmp(p, "5.7.1 two", 9) == 0 && next, "... line 2");
		p = next;
		n = milter_reply_line(p, &next);
		TAP_OK(t, n == 11 && memcmp(p, "5.7.1 three", 11) == 0 && !next, "... line 3, the last");
	}
	TAP_OK(t, milter_parse_replycode((const unsigned char *)"451-a\r\n451\0", 11, &code, &text) == 0,
	       "a last line that is a bare code");
	{
		const char *next, *p;

		p = text;
		(void)milter_reply_line(p, &next);
		TAP_OK(t, next && *next == '\0' && milter_reply_line(next, &next) == 0 && !next,
		       "... walked without reading past it");
	}
	TAP_OK(t, milter_parse_replycode((const unsigned char *)"550-a\r\n451 b\0", 13, &code, &text) == -1,
	       "multi-line with two codes: refused");
	TAP_OK(t, milter_parse_replycode((const unsigned char *)"550-a\n550 b\0", 12, &code, &text) == -1,
	       "multi-line split by a bare LF: refused");
	TAP_OK(t, milter_parse_replycode((const unsigned char *)"550-a\r\n\0", 9, &code, &text) == -1,
	       "multi-line ending in CRLF: refused");
	TAP_OK(t, milter_parse_replycode((const unsigned char *)"550-a\0", 6, &code, &text) == -1,
	       "a single line with '-': refused");
	TAP_OK(t, milter_parse_replycode((const unsigned char *)"55x no\0", 7, &code, &text) == -1, "not digits");
	TAP_OK(t, milter_parse_strings((const unsigned char *)"a\0b\0", 4, s, 4) == 2 &&
	       strcmp(s[1], "b") == 0, "two strings");
	TAP_OK(t, milter_parse_strings((const unsigned char *)"a\0b\0c\0", 6, s, 2) == -1, "more than max");
	TAP_OK(t, milter_parse_strings((const unsigned char *)"", 0, s, 2) == -1, "empty");
}

int main(void)
{
	struct tap t = { 0, 0 };

	test_spec(&t);
	test_encode(&t);
	test_decode(&t);
	test_replies(&t);
	return tap_done(&t);
}
