/* Log replication: the leader's APPENDs and heartbeats, the follower's
 * consistency check, and commitment.
 *
 * Rules carried out here:
 * - Raft paper Figure 2, AppendEntries receiver steps 1-5.
 * - Figure 2, Rules for Servers, Leaders: commit N when a majority has
 *   matchIndex >= N and log[N].term == currentTerm; Figure 8 shows why an
 *   entry of an older term is never committed by counting replicas.
 * - Section 5.3, the optimization at its end: a rejection carries a hint so
 *   the leader skips a whole conflicting term at a time.
 * - Dissertation 10.2.1: the leader sends its entries before its own write
 *   completes and counts itself only for entries it knows are durable.
 * - Dissertation 6.2 and 9.6 (CheckQuorum): a leader that has not heard
 *   from a majority within an election timeout steps down.
 * - Outside Raft's fault model: a follower that lost entries it had
 *   acknowledged (its disk was wiped) is found by its rejections and
 *   caught up again, as hashicorp/raft does, and reported (see
 *   core_handle_append_resp()).
 * - An APPEND_RESP goes out in msgs_after_persist: it reports entries as
 *   held, and the term it carries may be new, so both must be durable.
 *   The entries may have come in an earlier update; persists complete in
 *   order (raft.h), so they are durable by then too. The exception is the
 *   answer to a heartbeat (an APPEND without entries) when the current
 *   term is known durable: it goes at once, and reports a match only as
 *   far as raft_persisted() has confirmed, which is enough for the leader's
 *   CheckQuorum and ReadIndex rounds and never claims an entry that a
 *   crash could lose. Without this, a disk stall on the followers would
 *   look to the leader like a lost quorum.
 */
#include <assert.h>
#include <stdlib.h>

#include "core.h"

/* Queue an APPEND for p starting at p->next. With data, up to
 * max_msg_entries / max_msg_bytes entries go in (at least one); without,
 * it is an empty APPEND that still checks the log. */
static int send_append(struct raft *r, struct core_prog *p, bool data,
		       raft_index commit)
{
	struct raft_msg m = {0};
	raft_index prev = p->next - 1;
	raft_index last = core_log_last(&r->log);
	size_t n = 0, bytes = 0;
	int rc;

	while (data && prev + n < last && n < r->cfg.max_msg_entries) {
		size_t len = core_log_get(&r->log, prev + n + 1)->len;
		if (n > 0 && bytes + len > r->cfg.max_msg_bytes) {
			break;
		}
		bytes += len;
		n++;
	}
	m.type = RAFT_MSG_APPEND;
	m.to = p->id;
	m.term = r->term;
	m.index = prev;
	m.log_term = core_log_term(&r->log, prev);
	m.commit = commit;
	m.n_entries = n;
	m.context = r->round;
	rc = core_send(r, &m, false);
	if (rc != RAFT_OK) {
		return rc;
	}
	if (n > 0) {
		core_prog_sent(p, prev + n, bytes);
	}
	if (commit > p->commit_sent) {
		p->commit_sent = commit;
	}
	return RAFT_OK;
}

int core_flush(struct raft *r)
{
	raft_index last = core_log_last(&r->log);
	int rc = RAFT_OK;

	assert(r->role == RAFT_LEADER);
	for (size_t i = 0; i < r->n_peers && rc == RAFT_OK; i++) {
		struct core_prog *p = &r->prog[i];
		bool sent = false;

		if (i == r->self) {
			continue;
		}
		while (rc == RAFT_OK && p->next <= last &&
		       !core_prog_paused(p, r->cfg.max_inflight_bytes)) {
			rc = send_append(r, p, true, r->commit);
			sent = true;
		}
		/* Tell an up-to-date follower about a new commit index so it
		 * can apply without waiting for the next heartbeat. */
		if (rc == RAFT_OK && !sent && p->state == CORE_REPLICATE &&
		    p->commit_sent < r->commit) {
			rc = send_append(r, p, false, r->commit);
		}
	}
	return rc;
}

int core_heartbeat(struct raft *r)
{
	int rc = RAFT_OK;

	assert(r->role == RAFT_LEADER);
	/* Each heartbeat opens a new round; waiting reads ride on it
	 * (dissertation 6.4, step 3). */
	r->round++;
	r->prog[r->self].acked_round = r->round;
	core_reads_assign_round(r);
	for (size_t i = 0; i < r->n_peers && rc == RAFT_OK; i++) {
		struct core_prog *p = &r->prog[i];
		raft_index commit;

		if (i == r->self) {
			continue;
		}
		/* A follower may only learn a commit index up to what it is
		 * known to hold. */
		commit = r->commit < p->match ? r->commit : p->match;
		rc = send_append(r, p, false, commit);
		/* A lost probe is retried once per heartbeat. */
		p->probe_sent = false;
	}
	r->need_flush = true;
	if (rc == RAFT_OK) {
		rc = core_reads_round_acked(r);
	}
	return rc;
}

