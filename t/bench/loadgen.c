/*
 * loadgen.c - the SMTP load generator of `make bench` (t/bench/run).
 *
 *   loadgen [-s SESSIONS] [-m MESSAGES] [-l BYTES] [-r MSGS_PER_CONN]
 *           [-S | -T] [-a USER:PASSWORD] [-f FROM] [-t TO] [-e EHLO_NAME]
 *           HOST:PORT
 *
 * What it does: keeps SESSIONS connections busy (one thread with a
 * blocking socket per session) until MESSAGES messages have been sent
 * in total. Each connection reads the greeting, says EHLO (with -S:
 * STARTTLS, a TLS handshake without any certificate check, EHLO again;
 * with -T: implicit TLS, RFC 8314, the handshake right after connect and
 * before the greeting), with -a: AUTH PLAIN (RFC 4616, the credentials
 * as the initial response) after that EHLO, which must get 235, then
 * sends up to MSGS_PER_CONN messages and QUIT, and the session opens
 * the next connection. -T and -a with -r 1 is the submission client of
 * issue 13: connect, TLS, EHLO, AUTH, one message, QUIT. With
 * PIPELINING, MAIL FROM, RCPT TO and DATA go out in one write, and each
 * message with its final "." in one more.
 * Every message is BYTES octets (headers included, before dot-stuffing)
 * and has its own Message-ID. Latency is the time from the write of the
 * final "." to the complete 250 reply. It prints one line on stdout:
 *
 *   messages=2000 seconds=0.8123 rate=2462.1 p50_ms=1.92 p99_ms=7.40
 *   max_ms=12.10 errors=0 connections=200 conn_p50_ms=9.10
 *   conn_p99_ms=21.40 [auths=200] [tls=TLSv1.3/TLS_AES_...]
 *
 * messages counts the messages accepted with 250; seconds runs from the
 * first connect to the last reply read; conn_p50_ms/conn_p99_ms are the
 * latency of whole connections, from just before connect() to the
 * complete 221 reply to QUIT (connections that ended otherwise are
 * errors and not counted); auths (with -a) counts the 235 replies. Any
 * reply other than the one expected, any I/O error or timeout (30 s for
 * every wait) is an error:
 * the first few are printed on stderr, the connection is dropped, and
 * after a handful the run stops. The exit status is 0 only when every
 * message was accepted and nothing went wrong, 1 otherwise, 2 for bad
 * usage. With -a, every connection must have got 235 to AUTH.
 *
 * What it must not do: it is a benchmark tool, not a test, and not a
 * mailer. It connects only to a numeric loopback address (127.0.0.0/8
 * or ::1) and refuses anything else, so it can never send mail off the
 * machine. It checks no certificates (TLS is only there to measure its
 * cost). It does not retry: a message that fails is counted, not resent.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#define MAX_SESSIONS	1000
#define MAX_MESSAGES	10000000L
#define MAX_BYTES	(64L * 1024 * 1024)
#define MAX_REPLY	(64 * 1024)	/* one reply, all its lines */
#define IO_TIMEOUT	30		/* seconds, every read, write, connect */
#define SHOW_ERRORS	5		/* errors printed on stderr */
#define STOP_ERRORS	20		/* errors after which the run stops */

enum { EXT_PIPELINING = 1, EXT_SIZE = 2, EXT_STARTTLS = 4, EXT_AUTH_PLAIN = 8 };

static struct {
	long sessions, messages, bytes, per_conn;
	bool starttls, implicit_tls;
	const char *auth;		/* -a USER:PASSWORD, or NULL */
	const char *from, *to, *ehlo;
	struct sockaddr_storage addr;
	socklen_t addrlen;
} opt = { 1, 100, 1024, 1, false, false, NULL, "a@b.test", "u@bench.test", "loadgen.test",
	  { 0 }, 0 };

static char auth_line[1024];	/* "AUTH PLAIN base64(NUL user NUL password)\r\n" */
static uint64_t *conn_lat;	/* latencies of connections that ended with 221, ns */
static atomic_long nconn_lat, nauths;

