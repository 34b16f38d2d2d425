/*
 * sasl.c - the server side of SMTP AUTH on Cyrus libsasl2: settings,
 * the process-wide library set-up, and exchanges whose password checks
 * (sasldb reads, saslauthd round trips) run on libuv's thread pool.
 *
 * Must not: block the loop thread on a password check; touch one
 * sasl_conn_t from two threads at once (one step in flight per exchange,
 * a second is refused); let libsasl2 read a system-wide configuration
 * file (/etc/sasl2/mtad.conf, SASL_CONF_PATH, ...) - every option comes
 * from struct auth_settings through our getopt callback, and our
 * verifyfile callback refuses every SASL_VRFY_CONF file; offer anything
 * but PLAIN and LOGIN (CRAM-MD5, DIGEST-MD5 and SCRAM need secrets the
 * server can use like a password; AUTH is only offered under TLS, so the
 * plaintext mechanisms are the safer choice); log a password, or the
 * names a failed attempt typed (authcid, authzid): people type their
 * password into the user field. Only a successful login's user is
 * handed back; libsasl2's own lines and reasons are cleared of the
 * typed names before anyone sees them (redact_typed).
 *
 * User names: sasl_server_new gets the realm (the host name when the
 * realm is ""), and libsasl2 then both looks "alice" up as alice in that
 * realm and reports her as "alice@realm" - that full form is what
 * AUTH_SUCCESS carries. A client may also say "alice@realm" itself.
 *
 * One auth_server per process at a time: libsasl2 keeps its plugin list,
 * callbacks and mutex functions in process-wide state, so one atomic
 * flag (the only static of ours) refuses a second auth_server_new until
 * the first is freed.
 *
 * Follows: RFC 4954 (SMTP AUTH), RFC 4616 (PLAIN: authzid NUL authcid
 * NUL passwd), draft-murchison-sasl-login (LOGIN: "Username:" then
 * "Password:").
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sasl/sasl.h>

#include "auth/auth_int.h"
#include "util/util.h"

#define AUTH_APPNAME "mtad"	/* libsasl2's appname: names the (refused) mtad.conf */
#define AUTH_MECHS_MAX 16	/* "PLAIN LOGIN" */
#define AUTH_NAME_MAX 256	/* service, host name, realm */
#define AUTH_CLAIM_MAX 255	/* authcid, authzid: libsasl2 canonicalises into 256 */
#define AUTH_USER_MAX 256	/* longer user names are refused */
#define AUTH_REASON_MAX 384
#define AUTH_NOTE_MAX 128

/* libsasl2 keeps callbacks as int (*)(void); void (*)(void) converts cleanly. */
#define AUTH_CB(f) ((int (*)(void))(void (*)(void))(f))

/* libsasl2 is process-wide: at most one auth_server at a time. */
static atomic_bool sasl_taken;

struct auth_server {
	uv_loop_t *loop;
	char mechanisms[AUTH_MECHS_MAX];	/* canonical, "PLAIN LOGIN" */
	bool auxprop;			/* pwcheck_method auxprop, else saslauthd */
	char sasldb_path[PATH_MAX];
	char saslauthd_path[PATH_MAX];
	char service[AUTH_NAME_MAX];
	char hostname[AUTH_NAME_MAX];
	char realm[AUTH_NAME_MAX];	/* hostname when configured as "" */
	sasl_callback_t callbacks[4];	/* libsasl2 keeps a pointer: lives here */
	atomic_size_t nexchanges;	/* auth_server_free refuses while > 0; any loop */
};

/* One start or step on the thread pool: inputs, then results. */
struct auth_job {
	uv_work_t req;
	struct auth_exchange *ex;
	bool start;
	char mech[AUTH_MECHS_MAX];
	bool has_response;
	bool name_too_long;	/* refused before libsasl2 sees it */
	unsigned len;
	auth_done_cb cb;
	void *arg;
	/* Written by the worker, read in job_done after the work. */
	int rc;
	char *challenge;
	size_t challenge_len;
	char user[AUTH_USER_MAX];
	char reason[AUTH_REASON_MAX];
	char note[AUTH_NOTE_MAX];	/* libsasl2's last SASL_LOG_FAIL line */
	uv_thread_t worker;
	char response[];	/* len bytes, a private copy */
};

