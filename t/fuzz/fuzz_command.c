/*
 * fuzz_command.c - libFuzzer target for the SMTP command line parser
 * (smtp_command_parse in smtp/command.c): the input is one command line
 * without its CRLF, exactly as smtp/session.c hands it over. Lines it
 * accepts then go through the argument parser their verb uses (MAIL FROM,
 * RCPT TO, HELO/EHLO, BDAT), as in the session.
 *
 * Checks besides the sanitizers: -1 only for a line with a control
 * character; the argument lies inside the line, has no trailing space,
 * and is NULL only for MAIL/RCPT without FROM:/TO:; the verb has a name.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp.h"

/* has_ctl - what smtp_command_parse refuses: a control character or DEL. */
static bool has_ctl(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] < 0x20 || p[i] == 0x7f)
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data;
	struct smtp_command cmd;
	struct smtp_path path;
	struct smtp_mail_params params;
	struct smtp_parse_error err;
	int rc;

	memset(&cmd, 0xa5, sizeof(cmd));
	rc = smtp_command_parse(line, size, &cmd);
	if (rc != 0) {
		if (rc != -1 || !has_ctl(data, size))
			abort();
		return 0;
	}
	if (has_ctl(data, size))
		abort();
	if (smtp_verb_name(cmd.verb) == NULL)
		abort();
	if (cmd.arg == NULL) {
		if ((cmd.verb != SMTP_MAIL && cmd.verb != SMTP_RCPT) || cmd.arglen != 0)
			abort();
		return 0;
	}
	if (cmd.arg < line || cmd.arg > line + size || cmd.arglen > (size_t)(line + size - cmd.arg))
		abort();
	if (cmd.arglen > 0 && cmd.arg[cmd.arglen - 1] == ' ')
		abort();

	switch (cmd.verb) {
	case SMTP_MAIL:
		if (smtp_parse_mail_from(cmd.arg, cmd.arglen, &path, &params, &err) == 0 &&
		    (path.len >= SMTP_PATH_MAX || strlen(path.addr) != path.len))
			abort();
		break;
	case SMTP_RCPT:
		if (smtp_parse_rcpt_to(cmd.arg, cmd.arglen, &path, NULL, &err) == 0 &&
		    (path.len == 0 || path.len >= SMTP_PATH_MAX || strlen(path.addr) != path.len))
			abort();
		break;
	case SMTP_HELO:
	case SMTP_EHLO:
		(void)smtp_parse_helo(cmd.arg, cmd.arglen);
		break;
	case SMTP_BDAT: {
		/* As the session calls it; fuzz_bdat checks its answers. */
		uint64_t n;
		bool last;

		if (smtp_parse_bdat(cmd.arg, cmd.arglen, &n, &last) == 0 && n > UINT64_MAX / 2)
			abort();
		break;
	}
	default:
		break;
	}
	return 0;
}
