/*
 * main.c - mtad, the daemon: reads the configuration, loads the TLS
 * certificate and the SASL settings, binds the listeners, becomes the
 * unprivileged `user` (privilege.c), opens the queue, starts the queue
 * writer and runs the event loop until SIGTERM/SIGINT. SIGHUP reloads
 * the configuration, and the TLS certificate and key for new connections.
 *
 * It never forks: it runs in the foreground under systemd (Type=simple)
 * or a terminal, and `log` says whether its lines go to stderr or to
 * syslog. Whatever stops a start is also written to stderr, so that the
 * one who started it sees why even when the log goes to syslog.
 *
 * Stopping is orderly: listeners close, every session says 421 (a
 * session waiting for its queue commit gets its 250 first), the queue
 * writer finishes what it was given, and mtad exits 0. A second mtad on
 * the same spool is refused (a lock file), because the queue writer
 * assumes it is the only one creating messages there, and the queue
 * recovers at start only under that lock (queue/env.c). After a
 * Berkeley DB panic mtad stops the same way, with 421 4.3.0, and exits
 * with status 1 so that systemd restarts it and the start recovers.
 *
 * At start mtad raises its descriptor limit as far as the system lets
 * it and says in the log how many connections that leaves room for;
 * it must not pretend to serve max_connections when it cannot.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "mtad/daemon.h"

/* The modules' checks of their own settings, for the config parser. */
static const struct mtad_config_checks config_checks = {
	.route = deliver_config_route,
	.helo_rule = policy_config_rule,
	.helo_rule_name = policy_config_rule_name,
	.helo_rule_default = policy_config_rule_default,
};

#define DEFAULT_CONFIG "/etc/mtad/mtad.conf"
/* Descriptors besides client connections and deliveries: standard
 * streams, the loop, listeners, queue files and logs, DNS, SASL (about
 * 25 at start with three listeners), with room to spare. */
#define FD_RESERVE 64
/* After a Berkeley DB panic: the longest the orderly stop may take. */
#define DAEMON_PANIC_EXIT_MS 10000
/* A demoted master waits this long for the election to make it master again. */
#define DAEMON_DEMOTE_MS 10000

/* usage - the --help text. */
static void usage(FILE *out)
{
	fprintf(out,
		"usage: mtad [-c CONFIG] [-e] [-V] [-n [KEY...]] [-d [KEY...]]\n"
		"  -c CONFIG  configuration file (default " DEFAULT_CONFIG ")\n"
		"  -e         log to stderr even when CONFIG says log = syslog\n"
		"  -n         check the configuration and every file it names, report\n"
		"             each error as FILE:LINE, print the settings that differ\n"
		"             from the defaults, and exit (0 when it is valid)\n"
		"  -n KEY...  print those settings' values in force (key = value)\n"
		"  -d [KEY...] print the default of every setting, or of those named\n"
		"  -V         print the version and exit\n"
		"mtad runs in the foreground (it never forks) and logs to stderr, or to\n"
		"syslog with `log = syslog` in CONFIG.\n");
}

/*
 * daemon_lock - one mtad per spool directory, and the sign for mtaq that
 * mtad runs (queue/owner.c): taken before the queue is opened, held
 * until exit.
 */
static int daemon_lock(struct daemon *d, char *err, size_t errlen)
{
	char why[MTAD_PATH_MAX + 128];

	d->lock_fd = queue_spool_lock(d->cfg.spool_directory, why, sizeof(why));
	if (d->lock_fd < 0) {
		snprintf(err, errlen, "%s%s", why,
			 errno == EAGAIN ? " (is another mtad, or mtaq recover, running?)" : "");
		return -1;
	}
	return 0;
}

/* nr_open - the kernel's ceiling for any process's descriptor limit, 0 if unknown. */
static rlim_t nr_open(void)
{
	FILE *f = fopen("/proc/sys/fs/nr_open", "r");
	unsigned long long n = 0;

	if (f == NULL)
		return 0;
	if (fscanf(f, "%llu", &n) != 1)
		n = 0;
	if (fclose(f) != 0)
		n = 0;
	return (rlim_t)n;
}

/*
 * fd_raise - soft limit to the hard limit; when the hard limit is below
 * need, first try to raise it (root, or CAP_SYS_RESOURCE) to need, but
 * never past the kernel's nr_open. Returns the soft limit in force.
 */
static rlim_t fd_raise(rlim_t need, rlim_t *was)
{
	struct rlimit rl, up;
	rlim_t ceiling = nr_open();

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		mtad_log(MTAD_LOG_WARNING, "getrlimit RLIMIT_NOFILE: %s", strerror(errno));
		*was = 0;
		return 0;
	}
	*was = rl.rlim_cur;
	if (ceiling > 0 && need > ceiling)
		need = ceiling;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		up.rlim_cur = up.rlim_max = need;
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			return need;
		/* EPERM without privilege: the hard limit stays, say so below. */
		if (errno != EPERM)
			mtad_log(MTAD_LOG_WARNING, "raising the hard descriptor limit to %llu: %s",
				 (unsigned long long)need, strerror(errno));
	}
	up = rl;
	up.rlim_cur = rl.rlim_max;
	/* An unlimited hard limit still stops at nr_open for the soft one. */
	if (rl.rlim_max == RLIM_INFINITY || (ceiling > 0 && rl.rlim_max > ceiling))
		up.rlim_cur = ceiling > 0 ? ceiling : need;
	if (up.rlim_cur > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &up) != 0) {
		mtad_log(MTAD_LOG_WARNING, "raising the descriptor limit to %llu: %s",
			 (unsigned long long)up.rlim_cur, strerror(errno));
		return rl.rlim_cur;
	}
	return up.rlim_cur > rl.rlim_cur ? up.rlim_cur : rl.rlim_cur;
}

/*
 * daemon_fd_limit - raises the descriptor limit for max_connections
 * (plus deliveries and FD_RESERVE) and sets d->conn_fd_capacity, the
 * client connections it leaves room for; listen.c refuses more with
 * 421 instead of running into EMFILE. At start it logs the limit; at
 * start and on reload it warns when max_connections does not fit.
 */
