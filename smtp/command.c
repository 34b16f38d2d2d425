/*
 * command.c - the SMTP command parser: splits a command line into verb
 * and argument, and checks the arguments of MAIL FROM, RCPT TO and
 * HELO/EHLO and the chunk size of BDAT, choosing the exact reply for each
 * mistake.
 *
 * Must not: do I/O, allocate, keep state between calls, or let an
 * address through that would mean something to a shell or to a log
 * line: control characters, NUL, and the atext characters that a shell
 * treats as operators are refused. OpenSMTPD CVE-2020-7247 ran commands
 * from a MAIL FROM local part such as <;sleep 66;> because a syntax check
 * had a path around it; here every address goes through one strict path
 * and nothing downstream should ever hand envelope data to a shell.
 *
 * Follows: RFC 5321 §4.1.1 (commands), §4.1.2 (path, mailbox, domain,
 * address-literal syntax), §4.1.3 (address literals), §4.5.3.1 (length
 * limits), appendix C (source routes: accepted and dropped); RFC 5322
 * §3.2.3 (atext); RFC 1870 (SIZE=), RFC 6152 (BODY=8BITMIME), RFC 3463
 * (enhanced status codes), RFC 6531 §3.3 (UTF-8 local parts and U-label
 * domains, well-formed UTF-8 only, lengths counted in octets; a U-label
 * domain must have an A-label form within RFC 1035's limits), §3.4 (the
 * SMTPUTF8 parameter of MAIL), §3.7.4.2 (553 5.6.7 for a non-ASCII
 * address without it, Postfix's text); RFC 3461 §4 (DSN: xtext, RET=,
 * ENVID= on MAIL, NOTIFY=, ORCPT= on RCPT); RFC 3030 §2 (BDAT
 * chunk-size [LAST]).
 */
#include <arpa/inet.h>
#include <string.h>

#include "smtp/smtp.h"

/* One row per verb: adding a verb is a row here and an enum value. */
static const struct {
	enum smtp_verb verb;
	const char *name;
} verbs[] = {
	{ SMTP_HELO, "HELO" }, { SMTP_EHLO, "EHLO" }, { SMTP_MAIL, "MAIL" },
	{ SMTP_RCPT, "RCPT" }, { SMTP_DATA, "DATA" }, { SMTP_RSET, "RSET" },
	{ SMTP_NOOP, "NOOP" }, { SMTP_QUIT, "QUIT" }, { SMTP_HELP, "HELP" },
	{ SMTP_VRFY, "VRFY" }, { SMTP_EXPN, "EXPN" }, { SMTP_STARTTLS, "STARTTLS" },
	{ SMTP_AUTH, "AUTH" }, { SMTP_BDAT, "BDAT" },
};

#define NVERBS (sizeof(verbs) / sizeof(verbs[0]))

/* Reply texts, kept together so the tests and the docs can match them. */
#define T_SYNTAX_MAIL "Syntax: MAIL FROM:<address>"
#define T_SYNTAX_RCPT "Syntax: RCPT TO:<address>"
#define T_FORBIDDEN "Address contains forbidden characters"

/* ---- small character helpers ---- */

/* is_ctl - a control character or DEL: never allowed in a command line. */
static bool is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* memchr_ctl - s[0..len) holds a control character. */
static bool memchr_ctl(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (is_ctl((unsigned char)s[i]))
			return true;
	return false;
}

