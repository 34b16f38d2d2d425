/*
 * dkim.c - unit tests for dkim/: relaxed canonicalization of header
 * fields and of the body (RFC 6376 §3.4.5's example and the edge cases:
 * empty body, trailing empty lines, no final CRLF, bare CR), the same
 * output for every split of a body into two or three chunks, the From:
 * domain, tag folding (no line over 78 octets), and a signer's field:
 * tags, h= with From oversigned, one field per key; the signing split
 * in three steps (prepare, run on other threads with one shared key
 * set, result) gives exactly dkim_signer_finish's bytes, and a job keeps
 * its key set alive after the set's last other reference is dropped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "dkim/dkim.h"
#include "t/unit/tap.h"

struct sink {
	char buf[4096];
	size_t len;
};

static void sink_out(void *arg, const void *data, size_t len)
{
	struct sink *s = arg;

	if (s->len + len <= sizeof(s->buf)) {
		memcpy(s->buf + s->len, data, len);
		s->len += len;
	}
}

/* body_in_chunks - body canonicalized with cuts at a and b (a <= b <= len). */
static void body_in_chunks(const char *body, size_t a, size_t b, struct sink *out)
{
	struct dkim_body_canon c;
	size_t len = strlen(body);

	out->len = 0;
	dkim_body_canon_init(&c, sink_out, out);
	dkim_body_canon_feed(&c, body, a);
	dkim_body_canon_feed(&c, body + a, b - a);
	dkim_body_canon_feed(&c, body + b, len - b);
	dkim_body_canon_finish(&c);
	out->buf[out->len] = '\0';
}

/* body_is - every two-cut split of body gives want. */
static bool body_is(const char *body, const char *want)
{
	size_t len = strlen(body);
	struct sink out;

	for (size_t a = 0; a <= len; a++)
		for (size_t b = a; b <= len; b++) {
			body_in_chunks(body, a, b, &out);
			if (out.len != strlen(want) || memcmp(out.buf, want, out.len) != 0) {
				fprintf(stderr, "# cuts %zu,%zu: got [%s]\n", a, b, out.buf);
				return false;
			}
		}
	return true;
}

static bool header_is(const char *field, const char *want, bool crlf)
{
	char out[512];
	size_t n = dkim_canon_header(field, strlen(field), out, crlf);

	out[n] = '\0';
	if (strcmp(out, want) != 0)
		fprintf(stderr, "# got [%s]\n", out);
	return strcmp(out, want) == 0;
}

static void test_canon(struct tap *t)
{
	/* RFC 6376 §3.4.5. */
	TAP_OK(t, header_is("A: X\r\n", "a:X\r\n", true), "3.4.5: A: X");
	TAP_OK(t, header_is("B : Y\t\r\n\tZ  \r\n", "b:Y Z\r\n", true), "3.4.5: B folded");
	TAP_OK(t, body_is(" C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n"), "3.4.5: body, every split");
	TAP_OK(t, header_is("Subject:  a : b \r\n", "subject:a : b\r\n", true),
	       "a colon in the value keeps its spaces");
	TAP_OK(t, header_is("DKIM-Signature: v=1;\r\n\tb=", "dkim-signature:v=1; b=", false),
	       "no CRLF when asked");
	TAP_OK(t, dkim_canon_header("no colon", 8, (char[16]){ 0 }, true) == 0, "no colon: 0");
	TAP_OK(t, body_is("", ""), "empty body stays empty");
	TAP_OK(t, body_is("\r\n\r\n", ""), "only empty lines: empty");
	TAP_OK(t, body_is("x", "x\r\n"), "no final CRLF: one added");
	TAP_OK(t, body_is("x  \t", "x\r\n"), "trailing white space without CRLF");
	TAP_OK(t, body_is("  \r\nx\r\n \r\n\t\r\n", "\r\nx\r\n"),
	       "blank lines before content stay, after go");
	TAP_OK(t, body_is("a\rb\r\n", "a\rb\r\n"), "a bare CR is a byte");
	TAP_OK(t, body_is("a\r", "a\r\r\n"), "a CR at the very end is a byte");
	TAP_OK(t, body_is("\xc3\xa9t\xc3\xa9  \xe2\x82\xac\r\n", "\xc3\xa9t\xc3\xa9 \xe2\x82\xac\r\n"),
	       "8-bit bytes are content");
}

