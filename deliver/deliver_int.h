/*
 * deliver_int.h - private to the queue runner: the structs and calls
 * that deliver.c (the runner loop and scheduling), group.c (connections
 * per destination, the SMTP client's side), mx.c (where a destination's
 * mail goes: routes, MX, addresses, loops) and outcome.c (recording
 * results, retries, bounces) share. Nothing outside those files
 * includes this; the API is deliver/deliver.h.
 */
#ifndef DELIVER_DELIVER_INT_H
#define DELIVER_DELIVER_INT_H

#include <sys/socket.h>

#include "deliver/deliver.h"

#define MAX_ADDRS 16		/* addresses tried per attempt */
#define MAX_DESTS 256		/* destinations with a connection count */
#define MAX_COOLING 64		/* messages whose outcome could not be recorded */
#define MAX_OWN 64		/* this machine's addresses, for loop checks */

/*
 * A destination and its connections: what destination_concurrency
 * counts and a kept connection is reused for. Its key (group_key in
 * group.c) is the next hop as resolved: the protocol, the TLS policy,
 * the port and the sorted set of hosts (MX hosts, a route's host, or a
 * domain's own name when it has no MX), so domains whose MX records
 * name the same hosts share connections and one limit, and a
 * connection made under one TLS policy is never reused under another.
 */
struct dest {
	char *key;			/* malloc'd; NULL: a free slot */
	unsigned conns;			/* connection slots in use (the idle one too) */
	struct group *wait_head, *wait_tail;	/* groups waiting for a slot */
	struct smtp_client *idle;	/* a connection kept for the next message */
	char idle_relay[320];
	int64_t idle_since;
};

#define IDLE_SECONDS 2		/* how long a spare connection is kept */

struct attempt;

/* One next hop tried for some recipients of one message. */
struct group {
	struct attempt *att;
	const struct smtp_route *route;	/* NULL: MX of the domain */
	char domain[256];
	size_t *rcpt;			/* indexes into att->env.rcpt */
	size_t nrcpt;
	struct sockaddr_storage addrs[MAX_ADDRS];
	char hosts[MAX_ADDRS][256];	/* the name each address came from */
	size_t naddrs, next_addr;
	struct mtad_dns_query *query;
	struct smtp_client *client;
	char relay[320];		/* "host[ip]:port" of the connection in use */
	const char **rcpt_addrs;
	/* DSN per recipient, for the client (RFC 3461): NOTIFY bits, ORCPT as
	 * given, the address an alias expanded (parallel to rcpt_addrs, filled
	 * from rcpt[] when the message is sent, room for every recipient). */
	uint32_t *rcpt_notify;
	const char **rcpt_dsn_orcpt, **rcpt_orig;
	struct mx_wait *mx;
	struct chunk_req *chunk;	/* a body chunk being read for the client */
	struct queue_body_check *check;	/* over the chunks sent so far */
	struct smtp_client_reply fail;	/* the last address's failure, for the log */
	bool failed_once;
	struct dest *dest;		/* set while it holds a connection slot */
	bool waiting;			/* queued for a slot of its destination */
	bool tried_idle;		/* a kept connection was offered already */
	struct group *next_wait;
	/*
	 * Every group of an attempt is resolved first (mx.c), then groups
	 * whose next hop has the same key are merged (one transaction for
	 * the recipients of several domains), then they are sent one after
	 * the other. While resolving, mx.c's group_connect_next (addresses
	 * found) and group_done (decided: no address, Null MX, DNS failure)
	 * hand the group back to the runner instead (group.c).
	 */
	bool resolving;			/* mx.c is finding its next hop */
	bool resolved;			/* it found one: the group may be sent */
	char *key;			/* its destination's key, once resolved (malloc'd) */
	double t_resolve, resolve_secs;	/* when resolving began, how long it took (delays=c) */
};

/* A message being delivered. */
struct attempt {
	struct deliver *d;
	struct queue_envelope env;	/* our own copy */
	struct group *groups;
	size_t ngroups, current;
	int64_t started;
	/* For the log's delays=a/b/c/d (Postfix's: before the queue manager,
	 * in it, connection setup, transmission), wall-clock seconds: when
	 * the runner took the message, and when the current group (groups
	 * go one after the other) began and got a connection (0: not yet). */
	double t_active, t_group_start, t_group_ready;
	/* The program name of the current group's delivery lines: MTAD_SVC_SMTP,
	 * or MTAD_SVC_LMTP for a group that goes over LMTP. */
	enum mtad_log_service log_svc;
	bool queue_wait;		/* a queue call answers later: freed there */
	bool damaged;			/* the body failed its check: hold, never send */
	char damage[200];		/* ... and how */
	size_t nresolved;		/* groups whose next hop was looked for */
	bool merged;			/* groups with the same destination key merged */
	bool in_resolve, resolved_now;	/* group_start is running / it answered at once */
	bool *decided;			/* per recipient: this attempt decided it */
	char (*reply)[600];		/* per recipient: the reply for logs and DSN */
	char (*dsn)[16];
	char (*relay)[320];
	/* per recipient: who decided it in this attempt (HOP_*): a peer
	 * that offers DSN takes over its success notices, one without it
	 * gets our "relayed", LMTP's final delivery our "delivered" */
	unsigned char *hop;
	/* chunk 0 of the body while the notice is built (headers_arrived):
	 * the whole message for RET=FULL when it fits */
	const char *chunk0;
	size_t chunk0_len;
	struct attempt *next;
};

