/*
 * sendmail.c - sendmail(1), mailq(1) and newaliases(1) for mtad: the
 * command line every Unix program hands mail to (cron, mail(1), PHP's
 * mail(), logcheck), with the options Debian's programs use as Postfix's
 * sendmail(1) documents them. One program; the name it is called by
 * picks the mode (mailq = -bp, newaliases = -bi).
 *
 * A message goes to mtad over its local socket (local_socket in
 * mtad.conf) in SMTP: mtad reads the caller's uid from the kernel, so
 * nothing here is trusted to say who sent it, and this program needs no
 * privilege. When mtad is not running the message is not lost silently:
 * sendmail exits 75 (EX_TEMPFAIL) and says so, and the caller keeps it
 * (cron logs it, mail(1) saves dead.letter). No drop directory: one
 * writable by every user needs a setgid helper (Postfix's postdrop) and a
 * second way into the queue; the socket keeps a single one, with the
 * queue's durable commit before the 250.
 *
 * Must not: block for ever (every socket wait has a timeout), send a
 * message whose recipients it could not all hand over (any refused
 * recipient stops the whole message, with the exit code saying why), or
 * let a lone "." on stdin end the message under -i / -oi.
 *
 * Follows: RFC 5321 (the SMTP dialog), RFC 5322 §3.6 (To, Cc, Bcc; a
 * Bcc: line is removed under -t), RFC 6409 §8.1 (unqualified addresses
 * get the host name), sysexits.h for exit codes.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include "local/local.h"
#include "policy/policy.h"
#include "util/util.h"

#define DEFAULT_CONFIG "/etc/mtad/mtad.conf"
#define SM_TIMEOUT_S 300	/* any one wait for mtad (RFC 5321 §4.5.3.2's order) */
#define SM_HEADER_MAX (1024 * 1024)	/* the header section kept for -t */
#define SM_RCPT_MAX 1000	/* recipients of one message */
#define SM_LINE_MAX 1000	/* an SMTP reply line we read */

enum sm_mode { MODE_DELIVER, MODE_SMTP, MODE_QUEUE, MODE_FLUSH, MODE_ALIASES };

struct sm_opts {
	enum sm_mode mode;
	const char *config;
	const char *sender;	/* -f / -r */
	const char *fullname;	/* -F */
	bool from_headers;	/* -t */
	bool dot_ok;		/* -i / -oi: a lone "." is data */
	bool verbose;		/* -v: the dialog on stderr */
	char **argv_rcpt;	/* the recipients on the command line */
	int nargv_rcpt;
};

/* A growing buffer of bytes. */
struct sm_buf {
	char *p;
	size_t len, cap;
};

struct sm_conn {
	int fd;
	bool verbose;
	char in[4096];
	size_t inlen;
};

static int buf_add(struct sm_buf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 8192;
		char *grown;

		while (cap < b->len + n + 1)
			cap *= 2;
		if (!(grown = realloc(b->p, cap)))
			return -1;
		b->p = grown;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: sendmail [-t] [-i] [-f sender] [-F fullname] [-C config] "
		"[-bm | -bs | -bp | -bi | -q] [recipient ...]\n");
}

/* short_arg - the value of an option that takes one: glued ("-fuser") or the next word. */
static const char *short_arg(int argc, char **argv, int *i, const char *rest)
{
	if (rest[0])
		return rest;
	if (*i + 1 < argc)
		return argv[++*i];
	return NULL;
}

/* parse_b - "-bX": the mode; -1 for one mtad does not have. */
static int parse_b(const char *what, struct sm_opts *o)
{
	if (strcmp(what, "m") == 0)
		o->mode = MODE_DELIVER;
	else if (strcmp(what, "s") == 0)
		o->mode = MODE_SMTP;
	else if (strcmp(what, "p") == 0)
		o->mode = MODE_QUEUE;
	else if (strcmp(what, "i") == 0)
		o->mode = MODE_ALIASES;
	else {
		fprintf(stderr, "sendmail: -b%s is not supported by mtad%s\n", what,
			strcmp(what, "d") == 0 ? " (the daemon is mtad itself: systemctl start mtad)"
					       : "");
		return -1;
	}
	return 0;
}

/*
 * parse_args - Postfix's sendmail options. Taking a value: -f -r -F -C
 * -B -N -R -V -X -L -O -h (-o too, as -oX); the last ones accepted and
 * ignored, as Postfix ignores what it has no use for. Returns 0, or -1
 * after saying what is wrong.
 */
