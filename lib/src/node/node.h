/* Internals of the node runtime (lib/src/node/): the struct shared by its
 * files and the contracts of the functions they export to each other. */
#ifndef LIBRAFT_NODE_INTERNAL_H
#define LIBRAFT_NODE_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>

#include "libraft/node.h"
#include "log/log.h"

struct rnet;

/* The cluster configuration stored in DIR/cluster at the first start. */
struct node_cluster {
	raft_id self; /* the member this data directory belongs to */
	bool fresh;   /* not stored yet: this is the first start */
	uint64_t cluster_id;
	size_t n_members;
	struct raft_member members[RAFT_MAX_PEERS];
};

/* Load DIR/cluster into *c, or build it from the configuration at the
 * first start (then c->fresh is set and nothing is written: the caller
 * stores it with node_cluster_store() once the node has started). Checks a
 * stored file against cfg: it must belong to member cfg->id, members given
 * in cfg must be the stored set (in any order) and a non-zero
 * cfg->cluster_id must match; with cfg->cluster_id 0 the stored id must be
 * node_cluster_id() of the stored members. Returns RAFT_OK, RAFT_EINVAL (no
 * members at the first start, or a bad member list: duplicate ids or
 * addresses, cfg->id not among them), RAFT_EMISMATCH, RAFT_ECORRUPT
 * (unparsable or old-format file, a cluster id its members do not give, a
 * log without the file, the file without a log: DIR/log missing or without
 * segment files), RAFT_EIO, with errmsg saying which and what to do. */
int node_cluster_load(const char *dir, const struct raft_node_config *cfg,
		      struct node_cluster *c, char *errmsg, size_t errlen);

/* Write *c as DIR/cluster: to a temporary file, fsynced, renamed over,
 * directory fsynced. Returns RAFT_OK, RAFT_EIO or RAFT_ENOSPC. */
int node_cluster_store(const char *dir, const struct node_cluster *c,
		       char *errmsg, size_t errlen);

/* The cluster id derived from a member list: a hash of the members sorted
 * by id, never 0. */
uint64_t node_cluster_id(const struct raft_member *members, size_t n);

