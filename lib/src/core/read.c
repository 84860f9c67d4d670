/* Linearizable reads by ReadIndex (dissertation 6.4).
 *
 * Life of a read on the leader:
 *
 *   raft_read_index() -> wait (round 0) -- leader has committed an entry of
 *   its term and a heartbeat round starts --> wait (round R, index = commit)
 *   -- a majority answered round R or later --> ready -- applied >= index
 *   --> done (update.reads)
 *
 * Every APPEND carries the round current when it was sent, and every answer
 * echoes it, so an answer to round R or later proves that the follower still
 * accepted this leader after the read arrived (step 3). All reads waiting
 * when a round starts share it. On a follower the read is forwarded as
 * READ_INDEX; the leader runs the same steps and answers READ_INDEX_RESP
 * with the index, then the follower waits for its own applied index
 * (dissertation 6.4.1). A read whose answer can no longer come (leader lost,
 * leader changed, or no answer within two election timeouts) fails with
 * RAFT_ELEADERLOST.
 */
#include <stdlib.h>
#include <string.h>

#include "core.h"

static int reads_push(struct core_reads *q, const struct core_read *rd)
{
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 8;
		struct core_read *v = realloc(q->v, cap * sizeof(*v));
		if (v == NULL) {
			return RAFT_ENOMEM;
		}
		q->v = v;
		q->cap = cap;
	}
	q->v[q->n++] = *rd;
	return RAFT_OK;
}

static int read_done(struct raft *r, uint64_t id, raft_index index, int status)
{
	int rc;

	rc = core_grow(&r->grave, (void **)&r->reads_done, &r->cap_reads_done,
		       sizeof(*r->reads_done), r->n_reads_done + 1);
	if (rc != RAFT_OK) {
		return rc;
	}
	r->reads_done[r->n_reads_done++] =
	    (struct raft_read){.id = id, .index = index, .status = status};
	return RAFT_OK;
}

static int send_read_resp(struct raft *r, raft_id to, uint64_t ctx,
			  raft_index index, bool reject)
{
	struct raft_msg m = {0};

	m.type = RAFT_MSG_READ_INDEX_RESP;
	m.to = to;
	m.term = r->term;
	m.index = index;
	m.reject = reject;
	m.context = ctx;
	return core_send(r, &m, false);
}

/* Finish a read that cannot be served. */
static int read_fail(struct raft *r, const struct core_read *rd, int status)
{
	if (rd->from != 0) {
		return send_read_resp(r, rd->from, rd->id, 0, true);
	}
	return read_done(r, rd->id, 0, status);
}

static bool round_in_flight(const struct raft *r)
{
	for (size_t i = 0; i < r->reads_wait.n; i++) {
		if (r->reads_wait.v[i].round != 0) {
			return true;
		}
	}
	return false;
}

int core_read_request(struct raft *r, uint64_t id, raft_id from)
{
	struct core_read rd = {.id = id, .from = from};
	struct raft_msg m = {0};
	int rc;

	if (r->role == RAFT_LEADER) {
		rc = reads_push(&r->reads_wait, &rd);
		if (rc != RAFT_OK) {
			return rc;
		}
		/* Start a round now unless one is already out: reads that
		 * arrive meanwhile share the next one. */
		if (r->term_committed && !round_in_flight(r)) {
			return core_heartbeat(r);
		}
		return RAFT_OK;
	}
	if (from != 0 || r->leader == 0) {
		return RAFT_ENOTLEADER;
	}
	rd.ctx = ++r->read_seq;
	rc = reads_push(&r->reads_wait, &rd);
	if (rc != RAFT_OK) {
		return rc;
	}
	m.type = RAFT_MSG_READ_INDEX;
	m.to = r->leader;
	m.term = r->term;
	m.context = rd.ctx;
	return core_send(r, &m, false);
}

int core_handle_read_index(struct raft *r, const struct raft_msg *m)
{
	if (r->role != RAFT_LEADER) {
		return send_read_resp(r, m->from, m->context, 0, true);
	}
	return core_read_request(r, m->context, m->from);
}

