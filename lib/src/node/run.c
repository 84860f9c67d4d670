/* The update loop: carry out what the core asks (raft.h, top comment) with
 * the log, the transport and the state machine, and resolve the requests
 * that wait on it.
 *
 * Happy path, per update:
 *   1. hard state and entries go to rlog_write(); its callback (loop
 *      thread, in submission order) calls raft_persisted() and sends the
 *      update's msgs_after_persist (votes and append acknowledgements must
 *      not leave before the state they promise is durable: Raft paper,
 *      Figure 2, "Persistent state ... updated on stable storage before
 *      responding to RPCs");
 *   2. msgs go to rnet_send() at once (a leader writes its own log in
 *      parallel with replication, dissertation 10.2.1);
 *   3. committed entries are queued and handed to the node's apply thread
 *      (applier_main): entries committed while it applies a batch are
 *      appended to the one pending batch, which it takes as soon as it is
 *      done, without waiting for the loop. A batch of at most
 *      fsm->loop_max entries, while nothing is in flight on the thread, is
 *      applied right on the loop instead (no wake-up of the thread and back;
 *      measured in docs/performance.md). When a batch is done, proposals at
 *      those indexes are answered and raft_applied() lets the core release
 *      waiting reads;
 *   4. ready reads are answered after raft_advance(), so that their
 *      callbacks may call back into the node.
 *
 * Failure modes: an rlog error or a non-zero fsm->apply puts the node in
 * NODE_FAILED (fail-stop): the core is no longer driven, every pending
 * request fails with the error, later ones with RAFT_ESHUTDOWN. A failed
 * rnet_send() drops the message; Raft retransmits. Out of memory while
 * copying held-back messages fails the node as well, because dropping an
 * acknowledgement silently could stall replication forever.
 *
 * Invariants (checked by node_invariants() after every run):
 *   1. proposals are queued by strictly increasing index;
 *   2. n_pending counts the queued proposals and reads;
 *   3. applied <= queued, and the entries not yet applied are exactly
 *      applied + 1 .. queued: the batches handed to the apply thread
 *      (apply_head .. apply_tail, done ones first), then apply_q, each
 *      contiguous;
 *   4. while RUNNING, proposals above queued belong to the current term of
 *      a node that leads it;
 *   5. n_at_commit counts the queued proposals to be answered at commit,
 *      and none of them is at or below queued (answered in the run that
 *      queued its entry).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/transport.h"
#include "node/node.h"

void node_logf(struct raft_node *n, enum raft_log_level level, const char *fmt,
	       ...)
{
	char line[1024];
	va_list ap;

	if (n->cfg.log == NULL) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	n->cfg.log(n->cfg.log_data, level, line);
}

static void kick_cb(uv_idle_t *idle)
{
	struct raft_node *n = idle->data;

	uv_idle_stop(idle);
	node_run(n);
}

void node_kick(struct raft_node *n)
{
	if (n->state == NODE_RUNNING) {
		uv_idle_start(&n->kick, kick_cb);
	}
}

/* Requests */

static void fail_proposal(struct raft_node *n, struct node_proposal *p, int rc)
{
	n->n_pending--;
	n->n_at_commit -= p->at_commit;
	p->cb(p->arg, rc, 0, NULL);
	free(p);
}

static void unlink_read(struct raft_node *n, struct node_read *r)
{
	if (r->prev != NULL) {
		r->prev->next = r->next;
	} else {
		n->read_head = r->next;
	}
	if (r->next != NULL) {
		r->next->prev = r->prev;
	} else {
		n->read_tail = r->prev;
	}
	n->n_pending--;
}

void node_fail_pending(struct raft_node *n, int rc)
{
	/* Detach the lists first: callbacks may issue new requests. */
	struct node_proposal *p = n->prop_head;
	struct node_read *r;

	n->prop_head = n->prop_tail = NULL;
	while (p != NULL) {
		struct node_proposal *next = p->next;

		fail_proposal(n, p, rc);
		p = next;
	}
	while ((r = n->read_head) != NULL) {
		unlink_read(n, r);
		r->cb(r->arg, rc, 0);
		free(r);
	}
}

