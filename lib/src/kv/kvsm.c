/* The key-value state machine on LMDB: open, apply batches, read, scan.
 *
 * On disk (one environment, file dir/kv.mdb):
 *
 *   database "data": key -> record: create_index, mod_index, version (each
 *                    a little-endian u64), then the value bytes.
 *   database "meta": "format"  -> u32 KVSM_FORMAT;
 *                    "applied" -> index, term of the last applied entry
 *                                 (little-endian u64 each).
 *
 * Happy path of kvsm_apply(): one write transaction decodes and applies
 * every entry past the stored applied index, stores the new applied index
 * and term, and commits. The applied index therefore moves atomically with
 * the data it describes: whatever LMDB keeps after a crash, replay from
 * applied + 1 rebuilds exactly the same state.
 *
 * Failure modes:
 * - MDB_MAP_FULL during the batch or its commit: the transaction is aborted
 *   (nothing of the batch applied), the map grown (doubled, or by twice the
 *   batch's size if more) up to max_map_size, and the whole batch retried;
 *   at the limit, RAFT_ENOSPC, still nothing applied and the store usable.
 * - Any other failed commit (a write or sync error): RAFT_EIO or
 *   RAFT_ENOSPC, and the store refuses every later apply with that error.
 *   A failed fsync may have dropped dirty pages, so carrying on could
 *   report as durable what is not; reopening recovers from what LMDB kept.
 *   LMDB reports a short write as EIO, which is how a file system that
 *   fills up in the middle of a write shows: an EIO with next to no space
 *   left in the directory is reported as RAFT_ENOSPC
 *   (kvsm_out_of_space()). kvsm_failure() names the file, the call, the
 *   error and the space left.
 * - A command that does not decode is consumed with result RAFT_EINVAL on
 *   every node alike; it never fails the batch.
 *
 * - A machine crash while an unsynced store is open (no_sync,
 *   no_meta_sync): the store may be rolled back or torn. kvsm_open() finds
 *   dir/kv.open written by another boot and discards the store (kvsm.h).
 *   The marker is written and synced before LMDB writes anything, and
 *   removed only after a clean close has synced the store, so a store that
 *   was open with unsynced writes across a machine crash always leaves it.
 * - A file damaged while the store was closed (cut short, emptied, meta
 *   pages LMDB refuses): found by kvsm_open_env() before any page is read,
 *   since reading a page past the end of the mapped file is SIGBUS, and
 *   discarded or refused as rebuild_damaged says (kvsm.h).
 *
 * Threads: the map can only be resized while no transaction of this process
 * is open, so readers hold resize_lock shared for the life of their read
 * transaction and growth takes it exclusive (writer-preferring, so a stream
 * of reads cannot starve growth). MDB_NOTLS lets a read transaction live on
 * any thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "kv/kvsm.h"
#include "proto/kvcmd.pb-c.h"

#define KVSM_FORMAT	     1
#define KVSM_FILE	     "kv.mdb"
#define KVSM_DEFAULT_MAP     ((size_t)64 << 20)
#define KVSM_DEFAULT_MAX_MAP ((size_t)64 << 30)
#define KVSM_REC_HDR	     24 /* create_index, mod_index, version */
#define KVSM_BOOT_ID_MAX     64

static const char kvsm_key_format[] = "format";
static const char kvsm_key_applied[] = "applied";

struct kvsm {
	MDB_env *env;
	MDB_dbi data;
	MDB_dbi meta;
	size_t map_size; /* current map size; changed by the writer only */
	size_t max_map_size;
	size_t page_size;
	pthread_rwlock_t resize_lock; /* shared: open read txn; excl: resize */
	_Atomic size_t used;	      /* bytes of the pages in use (kvsm_room) */
	int failed; /* non-zero after a failed commit: returned from then on */
	char *dir;
	bool marked;	/* dir/kv.open exists: remove it at a clean close */
	bool discarded; /* left open by an earlier boot, or damaged */
	char notice[512];
	char failure[512]; /* why an apply failed (kvsm_failure()) */
};

static void put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++) {
		p[i] = (unsigned char)(v >> (8 * i));
	}
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++) {
		v |= (uint64_t)p[i] << (8 * i);
	}
	return v;
}

/* Translate an LMDB or errno code. MDB_MAP_FULL is handled by callers. */
static int kvsm_errno(int rc)
{
	switch (rc) {
	case 0:
		return RAFT_OK;
	case ENOMEM:
		return RAFT_ENOMEM;
	case ENOSPC:
	case EDQUOT:
	case MDB_MAP_FULL:
		return RAFT_ENOSPC;
	case MDB_READERS_FULL:
		return RAFT_EBUSY;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
		return RAFT_ECORRUPT;
	default:
		return RAFT_EIO;
	}
}

static MDB_val kvsm_val(const void *p, size_t len)
{
	MDB_val v = {.mv_size = len, .mv_data = (void *)p};
	return v;
}

/* Add a sentence to what the operator hears of the open (kvsm_notice()). */
__attribute__((format(printf, 2, 3))) static void
kvsm_note(struct kvsm *kv, const char *fmt, ...)
{
	size_t used = strlen(kv->notice);
	va_list ap;

	if (used > 0 && used + 2 < sizeof kv->notice) {
		memcpy(kv->notice + used, "; ", 3);
		used += 2;
	}
	va_start(ap, fmt);
	vsnprintf(kv->notice + used, sizeof kv->notice - used, fmt, ap);
	va_end(ap);
}

int kvsm_check_sizes(size_t key_len, size_t val_len)
{
	if (key_len == 0) {
		return RAFT_EINVAL; /* LMDB keys are 1..511 bytes */
	}
	if (key_len > KVSM_MAX_KEY || val_len > KVSM_MAX_VALUE) {
		return RAFT_ETOOBIG;
	}
	return RAFT_OK;
}

