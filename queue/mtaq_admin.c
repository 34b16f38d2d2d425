/*
 * mtaq_admin.c - mtaq's commands that change the queue or check it:
 * delete, hold, release, flush, verify, migrate and recover.
 *
 * Must not: change a message it was not named (flush without an ID only
 * makes deferred messages due, held ones stay held), run migrate or
 * recover while mtad runs (they take the spool lock first: take_spool),
 * or print a queue string raw (put_text_tabs). Every change commits
 * synchronously; a running mtad sees it at its next schedule scan.
 *
 * Follows: no RFC; the queue is mtad's own (queue/queue.h).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "queue/mtaq_int.h"

/* delete_one - one message, reported; 1 when it failed. */
static int delete_one(struct mtaq *m, const char *qid, int *deleted)
{
	int rc = queue_id_valid(qid) ? queue_delete(m->q, qid) : QUEUE_NOTFOUND;

	if (rc == QUEUE_NOTFOUND)
		fprintf(stderr, "mtaq: no such message: %s\n", qid);
	else if (rc != QUEUE_OK)
		fprintf(stderr, "mtaq: %s\n", queue_strerror(m->q));
	else
		printf("%s: deleted\n", qid), (*deleted)++;
	return rc != QUEUE_OK;
}

/* ---- --login: every message one login submitted ---- */

struct login_ids {
	const char *login;
	size_t local;		/* its length without "@realm" */
	char (*ids)[QUEUE_ID_LEN + 1];
	size_t n, cap;
	bool nomem;
};

/* login_matches - the envelope's login is NAME, or NAME@realm when NAME has no realm. */
static bool login_matches(const struct login_ids *st, const char *user)
{
	size_t len = strlen(st->login);

	if (user == NULL)
		return false;
	if (strcasecmp(user, st->login) == 0)
		return true;
	return st->local == len && strncasecmp(user, st->login, len) == 0 && user[len] == '@';
}

/* login_collect - queue_foreach callback: the ids of the login's messages. */
static int login_collect(const char *qid, const struct queue_envelope *env, void *arg)
{
	struct login_ids *st = arg;

	if (env == NULL || !login_matches(st, env->auth_user))
		return 0;
	if (st->n == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 256;
		void *grown = realloc(st->ids, cap * sizeof(*st->ids));

		if (!grown) {
			st->nomem = true;
			return 1;	/* stop: acting on part of them would mislead */
		}
		st->ids = grown;
		st->cap = cap;
	}
	snprintf(st->ids[st->n++], QUEUE_ID_LEN + 1, "%s", qid);
	return 0;
}

/*
 * login_args - with --login, the login's queued messages become the
 * operands (collected first, changed after: no change under the scan).
 * Returns 0, or an exit status when mtaq must stop.
 */
static int login_args(struct mtaq *m, struct login_ids *st)
{
	int rc;

	if (m->login == NULL)
		return 0;
	if (m->nargs > 0 || m->login[0] == '\0') {
		fprintf(stderr, "mtaq: --login NAME takes no message ids\n");
		return MTAQ_EXIT_USAGE;
	}
	st->login = m->login;
	st->local = strcspn(m->login, "@");
	rc = queue_foreach(m->q, login_collect, st);
	if (st->nomem || (rc != QUEUE_OK && rc != 1)) {
		fprintf(stderr, "mtaq: %s\n", st->nomem ? "out of memory" : queue_strerror(m->q));
		return 1;
	}
	if (st->n == 0)
		printf("no queued message of login %s\n", m->login);
	return 0;
}

/* ---- delete ---- */

/* cmd_delete - `mtaq delete ID...`: each one, reporting each failure. */
int cmd_delete(struct mtaq *m)
{
	struct login_ids st = { 0 };
	int failed = 0, deleted = 0, rc;

	if ((rc = login_args(m, &st)) != 0)
		return rc;
	if (m->login != NULL) {
		for (size_t i = 0; i < st.n; i++)
			failed += delete_one(m, st.ids[i], &deleted);
		free(st.ids);
		printf("%d message%s of login %s deleted\n", deleted, deleted == 1 ? "" : "s",
		       m->login);
		return failed > 0;
	}
	if (m->nargs == 0) {
		usage(stderr);
		return MTAQ_EXIT_USAGE;
	}
	for (int i = 0; i < m->nargs; i++)
		failed += delete_one(m, m->args[i], &deleted);
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

/* cmd_hold - `mtaq hold ID...` and `mtaq release ID...` (or --login NAME). */
int cmd_hold(struct mtaq *m)
{
	const char *done = m->command[0] == 'h' ? "held" : "released";
	struct login_ids st = { 0 };
	int failed = 0, rc;

	if ((rc = login_args(m, &st)) != 0)
		return rc;
	if (m->login != NULL) {
		for (size_t i = 0; i < st.n; i++)
			failed += change_one(m, st.ids[i], done) < 0;
		free(st.ids);
		printf("%zu message%s of login %s %s\n", st.n - (size_t)failed,
		       st.n - (size_t)failed == 1 ? "" : "s", m->login, done);
		return failed > 0;
	}
	if (m->nargs == 0) {
		usage(stderr);
		return MTAQ_EXIT_USAGE;
	}
	for (int i = 0; i < m->nargs; i++)
		failed += change_one(m, m->args[i], done) < 0;
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
int cmd_flush(struct mtaq *m)
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