void node_expire_reads(struct raft_node *n)
{
	uint64_t now = uv_now(n->loop);
	struct node_read *r;

	while ((r = n->read_head) != NULL && r->deadline <= now) {
		unlink_read(n, r);
		r->cb(r->arg, RAFT_ETIMEDOUT, 0);
		free(r);
	}
}

static void deliver_read(struct raft_node *n, const struct node_read_done *d)
{
	struct node_read *r = n->read_head;

	/* Reads are usually answered in the order they were issued. */
	while (r != NULL && r->id != d->id) {
		r = r->next;
	}
	if (r == NULL) {
		return; /* timed out or failed already */
	}
	unlink_read(n, r);
	r->cb(r->arg, d->status, d->status == RAFT_OK ? d->index : 0);
	free(r);
}

/* A proposal not yet committed can no longer be answered once this node
 * stops leading the term it was proposed in: its entry may be overwritten
 * by the next leader (Raft paper, 5.3) or commit without this node
 * learning of it in time. Committed ones (index <= queued) stay: their
 * outcome is decided and the apply answers them. */
static void check_leadership(struct raft_node *n)
{
	enum raft_role role = raft_role(n->core);
	raft_term term = raft_current_term(n->core);
	struct node_proposal **pp = &n->prop_head;
	struct node_proposal *lost = NULL, **lost_tail = &lost;

	if (role == n->role && term == n->term) {
		return;
	}
	/* Unlink first, answer after: callbacks may propose again. */
	n->prop_tail = NULL;
	while (*pp != NULL) {
		struct node_proposal *p = *pp;

		if (p->index > n->queued &&
		    (role != RAFT_LEADER || p->term != term)) {
			*pp = p->next;
			p->next = NULL;
			*lost_tail = p;
			lost_tail = &p->next;
		} else {
			n->prop_tail = p;
			pp = &p->next;
		}
	}
	while (lost != NULL) {
		struct node_proposal *next = lost->next;

		fail_proposal(n, lost, RAFT_ELEADERLOST);
		lost = next;
	}
}

/* Role, term and leader changes are logged at info. */
static void note_soft_state(struct raft_node *n)
{
	enum raft_role role = raft_role(n->core);
	raft_term term = raft_current_term(n->core);
	raft_id leader = raft_leader(n->core);

	if (role == n->logged_role && leader == n->leader &&
	    term == n->logged_term) {
		return;
	}
	node_logf(n, RAFT_LOG_INFO,
		  "msg=\"state changed\" id=%llu role=%s term=%llu leader=%llu",
		  (unsigned long long)n->cfg.id, raft_role_name(role),
		  (unsigned long long)term, (unsigned long long)leader);
	n->logged_role = role;
	n->logged_term = term;
	n->leader = leader;
}

/* A member that lost entries it had made durable breaks an assumption of
 * Raft: the operator should find out how. Logged once per loss. */
static void note_log_losses(struct raft_node *n, const struct raft_update *u)
{
	for (size_t i = 0; i < u->n_losses; i++) {
		const struct raft_log_loss *l = &u->losses[i];

		node_logf(n, RAFT_LOG_WARN,
			  "msg=\"member lost acknowledged log entries\" "
			  "id=%llu peer=%llu acknowledged=%llu log_ends=%llu "
			  "action=\"find out how its data directory lost "
			  "them; it is being sent the log again\"",
			  (unsigned long long)n->cfg.id,
			  (unsigned long long)l->id,
			  (unsigned long long)l->acknowledged,
			  (unsigned long long)l->log_ends);
	}
}

/* Messages */

static struct raft_msg *msg_copy(const struct raft_msg *m)
{
	size_t size = sizeof(*m) + m->n_entries * sizeof(struct raft_entry);
	struct raft_msg *c;
	struct raft_entry *e;
	char *payload;