static bool domain_is(const char *value, const char *want)
{
	char out[256];
	int rc = dkim_from_domain(value, strlen(value), out, sizeof(out));

	if (want == NULL)
		return rc < 0;
	return rc == 0 && strcmp(out, want) == 0;
}

static void test_from(struct tap *t)
{
	TAP_OK(t, domain_is(" alice@Campus.Test\r\n", "campus.test"), "bare address, lowered");
	TAP_OK(t, domain_is(" \"A, B\" <a@x.org> (c@d.org)", "x.org"), "quoted comma, comment");
	TAP_OK(t, domain_is(" Alice\r\n <alice@x.org>\r\n", "x.org"), "folded");
	TAP_OK(t, domain_is(" a@x.org, b@y.org", NULL), "two addresses: none");
	TAP_OK(t, domain_is(" <a@x.org> <b@y.org>", NULL), "two angle addresses: none");
	TAP_OK(t, domain_is(" group: a@x.org;", NULL), "a group: none");
	TAP_OK(t, domain_is(" nobody", NULL), "no @: none");
	TAP_OK(t, domain_is(" a@[192.0.2.1]", NULL), "address literal: none");
	TAP_OK(t, domain_is(" <a@x..org>", NULL), "empty label: none");
}

/* lines_ok - every line of text at most 78 octets, CRLF not counted. */
static bool lines_ok(const char *text)
{
	const char *p = text;

	while (*p) {
		const char *e = strstr(p, "\r\n");
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (n > 78) {
			fprintf(stderr, "# line of %zu: %.*s\n", n, (int)n, p);
			return false;
		}
		p += n + (e ? 2 : 0);
	}
	return true;
}

static void test_fold(struct tap *t)
{
	char buf[2048], b64[400];
	size_t col = 15;
	long used = snprintf(buf, sizeof(buf), "DKIM-Signature:");

	memset(b64, 'A', 344);
	b64[344] = '\0';
	used = dkim_fold(buf, sizeof(buf), (size_t)used, &col, "v", "1", false);
	used = dkim_fold(buf, sizeof(buf), (size_t)used, &col, "h",
			 "from:from:to:cc:subject:date:message-id:mime-version:content-type:"
			 "content-transfer-encoding:reply-to:in-reply-to:references", false);
	used = dkim_fold(buf, sizeof(buf), (size_t)used, &col, "b", b64, true);
	TAP_OK(t, used > 0 && lines_ok(buf), "folded: no line over 78 octets");
	TAP_OK(t, strncmp(buf, "DKIM-Signature: v=1; h=from:from:", 33) == 0, "tags in order");
	TAP_OK(t, strstr(buf, "\r\n\t") != NULL, "continuation lines start with a TAB");
	TAP_OK(t, dkim_fold(buf, 40, 0, &col, "b", b64, true) < 0, "too small: -1");
}

/* unfold - text without its folds (in place). */
static const char *unfold(char *text)
{
	char *w = text;

	for (const char *r = text; *r; r++)
		if (strncmp(r, "\r\n\t", 3) == 0)
			r += 2;
		else
			*w++ = *r;
	*w = '\0';
	return text;
}

