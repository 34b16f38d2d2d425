/*
 * holdconns.c - opens N idle SMTP connections to one server and holds
 * them, for t/bench/idle-memory. Each connection, one after the other:
 *   plain     greeting, EHLO
 *   starttls  greeting, EHLO, STARTTLS, TLS handshake, EHLO
 *   tls       TLS handshake (implicit TLS), greeting, EHLO
 * then it stays open, silent. When all N were tried it prints one line
 *   held H failed F [first failure: ...]
 * on stdout and waits for SIGTERM/SIGINT, then exits (the kernel closes
 * the sockets).
 *
 *   holdconns [-m plain|starttls|tls] [-n N] [-a 127.0.0.1] [-t SECS] PORT
 *
 * It raises its own descriptor limit to fit N (the hard limit too when
 * run as root). Must not: send mail, verify certificates (the servers
 * use throwaway self-signed ones), or talk to anything but the given
 * address; a failed connection is counted and closed, never retried.
 * A bench tool, not part of mtad: it blocks, on purpose, one connection
 * at a time (with a timeout per step).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

enum mode { PLAIN, STARTTLS, TLS };

struct held {
	int fd;
	SSL *ssl;	/* NULL in plaintext */
};

struct opts {
	enum mode mode;
	unsigned n;
	const char *addr;
	int port;
	int timeout;
};

/* raise_nofile - room for n sockets (and a few more). */
static void raise_nofile(unsigned n)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)n + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		perror("holdconns: getrlimit");
		return;
	}
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want && geteuid() == 0) {
		struct rlimit up = { want, want };

		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			return;
		perror("holdconns: raising the hard descriptor limit");
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			perror("holdconns: setrlimit");
	}
}

