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
 * Data directory layout: DIR/cluster (own id, cluster id, members), DIR/log/
 * (the Raft log), DIR/kv/ (the LMDB environment), DIR/LOCK.
 *
 * All callbacks run on the loop thread. The store applies committed entries
 * on a libuv worker thread and serves gets on the loop thread at the same
 * time; it makes that safe itself (each get is one LMDB read transaction),
 * so an embedder needs no lock of its own.
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

/* Size limits of a key and a value, checked before a write is proposed.
 * The node's max_entry_size (default 1 MiB + 4 KiB) must leave room for a
 * value of KV_MAX_VALUE bytes plus its key and framing. */
#define KV_MAX_KEY   511	   /* bytes; LMDB's key limit */
#define KV_MAX_VALUE (1024 * 1024) /* bytes */

struct kv_store;

/* How a store runs. Fill it with kv_config_init(), then set the node part
 * as for raft_node_start(). */
struct kv_config {
	struct raft_node_config node; /* node.fsm is ignored: the store
					 supplies its own; node.failed
					 reports a fail-stop; node.no_sync
					 also skips LMDB's syncs */
	size_t map_size;     /* initial LMDB map size; 0: 64 MiB */
	size_t max_map_size; /* the map grows up to this; 0: 64 GiB. A full
				map at this size stops the node with
				RAFT_ENOSPC */
};

/* Fill cfg with defaults (raft_node_config_init() for cfg->node, 0 for the
 * map sizes, meaning the defaults above). Never fails. */
RAFT_API void kv_config_init(struct kv_config *cfg);

/* Open the store in cfg->node.data_dir and start its node on loop. cfg is
 * copied and may be freed on return; cfg->node.log_data and failed_data
 * are kept as pointers. The store is the caller's until kv_store_close().
 * Blocking (reads the log, opens LMDB); call it on the loop's thread,
 * before or between loop runs, or from a loop callback.
 *
 * Returns RAFT_OK and *out, or RAFT_EINVAL (loop, cfg or out NULL; errmsg
 * untouched), or the errors of raft_node_start() (RAFT_EINVAL,
 * RAFT_EMISMATCH, RAFT_EBUSY, RAFT_ECORRUPT, RAFT_EIO, RAFT_ENOSPC,
 * RAFT_ENOMEM), or an error opening LMDB in DIR/kv (RAFT_EMISMATCH: the
 * store's format is not this build's; RAFT_ENOTSUP: LMDB's key limit is
 * below KV_MAX_KEY; RAFT_ECORRUPT, RAFT_EIO, RAFT_ENOSPC, RAFT_EBUSY,
 * RAFT_ENOMEM), with errmsg (errlen bytes, may be NULL) saying what was
 * wrong. LMDB is opened only after the configuration checks pass and the
 * data directory is locked. Nothing is left running on error (see
 * raft_node_start() about running the loop once more); *out is untouched. */
RAFT_API int kv_store_open(uv_loop_t *loop, const struct kv_config *cfg,
			   struct kv_store **out, char *errmsg, size_t errlen);

/* Outcome of a put or delete, on the loop thread; arg is the caller's.
 * status RAFT_OK: committed at log index index; a delete is applied here
 * by then, a put is answered as soon as it is committed and applied here
 * right after (a linearizable get, or a serializable one on this node,
 * sees it).
 * RAFT_ENOTFOUND: a delete of an absent key (committed at index all the
 * same; nothing changed). RAFT_ETOOBIG / RAFT_EINVAL: committed but refused
 * by the state machine (a key or value over its limits, a command it could
 * not decode; not expected when every node runs the same build), nothing
 * changed. RAFT_ELEADERLOST or RAFT_ESHUTDOWN: outcome unknown, the write
 * may still take effect. RAFT_EIO / RAFT_ENOSPC: this node failed on
 * storage and stopped. index is 0 unless status is RAFT_OK or
 * RAFT_ENOTFOUND. May call the store again, kv_store_close() included. */
typedef void (*kv_write_cb)(void *arg, int status, uint64_t index);

