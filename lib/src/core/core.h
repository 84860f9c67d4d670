/* Internal state of the Raft core, shared by its modules.
 *
 * Roles (Raft paper Figure 4, dissertation 9.6 for the pre-candidate):
 *
 *                 timeout, pre_vote                 quorum of prevotes
 *   FOLLOWER ---------------------------> PRECANDIDATE --------------+
 *     ^  |                                     |                     |
 *     |  | timeout, no pre_vote                | higher term, leader v
 *     |  +--------------------------------> CANDIDATE <--- timeout --+
 *     |                                        |
 *     |  higher term, leader seen,             | quorum of votes
 *     |  check-quorum failure                  v
 *     +------------------------------------- LEADER
 *
 *   election.c: core_become_follower(), core_campaign(), core_become_leader()
 *   make every transition; each resets the election timer.
 *
 * Invariants (I1-I3 and I5 checked by core_invariants() in assertions
 * after every input; I4 asserted by core_log_append()):
 *   I1  commit <= last index of the log, applied <= commit.
 *   I2  persisted <= last index; entries through persisted are durable.
 *   I3  unstable - 1 <= last index; entries before unstable were handed to the
 *       caller for persisting.
 *   I4  terms of the log never decrease along the log.
 *   I5  a leader's progress: match < next <= last + 1 for every peer.
 */
#ifndef RAFT_CORE_H
#define RAFT_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libraft/raft.h"

/* Memory that an outstanding update may still point to. While an update is
 * out (raft_get_update() called, raft_advance() not yet), arrays are never
 * realloc'd in place and payloads never freed: the old block is parked here
 * and freed by raft_advance(). */
struct core_grave {
	void **ptrs;
	size_t n, cap;
	bool update_out;
};

void core_grave_free(struct core_grave *g, void *p);
void core_grave_flush(struct core_grave *g);
/* Make room for need elements of size elem in *arr (capacity *cap). Moves
 * the array instead of reallocating it while an update is out. */
int core_grow(struct core_grave *g, void **arr, size_t *cap, size_t elem,
	      size_t need);

/* Payloads live in slabs, carved in log order, so that appending costs no
 * allocation per entry. A slab is freed when the last entry in it is cut
 * from the log; space freed by a cut is not reused. A payload larger than a
 * quarter of a slab gets a slab of its own. */
struct core_slab {
	size_t used, cap;
	size_t live; /* entries of the log whose payload is here */
	unsigned char data[];
};

#define CORE_SLAB_SIZE (64 * 1024 - sizeof(struct core_slab))

/* The in-memory log (log.c). Entry i lives at entries[i - 1] and its
 * payload in slab[i - 1] (NULL when empty). Payloads never move, so the
 * array can grow without moving them. */
struct core_log {
	struct raft_entry *entries;
	size_t n, cap;
	struct core_slab **slab;
	size_t slab_cap;
	struct core_slab *bump; /* where the next payload is carved */
	struct core_grave *grave;
};

void core_log_init(struct core_log *l, struct core_grave *g);
void core_log_close(struct core_log *l);
raft_index core_log_last(const struct core_log *l);
raft_term core_log_last_term(const struct core_log *l);
/* Term of the entry at index; 0 for index 0 or beyond the log. */
raft_term core_log_term(const struct core_log *l, raft_index index);
const struct raft_entry *core_log_get(const struct core_log *l,
				      raft_index index);
/* Append one entry at last + 1, copying len bytes of data. */
int core_log_append(struct core_log *l, raft_term term, uint8_t type,
		    const void *data, size_t len);
/* Drop every entry at index and after. */
void core_log_truncate(struct core_log *l, raft_index index);
/* Largest index <= index whose term is <= term (0 if none). Terms never
 * decrease along the log, so this is a binary search. */
raft_index core_log_last_at_or_below(const struct core_log *l, raft_index index,
				     raft_term term);
/* True if (index, term) is at least as up to date as this log (Raft paper
 * section 5.4.1). */
bool core_log_up_to_date(const struct core_log *l, raft_index index,
			 raft_term term);

/* Replication state of one peer, as the leader tracks it (progress.c).
 *
 *   PROBE ---- APPEND accepted ----> REPLICATE
 *     ^                                  |
 *     +-- APPEND rejected (not stale) ---+
 *     +-- log lost below match ----------+  (from either state)
 *
 * PROBE: at most one APPEND with entries in flight (probe_sent), resent each
 * heartbeat; next walks back by the follower's hints. REPLICATE: next runs
 * ahead of match; up to max_inflight_msgs / max_inflight_bytes APPENDs are
 * in flight (pipelining), tracked in a ring of their last indexes.
 *
 * match only grows, except when the follower shows that its log now ends
 * below it (core_handle_append_resp()): then match drops to where the log
 * ends and probing starts there (core_prog_lost()). */
enum core_prog_state {
	CORE_PROBE = 0,
	CORE_REPLICATE = 1,
};

struct core_inflight {
	raft_index last;
	size_t bytes;
};

struct core_prog {
	raft_id id;
	raft_index match;
	raft_index next;
	enum core_prog_state state;
	bool probe_sent;
	bool recent_active;   /* heard from since the last CheckQuorum round */
	uint64_t acked_round; /* highest heartbeat round it answered */
	uint64_t match_round; /* the leader's round when match last rose */
	uint64_t ack_floor;   /* acceptances of APPENDs of earlier rounds
				 are ignored: they may predate a loss of
				 its log */
	raft_index commit_sent; /* highest commit index sent to it */
	int vote; /* election: 0 no answer, 1 granted, -1 refused */
	struct core_inflight *ring;
	size_t ring_cap, ring_start, ring_n;
	size_t ring_bytes;
};

