/*
 * log.c - one Postfix-shaped line per event, on stderr:
 *   Nov 27 08:17:47 mtad[1234]: warning: TEXT
 * or, with `log = syslog`, as one datagram to the syslog daemon's socket
 * (/dev/log), facility mail, in the shape glibc's syslog(3) sends:
 *   <20>Nov 27 08:17:47 mtad[1234]: warning: TEXT
 * The daemon adds host and its own time; the text is the same either way.
 *
 * The program name says which part of mtad speaks, as Postfix's daemons
 * do (mtad/smtpd, mtad/qmgr, mtad/smtp, ...; mtad_log_svc), so that
 * pflogsumm and fail2ban's postfix filters read these lines; the daemon's
 * own lines have the plain name.
 *
 * Must not: keep global state beyond the hold buffer, the syslog
 * destination and the program name below (until mtad_log_set_tag, the
 * name is glibc's program_invocation_short_name), split a line over several write(2) or
 * send(2) calls (threads would interleave), wait for a syslog daemon, or
 * let bytes from the network break a line: control characters become
 * '?', so a client cannot forge a log line by putting CR/LF in a HELO
 * name or an address.
 *
 * The hold buffer (mtad_log_hold_start) belongs to the event loop: only
 * the loop's thread touches it, and a prepare handle on that loop writes
 * it out before each wait for events, so a held line is late by at most
 * the rest of one loop iteration. It holds stderr lines only.
 *
 * The syslog destination and the program name are set at start, before any other thread runs,
 * and put back at exit, after they are gone; in between every thread
 * only reads it. Why not syslog(3): its socket path is fixed (so a test
 * cannot listen in), it waits when the daemon is behind, and it drops a
 * line silently when there is no daemon. Here each line is one
 * non-blocking sendto() on an unconnected socket (so a restarted daemon
 * needs no reconnect), and a line the socket refuses goes to stderr.
 *
 * Follows: RFC 3164 §4.1 for the datagram (PRI, TIMESTAMP, TAG[PID]: MSG,
 * no HOSTNAME, as local syslog(3) sends it).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"

#define LOG_LINE_MAX 2048	/* longer lines are truncated */
#define LOG_HOLD_MAX 16384	/* held lines are written when this fills */
#define LOG_PRI_ROOM 8		/* room before a line for "<PRI>" (at most "<191>") */

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

/* The syslog destination (see the comment at the top): fd is -1 while
 * lines go to stderr; addr is written before fd is published. */
static struct {
	_Atomic int fd;
	struct sockaddr_un addr;
	socklen_t addrlen;
} log_syslog = { .fd = -1 };

/* The program name (see the comment at the top): set once at start by
 * mtad_log_set_tag, before other threads run; read-only afterwards.
 * An empty tag: the executable's name, and "mtad" before services. */
static struct {
	char tag[MTAD_LOG_TAG_MAX + 1];
	bool plain;		/* log_services = no: the tag alone on every line */
} log_name;

/* Postfix's names for the same work (pflogsumm reads "smtpd", "qmgr", ...;
 * its regex and fail2ban's postfix filter both allow "submission/" and
 * "smtps/" before "smtpd", as Postfix's master.cf names those services). */
static const char *const service_names[] = {
	[MTAD_SVC_DAEMON] = "",
	[MTAD_SVC_SMTPD] = "smtpd",
	[MTAD_SVC_SUBMISSION] = "submission/smtpd",
	[MTAD_SVC_SMTPS] = "smtps/smtpd",
	[MTAD_SVC_PICKUP] = "pickup",
	[MTAD_SVC_CLEANUP] = "cleanup",
	[MTAD_SVC_QMGR] = "qmgr",
	[MTAD_SVC_SMTP] = "smtp",
	[MTAD_SVC_LMTP] = "lmtp",
	[MTAD_SVC_BOUNCE] = "bounce",
	[MTAD_SVC_MTAQ] = "mtaq",
};

