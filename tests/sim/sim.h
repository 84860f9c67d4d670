/* Deterministic simulation of a cluster of Raft cores in one process.
 *
 * The world owns the clock (10 time units per tick), a network that drops,
 * delays, reorders, duplicates and partitions messages, one disk per node
 * whose writes complete in order after a random latency, and crashes that
 * lose every write not yet complete. Per seed, nemeses may also target
 * the dangerous moments: crash a voter before its vote is durable, crash or
 * cut off leaders often, or play the Figure 8 script (sim_world.c). A seed
 * determines everything. After
 * every event (delivery, disk completion, tick, client request, fault) the
 * checks in sim_check.c run on what changed:
 *
 *   S1 election safety: at most one leader per term;
 *   S2 log matching: two logs with an entry of the same index and term hold
 *      the same entry there and agree on the term before it;
 *   S3 leader completeness: a leader holds every entry applied anywhere;
 *   S4 state machine safety: no two nodes apply different entries at one
 *      index;
 *   S5 durability: a write acknowledged to a client is never lost (it stays
 *      applied at its index and in every later leader's log);
 *   S6 linearizable reads: a read sees every write acknowledged before the
 *      read began;
 *   S7 loss reports: a leader reports that a member lost acknowledged log
 *      entries only if that member's disk was wiped, and once per wipe;
 *   L1 liveness: once faults heal, a leader emerges and a write commits
 *      within a bounded number of ticks;
 *   L2 after the faults, on some seeds, a follower's disk is wiped (as if
 *      its data directory were replaced by an empty one): it is caught up
 *      again and then makes a quorum with the leader.
 * Wiping a disk is outside Raft's fault model (a member forgets its vote
 * and its acknowledged entries), so it is done only once the cluster is
 * quiet, with one leader that stays.
 */
#ifndef SIM_H
#define SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libraft/raft.h"

#define SIM_MAX_NODES	   5
#define SIM_UNITS_PER_TICK 10

struct sim_log {
	struct raft_entry *v; /* payloads owned */
	size_t n, cap;
};

struct sim_job {
	bool hs;
	raft_term term;
	raft_id vote;
	struct raft_entry *ents; /* payloads owned */
	size_t n_ents;
	struct raft_msg *msgs; /* deep copies */
	size_t n_msgs;
	uint64_t at;
};

struct sim_node {
	raft_id id;
	struct raft *r; /* NULL while crashed */
	unsigned phase; /* tick offset within a tick's units */
	uint64_t restarts;
	uint64_t down_until; /* restart time while crashed */
	uint64_t crash_at;   /* a crash scheduled by the nemesis; 0: none */
	/* Durable: what survives a crash. */
	raft_term d_term;
	raft_id d_vote;
	struct sim_log disk;
	/* The log as handed out by the core (durable or not). */
	struct sim_log wal;
	struct sim_job *jobs;
	size_t n_jobs, cap_jobs;
	/* State machine, durable with its applied index (as LMDB would be):
	 * a register holding the last write. */
	raft_index sm_applied;
	raft_index sm_write_index;
	uint64_t sm_write_op;
	enum raft_role role;
	raft_term term;
	unsigned wipes;		  /* times its disk was wiped */
	unsigned losses_reported; /* times a leader reported it (S7) */
};

struct sim_flight {
	struct raft_msg m; /* deep copy */
	uint64_t at;
};

struct sim_write {
	uint64_t op;
	raft_id node;
	raft_index index;
	raft_term term;
};

struct sim_read {
	uint64_t id;
	raft_id node;
	raft_index min_index; /* highest acknowledged write at start */
};

/* What was applied at one index, anywhere. */
struct sim_applied {
	raft_term term; /* 0: nothing applied here yet */
	uint64_t op;
	/* The highest term any node had when it was first applied: it was
	 * committed in this term or earlier, so every leader of this term or
	 * later must hold it (S3). */
	raft_term bound;
};

/* Every distinct (index, term) seen in any log: its predecessor's term and
 * its content, for S2. */
struct sim_lm {
	raft_term term, prev;
	uint64_t op;
};

struct sim_lm_slot {
	struct sim_lm *v;
	size_t n, cap;
};

struct sim {
	uint64_t seed;
	uint64_t rng;
	bool verbose;
	size_t n;
	struct raft_config cfg;
	raft_id peers[SIM_MAX_NODES];
	struct sim_node nodes[SIM_MAX_NODES];
	uint64_t now;

	/* Network. */
	struct sim_flight *net;
	size_t n_net, cap_net;
	bool cut[SIM_MAX_NODES + 1][SIM_MAX_NODES + 1]; /* from, to */
	unsigned p_drop, p_dup, p_long;			/* per mille */
	unsigned disk_max; /* max disk latency in units */
	bool faults;	   /* faults may happen now */
	bool vote_crash; /* nemesis: crash voters before the vote is durable */
	bool churn;	 /* nemesis: crash or isolate leaders often */
	bool fig8;	 /* nemesis: the Figure 8 script (sim_world.c) */
	int f8_state;
	raft_id f8_a, f8_c;
	bool f8_cut[SIM_MAX_NODES + 1];
	uint64_t f8_deadline;
	uint64_t heal_at; /* when the current cut heals */

	/* Checks. */
	raft_id *leaders; /* by term */
	size_t cap_leaders;
	struct sim_applied *applied; /* by index */
	size_t cap_applied;
	raft_index max_applied;
	struct sim_lm_slot *lm; /* by index */
	size_t cap_lm;
	struct sim_write *pending;
	size_t n_pending, cap_pending;
	struct sim_write *acked;
	size_t n_acked, cap_acked;
	raft_index max_acked_index;
	struct sim_read *reads;
	size_t n_reads, cap_reads;
	uint64_t next_op, next_read;
	size_t n_read_ok;

	bool failed;
	char why[512];
};

/* sim_world.c */
int sim_init(struct sim *s, uint64_t seed, bool verbose);
void sim_close(struct sim *s);
uint64_t sim_rand(struct sim *s);
unsigned sim_below(struct sim *s, unsigned n);
void sim_trace(struct sim *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sim_fail(struct sim *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Advance the world by one unit of time. */
void sim_step(struct sim *s);
void sim_crash(struct sim *s, struct sim_node *nd);
void sim_restart(struct sim *s, struct sim_node *nd);
/* Crash nd, empty its disk and state machine, and start it again. */
void sim_wipe(struct sim *s, struct sim_node *nd);
int sim_propose(struct sim *s, struct sim_node *nd);
void sim_read(struct sim *s, struct sim_node *nd);
void sim_drain(struct sim *s, struct sim_node *nd);
struct sim_node *sim_leader(struct sim *s);

/* sim_check.c */
void sim_check_entry(struct sim *s, struct sim_node *nd,
		     const struct raft_entry *e, raft_term prev);
void sim_check_apply(struct sim *s, struct sim_node *nd,
		     const struct raft_entry *e);
void sim_check_leader(struct sim *s, struct sim_node *nd);
void sim_check_read(struct sim *s, struct sim_node *nd,
		    const struct raft_read *rd);
void sim_check_loss(struct sim *s, struct sim_node *nd,
		    const struct raft_log_loss *loss);
void sim_check_final(struct sim *s);
uint64_t sim_entry_op(const struct raft_entry *e);

/* sim_bench.c */
int sim_bench(int argc, char **argv);

#endif /* SIM_H */
