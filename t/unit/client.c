/*
 * client.c - unit tests for deliver/client.c, the outbound SMTP client, on
 * a libuv loop against a scripted SMTP server: a forked child on a
 * loopback socket that answers by recipient ("ok..." 250, "temp..." 450,
 * "bad..." 550, "drop..." closes the connection) and writes what it
 * received to a transcript file. One message, three over one
 * connection, mixed results with and without PIPELINING, nobody
 * accepted (RSET), SIZE too big, HELO after a refused EHLO, a 554
 * greeting, a 451 after the data, a silent server (greeting and end of
 * data timeouts), a dropped connection, connection refused, a failing
 * body reader, closing while a chunk is being read, dot-stuffing on the
 * wire. STARTTLS (the child runs OpenSSL on its socket): "may", "verify"
 * with the right and a wrong name, not offered, refused with 454, and
 * plaintext injected after the 220.
 * Children are killed by their PID.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "deliver/deliver.h"
#include "t/unit/tap.h"
#include "tls/tls.h"

#define MAX_RCPT 8
#define MAX_MSGS 4

/* ---- the scripted server (child process, blocking I/O) ---- */

struct script {
	const char *greeting;	/* NULL: say nothing at all */
	const char *ehlo;	/* the EHLO reply; NULL: 502, the client must HELO */
	const char *data_reply;	/* after the end of data; NULL: never answer it */
	const char *starttls;	/* the reply to STARTTLS (TLS follows a 220) */
};

/* The child's TLS connection once STARTTLS is done (blocking OpenSSL on the fd). */
static SSL *child_ssl;
static char tls_cert[128], tls_key[128], tls_dir[64];

struct reader {
	int fd;
	char buf[8192];
	size_t len;
};

/* say - a reply to the client. */
static void say(int fd, const char *s)
{
	ssize_t n = child_ssl ? SSL_write(child_ssl, s, (int)strlen(s)) : write(fd, s, strlen(s));

	(void)n;
}

/* child_read - from the socket, or through TLS once it is on. */
static ssize_t child_read(int fd, char *buf, size_t len)
{
	return child_ssl ? SSL_read(child_ssl, buf, (int)len) : read(fd, buf, len);
}

/* child_tls - the server end of the handshake; -1 when it fails. */
static int child_tls(int fd)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL || SSL_CTX_use_certificate_file(ctx, tls_cert, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, tls_key, SSL_FILETYPE_PEM) != 1)
		return -1;
	child_ssl = SSL_new(ctx);
	SSL_set_fd(child_ssl, fd);
	return SSL_accept(child_ssl) == 1 ? 0 : -1;
}

/* get_line - one line without CRLF into out; -1 at EOF. */
static int get_line(struct reader *r, char *out, size_t size)
{
	for (;;) {
		char *lf = memchr(r->buf, '\n', r->len);

		if (lf != NULL) {
			size_t n = (size_t)(lf - r->buf), keep = n > 0 && lf[-1] == '\r' ? n - 1 : n;

			snprintf(out, size, "%.*s", (int)keep, r->buf);
			r->len -= n + 1;
			memmove(r->buf, lf + 1, r->len);
			return 0;
		}
		if (r->len == sizeof(r->buf))
			return -1;
		ssize_t got = child_read(r->fd, r->buf + r->len, sizeof(r->buf) - r->len);
		if (got <= 0)
			return -1;
		r->len += (size_t)got;
	}
}

/* drain - reads until the client goes away (a silent server). */
static void drain(int fd)
{
	char buf[512];

	while (child_read(fd, buf, sizeof(buf)) > 0)
		;
}

/* serve_data - the body lines as received (stuffed), then the reply. */
static int serve_data(struct reader *r, FILE *log, const struct script *s)
{
	char line[2048];

	say(r->fd, "354 End data with <CR><LF>.<CR><LF>\r\n");
	while (get_line(r, line, sizeof(line)) == 0) {
		if (strcmp(line, ".") == 0) {
			fprintf(log, "END\n");
			fflush(log);
			if (s->data_reply == NULL) {
				drain(r->fd);
				return -1;
			}
			say(r->fd, s->data_reply);
			return 0;
		}
		fprintf(log, "B:%s\n", line);
	}
	return -1;
}