/* mtad_log_service_name - see util.h. */
const char *mtad_log_service_name(enum mtad_log_service svc)
{
	if ((size_t)svc >= sizeof(service_names) / sizeof(service_names[0]))
		return "";
	return service_names[svc];
}

/* mtad_log_tag_valid - see util.h. */
bool mtad_log_tag_valid(const char *tag)
{
	size_t n = strlen(tag);

	if (n == 0 || n > MTAD_LOG_TAG_MAX)
		return false;
	/* No '/', '[', ':' or space: they would end the name for every reader. */
	for (size_t i = 0; i < n; i++)
		if (!((tag[i] >= 'a' && tag[i] <= 'z') || (tag[i] >= 'A' && tag[i] <= 'Z') ||
		      (tag[i] >= '0' && tag[i] <= '9') || tag[i] == '.' || tag[i] == '_' ||
		      tag[i] == '-'))
			return false;
	return true;
}

/* mtad_log_set_tag - see util.h. */
int mtad_log_set_tag(const char *tag, bool services)
{
	if (!mtad_log_tag_valid(tag))
		return -1;
	memcpy(log_name.tag, tag, strlen(tag) + 1);
	log_name.plain = !services;
	return 0;
}

/* program_name - "TAG" or "TAG/NAME" for svc into buf. */
static const char *program_name(enum mtad_log_service svc, char *buf, size_t size)
{
	const char *tag = log_name.tag[0] ? log_name.tag : NULL;
	const char *name = mtad_log_service_name(svc);

	if (name[0] == '\0' || log_name.plain)
		return tag ? tag : program_invocation_short_name;
	snprintf(buf, size, "%s/%s", tag ? tag : "mtad", name);
	return buf;
}

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
static size_t log_header(char *buf, size_t size, enum mtad_log_service svc,
			 enum mtad_log_level level)
{
	struct log_hold *h = atomic_load(&log_hold);
	char prog[MTAD_LOG_TAG_MAX + 32];
	struct tm tm;
	time_t now = time(NULL);
	size_t n = 0;
	int r;

