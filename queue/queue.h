/*
 * queue.h - the Berkeley DB mail queue: message records, queue ids, the
 * environment, the writer thread that makes messages durable, and the
 * read/modify calls that mtaq and the delivery runner (deliver/) use.
 *
 * Where a message becomes durable: queue/writer.c. A message exists in
 * the queue exactly when its envelope record is committed; body chunks
 * are written first, and the envelope's commit plus one log flush shared
 * by every message finishing at the same time (group commit) is what
 * `250 Ok: queued as` waits for.
 */
#ifndef QUEUE_QUEUE_H
#define QUEUE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include <uv.h>

/* ---- queue ids (queue/qid.c) ---- */

/*
 * A queue id is 14 characters from [0-9A-Z] minus vowels, sortable by
 * arrival: 7 characters of seconds, 4 of microseconds, 3 of a sequence
 * number that makes ids from one process unique within a microsecond.
 *
 * Several event loops each own a generator: generator k of n (lane k,
 * lanes n) uses only the sequence numbers k, k+n, k+2n, ..., so no two
 * loops can make the same id even in the same tick, without a lock. A
 * zeroed generator is lane 0 of 1.
 */
#define QUEUE_ID_LEN 14
#define QUEUE_ID_LANES_MAX 64

struct queue_id_gen {
	int64_t last_sec;
	int32_t last_usec;
	uint32_t seq;
	uint32_t lane, lanes;	/* set with queue_id_lane; 0, 0 = lane 0 of 1 */
};

/* queue_id_lane - makes gen lane `lane` of `lanes` (lane < lanes <= QUEUE_ID_LANES_MAX). */
void queue_id_lane(struct queue_id_gen *gen, unsigned lane, unsigned lanes);

/* queue_id_next - writes the next id (NUL-terminated) for time now. */
void queue_id_next(struct queue_id_gen *gen, int64_t sec, int32_t usec,
		   char out[QUEUE_ID_LEN + 1]);

/* queue_id_valid - true when s is a well-formed queue id. */
bool queue_id_valid(const char *s);

/* ---- the message record (queue/record.c) ---- */

#define QUEUE_RECORD_VERSION 1
#define QUEUE_DIGEST_LEN 32	/* SHA-256 */

enum queue_rcpt_state { QUEUE_RCPT_PENDING = 0, QUEUE_RCPT_SENT = 1, QUEUE_RCPT_FAILED = 2 };

struct queue_rcpt {
	char *addr;
	enum queue_rcpt_state state;
	uint32_t attempts;
	char *last_reply;	/* NULL until a delivery attempt */
	char *orcpt;		/* the address given at RCPT when an alias expanded
				 * it to this one (RFC 3461's ORCPT); else NULL */
	/* DSN (RFC 3461), as the client gave them at RCPT: NOTIFY= as
	 * QUEUE_NOTIFY_* bits (0: not given), and ORCPT= as given,
	 * "addr-type;xtext" (NULL: not given; then orcpt, when set, is the
	 * original recipient). Records written before these fields have
	 * neither: the defaults apply. */
	uint32_t notify;
	char *dsn_orcpt;
};

/* NOTIFY= bits (the values of smtp.h's SMTP_NOTIFY_*). */
#define QUEUE_NOTIFY_NEVER 0x1
#define QUEUE_NOTIFY_SUCCESS 0x2
#define QUEUE_NOTIFY_FAILURE 0x4
#define QUEUE_NOTIFY_DELAY 0x8
/* RET= (RFC 3461 §4.3): 0 not given, 1 FULL, 2 HDRS (smtp.h's SMTP_RET_*). */
#define QUEUE_RET_FULL 1
#define QUEUE_RET_HDRS 2

/*
 * The envelope of one queued message. Strings are NUL-terminated copies
 * owned by the struct (queue_envelope_free releases them); they may hold
 * any byte but NUL, the record format does not care.
 */
struct queue_envelope {
	uint32_t version;
	char qid[QUEUE_ID_LEN + 1];
	int64_t arrival;	/* unix time, seconds */
	int32_t arrival_usec;
	char *sender;		/* "" for the null sender */
	struct queue_rcpt *rcpt;
	size_t nrcpt;
	char *client_ip;
	char *client_name;	/* reverse name or "unknown" */
	char *helo;
	char *listener;		/* "127.0.0.1:2525" */
	char *protocol;		/* "ESMTP", "SMTP" */
	char *auth_user;	/* NULL when not authenticated */
	uint64_t size;		/* body bytes as stored */
	/* SHA-256 of those bytes, taken as they arrived (queue/bodycheck.c):
	 * every reader checks the body against size and digest before it
	 * trusts it. has_digest is false only in records written before
	 * the digest existed (then the size alone is checked). */
	unsigned char digest[QUEUE_DIGEST_LEN];
	bool has_digest;
	int64_t next_attempt;	/* unix time; 0 = as soon as possible */
	uint32_t flags;		/* QUEUE_FLAG_* */
	/*
	 * Header fields that go in front of the stored body whenever the
	 * message is read out (delivery, mtaq show): the DKIM-Signature
	 * fields, which can only be computed once the whole body has
	 * streamed to the queue behind our Received: header (issue 17). NULL
	 * when none. Written in the same commit as the rest of the envelope
	 * and covered by the record's checksum; not in size or digest, which
	 * stay those of the stored bytes.
	 */
	char *header_prefix;
	/* DSN (RFC 3461 §4.3, §4.4): RET= (QUEUE_RET_*, 0 when not given)
	 * and ENVID= decoded from xtext (NULL when not given). */
	uint32_t dsn_ret;
	char *envid;
};

