/*
 * replication.c - the queue's environment as one copy of a replication
 * group: Berkeley DB's Replication Manager (DB_ENV->repmgr_*) carries
 * every log record of the master to the replicas, holds the elections,
 * and makes a commit wait for the acknowledgements replication_ack asks
 * for. This file configures it, follows its events (role, elections,
 * commits nobody acknowledged), and keeps the status `mtaq replication`
 * shows.
 *
 * Roles: mtad opens the environment, starts the Replication Manager
 * with DB_REP_ELECTION and learns its role from events; only a master
 * opens the databases (queue_open_databases) and writes. A commit that
 * fires DB_EVENT_REP_PERM_FAILED (in the committing thread: the writer
 * asks queue_repl_unacked after each) was not acknowledged in time: the
 * writer takes the message out again and the client gets 451.
 *
 * Group creation: the node whose replication_local sorts first among
 * the group's addresses (every node lists the same set) starts the group
 * (DB_GROUP_CREATOR) when it has none and no peer answers as a member
 * within REPL_CREATE_AFTER seconds (rebuilt on an empty spool, it joins
 * the group that exists); the others join through their peers. A node
 * joining for the first time gets the master's copy, which replaces its
 * own: one whose queue still holds messages refuses to join.
 *
 * Status: once a second (queue_repl_tick, on the failchk thread) a
 * replica flushes its log (an acknowledged record is on its disk within
 * a second) and tells the master its log position over a Replication
 * Manager channel; the master keeps a minute of its own positions to
 * turn a replica's into a lag in bytes and seconds. Both write
 * SPOOL/replication (tmp + rename) for mtaq.
 *
 * Must not: call into Berkeley DB from the event callback (it may run
 * with Replication Manager's mutex held; it only sets atomics, logs and
 * wakes the owner), trust a channel message beyond its bounded fields,
 * or let a replica write.
 *
 * Follows: Berkeley DB 5.3 Programmer's Reference, "Berkeley DB
 * Replication" (Replication Manager, group membership, two-site groups,
 * multi-process use).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"
#include "queue/queue_impl.h"

#define REPL_SAMPLES 64			/* seconds of the master's log positions */
#define REPL_STATUS_FILE "replication"
#define REPL_MSG_MAX 512		/* a channel message from a replica */
#define REPL_CREATE_AFTER 5		/* seconds the first node looks for a group first */
#define REPL_GMDB "__db.rep.system"	/* holds Berkeley DB's group membership database */
/* Failure detection: a lost connection is seen at once (TCP); a master
 * that hangs with its connections open, within the heartbeat monitor. */
#define REPL_HEARTBEAT_SEND_US 1000000u
#define REPL_HEARTBEAT_MONITOR_US 4000000u
#define REPL_CONNECTION_RETRY_US 2000000u
#define REPL_ELECTION_RETRY_US 2000000u
#define REPL_ELECTION_TIMEOUT_US 2000000u

/* What a replica last said of itself (master side). */
struct repl_seen {
	DB_LSN lsn;
	time_t heard;		/* 0: never */
};

struct repl_sample {
	time_t t;
	DB_LSN lsn;
};

struct queue_repl {
	char local[MTAD_HOSTPORT_MAX];
	char peers[QUEUE_REPLICATION_PEERS_MAX][MTAD_HOSTPORT_MAX];
	size_t npeers;
	unsigned priority;
	enum queue_ack ack;
	unsigned ack_timeout;
	bool two_site_strict;
	bool creator;			/* the group's first address */
	bool fresh_creator;		/* ... and no group yet: look for one before creating it */
	void (*on_role)(void *arg);
	void *on_role_arg;
	/* set by events, read anywhere */
	_Atomic int role;		/* enum queue_role */
	_Atomic bool started;		/* repmgr_start returned: queue_role tells the role */
	_Atomic int master_eid;		/* -1: none known */
	_Atomic int64_t role_since;	/* time() of the last role change */
	_Atomic uint64_t unacked;	/* commits that went unacknowledged */
	_Atomic int64_t last_ack;	/* time() of the writer's last acknowledged commit */
	_Atomic bool writer_known;
	uv_thread_t writer;
	_Atomic bool writer_unacked;
	/* the start thread (repl_start_main) */
	uv_thread_t starter;
	bool starter_running;
	/* the channel's dispatch thread, the tick, the start thread: under lock */
	uv_mutex_t lock;
	uv_cond_t wake;			/* the start thread's wait */
	bool stop;
	struct repl_seen seen[QUEUE_REPLICATION_PEERS_MAX];
	/* the tick thread only */
	struct repl_sample samples[REPL_SAMPLES];
	unsigned nsamples, next_sample;
	DB_CHANNEL *channel;		/* replica -> master */
	bool connected[QUEUE_REPLICATION_PEERS_MAX];
	int logged_master;		/* the master eid the log last named */
};

