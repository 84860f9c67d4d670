/* Tests of the node runtime and the key-value store built on it: real
 * nodes on one libuv loop in this process, talking TCP over loopback
 * (ports 22000-22999), with their data in temporary directories. Every wait
 * runs the loop until a condition holds or a deadline passes. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kv/kvsm.h"
#include "libraft/kv.h"
#include "libraft/node.h"
#include "log/io.h"

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

static bool flag_set_int(void *arg)
{
	return *(int *)arg != 0;
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
	unsigned read_timeout_ms; /* 0: the default */
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
	cfg->node.read_timeout_ms = c->read_timeout_ms;
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

/* A put answered, then at once (in its callback) a serializable get on the
 * same node. */
struct put_then_get {
	struct kv_store *store;
	struct read_wait r;
	int status;
	uint64_t index;
	bool get_issued;
};

static void put_then_get_cb(void *arg, int status, uint64_t index)
{
	struct put_then_get *t = arg;

	t->status = status;
	t->index = index;
	ck_assert_int_eq(kv_store_get(t->store, "k", 1, true, read_cb, &t->r),
			 RAFT_OK);
	t->get_issued = true;
}

/* A serializable get issued on the leader right after it answered a put,
 * before it has necessarily applied it, still sees that put: a node never
 * answers older than a write it acknowledged. */
START_TEST(test_serializable_get_on_leader_sees_the_put_it_answered)
{
	struct cluster c;
	int l;

	cluster_start(&c, 3, 22280);
	l = wait_leader(&c);
	for (int i = 0; i < 50; i++) {
		struct put_then_get t;
		char val[16];

		memset(&t, 0, sizeof(t));
		t.store = c.stores[l];
		snprintf(val, sizeof(val), "v%d", i);
		ck_assert_int_eq(kv_store_put(c.stores[l], "k", 1, val,
					      strlen(val), put_then_get_cb,
					      &t),
				 RAFT_OK);
		ck_assert(run_until(&c.loop, flag_set, &t.r.done, DEADLINE_MS));
		ck_assert_int_eq(t.status, RAFT_OK);
		ck_assert_int_eq(t.r.status, RAFT_OK);
		ck_assert_str_eq(t.r.val, val);
		ck_assert_uint_eq(t.r.meta.mod_index, t.index);
		ck_assert_uint_eq(t.r.meta.version, (uint64_t)i + 1);
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

/* What a machine crash leaves of node i's state machine: a child process
 * opens the store as the node does and dies with it open; the boot id it
 * recorded is replaced by another (the machine has rebooted since), and
 * the start of the LMDB file is overwritten, as an unsynced store may be
 * torn. */
static void crash_machine_of(struct cluster *c, size_t i, const char *boot)
{
	struct kvsm_options o = {.no_sync = true, .no_meta_sync = true};
	char dir[128], path[160], junk[16384];
	struct kvsm *kv;
	int status;
	pid_t pid;
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/kv", c->dirs[i]);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		_exit(kvsm_open(dir, &o, &kv, NULL, 0) == RAFT_OK ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	snprintf(path, sizeof(path), "%s/%s", dir, KVSM_MARKER);
	ck_assert_int_eq(access(path, F_OK), 0);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(fprintf(f, "%s\n", boot), 0);
	ck_assert_int_eq(fclose(f), 0);

	snprintf(path, sizeof(path), "%s/kv.mdb", dir);
	f = fopen(path, "r+");
	ck_assert_ptr_nonnull(f);
	memset(junk, 0xa5, sizeof(junk));
	ck_assert_uint_eq(fwrite(junk, 1, sizeof(junk), f), sizeof(junk));
	ck_assert_int_eq(fclose(f), 0);
}

/* A node whose machine went down with its state machine open (a marker
 * from another boot, the LMDB file torn) discards the store, says so at
 * warning level, replays its log from index 1 and ends with the same data
 * as the others, including what was written while it was down. */
START_TEST(test_store_left_open_by_earlier_boot_is_rebuilt_from_log)
{
	static const char *keys[] = {"a", "b", "c", "d"};
	static const char *old_boot = "boot-of-an-earlier-life";
	char val[16];
	struct write_wait w;
	struct read_wait r;
	struct cluster c;
	size_t f;
	int l;

	cluster_start(&c, 3, 22180);
	l = wait_leader(&c);
	for (size_t k = 0; k < 4; k++) {
		snprintf(val, sizeof(val), "%zu", k);
		ck_assert_int_eq(put_sync(&c, (size_t)l, keys[k], val).status,
				 RAFT_OK);
	}
	ck_assert_int_eq(del_sync(&c, (size_t)l, "b").status, RAFT_OK);
	f = ((size_t)l + 1) % c.n;
	w = put_sync(&c, (size_t)l, "a", "again");
	wait_applied(&c, f, w.index);
	close_store(&c, f);
	crash_machine_of(&c, f, old_boot);
	w = put_sync(&c, (size_t)l, "e", "while down");
	ck_assert_int_eq(w.status, RAFT_OK);

	open_store(&c, f);
	ck_assert_ptr_nonnull(strstr(
	    c.logs[f].text, "2 msg=\"state machine rebuilt from the log\""));
	ck_assert_ptr_nonnull(strstr(c.logs[f].text, old_boot));
	wait_applied(&c, f, w.index);
	for (size_t k = 0; k < 4; k++) {
		struct read_wait want = get_sync(&c, (size_t)l, keys[k], true);

		r = get_sync(&c, f, keys[k], true);
		ck_assert_int_eq(r.status, want.status);
		ck_assert_str_eq(r.val, want.val);
		ck_assert_uint_eq(r.meta.mod_index, want.meta.mod_index);
		ck_assert_uint_eq(r.meta.version, want.meta.version);
	}
	r = get_sync(&c, f, "e", true);
	ck_assert_int_eq(r.status, RAFT_OK);
	ck_assert_str_eq(r.val, "while down");
	cluster_stop(&c);
}
END_TEST

/* A restart with a member list other than the stored one is refused with
 * RAFT_EMISMATCH and a message naming both lists; so is another cluster
 * id. The advice for a member that has voted keeps its votes and log:
 * start with the stored members or restore the cluster file, never an
 * empty data directory. The stored configuration still works afterwards. */
START_TEST(test_restart_with_conflicting_members_is_refused)
{
	struct cluster c;
	struct kv_config cfg;
	struct kv_store *s = NULL;
	struct raft_member other[3];
	char errmsg[1024];
	int rc;

	cluster_start(&c, 3, 22060);
	wait_leader(&c);
	close_store(&c, 0);

	memcpy(other, c.members, sizeof(other));
	snprintf(other[2].addr, sizeof(other[2].addr), "127.0.0.1:22069");
	store_config(&c, 0, &cfg);
	cfg.node.members = other;
	rc = kv_store_open(&c.loop, &cfg, &s, errmsg, sizeof(errmsg));
	ck_assert_int_eq(rc, RAFT_EMISMATCH);
	ck_assert_ptr_null(s);
	ck_assert_msg(strstr(errmsg, "initialised with members 1=127.0.0.1:"
				     "22060,2=127.0.0.1:22061,3=127.0.0.1:"
				     "22062 but the configuration lists "
				     "1=127.0.0.1:22060,2=127.0.0.1:22061,3="
				     "127.0.0.1:22069") != NULL,
		      "%s", errmsg);
	ck_assert_msg(strstr(errmsg, "start this member with the stored "
				     "members") != NULL,
		      "%s", errmsg);
	ck_assert_msg(strstr(errmsg, "restore it from a backup") != NULL, "%s",
		      errmsg);
	ck_assert_msg(strstr(errmsg, "set its self= line to 1") != NULL, "%s",
		      errmsg);
	ck_assert_msg(strstr(errmsg, "never start this member on an empty "
				     "data directory") != NULL,
		      "%s", errmsg);
	ck_assert_msg(strstr(errmsg, "form a new cluster") == NULL, "%s",
		      errmsg);

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

/* A member that has neither voted nor stored an entry (started alone, its
 * peers never up) has nothing to lose: refused with another member list
 * all the same, it may be told that an empty data directory is safe. */
START_TEST(test_conflicting_members_of_member_without_votes)
{
	struct cluster c;
	struct kv_config cfg;
	struct kv_store *s = NULL;
	struct raft_member other[3];
	char errmsg[1024], meta[128];

	cluster_init(&c, 3, 22350);
	open_store(&c, 0);
	close_store(&c, 0);
	snprintf(meta, sizeof(meta), "%s/log/meta", c.dirs[0]);
	ck_assert_int_ne(access(meta, F_OK), 0);

	memcpy(other, c.members, sizeof(other));
	snprintf(other[2].addr, sizeof(other[2].addr), "127.0.0.1:22359");
	store_config(&c, 0, &cfg);
	cfg.node.members = other;
	ck_assert_int_eq(
	    kv_store_open(&c.loop, &cfg, &s, errmsg, sizeof(errmsg)),
	    RAFT_EMISMATCH);
	ck_assert_msg(strstr(errmsg, "start this member with the stored "
				     "members") != NULL,
		      "%s", errmsg);
	ck_assert_msg(strstr(errmsg, "it holds no vote and no entry yet") !=
			  NULL,
		      "%s", errmsg);
	cluster_stop(&c);
}
END_TEST

/* A damaged cluster file is reported as RAFT_ECORRUPT naming the file and
 * the line, and is left as it was. The advice is to restore the file, and
 * never to start the member on an empty data directory, which would
 * forget its votes and log. */
START_TEST(test_damaged_cluster_file_is_refused)
{
	struct cluster c;
	struct kv_config cfg;
	struct kv_store *s = NULL;
	char errmsg[512], path[128], back[64];
	FILE *f;
	int rc;

	cluster_init(&c, 1, 22160);
	open_store(&c, 0);
	close_store(&c, 0);
	snprintf(path, sizeof(path), "%s/cluster", c.dirs[0]);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("libraft-cluster 2\nself=1\ncluster_id=7\nmember=one two\n", f);
	fclose(f);

	store_config(&c, 0, &cfg);
	rc = kv_store_open(&c.loop, &cfg, &s, errmsg, sizeof(errmsg));
	ck_assert_int_eq(rc, RAFT_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(errmsg, path));
	ck_assert_msg(strstr(errmsg, "damaged (line 4)") != NULL, "%s", errmsg);
	ck_assert_msg(strstr(errmsg, "restore it from a backup") != NULL, "%s",
		      errmsg);
	ck_assert_msg(strstr(errmsg, "never start this member on an empty") !=
			  NULL,
		      "%s", errmsg);
	ck_assert_msg(strstr(errmsg, "start with an empty") == NULL, "%s",
		      errmsg);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(back, sizeof(back), f));
	ck_assert_str_eq(back, "libraft-cluster 2\n");
	fclose(f);
	cluster_stop(&c);
}
END_TEST

/* Cluster files edited by hand */

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(fputs(text, f), 0);
	ck_assert_int_eq(fclose(f), 0);
}

static void read_text(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, len - 1, f);
	ck_assert(n < len - 1); /* all of it */
	buf[n] = '\0';
	fclose(f);
}