/* printf into errmsg if it is not NULL. */
void node_errf(char *errmsg, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

enum node_state {
	NODE_RUNNING, /* ticking, stepping, persisting, applying */
	NODE_FAILED,  /* fail-stop after a storage or apply error */
	NODE_CLOSING, /* raft_node_close() called; waiting for handles */
};

/* What this node knows of each member (itself included). */
struct node_peer {
	raft_id id;
	char addr[RAFT_ADDR_MAX];
	char client_addr[RAFT_ADDR_MAX];
	bool connected;
};

/* A proposal waiting for its entry (index, term) to be applied. */
struct node_proposal {
	raft_index index;
	raft_term term;
	raft_node_propose_cb cb;
	void *arg;
	bool at_commit; /* answered once committed, not once applied */
	struct node_proposal *next;
};

/* A read waiting for the core to report its read id ready. */
struct node_read {
	uint64_t id;
	uint64_t deadline; /* uv_now() milliseconds */
	raft_node_read_cb cb;
	void *arg;
	struct node_read *prev, *next;
};

/* Deep copies of messages held back until a persist completes. */
struct node_msgs {
	struct raft_msg **v;
	size_t n, cap;
};

/* One rlog write in flight, with what to do once it is durable. */
struct node_persist {
	struct rlog_req req;
	struct raft_node *node;
	bool has_entries;
	raft_index last_index;
	raft_term last_term;
	struct node_msgs after; /* msgs_after_persist of this and later
				   updates that persisted nothing */
	struct node_persist *next;
};

/* One batch of committed entries handed to the apply thread. Until the
 * thread takes it (it is the applier's pending batch), the loop may append
 * to it under the applier's lock; once taken, only the thread writes
 * results and rc, and the loop reads them after done is set. */
struct node_apply {
	struct raft_entry *entries; /* struct copies; payloads are the core's */
	struct raft_fsm_result *results;
	size_t n, cap;
	int rc;
	bool taken; /* under lock: the thread has started applying it */
	bool done;  /* under lock: the thread has finished it */
	struct node_apply *next;
};

/* The node's apply thread and what it shares with the loop (run.c). */
struct node_applier {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	uv_async_t done_async; /* the thread finished a batch, or exited */
	uv_close_cb closed_cb; /* for done_async, at close */
	bool has_async;	       /* started: lock, wake, done_async are set up */
	bool running;	       /* the thread was started, not yet joined */
	/* Under lock: */
	struct node_apply *pending; /* handed over, not yet taken */
	bool idle;		    /* the thread waits on wake */
	bool stop;		    /* the thread is to exit */
	bool failed;		    /* a batch failed: apply nothing more */
	bool exited;		    /* the thread has returned from its loop */
};

/* A read id reported by the core, delivered after raft_advance(). */
struct node_read_done {
	uint64_t id;
	raft_index index;
	int status;
};

struct raft_node {
	uv_loop_t *loop;
	struct raft_node_config cfg; /* strings point to the copies below */
	char *data_dir, *peer_addr, *client_addr, *log_dir;
	int lock_fd; /* flock()ed DIR/LOCK, -1 before it is taken */
	struct node_cluster cluster;
	struct node_peer peers[RAFT_MAX_PEERS];
	size_t n_peers;

	struct raft *core;
	struct rlog *log;
	struct rnet *net;
	uv_timer_t ticker;
	uv_idle_t kick; /* runs the update loop once per loop iteration */

	enum node_state state;
	int fail_rc;
	bool in_run; /* inside node_run() */

	/* Last soft state seen, for leadership checks and for logging. */
	enum raft_role role, logged_role;
	raft_term term, logged_term;
	raft_id leader;

	struct node_proposal *prop_head, *prop_tail; /* by index */
	struct node_read *read_head, *read_tail;     /* by deadline */
	size_t n_pending;
	size_t n_at_commit; /* proposals in the queue with at_commit set */
	/* Called on the loop thread after the applied index advanced or the
	 * node failed (for the key-value store's local reads); may be NULL. */
	void (*progress_hook)(void *data);
	void *progress_data;
	uint64_t last_read_id;
	struct node_read_done *rdone;
	size_t n_rdone, rdone_cap;

	struct node_persist *persist_head, *persist_tail;

	struct raft_entry *apply_q; /* committed, not yet handed to apply */
	size_t apply_n, apply_cap;
	raft_index queued;  /* highest index queued or handed to apply */
	raft_index applied; /* highest index the state machine applied */
	struct node_applier ap;
	struct raft_fsm_result *loop_results; /* for batches applied on the
						 loop thread */
	size_t loop_results_cap;
	struct node_apply *apply_head, *apply_tail; /* handed to the thread,
						       not yet answered */

	unsigned close_waits; /* handles still closing */
	void (*close_cb)(void *arg);
	void *close_arg;
};

/* Log a key=value line through the hook, if one is installed. */
void node_logf(struct raft_node *n, enum raft_log_level level, const char *fmt,
	       ...) __attribute__((format(printf, 3, 4)));

/* Run the core's update loop once the current loop callback returns. */
void node_kick(struct raft_node *n);

/* Take every update the core has: persist, send, queue for apply, deliver
 * reads, fail proposals that lost leadership; then start an apply. */
void node_run(struct raft_node *n);

/* Stop after a storage or apply failure: fail every pending request with
 * rc, log what happened at error with what to do. */
void node_fail(struct raft_node *n, int rc, const char *what);

/* Fail every pending proposal and read with rc. */
void node_fail_pending(struct raft_node *n, int rc);

/* Fail reads whose deadline has passed with RAFT_ETIMEDOUT. */
void node_expire_reads(struct raft_node *n);

/* Hand everything queued to the apply thread: appended to the batch it
 * has not taken yet, or as a new batch. On lack of memory the entries stay
 * queued and the next tick retries. */
void node_start_apply(struct raft_node *n);

/* Start the apply thread. Returns RAFT_OK or RAFT_ENOMEM; on failure
 * nothing is left to stop. */
int node_applier_start(struct raft_node *n);

/* While closing: ask the apply thread to exit once its current batch is
 * done; when it has, its handle is closed and handle_cb called. */
void node_applier_stop(struct raft_node *n, uv_close_cb handle_cb);

/* While closing: free everything and call the close callback once every
 * handle is closed and the apply thread has exited. May free n. */
void node_close_step(struct raft_node *n);

/* Free what the update loop still holds (at close). */
void node_run_free(struct raft_node *n);

#endif /* LIBRAFT_NODE_INTERNAL_H */