static void test_signer(struct tap *t)
{
	static const char msg[] =
		"Received: from x by y\r\n"
		"From: Alice <alice@campus.test>\r\n"
		"To: bob@example.org,\r\n carol@example.org\r\n"
		"X-Other: not signed\r\n"
		"Subject: hi\r\n"
		"\r\n"
		"body\r\n";
	char path[] = "/tmp/dkim-unit-XXXXXX", err[256], *txt = NULL, *txt2 = NULL, *out = NULL;
	struct dkim_keys *ks = dkim_keys_new();
	const struct dkim_key *k[2];
	struct dkim_signer *sg;
	size_t outlen, n;
	int fd = mkstemp(path);

	TAP_OK(t, fd >= 0 && close(fd) == 0 && unlink(path) == 0, "a temporary name");
	TAP_OK(t, dkim_keygen(path, DKIM_ED25519_SHA256, &txt, err, sizeof(err)) == 0,
	       "keygen ed25519: %s", err);
	TAP_OK(t, txt && strncmp(txt, "v=DKIM1; k=ed25519; p=", 22) == 0 && strlen(txt) == 22 + 44,
	       "TXT record with the raw 32-byte key");
	TAP_OK(t, dkim_keygen(path, DKIM_ED25519_SHA256, &txt2, err, sizeof(err)) < 0 && txt2 == NULL,
	       "an existing key file is not overwritten");
	TAP_OK(t, dkim_keys_add(ks, "Campus.Test", "sel", path, DKIM_RSA_SHA256, err, sizeof(err)) < 0 &&
	       strstr(err, "not an RSA key"), "an Ed25519 key named rsa-sha256 is refused");
	TAP_OK(t, dkim_keys_add(ks, "Campus.Test", "sel", path, DKIM_ED25519_SHA256, err,
				sizeof(err)) == 0, "key loaded");
	TAP_OK(t, dkim_keys_add(ks, "x.test", "s", "/nonexistent/key", DKIM_ED25519_SHA256, err,
				sizeof(err)) < 0 && strstr(err, "cannot read"), "missing file: %s", err);
	n = dkim_keys_find(ks, "campus.test", k, 2);
	TAP_OK(t, n == 1 && dkim_keys_find(ks, "sub.campus.test", k + 1, 1) == 0,
	       "exact domain only");
	sg = dkim_signer_new();
	for (size_t i = 0; i < sizeof(msg) - 1; i += 7)
		dkim_signer_feed(sg, msg + i, sizeof(msg) - 1 - i < 7 ? sizeof(msg) - 1 - i : 7);
	TAP_OK(t, dkim_signer_from_domain(sg) && strcmp(dkim_signer_from_domain(sg), "campus.test") == 0,
	       "From: domain found");
	TAP_OK(t, dkim_signer_finish(sg, k, n, 1700000000, 3600, &out, &outlen, err, sizeof(err)) == 0,
	       "signed: %s", err);
	TAP_OK(t, out && strncmp(out, "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;", 57) == 0,
	       "v, a, c first");
	TAP_OK(t, out && strstr(out, "h=from:from:to:subject;") != NULL, "h=: From oversigned, present only");
	TAP_OK(t, out && lines_ok(out) && outlen == strlen(out) && outlen > 2 &&
	       strcmp(out + outlen - 2, "\r\n") == 0, "folded, CRLF at the end");
	TAP_OK(t, out && strstr(out, "t=1700000000;") && strstr(out, "x=1700003600;"), "t= and x=");
	/* bh= of "body\r\n". */
	TAP_OK(t, out && strstr(unfold(out), "bh=Ck5SoRNWUpSR4X0COv7R5ub2pUTtl6xz4dTFz++ji4M=;") != NULL,
	       "bh= of the relaxed body");
	dkim_signer_free(sg);
	free(out);

	sg = dkim_signer_new();
	dkim_signer_feed(sg, "From: a@campus.test\r\nFrom: b@campus.test\r\n\r\n", 44);
	TAP_OK(t, dkim_signer_from_domain(sg) == NULL &&
	       dkim_signer_finish(sg, k, n, 0, 0, &out, &outlen, err, sizeof(err)) < 0,
	       "two From: fields: not signed (%s)", err);
	dkim_signer_free(sg);
	unlink(path);
	free(txt);
	dkim_keys_unref(ks);
}

/* signer_of - a signer fed msg in 5-byte pieces. */
static struct dkim_signer *signer_of(const char *msg)
{
	struct dkim_signer *sg = dkim_signer_new();
	size_t len = strlen(msg);

	for (size_t i = 0; sg && i < len; i += 5)
		dkim_signer_feed(sg, msg + i, len - i < 5 ? len - i : 5);
	return sg;
}

#define JOBS 8

static void *run_job(void *arg)
{
	dkim_sign_job_run(arg);
	return NULL;
}

/* test_jobs - prepare on this thread, run on JOBS threads at once (one
 * key set shared), result here: the same bytes as dkim_signer_finish. */