/* serve_rcpt - the reply by the local part; -1 to drop the connection. */
static int serve_rcpt(int fd, const char *line, int *accepted)
{
	const char *lp = strchr(line, '<');

	lp = lp ? lp + 1 : "";
	if (strncmp(lp, "ok", 2) == 0) {
		(*accepted)++;
		say(fd, "250 2.1.5 Ok\r\n");
	} else if (strncmp(lp, "temp", 4) == 0) {
		say(fd, "450 4.2.0 <x>: Recipient address rejected: try later\r\n");
	} else if (strncmp(lp, "bad", 3) == 0) {
		say(fd, "550-5.1.1 <x>: Recipient address rejected:\r\n550 5.1.1 User unknown\r\n");
	} else {
		return -1;
	}
	return 0;
}

/* serve_conn - one SMTP session by the script. */
static void serve_conn(int fd, FILE *log, const struct script *s)
{
	struct reader r = { .fd = fd };
	char line[2048];
	int accepted = 0;

	fprintf(log, "CONNECT\n");
	fflush(log);
	if (s->greeting == NULL) {
		drain(fd);
		return;
	}
	say(fd, s->greeting);
	while (get_line(&r, line, sizeof(line)) == 0) {
		fprintf(log, "C:%s\n", line);
		fflush(log);
		if (strncasecmp(line, "EHLO", 4) == 0)
			say(fd, s->ehlo ? s->ehlo : "502 5.5.2 Error: command not recognized\r\n");
		else if (strncasecmp(line, "STARTTLS", 8) == 0 && s->starttls) {
			say(fd, s->starttls);
			if (s->starttls[0] == '2' && child_tls(fd) != 0) {
				fprintf(log, "TLS FAILED\n");
				return;
			}
			if (child_ssl)
				fprintf(log, "TLS ON\n");
		} else if (strncasecmp(line, "HELO", 4) == 0)
			say(fd, "250 sink.test\r\n");
		else if (strncasecmp(line, "MAIL", 4) == 0) {
			accepted = 0;
			say(fd, "250 2.1.0 Ok\r\n");
		} else if (strncasecmp(line, "RCPT", 4) == 0) {
			if (serve_rcpt(fd, line, &accepted) != 0)
				return;
		} else if (strncasecmp(line, "DATA", 4) == 0) {
			if (accepted == 0)
				say(fd, "554 5.5.1 Error: no valid recipients\r\n");
			else if (serve_data(&r, log, s) != 0)
				return;
		} else if (strncasecmp(line, "RSET", 4) == 0)
			say(fd, "250 2.0.0 Ok\r\n");
		else if (strncasecmp(line, "QUIT", 4) == 0) {
			say(fd, "221 2.0.0 Bye\r\n");
			return;
		} else
			say(fd, "502 5.5.2 Error: command not recognized\r\n");
	}
}

/* A running scripted server. */
struct server {
	pid_t pid;
	int port;
	char log[64];
};

/* server_start - listens on 127.0.0.1:0, forks the child that serves it. */
static int server_start(struct server *sv, const struct script *s)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int lfd = socket(AF_INET, SOCK_STREAM, 0), fd;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(lfd, 8) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &len) != 0)
		return -1;
	sv->port = ntohs(sin.sin_port);
	snprintf(sv->log, sizeof(sv->log), "/tmp/mtad-client-XXXXXX");
	fd = mkstemp(sv->log);
	if (fd < 0)
		return -1;
	close(fd);
	fflush(stdout);
	sv->pid = fork();
	if (sv->pid < 0)
		return -1;
	if (sv->pid == 0) {
		FILE *log = fopen(sv->log, "a");

		signal(SIGPIPE, SIG_IGN);
		for (;;) {
			int c = accept(lfd, NULL, NULL);

			if (c < 0 || log == NULL)
				_exit(1);
			child_ssl = NULL;
			serve_conn(c, log, s);
			fprintf(log, "CLOSE\n");
			fflush(log);
			close(c);
		}
	}
	close(lfd);
	return 0;
}

