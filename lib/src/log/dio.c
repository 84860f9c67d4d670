/* Direct writes: the loop thread appends a batch of records to the active
 * segment with one asynchronous O_DIRECT write (Linux AIO, RWF_DSYNC), and
 * the kernel reports its completion on an eventfd the loop polls. Neither
 * direction needs a thread wake-up, which on a virtual machine with idle
 * CPUs costs a third of an fdatasync each way.
 *
 * Happy path:
 *   rlog_write() -> pending list -> rlog_dio_dispatch(): the longest run
 *   of plain appends at the head (no term/vote, no truncation, room left
 *   in written blocks) is copied behind the bytes of the segment's last
 *   partial block, padded with zeros to whole blocks, and submitted with
 *   RWF_DSYNC | RWF_NOWAIT -> eventfd -> dio_poll_cb(): callbacks in
 *   order, next dispatch. Requests that arrive meanwhile wait in the
 *   pending list and go out together (group commit, as on the worker).
 *
 *   Anything else (term and vote, truncation, a new segment, blocks that
 *   were never written, a file system without O_DIRECT, a replaced system
 *   call table in tests) goes to the worker as before. The two paths never
 *   run at once: the pending list waits while the worker holds requests,
 *   and the worker gets nothing while a direct write is in flight. The
 *   worker ends each batch by publishing the segment's position for this
 *   file (rlog_dio_refresh()).
 *
 * Why only written blocks: an O_DIRECT write into preallocated but
 * unwritten blocks changes the extent tree, which needs the journal; with
 * RWF_NOWAIT the kernel refuses such a write instead of blocking the loop.
 * Spare segments are written with zeros (spare.c), so they qualify whole;
 * SEEK_HOLE tells how far the written blocks of the active segment reach.
 * The page cache must hold none of the blocks a direct write covers, or
 * RWF_NOWAIT refuses it as well: whoever reads or writes them through the
 * cache drops them again once they are clean (POSIX_FADV_DONTNEED).
 *
 * Rewriting the last partial block with the same leading bytes is safe:
 * a torn write leaves each sector either old or new, and the old bytes of
 * both versions are equal.
 *
 * Failure modes: EAGAIN at submission or in the completion (the kernel
 * would have had to block) sends the batch to the worker instead; any
 * other submission error turns direct writes off for this log and does
 * the same. A completion with an error or a short count is a failed
 * write: the log fails (fail-stop, as for a failed fdatasync) and every
 * request gets the error.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log/format.h"
#include "log/internal.h"
#include "log/io.h"

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif
#ifndef RWF_DSYNC
#define RWF_DSYNC 0x00000002
#endif

static uint64_t align_down(const struct rlog *l, uint64_t off)
{
	return off & ~((uint64_t)l->dio_align - 1);
}

static uint64_t align_up(const struct rlog *l, uint64_t off)
{
	return align_down(l, off + l->dio_align - 1);
}

/* Direct writes may be made now: set up, not failed, and the system call
 * table is the real one (tests that replace it expect the worker's
 * calls). */
static bool direct_allowed(const struct rlog *l)
{
	return l->dio_ready && l->dio_pos.fd >= 0 &&
	       rlog_io.pwritev == rlog_io_default.pwritev &&
	       rlog_io.fdatasync == rlog_io_default.fdatasync;
}

void rlog_dio_refresh(struct rlog *l)
{
	struct rlog_dio_pos *p = &l->dio_pos;
	char name[RLOG_SEG_NAME_LEN], path[4096];
	uint64_t blk;
	struct stat st;
	off_t hole;

	if (p->tail_blk == NULL)
		return;
	p->limit = 0; /* until everything below is known */
	if (l->fd < 0 || fstat(l->fd, &st) != 0)
		return;
	if (p->fd < 0 || p->ino != (uint64_t)st.st_ino ||
	    p->dev != (uint64_t)st.st_dev) {
		if (p->fd >= 0)
			close(p->fd);
		rlog_seg_name(name, l->segs[l->n_segs - 1].first, false);
		snprintf(path, sizeof(path), "%s/%s", l->dir, name);
		p->fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
		if (p->fd < 0)
			return;
		p->ino = (uint64_t)st.st_ino;
		p->first = l->segs[l->n_segs - 1].first;
		p->dev = (uint64_t)st.st_dev;
	}
	blk = align_down(l, l->tail);
	if (l->tail > blk && pread(l->fd, p->tail_blk, l->tail - blk,
				   (off_t)blk) != (ssize_t)(l->tail - blk))
		return;
	hole = lseek(l->fd, (off_t)blk, SEEK_HOLE);
	if (hole < 0)
		return;
	/* Clean after the worker's sync; dropping them lets RWF_NOWAIT
	 * through. */
	posix_fadvise(l->fd, (off_t)blk, 0, POSIX_FADV_DONTNEED);
	p->limit =
	    (uint64_t)hole < l->seg_alloc ? (uint64_t)hole : l->seg_alloc;
}

