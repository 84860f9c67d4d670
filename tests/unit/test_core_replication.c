/* Log replication and commitment in the core. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_harness.h"

static struct raft_msg ack(raft_id from, raft_term term, raft_index index)
{
	struct raft_msg m = {.type = RAFT_MSG_APPEND_RESP,
			     .from = from,
			     .to = 1,
			     .term = term,
			     .index = index};
	return m;
}

static void propose(struct ch_node *nd, const char *s)
{
	ck_assert_int_eq(raft_propose(nd->r, s, strlen(s), NULL, NULL),
			 RAFT_OK);
}

static size_t appends_to(const struct ch_msgs *l, raft_id to, size_t *entries)
{
	size_t n = 0;

	*entries = 0;
	for (size_t i = 0; i < l->n; i++) {
		if (l->v[i].type == RAFT_MSG_APPEND && l->v[i].to == to) {
			n++;
			*entries += l->v[i].n_entries;
		}
	}
	return n;
}

/* A log of the given terms, one entry each, for raft_restore. */
static struct raft_entry *mklog(const raft_term *terms, size_t n)
{
	struct raft_entry *e = calloc(n, sizeof(*e));

	for (size_t i = 0; i < n; i++) {
		e[i].term = terms[i];
		e[i].index = i + 1;
		e[i].type = RAFT_ENTRY_NOOP;
	}
	return e;
}

/* The leader hands out APPENDs with new entries in msgs, in the same update
 * as the entries to persist: replication does not wait for its own disk. */
START_TEST(test_leader_sends_appends_before_own_persist)
{
	struct ch_node nd;
	struct raft_update u;
	struct raft_msg a;
	bool seen = false;

	ch_start(&nd, 1, 3, NULL, NULL);
	ch_make_leader(&nd);
	a = ack(2, raft_current_term(nd.r), 1);
	ch_step(&nd, &a); /* the probe was answered: replicate */
	propose(&nd, "x");
	raft_get_update(nd.r, &u);
	ck_assert_uint_ge(u.n_entries, 1);
	for (size_t i = 0; i < u.n_msgs; i++) {
		if (u.msgs[i].type == RAFT_MSG_APPEND &&
		    u.msgs[i].n_entries > 0) {
			const struct raft_entry *e =
			    &u.msgs[i].entries[u.msgs[i].n_entries - 1];
			ck_assert_uint_eq(e->len, 1);
			ck_assert_mem_eq(e->data, "x", 1);
			seen = true;
		}
	}
	ck_assert(seen);
	raft_advance(nd.r, &u);
	ch_stop(&nd);
}
END_TEST

/* The leader counts itself toward a quorum only for entries acknowledged
 * through raft_persisted(). */
START_TEST(test_leader_counts_itself_only_after_persisted)
{
	struct ch_node nd;
	struct raft_msg a;
	struct raft_status s;
	raft_term t;

	ch_start(&nd, 1, 3, NULL, NULL);
	ch_make_leader(&nd);
	t = raft_current_term(nd.r);
	/* ch_make_leader persisted the term only; the no-op is at 1. */
	a = ack(2, t, 1);
	ch_step(&nd, &a);
	raft_get_status(nd.r, &s);
	ck_assert_uint_eq(s.commit, 0);
	ch_persist(&nd);
	ch_drain(&nd);
	raft_get_status(nd.r, &s);
	ck_assert_uint_eq(s.commit, 1);
	ck_assert_uint_eq(nd.n_committed, 1);
	ch_stop(&nd);
}
END_TEST

/* Entries of older terms are never committed by counting replicas; an
 * entry of the current term commits them with it (Figure 8). */
START_TEST(test_leader_commits_only_current_term_entries_by_counting)
{
	raft_term terms[] = {1, 2};
	struct raft_entry *e = mklog(terms, 2);
	struct raft_restore rs = {.term = 2, .entries = e, .n_entries = 2};
	struct ch_node nd;
	struct raft_msg a;
	struct raft_status s;
	raft_term t;

	ch_start(&nd, 1, 5, NULL, &rs);
	free(e);
	ch_make_leader(&nd);
	t = raft_current_term(nd.r);
	ck_assert_uint_eq(t, 3);
	ch_persist(&nd);
	/* A majority (self, 2, 3) holds entries 1-2 of older terms. */
	a = ack(2, t, 2);
	ch_step(&nd, &a);
	a = ack(3, t, 2);
	ch_step(&nd, &a);
	raft_get_status(nd.r, &s);
	ck_assert_uint_eq(s.commit, 0);
	ck_assert_uint_eq(nd.n_committed, 0);
	/* The no-op of term 3 at index 3 reaches a majority. */
	a = ack(2, t, 3);
	ch_step(&nd, &a);
	a = ack(3, t, 3);
	ch_step(&nd, &a);
	raft_get_status(nd.r, &s);
	ck_assert_uint_eq(s.commit, 3);
	ck_assert_uint_eq(nd.n_committed, 3);
	ch_stop(&nd);
}
END_TEST

/* A follower rejecting an APPEND says where its log diverges: where it ends
 * when it is too short, else the last index whose term is at most the
 * leader's prevLogTerm. */
