/* Tests of the durable log (lib/src/log): format, round trips, group
 * commit, torn tails, corruption, truncation, crashes and failed I/O. Every
 * test works on real files in a fresh directory under /tmp, removed at the
 * end. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log/format.h"
#include "log/internal.h"
#include "log/io.h"
#include "log/log.h"

/* ---- fixture ------------------------------------------------------- */

struct fx {
	char dir[64];
	uv_loop_t loop;
	struct rlog *log;
	struct rlog_loaded ld;
	char err[512];
	size_t segment_size;
	bool no_sync;
	raft_index keep; /* rlog_options.keep */
};

struct pending {
	int status;
	bool done;
	int order; /* completion order */
	int *counter;
};

static void pending_cb(struct rlog_req *req, int status)
{
	struct pending *p = req->data;

	p->status = status;
	p->done = true;
	p->order = (*p->counter)++;
}

/* The payload of the test entry at index written in term: its length and
 * bytes depend on both, and no byte is zero. */
static size_t payload_len(raft_index index)
{
	return 1 + (size_t)(index * 37 % 300);
}

static uint8_t payload_byte(raft_index index, raft_term term, size_t i)
{
	return (uint8_t)((index * 7 + term * 13 + i) % 255 + 1);
}

static struct raft_entry *make_entries(raft_index first, size_t n,
				       raft_term term)
{
	struct raft_entry *e = calloc(n, sizeof(*e));

	ck_assert_ptr_nonnull(e);
	for (size_t i = 0; i < n; i++) {
		uint8_t *d;
		e[i].index = first + i;
		e[i].term = term;
		e[i].type = RAFT_ENTRY_COMMAND;
		e[i].len = payload_len(first + i);
		d = malloc(e[i].len);
		ck_assert_ptr_nonnull(d);
		for (size_t j = 0; j < e[i].len; j++)
			d[j] = payload_byte(first + i, term, j);
		e[i].data = d;
	}
	return e;
}

static void free_entries(struct raft_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i].data);
	free(e);
}

/* Every test's directory lives under one base directory per test case,
 * made and removed by the parent process, so that a failing test leaves
 * nothing behind either. */
static char base_dir[32];

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	return remove(path);
}

static void base_setup(void)
{
	snprintf(base_dir, sizeof(base_dir), "/tmp/test_log.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base_dir));
}

static void base_teardown(void)
{
	nftw(base_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void fx_init(struct fx *f, size_t segment_size)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "%s/log.XXXXXX", base_dir);
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	ck_assert_int_eq(uv_loop_init(&f->loop), 0);
	f->segment_size = segment_size;
}

static int fx_try_open(struct fx *f)
{
	struct rlog_options o = {.segment_size = f->segment_size,
				 .no_sync = f->no_sync,
				 .keep = f->keep};

	rlog_loaded_free(&f->ld);
	return rlog_open(&f->loop, f->dir, &o, &f->log, &f->ld, f->err,
			 sizeof(f->err));
}

static void fx_open(struct fx *f)
{
	int rc = fx_try_open(f);
	ck_assert_msg(rc == RAFT_OK, "open: %d %s", rc, f->err);
}

static void closed(void *arg)
{
	*(bool *)arg = true;
}

static void fx_close(struct fx *f)
{
	bool done = false;

	rlog_close(f->log, closed, &done);
	while (!done)
		uv_run(&f->loop, UV_RUN_ONCE);
	f->log = NULL;
}

static void fx_done(struct fx *f)
{
	if (f->log != NULL)
		fx_close(f);
	rlog_loaded_free(&f->ld);
	ck_assert_int_eq(uv_loop_close(&f->loop), 0);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	rlog_io = rlog_io_default;
}

/* Run the loop until every one of n pending requests completed. */
static void wait_all(struct fx *f, struct pending *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		while (!p[i].done)
			uv_run(&f->loop, UV_RUN_ONCE);
}

/* Write n entries from first in term as one request and wait for it. */
static int fx_append(struct fx *f, raft_index first, size_t n, raft_term term)
{
	struct raft_entry *e = make_entries(first, n, term);
	struct rlog_req req = {.entries = e, .n_entries = n, .cb = pending_cb};
	int counter = 0;
	struct pending p = {.counter = &counter};
	int rc;

	req.data = &p;
	rc = rlog_write(f->log, &req);
	free_entries(e, n);
	if (rc != RAFT_OK)
		return rc;
	wait_all(f, &p, 1);
	return p.status;
}

static int fx_set_hard_state(struct fx *f, raft_term term, raft_id vote)
{
	struct rlog_req req = {.set_hard_state = true,
			       .term = term,
			       .vote = vote,
			       .cb = pending_cb};
	int counter = 0;
	struct pending p = {.counter = &counter};
	int rc;

	req.data = &p;
	rc = rlog_write(f->log, &req);
	if (rc != RAFT_OK)
		return rc;
	wait_all(f, &p, 1);
	return p.status;
}

/* The loaded log holds exactly indexes first..last, entry i written in the
 * term term_of(i). */
static void check_loaded(const struct fx *f, raft_index first, raft_index last,
			 raft_term (*term_of)(raft_index))
{
	uint8_t want[512];

	ck_assert_uint_eq(f->ld.n_entries, last + 1 - first);
	for (size_t i = 0; i < f->ld.n_entries; i++) {
		const struct raft_entry *e = &f->ld.entries[i];
		raft_index idx = first + i;
		raft_term t = term_of(idx);
		ck_assert_uint_eq(e->index, idx);
		ck_assert_uint_eq(e->term, t);
		ck_assert_uint_eq(e->type, RAFT_ENTRY_COMMAND);
		ck_assert_uint_eq(e->len, payload_len(idx));
		for (size_t j = 0; j < e->len; j++)
			want[j] = payload_byte(idx, t, j);
		ck_assert_msg(memcmp(e->data, want, e->len) == 0,
			      "payload of %" PRIu64 " differs", idx);
	}
}

static raft_term term_one(raft_index i)
{
	return 1;
}

static size_t count_segments(const char *dir)
{
	char cmd[128];
	FILE *p;
	size_t n = 0;

	snprintf(cmd, sizeof(cmd), "ls %s | grep -c '\\.seg$'", dir);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(fscanf(p, "%zu", &n), 1);
	pclose(p);
	return n;
}

/* The name of the newest (highest) segment file in dir, or of the oldest
 * when oldest is true. */
static void segment_name(const char *dir, bool oldest, char *out, size_t len)
{
	char cmd[160];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "ls %s | grep '\\.seg$' | sort | %s -1", dir,
		 oldest ? "head" : "tail");
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_nonnull(fgets(out, (int)len, p));
	out[strcspn(out, "\n")] = '\0';
	pclose(p);
}

static uint8_t *read_whole(const char *path, size_t *size)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*size = (size_t)st.st_size;
	return buf;
}