int core_handle_read_index_resp(struct raft *r, const struct raft_msg *m)
{
	struct core_reads *q = &r->reads_wait;

	for (size_t i = 0; i < q->n; i++) {
		struct core_read rd = q->v[i];
		int rc;

		if (rd.from != 0 || rd.ctx != m->context) {
			continue;
		}
		memmove(&q->v[i], &q->v[i + 1], (q->n - i - 1) * sizeof(rd));
		q->n--;
		if (m->reject) {
			return read_fail(r, &rd, RAFT_ELEADERLOST);
		}
		rd.index = m->index;
		rc = reads_push(&r->reads_ready, &rd);
		if (rc != RAFT_OK) {
			return rc;
		}
		return core_reads_applied(r);
	}
	return RAFT_OK;
}

void core_reads_assign_round(struct raft *r)
{
	if (r->role != RAFT_LEADER || !r->term_committed) {
		return;
	}
	for (size_t i = 0; i < r->reads_wait.n; i++) {
		struct core_read *rd = &r->reads_wait.v[i];
		if (rd->round == 0) {
			/* Step 1: the read index is the commit index now. */
			rd->round = r->round;
			rd->index = r->commit;
		}
	}
}

static int cmp_round_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? 1 : x > y ? -1 : 0;
}

int core_reads_round_acked(struct raft *r)
{
	uint64_t acked[RAFT_MAX_PEERS];
	uint64_t confirmed;
	struct core_reads *q = &r->reads_wait;
	size_t j = 0, unassigned = 0;
	int rc = RAFT_OK;

	if (r->role != RAFT_LEADER || q->n == 0) {
		return RAFT_OK;
	}
	for (size_t i = 0; i < r->n_peers; i++) {
		acked[i] = r->prog[i].acked_round;
	}
	qsort(acked, r->n_peers, sizeof(acked[0]), cmp_round_desc);
	confirmed = acked[r->quorum - 1];
	for (size_t i = 0; i < q->n; i++) {
		struct core_read rd = q->v[i];

		if (rd.round == 0 || rd.round > confirmed || rc != RAFT_OK) {
			unassigned += rd.round == 0;
			q->v[j++] = rd;
			continue;
		}
		if (rd.from != 0) {
			rc = send_read_resp(r, rd.from, rd.id, rd.index, false);
		} else {
			rc = reads_push(&r->reads_ready, &rd);
		}
		if (rc != RAFT_OK) {
			q->v[j++] = rd;
		}
	}
	q->n = j;
	if (rc != RAFT_OK) {
		return rc;
	}
	if (unassigned > 0 && r->term_committed && !round_in_flight(r)) {
		rc = core_heartbeat(r);
		if (rc != RAFT_OK) {
			return rc;
		}
	}
	return core_reads_applied(r);
}

int core_reads_applied(struct raft *r)
{
	struct core_reads *q = &r->reads_ready;
	size_t j = 0;
	int rc = RAFT_OK;

	for (size_t i = 0; i < q->n; i++) {
		struct core_read rd = q->v[i];

		/* Step 4: answer once the state machine reached the index. */
		if (rc == RAFT_OK && rd.index <= r->applied) {
			rc = read_done(r, rd.id, rd.index, RAFT_OK);
			if (rc == RAFT_OK) {
				continue;
			}
		}
		q->v[j++] = rd;
	}
	q->n = j;
	return rc;
}

int core_reads_fail_waiting(struct raft *r, int status)
{
	struct core_reads *q = &r->reads_wait;
	int rc = RAFT_OK;

	for (size_t i = 0; i < q->n; i++) {
		int err = read_fail(r, &q->v[i], status);
		if (rc == RAFT_OK) {
			rc = err;
		}
	}
	q->n = 0;
	return rc;
}

void core_reads_tick(struct raft *r)
{
	struct core_reads *q = &r->reads_wait;
	size_t j = 0;

	for (size_t i = 0; i < q->n; i++) {
		struct core_read rd = q->v[i];

		if (++rd.age < 2 * r->cfg.election_ticks) {
			q->v[j++] = rd;
			continue;
		}
		/* No answer in two election timeouts: the request or its
		 * answer was lost. Only ENOMEM can fail here, and then the
		 * read is dropped without an answer. */
		(void)read_fail(r, &rd, RAFT_ELEADERLOST);
	}
	q->n = j;
}

void core_reads_close(struct raft *r)
{
	free(r->reads_wait.v);
	free(r->reads_ready.v);
	free(r->reads_done);
	memset(&r->reads_wait, 0, sizeof(r->reads_wait));
	memset(&r->reads_ready, 0, sizeof(r->reads_ready));
	r->reads_done = NULL;
}
