/* The durable Raft log: requests queued on the loop thread, written and
 * synced by one worker thread with group commit, completed back on the loop
 * thread through a uv_async_t. The happy path and failure modes are at the
 * top of log.h; the file format is in format.h and docs/storage.md.
 *
 * Life of a request:
 *
 *   rlog_write()  --queue-->  worker: metadata, writes, one fdatasync
 *       (loop)                   |
 *                                +--done list--> async_cb(): cb(req, status)
 *                                                  (loop, submission order)
 *
 * States of the log:
 *
 *   OPEN --write/sync error--> FAILED (every request gets l->failed)
 *     |                           |
 *     +------rlog_close()---------+--> CLOSING --worker gone--> closed, cb
 *
 * Ordering rules the worker keeps, in each batch:
 *  1. term and vote are durable before any entry of the batch is written
 *     (Raft paper, Figure 2: persistent state is updated on stable storage
 *     before responding to RPCs; a stored entry never has a term above the
 *     stored current term);
 *  2. a segment is synced before the next one receives a record, so only
 *     the last segment can hold bytes never reported durable;
 *  3. a suffix truncation removes later segments newest first, each removal
 *     made durable before the next, and then shortens the segment that
 *     holds the cut: every crash point leaves a contiguous log.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log/format.h"
#include "log/internal.h"
#include "log/io.h"

#define RLOG_DEFAULT_SEGMENT (64u * 1024 * 1024)
#define RLOG_MIN_SEGMENT     4096

int rlog_errno_code(int err)
{
	return err == ENOSPC || err == EDQUOT ? RAFT_ENOSPC : RAFT_EIO;
}

void rlog_seg_name(char *buf, raft_index first, bool tmp)
{
	snprintf(buf, RLOG_SEG_NAME_LEN, "%020" PRIu64 ".seg%s", first,
		 tmp ? ".tmp" : "");
}

int rlog_segs_push(struct rlog *l, raft_index first, raft_index last)
{
	if (l->n_segs == l->cap_segs) {
		size_t ncap = l->cap_segs ? l->cap_segs * 2 : 16;
		struct rlog_seg *s = realloc(l->segs, ncap * sizeof(*s));
		if (s == NULL)
			return RAFT_ENOMEM;
		l->segs = s;
		l->cap_segs = ncap;
	}
	l->segs[l->n_segs].first = first;
	l->segs[l->n_segs].last = last;
	l->n_segs++;
	return RAFT_OK;
}

/* Record a system call failure (errno) on the worker; returns its code. */
static int io_error(char *msg, size_t len, const struct rlog *l,
		    const char *name, const char *call)
{
	int err = errno;

	snprintf(msg, len, "%s/%s: %s: %s", l->dir, name, call, strerror(err));
	return rlog_errno_code(err);
}

static int sync_fd(const struct rlog *l, int fd, bool data_only)
{
	if (l->opts.no_sync)
		return 0;
	return data_only ? rlog_io.fdatasync(fd) : rlog_io.fsync(fd);
}