/* is_alnum - ASCII letter or digit. */
static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* is_atext - RFC 5322 atext. */
static bool is_atext(char c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/*
 * is_shell_meta - atext that a shell runs as syntax: command substitution,
 * variables, pipes, background. Legal in RFC 5322, never seen in real
 * mail, and exactly what CVE-2020-7247 exploits used.
 */
static bool is_shell_meta(char c)
{
	return c == '`' || c == '$' || c == '|' || c == '&';
}

/* prefix_ci - s[0..len) starts with word, ignoring ASCII case. */
static bool prefix_ci(const char *s, size_t len, const char *word)
{
	size_t i, n = strlen(word);

	if (len < n)
		return false;
	for (i = 0; i < n; i++)
		if (mtad_lower(s[i]) != mtad_lower(word[i]))
			return false;
	return true;
}

/* equal_ci - s[0..len) is word, ignoring ASCII case. */
static bool equal_ci(const char *s, size_t len, const char *word)
{
	return len == strlen(word) && prefix_ci(s, len, word);
}

/* ---- command lines ---- */

/* find_verb - the verb for a token, SMTP_UNKNOWN if none. */
static enum smtp_verb find_verb(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < NVERBS; i++)
		if (equal_ci(s, len, verbs[i].name))
			return verbs[i].verb;
	return SMTP_UNKNOWN;
}

/* smtp_verb_name - see smtp.h. */
const char *smtp_verb_name(enum smtp_verb verb)
{
	size_t i;

	for (i = 0; i < NVERBS; i++)
		if (verbs[i].verb == verb)
			return verbs[i].name;
	return "unknown";
}

/* skip_spaces - index of the first non-space at or after i. */
static size_t skip_spaces(const char *s, size_t len, size_t i)
{
	while (i < len && s[i] == ' ')
		i++;
	return i;
}

/* smtp_command_parse - see smtp.h. */
int smtp_command_parse(const char *line, size_t len, struct smtp_command *cmd)
{
	const char *kw = NULL;
	size_t i, v;

	if (memchr_ctl(line, len))
		return -1;
	for (v = 0; v < len && line[v] != ' '; v++)
		;
	cmd->verb = find_verb(line, v);
	i = skip_spaces(line, len, v);
	if (cmd->verb == SMTP_MAIL)
		kw = "FROM:";
	else if (cmd->verb == SMTP_RCPT)
		kw = "TO:";
	if (kw != NULL) {
		/* "MAIL" without "FROM:" is a syntax error (501), signalled by arg == NULL. */
		if (!prefix_ci(line + i, len - i, kw)) {
			cmd->arg = NULL;
			cmd->arglen = 0;
			return 0;
		}
		/* Like Postfix, tolerate spaces between "FROM:" and "<". */
		i = skip_spaces(line, len, i + strlen(kw));
	}
	while (len > i && line[len - 1] == ' ')
		len--;
	cmd->arg = line + i;
	cmd->arglen = len - i;
	return 0;
}

/* ---- errors ---- */

/* fail - fills in the reply for a refused argument; returns -1. */
static int fail(struct smtp_parse_error *err, int code, const char *enhanced, const char *text)
{
	err->code = code;
	err->enhanced = enhanced;
	err->text = text;
	return -1;
}

/* ---- domains ---- */

/* address_literal - "[1.2.3.4]" or "[IPv6:...]" (with brackets), RFC 5321 §4.1.3. */
static bool address_literal(const char *s, size_t len)
{
	unsigned char bin[sizeof(struct in6_addr)];
	char buf[64];
	int af = AF_INET;

	if (len < 3 || s[0] != '[' || s[len - 1] != ']')
		return false;
	s++;
	len -= 2;
	if (prefix_ci(s, len, "IPv6:")) {
		af = AF_INET6;
		s += 5;
		len -= 5;
	}
	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	/* inet_pton is pure (no resolver) and as strict as the RFC grammar. */
	return inet_pton(af, buf, bin) == 1;
}

/* envelope_domain - RFC 5321 Domain (ldh labels) or address literal. */
static bool envelope_domain(const char *s, size_t len)
{
	char alabel[MTAD_DOMAIN_ASCII_MAX + 2];
	size_t i, label = 0;
	int n;

	if (len > 0 && s[0] == '[')
		return address_literal(s, len);
	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return false;
	/* RFC 6531 §3.3: U-labels are fine when their A-label form is a
	 * name: the limits of RFC 1035 apply to that form. */
	if (!mtad_ascii(s, len))
		return (n = mtad_domain_to_ascii(s, len, alabel, sizeof(alabel))) > 0 &&
		       alabel[n - 1] != '.' && envelope_domain(alabel, (size_t)n);
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
		} else if (is_alnum(s[i]) || (s[i] == '-' && label > 0)) {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0 && s[len - 1] != '-';
}

