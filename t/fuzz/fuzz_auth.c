/*
 * fuzz_auth.c - libFuzzer target for what mtad itself parses of SMTP AUTH
 * before libsasl2 sees it: base64 (auth/base64.c), the mechanism word
 * (auth_server_offers), and note_user in auth/sasl.c, which splits a
 * PLAIN response (authzid NUL authcid NUL passwd) or takes a LOGIN user
 * name, for the failure log and for refusing names over 255 bytes.
 * Checking the password, and PLAIN's own parsing for that, is
 * libsasl2's: not fuzzed here. note_user is static, so this file
 * includes auth/sasl.c (and so does not link the library's sasl.o).
 *
 * Input: lines split at LF, as the client sends them. Line 0 is the
 * argument of AUTH ("PLAIN dGVzdA==", "LOGIN"), the others answer 334s;
 * they go through the same steps as in smtp/verb_auth.c. Every line is
 * also base64-decoded and -encoded on its own.
 *
 * Checks: an accepted base64 string is canonical (encodes back to itself)
 * and decodes to len/4*3 - padding bytes within an exact-size buffer; any
 * bytes encode and decode back; the noted user is NUL-terminated, is the
 * authcid of a PLAIN response and never the LOGIN password, and names
 * over 255 bytes are reported.
 */
#include "auth/sasl.c"

#define MAX_LINES 8

/* check_base64 - line through decode and encode, with buffers of exact size. */
static void check_base64(const char *line, size_t len)
{
	size_t room = len / 4 * 3, outlen = (size_t)-1, enclen;
	char *out = malloc(room + 1), *enc = malloc(len / 3 * 4 + 5);

	if (out == NULL || enc == NULL)
		abort();
	if (auth_base64_decode(line, len, out, room, &outlen) == 0) {
		size_t pad = len > 0 && line[len - 1] == '=' ? 1 + (len > 1 && line[len - 2] == '=') : 0;

		if (outlen != room - pad)
			abort();
		/* Canonical: exactly one encoding. */
		enclen = auth_base64_encode(out, outlen, enc, len + 1);
		if (enclen != len || memcmp(enc, line, len) != 0)
			abort();
		/* One byte less room than needed must fail, not overflow. */
		if (outlen > 0) {
			char *tight = malloc(outlen - 1 ? outlen - 1 : 1);

			if (tight == NULL || auth_base64_decode(line, len, tight, outlen - 1, &enclen) == 0)
				abort();
			free(tight);
		}
	}
	free(enc);
	free(out);

	/* Any bytes: encode, then decode back. */
	enclen = (len + 2) / 3 * 4;
	enc = malloc(enclen + 1);
	out = malloc(len ? len : 1);
	if (enc == NULL || out == NULL)
		abort();
	if (auth_base64_encode(line, len, enc, enclen + 1) != enclen || enc[enclen] != '\0')
		abort();
	if (len > 0 && auth_base64_encode(line, len, enc, enclen) != 0)
		abort();
	if (auth_base64_decode(enc, enclen, out, len, &outlen) != 0 || outlen != len ||
	    memcmp(out, line, len) != 0)
		abort();
	free(out);
	free(enc);
}

