/*
 * check.c - `mtad -n`: the files a valid-looking configuration names,
 * checked the way the daemon will need them, so that what passes -n
 * also starts. The parser (util/config.c) has already checked the
 * syntax and the rules between settings; this is the I/O part.
 *
 * Stages, as main.c and privilege.c run them:
 *   - as the user who starts mtad (root in production): the user to
 *     switch to, the certificate, key and chain (loaded by tls/, so a
 *     key that does not match its certificate is found), the CA file of
 *     outbound TLS, the spool's owner and mode;
 *   - as `user` (a child process that becomes it, when started as root;
 *     otherwise this process): the spool's use, the sasldb (every login
 *     reads it), the certificate and key again (a SIGHUP reads them),
 *     sender_login_map, send_limit_map, local_recipient_maps,
 *     auth_block's file and the aliases' .db, each parsed by its own
 *     module.
 * Every finding is reported, as "CONF:LINE: what" where LINE is the
 * setting's line (or what made the file needed: a listener offering
 * AUTH for a default sasl_database), "CONF: what (the default)" else.
 *
 * Must not: create, change or lock anything (the spool included: -n
 * may run beside a running mtad), stop at the first finding, run as
 * root past the child's switch, or be used by the running daemon: it
 * blocks (file reads, waitpid), which only the one-shot -n may.
 *
 * Follows: nothing on the wire; the daemon's own start order
 * (mtad/main.c daemon_run, mtad/privilege.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <grp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mtad/daemon.h"

#define CHECK_MSG_MAX 2048
#define CHECK_NSS_BUF 16384
/* A child's exit status carries its error count: keep it below 126. */
#define CHECK_CHILD_ERRORS_MAX 100

/* One run of the checks: where findings go and how many errors so far. */
struct check {
	const struct mtad_config *cfg;
	const char *conf;		/* mtad.conf's path, for CONF:LINE */
	const struct mtad_config_report *report;
	struct daemon_user user;	/* drop: the switch a root start makes */
	const char *who;		/* whose access the user stage checks */
	bool tls, auth;			/* some listener uses TLS / may offer AUTH */
	int errors;
};

/* finding - "CONF:LINE: what" (line 0: "CONF: what") to the report. */
static void finding(struct check *c, enum mtad_config_severity sev, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void finding(struct check *c, enum mtad_config_severity sev, int line, const char *fmt, ...)
{
	char msg[CHECK_MSG_MAX];
	va_list ap;
	int n;

	n = line > 0 ? snprintf(msg, sizeof(msg), "%s:%d: ", c->conf, line)
		     : snprintf(msg, sizeof(msg), "%s: ", c->conf);
	if (n < 0 || (size_t)n >= sizeof(msg))
		n = 0;
	va_start(ap, fmt);
	if (vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap) < 0)
		msg[n] = '\0';
	va_end(ap);
	if (sev == MTAD_CONFIG_ERROR)
		c->errors++;
	c->report->note(c->report->arg, sev, msg);
}

/* line_of - where key was set; else fallback (what made it needed). */
static int line_of(const struct check *c, const char *key, int fallback)
{
	int line = mtad_config_line(c->cfg, key);

	return line > 0 ? line : fallback;
}

/* dflt - " (the default)" for a key the file does not set, for messages. */
static const char *dflt(const struct check *c, const char *key)
{
	return mtad_config_line(c->cfg, key) > 0 ? "" : " (the default)";
}

/* auth_listener_line - the first listener that may offer AUTH, 0 when none. */
static int auth_listener_line(const struct mtad_config *cfg)
{
	for (size_t i = 0; i < cfg->nlisten; i++)
		if (cfg->listen[i].tls != MTAD_TLS_NONE || cfg->listen[i].auth_plaintext)
			return cfg->listen[i].line;
	return 0;
}

/* tls_listener_line - the first listener with starttls or tls, 0 when none. */
static int tls_listener_line(const struct mtad_config *cfg)
{
	for (size_t i = 0; i < cfg->nlisten; i++)
		if (cfg->listen[i].tls != MTAD_TLS_NONE)
			return cfg->listen[i].line;
	return 0;
}

/* readable - can this process open path for reading? 0, or the errno; *mode its bits. */
static int readable(const char *path, mode_t *mode)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK), e;

	*mode = 0;
	if (fd < 0)
		return errno;
	e = fstat(fd, &st) == 0 ? 0 : errno;
	if (e == 0)
		*mode = st.st_mode & 07777;
	if (e == 0 && !S_ISREG(st.st_mode))
		e = EINVAL;
	close(fd);
	return e;
}

