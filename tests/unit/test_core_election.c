/* Leader election in the core: timeouts, votes, PreVote, CheckQuorum. */
#include <check.h>
#include <stdlib.h>

#include "core_harness.h"

static struct raft_msg vote_req(int type, raft_id from, raft_id to,
				raft_term term, raft_index idx, raft_term lt)
{
	struct raft_msg m = {.type = type,
			     .from = from,
			     .to = to,
			     .term = term,
			     .index = idx,
			     .log_term = lt};
	return m;
}

/* A heartbeat from leader `from` in term. */
static struct raft_msg heartbeat(raft_id from, raft_id to, raft_term term)
{
	struct raft_msg m = {
	    .type = RAFT_MSG_APPEND, .from = from, .to = to, .term = term};
	return m;
}

/* Election timeouts are random in [election_ticks, 2 * election_ticks). */
START_TEST(test_election_timeout_is_randomized_in_range)
{
	struct raft_config cfg;
	raft_id peers[3];
	bool seen[20] = {false};
	size_t distinct = 0;

	for (uint64_t seed = 1; seed <= 200; seed++) {
		struct ch_node nd;
		unsigned t = 0;

		ch_config(&cfg, peers, 1, 3);
		cfg.seed = seed;
		ch_start(&nd, 1, 3, &cfg, NULL);
		while (raft_role(nd.r) == RAFT_FOLLOWER && t < 100) {
			ch_tick(&nd, 1);
			t++;
		}
		ck_assert_uint_ge(t, 10);
		ck_assert_uint_lt(t, 20);
		if (!seen[t]) {
			seen[t] = true;
			distinct++;
		}
		ch_stop(&nd);
	}
	ck_assert_uint_ge(distinct, 5);
}
END_TEST

/* A node grants at most one vote per term (Figure 2, RequestVote). */
START_TEST(test_vote_granted_at_most_once_per_term)
{
	struct ch_node nd;
	struct raft_msg m;
	const struct raft_msg *resp;

	ch_start(&nd, 1, 3, NULL, NULL);
	m = vote_req(RAFT_MSG_VOTE, 2, 1, 1, 0, 0);
	ch_step(&nd, &m);
	resp = ch_find(&nd.after, RAFT_MSG_VOTE_RESP, 2);
	ck_assert_ptr_nonnull(resp);
	ck_assert(!resp->reject);

	m = vote_req(RAFT_MSG_VOTE, 3, 1, 1, 0, 0);
	ch_step(&nd, &m);
	resp = ch_find(&nd.after, RAFT_MSG_VOTE_RESP, 3);
	ck_assert_ptr_nonnull(resp);
	ck_assert(resp->reject);

	/* Asking again is answered the same way (a lost reply). */
	m = vote_req(RAFT_MSG_VOTE, 2, 1, 1, 0, 0);
	ch_clear(&nd);
	ch_step(&nd, &m);
	resp = ch_find(&nd.after, RAFT_MSG_VOTE_RESP, 2);
	ck_assert_ptr_nonnull(resp);
	ck_assert(!resp->reject);
	ch_stop(&nd);
}
END_TEST

/* A vote is refused to a candidate whose log is less up to date (5.4.1). */
START_TEST(test_vote_refused_to_candidate_with_stale_log)
{
	struct raft_entry e[2] = {
	    {.term = 1, .index = 1, .type = RAFT_ENTRY_NOOP},
	    {.term = 2, .index = 2, .type = RAFT_ENTRY_NOOP}};
	struct raft_restore rs = {.term = 2, .entries = e, .n_entries = 2};
	struct ch_node nd;
	struct raft_msg m;

	ch_start(&nd, 1, 3, NULL, &rs);
	/* Longer log but older last term. */
	m = vote_req(RAFT_MSG_VOTE, 2, 1, 3, 5, 1);
	ch_step(&nd, &m);
	ck_assert(ch_find(&nd.after, RAFT_MSG_VOTE_RESP, 2)->reject);
	/* Same last term, shorter log. */
	m = vote_req(RAFT_MSG_VOTE, 3, 1, 3, 1, 2);
	ch_step(&nd, &m);
	ck_assert(ch_find(&nd.after, RAFT_MSG_VOTE_RESP, 3)->reject);
	ck_assert_uint_eq(raft_current_term(nd.r), 3);
	ch_stop(&nd);
}
END_TEST

/* A granted vote leaves only in msgs_after_persist, in the same update as
 * the hard state recording it. */
