/*
 * queue_impl.h - what env.c, writer.c and store.c share inside queue/:
 * the struct queue layout, the body-chunk key helpers and the statistics
 * table the writer applies (stats.c). Not for use
 * outside queue/ (everyone else goes through queue.h).
 */
#ifndef QUEUE_QUEUE_IMPL_H
#define QUEUE_QUEUE_IMPL_H

#include <stdatomic.h>

#include <db.h>

#include "queue/queue.h"

/*
 * Every database uses 4 KB pages: no larger than the filesystem block,
 * so a page is written to disk whole or not at all (a 64 KB page was 16
 * separate block writes, and SIGKILL, power loss or ENOSPC between two
 * of them left a page whose header was new and whose tail was old,
 * which recovery then trusted). A body chunk of 60 KB is stored as an
 * overflow item: a chain of such pages, each checksummed (DB_CHKSUM).
 */
#define QUEUE_PAGESIZE 4096
#define QUEUE_CHUNK_SIZE (60 * 1024)
/*
 * A body's last chunk, when shorter than QUEUE_PIECED_TAIL, is stored as
 * pieces of QUEUE_PIECE_SIZE bytes (the last one shorter), numbered on
 * from it. On a 4 KB page an item over ~1000 bytes becomes an overflow
 * item with a page of its own: a 1 KB message took a whole new page,
 * and that cost 9% of the accept rate at 1 KB (BENCHMARKS.md). Pieces
 * stay on the leaf pages, several messages to a page.
 */
#define QUEUE_PIECE_SIZE 960
#define QUEUE_PIECED_TAIL (4 * QUEUE_PIECE_SIZE)
/*
 * The spool's format, in the file FORMAT in the spool directory. A spool
 * without it that holds envelope.db was made by mtad 0.1 (64 KB body
 * pages, no page checksums): queue_open refuses it, and `mtaq migrate`
 * (migrate.c) moves its messages to this format.
 */
#define QUEUE_FORMAT 2
#define QUEUE_FORMAT_FILE "FORMAT"
/* Body key: the 14 id characters then a 4-byte big-endian chunk number. */
#define QUEUE_BODY_KEYLEN (QUEUE_ID_LEN + 4)
/* A deadlock victim tries again this many times before giving up. */
#define QUEUE_DEADLOCK_RETRIES 8

/* Distinct counter keys held between two flushes; more are dropped. */
#define QUEUE_STATS_MAX_PENDING 20000
/* How often the loop hands the counters to the writer, and how often the
 * writer deletes expired days (also once at start). */
#define QUEUE_STATS_FLUSH_MS 1000
#define QUEUE_STATS_EXPIRE_EVERY 3600	/* seconds */
/* Expired keys the writer deletes between two batches of messages. */
#define QUEUE_STATS_EXPIRE_STEP 1000
/* Sketches held between two flushes: days (two around midnight), rules
 * per day (policy_rule_name has 12), the length of a rule's name. */
#define QUEUE_STATS_SKETCH_DAYS 2
#define QUEUE_STATS_SKETCH_RULES 16
#define QUEUE_STATS_RULE_MAX 32

/* queue_stats_key_len - the length of a well-formed statistics key (see
 * queue.h) of at most max bytes, or 0 (stats_key.c). */
size_t queue_stats_key_len(const char *key, size_t max);

/* Damaged records whose due-scan warning is not repeated (schedule.c). */
#define QUEUE_DAMAGED_SEEN 32

/* How often mtad runs DB_ENV->failchk (env.c). */
#define QUEUE_FAILCHK_MS 1000
/* Threads of control Berkeley DB tracks for failchk: mtad's few and
 * one per mtaq, with room (slots of dead ones are reused). */
#define QUEUE_THREAD_COUNT 500

struct queue_stats_table;

struct queue_failchk;

struct queue_writer;

struct queue_repl;