/* file_error - a file that cannot be read: its key's line, the path and why. */
static bool file_error(struct check *c, const char *key, const char *path, int fallback)
{
	mode_t mode;
	int e = readable(path, &mode);

	if (e == 0)
		return false;
	finding(c, MTAD_CONFIG_ERROR, line_of(c, key, fallback), "%s %s%s: %s", key, path,
		dflt(c, key), e == EINVAL ? "not a regular file" : strerror(e));
	return true;
}

/* ---- as the user who starts mtad ---- */

/* check_user - the account a root start switches to (privilege_plan's rules). */
static void check_user(struct check *c)
{
	const struct mtad_config *cfg = c->cfg;
	struct passwd pw, *res = NULL;
	char buf[CHECK_NSS_BUF];
	struct group gr, *gres = NULL;
	int line = line_of(c, "user", 0), rc;

	memset(&c->user, 0, sizeof(c->user));
	if (geteuid() != 0)
		return;		/* mtad stays whoever started it */
	if (!cfg->user[0]) {
		finding(c, MTAD_CONFIG_WARNING, line, "user is empty: started as root, mtad keeps "
			"running as root (set user = mtad)");
		return;
	}
	rc = getpwnam_r(cfg->user, &pw, buf, sizeof(buf), &res);
	if (rc != 0 || res == NULL) {
		finding(c, MTAD_CONFIG_ERROR, line, "user %s%s %s: create it (adduser --system "
			"--group --no-create-home --home %s %s) or set user to another account",
			cfg->user, dflt(c, "user"), rc ? strerror(rc) : "does not exist",
			cfg->spool_directory, cfg->user);
		return;
	}
	if (pw.pw_uid == 0) {
		finding(c, MTAD_CONFIG_ERROR, line, "user %s has uid 0: name an unprivileged account",
			cfg->user);
		return;
	}
	c->user.drop = true;
	c->user.uid = pw.pw_uid;
	c->user.gid = pw.pw_gid;
	snprintf(c->user.name, sizeof(c->user.name), "%s", pw.pw_name);
	if (getgrgid_r(pw.pw_gid, &gr, buf, sizeof(buf), &gres) == 0 && gres != NULL)
		snprintf(c->user.group, sizeof(c->user.group), "%s", gr.gr_name);
	else
		snprintf(c->user.group, sizeof(c->user.group), "%lu", (unsigned long)pw.pw_gid);
}

/* tls_error_line - which of the TLS settings tls/'s message is about. */
static int tls_error_line(const struct check *c, const char *why, int fallback)
{
	if (strncmp(why, "key_file", 8) == 0)
		return line_of(c, "tls_key_file", fallback);
	if (strstr(why, "chain") != NULL && c->cfg->tls_chain_file[0])
		return line_of(c, "tls_chain_file", fallback);
	return line_of(c, "tls_cert_file", fallback);
}

/* check_tls_server - the certificate, key and chain as the daemon loads them at start. */
static void check_tls_server(struct check *c)
{
	const struct mtad_config *cfg = c->cfg;
	struct tls_settings set = {
		.cert_file = cfg->tls_cert_file, .key_file = cfg->tls_key_file,
		.chain_file = cfg->tls_chain_file, .min_version = cfg->tls_min_version,
		.ciphers = cfg->tls_ciphers, .ciphersuites = cfg->tls_ciphersuites,
	};
	int fallback = tls_listener_line(cfg);
	struct tls_server *srv;
	char why[1024];
	bool missing = false;

	/* Unset files are the parser's error already. */
	if (!cfg->tls_cert_file[0] || !cfg->tls_key_file[0])
		return;
	missing |= file_error(c, "tls_cert_file", cfg->tls_cert_file, fallback);
	missing |= file_error(c, "tls_key_file", cfg->tls_key_file, fallback);
	if (cfg->tls_chain_file[0])
		missing |= file_error(c, "tls_chain_file", cfg->tls_chain_file, fallback);
	if (missing)
		return;
	/* tls/ loads them as the start does: a bad PEM or a key that does
	 * not match its certificate is found here, not at the first client. */
	srv = tls_server_new(&set, why, sizeof(why));
	if (srv == NULL)
		finding(c, MTAD_CONFIG_ERROR, tls_error_line(c, why, fallback), "%s", why);
	else
		tls_server_free(srv);
}