/* ---- paths ---- */

/* What kind of path: the replies differ between MAIL and RCPT. */
struct path_kind {
	bool is_mail;
	const char *syntax;	/* the 501 5.5.4 text */
};

/* path_end - index of the '>' closing the path at s[0] == '<', quotes respected; 0 if none. */
static size_t path_end(const char *s, size_t len)
{
	bool quoted = false;
	size_t i;

	for (i = 1; i < len; i++) {
		if (quoted && s[i] == '\\' && i + 1 < len)
			i++;
		else if (s[i] == '"')
			quoted = !quoted;
		else if (!quoted && s[i] == '>')
			return i;
	}
	return 0;
}

/*
 * check_bytes - control characters are refused before any syntax, and
 * 8-bit octets must be well-formed UTF-8 without C1 controls (RFC 6531
 * §3.3); whether the client may send them at all (it said SMTPUTF8)
 * is decided once the whole command is read (path->utf8).
 */
static int check_bytes(const char *s, size_t len, struct smtp_parse_error *err)
{
	if (memchr_ctl(s, len))
		return fail(err, 553, "5.1.3", T_FORBIDDEN);
	if (!mtad_ascii(s, len) && !mtad_utf8_valid(s, len))
		return fail(err, 500, "5.5.2", "Error: bad UTF-8 syntax");	/* Postfix's words */
	return 0;
}

/* source_route - skips "@a,@b:" (RFC 5321 appendix C); returns its length or -1. */
static int source_route(const char *s, size_t len, struct smtp_parse_error *err)
{
	size_t i = 0, start;

	while (i < len && s[i] == '@') {
		start = ++i;
		while (i < len && s[i] != ',' && s[i] != ':')
			i++;
		if (!envelope_domain(s + start, i - start))
			return fail(err, 501, "5.1.3", "Bad domain in source route");
		if (i < len && s[i] == ':')
			return (int)i + 1;
		if (i < len)
			i++;	/* the ',' */
	}
	return fail(err, 501, "5.1.3", "Bad source route syntax");
}

/* quoted_local - RFC 5321 Quoted-string; returns its length or -1. */
static int quoted_local(const char *s, size_t len, struct smtp_parse_error *err)
{
	size_t i;

	for (i = 1; i < len && s[i] != '"'; i++) {
		if (s[i] == '\\' && i + 1 < len)
			i++;
		/* Quoting makes spaces legal, not command substitution. */
		if (is_shell_meta(s[i]))
			return fail(err, 553, "5.1.3", T_FORBIDDEN);
	}
	if (i >= len)
		return fail(err, 501, "5.1.3", "Bad address syntax");
	return (int)i + 1;
}

/* dot_string_local - RFC 5321 Dot-string; returns its length (up to '@' or end) or -1. */
static int dot_string_local(const char *s, size_t len, struct smtp_parse_error *err)
{
	size_t i;

	for (i = 0; i < len && s[i] != '@'; i++) {
		if (is_shell_meta(s[i]))
			return fail(err, 553, "5.1.3", T_FORBIDDEN);
		if (s[i] == '.' ? i == 0 || s[i - 1] == '.' :
		    !is_atext(s[i]) && (unsigned char)s[i] < 0x80)	/* RFC 6531 UTF8-non-ascii */
			return fail(err, 501, "5.1.3", "Bad address syntax");
	}
	if (i == 0 || s[i - 1] == '.')
		return fail(err, 501, "5.1.3", "Bad address syntax");
	return (int)i;
}