#define QUEUE_FLAG_HELD 0x1
/* The body did not match its envelope's size or digest when it was read
 * for delivery: the message is held (never delivered, never deleted by
 * mtad) until an operator looks at it (mtaq verify, show, delete). */
#define QUEUE_FLAG_DAMAGED 0x2
/* `mtaq expire`: the runner's next pass bounces every pending recipient
 * (5.4.7, as after max_queue_lifetime) without trying it (deliver/). */
#define QUEUE_FLAG_EXPIRE 0x4
/* The delay warning (delay_warning_time, RFC 3464 "delayed") was sent:
 * once per message (deliver/outcome.c). */
#define QUEUE_FLAG_DELAY_WARNED 0x8
/* The client said SMTPUTF8 (RFC 6531): the next hop must offer it, or
 * the message bounces (5.6.7; deliver/). Set at arrival, never changed. */
#define QUEUE_FLAG_SMTPUTF8 0x100
/* The client said BODY=8BITMIME (RFC 6152), or the body has 8-bit octets
 * anyway: sent on as BODY=8BITMIME, or its 8-bit MIME parts go as
 * quoted-printable to a 7-bit next hop (deliver/mime_downgrade.c). */
#define QUEUE_FLAG_8BITMIME 0x200

/* Releases the strings and recipient array; leaves *env zeroed. */
void queue_envelope_free(struct queue_envelope *env);

/*
 * queue_record_encode - serialises env: a version word followed by
 * tagged, length-prefixed fields (never line-based). Unknown tags are
 * skipped on decode, so fields can be added without a format break.
 * Returns a malloc'd buffer and its length, or NULL with errno ENOMEM
 * (out of memory) or EINVAL (a field beyond what decode accepts: more
 * than 100000 recipients or a string over 1 MB).
 */
unsigned char *queue_record_encode(const struct queue_envelope *env, size_t *len);

/*
 * queue_record_decode - the reverse. Returns 0, or -1 with a reason in
 * err when the record is damaged (never reads outside buf).
 */
int queue_record_decode(const unsigned char *buf, size_t len,
			struct queue_envelope *env, char *err, size_t errlen);

/*
 * queue_record_peek - the two fields the schedule index needs, without
 * decoding (and allocating) the rest: checks the frame and checksum,
 * then reads next_attempt and flags (0 when absent). Returns 0, or -1
 * when the frame is damaged; the full decode still vets every field.
 */
int queue_record_peek(const unsigned char *buf, size_t len,
		      int64_t *next_attempt, uint32_t *flags);

/* ---- the end-to-end body check (queue/bodycheck.c) ---- */

/*
 * A running SHA-256 and byte count over a body, fed in order. The
 * writer takes one over the bytes a client sent (the envelope keeps
 * size and digest); every reader takes one over what the queue hands
 * back and calls queue_body_check_verify before it trusts it. One
 * thread at a time; no I/O.
 */
struct queue_body_check;

/* queue_body_check_new - a fresh check; NULL when out of memory. */
struct queue_body_check *queue_body_check_new(void);
void queue_body_check_free(struct queue_body_check *c);

/* queue_body_check_add - the next bytes of the body. */
void queue_body_check_add(struct queue_body_check *c, const void *data, size_t len);

/* queue_body_check_len - bytes added so far. */
uint64_t queue_body_check_len(const struct queue_body_check *c);

/* queue_body_check_final - the digest of what was added (once). 0 or -1. */
int queue_body_check_final(struct queue_body_check *c, unsigned char out[QUEUE_DIGEST_LEN]);

/*
 * queue_body_check_verify - finishes c and compares it with env's size
 * and digest (size alone when the record has no digest). 0 when they
 * match; -1 with the difference in why. Once only.
 */
int queue_body_check_verify(struct queue_body_check *c, const struct queue_envelope *env,
			    char *why, size_t whylen);

/* queue_body_digest - the digest of a whole body in memory. 0 or -1. */
int queue_body_digest(const void *data, size_t len, unsigned char out[QUEUE_DIGEST_LEN]);

/* ---- the environment (queue/env.c) ---- */

struct queue;