/* check_tls_client - outbound TLS's CA file, loaded at start. */
static void check_tls_client(struct check *c)
{
	const struct mtad_config *cfg = c->cfg;
	struct tls_client *cli;
	char why[1024];

	if (strcmp(cfg->smtp_tls, "none") == 0)
		return;
	if (cfg->smtp_tls_ca_file[0] &&
	    file_error(c, "smtp_tls_ca_file", cfg->smtp_tls_ca_file, 0))
		return;
	cli = tls_client_new(cfg->smtp_tls_ca_file, why, sizeof(why));
	if (cli == NULL)
		finding(c, MTAD_CONFIG_ERROR, line_of(c, "smtp_tls_ca_file", line_of(c, "smtp_tls", 0)),
			"%s", why);
	else
		tls_client_free(cli);
}

/* check_spool_owner - a root start: the spool exists, is the user's, not open to writes by all. */
static void check_spool_owner(struct check *c)
{
	const char *spool = c->cfg->spool_directory;
	int line = line_of(c, "spool_directory", 0);
	struct stat st;

	if (stat(spool, &st) != 0 && errno == ENOENT) {
		finding(c, MTAD_CONFIG_ERROR, line, "spool_directory %s%s does not exist; create it: "
			"install -d -o %s -g %s -m 0700 %s", spool, dflt(c, "spool_directory"),
			c->user.name, c->user.group, spool);
	} else if (errno = 0, stat(spool, &st) != 0) {
		finding(c, MTAD_CONFIG_ERROR, line, "spool_directory %s: %s", spool, strerror(errno));
	} else if (!S_ISDIR(st.st_mode)) {
		finding(c, MTAD_CONFIG_ERROR, line, "spool_directory %s is not a directory", spool);
	} else if (st.st_uid != c->user.uid) {
		finding(c, MTAD_CONFIG_ERROR, line, "spool_directory %s is not owned by user %s; "
			"run: chown -R %s:%s %s && chmod 0700 %s", spool, c->user.name,
			c->user.name, c->user.group, spool, spool);
	} else if (st.st_mode & S_IWOTH) {
		finding(c, MTAD_CONFIG_ERROR, line, "spool_directory %s is writable by every user "
			"(mode %04o); run: chmod 0700 %s", spool, (unsigned)(st.st_mode & 07777), spool);
	}
}

/* ---- as `user` ---- */

