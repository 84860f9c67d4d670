/* Tests of the LMDB key-value state machine (lib/src/kv/kvsm.c). */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kv/kvsm.h"
#include "proto/kvcmd.pb-c.h"

/* Every store of a test case lives under root, removed after the case. */
static char root[256];

static void root_make(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(root, sizeof root, "%s/test_kvsm.XXXXXX",
		 tmp != NULL ? tmp : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(root));
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void root_remove(void)
{
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh directory for one store. */
static void store_dir(char *dir, size_t len)
{
	snprintf(dir, len, "%s/s.XXXXXX", root);
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static struct kvsm *store_open(const char *dir, const struct kvsm_options *o)
{
	char msg[256];
	struct kvsm *kv = NULL;
	int rc;

	rc = kvsm_open(dir, o, &kv, msg, sizeof msg);
	ck_assert_msg(rc == RAFT_OK, "kvsm_open: %s: %s", raft_strerror(rc),
		      msg);
	return kv;
}

/* Entries whose payloads the test frees with entries_free(). */
static void entry_put(struct raft_entry *e, raft_index index, raft_term term,
		      const void *key, size_t key_len, const void *val,
		      size_t val_len)
{
	memset(e, 0, sizeof *e);
	e->index = index;
	e->term = term;
	e->type = RAFT_ENTRY_COMMAND;
	ck_assert_int_eq(
	    kvsm_encode_put(key, key_len, val, val_len, &e->data, &e->len),
	    RAFT_OK);
}

static void entry_put_str(struct raft_entry *e, raft_index index,
			  const char *key, const char *val)
{
	entry_put(e, index, 1, key, strlen(key), val, strlen(val));
}

static void entry_del_str(struct raft_entry *e, raft_index index,
			  const char *key)
{
	memset(e, 0, sizeof *e);
	e->index = index;
	e->term = 1;
	e->type = RAFT_ENTRY_COMMAND;
	ck_assert_int_eq(
	    kvsm_encode_delete(key, strlen(key), &e->data, &e->len), RAFT_OK);
}

/* An entry carrying arbitrary payload bytes (copied). */
static void entry_raw(struct raft_entry *e, raft_index index, uint8_t type,
		      const void *data, size_t len)
{
	memset(e, 0, sizeof *e);
	e->index = index;
	e->term = 1;
	e->type = type;
	e->len = len;
	if (len > 0) {
		e->data = malloc(len);
		ck_assert_ptr_nonnull(e->data);
		memcpy(e->data, data, len);
	}
}

/* A put encoded by hand, bypassing the size checks of the encoder. */
static void entry_put_unchecked(struct raft_entry *e, raft_index index,
				size_t key_len, size_t val_len)
{
	Kvcmd__KvCommand cmd = KVCMD__KV_COMMAND__INIT;
	Kvcmd__Put put = KVCMD__PUT__INIT;
	uint8_t *key = calloc(1, key_len + 1);
	uint8_t *val = calloc(1, val_len + 1);

	ck_assert_ptr_nonnull(key);
	ck_assert_ptr_nonnull(val);
	memset(key, 'k', key_len);
	put.key.data = key;
	put.key.len = key_len;
	put.value.data = val;
	put.value.len = val_len;
	cmd.cmd_case = KVCMD__KV_COMMAND__CMD_PUT;
	cmd.put = &put;
	memset(e, 0, sizeof *e);
	e->index = index;
	e->term = 1;
	e->type = RAFT_ENTRY_COMMAND;
	e->len = kvcmd__kv_command__get_packed_size(&cmd);
	e->data = malloc(e->len);
	ck_assert_ptr_nonnull(e->data);
	kvcmd__kv_command__pack(&cmd, e->data);
	free(key);
	free(val);
}

static void entries_free(struct raft_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].data);
		e[i].data = NULL;
	}
}

/* Assert that key holds val; return its metadata. */
static struct kvsm_meta expect_value(struct kvsm *kv, const void *key,
				     size_t key_len, const void *val,
				     size_t val_len)
{
	struct kvsm_meta m;
	size_t len = 0;
	void *got = NULL;

	ck_assert_int_eq(kvsm_get(kv, key, key_len, &got, &len, &m), RAFT_OK);
	ck_assert_uint_eq(len, val_len);
	ck_assert(memcmp(got, val, len) == 0);
	free(got);
	return m;
}

static struct kvsm_meta expect_str(struct kvsm *kv, const char *key,
				   const char *val)
{
	return expect_value(kv, key, strlen(key), val, strlen(val));
}

static void expect_absent(struct kvsm *kv, const char *key)
{
	void *got = NULL;
	size_t len;

	ck_assert_int_eq(kvsm_get(kv, key, strlen(key), &got, &len, NULL),
			 RAFT_ENOTFOUND);
	ck_assert_ptr_null(got);
}

static void expect_applied(struct kvsm *kv, raft_index index, raft_term term)
{
	raft_index i = 99;
	raft_term t = 99;

	ck_assert_int_eq(kvsm_applied(kv, &i, &t), RAFT_OK);
	ck_assert_uint_eq(i, index);
	ck_assert_uint_eq(t, term);
}

static const struct kvsm_options fast = {.no_sync = true};

/* A value put can be read back, and is gone after a delete. */
START_TEST(put_get_delete_round_trip)
{
	char dir[300];
	struct raft_entry e[2];
	struct kvsm_result r[2];
	struct kvsm *kv;

	store_dir(dir, sizeof dir);
	kv = store_open(dir, NULL);
	expect_applied(kv, 0, 0);
	expect_absent(kv, "a");

	entry_put_str(&e[0], 1, "a", "alpha");
	ck_assert_int_eq(kvsm_apply(kv, e, 1, r), RAFT_OK);
	ck_assert_int_eq(r[0].rc, RAFT_OK);
	ck_assert_uint_eq(r[0].index, 1);
	expect_str(kv, "a", "alpha");

	entry_del_str(&e[1], 2, "a");
	ck_assert_int_eq(kvsm_apply(kv, &e[1], 1, &r[1]), RAFT_OK);
	ck_assert_int_eq(r[1].rc, RAFT_OK);
	ck_assert_uint_eq(r[1].index, 2);
	expect_absent(kv, "a");
	expect_applied(kv, 2, 1);

	entries_free(e, 2);
	kvsm_close(kv);
}
END_TEST

