/* Per-follower replication state kept by a leader: match and next index
 * (Raft paper Figure 2, "volatile state on leaders"), the probe/replicate
 * mode and the ring of APPENDs in flight used for flow control. The state
 * diagram is in core.h above struct core_prog. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

int core_prog_init(struct core_prog *p, raft_id id, size_t max_inflight)
{
	memset(p, 0, sizeof(*p));
	p->id = id;
	p->ring = calloc(max_inflight, sizeof(*p->ring));
	if (p->ring == NULL) {
		return RAFT_ENOMEM;
	}
	p->ring_cap = max_inflight;
	return RAFT_OK;
}

void core_prog_close(struct core_prog *p)
{
	free(p->ring);
	p->ring = NULL;
}

static void prog_ring_clear(struct core_prog *p)
{
	p->ring_start = 0;
	p->ring_n = 0;
	p->ring_bytes = 0;
}

void core_prog_reset(struct core_prog *p, raft_index last)
{
	p->match = 0;
	p->next = last + 1;
	p->state = CORE_PROBE;
	p->probe_sent = false;
	p->recent_active = false;
	p->acked_round = 0;
	p->match_round = 0;
	p->ack_floor = 0;
	p->commit_sent = 0;
	p->vote = 0;
	prog_ring_clear(p);
}

bool core_prog_paused(const struct core_prog *p, size_t max_bytes)
{
	if (p->state == CORE_PROBE) {
		return p->probe_sent;
	}
	return p->ring_n >= p->ring_cap || p->ring_bytes >= max_bytes;
}

void core_prog_sent(struct core_prog *p, raft_index last, size_t bytes)
{
	if (p->state == CORE_PROBE) {
		p->probe_sent = true;
		return;
	}
	assert(p->ring_n < p->ring_cap);
	p->ring[(p->ring_start + p->ring_n) % p->ring_cap] =
	    (struct core_inflight){.last = last, .bytes = bytes};
	p->ring_n++;
	p->ring_bytes += bytes;
	p->next = last + 1;
}

bool core_prog_acked(struct core_prog *p, raft_index index)
{
	bool moved = false;

	if (index > p->match) {
		p->match = index;
		moved = true;
	}
	if (p->next < index + 1) {
		p->next = index + 1;
	}
	/* Everything sent through index has arrived. */
	while (p->ring_n > 0 && p->ring[p->ring_start].last <= index) {
		p->ring_bytes -= p->ring[p->ring_start].bytes;
		p->ring_start = (p->ring_start + 1) % p->ring_cap;
		p->ring_n--;
	}
	return moved;
}

void core_prog_become_probe(struct core_prog *p)
{
	p->state = CORE_PROBE;
	p->probe_sent = false;
	p->next = p->match + 1;
	prog_ring_clear(p);
}

void core_prog_become_replicate(struct core_prog *p)
{
	p->state = CORE_REPLICATE;
	p->probe_sent = false;
	p->next = p->match + 1;
	prog_ring_clear(p);
}

void core_prog_lost(struct core_prog *p, raft_index last)
{
	assert(last < p->match);
	p->match = last;
	/* Whatever commit index it learned went with its log. */
	if (p->commit_sent > last) {
		p->commit_sent = last;
	}
	core_prog_become_probe(p);
}
