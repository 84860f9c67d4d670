/* The durable Raft log: segment files of checksummed records, and the
 * term/vote metadata file, written off the loop thread with group commit.
 *
 * Happy path: the node calls rlog_write() on the loop thread for each batch
 * of work the core hands out (hard state, a suffix truncation, entries). The
 * request is queued; one worker thread takes every queued request, writes
 * them with as few write calls as possible, makes them durable with one
 * fdatasync (plus the metadata file's own fsync + rename + directory fsync
 * when term or vote changed) and then calls every request's callback on the
 * loop thread, in submission order.
 *
 * Failure modes: a failed write or sync fails the request with RAFT_EIO and
 * puts the log in a failed state: every later request fails the same way
 * (fail-stop; a sync is never retried). ENOSPC fails the request with
 * RAFT_ENOSPC; nothing already reported durable is touched.
 *
 * On open: a torn record at the tail of the last segment is cut off (and
 * reported through the open's message); a bad checksum, a gap or a bad
 * header anywhere else returns RAFT_ECORRUPT with the file, the offset and
 * what was expected in errmsg.
 */
#ifndef LIBRAFT_LOG_H
#define LIBRAFT_LOG_H

#include <uv.h>

#include "libraft/raft.h"

struct rlog;

struct rlog_options {
	size_t segment_size; /* bytes per segment file; default 64 MiB */
	bool no_sync;	     /* for tests and benchmarks that say so */
	/* How long the worker keeps polling for the next request after a
	 * batch before it sleeps, in microseconds: a request that arrives in
	 * that window starts without a thread wake-up. 0 takes the default
	 * (RLOG_DEFAULT_SPIN_US); RLOG_NO_SPIN turns polling off. */
	unsigned spin_us;
	/* Write every record through the worker thread, never with direct
	 * writes from the loop thread (dio.c). */
	bool no_direct;
	/* Entries up to here are known to be committed (the state machine
	 * has applied them). A damaged record at or below it is never cut as
	 * a torn tail: the log refuses to open instead, and nothing is
	 * written. 0: no such knowledge. */
	raft_index keep;
};

#define RLOG_DEFAULT_SPIN_US 100
#define RLOG_NO_SPIN	     (~0u)

/* What the log held at open. Free with rlog_loaded_free(). */
struct rlog_loaded {
	raft_term term;
	raft_id vote;
	struct raft_entry *entries; /* every stored entry, in index order */
	size_t n_entries;
	char notice[256]; /* non-empty when a torn tail was cut off */
};

void rlog_loaded_free(struct rlog_loaded *l);

/* Open (creating if needed) the log in dir. Blocking; called at start, before
 * the loop runs. Errors: RAFT_EIO, RAFT_ENOSPC, RAFT_ECORRUPT (also when
 * the segments hold entries but the metadata file is missing), RAFT_ENOMEM,
 * RAFT_EINVAL (segment_size below 4 KiB), with a message in errmsg. The
 * format and the recovery rules are in docs/storage.md. */
int rlog_open(uv_loop_t *loop, const char *dir, const struct rlog_options *o,
	      struct rlog **out, struct rlog_loaded *loaded, char *errmsg,
	      size_t errlen);

struct rlog_req;
typedef void (*rlog_cb)(struct rlog_req *req, int status);

/* One persist request. The caller owns req and keeps it alive until cb. */
struct rlog_req {
	void *data; /* caller's */
	bool set_hard_state;
	raft_term term;
	raft_id vote;
	const struct raft_entry *entries; /* copied by rlog_write() */
	size_t n_entries; /* entries[0].index may be <= last index: the log
			     drops entries at and after it first */
	rlog_cb cb;
	/* private */
	struct rlog_req *next;
	void *buf;
	size_t buf_len;
	int status;
};

/* Queue req. Entries are encoded before this returns, so the caller may free
 * them afterwards. cb runs on the loop thread once everything in req is
 * durable, or with an error. Returns RAFT_OK, RAFT_ENOMEM, or the failed
 * state's error (then cb is not called). Also, changing nothing:
 * RAFT_EINVAL when the entries are not contiguous, would leave a gap after
 * the queued ones, start below the log's first index (or a compaction
 * point), have term 0, a term going down, an unknown type or data NULL
 * with len > 0; RAFT_ETOOBIG for a payload over 256 MiB; RAFT_ESHUTDOWN
 * after rlog_close(). */
int rlog_write(struct rlog *l, struct rlog_req *req);

/* Delete, off the loop thread, every whole segment whose entries are all
 * below index (for snapshots: the caller must no longer need them). The
 * segment being written always stays, so entries below index may remain
 * and show up at the next open. Afterwards a request may no longer start
 * below index. Returns RAFT_OK, RAFT_EINVAL (index past the end of the
 * log), RAFT_ESHUTDOWN or the failed state's error. */
int rlog_compact(struct rlog *l, raft_index index);

/* NULL while the log works; once it has failed, what failed (file, call,
 * system error), valid until rlog_close() completes. */
const char *rlog_failure(struct rlog *l);

/* Flush pending requests, stop the worker, close files. cb may be NULL; it
 * runs on the loop thread, which must keep running until then (the log's
 * memory is freed there). */
void rlog_close(struct rlog *l, void (*cb)(void *arg), void *arg);

#endif /* LIBRAFT_LOG_H */