	for (size_t i = 0; i < m->n_entries; i++) {
		size += m->entries[i].len;
	}
	c = malloc(size);
	if (c == NULL) {
		return NULL;
	}
	*c = *m;
	e = (struct raft_entry *)(c + 1);
	payload = (char *)(e + m->n_entries);
	for (size_t i = 0; i < m->n_entries; i++) {
		e[i] = m->entries[i];
		if (e[i].len > 0) {
			memcpy(payload, m->entries[i].data, e[i].len);
			e[i].data = payload;
			payload += e[i].len;
		} else {
			e[i].data = NULL;
		}
	}
	c->entries = m->n_entries > 0 ? e : NULL;
	return c;
}

static int msgs_add(struct node_msgs *q, const struct raft_msg *m, size_t n)
{
	if (q->n + n > q->cap) {
		size_t cap = q->cap ? q->cap : 8;
		struct raft_msg **v;

		while (cap < q->n + n) {
			cap *= 2;
		}
		v = realloc(q->v, cap * sizeof(*v));
		if (v == NULL) {
			return RAFT_ENOMEM;
		}
		q->v = v;
		q->cap = cap;
	}
	for (size_t i = 0; i < n; i++) {
		struct raft_msg *c = msg_copy(&m[i]);

		if (c == NULL) {
			return RAFT_ENOMEM;
		}
		q->v[q->n++] = c;
	}
	return RAFT_OK;
}

static void msgs_free(struct node_msgs *q)
{
	for (size_t i = 0; i < q->n; i++) {
		free(q->v[i]);
	}
	free(q->v);
	memset(q, 0, sizeof(*q));
}

static void send_msgs(struct raft_node *n, const struct raft_msg *m,
		      size_t count)
{
	for (size_t i = 0; i < count; i++) {
		/* A message to a peer that is down or slow is dropped; the
		 * core retransmits (heartbeats, probes, vote timeouts). */
		rnet_send(n->net, &m[i]);
	}
}

/* Persisting */

static void persist_free(struct node_persist *p)
{
	msgs_free(&p->after);
	free(p);
}

static void persist_done(struct rlog_req *req, int status)
{
	struct node_persist *p = req->data;
	struct raft_node *n = p->node;

	/* rlog calls back in submission order. */
	n->persist_head = p->next;
	if (n->persist_head == NULL) {
		n->persist_tail = NULL;
	}
	if (n->state == NODE_RUNNING) {
		if (status != RAFT_OK) {
			node_fail(n, status, "log_write");
		} else {
			if (p->req.set_hard_state) {
				raft_hard_state_persisted(n->core, p->req.term);
			}
			if (p->has_entries) {
				raft_persisted(n->core, p->last_index,
					       p->last_term);
			}
			for (size_t i = 0; i < p->after.n; i++) {
				rnet_send(n->net, p->after.v[i]);
			}
			node_kick(n);
		}
	}
	persist_free(p);
}

static int persist(struct raft_node *n, const struct raft_update *u)
{
	struct node_persist *p = calloc(1, sizeof(*p));
	int rc;

	if (p == NULL) {
		return RAFT_ENOMEM;
	}
	p->node = n;
	p->req.data = p;
	p->req.set_hard_state = u->hard_state_changed;
	p->req.term = u->term;
	p->req.vote = u->vote;
	p->req.entries = u->entries;
	p->req.n_entries = u->n_entries;
	p->req.cb = persist_done;
	if (u->n_entries > 0) {
		p->has_entries = true;
		p->last_index = u->entries[u->n_entries - 1].index;
		p->last_term = u->entries[u->n_entries - 1].term;
	}
	rc =
	    msgs_add(&p->after, u->msgs_after_persist, u->n_msgs_after_persist);
	if (rc != RAFT_OK) {
		goto err_persist;
	}
	rc = rlog_write(n->log, &p->req);
	if (rc != RAFT_OK) {
		goto err_persist;
	}
	if (n->persist_tail != NULL) {
		n->persist_tail->next = p;
	} else {
		n->persist_head = p;
	}
	n->persist_tail = p;
	return RAFT_OK;

err_persist:
	persist_free(p);
	return rc;
}

