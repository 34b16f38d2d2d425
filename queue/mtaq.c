/*
 * mtaq.c - the mtaq tool: look at and clean up the mail queue.
 *
 *   mtaq [-c CONFIG] list [--json]        Postfix mailq-shaped listing
 *   mtaq [-c CONFIG] show [--json] [--body] ID
 *   mtaq [-c CONFIG] delete ID...
 *   mtaq [-c CONFIG] hold ID...           keep from delivery (shown with !)
 *   mtaq [-c CONFIG] release ID...
 *   mtaq [-c CONFIG] flush [ID...]        due now (no ID: every deferred message)
 *   mtaq [-c CONFIG] count
 *   mtaq [-c CONFIG] recover             Berkeley DB recovery, mtad stopped
 *   mtaq [-c CONFIG] summary              qshape-like table by domain and age
 *   mtaq [-c CONFIG] stats [--json] [--days N]   HELO policy statistics
 *
 * Runs beside a busy mtad: it reads through queue_foreach (which holds
 * no lock while we print) and never runs recovery while mtad runs (it
 * joins the environment; queue/env.c), so an mtaq killed even with
 * SIGKILL leaves only locks that mtad's failchk releases within a
 * second. It still closes the environment on every exit path it
 * controls: SIGINT/TERM/HUP/QUIT are held while the queue is open and
 * take effect after it closes. With mtad stopped after a crash it says
 * that the queue needs recovery; `mtaq recover` runs it, holding the
 * spool lock so that mtad cannot start meanwhile, and refuses while
 * mtad runs.
 *
 * Must not: print bytes from the queue raw to a terminal (addresses and
 * replies may hold control characters) except the message itself with
 * --body, emit invalid JSON, or change anything but with `delete`,
 * `hold`, `release`, `flush` and `recover`. Those commit synchronously; a running
 * mtad sees them at its next schedule scan (every second).
 */
#include <errno.h>
#include <search.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "policy/policy.h"
#include "queue/queue.h"
#include "util/util.h"
#include "queue/sketch_impl.h"

/* mtaq reads mtad.conf for the spool; routes are delivery's business
 * (not linked here: kept as text, `mtad -n` checks them); rule names are
 * the policy's. */
static const struct mtad_config_checks config_checks = {
	.route = NULL,
	.helo_rule = policy_config_rule,
	.helo_rule_name = policy_config_rule_name,
};

#define MTAQ_DEFAULT_CONFIG "/etc/mtad/mtad.conf"
#define MTAQ_EXIT_USAGE 2
#define MTAQ_NBUCKETS 10	/* qshape: 5 10 20 ... 1280 minutes, then older */
#define MTAQ_INDENT 46		/* where sender and recipients start in `list` */
#define MTAQ_DEFAULT_DAYS 7	/* `stats`: today and the last 7 days */
#define MTAQ_MAX_DAYS 3650
#define MTAQ_TOP_HELO 10	/* HELO names and client addresses shown */

struct mtaq {
	const char *config;
	const char *command;
	char **args;		/* operands after the command */
	int nargs;
	bool json, body;
	int days;		/* stats --days */
	struct queue *q;
	int lock_fd;		/* `recover`: the spool lock, else -1 */
};

/* usage - the synopsis, to out. */
static void usage(FILE *out)
{
	fprintf(out,
		"usage: mtaq [-c CONFIG] COMMAND\n"
		"  list [--json]             every queued message, mailq style\n"
		"  show [--json] [--body] ID envelope and headers (--body: the message only)\n"
		"  delete ID...              remove messages from the queue\n"
		"  hold ID...                keep messages from delivery (listed with !)\n"
		"  release ID...             let held messages be delivered again\n"
		"  flush [ID...]             try messages now (no ID: every deferred one)\n"
		"  count                     number of queued messages\n"
		"  recover                   recover the queue after a crash (mtad must\n"
		"                            be stopped; mtad also recovers at start)\n"
		"  summary                   recipients by domain and age (qshape style)\n"
		"  verify                    check every message's body against the length\n"
		"                            and SHA-256 recorded at arrival; exit 1 when\n"
		"                            one is damaged\n"
		"  migrate                   move a spool made by mtad 0.1 to the current\n"
		"                            format (mtad stopped)\n"
		"  stats [--json] [--days N] HELO policy statistics: rejected attempts,\n"
		"                            connections and clients per rule, accepted\n"
		"                            messages, top rejected HELO names, the group\n"
		"                            commit's messages per log sync; today and\n"
		"                            the last N days (default 7; days are kept\n"
		"                            for stats_keep_days, 8 by default)\n"
		"CONFIG defaults to " MTAQ_DEFAULT_CONFIG ".\n");
}

/* ---- safe output ---- */

/* utf8_len - length of the valid UTF-8 sequence at p, or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t len;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	/* Overlong forms, surrogates and C1 controls are not let through. */
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp < 0xa0)
		return 0;
	return len;
}

/*
 * put_text_tabs - a queue string for a terminal: controls and bad bytes
 * as \xHH, CR LF TAB and backslash as \r \n \t \\, unless tabs: then a
 * TAB stays (folded header lines start with one).
 */
static void put_text_tabs(FILE *out, const char *s, bool tabs)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t n = strlen((const char *)p);

	while (n > 0) {
		size_t len = utf8_len(p, n);

		if (*p == '\\')
			fputs("\\\\", out);
		else if (*p == '\r')
			fputs("\\r", out);
		else if (*p == '\n')
			fputs("\\n", out);
		else if (*p == '\t')
			fputs(tabs ? "\t" : "\\t", out);
		else if (len == 0 || *p < 0x20 || *p == 0x7f)
			fprintf(out, "\\x%02x", *p), len = 1;
		else
			fwrite(p, 1, len, out);
		len = len ? len : 1;
		p += len;
		n -= len;
	}
}

/* put_text - put_text_tabs for one-line values. */
static void put_text(FILE *out, const char *s)
{
	put_text_tabs(out, s, false);
}

/* json_str - a JSON string; invalid UTF-8 bytes become \u00XX (never invalid JSON). */
static void json_str(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n;

	if (s == NULL) {
		fputs("null", out);
		return;
	}
	n = strlen(s);
	putc('"', out);
	while (n > 0) {
		size_t len = utf8_len(p, n);

		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", out);
		else if (*p == '\r')
			fputs("\\r", out);
		else if (*p == '\t')
			fputs("\\t", out);
		else if (len == 0 || *p < 0x20 || *p == 0x7f)
			fprintf(out, "\\u%04x", *p), len = 1;
		else
			fwrite(p, 1, len, out);
		len = len ? len : 1;
		p += len;
		n -= len;
	}
	putc('"', out);
}

/* state_name - text of a recipient state. */
static const char *state_name(enum queue_rcpt_state s)
{
	switch (s) {
	case QUEUE_RCPT_PENDING: return "pending";
	case QUEUE_RCPT_SENT: return "sent";
	case QUEUE_RCPT_FAILED: return "failed";
	}
	return "unknown";
}

/* arrival_text - "Fri Nov 27 08:17:47" in local time. */
static void arrival_text(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (localtime_r(&tt, &tm) == NULL || strftime(buf, size, "%a %b %e %H:%M:%S", &tm) == 0)
		snprintf(buf, size, "%lld", (long long)t);
}

/* ---- list ---- */

struct list_state {
	struct mtaq *m;
	size_t n, damaged;
	uint64_t bytes;
};

/* report_damaged - one stderr line for a record that cannot be decoded. */
static void report_damaged(struct mtaq *m, const char *qid)
{
	fprintf(stderr, "mtaq: damaged record %s: %s\n", qid, queue_strerror(m->q));
}