struct auth_exchange {
	struct auth_server *srv;
	uv_loop_t *loop;	/* the session's: job_done runs there */
	sasl_conn_t *conn;
	bool used;		/* conn has seen a start: next start gets a fresh one */
	bool login;		/* LOGIN, else PLAIN */
	bool want_user;		/* LOGIN: the last challenge was "Username:" */
	char user[AUTH_USER_MAX];	/* the authcid being tried: kept out of logs */
	char authzid[AUTH_USER_MAX];	/* PLAIN's authzid being tried: the same */
	struct auth_job *job;	/* in flight, or NULL */
	uv_thread_t worker;	/* ran the last finished step (test hook) */
	sasl_callback_t callbacks[2];	/* the conn's own log callback */
};

/* ---- settings ---- */

/* copy_setting - copies a required setting into dst; -1 with a message when empty or too long. */
static int copy_setting(char *dst, size_t size, const char *value, const char *name,
			char *err, size_t errlen)
{
	if (value == NULL || value[0] == '\0') {
		snprintf(err, errlen, "auth: %s is not set", name);
		return -1;
	}
	if (strlen(value) >= size) {
		snprintf(err, errlen, "auth: %s is too long", name);
		return -1;
	}
	memcpy(dst, value, strlen(value) + 1);
	return 0;
}

/* add_mechanism - appends one listed mechanism to the canonical list, once. */
static int add_mechanism(struct auth_server *srv, const char *word, size_t len,
			 char *err, size_t errlen)
{
	const char *name;

	/* CRAM-MD5, DIGEST-MD5, SCRAM-* need plaintext-equivalent secrets
	 * on the server; we keep only what saslauthd and sasldb can check. */
	if (len == 5 && strncasecmp(word, "PLAIN", 5) == 0)
		name = "PLAIN";
	else if (len == 5 && strncasecmp(word, "LOGIN", 5) == 0)
		name = "LOGIN";
	else {
		snprintf(err, errlen, "auth: mechanism %.*s is not supported (only PLAIN and LOGIN)",
			 (int)(len > 64 ? 64 : len), word);
		return -1;
	}
	if (auth_server_offers(srv, name))
		return 0;
	if (srv->mechanisms[0] != '\0')
		strcat(srv->mechanisms, " ");
	strcat(srv->mechanisms, name);
	return 0;
}

/* parse_mechanisms - "PLAIN LOGIN" (any case, spaces, tabs or commas between). */
static int parse_mechanisms(struct auth_server *srv, const char *list, char *err, size_t errlen)
{
	const char *sep = " \t,";
	size_t len;

	for (const char *p = list ? list : ""; *p != '\0'; p += len) {
		p += strspn(p, sep);
		len = strcspn(p, sep);
		if (len > 0 && add_mechanism(srv, p, len, err, errlen) < 0)
			return -1;
	}
	if (srv->mechanisms[0] == '\0') {
		snprintf(err, errlen, "auth: no mechanisms configured (use PLAIN and/or LOGIN)");
		return -1;
	}
	return 0;
}