START_TEST(test_follower_rejects_with_conflict_hint)
{
	raft_term terms[] = {1, 1, 2, 2, 2};
	struct raft_entry *e = mklog(terms, 5);
	struct raft_restore rs = {.term = 2, .entries = e, .n_entries = 5};
	struct ch_node nd;
	struct raft_msg m = {
	    .type = RAFT_MSG_APPEND, .from = 2, .to = 1, .term = 3};
	const struct raft_msg *r;

	ch_start(&nd, 1, 3, NULL, &rs);
	free(e);
	m.index = 7;
	m.log_term = 3;
	ch_step(&nd, &m);
	r = ch_find(&nd.after, RAFT_MSG_APPEND_RESP, 2);
	ck_assert_ptr_nonnull(r);
	ck_assert(r->reject);
	ck_assert_uint_eq(r->index, 7);
	ck_assert_uint_eq(r->hint_index, 5);
	ck_assert_uint_eq(r->hint_term, 0);

	ch_clear(&nd);
	m.index = 5;
	m.log_term = 1;
	ch_step(&nd, &m);
	r = ch_find(&nd.after, RAFT_MSG_APPEND_RESP, 2);
	ck_assert(r->reject);
	ck_assert_uint_eq(r->index, 5);
	ck_assert_uint_eq(r->hint_index, 2);
	ck_assert_uint_eq(r->hint_term, 1);
	ch_stop(&nd);
}
END_TEST

/* The leader uses a rejection's hint to skip a whole conflicting term. */
START_TEST(test_leader_skips_conflicting_term_using_hint)
{
	raft_term terms[] = {1, 1, 1, 3, 3, 3};
	struct raft_entry *e = mklog(terms, 6);
	struct raft_restore rs = {.term = 3, .entries = e, .n_entries = 6};
	struct ch_node nd;
	struct raft_msg rej;
	const struct raft_msg *app;
	raft_term t;

	ch_start(&nd, 1, 3, NULL, &rs);
	free(e);
	ch_make_leader(&nd);
	t = raft_current_term(nd.r);
	/* Follower 2 has 1,1,2,2,2,2,2 and rejects prev 6 at term 3: its
	 * entries of term 2 do not exist here, so the leader continues
	 * from its last entry of term <= 2, index 3. */
	rej = (struct raft_msg){.type = RAFT_MSG_APPEND_RESP,
				.from = 2,
				.to = 1,
				.term = t,
				.index = 6,
				.reject = true,
				.hint_index = 6,
				.hint_term = 2};
	ch_step(&nd, &rej);
	app = ch_find(&nd.now, RAFT_MSG_APPEND, 2);
	ck_assert_ptr_nonnull(app);
	ck_assert_uint_eq(app->index, 3);
	ck_assert_uint_eq(app->log_term, 1);
	ck_assert_uint_eq(app->n_entries, 4);
	ch_stop(&nd);
}
END_TEST

/* A rejection of an index the follower is already known to hold is stale
 * (a reordered or duplicated answer) and changes nothing. */
START_TEST(test_stale_rejection_is_ignored)
{
	struct ch_node nd;
	struct raft_msg a, rej;
	struct raft_status s;
	raft_term t;

	ch_start(&nd, 1, 3, NULL, NULL);
	ch_make_leader(&nd);
	t = raft_current_term(nd.r);
	propose(&nd, "a");
	propose(&nd, "b");
	ch_drain(&nd);
	a = ack(2, t, 1);
	ch_step(&nd, &a);
	a = ack(2, t, 3);
	ch_step(&nd, &a);
	rej = (struct raft_msg){.type = RAFT_MSG_APPEND_RESP,
				.from = 2,
				.to = 1,
				.term = t,
				.index = 2,
				.reject = true,
				.hint_index = 0};
	ch_step(&nd, &rej);
	raft_get_status(nd.r, &s);
	ck_assert_uint_eq(s.peers[1].match, 3);
	ck_assert_uint_eq(s.peers[1].next, 4);
	ck_assert_int_eq(s.peers[1].state, 1);
	ch_stop(&nd);
}
END_TEST

static struct raft_msg reject_short(raft_id from, raft_term term,
				    raft_index index, raft_index log_ends,
				    uint64_t round)
{
	struct raft_msg m = {.type = RAFT_MSG_APPEND_RESP,
			     .from = from,
			     .to = 1,
			     .term = term,
			     .index = index,
			     .reject = true,
			     .hint_index = log_ends,
			     .context = round};
	return m;
}

/* The heartbeat round a leader opens with one tick (its APPENDs carry it). */
static uint64_t next_round(struct ch_node *nd)
{
	const struct raft_msg *hb;

	ch_clear(nd);
	ch_tick(nd, 1);
	hb = ch_find(&nd->now, RAFT_MSG_APPEND, 2);
	ck_assert_ptr_nonnull(hb);
	return hb->context;
}

/* A follower that says its log ends below what it acknowledged, answering
 * an APPEND of a round after the acknowledgement arrived, has lost entries:
 * the leader lowers match to where its log ends, probes from there and
 * reports the loss, once. */