/* text with its first line that starts with prefix replaced by line. */
static void replace_line(const char *text, const char *prefix, const char *line,
			 char *out, size_t len)
{
	const char *at = strstr(text, prefix), *end;

	ck_assert_ptr_nonnull(at);
	ck_assert(at == text || at[-1] == '\n');
	end = strchr(at, '\n');
	ck_assert_ptr_nonnull(end);
	ck_assert_int_lt(
	    snprintf(out, len, "%.*s%s%s", (int)(at - text), text, line, end),
	    (int)len);
}

/* Open node i of c expecting rc with want in the message, then run the
 * loop until what the refused start opened is closed (no other node of c
 * may be open). */
static void open_refused(struct cluster *c, size_t i, int rc, const char *want)
{
	struct kv_config cfg;
	struct kv_store *s = NULL;
	char errmsg[1024];

	store_config(c, i, &cfg);
	ck_assert_int_eq(
	    kv_store_open(&c->loop, &cfg, &s, errmsg, sizeof(errmsg)), rc);
	ck_assert_ptr_null(s);
	ck_assert_msg(strstr(errmsg, want) != NULL, "no '%s' in: %s", want,
		      errmsg);
	uv_run(&c->loop, UV_RUN_DEFAULT);
}

/* Numbers in the cluster file are digits alone, within 64 bits, with
 * nothing after them but blanks, and self= and cluster_id= come once: any
 * other line is reported as damage at its line number, and the file is
 * left as it was. Trailing blanks are accepted. */