int core_prog_init(struct core_prog *p, raft_id id, size_t max_inflight);
void core_prog_close(struct core_prog *p);
void core_prog_reset(struct core_prog *p, raft_index last);
bool core_prog_paused(const struct core_prog *p, size_t max_bytes);
void core_prog_sent(struct core_prog *p, raft_index last, size_t bytes);
/* An APPEND ack for entries through index arrived. Returns true if match
 * moved. */
bool core_prog_acked(struct core_prog *p, raft_index index);
void core_prog_become_probe(struct core_prog *p);
void core_prog_become_replicate(struct core_prog *p);
/* The follower's log now ends at last, below match: match drops to last
 * and probing resumes from last + 1. */
void core_prog_lost(struct core_prog *p, raft_index last);

/* A queue of outgoing messages. APPENDs keep entries == NULL while queued:
 * their entries are log[index + 1 .. index + n_entries] and are resolved to
 * pointers by raft_get_update(), so a growing log never leaves a dangling
 * pointer here. */
struct core_outbox {
	struct raft_msg *msgs;
	size_t n, cap;
};

/* A read request (read.c). */
struct core_read {
	uint64_t id;  /* the caller's id (local) or the follower's context */
	raft_id from; /* 0: local to this node; else the follower asking */
	raft_index index; /* read index, once known */
	uint64_t round;	  /* heartbeat round that confirms it; 0: none yet */
	uint64_t ctx;	  /* follower: context of the forwarded request */
	unsigned age;	  /* ticks waited, for forwarded reads */
};

struct core_reads {
	struct core_read *v;
	size_t n, cap;
};

struct raft {
	struct raft_config cfg;
	raft_id peer_ids[RAFT_MAX_PEERS];
	size_t n_peers;
	size_t quorum;
	uint64_t rng;

	/* Durable state (Raft paper Figure 2), as the core knows it. */
	raft_term term;
	raft_id vote;
	struct core_log log;

	/* Volatile state. */
	enum raft_role role;
	raft_id leader;
	raft_index commit;
	raft_index applied;   /* the caller applied through this */
	raft_index persisted; /* durable through this (raft_persisted) */
	raft_term durable_term; /* term known durable: restored, or reported
				   by raft_hard_state_persisted() */
	unsigned elapsed;     /* ticks since the last reset of the timer */
	unsigned timeout;     /* randomized election timeout */
	unsigned hb_elapsed;  /* leader: ticks since the last heartbeat */

	/* Leader state. */
	struct core_prog prog[RAFT_MAX_PEERS]; /* indexed like peer_ids */
	size_t self;			       /* our slot in peer_ids */
	bool term_committed; /* an entry of this term is committed */
	bool need_flush;     /* raft_get_update() should send APPENDs */
	uint64_t round;	     /* last heartbeat round sent */
	/* Followers found to have lost acknowledged entries, for the next
	 * update. One slot per member is plenty (each loss needs the member
	 * to acknowledge again first); a report that finds them full is
	 * dropped, the repair is not. */
	struct raft_log_loss losses[RAFT_MAX_PEERS];
	size_t n_losses;

	/* Reads: waiting for a round (leader) or an answer (follower), and
	 * ready ones waiting for applied >= index. */
	struct core_reads reads_wait;
	struct core_reads reads_ready; /* served; waiting for apply */
	struct raft_read *reads_done;  /* for the update */
	size_t n_reads_done, cap_reads_done;
	uint64_t read_seq; /* follower: context of forwarded reads */

	/* What the caller has already taken (for raft_get_update()). */
	raft_term hs_term;
	raft_id hs_vote;
	raft_index unstable;   /* first entry not yet handed out to persist */
	raft_index apply_next; /* first committed entry not yet handed out */
	enum raft_role ss_role;
	raft_id ss_leader;
	struct core_outbox out;	      /* send now */
	struct core_outbox out_after; /* send once persisted */
	size_t out_handed;	      /* out.n at the last raft_get_update() */
	uint64_t trunc_gen;	      /* counts truncations of the log */
	uint64_t upd_gen;	      /* trunc_gen at raft_get_update() */

	struct core_grave grave;
};

/* raft.c */
int core_send(struct raft *r, struct raft_msg *m, bool after_persist);
struct core_prog *core_prog_of(struct raft *r, raft_id id);
uint64_t core_rand(struct raft *r);
bool core_invariants(const struct raft *r);

/* election.c */
void core_become_follower(struct raft *r, raft_term term, raft_id leader);
int core_campaign(struct raft *r, bool pre);
int core_become_leader(struct raft *r);
void core_tick_election(struct raft *r);
int core_handle_vote(struct raft *r, const struct raft_msg *m);
int core_handle_vote_resp(struct raft *r, const struct raft_msg *m);
void core_reset_timer(struct raft *r);

/* replication.c */
int core_handle_append(struct raft *r, const struct raft_msg *m);
int core_handle_append_resp(struct raft *r, const struct raft_msg *m);
int core_flush(struct raft *r);
int core_heartbeat(struct raft *r);
void core_tick_leader(struct raft *r);
void core_maybe_commit(struct raft *r);

/* read.c */
int core_read_request(struct raft *r, uint64_t id, raft_id from);
int core_handle_read_index(struct raft *r, const struct raft_msg *m);
int core_handle_read_index_resp(struct raft *r, const struct raft_msg *m);
int core_reads_round_acked(struct raft *r);
void core_reads_assign_round(struct raft *r);
int core_reads_applied(struct raft *r);
int core_reads_fail_waiting(struct raft *r, int status);
void core_reads_tick(struct raft *r);
void core_reads_close(struct raft *r);

#endif /* RAFT_CORE_H */
