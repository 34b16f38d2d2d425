/*
 * sender.c - unit tests for sender ownership (policy/sender.c) and the
 * From: header scanner (smtp/from_scan.c): the default ownership, the
 * map (parse errors as file:line, duplicates, case, realms, @domain),
 * From: address lists (display names, comments, quotes, groups, too
 * many), and a scanner fed byte by byte finding what it finds whole.
 */
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "smtp/smtp.h"
#include "t/unit/tap.h"

static const char *const local[] = { "campus.test", "lists.campus.test" };

static struct policy_sender_map *map_of(const char *text, char *err, size_t errlen)
{
	return policy_sender_map_parse(text, strlen(text), "map", err, errlen);
}

static void test_default(struct tap *t)
{
	TAP_OK(t, policy_sender_owned(NULL, "alice@mx.campus.test", "alice@campus.test", local, 2),
	       "alice (with realm) owns alice@campus.test");
	TAP_OK(t, policy_sender_owned(NULL, "alice", "ALICE@Lists.Campus.Test", local, 2),
	       "... and alice@ every local domain, any case");
	TAP_OK(t, !policy_sender_owned(NULL, "alice", "alice@other.test", local, 2),
	       "not alice@ a foreign domain");
	TAP_OK(t, !policy_sender_owned(NULL, "alice", "alic@campus.test", local, 2) &&
	       !policy_sender_owned(NULL, "alice", "alicex@campus.test", local, 2),
	       "not a prefix or an extension of the name");
	TAP_OK(t, !policy_sender_owned(NULL, "alice", "campus.test", local, 2), "not a bare domain");
	TAP_OK(t, policy_sender_owned(NULL, "alice", "", local, 2), "<> always");
	{
		static const char *const idn[] = { "xn--bcher-kva.test" };

		TAP_OK(t, policy_sender_owned(NULL, "alice", "alice@b\xc3\xbc" "cher.test", idn, 1),
		       "SMTPUTF8: alice@bücher.test when the local domain is xn--bcher-kva.test");
		TAP_OK(t, !policy_sender_owned(NULL, "alice", "alice@c\xd0\xb0mpus.test", local, 2),
		       "... never alice@ a Cyrillic look-alike of campus.test");
	}
}

static void test_map(struct tap *t)
{
	char err[256];
	struct policy_sender_map *m = map_of("# comment\n\n"
		"carol: helpdesk@campus.test\n"
		"Alice@mx.campus.test : alice@campus.test, @Lists.campus.test ,\n", err, sizeof(err));

	TAP_OK(t, m != NULL, "a map parses: %s", m ? "" : err);
	TAP_OK(t, policy_sender_owned(m, "carol@mx.campus.test", "helpdesk@campus.test", local, 2),
	       "a line listed by the name without realm");
	TAP_OK(t, !policy_sender_owned(m, "carol", "carol@campus.test", local, 2),
	       "a line replaces the default");
	TAP_OK(t, policy_sender_owned(m, "alice@MX.campus.test", "x@lists.campus.test", local, 2),
	       "@domain, by the full login, any case");
	TAP_OK(t, !policy_sender_owned(m, "alice@mx.campus.test", "helpdesk@campus.test", local, 2),
	       "not another line's address");
	TAP_OK(t, policy_sender_owned(m, "bob", "bob@campus.test", local, 2), "not in the map: the default");
	policy_sender_map_free(m);

	TAP_OK(t, map_of("ok: a@b.test\nbad line\n", err, sizeof(err)) == NULL &&
	       strncmp(err, "map:2: expected", 15) == 0, "no colon: file:line (%s)", err);
	TAP_OK(t, map_of("x: a b@c\n", err, sizeof(err)) == NULL && strstr(err, "map:1: bad address"),
	       "a space in an address: %s", err);
	TAP_OK(t, map_of("x: a@\n", err, sizeof(err)) == NULL, "no domain");
	TAP_OK(t, map_of("x: <a@b>\n", err, sizeof(err)) == NULL, "angle brackets");
	TAP_OK(t, map_of(": a@b\n", err, sizeof(err)) == NULL && strstr(err, "bad login"), "no login");
	TAP_OK(t, map_of("x: a@b\nX: c@d\n", err, sizeof(err)) == NULL && strstr(err, "listed twice"),
	       "a login twice (any case): %s", err);
	m = map_of("", err, sizeof(err));
	TAP_OK(t, m != NULL, "an empty map");
	policy_sender_map_free(m);
}

/* from_is - the addresses of value are exactly want (NULL-terminated). */
static int from_is(const char *value, const char *const *want)
{
	char out[POLICY_FROM_MAX][SMTP_PATH_MAX];
	size_t n, i;

	if (policy_from_addresses(value, strlen(value), out, POLICY_FROM_MAX, &n) != 0)
		return 0;
	for (i = 0; want[i]; i++)
		if (i >= n || strcmp(out[i], want[i]) != 0)
			return 0;
	return i == n;
}

