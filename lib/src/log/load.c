/* Loading the log at open: the metadata file, then every segment in index
 * order, checking every header, checksum and index.
 *
 * What counts as a torn tail: the worker writes a segment's records in
 * order and only starts a new segment once the previous one is synced, so
 * bytes that were never reported durable can only sit at the end of the
 * last segment. When a record of the last segment fails its checks and no
 * valid record follows it anywhere in that segment, the record and
 * everything after it is that unsynced tail: it is cut off and reported in
 * the notice. A failing record that a valid record follows, any failure in
 * an earlier segment, a bad segment header, a gap between indexes or a term
 * that goes down is corruption: RAFT_ECORRUPT, naming file and offset.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/format.h"
#include "log/internal.h"
#include "log/io.h"

/* One segment being read. */
struct seg_scan {
	const char *name;
	uint8_t *buf;
	uint64_t size;
	bool last;
};

static int corrupt(char *errmsg, size_t errlen, const char *dir,
		   const char *name, uint64_t off, const char *fmt, ...)
{
	char what[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(errmsg, errlen, "%s/%s: offset %" PRIu64 ": %s", dir, name,
		 off, what);
	return RAFT_ECORRUPT;
}

static int sys_error(char *errmsg, size_t errlen, const char *dir,
		     const char *name, const char *call)
{
	int err = errno;

	snprintf(errmsg, errlen, "%s/%s: %s: %s", dir, name, call,
		 strerror(err));
	return rlog_errno_code(err);
}

static bool all_zero(const uint8_t *p, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/* Whether the record at off is whole and passes both checksums. */
static bool record_ok(const struct seg_scan *s, uint64_t off,
		      struct rlog_rec *r)
{
	if (off + RLOG_REC_HDR > s->size || !rlog_rec_decode(s->buf + off, r))
		return false;
	if (r->len > RLOG_MAX_PAYLOAD || off + rlog_rec_size(r->len) > s->size)
		return false;
	return rlog_crc32c(s->buf + off + RLOG_REC_HDR, r->len) == r->data_crc;
}

/* The offset of the first valid record at or after from (records are
 * 8-byte aligned), or 0 when there is none. */
static uint64_t find_valid_record(const struct seg_scan *s, uint64_t from)
{
	struct rlog_rec r;

	from = (from + RLOG_ALIGN - 1) & ~(uint64_t)(RLOG_ALIGN - 1);
	for (uint64_t off = from; off + RLOG_REC_HDR <= s->size;
	     off += RLOG_ALIGN) {
		if (rlog_get64(s->buf + off) == 0) /* term 0: no record */
			continue;
		if (record_ok(s, off, &r))
			return off;
	}
	return 0;
}

static int entries_push(struct rlog_loaded *loaded, size_t *cap,
			const struct rlog_rec *r, const uint8_t *payload)
{
	struct raft_entry *e;

	if (loaded->n_entries == *cap) {
		size_t ncap = *cap ? *cap * 2 : 1024;
		e = realloc(loaded->entries, ncap * sizeof(*e));
		if (e == NULL)
			return RAFT_ENOMEM;
		loaded->entries = e;
		*cap = ncap;
	}
	e = &loaded->entries[loaded->n_entries];
	e->term = r->term;
	e->index = r->index;
	e->type = r->type;
	e->len = r->len;
	e->data = NULL;
	if (r->len > 0) {
		e->data = malloc(r->len);
		if (e->data == NULL)
			return RAFT_ENOMEM;
		memcpy(e->data, payload, r->len);
	}
	loaded->n_entries++;
	return RAFT_OK;
}

/* A record at off failed a check (what). In the last segment with nothing
 * valid after it, it is the torn tail: *cut = off. Otherwise corruption.
 *
 * TODO(log): after a power loss the kernel may have written a later page of
 * the unsynced batch but not an earlier one; that tail is refused here as
 * corruption (safe, but an operator must step in). Telling it apart needs
 * to know where the last synced batch ended, e.g. a batch marker in each
 * record. */
static int bad_record(struct rlog *l, const struct seg_scan *s, uint64_t off,
		      uint64_t scan_from, raft_index expect, const char *what,
		      uint64_t *cut, char *errmsg, size_t errlen)
{
	uint64_t next;

	if (!s->last)
		return corrupt(errmsg, errlen, l->dir, s->name, off,
			       "%s, expected record %" PRIu64
			       " (not the last segment, so not a torn tail)",
			       what, expect);
	if (expect != 0 && expect <= l->opts.keep)
		return corrupt(errmsg, errlen, l->dir, s->name, off,
			       "%s, expected record %" PRIu64
			       ", which the state machine has already applied "
			       "(up to %" PRIu64 "): it was committed, so it "
			       "is not a torn tail and is not cut",
			       what, expect, l->opts.keep);
	next = find_valid_record(s, scan_from);
	if (next != 0)
		return corrupt(
		    errmsg, errlen, l->dir, s->name, off,
		    "%s, expected record %" PRIu64
		    ", yet a valid record follows at offset %" PRIu64,
		    what, expect, next);
	*cut = off;
	return RAFT_OK;
}

/* Check the header and every record of one segment; add its entries to
 * loaded. *expect is the index its first record must have (0: any); it
 * leaves with the index after its last record. *cut is set to where a torn
 * tail starts, or stays UINT64_MAX. */
static int scan_segment(struct rlog *l, struct seg_scan *s, raft_index named,
			raft_index *expect, raft_term *last_term,
			struct rlog_loaded *loaded, size_t *cap, uint64_t *cut,
			char *errmsg, size_t errlen)
{
	const char *what;
	raft_index first;
	struct rlog_rec r;
	uint64_t off = RLOG_SEG_HDR;
	int rc;

	*cut = UINT64_MAX;
	if (s->size < RLOG_SEG_HDR)
		return corrupt(errmsg, errlen, l->dir, s->name, 0,
			       "file is %" PRIu64 " bytes, shorter than the "
			       "%d-byte segment header",
			       s->size, RLOG_SEG_HDR);
	what = rlog_seg_hdr_decode(s->buf, &first);
	if (what != NULL)
		return corrupt(errmsg, errlen, l->dir, s->name, 0, "%s", what);
	if (first != named)
		return corrupt(errmsg, errlen, l->dir, s->name, 16,
			       "first index %" PRIu64 ", expected %" PRIu64
			       " (the file name)",
			       first, named);
	if (*expect != 0 && first != *expect)
		return corrupt(errmsg, errlen, l->dir, s->name, 16,
			       "first index %" PRIu64 ", expected %" PRIu64
			       " (the previous segment ends at %" PRIu64 ")",
			       first, *expect, *expect - 1);
	*expect = first;

	for (;;) {
		if (off + RLOG_REC_HDR > s->size) {
			if (all_zero(s->buf + off, s->size - off))
				break;
			return bad_record(l, s, off, s->size, *expect,
					  "truncated record header", cut,
					  errmsg, errlen);
		}
		if (all_zero(s->buf + off, RLOG_REC_HDR))
			break; /* the end of the records */
		if (!rlog_rec_decode(s->buf + off, &r))
			return bad_record(l, s, off, off + RLOG_ALIGN, *expect,
					  "record header checksum mismatch",
					  cut, errmsg, errlen);
		if (r.len > RLOG_MAX_PAYLOAD ||
		    off + rlog_rec_size(r.len) > s->size)
			return bad_record(
			    l, s, off, s->size, *expect,
			    "record runs past the end of the file", cut, errmsg,
			    errlen);
		if (rlog_crc32c(s->buf + off + RLOG_REC_HDR, r.len) !=
		    r.data_crc)
			return bad_record(l, s, off, off + rlog_rec_size(r.len),
					  *expect, "payload checksum mismatch",
					  cut, errmsg, errlen);
		/* From here the record is what was written: a wrong value is
		 * corruption even at the tail. */
		if (r.index != *expect)
			return corrupt(errmsg, errlen, l->dir, s->name, off,
				       "record index %" PRIu64
				       ", expected %" PRIu64,
				       r.index, *expect);
		if (r.term == 0 || r.term < *last_term)
			return corrupt(errmsg, errlen, l->dir, s->name, off,
				       "record %" PRIu64 " has term %" PRIu64
				       ", expected >= %" PRIu64,
				       r.index, r.term,
				       *last_term ? *last_term : 1);
		if (r.type != RAFT_ENTRY_COMMAND && r.type != RAFT_ENTRY_NOOP)
			return corrupt(errmsg, errlen, l->dir, s->name, off,
				       "record %" PRIu64 " has type %u, "
				       "expected 1 (command) or 2 (no-op)",
				       r.index, r.type);
		rc = entries_push(loaded, cap, &r, s->buf + off + RLOG_REC_HDR);
		if (rc != RAFT_OK) {
			snprintf(errmsg, errlen, "out of memory loading %s/%s",
				 l->dir, s->name);
			return rc;
		}
		*last_term = r.term;
		(*expect)++;
		off += rlog_rec_size(r.len);
	}

	/* After the end marker only zeros may follow. */
	if (off < s->size && !all_zero(s->buf + off, s->size - off)) {
		uint64_t next = find_valid_record(s, off + RLOG_ALIGN);
		if (next != 0 || !s->last)
			return corrupt(errmsg, errlen, l->dir, s->name, off,
				       "data after the end of the records, "
				       "expected zeros%s",
				       next != 0 ? " (a valid record follows)"
						 : "");
		*cut = off;
	}
	return RAFT_OK;
}

static int read_file(int fd, uint8_t **out, uint64_t *size)
{
	struct stat st;
	uint8_t *buf;
	uint64_t done = 0;

	if (fstat(fd, &st) != 0)
		return -1;
	buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
	if (buf == NULL) {
		errno = ENOMEM;
		return -1;
	}
	while (done < (uint64_t)st.st_size) {
		ssize_t n = pread(fd, buf + done, (size_t)st.st_size - done,
				  (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO; /* shrank under us */
			free(buf);
			return -1;
		}
		done += (uint64_t)n;
	}
	*out = buf;
	*size = done;
	return 0;
}

static int load_meta(struct rlog *l, struct rlog_loaded *loaded, bool *found,
		     char *errmsg, size_t errlen)
{
	uint8_t *buf = NULL;
	uint64_t size;
	const char *what;
	int fd, rc = RAFT_OK;

	*found = false;
	fd = openat(l->dirfd, "meta", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return RAFT_OK;
		return sys_error(errmsg, errlen, l->dir, "meta", "open");
	}
	if (read_file(fd, &buf, &size) != 0) {
		rc = sys_error(errmsg, errlen, l->dir, "meta", "read");
		goto out_fd;
	}
	if (size != RLOG_META_SIZE) {
		rc = corrupt(errmsg, errlen, l->dir, "meta", 0,
			     "file is %" PRIu64 " bytes, expected %d", size,
			     RLOG_META_SIZE);
		goto out_buf;
	}
	what = rlog_meta_decode(buf, &loaded->term, &loaded->vote);
	if (what != NULL) {
		rc = corrupt(errmsg, errlen, l->dir, "meta", 0, "%s", what);
		goto out_buf;
	}
	*found = true;
out_buf:
	free(buf);
out_fd:
	close(fd);
	return rc;
}

static int cmp_index(const void *a, const void *b)
{
	raft_index x = *(const raft_index *)a, y = *(const raft_index *)b;
	return x < y ? -1 : x > y;
}

/* Parse "<20 digits>.seg"; returns false for any other name. */
static bool parse_seg_name(const char *name, raft_index *first)
{
	char *end;

	if (strlen(name) != 24 || strcmp(name + 20, ".seg") != 0)
		return false;
	for (int i = 0; i < 20; i++)
		if (name[i] < '0' || name[i] > '9')
			return false;
	errno = 0;
	*first = strtoull(name, &end, 10);
	return errno == 0 && end == name + 20 && *first > 0;
}

/* Remove leftover temporary files and list segments, sorted. */
static int list_dir(struct rlog *l, raft_index **out, size_t *n, char *errmsg,
		    size_t errlen)
{
	raft_index *firsts = NULL, first;
	size_t cap = 0;
	struct dirent *d;
	DIR *dp;
	int fd, rc = RAFT_OK;

	*n = 0;
	fd = dup(l->dirfd);
	if (fd < 0 || (dp = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return sys_error(errmsg, errlen, l->dir, ".", "opendir");
	}
	while ((d = readdir(dp)) != NULL) {
		size_t len = strlen(d->d_name);
		if (len > 4 && strcmp(d->d_name + len - 4, ".tmp") == 0) {
			/* An unfinished metadata write or segment creation;
			 * nothing in it was ever reported durable. */
			if (rlog_io.unlinkat(l->dirfd, d->d_name) != 0) {
				rc = sys_error(errmsg, errlen, l->dir,
					       d->d_name, "unlink");
				goto out;
			}
			continue;
		}
		if (!parse_seg_name(d->d_name, &first))
			continue;
		if (*n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			raft_index *p = realloc(firsts, ncap * sizeof(*p));
			if (p == NULL) {
				rc = RAFT_ENOMEM;
				snprintf(errmsg, errlen, "out of memory");
				goto out;
			}
			firsts = p;
			cap = ncap;
		}
		firsts[(*n)++] = first;
	}
	if (*n > 1)
		qsort(firsts, *n, sizeof(*firsts), cmp_index);
out:
	closedir(dp);
	if (rc != RAFT_OK) {
		free(firsts);
		firsts = NULL;
		*n = 0;
	}
	*out = firsts;
	return rc;
}

/* Make the last segment the active one: open it for writing, cut a torn
 * tail at cut (UINT64_MAX: none) and make sure it has its allocation. */
static int activate_last(struct rlog *l, const char *name, uint64_t end,
			 uint64_t size, uint64_t cut, char *errmsg,
			 size_t errlen)
{
	uint64_t alloc =
	    size > l->opts.segment_size ? size : l->opts.segment_size;

	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", l->dir, name);
	l->fd = rlog_io.open(path, O_RDWR, 0);
	if (l->fd < 0)
		return sys_error(errmsg, errlen, l->dir, name, "open");
	if (cut != UINT64_MAX) {
		/* Shrinking and then allocating again leaves zeros behind the
		 * cut; the shrink is durable before the area comes back. */
		if (rlog_io.ftruncate(l->fd, (off_t)cut) != 0)
			return sys_error(errmsg, errlen, l->dir, name,
					 "ftruncate");
		if (!l->opts.no_sync && rlog_io.fsync(l->fd) != 0)
			return sys_error(errmsg, errlen, l->dir, name, "fsync");
		end = cut;
	}
	if (cut != UINT64_MAX || size < alloc) {
		if (rlog_io.fallocate(l->fd, 0, (off_t)alloc) != 0)
			return sys_error(errmsg, errlen, l->dir, name,
					 "fallocate");
		if (!l->opts.no_sync && rlog_io.fsync(l->fd) != 0)
			return sys_error(errmsg, errlen, l->dir, name, "fsync");
	}
	l->tail = end;
	l->seg_alloc = alloc;
	return RAFT_OK;
}

int rlog_load(struct rlog *l, struct rlog_loaded *loaded, char *errmsg,
	      size_t errlen)
{
	raft_index *firsts = NULL, expect = 0;
	raft_term last_term = 0;
	size_t n = 0, cap = 0;
	bool meta_found;
	int rc;

	rc = list_dir(l, &firsts, &n, errmsg, errlen);
	if (rc != RAFT_OK)
		return rc;
	rc = load_meta(l, loaded, &meta_found, errmsg, errlen);
	if (rc != RAFT_OK)
		goto out;

	for (size_t i = 0; i < n; i++) {
		char name[RLOG_SEG_NAME_LEN];
		struct seg_scan s = {.name = name, .last = i == n - 1};
		uint64_t cut, end;
		size_t before = loaded->n_entries;
		int fd;

		rlog_seg_name(name, firsts[i], false);
		fd = openat(l->dirfd, name, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			rc = sys_error(errmsg, errlen, l->dir, name, "open");
			goto out;
		}
		if (read_file(fd, &s.buf, &s.size) != 0) {
			rc = sys_error(errmsg, errlen, l->dir, name, "read");
			close(fd);
			goto out;
		}
		close(fd);
		rc = scan_segment(l, &s, firsts[i], &expect, &last_term, loaded,
				  &cap, &cut, errmsg, errlen);
		free(s.buf);
		if (rc != RAFT_OK)
			goto out;
		rc = rlog_segs_push(
		    l, firsts[i], firsts[i] + (loaded->n_entries - before) - 1);
		if (rc != RAFT_OK) {
			snprintf(errmsg, errlen, "out of memory");
			goto out;
		}
		if (!s.last)
			continue;
		end = RLOG_SEG_HDR;
		for (size_t j = before; j < loaded->n_entries; j++)
			end += rlog_rec_size(loaded->entries[j].len);
		if (cut != UINT64_MAX)
			snprintf(loaded->notice, sizeof(loaded->notice),
				 "%s/%s: cut a torn tail at offset %" PRIu64
				 " (after index %" PRIu64 "); it was never "
				 "reported durable",
				 l->dir, name, cut, expect - 1);
		rc = activate_last(l, name, end, s.size, cut, errmsg, errlen);
		if (rc != RAFT_OK)
			goto out;
	}

	if (loaded->n_entries > 0 && !meta_found) {
		rc = RAFT_ECORRUPT;
		snprintf(errmsg, errlen,
			 "%s/meta: missing, yet the segments hold %zu entries "
			 "(term and vote must never go back): restore the "
			 "whole data directory from a backup taken while the "
			 "node was stopped",
			 l->dir, loaded->n_entries);
		goto out;
	}
	if (n == 0) {
		/* Zeros, like a spare: direct writes can start at once. */
		rc = rlog_seg_create(l, 1, l->opts.segment_size, true, errmsg,
				     errlen);
		if (rc != RAFT_OK)
			goto out;
		expect = 1;
	}
	l->w_next = expect;
out:
	free(firsts);
	return rc;
}
