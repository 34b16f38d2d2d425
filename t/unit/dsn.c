/*
 * dsn.c - unit tests for deliver/dsn.c: a bounce for two recipients checked
 * line by line (top headers, the three parts, their boundaries, every
 * delivery-status field); CRLF everywhere and no line over 998 octets,
 * also with 2000-character diagnostics; hostile CR/LF in diagnostics,
 * addresses, the remote MTA and the sender; the delay warning; original
 * headers holding our boundary, bare LF/CR, NUL, 8-bit, overlong lines,
 * a body, and more than 64 KB; defaults for odd actions and statuses; the
 * success report (relayed, delivered), Original-Envelope-Id and ORCPT types,
 * and RET=FULL's whole message; the header_prefix joined in front of the
 * stored header, wherever the empty line falls, and bounded.
 */
#include <stdlib.h>
#include <string.h>

#include "deliver/deliver.h"
#include "t/unit/tap.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_LINES 4096

#define ARRIVAL 1709632800	/* Tue, 05 Mar 2024 10:00:00 +0000 */
#define NOW 1709636400		/* an hour later */
#define BOUND "4B2DF1A1234.1709636400/mx.campus.test"

/* A DSN split at CRLF, continuation lines joined to the line they continue. */
struct msg {
	char *text;
	size_t len;
	char *line[MAX_LINES];	/* unfolded, pointing into own storage */
	size_t n;
	char *store;
};

static const char headers[] =
	"Return-Path: <alice@campus.test>\r\n"
	"From: Alice <alice@campus.test>\r\n"
	"To: bob@example.org, carol@example.net\r\n"
	"Subject: lunch\r\n"
	"Message-ID: <1@campus.test>\r\n"
	"\r\n"
	"the body, which is not included\r\n";

/* base - the info of the two-recipient bounce, with rcpt[] filled in. */
static struct smtp_dsn_info base(struct smtp_dsn_rcpt rcpt[2])
{
	rcpt[0] = (struct smtp_dsn_rcpt){
		.addr = "bob@example.org", .orig_addr = "Bob@Example.org", .action = "failed",
		.status = "5.1.1", .remote_mta = "mx.example.org",
		.diagnostic = "550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown in virtual mailbox table",
	};
	rcpt[1] = (struct smtp_dsn_rcpt){
		.addr = "carol@example.net", .action = "failed", .status = "5.4.4",
		.diagnostic = "Host or domain name not found. Name service error for name=example.net type=MX",
	};
	return (struct smtp_dsn_info){
		.hostname = "mx.campus.test", .orig_qid = "4B2DF1A1234",
		.orig_sender = "alice@campus.test", .orig_arrival = ARRIVAL, .now = NOW,
		.rcpt = rcpt, .nrcpt = 2, .headers = headers, .headers_len = sizeof(headers) - 1,
	};
}

/*
 * wellformed - CRLF only (no bare CR or LF), no NUL, ends in CRLF, no line
 * over 998 octets. Says what is wrong in why.
 */
static bool wellformed(const char *s, size_t len, char *why, size_t whylen)
{
	size_t col = 0, longest = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\0') {
			snprintf(why, whylen, "NUL at %zu", i);
			return false;
		}
		if (s[i] == '\r' && (i + 1 >= len || s[i + 1] != '\n')) {
			snprintf(why, whylen, "bare CR at %zu", i);
			return false;
		}
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) {
			snprintf(why, whylen, "bare LF at %zu", i);
			return false;
		}
		if (s[i] == '\r')
			col = 0;
		else if (s[i] != '\n' && ++col > longest)
			longest = col;
	}
	snprintf(why, whylen, "longest line %zu octets", longest);
	return longest <= 998 && len >= 2 && s[len - 2] == '\r' && s[len - 1] == '\n';
}

