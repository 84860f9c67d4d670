/* Apply throughput of the LMDB state machine.
 *
 * For each durability mode and batch size, applies batches of 256-byte puts
 * to new random keys in a fresh store for about --seconds, timing only
 * kvsm_apply() (encoding is done between calls), and prints records/s and
 * the mean and worst batch latency. The store lives under --dir (default
 * $TMPDIR or /tmp), so point it at the disk the node will use: a tmpfs makes
 * every sync free.
 *
 *   kv_apply [--dir DIR] [--seconds S] [--mode sync|nometasync|nosync|all]
 */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv/kvsm.h"

#define VALUE_SIZE 256

struct mode {
	const char *name;
	bool no_sync;
	bool no_meta_sync;
	const char *note;
};

static const struct mode modes[] = {
    {"sync", false, false, "kvsm default: durable on return"},
    {"nometasync", false, true, "one sync per batch"},
    {"nosync", true, false, "no sync: what kvd runs, ADR 0007"},
};

static const size_t batch_sizes[] = {1, 64, 1024};

static double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* splitmix64: distinct indexes give distinct, scattered keys. */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Encode n puts starting at index first. */
static int make_batch(struct raft_entry *e, size_t n, raft_index first)
{
	char key[32], val[VALUE_SIZE];

	for (size_t i = 0; i < n; i++) {
		uint64_t h = mix(first + i);

		snprintf(key, sizeof key, "key-%016llx", (unsigned long long)h);
		memset(val, 'a' + (int)(h % 26), sizeof val);
		e[i].index = first + i;
		e[i].term = 1;
		e[i].type = RAFT_ENTRY_COMMAND;
		if (kvsm_encode_put(key, strlen(key), val, sizeof val,
				    &e[i].data, &e[i].len) != RAFT_OK) {
			return -1;
		}
	}
	return 0;
}

static void free_batch(struct raft_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].data);
		e[i].data = NULL;
	}
}

/* One mode and batch size in a fresh store under root. */
static int run_one(const char *root, const struct mode *m, size_t batch,
		   double seconds)
{
	struct kvsm_options o = {.no_sync = m->no_sync,
				 .no_meta_sync = m->no_meta_sync};
	struct raft_entry *e = calloc(batch, sizeof *e);
	struct kvsm_result *r = calloc(batch, sizeof *r);
	double busy = 0, worst = 0, start;
	char dir[4096], msg[256];
	struct kvsm *kv = NULL;
	raft_index next = 1;
	uint64_t batches = 0;
	int rc = -1;

	snprintf(dir, sizeof dir, "%s/%s-%zu", root, m->name, batch);
	if (e == NULL || r == NULL) {
		goto out;
	}
	if (kvsm_open(dir, &o, &kv, msg, sizeof msg) != RAFT_OK) {
		fprintf(stderr, "kv_apply: %s\n", msg);
		goto out;
	}
	start = now_sec();
	while (now_sec() - start < seconds) {
		double t0, dt;

		if (make_batch(e, batch, next) != 0) {
			goto out;
		}
		t0 = now_sec();
		rc = kvsm_apply(kv, e, batch, r);
		dt = now_sec() - t0;
		free_batch(e, batch);
		if (rc != RAFT_OK) {
			fprintf(stderr, "kv_apply: %s\n", raft_strerror(rc));
			goto out;
		}
		busy += dt;
		worst = dt > worst ? dt : worst;
		next += batch;
		batches++;
	}
	printf("%-11s batch %5zu  %10.0f records/s  %8.1f MB/s  "
	       "batch mean %8.3f ms  max %8.3f ms  (%s)\n",
	       m->name, batch, (double)(next - 1) / busy,
	       (double)(next - 1) * VALUE_SIZE / busy / 1e6,
	       busy / (double)batches * 1e3, worst * 1e3, m->note);
	fflush(stdout);
	rc = 0;
out:
	kvsm_close(kv);
	free(e);
	free(r);
	return rc;
}

int main(int argc, char **argv)
{
	const char *tmp = getenv("TMPDIR");
	const char *dir = tmp != NULL ? tmp : "/tmp";
	const char *mode = "all";
	double seconds = 1.0;
	char root[2048];
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
			dir = argv[++i];
		} else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			seconds = atof(argv[++i]);
		} else if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc) {
			mode = argv[++i];
		} else {
			fprintf(stderr,
				"usage: kv_apply [--dir DIR] [--seconds S] "
				"[--mode sync|nometasync|nosync|all]\n");
			return 2;
		}
	}
	snprintf(root, sizeof root, "%s/kv_apply.XXXXXX", dir);
	if (mkdtemp(root) == NULL) {
		perror(root);
		return 1;
	}
	printf("kv apply: %d-byte values, random new keys, %.1f s per row, "
	       "store in %s\n",
	       VALUE_SIZE, seconds, dir);
	for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
		if (strcmp(mode, "all") != 0 &&
		    strcmp(mode, modes[m].name) != 0) {
			continue;
		}
		for (size_t b = 0; b < sizeof batch_sizes / sizeof *batch_sizes;
		     b++) {
			if (run_one(root, &modes[m], batch_sizes[b], seconds) !=
			    0) {
				rc = 1;
			}
		}
	}
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}