/* check_sasldb - the sasldb file must exist and be readable by us now. */
static int check_sasldb(const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errlen, "auth: cannot read sasldb %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "auth: sasldb %s is not a regular file", path);
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* parse_pwcheck - "auxprop" needs a readable sasldb, "saslauthd" a socket path. */
static int parse_pwcheck(struct auth_server *srv, const struct auth_settings *set,
			 char *err, size_t errlen)
{
	const char *m = set->pwcheck_method;

	if (m != NULL && strcmp(m, "auxprop") == 0) {
		srv->auxprop = true;
		if (copy_setting(srv->sasldb_path, sizeof(srv->sasldb_path), set->sasldb_path,
				 "sasldb_path", err, errlen) < 0)
			return -1;
		return check_sasldb(srv->sasldb_path, err, errlen);
	}
	if (m != NULL && strcmp(m, "saslauthd") == 0)
		/* Not checked here: saslauthd may start after us; until
		 * then exchanges end in AUTH_TEMPFAIL. */
		return copy_setting(srv->saslauthd_path, sizeof(srv->saslauthd_path),
				    set->saslauthd_path, "saslauthd_path", err, errlen);
	snprintf(err, errlen, "auth: pwcheck_method %s is not supported (auxprop or saslauthd)",
		 m != NULL ? m : "(unset)");
	return -1;
}

/* parse_settings - validates and copies everything libsasl2 will ask for. */
static int parse_settings(struct auth_server *srv, const struct auth_settings *set,
			  char *err, size_t errlen)
{
	if (parse_mechanisms(srv, set->mechanisms, err, errlen) < 0 ||
	    parse_pwcheck(srv, set, err, errlen) < 0 ||
	    copy_setting(srv->service, sizeof(srv->service),
			 set->service && set->service[0] ? set->service : "smtp",
			 "service", err, errlen) < 0 ||
	    copy_setting(srv->hostname, sizeof(srv->hostname), set->hostname,
			 "hostname", err, errlen) < 0)
		return -1;
	/* An empty realm means the host name, as Postfix does it. */
	return copy_setting(srv->realm, sizeof(srv->realm),
			    set->realm && set->realm[0] ? set->realm : srv->hostname,
			    "realm", err, errlen);
}

/* ---- libsasl2 callbacks (any thread; they read only settings) ---- */

/* sasl_option - the value of one libsasl2 option, or NULL for "use your default". */
static const char *sasl_option(const struct auth_server *srv, const char *option)
{
	if (strcmp(option, "pwcheck_method") == 0)
		return srv->auxprop ? "auxprop" : "saslauthd";
	if (strcmp(option, "auxprop_plugin") == 0)
		return srv->auxprop ? "sasldb" : NULL;
	if (strcmp(option, "sasldb_path") == 0)
		return srv->auxprop ? srv->sasldb_path : NULL;
	if (strcmp(option, "saslauthd_path") == 0)
		return srv->auxprop ? NULL : srv->saslauthd_path;
	if (strcmp(option, "mech_list") == 0)
		return srv->mechanisms;
	if (strcmp(option, "log_level") == 0)
		return "2";	/* SASL_LOG_FAIL: see conn_log_cb */
	return NULL;
}

/* sasl_getopt_cb - SASL_CB_GETOPT: options from struct auth_settings only. */
static int sasl_getopt_cb(void *context, const char *plugin_name, const char *option,
			  const char **result, unsigned *len)
{
	const char *value = option ? sasl_option(context, option) : NULL;

	(void)plugin_name;
	if (value == NULL)
		return SASL_FAIL;
	*result = value;
	if (len != NULL)
		*len = (unsigned)strlen(value);
	return SASL_OK;
}

/* sasl_log_cb - SASL_CB_LOG: errors become warnings; the rest is noise to us. */
static int sasl_log_cb(void *context, int level, const char *message)
{
	(void)context;
	if (level != SASL_LOG_NONE && level <= SASL_LOG_ERR && message != NULL)
		mtad_log(MTAD_LOG_WARNING, "SASL: %s", message);
	return SASL_OK;
}

/* redact - every occurrence of name (any case) in text becomes "*"; in place, since "*" is never longer. */
static void redact(char *text, const char *name)
{
	size_t n = strlen(name);
	char *in = text, *out = text;

	if (n == 0)
		return;
	while (*in != '\0') {
		if (strncasecmp(in, name, n) == 0) {
			*out++ = '*';
			in += n;
		} else {
			*out++ = *in++;
		}
	}
	*out = '\0';
}

/*
 * redact_typed - text without the names the current attempt typed. ex's
 * names are written on the loop thread before the step is queued and
 * only read on the worker while it runs, so this is safe there.
 */
static void redact_typed(const struct auth_exchange *ex, char *text)
{
	redact(text, ex->user);
	redact(text, ex->authzid);
}

/*
 * conn_log_cb - SASL_CB_LOG of one exchange, called on the worker during
 * a step. libsasl2 and its plugins may put the user name in these lines
 * ("user: NAME@REALM property: ... not found"): whatever we keep or log
 * is redacted first. The first failure line (say "cannot connect to
 * saslauthd server") is kept for the reason we hand back, since
 * sasl_errdetail only says "generic failure"; the session logs the
 * outcome once.
 */
static int conn_log_cb(void *context, int level, const char *message)
{
	struct auth_exchange *ex = context;
	char line[AUTH_REASON_MAX];

	if (message == NULL || level == SASL_LOG_NONE)
		return SASL_OK;
	if (level <= SASL_LOG_ERR) {
		snprintf(line, sizeof(line), "%s", message);
		redact_typed(ex, line);
		mtad_log(MTAD_LOG_WARNING, "SASL: %s", line);
	} else if (level == SASL_LOG_FAIL && ex->job != NULL && ex->job->note[0] == '\0') {
		/* The first line is the cause; later ones only repeat "failed". */
		snprintf(ex->job->note, sizeof(ex->job->note), "%s", message);
		redact_typed(ex, ex->job->note);
	}
	return SASL_OK;
}

/* sasl_verifyfile_cb - SASL_CB_VERIFYFILE: skip every config file, allow plugins and the sasldb. */
static int sasl_verifyfile_cb(void *context, const char *file, sasl_verify_type_t type)
{
	(void)context;
	(void)file;
	/* SASL_CONTINUE makes libsasl2 skip the file without opening it. */
	return type == SASL_VRFY_CONF ? SASL_CONTINUE : SASL_OK;
}

/* ---- libsasl2 mutexes: its defaults do nothing, and we call it from many threads ---- */

/* mutex_alloc - a fresh pthread mutex for libsasl2, or NULL. */
static void *mutex_alloc(void)
{
	pthread_mutex_t *m = malloc(sizeof(*m));

	if (m != NULL && pthread_mutex_init(m, NULL) != 0) {
		free(m);
		return NULL;
	}
	return m;
}

/* mutex_lock - SASL_OK or SASL_FAIL, as libsasl2 expects. */
static int mutex_lock(void *m)
{
	return pthread_mutex_lock(m) == 0 ? SASL_OK : SASL_FAIL;
}

/* mutex_unlock - SASL_OK or SASL_FAIL. */
static int mutex_unlock(void *m)
{
	return pthread_mutex_unlock(m) == 0 ? SASL_OK : SASL_FAIL;
}

/* mutex_free - destroys and frees a mutex from mutex_alloc. */
static void mutex_free(void *m)
{
	if (m == NULL)
		return;
	pthread_mutex_destroy(m);
	free(m);
}

/* ---- the server ---- */

/*
 * new_conn - a sasl_conn_t that allows the plaintext mechanisms (the
 * session requires TLS); cbs (may be NULL) must outlive it.
 */
static int new_conn(struct auth_server *srv, const sasl_callback_t *cbs, sasl_conn_t **conn)
{
	sasl_security_properties_t props = {
		.min_ssf = 0,
		.max_ssf = 0,	/* SMTP uses no SASL security layer */
		.maxbufsize = 0,
		.security_flags = SASL_SEC_NOANONYMOUS,
	};
	int rc;

	*conn = NULL;
	rc = sasl_server_new(srv->service, srv->hostname, srv->realm, NULL, NULL, cbs, 0, conn);
	if (rc != SASL_OK) {
		/* libsasl2 may hand back a half-built conn on failure. */
		if (*conn != NULL)
			sasl_dispose(conn);
		return rc;
	}
	rc = sasl_setprop(*conn, SASL_SEC_PROPS, &props);
	if (rc != SASL_OK)
		sasl_dispose(conn);
	return rc;
}

/* has_word - true when list (space separated) holds word, any case. */
static bool has_word(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; *p != '\0'; p += strcspn(p, " ")) {
		p += strspn(p, " ");
		if (strncasecmp(p, word, n) == 0 && (p[n] == ' ' || p[n] == '\0'))
			return true;
	}
	return false;
}

