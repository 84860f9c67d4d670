/* Benchmark of the durable log: appends per second and latency to durable
 * with 1, 16 and 256 concurrent proposers, each submitting its next 256-byte
 * record once the previous one is durable; and, as the baseline, a raw
 * write + fdatasync of the same record size into a preallocated file.
 *
 *   log_bench [DIR [SECONDS [PROPOSERS]]]
 *
 * DIR defaults to /var/tmp (it must not be tmpfs); PROPOSERS runs only the
 * raw baseline and that one count. Each run with sync first writes one
 * segment's worth of records untimed, so that the timed part writes into
 * segments made from prepared spares, as a long-running node does.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/format.h"
#include "log/internal.h"
#include "log/io.h"
#include "log/log.h"

#define PAYLOAD		256
#define MAX_PROPOSERS	256
#define DEFAULT_SEGMENT (64u * 1024 * 1024) /* rlog's default */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

struct samples {
	uint64_t *v;
	size_t n, cap;
};

static void samples_add(struct samples *s, uint64_t ns)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 65536;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		if (s->v == NULL) {
			perror("realloc");
			exit(1);
		}
	}
	s->v[s->n++] = ns;
}

static void report(const char *what, struct samples *s, uint64_t elapsed_ns)
{
	qsort(s->v, s->n, sizeof(*s->v), cmp_u64);
	printf("%-28s %10.0f rec/s   p50 %7.1f us   p99 %7.1f us   (%zu)\n",
	       what, (double)s->n * 1e9 / (double)elapsed_ns,
	       (double)s->v[s->n / 2] / 1e3,
	       (double)s->v[s->n * 99 / 100] / 1e3, s->n);
}

/* The raw baseline: one record-sized write and one fdatasync at a time. */
static double bench_raw(const char *dir, double seconds)
{
	char path[4096];
	uint8_t buf[RLOG_REC_HDR + PAYLOAD];
	struct samples s = {0};
	uint64_t start, end, off = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/raw", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || posix_fallocate(fd, 0, 64 << 20) != 0 || fsync(fd)) {
		perror(path);
		exit(1);
	}
	memset(buf, 0x5a, sizeof(buf));
	start = uv_hrtime();
	end = start + (uint64_t)(seconds * 1e9);
	for (uint64_t t = start; t < end;) {
		if (pwrite(fd, buf, sizeof(buf), (off_t)off) !=
			(ssize_t)sizeof(buf) ||
		    fdatasync(fd) != 0) {
			perror("raw write");
			exit(1);
		}
		off = (off + sizeof(buf)) % (64 << 20);
		uint64_t now = uv_hrtime();
		samples_add(&s, now - t);
		t = now;
	}
	report("raw write+fdatasync", &s, uv_hrtime() - start);
	close(fd);
	unlink(path);
	qsort(s.v, s.n, sizeof(*s.v), cmp_u64);
	double p50 = (double)s.v[s.n / 2];
	free(s.v);
	return p50;
}

struct proposer {
	struct rlog_req req;
	uint64_t sent;
	struct run *run;
};

struct run {
	struct rlog *log;
	raft_index next;
	raft_index stop_at; /* no proposal past this index */
	uint64_t end;
	size_t active;
	struct samples lat;
	uint8_t payload[PAYLOAD];
	struct proposer p[MAX_PROPOSERS];
};

static void propose(struct run *r, struct proposer *p);

static void durable_cb(struct rlog_req *req, int status)
{
	struct proposer *p = req->data;
	uint64_t now = uv_hrtime();

	if (status != RAFT_OK) {
		fprintf(stderr, "log write failed: %s\n",
			raft_strerror(status));
		exit(1);
	}
	samples_add(&p->run->lat, now - p->sent);
	if (now < p->run->end && p->run->next <= p->run->stop_at)
		propose(p->run, p);
	else
		p->run->active--;
}

static void propose(struct run *r, struct proposer *p)
{
	struct raft_entry e = {.term = 1,
			       .index = r->next++,
			       .type = RAFT_ENTRY_COMMAND,
			       .data = r->payload,
			       .len = PAYLOAD};
	int rc;

	memset(&p->req, 0, sizeof(p->req));
	p->req.data = p;
	p->req.entries = &e;
	p->req.n_entries = 1;
	p->req.cb = durable_cb;
	p->sent = uv_hrtime();
	rc = rlog_write(r->log, &p->req);
	if (rc != RAFT_OK) {
		fprintf(stderr, "rlog_write: %s\n", raft_strerror(rc));
		exit(1);
	}
}

static void hard_state_cb(struct rlog_req *req, int status)
{
	*(int *)req->data = status;
}

static void closed_cb(void *arg)
{
	*(bool *)arg = true;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	return remove(path);
}

/* Run proposers until seconds have passed or index stop_at was proposed;
 * returns the elapsed time. */