/* tcp_connect - a blocking socket with send/receive timeouts, or -1. */
static int tcp_connect(const struct opts *o, char *why, size_t whylen)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)o->port) };
	struct timeval tv = { .tv_sec = o->timeout };
	int fd, one = 1;

	if (inet_pton(AF_INET, o->addr, &sin.sin_addr) != 1) {
		snprintf(why, whylen, "bad address %s", o->addr);
		return -1;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(why, whylen, "socket: %s", strerror(errno));
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
	    connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		snprintf(why, whylen, "connect: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* io_read - some bytes, from the socket or through TLS; <= 0 on EOF/error. */
static int io_read(const struct held *h, char *buf, size_t len)
{
	size_t n = 0;

	if (h->ssl == NULL) {
		ssize_t r;

		do
			r = recv(h->fd, buf, len, 0);
		while (r < 0 && errno == EINTR);
		return (int)r;
	}
	if (SSL_read_ex(h->ssl, buf, len, &n) != 1) {
		ERR_clear_error();
		return -1;
	}
	return (int)n;
}

/* io_write - all of the bytes, or -1. */
static int io_write(const struct held *h, const char *buf, size_t len)
{
	while (len > 0) {
		size_t n = 0;

		if (h->ssl != NULL) {
			if (SSL_write_ex(h->ssl, buf, len, &n) != 1) {
				ERR_clear_error();
				return -1;
			}
		} else {
			ssize_t r = send(h->fd, buf, len, MSG_NOSIGNAL);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return -1;
			n = (size_t)r;
		}
		buf += n;
		len -= n;
	}
	return 0;
}

/*
 * reply - reads one complete SMTP reply (up to its "NNN " line) and
 * checks its code. The server sends nothing unasked, so nothing past
 * the last line can be in the same read.
 */
static int reply(const struct held *h, const char *code, const char *step,
		 char *why, size_t whylen)
{
	char buf[4096];
	size_t have = 0;

	for (;;) {
		char *line = buf, *eol;
		int r;

		if (have == sizeof(buf) - 1) {
			snprintf(why, whylen, "%s: reply too long", step);
			return -1;
		}
		r = io_read(h, buf + have, sizeof(buf) - 1 - have);
		if (r <= 0) {
			snprintf(why, whylen, "%s: %s", step,
				 r == 0 ? "connection closed" : "read failed or timed out");
			return -1;
		}
		have += (size_t)r;
		buf[have] = '\0';
		while ((eol = strstr(line, "\r\n")) != NULL) {
			if (strncmp(line, code, 3) != 0) {
				*eol = '\0';
				snprintf(why, whylen, "%s: %.200s", step, line);
				return -1;
			}
			if (line[3] == ' ')
				return 0;
			line = eol + 2;
		}
	}
}

/* handshake - TLS on h->fd, certificate not checked. */
static int handshake(struct held *h, SSL_CTX *ctx, char *why, size_t whylen)
{
	h->ssl = SSL_new(ctx);
	if (h->ssl == NULL || SSL_set_fd(h->ssl, h->fd) != 1 || SSL_connect(h->ssl) != 1) {
		unsigned long e = ERR_peek_error();

		snprintf(why, whylen, "TLS handshake: %s",
			 e != 0 ? ERR_reason_error_string(e) : "failed");
		ERR_clear_error();
		return -1;
	}
	return 0;
}

/* one - one connection up to its idle state; 0, or -1 and why. */
static int one(const struct opts *o, SSL_CTX *ctx, struct held *h, char *why, size_t whylen)
{
	static const char ehlo[] = "EHLO idle.bench.test\r\n";

	h->ssl = NULL;
	h->fd = tcp_connect(o, why, whylen);
	if (h->fd < 0)
		return -1;
	if (o->mode == TLS && handshake(h, ctx, why, whylen) != 0)
		return -1;
	if (reply(h, "220", "greeting", why, whylen) != 0 ||
	    io_write(h, ehlo, sizeof(ehlo) - 1) != 0 ||
	    reply(h, "250", "EHLO", why, whylen) != 0)
		return -1;
	if (o->mode != STARTTLS)
		return 0;
	if (io_write(h, "STARTTLS\r\n", 10) != 0 ||
	    reply(h, "220", "STARTTLS", why, whylen) != 0 ||
	    handshake(h, ctx, why, whylen) != 0 ||
	    io_write(h, ehlo, sizeof(ehlo) - 1) != 0 ||
	    reply(h, "250", "EHLO after STARTTLS", why, whylen) != 0)
		return -1;
	return 0;
}

static void drop(struct held *h)
{
	SSL_free(h->ssl);
	if (h->fd >= 0)
		close(h->fd);
	h->ssl = NULL;
	h->fd = -1;
}

static int usage(void)
{
	fprintf(stderr, "usage: holdconns [-m plain|starttls|tls] [-n N] [-a ADDR] [-t SECS] PORT\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct opts o = { .mode = PLAIN, .n = 1000, .addr = "127.0.0.1", .timeout = 30 };
	SSL_CTX *ctx = NULL;
	struct held *held;
	char first[300] = "";
	unsigned ok = 0, failed = 0;
	sigset_t stop, old;
	int opt, sig;

	while ((opt = getopt(argc, argv, "m:n:a:t:")) != -1) {
		switch (opt) {
		case 'm':
			if (strcmp(optarg, "plain") == 0)
				o.mode = PLAIN;
			else if (strcmp(optarg, "starttls") == 0)
				o.mode = STARTTLS;
			else if (strcmp(optarg, "tls") == 0)
				o.mode = TLS;
			else
				return usage();
			break;
		case 'n': o.n = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'a': o.addr = optarg; break;
		case 't': o.timeout = atoi(optarg); break;
		default: return usage();
		}
	}
	if (optind != argc - 1 || o.n == 0 || o.timeout <= 0)
		return usage();
	o.port = atoi(argv[optind]);
	if (o.port <= 0 || o.port > 65535)
		return usage();

	/* SIGTERM/SIGINT are taken by sigwait at the end, not by a handler. */
	if (sigemptyset(&stop) != 0 || sigaddset(&stop, SIGTERM) != 0 ||
	    sigaddset(&stop, SIGINT) != 0 || sigprocmask(SIG_BLOCK, &stop, &old) != 0) {
		perror("holdconns: sigprocmask");
		return 1;
	}
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		perror("holdconns: signal");
		return 1;
	}
	raise_nofile(o.n);
	if (o.mode != PLAIN) {
		ctx = SSL_CTX_new(TLS_client_method());
		if (ctx == NULL) {
			fprintf(stderr, "holdconns: SSL_CTX_new failed\n");
			return 1;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		/* The client's own memory is not measured, but 10,000 of
		 * them should not need 10,000 x 34 KB of record buffers. */
		SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	}
	held = calloc(o.n, sizeof(*held));
	if (held == NULL) {
		fprintf(stderr, "holdconns: out of memory\n");
		return 1;
	}
	for (unsigned i = 0; i < o.n; i++) {
		char why[256];

		if (one(&o, ctx, &held[i], why, sizeof(why)) == 0) {
			ok++;
			continue;
		}
		drop(&held[i]);
		if (failed++ == 0)
			snprintf(first, sizeof(first), "connection %u: %s", i + 1, why);
	}
	if (printf("held %u failed %u%s%s\n", ok, failed, first[0] ? " first failure: " : "",
		   first) < 0 || fflush(stdout) != 0)
		return 1;
	if (sigwait(&stop, &sig) != 0)
		return 1;
	/* Exit closes them all; freeing 10,000 SSL objects first would
	 * only delay the servers' view of the close. */
	return 0;
}
