/*
 * privilege.c - mtad's switch from root to the unprivileged `user` of
 * mtad.conf, and the checks that make the switch safe.
 *
 * mtad starts as root only to bind ports below 1024 and to read the TLS
 * key; before it opens the spool or reads a byte from the network it
 * becomes `user` (the user's groups from /etc/group, so that membership
 * in `sasl` reaches saslauthd's socket; then the gid, then the uid) and
 * checks that root cannot come back. The queue is opened afterwards, so
 * every file in the spool is created by the user, never by root.
 *
 * Around the switch it checks what the user will need and says the exact
 * command that fixes it: the spool must be the user's (and not open to
 * everyone), the sasldb readable by it (libsasl2 opens it for every
 * login), the TLS key readable by it for a reload (a warning: the key in
 * use is loaded already).
 *
 * Must not: leave mtad running as root because something went wrong
 * (every failure stops the start), switch while another thread runs (it
 * runs before the queue writer and libuv's thread pool exist), or look
 * at anything from the network. Started by an ordinary user (the tests,
 * `make run`), mtad stays that user and checks nothing here.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mtad/daemon.h"

#define NSS_BUF 16384	/* getpwnam_r/getgrgid_r scratch; ample for one entry */
#define MAX_GROUPS 256	/* groups listed in the log line */

/* user_name_of - the login name of uid, or the number as text. */
static void user_name_of(uid_t uid, char *out, size_t outlen)
{
	struct passwd pw, *res = NULL;
	char buf[NSS_BUF];

	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
		snprintf(out, outlen, "%s", pw.pw_name);
	else
		snprintf(out, outlen, "%lu", (unsigned long)uid);
}

/* group_name_of - the name of gid, or the number as text. */
static void group_name_of(gid_t gid, char *out, size_t outlen)
{
	struct group gr, *res = NULL;
	char buf[NSS_BUF];

	if (getgrgid_r(gid, &gr, buf, sizeof(buf), &res) == 0 && res != NULL)
		snprintf(out, outlen, "%s", gr.gr_name);
	else
		snprintf(out, outlen, "%lu", (unsigned long)gid);
}

/* privilege_plan - see daemon.h. */
int privilege_plan(const struct mtad_config *cfg, struct daemon_user *u, char *err, size_t errlen)
{
	struct passwd pw, *res = NULL;
	char buf[NSS_BUF], me[64];
	int rc;

	memset(u, 0, sizeof(*u));
	if (geteuid() != 0) {
		if (cfg->user[0]) {
			user_name_of(geteuid(), me, sizeof(me));
			mtad_log(MTAD_LOG_INFO, "not started as root: running as %s (uid %lu); "
				 "user = %s applies only to a start as root", me,
				 (unsigned long)geteuid(), cfg->user);
		}
		return 0;
	}
	if (!cfg->user[0]) {
		mtad_log(MTAD_LOG_WARNING, "user is empty in the configuration: mtad keeps "
			 "running as root (set user = mtad)");
		return 0;
	}
	rc = getpwnam_r(cfg->user, &pw, buf, sizeof(buf), &res);
	if (rc != 0) {
		snprintf(err, errlen, "cannot look up user %s: %s", cfg->user, strerror(rc));
		return -1;
	}
	if (res == NULL) {
		snprintf(err, errlen, "user %s does not exist, and mtad will not keep running "
			 "as root: create it (adduser --system --group --no-create-home --home %s %s) "
			 "or set user to another account", cfg->user, cfg->spool_directory,
			 cfg->user);
		return -1;
	}
	if (pw.pw_uid == 0) {
		snprintf(err, errlen, "user %s has uid 0: name an unprivileged account "
			 "(mtad will not serve the network as root)", cfg->user);
		return -1;
	}
	u->drop = true;
	u->uid = pw.pw_uid;
	u->gid = pw.pw_gid;
	snprintf(u->name, sizeof(u->name), "%s", pw.pw_name);
	group_name_of(pw.pw_gid, u->group, sizeof(u->group));
	return 0;
}

/*
 * spool_before - as root: the spool exists, is a directory of the user's
 * and not writable by everyone. Only stat(2): root needs no capability
 * to look, and the unit gives it none (CAP_DAC_OVERRIDE).
 */