struct queue {
	DB_ENV *env;
	pid_t pid;		/* this process (env_isalive) */
	DB *envelope;		/* envelope.db: qid -> encoded record */
	DB *body;		/* body.db: qid + chunk number -> bytes */
	DB *stats;		/* stats.db: counter name -> u64 big-endian */
	DB *schedule;		/* schedule.db: secondary of envelope.db (schedule.c) */
	DB *schedule_plain;	/* schedule.db again, not associated; NULL until
				 * queue_delete needs it (store.c) */
	struct queue_options opt;	/* spool_directory points at spool */
	char *spool;
	struct queue_writer *writer;	/* NULL unless queue_writer_start ran */
	bool wrote;		/* queue_writer_start ran: this is mtad (see queue_close) */
	/* Counters added since the last flush (NULL: none), by every event
	 * loop's sessions: under stats_lock. */
	uv_mutex_t stats_lock;
	struct queue_stats_table *stats_pending;
	/* The spool's SipHash key for address sketches (stats.c): set by
	 * queue_writer_start before the loop uses it, constant after. */
	uint64_t sketch_key[2];
	/* Written by the writer thread, read by queue_writer_stats anywhere. */
	_Atomic uint64_t commits, flushes;
	/* Log syncs that had messages, by batch size (bucket b: 2^b to
	 * 2^(b+1)-1 messages, the last open-ended): the writer thread adds,
	 * the loop thread takes them into the statistics about once a second. */
	_Atomic uint64_t sync_batches[QUEUE_SYNC_BUCKETS];
	_Atomic uint64_t message_syncs;	/* the same syncs, never reset */
	/* Damaged records a due scan logged already (schedule.c), a ring;
	 * writer thread. */
	char damaged_seen[QUEUE_DAMAGED_SEEN][QUEUE_ID_LEN];
	unsigned damaged_next;
	/* Berkeley DB reported a panic (env.c logs it once); any thread. */
	_Atomic bool panicked;
	/* The failchk thread (QUEUE_OWNER only; env.c), NULL when not running. */
	struct queue_failchk *failchk;
	/* Replication (replication.c): NULL on a single node and in mtaq. */
	struct queue_repl *repl;
	/* Closing the environment cleanly leaves the clean marker (owner.c). */
	bool marks_clean;
	/* Last error of a store.c call; only the thread using those calls
	 * writes it (the writer thread keeps its errors in its jobs). */
	char err[256];
};

/*
 * queue_open_format - queue_open, but a spool of mtad 0.1 is opened too
 * when old_ok (for migrate.c), *old saying whether it was one.
 */
struct queue *queue_open_format(const struct queue_options *opt, bool old_ok, bool *old,
				char *err, size_t errlen);

/* queue_open_db - opens (creating) a database of the current format in
 * q's environment. Returns 0 or a Berkeley DB error. */
int queue_open_db(struct queue *q, DB **dbp, const char *file);

/* ---- replication.c: the Replication Manager under mtad ---- */

/* queue_repl_new - q->repl from opt->replication (before the environment
 * opens: it says DB_INIT_REP). 0, or -1 with err. */
int queue_repl_new(struct queue *q, char *err, size_t errlen);
/* queue_repl_start - sites and policies, then a thread that runs
 * repmgr_start until the node is in the group (elections run from then
 * on, in Berkeley DB's threads). 0, or a Berkeley DB error with *what
 * set, or -1 with err. */
int queue_repl_start(struct queue *q, const char **what, char *err, size_t errlen);
/* queue_repl_stop - closes the channel and stops the start thread
 * (after the failchk thread, before the environment closes). */
void queue_repl_stop(struct queue *q);
/* queue_repl_event - env.c's event callback hands every replication event here. */
void queue_repl_event(struct queue *q, uint32_t event, void *info);
/* queue_repl_tick - once a second from the failchk thread: the status
 * file, the replica's log flush, the log position sent to the master. */
void queue_repl_tick(struct queue *q);
/* queue_repl_free - after the environment closed. */
void queue_repl_free(struct queue *q);
/* The writer thread: queue_repl_writer_is_me once at its start; then,
 * around each commit, queue_repl_unacked clears and returns whether the
 * commit since the last call went unacknowledged (DB_EVENT_REP_PERM_FAILED
 * comes in the committing thread). */
void queue_repl_writer_is_me(struct queue *q);
bool queue_repl_unacked(struct queue *q);
/* queue_repl_acked - the writer: a log flush made messages durable and
 * (when the group waits for acknowledgements) acknowledged; the time is
 * mtaq replication's "last ack". */
void queue_repl_acked(struct queue *q);
/* queue_repl_waits - commits wait for acknowledgements (a group with
 * replication_ack other than none): the writer then commits a batch's
 * messages as one parent transaction, one wait per batch. */
bool queue_repl_waits(const struct queue *q);

/* queue_format_write - writes the spool's FORMAT file (durably). 0 or -1. */
int queue_format_write(const char *spool, char *err, size_t errlen);
/* The clean marker SPOOL/queue.clean (owner.c): mark and clear return
 * 0 or -1 (errno). */
int queue_clean_mark(const char *spool);
int queue_clean_clear(const char *spool);
bool queue_clean_marked(const char *spool);
/* queue_env_exists - the environment's regions exist in spool. */
bool queue_env_exists(const char *spool);

/* queue_body_key - fills a body key for chunk n of qid. */
void queue_body_key(unsigned char key[QUEUE_BODY_KEYLEN], const char *qid, uint32_t n);