/* parse - build info into m (unfolding lines that start with a blank); false if NULL. */
static bool parse(struct msg *m, const struct smtp_dsn_info *info, bool unfold)
{
	char *p, *end;

	memset(m, 0, sizeof(*m));
	m->text = smtp_dsn_build(info, &m->len);
	if (!m->text)
		return false;
	m->store = malloc(m->len + 1);
	memcpy(m->store, m->text, m->len + 1);
	for (p = m->store; *p && m->n < MAX_LINES; p = end + 2) {
		end = strstr(p, "\r\n");
		if (!end)
			break;
		*end = '\0';
		if (unfold && m->n > 0 && (*p == ' ' || *p == '\t') && m->line[m->n - 1][0]) {
			/* Join: move this line right after the previous one. */
			char *prev = m->line[m->n - 1];

			/* The human text's four-blank indent joins as one blank, as the text was. */
			if (strncmp(p, "    ", 4) == 0)
				p += 3;
			memmove(prev + strlen(prev), p, strlen(p) + 1);
			continue;
		}
		m->line[m->n++] = p;
	}
	return true;
}

static void done(struct msg *m)
{
	free(m->text);
	free(m->store);
}

/* find - the first line equal to s at or after from; -1 if none. */
static int find(const struct msg *m, size_t from, const char *s)
{
	for (size_t i = from; i < m->n; i++)
		if (strcmp(m->line[i], s) == 0)
			return (int)i;
	return -1;
}

/* count_prefix - lines starting with s. */
static int count_prefix(const struct msg *m, const char *s)
{
	int n = 0;

	for (size_t i = 0; i < m->n; i++)
		n += strncmp(m->line[i], s, strlen(s)) == 0;
	return n;
}

/* expect - lines from..from+n are exactly want[]; reports the first difference. */
static void expect(struct tap *t, const struct msg *m, int from, const char *const *want,
		   size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		const char *got = from >= 0 && (size_t)from + i < m->n ? m->line[from + i] : "(none)";

		if (strcmp(got, want[i]) != 0) {
			TAP_OK(t, 0, "%s: line %zu is \"%s\", want \"%s\"", what, i, got, want[i]);
			return;
		}
	}
	TAP_OK(t, 1, "%s: %zu lines as expected", what, n);
}