/* Decode a data record into meta; the value follows the header. */
static int kvsm_decode_rec(const MDB_val *v, struct kvsm_meta *meta)
{
	const unsigned char *p = v->mv_data;

	if (v->mv_size < KVSM_REC_HDR) {
		return RAFT_ECORRUPT;
	}
	meta->create_index = get_u64(p);
	meta->mod_index = get_u64(p + 8);
	meta->version = get_u64(p + 16);
	return RAFT_OK;
}

/* Read the stored applied index and term inside txn. */
static int kvsm_read_applied(struct kvsm *kv, MDB_txn *txn, raft_index *index,
			     raft_term *term)
{
	MDB_val k = kvsm_val(kvsm_key_applied, sizeof kvsm_key_applied - 1);
	MDB_val v;
	int rc;

	rc = mdb_get(txn, kv->meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		*index = 0;
		*term = 0;
		return RAFT_OK;
	}
	if (rc != 0) {
		return kvsm_errno(rc);
	}
	if (v.mv_size != 16) {
		return RAFT_ECORRUPT;
	}
	*index = get_u64(v.mv_data);
	*term = get_u64((const unsigned char *)v.mv_data + 8);
	return RAFT_OK;
}

/* Check or, for a new store, write the format marker. */
static int kvsm_init_format(struct kvsm *kv, MDB_txn *txn, char *errmsg,
			    size_t errlen)
{
	MDB_val k = kvsm_val(kvsm_key_format, sizeof kvsm_key_format - 1);
	MDB_val v;
	MDB_stat st;
	unsigned char buf[4];
	int rc;

	rc = mdb_get(txn, kv->meta, &k, &v);
	if (rc == 0) {
		const unsigned char *p = v.mv_data;
		uint32_t f;

		if (v.mv_size != 4) {
			snprintf(errmsg, errlen, "format marker has %zu bytes",
				 v.mv_size);
			return RAFT_ECORRUPT;
		}
		f = p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		    (uint32_t)p[3] << 24;
		if (f != KVSM_FORMAT) {
			snprintf(errmsg, errlen,
				 "store format %u, this build reads %u", f,
				 KVSM_FORMAT);
			return RAFT_EMISMATCH;
		}
		return RAFT_OK;
	}
	if (rc != MDB_NOTFOUND) {
		snprintf(errmsg, errlen, "read format: %s", mdb_strerror(rc));
		return kvsm_errno(rc);
	}

	/* No marker: only a store that holds nothing at all is new. */
	rc = mdb_stat(txn, kv->data, &st);
	if (rc == 0 && st.ms_entries != 0) {
		snprintf(errmsg, errlen, "keys present but no format marker");
		return RAFT_ECORRUPT;
	}
	buf[0] = KVSM_FORMAT & 0xff;
	buf[1] = buf[2] = buf[3] = 0;
	v = kvsm_val(buf, sizeof buf);
	rc = mdb_put(txn, kv->meta, &k, &v, 0);
	if (rc != 0) {
		snprintf(errmsg, errlen, "write format: %s", mdb_strerror(rc));
		return kvsm_errno(rc);
	}
	return RAFT_OK;
}

static size_t round_up(size_t n, size_t to)
{
	return (n + to - 1) / to * to;
}

/* LMDB syncs its file, not the directory entry that names it: without this
 * a power loss could take a new store's file away, applied index and all. */
static int kvsm_sync_dir(const char *dir, char *errmsg, size_t errlen)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	int rc = RAFT_OK;

	if (fd < 0 || fsync(fd) != 0) {
		snprintf(errmsg, errlen, "sync %s: %s", dir, strerror(errno));
		rc = RAFT_EIO;
	}
	if (fd >= 0) {
		close(fd);
	}
	return rc;
}

/* Read a small file into buf as a string without its trailing newline.
 * Returns 0, or -1 with errno set. */
static int kvsm_read_line(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0) {
		return -1;
	}
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0) {
		return -1;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

static int kvsm_path(char *path, size_t len, const char *dir, const char *name,
		     char *errmsg, size_t errlen)
{
	if (snprintf(path, len, "%s/%s", dir, name) >= (int)len) {
		snprintf(errmsg, errlen, "path too long: %s", dir);
		return RAFT_EINVAL;
	}
	return RAFT_OK;
}

/* Delete the LMDB files of a store that cannot be trusted. */
static int kvsm_discard(const char *dir, char *errmsg, size_t errlen)
{
	static const char *const names[] = {KVSM_FILE, KVSM_FILE "-lock"};
	char path[4096];
	int rc;

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		rc =
		    kvsm_path(path, sizeof path, dir, names[i], errmsg, errlen);
		if (rc != RAFT_OK) {
			return rc;
		}
		if (unlink(path) != 0 && errno != ENOENT) {
			snprintf(errmsg, errlen, "remove %s: %s", path,
				 strerror(errno));
			return RAFT_EIO;
		}
	}
	return kvsm_sync_dir(dir, errmsg, errlen);
}

/* A marker left by a process of this boot means a process crash: the page
 * cache kept every committed transaction. One left by another boot, or
 * any marker when this boot's id is unknown, means the machine may have
 * gone down with unsynced writes: discard the store. */