/* Keys and values are bytes: NULs inside them are kept. */
START_TEST(binary_keys_and_values_keep_nul_bytes)
{
	static const char k1[] = {'a', 0, 'b'};
	static const char k2[] = {'a', 0, 'c'};
	static const char k3[] = {0};
	static const char v1[] = {0, 0, 1, 0, (char)0xff};
	char dir[300];
	struct raft_entry e[4];
	struct kvsm_result r[4];
	struct kvsm *kv;
	uint64_t n;

	store_dir(dir, sizeof dir);
	kv = store_open(dir, &fast);
	entry_put(&e[0], 1, 1, k1, sizeof k1, v1, sizeof v1);
	entry_put(&e[1], 2, 1, k2, sizeof k2, "x", 1);
	entry_put(&e[2], 3, 1, k3, sizeof k3, "", 0);
	entry_put(&e[3], 4, 1, "a", 1, "short", 5);
	ck_assert_int_eq(kvsm_apply(kv, e, 4, r), RAFT_OK);
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(r[i].rc, RAFT_OK);
	}
	expect_value(kv, k1, sizeof k1, v1, sizeof v1);
	expect_value(kv, k2, sizeof k2, "x", 1);
	expect_value(kv, k3, sizeof k3, "", 0);
	expect_value(kv, "a", 1, "short", 5);
	ck_assert_int_eq(kvsm_count(kv, &n), RAFT_OK);
	ck_assert_uint_eq(n, 4);
	entries_free(e, 4);
	kvsm_close(kv);
}
END_TEST

/* A value of exactly KVSM_MAX_VALUE (1 MiB) round-trips intact. */
START_TEST(largest_value_round_trips)
{
	char dir[300];
	struct raft_entry e;
	struct kvsm_result r;
	struct kvsm *kv;
	unsigned char *val = malloc(KVSM_MAX_VALUE);

	ck_assert_ptr_nonnull(val);
	for (size_t i = 0; i < KVSM_MAX_VALUE; i++) {
		val[i] = (unsigned char)(i * 7 + (i >> 12));
	}
	store_dir(dir, sizeof dir);
	kv = store_open(dir, &fast);
	entry_put(&e, 1, 1, "big", 3, val, KVSM_MAX_VALUE);
	ck_assert_int_eq(kvsm_apply(kv, &e, 1, &r), RAFT_OK);
	ck_assert_int_eq(r.rc, RAFT_OK);
	expect_value(kv, "big", 3, val, KVSM_MAX_VALUE);
	entries_free(&e, 1);
	free(val);
	kvsm_close(kv);
}
END_TEST

/* Metadata follows etcd: create index kept across puts, mod index is the
 * last put's, version counts puts since creation and restarts after a
 * delete. */
START_TEST(metadata_follows_puts_and_deletes)
{
	char dir[300];
	struct raft_entry e[4];
	struct kvsm_result r[4];
	struct kvsm_meta m;
	struct kvsm *kv;

	store_dir(dir, sizeof dir);
	kv = store_open(dir, &fast);
	entry_put_str(&e[0], 10, "k", "v1");
	entry_put_str(&e[1], 11, "k", "v2");
	entry_del_str(&e[2], 12, "k");
	entry_put_str(&e[3], 13, "k", "v3");

	/* A store may start past index 1 only if that is applied + 1. */
	ck_assert_int_eq(kvsm_apply(kv, e, 1, r), RAFT_EINVAL);

	e[0].index = 1;
	e[1].index = 2;
	e[2].index = 3;
	e[3].index = 4;
	ck_assert_int_eq(kvsm_apply(kv, e, 2, r), RAFT_OK);
	ck_assert_uint_eq(r[0].meta.create_index, 1);
	ck_assert_uint_eq(r[0].meta.mod_index, 1);
	ck_assert_uint_eq(r[0].meta.version, 1);
	ck_assert_uint_eq(r[1].meta.create_index, 1);
	ck_assert_uint_eq(r[1].meta.mod_index, 2);
	ck_assert_uint_eq(r[1].meta.version, 2);
	m = expect_str(kv, "k", "v2");
	ck_assert_uint_eq(m.create_index, 1);
	ck_assert_uint_eq(m.mod_index, 2);
	ck_assert_uint_eq(m.version, 2);

	ck_assert_int_eq(kvsm_apply(kv, &e[2], 2, &r[2]), RAFT_OK);
	ck_assert_int_eq(r[2].rc, RAFT_OK);
	ck_assert_uint_eq(r[2].meta.version, 0);
	ck_assert_uint_eq(r[3].meta.create_index, 4);
	ck_assert_uint_eq(r[3].meta.mod_index, 4);
	ck_assert_uint_eq(r[3].meta.version, 1);
	m = expect_str(kv, "k", "v3");
	ck_assert_uint_eq(m.create_index, 4);
	ck_assert_uint_eq(m.version, 1);
	entries_free(e, 4);
	kvsm_close(kv);
}
END_TEST

/* Deleting a missing key reports not found; the entry is still consumed. */
START_TEST(delete_of_missing_key_is_not_found_and_consumed)
{
	char dir[300];
	struct raft_entry e;
	struct kvsm_result r;
	struct kvsm *kv;

	store_dir(dir, sizeof dir);
	kv = store_open(dir, &fast);
	entry_del_str(&e, 1, "nope");
	ck_assert_int_eq(kvsm_apply(kv, &e, 1, &r), RAFT_OK);
	ck_assert_int_eq(r.rc, RAFT_ENOTFOUND);
	expect_applied(kv, 1, 1);
	entries_free(&e, 1);
	kvsm_close(kv);
}
END_TEST

/* No-op entries change no key but move the applied index and term. */
START_TEST(noops_advance_applied_index_and_term)
{
	char dir[300];
	struct raft_entry e[2];
	struct kvsm_result r[2];
	struct kvsm *kv;
	uint64_t n = 9;

	store_dir(dir, sizeof dir);
	kv = store_open(dir, &fast);
	entry_raw(&e[0], 1, RAFT_ENTRY_NOOP, NULL, 0);
	entry_raw(&e[1], 2, RAFT_ENTRY_NOOP, NULL, 0);
	e[1].term = 3;
	ck_assert_int_eq(kvsm_apply(kv, e, 2, r), RAFT_OK);
	ck_assert_int_eq(r[0].rc, RAFT_OK);
	ck_assert_uint_eq(r[1].index, 2);
	expect_applied(kv, 2, 3);
	ck_assert_int_eq(kvsm_count(kv, &n), RAFT_OK);
	ck_assert_uint_eq(n, 0);
	kvsm_close(kv);
}
END_TEST

/* After a reopen, entries at or below the applied index are skipped: the
 * state and applied index stay as they were; later ones are applied. */
