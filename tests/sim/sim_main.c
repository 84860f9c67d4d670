/* sim: run the deterministic simulation over many seeds, or replay one.
 *
 *   sim --seeds N [--first S] [--stop-on-failure]
 *                               seeds S..S+N-1 (S defaults to 1)
 *   sim --seed S [-v]           one seed, with a trace under -v
 *   sim --bench [ENTRIES]       core throughput, see sim_bench.c
 *
 * Each seed: a 3- or 5-node cluster runs 300-600 ticks under mixed faults
 * with random writes and reads, then every fault heals and a leader must
 * emerge and commit a write within LIVENESS_TICKS (L1). On one seed in
 * four a follower's disk is then wiped (L2).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

#define LIVENESS_TICKS 200
#define SETTLE_TICKS   30
#define CATCH_UP_TICKS 400

struct totals {
	unsigned long long acked, reads, ticks;
};

static bool op_acked(const struct sim *s, uint64_t op)
{
	for (size_t i = s->n_acked; i > 0; i--) {
		if (s->acked[i - 1].op == op) {
			return true;
		}
	}
	return false;
}

static bool op_pending(const struct sim *s, uint64_t op)
{
	for (size_t i = 0; i < s->n_pending; i++) {
		if (s->pending[i].op == op) {
			return true;
		}
	}
	return false;
}

static void run_ticks(struct sim *s, uint64_t ticks)
{
	uint64_t end = s->now + ticks * SIM_UNITS_PER_TICK;

	while (s->now < end && !s->failed) {
		sim_step(s);
	}
}

/* L1: with the network healed and every node up, a leader emerges and a
 * write commits within LIVENESS_TICKS. */
static void check_liveness(struct sim *s)
{
	uint64_t deadline = s->now + LIVENESS_TICKS * SIM_UNITS_PER_TICK;
	uint64_t marker = 0;
	raft_id at = 0;

	while (s->now < deadline && !s->failed) {
		struct sim_node *l;

		run_ticks(s, 1);
		if (marker != 0 && op_acked(s, marker)) {
			sim_trace(s, "liveness: write committed");
			return;
		}
		l = sim_leader(s);
		/* Propose again if the leader changed or the write's
		 * outcome became unknown (its node crashed). */
		if (l != NULL &&
		    (marker == 0 || at != l->id || !op_pending(s, marker))) {
			if (sim_propose(s, l) == RAFT_OK) {
				marker = s->next_op;
				at = l->id;
			}
		}
	}
	sim_fail(s,
		 "L1 liveness: no write committed within %d ticks after "
		 "faults healed",
		 LIVENESS_TICKS);
}

/* A follower that has acknowledged entries to the leader, or NULL. */
static struct sim_node *acked_follower(struct sim *s, struct sim_node *l)
{
	struct raft_status st;

	raft_get_status(l->r, &st);
	for (size_t i = 0; i < st.n_peers; i++) {
		struct sim_node *nd = &s->nodes[st.peers[i].id - 1];
		if (nd != l && nd->r != NULL && st.peers[i].match > 0) {
			return nd;
		}
	}
	return NULL;
}

/* Has nd's state machine caught up with index? */
static bool caught_up(const struct sim_node *nd, raft_index index)
{
	return nd->r != NULL && nd->sm_applied >= index;
}

/* L2: wipe the disk of a follower that acknowledged entries to the quiet
 * cluster's leader. The leader must notice (S7: once), and the follower
 * must catch up within CATCH_UP_TICKS; then, with as many other members
 * down as a quorum allows, the leader and it must still commit (L1). */
static void check_wipe(struct sim *s)
{
	struct sim_node *l = sim_leader(s), *w;
	struct raft_status st;
	uint64_t deadline;
	raft_index target;
	size_t down = 0;

	if (l == NULL || (w = acked_follower(s, l)) == NULL) {
		return;
	}
	raft_get_status(l->r, &st);
	target = st.commit;
	sim_wipe(s, w);
	deadline = s->now + CATCH_UP_TICKS * SIM_UNITS_PER_TICK;
	while (!s->failed && s->now < deadline && !caught_up(w, target)) {
		run_ticks(s, 1);
	}
	if (s->failed) {
		return;
	}
	if (!caught_up(w, target)) {
		sim_fail(s,
			 "L2 wiped n%llu applied %llu of %llu within %d ticks",
			 (unsigned long long)w->id,
			 (unsigned long long)w->sm_applied,
			 (unsigned long long)target, CATCH_UP_TICKS);
		return;
	}
	if (sim_leader(s) == l && w->losses_reported != 1) {
		sim_fail(s, "S7 loss reports: wiped n%llu reported %u times",
			 (unsigned long long)w->id, w->losses_reported);
		return;
	}
	for (size_t i = 0; i < s->n && down < s->n - (s->n / 2 + 1); i++) {
		struct sim_node *nd = &s->nodes[i];
		if (nd != l && nd != w && nd->r != NULL) {
			sim_crash(s, nd);
			nd->down_until = UINT64_MAX;
			down++;
		}
	}
	sim_trace(s, "WIPE: n%llu caught up; %zu others down",
		  (unsigned long long)w->id, down);
	check_liveness(s);
	for (size_t i = 0; i < s->n; i++) {
		s->nodes[i].down_until = 0;
	}
}