/* list_text - one mailq-style entry; the next attempt when in the future. */
static void list_text(const struct queue_envelope *env, int64_t now)
{
	char when[64];

	arrival_text(env->arrival, when, sizeof(when));
	printf("%s%c %8llu %-20.20s ", env->qid, (env->flags & QUEUE_FLAG_HELD) ? '!' : ' ',
	       (unsigned long long)env->size, when);
	put_text(stdout, env->sender[0] ? env->sender : "<>");
	putchar('\n');
	if (env->next_attempt > now) {
		arrival_text(env->next_attempt, when, sizeof(when));
		printf("%*s(next attempt %s)\n", MTAQ_INDENT, "", when);
	}
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct queue_rcpt *r = &env->rcpt[i];

		printf("%*s", MTAQ_INDENT, "");
		put_text(stdout, r->addr);
		printf("  %s", state_name(r->state));
		if (r->attempts > 0)
			printf(", %u attempt%s", r->attempts, r->attempts == 1 ? "" : "s");
		putchar('\n');
		if (r->last_reply != NULL) {
			printf("%*s(", MTAQ_INDENT + 2, "");
			put_text(stdout, r->last_reply);
			fputs(")\n", stdout);
		}
	}
	putchar('\n');
}

/* json_key - ,"key": before a value (no comma for the first). */
static void json_key(const char *key, bool first)
{
	printf("%s\"%s\":", first ? "" : ",", key);
}

/* json_rcpt - one recipient object. */
static void json_rcpt(const struct queue_rcpt *r)
{
	putchar('{');
	json_key("address", true);
	json_str(stdout, r->addr);
	json_key("state", false);
	json_str(stdout, state_name(r->state));
	json_key("attempts", false);
	printf("%u", r->attempts);
	json_key("last_reply", false);
	json_str(stdout, r->last_reply);
	putchar('}');
}

/* json_envelope - the fields of an envelope (no braces). */
static void json_envelope(const struct queue_envelope *env)
{
	json_key("queue_id", true);
	json_str(stdout, env->qid);
	json_key("held", false);
	fputs(env->flags & QUEUE_FLAG_HELD ? "true" : "false", stdout);
	json_key("damaged", false);
	fputs(env->flags & QUEUE_FLAG_DAMAGED ? "true" : "false", stdout);
	json_key("size", false);
	printf("%llu", (unsigned long long)env->size);
	json_key("arrival", false);
	printf("%lld.%06d", (long long)env->arrival, (int)env->arrival_usec % 1000000);
	json_key("sender", false);
	json_str(stdout, env->sender);
	json_key("client_ip", false);
	json_str(stdout, env->client_ip);
	json_key("client_name", false);
	json_str(stdout, env->client_name);
	json_key("helo", false);
	json_str(stdout, env->helo);
	json_key("listener", false);
	json_str(stdout, env->listener);
	json_key("protocol", false);
	json_str(stdout, env->protocol);
	json_key("auth_user", false);
	json_str(stdout, env->auth_user);
	json_key("next_attempt", false);
	printf("%lld", (long long)env->next_attempt);
	json_key("recipients", false);
	putchar('[');
	for (size_t i = 0; i < env->nrcpt; i++) {
		if (i > 0)
			putchar(',');
		json_rcpt(&env->rcpt[i]);
	}
	putchar(']');
}

/* list_fn - queue_foreach callback for `list`; stops when stdout fails. */
static int list_fn(const char *qid, const struct queue_envelope *env, void *arg)
{
	struct list_state *st = arg;

	if (env == NULL) {
		report_damaged(st->m, qid);
		st->damaged++;
		return 0;
	}
	if (st->m->json) {
		fputs(st->n == 0 ? "[\n{" : ",\n{", stdout);
		json_envelope(env);
		putchar('}');
	} else {
		if (st->n == 0)
			printf("%-15s %8s %-20s %s\n", "-Queue ID-", "--Size--",
			       "----Arrival Time----", "-Sender/Recipient-------");
		list_text(env, (int64_t)time(NULL));
	}
	st->n++;
	st->bytes += env->size;
	return ferror(stdout);
}

/* cmd_list - `mtaq list [--json]`. */
static int cmd_list(struct mtaq *m)
{
	struct list_state st = { .m = m };
	int rc = queue_foreach(m->q, list_fn, &st);

	if (m->json)
		fputs(st.n == 0 ? "[]\n" : "\n]\n", stdout);
	else if (st.n == 0)
		puts("Mail queue is empty");
	else
		printf("-- %llu Kbytes in %zu Request%s.\n",
		       (unsigned long long)((st.bytes + 1023) / 1024), st.n, st.n == 1 ? "" : "s");
	if (rc != QUEUE_OK)
		fprintf(stderr, "mtaq: %s\n", queue_strerror(m->q));
	return rc != QUEUE_OK || st.damaged > 0;
}

/* ---- count ---- */

/* count_fn - queue_foreach callback for `count`. */
static int count_fn(const char *qid, const struct queue_envelope *env, void *arg)
{
	struct list_state *st = arg;

	if (env == NULL) {
		report_damaged(st->m, qid);
		st->damaged++;
	} else {
		st->n++;
	}
	return 0;
}

/* cmd_count - `mtaq count`: the number of messages. */
static int cmd_count(struct mtaq *m)
{
	struct list_state st = { .m = m };
	int rc = queue_foreach(m->q, count_fn, &st);

	if (rc != QUEUE_OK) {
		fprintf(stderr, "mtaq: %s\n", queue_strerror(m->q));
		return 1;
	}
	printf("%zu\n", st.n);
	return st.damaged > 0;
}

/* ---- show ---- */

/* get_or_complain - queue_get with the standard messages; 0 when found. */
static int get_or_complain(struct mtaq *m, const char *qid, struct queue_envelope *env)
{
	int rc = queue_id_valid(qid) ? queue_get(m->q, qid, env) : QUEUE_NOTFOUND;

	if (rc == QUEUE_NOTFOUND)
		fprintf(stderr, "mtaq: no such message: %s\n", qid);
	else if (rc == QUEUE_DAMAGED)
		report_damaged(m, qid);
	else if (rc != QUEUE_OK)
		fprintf(stderr, "mtaq: %s\n", queue_strerror(m->q));
	return rc == QUEUE_OK ? 0 : -1;
}

/* show_field - "name: value" when the value exists. */
static void show_field(const char *name, const char *value)
{
	if (value == NULL)
		return;
	printf("%s: ", name);
	put_text(stdout, value);
	putchar('\n');
}

/* show_envelope - the envelope as "name: value" lines. */
static void show_envelope(const struct queue_envelope *env)
{
	char when[64];

	arrival_text(env->arrival, when, sizeof(when));
	printf("queue_id: %s\nstatus: %s\n", env->qid,
	       env->flags & QUEUE_FLAG_DAMAGED ? "held (damaged body: see mtaq verify)"
	       : env->flags & QUEUE_FLAG_HELD ? "held" : "active");
	printf("arrival: %s (%lld.%06d)\nsize: %llu\n", when, (long long)env->arrival,
	       (int)env->arrival_usec % 1000000, (unsigned long long)env->size);
	show_field("sender", env->sender[0] ? env->sender : "<>");
	show_field("client_name", env->client_name);
	show_field("client_ip", env->client_ip);
	show_field("helo", env->helo);
	show_field("listener", env->listener);
	show_field("protocol", env->protocol);
	show_field("auth_user", env->auth_user);
	if (env->next_attempt != 0) {
		arrival_text(env->next_attempt, when, sizeof(when));
		printf("next_attempt: %s (%lld)\n", when, (long long)env->next_attempt);
	}
	for (size_t i = 0; i < env->nrcpt; i++) {
		printf("recipient: ");
		put_text(stdout, env->rcpt[i].addr);
		printf("  %s, %u attempts\n", state_name(env->rcpt[i].state), env->rcpt[i].attempts);
		show_field("  last_reply", env->rcpt[i].last_reply);
	}
}

