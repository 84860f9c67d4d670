/* The replicated key-value store (kv.h): a node (node.h) whose state
 * machine is the LMDB map of kv/kvsm.h.
 *
 * The life of a request:
 *
 *     put: sizes checked as the apply checks them, encode the command
 *              (kvsm_encode_put) --> raft_node_propose_commit()
 *              --> committed --> write_done(): RAFT_OK or the node's error
 *              goes to the caller; kvsm_apply() follows on the apply
 *              thread. Only its sizes or a full map can make the apply
 *              refuse a put: the sizes are checked first, and a put is
 *              answered this way only while the map has room for it and
 *              for every put answered before it (room_for()); otherwise
 *              it goes as a delete does, and a full map fails it with
 *              RAFT_ENOSPC.
 *     del:     encode --> raft_node_propose() --> applied --> write_done():
 *              the command's own result (RAFT_OK, RAFT_ENOTFOUND) or the
 *              node's error goes to the caller.
 *     get, linearizable: raft_node_read() --> read_ready(): this node has
 *              applied through the read index --> kvsm_get() --> caller.
 *     get, serializable: queued until this node has applied every put it
 *              has answered (acked), then the deferred timer runs
 *              kvsm_get() on the next loop iteration --> caller.
 *
 * Durability: LMDB is not synced per batch (docs/adr/0007). The Raft log,
 * synced before any entry counts as stored, is the durable record; after a
 * process crash the store is exact and the node replays from applied + 1,
 * and after a machine crash kvsm_open() discards a store that was open
 * unsynced, so applied is 0 and the node replays the whole log. A store
 * file found damaged at open (cut short, emptied, unreadable meta pages)
 * is discarded and rebuilt the same way.
 *
 * Failure modes: every failure of the node reaches the callbacks (see
 * node.h); a kvsm_get() error on a ready read is passed on as is (RAFT_EIO).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kvsm.h"
#include "libraft/kv.h"
#include "node/node.h"

/* No batch is applied on the loop thread (fsm.loop_max 0): even unsynced,
 * an LMDB write transaction writes dirty pages through the page cache and
 * may grow the map, and either can block; the loop must keep ticking and
 * answering peers meanwhile (docs/storage.md). */

/* A get waiting for its read index, or for the deferred timer. */
struct kv_get {
	struct kv_store *store;
	kv_read_cb cb;
	void *arg;
	struct kv_get *next; /* deferred queue */
	raft_index need;     /* serializable: answer once applied reaches it */
	size_t klen;
	char key[]; /* klen bytes */
};

struct kv_put {
	struct kv_store *store;
	kv_write_cb cb;
	void *arg;
	size_t bytes;	     /* answered at commit: room it may take */
	raft_index index;    /* ... and its index, once committed */
	struct kv_put *next; /* answered, waiting for its apply */
};

/* A put is answered at commit only while the map has this much room beyond
 * what the puts answered but not yet applied may take: a full map must
 * still fail the put that does not fit, with RAFT_ENOSPC. */
#define KV_COMMIT_ROOM (8u << 20)
/* The most a put's entry can take in the map, as a multiple of its size
 * (copy-on-write of the pages it touches, with overhead). */
#define KV_COMMIT_GROWTH 4u

struct kv_store {
	uv_loop_t *loop;
	char sm_dir[4096]; /* DIR/kv */
	struct kvsm_options sm_options;
	char sm_errmsg[512];
	struct kvsm *sm; /* opened by fsm_applied() */
	raft_id id;	 /* for log lines */
	raft_log_fn log;
	void *log_data;
	struct raft_fsm fsm;
	struct raft_node *node;
	uv_timer_t deferred_timer;
	struct kv_get *deferred_head, *deferred_tail;
	/* Highest index of a put answered at commit, perhaps not yet applied:
	 * a serializable get waits for it, so that this node's answers never
	 * go back in time for a client that reads where it wrote. */
	raft_index acked;
	/* Puts answered at commit, not yet applied, in index order, and the
	 * room they (and those proposed that way) may take. */
	struct kv_put *unapplied_head, *unapplied_tail;
	size_t unapplied_bytes;
	struct kvsm_result *results; /* scratch for the one apply in flight */
	size_t results_cap;
	bool closing;
	void (*close_cb)(void *arg);
	void *close_arg;
};

