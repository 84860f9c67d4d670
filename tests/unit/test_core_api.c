/* The core's public calls: configuration, restart, bad input, updates. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core_harness.h"

static int try_new(const struct raft_config *cfg, const struct raft_restore *rs,
		   char *err, size_t len)
{
	struct raft *r = NULL;
	int rc = raft_new(cfg, rs, &r, err, len);

	raft_free(r);
	return rc;
}

/* raft_config_init() fills the documented defaults. */
START_TEST(test_config_defaults_are_documented_values)
{
	struct raft_config c;

	raft_config_init(&c);
	ck_assert_uint_eq(c.election_ticks, 10);
	ck_assert_uint_eq(c.heartbeat_ticks, 1);
	ck_assert(c.pre_vote);
	ck_assert(c.check_quorum);
	ck_assert_uint_eq(c.max_inflight_msgs, 64);
	ck_assert_uint_eq(c.max_inflight_bytes, 8u << 20);
	ck_assert_uint_eq(c.max_msg_entries, 1024);
	ck_assert_uint_eq(c.max_msg_bytes, 1u << 20);
}
END_TEST

/* Every bad configuration is refused with RAFT_EINVAL and a message. */
START_TEST(test_new_rejects_bad_config)
{
	struct raft_config c;
	raft_id peers[RAFT_MAX_PEERS + 1];
	char err[128];

	for (int i = 0; i < 8; i++) {
		ch_config(&c, peers, 1, 3);
		switch (i) {
		case 0:
			c.id = 4;
			break;
		case 1:
			c.n_peers = 0;
			break;
		case 2:
			c.n_peers = RAFT_MAX_PEERS + 1;
			break;
		case 3:
			peers[2] = 2;
			break;
		case 4:
			c.heartbeat_ticks = c.election_ticks;
			break;
		case 5:
			c.max_inflight_msgs = 0;
			break;
		case 6:
			peers[1] = 0;
			break;
		case 7:
			c.max_msg_bytes = 0;
			break;
		}
		err[0] = 0;
		ck_assert_int_eq(try_new(&c, NULL, err, sizeof(err)),
				 RAFT_EINVAL);
		ck_assert_msg(strlen(err) > 0, "case %d has no message", i);
	}
}
END_TEST

/* A stored log with a gap, decreasing terms or terms above the stored term
 * is refused. */
START_TEST(test_new_rejects_bad_restore)
{
	struct raft_config c;
	raft_id peers[3];
	struct raft_entry e[2] = {
	    {.term = 1, .index = 1, .type = RAFT_ENTRY_NOOP},
	    {.term = 1, .index = 3, .type = RAFT_ENTRY_NOOP}};
	struct raft_restore rs = {.term = 1, .entries = e, .n_entries = 2};
	char err[128];

	ch_config(&c, peers, 1, 3);
	ck_assert_int_eq(try_new(&c, &rs, err, sizeof(err)), RAFT_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "gap"));
	e[1].index = 2;
	e[0].term = 2;
	rs.term = 2;
	ck_assert_int_eq(try_new(&c, &rs, err, sizeof(err)), RAFT_EINVAL);
	e[0].term = 1;
	rs.term = 0;
	ck_assert_int_eq(try_new(&c, &rs, err, sizeof(err)), RAFT_EINVAL);
	rs.term = 1;
	rs.applied = 3;
	ck_assert_int_eq(try_new(&c, &rs, err, sizeof(err)), RAFT_EINVAL);
	rs.applied = 2;
	rs.vote = 9;
	ck_assert_int_eq(try_new(&c, &rs, err, sizeof(err)), RAFT_EINVAL);
	rs.vote = 2;
	ck_assert_int_eq(try_new(&c, &rs, err, sizeof(err)), RAFT_OK);
}
END_TEST

/* A restarted core has the stored term, vote and log, treats its log as
 * durable, and does not hand out already-applied entries again. */
START_TEST(test_restart_restores_state)
{
	struct raft_entry e[3] = {
	    {.term = 1, .index = 1, .type = RAFT_ENTRY_NOOP},
	    {.term = 2,
	     .index = 2,
	     .type = RAFT_ENTRY_COMMAND,
	     .data = "ab",
	     .len = 2},
	    {.term = 2,
	     .index = 3,
	     .type = RAFT_ENTRY_COMMAND,
	     .data = "c",
	     .len = 1}};
	struct raft_restore rs = {
	    .term = 3, .vote = 2, .entries = e, .n_entries = 3, .applied = 2};
	struct ch_node nd;
	struct raft_status s;

	ch_start(&nd, 1, 3, NULL, &rs);
	raft_get_status(nd.r, &s);
	ck_assert_uint_eq(s.term, 3);
	ck_assert_uint_eq(s.vote, 2);
	ck_assert_uint_eq(s.last_index, 3);
	ck_assert_uint_eq(s.last_term, 2);
	ck_assert_uint_eq(s.persisted, 3);
	ck_assert_uint_eq(s.commit, 2);
	ck_assert_uint_eq(s.applied, 2);
	ck_assert(!raft_has_update(nd.r));
	/* The vote of term 3 still holds. */
	{
		struct raft_msg v = {.type = RAFT_MSG_VOTE,
				     .from = 3,
				     .to = 1,
				     .term = 3,
				     .index = 3,
				     .log_term = 2};
		ch_step(&nd, &v);
		ck_assert(ch_find(&nd.after, RAFT_MSG_VOTE_RESP, 3)->reject);
	}
	ch_stop(&nd);
}
END_TEST