START_TEST(test_vote_reply_waits_for_persist)
{
	struct ch_node nd;
	struct raft_msg m = vote_req(RAFT_MSG_VOTE, 2, 1, 5, 0, 0);
	struct raft_update u;

	ch_start(&nd, 1, 3, NULL, NULL);
	ck_assert_int_eq(raft_step(nd.r, &m), RAFT_OK);
	raft_get_update(nd.r, &u);
	ck_assert(u.hard_state_changed);
	ck_assert_uint_eq(u.term, 5);
	ck_assert_uint_eq(u.vote, 2);
	ck_assert_uint_eq(u.n_msgs, 0);
	ck_assert_uint_eq(u.n_msgs_after_persist, 1);
	ck_assert_int_eq(u.msgs_after_persist[0].type, RAFT_MSG_VOTE_RESP);
	ck_assert(!u.msgs_after_persist[0].reject);
	raft_advance(nd.r, &u);
	ch_stop(&nd);
}
END_TEST

/* A candidate asks for votes only once its new term and self-vote are
 * durable, so a crash cannot make it forget a vote it counted. */
START_TEST(test_candidate_requests_votes_after_persist)
{
	struct raft_config cfg;
	raft_id peers[3];
	struct ch_node nd;

	ch_config(&cfg, peers, 1, 3);
	cfg.pre_vote = false;
	ch_start(&nd, 1, 3, &cfg, NULL);
	ch_tick_until_campaign(&nd);
	ck_assert_int_eq(raft_role(nd.r), RAFT_CANDIDATE);
	ck_assert_uint_eq(nd.hs_term, 1);
	ck_assert_uint_eq(nd.hs_vote, 1);
	ck_assert_uint_eq(ch_count(&nd.now, RAFT_MSG_VOTE), 0);
	ck_assert_uint_eq(ch_count(&nd.after, RAFT_MSG_VOTE), 2);
	ch_stop(&nd);
}
END_TEST

/* A pre-candidate asks with term + 1 but keeps its term and vote, and a
 * node granting a PreVote changes neither (dissertation 9.6). */
START_TEST(test_prevote_does_not_change_term)
{
	struct ch_node a, b;
	const struct raft_msg *pv, *resp;

	ch_start(&a, 1, 3, NULL, NULL);
	ch_start(&b, 2, 3, NULL, NULL);
	ch_tick_until_campaign(&a);
	ck_assert_int_eq(raft_role(a.r), RAFT_PRECANDIDATE);
	ck_assert_uint_eq(raft_current_term(a.r), 0);
	ck_assert_uint_eq(a.n_hard_states, 0);
	pv = ch_find(&a.now, RAFT_MSG_PREVOTE, 2);
	ck_assert_ptr_nonnull(pv);
	ck_assert_uint_eq(pv->term, 1);

	ch_step(&b, pv);
	resp = ch_find(&b.now, RAFT_MSG_PREVOTE_RESP, 1);
	ck_assert_ptr_nonnull(resp);
	ck_assert(!resp->reject);
	ck_assert_uint_eq(resp->term, 1);
	ck_assert_uint_eq(raft_current_term(b.r), 0);
	ck_assert_uint_eq(b.n_hard_states, 0);

	/* One grant plus its own makes a quorum of 3: now a candidate. */
	ch_step(&a, resp);
	ck_assert_int_eq(raft_role(a.r), RAFT_CANDIDATE);
	ck_assert_uint_eq(raft_current_term(a.r), 1);
	ch_stop(&a);
	ch_stop(&b);
}
END_TEST

/* Without CheckQuorum, a node that heard from its leader within an election
 * timeout refuses a PreVote (dissertation 9.6). */
START_TEST(test_prevote_refused_while_leader_is_heard)
{
	struct raft_config cfg;
	raft_id peers[3];
	struct ch_node nd;
	struct raft_msg hb = heartbeat(2, 1, 1);
	struct raft_msg pv = vote_req(RAFT_MSG_PREVOTE, 3, 1, 2, 0, 0);
	const struct raft_msg *resp;

	ch_config(&cfg, peers, 1, 3);
	cfg.check_quorum = false;
	ch_start(&nd, 1, 3, &cfg, NULL);
	ch_step(&nd, &hb);
	ch_step(&nd, &pv);
	resp = ch_find(&nd.now, RAFT_MSG_PREVOTE_RESP, 3);
	ck_assert_ptr_nonnull(resp);
	ck_assert(resp->reject);

	/* After an election timeout of silence it grants. */
	ch_clear(&nd);
	ch_tick(&nd, cfg.election_ticks);
	ch_step(&nd, &pv);
	resp = ch_find(&nd.now, RAFT_MSG_PREVOTE_RESP, 3);
	ck_assert_ptr_nonnull(resp);
	ck_assert(!resp->reject);
	ck_assert_uint_eq(raft_current_term(nd.r), 1);
	ch_stop(&nd);
}
END_TEST

