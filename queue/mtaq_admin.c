/*
 * mtaq_admin.c - mtaq's commands that change the queue or check it:
 * delete, hold, release, requeue, expire and flush (postsuper and
 * postqueue -f/-s), verify, migrate and recover.
 *
 * The changing verbs take queue ids, ALL, - (ids on stdin, one a line)
 * or --login NAME; each change is printed, logged where mtad logs in
 * postsuper's words ("QID: removed", then "Deleted: N messages"), and
 * counted only when it changed something (hold ALL skips the held).
 *
 * Must not: change a message it was not named (flush never makes a held
 * message due, and counts the held ones apart from what it flushed),
 * run migrate or recover while mtad runs (they take the spool lock
 * first: take_spool), grow memory with the ids read from stdin (each is
 * acted on as read), or print a queue string raw (put_text_tabs). Every
 * change commits synchronously; a running mtad sees it at its next
 * schedule scan.
 *
 * Follows: no RFC; the queue is mtad's own (queue/queue.h). RFC 8259
 * for --json.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "queue/mtaq_int.h"

/* ---- delete, hold, release, requeue, expire ---- */

/*
 * An operator's change, in postsuper's words: what mtaq prints for one
 * message, the log line (Postfix's "QID: removed" ...), the summary
 * ("Deleted: 3 messages"), and which messages a change of ALL or --login
 * includes (hold ALL leaves the held ones alone, so its count is what it
 * changed).
 */
struct admin_verb {
	const char *name;
	const char *done;	/* stdout: "QID: deleted" */
	const char *logged;	/* log: "QID: removed" */
	const char *summary;	/* log and stdout: "Deleted: N messages" */
	int (*apply)(struct queue *q, const char *qid);
	bool (*applies)(const struct queue_envelope *env);	/* NULL: every message */
	const char *skipped;	/* stdout when a named message needs no change */
};

static int apply_delete(struct queue *q, const char *qid) { return queue_delete(q, qid); }
static int apply_hold(struct queue *q, const char *qid) { return queue_set_hold(q, qid, true); }
static int apply_release(struct queue *q, const char *qid) { return queue_set_hold(q, qid, false); }
static bool is_held(const struct queue_envelope *env) { return env->flags & QUEUE_FLAG_HELD; }
static bool not_held(const struct queue_envelope *env) { return !is_held(env); }
static bool not_expired(const struct queue_envelope *env) { return !(env->flags & QUEUE_FLAG_EXPIRE); }

static const struct admin_verb admin_verbs[] = {
	{ "delete", "deleted", "removed", "Deleted", apply_delete, NULL, NULL },
	{ "hold", "held", "placed on hold", "Placed on hold", apply_hold, not_held,
	  "on hold already" },
	{ "release", "released", "released from hold", "Released from hold", apply_release,
	  is_held, "not on hold" },
	{ "requeue", "requeued", "requeued", "Requeued", queue_requeue_message, NULL, NULL },
	{ "expire", "expired", "expired", "Expired", queue_expire_message, not_expired,
	  "expired already" },
};

/* What one admin command did, for the summary and --json. */
struct admin_run {
	struct mtaq *m;
	const struct admin_verb *verb;
	size_t changed, skipped, failed, held;
	bool nomem;
};

/* admin_verb_of - the table row of the command. */
static const struct admin_verb *admin_verb_of(const char *command)
{
	for (size_t i = 0; i < sizeof(admin_verbs) / sizeof(admin_verbs[0]); i++)
		if (strcmp(admin_verbs[i].name, command) == 0)
			return &admin_verbs[i];
	return NULL;
}

/* admin_complain - the standard message for a failed change. */
static void admin_complain(struct mtaq *m, const char *qid, int rc)
{
	if (rc == QUEUE_NOTFOUND)
		fprintf(stderr, "mtaq: no such message: %s\n", qid);
	else if (rc == QUEUE_DAMAGED)
		report_damaged(m, qid);
	else
		fprintf(stderr, "mtaq: %s\n", queue_strerror(m->q));
}