/* Complete every request of the chain head with rc, in order. */
static void complete_chain(struct rlog *l, struct rlog_req *head, int rc)
{
	while (head != NULL) {
		struct rlog_req *next = head->next;

		free(head->buf);
		head->buf = NULL;
		head->next = NULL;
		head->cb(head, rc);
		head = next;
	}
}

/* The first index of req's records. */
static raft_index req_first(const struct rlog_req *r)
{
	return rlog_get64((const uint8_t *)r->buf + 8);
}

/* req may go out as a direct write that starts at tail with next as its
 * first index, after used bytes of this write. */
static bool fits(const struct rlog *l, const struct rlog_req *r, uint64_t tail,
		 raft_index next, size_t used)
{
	uint64_t head = tail - align_down(l, l->tail);

	return !r->set_hard_state && r->n_entries > 0 && req_first(r) == next &&
	       tail + r->buf_len <= l->seg_alloc &&
	       align_up(l, tail + r->buf_len) <= l->dio_pos.limit &&
	       head + used + r->buf_len <= RLOG_DIO_MAX;
}

/* Submit the longest run of pending requests that fits; false when the
 * head does not fit or the kernel refused at once. */
static bool submit_direct(struct rlog *l)
{
	uint64_t blk = align_down(l, l->tail), head = l->tail - blk;
	uint64_t tail = l->tail;
	raft_index next = l->w_next;
	struct rlog_req *r = l->pend_head, *last = NULL;
	size_t used = 0;
	struct iocb cb, *cbs[1] = {&cb};
	uint8_t *p;

	while (r != NULL && fits(l, r, tail, next, used)) {
		used += r->buf_len;
		tail += r->buf_len;
		next += r->n_entries;
		last = r;
		r = r->next;
	}
	if (last == NULL)
		return false;

	p = l->dio_buf;
	memcpy(p, l->dio_pos.tail_blk, head);
	p += head;
	for (r = l->pend_head; r != last->next; r = r->next) {
		memcpy(p, r->buf, r->buf_len);
		p += r->buf_len;
	}
	memset(p, 0, align_up(l, head + used) - (head + used));

	memset(&cb, 0, sizeof(cb));
	cb.aio_fildes = (uint32_t)l->dio_pos.fd;
	cb.aio_lio_opcode = IOCB_CMD_PWRITE;
	cb.aio_buf = (uint64_t)(uintptr_t)l->dio_buf;
	cb.aio_nbytes = align_up(l, head + used);
	cb.aio_offset = (int64_t)blk;
	cb.aio_flags = IOCB_FLAG_RESFD;
	cb.aio_resfd = (uint32_t)l->efd;
	cb.aio_rw_flags = RWF_DSYNC | RWF_NOWAIT;
	if (syscall(SYS_io_submit, l->aio, 1L, cbs) != 1) {
		if (errno != EAGAIN)
			l->dio_ready = false; /* not on this file system */
		return false;
	}
	l->dio_head = l->pend_head;
	l->pend_head = last->next;
	if (l->pend_head == NULL)
		l->pend_tail = NULL;
	last->next = NULL;
	l->dio_bytes = used;
	l->dio_writes++;
	return true;
}

void rlog_to_worker(struct rlog *l, struct rlog_req *head)
{
	struct rlog_req *last = head;
	size_t n = 1;

	while (last->next != NULL) {
		last = last->next;
		n++;
	}
	/* Queued even after a failure: the worker completes them with the
	 * error, never from inside rlog_write(). */
	uv_mutex_lock(&l->mu);
	if (l->queue_tail != NULL)
		l->queue_tail->next = head;
	else
		l->queue_head = head;
	l->queue_tail = last;
	atomic_fetch_add_explicit(&l->queued, 1, memory_order_release);
	uv_cond_signal(&l->cond);
	uv_mutex_unlock(&l->mu);
	l->worker_reqs += n;
}

/* Tell the worker to finish once nothing is left for it to do. */
static void stop_worker(struct rlog *l)
{
	uv_mutex_lock(&l->mu);
	l->stop = true;
	l->prep_stop = true;
	uv_cond_signal(&l->cond);
	uv_cond_signal(&l->prep_cond);
	uv_mutex_unlock(&l->mu);
}

void rlog_dio_dispatch(struct rlog *l)
{
	struct rlog_req *head;

	if (l->in_callbacks || l->dio_head != NULL || l->worker_reqs > 0)
		return;
	if (l->pend_head != NULL) {
		int failed;

		uv_mutex_lock(&l->mu);
		failed = l->failed;
		uv_mutex_unlock(&l->mu);
		if (failed == RAFT_OK && direct_allowed(l) && submit_direct(l))
			return;
		l->worker_batches++;
		head = l->pend_head;
		l->pend_head = l->pend_tail = NULL;
		rlog_to_worker(l, head);
		return;
	}
	if (l->stop_when_idle) {
		l->stop_when_idle = false;
		stop_worker(l);
	}
}

