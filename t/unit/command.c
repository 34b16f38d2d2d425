/*
 * command.c - unit tests for smtp/command.c: verbs, MAIL FROM / RCPT TO
 * paths and parameters with the exact reply for each refusal, and HELO
 * names (including the broken-but-real ones from the seed thread).
 */
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp.h"
#include "t/unit/tap.h"

#define S(x) x, sizeof(x) - 1
#define NO_ARG ((const char *)1)	/* expect arg == NULL */

struct command_case {
	const char *line;
	size_t len;
	int ret;
	enum smtp_verb verb;
	const char *arg;	/* expected argument text, or NO_ARG */
};

static const struct command_case command_cases[] = {
	{ S("HELO a.test"), 0, SMTP_HELO, "a.test" },
	{ S("EHLO a.test"), 0, SMTP_EHLO, "a.test" },
	{ S("MAIL FROM:<a@b.test>"), 0, SMTP_MAIL, "<a@b.test>" },
	{ S("RCPT TO:<a@b.test>"), 0, SMTP_RCPT, "<a@b.test>" },
	{ S("DATA"), 0, SMTP_DATA, "" },
	{ S("RSET"), 0, SMTP_RSET, "" },
	{ S("NOOP"), 0, SMTP_NOOP, "" },
	{ S("QUIT"), 0, SMTP_QUIT, "" },
	{ S("HELP"), 0, SMTP_HELP, "" },
	{ S("VRFY postmaster"), 0, SMTP_VRFY, "postmaster" },
	{ S("EXPN list"), 0, SMTP_EXPN, "list" },
	{ S("STARTTLS"), 0, SMTP_STARTTLS, "" },
	{ S("AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q="), 0, SMTP_AUTH, "PLAIN dGVzdAB0ZXN0AHRlc3Q=" },
	/* case and spacing */
	{ S("helo a.test"), 0, SMTP_HELO, "a.test" },
	{ S("eHlO a.test"), 0, SMTP_EHLO, "a.test" },
	{ S("mail from:<a@b.test>"), 0, SMTP_MAIL, "<a@b.test>" },
	{ S("Mail From:<a@b.test>"), 0, SMTP_MAIL, "<a@b.test>" },
	{ S("rcpt to:<a@b.test>"), 0, SMTP_RCPT, "<a@b.test>" },
	{ S("starttls"), 0, SMTP_STARTTLS, "" },
	{ S("MAIL FROM: <a@b.test>"), 0, SMTP_MAIL, "<a@b.test>" },
	{ S("MAIL FROM:  <a@b.test> SIZE=10  "), 0, SMTP_MAIL, "<a@b.test> SIZE=10" },
	{ S("MAIL  FROM:<a@b.test>"), 0, SMTP_MAIL, "<a@b.test>" },
	{ S("RCPT TO: <a@b.test>"), 0, SMTP_RCPT, "<a@b.test>" },
	{ S("EHLO   a.test   "), 0, SMTP_EHLO, "a.test" },
	{ S("EHLO"), 0, SMTP_EHLO, "" },
	{ S("EHLO   "), 0, SMTP_EHLO, "" },
	{ S("DATA x"), 0, SMTP_DATA, "x" },
	/* MAIL/RCPT without the keyword: arg NULL, the caller says 501 */
	{ S("MAIL"), 0, SMTP_MAIL, NO_ARG },
	{ S("MAIL <a@b.test>"), 0, SMTP_MAIL, NO_ARG },
	{ S("MAIL FROM <a@b.test>"), 0, SMTP_MAIL, NO_ARG },
	{ S("MAIL TO:<a@b.test>"), 0, SMTP_MAIL, NO_ARG },
	{ S("RCPT FROM:<a@b.test>"), 0, SMTP_RCPT, NO_ARG },
	{ S("RCPT TO"), 0, SMTP_RCPT, NO_ARG },
	{ S("RCPT"), 0, SMTP_RCPT, NO_ARG },
	/* unknown verbs */
	{ S(""), 0, SMTP_UNKNOWN, "" },
	{ S("FOO bar"), 0, SMTP_UNKNOWN, "bar" },
	{ S("HELOX a.test"), 0, SMTP_UNKNOWN, "a.test" },
	{ S("MAILFROM:<a@b.test>"), 0, SMTP_UNKNOWN, "" },
	{ S("GET / HTTP/1.0"), 0, SMTP_UNKNOWN, "/ HTTP/1.0" },
	{ S(" HELO a.test"), 0, SMTP_UNKNOWN, "HELO a.test" },
	/* control characters anywhere: -1, the caller says 500 5.5.2 */
	{ S("NOOP\0x"), -1, 0, NULL },
	{ S("\0"), -1, 0, NULL },
	{ S("MAIL FROM:<a\0@b.test>"), -1, 0, NULL },
	{ S("EHLO a\tb"), -1, 0, NULL },
	{ S("EHLO\ta.test"), -1, 0, NULL },
	{ S("QUIT\r"), -1, 0, NULL },
	{ S("RCPT TO:<a\n@b.test>"), -1, 0, NULL },
	{ S("NOOP \x1b[31m"), -1, 0, NULL },
	{ S("NOOP \x7f"), -1, 0, NULL },
	{ S("NOOP \x01"), -1, 0, NULL },
	{ S("NOOP \x1f"), -1, 0, NULL },
	/* 8-bit is not a control character; address parsers judge it */
	{ S("NOOP caf\xc3\xa9"), 0, SMTP_NOOP, "caf\xc3\xa9" },
};

/* shown - s with control and 8-bit bytes as \\xNN, so a test name stays one line. */
static const char *shown(const char *s, size_t len, char *buf, size_t size)
{
	size_t n = 0, i;

	for (i = 0; i < len && n + 5 < size; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c >= 0x7f)
			n += (size_t)snprintf(buf + n, size - n, "\\x%02x", c);
		else
			buf[n++] = (char)c;
	}
	buf[n] = '\0';
	return buf;
}