/* probe_mechanisms - every configured mechanism is really loaded (libsasl2-modules). */
static int probe_mechanisms(struct auth_server *srv, char *err, size_t errlen)
{
	char mechs[AUTH_MECHS_MAX], *save = NULL;
	const char *list;
	sasl_conn_t *conn;
	int rc = new_conn(srv, NULL, &conn);

	if (rc != SASL_OK) {
		snprintf(err, errlen, "auth: sasl_server_new: %s", sasl_errstring(rc, NULL, NULL));
		return -1;
	}
	rc = sasl_listmech(conn, NULL, "", " ", "", &list, NULL, NULL);
	if (rc != SASL_OK)
		list = "";
	memcpy(mechs, srv->mechanisms, sizeof(mechs));
	for (char *m = strtok_r(mechs, " ", &save); m != NULL; m = strtok_r(NULL, " ", &save)) {
		if (!has_word(list, m)) {
			snprintf(err, errlen, "auth: mechanism %s is not available from libsasl2"
				 " (is libsasl2-modules installed?)", m);
			sasl_dispose(&conn);
			return -1;
		}
	}
	sasl_dispose(&conn);
	return 0;
}

/* start_sasl - sasl_set_mutex and sasl_server_init with our callbacks. */
static int start_sasl(struct auth_server *srv, char *err, size_t errlen)
{
	sasl_callback_t cbs[] = {
		{ SASL_CB_GETOPT, AUTH_CB(sasl_getopt_cb), srv },
		{ SASL_CB_LOG, AUTH_CB(sasl_log_cb), srv },
		{ SASL_CB_VERIFYFILE, AUTH_CB(sasl_verifyfile_cb), srv },
		{ SASL_CB_LIST_END, NULL, NULL },
	};
	int rc;

	memcpy(srv->callbacks, cbs, sizeof(cbs));
	sasl_set_mutex(mutex_alloc, mutex_lock, mutex_unlock, mutex_free);
	rc = sasl_server_init(srv->callbacks, AUTH_APPNAME);
	if (rc != SASL_OK) {
		snprintf(err, errlen, "auth: sasl_server_init: %s", sasl_errstring(rc, NULL, NULL));
		sasl_server_done();
		return -1;
	}
	if (probe_mechanisms(srv, err, errlen) < 0) {
		sasl_server_done();
		return -1;
	}
	return 0;
}