/* A malformed message is refused with RAFT_EPROTO and changes nothing. */
START_TEST(test_step_refuses_malformed_message)
{
	struct ch_node nd;
	struct raft_entry e = {.term = 1, .index = 5, .type = RAFT_ENTRY_NOOP};
	struct raft_msg m = {.type = RAFT_MSG_APPEND,
			     .from = 2,
			     .to = 1,
			     .term = 1,
			     .index = 0,
			     .entries = &e,
			     .n_entries = 1};
	struct raft_status s;

	ch_start(&nd, 1, 3, NULL, NULL);
	ck_assert_int_eq(raft_step(nd.r, &m), RAFT_EPROTO);
	m.n_entries = 0;
	m.type = 42;
	ck_assert_int_eq(raft_step(nd.r, &m), RAFT_EPROTO);
	e.index = 1;
	e.term = 2; /* above the message's term */
	m.type = RAFT_MSG_APPEND;
	m.n_entries = 1;
	ck_assert_int_eq(raft_step(nd.r, &m), RAFT_EPROTO);
	ck_assert_int_eq(raft_step(nd.r, NULL), RAFT_EINVAL);
	raft_get_status(nd.r, &s);
	ck_assert_uint_eq(s.term, 0);
	ck_assert_uint_eq(s.last_index, 0);
	ch_stop(&nd);
}
END_TEST

/* Messages from ids outside the configuration are dropped. */
START_TEST(test_messages_from_unknown_ids_are_dropped)
{
	struct ch_node nd;
	struct raft_msg m = {
	    .type = RAFT_MSG_VOTE, .from = 7, .to = 1, .term = 4};

	ch_start(&nd, 1, 3, NULL, NULL);
	ck_assert_int_eq(raft_step(nd.r, &m), RAFT_OK);
	ck_assert_uint_eq(raft_current_term(nd.r), 0);
	ck_assert(!raft_has_update(nd.r));
	ch_stop(&nd);
}
END_TEST

/* raft_get_update() twice without raft_advance() returns the same work;
 * after raft_advance() the work is gone. */
START_TEST(test_get_update_twice_returns_same_work)
{
	struct ch_node nd;
	struct raft_msg v = {
	    .type = RAFT_MSG_VOTE, .from = 2, .to = 1, .term = 1};
	struct raft_update u1, u2;

	ch_start(&nd, 1, 3, NULL, NULL);
	ck_assert_int_eq(raft_step(nd.r, &v), RAFT_OK);
	ck_assert(raft_has_update(nd.r));
	raft_get_update(nd.r, &u1);
	raft_get_update(nd.r, &u2);
	ck_assert_int_eq(memcmp(&u1, &u2, sizeof(u1)), 0);
	raft_advance(nd.r, &u2);
	ck_assert(!raft_has_update(nd.r));
	ch_stop(&nd);
}
END_TEST

/* Work that arrives between raft_get_update() and raft_advance() is kept
 * for the next update. */
START_TEST(test_work_arriving_before_advance_is_kept)
{
	struct ch_node nd;
	struct raft_msg v2 = {
	    .type = RAFT_MSG_VOTE, .from = 2, .to = 1, .term = 1};
	struct raft_msg v3 = {
	    .type = RAFT_MSG_VOTE, .from = 3, .to = 1, .term = 1};
	struct raft_update u;

	ch_start(&nd, 1, 3, NULL, NULL);
	raft_step(nd.r, &v2);
	raft_get_update(nd.r, &u);
	ck_assert_uint_eq(u.n_msgs_after_persist, 1);
	raft_step(nd.r, &v3);
	raft_advance(nd.r, &u);
	ck_assert(raft_has_update(nd.r));
	raft_get_update(nd.r, &u);
	ck_assert_uint_eq(u.n_msgs_after_persist, 1);
	ck_assert_uint_eq(u.msgs_after_persist[0].to, 3);
	ck_assert(!u.hard_state_changed);
	raft_advance(nd.r, &u);
	ch_stop(&nd);
}
END_TEST

/* A log cut while an update is out leaves the update's entries and
 * payloads readable until raft_advance(), and the replacing entries are
 * handed out next. */