/* mailbox - local@domain, or RCPT's bare "postmaster" (RFC 5321 §4.1.1.3). */
static int mailbox(const char *s, size_t len, const struct path_kind *kind,
		   struct smtp_parse_error *err)
{
	int n = s[0] == '"' ? quoted_local(s, len, err) : dot_string_local(s, len, err);
	size_t local = (size_t)n;

	if (n < 0)
		return -1;
	if (local > SMTP_LOCAL_MAX)
		return fail(err, 501, "5.1.3", "Local part too long");
	if (local == len) {
		if (!kind->is_mail && equal_ci(s, len, "postmaster"))
			return 0;
		return fail(err, 501, "5.1.3", SMTP_TEXT_NO_DOMAIN);
	}
	if (s[local] != '@')
		return fail(err, 501, "5.1.3", "Bad address syntax");
	if (!envelope_domain(s + local + 1, len - local - 1))
		return fail(err, 501, "5.1.3", "Bad domain syntax");
	return 0;
}

/* path_content - what is between < and >: empty, or [route] mailbox. */
static int path_content(const char *s, size_t len, const struct path_kind *kind,
			struct smtp_path *path, struct smtp_parse_error *err)
{
	int skip = 0;

	if (len == 0) {
		if (!kind->is_mail)
			return fail(err, 501, "5.1.3", "Null recipient address not allowed");
		path->null_path = true;
		return 0;
	}
	if (len + 2 > SMTP_PATH_MAX)
		return fail(err, 501, "5.1.3", "Path too long");
	if (check_bytes(s, len, err) < 0)
		return -1;
	if (s[0] == '@' && (skip = source_route(s, len, err)) < 0)
		return -1;
	s += skip;
	len -= (size_t)skip;
	if (len == 0)
		return fail(err, 501, "5.1.3", "Bad address syntax");
	if (mailbox(s, len, kind, err) < 0)
		return -1;
	memcpy(path->addr, s, len);
	path->addr[len] = '\0';
	path->len = len;
	path->had_route = skip > 0;
	/* What needs SMTPUTF8 is what is kept: a dropped route does not. */
	path->utf8 = !mtad_ascii(s, len);
	return 0;
}

/*
 * parse_path - "<...>" at the start of arg (after spaces); on success
 * *rest is the index just after '>'.
 */
static int parse_path(const char *arg, size_t len, const struct path_kind *kind,
		      struct smtp_path *path, size_t *rest, struct smtp_parse_error *err)
{
	size_t start = skip_spaces(arg, len, 0), end;

	memset(path, 0, sizeof(*path));
	/* Control characters are refused anywhere, before they can confuse the syntax. */
	if (memchr_ctl(arg, len))
		return fail(err, 553, "5.1.3", T_FORBIDDEN);
	if (start >= len || arg[start] != '<')
		return fail(err, 501, "5.5.4", kind->syntax);
	end = path_end(arg + start, len - start);
	if (end == 0)
		return fail(err, 501, "5.5.4", kind->syntax);
	*rest = start + end + 1;
	/* The shape first: the path is followed by nothing or by " PARAM...". */
	if (*rest < len && arg[*rest] != ' ')
		return fail(err, 501, "5.5.4", kind->syntax);
	return path_content(arg + start + 1, end - 1, kind, path, err);
}

/* ---- ESMTP parameters ---- */

/* One "KEYWORD[=VALUE]" from the argument. */
struct param {
	const char *key, *value;
	size_t keylen, valuelen;	/* valuelen 0 and value NULL: no '=' */
};

/* param_syntax - RFC 5321 esmtp-keyword and esmtp-value. */
static bool param_syntax(const struct param *p)
{
	size_t i;

	if (p->keylen == 0 || !is_alnum(p->key[0]))
		return false;
	for (i = 1; i < p->keylen; i++)
		if (!is_alnum(p->key[i]) && p->key[i] != '-')
			return false;
	if (p->value != NULL && p->valuelen == 0)
		return false;
	for (i = 0; i < p->valuelen; i++)
		if (p->value[i] < 33 || p->value[i] > 126 || p->value[i] == '=')
			return false;
	return true;
}

