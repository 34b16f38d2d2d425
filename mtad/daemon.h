/*
 * daemon.h - private to mtad/: the running daemon as main.c, listen.c,
 * loops.c, spool_space.c and privilege.c share it. Everything in struct
 * daemon is owned by the main event loop's thread, except what is marked
 * otherwise: the connection limits (under limits_lock, any loop) and
 * each struct mtad_loop (its own loop's thread; its mailbox under its
 * lock).
 */
#ifndef MTAD_DAEMON_H
#define MTAD_DAEMON_H

#include <netinet/in.h>
#include <stdbool.h>
#include <sys/types.h>

#include <uv.h>

#include "auth/auth.h"
#include "dkim/dkim.h"
#include "util/util.h"
#include "queue/queue.h"
#include "deliver/deliver.h"
#include "local/local.h"
#include "smtp/smtp.h"
#include "tls/tls.h"

#define IP_BUCKETS 1024

struct conn;
struct ip_count;

/* The account mtad runs as after the start (privilege.c). */
struct daemon_user {
	bool drop;		/* started as root with a user: switch to it */
	uid_t uid;
	gid_t gid;
	char name[MTAD_USER_MAX + 1];
	char group[64];		/* the name of gid, for the commands in messages */
};

struct listener {
	uv_poll_t poll;		/* the listening socket is readable: accept (listen.c) */
	int fd;			/* the listening socket; -1 once closed */
	struct daemon *d;
	const struct mtad_listen *cfg;	/* role: starttls, tls, submission */
	char name[80];		/* "127.0.0.1:2525", "[::1]:2525" */
};

/* One accepted connection on its way from the main loop to a worker loop. */
struct handoff {
	struct handoff *next;
	int fd;
	struct listener *l;
	struct ip_count *ip;		/* counted at admission */
	char ip_text[INET6_ADDRSTRLEN];
	long uid;			/* the local socket's peer, else -1 */
};

/*
 * One event loop serving SMTP sessions (loops.c). Loop 0 is the main
 * loop (d->loop), which also accepts, delivers and handles signals; the
 * others each run on a thread of their own, take the connections the
 * main loop hands them, and run those sessions, their TLS and their
 * SASL steps start to end.
 */
struct mtad_loop {
	struct daemon *d;
	unsigned index;
	uv_loop_t *loop;		/* d->loop for loop 0, else &own */
	uv_loop_t own;
	uv_thread_t thread;
	bool thread_started;
	bool own_open;			/* own is initialised */
	struct smtp_server smtp;
	bool smtp_open;
	struct mtad_dns *dns;		/* owned by workers; loop 0 uses d->dns */
	struct queue_port *port;	/* where this loop's commits come back */
	struct deliver_verify *verify;	/* recipient_verify's probes and cache (deliver.h) */
	struct conn *conns;		/* this loop's connections */
	unsigned nconns;
	bool stopping;			/* no new sessions; closes down when the last is gone */
	bool closed;			/* a worker's handles are closing: its thread ends */
	/* Workers: the mailbox the main loop fills, under lock. */
	uv_async_t wake;
	bool wake_open;
	uv_mutex_t lock;
	bool lock_open;
	struct handoff *inbox, **inbox_tail;
	bool ask_stop, ask_queue_failed, ask_pause;
	/* Read buffers shared by this loop's connections: each read is used
	 * up in its callback, before the loop reads anything else. */
	char cipher_in[SMTP_READ_SIZE];	/* TLS ciphertext, fed to the engine at once */
	char drain[256];		/* input thrown away while a connection lingers */
};

/* The spool's free space, measured every second (spool_space.c). */
struct spool_space {
	struct daemon *d;
	uv_timer_t timer;
	uv_work_t work;
	char path[MTAD_PATH_MAX];	/* the worker's own copy of spool_directory */
	uint64_t result_free;		/* written by the worker, read in its done callback */
	int result_error;		/* 0 or -errno, likewise */
	bool open;			/* the timer is initialised */
	bool busy;			/* a measure is on the thread pool */
	bool low;			/* below queue_minfree at the last measure */
	bool failing;			/* the last measure failed */
};