/* Collects the header section of a body: up to the first empty line. */
struct headers {
	char *text;
	size_t len;
	FILE *f;
	int nl;			/* newlines just seen (CR ignored) */
	bool done;
};

/* headers_fn - queue_body_fn: keeps bytes until the blank line. */
static int headers_fn(void *arg, const void *data, size_t len)
{
	struct headers *h = arg;
	const unsigned char *p = data;

	for (size_t i = 0; i < len && !h->done; i++) {
		if (p[i] == '\n' && ++h->nl == 2)
			h->done = true;
		else if (p[i] != '\r' && p[i] != '\n')
			h->nl = 0;
		if (!h->done && putc(p[i], h->f) == EOF)
			return -1;
	}
	return 0;
}

/* read_headers - the header section of qid as a string, NULL on error. */
static char *read_headers(struct mtaq *m, const char *qid)
{
	struct headers h = { 0 };
	int rc;

	if ((h.f = open_memstream(&h.text, &h.len)) == NULL) {
		fprintf(stderr, "mtaq: %s\n", strerror(errno));
		return NULL;
	}
	rc = queue_body_read(m->q, qid, headers_fn, &h);
	if (fclose(h.f) != 0 || rc != QUEUE_OK) {
		fprintf(stderr, "mtaq: %s\n", rc != QUEUE_OK ? queue_strerror(m->q) : strerror(errno));
		free(h.text);
		return NULL;
	}
	/* The CR of the empty line's CRLF was kept: it belongs to the separator. */
	if (h.len >= 2 && h.text[h.len - 1] == '\r' && h.text[h.len - 2] == '\n')
		h.text[--h.len] = '\0';
	return h.text;
}

/* put_headers - header lines for a terminal: CRLF as a newline, controls escaped. */
static void put_headers(const char *text)
{
	const char *line = text;

	while (*line != '\0') {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char *copy = strndup(line, len && line[len - 1] == '\r' ? len - 1 : len);

		if (copy == NULL)
			return;
		put_text_tabs(stdout, copy, true);
		putchar('\n');
		free(copy);
		line += nl ? len + 1 : len;
	}
}

/* show_body - `show --body`: the message exactly as stored. */
static int show_body(struct mtaq *m, const char *qid)
{
	int rc = queue_body_write(m->q, qid, stdout);

	if (rc != QUEUE_OK)
		fprintf(stderr, "mtaq: %s\n", queue_strerror(m->q));
	return rc != QUEUE_OK;
}

/* show_json - `show --json`: envelope plus headers or the whole message. */
static int show_json(struct mtaq *m, const struct queue_envelope *env)
{
	char *text = NULL;
	size_t len;
	FILE *f;
	int rc;

	if (m->body) {
		if ((f = open_memstream(&text, &len)) == NULL)
			return 1;
		rc = queue_body_write(m->q, env->qid, f);
		if (fclose(f) != 0 || rc != QUEUE_OK) {
			fprintf(stderr, "mtaq: %s\n", queue_strerror(m->q));
			free(text);
			return 1;
		}
	} else if ((text = read_headers(m, env->qid)) == NULL) {
		return 1;
	}
	/* A NUL in the body would end the JSON string early: report it. */
	putchar('{');
	json_envelope(env);
	json_key(m->body ? "message" : "headers", false);
	json_str(stdout, text);
	if (m->body && strlen(text) != len)
		printf(",\"truncated_at_nul\":true");
	puts("}");
	free(text);
	return 0;
}

/* cmd_show - `mtaq show [--json] [--body] ID`. */
static int cmd_show(struct mtaq *m)
{
	struct queue_envelope env;
	char *headers;
	int rc = 0;

	if (m->nargs != 1) {
		usage(stderr);
		return MTAQ_EXIT_USAGE;
	}
	if (get_or_complain(m, m->args[0], &env) < 0)
		return 1;
	if (m->json) {
		rc = show_json(m, &env);
	} else if (m->body) {
		rc = show_body(m, env.qid);
	} else {
		show_envelope(&env);
		putchar('\n');
		if ((headers = read_headers(m, env.qid)) == NULL)
			rc = 1;
		else
			put_headers(headers);
		free(headers);
	}
	queue_envelope_free(&env);
	return rc;
}

/* ---- delete ---- */

/* cmd_delete - `mtaq delete ID...`: each one, reporting each failure. */
static int cmd_delete(struct mtaq *m)
{
	int failed = 0, deleted = 0;

	if (m->nargs == 0) {
		usage(stderr);
		return MTAQ_EXIT_USAGE;
	}
	for (int i = 0; i < m->nargs; i++) {
		const char *qid = m->args[i];
		int rc = queue_id_valid(qid) ? queue_delete(m->q, qid) : QUEUE_NOTFOUND;

		if (rc == QUEUE_NOTFOUND)
			fprintf(stderr, "mtaq: no such message: %s\n", qid);
		else if (rc != QUEUE_OK)
			fprintf(stderr, "mtaq: %s\n", queue_strerror(m->q));
		else
			printf("%s: deleted\n", qid), deleted++;
		failed += rc != QUEUE_OK;
	}
	return failed > 0;
}

/* ---- hold, release, flush ---- */

/* change_one - one hold/release/flush with the standard messages; 0 when done. */
static int change_one(struct mtaq *m, const char *qid, const char *done)
{
	int rc;

	if (!queue_id_valid(qid))
		rc = QUEUE_NOTFOUND;
	else if (strcmp(m->command, "hold") == 0)
		rc = queue_set_hold(m->q, qid, true);
	else if (strcmp(m->command, "release") == 0)
		rc = queue_set_hold(m->q, qid, false);
	else
		rc = queue_flush_message(m->q, qid);
	if (rc == QUEUE_NOTFOUND)
		fprintf(stderr, "mtaq: no such message: %s\n", qid);
	else if (rc == QUEUE_DAMAGED)
		report_damaged(m, qid);
	else if (rc != QUEUE_OK)
		fprintf(stderr, "mtaq: %s\n", queue_strerror(m->q));
	else if (done != NULL)
		printf("%s: %s\n", qid, done);
	return rc == QUEUE_OK ? 0 : -1;
}

/* cmd_hold - `mtaq hold ID...` and `mtaq release ID...`. */
static int cmd_hold(struct mtaq *m)
{
	int failed = 0;

	if (m->nargs == 0) {
		usage(stderr);
		return MTAQ_EXIT_USAGE;
	}
	for (int i = 0; i < m->nargs; i++)
		failed += change_one(m, m->args[i],
				     m->command[0] == 'h' ? "held" : "released") < 0;
	return failed > 0;
}

/* flush_one - `flush ID`: says so when the message stays held. */
static int flush_one(struct mtaq *m, const char *qid)
{
	struct queue_envelope env;

	if (change_one(m, qid, NULL) < 0)
		return -1;
	if (queue_get(m->q, qid, &env) == QUEUE_OK) {
		printf("%s: flushed%s\n", qid, env.flags & QUEUE_FLAG_HELD ?
		       " (held: delivered once released)" : "");
		queue_envelope_free(&env);
	} else {
		printf("%s: flushed\n", qid);	/* delivered and gone already */
	}
	return 0;
}

struct flush_state {
	struct mtaq *m;
	int64_t now;
	size_t flushed, failed, damaged;
};

/* flush_fn - queue_foreach callback for `flush`: every deferred message.
 * No lock is held while it runs, so changing the message here is safe. */