START_TEST(replay_after_reopen_skips_applied_entries)
{
	char dir[300];
	struct raft_entry e[7];
	struct kvsm_result r[7];
	struct kvsm_meta m;
	struct kvsm *kv;

	store_dir(dir, sizeof dir);
	for (int i = 0; i < 7; i++) {
		entry_put_str(&e[i], (raft_index)i + 1, "k", "v");
		e[i].term = 2;
	}
	kv = store_open(dir, NULL);
	ck_assert_int_eq(kvsm_apply(kv, e, 5, r), RAFT_OK);
	kvsm_close(kv);

	kv = store_open(dir, NULL);
	expect_applied(kv, 5, 2);
	ck_assert_int_eq(kvsm_apply(kv, e, 5, r), RAFT_OK);
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(r[i].rc, RAFT_OK);
		ck_assert_uint_eq(r[i].index, 0);
	}
	expect_applied(kv, 5, 2);
	m = expect_str(kv, "k", "v");
	ck_assert_uint_eq(m.version, 5);

	/* An overlapping batch: 3..5 skipped, 6 and 7 applied. */
	ck_assert_int_eq(kvsm_apply(kv, &e[2], 5, &r[2]), RAFT_OK);
	ck_assert_uint_eq(r[4].index, 0);
	ck_assert_uint_eq(r[5].index, 6);
	ck_assert_uint_eq(r[6].index, 7);
	ck_assert_uint_eq(r[6].meta.version, 7);
	expect_applied(kv, 7, 2);
	entries_free(e, 7);
	kvsm_close(kv);
}
END_TEST

/* In every durability mode a committed batch is there after a reopen. */
START_TEST(every_sync_mode_keeps_batches_across_reopen)
{
	static const struct kvsm_options modes[] = {
	    {.no_sync = false}, {.no_meta_sync = true}, {.no_sync = true}};
	char dir[300];
	struct raft_entry e[2];
	struct kvsm_result r[2];
	struct kvsm *kv;

	for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
		store_dir(dir, sizeof dir);
		kv = store_open(dir, &modes[m]);
		entry_put_str(&e[0], 1, "a", "1");
		entry_put_str(&e[1], 2, "b", "2");
		ck_assert_int_eq(kvsm_apply(kv, e, 2, r), RAFT_OK);
		ck_assert_int_eq(kvsm_sync(kv), RAFT_OK);
		entries_free(e, 2);
		kvsm_close(kv);

		kv = store_open(dir, &modes[m]);
		expect_applied(kv, 2, 1);
		expect_str(kv, "a", "1");
		expect_str(kv, "b", "2");
		kvsm_close(kv);
	}
}
END_TEST

/* A batch with a gap, or one that starts past applied + 1, is refused
 * whole. */
START_TEST(batch_with_gap_is_refused_whole)
{
	char dir[300];
	struct raft_entry e[3];
	struct kvsm_result r[3];
	struct kvsm *kv;

	store_dir(dir, sizeof dir);
	kv = store_open(dir, &fast);
	entry_put_str(&e[0], 1, "a", "1");
	entry_put_str(&e[1], 2, "b", "2");
	entry_put_str(&e[2], 4, "c", "3");
	ck_assert_int_eq(kvsm_apply(kv, e, 3, r), RAFT_EINVAL);
	expect_absent(kv, "a");
	expect_applied(kv, 0, 0);
	ck_assert_int_eq(kvsm_apply(kv, &e[1], 1, r), RAFT_EINVAL);
	ck_assert_int_eq(kvsm_apply(kv, e, 2, r), RAFT_OK);
	expect_applied(kv, 2, 1);
	entries_free(e, 3);
	kvsm_close(kv);
}
END_TEST

/* Batches of WRITER_BATCH puts "k<index>" = "v<index>", from index first. */
#define WRITER_BATCH 10

static void writer_batch(struct raft_entry *e, raft_index first)
{
	char key[32], val[32];

	for (int i = 0; i < WRITER_BATCH; i++) {
		snprintf(key, sizeof key, "k%llu",
			 (unsigned long long)first + i);
		snprintf(val, sizeof val, "v%llu",
			 (unsigned long long)first + i);
		entry_put_str(&e[i], first + i, key, val);
	}
}

/* Child: apply batches forever, one byte on fd after each commit. */
static void writer_run(const char *dir, const struct kvsm_options *o, int fd)
{
	struct raft_entry e[WRITER_BATCH];
	struct kvsm_result r[WRITER_BATCH];
	struct kvsm *kv;

	if (kvsm_open(dir, o, &kv, NULL, 0) != RAFT_OK) {
		_exit(2);
	}
	for (raft_index first = 1; first < 1000000; first += WRITER_BATCH) {
		writer_batch(e, first);
		if (kvsm_apply(kv, e, WRITER_BATCH, r) != RAFT_OK) {
			_exit(3);
		}
		entries_free(e, WRITER_BATCH);
		if (write(fd, "x", 1) != 1) {
			_exit(4);
		}
	}
	_exit(0);
}

/* A file holding a boot id, standing in for the kernel's. */
static void boot_id_set(const char *path, const char *id)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(fprintf(f, "%s\n", id), 0);
	ck_assert_int_eq(fclose(f), 0);
}

/* The options the node opens its store with (unsynced), reading the boot
 * id from boot_path. */
static char boot_path[300];

static struct kvsm_options node_options(void)
{
	struct kvsm_options o = {.no_sync = true, .no_meta_sync = true};

	snprintf(boot_path, sizeof boot_path, "%s/boot_id", root);
	o.boot_id_path = boot_path;
	return o;
}

/* Fork a child that applies batches in dir with options o; return once it
 * has reported `batches` commits, the child still writing. */
static pid_t writer_start(const char *dir, const struct kvsm_options *o,
			  int batches, int *fd)
{
	int fds[2];
	char c;
	pid_t pid;

	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(fds[0]);
		writer_run(dir, o, fds[1]);
	}
	close(fds[1]);
	for (int i = 0; i < batches; i++) {
		ck_assert_int_eq(read(fds[0], &c, 1), 1);
	}
	*fd = fds[0];
	return pid;
}

/* Kill the writer; return how many commits it reported in all. */
static raft_index writer_kill(pid_t pid, int fd, int read_so_far)
{
	raft_index reported = (raft_index)read_so_far;
	char buf[4096];
	ssize_t n;
	int status;

	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status));
	while ((n = read(fd, buf, sizeof buf)) > 0) {
		reported += (raft_index)n;
	}
	close(fd);
	return reported;
}

/* A writer killed with SIGKILL between or inside batches leaves whole
 * batches only, and a reopen resumes at applied + 1: synced (loop 0) or
 * unsynced as the node runs it (loop 1), where the page cache keeps what
 * the dead process committed and the store is kept. */