static SSL_CTX *ssl_ctx;
static char *body;		/* the dot-stuffed body and ".\r\n" */
static size_t body_len;
static size_t hdr_len;		/* the same for every message */
static long start_sec;		/* for Message-IDs */
static uint64_t *lat;		/* latencies of accepted messages, ns */

static atomic_long next_msg, accepted, nlat, nerrors, nconns;
static atomic_bool stop;

static pthread_mutex_t info_lock = PTHREAD_MUTEX_INITIALIZER;
static char tls_info[128];	/* protocol/cipher of the first handshake */

struct session {
	pthread_t thread;
	bool connected;			/* first and last are valid */
	struct timespec first;		/* before its first connect */
	struct timespec last;		/* after its last complete reply */
	char *msg;			/* this session's message buffer */
};

struct conn {
	struct session *s;
	int fd;
	SSL *ssl;
	size_t off, len;
	char in[16384];
};

struct reply {
	int code;
	unsigned ext;			/* EHLO keywords seen */
	char text[200];			/* the first line, for error messages */
};

static void usage(void)
{
	fprintf(stderr, "usage: loadgen [-s SESSIONS] [-m MESSAGES] [-l BYTES] "
		"[-r MSGS_PER_CONN] [-S | -T] [-a USER:PASSWORD] [-f FROM] [-t TO] "
		"[-e EHLO_NAME] HOST:PORT\n"
		"  -S STARTTLS, -T implicit TLS, -a AUTH PLAIN after EHLO\n"
		"  HOST is a numeric loopback address: 127.0.0.0/8 or [::1]\n");
	exit(2);
}

static void now(struct timespec *ts)
{
	if (clock_gettime(CLOCK_MONOTONIC, ts) != 0) {
		perror("loadgen: clock_gettime");
		abort();
	}
}

static uint64_t ns_between(const struct timespec *a, const struct timespec *b)
{
	return (uint64_t)((b->tv_sec - a->tv_sec) * 1000000000LL + (b->tv_nsec - a->tv_nsec));
}

static bool before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* error - counts one error, prints the first few, stops the run after many */
static void report_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report_error(const char *fmt, ...)
{
	long n = atomic_fetch_add(&nerrors, 1) + 1;

	if (n >= STOP_ERRORS)
		atomic_store(&stop, true);
	if (n > SHOW_ERRORS)
		return;
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	fprintf(stderr, "loadgen: %s\n", buf);
}

/* ssl_why - the reason of a failed SSL_* call, for report_error() */
static const char *ssl_why(SSL *ssl, int rc, char *buf, size_t len)
{
	int e = SSL_get_error(ssl, rc);
	unsigned long q = ERR_get_error();

	if (e == SSL_ERROR_ZERO_RETURN)
		snprintf(buf, len, "connection closed (TLS close_notify)");
	else if (e == SSL_ERROR_SYSCALL && q == 0)
		snprintf(buf, len, "%s", errno == EAGAIN || errno == EWOULDBLOCK ? "timeout" :
			 errno == 0 ? "connection closed" : strerror(errno));
	else if (q != 0)
		ERR_error_string_n(q, buf, len);
	else
		snprintf(buf, len, "TLS error %d", e);
	ERR_clear_error();
	return buf;
}

static int conn_write(struct conn *c, const char *buf, size_t len, const char *what)
{
	while (len > 0) {
		if (c->ssl) {
			ERR_clear_error();
			int n = SSL_write(c->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
			if (n <= 0) {
				char why[256];
				report_error("writing %s: %s", what, ssl_why(c->ssl, n, why, sizeof why));
				return -1;
			}
			buf += n;
			len -= (size_t)n;
		} else {
			ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				report_error("writing %s: %s", what, errno == EAGAIN || errno == EWOULDBLOCK ?
				      "timeout" : strerror(errno));
				return -1;
			}
			buf += n;
			len -= (size_t)n;
		}
	}
	return 0;
}

