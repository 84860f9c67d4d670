/* libraft/node.h: a Raft node running on the caller's libuv loop.
 *
 * A node joins the pure core (raft.h) to a durable log on disk, a TCP
 * transport to its peers, and a state machine the caller supplies. All
 * callbacks run on the loop thread, except struct raft_fsm's apply, which
 * runs on a libuv worker thread (one call at a time, in log order).
 *
 * The life of a proposal:
 *
 *     raft_node_propose() --> appended by the core on this leader
 *         --> persisted locally and on a quorum --> committed
 *         --> applied by fsm->apply on the worker --> cb(RAFT_OK, result)
 *     at any step before the apply:
 *         leadership lost, or the entry at its index replaced by one of
 *         another term                       --> cb(RAFT_ELEADERLOST)
 *         log or state machine failure       --> cb(RAFT_EIO / RAFT_ENOSPC)
 *         raft_node_close()                  --> cb(RAFT_ESHUTDOWN)
 *
 * The life of a linearizable read (Raft dissertation 6.4, ReadIndex):
 *
 *     raft_node_read() --> the core records the commit index (forwarded to
 *         the leader from a follower) and confirms leadership with one
 *         heartbeat round --> this node applies through that index
 *         --> cb(RAFT_OK, index): the caller now reads its state machine.
 *
 * Data directory: DIR/cluster holds the cluster id and member list, written
 * at the first start and checked by later ones; DIR/log/ the Raft log;
 * DIR/LOCK is locked while a node uses the directory.
 */
#ifndef LIBRAFT_NODE_H
#define LIBRAFT_NODE_H

#include <uv.h>

#include "libraft/raft.h"