START_TEST(killed_writer_resumes_at_applied_plus_one)
{
	struct raft_entry e[WRITER_BATCH];
	struct kvsm_result r[WRITER_BATCH];
	struct kvsm_options o = {0};
	char dir[300], key[32], val[32];
	raft_index applied, term, reported;
	struct kvsm *kv;
	int fd;
	pid_t pid;

	if (_i == 1) {
		o = node_options();
		boot_id_set(boot_path, "boot-1");
	}
	store_dir(dir, sizeof dir);
	pid = writer_start(dir, &o, 5, &fd);
	reported = writer_kill(pid, fd, 5);

	kv = store_open(dir, &o);
	ck_assert(!kvsm_discarded(kv));
	ck_assert_str_eq(kvsm_notice(kv), "");
	ck_assert_int_eq(kvsm_applied(kv, &applied, &term), RAFT_OK);
	/* Every reported commit is there; at most one more, committed but
	 * not yet reported when the signal came. */
	ck_assert_uint_ge(applied, reported * WRITER_BATCH);
	ck_assert_uint_le(applied, (reported + 1) * WRITER_BATCH);
	ck_assert_uint_eq(applied % WRITER_BATCH, 0);
	for (raft_index i = 1; i <= applied; i++) {
		snprintf(key, sizeof key, "k%llu", (unsigned long long)i);
		snprintf(val, sizeof val, "v%llu", (unsigned long long)i);
		ck_assert_uint_eq(expect_str(kv, key, val).mod_index, i);
	}
	snprintf(key, sizeof key, "k%llu", (unsigned long long)applied + 1);
	expect_absent(kv, key);

	/* Replaying the last batch skips it; the next one is applied. */
	writer_batch(e, applied - WRITER_BATCH + 1);
	ck_assert_int_eq(kvsm_apply(kv, e, WRITER_BATCH, r), RAFT_OK);
	ck_assert_uint_eq(r[WRITER_BATCH - 1].index, 0);
	entries_free(e, WRITER_BATCH);
	writer_batch(e, applied + 1);
	ck_assert_int_eq(kvsm_apply(kv, e, WRITER_BATCH, r), RAFT_OK);
	ck_assert_uint_eq(r[0].index, applied + 1);
	expect_applied(kv, applied + WRITER_BATCH, 1);
	entries_free(e, WRITER_BATCH);
	kvsm_close(kv);
}
END_TEST

/* Overwrite the start of dir's LMDB file (its meta pages) with garbage, as
 * a machine crash may leave an unsynced store. */
static void store_tear(const char *dir)
{
	char path[400], junk[16384];
	FILE *f;

	snprintf(path, sizeof path, "%s/kv.mdb", dir);
	f = fopen(path, "r+");
	ck_assert_ptr_nonnull(f);
	memset(junk, 0xa5, sizeof junk);
	ck_assert_uint_eq(fwrite(junk, 1, sizeof junk, f), sizeof junk);
	ck_assert_int_eq(fclose(f), 0);
}

/* Every key k1..k<applied> holds v<index>, and nothing beyond. */
static void expect_writer_keys(struct kvsm *kv, raft_index applied)
{
	char key[32], val[32];
	uint64_t n;

	for (raft_index i = 1; i <= applied; i++) {
		snprintf(key, sizeof key, "k%llu", (unsigned long long)i);
		snprintf(val, sizeof val, "v%llu", (unsigned long long)i);
		ck_assert_uint_eq(expect_str(kv, key, val).mod_index, i);
	}
	ck_assert_int_eq(kvsm_count(kv, &n), RAFT_OK);
	ck_assert_uint_eq(n, applied);
}

/* An unsynced store that a process of an earlier boot left open (the
 * machine went down with it open) is discarded at open, even when torn:
 * it opens empty at applied index 0, says why, and a replay from index 1
 * rebuilds it. */
START_TEST(store_left_open_by_earlier_boot_is_discarded)
{
	struct kvsm_options o = node_options();
	struct raft_entry e[WRITER_BATCH];
	struct kvsm_result r[WRITER_BATCH];
	char dir[300];
	struct kvsm *kv;
	uint64_t n;
	int fd;
	pid_t pid;

	boot_id_set(boot_path, "boot-1");
	store_dir(dir, sizeof dir);
	pid = writer_start(dir, &o, 3, &fd);
	writer_kill(pid, fd, 3);
	store_tear(dir);
	boot_id_set(boot_path, "boot-2");

	kv = store_open(dir, &o);
	ck_assert(kvsm_discarded(kv));
	ck_assert_ptr_nonnull(strstr(kvsm_notice(kv), "boot-1"));
	ck_assert_ptr_nonnull(strstr(kvsm_notice(kv), "boot-2"));
	expect_applied(kv, 0, 0);
	ck_assert_int_eq(kvsm_count(kv, &n), RAFT_OK);
	ck_assert_uint_eq(n, 0);
	for (raft_index first = 1; first <= 3 * WRITER_BATCH;
	     first += WRITER_BATCH) {
		writer_batch(e, first);
		ck_assert_int_eq(kvsm_apply(kv, e, WRITER_BATCH, r), RAFT_OK);
		entries_free(e, WRITER_BATCH);
	}
	kvsm_close(kv);

	/* Closed cleanly in this boot: kept by the next. */
	boot_id_set(boot_path, "boot-3");
	kv = store_open(dir, &o);
	ck_assert(!kvsm_discarded(kv));
	expect_applied(kv, 3 * WRITER_BATCH, 1);
	expect_writer_keys(kv, 3 * WRITER_BATCH);
	kvsm_close(kv);
}
END_TEST

/* An unsynced store closed cleanly is synced and kept across a reboot. */
START_TEST(store_closed_cleanly_survives_a_reboot)
{
	struct kvsm_options o = node_options();
	struct raft_entry e[WRITER_BATCH];
	struct kvsm_result r[WRITER_BATCH];
	char dir[300];
	struct kvsm *kv;

	boot_id_set(boot_path, "boot-1");
	store_dir(dir, sizeof dir);
	kv = store_open(dir, &o);
	writer_batch(e, 1);
	ck_assert_int_eq(kvsm_apply(kv, e, WRITER_BATCH, r), RAFT_OK);
	entries_free(e, WRITER_BATCH);
	kvsm_close(kv);

	boot_id_set(boot_path, "boot-2");
	kv = store_open(dir, &o);
	ck_assert(!kvsm_discarded(kv));
	ck_assert_str_eq(kvsm_notice(kv), "");
	expect_applied(kv, WRITER_BATCH, 1);
	expect_writer_keys(kv, WRITER_BATCH);
	kvsm_close(kv);
}
END_TEST

/* Without a readable boot id a store left open unsynced is discarded (a
 * reboot cannot be ruled out), the store is committed synced instead, and
 * the notice says so; a clean close keeps it. */
START_TEST(unreadable_boot_id_means_synced_batches)
{
	struct kvsm_options o = node_options();
	struct kvsm_options blind = node_options();
	struct raft_entry e[WRITER_BATCH];
	struct kvsm_result r[WRITER_BATCH];
	char dir[300], missing[320];
	struct kvsm *kv;
	int fd;
	pid_t pid;

	boot_id_set(boot_path, "boot-1");
	snprintf(missing, sizeof missing, "%s/no-such-boot-id", root);
	blind.boot_id_path = missing;
	store_dir(dir, sizeof dir);
	pid = writer_start(dir, &o, 2, &fd);
	writer_kill(pid, fd, 2);

	kv = store_open(dir, &blind);
	ck_assert(kvsm_discarded(kv));
	ck_assert_ptr_nonnull(strstr(kvsm_notice(kv), "every batch is synced"));
	writer_batch(e, 1);
	ck_assert_int_eq(kvsm_apply(kv, e, WRITER_BATCH, r), RAFT_OK);
	entries_free(e, WRITER_BATCH);
	kvsm_close(kv);

	kv = store_open(dir, &blind);
	ck_assert(!kvsm_discarded(kv));
	expect_writer_keys(kv, WRITER_BATCH);
	kvsm_close(kv);
}
END_TEST

