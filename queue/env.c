/*
 * env.c - opening and closing the Berkeley DB environment in the spool
 * directory, with its three databases:
 *   envelope.db  btree, qid (14 bytes) -> encoded envelope (record.c)
 *   body.db      btree, qid + u32 BE chunk -> chunk bytes (60 KB chunks
 *                as overflow items: chains of 4 KB pages)
 *   stats.db     btree, "YYYYMMDD/name" -> u64 BE counter or sketch (stats.c)
 *   schedule.db  btree, u64 BE next_attempt + qid -> (envelope.db's record):
 *                a secondary index Berkeley DB keeps in step with
 *                envelope.db (DB->associate, key from schedule.c)
 *
 * Every database has 4 KB pages (written whole, never torn: see
 * queue_impl.h) and page checksums (DB_CHKSUM: a page damaged on disk is
 * an error, never data). The file FORMAT says which spool format this
 * is; a spool of mtad 0.1 is refused with the command that migrates it.
 *
 * Several processes share the environment: mtad (the only writer of new
 * messages, and the long-lived owner) and any number of mtaq runs
 * (readers, and the rare delete, hold, flush). Recovery is the owner's
 * alone, because recovery under a process that has the environment open
 * panics that process: an mtaq killed with SIGKILL (`timeout -k`, the
 * OOM killer, a crash) must never be able to wedge mtad. So:
 *
 *   - mtad takes the spool lock (owner.c) before it opens the queue and
 *     holds it until it exits; holding it, it is the only process that
 *     may recover, and it does so at every start (QUEUE_OWNER: cheap
 *     after a clean stop, which checkpoints; it also rebuilds the
 *     regions with the thread table below). An mtaq attached at that
 *     moment gets DB_RUNRECOVERY and fails; mtad does not care.
 *   - Nobody uses DB_REGISTER: a register opener that finds a dead
 *     process panics the live environment, whatever its own flags.
 *   - Every opener configures thread tracking (set_thread_count,
 *     set_isalive; the default thread id is pid + pthread_self), and
 *     mtad runs DB_ENV->failchk every second in a thread of its own
 *     (env_failchk_main), which never waits for the writer or the loop:
 *     failchk releases the locks of a dead process and aborts its
 *     transactions, so an mtaq killed between Berkeley DB calls (the
 *     usual case: it is writing to a pipe) leaves nothing behind, and a
 *     writer waiting for one of its locks goes on within a second. A
 *     process that died inside Berkeley DB (holding a mutex, in the
 *     middle of a write) makes failchk panic the environment.
 *   - mtaq (QUEUE_JOIN) never recovers: while mtad runs it joins; with
 *     mtad stopped it joins only when mtad (or `mtaq recover`) left the
 *     clean marker (owner.c), runs failchk itself for dead mtaq runs,
 *     and else fails, saying to run `mtaq recover` (QUEUE_RECOVER).
 *     Only where there are no regions at all (a new spool; db_recover
 *     removes them) nobody can be attached, and mtaq creates them.
 *   - A panic (env_event) is logged once and handed to the owner
 *     (opt.on_panic): mtad stops accepting and exits non-zero, and
 *     systemd's restart recovers (mtad/main.c).
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
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"
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

/*
 * env_not_ours - a replica's first copy of the master (internal init)
 * looks at every file in the spool and says so of each that is no
 * database: mtad's own small files are expected there, not news.
 */
static bool env_not_ours(const char *msg)
{
	static const char *const own[] = { "/active", "/replication", "/replication.tmp",
					   "/mtad.lock", "/FORMAT", "/queue.clean" };
	const char *colon;

	if (strstr(msg, "fop_read_meta: ") == NULL ||
	    strstr(msg, ": unexpected file type or format") == NULL)
		return false;
	colon = strstr(msg, ": unexpected file type or format");
	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
		size_t n = strlen(own[i]);

		if ((size_t)(colon - msg) >= n && memcmp(colon - n, own[i], n) == 0)
			return true;
	}
	return false;
}

/* env_dberr - Berkeley DB's own diagnostics go to the daemon's log. */
static void env_dberr(const DB_ENV *env, const char *pfx, const char *msg)
{
	(void)env;
	(void)pfx;
	if (env_not_ours(msg))
		return;
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
 * env_event - Berkeley DB's events. A panic (DB_RUNRECOVERY: failchk
 * found a process that died inside Berkeley DB, someone ran db_recover
 * under us, or a fatal I/O error) makes every later call fail. Berkeley
 * DB repeats its own "PANIC" line on every call; this says once what it
 * means and tells the owner, who must not go on as if nothing happened
 * (t/86-db-panic.t). Any thread, possibly inside a Berkeley DB call.
 */