START_TEST(test_cluster_file_is_parsed_strictly)
{
	static const struct {
		const char *prefix, *line, *want;
	} bad[] = {
	    {"self=", "self=1garbage", "damaged (line 2)"},
	    {"self=", "self=+1", "damaged (line 2)"},
	    {"self=", "self= 1", "damaged (line 2)"},
	    {"self=", "self=1\nself=1", "damaged (line 3)"},
	    {"cluster_id=", "cluster_id=123xyz", "damaged (line 3)"},
	    {"cluster_id=", "cluster_id=18446744073709551616",
	     "damaged (line 3)"},
	    {"cluster_id=", "cluster_id=", "damaged (line 3)"},
	    {"member=1 ", "member=1 127.0.0.1:22300 extra junk",
	     "damaged (line 4)"},
	    {"member=1 ", "member=1x 127.0.0.1:22300", "damaged (line 4)"},
	    {"member=1 ", "member=1", "damaged (line 4)"},
	};
	struct cluster c;
	char path[128], orig[512], text[512], back[512];

	cluster_init(&c, 1, 22300);
	open_store(&c, 0);
	close_store(&c, 0);
	snprintf(path, sizeof(path), "%s/cluster", c.dirs[0]);
	read_text(path, orig, sizeof(orig));

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		replace_line(orig, bad[i].prefix, bad[i].line, text,
			     sizeof(text));
		write_text(path, text);
		open_refused(&c, 0, RAFT_ECORRUPT, bad[i].want);
		read_text(path, back, sizeof(back));
		ck_assert_str_eq(back, text);
	}
	write_text(path, "");
	open_refused(&c, 0, RAFT_ECORRUPT, "is damaged (it is empty)");

	replace_line(orig, "self=", "self=1 \t", text, sizeof(text));
	write_text(path, text);
	open_store(&c, 0);
	cluster_stop(&c);
}
END_TEST

/* The stored cluster id is the hash of the stored members: a file whose
 * id or member lines were edited is refused as damaged, naming the lists,
 * instead of running with members its peers do not have (they would refuse
 * it for its cluster id). */
START_TEST(test_edited_cluster_id_or_member_line_is_refused)
{
	struct cluster c;
	char path[128], orig[512], text[512], line[64];
	unsigned long long id;
	const char *at;

	cluster_init(&c, 1, 22310);
	open_store(&c, 0);
	close_store(&c, 0);
	snprintf(path, sizeof(path), "%s/cluster", c.dirs[0]);
	read_text(path, orig, sizeof(orig));
	at = strstr(orig, "cluster_id=");
	ck_assert_ptr_nonnull(at);
	ck_assert_int_eq(sscanf(at, "cluster_id=%llu", &id), 1);

	snprintf(line, sizeof(line), "cluster_id=%llu", id + 1);
	replace_line(orig, "cluster_id=", line, text, sizeof(text));
	write_text(path, text);
	open_refused(&c, 0, RAFT_ECORRUPT, "does not match its members");
	open_refused(&c, 0, RAFT_ECORRUPT, "1=127.0.0.1:22310");

	replace_line(orig, "member=1 ", "member=1 127.0.0.1:22319", text,
		     sizeof(text));
	write_text(path, text);
	open_refused(&c, 0, RAFT_ECORRUPT,
		     "is that of the members given, 1=127.0.0.1:22310, not "
		     "of its member lines, 1=127.0.0.1:22319: a member line "
		     "was changed");
	open_refused(&c, 0, RAFT_ECORRUPT, "restore it from a backup");

	write_text(path, orig);
	open_store(&c, 0);
	cluster_stop(&c);
}
END_TEST

/* A cluster id the caller chose at the first start is accepted when given
 * again; without it, the stored id must be the members' own. */
START_TEST(test_chosen_cluster_id_is_given_at_every_start)
{
	struct cluster c;
	struct kv_config cfg;
	char errmsg[1024];

	cluster_init(&c, 1, 22320);
	store_config(&c, 0, &cfg);
	cfg.node.cluster_id = 4242;
	ck_assert_int_eq(
	    kv_store_open(&c.loop, &cfg, &c.stores[0], errmsg, sizeof(errmsg)),
	    RAFT_OK);
	close_store(&c, 0);
	ck_assert_int_eq(
	    kv_store_open(&c.loop, &cfg, &c.stores[0], errmsg, sizeof(errmsg)),
	    RAFT_OK);
	close_store(&c, 0);
	open_refused(&c, 0, RAFT_ECORRUPT,
		     "its cluster id 4242 does not match");
	cluster_stop(&c);
}
END_TEST

/* Move every file of from whose name ends in suffix into to. */
static void move_files(const char *from, const char *to, const char *suffix)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && mv '%s'/*%s '%s'/", to,
		 from, suffix, to);
	ck_assert_int_eq(system(cmd), 0);
}

/* A data directory whose cluster file is there but whose log is gone (the
 * log directory removed, or its segment files, with or without the term
 * and vote file) is refused with RAFT_ECORRUPT naming the directory, the
 * member and what is missing, and is left as it was: starting it as an
 * empty member would forget its votes and entries. With the log back, it
 * starts. */
START_TEST(test_data_dir_without_its_log_is_refused)
{
	struct cluster c;
	char log[128], aside[128], meta[160], want[256];
	int l;

	cluster_start(&c, 1, 22330);
	l = wait_leader(&c);
	ck_assert_int_eq(put_sync(&c, (size_t)l, "k", "v").status, RAFT_OK);
	close_store(&c, 0);
	snprintf(log, sizeof(log), "%s/log", c.dirs[0]);
	snprintf(aside, sizeof(aside), "%s/aside", c.dirs[0]);
	snprintf(meta, sizeof(meta), "%s/meta", log);
	snprintf(want, sizeof(want),
		 "%s/cluster says this data directory belongs to member 1 of "
		 "cluster ",
		 c.dirs[0]);

	ck_assert_int_eq(rename(log, aside), 0);
	open_refused(&c, 0, RAFT_ECORRUPT, want);
	snprintf(want, sizeof(want),
		 "its Raft log (%s) is missing: the member's votes and log "
		 "are lost",
		 log);
	open_refused(&c, 0, RAFT_ECORRUPT, want);
	ck_assert_int_ne(access(log, F_OK), 0);
	ck_assert_int_eq(rename(aside, log), 0);

	move_files(log, aside, ".seg");
	open_refused(&c, 0, RAFT_ECORRUPT,
		     "has its term and vote file but no segment files");
	ck_assert_int_eq(access(meta, F_OK), 0);

	move_files(log, aside, "meta");
	open_refused(&c, 0, RAFT_ECORRUPT,
		     "has no segment files and no term and vote file");
	open_refused(&c, 0, RAFT_ECORRUPT, "restore the whole data directory");

	move_files(aside, log, "");
	ck_assert_int_eq(rmdir(aside), 0);
	open_store(&c, 0);
	wait_leader(&c);
	ck_assert_str_eq(get_sync(&c, 0, "k", false).val, "v");
	cluster_stop(&c);
}
END_TEST

/* A log that ends below the index the state machine has applied (its last
 * records cut away) has lost committed entries: the start is refused with
 * RAFT_ECORRUPT, data damage rather than a bad configuration, naming the
 * log directory. */