/* server_stop - kills the child by its PID; returns the transcript (malloc'd). */
static char *server_stop(struct server *sv)
{
	FILE *f;
	char *buf = calloc(1, 65536);
	size_t n;

	kill(sv->pid, SIGKILL);
	waitpid(sv->pid, NULL, 0);
	f = fopen(sv->log, "r");
	if (f != NULL) {
		n = fread(buf, 1, 65535, f);
		buf[n] = '\0';
		fclose(f);
	}
	unlink(sv->log);
	return buf;
}

/* count - occurrences of needle in hay. */
static int count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* ---- the client side ---- */

struct run {
	uv_loop_t loop;
	struct smtp_client *c;
	struct smtp_client_options opt;
	struct smtp_client_reply ready;
	char tls_info[160];
	int ready_calls, sent_calls;
	int msgs;			/* messages to send */
	const char *rcpt[MAX_RCPT];
	size_t nrcpt;
	uint64_t size;
	const char *body;
	size_t chunk;			/* body chunk size */
	bool async;			/* chunks come from a timer, not from inside read */
	int fail_read_at;		/* chunk index whose read fails; -1 none */
	bool close_in_read;		/* smtp_client_close while a chunk is being read */
	bool ok[MAX_MSGS];
	struct smtp_client_reply results[MAX_MSGS][MAX_RCPT], data[MAX_MSGS];
	/* a chunk on its way (async) */
	uv_timer_t chunk_timer;
	uint32_t chunk_index;
	smtp_client_chunk_done chunk_done;
};

/* deliver_chunk - hands chunk index to the client. */
static void deliver_chunk(struct run *r, struct smtp_client *c, uint32_t index,
			  smtp_client_chunk_done done)
{
	size_t len = strlen(r->body), off = (size_t)index * r->chunk;
	size_t n = off >= len ? 0 : len - off < r->chunk ? len - off : r->chunk;

	if ((int)index == r->fail_read_at) {
		done(c, -1, NULL, 0, true);
		return;
	}
	done(c, 0, r->body + (off < len ? off : len), n, off + n >= len);
}

static void chunk_timer_cb(uv_timer_t *t)
{
	struct run *r = t->data;

	deliver_chunk(r, r->c, r->chunk_index, r->chunk_done);
}

static void read_body(void *arg, uint32_t index, struct smtp_client *c, smtp_client_chunk_done done)
{
	struct run *r = arg;

	if (r->close_in_read) {
		/* The client is closed while our read runs; done still comes. */
		r->close_in_read = false;
		smtp_client_close(c);
		r->async = true;
	}
	if (r->async) {
		r->chunk_index = index;
		r->chunk_done = done;
		uv_timer_start(&r->chunk_timer, chunk_timer_cb, 1, 0);
		return;
	}
	deliver_chunk(r, c, index, done);
}

static void send_next(struct run *r);

static void on_sent(void *arg, bool ok, const struct smtp_client_reply *results,
		    const struct smtp_client_reply *data)
{
	struct run *r = arg;
	int m = r->sent_calls++;

	if (m < MAX_MSGS) {
		r->ok[m] = ok;
		memcpy(r->results[m], results, r->nrcpt * sizeof(*results));
		r->data[m] = *data;
	}
	if (ok && r->sent_calls < r->msgs)
		send_next(r);
	else
		smtp_client_close(r->c);
}

static void send_next(struct run *r)
{
	struct smtp_client_message msg = {
		.sender = "sender@campus.test", .rcpt = r->rcpt, .nrcpt = r->nrcpt,
		.size = r->size ? r->size : strlen(r->body), .read = read_body, .read_arg = r,
	};

	if (smtp_client_send(r->c, &msg, on_sent, r) != 0)
		smtp_client_close(r->c);
}

static void on_ready(void *arg, const struct smtp_client_reply *reply)
{
	struct run *r = arg;

	r->ready = *reply;
	r->ready_calls++;
	snprintf(r->tls_info, sizeof(r->tls_info), "%s", smtp_client_tls_info(r->c));
	if (reply->code / 100 == 2 && r->msgs > 0)
		send_next(r);
	else
		smtp_client_close(r->c);
}

