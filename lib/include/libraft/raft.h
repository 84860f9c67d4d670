/* libraft/raft.h: the pure Raft core.
 *
 * The core is a deterministic state machine. It never touches a socket, a
 * file, a clock or a thread. Time enters through raft_tick(), randomness
 * through the seed in struct raft_config, messages through raft_step(), and
 * everything the core wants done leaves as a struct raft_update that the
 * caller carries out and then acknowledges with raft_advance().
 *
 * The loop a caller runs:
 *
 *     raft_tick() / raft_step() / raft_propose() / raft_read_index()
 *     while (raft_has_update(r)) {
 *         raft_get_update(r, &u);
 *         1. start persisting u.term/u.vote (if u.hard_state_changed) and
 *            u.entries (dropping any stored entry at or after
 *            u.entries[0].index first); persists complete in order;
 *         2. send u.msgs now;
 *         3. send u.msgs_after_persist once step 1 is durable, and with
 *            it every persist started by an earlier update (when this
 *            update has nothing to persist, once the earlier ones are);
 *         4. apply u.committed to the state machine, in order;
 *         5. answer u.reads;
 *         raft_advance(r, &u);
 *     }
 *     when a persist of entries up to (index, term) completes:
 *         raft_persisted(r, index, term);
 *     when the state machine has applied through index:
 *         raft_applied(r, index);
 *
 * Everything an update points to stays valid until raft_advance(), except
 * the payloads of committed entries: those stay valid until the entries are
 * compacted away (never, in this version), so they may be applied
 * asynchronously after copying only the struct raft_entry array.
 *
 * A struct raft is not thread safe: one thread at a time calls into it.
 */
#ifndef LIBRAFT_RAFT_H
#define LIBRAFT_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define RAFT_API __attribute__((visibility("default")))
#else
#define RAFT_API
#endif

typedef uint64_t raft_id;    /* node id; 0 means "none" */
typedef uint64_t raft_term;  /* election term; 0 before the first election */
typedef uint64_t raft_index; /* log index; the first entry has index 1 */

/* Error codes returned by every libraft call. 0 is success; the rest are
 * negative so that a count and an error can share a return value. */
enum raft_error {
	RAFT_OK = 0,
	RAFT_ENOMEM = -1,     /* out of memory; nothing was changed */
	RAFT_EINVAL = -2,     /* an argument is out of range */
	RAFT_ENOTLEADER = -3, /* this node is not the leader; see raft_leader() */
	RAFT_EBUSY = -4,      /* flow control: too much is in flight, retry */
	RAFT_ESHUTDOWN = -5,  /* the object is closing or has failed */
	RAFT_EIO = -6,        /* a read, write or sync failed */
	RAFT_ECORRUPT = -7,   /* stored data failed a check */
	RAFT_ENOSPC = -8,     /* no space left on the device */
	RAFT_ETOOBIG = -9,    /* a key, value or message exceeds its limit */
	RAFT_ENOTFOUND = -10, /* no such key */
	RAFT_ETIMEDOUT = -11, /* the deadline passed */
	RAFT_EPROTO = -12,    /* a peer or client broke the protocol */
	RAFT_EMISMATCH = -13, /* configuration conflicts with stored state */
	RAFT_ELEADERLOST = -14, /* leadership lost before the outcome was known */
	RAFT_ENOTSUP = -15,   /* not supported by this build or plug-in */
	RAFT_EUNAVAIL = -16,  /* no quorum or no leader reachable */
};

/* Static text for an error code; never NULL. */
RAFT_API const char *raft_strerror(int rc);

enum raft_role {
	RAFT_FOLLOWER = 0,
	RAFT_PRECANDIDATE = 1, /* running a PreVote round (dissertation 9.6) */
	RAFT_CANDIDATE = 2,
	RAFT_LEADER = 3,
};

/* Static name of a role ("follower", ...). */
RAFT_API const char *raft_role_name(enum raft_role role);

enum raft_entry_type {
	RAFT_ENTRY_COMMAND = 1, /* opaque payload for the state machine */
	RAFT_ENTRY_NOOP = 2,    /* appended by each new leader; no payload */
};

struct raft_entry {
	raft_term term;
	raft_index index;
	uint8_t type;  /* enum raft_entry_type */
	void *data;    /* payload; NULL when len is 0 */
	size_t len;
};

