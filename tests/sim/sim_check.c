/* The simulation's safety checks (S1-S6 in sim.h). Each runs where the
 * state it looks at changes, so that after every event everything holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define U(x) ((unsigned long long)(x))

static void grow_zero(void **v, size_t *cap, size_t elem, size_t need)
{
	size_t c = *cap ? *cap : 64;
	void *p;

	if (need <= *cap) {
		return;
	}
	while (c < need) {
		c *= 2;
	}
	p = realloc(*v, c * elem);
	if (p == NULL) {
		fprintf(stderr, "sim: out of memory\n");
		abort();
	}
	memset((char *)p + *cap * elem, 0, (c - *cap) * elem);
	*v = p;
	*cap = c;
}

uint64_t sim_entry_op(const struct raft_entry *e)
{
	uint64_t op = 0;

	if (e->type == RAFT_ENTRY_COMMAND && e->len >= 8) {
		memcpy(&op, e->data, 8);
	}
	return op;
}

/* S2: one content per (index, term), always after the same term. */
void sim_check_entry(struct sim *s, struct sim_node *nd,
		     const struct raft_entry *e, raft_term prev)
{
	struct sim_lm_slot *slot;
	uint64_t op = sim_entry_op(e);

	if (e->index > 1 && nd->wal.n < e->index - 1) {
		sim_fail(s, "n%llu handed out entry %llu after a gap (log %zu)",
			 U(nd->id), U(e->index), nd->wal.n);
		return;
	}
	grow_zero((void **)&s->lm, &s->cap_lm, sizeof(*s->lm), e->index + 1);
	slot = &s->lm[e->index];
	for (size_t i = 0; i < slot->n; i++) {
		struct sim_lm *x = &slot->v[i];
		if (x->term != e->term) {
			continue;
		}
		if (x->prev != prev || x->op != op) {
			sim_fail(s,
				 "S2 log matching: n%llu has entry %llu term "
				 "%llu (op %llu, after term %llu); another "
				 "log has op %llu after term %llu",
				 U(nd->id), U(e->index), U(e->term), U(op),
				 U(prev), U(x->op), U(x->prev));
		}
		return;
	}
	if (slot->n == slot->cap) {
		slot->cap = slot->cap ? slot->cap * 2 : 2;
		slot->v = realloc(slot->v, slot->cap * sizeof(*slot->v));
		if (slot->v == NULL) {
			abort();
		}
	}
	slot->v[slot->n++] = (struct sim_lm){e->term, prev, op};
}

/* Does nd's log hold the entry applied at index? */
static bool holds(const struct sim_node *nd, raft_index index,
		  const struct sim_applied *a)
{
	return nd->wal.n >= index && nd->wal.v[index - 1].term == a->term &&
	       sim_entry_op(&nd->wal.v[index - 1]) == a->op;
}

static raft_term max_term(const struct sim *s)
{
	raft_term t = 0;

	for (size_t i = 0; i < s->n; i++) {
		const struct sim_node *nd = &s->nodes[i];
		raft_term x = nd->r ? raft_current_term(nd->r) : nd->d_term;
		if (x > t) {
			t = x;
		}
	}
	return t;
}

static void ack_writes(struct sim *s, struct sim_node *nd,
		       const struct raft_entry *e, uint64_t op)
{
	size_t j = 0;

	for (size_t i = 0; i < s->n_pending; i++) {
		struct sim_write w = s->pending[i];

		if (w.node != nd->id || w.index != e->index) {
			s->pending[j++] = w;
			continue;
		}
		if (w.term != e->term || w.op != op) {
			continue; /* replaced: the client learns it failed */
		}
		grow_zero((void **)&s->acked, &s->cap_acked, sizeof(w),
			  s->n_acked + 1);
		s->acked[s->n_acked++] = w;
		if (w.index > s->max_acked_index) {
			s->max_acked_index = w.index;
		}
		sim_trace(s, "ack op %llu at %llu", U(w.op), U(w.index));
	}
	s->n_pending = j;
}

/* S3 for a newly applied index, S4, payload integrity, the register. */
void sim_check_apply(struct sim *s, struct sim_node *nd,
		     const struct raft_entry *e)
{
	struct sim_applied *a;
	uint64_t op = sim_entry_op(e);

	if (e->index != nd->sm_applied + 1) {
		sim_fail(s, "n%llu applies %llu after %llu", U(nd->id),
			 U(e->index), U(nd->sm_applied));
		return;
	}
	if (e->type == RAFT_ENTRY_COMMAND) {
		const unsigned char *p = e->data;
		for (size_t i = 8; i < e->len; i++) {
			if (p[i] != (unsigned char)(op + i)) {
				sim_fail(s, "n%llu entry %llu payload corrupt",
					 U(nd->id), U(e->index));
				return;
			}
		}
	}
	grow_zero((void **)&s->applied, &s->cap_applied, sizeof(*s->applied),
		  e->index + 1);
	a = &s->applied[e->index];
	if (a->term == 0) {
		a->term = e->term;
		a->op = op;
		a->bound = max_term(s);
		if (e->index > s->max_applied) {
			s->max_applied = e->index;
		}
		for (size_t i = 0; i < s->n; i++) {
			struct sim_node *l = &s->nodes[i];
			if (l->r != NULL && raft_role(l->r) == RAFT_LEADER &&
			    raft_current_term(l->r) >= a->bound &&
			    !holds(l, e->index, a)) {
				sim_fail(s,
					 "S3 leader completeness: leader n%llu "
					 "of term %llu lacks entry %llu term "
					 "%llu applied by n%llu",
					 U(l->id), U(raft_current_term(l->r)),
					 U(e->index), U(e->term), U(nd->id));
				return;
			}
		}
	} else if (a->term != e->term || a->op != op) {
		sim_fail(s,
			 "S4 state machine safety: n%llu applies term %llu op "
			 "%llu at %llu; term %llu op %llu was applied there",
			 U(nd->id), U(e->term), U(op), U(e->index), U(a->term),
			 U(a->op));
		return;
	}
	nd->sm_applied = e->index;
	if (e->type == RAFT_ENTRY_COMMAND) {
		nd->sm_write_index = e->index;
		nd->sm_write_op = op;
	}
	ack_writes(s, nd, e, op);
}