/* auth_server_new - validates settings, then initialises libsasl2 (one server per process at a time). */
struct auth_server *auth_server_new(const struct auth_settings *set, uv_loop_t *loop,
				    char *err, size_t errlen)
{
	struct auth_server *srv = calloc(1, sizeof(*srv));

	if (srv == NULL) {
		snprintf(err, errlen, "auth: out of memory");
		return NULL;
	}
	srv->loop = loop;
	if (parse_settings(srv, set, err, errlen) < 0) {
		free(srv);
		return NULL;
	}
	if (atomic_exchange(&sasl_taken, true)) {
		snprintf(err, errlen, "auth: libsasl2 is already in use by another auth_server");
		free(srv);
		return NULL;
	}
	if (start_sasl(srv, err, errlen) < 0) {
		atomic_store(&sasl_taken, false);
		free(srv);
		return NULL;
	}
	return srv;
}

/* auth_server_free - sasl_server_done; every exchange must be gone first. */
void auth_server_free(struct auth_server *srv)
{
	if (srv == NULL)
		return;
	if (atomic_load(&srv->nexchanges) > 0) {
		/* Their sasl_conn_t would point into freed plugin state. */
		mtad_log(MTAD_LOG_ERROR, "auth_server_free: %zu exchanges still open",
			 atomic_load(&srv->nexchanges));
		abort();
	}
	sasl_server_done();
	atomic_store(&sasl_taken, false);
	free(srv);
}

