/*
 * daemon.h - private to mtad/: the running daemon as main.c, listen.c
 * and privilege.c share it. Everything here is owned by the event loop
 * thread.
 */
#ifndef MTAD_DAEMON_H
#define MTAD_DAEMON_H

#include <stdbool.h>
#include <sys/types.h>

#include <uv.h>

#include "auth/auth.h"
#include "util/util.h"
#include "queue/queue.h"
#include "deliver/deliver.h"
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
	struct smtp_server smtp;
	struct tls_server *tls;		/* NULL when no listener uses TLS */
	struct auth_server *auth;	/* NULL when no listener offers AUTH */
	struct mtad_dns *dns;		/* NULL when dns_servers = none */
	struct tls_client *tls_client;	/* outbound STARTTLS; NULL when smtp_tls = none */
	struct deliver *deliver;	/* the queue runner */

	struct listener listeners[MTAD_MAX_LISTEN];
	size_t nlisteners;

	struct conn *conns;		/* every open connection */
	unsigned nconns;
	unsigned conn_fd_capacity;	/* connections the descriptor limit has room for */
	uv_timer_t accept_timer;	/* ends a pause in accepting (EMFILE, ENFILE) */
	bool accept_timer_open;
	bool accept_paused;
	uint64_t accept_warned;		/* uv_now() of the last "out of descriptors" line */
	struct ip_count *per_ip[IP_BUCKETS];	/* connections per client address */
	/* Read buffers shared by all connections: each read is used up in
	 * its callback, before the loop reads anything else. */
	char cipher_in[SMTP_READ_SIZE];	/* TLS ciphertext, fed to the engine at once */
	char drain[256];		/* input thrown away while a connection lingers */

	struct spool_space space;	/* sets smtp.spool_free */
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
/* Stops accepting, says 421 to every session; the loop ends when all are closed. */
void listen_stop(struct daemon *d);

#endif