void kv_config_init(struct kv_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	raft_node_config_init(&cfg->node);
}

/* The state machine, as the node sees it */

static void log_notice(struct kv_store *s)
{
	char line[1024];
	const char *notice = kvsm_notice(s->sm);

	if (s->log == NULL || notice[0] == '\0') {
		return;
	}
	snprintf(line, sizeof(line), "msg=\"%s\" id=%llu detail=\"%s\"",
		 kvsm_discarded(s->sm) ? "state machine rebuilt from the log"
				       : "state machine synced per batch",
		 (unsigned long long)s->id, notice);
	s->log(s->log_data, RAFT_LOG_WARN, line);
}

/* Called once by raft_node_start(), after it has locked the data directory
 * and checked the cluster configuration: only then is LMDB opened, so a
 * refused start touches nothing and two stores never share a map. */
static int fsm_applied(struct raft_fsm *fsm, raft_index *index)
{
	struct kv_store *s = fsm->data;
	raft_term term;
	int rc;

	if (s->sm == NULL) {
		rc = kvsm_open(s->sm_dir, &s->sm_options, &s->sm, s->sm_errmsg,
			       sizeof(s->sm_errmsg));
		if (rc != RAFT_OK) {
			s->sm = NULL;
			return rc;
		}
		log_notice(s);
	}
	return kvsm_applied(s->sm, index, &term);
}

/* The node's apply thread; one call at a time, so only this touches
 * s->results.
 *
 * TODO(kv): log compaction (snapshots) will be decided here, after an
 * apply: it must call kvsm_sync() first and delete entries only through
 * the synced applied index, and kvsm_open() must then restore the
 * snapshot instead of discarding a store left open by an earlier boot
 * (kvsm.h, kvsm_sync()). */
static int fsm_apply(struct raft_fsm *fsm, const struct raft_entry *entries,
		     size_t n, struct raft_fsm_result *results)
{
	struct kv_store *s = fsm->data;
	int rc;

	if (n > s->results_cap) {
		struct kvsm_result *r = realloc(s->results, n * sizeof(*r));

		if (r == NULL) {
			return RAFT_ENOMEM;
		}
		s->results = r;
		s->results_cap = n;
	}
	rc = kvsm_apply(s->sm, entries, n, s->results);
	if (rc != RAFT_OK) {
		return rc;
	}
	for (size_t i = 0; i < n; i++) {
		results[i].rc = s->results[i].rc;
		results[i].value = entries[i].index;
	}
	return RAFT_OK;
}

static const char *fsm_failure(struct raft_fsm *fsm)
{
	struct kv_store *s = fsm->data;
	const char *why = kvsm_failure(s->sm);

	return why[0] != '\0' ? why : NULL;
}

/* Open and close */

static void node_progress(void *data);
static void forget_applied(struct kv_store *s, bool all);

int kv_store_open(uv_loop_t *loop, const struct kv_config *cfg,
		  struct kv_store **out, char *errmsg, size_t errlen)
{
	struct raft_node_config nc;
	struct kv_store *s;
	int rc;

