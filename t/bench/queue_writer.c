/*
 * queue_writer.c - throughput of the queue writer: N messages always in
 * flight (each: new, write SIZE bytes, commit; the next starts from the
 * commit callback), for SECONDS, in a temporary spool under /tmp.
 * Prints messages/s, messages per log flush and commit latency.
 * Not part of `make check`; build by hand:
 *   make build/libmtad.a && cc -std=c17 -D_GNU_SOURCE -O2 -I. \
 *     -o build/bench_queue_writer t/bench/queue_writer.c build/libmtad.a \
 *     $(pkg-config --libs libuv libcares openssl) -ldb -lpthread
 *   build/bench_queue_writer [CONCURRENCY [SIZE [SECONDS]]]
 */
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "queue/queue.h"

#define MAX_LAT 4000000

struct bench {
	struct queue *q;
	uv_loop_t loop;
	struct queue_id_gen gen;
	unsigned char *body;
	size_t size;
	uint64_t start, stop, done, failed;
	uint64_t *lat;		/* commit latencies, ns */
	size_t nlat;
};

struct slot {
	struct bench *b;
	uint64_t t0;
};

static void slot_start(struct slot *s);

/* on_resume - unused: SIZE stays below one chunk in the usual runs. */
static void on_resume(void *arg)
{
	(void)arg;
}

/* on_commit - count, then start the next message in this slot. */
static void on_commit(void *arg, int status, const char *errmsg)
{
	struct slot *s = arg;
	struct bench *b = s->b;
	uint64_t now = uv_hrtime();

	if (status != 0) {
		fprintf(stderr, "commit failed: %s\n", errmsg);
		b->failed++;
	}
	b->done++;
	if (b->nlat < MAX_LAT)
		b->lat[b->nlat++] = now - s->t0;
	if (now < b->stop)
		slot_start(s);
}

/* slot_start - one message through the incoming API. */
static void slot_start(struct slot *s)
{
	struct bench *b = s->b;
	struct queue_rcpt rcpt = { .addr = "user@example.org" };
	struct queue_envelope env = { .sender = "sender@example.com", .rcpt = &rcpt, .nrcpt = 1,
				      .client_ip = "127.0.0.1", .protocol = "ESMTP" };
	struct queue_incoming *in;
	struct timeval tv;
	char qid[QUEUE_ID_LEN + 1];

	gettimeofday(&tv, NULL);
	queue_id_next(&b->gen, tv.tv_sec, (int32_t)tv.tv_usec, qid);
	env.arrival = tv.tv_sec;
	s->t0 = uv_hrtime();
	if ((in = queue_incoming_new(queue_port_main(b->q), qid, on_resume, s)) == NULL ||
	    queue_incoming_write(in, b->body, b->size) < 0)
		abort();
	queue_incoming_commit(in, &env, on_commit, s);
}

/* cmp_u64 - qsort order. */
static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* rm_one - nftw callback. */
static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

int main(int argc, char **argv)
{
	int conc = argc > 1 ? atoi(argv[1]) : 50;
	double secs = argc > 3 ? atof(argv[3]) : 5;
	char dir[] = "/tmp/queue_bench.XXXXXX", err[256];
	struct bench b = { .size = argc > 2 ? (size_t)atol(argv[2]) : 1024 };
	struct slot *slots = calloc((size_t)conc, sizeof(*slots));
	uint64_t commits, flushes, elapsed;

	b.body = malloc(b.size + 1);
	b.lat = malloc(MAX_LAT * sizeof(*b.lat));
	if (!slots || !b.body || !b.lat || !mkdtemp(dir) || uv_loop_init(&b.loop))
		return 1;
	memset(b.body, 'x', b.size);
	b.q = queue_open(&(struct queue_options){ .spool_directory = dir }, err, sizeof(err));
	if (b.q == NULL || queue_writer_start(b.q, &b.loop, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	b.start = uv_hrtime();
	b.stop = b.start + (uint64_t)(secs * 1e9);
	for (int i = 0; i < conc; i++) {
		slots[i].b = &b;
		slot_start(&slots[i]);
	}
	uv_run(&b.loop, UV_RUN_DEFAULT);
	elapsed = uv_hrtime() - b.start;
	queue_writer_stats(b.q, &commits, &flushes);
	qsort(b.lat, b.nlat, sizeof(*b.lat), cmp_u64);
	printf("concurrency %d, %zu-byte bodies: %llu messages in %.2f s = %.0f msg/s, "
	       "%.1f per log flush, latency p50 %.2f ms p99 %.2f ms, %llu failed\n",
	       conc, b.size, (unsigned long long)b.done, elapsed / 1e9, b.done / (elapsed / 1e9),
	       flushes ? (double)commits / flushes : 0.0, b.lat[b.nlat / 2] / 1e6,
	       b.lat[b.nlat * 99 / 100] / 1e6, (unsigned long long)b.failed);
	queue_writer_stop(b.q);
	uv_run(&b.loop, UV_RUN_DEFAULT);
	queue_close(b.q);
	uv_loop_close(&b.loop);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(slots);
	free(b.body);
	free(b.lat);
	return b.failed != 0;
}
