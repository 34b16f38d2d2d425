/*
 * log.c - unit tests for util/log.c: the line shape, level prefixes,
 * control characters from the network, truncation, errno for %m, the
 * hold buffer, and syslog: one RFC 3164 datagram per line with facility
 * mail, never held, and stderr when the socket does not take a line; the
 * program names of the services, log_tag and log_services.
 */
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/util.h"
#include "t/unit/tap.h"

/* logged - runs one mtad_log call with stderr on a pipe; returns what it wrote. */
static ssize_t logged(char *buf, size_t size, enum mtad_log_level level, const char *text)
{
	int p[2], saved = dup(STDERR_FILENO);
	ssize_t n;

	if (saved < 0 || pipe(p) < 0 || dup2(p[1], STDERR_FILENO) < 0)
		return -1;
	mtad_log(level, "%s", text);
	if (dup2(saved, STDERR_FILENO) < 0)
		return -1;
	close(saved);
	close(p[1]);
	n = read(p[0], buf, size - 1);
	close(p[0]);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

/* matches - buf against an extended regular expression. */
static int matches(const char *buf, const char *re)
{
	regex_t r;
	int m;

	if (regcomp(&r, re, REG_EXTENDED | REG_NOSUB) != 0)
		return 0;
	m = regexec(&r, buf, 0, NULL, 0) == 0;
	regfree(&r);
	return m;
}

struct log_case {
	enum mtad_log_level level;
	const char *text;
	const char *re;		/* after "Mon DD HH:MM:SS prog[pid]: " */
};

/* test_lines - each level and hostile text gives one well-formed line. */
static void test_lines(struct tap *t)
{
	static const struct log_case cases[] = {
		{ MTAD_LOG_INFO, "connect from [192.0.2.1]", "connect from \\[192\\.0\\.2\\.1\\]\n$" },
		{ MTAD_LOG_WARNING, "w", "warning: w\n$" },
		{ MTAD_LOG_ERROR, "e", "error: e\n$" },
		{ MTAD_LOG_INFO, "helo=<a\r\nNov 27 08:17:47 mtad[1]: forged>",
		  "helo=<a\\?\\?Nov 27 08:17:47 mtad\\[1\\]: forged>\n$" },
		{ MTAD_LOG_INFO, "tab\there del\x7f esc\x1b", "tab\\?here del\\? esc\\?\n$" },
		{ MTAD_LOG_INFO, "utf-8 \xc3\xa9 kept", "utf-8 \xc3\xa9 kept\n$" },
	};
	char buf[4096], re[256];
	size_t i;
	ssize_t n;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = logged(buf, sizeof(buf), cases[i].level, cases[i].text);
		snprintf(re, sizeof(re), "^[A-Z][a-z]{2} [ 1-3][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} "
			 "%s\\[%ld\\]: %s", program_invocation_short_name, (long)getpid(), cases[i].re);
		TAP_OK(t, n > 0 && matches(buf, re) && strchr(buf, '\n') == buf + n - 1,
		       "log line %zu is one line of the right shape", i);
	}
}

/* test_truncation - a huge message becomes one 2048-byte line. */
static void test_truncation(struct tap *t)
{
	char buf[4096], *big = malloc(10000);
	ssize_t n;

	if (big == NULL)
		return;
	memset(big, 'x', 9999);
	big[9999] = '\0';
	n = logged(buf, sizeof(buf), MTAD_LOG_INFO, big);
	TAP_OK(t, n == 2048 && buf[2047] == '\n' && buf[2046] == 'x',
	       "long text truncated to 2048 bytes ending in a newline (%zd)", n);
	free(big);
}