START_TEST(test_lost_acknowledged_entries_lower_match_and_are_reported)
{
	struct ch_node nd;
	struct raft_msg a, rej;
	struct raft_status s;
	const struct raft_msg *app;
	uint64_t r1, r2;
	raft_term t;

	ch_start(&nd, 1, 3, NULL, NULL);
	ch_make_leader(&nd);
	t = raft_current_term(nd.r);
	ch_persist(&nd);
	propose(&nd, "a");
	propose(&nd, "b");
	ch_drain(&nd);
	ch_persist(&nd);
	r1 = next_round(&nd);
	a = ack(2, t, 3);
	a.context = r1;
	ch_step(&nd, &a);
	raft_get_status(nd.r, &s);
	ck_assert_uint_eq(s.peers[1].match, 3);
	ck_assert_uint_eq(s.commit, 3);

	/* Its disk is wiped; the next round's heartbeat finds it empty. */
	r2 = next_round(&nd);
	ck_assert_uint_gt(r2, r1);
	ch_clear(&nd);
	rej = reject_short(2, t, 3, 0, r2);
	ch_step(&nd, &rej);
	raft_get_status(nd.r, &s);
	ck_assert_uint_eq(s.peers[1].match, 0);
	ck_assert_uint_eq(s.peers[1].next, 1);
	ck_assert_int_eq(s.peers[1].state, 0);
	ck_assert_uint_eq(s.commit, 3); /* commit never moves back */
	app = ch_find(&nd.now, RAFT_MSG_APPEND, 2);
	ck_assert_ptr_nonnull(app);
	ck_assert_uint_eq(app->index, 0);
	ck_assert_uint_eq(app->n_entries, 3);
	ck_assert_uint_eq(nd.n_losses, 1);
	ck_assert_uint_eq(nd.losses[0].id, 2);
	ck_assert_uint_eq(nd.losses[0].acknowledged, 3);
	ck_assert_uint_eq(nd.losses[0].log_ends, 0);

	/* More rejections from the same empty log (a duplicate, an APPEND
	 * sent before the probe) report nothing new. */
	ch_step(&nd, &rej);
	rej = reject_short(2, t, 2, 0, r2);
	ch_step(&nd, &rej);
	ck_assert_uint_eq(nd.n_losses, 1);
	raft_get_status(nd.r, &s);
	ck_assert_uint_eq(s.peers[1].match, 0);
	ck_assert_uint_eq(s.peers[1].next, 1);

	/* An acceptance the follower sent before it lost its log, arriving
	 * late, is not taken for one from after. */
	a = ack(2, t, 3);
	a.context = r2;
	ch_step(&nd, &a);
	raft_get_status(nd.r, &s);
	ck_assert_uint_eq(s.peers[1].match, 0);

	/* The acceptance of a later probe brings it back. */
	a.context = next_round(&nd);
	ch_step(&nd, &a);
	raft_get_status(nd.r, &s);
	ck_assert_uint_eq(s.peers[1].match, 3);
	ck_assert_int_eq(s.peers[1].state, 1);
	ck_assert_uint_eq(nd.n_losses, 1);
	ch_stop(&nd);
}
END_TEST

/* A rejection below match that answers an APPEND of a round no later than
 * the one in which match last rose may predate the acceptance: it is stale
 * and changes nothing. This covers a heartbeat of the next round that
 * overtakes an APPEND with entries, is rejected by the follower that has
 * not seen them yet, and whose rejection arrives after their acceptance. */
START_TEST(test_rejection_not_after_the_acceptance_is_stale)
{
	struct ch_node nd;
	struct raft_msg a, rej;
	struct raft_status s;
	uint64_t r1;
	raft_term t;

	ch_start(&nd, 1, 3, NULL, NULL);
	ch_make_leader(&nd);
	t = raft_current_term(nd.r);
	a = ack(2, t, 1);
	ch_step(&nd, &a); /* replicate, match 1 */
	ch_clear(&nd);
	propose(&nd, "a"); /* APPEND of entry 2 leaves in this round */
	ch_drain(&nd);
	r1 = next_round(&nd); /* its heartbeat has prev 2 */
	/* The acceptance of entry 2 arrives in round r1, then the rejection
	 * of the heartbeat of round r1, which the follower saw first. */
	a = ack(2, t, 2);
	ch_step(&nd, &a);
	rej = reject_short(2, t, 2, 1, r1);
	ch_step(&nd, &rej);
	raft_get_status(nd.r, &s);
	ck_assert_uint_eq(s.peers[1].match, 2);
	ck_assert_uint_eq(s.peers[1].next, 3);
	ck_assert_int_eq(s.peers[1].state, 1);
	ck_assert_uint_eq(nd.n_losses, 0);

	/* So is one of an earlier round, delivered late. */
	rej = reject_short(2, t, 1, 0, r1 - 1);
	ch_step(&nd, &rej);
	raft_get_status(nd.r, &s);
	ck_assert_uint_eq(s.peers[1].match, 2);
	ck_assert_int_eq(s.peers[1].state, 1);
	ck_assert_uint_eq(nd.n_losses, 0);
	ch_stop(&nd);
}
END_TEST

/* In probe state only one APPEND with entries is in flight; the next goes
 * after an answer or a heartbeat. */