/* run_init - a run with one message of body "hello\r\n" to ok@. */
static void run_init(struct run *r)
{
	memset(r, 0, sizeof(*r));
	r->opt = (struct smtp_client_options){ .helo_name = "client.campus.test",
		.peer_name = "sink.test", .tls = SMTP_TLS_MAY, .timeout = 5 };
	r->msgs = 1;
	r->rcpt[0] = "ok1@remote.test";
	r->nrcpt = 1;
	r->body = "Subject: test\r\n\r\nhello\r\n";
	r->chunk = 4096;
	r->fail_read_at = -1;
}

/* run_client - connects to port, runs the loop until the client is gone. */
static void run_client(struct run *r, int port)
{
	struct sockaddr_in sin;

	uv_loop_init(&r->loop);
	uv_timer_init(&r->loop, &r->chunk_timer);
	r->chunk_timer.data = r;
	uv_ip4_addr("127.0.0.1", port, &sin);
	r->c = smtp_client_connect(&r->loop, (struct sockaddr *)&sin, &r->opt, on_ready, r);
	uv_run(&r->loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&r->chunk_timer, NULL);
	uv_run(&r->loop, UV_RUN_DEFAULT);
	uv_loop_close(&r->loop);
}

/* scripted - one run against a scripted server; returns the transcript. */
static char *scripted(struct run *r, const struct script *s)
{
	struct server sv;

	if (server_start(&sv, s) != 0) {
		perror("server_start");
		exit(2);
	}
	run_client(r, sv.port);
	return server_stop(&sv);
}

#define EHLO_PIPE "250-sink.test\r\n250-PIPELINING\r\n250-SIZE 100000\r\n250 8BITMIME\r\n"
#define EHLO_PLAIN "250-sink.test\r\n250 8BITMIME\r\n"

static const struct script sink_pipe = { "220 sink.test ESMTP\r\n", EHLO_PIPE, "250 2.0.0 Ok: queued as 123\r\n", NULL };
static const struct script sink_plain = { "220 sink.test ESMTP\r\n", EHLO_PLAIN, "250 2.0.0 Ok: queued as 123\r\n", NULL };

/* test_one - one message, chunks of 5 bytes, dot-stuffed on the wire, SIZE, QUIT. */
static void test_one(struct tap *t)
{
	struct run r;
	char *tr, mail[128];

	run_init(&r);
	r.body = ".starts with a dot\r\n..two\r\nmid.dle\r\n.\r\nno newline at the end";
	r.chunk = 5;
	tr = scripted(&r, &sink_pipe);
	TAP_OK(t, r.ready_calls == 1 && r.ready.code == 250, "one: ready 250 (%d %s)", r.ready.code,
	       r.ready.text);
	TAP_OK(t, r.sent_calls == 1 && r.ok[0] && r.results[0][0].code == 250 &&
	       strcmp(r.results[0][0].enhanced, "2.0.0") == 0 &&
	       strcmp(r.results[0][0].text, "Ok: queued as 123") == 0 && r.data[0].code == 250,
	       "one: recipient 250 2.0.0 from the end of data (%d %s %s)", r.results[0][0].code,
	       r.results[0][0].enhanced, r.results[0][0].text);
	snprintf(mail, sizeof(mail), "C:MAIL FROM:<sender@campus.test> SIZE=%zu\n", strlen(r.body));
	TAP_OK(t, strstr(tr, "C:EHLO client.campus.test\n") != NULL && strstr(tr, mail) != NULL &&
	       strstr(tr, "C:RCPT TO:<ok1@remote.test>\n") != NULL,
	       "one: EHLO, MAIL with SIZE=, RCPT on the wire");
	TAP_OK(t, strstr(tr, "B:..starts with a dot\nB:...two\nB:mid.dle\nB:..\n"
			 "B:no newline at the end\nEND\n") != NULL,
	       "one: dot-stuffed across 5-byte chunks, CRLF added before the end");
	TAP_OK(t, strstr(tr, "C:QUIT\n") != NULL, "one: QUIT at close");
	free(tr);
}