enum raft_msg_type {
	RAFT_MSG_APPEND = 1,     /* AppendEntries, possibly empty (heartbeat) */
	RAFT_MSG_APPEND_RESP = 2,
	RAFT_MSG_VOTE = 3,       /* RequestVote */
	RAFT_MSG_VOTE_RESP = 4,
	RAFT_MSG_PREVOTE = 5,    /* PreVote: a vote that changes no state */
	RAFT_MSG_PREVOTE_RESP = 6,
	RAFT_MSG_READ_INDEX = 7, /* follower asks the leader for a read index */
	RAFT_MSG_READ_INDEX_RESP = 8,
	RAFT_MSG_TIMEOUT_NOW = 9, /* reserved for leadership transfer */
};

/* One message between cores. Which fields mean what, by type:
 *
 *   APPEND       index/log_term: the entry preceding entries[] (prevLogIndex,
 *                prevLogTerm); commit: leaderCommit; entries/n_entries;
 *                context: heartbeat round, echoed in the reply.
 *   APPEND_RESP  reject false: index is the highest index the follower now
 *                holds that matches the leader (durable when sent).
 *                reject true: index is the rejected prevLogIndex, hint_index
 *                and hint_term say where the follower's log diverges
 *                (hint_term 0: the follower's log ends at hint_index).
 *                context: echoed from the APPEND.
 *   VOTE,        index/log_term: the candidate's last log index and term.
 *   PREVOTE      term: for PREVOTE, the term the candidate would use.
 *   *_RESP       reject: true when the vote is refused.
 *   READ_INDEX   context: the requester's read id.
 *   READ_INDEX_RESP  index: the read index; reject true if the leader could
 *                not serve it; context: the read id.
 *
 * Entries and their payloads in a message handed out by the core stay valid
 * until raft_advance(); raft_step() copies what it keeps from its input. */
struct raft_msg {
	enum raft_msg_type type;
	raft_id from;
	raft_id to;
	raft_term term;
	raft_index index;
	raft_term log_term;
	raft_index commit;
	const struct raft_entry *entries;
	size_t n_entries;
	bool reject;
	raft_index hint_index;
	raft_term hint_term;
	uint64_t context;
};

/* A read request that became safe to serve, or that failed. Served reads
 * are reported only once the state machine has applied through index (see
 * raft_applied()). */
struct raft_read {
	uint64_t id;      /* the id given to raft_read_index() */
	raft_index index; /* the read index */
	int status;       /* RAFT_OK, RAFT_ENOTLEADER or RAFT_ELEADERLOST */
};

struct raft_config {
	raft_id id;              /* this node; must be in peers */
	const raft_id *peers;    /* voting members, including id */
	size_t n_peers;          /* 1..RAFT_MAX_PEERS */
	unsigned election_ticks; /* base election timeout; default 10 */
	unsigned heartbeat_ticks; /* default 1; must be < election_ticks */
	bool pre_vote;           /* run PreVote before an election */
	bool check_quorum;       /* leader steps down without a quorum */
	uint64_t seed;           /* randomness for election timeouts and
				    read ids; give each start of a node a
				    different seed (mix in the time) */
	size_t max_inflight_msgs;  /* per follower; default 64 */
	size_t max_inflight_bytes; /* per follower; default 8 MiB */
	size_t max_msg_entries;    /* per APPEND; default 1024 */
	size_t max_msg_bytes;      /* per APPEND; default 1 MiB */
};

#define RAFT_MAX_PEERS 9

/* Fill cfg with defaults: election 10 ticks, heartbeat 1, PreVote and
 * CheckQuorum on, flow control as documented above. id, peers and seed are
 * left for the caller. */
RAFT_API void raft_config_init(struct raft_config *cfg);

/* What a node had on disk when it starts. All zero for a new node. */
struct raft_restore {
	raft_term term;
	raft_id vote;
	const struct raft_entry *entries; /* the whole stored log, in order */
	size_t n_entries;
	raft_index applied; /* the state machine has applied through this */
};

struct raft;

/* Create a core. cfg and restore are copied (payloads included); the caller
 * keeps ownership of both. Returns RAFT_OK, RAFT_EINVAL (bad config or a log
 * with gaps; errmsg, if not NULL, says which) or RAFT_ENOMEM. */
