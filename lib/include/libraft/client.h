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
 * request again. A refused or failed connection, or "not leader" without a
 * hint, moves to the next endpoint. Once every endpoint has failed in a
 * row, retries wait (25 ms, doubling to 250 ms) until the request's deadline.
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
 * kv_client_close().
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

struct kv_client_config {
	const char *const *endpoints; /* "host:port" each; copied */
	size_t n_endpoints;	      /* 1..KV_CLIENT_MAX_ENDPOINTS */
	unsigned timeout_ms;	      /* per request; default 5000 */
	unsigned connect_timeout_ms;  /* per connection attempt; default 1000 */
};

/* Fill cfg with the defaults; endpoints are left for the caller. */
RAFT_API void kv_client_config_init(struct kv_client_config *cfg);

/* What a node reported about one peer. */
struct kv_client_peer {
	uint64_t id;
	char addr[KV_CLIENT_ADDR_MAX];	      /* peer address */
	char client_addr[KV_CLIENT_ADDR_MAX]; /* "" when unknown */
	uint64_t match;
	bool connected;
};

/* One node's view of the cluster, as returned by kv_client_status(). */
struct kv_client_node_status {
	uint64_t id;
	char role[16];
	uint64_t term;
	uint64_t leader;
	char leader_addr[KV_CLIENT_ADDR_MAX];
	uint64_t commit;
	uint64_t applied;
	uint64_t last_index;
	bool failed; /* the node stopped after a storage failure */
	size_t n_peers;
	struct kv_client_peer peers[RAFT_MAX_PEERS];
};

/* The outcome of one request, valid only during the callback. */
struct kv_client_result {
	/* RAFT_OK; RAFT_ENOTFOUND (get or delete of a missing key);
	 * RAFT_ETOOBIG (key or value above the server's limit);
	 * RAFT_EUNAVAIL (no leader reachable before the deadline);
	 * RAFT_ETIMEDOUT (the deadline passed with the request sent);
	 * RAFT_ELEADERLOST (connection or leadership lost after sending);
	 * RAFT_ESHUTDOWN (the client closed); RAFT_EPROTO (the server's answer
	 * did not decode); or any error code the server answered with. */
	int rc;
	/* True for a write that may or may not have been applied. */
	bool unknown;
	/* Human-readable detail; never NULL, "" on success. */
	const char *error;
	/* The endpoint that answered last, or "" if none did. */
	const char *endpoint;
	/* get: the value (not NUL-terminated) */
	const void *value;
	size_t value_len;
	/* get: the key's metadata; put and delete: mod_index is the log index
	 * of the write */
	uint64_t create_index;
	uint64_t mod_index;
	uint64_t version;
	/* status: the node's report; NULL for other requests or on error */
	const struct kv_client_node_status *status;
};

typedef void (*kv_client_cb)(void *arg, const struct kv_client_result *res);

struct kv_client;

/* Create a client on loop. Nothing connects until the first request.
 * Returns RAFT_OK, RAFT_EINVAL (no endpoint, too many, or one that is not
 * host:port; errmsg says which) or RAFT_ENOMEM. */
RAFT_API int kv_client_new(uv_loop_t *loop, const struct kv_client_config *cfg,
			   struct kv_client **out, char *errmsg, size_t errlen);

/* Fail every request still in flight with RAFT_ESHUTDOWN (unknown for sent
 * writes), close every connection and free the client; cb (may be NULL)
 * runs once all handles are closed. The client must not be used after
 * this call. */
RAFT_API void kv_client_close(struct kv_client *c, void (*cb)(void *arg),
			      void *arg);

/* Submit requests. key and value are copied. cb runs exactly once, later,
 * on the loop thread, even on failure. Immediate errors (cb not called):
 * RAFT_EINVAL (empty key), RAFT_ETOOBIG (the request cannot fit in one
 * frame), RAFT_ESHUTDOWN (closing), RAFT_ENOMEM. */
RAFT_API int kv_client_get(struct kv_client *c, const void *key, size_t klen,
			   bool serializable, kv_client_cb cb, void *arg);
RAFT_API int kv_client_put(struct kv_client *c, const void *key, size_t klen,
			   const void *val, size_t vlen, kv_client_cb cb,
			   void *arg);
RAFT_API int kv_client_del(struct kv_client *c, const void *key, size_t klen,
			   kv_client_cb cb, void *arg);

/* Ask endpoint number ep (0 .. kv_client_n_endpoints() - 1) for its status.
 * Never redirected, never retried elsewhere. */
RAFT_API int kv_client_status(struct kv_client *c, size_t ep, kv_client_cb cb,
			      void *arg);

/* Endpoints known to the client: the configured ones first, in order, then
 * any learned from leader hints. */
RAFT_API size_t kv_client_n_endpoints(const struct kv_client *c);
RAFT_API const char *kv_client_endpoint(const struct kv_client *c, size_t ep);

/* Requests submitted and not yet called back. */
RAFT_API size_t kv_client_inflight(const struct kv_client *c);

/* ---- Blocking interface ------------------------------------------------ */

struct kv_client_sync;

/* A copy of a result that outlives the call. Free with
 * kv_client_reply_free(). */
struct kv_client_reply {
	int rc;
	bool unknown;
	char error[256];
	char endpoint[KV_CLIENT_ADDR_MAX];
	void *value; /* malloc'd; NULL when value_len is 0 */
	size_t value_len;
	uint64_t create_index;
	uint64_t mod_index;
	uint64_t version;
	bool has_status;
	struct kv_client_node_status status;
};

RAFT_API void kv_client_reply_free(struct kv_client_reply *r);

/* Same arguments and errors as kv_client_new(). */
RAFT_API int kv_client_sync_open(const struct kv_client_config *cfg,
				 struct kv_client_sync **out, char *errmsg,
				 size_t errlen);
RAFT_API void kv_client_sync_close(struct kv_client_sync *s);

/* Each call blocks until the request is done and returns reply->rc. reply
 * is always filled (free it even on error). */
RAFT_API int kv_client_sync_get(struct kv_client_sync *s, const void *key,
				size_t klen, bool serializable,
				struct kv_client_reply *reply);
RAFT_API int kv_client_sync_put(struct kv_client_sync *s, const void *key,
				size_t klen, const void *val, size_t vlen,
				struct kv_client_reply *reply);
RAFT_API int kv_client_sync_del(struct kv_client_sync *s, const void *key,
				size_t klen, struct kv_client_reply *reply);

/* Ask every configured endpoint for its status at once; replies has room
 * for kv_client_sync_n_endpoints(s) entries, replies[i] answering endpoint
 * i. Returns RAFT_OK if at least one endpoint answered, else the first
 * endpoint's error. */
RAFT_API int kv_client_sync_status_all(struct kv_client_sync *s,
				       struct kv_client_reply *replies);
RAFT_API size_t kv_client_sync_n_endpoints(const struct kv_client_sync *s);
RAFT_API const char *kv_client_sync_endpoint(const struct kv_client_sync *s,
					     size_t ep);

/* Caveats:
 *   - Writes are not de-duplicated by the server: a write reported unknown
 *     may have been applied; the caller decides whether to retry it.
 *   - Endpoint names are resolved once per connection attempt with
 *     getaddrinfo on the loop thread (blocking); use numeric addresses
 *     where that matters.
 */

#ifdef __cplusplus
}
#endif

#endif /* LIBRAFT_CLIENT_H */
