/* The public face of the core: creation, input (tick, step, propose, read,
 * persisted, applied) and the update the caller carries out.
 *
 * raft_step() first applies the term rules every message obeys (Raft paper
 * Figure 2, "All Servers": a higher term makes us a follower of it; lower
 * terms are stale), with the exceptions of dissertation 9.6: PreVote
 * messages never change a term, and with CheckQuorum a node that heard from
 * its leader within an election timeout ignores requests for votes (leader
 * stickiness). Then it hands the message to election.c, replication.c or
 * read.c.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

void raft_config_init(struct raft_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->election_ticks = 10;
	cfg->heartbeat_ticks = 1;
	cfg->pre_vote = true;
	cfg->check_quorum = true;
	cfg->max_inflight_msgs = 64;
	cfg->max_inflight_bytes = 8u << 20;
	cfg->max_msg_entries = 1024;
	cfg->max_msg_bytes = 1u << 20;
}

uint64_t core_rand(struct raft *r)
{
	/* splitmix64: small, fast and fully determined by the seed. */
	uint64_t z = (r->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

struct core_prog *core_prog_of(struct raft *r, raft_id id)
{
	for (size_t i = 0; i < r->n_peers; i++) {
		if (r->peer_ids[i] == id) {
			return &r->prog[i];
		}
	}
	return NULL;
}

int core_send(struct raft *r, struct raft_msg *m, bool after_persist)
{
	struct core_outbox *o = after_persist ? &r->out_after : &r->out;
	int rc;

	rc = core_grow(&r->grave, (void **)&o->msgs, &o->cap, sizeof(*m),
		       o->n + 1);
	if (rc != RAFT_OK) {
		return rc;
	}
	m->from = r->cfg.id;
	m->entries = NULL;
	o->msgs[o->n++] = *m;
	return RAFT_OK;
}

bool core_invariants(const struct raft *r)
{
	raft_index last = core_log_last(&r->log);

	/* I1-I3 */
	if (r->commit > last || r->applied > r->commit || r->persisted > last ||
	    r->unstable > last + 1) {
		return false;
	}
	/* I5 */
	if (r->role == RAFT_LEADER) {
		for (size_t i = 0; i < r->n_peers; i++) {
			const struct core_prog *p = &r->prog[i];
			if (i != r->self &&
			    (p->match >= p->next || p->next > last + 1)) {
				return false;
			}
		}
	}
	return true;
}

static int fail(char *errmsg, size_t errlen, const char *what)
{
	if (errmsg != NULL && errlen > 0) {
		snprintf(errmsg, errlen, "%s", what);
	}
	return RAFT_EINVAL;
}

static int check_config(const struct raft_config *c, char *errmsg,
			size_t errlen)
{
	bool self = false;

	if (c->n_peers < 1 || c->n_peers > RAFT_MAX_PEERS || !c->peers) {
		return fail(errmsg, errlen, "n_peers must be 1..9");
	}
	for (size_t i = 0; i < c->n_peers; i++) {
		if (c->peers[i] == 0) {
			return fail(errmsg, errlen, "peer id 0 is reserved");
		}
		for (size_t j = 0; j < i; j++) {
			if (c->peers[j] == c->peers[i]) {
				return fail(errmsg, errlen,
					    "duplicate peer id");
			}
		}
		self = self || c->peers[i] == c->id;
	}
	if (!self) {
		return fail(errmsg, errlen, "id is not among peers");
	}
	if (c->election_ticks < 2 || c->heartbeat_ticks < 1 ||
	    c->heartbeat_ticks >= c->election_ticks) {
		return fail(errmsg, errlen,
			    "need 1 <= heartbeat_ticks < election_ticks");
	}
	if (c->max_inflight_msgs < 1 || c->max_inflight_bytes < 1 ||
	    c->max_msg_entries < 1 || c->max_msg_bytes < 1) {
		return fail(errmsg, errlen,
			    "flow-control limits must be at least 1");
	}
	return RAFT_OK;
}

static int check_restore(const struct raft_config *c,
			 const struct raft_restore *rs, char *errmsg,
			 size_t errlen)
{
	bool vote_ok = rs->vote == 0;
	raft_term prev = 0;

	for (size_t i = 0; i < c->n_peers; i++) {
		vote_ok = vote_ok || c->peers[i] == rs->vote;
	}
	if (!vote_ok) {
		return fail(errmsg, errlen, "vote is not a peer id");
	}
	if (rs->n_entries > 0 && rs->entries == NULL) {
		return fail(errmsg, errlen, "entries is NULL");
	}
	for (size_t i = 0; i < rs->n_entries; i++) {
		const struct raft_entry *e = &rs->entries[i];
		if (e->index != i + 1) {
			return fail(errmsg, errlen,
				    "log has a gap or does not start at 1");
		}
		if (e->term < prev || e->term == 0 || e->term > rs->term) {
			return fail(errmsg, errlen,
				    "log terms decrease, are 0 or exceed the "
				    "stored term");
		}
		if (e->type != RAFT_ENTRY_COMMAND &&
		    e->type != RAFT_ENTRY_NOOP) {
			return fail(errmsg, errlen, "unknown entry type");
		}
		if (e->len > 0 && e->data == NULL) {
			return fail(errmsg, errlen, "entry data is NULL");
		}
		prev = e->term;
	}
	if (rs->applied > rs->n_entries) {
		if (errmsg != NULL && errlen > 0) {
			snprintf(errmsg, errlen,
				 "the state machine has applied index %llu but "
				 "the log ends at %zu: committed entries are "
				 "missing from the log",
				 (unsigned long long)rs->applied, rs->n_entries);
		}
		return RAFT_EINVAL;
	}
	return RAFT_OK;
}

int raft_new(const struct raft_config *cfg, const struct raft_restore *restore,
	     struct raft **out, char *errmsg, size_t errlen)
{
	static const struct raft_restore empty;
	struct raft *r;
	int rc;

	if (cfg == NULL || out == NULL) {
		return fail(errmsg, errlen, "cfg and out are required");
	}
	if (restore == NULL) {
		restore = &empty;
	}
	rc = check_config(cfg, errmsg, errlen);
	if (rc == RAFT_OK) {
		rc = check_restore(cfg, restore, errmsg, errlen);
	}
	if (rc != RAFT_OK) {
		return rc;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		return RAFT_ENOMEM;
	}
	r->cfg = *cfg;
	r->n_peers = cfg->n_peers;
	memcpy(r->peer_ids, cfg->peers, cfg->n_peers * sizeof(raft_id));
	r->cfg.peers = r->peer_ids;
	r->quorum = r->n_peers / 2 + 1;
	r->rng = cfg->seed ^ (cfg->id * 0x2545f4914f6cdd1dull);
	core_log_init(&r->log, &r->grave);
	for (size_t i = 0; i < r->n_peers; i++) {
		if (r->peer_ids[i] == cfg->id) {
			r->self = i;
		}
		rc = core_prog_init(&r->prog[i], r->peer_ids[i],
				    cfg->max_inflight_msgs);
		if (rc != RAFT_OK) {
			goto err_state;
		}
	}
	for (size_t i = 0; i < restore->n_entries; i++) {
		const struct raft_entry *e = &restore->entries[i];
		rc =
		    core_log_append(&r->log, e->term, e->type, e->data, e->len);
		if (rc != RAFT_OK) {
			goto err_state;
		}
	}
	r->term = r->hs_term = r->durable_term = restore->term;
	r->vote = r->hs_vote = restore->vote;
	r->role = r->ss_role = RAFT_FOLLOWER;
	/* Whatever was applied was committed. */
	r->commit = r->applied = restore->applied;
	r->apply_next = restore->applied + 1;
	r->persisted = restore->n_entries;
	r->unstable = restore->n_entries + 1;
	core_reset_timer(r);
	/* Forwarded reads are matched by context: start each incarnation at
	 * a random point so that an answer to a request made before a
	 * restart is not taken for one made after. */
	r->read_seq = core_rand(r) >> 1;
	*out = r;
	return RAFT_OK;

err_state:
	raft_free(r);
	return RAFT_ENOMEM;
}

void raft_free(struct raft *r)
{
	if (r == NULL) {
		return;
	}
	core_log_close(&r->log);
	for (size_t i = 0; i < r->n_peers; i++) {
		core_prog_close(&r->prog[i]);
	}
	core_reads_close(r);
	free(r->out.msgs);
	free(r->out_after.msgs);
	core_grave_flush(&r->grave);
	free(r->grave.ptrs);
	free(r);
}

void raft_tick(struct raft *r)
{
	if (r->role == RAFT_LEADER) {
		core_tick_leader(r);
	} else {
		core_tick_election(r);
	}
	core_reads_tick(r);
	assert(core_invariants(r));
}

/* A message that breaks the protocol's shape is refused whole. */
static bool msg_well_formed(const struct raft_msg *m)
{
	raft_term prev;

	if (m->type < RAFT_MSG_APPEND || m->type > RAFT_MSG_TIMEOUT_NOW) {
		return false;
	}
	if (m->n_entries == 0) {
		return true;
	}
	if (m->type != RAFT_MSG_APPEND || m->entries == NULL) {
		return false;
	}
	prev = m->log_term;
	for (size_t i = 0; i < m->n_entries; i++) {
		const struct raft_entry *e = &m->entries[i];
		if (e->index != m->index + 1 + i || e->term < prev ||
		    e->term > m->term || (e->len > 0 && e->data == NULL) ||
		    (e->type != RAFT_ENTRY_COMMAND &&
		     e->type != RAFT_ENTRY_NOOP)) {
			return false;
		}
		prev = e->term;
	}
	return true;
}

/* Figure 2, All Servers, and dissertation 9.6. Returns false when the
 * message is consumed (stale or ignored). */
static bool step_term(struct raft *r, const struct raft_msg *m, int *rc)
{
	bool vote_req = m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE;

	if (m->term > r->term) {
		if (vote_req && r->cfg.check_quorum && r->leader != 0 &&
		    r->elapsed < r->cfg.election_ticks) {
			/* Leader stickiness: our leader is alive, so this
			 * candidate would only disrupt it. */
			return false;
		}
		if (m->type == RAFT_MSG_PREVOTE ||
		    (m->type == RAFT_MSG_PREVOTE_RESP && !m->reject)) {
			return true;
		}
		core_become_follower(r, m->term,
				     m->type == RAFT_MSG_APPEND ? m->from : 0);
		return true;
	}
	if (m->term < r->term) {
		struct raft_msg resp = {.to = m->from, .term = r->term};
		if (m->type == RAFT_MSG_APPEND) {
			/* Tell a stale leader about the newer term, so that
			 * it steps down even when its term is never bumped
			 * by a vote request (PreVote, CheckQuorum). */
			resp.type = RAFT_MSG_APPEND_RESP;
			resp.reject = true;
			resp.index = m->index;
			/* No context: the round it names belongs to an older
			 * term (or an earlier run of the sender), and echoed
			 * in our term it could pass for an acknowledgement of
			 * a round of the sender's current leadership. */
			resp.context = 0;
			*rc = core_send(r, &resp, false);
		} else if (m->type == RAFT_MSG_PREVOTE) {
			resp.type = RAFT_MSG_PREVOTE_RESP;
			resp.reject = true;
			*rc = core_send(r, &resp, false);
		}
		return false;
	}
	return true;
}

int raft_step(struct raft *r, const struct raft_msg *m)
{
	struct core_prog *p;
	int rc = RAFT_OK;

	if (r == NULL || m == NULL) {
		return RAFT_EINVAL;
	}
	p = core_prog_of(r, m->from);
	if (p == NULL || m->from == r->cfg.id ||
	    (m->to && m->to != r->cfg.id)) {
		return RAFT_OK;
	}
	if (!msg_well_formed(m)) {
		return RAFT_EPROTO;
	}
	if (!step_term(r, m, &rc)) {
		return rc;
	}
	if (m->term == r->term) {
		p->recent_active = true;
	}
	switch (m->type) {
	case RAFT_MSG_APPEND:
		if (r->role == RAFT_LEADER) {
			break; /* impossible: one leader per term */
		}
		if (r->role != RAFT_FOLLOWER || r->leader != m->from) {
			core_become_follower(r, r->term, m->from);
		}
		r->elapsed = 0;
		rc = core_handle_append(r, m);
		break;
	case RAFT_MSG_APPEND_RESP:
		if (r->role == RAFT_LEADER) {
			rc = core_handle_append_resp(r, m);
		}
		break;
	case RAFT_MSG_VOTE:
	case RAFT_MSG_PREVOTE:
		rc = core_handle_vote(r, m);
		break;
	case RAFT_MSG_VOTE_RESP:
		if (r->role == RAFT_CANDIDATE) {
			rc = core_handle_vote_resp(r, m);
		}
		break;
	case RAFT_MSG_PREVOTE_RESP:
		/* A grant echoes the term we asked for; a refusal carries
		 * the voter's term, no higher than ours here. */
		if (r->role == RAFT_PRECANDIDATE &&
		    (m->reject || m->term == r->term + 1)) {
			rc = core_handle_vote_resp(r, m);
		}
		break;
	case RAFT_MSG_READ_INDEX:
		rc = core_handle_read_index(r, m);
		break;
	case RAFT_MSG_READ_INDEX_RESP:
		if (r->role == RAFT_FOLLOWER) {
			rc = core_handle_read_index_resp(r, m);
		}
		break;
	case RAFT_MSG_TIMEOUT_NOW:
		/* TODO(core): leadership transfer is not implemented; the
		 * message is accepted and ignored. */
		break;
	}
	assert(core_invariants(r));
	return rc;
}

int raft_propose(struct raft *r, const void *data, size_t len,
		 raft_index *index, raft_term *term)
{
	int rc;

	if (r == NULL || (len > 0 && data == NULL)) {
		return RAFT_EINVAL;
	}
	if (r->role != RAFT_LEADER) {
		return RAFT_ENOTLEADER;
	}
	rc = core_log_append(&r->log, r->term, RAFT_ENTRY_COMMAND, data, len);
	if (rc != RAFT_OK) {
		return rc;
	}
	r->need_flush = true;
	if (index != NULL) {
		*index = core_log_last(&r->log);
	}
	if (term != NULL) {
		*term = r->term;
	}
	return RAFT_OK;
}

int raft_read_index(struct raft *r, uint64_t id)
{
	if (r == NULL) {
		return RAFT_EINVAL;
	}
	return core_read_request(r, id, 0);
}

static raft_index apply_limit(const struct raft *r)
{
	/* Only entries durable here are handed out to apply, so that the
	 * state machine never runs ahead of the log after a crash. */
	return r->commit < r->persisted ? r->commit : r->persisted;
}

bool raft_has_update(const struct raft *r)
{
	return r->term != r->hs_term || r->vote != r->hs_vote ||
	       r->unstable <= core_log_last(&r->log) || r->out.n > 0 ||
	       r->out_after.n > 0 || r->apply_next <= apply_limit(r) ||
	       r->n_reads_done > 0 || r->n_losses > 0 ||
	       r->role != r->ss_role || r->leader != r->ss_leader ||
	       (r->role == RAFT_LEADER && r->need_flush);
}

void raft_get_update(struct raft *r, struct raft_update *u)
{
	raft_index last, hi;

	if (r->role == RAFT_LEADER && r->need_flush) {
		r->need_flush = false;
		/* ENOMEM leaves followers to be caught up later. */
		(void)core_flush(r);
	}
	memset(u, 0, sizeof(*u));
	u->hard_state_changed = r->term != r->hs_term || r->vote != r->hs_vote;
	u->term = r->term;
	u->vote = r->vote;

	last = core_log_last(&r->log);
	if (r->unstable <= last) {
		u->entries = core_log_get(&r->log, r->unstable);
		u->n_entries = last - r->unstable + 1;
	}

	/* Queued APPENDs name their entries by index; point them at the log
	 * now. The log does not move or change until raft_advance(). */
	for (size_t i = 0; i < r->out.n; i++) {
		struct raft_msg *m = &r->out.msgs[i];
		if (m->type == RAFT_MSG_APPEND && m->n_entries > 0) {
			m->entries = core_log_get(&r->log, m->index + 1);
		}
	}
	u->msgs = r->out.msgs;
	u->n_msgs = r->out.n;
	u->msgs_after_persist = r->out_after.msgs;
	u->n_msgs_after_persist = r->out_after.n;

	hi = apply_limit(r);
	if (r->apply_next <= hi) {
		u->committed = core_log_get(&r->log, r->apply_next);
		u->n_committed = hi - r->apply_next + 1;
	}
	u->reads = r->reads_done;
	u->n_reads = r->n_reads_done;

	u->soft_state_changed =
	    r->role != r->ss_role || r->leader != r->ss_leader;
	u->role = r->role;
	u->leader = r->leader;
	u->commit = r->commit;
	u->losses = r->losses;
	u->n_losses = r->n_losses;

	r->grave.update_out = true;
	r->out_handed = r->out.n;
	r->upd_gen = r->trunc_gen;
}

static void outbox_consume(struct core_outbox *o, size_t n)
{
	if (n > o->n) {
		n = o->n;
	}
	if (n == 0) {
		return;
	}
	memmove(o->msgs, o->msgs + n, (o->n - n) * sizeof(*o->msgs));
	o->n -= n;
}

void raft_advance(struct raft *r, const struct raft_update *u)
{
	if (u->hard_state_changed) {
		r->hs_term = u->term;
		r->hs_vote = u->vote;
	}
	/* If the log was cut since the update was taken, unstable already
	 * points at the cut and the caller will be given the new entries. */
	if (u->n_entries > 0 && r->trunc_gen == r->upd_gen &&
	    r->unstable == u->entries[0].index) {
		r->unstable = u->entries[u->n_entries - 1].index + 1;
	}
	outbox_consume(&r->out, u->n_msgs);
	outbox_consume(&r->out_after, u->n_msgs_after_persist);
	if (u->n_committed > 0) {
		raft_index next = u->committed[u->n_committed - 1].index + 1;
		if (next > r->apply_next) {
			r->apply_next = next;
		}
	}
	if (u->n_reads > 0) {
		size_t n =
		    u->n_reads < r->n_reads_done ? u->n_reads : r->n_reads_done;
		memmove(r->reads_done, r->reads_done + n,
			(r->n_reads_done - n) * sizeof(*r->reads_done));
		r->n_reads_done -= n;
	}
	if (u->n_losses > 0) {
		size_t n =
		    u->n_losses < r->n_losses ? u->n_losses : r->n_losses;
		memmove(r->losses, r->losses + n,
			(r->n_losses - n) * sizeof(*r->losses));
		r->n_losses -= n;
	}
	r->ss_role = u->role;
	r->ss_leader = u->leader;
	r->grave.update_out = false;
	r->out_handed = 0;
	core_grave_flush(&r->grave);
	assert(core_invariants(r));
}

void raft_persisted(struct raft *r, raft_index index, raft_term term)
{
	/* Ignore an acknowledgement for entries that were replaced since,
	 * or that were never handed out. */
	if (index == 0 || index >= r->unstable ||
	    core_log_term(&r->log, index) != term || index <= r->persisted) {
		return;
	}
	r->persisted = index;
	if (r->role == RAFT_LEADER) {
		core_maybe_commit(r);
	}
}

void raft_hard_state_persisted(struct raft *r, raft_term term)
{
	/* A term above the current one was never handed out. */
	if (term > r->durable_term && term <= r->hs_term) {
		r->durable_term = term;
	}
}

void raft_applied(struct raft *r, raft_index index)
{
	if (index <= r->applied) {
		return;
	}
	r->applied = index < r->commit ? index : r->commit;
	/* Only ENOMEM; the reads stay ready and are retried on the next
	 * call. */
	(void)core_reads_applied(r);
}

void raft_get_status(const struct raft *r, struct raft_status *s)
{
	memset(s, 0, sizeof(*s));
	s->id = r->cfg.id;
	s->role = r->role;
	s->term = r->term;
	s->vote = r->vote;
	s->leader = r->leader;
	s->commit = r->commit;
	s->applied = r->applied;
	s->last_index = core_log_last(&r->log);
	s->last_term = core_log_last_term(&r->log);
	s->persisted = r->persisted;
	s->n_peers = r->n_peers;
	for (size_t i = 0; i < r->n_peers; i++) {
		struct raft_peer_status *ps = &s->peers[i];
		ps->id = r->peer_ids[i];
		if (i == r->self) {
			ps->match = r->persisted;
			ps->next = s->last_index + 1;
			ps->state = 1;
		} else if (r->role == RAFT_LEADER) {
			ps->match = r->prog[i].match;
			ps->next = r->prog[i].next;
			ps->state = r->prog[i].state == CORE_REPLICATE;
		}
	}
}

raft_id raft_leader(const struct raft *r)
{
	return r->leader;
}

enum raft_role raft_role(const struct raft *r)
{
	return r->role;
}

raft_term raft_current_term(const struct raft *r)
{
	return r->term;
}
