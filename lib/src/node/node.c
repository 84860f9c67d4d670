/* The node runtime: one libuv loop drives the pure core (core/), the
 * durable log (log/), the TCP transport (net/) and a state machine.
 *
 * States (struct raft_node.state):
 *
 *     raft_node_start() ---> RUNNING --node_fail()--> FAILED
 *                               |                        |
 *                               +--raft_node_close()-----+--> CLOSING
 *     CLOSING --(ticker, kick, transport, log closed; no apply in flight)
 *             --> node_close_step() frees the node, calls the close cb.
 *
 * RUNNING: the ticker calls raft_tick() every tick_ms, the transport feeds
 * raft_step(), and node_run() (run.c) takes the core's updates once per
 * loop iteration. FAILED: nothing drives the core any more; requests fail
 * with RAFT_ESHUTDOWN; only close is useful. CLOSING: every request failed
 * with RAFT_ESHUTDOWN; waiting for handles.
 *
 * Threads: everything here runs on the loop thread; fsm->apply runs on the
 * node's apply thread, or on the loop for small batches (run.c). Nothing
 * is global: any number of nodes may share a process or a loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/transport.h"
#include "node/node.h"

void raft_node_config_init(struct raft_node_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->tick_ms = RAFT_NODE_DEFAULT_TICK_MS;
	cfg->election_ticks = RAFT_NODE_DEFAULT_ELECTION_TICKS;
	cfg->heartbeat_ticks = RAFT_NODE_DEFAULT_HEARTBEAT_TICKS;
	cfg->max_entry_size = RAFT_NODE_DEFAULT_MAX_ENTRY;
	cfg->max_pending = RAFT_NODE_DEFAULT_MAX_PENDING;
	cfg->read_timeout_ms = RAFT_NODE_DEFAULT_READ_TIMEOUT_MS;
}

/* Transport and timer callbacks */

static void recv_cb(void *data, const struct raft_msg *m)
{
	struct raft_node *n = data;

	if (n->state != NODE_RUNNING) {
		return;
	}
	if (raft_step(n->core, m) != RAFT_OK) {
		/* Dropped like a lost packet; the sender retransmits. */
		node_logf(n, RAFT_LOG_WARN,
			  "msg=\"dropped a message: out of memory\" id=%llu "
			  "from=%llu",
			  (unsigned long long)n->cfg.id,
			  (unsigned long long)m->from);
		return;
	}
	node_kick(n);
}

static struct node_peer *find_peer(struct raft_node *n, raft_id id)
{
	for (size_t i = 0; i < n->n_peers; i++) {
		if (n->peers[i].id == id) {
			return &n->peers[i];
		}
	}
	return NULL;
}

static void peer_cb(void *data, raft_id id, bool connected,
		    const char *peer_client_addr)
{
	struct raft_node *n = data;
	struct node_peer *p = find_peer(n, id);

	if (p == NULL) {
		return;
	}
	p->connected = connected;
	if (peer_client_addr != NULL) {
		snprintf(p->client_addr, sizeof(p->client_addr), "%s",
			 peer_client_addr);
	}
	/* The transport logs the transition itself. */
}

static void tick_cb(uv_timer_t *t)
{
	struct raft_node *n = t->data;

	if (n->state != NODE_RUNNING) {
		return;
	}
	raft_tick(n->core);
	node_expire_reads(n);
	node_start_apply(n); /* retries one that failed for memory */
	node_kick(n);
}

/* Start */

