/* kvd: one member of a Raft-replicated key-value store.
 *
 * Start: read flags and the config file, open the store (which starts the
 * Raft node and its peer transport), listen for clients, run the loop.
 *
 * Stop, on SIGTERM or SIGINT (or when the node fails on storage):
 *
 *     running --signal--> draining: the client port closes first, so
 *         that a new connection is refused by the kernel before a client
 *         sends anything (it tries another node); requests on open
 *         connections are refused (RAFT_EUNAVAIL); the store closes and
 *         fails what it still holds (RAFT_ESHUTDOWN: outcome unknown to
 *         those clients)
 *     --store closed--> flushing: answers already queued go out (at most a
 *         second), client connections close
 *     --listener closed--> signal handlers close, the loop ends, exit.
 *
 * A second signal while stopping exits at once.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "libraft/kv.h"
#include "listener.h"
#include "log.h"

/* How the peer transport's errmsg starts when it cannot bind. */
#define PEER_LISTEN_ERR "cannot listen for peers on "

struct kvd {
	uv_loop_t loop;
	struct kvd_config cfg;
	struct kv_store *store;
	struct kvd_listener *listener;
	uv_signal_t sigterm;
	uv_signal_t sigint;
	bool stopping;
	int exit_code;
};

static void handles_closed_cb(uv_handle_t *h)
{
	(void)h;
}

static void listener_closed_cb(void *arg)
{
	struct kvd *d = arg;

	d->listener = NULL;
	uv_close((uv_handle_t *)&d->sigterm, handles_closed_cb);
	uv_close((uv_handle_t *)&d->sigint, handles_closed_cb);
	kvd_log(RAFT_LOG_INFO, "stopped", "id=%llu",
		(unsigned long long)d->cfg.id);
}

static void store_closed_cb(void *arg)
{
	struct kvd *d = arg;

	d->store = NULL;
	kvd_listener_close(d->listener, listener_closed_cb, d);
}

static void stop(struct kvd *d, int exit_code, const char *why)
{
	if (d->stopping)
		return;
	d->stopping = true;
	d->exit_code = exit_code;
	/* Before anything else: no connection accepted from here on. */
	kvd_listener_drain(d->listener);
	kvd_log(exit_code == 0 ? RAFT_LOG_INFO : RAFT_LOG_ERROR,
		"shutting down", "reason=\"%s\"", why);
	kv_store_close(d->store, store_closed_cb, d);
}