static void test_jobs(struct tap *t)
{
	static const char msg[] =
		"From: Alice <alice@campus.test>\r\nTo: bob@example.org\r\nSubject: jobs\r\n"
		"\r\nline one\r\n\r\n  line  two \r\n";
	char rsa[] = "/tmp/dkim-unit-XXXXXX", ed[] = "/tmp/dkim-unit-XXXXXX", err[256];
	char *txt = NULL, *want = NULL, *got;
	const struct dkim_key *k[DKIM_MAX_KEYS];
	struct dkim_sign_job *job[JOBS];
	pthread_t th[JOBS];
	bool created[JOBS];
	struct dkim_keys *ks = dkim_keys_new();
	struct dkim_signer *sg;
	size_t wantlen = 0, gotlen, n;
	int fa = mkstemp(rsa), fb = mkstemp(ed);
	bool same = true, started = true;

	TAP_OK(t, ks && fa >= 0 && fb >= 0 && close(fa) == 0 && close(fb) == 0 && unlink(rsa) == 0 &&
	       unlink(ed) == 0, "temporary names");
	TAP_OK(t, dkim_keygen(rsa, DKIM_RSA_SHA256, &txt, err, sizeof(err)) == 0 &&
	       (free(txt), dkim_keygen(ed, DKIM_ED25519_SHA256, &txt, err, sizeof(err))) == 0 &&
	       dkim_keys_add(ks, "campus.test", "r", rsa, DKIM_RSA_SHA256, err, sizeof(err)) == 0 &&
	       dkim_keys_add(ks, "campus.test", "e", ed, DKIM_ED25519_SHA256, err, sizeof(err)) == 0,
	       "an RSA and an Ed25519 key: %s", err);
	free(txt);
	n = dkim_keys_find(ks, "campus.test", k, DKIM_MAX_KEYS);
	sg = signer_of(msg);
	TAP_OK(t, n == 2 && dkim_signer_finish(sg, k, n, 1700000000, 0, &want, &wantlen, err,
						sizeof(err)) == 0, "signed in one call: %s", err);
	dkim_signer_free(sg);

	sg = signer_of("From: x@elsewhere.test\r\n\r\nx\r\n");
	TAP_OK(t, dkim_signer_prepare(sg, ks, 0, 0, err, sizeof(err)) == NULL &&
	       strcmp(err, "no key for elsewhere.test") == 0, "no key for the domain: %s", err);
	dkim_signer_free(sg);

	for (size_t i = 0; i < JOBS; i++) {
		sg = signer_of(msg);
		job[i] = dkim_signer_prepare(sg, ks, 1700000000, 0, err, sizeof(err));
		dkim_signer_free(sg);	/* the job needs nothing of the signer */
		if (job[i] == NULL)
			started = false;
	}
	TAP_OK(t, started && dkim_sign_job_keys(job[0]) == 2 &&
	       strcmp(dkim_key_selector(dkim_sign_job_key(job[0], 1)), "e") == 0 &&
	       dkim_sign_job_key(job[0], 2) == NULL, "%d jobs prepared, two keys each", JOBS);
	if (!started) {
		for (size_t i = 0; i < JOBS; i++)
			dkim_sign_job_free(job[i]);
		dkim_keys_unref(ks);
		free(want);
		return;
	}
	TAP_OK(t, dkim_sign_job_result(job[0], &got, &gotlen, err, sizeof(err)) < 0 && got == NULL,
	       "no result before run: %s", err);
	/* The set's own reference goes (a SIGHUP): the jobs keep it alive. */
	dkim_keys_unref(ks);
	for (size_t i = 0; i < JOBS; i++)
		created[i] = pthread_create(&th[i], NULL, run_job, job[i]) == 0;
	for (size_t i = 0; i < JOBS; i++)
		if (!created[i] || pthread_join(th[i], NULL) != 0)
			started = false;
	TAP_OK(t, started, "%d threads signed", JOBS);
	for (size_t i = 0; i < JOBS; i++) {
		got = NULL;
		if (dkim_sign_job_result(job[i], &got, &gotlen, err, sizeof(err)) != 0 ||
		    gotlen != wantlen || memcmp(got, want, wantlen) != 0)
			same = false;
		free(got);
		dkim_sign_job_free(job[i]);	/* the last one frees the keys */
	}
	TAP_OK(t, same, "run on %d threads at once: the same fields as in one call", JOBS);
	free(want);
}

int main(void)
{
	struct tap t = { 0 };

	test_canon(&t);
	test_from(&t);
	test_fold(&t);
	test_signer(&t);
	test_jobs(&t);
	return tap_done(&t);
}