static uint64_t run_phase(struct run *r, uv_loop_t *loop, size_t proposers,
			  double seconds, raft_index stop_at)
{
	uint64_t start = uv_hrtime();

	r->lat.n = 0;
	r->end = start + (uint64_t)(seconds * 1e9);
	r->stop_at = stop_at;
	r->active = proposers;
	for (size_t i = 0; i < proposers; i++) {
		r->p[i].run = r;
		propose(r, &r->p[i]);
	}
	while (r->active > 0)
		uv_run(loop, UV_RUN_ONCE);
	return uv_hrtime() - start;
}

enum mode { SYNC, SYNC_NO_SPARE, NO_SYNC, SYNC_WORKER };

static double bench_log(const char *dir, size_t proposers, double seconds,
			enum mode mode)
{
	static const char *const suffix[] = {"", ", no spares", ", no sync",
					     ", all through the worker"};
	struct run *r = calloc(1, sizeof(*r));
	struct rlog_options o = {
	    .no_sync = mode == NO_SYNC,
	    .no_direct = mode == SYNC_WORKER};
	struct rlog_loaded ld;
	struct rlog_req hs = {
	    .set_hard_state = true, .term = 1, .vote = 1, .cb = hard_state_cb};
	uv_loop_t loop;
	char sub[4096], err[512], what[64];
	int hs_status = 1;
	bool closed = false;
	uint64_t elapsed;
	unsigned long writes0, batches0;
	double p50;

	snprintf(sub, sizeof(sub), "%s/log", dir);
	uv_loop_init(&loop);
	rlog_io.no_spare = mode == SYNC_NO_SPARE;
	if (r == NULL ||
	    rlog_open(&loop, sub, &o, &r->log, &ld, err, sizeof(err))) {
		fprintf(stderr, "rlog_open: %s\n", err);
		exit(1);
	}
	rlog_loaded_free(&ld);
	hs.data = &hs_status;
	rlog_write(r->log, &hs);
	while (hs_status == 1)
		uv_run(&loop, UV_RUN_ONCE);
	memset(r->payload, 0xa5, sizeof(r->payload));
	r->next = 1;

	/* Warm up through the first segment (made at open) so that the
	 * figures show the steady state: segments from spares. */
	if (mode != NO_SYNC)
		run_phase(r, &loop, MAX_PROPOSERS, 1e6,
			  DEFAULT_SEGMENT / (RLOG_REC_HDR + PAYLOAD) + 1000);
	writes0 = r->log->dio_writes;
	batches0 = r->log->worker_batches;
	elapsed = run_phase(r, &loop, proposers, seconds, UINT64_MAX);
	snprintf(what, sizeof(what), "log, %zu proposer%s%s", proposers,
		 proposers > 1 ? "s" : "", suffix[mode]);
	report(what, &r->lat, elapsed);
	if (mode != NO_SYNC)
		printf("    %lu direct writes, %lu batches through the worker\n",
		       r->log->dio_writes - writes0,
		       r->log->worker_batches - batches0);
	p50 = (double)r->lat.v[r->lat.n / 2];

	rlog_close(r->log, closed_cb, &closed);
	while (!closed)
		uv_run(&loop, UV_RUN_ONCE);
	uv_loop_close(&loop);
	rlog_io.no_spare = false;
	nftw(sub, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(r->lat.v);
	free(r);
	return p50;
}

int main(int argc, char **argv)
{
	const char *parent = argc > 1 ? argv[1] : "/var/tmp";
	double seconds = argc > 2 ? atof(argv[2]) : 3.0;
	size_t counts[] = {1, 16, 256};
	size_t only = argc > 3 ? (size_t)atoi(argv[3]) : 0;
	char dir[1024];
	double raw, one;

	snprintf(dir, sizeof(dir), "%s/log_bench.XXXXXX", parent);
	if (mkdtemp(dir) == NULL) {
		perror(dir);
		return 1;
	}
	printf("log benchmark in %s, %d-byte records, %.1f s per run\n", dir,
	       PAYLOAD, seconds);
	raw = bench_raw(dir, seconds);
	if (only > 0) {
		double p50 = bench_log(dir, only, seconds, SYNC);
		printf("p50 / raw p50: %.2f\n", p50 / raw);
		rmdir(dir);
		return 0;
	}
	one = bench_log(dir, counts[0], seconds, SYNC);
	/* The same without direct writes from the loop, for comparison. */
	bench_log(dir, 1, seconds, SYNC_WORKER);
	for (size_t i = 1; i < sizeof(counts) / sizeof(counts[0]); i++)
		bench_log(dir, counts[i], seconds, SYNC);
	/* Segments preallocated with fallocate only, for comparison. */
	bench_log(dir, 256, seconds, SYNC_NO_SPARE);
	/* What the thread hand-offs cost without the disk. */
	bench_log(dir, 1, seconds / 2, NO_SYNC);
	bench_log(dir, 256, seconds / 2, NO_SYNC);
	printf("1 proposer p50 / raw p50: %.2f\n", one / raw);
	rmdir(dir);
	return 0;
}
