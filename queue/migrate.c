/*
 * migrate.c - `mtaq migrate`: a spool made by mtad 0.1 (64 KB body
 * pages that a crash could tear, no page checksums, no body digest)
 * moved to the current format in place, with mtad stopped.
 *
 * How: in the spool's own environment, new databases (4 KB pages,
 * DB_CHKSUM) named *-new.db are filled by copying every row of the old
 * ones; each envelope that decodes gets the SHA-256 of its body as read
 * back (a body whose length differs from its envelope's is copied as it
 * is and held, flagged damaged, for the operator). Then one transaction
 * removes the old files and renames the new ones into place, and the
 * FORMAT file is written. Before that commit the old spool is untouched
 * and a new run starts over (the *-new.db files are removed first);
 * after it, a spool without FORMAT is simply migrated again (a copy of
 * a copy). schedule.db is removed too: the next open rebuilds it from
 * envelope.db (env.c).
 *
 * Must not: run while another process has the environment open (the
 * caller checks), drop a row it could not copy, or leave root-owned
 * files in a spool that belongs to the mtad user.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/queue_impl.h"

/* Rows put per transaction while copying. */
#define MIGRATE_BATCH 500

struct migrate {
	struct queue *q;
	FILE *report;
	size_t rows, messages, damaged;
};

static const char *const migrate_files[][2] = {
	{ "envelope.db", "envelope-new.db" },
	{ "body.db", "body-new.db" },
	{ "stats.db", "stats-new.db" },
};
#define MIGRATE_NFILES (sizeof(migrate_files) / sizeof(migrate_files[0]))

/* migrate_digest_sink - a queue_body_fn feeding a body check. */
static int migrate_digest_sink(void *arg, const void *data, size_t len)
{
	queue_body_check_add(arg, data, len);
	return 0;
}

/*
 * migrate_envelope - the record to store for one envelope row: with the
 * body's SHA-256 when the body reads back at its recorded length; held
 * and flagged damaged when not. A record that does not decode is copied
 * as it is (mtaq list and verify report it). Sets *out (malloc'd) or
 * leaves it NULL for "copy unchanged"; returns 0 or -1 (out of memory).
 */
static int migrate_envelope(struct migrate *m, const DBT *key, const DBT *data,
			    unsigned char **out, size_t *outlen)
{
	struct queue_envelope env;
	struct queue_body_check *check;
	char qid[QUEUE_ID_LEN + 1];
	int rc;

	*out = NULL;
	if (key->size != QUEUE_ID_LEN ||
	    queue_record_decode(data->data, data->size, &env, NULL, 0) < 0) {
		fprintf(m->report, "mtaq: a damaged envelope record is copied as it is\n");
		m->damaged++;
		return 0;
	}
	memcpy(qid, key->data, QUEUE_ID_LEN);
	qid[QUEUE_ID_LEN] = '\0';
	if ((check = queue_body_check_new()) == NULL) {
		queue_envelope_free(&env);
		return -1;
	}
	rc = queue_body_read(m->q, qid, migrate_digest_sink, check);
	if (rc == QUEUE_OK && !env.has_digest)
		env.has_digest = queue_body_check_final(check, env.digest) == 0;
	if (rc != QUEUE_OK) {
		fprintf(m->report, "mtaq: %s: %s: copied as it is and held\n", qid,
			queue_strerror(m->q));
		env.flags |= QUEUE_FLAG_HELD | QUEUE_FLAG_DAMAGED;
		m->damaged++;
	}
	m->messages++;
	queue_body_check_free(check);
	*out = queue_record_encode(&env, outlen);
	queue_envelope_free(&env);
	return *out != NULL ? 0 : -1;
}

/* migrate_put - one row into the new database, inside txn. */
static int migrate_put(struct migrate *m, DB *to, DB_TXN *txn, bool envelope, DBT *key,
		       DBT *data)
{
	unsigned char *rec = NULL;
	size_t reclen = 0;
	int rc;

	if (envelope && migrate_envelope(m, key, data, &rec, &reclen) < 0)
		return ENOMEM;
	rc = to->put(to, txn, key, rec ? &(DBT){ .data = rec, .size = (uint32_t)reclen } : data, 0);
	free(rec);
	m->rows += rc == 0;
	return rc;
}

/*
 * migrate_copy - every row of from into to, MIGRATE_BATCH rows per
 * transaction. Nobody else uses the environment, so the read cursor
 * needs no transaction of its own. Returns 0 or a Berkeley DB error.
 */
static int migrate_copy(struct migrate *m, DB *from, DB *to, bool envelope)
{
	DBT key = { .flags = DB_DBT_REALLOC }, data = { .flags = DB_DBT_REALLOC };
	DB_ENV *env = m->q->env;
	DB_TXN *txn = NULL;
	DBC *c;
	size_t n = 0;
	int rc;

	if ((rc = from->cursor(from, NULL, &c, 0)) != 0)
		return rc;
	while ((rc = c->get(c, &key, &data, DB_NEXT)) == 0) {
		if (txn == NULL && (rc = env->txn_begin(env, NULL, &txn, 0)) != 0)
			break;
		if ((rc = migrate_put(m, to, txn, envelope, &key, &data)) != 0)
			break;
		if (++n % MIGRATE_BATCH == 0) {
			rc = txn->commit(txn, DB_TXN_NOSYNC);
			txn = NULL;
			if (rc != 0)
				break;
		}
	}
	if (rc == DB_NOTFOUND)
		rc = txn != NULL ? txn->commit(txn, DB_TXN_NOSYNC) : 0;
	else if (txn != NULL)
		(void)txn->abort(txn);
	free(key.data);
	free(data.data);
	c->close(c);
	return rc;
}