static int check_config(const struct raft_node_config *cfg, char *errmsg,
			size_t errlen)
{
	if (cfg->fsm == NULL || cfg->fsm->applied == NULL ||
	    cfg->fsm->apply == NULL) {
		node_errf(errmsg, errlen,
			  "a state machine with applied() and apply() is "
			  "required");
		return RAFT_EINVAL;
	}
	if (cfg->id == 0) {
		node_errf(errmsg, errlen, "node id 0 is reserved");
		return RAFT_EINVAL;
	}
	if (cfg->data_dir == NULL || cfg->data_dir[0] == '\0') {
		node_errf(errmsg, errlen, "a data directory is required");
		return RAFT_EINVAL;
	}
	if (strlen(cfg->data_dir) > 3500) {
		node_errf(errmsg, errlen,
			  "the data directory's path is longer "
			  "than 3500 bytes");
		return RAFT_EINVAL;
	}
	if (cfg->heartbeat_ticks >= cfg->election_ticks) {
		node_errf(errmsg, errlen,
			  "heartbeat_ticks (%u) must be below election_ticks "
			  "(%u)",
			  cfg->heartbeat_ticks, cfg->election_ticks);
		return RAFT_EINVAL;
	}
	if (cfg->client_addr != NULL &&
	    strlen(cfg->client_addr) >= RAFT_ADDR_MAX) {
		node_errf(errmsg, errlen, "client address too long");
		return RAFT_EINVAL;
	}
	return RAFT_OK;
}

/* Copy cfg into n, filling zero fields with defaults. */
static int copy_config(struct raft_node *n, const struct raft_node_config *cfg)
{
	struct raft_node_config d;

	raft_node_config_init(&d);
	n->cfg = *cfg;
	n->cfg.members = NULL;
	n->cfg.n_members = 0;
#define NODE_DEFAULT(f)                                                        \
	if (n->cfg.f == 0)                                                     \
	n->cfg.f = d.f
	NODE_DEFAULT(tick_ms);
	NODE_DEFAULT(election_ticks);
	NODE_DEFAULT(heartbeat_ticks);
	NODE_DEFAULT(max_entry_size);
	NODE_DEFAULT(max_pending);
	NODE_DEFAULT(read_timeout_ms);
#undef NODE_DEFAULT
	if (n->cfg.seed == 0) {
		n->cfg.seed = uv_hrtime() ^ (cfg->id * 0x9e3779b97f4a7c15ull);
	}
	n->data_dir = strdup(cfg->data_dir);
	n->log_dir = malloc(strlen(cfg->data_dir) + 5);
	if (cfg->client_addr != NULL) {
		n->client_addr = strdup(cfg->client_addr);
	}
	if (n->data_dir == NULL || n->log_dir == NULL ||
	    (cfg->client_addr != NULL && n->client_addr == NULL)) {
		return RAFT_ENOMEM;
	}
	sprintf(n->log_dir, "%s/log", cfg->data_dir);
	n->cfg.data_dir = n->data_dir;
	n->cfg.client_addr = n->client_addr;
	return RAFT_OK;
}

static int make_dir(const char *dir, char *errmsg, size_t errlen)
{
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		node_errf(errmsg, errlen, "cannot create %s: %s", dir,
			  strerror(errno));
		return RAFT_EIO;
	}
	return RAFT_OK;
}

/* Two nodes on one data directory would corrupt the log: hold an exclusive
 * flock() on DIR/LOCK while the node lives. flock() locks belong to the open
 * file, so a second node in the same process is refused too, and the kernel
 * drops the lock when a killed process's descriptors close. */
static int lock_dir(struct raft_node *n, char *errmsg, size_t errlen)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/LOCK", n->data_dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		node_errf(errmsg, errlen, "cannot open %s: %s", path,
			  strerror(errno));
		return RAFT_EIO;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int err = errno;

		close(fd);
		if (err == EWOULDBLOCK) {
			node_errf(errmsg, errlen,
				  "%s is in use by another node (%s is "
				  "locked); stop that node or use another "
				  "data directory",
				  n->data_dir, path);
			return RAFT_EBUSY;
		}
		node_errf(errmsg, errlen, "cannot lock %s: %s", path,
			  strerror(err));
		return RAFT_EIO;
	}
	n->lock_fd = fd;
	return RAFT_OK;
}

/* Members of the stored cluster become the peer table; the listen address
 * defaults to this node's member address.
 * TODO(node): membership changes (learners, then joint consensus) need the
 * core's support first; until then the member list is fixed at bootstrap. */
