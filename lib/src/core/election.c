/* Leader election: randomized timeouts, PreVote, RequestVote, and the role
 * transitions drawn in core.h.
 *
 * Rules carried out here:
 * - Raft paper Figure 2, "Rules for Servers": a follower that hears nothing
 *   for an election timeout starts an election; a candidate votes for
 *   itself, increments its term and asks everyone; a majority makes it
 *   leader.
 * - Figure 2, RequestVote receiver: at most one vote per term, only for a
 *   candidate whose log is at least as up to date (section 5.4.1).
 * - Dissertation 9.6 (PreVote): a pre-candidate asks with term + 1 without
 *   changing its own term; a voter grants only when it has not heard from a
 *   leader within an election timeout and the log is up to date.
 * - Dissertation 3.4: timeouts are random in [election, 2 * election).
 * - Durability (Figure 2, "persistent state ... updated on stable storage
 *   before responding to RPCs"): a vote and the term it was cast in go out
 *   only in msgs_after_persist. A candidate asks for votes the same way, so
 *   that it never counts a vote for itself that a crash could forget.
 */
#include <assert.h>
#include <string.h>

#include "core.h"

void core_reset_timer(struct raft *r)
{
	unsigned e = r->cfg.election_ticks;

	r->elapsed = 0;
	r->timeout = e + (unsigned)(core_rand(r) % e);
}

/* Remove queued APPENDs that the caller has not taken yet: they refer to the
 * log by index, and the log may change once this node is a follower. Losing
 * them is no worse than a dropped message. */
static void drop_queued_appends(struct raft *r)
{
	struct core_outbox *o = &r->out;
	size_t keep = r->grave.update_out ? r->out_handed : 0;
	size_t j = keep;

	for (size_t i = keep; i < o->n; i++) {
		if (o->msgs[i].type == RAFT_MSG_APPEND) {
			continue;
		}
		o->msgs[j++] = o->msgs[i];
	}
	o->n = j;
}

void core_become_follower(struct raft *r, raft_term term, raft_id leader)
{
	bool was_leader = r->role == RAFT_LEADER;
	raft_id old_leader = r->leader;

	if (term > r->term) {
		r->term = term;
		r->vote = 0;
	}
	r->role = RAFT_FOLLOWER;
	r->leader = leader;
	core_reset_timer(r);
	if (was_leader) {
		drop_queued_appends(r);
		r->need_flush = false;
	}
	/* Reads still waiting for a leader's answer cannot get one now. */
	if (was_leader || old_leader != leader) {
		core_reads_fail_waiting(r, RAFT_ELEADERLOST);
	}
}

static size_t count_votes(const struct raft *r, int which)
{
	size_t n = 0;

	for (size_t i = 0; i < r->n_peers; i++) {
		if (r->prog[i].vote == which) {
			n++;
		}
	}
	return n;
}

int core_campaign(struct raft *r, bool pre)
{
	raft_term term = pre ? r->term + 1 : r->term;
	int rc = RAFT_OK;

	if (r->role == RAFT_LEADER) {
		return RAFT_OK;
	}
	if (!pre) {
		/* Figure 2, Rules for Servers, Candidates: increment
		 * currentTerm, vote for self. */
		r->term++;
		r->vote = r->cfg.id;
		term = r->term;
		r->role = RAFT_CANDIDATE;
	} else {
		r->role = RAFT_PRECANDIDATE;
	}
	if (r->leader != 0) {
		core_reads_fail_waiting(r, RAFT_ELEADERLOST);
	}
	r->leader = 0;
	core_reset_timer(r);
	for (size_t i = 0; i < r->n_peers; i++) {
		r->prog[i].vote = 0;
	}
	r->prog[r->self].vote = 1;
	if (count_votes(r, 1) >= r->quorum) {
		return pre ? core_campaign(r, false) : core_become_leader(r);
	}
	for (size_t i = 0; i < r->n_peers && rc == RAFT_OK; i++) {
		struct raft_msg m = {0};

		if (i == r->self) {
			continue;
		}
		m.type = pre ? RAFT_MSG_PREVOTE : RAFT_MSG_VOTE;
		m.to = r->peer_ids[i];
		m.term = term;
		m.index = core_log_last(&r->log);
		m.log_term = core_log_last_term(&r->log);
		/* A PreVote changes nothing durable; a RequestVote carries
		 * the new term and our own vote, which must be on disk
		 * first. */
		rc = core_send(r, &m, !pre);
	}
	return rc;
}

