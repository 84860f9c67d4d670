/* Default system calls for the log (see io.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "log/io.h"

static int io_open(const char *path, int flags, mode_t mode)
{
	return open(path, flags | O_CLOEXEC, mode);
}

static int io_fallocate(int fd, off_t off, off_t len)
{
	/* posix_fallocate() returns the error instead of setting errno. */
	int rv = posix_fallocate(fd, off, len);

	if (rv != 0) {
		errno = rv;
		return -1;
	}
	return 0;
}

static int io_renameat(int dirfd, const char *from, const char *to)
{
	return renameat(dirfd, from, dirfd, to);
}

static int io_unlinkat(int dirfd, const char *name)
{
	return unlinkat(dirfd, name, 0);
}

static long long io_direct_result(long long res)
{
	return res;
}

const struct rlog_io rlog_io_default = {
    .open = io_open,
    .pwritev = pwritev,
    .fdatasync = fdatasync,
    .fsync = fsync,
    .fallocate = io_fallocate,
    .ftruncate = ftruncate,
    .renameat = io_renameat,
    .unlinkat = io_unlinkat,
    .direct_result = io_direct_result,
};

struct rlog_io rlog_io = {
    .open = io_open,
    .pwritev = pwritev,
    .fdatasync = fdatasync,
    .fsync = fsync,
    .fallocate = io_fallocate,
    .ftruncate = ftruncate,
    .renameat = io_renameat,
    .unlinkat = io_unlinkat,
    .direct_result = io_direct_result,
};