struct daemon {
	uv_loop_t *loop;
	struct mtad_config cfg;
	const char *config_path;
	struct queue *queue;
	struct smtp_shared shared;	/* what every loop's sessions share (smtp.h) */
	bool shared_open;
	struct tls_server *tls;		/* NULL when no listener uses TLS */
	struct auth_server *auth;	/* NULL when no listener offers AUTH */
	struct mtad_dns *dns;		/* NULL when dns_servers = none */
	struct tls_client *tls_client;	/* outbound STARTTLS; NULL when smtp_tls = none */
	struct deliver *deliver;	/* the queue runner */

	struct listener listeners[MTAD_MAX_LISTEN + 1];	/* and the local socket */
	size_t nlisteners;
	struct mtad_listen local_listen;	/* the local socket's role (listen.c) */

	struct mtad_loop *loops;	/* nloops of them; loops[0] runs on this loop */
	unsigned nloops;
	unsigned next_loop;		/* the next connection goes there (round robin) */
	uv_async_t main_wake;		/* a worker's connection closed (loops.c) */
	bool main_wake_open;
	uv_barrier_t reload_barrier;	/* every loop stands still during a reload */
	bool reload_barrier_open;
	bool gone_called;		/* connections_gone ran */

	/* Connection limits, exact over every loop: under limits_lock. */
	uv_mutex_t limits_lock;
	bool limits_open;
	unsigned nconns;		/* open connections on every loop */
	struct ip_count *per_ip[IP_BUCKETS];	/* connections per client address */
	unsigned conn_fd_capacity;	/* connections the descriptor limit has room for */
	uv_timer_t accept_timer;	/* ends a pause in accepting (EMFILE, ENFILE) */
	bool accept_timer_open;
	bool accept_paused;
	uint64_t accept_warned;		/* uv_now() of the last "out of descriptors" line */

	struct spool_space space;	/* sets shared.spool_free */
	struct daemon_user user;	/* who mtad runs as once started */
	uv_signal_t sig_term, sig_int, sig_hup;
	bool stopping;
	bool writer_started;
	bool signals_started;
	int lock_fd;
	/* A Berkeley DB panic: env.c's event wakes the loop through
	 * panic_async; the stop that follows exits with exit_status 1, or
	 * panic_timer ends it (main.c). */
	uv_async_t panic_async;
	uv_timer_t panic_timer;
	bool panic_async_open, panic_timer_open;
	bool queue_failed;
	/* A replication group (queue/replication.c): what the queue was
	 * opened with; role_async is woken by each role change; serving:
	 * this node runs as master (writer, loops, delivery, listeners). */
	struct queue_replication replication;
	bool replicated;
	uv_async_t role_async;
	bool role_async_open;
	bool serving;
	/* A serving master demoted: the grace before it stops (main.c). */
	uv_timer_t demote_timer;
	bool demote_timer_open;
	int exit_status;
	/* Set by main.c: listen.c calls it when the last connection of a stop
	 * has closed, so the listeners never call back up into main.c. */
	void (*connections_gone)(struct daemon *d);
};

/* privilege.c */
/*
 * privilege_plan - before anything is opened: started as root, look up
 * cfg->user (-1 with err when it does not exist or is root); started as
 * anyone else, or with `user =`, no switch (a log line says so).
 */
int privilege_plan(const struct mtad_config *cfg, struct daemon_user *u, char *err, size_t errlen);
/*
 * privilege_drop - after the listeners are bound and the key is read,
 * before the queue is opened: checks the spool, becomes u, proves root
 * is gone, then checks as u what it will open later (the spool's files;
 * with auth the sasldb or saslauthd socket; with tls the certificate
 * and key files for a reload). Returns -1 with err when mtad must not
 * go on. Does nothing when u->drop is false.
 */
