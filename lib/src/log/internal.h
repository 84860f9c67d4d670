/* State shared by the log's files: the loading code (load.c) builds the
 * segment list that the worker (log.c) then owns. */
#ifndef RLOG_INTERNAL_H
#define RLOG_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <linux/aio_abi.h>
#include <sys/uio.h>

#include "log/log.h"

#define RLOG_SEG_NAME_LEN 32 /* "%020" PRIu64 ".seg" plus ".tmp" and NUL */

/* One segment file. first is also its name. */
struct rlog_seg {
	raft_index first; /* index of its first record */
	raft_index last;  /* index of its last record; first - 1 when empty */
};

struct rlog {
	uv_loop_t *loop;
	char *dir;
	int dirfd;
	struct rlog_options opts;

	/* Loop thread only. */
	raft_index next_index; /* index after every queued entry */
	raft_index floor;      /* lowest index a request may start at */
	bool closing;
	void (*close_cb)(void *arg);
	void *close_arg;
	uv_async_t async;
	uv_thread_t thread;
	bool thread_started;

	/* Shared, under mu. */
	uv_mutex_t mu;
	uv_cond_t cond;
	struct rlog_req *queue_head, *queue_tail; /* waiting for the worker */
	struct rlog_req *done_head, *done_tail;	  /* waiting for callbacks */
	int failed; /* 0, or the error every request now gets */
	char failure[256];
	bool stop;   /* rlog_close(): finish the queue, then exit */
	bool exited; /* the worker has returned */
	raft_index compact_to;
	/* Requests ever queued; the worker polls it without the lock. */
	atomic_uint queued;

	/* The spare segment (spare.c), also under mu. */
	uv_cond_t prep_cond;
	uv_thread_t prep_thread;
	bool prep_started;
	bool prep_stop;	   /* rlog_close(): stop preparing */
	bool spare_wanted; /* the preparer should make a spare */
	int spare_fd;	   /* a ready spare, or -1 */
	uint64_t spare_size;
	char spare_name[RLOG_SEG_NAME_LEN]; /* "spare.N.tmp" */
	unsigned spare_seq;
	size_t spares_used; /* segments that started as a spare */
	/* How full the active segment is, in 1/1024ths; the worker stores,
	 * the preparer paces itself by it (no lock). */
	atomic_uint fill;

	/* Worker thread only (and rlog_open() before the worker starts). */
	struct rlog_seg *segs; /* oldest first; the last one is active */
	size_t n_segs, cap_segs;
	int fd;		    /* the active segment */
	uint64_t tail;	    /* where the active segment's next record goes */
	uint64_t seg_alloc; /* bytes allocated to the active segment */
	raft_index w_next;  /* index after the last record written */
	bool dirty;	    /* written since the last fdatasync */
	struct iovec *iov;  /* pending writes to the active segment */
	int n_iov, cap_iov;
	uint64_t iov_off; /* file offset of iov[0] */
	size_t iov_bytes;

	/* Direct writes from the loop thread (dio.c). The position in the
	 * active segment (fd, tail, seg_alloc, w_next and dio_pos) belongs
	 * to the worker while it holds requests (worker_reqs > 0) and to the
	 * loop thread otherwise. */
	size_t worker_reqs;			/* loop: given to the worker */
	struct rlog_req *pend_head, *pend_tail; /* loop: no path chosen yet */
	struct rlog_req *dio_head;		/* loop: the direct write */
	size_t dio_bytes;			/* record bytes it appends */
	bool dio_handle;			/* dio_poll is initialised */
	bool dio_ready;				/* direct writes work here */
	bool in_callbacks;			/* loop: running completions */
	bool stop_when_idle; /* loop: rlog_close() waits for the queue */
	aio_context_t aio;
	int efd;
	uv_poll_t dio_poll;
	uint8_t *dio_buf; /* aligned, RLOG_DIO_MAX + 2 blocks */
	size_t dio_align;
	unsigned long dio_writes, worker_batches; /* for benchmarks */
	struct rlog_dio_pos {
		int fd;		   /* O_DIRECT descriptor, or -1 */
		uint64_t ino, dev; /* of the file fd refers to */
		raft_index first;  /* and its name */
		uint64_t limit;	   /* blocks below this are written */
		uint8_t *tail_blk; /* bytes from align_down(tail) to tail */
	} dio_pos;
};

/* Largest direct write of records, in bytes. */
#define RLOG_DIO_MAX (1024 * 1024)

/* Map errno to RAFT_ENOSPC or RAFT_EIO. */
int rlog_errno_code(int err);

void rlog_seg_name(char *buf, raft_index first, bool tmp);

/* Create, preallocate (with zeros written when zero is set, else with
 * fallocate) and durably name the segment whose first record will be
 * first; make it the active one (l->fd, l->tail). size >= header. */
int rlog_seg_create(struct rlog *l, raft_index first, uint64_t size, bool zero,
		    char *errmsg, size_t errlen);

int rlog_segs_push(struct rlog *l, raft_index first, raft_index last);

/* The preparer thread: keeps one zero-filled, synced file "spare.N.tmp"
 * ready for the next segment. Blocks written before cost no extent
 * conversion when a record lands on them, so each fdatasync of the
 * segment syncs data only. */
void rlog_spare_main(void *arg);

/* Ask for a new spare (after taking one, and at open). Takes mu. */
void rlog_spare_want(struct rlog *l);

/* The ready spare's descriptor (its size in *got, its name copied to
 * name) when it has at least size bytes, or -1. Takes mu. */
int rlog_spare_take(struct rlog *l, uint64_t size, uint64_t *got, char *name);

/* Direct writes (dio.c). rlog_dio_open() at open sets them up when the
 * file system takes O_DIRECT; rlog_dio_refresh() (worker, or open) reads
 * the active segment's position for the loop after the worker changed it;
 * rlog_dio_dispatch() (loop) starts the next write, direct or through the
 * worker; rlog_dio_free() releases what is left at close. */
void rlog_dio_open(struct rlog *l);
void rlog_dio_refresh(struct rlog *l);
void rlog_dio_dispatch(struct rlog *l);
bool rlog_dio_close(struct rlog *l, uv_close_cb cb); /* false: no handle */
void rlog_dio_free(struct rlog *l);

/* Hand every request of the chain head to the worker, in order. Loop. */
void rlog_to_worker(struct rlog *l, struct rlog_req *head);

/* Record a failure (the first one wins) and its message. Takes mu. */
void rlog_set_failed(struct rlog *l, int rc, const char *msg);

/* Read the directory: metadata, every segment, cutting a torn tail of the
 * last one. Leaves the last segment active. */
int rlog_load(struct rlog *l, struct rlog_loaded *loaded, char *errmsg,
	      size_t errlen);

#endif /* RLOG_INTERNAL_H */