/* admin_done - one change made: printed (or a JSON array element) and logged. */
static void admin_done(struct admin_run *r, const char *qid, const char *note)
{
	if (r->m->json)
		printf("%s\"%s\"", r->changed == 0 ? "" : ",", qid);
	else
		printf("%s: %s%s\n", qid, r->verb->done, note);
	mtad_log_svc(MTAD_SVC_MTAQ, MTAD_LOG_INFO, "%s: %s", qid, r->verb->logged);
	r->changed++;
}

/* admin_apply - the change to one message whose envelope is known (env)
 * or not (NULL: a named message, or a damaged record); named: the
 * operator named it (then a message needing no change is said). */
static void admin_apply(struct admin_run *r, const char *qid, const struct queue_envelope *env,
			bool named)
{
	const char *note = "";
	int rc;

	if (env != NULL && r->verb->applies != NULL && !r->verb->applies(env)) {
		if (!r->m->json && r->verb->skipped != NULL && named)
			printf("%s: %s\n", qid, r->verb->skipped);
		r->skipped++;
		return;
	}
	if (env != NULL && is_held(env) && strcmp(r->verb->name, "expire") == 0) {
		note = " (held: returned to the sender once released)";
		r->held++;
	}
	rc = queue_id_valid(qid) ? r->verb->apply(r->m->q, qid) : QUEUE_NOTFOUND;
	if (rc != QUEUE_OK) {
		admin_complain(r->m, qid, rc);
		r->failed++;
		return;
	}
	admin_done(r, qid, note);
}

/* admin_named - a message named on the command line or stdin. delete
 * needs no envelope (a damaged record is deleted too); the others look
 * first, so that the count and the log say only what changed. */
static void admin_named(struct admin_run *r, const char *qid)
{
	struct queue_envelope env;
	int rc;

	if (r->verb->applies == NULL) {
		admin_apply(r, qid, NULL, true);
		return;
	}
	rc = queue_id_valid(qid) ? queue_get(r->m->q, qid, &env) : QUEUE_NOTFOUND;
	if (rc != QUEUE_OK) {
		admin_complain(r->m, qid, rc);
		r->failed++;
		return;
	}
	admin_apply(r, qid, &env, true);
	queue_envelope_free(&env);
}

/* ---- which messages: IDs, ALL, - (stdin), --login NAME ---- */

/* login_matches - the envelope's login is NAME, or NAME@realm when NAME has no realm. */
static bool login_matches(const char *login, const char *user)
{
	size_t len = strlen(login);

	if (user == NULL)
		return false;
	if (strcasecmp(user, login) == 0)
		return true;
	return strcspn(login, "@") == len && strncasecmp(user, login, len) == 0 &&
	       user[len] == '@';
}

/* admin_each - queue_foreach callback for ALL and --login. The scan
 * copies rows in batches and holds no lock while this runs, so changing
 * (or deleting) the message here is safe. */
static int admin_each(const char *qid, const struct queue_envelope *env, void *arg)
{
	struct admin_run *r = arg;

	if (r->m->login != NULL && (env == NULL || !login_matches(r->m->login, env->auth_user)))
		return 0;
	if (env == NULL && strcmp(r->verb->name, "delete") != 0) {
		report_damaged(r->m, qid);
		r->failed++;
		return 0;
	}
	admin_apply(r, qid, env, false);
	return ferror(stdout);
}

/* Longest line `-` reads as one queue id; longer ones are refused. */
#define ADMIN_LINE_MAX 256

/* admin_stdin - `-`: one queue id a line (postsuper -d -), blanks
 * around it ignored; each is changed as it is read, so nothing grows. */