static int kvsm_check_marker(struct kvsm *kv, const char *dir, const char *boot,
			     char *errmsg, size_t errlen)
{
	char path[4096], old[KVSM_BOOT_ID_MAX];
	int rc;

	rc = kvsm_path(path, sizeof path, dir, KVSM_MARKER, errmsg, errlen);
	if (rc != RAFT_OK) {
		return rc;
	}
	if (kvsm_read_line(path, old, sizeof old) != 0) {
		if (errno == ENOENT) {
			return RAFT_OK; /* closed cleanly, or new */
		}
		snprintf(errmsg, errlen, "read %s: %s", path, strerror(errno));
		return RAFT_EIO;
	}
	kv->marked = true;
	if (boot != NULL && strcmp(old, boot) == 0) {
		return RAFT_OK;
	}
	rc = kvsm_discard(dir, errmsg, errlen);
	if (rc != RAFT_OK) {
		return rc;
	}
	kv->discarded = true;
	kvsm_note(
	    kv,
	    "the store was left open without syncing by boot %s and "
	    "this is boot %s: the machine went down meanwhile, so writes "
	    "may have been lost; discarded it, to be rebuilt from the log",
	    old[0] != '\0' ? old : "(unknown)",
	    boot != NULL ? boot : "(unknown)");
	return RAFT_OK;
}

/* Record this boot's id, durably, before any unsynced write. */
static int kvsm_write_marker(struct kvsm *kv, const char *dir, const char *boot,
			     char *errmsg, size_t errlen)
{
	char path[4096], line[KVSM_BOOT_ID_MAX + 1];
	int len = snprintf(line, sizeof line, "%s\n", boot);
	ssize_t w;
	int fd, err, rc;

	rc = kvsm_path(path, sizeof path, dir, KVSM_MARKER, errmsg, errlen);
	if (rc != RAFT_OK) {
		return rc;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		err = errno;
		snprintf(errmsg, errlen, "create %s: %s", path, strerror(err));
		return err == ENOSPC ? RAFT_ENOSPC : RAFT_EIO;
	}
	kv->marked = true;
	w = write(fd, line, (size_t)len);
	err = w < 0 ? errno : EIO; /* a short write sets no errno */
	if (w == len) {
		err = fsync(fd) == 0 ? 0 : errno;
	}
	close(fd);
	if (err != 0) {
		snprintf(errmsg, errlen, "write %s: %s", path, strerror(err));
		return err == ENOSPC ? RAFT_ENOSPC : RAFT_EIO;
	}
	return kvsm_sync_dir(dir, errmsg, errlen);
}

static int kvsm_remove_marker(const char *dir, char *errmsg, size_t errlen)
{
	char path[4096];
	int rc;

	rc = kvsm_path(path, sizeof path, dir, KVSM_MARKER, errmsg, errlen);
	if (rc != RAFT_OK) {
		return rc;
	}
	if (unlink(path) != 0 && errno != ENOENT) {
		snprintf(errmsg, errlen, "remove %s: %s", path,
			 strerror(errno));
		return RAFT_EIO;
	}
	return kvsm_sync_dir(dir, errmsg, errlen);
}

/* Decide, before LMDB opens anything, whether the store on disk can be
 * trusted and how it will be committed; *o is adjusted to the mode used. */
static int kvsm_prepare(struct kvsm *kv, const char *dir,
			struct kvsm_options *o, char *errmsg, size_t errlen)
{
	const char *src =
	    o->boot_id_path != NULL ? o->boot_id_path : KVSM_BOOT_ID_PATH;
	char boot[KVSM_BOOT_ID_MAX];
	bool have_boot;
	int rc;

	have_boot = kvsm_read_line(src, boot, sizeof boot) == 0 && boot[0];
	rc =
	    kvsm_check_marker(kv, dir, have_boot ? boot : NULL, errmsg, errlen);
	if (rc != RAFT_OK || (!o->no_sync && !o->no_meta_sync)) {
		return rc;
	}
	if (have_boot) {
		return kvsm_write_marker(kv, dir, boot, errmsg, errlen);
	}

	/* Without a boot id a machine crash cannot be told from a process
	 * crash: commit durably, as if no unsynced mode had been asked. */
	o->no_sync = o->no_meta_sync = false;
	kvsm_note(kv,
		  "cannot read the boot id from %s, so a machine crash could "
		  "not be detected: every batch is synced",
		  src);
	if (kv->marked) {
		rc = kvsm_remove_marker(dir, errmsg, errlen);
		kv->marked = rc != RAFT_OK;
	}
	return rc;
}

/* LMDB maps the file and reads pages in place, so a page past the end of
 * the file faults (SIGBUS) when first touched. The newest meta page names
 * the last page in use: the file must reach the end of it. Only the meta
 * pages are read here, which mdb_env_open() has read and checked. */
static int kvsm_check_size(struct kvsm *kv, const char *path, char *why,
			   size_t whylen, char *errmsg, size_t errlen)
{
	mdb_filehandle_t fd;
	MDB_envinfo info;
	MDB_stat ms;
	struct stat st;
	uint64_t end;
	int rc;

	rc = mdb_env_get_fd(kv->env, &fd);
	if (rc == 0 && fstat(fd, &st) != 0) {
		rc = errno;
	}
	if (rc == 0) {
		rc = mdb_env_info(kv->env, &info);
	}
	if (rc == 0) {
		rc = mdb_env_stat(kv->env, &ms);
	}
	if (rc != 0) {
		snprintf(errmsg, errlen, "stat %s: %s", path, mdb_strerror(rc));
		return RAFT_EIO;
	}
	end = ((uint64_t)info.me_last_pgno + 1) * ms.ms_psize;
	if ((uint64_t)st.st_size < end) {
		snprintf(
		    why, whylen,
		    "%s is %lld bytes but its last page ends at byte %llu: "
		    "the file was cut short",
		    path, (long long)st.st_size, (unsigned long long)end);
	}
	return RAFT_OK;
}

/* Create the environment and open path in it. A damaged file is no error
 * here: why then says what is wrong with it, and kv->env is NULL if LMDB
 * refused it. Otherwise why is "". */
