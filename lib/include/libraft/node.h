/* libraft/node.h: a Raft node running on the caller's libuv loop.
 *
 * A node joins the pure core (raft.h) to a durable log on disk, a TCP
 * transport to its peers, and a state machine the caller supplies. All
 * callbacks run on the loop thread, except struct raft_fsm's apply, which
 * runs on the node's apply thread (one call at a time, in log order; small
 * batches on the loop thread if fsm->loop_max allows), and
 * fsm->applied, which runs once inside raft_node_start() on the thread that
 * calls it. The loop thread goes on running other callbacks while apply
 * works, so a state machine that the caller also reads on the loop thread
 * (after raft_node_read(), say) is read and written at the same time: see
 * struct raft_fsm.
 *
 * The life of a proposal:
 *
 *     raft_node_propose() --> appended by the core on this leader
 *         --> persisted locally and on a quorum --> committed
 *         --> applied by fsm->apply on the worker --> cb(RAFT_OK, result)
 *     raft_node_propose_commit(): the same, but cb(RAFT_OK, NULL) once
 *         committed, and the apply follows
 *     at any step before the answer:
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
 * at the first start (after DIR/log/ has its first segment) and checked by
 * later ones; DIR/log/ the Raft log; DIR/LOCK is locked while a node uses
 * the directory. Either of DIR/cluster and the log without the other is
 * refused as damage: the member's votes and entries would be lost, or
 * claimed by whatever id is given.
 */
#ifndef LIBRAFT_NODE_H
#define LIBRAFT_NODE_H

#include <uv.h>

#include "libraft/raft.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Severity of a line given to the log hook. */
enum raft_log_level {
	RAFT_LOG_DEBUG = 0, /* detail for developers */
	RAFT_LOG_INFO = 1,  /* start, stop, role and term changes */
	RAFT_LOG_WARN = 2,  /* something failed and was retried or dropped */
	RAFT_LOG_ERROR = 3, /* the node stopped; the line says what to do */
};

/* Log hook. data is raft_node_config.log_data. msg is a line of key=value
 * pairs without a newline, at most 1023 bytes, valid only during the call.
 * Called on the loop thread (and inside raft_node_start(), on its caller's
 * thread); it must not call back into the node. With no hook installed the
 * library prints nothing. */
typedef void (*raft_log_fn)(void *data, enum raft_log_level level,
			    const char *msg);

/* Longest "host:port" address, including the terminating NUL. */
#define RAFT_ADDR_MAX 64