#ifdef __cplusplus
extern "C" {
#endif

enum raft_log_level {
	RAFT_LOG_DEBUG = 0,
	RAFT_LOG_INFO = 1,
	RAFT_LOG_WARN = 2,
	RAFT_LOG_ERROR = 3,
};

/* Log hook. msg is a line of key=value pairs without a newline, valid only
 * during the call. Called on the loop thread. With no hook installed the
 * library prints nothing. */
typedef void (*raft_log_fn)(void *data, enum raft_log_level level,
			    const char *msg);

/* Longest "host:port" address, including the terminating NUL. */
#define RAFT_ADDR_MAX 64

/* One voting member: its id and the address peers connect to. */
struct raft_member {
	raft_id id;
	char addr[RAFT_ADDR_MAX]; /* "host:port" */
};

/* Result of applying one entry, handed back to the proposer. */
struct raft_fsm_result {
	int rc;		/* the state machine's code; RAFT_OK on success */
	uint64_t value; /* state-machine defined */
	void *ptr;	/* state-machine defined, NULL or from malloc(); the
			   proposer's cb takes it, or the node free()s it when
			   nobody proposed the entry here */
};

/* A state machine. Every function pointer is required unless noted. The
 * node never opens or closes the state machine: the caller does, before
 * raft_node_start() and after raft_node_close()'s callback. */
struct raft_fsm {
	void *data;
	/* Index of the last entry durably applied, read once at start. */
	int (*applied)(struct raft_fsm *fsm, raft_index *index);
	/* Apply entries in order and make them (and the applied index) durable
	 * as one unit. Runs on a worker thread. results has room for n and is
	 * zeroed before the call; the entries include no-ops, which change
	 * nothing but the applied index. A non-zero return (a raft_error code)
	 * stops the node (fail-stop). */
	int (*apply)(struct raft_fsm *fsm, const struct raft_entry *entries,
		     size_t n, struct raft_fsm_result *results);
	/* Optional; reserved for snapshots. NULL means not supported. */
	int (*snapshot)(struct raft_fsm *fsm, void **buf, size_t *len);
	int (*restore)(struct raft_fsm *fsm, const void *buf, size_t len);
};

/* Failover: a follower that hears nothing from the leader for a randomized
 * election timeout in [election_ticks, 2 * election_ticks) ticks starts a
 * PreVote round. With the defaults (50 ms ticks, 10 election ticks, a
 * heartbeat every tick) that is 0.5 s to 1 s after the leader's last
 * heartbeat; PreVote, vote and the new leader's no-op then take a few round
 * trips and fsyncs. Measured in one process (make bench-node): 0.5 to 1.0 s
 * from stopping the leader to the next accepted write, inside a 2 s budget
 * with room for one split vote; with 100 ms ticks it was 1.0 to 1.8 s. Ten
 * heartbeats per minimum timeout keep a loaded but healthy leader from being
 * deposed by a few late messages. */
#define RAFT_NODE_DEFAULT_TICK_MS	  50
#define RAFT_NODE_DEFAULT_ELECTION_TICKS  10
#define RAFT_NODE_DEFAULT_HEARTBEAT_TICKS 1
#define RAFT_NODE_DEFAULT_MAX_ENTRY	  (1024 * 1024 + 4096)
#define RAFT_NODE_DEFAULT_MAX_PENDING	  4096
#define RAFT_NODE_DEFAULT_READ_TIMEOUT_MS 5000

/* The node stopped after a storage or state machine failure (fail-stop).
 * Called once, on the loop thread, after every pending request has failed
 * and the failure has been logged; status is RAFT_EIO or RAFT_ENOSPC. The
 * node stays allocated and answers status calls: close it. May call
 * raft_node_close(). */
typedef void (*raft_node_failed_fn)(void *data, int status);

struct raft_node_config {
	raft_id id;		 /* this node; non-zero, one of members */
	const char *data_dir;	 /* log and metadata live here; created if
				    missing */
	const char *peer_addr;	 /* "host:port" to listen on for peers; NULL:
				    this member's address in members */
	const char *client_addr; /* advertised to peers for redirects; may be
				    NULL */
	const struct raft_member *members; /* required at the first start;
					      later optional, and checked
					      against the stored list */
	size_t n_members;
	uint64_t cluster_id;	 /* 0: derive from the members on first start */
	unsigned tick_ms;	 /* default 50 */
	unsigned election_ticks; /* default 10 */
	unsigned heartbeat_ticks; /* default 1; below election_ticks */
	size_t segment_size;	  /* log segment bytes; default 64 MiB */
	size_t max_entry_size;	  /* largest proposal; default 1 MiB + 4 KiB */
	size_t max_pending; /* proposals + reads in flight; default 4096 */
	unsigned read_timeout_ms; /* a read not ready by then fails with
				     RAFT_ETIMEDOUT; default 5000 */
	uint64_t seed;		  /* election jitter; 0: from id and time */
	bool no_sync;		  /* unsafe: skip fdatasync (benchmarks only) */
	struct raft_fsm *fsm;	  /* required; the caller owns it */
	raft_log_fn log;
	void *log_data;
	raft_node_failed_fn failed; /* optional */
	void *failed_data;
};

/* Fill cfg with the defaults above; every pointer NULL, every id 0. */
RAFT_API void raft_node_config_init(struct raft_node_config *cfg);

struct raft_node;

/* Open the data directory, check or store the cluster configuration, load
 * the log, start the transport and the tick timer on loop. cfg is copied
 * (strings and members included); cfg->fsm must stay valid until close.
 * Blocking (reads the log); call it before or between loop runs, or from a
 * loop callback.
 *
 * Returns RAFT_OK and *out, or:
 *   RAFT_EINVAL    a bad config (no fsm, id not a member, id 0, a member
 *                  twice, no members at the first start, heartbeat_ticks
 *                  not below election_ticks);
 *   RAFT_EMISMATCH members or cluster_id differ from those stored at the
 *                  first start;
 *   RAFT_EBUSY     another node (in this process or another) holds the
 *                  data directory;
 *   RAFT_ECORRUPT  the log or the stored configuration is damaged;
 *   RAFT_EIO       the data directory or the listen address is unusable;
 *   RAFT_ENOMEM;
 *   or the error of fsm->applied().
 * errmsg (errlen bytes, may be NULL) then says what was wrong and what to
 * do about it. Nothing is left running on error, but a log opened before
 * the failure finishes closing on the loop: run the loop once more before
 * uv_loop_close(). */
RAFT_API int raft_node_start(uv_loop_t *loop,
			     const struct raft_node_config *cfg,
			     struct raft_node **out, char *errmsg,
			     size_t errlen);

/* Outcome of a proposal, on the loop thread. status is RAFT_OK once the
 * entry is committed and applied here; then index is its log index and
 * result is the state machine's result (valid during the call; the callee
 * takes result->ptr). Otherwise result is NULL and status is
 * RAFT_ELEADERLOST (outcome unknown: the entry may still commit),
 * RAFT_EIO / RAFT_ENOSPC (the node failed; see the log) or RAFT_ESHUTDOWN
 * (the node is closing; outcome unknown). */
typedef void (*raft_node_propose_cb)(void *arg, int status, raft_index index,
				     struct raft_fsm_result *result);

/* Propose data (copied) as a command entry. cb is called exactly once,
 * never from inside this call, unless this returns an error.
 *
 * Returns RAFT_OK, or without calling cb:
 *   RAFT_ENOTLEADER  this node is not the leader; raft_node_status() names
 *                    the leader (0 when unknown) and its client address;
 *   RAFT_ETOOBIG     len exceeds max_entry_size;
 *   RAFT_EINVAL      cb is NULL;
 *   RAFT_EBUSY       max_pending requests are in flight, or the leader is
 *                    stepping down: retry later;
 *   RAFT_ESHUTDOWN   the node is closing or has failed;
 *   RAFT_ENOMEM. */
RAFT_API int raft_node_propose(struct raft_node *n, const void *data,
			       size_t len, raft_node_propose_cb cb, void *arg);

/* Outcome of a read, on the loop thread. On RAFT_OK the state machine has
 * applied through index, which is at least the cluster's commit index when
 * the read was issued: reading the state machine now is linearizable.
 * Otherwise: RAFT_ENOTLEADER (the leader refused or none is known),
 * RAFT_ELEADERLOST (leadership changed before the read was confirmed),
 * RAFT_ETIMEDOUT (not confirmed within read_timeout_ms), RAFT_EIO (the node
 * failed) or RAFT_ESHUTDOWN. */
typedef void (*raft_node_read_cb)(void *arg, int status, raft_index index);

/* Start a linearizable read (ReadIndex). Works on followers too: the
 * request is forwarded to the leader. cb is called exactly once, never
 * from inside this call, unless this returns an error.
 *
 * Returns RAFT_OK, or without calling cb: RAFT_ENOTLEADER (no leader is
 * known), RAFT_EINVAL (cb NULL), RAFT_EBUSY, RAFT_ESHUTDOWN, RAFT_ENOMEM. */
RAFT_API int raft_node_read(struct raft_node *n, raft_node_read_cb cb,
			    void *arg);

struct raft_node_peer_status {
	raft_id id;
	char addr[RAFT_ADDR_MAX];	 /* peer address */
	char client_addr[RAFT_ADDR_MAX]; /* advertised; "" when unknown */
	raft_index match;		 /* replicated through (leader only) */
	bool connected; /* outbound connection up; true for this node */
};

struct raft_node_status {
	raft_id id;
	uint64_t cluster_id;
	enum raft_role role;
	raft_term term;
	raft_id leader;				/* 0 when unknown */
	char leader_client_addr[RAFT_ADDR_MAX]; /* "" when unknown */
	raft_index commit;
	raft_index applied; /* applied by the state machine on this node */
	raft_index last_index;
	bool failed;	/* stopped after a storage or state machine failure */
	size_t n_peers; /* every member, this node included */
	struct raft_node_peer_status peers[RAFT_MAX_PEERS];
};

/* Fill st. Returns RAFT_OK, or RAFT_ESHUTDOWN once closing (st is still
 * filled with the last known state). */
RAFT_API int raft_node_status(struct raft_node *n, struct raft_node_status *st);

/* Stop: fail every pending proposal and read with RAFT_ESHUTDOWN, wait for
 * the log write and the apply in flight, close the transport and the log,
 * free n. cb(arg) runs on the loop thread when all is done (cb may be
 * NULL); only then may the caller close its state machine. Safe to call
 * from inside a node callback; call it once. */
RAFT_API void raft_node_close(struct raft_node *n, void (*cb)(void *arg),
			      void *arg);

/* Caveats:
 *
 * - A node is not thread safe: call it only on its loop's thread.
 * - Members are fixed at the first start. Changing membership is not
 *   supported yet; a node started with a different list refuses to start
 *   (RAFT_EMISMATCH) rather than join a cluster it does not belong to.
 * - RAFT_ELEADERLOST and RAFT_ESHUTDOWN on a proposal mean the outcome is
 *   unknown: the entry may still commit. Retrying a non-idempotent command
 *   may apply it twice.
 * - Entries applied before a crash may be handed to fsm->apply again after
 *   restart if the state machine had not made them durable; a state
 *   machine must skip entries at or below its durable applied index.
 * - There are no snapshots yet: the log grows without bound and a new
 *   member replays it from the start.
 * - User callbacks run on the loop thread; one that blocks longer than the
 *   election timeout (0.5 s by default) can cost this node its leadership.
 * - The transport sets SIGPIPE to be ignored if the program left it at its
 *   default action, so that a peer resetting a connection cannot kill the
 *   process.
 * - A node holds DIR/LOCK with flock(); data directories on file systems
 *   without flock() support (some network file systems) are not protected
 *   against two nodes.
 */

#ifdef __cplusplus
}
#endif

#endif /* LIBRAFT_NODE_H */
