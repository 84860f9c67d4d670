/* Linearizable reads by ReadIndex (dissertation 6.4) in the core. */
#include <check.h>
#include <stdlib.h>

#include "core_harness.h"

static struct raft_msg ack(raft_id from, raft_term term, raft_index index,
			   uint64_t ctx)
{
	struct raft_msg m = {.type = RAFT_MSG_APPEND_RESP,
			     .from = from,
			     .to = 1,
			     .term = term,
			     .index = index,
			     .context = ctx};
	return m;
}

/* A leader of 3 whose no-op (index 1) is committed and applied. */
static void committed_leader(struct ch_node *nd)
{
	struct raft_msg a;

	ch_start(nd, 1, 3, NULL, NULL);
	ch_make_leader(nd);
	ch_persist(nd);
	a = ack(2, raft_current_term(nd->r), 1, 0);
	ch_step(nd, &a);
	ck_assert_uint_eq(nd->n_committed, 1);
	ch_clear(nd);
}

/* The round a read rides on: the context of the heartbeat just sent. */
static uint64_t last_round(const struct ch_node *nd)
{
	const struct raft_msg *hb = NULL;

	for (size_t i = 0; i < nd->now.n; i++) {
		if (nd->now.v[i].type == RAFT_MSG_APPEND) {
			hb = &nd->now.v[i];
		}
	}
	ck_assert_ptr_nonnull(hb);
	return hb->context;
}

/* A read is served only once a quorum answered a heartbeat round that
 * started after the read arrived. */
START_TEST(test_read_index_waits_for_heartbeat_quorum)
{
	struct ch_node nd;
	struct raft_msg a;
	uint64_t round;
	raft_term t;

	committed_leader(&nd);
	t = raft_current_term(nd.r);
	/* An answer to an older round does not count. */
	ck_assert_int_eq(raft_read_index(nd.r, 77), RAFT_OK);
	ch_drain(&nd);
	round = last_round(&nd);
	a = ack(2, t, 1, round - 1);
	ch_step(&nd, &a);
	ck_assert_uint_eq(nd.n_reads, 0);
	a = ack(2, t, 1, round);
	ch_step(&nd, &a);
	ck_assert_uint_eq(nd.n_reads, 1);
	ck_assert_uint_eq(nd.reads[0].id, 77);
	ck_assert_int_eq(nd.reads[0].status, RAFT_OK);
	ck_assert_uint_eq(nd.reads[0].index, 1);
	ch_stop(&nd);
}
END_TEST

/* An answer naming a round this leader never sent (one from before a
 * restart of the leader, echoed by a follower in the new term) confirms
 * nothing; a follower rejecting an APPEND of an older term echoes no
 * round at all. */
START_TEST(test_answer_with_a_round_never_sent_confirms_no_read)
{
	struct ch_node nd, f;
	struct raft_msg a, stale = {.type = RAFT_MSG_APPEND,
				    .from = 2,
				    .to = 1,
				    .term = 1,
				    .index = 0,
				    .log_term = 0,
				    .context = 1000};
	struct raft_restore rs = {.term = 5};
	const struct raft_msg *r;
	uint64_t round;
	raft_term t;

	committed_leader(&nd);
	t = raft_current_term(nd.r);
	ck_assert_int_eq(raft_read_index(nd.r, 78), RAFT_OK);
	ch_drain(&nd);
	round = last_round(&nd);
	a = ack(2, t, 1, round + 1000);
	ch_step(&nd, &a);
	ck_assert_uint_eq(nd.n_reads, 0);
	a = ack(2, t, 1, round);
	ch_step(&nd, &a);
	ck_assert_uint_eq(nd.n_reads, 1);
	ch_stop(&nd);

	ch_start(&f, 1, 3, NULL, &rs);
	ch_step(&f, &stale);
	r = ch_find(&f.now, RAFT_MSG_APPEND_RESP, 2);
	ck_assert_ptr_nonnull(r);
	ck_assert(r->reject);
	ck_assert_uint_eq(r->term, 5);
	ck_assert_uint_eq(r->context, 0);
	ch_stop(&f);
}
END_TEST