static void daemon_fd_limit(struct daemon *d, bool at_start)
{
	rlim_t reserve = (rlim_t)d->cfg.delivery_concurrency + FD_RESERVE;
	rlim_t need = (rlim_t)d->cfg.max_connections + reserve, was, limit;

	limit = fd_raise(need, &was);
	if (limit == 0) {
		d->conn_fd_capacity = d->cfg.max_connections;	/* unknown: trust the config */
		return;
	}
	d->conn_fd_capacity = limit <= reserve ? 0
			    : limit - reserve > UINT_MAX ? UINT_MAX : (unsigned)(limit - reserve);
	if (at_start && limit != was)
		mtad_log(MTAD_LOG_INFO, "descriptor limit %llu (raised from %llu), "
			 "room for %u connections", (unsigned long long)limit,
			 (unsigned long long)was, d->conn_fd_capacity);
	else if (at_start)
		mtad_log(MTAD_LOG_INFO, "descriptor limit %llu, room for %u connections",
			 (unsigned long long)limit, d->conn_fd_capacity);
	if (d->conn_fd_capacity < d->cfg.max_connections)
		mtad_log(MTAD_LOG_WARNING, "descriptor limit %llu is too low for "
			 "max_connections = %u: at most %u connections will be served; "
			 "raise the hard limit (ulimit -Hn, systemd LimitNOFILE=) to %llu",
			 (unsigned long long)limit, d->cfg.max_connections,
			 d->conn_fd_capacity, (unsigned long long)need);
}

/* connections_gone - the last session of a stop has closed (listen.c calls it through d). */
static void connections_gone(struct daemon *d)
{
	/* Every worker loop has closed down (or is about to: its last
	 * handles); the writer must outlive their queue ports. */
	loops_join(d);
	if (d->deliver)
		deliver_stop(d->deliver);
	spool_space_stop(d);
	if (d->writer_started) {
		queue_writer_stop(d->queue);	/* runs the callbacks still owed */
		d->writer_started = false;
	}
	if (d->deliver) {
		deliver_free(d->deliver);
		d->deliver = NULL;
	}
	if (d->dns) {
		mtad_dns_free(d->dns);
		d->dns = NULL;
	}
	if (d->panic_timer_open) {
		uv_close((uv_handle_t *)&d->panic_timer, NULL);
		d->panic_timer_open = false;
	}
	if (d->role_async_open) {
		uv_close((uv_handle_t *)&d->role_async, NULL);
		d->role_async_open = false;
	}
	if (d->demote_timer_open) {
		uv_close((uv_handle_t *)&d->demote_timer, NULL);
		d->demote_timer_open = false;
	}
	if (d->signals_started) {
		uv_close((uv_handle_t *)&d->sig_term, NULL);
		uv_close((uv_handle_t *)&d->sig_int, NULL);
		uv_close((uv_handle_t *)&d->sig_hup, NULL);
		d->signals_started = false;
	}
}

/* daemon_signal - SIGTERM or SIGINT: stop accepting and wind down. */
static void daemon_signal(uv_signal_t *sig, int signum)
{
	struct daemon *d = sig->data;

	if (d->stopping)
		return;
	mtad_log(MTAD_LOG_INFO, "terminating on signal %d", signum);
	d->stopping = true;
	loops_stop(d, false);
	listen_stop(d);
}

/*
 * auth_block_load - auth_block's names: the setting itself, or the file
 * it names (a value starting with '/'). *list is NULL when none.
 */
