/*
 * env.c - opening and closing the Berkeley DB environment in the spool
 * directory, with its three databases:
 *   envelope.db  btree, qid (14 bytes) -> encoded envelope (record.c)
 *   body.db      btree, 64 KB pages, qid + u32 BE chunk -> chunk bytes
 *   stats.db     btree, "YYYYMMDD/name" -> u64 BE counter (stats.c)
 *   schedule.db  btree, u64 BE next_attempt + qid -> (envelope.db's record):
 *                a secondary index Berkeley DB keeps in step with
 *                envelope.db (DB->associate, key from schedule.c)
 *
 * Several processes share the environment: mtad (the only writer of new
 * messages) and any number of mtaq runs (readers, and deletes). Every
 * opener passes DB_REGISTER|DB_RECOVER: Berkeley DB then records each
 * process in the __db.register file and runs recovery only when one of
 * them died with the environment open. A clean second opener (mtaq
 * while mtad runs) therefore just joins; an opener after a crash
 * recovers, and the processes still attached get DB_RUNRECOVERY and must
 * restart. So mtaq must always close the environment, even on ^C.
 *
 * Durability policy is not set here: writer.c commits with
 * DB_TXN_NOSYNC and flushes the log once per batch (group commit);
 * store.c's rare administrative changes commit synchronously.
 *
 * Must not: create the spool anywhere but where configured, leave a
 * half-opened environment behind on error, or touch global state.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mtad/mtad.h"
#include "queue/queue_impl.h"

#define QUEUE_DEFAULT_CACHE (64ull << 20)
#define QUEUE_DEFAULT_LOG_BUFFER (1ull << 20)
#define QUEUE_DEFAULT_CHECKPOINT 60
#define QUEUE_DEFAULT_STATS_KEEP 8	/* days before today */
/* Hundreds of sessions' transactions plus mtaq cursors, with room. */
#define QUEUE_MAX_LOCKS 50000
#define QUEUE_MAX_TXNS 1000

/* env_err - formats an error message into the caller's buffer. */
static void env_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void env_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* env_dberr - Berkeley DB's own diagnostics go to the daemon's log. */
static void env_dberr(const DB_ENV *env, const char *pfx, const char *msg)
{
	(void)env;
	(void)pfx;
	mtad_log(MTAD_LOG_WARNING, "queue: %s", msg);
}