static int setup_peers(struct raft_node *n, const struct raft_node_config *cfg,
		       char *errmsg, size_t errlen)
{
	const char *listen = cfg->peer_addr;

	n->n_peers = n->cluster.n_members;
	for (size_t i = 0; i < n->n_peers; i++) {
		struct node_peer *p = &n->peers[i];

		p->id = n->cluster.members[i].id;
		memcpy(p->addr, n->cluster.members[i].addr, RAFT_ADDR_MAX);
		if (p->id == cfg->id) {
			p->connected = true;
			if (listen == NULL) {
				listen = p->addr;
			}
			if (cfg->client_addr != NULL) {
				snprintf(p->client_addr, sizeof(p->client_addr),
					 "%s", cfg->client_addr);
			}
		}
	}
	if (find_peer(n, cfg->id) == NULL) {
		node_errf(errmsg, errlen,
			  "node id %llu is not one of the cluster's members",
			  (unsigned long long)cfg->id);
		return RAFT_EINVAL;
	}
	n->peer_addr = strdup(listen);
	if (n->peer_addr == NULL) {
		return RAFT_ENOMEM;
	}
	n->cfg.peer_addr = n->peer_addr;
	return RAFT_OK;
}

/* The state machine never applies past the commit index, and the log keeps
 * every committed entry: a log that ends below what was applied has lost
 * committed entries (segment files removed or cut short), which this member
 * may have counted towards a majority. */
static int check_log_end(struct raft_node *n, const struct rlog_loaded *loaded,
			 raft_index applied, char *errmsg, size_t errlen)
{
	raft_index last = 0;

	if (loaded->n_entries > 0) {
		last = loaded->entries[loaded->n_entries - 1].index;
	}
	if (applied <= last) {
		return RAFT_OK;
	}
	node_errf(errmsg, errlen,
		  "the state machine has applied index %llu but the log in %s "
		  "ends at %llu: committed entries are missing from the log; "
		  "restore the data directory %s from a backup taken while "
		  "the node was stopped; never start this member on an empty "
		  "data directory (it would forget its votes and log)",
		  (unsigned long long)applied, n->log_dir,
		  (unsigned long long)last, n->data_dir);
	return RAFT_ECORRUPT;
}

/* Prefix the core's reason for refusing the stored log with where it is. */
static void refused_log(struct raft_node *n, char *errmsg, size_t errlen)
{
	char why[256];

	if (errmsg == NULL || errlen == 0) {
		return;
	}
	snprintf(why, sizeof(why), "%s", errmsg);
	node_errf(errmsg, errlen, "the log in %s cannot be used: %s",
		  n->log_dir, why);
}