START_TEST(test_log_ending_below_applied_index_is_refused)
{
	struct cluster c;
	struct write_wait w;
	char seg[160], want[256];
	int l;

	cluster_start(&c, 1, 22340);
	l = wait_leader(&c);
	w = put_sync(&c, (size_t)l, "k", "v");
	ck_assert_int_eq(w.status, RAFT_OK);
	/* Answered at commit: wait until the store holds it too. */
	wait_applied(&c, (size_t)l, w.index);
	close_store(&c, 0);
	snprintf(seg, sizeof(seg), "%s/log/00000000000000000001.seg",
		 c.dirs[0]);
	ck_assert_int_eq(truncate(seg, 32), 0); /* the header alone */

	snprintf(want, sizeof(want), "but the log in %s/log ends at 0",
		 c.dirs[0]);
	open_refused(&c, 0, RAFT_ECORRUPT, want);
	open_refused(&c, 0, RAFT_ECORRUPT,
		     "committed entries are missing from the log");
	cluster_stop(&c);
}
END_TEST

/* A data directory started under another member's id (a copy of node 3's
 * directory started as node 2) is refused with RAFT_EMISMATCH naming both
 * ids; its own id still opens it. */
START_TEST(test_data_dir_of_another_member_is_refused)
{
	struct cluster c;
	struct kv_config cfg;
	struct kv_store *s = NULL;
	char errmsg[512];
	int rc;

	cluster_init(&c, 3, 22190);
	open_store(&c, 2);
	close_store(&c, 2);

	store_config(&c, 1, &cfg);
	cfg.node.data_dir = c.dirs[2];
	rc = kv_store_open(&c.loop, &cfg, &s, errmsg, sizeof(errmsg));
	ck_assert_int_eq(rc, RAFT_EMISMATCH);
	ck_assert_ptr_null(s);
	ck_assert_msg(strstr(errmsg, "belongs to member 3, not 2") != NULL,
		      "%s", errmsg);

	open_store(&c, 2);
	cluster_stop(&c);
}
END_TEST

/* A cluster file without the member it belongs to (the first format) is
 * refused with RAFT_ECORRUPT and a message saying how to repair it. */
START_TEST(test_cluster_file_without_own_id_is_refused)
{
	struct cluster c;
	struct kv_config cfg;
	struct kv_store *s = NULL;
	char errmsg[512], path[128];
	FILE *f;
	int rc;

	cluster_init(&c, 1, 22195);
	snprintf(path, sizeof(path), "%s/cluster", c.dirs[0]);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "libraft-cluster 1\ncluster_id=7\nmember=1 %s\n",
		c.members[0].addr);
	fclose(f);

	store_config(&c, 0, &cfg);
	rc = kv_store_open(&c.loop, &cfg, &s, errmsg, sizeof(errmsg));
	ck_assert_int_eq(rc, RAFT_ECORRUPT);
	ck_assert_ptr_null(s);
	ck_assert_msg(strstr(errmsg, "self=ID") != NULL, "%s", errmsg);
	ck_assert_msg(strstr(errmsg, "start with an empty") == NULL, "%s",
		      errmsg);
	cluster_stop(&c);
}
END_TEST

/* Members sharing an address are refused with RAFT_EINVAL before anything
 * is stored, so the corrected list starts the node afterwards. */
START_TEST(test_members_with_one_address_are_refused_and_not_stored)
{
	struct cluster c;
	struct kv_config cfg;
	struct kv_store *s = NULL;
	struct raft_member dup[3];
	char errmsg[512], path[128];
	int rc;

	cluster_init(&c, 3, 22240);
	memcpy(dup, c.members, sizeof(dup));
	snprintf(dup[1].addr, sizeof(dup[1].addr), "%s", dup[0].addr);
	store_config(&c, 0, &cfg);
	cfg.node.members = dup;
	rc = kv_store_open(&c.loop, &cfg, &s, errmsg, sizeof(errmsg));
	ck_assert_int_eq(rc, RAFT_EINVAL);
	ck_assert_ptr_null(s);
	ck_assert_msg(strstr(errmsg, "same address") != NULL, "%s", errmsg);
	snprintf(path, sizeof(path), "%s/cluster", c.dirs[0]);
	ck_assert_int_ne(access(path, F_OK), 0);

	open_store(&c, 0);
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

/* A second store on a data directory in use is refused with RAFT_EBUSY
 * and touches nothing; a store whose peer address is taken is refused
 * with RAFT_EIO and leaves nothing open on the loop. */
START_TEST(test_busy_data_dir_and_peer_addr_are_refused)
{
	struct cluster c;
	struct kv_config cfg;
	struct kv_store *s = NULL;
	char errmsg[512], other[64], path[128];
	int rc;

	cluster_init(&c, 3, 22140);
	open_store(&c, 0);

	store_config(&c, 0, &cfg);
	cfg.node.peer_addr = "127.0.0.1:22149";
	rc = kv_store_open(&c.loop, &cfg, &s, errmsg, sizeof(errmsg));
	ck_assert_int_eq(rc, RAFT_EBUSY);
	ck_assert_ptr_nonnull(strstr(errmsg, "in use by another node"));
	ck_assert_ptr_null(s);

	snprintf(other, sizeof(other), "/tmp/libraft-node-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(other));
	store_config(&c, 1, &cfg);
	cfg.node.data_dir = other;
	cfg.node.peer_addr = c.members[0].addr;
	rc = kv_store_open(&c.loop, &cfg, &s, errmsg, sizeof(errmsg));
	ck_assert_int_eq(rc, RAFT_EIO);
	ck_assert_ptr_null(s);
	/* The failed first start stored no member list. */
	snprintf(path, sizeof(path), "%s/cluster", other);
	ck_assert_int_ne(access(path, F_OK), 0);
	remove_dir(other);
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
	    strstr(c.logs[l].text, "1 msg=\"state changed\" id="));
	ck_assert_ptr_nonnull(strstr(c.logs[l].text, "role=leader"));
	cluster_stop(&c);
}
END_TEST

struct burst {
	struct write_wait w[300];
	size_t n_done;
	uint64_t last_index;
	bool in_order;
};

struct burst_item {
	struct burst *b;
	size_t i;
};

static void burst_cb(void *arg, int status, uint64_t index)
{
	struct burst_item *it = arg;
	struct burst *b = it->b;

	write_cb(&b->w[it->i], status, index);
	if (it->i != b->n_done || index <= b->last_index) {
		b->in_order = false;
	}
	b->last_index = index;
	b->n_done++;
}

static bool burst_done(void *arg)
{
	struct burst *b = arg;

	return b->n_done == sizeof(b->w) / sizeof(b->w[0]);
}

/* Writes issued together are batched, acknowledged in the order they were
 * issued at increasing indexes, and all of them reach the followers. */
START_TEST(test_burst_of_writes_is_acknowledged_in_order)
{
	static struct burst b;
	static struct burst_item items[300];
	struct cluster c;
	struct read_wait r;
	char key[32];
	size_t n = sizeof(b.w) / sizeof(b.w[0]);
	int l;

	cluster_start(&c, 3, 22120);
	l = wait_leader(&c);
	memset(&b, 0, sizeof(b));
	b.in_order = true;
	for (size_t i = 0; i < n; i++) {
		items[i].b = &b;
		items[i].i = i;
		snprintf(key, sizeof(key), "key-%zu", i);
		ck_assert_int_eq(kv_store_put(c.stores[l], key, strlen(key),
					      key, strlen(key), burst_cb,
					      &items[i]),
				 RAFT_OK);
	}
	ck_assert(run_until(&c.loop, burst_done, &b, DEADLINE_MS));
	ck_assert(b.in_order);
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(b.w[i].status, RAFT_OK);
	}
	r = get_sync(&c, ((size_t)l + 1) % c.n, "key-299", false);
	ck_assert_int_eq(r.status, RAFT_OK);
	ck_assert_str_eq(r.val, "key-299");
	cluster_stop(&c);
}
END_TEST