/* Messages that promise durability but come with nothing new to persist
 * still wait for every persist before them. */
static int hold_or_send(struct raft_node *n, const struct raft_update *u)
{
	if (u->n_msgs_after_persist == 0) {
		return RAFT_OK;
	}
	if (n->persist_tail != NULL) {
		return msgs_add(&n->persist_tail->after, u->msgs_after_persist,
				u->n_msgs_after_persist);
	}
	send_msgs(n, u->msgs_after_persist, u->n_msgs_after_persist);
	return RAFT_OK;
}

/* Answer the proposals made with raft_node_propose_commit() whose entries
 * are now committed (queued for apply in this run, so still in apply_q):
 * their outcome no longer waits for the state machine. The others at or
 * below queued stay for answer_proposals(). Unlinked first, answered
 * after: callbacks may propose again, or close the node. */
static void answer_committed(struct raft_node *n)
{
	struct node_proposal **pp = &n->prop_head, *last = NULL;
	struct node_proposal *done = NULL, **done_tail = &done;

	if (n->n_at_commit == 0) {
		return;
	}
	while (*pp != NULL && (*pp)->index <= n->queued) {
		struct node_proposal *p = *pp;

		if (p->at_commit) {
			*pp = p->next;
			p->next = NULL;
			*done_tail = p;
			done_tail = &p->next;
		} else {
			last = p;
			pp = &p->next;
		}
	}
	if (*pp == NULL) {
		n->prop_tail = last;
	}
	while (done != NULL) {
		struct node_proposal *p = done, *next = done->next;
		size_t at = n->apply_n > 0 && p->index >= n->apply_q[0].index
				? (size_t)(p->index - n->apply_q[0].index)
				: n->apply_n;

		n->n_pending--;
		n->n_at_commit--;
		/* Committed entries are final: the one at p->index is either
		 * this proposal's or, if its term differs, another leader's. */
		assert(at < n->apply_n);
		if (at < n->apply_n && n->apply_q[at].term == p->term) {
			p->cb(p->arg, RAFT_OK, p->index, NULL);
		} else {
			p->cb(p->arg, RAFT_ELEADERLOST, 0, NULL);
		}
		free(p);
		done = next;
	}
}

/* Applying */

static int queue_committed(struct raft_node *n, const struct raft_update *u)
{
	for (size_t i = 0; i < u->n_committed; i++) {
		const struct raft_entry *e = &u->committed[i];

		if (e->index <= n->queued) {
			continue; /* applied before this start */
		}
		if (n->apply_n == n->apply_cap) {
			size_t cap = n->apply_cap ? 2 * n->apply_cap : 64;
			struct raft_entry *q =
			    realloc(n->apply_q, cap * sizeof(*q));

			if (q == NULL) {
				return RAFT_ENOMEM;
			}
			n->apply_q = q;
			n->apply_cap = cap;
		}
		n->apply_q[n->apply_n++] = *e;
		n->queued = e->index;
	}
	return RAFT_OK;
}

/* The apply thread: takes the pending batch, applies it, marks it done
 * and wakes the loop; then takes the next pending batch at once, if any,
 * else sleeps until the loop hands one over. */
static void *applier_main(void *arg)
{
	struct raft_node *n = arg;
	struct node_applier *ap = &n->ap;
	struct raft_fsm *fsm = n->cfg.fsm;

	pthread_mutex_lock(&ap->lock);
	for (;;) {
		struct node_apply *a;
		int rc;

		while (!ap->stop && (ap->pending == NULL || ap->failed)) {
			ap->idle = true;
			pthread_cond_wait(&ap->wake, &ap->lock);
			ap->idle = false;
		}
		if (ap->stop) {
			break;
		}
		a = ap->pending;
		ap->pending = NULL;
		a->taken = true;
		pthread_mutex_unlock(&ap->lock);

		rc = fsm->apply(fsm, a->entries, a->n, a->results);

		pthread_mutex_lock(&ap->lock);
		a->rc = rc;
		a->done = true;
		/* Later batches must not be applied past a hole. */
		ap->failed = rc != RAFT_OK;
		pthread_mutex_unlock(&ap->lock);
		uv_async_send(&ap->done_async);
		pthread_mutex_lock(&ap->lock);
	}
	ap->exited = true;
	pthread_mutex_unlock(&ap->lock);
	if (ap->has_async) {
		uv_async_send(&ap->done_async);
	}
	return NULL;
}