static int kvsm_env_open(struct kvsm *kv, const char *path, unsigned flags,
			 char *why, size_t whylen, char *errmsg, size_t errlen)
{
	struct stat st;
	bool exists;
	int rc;

	why[0] = '\0';
	/* LMDB takes an empty file for a new store and would open it empty
	 * without a word, whatever it held. */
	exists = stat(path, &st) == 0;
	if (exists && st.st_size == 0) {
		snprintf(why, whylen, "%s is empty: its meta pages are gone",
			 path);
		return RAFT_OK;
	}
	rc = mdb_env_create(&kv->env);
	if (rc != 0) {
		snprintf(errmsg, errlen, "lmdb: %s", mdb_strerror(rc));
		return kvsm_errno(rc);
	}
	mdb_env_set_maxdbs(kv->env, 2);
	rc = mdb_env_set_mapsize(kv->env, kv->map_size);
	if (rc == 0) {
		rc = mdb_env_open(kv->env, path, flags, 0644);
	}
	if (exists && (rc == MDB_INVALID || rc == MDB_CORRUPTED ||
		       rc == MDB_VERSION_MISMATCH)) {
		snprintf(why, whylen,
			 "%s (%lld bytes) has no meta page LMDB accepts: %s",
			 path, (long long)st.st_size, mdb_strerror(rc));
		mdb_env_close(kv->env);
		kv->env = NULL;
		return RAFT_OK;
	}
	if (rc != 0) {
		snprintf(errmsg, errlen, "open %s: %s", path, mdb_strerror(rc));
		return kvsm_errno(rc);
	}
	return kvsm_check_size(kv, path, why, whylen, errmsg, errlen);
}

/* A store whose file is damaged (why): refused, or discarded so that it
 * opens empty and the caller rebuilds it from its log. */
static int kvsm_drop_damaged(struct kvsm *kv, const char *dir,
			     const struct kvsm_options *o, const char *why,
			     char *errmsg, size_t errlen)
{
	int rc;

	if (kv->env != NULL) {
		mdb_env_close(kv->env);
		kv->env = NULL;
	}
	if (!o->rebuild_damaged) {
		snprintf(errmsg, errlen, "the store is damaged: %s", why);
		return RAFT_ECORRUPT;
	}
	rc = kvsm_discard(dir, errmsg, errlen);
	if (rc != RAFT_OK) {
		return rc;
	}
	kv->discarded = true;
	kvsm_note(kv, "%s; discarded it, to be rebuilt from the log", why);
	return RAFT_OK;
}

/* Create the environment's file and databases. */
static int kvsm_open_env(struct kvsm *kv, const char *dir,
			 const struct kvsm_options *o, char *errmsg,
			 size_t errlen)
{
	char path[4096], why[4352];
	unsigned flags = MDB_NOSUBDIR | MDB_NOTLS;
	MDB_txn *txn = NULL;
	MDB_envinfo info;
	int dead;
	int rc;

	if (snprintf(path, sizeof path, "%s/%s", dir, KVSM_FILE) >=
	    (int)sizeof path) {
		snprintf(errmsg, errlen, "path too long: %s", dir);
		return RAFT_EINVAL;
	}
	if (o->no_sync) {
		flags |= MDB_NOSYNC;
	}
	if (o->no_meta_sync) {
		flags |= MDB_NOMETASYNC;
	}

	/* Nothing may read a data page before the file is known whole. */
	rc = kvsm_env_open(kv, path, flags, why, sizeof why, errmsg, errlen);
	if (rc == RAFT_OK && why[0] != '\0') {
		rc = kvsm_drop_damaged(kv, dir, o, why, errmsg, errlen);
		if (rc == RAFT_OK) {
			rc = kvsm_env_open(kv, path, flags, why, sizeof why,
					   errmsg, errlen);
		}
		if (rc == RAFT_OK && why[0] != '\0') {
			snprintf(errmsg, errlen, "%s", why); /* a new file */
			rc = RAFT_ECORRUPT;
		}
	}
	if (rc != RAFT_OK) {
		return rc;
	}
	if (mdb_env_get_maxkeysize(kv->env) < KVSM_MAX_KEY) {
		snprintf(errmsg, errlen, "lmdb keys limited to %d bytes",
			 mdb_env_get_maxkeysize(kv->env));
		return RAFT_ENOTSUP;
	}

	/* Reader slots left by a process that died inside a read
	 * transaction would pin old pages for ever. */
	mdb_reader_check(kv->env, &dead);

	/* An existing store may already be larger than asked for. */
	mdb_env_info(kv->env, &info);
	if (info.me_mapsize > kv->map_size) {
		kv->map_size = info.me_mapsize;
	}
	if (kv->max_map_size < kv->map_size) {
		kv->max_map_size = kv->map_size;
	}
	atomic_store(&kv->used,
		     ((size_t)info.me_last_pgno + 1) * kv->page_size);

	rc = mdb_txn_begin(kv->env, NULL, 0, &txn);
	if (rc == 0) {
		rc = mdb_dbi_open(txn, "data", MDB_CREATE, &kv->data);
	}
	if (rc == 0) {
		rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &kv->meta);
	}
	if (rc != 0) {
		snprintf(errmsg, errlen, "open databases in %s: %s", path,
			 mdb_strerror(rc));
		rc = kvsm_errno(rc);
		goto err_txn;
	}
	rc = kvsm_init_format(kv, txn, errmsg, errlen);
	if (rc != RAFT_OK) {
		goto err_txn;
	}
	rc = mdb_txn_commit(txn);
	if (rc != 0) {
		snprintf(errmsg, errlen, "commit in %s: %s", path,
			 mdb_strerror(rc));
		return kvsm_errno(rc);
	}
	if (!o->no_sync) {
		return kvsm_sync_dir(dir, errmsg, errlen);
	}
	return RAFT_OK;