static void test_from(struct tap *t)
{
	TAP_OK(t, from_is(" a@b.test", (const char *[]){ "a@b.test", NULL }), "bare");
	TAP_OK(t, from_is(" \"Doe, John\" <j@b.test>", (const char *[]){ "j@b.test", NULL }),
	       "quoted display name with a comma");
	TAP_OK(t, from_is(" John (the <x@y> boss) <j@b.test>", (const char *[]){ "j@b.test", NULL }),
	       "a comment with brackets in it");
	TAP_OK(t, from_is(" a@b.test (A), B <b@c.test>", (const char *[]){ "a@b.test", "b@c.test", NULL }),
	       "two mailboxes");
	TAP_OK(t, from_is(" team: a@b.test, c@d.test; , e@f.test",
			  (const char *[]){ "a@b.test", "c@d.test", "e@f.test", NULL }), "a group");
	TAP_OK(t, from_is(" undisclosed-recipients:;", (const char *[]){ NULL }), "an empty group");
	TAP_OK(t, from_is(" =?UTF-8?B?w6k=?= <x@y.test>", (const char *[]){ "x@y.test", NULL }),
	       "an encoded word");
	TAP_OK(t, from_is(" Nobody", (const char *[]){ "Nobody", NULL }),
	       "no address at all: the text is checked (and owned by nobody)");
	{
		char big[4096] = " ";
		char out[POLICY_FROM_MAX][SMTP_PATH_MAX];
		size_t n;

		for (int i = 0; i < 40; i++)
			strcat(big, "a@b.test, ");
		TAP_OK(t, policy_from_addresses(big, strlen(big), out, POLICY_FROM_MAX, &n) == -1,
		       "more than POLICY_FROM_MAX: -1");
	}
}

static void test_scan(struct tap *t)
{
	static const char msg[] =
		"Received: x\r\nFrom-Display: no@x.test\r\nSubject: s\r\n"
		"FROM: a@b.test,\r\n\tc@d.test\r\nX: y\r\nFrom: <e@f.test>\r\n\r\n"
		"From: body@x.test\r\n";
	struct smtp_from_scan whole, bytes;

	smtp_from_scan_init(&whole);
	smtp_from_scan_feed(&whole, msg, sizeof(msg) - 1);
	smtp_from_scan_init(&bytes);
	for (size_t i = 0; i < sizeof(msg) - 1; i++)
		smtp_from_scan_feed(&bytes, msg + i, 1);
	TAP_OK(t, whole.done && whole.fields == 2, "two From: fields, then the end of the headers");
	TAP_OK(t, whole.len == strlen(" a@b.test, c@d.test, <e@f.test>") &&
	       memcmp(whole.value, " a@b.test, c@d.test, <e@f.test>", whole.len) == 0,
	       "unfolded and joined: [%.*s]", (int)whole.len, whole.value);
	TAP_OK(t, bytes.len == whole.len && memcmp(bytes.value, whole.value, whole.len) == 0 &&
	       bytes.fields == whole.fields, "byte by byte: the same");
	{
		struct smtp_from_scan *f = malloc(sizeof(*f));
		char line[1000];

		if (!f)
			abort();
		smtp_from_scan_init(f);
		smtp_from_scan_feed(f, "From: x", 7);
		memset(line, 'a', sizeof(line));
		for (int i = 0; i < 5; i++)
			smtp_from_scan_feed(f, line, sizeof(line));
		TAP_OK(t, f->overflow && f->len == SMTP_FROM_MAX, "a From: over SMTP_FROM_MAX is flagged");
		free(f);
	}
}

static void test_listed(struct tap *t)
{
	const char *list = "# blocked\nalice, Bob\tcarol@other.test\n#dave\n";

	TAP_OK(t, policy_login_listed(list, "alice", 5), "a name");
	TAP_OK(t, policy_login_listed(list, "alice@mx.campus.test", 20), "... with any realm");
	TAP_OK(t, policy_login_listed(list, "bob", 3), "any case, tab-separated");
	TAP_OK(t, policy_login_listed(list, "carol@other.test", 16), "a full login");
	TAP_OK(t, !policy_login_listed(list, "carol@mx.campus.test", 20), "... only with its realm");
	TAP_OK(t, !policy_login_listed(list, "dave", 4), "not a commented name");
	TAP_OK(t, !policy_login_listed(list, "alic", 4) && !policy_login_listed(list, "alicex", 6),
	       "not a prefix or an extension");
	TAP_OK(t, !policy_login_listed("", "alice", 5), "an empty list");
}

int main(void)
{
	struct tap t = { 0 };

	test_default(&t);
	test_map(&t);
	test_from(&t);
	test_scan(&t);
	test_listed(&t);
	return tap_done(&t);
}