/* env_spool - creates the spool directory (0700) when missing; checks access. */
static int env_spool(const char *dir, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		env_err(err, errlen, "cannot create spool directory %s: %s", dir, strerror(errno));
		return -1;
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		env_err(err, errlen, "spool directory %s is not a directory", dir);
		return -1;
	}
	if (access(dir, R_OK | W_OK | X_OK) < 0) {
		env_err(err, errlen, "spool directory %s is not writable: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * env_event - Berkeley DB's events. A panic (DB_RUNRECOVERY: another
 * process ran recovery, e.g. an mtaq started after one was killed with
 * SIGKILL, or a fatal I/O error) makes every later call fail: mtad then
 * answers 451 to every message and cannot deliver until it is restarted
 * (recovery runs at start). Berkeley DB repeats its own "PANIC" line on
 * every call; this says once what it means (t/86-db-panic.t).
 */
static void env_event(DB_ENV *env, uint32_t event, void *info)
{
	struct queue *q = env->app_private;

	(void)info;
	if ((event != DB_EVENT_PANIC && event != DB_EVENT_REG_PANIC) || q == NULL ||
	    atomic_exchange(&q->panicked, true))
		return;
	mtad_log(MTAD_LOG_ERROR, "queue: the Berkeley DB environment in %s needs recovery "
		 "(DB_RUNRECOVERY): nothing can be queued, delivered or read until this "
		 "process is restarted; restarting runs recovery", q->spool);
}

/* env_configure - sizes and policies; must precede DB_ENV->open. */
static int env_configure(DB_ENV *env, const struct queue_options *opt)
{
	int rc;

	env->set_errcall(env, env_dberr);
	if ((rc = env->set_event_notify(env, env_event)) != 0)
		return rc;
	if ((rc = env->set_cachesize(env, (uint32_t)(opt->cache_size >> 30),
				     (uint32_t)(opt->cache_size & ((1u << 30) - 1)), 1)) != 0 ||
	    (rc = env->set_lg_bsize(env, (uint32_t)opt->log_buffer_size)) != 0 ||
	    (rc = env->log_set_config(env, DB_LOG_AUTO_REMOVE, 1)) != 0 ||
	    (rc = env->set_lk_detect(env, DB_LOCK_DEFAULT)) != 0 ||
	    (rc = env->set_lk_max_locks(env, QUEUE_MAX_LOCKS)) != 0 ||
	    (rc = env->set_lk_max_lockers(env, QUEUE_MAX_LOCKS)) != 0 ||
	    (rc = env->set_lk_max_objects(env, QUEUE_MAX_LOCKS)) != 0 ||
	    (rc = env->set_tx_max(env, QUEUE_MAX_TXNS)) != 0)
		return rc;
	return 0;
}

/* env_open_db - opens (creating) one btree database, auto-committed. */
static int env_open_db(DB_ENV *env, DB **dbp, const char *file, uint32_t pagesize)
{
	DB *db;
	int rc;

	if ((rc = db_create(&db, env, 0)) != 0)
		return rc;
	/* The page size only matters when the file is created. */
	if (pagesize != 0 && (rc = db->set_pagesize(db, pagesize)) != 0) {
		db->close(db, 0);
		return rc;
	}
	rc = db->open(db, NULL, file, NULL, DB_BTREE,
		      DB_CREATE | DB_AUTO_COMMIT | DB_THREAD, 0600);
	if (rc != 0) {
		db->close(db, 0);
		return rc;
	}
	*dbp = db;
	return 0;
}

/* env_defaults - fills zero options with the documented defaults. */
static void env_defaults(struct queue_options *opt)
{
	if (opt->cache_size == 0)
		opt->cache_size = QUEUE_DEFAULT_CACHE;
	if (opt->log_buffer_size == 0)
		opt->log_buffer_size = QUEUE_DEFAULT_LOG_BUFFER;
	if (opt->checkpoint_interval == 0)
		opt->checkpoint_interval = QUEUE_DEFAULT_CHECKPOINT;
	if (opt->stats_keep_days == 0)
		opt->stats_keep_days = QUEUE_DEFAULT_STATS_KEEP;
}

/*
 * env_prealloc - gives every Berkeley DB region file in the spool its
 * disk blocks now. The regions (lock table, log buffer, page cache) are
 * __db.NNN files that Berkeley DB maps into memory and grows on demand
 * as sparse files: a page touched for the first time needs a new block,
 * and on a full filesystem the kernel answers with SIGBUS. mtad died of
 * it as soon as the spool filled up (t/80-disk-full.t). fallocate() on
 * the whole length each file is mapped with (from /proc/self/maps; the
 * file size Berkeley DB manages is kept) turns that into nothing later:
 * blocks are taken here or never. When it fails (the disk is full
 * already, or the filesystem has no fallocate) the regions stay as they
 * were, sparse: logged, not fatal, since refusing to start would also
 * stop the deliveries that free space.
 */
static void env_prealloc(const struct queue *q)
{
	char spool[PATH_MAX], line[PATH_MAX + 256];
	size_t dirlen;
	FILE *maps;

	if (realpath(q->spool, spool) == NULL || (maps = fopen("/proc/self/maps", "re")) == NULL)
		return;
	dirlen = strlen(spool);
	while (fgets(line, sizeof(line), maps) != NULL) {
		unsigned long long start, end, offset;
		char *path = strchr(line, '/');
		int fd, rc;

		if (path == NULL || sscanf(line, "%llx-%llx %*s %llx", &start, &end, &offset) != 3)
			continue;
		path[strcspn(path, "\n")] = '\0';
		if (strncmp(path, spool, dirlen) != 0 || strncmp(path + dirlen, "/__db.", 6) != 0 ||
		    strchr(path + dirlen + 1, '/') != NULL)
			continue;
		if ((fd = open(path, O_RDWR | O_CLOEXEC)) < 0)
			continue;
		rc = fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)(end - start));
		if (rc != 0 && errno != EOPNOTSUPP)
			mtad_log(MTAD_LOG_WARNING, "queue: cannot reserve %llu MB of disk for %s "
				 "(%s): a full spool filesystem may crash mtad with SIGBUS",
				 (end - start) >> 20, path, strerror(errno));
		close(fd);
	}
	fclose(maps);
}