/* A PreVote from a candidate with a less up-to-date log is refused. */
START_TEST(test_prevote_refused_for_stale_log)
{
	struct raft_entry e = {.term = 2, .index = 1, .type = RAFT_ENTRY_NOOP};
	struct raft_restore rs = {.term = 2, .entries = &e, .n_entries = 1};
	struct ch_node nd;
	struct raft_msg pv = vote_req(RAFT_MSG_PREVOTE, 3, 1, 3, 1, 1);

	ch_start(&nd, 1, 3, NULL, &rs);
	ch_step(&nd, &pv);
	ck_assert(ch_find(&nd.now, RAFT_MSG_PREVOTE_RESP, 3)->reject);
	ch_stop(&nd);
}
END_TEST

/* With CheckQuorum, a follower that heard from its leader recently ignores
 * VOTE and PREVOTE of a higher term: no reply, no term change (leader
 * stickiness, dissertation 9.6). */
START_TEST(test_vote_requests_ignored_while_leader_is_heard)
{
	struct ch_node nd;
	struct raft_msg hb = heartbeat(2, 1, 1);
	struct raft_msg v = vote_req(RAFT_MSG_VOTE, 3, 1, 2, 10, 1);
	struct raft_msg pv = vote_req(RAFT_MSG_PREVOTE, 3, 1, 2, 10, 1);

	ch_start(&nd, 1, 3, NULL, NULL);
	ch_step(&nd, &hb);
	ch_clear(&nd);
	ch_step(&nd, &v);
	ch_step(&nd, &pv);
	ck_assert_uint_eq(nd.now.n + nd.after.n, 0);
	ck_assert_uint_eq(raft_current_term(nd.r), 1);
	ck_assert_uint_eq(raft_leader(nd.r), 2);
	ch_stop(&nd);
}
END_TEST

/* A candidate with a quorum of votes becomes leader and appends a no-op of
 * its term. */
START_TEST(test_candidate_becomes_leader_and_appends_noop)
{
	struct ch_node nd;
	struct raft_status s;
	const struct raft_msg *app;

	ch_start(&nd, 1, 3, NULL, NULL);
	ch_make_leader(&nd);
	raft_get_status(nd.r, &s);
	ck_assert_uint_eq(s.last_index, 1);
	ck_assert_uint_eq(s.last_term, s.term);
	ck_assert_uint_eq(nd.written, 1);
	ck_assert_uint_eq(raft_leader(nd.r), 1);
	/* The no-op goes out at once. */
	ch_tick(&nd, 1);
	app = ch_find(&nd.now, RAFT_MSG_APPEND, 2);
	ck_assert_ptr_nonnull(app);
	ch_stop(&nd);
}
END_TEST

/* A candidate refused by a quorum goes back to being a follower. */
START_TEST(test_candidate_steps_down_on_rejection_quorum)
{
	struct raft_config cfg;
	raft_id peers[3];
	struct ch_node nd;
	struct raft_msg r2 = {.type = RAFT_MSG_VOTE_RESP,
			      .from = 2,
			      .to = 1,
			      .term = 1,
			      .reject = true};
	struct raft_msg r3 = r2;

	r3.from = 3;
	ch_config(&cfg, peers, 1, 3);
	cfg.pre_vote = false;
	ch_start(&nd, 1, 3, &cfg, NULL);
	ch_tick_until_campaign(&nd);
	ch_step(&nd, &r2);
	ck_assert_int_eq(raft_role(nd.r), RAFT_CANDIDATE);
	ch_step(&nd, &r3);
	ck_assert_int_eq(raft_role(nd.r), RAFT_FOLLOWER);
	ck_assert_uint_eq(raft_current_term(nd.r), 1);
	ch_stop(&nd);
}
END_TEST

/* With CheckQuorum, a leader that hears from no quorum within an election
 * timeout steps down (dissertation 6.2). */
START_TEST(test_check_quorum_leader_steps_down)
{
	struct ch_node nd;

	ch_start(&nd, 1, 3, NULL, NULL);
	ch_make_leader(&nd);
	ch_tick(&nd, 10);
	ck_assert_int_eq(raft_role(nd.r), RAFT_FOLLOWER);
	ck_assert_uint_eq(raft_leader(nd.r), 0);
	ch_stop(&nd);
}
END_TEST

/* A leader that hears from a quorum keeps leading. */
START_TEST(test_check_quorum_leader_stays_with_quorum)
{
	struct ch_node nd;

	ch_start(&nd, 1, 3, NULL, NULL);
	ch_make_leader(&nd);
	for (int i = 0; i < 30; i++) {
		struct raft_msg ack = {.type = RAFT_MSG_APPEND_RESP,
				       .from = 2,
				       .to = 1,
				       .term = raft_current_term(nd.r)};
		ch_tick(&nd, 1);
		ch_step(&nd, &ack);
	}
	ck_assert_int_eq(raft_role(nd.r), RAFT_LEADER);
	ch_stop(&nd);
}
END_TEST