static int flush_fn(const char *qid, const struct queue_envelope *env, void *arg)
{
	struct flush_state *st = arg;

	if (env == NULL) {
		report_damaged(st->m, qid);
		st->damaged++;
		return 0;
	}
	if (env->next_attempt <= st->now)
		return 0;	/* due already */
	if (change_one(st->m, qid, NULL) == 0)
		st->flushed++;
	else
		st->failed++;
	return 0;
}

/* cmd_flush - `mtaq flush [ID...]`: due now; held messages stay held. */
static int cmd_flush(struct mtaq *m)
{
	struct flush_state st = { .m = m, .now = (int64_t)time(NULL) };
	int failed = 0, rc;

	if (m->nargs > 0) {
		for (int i = 0; i < m->nargs; i++)
			failed += flush_one(m, m->args[i]) < 0;
		return failed > 0;
	}
	if ((rc = queue_foreach(m->q, flush_fn, &st)) != QUEUE_OK)
		fprintf(stderr, "mtaq: %s\n", queue_strerror(m->q));
	printf("%zu deferred message%s flushed\n", st.flushed, st.flushed == 1 ? "" : "s");
	return rc != QUEUE_OK || st.failed > 0 || st.damaged > 0;
}

/* ---- summary ---- */

struct domain {
	char *name;
	uint64_t count[MTAQ_NBUCKETS];
	uint64_t total, bytes;
	const char *last_qid;	/* counts a message's size once per domain */
};

struct summary {
	struct mtaq *m;
	void *tree;		/* tsearch tree of struct domain */
	struct domain all;
	struct domain **sorted;
	size_t ndomains, damaged;
	time_t now;
	bool oom;
};

/* age_bucket - qshape column for a message that arrived at t. */
static int age_bucket(time_t now, int64_t t)
{
	int64_t minutes = (now - t) / 60;
	int64_t edge = 5;

	for (int i = 0; i < MTAQ_NBUCKETS - 1; i++, edge *= 2)
		if (minutes <= edge)
			return i;
	return MTAQ_NBUCKETS - 1;
}

/* domain_cmp - tsearch order: by name. */
static int domain_cmp(const void *a, const void *b)
{
	return strcmp(((const struct domain *)a)->name, ((const struct domain *)b)->name);
}

/* domain_name - addr's domain, lower-cased and escaped for printing. */
static char *domain_name(const char *addr)
{
	const char *at = strrchr(addr, '@');
	char *name = NULL;
	size_t len;
	FILE *f = open_memstream(&name, &len);

	if (f == NULL)
		return NULL;
	put_text(f, at && at[1] ? at + 1 : "(no domain)");
	if (fclose(f) != 0) {
		free(name);
		return NULL;
	}
	/* Domains compare case-insensitively. */
	for (char *p = name; *p; p++)
		*p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
	return name;
}

/* domain_of - the summary row for addr's domain, created when new. */
static struct domain *domain_of(struct summary *s, const char *addr)
{
	struct domain key = { .name = domain_name(addr) }, *d, **found;

	if (key.name == NULL)
		return NULL;
	if ((found = tfind(&key, &s->tree, domain_cmp)) != NULL) {
		free(key.name);
		return *found;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		free(key.name);
		return NULL;
	}
	d->name = key.name;
	if (tsearch(d, &s->tree, domain_cmp) == NULL) {
		free(d->name);
		free(d);
		return NULL;
	}
	s->ndomains++;
	return d;
}

/* domain_add - counts one recipient of env in row d. */
static void domain_add(struct domain *d, const struct queue_envelope *env, int bucket)
{
	d->count[bucket]++;
	d->total++;
	if (d->last_qid != env->qid) {
		d->bytes += env->size;
		d->last_qid = env->qid;
	}
}

/* summary_fn - queue_foreach callback: counts the not yet delivered recipients. */
static int summary_fn(const char *qid, const struct queue_envelope *env, void *arg)
{
	struct summary *s = arg;
	int bucket;

	if (env == NULL) {
		report_damaged(s->m, qid);
		s->damaged++;
		return 0;
	}
	bucket = age_bucket(s->now, env->arrival);
	for (size_t i = 0; i < env->nrcpt; i++) {
		struct domain *d;

		if (env->rcpt[i].state == QUEUE_RCPT_SENT)
			continue;
		if ((d = domain_of(s, env->rcpt[i].addr)) == NULL) {
			s->oom = true;
			return 1;
		}
		domain_add(d, env, bucket);
		domain_add(&s->all, env, bucket);
	}
	return 0;
}

/* summary_row - one line of the table. */
static void summary_row(const char *name, const struct domain *d)
{
	printf("%30s %6llu", name, (unsigned long long)d->total);
	for (int i = 0; i < MTAQ_NBUCKETS; i++)
		printf(" %5llu", (unsigned long long)d->count[i]);
	printf(" %8llu\n", (unsigned long long)((d->bytes + 1023) / 1024));
}

/* summary_collect - twalk_r callback gathering the rows for sorting. */
static void summary_collect(const void *node, VISIT which, void *arg)
{
	struct summary *s = arg;

	if (which == postorder || which == leaf)
		s->sorted[s->ndomains++] = *(struct domain *const *)node;
}

/* summary_order - busiest domain first, then by name. */
static int summary_order(const void *a, const void *b)
{
	const struct domain *x = *(struct domain *const *)a, *y = *(struct domain *const *)b;

	if (x->total != y->total)
		return x->total < y->total ? 1 : -1;
	return strcmp(x->name, y->name);
}

/* domain_free - tdestroy callback. */
static void domain_free(void *p)
{
	struct domain *d = p;

	free(d->name);
	free(d);
}

/* summary_print - the qshape-style table. */
static void summary_print(struct summary *s)
{
	printf("%30s %6s", "", "T");
	for (int i = 0, edge = 5; i < MTAQ_NBUCKETS - 1; i++, edge *= 2)
		printf(" %5d", edge);
	printf(" %5s %8s\n", "1280+", "Kbytes");
	summary_row("TOTAL", &s->all);
	for (size_t i = 0; i < s->ndomains; i++)
		summary_row(s->sorted[i]->name, s->sorted[i]);
}

/* cmd_summary - `mtaq summary`. */
static int cmd_summary(struct mtaq *m)
{
	struct summary s = { .m = m, .now = time(NULL) };
	int rc = queue_foreach(m->q, summary_fn, &s), status = 0;
	size_t n = s.ndomains;

	if (rc != QUEUE_OK || s.oom) {
		fprintf(stderr, "mtaq: %s\n", s.oom ? "out of memory" : queue_strerror(m->q));
		status = 1;
	} else if ((s.sorted = calloc(n ? n : 1, sizeof(*s.sorted))) == NULL) {
		fprintf(stderr, "mtaq: out of memory\n");
		status = 1;
	} else {
		s.ndomains = 0;
		twalk_r(s.tree, summary_collect, &s);
		qsort(s.sorted, s.ndomains, sizeof(*s.sorted), summary_order);
		summary_print(&s);
	}
	free(s.sorted);
	tdestroy(s.tree, domain_free);
	return status || s.damaged > 0;
}

/* ---- stats ---- */

enum { TODAY = 0, PERIOD = 1 };

struct rule_row {
	char *name;
	uint64_t rejected[2], conns[2];
	struct sketch_hll clients[2];	/* distinct addresses (merged days) */
};