/* test_three - three messages over one connection, chunks from a timer. */
static void test_three(struct tap *t, const struct script *s, const char *name)
{
	struct run r;
	char *tr;

	run_init(&r);
	r.msgs = 3;
	r.async = true;
	r.chunk = 3;
	tr = scripted(&r, s);
	TAP_OK(t, r.sent_calls == 3 && r.ok[0] && r.ok[1] && r.ok[2] &&
	       r.results[2][0].code == 250, "three %s: three messages sent", name);
	TAP_OK(t, count(tr, "CONNECT") == 1 && count(tr, "C:EHLO") == 1 &&
	       count(tr, "C:MAIL") == 3 && count(tr, "END") == 3 && count(tr, "C:RSET") == 0,
	       "three %s: one connection, one EHLO, no RSET", name);
	free(tr);
}

/* test_mixed - per-recipient results; the accepted ones get the end-of-data reply. */
static void test_mixed(struct tap *t, const struct script *s, const char *name)
{
	struct run r;
	char *tr;

	run_init(&r);
	r.rcpt[0] = "ok1@remote.test";
	r.rcpt[1] = "temp@remote.test";
	r.rcpt[2] = "bad@remote.test";
	r.rcpt[3] = "ok2@remote.test";
	r.rcpt[4] = "bad\r\nRSET@remote.test";
	r.nrcpt = 5;
	r.msgs = 2;
	tr = scripted(&r, s);
	for (int m = 0; m < 2; m++) {
		struct smtp_client_reply *res = r.results[m];

		TAP_OK(t, r.ok[m] && res[0].code == 250 && res[3].code == 250 &&
		       res[1].code == 450 && strcmp(res[1].enhanced, "4.2.0") == 0 &&
		       res[2].code == 550 && strcmp(res[2].enhanced, "5.1.1") == 0 &&
		       strcmp(res[2].text, "<x>: Recipient address rejected:; User unknown") == 0,
		       "mixed %s, message %d: 250 450 550 250 (%d %d %d %d: %s)", name, m + 1,
		       res[0].code, res[1].code, res[2].code, res[3].code, res[2].text);
		TAP_OK(t, res[4].code == 553 && strcmp(res[4].enhanced, "5.1.3") == 0,
		       "mixed %s, message %d: an address with CRLF is refused here, 553 5.1.3",
		       name, m + 1);
	}
	TAP_OK(t, count(tr, "C:RCPT") == 8 && count(tr, "C:RSET") == 0 && count(tr, "END") == 2,
	       "mixed %s: 4 RCPT per message, the CRLF address never sent", name);
	free(tr);
}

/* test_nobody - every recipient refused: no body, RSET (or the pipelined DATA's 554). */
static void test_nobody(struct tap *t, const struct script *s, const char *name, bool pipe)
{
	struct run r;
	char *tr;

	run_init(&r);
	r.rcpt[0] = "bad1@remote.test";
	r.rcpt[1] = "temp@remote.test";
	r.nrcpt = 2;
	r.msgs = 2;
	tr = scripted(&r, s);
	TAP_OK(t, r.sent_calls == 2 && r.ok[0] && r.ok[1] && r.results[1][0].code == 550 &&
	       r.results[1][1].code == 450, "nobody %s: 550 and 450, connection still usable", name);
	TAP_OK(t, count(tr, "END") == 0 && count(tr, "C:RSET") == 2 &&
	       count(tr, "C:DATA") == (pipe ? 2 : 0),
	       "nobody %s: no body, RSET after each (DATA %s)", name, pipe ? "pipelined" : "never sent");
	free(tr);
}

/* test_size - the peer's SIZE limit: 552 5.3.4 for everyone, nothing sent. */
static void test_size(struct tap *t)
{
	struct run r;
	char *tr;

	run_init(&r);
	r.rcpt[1] = "ok2@remote.test";
	r.nrcpt = 2;
	r.size = 100001;
	r.msgs = 2;
	tr = scripted(&r, &sink_pipe);
	TAP_OK(t, r.sent_calls == 2 && r.ok[0] && r.results[0][0].code == 552 &&
	       r.results[0][1].code == 552 && strcmp(r.results[0][1].enhanced, "5.3.4") == 0 &&
	       strcmp(r.results[0][0].text, "message size exceeds the peer's limit") == 0,
	       "size: 552 5.3.4 for every recipient (%d %s)", r.results[0][0].code,
	       r.results[0][0].text);
	TAP_OK(t, count(tr, "C:MAIL") == 0 && strstr(tr, "C:QUIT") != NULL,
	       "size: no MAIL sent, the connection still QUITs");
	free(tr);
}

