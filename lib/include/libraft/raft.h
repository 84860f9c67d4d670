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
 *         6. tell the operator about u.losses (struct raft_log_loss);
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

/* The role a core plays (Raft paper Figure 4, with the pre-candidate of
 * dissertation 9.6). Every core starts as a follower. */
enum raft_role {
	RAFT_FOLLOWER = 0,     /* accepts entries from the leader of its term */
	RAFT_PRECANDIDATE = 1, /* running a PreVote round (dissertation 9.6) */
	RAFT_CANDIDATE = 2,    /* asking for votes in a term of its own */
	RAFT_LEADER = 3,       /* the only core that accepts proposals */
};

/* Static name of a role: "follower", "precandidate", "candidate" or
 * "leader" ("unknown" for any other value); never NULL. */
RAFT_API const char *raft_role_name(enum raft_role role);

/* What a log entry carries. Stored as a uint8_t in struct raft_entry. */
enum raft_entry_type {
	RAFT_ENTRY_COMMAND = 1, /* opaque payload for the state machine */
	RAFT_ENTRY_NOOP = 2,    /* appended by each new leader; no payload */
};

/* One entry of the replicated log. Whoever hands an entry out owns its
 * payload: the core for entries in a struct raft_update or a message it
 * made, the caller for entries it passes in (which the core copies). */
struct raft_entry {
	raft_term term;   /* the leader's term when the entry was created */
	raft_index index; /* position in the log, from 1 */
	uint8_t type;     /* enum raft_entry_type */
	void *data;       /* payload; NULL when len is 0 */
	size_t len;       /* payload bytes; 0 for RAFT_ENTRY_NOOP */
};

/* The kind of a struct raft_msg. Each request type is followed by its
 * reply type; the fields each one uses are listed at struct raft_msg. */
enum raft_msg_type {
	RAFT_MSG_APPEND = 1,     /* AppendEntries, possibly empty (heartbeat) */
	RAFT_MSG_APPEND_RESP = 2, /* a follower's answer to APPEND */
	RAFT_MSG_VOTE = 3,       /* RequestVote */
	RAFT_MSG_VOTE_RESP = 4,  /* a vote granted or refused */
	RAFT_MSG_PREVOTE = 5,    /* PreVote: a vote that changes no state */
	RAFT_MSG_PREVOTE_RESP = 6, /* a prevote granted or refused */
	RAFT_MSG_READ_INDEX = 7, /* follower asks the leader for a read index */
	RAFT_MSG_READ_INDEX_RESP = 8, /* the leader's read index, or a refusal */
	RAFT_MSG_TIMEOUT_NOW = 9, /* reserved for leadership transfer; never
				     sent, and ignored when received */
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
	enum raft_msg_type type; /* what the message is */
	raft_id from;            /* sender; the core fills it in */
	raft_id to;              /* receiver; 0 is accepted by anyone */
	raft_term term;          /* the sender's term (see PREVOTE above) */
	raft_index index;        /* see the table above */
	raft_term log_term;      /* VOTE, PREVOTE, APPEND: see above */
	raft_index commit;       /* APPEND: the leader's commit index */
	const struct raft_entry *entries; /* APPEND only; NULL if none */
	size_t n_entries;        /* entries in entries[] */
	bool reject;             /* replies: the request was refused */
	raft_index hint_index;   /* APPEND_RESP with reject: see above */
	raft_term hint_term;     /* APPEND_RESP with reject: see above */
	uint64_t context;        /* APPEND, READ_INDEX and their replies */
};

/* A read request that became safe to serve, or that failed. Served reads
 * are reported only once the state machine has applied through index (see
 * raft_applied()). */
struct raft_read {
	uint64_t id;      /* the id given to raft_read_index() */
	raft_index index; /* the read index */
	int status;       /* RAFT_OK, or RAFT_ELEADERLOST when the leader
			     that was to confirm it was lost, changed or
			     did not answer within two election timeouts */
};

/* How a core runs. Fill it with raft_config_init(), then set id, peers and
 * seed. Times are in ticks: the caller decides how long a tick is. */
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

/* The largest cluster a core supports, this node included. */
#define RAFT_MAX_PEERS 9

/* Fill cfg with defaults: election 10 ticks, heartbeat 1, PreVote and
 * CheckQuorum on, flow control as documented above. id, peers and seed are
 * left for the caller. */
RAFT_API void raft_config_init(struct raft_config *cfg);

/* What a node had on disk when it starts. All zero for a new node. */
struct raft_restore {
	raft_term term; /* the stored current term */
	raft_id vote;   /* the stored vote in term, or 0 */
	const struct raft_entry *entries; /* the whole stored log, in order */
	size_t n_entries; /* entries in entries[] */
	raft_index applied; /* the state machine has applied through this */
};

struct raft;