static void env_event(DB_ENV *env, uint32_t event, void *info)
{
	struct queue *q = env->app_private;

	if (q != NULL && event != DB_EVENT_PANIC && event != DB_EVENT_REG_PANIC) {
		queue_repl_event(q, event, info);
		return;
	}
	if (q == NULL ||
	    atomic_exchange(&q->panicked, true))
		return;
	mtad_log(MTAD_LOG_ERROR, "queue: the Berkeley DB environment in %s needs recovery "
		 "(DB_RUNRECOVERY): nothing can be queued, delivered or read until it is "
		 "recovered%s", q->spool,
		 q->opt.on_panic != NULL ? "; mtad stops and exits for a restart, which recovers" : "");
	if (q->opt.on_panic != NULL)
		q->opt.on_panic(q->opt.on_panic_arg);
}

/* env_zombie - pid has exited and its parent has not waited for it yet
 * (a killed mtaq under a busy script): dead for failchk, though
 * kill(pid, 0) still finds it. Unknown (no /proc, or another user's
 * process hidden by ProtectProc=) counts as alive. */
static bool env_zombie(pid_t pid)
{
	char path[64], buf[512], *close_paren;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* "pid (comm) S ...": comm may hold anything, the state follows the last ')'. */
	close_paren = strrchr(buf, ')');
	return close_paren != NULL && close_paren[1] == ' ' && close_paren[2] == 'Z';
}

/*
 * env_isalive - failchk's question: does the process pid still run?
 * Our own threads outlive our environment handle, so only other
 * processes can be dead; kill(pid, 0) answers EPERM for a live process
 * of another user (mtaq as root, mtad as `user`), and a zombie holds
 * nothing any more. A recycled pid looks alive: its leftovers then wait
 * for the next failchk after it exits.
 */
static int env_isalive(DB_ENV *env, pid_t pid, db_threadid_t tid, uint32_t flags)
{
	const struct queue *q = env->app_private;

	(void)tid;
	(void)flags;
	/*
	 * Berkeley DB asks this on every spin of a busy mutex, mostly about
	 * this very process: the pid is the one noted at open, not a
	 * getpid() system call each time (that cost 4% of mtad's
	 * instructions and more in time: t/bench/ab-accept).
	 */
	if (q != NULL && pid == q->pid)
		return 1;
	if (kill(pid, 0) != 0 && errno != EPERM)
		return 0;
	return !env_zombie(pid);
}

/* env_configure_failchk - thread tracking, which failchk needs; before open. */
static int env_configure_failchk(DB_ENV *env)
{
	int rc;

	if ((rc = env->set_thread_count(env, QUEUE_THREAD_COUNT)) != 0 ||
	    (rc = env->set_isalive(env, env_isalive)) != 0)
		return rc;
	return 0;
}