/* test_bounce - the two-recipient bounce, line by line. */
static void test_bounce(struct tap *t)
{
	static const char *top[] = {
		"From: Mail Delivery System <MAILER-DAEMON@mx.campus.test>",
		"To: <alice@campus.test>",
		"Subject: Undelivered Mail Returned to Sender",
		"Date: Tue, 05 Mar 2024 11:00:00 +0000",
		"Message-ID: <20240305110000.4B2DF1A1234.bounce@mx.campus.test>",
		"Auto-Submitted: auto-replied",
		"MIME-Version: 1.0",
		"Content-Type: multipart/report; report-type=delivery-status;\tboundary=\"" BOUND "\"",
		"Content-Transfer-Encoding: 7bit",
		"",
		"This is a MIME-encapsulated message.",
		"",
		"--" BOUND,
		"Content-Description: Notification",
		"Content-Type: text/plain; charset=us-ascii",
		"",
		"This is the mail system at host mx.campus.test.",
		"",
		"I'm sorry to have to inform you that your message could not",
	};
	static const char *human[] = {
		"                   The mail system",
		"",
		"<bob@example.org>: host mx.example.org said: 550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown in virtual mailbox table",
		"",
		"<carol@example.net>: Host or domain name not found. Name service error for name=example.net type=MX",
		"",
		"--" BOUND,
		"Content-Description: Delivery report",
		"Content-Type: message/delivery-status",
		"",
		"Reporting-MTA: dns; mx.campus.test",
		"X-Mtad-Queue-ID: 4B2DF1A1234",
		"Arrival-Date: Tue, 05 Mar 2024 10:00:00 +0000",
		"",
		"Final-Recipient: rfc822; bob@example.org",
		"Original-Recipient: rfc822; Bob@Example.org",
		"Action: failed",
		"Status: 5.1.1",
		"Remote-MTA: dns; mx.example.org",
		"Diagnostic-Code: smtp; 550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown in virtual mailbox table",
		"Last-Attempt-Date: Tue, 05 Mar 2024 11:00:00 +0000",
		"",
		"Final-Recipient: rfc822; carol@example.net",
		"Action: failed",
		"Status: 5.4.4",
		"Diagnostic-Code: X-mtad; Host or domain name not found. Name service error for name=example.net type=MX",
		"Last-Attempt-Date: Tue, 05 Mar 2024 11:00:00 +0000",
		"",
		"--" BOUND,
		"Content-Description: Undelivered Message Headers",
		"Content-Type: text/rfc822-headers",
		"",
		"Return-Path: <alice@campus.test>",
		"From: Alice <alice@campus.test>",
		"To: bob@example.org, carol@example.net",
		"Subject: lunch",
		"Message-ID: <1@campus.test>",
		"",
		"--" BOUND "--",
	};
	struct smtp_dsn_rcpt rcpt[2];
	struct smtp_dsn_info info = base(rcpt);
	struct msg m, raw;
	char why[64];

	if (!parse(&m, &info, true) || !parse(&raw, &info, false)) {
		TAP_OK(t, 0, "bounce built");
		return;
	}
	TAP_OK(t, wellformed(m.text, m.len, why, sizeof(why)), "CRLF only, lines <= 998 (%s)", why);
	TAP_OK(t, strlen(m.text) == m.len, "the length is right and the text NUL-terminated");
	expect(t, &m, 0, top, N(top), "top headers and part 1 start");
	expect(t, &m, find(&m, 0, human[0]), human, N(human), "the rest: recipients, parts 2 and 3");
	TAP_OK(t, find(&m, 0, human[N(human) - 1]) == (int)m.n - 1, "the closing boundary is the last line");
	TAP_OK(t, count_prefix(&m, "--" BOUND) == 4, "three boundaries and the closing one");
	TAP_OK(t, find(&m, 0, "the body, which is not included") < 0, "the original body is not included");
	TAP_OK(t, strstr(raw.text, "\r\n\tboundary=\"") != NULL, "Content-Type folded before boundary=");
	/* Folded: every raw line stays near 78 when there are blanks to fold at. */
	for (size_t i = 0; i < raw.n; i++)
		if (strlen(raw.line[i]) > 80 && strncmp(raw.line[i], "Message-ID", 10) != 0) {
			TAP_OK(t, 0, "a raw line over 80: %s", raw.line[i]);
			break;
		}
	TAP_OK(t, find(&raw, 0, "    table") >= 0 || count_prefix(&raw, "    ") >= 1,
	       "the long human lines are wrapped, indented by four spaces");
	TAP_OK(t, count_prefix(&raw, " ") >= 2, "long report fields are folded with a leading blank");
	done(&m);
	done(&raw);
}

/* test_long - 2000-character diagnostics, with and without blanks: still <= 998. */
static void test_long(struct tap *t)
{
	struct smtp_dsn_rcpt rcpt[2];
	struct smtp_dsn_info info = base(rcpt);
	char words[2100], word[2100], want[2200], why[64];
	struct msg m, raw;

	strcpy(words, "550 5.7.1");
	while (strlen(words) < 2000)
		strcat(words, " blocked");
	strcpy(word, "550 ");
	memset(word + 4, 'x', 2000);
	word[2004] = '\0';
	rcpt[0].diagnostic = words;
	rcpt[1].diagnostic = word;
	rcpt[1].addr = word + 4;	/* a 2000-character address, too */
	if (!parse(&m, &info, true) || !parse(&raw, &info, false)) {
		TAP_OK(t, 0, "long bounce built");
		return;
	}
	TAP_OK(t, wellformed(raw.text, raw.len, why, sizeof(why)),
	       "2000-character diagnostics and address: lines <= 998 (%s)", why);
	snprintf(want, sizeof(want), "Diagnostic-Code: smtp; %s", words);
	TAP_OK(t, find(&m, 0, want) >= 0, "a diagnostic with blanks unfolds to itself");
	TAP_OK(t, count_prefix(&raw, "Diagnostic-Code: smtp; 550 5.7.1 blocked blocked") == 1,
	       "... folded after its first words");
	TAP_OK(t, count_prefix(&raw, " xxxxxxxxxx") >= 2 && count_prefix(&m, "Diagnostic-Code: smtp; 550 xxx") == 1,
	       "a 2000-octet word is broken into continuation lines");
	done(&m);
	done(&raw);
}