struct stats {
	struct queue *q;
	void *rules;		/* tsearch tree of struct rule_row */
	uint64_t auth[2], unauth[2];
	uint64_t committed[2];	/* commit/messages */
	uint64_t syncs[QUEUE_SYNC_BUCKETS][2];	/* commit/syncs/N by bucket */
	/* The period's refused HELO names and client addresses: each day's
	 * top-K merged (and the keys written before issue 11 added). */
	struct sketch_top *helo_top, *ip_top;
	uint64_t hash_key[2];	/* the spool's, for addresses in old keys */
	struct rule_row **rule_list;
	size_t nrules;
	bool today;		/* the day being read is today */
	bool any, oom;
	bool failed;		/* a read failed (said) */
	bool damaged;		/* a sketch did not decode (said, skipped) */
	char day[QUEUE_STATS_DAY_LEN + 1], first[QUEUE_STATS_DAY_LEN + 1];
};

/* name_cmp - tsearch order of rows (both structs start with the name). */
static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* row_of - the row named name (len bytes) in tree, created with size bytes when new. */
static void *row_of(void **tree, const char *name, size_t len, size_t size, size_t *count)
{
	char *key = strndup(name, len);
	char **found, **row;

	if (key == NULL)
		return NULL;
	if ((found = tfind(&key, tree, name_cmp)) != NULL) {
		free(key);
		return *found;
	}
	if ((row = calloc(1, size)) == NULL) {
		free(key);
		return NULL;
	}
	*row = key;
	if (tsearch(row, tree, name_cmp) == NULL) {
		free(key);
		free(row);
		return NULL;
	}
	(*count)++;
	return row;
}

/* count2 - adds n to the period and, for today's keys, to today. */
static void count2(const struct stats *st, uint64_t v[2], uint64_t n)
{
	v[PERIOD] += n;
	if (st->today)
		v[TODAY] += n;
}

/* count_ip - one "ip/RULE/IP" key of before issue 11 (value: the
 * address's refusals): into the rule's address sketches, hashed as mtad
 * hashes them, and the top addresses. */
static int count_ip(struct stats *st, const struct queue_stats_key *k, uint64_t value)
{
	struct rule_row *r;
	uint64_t h;

	r = row_of(&st->rules, k->name, k->name_len, sizeof(*r), &st->nrules);
	if (r == NULL)
		return -1;
	h = sketch_hash(st->hash_key, k->ip, strlen(k->ip));
	sketch_hll_add(&r->clients[PERIOD], h);
	if (st->today)
		sketch_hll_add(&r->clients[TODAY], h);
	(void)sketch_top_add(st->ip_top, k->ip, value);
	return 0;
}

/* day_blob - the stored sketch key (of the day being read) into buf;
 * its length, 0 when there is none, -1 on error (said). */
static long day_blob(struct stats *st, const char *key, void **buf)
{
	size_t len;
	int rc;

	rc = queue_stats_get(st->q, key, buf, &len);
	if (rc == QUEUE_NOTFOUND)
		return 0;
	if (rc != QUEUE_OK) {
		fprintf(stderr, "mtaq: %s\n", queue_strerror(st->q));
		st->failed = true;
		return -1;
	}
	if (len == 0) {		/* not a sketch: as if none */
		free(*buf);
		*buf = NULL;
	}
	return (long)len;
}

/* read_clients - the day's address sketch of rule r, merged into today's
 * and the period's. A sketch that does not decode is said and skipped. */
static int read_clients(struct stats *st, struct rule_row *r)
{
	char key[QUEUE_STATS_KEY_MAX + 1];
	struct sketch_hll *h;
	void *buf = NULL;
	long len;

	if (queue_stats_key_format(key, sizeof(key), st->day, QUEUE_STATS_CLIENTS, r->name, 0) < 0)
		return 0;	/* a name no key can hold: it has no sketch */
	if ((len = day_blob(st, key, &buf)) <= 0)
		return (int)len;
	if ((h = malloc(sizeof(*h))) == NULL) {
		free(buf);
		return -1;
	}
	if (sketch_hll_decode(h, buf, (size_t)len) < 0) {
		fprintf(stderr, "mtaq: %s is damaged; skipped\n", key);
		st->damaged = true;
	} else {
		sketch_hll_merge(&r->clients[PERIOD], h);
		if (st->today)
			sketch_hll_merge(&r->clients[TODAY], h);
	}
	free(h);
	free(buf);
	return 0;
}

/* read_top - the day's top-K what (QUEUE_STATS_TOP_HELO, _IP) merged into into. */
static int read_top(struct stats *st, enum queue_stats_kind what, struct sketch_top *into)
{
	char key[QUEUE_STATS_KEY_MAX + 1];
	struct sketch_top *t;
	void *buf = NULL;
	long len;

	if (queue_stats_key_format(key, sizeof(key), st->day, what, NULL, 0) < 0)
		return 0;	/* not reached: the day is queue_stats_day's */
	if ((len = day_blob(st, key, &buf)) <= 0)
		return (int)len;
	if ((t = malloc(sizeof(*t))) == NULL) {
		free(buf);
		return -1;
	}
	if (sketch_top_decode(t, buf, (size_t)len) < 0) {
		fprintf(stderr, "mtaq: %s is damaged; skipped\n", key);
		st->damaged = true;
	} else {
		sketch_top_merge(into, t);
	}
	free(t);
	free(buf);
	return 0;
}

/* sync_total - log syncs that carried messages, in group g. */
static uint64_t sync_total(const struct stats *st, int g)
{
	uint64_t n = 0;

	for (size_t b = 0; b < QUEUE_SYNC_BUCKETS; b++)
		n += st->syncs[b][g];
	return n;
}

/* sync_label - "1", "2-3", ... "64+": the batch sizes of bucket b. */
static void sync_label(size_t b, char *buf, size_t size)
{
	if (b == 0)
		snprintf(buf, size, "1");
	else if (b + 1 == QUEUE_SYNC_BUCKETS)
		snprintf(buf, size, "%u+", 1u << b);
	else
		snprintf(buf, size, "%u-%u", 1u << b, (2u << b) - 1);
}

/* count_rule - a reject/RULE or conn/RULE counter: the rule's row, and
 * for reject/RULE its address sketch (written with it); -1 on ENOMEM. */
static int count_rule(struct stats *st, const struct queue_stats_key *k, uint64_t **v)
{
	bool reject = k->kind == QUEUE_STATS_REJECT;
	struct rule_row *r = row_of(&st->rules, k->name, k->name_len, sizeof(*r), &st->nrules);

	if (r == NULL)
		return -1;
	*v = reject ? r->rejected : r->conns;
	return reject ? read_clients(st, r) : 0;
}

/* stats_fn - queue_stats_foreach callback for one day's keys, taken
 * apart by queue_stats_key_parse; kinds it does not know are skipped. */
static int stats_fn(void *arg, const char *key, uint64_t value)
{
	struct stats *st = arg;
	struct queue_stats_key k;
	uint64_t *v = NULL;
	int rc = 0;

	if (queue_stats_key_parse(key, &k) < 0)
		return 0;
	switch (k.kind) {
	case QUEUE_STATS_REJECT:
	case QUEUE_STATS_CONN: rc = count_rule(st, &k, &v); break;
	case QUEUE_STATS_OLD_IP: rc = count_ip(st, &k, value); break;
	case QUEUE_STATS_OLD_HELO:
		(void)sketch_top_add(st->helo_top, k.name, value);
		break;
	case QUEUE_STATS_COMMIT_MESSAGES: v = st->committed; break;
	case QUEUE_STATS_COMMIT_SYNCS: v = st->syncs[k.bucket]; break;
	case QUEUE_STATS_ACCEPT_AUTH: v = st->auth; break;
	case QUEUE_STATS_ACCEPT_UNAUTH: v = st->unauth; break;
	default: break;		/* sketches (read by day), and what we do not know */
	}
	if (v != NULL)
		count2(st, v, value);
	if (rc < 0 && !st->failed)
		st->oom = true;
	return st->oom || st->failed;
}