START_TEST(test_cut_while_update_out_keeps_update_valid)
{
	struct raft_entry old[3] = {{.term = 1,
				     .index = 1,
				     .type = RAFT_ENTRY_COMMAND,
				     .data = "aa",
				     .len = 2},
				    {.term = 1,
				     .index = 2,
				     .type = RAFT_ENTRY_COMMAND,
				     .data = "bb",
				     .len = 2},
				    {.term = 1,
				     .index = 3,
				     .type = RAFT_ENTRY_COMMAND,
				     .data = "cc",
				     .len = 2}};
	struct raft_entry repl = {.term = 2,
				  .index = 2,
				  .type = RAFT_ENTRY_COMMAND,
				  .data = "zz",
				  .len = 2};
	struct raft_msg m1 = {.type = RAFT_MSG_APPEND,
			      .from = 2,
			      .to = 1,
			      .term = 1,
			      .entries = old,
			      .n_entries = 3};
	struct raft_msg m2 = {.type = RAFT_MSG_APPEND,
			      .from = 3,
			      .to = 1,
			      .term = 2,
			      .index = 1,
			      .log_term = 1,
			      .entries = &repl,
			      .n_entries = 1};
	struct ch_node nd;
	struct raft_update u;

	ch_start(&nd, 1, 3, NULL, NULL);
	ck_assert_int_eq(raft_step(nd.r, &m1), RAFT_OK);
	raft_get_update(nd.r, &u);
	ck_assert_uint_eq(u.n_entries, 3);
	ck_assert_int_eq(raft_step(nd.r, &m2), RAFT_OK);
	/* The update still shows what it showed. */
	ck_assert_uint_eq(u.entries[1].term, 1);
	ck_assert_mem_eq(u.entries[1].data, "bb", 2);
	ck_assert_mem_eq(u.entries[2].data, "cc", 2);
	raft_advance(nd.r, &u);
	raft_get_update(nd.r, &u);
	ck_assert_uint_ge(u.n_entries, 1);
	ck_assert_uint_le(u.entries[0].index, 2);
	ck_assert_uint_eq(u.entries[u.n_entries - 1].index, 2);
	ck_assert_uint_eq(u.entries[u.n_entries - 1].term, 2);
	ck_assert_mem_eq(u.entries[u.n_entries - 1].data, "zz", 2);
	raft_advance(nd.r, &u);
	ch_stop(&nd);
}
END_TEST

/* Status reports role, term and per-peer progress on the leader. */
START_TEST(test_status_reports_progress)
{
	struct ch_node nd;
	struct raft_status s;
	struct raft_msg a = {
	    .type = RAFT_MSG_APPEND_RESP, .from = 2, .to = 1, .index = 1};

	ch_start(&nd, 1, 3, NULL, NULL);
	ch_make_leader(&nd);
	a.term = raft_current_term(nd.r);
	ch_step(&nd, &a);
	raft_get_status(nd.r, &s);
	ck_assert_int_eq(s.role, RAFT_LEADER);
	ck_assert_uint_eq(s.n_peers, 3);
	ck_assert_uint_eq(s.peers[1].id, 2);
	ck_assert_uint_eq(s.peers[1].match, 1);
	ck_assert_uint_eq(s.peers[1].next, 2);
	ck_assert_int_eq(s.peers[1].state, 1);
	ck_assert_int_eq(s.peers[2].state, 0);
	ck_assert_str_eq(raft_role_name(s.role), "leader");
	ch_stop(&nd);
}
END_TEST

/* A soft-state change (role, leader) is flagged in the update. */
START_TEST(test_role_change_is_reported)
{
	struct ch_node nd;
	struct raft_msg hb = {
	    .type = RAFT_MSG_APPEND, .from = 2, .to = 1, .term = 1};
	struct raft_update u;

	ch_start(&nd, 1, 3, NULL, NULL);
	raft_step(nd.r, &hb);
	raft_get_update(nd.r, &u);
	ck_assert(u.soft_state_changed);
	ck_assert_uint_eq(u.leader, 2);
	ck_assert_int_eq(u.role, RAFT_FOLLOWER);
	raft_advance(nd.r, &u);
	raft_step(nd.r, &hb);
	raft_get_update(nd.r, &u);
	ck_assert(!u.soft_state_changed);
	raft_advance(nd.r, &u);
	ch_stop(&nd);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("core_api");
	TCase *tc = tcase_create("api");

	tcase_add_test(tc, test_config_defaults_are_documented_values);
	tcase_add_test(tc, test_new_rejects_bad_config);
	tcase_add_test(tc, test_new_rejects_bad_restore);
	tcase_add_test(tc, test_restart_restores_state);
	tcase_add_test(tc, test_step_refuses_malformed_message);
	tcase_add_test(tc, test_messages_from_unknown_ids_are_dropped);
	tcase_add_test(tc, test_get_update_twice_returns_same_work);
	tcase_add_test(tc, test_work_arriving_before_advance_is_kept);
	tcase_add_test(tc, test_cut_while_update_out_keeps_update_valid);
	tcase_add_test(tc, test_status_reports_progress);
	tcase_add_test(tc, test_role_change_is_reported);
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
