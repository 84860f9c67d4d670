/* libraft/client.h: a client of a kvd cluster.
 *
 * Two interfaces over one implementation:
 *
 *   - asynchronous, on the caller's libuv loop: struct kv_client keeps one
 *     TCP connection per endpoint it has talked to and pipelines requests
 *     on the current one (request ids; answers in any order). A load
 *     generator keeps N requests in flight over M connections by opening
 *     M clients on one loop and submitting N/M requests on each;
 *   - blocking: struct kv_client_sync runs its own private loop and waits
 *     for each answer (what kvctl uses).
 *
 * Routing. Requests go to the current endpoint. An answer "not leader"
 * names the leader's client address when one is known: the client moves
 * there (adding the address to its endpoints if it is new) and sends the
 * request again. A refused or failed connection, "not leader" without a
 * hint, or "unavailable" (a node shutting down) moves to the next endpoint.
 * Once every endpoint has failed in a row, retries wait (25 ms, doubling to 250
 * ms) until the request's deadline.
 *
 * Outcome of a write. A write is sent again only when it certainly did not
 * take effect: it was never written to a socket, or a node answered "not
 * leader" (which it does before proposing anything). A write that was sent
 * and then lost its connection or its deadline, or that the leader reports
 * as RAFT_ELEADERLOST, finishes with unknown set: it may or may not have
 * been applied, and it is never re-sent.
 *
 * Life of a request:
 *
 *     submitted --> waiting (no connection yet, or backing off)
 *        waiting --> sent           written on the current connection
 *        sent    --> done           an answer (success or final error)
 *        sent    --> waiting        "not leader", or a read whose
 *                                   connection failed
 *        sent    --> done(unknown)  a write whose connection failed
 *        any     --> done           the deadline passed (unknown if a write
 *                                   was sent without a final answer), or
 *                                   the client closes (RAFT_ESHUTDOWN)
 *
 * Threads: a struct kv_client and everything it calls back run on its
 * loop's thread. Callbacks may submit new requests and may call
 * kv_client_close(). A struct kv_client_sync may be used from any thread,
 * one call at a time.
 *
 * A load generator keeping `depth` requests in flight on each of M
 * clients (so M connections to the leader) re-submits from the callback:
 *
 *     static void done(void *arg, const struct kv_client_result *res)
 *     {
 *             struct worker *w = arg;
 *             record(w, res->rc, res->unknown);
 *             if (!w->stopping)
 *                     kv_client_put(w->client, key, klen, val, vlen,
 *                                   done, w);
 *     }
 *
 *     for (i = 0; i < M; i++) {
 *             kv_client_new(loop, &cfg, &w[i].client, err, sizeof(err));
 *             for (j = 0; j < depth; j++)
 *                     kv_client_put(w[i].client, ..., done, &w[i]);
 *     }
 *     uv_run(loop, UV_RUN_DEFAULT);
 */
#ifndef LIBRAFT_CLIENT_H
#define LIBRAFT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "libraft/raft.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KV_CLIENT_MAX_ENDPOINTS 16 /* configured plus learned from hints */
#define KV_CLIENT_ADDR_MAX	64 /* "host:port" with its NUL */
#define KV_CLIENT_MAX_FRAME	(2u * 1024 * 1024) /* wire frame limit */

/* How a client runs. Fill it with kv_client_config_init(), then set the
 * endpoints. Zero timeouts take the defaults. */
struct kv_client_config {
	const char *const *endpoints; /* "host:port" each; copied */
	size_t n_endpoints;	      /* 1..KV_CLIENT_MAX_ENDPOINTS */
	unsigned timeout_ms;	      /* per request; default 5000 */
	unsigned connect_timeout_ms;  /* per connection attempt; default 1000 */
};

/* Fill cfg with the defaults (timeouts 5000 and 1000 ms); endpoints are
 * left NULL for the caller. Never fails. */
RAFT_API void kv_client_config_init(struct kv_client_config *cfg);