/*
 * How a process opens the environment (env.c's header says why):
 *   QUEUE_JOIN     mtaq: never runs recovery while mtad runs (it joins),
 *                  nor when mtad is stopped and the environment was not
 *                  closed cleanly (queue_open fails, saying to run
 *                  `mtaq recover`).
 *   QUEUE_OWNER    mtad, holding queue_spool_lock: recovery at open,
 *                  DB_ENV->failchk every second for the processes that
 *                  die with the environment open, the clean marker at
 *                  close.
 *   QUEUE_RECOVER  `mtaq recover`, holding queue_spool_lock: recovery at
 *                  open, the clean marker at close.
 */
enum queue_mode { QUEUE_JOIN = 0, QUEUE_OWNER, QUEUE_RECOVER };

/* ---- replication (queue/replication.c) ---- */

/*
 * A replication group: Berkeley DB's Replication Manager keeps a copy of
 * the whole environment on every node; one is master (elected), the
 * others apply its log. Only mtad (QUEUE_OWNER) runs it; an mtaq joins
 * the environment as it is.
 */
#define QUEUE_REPLICATION_PEERS_MAX 8

/* replication_ack: how many copies a commit waits for (DB_REPMGR_ACKS_*). */
enum queue_ack { QUEUE_ACK_ONE, QUEUE_ACK_QUORUM, QUEUE_ACK_ALL_PEERS, QUEUE_ACK_NONE };

struct queue_replication {
	const char *local;		/* this node's HOST:PORT */
	const char *peers[QUEUE_REPLICATION_PEERS_MAX];	/* the others' */
	size_t npeers;
	unsigned priority;		/* election priority; 0: never master */
	enum queue_ack ack;
	unsigned ack_timeout;		/* seconds a commit waits for acknowledgements */
	bool two_site_strict;		/* two nodes elect a master only together */
	/* Any thread, possibly inside Berkeley DB: the role changed
	 * (queue_role). It may only wake someone (uv_async_send). */
	void (*on_role)(void *arg);
	void *on_role_arg;
};

/* What this node is. SINGLE: not replicated; ELECTING: in a group, no
 * master known yet; REPLICA: a copy that must not write; FAILED: the
 * Replication Manager could not start (logged): mtad stops. */
enum queue_role { QUEUE_SINGLE, QUEUE_ELECTING, QUEUE_MASTER, QUEUE_REPLICA, QUEUE_FAILED };

struct queue_options {
	const char *spool_directory;
	uint64_t cache_size;
	uint64_t log_buffer_size;
	unsigned checkpoint_interval;	/* seconds */
	unsigned stats_keep_days;	/* statistics older than this are dropped; 0 = 8 */
	bool read_only;		/* databases opened DB_RDONLY: reading only (mtaq) */
	bool env_only;		/* the environment alone, no database (mtaq replication) */
	enum queue_mode mode;
	/*
	 * Called once when Berkeley DB panics (DB_RUNRECOVERY: every later
	 * call fails), from whichever thread saw it, possibly inside a
	 * Berkeley DB call: it may only wake someone (uv_async_send), never
	 * call into the queue. NULL: the panic is only logged.
	 */
	void (*on_panic)(void *arg);
	void *on_panic_arg;
	/* QUEUE_OWNER in a replication group; NULL: a single node. The
	 * databases are then opened by queue_open_databases once this node
	 * is master (a replica's copy is written only by replication). */
	const struct queue_replication *replication;
};

/*
 * queue_open - opens (creating when needed) the transactional
 * environment in the spool directory as opt->mode says. Returns NULL
 * with a message in err.
 */
struct queue *queue_open(const struct queue_options *opt, char *err, size_t errlen);
void queue_close(struct queue *q);

/*
 * queue_role - what this node is now. In mtad: as the last replication
 * event said; in any other process: read from the environment.
 */
enum queue_role queue_role(const struct queue *q);

/* queue_role_name - "single", "electing", "master", "replica", "failed". */
const char *queue_role_name(enum queue_role role);

/*
 * queue_open_databases - a replicated mtad become master opens the
 * databases (creating them in a new group). 0, or -1 with err.
 */
int queue_open_databases(struct queue *q, char *err, size_t errlen);

/* The group as one node sees it (queue_replication_read). */
struct queue_replication_peer {
	char addr[272];			/* HOST:PORT as configured */
	bool connected;
	bool heard;			/* master: the replica told its position */
	uint32_t file, offset;		/* its log position */
	uint64_t lag_bytes;
	long lag_seconds;		/* -1: more than a minute */
	int64_t heard_at;		/* time() */
};

struct queue_replication_status {
	bool from_mtad;			/* mtad runs: its status of the last second */
	bool replicated;		/* the environment is in a group at all */
	int64_t updated;		/* time() mtad wrote it */
	char role[16];			/* queue_role_name */
	int64_t since;			/* time() of the last role change */
	char local[272], master[272];	/* master: "" when none is known */
	char ack[16];
	unsigned ack_timeout;
	uint32_t file, offset;		/* this node's log position */
	int64_t last_ack;		/* time() of the last acknowledged commit; 0: none */
	uint64_t unacked;		/* commits that went unacknowledged */
	size_t npeers;
	struct queue_replication_peer peers[QUEUE_REPLICATION_PEERS_MAX];
};

