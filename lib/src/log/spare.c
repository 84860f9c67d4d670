/* The spare segment: a preparer thread writes zeros over a whole
 * segment-sized file ahead of time, so that the worker, at a segment
 * change, only writes a header, syncs it and renames the file.
 *
 * Why zeros and not fallocate: on ext4 and XFS a preallocated block is
 * "unwritten"; the first write to it changes the extent tree, which each
 * fdatasync must then commit through the journal. Blocks that already hold
 * zeros are plain overwrites: fdatasync writes the data and flushes the
 * device cache, nothing else. With batches of tens of kilobytes this saves
 * about a third of every sync on the development machine.
 *
 * Happy path: rlog_spare_want() -> preparer writes spare.N.tmp in 1 MiB
 * steps, paced by how full the active segment is (so the zeros trickle
 * out alongside the log's own writes, each step's write-back started at
 * once, instead of one burst that would slow the worker's syncs), fsyncs
 * it and publishes the descriptor ->
 * the worker takes it with rlog_spare_take() at the next segment change.
 *
 * TODO(log): once snapshots compact the log, rename deleted segments into
 * spares instead of writing zeros again (their blocks are already written);
 * that halves the bytes written.
 *
 * Failure modes: any error (ENOSPC included) just leaves no spare; the
 * worker then creates the segment with fallocate, and that path reports
 * errors to the requests. A leftover spare.N.tmp (crash, close during
 * preparation) is removed at the next open like every *.tmp file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log/internal.h"
#include "log/io.h"

#define SPARE_STEP (1024 * 1024)

/* The spare's zeros may reach 4/3 of the active segment's fill: the spare
 * is whole when the segment is three quarters full, and a log that does
 * not grow costs one step of zeros, not a whole segment. */
#define SPARE_POLL_NS (10 * 1000 * 1000)

/* Wait until the zeros may reach off + n of a spare of size bytes, keeping
 * the preparer's writes in step with the log's instead of in one burst
 * that would slow the worker's syncs. False when asked to stop. */
static bool pace(struct rlog *l, uint64_t off, uint64_t size)
{
	bool stop;

	uv_mutex_lock(&l->mu);
	for (;;) {
		unsigned fill =
		    atomic_load_explicit(&l->fill, memory_order_relaxed);
		stop = l->prep_stop;
		if (stop || off == 0 ||
		    off * 1024 * 3 <= (uint64_t)fill * size * 4)
			break;
		uv_cond_timedwait(&l->prep_cond, &l->mu, SPARE_POLL_NS);
	}
	uv_mutex_unlock(&l->mu);
	return !stop;
}

static bool stopping(struct rlog *l)
{
	bool stop;

	uv_mutex_lock(&l->mu);
	stop = l->prep_stop;
	uv_mutex_unlock(&l->mu);
	return stop;
}

/* Write and sync a zero-filled spare of size bytes; its descriptor, or -1
 * (failed, or asked to stop). */
static int prepare(struct rlog *l, const char *name, const uint8_t *zeros,
		   uint64_t size)
{
	char path[4096];
	uint64_t off = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", l->dir, name);
	fd = rlog_io.open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	while (off < size) {
		size_t n =
		    size - off < SPARE_STEP ? (size_t)(size - off) : SPARE_STEP;
		struct iovec iov = {(void *)zeros, n};
		if (!pace(l, off, size) ||
		    rlog_io.pwritev(fd, &iov, 1, (off_t)off) != (ssize_t)n)
			goto err;
		sync_file_range(fd, (off_t)off, (off_t)n,
				SYNC_FILE_RANGE_WRITE);
		off += n;
	}
	if (stopping(l) || (!l->opts.no_sync && rlog_io.fsync(fd) != 0))
		goto err;
	/* Clean now: dropped from the page cache, the blocks take direct
	 * writes (dio.c). */
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	return fd;
err:
	close(fd);
	rlog_io.unlinkat(l->dirfd, name);
	return -1;
}

void rlog_spare_main(void *arg)
{
	struct rlog *l = arg;
	uint8_t *zeros = calloc(1, SPARE_STEP);

	uv_mutex_lock(&l->mu);
	for (;;) {
		uint64_t size = l->opts.segment_size;
		char name[RLOG_SEG_NAME_LEN];
		int fd;

		while (!l->prep_stop && !(l->spare_wanted && l->spare_fd < 0))
			uv_cond_wait(&l->prep_cond, &l->mu);
		if (l->prep_stop)
			break;
		l->spare_wanted = false;
		/* A new name each time: a spare being renamed into place is
		 * never the file being prepared. */
		snprintf(name, sizeof(name), "spare.%u.tmp", l->spare_seq++);
		uv_mutex_unlock(&l->mu);

		fd = zeros != NULL ? prepare(l, name, zeros, size) : -1;

		uv_mutex_lock(&l->mu);
		if (fd >= 0) {
			l->spare_fd = fd;
			l->spare_size = size;
			memcpy(l->spare_name, name, sizeof(name));
		}
	}
	uv_mutex_unlock(&l->mu);
	free(zeros);
}

void rlog_spare_want(struct rlog *l)
{
	uv_mutex_lock(&l->mu);
	if (l->spare_fd < 0) {
		l->spare_wanted = true;
		uv_cond_signal(&l->prep_cond);
	}
	uv_mutex_unlock(&l->mu);
}

int rlog_spare_take(struct rlog *l, uint64_t size, uint64_t *got, char *name)
{
	int fd = -1;

	uv_mutex_lock(&l->mu);
	if (l->spare_fd >= 0 && l->spare_size >= size) {
		fd = l->spare_fd;
		*got = l->spare_size;
		memcpy(name, l->spare_name, sizeof(l->spare_name));
		l->spare_fd = -1;
		l->spares_used++;
	}
	uv_mutex_unlock(&l->mu);
	return fd;
}