static void dio_poll_cb(uv_poll_t *h, int status, int events)
{
	struct rlog *l = h->data;
	struct rlog_req *done = l->dio_head;
	struct io_event ev;
	struct timespec zero = {0, 0};
	uint64_t count, blk;
	long long res, want;
	char msg[256], name[RLOG_SEG_NAME_LEN];
	int rc = RAFT_OK;

	(void)status;
	(void)events;
	if (read(l->efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		return;
	if (done == NULL ||
	    syscall(SYS_io_getevents, l->aio, 1L, 1L, &ev, &zero) != 1)
		return;
	l->dio_head = NULL;
	blk = align_down(l, l->tail);
	want = (long long)align_up(l, l->tail - blk + l->dio_bytes);
	res = rlog_io.direct_result((long long)ev.res);
	if (res == -EAGAIN) {
		/* Nothing was written: the worker takes the batch and
		 * whatever waits behind it, in order. */
		struct rlog_req *last = done;

		while (last->next != NULL)
			last = last->next;
		last->next = l->pend_head;
		l->pend_head = l->pend_tail = NULL;
		l->worker_batches++;
		rlog_to_worker(l, done);
		return;
	}
	if (res != want) {
		rlog_seg_name(name, l->dio_pos.first, false);
		if (res < 0)
			snprintf(msg, sizeof(msg), "%s/%s: direct write: %s",
				 l->dir, name, strerror((int)-res));
		else
			snprintf(msg, sizeof(msg),
				 "%s/%s: direct write: %lld of %lld bytes",
				 l->dir, name, res, want);
		rc = res < 0 ? rlog_errno_code((int)-res) : RAFT_EIO;
		rlog_set_failed(l, rc, msg);
		l->in_callbacks = true;
		complete_chain(l, done, rc);
		done = l->pend_head;
		l->pend_head = l->pend_tail = NULL;
		complete_chain(l, done, rc);
		l->in_callbacks = false;
		rlog_dio_dispatch(l);
		return;
	}

	/* Durable: move the position and keep the new partial block. */
	l->tail += l->dio_bytes;
	for (struct rlog_req *r = done; r != NULL; r = r->next)
		l->w_next = req_first(r) + r->n_entries;
	memcpy(l->dio_pos.tail_blk, l->dio_buf + (align_down(l, l->tail) - blk),
	       l->tail - align_down(l, l->tail));
	atomic_store_explicit(&l->fill,
			      (unsigned)(l->tail * 1024 / l->seg_alloc),
			      memory_order_relaxed);
	l->in_callbacks = true;
	complete_chain(l, done, RAFT_OK);
	l->in_callbacks = false;
	rlog_dio_dispatch(l);
}

void rlog_dio_open(struct rlog *l)
{
	struct stat st;

	l->efd = -1;
	l->dio_pos.fd = -1;
	if (l->opts.no_sync || l->opts.no_direct || fstat(l->fd, &st) != 0)
		return;
	l->dio_align = st.st_blksize >= 4096 ? (size_t)st.st_blksize : 4096;
	if (posix_memalign((void **)&l->dio_buf, l->dio_align,
			   RLOG_DIO_MAX + 2 * l->dio_align) != 0) {
		l->dio_buf = NULL;
		return;
	}
	l->dio_pos.tail_blk = malloc(l->dio_align);
	if (l->dio_pos.tail_blk == NULL)
		return;
	if (syscall(SYS_io_setup, 4L, &l->aio) != 0) {
		l->aio = 0;
		return;
	}
	l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->efd < 0)
		return;
	if (uv_poll_init(l->loop, &l->dio_poll, l->efd) != 0)
		return;
	l->dio_handle = true;
	l->dio_poll.data = l;
	if (uv_poll_start(&l->dio_poll, UV_READABLE, dio_poll_cb) != 0)
		return;
	l->dio_ready = true;
	rlog_dio_refresh(l);
}

bool rlog_dio_close(struct rlog *l, uv_close_cb cb)
{
	if (!l->dio_handle)
		return false;
	l->dio_handle = false;
	uv_close((uv_handle_t *)&l->dio_poll, cb);
	return true;
}

void rlog_dio_free(struct rlog *l)
{
	if (l->dio_pos.fd >= 0)
		close(l->dio_pos.fd);
	if (l->efd >= 0)
		close(l->efd);
	if (l->aio != 0)
		syscall(SYS_io_destroy, l->aio);
	free(l->dio_buf);
	free(l->dio_pos.tail_blk);
}