#define FILL_KEYS  2000
#define FILL_VALUE 256

static void fill_batch(struct raft_entry *e, size_t n, raft_index first)
{
	char key[32], val[FILL_VALUE];

	for (size_t i = 0; i < n; i++) {
		snprintf(key, sizeof key, "key-%06llu",
			 (unsigned long long)(first + i));
		memset(val, 'a' + (int)((first + i) % 26), sizeof val);
		entry_put(&e[i], first + i, 1, key, strlen(key), val,
			  sizeof val);
	}
}

/* A map too small for the data grows (more than once) and every key stays
 * readable, across a reopen too. */
START_TEST(full_map_grows_and_keeps_every_key)
{
	struct kvsm_options o = {
	    .no_sync = true, .map_size = 64 * 1024, .max_map_size = 64 << 20};
	struct raft_entry e[100];
	struct kvsm_result r[100];
	char dir[300], key[32], val[FILL_VALUE];
	struct kvsm *kv;
	uint64_t n;

	store_dir(dir, sizeof dir);
	kv = store_open(dir, &o);
	for (raft_index first = 1; first <= FILL_KEYS; first += 100) {
		fill_batch(e, 100, first);
		ck_assert_int_eq(kvsm_apply(kv, e, 100, r), RAFT_OK);
		entries_free(e, 100);
	}
	kvsm_close(kv);

	kv = store_open(dir, &o);
	ck_assert_int_eq(kvsm_count(kv, &n), RAFT_OK);
	ck_assert_uint_eq(n, FILL_KEYS);
	for (raft_index i = 1; i <= FILL_KEYS; i++) {
		snprintf(key, sizeof key, "key-%06llu", (unsigned long long)i);
		memset(val, 'a' + (int)(i % 26), sizeof val);
		expect_value(kv, key, strlen(key), val, sizeof val);
	}
	expect_applied(kv, FILL_KEYS, 1);
	kvsm_close(kv);
}
END_TEST

/* A map that may not grow fails the batch with RAFT_ENOSPC: nothing of the
 * batch is applied, earlier data is intact and the store stays usable. */
START_TEST(full_map_at_limit_fails_batch_with_enospc)
{
	struct kvsm_options o = {.no_sync = true,
				 .map_size = 256 * 1024,
				 .max_map_size = 256 * 1024};
	static char big[100 * 1024];
	struct raft_entry e[10];
	struct kvsm_result r[10];
	char dir[300], val[FILL_VALUE];
	struct kvsm *kv;
	uint64_t n;

	store_dir(dir, sizeof dir);
	kv = store_open(dir, &o);
	fill_batch(e, 10, 1);
	ck_assert_int_eq(kvsm_apply(kv, e, 10, r), RAFT_OK);
	entries_free(e, 10);

	/* Four 100 KiB values cannot fit in a 256 KiB map. */
	fill_batch(e, 1, 11);
	for (int i = 1; i <= 4; i++) {
		char key[16];

		snprintf(key, sizeof key, "big%d", i);
		entry_put(&e[i], 11 + (raft_index)i, 1, key, strlen(key), big,
			  100 * 1024);
	}
	ck_assert_int_eq(kvsm_apply(kv, e, 5, r), RAFT_ENOSPC);
	entries_free(e, 5);
	expect_applied(kv, 10, 1);
	ck_assert_int_eq(kvsm_count(kv, &n), RAFT_OK);
	ck_assert_uint_eq(n, 10);
	expect_absent(kv, "key-000011");
	expect_absent(kv, "big1");
	memset(val, 'a' + 10, sizeof val); /* as fill_batch wrote it */
	expect_value(kv, "key-000010", 10, val, sizeof val);

	/* Still usable: a small batch fits. */
	fill_batch(e, 5, 11);
	ck_assert_int_eq(kvsm_apply(kv, e, 5, r), RAFT_OK);
	expect_applied(kv, 15, 1);
	entries_free(e, 5);
	kvsm_close(kv);
}
END_TEST

/* Oversize keys and values are refused by the encoder and the size check,
 * and an entry carrying one is consumed with RAFT_ETOOBIG. */
START_TEST(oversize_key_or_value_is_too_big)
{
	char dir[300];
	struct raft_entry e[4];
	struct kvsm_result r[4];
	struct kvsm *kv;
	void *buf = NULL;
	size_t len;
	uint64_t n;

	ck_assert_int_eq(kvsm_check_sizes(KVSM_MAX_KEY, KVSM_MAX_VALUE),
			 RAFT_OK);
	ck_assert_int_eq(kvsm_check_sizes(KVSM_MAX_KEY + 1, 0), RAFT_ETOOBIG);
	ck_assert_int_eq(kvsm_check_sizes(1, KVSM_MAX_VALUE + 1), RAFT_ETOOBIG);
	ck_assert_int_eq(kvsm_check_sizes(0, 1), RAFT_EINVAL);
	ck_assert_int_eq(
	    kvsm_encode_put("k", 1, "v", KVSM_MAX_VALUE + 1, &buf, &len),
	    RAFT_ETOOBIG);
	ck_assert_ptr_null(buf);
	ck_assert_int_eq(kvsm_encode_delete("", 0, &buf, &len), RAFT_EINVAL);
	ck_assert_ptr_null(buf);

	store_dir(dir, sizeof dir);
	kv = store_open(dir, &fast);
	entry_put_unchecked(&e[0], 1, KVSM_MAX_KEY + 1, 1);
	entry_put_unchecked(&e[1], 2, 1, KVSM_MAX_VALUE + 1);
	entry_put_unchecked(&e[2], 3, 0, 1);
	entry_put_unchecked(&e[3], 4, KVSM_MAX_KEY, 1);
	ck_assert_int_eq(kvsm_apply(kv, e, 4, r), RAFT_OK);
	ck_assert_int_eq(r[0].rc, RAFT_ETOOBIG);
	ck_assert_int_eq(r[1].rc, RAFT_ETOOBIG);
	ck_assert_int_eq(r[2].rc, RAFT_EINVAL);
	ck_assert_int_eq(r[3].rc, RAFT_OK);
	ck_assert_int_eq(kvsm_count(kv, &n), RAFT_OK);
	ck_assert_uint_eq(n, 1);
	expect_applied(kv, 4, 1);
	entries_free(e, 4);
	kvsm_close(kv);
}
END_TEST

