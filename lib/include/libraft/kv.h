/* libraft/kv.h: a replicated key-value store, ready made.
 *
 * A kv_store is a Raft node (node.h) whose state machine is an LMDB
 * key-value map kept in the node's data directory. Keys and values are
 * arbitrary bytes. Every key carries etcd-style metadata: the log index that
 * created it, the index of its last modification, and its version (puts
 * since creation).
 *
 * Writes (put, delete) go through the leader and are acknowledged once they
 * are committed and applied on this node. Reads are linearizable by default
 * (ReadIndex, also from followers, which ask the leader), or serializable on
 * request: served from this node's applied state at once, possibly stale.
 *
 * Data directory layout: DIR/cluster (cluster id and members), DIR/log/
 * (the Raft log), DIR/kv/ (the LMDB environment), DIR/LOCK.
 *
 * All callbacks run on the loop thread.
 */
#ifndef LIBRAFT_KV_H
#define LIBRAFT_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "libraft/node.h"
#include "libraft/raft.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KV_MAX_KEY   511	   /* bytes; LMDB's key limit */
#define KV_MAX_VALUE (1024 * 1024) /* bytes */

struct kv_store;

struct kv_config {
	struct raft_node_config node; /* node.fsm is ignored: the store
					 supplies its own; node.failed
					 reports a fail-stop */
	size_t map_size;     /* initial LMDB map size; default 64 MiB */
	size_t max_map_size; /* the map grows up to this; default 64 GiB */
};

/* Fill cfg with defaults (raft_node_config_init() for cfg->node). */
RAFT_API void kv_config_init(struct kv_config *cfg);

/* Open the store in cfg->node.data_dir and start its node on loop. cfg is
 * copied. Blocking; call it before or between loop runs, or from a loop
 * callback.
 *
 * Returns RAFT_OK and *out, or the errors of raft_node_start() (RAFT_EINVAL,
 * RAFT_EMISMATCH, RAFT_EBUSY, RAFT_ECORRUPT, RAFT_EIO, RAFT_ENOSPC,
 * RAFT_ENOMEM), with errmsg (may be NULL) saying what was wrong. LMDB is
 * opened only after the configuration checks pass. Nothing is left running
 * on error (see raft_node_start() about running the loop once more). */
RAFT_API int kv_store_open(uv_loop_t *loop, const struct kv_config *cfg,
			   struct kv_store **out, char *errmsg, size_t errlen);

/* Outcome of a put or delete. status RAFT_OK: committed and applied here at
 * log index index. RAFT_ENOTFOUND: a delete of an absent key (committed
 * at index all the same; nothing changed). RAFT_ELEADERLOST or
 * RAFT_ESHUTDOWN: outcome unknown, the write may still take effect.
 * RAFT_EIO / RAFT_ENOSPC: this node failed on storage and stopped. index
 * is 0 unless the write was applied. */
typedef void (*kv_write_cb)(void *arg, int status, uint64_t index);

/* Set key to val. key and val are copied. Call on the leader.
 *
 * Returns RAFT_OK (cb is called later, exactly once), or without calling
 * cb: RAFT_ENOTLEADER (kv_store_status() gives the leader's id and client
 * address, id 0 when unknown), RAFT_ETOOBIG (klen over KV_MAX_KEY or vlen
 * over KV_MAX_VALUE), RAFT_EINVAL (klen 0, a NULL key or cb), RAFT_EBUSY
 * (too many requests in flight), RAFT_ESHUTDOWN (closing or failed),
 * RAFT_ENOMEM. */
RAFT_API int kv_store_put(struct kv_store *s, const void *key, size_t klen,
			  const void *val, size_t vlen, kv_write_cb cb,
			  void *arg);

/* Delete key (copied). Returns as kv_store_put(); cb's status is
 * RAFT_ENOTFOUND if the key was absent when the delete was applied. */
RAFT_API int kv_store_del(struct kv_store *s, const void *key, size_t klen,
			  kv_write_cb cb, void *arg);

struct kv_meta {
	uint64_t create_index; /* log index of the put that created the key */
	uint64_t mod_index;    /* log index of its last put */
	uint64_t version;      /* puts since creation, 1 for a new key */
};

/* Outcome of a get. status RAFT_OK: val (vlen bytes) and meta are valid
 * only during the call. RAFT_ENOTFOUND: no such key; val and meta NULL.
 * Errors (val and meta NULL): RAFT_ENOTLEADER, RAFT_ELEADERLOST,
 * RAFT_ETIMEDOUT (linearizable reads: see raft_node_read_cb), RAFT_EIO,
 * RAFT_ESHUTDOWN. */
typedef void (*kv_read_cb)(void *arg, int status, const void *val, size_t vlen,
			   const struct kv_meta *meta);

/* Read key (copied). serializable false: linearizable, works on any node
 * while a leader is reachable. serializable true: served from this node's
 * applied state, possibly stale, works without a leader; cb is still
 * called later, never from inside this call.
 *
 * Returns RAFT_OK (cb is called later, exactly once), or without calling
 * cb: RAFT_ENOTLEADER (linearizable and no leader known), RAFT_ETOOBIG
 * (klen over KV_MAX_KEY), RAFT_EINVAL (klen 0, a NULL key or cb),
 * RAFT_EBUSY, RAFT_ESHUTDOWN (closing, or the node failed: a failed node
 * serves no reads at all), RAFT_ENOMEM. */
RAFT_API int kv_store_get(struct kv_store *s, const void *key, size_t klen,
			  bool serializable, kv_read_cb cb, void *arg);

/* Fill st: id, role, term, leader and its client address, commit, applied
 * and last index, and per member its id, address, client address,
 * replication match (on the leader) and whether it is connected. Returns
 * RAFT_OK, or RAFT_ESHUTDOWN once closing. */
RAFT_API int kv_store_status(struct kv_store *s, struct raft_node_status *st);

/* Close: pending requests fail with RAFT_ESHUTDOWN, the node stops, LMDB is
 * closed, s is freed, then cb(arg) runs on the loop thread (cb may be
 * NULL). Call it once; safe from inside a store callback. */
RAFT_API void kv_store_close(struct kv_store *s, void (*cb)(void *arg),
			     void *arg);

/* Caveats:
 *
 * - Not thread safe: call a store only on its loop's thread.
 * - A write that fails with RAFT_ELEADERLOST or RAFT_ESHUTDOWN may still
 *   take effect; there is no de-duplication of retried writes yet.
 * - Serializable reads may return data older than a write already
 *   acknowledged by another node.
 * - Membership is fixed at the first start (see node.h).
 */

#ifdef __cplusplus
}
#endif

#endif /* LIBRAFT_KV_H */