START_TEST(test_probe_state_sends_one_append_at_a_time)
{
	struct ch_node nd;
	size_t n, entries;

	ch_start(&nd, 1, 3, NULL, NULL);
	ch_make_leader(&nd); /* its probe carried the no-op */
	for (int i = 0; i < 5; i++) {
		propose(&nd, "p");
		ch_drain(&nd);
	}
	ck_assert_uint_eq(appends_to(&nd.now, 2, &entries), 0);
	/* A heartbeat retries the probe once. */
	ch_tick(&nd, 1);
	n = appends_to(&nd.now, 2, &entries);
	ck_assert_uint_eq(n, 2); /* the heartbeat and one probe */
	ck_assert_uint_eq(entries, 6);
	ch_stop(&nd);
}
END_TEST

/* In replicate state the leader pipelines APPENDs up to max_inflight_msgs
 * and sends more as acks free room. */
START_TEST(test_replicate_state_pipelines_up_to_max_inflight)
{
	struct raft_config cfg;
	raft_id peers[3];
	struct ch_node nd;
	struct raft_msg a;
	size_t entries;
	raft_term t;

	ch_config(&cfg, peers, 1, 3);
	cfg.max_inflight_msgs = 3;
	cfg.max_msg_entries = 1;
	ch_start(&nd, 1, 3, &cfg, NULL);
	ch_make_leader(&nd);
	t = raft_current_term(nd.r);
	a = ack(2, t, 1);
	ch_step(&nd, &a); /* probe answered: replicate */
	ch_clear(&nd);
	for (int i = 0; i < 10; i++) {
		propose(&nd, "p");
	}
	ch_drain(&nd);
	ck_assert_uint_eq(appends_to(&nd.now, 2, &entries), 3);
	ck_assert_uint_eq(entries, 3);
	ch_clear(&nd);
	a = ack(2, t, 2);
	ch_step(&nd, &a);
	ck_assert_uint_eq(appends_to(&nd.now, 2, &entries), 1);
	ck_assert_uint_eq(nd.now.v[0].index, 4);
	ch_stop(&nd);
}
END_TEST

/* max_inflight_bytes also bounds the pipeline. */
START_TEST(test_inflight_bytes_bound_the_pipeline)
{
	struct raft_config cfg;
	raft_id peers[3];
	struct ch_node nd;
	struct raft_msg a;
	char big[100];
	size_t entries;

	memset(big, 'b', sizeof(big));
	ch_config(&cfg, peers, 1, 3);
	cfg.max_inflight_bytes = 250;
	cfg.max_msg_entries = 1;
	ch_start(&nd, 1, 3, &cfg, NULL);
	ch_make_leader(&nd);
	a = ack(2, raft_current_term(nd.r), 1);
	ch_step(&nd, &a);
	ch_clear(&nd);
	for (int i = 0; i < 10; i++) {
		ck_assert_int_eq(
		    raft_propose(nd.r, big, sizeof(big), NULL, NULL), RAFT_OK);
	}
	ch_drain(&nd);
	/* 100 + 100 < 250, the third reaches it: three in flight. */
	ck_assert_uint_eq(appends_to(&nd.now, 2, &entries), 3);
	ch_stop(&nd);
}
END_TEST

/* Proposals made before the update is taken travel in one APPEND, split
 * only by max_msg_entries and max_msg_bytes. */
START_TEST(test_proposals_are_batched_into_one_append)
{
	struct raft_config cfg;
	raft_id peers[3];
	struct ch_node nd;
	struct raft_msg a;
	size_t entries;
	raft_term t;

	ch_config(&cfg, peers, 1, 3);
	cfg.max_msg_entries = 64;
	cfg.max_msg_bytes = 1000;
	ch_start(&nd, 1, 3, &cfg, NULL);
	ch_make_leader(&nd);
	t = raft_current_term(nd.r);
	a = ack(2, t, 1);
	ch_step(&nd, &a);
	ch_clear(&nd);
	for (int i = 0; i < 50; i++) {
		propose(&nd, "0123456789");
	}
	ch_drain(&nd);
	ck_assert_uint_eq(appends_to(&nd.now, 2, &entries), 1);
	ck_assert_uint_eq(entries, 50);
	ch_clear(&nd);
	for (int i = 0; i < 150; i++) {
		propose(&nd, "0123456789");
	}
	ch_drain(&nd);
	/* 1000 bytes fit 100 entries of 10 bytes; 64 is the count limit. */
	ck_assert_uint_eq(appends_to(&nd.now, 2, &entries), 3);
	ck_assert_uint_eq(entries, 150);
	ck_assert_uint_eq(nd.now.v[0].n_entries, 64);
	ch_stop(&nd);
}
END_TEST

/* A heartbeat carries min(commit, match) for its follower and the current
 * heartbeat round as context, which the follower echoes. */