static void apply_free(struct node_apply *a)
{
	for (size_t i = 0; i < a->n; i++) {
		free(a->results[i].ptr); /* not taken by a proposer */
	}
	free(a->results);
	free(a->entries);
	free(a);
}

/* Answer the proposals at the applied entries. A proposal whose index now
 * holds an entry of another term lost its entry (Raft paper, 5.3). */
static void answer_proposals(struct raft_node *n, struct node_apply *a)
{
	for (size_t i = 0; i < a->n; i++) {
		const struct raft_entry *e = &a->entries[i];
		struct node_proposal *p;

		while ((p = n->prop_head) != NULL && p->index <= e->index) {
			n->prop_head = p->next;
			if (n->prop_head == NULL) {
				n->prop_tail = NULL;
			}
			if (p->index == e->index && p->term == e->term) {
				n->n_pending--;
				n->n_at_commit -= p->at_commit;
				p->cb(p->arg, RAFT_OK, e->index,
				      &a->results[i]);
				a->results[i].ptr = NULL; /* the cb took it */
				free(p);
			} else {
				fail_proposal(n, p, RAFT_ELEADERLOST);
			}
		}
	}
}

static void apply_done_results(struct raft_node *n, struct node_apply *a)
{
	if (n->state == NODE_RUNNING) {
		if (a->rc != RAFT_OK) {
			node_fail(n, a->rc, "fsm_apply");
		} else {
			n->applied = a->entries[a->n - 1].index;
			raft_applied(n->core, n->applied);
			answer_proposals(n, a);
			if (n->progress_hook != NULL) {
				n->progress_hook(n->progress_data);
			}
		}
	}
	for (size_t i = 0; i < a->n; i++) {
		free(a->results[i].ptr); /* not taken by a proposer */
		a->results[i].ptr = NULL;
	}
}

static void apply_done(struct raft_node *n, struct node_apply *a)
{
	apply_done_results(n, a);
	apply_free(a);
}

/* Loop thread: the apply thread finished one or more batches, or exited. */
static void applier_done_cb(uv_async_t *h)
{
	struct raft_node *n = h->data;
	struct node_applier *ap = &n->ap;
	struct node_apply *done = NULL, *last = NULL;
	bool exited;

	/* Detach the done batches (a prefix of the list) first: proposal
	 * callbacks may propose, or close the node. */
	pthread_mutex_lock(&ap->lock);
	while (n->apply_head != NULL && n->apply_head->done) {
		struct node_apply *a = n->apply_head;

		n->apply_head = a->next;
		a->next = NULL;
		if (last != NULL) {
			last->next = a;
		} else {
			done = a;
		}
		last = a;
	}
	if (n->apply_head == NULL) {
		n->apply_tail = NULL;
	}
	exited = ap->exited;
	pthread_mutex_unlock(&ap->lock);

	while (done != NULL) {
		struct node_apply *next = done->next;

		apply_done(n, done);
		done = next;
	}
	if (n->state != NODE_CLOSING) {
		node_kick(n);
	} else if (exited && ap->running) {
		pthread_join(ap->thread, NULL);
		ap->running = false;
		uv_close((uv_handle_t *)&ap->done_async, ap->closed_cb);
	}
}

