/*
 * auth.c - unit tests for auth/sasl.c against the real libsasl2: a
 * sasldb made with saslpasswd2 in a temporary directory, PLAIN and LOGIN
 * with and without initial responses, wrong passwords, unknown users,
 * settings errors, a saslauthd that is not there, the thread each part
 * runs on, and that no SASL configuration file is read.
 *
 * Needs saslpasswd2 (sasl2-bin) and the PLAIN, LOGIN and sasldb plugins
 * (libsasl2-modules, libsasl2-modules-db).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth_int.h"
#include "t/unit/tap.h"

#define HOST "mx.campus.test"
/* libsasl2 appends @realm to a user name without one (realm "" = HOST). */
#define ALICE "alice@" HOST

/* What one callback reported. */
struct outcome {
	int calls;
	enum auth_result result;
	char challenge[64];
	size_t challenge_len;
	char user[256];
	char reason[256];
	uv_thread_t thread;
};

/* Everything the tests share. */
struct fixture {
	char dir[64];
	char sasldb[128];
	uv_loop_t loop;
	uv_thread_t main_thread;
};

/* on_done - the auth_done_cb: copies what it was given. */
static void on_done(void *arg, enum auth_result result, const char *challenge,
		    size_t challenge_len, const char *user, const char *reason)
{
	struct outcome *o = arg;

	o->calls++;
	o->result = result;
	o->thread = uv_thread_self();
	o->challenge_len = challenge_len;
	if (challenge != NULL && challenge_len < sizeof(o->challenge))
		memcpy(o->challenge, challenge, challenge_len);
	snprintf(o->user, sizeof(o->user), "%s", user ? user : "(null)");
	snprintf(o->reason, sizeof(o->reason), "%s", reason ? reason : "(null)");
}

/* start - auth_exchange_start, then runs the loop until the callback came. */
static struct outcome start(struct fixture *f, struct auth_exchange *ex, const char *mech,
			    const char *resp, size_t len, bool has_response)
{
	struct outcome o = { 0 };

	if (auth_exchange_start(ex, mech, resp, len, has_response, on_done, &o) < 0) {
		o.calls = -1;
		return o;
	}
	uv_run(&f->loop, UV_RUN_DEFAULT);
	return o;
}

/* step - auth_exchange_step, then runs the loop until the callback came. */
static struct outcome step(struct fixture *f, struct auth_exchange *ex, const char *resp, size_t len)
{
	struct outcome o = { 0 };

	if (auth_exchange_step(ex, resp, len, on_done, &o) < 0) {
		o.calls = -1;
		return o;
	}
	uv_run(&f->loop, UV_RUN_DEFAULT);
	return o;
}

/* is - the callback ran once with this result. */
static int is(const struct outcome *o, enum auth_result r)
{
	return o->calls == 1 && o->result == r;
}

/* challenge_is - a CONTINUE with exactly this challenge. */
static int challenge_is(const struct outcome *o, const char *text)
{
	return is(o, AUTH_CONTINUE) && o->challenge_len == strlen(text) &&
	       memcmp(o->challenge, text, o->challenge_len) == 0;
}

/* settings - the sasldb settings the tests start from. */
static struct auth_settings settings(const struct fixture *f, const char *mechs)
{
	struct auth_settings set = {
		.mechanisms = mechs,
		.pwcheck_method = "auxprop",
		.sasldb_path = f->sasldb,
		.service = "smtp",
		.hostname = HOST,
		.realm = "",
	};
	return set;
}

#define PLAIN_OK "\0alice\0secret"
#define PLAIN_BAD "\0alice\0Secret"
#define PLAIN_REALM "\0alice@" HOST "\0secret"
#define PLAIN_OTHER "\0alice@other.test\0secret"