START_TEST(test_heartbeat_carries_commit_bounded_by_match_and_round)
{
	struct ch_node nd, f;
	struct raft_msg a;
	const struct raft_msg *hb2, *hb3, *resp;
	raft_term t;

	ch_start(&nd, 1, 3, NULL, NULL);
	ch_start(&f, 3, 3, NULL, NULL);
	ch_make_leader(&nd);
	t = raft_current_term(nd.r);
	ch_persist(&nd);
	propose(&nd, "a");
	ch_drain(&nd);
	ch_persist(&nd);
	a = ack(2, t, 2);
	ch_step(&nd, &a); /* commit 2 with self and 2 */
	ch_clear(&nd);
	ch_tick(&nd, 1);
	hb2 = ch_find(&nd.now, RAFT_MSG_APPEND, 2);
	hb3 = ch_find(&nd.now, RAFT_MSG_APPEND, 3);
	ck_assert_ptr_nonnull(hb2);
	ck_assert_ptr_nonnull(hb3);
	ck_assert_uint_eq(hb2->commit, 2);
	ck_assert_uint_eq(hb3->commit, 0);
	ck_assert_uint_ne(hb3->context, 0);
	ck_assert_uint_eq(hb2->context, hb3->context);
	ch_step(&f, hb3);
	resp = ch_find(&f.after, RAFT_MSG_APPEND_RESP, 1);
	ck_assert_ptr_nonnull(resp);
	ck_assert_uint_eq(resp->context, hb3->context);
	ch_stop(&nd);
	ch_stop(&f);
}
END_TEST

/* A follower answers an APPEND with the index of the last entry it carried,
 * and only in msgs_after_persist. */
START_TEST(test_append_resp_waits_for_persist_and_names_last_entry)
{
	raft_term terms[] = {1, 1, 1, 1};
	struct raft_entry *e = mklog(terms, 4);
	struct raft_restore rs = {.term = 1, .entries = e, .n_entries = 4};
	struct ch_node nd;
	struct raft_entry in[2] = {
	    {.term = 1, .index = 2, .type = RAFT_ENTRY_NOOP},
	    {.term = 1, .index = 3, .type = RAFT_ENTRY_NOOP}};
	struct raft_msg m = {.type = RAFT_MSG_APPEND,
			     .from = 2,
			     .to = 1,
			     .term = 1,
			     .index = 1,
			     .log_term = 1,
			     .entries = in,
			     .n_entries = 2};
	const struct raft_msg *r;

	ch_start(&nd, 1, 3, NULL, &rs);
	free(e);
	ch_step(&nd, &m);
	ck_assert_uint_eq(ch_count(&nd.now, RAFT_MSG_APPEND_RESP), 0);
	r = ch_find(&nd.after, RAFT_MSG_APPEND_RESP, 2);
	ck_assert_ptr_nonnull(r);
	ck_assert(!r->reject);
	ck_assert_uint_eq(r->index, 3);
	ch_stop(&nd);
}
END_TEST

/* A heartbeat (an APPEND without entries) for a follower whose term is
 * durable is answered at once, in msgs, acknowledging only the entries
 * reported durable, while the answer to the APPEND that carried entries
 * still waits for their persist. */
START_TEST(test_heartbeat_answer_goes_at_once_with_durable_match)
{
	raft_term terms[] = {1, 1, 1, 1};
	struct raft_entry *e = mklog(terms, 4);
	struct raft_restore rs = {.term = 1, .entries = e, .n_entries = 4};
	struct ch_node nd;
	struct raft_entry in[2] = {
	    {.term = 1, .index = 5, .type = RAFT_ENTRY_NOOP},
	    {.term = 1, .index = 6, .type = RAFT_ENTRY_NOOP}};
	struct raft_msg m = {.type = RAFT_MSG_APPEND,
			     .from = 2,
			     .to = 1,
			     .term = 1,
			     .index = 4,
			     .log_term = 1,
			     .entries = in,
			     .n_entries = 2};
	struct raft_msg hb = {.type = RAFT_MSG_APPEND,
			      .from = 2,
			      .to = 1,
			      .term = 1,
			      .index = 6,
			      .log_term = 1,
			      .context = 7};
	const struct raft_msg *r;

	ch_start(&nd, 1, 3, NULL, &rs);
	free(e);
	ch_step(&nd, &m);
	ck_assert_uint_eq(ch_count(&nd.now, RAFT_MSG_APPEND_RESP), 0);
	ck_assert_uint_eq(ch_count(&nd.after, RAFT_MSG_APPEND_RESP), 1);
	ch_clear(&nd);

	ch_step(&nd, &hb);
	ck_assert_uint_eq(ch_count(&nd.after, RAFT_MSG_APPEND_RESP), 0);
	r = ch_find(&nd.now, RAFT_MSG_APPEND_RESP, 2);
	ck_assert_ptr_nonnull(r);
	ck_assert(!r->reject);
	ck_assert_uint_eq(r->index, 4); /* 5 and 6 are not durable yet */
	ck_assert_uint_eq(r->context, 7);
	ch_clear(&nd);

	ch_persist(&nd);
	hb.context = 8;
	ch_step(&nd, &hb);
	r = ch_find(&nd.now, RAFT_MSG_APPEND_RESP, 2);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->index, 6);
	ch_stop(&nd);
}
END_TEST

/* A term the follower took from the APPEND itself is not yet durable: the
 * heartbeat's answer waits for the persist, until the driver reports the
 * hard state durable with raft_hard_state_persisted(). */