/* noted - call note_user and check what it kept. */
static void noted(struct auth_exchange *ex, const char *resp, size_t len, bool initial)
{
	char before[sizeof(ex->user)];
	const char *nul, *authcid, *end;
	bool ok, takes;

	memcpy(before, ex->user, sizeof(before));
	ok = note_user(ex, resp, len, initial);
	if (memchr(ex->user, '\0', sizeof(ex->user)) == NULL)
		abort();
	if (ex->login) {
		takes = ex->want_user || (initial && len > 0);
		if (!takes && (!ok || memcmp(before, ex->user, sizeof(before)) != 0))
			abort();	/* the password must never be kept */
		if (takes && (strlen(ex->user) != (strnlen(resp, len) < sizeof(ex->user) ?
						    strnlen(resp, len) : sizeof(ex->user) - 1) ||
			      strncmp(ex->user, resp, strlen(ex->user)) != 0 ||
			      ok != (strnlen(resp, len) <= AUTH_CLAIM_MAX)))
			abort();
		return;
	}
	nul = memchr(resp, '\0', len);
	end = nul ? memchr(nul + 1, '\0', len - (size_t)(nul + 1 - resp)) : NULL;
	if (end == NULL) {
		if (!ok || memcmp(before, ex->user, sizeof(before)) != 0)
			abort();
		return;
	}
	authcid = nul + 1;
	if (strlen(ex->user) != ((size_t)(end - authcid) < sizeof(ex->user) ?
				 (size_t)(end - authcid) : sizeof(ex->user) - 1) ||
	    strncmp(ex->user, authcid, strlen(ex->user)) != 0)
		abort();
	if (ok != ((size_t)(nul - resp) <= AUTH_CLAIM_MAX && (size_t)(end - authcid) <= AUTH_CLAIM_MAX))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct auth_server srv;
	struct auth_exchange ex;
	const char *lines[MAX_LINES];
	size_t lens[MAX_LINES], nlines = 0, pos = 0;
	char mech[16];
	char *decoded = malloc(AUTH_LINE_MAX);
	size_t mechlen = 0, declen = 0;
	bool has_response = false, named = false;

	if (decoded == NULL)
		abort();
	snprintf(srv.mechanisms, sizeof(srv.mechanisms), "PLAIN LOGIN");
	while (pos < size && nlines < MAX_LINES) {
		const char *p = (const char *)data + pos;
		const char *lf = memchr(p, '\n', size - pos);
		size_t n = lf ? (size_t)(lf - p) : size - pos;

		pos += n + (lf != NULL);
		lines[nlines] = p;
		lens[nlines++] = n > 0 && p[n - 1] == '\r' ? n - 1 : n;
	}
	for (size_t i = 0; i < nlines; i++)
		check_base64(lines[i], lens[i]);
	if (nlines == 0)
		goto out;

	/* AUTH mechanism [initial-response], as verb_auth takes it apart. */
	while (mechlen < lens[0] && lines[0][mechlen] != ' ')
		mechlen++;
	if (mechlen == 0 || mechlen >= sizeof(mech))
		goto out;
	memcpy(mech, lines[0], mechlen);
	mech[mechlen] = '\0';
	if (!auth_server_offers(&srv, mech)) {
		if (strcasecmp(mech, "PLAIN") == 0 || strcasecmp(mech, "LOGIN") == 0)
			abort();
		goto out;
	}
	if (strcasecmp(mech, "PLAIN") != 0 && strcasecmp(mech, "LOGIN") != 0)
		abort();
	memset(&ex, 0, sizeof(ex));
	ex.srv = &srv;
	ex.login = strcasecmp(mech, "LOGIN") == 0;
	{
		const char *resp = lines[0] + mechlen;
		size_t rest = lens[0] - mechlen;

		while (rest > 0 && *resp == ' ') {
			resp++;
			rest--;
		}
		if (rest == 1 && resp[0] == '=') {
			has_response = true;
		} else if (rest > 0) {
			if (auth_base64_decode(resp, rest, decoded, AUTH_LINE_MAX, &declen) != 0)
				goto out;
			has_response = true;
		}
	}
	if (has_response)
		noted(&ex, decoded, declen, true);
	named = has_response && declen > 0;

	/* The answers to 334: LOGIN asks "Username:" first when no name came with AUTH. */
	for (size_t i = 1; i < nlines; i++) {
		if (lens[i] == 1 && lines[i][0] == '*')
			break;
		if (auth_base64_decode(lines[i], lens[i], decoded, AUTH_LINE_MAX, &declen) != 0)
			break;
		ex.want_user = ex.login && i == 1 && !named;
		noted(&ex, decoded, declen, false);
	}
out:
	free(decoded);
	return 0;
}