/* test_hostile - CR/LF from the network never starts a line of its own. */
static void test_hostile(struct tap *t)
{
	struct smtp_dsn_rcpt rcpt[2];
	struct smtp_dsn_info info = base(rcpt);
	struct msg m;
	char why[64];

	rcpt[0].diagnostic = "550 no\r\nBcc: victim@example.org\r\n\r\n--" BOUND "\r\nX-Evil: 1\n\tTAB\x01\x7f\xc3\xa9";
	rcpt[0].remote_mta = "mx.example.org\r\nX-Injected: yes";
	rcpt[1].addr = "carol@example.net\r\nX-Injected: addr";
	info.orig_sender = "alice@campus.test>\r\nBcc: victim@example.org";
	if (!parse(&m, &info, false)) {
		TAP_OK(t, 0, "hostile bounce built");
		return;
	}
	TAP_OK(t, wellformed(m.text, m.len, why, sizeof(why)), "hostile fields: CRLF only (%s)", why);
	TAP_OK(t, count_prefix(&m, "Bcc:") == 0 && count_prefix(&m, "X-Injected") == 0 &&
	       count_prefix(&m, "X-Evil") == 0, "no injected line anywhere");
	TAP_OK(t, find(&m, 0, "--" BOUND) < 0 && count_prefix(&m, "--" BOUND ".1") == 4,
	       "the boundary in the diagnostic made us pick another");
	done(&m);
	if (!parse(&m, &info, true))
		return;
	TAP_OK(t, find(&m, 0, "Diagnostic-Code: smtp; 550 no Bcc: victim@example.org --" BOUND
			      " X-Evil: 1 TAB????") >= 0,
	       "the diagnostic on one logical line, controls and 8-bit as '?'");
	TAP_OK(t, find(&m, 0, "Remote-MTA: dns; mx.example.org X-Injected: yes") >= 0,
	       "Remote-MTA: CRLF became a blank");
	TAP_OK(t, find(&m, 0, "Final-Recipient: rfc822; carol@example.net X-Injected: addr") >= 0,
	       "Final-Recipient: CRLF became a blank");
	TAP_OK(t, find(&m, 0, "To: <alice@campus.test>  Bcc: victim@example.org>") >= 0,
	       "To: CRLF became blanks");
	done(&m);
}