/* Make room for want entries (and their results) in a. */
static int apply_reserve(struct node_apply *a, size_t want)
{
	size_t cap = a->cap;
	struct raft_entry *e;
	struct raft_fsm_result *r;

	if (want <= cap) {
		return RAFT_OK;
	}
	while (cap < want) {
		cap *= 2;
	}
	e = realloc(a->entries, cap * sizeof(*e));
	if (e == NULL) {
		return RAFT_ENOMEM;
	}
	a->entries = e;
	r = realloc(a->results, cap * sizeof(*r));
	if (r == NULL) {
		return RAFT_ENOMEM;
	}
	a->results = r;
	a->cap = cap;
	return RAFT_OK;
}

/* A batch that takes over the apply queue. */
static struct node_apply *apply_new(struct raft_node *n)
{
	struct node_apply *a = calloc(1, sizeof(*a));

	if (a == NULL) {
		return NULL;
	}
	a->results = calloc(n->apply_cap, sizeof(*a->results));
	if (a->results == NULL) {
		free(a);
		return NULL;
	}
	a->entries = n->apply_q;
	a->n = n->apply_n;
	a->cap = n->apply_cap;
	n->apply_q = NULL;
	n->apply_n = n->apply_cap = 0;
	return a;
}

/* Apply what is queued right here, on the loop thread: no hand-off to the
 * apply thread and back (two wake-ups). Only while the thread has nothing
 * in flight, so that batches stay in log order and the state machine sees
 * one caller at a time. */
static void apply_on_loop(struct raft_node *n)
{
	struct raft_fsm *fsm = n->cfg.fsm;
	struct node_apply a = {.entries = n->apply_q, .n = n->apply_n};

	if (n->loop_results_cap < a.n) {
		struct raft_fsm_result *r =
		    realloc(n->loop_results, a.n * sizeof(*r));

		if (r == NULL) {
			return; /* retried at the next tick */
		}
		n->loop_results = r;
		n->loop_results_cap = a.n;
	}
	a.results = n->loop_results;
	memset(a.results, 0, a.n * sizeof(*a.results));
	/* Callbacks run below; the queue is empty for them. */
	n->apply_n = 0;
	a.rc = fsm->apply(fsm, a.entries, a.n, a.results);
	apply_done_results(n, &a);
	node_kick(n);
}

void node_start_apply(struct raft_node *n)
{
	struct node_applier *ap = &n->ap;
	struct node_apply *a;

	if (n->apply_n == 0 || n->state != NODE_RUNNING) {
		return;
	}
	if (n->apply_head == NULL && n->apply_n <= n->cfg.fsm->loop_max) {
		apply_on_loop(n);
		return;
	}
	pthread_mutex_lock(&ap->lock);
	a = ap->pending;
	if (a != NULL) {
		/* Not taken yet: it grows, and stays one transaction. */
		if (apply_reserve(a, a->n + n->apply_n) == RAFT_OK) {
			memcpy(a->entries + a->n, n->apply_q,
			       n->apply_n * sizeof(*a->entries));
			memset(a->results + a->n, 0,
			       n->apply_n * sizeof(*a->results));
			a->n += n->apply_n;
			n->apply_n = 0;
		}
	} else if ((a = apply_new(n)) != NULL) {
		if (n->apply_tail != NULL) {
			n->apply_tail->next = a;
		} else {
			n->apply_head = a;
		}
		n->apply_tail = a;
		ap->pending = a;
		if (ap->idle) {
			pthread_cond_signal(&ap->wake);
		}
	}
	pthread_mutex_unlock(&ap->lock);
}

int node_applier_start(struct raft_node *n)
{
	struct node_applier *ap = &n->ap;
	int rc = RAFT_ENOMEM;

	if (pthread_mutex_init(&ap->lock, NULL) != 0) {
		return rc;
	}
	if (pthread_cond_init(&ap->wake, NULL) != 0) {
		goto err_lock;
	}
	if (pthread_create(&ap->thread, NULL, applier_main, n) != 0) {
		goto err_cond;
	}
	/* The thread touches the handle only once handed a batch or told to
	 * stop after this succeeded. */
	if (uv_async_init(n->loop, &ap->done_async, applier_done_cb) != 0) {
		goto err_thread;
	}
	ap->done_async.data = n;
	ap->has_async = true;
	ap->running = true;
	return RAFT_OK;

err_thread:
	pthread_mutex_lock(&ap->lock);
	ap->stop = true;
	pthread_cond_signal(&ap->wake);
	pthread_mutex_unlock(&ap->lock);
	pthread_join(ap->thread, NULL);
err_cond:
	pthread_cond_destroy(&ap->wake);
err_lock:
	pthread_mutex_destroy(&ap->lock);
	return rc;
}