static int write_all(int fd, struct iovec *iov, int n, uint64_t off)
{
	while (n > 0) {
		int chunk = n < IOV_MAX ? n : IOV_MAX;
		ssize_t done = rlog_io.pwritev(fd, iov, chunk, (off_t)off);
		if (done < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (done == 0) {
			errno = EIO;
			return -1;
		}
		off += (uint64_t)done;
		while (n > 0 && (size_t)done >= iov->iov_len) {
			done -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + done;
			iov->iov_len -= (size_t)done;
		}
	}
	return 0;
}

/* Finish the segment file fd, still named tmp, as the segment starting at
 * first: write its header, sync it (data only when its blocks were written
 * before), rename it, sync the directory, and make it the active segment.
 * The header is durable before the name is, so a segment file with its
 * final name always has its header. On failure fd is closed and tmp
 * removed. */
static int seg_install(struct rlog *l, int fd, const char *tmp, uint64_t size,
		       raft_index first, bool data_only, char *errmsg,
		       size_t errlen)
{
	/* The header goes out as a whole first page, the header and the zeros
	 * the file already holds after it: a 32-byte write into a page that
	 * is not cached (the preparer drops the spare's pages) would first
	 * read that page from the disk, on the path of every segment change. */
	enum { HDR_PAGE = 4096 };
	char name[RLOG_SEG_NAME_LEN];
	uint8_t hdr[HDR_PAGE] = {0};
	struct iovec iov = {hdr, size < HDR_PAGE ? (size_t)size : HDR_PAGE};
	int rc;

	rlog_seg_name(name, first, false);
	rlog_seg_hdr_encode(hdr, first);
	if (write_all(fd, &iov, 1, 0) != 0) {
		rc = io_error(errmsg, errlen, l, tmp, "write");
		goto err_fd;
	}
	if (sync_fd(l, fd, data_only) != 0) {
		rc = io_error(errmsg, errlen, l, tmp,
			      data_only ? "fdatasync" : "fsync");
		goto err_fd;
	}
	if (rlog_io.renameat(l->dirfd, tmp, name) != 0) {
		rc = io_error(errmsg, errlen, l, tmp, "rename");
		goto err_fd;
	}
	if (sync_fd(l, l->dirfd, false) != 0) {
		rc = io_error(errmsg, errlen, l, ".", "fsync");
		goto err_fd;
	}
	rc = rlog_segs_push(l, first, first - 1);
	if (rc != RAFT_OK) {
		snprintf(errmsg, errlen, "out of memory");
		goto err_fd;
	}
	if (l->fd >= 0)
		close(l->fd);
	l->fd = fd;
	l->tail = RLOG_SEG_HDR;
	l->seg_alloc = size;
	return RAFT_OK;

err_fd:
	close(fd);
	rlog_io.unlinkat(l->dirfd, tmp);
	return rc;
}

/* Write zeros over the first size bytes of fd. */
static int zero_fill(int fd, uint64_t size)
{
	enum { STEP = 1024 * 1024 };
	void *zeros = calloc(1, STEP);
	uint64_t off = 0;
	int rc = 0;

	if (zeros == NULL) {
		errno = ENOMEM;
		return -1;
	}
	while (rc == 0 && off < size) {
		struct iovec iov = {zeros,
				    size - off < STEP ? size - off : STEP};
		rc = write_all(fd, &iov, 1, off);
		off += iov.iov_len;
	}
	free(zeros);
	return rc;
}

/* "64 MiB", "12 KiB" or "4100 bytes". */
static void format_size(char *buf, size_t len, uint64_t size)
{
	if (size % (1024 * 1024) == 0)
		snprintf(buf, len, "%" PRIu64 " MiB", size / (1024 * 1024));
	else if (size % 1024 == 0)
		snprintf(buf, len, "%" PRIu64 " KiB", size / 1024);
	else
		snprintf(buf, len, "%" PRIu64 " bytes", size);
}

/* A segment could not be allocated (errno set): io_error's message, and
 * when the file system is full, how much space the log needs. */
static int seg_alloc_error(char *errmsg, size_t errlen, const struct rlog *l,
			   const char *name, const char *call, uint64_t size)
{
	char need[32], twice[32];
	int err = errno;
	int rc = io_error(errmsg, errlen, l, name, call);
	size_t n = strlen(errmsg);

	if (rc != RAFT_ENOSPC || n >= errlen)
		return rc;
	format_size(need, sizeof(need), size);
	format_size(twice, sizeof(twice), 2 * size);
	snprintf(errmsg + n, errlen - n,
		 "; this log segment takes %s, and the log needs about %s "
		 "free: the segment in use and a spare of the same size "
		 "prepared ahead",
		 need, twice);
	errno = err;
	return rc;
}

int rlog_seg_create(struct rlog *l, raft_index first, uint64_t size, bool zero,
		    char *errmsg, size_t errlen)
{
	char tmp[RLOG_SEG_NAME_LEN], path[4096];
	int fd, rc;

	rlog_seg_name(tmp, first, true);
	snprintf(path, sizeof(path), "%s/%s", l->dir, tmp);

	/* Built under a temporary name and renamed once whole. */
	fd = rlog_io.open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return io_error(errmsg, errlen, l, tmp, "open");
	if (zero ? zero_fill(fd, size) != 0
		 : rlog_io.fallocate(fd, 0, (off_t)size) != 0) {
		rc = seg_alloc_error(errmsg, errlen, l, tmp,
				     zero ? "write" : "fallocate", size);
		close(fd);
		rlog_io.unlinkat(l->dirfd, tmp);
		return rc;
	}
	rc = seg_install(l, fd, tmp, size, first, false, errmsg, errlen);
	if (rc == RAFT_OK && zero)
		posix_fadvise(l->fd, 0, 0, POSIX_FADV_DONTNEED);
	return rc;
}

/* Make the prepared spare fd (named spare) the segment starting at first.
 * Its blocks are already written, so a data-only sync suffices. */
static int seg_from_spare(struct rlog *l, int fd, const char *spare,
			  uint64_t size, raft_index first, char *errmsg,
			  size_t errlen)
{
	int rc;

	rc = seg_install(l, fd, spare, size, first, true, errmsg, errlen);
	if (rc == RAFT_OK)
		rlog_spare_want(l);
	return rc;
}

void rlog_set_failed(struct rlog *l, int rc, const char *msg)
{
	uv_mutex_lock(&l->mu);
	if (l->failed == RAFT_OK) {
		l->failed = rc;
		snprintf(l->failure, sizeof(l->failure), "%s", msg);
	}
	uv_mutex_unlock(&l->mu);
}

/* ---- worker ---------------------------------------------------------- */

/* Write term and vote: temporary file, fsync, rename, directory fsync. */
static int meta_store(struct rlog *l, raft_term term, raft_id vote, char *msg,
		      size_t len)
{
	uint8_t buf[RLOG_META_SIZE];
	struct iovec iov = {buf, sizeof(buf)};
	char path[4096];
	int fd, rc = RAFT_OK;

	rlog_meta_encode(buf, term, vote);
	snprintf(path, sizeof(path), "%s/meta.tmp", l->dir);
	fd = rlog_io.open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return io_error(msg, len, l, "meta.tmp", "open");
	if (write_all(fd, &iov, 1, 0) != 0) {
		rc = io_error(msg, len, l, "meta.tmp", "write");
		goto out;
	}
	if (sync_fd(l, fd, false) != 0) {
		rc = io_error(msg, len, l, "meta.tmp", "fsync");
		goto out;
	}
	if (rlog_io.renameat(l->dirfd, "meta.tmp", "meta") != 0) {
		rc = io_error(msg, len, l, "meta.tmp", "rename");
		goto out;
	}
	if (sync_fd(l, l->dirfd, false) != 0)
		rc = io_error(msg, len, l, ".", "fsync");
out:
	close(fd);
	return rc;
}

static int flush_writes(struct rlog *l, char *msg, size_t len)
{
	char name[RLOG_SEG_NAME_LEN];

	if (l->n_iov == 0)
		return RAFT_OK;
	if (write_all(l->fd, l->iov, l->n_iov, l->iov_off) != 0) {
		rlog_seg_name(name, l->segs[l->n_segs - 1].first, false);
		return io_error(msg, len, l, name, "write");
	}
	l->n_iov = 0;
	l->iov_bytes = 0;
	l->dirty = true;
	return RAFT_OK;
}

static int sync_active(struct rlog *l, char *msg, size_t len)
{
	char name[RLOG_SEG_NAME_LEN];

	if (!l->dirty)
		return RAFT_OK;
	if (sync_fd(l, l->fd, true) != 0) {
		rlog_seg_name(name, l->segs[l->n_segs - 1].first, false);
		return io_error(msg, len, l, name, "fdatasync");
	}
	l->dirty = false;
	return RAFT_OK;
}

static int queue_write(struct rlog *l, void *p, size_t n)
{
	if (l->n_iov == l->cap_iov) {
		int ncap = l->cap_iov ? l->cap_iov * 2 : 64;
		struct iovec *v = realloc(l->iov, (size_t)ncap * sizeof(*v));
		if (v == NULL)
			return RAFT_ENOMEM;
		l->iov = v;
		l->cap_iov = ncap;
	}
	if (l->n_iov == 0)
		l->iov_off = l->tail;
	l->iov[l->n_iov].iov_base = p;
	l->iov[l->n_iov].iov_len = n;
	l->n_iov++;
	l->iov_bytes += n;
	l->tail += n;
	return RAFT_OK;
}

/* Start a new segment for the record at index, of rec_size bytes. Rule 2
 * at the top: the current segment is durable first.
 *
 * The spare prepared by spare.c is used when it is ready and large
 * enough; otherwise the segment is created here with fallocate.
 *
 * TODO(log): the header write, syncs and rename happen here, on the
 * worker, while direct writes wait. With three nodes writing 4 KiB records
 * onto one disk, the header's fdatasync alone averaged 10-18 ms per segment
 * change, the directory fsync comes on top, and under a saturated disk the
 * whole change took 100-200 ms: the tail of put4k-64/8. The next segment's
 * first index is not known before this point, so the header cannot be
 * written ahead; what would take both syncs off the path is a loader that
 * adopts a spare whose header is valid and continues the last segment,
 * letting the header go out with the first direct write and the rename
 * and directory fsync follow on the worker. */
static int roll_segment(struct rlog *l, raft_index index, size_t rec_size,
			char *msg, size_t len)
{
	uint64_t size = l->opts.segment_size;
	int rc;

	if (RLOG_SEG_HDR + rec_size > size)
		size = RLOG_SEG_HDR + rec_size;
	char spare[RLOG_SEG_NAME_LEN];
	uint64_t got;
	int fd;

	rc = flush_writes(l, msg, len);
	if (rc == RAFT_OK)
		rc = sync_active(l, msg, len);
	if (rc != RAFT_OK)
		return rc;
	fd = rlog_spare_take(l, size, &got, spare);
	if (fd >= 0)
		return seg_from_spare(l, fd, spare, got, index, msg, len);
	return rlog_seg_create(l, index, size, false, msg, len);
}

/* An empty active segment too small for one record grows instead. */
static int grow_segment(struct rlog *l, size_t rec_size, char *msg, size_t len)
{
	char name[RLOG_SEG_NAME_LEN];
	uint64_t size = RLOG_SEG_HDR + rec_size;

	if (rlog_io.fallocate(l->fd, 0, (off_t)size) != 0) {
		rlog_seg_name(name, l->segs[l->n_segs - 1].first, false);
		return io_error(msg, len, l, name, "fallocate");
	}
	l->seg_alloc = size;
	l->dirty = true; /* the size changed: fdatasync covers it */
	return RAFT_OK;
}

/* Walk the record headers of segment k from its start, reading the file
 * in windows of RLOG_SCAN_WINDOW bytes, to find where index begins. */
#define RLOG_SCAN_WINDOW (256 * 1024)

static int find_offset(struct rlog *l, int fd, size_t k, raft_index index,
		       uint64_t *off, char *msg, size_t len)
{
	char name[RLOG_SEG_NAME_LEN];
	struct rlog_rec r;
	uint64_t pos = RLOG_SEG_HDR, wstart = 0, wlen = 0;
	uint8_t *win = malloc(RLOG_SCAN_WINDOW);
	int rc = RAFT_OK;

	rlog_seg_name(name, l->segs[k].first, false);
	if (win == NULL) {
		snprintf(msg, len, "out of memory");
		return RAFT_ENOMEM;
	}
	for (raft_index i = l->segs[k].first; i < index; i++) {
		if (pos < wstart || pos + RLOG_REC_HDR > wstart + wlen) {
			ssize_t n =
			    pread(fd, win, RLOG_SCAN_WINDOW, (off_t)pos);
			if (n < RLOG_REC_HDR) {
				if (n >= 0)
					errno = EIO;
				rc = io_error(msg, len, l, name, "read");
				break;
			}
			wstart = pos;
			wlen = (uint64_t)n;
		}
		if (!rlog_rec_decode(win + (pos - wstart), &r) ||
		    r.index != i) {
			snprintf(msg, len,
				 "%s/%s: offset %" PRIu64 ": record %" PRIu64
				 " unreadable while truncating",
				 l->dir, name, pos, i);
			rc = RAFT_ECORRUPT;
			break;
		}
		pos += rlog_rec_size(r.len);
	}
	free(win);
	*off = pos;
	return rc;
}

/* Drop every stored entry at and after index (rule 3 at the top). */
static int truncate_suffix(struct rlog *l, raft_index index, char *msg,
			   size_t len)
{
	char name[RLOG_SEG_NAME_LEN], path[4096];
	uint64_t off;
	size_t k = l->n_segs - 1;
	int rc;

	while (k > 0 && l->segs[k].first > index)
		k--;
	if (index < l->segs[k].first) {
		snprintf(msg, len,
			 "%s: cannot truncate at %" PRIu64
			 ", the log starts at %" PRIu64,
			 l->dir, index, l->segs[k].first);
		return RAFT_EINVAL;
	}

	/* Newest segment first, each removal durable before the next. */
	while (l->n_segs - 1 > k) {
		rlog_seg_name(name, l->segs[l->n_segs - 1].first, false);
		if (l->fd >= 0) {
			close(l->fd);
			l->fd = -1;
		}
		if (rlog_io.unlinkat(l->dirfd, name) != 0)
			return io_error(msg, len, l, name, "unlink");
		if (sync_fd(l, l->dirfd, false) != 0)
			return io_error(msg, len, l, ".", "fsync");
		l->n_segs--;
	}

	rlog_seg_name(name, l->segs[k].first, false);
	if (l->fd < 0) {
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", l->dir, name);
		l->fd = rlog_io.open(path, O_RDWR, 0);
		if (l->fd < 0)
			return io_error(msg, len, l, name, "open");
		if (fstat(l->fd, &st) != 0)
			return io_error(msg, len, l, name, "fstat");
		l->seg_alloc = (uint64_t)st.st_size;
	}
	rc = find_offset(l, l->fd, k, index, &off, msg, len);
	if (rc != RAFT_OK)
		return rc;

	/* Shrink (atomic in the file system), make it durable, then give the
	 * space back: the area after the cut reads as zeros. */
	if (rlog_io.ftruncate(l->fd, (off_t)off) != 0)
		return io_error(msg, len, l, name, "ftruncate");
	if (sync_fd(l, l->fd, false) != 0)
		return io_error(msg, len, l, name, "fsync");
	if (l->seg_alloc < l->opts.segment_size)
		l->seg_alloc = l->opts.segment_size;
	if (rlog_io.fallocate(l->fd, 0, (off_t)l->seg_alloc) != 0)
		return io_error(msg, len, l, name, "fallocate");
	l->dirty = true;
	l->tail = off;
	l->segs[k].last = index - 1;
	l->w_next = index;
	return RAFT_OK;
}

/* Queue the records of req for writing, starting segments as needed. */
static int append_req(struct rlog *l, struct rlog_req *req, char *msg,
		      size_t len)
{
	uint8_t *buf = req->buf;
	raft_index index = rlog_get64(buf + 8);
	size_t pos = 0;
	int rc;

	if (index != l->w_next) {
		rc = flush_writes(l, msg, len);
		if (rc == RAFT_OK)
			rc = truncate_suffix(l, index, msg, len);
		if (rc != RAFT_OK)
			return rc;
	}
	while (pos < req->buf_len) {
		size_t chunk = 0;
		raft_index n = 0;

		if (l->tail + (req->buf_len - pos) <= l->seg_alloc) {
			chunk = req->buf_len - pos;
			n = req->n_entries - (index - rlog_get64(buf + 8));
		} else {
			/* Whole records only: walk them. */
			while (pos + chunk < req->buf_len) {
				size_t rs = rlog_rec_size(
				    rlog_get32(buf + pos + chunk + 16));
				if (l->tail + chunk + rs > l->seg_alloc)
					break;
				chunk += rs;
				n++;
			}
		}
		if (chunk > 0) {
			rc = queue_write(l, buf + pos, chunk);
			if (rc != RAFT_OK) {
				snprintf(msg, len, "out of memory");
				return rc;
			}
			pos += chunk;
			index += n;
			l->w_next = index;
			l->segs[l->n_segs - 1].last = index - 1;
		}
		if (pos < req->buf_len) {
			size_t rs = rlog_rec_size(rlog_get32(buf + pos + 16));
			if (l->tail == RLOG_SEG_HDR && l->n_iov == 0)
				rc = grow_segment(l, rs, msg, len);
			else
				rc = roll_segment(l, index, rs, msg, len);
			if (rc != RAFT_OK)
				return rc;
		}
	}
	return RAFT_OK;
}

static int run_batch(struct rlog *l, struct rlog_req *batch, char *msg,
		     size_t len)
{
	struct rlog_req *hs = NULL;
	int rc = RAFT_OK;

	/* Records the loop wrote directly since the last batch. */
	l->segs[l->n_segs - 1].last = l->w_next - 1;

	/* Rule 1: the newest term and vote of the batch go first. */
	for (struct rlog_req *r = batch; r != NULL; r = r->next)
		if (r->set_hard_state)
			hs = r;
	if (hs != NULL)
		rc = meta_store(l, hs->term, hs->vote, msg, len);

	for (struct rlog_req *r = batch; r != NULL && rc == RAFT_OK;
	     r = r->next)
		if (r->n_entries > 0)
			rc = append_req(l, r, msg, len);
	if (rc == RAFT_OK)
		rc = flush_writes(l, msg, len);
	if (rc == RAFT_OK)
		rc = sync_active(l, msg, len);
	atomic_store_explicit(&l->fill,
			      (unsigned)(l->tail * 1024 / l->seg_alloc),
			      memory_order_relaxed);
	return rc;
}

/* Delete whole segments whose every record is below index, oldest first;
 * the active segment always stays. */
static int compact(struct rlog *l, raft_index index, char *msg, size_t len)
{
	char name[RLOG_SEG_NAME_LEN];
	size_t k = 0;

	while (k + 1 < l->n_segs && l->segs[k + 1].first <= index) {
		rlog_seg_name(name, l->segs[k].first, false);
		if (rlog_io.unlinkat(l->dirfd, name) != 0)
			return io_error(msg, len, l, name, "unlink");
		k++;
	}
	if (k == 0)
		return RAFT_OK;
	memmove(l->segs, l->segs + k, (l->n_segs - k) * sizeof(*l->segs));
	l->n_segs -= k;
	if (sync_fd(l, l->dirfd, false) != 0)
		return io_error(msg, len, l, ".", "fsync");
	return RAFT_OK;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* After a batch, poll for up to spin_us for the next request before going
 * to sleep on the condition variable. A lone proposer's next record usually
 * arrives a few tens of microseconds after its callback; catching it here
 * saves a futex wake-up, which on a virtual machine with idle CPUs costs
 * about as much as a third of an fdatasync. */
static void poll_for_work(struct rlog *l, unsigned seen)
{
	uint64_t deadline;

	if (l->opts.spin_us == RLOG_NO_SPIN)
		return;
	deadline = now_ns() + (uint64_t)l->opts.spin_us * 1000u;
	for (;;) {
		for (int i = 0; i < 64; i++) {
			if (atomic_load_explicit(&l->queued,
						 memory_order_acquire) != seen)
				return;
#if defined(__x86_64__) || defined(__i386__)
			__builtin_ia32_pause();
#endif
		}
		if (now_ns() >= deadline)
			return;
	}
}

static bool queue_empty(struct rlog *l)
{
	bool empty;

	uv_mutex_lock(&l->mu);
	empty = l->queue_head == NULL;
	uv_mutex_unlock(&l->mu);
	return empty;
}

static void worker_main(void *arg)
{
	struct rlog *l = arg;
	raft_index compacted = 0;
	char msg[256];

	uv_mutex_lock(&l->mu);
	for (;;) {
		struct rlog_req *batch;
		raft_index compact_to;
		unsigned seen;
		int failed, rc = RAFT_OK;

		while (l->queue_head == NULL && !l->stop &&
		       l->compact_to <= compacted)
			uv_cond_wait(&l->cond, &l->mu);
		if (l->queue_head == NULL && l->stop)
			break;
		batch = l->queue_head;
		l->queue_head = l->queue_tail = NULL;
		seen = atomic_load_explicit(&l->queued, memory_order_relaxed);
		failed = l->failed;
		compact_to = l->compact_to;
		uv_mutex_unlock(&l->mu);

		msg[0] = '\0';
		if (failed == RAFT_OK && batch != NULL)
			rc = run_batch(l, batch, msg, sizeof(msg));
		/* The loop takes the position back only after a batch that
		 * ended with nothing queued behind it: publish it then. Not
		 * after every batch, because it drops the last page from the
		 * cache, which the next buffered write would read back. */
		if (failed == RAFT_OK && batch != NULL && rc == RAFT_OK &&
		    queue_empty(l))
			rlog_dio_refresh(l);
		if (failed == RAFT_OK && rc == RAFT_OK &&
		    compact_to > compacted)
			rc = compact(l, compact_to, msg, sizeof(msg));
		compacted = compact_to;
		if (rc == RAFT_ENOMEM || rc == RAFT_EINVAL ||
		    rc == RAFT_ECORRUPT)
			rc = RAFT_EIO; /* the files are in an unknown state */
		for (struct rlog_req *r = batch; r != NULL; r = r->next)
			r->status = failed != RAFT_OK ? failed : rc;

		uv_mutex_lock(&l->mu);
		if (rc != RAFT_OK && l->failed == RAFT_OK) {
			l->failed = rc;
			snprintf(l->failure, sizeof(l->failure), "%s", msg);
		}
		if (batch != NULL) {
			if (l->done_tail != NULL)
				l->done_tail->next = batch;
			else
				l->done_head = batch;
			while (batch->next != NULL)
				batch = batch->next;
			l->done_tail = batch;
		}
		uv_mutex_unlock(&l->mu);
		uv_async_send(&l->async);
		if (batch != NULL)
			poll_for_work(l, seen);
		uv_mutex_lock(&l->mu);
	}
	l->exited = true;
	uv_mutex_unlock(&l->mu);
	uv_async_send(&l->async);
}

/* ---- loop thread ----------------------------------------------------- */

static void free_rlog(struct rlog *l)
{
	if (l->spare_fd >= 0) {
		close(l->spare_fd);
		rlog_io.unlinkat(l->dirfd, l->spare_name);
	}
	if (l->fd >= 0)
		close(l->fd);
	if (l->dirfd >= 0)
		close(l->dirfd);
	rlog_dio_free(l);
	free(l->iov);
	free(l->segs);
	free(l->dir);
}

static void closed_cb(uv_handle_t *h)
{
	struct rlog *l = h->data;
	void (*cb)(void *) = l->close_cb;
	void *arg = l->close_arg;

	free_rlog(l);
	uv_mutex_destroy(&l->mu);
	uv_cond_destroy(&l->cond);
	uv_cond_destroy(&l->prep_cond);
	free(l);
	if (cb != NULL)
		cb(arg);
}

static void dio_closed_cb(uv_handle_t *h)
{
	struct rlog *l = h->data;

	uv_close((uv_handle_t *)&l->async, closed_cb);
}

static void stop_preparer(struct rlog *l)
{
	if (!l->prep_started)
		return;
	uv_mutex_lock(&l->mu);
	l->prep_stop = true;
	uv_cond_signal(&l->prep_cond);
	uv_mutex_unlock(&l->mu);
	uv_thread_join(&l->prep_thread);
	l->prep_started = false;
}

static void async_cb(uv_async_t *a)
{
	struct rlog *l = a->data;
	struct rlog_req *r;
	bool exited;

	uv_mutex_lock(&l->mu);
	r = l->done_head;
	l->done_head = l->done_tail = NULL;
	exited = l->exited;
	uv_mutex_unlock(&l->mu);

	l->in_callbacks = true;
	while (r != NULL) {
		struct rlog_req *next = r->next;
		free(r->buf);
		r->buf = NULL;
		r->next = NULL;
		l->worker_reqs--;
		r->cb(r, r->status);
		r = next;
	}
	l->in_callbacks = false;
	rlog_dio_dispatch(l);
	if (exited && l->thread_started) {
		uv_thread_join(&l->thread);
		l->thread_started = false;
		stop_preparer(l);
		if (!rlog_dio_close(l, dio_closed_cb))
			uv_close((uv_handle_t *)&l->async, closed_cb);
	}
}

void rlog_loaded_free(struct rlog_loaded *ld)
{
	for (size_t i = 0; i < ld->n_entries; i++)
		free(ld->entries[i].data);
	free(ld->entries);
	ld->entries = NULL;
	ld->n_entries = 0;
}

int rlog_open(uv_loop_t *loop, const char *dir, const struct rlog_options *o,
	      struct rlog **out, struct rlog_loaded *loaded, char *errmsg,
	      size_t errlen)
{
	struct rlog *l;
	int rc;

	memset(loaded, 0, sizeof(*loaded));
	*out = NULL;
	l = calloc(1, sizeof(*l));
	if (l == NULL) {
		snprintf(errmsg, errlen, "out of memory");
		return RAFT_ENOMEM;
	}
	l->fd = -1;
	l->dirfd = -1;
	l->spare_fd = -1;
	l->efd = -1;
	l->dio_pos.fd = -1;
	l->loop = loop;
	if (o != NULL)
		l->opts = *o;
	if (l->opts.segment_size == 0)
		l->opts.segment_size = RLOG_DEFAULT_SEGMENT;
	if (l->opts.spin_us == 0)
		l->opts.spin_us = RLOG_DEFAULT_SPIN_US;
	if (l->opts.segment_size < RLOG_MIN_SEGMENT) {
		snprintf(errmsg, errlen,
			 "segment_size %zu is below the minimum of %d bytes",
			 l->opts.segment_size, RLOG_MIN_SEGMENT);
		rc = RAFT_EINVAL;
		goto err;
	}
	l->dir = strdup(dir);
	if (l->dir == NULL) {
		snprintf(errmsg, errlen, "out of memory");
		rc = RAFT_ENOMEM;
		goto err;
	}
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		snprintf(errmsg, errlen, "%s: mkdir: %s", dir, strerror(errno));
		rc = rlog_errno_code(errno);
		goto err;
	}
	l->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (l->dirfd < 0) {
		snprintf(errmsg, errlen, "%s: open: %s", dir, strerror(errno));
		rc = RAFT_EIO;
		goto err;
	}
	rc = rlog_load(l, loaded, errmsg, errlen);
	if (rc != RAFT_OK)
		goto err;
	l->next_index = l->w_next;
	l->floor = l->segs[0].first;

	if (uv_mutex_init(&l->mu) != 0) {
		rc = RAFT_ENOMEM;
		goto err;
	}
	if (uv_cond_init(&l->cond) != 0) {
		rc = RAFT_ENOMEM;
		goto err_mu;
	}
	if (uv_cond_init(&l->prep_cond) != 0) {
		rc = RAFT_ENOMEM;
		goto err_cond;
	}
	l->async.data = l;
	if (uv_async_init(loop, &l->async, async_cb) != 0) {
		rc = RAFT_ENOMEM;
		goto err_prep_cond;
	}
	/* Without direct writes everything goes through the worker. */
	rlog_dio_open(l);
	/* Without the preparer the log still works, creating segments with
	 * fallocate. */
	l->prep_started =
	    !rlog_io.no_spare &&
	    uv_thread_create(&l->prep_thread, rlog_spare_main, l) == 0;
	if (uv_thread_create(&l->thread, worker_main, l) != 0) {
		snprintf(errmsg, errlen, "cannot start the log's thread");
		rc = RAFT_ENOMEM;
		stop_preparer(l);
		/* The handle is initialised: it must go through uv_close. */
		l->exited = true;
		l->closing = true;
		l->close_cb = NULL;
		uv_close((uv_handle_t *)&l->async, closed_cb);
		rlog_loaded_free(loaded);
		return rc;
	}
	l->thread_started = true;
	atomic_store(&l->fill, (unsigned)(l->tail * 1024 / l->seg_alloc));
	rlog_spare_want(l);
	*out = l;
	return RAFT_OK;

err_prep_cond:
	uv_cond_destroy(&l->prep_cond);
err_cond:
	uv_cond_destroy(&l->cond);
err_mu:
	uv_mutex_destroy(&l->mu);
	snprintf(errmsg, errlen, "cannot set up the log's thread");
err:
	rlog_loaded_free(loaded);
	free_rlog(l);
	free(l);
	return rc;
}

/* Check req's entries against the log as it will be once everything
 * queued is written. */
static int check_entries(const struct rlog *l, const struct rlog_req *req)
{
	const struct raft_entry *e = req->entries;

	if (req->n_entries == 0)
		return RAFT_OK;
	if (e == NULL || e[0].index < l->floor || e[0].index > l->next_index)
		return RAFT_EINVAL;
	for (size_t i = 0; i < req->n_entries; i++) {
		if (e[i].index != e[0].index + i || e[i].term == 0 ||
		    (i > 0 && e[i].term < e[i - 1].term))
			return RAFT_EINVAL;
		if (e[i].type != RAFT_ENTRY_COMMAND &&
		    e[i].type != RAFT_ENTRY_NOOP)
			return RAFT_EINVAL;
		if (e[i].len > 0 && e[i].data == NULL)
			return RAFT_EINVAL;
		if (e[i].len > RLOG_MAX_PAYLOAD)
			return RAFT_ETOOBIG;
	}
	return RAFT_OK;
}

int rlog_write(struct rlog *l, struct rlog_req *req)
{
	size_t size = 0;
	uint8_t *p;
	int rc;

	if (l->closing)
		return RAFT_ESHUTDOWN;
	rc = check_entries(l, req);
	if (rc != RAFT_OK)
		return rc;

	/* Encode now (with checksums): the caller may free entries once we
	 * return. */
	for (size_t i = 0; i < req->n_entries; i++)
		size += rlog_rec_size(req->entries[i].len);
	req->buf = NULL;
	if (size > 0) {
		req->buf = malloc(size);
		if (req->buf == NULL)
			return RAFT_ENOMEM;
	}
	p = req->buf;
	for (size_t i = 0; i < req->n_entries; i++) {
		rlog_rec_encode(p, &req->entries[i]);
		p += rlog_rec_size(req->entries[i].len);
	}
	req->buf_len = size;
	req->status = RAFT_OK;
	req->next = NULL;

	uv_mutex_lock(&l->mu);
	rc = l->failed;
	uv_mutex_unlock(&l->mu);
	if (rc != RAFT_OK) {
		free(req->buf);
		req->buf = NULL;
		return rc;
	}
	if (req->n_entries > 0)
		l->next_index = req->entries[req->n_entries - 1].index + 1;
	/* Requests wait while the worker or a direct write is busy, and then
	 * go out together (dio.c). */
	if (l->pend_tail != NULL)
		l->pend_tail->next = req;
	else
		l->pend_head = req;
	l->pend_tail = req;
	rlog_dio_dispatch(l);
	return RAFT_OK;
}

int rlog_compact(struct rlog *l, raft_index index)
{
	int rc;

	if (l->closing)
		return RAFT_ESHUTDOWN;
	if (index > l->next_index)
		return RAFT_EINVAL;
	uv_mutex_lock(&l->mu);
	rc = l->failed;
	if (rc == RAFT_OK && index > l->compact_to) {
		l->compact_to = index;
		uv_cond_signal(&l->cond);
	}
	uv_mutex_unlock(&l->mu);
	if (rc == RAFT_OK && index > l->floor)
		l->floor = index;
	return rc;
}

const char *rlog_failure(struct rlog *l)
{
	const char *s = NULL;

	uv_mutex_lock(&l->mu);
	if (l->failed != RAFT_OK)
		s = l->failure;
	uv_mutex_unlock(&l->mu);
	return s;
}

void rlog_close(struct rlog *l, void (*cb)(void *arg), void *arg)
{
	l->closing = true;
	l->close_cb = cb;
	l->close_arg = arg;
	/* The worker stops once the requests queued so far are written. */
	l->stop_when_idle = true;
	rlog_dio_dispatch(l);
}