/* conn_fill - reads what is there (at least one byte) into the empty buffer */
static int conn_fill(struct conn *c, const char *what)
{
	c->off = c->len = 0;
	for (;;) {
		if (c->ssl) {
			ERR_clear_error();
			int n = SSL_read(c->ssl, c->in, (int)sizeof c->in);
			if (n <= 0) {
				char why[256];
				report_error("waiting for the reply to %s: %s", what,
				      ssl_why(c->ssl, n, why, sizeof why));
				return -1;
			}
			c->len = (size_t)n;
			return 0;
		}
		ssize_t n = recv(c->fd, c->in, sizeof c->in, 0);
		if (n > 0) {
			c->len = (size_t)n;
			return 0;
		}
		if (n < 0 && errno == EINTR)
			continue;
		report_error("waiting for the reply to %s: %s", what, n == 0 ? "connection closed" :
		      errno == EAGAIN || errno == EWOULDBLOCK ? "timeout" : strerror(errno));
		return -1;
	}
}

/* auth_plain_listed - EXT_AUTH_PLAIN if PLAIN is among the mechanisms
 * after an EHLO "AUTH" keyword (" PLAIN LOGIN"), else 0 */
static unsigned auth_plain_listed(const char *s)
{
	while (*s == ' ') {
		s++;
		size_t n = strcspn(s, " ");
		if (n == 5 && strncasecmp(s, "PLAIN", n) == 0)
			return EXT_AUTH_PLAIN;
		s += n;
	}
	return 0;
}

static unsigned ehlo_keyword(const char *s)
{
	size_t n = strcspn(s, " ");

	if (n == 10 && strncasecmp(s, "PIPELINING", n) == 0)
		return EXT_PIPELINING;
	if (n == 4 && strncasecmp(s, "SIZE", n) == 0)
		return EXT_SIZE;
	if (n == 8 && strncasecmp(s, "STARTTLS", n) == 0)
		return EXT_STARTTLS;
	if (n == 4 && strncasecmp(s, "AUTH", n) == 0)
		return auth_plain_listed(s + n);
	return 0;
}

/*
 * read_reply - one complete reply, all its lines: the code, the EHLO
 * keywords among its lines and the text of the first line. A reply over
 * MAX_REPLY octets, a malformed line or lines with different codes are
 * errors. Lines longer than the line buffer are read but cut short.
 */
static int read_reply(struct conn *c, const char *what, struct reply *r)
{
	char line[1024];
	size_t total = 0;

	r->code = 0;
	r->ext = 0;
	r->text[0] = '\0';
	for (bool first = true;; first = false) {
		size_t ll = 0;
		for (;;) {
			if (c->off == c->len && conn_fill(c, what) < 0)
				return -1;
			const char *p = c->in + c->off;
			size_t avail = c->len - c->off;
			const char *nl = memchr(p, '\n', avail);
			size_t take = nl ? (size_t)(nl - p) + 1 : avail;
			total += take;
			if (total > MAX_REPLY) {
				report_error("the reply to %s is longer than %d octets", what, MAX_REPLY);
				return -1;
			}
			size_t copy = sizeof line - 1 - ll;
			if (copy > take)
				copy = take;
			memcpy(line + ll, p, copy);
			ll += copy;
			c->off += take;
			if (nl)
				break;
		}
		line[ll] = '\0';
		while (ll > 0 && (line[ll - 1] == '\n' || line[ll - 1] == '\r'))
			line[--ll] = '\0';
		if (ll < 3 || !isdigit((unsigned char)line[0]) || !isdigit((unsigned char)line[1]) ||
		    !isdigit((unsigned char)line[2]) || (ll > 3 && line[3] != ' ' && line[3] != '-')) {
			report_error("malformed reply to %s: \"%.100s\"", what, line);
			return -1;
		}
		int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
		if (first) {
			r->code = code;
			size_t tl = ll < sizeof r->text - 1 ? ll : sizeof r->text - 1;
			memcpy(r->text, line, tl);
			r->text[tl] = '\0';
		} else if (code != r->code) {
			report_error("reply to %s: line with code %d in a %d reply", what, code, r->code);
			return -1;
		}
		if (ll > 4)
			r->ext |= ehlo_keyword(line + 4);
		if (ll == 3 || line[3] == ' ')
			break;
	}
	now(&c->s->last);
	return 0;
}

