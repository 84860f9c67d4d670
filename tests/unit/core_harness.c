/* In-memory harness for the core's unit tests; see core_harness.h. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core_harness.h"

void ch_config(struct raft_config *cfg, raft_id *peers, raft_id id, size_t n)
{
	raft_config_init(cfg);
	for (size_t i = 0; i < n; i++) {
		peers[i] = i + 1;
	}
	cfg->id = id;
	cfg->peers = peers;
	cfg->n_peers = n;
	cfg->seed = 42;
}

void ch_start(struct ch_node *nd, raft_id id, size_t n,
	      const struct raft_config *cfg, const struct raft_restore *rs)
{
	struct raft_config c;
	char err[128] = "";
	int rc;

	memset(nd, 0, sizeof(*nd));
	nd->id = id;
	nd->n_peers = n;
	if (cfg != NULL) {
		c = *cfg;
		for (size_t i = 0; i < n; i++) {
			nd->peers[i] = i + 1;
		}
		c.peers = nd->peers;
		c.n_peers = n;
		c.id = id;
	} else {
		ch_config(&c, nd->peers, id, n);
	}
	nd->auto_apply = true;
	rc = raft_new(&c, rs, &nd->r, err, sizeof(err));
	ck_assert_msg(rc == RAFT_OK, "raft_new: %s", err);
	if (rs != NULL && rs->n_entries > 0) {
		nd->written = rs->n_entries;
		nd->written_term = rs->entries[rs->n_entries - 1].term;
	}
}

void ch_msgs_clear(struct ch_msgs *m)
{
	for (size_t i = 0; i < m->n; i++) {
		struct raft_entry *e = (struct raft_entry *)m->v[i].entries;
		for (size_t j = 0; j < m->v[i].n_entries; j++) {
			free(e[j].data);
		}
		free(e);
	}
	m->n = 0;
}

static void msgs_free(struct ch_msgs *m)
{
	ch_msgs_clear(m);
	free(m->v);
	memset(m, 0, sizeof(*m));
}

void ch_clear(struct ch_node *nd)
{
	ch_msgs_clear(&nd->now);
	ch_msgs_clear(&nd->after);
	nd->n_reads = 0;
}

void ch_stop(struct ch_node *nd)
{
	raft_free(nd->r);
	msgs_free(&nd->now);
	msgs_free(&nd->after);
	free(nd->committed);
	memset(nd, 0, sizeof(*nd));
}

static void msgs_push(struct ch_msgs *l, const struct raft_msg *m)
{
	struct raft_msg *c;
	struct raft_entry *e = NULL;

	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		ck_assert_ptr_nonnull(l->v);
	}
	c = &l->v[l->n++];
	*c = *m;
	if (m->n_entries > 0) {
		e = malloc(m->n_entries * sizeof(*e));
		ck_assert_ptr_nonnull(e);
		for (size_t i = 0; i < m->n_entries; i++) {
			e[i] = m->entries[i];
			if (e[i].len > 0) {
				e[i].data = malloc(e[i].len);
				memcpy(e[i].data, m->entries[i].data, e[i].len);
			}
		}
	}
	c->entries = e;
}

void ch_drain(struct ch_node *nd)
{
	struct raft_update u;

	while (raft_has_update(nd->r)) {
		raft_get_update(nd->r, &u);
		nd->n_updates++;
		if (u.hard_state_changed) {
			nd->n_hard_states++;
			nd->hs_term = u.term;
			nd->hs_vote = u.vote;
		}
		if (u.n_entries > 0) {
			nd->written = u.entries[u.n_entries - 1].index;
			nd->written_term = u.entries[u.n_entries - 1].term;
			nd->n_written += u.n_entries;
		}
		for (size_t i = 0; i < u.n_msgs; i++) {
			msgs_push(&nd->now, &u.msgs[i]);
		}
		for (size_t i = 0; i < u.n_msgs_after_persist; i++) {
			msgs_push(&nd->after, &u.msgs_after_persist[i]);
		}
		for (size_t i = 0; i < u.n_committed; i++) {
			if (nd->n_committed == nd->cap_committed) {
				nd->cap_committed = nd->cap_committed
							? nd->cap_committed * 2
							: 64;
				nd->committed =
				    realloc(nd->committed,
					    nd->cap_committed *
						sizeof(struct raft_entry));
			}
			nd->committed[nd->n_committed++] = u.committed[i];
		}
		for (size_t i = 0; i < u.n_reads && nd->n_reads < 64; i++) {
			nd->reads[nd->n_reads++] = u.reads[i];
		}
		for (size_t i = 0; i < u.n_losses; i++, nd->n_losses++) {
			if (nd->n_losses < 16) {
				nd->losses[nd->n_losses] = u.losses[i];
			}
		}
		raft_advance(nd->r, &u);
		if (nd->auto_apply && u.n_committed > 0) {
			raft_applied(nd->r,
				     u.committed[u.n_committed - 1].index);
		}
	}
}

void ch_persist(struct ch_node *nd)
{
	raft_persisted(nd->r, nd->written, nd->written_term);
}

const struct raft_msg *ch_find(const struct ch_msgs *m, int type, raft_id to)
{
	for (size_t i = 0; i < m->n; i++) {
		if ((int)m->v[i].type == type &&
		    (to == 0 || m->v[i].to == to)) {
			return &m->v[i];
		}
	}
	return NULL;
}

size_t ch_count(const struct ch_msgs *m, int type)
{
	size_t n = 0;

	for (size_t i = 0; i < m->n; i++) {
		n += (int)m->v[i].type == type;
	}
	return n;
}

int ch_step(struct ch_node *nd, const struct raft_msg *m)
{
	int rc = raft_step(nd->r, m);

	ch_drain(nd);
	return rc;
}

void ch_tick(struct ch_node *nd, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		raft_tick(nd->r);
		ch_drain(nd);
	}
}

void ch_tick_until_campaign(struct ch_node *nd)
{
	for (int i = 0; i < 1000 && raft_role(nd->r) == RAFT_FOLLOWER; i++) {
		ch_tick(nd, 1);
	}
	ck_assert_int_ne(raft_role(nd->r), RAFT_FOLLOWER);
}

void ch_make_leader(struct ch_node *nd)
{
	ch_tick_until_campaign(nd);
	if (raft_role(nd->r) == RAFT_PRECANDIDATE) {
		raft_term t = raft_current_term(nd->r) + 1;
		for (size_t i = 0; i < nd->n_peers; i++) {
			struct raft_msg m = {.type = RAFT_MSG_PREVOTE_RESP,
					     .from = nd->peers[i],
					     .to = nd->id,
					     .term = t};
			if (nd->peers[i] != nd->id) {
				ch_step(nd, &m);
			}
		}
	}
	ck_assert_int_eq(raft_role(nd->r), RAFT_CANDIDATE);
	ch_persist(nd);
	for (size_t i = 0; i < nd->n_peers; i++) {
		struct raft_msg m = {.type = RAFT_MSG_VOTE_RESP,
				     .from = nd->peers[i],
				     .to = nd->id,
				     .term = raft_current_term(nd->r)};
		if (nd->peers[i] != nd->id && raft_role(nd->r) != RAFT_LEADER) {
			ch_step(nd, &m);
		}
	}
	ck_assert_int_eq(raft_role(nd->r), RAFT_LEADER);
	ch_clear(nd);
}

void ch_cluster_start(struct ch_cluster *c, size_t n,
		      const struct raft_config *base)
{
	memset(c, 0, sizeof(*c));
	c->n = n;
	for (size_t i = 0; i < n; i++) {
		struct raft_config cfg;
		raft_id peers[RAFT_MAX_PEERS];

		if (base != NULL) {
			cfg = *base;
		} else {
			ch_config(&cfg, peers, i + 1, n);
		}
		cfg.seed = 1000 + i;
		ch_start(&c->nodes[i], i + 1, n, &cfg, NULL);
	}
}

void ch_cluster_stop(struct ch_cluster *c)
{
	for (size_t i = 0; i < c->n; i++) {
		ch_stop(&c->nodes[i]);
	}
}

struct ch_node *ch_node_of(struct ch_cluster *c, raft_id id)
{
	ck_assert(id >= 1 && id <= c->n);
	return &c->nodes[id - 1];
}

static bool deliver(struct ch_cluster *c, struct ch_node *from,
		    struct ch_msgs *l)
{
	bool moved = l->n > 0;

	for (size_t i = 0; i < l->n; i++) {
		const struct raft_msg *m = &l->v[i];
		if (c->down[from->id] || c->down[m->to]) {
			continue;
		}
		ck_assert_int_eq(raft_step(ch_node_of(c, m->to)->r, m),
				 RAFT_OK);
	}
	ch_msgs_clear(l);
	return moved;
}

void ch_cluster_settle(struct ch_cluster *c)
{
	bool moved = true;

	for (int round = 0; moved && round < 10000; round++) {
		moved = false;
		for (size_t i = 0; i < c->n; i++) {
			struct ch_node *nd = &c->nodes[i];
			ch_drain(nd);
			if (!c->down[nd->id]) {
				ch_persist(nd);
			}
			ch_drain(nd);
			moved |= deliver(c, nd, &nd->now);
			moved |= deliver(c, nd, &nd->after);
		}
	}
}

void ch_cluster_tick(struct ch_cluster *c)
{
	for (size_t i = 0; i < c->n; i++) {
		if (!c->down[c->nodes[i].id]) {
			raft_tick(c->nodes[i].r);
		}
	}
	ch_cluster_settle(c);
}

raft_id ch_cluster_leader(struct ch_cluster *c)
{
	raft_id best = 0;
	raft_term term = 0;

	for (size_t i = 0; i < c->n; i++) {
		struct raft *r = c->nodes[i].r;
		if (!c->down[c->nodes[i].id] && raft_role(r) == RAFT_LEADER &&
		    raft_current_term(r) >= term) {
			best = c->nodes[i].id;
			term = raft_current_term(r);
		}
	}
	return best;
}

raft_id ch_cluster_elect(struct ch_cluster *c, raft_id who)
{
	struct ch_node *nd = ch_node_of(c, who);

	for (int i = 0; i < 1000 && raft_role(nd->r) != RAFT_LEADER; i++) {
		raft_tick(nd->r);
		ch_cluster_settle(c);
	}
	ck_assert_int_eq(raft_role(nd->r), RAFT_LEADER);
	return who;
}