/* test_delayed - every recipient delayed: the warning; one failed: a bounce. */
static void test_delayed(struct tap *t)
{
	struct smtp_dsn_rcpt rcpt[2];
	struct smtp_dsn_info info = base(rcpt);
	struct msg m;
	char why[64];

	rcpt[0].action = rcpt[1].action = "delayed";
	rcpt[0].status = "4.4.1";
	rcpt[0].diagnostic = "451 4.4.1 try later";
	rcpt[1].status = NULL;
	rcpt[1].diagnostic = NULL;
	if (!parse(&m, &info, true)) {
		TAP_OK(t, 0, "delay warning built");
		return;
	}
	TAP_OK(t, wellformed(m.text, m.len, why, sizeof(why)), "delay warning: CRLF only (%s)", why);
	TAP_OK(t, find(&m, 0, "Subject: Delayed Mail (still being retried)") == 2, "Subject says delayed");
	TAP_OK(t, find(&m, 0, "Message-ID: <20240305110000.4B2DF1A1234.delay@mx.campus.test>") == 4,
	       "its Message-ID differs from the bounce's");
	TAP_OK(t, find(&m, 0, "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #") > 0,
	       "the warning text");
	TAP_OK(t, find(&m, 0, "<carol@example.net>: delivery temporarily failed (status 4.0.0)") > 0,
	       "no diagnostic: the human text says so, with the default status 4.0.0");
	TAP_OK(t, count_prefix(&m, "Action: delayed") == 2 && find(&m, 0, "Status: 4.4.1") > 0 &&
	       find(&m, 0, "Status: 4.0.0") > 0, "Action: delayed twice, statuses given and default");
	TAP_OK(t, count_prefix(&m, "Diagnostic-Code:") == 1, "no Diagnostic-Code without a diagnostic");
	done(&m);
	rcpt[1].action = "failed";
	if (parse(&m, &info, true)) {
		TAP_OK(t, find(&m, 0, "Subject: Undelivered Mail Returned to Sender") == 2 &&
		       find(&m, 0, "Status: 5.0.0") > 0, "one failed, one delayed: a bounce; default 5.0.0");
		done(&m);
	}
}

/* test_boundary_in_headers - the sender wrote our boundary (and the next) into the headers. */
static void test_boundary_in_headers(struct tap *t)
{
	static const char trap[] =
		"Subject: trap\r\n"
		"--" BOUND "\r\n"
		"Content-Type: text/plain\r\n"
		"--" BOUND ".1--\r\n"
		"X-Also: --4b2df1a1234.1709636400/MX.CAMPUS.TEST.2\r\n"
		".starts with a dot\r\n"
		"\r\n";
	struct smtp_dsn_rcpt rcpt[2];
	struct smtp_dsn_info info = base(rcpt);
	static const char *part3[] = {
		"Content-Type: text/rfc822-headers",
		"",
		"Subject: trap",
		"--" BOUND,
		"Content-Type: text/plain",
		"--" BOUND ".1--",
		"X-Also: --4b2df1a1234.1709636400/MX.CAMPUS.TEST.2",
		".starts with a dot",
		"",
		"--" BOUND ".3--",
	};
	struct msg m;
	char why[64];

	info.headers = trap;
	info.headers_len = sizeof(trap) - 1;
	if (!parse(&m, &info, true)) {
		TAP_OK(t, 0, "trap bounce built");
		return;
	}
	TAP_OK(t, wellformed(m.text, m.len, why, sizeof(why)), "trap: CRLF only (%s)", why);
	TAP_OK(t, find(&m, 0, "Content-Type: multipart/report; report-type=delivery-status;\t"
			      "boundary=\"" BOUND ".3\"") == 7,
	       "boundary: not the one in the headers, nor .1, nor .2 in another case");
	TAP_OK(t, count_prefix(&m, "--" BOUND ".3") == 4, "three boundaries and the closing one, all .3");
	expect(t, &m, find(&m, 0, part3[0]), part3, N(part3), "part 3 holds the trap verbatim");
	done(&m);
}