static void write_whole(const char *path, const uint8_t *buf, size_t size)
{
	int fd = open(path, O_WRONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	ck_assert_int_eq(pwrite(fd, buf, size, 0), (ssize_t)size);
	close(fd);
}

static void flip_bit(const char *path, size_t off, int bit)
{
	size_t size;
	uint8_t *buf = read_whole(path, &size);

	ck_assert_uint_lt(off, size);
	buf[off] ^= (uint8_t)(1u << bit);
	write_whole(path, buf, size);
	free(buf);
}

/* Offsets of the records in a segment image, through the end marker. */
static size_t record_offsets(const uint8_t *buf, size_t size, size_t *offs,
			     size_t max)
{
	size_t off = RLOG_SEG_HDR, n = 0;
	struct rlog_rec r;

	while (off + RLOG_REC_HDR <= size && n < max &&
	       rlog_rec_decode(buf + off, &r)) {
		offs[n++] = off;
		off += rlog_rec_size(r.len);
	}
	return n;
}

/* ---- format -------------------------------------------------------- */

/* The checksum is the standard CRC32C: "123456789" gives 0xE3069283. */
START_TEST(test_crc32c_matches_the_standard_check_value)
{
	ck_assert_uint_eq(rlog_crc32c("123456789", 9), 0xE3069283u);
	ck_assert_uint_eq(rlog_crc32c("", 0), 0);
}
END_TEST

/* A record decodes to what was encoded, and a flipped header bit fails. */
START_TEST(test_record_header_round_trips_and_detects_a_flip)
{
	struct raft_entry *e = make_entries(42, 1, 7);
	uint8_t buf[512];
	struct rlog_rec r;

	rlog_rec_encode(buf, e);
	ck_assert(rlog_rec_decode(buf, &r));
	ck_assert_uint_eq(r.index, 42);
	ck_assert_uint_eq(r.term, 7);
	ck_assert_uint_eq(r.len, e->len);
	ck_assert_uint_eq(r.data_crc, rlog_crc32c(buf + RLOG_REC_HDR, e->len));
	buf[9] ^= 0x10;
	ck_assert(!rlog_rec_decode(buf, &r));
	free_entries(e, 1);
}
END_TEST

/* ---- open, write, read back ---------------------------------------- */

/* A new directory opens as an empty log with term 0 and no vote. */
START_TEST(test_new_log_is_empty)
{
	struct fx f;

	fx_init(&f, 0);
	fx_open(&f);
	ck_assert_uint_eq(f.ld.n_entries, 0);
	ck_assert_uint_eq(f.ld.term, 0);
	ck_assert_uint_eq(f.ld.vote, 0);
	ck_assert_str_eq(f.ld.notice, "");
	fx_done(&f);
}
END_TEST

/* Files left by an interrupted metadata write, segment creation or spare
 * preparation are removed at open; other files are left alone. */
START_TEST(test_leftover_temporary_files_are_removed_at_open)
{
	struct fx f;
	const char *names[] = {"meta.tmp", "spare.7.tmp",
			       "00000000000000000009.seg.tmp", "README"};
	char path[160];

	fx_init(&f, 4096);
	for (size_t i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/%s", f.dir, names[i]);
		FILE *fp = fopen(path, "w");
		ck_assert_ptr_nonnull(fp);
		fputs("junk", fp);
		fclose(fp);
	}
	fx_open(&f);
	ck_assert_uint_eq(f.ld.n_entries, 0);
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", f.dir, names[i]);
		ck_assert_int_ne(access(path, F_OK), 0);
	}
	snprintf(path, sizeof(path), "%s/README", f.dir);
	ck_assert_int_eq(access(path, F_OK), 0);
	fx_done(&f);
}
END_TEST

/* Term, vote and entries written are what the next open loads. */
START_TEST(test_written_state_reads_back_after_reopen)
{
	struct fx f;

	fx_init(&f, 0);
	fx_open(&f);
	ck_assert_int_eq(fx_set_hard_state(&f, 3, 2), RAFT_OK);
	ck_assert_int_eq(fx_append(&f, 1, 10, 1), RAFT_OK);
	ck_assert_int_eq(fx_append(&f, 11, 1, 1), RAFT_OK);
	fx_close(&f);
	fx_open(&f);
	ck_assert_uint_eq(f.ld.term, 3);
	ck_assert_uint_eq(f.ld.vote, 2);
	check_loaded(&f, 1, 11, term_one);
	ck_assert_str_eq(f.ld.notice, "");
	fx_done(&f);
}
END_TEST

/* Records spread over many small segments read back whole and in order. */
START_TEST(test_records_round_trip_across_segment_boundaries)
{
	struct fx f;

	fx_init(&f, 4096);
	fx_open(&f);
	ck_assert_int_eq(fx_set_hard_state(&f, 1, 1), RAFT_OK);
	for (raft_index i = 1; i <= 300; i += 3)
		ck_assert_int_eq(fx_append(&f, i, 3, 1), RAFT_OK);
	fx_close(&f);
	ck_assert_uint_gt(count_segments(f.dir), 10);
	fx_open(&f);
	check_loaded(&f, 1, 300, term_one);
	/* And appending continues where it stopped. */
	ck_assert_int_eq(fx_append(&f, 301, 50, 1), RAFT_OK);
	fx_close(&f);
	fx_open(&f);
	check_loaded(&f, 1, 350, term_one);
	fx_done(&f);
}
END_TEST

/* A record larger than a segment gets a segment of its own. */
START_TEST(test_record_larger_than_a_segment_is_stored)
{
	struct fx f;
	struct raft_entry e = {
	    .term = 1, .index = 1, .type = RAFT_ENTRY_COMMAND};
	struct rlog_req req = {.entries = &e, .n_entries = 1, .cb = pending_cb};
	int counter = 0;
	struct pending p = {.counter = &counter};

	fx_init(&f, 4096);
	fx_open(&f);
	ck_assert_int_eq(fx_set_hard_state(&f, 1, 0), RAFT_OK);
	ck_assert_int_eq(fx_append(&f, 1, 1, 1), RAFT_OK);
	e.index = 2;
	e.len = 10000;
	e.data = calloc(1, e.len);
	memset(e.data, 0xab, e.len);
	req.data = &p;
	ck_assert_int_eq(rlog_write(f.log, &req), RAFT_OK);
	free(e.data);
	wait_all(&f, &p, 1);
	ck_assert_int_eq(p.status, RAFT_OK);
	ck_assert_int_eq(fx_append(&f, 3, 1, 1), RAFT_OK);
	fx_close(&f);
	fx_open(&f);
	ck_assert_uint_eq(f.ld.n_entries, 3);
	ck_assert_uint_eq(f.ld.entries[1].len, 10000);
	ck_assert_uint_eq(((uint8_t *)f.ld.entries[1].data)[9999], 0xab);
	fx_done(&f);
}
END_TEST

/* Requests queued together complete in submission order, all durable. */
START_TEST(test_queued_requests_complete_in_submission_order)
{
	enum { N = 200 };
	struct fx f;
	struct rlog_req reqs[N];
	struct pending p[N];
	int counter = 0;

	fx_init(&f, 16384);
	fx_open(&f);
	ck_assert_int_eq(fx_set_hard_state(&f, 1, 1), RAFT_OK);
	for (int i = 0; i < N; i++) {
		struct raft_entry *e = make_entries((raft_index)i + 1, 1, 1);
		memset(&reqs[i], 0, sizeof(reqs[i]));
		memset(&p[i], 0, sizeof(p[i]));
		p[i].counter = &counter;
		reqs[i].data = &p[i];
		reqs[i].entries = e;
		reqs[i].n_entries = 1;
		reqs[i].cb = pending_cb;
		ck_assert_int_eq(rlog_write(f.log, &reqs[i]), RAFT_OK);
		free_entries(e, 1);
	}
	wait_all(&f, p, N);
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(p[i].status, RAFT_OK);
		ck_assert_int_eq(p[i].order, i);
	}
	fx_close(&f);
	fx_open(&f);
	check_loaded(&f, 1, N, term_one);
	fx_done(&f);
}
END_TEST

static bool spare_ready(struct rlog *l)
{
	bool ready;

	uv_mutex_lock(&l->mu);
	ready = l->spare_fd >= 0;
	uv_mutex_unlock(&l->mu);
	return ready;
}

static size_t spares_used(struct rlog *l)
{
	size_t n;

	uv_mutex_lock(&l->mu);
	n = l->spares_used;
	uv_mutex_unlock(&l->mu);
	return n;
}