/* next_param - splits the next space-separated parameter; false at the end. */
static bool next_param(const char *s, size_t len, size_t *pos, struct param *p)
{
	size_t i = skip_spaces(s, len, *pos), end = i;
	const char *eq;

	if (i >= len)
		return false;
	while (end < len && s[end] != ' ')
		end++;
	p->key = s + i;
	eq = memchr(p->key, '=', end - i);
	p->keylen = eq ? (size_t)(eq - p->key) : end - i;
	p->value = eq ? eq + 1 : NULL;
	p->valuelen = eq ? (size_t)(s + end - p->value) : 0;
	*pos = end;
	return true;
}

/* size_value - RFC 1870 size; too many digits saturate so the caller says 552. */
static bool size_value(const struct param *p, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (p->value == NULL)
		return false;
	for (i = 0; i < p->valuelen; i++) {
		if (p->value[i] < '0' || p->value[i] > '9')
			return false;
		if (v > (UINT64_MAX - (uint64_t)(p->value[i] - '0')) / 10)
			v = UINT64_MAX;
		else
			v = v * 10 + (uint64_t)(p->value[i] - '0');
	}
	*out = v;
	return true;
}

/* ---- DSN parameters (RFC 3461 §4) ---- */

/* ret_param - RET=FULL|HDRS (RFC 3461 §4.3). */
static int ret_param(const struct param *p, struct smtp_mail_params *mp,
		     struct smtp_parse_error *err)
{
	if (mp->ret != SMTP_RET_UNSPECIFIED)
		return fail(err, 501, "5.5.4", "Duplicate RET parameter");
	if (p->value && equal_ci(p->value, p->valuelen, "FULL"))
		mp->ret = SMTP_RET_FULL;
	else if (p->value && equal_ci(p->value, p->valuelen, "HDRS"))
		mp->ret = SMTP_RET_HDRS;
	else
		return fail(err, 501, "5.5.4", "Bad RET parameter");
	return 0;
}

/* envid_param - ENVID=xtext, at most 100 characters as sent (RFC 3461 §4.4). */
static int envid_param(const struct param *p, struct smtp_mail_params *mp,
		       struct smtp_parse_error *err)
{
	if (mp->has_envid)
		return fail(err, 501, "5.5.4", "Duplicate ENVID parameter");
	if (p->value == NULL || p->valuelen > SMTP_ENVID_MAX ||
	    mtad_xtext_decode(p->value, p->valuelen, mp->envid, sizeof(mp->envid)) <= 0)
		return fail(err, 501, "5.5.4", "Bad ENVID parameter");
	mp->has_envid = true;
	return 0;
}

/* notify_value - NEVER alone, or SUCCESS, FAILURE, DELAY each once (RFC 3461 §4.1). */
static unsigned notify_value(const char *s, size_t len)
{
	static const struct { const char *name; unsigned bit; } words[] = {
		{ "NEVER", SMTP_NOTIFY_NEVER }, { "SUCCESS", SMTP_NOTIFY_SUCCESS },
		{ "FAILURE", SMTP_NOTIFY_FAILURE }, { "DELAY", SMTP_NOTIFY_DELAY },
	};
	unsigned bits = 0, bit;
	size_t i = 0, end, k;

	while (i <= len) {
		for (end = i; end < len && s[end] != ','; end++)
			;
		bit = 0;
		for (k = 0; k < sizeof(words) / sizeof(words[0]); k++)
			if (equal_ci(s + i, end - i, words[k].name))
				bit = words[k].bit;
		if (bit == 0 || (bits & bit))
			return 0;
		bits |= bit;
		i = end + 1;
	}
	if ((bits & SMTP_NOTIFY_NEVER) && bits != SMTP_NOTIFY_NEVER)
		return 0;
	return bits;
}