/* Create a core.
 *
 * cfg:     settings; checked, then copied (peers included).
 * restore: what was on disk, or NULL for a new node; copied, payloads
 *          included. The caller keeps ownership of cfg and restore and may
 *          free them as soon as the call returns.
 * out:     receives the new core, to be released with raft_free().
 * errmsg:  if not NULL, receives errlen bytes at most of text saying why
 *          RAFT_EINVAL was returned; untouched otherwise.
 *
 * Returns RAFT_OK, RAFT_ENOMEM, or RAFT_EINVAL when cfg or out is NULL, the
 * config is out of range (peers empty, over RAFT_MAX_PEERS, with id 0 or a
 * duplicate, without id; not 1 <= heartbeat_ticks < election_ticks, with
 * election_ticks at least 2; a flow-control limit of 0) or restore does not
 * hold together (vote not a peer, a log that does not start at 1 or has
 * gaps, terms that decrease, are 0 or exceed restore->term, an unknown
 * entry type, applied beyond the log). On error *out is left untouched. */
RAFT_API int raft_new(const struct raft_config *cfg,
		      const struct raft_restore *restore, struct raft **out,
		      char *errmsg, size_t errlen);

/* Destroy a core and everything it owns: every pointer in an update not yet
 * advanced, and the payloads of committed entries, so an asynchronous apply
 * must be finished first. r may be NULL. */
RAFT_API void raft_free(struct raft *r);

/* Advance logical time by one tick. A follower or candidate may start an
 * election; a leader may send heartbeats and, with check_quorum, step down
 * after an election timeout without hearing from a majority; waiting reads
 * may time out. Never fails: an allocation failure inside puts off an
 * election or a heartbeat to a later tick, but drops a read that timed out
 * without reporting it (a caller needs a deadline of its own for reads, as
 * the node has). Check raft_has_update() afterwards. */
RAFT_API void raft_tick(struct raft *r);

/* Feed a received message. m and its entries stay the caller's; what the
 * core keeps is copied before the call returns. Messages from unknown ids,
 * from this node, addressed to another node or of older terms are dropped
 * (a stale APPEND or PREVOTE is answered with the newer term), and RAFT_OK
 * is returned. Returns RAFT_OK, RAFT_ENOMEM, RAFT_EINVAL (r or m is NULL)
 * or RAFT_EPROTO (the message breaks the protocol: unknown type, entries on
 * a message other than APPEND, entries that do not follow index/log_term,
 * that contradict committed entries, or an APPEND_RESP that acknowledges
 * an index the leader does not have; it is dropped whole and the core
 * stays usable). */
RAFT_API int raft_step(struct raft *r, const struct raft_msg *m);

/* Append a command on the leader. data (len bytes, NULL only when len is 0)
 * is copied; the caller keeps it. On success *index and *term (either may
 * be NULL) tell where the entry went; it is committed when the commit index
 * passes index while the entry there still has that term. Errors:
 * RAFT_EINVAL (r is NULL, or data is NULL with len > 0), RAFT_ENOTLEADER
 * (raft_leader() names the known leader, or 0), RAFT_ENOMEM. The core
 * applies no size or flow-control limit to proposals. */
RAFT_API int raft_propose(struct raft *r, const void *data, size_t len,
			  raft_index *index, raft_term *term);

/* Ask for a linearizable read (dissertation 6.4). id is the caller's,
 * echoed in struct raft_read; the core does not check it for uniqueness.
 * On a leader the read waits until the leader has committed an entry of
 * its term, then for one heartbeat round confirming leadership (batched
 * with every other waiting read), then for the state machine to apply
 * through the read index; on a follower it is forwarded to the leader and
 * waits for this node to apply through the index the leader answers. The
 * outcome arrives in a later update's reads. Errors: RAFT_EINVAL (r is
 * NULL), RAFT_ENOTLEADER (not the leader and no leader known),
 * RAFT_ENOMEM. */
RAFT_API int raft_read_index(struct raft *r, uint64_t id);

/* A member whose log was found to end below an index it had acknowledged:
 * entries it had reported durable are gone from its disk (its data
 * directory was wiped or replaced, or log files were lost). Raft assumes
 * this never happens; until the member has them again, those entries are
 * held by fewer members than the leader counted when it committed them.
 * The leader has already started sending it the log again from where it
 * now ends; the report is for the operator. */
struct raft_log_loss {
	raft_id id;              /* the member */
	raft_index acknowledged; /* highest index it had acknowledged */
	raft_index log_ends;     /* last index of its log now */
};

/* The work the core wants done. See the top of this file. */
struct raft_update {
	bool hard_state_changed; /* term or vote must be persisted */
	raft_term term;          /* current term, changed or not */
	raft_id vote;            /* vote in term, or 0 */

	const struct raft_entry *entries; /* to persist, contiguous */
	size_t n_entries;                 /* entries in entries[] */

	const struct raft_msg *msgs; /* send now */
	size_t n_msgs;               /* messages in msgs[] */
	const struct raft_msg *msgs_after_persist; /* send once persisted */
	size_t n_msgs_after_persist; /* messages in msgs_after_persist[] */

	/* apply in order; only entries durable on this node are handed out,
	 * so the state machine never runs ahead of the log after a crash */
	const struct raft_entry *committed;
	size_t n_committed;