/* What a node reported about one peer. */
struct kv_client_peer {
	uint64_t id;			      /* the member's node id */
	char addr[KV_CLIENT_ADDR_MAX];	      /* peer address */
	char client_addr[KV_CLIENT_ADDR_MAX]; /* "" when unknown */
	uint64_t match;	 /* replicated through (reported by a leader) */
	bool connected;	 /* the node's connection to it is up */
};

/* One node's view of the cluster, as returned by kv_client_status(). */
struct kv_client_node_status {
	uint64_t id;	    /* the node that answered */
	char role[16];	    /* raft_role_name() of its role, NUL-terminated */
	uint64_t term;	    /* its current term */
	uint64_t leader;    /* the leader it knows of, or 0 */
	char leader_addr[KV_CLIENT_ADDR_MAX]; /* the leader's client address;
						 "" when unknown */
	uint64_t commit;     /* its commit index */
	uint64_t applied;    /* applied by its state machine */
	uint64_t last_index; /* last entry in its log */
	bool failed; /* the node stopped after a storage failure */
	size_t n_peers; /* entries in peers (at most RAFT_MAX_PEERS are kept) */
	struct kv_client_peer peers[RAFT_MAX_PEERS]; /* every member, itself
							included */
};

/* The outcome of one request. It and everything it points to belong to the
 * client and are valid only during the callback: copy what you keep. */
struct kv_client_result {
	/* RAFT_OK; RAFT_ENOTFOUND (get or delete of a missing key);
	 * RAFT_ETOOBIG (key or value above the server's limit);
	 * RAFT_EUNAVAIL (no leader reachable before the deadline; for a status
	 * request, the endpoint could not be reached);
	 * RAFT_ETIMEDOUT (the deadline passed with the request sent, or with
	 * its first connection still being made);
	 * RAFT_ELEADERLOST (connection or leadership lost after sending);
	 * RAFT_ESHUTDOWN (the client closed); RAFT_EPROTO (the server's answer
	 * did not decode); RAFT_ENOMEM; or any error code the server answered
	 * with. */
	int rc;
	/* True for a write that may or may not have been applied: sent, then
	 * the connection was lost, the deadline passed, the client closed, or
	 * the server answered with a code other than RAFT_OK, RAFT_ENOTFOUND,
	 * RAFT_ETOOBIG, RAFT_EINVAL or RAFT_EBUSY. Always false for reads. */
	bool unknown;
	/* Human-readable detail; never NULL, "" on success. */
	const char *error;
	/* The endpoint the request was last sent to or queued for (for a
	 * status request, the endpoint asked), or "" if none. */
	const char *endpoint;
	/* get: the value (not NUL-terminated); NULL or empty otherwise */
	const void *value;
	size_t value_len; /* bytes in value */
	/* get: the key's metadata; put and delete: mod_index is the log index
	 * of the write */
	uint64_t create_index;
	uint64_t mod_index;
	uint64_t version;
	/* status: the node's report; NULL for other requests or on error */
	const struct kv_client_node_status *status;
};

/* Called once per request, on the loop thread, with the arg given when it
 * was submitted and its outcome (res is never NULL). */
typedef void (*kv_client_cb)(void *arg, const struct kv_client_result *res);

struct kv_client;

/* Create a client on loop. cfg is copied (endpoint strings included) and
 * may be freed on return. Endpoint names are resolved here, with blocking
 * getaddrinfo() calls. Nothing connects until the first request. The client
 * is the caller's until kv_client_close(). loop, cfg and out must not be
 * NULL; errmsg is a buffer of errlen bytes (NULL only with errlen 0).
 * Returns RAFT_OK and *out, or RAFT_EINVAL (no endpoint, too many, or one
 * that is not host:port or whose name does not exist; errmsg says which),
 * RAFT_EUNAVAIL (the name service could not answer now: try again later)
 * or RAFT_ENOMEM; *out is untouched on error. */
RAFT_API int kv_client_new(uv_loop_t *loop, const struct kv_client_config *cfg,
			   struct kv_client **out, char *errmsg, size_t errlen);