/* Set key (klen bytes) to val (vlen bytes; NULL only when vlen is 0); an
 * empty value is allowed. key and val are copied before the call returns.
 * Call on the leader, on the loop thread.
 *
 * Returns RAFT_OK (cb is called later, exactly once, never from inside this
 * call), or without calling cb: RAFT_ESHUTDOWN (closing or failed; checked
 * first), RAFT_EINVAL (klen 0, a NULL key or cb, a NULL val with vlen > 0),
 * RAFT_ETOOBIG (klen over KV_MAX_KEY, vlen over KV_MAX_VALUE, or the
 * encoded command over the node's max_entry_size), RAFT_ENOTLEADER
 * (kv_store_status() gives the leader's id and client address, id 0 when
 * unknown), RAFT_EBUSY (max_pending requests in flight), RAFT_ENOMEM. */
RAFT_API int kv_store_put(struct kv_store *s, const void *key, size_t klen,
			  const void *val, size_t vlen, kv_write_cb cb,
			  void *arg);

/* Delete key (klen bytes, copied). Call on the leader, on the loop thread.
 * Returns as kv_store_put() (without the val checks); cb's status is
 * RAFT_ENOTFOUND if the key was absent when the delete was applied. */
RAFT_API int kv_store_del(struct kv_store *s, const void *key, size_t klen,
			  kv_write_cb cb, void *arg);

/* etcd-style metadata of a key, as of the read that returned it. */
struct kv_meta {
	uint64_t create_index; /* log index of the put that created the key */
	uint64_t mod_index;    /* log index of its last put */
	uint64_t version;      /* puts since creation, 1 for a new key */
};

/* Outcome of a get, on the loop thread; arg is the caller's. status
 * RAFT_OK: val (vlen bytes; NULL when vlen is 0) and meta are the store's
 * and valid only during the call: copy what you keep. RAFT_ENOTFOUND: no
 * such key; val and meta NULL, vlen 0. Errors (val and meta NULL, vlen 0):
 * RAFT_ELEADERLOST, RAFT_ETIMEDOUT (linearizable reads: see
 * raft_node_read_cb), RAFT_EIO / RAFT_ENOSPC (the node failed),
 * RAFT_ESHUTDOWN (closing), or the error of reading LMDB (RAFT_EIO,
 * RAFT_ECORRUPT, RAFT_EBUSY when LMDB's reader slots are all taken,
 * RAFT_ENOMEM). May call the store again, kv_store_close() included. */
typedef void (*kv_read_cb)(void *arg, int status, const void *val, size_t vlen,
			   const struct kv_meta *meta);

/* Read key (klen bytes, copied), on the loop thread. serializable false:
 * linearizable (raft_node_read()), works on any node while a leader is
 * reachable. serializable true: served from this node's applied state,
 * possibly stale, works without a leader; once this node has applied every
 * put it has answered (so never older than a write acknowledged here), on
 * a later loop iteration, never from inside this call.
 *
 * Returns RAFT_OK (cb is called later, exactly once), or without calling
 * cb: RAFT_ESHUTDOWN (closing, or the node failed: a failed node serves no
 * reads at all; checked first), RAFT_EINVAL (klen 0, a NULL key or cb),
 * RAFT_ETOOBIG (klen over KV_MAX_KEY), RAFT_ENOTLEADER (linearizable and
 * no leader known), RAFT_EBUSY (linearizable and max_pending requests in
 * flight; serializable gets are not counted), RAFT_ENOMEM. */
RAFT_API int kv_store_get(struct kv_store *s, const void *key, size_t klen,
			  bool serializable, kv_read_cb cb, void *arg);

/* Fill st (the caller's): id, role, term, leader and its client address,
 * commit, applied and last index, and per member its id, address, client
 * address, replication match (on the leader) and whether it is connected.
 * Returns RAFT_OK (also for a failed node: see st->failed), or
 * RAFT_ESHUTDOWN once kv_store_close() was called, with st zeroed. */
RAFT_API int kv_store_status(struct kv_store *s, struct raft_node_status *st);

/* Close: pending requests fail with RAFT_ESHUTDOWN (their callbacks run
 * inside this call), the node stops (waiting for the apply in flight),
 * LMDB is closed, s is freed, then cb(arg) runs on the loop thread from a
 * later loop iteration (cb may be NULL); s must not be used after that.
 * Works on a running or a failed store. Call it once (a second call before
 * cb runs is ignored, its cb never called); safe from inside a store
 * callback. */
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
 * - A get reads LMDB on the loop thread: a key whose pages are not in
 *   memory blocks the loop for a disk read.
 * - The caveats of node.h hold for the store's node, SIGPIPE included.
 */

#ifdef __cplusplus
}
#endif

#endif /* LIBRAFT_KV_H */
