/* The key-value state machine on LMDB.
 *
 * One LMDB environment per node, in its own directory. Committed entries are
 * applied in batches: one write transaction per batch, which also stores the
 * index and term of the last entry applied, so that after a crash replay
 * resumes exactly at applied + 1.
 *
 * Commands are kvcmd.proto KvCommand messages (put, delete). Each key carries
 * its create index, modification index and version (number of puts since
 * creation), as etcd does, for compare-and-swap and watches later.
 *
 * Threads: kvsm_apply() runs on one worker thread at a time; kvsm_get() may
 * run on any thread concurrently with it (LMDB read transactions).
 *
 * Files: dir/kv.mdb and its lock file dir/kv.mdb-lock, so the store can
 * share a directory with other files, and dir/kv.open while a store opened
 * without syncing is open: it holds the kernel boot id of the boot that
 * opened it, and is removed once a clean close has synced the store.
 * Durability modes and why the node uses the one it does:
 * docs/adr/0007-state-machine-rebuilt-from-the-log.md.
 *
 * Unsynced stores (no_sync or no_meta_sync) and machine crashes: a process
 * crash leaves every committed transaction in the page cache, so the store
 * and its applied index are exact. A machine crash (power loss, kernel
 * panic) can leave an unsynced store rolled back or torn. kvsm_open()
 * tells the two apart by the boot id: a kv.open left by another boot (or
 * any kv.open when the boot id cannot be read) means the machine went down
 * with the store open, and the store is discarded: it opens empty, applied
 * index 0, and the caller must replay its log from index 1
 * (kvsm_discarded()). That is only possible while the log keeps every
 * entry; see kvsm_sync().
 *
 * Damaged files: LMDB maps dir/kv.mdb, and touching a page past the end
 * of the file kills the process with SIGBUS. kvsm_open() therefore checks,
 * before any transaction reads a page, that the file reaches the last page
 * its meta page names, and takes a file LMDB refuses to open (bad meta
 * pages) or an empty one (which LMDB would silently take for a new store)
 * for damaged too. With rebuild_damaged such a store is discarded like
 * one left open by an earlier boot; without it kvsm_open() refuses it.
 * (A file cut short while the store is open still faults at the next
 * read of a lost page; nothing here guards against that.)
 */
#ifndef LIBRAFT_KVSM_H
#define LIBRAFT_KVSM_H

#include <stddef.h>
#include <stdint.h>

#include "libraft/raft.h"

#define KVSM_MAX_KEY   511	     /* LMDB's default key limit */
#define KVSM_MAX_VALUE (1024 * 1024) /* 1 MiB, as etcd's default request */

struct kvsm;

struct kvsm_options {
	size_t map_size;     /* initial LMDB map size; default 64 MiB */
	size_t max_map_size; /* growth stops here; default 64 GiB */
	bool no_sync;	     /* MDB_NOSYNC; the Raft log is the durable copy */
	bool no_meta_sync;   /* MDB_NOMETASYNC: one sync per batch instead of
				two; a power loss may undo the last batch */
	const char *boot_id_path; /* where the boot id is read; NULL:
				     KVSM_BOOT_ID_PATH */
	bool rebuild_damaged;	  /* discard a damaged store (file comment)
				     and open empty; the caller must replay
				     its log from index 1. false: refuse it,
				     RAFT_ECORRUPT */
};

/* The kernel's boot id, different at every boot. Tests set boot_id_path
 * to a file of their own to simulate a reboot. If it cannot be read,
 * unsynced modes fall back to syncing every batch (see kvsm_notice()). */
#define KVSM_BOOT_ID_PATH "/proc/sys/kernel/random/boot_id"

/* The marker in dir while an unsynced store is open: the boot id of the
 * boot that opened it, one line. */
#define KVSM_MARKER "kv.open"

/* Metadata of one key. */
struct kvsm_meta {
	uint64_t create_index;
	uint64_t mod_index;
	uint64_t version;
};

/* Outcome of one applied entry. */
struct kvsm_result {
	int rc;		/* RAFT_OK, RAFT_ENOTFOUND (delete of a missing key),
			   RAFT_ETOOBIG, RAFT_EINVAL (undecodable command) */
	uint64_t index; /* the entry's index (the new mod_index for a put) */
	struct kvsm_meta meta; /* the key's metadata after the command */
};

/* Open or create the store in dir. Errors: RAFT_EINVAL (a path too long,
 * max_map_size below map_size), RAFT_EIO, RAFT_ENOSPC, RAFT_ENOMEM,
 * RAFT_ECORRUPT (also a damaged file without rebuild_damaged),
 * RAFT_EMISMATCH (another format), RAFT_ENOTSUP, with errmsg saying what.
 * A store left open by an earlier boot, or damaged with rebuild_damaged, is
 * discarded first (file comment); that is not an error. */
int kvsm_open(const char *dir, const struct kvsm_options *o, struct kvsm **out,
	      char *errmsg, size_t errlen);

/* Sync the store and, unless a commit failed, remove dir/kv.open, so that
 * a later boot keeps the store. */
void kvsm_close(struct kvsm *kv);

/* Whether kvsm_open() discarded a store left open by an earlier boot, or a
 * damaged one: the store is empty and the caller must replay its log from
 * index 1. */
bool kvsm_discarded(const struct kvsm *kv);

/* What kvsm_open() did that the operator should hear of (the store was
 * discarded and why, naming the file; the boot id could not be read, so
 * every batch is synced), or "" if nothing. */