/* Fail every request still in flight with RAFT_ESHUTDOWN (unknown for sent
 * writes; their callbacks run inside this call), close every connection
 * and free the client; cb(arg) (cb may be NULL) runs on the loop thread,
 * from a later loop iteration, once all handles are closed. The client must
 * not be used after this call; a second call before cb runs is ignored. */
RAFT_API void kv_client_close(struct kv_client *c, void (*cb)(void *arg),
			      void *arg);

/* Read key (klen bytes, copied before the call returns). serializable
 * false: a linearizable read; true: the answering node's applied state,
 * possibly stale. A read is sent again, to another node if need be, until
 * it gets an answer or its deadline passes. cb (required, not checked)
 * runs exactly once on the loop thread, even on failure, and normally
 * later: when memory runs out it may run before this call returns RAFT_OK,
 * and a connection that refuses a write at once finishes requests written
 * on it earlier inside this call. Immediate errors (cb not
 * called): RAFT_ESHUTDOWN (closing), RAFT_EINVAL (klen 0; a NULL key with
 * klen > 0 is not checked), RAFT_ETOOBIG (the request cannot fit in one
 * frame), RAFT_ENOMEM. The server checks KV_MAX_KEY. */
RAFT_API int kv_client_get(struct kv_client *c, const void *key, size_t klen,
			   bool serializable, kv_client_cb cb, void *arg);

/* Set key (klen bytes) to val (vlen bytes; NULL only when vlen is 0), both
 * copied before the call returns. Sent again only while it certainly did
 * not take effect (see the top of this file). cb, return values and
 * errors as kv_client_get(); on success res->mod_index is the write's log
 * index. */
RAFT_API int kv_client_put(struct kv_client *c, const void *key, size_t klen,
			   const void *val, size_t vlen, kv_client_cb cb,
			   void *arg);

/* Delete key (klen bytes, copied). As kv_client_put(); res->rc is
 * RAFT_ENOTFOUND when the key was absent (the delete was still committed,
 * at res->mod_index). */
RAFT_API int kv_client_del(struct kv_client *c, const void *key, size_t klen,
			   kv_client_cb cb, void *arg);

/* Ask endpoint number ep (0 .. kv_client_n_endpoints() - 1) for its status.
 * Never redirected, never retried elsewhere, and not held back while the
 * client backs off. On RAFT_OK, res->status is the node's report. cb as for
 * kv_client_get(). Immediate errors: RAFT_EINVAL (ep out of range),
 * RAFT_ESHUTDOWN, RAFT_ENOMEM. */
RAFT_API int kv_client_status(struct kv_client *c, size_t ep, kv_client_cb cb,
			      void *arg);

/* Number of endpoints known to the client: the configured ones first, in
 * order, then any learned from leader hints (up to
 * KV_CLIENT_MAX_ENDPOINTS; a hint beyond that is not followed). */
RAFT_API size_t kv_client_n_endpoints(const struct kv_client *c);

/* Name ("host:port") of endpoint ep, owned by the client and valid until it
 * is closed; NULL when ep is out of range. */
RAFT_API const char *kv_client_endpoint(const struct kv_client *c, size_t ep);

/* Deadline of requests submitted from now on, in ms (0: the default,
 * 5000). Requests already submitted keep theirs. */
RAFT_API void kv_client_set_timeout(struct kv_client *c, unsigned timeout_ms);

/* Requests submitted and not yet called back. */
RAFT_API size_t kv_client_inflight(const struct kv_client *c);

/* ---- Blocking interface ------------------------------------------------ */

struct kv_client_sync;

/* A copy of a result that outlives the call; the caller owns it. Free with
 * kv_client_reply_free(). Fields as in struct kv_client_result. */
struct kv_client_reply {
	int rc;		 /* as kv_client_result.rc */
	bool unknown;	 /* as kv_client_result.unknown */
	char error[256]; /* detail, truncated; "" on success */
	char endpoint[KV_CLIENT_ADDR_MAX]; /* as kv_client_result.endpoint */
	void *value; /* malloc'd; NULL when value_len is 0 */
	size_t value_len;      /* bytes in value */
	uint64_t create_index; /* as in struct kv_client_result */
	uint64_t mod_index;    /* as in struct kv_client_result */
	uint64_t version;      /* as in struct kv_client_result */
	bool has_status;       /* status holds a node's report */
	struct kv_client_node_status status; /* valid when has_status */
};