/* test_commands - verb, argument, refusals. */
static void test_commands(struct tap *t)
{
	const struct command_case *c;
	struct smtp_command cmd;
	char *copy, name[200];
	int r;

	for (c = command_cases; c < command_cases + sizeof(command_cases) / sizeof(command_cases[0]); c++) {
		/* An exact-size copy: ASAN sees any read past len. */
		copy = malloc(c->len ? c->len : 1);
		if (copy == NULL)
			return;
		memcpy(copy, c->line, c->len);
		memset(&cmd, 0, sizeof(cmd));
		r = smtp_command_parse(copy, c->len, &cmd);
		if (c->ret < 0)
			TAP_OK(t, r == -1, "command \"%s\" refused", shown(c->line, c->len, name, sizeof(name)));
		else if (c->arg == NO_ARG)
			TAP_OK(t, r == 0 && cmd.verb == c->verb && cmd.arg == NULL && cmd.arglen == 0,
			       "command \"%s\": %s, no argument", c->line, smtp_verb_name(c->verb));
		else
			TAP_OK(t, r == 0 && cmd.verb == c->verb && cmd.arg != NULL &&
			       cmd.arglen == strlen(c->arg) && memcmp(cmd.arg, c->arg, cmd.arglen) == 0 &&
			       cmd.arg >= copy && cmd.arg + cmd.arglen <= copy + c->len,
			       "command \"%s\": %s \"%s\"", c->line, smtp_verb_name(c->verb), c->arg);
		free(copy);
	}
}