/* any_fn - queue_stats_foreach callback: is there any counter at all? */
static int any_fn(void *arg, const char *key, uint64_t value)
{
	(void)key;
	(void)value;
	*(bool *)arg = true;
	return 1;
}

/* rule_rank - the place of a rule: the policy's rules in the order they
 * are checked (enum policy_rule, relay last), then the rest. */
static size_t rule_rank(const char *name)
{
	int r = policy_rule_lookup(name);

	return r < 0 ? POLICY_NRULES : (size_t)r;
}

/* rule_list_order - qsort: known rules in check order, others alphabetically. */
static int rule_list_order(const void *a, const void *b)
{
	const struct rule_row *x = *(struct rule_row *const *)a, *y = *(struct rule_row *const *)b;
	size_t rx = rule_rank(x->name), ry = rule_rank(y->name);

	if (rx != ry)
		return rx < ry ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* collect_rule - twalk_r callback gathering rows for sorting. */
static void collect_rule(const void *node, VISIT which, void *arg)
{
	struct stats *st = arg;

	if (which == postorder || which == leaf)
		st->rule_list[st->nrules++] = *(struct rule_row *const *)node;
}

/* stats_sort - the rules as a sorted array, the tops sorted; -1 on ENOMEM. */
static int stats_sort(struct stats *st)
{
	size_t nr = st->nrules;

	st->rule_list = calloc(nr ? nr : 1, sizeof(*st->rule_list));
	if (st->rule_list == NULL)
		return -1;
	st->nrules = 0;
	twalk_r(st->rules, collect_rule, st);
	qsort(st->rule_list, st->nrules, sizeof(*st->rule_list), rule_list_order);
	sketch_top_sort(st->helo_top);
	sketch_top_sort(st->ip_top);
	return 0;
}

/* rule_free - tdestroy callback. */
static void rule_free(void *p)
{
	struct rule_row *r = p;

	free(r->name);
	free(r);
}

/* iso_day - "YYYY-MM-DD" from a key's "YYYYMMDD". */
static void iso_day(const char *day, char out[11])
{
	snprintf(out, 11, "%.4s-%.2s-%.2s", day, day + 4, day + 6);
}

/* json_group - {"rejected":..,"connections":..,"clients":..,
 * "clients_estimated":..} of one column group. */
static void json_group(const struct rule_row *r, int g)
{
	printf("{\"rejected\":%llu,\"connections\":%llu,\"clients\":%llu,"
	       "\"clients_estimated\":%s}",
	       (unsigned long long)r->rejected[g], (unsigned long long)r->conns[g],
	       (unsigned long long)sketch_hll_count(&r->clients[g]),
	       sketch_hll_exact(&r->clients[g]) ? "false" : "true");
}

/* json_top - a top list: [{"name":..,"count":..,"max_overcount":..},...]. */
static void json_top(const struct sketch_top *t)
{
	size_t top = t->n < MTAQ_TOP_HELO ? t->n : MTAQ_TOP_HELO;

	putchar('[');
	for (size_t i = 0; i < top; i++) {
		fputs(i > 0 ? ",{\"name\":" : "{\"name\":", stdout);
		json_str(stdout, t->item[i].name);
		printf(",\"count\":%llu,\"max_overcount\":%llu}",
		       (unsigned long long)t->item[i].count, (unsigned long long)t->item[i].error);
	}
	putchar(']');
}

/* stats_json - `stats --json`. */
static void stats_json(const struct stats *st, int days)
{
	char today[11];

	iso_day(st->day, today);
	printf("{\"today\":\"%s\",\"days\":%d,\"rules\":{", today, days);
	for (size_t i = 0; i < st->nrules; i++) {
		const struct rule_row *r = st->rule_list[i];

		if (i > 0)
			putchar(',');
		json_str(stdout, r->name);
		fputs(":{\"today\":", stdout);
		json_group(r, TODAY);
		fputs(",\"period\":", stdout);
		json_group(r, PERIOD);
		putchar('}');
	}
	printf("},\"accepted\":{\"today\":{\"authenticated\":%llu,\"unauthenticated\":%llu},"
	       "\"period\":{\"authenticated\":%llu,\"unauthenticated\":%llu}},"
	       "\"top_kept_per_day\":%d,\"top_helo\":",
	       (unsigned long long)st->auth[TODAY], (unsigned long long)st->unauth[TODAY],
	       (unsigned long long)st->auth[PERIOD], (unsigned long long)st->unauth[PERIOD],
	       SKETCH_TOP_K);
	json_top(st->helo_top);
	fputs(",\"top_clients\":", stdout);
	json_top(st->ip_top);
	fputs(",\"group_commit\":{", stdout);
	for (int g = 0; g < 2; g++)
		printf("\"%s\":{\"messages\":%llu,\"syncs\":%llu},", g == TODAY ? "today" : "period",
		       (unsigned long long)st->committed[g], (unsigned long long)sync_total(st, g));
	fputs("\"period_syncs_by_batch\":{", stdout);
	for (size_t b = 0; b < QUEUE_SYNC_BUCKETS; b++) {
		char label[24];

		sync_label(b, label, sizeof(label));
		printf("%s\"%s\":%llu", b ? "," : "", label, (unsigned long long)st->syncs[b][PERIOD]);
	}
	puts("}}}");
}

/* stats_text_commit - the group commit: messages per log sync. */
static void stats_text_commit(const struct stats *st)
{
	printf("\ngroup commit (messages made durable per log sync)\n");
	for (int g = 0; g < 2; g++) {
		uint64_t syncs = sync_total(st, g);

		printf("  %-7s %llu messages in %llu log syncs", g == TODAY ? "today:" : "period:",
		       (unsigned long long)st->committed[g], (unsigned long long)syncs);
		if (syncs > 0)
			printf(", %.1f per sync", (double)st->committed[g] / (double)syncs);
		putchar('\n');
	}
	if (sync_total(st, PERIOD) == 0)
		return;
	printf("  log syncs by messages per sync (period):");
	for (size_t b = 0; b < QUEUE_SYNC_BUCKETS; b++) {
		char label[24];

		sync_label(b, label, sizeof(label));
		printf(" %s: %llu", label, (unsigned long long)st->syncs[b][PERIOD]);
	}
	putchar('\n');
}

/* group_title - "----- label -----" over one column group of width w. */
static void group_title(const char *label, int w)
{
	int pad = w - (int)strlen(label) - 2;

	printf("  %.*s %s %.*s", pad / 2, "--------------------", label, pad - pad / 2,
	       "--------------------");
}

/* text_count - a count right-aligned in w columns, "~" before it when estimated. */
static void text_count(uint64_t n, bool estimated, int w)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%s%llu", estimated ? "~" : "", (unsigned long long)n);
	printf("%*s", w, buf);
}

/* stats_clients_estimated - is any address count an estimate? */
static bool stats_clients_estimated(const struct stats *st)
{
	for (size_t i = 0; i < st->nrules; i++)
		for (int g = 0; g < 2; g++)
			if (!sketch_hll_exact(&st->rule_list[i]->clients[g]))
				return true;
	return false;
}

/* text_top - one top list. Counts that may be too high are marked "~"
 * and, when there are any, a column gives the least each can be. */
static void text_top(const char *title, const char *what, const struct sketch_top *t)
{
	size_t top = t->n < MTAQ_TOP_HELO ? t->n : MTAQ_TOP_HELO;
	bool approx = false;

	if (top == 0)
		return;
	for (size_t i = 0; i < top; i++)
		approx |= t->item[i].error > 0;
	printf("\n%s\n%9s  %s%s\n", title, "count", approx ? "at least  " : "", what);
	for (size_t i = 0; i < top; i++) {
		text_count(t->item[i].count, t->item[i].error > 0, 9);
		if (approx)
			printf("  %8llu",
			       (unsigned long long)(t->item[i].count - t->item[i].error));
		fputs("  ", stdout);
		put_text(stdout, t->item[i].name);
		putchar('\n');
	}
	if (approx)
		printf("(~: approximate: each day keeps only its %d most frequent; the true\n"
		       " count is between \"at least\" and \"count\")\n",
		       SKETCH_TOP_K);
}