/* orcpt_value - "addr-type;xtext": an atom, then an xtext address (RFC 3461 §4.2). */
static bool orcpt_value(const char *s, size_t len)
{
	char decoded[SMTP_ORCPT_MAX + 1];
	const char *semi = memchr(s, ';', len);
	size_t i, tlen;

	if (semi == NULL || len > SMTP_ORCPT_MAX)
		return false;
	tlen = (size_t)(semi - s);
	if (tlen == 0)
		return false;
	for (i = 0; i < tlen; i++)
		if (!is_alnum(s[i]) && s[i] != '-')
			return false;
	return mtad_xtext_decode(semi + 1, len - tlen - 1, decoded, sizeof(decoded)) > 0;
}

/* rcpt_param - applies one RCPT TO parameter; rp NULL: checked, not kept. */
static int rcpt_param(const struct param *p, struct smtp_rcpt_params *rp,
		      struct smtp_parse_error *err)
{
	if (equal_ci(p->key, p->keylen, "NOTIFY")) {
		unsigned bits = p->value ? notify_value(p->value, p->valuelen) : 0;

		if (rp->notify != 0)
			return fail(err, 501, "5.5.4", "Duplicate NOTIFY parameter");
		if (bits == 0)
			return fail(err, 501, "5.5.4", "Bad NOTIFY parameter");
		rp->notify = bits;
		return 0;
	}
	if (equal_ci(p->key, p->keylen, "ORCPT")) {
		if (rp->has_orcpt)
			return fail(err, 501, "5.5.4", "Duplicate ORCPT parameter");
		if (p->value == NULL || !orcpt_value(p->value, p->valuelen))
			return fail(err, 501, "5.5.4", "Bad ORCPT parameter");
		memcpy(rp->orcpt, p->value, p->valuelen);
		rp->orcpt[p->valuelen] = '\0';
		rp->has_orcpt = true;
		return 0;
	}
	return fail(err, 555, "5.5.4", "Unsupported parameter");
}

/* mail_param - applies one MAIL FROM parameter. */
static int mail_param(const struct param *p, struct smtp_mail_params *mp,
		      struct smtp_parse_error *err)
{
	if (equal_ci(p->key, p->keylen, "SIZE")) {
		if (mp->has_size)
			return fail(err, 501, "5.5.4", "Duplicate SIZE parameter");
		if (!size_value(p, &mp->size))
			return fail(err, 501, "5.5.4", "Bad SIZE parameter");
		mp->has_size = true;
		return 0;
	}
	if (equal_ci(p->key, p->keylen, "BODY")) {
		if (mp->body != SMTP_BODY_UNSPECIFIED)
			return fail(err, 501, "5.5.4", "Duplicate BODY parameter");
		if (p->value && equal_ci(p->value, p->valuelen, "7BIT"))
			mp->body = SMTP_BODY_7BIT;
		else if (p->value && equal_ci(p->value, p->valuelen, "8BITMIME"))
			mp->body = SMTP_BODY_8BITMIME;
		else
			return fail(err, 501, "5.5.4", "Unsupported BODY type");
		return 0;
	}
	if (equal_ci(p->key, p->keylen, "SMTPUTF8")) {
		/* RFC 6531 §3.4: no value. */
		if (p->value != NULL)
			return fail(err, 501, "5.5.4", "Bad SMTPUTF8 parameter");
		if (mp->smtputf8)
			return fail(err, 501, "5.5.4", "Duplicate SMTPUTF8 parameter");
		mp->smtputf8 = true;
		return 0;
	}
	if (equal_ci(p->key, p->keylen, "RET"))
		return ret_param(p, mp, err);
	if (equal_ci(p->key, p->keylen, "ENVID"))
		return envid_param(p, mp, err);
	return fail(err, 555, "5.5.4", "Unsupported parameter");
}