/* test_verb_names - every verb has its name, others are "unknown". */
static void test_verb_names(struct tap *t)
{
	static const char *names[] = {
		"unknown", "HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT",
		"HELP", "VRFY", "EXPN", "STARTTLS", "AUTH", "BDAT",
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		TAP_OK(t, strcmp(smtp_verb_name((enum smtp_verb)i), names[i]) == 0,
		       "verb %zu is %s", i, names[i]);
	TAP_OK(t, strcmp(smtp_verb_name((enum smtp_verb)99), "unknown") == 0, "out of range: unknown");
}

/* Expected replies. */
#define SYNTAX_MAIL 501, "5.5.4", "Syntax: MAIL FROM:<address>"
#define SYNTAX_RCPT 501, "5.5.4", "Syntax: RCPT TO:<address>"
#define FORBIDDEN 553, "5.1.3", "Address contains forbidden characters"
#define BAD_ADDR 501, "5.1.3", "Bad address syntax"
#define BAD_DOMAIN 501, "5.1.3", "Bad domain syntax"
#define NO_DOMAIN 501, "5.1.3", "Address must include a domain"
#define LOCAL_LONG 501, "5.1.3", "Local part too long"
#define PATH_LONG 501, "5.1.3", "Path too long"
#define NON_ASCII 553, "5.6.7", "Must declare SMTPUTF8 to send unicode address"
#define BAD_UTF8 500, "5.5.2", "Error: bad UTF-8 syntax"
#define BAD_ROUTE 501, "5.1.3", "Bad source route syntax"
#define BAD_ROUTE_DOMAIN 501, "5.1.3", "Bad domain in source route"
#define UNSUPPORTED 555, "5.5.4", "Unsupported parameter"
#define BAD_PARAM 501, "5.5.4", "Bad parameter syntax"
#define BAD_SIZE 501, "5.5.4", "Bad SIZE parameter"
#define DUP_SIZE 501, "5.5.4", "Duplicate SIZE parameter"
#define DUP_BODY 501, "5.5.4", "Duplicate BODY parameter"
#define BAD_BODY 501, "5.5.4", "Unsupported BODY type"
#define OK 0, NULL, NULL

struct path_case {
	const char *arg;
	size_t len;
	int code;		/* 0: accepted */
	const char *enhanced, *text;
	const char *addr;	/* accepted: the stored address */
	bool has_size;
	uint64_t size;
	enum smtp_body_type body;
};

/* Tables that refer to the long strings are filled in at run time. */
#define P(x) x, 0	/* NUL-terminated, length taken at run time */

static struct path_case mail_cases[] = {
	/* good paths */
	{ P("<a@b.test>"), OK, "a@b.test", 0, 0, 0 },
	{ P("<>"), OK, "", 0, 0, 0 },
	{ P(" <a@b.test>"), OK, "a@b.test", 0, 0, 0 },
	{ P("<First.Last+tag@Sub.Example.ORG>"), OK, "First.Last+tag@Sub.Example.ORG", 0, 0, 0 },
	{ P("<a!#%'*+-/=?^_{}~b@b.test>"), OK, "a!#%'*+-/=?^_{}~b@b.test", 0, 0, 0 },
	{ P("<o'brien@b.test>"), OK, "o'brien@b.test", 0, 0, 0 },
	{ P("<\"john smith\"@b.test>"), OK, "\"john smith\"@b.test", 0, 0, 0 },
	{ P("<\"a;b(c)<d>,e:f\"@b.test>"), OK, "\"a;b(c)<d>,e:f\"@b.test", 0, 0, 0 },
	{ P("<\"a\\\"b\\\\c\"@b.test>"), OK, "\"a\\\"b\\\\c\"@b.test", 0, 0, 0 },
	{ P("<\"\"@b.test>"), OK, "\"\"@b.test", 0, 0, 0 },
	{ P("<\"a>b\"@b.test>"), OK, "\"a>b\"@b.test", 0, 0, 0 },
	{ P("<a@[192.0.2.1]>"), OK, "a@[192.0.2.1]", 0, 0, 0 },
	{ P("<a@[IPv6:2001:db8::1]>"), OK, "a@[IPv6:2001:db8::1]", 0, 0, 0 },
	{ P("<a@[ipv6:::1]>"), OK, "a@[ipv6:::1]", 0, 0, 0 },
	{ P("<a@[IPv6:::ffff:192.0.2.1]>"), OK, "a@[IPv6:::ffff:192.0.2.1]", 0, 0, 0 },
	{ P("<a@1.2.3.4>"), OK, "a@1.2.3.4", 0, 0, 0 },
	{ P("<a@xn--bcher-kva.test>"), OK, "a@xn--bcher-kva.test", 0, 0, 0 },
	{ P("<a@localhost>"), OK, "a@localhost", 0, 0, 0 },
	/* source routes are dropped */
	{ P("<@r.test:a@b.test>"), OK, "a@b.test", 0, 0, 0 },
	{ P("<@r1.test,@r2.test:a@b.test>"), OK, "a@b.test", 0, 0, 0 },
	{ P("<@[192.0.2.1]:a@b.test>"), OK, "a@b.test", 0, 0, 0 },
	{ P("<@r.test:>"), BAD_ADDR, NULL, 0, 0, 0 },
	{ P("<@r.test>"), BAD_ROUTE, NULL, 0, 0, 0 },
	{ P("<@r.test,r2.test:a@b.test>"), BAD_ROUTE, NULL, 0, 0, 0 },
	{ P("<@:a@b.test>"), BAD_ROUTE_DOMAIN, NULL, 0, 0, 0 },
	{ P("<@r_1.test:a@b.test>"), BAD_ROUTE_DOMAIN, NULL, 0, 0, 0 },
	{ P("<@r.test,:a@b.test>"), BAD_ROUTE, NULL, 0, 0, 0 },
	/* parameters */
	{ P("<a@b.test> SIZE=1000"), OK, "a@b.test", 1, 1000, 0 },
	{ P("<a@b.test> size=0"), OK, "a@b.test", 1, 0, 0 },
	{ P("<> SIZE=52428800"), OK, "", 1, 52428800, 0 },
	{ P("<a@b.test> SIZE=18446744073709551615"), OK, "a@b.test", 1, UINT64_MAX, 0 },
	{ P("<a@b.test> SIZE=18446744073709551616"), OK, "a@b.test", 1, UINT64_MAX, 0 },
	{ P("<a@b.test> SIZE=99999999999999999999999"), OK, "a@b.test", 1, UINT64_MAX, 0 },
	{ P("<a@b.test> SIZE=0000000000000000000000000012"), OK, "a@b.test", 1, 12, 0 },
	{ P("<a@b.test> BODY=7BIT"), OK, "a@b.test", 0, 0, SMTP_BODY_7BIT },
	{ P("<a@b.test> BODY=8BITMIME"), OK, "a@b.test", 0, 0, SMTP_BODY_8BITMIME },
	{ P("<a@b.test> body=8bitmime"), OK, "a@b.test", 0, 0, SMTP_BODY_8BITMIME },
	{ P("<a@b.test> BODY=7bit SIZE=5"), OK, "a@b.test", 1, 5, SMTP_BODY_7BIT },
	{ P("<a@b.test>   SIZE=5    BODY=8BITMIME  "), OK, "a@b.test", 1, 5, SMTP_BODY_8BITMIME },
	{ P("<a@b.test> SIZE="), BAD_PARAM, NULL, 0, 0, 0 },
	{ P("<a@b.test> SIZE"), BAD_SIZE, NULL, 0, 0, 0 },
	{ P("<a@b.test> SIZE=abc"), BAD_SIZE, NULL, 0, 0, 0 },
	{ P("<a@b.test> SIZE=-1"), BAD_SIZE, NULL, 0, 0, 0 },
	{ P("<a@b.test> SIZE=1k"), BAD_SIZE, NULL, 0, 0, 0 },
	{ P("<a@b.test> SIZE=1 SIZE=2"), DUP_SIZE, NULL, 0, 0, 0 },
	{ P("<a@b.test> BODY=7BIT BODY=8BITMIME"), DUP_BODY, NULL, 0, 0, 0 },
	{ P("<a@b.test> BODY=BINARYMIME"), BAD_BODY, NULL, 0, 0, 0 },
	{ P("<a@b.test> BODY=8BIT"), BAD_BODY, NULL, 0, 0, 0 },
	{ P("<a@b.test> BODY"), BAD_BODY, NULL, 0, 0, 0 },
	{ P("<a@b.test> FROB=1"), UNSUPPORTED, NULL, 0, 0, 0 },
	{ P("<a@b.test> SMTPUTF8"), OK, "a@b.test", 0, 0, 0 },
	{ P("<a@b.test> AUTH=<>"), UNSUPPORTED, NULL, 0, 0, 0 },
	{ P("<a@b.test> RET=HDRS ENVID=x"), OK, "a@b.test", 0, 0, 0 },
	{ P("<a@b.test> MT-PRIORITY=3"), UNSUPPORTED, NULL, 0, 0, 0 },
	{ P("<a@b.test> SIZE=1 FROB"), UNSUPPORTED, NULL, 0, 0, 0 },
	{ P("<a@b.test> =1"), BAD_PARAM, NULL, 0, 0, 0 },
	{ P("<a@b.test> -X=1"), BAD_PARAM, NULL, 0, 0, 0 },
	{ P("<a@b.test> X_Y=1"), BAD_PARAM, NULL, 0, 0, 0 },
	{ P("<a@b.test> X=a=b"), BAD_PARAM, NULL, 0, 0, 0 },
	{ P("<a@b.test> X=caf\xc3\xa9"), BAD_PARAM, NULL, 0, 0, 0 },
	{ P("<a@b.test>SIZE=1"), SYNTAX_MAIL, NULL, 0, 0, 0 },
	/* brackets */
	{ P("a@b.test"), SYNTAX_MAIL, NULL, 0, 0, 0 },
	{ P(""), SYNTAX_MAIL, NULL, 0, 0, 0 },
	{ P("   "), SYNTAX_MAIL, NULL, 0, 0, 0 },
	{ P("<a@b.test"), SYNTAX_MAIL, NULL, 0, 0, 0 },
	{ P("a@b.test>"), SYNTAX_MAIL, NULL, 0, 0, 0 },
	{ P("<"), SYNTAX_MAIL, NULL, 0, 0, 0 },
	{ P("<\"a>@b.test"), SYNTAX_MAIL, NULL, 0, 0, 0 },
	{ P("<a@b.test>>"), SYNTAX_MAIL, NULL, 0, 0, 0 },
	{ P("<<a@b.test>>"), SYNTAX_MAIL, NULL, 0, 0, 0 },
	{ P("<a@b.test> <c@d.test>"), BAD_PARAM, NULL, 0, 0, 0 },
	/* local parts */
	{ P("<a b@b.test>"), BAD_ADDR, NULL, 0, 0, 0 },
	{ P("<a;b@x.test>"), BAD_ADDR, NULL, 0, 0, 0 },
	{ P("<;sleep 66;@x.test>"), BAD_ADDR, NULL, 0, 0, 0 },
	{ P("<a(b)@x.test>"), BAD_ADDR, NULL, 0, 0, 0 },
	{ P("<a\\b@x.test>"), BAD_ADDR, NULL, 0, 0, 0 },
	{ P("<a,b@x.test>"), BAD_ADDR, NULL, 0, 0, 0 },
	{ P("<a\"b\"@x.test>"), BAD_ADDR, NULL, 0, 0, 0 },
	{ P("<a>b@x.test>"), SYNTAX_MAIL, NULL, 0, 0, 0 },
	{ P("<.a@x.test>"), BAD_ADDR, NULL, 0, 0, 0 },
	{ P("<a.@x.test>"), BAD_ADDR, NULL, 0, 0, 0 },
	{ P("<a..b@x.test>"), BAD_ADDR, NULL, 0, 0, 0 },
	{ P("<a|b@x.test>"), FORBIDDEN, NULL, 0, 0, 0 },
	{ P("<`id`@x.test>"), FORBIDDEN, NULL, 0, 0, 0 },
	{ P("<$(id)@x.test>"), FORBIDDEN, NULL, 0, 0, 0 },
	{ P("<${IFS}@x.test>"), FORBIDDEN, NULL, 0, 0, 0 },
	{ P("<a&b@x.test>"), FORBIDDEN, NULL, 0, 0, 0 },
	{ P("<\"a`id`b\"@x.test>"), FORBIDDEN, NULL, 0, 0, 0 },
	{ P("<\"$(id)\"@x.test>"), FORBIDDEN, NULL, 0, 0, 0 },
	{ P("<\"a|b\"@x.test>"), FORBIDDEN, NULL, 0, 0, 0 },
	{ P("<\"a\\|b\"@x.test>"), FORBIDDEN, NULL, 0, 0, 0 },
	{ P("<\"a\x01b\"@x.test>"), FORBIDDEN, NULL, 0, 0, 0 },
	{ P("<a\x01b@x.test>"), FORBIDDEN, NULL, 0, 0, 0 },
	{ P("<a\x1b" "b@x.test>"), FORBIDDEN, NULL, 0, 0, 0 },
	{ P("<a\x7f" "b@x.test>"), FORBIDDEN, NULL, 0, 0, 0 },
	{ P("<a@x.test>\r"), FORBIDDEN, NULL, 0, 0, 0 },
	{ P("<a@b.test> SIZE=1\n"), FORBIDDEN, NULL, 0, 0, 0 },
	{ P("<caf\xc3\xa9@x.test>"), NON_ASCII, NULL, 0, 0, 0 },
	{ P("<a@b\xc3\xa9.test>"), NON_ASCII, NULL, 0, 0, 0 },
	/* SMTPUTF8 (RFC 6531): UTF-8 local parts and U-label domains */
	{ P("<jos\xc3\xa9@campus.test> SMTPUTF8"), OK, "jos\xc3\xa9@campus.test", 0, 0, 0 },
	{ P("<\xce\xb4\xce\xbf\xce\xba\xce\xb9\xce\xbc\xce\xae@\xcf\x80\xce\xb1\xcf\x81\xce\xac"
	    "\xce\xb4\xce\xb5\xce\xb9\xce\xb3\xce\xbc\xce\xb1.test> smtputf8 BODY=8BITMIME"), OK,
	  "\xce\xb4\xce\xbf\xce\xba\xce\xb9\xce\xbc\xce\xae@\xcf\x80\xce\xb1\xcf\x81\xce\xac"
	  "\xce\xb4\xce\xb5\xce\xb9\xce\xb3\xce\xbc\xce\xb1.test", 0, 0, SMTP_BODY_8BITMIME },
	{ P("<\"jos\xc3\xa9 x\"@campus.test> SMTPUTF8"), OK, "\"jos\xc3\xa9 x\"@campus.test", 0, 0, 0 },
	{ P("<jos\xc3\xa9@campus.test>"), NON_ASCII, NULL, 0, 0, 0 },
	{ P("<jos\xc3\xa9@campus.test> SIZE=1"), NON_ASCII, NULL, 0, 0, 0 },
	{ P("<jos\xc3@campus.test> SMTPUTF8"), BAD_UTF8, NULL, 0, 0, 0 },
	{ P("<jos\xc0\xa9@campus.test> SMTPUTF8"), BAD_UTF8, NULL, 0, 0, 0 },
	{ P("<a@\xed\xa0\x80.test> SMTPUTF8"), BAD_UTF8, NULL, 0, 0, 0 },
	{ P("<a\xc2\x85@campus.test> SMTPUTF8"), BAD_UTF8, NULL, 0, 0, 0 },
	{ P("<a@b\xc3\xa9_c.test> SMTPUTF8"), BAD_DOMAIN, NULL, 0, 0, 0 },
	{ P("<a@b\xc3\xa9..test> SMTPUTF8"), BAD_DOMAIN, NULL, 0, 0, 0 },
	{ P("<a@b\xc3\xa9.test.> SMTPUTF8"), BAD_DOMAIN, NULL, 0, 0, 0 },
	{ P("<a@-b\xc3\xa9.test> SMTPUTF8"), BAD_DOMAIN, NULL, 0, 0, 0 },
	{ P("<a@b.test> SMTPUTF8=yes"), 501, "5.5.4", "Bad SMTPUTF8 parameter", NULL, 0, 0, 0 },
	{ P("<a@b.test> SMTPUTF8 SMTPUTF8"), 501, "5.5.4", "Duplicate SMTPUTF8 parameter", NULL, 0, 0, 0 },
	{ P("<> SMTPUTF8"), OK, "", 0, 0, 0 },
	{ P("<@x.test>"), BAD_ROUTE, NULL, 0, 0, 0 },
	{ P("<postmaster>"), NO_DOMAIN, NULL, 0, 0, 0 },
	{ P("<a>"), NO_DOMAIN, NULL, 0, 0, 0 },
	{ P("<a@>"), BAD_DOMAIN, NULL, 0, 0, 0 },
	{ P("<\"a\"b@x.test>"), BAD_ADDR, NULL, 0, 0, 0 },
	{ P("<\"unterminated@x.test>"), SYNTAX_MAIL, NULL, 0, 0, 0 },
	/* domains */
	{ P("<a@b_c.test>"), BAD_DOMAIN, NULL, 0, 0, 0 },
	{ P("<a@.b.test>"), BAD_DOMAIN, NULL, 0, 0, 0 },
	{ P("<a@b..test>"), BAD_DOMAIN, NULL, 0, 0, 0 },
	{ P("<a@b.test.>"), BAD_DOMAIN, NULL, 0, 0, 0 },
	{ P("<a@-b.test>"), BAD_DOMAIN, NULL, 0, 0, 0 },
	{ P("<a@b-.test>"), BAD_DOMAIN, NULL, 0, 0, 0 },
	{ P("<a@b.test->"), BAD_DOMAIN, NULL, 0, 0, 0 },
	{ P("<a@b@c.test>"), BAD_DOMAIN, NULL, 0, 0, 0 },
	{ P("<a@b c.test>"), BAD_DOMAIN, NULL, 0, 0, 0 },
	{ P("<a@b;id.test>"), BAD_DOMAIN, NULL, 0, 0, 0 },
	{ P("<a@[1.2.3]>"), BAD_DOMAIN, NULL, 0, 0, 0 },
	{ P("<a@[1.2.3.256]>"), BAD_DOMAIN, NULL, 0, 0, 0 },
	{ P("<a@[::1]>"), BAD_DOMAIN, NULL, 0, 0, 0 },
	{ P("<a@[IPv6:1.2.3.4]>"), BAD_DOMAIN, NULL, 0, 0, 0 },
	{ P("<a@[IPv6:::1::2]>"), BAD_DOMAIN, NULL, 0, 0, 0 },
	{ P("<a@[tag:stuff]>"), BAD_DOMAIN, NULL, 0, 0, 0 },
	{ P("<a@[]>"), BAD_DOMAIN, NULL, 0, 0, 0 },
	{ P("<a@[192.0.2.1>"), BAD_DOMAIN, NULL, 0, 0, 0 },
	{ P("<a@[192.0.2.1]x>"), BAD_DOMAIN, NULL, 0, 0, 0 },
	/* lengths (filled in by set_lengths) */
	{ NULL, 0, OK, NULL, 0, 0, 0 },	/* local part of 64 */
	{ NULL, 0, LOCAL_LONG, NULL, 0, 0, 0 },	/* local part of 65 */
	{ NULL, 0, OK, NULL, 0, 0, 0 },	/* label of 63 */
	{ NULL, 0, BAD_DOMAIN, NULL, 0, 0, 0 },	/* label of 64 */
	{ NULL, 0, OK, NULL, 0, 0, 0 },	/* path of 256 */
	{ NULL, 0, PATH_LONG, NULL, 0, 0, 0 },	/* path of 257 */
	{ NULL, 0, PATH_LONG, NULL, 0, 0, 0 },	/* domain of 256 (path too long first) */
};

/* fill - n copies of c, NUL-terminated. */
static void fill(char *buf, char c, size_t n)
{
	memset(buf, c, n);
	buf[n] = '\0';
}

/* build - pre, then n copies of c (a '.' every 60th octet when dots), then post. */
static char *build(char *out, const char *pre, size_t n, char c, bool dots, const char *post)
{
	size_t p = strlen(pre), i;

	memcpy(out, pre, p);
	memset(out + p, c, n);
	for (i = 59; dots && i + 1 < n; i += 60)
		out[p + i] = '.';
	strcpy(out + p + n, post);
	return out;
}

/* set_lengths - the last rows of mail_cases, at and just over each limit. */
static void set_lengths(void)
{
	static char bufs[7][400];
	size_t n = sizeof(mail_cases) / sizeof(mail_cases[0]) - 7, i;

	build(bufs[0], "<", 64, 'l', false, "@b.test>");
	build(bufs[1], "<", 65, 'l', false, "@b.test>");
	build(bufs[2], "<a@", 63, 'd', false, ".test>");
	build(bufs[3], "<a@", 64, 'd', false, ".test>");
	/* "<a@" + 252 + ">" = 256 octets: the longest path */
	build(bufs[4], "<a@", 252, 'p', true, ">");
	build(bufs[5], "<a@", 253, 'p', true, ">");
	build(bufs[6], "<a@", 256, 'p', true, ">");
	for (i = 0; i < 7; i++) {
		mail_cases[n + i].arg = bufs[i];
		/* accepted rows store the address without < > */
		if (mail_cases[n + i].code == 0)
			mail_cases[n + i].addr = strndup(bufs[i] + 1, strlen(bufs[i]) - 2);
	}
}

static struct path_case rcpt_cases[] = {
	{ P("<u@campus.test>"), OK, "u@campus.test", 0, 0, 0 },
	{ P(" <u@campus.test>"), OK, "u@campus.test", 0, 0, 0 },
	{ P("<postmaster>"), OK, "postmaster", 0, 0, 0 },
	{ P("<PostMaster>"), OK, "PostMaster", 0, 0, 0 },
	{ P("<postmaster@campus.test>"), OK, "postmaster@campus.test", 0, 0, 0 },
	{ P("<@r.test:u@campus.test>"), OK, "u@campus.test", 0, 0, 0 },
	{ P("<\"x y\"@campus.test>"), OK, "\"x y\"@campus.test", 0, 0, 0 },
	{ P("<u@[IPv6:::1]>"), OK, "u@[IPv6:::1]", 0, 0, 0 },
	{ P("<>"), 501, "5.1.3", "Null recipient address not allowed", NULL, 0, 0, 0 },
	{ P("<postmasterx>"), NO_DOMAIN, NULL, 0, 0, 0 },
	{ P("<@r.test:postmaster>"), OK, "postmaster", 0, 0, 0 },
	{ P("u@campus.test"), SYNTAX_RCPT, NULL, 0, 0, 0 },
	{ P("<u@campus.test"), SYNTAX_RCPT, NULL, 0, 0, 0 },
	{ P(""), SYNTAX_RCPT, NULL, 0, 0, 0 },
	{ P("<u@campus.test> FROB=1"), UNSUPPORTED, NULL, 0, 0, 0 },
	{ P("<u@campus.test> NOTIFY=NEVER"), OK, "u@campus.test", 0, 0, 0 },
	{ P("<u@campus.test> RET=HDRS"), UNSUPPORTED, NULL, 0, 0, 0 },
	{ P("<u@campus.test> SIZE=1"), UNSUPPORTED, NULL, 0, 0, 0 },
	{ P("<u@campus.test> =x"), BAD_PARAM, NULL, 0, 0, 0 },
	{ P("<u@campus.test>x"), SYNTAX_RCPT, NULL, 0, 0, 0 },
	{ P("<u@campus.test>   "), OK, "u@campus.test", 0, 0, 0 },
	{ P("<a|b@x.test>"), FORBIDDEN, NULL, 0, 0, 0 },
	{ P("<a;b@x.test>"), BAD_ADDR, NULL, 0, 0, 0 },
	{ P("<`touch /tmp/x`@x.test>"), FORBIDDEN, NULL, 0, 0, 0 },
	{ P("<$(touch /tmp/x)@x.test>"), FORBIDDEN, NULL, 0, 0, 0 },
	{ P("<a&b@x.test>"), FORBIDDEN, NULL, 0, 0, 0 },
	{ P("<a>b@x.test>"), SYNTAX_RCPT, NULL, 0, 0, 0 },
	{ P("<a\\b@x.test>"), BAD_ADDR, NULL, 0, 0, 0 },
	{ P("<a\x01" "b@x.test>"), FORBIDDEN, NULL, 0, 0, 0 },
	{ P("<u@campus_x.test>"), BAD_DOMAIN, NULL, 0, 0, 0 },
	/* UTF-8 passes the parser; the session asks for SMTPUTF8 (path.utf8) */
	{ P("<jos\xc3\xa9@campus.test>"), OK, "jos\xc3\xa9@campus.test", 0, 0, 0 },
	{ P("<u@c\xd0\xb0mpus.test>"), OK, "u@c\xd0\xb0mpus.test", 0, 0, 0 },
	{ P("<u@campus.test> SMTPUTF8"), UNSUPPORTED, NULL, 0, 0, 0 },
	{ P("<jos\xc3@campus.test>"), BAD_UTF8, NULL, 0, 0, 0 },
};

/* check_path_case - one MAIL or RCPT row. */
static void check_path_case(struct tap *t, const struct path_case *c, bool is_mail)
{
	struct smtp_path path;
	struct smtp_mail_params params;
	struct smtp_parse_error err = { 0, NULL, NULL };
	size_t len = strlen(c->arg);
	char name[400];
	char *copy = malloc(len ? len : 1);
	int r;

	if (copy == NULL)
		return;
	memcpy(copy, c->arg, len);
	r = is_mail ? smtp_parse_mail_from(copy, len, &path, &params, &err)
		    : smtp_parse_rcpt_to(copy, len, &path, NULL, &err);
	if (c->code == 0)
		TAP_OK(t, r == 0 && strcmp(path.addr, c->addr) == 0 && path.len == strlen(c->addr) &&
		       path.null_path == (c->addr[0] == '\0') &&
		       (!is_mail || (params.has_size == c->has_size &&
				     (!c->has_size || params.size == c->size) && params.body == c->body)),
		       "%s %.60s: accepted as <%.60s>", is_mail ? "MAIL FROM:" : "RCPT TO:",
		       shown(c->arg, len, name, sizeof(name)), r == 0 ? path.addr : err.text);
	else
		TAP_OK(t, r == -1 && err.code == c->code && err.enhanced &&
		       strcmp(err.enhanced, c->enhanced) == 0 && err.text && strcmp(err.text, c->text) == 0,
		       "%s %.60s: %d %s %s (got %d %s %s)", is_mail ? "MAIL FROM:" : "RCPT TO:",
		       shown(c->arg, len, name, sizeof(name)), c->code, c->enhanced, c->text, err.code,
		       err.enhanced ? err.enhanced : "-", err.text ? err.text : "-");
	free(copy);
}

/* test_paths - every row of both tables (control characters shown escaped in names). */
static void test_paths(struct tap *t)
{
	size_t i;

	for (i = 0; i < sizeof(mail_cases) / sizeof(mail_cases[0]); i++)
		check_path_case(t, &mail_cases[i], true);
	for (i = 0; i < sizeof(rcpt_cases) / sizeof(rcpt_cases[0]); i++)
		check_path_case(t, &rcpt_cases[i], false);
}

/* test_smtputf8 - the flags the session reads: params.smtputf8 and path.utf8. */
static void test_smtputf8(struct tap *t)
{
	struct smtp_path path;
	struct smtp_mail_params params;
	struct smtp_parse_error err;
	char label[200] = "<a@";

	TAP_OK(t, smtp_parse_mail_from(S("<a@b.test> SMTPUTF8"), &path, &params, &err) == 0 &&
	       params.smtputf8 && !path.utf8, "MAIL SMTPUTF8, ASCII path: smtputf8, not utf8");
	TAP_OK(t, smtp_parse_mail_from(S("<a@b.test>"), &path, &params, &err) == 0 &&
	       !params.smtputf8 && !path.utf8, "MAIL without SMTPUTF8: neither");
	TAP_OK(t, smtp_parse_mail_from(S("<jos\xc3\xa9@b.test> SMTPUTF8"), &path, &params, &err) == 0 &&
	       params.smtputf8 && path.utf8, "MAIL SMTPUTF8, UTF-8 path: both");
	TAP_OK(t, smtp_parse_rcpt_to(S("<\xce\xb4@b.test>"), &path, NULL, &err) == 0 && path.utf8,
	       "RCPT with UTF-8: utf8");
	TAP_OK(t, smtp_parse_rcpt_to(S("<d@b.test>"), &path, NULL, &err) == 0 && !path.utf8,
	       "RCPT ASCII: not utf8");
	/* A U-label of 21 CJK characters: 63 octets, but its A-label is longer than 63. */
	for (int i = 0; i < 21; i++)
		strcat(label, "\xe6\x97\xa5");
	strcat(label, ".test>");
	TAP_OK(t, smtp_parse_rcpt_to(label, strlen(label), &path, NULL, &err) == 0,
	       "RCPT: a U-label of 63 octets whose A-label fits");
	label[3] = '\0';
	for (int i = 0; i < 20; i++)
		strcat(label, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
	strcat(label, ".test>");
	TAP_OK(t, smtp_parse_rcpt_to(label, strlen(label), &path, NULL, &err) == -1 && err.code == 501,
	       "RCPT: a U-label whose A-label is over 63 octets: 501");
}

/* test_embedded_nul - a NUL inside the argument is refused, not a string end. */
static void test_embedded_nul(struct tap *t)
{
	struct smtp_path path;
	struct smtp_mail_params params;
	struct smtp_parse_error err;

	TAP_OK(t, smtp_parse_mail_from(S("<a\0b@x.test>"), &path, &params, &err) == -1 &&
	       err.code == 553, "MAIL FROM with NUL in the local part: 553");
	TAP_OK(t, smtp_parse_rcpt_to(S("<a@x.test>\0 SIZE=1"), &path, NULL, &err) == -1 &&
	       err.code == 553, "RCPT TO with NUL after the path: 553");
}

struct helo_case {
	const char *arg;
	int ret;
};

static const struct helo_case helo_cases[] = {
	{ "bender.cl.msu.edu", 0 },
	{ "sys28.mail.msu.edu", 0 },
	{ "benderclmsuedu", 0 },		/* Outlook, dots stripped */
	{ "nibbler.sys19.mail.msu.edu", 0 },	/* Eudora */
	{ "localhost", 0 },
	{ "my.hostname", 0 },
	{ "client.example", 0 },
	{ "mx.campus.test.", 0 },
	{ "DESKTOP-4F2K9_X", 0 },
	{ "my_host.example", 0 },
	{ "-leading.example", 0 },
	{ "192.0.2.1", 0 },
	{ "[192.0.2.1]", 0 },
	{ "[127.0.0.1]", 0 },
	{ "[IPv6:::1]", 0 },
	{ "[IPv6:2001:db8::1]", 0 },
	{ "a", 0 },
	{ "", -1 },
	{ ".", -1 },
	{ ".example", -1 },
	{ "a..b", -1 },
	{ "a.b..", -1 },
	{ "my host", -1 },
	{ "host;id", -1 },
	{ "host$(id)", -1 },
	{ "host`id`", -1 },
	{ "<host>", -1 },
	{ "host@example", -1 },
	{ "caf\xc3\xa9.example", -1 },
	{ "a\tb", -1 },
	{ "a\rb", -1 },
	{ "[192.0.2.1", -1 },
	{ "[192.0.2]", -1 },
	{ "[::1]", -1 },
	{ "[hostname]", -1 },
	{ "[]", -1 },
	{ "[192.0.2.1]x", -1 },
};

/* test_helo - syntax only: liberal about real client names, strict about bytes. */
static void test_helo(struct tap *t)
{
	char l63[64], l64[65], long255[300], long256[300], name[200];
	size_t i;

	for (i = 0; i < sizeof(helo_cases) / sizeof(helo_cases[0]); i++)
		TAP_OK(t, smtp_parse_helo(helo_cases[i].arg, strlen(helo_cases[i].arg)) == helo_cases[i].ret,
		       "HELO \"%s\" %s", shown(helo_cases[i].arg, strlen(helo_cases[i].arg), name, sizeof(name)),
		       helo_cases[i].ret ? "refused" : "accepted");
	TAP_OK(t, smtp_parse_helo("a\0b", 3) == -1, "HELO with NUL refused");
	TAP_OK(t, smtp_parse_helo("good.example junk", 12) == 0, "length is respected");
	fill(l63, 'h', 63);
	fill(l64, 'h', 64);
	TAP_OK(t, smtp_parse_helo(l63, 63) == 0, "63-octet label accepted");
	TAP_OK(t, smtp_parse_helo(l64, 64) == -1, "64-octet label refused");
	snprintf(long255, sizeof(long255), "%s.%s.%s.%s", l63, l63, l63, l63);
	snprintf(long256, sizeof(long256), "%s.%s.%s.%sh", l63, l63, l63, l63);
	TAP_OK(t, smtp_parse_helo(long255, strlen(long255)) == 0, "255-octet name accepted");
	TAP_OK(t, smtp_parse_helo(long256, strlen(long256)) == -1, "256-octet name refused");
}

/* ---- DSN parameters (RFC 3461 §4) ---- */

struct dsn_case {
	bool is_mail;
	const char *arg;
	int code;		/* 0: accepted */
	const char *text;	/* the 501/555 text, or for MAIL the decoded ENVID, for RCPT the ORCPT */
	int ret;		/* MAIL: expected RET */
	unsigned notify;	/* RCPT: expected NOTIFY bits */
};

static const struct dsn_case dsn_cases[] = {
	{ true, "<a@b.test> RET=FULL", 0, NULL, SMTP_RET_FULL, 0 },
	{ true, "<a@b.test> ret=hdrs", 0, NULL, SMTP_RET_HDRS, 0 },
	{ true, "<a@b.test> RET=HDRS ENVID=QQ314159", 0, "QQ314159", SMTP_RET_HDRS, 0 },
	{ true, "<a@b.test> ENVID=a+2Bb+3Dc", 0, "a+b=c", 0, 0 },
	{ true, "<a@b.test> ENVID=a+20b", 0, "a b", 0, 0 },
	{ true, "<> RET=HDRS SIZE=10 BODY=8BITMIME", 0, NULL, SMTP_RET_HDRS, 0 },
	{ true, "<a@b.test> RET=SOME", 501, "Bad RET parameter", 0, 0 },
	{ true, "<a@b.test> RET", 501, "Bad RET parameter", 0, 0 },
	{ true, "<a@b.test> RET=FULL RET=HDRS", 501, "Duplicate RET parameter", 0, 0 },
	{ true, "<a@b.test> ENVID", 501, "Bad ENVID parameter", 0, 0 },
	{ true, "<a@b.test> ENVID=a+2", 501, "Bad ENVID parameter", 0, 0 },
	{ true, "<a@b.test> ENVID=a+2b", 501, "Bad ENVID parameter", 0, 0 },	/* lower-case hex */
	{ true, "<a@b.test> ENVID=a+0D+0Ab", 501, "Bad ENVID parameter", 0, 0 },	/* CR LF */
	{ true, "<a@b.test> ENVID=a+C3+A9", 501, "Bad ENVID parameter", 0, 0 },	/* 8-bit */
	{ true, "<a@b.test> ENVID=+ZZ", 501, "Bad ENVID parameter", 0, 0 },
	{ true, "<a@b.test> ENVID=x ENVID=y", 501, "Duplicate ENVID parameter", 0, 0 },
	{ true, "<a@b.test> NOTIFY=NEVER", 555, "Unsupported parameter", 0, 0 },
	{ true, "<a@b.test> ORCPT=rfc822;a@b.test", 555, "Unsupported parameter", 0, 0 },
	{ false, "<u@c.test> NOTIFY=NEVER", 0, NULL, 0, SMTP_NOTIFY_NEVER },
	{ false, "<u@c.test> NOTIFY=SUCCESS,FAILURE", 0, NULL, 0,
	  SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE },
	{ false, "<u@c.test> notify=delay,Success,FAILURE", 0, NULL, 0,
	  SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY },
	{ false, "<u@c.test> NOTIFY=FAILURE ORCPT=rfc822;u@c.test", 0, "rfc822;u@c.test", 0,
	  SMTP_NOTIFY_FAILURE },
	{ false, "<u@c.test> ORCPT=rfc822;a+2Bb@c.test", 0, "rfc822;a+2Bb@c.test", 0, 0 },
	{ false, "<u@c.test> NOTIFY=NEVER,SUCCESS", 501, "Bad NOTIFY parameter", 0, 0 },
	{ false, "<u@c.test> NOTIFY=SUCCESS,SUCCESS", 501, "Bad NOTIFY parameter", 0, 0 },
	{ false, "<u@c.test> NOTIFY=SUCCESS,", 501, "Bad NOTIFY parameter", 0, 0 },
	{ false, "<u@c.test> NOTIFY=ALWAYS", 501, "Bad NOTIFY parameter", 0, 0 },
	{ false, "<u@c.test> NOTIFY", 501, "Bad NOTIFY parameter", 0, 0 },
	{ false, "<u@c.test> NOTIFY=NEVER NOTIFY=NEVER", 501, "Duplicate NOTIFY parameter", 0, 0 },
	{ false, "<u@c.test> ORCPT=u@c.test", 501, "Bad ORCPT parameter", 0, 0 },
	{ false, "<u@c.test> ORCPT=;u@c.test", 501, "Bad ORCPT parameter", 0, 0 },
	{ false, "<u@c.test> ORCPT=rfc822;", 501, "Bad ORCPT parameter", 0, 0 },
	{ false, "<u@c.test> ORCPT=rfc_822;u@c.test", 501, "Bad ORCPT parameter", 0, 0 },
	{ false, "<u@c.test> ORCPT=rfc822;u+0A@c.test", 501, "Bad ORCPT parameter", 0, 0 },
	{ false, "<u@c.test> ORCPT=rfc822;a ORCPT=rfc822;b", 501, "Duplicate ORCPT parameter",
	  0, 0 },
	{ false, "<u@c.test> RET=FULL", 555, "Unsupported parameter", 0, 0 },
};

/* test_dsn - RET, ENVID, NOTIFY, ORCPT: accepted values as parsed, refusals with their text. */
static void test_dsn(struct tap *t)
{
	char long_envid[200], arg[300];

	for (size_t i = 0; i < sizeof(dsn_cases) / sizeof(dsn_cases[0]); i++) {
		const struct dsn_case *c = &dsn_cases[i];
		struct smtp_path path;
		struct smtp_mail_params mp;
		struct smtp_rcpt_params rp;
		struct smtp_parse_error err = { 0, NULL, NULL };
		int r = c->is_mail ? smtp_parse_mail_from(c->arg, strlen(c->arg), &path, &mp, &err)
				   : smtp_parse_rcpt_to(c->arg, strlen(c->arg), &path, &rp, &err);

		if (c->code != 0)
			TAP_OK(t, r == -1 && err.code == c->code && strcmp(err.enhanced, "5.5.4") == 0 &&
			       strcmp(err.text, c->text) == 0, "%s %s: %d 5.5.4 %s (got %d %s)",
			       c->is_mail ? "MAIL" : "RCPT", c->arg, c->code, c->text, err.code,
			       err.text ? err.text : "-");
		else if (c->is_mail)
			TAP_OK(t, r == 0 && (int)mp.ret == c->ret && mp.has_envid == (c->text != NULL) &&
			       (!c->text || strcmp(mp.envid, c->text) == 0),
			       "MAIL %s: RET %d, ENVID %s", c->arg, c->ret, c->text ? c->text : "none");
		else
			TAP_OK(t, r == 0 && rp.notify == c->notify && rp.has_orcpt == (c->text != NULL) &&
			       (!c->text || strcmp(rp.orcpt, c->text) == 0),
			       "RCPT %s: NOTIFY %#x, ORCPT %s", c->arg, c->notify,
			       c->text ? c->text : "none");
	}
	/* ENVID: 100 characters as sent, not one more (RFC 3461 §4.4). */
	fill(long_envid, 'e', 100);
	snprintf(arg, sizeof(arg), "<a@b.test> ENVID=%s", long_envid);
	{
		struct smtp_path path;
		struct smtp_mail_params mp;
		struct smtp_parse_error err;

		TAP_OK(t, smtp_parse_mail_from(arg, strlen(arg), &path, &mp, &err) == 0 &&
		       strlen(mp.envid) == 100, "ENVID of 100 characters accepted");
		strcat(arg, "e");
		TAP_OK(t, smtp_parse_mail_from(arg, strlen(arg), &path, &mp, &err) == -1 &&
		       err.code == 501, "ENVID of 101 characters refused");
	}
	{
		char out[8];

		TAP_OK(t, mtad_xtext_decode("abc", 3, out, sizeof(out)) == 3 && strcmp(out, "abc") == 0,
		       "xtext: plain");
		TAP_OK(t, mtad_xtext_decode("abcdefgh", 8, out, sizeof(out)) == -1,
		       "xtext: longer than the buffer refused");
		TAP_OK(t, mtad_xtext_decode("+41", 2, out, sizeof(out)) == -1,
		       "xtext: the length is respected inside +XX");
	}
}

/* test_bdat - RFC 3030's "BDAT chunk-size [LAST]": what a size may be, and never more. */
static void test_bdat(struct tap *t)
{
	static const struct {
		const char *arg;
		int r;
		uint64_t size;
		bool last;
	} cases[] = {
		{ "0", 0, 0, false },
		{ "0 LAST", 0, 0, true },
		{ "1234", 0, 1234, false },
		{ "1234 LAST", 0, 1234, true },
		{ "17 last", 0, 17, true },
		{ "17   LaSt", 0, 17, true },
		{ "007", 0, 7, false },
		{ "9223372036854775807", 0, 9223372036854775807ull, false },
		{ "9223372036854775808", -1, 0, false },	/* over UINT64_MAX / 2 */
		{ "99999999999999999999", -1, 0, false },
		{ "23036192230364253612", -1, 0, false },	/* wrapped past 2^64 once (fuzz_bdat) */
		{ "000000000000000000001", -1, 0, false },	/* 21 digits */
		{ "", -1, 0, false },
		{ "LAST", -1, 0, false },
		{ "-1", -1, 0, false },
		{ "+1", -1, 0, false },
		{ "1x", -1, 0, false },
		{ "1 LASTX", -1, 0, false },
		{ "1 LAS", -1, 0, false },
		{ "1 LAST x", -1, 0, false },
		{ "1\tLAST", -1, 0, false },
		{ "0x10", -1, 0, false },
		{ " 1", -1, 0, false },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t size = 42;
		bool last = false;
		size_t len = strlen(cases[i].arg);
		char *copy = malloc(len ? len : 1);	/* exact size: ASan sees a read past it */
		int r;

		if (!copy)
			abort();
		memcpy(copy, cases[i].arg, len);
		r = smtp_parse_bdat(copy, len, &size, &last);
		if (cases[i].r == 0)
			TAP_OK(t, r == 0 && size == cases[i].size && last == cases[i].last,
			       "BDAT \"%s\": %llu%s", cases[i].arg,
			       (unsigned long long)cases[i].size, cases[i].last ? " LAST" : "");
		else
			TAP_OK(t, r == -1, "BDAT \"%s\": refused", cases[i].arg);
		free(copy);
	}
}

int main(void)
{
	struct tap t = { 0, 0 };
	size_t i, n = sizeof(mail_cases) / sizeof(mail_cases[0]);

	set_lengths();
	test_commands(&t);
	test_verb_names(&t);
	test_paths(&t);
	test_embedded_nul(&t);
	test_smtputf8(&t);
	test_helo(&t);
	test_dsn(&t);
	test_bdat(&t);
	for (i = n - 7; i < n; i++)
		if (mail_cases[i].code == 0)
			free((char *)mail_cases[i].addr);
	return tap_done(&t);
}