/* test_errno - %m formats the caller's errno, and errno survives the call. */
static void test_errno(struct tap *t)
{
	int p[2], saved = dup(STDERR_FILENO), after;
	char buf[4096];
	ssize_t n;

	if (saved < 0 || pipe(p) < 0 || dup2(p[1], STDERR_FILENO) < 0)
		return;
	errno = ENOENT;
	mtad_log(MTAD_LOG_ERROR, "open: %m");
	after = errno;
	if (dup2(saved, STDERR_FILENO) < 0)
		return;
	close(p[1]);
	close(saved);
	n = read(p[0], buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(p[0]);
	TAP_OK(t, after == ENOENT, "errno preserved");
	TAP_OK(t, matches(buf, "error: open: No such file or directory\n$"), "%%m sees the caller's errno");
}

/* pending - what the pipe holds now (non-blocking read), NUL-terminated. */
static ssize_t pending(int fd, char *buf, size_t size)
{
	ssize_t n = read(fd, buf, size - 1);

	if (n < 0)
		n = 0;
	buf[n] = '\0';
	return n;
}

/* noop_timer - a due timer: gives the loop one iteration to run. */
static void noop_timer(uv_timer_t *timer)
{
	(void)timer;
}

/* other_thread - logs one info line from a thread that is not the loop's. */
static void other_thread(void *arg)
{
	(void)arg;
	mtad_log(MTAD_LOG_INFO, "from another thread");
}

/*
 * test_hold - held info lines wait for the loop's prepare phase, in
 * order; a warning writes them first; other threads write at once;
 * stop writes what is left.
 */
static void test_hold(struct tap *t)
{
	int p[2], saved = dup(STDERR_FILENO);
	char buf[65536], re[128];
	uv_loop_t loop;
	uv_timer_t tick;
	uv_thread_t th;

	if (saved < 0 || pipe2(p, O_NONBLOCK) < 0 || dup2(p[1], STDERR_FILENO) < 0 ||
	    uv_loop_init(&loop) != 0 || mtad_log_hold_start(&loop) != 0) {
		TAP_OK(t, 0, "hold: set up");
		return;
	}
	mtad_log(MTAD_LOG_INFO, "one");
	mtad_log(MTAD_LOG_INFO, "two");
	TAP_OK(t, pending(p[0], buf, sizeof(buf)) == 0, "hold: info lines are held");
	/* One iteration (a due timer keeps the loop alive for it). */
	if (uv_timer_init(&loop, &tick) != 0 || uv_timer_start(&tick, noop_timer, 0, 0) != 0)
		TAP_OK(t, 0, "hold: timer");
	uv_run(&loop, UV_RUN_ONCE);
	pending(p[0], buf, sizeof(buf));
	TAP_OK(t, matches(buf, "\\]: one\n[^\n]*\\]: two\n$"),
	       "hold: both written, in order, before the loop waits");
	mtad_log(MTAD_LOG_INFO, "three");
	mtad_log(MTAD_LOG_WARNING, "four");
	pending(p[0], buf, sizeof(buf));
	TAP_OK(t, matches(buf, "\\]: three\n[^\n]*\\]: warning: four\n$"),
	       "hold: a warning is written at once, after the held line");
	if (uv_thread_create(&th, other_thread, NULL) == 0)
		uv_thread_join(&th);
	pending(p[0], buf, sizeof(buf));
	TAP_OK(t, matches(buf, "\\]: from another thread\n$"), "hold: other threads write at once");
	for (int i = 0; i < 400; i++)
		mtad_log(MTAD_LOG_INFO, "line %03d of a long burst, %s", i, "padding padding padding");
	TAP_OK(t, pending(p[0], buf, sizeof(buf)) > 8192, "hold: a full buffer is written out");
	mtad_log(MTAD_LOG_INFO, "last");
	mtad_log_hold_stop();
	pending(p[0], buf, sizeof(buf));
	snprintf(re, sizeof(re), "%s\\[%ld\\]: last\n$", program_invocation_short_name,
		 (long)getpid());
	TAP_OK(t, matches(buf, re), "hold: stop writes what is left, with the pid");
	mtad_log(MTAD_LOG_INFO, "after");
	TAP_OK(t, pending(p[0], buf, sizeof(buf)) > 0, "hold: after stop, lines go out at once");
	uv_close((uv_handle_t *)&tick, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);	/* the timer and the prepare handle close */
	TAP_OK(t, uv_loop_close(&loop) == 0, "hold: the loop closes cleanly");
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(p[0]);
	close(p[1]);
}

/* syslog_server - a datagram socket bound at path (as /dev/log is), non-blocking; -1 on failure. */
static int syslog_server(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* datagram - the next datagram waiting on fd, NUL-terminated; -1 when none. */
static ssize_t datagram(int fd, char *buf, size_t size)
{
	ssize_t n = recv(fd, buf, size - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	return n;
}

/*
 * test_syslog - log = syslog: each level's PRI with facility mail, the
 * stderr line's text without its newline, nothing on stderr, no holding;
 * a vanished daemon sends lines to stderr; back to stderr at the end.
 */
static void test_syslog(struct tap *t)
{
	static const struct { enum mtad_log_level level; const char *text, *re; } cases[] = {
		{ MTAD_LOG_INFO, "daemon started", "^<22>%s%s: daemon started$" },
		{ MTAD_LOG_WARNING, "w", "^<20>%s%s: warning: w$" },
		{ MTAD_LOG_ERROR, "e", "^<19>%s%s: error: e$" },
		{ MTAD_LOG_INFO, "helo=<a\r\n<20>forged>", "^<22>%s%s: helo=<a\\?\\?<20>forged>$" },
	};
	char dir[] = "/tmp/mtad-log-test-XXXXXX", path[128], buf[4096], re[256], err[512];
	char tag[64], ts[] = "[A-Z][a-z]{2} [ 1-3][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} ";
	int p[2], saved = dup(STDERR_FILENO), srv;
	uv_loop_t loop;
	size_t i;

	snprintf(tag, sizeof(tag), "%s\\[%ld\\]", program_invocation_short_name, (long)getpid());
	if (saved < 0 || mkdtemp(dir) == NULL || pipe2(p, O_NONBLOCK) < 0 ||
	    dup2(p[1], STDERR_FILENO) < 0) {
		TAP_OK(t, 0, "syslog: set up");
		return;
	}
	snprintf(path, sizeof(path), "%s/log", dir);
	TAP_OK(t, mtad_log_to_syslog(path, err, sizeof(err)) == -1 &&
	       strstr(err, path) && strstr(err, "No such file or directory") &&
	       strstr(err, "log = stderr"), "syslog: nobody at the socket is an error (%s)", err);
	TAP_OK(t, !mtad_log_syslog_active(), "syslog: ... and lines stay on stderr");
	memset(buf, 'a', 200);
	buf[0] = '/';
	buf[200] = '\0';
	TAP_OK(t, mtad_log_to_syslog(buf, err, sizeof(err)) == -1 && strstr(err, "1..107"),
	       "syslog: a path too long for a socket address is an error");
	if ((srv = syslog_server(path)) < 0) {
		TAP_OK(t, 0, "syslog: bind %s", path);
		return;
	}
	err[0] = '\0';
	TAP_OK(t, mtad_log_to_syslog(path, err, sizeof(err)) == 0 && mtad_log_syslog_active(),
	       "syslog: on %s", err);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mtad_log(cases[i].level, "%s", cases[i].text);
		snprintf(re, sizeof(re), cases[i].re, ts, tag);
		TAP_OK(t, datagram(srv, buf, sizeof(buf)) > 0 && matches(buf, re),
		       "syslog: datagram %zu: %s", i, buf);
	}
	TAP_OK(t, pending(p[0], buf, sizeof(buf)) == 0, "syslog: nothing went to stderr");

	/* The hold buffer is for stderr: a syslog line leaves at once. */
	if (uv_loop_init(&loop) != 0 || mtad_log_hold_start(&loop) != 0)
		TAP_OK(t, 0, "syslog: hold set up");
	mtad_log(MTAD_LOG_INFO, "not held");
	TAP_OK(t, datagram(srv, buf, sizeof(buf)) > 0 && matches(buf, "\\]: not held$"),
	       "syslog: an info line of the loop thread is sent at once, not held");

	/* The daemon goes away (a restart): lines go to stderr meanwhile... */
	close(srv);
	unlink(path);
	mtad_log(MTAD_LOG_WARNING, "while syslog is away");
	pending(p[0], buf, sizeof(buf));
	snprintf(re, sizeof(re), "^%s%s: warning: while syslog is away\n$", ts, tag);
	TAP_OK(t, matches(buf, re), "syslog: a line the socket refuses goes to stderr");
	/* ... and to the new one once it is there, without a reconnect. */
	if ((srv = syslog_server(path)) < 0) {
		TAP_OK(t, 0, "syslog: bind %s again", path);
		return;
	}
	mtad_log(MTAD_LOG_WARNING, "back");
	TAP_OK(t, datagram(srv, buf, sizeof(buf)) > 0 && matches(buf, "^<20>.*: warning: back$"),
	       "syslog: a restarted daemon gets the next line");
	mtad_log_hold_stop();
	uv_run(&loop, UV_RUN_DEFAULT);
	TAP_OK(t, uv_loop_close(&loop) == 0, "syslog: the loop closes cleanly");

	mtad_log_to_stderr();
	TAP_OK(t, !mtad_log_syslog_active(), "syslog: off again");
	mtad_log(MTAD_LOG_INFO, "on stderr");
	TAP_OK(t, datagram(srv, buf, sizeof(buf)) < 0 && pending(p[0], buf, sizeof(buf)) > 0 &&
	       matches(buf, "\\]: on stderr\n$"), "syslog: after mtad_log_to_stderr lines go to stderr");
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(p[0]);
	close(p[1]);
	close(srv);
	unlink(path);
	rmdir(dir);
}

/* logged_svc - one mtad_log_svc line on a pipe; what it wrote. */
static ssize_t logged_svc(char *buf, size_t size, enum mtad_log_service svc, const char *text)
{
	int p[2], saved = dup(STDERR_FILENO);
	ssize_t n;

	if (saved < 0 || pipe(p) < 0 || dup2(p[1], STDERR_FILENO) < 0)
		return -1;
	mtad_log_svc(svc, MTAD_LOG_WARNING, "%s", text);
	if (dup2(saved, STDERR_FILENO) < 0)
		return -1;
	close(saved);
	close(p[1]);
	n = read(p[0], buf, size - 1);
	close(p[0]);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

/* name_is - svc's line is "... PROG[pid]: warning: x" with exactly that PROG. */
static int name_is(enum mtad_log_service svc, const char *prog)
{
	char buf[512], re[256];

	if (logged_svc(buf, sizeof(buf), svc, "x") <= 0)
		return 0;
	snprintf(re, sizeof(re), "^[A-Z][a-z]{2} [ 1-3][0-9] [0-9:]{8} %s\\[%ld\\]: warning: x\n$",
		 prog, (long)getpid());
	return matches(buf, re);
}

/* test_services - Postfix's program names, then log_tag and log_services. */
static void test_services(struct tap *t)
{
	static const struct { enum mtad_log_service svc; const char *name; } names[] = {
		{ MTAD_SVC_SMTPD, "smtpd" }, { MTAD_SVC_SUBMISSION, "submission/smtpd" },
		{ MTAD_SVC_SMTPS, "smtps/smtpd" }, { MTAD_SVC_PICKUP, "pickup" },
		{ MTAD_SVC_CLEANUP, "cleanup" }, { MTAD_SVC_QMGR, "qmgr" },
		{ MTAD_SVC_SMTP, "smtp" }, { MTAD_SVC_LMTP, "lmtp" },
		{ MTAD_SVC_BOUNCE, "bounce" }, { MTAD_SVC_MTAQ, "mtaq" },
	};
	char prog[64];

	/* Before mtad_log_set_tag: the executable's name, services under "mtad". */
	TAP_OK(t, name_is(MTAD_SVC_DAEMON, program_invocation_short_name),
	       "services: the daemon's lines have the program's own name");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(prog, sizeof(prog), "mtad/%s", names[i].name);
		TAP_OK(t, strcmp(mtad_log_service_name(names[i].svc), names[i].name) == 0 &&
		       name_is(names[i].svc, prog), "services: %s", prog);
	}
	TAP_OK(t, mtad_log_tag_valid("mtad") && mtad_log_tag_valid("mail-2.relay_x") &&
	       !mtad_log_tag_valid("") && !mtad_log_tag_valid("a/b") &&
	       !mtad_log_tag_valid("a[1]") && !mtad_log_tag_valid("a b") &&
	       !mtad_log_tag_valid("a:") && !mtad_log_tag_valid("abcdefghijklmnopqrstuvwxyz0123456"),
	       "log_tag: letters, digits, . _ -, 1..32 of them");
	TAP_OK(t, mtad_log_set_tag("a/b", true) == -1 && name_is(MTAD_SVC_SMTPD, "mtad/smtpd"),
	       "log_tag: a bad tag is refused and changes nothing");
	TAP_OK(t, mtad_log_set_tag("relay", true) == 0 && name_is(MTAD_SVC_DAEMON, "relay") &&
	       name_is(MTAD_SVC_SUBMISSION, "relay/submission/smtpd"),
	       "log_tag = relay: relay[pid] and relay/submission/smtpd[pid]");
	TAP_OK(t, mtad_log_set_tag("relay", false) == 0 && name_is(MTAD_SVC_QMGR, "relay") &&
	       name_is(MTAD_SVC_DAEMON, "relay"), "log_services = no: relay[pid] on every line");
	TAP_OK(t, mtad_log_service_name((enum mtad_log_service)99)[0] == '\0',
	       "services: an unknown value has no name");
}

int main(void)
{
	struct tap t = { 0, 0 };

	test_lines(&t);
	test_truncation(&t);
	test_errno(&t);
	test_hold(&t);
	test_syslog(&t);
	test_services(&t);	/* last: it sets the tag */
	return tap_done(&t);
}