START_TEST(test_heartbeat_answer_waits_until_the_term_is_durable)
{
	raft_term terms[] = {1, 1};
	struct raft_entry *e = mklog(terms, 2);
	struct raft_restore rs = {.term = 1, .entries = e, .n_entries = 2};
	struct ch_node nd;
	struct raft_msg hb = {.type = RAFT_MSG_APPEND,
			      .from = 2,
			      .to = 1,
			      .term = 2,
			      .index = 2,
			      .log_term = 1};
	const struct raft_msg *r;

	ch_start(&nd, 1, 3, NULL, &rs);
	free(e);
	ch_step(&nd, &hb);
	ck_assert_uint_eq(raft_current_term(nd.r), 2);
	ck_assert_uint_eq(ch_count(&nd.now, RAFT_MSG_APPEND_RESP), 0);
	r = ch_find(&nd.after, RAFT_MSG_APPEND_RESP, 2);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->term, 2);
	ch_clear(&nd);

	/* A term never handed out is ignored. */
	raft_hard_state_persisted(nd.r, 3);
	ch_step(&nd, &hb);
	ck_assert_uint_eq(ch_count(&nd.now, RAFT_MSG_APPEND_RESP), 0);
	ch_clear(&nd);

	raft_hard_state_persisted(nd.r, 2);
	ch_step(&nd, &hb);
	r = ch_find(&nd.now, RAFT_MSG_APPEND_RESP, 2);
	ck_assert_ptr_nonnull(r);
	ck_assert(!r->reject);
	ck_assert_uint_eq(r->index, 2);
	ck_assert_uint_eq(ch_count(&nd.after, RAFT_MSG_APPEND_RESP), 0);
	ch_stop(&nd);
}
END_TEST

/* A follower keeps entries after a stale APPEND's last entry when they all
 * match (Figure 2, AppendEntries receiver step 3: only a conflict cuts). */
START_TEST(test_follower_keeps_entries_on_stale_append)
{
	raft_term terms[] = {1, 1, 1, 1, 1};
	struct raft_entry *e = mklog(terms, 5);
	struct raft_restore rs = {.term = 1, .entries = e, .n_entries = 5};
	struct ch_node nd;
	struct raft_msg m = {.type = RAFT_MSG_APPEND,
			     .from = 2,
			     .to = 1,
			     .term = 1,
			     .index = 0,
			     .log_term = 0,
			     .entries = e,
			     .n_entries = 3};
	struct raft_status s;

	ch_start(&nd, 1, 3, NULL, &rs);
	ch_step(&nd, &m);
	free(e);
	raft_get_status(nd.r, &s);
	ck_assert_uint_eq(s.last_index, 5);
	ck_assert_uint_eq(ch_find(&nd.after, RAFT_MSG_APPEND_RESP, 2)->index,
			  3);
	ch_stop(&nd);
}
END_TEST

/* A follower cuts its log at the first conflicting entry and appends the
 * leader's (Figure 2, AppendEntries receiver steps 3-4); the new entries
 * are handed out to persist again from the cut. */
START_TEST(test_follower_truncates_conflicting_suffix)
{
	raft_term terms[] = {1, 1, 2, 2};
	struct raft_entry *e = mklog(terms, 4);
	struct raft_restore rs = {.term = 2, .entries = e, .n_entries = 4};
	struct raft_entry in = {.term = 3,
				.index = 3,
				.type = RAFT_ENTRY_COMMAND,
				.data = "z",
				.len = 1};
	struct raft_msg m = {.type = RAFT_MSG_APPEND,
			     .from = 2,
			     .to = 1,
			     .term = 3,
			     .index = 2,
			     .log_term = 1,
			     .entries = &in,
			     .n_entries = 1};
	struct ch_node nd;
	struct raft_status s;

	ch_start(&nd, 1, 3, NULL, &rs);
	free(e);
	ch_step(&nd, &m);
	raft_get_status(nd.r, &s);
	ck_assert_uint_eq(s.last_index, 3);
	ck_assert_uint_eq(s.last_term, 3);
	ck_assert_uint_eq(s.persisted, 2);
	ck_assert_uint_eq(nd.written, 3);
	ck_assert_uint_eq(nd.written_term, 3);
	ck_assert_uint_eq(nd.n_written, 1);
	ch_stop(&nd);
}
END_TEST

/* raft_persisted() ignores an acknowledgement for entries replaced since. */
START_TEST(test_persisted_ack_for_replaced_entries_is_ignored)
{
	struct raft_entry in1[2] = {
	    {.term = 1, .index = 1, .type = RAFT_ENTRY_NOOP},
	    {.term = 1, .index = 2, .type = RAFT_ENTRY_NOOP}};
	struct raft_entry in2 = {
	    .term = 2, .index = 2, .type = RAFT_ENTRY_NOOP};
	struct raft_msg m1 = {.type = RAFT_MSG_APPEND,
			      .from = 2,
			      .to = 1,
			      .term = 1,
			      .entries = in1,
			      .n_entries = 2};
	struct raft_msg m2 = {.type = RAFT_MSG_APPEND,
			      .from = 3,
			      .to = 1,
			      .term = 2,
			      .index = 1,
			      .log_term = 1,
			      .entries = &in2,
			      .n_entries = 1};
	struct ch_node nd;
	struct raft_status s;

	ch_start(&nd, 1, 3, NULL, NULL);
	ch_step(&nd, &m1);
	ch_step(&nd, &m2);
	/* The write of (2, term 1) completes after it was replaced. */
	raft_persisted(nd.r, 2, 1);
	raft_get_status(nd.r, &s);
	ck_assert_uint_eq(s.persisted, 0);
	raft_persisted(nd.r, 2, 2);
	raft_get_status(nd.r, &s);
	ck_assert_uint_eq(s.persisted, 2);
	ch_stop(&nd);
}
END_TEST