	if (loop == NULL || cfg == NULL || out == NULL) {
		return RAFT_EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		return RAFT_ENOMEM;
	}
	s->loop = loop;
	if (cfg->node.data_dir != NULL) {
		snprintf(s->sm_dir, sizeof(s->sm_dir), "%s/kv",
			 cfg->node.data_dir);
	}
	s->sm_options.map_size = cfg->map_size;
	s->sm_options.max_map_size = cfg->max_map_size;
	/* Not synced per batch: the log is the durable record and is never
	 * compacted, and a store a machine crash may have torn is discarded
	 * and rebuilt from it (docs/adr/0007). A damaged store file is
	 * rebuilt the same way: the log holds every entry from index 1 (the
	 * core refuses a log that starts later). Once snapshots compact the
	 * log this must restore the snapshot or refuse (TODO(kv) at
	 * fsm_apply()). */
	s->sm_options.no_sync = true;
	s->sm_options.no_meta_sync = true;
	s->sm_options.rebuild_damaged = true;
	s->id = cfg->node.id;
	s->log = cfg->node.log;
	s->log_data = cfg->node.log_data;
	s->fsm.data = s;
	s->fsm.applied = fsm_applied;
	s->fsm.apply = fsm_apply;
	s->fsm.failure = fsm_failure;
	s->fsm.loop_max = 0;
	nc = cfg->node;
	nc.fsm = &s->fsm;
	rc = raft_node_start(loop, &nc, &s->node, errmsg, errlen);
	if (rc != RAFT_OK) {
		goto err_store;
	}
	uv_timer_init(loop, &s->deferred_timer);
	s->deferred_timer.data = s;
	s->node->progress_hook = node_progress;
	s->node->progress_data = s;
	*out = s;
	return RAFT_OK;

err_store:
	if (s->sm_errmsg[0] != '\0' && errmsg != NULL) {
		snprintf(errmsg, errlen, "%s", s->sm_errmsg);
	}
	if (s->sm != NULL) {
		kvsm_close(s->sm);
	}
	free(s);
	return rc;
}

static void fail_deferred(struct kv_store *s, int rc)
{
	struct kv_get *g;

	while ((g = s->deferred_head) != NULL) {
		s->deferred_head = g->next;
		g->cb(g->arg, rc, NULL, 0, NULL);
		free(g);
	}
	s->deferred_tail = NULL;
}

static void timer_closed(uv_handle_t *h)
{
	struct kv_store *s = h->data;
	void (*cb)(void *arg) = s->close_cb;
	void *arg = s->close_arg;

	forget_applied(s, true);
	kvsm_close(s->sm);
	free(s->results);
	free(s);
	if (cb != NULL) {
		cb(arg);
	}
}

static void node_closed(void *arg)
{
	struct kv_store *s = arg;

	/* No apply is in flight once the node has closed. */
	uv_close((uv_handle_t *)&s->deferred_timer, timer_closed);
}

void kv_store_close(struct kv_store *s, void (*cb)(void *arg), void *arg)
{
	if (s->closing) {
		return;
	}
	s->closing = true;
	s->close_cb = cb;
	s->close_arg = arg;
	uv_timer_stop(&s->deferred_timer);
	raft_node_close(s->node, node_closed, s);
	fail_deferred(s, RAFT_ESHUTDOWN);
}

/* Writes */

static void write_done(void *arg, int status, raft_index index,
		       struct raft_fsm_result *result)
{
	struct kv_put *p = arg;
	struct kv_store *s = p->store;
	bool keep = false;

	if (status == RAFT_OK && result != NULL) {
		status = result->rc;
	} else if (status == RAFT_OK) {
		/* Answered at commit: counted until applied. */
		if (index > s->acked) {
			s->acked = index;
		}
		p->index = index;
		p->next = NULL;
		if (s->unapplied_tail != NULL) {
			s->unapplied_tail->next = p;
		} else {
			s->unapplied_head = p;
		}
		s->unapplied_tail = p;
		keep = true;
	} else {
		s->unapplied_bytes -= p->bytes;
	}
	p->cb(p->arg, status,
	      status == RAFT_OK || status == RAFT_ENOTFOUND ? index : 0);
	if (!keep) {
		free(p);
	}
}

/* The node applied more, or failed: forget the answered puts it applied. */
static void forget_applied(struct kv_store *s, bool all)
{
	struct kv_put *p;

	while ((p = s->unapplied_head) != NULL &&
	       (all || p->index <= s->node->applied)) {
		s->unapplied_head = p->next;
		s->unapplied_bytes -= p->bytes;
		free(p);
	}
	if (s->unapplied_head == NULL) {
		s->unapplied_tail = NULL;
	}
}