/* test_odd_headers - bare LF/CR, NUL, 8-bit, a 3000-octet line; none at all. */
static void test_odd_headers(struct tap *t)
{
	char odd[4200], why[64];
	struct smtp_dsn_rcpt rcpt[2];
	struct smtp_dsn_info info = base(rcpt);
	struct msg m;
	size_t n = 0;

	n += (size_t)sprintf(odd + n, "Subject: bare lf\nX-CR: bare cr\rX-Nul: a");
	odd[n++] = '\0';
	n += (size_t)sprintf(odd + n, "b\r\nX-8bit: caf\xc3\xa9\r\nX-Long: ");
	memset(odd + n, 'y', 3000);
	n += 3000;
	n += (size_t)sprintf(odd + n, "\r\nX-Last: no line end");
	info.headers = odd;
	info.headers_len = n;
	if (!parse(&m, &info, false)) {
		TAP_OK(t, 0, "odd-headers bounce built");
		return;
	}
	TAP_OK(t, wellformed(m.text, m.len, why, sizeof(why)), "odd headers: CRLF only, <= 998 (%s)", why);
	TAP_OK(t, find(&m, 0, "Subject: bare lf") > 0 && find(&m, 0, "X-CR: bare cr") > 0,
	       "bare LF and bare CR became CRLF");
	TAP_OK(t, find(&m, 0, "X-Nul: a?b") > 0, "NUL became '?'");
	TAP_OK(t, find(&m, 0, "X-8bit: caf\xc3\xa9") > 0 && find(&m, 0, "Content-Transfer-Encoding: 8bit") == 9,
	       "8-bit header kept, Content-Transfer-Encoding: 8bit");
	TAP_OK(t, count_prefix(&m, "\tyyy") == 3, "the 3000-octet line continued on three more lines");
	TAP_OK(t, find(&m, 0, "X-Last: no line end") > 0, "a last line without CRLF gets one");
	done(&m);
	info.headers = NULL;
	info.headers_len = 0;
	if (parse(&m, &info, true)) {
		TAP_OK(t, count_prefix(&m, "--" BOUND) == 3 && find(&m, 0, "Content-Type: text/rfc822-headers") < 0,
		       "no headers: no part 3");
		done(&m);
	}
}

/* test_big_headers - more than 64 KB: cut at a line end. */
static void test_big_headers(struct tap *t)
{
	size_t size = 100000, n = 0;
	char *big = malloc(size), why[64];
	struct smtp_dsn_rcpt rcpt[2];
	struct smtp_dsn_info info = base(rcpt);
	struct msg m;
	int i = 0;

	while (n + 40 < size)
	{
		n += (size_t)sprintf(big + n, "X-Filler-%05d: %020d\r\n", i, i);
		i++;
	}
	info.headers = big;
	info.headers_len = n;
	if (!parse(&m, &info, true)) {
		TAP_OK(t, 0, "big bounce built");
		free(big);
		return;
	}
	TAP_OK(t, wellformed(m.text, m.len, why, sizeof(why)), "big headers: CRLF only (%s)", why);
	/* 38 octets a line: 1724 lines fit in 65536, the 1725th does not. */
	TAP_OK(t, find(&m, 0, "X-Filler-01723: 00000000000000001723") > 0 &&
	       count_prefix(&m, "X-Filler-01724") == 0, "cut after the last whole line within 64 KB");
	TAP_OK(t, m.len < 65536 + 4096, "the DSN stays small (%zu octets)", m.len);
	done(&m);
	free(big);
}