/* Any message with a higher term makes a leader a follower of that term
 * (Figure 2, All Servers). */
START_TEST(test_higher_term_makes_leader_follower)
{
	struct ch_node nd;
	struct raft_msg hb;

	ch_start(&nd, 1, 3, NULL, NULL);
	ch_make_leader(&nd);
	hb = heartbeat(2, 1, raft_current_term(nd.r) + 1);
	ch_step(&nd, &hb);
	ck_assert_int_eq(raft_role(nd.r), RAFT_FOLLOWER);
	ck_assert_uint_eq(raft_leader(nd.r), 2);
	ck_assert_uint_eq(raft_current_term(nd.r), hb.term);
	ch_stop(&nd);
}
END_TEST

/* An APPEND from an older term is answered with the newer term, so the
 * stale leader steps down. */
START_TEST(test_stale_append_answered_with_newer_term)
{
	struct ch_node nd;
	struct raft_msg hb = heartbeat(2, 1, 3);
	const struct raft_msg *resp;

	ch_start(&nd, 1, 3, NULL, NULL);
	ch_step(&nd, &hb);
	hb = heartbeat(3, 1, 2);
	ch_clear(&nd);
	ch_step(&nd, &hb);
	resp = ch_find(&nd.now, RAFT_MSG_APPEND_RESP, 3);
	ck_assert_ptr_nonnull(resp);
	ck_assert_uint_eq(resp->term, 3);
	ck_assert(resp->reject);
	ch_stop(&nd);
}
END_TEST

/* Clusters of 3 and 5 elect exactly one leader, which everyone follows. */
START_TEST(test_cluster_elects_one_leader)
{
	struct ch_cluster c;
	size_t n = _i == 0 ? 3 : 5;
	raft_id lead = 0;

	ch_cluster_start(&c, n, NULL);
	for (int i = 0; i < 200 && lead == 0; i++) {
		ch_cluster_tick(&c);
		lead = ch_cluster_leader(&c);
	}
	ck_assert_uint_ne(lead, 0);
	for (int i = 0; i < 20; i++) {
		ch_cluster_tick(&c);
	}
	for (size_t i = 0; i < n; i++) {
		struct raft *r = c.nodes[i].r;
		ck_assert_uint_eq(raft_leader(r), lead);
		ck_assert_int_eq(raft_role(r) == RAFT_LEADER,
				 c.nodes[i].id == lead);
	}
	ch_cluster_stop(&c);
}
END_TEST

/* When the leader dies, the others elect a new one in a higher term. */
START_TEST(test_cluster_replaces_dead_leader)
{
	struct ch_cluster c;
	raft_id lead, next = 0;
	raft_term t;

	ch_cluster_start(&c, 3, NULL);
	lead = ch_cluster_elect(&c, 1);
	t = raft_current_term(c.nodes[0].r);
	c.down[lead] = true;
	for (int i = 0; i < 200 && next == 0; i++) {
		ch_cluster_tick(&c);
		next = ch_cluster_leader(&c);
	}
	ck_assert_uint_ne(next, 0);
	ck_assert_uint_ne(next, lead);
	ck_assert_uint_gt(raft_current_term(ch_node_of(&c, next)->r), t);
	ch_cluster_stop(&c);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("core_election");
	TCase *tc = tcase_create("election");

	tcase_add_test(tc, test_election_timeout_is_randomized_in_range);
	tcase_add_test(tc, test_vote_granted_at_most_once_per_term);
	tcase_add_test(tc, test_vote_refused_to_candidate_with_stale_log);
	tcase_add_test(tc, test_vote_reply_waits_for_persist);
	tcase_add_test(tc, test_candidate_requests_votes_after_persist);
	tcase_add_test(tc, test_prevote_does_not_change_term);
	tcase_add_test(tc, test_prevote_refused_while_leader_is_heard);
	tcase_add_test(tc, test_prevote_refused_for_stale_log);
	tcase_add_test(tc, test_vote_requests_ignored_while_leader_is_heard);
	tcase_add_test(tc, test_candidate_becomes_leader_and_appends_noop);
	tcase_add_test(tc, test_candidate_steps_down_on_rejection_quorum);
	tcase_add_test(tc, test_check_quorum_leader_steps_down);
	tcase_add_test(tc, test_check_quorum_leader_stays_with_quorum);
	tcase_add_test(tc, test_higher_term_makes_leader_follower);
	tcase_add_test(tc, test_stale_append_answered_with_newer_term);
	tcase_add_loop_test(tc, test_cluster_elects_one_leader, 0, 2);
	tcase_add_test(tc, test_cluster_replaces_dead_leader);
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