/* at_commit: the command's outcome is known before it is applied (a put:
 * its sizes were checked here, with the state machine's own limits, and
 * the map has room for it); bytes: the room it may take. */
static int propose(struct kv_store *s, void *cmd, size_t len, bool at_commit,
		   size_t bytes, kv_write_cb cb, void *arg)
{
	struct kv_put *p = calloc(1, sizeof(*p));
	int rc;

	if (p == NULL) {
		free(cmd);
		return RAFT_ENOMEM;
	}
	p->store = s;
	p->cb = cb;
	p->arg = arg;
	p->bytes = at_commit ? bytes : 0;
	rc = at_commit ? raft_node_propose_commit(s->node, cmd, len,
						  write_done, p)
		       : raft_node_propose(s->node, cmd, len, write_done, p);
	free(cmd);
	if (rc != RAFT_OK) {
		free(p);
	} else {
		s->unapplied_bytes += p->bytes;
	}
	return rc;
}

/* Whether a put that may take bytes of the map can be answered at commit:
 * the map has room for it, the puts answered before it, and a margin. */
static bool room_for(struct kv_store *s, size_t bytes)
{
	size_t room = kvsm_room(s->sm), need = KV_COMMIT_ROOM;

	need += s->unapplied_bytes;
	return room > need && room - need > bytes;
}

static int check_key(struct kv_store *s, const void *key, size_t klen,
		     bool have_cb)
{
	/* A failed node serves nothing, not even local reads: its state
	 * machine may be what failed. */
	if (s->closing || s->node->state != NODE_RUNNING) {
		return RAFT_ESHUTDOWN;
	}
	if (key == NULL || klen == 0 || !have_cb) {
		return RAFT_EINVAL;
	}
	if (klen > KV_MAX_KEY) {
		return RAFT_ETOOBIG;
	}
	return RAFT_OK;
}

int kv_store_put(struct kv_store *s, const void *key, size_t klen,
		 const void *val, size_t vlen, kv_write_cb cb, void *arg)
{
	void *cmd;
	size_t len, bytes;
	int rc = check_key(s, key, klen, cb != NULL);

	if (rc != RAFT_OK) {
		return rc;
	}
	if (val == NULL && vlen > 0) {
		return RAFT_EINVAL;
	}
	if (vlen > KV_MAX_VALUE) {
		return RAFT_ETOOBIG;
	}
	/* The apply can refuse a put only for its sizes, checked just above
	 * with the same limits; so the put's answer need not wait for it. */
	rc = kvsm_check_sizes(klen, vlen);
	if (rc != RAFT_OK) {
		return rc;
	}
	rc = kvsm_encode_put(key, klen, val, vlen, &cmd, &len);
	if (rc != RAFT_OK) {
		return rc;
	}
	bytes = KV_COMMIT_GROWTH * (len + 64);
	return propose(s, cmd, len, room_for(s, bytes), bytes, cb, arg);
}

int kv_store_del(struct kv_store *s, const void *key, size_t klen,
		 kv_write_cb cb, void *arg)
{
	void *cmd;
	size_t len;
	int rc = check_key(s, key, klen, cb != NULL);

	if (rc != RAFT_OK) {
		return rc;
	}
	rc = kvsm_encode_delete(key, klen, &cmd, &len);
	if (rc != RAFT_OK) {
		return rc;
	}
	return propose(s, cmd, len, false, 0, cb, arg); /* may find no key */
}

/* Reads */

/* TODO(kv-store): a get of a page not in memory blocks the loop thread for
 * a disk read (docs/adr/0002); serve gets from the thread pool once a
 * benchmark shows it matters. */