/* test_plain - PLAIN with and without an initial response, good and bad. */
static void test_plain(struct tap *t, struct fixture *f, struct auth_server *srv)
{
	struct auth_exchange *ex = auth_exchange_new(srv, &f->loop, "192.0.2.1");
	struct outcome o;

	TAP_OK(t, ex != NULL, "exchange created");
	o = start(f, ex, "PLAIN", PLAIN_OK, sizeof(PLAIN_OK) - 1, true);
	TAP_OK(t, is(&o, AUTH_SUCCESS), "PLAIN initial response: success (%s)", o.reason);
	TAP_OK(t, strcmp(o.user, ALICE) == 0, "user comes back as \"%s\" (with @realm)", o.user);
	TAP_OK(t, uv_thread_equal(&o.thread, &f->main_thread), "callback ran on the loop thread");
	uv_thread_t worker = auth_exchange_last_worker(ex);
	TAP_OK(t, !uv_thread_equal(&worker, &f->main_thread), "libsasl2 ran on a pool thread");

	o = start(f, ex, "plain", PLAIN_BAD, sizeof(PLAIN_BAD) - 1, true);
	TAP_OK(t, is(&o, AUTH_FAILURE), "wrong password: failure (%s)", o.reason);
	TAP_OK(t, strcmp(o.user, "(null)") == 0, "a failure names no user (it may be a password): %s",
	       o.user);
	TAP_OK(t, strstr(o.reason, "Secret") == NULL, "reason does not contain the password");
	TAP_OK(t, strstr(o.reason, "alice") == NULL, "reason does not contain the user tried");

	o = start(f, ex, "PLAIN", "\0mallory\0secret", 15, true);
	TAP_OK(t, is(&o, AUTH_FAILURE), "unknown user: failure (%s)", o.reason);
	TAP_OK(t, strcmp(o.user, "(null)") == 0, "failure does not name the unknown user");
	TAP_OK(t, strstr(o.reason, "mallory") == NULL, "nor does its reason (%s)", o.reason);

	o = start(f, ex, "PLAIN", "bob\0alice\0secret", 16, true);
	TAP_OK(t, is(&o, AUTH_FAILURE), "authzid other than authcid: failure (%s)", o.reason);
	TAP_OK(t, strstr(o.reason, "bob") == NULL && strstr(o.reason, "alice") == NULL,
	       "the reason names neither authzid nor authcid");

	o = start(f, ex, "PLAIN", "alice secret", 12, true);
	TAP_OK(t, is(&o, AUTH_FAILURE), "PLAIN without NULs: failure (%s)", o.reason);
	TAP_OK(t, strcmp(o.user, "(null)") == 0, "no user from a malformed response");

	o = start(f, ex, "PLAIN", NULL, 0, false);
	TAP_OK(t, is(&o, AUTH_CONTINUE) && o.challenge_len == 0,
	       "PLAIN without initial response: continue with an empty challenge");
	o = step(f, ex, PLAIN_OK, sizeof(PLAIN_OK) - 1);
	TAP_OK(t, is(&o, AUTH_SUCCESS) && strcmp(o.user, ALICE) == 0, "then the response: success");

	/* RFC 4954 "=": an empty PLAIN response is a malformed one. */
	o = start(f, ex, "PLAIN", "", 0, true);
	TAP_OK(t, is(&o, AUTH_FAILURE), "PLAIN with an empty initial response (\"=\"): failure (%s)",
	       o.reason);

	o = start(f, ex, "PLAIN", PLAIN_REALM, sizeof(PLAIN_REALM) - 1, true);
	TAP_OK(t, is(&o, AUTH_SUCCESS) && strcmp(o.user, ALICE) == 0, "alice@" HOST " works too");
	o = start(f, ex, "PLAIN", PLAIN_OTHER, sizeof(PLAIN_OTHER) - 1, true);
	TAP_OK(t, is(&o, AUTH_FAILURE), "alice in another realm: failure");
	auth_exchange_free(ex);
}