/* One voting member: its id and the address peers connect to. */
struct raft_member {
	raft_id id;		  /* non-zero, unique in the cluster */
	char addr[RAFT_ADDR_MAX]; /* "host:port", NUL-terminated, no spaces */
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
 * raft_node_start() and after raft_node_close()'s callback. The caller owns
 * the struct; it must stay valid and unchanged until that callback.
 *
 * Threads: apply runs on the node's own apply thread while the loop thread
 * goes on (or, for batches of at most loop_max entries, on the loop thread
 * itself, between other callbacks). Proposal and read callbacks, and anything
 * else the caller runs on the loop, may read the state machine while a later
 * batch is being applied: after raft_node_read() completes, the entries through
 * its index are applied, but apply may already be writing the next ones. The
 * state machine must make its own reads safe against a concurrent apply (a read
 * transaction, a lock); the node takes no lock around apply. */
struct raft_fsm {
	void *data; /* the state machine's own; the node never touches it */
	/* Store in *index the index of the last entry durably applied (0 for
	 * none). Called once, inside raft_node_start() on its caller's thread,
	 * before any apply; committed entries at or below that index are not
	 * handed to apply again. A non-zero return (a raft_error code) makes
	 * raft_node_start() fail with it. */
	int (*applied)(struct raft_fsm *fsm, raft_index *index);
	/* Apply entries in order and make them (and the applied index) durable
	 * as one unit. Runs on the apply thread (or, see loop_max, the loop
	 * thread), one call at a time, in log order: the next batch may start
	 * before the loop thread has handled the end of this one. entries (n >=
	 * 1, contiguous, in log order) and their payloads are the node's and
	 * valid only during the call. results has room for n and is zeroed
	 * before the call; results[i] answers entries[i]. The entries include
	 * no-ops, which change nothing but the applied index. A non-zero return
	 * (a raft_error code) stops the node (fail-stop): RAFT_ENOSPC is
	 * reported as such, any other code as RAFT_EIO, and the batch's results
	 * are freed unread. */
	int (*apply)(struct raft_fsm *fsm, const struct raft_entry *entries,
		     size_t n, struct raft_fsm_result *results);
	/* The largest batch (in entries) that apply may be given on the
	 * loop thread, when nothing else is being applied; 0: never. Set it
	 * only if apply of that many entries is quick (no sync, no lock held
	 * by a slow party): while it runs, the node neither ticks nor
	 * answers its peers. */
	size_t loop_max;
	/* Optional; reserved for snapshots, and never called by this version.
	 * NULL means not supported. */
	int (*snapshot)(struct raft_fsm *fsm, void **buf, size_t *len);
	int (*restore)(struct raft_fsm *fsm, const void *buf, size_t len);
	/* Optional: why the last apply that returned an error failed, for the
	 * operator (the file, the call, the system error), or NULL if it has
	 * nothing to say. The node calls it on the loop thread once apply
	 * has returned the error, and puts the text in the "node stopped
	 * after a failure" log line at once, keeping no pointer to it. */
	const char *(*failure)(struct raft_fsm *fsm);
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

/* The node stopped after a storage or state machine failure, or ran out of
 * memory where dropping work would lose an acknowledgement (fail-stop).
 * data is raft_node_config.failed_data. Called once, on the loop thread,
 * after every pending request has failed with status and the failure has
 * been logged at RAFT_LOG_ERROR; status is RAFT_EIO or RAFT_ENOSPC. The
 * node stays allocated and answers status calls: close it. May call
 * raft_node_close(). */
typedef void (*raft_node_failed_fn)(void *data, int status);

/* How a node runs. Fill it with raft_node_config_init(), then set at least
 * id, data_dir, members (at the first start) and fsm. Zero numeric fields
 * take the defaults above. raft_node_start() copies what it keeps. */
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
	size_t n_members;	  /* entries in members; 0 after the first start
				     to use the stored list */
	uint64_t cluster_id;	  /* 0: derived from the members at the first
				     start; one chosen then must be given at
				     every start (without it, the stored id
				     must be the members' own) */
	unsigned tick_ms;	  /* default 50 */
	unsigned election_ticks;  /* default 10 */
	unsigned heartbeat_ticks; /* default 1; below election_ticks */
	size_t segment_size;	  /* log segment bytes; default 64 MiB,
				     at least 4 KiB */
	size_t max_entry_size;	  /* largest proposal; default 1 MiB + 4 KiB */
	size_t max_pending; /* proposals + reads in flight; default 4096 */
	unsigned read_timeout_ms; /* a read not ready by then fails with
				     RAFT_ETIMEDOUT; default 5000 */
	uint64_t seed;		  /* election jitter; 0: from id and time */
	bool no_sync;		  /* unsafe: skip fdatasync (benchmarks only) */
	bool no_direct_io;    /* write the log through its worker thread only,
				 never with O_DIRECT from the loop thread:
				 for fault injection that intercepts write and
				 fdatasync calls (slower; as durable) */
	struct raft_fsm *fsm; /* required; the caller owns it */
	raft_log_fn log;      /* optional log hook; NULL: silent */
	void *log_data;	      /* passed to log as data */
	raft_node_failed_fn failed; /* optional */
	void *failed_data;	    /* passed to failed as data */
};

/* Fill cfg with the defaults above; every pointer NULL, every id 0, every
 * flag false. Never fails. */
RAFT_API void raft_node_config_init(struct raft_node_config *cfg);

struct raft_node;

/* Open the data directory, check the stored cluster configuration, load
 * the log, start the transport and the tick timer on loop; at the first
 * start, store the configuration (with this node's id) once the transport
 * listens, so that a failed first start stores nothing. cfg is copied
 * (strings and members included) and may be freed on return; cfg->fsm and
 * cfg->log_data and cfg->failed_data are kept as pointers and must stay
 * valid until close. The node is the caller's until raft_node_close().
 * Blocking (reads the log); call it on the loop's thread, before or between
 * loop runs, or from a loop callback. Calls fsm->applied() and the log
 * hook on the calling thread.
 *
 * Returns RAFT_OK and *out, or:
 *   RAFT_EINVAL    a bad config (loop, cfg or out NULL; no fsm, or one
 *                  without applied or apply; id 0 or not a member; no
 *                  data_dir, or one over 3500 bytes; a member with id 0,
 *                  listed twice or without a valid address, two members
 *                  on one address, or over
 *                  RAFT_MAX_PEERS members; no members at the first start;
 *                  heartbeat_ticks not below election_ticks; a bad peer or
 *                  client address; segment_size below 4 KiB);
 *   RAFT_EMISMATCH members or cluster_id differ from those stored at the
 *                  first start, or the data directory belongs to another
 *                  member id;
 *   RAFT_EBUSY     another node (in this process or another) holds the
 *                  data directory;
 *   RAFT_ECORRUPT  the log or the stored configuration is damaged (an
 *                  unparsable line, a stored cluster id that is not the
 *                  stored members' own when cfg->cluster_id is 0), the
 *                  configuration is in the first format (no member id),
 *                  the stored configuration is there but the log's
 *                  segment files are not, the log ends below the index
 *                  the state machine has applied, or the core refuses the
 *                  stored term, vote or entries;
 *   RAFT_EIO       the data directory or the listen address is unusable;
 *   RAFT_ENOSPC    no space to create the log or the configuration;
 *   RAFT_ENOMEM;
 *   or the error of fsm->applied().
 * errmsg (errlen bytes, may be NULL) then says what was wrong and what to
 * do about it. Nothing is left running on error, but a log opened before
 * the failure finishes closing on the loop: run the loop once more before
 * uv_loop_close(). *out is untouched on error. */
RAFT_API int raft_node_start(uv_loop_t *loop,
			     const struct raft_node_config *cfg,
			     struct raft_node **out, char *errmsg,
			     size_t errlen);

/* Outcome of a proposal, on the loop thread. arg is the one given to
 * raft_node_propose(). status is RAFT_OK once the entry is committed and
 * applied here; then index is its log index and result is the state
 * machine's result (valid during the call; the callee takes result->ptr
 * and must free() it if not NULL). Otherwise index is 0, result is NULL and
 * status is RAFT_ELEADERLOST (this node stopped leading the entry's term
 * before it was committed, or its index now holds another term's entry:
 * the outcome is unknown, the entry may still commit), RAFT_EIO /
 * RAFT_ENOSPC (the node failed; see the log) or RAFT_ESHUTDOWN (the node
 * is closing; outcome unknown). The callback may call the node again,
 * raft_node_close() included. */
typedef void (*raft_node_propose_cb)(void *arg, int status, raft_index index,
				     struct raft_fsm_result *result);

/* Propose data (len bytes, copied before the call returns; NULL only when
 * len is 0) as a command entry. Loop thread only. cb is called exactly
 * once, never from inside this call, unless this returns an error.
 *
 * Returns RAFT_OK, or without calling cb:
 *   RAFT_ENOTLEADER  this node is not the leader; raft_node_status() names
 *                    the leader (0 when unknown) and its client address;
 *   RAFT_ETOOBIG     len exceeds max_entry_size;
 *   RAFT_EINVAL      cb is NULL, or data is NULL with len > 0;
 *   RAFT_EBUSY       max_pending requests are in flight: retry later;
 *   RAFT_ESHUTDOWN   the node is closing or has failed;
 *   RAFT_ENOMEM. */
RAFT_API int raft_node_propose(struct raft_node *n, const void *data,
			       size_t len, raft_node_propose_cb cb, void *arg);

/* As raft_node_propose(), but cb hears RAFT_OK as soon as the entry is
 * committed (durable on a majority), before this node has applied it;
 * result is then NULL. For commands whose outcome the proposer knows
 * without the state machine, such as a blind write: the answer does not
 * wait for the apply. The entry is applied here later, in log order; a
 * raft_node_read() issued after cb waits for that, a read of the state
 * machine made directly in cb may not see it yet. Errors and the other
 * statuses are as for raft_node_propose(). */
RAFT_API int raft_node_propose_commit(struct raft_node *n, const void *data,
				      size_t len, raft_node_propose_cb cb,
				      void *arg);

/* Outcome of a read, on the loop thread. arg is the one given to
 * raft_node_read(). On RAFT_OK the state machine has applied through
 * index, which is at least the cluster's commit index when the read was
 * issued: reading the state machine now is linearizable (apply may be
 * writing later entries meanwhile; see struct raft_fsm). Otherwise index
 * is 0 and status is RAFT_ELEADERLOST (the leader was lost or changed, or
 * refused because it no longer leads, or did not answer within two
 * election timeouts), RAFT_ETIMEDOUT (not ready within read_timeout_ms),
 * RAFT_EIO / RAFT_ENOSPC (the node failed) or RAFT_ESHUTDOWN (the node is
 * closing). The callback may call the node again, raft_node_close()
 * included. */
typedef void (*raft_node_read_cb)(void *arg, int status, raft_index index);

/* Start a linearizable read (ReadIndex). Works on followers too: the
 * request is forwarded to the leader. Loop thread only. cb is called
 * exactly once, never from inside this call, unless this returns an error.
 *
 * Returns RAFT_OK, or without calling cb: RAFT_ENOTLEADER (this node is not
 * the leader and knows none), RAFT_EINVAL (cb NULL), RAFT_EBUSY
 * (max_pending requests are in flight), RAFT_ESHUTDOWN (closing or
 * failed), RAFT_ENOMEM. */
RAFT_API int raft_node_read(struct raft_node *n, raft_node_read_cb cb,
			    void *arg);

/* What a node knows of one member. */
struct raft_node_peer_status {
	raft_id id;			 /* the member */
	char addr[RAFT_ADDR_MAX];	 /* peer address */
	char client_addr[RAFT_ADDR_MAX]; /* advertised; "" when unknown */
	raft_index match;		 /* replicated through (leader only;
					    for this node: durable through) */
	bool connected; /* outbound connection up; true for this node */
};

/* A snapshot of a node, for monitoring and client redirects. */
struct raft_node_status {
	raft_id id;				/* this node */
	uint64_t cluster_id;			/* stored cluster id */
	enum raft_role role;			/* current role */
	raft_term term;				/* current term */
	raft_id leader;				/* 0 when unknown */
	char leader_client_addr[RAFT_ADDR_MAX]; /* "" when unknown */
	raft_index commit;			/* commit index known here */
	raft_index applied;    /* applied by the state machine on this node */
	raft_index last_index; /* last entry in the log */
	bool failed;	/* stopped after a storage or state machine failure */
	size_t n_peers; /* every member, this node included */
	struct raft_node_peer_status
	    peers[RAFT_MAX_PEERS]; /* in stored order */
};

/* Fill st (the caller's) on the loop thread. Returns RAFT_OK (also after a
 * failure: see st->failed), or RAFT_ESHUTDOWN once closing (st is still
 * filled with the last known state). Must not be called once the close
 * callback has run: n is freed then. */
RAFT_API int raft_node_status(struct raft_node *n, struct raft_node_status *st);

/* Stop: fail every pending proposal and read with RAFT_ESHUTDOWN (their
 * callbacks run inside this call), wait for the log write and the apply in
 * flight, close the transport and the log, free n. cb(arg) runs on the loop
 * thread, from a later loop iteration, when all is done (cb may be NULL);
 * only then may the caller close its state machine, and n must not be used
 * any more. Works on a running or a failed node. Safe to call from inside a
 * node callback. Call it once: a second call before cb runs is ignored
 * (its cb is never called), one after is a use after free. */
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
 * - Starting a node changes process-wide state: if SIGPIPE is at its
 *   default action, the transport sets it to ignored (for the whole
 *   process, for good, even after close), so that a peer resetting a
 *   connection cannot kill the process; writes to closed pipes and sockets
 *   anywhere in the program then fail with EPIPE instead. A program that
 *   installed its own SIGPIPE handler or ignored it already is left alone.
 * - fsm->apply runs on a worker thread concurrently with the loop thread:
 *   a state machine that is read on the loop (after raft_node_read(), in a
 *   proposal callback) must make those reads safe against apply itself.
 * - fsm->applied runs once, inside raft_node_start(), on its caller's
 *   thread; fsm->apply on the node's apply thread (one per node), or on the
 *   loop thread for batches of at most fsm->loop_max entries; every other
 *   callback on the loop thread.
 * - A node holds DIR/LOCK with flock(); data directories on file systems
 *   without flock() support (some network file systems) are not protected
 *   against two nodes.
 */

#ifdef __cplusplus
}
#endif

#endif /* LIBRAFT_NODE_H */