struct deliver {
	uv_loop_t *loop;
	const struct mtad_config *cfg;
	struct queue *queue;
	struct mtad_dns *dns;
	struct tls_client *tls;
	struct queue_id_gen *ids;
	uv_timer_t timer;
	struct smtp_route routes[MTAD_MAX_ROUTES];
	size_t nroutes;
	struct smtp_route relayhost;
	bool has_relayhost;
	struct mtad_addr own[MAX_OWN];	/* this machine's addresses, for loop checks */
	size_t nown;
	struct dest dests[MAX_DESTS];
	size_t ndests;
	struct attempt *active;
	unsigned nactive;
	/*
	 * Messages whose outcome the queue could not record (a full spool:
	 * even the delete of a delivered message needs log space). They are
	 * still due, and without this they were delivered again at once, in
	 * a loop: each waits retry_min instead. A ring: the oldest go first.
	 */
	struct { char qid[QUEUE_ID_LEN + 1]; int64_t until; } cooling[MAX_COOLING];
	size_t cooling_next;
	bool scanning;
	bool more_due;		/* the last scan was full: look again when there is room */
	size_t asked;		/* how many the scan in flight asked for */
	bool stopping;
	/* The in-flight set for mtaq's "active" state (queue/active.c):
	 * handed over at the next tick after it changed. */
	struct queue_active *published;
	bool active_changed;
};

/*
 * A body chunk on its way from the queue to the client. The queue's
 * callback always comes and frees it; the client may have been answered
 * before (answered: smtp_queue_read_timeout ran out, deliver_read_timeouts).
 */
struct chunk_req {
	struct group *g;		/* NULL: the attempt went away, or the read timed out */
	struct smtp_client *client;
	smtp_client_chunk_done done;
	uint32_t index;			/* chunk 0 gets the envelope's header_prefix in front */
	uint64_t since;			/* uv_now when it was asked for */
	bool answered;			/* done was called already: the late chunk is dropped */
};

/* ---- deliver.c: the runner ---- */

/* attempt_next_group - one destination after the other; then the outcome. */
void attempt_next_group(struct attempt *a);
/* attempt_free - everything one message's attempt took. */
void attempt_free(struct attempt *a);
/* attempt_unlink - off the active list. */
void attempt_unlink(struct attempt *a);
/* deliver_more - an attempt ended: look for more due messages now when the last scan was full. */
void deliver_more(struct deliver *d);
/* attempt_resolved - a group's next hop is known (or it was decided): the attempt goes on. */
void attempt_resolved(struct group *g);

/* ---- group.c: connections and the SMTP client ---- */

/* group_connect_next - the next address; when none is left, the recipients wait. */
void group_connect_next(struct group *g);
/* group_done - this destination is decided: free the slot, on to the next group. */
void group_done(struct group *g);
/* dest_unwait - takes a waiting group off its destination's queue. */
void dest_unwait(struct deliver *d, struct group *g);
/* deliver_read_timeouts - body reads older than smtp_queue_read_timeout: the client
 * is answered with a read error (451 4.3.0, the connection dropped). Every second. */
void deliver_read_timeouts(struct deliver *d);
/* dest_keys_free - the destinations' keys, when the runner goes. */
void dest_keys_free(struct deliver *d);
/*
 * deliver_dest_key - a destination's key (struct dest): "smtp may 25
 * mx1.example.org,mx2.example.org": the protocol (lmtp or smtp), the TLS
 * policy, the port and the n next-hop host names (a name per address:
 * each kept once), lower case, without a trailing dot, sorted. Postfix
 * keys concurrency by next-hop domain and connection reuse by address;
 * here both go by the resolved host set, so domains served by the same
 * MX hosts share connections and one destination_concurrency, while
 * another port, protocol or TLS policy is another destination. Pure.
 * Returns a malloc'd string, or NULL (out of memory, n is 0 or above
 * MAX_ADDRS).
 */
char *deliver_dest_key(bool lmtp, enum smtp_tls_policy tls, int port,
		       const char *const *hosts, size_t n);

/* ---- mx.c: where the mail goes ---- */

/* group_start - route, relayhost or MX: where this group's mail goes. */
void group_start(struct group *g);
/* loops_to_myself - is addr one of our own listeners? */
bool loops_to_myself(const struct deliver *d, const struct sockaddr_storage *addr);

/* ---- outcome.c: recording results ---- */

/* deliver_now - wall-clock seconds, to the microsecond, for delays=. */
double deliver_now(void);
/* attempt_decide - one recipient's outcome in this attempt, and its log line. */
void attempt_decide(struct attempt *a, size_t i, int code, const char *enhanced,
		    const char *text, const char *relay);
/* group_decide - the same outcome for every recipient of a group. */
void group_decide(struct group *g, int code, const char *enhanced, const char *text);
/* attempt_finish - the outcome of every group is known: retry, done, bounce. */
void attempt_finish(struct attempt *a);

/* Who decided a recipient in this attempt, for its DSN (outcome.c). */
enum { HOP_NONE = 0, HOP_PLAIN = 1, HOP_DSN = 2, HOP_LMTP = 3 };
/* attempt_note_hop - recipient i was decided by a peer of this kind. */
void attempt_note_hop(struct attempt *a, size_t i, int hop);

#endif
