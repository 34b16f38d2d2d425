/*
 * log.c - one Postfix-shaped line per event on stderr:
 *   Nov 27 08:17:47 mtad[1234]: warning: TEXT
 *
 * Must not: keep global state beyond the hold buffer below (the program
 * name comes from glibc's program_invocation_short_name), split a line
 * over several write(2) calls (threads would interleave), or let bytes
 * from the network break a line: control characters become '?', so a
 * client cannot forge a log line by putting CR/LF in a HELO name or an
 * address.
 *
 * The hold buffer (mtad_log_hold_start) belongs to the event loop: only
 * the loop's thread touches it, and a prepare handle on that loop writes
 * it out before each wait for events, so a held line is late by at most
 * the rest of one loop iteration.
 *
 * Follows no RFC; the timestamp is the syslog (RFC 3164) shape.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mtad/mtad.h"

#define LOG_LINE_MAX 2048	/* longer lines are truncated */
#define LOG_HOLD_MAX 16384	/* held lines are written when this fills */

/* Info lines of the loop thread waiting for the next prepare phase. */
struct log_hold {
	uv_prepare_t prepare;
	uv_thread_t thread;	/* the loop's */
	long pid;		/* getpid() once, not per line */
	size_t len;
	char buf[LOG_HOLD_MAX];
};

/* The event loop's hold buffer, or NULL (see the comment at the top).
 * Other threads only compare their id with its thread and read its pid;
 * it is set before and cleared after any other thread runs. */
static struct log_hold *_Atomic log_hold;

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
	struct log_hold *h = atomic_load(&log_hold);
	struct tm tm;
	time_t now = time(NULL);
	size_t n = 0;
	int r;

	/* localtime_r, not localtime: the static result would race between threads. */
	if (localtime_r(&now, &tm) != NULL)
		n = strftime(buf, size, "%b %e %H:%M:%S ", &tm);
	r = snprintf(buf + n, size - n, "%s[%ld]: %s", program_invocation_short_name,
		     h != NULL ? h->pid : (long)getpid(), level_prefix(level));
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

/* hold_flush - writes the held lines (loop thread). */
static void hold_flush(struct log_hold *h)
{
	if (h->len > 0)
		write_all(h->buf, h->len);
	h->len = 0;
}

/* hold_prepare_cb - the loop is about to wait: out with the held lines. */
static void hold_prepare_cb(uv_prepare_t *prepare)
{
	hold_flush(prepare->data);
}

/* log_emit - one finished line: held (loop thread, info) or written now. */
static void log_emit(enum mtad_log_level level, const char *line, size_t n)
{
	struct log_hold *h = atomic_load(&log_hold);
	uv_thread_t self;

	if (h != NULL) {
		self = uv_thread_self();
		if (uv_thread_equal(&self, &h->thread)) {
			if (level == MTAD_LOG_INFO && n <= sizeof(h->buf)) {
				if (n > sizeof(h->buf) - h->len)
					hold_flush(h);
				memcpy(h->buf + h->len, line, n);
				h->len += n;
				return;
			}
			hold_flush(h);	/* a warning comes after what was held */
		}
	}
	write_all(line, n);
}

/* mtad_log_hold_start - see mtad.h. */
int mtad_log_hold_start(uv_loop_t *loop)
{
	struct log_hold *h;
	int rc;

	if (log_hold != NULL)
		return 0;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return UV_ENOMEM;
	if ((rc = uv_prepare_init(loop, &h->prepare)) != 0) {
		free(h);
		return rc;
	}
	h->prepare.data = h;
	if ((rc = uv_prepare_start(&h->prepare, hold_prepare_cb)) != 0) {
		uv_close((uv_handle_t *)&h->prepare, (uv_close_cb)free);
		return rc;
	}
	uv_unref((uv_handle_t *)&h->prepare);	/* it never keeps the loop alive */
	h->thread = uv_thread_self();
	h->pid = (long)getpid();
	atomic_store(&log_hold, h);
	return 0;
}

/* mtad_log_hold_stop - see mtad.h. */
void mtad_log_hold_stop(void)
{
	struct log_hold *h = atomic_load(&log_hold);

	if (h == NULL)
		return;
	atomic_store(&log_hold, NULL);
	hold_flush(h);
	uv_close((uv_handle_t *)&h->prepare, (uv_close_cb)free);
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
	log_emit(level, buf, n);
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
