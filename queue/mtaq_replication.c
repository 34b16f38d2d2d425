/*
 * mtaq_replication.c - `mtaq replication [--json]`: the replication
 * group as this node sees it, for the admin deciding whether a failover
 * is safe or why mail gets 451: this node's role and since when, the
 * master, the acknowledgement policy, the last acknowledged commit and
 * how many went unacknowledged, and each peer: connected or not, and
 * (on the master) its log position and how far behind it is in bytes
 * and seconds.
 *
 * The figures come from mtad's status of the last second
 * (queue_replication_read); with mtad stopped only the role and log
 * position the environment keeps are known, and the output says so.
 *
 * Must not: change anything (it opens the environment alone, read only),
 * or print a peer address unescaped (put_text, json_str).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "queue/mtaq_int.h"

/* print_time - "2026-12-05 10:00:00 (12 s ago)", or "never". */
static void print_time(int64_t t, int64_t now)
{
	char buf[32];
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || localtime_r(&tt, &tm) == NULL) {
		printf("never");
		return;
	}
	strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
	printf("%s (%" PRId64 " s ago)", buf, now >= t ? now - t : 0);
}

/* print_peer_text - one peer's line. */
static void print_peer_text(const struct queue_replication_peer *p)
{
	printf("peer        ");
	put_text(stdout, p->addr);
	printf("  %s", p->connected ? "connected" : "disconnected");
	if (p->heard) {
		printf(", log %" PRIu32 "/%" PRIu32 ", behind %" PRIu64 " bytes, ", p->file,
		       p->offset, p->lag_bytes);
		if (p->lag_seconds < 0)
			printf("more than a minute");
		else
			printf("%ld s", p->lag_seconds);
	}
	printf("\n");
}

/* print_text - the status for a terminal. */
static void print_text(const struct queue_replication_status *st)
{
	int64_t now = (int64_t)time(NULL);

	if (!st->from_mtad) {
		printf("role        %s (from the environment: mtad is not running, so peers "
		       "and lag are unknown)\nlog         %" PRIu32 "/%" PRIu32 "\n", st->role,
		       st->file, st->offset);
		return;
	}
	printf("role        %s since ", st->role);
	print_time(st->since, now);
	printf("\nthis node   ");
	put_text(stdout, st->local);
	printf("\nmaster      ");
	put_text(stdout, st->master[0] ? st->master : "none known (election)");
	printf("\nack         replication_ack = %s, timeout %u s\nlog         %" PRIu32 "/%" PRIu32
	       "\nlast ack    ", st->ack, st->ack_timeout, st->file, st->offset);
	print_time(st->last_ack, now);
	printf("\nunacked     %" PRIu64 " commit%s\n", st->unacked, st->unacked == 1 ? "" : "s");
	for (size_t i = 0; i < st->npeers; i++)
		print_peer_text(&st->peers[i]);
	if (now - st->updated > 5)
		printf("warning: mtad's status is %" PRId64 " s old\n", now - st->updated);
}

/* print_json - the status as one JSON object. */
static void print_json(const struct queue_replication_status *st)
{
	printf("{\"replicated\":true,\"from_mtad\":%s,\"role\":", st->from_mtad ? "true" : "false");
	json_str(stdout, st->role);
	printf(",\"log\":\"%" PRIu32 "/%" PRIu32 "\"", st->file, st->offset);
	if (st->from_mtad) {
		printf(",\"updated\":%" PRId64 ",\"since\":%" PRId64 ",\"local\":", st->updated,
		       st->since);
		json_str(stdout, st->local);
		printf(",\"master\":");
		if (st->master[0])
			json_str(stdout, st->master);
		else
			printf("null");
		printf(",\"ack\":");
		json_str(stdout, st->ack);
		printf(",\"ack_timeout\":%u,\"last_ack\":%" PRId64 ",\"unacked\":%" PRIu64
		       ",\"peers\":[", st->ack_timeout, st->last_ack, st->unacked);
		for (size_t i = 0; i < st->npeers; i++) {
			const struct queue_replication_peer *p = &st->peers[i];

			printf("%s{\"address\":", i ? "," : "");
			json_str(stdout, p->addr);
			printf(",\"connected\":%s", p->connected ? "true" : "false");
			if (p->heard)
				printf(",\"log\":\"%" PRIu32 "/%" PRIu32 "\",\"lag_bytes\":%" PRIu64
				       ",\"lag_seconds\":%ld,\"heard\":%" PRId64, p->file, p->offset,
				       p->lag_bytes, p->lag_seconds, p->heard_at);
			printf("}");
		}
		printf("]");
	}
	printf("}\n");
}

/* cmd_replication - see mtaq_int.h. */
int cmd_replication(struct mtaq *m)
{
	struct queue_replication_status st;

	if (queue_replication_read(m->q, &st) != QUEUE_OK) {
		fprintf(stderr, "mtaq: %s\n", queue_strerror(m->q));
		return 1;
	}
	if (!st.replicated) {
		if (m->json)
			printf("{\"replicated\":false}\n");
		else
			printf("not replicated: this spool is a single node (no replication_local)\n");
		return 0;
	}
	if (m->json)
		print_json(&st);
	else
		print_text(&st);
	return 0;
}