/* migrate_remove_new - drops *-new.db left by an interrupted run. */
static int migrate_remove_new(DB_ENV *env)
{
	for (size_t i = 0; i < MIGRATE_NFILES; i++) {
		int rc = env->dbremove(env, NULL, migrate_files[i][1], NULL, DB_AUTO_COMMIT);

		if (rc != 0 && rc != ENOENT)
			return rc;
	}
	return 0;
}

/* migrate_fill - creates the new databases and copies every row into them. */
static int migrate_fill(struct migrate *m, const char **what)
{
	struct queue *q = m->q;
	DB *from[MIGRATE_NFILES] = { q->envelope, q->body, q->stats };
	DB *to[MIGRATE_NFILES] = { NULL };
	int rc = 0;

	for (size_t i = 0; i < MIGRATE_NFILES && rc == 0; i++) {
		*what = migrate_files[i][0];
		if ((rc = queue_open_db(q, &to[i], migrate_files[i][1])) == 0)
			rc = migrate_copy(m, from[i], to[i], i == 0);
	}
	for (size_t i = 0; i < MIGRATE_NFILES; i++) {
		int crc = to[i] != NULL ? to[i]->close(to[i], 0) : 0;

		rc = rc != 0 ? rc : crc;
	}
	return rc;
}

/* migrate_close_old - closes the old handles (secondary first). */
static int migrate_close_old(struct queue *q)
{
	DB **dbs[] = { &q->schedule_plain, &q->schedule, &q->stats, &q->body, &q->envelope };
	int rc = 0;

	for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
		int crc = *dbs[i] != NULL ? (*dbs[i])->close(*dbs[i], 0) : 0;

		*dbs[i] = NULL;
		rc = rc != 0 ? rc : crc;
	}
	return rc;
}

/* migrate_swap_txn - the switch: old files out, new ones in, one transaction. */
static int migrate_swap_txn(struct queue *q, DB_TXN *txn, void *arg)
{
	DB_ENV *env = q->env;
	int rc;

	(void)arg;
	if ((rc = env->dbremove(env, txn, "schedule.db", NULL, 0)) != 0 && rc != ENOENT)
		return rc;
	for (size_t i = 0; i < MIGRATE_NFILES; i++) {
		if ((rc = env->dbremove(env, txn, migrate_files[i][0], NULL, 0)) != 0 ||
		    (rc = env->dbrename(env, txn, migrate_files[i][1], NULL,
					migrate_files[i][0], 0)) != 0)
			return rc;
	}
	return 0;
}

/*
 * migrate_chown - mtaq runs as root, the spool belongs to the mtad user:
 * every file of the spool is given the spool directory's owner, as mtad
 * (which refuses root-owned files) needs.
 */
static int migrate_chown(const char *spool, char *err, size_t errlen)
{
	struct stat st;
	struct dirent *e;
	DIR *d;
	int rc = 0;

	if (geteuid() != 0 || stat(spool, &st) < 0 || st.st_uid == 0)
		return 0;
	if ((d = opendir(spool)) == NULL) {
		snprintf(err, errlen, "cannot read %s: %s", spool, strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (fchownat(dirfd(d), e->d_name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0) {
			snprintf(err, errlen, "cannot give %s/%s to uid %u: %s", spool, e->d_name,
				 (unsigned)st.st_uid, strerror(errno));
			rc = -1;
		}
	}
	closedir(d);
	return rc;
}

/* migrate_run - the copy and the switch on an open old-format queue. */
static int migrate_run(struct migrate *m, char *err, size_t errlen)
{
	struct queue *q = m->q;
	const char *what = "the new databases";
	int rc;

	if ((rc = migrate_remove_new(q->env)) != 0 || (rc = migrate_fill(m, &what)) != 0) {
		snprintf(err, errlen, "copying %s: %s", what, db_strerror(rc));
		return -1;
	}
	if ((rc = q->env->log_flush(q->env, NULL)) != 0 ||
	    (rc = migrate_close_old(q)) != 0 ||
	    (rc = queue_txn_run(q, 0, DB_TXN_SYNC, migrate_swap_txn, NULL)) != 0 ||
	    (rc = q->env->txn_checkpoint(q->env, 0, 0, DB_FORCE)) != 0) {
		snprintf(err, errlen, "switching to the new databases: %s", db_strerror(rc));
		return -1;
	}
	return 0;
}

/* queue_migrate - see queue.h. */
int queue_migrate(const struct queue_options *opt, FILE *report, bool *done, char *err,
		  size_t errlen)
{
	struct migrate m = { .report = report };
	bool old = false;
	int rc;

	*done = false;
	if ((m.q = queue_open_format(opt, true, &old, err, errlen)) == NULL)
		return -1;
	if (!old) {
		queue_close(m.q);
		return 0;
	}
	rc = migrate_run(&m, err, errlen);
	queue_close(m.q);
	if (rc == 0 && (rc = queue_format_write(opt->spool_directory, err, errlen)) == 0)
		rc = migrate_chown(opt->spool_directory, err, errlen);
	if (rc == 0) {
		fprintf(report, "mtaq: migrated %zu messages (%zu damaged, held) and %zu rows in "
			"all to spool format %d\n", m.messages, m.damaged, m.rows, QUEUE_FORMAT);
		*done = true;
	}
	return rc;
}
