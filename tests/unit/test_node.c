/* Tests of the node runtime and the key-value store built on it: real
 * nodes on one libuv loop in this process, talking TCP over loopback
 * (ports 22000-22999), with their data in temporary directories. Every wait
 * runs the loop until a condition holds or a deadline passes. */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libraft/kv.h"
#include "libraft/node.h"

#define N_NODES	    3
#define DEADLINE_MS 10000

/* Running the loop */

struct deadline {
	uv_timer_t timer;
	bool expired;
};

static void deadline_cb(uv_timer_t *t)
{
	struct deadline *d = t->data;

	d->expired = true;
}

/* Run loop until pred(arg) holds; false if timeout_ms passed first. */
static bool run_until(uv_loop_t *loop, bool (*pred)(void *), void *arg,
		      unsigned timeout_ms)
{
	struct deadline d = {.expired = false};
	bool ok;

	uv_timer_init(loop, &d.timer);
	d.timer.data = &d;
	uv_timer_start(&d.timer, deadline_cb, timeout_ms, 0);
	while (!(ok = pred(arg)) && !d.expired) {
		uv_run(loop, UV_RUN_ONCE);
	}
	uv_close((uv_handle_t *)&d.timer, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	return ok;
}

static bool flag_set(void *arg)
{
	return *(bool *)arg;
}

/* Log lines, kept for the assertions on what the node reports. */
struct log_sink {
	char text[65536];
	size_t len;
};

static void log_hook(void *data, enum raft_log_level level, const char *msg)
{
	struct log_sink *s = data;
	int w;

	if (s->len >= sizeof(s->text) - 1) {
		return;
	}
	w = snprintf(s->text + s->len, sizeof(s->text) - s->len, "%d %s\n",
		     (int)level, msg);
	if (w > 0) {
		s->len += (size_t)w;
		if (s->len >= sizeof(s->text)) {
			s->len = sizeof(s->text) - 1;
		}
	}
}

/* A cluster of key-value stores */

struct cluster {
	uv_loop_t loop;
	int base_port;
	size_t n;
	char dirs[N_NODES][64];
	char client_addrs[N_NODES][64];
	struct raft_member members[N_NODES];
	struct kv_store *stores[N_NODES];
	struct log_sink logs[N_NODES];
};

static void make_members(struct cluster *c)
{
	for (size_t i = 0; i < c->n; i++) {
		c->members[i].id = i + 1;
		snprintf(c->members[i].addr, sizeof(c->members[i].addr),
			 "127.0.0.1:%d", c->base_port + (int)i);
		snprintf(c->client_addrs[i], sizeof(c->client_addrs[i]),
			 "127.0.0.1:%d", c->base_port + 100 + (int)i);
	}
}

static void store_config(struct cluster *c, size_t i, struct kv_config *cfg)
{
	kv_config_init(cfg);
	cfg->node.id = i + 1;
	cfg->node.data_dir = c->dirs[i];
	cfg->node.client_addr = c->client_addrs[i];
	cfg->node.members = c->members;
	cfg->node.n_members = c->n;
	cfg->node.log = log_hook;
	cfg->node.log_data = &c->logs[i];
	cfg->map_size = 1 << 20;
}

static int open_store(struct cluster *c, size_t i)
{
	struct kv_config cfg;
	char errmsg[512];
	int rc;

	store_config(c, i, &cfg);
	rc = kv_store_open(&c->loop, &cfg, &c->stores[i], errmsg,
			   sizeof(errmsg));
	ck_assert_msg(rc == RAFT_OK, "open node %zu: %s: %s", i + 1,
		      raft_strerror(rc), errmsg);
	return rc;
}

static void cluster_init(struct cluster *c, size_t n, int base_port)
{
	memset(c, 0, sizeof(*c));
	ck_assert_int_eq(uv_loop_init(&c->loop), 0);
	c->n = n;
	c->base_port = base_port;
	make_members(c);
	for (size_t i = 0; i < n; i++) {
		snprintf(c->dirs[i], sizeof(c->dirs[i]),
			 "/tmp/libraft-node-XXXXXX");
		ck_assert_ptr_nonnull(mkdtemp(c->dirs[i]));
	}
}

static void cluster_start(struct cluster *c, size_t n, int base_port)
{
	cluster_init(c, n, base_port);
	for (size_t i = 0; i < n; i++) {
		open_store(c, i);
	}
}

struct close_wait {
	bool done;
};

static void closed_cb(void *arg)
{
	struct close_wait *w = arg;

	w->done = true;
}

static void close_store(struct cluster *c, size_t i)
{
	struct close_wait w = {false};

	kv_store_close(c->stores[i], closed_cb, &w);
	ck_assert(run_until(&c->loop, flag_set, &w.done, DEADLINE_MS));
	c->stores[i] = NULL;
}

static void remove_dir(const char *dir)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* Close every store, check that the loop holds no handle, remove data. */
static void cluster_stop(struct cluster *c)
{
	for (size_t i = 0; i < c->n; i++) {
		if (c->stores[i] != NULL) {
			close_store(c, i);
		}
	}
	uv_run(&c->loop, UV_RUN_NOWAIT);
	ck_assert_int_eq(uv_loop_close(&c->loop), 0);
	for (size_t i = 0; i < c->n; i++) {
		remove_dir(c->dirs[i]);
	}
}

static struct raft_node_status status_of(struct cluster *c, size_t i)
{
	struct raft_node_status st;

	ck_assert_int_eq(kv_store_status(c->stores[i], &st), RAFT_OK);
	return st;
}

/* The index of the one node that leads and that every open node follows,
 * or -1. */
static int agreed_leader(struct cluster *c)
{
	int leader = -1;
	raft_id id = 0;

	for (size_t i = 0; i < c->n; i++) {
		struct raft_node_status st;

		if (c->stores[i] == NULL) {
			continue;
		}
		st = status_of(c, i);
		if (st.leader == 0 || (id != 0 && st.leader != id)) {
			return -1;
		}
		id = st.leader;
		if (st.role == RAFT_LEADER) {
			leader = (int)i;
		}
	}
	return leader;
}

static bool has_agreed_leader(void *arg)
{
	return agreed_leader(arg) >= 0;
}

static int wait_leader(struct cluster *c)
{
	ck_assert_msg(run_until(&c->loop, has_agreed_leader, c, DEADLINE_MS),
		      "no leader within %d ms", DEADLINE_MS);
	return agreed_leader(c);
}

/* Requests, waited for */

struct write_wait {
	bool done;
	int status;
	uint64_t index;
};

static void write_cb(void *arg, int status, uint64_t index)
{
	struct write_wait *w = arg;

	w->done = true;
	w->status = status;
	w->index = index;
}

static struct write_wait put_sync(struct cluster *c, size_t i, const char *key,
				  const char *val)
{
	struct write_wait w = {false, 0, 0};
	int rc = kv_store_put(c->stores[i], key, strlen(key), val, strlen(val),
			      write_cb, &w);

	ck_assert_msg(rc == RAFT_OK, "put: %s", raft_strerror(rc));
	ck_assert(run_until(&c->loop, flag_set, &w.done, DEADLINE_MS));
	return w;
}

static struct write_wait del_sync(struct cluster *c, size_t i, const char *key)
{
	struct write_wait w = {false, 0, 0};
	int rc = kv_store_del(c->stores[i], key, strlen(key), write_cb, &w);

	ck_assert_msg(rc == RAFT_OK, "del: %s", raft_strerror(rc));
	ck_assert(run_until(&c->loop, flag_set, &w.done, DEADLINE_MS));
	return w;
}

struct read_wait {
	bool done;
	int status;
	char val[256];
	struct kv_meta meta;
};

static void read_cb(void *arg, int status, const void *val, size_t vlen,
		    const struct kv_meta *meta)
{
	struct read_wait *r = arg;

	r->done = true;
	r->status = status;
	if (status == RAFT_OK) {
		ck_assert_uint_lt(vlen, sizeof(r->val));
		memcpy(r->val, val, vlen);
		r->val[vlen] = '\0';
		r->meta = *meta;
	} else {
		ck_assert_ptr_null(val);
		ck_assert_ptr_null(meta);
	}
}

static struct read_wait get_sync(struct cluster *c, size_t i, const char *key,
				 bool serializable)
{
	struct read_wait r;
	int rc;

	memset(&r, 0, sizeof(r));
	rc = kv_store_get(c->stores[i], key, strlen(key), serializable, read_cb,
			  &r);
	ck_assert_msg(rc == RAFT_OK, "get: %s", raft_strerror(rc));
	ck_assert_msg(!r.done, "read answered inside the call");
	ck_assert(run_until(&c->loop, flag_set, &r.done, DEADLINE_MS));
	return r;
}

struct applied_wait {
	struct cluster *c;
	size_t i;
	uint64_t index;
};

static bool has_applied(void *arg)
{
	struct applied_wait *a = arg;

	return status_of(a->c, a->i).applied >= a->index;
}

static void wait_applied(struct cluster *c, size_t i, uint64_t index)
{
	struct applied_wait a = {c, i, index};

	ck_assert_msg(run_until(&c->loop, has_applied, &a, DEADLINE_MS),
		      "node %zu did not apply %" PRIu64, i + 1, index);
}

/* Tests */

/* Three stores in one process elect one leader, and a put acknowledged by
 * it is read back linearizably from every node, followers included. */
START_TEST(test_put_on_leader_is_read_linearizably_on_every_node)
{
	struct cluster c;
	struct write_wait w;
	int l;

	cluster_start(&c, 3, 22000);
	l = wait_leader(&c);
	w = put_sync(&c, (size_t)l, "colour", "blue");
	ck_assert_int_eq(w.status, RAFT_OK);
	ck_assert_uint_gt(w.index, 0);
	for (size_t i = 0; i < c.n; i++) {
		struct read_wait r = get_sync(&c, i, "colour", false);

		ck_assert_msg(r.status == RAFT_OK, "node %zu: %s", i + 1,
			      raft_strerror(r.status));
		ck_assert_str_eq(r.val, "blue");
		ck_assert_uint_eq(r.meta.create_index, w.index);
		ck_assert_uint_eq(r.meta.mod_index, w.index);
		ck_assert_uint_eq(r.meta.version, 1);
	}
	cluster_stop(&c);
}
END_TEST

/* Once a node has applied a write, a serializable get on it returns the
 * value without asking the leader. */
START_TEST(test_serializable_get_sees_applied_write)
{
	struct cluster c;
	struct write_wait w;
	int l;

	cluster_start(&c, 3, 22010);
	l = wait_leader(&c);
	w = put_sync(&c, (size_t)l, "k", "v1");
	ck_assert_int_eq(w.status, RAFT_OK);
	w = put_sync(&c, (size_t)l, "k", "v2");
	ck_assert_int_eq(w.status, RAFT_OK);
	for (size_t i = 0; i < c.n; i++) {
		struct read_wait r;

		wait_applied(&c, i, w.index);
		r = get_sync(&c, i, "k", true);
		ck_assert_int_eq(r.status, RAFT_OK);
		ck_assert_str_eq(r.val, "v2");
		ck_assert_uint_eq(r.meta.version, 2);
		ck_assert_uint_eq(r.meta.mod_index, w.index);
	}
	cluster_stop(&c);
}
END_TEST

struct leader_addr_wait {
	struct cluster *c;
	size_t follower;
	const char *want;
};

static bool follower_knows_leader_addr(void *arg)
{
	struct leader_addr_wait *a = arg;
	struct raft_node_status st = status_of(a->c, a->follower);

	return strcmp(st.leader_client_addr, a->want) == 0;
}

/* A put on a follower is refused at once with RAFT_ENOTLEADER, and the
 * follower's status names the leader and its client address. */
START_TEST(test_put_on_follower_names_the_leader)
{
	struct cluster c;
	struct leader_addr_wait a;
	struct raft_node_status st;
	struct write_wait w = {false, 0, 0};
	size_t f;
	int l, rc;

	cluster_start(&c, 3, 22020);
	l = wait_leader(&c);
	f = ((size_t)l + 1) % c.n;
	rc = kv_store_put(c.stores[f], "a", 1, "b", 1, write_cb, &w);
	ck_assert_int_eq(rc, RAFT_ENOTLEADER);
	a.c = &c;
	a.follower = f;
	a.want = c.client_addrs[l];
	ck_assert(
	    run_until(&c.loop, follower_knows_leader_addr, &a, DEADLINE_MS));
	st = status_of(&c, f);
	ck_assert_uint_eq(st.leader, (uint64_t)l + 1);
	ck_assert_int_eq(st.role, RAFT_FOLLOWER);
	ck_assert_str_eq(st.leader_client_addr, c.client_addrs[l]);
	ck_assert(!w.done);
	cluster_stop(&c);
}
END_TEST

/* A delete removes the key; deleting it again reports RAFT_ENOTFOUND, and
 * so does a get. */
START_TEST(test_delete_removes_key_and_reports_absent_key)
{
	struct cluster c;
	struct write_wait w;
	struct read_wait r;
	int l;

	cluster_start(&c, 3, 22030);
	l = wait_leader(&c);
	ck_assert_int_eq(put_sync(&c, (size_t)l, "gone", "soon").status,
			 RAFT_OK);
	w = del_sync(&c, (size_t)l, "gone");
	ck_assert_int_eq(w.status, RAFT_OK);
	w = del_sync(&c, (size_t)l, "gone");
	ck_assert_int_eq(w.status, RAFT_ENOTFOUND);
	r = get_sync(&c, ((size_t)l + 1) % c.n, "gone", false);
	ck_assert_int_eq(r.status, RAFT_ENOTFOUND);
	cluster_stop(&c);
}
END_TEST

/* A node closed and reopened on its data directory still holds what it
 * had applied, and rejoins the cluster. */
START_TEST(test_reopened_node_keeps_its_data)
{
	struct cluster c;
	struct write_wait w;
	struct read_wait r;
	size_t f;
	int l;

	cluster_start(&c, 3, 22040);
	l = wait_leader(&c);
	w = put_sync(&c, (size_t)l, "durable", "yes");
	ck_assert_int_eq(w.status, RAFT_OK);
	f = ((size_t)l + 1) % c.n;
	wait_applied(&c, f, w.index);
	close_store(&c, f);

	/* Written while the node was down: it must catch up. */
	w = put_sync(&c, (size_t)l, "later", "too");
	ck_assert_int_eq(w.status, RAFT_OK);

	open_store(&c, f);
	r = get_sync(&c, f, "durable", true);
	ck_assert_int_eq(r.status, RAFT_OK);
	ck_assert_str_eq(r.val, "yes");
	wait_applied(&c, f, w.index);
	r = get_sync(&c, f, "later", false);
	ck_assert_int_eq(r.status, RAFT_OK);
	ck_assert_str_eq(r.val, "too");
	cluster_stop(&c);
}
END_TEST

/* A whole cluster restarted from its data directories keeps its data and
 * elects a leader again. */
START_TEST(test_restarted_cluster_keeps_its_data)
{
	struct cluster c;
	struct read_wait r;
	int l;

	cluster_start(&c, 3, 22050);
	l = wait_leader(&c);
	ck_assert_int_eq(put_sync(&c, (size_t)l, "x", "1").status, RAFT_OK);
	for (size_t i = 0; i < c.n; i++) {
		close_store(&c, i);
	}
	for (size_t i = 0; i < c.n; i++) {
		open_store(&c, i);
	}
	l = wait_leader(&c);
	r = get_sync(&c, (size_t)l, "x", false);
	ck_assert_int_eq(r.status, RAFT_OK);
	ck_assert_str_eq(r.val, "1");
	ck_assert_int_eq(put_sync(&c, (size_t)l, "x", "2").status, RAFT_OK);
	cluster_stop(&c);
}
END_TEST

/* A restart with a member list other than the stored one is refused with
 * RAFT_EMISMATCH and a message naming both lists; so is another cluster
 * id. The stored configuration still works afterwards. */
START_TEST(test_restart_with_conflicting_members_is_refused)
{
	struct cluster c;
	struct kv_config cfg;
	struct kv_store *s = NULL;
	struct raft_member other[3];
	char errmsg[512];
	int rc;

	cluster_start(&c, 3, 22060);
	close_store(&c, 0);

	memcpy(other, c.members, sizeof(other));
	snprintf(other[2].addr, sizeof(other[2].addr), "127.0.0.1:22069");
	store_config(&c, 0, &cfg);
	cfg.node.members = other;
	rc = kv_store_open(&c.loop, &cfg, &s, errmsg, sizeof(errmsg));
	ck_assert_int_eq(rc, RAFT_EMISMATCH);
	ck_assert_ptr_null(s);
	ck_assert_ptr_nonnull(strstr(errmsg, "127.0.0.1:22062"));
	ck_assert_ptr_nonnull(strstr(errmsg, "127.0.0.1:22069"));

	store_config(&c, 0, &cfg);
	cfg.node.n_members = 2;
	rc = kv_store_open(&c.loop, &cfg, &s, errmsg, sizeof(errmsg));
	ck_assert_int_eq(rc, RAFT_EMISMATCH);

	store_config(&c, 0, &cfg);
	cfg.node.cluster_id = 12345;
	rc = kv_store_open(&c.loop, &cfg, &s, errmsg, sizeof(errmsg));
	ck_assert_int_eq(rc, RAFT_EMISMATCH);
	ck_assert_ptr_nonnull(strstr(errmsg, "12345"));

	/* Without members the stored list is used. */
	store_config(&c, 0, &cfg);
	cfg.node.members = NULL;
	cfg.node.n_members = 0;
	rc = kv_store_open(&c.loop, &cfg, &c.stores[0], errmsg, sizeof(errmsg));
	ck_assert_msg(rc == RAFT_OK, "%s", errmsg);
	cluster_stop(&c);
}
END_TEST

/* Bad configurations are refused with RAFT_EINVAL and a message, and leave
 * nothing running. */
START_TEST(test_bad_config_is_refused)
{
	struct cluster c;
	struct kv_config cfg;
	struct kv_store *s = NULL;
	struct raft_member dup[2];
	char errmsg[512];

	cluster_init(&c, 3, 22070);

	store_config(&c, 0, &cfg);
	cfg.node.id = 7;
	ck_assert_int_eq(
	    kv_store_open(&c.loop, &cfg, &s, errmsg, sizeof(errmsg)),
	    RAFT_EINVAL);
	ck_assert_ptr_nonnull(strstr(errmsg, "not one of"));

	store_config(&c, 1, &cfg);
	cfg.node.members = NULL;
	cfg.node.n_members = 0;
	ck_assert_int_eq(
	    kv_store_open(&c.loop, &cfg, &s, errmsg, sizeof(errmsg)),
	    RAFT_EINVAL);
	ck_assert_ptr_nonnull(strstr(errmsg, "member list"));

	memcpy(dup, c.members, sizeof(dup));
	dup[1].id = dup[0].id;
	store_config(&c, 2, &cfg);
	cfg.node.id = 1;
	cfg.node.members = dup;
	cfg.node.n_members = 2;
	ck_assert_int_eq(
	    kv_store_open(&c.loop, &cfg, &s, errmsg, sizeof(errmsg)),
	    RAFT_EINVAL);
	ck_assert_ptr_nonnull(strstr(errmsg, "twice"));

	store_config(&c, 2, &cfg);
	cfg.node.heartbeat_ticks = cfg.node.election_ticks;
	ck_assert_int_eq(
	    kv_store_open(&c.loop, &cfg, &s, errmsg, sizeof(errmsg)),
	    RAFT_EINVAL);
	ck_assert_ptr_null(s);
	cluster_stop(&c);
}
END_TEST

/* Keys and values over their limits, empty keys and missing callbacks are
 * refused at once and nothing is proposed. */
START_TEST(test_oversized_and_empty_requests_are_refused)
{
	struct cluster c;
	struct write_wait w = {false, 0, 0};
	static char big[KV_MAX_VALUE + 1];
	char key[KV_MAX_KEY + 1];
	struct kv_store *s;
	int l;

	cluster_start(&c, 1, 22080);
	l = wait_leader(&c);
	s = c.stores[l];
	memset(key, 'k', sizeof(key));
	ck_assert_int_eq(
	    kv_store_put(s, key, sizeof(key), "v", 1, write_cb, &w),
	    RAFT_ETOOBIG);
	ck_assert_int_eq(
	    kv_store_put(s, "k", 1, big, sizeof(big), write_cb, &w),
	    RAFT_ETOOBIG);
	ck_assert_int_eq(kv_store_put(s, "", 0, "v", 1, write_cb, &w),
			 RAFT_EINVAL);
	ck_assert_int_eq(kv_store_put(s, "k", 1, "v", 1, NULL, NULL),
			 RAFT_EINVAL);
	ck_assert_int_eq(kv_store_del(s, key, sizeof(key), write_cb, &w),
			 RAFT_ETOOBIG);
	ck_assert_int_eq(kv_store_get(s, "", 0, false, read_cb, NULL),
			 RAFT_EINVAL);
	/* The largest value is accepted. */
	ck_assert_int_eq(
	    kv_store_put(s, "k", 1, big, KV_MAX_VALUE, write_cb, &w), RAFT_OK);
	ck_assert(run_until(&c.loop, flag_set, &w.done, DEADLINE_MS));
	ck_assert_int_eq(w.status, RAFT_OK);
	cluster_stop(&c);
}
END_TEST

/* Closing a store fails its writes still in flight with RAFT_ESHUTDOWN,
 * and later calls with RAFT_ESHUTDOWN at once. */
START_TEST(test_close_fails_pending_writes)
{
	struct cluster c;
	struct write_wait w = {false, 0, 0};
	struct close_wait cw = {false};
	int l;

	cluster_start(&c, 1, 22090);
	l = wait_leader(&c);
	ck_assert_int_eq(
	    kv_store_put(c.stores[l], "k", 1, "v", 1, write_cb, &w), RAFT_OK);
	kv_store_close(c.stores[l], closed_cb, &cw);
	ck_assert(w.done);
	ck_assert_int_eq(w.status, RAFT_ESHUTDOWN);
	ck_assert_int_eq(
	    kv_store_put(c.stores[l], "k", 1, "v", 1, write_cb, &w),
	    RAFT_ESHUTDOWN);
	ck_assert(run_until(&c.loop, flag_set, &cw.done, DEADLINE_MS));
	c.stores[l] = NULL;
	cluster_stop(&c);
}
END_TEST

static bool not_leader(void *arg)
{
	struct applied_wait *a = arg;

	return status_of(a->c, a->i).role != RAFT_LEADER;
}

/* A leader that loses its quorum steps down (CheckQuorum), and its write
 * that could not commit fails with RAFT_ELEADERLOST. */
START_TEST(test_write_fails_with_leaderlost_when_quorum_is_lost)
{
	struct cluster c;
	struct write_wait w = {false, 0, 0};
	struct applied_wait a;
	int l;

	cluster_start(&c, 3, 22100);
	l = wait_leader(&c);
	for (size_t i = 0; i < c.n; i++) {
		if ((int)i != l) {
			close_store(&c, i);
		}
	}
	ck_assert_int_eq(
	    kv_store_put(c.stores[l], "k", 1, "v", 1, write_cb, &w), RAFT_OK);
	a.c = &c;
	a.i = (size_t)l;
	a.index = 0;
	ck_assert(run_until(&c.loop, not_leader, &a, DEADLINE_MS));
	ck_assert(run_until(&c.loop, flag_set, &w.done, DEADLINE_MS));
	ck_assert_int_eq(w.status, RAFT_ELEADERLOST);
	ck_assert_int_eq(
	    kv_store_put(c.stores[l], "k", 1, "v", 1, write_cb, &w),
	    RAFT_ENOTLEADER);
	cluster_stop(&c);
}
END_TEST

/* Role and term changes reach the log hook as key=value lines at info. */
START_TEST(test_role_changes_are_logged)
{
	struct cluster c;
	int l;

	cluster_start(&c, 3, 22110);
	l = wait_leader(&c);
	ck_assert_ptr_nonnull(
	    strstr(c.logs[l].text, "1 event=state_change id="));
	ck_assert_ptr_nonnull(strstr(c.logs[l].text, "role=leader"));
	cluster_stop(&c);
}
END_TEST

static Suite *node_suite(void)
{
	Suite *s = suite_create("node");
	TCase *tc = tcase_create("cluster");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc,
		       test_put_on_leader_is_read_linearizably_on_every_node);
	tcase_add_test(tc, test_serializable_get_sees_applied_write);
	tcase_add_test(tc, test_put_on_follower_names_the_leader);
	tcase_add_test(tc, test_delete_removes_key_and_reports_absent_key);
	tcase_add_test(tc, test_reopened_node_keeps_its_data);
	tcase_add_test(tc, test_restarted_cluster_keeps_its_data);
	tcase_add_test(tc, test_restart_with_conflicting_members_is_refused);
	tcase_add_test(tc, test_bad_config_is_refused);
	tcase_add_test(tc, test_oversized_and_empty_requests_are_refused);
	tcase_add_test(tc, test_close_fails_pending_writes);
	tcase_add_test(tc,
		       test_write_fails_with_leaderlost_when_quorum_is_lost);
	tcase_add_test(tc, test_role_changes_are_logged);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(node_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