static void admin_stdin(struct admin_run *r, void (*each)(struct admin_run *, const char *))
{
	char line[ADMIN_LINE_MAX];

	while (fgets(line, sizeof(line), stdin) != NULL) {
		size_t len = strlen(line);
		char *id = line;

		if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
			int c;

			while ((c = getchar()) != EOF && c != '\n')
				;
			fprintf(stderr, "mtaq: -: a line too long for a queue id\n");
			r->failed++;
			continue;
		}
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' ||
				   line[len - 1] == ' ' || line[len - 1] == '\t'))
			line[--len] = '\0';
		while (*id == ' ' || *id == '\t')
			id++;
		if (*id != '\0')
			each(r, id);
	}
	if (ferror(stdin)) {
		fprintf(stderr, "mtaq: -: reading standard input failed\n");
		r->failed++;
	}
}

/*
 * admin_operands - checks the operands: IDs, or ALL or - alone, or
 * --login NAME alone. 0, or MTAQ_EXIT_USAGE (said why).
 */
static int admin_operands(struct mtaq *m)
{
	bool alone = m->nargs == 1 && (strcmp(m->args[0], "ALL") == 0 ||
				       strcmp(m->args[0], "-") == 0);

	if (m->login != NULL && (m->nargs > 0 || m->login[0] == '\0')) {
		fprintf(stderr, "mtaq: --login NAME takes no message ids\n");
		return MTAQ_EXIT_USAGE;
	}
	for (int i = 0; i < m->nargs && !alone; i++)
		if (strcmp(m->args[i], "ALL") == 0 || strcmp(m->args[i], "-") == 0) {
			fprintf(stderr, "mtaq: %s: ALL and - stand alone\n", m->command);
			return MTAQ_EXIT_USAGE;
		}
	if (m->login == NULL && m->nargs == 0) {
		usage(stderr);
		return MTAQ_EXIT_USAGE;
	}
	return 0;
}

/* admin_select - runs each over the messages the operands name. */
static int admin_select(struct admin_run *r, void (*each)(struct admin_run *, const char *),
			queue_foreach_fn all)
{
	struct mtaq *m = r->m;
	int rc = QUEUE_OK;

	if (m->login != NULL || m->nargs == 0 || strcmp(m->args[0], "ALL") == 0)
		rc = queue_foreach(m->q, all, r);
	else if (strcmp(m->args[0], "-") == 0)
		admin_stdin(r, each);
	else
		for (int i = 0; i < m->nargs; i++)
			each(r, m->args[i]);
	if (rc != QUEUE_OK && rc != 1) {
		fprintf(stderr, "mtaq: %s\n", queue_strerror(m->q));
		r->failed++;
	}
	return rc;
}

/* admin_summary - postsuper's summary to the log, and to stdout. */
static void admin_summary(const struct admin_run *r)
{
	struct mtaq *m = r->m;

	if (r->changed > 0)
		mtad_log_svc(MTAD_SVC_MTAQ, MTAD_LOG_INFO, "%s: %zu message%s", r->verb->summary, r->changed,
			 r->changed == 1 ? "" : "s");
	if (m->json) {
		printf("],\"changed\":%zu,\"skipped\":%zu,\"failed\":%zu}\n", r->changed,
		       r->skipped, r->failed);
	} else if (m->login != NULL) {
		if (r->changed + r->skipped + r->failed == 0)
			printf("no queued message of login %s\n", m->login);
		printf("%zu message%s of login %s %s\n", r->changed, r->changed == 1 ? "" : "s",
		       m->login, r->verb->done);
	} else {
		printf("%s: %zu message%s\n", r->verb->summary, r->changed,
		       r->changed == 1 ? "" : "s");
	}
}

/* cmd_admin - `mtaq delete|hold|release|requeue|expire ID...|ALL|-|--login NAME`. */
int cmd_admin(struct mtaq *m)
{
	struct admin_run r = { .m = m, .verb = admin_verb_of(m->command) };
	int rc;

	if (r.verb == NULL)
		return MTAQ_EXIT_USAGE;	/* the command table names only these */
	if ((rc = admin_operands(m)) != 0)
		return rc;
	if (m->json)
		printf("{\"command\":\"%s\",\"queue_ids\":[", r.verb->name);
	admin_select(&r, admin_named, admin_each);
	admin_summary(&r);
	return r.failed > 0;
}

/* ---- flush ---- */