/* Payloads that are not commands are consumed with RAFT_EINVAL; the rest of
 * the batch commits. */
START_TEST(garbage_command_is_invalid_and_batch_commits)
{
	static const unsigned char junk[] = {0xff, 0xff, 0xff, 0x01, 0x00};
	static const unsigned char unknown_field[] = {0x18, 0x05};
	char dir[300];
	struct raft_entry e[5];
	struct kvsm_result r[5];
	struct kvsm *kv;

	store_dir(dir, sizeof dir);
	kv = store_open(dir, &fast);
	entry_raw(&e[0], 1, RAFT_ENTRY_COMMAND, junk, sizeof junk);
	entry_raw(&e[1], 2, RAFT_ENTRY_COMMAND, NULL, 0);
	entry_raw(&e[2], 3, RAFT_ENTRY_COMMAND, unknown_field,
		  sizeof unknown_field);
	entry_raw(&e[3], 4, 77, "x", 1);
	entry_put_str(&e[4], 5, "ok", "yes");
	ck_assert_int_eq(kvsm_apply(kv, e, 5, r), RAFT_OK);
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(r[i].rc, RAFT_EINVAL);
	}
	ck_assert_int_eq(r[4].rc, RAFT_OK);
	expect_str(kv, "ok", "yes");
	expect_applied(kv, 5, 1);
	entries_free(e, 5);
	kvsm_close(kv);
}
END_TEST

/* Empty keys are refused by get and by the encoder. */
START_TEST(empty_key_is_invalid)
{
	char dir[300];
	struct kvsm *kv;
	void *val = NULL;
	size_t len;
	char big[KVSM_MAX_KEY + 1];

	store_dir(dir, sizeof dir);
	kv = store_open(dir, &fast);
	ck_assert_int_eq(kvsm_get(kv, "", 0, &val, &len, NULL), RAFT_EINVAL);
	memset(big, 'k', sizeof big);
	ck_assert_int_eq(kvsm_get(kv, big, sizeof big, &val, &len, NULL),
			 RAFT_ETOOBIG);
	ck_assert_ptr_null(val);
	kvsm_close(kv);
}
END_TEST

struct scan_seen {
	char keys[8][8];
	int n;
	int stop_after;
};

static bool scan_collect(void *arg, const void *key, size_t key_len,
			 const void *val, size_t val_len,
			 const struct kvsm_meta *meta)
{
	struct scan_seen *s = arg;

	ck_assert_uint_lt(key_len, sizeof s->keys[0]);
	ck_assert_uint_eq(val_len, 1);
	ck_assert_int_eq(*(const char *)val, *(const char *)key);
	ck_assert_uint_eq(meta->version, 1);
	memcpy(s->keys[s->n], key, key_len);
	s->keys[s->n][key_len] = '\0';
	s->n++;
	return s->n != s->stop_after;
}

/* A scan visits the keys of [start, end) in byte order, and stops when the
 * callback says so. */
START_TEST(scan_visits_range_in_byte_order)
{
	static const char *keys[] = {"b", "a", "ab", "c", "b0", "d"};
	char dir[300], val[2] = "x";
	struct raft_entry e[6];
	struct kvsm_result r[6];
	struct scan_seen s = {.n = 0};
	struct kvsm *kv;

	store_dir(dir, sizeof dir);
	kv = store_open(dir, &fast);
	for (int i = 0; i < 6; i++) {
		val[0] = keys[i][0];
		entry_put_str(&e[i], (raft_index)i + 1, keys[i], val);
	}
	ck_assert_int_eq(kvsm_apply(kv, e, 6, r), RAFT_OK);

	ck_assert_int_eq(kvsm_scan(kv, NULL, 0, NULL, 0, scan_collect, &s),
			 RAFT_OK);
	ck_assert_int_eq(s.n, 6);
	ck_assert_str_eq(s.keys[0], "a");
	ck_assert_str_eq(s.keys[1], "ab");
	ck_assert_str_eq(s.keys[2], "b");
	ck_assert_str_eq(s.keys[3], "b0");
	ck_assert_str_eq(s.keys[5], "d");

	s.n = 0;
	ck_assert_int_eq(kvsm_scan(kv, "ab", 2, "c", 1, scan_collect, &s),
			 RAFT_OK);
	ck_assert_int_eq(s.n, 3);
	ck_assert_str_eq(s.keys[0], "ab");
	ck_assert_str_eq(s.keys[2], "b0");

	s.n = 0;
	s.stop_after = 2;
	ck_assert_int_eq(kvsm_scan(kv, "b", 1, NULL, 0, scan_collect, &s),
			 RAFT_OK);
	ck_assert_int_eq(s.n, 2);
	entries_free(e, 6);
	kvsm_close(kv);
}
END_TEST

/* A store written by a newer format is refused with RAFT_EMISMATCH. */
START_TEST(unknown_format_is_refused)
{
	char dir[300], path[320], msg[256];
	struct kvsm *kv;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {6, "format"}, v = {4, "\x02\0\0\0"};

	store_dir(dir, sizeof dir);
	kv = store_open(dir, &fast);
	kvsm_close(kv);

	snprintf(path, sizeof path, "%s/kv.mdb", dir);
	ck_assert_int_eq(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 2);
	ck_assert_int_eq(mdb_env_open(env, path, MDB_NOSUBDIR, 0644), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);

	ck_assert_int_eq(kvsm_open(dir, &fast, &kv, msg, sizeof msg),
			 RAFT_EMISMATCH);
	ck_assert_ptr_nonnull(strstr(msg, "format 2"));
}
END_TEST

/* Sizes a store's file is cut to while closed, by loop index: empty, inside
 * the first meta page, inside the second, just the two meta pages (what
 * `truncate -s 8192` leaves on 4 KiB pages), and one byte into the data
 * pages. */
static off_t damaged_size(int i)
{
	off_t page = (off_t)sysconf(_SC_PAGESIZE);
	const off_t sizes[] = {0, 100, page + 100, 2 * page, 3 * page + 1};

	return sizes[i];
}

#define DAMAGED_SIZES 5

/* A store of 100 keys (about 30 KiB) in dir, closed, its file then cut to
 * size bytes; path is set to the file. */
static void store_cut(const char *dir, char *path, size_t len, off_t size)
{
	struct raft_entry e[100];
	struct kvsm_result r[100];
	struct kvsm *kv;
	struct stat st;

	kv = store_open(dir, &fast);
	fill_batch(e, 100, 1);
	ck_assert_int_eq(kvsm_apply(kv, e, 100, r), RAFT_OK);
	entries_free(e, 100);
	kvsm_close(kv);
	snprintf(path, len, "%s/kv.mdb", dir);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_gt(st.st_size, 3 * sysconf(_SC_PAGESIZE) + 1);
	ck_assert_int_eq(truncate(path, size), 0);
}