/* A new leader serves no read before it commits an entry of its term; the
 * read index is then at least that entry. */
START_TEST(test_read_waits_for_leader_to_commit_in_its_term)
{
	struct ch_node nd;
	struct raft_msg a;
	raft_term t;

	ch_start(&nd, 1, 3, NULL, NULL);
	ch_make_leader(&nd);
	t = raft_current_term(nd.r);
	ck_assert_int_eq(raft_read_index(nd.r, 5), RAFT_OK);
	ch_drain(&nd);
	/* Heartbeats answered, but nothing of this term committed. */
	ch_tick(&nd, 1);
	a = ack(2, t, 0, last_round(&nd));
	ch_step(&nd, &a);
	ck_assert_uint_eq(nd.n_reads, 0);
	/* The no-op commits; a fresh round starts for the read. */
	ch_persist(&nd);
	ch_clear(&nd);
	a = ack(2, t, 1, 0);
	ch_step(&nd, &a);
	ck_assert_uint_eq(nd.n_reads, 0);
	a = ack(2, t, 1, last_round(&nd));
	ch_step(&nd, &a);
	ck_assert_uint_eq(nd.n_reads, 1);
	ck_assert_uint_eq(nd.reads[0].index, 1);
	ch_stop(&nd);
}
END_TEST

/* A confirmed read is reported only once the state machine has applied
 * through its index. */
START_TEST(test_read_reported_only_after_applied)
{
	struct ch_node nd;
	struct raft_msg a;
	raft_index idx;
	raft_term t;

	committed_leader(&nd);
	t = raft_current_term(nd.r);
	nd.auto_apply = false;
	ck_assert_int_eq(raft_propose(nd.r, "w", 1, &idx, NULL), RAFT_OK);
	ch_drain(&nd);
	ch_persist(&nd);
	a = ack(2, t, idx, 0);
	ch_step(&nd, &a); /* commit 2, applied still 1 */
	ck_assert_int_eq(raft_read_index(nd.r, 9), RAFT_OK);
	ch_drain(&nd);
	a = ack(2, t, idx, last_round(&nd));
	ch_step(&nd, &a);
	ck_assert_uint_eq(nd.n_reads, 0);
	raft_applied(nd.r, idx);
	ch_drain(&nd);
	ck_assert_uint_eq(nd.n_reads, 1);
	ck_assert_uint_eq(nd.reads[0].index, idx);
	ch_stop(&nd);
}
END_TEST

/* Reads that arrive while a round is out share the next round: one
 * heartbeat round confirms many reads. */
START_TEST(test_reads_are_batched_into_one_round)
{
	struct ch_node nd;
	struct raft_msg a;
	size_t hb_before;
	raft_term t;

	committed_leader(&nd);
	t = raft_current_term(nd.r);
	ck_assert_int_eq(raft_read_index(nd.r, 1), RAFT_OK);
	ch_drain(&nd);
	hb_before = ch_count(&nd.now, RAFT_MSG_APPEND);
	for (uint64_t id = 2; id <= 50; id++) {
		ck_assert_int_eq(raft_read_index(nd.r, id), RAFT_OK);
	}
	ch_drain(&nd);
	/* No new round while the first is out. */
	ck_assert_uint_eq(ch_count(&nd.now, RAFT_MSG_APPEND), hb_before);
	a = ack(2, t, 1, last_round(&nd));
	ch_step(&nd, &a);
	ck_assert_uint_eq(nd.n_reads, 1);
	/* The first round's answer started one round for the other 49. */
	a = ack(3, t, 1, last_round(&nd));
	ch_step(&nd, &a);
	ck_assert_uint_eq(nd.n_reads, 50);
	ch_stop(&nd);
}
END_TEST

/* A follower forwards a read to its leader, which answers with the read
 * index once its round is confirmed; the follower reports it once it has
 * applied that far itself. */