const char *kvsm_notice(const struct kvsm *kv);

/* Index and term of the last applied entry (0, 0 for a new store). */
int kvsm_applied(struct kvsm *kv, raft_index *index, raft_term *term);

/* Apply entries (commands and no-ops) in one write transaction. results has
 * room for n. Entries at or below the stored applied index are skipped
 * (their result rc is RAFT_OK, index 0). Returns RAFT_OK, or RAFT_EIO /
 * RAFT_ENOSPC when the transaction could not commit (nothing of the batch
 * is applied then; the map is grown first when it is merely full).
 *
 * Also RAFT_EINVAL, nothing applied, when the indexes are not consecutive or
 * the first entry is beyond applied + 1 (a gap), and RAFT_ENOMEM when a
 * command could not be decoded for lack of memory. A command that does not
 * decode, has an empty key or an unknown entry type gets result RAFT_EINVAL
 * and is consumed; an oversize key or value gets RAFT_ETOOBIG. After a
 * failed commit (other than a full map) every later call returns the same
 * error: the store must be reopened (fail-stop, as for the log).
 *
 * RAFT_ENOSPC covers a file system out of space however LMDB reports it:
 * ENOSPC or EDQUOT, or EIO (LMDB's code for a short write) while the store's
 * directory has next to no free space left (kvsm_out_of_space()). */
int kvsm_apply(struct kvsm *kv, const struct raft_entry *entries, size_t n,
	       struct kvsm_result *results);

/* Why the last kvsm_apply() that failed on a read or write of the store
 * failed, for the operator, or "" if none did: the file, the call, the
 * system error and the free space left in the store's directory, e.g.
 * "/data/kv/kv.mdb: commit: Input/output error; 0 bytes free in /data/kv:
 * the file system is full". Read it on the thread that called kvsm_apply(),
 * or after that call's return has been handed over to another. */
const char *kvsm_failure(const struct kvsm *kv);

/* Below this many bytes free to the writer, an EIO from a write of the
 * store is taken for the file system running out of space. */
#define KVSM_FULL_BYTES (64 * 1024)

struct statvfs;

/* Whether a write that failed with system error err ran out of space: err
 * is ENOSPC or EDQUOT, or it is EIO and vfs (statvfs() of the store's
 * directory; NULL if that failed) shows less than KVSM_FULL_BYTES free to
 * the writer: f_bavail blocks, or f_bfree for a privileged writer, which
 * may use the blocks reserved for root. */
bool kvsm_out_of_space(int err, const struct statvfs *vfs, bool privileged);

/* Bytes the map can still grow by for certain: max_map_size less the
 * pages in use (free pages inside the map are not counted). Updated after
 * each applied batch; safe to call from any thread while apply runs. */
size_t kvsm_room(struct kvsm *kv);

/* Read a key. On RAFT_OK *val is a malloc'd copy (caller frees) of *val_len
 * bytes and meta (may be NULL) is filled. RAFT_ENOTFOUND if absent.
 * RAFT_EINVAL for an empty key, RAFT_ETOOBIG for a key over KVSM_MAX_KEY. */
int kvsm_get(struct kvsm *kv, const void *key, size_t key_len, void **val,
	     size_t *val_len, struct kvsm_meta *meta);

/* Whether a put (or, with val_len 0, a delete) of these sizes would be
 * accepted: RAFT_OK, RAFT_EINVAL for an empty key, RAFT_ETOOBIG for a key
 * over KVSM_MAX_KEY or a value over KVSM_MAX_VALUE. For the server to
 * check before proposing; kvsm_apply() checks again. */
int kvsm_check_sizes(size_t key_len, size_t val_len);

/* Encode commands as entry payloads (malloc'd; caller frees). Errors: those
 * of kvsm_check_sizes(), RAFT_ENOMEM. */
int kvsm_encode_put(const void *key, size_t key_len, const void *val,
		    size_t val_len, void **out, size_t *out_len);
int kvsm_encode_delete(const void *key, size_t key_len, void **out,
		       size_t *out_len);

/* Number of keys stored. */
int kvsm_count(struct kvsm *kv, uint64_t *n);

/* Called by kvsm_scan() for each key in order; return false to stop. The
 * pointers are valid only during the call. */
typedef bool (*kvsm_scan_cb)(void *arg, const void *key, size_t key_len,
			     const void *val, size_t val_len,
			     const struct kvsm_meta *meta);

/* Visit the keys k with start <= k < end in byte order (shorter first on a
 * common prefix), in one read transaction, so the view is consistent. A
 * NULL start (or end) means from the first (to the last) key. The callback
 * must not call into the store (a pending map growth would deadlock it);
 * a long scan delays map growth. Returns
 * RAFT_OK (also when the callback stopped early), RAFT_ECORRUPT, RAFT_EIO,
 * RAFT_EBUSY (too many concurrent readers). */
int kvsm_scan(struct kvsm *kv, const void *start, size_t start_len,
	      const void *end, size_t end_len, kvsm_scan_cb cb, void *arg);

/* Force everything committed to disk. RAFT_OK or RAFT_EIO.
 *
 * Precondition of any log compaction: an unsynced store is rebuilt from
 * the log after a machine crash, so log entries may be deleted only up to
 * an applied index that a kvsm_sync() has made durable, and only once
 * kvsm_open() no longer discards a store that then holds data the log no
 * longer has (it would have to restore a snapshot instead). */
int kvsm_sync(struct kvsm *kv);

#endif /* LIBRAFT_KVSM_H */