/* A store whose file was cut short while closed is refused by default,
 * never read (a page past the end of the mapped file would be SIGBUS):
 * RAFT_ECORRUPT, naming the file, which is left as it was. */
START_TEST(damaged_file_is_refused_without_rebuild)
{
	char dir[300], path[320], msg[512], want[400];
	struct kvsm *kv = NULL;
	struct stat st;
	off_t size = damaged_size(_i);

	store_dir(dir, sizeof dir);
	store_cut(dir, path, sizeof path, size);

	ck_assert_int_eq(kvsm_open(dir, &fast, &kv, msg, sizeof msg),
			 RAFT_ECORRUPT);
	ck_assert_ptr_null(kv);
	ck_assert_msg(strstr(msg, path) != NULL, "no file named in: %s", msg);
	if (size == 2 * sysconf(_SC_PAGESIZE)) {
		snprintf(want, sizeof want,
			 "%s is %lld bytes but its last page ends at byte ",
			 path, (long long)size);
		ck_assert_msg(strstr(msg, want) != NULL, "got: %s", msg);
	}
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, size);
}
END_TEST

/* With rebuild_damaged the same store is discarded: it opens empty at
 * applied index 0, says which file was damaged and how, and a replay from
 * index 1 rebuilds it for good. */
START_TEST(damaged_file_is_discarded_with_rebuild)
{
	struct kvsm_options o = {.no_sync = true, .rebuild_damaged = true};
	struct raft_entry e[100];
	struct kvsm_result r[100];
	char dir[300], path[320], val[FILL_VALUE];
	struct kvsm *kv;
	uint64_t n;

	store_dir(dir, sizeof dir);
	store_cut(dir, path, sizeof path, damaged_size(_i));

	kv = store_open(dir, &o);
	ck_assert(kvsm_discarded(kv));
	ck_assert_msg(strstr(kvsm_notice(kv), path) != NULL, "notice: %s",
		      kvsm_notice(kv));
	ck_assert_ptr_nonnull(strstr(kvsm_notice(kv), "rebuilt from the log"));
	expect_applied(kv, 0, 0);
	ck_assert_int_eq(kvsm_count(kv, &n), RAFT_OK);
	ck_assert_uint_eq(n, 0);
	fill_batch(e, 100, 1);
	ck_assert_int_eq(kvsm_apply(kv, e, 100, r), RAFT_OK);
	entries_free(e, 100);
	kvsm_close(kv);

	kv = store_open(dir, &o);
	ck_assert(!kvsm_discarded(kv));
	ck_assert_str_eq(kvsm_notice(kv), "");
	expect_applied(kv, 100, 1);
	memset(val, 'a' + 100 % 26, sizeof val); /* as fill_batch wrote it */
	expect_value(kv, "key-000100", 10, val, sizeof val);
	kvsm_close(kv);
}
END_TEST

/* A sound store is not taken for a damaged one, even when its file is
 * longer than its last page (LMDB never shrinks it). */
START_TEST(sound_file_with_spare_room_is_kept)
{
	struct kvsm_options o = {.no_sync = true, .rebuild_damaged = true};
	struct raft_entry e[10];
	struct kvsm_result r[10];
	char dir[300], path[320];
	struct kvsm *kv;
	struct stat st;

	store_dir(dir, sizeof dir);
	kv = store_open(dir, &o);
	fill_batch(e, 10, 1);
	ck_assert_int_eq(kvsm_apply(kv, e, 10, r), RAFT_OK);
	entries_free(e, 10);
	kvsm_close(kv);
	snprintf(path, sizeof path, "%s/kv.mdb", dir);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(truncate(path, st.st_size + 3 * 4096), 0);

	kv = store_open(dir, &o);
	ck_assert(!kvsm_discarded(kv));
	ck_assert_str_eq(kvsm_notice(kv), "");
	expect_applied(kv, 10, 1);
	kvsm_close(kv);
}
END_TEST

/* A full file system: ENOSPC or EDQUOT always; EIO (what LMDB makes of a
 * short write) only with less than KVSM_FULL_BYTES free to the writer;
 * any other error never. */
START_TEST(out_of_space_is_told_from_other_write_errors)
{
	struct statvfs vfs;

	memset(&vfs, 0, sizeof vfs);
	vfs.f_frsize = 4096;
	vfs.f_bfree = 1000000;
	vfs.f_bavail = 0; /* the rest is reserved for root */

	ck_assert(kvsm_out_of_space(ENOSPC, NULL, false));
	ck_assert(kvsm_out_of_space(EDQUOT, NULL, false));
	ck_assert(kvsm_out_of_space(ENOSPC, &vfs, true));
	ck_assert(!kvsm_out_of_space(EIO, NULL, false));
	ck_assert(kvsm_out_of_space(EIO, &vfs, false));
	ck_assert(!kvsm_out_of_space(EIO, &vfs, true));
	ck_assert(!kvsm_out_of_space(EBADF, &vfs, false));

	vfs.f_bfree = vfs.f_bavail = KVSM_FULL_BYTES / 4096 - 1;
	ck_assert(kvsm_out_of_space(EIO, &vfs, false));
	ck_assert(kvsm_out_of_space(EIO, &vfs, true));
	vfs.f_bfree = vfs.f_bavail = KVSM_FULL_BYTES / 4096;
	ck_assert(!kvsm_out_of_space(EIO, &vfs, false));
	ck_assert(!kvsm_out_of_space(EIO, &vfs, true));
}
END_TEST

/* Child of the test below: a commit cut short by a file size limit (a
 * short write, which LMDB reports as EIO) while the disk has room. Exits 0
 * when it failed with RAFT_EIO, not RAFT_ENOSPC, and kvsm_failure() named
 * the file, the call and the space left; the failure text goes to fd. */
static void short_write_run(const char *dir, int fd)
{
	static char big[256 * 1024];
	char path[320], want[400];
	struct raft_entry e[2];
	struct kvsm_result r[2];
	struct rlimit lim;
	struct kvsm *kv;
	struct stat st;
	const char *why;
	int rc;

	if (kvsm_open(dir, &fast, &kv, NULL, 0) != RAFT_OK) {
		_exit(2);
	}
	snprintf(path, sizeof path, "%s/kv.mdb", dir);
	if (stat(path, &st) != 0) {
		_exit(3);
	}
	signal(SIGXFSZ, SIG_IGN);
	lim.rlim_cur = lim.rlim_max = (rlim_t)st.st_size + 64 * 1024;
	if (setrlimit(RLIMIT_FSIZE, &lim) != 0) {
		_exit(4);
	}
	entry_put(&e[0], 1, 1, "big", 3, big, sizeof big);
	rc = kvsm_apply(kv, e, 1, r);
	why = kvsm_failure(kv);
	if (write(fd, why, strlen(why)) < 0) {
		_exit(5);
	}
	snprintf(want, sizeof want, "%s: commit: %s; ", path, strerror(EIO));
	if (rc != RAFT_EIO || strstr(why, want) == NULL ||
	    strstr(why, " bytes free in ") == NULL ||
	    strstr(why, "full") != NULL) {
		_exit(1);
	}
	/* Fail-stop: the next batch gets the same error. */
	entry_put(&e[1], 2, 1, "small", 5, "v", 1);
	_exit(kvsm_apply(kv, &e[1], 1, r) == RAFT_EIO ? 0 : 6);
}