void node_applier_stop(struct raft_node *n, uv_close_cb handle_cb)
{
	struct node_applier *ap = &n->ap;

	ap->closed_cb = handle_cb;
	pthread_mutex_lock(&ap->lock);
	ap->stop = true;
	pthread_cond_signal(&ap->wake);
	pthread_mutex_unlock(&ap->lock);
}

/* The loop */

static int collect_reads(struct raft_node *n, const struct raft_update *u)
{
	if (u->n_reads > n->rdone_cap) {
		struct node_read_done *v =
		    realloc(n->rdone, u->n_reads * sizeof(*v));

		if (v == NULL) {
			return RAFT_ENOMEM;
		}
		n->rdone = v;
		n->rdone_cap = u->n_reads;
	}
	for (size_t i = 0; i < u->n_reads; i++) {
		n->rdone[i].id = u->reads[i].id;
		n->rdone[i].index = u->reads[i].index;
		n->rdone[i].status = u->reads[i].status;
	}
	n->n_rdone = u->n_reads;
	return RAFT_OK;
}

/* Carry out one update. Returns RAFT_OK or the error that stops the node. */
static int take_update(struct raft_node *n, const struct raft_update *u,
		       const char **what)
{
	int rc;

	/* Messages that need no persist go first: a leader's new entries
	 * reach the followers before it submits its own write of them, so the
	 * two disk writes overlap as much as they can. */
	send_msgs(n, u->msgs, u->n_msgs);
	if (u->hard_state_changed || u->n_entries > 0) {
		*what = "log_write";
		rc = persist(n, u);
		if (rc != RAFT_OK) {
			return rc;
		}
	} else {
		*what = "hold_messages";
		rc = hold_or_send(n, u);
		if (rc != RAFT_OK) {
			return rc;
		}
	}
	*what = "queue_committed";
	rc = queue_committed(n, u);
	if (rc != RAFT_OK) {
		return rc;
	}
	*what = "collect_reads";
	return collect_reads(n, u);
}

static bool node_invariants(const struct raft_node *n)
{
	const struct node_proposal *p;
	const struct node_read *r;
	raft_index next = n->applied + 1;
	size_t count = 0, at_commit = 0;

	for (p = n->prop_head; p != NULL; p = p->next, count++) {
		if (p->next != NULL && p->next->index <= p->index) {
			return false; /* 1 */
		}
		if (n->state == NODE_RUNNING && p->index > n->queued &&
		    (n->role != RAFT_LEADER || p->term != n->term)) {
			return false; /* 4 */
		}
		if (p->at_commit) {
			if (p->index <= n->queued) {
				return false; /* 5 */
			}
			at_commit++;
		}
	}
	if (at_commit != n->n_at_commit) {
		return false; /* 5 */
	}
	for (r = n->read_head; r != NULL; r = r->next) {
		count++;
	}
	if (count != n->n_pending) {
		return false; /* 2 */
	}
	for (const struct node_apply *a = n->apply_head; a != NULL;
	     a = a->next) {
		for (size_t i = 0; i < a->n; i++) {
			if (a->entries[i].index != next++) {
				return false; /* 3 */
			}
		}
	}
	for (size_t i = 0; i < n->apply_n; i++) {
		if (n->apply_q[i].index != next++) {
			return false; /* 3 */
		}
	}
	return next == n->queued + 1;
}