/* A follower learns commit only up to the last entry the APPEND matched,
 * and hands out committed entries only once they are durable here. */
START_TEST(test_follower_commit_bounded_by_match_and_persist)
{
	struct raft_entry in[3] = {
	    {.term = 1, .index = 1, .type = RAFT_ENTRY_NOOP},
	    {.term = 1, .index = 2, .type = RAFT_ENTRY_NOOP},
	    {.term = 1, .index = 3, .type = RAFT_ENTRY_NOOP}};
	struct raft_msg m = {.type = RAFT_MSG_APPEND,
			     .from = 2,
			     .to = 1,
			     .term = 1,
			     .entries = in,
			     .n_entries = 2,
			     .commit = 3};
	struct ch_node nd;
	struct raft_status s;

	ch_start(&nd, 1, 3, NULL, NULL);
	ch_step(&nd, &m);
	raft_get_status(nd.r, &s);
	ck_assert_uint_eq(s.commit, 2);
	ck_assert_uint_eq(nd.n_committed, 0);
	ch_persist(&nd);
	ch_drain(&nd);
	ck_assert_uint_eq(nd.n_committed, 2);
	ch_stop(&nd);
}
END_TEST

/* A proposal to a follower fails with RAFT_ENOTLEADER, and raft_leader()
 * names the leader. */
START_TEST(test_proposal_to_follower_fails_not_leader)
{
	struct ch_node nd;
	struct raft_msg hb = {
	    .type = RAFT_MSG_APPEND, .from = 3, .to = 1, .term = 1};

	ch_start(&nd, 1, 3, NULL, NULL);
	ck_assert_int_eq(raft_propose(nd.r, "a", 1, NULL, NULL),
			 RAFT_ENOTLEADER);
	ck_assert_uint_eq(raft_leader(nd.r), 0);
	ch_step(&nd, &hb);
	ck_assert_int_eq(raft_propose(nd.r, "a", 1, NULL, NULL),
			 RAFT_ENOTLEADER);
	ck_assert_uint_eq(raft_leader(nd.r), 3);
	ch_stop(&nd);
}
END_TEST

/* Payloads of committed entries keep their address while the log grows,
 * and pointers in an update survive steps taken before raft_advance(). */
START_TEST(test_update_pointers_survive_log_growth)
{
	struct ch_node nd;
	struct raft_update u;
	const struct raft_entry *e;
	const void *payload;
	raft_index idx;

	ch_start(&nd, 1, 1, NULL, NULL);
	ch_tick_until_campaign(&nd);
	ck_assert_int_eq(raft_role(nd.r), RAFT_LEADER);
	ck_assert_int_eq(raft_propose(nd.r, "keep", 4, &idx, NULL), RAFT_OK);
	ch_drain(&nd);
	ch_persist(&nd);
	raft_get_update(nd.r, &u);
	ck_assert_uint_eq(u.n_committed, 2);
	e = &u.committed[1];
	payload = e->data;
	/* Grow the log a lot while the update is out. */
	for (int i = 0; i < 5000; i++) {
		ck_assert_int_eq(raft_propose(nd.r, "more", 4, NULL, NULL),
				 RAFT_OK);
	}
	ck_assert_uint_eq(e->index, idx);
	ck_assert_mem_eq(e->data, "keep", 4);
	raft_advance(nd.r, &u);
	ch_drain(&nd);
	ch_persist(&nd);
	ch_drain(&nd);
	ck_assert_mem_eq(payload, "keep", 4);
	ck_assert_uint_eq(nd.n_committed, 5000);
	ch_stop(&nd);
}
END_TEST

/* A 3-node cluster replicates proposals to every node, which all apply the
 * same entries in the same order. */
START_TEST(test_cluster_replicates_and_applies_in_order)
{
	struct ch_cluster c;
	struct ch_node *l;
	char buf[16];

	ch_cluster_start(&c, 3, NULL);
	l = ch_node_of(&c, ch_cluster_elect(&c, 2));
	for (int i = 0; i < 300; i++) {
		int n = snprintf(buf, sizeof(buf), "v%d", i);
		ck_assert_int_eq(raft_propose(l->r, buf, n, NULL, NULL),
				 RAFT_OK);
		if (i % 7 == 0) {
			ch_cluster_settle(&c);
		}
	}
	ch_cluster_settle(&c);
	ch_cluster_tick(&c);
	for (size_t i = 0; i < 3; i++) {
		struct ch_node *nd = &c.nodes[i];
		ck_assert_uint_eq(nd->n_committed, 301);
		for (size_t j = 0; j < nd->n_committed; j++) {
			ck_assert_uint_eq(nd->committed[j].index, j + 1);
			ck_assert_uint_eq(nd->committed[j].term,
					  l->committed[j].term);
			ck_assert_uint_eq(nd->committed[j].len,
					  l->committed[j].len);
		}
		ck_assert_mem_eq(nd->committed[300].data, "v299", 4);
	}
	ch_cluster_stop(&c);
}
END_TEST