static int parse_args(int argc, char **argv, struct sm_opts *o)
{
	int i;

	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
		const char *a = argv[i], *rest = a + 2, *v;

		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		switch (a[1]) {
		case 't': o->from_headers = true; break;
		case 'i': o->dot_ok = true; break;
		case 'v': o->verbose = true; break;
		case 'q': o->mode = MODE_FLUSH; break;
		case 'b':
			if (parse_b(rest, o) != 0)
				return -1;
			break;
		case 'o':
			/* -oi as -i; -oem, -oee, -odb, -om and the rest: accepted. */
			if (strcmp(rest, "i") == 0)
				o->dot_ok = true;
			else if (rest[0] == '\0' && i + 1 < argc)
				i++;
			break;
		case 'f': case 'r': case 'F': case 'C':
		case 'B': case 'N': case 'R': case 'V': case 'X': case 'L': case 'O': case 'h':
			if (!(v = short_arg(argc, argv, &i, rest))) {
				fprintf(stderr, "sendmail: option -%c needs a value\n", a[1]);
				return -1;
			}
			if (a[1] == 'f' || a[1] == 'r')
				o->sender = v;
			else if (a[1] == 'F')
				o->fullname = v;
			else if (a[1] == 'C')
				o->config = v;
			break;
		case 'n': case 'm': case 'U': case 'G': case 'A': case 'd':
			break;	/* sendmail's, without meaning here */
		default:
			fprintf(stderr, "sendmail: unknown option %s\n", a);
			return -1;
		}
	}
	o->argv_rcpt = argv + i;
	o->nargv_rcpt = argc - i;
	return 0;
}

/* ---- the connection to mtad ---- */

/* sm_connect - the local socket; -1 after saying why (mtad not running). */
static int sm_connect(struct sm_conn *c, const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = SM_TIMEOUT_S };

	if (path[0] == '\0' || strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "sendmail: local_socket is not set in the configuration: "
			"mtad takes no local mail\n");
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
	    connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		fprintf(stderr, "sendmail: cannot reach mtad at %s: %s: is mtad running? "
			"The message was not sent; try again later\n", path, strerror(errno));
		if (c->fd >= 0)
			(void)close(c->fd);
		c->fd = -1;
		return -1;
	}
	return 0;
}