/* test_login - LOGIN passes "Username:" and "Password:" through. */
static void test_login(struct tap *t, struct fixture *f, struct auth_server *srv)
{
	struct auth_exchange *ex = auth_exchange_new(srv, &f->loop, "2001:db8::1");
	struct outcome o;

	o = start(f, ex, "LOGIN", NULL, 0, false);
	TAP_OK(t, challenge_is(&o, "Username:"), "LOGIN: first challenge \"Username:\"");
	o = step(f, ex, "alice", 5);
	TAP_OK(t, challenge_is(&o, "Password:"), "LOGIN: then \"Password:\"");
	o = step(f, ex, "secret", 6);
	TAP_OK(t, is(&o, AUTH_SUCCESS) && strcmp(o.user, ALICE) == 0,
	       "LOGIN: success as %s (%s)", o.user, o.reason);

	o = start(f, ex, "LOGIN", NULL, 0, false);
	o = step(f, ex, "alice", 5);
	o = step(f, ex, "hunter2", 7);
	TAP_OK(t, is(&o, AUTH_FAILURE), "LOGIN wrong password: failure (%s)", o.reason);
	TAP_OK(t, strcmp(o.user, "(null)") == 0, "the failure names neither alice nor the password");
	TAP_OK(t, strstr(o.reason, "alice") == NULL && strstr(o.reason, "hunter2") == NULL,
	       "nor does its reason (%s)", o.reason);

	o = start(f, ex, "LOGIN", "alice", 5, true);
	TAP_OK(t, challenge_is(&o, "Password:"), "LOGIN with the user as initial response: \"Password:\"");
	o = step(f, ex, "secret", 6);
	TAP_OK(t, is(&o, AUTH_SUCCESS), "  then success");
	auth_exchange_free(ex);
}

/* test_contract - one step in flight, no step before a start, unknown mechanisms. */
static void test_contract(struct tap *t, struct fixture *f, struct auth_server *srv)
{
	struct auth_exchange *ex = auth_exchange_new(srv, &f->loop, "192.0.2.2");
	struct outcome o = { 0 }, o2 = { 0 };

	TAP_OK(t, auth_exchange_step(ex, "x", 1, on_done, &o) == -1, "step before start: -1");
	TAP_OK(t, auth_exchange_start(ex, "CRAM-MD5", NULL, 0, false, on_done, &o) == -1,
	       "start of an unconfigured mechanism: -1");
	TAP_OK(t, auth_exchange_start(ex, "PLAIN", PLAIN_OK, sizeof(PLAIN_OK) - 1, true,
				      on_done, &o) == 0, "start");
	TAP_OK(t, auth_exchange_start(ex, "PLAIN", NULL, 0, false, on_done, &o2) == -1,
	       "a second start while one is in flight: -1");
	TAP_OK(t, auth_exchange_step(ex, "x", 1, on_done, &o2) == -1,
	       "a step while one is in flight: -1");
	TAP_OK(t, o.calls == 0, "the callback never runs inside start");
	uv_run(&f->loop, UV_RUN_DEFAULT);
	TAP_OK(t, is(&o, AUTH_SUCCESS) && o2.calls == 0, "exactly one callback, for the first start");
	auth_exchange_free(ex);
}

/* test_server - mechanism list, offers, one server per process. */
static void test_server(struct tap *t, struct fixture *f, struct auth_server *srv)
{
	struct auth_settings set = settings(f, "PLAIN");
	char err[256] = "";

	TAP_OK(t, strcmp(auth_server_mechanisms(srv), "PLAIN LOGIN") == 0,
	       "mechanisms: %s", auth_server_mechanisms(srv));
	TAP_OK(t, auth_server_offers(srv, "login") && auth_server_offers(srv, "PLAIN"),
	       "offers PLAIN and login (any case)");
	TAP_OK(t, !auth_server_offers(srv, "CRAM-MD5") && !auth_server_offers(srv, "PLAI") &&
		  !auth_server_offers(srv, "PLAIN LOGIN") && !auth_server_offers(srv, ""),
	       "does not offer CRAM-MD5, prefixes, lists or \"\"");
	TAP_OK(t, auth_server_new(&set, &f->loop, err, sizeof(err)) == NULL &&
		  strstr(err, "already") != NULL, "a second server is refused: %s", err);
}