int core_become_leader(struct raft *r)
{
	raft_index last;
	int rc;

	assert(r->role == RAFT_CANDIDATE);
	r->role = RAFT_LEADER;
	r->leader = r->cfg.id;
	r->elapsed = 0;
	r->hb_elapsed = 0;
	r->term_committed = false;
	last = core_log_last(&r->log);
	for (size_t i = 0; i < r->n_peers; i++) {
		core_prog_reset(&r->prog[i], last);
		r->prog[i].recent_active = i == r->self;
	}
	/* Dissertation 6.4 and Raft paper section 8: a new leader commits a
	 * no-op of its term, which also commits everything before it. */
	rc = core_log_append(&r->log, r->term, RAFT_ENTRY_NOOP, NULL, 0);
	if (rc != RAFT_OK) {
		core_become_follower(r, r->term, 0);
		return rc;
	}
	r->need_flush = true;
	core_maybe_commit(r);
	return RAFT_OK;
}

void core_tick_election(struct raft *r)
{
	r->elapsed++;
	if (r->elapsed >= r->timeout) {
		/* Failure can only be ENOMEM, which leaves this node a
		 * candidate that retries at its next timeout. */
		(void)core_campaign(r, r->cfg.pre_vote);
	}
}

/* Dissertation 9.6: has this node heard from a leader within the minimum
 * election timeout? A leader counts as hearing from itself. */
static bool heard_from_leader(const struct raft *r)
{
	return r->leader != 0 && r->elapsed < r->cfg.election_ticks;
}

int core_handle_vote(struct raft *r, const struct raft_msg *m)
{
	struct raft_msg resp = {0};
	bool up_to_date = core_log_up_to_date(&r->log, m->index, m->log_term);
	bool grant;
	bool after_persist = true;

	resp.to = m->from;
	if (m->type == RAFT_MSG_PREVOTE) {
		/* Dissertation 9.6: grant without changing any state. */
		grant =
		    m->term > r->term && up_to_date && !heard_from_leader(r);
		resp.type = RAFT_MSG_PREVOTE_RESP;
		resp.term = grant ? m->term : r->term;
		after_persist = false;
	} else {
		/* Figure 2, RequestVote receiver steps 1-2 (the term was
		 * brought up to m->term by raft_step()). */
		bool can_vote =
		    r->vote == m->from || (r->vote == 0 && r->leader == 0);
		assert(m->term == r->term);
		grant = can_vote && up_to_date;
		if (grant) {
			r->vote = m->from;
			core_reset_timer(r);
		}
		resp.type = RAFT_MSG_VOTE_RESP;
		resp.term = r->term;
#if defined(RAFT_MUTANT) && RAFT_MUTANT == 2
		/* Broken on purpose: the vote may be lost by a crash. */
		after_persist = false;
#endif
	}
	resp.reject = !grant;
	return core_send(r, &resp, after_persist);
}

int core_handle_vote_resp(struct raft *r, const struct raft_msg *m)
{
	struct core_prog *p = core_prog_of(r, m->from);
	bool pre = m->type == RAFT_MSG_PREVOTE_RESP;

	if (p == NULL || p->vote != 0) {
		return RAFT_OK;
	}
	p->vote = m->reject ? -1 : 1;
	if (count_votes(r, 1) >= r->quorum) {
		return pre ? core_campaign(r, false) : core_become_leader(r);
	}
	if (count_votes(r, -1) >= r->quorum) {
		core_become_follower(r, r->term, 0);
	}
	return RAFT_OK;
}