/* env_configure - sizes and policies; must precede DB_ENV->open. */
static int env_configure(DB_ENV *env, const struct queue_options *opt)
{
	int rc;

	env->set_errcall(env, env_dberr);
	if ((rc = env->set_event_notify(env, env_event)) != 0)
		return rc;
	/*
	 * No commit syncs the log unless it says so (DB_TXN_SYNC): the
	 * writer syncs once per batch (group commit), mtaq's changes sync
	 * each, and what Berkeley DB commits by itself (opening a database,
	 * building the schedule index) rides on the next sync. Without this
	 * a reader's mere open flushed the whole shared log buffer, and on a
	 * full spool mtaq could not even read (t/80-disk-full.t).
	 */
	if ((rc = env->set_flags(env, DB_TXN_NOSYNC, 1)) != 0)
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

/*
 * env_open_db - opens (creating) one btree database, auto-committed,
 * with 4 KB pages and page checksums. Both only take effect when the
 * file is created; a spool of an older format is refused before this
 * (env_format) unless it is being migrated.
 */
static int env_open_db(DB_ENV *env, DB **dbp, const char *file, bool read_only)
{
	uint32_t flags = read_only ? DB_RDONLY | DB_AUTO_COMMIT | DB_THREAD
				   : DB_CREATE | DB_AUTO_COMMIT | DB_THREAD;
	DB *db;
	int rc;

	if ((rc = db_create(&db, env, 0)) != 0)
		return rc;
	if ((rc = db->set_pagesize(db, QUEUE_PAGESIZE)) != 0 ||
	    (rc = db->set_flags(db, DB_CHKSUM)) != 0) {
		db->close(db, 0);
		return rc;
	}
	rc = db->open(db, NULL, file, NULL, DB_BTREE, flags, 0600);
	if (rc != 0) {
		db->close(db, read_only ? DB_NOSYNC : 0);
		return rc;
	}
	*dbp = db;
	return 0;
}

/* queue_open_db - see queue_impl.h. */
int queue_open_db(struct queue *q, DB **dbp, const char *file)
{
	return env_open_db(q->env, dbp, file, false);
}

/* env_fsync_dir - makes a rename in dir durable. */
static int env_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* queue_format_write - see queue_impl.h. */
int queue_format_write(const char *spool, char *err, size_t errlen)
{
	char path[PATH_MAX], tmp[PATH_MAX], text[64];
	int fd, n = snprintf(text, sizeof(text), "mtad-spool %d\n", QUEUE_FORMAT);
	bool ok;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", spool, QUEUE_FORMAT_FILE) >= sizeof(path) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		env_err(err, errlen, "spool directory name too long: %s", spool);
		return -1;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
		env_err(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		return -1;
	}
	ok = write(fd, text, (size_t)n) == n && fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) < 0 || env_fsync_dir(spool) < 0) {
		env_err(err, errlen, "cannot write %s: %s", path, strerror(errno));
		(void)unlink(tmp);
		return -1;
	}
	return 0;
}

/* env_format_read - the format number in the spool's FORMAT file; 0
 * when there is none, -1 when it cannot be read or makes no sense. */