void node_run(struct raft_node *n)
{
	if (n->in_run) {
		return; /* the outer call picks up new work */
	}
	n->in_run = true;
	while (n->state == NODE_RUNNING && raft_has_update(n->core)) {
		struct raft_update u;
		const char *what = "";
		int rc;

		raft_get_update(n->core, &u);
		rc = take_update(n, &u, &what);
		if (rc != RAFT_OK) {
			node_fail(n, rc, what);
			break;
		}
		note_log_losses(n, &u);
		raft_advance(n->core, &u);
		note_soft_state(n);
		check_leadership(n);
		n->role = raft_role(n->core);
		n->term = raft_current_term(n->core);
		for (size_t i = 0; i < n->n_rdone; i++) {
			deliver_read(n, &n->rdone[i]);
		}
		n->n_rdone = 0;
	}
	n->in_run = false;
	answer_committed(n);
	node_start_apply(n);
	assert(n->state != NODE_RUNNING || node_invariants(n));
}

static const char *fail_advice(const char *what, int rc)
{
	if (rc == RAFT_ENOMEM) {
		return "restart the node once memory is available";
	}
	if (strcmp(what, "fsm_apply") == 0 && rc == RAFT_ENOSPC) {
		return "the state machine is full; free disk space or raise "
		       "its size limit (max_map_size for the key-value "
		       "store), then restart the node: it replays the log "
		       "from the last applied entry";
	}
	if (strcmp(what, "fsm_apply") == 0) {
		return "the state machine could not apply committed entries; "
		       "fix its storage, then restart the node: it replays "
		       "the log from the last applied entry";
	}
	if (strcmp(what, "log_write") == 0) {
		return "the Raft log could not be made durable; free space or "
		       "fix the disk, then restart the node: it recovers from "
		       "the last durable entry and catches up from the leader";
	}
	return "restart the node once memory is available";
}

void node_fail(struct raft_node *n, int rc, const char *what)
{
	const char *detail;

	if (n->state != NODE_RUNNING) {
		return;
	}
	if (rc != RAFT_ENOSPC && rc != RAFT_ENOMEM) {
		rc = RAFT_EIO;
	}
	n->state = NODE_FAILED;
	n->fail_rc = rc;
	uv_timer_stop(&n->ticker);
	uv_idle_stop(&n->kick);
	detail = NULL;
	if (strcmp(what, "log_write") == 0) {
		detail = rlog_failure(n->log);
	} else if (strcmp(what, "fsm_apply") == 0 &&
		   n->cfg.fsm->failure != NULL) {
		detail = n->cfg.fsm->failure(n->cfg.fsm);
	}
	node_logf(n, RAFT_LOG_ERROR,
		  "msg=\"node stopped after a failure\" id=%llu cause=%s "
		  "error=\"%s\" detail=\"%s\" action=\"%s\"",
		  (unsigned long long)n->cfg.id, what, raft_strerror(rc),
		  detail != NULL ? detail : "-", fail_advice(what, rc));
	rc = rc == RAFT_ENOMEM ? RAFT_EIO : rc;
	node_fail_pending(n, rc);
	if (n->progress_hook != NULL) {
		n->progress_hook(n->progress_data);
	}
	if (n->cfg.failed != NULL && n->state == NODE_FAILED) {
		n->cfg.failed(n->cfg.failed_data, rc);
	}
}

void node_run_free(struct raft_node *n)
{
	while (n->persist_head != NULL) {
		struct node_persist *p = n->persist_head;

		n->persist_head = p->next;
		persist_free(p);
	}
	n->persist_tail = NULL;
	/* The apply thread has exited: what it never took is freed here. */
	while (n->apply_head != NULL) {
		struct node_apply *a = n->apply_head;

		n->apply_head = a->next;
		apply_free(a);
	}
	n->apply_tail = NULL;
	if (n->ap.has_async) {
		pthread_cond_destroy(&n->ap.wake);
		pthread_mutex_destroy(&n->ap.lock);
		n->ap.has_async = false;
	}
	free(n->apply_q);
	free(n->loop_results);
	free(n->rdone);
	n->apply_q = NULL;
	n->loop_results = NULL;
	n->rdone = NULL;
}