/* env_start - creates, configures and opens the environment and databases. */
static int env_start(struct queue *q, const char **what)
{
	const uint32_t flags = DB_CREATE | DB_INIT_TXN | DB_INIT_LOG | DB_INIT_LOCK |
			       DB_INIT_MPOOL | DB_THREAD | DB_REGISTER | DB_RECOVER;
	int rc;

	*what = "create environment";
	if ((rc = db_env_create(&q->env, 0)) != 0)
		return rc;
	q->env->app_private = q;	/* for env_event */
	*what = "configure environment";
	if ((rc = env_configure(q->env, &q->opt)) != 0)
		return rc;
	*what = "open environment";
	if ((rc = q->env->open(q->env, q->opt.spool_directory, flags, 0600)) != 0)
		return rc;
	env_prealloc(q);
	*what = "open envelope.db";
	if ((rc = env_open_db(q->env, &q->envelope, "envelope.db", 0)) != 0)
		return rc;
	*what = "open body.db";
	if ((rc = env_open_db(q->env, &q->body, "body.db", QUEUE_BODY_PAGESIZE)) != 0)
		return rc;
	*what = "open stats.db";
	if ((rc = env_open_db(q->env, &q->stats, "stats.db", 0)) != 0)
		return rc;
	*what = "open schedule.db";
	if ((rc = env_open_db(q->env, &q->schedule, "schedule.db", 0)) != 0)
		return rc;
	/* Every opener associates, so every change to envelope.db moves the
	 * schedule entry in its own transaction. DB_CREATE: when schedule.db
	 * is empty (a spool from before it existed, or one with no message)
	 * the index is built from envelope.db here, auto-committed. */
	*what = "index envelope.db by schedule";
	return q->envelope->associate(q->envelope, NULL, q->schedule, queue_schedule_key,
				      DB_CREATE);
}

/* queue_open - see queue.h. */
struct queue *queue_open(const struct queue_options *opt, char *err, size_t errlen)
{
	struct queue *q;
	const char *what = "";
	int rc;

	if (opt == NULL || opt->spool_directory == NULL || opt->spool_directory[0] == '\0') {
		env_err(err, errlen, "no spool directory configured");
		return NULL;
	}
	if (env_spool(opt->spool_directory, err, errlen) < 0)
		return NULL;
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		env_err(err, errlen, "out of memory");
		return NULL;
	}
	q->opt = *opt;
	if ((q->spool = strdup(opt->spool_directory)) == NULL) {
		env_err(err, errlen, "out of memory");
		free(q);
		return NULL;
	}
	q->opt.spool_directory = q->spool;
	env_defaults(&q->opt);
	if ((rc = env_start(q, &what)) != 0) {
		env_err(err, errlen, "queue %s: cannot %s: %s", opt->spool_directory, what,
			db_strerror(rc));
		queue_close(q);
		return NULL;
	}
	return q;
}

/* env_close_db - closes one database handle (if open); true when that failed. */
static bool env_close_db(DB *db, const char *name)
{
	if (db == NULL || db->close(db, 0) == 0)
		return false;
	mtad_log(MTAD_LOG_WARNING, "queue: closing %s failed", name);
	return true;
}

/* queue_close - see queue.h; stops a running writer first. */
void queue_close(struct queue *q)
{
	bool failed = false;

	if (q == NULL)
		return;
	if (q->writer != NULL)
		queue_writer_stop(q);
	queue_stats_table_free(q->stats_pending);	/* only when the writer never ran */
	/* The secondary goes before its primary. */
	failed |= env_close_db(q->schedule_plain, "schedule.db");
	failed |= env_close_db(q->schedule, "schedule.db");
	failed |= env_close_db(q->stats, "stats.db");
	failed |= env_close_db(q->body, "body.db");
	failed |= env_close_db(q->envelope, "envelope.db");
	/*
	 * A database that cannot be closed could not write its pages (a
	 * full disk, an I/O error): their contents are only in the log, and
	 * a page may be half written, which Berkeley DB then refuses to open
	 * ("file size not a multiple of the pagesize": mtad could not start
	 * again even once the disk had room). Closing the environment would
	 * make the next opener trust the files as they are. Left open, it is
	 * what a crash leaves: the next opener finds this process dead in
	 * __db.register and runs recovery, which rewrites the pages from the
	 * log (t/80-disk-full.t). Only in mtad (the process that ran the
	 * writer): an mtaq fails to close on mtad's dirty pages in the shared
	 * cache, and a recovery it caused would pull the environment from
	 * under the running mtad.
	 */
	if (failed && q->env != NULL && q->wrote)
		mtad_log(MTAD_LOG_ERROR, "queue: the databases could not be written at close; "
			 "leaving the environment to recovery at the next start");
	else if (q->env != NULL && q->env->close(q->env, 0) != 0)
		mtad_log(MTAD_LOG_WARNING, "queue: closing the environment failed");
	free(q->spool);
	free(q);
}