/* expect - true if the reply's code is the one expected (0: any 2xx) */
static bool expect(const struct reply *r, int code, const char *what)
{
	if (code ? r->code == code : r->code / 100 == 2)
		return true;
	report_error("unexpected reply to %s: \"%s\"", what, r->text);
	return false;
}

static int command(struct conn *c, const char *line, int code, const char *what, struct reply *r)
{
	if (conn_write(c, line, strlen(line), what) < 0 || read_reply(c, what, r) < 0)
		return -1;
	return expect(r, code, what) ? 0 : -1;
}

static int conn_open(struct conn *c)
{
	struct timeval tv = { IO_TIMEOUT, 0 };
	int one = 1;

	c->fd = socket(opt.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		report_error("socket: %s", strerror(errno));
		return -1;
	}
	if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
	    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
	    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
		report_error("setsockopt: %s", strerror(errno));
		return -1;
	}
	if (!c->s->connected) {
		now(&c->s->first);
		c->s->last = c->s->first;
		c->s->connected = true;
	}
	if (connect(c->fd, (struct sockaddr *)&opt.addr, opt.addrlen) != 0) {
		report_error("connect: %s", errno == EINPROGRESS ? "timeout" : strerror(errno));
		return -1;
	}
	atomic_fetch_add(&nconns, 1);
	return 0;
}

/* conn_tls - the TLS handshake on the connection: after the 220 to
 * STARTTLS, or (implicit TLS) right after connect */
static int conn_tls(struct conn *c)
{
	char why[256];

	if (c->off != c->len) {
		report_error("the server sent more after its 220 to STARTTLS");
		return -1;
	}
	c->ssl = SSL_new(ssl_ctx);
	if (!c->ssl) {
		report_error("SSL_new: %s", ERR_error_string(ERR_get_error(), why));
		return -1;
	}
	if (SSL_set_fd(c->ssl, c->fd) != 1) {
		report_error("SSL_set_fd: %s", ERR_error_string(ERR_get_error(), why));
		return -1;
	}
	ERR_clear_error();
	int rc = SSL_connect(c->ssl);
	if (rc != 1) {
		report_error("TLS handshake: %s", ssl_why(c->ssl, rc, why, sizeof why));
		return -1;
	}
	pthread_mutex_lock(&info_lock);
	if (!tls_info[0])
		snprintf(tls_info, sizeof tls_info, "%s/%s", SSL_get_version(c->ssl),
			 SSL_CIPHER_get_name(SSL_get_current_cipher(c->ssl)));
	pthread_mutex_unlock(&info_lock);
	return 0;
}

static void conn_close(struct conn *c, bool clean)
{
	if (c->ssl) {
		/* After 221 the server may have closed already: a failed
		 * close_notify means nothing here. */
		if (clean)
			(void)SSL_shutdown(c->ssl);
		ERR_clear_error();
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0 && close(c->fd) != 0)
		report_error("close: %s", strerror(errno));
	c->fd = -1;
}

/* claim - the messages of one connection: per_conn of them (fewer at the
 * end) from *first on; 0 when all are taken */
static long claim(long *first)
{
	if (atomic_load(&stop))
		return 0;
	long i = atomic_fetch_add(&next_msg, opt.per_conn);	/* <= 1e7 + 1000 * 1e7 */
	if (i >= opt.messages)
		return 0;
	*first = i;
	return opt.messages - i < opt.per_conn ? opt.messages - i : opt.per_conn;
}