/* Load the log and build the core from it. */
static int open_core(struct raft_node *n, char *errmsg, size_t errlen)
{
	struct rlog_options lo = {.segment_size = n->cfg.segment_size,
				  .no_sync = n->cfg.no_sync,
				  .no_direct = n->cfg.no_direct_io};
	struct rlog_loaded loaded;
	struct raft_config rc_cfg;
	struct raft_restore restore;
	raft_id ids[RAFT_MAX_PEERS];
	raft_index applied = 0;
	int rc;

	rc = n->cfg.fsm->applied(n->cfg.fsm, &applied);
	if (rc != RAFT_OK) {
		node_errf(errmsg, errlen,
			  "cannot read the state machine's applied index: %s",
			  raft_strerror(rc));
		return rc;
	}
	lo.keep = applied;
	memset(&loaded, 0, sizeof(loaded));
	rc = rlog_open(n->loop, n->log_dir, &lo, &n->log, &loaded, errmsg,
		       errlen);
	if (rc != RAFT_OK) {
		return rc;
	}
	if (loaded.notice[0] != '\0') {
		node_logf(n, RAFT_LOG_WARN,
			  "msg=\"log tail repaired\" id=%llu detail=\"%s\"",
			  (unsigned long long)n->cfg.id, loaded.notice);
	}
	for (size_t i = 0; i < n->n_peers; i++) {
		ids[i] = n->peers[i].id;
	}
	raft_config_init(&rc_cfg);
	rc_cfg.id = n->cfg.id;
	rc_cfg.peers = ids;
	rc_cfg.n_peers = n->n_peers;
	rc_cfg.election_ticks = n->cfg.election_ticks;
	rc_cfg.heartbeat_ticks = n->cfg.heartbeat_ticks;
	rc_cfg.pre_vote = true;
	rc_cfg.check_quorum = true;
	rc_cfg.seed = n->cfg.seed;
	restore.term = loaded.term;
	restore.vote = loaded.vote;
	restore.entries = loaded.entries;
	restore.n_entries = loaded.n_entries;
	restore.applied = applied;
	rc = check_log_end(n, &loaded, applied, errmsg, errlen);
	if (rc == RAFT_OK) {
		rc = raft_new(&rc_cfg, &restore, &n->core, errmsg, errlen);
		if (rc == RAFT_EINVAL) {
			/* The configuration passed check_config() and the
			 * cluster checks: what the core refused is the
			 * stored term, vote or entries. */
			refused_log(n, errmsg, errlen);
			rc = RAFT_ECORRUPT;
		}
	}
	if (rc == RAFT_OK) {
		node_logf(n, RAFT_LOG_INFO,
			  "msg=\"log loaded\" id=%llu term=%llu vote=%llu "
			  "entries=%zu applied=%llu",
			  (unsigned long long)n->cfg.id,
			  (unsigned long long)loaded.term,
			  (unsigned long long)loaded.vote, loaded.n_entries,
			  (unsigned long long)applied);
	}
	rlog_loaded_free(&loaded);
	if (rc != RAFT_OK) {
		rlog_close(n->log, NULL, NULL);
		n->log = NULL;
		return rc;
	}
	n->queued = n->applied = applied;
	n->role = n->logged_role = raft_role(n->core);
	n->term = n->logged_term = raft_current_term(n->core);
	return RAFT_OK;
}

static int start_net(struct raft_node *n, char *errmsg, size_t errlen)
{
	struct rnet_options o;

	memset(&o, 0, sizeof(o));
	o.self = n->cfg.id;
	o.cluster_id = n->cluster.cluster_id;
	o.listen_addr = n->peer_addr;
	o.client_addr = n->client_addr;
	o.members = n->cluster.members;
	o.n_members = n->cluster.n_members;
	o.seed = n->cfg.seed;
	o.log = n->cfg.log;
	o.log_data = n->cfg.log_data;
	return rnet_start(n->loop, &o, recv_cb, peer_cb, n, &n->net, errmsg,
			  errlen);
}

static void free_node(struct raft_node *n)
{
	node_run_free(n);
	if (n->core != NULL) {
		raft_free(n->core);
	}
	free(n->data_dir);
	free(n->log_dir);
	free(n->peer_addr);
	free(n->client_addr);
	if (n->lock_fd >= 0) {
		close(n->lock_fd);
	}
	free(n);
}

int raft_node_start(uv_loop_t *loop, const struct raft_node_config *cfg,
		    struct raft_node **out, char *errmsg, size_t errlen)
{
	struct raft_node *n;
	int rc;