/* stats_text - the report for a terminal. Keys were checked by
 * queue_stats_foreach (graphic ASCII only), so names print as they are. */
static void stats_text(const struct stats *st, int days)
{
	char today[11], first[11];

	iso_day(st->day, today);
	iso_day(st->first, first);
	if (days == 0)
		printf("HELO policy statistics for today (%s)\n\n", today);
	else
		printf("HELO policy statistics for today (%s) and the last %d day%s (%s to %s)\n\n",
		       today, days, days == 1 ? "" : "s", first, today);
	if (st->nrules == 0) {
		puts("no rejected attempts in this period");
	} else {
		printf("%-18s", "");
		group_title("today", 29);
		group_title("period", 29);
		printf("\n%-18s", "rule");
		for (int g = 0; g < 2; g++)
			printf("  %9s %11s %7s", "rejected", "connections", "clients");
		putchar('\n');
		for (size_t i = 0; i < st->nrules; i++) {
			const struct rule_row *r = st->rule_list[i];

			printf("%-18s", r->name);
			for (int g = 0; g < 2; g++) {
				printf("  %9llu %11llu ", (unsigned long long)r->rejected[g],
				       (unsigned long long)r->conns[g]);
				text_count(sketch_hll_count(&r->clients[g]),
					   !sketch_hll_exact(&r->clients[g]), 7);
			}
			putchar('\n');
		}
		if (stats_clients_estimated(st))
			printf("(~: estimated, within a few per cent)\n");
	}
	printf("\naccepted messages   today:  %llu authenticated, %llu unauthenticated\n"
	       "                    period: %llu authenticated, %llu unauthenticated\n",
	       (unsigned long long)st->auth[TODAY], (unsigned long long)st->unauth[TODAY],
	       (unsigned long long)st->auth[PERIOD], (unsigned long long)st->unauth[PERIOD]);
	stats_text_commit(st);
	text_top("top rejected HELO names (period)", "name", st->helo_top);
	text_top("top rejected client addresses (period)", "address", st->ip_top);
}

/* read_hash_key - the spool's sketch hash key, for addresses in old keys. */
static int read_hash_key(struct stats *st)
{
	unsigned char *buf = NULL;
	size_t len;
	int rc = queue_stats_get(st->q, QUEUE_STATS_HASH_KEY, (void **)&buf, &len);

	if (rc == QUEUE_ERROR) {
		fprintf(stderr, "mtaq: %s\n", queue_strerror(st->q));
		return -1;
	}
	for (size_t i = 0; rc == QUEUE_OK && len == 16 && i < 16; i++)
		st->hash_key[i / 8] = st->hash_key[i / 8] << 8 | buf[i];
	free(buf);
	return 0;
}

/* stats_read - reads today and the days before it into st. */
static int stats_read(struct mtaq *m, struct stats *st, time_t now)
{
	if (read_hash_key(st) < 0)
		return -1;
	for (int off = -m->days; off <= 0; off++) {
		char prefix[QUEUE_STATS_KEY_MAX + 1];

		if (queue_stats_day(now, off, st->day) < 0) {
			fprintf(stderr, "mtaq: cannot compute the local date\n");
			return -1;
		}
		if (off == -m->days)
			memcpy(st->first, st->day, sizeof(st->first));
		st->today = off == 0;
		if (queue_stats_key_format(prefix, sizeof(prefix), st->day, QUEUE_STATS_DAY,
					   NULL, 0) < 0 ||
		    queue_stats_foreach(m->q, prefix, stats_fn, st) != QUEUE_OK || st->oom) {
			fprintf(stderr, "mtaq: %s\n", st->oom ? "out of memory" : queue_strerror(m->q));
			return -1;
		}
		if (st->failed || read_top(st, QUEUE_STATS_TOP_HELO, st->helo_top) < 0 ||
		    read_top(st, QUEUE_STATS_TOP_IP, st->ip_top) < 0) {
			if (!st->failed)
				fprintf(stderr, "mtaq: out of memory\n");
			return -1;
		}
	}
	return 0;
}

/* stats_init_read - empty tops, then the days read into them. */
static int stats_init_read(struct mtaq *m, struct stats *st)
{
	sketch_top_init(st->helo_top);
	sketch_top_init(st->ip_top);
	return stats_read(m, st, time(NULL));
}

/* cmd_stats - `mtaq stats [--json] [--days N]`. */
static int cmd_stats(struct mtaq *m)
{
	struct stats st = { .q = m->q };
	int status = 0;

	if (queue_stats_foreach(m->q, "", any_fn, &st.any) != QUEUE_OK) {
		fprintf(stderr, "mtaq: %s\n", queue_strerror(m->q));
		return 1;
	}
	if (!st.any && !m->json) {
		puts("no policy statistics recorded yet");
		return 0;
	}
	st.helo_top = malloc(sizeof(*st.helo_top));
	st.ip_top = malloc(sizeof(*st.ip_top));
	if (st.helo_top == NULL || st.ip_top == NULL) {
		fprintf(stderr, "mtaq: out of memory\n");
		status = 1;
	} else if (stats_init_read(m, &st) < 0) {
		status = 1;
	} else if (stats_sort(&st) < 0) {
		fprintf(stderr, "mtaq: out of memory\n");
		status = 1;
	} else if (m->json) {
		stats_json(&st, m->days);
	} else {
		stats_text(&st, m->days);
	}
	free(st.rule_list);
	free(st.helo_top);
	free(st.ip_top);
	tdestroy(st.rules, rule_free);
	return status || st.damaged;
}

/* ---- main ---- */

/* parse_days - the operand of --days; -1 when not 0..MTAQ_MAX_DAYS. */
static int parse_days(const char *s, int *days)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || n < 0 || n > MTAQ_MAX_DAYS) {
		fprintf(stderr, "mtaq: --days wants a number from 0 to %d\n", MTAQ_MAX_DAYS);
		return -1;
	}
	*days = (int)n;
	return 0;
}

/* parse_args - options may stand before or after the command. */
static int parse_args(struct mtaq *m, int argc, char **argv)
{
	bool dashdash = false;

	m->config = MTAQ_DEFAULT_CONFIG;
	m->days = MTAQ_DEFAULT_DAYS;
	for (int i = 1; i < argc; i++) {
		char *a = argv[i];

		if (!dashdash && strcmp(a, "--") == 0)
			dashdash = true;
		else if (!dashdash && strcmp(a, "-c") == 0 && i + 1 < argc)
			m->config = argv[++i];
		else if (!dashdash && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0))
			return 1;
		else if (!dashdash && strcmp(a, "--json") == 0)
			m->json = true;
		else if (!dashdash && strcmp(a, "--body") == 0)
			m->body = true;
		else if (!dashdash && strcmp(a, "--days") == 0 && i + 1 < argc) {
			if (parse_days(argv[++i], &m->days) < 0)
				return -1;
		} else if (!dashdash && strncmp(a, "--days=", 7) == 0) {
			if (parse_days(a + 7, &m->days) < 0)
				return -1;
		}
		else if (!dashdash && a[0] == '-' && a[1] != '\0')
			return -1;
		else if (m->command == NULL)
			m->command = a;
		else
			m->args[m->nargs++] = a;
	}
	return m->command == NULL ? -1 : 0;
}

/* load_options - the queue options of the configuration; cfg is the
 * caller's to free (the options point into it). 0 or -1 (said why). */