/* parse_params - every parameter after the path; mp NULL: RCPT's, into rp. */
static int parse_params(const char *s, size_t len, struct smtp_mail_params *mp,
			struct smtp_rcpt_params *rp, struct smtp_parse_error *err)
{
	struct param p;
	size_t pos = 0;

	while (next_param(s, len, &pos, &p)) {
		if (!param_syntax(&p))
			return fail(err, 501, "5.5.4", "Bad parameter syntax");
		if (mp == NULL) {
			if (rcpt_param(&p, rp, err) < 0)
				return -1;
			continue;
		}
		if (mail_param(&p, mp, err) < 0)
			return -1;
	}
	return 0;
}

/* smtp_parse_mail_from - see smtp.h. */
int smtp_parse_mail_from(const char *arg, size_t len, struct smtp_path *path,
			 struct smtp_mail_params *params, struct smtp_parse_error *err)
{
	static const struct path_kind kind = { true, T_SYNTAX_MAIL };
	size_t rest;

	memset(params, 0, sizeof(*params));
	if (parse_path(arg, len, &kind, path, &rest, err) < 0)
		return -1;
	if (parse_params(arg + rest, len - rest, params, NULL, err) < 0)
		return -1;
	if (path->utf8 && !params->smtputf8)
		return fail(err, 553, "5.6.7", SMTP_TEXT_NEED_SMTPUTF8);
	return 0;
}

/* smtp_parse_rcpt_to - see smtp.h. */
int smtp_parse_rcpt_to(const char *arg, size_t len, struct smtp_path *path,
		       struct smtp_rcpt_params *rparams, struct smtp_parse_error *err)
{
	static const struct path_kind kind = { false, T_SYNTAX_RCPT };
	struct smtp_rcpt_params scratch;
	size_t rest;

	if (rparams == NULL)
		rparams = &scratch;
	memset(rparams, 0, sizeof(*rparams));
	if (parse_path(arg, len, &kind, path, &rest, err) < 0)
		return -1;
	return parse_params(arg + rest, len - rest, NULL, rparams, err);
}

/* ---- HELO ---- */

/* helo_char - what may appear in a HELO name: more than RFC 5321 allows. */
static bool helo_char(char c)
{
	/* Underscores: Windows host names have them and real clients send them. */
	return is_alnum(c) || c == '-' || c == '_';
}

/*
 * smtp_parse_helo - see smtp.h. Deliberately liberal: no dot needed
 * (Outlook sends "benderclmsuedu"), leading hyphens, underscores and
 * all-digit labels pass; whether a name is believable is policy, not
 * syntax. Spaces, control characters, empty labels (but one trailing
 * dot) and labels over 63 octets fail.
 */
int smtp_parse_helo(const char *arg, size_t len)
{
	size_t i, label = 0;

	if (len > 0 && arg[0] == '[')
		return address_literal(arg, len) ? 0 : -1;
	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return -1;
	for (i = 0; i < len; i++) {
		if (arg[i] == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if (!helo_char(arg[i]) || ++label > 63) {
			return -1;
		}
	}
	return 0;
}

/* smtp_parse_bdat - see smtp.h. */
int smtp_parse_bdat(const char *arg, size_t len, uint64_t *size, bool *last)
{
	uint64_t n = 0;
	size_t i = 0;

	while (i < len && arg[i] >= '0' && arg[i] <= '9') {
		if (i == 20)
			return -1;
		/* n * 10 + d <= UINT64_MAX / 2, checked before it could wrap. */
		if (n > (UINT64_MAX / 2 - (uint64_t)(arg[i] - '0')) / 10)
			return -1;
		n = n * 10 + (uint64_t)(arg[i] - '0');
		i++;
	}
	if (i == 0)
		return -1;
	*size = n;
	*last = false;
	if (i == len)
		return 0;
	if (arg[i] != ' ')
		return -1;
	i = skip_spaces(arg, len, i);
	if (!equal_ci(arg + i, len - i, "LAST"))
		return -1;
	*last = true;
	return 0;
}
