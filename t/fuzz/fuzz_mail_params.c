/*
 * fuzz_mail_params.c - libFuzzer target for the MAIL FROM / RCPT TO
 * argument parser in smtp/command.c: the path (quoting, source routes,
 * address literals, length limits) and the ESMTP parameters (SIZE=,
 * BODY=, DSN's RET= and ENVID= on MAIL, NOTIFY= and ORCPT= on RCPT;
 * anything else is 555). The input is the argument after
 * "MAIL FROM:" / "RCPT TO:"; both parsers, and smtp_parse_helo, see it.
 *
 * Checks besides the sanitizers: an accepted path is a NUL-terminated
 * ASCII string without control or shell characters (` $ | &, CVE-2020-7247)
 * that parses again as "<addr>" to itself; MAIL and RCPT agree on paths
 * (but RCPT's bare postmaster and MAIL's null path and parameters); a
 * refusal carries one of the documented codes and a text. SMTPUTF8: a
 * non-ASCII path is well-formed UTF-8 and flagged utf8, and MAIL takes
 * it only with the SMTPUTF8 parameter (else 553 5.6.7). DSN: a decoded
 * ENVID is printable ASCII of at most 100 characters, an ORCPT is
 * "type;xtext" of at most 500 with no byte outside "!".."~", and NOTIFY
 * is NEVER alone or a set of SUCCESS, FAILURE, DELAY.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp/smtp.h"

/* check_path - what every accepted path must look like. */
static void check_path(const struct smtp_path *p)
{
	if (p->len >= SMTP_PATH_MAX - 1 || strlen(p->addr) != p->len)
		abort();
	if (p->null_path && (p->len != 0 || p->had_route))
		abort();
	if (!p->null_path && p->len == 0)
		abort();
	for (size_t i = 0; i < p->len; i++) {
		unsigned char c = (unsigned char)p->addr[i];

		if (c < 0x20 || c == 0x7f || (c >= 0x80 && !p->utf8) ||
		    (c < 0x80 && strchr("`$|&", c) != NULL))
			abort();
	}
	if (p->utf8 != !mtad_ascii(p->addr, p->len) ||
	    (p->utf8 && !mtad_utf8_valid(p->addr, p->len)))
		abort();
}

/* check_error - a refusal names a documented reply. */
static void check_error(const struct smtp_parse_error *e)
{
	if ((e->code != 500 && e->code != 501 && e->code != 553 && e->code != 555) ||
	    e->enhanced == NULL || e->text == NULL || e->text[0] == '\0')
		abort();
}

/* reparse - "<addr>" must give addr back, without a route. */
static void reparse(const struct smtp_path *p, bool mail)
{
	char arg[SMTP_PATH_MAX + 16];
	struct smtp_path again;
	struct smtp_mail_params params;
	struct smtp_parse_error err;
	int n = snprintf(arg, sizeof(arg), "<%s>%s", p->addr, mail && p->utf8 ? " SMTPUTF8" : "");
	int rc = mail ? smtp_parse_mail_from(arg, (size_t)n, &again, &params, &err)
		      : smtp_parse_rcpt_to(arg, (size_t)n, &again, NULL, &err);

	if (rc != 0 || again.len != p->len || strcmp(again.addr, p->addr) != 0 ||
	    again.had_route || again.null_path != p->null_path)
		abort();
}

/* check_dsn - what accepted DSN parameters must look like. */
static void check_dsn(const struct smtp_mail_params *mp, const struct smtp_rcpt_params *rp)
{
	size_t n;

	if (mp != NULL) {
		if (mp->ret != SMTP_RET_UNSPECIFIED && mp->ret != SMTP_RET_FULL &&
		    mp->ret != SMTP_RET_HDRS)
			abort();
		n = strnlen(mp->envid, sizeof(mp->envid));
		if (n >= sizeof(mp->envid) || (mp->has_envid && n == 0) || (!mp->has_envid && n != 0))
			abort();
		for (size_t i = 0; i < n; i++)
			if (mp->envid[i] < 0x20 || mp->envid[i] > 0x7e)
				abort();
	}
	if (rp != NULL) {
		if (rp->notify > 0xf || ((rp->notify & SMTP_NOTIFY_NEVER) &&
					 rp->notify != SMTP_NOTIFY_NEVER))
			abort();
		n = strnlen(rp->orcpt, sizeof(rp->orcpt));
		if (n >= sizeof(rp->orcpt) || (rp->has_orcpt && !strchr(rp->orcpt, ';')) ||
		    (!rp->has_orcpt && n != 0))
			abort();
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)rp->orcpt[i] < 33 || (unsigned char)rp->orcpt[i] > 126)
				abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *arg = (const char *)data;
	struct smtp_path mpath, rpath;
	struct smtp_mail_params params;
	struct smtp_rcpt_params rparams;
	struct smtp_parse_error merr, rerr;
	int mrc, rrc;

	mrc = smtp_parse_mail_from(arg, size, &mpath, &params, &merr);
	rrc = smtp_parse_rcpt_to(arg, size, &rpath, &rparams, &rerr);
	(void)smtp_parse_helo(arg, size);

	if (mrc == 0) {
		check_path(&mpath);
		if (!params.has_size && params.size != 0)
			abort();
		if (params.body != SMTP_BODY_UNSPECIFIED && params.body != SMTP_BODY_7BIT &&
		    params.body != SMTP_BODY_8BITMIME)
			abort();
		check_dsn(&params, NULL);
		reparse(&mpath, true);
	} else if (mrc == -1) {
		check_error(&merr);
	} else {
		abort();
	}
	if (rrc == 0) {
		check_path(&rpath);
		if (rpath.null_path)
			abort();
		check_dsn(NULL, &rparams);
		reparse(&rpath, false);
	} else if (rrc == -1) {
		check_error(&rerr);
	} else {
		abort();
	}

	/* The same path means the same thing to MAIL and RCPT (without RCPT's own parameters). */
	if (rrc == 0 && strcasecmp(rpath.addr, "postmaster") != 0 &&
	    !(rpath.utf8 && mrc != 0 && merr.code == 553 && strcmp(merr.enhanced, "5.6.7") == 0) &&
	    rparams.notify == 0 && !rparams.has_orcpt &&
	    (mrc != 0 || strcmp(mpath.addr, rpath.addr) != 0 || mpath.had_route != rpath.had_route))
		abort();
	if (mrc == 0 && !mpath.null_path && !params.has_size &&
	    params.body == SMTP_BODY_UNSPECIFIED && !params.smtputf8 &&
	    params.ret == SMTP_RET_UNSPECIFIED && !params.has_envid &&
	    (rrc != 0 || strcmp(mpath.addr, rpath.addr) != 0))
		abort();
	return 0;
}