/* test_helo - EHLO refused: HELO, no extensions, no SIZE=. */
static void test_helo(struct tap *t)
{
	static const struct script s = { "220 old.test SMTP\r\n", NULL, "250 ok\r\n", NULL };
	struct run r;
	char *tr;

	run_init(&r);
	tr = scripted(&r, &s);
	TAP_OK(t, r.ready.code == 250 && r.ok[0] && r.results[0][0].code == 250,
	       "helo: message sent after HELO");
	TAP_OK(t, strstr(tr, "C:EHLO client.campus.test\nC:HELO client.campus.test\n") != NULL &&
	       strstr(tr, "C:MAIL FROM:<sender@campus.test>\n") != NULL,
	       "helo: EHLO, then HELO; MAIL without SIZE=");
	free(tr);
}

/* test_greeting - 554 greeting: ready gets it; close still says QUIT. */
static void test_greeting(struct tap *t)
{
	static const struct script s = { "554 5.7.1 go away\r\n", EHLO_PLAIN, "250 ok\r\n", NULL };
	struct run r;
	char *tr;

	run_init(&r);
	tr = scripted(&r, &s);
	TAP_OK(t, r.ready_calls == 1 && r.ready.code == 554 && strcmp(r.ready.enhanced, "5.7.1") == 0 &&
	       strcmp(r.ready.text, "go away") == 0 && r.sent_calls == 0,
	       "greeting 554: ready with 554 5.7.1 go away");
	TAP_OK(t, strstr(tr, "C:QUIT\n") != NULL && count(tr, "C:EHLO") == 0,
	       "greeting 554: no EHLO, QUIT");
	free(tr);
}

/* test_data_451 - a temporary failure after the data. */
static void test_data_451(struct tap *t)
{
	static const struct script s = { "220 sink.test\r\n", EHLO_PIPE, "451 4.3.0 Error: queue file write error\r\n", NULL };
	struct run r;
	char *tr;

	run_init(&r);
	r.rcpt[1] = "bad@remote.test";
	r.nrcpt = 2;
	r.msgs = 2;
	tr = scripted(&r, &s);
	TAP_OK(t, r.sent_calls == 2 && r.ok[1] && r.results[0][0].code == 451 &&
	       strcmp(r.results[0][0].enhanced, "4.3.0") == 0 && r.results[0][1].code == 550 &&
	       r.data[0].code == 451, "data 451: accepted recipient 451 4.3.0, refused one 550");
	free(tr);
}

/* test_silent - timeouts: no greeting, and no reply to the end of data. */
static void test_silent(struct tap *t)
{
	static const struct script mute = { NULL, NULL, NULL, NULL };
	static const struct script mute_dot = { "220 sink.test\r\n", EHLO_PIPE, NULL, NULL };
	struct run r;
	char *tr;

	run_init(&r);
	r.opt.timeout = 1;
	tr = scripted(&r, &mute);
	TAP_OK(t, r.ready_calls == 1 && r.ready.code == 0 &&
	       strstr(r.ready.text, "conversation with sink.test[127.0.0.1] timed out while "
			"receiving the initial server greeting") != NULL,
	       "silent: greeting timeout, code 0 (%s)", r.ready.text);
	free(tr);

	run_init(&r);
	r.opt.timeout = 1;
	r.rcpt[1] = "bad@remote.test";
	r.nrcpt = 2;
	tr = scripted(&r, &mute_dot);
	TAP_OK(t, r.sent_calls == 1 && !r.ok[0] && r.results[0][0].code == 0 &&
	       strstr(r.results[0][0].text, "timed out while sending end of data") != NULL &&
	       r.results[0][1].code == 550,
	       "silent: end-of-data timeout, accepted recipient code 0, refused one keeps 550 (%s)",
	       r.results[0][0].text);
	free(tr);
}

