/* The in-memory Raft log and the deferred-free list behind it.
 *
 * The log is a flat array of struct raft_entry starting at index 1 (no
 * compaction yet). Payloads are carved from slabs in log order (see struct
 * core_slab), so committed payloads keep their addresses while the array
 * grows. While the caller holds an update, nothing it may point to is
 * freed or moved: old arrays and emptied slabs wait in struct core_grave
 * until raft_advance().
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

void core_grave_free(struct core_grave *g, void *p)
{
	if (p == NULL) {
		return;
	}
	if (!g->update_out) {
		free(p);
		return;
	}
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 16;
		void **v = realloc(g->ptrs, cap * sizeof(*v));
		if (v == NULL) {
			/* TODO(core): an outstanding update may still point
			 * here; leaking is the only safe choice without
			 * memory for the list. */
			return;
		}
		g->ptrs = v;
		g->cap = cap;
	}
	g->ptrs[g->n++] = p;
}

void core_grave_flush(struct core_grave *g)
{
	for (size_t i = 0; i < g->n; i++) {
		free(g->ptrs[i]);
	}
	g->n = 0;
}

int core_grow(struct core_grave *g, void **arr, size_t *cap, size_t elem,
	      size_t need)
{
	size_t ncap;
	void *p;

	if (need <= *cap) {
		return RAFT_OK;
	}
	ncap = *cap ? *cap : 16;
	while (ncap < need) {
		ncap *= 2;
	}
	if (!g->update_out) {
		p = realloc(*arr, ncap * elem);
		if (p == NULL) {
			return RAFT_ENOMEM;
		}
	} else {
		p = malloc(ncap * elem);
		if (p == NULL) {
			return RAFT_ENOMEM;
		}
		if (*cap > 0) {
			memcpy(p, *arr, *cap * elem);
		}
		core_grave_free(g, *arr);
	}
	*arr = p;
	*cap = ncap;
	return RAFT_OK;
}

void core_log_init(struct core_log *l, struct core_grave *g)
{
	memset(l, 0, sizeof(*l));
	l->grave = g;
}

/* One fewer entry has its payload in slab; free the slab once empty. */
static void slab_release(struct core_log *l, struct core_slab *slab, bool now)
{
	if (slab == NULL || --slab->live > 0) {
		return;
	}
	if (slab == l->bump) {
		l->bump = NULL;
	}
	if (now) {
		free(slab);
	} else {
		core_grave_free(l->grave, slab);
	}
}

void core_log_close(struct core_log *l)
{
	for (size_t i = 0; i < l->n; i++) {
		slab_release(l, l->slab[i], true);
	}
	if (l->bump != NULL && l->bump->live == 0) {
		free(l->bump);
	}
	free(l->entries);
	free(l->slab);
	memset(l, 0, sizeof(*l));
}

/* Room for len bytes: the current slab, a new one, or one of its own. */
static struct core_slab *slab_for(struct core_log *l, size_t len)
{
	struct core_slab *s = l->bump;
	size_t cap = CORE_SLAB_SIZE;

	if (s != NULL && s->cap - s->used >= len) {
		return s;
	}
	if (len > CORE_SLAB_SIZE / 4) {
		cap = len;
	}
	s = malloc(sizeof(*s) + cap);
	if (s == NULL) {
		return NULL;
	}
	s->used = 0;
	s->cap = cap;
	s->live = 0;
	if (cap == CORE_SLAB_SIZE) {
		/* The old slab lives on while entries point into it. */
		if (l->bump != NULL && l->bump->live == 0) {
			core_grave_free(l->grave, l->bump);
		}
		l->bump = s;
	}
	return s;
}

raft_index core_log_last(const struct core_log *l)
{
	return l->n;
}

raft_term core_log_last_term(const struct core_log *l)
{
	return l->n ? l->entries[l->n - 1].term : 0;
}

raft_term core_log_term(const struct core_log *l, raft_index index)
{
	if (index == 0 || index > l->n) {
		return 0;
	}
	return l->entries[index - 1].term;
}

const struct raft_entry *core_log_get(const struct core_log *l,
				      raft_index index)
{
	assert(index >= 1 && index <= l->n);
	return &l->entries[index - 1];
}

int core_log_append(struct core_log *l, raft_term term, uint8_t type,
		    const void *data, size_t len)
{
	struct raft_entry *e;
	struct core_slab *slab = NULL;
	void *copy = NULL;
	int rc;

	assert(term >= core_log_last_term(l));
	rc = core_grow(l->grave, (void **)&l->entries, &l->cap,
		       sizeof(*l->entries), l->n + 1);
	if (rc == RAFT_OK && l->slab_cap < l->cap) {
		/* Not in any update: a plain realloc will do. */
		void *v = realloc(l->slab, l->cap * sizeof(*l->slab));
		if (v == NULL) {
			rc = RAFT_ENOMEM;
		} else {
			l->slab = v;
			l->slab_cap = l->cap;
		}
	}
	if (rc != RAFT_OK) {
		return rc;
	}
	if (len > 0) {
		slab = slab_for(l, len);
		if (slab == NULL) {
			return RAFT_ENOMEM;
		}
		copy = slab->data + slab->used;
		/* Keep payloads aligned for callers that cast them. */
		slab->used += (len + 7) & ~(size_t)7;
		if (slab->used > slab->cap) {
			slab->used = slab->cap;
		}
		slab->live++;
		memcpy(copy, data, len);
	}
	l->slab[l->n] = slab;
	e = &l->entries[l->n];
	e->term = term;
	e->index = l->n + 1;
	e->type = type;
	e->data = copy;
	e->len = len;
	l->n++;
	return RAFT_OK;
}

void core_log_truncate(struct core_log *l, raft_index index)
{
	struct raft_entry *moved;

	assert(index >= 1);
	if (index > l->n) {
		return;
	}
	/* Slots about to be overwritten may be in an outstanding update:
	 * give the array a new home first so those pointers stay good. */
	if (l->grave->update_out) {
		moved = malloc(l->cap * sizeof(*moved));
		if (moved != NULL) {
			memcpy(moved, l->entries, l->n * sizeof(*moved));
			core_grave_free(l->grave, l->entries);
			l->entries = moved;
		}
		/* TODO(core): without memory to move the array an
		 * outstanding update may see the replacing entries. */
	}
	for (raft_index i = index; i <= l->n; i++) {
		slab_release(l, l->slab[i - 1], false);
	}
	l->n = index - 1;
}

raft_index core_log_last_at_or_below(const struct core_log *l, raft_index index,
				     raft_term term)
{
	raft_index lo = 0, hi;

	hi = index < l->n ? index : l->n;
	/* Find the largest i in [0, hi] with term(i) <= term; term(0) = 0. */
	while (lo < hi) {
		raft_index mid = lo + (hi - lo + 1) / 2;
		if (l->entries[mid - 1].term <= term) {
			lo = mid;
		} else {
			hi = mid - 1;
		}
	}
	return lo;
}

bool core_log_up_to_date(const struct core_log *l, raft_index index,
			 raft_term term)
{
	raft_term last_term = core_log_last_term(l);

	return term > last_term ||
	       (term == last_term && index >= core_log_last(l));
}