static int spool_before(const char *spool, const struct daemon_user *u, char *err, size_t errlen)
{
	struct stat st;
	char owner[64];

	if (stat(spool, &st) != 0) {
		if (errno == ENOENT)
			snprintf(err, errlen, "spool directory %s does not exist; create it: "
				 "install -d -o %s -g %s -m 0700 %s", spool, u->name, u->group, spool);
		else
			snprintf(err, errlen, "spool directory %s: %s", spool, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "spool directory %s is not a directory", spool);
		return -1;
	}
	if (st.st_uid != u->uid) {
		user_name_of(st.st_uid, owner, sizeof(owner));
		snprintf(err, errlen, "spool directory %s is owned by %s, not by %s; run: "
			 "chown -R %s:%s %s && chmod 0700 %s", spool, owner, u->name,
			 u->name, u->group, spool, spool);
		return -1;
	}
	if (st.st_mode & S_IWOTH) {
		snprintf(err, errlen, "spool directory %s is writable by every user (mode %04o); "
			 "run: chmod 0700 %s", spool, (unsigned)(st.st_mode & 07777), spool);
		return -1;
	}
	if (st.st_mode & S_IRWXO)
		mtad_log(MTAD_LOG_WARNING, "spool directory %s is open to every user (mode %04o): "
			 "chmod 0700 %s", spool, (unsigned)(st.st_mode & 07777), spool);
	return 0;
}

/* spool_after - as the user: it can use the spool, and every file in it is its own. */
static int spool_after(const char *spool, const struct daemon_user *u, char *err, size_t errlen)
{
	struct dirent *e;
	struct stat st;
	char owner[64];
	DIR *dir;
	int rc = 0;

	if (access(spool, R_OK | W_OK | X_OK) != 0 || (dir = opendir(spool)) == NULL) {
		snprintf(err, errlen, "user %s cannot use spool directory %s: %s (the directory "
			 "and each one above it must be open to %s)", u->name, spool,
			 strerror(errno), u->name);
		return -1;
	}
	/* Files root made (an mtad run as root, db_recover as root) would
	 * fail later, one by one, with less helpful messages. */
	while (rc == 0 && (errno = 0, e = readdir(dir)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			snprintf(err, errlen, "%s/%s: %s", spool, e->d_name, strerror(errno));
			rc = -1;
		} else if (st.st_uid != u->uid) {
			user_name_of(st.st_uid, owner, sizeof(owner));
			snprintf(err, errlen, "%s/%s is owned by %s, not by %s; run: chown -R %s:%s %s",
				 spool, e->d_name, owner, u->name, u->name, u->group, spool);
			rc = -1;
		}
	}
	if (rc == 0 && errno != 0) {
		snprintf(err, errlen, "reading spool directory %s: %s", spool, strerror(errno));
		rc = -1;
	}
	if (closedir(dir) != 0 && rc == 0) {
		snprintf(err, errlen, "closing spool directory %s: %s", spool, strerror(errno));
		rc = -1;
	}
	return rc;
}

/*
 * readable - can the user (we are it now) open path for reading? 0, or
 * the errno. *mode gets the file's permission bits when it can.
 */
static int readable(const char *path, mode_t *mode)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY), e;

	if (fd < 0)
		return errno;
	e = fstat(fd, &st) == 0 ? 0 : errno;
	*mode = e == 0 ? st.st_mode & 07777 : 0;
	close(fd);
	return e;
}

/* tls_after - the certificate files again, as a reload (SIGHUP) will read them. */
static void tls_after(const struct mtad_config *cfg, const struct daemon_user *u)
{
	const char *certs[] = { cfg->tls_cert_file, cfg->tls_chain_file };
	mode_t mode;
	int e;

	for (size_t i = 0; i < 2; i++)
		if (certs[i][0] && (e = readable(certs[i], &mode)) != 0)
			mtad_log(MTAD_LOG_WARNING, "%s is not readable by user %s (%s): a reload "
				 "(SIGHUP) cannot load a renewed certificate; run: chmod 0644 %s",
				 certs[i], u->name, strerror(e), certs[i]);
	if ((e = readable(cfg->tls_key_file, &mode)) != 0)
		mtad_log(MTAD_LOG_WARNING, "tls_key_file %s is not readable by user %s (%s): "
			 "a reload (SIGHUP) cannot load a renewed key; run: chown root:%s %s && "
			 "chmod 0640 %s", cfg->tls_key_file, u->name, strerror(e), u->group,
			 cfg->tls_key_file, cfg->tls_key_file);
	else if (mode & S_IROTH)
		mtad_log(MTAD_LOG_WARNING, "tls_key_file %s can be read by every user (mode %04o): "
			 "chmod 0640 %s", cfg->tls_key_file, (unsigned)mode, cfg->tls_key_file);
}