/* format_headers - the headers of message idx; always hdr_len octets */
static int format_headers(char *buf, size_t len, long idx)
{
	char date[64];
	struct tm tm;
	time_t t = time(NULL);

	if (!gmtime_r(&t, &tm) || strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0)
		return -1;
	return snprintf(buf, len,
			"From: <%s>\r\n"
			"To: <%s>\r\n"
			"Subject: loadgen message %010ld\r\n"
			"Message-ID: <%010ld.%ld.%ld@%s>\r\n"
			"Date: %s\r\n"
			"\r\n",
			opt.from, opt.to, idx, idx, (long)getpid(), start_sec, opt.ehlo, date);
}

/* send_message - one transaction; records its latency when it got 250 */
static int send_message(struct conn *c, unsigned ext, long idx)
{
	char cmds[3 * 600], hdr[1024];
	struct reply r[3];
	static const char *const what[3] = { "MAIL FROM", "RCPT TO", "DATA" };
	int len[3];
	char size[32] = "";

	if (ext & EXT_SIZE)
		snprintf(size, sizeof size, " SIZE=%ld", opt.bytes);
	len[0] = snprintf(cmds, 600, "MAIL FROM:<%s>%s\r\n", opt.from, size);
	len[1] = snprintf(cmds + len[0], 600, "RCPT TO:<%s>\r\n", opt.to);
	len[2] = snprintf(cmds + len[0] + len[1], 600, "DATA\r\n");
	if (ext & EXT_PIPELINING) {
		/* one write, then the three replies; all read before judging */
		if (conn_write(c, cmds, (size_t)(len[0] + len[1] + len[2]), "MAIL FROM") < 0)
			return -1;
		for (int i = 0; i < 3; i++)
			if (read_reply(c, what[i], &r[i]) < 0)
				return -1;
		for (int i = 0; i < 3; i++)
			if (!expect(&r[i], i == 2 ? 354 : 0, what[i]))
				return -1;
	} else {
		const char *p = cmds;
		for (int i = 0; i < 3; i++) {
			if (conn_write(c, p, (size_t)len[i], what[i]) < 0 ||
			    read_reply(c, what[i], &r[i]) < 0 || !expect(&r[i], i == 2 ? 354 : 0, what[i]))
				return -1;
			p += len[i];
		}
	}

	int n = format_headers(hdr, sizeof hdr, idx);
	if (n < 0 || (size_t)n != hdr_len) {
		report_error("message %ld: headers of %d octets, not %zu", idx, n, hdr_len);
		atomic_store(&stop, true);
		return -1;
	}
	memcpy(c->s->msg, hdr, hdr_len);	/* the body follows, copied once */
	if (conn_write(c, c->s->msg, hdr_len + body_len, "the message") < 0)
		return -1;
	struct timespec t0, t1;
	now(&t0);
	if (read_reply(c, "the end of data", &r[0]) < 0)
		return -1;
	now(&t1);
	if (!expect(&r[0], 250, "the end of data"))
		return -1;
	lat[atomic_fetch_add(&nlat, 1)] = ns_between(&t0, &t1);
	atomic_fetch_add(&accepted, 1);
	return 0;
}

static int ehlo(struct conn *c, struct reply *r)
{
	char line[600];

	snprintf(line, sizeof line, "EHLO %s\r\n", opt.ehlo);
	return command(c, line, 250, "EHLO", r);
}

/* auth - AUTH PLAIN with the initial response; only 235 will do. r holds
 * the EHLO reply on entry. */
static int auth(struct conn *c, struct reply *r)
{
	if (!(r->ext & EXT_AUTH_PLAIN)) {
		report_error("the server does not offer AUTH PLAIN after EHLO");
		atomic_store(&stop, true);
		return -1;
	}
	struct reply ar;
	if (command(c, auth_line, 235, "AUTH PLAIN", &ar) < 0)
		return -1;
	atomic_fetch_add(&nauths, 1);
	return 0;
}