/* auth_server_mechanisms - "PLAIN LOGIN", for EHLO. */
const char *auth_server_mechanisms(const struct auth_server *srv)
{
	return srv->mechanisms;
}

/* auth_server_offers - mech (any case) is configured. */
bool auth_server_offers(const struct auth_server *srv, const char *mech)
{
	return mech != NULL && mech[0] != '\0' && strchr(mech, ' ') == NULL &&
	       has_word(srv->mechanisms, mech);
}

/* ---- exchanges ---- */

/* auth_exchange_new - a fresh sasl_conn_t for one session; NULL on failure (logged). */
struct auth_exchange *auth_exchange_new(struct auth_server *srv, uv_loop_t *loop,
					const char *client_ip)
{
	struct auth_exchange *ex = calloc(1, sizeof(*ex));
	int rc;

	if (ex == NULL) {
		mtad_log(MTAD_LOG_WARNING, "auth: out of memory for %s", client_ip);
		return NULL;
	}
	ex->callbacks[0] = (sasl_callback_t){ SASL_CB_LOG, AUTH_CB(conn_log_cb), ex };
	ex->callbacks[1] = (sasl_callback_t){ SASL_CB_LIST_END, NULL, NULL };
	rc = new_conn(srv, ex->callbacks, &ex->conn);
	if (rc != SASL_OK) {
		mtad_log(MTAD_LOG_WARNING, "auth: sasl_server_new for %s: %s", client_ip,
			 sasl_errstring(rc, NULL, NULL));
		free(ex);
		return NULL;
	}
	ex->srv = srv;
	ex->loop = loop;
	atomic_fetch_add(&srv->nexchanges, 1);
	return ex;
}

/* auth_exchange_free - sasl_dispose; never while a step is in flight. */
void auth_exchange_free(struct auth_exchange *ex)
{
	if (ex == NULL)
		return;
	if (ex->job != NULL) {
		/* The worker still uses ex->conn and will write into ex. */
		mtad_log(MTAD_LOG_ERROR, "auth_exchange_free: a step is in flight");
		abort();
	}
	sasl_dispose(&ex->conn);
	atomic_fetch_sub(&ex->srv->nexchanges, 1);
	free(ex);
}

/* auth_exchange_last_worker - the thread of the last finished step (auth_int.h). */
uv_thread_t auth_exchange_last_worker(const struct auth_exchange *ex)
{
	return ex->worker;
}

/* copy_name - keeps a name a client types (up to a NUL), so that logs can leave it out. */
static void copy_name(char *dst, size_t size, const char *name, size_t len)
{
	size_t n = strnlen(name, len);

	if (n >= size)
		n = size - 1;
	memcpy(dst, name, n);
	dst[n] = '\0';
}

/*
 * note_user - remembers who a response claims to be, only to keep the
 * names out of the logs (redact_typed). Never the password:
 * for PLAIN only the authcid field is taken; for LOGIN only the answer
 * to "Username:" (or a non-empty initial response), never the next one.
 * Returns false when a name in it is longer than AUTH_CLAIM_MAX: such a
 * response is refused without asking libsasl2, which leaks memory on
 * its "overflowed buffer" path for over-long names.
 */