/* A commit that fails on a short write while the disk has room stays an
 * I/O error, and kvsm_failure() says where and how much room there was. */
START_TEST(short_write_with_room_is_an_io_error_named)
{
	char dir[300], why[600] = "";
	int fds[2], status;
	ssize_t n;
	pid_t pid;

	store_dir(dir, sizeof dir);
	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(fds[0]);
		short_write_run(dir, fds[1]);
	}
	close(fds[1]);
	n = read(fds[0], why, sizeof why - 1);
	why[n > 0 ? n : 0] = '\0';
	close(fds[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child status %d, failure \"%s\"", status, why);
}
END_TEST

/* Reader side of the concurrency test. */
struct reader {
	struct kvsm *kv;
	atomic_bool stop;
	atomic_ulong reads;
	unsigned long violations;
	char what[128];
};

static void *reader_run(void *arg)
{
	struct reader *rd = arg;
	uint64_t last_version = 0;
	char expect[32];

	while (!atomic_load(&rd->stop)) {
		struct kvsm_meta m;
		void *val = NULL;
		size_t len;
		int rc;

		rc = kvsm_get(rd->kv, "hot", 3, &val, &len, &m);
		if (rc == RAFT_ENOTFOUND) {
			atomic_fetch_add(&rd->reads, 1);
			continue;
		}
		snprintf(expect, sizeof expect, "%llu",
			 (unsigned long long)m.version);
		if (rc != RAFT_OK || m.version < last_version ||
		    len != strlen(expect) || memcmp(val, expect, len) != 0) {
			if (rd->violations++ == 0) {
				snprintf(rd->what, sizeof rd->what,
					 "rc %d version %llu after %llu", rc,
					 (unsigned long long)m.version,
					 (unsigned long long)last_version);
			}
		}
		last_version = m.version;
		free(val);
		atomic_fetch_add(&rd->reads, 1);
	}
	return NULL;
}

/* Reads from another thread during writes, map growth included, see each
 * key's value and metadata from one committed state, never going back. */
START_TEST(concurrent_reads_see_committed_states)
{
	struct kvsm_options o = {
	    .no_sync = true, .map_size = 64 * 1024, .max_map_size = 256 << 20};
	struct reader rd = {.violations = 0};
	struct raft_entry e[8];
	struct kvsm_result r[8];
	char dir[300], key[32], num[32], val[1024];
	struct timespec deadline, now;
	raft_index index = 1;
	pthread_t t;

	store_dir(dir, sizeof dir);
	rd.kv = store_open(dir, &o);
	atomic_init(&rd.stop, false);
	atomic_init(&rd.reads, 0);
	ck_assert_int_eq(pthread_create(&t, NULL, reader_run, &rd), 0);

	/* Wait for the reader to be running before writing. */
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += 5;
	while (atomic_load(&rd.reads) == 0) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		ck_assert(now.tv_sec < deadline.tv_sec ||
			  (now.tv_sec == deadline.tv_sec &&
			   now.tv_nsec < deadline.tv_nsec));
		sched_yield();
	}

	/* Each batch: one put of "hot" = its version, and filler keys that
	 * make the map grow several times. */
	memset(val, 'f', sizeof val);
	for (int b = 1; b <= 300; b++) {
		snprintf(num, sizeof num, "%d", b);
		entry_put(&e[0], index, 1, "hot", 3, num, strlen(num));
		for (int i = 1; i < 8; i++) {
			snprintf(key, sizeof key, "f%llu",
				 (unsigned long long)index + i);
			entry_put(&e[i], index + i, 1, key, strlen(key), val,
				  sizeof val);
		}
		ck_assert_int_eq(kvsm_apply(rd.kv, e, 8, r), RAFT_OK);
		entries_free(e, 8);
		index += 8;
	}
	atomic_store(&rd.stop, true);
	pthread_join(t, NULL);
	ck_assert_msg(rd.violations == 0, "%lu bad reads, first: %s",
		      rd.violations, rd.what);
	ck_assert_uint_gt(atomic_load(&rd.reads), 1);
	expect_str(rd.kv, "hot", "300");
	kvsm_close(rd.kv);
}
END_TEST

static Suite *kvsm_suite(void)
{
	Suite *s = suite_create("kvsm");
	TCase *tc = tcase_create("kvsm");

	tcase_add_unchecked_fixture(tc, root_make, root_remove);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, put_get_delete_round_trip);
	tcase_add_test(tc, binary_keys_and_values_keep_nul_bytes);
	tcase_add_test(tc, largest_value_round_trips);
	tcase_add_test(tc, metadata_follows_puts_and_deletes);
	tcase_add_test(tc, delete_of_missing_key_is_not_found_and_consumed);
	tcase_add_test(tc, noops_advance_applied_index_and_term);
	tcase_add_test(tc, replay_after_reopen_skips_applied_entries);
	tcase_add_test(tc, every_sync_mode_keeps_batches_across_reopen);
	tcase_add_test(tc, batch_with_gap_is_refused_whole);
	tcase_add_loop_test(tc, killed_writer_resumes_at_applied_plus_one, 0,
			    2);
	tcase_add_test(tc, store_left_open_by_earlier_boot_is_discarded);
	tcase_add_test(tc, store_closed_cleanly_survives_a_reboot);
	tcase_add_test(tc, unreadable_boot_id_means_synced_batches);
	tcase_add_test(tc, full_map_grows_and_keeps_every_key);
	tcase_add_test(tc, full_map_at_limit_fails_batch_with_enospc);
	tcase_add_test(tc, oversize_key_or_value_is_too_big);
	tcase_add_test(tc, garbage_command_is_invalid_and_batch_commits);
	tcase_add_test(tc, empty_key_is_invalid);
	tcase_add_test(tc, scan_visits_range_in_byte_order);
	tcase_add_test(tc, unknown_format_is_refused);
	tcase_add_loop_test(tc, damaged_file_is_refused_without_rebuild, 0,
			    DAMAGED_SIZES);
	tcase_add_loop_test(tc, damaged_file_is_discarded_with_rebuild, 0,
			    DAMAGED_SIZES);
	tcase_add_test(tc, sound_file_with_spare_room_is_kept);
	tcase_add_test(tc, out_of_space_is_told_from_other_write_errors);
	tcase_add_test(tc, short_write_with_room_is_an_io_error_named);
	tcase_add_test(tc, concurrent_reads_see_committed_states);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(kvsm_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