static int load_options(struct mtaq *m, struct mtad_config *cfg, struct queue_options *opt)
{
	char err[512];

	if (mtad_config_load(cfg, &config_checks, m->config, err, sizeof(err)) < 0) {
		fprintf(stderr, "mtaq: %s\n", err);
		return -1;
	}
	*opt = (struct queue_options){ .spool_directory = cfg->spool_directory,
				       .cache_size = cfg->db_cache_size,
				       .log_buffer_size = cfg->db_log_buffer_size,
				       .checkpoint_interval = cfg->checkpoint_interval };
	return 0;
}

/*
 * take_spool - the spool lock for a command that must run with mtad
 * stopped (recover, migrate); held until mtaq exits. 0 or -1 (said why).
 */
static int take_spool(struct mtaq *m, const char *spool)
{
	char err[512];

	if ((m->lock_fd = queue_spool_lock(spool, err, sizeof(err))) >= 0)
		return 0;
	if (errno == EAGAIN)
		fprintf(stderr, "mtaq: mtad is running on %s: stop it before `mtaq %s`%s\n", spool,
			m->command, strcmp(m->command, "recover") == 0 ?
			" (it recovers the queue itself at start)" : "");
	else
		fprintf(stderr, "mtaq: %s\n", err);
	return -1;
}

/*
 * How a command opens the spool: reading only (DB_RDONLY: works on a full
 * spool, cannot change anything), joining to change messages, as the
 * recoverer (spool lock held, mtad stopped), or not at all (migrate opens
 * it itself: it may be of the old format).
 */
enum mtaq_open { OPEN_READ, OPEN_WRITE, OPEN_RECOVER, OPEN_SELF };

/* open_queue - the spool named by the configuration, opened as how says. */
static int open_queue(struct mtaq *m, enum mtaq_open how)
{
	struct mtad_config *cfg = calloc(1, sizeof(*cfg));
	struct queue_options opt;
	char err[512];

	if (cfg == NULL) {
		fprintf(stderr, "mtaq: out of memory\n");
		return -1;
	}
	if (load_options(m, cfg, &opt) < 0) {
		free(cfg);
		return -1;
	}
	opt.read_only = how == OPEN_READ;
	opt.mode = how == OPEN_RECOVER ? QUEUE_RECOVER : QUEUE_JOIN;
	if (how == OPEN_RECOVER && take_spool(m, cfg->spool_directory) < 0) {
		free(cfg);
		return -1;
	}
	m->q = queue_open(&opt, err, sizeof(err));
	free(cfg);
	if (m->q == NULL) {
		fprintf(stderr, "mtaq: %s\n", err);
		return -1;
	}
	return 0;
}

/* ---- verify, migrate ---- */

/* verify_report - one damaged message. */
static void verify_report(void *arg, const char *qid, const char *why)
{
	(void)arg;
	printf("%s: damaged: ", qid);
	put_text_tabs(stdout, why, false);
	putchar('\n');
}

/* cmd_verify - `mtaq verify`: exit 1 when any message is damaged. */
static int cmd_verify(struct mtaq *m)
{
	size_t checked = 0, damaged = 0;
	int rc = queue_verify(m->q, verify_report, NULL, &checked, &damaged);

	if (rc != QUEUE_OK) {
		fprintf(stderr, "mtaq: verify: %s\n", queue_strerror(m->q));
		return 1;
	}
	printf("%zu messages verified, %zu damaged\n", checked, damaged);
	return damaged > 0;
}

/* cmd_migrate - `mtaq migrate`: opens the spool itself (old format allowed). */
static int cmd_migrate(struct mtaq *m)
{
	struct mtad_config *cfg = calloc(1, sizeof(*cfg));
	struct queue_options opt;
	char err[512];
	bool done = false;
	int rc;

	if (cfg == NULL || load_options(m, cfg, &opt) < 0) {
		free(cfg);
		return 1;
	}
	opt.mode = QUEUE_RECOVER;	/* alone with the spool: recovery first */
	if (take_spool(m, cfg->spool_directory) < 0) {
		free(cfg);
		return 1;
	}
	rc = queue_migrate(&opt, stdout, &done, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "mtaq: migrate: %s\n", err);
	else if (!done)
		printf("mtaq: %s is in the current format already: nothing to do\n",
		       cfg->spool_directory);
	free(cfg);
	return rc < 0;
}

/*
 * cmd_recover - `mtaq recover`: open_queue took the spool lock and ran
 * recovery; the close (in main) leaves the clean marker, then the lock
 * goes with the process.
 */
static int cmd_recover(struct mtaq *m)
{
	struct list_state st = { .m = m };

	if (queue_foreach(m->q, count_fn, &st) != QUEUE_OK) {
		fprintf(stderr, "mtaq: recovered, but cannot read the queue: %s\n",
			queue_strerror(m->q));
		return 1;
	}
	printf("recovered: %zu messages in the queue\n", st.n);
	return 0;
}

/* run_command - dispatches on the command name. */
static int run_command(struct mtaq *m)
{
	static const struct {
		const char *name;
		int (*fn)(struct mtaq *);
		bool takes_args;
		enum mtaq_open how;
	} cmds[] = {
		{ "list", cmd_list, false, OPEN_READ },
		{ "show", cmd_show, true, OPEN_READ },
		{ "count", cmd_count, false, OPEN_READ },
		{ "summary", cmd_summary, false, OPEN_READ },
		{ "stats", cmd_stats, false, OPEN_READ },
		{ "verify", cmd_verify, false, OPEN_READ },
		{ "delete", cmd_delete, true, OPEN_WRITE },
		{ "hold", cmd_hold, true, OPEN_WRITE },
		{ "release", cmd_hold, true, OPEN_WRITE },
		{ "flush", cmd_flush, true, OPEN_WRITE },
		{ "recover", cmd_recover, false, OPEN_RECOVER },
		{ "migrate", cmd_migrate, false, OPEN_SELF },
	};

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(m->command, cmds[i].name) != 0)
			continue;
		if (!cmds[i].takes_args && m->nargs > 0) {
			fprintf(stderr, "mtaq: %s takes no operand\n", m->command);
			return MTAQ_EXIT_USAGE;
		}
		if (cmds[i].how != OPEN_SELF && open_queue(m, cmds[i].how) < 0)
			return 1;
		return cmds[i].fn(m);
	}
	fprintf(stderr, "mtaq: unknown command: %s\n", m->command);
	usage(stderr);
	return MTAQ_EXIT_USAGE;
}

int main(int argc, char **argv)
{
	struct mtaq m = { .lock_fd = -1 };
	sigset_t hold, old;
	int rc;

	if ((m.args = calloc((size_t)argc, sizeof(*m.args))) == NULL)
		return 1;
	if ((rc = parse_args(&m, argc, argv)) != 0) {
		usage(rc > 0 ? stdout : stderr);
		free(m.args);
		return rc > 0 ? 0 : MTAQ_EXIT_USAGE;
	}
	/* Held, not ignored: they act once the environment is closed. */
	sigemptyset(&hold);
	sigaddset(&hold, SIGINT);
	sigaddset(&hold, SIGTERM);
	sigaddset(&hold, SIGHUP);
	sigaddset(&hold, SIGQUIT);
	signal(SIGPIPE, SIG_IGN);	/* `mtaq list | head`: a write error, not death */
	sigprocmask(SIG_BLOCK, &hold, &old);
	rc = run_command(&m);
	if (fflush(stdout) != 0 && rc == 0)
		rc = 1;
	queue_close(m.q);
	if (m.lock_fd >= 0)
		close(m.lock_fd);	/* after the close: mtad may start now */
	free(m.args);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return rc;
}