/*
 * queue_replication_read - what `mtaq replication` shows: mtad's status
 * file (SPOOL/replication, rewritten every second) while mtad runs,
 * else what the environment alone says (role, position). QUEUE_OK, or
 * QUEUE_ERROR with queue_strerror.
 */
int queue_replication_read(struct queue *q, struct queue_replication_status *st);

/* ---- who owns the spool (queue/owner.c) ---- */

/*
 * queue_spool_lock - takes the spool's lock (SPOOL/mtad.lock) without
 * waiting: mtad for its lifetime, `mtaq recover` while it recovers.
 * Returns the descriptor to keep open (closing it, or dying, releases
 * the lock), or -1 with err (errno EAGAIN: someone else holds it).
 */
int queue_spool_lock(const char *spool, char *err, size_t errlen);

/*
 * queue_spool_owned - 1 when some process holds the spool's lock (mtad
 * runs), 0 when none does, -1 when it cannot tell. Takes nothing.
 */
int queue_spool_owned(const char *spool);

/* ---- writing messages from mtad (queue/writer.c) ---- */

/*
 * queue_writer_start - starts the writer thread and hooks its
 * completions into loop. Also removes body chunks left by messages that
 * were never committed (a crash during DATA). Returns 0 or -1.
 */
int queue_writer_start(struct queue *q, uv_loop_t *loop, char *err, size_t errlen);

/*
 * Stops the thread after the work already submitted is done; the
 * callbacks still owed run inside this call (on the loop thread). Call
 * it on the loop thread, then let the loop run once more (uv_run) so the
 * writer's async handle can finish closing, as with any libuv handle.
 */
void queue_writer_stop(struct queue *q);

/*
 * queue_writer_stats - messages committed and log flushes done since
 * the writer started; commits / flushes is the group-commit batch size.
 */
void queue_writer_stats(struct queue *q, uint64_t *commits, uint64_t *flushes);

struct queue_incoming;

/*
 * A completion port: the event loop on which a message's callbacks run.
 * The writer's own port is the loop queue_writer_start was given
 * (queue_port_main); every further event loop opens its own with
 * queue_port_new, on that loop's thread, before the writer stops, and
 * closes it with queue_port_close once its sessions are gone (the handle
 * closes when the last job of the port has completed). One writer
 * thread serves them all, so one log sync covers every loop's commits.
 */
struct queue_port;
struct queue_port *queue_port_new(struct queue *q, uv_loop_t *loop);
void queue_port_close(struct queue_port *port);
/* queue_port_main - the writer's own port; NULL while no writer runs. */
struct queue_port *queue_port_main(struct queue *q);

/* Called on the port's loop thread when a commit finished: status 0 = durable. */
typedef void (*queue_commit_cb)(void *arg, int status, const char *errmsg);

/* Called on the port's loop thread when an incoming message can take more data. */
typedef void (*queue_resume_cb)(void *arg);

/* Starts a new message with the given id, its callbacks on port's loop;
 * NULL when out of memory or when the writer is not running. */
struct queue_incoming *queue_incoming_new(struct queue_port *port, const char *qid,
					  queue_resume_cb resume, void *arg);

/*
 * queue_incoming_write - appends body bytes. Full chunks go to the
 * writer thread; returns 1 when the caller should stop reading until the
 * resume callback runs (bounded memory per message), 0 otherwise, -1 on
 * out of memory.
 */
int queue_incoming_write(struct queue_incoming *in, const void *data, size_t len);

/*
 * queue_incoming_commit - makes the message durable with envelope env
 * (copied; its qid and size are taken from the incoming message) and
 * calls cb once the log holding it is flushed to disk, or failed. cb
 * runs exactly once, always later on the loop thread, never inside this
 * call; a failure leaves no chunk of the message behind. The incoming
 * handle is consumed. Returns 0.
 */
int queue_incoming_commit(struct queue_incoming *in, const struct queue_envelope *env,
			  queue_commit_cb cb, void *arg);

/* Drops the message and the chunks already written. Consumes the handle. */
void queue_incoming_abort(struct queue_incoming *in);

/* ---- statistics counters (queue/stats.c) ---- */