	/* localtime_r, not localtime: the static result would race between threads. */
	if (localtime_r(&now, &tm) != NULL)
		n = strftime(buf, size, "%b %e %H:%M:%S ", &tm);
	r = snprintf(buf + n, size - n, "%s[%ld]: %s", program_name(svc, prog, sizeof(prog)),
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

/* log_emit_stderr - one finished line: held (loop thread, info) or written now. */
static void log_emit_stderr(enum mtad_log_level level, const char *line, size_t n)
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

/* syslog_priority - facility mail and the level's severity (RFC 3164 §4.1.1). */
static int syslog_priority(enum mtad_log_level level)
{
	switch (level) {
	case MTAD_LOG_WARNING: return LOG_MAIL | LOG_WARNING;
	case MTAD_LOG_ERROR: return LOG_MAIL | LOG_ERR;
	case MTAD_LOG_INFO: break;
	}
	return LOG_MAIL | LOG_INFO;
}

/*
 * log_emit - one finished line (n bytes at line, newline included; the
 * LOG_PRI_ROOM bytes before line are the caller's to use): to syslog
 * when that is on and the socket takes it at once, else to stderr.
 */
static void log_emit(enum mtad_log_level level, char *line, size_t n)
{
	int fd = atomic_load(&log_syslog.fd);
	char pri[LOG_PRI_ROOM];
	int plen;
	ssize_t sent;

	if (fd >= 0) {
		plen = snprintf(pri, sizeof(pri), "<%d>", syslog_priority(level));
		if (plen > 0 && (size_t)plen < sizeof(pri)) {
			memcpy(line - plen, pri, (size_t)plen);
			/* Without the newline: the datagram is the record. */
			do
				sent = sendto(fd, line - plen, (size_t)plen + n - 1,
					      MSG_DONTWAIT | MSG_NOSIGNAL,
					      (const struct sockaddr *)&log_syslog.addr,
					      log_syslog.addrlen);
			while (sent < 0 && errno == EINTR);
			if (sent >= 0)
				return;
		}
		/* No daemon any more, or one that is behind: stderr has it. */
	}
	log_emit_stderr(level, line, n);
}

/* syslog_address - path as a Unix socket address; -1 with err when it does not fit. */
static int syslog_address(const char *path, struct sockaddr_un *addr, socklen_t *len,
			  char *err, size_t errlen)
{
	size_t n = strlen(path);

	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	if (n == 0 || n >= sizeof(addr->sun_path)) {
		snprintf(err, errlen, "syslog socket \"%s\": a path of 1..%zu characters "
			 "is needed", path, sizeof(addr->sun_path) - 1);
		return -1;
	}
	memcpy(addr->sun_path, path, n + 1);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

/* mtad_log_to_syslog - see util.h. */
int mtad_log_to_syslog(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un addr;
	socklen_t len;
	int fd, probe, old;

	if (syslog_address(path, &addr, &len, err, errlen) != 0)
		return -1;
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "syslog socket: %s", strerror(errno));
		return -1;
	}
	/* Is anyone there? A connect says so without sending a line. */
	if ((probe = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(probe, (const struct sockaddr *)&addr, len) != 0) {
		snprintf(err, errlen, "cannot log to the syslog socket %s: %s (is a syslog "
			 "daemon or journald running? or set log = stderr)", path, strerror(errno));
		if (probe >= 0)
			close(probe);
		close(fd);
		return -1;
	}
	close(probe);
	log_syslog.addr = addr;
	log_syslog.addrlen = len;
	old = atomic_exchange(&log_syslog.fd, fd);
	if (old >= 0)
		close(old);
	return 0;
}

/* mtad_log_to_stderr - see util.h. */
void mtad_log_to_stderr(void)
{
	int old = atomic_exchange(&log_syslog.fd, -1);

	if (old >= 0)
		close(old);
}

/* mtad_log_syslog_active - see util.h. */
bool mtad_log_syslog_active(void)
{
	return atomic_load(&log_syslog.fd) >= 0;
}

/* mtad_log_hold_start - see util.h. */
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

/* mtad_log_hold_stop - see util.h. */
void mtad_log_hold_stop(void)
{
	struct log_hold *h = atomic_load(&log_hold);

	if (h == NULL)
		return;
	atomic_store(&log_hold, NULL);
	hold_flush(h);
	uv_close((uv_handle_t *)&h->prepare, (uv_close_cb)free);
}

/* mtad_vlog_svc - formats, sanitises and emits one line; keeps errno for %m. */
void mtad_vlog_svc(enum mtad_log_service svc, enum mtad_log_level level, const char *fmt,
		   va_list ap)
{
	char buf[LOG_PRI_ROOM + LOG_LINE_MAX];
	char *line = buf + LOG_PRI_ROOM;	/* log_emit may put "<PRI>" before it */
	int saved = errno;
	size_t n, room;
	int r;

	n = log_header(line, LOG_LINE_MAX - 1, svc, level);
	room = LOG_LINE_MAX - n;	/* the newline goes where vsnprintf puts its NUL */
	errno = saved;		/* so that %m reports the caller's error */
	r = vsnprintf(line + n, room, fmt, ap);
	if (r > 0)
		n += (size_t)r < room ? (size_t)r : room - 1;
	sanitize(line, n);
	line[n++] = '\n';
	log_emit(level, line, n);
	errno = saved;
}

/* mtad_vlog - see util.h: the daemon's plain lines. */
void mtad_vlog(enum mtad_log_level level, const char *fmt, va_list ap)
{
	mtad_vlog_svc(MTAD_SVC_DAEMON, level, fmt, ap);
}

/* mtad_log_svc - see util.h. */
void mtad_log_svc(enum mtad_log_service svc, enum mtad_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mtad_vlog_svc(svc, level, fmt, ap);
	va_end(ap);
}

/* mtad_log - see util.h. */
void mtad_log(enum mtad_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mtad_vlog(level, fmt, ap);
	va_end(ap);
}
