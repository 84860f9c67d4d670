/* The simulated world: nodes, their disks, the network, faults and
 * clients. See sim.h for what is checked.
 *
 * One unit of time (sim_step): deliver every message due now, in random
 * order; complete due disk writes, in order per node; tick the nodes whose
 * tick falls on this unit; maybe issue a client write or read; maybe inject
 * a fault. After each event the affected node's updates are carried out
 * exactly as raft.h prescribes, and the checks run.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL) {
		fprintf(stderr, "sim: out of memory\n");
		abort();
	}
	return p;
}

static void grow(void **v, size_t *cap, size_t elem, size_t need)
{
	size_t c = *cap ? *cap : 8;
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
	*v = p;
	*cap = c;
}

uint64_t sim_rand(struct sim *s)
{
	uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

unsigned sim_below(struct sim *s, unsigned n)
{
	return n ? (unsigned)(sim_rand(s) % n) : 0;
}

void sim_trace(struct sim *s, const char *fmt, ...)
{
	va_list ap;

	if (!s->verbose) {
		return;
	}
	printf("%6llu.%u ", (unsigned long long)(s->now / SIM_UNITS_PER_TICK),
	       (unsigned)(s->now % SIM_UNITS_PER_TICK));
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

void sim_fail(struct sim *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (s->failed) {
		return;
	}
	s->failed = true;
	n = snprintf(s->why, sizeof(s->why), "at tick %llu: ",
		     (unsigned long long)(s->now / SIM_UNITS_PER_TICK));
	va_start(ap, fmt);
	vsnprintf(s->why + n, sizeof(s->why) - (size_t)n, fmt, ap);
	va_end(ap);
	sim_trace(s, "VIOLATION %s", s->why);
}

/* Entries and messages, deep-copied. */

static void entry_copy(struct raft_entry *dst, const struct raft_entry *src)
{
	*dst = *src;
	dst->data = NULL;
	if (src->len > 0) {
		dst->data = xmalloc(src->len);
		memcpy(dst->data, src->data, src->len);
	}
}

static struct raft_entry *entries_copy(const struct raft_entry *e, size_t n)
{
	struct raft_entry *c;

	if (n == 0) {
		return NULL;
	}
	c = xmalloc(n * sizeof(*c));
	for (size_t i = 0; i < n; i++) {
		entry_copy(&c[i], &e[i]);
	}
	return c;
}

static void entries_free(struct raft_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].data);
	}
	free(e);
}

static void msg_copy(struct raft_msg *dst, const struct raft_msg *src)
{
	*dst = *src;
	dst->entries = entries_copy(src->entries, src->n_entries);
}

static void msg_free(struct raft_msg *m)
{
	entries_free((struct raft_entry *)m->entries, m->n_entries);
	m->entries = NULL;
}

static void log_truncate(struct sim_log *l, raft_index index)
{
	while (l->n >= index && l->n > 0) {
		free(l->v[l->n - 1].data);
		l->n--;
	}
}

static void log_append(struct sim_log *l, const struct raft_entry *e)
{
	grow((void **)&l->v, &l->cap, sizeof(*l->v), l->n + 1);
	entry_copy(&l->v[l->n++], e);
}