int privilege_drop(const struct mtad_config *cfg, const struct daemon_user *u, bool tls,
		   bool auth, char *err, size_t errlen);
/*
 * privilege_become - groups, gid, uid of u, and proof that root cannot
 * come back; -1 with err. For a process that only checks (mtad -n's
 * child): the daemon itself switches in privilege_drop.
 */
int privilege_become(const struct daemon_user *u, char *err, size_t errlen);

/* main.c */
/* daemon_needs - whether some listener uses TLS, and some may offer AUTH. */
void daemon_needs(const struct mtad_config *cfg, bool *tls, bool *auth);

/* check.c */
/*
 * check_files - `mtad -n`: every file cfg (read from conf) names, checked
 * as the daemon will need it: the certificate and key as the starting
 * user (and whether they match), the spool, the sasldb, the maps and the
 * aliases as `user` (in a child process that becomes it, when started as
 * root). Each finding goes to report as "CONF:LINE: what"; returns the
 * number of errors.
 */
int check_files(const struct mtad_config *cfg, const char *conf,
		const struct mtad_config_report *report);

/* spool_space.c */
/*
 * spool_space_start - measures the spool's free space now (into
 * d->smtp.spool_free; call after smtp_server_init) and then every second
 * off the loop. Returns -1 with err when the timer cannot start; a
 * failing measure is only logged.
 */
int spool_space_start(struct daemon *d, char *err, size_t errlen);
/* spool_space_stop - no more measures; one still running finishes harmlessly. */
void spool_space_stop(struct daemon *d);

/* listen.c */
int listen_start(struct daemon *d, char *err, size_t errlen);
/* listen_accept - the bound listeners start listening and accepting:
 * at once on a single node, once elected master in a replication group. */
int listen_accept(struct daemon *d, char *err, size_t errlen);
/* Stops accepting, says 421 to every session; the loop ends when all are closed. */
void listen_stop(struct daemon *d);
/* listen_adopt - on lp's thread: a handed-over connection becomes a session. */
void listen_adopt(struct mtad_loop *lp, struct handoff *h);
/* listen_shutdown_sessions - on lp's thread: 421 to each of its sessions. */
void listen_shutdown_sessions(struct mtad_loop *lp);
/* listen_release - on any loop: one connection's counts end (under limits_lock). */
void listen_release(struct daemon *d, struct ip_count *e);
/* listen_conn_gone - on the main loop: a connection of any loop is gone. */
void listen_conn_gone(struct daemon *d);

/* loops.c */
/*
 * loops_start - cfg->loops event loops (0: one per core) for sessions:
 * loop 0 on d->loop, the others on threads of their own, each with its
 * smtp_server, resolver and queue port. Call after the queue writer and
 * the shared state are up. -1 with err.
 */
int loops_start(struct daemon *d, char *err, size_t errlen);
/* loops_pick - the loop the next connection goes to. */
struct mtad_loop *loops_pick(struct daemon *d);
/* loops_hand - gives h to worker lp (main loop); false when lp cannot take it. */
bool loops_hand(struct mtad_loop *lp, struct handoff *h);
/* loops_stop - every loop: no new sessions, 421 to those open. */
void loops_stop(struct daemon *d, bool queue_failed);
/* loops_closed - on lp's thread: lp stops if it should (no connections left). */
void loops_closed(struct mtad_loop *lp);
/* loops_join - waits for every worker thread to end (main loop, after a stop). */
void loops_join(struct daemon *d);
/* loops_pause / loops_resume - every worker waits between them (reload). */
void loops_pause(struct daemon *d);
void loops_resume(struct daemon *d);
/* loops_free - releases what loops_start took (after loops_join). */
void loops_free(struct daemon *d);

#endif
