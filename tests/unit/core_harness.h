/* A small in-memory harness for the core's unit tests: nodes whose updates
 * are captured (messages deep-copied), a disk that is acknowledged only when
 * a test says so, and a cluster that delivers everything in order. */
#ifndef CORE_HARNESS_H
#define CORE_HARNESS_H

#include <stdbool.h>
#include <stddef.h>

#include "libraft/raft.h"

struct ch_msgs {
	struct raft_msg *v;
	size_t n, cap;
};

struct ch_node {
	struct raft *r;
	raft_id id;
	raft_id peers[RAFT_MAX_PEERS];
	size_t n_peers;
	/* Captured from updates. */
	size_t n_updates;
	size_t n_hard_states; /* updates carrying hard state */
	raft_term hs_term;
	raft_id hs_vote;
	raft_index written;	      /* last entry handed out to persist */
	raft_term written_term;	      /* its term */
	size_t n_written;	      /* entries handed out, in total */
	struct ch_msgs now;	      /* msgs */
	struct ch_msgs after;	      /* msgs_after_persist */
	struct raft_entry *committed; /* copies, payloads not owned */
	size_t n_committed, cap_committed;
	struct raft_read reads[64];
	size_t n_reads;
	struct raft_log_loss losses[16]; /* the first ones reported */
	size_t n_losses;		 /* reported in all */
	bool auto_apply; /* call raft_applied() for committed entries */
};

/* Fill cfg for node id of a cluster with ids 1..n. */
void ch_config(struct raft_config *cfg, raft_id *peers, raft_id id, size_t n);
/* Start node id of 1..n with cfg (NULL: defaults) and restore (NULL: new). */
void ch_start(struct ch_node *nd, raft_id id, size_t n,
	      const struct raft_config *cfg, const struct raft_restore *rs);
void ch_stop(struct ch_node *nd);
/* Take every pending update, capture it, and advance. */
void ch_drain(struct ch_node *nd);
/* Acknowledge everything handed out to persist. */
void ch_persist(struct ch_node *nd);
void ch_msgs_clear(struct ch_msgs *m);
void ch_clear(struct ch_node *nd);
/* The first captured message of type (to 0: any destination), or NULL. */
const struct raft_msg *ch_find(const struct ch_msgs *m, int type, raft_id to);
size_t ch_count(const struct ch_msgs *m, int type);
/* Feed a message to nd. */
int ch_step(struct ch_node *nd, const struct raft_msg *m);
void ch_tick(struct ch_node *nd, unsigned n);
/* Tick until nd leaves the follower role (or n ticks pass). */
void ch_tick_until_campaign(struct ch_node *nd);
/* Make a fresh node leader of a cluster of n by feeding it grants. */
void ch_make_leader(struct ch_node *nd);

/* A cluster that delivers every message in order and persists at once. */
struct ch_cluster {
	struct ch_node nodes[RAFT_MAX_PEERS];
	size_t n;
	bool down[RAFT_MAX_PEERS + 1]; /* by id: drop its traffic */
};

void ch_cluster_start(struct ch_cluster *c, size_t n,
		      const struct raft_config *base);
void ch_cluster_stop(struct ch_cluster *c);
struct ch_node *ch_node_of(struct ch_cluster *c, raft_id id);
/* Drain, persist and deliver until no message moves. */
void ch_cluster_settle(struct ch_cluster *c);
/* Tick every live node once, then settle. */
void ch_cluster_tick(struct ch_cluster *c);
/* The live leader with the highest term, or 0. */
raft_id ch_cluster_leader(struct ch_cluster *c);
/* Run ticks until some node leads; returns its id. */
raft_id ch_cluster_elect(struct ch_cluster *c, raft_id who);

#endif /* CORE_HARNESS_H */