static void signal_cb(uv_signal_t *h, int signum)
{
	struct kvd *d = h->data;

	if (d->stopping) {
		kvd_log(RAFT_LOG_WARN,
			"second signal while stopping; exiting now",
			"signal=%s", signum == SIGTERM ? "SIGTERM" : "SIGINT");
		_exit(1);
	}
	stop(d, 0, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* The node stopped itself after a storage failure (fail-stop) and logged
 * why; the process follows, so that a supervisor sees it. */
static void node_failed_cb(void *data, int status)
{
	struct kvd *d = data;
	char why[128];

	snprintf(why, sizeof(why), "the node failed on storage (%s)",
		 raft_strerror(status));
	stop(d, 1, why);
}

static void fill_store_config(struct kvd *d, struct kv_config *kc)
{
	const struct kvd_config *c = &d->cfg;

	kv_config_init(kc);
	kc->node.id = c->id;
	kc->node.data_dir = c->data_dir;
	kc->node.peer_addr = c->peer_addr;
	kc->node.client_addr = c->client_addr;
	kc->node.members = c->members;
	kc->node.n_members = c->n_members;
	if (c->tick_ms != 0)
		kc->node.tick_ms = c->tick_ms;
	if (c->election_ticks != 0)
		kc->node.election_ticks = c->election_ticks;
	if (c->heartbeat_ticks != 0)
		kc->node.heartbeat_ticks = c->heartbeat_ticks;
	kc->node.no_sync = c->no_sync;
	kc->node.no_direct_io = c->no_direct_io;
	kc->node.log = kvd_log_hook;
	kc->node.log_data = NULL;
	kc->node.failed = node_failed_cb;
	kc->node.failed_data = d;
}

/* mkdir -p: the data directory and its missing parents. Returns 0, or -1
 * with errno set. */
static int make_dirs(const char *path)
{
	char buf[PATH_MAX];
	char *p;

	snprintf(buf, sizeof(buf), "%s", path);
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, 0755) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* Open the store and the listener. Returns an exit code, 0 to run. */
static int start(struct kvd *d)
{
	struct kvd_listener_options lo;
	struct kv_config kc;
	struct stat st;
	char err[1024], q[1200];
	int rv;

	if (stat(d->cfg.data_dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
		kvd_log(RAFT_LOG_ERROR, "data directory is not a directory",
			"data_dir=%s", d->cfg.data_dir);
		fprintf(stderr, "kvd: --data-dir %s exists and is not a "
				"directory\n",
			d->cfg.data_dir);
		return 2;
	}
	if (make_dirs(d->cfg.data_dir) != 0) {
		int e = errno;

		kvd_log(RAFT_LOG_ERROR, "cannot create the data directory",
			"data_dir=%s error=\"%s\"", d->cfg.data_dir,
			strerror(e));
		fprintf(stderr, "kvd: cannot create the data directory %s: %s\n",
			d->cfg.data_dir, strerror(e));
		return 1;
	}
	/* Bind the client port before the store opens: a first start that
	 * cannot serve clients must not leave a member list on disk. The
	 * listener accepts nothing until the loop runs, after the store is
	 * attached. */
	memset(&lo, 0, sizeof(lo));
	lo.addr = d->cfg.client_addr;
	lo.max_clients = d->cfg.max_clients;
	lo.max_queue = d->cfg.max_client_queue;
	lo.max_inflight = 1024;
	lo.follower_reads = d->cfg.follower_reads;
	rv = kvd_listener_start(&d->loop, NULL, &lo, &d->listener, err,
				sizeof(err));
	if (rv != RAFT_OK) {
		kvd_log(RAFT_LOG_ERROR, "cannot serve clients", "error=%s",
			kvd_log_quote(q, sizeof(q), err));
		fprintf(stderr, "kvd: %s\n", err);
		uv_run(&d->loop, UV_RUN_DEFAULT);
		return rv == RAFT_EINVAL ? 2 : 1;
	}
	fill_store_config(d, &kc);
	if (d->cfg.no_sync)
		kvd_log(RAFT_LOG_WARN, "fdatasync disabled",
			"detail=\"acknowledged writes can be lost on power "
			"loss\"");
	rv = kv_store_open(&d->loop, &kc, &d->store, err, sizeof(err));
	if (rv != RAFT_OK &&
	    strncmp(err, PEER_LISTEN_ERR, strlen(PEER_LISTEN_ERR)) == 0) {
		/* The peer transport's bind failed: not a store problem. */
		kvd_log(RAFT_LOG_ERROR, "cannot listen for peers",
			"peer_addr=%s error=%s", d->cfg.peer_addr,
			kvd_log_quote(q, sizeof(q), err));
		fprintf(stderr, "kvd: %s\n", err);
		kvd_listener_close(d->listener, NULL, NULL);
		uv_run(&d->loop, UV_RUN_DEFAULT);
		return 1;
	}
	if (rv != RAFT_OK) {
		kvd_listener_close(d->listener, NULL, NULL);
		uv_run(&d->loop, UV_RUN_DEFAULT);
		kvd_log(RAFT_LOG_ERROR, "cannot open the store",
			"data_dir=%s code=%d error=%s", d->cfg.data_dir, rv,
			kvd_log_quote(q, sizeof(q), err));
		fprintf(stderr, "kvd: %s\n", err);
		return rv == RAFT_EINVAL || rv == RAFT_EMISMATCH ? 2 : 1;
	}
	kvd_listener_set_store(d->listener, d->store);
	return 0;
}

int main(int argc, char **argv)
{
	static struct kvd d; /* large (paths); kept off the stack */
	int code;

	switch (kvd_config_parse(argc, argv, &d.cfg)) {
	case KVD_CONFIG_DONE:
		return 0;
	case KVD_CONFIG_USAGE:
		return 2;
	case KVD_CONFIG_RUN:
		break;
	}
	kvd_log_set_level(d.cfg.log_level);
	/* A client that disconnects must not kill us mid-write. */
	signal(SIGPIPE, SIG_IGN);

	if (uv_loop_init(&d.loop) != 0) {
		kvd_log(RAFT_LOG_ERROR, "cannot create the event loop", NULL);
		return 1;
	}
	code = start(&d);
	if (code != 0) {
		uv_loop_close(&d.loop);
		return code;
	}
	uv_signal_init(&d.loop, &d.sigterm);
	uv_signal_init(&d.loop, &d.sigint);
	d.sigterm.data = d.sigint.data = &d;
	uv_signal_start(&d.sigterm, signal_cb, SIGTERM);
	uv_signal_start(&d.sigint, signal_cb, SIGINT);
	kvd_log(RAFT_LOG_INFO, "started",
		"id=%llu client_addr=%s peer_addr=%s data_dir=%s members=%zu "
		"version=%s",
		(unsigned long long)d.cfg.id, d.cfg.client_addr,
		d.cfg.peer_addr, d.cfg.data_dir, d.cfg.n_members, KVD_VERSION);

#if defined(KVD_BUG_LOCAL_READS) || defined(KVD_BUG_EARLY_ACK)
	kvd_log(RAFT_LOG_WARN, "deliberately broken build for fault testing",
		"local_reads=%d early_ack=%d",
#ifdef KVD_BUG_LOCAL_READS
		1,
#else
		0,
#endif
#ifdef KVD_BUG_EARLY_ACK
		1
#else
		0
#endif
	);
#endif
	uv_run(&d.loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&d.loop) != 0)
		kvd_log(RAFT_LOG_WARN, "event loop closed with handles open",
			NULL);
	return d.exit_code;
}
