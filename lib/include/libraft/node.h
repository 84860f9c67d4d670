/* libraft/node.h: a Raft node running on the caller's libuv loop.
 *
 * A node joins the pure core (raft.h) to a durable log on disk, a TCP
 * transport to its peers, and a state machine the caller supplies. All
 * callbacks run on the loop thread, except struct raft_fsm's apply, which
 * runs on a libuv worker thread (one call at a time, in log order).
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
 * during the call. With no hook installed the library prints nothing. */
typedef void (*raft_log_fn)(void *data, enum raft_log_level level,
			    const char *msg);

/* One voting member: its id and the address peers connect to. */
struct raft_member {
	raft_id id;
	char addr[64]; /* "host:port" */
};

/* Result of applying one entry, handed back to the proposer. */
struct raft_fsm_result {
	int rc;         /* the state machine's code; RAFT_OK on success */
	uint64_t value; /* state-machine defined */
	void *ptr;      /* state-machine defined; freed by the proposer's cb */
};

/* A state machine. Every function pointer is required unless noted. */
struct raft_fsm {
	void *data;
	/* Index of the last entry durably applied, read once at start. */
	int (*applied)(struct raft_fsm *fsm, raft_index *index);
	/* Apply entries in order and make them (and the applied index) durable
	 * as one unit. Runs on a worker thread. results has room for n; the
	 * entries include no-ops, which change nothing but the applied index.
	 * A non-zero return stops the node (fail-stop). */
	int (*apply)(struct raft_fsm *fsm, const struct raft_entry *entries,
		     size_t n, struct raft_fsm_result *results);
	/* Optional; reserved for snapshots. NULL means not supported. */
	int (*snapshot)(struct raft_fsm *fsm, void **buf, size_t *len);
	int (*restore)(struct raft_fsm *fsm, const void *buf, size_t len);
};

struct raft_node_config {
	raft_id id;
	const char *data_dir;   /* log and metadata live here */
	const char *peer_addr;  /* "host:port" to listen on for peers */
	const char *client_addr; /* advertised to peers for redirects; may be
				    NULL */
	const struct raft_member *members; /* used on first start only */
	size_t n_members;
	uint64_t cluster_id; /* 0: derive from the members on first start */
	unsigned tick_ms;        /* default 100 */
	unsigned election_ticks; /* default 10 */
	unsigned heartbeat_ticks; /* default 1 */
	size_t segment_size;     /* log segment bytes; default 64 MiB */
	bool no_sync;            /* unsafe: skip fdatasync (benchmarks only) */
	struct raft_fsm *fsm;
	raft_log_fn log;
	void *log_data;
};

RAFT_API void raft_node_config_init(struct raft_node_config *cfg);

/* TODO(node): raft_node_start/propose/read/status/close. */

#ifdef __cplusplus
}
#endif

#endif /* LIBRAFT_NODE_H */
