/* lockholder.c - joins the queue's Berkeley DB environment the way mtaq
 * does (no recovery, thread tracking), write-locks a row of stats.db in
 * a transaction, says "locked" and waits to be killed: a dead process
 * holding a lock mtad's writer needs (t/87-mtaq-kill.t, which builds it
 * with cc). Not part of mtad. */
#include <db.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	DB_ENV *env;
	DB *db;
	DB_TXN *txn;
	DBT key, data;
	int rc;

	if (argc != 3) {
		fprintf(stderr, "usage: lockholder SPOOL KEY\n");
		return 2;
	}
	if ((rc = db_env_create(&env, 0)) != 0 ||
	    (rc = env->set_thread_count(env, 500)) != 0 ||
	    (rc = env->open(env, argv[1], DB_INIT_TXN | DB_INIT_LOG | DB_INIT_LOCK |
			    DB_INIT_MPOOL | DB_THREAD, 0600)) != 0 ||
	    (rc = db_create(&db, env, 0)) != 0 ||
	    (rc = db->open(db, NULL, "stats.db", NULL, DB_BTREE, DB_AUTO_COMMIT | DB_THREAD, 0)) != 0 ||
	    (rc = env->txn_begin(env, NULL, &txn, 0)) != 0) {
		fprintf(stderr, "lockholder: %s\n", db_strerror(rc));
		return 1;
	}
	memset(&key, 0, sizeof(key));
	memset(&data, 0, sizeof(data));
	key.data = argv[2];
	key.size = (u_int32_t)strlen(argv[2]);
	data.data = "\0\0\0\0\0\0\0\1";
	data.size = 8;
	if ((rc = db->put(db, txn, &key, &data, 0)) != 0) {
		fprintf(stderr, "lockholder: put: %s\n", db_strerror(rc));
		return 1;
	}
	printf("locked\n");
	fflush(stdout);
	pause();
	return 0;
}
