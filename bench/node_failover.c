/* Failover time of a three-node key-value cluster in one process.
 *
 * Each round: wait for a leader, write through it, then stop the leader
 * abruptly (its sockets close as a killed process's would; the survivors
 * learn nothing else) and time how long until a put succeeds on one of the
 * two survivors, retried every millisecond on whichever leads. The stopped
 * node is reopened and caught up before the next round. Prints every round
 * and min / median / max. Ports 22300-22399, data under $TMPDIR or /tmp.
 *
 *   node_failover [--rounds N] [--tick-ms MS] [--election-ticks T]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libraft/kv.h"

#define N 3

struct bench {
	uv_loop_t loop;
	char dirs[N][256];
	struct raft_member members[N];
	struct kv_store *stores[N];
	unsigned tick_ms, election_ticks;
	bool put_done;
	int put_status;
};

static void die(const char *what, int rc, const char *msg)
{
	fprintf(stderr, "node_failover: %s: %s %s\n", what, raft_strerror(rc),
		msg ? msg : "");
	exit(1);
}

static void open_node(struct bench *b, size_t i)
{
	struct kv_config cfg;
	char errmsg[256];
	int rc;

	kv_config_init(&cfg);
	cfg.node.id = i + 1;
	cfg.node.data_dir = b->dirs[i];
	cfg.node.members = b->members;
	cfg.node.n_members = N;
	cfg.node.tick_ms = b->tick_ms;
	cfg.node.election_ticks = b->election_ticks;
	rc = kv_store_open(&b->loop, &cfg, &b->stores[i], errmsg,
			   sizeof(errmsg));
	if (rc != RAFT_OK) {
		die("open", rc, errmsg);
	}
}

static void closed(void *arg)
{
	*(bool *)arg = true;
}

static void close_node(struct bench *b, size_t i)
{
	bool done = false;

	kv_store_close(b->stores[i], closed, &done);
	while (!done) {
		uv_run(&b->loop, UV_RUN_ONCE);
	}
	b->stores[i] = NULL;
}

static int leader(struct bench *b)
{
	for (size_t i = 0; i < N; i++) {
		struct raft_node_status st;

		if (b->stores[i] != NULL &&
		    kv_store_status(b->stores[i], &st) == RAFT_OK &&
		    st.role == RAFT_LEADER) {
			return (int)i;
		}
	}
	return -1;
}

static void put_cb(void *arg, int status, uint64_t index)
{
	struct bench *b = arg;

	(void)index;
	b->put_done = true;
	b->put_status = status;
}

/* Put once on the current leader; true once it succeeded. Gives up after
 * 30 s of loop time. */
static bool put_until_ok(struct bench *b)
{
	uint64_t start = uv_now(&b->loop);

	while (uv_now(&b->loop) - start < 30000) {
		int l = leader(b);

		b->put_done = false;
		if (l >= 0 && kv_store_put(b->stores[l], "k", 1, "v", 1, put_cb,
					   b) == RAFT_OK) {
			while (!b->put_done) {
				uv_run(&b->loop, UV_RUN_ONCE);
			}
			if (b->put_status == RAFT_OK) {
				return true;
			}
		}
		uv_run(&b->loop, UV_RUN_NOWAIT);
		uv_sleep(1);
		uv_update_time(&b->loop);
	}
	return false;
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, c = *(const double *)y;

	return a < c ? -1 : a > c;
}

int main(int argc, char **argv)
{
	struct bench b;
	const char *tmp = getenv("TMPDIR");
	unsigned rounds = 10;
	double *ms;
	char cmd[1024];

	memset(&b, 0, sizeof(b));
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--rounds") == 0) {
			rounds = (unsigned)atoi(argv[i + 1]);
		} else if (strcmp(argv[i], "--tick-ms") == 0) {
			b.tick_ms = (unsigned)atoi(argv[i + 1]);
		} else if (strcmp(argv[i], "--election-ticks") == 0) {
			b.election_ticks = (unsigned)atoi(argv[i + 1]);
		}
	}
	if (rounds == 0 || (ms = calloc(rounds, sizeof(*ms))) == NULL) {
		fprintf(stderr, "usage: node_failover [--rounds N>0] "
				"[--tick-ms MS] [--election-ticks T]\n");
		return 2;
	}
	uv_loop_init(&b.loop);
	for (size_t i = 0; i < N; i++) {
		b.members[i].id = i + 1;
		snprintf(b.members[i].addr, sizeof(b.members[i].addr),
			 "127.0.0.1:%d", 22300 + (int)i);
		snprintf(b.dirs[i], sizeof(b.dirs[i]), "%s/failover-XXXXXX",
			 tmp ? tmp : "/tmp");
		if (mkdtemp(b.dirs[i]) == NULL) {
			perror("mkdtemp");
			return 1;
		}
	}
	for (size_t i = 0; i < N; i++) {
		open_node(&b, i);
	}
	printf("failover, 3 nodes in one process: tick %u ms, election %u "
	       "ticks\n",
	       b.tick_ms ? b.tick_ms : RAFT_NODE_DEFAULT_TICK_MS,
	       b.election_ticks ? b.election_ticks
				: RAFT_NODE_DEFAULT_ELECTION_TICKS);
	for (unsigned r = 0; r < rounds; r++) {
		uint64_t t0;
		int l;

		if (!put_until_ok(&b)) {
			die("no leader", RAFT_EUNAVAIL, NULL);
		}
		l = leader(&b);
		uv_update_time(&b.loop);
		t0 = uv_hrtime();
		close_node(&b, (size_t)l);
		if (!put_until_ok(&b)) {
			die("no leader after failover", RAFT_EUNAVAIL, NULL);
		}
		ms[r] = (double)(uv_hrtime() - t0) / 1e6;
		printf("round %u: leader %d stopped, write accepted after "
		       "%.0f ms\n",
		       r + 1, l + 1, ms[r]);
		open_node(&b, (size_t)l);
	}
	qsort(ms, rounds, sizeof(*ms), cmp_double);
	printf("failover ms: min %.0f median %.0f max %.0f (%u rounds)\n",
	       ms[0], ms[rounds / 2], ms[rounds - 1], rounds);
	for (size_t i = 0; i < N; i++) {
		close_node(&b, i);
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", b.dirs[i]);
		if (system(cmd) != 0) {
			fprintf(stderr, "could not remove %s\n", b.dirs[i]);
		}
	}
	uv_loop_close(&b.loop);
	free(ms);
	return 0;
}