/* connection - one connection: n messages from idx on */
static void connection(struct session *s, long idx, long n)
{
	struct conn c = { .s = s, .fd = -1 };
	struct reply r;
	struct timespec t0, t1;
	bool clean = false;

	now(&t0);
	if (conn_open(&c) < 0 || (opt.implicit_tls && conn_tls(&c) < 0) ||
	    read_reply(&c, "the greeting", &r) < 0 ||
	    !expect(&r, 220, "the greeting") || ehlo(&c, &r) < 0)
		goto out;
	if (opt.starttls) {
		if (!(r.ext & EXT_STARTTLS)) {
			report_error("the server does not offer STARTTLS");
			atomic_store(&stop, true);
			goto out;
		}
		if (command(&c, "STARTTLS\r\n", 220, "STARTTLS", &r) < 0 ||
		    conn_tls(&c) < 0 || ehlo(&c, &r) < 0)
			goto out;
	}
	if (opt.auth && auth(&c, &r) < 0)
		goto out;
	unsigned ext = r.ext;
	for (long i = 0; i < n; i++)
		if (atomic_load(&stop) || send_message(&c, ext, idx + i) < 0)
			goto out;
	if (command(&c, "QUIT\r\n", 221, "QUIT", &r) < 0)
		goto out;
	now(&t1);
	conn_lat[atomic_fetch_add(&nconn_lat, 1)] = ns_between(&t0, &t1);
	clean = true;
out:
	conn_close(&c, clean);
}

static void *session_main(void *arg)
{
	struct session *s = arg;

	long idx, n;

	while ((n = claim(&idx)) > 0)
		connection(s, idx, n);
	return NULL;
}

/* make_body - BYTES minus the headers in lines of 76 characters and CRLF,
 * every eighth line starting with a dot; then dot-stuffed, then ".\r\n" */
static int make_body(void)
{
	static const char chars[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
	char hdr[1024];
	int n = format_headers(hdr, sizeof hdr, 0);

	if (n < 0 || (size_t)n >= sizeof hdr) {
		fprintf(stderr, "loadgen: FROM, TO or EHLO_NAME too long\n");
		return -1;
	}
	hdr_len = (size_t)n;
	if (opt.bytes < n + 2) {
		fprintf(stderr, "loadgen: -l %ld is too small: the headers alone take %d octets\n",
			opt.bytes, n);
		return -1;
	}
	size_t left = (size_t)opt.bytes - hdr_len;
	/* stuffing adds at most one octet per line of 78 or fewer */
	body = malloc(left + left / 2 + 4);
	if (!body) {
		perror("loadgen: malloc");
		return -1;
	}
	size_t pos = 0, k = 0;
	for (unsigned line = 0; left > 0; line++) {
		/* 76 characters, but 77 when only 79 octets are left, so the
		 * last line never needs fewer than the 2 of its CRLF */
		size_t chars_in = left == 79 ? 77 : left >= 78 ? 76 : left - 2;
		for (size_t i = 0; i < chars_in; i++) {
			char ch = i == 0 && line % 8 == 1 ? '.' : chars[k++ % (sizeof chars - 1)];
			if (i == 0 && ch == '.')
				body[pos++] = '.';	/* dot-stuffing */
			body[pos++] = ch;
		}
		body[pos++] = '\r';
		body[pos++] = '\n';
		left -= chars_in + 2;
	}
	memcpy(body + pos, ".\r\n", 3);
	body_len = pos + 3;
	return 0;
}

/* make_auth_line - "AUTH PLAIN " and base64 of NUL USER NUL PASSWORD
 * (RFC 4616, no authzid) from -a USER:PASSWORD */
static int make_auth_line(const char *arg)
{
	const char *colon = strchr(arg, ':');
	unsigned char raw[520];
	size_t ul = colon ? (size_t)(colon - arg) : 0;
	size_t pl = colon ? strlen(colon + 1) : 0;

	if (!colon || ul == 0 || ul > 255 || pl > 255) {
		fprintf(stderr, "loadgen: -a wants USER:PASSWORD (each at most 255 octets)\n");
		return -1;
	}
	raw[0] = '\0';
	memcpy(raw + 1, arg, ul);
	raw[1 + ul] = '\0';
	memcpy(raw + 2 + ul, colon + 1, pl);
	char *p = auth_line + sizeof "AUTH PLAIN " - 1;
	memcpy(auth_line, "AUTH PLAIN ", sizeof "AUTH PLAIN " - 1);
	/* 4 * ceil(512 / 3) + 1 = 685 octets at most: fits auth_line */
	int n = EVP_EncodeBlock((unsigned char *)p, raw, (int)(2 + ul + pl));
	if (n <= 0) {
		fprintf(stderr, "loadgen: base64 of the credentials failed\n");
		return -1;
	}
	memcpy(p + n, "\r\n", 3);
	return 0;
}

static long number(const char *s, long min, long max, const char *name)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);

	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "loadgen: %s must be a number from %ld to %ld\n", name, min, max);
		usage();
	}
	return v;
}