/* flush_rcpt_in - env has a pending recipient in domain (any, when NULL). */
static bool flush_rcpt_in(const struct queue_envelope *env, const char *domain)
{
	for (size_t i = 0; i < env->nrcpt; i++) {
		const char *at = strrchr(env->rcpt[i].addr, '@');

		if (env->rcpt[i].state != QUEUE_RCPT_PENDING)
			continue;
		if (domain == NULL || (at != NULL && strcasecmp(at + 1, domain) == 0))
			return true;
	}
	return false;
}

/*
 * flush_env - one message for flush: held ones are counted, never made
 * due (they wait for release); one due already is left alone (it is
 * scheduled: counting it would claim work not done); the rest due now.
 */
static void flush_env(struct admin_run *r, const char *qid, const struct queue_envelope *env,
		      bool named)
{
	int rc;

	if (!flush_rcpt_in(env, r->m->domain)) {
		r->skipped++;
		return;
	}
	if (is_held(env)) {
		if (named && !r->m->json)
			printf("%s: on hold: not flushed (release it first)\n", qid);
		r->held++;
		return;
	}
	if (!named && env->next_attempt <= (int64_t)time(NULL)) {
		r->skipped++;
		return;
	}
	if ((rc = queue_flush_message(r->m->q, qid)) != QUEUE_OK) {
		admin_complain(r->m, qid, rc);
		r->failed++;
		return;
	}
	if (r->m->json)
		printf("%s\"%s\"", r->changed == 0 ? "" : ",", qid);
	else if (named)
		printf("%s: flushed\n", qid);
	r->changed++;
}

/* flush_named - `flush ID`: the message as it is now. */
static void flush_named(struct admin_run *r, const char *qid)
{
	struct queue_envelope env;
	int rc = queue_id_valid(qid) ? queue_get(r->m->q, qid, &env) : QUEUE_NOTFOUND;

	if (rc != QUEUE_OK) {
		admin_complain(r->m, qid, rc);
		r->failed++;
		return;
	}
	flush_env(r, qid, &env, true);
	queue_envelope_free(&env);
}

/* flush_each - queue_foreach callback for flush without ids (or ALL). */
static int flush_each(const char *qid, const struct queue_envelope *env, void *arg)
{
	struct admin_run *r = arg;

	if (env == NULL) {
		report_damaged(r->m, qid);
		r->failed++;
		return 0;
	}
	flush_env(r, qid, env, false);
	return ferror(stdout);
}

/* cmd_flush - `mtaq flush [ID...|ALL|-] [--domain D]`: due now; held
 * messages stay held and are counted apart. */
int cmd_flush(struct mtaq *m)
{
	static const struct admin_verb flush_verb = { .name = "flush" };
	struct admin_run r = { .m = m, .verb = &flush_verb };

	if (m->login != NULL) {
		fprintf(stderr, "mtaq: flush takes no --login\n");
		return MTAQ_EXIT_USAGE;
	}
	if (m->nargs > 0 && admin_operands(m) != 0)	/* none: as ALL */
		return MTAQ_EXIT_USAGE;
	if (m->json)
		printf("{\"command\":\"flush\",\"queue_ids\":[");
	admin_select(&r, flush_named, flush_each);
	if (r.changed > 0)
		mtad_log_svc(MTAD_SVC_MTAQ, MTAD_LOG_INFO, "Flushed: %zu message%s%s%s", r.changed,
			 r.changed == 1 ? "" : "s", m->domain ? " for " : "",
			 m->domain ? m->domain : "");
	if (m->json)
		printf("],\"flushed\":%zu,\"held\":%zu,\"failed\":%zu}\n", r.changed, r.held,
		       r.failed);
	else
		printf("%zu message%s flushed%s%s, %zu on hold (not flushed)\n", r.changed,
		       r.changed == 1 ? "" : "s", m->domain ? " for " : "",
		       m->domain ? m->domain : "", r.held);
	return r.failed > 0;
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
int cmd_verify(struct mtaq *m)
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
int cmd_migrate(struct mtaq *m)
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
int cmd_recover(struct mtaq *m)
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