/* test_drop - the peer drops the connection at the second RCPT. */
static void test_drop(struct tap *t, const struct script *s, const char *name)
{
	struct run r;
	char *tr;

	run_init(&r);
	r.rcpt[0] = "ok1@remote.test";
	r.rcpt[1] = "drop@remote.test";
	r.rcpt[2] = "ok2@remote.test";
	r.nrcpt = 3;
	tr = scripted(&r, s);
	TAP_OK(t, r.sent_calls == 1 && !r.ok[0] && r.results[0][0].code == 0 &&
	       r.results[0][1].code == 0 && r.results[0][2].code == 0 &&
	       strstr(r.results[0][1].text, "lost connection with sink.test[127.0.0.1] while "
			"sending RCPT TO") != NULL,
	       "drop %s: every recipient code 0 (%s)", name, r.results[0][1].text);
	free(tr);
}

/* test_refused - nothing listens: code 0 "connect to". */
static void test_refused(struct tap *t)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;
	struct run r;

	/* A port that was just free: bound, never listened on, closed. */
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(fd, (struct sockaddr *)&sin, sizeof(sin));
	getsockname(fd, (struct sockaddr *)&sin, &len);
	port = ntohs(sin.sin_port);
	close(fd);
	run_init(&r);
	run_client(&r, port);
	TAP_OK(t, r.ready_calls == 1 && r.ready.code == 0 &&
	       strncmp(r.ready.text, "connect to sink.test[127.0.0.1]: ", 33) == 0 &&
	       strcmp(r.ready.enhanced, "4.4.1") == 0,
	       "refused: code 0 4.4.1 (%s)", r.ready.text);
}

/* test_read_fail - the body reader fails: 451 4.3.0 and the connection is dropped. */
static void test_read_fail(struct tap *t)
{
	struct run r;
	char *tr;

	run_init(&r);
	r.chunk = 4;
	r.fail_read_at = 2;
	r.msgs = 2;
	tr = scripted(&r, &sink_pipe);
	TAP_OK(t, r.sent_calls == 1 && !r.ok[0] && r.results[0][0].code == 451 &&
	       strcmp(r.results[0][0].enhanced, "4.3.0") == 0,
	       "read failure: 451 4.3.0, not usable (%s)", r.results[0][0].text);
	TAP_OK(t, count(tr, "END") == 0, "read failure: no end of data sent");
	free(tr);
}

/* test_close_in_read - closed while a chunk read is outstanding: no callback, no leak. */
static void test_close_in_read(struct tap *t)
{
	struct run r;
	char *tr;

	run_init(&r);
	r.close_in_read = true;
	tr = scripted(&r, &sink_pipe);
	TAP_OK(t, r.sent_calls == 0 && count(tr, "END") == 0,
	       "close during a chunk read: no sent callback, no end of data");
	free(tr);
}

/* make_cert - a self-signed certificate for sink.test in a fresh directory. */
static int make_cert(void)
{
	char cmd[512];

	snprintf(tls_dir, sizeof(tls_dir), "/tmp/mtad-client-tls-XXXXXX");
	if (mkdtemp(tls_dir) == NULL)
		return -1;
	snprintf(tls_cert, sizeof(tls_cert), "%s/cert.pem", tls_dir);
	snprintf(tls_key, sizeof(tls_key), "%s/key.pem", tls_dir);
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		 "-subj /CN=sink.test -addext subjectAltName=DNS:sink.test -days 2 "
		 "-keyout %s -out %s >/dev/null 2>&1", tls_key, tls_cert);
	return system(cmd) == 0 ? 0 : -1;
}

#define EHLO_TLS "250-sink.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n"

/* tls_run - one message with the given policy and name; returns the transcript. */
static char *tls_run(struct run *r, struct tls_client *cli, const struct script *s,
		     enum smtp_tls_policy policy, const char *name)
{
	run_init(r);
	r->opt.tls = policy;
	r->opt.tls_client = cli;
	r->opt.peer_name = name;
	return scripted(r, s);
}