/* a mailbox or host name that goes into a command line as it is */
static const char *word(const char *s, const char *name)
{
	if (!*s || strlen(s) > 255 || strpbrk(s, " \t\r\n<>")) {
		fprintf(stderr, "loadgen: bad %s \"%s\"\n", name, s);
		usage();
	}
	return s;
}

/* target - HOST:PORT or [HOST]:PORT, a numeric loopback address only */
static void target(const char *arg)
{
	char host[64];
	const char *colon = strrchr(arg, ':');

	if (!colon || (size_t)(colon - arg) >= sizeof host)
		usage();
	memcpy(host, arg, (size_t)(colon - arg));
	host[colon - arg] = '\0';
	long port = number(colon + 1, 1, 65535, "PORT");
	char *h = host;
	size_t hl = strlen(h);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h[hl - 1] = '\0';
		h++;
	}
	memset(&opt.addr, 0, sizeof opt.addr);
	struct sockaddr_in *a4 = (struct sockaddr_in *)&opt.addr;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&opt.addr;
	if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
		if ((ntohl(a4->sin_addr.s_addr) >> 24) != 127)
			goto refuse;
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		opt.addrlen = sizeof *a4;
	} else if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
		if (!IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr))
			goto refuse;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		opt.addrlen = sizeof *a6;
	} else {
		fprintf(stderr, "loadgen: \"%s\" is not a numeric address\n", h);
		usage();
	}
	return;
refuse:
	fprintf(stderr, "loadgen: refusing %s: loopback only (127.0.0.0/8, ::1)\n", h);
	exit(2);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* nearest rank: the smallest value with at least q of all at or below it */
static double pct_ms(const uint64_t *v, long n, double q)
{
	if (n == 0)
		return 0;
	long rank = (long)(q * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)v[rank - 1] / 1e6;
}