RAFT_API int raft_new(const struct raft_config *cfg,
		      const struct raft_restore *restore, struct raft **out,
		      char *errmsg, size_t errlen);
RAFT_API void raft_free(struct raft *r);

/* Advance logical time by one tick. */
RAFT_API void raft_tick(struct raft *r);

/* Feed a received message. Messages from unknown ids or older terms are
 * dropped. Returns RAFT_OK, RAFT_ENOMEM, RAFT_EINVAL (r or m is NULL) or
 * RAFT_EPROTO (the message breaks the protocol: unknown type, entries that
 * do not follow index/log_term, or that contradict committed entries; it
 * is dropped whole and the core stays usable). */
RAFT_API int raft_step(struct raft *r, const struct raft_msg *m);

/* Append a command on the leader. data is copied. On success *index and
 * *term (may be NULL) tell where the entry went; it is committed when the
 * commit index passes index while the entry there still has that term.
 * Errors: RAFT_ENOTLEADER (raft_leader() names the known leader, or 0),
 * RAFT_EBUSY (the leader is stepping down), RAFT_ENOMEM. */
RAFT_API int raft_propose(struct raft *r, const void *data, size_t len,
			  raft_index *index, raft_term *term);

/* Ask for a linearizable read. id is the caller's, echoed in struct
 * raft_read. On a leader the read waits for one heartbeat round confirming
 * leadership (batched with every other waiting read) and for the state
 * machine to apply through the read index; on a follower it is forwarded to
 * the leader. Errors: RAFT_ENOTLEADER when no leader is known. */
RAFT_API int raft_read_index(struct raft *r, uint64_t id);

/* The work the core wants done. See the top of this file. */
struct raft_update {
	bool hard_state_changed;
	raft_term term;
	raft_id vote;

	const struct raft_entry *entries; /* to persist, contiguous */
	size_t n_entries;

	const struct raft_msg *msgs; /* send now */
	size_t n_msgs;
	const struct raft_msg *msgs_after_persist; /* send once persisted */
	size_t n_msgs_after_persist;

	/* apply in order; only entries durable on this node are handed out,
	 * so the state machine never runs ahead of the log after a crash */
	const struct raft_entry *committed;
	size_t n_committed;

	const struct raft_read *reads;
	size_t n_reads;

	bool soft_state_changed; /* role or leader changed */
	enum raft_role role;
	raft_id leader;
	raft_index commit;
};

RAFT_API bool raft_has_update(const struct raft *r);

/* Fill u with pending work. Calling it twice without raft_advance() returns
 * the same work. */
RAFT_API void raft_get_update(struct raft *r, struct raft_update *u);

/* The caller has taken u (persist started, messages handed over, committed
 * entries queued). Pointers in u become invalid, except as stated above. */
RAFT_API void raft_advance(struct raft *r, const struct raft_update *u);

/* Entries through index, whose entry at index had term, are durable. An
 * acknowledgement for an entry that has since been replaced is ignored. */
RAFT_API void raft_persisted(struct raft *r, raft_index index, raft_term term);

/* The state machine has applied through index. */
RAFT_API void raft_applied(struct raft *r, raft_index index);

/* Per-peer replication state, as the leader sees it. */
struct raft_peer_status {
	raft_id id;
	raft_index match; /* highest index known replicated (leader only) */
	raft_index next;
	int state; /* 0 probe, 1 replicate */
};

struct raft_status {
	raft_id id;
	enum raft_role role;
	raft_term term;
	raft_id vote;
	raft_id leader;
	raft_index commit;
	raft_index applied;
	raft_index last_index;
	raft_term last_term;
	raft_index persisted; /* highest durable index known to the core */
	size_t n_peers;
	struct raft_peer_status peers[RAFT_MAX_PEERS];
};

RAFT_API void raft_get_status(const struct raft *r, struct raft_status *s);
RAFT_API raft_id raft_leader(const struct raft *r);
RAFT_API enum raft_role raft_role(const struct raft *r);
RAFT_API raft_term raft_current_term(const struct raft *r);

#ifdef __cplusplus
}
#endif

#endif /* LIBRAFT_RAFT_H */