static void check_quorum(struct raft *r)
{
	size_t active = 0;

	for (size_t i = 0; i < r->n_peers; i++) {
		if (i == r->self || r->prog[i].recent_active) {
			active++;
		}
		r->prog[i].recent_active = false;
	}
	if (active < r->quorum) {
		core_become_follower(r, r->term, 0);
	}
}

void core_tick_leader(struct raft *r)
{
	r->hb_elapsed++;
	r->elapsed++;
	if (r->hb_elapsed >= r->cfg.heartbeat_ticks) {
		r->hb_elapsed = 0;
		/* Only ENOMEM; the next heartbeat retries. */
		(void)core_heartbeat(r);
	}
	if (r->elapsed >= r->cfg.election_ticks) {
		r->elapsed = 0;
		if (r->cfg.check_quorum) {
			check_quorum(r);
		}
	}
}

static int cmp_desc(const void *a, const void *b)
{
	raft_index x = *(const raft_index *)a, y = *(const raft_index *)b;

	return x < y ? 1 : x > y ? -1 : 0;
}

void core_maybe_commit(struct raft *r)
{
	raft_index match[RAFT_MAX_PEERS];
	raft_index n;

	assert(r->role == RAFT_LEADER);
	for (size_t i = 0; i < r->n_peers; i++) {
		match[i] = i == r->self ? r->persisted : r->prog[i].match;
	}
	qsort(match, r->n_peers, sizeof(match[0]), cmp_desc);
	n = match[r->quorum - 1];
	if (n <= r->commit) {
		return;
	}
#if !(defined(RAFT_MUTANT) && RAFT_MUTANT == 1)
	/* Figure 2 and Figure 8: only an entry of the current term is
	 * committed by counting replicas; older ones follow it. */
	if (core_log_term(&r->log, n) != r->term) {
		return;
	}
#endif
	r->commit = n;
	r->need_flush = true;
	if (!r->term_committed && core_log_term(&r->log, n) == r->term) {
		/* Dissertation 6.4 step 1: reads may be served now. */
		r->term_committed = true;
		if (r->reads_wait.n > 0) {
			(void)core_heartbeat(r);
		}
	}
}

static int send_append_resp(struct raft *r, const struct raft_msg *m,
			    bool reject, raft_index index, raft_index hint,
			    raft_term hint_term)
{
	struct raft_msg resp = {0};
	bool after_persist = true;

	if (m->n_entries == 0 && !reject && r->durable_term == r->term) {
		/* A heartbeat's answer: at once, durable entries only. */
		if (index > r->persisted) {
			index = r->persisted;
		}
		after_persist = false;
	}
	resp.type = RAFT_MSG_APPEND_RESP;
	resp.to = m->from;
	resp.term = r->term;
	resp.index = index;
	resp.reject = reject;
	resp.hint_index = hint;
	resp.hint_term = hint_term;
	resp.context = m->context;
	return core_send(r, &resp, after_persist);
}

/* Figure 2, AppendEntries receiver step 3-4: skip entries already held,
 * cut the log at the first conflict and append the rest. */
static int append_entries(struct raft *r, const struct raft_msg *m)
{
	size_t i;
	int rc = RAFT_OK;

	for (i = 0; i < m->n_entries; i++) {
		raft_index idx = m->index + 1 + i;
		raft_term t = core_log_term(&r->log, idx);

		if (idx > core_log_last(&r->log)) {
			break;
		}
		if (t == m->entries[i].term) {
			continue;
		}
		if (idx <= r->commit) {
			/* Log Matching guarantees committed entries agree;
			 * a leader saying otherwise is broken. */
			return RAFT_EPROTO;
		}
		core_log_truncate(&r->log, idx);
		if (r->unstable > idx) {
			r->unstable = idx;
		}
		if (r->persisted >= idx) {
			r->persisted = idx - 1;
		}
		r->trunc_gen++;
		break;
	}
#if defined(RAFT_MUTANT) && RAFT_MUTANT == 3
	/* Broken on purpose: a stale APPEND cuts off later entries. */
	if (i == m->n_entries && m->n_entries > 0 &&
	    core_log_last(&r->log) > m->index + m->n_entries &&
	    m->index + m->n_entries > r->commit) {
		raft_index cut = m->index + m->n_entries + 1;
		core_log_truncate(&r->log, cut);
		if (r->unstable > cut) {
			r->unstable = cut;
		}
		if (r->persisted >= cut) {
			r->persisted = cut - 1;
		}
		r->trunc_gen++;
	}
#endif
	for (; i < m->n_entries && rc == RAFT_OK; i++) {
		const struct raft_entry *e = &m->entries[i];
		rc =
		    core_log_append(&r->log, e->term, e->type, e->data, e->len);
	}
	return rc;
}