static void answer_get(struct kv_get *g)
{
	struct kvsm_meta m;
	struct kv_meta meta;
	void *val = NULL;
	size_t vlen = 0;
	int rc = kvsm_get(g->store->sm, g->key, g->klen, &val, &vlen, &m);

	if (rc == RAFT_OK) {
		meta.create_index = m.create_index;
		meta.mod_index = m.mod_index;
		meta.version = m.version;
		g->cb(g->arg, RAFT_OK, val, vlen, &meta);
	} else {
		g->cb(g->arg, rc, NULL, 0, NULL);
	}
	free(val);
	free(g);
}

static void read_ready(void *arg, int status, raft_index index)
{
	struct kv_get *g = arg;

	(void)index; /* the node has applied through it */
	if (status != RAFT_OK) {
		g->cb(g->arg, status, NULL, 0, NULL);
		free(g);
		return;
	}
	answer_get(g);
}

/* What a queued get gets once the store cannot serve it: the node's own
 * failure, as its pending requests got, or RAFT_ESHUTDOWN when closing. */
static int stopped_status(const struct kv_store *s)
{
	if (s->closing || s->node->state != NODE_FAILED) {
		return RAFT_ESHUTDOWN;
	}
	return s->node->fail_rc == RAFT_ENOSPC ? RAFT_ENOSPC : RAFT_EIO;
}

static void deferred_cb(uv_timer_t *t);
static bool deferred_ready(const struct kv_store *s, const struct kv_get *g)
{
	return g->need <= s->node->applied || s->closing ||
	       s->node->state != NODE_RUNNING;
}

/* Answer the queued serializable gets on the next loop iteration, if the
 * first can be answered (the queue is in order of need). */
static void deferred_kick(struct kv_store *s)
{
	if (s->deferred_head != NULL && deferred_ready(s, s->deferred_head)) {
		uv_timer_start(&s->deferred_timer, deferred_cb, 0, 0);
	}
}

static void node_progress(void *data)
{
	struct kv_store *s = data;

	forget_applied(s, s->node->state != NODE_RUNNING);
	deferred_kick(s);
}

static void deferred_cb(uv_timer_t *t)
{
	struct kv_store *s = t->data;
	struct kv_get *g = s->deferred_head, *last = s->deferred_tail;

	/* Answer only what is queued now and ready; callbacks may queue
	 * more. */
	while (g != NULL && deferred_ready(s, g)) {
		struct kv_get *next = g->next;
		bool end = g == last;

		s->deferred_head = next;
		if (next == NULL) {
			s->deferred_tail = NULL;
		}
		if (s->closing || s->node->state != NODE_RUNNING) {
			g->cb(g->arg, stopped_status(s), NULL, 0, NULL);
			free(g);
		} else {
			answer_get(g);
		}
		if (end) {
			break;
		}
		g = s->deferred_head;
	}
}

int kv_store_get(struct kv_store *s, const void *key, size_t klen,
		 bool serializable, kv_read_cb cb, void *arg)
{
	struct kv_get *g;
	int rc = check_key(s, key, klen, cb != NULL);

	if (rc != RAFT_OK) {
		return rc;
	}
	g = malloc(sizeof(*g) + klen);
	if (g == NULL) {
		return RAFT_ENOMEM;
	}
	g->store = s;
	g->cb = cb;
	g->arg = arg;
	g->next = NULL;
	g->need = s->acked;
	g->klen = klen;
	memcpy(g->key, key, klen);
	if (!serializable) {
		rc = raft_node_read(s->node, read_ready, g);
		if (rc != RAFT_OK) {
			free(g);
		}
		return rc;
	}
	if (s->deferred_tail != NULL) {
		s->deferred_tail->next = g;
	} else {
		s->deferred_head = g;
	}
	s->deferred_tail = g;
	deferred_kick(s);
	return RAFT_OK;
}

int kv_store_status(struct kv_store *s, struct raft_node_status *st)
{
	if (s->closing) {
		memset(st, 0, sizeof(*st));
		return RAFT_ESHUTDOWN;
	}
	return raft_node_status(s->node, st);
}