/* sasl_after - what libsasl2 opens for each login must be open to the user. */
static int sasl_after(const struct mtad_config *cfg, const struct daemon_user *u,
		      char *err, size_t errlen)
{
	const char *db = cfg->sasl_database, *sock = cfg->saslauthd_path;
	mode_t mode;
	int e;

	if (strcmp(cfg->sasl_pwcheck_method, "saslauthd") == 0) {
		/* saslauthd may start after mtad: a warning, not a refusal. */
		e = access(sock, W_OK) == 0 ? 0 : errno;
		if (e == ENOENT)
			mtad_log(MTAD_LOG_WARNING, "the saslauthd socket %s does not exist "
				 "(is saslauthd running?)", sock);
		else if (e != 0)
			mtad_log(MTAD_LOG_WARNING, "user %s cannot reach the saslauthd socket %s "
				 "(%s): every AUTH will fail; run: adduser %s sasl, then restart mtad",
				 u->name, sock, strerror(e), u->name);
		return 0;
	}
	if ((e = readable(db, &mode)) != 0) {
		snprintf(err, errlen, "sasl_database %s is not readable by user %s (%s): every "
			 "AUTH would fail; run: chown root:%s %s && chmod 0640 %s",
			 db, u->name, strerror(e), u->group, db, db);
		return -1;
	}
	if (mode & S_IROTH)
		mtad_log(MTAD_LOG_WARNING, "sasl_database %s can be read by every user (mode %04o): "
			 "chmod 0640 %s", db, (unsigned)mode, db);
	return 0;
}

/* groups_text - the process's groups as "112,45" for the log. */
static void groups_text(char *out, size_t outlen)
{
	gid_t groups[MAX_GROUPS];
	int n = getgroups(MAX_GROUPS, groups);
	size_t len = 0;

	out[0] = '\0';
	for (int i = 0; i < n && len < outlen; i++) {
		int r = snprintf(out + len, outlen - len, "%s%lu", i ? "," : "",
				 (unsigned long)groups[i]);

		if (r < 0)
			break;
		len += (size_t)r;
	}
	if (n < 0)
		snprintf(out, outlen, "unknown: %s", strerror(errno));
}

/* switch_user - groups, gid, uid; then proof that root is gone for good. */
static int switch_user(const struct daemon_user *u, char *err, size_t errlen)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (initgroups(u->name, u->gid) != 0) {
		snprintf(err, errlen, "initgroups %s: %s", u->name, strerror(errno));
		return -1;
	}
	/* As root, setgid and setuid set the real, effective and saved ids. */
	if (setgid(u->gid) != 0) {
		snprintf(err, errlen, "setgid %lu: %s", (unsigned long)u->gid, strerror(errno));
		return -1;
	}
	if (setuid(u->uid) != 0) {
		snprintf(err, errlen, "setuid %lu: %s", (unsigned long)u->uid, strerror(errno));
		return -1;
	}
	if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0 ||
	    ru != u->uid || eu != u->uid || su != u->uid ||
	    rg != u->gid || eg != u->gid || sg != u->gid) {
		snprintf(err, errlen, "switching to user %s did not take", u->name);
		return -1;
	}
	if (setuid(0) == 0 || setgid(0) == 0) {
		snprintf(err, errlen, "switching to user %s did not hold: root came back", u->name);
		return -1;
	}
	return 0;
}

/* privilege_become - see daemon.h. */
int privilege_become(const struct daemon_user *u, char *err, size_t errlen)
{
	return switch_user(u, err, errlen);
}

/* privilege_drop - see daemon.h. */
int privilege_drop(const struct mtad_config *cfg, const struct daemon_user *u, bool tls,
		   bool auth, char *err, size_t errlen)
{
	char groups[512];

	if (!u->drop)
		return 0;
	if (spool_before(cfg->spool_directory, u, err, errlen) != 0 ||
	    switch_user(u, err, errlen) != 0)
		return -1;
	groups_text(groups, sizeof(groups));
	mtad_log(MTAD_LOG_INFO, "running as user %s (uid %lu, gid %lu, groups %s)", u->name,
		 (unsigned long)u->uid, (unsigned long)u->gid, groups);
	if (spool_after(cfg->spool_directory, u, err, errlen) != 0 ||
	    (auth && sasl_after(cfg, u, err, errlen) != 0))
		return -1;
	if (tls)
		tls_after(cfg, u);
	return 0;
}