/* test_success - "relayed" and "delivered": the success report, ENVID, ORCPT's type. */
static void test_success(struct tap *t)
{
	struct smtp_dsn_rcpt rcpt[2];
	struct smtp_dsn_info info = base(rcpt);
	struct msg m;
	char why[64];

	rcpt[0] = (struct smtp_dsn_rcpt){ .addr = "bob@example.org", .action = "relayed",
		.status = "2.0.0", .remote_mta = "mx.example.org",
		.diagnostic = "250 2.0.0 Ok: queued as X", .orig_addr = "b+ob@example.org",
		.orig_type = "rfc822" };
	rcpt[1] = (struct smtp_dsn_rcpt){ .addr = "carol@example.net", .action = "delivered",
		.status = NULL, .orig_addr = "carol", .orig_type = "x-local\r\nInjected: 1" };
	info.envid = "QQ314159\r\nX-Evil: 1";
	if (!parse(&m, &info, true)) {
		TAP_OK(t, 0, "success report built");
		return;
	}
	TAP_OK(t, wellformed(m.text, m.len, why, sizeof(why)), "success report: CRLF only (%s)", why);
	TAP_OK(t, find(&m, 0, "Subject: Successful Mail Delivery Report") == 2, "Subject: Successful Mail Delivery Report");
	TAP_OK(t, find(&m, 0, "Message-ID: <20240305110000.4B2DF1A1234.success@mx.campus.test>") == 4,
	       "its Message-ID says success");
	TAP_OK(t, find(&m, 0, "Your message was successfully delivered to the destination(s)") > 0,
	       "Postfix's success text");
	TAP_OK(t, find(&m, 0, "If you do so, please include this problem report.") < 0,
	       "no problem report text");
	TAP_OK(t, find(&m, 0, "<bob@example.org>: delivery via mx.example.org: 250 2.0.0 Ok: queued as X") > 0,
	       "the human text: delivery via HOST: REPLY");
	TAP_OK(t, find(&m, 0, "Original-Envelope-Id: QQ314159 X-Evil: 1") > 0 &&
	       count_prefix(&m, "X-Evil") == 0, "Original-Envelope-Id, CR/LF made blanks");
	TAP_OK(t, find(&m, 0, "Action: relayed") > 0 && find(&m, 0, "Action: delivered") > 0,
	       "Action: relayed, Action: delivered");
	TAP_OK(t, count_prefix(&m, "Status: 2.0.0") == 2, "Status: 2.0.0 given and by default");
	TAP_OK(t, find(&m, 0, "Original-Recipient: rfc822; b+ob@example.org") > 0,
	       "Original-Recipient: rfc822; ADDR");
	TAP_OK(t, find(&m, 0, "Original-Recipient: x-localInjected1; carol") > 0 &&
	       count_prefix(&m, "Injected") == 0, "an address type keeps letters, digits and '-' only");
	TAP_OK(t, find(&m, 0, "Remote-MTA: dns; mx.example.org") > 0, "Remote-MTA: dns; HOST");
	TAP_OK(t, find(&m, 0, "Content-Description: Message Headers") > 0 &&
	       find(&m, 0, "Content-Type: text/rfc822-headers") > 0, "the headers, as Message Headers");
	done(&m);
	rcpt[1].action = "delayed";
	if (parse(&m, &info, true)) {
		TAP_OK(t, find(&m, 0, "Subject: Delayed Mail (still being retried)") == 2,
		       "relayed and delayed: a delay warning");
		done(&m);
	}
}

/* test_full - RET=FULL: the whole message as message/rfc822, CRLF, boundary kept out. */
static void test_full(struct tap *t)
{
	static const char whole[] =
		"Subject: lunch\r\n"
		"Message-ID: <1@campus.test>\r\n"
		"\r\n"
		"the body, which is included this time\n"
		"--" BOUND "\r\n"
		"caf\xc3\xa9\r\n";
	struct smtp_dsn_rcpt rcpt[2];
	struct smtp_dsn_info info = base(rcpt);
	struct msg m;
	char why[64];
	int at;

	info.message = whole;
	info.message_len = sizeof(whole) - 1;
	if (!parse(&m, &info, false)) {
		TAP_OK(t, 0, "RET=FULL report built");
		return;
	}
	TAP_OK(t, wellformed(m.text, m.len, why, sizeof(why)), "RET=FULL: CRLF only (%s)", why);
	at = find(&m, 0, "Content-Type: message/rfc822");
	TAP_OK(t, at > 0 && find(&m, 0, "Content-Description: Undelivered Message") == at - 1,
	       "an Undelivered Message part, message/rfc822");
	TAP_OK(t, at > 0 && find(&m, (size_t)at, "the body, which is included this time") > at,
	       "the body is in it, its bare LF made CRLF");
	TAP_OK(t, find(&m, 0, "Content-Type: text/rfc822-headers") < 0, "no headers-only part");
	TAP_OK(t, find(&m, 0, "\tboundary=\"" BOUND "\"") < 0 &&
	       find(&m, 0, "\tboundary=\"" BOUND ".1\"") > 0, "a boundary the body holds is not used");
	TAP_OK(t, find(&m, 0, "Content-Transfer-Encoding: 8bit") > 0, "8-bit body: 8bit");
	done(&m);
}