/*
 * Named uint64 counters kept in stats.db beside the messages, for the
 * HELO policy's "what did we refuse, and whom" (mtaq stats). A key is
 * the local date, a slash and a name:
 *
 *   YYYYMMDD/reject/RULE      attempts refused by RULE (policy_rule_name)
 *   YYYYMMDD/conn/RULE        connections that had at least one of them
 *   YYYYMMDD/sketch/clients/RULE  the distinct client addresses refused
 *                             by RULE: a HyperLogLog (queue/sketch.c;
 *                             exact up to 128 addresses, then ~1.6%),
 *                             at most 3 KB
 *   YYYYMMDD/sketch/helo      the refused attempts' HELO names (not for
 *                             relay, no-helo): a space-saving top 100,
 *                             at most 27 KB
 *   YYYYMMDD/sketch/ip        the refused attempts' client addresses:
 *                             the same, at most 7 KB
 *   YYYYMMDD/accept/auth      messages accepted from authenticated clients
 *   YYYYMMDD/accept/unauth    ... and from the others
 *   YYYYMMDD/commit/messages  messages made durable (queue/writer.c)
 *   YYYYMMDD/commit/syncs/N   log syncs that made N to 2N-1 messages
 *                             durable at once (N = 1, 2, 4, ... 64; 64
 *                             means 64 or more): the group commit's
 *                             batch sizes
 *   YYYYMMDD/sender/K/WHO     per sender (an authenticated login, or
 *                             "[address]" of a relay_networks client):
 *                             K = msgs, rcpts, quota, owner, addrs
 *   YYYYMMDD/sender/HHMM/K/WHO  the same per ten minutes, kept two days
 *
 * Counter values are u64 big-endian; sketch values are their encodings
 * (sketch_impl.h). Nothing is keyed by what an unauthenticated client
 * chooses, so apart from the sender keys (as many as the logins and
 * trusted addresses that send) a day takes at most ~72 KB (12 rules)
 * whatever clients send: with the 8 days kept, about 1 MB of stats.db
 * (t/unit/queue_stats.c measures it). Keys written
 * before issue 11 may still be there until they expire, and mtaq reads
 * them: YYYYMMDD/ip/RULE/IP (one per client address) and
 * YYYYMMDD/helo/NAME (refused attempts per name).
 *
 * Keys are 10 to QUEUE_STATS_KEY_MAX bytes of graphic ASCII (0x21-0x7e:
 * no blank, no control, no 8-bit byte) starting with 8 digits and '/';
 * anything else is refused, whoever built it. Keys whose day is more than
 * stats_keep_days before the local date are deleted by the writer (at
 * start and hourly). Counters are statistics, not accounting: a crash
 * loses what was added in the last second or so (see stats.c).
 *
 * One key outside that scheme, QUEUE_STATS_HASH_KEY, holds the spool's
 * 16-byte SipHash key for the address sketches (two u64 big-endian); it
 * sorts after every day, so expiry never reaches it.
 */
#define QUEUE_STATS_KEY_MAX 300
#define QUEUE_STATS_HASH_KEY "sketch-key"
#define QUEUE_SYNC_BUCKETS 7	/* commit/syncs/1 ... commit/syncs/64 */
#define QUEUE_STATS_DAY_LEN 8	/* "YYYYMMDD" */

/*
 * queue_stats_add - adds delta to the counter key. Loop thread only,
 * with the writer running; never does I/O: the sum goes to the disk with
 * the next flush (about once a second). Returns 0, or -1 with errno
 * EINVAL (a malformed key), ENOSPC (too many distinct keys since the last
 * flush: the update is dropped, counted and logged once per flush),
 * ENOMEM, or ESHUTDOWN (no writer). Callers may ignore the result.
 */
int queue_stats_add(struct queue *q, const char *key, uint64_t delta);

/*
 * queue_stats_note - one attempt refused by rule (policy_rule_name) on
 * day ("YYYYMMDD") from the client address ip, which said HELO name helo
 * (NULL: the name is not counted), into that day's sketches: the
 * rule's distinct addresses, the top addresses, the top HELO names.
 * Names must be graphic ASCII (clean them first). Loop thread, no I/O,
 * bounded memory; written with the counters. Returns 0, or -1 with
 * errno EINVAL, ENOSPC (a third day or a 17th rule in one flush),
 * ENOMEM or ESHUTDOWN. Callers may ignore the result.
 */
int queue_stats_note(struct queue *q, const char *day, const char *rule, const char *ip,
		     const char *helo);

/*
 * queue_stats_get - the value stored under key (a sketch, or
 * QUEUE_STATS_HASH_KEY) copied into a malloc'd *data of *len bytes
 * (the caller frees it). Any thread. Returns QUEUE_OK, QUEUE_NOTFOUND
 * or QUEUE_ERROR (queue_strerror says why).
 */
int queue_stats_get(struct queue *q, const char *key, void **data, size_t *len);

/* queue_stats_flush - hands the counters added so far to the writer now
 * (loop thread; the loop must then run for it to complete). */
void queue_stats_flush(struct queue *q);

/*
 * queue_stats_foreach - calls fn(arg, key, value) for every counter
 * whose key starts with prefix ("" for all), in key order. Rows are
 * copied out in short read-committed transactions, so no lock is held
 * while fn runs; rows that are not a well-formed counter are skipped,
 * so fn may print keys as they are. fn returns non-zero to stop.
 * Returns QUEUE_OK or QUEUE_ERROR (queue_strerror says why).
 */
typedef int (*queue_stats_fn)(void *arg, const char *key, uint64_t value);
int queue_stats_foreach(struct queue *q, const char *prefix, queue_stats_fn fn, void *arg);

/* ---- the statistics keys' format (queue/stats_key.c, pure) ---- */