START_TEST(test_follower_read_forwarded_and_waits_for_own_apply)
{
	struct ch_node l, f;
	struct raft_msg a, hb = {.type = RAFT_MSG_APPEND, .from = 1, .to = 2};
	const struct raft_msg *fwd, *resp;
	raft_term t;

	committed_leader(&l);
	t = raft_current_term(l.r);
	ch_start(&f, 2, 3, NULL, NULL);
	hb.term = t;
	ch_step(&f, &hb); /* f knows its leader; it holds nothing */
	ck_assert_int_eq(raft_read_index(f.r, 31), RAFT_OK);
	ch_drain(&f);
	fwd = ch_find(&f.now, RAFT_MSG_READ_INDEX, 1);
	ck_assert_ptr_nonnull(fwd);
	ch_step(&l, fwd);
	a = ack(3, t, 1, last_round(&l));
	ch_step(&l, &a);
	resp = ch_find(&l.now, RAFT_MSG_READ_INDEX_RESP, 2);
	ck_assert_ptr_nonnull(resp);
	ck_assert(!resp->reject);
	ck_assert_uint_eq(resp->index, 1);
	ch_step(&f, resp);
	ck_assert_uint_eq(f.n_reads, 0); /* f has not applied index 1 */

	/* f gets the no-op and the commit, persists and applies. */
	{
		struct raft_entry e = {
		    .term = t, .index = 1, .type = RAFT_ENTRY_NOOP};
		struct raft_msg app = {.type = RAFT_MSG_APPEND,
				       .from = 1,
				       .to = 2,
				       .term = t,
				       .entries = &e,
				       .n_entries = 1,
				       .commit = 1};
		ch_step(&f, &app);
		ch_persist(&f);
		ch_drain(&f);
	}
	ck_assert_uint_eq(f.n_reads, 1);
	ck_assert_uint_eq(f.reads[0].id, 31);
	ck_assert_int_eq(f.reads[0].status, RAFT_OK);
	ch_stop(&l);
	ch_stop(&f);
}
END_TEST

/* With no known leader a read fails at once with RAFT_ENOTLEADER. */
START_TEST(test_read_without_known_leader_fails_not_leader)
{
	struct ch_node nd;

	ch_start(&nd, 1, 3, NULL, NULL);
	ck_assert_int_eq(raft_read_index(nd.r, 1), RAFT_ENOTLEADER);
	ch_stop(&nd);
}
END_TEST

/* Reads waiting on a leader fail with RAFT_ELEADERLOST when it loses
 * leadership; a follower's forwarded read gets a rejection. */
START_TEST(test_reads_fail_when_leadership_lost)
{
	struct ch_node nd;
	struct raft_msg fwd = {
	    .type = RAFT_MSG_READ_INDEX, .from = 3, .to = 1, .context = 99};
	struct raft_msg hb = {.type = RAFT_MSG_APPEND, .from = 2, .to = 1};
	const struct raft_msg *resp;

	committed_leader(&nd);
	fwd.term = raft_current_term(nd.r);
	ck_assert_int_eq(raft_read_index(nd.r, 4), RAFT_OK);
	ch_step(&nd, &fwd);
	ch_clear(&nd);
	hb.term = raft_current_term(nd.r) + 1;
	ch_step(&nd, &hb);
	ck_assert_int_eq(raft_role(nd.r), RAFT_FOLLOWER);
	ck_assert_uint_eq(nd.n_reads, 1);
	ck_assert_uint_eq(nd.reads[0].id, 4);
	ck_assert_int_eq(nd.reads[0].status, RAFT_ELEADERLOST);
	resp = ch_find(&nd.now, RAFT_MSG_READ_INDEX_RESP, 3);
	ck_assert_ptr_nonnull(resp);
	ck_assert(resp->reject);
	ck_assert_uint_eq(resp->context, 99);
	ch_stop(&nd);
}
END_TEST

/* A forwarded read whose answer never comes fails after two election
 * timeouts instead of waiting forever. */
