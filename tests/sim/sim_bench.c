/* sim --bench [ENTRIES] [BATCH]: throughput of the core alone.
 *
 * Three cores in one process on one thread. Messages go straight from one
 * core's update into another's raft_step(), disks complete at once, and the
 * state machine does nothing. The leader keeps a window of proposals of 100
 * bytes in flight, BATCH (default 256) added between rounds. Prints entries
 * committed (applied on the leader) per second; nothing is asserted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

#define BENCH_NODES 3

struct bench {
	struct raft *r[BENCH_NODES];
	raft_id ids[BENCH_NODES];
	unsigned long long applied[BENCH_NODES];
	unsigned long long msgs;
};

static void pump(struct bench *b, size_t i)
{
	struct raft *r = b->r[i];

	while (raft_has_update(r)) {
		struct raft_update u;

		raft_get_update(r, &u);
		for (size_t k = 0; k < u.n_msgs; k++) {
			raft_step(b->r[u.msgs[k].to - 1], &u.msgs[k]);
		}
		raft_advance(r, &u);
		if (u.n_entries > 0) {
			raft_persisted(r, u.entries[u.n_entries - 1].index,
				       u.entries[u.n_entries - 1].term);
		}
		for (size_t k = 0; k < u.n_msgs_after_persist; k++) {
			const struct raft_msg *m = &u.msgs_after_persist[k];
			raft_step(b->r[m->to - 1], m);
		}
		b->msgs += u.n_msgs + u.n_msgs_after_persist;
		if (u.n_committed > 0) {
			raft_index last = u.committed[u.n_committed - 1].index;
			b->applied[i] = last;
			raft_applied(r, last);
		}
	}
}

static double seconds(clockid_t clock)
{
	struct timespec t;

	clock_gettime(clock, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int sim_bench(int argc, char **argv)
{
	unsigned long long target =
	    argc > 0 ? strtoull(argv[0], NULL, 10) : 1000000;
	unsigned long long batch = argc > 1 ? strtoull(argv[1], NULL, 10) : 256;
	unsigned long long window = 64 * batch, proposed = 0, base;
	struct bench b;
	char payload[100];
	struct raft *l = NULL;
	double t0, t1, c0, c1;
	int rc = 0;

	memset(&b, 0, sizeof(b));
	memset(payload, 'x', sizeof(payload));
	for (size_t i = 0; i < BENCH_NODES; i++) {
		b.ids[i] = i + 1;
	}
	for (size_t i = 0; i < BENCH_NODES; i++) {
		struct raft_config cfg;
		char err[128];

		raft_config_init(&cfg);
		cfg.id = i + 1;
		cfg.peers = b.ids;
		cfg.n_peers = BENCH_NODES;
		cfg.seed = i + 1;
		if (raft_new(&cfg, NULL, &b.r[i], err, sizeof(err)) != 0) {
			fprintf(stderr, "bench: raft_new: %s\n", err);
			rc = 1;
			goto out;
		}
	}
	/* Elect node 1 by ticking only it. */
	for (int t = 0; t < 1000 && raft_role(b.r[0]) != RAFT_LEADER; t++) {
		raft_tick(b.r[0]);
		for (int k = 0; k < 4; k++) {
			for (size_t i = 0; i < BENCH_NODES; i++) {
				pump(&b, i);
			}
		}
	}
	l = b.r[0];
	if (raft_role(l) != RAFT_LEADER) {
		fprintf(stderr, "bench: no leader\n");
		rc = 1;
		goto out;
	}
	base = b.applied[0];
	t0 = seconds(CLOCK_MONOTONIC);
	c0 = seconds(CLOCK_PROCESS_CPUTIME_ID);
	while (b.applied[0] < base + target) {
		unsigned long long n = 0;
		while (n < batch && proposed < target &&
		       proposed - (b.applied[0] - base) < window) {
			if (raft_propose(l, payload, sizeof(payload), NULL,
					 NULL) != RAFT_OK) {
				fprintf(stderr, "bench: propose failed\n");
				rc = 1;
				goto out;
			}
			proposed++;
			n++;
		}
		for (size_t i = 0; i < BENCH_NODES; i++) {
			pump(&b, i);
		}
	}
	t1 = seconds(CLOCK_MONOTONIC);
	c1 = seconds(CLOCK_PROCESS_CPUTIME_ID);
	printf("bench-core: 3 nodes, 100-byte entries, batch %llu: %llu "
	       "entries committed in %.3f s = %.0f entries/s wall, "
	       "%.0f entries/s per CPU second (%.0f ns CPU/entry, %.3f "
	       "msgs/entry)\n",
	       batch, target, t1 - t0, (double)target / (t1 - t0),
	       (double)target / (c1 - c0), (c1 - c0) * 1e9 / (double)target,
	       (double)b.msgs / (double)target);
out:
	for (size_t i = 0; i < BENCH_NODES; i++) {
		raft_free(b.r[i]);
	}
	return rc;
}