/* A node cut off from the rest still serves serializable reads of what it
 * applied, while a linearizable read fails instead of hanging. */
START_TEST(test_isolated_node_serves_only_serializable_reads)
{
	struct cluster c;
	struct write_wait w;
	struct read_wait r;
	size_t f;
	int l, rc;

	cluster_init(&c, 3, 22130);
	c.read_timeout_ms = 1000;
	for (size_t i = 0; i < c.n; i++) {
		open_store(&c, i);
	}
	l = wait_leader(&c);
	w = put_sync(&c, (size_t)l, "k", "v");
	ck_assert_int_eq(w.status, RAFT_OK);
	f = ((size_t)l + 1) % c.n;
	wait_applied(&c, f, w.index);
	for (size_t i = 0; i < c.n; i++) {
		if (i != f) {
			close_store(&c, i);
		}
	}
	r = get_sync(&c, f, "k", true);
	ck_assert_int_eq(r.status, RAFT_OK);
	ck_assert_str_eq(r.val, "v");

	memset(&r, 0, sizeof(r));
	rc = kv_store_get(c.stores[f], "k", 1, false, read_cb, &r);
	if (rc == RAFT_OK) {
		ck_assert(run_until(&c.loop, flag_set, &r.done, DEADLINE_MS));
		rc = r.status;
	}
	ck_assert_msg(rc == RAFT_ETIMEDOUT || rc == RAFT_ELEADERLOST ||
			  rc == RAFT_ENOTLEADER,
		      "linearizable read without a leader: %s",
		      raft_strerror(rc));
	cluster_stop(&c);
}
END_TEST

/* A store whose map cannot hold a write stops: the write fails with
 * RAFT_ENOSPC, the status says failed, later writes fail with
 * RAFT_ESHUTDOWN, and the log hook gets one error line. */
START_TEST(test_full_store_stops_the_node)
{
	static char big[KV_MAX_VALUE];
	struct cluster c;
	struct kv_config cfg;
	struct write_wait w = {false, 0, 0};
	struct raft_node_status st;
	char errmsg[512];
	int l, rc;

	cluster_init(&c, 1, 22150);
	store_config(&c, 0, &cfg);
	cfg.map_size = 256 * 1024;
	cfg.max_map_size = 256 * 1024;
	rc = kv_store_open(&c.loop, &cfg, &c.stores[0], errmsg, sizeof(errmsg));
	ck_assert_msg(rc == RAFT_OK, "%s", errmsg);
	l = wait_leader(&c);
	ck_assert_int_eq(
	    kv_store_put(c.stores[l], "k", 1, big, sizeof(big), write_cb, &w),
	    RAFT_OK);
	ck_assert(run_until(&c.loop, flag_set, &w.done, DEADLINE_MS));
	ck_assert_int_eq(w.status, RAFT_ENOSPC);
	ck_assert_int_eq(kv_store_status(c.stores[l], &st), RAFT_OK);
	ck_assert(st.failed);
	ck_assert_int_eq(
	    kv_store_put(c.stores[l], "k", 1, "v", 1, write_cb, &w),
	    RAFT_ESHUTDOWN);
	ck_assert_int_eq(kv_store_get(c.stores[l], "k", 1, true, read_cb, NULL),
			 RAFT_ESHUTDOWN);
	ck_assert_ptr_nonnull(
	    strstr(c.logs[l].text, "3 msg=\"node stopped after a failure\""));
	cluster_stop(&c);
}
END_TEST

static int failing_fdatasync(int fd)
{
	(void)fd;
	errno = EIO;
	return -1;
}

static void note_failed(void *data, int status)
{
	*(int *)data = status;
}

/* A log that cannot sync stops the node (fail-stop): the write fails with
 * RAFT_EIO, the failed callback runs, later writes fail with
 * RAFT_ESHUTDOWN, and the error line names the log and the failed call. */
START_TEST(test_log_sync_failure_stops_the_node)
{
	struct cluster c;
	struct kv_config cfg;
	struct write_wait w = {false, 0, 0};
	struct raft_node_status st;
	char errmsg[512];
	int failed = 0, rc;

	cluster_init(&c, 1, 22170);
	store_config(&c, 0, &cfg);
	cfg.node.failed = note_failed;
	cfg.node.failed_data = &failed;
	rc = kv_store_open(&c.loop, &cfg, &c.stores[0], errmsg, sizeof(errmsg));
	ck_assert_msg(rc == RAFT_OK, "%s", errmsg);
	wait_leader(&c);
	ck_assert_int_eq(put_sync(&c, 0, "before", "ok").status, RAFT_OK);

	rlog_io.fdatasync = failing_fdatasync;
	w = put_sync(&c, 0, "after", "lost");
	rlog_io = rlog_io_default;
	ck_assert_int_eq(w.status, RAFT_EIO);
	ck_assert_int_eq(failed, RAFT_EIO);
	ck_assert_int_eq(kv_store_status(c.stores[0], &st), RAFT_OK);
	ck_assert(st.failed);
	ck_assert_int_eq(
	    kv_store_put(c.stores[0], "k", 1, "v", 1, write_cb, &w),
	    RAFT_ESHUTDOWN);
	ck_assert_ptr_nonnull(strstr(c.logs[0].text, "cause=log_write"));
	ck_assert_ptr_nonnull(strstr(c.logs[0].text, "fdatasync"));
	cluster_stop(&c);
}
END_TEST

/* Level 1: a node with a caller-supplied state machine */

/* A state machine that records commands as strings and fails on "fail". */
struct test_fsm {
	struct raft_fsm fsm;
	raft_index applied;
	uint64_t n_commands;
	pthread_t loop_thread;
	size_t on_loop, off_loop; /* batches applied on each side */
	/* While hold is set, apply waits before touching anything. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool hold;
	const char *why; /* what the failed apply says, NULL before */
};