err_txn:
	if (txn != NULL) {
		mdb_txn_abort(txn);
	}
	return rc;
}

int kvsm_open(const char *dir, const struct kvsm_options *o, struct kvsm **out,
	      char *errmsg, size_t errlen)
{
	struct kvsm_options opts = {0};
	char scratch[1];
	pthread_rwlockattr_t attr;
	struct kvsm *kv;
	long page;
	int rc;

	if (errmsg == NULL || errlen == 0) {
		errmsg = scratch;
		errlen = sizeof scratch;
	}
	errmsg[0] = '\0';
	if (o != NULL) {
		opts = *o;
	}
	o = &opts;
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		int err = errno;

		snprintf(errmsg, errlen, "mkdir %s: %s", dir, strerror(err));
		return err == ENOSPC ? RAFT_ENOSPC : RAFT_EIO;
	}

	kv = calloc(1, sizeof *kv);
	if (kv == NULL) {
		return RAFT_ENOMEM;
	}
	kv->dir = strdup(dir);
	if (kv->dir == NULL) {
		rc = RAFT_ENOMEM;
		goto err_kv;
	}
	page = sysconf(_SC_PAGESIZE);
	kv->page_size = page > 0 ? (size_t)page : 4096;
	kv->map_size = o->map_size != 0 ? o->map_size : KVSM_DEFAULT_MAP;
	kv->map_size = round_up(kv->map_size, kv->page_size);
	kv->max_map_size =
	    o->max_map_size != 0 ? o->max_map_size : KVSM_DEFAULT_MAX_MAP;
	kv->max_map_size = round_up(kv->max_map_size, kv->page_size);
	if (kv->max_map_size < kv->map_size) {
		snprintf(errmsg, errlen, "max_map_size %zu below map_size %zu",
			 o->max_map_size, kv->map_size);
		rc = RAFT_EINVAL;
		goto err_kv;
	}

	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(
	    &attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	rc = pthread_rwlock_init(&kv->resize_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (rc != 0) {
		rc = RAFT_ENOMEM;
		goto err_kv;
	}

	rc = kvsm_prepare(kv, dir, &opts, errmsg, errlen);
	if (rc != RAFT_OK) {
		goto err_lock;
	}
	rc = kvsm_open_env(kv, dir, &opts, errmsg, errlen);
	if (rc != RAFT_OK) {
		goto err_env;
	}
	*out = kv;
	return RAFT_OK;

err_env:
	if (kv->env != NULL) {
		mdb_env_close(kv->env);
	}
err_lock:
	pthread_rwlock_destroy(&kv->resize_lock);
err_kv:
	free(kv->dir);
	free(kv);
	return rc;
}

void kvsm_close(struct kvsm *kv)
{
	char scratch[1];
	bool clean;

	if (kv == NULL) {
		return;
	}
	/* A store whose commit failed may hold what never reached the disk:
	 * it keeps its marker. */
	clean = kv->failed == RAFT_OK && mdb_env_sync(kv->env, 1) == 0;
	mdb_env_close(kv->env);
	if (kv->marked && clean) {
		kvsm_remove_marker(kv->dir, scratch, sizeof scratch);
	}
	pthread_rwlock_destroy(&kv->resize_lock);
	free(kv->dir);
	free(kv);
}

bool kvsm_discarded(const struct kvsm *kv)
{
	return kv->discarded;
}

const char *kvsm_notice(const struct kvsm *kv)
{
	return kv->notice;
}

/* Begin a read transaction; on success resize_lock is held shared until
 * kvsm_read_end().
 *
 * TODO(kv): each read begins a transaction and takes a reader slot; per
 * thread mdb_txn_reset()/mdb_txn_renew() would be cheaper for hot reads. */
static int kvsm_read_begin(struct kvsm *kv, MDB_txn **txn)
{
	int rc;

	pthread_rwlock_rdlock(&kv->resize_lock);
	rc = mdb_txn_begin(kv->env, NULL, MDB_RDONLY, txn);
	if (rc != 0) {
		pthread_rwlock_unlock(&kv->resize_lock);
		return kvsm_errno(rc);
	}
	return RAFT_OK;
}

static void kvsm_read_end(struct kvsm *kv, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&kv->resize_lock);
}

int kvsm_applied(struct kvsm *kv, raft_index *index, raft_term *term)
{
	MDB_txn *txn;
	raft_index i;
	raft_term t;
	int rc;

	rc = kvsm_read_begin(kv, &txn);
	if (rc != RAFT_OK) {
		return rc;
	}
	rc = kvsm_read_applied(kv, txn, &i, &t);
	kvsm_read_end(kv, txn);
	if (rc == RAFT_OK) {
		*index = i;
		if (term != NULL) {
			*term = t;
		}
	}
	return rc;
}

/* protobuf-c reports a failed allocation and bad input alike (NULL); this
 * allocator tells them apart, so that lack of memory fails the batch
 * (retryable) instead of consuming the entry as invalid on this node only. */
struct kvsm_alloc_state {
	bool failed;
};

static void *kvsm_pb_alloc(void *data, size_t size)
{
	void *p = malloc(size);

	if (p == NULL) {
		((struct kvsm_alloc_state *)data)->failed = true;
	}
	return p;
}

static void kvsm_pb_free(void *data, void *p)
{
	(void)data;
	free(p);
}

/* Apply a put. Entry-level outcomes go to res; the return value is an
 * LMDB code that fails the whole transaction. */
static int kvsm_apply_put(struct kvsm *kv, MDB_txn *txn,
			  const struct raft_entry *e, const Kvcmd__Put *put,
			  struct kvsm_result *res)
{
	MDB_val k = kvsm_val(put->key.data, put->key.len);
	MDB_val v;
	struct kvsm_meta m = {0};
	unsigned char *p;
	int rc;