static int auth_block_load(const struct mtad_config *cfg, char **list, char *err, size_t errlen)
{
	size_t len;

	*list = NULL;
	if (cfg->auth_block[0] == '\0')
		return 0;
	if (cfg->auth_block[0] == '/')
		return mtad_file_slurp("auth_block", cfg->auth_block, list, &len, err, errlen);
	if (!(*list = strdup(cfg->auth_block))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/*
 * aliases_load - alias_maps' table from its .db (local/local.h). A
 * source file that is not there means no aliases (a warning: mail for
 * root and postmaster then has nowhere to go); a .db missing or older
 * than its source is an error, never a silent use of old aliases.
 */
static int aliases_load(const struct mtad_config *cfg, struct local_aliases **out, char *err,
			size_t errlen)
{
	*out = NULL;
	if (cfg->alias_maps[0] == '\0')
		return 0;
	if (access(cfg->alias_maps, F_OK) != 0 && errno == ENOENT) {
		mtad_log(MTAD_LOG_WARNING, "alias_maps %s: no such file: no aliases (mail for "
			 "postmaster and root has nowhere to go)", cfg->alias_maps);
		return 0;
	}
	*out = local_aliases_load(cfg->alias_maps, err, errlen);
	return *out ? 0 : -1;
}

/* The files mtad.conf names and mtad reads beside it, read together at
 * start, -n and SIGHUP (a bad one keeps the old ones at a reload). */
struct conf_files {
	struct policy_sender_map *senders;	/* sender_login_map, or NULL */
	struct policy_limit_map *limits;	/* send_limit_map, or NULL */
	char *block;				/* auth_block's names, or NULL */
	struct local_aliases *aliases;		/* alias_maps, or NULL */
	struct policy_rcpt_map *rcpts;		/* local_recipient_maps, or NULL */
	struct dkim_keys *dkim;			/* dkim_sign's keys (one reference), or NULL */
};

static void conf_files_free(struct conf_files *lf)
{
	policy_sender_map_free(lf->senders);
	policy_limit_map_free(lf->limits);
	free(lf->block);
	local_aliases_free(lf->aliases);
	policy_rcpt_map_free(lf->rcpts);
	dkim_keys_unref(lf->dkim);
	*lf = (struct conf_files){ 0 };
}

/* conf_files_swap - lf's files become the ones the sessions use, and lf
 * gets those they used (to free once no session can be reading them). */
static void conf_files_swap(struct smtp_shared *sh, struct conf_files *lf)
{
	struct conf_files old = { sh->sender_map, sh->limit_map, sh->auth_block, sh->aliases,
				  sh->rcpt_map, sh->dkim };

	sh->sender_map = lf->senders;
	sh->limit_map = lf->limits;
	sh->auth_block = lf->block;
	sh->aliases = lf->aliases;
	sh->rcpt_map = lf->rcpts;
	sh->dkim = lf->dkim;
	*lf = old;
}

/*
 * dkim_load - every dkim_sign line's key, as the user mtad runs as (so a
 * SIGHUP reads them as the start did: mode 0640, group of `user`). -1
 * with "CONF:LINE: ..." in err: a key that cannot be read stops the
 * start (or keeps the old keys at a reload), it never means unsigned mail.
 */
static int dkim_load(const struct mtad_config *cfg, const char *conf, struct dkim_keys **out,
		     char *err, size_t errlen)
{
	struct dkim_keys *ks;
	char why[MTAD_PATH_MAX + 200];

	*out = NULL;
	if (cfg->ndkim_sign == 0)
		return 0;
	if ((ks = dkim_keys_new()) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < cfg->ndkim_sign; i++) {
		const struct mtad_dkim_sign *l = &cfg->dkim_sign[i];
		enum dkim_alg alg = DKIM_RSA_SHA256;

		if (dkim_alg_parse(l->algorithm, &alg) != 0 ||
		    dkim_keys_add(ks, l->domain, l->selector, l->key_file, alg, why, sizeof(why)) != 0) {
			snprintf(err, errlen, "%s:%d: dkim_sign %s: %s", conf, cfg->dkim_sign_line[i],
				 l->domain, why);
			dkim_keys_unref(ks);
			return -1;
		}
	}
	*out = ks;
	return 0;
}

/* conf_files_load - every one cfg (read from conf) names, read and parsed
 * into *lf; -1 with err (and nothing in *lf) when one cannot be. */
static int conf_files_load(const struct mtad_config *cfg, const char *conf, struct conf_files *lf,
			   char *err, size_t errlen)
{
	char *text = NULL;
	size_t len;

	*lf = (struct conf_files){ 0 };
	if (cfg->sender_login_map[0]) {
		if (mtad_file_slurp("sender_login_map", cfg->sender_login_map, &text, &len, err,
			       errlen) != 0)
			goto fail;
		lf->senders = policy_sender_map_parse(text, len, cfg->sender_login_map, err, errlen);
		free(text);
		if (!lf->senders)
			goto fail;
	}
	if (cfg->send_limit_map[0]) {
		if (mtad_file_slurp("send_limit_map", cfg->send_limit_map, &text, &len, err, errlen) != 0)
			goto fail;
		lf->limits = policy_limit_map_parse(text, len, cfg->send_limit_map, err, errlen);
		free(text);
		if (!lf->limits)
			goto fail;
	}
	if (cfg->local_recipient_maps[0]) {
		if (mtad_file_slurp("local_recipient_maps", cfg->local_recipient_maps, &text, &len, err,
			       errlen) != 0)
			goto fail;
		lf->rcpts = policy_rcpt_map_parse(text, len, cfg->local_recipient_maps, err, errlen);
		free(text);
		if (!lf->rcpts)
			goto fail;
	}
	if (auth_block_load(cfg, &lf->block, err, errlen) == 0 &&
	    aliases_load(cfg, &lf->aliases, err, errlen) == 0 &&
	    dkim_load(cfg, conf, &lf->dkim, err, errlen) == 0)
		return 0;
fail:
	conf_files_free(lf);
	return -1;
}

/* tls_settings_of - the TLS part of the configuration. */
static struct tls_settings tls_settings_of(const struct mtad_config *cfg)
{
	return (struct tls_settings){
		.cert_file = cfg->tls_cert_file, .key_file = cfg->tls_key_file,
		.chain_file = cfg->tls_chain_file, .min_version = cfg->tls_min_version,
		.ciphers = cfg->tls_ciphers, .ciphersuites = cfg->tls_ciphersuites,
	};
}

/*
 * reload_restart_needed - settings read only at start: say so instead of
 * pretending they changed.
 */
static void reload_restart_needed(const struct mtad_config *old, const struct mtad_config *new)
{
	bool listen = old->nlisten != new->nlisten;

	for (size_t i = 0; !listen && i < old->nlisten; i++) {
		const struct mtad_listen *o = &old->listen[i], *n = &new->listen[i];

		listen = strcmp(o->address, n->address) != 0 || o->port != n->port ||
			 o->tls != n->tls || o->submission != n->submission ||
			 o->auth_plaintext != n->auth_plaintext ||
			 o->helo_reject_ehlo != n->helo_reject_ehlo;
	}
	if (listen)
		mtad_log(MTAD_LOG_WARNING, "reload: listen changes take effect after a restart");
	if (strcmp(old->spool_directory, new->spool_directory) != 0 ||
	    strcmp(old->dns_servers, new->dns_servers) != 0 ||
	    strcmp(old->sasl_mechanisms, new->sasl_mechanisms) != 0 ||
	    strcmp(old->sasl_pwcheck_method, new->sasl_pwcheck_method) != 0 ||
	    strcmp(old->sasl_database, new->sasl_database) != 0)
		mtad_log(MTAD_LOG_WARNING, "reload: spool, DNS and SASL changes take effect "
			 "after a restart");
	if (old->loops != new->loops)
		mtad_log(MTAD_LOG_WARNING, "reload: a loops change takes effect after a restart");
	if (strcmp(old->replication_local, new->replication_local) != 0 ||
	    old->nreplication_peers != new->nreplication_peers ||
	    memcmp(old->replication_peers, new->replication_peers, sizeof(old->replication_peers)) != 0 ||
	    old->replication_priority != new->replication_priority ||
	    strcmp(old->replication_ack, new->replication_ack) != 0 ||
	    old->replication_ack_timeout != new->replication_ack_timeout ||
	    strcmp(old->replication_two_site_strict, new->replication_two_site_strict) != 0)
		mtad_log(MTAD_LOG_WARNING, "reload: replication changes take effect after a restart");
	if (strcmp(old->user, new->user) != 0 || strcmp(old->log, new->log) != 0 ||
	    strcmp(old->syslog_socket, new->syslog_socket) != 0 ||
	    strcmp(old->log_tag, new->log_tag) != 0 ||
	    strcmp(old->log_services, new->log_services) != 0)
		mtad_log(MTAD_LOG_WARNING, "reload: user and log changes take effect after a restart");
}

/* daemon_keep_replication - the group this process is in, whatever the file now says. */
static void daemon_keep_replication(struct mtad_config *fresh, const struct mtad_config *old)
{
	memcpy(fresh->replication_local, old->replication_local, sizeof(fresh->replication_local));
	memcpy(fresh->replication_peers, old->replication_peers, sizeof(fresh->replication_peers));
	memcpy(fresh->replication_peer_line, old->replication_peer_line,
	       sizeof(fresh->replication_peer_line));
	fresh->nreplication_peers = old->nreplication_peers;
	fresh->replication_priority = old->replication_priority;
	memcpy(fresh->replication_ack, old->replication_ack, sizeof(fresh->replication_ack));
	fresh->replication_ack_timeout = old->replication_ack_timeout;
	memcpy(fresh->replication_two_site_strict, old->replication_two_site_strict,
	       sizeof(fresh->replication_two_site_strict));
}

/*
 * daemon_reload - SIGHUP: the configuration again (policy, limits,
 * domains, networks) for the next sessions and commands, and the TLS
 * certificate and key for new connections. A file with an error changes
 * nothing. Listeners, spool, resolver and SASL stay as they started.
 */
static void daemon_reload(uv_signal_t *sig, int signum)
{
	struct daemon *d = sig->data;
	struct mtad_config *fresh = malloc(sizeof(*fresh));
	struct conf_files lf = { 0 };
	struct tls_settings set;
	char err[2 * MTAD_PATH_MAX];

	(void)signum;
	if (d->stopping) {
		free(fresh);
		return;		/* the loops are closing down: nothing to reload for */
	}
	if (!fresh || mtad_config_load(fresh, &config_checks, d->config_path, err, sizeof(err)) != 0 ||
	    conf_files_load(fresh, d->config_path, &lf, err, sizeof(err)) != 0) {
		mtad_log(MTAD_LOG_WARNING, "reload: keeping the old configuration: %s",
			 fresh ? err : "out of memory");
		free(fresh);
		return;
	}
	reload_restart_needed(&d->cfg, fresh);
	memcpy(fresh->listen, d->cfg.listen, sizeof(fresh->listen));
	fresh->nlisten = d->cfg.nlisten;
	fresh->listen_configured = d->cfg.listen_configured;
	/* What the process is, not what the file now wishes. */
	memcpy(fresh->user, d->cfg.user, sizeof(fresh->user));
	memcpy(fresh->log, d->cfg.log, sizeof(fresh->log));
	memcpy(fresh->syslog_socket, d->cfg.syslog_socket, sizeof(fresh->syslog_socket));
	memcpy(fresh->log_tag, d->cfg.log_tag, sizeof(fresh->log_tag));
	memcpy(fresh->log_services, d->cfg.log_services, sizeof(fresh->log_services));
	fresh->loops = d->cfg.loops;	/* the loops run as they started */
	daemon_keep_replication(fresh, &d->cfg);
	if (!d->serving) {
		/* A replica has no sessions yet: the settings wait for the day
		 * it serves, which reads the files then. */
		d->cfg = *fresh;
		free(fresh);
		conf_files_free(&lf);
		mtad_log(MTAD_LOG_INFO, "reload: configuration %s loaded; it applies when this "
			 "node becomes master", d->config_path);
		return;
	}
	/* Every worker loop waits between two callbacks while the settings,
	 * the policy and the TLS context are replaced under it. */
	loops_pause(d);
	d->cfg = *fresh;	/* in place: sessions and listeners point into it */
	free(fresh);
	conf_files_swap(&d->shared, &lf);
	for (unsigned i = 0; i < d->nloops; i++) {
		smtp_server_policy_update(&d->loops[i].smtp);
		if (d->loops[i].verify)
			deliver_verify_reload(d->loops[i].verify);
	}
	uv_mutex_lock(&d->limits_lock);
	daemon_fd_limit(d, false);	/* max_connections may have grown */
	uv_mutex_unlock(&d->limits_lock);
	if (d->deliver)
		deliver_reload(d->deliver);
	mtad_log(MTAD_LOG_INFO, "reload: configuration %s loaded (helo_policy = %s)",
		 d->config_path, d->cfg.helo_policy);
	if (d->tls) {
		set = tls_settings_of(&d->cfg);
		if (tls_server_reload(d->tls, &set, err, sizeof(err)) != 0)
			mtad_log(MTAD_LOG_WARNING, "reload: keeping the old certificate: %s", err);
		else
			mtad_log(MTAD_LOG_INFO, "reload: TLS certificate and key loaded from %s",
				 d->cfg.tls_cert_file);
	}
	loops_resume(d);
	/* The old ones: sessions read them only in callbacks. The old DKIM
	 * keys lose the sessions' reference here; a signing job still on
	 * the thread pool holds its own, and the last one frees them. */
	conf_files_free(&lf);
}

/* daemon_signals - the signals the loop listens for. */
static int daemon_signals(struct daemon *d)
{
	uv_signal_t *sigs[] = { &d->sig_term, &d->sig_int, &d->sig_hup };

	signal(SIGPIPE, SIG_IGN);	/* a write to a closed socket is an error, not death */
	for (size_t i = 0; i < 3; i++) {
		sigs[i]->data = d;
		if (uv_signal_init(d->loop, sigs[i]) != 0) {
			while (i-- > 0)
				uv_close((uv_handle_t *)sigs[i], NULL);
			return -1;
		}
	}
	d->signals_started = true;
	if (uv_signal_start(&d->sig_term, daemon_signal, SIGTERM) != 0 ||
	    uv_signal_start(&d->sig_int, daemon_signal, SIGINT) != 0 ||
	    uv_signal_start(&d->sig_hup, daemon_reload, SIGHUP) != 0)
		return -1;
	return 0;
}

/* daemon_needs - see daemon.h. */
void daemon_needs(const struct mtad_config *cfg, bool *tls, bool *auth)
{
	bool mechanisms = strcmp(cfg->sasl_mechanisms, "none") != 0;

	*tls = *auth = false;
	for (size_t i = 0; i < cfg->nlisten; i++) {
		*tls |= cfg->listen[i].tls != MTAD_TLS_NONE;
		*auth |= mechanisms &&
			 (cfg->listen[i].tls != MTAD_TLS_NONE || cfg->listen[i].auth_plaintext);
	}
}

/*
 * daemon_open_security - certificate and SASL, as root and before any
 * listener: a bad key or a missing sasldb stops mtad at start, not at
 * the first client.
 */
static int daemon_open_security(struct daemon *d, char *err, size_t errlen)
{
	struct tls_settings tset = tls_settings_of(&d->cfg);
	struct auth_settings aset = {
		.mechanisms = d->cfg.sasl_mechanisms, .pwcheck_method = d->cfg.sasl_pwcheck_method,
		.sasldb_path = d->cfg.sasl_database, .saslauthd_path = d->cfg.saslauthd_path,
		.service = d->cfg.sasl_service, .hostname = d->cfg.hostname,
		.realm = d->cfg.sasl_realm,
	};
	bool tls, auth;

	daemon_needs(&d->cfg, &tls, &auth);
	if (tls && !(d->tls = tls_server_new(&tset, err, errlen)))
		return -1;
	if (auth && !(d->auth = auth_server_new(&aset, d->loop, err, errlen)))
		return -1;
	if (strcmp(d->cfg.smtp_tls, "none") != 0 &&
	    !(d->tls_client = tls_client_new(d->cfg.smtp_tls_ca_file, err, errlen)))
		return -1;
	/* "none": no lookups at all (tests, and the development runtime). */
	if (strcmp(d->cfg.dns_servers, "none") != 0 &&
	    !(d->dns = mtad_dns_new(d->loop, d->cfg.dns_servers, d->cfg.dns_timeout * 1000, 2,
				    err, errlen)))
		return -1;
	return 0;
}

/* daemon_queue_panic_cb - any thread, inside Berkeley DB: wake the loop. */
static void daemon_queue_panic_cb(void *arg)
{
	struct daemon *d = arg;

	(void)uv_async_send(&d->panic_async);
}

/* daemon_panic_timeout - the orderly stop after a panic hangs (a thread
 * stuck in Berkeley DB): exit anyway, the mail said 250 for is on disk. */
static void daemon_panic_timeout(uv_timer_t *timer)
{
	(void)timer;
	mtad_log(MTAD_LOG_ERROR, "queue: the stop after the Berkeley DB panic did not finish "
		 "in %d s; exiting now with status 1", DAEMON_PANIC_EXIT_MS / 1000);
	mtad_log_hold_stop();
	_exit(1);
}

/*
 * daemon_queue_panic - on the loop, after a Berkeley DB panic: nothing
 * can be queued or delivered any more, so mtad must not sit there
 * answering 451. It stops accepting, says 421 4.3.0 to every session
 * and exits with status 1, so that the service manager restarts it
 * (Restart=on-failure) and the start recovers the queue. Mail already
 * acknowledged with 250 is in the flushed log either way.
 */
static void daemon_queue_panic(uv_async_t *async)
{
	struct daemon *d = async->data;

	d->exit_status = 1;
	if (d->queue_failed)
		return;
	d->queue_failed = true;
	mtad_log(MTAD_LOG_ERROR, "queue: stopping after a Berkeley DB panic; mtad exits with "
		 "status 1 so that it is restarted, and the restart recovers the queue");
	if (uv_timer_init(d->loop, &d->panic_timer) == 0) {
		d->panic_timer_open = true;
		uv_unref((uv_handle_t *)&d->panic_timer);
		(void)uv_timer_start(&d->panic_timer, daemon_panic_timeout, DAEMON_PANIC_EXIT_MS, 0);
	}
	if (d->stopping) {
		loops_stop(d, true);	/* sessions still open say 421 4.3.0 */
		return;
	}
	d->stopping = true;
	loops_stop(d, true);
	listen_stop(d);
}

static void daemon_role(uv_async_t *async);

/* daemon_role_cb - any thread, inside Berkeley DB: the role changed. */
static void daemon_role_cb(void *arg)
{
	struct daemon *d = arg;

	(void)uv_async_send(&d->role_async);
}

/* daemon_replication - the group of the configuration, for queue_open. */
static void daemon_replication(struct daemon *d)
{
	const struct mtad_config *c = &d->cfg;
	struct queue_replication *r = &d->replication;

	d->replicated = c->replication_local[0] != '\0';
	if (!d->replicated)
		return;
	r->local = c->replication_local;
	for (size_t i = 0; i < c->nreplication_peers && i < QUEUE_REPLICATION_PEERS_MAX; i++)
		r->peers[r->npeers++] = c->replication_peers[i];
	r->priority = c->replication_priority;
	r->ack = strcmp(c->replication_ack, "quorum") == 0 ? QUEUE_ACK_QUORUM
	       : strcmp(c->replication_ack, "all_peers") == 0 ? QUEUE_ACK_ALL_PEERS
	       : strcmp(c->replication_ack, "none") == 0 ? QUEUE_ACK_NONE : QUEUE_ACK_ONE;
	r->ack_timeout = c->replication_ack_timeout;
	r->two_site_strict = strcmp(c->replication_two_site_strict, "yes") == 0;
	r->on_role = daemon_role_cb;
	r->on_role_arg = d;
}

/* daemon_open_queue - lock and environment (as the user); in a
 * replication group the role is still to come (daemon_role). */
static int daemon_open_queue(struct daemon *d, char *err, size_t errlen)
{
	struct queue_options qo = {
		.spool_directory = d->cfg.spool_directory,
		.cache_size = d->cfg.db_cache_size,
		.log_buffer_size = d->cfg.db_log_buffer_size,
		.checkpoint_interval = d->cfg.checkpoint_interval,
		.mode = QUEUE_OWNER,
		.on_panic = daemon_queue_panic_cb,
		.on_panic_arg = d,
	};
	int r;

	if (uv_async_init(d->loop, &d->panic_async, daemon_queue_panic) != 0) {
		snprintf(err, errlen, "cannot create the queue panic handle");
		return -1;
	}
	d->panic_async.data = d;
	d->panic_async_open = true;
	uv_unref((uv_handle_t *)&d->panic_async);	/* never keeps the loop alive */
	if (d->replicated) {
		/* Referenced: a replica's loop has nothing else to wait for. */
		if ((r = uv_async_init(d->loop, &d->role_async, daemon_role)) != 0) {
			snprintf(err, errlen, "cannot create the replication role handle: %s",
				 uv_strerror(r));
			return -1;
		}
		d->role_async.data = d;
		d->role_async_open = true;
		qo.replication = &d->replication;
	}
	/* The lock first: holding it, mtad is the one process that may
	 * recover the queue (queue/env.c). */
	if (daemon_lock(d, err, errlen) != 0)
		return -1;
	d->queue = queue_open(&qo, err, errlen);
	if (!d->queue)
		return -1;
	return 0;
}

/* quota_seed_fn - queue_stats_foreach: one sender's recipients of today. */
static int quota_seed_fn(void *arg, const char *key, uint64_t value)
{
	struct smtp_shared *sh = arg;
	struct queue_stats_key k;
	char who[POLICY_QUOTA_KEY_MAX + 1];

	if (queue_stats_key_parse(key, &k) != 0 || k.kind != QUEUE_STATS_SENDER_RCPTS ||
	    k.name_len > POLICY_QUOTA_KEY_MAX)
		return 0;
	snprintf(who, sizeof(who), "%.*s", (int)k.name_len, k.name);
	policy_quota_seed_recipients(sh->quota, who, value, uv_hrtime() / 1000000u);
	return 0;
}

/*
 * quota_seed - the recipients each sender sent today, from the
 * statistics: a restart does not give a stolen login a fresh day.
 * Before any loop runs.
 */
static void quota_seed(struct daemon *d)
{
	char day[QUEUE_STATS_DAY_LEN + 1], prefix[QUEUE_STATS_KEY_MAX + 1];

	if (queue_stats_day(time(NULL), 0, day) < 0)
		return;
	snprintf(prefix, sizeof(prefix), "%s/sender/rcpts/", day);
	if (queue_stats_foreach(d->queue, prefix, quota_seed_fn, &d->shared) != QUEUE_OK)
		mtad_log(MTAD_LOG_WARNING, "cannot read today's recipients per sender: %s "
			 "(the daily quota starts from 0)", queue_strerror(d->queue));
}

/* daemon_open_shared - what every loop's sessions share (the AUTH limiter, counters). */
static int daemon_open_shared(struct daemon *d, char *err, size_t errlen)
{
	struct conf_files lf;

	if (smtp_shared_init(&d->shared, &d->cfg) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	d->shared_open = true;
	quota_seed(d);
	if (conf_files_load(&d->cfg, d->config_path, &lf, err, errlen) != 0)
		return -1;
	conf_files_swap(&d->shared, &lf);	/* lf gets the NULLs smtp_shared_init left */
	return 0;
}

/*
 * daemon_serve - what a node that may write runs: the writer thread,
 * the shared session state, the loops, the free-space watch, delivery,
 * and the listeners' accepting. At start on a single node; in a
 * replication group when this node becomes master.
 */
static int daemon_serve(struct daemon *d, char *err, size_t errlen)
{
	if (d->replicated && queue_open_databases(d->queue, err, errlen) != 0)
		return -1;
	if (queue_writer_start(d->queue, d->loop, err, errlen) != 0)
		return -1;
	d->writer_started = true;
	if (daemon_open_shared(d, err, errlen) != 0 ||
	    loops_start(d, err, errlen) != 0 ||
	    spool_space_start(d, err, errlen) != 0)
		return -1;
	d->deliver = deliver_new(d->loop, &d->cfg, d->queue, d->dns, d->tls_client,
				 &d->loops[0].smtp.ids);
	if (d->deliver == NULL) {
		snprintf(err, errlen, "cannot start delivery");
		return -1;
	}
	if (listen_accept(d, err, errlen) != 0)
		return -1;
	d->serving = true;
	return 0;
}

/* daemon_fail - a start (or a role change) that cannot go on: stop with status 1. */
static void daemon_fail(struct daemon *d, const char *why)
{
	mtad_log(MTAD_LOG_ERROR, "%s", why);
	if (mtad_log_syslog_active())
		fprintf(stderr, "mtad: error: %s\n", why);
	d->exit_status = 1;
	if (d->stopping)
		return;
	d->stopping = true;
	loops_stop(d, false);
	listen_stop(d);
}

/* daemon_demote_timeout - the grace after a demotion is over: still
 * not master, so another node is; stop, the restart joins as replica. */
static void daemon_demote_timeout(uv_timer_t *timer)
{
	struct daemon *d = timer->data;

	if (d->stopping || queue_role(d->queue) == QUEUE_MASTER)
		return;
	daemon_fail(d, "replication: this node is no longer the master: stopping (status 1), "
		    "so that its restart joins the group as a replica");
}

/* daemon_demoted - a serving master lost its role: wait DAEMON_DEMOTE_MS
 * (two masters that meet are both demoted, and the winner of the
 * election that follows is master again within seconds). Meanwhile
 * commits fail (451) and deliveries wait. */
static void daemon_demoted(struct daemon *d)
{
	int r;

	if (!d->demote_timer_open) {
		if ((r = uv_timer_init(d->loop, &d->demote_timer)) != 0) {
			daemon_fail(d, "replication: no longer the master, and no timer to wait for "
				    "the election: stopping (status 1)");
			return;
		}
		d->demote_timer.data = d;
		d->demote_timer_open = true;
	}
	if (uv_is_active((uv_handle_t *)&d->demote_timer))
		return;
	mtad_log(MTAD_LOG_WARNING, "replication: not the master any more: mail gets 451 until "
		 "the election is over (at most %d s, else mtad stops)", DAEMON_DEMOTE_MS / 1000);
	if (uv_timer_start(&d->demote_timer, daemon_demote_timeout, DAEMON_DEMOTE_MS, 0) != 0)
		daemon_demote_timeout(&d->demote_timer);
}

/*
 * daemon_role - on the loop, after a replication event changed the
 * role. Elected master: serve (the queue is delivered from here now;
 * a message the old master was delivering when it died may go out
 * twice, which RFC 5321 §6.1's at-least-once allows). No longer master
 * (another node won while this one was cut off): after a grace for the
 * election, stop with status 1, as after a panic; the restart joins as
 * a replica and takes the master's copy. A replica just waits: its
 * listeners stay closed.
 */
static void daemon_role(uv_async_t *async)
{
	struct daemon *d = async->data;
	enum queue_role role = queue_role(d->queue);
	char err[4 * MTAD_PATH_MAX] = "";

	if (d->stopping)
		return;
	if (role == QUEUE_MASTER && d->serving && d->demote_timer_open &&
	    uv_is_active((uv_handle_t *)&d->demote_timer)) {
		uv_timer_stop(&d->demote_timer);
		mtad_log(MTAD_LOG_INFO, "replication: master again after the election");
		return;
	}
	if (role == QUEUE_FAILED) {
		daemon_fail(d, "replication: the Replication Manager could not start: stopping");
		return;
	}
	if (role == QUEUE_MASTER && !d->serving) {
		if (daemon_serve(d, err, sizeof(err)) != 0) {
			daemon_fail(d, err[0] ? err : "cannot start as master");
			return;
		}
		mtad_log(MTAD_LOG_INFO, "replication: serving as master: accepting mail and "
			 "delivering the queue (a message the previous master was delivering when "
			 "it stopped may be delivered twice)");
	} else if (role != QUEUE_MASTER && role != QUEUE_ELECTING && d->serving) {
		daemon_demoted(d);
	}
}

/*
 * daemon_run - everything between a valid configuration and exit. As
 * root: the descriptor limit, the user's lookup, the key, SASL, the
 * signal handlers, the listeners (bound, but nothing is accepted before
 * the loop runs). Then the switch to the user (privilege.c), and as the
 * user: the queue (so its files are the user's), the writer thread,
 * sessions, delivery, and the loop.
 */
static int daemon_run(struct daemon *d)
{
	char err[4 * MTAD_PATH_MAX] = "";
	int status = 1;

	daemon_fd_limit(d, true);
	daemon_replication(d);	/* d->replicated says when the listeners listen */
	/* Signals before the listeners: a SIGTERM once the port answers
	 * stops mtad cleanly at the loop's first turn, not by default action. */
	if (privilege_plan(&d->cfg, &d->user, err, sizeof(err)) != 0 ||
	    daemon_open_security(d, err, sizeof(err)) != 0 ||
	    daemon_signals(d) != 0 ||
	    listen_start(d, err, sizeof(err)) != 0 ||
	    /* A single node listens at once, as root, as it always did; a
	     * replication group's node once it is master (daemon_serve). */
	    (!d->replicated && listen_accept(d, err, sizeof(err)) != 0) ||
	    privilege_drop(&d->cfg, &d->user, d->tls != NULL, d->auth != NULL,
			   err, sizeof(err)) != 0 ||
	    daemon_open_queue(d, err, sizeof(err)) != 0 ||
	    (!d->replicated && daemon_serve(d, err, sizeof(err)) != 0)) {
		mtad_log(MTAD_LOG_ERROR, "%s", err[0] ? err : "start-up failed");
		if (mtad_log_syslog_active())
			fprintf(stderr, "mtad: error: %s\n", err[0] ? err : "start-up failed");
		d->stopping = true;
		loops_stop(d, false);
		listen_stop(d);
	} else {
		mtad_log(MTAD_LOG_INFO, "daemon started -- version %s, configuration %s",
			 MTAD_VERSION, d->config_path);
		if (d->replicated && queue_role(d->queue) != QUEUE_MASTER)
			mtad_log(MTAD_LOG_INFO, "replication: the listeners stay closed until this "
				 "node is master");
		status = 0;
		if (d->replicated)
			(void)uv_async_send(&d->role_async);	/* a role that came already */
		/* From here on the loop writes its info lines once per
		 * iteration, not one write(2) each (util/log.c). */
		if (mtad_log_hold_start(d->loop) != 0)
			mtad_log(MTAD_LOG_WARNING, "cannot gather log lines: writing each at once");
	}
	uv_run(d->loop, UV_RUN_DEFAULT);
	mtad_log_hold_stop();
	uv_run(d->loop, UV_RUN_DEFAULT);	/* closes the log's prepare handle */
	return status != 0 ? status : d->exit_status;
}

/* daemon_cleanup - releases what daemon_run took (the loop is idle). */
static void daemon_cleanup(struct daemon *d)
{
	loops_join(d);		/* a start that failed half-way: its workers end now */
	loops_free(d);
	if (d->shared_open)
		smtp_shared_fini(&d->shared);
	if (d->auth)
		auth_server_free(d->auth);
	if (d->tls)
		tls_server_free(d->tls);
	if (d->tls_client)
		tls_client_free(d->tls_client);
	if (d->queue)
		queue_close(d->queue);
	/* Only now: until the queue is closed a Berkeley DB thread may
	 * still send to it (daemon_queue_panic_cb). */
	if (d->panic_async_open) {
		uv_close((uv_handle_t *)&d->panic_async, NULL);
		d->panic_async_open = false;
		uv_run(d->loop, UV_RUN_DEFAULT);	/* its close callback */
	}
	if (d->lock_fd >= 0)
		close(d->lock_fd);
	for (size_t b = 0; b < IP_BUCKETS; b++)
		if (d->per_ip[b])
			mtad_log(MTAD_LOG_WARNING, "connection counts left at exit");
	if (d->limits_open)
		uv_mutex_destroy(&d->limits_lock);
	if (uv_loop_close(d->loop) != 0)
		mtad_log(MTAD_LOG_WARNING, "event loop still had handles at exit");
}

/*
 * warn_unrouted - mail for a local domain needs a route to the host that
 * stores it (mtad delivers no mail itself): without one (and without a
 * relayhost) it would be looked up by MX, usually pointing back here.
 */
static void warn_unrouted(const struct mtad_config *cfg, const char *conf)
{
	struct smtp_route routes[MTAD_MAX_ROUTES];
	int line = mtad_config_line(cfg, "local_domains");
	size_t n = 0;
	char err[256];

	for (size_t i = 0; i < cfg->nroutes; i++)
		if (smtp_route_parse(cfg->routes[i], false, &routes[n], err, sizeof(err)) == 0)
			n++;
	for (size_t i = 0; i < cfg->nlocal_domains; i++)
		if (!cfg->relayhost[0] && !smtp_route_lookup(routes, n, NULL, cfg->local_domains[i]))
			fprintf(stderr, "mtad: warning: %s:%d: local domain %s has no route: add "
				"`route = %s [mailstore.example]:25`; until then its mail is "
				"looked up by MX\n", conf, line, cfg->local_domains[i],
				cfg->local_domains[i]);
}

/*
 * warn_unchecked - without local_recipient_maps or recipient_verify,
 * every local part of a local domain is taken at RCPT, and the mailbox
 * server's later 5xx becomes a bounce to a sender who may be forged
 * (backscatter).
 */
static void warn_unchecked(const struct mtad_config *cfg, const char *conf)
{
	int line = mtad_config_line(cfg, "local_domains");

	if (cfg->local_recipient_maps[0] || strcmp(cfg->recipient_verify, "yes") == 0)
		return;
	for (size_t i = 0; i < cfg->nlocal_domains; i++)
		fprintf(stderr, "mtad: warning: %s:%d: local domain %s has no recipient check: "
			"set local_recipient_maps or recipient_verify = yes, or unknown users "
			"are accepted and bounced later (backscatter)\n", conf, line,
			cfg->local_domains[i]);
}

/* report_finding - `mtad -n`: an error or warning of the check, on stderr. */
static void report_finding(void *arg, enum mtad_config_severity sev, const char *msg)
{
	(void)arg;
	fprintf(stderr, "mtad: %s%s\n", sev == MTAD_CONFIG_WARNING ? "warning: " : "", msg);
}

static const struct mtad_config_report stderr_report = { report_finding, NULL };

/*
 * check_config - `mtad -n`: the file (every error, not only the first),
 * then, unless KEYs are named, every file it names (check.c) and the
 * settings that differ from the defaults; with KEYs, their values. 0
 * when valid, 1 after any error.
 */
static int check_config(struct mtad_config *cfg, const char *path, char **keys, size_t nkeys)
{
	int errors = mtad_config_load_all(cfg, &config_checks, &stderr_report, path);
	FILE *f;

	if (nkeys > 0) {
		if (errors > 0)
			return 1;
		return mtad_config_print_keys(cfg, &config_checks, (const char *const *)keys, nkeys,
					      stdout, stderr) > 0 ? 1 : 0;
	}
	/* A file that cannot be read names nothing to check. */
	if ((f = fopen(path, "re")) == NULL)
		return 1;
	fclose(f);
	errors += check_files(cfg, path, &stderr_report);
	warn_unrouted(cfg, path);
	warn_unchecked(cfg, path);
	if (errors > 0) {
		fprintf(stderr, "mtad: %s: %d error%s\n", path, errors, errors == 1 ? "" : "s");
		return 1;
	}
	mtad_config_print_nondefault(cfg, &config_checks, stdout);
	return 0;
}

/* print_defaults - `mtad -d [KEY...]`: no file is read. */
static int print_defaults(char **keys, size_t nkeys)
{
	struct mtad_config def;

	mtad_config_defaults(&def);
	return mtad_config_print_keys(&def, &config_checks, (const char *const *)keys, nkeys,
				      stdout, stderr) > 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct daemon d = { .config_path = DEFAULT_CONFIG, .lock_fd = -1,
			   .connections_gone = connections_gone };
	char err[1024];
	bool check_only = false, defaults = false, log_stderr = false;
	int opt, status;

	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};

	while ((opt = getopt_long(argc, argv, "c:denVh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': d.config_path = optarg; break;
		case 'd': defaults = true; break;
		case 'e': log_stderr = true; break;
		case 'n': check_only = true; break;
		case 'V': printf("mtad %s\n", MTAD_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	/* KEYs belong to -n or -d, and the two do not mix. */
	if ((optind != argc && !check_only && !defaults) || (check_only && defaults)) {
		usage(stderr);
		return 2;
	}
	if (defaults)
		return print_defaults(argv + optind, (size_t)(argc - optind));
	if (check_only)
		return check_config(&d.cfg, d.config_path, argv + optind, (size_t)(argc - optind));
	if (mtad_config_load(&d.cfg, &config_checks, d.config_path, err, sizeof(err)) != 0) {
		fprintf(stderr, "mtad: %s\n", err);
		return 1;
	}
	/* From the first line on: the start-up lines belong with the rest,
	 * under log_tag (the parser checked it, so this cannot fail).
	 * -e: the log on the terminal, for a run by hand (as sshd -e). */
	if (mtad_log_set_tag(d.cfg.log_tag, strcmp(d.cfg.log_services, "yes") == 0) != 0) {
		fprintf(stderr, "mtad: error: bad log_tag \"%s\"\n", d.cfg.log_tag);
		return 1;
	}
	if (!log_stderr && strcmp(d.cfg.log, "syslog") == 0 &&
	    mtad_log_to_syslog(d.cfg.syslog_socket, err, sizeof(err)) != 0) {
		fprintf(stderr, "mtad: error: %s\n", err);
		return 1;
	}
	d.loop = uv_default_loop();
	status = daemon_run(&d);
	daemon_cleanup(&d);
	mtad_log_to_stderr();
	return status;
}
