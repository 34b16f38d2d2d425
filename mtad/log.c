/*
 * log.c - one Postfix-shaped line per event on stderr:
 *   Nov 27 08:17:47 mtad[1234]: warning: TEXT
 *
 * Must not: keep global state (the program name comes from glibc's
 * program_invocation_short_name), split a line over several write(2)
 * calls (threads would interleave), or let bytes from the network break
 * a line: control characters become '?', so a client cannot forge a log
 * line by putting CR/LF in a HELO name or an address.
 *
 * Follows no RFC; the timestamp is the syslog (RFC 3164) shape.
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mtad/mtad.h"

#define LOG_LINE_MAX 2048	/* longer lines are truncated */

/* level_prefix - the text that marks warnings and errors, as Postfix does. */
static const char *level_prefix(enum mtad_log_level level)
{
	switch (level) {
	case MTAD_LOG_WARNING: return "warning: ";
	case MTAD_LOG_ERROR: return "error: ";
	case MTAD_LOG_INFO: break;
	}
	return "";
}

/* log_header - "Mon DD HH:MM:SS prog[pid]: " into buf; returns its length. */
static size_t log_header(char *buf, size_t size, enum mtad_log_level level)
{
	struct tm tm;
	time_t now = time(NULL);
	size_t n = 0;
	int r;

	/* localtime_r, not localtime: the static result would race between threads. */
	if (localtime_r(&now, &tm) != NULL)
		n = strftime(buf, size, "%b %e %H:%M:%S ", &tm);
	r = snprintf(buf + n, size - n, "%s[%ld]: %s", program_invocation_short_name,
		     (long)getpid(), level_prefix(level));
	if (r < 0)
		return n;
	return (size_t)r < size - n ? n + (size_t)r : size - 1;
}

/* sanitize - replaces control characters so one event stays one line. */
static void sanitize(char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			s[i] = '?';
}

/* write_all - writes the line, retrying on EINTR and short writes. */
static void write_all(const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(STDERR_FILENO, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		/* Nowhere left to report a failing stderr: drop the line. */
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

/* mtad_vlog - formats, sanitises and writes one line; keeps errno for %m. */
void mtad_vlog(enum mtad_log_level level, const char *fmt, va_list ap)
{
	char buf[LOG_LINE_MAX];
	int saved = errno;
	size_t n, room;
	int r;

	n = log_header(buf, sizeof(buf) - 1, level);
	room = sizeof(buf) - n;	/* the newline goes where vsnprintf puts its NUL */
	errno = saved;		/* so that %m reports the caller's error */
	r = vsnprintf(buf + n, room, fmt, ap);
	if (r > 0)
		n += (size_t)r < room ? (size_t)r : room - 1;
	sanitize(buf, n);
	buf[n++] = '\n';
	write_all(buf, n);
	errno = saved;
}

/* mtad_log - see mtad.h. */
void mtad_log(enum mtad_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mtad_vlog(level, fmt, ap);
	va_end(ap);
}