/* test_plain_only - a server configured for PLAIN does not offer LOGIN. */
static void test_plain_only(struct tap *t, struct fixture *f)
{
	struct auth_settings set = settings(f, "plain");
	char err[256] = "";
	struct auth_server *srv = auth_server_new(&set, &f->loop, err, sizeof(err));
	struct auth_exchange *ex;
	struct outcome o;

	TAP_OK(t, srv != NULL, "PLAIN-only server (after freeing the first): %s", err);
	if (srv == NULL)
		return;
	TAP_OK(t, strcmp(auth_server_mechanisms(srv), "PLAIN") == 0, "mechanisms: PLAIN");
	TAP_OK(t, !auth_server_offers(srv, "LOGIN"), "LOGIN not offered");
	ex = auth_exchange_new(srv, &f->loop, "192.0.2.3");
	o = start(f, ex, "LOGIN", NULL, 0, false);
	TAP_OK(t, o.calls == -1, "start LOGIN: -1");
	o = start(f, ex, "PLAIN", PLAIN_OK, sizeof(PLAIN_OK) - 1, true);
	TAP_OK(t, is(&o, AUTH_SUCCESS), "PLAIN still works after re-initialising libsasl2");
	auth_exchange_free(ex);
	auth_server_free(srv);
}

/* expect_error - auth_server_new fails with a message containing needle. */
static void expect_error(struct tap *t, struct fixture *f, const struct auth_settings *set,
			 const char *needle, const char *what)
{
	char err[256] = "";
	struct auth_server *srv = auth_server_new(set, &f->loop, err, sizeof(err));

	TAP_OK(t, srv == NULL && strstr(err, needle) != NULL, "%s: %s", what, err);
	auth_server_free(srv);
}

/* test_settings_errors - each bad setting is named in the message. */
static void test_settings_errors(struct tap *t, struct fixture *f)
{
	struct auth_settings set = settings(f, "PLAIN LOGIN");
	char missing[160];

	snprintf(missing, sizeof(missing), "%s/no-such-sasldb", f->dir);
	set.sasldb_path = missing;
	expect_error(t, f, &set, missing, "missing sasldb names the path");
	set.sasldb_path = f->dir;
	expect_error(t, f, &set, "not a regular file", "a directory as sasldb");
	set = settings(f, "PLAIN CRAM-MD5");
	expect_error(t, f, &set, "CRAM-MD5", "CRAM-MD5 is refused by name");
	set = settings(f, "PLAIN,DIGEST-MD5");
	expect_error(t, f, &set, "DIGEST-MD5", "DIGEST-MD5 is refused by name");
	set = settings(f, "  ");
	expect_error(t, f, &set, "no mechanisms", "empty mechanism list");
	set = settings(f, "PLAIN");
	set.pwcheck_method = "shadow";
	expect_error(t, f, &set, "pwcheck_method shadow", "unknown pwcheck_method");
	set.pwcheck_method = "saslauthd";
	expect_error(t, f, &set, "saslauthd_path", "saslauthd without a socket path");
	set = settings(f, "PLAIN");
	set.hostname = "";
	expect_error(t, f, &set, "hostname", "empty hostname");
}

/* test_saslauthd_down - a saslauthd socket that does not exist. */
static void test_saslauthd_down(struct tap *t, struct fixture *f)
{
	struct auth_settings set = settings(f, "PLAIN LOGIN");
	char sock[160], err[256] = "";
	struct auth_server *srv;
	struct auth_exchange *ex;
	struct outcome o;

	snprintf(sock, sizeof(sock), "%s/no-saslauthd/mux", f->dir);
	set.pwcheck_method = "saslauthd";
	set.saslauthd_path = sock;
	set.sasldb_path = NULL;
	srv = auth_server_new(&set, &f->loop, err, sizeof(err));
	TAP_OK(t, srv != NULL, "saslauthd server starts without saslauthd running: %s", err);
	if (srv == NULL)
		return;
	ex = auth_exchange_new(srv, &f->loop, "192.0.2.4");
	o = start(f, ex, "PLAIN", PLAIN_OK, sizeof(PLAIN_OK) - 1, true);
	TAP_OK(t, is(&o, AUTH_TEMPFAIL), "saslauthd not there: tempfail (%d: %s)", o.result, o.reason);
	TAP_OK(t, strstr(o.reason, "saslauthd") != NULL, "the reason says saslauthd is unreachable");
	TAP_OK(t, strcmp(o.user, "(null)") == 0, "tempfail names no user");
	auth_exchange_free(ex);
	auth_server_free(srv);
}