	res->rc = kvsm_check_sizes(put->key.len, put->value.len);
	if (res->rc != RAFT_OK) {
		return 0;
	}
	rc = mdb_get(txn, kv->data, &k, &v);
	if (rc == 0) {
		if (kvsm_decode_rec(&v, &m) != RAFT_OK) {
			return MDB_CORRUPTED;
		}
	} else if (rc != MDB_NOTFOUND) {
		return rc;
	}

	/* etcd's rules: a new key is created here; every put bumps the
	 * modification index and the version. */
	if (rc == MDB_NOTFOUND) {
		m.create_index = e->index;
		m.version = 0;
	}
	m.mod_index = e->index;
	m.version++;

	v.mv_size = KVSM_REC_HDR + put->value.len;
	v.mv_data = NULL;
	rc = mdb_put(txn, kv->data, &k, &v, MDB_RESERVE);
	if (rc != 0) {
		return rc;
	}
	p = v.mv_data;
	put_u64(p, m.create_index);
	put_u64(p + 8, m.mod_index);
	put_u64(p + 16, m.version);
	if (put->value.len > 0) {
		memcpy(p + KVSM_REC_HDR, put->value.data, put->value.len);
	}
	res->rc = RAFT_OK;
	res->index = e->index;
	res->meta = m;
	return 0;
}

static int kvsm_apply_delete(struct kvsm *kv, MDB_txn *txn,
			     const struct raft_entry *e,
			     const Kvcmd__Delete *del, struct kvsm_result *res)
{
	MDB_val k = kvsm_val(del->key.data, del->key.len);
	int rc;

	res->rc = kvsm_check_sizes(del->key.len, 0);
	if (res->rc != RAFT_OK) {
		return 0;
	}
	rc = mdb_del(txn, kv->data, &k, NULL);
	if (rc == MDB_NOTFOUND) {
		res->rc = RAFT_ENOTFOUND;
		return 0;
	}
	if (rc != 0) {
		return rc;
	}
	res->index = e->index;
	return 0;
}

/* Decode and apply one entry. Returns an LMDB code that fails the
 * transaction, or -1 with *nomem when decoding ran out of memory. */
static int kvsm_apply_entry(struct kvsm *kv, MDB_txn *txn,
			    const struct raft_entry *e, struct kvsm_result *res,
			    bool *nomem)
{
	struct kvsm_alloc_state st = {false};
	ProtobufCAllocator alloc = {kvsm_pb_alloc, kvsm_pb_free, &st};
	Kvcmd__KvCommand *cmd;
	int rc = 0;

	memset(res, 0, sizeof *res);
	res->rc = RAFT_EINVAL;
	if (e->type == RAFT_ENTRY_NOOP) {
		res->rc = RAFT_OK;
		res->index = e->index;
		return 0;
	}
	if (e->type != RAFT_ENTRY_COMMAND) {
		return 0;
	}
	/* TODO(kv): protobuf-c copies the value out of the payload, and the
	 * put copies it again into the map; a decoder that points into the
	 * payload would save one copy per put (matters for large values). */
	cmd = kvcmd__kv_command__unpack(&alloc, e->len, e->data);
	if (cmd == NULL) {
		if (st.failed) {
			*nomem = true;
			return -1;
		}
		return 0;
	}
	switch (cmd->cmd_case) {
	case KVCMD__KV_COMMAND__CMD_PUT:
		rc = kvsm_apply_put(kv, txn, e, cmd->put, res);
		break;
	case KVCMD__KV_COMMAND__CMD_DELETE:
		rc = kvsm_apply_delete(kv, txn, e, cmd->delete_, res);
		break;
	default:
		break; /* no known command: consumed as invalid */
	}
	kvcmd__kv_command__free_unpacked(cmd, &alloc);
	return rc;
}

/* Bytes of the file system free to this process: f_bfree for root, who
 * may use the blocks reserved for it, f_bavail for anyone else. */
static uint64_t kvsm_free_bytes(const struct statvfs *vfs, bool privileged)
{
	uint64_t blocks = privileged ? vfs->f_bfree : vfs->f_bavail;

	return blocks * vfs->f_frsize;
}

bool kvsm_out_of_space(int err, const struct statvfs *vfs, bool privileged)
{
	if (err == ENOSPC || err == EDQUOT) {
		return true;
	}
	return err == EIO && vfs != NULL &&
	       kvsm_free_bytes(vfs, privileged) < KVSM_FULL_BYTES;
}

/* An apply failed in call (what LMDB was doing) with LMDB code err: say
 * why in kv->failure, with the space left for a write error, and return
 * the code to report, RAFT_ENOSPC whenever the file system is out of
 * space, even if LMDB saw only a short write (EIO). */
static int kvsm_fail(struct kvsm *kv, const char *call, int err)
{
	struct statvfs vfs;
	bool root = geteuid() == 0;
	bool have, full;
	int n;

	n = snprintf(kv->failure, sizeof kv->failure, "%s/%s: %s: %s", kv->dir,
		     KVSM_FILE, call, mdb_strerror(err));
	if (err != EIO && err != ENOSPC && err != EDQUOT) {
		return kvsm_errno(err);
	}
	have = statvfs(kv->dir, &vfs) == 0;
	full = kvsm_out_of_space(err, have ? &vfs : NULL, root);
	if (have && n > 0 && (size_t)n < sizeof kv->failure) {
		snprintf(kv->failure + n, sizeof kv->failure - (size_t)n,
			 "; %llu bytes free in %s%s",
			 (unsigned long long)kvsm_free_bytes(&vfs, root),
			 kv->dir,
			 full && err == EIO ? ": the file system is full" : "");
	}
	return full ? RAFT_ENOSPC : kvsm_errno(err);
}