int main(int argc, char **argv)
{
	int c;

	while ((c = getopt(argc, argv, "s:m:l:r:STa:f:t:e:")) != -1) {
		switch (c) {
		case 's': opt.sessions = number(optarg, 1, MAX_SESSIONS, "-s SESSIONS"); break;
		case 'm': opt.messages = number(optarg, 1, MAX_MESSAGES, "-m MESSAGES"); break;
		case 'l': opt.bytes = number(optarg, 1, MAX_BYTES, "-l BYTES"); break;
		case 'r': opt.per_conn = number(optarg, 1, MAX_MESSAGES, "-r MSGS_PER_CONN"); break;
		case 'S': opt.starttls = true; break;
		case 'T': opt.implicit_tls = true; break;
		case 'a': opt.auth = optarg; break;
		case 'f': opt.from = word(optarg, "FROM"); break;
		case 't': opt.to = word(optarg, "TO"); break;
		case 'e': opt.ehlo = word(optarg, "EHLO_NAME"); break;
		default: usage();
		}
	}
	if (optind != argc - 1 || (opt.starttls && opt.implicit_tls))
		usage();
	target(argv[optind]);
	if (opt.auth && make_auth_line(opt.auth) < 0)
		return 2;

	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		perror("loadgen: signal");
		return 1;
	}
	start_sec = (long)time(NULL);
	if (make_body() < 0)
		return 2;

	int rc = 1;
	struct session *ss = calloc((size_t)opt.sessions, sizeof *ss);
	lat = malloc((size_t)opt.messages * sizeof *lat);
	/* every connection takes at least one message: no more connections than messages */
	conn_lat = malloc((size_t)opt.messages * sizeof *conn_lat);
	if (!ss || !lat || !conn_lat) {
		perror("loadgen: malloc");
		goto out;
	}
	for (long i = 0; i < opt.sessions; i++) {
		ss[i].msg = malloc(hdr_len + body_len);
		if (!ss[i].msg) {
			perror("loadgen: malloc");
			goto out;
		}
		memcpy(ss[i].msg + hdr_len, body, body_len);
	}
	if (opt.starttls || opt.implicit_tls) {
		ssl_ctx = SSL_CTX_new(TLS_client_method());
		if (!ssl_ctx || SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION) != 1) {
			fprintf(stderr, "loadgen: SSL_CTX_new: %s\n", ERR_error_string(ERR_get_error(), NULL));
			goto out;
		}
		/* a loopback benchmark: no certificate is checked */
		SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
	}

	long started = 0;
	for (; started < opt.sessions; started++) {
		int e = pthread_create(&ss[started].thread, NULL, session_main, &ss[started]);
		if (e != 0) {
			report_error("pthread_create: %s", strerror(e));
			atomic_store(&stop, true);
			break;
		}
	}
	for (long i = 0; i < started; i++) {
		int e = pthread_join(ss[i].thread, NULL);
		if (e != 0)
			report_error("pthread_join: %s", strerror(e));
	}

	struct timespec t0 = { 0, 0 }, t1 = { 0, 0 };
	bool any = false;
	for (long i = 0; i < started; i++) {
		if (!ss[i].connected)
			continue;
		if (!any || before(&ss[i].first, &t0))
			t0 = ss[i].first;
		if (!any || before(&t1, &ss[i].last))
			t1 = ss[i].last;
		any = true;
	}
	double secs = any ? (double)ns_between(&t0, &t1) / 1e9 : 0;
	long n = atomic_load(&nlat);
	qsort(lat, (size_t)n, sizeof *lat, cmp_u64);
	long nc = atomic_load(&nconn_lat);
	qsort(conn_lat, (size_t)nc, sizeof *conn_lat, cmp_u64);
	long ok = atomic_load(&accepted), errs = atomic_load(&nerrors);
	printf("messages=%ld seconds=%.4f rate=%.1f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f "
	       "errors=%ld connections=%ld conn_p50_ms=%.2f conn_p99_ms=%.2f",
	       ok, secs, secs > 0 ? (double)ok / secs : 0.0, pct_ms(lat, n, 0.50),
	       pct_ms(lat, n, 0.99), n ? (double)lat[n - 1] / 1e6 : 0.0, errs,
	       atomic_load(&nconns), pct_ms(conn_lat, nc, 0.50), pct_ms(conn_lat, nc, 0.99));
	if (opt.auth)
		printf(" auths=%ld", atomic_load(&nauths));
	if (opt.starttls || opt.implicit_tls)
		printf(" tls=%s", tls_info[0] ? tls_info : "none");
	printf("\n");
	if (fflush(stdout) != 0) {
		perror("loadgen: stdout");
		errs++;
	}
	if (ok != opt.messages)
		fprintf(stderr, "loadgen: %ld of %ld messages were not accepted\n",
			opt.messages - ok, opt.messages);
	/* every connection that started must have logged in (235) */
	bool auth_ok = !opt.auth || atomic_load(&nauths) == atomic_load(&nconns);
	if (!auth_ok)
		fprintf(stderr, "loadgen: %ld of %ld connections did not get 235 to AUTH\n",
			atomic_load(&nconns) - atomic_load(&nauths), atomic_load(&nconns));
	rc = errs == 0 && ok == opt.messages && auth_ok ? 0 : 1;
out:
	if (ss)
		for (long i = 0; i < opt.sessions; i++)
			free(ss[i].msg);
	free(ss);
	free(lat);
	free(conn_lat);
	free(body);
	SSL_CTX_free(ssl_ctx);
	return rc;
}