static int env_format_read(const char *spool, char *err, size_t errlen)
{
	char path[PATH_MAX], text[64] = "";
	int format = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", spool, QUEUE_FORMAT_FILE);
	if ((f = fopen(path, "re")) == NULL) {
		if (errno == ENOENT)
			return 0;
		env_err(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	if (fgets(text, sizeof(text), f) == NULL || sscanf(text, "mtad-spool %d", &format) != 1 ||
	    format < 1)
		env_err(err, errlen, "%s does not say which spool format this is", path);
	fclose(f);
	return format < 1 ? -1 : format;
}

/*
 * env_body_is_current - body.db's meta page says 4 KB pages with
 * checksums: the current format without its FORMAT file, as a restore
 * from db_hotbackup (which copies databases and logs only) leaves it.
 * Read from the file as Berkeley DB lays it out (DBMETA: page size at
 * byte 20, metaflags at byte 26 with DBMETA_CHKSUM = 0x01), before any
 * environment is open.
 */
static bool env_body_is_current(const char *spool)
{
	unsigned char meta[32];
	char path[PATH_MAX];
	uint32_t pagesize;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/body.db", spool);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	n = pread(fd, meta, sizeof(meta), 0);
	close(fd);
	if (n != (ssize_t)sizeof(meta))
		return false;
	memcpy(&pagesize, meta + 20, sizeof(pagesize));	/* the creator's byte order: ours */
	return pagesize == QUEUE_PAGESIZE && (meta[26] & 0x01) != 0;
}

/*
 * env_format - checks the spool's format before Berkeley DB touches it:
 * 0 for the current format (a new, empty spool is given the FORMAT file
 * first, so a crash while its databases are created leaves a spool that
 * is still recognised), 1 for a spool of mtad 0.1 when old_ok, -1 with
 * the reason (and the command that fixes it) in err otherwise.
 */
static int env_format(const char *spool, bool old_ok, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int format = env_format_read(spool, err, errlen);

	if (format < 0)
		return -1;
	if (format == QUEUE_FORMAT)
		return 0;
	if (format > QUEUE_FORMAT) {
		env_err(err, errlen, "queue %s has spool format %d, newer than this program's %d",
			spool, format, QUEUE_FORMAT);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/envelope.db", spool);
	if (format == 0 && access(path, F_OK) < 0 && errno == ENOENT)
		return queue_format_write(spool, err, errlen);
	if (format == 0 && env_body_is_current(spool))	/* restored from db_hotbackup */
		return queue_format_write(spool, err, errlen);
	if (old_ok)
		return 1;
	env_err(err, errlen, "queue %s was made by mtad 0.1 (64 KB body pages that a crash can "
		"tear, no page checksums); with mtad stopped, run `mtaq migrate` to move its "
		"messages to the current format", spool);
	return -1;
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

/*
 * env_open_flags - DB_ENV->open's flags for q->opt.mode (see the header
 * comment). Owner and recoverer hold the spool lock: they clear the
 * clean marker first, so that a crash from here on is seen. A joiner
 * looks whether mtad runs; -1 with err when it must not open.
 */
static int env_open_flags(struct queue *q, uint32_t *flags, char *err, size_t errlen)
{
	int owned;

	*flags = DB_CREATE | DB_INIT_TXN | DB_INIT_LOG | DB_INIT_LOCK | DB_INIT_MPOOL | DB_THREAD;
	if (q->opt.mode != QUEUE_JOIN) {
		if (queue_clean_clear(q->spool) != 0) {
			env_err(err, errlen, "queue %s: cannot remove queue.clean: %s", q->spool,
				strerror(errno));
			return -1;
		}
		*flags |= DB_RECOVER;
		if (q->repl != NULL)
			*flags |= DB_INIT_REP;
		q->marks_clean = true;
		return 0;
	}
	if ((owned = queue_spool_owned(q->spool)) < 0) {
		env_err(err, errlen, "queue %s: cannot tell whether mtad runs (mtad.lock): %s",
			q->spool, strerror(errno));
		return -1;
	}
	if (owned || queue_clean_marked(q->spool))
		return 0;	/* join */
	if (!queue_env_exists(q->spool)) {
		/* No regions (a new spool, or db_recover removed them):
		 * nobody can be attached, so recovery disturbs no one. */
		*flags |= DB_RECOVER;
		q->marks_clean = true;
		return 0;
	}
	env_err(err, errlen, "the queue in %s needs recovery: mtad is not running and did not "
		"close it cleanly; run `mtaq recover` (or start mtad, which recovers at start)",
		q->spool);
	return -1;
}

/*
 * env_failchk_stopped - mtaq joining with mtad stopped: the leftovers of
 * mtaq runs that died meanwhile, which nobody else would clean. When
 * failchk cannot clean them, the environment needs recovery: the clean
 * marker goes, and the open fails saying so.
 */
static int env_failchk_stopped(struct queue *q, char *err, size_t errlen)
{
	int rc;

	if (q->opt.mode != QUEUE_JOIN || q->marks_clean || queue_spool_owned(q->spool) != 0)
		return 0;
	if ((rc = q->env->failchk(q->env, 0)) == 0)
		return 0;
	(void)queue_clean_clear(q->spool);
	env_err(err, errlen, "the queue in %s needs recovery (%s); run `mtaq recover` with mtad "
		"stopped (or start mtad, which recovers at start)", q->spool, db_strerror(rc));
	return -1;
}

/*
 * env_open_dbs - the four databases. A read-only opener (mtaq's list,
 * show, verify...) opens them DB_RDONLY and without the schedule index:
 * it writes nothing, not even a log record, so it works on a full spool
 * and cannot change the queue by mistake. Until mtad has created them,
 * it opens them as everyone else does.
 */
static int env_open_dbs(struct queue *q, const char **what)
{
	char path[PATH_MAX];
	bool ro;
	int rc;

	snprintf(path, sizeof(path), "%s/envelope.db", q->spool);
	ro = q->opt.read_only && access(path, F_OK) == 0;
	*what = "open envelope.db";
	if ((rc = env_open_db(q->env, &q->envelope, "envelope.db", ro)) != 0)
		return rc;
	*what = "open body.db";
	if ((rc = env_open_db(q->env, &q->body, "body.db", ro)) != 0)
		return rc;
	*what = "open stats.db";
	if ((rc = env_open_db(q->env, &q->stats, "stats.db", ro)) != 0)
		return rc;
	if (ro)
		return 0;
	*what = "open schedule.db";
	if ((rc = env_open_db(q->env, &q->schedule, "schedule.db", false)) != 0)
		return rc;
	/* Every writer associates, so every change to envelope.db moves the
	 * schedule entry in its own transaction. DB_CREATE: when schedule.db
	 * is empty (a spool from before it existed, or one with no message)
	 * the index is built from envelope.db here, auto-committed. */
	*what = "index envelope.db by schedule";
	return q->envelope->associate(q->envelope, NULL, q->schedule, queue_schedule_key,
				      DB_CREATE);
}

/* env_start - creates, configures and opens the environment and databases. */
static int env_start(struct queue *q, const char **what, char *err, size_t errlen)
{
	uint32_t flags;
	int rc;

	if (env_open_flags(q, &flags, err, errlen) != 0)
		return -1;
	*what = "create environment";
	if ((rc = db_env_create(&q->env, 0)) != 0)
		return rc;
	q->env->app_private = q;	/* for env_event, env_isalive */
	q->pid = getpid();
	*what = "configure environment";
	if ((rc = env_configure(q->env, &q->opt)) != 0 ||
	    (rc = env_configure_failchk(q->env)) != 0)
		return rc;
	*what = "open environment";
	if ((rc = q->env->open(q->env, q->opt.spool_directory, flags, 0600)) != 0)
		return rc;
	if (env_failchk_stopped(q, err, errlen) != 0)
		return -1;
	env_prealloc(q);
	/* A replica's copy is written by replication alone: the databases
	 * wait until this node is master (queue_open_databases). */
	if (q->repl != NULL)
		return queue_repl_start(q, what, err, errlen);
	return q->opt.env_only ? 0 : env_open_dbs(q, what);
}

/* queue_open_databases - see queue.h. */
int queue_open_databases(struct queue *q, char *err, size_t errlen)
{
	const char *what = "";
	int rc;

	if (q->envelope != NULL)
		return 0;
	if ((rc = env_open_dbs(q, &what)) == 0)
		return 0;
	env_err(err, errlen, "queue %s: cannot %s: %s", q->spool, what, db_strerror(rc));
	return -1;
}

/* The failchk thread of an owner: it sleeps on cond until the next
 * check is due or stop is set. */
struct queue_failchk {
	struct queue *q;
	uv_thread_t thread;
	uv_mutex_t lock;
	uv_cond_t cond;
	bool stop;		/* under lock */
};

/*
 * env_failchk_main - DB_ENV->failchk every QUEUE_FAILCHK_MS until told
 * to stop. Its own thread: a writer waiting for a lock a dead mtaq held
 * is exactly what it must unblock. DB_RUNRECOVERY has already fired
 * the panic event (env_event): nothing more to check after that.
 */
static void env_failchk_main(void *arg)
{
	struct queue_failchk *fc = arg;
	bool warned = false;

	uv_mutex_lock(&fc->lock);
	while (!fc->stop) {
		int rc;

		if (uv_cond_timedwait(&fc->cond, &fc->lock, QUEUE_FAILCHK_MS * 1000000ull) == 0 ||
		    fc->stop)
			continue;
		uv_mutex_unlock(&fc->lock);
		rc = fc->q->env->failchk(fc->q->env, 0);
		queue_repl_tick(fc->q);
		uv_mutex_lock(&fc->lock);
		if (rc == DB_RUNRECOVERY || atomic_load(&fc->q->panicked))
			break;
		if (rc != 0 && !warned)
			mtad_log(MTAD_LOG_WARNING, "queue: failchk: %s", db_strerror(rc));
		warned |= rc != 0;
	}
	uv_mutex_unlock(&fc->lock);
}

/* env_failchk_start - starts the failchk thread of an owner. */
static int env_failchk_start(struct queue *q, char *err, size_t errlen)
{
	struct queue_failchk *fc = calloc(1, sizeof(*fc));
	int rc;

	if (fc == NULL) {
		env_err(err, errlen, "out of memory");
		return -1;
	}
	fc->q = q;
	if ((rc = uv_mutex_init(&fc->lock)) != 0) {
		free(fc);
		env_err(err, errlen, "failchk lock: %s", uv_strerror(rc));
		return -1;
	}
	if ((rc = uv_cond_init(&fc->cond)) != 0) {
		uv_mutex_destroy(&fc->lock);
		free(fc);
		env_err(err, errlen, "failchk condition: %s", uv_strerror(rc));
		return -1;
	}
	if ((rc = uv_thread_create(&fc->thread, env_failchk_main, fc)) != 0) {
		uv_cond_destroy(&fc->cond);
		uv_mutex_destroy(&fc->lock);
		free(fc);
		env_err(err, errlen, "failchk thread: %s", uv_strerror(rc));
		return -1;
	}
	q->failchk = fc;
	return 0;
}

/* env_failchk_stop - stops and joins the failchk thread, if any. */
static void env_failchk_stop(struct queue *q)
{
	struct queue_failchk *fc = q->failchk;

	if (fc == NULL)
		return;
	uv_mutex_lock(&fc->lock);
	fc->stop = true;
	uv_cond_signal(&fc->cond);
	uv_mutex_unlock(&fc->lock);
	if (uv_thread_join(&fc->thread) != 0)
		mtad_log(MTAD_LOG_ERROR, "queue: cannot join the failchk thread");
	uv_cond_destroy(&fc->cond);
	uv_mutex_destroy(&fc->lock);
	free(fc);
	q->failchk = NULL;
}

/* queue_open_format - see queue_impl.h. */
struct queue *queue_open_format(const struct queue_options *opt, bool old_ok, bool *old,
				char *err, size_t errlen)
{
	struct queue *q;
	const char *what = "";
	int rc, format;

	if (opt == NULL || opt->spool_directory == NULL || opt->spool_directory[0] == '\0') {
		env_err(err, errlen, "no spool directory configured");
		return NULL;
	}
	if (env_spool(opt->spool_directory, err, errlen) < 0)
		return NULL;
	if ((format = env_format(opt->spool_directory, old_ok, err, errlen)) < 0)
		return NULL;
	if (old != NULL)
		*old = format == 1;
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		env_err(err, errlen, "out of memory");
		return NULL;
	}
	if (uv_mutex_init(&q->stats_lock) != 0) {
		env_err(err, errlen, "cannot create the statistics lock");
		free(q);
		return NULL;
	}
	q->opt = *opt;
	if ((q->spool = strdup(opt->spool_directory)) == NULL) {
		env_err(err, errlen, "out of memory");
		uv_mutex_destroy(&q->stats_lock);
		free(q);
		return NULL;
	}
	q->opt.spool_directory = q->spool;
	env_defaults(&q->opt);
	if (queue_repl_new(q, err, errlen) != 0) {
		queue_close(q);
		return NULL;
	}
	if ((rc = env_start(q, &what, err, errlen)) != 0) {
		if (rc != -1)
			env_err(err, errlen, "queue %s: cannot %s: %s", opt->spool_directory,
				what, db_strerror(rc));
		q->marks_clean = false;	/* whatever happened, it was not a clean session */
		queue_close(q);
		return NULL;
	}
	if (q->opt.mode == QUEUE_OWNER && env_failchk_start(q, err, errlen) != 0) {
		queue_close(q);
		return NULL;
	}
	return q;
}

/* queue_open - see queue.h. */
struct queue *queue_open(const struct queue_options *opt, char *err, size_t errlen)
{
	return queue_open_format(opt, false, NULL, err, errlen);
}

/*
 * env_close_env - closes the environment; an owner (or recoverer) that
 * closed everything cleanly, and saw no panic, leaves the clean marker:
 * the next mtaq may then join with mtad stopped.
 */
static void env_close_env(struct queue *q, bool db_failed)
{
	if (q->env->close(q->env, 0) != 0) {
		mtad_log(MTAD_LOG_WARNING, "queue: closing the environment failed");
		return;
	}
	q->env = NULL;
	if (q->marks_clean && !db_failed && !atomic_load(&q->panicked) &&
	    queue_clean_mark(q->spool) != 0)
		mtad_log(MTAD_LOG_WARNING, "queue: cannot create %s/queue.clean: %s "
			 "(mtaq will ask for `mtaq recover` while mtad is stopped)", q->spool,
			 strerror(errno));
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
	env_failchk_stop(q);	/* its tick uses replication's channel */
	queue_repl_stop(q);
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
	 * what a crash leaves: no clean marker, so mtaq will not join, and
	 * the next mtad start runs recovery, which rewrites the pages from
	 * the log (t/80-disk-full.t). Only in mtad (the process that ran the
	 * writer): an mtaq fails to close on mtad's dirty pages in the shared
	 * cache, which is no damage of its own.
	 */
	if (failed && q->env != NULL && q->wrote)
		mtad_log(MTAD_LOG_ERROR, "queue: the databases could not be written at close; "
			 "leaving the environment to recovery at the next start");
	else if (q->env != NULL)
		env_close_env(q, failed);
	queue_repl_free(q);
	uv_mutex_destroy(&q->stats_lock);
	free(q->spool);
	free(q);
}