/*
 * queue_stats_day - the local date offset days from now (negative: in
 * the past) as "YYYYMMDD", the day part of a key. Returns 0 or -1.
 */
int queue_stats_day(time_t now, int offset, char out[QUEUE_STATS_DAY_LEN + 1]);

/*
 * queue_stats_slot - the local date of now ("YYYYMMDD") and its
 * ten-minute slot (0 .. QUEUE_STATS_SLOTS - 1: 0 is 00:00-00:09).
 * Returns 0 or -1.
 */
int queue_stats_slot(time_t now, char day[QUEUE_STATS_DAY_LEN + 1], unsigned *slot);

/* What a key counts: the part after "YYYYMMDD/" (the list above). */
enum queue_stats_kind {
	QUEUE_STATS_OTHER = 0,		/* well-formed, but none of these (parse only) */
	QUEUE_STATS_DAY,		/* "YYYYMMDD/": the prefix of the day's keys
					 * (format only, for queue_stats_foreach) */
	QUEUE_STATS_REJECT,		/* reject/RULE */
	QUEUE_STATS_CONN,		/* conn/RULE */
	QUEUE_STATS_CLIENTS,		/* sketch/clients/RULE */
	QUEUE_STATS_TOP_HELO,		/* sketch/helo */
	QUEUE_STATS_TOP_IP,		/* sketch/ip */
	QUEUE_STATS_ACCEPT_AUTH,	/* accept/auth */
	QUEUE_STATS_ACCEPT_UNAUTH,	/* accept/unauth */
	QUEUE_STATS_COMMIT_MESSAGES,	/* commit/messages */
	QUEUE_STATS_COMMIT_SYNCS,	/* commit/syncs/N, N = 1 << bucket */
	QUEUE_STATS_OLD_IP,		/* ip/RULE/IP, before issue 11 (parse only) */
	QUEUE_STATS_OLD_HELO,		/* helo/NAME, before issue 11 (parse only) */
	/* Per sender (a login, or "[address]" of a trusted client without
	 * one; name): what `mtaq senders` shows, and the recipients a day
	 * the quota starts from after a restart. */
	QUEUE_STATS_SENDER_MSGS,	/* sender/msgs/WHO: messages accepted */
	QUEUE_STATS_SENDER_RCPTS,	/* sender/rcpts/WHO: their recipients */
	QUEUE_STATS_SENDER_QUOTA,	/* sender/quota/WHO: refused by a quota */
	QUEUE_STATS_SENDER_OWNER,	/* sender/owner/WHO: a sender it does not own */
	QUEUE_STATS_SENDER_ADDRS,	/* sender/addrs/WHO: distinct client addresses */
	/* The same per ten minutes of the day (HHMM, MM a multiple of ten:
	 * "sender/1340/msgs/WHO"), for `mtaq senders`' last hour. Deleted
	 * once the day is two days old (queue_stats_expire). */
	QUEUE_STATS_SLOT_MSGS,		/* sender/HHMM/msgs/WHO */
	QUEUE_STATS_SLOT_RCPTS,		/* sender/HHMM/rcpts/WHO */
	QUEUE_STATS_SLOT_QUOTA,		/* sender/HHMM/quota/WHO */
	QUEUE_STATS_SLOT_OWNER,		/* sender/HHMM/owner/WHO */
	QUEUE_STATS_SLOT_ADDRS,		/* sender/HHMM/addrs/WHO: addresses new in their clock hour */
};

/* Ten-minute slots in a day: SLOT keys' bucket. */
#define QUEUE_STATS_SLOTS 144

/* A key taken apart; name and ip point into the key, they are no copies. */
struct queue_stats_key {
	enum queue_stats_kind kind;
	char day[QUEUE_STATS_DAY_LEN + 1];
	const char *name;	/* REJECT, CONN, CLIENTS, OLD_IP: the rule;
				 * OLD_HELO: the name; SENDER_*: the sender;
				 * else NULL */
	size_t name_len;	/* OLD_IP's rule ends at a '/', not at the NUL */
	const char *ip;		/* OLD_IP: the address, to the end of the key */
	unsigned bucket;	/* COMMIT_SYNCS: 0 .. QUEUE_SYNC_BUCKETS - 1;
				 * SLOT_*: the slot, 0 .. QUEUE_STATS_SLOTS - 1 */
};

/*
 * queue_stats_key_format - the key of kind on day ("YYYYMMDD") into buf
 * of size bytes: rule (policy_rule_name) for REJECT, CONN and CLIENTS,
 * bucket for COMMIT_SYNCS, the sender (as rule) and the slot (as bucket)
 * for SENDER_* and SLOT_*; the others ignore them. Returns the key's
 * length, or -1 (nothing usable in buf) when the kind is not written,
 * the day is not 8 digits, the rule is empty or holds '/', the bucket is
 * out of range, or the key would not be well-formed or not fit.
 */
int queue_stats_key_format(char *buf, size_t size, const char *day, enum queue_stats_kind kind,
			   const char *rule, unsigned bucket);