static bool note_user(struct auth_exchange *ex, const char *resp, size_t len, bool initial)
{
	const char *authcid, *nul, *end;

	if (ex->login) {
		if (!ex->want_user && !(initial && len > 0))
			return true;
		copy_name(ex->user, sizeof(ex->user), resp, len);
		return strnlen(resp, len) <= AUTH_CLAIM_MAX;
	}
	/* PLAIN: authzid NUL authcid NUL passwd (RFC 4616 §2). */
	nul = memchr(resp, '\0', len);
	if (nul == NULL)
		return true;
	copy_name(ex->authzid, sizeof(ex->authzid), resp, (size_t)(nul - resp));
	authcid = nul + 1;
	len -= (size_t)(authcid - resp);
	end = memchr(authcid, '\0', len);
	if (end == NULL)
		return true;
	copy_name(ex->user, sizeof(ex->user), authcid, len);
	return (size_t)(nul - resp) <= AUTH_CLAIM_MAX && (size_t)(end - authcid) <= AUTH_CLAIM_MAX;
}

/* job_collect - on the worker: copies out what job_done needs, so the loop never touches conn. */
static void job_collect(struct auth_job *job, const char *out, unsigned outlen)
{
	sasl_conn_t *conn = job->ex->conn;
	const void *user = NULL;
	const char *detail;

	if (job->rc == SASL_CONTINUE) {
		job->challenge = malloc(outlen > 0 ? outlen : 1);
		if (job->challenge == NULL) {
			job->rc = SASL_NOMEM;
			snprintf(job->reason, sizeof(job->reason), "out of memory");
			return;
		}
		if (outlen > 0)
			memcpy(job->challenge, out, outlen);
		job->challenge_len = outlen;
		return;
	}
	if (job->rc == SASL_OK) {
		if (sasl_getprop(conn, SASL_USERNAME, &user) != SASL_OK || user == NULL) {
			job->rc = SASL_FAIL;	/* our side is broken: tempfail */
			snprintf(job->reason, sizeof(job->reason), "libsasl2 gave no user name");
			return;
		}
		if (strlen(user) >= sizeof(job->user)) {
			job->rc = SASL_BADPROT;
			snprintf(job->reason, sizeof(job->reason), "user name too long");
			return;
		}
		memcpy(job->user, user, strlen(user) + 1);
		return;
	}
	detail = sasl_errdetail(conn);
	if (detail == NULL)
		detail = sasl_errstring(job->rc, NULL, NULL);
	if (job->note[0] != '\0' && strstr(detail, job->note) == NULL)
		snprintf(job->reason, sizeof(job->reason), "%s (%s)", detail, job->note);
	else
		snprintf(job->reason, sizeof(job->reason), "%s", detail);
	redact_typed(job->ex, job->reason);
}

/* job_work - on the thread pool: one sasl_server_start or sasl_server_step. */
static void job_work(uv_work_t *req)
{
	struct auth_job *job = req->data;
	const char *in = job->has_response ? job->response : NULL;
	const char *out = NULL;
	unsigned outlen = 0;

	job->worker = uv_thread_self();
	if (job->name_too_long) {
		job->rc = SASL_BADPROT;
		snprintf(job->reason, sizeof(job->reason), "user name longer than %d octets",
			 AUTH_CLAIM_MAX);
		return;
	}
	if (job->start)
		job->rc = sasl_server_start(job->ex->conn, job->mech, in, job->len, &out, &outlen);
	else
		job->rc = sasl_server_step(job->ex->conn, in, job->len, &out, &outlen);
	job_collect(job, out, outlen);
}

/* map_result - libsasl2's answer as the SMTP session needs it. */
static enum auth_result map_result(int rc)
{
	switch (rc) {
	case SASL_OK:
		return AUTH_SUCCESS;
	case SASL_CONTINUE:
		return AUTH_CONTINUE;
	/* The backend (saslauthd, the sasldb file, memory) failed us, or
	 * the mechanism vanished: not the client's fault, may pass. */
	case SASL_FAIL:
	case SASL_NOMEM:
	case SASL_UNAVAIL:
	case SASL_TRYAGAIN:
	case SASL_NOMECH:
		return AUTH_TEMPFAIL;
	/* BADAUTH, NOUSER, BADPARAM, BADPROT, NOAUTHZ, ENCRYPT, TOOWEAK,
	 * DISABLED, EXPIRED, NOVERIFY, ...: the answer is no. */
	default:
		return AUTH_FAILURE;
	}
}