/* A follower that missed entries catches up through probing. */
START_TEST(test_lagging_follower_catches_up)
{
	struct ch_cluster c;
	struct ch_node *l;
	struct raft_status s;

	ch_cluster_start(&c, 3, NULL);
	l = ch_node_of(&c, ch_cluster_elect(&c, 1));
	c.down[3] = true;
	for (int i = 0; i < 100; i++) {
		ck_assert_int_eq(raft_propose(l->r, "x", 1, NULL, NULL),
				 RAFT_OK);
		ch_cluster_settle(&c);
	}
	c.down[3] = false;
	for (int i = 0; i < 5; i++) {
		ch_cluster_tick(&c);
	}
	raft_get_status(c.nodes[2].r, &s);
	ck_assert_uint_eq(s.last_index, 101);
	ck_assert_uint_eq(s.commit, 101);
	ch_cluster_stop(&c);
}
END_TEST

/* A follower restarted with an empty log (its data directory wiped) is
 * caught up again, and then counts toward a quorum with the leader. */
START_TEST(test_follower_with_wiped_log_catches_up)
{
	struct ch_cluster c;
	struct ch_node *l;
	struct raft_status s;

	ch_cluster_start(&c, 3, NULL);
	l = ch_node_of(&c, ch_cluster_elect(&c, 1));
	for (int i = 0; i < 20; i++) {
		ck_assert_int_eq(raft_propose(l->r, "x", 1, NULL, NULL),
				 RAFT_OK);
		ch_cluster_settle(&c);
	}
	ch_cluster_tick(&c);
	raft_get_status(l->r, &s);
	ck_assert_uint_eq(s.peers[2].match, 21);

	ch_stop(&c.nodes[2]);
	ch_start(&c.nodes[2], 3, 3, NULL, NULL);
	for (int i = 0; i < 10; i++) {
		ch_cluster_tick(&c);
	}
	raft_get_status(l->r, &s);
	ck_assert_uint_eq(s.peers[2].match, 21);
	raft_get_status(c.nodes[2].r, &s);
	ck_assert_uint_eq(s.last_index, 21);
	ck_assert_uint_eq(s.commit, 21);
	ck_assert_uint_eq(c.nodes[2].n_committed, 21);
	ck_assert_uint_eq(l->n_losses, 1);
	ck_assert_uint_eq(l->losses[0].id, 3);
	ck_assert_uint_eq(l->losses[0].acknowledged, 21);
	ck_assert_uint_eq(l->losses[0].log_ends, 0);

	/* With the other follower down, leader and node 3 commit. */
	c.down[2] = true;
	ck_assert_int_eq(raft_propose(l->r, "y", 1, NULL, NULL), RAFT_OK);
	ch_cluster_tick(&c);
	raft_get_status(l->r, &s);
	ck_assert_uint_eq(s.commit, 22);
	ck_assert_uint_eq(l->n_losses, 1);
	ch_cluster_stop(&c);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("core_replication");
	TCase *tc = tcase_create("replication");

	tcase_add_test(tc, test_leader_sends_appends_before_own_persist);
	tcase_add_test(tc, test_leader_counts_itself_only_after_persisted);
	tcase_add_test(
	    tc, test_leader_commits_only_current_term_entries_by_counting);
	tcase_add_test(tc, test_follower_rejects_with_conflict_hint);
	tcase_add_test(tc, test_leader_skips_conflicting_term_using_hint);
	tcase_add_test(tc, test_stale_rejection_is_ignored);
	tcase_add_test(
	    tc, test_lost_acknowledged_entries_lower_match_and_are_reported);
	tcase_add_test(tc, test_rejection_not_after_the_acceptance_is_stale);
	tcase_add_test(tc, test_probe_state_sends_one_append_at_a_time);
	tcase_add_test(tc, test_replicate_state_pipelines_up_to_max_inflight);
	tcase_add_test(tc, test_inflight_bytes_bound_the_pipeline);
	tcase_add_test(tc, test_proposals_are_batched_into_one_append);
	tcase_add_test(
	    tc, test_heartbeat_carries_commit_bounded_by_match_and_round);
	tcase_add_test(tc,
		       test_append_resp_waits_for_persist_and_names_last_entry);
	tcase_add_test(tc,
		       test_heartbeat_answer_goes_at_once_with_durable_match);
	tcase_add_test(tc,
		       test_heartbeat_answer_waits_until_the_term_is_durable);
	tcase_add_test(tc, test_follower_keeps_entries_on_stale_append);
	tcase_add_test(tc, test_follower_truncates_conflicting_suffix);
	tcase_add_test(tc, test_persisted_ack_for_replaced_entries_is_ignored);
	tcase_add_test(tc, test_follower_commit_bounded_by_match_and_persist);
	tcase_add_test(tc, test_proposal_to_follower_fails_not_leader);
	tcase_add_test(tc, test_update_pointers_survive_log_growth);
	tcase_add_test(tc, test_cluster_replicates_and_applies_in_order);
	tcase_add_test(tc, test_lagging_follower_catches_up);
	tcase_add_test(tc, test_follower_with_wiped_log_catches_up);
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