/* sm_write - all of p, or -1. */
static int sm_write(struct sm_conn *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(c->fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* sm_line - one reply line (CRLF removed) into out; -1 on EOF, error or timeout. */
static int sm_line(struct sm_conn *c, char *out, size_t size)
{
	for (;;) {
		char *nl = memchr(c->in, '\n', c->inlen);
		ssize_t r;

		if (nl) {
			size_t n = (size_t)(nl - c->in) + 1, keep = n - 1;

			if (keep > 0 && c->in[keep - 1] == '\r')
				keep--;
			snprintf(out, size, "%.*s", (int)keep, c->in);
			memmove(c->in, c->in + n, c->inlen - n);
			c->inlen -= n;
			return 0;
		}
		if (c->inlen == sizeof(c->in))
			return -1;	/* a line longer than any reply may be */
		r = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		c->inlen += (size_t)r;
	}
}

/* sm_reply - a whole (multi-line) reply: its code, the last line in text; -1 when none came. */
static int sm_reply(struct sm_conn *c, char *text, size_t size)
{
	char line[SM_LINE_MAX + 1];

	do {
		if (sm_line(c, line, sizeof(line)) != 0 || strlen(line) < 3) {
			snprintf(text, size, "mtad closed the connection or did not answer");
			return -1;
		}
		if (c->verbose)
			fprintf(stderr, "<<< %s\n", line);
	} while (line[3] == '-');
	snprintf(text, size, "%s", line);
	return atoi(line);
}

/* sm_command - sends "cmd\r\n", reads the reply; its code, or -1. */
static int sm_command(struct sm_conn *c, const char *cmd, char *text, size_t size)
{
	if (c->verbose)
		fprintf(stderr, ">>> %s\n", cmd);
	if (sm_write(c, cmd, strlen(cmd)) != 0 || sm_write(c, "\r\n", 2) != 0) {
		snprintf(text, size, "cannot write to mtad: %s", strerror(errno));
		return -1;
	}
	return sm_reply(c, text, size);
}

/* exit_for - the sysexits code for a failed step: 4xx or no answer is
 * "try again later" (75); a 5xx the step's own code. */
static int exit_for(int code, int permanent)
{
	return code >= 500 && code < 600 ? permanent : EX_TEMPFAIL;
}

/* ---- the message ---- */

/* qualify - addr with "@hostname" when it has no domain (RFC 6409 §8.1). */
static char *qualify(const char *addr, const char *hostname)
{
	char *out;

	if (strchr(addr, '@') || addr[0] == '\0')
		return strdup(addr);
	if (asprintf(&out, "%s@%s", addr, hostname) < 0)
		return NULL;
	return out;
}

/*
 * read_line - the next line of stdin into b (LF, CRLF or nothing at EOF
 * ending it; the line is added with CRLF). 1 for a line, 0 at the end
 * (EOF, or a lone "." without -i), -1 on a read error.
 */
static int read_line(FILE *in, bool dot_ok, struct sm_buf *b, bool *at_end)
{
	char chunk[4096];
	size_t start = b->len;
	bool got = false;

	while (fgets(chunk, sizeof(chunk), in)) {
		size_t n = strlen(chunk);

		got = true;
		if (buf_add(b, chunk, n) != 0)
			return -1;
		if (n > 0 && chunk[n - 1] == '\n')
			break;
	}
	if (ferror(in))
		return -1;
	if (!got) {
		*at_end = true;
		return 0;
	}
	/* Whatever ended it, the line ends in CRLF now. */
	while (b->len > start && (b->p[b->len - 1] == '\n' || b->p[b->len - 1] == '\r'))
		b->len--;
	if (!dot_ok && b->len - start == 1 && b->p[start] == '.') {
		b->len = start;
		*at_end = true;
		return 0;
	}
	return buf_add(b, "\r\n", 2) == 0 ? 1 : -1;
}

/* header_is - is the field at p (a header line) named name? */
static bool header_is(const char *p, const char *name)
{
	size_t n = strlen(name);

	return strncasecmp(p, name, n) == 0 && p[n] == ':';
}

struct sm_message {
	struct sm_buf header;	/* the header section, CRLF lines, Bcc: removed under -t */
	bool header_done;	/* the empty line came (it is the start of body) */
	bool at_end;		/* stdin is over */
	bool has_from;
	char **rcpt;
	size_t nrcpt;
};

/* add_rcpt - one more envelope recipient, qualified; -1 when too many or out of memory. */
static int add_rcpt(struct sm_message *m, const char *addr, const char *hostname)
{
	char *q;

	for (size_t i = 0; i < m->nrcpt; i++)
		if (strcasecmp(m->rcpt[i], addr) == 0)
			return 0;
	if (m->nrcpt == SM_RCPT_MAX || !(q = qualify(addr, hostname)))
		return -1;
	m->rcpt[m->nrcpt++] = q;
	return 0;
}

/* field_rcpts - the addresses of one To/Cc/Bcc field's value (len bytes, unfolded here). */
static int field_rcpts(struct sm_message *m, const char *start, size_t len, const char *hostname)
{
	char (*addrs)[SMTP_PATH_MAX] = malloc(SM_RCPT_MAX * sizeof(*addrs));
	char *value = malloc(len + 1);
	size_t n = 0, found = 0;
	int rc = -1;

	if (addrs && value) {
		for (size_t i = 0; i < len; i++)
			if (start[i] != '\r' && start[i] != '\n')
				value[n++] = start[i];
		value[n] = '\0';
		rc = policy_from_addresses(value, n, addrs, SM_RCPT_MAX, &found);
	}
	for (size_t i = 0; rc == 0 && i < found; i++)
		rc = add_rcpt(m, addrs[i], hostname);
	free(value);
	free(addrs);
	return rc;
}

/* buf_splice - b's bytes [at, at + old) become the len bytes of p. */
static int buf_splice(struct sm_buf *b, size_t at, size_t old, const char *p, size_t len)
{
	size_t tail = b->len - at - old;

	if (len > old && buf_add(b, p, len - old) != 0)	/* room: grown, then moved */
		return -1;
	memmove(b->p + at + len, b->p + at + old, tail);
	memcpy(b->p + at, p, len);
	b->len = at + len + tail;
	b->p[b->len] = '\0';
	return 0;
}

/*
 * field_done - the field at m->header[field .. *start) is complete: with
 * -t its recipients are taken and a Bcc: removed. *start (the next line)
 * moves with it. 0 or an exit code. (Bare names in the header get the
 * host name from mtad, as every submission's do: session_submit.c.)
 */
static int field_done(const struct sm_opts *o, struct sm_message *m, size_t field, size_t *start,
		      bool bcc, const char *hostname)
{
	const char *f = m->header.p + field;
	size_t value = (size_t)(strchr(f, ':') + 1 - m->header.p);

	if (o->from_headers && (header_is(f, "to") || header_is(f, "cc") || bcc) &&
	    field_rcpts(m, m->header.p + value, *start - value, hostname) != 0) {
		fprintf(stderr, "sendmail: too many recipients, or one that is too long, in the "
			"message header\n");
		return EX_DATAERR;
	}
	if (bcc && o->from_headers) {
		if (buf_splice(&m->header, field, *start - field, "", 0) != 0)
			return EX_OSERR;
		*start = field;
	}
	return 0;
}

/* body_starts - line (at start) is not a header field: the body starts
 * there, after the empty line the writer left out (`echo hi | sendmail`). */
static int body_starts(struct sm_message *m, size_t start)
{
	m->header_done = true;
	return buf_splice(&m->header, start, 0, "\r\n", 2) == 0 ? 0 : EX_OSERR;
}

/*
 * read_header - the header section from stdin, field by field (see
 * field_done). Returns 0, or an exit code after saying what went wrong.
 */
static int read_header(FILE *in, const struct sm_opts *o, struct sm_message *m,
		       const char *hostname)
{
	size_t field = 0;	/* start of the field being read in m->header */
	bool bcc = false;

	for (;;) {
		size_t start = m->header.len;
		int r = read_line(in, o->dot_ok, &m->header, &m->at_end), rc;
		bool continued;

		if (r < 0) {
			fprintf(stderr, "sendmail: cannot read the message: %s\n", strerror(errno));
			return EX_IOERR;
		}
		if (m->header.len > SM_HEADER_MAX) {
			fprintf(stderr, "sendmail: the message's header is over %d bytes\n",
				SM_HEADER_MAX);
			return EX_DATAERR;
		}
		continued = r > 0 && start > 0 && (m->header.p[start] == ' ' || m->header.p[start] == '\t');
		if (!continued && field < start &&
		    (rc = field_done(o, m, field, &start, bcc, hostname)) != 0)
			return rc;
		if (r == 0)
			return 0;
		if (m->header.p[start] == '\r' && m->header.p[start + 1] == '\n') {
			m->header_done = true;	/* the empty line stays: the body follows */
			return 0;
		}
		if (continued)
			continue;
		if (!memchr(m->header.p + start, ':', m->header.len - start))
			return body_starts(m, start);
		field = start;
		bcc = header_is(m->header.p + start, "bcc");
		m->has_from |= header_is(m->header.p + start, "from");
	}
}

/* send_data - DATA: the header, a From: when there is none, then the rest of stdin, dot-stuffed. */
static int send_data(struct sm_conn *c, FILE *in, const struct sm_opts *o, struct sm_message *m,
		     const char *sender)
{
	struct sm_buf line = { 0 };
	const char *p = m->header.p ? m->header.p : "", *end = p + m->header.len;
	int rc = 0;

	if (!m->has_from) {
		char *from;
		int n = o->fullname ? asprintf(&from, "From: %s <%s>\r\n", o->fullname, sender)
				    : asprintf(&from, "From: %s\r\n", sender);

		if (n < 0 || sm_write(c, from, (size_t)n) != 0)
			rc = -1;
		if (n >= 0)
			free(from);
	}
	/* The header lines, then the rest of stdin a line at a time. */
	while (rc == 0 && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);

		if ((p[0] == '.' && sm_write(c, ".", 1) != 0) || sm_write(c, p, n) != 0)
			rc = -1;
		p += n;
	}
	while (rc == 0 && !m->at_end) {
		line.len = 0;
		int r = read_line(in, o->dot_ok, &line, &m->at_end);

		if (r < 0) {
			fprintf(stderr, "sendmail: cannot read the message: %s\n", strerror(errno));
			rc = -2;
		} else if (r > 0 && ((line.p[0] == '.' && sm_write(c, ".", 1) != 0) ||
				     sm_write(c, line.p, line.len) != 0)) {
			rc = -1;
		}
	}
	free(line.p);
	return rc;
}

/* dialog - the SMTP transaction with mtad; 0 or an exit code. */
static int dialog(struct sm_conn *c, FILE *in, const struct sm_opts *o, struct sm_message *m,
		  const char *sender)
{
	char text[SM_LINE_MAX + 1], cmd[SMTP_PATH_MAX + 32];
	int code, rc;

	if ((code = sm_reply(c, text, sizeof(text))) != 220) {
		fprintf(stderr, "sendmail: mtad: %s\n", text);
		return exit_for(code, EX_UNAVAILABLE);
	}
	if ((code = sm_command(c, "EHLO localhost", text, sizeof(text))) != 250) {
		fprintf(stderr, "sendmail: mtad refused EHLO: %s\n", text);
		return exit_for(code, EX_PROTOCOL);
	}
	snprintf(cmd, sizeof(cmd), "MAIL FROM:<%s>", sender);
	if ((code = sm_command(c, cmd, text, sizeof(text))) != 250) {
		fprintf(stderr, "sendmail: sender <%s> refused: %s\n", sender, text);
		return exit_for(code, EX_DATAERR);
	}
	for (size_t i = 0; i < m->nrcpt; i++) {
		snprintf(cmd, sizeof(cmd), "RCPT TO:<%s>", m->rcpt[i]);
		if ((code = sm_command(c, cmd, text, sizeof(text))) / 100 != 2) {
			fprintf(stderr, "sendmail: recipient <%s> refused: %s\n", m->rcpt[i], text);
			return exit_for(code, EX_NOUSER);
		}
	}
	if ((code = sm_command(c, "DATA", text, sizeof(text))) != 354) {
		fprintf(stderr, "sendmail: mtad refused DATA: %s\n", text);
		return exit_for(code, EX_DATAERR);
	}
	if ((rc = send_data(c, in, o, m, sender)) != 0) {
		if (rc == -1)
			fprintf(stderr, "sendmail: cannot write to mtad: %s\n", strerror(errno));
		return rc == -2 ? EX_IOERR : EX_TEMPFAIL;
	}
	if ((code = sm_command(c, ".", text, sizeof(text))) != 250) {
		fprintf(stderr, "sendmail: mtad did not take the message: %s\n", text);
		return exit_for(code, EX_DATAERR);
	}
	if (o->verbose)
		fprintf(stderr, "sendmail: %s\n", text);
	(void)sm_command(c, "QUIT", text, sizeof(text));
	return 0;
}

/* user_sender - the caller's login @ hostname: the default envelope sender. */
static char *user_sender(const char *hostname)
{
	struct passwd *pw = getpwuid(getuid());
	char *out, uid[32];

	if (!pw)
		snprintf(uid, sizeof(uid), "uid%lu", (unsigned long)getuid());
	if (asprintf(&out, "%s@%s", pw ? pw->pw_name : uid, hostname) < 0)
		return NULL;
	return out;
}

/* deliver - -bm (the default) and -t: read, then hand over; 0 or an exit code. */
static int deliver(const struct sm_opts *o, const struct mtad_config *cfg)
{
	struct sm_message m = { 0 };
	struct sm_conn c = { .fd = -1, .verbose = o->verbose };
	char *sender = o->sender ? qualify(o->sender, cfg->hostname) : user_sender(cfg->hostname);
	int rc = 0;

	m.rcpt = calloc(SM_RCPT_MAX, sizeof(*m.rcpt));
	if (!sender || !m.rcpt) {
		fprintf(stderr, "sendmail: out of memory\n");
		rc = EX_OSERR;
	}
	for (int i = 0; rc == 0 && i < o->nargv_rcpt; i++)
		if (add_rcpt(&m, o->argv_rcpt[i], cfg->hostname) != 0) {
			fprintf(stderr, "sendmail: too many recipients\n");
			rc = EX_USAGE;
		}
	if (rc == 0)
		rc = read_header(stdin, o, &m, cfg->hostname);
	if (rc == 0 && m.nrcpt == 0) {
		fprintf(stderr, "sendmail: no recipient addresses %s\n",
			o->from_headers ? "found in the message header" : "given (use -t to read them from the header)");
		rc = EX_USAGE;
	}
	if (rc == 0 && sm_connect(&c, cfg->local_socket) != 0)
		rc = EX_TEMPFAIL;
	if (rc == 0)
		rc = dialog(&c, stdin, o, &m, sender);
	if (c.fd >= 0)
		(void)close(c.fd);
	for (size_t i = 0; i < m.nrcpt; i++)
		free(m.rcpt[i]);
	free(m.rcpt);
	free(m.header.p);
	free(sender);
	return rc;
}

/* ---- -bs, -bp, -q, -bi ---- */

/* smtp_stdio - -bs: SMTP on stdin and stdout, passed to and from mtad as it is. */
static int smtp_stdio(const struct mtad_config *cfg)
{
	struct sm_conn c = { .fd = -1 };
	struct pollfd pf[2] = { { .fd = 0, .events = POLLIN }, { .events = POLLIN } };
	char buf[8192];

	if (sm_connect(&c, cfg->local_socket) != 0)
		return EX_TEMPFAIL;
	pf[1].fd = c.fd;
	for (;;) {
		int n = poll(pf, 2, SM_TIMEOUT_S * 1000);
		ssize_t r;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (pf[1].revents) {
			if ((r = read(c.fd, buf, sizeof(buf))) <= 0)
				break;	/* mtad closed: after QUIT, or a timeout */
			if (fwrite(buf, 1, (size_t)r, stdout) != (size_t)r || fflush(stdout) != 0)
				break;
		}
		if (pf[0].revents) {
			if ((r = read(0, buf, sizeof(buf))) <= 0) {
				(void)shutdown(c.fd, SHUT_WR);	/* mtad answers what it has */
				pf[0].fd = -1;
			} else if (sm_write(&c, buf, (size_t)r) != 0) {
				break;
			}
		}
	}
	(void)close(c.fd);
	return 0;
}

/* run_mtaq - -bp and -q: mtaq beside this program, on the same configuration. */
static int run_mtaq(const char *config, const char *command)
{
	char self[PATH_MAX], path[PATH_MAX + 8];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	if (n <= 0) {
		fprintf(stderr, "sendmail: cannot find mtaq: %s\n", strerror(errno));
		return EX_OSERR;
	}
	self[n] = '\0';
	slash = strrchr(self, '/');
	snprintf(path, sizeof(path), "%.*s/mtaq", slash ? (int)(slash - self) : 1,
		 slash ? self : ".");
	execl(path, "mtaq", "-c", config, command, (char *)NULL);
	fprintf(stderr, "sendmail: cannot run %s: %s\n", path, strerror(errno));
	return EX_UNAVAILABLE;
}

/* new_aliases - -bi: compiles alias_maps for mtad. */
static int new_aliases(const struct mtad_config *cfg)
{
	char err[2 * MTAD_PATH_MAX];

	if (cfg->alias_maps[0] == '\0') {
		fprintf(stderr, "newaliases: alias_maps is empty in the configuration: "
			"nothing to do\n");
		return 0;
	}
	if (local_aliases_compile(cfg->alias_maps, err, sizeof(err)) != 0) {
		fprintf(stderr, "newaliases: %s\n", err);
		return EX_DATAERR;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct sm_opts o = { .mode = MODE_DELIVER, .config = DEFAULT_CONFIG };
	const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	struct mtad_config *cfg;
	char err[2 * MTAD_PATH_MAX];
	int rc;

	if (strcmp(name, "mailq") == 0)
		o.mode = MODE_QUEUE;
	else if (strcmp(name, "newaliases") == 0)
		o.mode = MODE_ALIASES;
	if (parse_args(argc, argv, &o) != 0) {
		usage();
		return EX_USAGE;
	}
	if (!(cfg = calloc(1, sizeof(*cfg)))) {
		fprintf(stderr, "sendmail: out of memory\n");
		return EX_OSERR;
	}
	if (mtad_config_load(cfg, NULL, o.config, err, sizeof(err)) != 0) {
		fprintf(stderr, "sendmail: %s\n", err);
		free(cfg);
		return EX_CONFIG;
	}
	switch (o.mode) {
	case MODE_QUEUE: rc = run_mtaq(o.config, "list"); break;
	case MODE_FLUSH: rc = run_mtaq(o.config, "flush"); break;
	case MODE_ALIASES: rc = new_aliases(cfg); break;
	case MODE_SMTP: rc = smtp_stdio(cfg); break;
	default: rc = deliver(&o, cfg); break;
	}
	free(cfg);
	return rc;
}