static bool run_seed(uint64_t seed, bool verbose, const char *argv0,
		     struct totals *t)
{
	struct sim s;
	uint64_t ticks;
	bool ok;

	if (sim_init(&s, seed, verbose) == 0) {
		ticks = 300 + sim_below(&s, 300);
		run_ticks(&s, ticks);
		/* Heal: no more faults, everyone back. */
		s.faults = false;
		memset(s.cut, 0, sizeof(s.cut));
		memset(s.f8_cut, 0, sizeof(s.f8_cut));
		s.heal_at = 0;
		s.disk_max = 1 + sim_below(&s, 10);
		for (size_t i = 0; i < s.n; i++) {
			s.nodes[i].down_until = 0;
		}
		sim_trace(&s, "HEAL ALL");
		if (!s.failed) {
			check_liveness(&s);
		}
		run_ticks(&s, SETTLE_TICKS);
		/* A disrupted election may still be running (no PreVote). */
		for (int i = 0; i < LIVENESS_TICKS && !sim_leader(&s); i++) {
			run_ticks(&s, 1);
		}
		if (!s.failed) {
			sim_check_final(&s);
		}
		/* Last, so that the seed's earlier events stay as they
		 * were before this check existed. */
		if (!s.failed && sim_below(&s, 4) == 0) {
			check_wipe(&s);
			run_ticks(&s, SETTLE_TICKS);
			if (!s.failed) {
				sim_check_final(&s);
			}
		}
	}
	ok = !s.failed;
	t->acked += s.n_acked;
	t->reads += s.n_read_ok;
	t->ticks += s.now / SIM_UNITS_PER_TICK;
	if (!ok) {
		printf("seed %llu FAILED: %s\n", (unsigned long long)seed,
		       s.why);
		printf("  replay: %s --seed %llu -v\n", argv0,
		       (unsigned long long)seed);
	} else if (verbose) {
		printf("seed %llu passed: %zu writes acknowledged, %zu reads "
		       "served\n",
		       (unsigned long long)seed, s.n_acked, s.n_read_ok);
	}
	sim_close(&s);
	return ok;
}

static void usage(void)
{
	fprintf(stderr, "usage: sim --seeds N [--first S] [--stop-on-failure]\n"
			"       sim --seed S [-v]\n"
			"       sim --bench [ENTRIES]\n");
}

static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (s == NULL || *s == 0) {
		return false;
	}
	*out = strtoull(s, &end, 10);
	return *end == 0;
}

int main(int argc, char **argv)
{
	uint64_t first = 1, count = 0, one = 0;
	bool have_one = false, verbose = false, stop = false;
	unsigned long long passed = 0, failed = 0;
	struct totals t = {0};
	struct timespec a, b;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--bench") == 0) {
			return sim_bench(argc - i - 1, argv + i + 1);
		} else if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc &&
			   parse_u64(argv[i + 1], &count)) {
			i++;
		} else if (strcmp(argv[i], "--first") == 0 && i + 1 < argc &&
			   parse_u64(argv[i + 1], &first)) {
			i++;
		} else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc &&
			   parse_u64(argv[i + 1], &one)) {
			have_one = true;
			i++;
		} else if (strcmp(argv[i], "--stop-on-failure") == 0) {
			stop = true;
		} else if (strcmp(argv[i], "-v") == 0) {
			verbose = true;
		} else {
			usage();
			return 2;
		}
	}
	if (have_one) {
		first = one;
		count = 1;
	}
	if (count == 0) {
		usage();
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (uint64_t seed = first; seed < first + count; seed++) {
		if (run_seed(seed, verbose, argv[0], &t)) {
			passed++;
		} else {
			failed++;
			if (stop) {
				break;
			}
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("sim: %llu ticks, %llu writes acknowledged, %llu reads served "
	       "in %.1f s\n",
	       t.ticks, t.acked, t.reads,
	       (double)(b.tv_sec - a.tv_sec) +
		   (double)(b.tv_nsec - a.tv_nsec) / 1e9);
	printf("sim: %llu passed, %llu failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
