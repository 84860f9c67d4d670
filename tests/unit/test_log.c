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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log/format.h"
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

static void fx_init(struct fx *f, size_t segment_size)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_log.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	ck_assert_int_eq(uv_loop_init(&f->loop), 0);
	f->segment_size = segment_size;
}

static int fx_try_open(struct fx *f)
{
	struct rlog_options o = {.segment_size = f->segment_size};

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

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	return remove(path);
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
			ck_assert_uint_eq(((uint8_t *)e->data)[j],
					  payload_byte(idx, t, j));
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

static Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("format");

	tcase_add_test(tc, test_crc32c_matches_the_standard_check_value);
	tcase_add_test(tc, test_record_header_round_trips_and_detects_a_flip);
	suite_add_tcase(s, tc);

	tc = tcase_create("basic");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_new_log_is_empty);
	tcase_add_test(tc, test_written_state_reads_back_after_reopen);
	tcase_add_test(tc, test_records_round_trip_across_segment_boundaries);
	tcase_add_test(tc, test_record_larger_than_a_segment_is_stored);
	tcase_add_test(tc, test_queued_requests_complete_in_submission_order);
	tcase_add_test(tc, test_bad_requests_are_refused);
	suite_add_tcase(s, tc);
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