static void log_free(struct sim_log *l)
{
	log_truncate(l, 1);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static const char *msg_name(enum raft_msg_type t)
{
	static const char *names[] = {"?",
				      "APPEND",
				      "APPEND_RESP",
				      "VOTE",
				      "VOTE_RESP",
				      "PREVOTE",
				      "PREVOTE_RESP",
				      "READ_INDEX",
				      "READ_INDEX_RESP",
				      "TIMEOUT_NOW"};

	return t <= RAFT_MSG_TIMEOUT_NOW ? names[t] : "?";
}

static void trace_msg(struct sim *s, const char *what, const struct raft_msg *m)
{
	sim_trace(s,
		  "%s %s %llu->%llu term %llu index %llu log_term %llu "
		  "commit %llu n %zu%s hint %llu/%llu ctx %llu",
		  what, msg_name(m->type), (unsigned long long)m->from,
		  (unsigned long long)m->to, (unsigned long long)m->term,
		  (unsigned long long)m->index, (unsigned long long)m->log_term,
		  (unsigned long long)m->commit, m->n_entries,
		  m->reject ? " reject" : "", (unsigned long long)m->hint_index,
		  (unsigned long long)m->hint_term,
		  (unsigned long long)m->context);
}

/* The network. */

static void net_send(struct sim *s, const struct raft_msg *m)
{
	unsigned copies = 1;

	if (s->faults && sim_below(s, 1000) < s->p_drop) {
		trace_msg(s, "drop", m);
		return;
	}
	if (s->faults && sim_below(s, 1000) < s->p_dup) {
		copies = 2;
	}
	for (unsigned i = 0; i < copies; i++) {
		struct sim_flight *f;
		uint64_t delay = 1 + sim_below(s, 15);

		if (s->faults && sim_below(s, 1000) < s->p_long) {
			delay += 30 + sim_below(s, 300);
		}
		grow((void **)&s->net, &s->cap_net, sizeof(*s->net),
		     s->n_net + 1);
		f = &s->net[s->n_net++];
		msg_copy(&f->m, m);
		f->at = s->now + delay;
	}
}

static struct sim_node *node_of(struct sim *s, raft_id id)
{
	return &s->nodes[id - 1];
}

static void deliver(struct sim *s, struct raft_msg *m)
{
	struct sim_node *to = node_of(s, m->to);
	int rc;

	if (to->r == NULL || s->cut[m->from][m->to]) {
		trace_msg(s, "lost", m);
		return;
	}
	trace_msg(s, "recv", m);
	rc = raft_step(to->r, m);
	if (rc != RAFT_OK) {
		sim_fail(s, "node %llu: raft_step %s: %s",
			 (unsigned long long)to->id, msg_name(m->type),
			 raft_strerror(rc));
		return;
	}
	sim_drain(s, to);
}

static void net_deliver_due(struct sim *s)
{
	struct sim_flight *due = NULL;
	size_t n_due = 0, cap_due = 0, j = 0;

	for (size_t i = 0; i < s->n_net; i++) {
		if (s->net[i].at <= s->now) {
			grow((void **)&due, &cap_due, sizeof(*due), n_due + 1);
			due[n_due++] = s->net[i];
		} else {
			s->net[j++] = s->net[i];
		}
	}
	s->n_net = j;
	/* Same-time messages arrive in random order. */
	for (size_t i = n_due; i > 1; i--) {
		size_t k = sim_below(s, (unsigned)i);
		struct sim_flight t = due[i - 1];
		due[i - 1] = due[k];
		due[k] = t;
	}
	for (size_t i = 0; i < n_due; i++) {
		if (!s->failed) {
			deliver(s, &due[i].m);
		}
		msg_free(&due[i].m);
	}
	free(due);
}

/* Disks. */

static void job_free(struct sim_job *j)
{
	entries_free(j->ents, j->n_ents);
	for (size_t i = 0; i < j->n_msgs; i++) {
		msg_free(&j->msgs[i]);
	}
	free(j->msgs);
}

static void jobs_drop(struct sim_node *nd)
{
	for (size_t i = 0; i < nd->n_jobs; i++) {
		job_free(&nd->jobs[i]);
	}
	nd->n_jobs = 0;
}

static void disk_complete(struct sim *s, struct sim_node *nd)
{
	struct sim_job j = nd->jobs[0];

	memmove(nd->jobs, nd->jobs + 1, (nd->n_jobs - 1) * sizeof(j));
	nd->n_jobs--;
	if (j.hs) {
		nd->d_term = j.term;
		nd->d_vote = j.vote;
		raft_hard_state_persisted(nd->r, j.term);
	}
	if (j.n_ents > 0) {
		log_truncate(&nd->disk, j.ents[0].index);
		for (size_t i = 0; i < j.n_ents; i++) {
			log_append(&nd->disk, &j.ents[i]);
		}
		sim_trace(s, "n%llu durable through %llu",
			  (unsigned long long)nd->id,
			  (unsigned long long)j.ents[j.n_ents - 1].index);
		raft_persisted(nd->r, j.ents[j.n_ents - 1].index,
			       j.ents[j.n_ents - 1].term);
	}
	for (size_t i = 0; i < j.n_msgs; i++) {
		trace_msg(s, "send", &j.msgs[i]);
		net_send(s, &j.msgs[i]);
	}
	job_free(&j);
	sim_drain(s, nd);
}

static void disk_queue(struct sim *s, struct sim_node *nd,
		       const struct raft_update *u)
{
	struct sim_job *j;
	uint64_t at = s->now + 1 + sim_below(s, s->disk_max);

	grow((void **)&nd->jobs, &nd->cap_jobs, sizeof(*nd->jobs),
	     nd->n_jobs + 1);
	/* Writes complete in order. */
	if (nd->n_jobs > 0 && nd->jobs[nd->n_jobs - 1].at > at) {
		at = nd->jobs[nd->n_jobs - 1].at;
	}
	j = &nd->jobs[nd->n_jobs++];
	memset(j, 0, sizeof(*j));
	j->hs = u->hard_state_changed;
	j->term = u->term;
	j->vote = u->vote;
	j->ents = entries_copy(u->entries, u->n_entries);
	j->n_ents = u->n_entries;
	if (u->n_msgs_after_persist > 0) {
		j->msgs = xmalloc(u->n_msgs_after_persist * sizeof(*j->msgs));
		for (size_t i = 0; i < u->n_msgs_after_persist; i++) {
			msg_copy(&j->msgs[i], &u->msgs_after_persist[i]);
		}
		j->n_msgs = u->n_msgs_after_persist;
	}
	j->at = at;
}

/* Cut node x off from everyone for ticks. */
static void isolate(struct sim *s, raft_id x, unsigned ticks)
{
	memset(s->cut, 0, sizeof(s->cut));
	for (raft_id b = 1; b <= s->n; b++) {
		s->cut[x][b] = s->cut[b][x] = b != x;
	}
	s->heal_at = s->now + SIM_UNITS_PER_TICK * ticks;
	sim_trace(s, "PARTITION isolate n%llu for %u ticks",
		  (unsigned long long)x, ticks);
}

static void cut_node(struct sim *s, raft_id x, bool cut);
static void fig8_new_leader(struct sim *s, struct sim_node *nd);

/* Carry out one node's updates the way raft.h prescribes. */
void sim_drain(struct sim *s, struct sim_node *nd)
{
	while (!s->failed && nd->r != NULL && raft_has_update(nd->r)) {
		struct raft_update u;
		bool became_leader, crash_now;

		raft_get_update(nd->r, &u);
		/* The nemesis likes to crash a node whose new vote is not on
		 * disk yet. */
		if (s->faults && s->vote_crash && u.hard_state_changed &&
		    u.vote != 0 && nd->crash_at == 0 && sim_below(s, 2) == 0) {
			nd->crash_at = s->now + 1 + sim_below(s, s->disk_max);
			/* ... and to silence the candidate it voted for: it
			 * still hears its votes, but nobody hears from it, so
			 * the others may elect someone else in the same term
			 * (a vote that was not durable is then cast twice). */
			if (u.vote != nd->id && s->heal_at == 0 &&
			    sim_below(s, 2) == 0) {
				for (raft_id b = 1; b <= s->n; b++) {
					s->cut[u.vote][b] = b != u.vote;
				}
				s->heal_at =
				    s->now + SIM_UNITS_PER_TICK *
						 (10 + sim_below(s, 30));
				sim_trace(s, "PARTITION n%llu cannot send",
					  (unsigned long long)u.vote);
			}
		}
		/* ... and a leader that has just committed entries of older
		 * terms, before its messages leave (the situation of Raft
		 * paper Figure 8). */
		crash_now =
		    s->faults && u.role == RAFT_LEADER && u.n_committed > 0 &&
		    u.committed[0].term < u.term &&
		    ((s->churn && sim_below(s, 2) == 0) ||
		     (s->fig8 && s->f8_state == 2 && nd->id == s->f8_a));
		/* 1. persist (and hold back what must wait for it) */
		if (u.hard_state_changed || u.n_entries > 0 ||
		    u.n_msgs_after_persist > 0) {
			disk_queue(s, nd, &u);
		}
		if (u.n_entries > 0) {
			log_truncate(&nd->wal, u.entries[0].index);
			for (size_t i = 0; i < u.n_entries; i++) {
				const struct raft_entry *e = &u.entries[i];
				raft_term prev =
				    e->index >= 2 && nd->wal.n >= e->index - 1
					? nd->wal.v[e->index - 2].term
					: 0;
				sim_check_entry(s, nd, e, prev);
				log_append(&nd->wal, e);
			}
		}
		/* 2. send */
		for (size_t i = 0; i < u.n_msgs && !crash_now; i++) {
			trace_msg(s, "send", &u.msgs[i]);
			net_send(s, &u.msgs[i]);
		}
		/* 4. apply */
		for (size_t i = 0; i < u.n_committed; i++) {
			sim_check_apply(s, nd, &u.committed[i]);
		}
		if (crash_now) {
			/* Applied, but nothing sent: crash here, for long
			 * enough that the others elect someone else. */
			sim_crash(s, nd);
			nd->down_until = s->now + SIM_UNITS_PER_TICK *
						      (10 + sim_below(s, 40));
			if (s->fig8 && s->f8_state == 2) {
				nd->down_until =
				    s->now + SIM_UNITS_PER_TICK * 80;
				cut_node(s, s->f8_c, false);
				s->f8_state = 3;
				s->f8_deadline =
				    s->now + SIM_UNITS_PER_TICK * 60;
			}
			return;
		}
		/* 5. reads */
		for (size_t i = 0; i < u.n_reads; i++) {
			sim_check_read(s, nd, &u.reads[i]);
		}
		became_leader = u.role == RAFT_LEADER &&
				(nd->role != RAFT_LEADER || nd->term != u.term);
		if (u.soft_state_changed || nd->term != u.term) {
			sim_trace(s, "n%llu %s term %llu leader %llu",
				  (unsigned long long)nd->id,
				  raft_role_name(u.role),
				  (unsigned long long)u.term,
				  (unsigned long long)u.leader);
		}
		for (size_t i = 0; i < u.n_losses; i++) {
			sim_check_loss(s, nd, &u.losses[i]);
		}
		nd->role = u.role;
		nd->term = u.term;
		raft_advance(nd->r, &u);
		if (u.n_committed > 0) {
			raft_applied(nd->r,
				     u.committed[u.n_committed - 1].index);
		}
		if (became_leader) {
			sim_check_leader(s, nd);
			fig8_new_leader(s, nd);
		}
	}
}

/* Crashes. */

void sim_crash(struct sim *s, struct sim_node *nd)
{
	size_t j = 0;

	sim_trace(s, "n%llu CRASH (%zu writes lost)",
		  (unsigned long long)nd->id, nd->n_jobs);
	raft_free(nd->r);
	nd->r = NULL;
	nd->crash_at = 0;
	jobs_drop(nd);
	/* The log as handed out is what the disk holds now. */
	log_truncate(&nd->wal, 1);
	for (size_t i = 0; i < nd->disk.n; i++) {
		log_append(&nd->wal, &nd->disk.v[i]);
	}
	nd->role = RAFT_FOLLOWER;
	/* Its clients lose their connection: outcomes unknown. */
	for (size_t i = 0; i < s->n_pending; i++) {
		if (s->pending[i].node != nd->id) {
			s->pending[j++] = s->pending[i];
		}
	}
	s->n_pending = j;
	j = 0;
	for (size_t i = 0; i < s->n_reads; i++) {
		if (s->reads[i].node != nd->id) {
			s->reads[j++] = s->reads[i];
		}
	}
	s->n_reads = j;
}

void sim_restart(struct sim *s, struct sim_node *nd)
{
	struct raft_restore rs = {.term = nd->d_term,
				  .vote = nd->d_vote,
				  .entries = nd->disk.v,
				  .n_entries = nd->disk.n,
				  .applied = nd->sm_applied};
	struct raft_config cfg = s->cfg;
	char err[128] = "";
	int rc;

	cfg.id = nd->id;
	cfg.seed = s->seed * 131 + nd->id * 7 + ++nd->restarts;
	rc = raft_new(&cfg, &rs, &nd->r, err, sizeof(err));
	if (rc != RAFT_OK) {
		sim_fail(s, "node %llu cannot restart: %s (%s)",
			 (unsigned long long)nd->id, raft_strerror(rc), err);
		return;
	}
	nd->term = nd->d_term;
	nd->role = RAFT_FOLLOWER;
	sim_trace(s, "n%llu RESTART term %llu vote %llu log %zu applied %llu",
		  (unsigned long long)nd->id, (unsigned long long)nd->d_term,
		  (unsigned long long)nd->d_vote, nd->disk.n,
		  (unsigned long long)nd->sm_applied);
}

void sim_wipe(struct sim *s, struct sim_node *nd)
{
	sim_crash(s, nd);
	log_truncate(&nd->disk, 1);
	log_truncate(&nd->wal, 1);
	nd->d_term = 0;
	nd->d_vote = 0;
	nd->sm_applied = 0;
	nd->sm_write_index = 0;
	nd->sm_write_op = 0;
	nd->wipes++;
	sim_trace(s, "n%llu WIPE", (unsigned long long)nd->id);
	sim_restart(s, nd);
}

/* Clients. */

int sim_propose(struct sim *s, struct sim_node *nd)
{
	unsigned char buf[100];
	size_t len = 8 + sim_below(s, sizeof(buf) - 8 + 1);
	uint64_t op = ++s->next_op;
	raft_index index;
	raft_term term;
	int rc;

	memcpy(buf, &op, 8);
	for (size_t i = 8; i < len; i++) {
		buf[i] = (unsigned char)(op + i);
	}
	rc = raft_propose(nd->r, buf, len, &index, &term);
	if (rc == RAFT_OK) {
		grow((void **)&s->pending, &s->cap_pending, sizeof(*s->pending),
		     s->n_pending + 1);
		s->pending[s->n_pending++] = (struct sim_write){
		    .op = op, .node = nd->id, .index = index, .term = term};
		sim_trace(s, "n%llu propose op %llu at %llu term %llu",
			  (unsigned long long)nd->id, (unsigned long long)op,
			  (unsigned long long)index, (unsigned long long)term);
	} else if (rc != RAFT_ENOTLEADER) {
		sim_fail(s, "raft_propose: %s", raft_strerror(rc));
	}
	sim_drain(s, nd);
	return rc;
}

void sim_read(struct sim *s, struct sim_node *nd)
{
	uint64_t id = ++s->next_read;
	int rc = raft_read_index(nd->r, id);

	if (rc == RAFT_OK) {
		grow((void **)&s->reads, &s->cap_reads, sizeof(*s->reads),
		     s->n_reads + 1);
		s->reads[s->n_reads++] = (struct sim_read){
		    .id = id, .node = nd->id, .min_index = s->max_acked_index};
		sim_trace(s, "n%llu read %llu (must see %llu)",
			  (unsigned long long)nd->id, (unsigned long long)id,
			  (unsigned long long)s->max_acked_index);
	} else if (rc != RAFT_ENOTLEADER) {
		sim_fail(s, "raft_read_index: %s", raft_strerror(rc));
	}
	sim_drain(s, nd);
}

struct sim_node *sim_leader(struct sim *s)
{
	struct sim_node *best = NULL;

	for (size_t i = 0; i < s->n; i++) {
		struct sim_node *nd = &s->nodes[i];
		if (nd->r != NULL && raft_role(nd->r) == RAFT_LEADER &&
		    (best == NULL || nd->term > best->term)) {
			best = nd;
		}
	}
	return best;
}

/* A random node among those that believe they lead, or NULL. */
static struct sim_node *any_leader(struct sim *s)
{
	struct sim_node *l[SIM_MAX_NODES];
	size_t n = 0;

	for (size_t i = 0; i < s->n; i++) {
		struct sim_node *nd = &s->nodes[i];
		if (nd->r != NULL && raft_role(nd->r) == RAFT_LEADER) {
			l[n++] = nd;
		}
	}
	return n ? l[sim_below(s, (unsigned)n)] : NULL;
}

/* Faults, decided once per tick. */

static void cut_links(struct sim *s)
{
	unsigned kind = sim_below(s, 4);
	size_t n = s->n;

	memset(s->cut, 0, sizeof(s->cut));
	if (kind == 0) {
		/* Full partition into two sides. */
		unsigned side = 1 + sim_below(s, (1u << n) - 2);
		for (raft_id a = 1; a <= n; a++) {
			for (raft_id b = 1; b <= n; b++) {
				bool sa = side >> (a - 1) & 1;
				bool sb = side >> (b - 1) & 1;
				s->cut[a][b] = sa != sb;
			}
		}
		sim_trace(s, "PARTITION sides mask %u", side);
	} else if (kind == 1) {
		/* One node isolated. */
		raft_id x = 1 + sim_below(s, (unsigned)n);
		for (raft_id b = 1; b <= n; b++) {
			s->cut[x][b] = s->cut[b][x] = b != x;
		}
		sim_trace(s, "PARTITION isolate n%llu", (unsigned long long)x);
	} else if (kind == 2) {
		/* One-way: a node's outgoing (or incoming) links. */
		raft_id x = 1 + sim_below(s, (unsigned)n);
		bool out = sim_below(s, 2);
		for (raft_id b = 1; b <= n; b++) {
			if (b != x) {
				if (out) {
					s->cut[x][b] = true;
				} else {
					s->cut[b][x] = true;
				}
			}
		}
		sim_trace(s, "PARTITION one-way n%llu %s",
			  (unsigned long long)x, out ? "out" : "in");
	} else {
		/* Partial: random links, each direction on its own. */
		for (raft_id a = 1; a <= n; a++) {
			for (raft_id b = 1; b <= n; b++) {
				s->cut[a][b] = a != b && sim_below(s, 3) == 0;
			}
		}
		sim_trace(s, "PARTITION partial");
	}
}

static void heal_links(struct sim *s)
{
	memset(s->cut, 0, sizeof(s->cut));
	s->heal_at = 0;
	sim_trace(s, "HEAL");
}

/* Cut x off from everyone, leaving other cuts in place. */
static void cut_node(struct sim *s, raft_id x, bool cut)
{
	s->f8_cut[x] = cut;
	for (raft_id b = 1; b <= s->n; b++) {
		if (b != x) {
			s->cut[x][b] = s->cut[b][x] = cut || s->f8_cut[b];
		}
	}
	sim_trace(s, "FIG8 %s n%llu", cut ? "cut" : "reconnect",
		  (unsigned long long)x);
}

/* The Figure 8 nemesis (Raft paper section 5.4.2), step by step:
 *   0: a leader A is cut off; clients keep writing to it, so it gathers
 *      entries of its term that nobody else has;
 *   1: the others elect C, which is cut off the moment it wins, so its
 *      no-op stays on C alone; A comes back;
 *   2: A wins again and, on its first commit of entries of its old term,
 *      crashes before its messages leave (sim_drain);
 *   3: C comes back and may be elected by those holding A's old entries
 *      but not A's new no-op. A correct leader never committed those
 *      entries by counting; a leader that did has lost them (S3).
 * Each step gives up after a while and the script starts over. */
static void fig8_tick(struct sim *s)
{
	struct sim_node *l = sim_leader(s);

	if (s->now < s->f8_deadline) {
		if (s->f8_state != 2 || s->nodes[s->f8_a - 1].r != NULL) {
			return;
		}
	}
	switch (s->f8_state) {
	case 0:
		if (l == NULL) {
			return;
		}
		s->f8_a = l->id;
		s->f8_c = 0;
		cut_node(s, l->id, true);
		s->f8_state = 1;
		s->f8_deadline =
		    s->now + SIM_UNITS_PER_TICK * (10 + sim_below(s, 20));
		return;
	case 3:
		/* A stays down; C and the rest had their chance. */
		break;
	default:
		break;
	}
	/* Start over: heal everything. */
	memset(s->cut, 0, sizeof(s->cut));
	memset(s->f8_cut, 0, sizeof(s->f8_cut));
	s->f8_state = 0;
	s->f8_deadline = s->now + SIM_UNITS_PER_TICK * (20 + sim_below(s, 40));
	sim_trace(s, "FIG8 heal, start over");
}

/* Called when nd became leader: step 1 of the Figure 8 nemesis. */
static void fig8_new_leader(struct sim *s, struct sim_node *nd)
{
	if (!s->fig8 || !s->faults || s->f8_state != 1 || nd->id == s->f8_a) {
		return;
	}
	s->f8_c = nd->id;
	cut_node(s, nd->id, true);
	cut_node(s, s->f8_a, false);
	s->f8_state = 2;
	s->f8_deadline = s->now + SIM_UNITS_PER_TICK * 60;
}

static void faults_tick(struct sim *s)
{
	for (size_t i = 0; i < s->n; i++) {
		struct sim_node *nd = &s->nodes[i];
		if (nd->r == NULL && s->now >= nd->down_until) {
			sim_restart(s, nd);
		}
	}
	if (!s->faults) {
		return;
	}
	if (s->fig8) {
		fig8_tick(s);
		return;
	}
	if (sim_below(s, 1000) < 12) {
		struct sim_node *nd = &s->nodes[sim_below(s, (unsigned)s->n)];
		if (nd->r != NULL) {
			sim_crash(s, nd);
			nd->down_until = s->now + SIM_UNITS_PER_TICK *
						      (2 + sim_below(s, 40));
		}
	}
	if (s->churn && sim_below(s, 1000) < 40) {
		struct sim_node *l = sim_leader(s);
		if (l != NULL && sim_below(s, 2) == 0) {
			sim_crash(s, l);
			l->down_until = s->now + SIM_UNITS_PER_TICK *
						     (1 + sim_below(s, 10));
		} else if (l != NULL && s->heal_at == 0) {
			isolate(s, l->id, 3 + sim_below(s, 30));
		}
	}
	if (s->heal_at == 0 && sim_below(s, 1000) < 15) {
		cut_links(s);
		s->heal_at =
		    s->now + SIM_UNITS_PER_TICK * (5 + sim_below(s, 100));
	} else if (s->heal_at != 0 && s->now >= s->heal_at) {
		heal_links(s);
	}
	if (sim_below(s, 1000) < 20) {
		s->p_drop = sim_below(s, 4) == 0 ? sim_below(s, 300) : 0;
		s->p_dup = sim_below(s, 100);
		s->p_long = sim_below(s, 80);
		s->disk_max = 1 + sim_below(s, 60);
	}
}

void sim_step(struct sim *s)
{
	s->now++;
	net_deliver_due(s);
	for (size_t i = 0; i < s->n && !s->failed; i++) {
		/* Visit nodes from a random start for fairness. */
		struct sim_node *nd = &s->nodes[(i + s->now) % s->n];
		while (nd->r != NULL && nd->n_jobs > 0 &&
		       nd->jobs[0].at <= s->now && !s->failed) {
			disk_complete(s, nd);
		}
	}
	for (size_t i = 0; i < s->n && !s->failed; i++) {
		struct sim_node *nd = &s->nodes[i];
		if (nd->r != NULL && nd->crash_at != 0 &&
		    s->now >= nd->crash_at && s->faults) {
			sim_crash(s, nd);
			nd->down_until =
			    s->now + SIM_UNITS_PER_TICK * (1 + sim_below(s, 4));
		}
		if (nd->r != NULL &&
		    (s->now + nd->phase) % SIM_UNITS_PER_TICK == 0) {
			raft_tick(nd->r);
			sim_drain(s, nd);
		}
	}
	if (s->failed) {
		return;
	}
	if (s->now % SIM_UNITS_PER_TICK == 0) {
		faults_tick(s);
	}
	if (s->faults && sim_below(s, 1000) < 60) {
		struct sim_node *nd = any_leader(s);
		/* Mostly at some node that believes it leads (a stale leader
		 * cut off from the others has clients too); sometimes wherever
		 * a client is. */
		if (nd == NULL || sim_below(s, 8) == 0) {
			nd = &s->nodes[sim_below(s, (unsigned)s->n)];
		}
		if (nd->r != NULL && sim_propose(s, nd) == RAFT_OK &&
		    s->churn && s->heal_at == 0 && sim_below(s, 4) == 0) {
			/* Leave the new entry on this leader alone. */
			isolate(s, nd->id, 3 + sim_below(s, 15));
		}
	}
	if (s->faults && sim_below(s, 1000) < 30) {
		struct sim_node *nd = &s->nodes[sim_below(s, (unsigned)s->n)];
		if (nd->r != NULL) {
			sim_read(s, nd);
		}
	}
}

int sim_init(struct sim *s, uint64_t seed, bool verbose)
{
	memset(s, 0, sizeof(*s));
	s->seed = seed;
	s->rng = seed * 0x9e3779b97f4a7c15ull + 1;
	s->verbose = verbose;
	s->n = sim_below(s, 2) ? 5 : 3;
	for (size_t i = 0; i < s->n; i++) {
		s->peers[i] = i + 1;
	}
	raft_config_init(&s->cfg);
	s->cfg.peers = s->peers;
	s->cfg.n_peers = s->n;
	s->cfg.election_ticks = 10;
	s->cfg.heartbeat_ticks = 1 + sim_below(s, 3);
	s->cfg.pre_vote = sim_below(s, 4) != 0;
	s->cfg.check_quorum = sim_below(s, 4) != 0;
	s->cfg.max_inflight_msgs = 1 + sim_below(s, 8);
	s->cfg.max_inflight_bytes = 200 + sim_below(s, 4000);
	s->cfg.max_msg_entries =
	    sim_below(s, 4) == 0 ? 1 : 1 + sim_below(s, 64);
	if (s->cfg.max_msg_entries < 4) {
		/* Keep up with the clients through pipelining. */
		s->cfg.max_inflight_msgs = 8;
		s->cfg.max_inflight_bytes = 1u << 20;
	}
	s->cfg.max_msg_bytes = 200 + sim_below(s, 2000);
	s->disk_max = 1 + sim_below(s, 40);
	s->p_dup = sim_below(s, 50);
	s->p_long = sim_below(s, 50);
	s->faults = true;
	s->vote_crash = sim_below(s, 2) == 0;
	s->churn = sim_below(s, 2) == 0;
	s->fig8 = sim_below(s, 4) == 0;
	if (s->fig8) {
		/* Small batches make a leader catch a follower up through
		 * its old entries before reaching its new ones. */
		s->cfg.max_msg_entries = 1 + sim_below(s, 3);
		s->cfg.max_inflight_msgs = 8;
		s->cfg.max_inflight_bytes = 1u << 20;
		s->churn = false;
		s->vote_crash = false;
	}
	sim_trace(s,
		  "seed %llu: %zu nodes, heartbeat %u, pre_vote %d, "
		  "check_quorum %d, inflight %zu/%zu, msg %zu/%zu, "
		  "vote_crash %d, churn %d, fig8 %d",
		  (unsigned long long)seed, s->n, s->cfg.heartbeat_ticks,
		  s->cfg.pre_vote, s->cfg.check_quorum,
		  s->cfg.max_inflight_msgs, s->cfg.max_inflight_bytes,
		  s->cfg.max_msg_entries, s->cfg.max_msg_bytes, s->vote_crash,
		  s->churn, s->fig8);
	for (size_t i = 0; i < s->n; i++) {
		struct sim_node *nd = &s->nodes[i];
		nd->id = i + 1;
		nd->phase = sim_below(s, SIM_UNITS_PER_TICK);
		sim_restart(s, nd);
		if (s->failed) {
			return -1;
		}
	}
	return 0;
}

void sim_close(struct sim *s)
{
	for (size_t i = 0; i < s->n; i++) {
		struct sim_node *nd = &s->nodes[i];
		raft_free(nd->r);
		jobs_drop(nd);
		free(nd->jobs);
		log_free(&nd->disk);
		log_free(&nd->wal);
	}
	for (size_t i = 0; i < s->n_net; i++) {
		msg_free(&s->net[i].m);
	}
	free(s->net);
	free(s->leaders);
	free(s->applied);
	for (size_t i = 0; i < s->cap_lm; i++) {
		free(s->lm[i].v);
	}
	free(s->lm);
	free(s->pending);
	free(s->acked);
	free(s->reads);
}
