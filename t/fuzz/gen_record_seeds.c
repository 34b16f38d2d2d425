/*
 * gen_record_seeds.c - writes the seed corpus of fuzz_record: real
 * queue_record_encode output for a few typical envelopes (a fresh
 * message, a bounce with the null sender, one after delivery attempts
 * with replies, a held and authenticated one). Each file is the mode
 * byte fuzz_record.c expects, then the record: mode 0 with the record as
 * stored, mode 1 without its checksum field (fuzz_record appends it).
 * Run by `make fuzz-seeds`; the output is committed.
 *
 * usage: gen_record_seeds DIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue.h"

static void write_seed(const char *dir, const char *name, int mode, const unsigned char *rec,
		       size_t len)
{
	char path[4096];
	unsigned char m = (unsigned char)mode;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s-%d", dir, name, mode);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(&m, 1, 1, f) != 1 || fwrite(rec, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

static void seed(const char *dir, const char *name, const struct queue_envelope *env)
{
	size_t len;
	unsigned char *rec = queue_record_encode(env, &len);

	if (rec == NULL) {
		perror("queue_record_encode");
		exit(1);
	}
	write_seed(dir, name, 0, rec, len);
	write_seed(dir, name, 1, rec, len - 10);	/* without the QR_CRC field */
	free(rec);
}

int main(int argc, char **argv)
{
	struct queue_rcpt one[] = { { .addr = "bob@campus.test", .state = QUEUE_RCPT_PENDING } };
	struct queue_rcpt three[] = {
		{ .addr = "alice@example.org", .state = QUEUE_RCPT_SENT, .attempts = 1,
		  .last_reply = "250 2.0.0 Ok: queued as 4FzQ1" },
		{ .addr = "carol@example.net", .state = QUEUE_RCPT_PENDING, .attempts = 3,
		  .last_reply = "451 4.7.1 Greylisted, please try again in 300 seconds" },
		{ .addr = "dave@example.com", .state = QUEUE_RCPT_FAILED, .attempts = 1,
		  .last_reply = "550 5.1.1 <dave@example.com>: no such user" },
	};
	struct queue_envelope env;

	if (argc != 2) {
		fprintf(stderr, "usage: gen_record_seeds DIR\n");
		return 2;
	}

	memset(&env, 0, sizeof(env));
	env.version = QUEUE_RECORD_VERSION;
	memcpy(env.qid, "4FZQ1MB2CD0001", QUEUE_ID_LEN + 1);
	env.arrival = 1700000000;
	env.arrival_usec = 123456;
	env.sender = "alice@example.org";
	env.rcpt = one;
	env.nrcpt = 1;
	env.client_ip = "192.0.2.10";
	env.client_name = "mail.example.org";
	env.helo = "mail.example.org";
	env.listener = "0.0.0.0:25";
	env.protocol = "ESMTP";
	env.size = 2048;
	seed(argv[1], "fresh", &env);

	env.sender = "";
	env.client_ip = "127.0.0.1";
	env.client_name = "localhost";
	env.helo = "sys28.mail.msu.edu";
	env.protocol = "SMTP";
	env.size = 0;
	seed(argv[1], "bounce", &env);

	memcpy(env.qid, "4FZQ2NC3DF0102", QUEUE_ID_LEN + 1);
	env.sender = "list-bounces@lists.example.org";
	env.rcpt = three;
	env.nrcpt = 3;
	env.client_ip = "2001:db8::25";
	env.client_name = "unknown";
	env.helo = "[IPv6:2001:db8::25]";
	env.listener = "[::]:25";
	env.protocol = "ESMTP";
	env.size = 51234;
	env.next_attempt = 1700000600;
	seed(argv[1], "retried", &env);

	env.auth_user = "demo";
	env.listener = "127.0.0.1:2587";
	env.protocol = "ESMTPSA";
	env.flags = QUEUE_FLAG_HELD;
	env.next_attempt = 0;
	seed(argv[1], "held", &env);

	/* DSN (RFC 3461): RET, ENVID, NOTIFY and ORCPT, the delay warning sent. */
	three[0].notify = QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE;
	three[0].dsn_orcpt = "rfc822;alice+2Bx@example.org";
	three[1].notify = QUEUE_NOTIFY_NEVER;
	three[2].orcpt = "staff@example.com";
	env.dsn_ret = QUEUE_RET_HDRS;
	env.envid = "QQ314159";
	env.flags = QUEUE_FLAG_DELAY_WARNED;
	env.next_attempt = 1700000900;
	seed(argv[1], "dsn", &env);
	return 0;
}