/* Wait (polling, with a deadline) until the log has a spare ready. */
static void wait_spare(struct fx *f)
{
	uint64_t deadline = uv_hrtime() + 10 * 1000000000ull;

	while (!spare_ready(f->log)) {
		ck_assert_msg(uv_hrtime() < deadline, "no spare after 10 s");
		uv_sleep(1);
	}
}

/* Segments made from prepared spares hold their records like any other,
 * and no spare file outlives the log. */
START_TEST(test_segments_from_spares_round_trip)
{
	struct fx f;
	char cmd[160];

	fx_init(&f, 65536);
	fx_open(&f);
	ck_assert_int_eq(fx_set_hard_state(&f, 1, 1), RAFT_OK);
	for (raft_index i = 1; i <= 2000; i += 100) {
		wait_spare(&f);
		ck_assert_int_eq(fx_append(&f, i, 100, 1), RAFT_OK);
	}
	ck_assert_uint_ge(spares_used(f.log), 3);
	fx_close(&f);
	snprintf(cmd, sizeof(cmd), "ls %s | grep -q spare", f.dir);
	ck_assert_int_ne(system(cmd), 0);
	fx_open(&f);
	check_loaded(&f, 1, 2000, term_one);
	fx_done(&f);
}
END_TEST

/* Requests that would leave a gap or break the entries' rules are refused
 * at once and change nothing. */
START_TEST(test_bad_requests_are_refused)
{
	struct fx f;
	struct raft_entry *e;
	struct rlog_req req = {.cb = pending_cb};

	fx_init(&f, 0);
	fx_open(&f);
	ck_assert_int_eq(fx_set_hard_state(&f, 1, 1), RAFT_OK);
	ck_assert_int_eq(fx_append(&f, 1, 5, 1), RAFT_OK);
	e = make_entries(7, 1, 1); /* gap: 6 is missing */
	req.entries = e;
	req.n_entries = 1;
	ck_assert_int_eq(rlog_write(f.log, &req), RAFT_EINVAL);
	e[0].index = 6;
	e[0].term = 0; /* term 0 */
	ck_assert_int_eq(rlog_write(f.log, &req), RAFT_EINVAL);
	e[0].term = 1;
	e[0].type = 9; /* unknown type */
	ck_assert_int_eq(rlog_write(f.log, &req), RAFT_EINVAL);
	free_entries(e, 1);
	fx_close(&f);
	fx_open(&f);
	check_loaded(&f, 1, 5, term_one);
	fx_done(&f);
}
END_TEST

/* ---- torn tails and corruption ------------------------------------- */

/* Write term 1 entries 1..n into a fresh log of small segments and close. */
static void fx_fill(struct fx *f, raft_index n)
{
	fx_open(f);
	ck_assert_int_eq(fx_set_hard_state(f, 1, 1), RAFT_OK);
	for (raft_index i = 1; i <= n; i += 4)
		ck_assert_int_eq(
		    fx_append(f, i, n - i + 1 < 4 ? n - i + 1 : 4, 1), RAFT_OK);
	fx_close(f);
}

/* The last record cut short at any byte, by a short file or by zeros, is a
 * torn tail: the log opens with exactly that record gone, says so, and
 * takes new appends. */