/*
 * queue_body_del - deletes every chunk of qid inside txn. Returns 0 or
 * a Berkeley DB error (DB_LOCK_DEADLOCK: the caller retries).
 */
int queue_body_del(struct queue *q, DB_TXN *txn, const char *qid);

/*
 * queue_txn_run - runs fn inside a transaction begun with begin_flags and
 * committed with commit_flags. When fn (or the commit) loses a deadlock
 * the transaction is aborted and fn runs again, so fn must start from
 * scratch each time. Any other non-zero return from fn aborts and is
 * passed back. Returns 0 or a Berkeley DB error.
 */
typedef int (*queue_txn_fn)(struct queue *q, DB_TXN *txn, void *arg);
int queue_txn_run(struct queue *q, uint32_t begin_flags, uint32_t commit_flags,
		  queue_txn_fn fn, void *arg);
/* queue_txn_run_in - the same as a child of parent (NULL: top level): a
 * child's commit becomes durable (and replicated) with its parent's. */
int queue_txn_run_in(struct queue *q, DB_TXN *parent, uint32_t begin_flags,
		     uint32_t commit_flags, queue_txn_fn fn, void *arg);

/*
 * queue_orphans_remove - deletes body chunks whose id has no envelope
 * (a crash during DATA). Counts the messages cleaned in *removed.
 */
int queue_orphans_remove(struct queue *q, size_t *removed);

/*
 * queue_stats_take - detaches the pending counters for a STATS job (loop
 * thread); logs the updates dropped since the last flush. NULL when
 * there is nothing to write.
 */
struct queue_stats_table *queue_stats_take(struct queue *q);

/* queue_stats_table_free - releases a table (any thread, once). */
void queue_stats_table_free(struct queue_stats_table *t);

/* queue_stats_table_size - distinct keys in t. */
size_t queue_stats_table_size(const struct queue_stats_table *t);

/*
 * queue_stats_apply - adds every counter of t to stats.db and merges
 * its sketches into the stored ones of their day, in one transaction
 * (read-modify-write, retried on deadlock), committed
 * without a sync of its own. Writer thread. Returns 0 or a Berkeley DB
 * error.
 */
int queue_stats_apply(struct queue *q, struct queue_stats_table *t);

/*
 * queue_stats_key_load - reads the spool's sketch hash key
 * (QUEUE_STATS_HASH_KEY) into q->sketch_key, storing a random one the
 * first time: the address sketches of a day written before and after a
 * restart must hash alike to be merged, and a client must not know the
 * key. Called by queue_writer_start. Returns 0 or a Berkeley DB error
 * (or errno).
 */
int queue_stats_key_load(struct queue *q);

/*
 * queue_stats_expire - deletes the counters whose day is more than
 * q->opt.stats_keep_days before the local date of now, and the
 * ten-minute sender keys (sender/HHMM/...) of the days before yesterday
 * (looking back at most 31 days), at most limit of them (0: all), in
 * transactions of at most 1000 keys. Writer thread
 * (the tests call it directly). Counts the keys deleted in *removed;
 * fewer than limit means none is left. Returns 0 or a Berkeley DB error.
 */
int queue_stats_expire(struct queue *q, time_t now, size_t limit, size_t *removed);

/* Schedule key: next_attempt (u64 big-endian, negative as 0) then the qid. */
#define QUEUE_SCHEDULE_KEYLEN (8 + QUEUE_ID_LEN)

/*
 * queue_schedule_key - the DB->associate callback of schedule.db: the
 * key of an envelope record, or DB_DONOTINDEX for a held message or a
 * record that does not decode. Any thread.
 */
int queue_schedule_key(DB *secondary, const DBT *key, const DBT *data, DBT *result);

/*
 * A unit of work for the writer thread, embedded in the caller's own
 * struct (schedule.c). run does the database work on the writer thread;
 * a write task's run returns 1 when it committed something that the
 * batch's log flush must cover (0 otherwise) and runs before the flush,
 * a read task (write false) runs after the batch was flushed and
 * reported. flush_rc is set (writer thread) when that flush failed.
 * done runs exactly once on the loop thread, after which the writer
 * does not touch the task; it frees it.
 */
struct queue_task {
	bool write;
	int (*run)(struct queue *q, struct queue_task *task);
	void (*done)(struct queue_task *task);
	int flush_rc;
};

/* queue_task_submit - hands task to the writer (loop thread). Returns 0,
 * or -1 with errno ESHUTDOWN (no writer) or ENOMEM: then done never runs. */
int queue_task_submit(struct queue *q, struct queue_task *task);

/* queue_seterr - formats the last error of a store.c call into q->err. */
void queue_seterr(struct queue *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