/* test_no_config_file - a broken mtad.conf/smtp.conf on SASL_CONF_PATH changes nothing. */
static void test_no_config_file(struct tap *t, struct fixture *f)
{
	struct auth_settings set = settings(f, "PLAIN");
	char conf[160], err[256] = "";
	struct auth_server *srv;
	struct auth_exchange *ex;
	struct outcome o;
	FILE *fp;

	/* If libsasl2 read either file it would refuse the garbage line or
	 * fail every PLAIN for want of a canonuser plugin. */
	for (int i = 0; i < 2; i++) {
		snprintf(conf, sizeof(conf), "%s/%s.conf", f->dir, i ? "smtp" : "mtad");
		fp = fopen(conf, "w");
		if (fp == NULL) {
			TAP_OK(t, 0, "write %s", conf);
			return;
		}
		fprintf(fp, "canon_user_plugin: nonexistent\npwcheck_method: saslauthd\n"
			    "this line has no colon\n");
		fclose(fp);
	}
	setenv("SASL_CONF_PATH", f->dir, 1);
	srv = auth_server_new(&set, &f->loop, err, sizeof(err));
	TAP_OK(t, srv != NULL, "server starts with a broken config file on SASL_CONF_PATH: %s", err);
	if (srv != NULL) {
		ex = auth_exchange_new(srv, &f->loop, "192.0.2.5");
		o = start(f, ex, "PLAIN", PLAIN_OK, sizeof(PLAIN_OK) - 1, true);
		TAP_OK(t, is(&o, AUTH_SUCCESS), "and PLAIN against the sasldb still works (%s)", o.reason);
		auth_exchange_free(ex);
		auth_server_free(srv);
	}
	unsetenv("SASL_CONF_PATH");
}

/* make_sasldb - DIR/sasldb2 with alice/secret in realm HOST, via saslpasswd2. */
static int make_sasldb(struct fixture *f)
{
	char cmd[256];

	snprintf(f->dir, sizeof(f->dir), "/tmp/mtad-auth-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->sasldb, sizeof(f->sasldb), "%s/sasldb2", f->dir);
	snprintf(cmd, sizeof(cmd), "echo secret | saslpasswd2 -p -c -f %s -u " HOST " alice",
		 f->sasldb);
	return system(cmd) == 0 ? 0 : -1;
}

/* cleanup - removes the temporary directory. */
static void cleanup(struct fixture *f)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "# could not remove %s\n", f->dir);
}

int main(void)
{
	struct tap t = { 0 };
	struct fixture f = { 0 };
	struct auth_settings set;
	struct auth_server *srv;
	char err[256] = "";

	f.main_thread = uv_thread_self();
	if (uv_loop_init(&f.loop) != 0 || make_sasldb(&f) < 0) {
		TAP_OK(&t, 0, "set-up: loop and sasldb (is sasl2-bin installed?)");
		return tap_done(&t);
	}
	test_settings_errors(&t, &f);
	set = settings(&f, "PLAIN LOGIN");
	srv = auth_server_new(&set, &f.loop, err, sizeof(err));
	TAP_OK(&t, srv != NULL, "server with a real sasldb: %s", err);
	if (srv != NULL) {
		test_server(&t, &f, srv);
		test_plain(&t, &f, srv);
		test_login(&t, &f, srv);
		test_contract(&t, &f, srv);
		auth_server_free(srv);
		test_plain_only(&t, &f);
		test_saslauthd_down(&t, &f);
		test_no_config_file(&t, &f);
	}
	TAP_OK(&t, uv_loop_close(&f.loop) == 0, "loop closes: nothing left behind");
	cleanup(&f);
	return tap_done(&t);
}