/* test_refused - no DSN to the null sender, nor from nothing. */
static void test_refused(struct tap *t)
{
	struct smtp_dsn_rcpt rcpt[2];
	struct smtp_dsn_info info = base(rcpt);
	size_t len = 0;

	info.orig_sender = "";
	TAP_OK(t, smtp_dsn_build(&info, &len) == NULL, "null sender: NULL (no DSN about a DSN)");
	info.orig_sender = NULL;
	TAP_OK(t, smtp_dsn_build(&info, &len) == NULL, "no sender: NULL");
	TAP_OK(t, smtp_dsn_build(NULL, &len) == NULL, "no info: NULL");
}

/* joined - smtp_dsn_headers' answer is exactly want. */
static bool joined(const char *prefix, const char *data, const char *want)
{
	size_t hlen;
	char *h = smtp_dsn_headers(prefix, data, data ? strlen(data) : 0, &hlen);
	bool ok = h && hlen == strlen(want) && memcmp(h, want, hlen) == 0;

	if (h && !ok)
		printf("# got [%.*s]\n", (int)hlen, h);
	free(h);
	return ok;
}

/* test_prefix - the header_prefix in front of the stored header. */
static void test_prefix(struct tap *t)
{
	static const char stored[] = "From: a@campus.test\r\nSubject: x\r\n\r\nbody\r\n";
	char *big = malloc(70001), *h;
	size_t hlen = 0;

	TAP_OK(t, joined(NULL, stored, "From: a@campus.test\r\nSubject: x\r\n"),
	       "no prefix: the stored header, without the empty line");
	TAP_OK(t, joined("DKIM-Signature: v=1;\r\n\tb=x\r\n", stored,
			 "DKIM-Signature: v=1;\r\n\tb=x\r\nFrom: a@campus.test\r\nSubject: x\r\n"),
	       "the DKIM-Signature prefix first, then the stored header");
	TAP_OK(t, joined("X-A: 1\r\nFrom: b@campus.test\r\n\r\n", "stored: not header\r\n\r\nbody",
			 "X-A: 1\r\nFrom: b@campus.test\r\n"),
	       "a prefix holding the whole header and its empty line: the stored bytes are body");
	TAP_OK(t, joined("X-A: 1\r\n", "\r\nbody\r\n", "X-A: 1\r\n"),
	       "the stored bytes start with the empty line: the header is all prefix");
	TAP_OK(t, joined("X-A: 1\r\n\r", "\nbody\r\n", "X-A: 1\r\n"),
	       "the empty line split between prefix and stored bytes");
	TAP_OK(t, joined("", "", ""), "nothing at all");
	if (big) {
		for (size_t i = 0; i + 10 <= 70000; i += 10)
			memcpy(big + i, "X-Pad: 1\r\n", 10);
		big[70000] = '\0';
		h = smtp_dsn_headers(big, stored, strlen(stored), &hlen);
		TAP_OK(t, h && hlen == 65537 && memcmp(h, big, hlen) == 0,
		       "a prefix over 64 KB: cut at 64 KB and a byte (%zu)", hlen);
		free(h);
		h = smtp_dsn_headers("From: a@campus.test\r\n", big, 70000, &hlen);
		TAP_OK(t, h && hlen == 65537 && strncmp(h, "From: a@campus.test\r\nX-Pad: 1\r\n", 31) == 0,
		       "stored bytes over 64 KB after a prefix: cut the same");
		free(h);
	}
	free(big);
}

int main(void)
{
	struct tap t = { 0 };

	test_bounce(&t);
	test_long(&t);
	test_hostile(&t);
	test_delayed(&t);
	test_boundary_in_headers(&t);
	test_odd_headers(&t);
	test_big_headers(&t);
	test_refused(&t);
	test_success(&t);
	test_full(&t);
	test_prefix(&t);
	return tap_done(&t);
}