/*
 * queue_stats_key_parse - key taken apart into *out: 0 for a well-formed
 * key (kind QUEUE_STATS_OTHER when it is none of the known ones: a
 * reader skips it), -1 for a malformed one. The inverse of
 * queue_stats_key_format for every kind it writes.
 */
int queue_stats_key_parse(const char *key, struct queue_stats_key *out);

/* ---- reading and changing the queue (queue/store.c) ---- */

enum { QUEUE_OK = 0, QUEUE_ERROR = -1, QUEUE_NOTFOUND = -2, QUEUE_DAMAGED = -3 };
/* A commit's status (queue_commit_cb) when the replicas did not
 * acknowledge it in time: the message was removed again, say 451. */
#define QUEUE_UNREPLICATED (-4)

/*
 * queue_foreach - calls fn for every message in id (= arrival) order.
 * A damaged record is passed with env == NULL and its id (and
 * queue_strerror(q) says why, during the call), so callers can report
 * it and go on. fn returns non-zero to stop. No lock is held while fn
 * runs: it may be slow, and messages may come and go meanwhile.
 */
typedef int (*queue_foreach_fn)(const char *qid, const struct queue_envelope *env,
				void *arg);
int queue_foreach(struct queue *q, queue_foreach_fn fn, void *arg);

int queue_get(struct queue *q, const char *qid, struct queue_envelope *env);

/*
 * queue_body_read - hands the body to fn chunk by chunk, in order; fn
 * returns non-zero to fail the read. QUEUE_DAMAGED when the bytes read
 * differ from the envelope's size or SHA-256 (queue_strerror says how);
 * fn has seen them by then, so a caller that must not pass on a damaged
 * body buffers or discards what fn got.
 */
typedef int (*queue_body_fn)(void *arg, const void *data, size_t len);
int queue_body_read(struct queue *q, const char *qid, queue_body_fn fn, void *arg);

/*
 * queue_message_read - the message as it goes out: the envelope's
 * header_prefix (when there is one) and then the body, through
 * queue_body_read's checks.
 */
int queue_message_read(struct queue *q, const char *qid, queue_body_fn fn, void *arg);

/* Writes the message to out as it goes out: header_prefix and body. */
int queue_body_write(struct queue *q, const char *qid, FILE *out);

/* Deletes envelope and body in one transaction. */
int queue_delete(struct queue *q, const char *qid);

/*
 * queue_verify - checks every message (queue/verify.c): its envelope
 * decodes and its body matches the envelope's size and SHA-256; calls
 * fn for each one that does not, or that delivery held as damaged.
 * Counts in *checked and *damaged. QUEUE_OK, or QUEUE_ERROR when the
 * walk itself failed (queue_strerror says why; a Berkeley DB page
 * checksum error is one).
 */
typedef void (*queue_verify_fn)(void *arg, const char *qid, const char *why);
int queue_verify(struct queue *q, queue_verify_fn fn, void *arg, size_t *checked,
		 size_t *damaged);

/*
 * queue_migrate - moves a spool made by mtad 0.1 to the current format
 * (queue/migrate.c), in place, with no process using it: every envelope,
 * body chunk and statistics counter is copied into new databases (4 KB
 * pages, checksums), envelopes get the SHA-256 of their body, and one
 * transaction swaps the new files in; the FORMAT file is written last.
 * An interruption at any point leaves the old spool usable and the
 * migration can be run again. Progress and damaged messages (copied as
 * they are, held) go to report. Returns 0 (also when there was nothing
 * to do: *done false) or -1 with the reason in err.
 */
int queue_migrate(const struct queue_options *opt, FILE *report, bool *done, char *err,
		  size_t errlen);

/* ---- delivery state (queue/schedule.c) ---- */

/*
 * The schedule is schedule.db, a secondary index of envelope.db that
 * Berkeley DB keeps itself (DB->associate): key = next_attempt as 8
 * bytes big-endian (negative counts as 0) + the 14-byte qid, so a walk
 * from the start meets messages in due order. Held messages
 * (QUEUE_FLAG_HELD) and records that do not decode have no entry: they
 * are never due (mtaq list still shows, and reports, them). Every
 * process that opens the queue associates it, so every change to
 * envelope.db (the writer, queue_delete, queue_set_hold, ...) moves the
 * entry in the same transaction. A spool from before schedule.db gets
 * its index built when queue_open finds the secondary empty.
 *
 * The async calls below are for the loop thread with the writer running:
 * the work runs on the writer thread (reads after the batch's log flush,
 * so they never delay a commit), and cb runs exactly once, later, on the
 * loop thread — never inside the call. They return 0, or -1 with errno
 * ENOMEM, EINVAL (a malformed queue id, or a record that
 * queue_record_encode refuses) or ESHUTDOWN (no writer), and then no
 * callback follows. Status in a callback is QUEUE_OK (0) or a QUEUE_*
 * error (errmsg, where given, says why).
 */