int core_handle_append(struct raft *r, const struct raft_msg *m)
{
	raft_index last = core_log_last(&r->log);
	raft_index match;
	int rc;

	assert(r->role == RAFT_FOLLOWER && m->term == r->term);
	if (m->index < r->commit) {
		/* Everything through commit already matches any leader of
		 * this term. */
		return send_append_resp(r, m, false, r->commit, 0, 0);
	}
	/* Figure 2, AppendEntries receiver step 2, with the hint of
	 * section 5.3. */
	if (m->index > last) {
		return send_append_resp(r, m, true, m->index, last, 0);
	}
	if (core_log_term(&r->log, m->index) != m->log_term) {
		raft_index hint =
		    core_log_last_at_or_below(&r->log, m->index, m->log_term);
		return send_append_resp(r, m, true, m->index, hint,
					core_log_term(&r->log, hint));
	}
	rc = append_entries(r, m);
	if (rc != RAFT_OK) {
		return rc;
	}
	/* Step 5: commit up to the last entry known to match the leader. */
	match = m->index + m->n_entries;
	if (m->commit > r->commit && match > r->commit) {
		r->commit = m->commit < match ? m->commit : match;
	}
	return send_append_resp(r, m, false, match, 0, 0);
}

/* Where to probe next after a rejection, from the follower's hint. */
static raft_index next_from_hint(const struct raft *r, const struct raft_msg *m)
{
	raft_index next;

	if (m->hint_term == 0) {
		next = m->hint_index + 1;
	} else {
		next = core_log_last_at_or_below(&r->log, m->hint_index,
						 m->hint_term) +
		       1;
	}
	return next < m->index ? next : m->index;
}

/* Does the rejection m prove that p's log lost entries it acknowledged?
 *
 * Its log ended at hint_index (hint_term 0) when it handled the APPEND;
 * below match, that is a loss only if it handled that APPEND after sending
 * the acceptance that raised match, for a follower never cuts an entry it
 * acknowledged to the leader of its term. Rounds order the two: the
 * APPEND carried the round in which it was sent (context), and match_round
 * is the round in which the acceptance arrived. An APPEND of a later round
 * left after the acceptance arrived, so after it was sent. The round the
 * accepted APPEND was sent in would not do: a heartbeat of the next round
 * may overtake that APPEND on the way, be rejected by a follower that is
 * merely behind, and have its rejection arrive after the acceptance. */
static bool log_lost(const struct raft *r, const struct core_prog *p,
		     const struct raft_msg *m)
{
#if defined(RAFT_MUTANT) && RAFT_MUTANT == 4
	/* Broken on purpose: a follower's lost log is never noticed. */
	return false;
#endif
	return m->hint_term == 0 && m->hint_index < p->match &&
	       m->context > p->match_round && m->context <= r->round;
}

/* Report a loss found by log_lost() and catch the follower up from where
 * its log ends now.
 *
 * An acceptance sent before the loss may still be on its way, and would
 * raise match again to entries the follower no longer holds. Any APPEND
 * it answers was sent before this rejection arrived: the follower lost
 * its log before it sent the rejection, and only what reached it earlier
 * can have been accepted from the old log. Acceptances of APPENDs of this
 * round or earlier are therefore ignored from now on. The one for the probe
 * sent below is among them, so match rises again from the next round's
 * probe. */
static void handle_log_lost(struct raft *r, struct core_prog *p,
			    const struct raft_msg *m)
{
	if (r->n_losses < RAFT_MAX_PEERS) {
		r->losses[r->n_losses++] = (struct raft_log_loss){
		    .id = p->id,
		    .acknowledged = p->match,
		    .log_ends = m->hint_index,
		};
	}
	core_prog_lost(p, m->hint_index);
	p->ack_floor = r->round + 1;
	r->need_flush = true;
}

int core_handle_append_resp(struct raft *r, const struct raft_msg *m)
{
	struct core_prog *p = core_prog_of(r, m->from);
	raft_index next;

	assert(r->role == RAFT_LEADER && p != NULL);
	/* A round above the last one sent was never sent by this leader. */
	if (m->context > p->acked_round && m->context <= r->round) {
		p->acked_round = m->context;
		if (core_reads_round_acked(r) != RAFT_OK) {
			return RAFT_ENOMEM;
		}
	}
	if (m->reject && log_lost(r, p, m)) {
		handle_log_lost(r, p, m);
		return RAFT_OK;
	}
	if (m->reject) {
		/* A rejection of something already known to match, or of a
		 * probe other than the latest, is stale. */
		if (m->index <= p->match ||
		    (p->state == CORE_PROBE && m->index != p->next - 1)) {
			return RAFT_OK;
		}
		next = next_from_hint(r, m);
		core_prog_become_probe(p);
		if (next > p->next) {
			p->next = next;
		}
		r->need_flush = true;
		return RAFT_OK;
	}
	if (m->index > core_log_last(&r->log)) {
		return RAFT_EPROTO;
	}
	if (m->context < p->ack_floor) {
		return RAFT_OK;
	}
	if (core_prog_acked(p, m->index)) {
#if defined(RAFT_MUTANT) && RAFT_MUTANT == 5
		/* Broken on purpose: the round the accepted APPEND was sent
		 * in, which a later heartbeat's rejection can overtake. */
		p->match_round = m->context;
#else
		p->match_round = r->round;
#endif
		core_maybe_commit(r);
	}
	if (p->state == CORE_PROBE) {
		core_prog_become_replicate(p);
	}
	r->need_flush = true;
	return RAFT_OK;
}
