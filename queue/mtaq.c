/*
 * mtaq.c - the mtaq tool: look at and clean up the mail queue.
 *
 *   mtaq [-c CONFIG] list [--json|--json-lines]   mailq / postqueue -j
 *   mtaq [-c CONFIG] show [--json] [--body] ID
 *   mtaq [-c CONFIG] delete|hold|release|requeue|expire ID...|ALL|-|--login NAME
 *   mtaq [-c CONFIG] flush [ID...|ALL|-] [--domain D]   due now; held stay held
 *   mtaq [-c CONFIG] count [--json]
 *   mtaq [-c CONFIG] recover             Berkeley DB recovery, mtad stopped
 *   mtaq [-c CONFIG] summary [--json]    qshape-like table by domain and age
 *   mtaq [-c CONFIG] policy-test --client IP ...  what the policy answers
 *   mtaq [-c CONFIG] stats [--json] [--days N]   HELO policy statistics
 *   mtaq [-c CONFIG] senders [--json]             what each login sent today
 *   mtaq [-c CONFIG] dkim-keygen DOMAIN SELECTOR [--ed25519] [--dir DIR]
 *   mtaq [-c CONFIG] replication [--json]         the replication group
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
 * `hold`, `release`, `requeue`, `expire`, `flush` and `recover`. Those
 * commit synchronously, each change logged where mtad logs (`log =`, in
 * postsuper's words); a running mtad sees them at its next schedule scan
 * (every second).
 *
 * The commands live by family: mtaq_list.c (list, show, count, summary),
 * mtaq_admin.c (delete, hold, release, requeue, expire, flush, verify,
 * migrate, recover), mtaq_stats.c (stats), mtaq_senders.c (senders) and
 * mtaq_policy.c (policy-test), mtaq_replication.c (replication); this file has the options, the command
 * table, how a command opens the spool, and the safe output they all
 * use (mtaq_int.h). None of them is part of libmtad.a.
 *
 * Follows: RFC 8259 (the --json output).
 */
#include <errno.h>
#include <stddef.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policy/policy.h"
#include "queue/mtaq_int.h"

/* mtaq reads mtad.conf for the spool; routes are delivery's business
 * (not linked here: kept as text, `mtad -n` checks them); rule names are
 * the policy's. */
static const struct mtad_config_checks config_checks = {
	.route = NULL,
	.helo_rule = policy_config_rule,
	.helo_rule_name = policy_config_rule_name,
};

#define MTAQ_DEFAULT_DAYS 7	/* `stats`: today and the last 7 days */
#define MTAQ_MAX_DAYS 3650