/*
 * queue_due_async - the messages whose next_attempt <= now, in due order
 * (then arrival), at most max of them, leaving out the nskip queue ids
 * in skip (the caller's messages in flight: they are still due until
 * their attempt is recorded; skipped without being decoded, and not
 * counted in max; the list is copied). envs and everything in them
 * belong to the queue and are freed when cb returns: move out or copy
 * what you keep (the array's entries may be modified, e.g. zeroed after
 * a move, but not kept).
 */
typedef void (*queue_due_cb)(void *arg, int status, struct queue_envelope *envs, size_t n);
int queue_due_async(struct queue *q, int64_t now, size_t max,
		    const char (*skip)[QUEUE_ID_LEN + 1], size_t nskip,
		    queue_due_cb cb, void *arg);

/*
 * queue_chunk_async - body chunk index of qid (the chunks of a message
 * are numbered from 0; every one holds 60 KB but the last, or the
 * pieces a short last one was stored in: see queue_impl.h). last is
 * true when no chunk index + 1 exists. An empty body has no chunk at
 * all: index 0 then gives len 0, last true. data is valid
 * only until cb returns. QUEUE_NOTFOUND when the message (or, for
 * index > 0, the chunk) does not exist, QUEUE_DAMAGED when chunk 0 is
 * missing from a message whose envelope says it has bytes.
 */
typedef void (*queue_chunk_cb)(void *arg, int status, const void *data, size_t len, bool last);
int queue_chunk_async(struct queue *q, const char *qid, uint32_t index, queue_chunk_cb cb,
		      void *arg);

/* A new message queued by the queue itself (a bounce): env->qid must be
 * a fresh id; the size stored is len. */
struct queue_new_message {
	const struct queue_envelope *env;
	const void *body;
	size_t len;
};

/*
 * queue_update_async - records a delivery attempt of env->qid in one
 * transaction: when every recipient of env is SENT or FAILED the message
 * (envelope, body, schedule entry) is deleted, else env replaces the
 * stored envelope (its next_attempt moves the schedule entry); a
 * QUEUE_FLAG_HELD set meanwhile (mtaq hold) is kept. When bounce is not
 * NULL, that message is queued in the same transaction (refused, and
 * nothing done, if its id exists). env and bounce are copied before the
 * call returns. cb runs after the log flush of the writer's batch (group
 * commit), with QUEUE_OK; QUEUE_NOTFOUND when the message was deleted
 * meanwhile (then nothing is written, no bounce either); QUEUE_ERROR
 * otherwise (after a failed log flush the change may still be on disk:
 * a retry risks a duplicate, never a loss).
 */
typedef void (*queue_update_cb)(void *arg, int status, const char *errmsg);
int queue_update_async(struct queue *q, const struct queue_envelope *env,
		       const struct queue_new_message *bounce, queue_update_cb cb, void *arg);

/*
 * For mtaq (synchronous, committed to disk before they return; any
 * thread that owns q, never the loop thread of a running mtad):
 * queue_set_hold sets or clears QUEUE_FLAG_HELD, queue_flush_message
 * makes a message due now (next_attempt 0; a held one stays held),
 * queue_requeue_message also starts its pending recipients over (attempt
 * counts 0: the backoff starts again; postsuper -r), and
 * queue_expire_message sets QUEUE_FLAG_EXPIRE and makes it due (postsuper
 * -e; a held one is bounced once released). A hold or an expiry set while
 * the runner is delivering the message is kept when it records the
 * attempt; a flush or requeue then is overwritten by the attempt's own
 * next try. QUEUE_OK, QUEUE_NOTFOUND, QUEUE_DAMAGED or QUEUE_ERROR. A running
 * mtad sees the change at its next schedule scan (every second).
 */
int queue_set_hold(struct queue *q, const char *qid, bool hold);
int queue_flush_message(struct queue *q, const char *qid);
int queue_requeue_message(struct queue *q, const char *qid);
int queue_expire_message(struct queue *q, const char *qid);

/*
 * The runner's in-flight messages, for mtaq's "active" state
 * (queue/active.c). queue_active_new: a publisher writing to
 * SPOOL/active, on loop (NULL when out of memory). queue_active_set:
 * the whole set now (copied; loop thread; written by a thread-pool job,
 * without fsync, the newest set when several came meanwhile).
 * queue_active_free: at stop (a running job finishes first).
 * queue_active_read (mtaq): the ids of the file, *ids malloc'd, only
 * when the mtad that wrote it runs (else none). 0, or -1 on an error.
 */
struct queue_active;
struct queue_active *queue_active_new(uv_loop_t *loop, const char *spool);
void queue_active_set(struct queue_active *a, const char (*ids)[QUEUE_ID_LEN + 1], size_t n);
void queue_active_free(struct queue_active *a);
int queue_active_read(const char *spool, char (**ids)[QUEUE_ID_LEN + 1], size_t *n);

/* Last error text from a failing call, for messages. The store calls
 * keep it in q: use one struct queue from one thread at a time. */
const char *queue_strerror(struct queue *q);

#endif