static void test_fsm_hold(struct test_fsm *t, bool hold)
{
	pthread_mutex_lock(&t->lock);
	t->hold = hold;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

static raft_index test_fsm_applied_now(struct test_fsm *t)
{
	raft_index applied;

	pthread_mutex_lock(&t->lock);
	applied = t->applied;
	pthread_mutex_unlock(&t->lock);
	return applied;
}

static int test_fsm_applied(struct raft_fsm *fsm, raft_index *index)
{
	struct test_fsm *t = fsm->data;

	*index = t->applied;
	return RAFT_OK;
}

static int test_fsm_apply(struct raft_fsm *fsm, const struct raft_entry *e,
			  size_t n, struct raft_fsm_result *results)
{
	struct test_fsm *t = fsm->data;
	int rc = RAFT_OK;

	pthread_mutex_lock(&t->lock);
	while (t->hold) {
		pthread_cond_wait(&t->cond, &t->lock);
	}
	if (pthread_equal(pthread_self(), t->loop_thread)) {
		t->on_loop++;
	} else {
		t->off_loop++;
	}
	for (size_t i = 0; i < n; i++) {
		char *copy;

		ck_assert_uint_eq(e[i].index, t->applied + 1);
		t->applied = e[i].index;
		if (e[i].type != RAFT_ENTRY_COMMAND) {
			continue;
		}
		if (e[i].len == 4 && memcmp(e[i].data, "fail", 4) == 0) {
			t->why = "test: the command said fail";
			rc = RAFT_EIO;
			break;
		}
		copy = malloc(e[i].len + 1);
		ck_assert_ptr_nonnull(copy);
		memcpy(copy, e[i].data, e[i].len);
		copy[e[i].len] = '\0';
		results[i].value = ++t->n_commands;
		results[i].ptr = copy;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

static const char *test_fsm_failure(struct raft_fsm *fsm)
{
	struct test_fsm *t = fsm->data;
	const char *why;

	pthread_mutex_lock(&t->lock);
	why = t->why;
	pthread_mutex_unlock(&t->lock);
	return why;
}

struct solo {
	int failed_status; /* from the failed callback, 0 until then */
	uv_loop_t loop;
	char dir[64];
	struct raft_member member;
	struct test_fsm fsm;
	struct raft_node *node;
	struct log_sink log;
};

static bool solo_leads(void *arg)
{
	struct solo *s = arg;
	struct raft_node_status st;

	raft_node_status(s->node, &st);
	return st.role == RAFT_LEADER;
}

static void solo_failed(void *data, int status)
{
	struct solo *s = data;

	ck_assert_int_eq(s->failed_status, 0);
	s->failed_status = status;
}

static void solo_start_with(struct solo *s, int port, bool with_log,
			    size_t loop_max)
{
	struct raft_node_config cfg;
	char errmsg[256];
	int rc;

	memset(s, 0, sizeof(*s));
	ck_assert_int_eq(uv_loop_init(&s->loop), 0);
	snprintf(s->dir, sizeof(s->dir), "/tmp/libraft-node-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(s->dir));
	s->member.id = 1;
	snprintf(s->member.addr, sizeof(s->member.addr), "127.0.0.1:%d", port);
	s->fsm.fsm.data = &s->fsm;
	s->fsm.fsm.applied = test_fsm_applied;
	s->fsm.fsm.apply = test_fsm_apply;
	s->fsm.fsm.failure = test_fsm_failure;
	s->fsm.fsm.loop_max = loop_max;
	s->fsm.loop_thread = pthread_self();
	pthread_mutex_init(&s->fsm.lock, NULL);
	pthread_cond_init(&s->fsm.cond, NULL);
	raft_node_config_init(&cfg);
	cfg.id = 1;
	cfg.data_dir = s->dir;
	cfg.members = &s->member;
	cfg.n_members = 1;
	cfg.fsm = &s->fsm.fsm;
	if (with_log) {
		cfg.log = log_hook;
		cfg.log_data = &s->log;
	}
	cfg.failed = solo_failed;
	cfg.failed_data = s;
	rc = raft_node_start(&s->loop, &cfg, &s->node, errmsg, sizeof(errmsg));
	ck_assert_msg(rc == RAFT_OK, "%s", errmsg);
	ck_assert(run_until(&s->loop, solo_leads, s, DEADLINE_MS));
}

static void solo_start(struct solo *s, int port, bool with_log)
{
	solo_start_with(s, port, with_log, 0);
}

static void solo_stop(struct solo *s)
{
	struct close_wait w = {false};

	raft_node_close(s->node, closed_cb, &w);
	ck_assert(run_until(&s->loop, flag_set, &w.done, DEADLINE_MS));
	uv_run(&s->loop, UV_RUN_NOWAIT);
	ck_assert_int_eq(uv_loop_close(&s->loop), 0);
	remove_dir(s->dir);
	pthread_mutex_destroy(&s->fsm.lock);
	pthread_cond_destroy(&s->fsm.cond);
}

struct proposal_wait {
	bool done;
	int status;
	raft_index index;
	uint64_t value;
	char text[16];
	int *order; /* callbacks seen so far, shared */
	int seen_at;
};

static void propose_cb(void *arg, int status, raft_index index,
		       struct raft_fsm_result *result)
{
	struct proposal_wait *p = arg;

	ck_assert(!p->done); /* exactly once */
	p->done = true;
	p->status = status;
	p->index = index;
	p->seen_at = (*p->order)++;
	if (status == RAFT_OK && result == NULL) {
		snprintf(p->text, sizeof(p->text), "(commit)");
	} else if (status == RAFT_OK) {
		p->value = result->value;
		snprintf(p->text, sizeof(p->text), "%s",
			 (const char *)result->ptr);
		free(result->ptr);
	} else {
		ck_assert_ptr_null(result);
	}
}

static bool all_done(void *arg)
{
	struct proposal_wait *p = arg;

	for (; p->order != NULL; p++) {
		if (!p->done) {
			return false;
		}
	}
	return true;
}

/* Proposals are applied in log order and each proposer receives its own
 * entry's result, with the pointer the state machine allocated. */
START_TEST(test_proposers_get_their_own_results_in_order)
{
	static const char *cmds[] = {"a", "bb", "ccc"};
	struct proposal_wait p[4];
	struct solo s;
	int order = 0;

	solo_start(&s, 22200, true);
	memset(p, 0, sizeof(p));
	for (int i = 0; i < 3; i++) {
		p[i].order = &order;
		ck_assert_int_eq(raft_node_propose(s.node, cmds[i],
						   strlen(cmds[i]), propose_cb,
						   &p[i]),
				 RAFT_OK);
		ck_assert(!p[i].done);
	}
	ck_assert(run_until(&s.loop, all_done, p, DEADLINE_MS));
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(p[i].status, RAFT_OK);
		ck_assert_int_eq(p[i].seen_at, i);
		ck_assert_uint_eq(p[i].value, (uint64_t)i + 1);
		ck_assert_str_eq(p[i].text, cmds[i]);
		if (i > 0) {
			ck_assert_uint_eq(p[i].index, p[i - 1].index + 1);
		}
	}
	solo_stop(&s);
}
END_TEST

/* With loop_max set, small batches are applied on the loop thread and large
 * ones on the apply thread, and either way every entry is applied once, in
 * log order, and each proposer gets its own result in order. */
START_TEST(test_small_batches_apply_on_loop_and_large_ones_off_it)
{
	enum { N = 101 };
	struct proposal_wait *p = calloc(N + 1, sizeof(*p));
	char cmd[16];
	struct solo s;
	int order = 0;

	ck_assert_ptr_nonnull(p);
	solo_start_with(&s, 22240, true, 4);
	for (int i = 0; i < N; i++) {
		p[i].order = &order;
		snprintf(cmd, sizeof(cmd), "c%d", i);
		ck_assert_int_eq(raft_node_propose(s.node, cmd, strlen(cmd),
						   propose_cb, &p[i]),
				 RAFT_OK);
		/* One alone first (a batch of one), then a burst. */
		if (i == 0) {
			ck_assert(run_until(&s.loop, flag_set, &p[0].done,
					    DEADLINE_MS));
		}
	}
	ck_assert(run_until(&s.loop, all_done, p, DEADLINE_MS));
	for (int i = 0; i < N; i++) {
		snprintf(cmd, sizeof(cmd), "c%d", i);
		ck_assert_int_eq(p[i].status, RAFT_OK);
		ck_assert_int_eq(p[i].seen_at, i);
		ck_assert_uint_eq(p[i].value, (uint64_t)i + 1);
		ck_assert_str_eq(p[i].text, cmd);
	}
	ck_assert_uint_ge(s.fsm.on_loop, 1);
	ck_assert_uint_ge(s.fsm.off_loop, 1);
	solo_stop(&s);
	free(p);
}
END_TEST

struct node_read_wait {
	bool done;
	int status;
	raft_index index;
};

static void node_read_cb(void *arg, int status, raft_index index)
{
	struct node_read_wait *r = arg;

	r->done = true;
	r->status = status;
	r->index = index;
}

/* Proposals made with raft_node_propose_commit() are answered once
 * committed, while the apply is held up, without a result; those made with
 * raft_node_propose() still wait for the apply; a read issued after the
 * early answers waits for their apply; every entry is applied once, in
 * order. */
START_TEST(test_commit_proposals_are_answered_before_the_apply)
{
	struct proposal_wait p[4];
	struct node_read_wait r = {false, 0, 0};
	struct solo s;
	int order = 0;

	solo_start(&s, 22250, true);
	memset(p, 0, sizeof(p));
	test_fsm_hold(&s.fsm, true);
	for (int i = 0; i < 3; i++) {
		p[i].order = &order;
	}
	ck_assert_int_eq(raft_node_propose_commit(s.node, "a", 1, propose_cb,
						  &p[0]),
			 RAFT_OK);
	ck_assert_int_eq(raft_node_propose(s.node, "b", 1, propose_cb, &p[1]),
			 RAFT_OK);
	ck_assert_int_eq(raft_node_propose_commit(s.node, "c", 1, propose_cb,
						  &p[2]),
			 RAFT_OK);
	ck_assert(!p[0].done && !p[2].done); /* never from inside the call */
	ck_assert(run_until(&s.loop, flag_set, &p[2].done, DEADLINE_MS));
	ck_assert(p[0].done);
	ck_assert_int_eq(p[0].status, RAFT_OK);
	ck_assert_int_eq(p[2].status, RAFT_OK);
	ck_assert_str_eq(p[0].text, "(commit)");
	ck_assert_str_eq(p[2].text, "(commit)");
	ck_assert_uint_eq(p[2].index, p[0].index + 2);
	ck_assert_int_lt(p[0].seen_at, p[2].seen_at);
	ck_assert(!p[1].done);
	ck_assert_uint_lt(test_fsm_applied_now(&s.fsm), p[0].index);

	ck_assert_int_eq(raft_node_read(s.node, node_read_cb, &r), RAFT_OK);
	/* Give the read its chance to finish early, if it wrongly could. */
	for (int i = 0; i < 20; i++) {
		uv_run(&s.loop, UV_RUN_NOWAIT);
	}
	ck_assert(!r.done);

	test_fsm_hold(&s.fsm, false);
	ck_assert(run_until(&s.loop, all_done, p, DEADLINE_MS));
	ck_assert(run_until(&s.loop, flag_set, &r.done, DEADLINE_MS));
	ck_assert_int_eq(p[1].status, RAFT_OK);
	ck_assert_str_eq(p[1].text, "b");
	ck_assert_uint_eq(p[1].index, p[0].index + 1);
	ck_assert_int_eq(r.status, RAFT_OK);
	ck_assert_uint_ge(r.index, p[2].index);
	ck_assert_uint_ge(test_fsm_applied_now(&s.fsm), p[2].index);
	ck_assert_uint_eq(s.fsm.n_commands, 3);
	solo_stop(&s);
}
END_TEST

/* A proposal answered at commit is not answered again when the apply of
 * its entry then fails and stops the node; the ones waiting for the apply
 * get the failure. */
START_TEST(test_commit_proposal_is_answered_once_when_the_apply_fails)
{
	struct proposal_wait p[3];
	struct solo s;
	int order = 0;

	solo_start(&s, 22260, true);
	memset(p, 0, sizeof(p));
	p[0].order = &order;
	p[1].order = &order;
	ck_assert_int_eq(raft_node_propose_commit(s.node, "fail", 4,
						  propose_cb, &p[0]),
			 RAFT_OK);
	ck_assert_int_eq(
	    raft_node_propose(s.node, "next", 4, propose_cb, &p[1]), RAFT_OK);
	ck_assert(run_until(&s.loop, all_done, p, DEADLINE_MS));
	ck_assert(run_until(&s.loop, flag_set_int, &s.failed_status,
			    DEADLINE_MS));
	ck_assert_int_eq(p[0].status, RAFT_OK);
	ck_assert_int_eq(p[1].status, RAFT_EIO);
	ck_assert_int_eq(s.failed_status, RAFT_EIO);
	ck_assert_int_eq(raft_node_propose_commit(s.node, "x", 1, propose_cb,
						  &p[2]),
			 RAFT_ESHUTDOWN);
	solo_stop(&s);
}
END_TEST

/* A read issued after a write is acknowledged is ready at an index that
 * includes the write. */
START_TEST(test_read_after_write_is_ready_at_its_index)
{
	struct proposal_wait p[2];
	struct node_read_wait r = {false, 0, 0};
	struct solo s;
	int order = 0;

	solo_start(&s, 22210, true);
	memset(p, 0, sizeof(p));
	p[0].order = &order;
	ck_assert_int_eq(raft_node_propose(s.node, "w", 1, propose_cb, &p[0]),
			 RAFT_OK);
	ck_assert(run_until(&s.loop, all_done, p, DEADLINE_MS));
	ck_assert_int_eq(raft_node_read(s.node, node_read_cb, &r), RAFT_OK);
	ck_assert(!r.done);
	ck_assert(run_until(&s.loop, flag_set, &r.done, DEADLINE_MS));
	ck_assert_int_eq(r.status, RAFT_OK);
	ck_assert_uint_ge(r.index, p[0].index);
	ck_assert_uint_ge(s.fsm.applied, r.index);
	solo_stop(&s);
}
END_TEST

/* A state machine that fails to apply stops the node: the pending
 * proposals fail with RAFT_EIO, the failed callback runs once, later
 * requests fail with RAFT_ESHUTDOWN, the status says failed, and the log
 * hook gets an error line with the state machine's own account of the
 * failure, saying what to do. */
START_TEST(test_apply_failure_stops_the_node)
{
	struct proposal_wait p[3];
	struct node_read_wait r = {false, 0, 0};
	struct raft_node_status st;
	struct solo s;
	int order = 0;

	solo_start(&s, 22220, true);
	memset(p, 0, sizeof(p));
	p[0].order = &order;
	p[1].order = &order;
	ck_assert_int_eq(
	    raft_node_propose(s.node, "fail", 4, propose_cb, &p[0]), RAFT_OK);
	ck_assert_int_eq(
	    raft_node_propose(s.node, "next", 4, propose_cb, &p[1]), RAFT_OK);
	ck_assert(run_until(&s.loop, all_done, p, DEADLINE_MS));
	ck_assert_int_eq(p[0].status, RAFT_EIO);
	ck_assert_int_eq(p[1].status, RAFT_EIO);
	ck_assert_int_eq(s.failed_status, RAFT_EIO);
	ck_assert_int_eq(raft_node_status(s.node, &st), RAFT_OK);
	ck_assert(st.failed);
	ck_assert_int_eq(raft_node_propose(s.node, "x", 1, propose_cb, &p[2]),
			 RAFT_ESHUTDOWN);
	ck_assert_int_eq(raft_node_read(s.node, node_read_cb, &r),
			 RAFT_ESHUTDOWN);
	ck_assert_ptr_nonnull(
	    strstr(s.log.text, "3 msg=\"node stopped after a failure\" id=1 "
			       "cause=fsm_apply"));
	ck_assert_ptr_nonnull(
	    strstr(s.log.text, "detail=\"test: the command said fail\""));
	ck_assert_ptr_nonnull(strstr(s.log.text, "restart"));
	solo_stop(&s);
}
END_TEST

/* Without a log hook the node prints nothing: stdout and stderr stay
 * empty through a start, a write and a close. */
START_TEST(test_node_without_log_hook_is_silent)
{
	struct proposal_wait p[2];
	struct solo s;
	int order = 0;
	char path[] = "/tmp/libraft-node-out-XXXXXX";
	int fd = mkstemp(path), saved_out, saved_err;
	off_t size;

	ck_assert_int_ge(fd, 0);
	fflush(stdout);
	fflush(stderr);
	saved_out = dup(1);
	saved_err = dup(2);
	dup2(fd, 1);
	dup2(fd, 2);
	solo_start(&s, 22230, false);
	memset(p, 0, sizeof(p));
	p[0].order = &order;
	ck_assert_int_eq(raft_node_propose(s.node, "q", 1, propose_cb, &p[0]),
			 RAFT_OK);
	ck_assert(run_until(&s.loop, all_done, p, DEADLINE_MS));
	solo_stop(&s);
	fflush(stdout);
	fflush(stderr);
	dup2(saved_out, 1);
	dup2(saved_err, 2);
	close(saved_out);
	close(saved_err);
	size = lseek(fd, 0, SEEK_END);
	close(fd);
	unlink(path);
	ck_assert_int_eq(size, 0);
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
	tcase_add_test(tc,
		       test_serializable_get_on_leader_sees_the_put_it_answered);
	tcase_add_test(tc, test_put_on_follower_names_the_leader);
	tcase_add_test(tc, test_delete_removes_key_and_reports_absent_key);
	tcase_add_test(tc, test_reopened_node_keeps_its_data);
	tcase_add_test(tc, test_restarted_cluster_keeps_its_data);
	tcase_add_test(
	    tc, test_store_left_open_by_earlier_boot_is_rebuilt_from_log);
	tcase_add_test(tc, test_restart_with_conflicting_members_is_refused);
	tcase_add_test(tc, test_bad_config_is_refused);
	tcase_add_test(tc, test_data_dir_of_another_member_is_refused);
	tcase_add_test(tc, test_cluster_file_without_own_id_is_refused);
	tcase_add_test(
	    tc, test_members_with_one_address_are_refused_and_not_stored);
	tcase_add_test(tc, test_damaged_cluster_file_is_refused);
	tcase_add_test(tc, test_conflicting_members_of_member_without_votes);
	tcase_add_test(tc, test_cluster_file_is_parsed_strictly);
	tcase_add_test(tc, test_edited_cluster_id_or_member_line_is_refused);
	tcase_add_test(tc, test_chosen_cluster_id_is_given_at_every_start);
	tcase_add_test(tc, test_data_dir_without_its_log_is_refused);
	tcase_add_test(tc, test_log_ending_below_applied_index_is_refused);
	tcase_add_test(tc, test_busy_data_dir_and_peer_addr_are_refused);
	tcase_add_test(tc, test_oversized_and_empty_requests_are_refused);
	tcase_add_test(tc, test_close_fails_pending_writes);
	tcase_add_test(tc,
		       test_write_fails_with_leaderlost_when_quorum_is_lost);
	tcase_add_test(tc, test_role_changes_are_logged);
	tcase_add_test(tc, test_burst_of_writes_is_acknowledged_in_order);
	tcase_add_test(tc, test_isolated_node_serves_only_serializable_reads);
	tcase_add_test(tc, test_full_store_stops_the_node);
	tcase_add_test(tc, test_log_sync_failure_stops_the_node);
	suite_add_tcase(s, tc);

	tc = tcase_create("fsm");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_proposers_get_their_own_results_in_order);
	tcase_add_test(tc, test_commit_proposals_are_answered_before_the_apply);
	tcase_add_test(tc,
		       test_commit_proposal_is_answered_once_when_the_apply_fails);
	tcase_add_test(tc,
		       test_small_batches_apply_on_loop_and_large_ones_off_it);
	tcase_add_test(tc, test_read_after_write_is_ready_at_its_index);
	tcase_add_test(tc, test_apply_failure_stops_the_node);
	tcase_add_test(tc, test_node_without_log_hook_is_silent);
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