	node_errf(errmsg, errlen, "%s", "");
	if (loop == NULL || cfg == NULL || out == NULL) {
		node_errf(errmsg, errlen, "loop, cfg and out are required");
		return RAFT_EINVAL;
	}
	n = calloc(1, sizeof(*n));
	if (n == NULL) {
		return RAFT_ENOMEM;
	}
	n->loop = loop;
	n->lock_fd = -1;
	rc = copy_config(n, cfg);
	if (rc != RAFT_OK) {
		goto err_node;
	}
	rc = check_config(&n->cfg, errmsg, errlen);
	if (rc != RAFT_OK) {
		goto err_node;
	}
	rc = make_dir(n->data_dir, errmsg, errlen);
	if (rc != RAFT_OK) {
		goto err_node;
	}
	rc = lock_dir(n, errmsg, errlen);
	if (rc != RAFT_OK) {
		goto err_node;
	}
	rc = node_cluster_load(n->data_dir, cfg, &n->cluster, errmsg, errlen);
	if (rc != RAFT_OK) {
		goto err_node;
	}
	rc = setup_peers(n, cfg, errmsg, errlen);
	if (rc != RAFT_OK) {
		goto err_node;
	}
	rc = open_core(n, errmsg, errlen);
	if (rc != RAFT_OK) {
		goto err_node;
	}
	rc = start_net(n, errmsg, errlen);
	if (rc != RAFT_OK) {
		goto err_log;
	}
	/* Stored only once everything that can fail at the first start has
	 * worked, so that a failed first start (a peer port in use) leaves
	 * no member list behind to refuse the corrected configuration. */
	if (n->cluster.fresh) {
		rc = node_cluster_store(n->data_dir, &n->cluster, errmsg,
					errlen);
		if (rc != RAFT_OK) {
			goto err_net;
		}
		n->cluster.fresh = false;
	}
	rc = node_applier_start(n);
	if (rc != RAFT_OK) {
		goto err_net;
	}
	uv_timer_init(loop, &n->ticker);
	uv_idle_init(loop, &n->kick);
	n->ticker.data = n;
	n->kick.data = n;
	uv_timer_start(&n->ticker, tick_cb, n->cfg.tick_ms, n->cfg.tick_ms);
	n->state = NODE_RUNNING;
	node_logf(n, RAFT_LOG_INFO,
		  "msg=\"node started\" id=%llu cluster_id=%llu members=%zu "
		  "peer_addr=%s client_addr=%s tick_ms=%u election_ticks=%u",
		  (unsigned long long)n->cfg.id,
		  (unsigned long long)n->cluster.cluster_id, n->n_peers,
		  n->peer_addr, n->client_addr ? n->client_addr : "-",
		  n->cfg.tick_ms, n->cfg.election_ticks);
	*out = n;
	return RAFT_OK;

err_net:
	rnet_close(n->net, NULL, NULL);
err_log:
	/* The log's worker stops and its memory is freed on the loop. */
	rlog_close(n->log, NULL, NULL);
err_node:
	if (rc == RAFT_ENOMEM) {
		node_errf(errmsg, errlen, "out of memory");
	}
	free_node(n);
	return rc;
}

/* Requests */

static int propose(struct raft_node *n, const void *data, size_t len,
		   bool at_commit, raft_node_propose_cb cb, void *arg)
{
	struct node_proposal *p;
	int rc;

	if (n->state != NODE_RUNNING) {
		return RAFT_ESHUTDOWN;
	}
	if (cb == NULL || (data == NULL && len > 0)) {
		return RAFT_EINVAL;
	}
	if (len > n->cfg.max_entry_size) {
		return RAFT_ETOOBIG;
	}
	if (n->n_pending >= n->cfg.max_pending) {
		return RAFT_EBUSY;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		return RAFT_ENOMEM;
	}
	rc = raft_propose(n->core, data, len, &p->index, &p->term);
	if (rc != RAFT_OK) {
		free(p);
		return rc;
	}
	p->cb = cb;
	p->arg = arg;
	p->at_commit = at_commit;
	/* A leader appends at increasing indexes: the queue stays sorted. */
	if (n->prop_tail != NULL) {
		n->prop_tail->next = p;
	} else {
		n->prop_head = p;
	}
	n->prop_tail = p;
	n->n_pending++;
	n->n_at_commit += at_commit;
	node_kick(n);
	return RAFT_OK;
}

int raft_node_propose(struct raft_node *n, const void *data, size_t len,
		      raft_node_propose_cb cb, void *arg)
{
	return propose(n, data, len, false, cb, arg);
}

int raft_node_propose_commit(struct raft_node *n, const void *data,
			     size_t len, raft_node_propose_cb cb, void *arg)
{
	return propose(n, data, len, true, cb, arg);
}

