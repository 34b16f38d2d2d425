/*
 * log.c - unit tests for mtad/log.c: the line shape, level prefixes,
 * control characters from the network, truncation, errno for %m.
 */
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mtad/mtad.h"
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

int main(void)
{
	struct tap t = { 0, 0 };

	test_lines(&t);
	test_truncation(&t);
	test_errno(&t);
	test_hold(&t);
	return tap_done(&t);
}
