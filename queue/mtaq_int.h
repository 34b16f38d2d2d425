/*
 * mtaq_int.h - what the files of the mtaq program share (queue/mtaq.c,
 * mtaq_list.c, mtaq_admin.c, mtaq_stats.c): the parsed command line, the
 * safe output, and each family's commands for mtaq.c's command table.
 * Private to mtaq: none of these is in libmtad.a, and nothing outside
 * queue/mtaq*.c includes this.
 */
#ifndef QUEUE_MTAQ_INT_H
#define QUEUE_MTAQ_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "queue/queue.h"
#include "util/util.h"

#define MTAQ_DEFAULT_CONFIG "/etc/mtad/mtad.conf"
#define MTAQ_EXIT_USAGE 64	/* EX_USAGE, sysexits(3) */

struct mtaq {
	const char *config;
	const char *command;
	char **args;		/* operands after the command */
	int nargs;
	bool json, json_lines, body;
	const char *login;	/* delete/hold/release/requeue/expire --login: that login's messages */
	const char *domain;	/* flush --domain: messages with a recipient there */
	/* policy-test: the session to judge */
	const char *client, *rdns, *helo, *listener, *auth, *from, *rcpt;
	int days;		/* stats --days */
	bool ed25519;		/* dkim-keygen --ed25519 */
	const char *dir;	/* dkim-keygen --dir */
	struct queue *q;
	char spool[MTAD_PATH_MAX];	/* the configuration's spool_directory */
	char (*active)[QUEUE_ID_LEN + 1];	/* being delivered now (sorted), from mtad */
	size_t nactive;
	int lock_fd;		/* `recover`: the spool lock, else -1 */
};

struct list_state {
	struct mtaq *m;
	size_t n, damaged;
	size_t held, deferred;	/* count: by state */
	uint64_t bytes;
};

/* ---- mtaq.c: usage, safe output, the configuration ---- */

/* usage - the synopsis, to out. */
void usage(FILE *out);

/*
 * put_text_tabs - a queue string for a terminal: controls and bad bytes
 * as \xHH, CR LF TAB and backslash as \r \n \t \\, unless tabs: then a
 * TAB stays (folded header lines start with one). put_text: one-line
 * values (tabs false).
 */
void put_text_tabs(FILE *out, const char *s, bool tabs);
void put_text(FILE *out, const char *s);

/* json_str - a JSON string; invalid UTF-8 bytes become \u00XX (never invalid JSON). */
void json_str(FILE *out, const char *s);

/* report_damaged - one stderr line for a record that cannot be decoded. */
void report_damaged(struct mtaq *m, const char *qid);

/* load_options - the queue options of the configuration; cfg is the
 * caller's to free (the options point into it). 0 or -1 (said why). */
int load_options(struct mtaq *m, struct mtad_config *cfg, struct queue_options *opt);

/* take_spool - the spool lock for a command that must run with mtad
 * stopped (recover, migrate); held until mtaq exits. 0 or -1 (said why). */
int take_spool(struct mtaq *m, const char *spool);

/* ---- the commands: each returns mtaq's exit status ---- */

/* mtaq_list.c; count_fn is the queue_foreach callback of `count` (and of
 * `recover`, which counts what it recovered), arg a struct list_state. */
int cmd_list(struct mtaq *m);
int cmd_show(struct mtaq *m);
int cmd_count(struct mtaq *m);
int cmd_summary(struct mtaq *m);
int count_fn(const char *qid, const struct queue_envelope *env, void *arg);

/* mtaq_senders.c */
int cmd_senders(struct mtaq *m);

/* mtaq_admin.c; cmd_admin is delete, hold, release, requeue and expire */
int cmd_admin(struct mtaq *m);
int cmd_flush(struct mtaq *m);
int cmd_verify(struct mtaq *m);
int cmd_migrate(struct mtaq *m);
int cmd_recover(struct mtaq *m);

/* mtaq_stats.c */
int cmd_stats(struct mtaq *m);

/* mtaq_dkim.c: `dkim-keygen DOMAIN SELECTOR`, a DKIM key and its DNS record */
int cmd_dkim_keygen(struct mtaq *m);

/* mtaq_policy.c: `policy-test`, what mtad's policy says to a session */
int cmd_policy_test(struct mtaq *m);

/* mtaq_replication.c: `replication`, the group as this node sees it */
int cmd_replication(struct mtaq *m);

#endif