/* S1, and S3 for a new leader against everything applied so far. */
void sim_check_leader(struct sim *s, struct sim_node *nd)
{
	raft_term t = raft_current_term(nd->r);

	grow_zero((void **)&s->leaders, &s->cap_leaders, sizeof(*s->leaders),
		  t + 1);
	if (s->leaders[t] != 0 && s->leaders[t] != nd->id) {
		sim_fail(s,
			 "S1 election safety: n%llu and n%llu both lead "
			 "term %llu",
			 U(s->leaders[t]), U(nd->id), U(t));
		return;
	}
	s->leaders[t] = nd->id;
	for (raft_index i = 1; i <= s->max_applied; i++) {
		const struct sim_applied *a = &s->applied[i];
		if (a->term != 0 && a->bound <= t && !holds(nd, i, a)) {
			sim_fail(s,
				 "S3 leader completeness: new leader n%llu of "
				 "term %llu lacks applied entry %llu term "
				 "%llu",
				 U(nd->id), U(t), U(i), U(a->term));
			return;
		}
	}
}

/* S6: a read sees every write acknowledged before it began. */
void sim_check_read(struct sim *s, struct sim_node *nd,
		    const struct raft_read *rd)
{
	struct sim_read r;
	size_t i;

	for (i = 0; i < s->n_reads; i++) {
		if (s->reads[i].id == rd->id) {
			break;
		}
	}
	if (i == s->n_reads || s->reads[i].node != nd->id) {
		sim_fail(s, "n%llu reports read %llu it was never asked",
			 U(nd->id), U(rd->id));
		return;
	}
	r = s->reads[i];
	s->reads[i] = s->reads[--s->n_reads];
	if (rd->status != RAFT_OK) {
		sim_trace(s, "n%llu read %llu failed: %s", U(nd->id), U(rd->id),
			  raft_strerror(rd->status));
		return;
	}
	if (nd->sm_applied < rd->index) {
		sim_fail(s,
			 "n%llu serves read %llu at %llu before applying "
			 "it (applied %llu)",
			 U(nd->id), U(rd->id), U(rd->index), U(nd->sm_applied));
		return;
	}
	if (rd->index < r.min_index || nd->sm_write_index < r.min_index) {
		sim_fail(s,
			 "S6 stale read: n%llu read %llu at index %llu sees "
			 "write at %llu, but the write at %llu was "
			 "acknowledged before it began",
			 U(nd->id), U(rd->id), U(rd->index),
			 U(nd->sm_write_index), U(r.min_index));
		return;
	}
	s->n_read_ok++;
	sim_trace(s, "n%llu read %llu ok at %llu (value op %llu)", U(nd->id),
		  U(rd->id), U(rd->index), U(nd->sm_write_op));
}

/* S7: a report that a member lost acknowledged entries answers a wipe of
 * its disk, one report per wipe. */
void sim_check_loss(struct sim *s, struct sim_node *nd,
		    const struct raft_log_loss *loss)
{
	struct sim_node *m;

	if (loss->id < 1 || loss->id > s->n || loss->id == nd->id ||
	    loss->log_ends >= loss->acknowledged) {
		sim_fail(s,
			 "S7 loss reports: leader n%llu reports n%llu with "
			 "acknowledged %llu, log ends %llu",
			 U(nd->id), U(loss->id), U(loss->acknowledged),
			 U(loss->log_ends));
		return;
	}
	m = &s->nodes[loss->id - 1];
	if (m->losses_reported >= m->wipes) {
		sim_fail(s,
			 "S7 loss reports: leader n%llu reports that n%llu "
			 "lost entries it acknowledged through %llu (its log "
			 "ends at %llu), but its disk was wiped %u times and "
			 "this is report %u",
			 U(nd->id), U(loss->id), U(loss->acknowledged),
			 U(loss->log_ends), m->wipes, m->losses_reported + 1);
		return;
	}
	m->losses_reported++;
	sim_trace(s, "n%llu reports n%llu lost entries %llu..%llu", U(nd->id),
		  U(loss->id), U(loss->log_ends + 1), U(loss->acknowledged));
}

/* S5 at the end: the final leader holds every acknowledged write. */
void sim_check_final(struct sim *s)
{
	struct sim_node *l = sim_leader(s);

	if (l == NULL) {
		sim_fail(s, "no leader at the end");
		return;
	}
	for (size_t i = 0; i < s->n_acked; i++) {
		const struct sim_write *w = &s->acked[i];
		if (l->wal.n < w->index ||
		    l->wal.v[w->index - 1].term != w->term ||
		    sim_entry_op(&l->wal.v[w->index - 1]) != w->op) {
			sim_fail(s,
				 "S5 durability: acknowledged write op %llu "
				 "at %llu term %llu is not in leader n%llu's "
				 "log",
				 U(w->op), U(w->index), U(w->term), U(l->id));
			return;
		}
	}
}