const char *kvsm_failure(const struct kvsm *kv)
{
	return kv->failure;
}

/* Entries must be consecutive, and start at or before applied + 1. */
static bool kvsm_batch_ok(const struct raft_entry *entries, size_t n,
			  raft_index applied)
{
	if (entries[0].index == 0 || entries[0].index > applied + 1) {
		return false;
	}
	for (size_t i = 1; i < n; i++) {
		if (entries[i].index != entries[0].index + i) {
			return false;
		}
	}
	return true;
}

/* One attempt at the batch. Sets *map_full when the map must grow first;
 * nothing is applied then. */
static int kvsm_apply_once(struct kvsm *kv, const struct raft_entry *entries,
			   size_t n, struct kvsm_result *results,
			   bool *map_full)
{
	const struct raft_entry *last = NULL;
	unsigned char buf[16];
	raft_index applied;
	raft_term applied_term;
	bool nomem = false;
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	*map_full = false;
	rc = mdb_txn_begin(kv->env, NULL, 0, &txn);
	if (rc != 0) {
		return kvsm_errno(rc);
	}
	rc = kvsm_read_applied(kv, txn, &applied, &applied_term);
	if (rc != RAFT_OK) {
		goto err_txn;
	}
	if (!kvsm_batch_ok(entries, n, applied)) {
		rc = RAFT_EINVAL;
		goto err_txn;
	}

	for (size_t i = 0; i < n; i++) {
		const struct raft_entry *e = &entries[i];

		if (e->index <= applied) {
			/* Replay of an entry already applied. */
			memset(&results[i], 0, sizeof results[i]);
			continue;
		}
		rc = kvsm_apply_entry(kv, txn, e, &results[i], &nomem);
		if (rc != 0) {
			goto err_mdb;
		}
		last = e;
	}
	if (last == NULL) {
		mdb_txn_abort(txn);
		return RAFT_OK; /* every entry was a replay */
	}

	put_u64(buf, last->index);
	put_u64(buf + 8, last->term);
	k = kvsm_val(kvsm_key_applied, sizeof kvsm_key_applied - 1);
	v = kvsm_val(buf, sizeof buf);
	rc = mdb_put(txn, kv->meta, &k, &v, 0);
	if (rc != 0) {
		goto err_mdb;
	}
	rc = mdb_txn_commit(txn); /* frees txn whatever the outcome */
	if (rc == MDB_MAP_FULL) {
		*map_full = true;
		return RAFT_ENOSPC;
	}
	if (rc != 0) {
		kv->failed = kvsm_fail(kv, "commit", rc);
		if (kv->failed == RAFT_ECORRUPT || kv->failed == RAFT_ENOMEM ||
		    kv->failed == RAFT_EBUSY) {
			kv->failed = RAFT_EIO;
		}
		return kv->failed;
	}
	return RAFT_OK;

err_mdb:
	if (nomem) {
		rc = RAFT_ENOMEM;
	} else if (rc == MDB_MAP_FULL) {
		*map_full = true;
		rc = RAFT_ENOSPC;
	} else {
		rc = kvsm_fail(kv, "apply", rc);
	}
err_txn:
	mdb_txn_abort(txn);
	return rc;
}

/* Double the map, or more when the batch (of batch_bytes payload) may need
 * it, so that one retry usually suffices; never past max_map_size. No
 * transaction of this process may be open meanwhile: readers are held off
 * by resize_lock, and the writer is the caller. */
static int kvsm_grow(struct kvsm *kv, size_t batch_bytes)
{
	size_t size, want;
	int rc;

	if (kv->map_size >= kv->max_map_size) {
		return RAFT_ENOSPC;
	}
	size = kv->map_size * 2;
	if (size < kv->map_size) {
		size = SIZE_MAX;
	}
	/* Copy-on-write: a batch can dirty about twice its size. */
	want = kv->map_size + 2 * batch_bytes;
	if (batch_bytes <= SIZE_MAX / 4 && want > size) {
		size = round_up(want, kv->page_size);
	}
	if (size > kv->max_map_size) {
		size = kv->max_map_size;
	}
	pthread_rwlock_wrlock(&kv->resize_lock);
	rc = mdb_env_set_mapsize(kv->env, size);
	pthread_rwlock_unlock(&kv->resize_lock);
	if (rc != 0) {
		return kvsm_errno(rc);
	}
	kv->map_size = size;
	return RAFT_OK;
}

static void kvsm_note_used(struct kvsm *kv)
{
	MDB_envinfo info;

	if (mdb_env_info(kv->env, &info) == 0) {
		atomic_store(&kv->used,
			     ((size_t)info.me_last_pgno + 1) * kv->page_size);
	}
}

size_t kvsm_room(struct kvsm *kv)
{
	size_t used = atomic_load(&kv->used);

	return used < kv->max_map_size ? kv->max_map_size - used : 0;
}

int kvsm_apply(struct kvsm *kv, const struct raft_entry *entries, size_t n,
	       struct kvsm_result *results)
{
	size_t bytes = 0;
	bool map_full;
	int rc;

	if (kv->failed != RAFT_OK) {
		return kv->failed;
	}
	if (n == 0) {
		return RAFT_OK;
	}
	for (;;) {
		rc = kvsm_apply_once(kv, entries, n, results, &map_full);
		if (!map_full) {
			kvsm_note_used(kv);
			return rc;
		}
		if (bytes == 0) {
			for (size_t i = 0; i < n; i++) {
				bytes += entries[i].len;
			}
		}
		rc = kvsm_grow(kv, bytes);
		if (rc != RAFT_OK) {
			return rc;
		}
	}
}