/* job_done - on the loop thread: hands the result to the session, exactly once. */
static void job_done(uv_work_t *req, int status)
{
	struct auth_job *job = req->data;
	struct auth_exchange *ex = job->ex;
	enum auth_result result = map_result(job->rc);

	if (status == UV_ECANCELED) {
		result = AUTH_TEMPFAIL;
		snprintf(job->reason, sizeof(job->reason), "cancelled");
	}
	/* A failed attempt is over: the next AUTH starts on a fresh conn. */
	ex->job = NULL;
	ex->worker = job->worker;
	ex->want_user = ex->login && result == AUTH_CONTINUE && job->challenge_len == 9 &&
			memcmp(job->challenge, "Username:", 9) == 0;
	if (result == AUTH_SUCCESS || result == AUTH_CONTINUE)
		job->reason[0] = '\0';
	/* Only a login that succeeded has a user worth naming. */
	job->cb(job->arg, result, result == AUTH_CONTINUE ? job->challenge : NULL,
		job->challenge_len, result == AUTH_SUCCESS ? job->user : NULL, job->reason);
	free(job->challenge);
	free(job);
}

/* job_queue - copies the response into a job and puts it on the thread pool. */
static int job_queue(struct auth_exchange *ex, bool start, const char *mech,
		     const char *response, size_t len, bool has_response, bool name_ok,
		     auth_done_cb cb, void *arg)
{
	struct auth_job *job;

	if (!has_response)
		len = 0;
	if (len > AUTH_LINE_MAX)
		return -1;	/* no client can send more in one line */
	job = calloc(1, sizeof(*job) + len + 1);
	if (job == NULL)
		return -1;
	job->req.data = job;
	job->ex = ex;
	job->start = start;
	if (mech != NULL)
		memcpy(job->mech, mech, strlen(mech) + 1);
	job->has_response = has_response;
	job->name_too_long = !name_ok;
	job->len = (unsigned)len;
	if (len > 0)
		memcpy(job->response, response, len);
	job->cb = cb;
	job->arg = arg;
	/* Before queueing: the worker's log callback looks for it. */
	ex->job = job;
	if (uv_queue_work(ex->loop, &job->req, job_work, job_done) != 0) {
		ex->job = NULL;
		free(job);
		return -1;
	}
	return 0;
}

/* auth_exchange_start - begins mech; see auth.h. */
int auth_exchange_start(struct auth_exchange *ex, const char *mech,
			const char *response, size_t len, bool has_response,
			auth_done_cb cb, void *arg)
{
	sasl_conn_t *fresh;

	if (ex->job != NULL || !auth_server_offers(ex->srv, mech) || cb == NULL)
		return -1;
	if (ex->used) {
		/* libsasl2 does not promise a conn can start twice. */
		if (new_conn(ex->srv, ex->callbacks, &fresh) != SASL_OK)
			return -1;
		sasl_dispose(&ex->conn);
		ex->conn = fresh;
	}
	ex->used = true;
	ex->login = strcasecmp(mech, "LOGIN") == 0;
	ex->want_user = false;
	ex->user[0] = '\0';
	ex->authzid[0] = '\0';
	return job_queue(ex, true, ex->login ? "LOGIN" : "PLAIN", response, len, has_response,
			 !has_response || note_user(ex, response, len, true), cb, arg);
}

/* auth_exchange_step - the client's answer to a 334; see auth.h. */
int auth_exchange_step(struct auth_exchange *ex, const char *response, size_t len,
		       auth_done_cb cb, void *arg)
{
	if (ex->job != NULL || !ex->used || cb == NULL)
		return -1;
	return job_queue(ex, false, NULL, response, len, true,
			 note_user(ex, response, len, false), cb, arg);
}