/* Free what r holds (the value) and reset value and value_len, so that a
 * second call is harmless; r itself stays the caller's. Never fails. */
RAFT_API void kv_client_reply_free(struct kv_client_reply *r);

/* Create a blocking client with a private loop. Same arguments and errors
 * as kv_client_new(), plus RAFT_ENOMEM when the loop cannot be set up.
 * Close it with kv_client_sync_close(). */
RAFT_API int kv_client_sync_open(const struct kv_client_config *cfg,
				 struct kv_client_sync **out, char *errmsg,
				 size_t errlen);

/* Close the connections, wait for them to close and free s. Blocking; s
 * must not be used afterwards. Never fails. */
RAFT_API void kv_client_sync_close(struct kv_client_sync *s);

/* Read key, as kv_client_get(), blocking until the request is done (at
 * most the request timeout). Returns reply->rc. reply (the caller's) is
 * always filled, an immediate error included: free it with
 * kv_client_reply_free() even on error. The private loop runs only during
 * the call. */
RAFT_API int kv_client_sync_get(struct kv_client_sync *s, const void *key,
				size_t klen, bool serializable,
				struct kv_client_reply *reply);

/* Set key to val, as kv_client_put(), blocking; reply and return value as
 * kv_client_sync_get(). */
RAFT_API int kv_client_sync_put(struct kv_client_sync *s, const void *key,
				size_t klen, const void *val, size_t vlen,
				struct kv_client_reply *reply);

/* Delete key, as kv_client_del(), blocking; reply and return value as
 * kv_client_sync_get(). */
RAFT_API int kv_client_sync_del(struct kv_client_sync *s, const void *key,
				size_t klen, struct kv_client_reply *reply);

/* Ask every configured endpoint for its status at once; replies has room
 * for kv_client_sync_n_endpoints(s) entries, replies[i] answering endpoint
 * i, each filled and to be freed as for kv_client_sync_get(). Blocks until
 * every endpoint answered or timed out. Returns RAFT_OK if at least one
 * endpoint answered, else the first endpoint's error. */
RAFT_API int kv_client_sync_status_all(struct kv_client_sync *s,
				       struct kv_client_reply *replies);

/* Number of configured endpoints (endpoints learned from hints are not
 * counted). */
RAFT_API size_t kv_client_sync_n_endpoints(const struct kv_client_sync *s);

/* Name of configured endpoint ep, valid until s is closed; NULL when ep is
 * out of range. */
RAFT_API const char *kv_client_sync_endpoint(const struct kv_client_sync *s,
					     size_t ep);

/* Caveats:
 *   - Writes are not de-duplicated by the server: a write reported unknown
 *     may have been applied; the caller decides whether to retry it.
 *   - Endpoint names are resolved with getaddrinfo (blocking) when the
 *     client is created and when it learns a leader's address (then on the
 *     loop thread); a later change of address is not seen. Use numeric
 *     addresses where that matters.
 *   - A write to a connection the server has closed raises SIGPIPE: a
 *     program using the client should ignore it (kvctl does). The client
 *     does not change the signal's disposition itself; a node started in
 *     the same process does (see node.h).
 *   - Callbacks may run inside kv_client_get(), put(), del() or status()
 *     (which then still return RAFT_OK): the request's own when memory
 *     runs out (or, for a status request, when its connection refuses the
 *     write at once), and those of requests sent earlier on a connection
 *     that refuses a write at once.
 *   - The blocking client's loop runs only during its calls: connections
 *     are not read between calls. A struct kv_client is not thread safe:
 *     use it only on its loop's thread; a struct kv_client_sync takes one
 *     call at a time.
 */

#ifdef __cplusplus
}
#endif

#endif /* LIBRAFT_CLIENT_H */