static const char *const role_names[] = { "single", "electing", "master", "replica", "failed" };

/* queue_role_name - see queue.h. */
const char *queue_role_name(enum queue_role role)
{
	return (unsigned)role < sizeof(role_names) / sizeof(role_names[0]) ? role_names[role] : "?";
}

static const char *ack_name(enum queue_ack ack)
{
	switch (ack) {
	case QUEUE_ACK_ONE: return "one";
	case QUEUE_ACK_QUORUM: return "quorum";
	case QUEUE_ACK_ALL_PEERS: return "all_peers";
	case QUEUE_ACK_NONE: return "none";
	}
	return "?";
}

/* repl_is_creator - the first of the group's addresses starts the group. */
static bool repl_is_creator(const struct queue_repl *r)
{
	for (size_t i = 0; i < r->npeers; i++)
		if (strcmp(r->peers[i], r->local) < 0)
			return false;
	return true;
}

/* queue_repl_new - see queue_impl.h. */
int queue_repl_new(struct queue *q, char *err, size_t errlen)
{
	const struct queue_replication *c = q->opt.replication;
	struct queue_repl *r;

	if (c == NULL || q->opt.mode != QUEUE_OWNER)
		return 0;
	if (c->npeers == 0 || c->npeers > QUEUE_REPLICATION_PEERS_MAX ||
	    strlen(c->local) >= MTAD_HOSTPORT_MAX) {
		snprintf(err, errlen, "replication: bad group (%zu peers)", c->npeers);
		return -1;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (uv_mutex_init(&r->lock) != 0) {
		free(r);
		snprintf(err, errlen, "replication: cannot create a lock");
		return -1;
	}
	if (uv_cond_init(&r->wake) != 0) {
		uv_mutex_destroy(&r->lock);
		free(r);
		snprintf(err, errlen, "replication: cannot create a condition");
		return -1;
	}
	snprintf(r->local, sizeof(r->local), "%s", c->local);
	for (size_t i = 0; i < c->npeers; i++)
		snprintf(r->peers[i], sizeof(r->peers[i]), "%s", c->peers[i]);
	r->npeers = c->npeers;
	r->priority = c->priority;
	r->ack = c->ack;
	r->ack_timeout = c->ack_timeout ? c->ack_timeout : 5;
	r->two_site_strict = c->two_site_strict;
	r->creator = repl_is_creator(r);
	r->on_role = c->on_role;
	r->on_role_arg = c->on_role_arg;
	atomic_store(&r->role, QUEUE_ELECTING);
	atomic_store(&r->master_eid, -1);
	atomic_store(&r->role_since, (int64_t)time(NULL));
	r->logged_master = -1;
	q->repl = r;
	return 0;
}

/* queue_repl_free - see queue_impl.h. */
void queue_repl_free(struct queue *q)
{
	if (q->repl == NULL)
		return;
	uv_cond_destroy(&q->repl->wake);
	uv_mutex_destroy(&q->repl->lock);
	free(q->repl);
	q->repl = NULL;
}

/* repl_site - one site of the group: this node, or a peer to join through. */
static int repl_site(DB_ENV *env, const char *hostport, bool local, bool creator)
{
	char host[MTAD_HOSTPORT_MAX];
	unsigned port;
	DB_SITE *site;
	int rc, crc;

	if (mtad_hostport_parse(hostport, host, sizeof(host), &port) != 0)
		return EINVAL;
	if ((rc = env->repmgr_site(env, host, port, &site, 0)) != 0)
		return rc;
	if (local) {
		rc = site->set_config(site, DB_LOCAL_SITE, 1);
		if (rc == 0 && creator)
			rc = site->set_config(site, DB_GROUP_CREATOR, 1);
	} else {
		rc = site->set_config(site, DB_BOOTSTRAP_HELPER, 1);
	}
	crc = site->close(site);
	return rc != 0 ? rc : crc;
}

static uint32_t repl_ack_policy(enum queue_ack ack)
{
	switch (ack) {
	case QUEUE_ACK_QUORUM: return DB_REPMGR_ACKS_QUORUM;
	case QUEUE_ACK_ALL_PEERS: return DB_REPMGR_ACKS_ALL_PEERS;
	case QUEUE_ACK_NONE: return DB_REPMGR_ACKS_NONE;
	case QUEUE_ACK_ONE: break;
	}
	return DB_REPMGR_ACKS_ONE;
}

/*
 * Bulk transfer (DB_REP_CONF_BULK) is not optional here: without it each
 * log record of a transaction is its own small write on the master's
 * connection, Replication Manager sets no TCP_NODELAY, and Nagle holds
 * the second write until the replica's delayed ACK: 40 ms per commit,
 * 8 messages a second (measured). With it the records wait in a buffer
 * until the commit record sends them as one message.
 */

/* repl_timeouts - acknowledgements as configured; failure detection fast. */
static int repl_timeouts(DB_ENV *env, const struct queue_repl *r)
{
	int rc;

	if ((rc = env->rep_set_timeout(env, DB_REP_ACK_TIMEOUT, r->ack_timeout * 1000000u)) != 0 ||
	    (rc = env->rep_set_timeout(env, DB_REP_HEARTBEAT_SEND, REPL_HEARTBEAT_SEND_US)) != 0 ||
	    (rc = env->rep_set_timeout(env, DB_REP_HEARTBEAT_MONITOR,
				       REPL_HEARTBEAT_MONITOR_US)) != 0 ||
	    (rc = env->rep_set_timeout(env, DB_REP_CONNECTION_RETRY,
				       REPL_CONNECTION_RETRY_US)) != 0 ||
	    (rc = env->rep_set_timeout(env, DB_REP_ELECTION_RETRY, REPL_ELECTION_RETRY_US)) != 0)
		return rc;
	/* Berkeley DB's default (30 s) sleeps in every master checkpoint,
	 * to let replicas flush their caches: in the writer thread, which
	 * then commits nothing for 30 s. A replica that is slower to flush
	 * only has more to recover after its own crash. */
	if ((rc = env->rep_set_timeout(env, DB_REP_CHECKPOINT_DELAY, 0)) != 0)
		return rc;
	return env->rep_set_timeout(env, DB_REP_ELECTION_TIMEOUT, REPL_ELECTION_TIMEOUT_US);
}

/* repl_has_group - this node was in a group before: its membership database exists. */
static bool repl_has_group(const struct queue *q)
{
	char path[MTAD_PATH_MAX + 32];

	snprintf(path, sizeof(path), "%s/%s", q->spool, REPL_GMDB);
	return access(path, F_OK) == 0;
}

/*
 * repl_holds_mail - whether the queue holds a message (envelope.db has a
 * record). Asked before the first join: joining replaces this node's
 * copy with the master's. 0, or -1 with err.
 */
static int repl_holds_mail(struct queue *q, bool *holds, char *err, size_t errlen)
{
	char path[MTAD_PATH_MAX + 32];
	DBT key = { .flags = DB_DBT_MALLOC }, data = { .flags = DB_DBT_MALLOC };
	DBC *cur = NULL;
	DB *db = NULL;
	int rc;

	*holds = false;
	snprintf(path, sizeof(path), "%s/envelope.db", q->spool);
	if (access(path, F_OK) != 0)
		return 0;
	if ((rc = db_create(&db, q->env, 0)) == 0 &&
	    (rc = db->open(db, NULL, "envelope.db", NULL, DB_BTREE, DB_RDONLY | DB_THREAD, 0)) == 0 &&
	    (rc = db->cursor(db, NULL, &cur, 0)) == 0)
		rc = cur->get(cur, &key, &data, DB_FIRST);
	free(key.data);
	free(data.data);
	if (cur != NULL)
		(void)cur->close(cur);
	if (db != NULL)
		(void)db->close(db, 0);
	if (rc == 0 || rc == DB_NOTFOUND) {
		*holds = rc == 0;
		return 0;
	}
	snprintf(err, errlen, "replication: cannot tell whether the queue in %s is empty (%s)",
		 q->spool, db_strerror(rc));
	return -1;
}

/*
 * repl_first_start - a node that was never in the group. Its joining
 * replaces its queue with the master's: one that is not the group's
 * first node and holds messages refuses to start. The first node looks
 * for an existing group before it creates one, unless it holds mail
 * (an existing relay becoming the group's first node: it creates the
 * group at once, its queue the group's).
 */
static int repl_first_start(struct queue *q, char *err, size_t errlen)
{
	struct queue_repl *r = q->repl;
	bool holds;

	if (repl_has_group(q))
		return 0;
	if (repl_holds_mail(q, &holds, err, errlen) != 0)
		return -1;
	if (holds && !r->creator) {
		snprintf(err, errlen, "replication: this node joins the group %s for the first "
			 "time, and joining replaces its queue with the master's, but its queue in "
			 "%s holds messages: deliver them first (or make this node the first address "
			 "of the group)", r->local, q->spool);
		return -1;
	}
	r->fresh_creator = r->creator && !holds;
	return 0;
}

/* repl_dispatch - master: a replica's channel message "mtad-lsn ADDR FILE OFFSET". */
static void repl_dispatch(DB_ENV *env, DB_CHANNEL *responder, DBT *request, uint32_t nrequest,
			  uint32_t cb_flags)
{
	struct queue *q = env->app_private;
	struct queue_repl *r = q != NULL ? q->repl : NULL;
	char text[REPL_MSG_MAX + 1], addr[MTAD_HOSTPORT_MAX];
	unsigned long file, offset;

	(void)responder;
	(void)cb_flags;
	if (r == NULL || nrequest != 1 || request[0].size == 0 || request[0].size > REPL_MSG_MAX)
		return;
	memcpy(text, request[0].data, request[0].size);
	text[request[0].size] = '\0';
	if (sscanf(text, "mtad-lsn %271s %lu %lu", addr, &file, &offset) != 3 ||
	    file > UINT32_MAX || offset > UINT32_MAX)
		return;
	for (size_t i = 0; i < r->npeers; i++) {
		if (strcmp(r->peers[i], addr) != 0)
			continue;
		uv_mutex_lock(&r->lock);
		r->seen[i].lsn.file = (uint32_t)file;
		r->seen[i].lsn.offset = (uint32_t)offset;
		r->seen[i].heard = time(NULL);
		uv_mutex_unlock(&r->lock);
		return;
	}
}

/*
 * repl_start_main - its own thread: DB_ENV->repmgr_start, again every
 * second while it says DB_REP_UNAVAIL (a node joining the group for the
 * first time needs the master, and the master adds one node at a time),
 * so that mtad's loop answers signals meanwhile. Any other failure ends
 * the role as QUEUE_FAILED: mtad stops.
 */
static void repl_start_main(void *arg)
{
	struct queue *q = arg;
	struct queue_repl *r = q->repl;
	bool said = false;
	int rc;

	for (unsigned tries = 0;; tries++) {
		if (r->fresh_creator && tries == REPL_CREATE_AFTER) {
			if ((rc = repl_site(q->env, r->local, true, true)) != 0)
				break;
			mtad_log(MTAD_LOG_INFO, "replication: no group answered through the peers "
				 "in %d s: %s creates it", REPL_CREATE_AFTER, r->local);
		}
		rc = q->env->repmgr_start(q->env, 3, DB_REP_ELECTION);
		if (rc != DB_REP_UNAVAIL)
			break;
		if (!said && r->fresh_creator && tries < REPL_CREATE_AFTER)
			mtad_log(MTAD_LOG_INFO, "replication: %s is the group's first node and has no "
				 "group yet: looking for one through the peers for %d s before "
				 "creating it", r->local, REPL_CREATE_AFTER);
		else if (!said)
			mtad_log(MTAD_LOG_WARNING, "replication: %s cannot join the group yet (%s); "
				 "trying again every second", r->local, db_strerror(rc));
		said = !r->fresh_creator || tries + 1 < REPL_CREATE_AFTER;
		uv_mutex_lock(&r->lock);
		if (!r->stop)
			(void)uv_cond_timedwait(&r->wake, &r->lock, 1000000000ull);
		rc = r->stop;
		uv_mutex_unlock(&r->lock);
		if (rc)
			return;
	}
	if (rc != 0 && rc != DB_REP_IGNORE) {
		mtad_log(MTAD_LOG_ERROR, "replication: %s cannot start: %s", r->local, db_strerror(rc));
		atomic_store(&r->role, QUEUE_FAILED);
		if (r->on_role != NULL)
			r->on_role(r->on_role_arg);
		return;
	}
	mtad_log(MTAD_LOG_INFO, "replication: %s started%s, %zu peer%s, replication_ack = %s, "
		 "priority %u", r->local, r->creator ? " (the group's first node)" : "",
		 r->npeers, r->npeers == 1 ? "" : "s", ack_name(r->ack), r->priority);
	/* Roles count from here: the group membership update repmgr_start
	 * commits holds locks an open of the databases would wait on. */
	atomic_store(&r->started, true);
	if (r->on_role != NULL)
		r->on_role(r->on_role_arg);
}

/* queue_repl_start - see queue_impl.h. */
int queue_repl_start(struct queue *q, const char **what, char *err, size_t errlen)
{
	struct queue_repl *r = q->repl;
	DB_ENV *env = q->env;
	int rc;

	/* The first node creates the group only when no peer answers as a
	 * member: one rebuilt on an empty spool must join the group that
	 * exists, not start a second one (repl_start_main). */
	if (repl_first_start(q, err, errlen) != 0)
		return -1;
	*what = "configure replication sites";
	if ((rc = repl_site(env, r->local, true, r->creator && !r->fresh_creator)) != 0)
		return rc;
	for (size_t i = 0; i < r->npeers; i++)
		if ((rc = repl_site(env, r->peers[i], false, false)) != 0)
			return rc;
	*what = "configure replication";
	if ((rc = env->repmgr_set_ack_policy(env, (int)repl_ack_policy(r->ack))) != 0 ||
	    (rc = env->rep_set_priority(env, r->priority)) != 0 ||
	    (rc = env->rep_set_config(env, DB_REPMGR_CONF_2SITE_STRICT, r->two_site_strict)) != 0 ||
	    (rc = env->rep_set_config(env, DB_REP_CONF_BULK, 1)) != 0 ||
	    (rc = repl_timeouts(env, r)) != 0 ||
	    (rc = env->repmgr_msg_dispatch(env, repl_dispatch, 0)) != 0)
		return rc;
	*what = "start the replication thread";
	if ((rc = uv_thread_create(&r->starter, repl_start_main, q)) != 0) {
		snprintf(err, errlen, "replication: cannot start a thread: %s", uv_strerror(rc));
		return -1;
	}
	r->starter_running = true;
	return 0;
}

/* queue_repl_stop - see queue_impl.h. */
void queue_repl_stop(struct queue *q)
{
	struct queue_repl *r = q->repl;

	if (r == NULL)
		return;
	if (r->channel != NULL) {
		(void)r->channel->close(r->channel, 0);
		r->channel = NULL;
	}
	if (!r->starter_running)
		return;
	uv_mutex_lock(&r->lock);
	r->stop = true;
	uv_cond_signal(&r->wake);
	uv_mutex_unlock(&r->lock);
	if (uv_thread_join(&r->starter) != 0)
		mtad_log(MTAD_LOG_ERROR, "replication: cannot join the start thread");
	r->starter_running = false;
}

/* repl_set_role - an event changed the role: note it, wake the owner. */
static void repl_set_role(struct queue_repl *r, enum queue_role role)
{
	int was = atomic_exchange(&r->role, (int)role);

	if (was == (int)role)
		return;
	atomic_store(&r->role_since, (int64_t)time(NULL));
	if (role == QUEUE_MASTER)
		mtad_log(MTAD_LOG_INFO, "replication: %s is now the master", r->local);
	else if (was == QUEUE_MASTER)
		mtad_log(MTAD_LOG_WARNING, "replication: %s is no longer the master", r->local);
	else
		mtad_log(MTAD_LOG_INFO, "replication: %s is a replica", r->local);
	if (r->on_role != NULL && atomic_load(&r->started))
		r->on_role(r->on_role_arg);
}

/* repl_in_writer - the event came in the writer thread. */
static bool repl_in_writer(struct queue_repl *r)
{
	uv_thread_t self = uv_thread_self();

	return atomic_load(&r->writer_known) && uv_thread_equal(&self, &r->writer);
}

/* queue_repl_event - see queue_impl.h. No Berkeley DB calls in here. */
void queue_repl_event(struct queue *q, uint32_t event, void *info)
{
	struct queue_repl *r = q->repl;

	if (r == NULL)
		return;
	switch (event) {
	case DB_EVENT_REP_MASTER:
		atomic_store(&r->master_eid, DB_EID_INVALID);
		repl_set_role(r, QUEUE_MASTER);
		break;
	case DB_EVENT_REP_CLIENT:
		repl_set_role(r, QUEUE_REPLICA);
		break;
	case DB_EVENT_REP_NEWMASTER:
		if (info != NULL)
			atomic_store(&r->master_eid, *(int *)info);
		break;
	case DB_EVENT_REP_ELECTED:
		mtad_log(MTAD_LOG_INFO, "replication: %s won the election", r->local);
		break;
	case DB_EVENT_REP_ELECTION_FAILED:
		mtad_log(MTAD_LOG_WARNING, "replication: the election failed (too few nodes "
			 "reachable); trying again");
		break;
	case DB_EVENT_REP_DUPMASTER:
		mtad_log(MTAD_LOG_WARNING, "replication: two masters met; Berkeley DB holds an "
			 "election, and the loser's unacknowledged commits are rolled back");
		break;
	case DB_EVENT_REP_STARTUPDONE:
		mtad_log(MTAD_LOG_INFO, "replication: %s has caught up with the master", r->local);
		break;
	case DB_EVENT_REP_INIT_DONE:
		mtad_log(MTAD_LOG_INFO, "replication: %s received a full copy of the master's "
			 "queue", r->local);
		break;
	case DB_EVENT_REP_JOIN_FAILURE:
		mtad_log(MTAD_LOG_ERROR, "replication: %s cannot catch up with the master "
			 "(its log is gone and automatic initialisation failed)", r->local);
		break;
	case DB_EVENT_REP_PERM_FAILED:
		atomic_fetch_add(&r->unacked, 1);
		if (repl_in_writer(r))
			atomic_store(&r->writer_unacked, true);
		break;
	default:
		break;
	}
}

/* queue_repl_writer_is_me - see queue_impl.h. */
void queue_repl_writer_is_me(struct queue *q)
{
	if (q->repl == NULL)
		return;
	q->repl->writer = uv_thread_self();
	atomic_store(&q->repl->writer_known, true);
}

/* queue_repl_unacked - see queue_impl.h. */
bool queue_repl_unacked(struct queue *q)
{
	return q->repl != NULL && atomic_exchange(&q->repl->writer_unacked, false);
}

/* queue_repl_acked - see queue_impl.h. */
void queue_repl_acked(struct queue *q)
{
	if (queue_repl_waits(q))
		atomic_store(&q->repl->last_ack, (int64_t)time(NULL));
}

/* queue_repl_waits - see queue_impl.h. */
bool queue_repl_waits(const struct queue *q)
{
	return q->repl != NULL && q->repl->ack != QUEUE_ACK_NONE;
}

/* queue_role - see queue.h. */
enum queue_role queue_role(const struct queue *q)
{
	DB_REP_STAT *st = NULL;
	uint32_t flags = 0;
	enum queue_role role = QUEUE_SINGLE;

	if (q->repl != NULL) {
		int role_now = atomic_load(&q->repl->role);

		return role_now == QUEUE_FAILED || atomic_load(&q->repl->started)
		       ? (enum queue_role)role_now : QUEUE_ELECTING;
	}
	if (q->env == NULL || q->env->get_open_flags(q->env, &flags) != 0 ||
	    !(flags & DB_INIT_REP) || q->env->rep_stat(q->env, &st, 0) != 0)
		return QUEUE_SINGLE;
	if (st->st_status == DB_REP_MASTER)
		role = QUEUE_MASTER;
	else if (st->st_status == DB_REP_CLIENT)
		role = QUEUE_REPLICA;
	free(st);
	return role;
}

/* ---- the tick: status, the replica's flush, its position to the master ---- */

/* lsn_bytes - how far b is behind a, in bytes (0 when not behind). */
static uint64_t lsn_bytes(const DB_LSN *a, const DB_LSN *b, uint32_t lg_max)
{
	if (log_compare(a, b) <= 0)
		return 0;
	return (uint64_t)(a->file - b->file) * lg_max + a->offset - b->offset;
}

/* repl_position - this node's log position: the next record it will
 * write (master) or expects (replica). */
static int repl_position(DB_ENV *env, DB_LSN *lsn)
{
	DB_REP_STAT *st;
	int rc;

	if ((rc = env->rep_stat(env, &st, 0)) != 0)
		return rc;
	*lsn = st->st_next_lsn;
	free(st);
	return 0;
}

/* repl_sample - master: one more second of its own positions. */
static void repl_sample(struct queue_repl *r, time_t now, const DB_LSN *lsn)
{
	r->samples[r->next_sample] = (struct repl_sample){ now, *lsn };
	r->next_sample = (r->next_sample + 1) % REPL_SAMPLES;
	if (r->nsamples < REPL_SAMPLES)
		r->nsamples++;
}

/* repl_lag_seconds - master: how long ago it was where the replica is now
 * (0 when the replica has all); -1: longer than the samples reach. */
static long repl_lag_seconds(const struct queue_repl *r, time_t now, const DB_LSN *mine,
			     const DB_LSN *theirs)
{
	long best = -1;

	if (log_compare(theirs, mine) >= 0)
		return 0;
	for (unsigned i = 0; i < r->nsamples; i++) {
		const struct repl_sample *s = &r->samples[i];

		if (log_compare(&s->lsn, theirs) <= 0 && (best < 0 || now - s->t < best))
			best = (long)(now - s->t);
	}
	return best;
}

/* repl_tell_master - replica: its position, over the channel to the master. */
static void repl_tell_master(struct queue *q, const DB_LSN *lsn)
{
	struct queue_repl *r = q->repl;
	char msg[REPL_MSG_MAX];
	DBT dbt = { 0 };
	int n;

	if (r->channel == NULL && q->env->repmgr_channel(q->env, DB_EID_MASTER, &r->channel, 0) != 0) {
		r->channel = NULL;
		return;
	}
	n = snprintf(msg, sizeof(msg), "mtad-lsn %s %lu %lu", r->local, (unsigned long)lsn->file,
		     (unsigned long)lsn->offset);
	dbt.data = msg;
	dbt.size = (uint32_t)n;
	(void)r->channel->send_msg(r->channel, &dbt, 1, 0);	/* no master now: next second */
}

/* repl_site_index - the configured peer at host:port, or -1. */
static int repl_site_index(const struct queue_repl *r, const char *host, unsigned port)
{
	char hp[MTAD_HOSTPORT_MAX];

	snprintf(hp, sizeof(hp), strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
	for (size_t i = 0; i < r->npeers; i++)
		if (strcmp(r->peers[i], hp) == 0)
			return (int)i;
	return -1;
}

/* repl_sites - which peers are connected now, and the master's address;
 * connections gained or lost, and a new master, are logged. */
static void repl_sites(struct queue *q, bool connected[], char *master, size_t masterlen)
{
	struct queue_repl *r = q->repl;
	DB_REPMGR_SITE *list = NULL;
	unsigned count = 0;
	int master_eid = atomic_load(&r->master_eid);

	memset(connected, 0, r->npeers * sizeof(bool));
	snprintf(master, masterlen, "%s", atomic_load(&r->role) == QUEUE_MASTER ? r->local : "");
	if (q->env->repmgr_site_list(q->env, &count, &list) != 0)
		return;
	for (unsigned i = 0; i < count; i++) {
		int k = repl_site_index(r, list[i].host, list[i].port);

		if (k >= 0)
			connected[k] = list[i].status == DB_REPMGR_CONNECTED;
		if (list[i].eid == master_eid && atomic_load(&r->role) != QUEUE_MASTER)
			snprintf(master, masterlen, strchr(list[i].host, ':') ? "[%s]:%u" : "%s:%u",
				 list[i].host, list[i].port);
	}
	free(list);
	for (size_t i = 0; i < r->npeers; i++) {
		if (connected[i] == r->connected[i])
			continue;
		r->connected[i] = connected[i];
		if (connected[i])
			mtad_log(MTAD_LOG_INFO, "replication: connected to %s", r->peers[i]);
		else
			mtad_log(MTAD_LOG_WARNING, "replication: lost the connection to %s%s",
				 r->peers[i], r->ack == QUEUE_ACK_NONE && atomic_load(&r->role) ==
				 QUEUE_MASTER ? "; replication_ack = none: mail may now be accepted "
				 "on this node alone" : "");
	}
	if (master[0] && master_eid != r->logged_master && atomic_load(&r->role) == QUEUE_REPLICA) {
		r->logged_master = master_eid;
		mtad_log(MTAD_LOG_INFO, "replication: the master is %s", master);
	}
}

/* repl_write_status - SPOOL/replication, whole or not at all (tmp + rename). */
static void repl_write_status(struct queue *q, time_t now, const DB_LSN *mine,
			      const bool connected[], const char *master)
{
	struct queue_repl *r = q->repl;
	char path[MTAD_PATH_MAX + 32], tmp[MTAD_PATH_MAX + 40];
	uint32_t lg_max = 10 * 1024 * 1024;
	FILE *f;
	int fd;

	(void)q->env->get_lg_max(q->env, &lg_max);
	snprintf(path, sizeof(path), "%s/%s", q->spool, REPL_STATUS_FILE);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
		return;
	if ((f = fdopen(fd, "w")) == NULL) {
		(void)close(fd);
		return;
	}
	fprintf(f, "updated %lld\nrole %s\nsince %lld\nlocal %s\nmaster %s\nack %s %u\n"
		"position %lu/%lu\nlast_ack %lld\nunacked %" PRIu64 "\n", (long long)now,
		queue_role_name((enum queue_role)atomic_load(&r->role)),
		(long long)atomic_load(&r->role_since), r->local, master[0] ? master : "-",
		ack_name(r->ack), r->ack_timeout, (unsigned long)mine->file,
		(unsigned long)mine->offset, (long long)atomic_load(&r->last_ack),
		atomic_load(&r->unacked));
	uv_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->npeers; i++) {
		const struct repl_seen *s = &r->seen[i];
		bool master_view = atomic_load(&r->role) == QUEUE_MASTER && s->heard != 0;

		fprintf(f, "peer %s %s", r->peers[i], connected[i] ? "connected" : "disconnected");
		if (master_view)
			fprintf(f, " position %lu/%lu lag_bytes %" PRIu64 " lag_seconds %ld heard %lld",
				(unsigned long)s->lsn.file, (unsigned long)s->lsn.offset,
				lsn_bytes(mine, &s->lsn, lg_max),
				repl_lag_seconds(r, now, mine, &s->lsn), (long long)s->heard);
		fputc('\n', f);
	}
	uv_mutex_unlock(&r->lock);
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		(void)unlink(tmp);
}

/* queue_repl_tick - see queue_impl.h. */
void queue_repl_tick(struct queue *q)
{
	struct queue_repl *r = q->repl;
	bool connected[QUEUE_REPLICATION_PEERS_MAX];
	char master[MTAD_HOSTPORT_MAX];
	time_t now = time(NULL);
	DB_LSN mine = { 0, 0 };

	if (r == NULL || atomic_load(&q->panicked))
		return;
	(void)repl_position(q->env, &mine);
	repl_sites(q, connected, master, sizeof(master));
	if (atomic_load(&r->role) == QUEUE_MASTER) {
		repl_sample(r, now, &mine);
	} else if (atomic_load(&r->role) == QUEUE_REPLICA) {
		(void)q->env->log_flush(q->env, NULL);
		repl_tell_master(q, &mine);
	}
	repl_write_status(q, now, &mine, connected, master);
}

/* ---- reading the status back (mtaq) ---- */

/* repl_parse_peer - one "peer ..." line of the status file. */
static void repl_parse_peer(struct queue_replication_status *st, const char *rest)
{
	struct queue_replication_peer *p;
	char state[16];
	unsigned long file, offset;
	long long heard;
	int n = 0;

	if (st->npeers >= QUEUE_REPLICATION_PEERS_MAX)
		return;
	p = &st->peers[st->npeers];
	memset(p, 0, sizeof(*p));
	if (sscanf(rest, "%271s %15s%n", p->addr, state, &n) != 2)
		return;
	p->connected = strcmp(state, "connected") == 0;
	if (sscanf(rest + n, " position %lu/%lu lag_bytes %" SCNu64 " lag_seconds %ld heard %lld",
		   &file, &offset, &p->lag_bytes, &p->lag_seconds, &heard) == 5) {
		p->heard = true;
		p->file = (uint32_t)file;
		p->offset = (uint32_t)offset;
		p->heard_at = heard;
	}
	st->npeers++;
}

/* repl_parse_line - one line of SPOOL/replication. */
static void repl_parse_line(struct queue_replication_status *st, const char *line)
{
	unsigned long file, offset;
	long long v;

	if (sscanf(line, "updated %lld", &v) == 1)
		st->updated = v;
	else if (sscanf(line, "role %15s", st->role) == 1)
		;
	else if (sscanf(line, "since %lld", &v) == 1)
		st->since = v;
	else if (sscanf(line, "local %271s", st->local) == 1)
		;
	else if (sscanf(line, "master %271s", st->master) == 1) {
		if (strcmp(st->master, "-") == 0)
			st->master[0] = '\0';
	} else if (sscanf(line, "ack %15s %u", st->ack, &st->ack_timeout) == 2)
		;
	else if (sscanf(line, "position %lu/%lu", &file, &offset) == 2) {
		st->file = (uint32_t)file;
		st->offset = (uint32_t)offset;
	} else if (sscanf(line, "last_ack %lld", &v) == 1)
		st->last_ack = v;
	else if (sscanf(line, "unacked %" SCNu64, &st->unacked) == 1)
		;
	else if (strncmp(line, "peer ", 5) == 0)
		repl_parse_peer(st, line + 5);
}

/* repl_read_file - mtad's status file; -1 when there is none. */
static int repl_read_file(struct queue *q, struct queue_replication_status *st)
{
	char path[MTAD_PATH_MAX + 32], line[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", q->spool, REPL_STATUS_FILE);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	for (int n = 0; n < 64 && fgets(line, sizeof(line), f) != NULL; n++)
		repl_parse_line(st, line);
	(void)fclose(f);
	return st->role[0] ? 0 : -1;
}

/* queue_replication_read - see queue.h. */
int queue_replication_read(struct queue *q, struct queue_replication_status *st)
{
	uint32_t flags = 0;
	DB_LSN lsn;
	int rc;

	memset(st, 0, sizeof(*st));
	if (q->env->get_open_flags(q->env, &flags) != 0 || !(flags & DB_INIT_REP))
		return QUEUE_OK;	/* a single node: nothing to show */
	st->replicated = true;
	if (queue_spool_owned(q->spool) == 1 && repl_read_file(q, st) == 0) {
		st->from_mtad = true;
		return QUEUE_OK;
	}
	memset(st, 0, sizeof(*st));
	st->replicated = true;
	snprintf(st->role, sizeof(st->role), "%s", queue_role_name(queue_role(q)));
	if ((rc = repl_position(q->env, &lsn)) != 0) {
		queue_seterr(q, "replication statistics: %s", db_strerror(rc));
		return QUEUE_ERROR;
	}
	st->file = lsn.file;
	st->offset = lsn.offset;
	return QUEUE_OK;
}