START_TEST(test_torn_tail_at_every_byte_of_the_last_record_is_cut)
{
	struct fx f;
	char name[64], path[160];
	size_t size, offs[64], n, rec_end;
	uint8_t *orig;
	raft_index last = 57; /* a 10-byte payload: 42 offsets, 2 ways */

	fx_init(&f, 4096);
	f.no_sync = true; /* durability is not what is checked here */
	fx_fill(&f, last);
	segment_name(f.dir, false, name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", f.dir, name);
	orig = read_whole(path, &size);
	n = record_offsets(orig, size, offs, 64);
	ck_assert_uint_ge(n, 2);
	rec_end = offs[n - 1] + RLOG_REC_HDR + payload_len(last);

	for (size_t k = offs[n - 1]; k < rec_end; k++) {
		for (int how = 0; how < 2; how++) {
			uint8_t *img = malloc(size);
			memcpy(img, orig, size);
			if (how == 0) {
				memset(img + k, 0, size - k);
				write_whole(path, img, size);
			} else {
				write_whole(path, img, k); /* short file */
			}
			free(img);
			fx_open(&f);
			check_loaded(&f, 1, last - 1, term_one);
			if (k > offs[n - 1])
				ck_assert_msg(strstr(f.ld.notice, name) != NULL,
					      "k %zu: notice '%s'", k,
					      f.ld.notice);
			if (k == rec_end - 1 && how == 1)
				ck_assert_int_eq(fx_append(&f, last, 2, 1),
						 RAFT_OK);
			fx_close(&f);
		}
	}
	fx_open(&f);
	check_loaded(&f, 1, last + 1, term_one);
	free(orig);
	fx_done(&f);
}
END_TEST

static void expect_corrupt(struct fx *f, const char *name, size_t off)
{
	char where[64];
	int rc = fx_try_open(f);

	ck_assert_int_eq(rc, RAFT_ECORRUPT);
	snprintf(where, sizeof(where), "offset %zu:", off);
	ck_assert_msg(strstr(f->err, name) != NULL, "no file in '%s'", f->err);
	ck_assert_msg(strstr(f->err, f->dir) != NULL, "no dir in '%s'", f->err);
	ck_assert_msg(strstr(f->err, where) != NULL, "no '%s' in '%s'", where,
		      f->err);
	ck_assert_uint_eq(f->ld.n_entries, 0);
}

/* A flipped payload bit in a record that valid records follow is
 * corruption, even in the last segment. */
START_TEST(test_flipped_bit_in_a_middle_record_is_corruption)
{
	struct fx f;
	char name[64], path[160];
	size_t size, offs[64], n;
	uint8_t *img;

	fx_init(&f, 4096);
	fx_fill(&f, 60);
	segment_name(f.dir, false, name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", f.dir, name);
	img = read_whole(path, &size);
	n = record_offsets(img, size, offs, 64);
	free(img);
	ck_assert_uint_ge(n, 3);
	flip_bit(path, offs[1] + RLOG_REC_HDR, 3);
	expect_corrupt(&f, name, offs[1]);
	ck_assert_msg(strstr(f.err, "payload checksum") != NULL, "%s", f.err);
	flip_bit(path, offs[1] + RLOG_REC_HDR, 3);
	flip_bit(path, offs[1] + 9, 0); /* the index, in the header */
	expect_corrupt(&f, name, offs[1]);
	ck_assert_msg(strstr(f.err, "header checksum") != NULL, "%s", f.err);
	fx_done(&f);
}
END_TEST

/* A damaged last record that the state machine has already applied was
 * committed: it is not a torn tail. The log refuses to open, names the
 * record, and leaves the file as it was; without that knowledge the same
 * damage is cut as a torn tail. */
START_TEST(test_damaged_last_record_already_applied_is_not_cut)
{
	struct fx f;
	char name[64], path[160], want[64];
	size_t size, size2, offs[64], n;
	uint8_t *orig, *img, *after;
	raft_index last = 40;

	fx_init(&f, 4096);
	fx_fill(&f, last);
	segment_name(f.dir, false, name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", f.dir, name);
	orig = read_whole(path, &size);
	n = record_offsets(orig, size, offs, 64);
	ck_assert_uint_ge(n, 2);
	img = malloc(size);
	memcpy(img, orig, size);
	memset(img + offs[n - 1] + RLOG_REC_HDR, 0, 4); /* payload damaged */
	write_whole(path, img, size);

	f.keep = last;
	expect_corrupt(&f, name, offs[n - 1]);
	snprintf(want, sizeof(want), "expected record %llu, which",
		 (unsigned long long)last);
	ck_assert_msg(strstr(f.err, want) != NULL, "%s", f.err);
	ck_assert_msg(strstr(f.err, "already applied") != NULL, "%s", f.err);
	after = read_whole(path, &size2);
	ck_assert_uint_eq(size2, size);
	ck_assert(memcmp(after, img, size) == 0);
	free(after);

	f.keep = last - 1; /* the record was never applied: a torn tail */
	fx_open(&f);
	check_loaded(&f, 1, last - 1, term_one);
	ck_assert_msg(strstr(f.ld.notice, name) != NULL, "%s", f.ld.notice);
	fx_close(&f);
	free(img);
	free(orig);
	fx_done(&f);
}
END_TEST

/* A bad last record of a segment that is not the last one is corruption,
 * never a torn tail. */
START_TEST(test_bad_record_in_an_earlier_segment_is_corruption)
{
	struct fx f;
	char name[64], path[160];
	size_t size, offs[64], n;
	uint8_t *img;

	fx_init(&f, 4096);
	fx_fill(&f, 60);
	segment_name(f.dir, true, name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", f.dir, name);
	img = read_whole(path, &size);
	n = record_offsets(img, size, offs, 64);
	free(img);
	flip_bit(path, offs[n - 1] + RLOG_REC_HDR + 1, 6);
	expect_corrupt(&f, name, offs[n - 1]);
	fx_done(&f);
}
END_TEST

/* A flipped bit in a segment header is corruption at offset 0. */
START_TEST(test_flipped_bit_in_a_segment_header_is_corruption)
{
	struct fx f;
	char name[64], path[160];

	fx_init(&f, 4096);
	fx_fill(&f, 60);
	segment_name(f.dir, false, name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", f.dir, name);
	flip_bit(path, 17, 2); /* the first index */
	expect_corrupt(&f, name, 0);
	flip_bit(path, 17, 2);
	flip_bit(path, 1, 0); /* the magic */
	expect_corrupt(&f, name, 0);
	ck_assert_msg(strstr(f.err, "magic") != NULL, "%s", f.err);
	flip_bit(path, 1, 0);
	fx_open(&f);
	check_loaded(&f, 1, 60, term_one);
	fx_done(&f);
}
END_TEST

/* A missing middle segment leaves a gap in the indexes: corruption,
 * naming the segment after the gap and what index was expected. */
START_TEST(test_gap_between_segments_is_corruption)
{
	struct fx f;
	char cmd[256], names[3][64];
	FILE *p;

	fx_init(&f, 4096);
	fx_fill(&f, 100);
	snprintf(cmd, sizeof(cmd), "ls %s | grep '\\.seg$' | sort | head -3",
		 f.dir);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	for (int i = 0; i < 3; i++) {
		ck_assert_ptr_nonnull(fgets(names[i], sizeof(names[i]), p));
		names[i][strcspn(names[i], "\n")] = '\0';
	}
	pclose(p);
	snprintf(cmd, sizeof(cmd), "%s/%s", f.dir, names[1]);
	ck_assert_int_eq(unlink(cmd), 0);
	expect_corrupt(&f, names[2], 16);
	ck_assert_msg(strstr(f.err, "expected") != NULL, "%s", f.err);
	fx_done(&f);
}
END_TEST

/* A flipped bit in the metadata file is corruption, not a reset of term
 * and vote. */
START_TEST(test_flipped_bit_in_the_metadata_file_is_corruption)
{
	struct fx f;
	char path[160];

	fx_init(&f, 4096);
	fx_fill(&f, 10);
	snprintf(path, sizeof(path), "%s/meta", f.dir);
	flip_bit(path, 24, 0); /* the vote */
	expect_corrupt(&f, "meta", 0);
	ck_assert_msg(strstr(f.err, "checksum") != NULL, "%s", f.err);
	fx_done(&f);
}
END_TEST

/* Entries without the metadata file would let term and vote go back: the
 * log refuses to open. */
START_TEST(test_missing_metadata_with_entries_is_corruption)
{
	struct fx f;
	char path[160];

	fx_init(&f, 4096);
	fx_fill(&f, 10);
	snprintf(path, sizeof(path), "%s/meta", f.dir);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(fx_try_open(&f), RAFT_ECORRUPT);
	ck_assert_msg(strstr(f.err, "meta") != NULL, "%s", f.err);
	fx_done(&f);
}
END_TEST

/* ---- truncation and compaction ------------------------------------- */

static raft_term term_of_truncated(raft_index i)
{
	return i < 50 ? 1 : 2;
}

/* A request starting inside the log replaces everything from there, in an
 * earlier segment too, and appending continues after it. */
START_TEST(test_truncate_then_append_replaces_the_suffix)
{
	struct fx f;
	size_t before;

	fx_init(&f, 4096);
	fx_fill(&f, 100);
	before = count_segments(f.dir);
	fx_open(&f);
	ck_assert_int_eq(fx_set_hard_state(&f, 2, 3), RAFT_OK);
	ck_assert_int_eq(fx_append(&f, 50, 5, 2), RAFT_OK);
	ck_assert_int_eq(fx_append(&f, 55, 15, 2), RAFT_OK);
	fx_close(&f);
	ck_assert_uint_lt(count_segments(f.dir), before);
	fx_open(&f);
	check_loaded(&f, 1, 69, term_of_truncated);
	fx_done(&f);
}
END_TEST

static raft_term term_of_batch(raft_index i)
{
	return i < 105 ? 1 : 3;
}

/* Appends and a truncation queued together are applied in order. */
START_TEST(test_truncation_queued_behind_appends_applies_in_order)
{
	struct fx f;
	struct raft_entry *a = make_entries(101, 10, 1);
	struct raft_entry *b = make_entries(105, 3, 3);
	struct rlog_req ra = {.entries = a, .n_entries = 10, .cb = pending_cb};
	struct rlog_req rb = {.entries = b,
			      .n_entries = 3,
			      .cb = pending_cb,
			      .set_hard_state = true,
			      .term = 3,
			      .vote = 1};
	struct pending p[2] = {{0}};
	int counter = 0;

	fx_init(&f, 4096);
	fx_fill(&f, 100);
	fx_open(&f);
	p[0].counter = p[1].counter = &counter;
	ra.data = &p[0];
	rb.data = &p[1];
	ck_assert_int_eq(rlog_write(f.log, &ra), RAFT_OK);
	ck_assert_int_eq(rlog_write(f.log, &rb), RAFT_OK);
	free_entries(a, 10);
	free_entries(b, 3);
	wait_all(&f, p, 2);
	ck_assert_int_eq(p[0].status, RAFT_OK);
	ck_assert_int_eq(p[1].status, RAFT_OK);
	fx_close(&f);
	fx_open(&f);
	ck_assert_uint_eq(f.ld.term, 3);
	check_loaded(&f, 1, 107, term_of_batch);
	fx_done(&f);
}
END_TEST

static raft_term term_of_restart(raft_index i)
{
	return i < 2 ? 1 : 4;
}

/* Truncating at the very start of a segment, and down to entry 1. */
START_TEST(test_truncation_at_segment_starts_and_at_the_first_entry)
{
	struct fx f;
	char name[64];
	raft_index first;

	fx_init(&f, 4096);
	fx_fill(&f, 100);
	segment_name(f.dir, false, name, sizeof(name));
	first = strtoull(name, NULL, 10);
	ck_assert_uint_gt(first, 1);
	fx_open(&f);
	ck_assert_int_eq(fx_set_hard_state(&f, 4, 0), RAFT_OK);
	ck_assert_int_eq(fx_append(&f, first, 1, 4), RAFT_OK);
	ck_assert_int_eq(fx_append(&f, 2, 3, 4), RAFT_OK);
	fx_close(&f);
	fx_open(&f);
	check_loaded(&f, 1, 4, term_of_restart);
	ck_assert_uint_eq(count_segments(f.dir), 1);
	ck_assert_int_eq(fx_append(&f, 1, 1, 4), RAFT_OK);
	fx_close(&f);
	fx_open(&f);
	ck_assert_uint_eq(f.ld.n_entries, 1);
	ck_assert_uint_eq(f.ld.entries[0].term, 4);
	fx_done(&f);
}
END_TEST

/* Compaction deletes whole segments below the index, never later entries,
 * and the log still opens; requests may no longer start below it. */
START_TEST(test_compaction_deletes_whole_segments_below_the_index)
{
	struct fx f;
	size_t before;
	struct raft_entry *e;
	struct rlog_req req = {.cb = pending_cb};

	fx_init(&f, 4096);
	fx_fill(&f, 300);
	before = count_segments(f.dir);
	fx_open(&f);
	ck_assert_int_eq(rlog_compact(f.log, 150), RAFT_OK);
	ck_assert_int_eq(fx_set_hard_state(&f, 1, 1), RAFT_OK); /* barrier */
	e = make_entries(100, 1, 2);
	req.entries = e;
	req.n_entries = 1;
	ck_assert_int_eq(rlog_write(f.log, &req), RAFT_EINVAL);
	free_entries(e, 1);
	ck_assert_int_eq(rlog_compact(f.log, 1000), RAFT_EINVAL);
	fx_close(&f);
	ck_assert_uint_lt(count_segments(f.dir), before);
	fx_open(&f);
	ck_assert_uint_gt(f.ld.entries[0].index, 1);
	ck_assert_uint_le(f.ld.entries[0].index, 150);
	check_loaded(&f, f.ld.entries[0].index, 300, term_one);
	fx_done(&f);
}
END_TEST

/* ---- crashes ------------------------------------------------------- */

#define CRASH_SEGMENT  65536
#define CRASH_INFLIGHT 8

static raft_term crash_term(raft_index i)
{
	return 1 + (i - 1) / 200;
}

struct crash_child {
	struct rlog *log;
	struct rlog_req reqs[CRASH_INFLIGHT];
	raft_index next;
	raft_term stored_term;
	int out;
};

static void crash_submit(struct crash_child *c, struct rlog_req *req);

static void crash_cb(struct rlog_req *req, int status)
{
	struct crash_child *c = req->data;
	char line[32];
	int len;

	if (status != RAFT_OK)
		_exit(3);
	len = snprintf(line, sizeof(line), "%" PRIu64 "\n",
		       (uint64_t)req->entries[0].index + req->n_entries - 1);
	if (write(c->out, line, (size_t)len) != len)
		_exit(4);
	free((void *)req->entries);
	crash_submit(c, req);
}

/* Submit the next 1..3 entries, all of one term, with the term first. */
static void crash_submit(struct crash_child *c, struct rlog_req *req)
{
	raft_term t = crash_term(c->next);
	size_t n = 1 + c->next % 3;
	struct raft_entry *e;

	while (n > 1 && crash_term(c->next + n - 1) != t)
		n--;
	e = calloc(n, sizeof(*e));
	for (size_t i = 0; i < n; i++) {
		raft_index idx = c->next + i;
		uint8_t *d = malloc(payload_len(idx));
		for (size_t j = 0; j < payload_len(idx); j++)
			d[j] = payload_byte(idx, t, j);
		e[i] = (struct raft_entry){.term = t,
					   .index = idx,
					   .type = RAFT_ENTRY_COMMAND,
					   .data = d,
					   .len = payload_len(idx)};
	}
	memset(req, 0, sizeof(*req));
	req->data = c;
	req->cb = crash_cb;
	req->entries = e;
	req->n_entries = n;
	if (t > c->stored_term) {
		req->set_hard_state = true;
		req->term = t;
		req->vote = 1;
		c->stored_term = t;
	}
	if (rlog_write(c->log, req) != RAFT_OK)
		_exit(5);
	/* Payloads were copied; the array stays for the report. */
	for (size_t i = 0; i < n; i++)
		free(e[i].data);
	c->next += n;
}

/* The child: append from the end of the log forever, reporting on out
 * every index that became durable. */
static void crash_child_run(const char *dir, int out)
{
	struct rlog_options o = {.segment_size = CRASH_SEGMENT};
	struct rlog_loaded ld;
	struct crash_child c = {.out = out};
	uv_loop_t loop;
	char err[256];

	uv_loop_init(&loop);
	if (rlog_open(&loop, dir, &o, &c.log, &ld, err, sizeof(err)) != 0)
		_exit(2);
	c.next = ld.n_entries > 0 ? ld.entries[ld.n_entries - 1].index + 1 : 1;
	c.stored_term = ld.term;
	rlog_loaded_free(&ld);
	for (int i = 0; i < CRASH_INFLIGHT; i++)
		crash_submit(&c, &c.reqs[i]);
	uv_run(&loop, UV_RUN_DEFAULT);
	_exit(6);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Read the child's reports for about run_ms, kill it with SIGKILL and
 * return the highest index it reported durable. */
static raft_index crash_watch(pid_t pid, int in, unsigned run_ms)
{
	raft_index max = 0;
	uint64_t deadline = now_ms() + run_ms;
	char buf[4096], line[32];
	size_t ll = 0;
	bool killed = false;
	int status;

	for (;;) {
		ssize_t n;
		if (!killed && now_ms() >= deadline) {
			kill(pid, SIGKILL);
			killed = true;
		}
		if (!killed) {
			struct timeval tv = {0, 2000};
			fd_set set;
			FD_ZERO(&set);
			FD_SET(in, &set);
			if (select(in + 1, &set, NULL, NULL, &tv) <= 0)
				continue;
		}
		n = read(in, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != '\n') {
				if (ll < sizeof(line) - 1)
					line[ll++] = buf[i];
				continue;
			}
			line[ll] = '\0';
			ll = 0;
			if (strtoull(line, NULL, 10) > max)
				max = strtoull(line, NULL, 10);
		}
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		      "child ended by itself, status %d", status);
	return max;
}

/* A writer killed with SIGKILL at random points leaves a log that opens,
 * is a prefix of what was appended and holds everything reported
 * durable; the term stored is never below the last entry's. */
START_TEST(test_log_after_kill_holds_everything_reported_durable)
{
	struct fx f;
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();

	fx_init(&f, CRASH_SEGMENT);
	for (int iter = 0; iter < 6; iter++) {
		int fds[2];
		pid_t pid;
		raft_index durable;

		ck_assert_int_eq(pipe(fds), 0);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			close(fds[0]);
			crash_child_run(f.dir, fds[1]);
		}
		close(fds[1]);
		durable = crash_watch(pid, fds[0], 40 + rand_r(&seed) % 160);
		close(fds[0]);

		fx_open(&f);
		ck_assert_msg(f.ld.n_entries >= durable,
			      "seed %u iter %d: %zu entries, %" PRIu64
			      " reported durable",
			      seed, iter, f.ld.n_entries, durable);
		check_loaded(&f, 1, f.ld.n_entries, crash_term);
		if (f.ld.n_entries > 0)
			ck_assert_uint_ge(f.ld.term,
					  crash_term(f.ld.n_entries));
		fx_close(&f);
	}
	ck_assert_uint_gt(count_segments(f.dir), 1);
	fx_done(&f);
}
END_TEST

/* ---- failed I/O ---------------------------------------------------- */

/* A failing fdatasync that first waits for the test to open the gate, so
 * that the test can queue requests behind it. */
static uv_mutex_t gate_mu;
static uv_cond_t gate_cond;
static bool gate_open;

static int eio_fdatasync(int fd)
{
	uv_mutex_lock(&gate_mu);
	while (!gate_open)
		uv_cond_wait(&gate_cond, &gate_mu);
	uv_mutex_unlock(&gate_mu);
	errno = EIO;
	return -1;
}

static void gate_set(bool open)
{
	uv_mutex_lock(&gate_mu);
	gate_open = open;
	uv_cond_broadcast(&gate_cond);
	uv_mutex_unlock(&gate_mu);
}

static int enospc_fallocate(int fd, off_t off, off_t len)
{
	errno = ENOSPC;
	return -1;
}

static ssize_t enospc_pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
	errno = ENOSPC;
	return -1;
}

/* Submit requests for entries first.. one entry each, without waiting. */
static void submit_each(struct fx *f, raft_index first, size_t n,
			struct rlog_req *reqs, struct pending *p, int *counter)
{
	for (size_t i = 0; i < n; i++) {
		struct raft_entry *e = make_entries(first + i, 1, 1);
		memset(&reqs[i], 0, sizeof(reqs[i]));
		memset(&p[i], 0, sizeof(p[i]));
		p[i].counter = counter;
		reqs[i].data = &p[i];
		reqs[i].entries = e;
		reqs[i].n_entries = 1;
		reqs[i].cb = pending_cb;
		ck_assert_int_eq(rlog_write(f->log, &reqs[i]), RAFT_OK);
		free_entries(e, 1);
	}
}

/* A failed fdatasync fails every request waiting on it with RAFT_EIO; the
 * log stays failed even when the disk recovers; what was acknowledged
 * before is still there after a restart. */
START_TEST(test_failed_fdatasync_fails_requests_and_stays_failed)
{
	struct fx f;
	struct rlog_req reqs[3];
	struct pending p[3];
	int counter = 0;

	fx_init(&f, 0);
	rlog_io.no_spare = true; /* no other thread reads the table */
	fx_open(&f);
	ck_assert_int_eq(fx_set_hard_state(&f, 1, 1), RAFT_OK);
	ck_assert_int_eq(fx_append(&f, 1, 10, 1), RAFT_OK);
	ck_assert_ptr_null(rlog_failure(f.log));

	ck_assert_int_eq(uv_mutex_init(&gate_mu), 0);
	ck_assert_int_eq(uv_cond_init(&gate_cond), 0);
	gate_set(false);
	rlog_io.fdatasync = eio_fdatasync;
	submit_each(&f, 11, 3, reqs, p, &counter);
	gate_set(true);
	wait_all(&f, p, 3);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(p[i].status, RAFT_EIO);
		ck_assert_int_eq(p[i].order, i);
	}
	ck_assert_ptr_nonnull(rlog_failure(f.log));
	ck_assert_msg(strstr(rlog_failure(f.log), "fdatasync") != NULL, "%s",
		      rlog_failure(f.log));

	rlog_io = rlog_io_default; /* the disk is fine again: no retry */
	rlog_io.no_spare = true;
	ck_assert_int_eq(fx_append(&f, 14, 1, 1), RAFT_EIO);
	ck_assert_int_eq(fx_set_hard_state(&f, 2, 0), RAFT_EIO);
	fx_close(&f);
	uv_cond_destroy(&gate_cond);
	uv_mutex_destroy(&gate_mu);

	fx_open(&f);
	ck_assert_uint_eq(f.ld.term, 1);
	ck_assert_uint_ge(f.ld.n_entries, 10);
	check_loaded(&f, 1, f.ld.n_entries, term_one);
	fx_done(&f);
}
END_TEST

/* Running out of space (when a new segment is allocated, or on a write)
 * fails with RAFT_ENOSPC and the failed state; after a restart nothing
 * acknowledged is lost and appends work again. */
START_TEST(test_enospc_fails_with_enospc_and_loses_nothing_durable)
{
	for (int how = 0; how < 2; how++) {
		struct fx f;

		fx_init(&f, 4096);
		rlog_io.no_spare = true; /* the next segment needs fallocate */
		fx_open(&f);
		ck_assert_int_eq(fx_set_hard_state(&f, 1, 1), RAFT_OK);
		ck_assert_int_eq(fx_append(&f, 1, 10, 1), RAFT_OK);
		if (how == 0)
			rlog_io.fallocate = enospc_fallocate;
		else
			rlog_io.pwritev = enospc_pwritev;
		ck_assert_int_eq(fx_append(&f, 11, 40, 1), RAFT_ENOSPC);
		ck_assert_msg(strstr(rlog_failure(f.log),
				     how == 0 ? "fallocate" : "write") != NULL,
			      "%s", rlog_failure(f.log));
		rlog_io = rlog_io_default;
		ck_assert_int_eq(fx_append(&f, 11, 1, 1), RAFT_ENOSPC);
		fx_close(&f);

		fx_open(&f);
		ck_assert_uint_ge(f.ld.n_entries, 10);
		check_loaded(&f, 1, f.ld.n_entries, term_one);
		ck_assert_int_eq(fx_append(&f, 11, 40, 1), RAFT_OK);
		fx_close(&f);
		fx_open(&f);
		check_loaded(&f, 1, 50, term_one);
		fx_done(&f);
	}
}
END_TEST

/* A fresh log on a full file system fails to open with RAFT_ENOSPC and a
 * message that names the segment file and the space the log needs: the
 * segment and a spare of the same size. Nothing is left behind. */
START_TEST(test_no_space_for_the_first_segment_says_how_much_is_needed)
{
	struct fx f;
	struct stat st;
	char path[600];

	fx_init(&f, 0); /* the default segment size, 64 MiB */
	rlog_io.no_spare = true;
	rlog_io.pwritev = enospc_pwritev;
	ck_assert_int_eq(fx_try_open(&f), RAFT_ENOSPC);
	ck_assert_ptr_null(f.log);
	ck_assert_msg(strstr(f.err, "/00000000000000000001.seg.tmp: write: ") !=
			  NULL,
		      "%s", f.err);
	ck_assert_msg(strstr(f.err, strerror(ENOSPC)) != NULL, "%s", f.err);
	ck_assert_msg(strstr(f.err,
			     "this log segment takes 64 MiB, and the log "
			     "needs about 128 MiB free") != NULL,
		      "%s", f.err);
	snprintf(path, sizeof(path), "%s/00000000000000000001.seg.tmp", f.dir);
	ck_assert_int_ne(stat(path, &st), 0);
	fx_done(&f);
}
END_TEST

/* A failed metadata write fails the request before its entries are
 * written, so no entry is stored with a term the metadata lacks. */
START_TEST(test_failed_metadata_write_stores_no_entry_of_the_request)
{
	struct fx f;
	struct raft_entry *e;
	struct rlog_req req = {.set_hard_state = true,
			       .term = 5,
			       .vote = 2,
			       .cb = pending_cb,
			       .n_entries = 3};
	int counter = 0;
	struct pending p = {.counter = &counter};

	fx_init(&f, 0);
	rlog_io.no_spare = true; /* no other thread reads the table */
	fx_open(&f);
	ck_assert_int_eq(fx_set_hard_state(&f, 1, 1), RAFT_OK);
	ck_assert_int_eq(fx_append(&f, 1, 10, 1), RAFT_OK);
	e = make_entries(11, 3, 5);
	req.entries = e;
	req.data = &p;
	rlog_io.pwritev = enospc_pwritev;
	ck_assert_int_eq(rlog_write(f.log, &req), RAFT_OK);
	free_entries(e, 3);
	wait_all(&f, &p, 1);
	ck_assert_int_eq(p.status, RAFT_ENOSPC);
	ck_assert_msg(strstr(rlog_failure(f.log), "meta") != NULL, "%s",
		      rlog_failure(f.log));
	rlog_io = rlog_io_default;
	fx_close(&f);
	fx_open(&f);
	ck_assert_uint_eq(f.ld.term, 1);
	check_loaded(&f, 1, 10, term_one);
	fx_done(&f);
}
END_TEST

/* ---- interrupted truncation ----------------------------------------- */

enum io_kind {
	IO_UNLINK,
	IO_FSYNC,
	IO_FTRUNCATE,
	IO_FALLOCATE,
	IO_PWRITEV,
	IO_FDATASYNC,
	IO_KINDS
};

static const char *const io_kind_name[IO_KINDS] = {
    "unlink", "fsync", "ftruncate", "fallocate", "pwritev", "fdatasync"};
static enum io_kind fail_kind;
static int fail_countdown = -1; /* the call that fails; -1: none */

static bool should_fail(enum io_kind k)
{
	if (k != fail_kind || fail_countdown < 0)
		return false;
	if (fail_countdown-- > 0)
		return false;
	errno = EIO;
	return true;
}

static int nth_unlinkat(int dirfd, const char *name)
{
	return should_fail(IO_UNLINK) ? -1
				      : rlog_io_default.unlinkat(dirfd, name);
}

static int nth_fsync(int fd)
{
	return should_fail(IO_FSYNC) ? -1 : rlog_io_default.fsync(fd);
}

static int nth_ftruncate(int fd, off_t len)
{
	return should_fail(IO_FTRUNCATE) ? -1
					 : rlog_io_default.ftruncate(fd, len);
}

static int nth_fallocate(int fd, off_t off, off_t len)
{
	return should_fail(IO_FALLOCATE)
		   ? -1
		   : rlog_io_default.fallocate(fd, off, len);
}

static ssize_t nth_pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
	return should_fail(IO_PWRITEV)
		   ? -1
		   : rlog_io_default.pwritev(fd, iov, n, off);
}

static int nth_fdatasync(int fd)
{
	return should_fail(IO_FDATASYNC) ? -1 : rlog_io_default.fdatasync(fd);
}

/* Entries 30.. of term 1 or 2 (old or new), matching their payloads. */
static void check_old_or_new(const struct fx *f, const char *what)
{
	uint8_t want[512];

	ck_assert_msg(f->ld.n_entries >= 29, "%s: %zu entries", what,
		      f->ld.n_entries);
	for (size_t i = 0; i < f->ld.n_entries; i++) {
		const struct raft_entry *e = &f->ld.entries[i];
		raft_term t = e->term;
		ck_assert_uint_eq(e->index, i + 1);
		ck_assert_msg(t == 1 || (t == 2 && e->index >= 30),
			      "%s: %" PRIu64 " has term %" PRIu64, what,
			      e->index, t);
		for (size_t j = 0; j < e->len; j++)
			want[j] = payload_byte(e->index, t, j);
		ck_assert_uint_eq(e->len, payload_len(e->index));
		ck_assert(memcmp(e->data, want, e->len) == 0);
	}
}

/* A truncation that stops at any of its steps (each system call failing
 * in turn, as a crash there would) leaves a log that opens, holds entries
 * 1..29 untouched and, after them, old or new entries only. */
START_TEST(test_truncation_stopped_at_any_step_leaves_a_log_that_opens)
{
	for (int k = 0; k < IO_KINDS; k++) {
		for (int n = 0;; n++) {
			struct fx f;
			char what[64];
			int rc;

			snprintf(what, sizeof(what), "%s #%d", io_kind_name[k],
				 n);
			fx_init(&f, 4096);
			rlog_io.no_spare = true; /* only the worker's calls */
			fx_fill(&f, 100);
			fx_open(&f);
			ck_assert_int_eq(fx_set_hard_state(&f, 2, 0), RAFT_OK);
			rlog_io.no_spare = true;
			rlog_io.unlinkat = nth_unlinkat;
			rlog_io.fsync = nth_fsync;
			rlog_io.ftruncate = nth_ftruncate;
			rlog_io.fallocate = nth_fallocate;
			rlog_io.pwritev = nth_pwritev;
			rlog_io.fdatasync = nth_fdatasync;
			fail_kind = (enum io_kind)k;
			fail_countdown = n;
			rc = fx_append(&f, 30, 5, 2);
			fail_countdown = -1;
			fx_close(&f);
			fx_open(&f);
			check_old_or_new(&f, what);
			ck_assert_int_eq(
			    fx_append(&f, f.ld.n_entries + 1, 1,
				      f.ld.entries[f.ld.n_entries - 1].term),
			    RAFT_OK);
			fx_done(&f);
			if (rc == RAFT_OK)
				break; /* fewer than n + 1 such calls */
			ck_assert_int_eq(rc, RAFT_EIO);
		}
	}
}
END_TEST

/* Non-zero garbage in place of the last record, with nothing valid in it,
 * is a torn tail too. */
START_TEST(test_garbage_after_the_last_good_record_is_cut)
{
	struct fx f;
	char name[64], path[160];
	size_t size, offs[64], n;
	uint8_t *img;
	unsigned seed = 7;

	fx_init(&f, 4096);
	fx_fill(&f, 60);
	segment_name(f.dir, false, name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", f.dir, name);
	img = read_whole(path, &size);
	n = record_offsets(img, size, offs, 64);
	for (size_t i = offs[n - 1]; i < offs[n - 1] + 700 && i < size; i++)
		img[i] = (uint8_t)rand_r(&seed);
	write_whole(path, img, size);
	free(img);
	fx_open(&f);
	check_loaded(&f, 1, 59, term_one);
	ck_assert_msg(strstr(f.ld.notice, name) != NULL, "%s", f.ld.notice);
	fx_done(&f);
}
END_TEST

/* No-op entries with empty payloads round-trip. */
START_TEST(test_empty_noop_entries_round_trip)
{
	struct fx f;
	struct raft_entry e[2] = {
	    {.term = 1, .index = 1, .type = RAFT_ENTRY_NOOP},
	    {.term = 1, .index = 2, .type = RAFT_ENTRY_COMMAND}};
	struct rlog_req req = {.entries = e,
			       .n_entries = 2,
			       .cb = pending_cb,
			       .set_hard_state = true,
			       .term = 1};
	int counter = 0;
	struct pending p = {.counter = &counter};

	fx_init(&f, 0);
	fx_open(&f);
	req.data = &p;
	ck_assert_int_eq(rlog_write(f.log, &req), RAFT_OK);
	wait_all(&f, &p, 1);
	ck_assert_int_eq(p.status, RAFT_OK);
	fx_close(&f);
	fx_open(&f);
	ck_assert_uint_eq(f.ld.n_entries, 2);
	ck_assert_uint_eq(f.ld.entries[0].type, RAFT_ENTRY_NOOP);
	ck_assert_uint_eq(f.ld.entries[0].len, 0);
	ck_assert_ptr_null(f.ld.entries[0].data);
	ck_assert_uint_eq(f.ld.entries[1].type, RAFT_ENTRY_COMMAND);
	ck_assert_uint_eq(f.ld.entries[1].len, 0);
	fx_done(&f);
}
END_TEST

/* ---- direct writes --------------------------------------------------- */

/* Whether the file system under dir takes O_DIRECT writes at all. */
static bool direct_io_supported(const char *dir)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/probe", dir);
	fd = open(path, O_RDWR | O_CREAT | O_DIRECT, 0644);
	if (fd >= 0)
		close(fd);
	unlink(path);
	return fd >= 0;
}

/* Appends go out as direct writes from the loop where the file system takes
 * them, interleave in order with what the worker does (term and vote, a
 * truncation, new segments), and read back whole after a reopen. */
START_TEST(test_direct_writes_interleave_with_the_worker_and_read_back)
{
	struct fx f;
	struct rlog_req reqs[40];
	struct pending p[40];
	int counter = 0;

	fx_init(&f, 64 * 1024);
	fx_open(&f);
	ck_assert_int_eq(fx_set_hard_state(&f, 1, 1), RAFT_OK);
	for (raft_index i = 1; i <= 300; i++)
		ck_assert_int_eq(fx_append(&f, i, 1, 1), RAFT_OK);
	submit_each(&f, 301, 40, reqs, p, &counter);
	wait_all(&f, p, 40);
	for (int i = 0; i < 40; i++) {
		ck_assert_int_eq(p[i].status, RAFT_OK);
		ck_assert_int_eq(p[i].order, i);
	}
	/* Replace 331.. (a truncation, on the worker), then append again. */
	ck_assert_int_eq(fx_append(&f, 331, 20, 1), RAFT_OK);
	for (raft_index i = 351; i <= 400; i++)
		ck_assert_int_eq(fx_append(&f, i, 1, 1), RAFT_OK);
	if (direct_io_supported(f.dir))
		ck_assert_uint_gt(f.log->dio_writes, 300);
	else
		ck_assert_uint_eq(f.log->dio_writes, 0);
	ck_assert_uint_gt(count_segments(f.dir), 1);
	fx_close(&f);

	fx_open(&f);
	ck_assert_uint_eq(f.ld.term, 1);
	check_loaded(&f, 1, 400, term_one);
	fx_done(&f);
}
END_TEST

static long long eio_result(long long res)
{
	return -EIO;
}

static long long eagain_result(long long res)
{
	return -EAGAIN;
}

/* A direct write that fails fails its requests with RAFT_EIO, names the
 * file, and the log stays failed; what was acknowledged before is still
 * there after a restart. */
START_TEST(test_failed_direct_write_fails_requests_and_stays_failed)
{
	struct fx f;
	const char *why;

	fx_init(&f, 0);
	fx_open(&f);
	if (!direct_io_supported(f.dir)) {
		/* Nothing to fail: every write goes through the worker. */
		ck_assert_int_eq(fx_append(&f, 1, 10, 1), RAFT_OK);
		ck_assert_uint_eq(f.log->dio_writes, 0);
		fx_done(&f);
		return;
	}
	ck_assert_int_eq(fx_set_hard_state(&f, 1, 1), RAFT_OK);
	ck_assert_int_eq(fx_append(&f, 1, 10, 1), RAFT_OK);
	ck_assert_uint_gt(f.log->dio_writes, 0);
	rlog_io.direct_result = eio_result;
	ck_assert_int_eq(fx_append(&f, 11, 1, 1), RAFT_EIO);
	why = rlog_failure(f.log);
	ck_assert_ptr_nonnull(why);
	ck_assert_msg(strstr(why, "direct write") != NULL &&
			  strstr(why, ".seg") != NULL,
		      "%s", why);
	rlog_io = rlog_io_default; /* the disk is fine again: no retry */
	ck_assert_int_eq(fx_append(&f, 12, 1, 1), RAFT_EIO);
	fx_close(&f);

	fx_open(&f);
	ck_assert_uint_ge(f.ld.n_entries, 10);
	ck_assert_uint_le(f.ld.n_entries, 11);
	check_loaded(&f, 1, 10 + (f.ld.n_entries - 10), term_one);
	fx_done(&f);
}
END_TEST

/* A direct write the kernel refuses rather than block on (EAGAIN) is made
 * by the worker instead; nothing is lost or reordered. */
START_TEST(test_refused_direct_write_goes_through_the_worker)
{
	struct fx f;
	struct rlog_req reqs[8];
	struct pending p[8];
	int counter = 0;

	fx_init(&f, 0);
	fx_open(&f);
	ck_assert_int_eq(fx_set_hard_state(&f, 1, 1), RAFT_OK);
	rlog_io.direct_result = eagain_result;
	for (raft_index i = 1; i <= 20; i++)
		ck_assert_int_eq(fx_append(&f, i, 1, 1), RAFT_OK);
	submit_each(&f, 21, 8, reqs, p, &counter);
	wait_all(&f, p, 8);
	for (int i = 0; i < 8; i++) {
		ck_assert_int_eq(p[i].status, RAFT_OK);
		ck_assert_int_eq(p[i].order, i);
	}
	if (direct_io_supported(f.dir))
		ck_assert_uint_ge(f.log->worker_batches, 20);
	rlog_io = rlog_io_default;
	ck_assert_int_eq(fx_append(&f, 29, 2, 1), RAFT_OK);
	fx_close(&f);

	fx_open(&f);
	check_loaded(&f, 1, 30, term_one);
	fx_done(&f);
}
END_TEST

static TCase *add_case(Suite *s, const char *name, int timeout)
{
	TCase *tc = tcase_create(name);

	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_set_timeout(tc, timeout);
	suite_add_tcase(s, tc);
	return tc;
}

static Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = add_case(s, "format", 10);

	tcase_add_test(tc, test_crc32c_matches_the_standard_check_value);
	tcase_add_test(tc, test_record_header_round_trips_and_detects_a_flip);

	tc = add_case(s, "basic", 30);
	tcase_add_test(tc, test_new_log_is_empty);
	tcase_add_test(tc, test_leftover_temporary_files_are_removed_at_open);
	tcase_add_test(tc, test_written_state_reads_back_after_reopen);
	tcase_add_test(tc, test_records_round_trip_across_segment_boundaries);
	tcase_add_test(tc, test_record_larger_than_a_segment_is_stored);
	tcase_add_test(tc, test_queued_requests_complete_in_submission_order);
	tcase_add_test(tc, test_bad_requests_are_refused);
	tcase_add_test(tc, test_empty_noop_entries_round_trip);
	tcase_add_test(tc, test_segments_from_spares_round_trip);

	tc = add_case(s, "damage", 60);
	tcase_add_test(tc,
		       test_torn_tail_at_every_byte_of_the_last_record_is_cut);
	tcase_add_test(tc, test_flipped_bit_in_a_middle_record_is_corruption);
	tcase_add_test(tc, test_damaged_last_record_already_applied_is_not_cut);
	tcase_add_test(tc, test_bad_record_in_an_earlier_segment_is_corruption);
	tcase_add_test(tc, test_flipped_bit_in_a_segment_header_is_corruption);
	tcase_add_test(tc, test_flipped_bit_in_the_metadata_file_is_corruption);
	tcase_add_test(tc, test_gap_between_segments_is_corruption);
	tcase_add_test(tc, test_missing_metadata_with_entries_is_corruption);
	tcase_add_test(tc, test_garbage_after_the_last_good_record_is_cut);

	tc = add_case(s, "truncation", 30);
	tcase_add_test(tc, test_truncate_then_append_replaces_the_suffix);
	tcase_add_test(tc,
		       test_truncation_queued_behind_appends_applies_in_order);
	tcase_add_test(
	    tc, test_truncation_at_segment_starts_and_at_the_first_entry);
	tcase_add_test(tc,
		       test_compaction_deletes_whole_segments_below_the_index);
	tcase_add_test(
	    tc, test_truncation_stopped_at_any_step_leaves_a_log_that_opens);

	tc = add_case(s, "crash", 60);
	tcase_add_test(tc,
		       test_log_after_kill_holds_everything_reported_durable);

	tc = add_case(s, "failure", 30);
	tcase_add_test(tc,
		       test_failed_fdatasync_fails_requests_and_stays_failed);
	tcase_add_test(tc,
		       test_enospc_fails_with_enospc_and_loses_nothing_durable);
	tcase_add_test(
	    tc, test_no_space_for_the_first_segment_says_how_much_is_needed);
	tcase_add_test(
	    tc, test_failed_metadata_write_stores_no_entry_of_the_request);

	tc = add_case(s, "direct", 30);
	tcase_add_test(
	    tc, test_direct_writes_interleave_with_the_worker_and_read_back);
	tcase_add_test(
	    tc, test_failed_direct_write_fails_requests_and_stays_failed);
	tcase_add_test(tc, test_refused_direct_write_goes_through_the_worker);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(log_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