/* test_starttls - STARTTLS may and verify, a bad name, no offer, injection. */
static void test_starttls(struct tap *t)
{
	static const struct script tls = { "220 sink.test\r\n", EHLO_TLS, "250 2.0.0 Ok\r\n",
					   "220 2.0.0 Ready to start TLS\r\n" };
	static const struct script inject = { "220 sink.test\r\n", EHLO_TLS, "250 2.0.0 Ok\r\n",
					      "220 2.0.0 Ready\r\n250 injected\r\n" };
	static const struct script refuse = { "220 sink.test\r\n", EHLO_TLS, "250 2.0.0 Ok\r\n",
					      "454 4.7.0 TLS not available\r\n" };
	char err[256];
	struct tls_client *cli;
	struct run r;
	char *tr;

	if (make_cert() != 0 || (cli = tls_client_new(tls_cert, err, sizeof(err))) == NULL) {
		TAP_OK(t, 0, "starttls: certificate and TLS client");
		return;
	}
	tr = tls_run(&r, cli, &tls, SMTP_TLS_MAY, "sink.test");
	TAP_OK(t, r.ok[0] && r.results[0][0].code == 250 && strncmp(r.tls_info, "TLSv1.", 6) == 0,
	       "starttls may: sent over TLS (%s)", r.tls_info);
	TAP_OK(t, strstr(tr, "C:EHLO client.campus.test\nC:STARTTLS\nTLS ON\nC:EHLO "
			 "client.campus.test\nC:MAIL") != NULL && strstr(tr, "C:QUIT") != NULL,
	       "starttls may: EHLO, STARTTLS, EHLO again, MAIL, QUIT");
	free(tr);
	tr = tls_run(&r, cli, &tls, SMTP_TLS_VERIFY, "sink.test");
	TAP_OK(t, r.ok[0] && r.results[0][0].code == 250, "starttls verify: the certificate verifies");
	free(tr);
	tr = tls_run(&r, cli, &tls, SMTP_TLS_VERIFY, "other.test");
	TAP_OK(t, r.ready.code == 450 && strcmp(r.ready.enhanced, "4.7.5") == 0 &&
	       strstr(r.ready.text, "TLS required but the certificate of other.test[127.0.0.1] "
			"did not verify") != NULL && r.sent_calls == 0,
	       "starttls verify, wrong name: 450 4.7.5 (%s)", r.ready.text);
	TAP_OK(t, strstr(tr, "C:QUIT") != NULL, "starttls verify, wrong name: QUIT over TLS");
	free(tr);
	tr = tls_run(&r, cli, &sink_plain, SMTP_TLS_VERIFY, "sink.test");
	TAP_OK(t, r.ready.code == 450 && strstr(r.ready.text, "does not offer STARTTLS") != NULL &&
	       count(tr, "C:MAIL") == 0, "starttls verify, not offered: 450 (%s)", r.ready.text);
	free(tr);
	tr = tls_run(&r, cli, &refuse, SMTP_TLS_MAY, "sink.test");
	TAP_OK(t, r.ok[0] && r.tls_info[0] == '\0', "starttls may, 454: sent in the clear");
	free(tr);
	tr = tls_run(&r, cli, &refuse, SMTP_TLS_VERIFY, "sink.test");
	TAP_OK(t, r.ready.code == 450 && strstr(r.ready.text, "STARTTLS failed: 454") != NULL,
	       "starttls verify, 454: 450 4.7.5 (%s)", r.ready.text);
	free(tr);
	tr = tls_run(&r, cli, &inject, SMTP_TLS_MAY, "sink.test");
	TAP_OK(t, r.ready.code == 0 && strstr(r.ready.text, "sent data after its reply to STARTTLS"),
	       "starttls: plaintext after the 220 is refused (%s)", r.ready.text);
	free(tr);
	tls_client_free(cli);
	unlink(tls_cert);
	unlink(tls_key);
	rmdir(tls_dir);
}

int main(void)
{
	struct tap t = { 0 };

	signal(SIGPIPE, SIG_IGN);
	test_one(&t);
	test_three(&t, &sink_pipe, "pipelined");
	test_three(&t, &sink_plain, "one by one");
	test_mixed(&t, &sink_pipe, "pipelined");
	test_mixed(&t, &sink_plain, "one by one");
	test_nobody(&t, &sink_pipe, "pipelined", true);
	test_nobody(&t, &sink_plain, "one by one", false);
	test_size(&t);
	test_helo(&t);
	test_greeting(&t);
	test_data_451(&t);
	test_silent(&t);
	test_drop(&t, &sink_pipe, "pipelined");
	test_drop(&t, &sink_plain, "one by one");
	test_refused(&t);
	test_read_fail(&t);
	test_close_in_read(&t);
	test_starttls(&t);
	return tap_done(&t);
}