int raft_node_read(struct raft_node *n, raft_node_read_cb cb, void *arg)
{
	struct node_read *r;
	int rc;

	if (n->state != NODE_RUNNING) {
		return RAFT_ESHUTDOWN;
	}
	if (cb == NULL) {
		return RAFT_EINVAL;
	}
	if (n->n_pending >= n->cfg.max_pending) {
		return RAFT_EBUSY;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		return RAFT_ENOMEM;
	}
	r->id = ++n->last_read_id;
	rc = raft_read_index(n->core, r->id);
	if (rc != RAFT_OK) {
		free(r);
		return rc;
	}
	r->cb = cb;
	r->arg = arg;
	r->deadline = uv_now(n->loop) + n->cfg.read_timeout_ms;
	r->prev = n->read_tail;
	if (n->read_tail != NULL) {
		n->read_tail->next = r;
	} else {
		n->read_head = r;
	}
	n->read_tail = r;
	n->n_pending++;
	node_kick(n);
	return RAFT_OK;
}

/* Status */

int raft_node_status(struct raft_node *n, struct raft_node_status *st)
{
	struct raft_status s;

	raft_get_status(n->core, &s);
	memset(st, 0, sizeof(*st));
	st->id = n->cfg.id;
	st->cluster_id = n->cluster.cluster_id;
	st->role = s.role;
	st->term = s.term;
	st->leader = s.leader;
	st->commit = s.commit;
	st->applied = n->applied;
	st->last_index = s.last_index;
	st->failed = n->state == NODE_FAILED;
	st->n_peers = n->n_peers;
	for (size_t i = 0; i < n->n_peers; i++) {
		struct raft_node_peer_status *ps = &st->peers[i];
		const struct node_peer *p = &n->peers[i];

		ps->id = p->id;
		memcpy(ps->addr, p->addr, RAFT_ADDR_MAX);
		memcpy(ps->client_addr, p->client_addr, RAFT_ADDR_MAX);
		ps->connected = p->connected;
		for (size_t j = 0; j < s.n_peers; j++) {
			if (s.peers[j].id == p->id) {
				ps->match = s.peers[j].match;
			}
		}
		if (p->id == s.leader) {
			memcpy(st->leader_client_addr, p->client_addr,
			       RAFT_ADDR_MAX);
		}
	}
	return n->state == NODE_CLOSING ? RAFT_ESHUTDOWN : RAFT_OK;
}

/* Close */

void node_close_step(struct raft_node *n)
{
	void (*cb)(void *arg) = n->close_cb;
	void *arg = n->close_arg;

	if (n->close_waits > 0) {
		return;
	}
	free_node(n);
	if (cb != NULL) {
		cb(arg);
	}
}

static void handle_closed(uv_handle_t *h)
{
	struct raft_node *n = h->data;

	n->close_waits--;
	node_close_step(n);
}

static void net_closed(void *arg)
{
	struct raft_node *n = arg;

	n->net = NULL;
	n->close_waits--;
	node_close_step(n);
}

static void log_closed(void *arg)
{
	struct raft_node *n = arg;

	n->log = NULL;
	n->close_waits--;
	node_close_step(n);
}

void raft_node_close(struct raft_node *n, void (*cb)(void *arg), void *arg)
{
	if (n->state == NODE_CLOSING) {
		return;
	}
	n->state = NODE_CLOSING;
	n->close_cb = cb;
	n->close_arg = arg;
	node_logf(n, RAFT_LOG_INFO, "msg=\"node closing\" id=%llu",
		  (unsigned long long)n->cfg.id);
	/* Held by waits until every close below has called back. */
	n->close_waits = 5;
	uv_timer_stop(&n->ticker);
	uv_idle_stop(&n->kick);
	uv_close((uv_handle_t *)&n->ticker, handle_closed);
	uv_close((uv_handle_t *)&n->kick, handle_closed);
	rnet_close(n->net, net_closed, n);
	rlog_close(n->log, log_closed, n);
	node_applier_stop(n, handle_closed);
	node_fail_pending(n, RAFT_ESHUTDOWN);
}