START_TEST(test_forwarded_read_without_answer_fails)
{
	struct ch_node f;
	struct raft_msg hb = {
	    .type = RAFT_MSG_APPEND, .from = 1, .to = 2, .term = 1};

	ch_start(&f, 2, 3, NULL, NULL);
	ch_step(&f, &hb);
	ck_assert_int_eq(raft_read_index(f.r, 8), RAFT_OK);
	for (int i = 0; i < 19; i++) {
		raft_step(f.r, &hb); /* keep the leader alive */
		ch_tick(&f, 1);
	}
	ck_assert_uint_eq(f.n_reads, 0);
	ch_tick(&f, 1);
	ck_assert_uint_eq(f.n_reads, 1);
	ck_assert_int_eq(f.reads[0].status, RAFT_ELEADERLOST);
	ch_stop(&f);
}
END_TEST

/* A node that is not the leader rejects a forwarded read. */
START_TEST(test_forwarded_read_rejected_by_non_leader)
{
	struct ch_node nd;
	struct raft_msg fwd = {.type = RAFT_MSG_READ_INDEX,
			       .from = 3,
			       .to = 1,
			       .term = 0,
			       .context = 5};
	const struct raft_msg *resp;

	ch_start(&nd, 1, 3, NULL, NULL);
	ch_step(&nd, &fwd);
	resp = ch_find(&nd.now, RAFT_MSG_READ_INDEX_RESP, 3);
	ck_assert_ptr_nonnull(resp);
	ck_assert(resp->reject);
	ch_stop(&nd);
}
END_TEST

/* A single-node leader confirms reads by itself. */
START_TEST(test_single_node_read_served_at_once)
{
	struct ch_node nd;

	ch_start(&nd, 1, 1, NULL, NULL);
	ch_tick_until_campaign(&nd);
	ch_persist(&nd);
	ch_drain(&nd);
	ck_assert_int_eq(raft_read_index(nd.r, 3), RAFT_OK);
	ch_drain(&nd);
	ck_assert_uint_eq(nd.n_reads, 1);
	ck_assert_uint_eq(nd.reads[0].index, 1);
	ch_stop(&nd);
}
END_TEST

/* In a cluster, reads on the leader and on followers all complete and see
 * every write committed before they started. */
START_TEST(test_cluster_reads_see_prior_writes)
{
	struct ch_cluster c;
	struct ch_node *l;
	raft_index w;

	ch_cluster_start(&c, 3, NULL);
	l = ch_node_of(&c, ch_cluster_elect(&c, 1));
	ck_assert_int_eq(raft_propose(l->r, "w", 1, &w, NULL), RAFT_OK);
	ch_cluster_settle(&c);
	for (size_t i = 0; i < 3; i++) {
		ck_assert_int_eq(raft_read_index(c.nodes[i].r, 100 + i),
				 RAFT_OK);
	}
	for (int i = 0; i < 3; i++) {
		ch_cluster_tick(&c);
	}
	for (size_t i = 0; i < 3; i++) {
		ck_assert_uint_eq(c.nodes[i].n_reads, 1);
		ck_assert_int_eq(c.nodes[i].reads[0].status, RAFT_OK);
		ck_assert_uint_ge(c.nodes[i].reads[0].index, w);
	}
	ch_cluster_stop(&c);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("core_read");
	TCase *tc = tcase_create("read");

	tcase_add_test(tc, test_read_index_waits_for_heartbeat_quorum);
	tcase_add_test(tc, test_answer_with_a_round_never_sent_confirms_no_read);
	tcase_add_test(tc, test_read_waits_for_leader_to_commit_in_its_term);
	tcase_add_test(tc, test_read_reported_only_after_applied);
	tcase_add_test(tc, test_reads_are_batched_into_one_round);
	tcase_add_test(tc,
		       test_follower_read_forwarded_and_waits_for_own_apply);
	tcase_add_test(tc, test_read_without_known_leader_fails_not_leader);
	tcase_add_test(tc, test_reads_fail_when_leadership_lost);
	tcase_add_test(tc, test_forwarded_read_without_answer_fails);
	tcase_add_test(tc, test_forwarded_read_rejected_by_non_leader);
	tcase_add_test(tc, test_single_node_read_served_at_once);
	tcase_add_test(tc, test_cluster_reads_see_prior_writes);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