/* check_spool_use - the user can use the spool, or create it (the queue makes a missing one). */
static void check_spool_use(struct check *c)
{
	const char *spool = c->cfg->spool_directory;
	int line = line_of(c, "spool_directory", 0);
	char parent[MTAD_PATH_MAX];
	char *slash;
	struct stat st;

	if (stat(spool, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			finding(c, MTAD_CONFIG_ERROR, line, "spool_directory %s is not a directory", spool);
		else if (access(spool, R_OK | W_OK | X_OK) != 0)
			finding(c, MTAD_CONFIG_ERROR, line, "spool_directory %s: user %s cannot use it "
				"(%s)", spool, c->who, strerror(errno));
		return;
	}
	snprintf(parent, sizeof(parent), "%s", spool);
	slash = strrchr(parent, '/');
	if (slash != NULL)
		*(slash == parent ? slash + 1 : slash) = '\0';
	if (errno != ENOENT || access(parent, W_OK | X_OK) != 0)
		finding(c, MTAD_CONFIG_ERROR, line, "spool_directory %s%s does not exist, and user "
			"%s cannot create it in %s (%s)", spool, dflt(c, "spool_directory"), c->who,
			parent, strerror(errno));
}

/* check_sasl - what libsasl2 opens as the user at every login. */
static void check_sasl(struct check *c)
{
	const struct mtad_config *cfg = c->cfg;
	int fallback = auth_listener_line(cfg);
	mode_t mode;
	int e;

	if (strcmp(cfg->sasl_pwcheck_method, "saslauthd") == 0) {
		/* saslauthd may start after mtad: the daemon only warns too. */
		if (access(cfg->saslauthd_path, W_OK) != 0)
			finding(c, MTAD_CONFIG_WARNING, line_of(c, "saslauthd_path", fallback),
				"saslauthd_path %s: user %s cannot reach it (%s): is saslauthd "
				"running, and is %s in group sasl?", cfg->saslauthd_path, c->who,
				strerror(errno), c->who);
		return;
	}
	e = readable(cfg->sasl_database, &mode);
	if (e != 0)
		finding(c, MTAD_CONFIG_ERROR, line_of(c, "sasl_database", fallback),
			"sasl_database %s%s is not readable by user %s (%s): every AUTH would fail%s",
			cfg->sasl_database, dflt(c, "sasl_database"), c->who, strerror(e),
			e == ENOENT ? "; create it with saslpasswd2 -f FILE" : "");
	else if (mode & S_IROTH)
		finding(c, MTAD_CONFIG_WARNING, line_of(c, "sasl_database", fallback),
			"sasl_database %s can be read by every user (mode %04o): chmod 0640 %s",
			cfg->sasl_database, (unsigned)mode, cfg->sasl_database);
}

/* check_tls_reload - the certificate and key as a SIGHUP reads them, as the user: warnings. */
static void check_tls_reload(struct check *c)
{
	const struct mtad_config *cfg = c->cfg;
	const char *keys[] = { "tls_cert_file", "tls_chain_file", "tls_key_file" };
	const char *paths[] = { cfg->tls_cert_file, cfg->tls_chain_file, cfg->tls_key_file };
	mode_t mode;
	int e;

	for (size_t i = 0; i < 3; i++) {
		if (!paths[i][0])
			continue;
		e = readable(paths[i], &mode);
		if (e != 0)
			finding(c, MTAD_CONFIG_WARNING, line_of(c, keys[i], 0), "%s %s is not readable "
				"by user %s (%s): it is read as root at start, but a reload (SIGHUP) "
				"cannot load a renewed one; run: chown root:%s %s && chmod 0640 %s",
				keys[i], paths[i], c->who, strerror(e), c->user.group, paths[i], paths[i]);
		else if (i == 2 && (mode & S_IROTH))
			finding(c, MTAD_CONFIG_WARNING, line_of(c, keys[i], 0), "tls_key_file %s can "
				"be read by every user (mode %04o): chmod 0640 %s", paths[i],
				(unsigned)mode, paths[i]);
	}
}

/* The maps the daemon reads and parses as the user (start, SIGHUP). */
enum check_map_kind { MAP_SENDERS, MAP_LIMITS, MAP_RECIPIENTS };

/* parse_map - the module's own parser on text: NULL with why; frees what it built. */
static bool parse_map(enum check_map_kind kind, const char *text, size_t len, const char *path,
		      char *why, size_t whylen)
{
	struct policy_sender_map *senders;
	struct policy_limit_map *limits;
	struct policy_rcpt_map *rcpts;

	switch (kind) {
	case MAP_SENDERS:
		senders = policy_sender_map_parse(text, len, path, why, whylen);
		policy_sender_map_free(senders);
		return senders != NULL;
	case MAP_LIMITS:
		limits = policy_limit_map_parse(text, len, path, why, whylen);
		policy_limit_map_free(limits);
		return limits != NULL;
	case MAP_RECIPIENTS:
		rcpts = policy_rcpt_map_parse(text, len, path, why, whylen);
		policy_rcpt_map_free(rcpts);
		return rcpts != NULL;
	}
	return false;
}

/* check_map - a map file: readable by the user, and its parser's errors (they name its own lines). */
static void check_map(struct check *c, const char *key, const char *path, enum check_map_kind kind)
{
	char why[1024], *text;
	size_t len;
	bool ok;

	if (!path[0] || file_error(c, key, path, 0))
		return;
	if (mtad_file_slurp(key, path, &text, &len, why, sizeof(why)) != 0) {
		finding(c, MTAD_CONFIG_ERROR, line_of(c, key, 0), "%s", why);
		return;
	}
	ok = parse_map(kind, text, len, path, why, sizeof(why));
	free(text);
	if (!ok)
		finding(c, MTAD_CONFIG_ERROR, line_of(c, key, 0), "%s: %s", key, why);
}

/* check_lists - auth_block's file and the aliases, as main.c loads them. */
static void check_lists(struct check *c)
{
	const struct mtad_config *cfg = c->cfg;
	struct local_aliases *aliases;
	char why[1024];

	if (cfg->auth_block[0] == '/')
		(void)file_error(c, "auth_block", cfg->auth_block, 0);
	if (!cfg->alias_maps[0])
		return;
	if (access(cfg->alias_maps, F_OK) != 0 && errno == ENOENT) {
		finding(c, MTAD_CONFIG_WARNING, line_of(c, "alias_maps", 0), "alias_maps %s%s: no "
			"such file: no aliases (mail for postmaster and root has nowhere to go)",
			cfg->alias_maps, dflt(c, "alias_maps"));
		return;
	}
	aliases = local_aliases_load(cfg->alias_maps, why, sizeof(why));
	if (aliases == NULL)
		finding(c, MTAD_CONFIG_ERROR, line_of(c, "alias_maps", 0), "alias_maps%s: %s",
			dflt(c, "alias_maps"), why);
	local_aliases_free(aliases);
}

/* check_dkim - every dkim_sign key, loaded as the daemon loads it (as
 * `user`, at start and SIGHUP): unreadable, not PEM, or not of its
 * algorithm is an error at the line. */
static void check_dkim(struct check *c)
{
	const struct mtad_config *cfg = c->cfg;
	char why[MTAD_PATH_MAX + 200];

	for (size_t i = 0; i < cfg->ndkim_sign; i++) {
		const struct mtad_dkim_sign *l = &cfg->dkim_sign[i];
		struct dkim_keys *ks = dkim_keys_new();
		enum dkim_alg alg = DKIM_RSA_SHA256;

		if (ks == NULL || dkim_alg_parse(l->algorithm, &alg) != 0 ||
		    dkim_keys_add(ks, l->domain, l->selector, l->key_file, alg, why, sizeof(why)) != 0)
			finding(c, MTAD_CONFIG_ERROR, cfg->dkim_sign_line[i], "dkim_sign %s: %s",
				l->domain, ks ? why : "out of memory");
		dkim_keys_unref(ks);
	}
}

/* check_as_user - everything the daemon opens once it is `user` (or stays who it is). */
static void check_as_user(struct check *c)
{
	check_spool_use(c);
	check_dkim(c);
	if (c->auth)
		check_sasl(c);
	if (c->tls && c->user.drop)
		check_tls_reload(c);
	check_map(c, "sender_login_map", c->cfg->sender_login_map, MAP_SENDERS);
	check_map(c, "send_limit_map", c->cfg->send_limit_map, MAP_LIMITS);
	check_map(c, "local_recipient_maps", c->cfg->local_recipient_maps, MAP_RECIPIENTS);
	check_lists(c);
}

/*
 * check_in_child - a root start: the user stage in a child that becomes
 * the user, as the daemon does, so that groups and ACLs count exactly.
 * The child reports to the same stream and exits with its error count.
 */
static void check_in_child(struct check *c)
{
	char why[512];
	pid_t pid;
	int status;

	/* What the parent buffered must not be written twice. */
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		finding(c, MTAD_CONFIG_ERROR, 0, "cannot check the files as user %s: fork: %s",
			c->who, strerror(errno));
		return;
	}
	if (pid == 0) {
		c->errors = 0;
		if (privilege_become(&c->user, why, sizeof(why)) != 0)
			finding(c, MTAD_CONFIG_ERROR, line_of(c, "user", 0), "%s", why);
		else
			check_as_user(c);
		fflush(stderr);
		fflush(stdout);
		_exit(c->errors > CHECK_CHILD_ERRORS_MAX ? CHECK_CHILD_ERRORS_MAX : c->errors);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			finding(c, MTAD_CONFIG_ERROR, 0, "waitpid: %s", strerror(errno));
			return;
		}
	if (WIFEXITED(status))
		c->errors += WEXITSTATUS(status);
	else
		finding(c, MTAD_CONFIG_ERROR, 0, "the check as user %s ended by signal %d",
			c->who, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* check_files - see daemon.h. */
int check_files(const struct mtad_config *cfg, const char *conf,
		const struct mtad_config_report *report)
{
	struct check c = { .cfg = cfg, .conf = conf, .report = report };
	struct passwd pw, *res = NULL;
	char buf[CHECK_NSS_BUF];

	daemon_needs(cfg, &c.tls, &c.auth);
	check_user(&c);
	if (c.user.drop)
		c.who = c.user.name;
	else if (getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
		c.who = pw.pw_name;
	else
		c.who = "(this user)";
	if (c.tls)
		check_tls_server(&c);
	check_tls_client(&c);
	if (c.user.drop) {
		check_spool_owner(&c);
		check_in_child(&c);
	} else {
		check_as_user(&c);
	}
	return c.errors;
}