	const struct raft_read *reads; /* reads finished, served or failed */
	size_t n_reads;                /* reads in reads[] */

	bool soft_state_changed; /* role or leader changed */
	enum raft_role role;     /* current role, changed or not */
	raft_id leader;          /* known leader, or 0 */
	raft_index commit;       /* current commit index */

	/* members found by this node, as leader, to have lost acknowledged
	 * entries; each loss is reported once */
	const struct raft_log_loss *losses;
	size_t n_losses; /* reports in losses[] */
};

/* Whether the core has work for the caller: anything raft_get_update()
 * would return, or a leader's pending replication. Never fails. */
RAFT_API bool raft_has_update(const struct raft *r);

/* Fill u with pending work; u is the caller's, what it points to is the
 * core's (see the top of this file). On a leader this is when proposals
 * and acknowledgements turn into APPEND messages. Calling it twice without
 * raft_advance() returns the same work, plus anything new. Never fails. */
RAFT_API void raft_get_update(struct raft *r, struct raft_update *u);

/* The caller has taken u (persist started, messages handed over, committed
 * entries queued). u must be the update last filled by raft_get_update();
 * other calls may come in between, and what they added is handed out in
 * the next update. Pointers in u become invalid, except as stated above.
 * Never fails. */
RAFT_API void raft_advance(struct raft *r, const struct raft_update *u);

/* Entries through index, whose entry at index had term, are durable. An
 * acknowledgement for an entry that has since been replaced, that was never
 * handed out for persisting, or that is not past what is already known
 * durable, is ignored. On a leader this may advance the commit index. */
RAFT_API void raft_persisted(struct raft *r, raft_index index, raft_term term);

/* The term and vote of an update handed out with hard_state_changed and
 * this term are durable. Optional: without it the core assumes only the
 * term it was restored with is durable, and every answer to the leader
 * waits for the persists before it (step 3 of the loop above). With it, a
 * follower answers a heartbeat at once, in msgs, when its term is durable:
 * it then acknowledges only entries already reported by raft_persisted(),
 * so a slow disk delays neither the leader's CheckQuorum nor its ReadIndex
 * rounds. A term that was not handed out is ignored. */
RAFT_API void raft_hard_state_persisted(struct raft *r, raft_term term);

/* The state machine has applied through index (capped at the commit
 * index; a value not past the last one is ignored). Reads waiting for the
 * state machine to catch up become ready in the next update. */
RAFT_API void raft_applied(struct raft *r, raft_index index);

/* Per-peer replication state, as the leader sees it. */
struct raft_peer_status {
	raft_id id;       /* the member */
	raft_index match; /* highest index known replicated (leader only) */
	raft_index next;  /* next index to send it (leader only) */
	int state; /* 0 probe, 1 replicate */
};

/* A snapshot of a core, for monitoring and tests. */
struct raft_status {
	raft_id id;           /* this node */
	enum raft_role role;  /* current role */
	raft_term term;       /* current term */
	raft_id vote;         /* vote cast in term, or 0 */
	raft_id leader;       /* known leader, or 0 */
	raft_index commit;    /* commit index */
	raft_index applied;   /* applied index, from restore, then
				 raft_applied() (capped at commit) */
	raft_index last_index; /* last entry in the in-memory log */
	raft_term last_term;  /* its term; 0 for an empty log */
	raft_index persisted; /* highest durable index known to the core */
	size_t n_peers;       /* members, this node included */
	/* One per member, in config order. This node's match is persisted;
	 * other members' match, next and state are 0 except on a leader. */
	struct raft_peer_status peers[RAFT_MAX_PEERS];
};

/* Fill s (the caller's) with the state of r. Never fails. */
RAFT_API void raft_get_status(const struct raft *r, struct raft_status *s);

/* The leader this core knows of for its current term, or 0. */
RAFT_API raft_id raft_leader(const struct raft *r);

/* The role this core plays now. */
RAFT_API enum raft_role raft_role(const struct raft *r);

/* The term this core is in now. */
RAFT_API raft_term raft_current_term(const struct raft *r);

/* Caveats:
 * - A struct raft is not thread safe and takes no locks: serialise every
 *   call, including the read-only ones, on one thread or under one lock.
 * - Only raft_new(), raft_step(), raft_propose() and raft_read_index()
 *   check their arguments; the other calls take r as given and must not
 *   be passed NULL (raft_free() excepted).
 * - Persisting is the caller's promise: the core trusts raft_persisted(),
 *   and sending msgs_after_persist early, or acknowledging entries that are
 *   not durable, breaks Raft's safety after a crash.
 * - Membership is fixed at raft_new(): there are no configuration changes,
 *   no snapshots and no log compaction, so the in-memory log grows with
 *   every entry for the life of the core.
 * - RAFT_MSG_TIMEOUT_NOW is reserved; leadership transfer is not
 *   implemented.
 */

#ifdef __cplusplus
}
#endif

#endif /* LIBRAFT_RAFT_H */
