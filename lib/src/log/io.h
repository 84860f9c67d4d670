/* The system calls the log makes to change files, behind a table that tests
 * replace to inject failures (a failed fdatasync, ENOSPC from fallocate...).
 * Every call returns 0 (or a byte count) on success and -1 with errno set on
 * failure, like the system call it stands for. Reads are not in the table:
 * they happen only in rlog_open(), whose failures tests cause with real
 * files. */
#ifndef RLOG_IO_H
#define RLOG_IO_H

#include <stdbool.h>
#include <sys/types.h>
#include <sys/uio.h>

struct rlog_io {
	int (*open)(const char *path, int flags, mode_t mode);
	ssize_t (*pwritev)(int fd, const struct iovec *iov, int n, off_t off);
	int (*fdatasync)(int fd);
	int (*fsync)(int fd);
	int (*fallocate)(int fd, off_t off, off_t len);
	int (*ftruncate)(int fd, off_t len);
	int (*renameat)(int dirfd, const char *from, const char *to);
	int (*unlinkat)(int dirfd, const char *name);
	/* No spare segments prepared in the background (spare.c): tests
	 * that count or fail calls want only the worker to make them. */
	bool no_spare;
	/* What a direct write's completion reports: the byte count or a
	 * negative errno (dio.c); tests turn it into errors. */
	long long (*direct_result)(long long res);
};

/* Direct writes from the loop thread (dio.c) are made only while the
 * table's pwritev and fdatasync are the defaults: tests that replace them
 * see every write go through the worker. */

/* The table in use; starts as rlog_io_default. Change it while no log is
 * open, or, with no_spare set before the open, on the loop thread between
 * requests: rlog_write() takes the queue's lock after the change and the
 * worker takes it before its next batch, which orders the two. */
extern struct rlog_io rlog_io;
extern const struct rlog_io rlog_io_default;

#endif /* RLOG_IO_H */