int kvsm_get(struct kvsm *kv, const void *key, size_t key_len, void **val,
	     size_t *val_len, struct kvsm_meta *meta)
{
	MDB_val k = kvsm_val(key, key_len);
	MDB_val v;
	struct kvsm_meta m;
	MDB_txn *txn;
	size_t len;
	void *copy;
	int rc;

	rc = kvsm_check_sizes(key_len, 0);
	if (rc != RAFT_OK) {
		return rc;
	}
	rc = kvsm_read_begin(kv, &txn);
	if (rc != RAFT_OK) {
		return rc;
	}
	rc = mdb_get(txn, kv->data, &k, &v);
	if (rc == MDB_NOTFOUND) {
		rc = RAFT_ENOTFOUND;
		goto out;
	}
	if (rc != 0) {
		rc = kvsm_errno(rc);
		goto out;
	}
	rc = kvsm_decode_rec(&v, &m);
	if (rc != RAFT_OK) {
		goto out;
	}
	len = v.mv_size - KVSM_REC_HDR;
	copy = malloc(len > 0 ? len : 1);
	if (copy == NULL) {
		rc = RAFT_ENOMEM;
		goto out;
	}
	memcpy(copy, (const unsigned char *)v.mv_data + KVSM_REC_HDR, len);
	*val = copy;
	*val_len = len;
	if (meta != NULL) {
		*meta = m;
	}
out:
	kvsm_read_end(kv, txn);
	return rc;
}

int kvsm_count(struct kvsm *kv, uint64_t *n)
{
	MDB_txn *txn;
	MDB_stat st;
	int rc;

	rc = kvsm_read_begin(kv, &txn);
	if (rc != RAFT_OK) {
		return rc;
	}
	rc = kvsm_errno(mdb_stat(txn, kv->data, &st));
	kvsm_read_end(kv, txn);
	if (rc == RAFT_OK) {
		*n = st.ms_entries;
	}
	return rc;
}

/* Whether key sorts before end in LMDB's default order. */
static bool kvsm_before(const MDB_val *key, const void *end, size_t end_len)
{
	size_t n = key->mv_size < end_len ? key->mv_size : end_len;
	int c = memcmp(key->mv_data, end, n);

	return c < 0 || (c == 0 && key->mv_size < end_len);
}

int kvsm_scan(struct kvsm *kv, const void *start, size_t start_len,
	      const void *end, size_t end_len, kvsm_scan_cb cb, void *arg)
{
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	MDB_cursor_op op = MDB_FIRST;
	int rc;

	rc = kvsm_read_begin(kv, &txn);
	if (rc != RAFT_OK) {
		return rc;
	}
	rc = mdb_cursor_open(txn, kv->data, &cur);
	if (rc != 0) {
		rc = kvsm_errno(rc);
		goto out_txn;
	}
	if (start != NULL && start_len > 0) {
		k = kvsm_val(start, start_len);
		op = MDB_SET_RANGE;
	}
	for (;; op = MDB_NEXT) {
		struct kvsm_meta m;

		rc = mdb_cursor_get(cur, &k, &v, op);
		if (rc == MDB_NOTFOUND) {
			rc = RAFT_OK;
			break;
		}
		if (rc != 0) {
			rc = kvsm_errno(rc);
			break;
		}
		if (end != NULL && !kvsm_before(&k, end, end_len)) {
			break;
		}
		rc = kvsm_decode_rec(&v, &m);
		if (rc != RAFT_OK) {
			break;
		}
		if (!cb(arg, k.mv_data, k.mv_size,
			(const unsigned char *)v.mv_data + KVSM_REC_HDR,
			v.mv_size - KVSM_REC_HDR, &m)) {
			break;
		}
	}
	mdb_cursor_close(cur);
out_txn:
	kvsm_read_end(kv, txn);
	return rc;
}

int kvsm_sync(struct kvsm *kv)
{
	return mdb_env_sync(kv->env, 1) == 0 ? RAFT_OK : RAFT_EIO;
}

/* Pack cmd into a malloc'd buffer. */
static int kvsm_pack(const Kvcmd__KvCommand *cmd, void **out, size_t *out_len)
{
	size_t len = kvcmd__kv_command__get_packed_size(cmd);
	uint8_t *buf = malloc(len > 0 ? len : 1);

	if (buf == NULL) {
		return RAFT_ENOMEM;
	}
	*out_len = kvcmd__kv_command__pack(cmd, buf);
	*out = buf;
	return RAFT_OK;
}

int kvsm_encode_put(const void *key, size_t key_len, const void *val,
		    size_t val_len, void **out, size_t *out_len)
{
	Kvcmd__KvCommand cmd = KVCMD__KV_COMMAND__INIT;
	Kvcmd__Put put = KVCMD__PUT__INIT;
	int rc;

	rc = kvsm_check_sizes(key_len, val_len);
	if (rc != RAFT_OK) {
		return rc;
	}
	put.key.data = (uint8_t *)key;
	put.key.len = key_len;
	put.value.data = (uint8_t *)val;
	put.value.len = val_len;
	cmd.cmd_case = KVCMD__KV_COMMAND__CMD_PUT;
	cmd.put = &put;
	return kvsm_pack(&cmd, out, out_len);
}

int kvsm_encode_delete(const void *key, size_t key_len, void **out,
		       size_t *out_len)
{
	Kvcmd__KvCommand cmd = KVCMD__KV_COMMAND__INIT;
	Kvcmd__Delete del = KVCMD__DELETE__INIT;
	int rc;

	rc = kvsm_check_sizes(key_len, 0);
	if (rc != RAFT_OK) {
		return rc;
	}
	del.key.data = (uint8_t *)key;
	del.key.len = key_len;
	cmd.cmd_case = KVCMD__KV_COMMAND__CMD_DELETE;
	cmd.delete_ = &del;
	return kvsm_pack(&cmd, out, out_len);
}