/* usage - the synopsis, to out. */
void usage(FILE *out)
{
	fprintf(out,
		"usage: mtaq [-c CONFIG] COMMAND\n"
		"  list [--json|--json-lines] every queued message, mailq style; its state:\n"
		"                            incoming (not tried yet), deferred, hold;\n"
		"                            --json-lines: postqueue -j (one object a line)\n"
		"  show [--json] [--body] ID envelope and headers (--body: the message only)\n"
		"  delete ID...|ALL|-        remove messages (-: ids on stdin, one a line)\n"
		"  hold ID...|ALL|-          keep messages from delivery (listed with !)\n"
		"  release ID...|ALL|-       let held messages be delivered again\n"
		"  requeue ID...|ALL|-       try again now, from scratch (postsuper -r)\n"
		"  expire ID...|ALL|-        return to the sender now with a DSN, as after\n"
		"                            max_queue_lifetime (postsuper -e)\n"
		"  delete|hold|release|requeue|expire --login NAME\n"
		"                            every queued message that login NAME submitted\n"
		"                            (NAME with or without its realm): one command\n"
		"                            against a stolen password's outbreak\n"
		"  flush [ID...|ALL|-] [--domain D]\n"
		"                            try deferred messages now (only those with a\n"
		"                            recipient in D); held ones stay held\n"
		"  count [--json]            number of queued messages\n"
		"  recover                   recover the queue after a crash (mtad must\n"
		"                            be stopped; mtad also recovers at start)\n"
		"  summary [--json]          recipients by domain and age (qshape style)\n"
		"  verify                    check every message's body against the length\n"
		"                            and SHA-256 recorded at arrival; exit 1 when\n"
		"                            one is damaged\n"
		"  migrate                   move a spool made by mtad 0.1 to the current\n"
		"                            format (mtad stopped)\n"
		"  senders [--json]          today per login (and trusted address):\n"
		"                            messages, recipients, refused by a quota or\n"
		"                            sender ownership, distinct client addresses\n"
		"  stats [--json] [--days N] HELO policy statistics: rejected attempts,\n"
		"                            connections and clients per rule, accepted\n"
		"                            messages, top rejected HELO names, the group\n"
		"                            commit's messages per log sync; today and\n"
		"                            the last N days (default 7; days are kept\n"
		"                            for stats_keep_days, 8 by default)\n"
		"  policy-test --client IP [--rdns NAME] [--helo NAME] [--listener ADDR:PORT]\n"
		"              [--auth USER] [--from A --rcpt B] [--json]\n"
		"                            what mtad's policy answers that session: each\n"
		"                            stage's verdict, rule and exact reply\n"
		"  dkim-keygen DOMAIN SELECTOR [--ed25519] [--dir DIR]\n"
		"                            a DKIM key in DIR (/etc/mtad/dkim), the DNS\n"
		"                            record to publish and the dkim_sign line\n"
		"  replication [--json]      this node's role in its replication group,\n"
		"                            the master, each peer: connected, how far\n"
		"                            behind (bytes, seconds), the last acknowledged\n"
		"                            commit\n"
		"Every change is logged where mtad logs (log =). Usage errors exit 64.\n"
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
void put_text_tabs(FILE *out, const char *s, bool tabs)
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
void put_text(FILE *out, const char *s)
{
	put_text_tabs(out, s, false);
}

/* json_str - a JSON string; invalid UTF-8 bytes become \u00XX (never invalid JSON). */
void json_str(FILE *out, const char *s)
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

/* report_damaged - one stderr line for a record that cannot be decoded. */
void report_damaged(struct mtaq *m, const char *qid)
{
	fprintf(stderr, "mtaq: damaged record %s: %s\n", qid, queue_strerror(m->q));
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

/* The options that take a string: --NAME VALUE or --NAME=VALUE. */
static const char **string_slot(struct mtaq *m, const char *name, size_t len)
{
	static const struct {
		const char *name;
		size_t offset;
	} opts[] = {
		{ "login", offsetof(struct mtaq, login) },
		{ "domain", offsetof(struct mtaq, domain) },
		{ "client", offsetof(struct mtaq, client) },
		{ "rdns", offsetof(struct mtaq, rdns) },
		{ "helo", offsetof(struct mtaq, helo) },
		{ "listener", offsetof(struct mtaq, listener) },
		{ "auth", offsetof(struct mtaq, auth) },
		{ "from", offsetof(struct mtaq, from) },
		{ "rcpt", offsetof(struct mtaq, rcpt) },
		{ "dir", offsetof(struct mtaq, dir) },
	};

	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
			return (const char **)((char *)m + opts[i].offset);
	return NULL;
}

/* string_option - a, with next as its value when it has no '=': true
 * when it was one (then *i moves past what it used). */
static bool string_option(struct mtaq *m, const char *a, const char *next, int *i)
{
	const char *eq;
	const char **slot;

	if (strncmp(a, "--", 2) != 0)
		return false;
	eq = strchr(a, '=');
	if ((slot = string_slot(m, a + 2, eq ? (size_t)(eq - a - 2) : strlen(a + 2))) == NULL)
		return false;
	if (eq != NULL) {
		*slot = eq + 1;
	} else if (next != NULL) {
		*slot = next;
		(*i)++;
	} else {
		return false;
	}
	return true;
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
		else if (!dashdash && strcmp(a, "--ed25519") == 0)
			m->ed25519 = true;
		else if (!dashdash && strcmp(a, "--json-lines") == 0)
			m->json_lines = true;
		else if (!dashdash && string_option(m, a, i + 1 < argc ? argv[i + 1] : NULL, &i))
			continue;
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
int load_options(struct mtaq *m, struct mtad_config *cfg, struct queue_options *opt)
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
int take_spool(struct mtaq *m, const char *spool)
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
enum mtaq_open { OPEN_READ, OPEN_WRITE, OPEN_RECOVER, OPEN_SELF, OPEN_ENV };

/*
 * log_setup - a command that changes the queue logs each change where
 * mtad logs (the configuration's `log`), as postsuper does: to syslog,
 * or to stderr. No syslog daemon is not fatal to the operator's command:
 * the lines go to stderr, with one warning.
 */
static void log_setup(const struct mtad_config *cfg)
{
	char err[512];

	/* mtad's program names: "TAG/mtaq" as its services log (the parser
	 * checked log_tag, so this cannot fail). */
	if (mtad_log_set_tag(cfg->log_tag, strcmp(cfg->log_services, "yes") == 0) != 0)
		fprintf(stderr, "mtaq: warning: bad log_tag \"%s\"\n", cfg->log_tag);
	if (strcmp(cfg->log, "syslog") == 0 &&
	    mtad_log_to_syslog(cfg->syslog_socket, err, sizeof(err)) != 0)
		fprintf(stderr, "mtaq: warning: %s; logging to stderr\n", err);
}

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
	if (how == OPEN_WRITE)
		log_setup(cfg);
	snprintf(m->spool, sizeof(m->spool), "%s", cfg->spool_directory);
	opt.read_only = how == OPEN_READ || how == OPEN_ENV;
	opt.env_only = how == OPEN_ENV;
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
	/* A replica's copy changes only through replication. */
	if (how == OPEN_WRITE && queue_role(m->q) == QUEUE_REPLICA) {
		fprintf(stderr, "mtaq: this node is a replica: its queue changes only through "
			"replication; run `mtaq %s` on the master (`mtaq replication` names it)\n",
			m->command);
		return -1;
	}
	return 0;
}

/* What --json means to a command: nothing (a usage error), one JSON
 * document, or also --json-lines (one object per message). */
enum mtaq_json { JSON_NO, JSON_YES, JSON_LINES };

/* json_usage - --json or --json-lines where the command has none: 0 or MTAQ_EXIT_USAGE. */
static int json_usage(const struct mtaq *m, enum mtaq_json json)
{
	if ((m->json && json == JSON_NO) || (m->json_lines && json != JSON_LINES)) {
		fprintf(stderr, "mtaq: %s has no %s output\n", m->command,
			m->json_lines ? "--json-lines" : "--json");
		return MTAQ_EXIT_USAGE;
	}
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
		enum mtaq_json json;
	} cmds[] = {
		{ "list", cmd_list, false, OPEN_READ, JSON_LINES },
		{ "show", cmd_show, true, OPEN_READ, JSON_YES },
		{ "count", cmd_count, false, OPEN_READ, JSON_YES },
		{ "summary", cmd_summary, false, OPEN_READ, JSON_YES },
		{ "stats", cmd_stats, false, OPEN_READ, JSON_YES },
		{ "senders", cmd_senders, false, OPEN_READ, JSON_YES },
		{ "verify", cmd_verify, false, OPEN_READ, JSON_NO },
		{ "delete", cmd_admin, true, OPEN_WRITE, JSON_YES },
		{ "hold", cmd_admin, true, OPEN_WRITE, JSON_YES },
		{ "release", cmd_admin, true, OPEN_WRITE, JSON_YES },
		{ "requeue", cmd_admin, true, OPEN_WRITE, JSON_YES },
		{ "expire", cmd_admin, true, OPEN_WRITE, JSON_YES },
		{ "flush", cmd_flush, true, OPEN_WRITE, JSON_YES },
		{ "recover", cmd_recover, false, OPEN_RECOVER, JSON_NO },
		{ "migrate", cmd_migrate, false, OPEN_SELF, JSON_NO },
		{ "policy-test", cmd_policy_test, false, OPEN_SELF, JSON_YES },
		{ "dkim-keygen", cmd_dkim_keygen, true, OPEN_SELF, JSON_NO },
		{ "replication", cmd_replication, false, OPEN_ENV, JSON_YES },
	};
	int rc;

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(m->command, cmds[i].name) != 0)
			continue;
		if (!cmds[i].takes_args && m->nargs > 0) {
			fprintf(stderr, "mtaq: %s takes no operand\n", m->command);
			return MTAQ_EXIT_USAGE;
		}
		if ((rc = json_usage(m, cmds[i].json)) != 0)
			return rc;
		if (m->domain != NULL && cmds[i].fn != cmd_flush) {
			fprintf(stderr, "mtaq: --domain is for flush\n");
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
	mtad_log_to_stderr();
	if (m.lock_fd >= 0)
		close(m.lock_fd);	/* after the close: mtad may start now */
	free(m.args);
	free(m.active);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return rc;
}
