/* bodylock.c - joins the queue's Berkeley DB environment the way mtaq
 * does (no recovery, thread tracking, as t/lib/lockholder.c), reads
 * chunk 0 of one message's body in body.db with a write lock (DB_RMW,
 * inside a transaction that never commits: nothing is changed), says
 * "locked" and waits to be killed. A queue read of that chunk then waits
 * for the lock until mtad's failchk aborts the dead process's
 * transaction (t/44-deliver-readtimeout.t, which builds it with cc).
 * Not part of mtad. */
#include <db.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define QID_LEN 14	/* queue/qid.c */

int main(int argc, char **argv)
{
	DB_ENV *env;
	DB *db;
	DB_TXN *txn;
	DBT key, data;
	unsigned char kbuf[QID_LEN + 4];
	int rc;

	if (argc != 3 || strlen(argv[2]) != QID_LEN) {
		fprintf(stderr, "usage: bodylock SPOOL QUEUE-ID\n");
		return 2;
	}
	/* queue/store.c's queue_body_key: the id, then the chunk number (0), big-endian. */
	memcpy(kbuf, argv[2], QID_LEN);
	memset(kbuf + QID_LEN, 0, 4);
	if ((rc = db_env_create(&env, 0)) != 0 ||
	    (rc = env->set_thread_count(env, 500)) != 0 ||
	    (rc = env->open(env, argv[1], DB_INIT_TXN | DB_INIT_LOG | DB_INIT_LOCK |
			    DB_INIT_MPOOL | DB_THREAD, 0600)) != 0 ||
	    (rc = db_create(&db, env, 0)) != 0 ||
	    (rc = db->open(db, NULL, "body.db", NULL, DB_UNKNOWN, DB_AUTO_COMMIT | DB_THREAD, 0)) != 0 ||
	    (rc = env->txn_begin(env, NULL, &txn, 0)) != 0) {
		fprintf(stderr, "bodylock: %s\n", db_strerror(rc));
		return 1;
	}
	memset(&key, 0, sizeof(key));
	memset(&data, 0, sizeof(data));
	key.data = kbuf;
	key.size = sizeof(kbuf);
	data.flags = DB_DBT_MALLOC;
	if ((rc = db->get(db, txn, &key, &data, DB_RMW)) != 0) {
		fprintf(stderr, "bodylock: get: %s\n", db_strerror(rc));
		return 1;
	}
	printf("locked\n");
	fflush(stdout);
	pause();
	return 0;
}
