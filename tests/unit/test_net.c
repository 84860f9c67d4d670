/* The TCP transport between peers (lib/src/net/transport.c), over real
 * loopback sockets, driven by a libuv loop the test runs until a condition
 * holds or a deadline passes. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "libraft/raft.h"
#include "net/frame.h"
#include "net/transport.h"
#include "proto/raft.pb-c.h"

#define CLUSTER	    0xc1u
#define MAX_NODES   3
#define DEADLINE_MS 5000

/* Run the loop until expr holds or the deadline passes; a repeating timer
 * wakes the loop so that conditions on raw sockets get polled too. */
#define WAIT_FOR(f, expr)                                                      \
	do {                                                                   \
		uint64_t dl_ = uv_now(&(f)->loop) + DEADLINE_MS;               \
		while (!(expr) && uv_now(&(f)->loop) < dl_)                    \
			uv_run(&(f)->loop, UV_RUN_ONCE);                       \
	} while (0)

/* A received message, deep-copied. */
struct got {
	struct raft_msg m;
	struct raft_entry *entries;
	bool entries_null; /* the message came with entries NULL */
};

struct tnode {
	struct fixture *f;
	raft_id id;
	struct rnet *net;
	bool closed;
	bool up[MAX_NODES + 1];
	int n_up, n_down;
	char peer_client[MAX_NODES + 1][RNET_ADDR_MAX];
	struct got *got;
	size_t n_got, cap_got;
	bool close_in_recv;
	char log[65536];
	size_t log_len;
};

struct fixture {
	uv_loop_t loop;
	uv_timer_t tick;
	struct raft_member members[MAX_NODES];
	size_t n_members;
	struct tnode nodes[MAX_NODES + 1]; /* by id */
	unsigned reconnect_max_ms;
	unsigned handshake_timeout_ms;
	size_t max_queue_bytes;
	size_t max_frame;
	uint64_t cluster_id;
};

/* A port that was free a moment ago (bound to 0, then released). */
static int free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/* A signal handler that does nothing. */
static void tick_sig(int sig)
{
	(void)sig;
}

static void tick_cb(uv_timer_t *t)
{
	(void)t;
}

static void fx_init(struct fixture *f, size_t n_members)
{
	size_t i;

	memset(f, 0, sizeof(*f));
	ck_assert_int_eq(uv_loop_init(&f->loop), 0);
	uv_timer_init(&f->loop, &f->tick);
	uv_timer_start(&f->tick, tick_cb, 5, 5);
	f->n_members = n_members;
	f->reconnect_max_ms = 100;
	f->cluster_id = CLUSTER;
	for (i = 0; i < n_members; i++) {
		f->members[i].id = i + 1;
		snprintf(f->members[i].addr, sizeof(f->members[i].addr),
			 "127.0.0.1:%d", free_port());
	}
	for (i = 0; i <= MAX_NODES; i++) {
		f->nodes[i].f = f;
		f->nodes[i].id = i;
		f->nodes[i].closed = true;
	}
}

static void on_log(void *data, enum raft_log_level level, const char *msg)
{
	struct tnode *t = data;
	int n;

	(void)level;
	n = snprintf(t->log + t->log_len, sizeof(t->log) - t->log_len, "%s\n",
		     msg);
	if (n > 0 && t->log_len + (size_t)n < sizeof(t->log))
		t->log_len += (size_t)n;
}

/* How many logged lines contain s. */
static int log_count(const struct tnode *t, const char *s)
{
	const char *p = t->log;
	int n = 0;

	while ((p = strstr(p, s)) != NULL) {
		n++;
		p += strlen(s);
	}
	return n;
}

static void on_recv(void *data, const struct raft_msg *m)
{
	struct tnode *t = data;
	struct got *g;
	size_t i;

	if (t->n_got == t->cap_got) {
		t->cap_got = t->cap_got ? t->cap_got * 2 : 16;
		t->got = realloc(t->got, t->cap_got * sizeof(*t->got));
	}
	g = &t->got[t->n_got++];
	g->m = *m;
	g->entries_null = m->entries == NULL;
	g->entries = calloc(m->n_entries + 1, sizeof(*g->entries));
	for (i = 0; i < m->n_entries; i++) {
		g->entries[i] = m->entries[i];
		g->entries[i].data = malloc(m->entries[i].len + 1);
		if (m->entries[i].len > 0)
			memcpy(g->entries[i].data, m->entries[i].data,
			       m->entries[i].len);
	}
	g->m.entries = g->entries;
	if (t->close_in_recv && !t->closed) {
		t->closed = true;
		rnet_close(t->net, NULL, NULL);
		ck_assert_int_eq(rnet_send(t->net, m), RAFT_ESHUTDOWN);
	}
}

static void on_peer(void *data, raft_id peer, bool connected,
		    const char *client_addr)
{
	struct tnode *t = data;

	ck_assert_uint_le(peer, MAX_NODES);
	ck_assert(t->up[peer] != connected); /* once per transition */
	t->up[peer] = connected;
	if (connected)
		t->n_up++;
	else
		t->n_down++;
	snprintf(t->peer_client[peer], RNET_ADDR_MAX, "%s",
		 client_addr ? client_addr : "");
}

static void node_start(struct fixture *f, raft_id id)
{
	struct tnode *t = &f->nodes[id];
	struct rnet_options o = {0};
	char client[RNET_ADDR_MAX], err[256] = "";

	snprintf(client, sizeof(client), "client-%llu:80",
		 (unsigned long long)id);
	o.self = id;
	o.cluster_id = f->cluster_id;
	o.listen_addr = f->members[id - 1].addr;
	o.client_addr = client;
	o.members = f->members;
	o.n_members = f->n_members;
	o.max_frame = f->max_frame;
	o.max_queue_bytes = f->max_queue_bytes;
	o.reconnect_min_ms = 5;
	o.reconnect_max_ms = f->reconnect_max_ms;
	o.handshake_timeout_ms = f->handshake_timeout_ms;
	o.seed = id;
	o.log = on_log;
	o.log_data = t;
	ck_assert_msg(rnet_start(&f->loop, &o, on_recv, on_peer, t, &t->net,
				 err, sizeof(err)) == RAFT_OK,
		      "%s", err);
	t->closed = false;
	memset(t->up, 0, sizeof(t->up));
}

static void node_closed_cb(void *arg)
{
	*(bool *)arg = true;
}

static void node_stop(struct fixture *f, raft_id id)
{
	struct tnode *t = &f->nodes[id];
	bool done = false;

	if (t->closed)
		return;
	t->closed = true;
	rnet_close(t->net, node_closed_cb, &done);
	WAIT_FOR(f, done);
	ck_assert(done);
}

static void got_free(struct tnode *t)
{
	size_t i, j;

	for (i = 0; i < t->n_got; i++) {
		for (j = 0; j < t->got[i].m.n_entries; j++)
			free(t->got[i].entries[j].data);
		free(t->got[i].entries);
	}
	free(t->got);
	t->got = NULL;
	t->n_got = t->cap_got = 0;
}

/* Close everything; the loop must then hold no handle at all. */
static void fx_fini(struct fixture *f)
{
	size_t i;

	for (i = 1; i <= MAX_NODES; i++) {
		node_stop(f, i);
		if (getenv("TEST_NET_LOG") != NULL && f->nodes[i].log_len > 0)
			fprintf(stderr, "--- node %zu\n%s", i, f->nodes[i].log);
		got_free(&f->nodes[i]);
	}
	uv_close((uv_handle_t *)&f->tick, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&f->loop), 0);
}

static bool connected_pair(struct fixture *f, raft_id a, raft_id b)
{
	return f->nodes[a].up[b] && f->nodes[b].up[a];
}

static struct raft_msg heartbeat(raft_id from, raft_id to, uint64_t context)
{
	struct raft_msg m = {.type = RAFT_MSG_APPEND,
			     .from = from,
			     .to = to,
			     .term = 3,
			     .commit = 1,
			     .context = context};
	return m;
}

/* ---- raw sockets ------------------------------------------------------- */

struct raw {
	int fd;
	uint8_t in[8192];
	size_t in_len;
	bool eof;
};

static void raw_connect(struct raw *r, const char *addr)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	const char *colon = strrchr(addr, ':');

	memset(r, 0, sizeof(*r));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	r->fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(r->fd, 0);
	ck_assert_int_eq(connect(r->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
}

static void raw_send(struct raw *r, const void *buf, size_t len)
{
	ck_assert_int_eq(send(r->fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Read what has arrived; true once the other side has closed. */
static bool raw_poll(struct raw *r)
{
	ssize_t n;

	while (!r->eof) {
		n = recv(r->fd, r->in + r->in_len, sizeof(r->in) - r->in_len,
			 MSG_DONTWAIT);
		if (n > 0 && r->in_len + (size_t)n < sizeof(r->in)) {
			r->in_len += (size_t)n;
			continue;
		}
		if (n > 0)
			continue; /* overflow: drop */
		if (n == 0 || errno == ECONNRESET)
			r->eof = true;
		break;
	}
	return r->eof;
}

/* Whether a whole first frame has arrived. */
static bool raw_has_frame(struct raw *r)
{
	raw_poll(r);
	return r->in_len >= RFRAME_HEADER &&
	       r->in_len >= RFRAME_HEADER + rframe_header_get(r->in);
}

static void raw_close(struct raw *r)
{
	close(r->fd);
}

static void send_pb(struct raw *r, const ProtobufCMessage *msg)
{
	uint8_t *frame;
	size_t len;

	ck_assert_int_eq(rframe_pack(msg, 1 << 20, &frame, &len), 0);
	raw_send(r, frame, len);
	free(frame);
}

static void send_handshake(struct raw *r, uint32_t magic, uint32_t version,
			   uint64_t cluster, uint64_t node)
{
	Raftpb__Handshake hs = RAFTPB__HANDSHAKE__INIT;

	hs.magic = magic;
	hs.version = version;
	hs.cluster_id = cluster;
	hs.node_id = node;
	hs.client_addr = "raw:1";
	send_pb(r, &hs.base);
}

/* The first frame received, decoded as a Handshake (caller frees). */
static Raftpb__Handshake *raw_answer(struct raw *r)
{
	ck_assert(raw_has_frame(r));
	return raftpb__handshake__unpack(NULL, rframe_header_get(r->in),
					 r->in + RFRAME_HEADER);
}

/* A listening socket the test drives by hand; its address goes into
 * members[idx]. Returns the descriptor (non-blocking). */
static int raw_listen(struct fixture *f, size_t idx)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t salen = sizeof(sa);
	int lfd, one = 1;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(lfd, 4), 0);
	getsockname(lfd, (struct sockaddr *)&sa, &salen);
	snprintf(f->members[idx].addr, sizeof(f->members[idx].addr),
		 "127.0.0.1:%d", ntohs(sa.sin_port));
	return lfd;
}

/* The first frame on r is a well-formed Handshake from node id. */
static void assert_dialler_handshake(struct raw *r, raft_id id)
{
	Raftpb__Handshake *hs = raw_answer(r);
	char client[RNET_ADDR_MAX];

	snprintf(client, sizeof(client), "client-%llu:80",
		 (unsigned long long)id);
	ck_assert_ptr_nonnull(hs);
	ck_assert_uint_eq(hs->magic, RNET_MAGIC);
	ck_assert_uint_eq(hs->version, RNET_PROTOCOL_VERSION);
	ck_assert_uint_eq(hs->cluster_id, CLUSTER);
	ck_assert_uint_eq(hs->node_id, id);
	ck_assert_str_eq(hs->client_addr, client);
	ck_assert_str_eq(hs->error, "");
	raftpb__handshake__free_unpacked(hs, NULL);
}

/* Node 2 still gets messages through from node 1 (and back). */
static void assert_still_serving(struct fixture *f, uint64_t context)
{
	struct raft_msg m = heartbeat(1, 2, context);
	size_t before = f->nodes[2].n_got;

	WAIT_FOR(f, connected_pair(f, 1, 2));
	ck_assert_int_eq(rnet_send(f->nodes[1].net, &m), RAFT_OK);
	WAIT_FOR(f, f->nodes[2].n_got > before);
	ck_assert_uint_eq(f->nodes[2].n_got, before + 1);
	ck_assert_uint_eq(f->nodes[2].got[before].m.context, context);

	m = heartbeat(2, 1, context + 1);
	before = f->nodes[1].n_got;
	ck_assert_int_eq(rnet_send(f->nodes[2].net, &m), RAFT_OK);
	WAIT_FOR(f, f->nodes[1].n_got > before);
	ck_assert_uint_eq(f->nodes[1].got[before].m.context, context + 1);
}

static void start_pair(struct fixture *f)
{
	fx_init(f, 3); /* node 3 stays down */
	node_start(f, 1);
	node_start(f, 2);
	WAIT_FOR(f, connected_pair(f, 1, 2));
	ck_assert(connected_pair(f, 1, 2));
}

/* ---- tests ------------------------------------------------------------- */

/* Two transports connect, learn each other's client address, and carry
 * messages with binary entry payloads both ways, every field intact. */
START_TEST(test_two_transports_exchange_messages_both_ways)
{
	struct fixture f;
	uint8_t bin[256], big[100000];
	struct raft_entry e[3];
	struct raft_msg m, r;
	const struct got *g;
	size_t i;

	for (i = 0; i < sizeof(bin); i++)
		bin[i] = (uint8_t)i; /* zeros and high bytes included */
	for (i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 31);
	e[0] = (struct raft_entry){5, 11, RAFT_ENTRY_COMMAND, bin, sizeof(bin)};
	e[1] = (struct raft_entry){5, 12, RAFT_ENTRY_NOOP, NULL, 0};
	e[2] = (struct raft_entry){6, 13, RAFT_ENTRY_COMMAND, big, sizeof(big)};
	m = (struct raft_msg){.type = RAFT_MSG_APPEND,
			      .from = 1,
			      .to = 2,
			      .term = 6,
			      .index = 10,
			      .log_term = 5,
			      .commit = 9,
			      .entries = e,
			      .n_entries = 3,
			      .context = 77};
	r = (struct raft_msg){.type = RAFT_MSG_APPEND_RESP,
			      .from = 2,
			      .to = 1,
			      .term = 6,
			      .index = 10,
			      .reject = true,
			      .hint_index = 8,
			      .hint_term = 4,
			      .context = 77};

	start_pair(&f);
	ck_assert_str_eq(f.nodes[1].peer_client[2], "client-2:80");
	ck_assert_str_eq(f.nodes[2].peer_client[1], "client-1:80");
	ck_assert_str_eq(rnet_peer_client_addr(f.nodes[1].net, 2),
			 "client-2:80");

	ck_assert_int_eq(rnet_send(f.nodes[1].net, &m), RAFT_OK);
	ck_assert_int_eq(rnet_send(f.nodes[2].net, &r), RAFT_OK);
	WAIT_FOR(&f, f.nodes[2].n_got == 1 && f.nodes[1].n_got == 1);

	ck_assert_uint_eq(f.nodes[2].n_got, 1);
	g = &f.nodes[2].got[0];
	ck_assert_int_eq(g->m.type, RAFT_MSG_APPEND);
	ck_assert_uint_eq(g->m.from, 1);
	ck_assert_uint_eq(g->m.to, 2);
	ck_assert_uint_eq(g->m.term, 6);
	ck_assert_uint_eq(g->m.index, 10);
	ck_assert_uint_eq(g->m.log_term, 5);
	ck_assert_uint_eq(g->m.commit, 9);
	ck_assert_uint_eq(g->m.context, 77);
	ck_assert_uint_eq(g->m.n_entries, 3);
	for (i = 0; i < 3; i++) {
		ck_assert_uint_eq(g->entries[i].term, e[i].term);
		ck_assert_uint_eq(g->entries[i].index, e[i].index);
		ck_assert_uint_eq(g->entries[i].type, e[i].type);
		ck_assert_uint_eq(g->entries[i].len, e[i].len);
		if (e[i].len > 0)
			ck_assert_mem_eq(g->entries[i].data, e[i].data,
					 e[i].len);
	}

	ck_assert_uint_eq(f.nodes[1].n_got, 1);
	g = &f.nodes[1].got[0];
	ck_assert_int_eq(g->m.type, RAFT_MSG_APPEND_RESP);
	ck_assert_uint_eq(g->m.from, 2);
	ck_assert(g->m.reject);
	ck_assert_uint_eq(g->m.hint_index, 8);
	ck_assert_uint_eq(g->m.hint_term, 4);
	ck_assert_uint_eq(g->m.n_entries, 0);
	ck_assert(g->entries_null);
	ck_assert_int_eq(log_count(&f.nodes[1], "msg=\"peer connected\" "
						"peer=2"),
			 1);
	fx_fini(&f);
}
END_TEST

/* Whether this machine can bind ::1 (some containers run without IPv6). */
static bool have_ipv6_loopback(void)
{
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	bool ok;

	if (fd < 0)
		return false;
	sa.sin6_addr = in6addr_loopback;
	ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* Members named by host name are resolved (asynchronously, on every dial)
 * and connect like numeric ones; an IPv6 literal in brackets works too. */
START_TEST(test_host_names_and_ipv6_addresses_connect)
{
	struct fixture f;
	int port;

	fx_init(&f, 3);
	port = atoi(strrchr(f.members[0].addr, ':') + 1);
	snprintf(f.members[0].addr, sizeof(f.members[0].addr), "localhost:%d",
		 port);
	port = atoi(strrchr(f.members[1].addr, ':') + 1);
	if (have_ipv6_loopback())
		snprintf(f.members[1].addr, sizeof(f.members[1].addr),
			 "[::1]:%d", port);
	node_start(&f, 1);
	node_start(&f, 2);
	WAIT_FOR(&f, connected_pair(&f, 1, 2));
	ck_assert(connected_pair(&f, 1, 2));
	ck_assert_str_eq(rnet_listen_addr(f.nodes[2].net), f.members[1].addr);
	assert_still_serving(&f, 1);
	fx_fini(&f);
}
END_TEST

/* Many messages sent back to back all arrive, once each, in order. */
START_TEST(test_burst_of_messages_arrives_in_order)
{
	struct fixture f;
	struct raft_msg m;
	uint8_t payload[100];
	struct raft_entry e = {1, 1, RAFT_ENTRY_COMMAND, payload,
			       sizeof(payload)};
	size_t i;

	memset(payload, 0xab, sizeof(payload));
	start_pair(&f);
	for (i = 0; i < 5000; i++) {
		m = heartbeat(1, 2, i);
		m.entries = &e;
		m.n_entries = 1;
		ck_assert_int_eq(rnet_send(f.nodes[1].net, &m), RAFT_OK);
	}
	WAIT_FOR(&f, f.nodes[2].n_got == 5000);
	ck_assert_uint_eq(f.nodes[2].n_got, 5000);
	for (i = 0; i < 5000; i++)
		ck_assert_uint_eq(f.nodes[2].got[i].m.context, i);
	ck_assert_uint_eq(rnet_queued_bytes(f.nodes[1].net, 2), 0);
	fx_fini(&f);
}
END_TEST

/* A handshake is refused, with its reason logged and answered, for a wrong
 * cluster id, an unknown node id, the acceptor's own id, a wrong protocol
 * version and a wrong magic; the transport keeps serving its good peer. */
START_TEST(test_bad_handshakes_are_refused_and_good_peer_still_served)
{
	struct {
		uint32_t magic, version;
		uint64_t cluster, node;
	} cases[] = {
	    {RNET_MAGIC, RNET_PROTOCOL_VERSION, CLUSTER + 1, 2},
	    {RNET_MAGIC, RNET_PROTOCOL_VERSION, CLUSTER, 4},
	    {RNET_MAGIC, RNET_PROTOCOL_VERSION, CLUSTER, 1},
	    {RNET_MAGIC, RNET_PROTOCOL_VERSION + 1, CLUSTER, 2},
	    {0x12345678, RNET_PROTOCOL_VERSION, CLUSTER, 2},
	};
	const char *reasons[] = {"wrong cluster id", "unknown node id",
				 "own node id", "unsupported protocol version",
				 "bad magic"};
	struct fixture f;
	struct raw r;
	Raftpb__Handshake *a;
	char want[128];
	size_t i;

	start_pair(&f);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		raw_connect(&r, f.members[0].addr);
		send_handshake(&r, cases[i].magic, cases[i].version,
			       cases[i].cluster, cases[i].node);
		WAIT_FOR(&f, raw_poll(&r));
		ck_assert_msg(r.eof, "case %zu: connection left open", i);
		a = raw_answer(&r);
		ck_assert_ptr_nonnull(a);
		ck_assert_str_eq(a->error, reasons[i]);
		raftpb__handshake__free_unpacked(a, NULL);
		raw_close(&r);
		snprintf(want, sizeof(want), "reason=\"%s\"", reasons[i]);
		ck_assert_int_eq(log_count(&f.nodes[1], want), 1);
		assert_still_serving(&f, 100 + i * 10);
	}
	ck_assert_int_eq(log_count(&f.nodes[1], "msg=\"refused peer\" peer=4 "
						"remote=127.0.0.1:"),
			 1);
	ck_assert_int_eq(log_count(&f.nodes[1], "msg=\"refused peer\""), 5);
	fx_fini(&f);
}
END_TEST

/* A real transport of another cluster is refused; the dialler logs the
 * refusal once however often it retries, and never reports the peer up. */
START_TEST(test_transport_of_other_cluster_is_refused_and_logged_once)
{
	struct fixture f;

	fx_init(&f, 2);
	node_start(&f, 1);
	f.cluster_id = CLUSTER + 1;
	f.reconnect_max_ms = 10;
	node_start(&f, 2);
	/* Many retries: at least five refusals logged by the acceptor. */
	WAIT_FOR(
	    &f, log_count(&f.nodes[1], "reason=\"wrong cluster id\"") >= 5 &&
		    log_count(&f.nodes[2], "reason=\"wrong cluster id\"") >= 5);
	ck_assert_int_ge(log_count(&f.nodes[2], "reason=\"wrong cluster id\""),
			 5);
	ck_assert_int_eq(log_count(&f.nodes[2], "msg=\"peer handshake "
						"failed\" peer=1"),
			 1);
	ck_assert(!f.nodes[2].up[1] && !f.nodes[1].up[2]);
	ck_assert_int_eq(f.nodes[2].n_up, 0);
	fx_fini(&f);
}
END_TEST

/* Bad bytes on a connection close that connection, with one log line each;
 * the transport keeps serving its good peer. */
START_TEST(test_bad_input_closes_only_that_connection)
{
	struct fixture f;
	struct raw r;
	uint8_t buf[64];
	Raftpb__Message pm = RAFTPB__MESSAGE__INIT;
	const char *why[] = {
	    "oversize frame",	     "truncated frame",
	    "undecodable handshake", "undecodable message",
	    "unknown message type",  "message not between handshaken nodes",
	    "oversize frame"};
	char want[128];
	int i;

	start_pair(&f);
	for (i = 0; i < 7; i++) {
		raw_connect(&r, f.members[0].addr);
		switch (i) {
		case 0: /* garbage: reads as a huge length */
			raw_send(&r, "GET / HTTP/1.1\r\n\r\n", 18);
			break;
		case 1: /* a frame cut short by the end of the stream */
			rframe_header_put(buf, 100);
			memset(buf + 4, 0, 10);
			raw_send(&r, buf, 14);
			shutdown(r.fd, SHUT_WR);
			break;
		case 2: /* a handshake that is not protobuf */
			rframe_header_put(buf, 5);
			memset(buf + 4, 0xff, 5);
			raw_send(&r, buf, 9);
			break;
		case 3: /* good handshake, then a message that is not protobuf
			 */
			send_handshake(&r, RNET_MAGIC, RNET_PROTOCOL_VERSION,
				       CLUSTER, 3);
			rframe_header_put(buf, 5);
			memset(buf + 4, 0xff, 5);
			raw_send(&r, buf, 9);
			break;
		case 4: /* a message of an unknown type */
			send_handshake(&r, RNET_MAGIC, RNET_PROTOCOL_VERSION,
				       CLUSTER, 3);
			pm.type = 42;
			pm.from = 3;
			pm.to = 1;
			send_pb(&r, &pm.base);
			break;
		case 5: /* a message claiming another sender */
			send_handshake(&r, RNET_MAGIC, RNET_PROTOCOL_VERSION,
				       CLUSTER, 3);
			pm.type = RAFTPB__MESSAGE_TYPE__MSG_VOTE;
			pm.from = 2;
			pm.to = 1;
			send_pb(&r, &pm.base);
			break;
		case 6: /* after the handshake, a length over max_frame */
			send_handshake(&r, RNET_MAGIC, RNET_PROTOCOL_VERSION,
				       CLUSTER, 3);
			rframe_header_put(buf, RNET_DEFAULT_MAX_FRAME + 1);
			raw_send(&r, buf, 4);
			break;
		}
		WAIT_FOR(&f, raw_poll(&r));
		ck_assert_msg(r.eof, "case %d: connection left open", i);
		raw_close(&r);
		snprintf(want, sizeof(want), "reason=\"%s\"", why[i]);
		ck_assert_msg(log_count(&f.nodes[1], want) >= 1,
			      "case %d: no log line %s", i, want);
		assert_still_serving(&f, 1000 + (uint64_t)i * 10);
	}
	/* One line per closed connection, none for the good peer. */
	ck_assert_int_eq(log_count(&f.nodes[1], "msg=\"closed peer "
						"connection\""),
			 7);
	ck_assert_int_eq(log_count(&f.nodes[1], "reason=\"oversize frame\" "
						"length=1195725856"),
			 1);
	ck_assert_int_eq(f.nodes[2].n_down, 0);
	/* Nothing from the raw peers was delivered. */
	ck_assert_uint_eq(f.nodes[1].n_got, 7);
	fx_fini(&f);
}
END_TEST

/* When a peer's transport closes, the other side reports it down once,
 * keeps retrying quietly, and reports it up again when it comes back;
 * messages then flow both ways. */
START_TEST(test_reconnects_after_peer_restart)
{
	struct fixture f;
	struct raft_msg m = heartbeat(1, 2, 5);

	start_pair(&f);
	node_stop(&f, 2);
	WAIT_FOR(&f, !f.nodes[1].up[2]);
	ck_assert_int_eq(f.nodes[1].n_down, 1);
	ck_assert_int_eq(rnet_send(f.nodes[1].net, &m), RAFT_EUNAVAIL);

	/* Let node 1 fail several dials while node 2 is away. */
	WAIT_FOR(&f, log_count(&f.nodes[1], "msg=\"dial failed\" peer=2") >= 5);
	ck_assert_int_ge(log_count(&f.nodes[1], "msg=\"dial failed\" peer=2"),
			 5);

	got_free(&f.nodes[2]);
	f.nodes[2].log_len = 0;
	node_start(&f, 2);
	WAIT_FOR(&f, connected_pair(&f, 1, 2));
	ck_assert(connected_pair(&f, 1, 2));
	assert_still_serving(&f, 50);
	ck_assert_int_eq(f.nodes[1].n_up, 2);
	ck_assert_int_eq(f.nodes[1].n_down, 1);
	ck_assert_int_eq(log_count(&f.nodes[1], "msg=\"peer disconnected\""),
			 1);
	ck_assert_int_eq(log_count(&f.nodes[1], "msg=\"peer connected\""), 2);
	fx_fini(&f);
}
END_TEST

/* Sending to a peer that is not connected drops the message at once with
 * RAFT_EUNAVAIL and queues nothing; sending to a non-peer, or a message of
 * no known type, is an error. */
START_TEST(test_send_to_dead_peer_queues_nothing)
{
	struct fixture f;
	struct raft_msg m = heartbeat(1, 2, 0);
	int i;

	fx_init(&f, 2);
	node_start(&f, 1);
	for (i = 0; i < 1000; i++) {
		m.context = (uint64_t)i;
		ck_assert_int_eq(rnet_send(f.nodes[1].net, &m), RAFT_EUNAVAIL);
		uv_run(&f.loop, UV_RUN_NOWAIT);
		ck_assert_uint_eq(rnet_queued_bytes(f.nodes[1].net, 2), 0);
	}
	m.type = 0; /* not a message type: refused before anything else */
	ck_assert_int_eq(rnet_send(f.nodes[1].net, &m), RAFT_EINVAL);
	m.type = RAFT_MSG_APPEND;
	m.to = 1;
	ck_assert_int_eq(rnet_send(f.nodes[1].net, &m), RAFT_EINVAL);
	m.to = 9;
	ck_assert_int_eq(rnet_send(f.nodes[1].net, &m), RAFT_EINVAL);
	ck_assert_ptr_null(rnet_peer_client_addr(f.nodes[1].net, 2));
	fx_fini(&f);
}
END_TEST

/* A peer that accepts the connection but never reads fills its queue up to
 * max_queue_bytes and no further: rnet_send then drops with RAFT_EBUSY. */
START_TEST(test_queue_to_stalled_peer_stays_within_bound)
{
	struct fixture f;
	Raftpb__Handshake hs = RAFTPB__HANDSHAKE__INIT;
	uint8_t payload[16384];
	struct raft_entry e = {1, 1, RAFT_ENTRY_COMMAND, payload,
			       sizeof(payload)};
	struct raft_msg m = heartbeat(1, 2, 0);
	struct raw r = {.fd = -1};
	int lfd, busy = 0, sent = 0;
	size_t bound = 256 * 1024, max_seen = 0;

	memset(payload, 1, sizeof(payload));
	fx_init(&f, 2);
	f.max_queue_bytes = bound;
	lfd = raw_listen(&f, 1); /* "node 2" */
	node_start(&f, 1);

	WAIT_FOR(&f, (r.fd = accept(lfd, NULL, NULL)) >= 0);
	ck_assert_int_ge(r.fd, 0);
	WAIT_FOR(&f, raw_has_frame(&r));
	ck_assert(raw_has_frame(&r));
	assert_dialler_handshake(&r, 1);
	hs.magic = RNET_MAGIC;
	hs.version = RNET_PROTOCOL_VERSION;
	hs.cluster_id = CLUSTER;
	hs.node_id = 2;
	hs.client_addr = "";
	send_pb(&r, &hs.base);
	WAIT_FOR(&f, f.nodes[1].up[2]);
	ck_assert(f.nodes[1].up[2]);
	ck_assert_ptr_null(rnet_peer_client_addr(f.nodes[1].net, 2));

	/* Kernel buffers absorb some megabytes first; then the queue fills. */
	m.entries = &e;
	m.n_entries = 1;
	while (busy < 100 && sent < 100000) {
		int rc = rnet_send(f.nodes[1].net, &m);
		size_t q = rnet_queued_bytes(f.nodes[1].net, 2);
		ck_assert(rc == RAFT_OK || rc == RAFT_EBUSY);
		if (rc == RAFT_EBUSY)
			busy++;
		sent++;
		if (q > max_seen)
			max_seen = q;
		ck_assert_uint_le(q, bound);
		uv_run(&f.loop, UV_RUN_NOWAIT);
	}
	ck_assert_int_eq(busy, 100);
	ck_assert_uint_gt(max_seen, bound - 2 * sizeof(payload));
	fx_fini(&f);
	raw_close(&r);
	close(lfd);
}
END_TEST

/* A message larger than max_frame is refused before anything is queued. */
START_TEST(test_message_above_max_frame_is_too_big)
{
	struct fixture f;
	static uint8_t payload[70000];
	struct raft_entry e = {1, 1, RAFT_ENTRY_COMMAND, payload,
			       sizeof(payload)};
	struct raft_msg m = heartbeat(1, 2, 0);

	fx_init(&f, 2);
	f.max_frame = 65536;
	node_start(&f, 1);
	node_start(&f, 2);
	WAIT_FOR(&f, connected_pair(&f, 1, 2));
	m.entries = &e;
	m.n_entries = 1;
	ck_assert_int_eq(rnet_send(f.nodes[1].net, &m), RAFT_ETOOBIG);
	ck_assert_uint_eq(rnet_queued_bytes(f.nodes[1].net, 2), 0);
	e.len = 60000;
	ck_assert_int_eq(rnet_send(f.nodes[1].net, &m), RAFT_OK);
	WAIT_FOR(&f, f.nodes[2].n_got == 1);
	ck_assert_uint_eq(f.nodes[2].got[0].entries[0].len, 60000);
	fx_fini(&f);
}
END_TEST

/* The transport may be closed from inside its own receive callback, with
 * more frames still waiting in the same read; nothing leaks or crashes. */
START_TEST(test_close_from_inside_recv_callback)
{
	struct fixture f;
	struct raft_msg m;
	int i;

	start_pair(&f);
	f.nodes[2].close_in_recv = true;
	for (i = 0; i < 50; i++) {
		m = heartbeat(1, 2, (uint64_t)i);
		ck_assert_int_eq(rnet_send(f.nodes[1].net, &m), RAFT_OK);
	}
	WAIT_FOR(&f, f.nodes[2].closed);
	ck_assert(f.nodes[2].closed);
	ck_assert_uint_eq(f.nodes[2].n_got, 1);
	fx_fini(&f);
}
END_TEST

/* Inbound connections that never send a handshake are closed after the
 * handshake timeout; beyond RNET_MAX_UNHANDSHAKEN of them, new ones are
 * closed at once. The good peer is served throughout. */
START_TEST(test_silent_connections_are_closed)
{
	enum { N = RNET_MAX_UNHANDSHAKEN + 6 };
	static struct raw r[N];
	struct fixture f;
	int i, open;

	fx_init(&f, 3);
	f.handshake_timeout_ms = 300;
	node_start(&f, 1);
	node_start(&f, 2);
	WAIT_FOR(&f, connected_pair(&f, 1, 2));
	for (i = 0; i < N; i++)
		raw_connect(&r[i], f.members[0].addr);
	WAIT_FOR(&f, log_count(&f.nodes[1], "awaiting a handshake") == 6);
	ck_assert_int_eq(log_count(&f.nodes[1], "awaiting a handshake"), 6);
	assert_still_serving(&f, 10);
	for (i = 0, open = 0; i < N; i++)
		open += !raw_poll(&r[i]);
	ck_assert_int_eq(open, RNET_MAX_UNHANDSHAKEN);

	WAIT_FOR(&f, log_count(&f.nodes[1], "handshake timed out") ==
			 RNET_MAX_UNHANDSHAKEN);
	ck_assert_int_eq(log_count(&f.nodes[1], "handshake timed out"),
			 RNET_MAX_UNHANDSHAKEN);
	for (i = 0; i < N; i++) {
		WAIT_FOR(&f, raw_poll(&r[i]));
		ck_assert(r[i].eof);
		raw_close(&r[i]);
	}
	assert_still_serving(&f, 20);
	ck_assert_int_eq(f.nodes[2].n_down, 0);
	fx_fini(&f);
}
END_TEST

/* A dial answered by a listener that never completes the handshake is
 * abandoned after the handshake timeout, logged once, and retried. */
START_TEST(test_dial_to_silent_listener_times_out_and_retries)
{
	struct fixture f;
	struct raw r1 = {.fd = -1}, r2 = {.fd = -1};
	int lfd;

	fx_init(&f, 2);
	f.handshake_timeout_ms = 100;
	lfd = raw_listen(&f, 1);
	node_start(&f, 1);
	WAIT_FOR(&f, (r1.fd = accept(lfd, NULL, NULL)) >= 0);
	ck_assert_int_ge(r1.fd, 0);
	WAIT_FOR(&f, raw_poll(&r1));
	ck_assert(r1.eof);
	ck_assert_int_eq(log_count(&f.nodes[1], "msg=\"peer handshake "
						"failed\" peer=2 addr="),
			 1);
	ck_assert_int_eq(log_count(&f.nodes[1], "reason=\"no handshake "
						"answer\""),
			 1);
	WAIT_FOR(&f, (r2.fd = accept(lfd, NULL, NULL)) >= 0);
	ck_assert_int_ge(r2.fd, 0);
	ck_assert_int_eq(f.nodes[1].n_up, 0);
	fx_fini(&f);
	raw_close(&r1);
	raw_close(&r2);
	close(lfd);
}
END_TEST

/* The dialler checks the answer: one from a node other than the member it
 * dialled, or one carrying a refusal, fails the dial with one log line per
 * new reason, and the peer is never reported up. */
START_TEST(test_dialler_refuses_answer_from_wrong_node)
{
	Raftpb__Handshake hs = RAFTPB__HANDSHAKE__INIT;
	struct fixture f;
	struct raw r = {.fd = -1};
	int lfd;

	fx_init(&f, 3);
	lfd = raw_listen(&f, 1); /* "node 2" */
	node_start(&f, 1);
	WAIT_FOR(&f, (r.fd = accept(lfd, NULL, NULL)) >= 0);
	ck_assert_int_ge(r.fd, 0);
	WAIT_FOR(&f, raw_has_frame(&r));
	assert_dialler_handshake(&r, 1);
	send_handshake(&r, RNET_MAGIC, RNET_PROTOCOL_VERSION, CLUSTER, 3);
	WAIT_FOR(&f, raw_poll(&r));
	ck_assert(r.eof);
	ck_assert_int_eq(log_count(&f.nodes[1], "msg=\"peer handshake "
						"failed\" peer=2"),
			 1);
	ck_assert_int_eq(log_count(&f.nodes[1], "reason=\"answered as node "
						"3\""),
			 1);

	/* The retry is refused with a reason that tries to forge log fields;
	 * it is logged (a new reason) with the dangerous bytes replaced. */
	raw_close(&r);
	memset(&r, 0, sizeof(r));
	WAIT_FOR(&f, (r.fd = accept(lfd, NULL, NULL)) >= 0);
	ck_assert_int_ge(r.fd, 0);
	WAIT_FOR(&f, raw_has_frame(&r));
	hs.magic = RNET_MAGIC;
	hs.version = RNET_PROTOCOL_VERSION;
	hs.cluster_id = CLUSTER;
	hs.node_id = 2;
	hs.error = "no\" level=error\n";
	send_pb(&r, &hs.base);
	WAIT_FOR(&f, raw_poll(&r));
	ck_assert(r.eof);
	ck_assert_int_eq(log_count(&f.nodes[1], "reason=\"no? level=error?\""),
			 1);
	ck_assert_int_eq(f.nodes[1].n_up, 0);
	fx_fini(&f);
	raw_close(&r);
	close(lfd);
}
END_TEST

/* A new handshake from a peer replaces that peer's older inbound connection,
 * which is closed: a peer has only one outbound connection. */
START_TEST(test_new_connection_from_peer_replaces_old_one)
{
	struct fixture f;
	struct raw a, b;
	Raftpb__Handshake *hs;

	start_pair(&f);
	raw_connect(&a, f.members[0].addr);
	send_handshake(&a, RNET_MAGIC, RNET_PROTOCOL_VERSION, CLUSTER, 3);
	WAIT_FOR(&f, raw_has_frame(&a));
	hs = raw_answer(&a);
	ck_assert_ptr_nonnull(hs);
	ck_assert_str_eq(hs->error, "");
	ck_assert_uint_eq(hs->node_id, 1);
	ck_assert_str_eq(hs->client_addr, "client-1:80");
	raftpb__handshake__free_unpacked(hs, NULL);
	ck_assert_str_eq(rnet_peer_client_addr(f.nodes[1].net, 3), "raw:1");

	raw_connect(&b, f.members[0].addr);
	send_handshake(&b, RNET_MAGIC, RNET_PROTOCOL_VERSION, CLUSTER, 3);
	WAIT_FOR(&f, raw_poll(&a));
	ck_assert(a.eof);
	ck_assert(!raw_poll(&b));
	ck_assert_int_eq(log_count(&f.nodes[1], "msg=\"replaced peer "
						"connection\" peer=3"),
			 1);
	raw_close(&a);
	raw_close(&b);
	assert_still_serving(&f, 7);
	fx_fini(&f);
}
END_TEST

/* Starting a transport in a process that left SIGPIPE at its default
 * action ignores the signal (a reset peer must not kill the process) and
 * says so; a disposition the program chose is left alone. */
START_TEST(test_start_ignores_default_sigpipe)
{
	struct sigaction sa;
	struct fixture f;

	signal(SIGPIPE, SIG_DFL);
	fx_init(&f, 2);
	node_start(&f, 1);
	ck_assert_int_eq(sigaction(SIGPIPE, NULL, &sa), 0);
	ck_assert(sa.sa_handler == SIG_IGN);
	ck_assert_int_eq(log_count(&f.nodes[1], "msg=\"ignoring SIGPIPE\""), 1);
	node_stop(&f, 1);

	signal(SIGPIPE, tick_sig);
	node_start(&f, 1);
	ck_assert_int_eq(sigaction(SIGPIPE, NULL, &sa), 0);
	ck_assert(sa.sa_handler == tick_sig);
	ck_assert_int_eq(log_count(&f.nodes[1], "msg=\"ignoring SIGPIPE\""), 1);
	signal(SIGPIPE, SIG_IGN);
	fx_fini(&f);
}
END_TEST

/* Bad options are refused with a message; a busy address is an I/O error. */
START_TEST(test_start_refuses_bad_options)
{
	struct fixture f;
	struct rnet_options o = {0};
	struct rnet *n = NULL;
	char err[256];

	fx_init(&f, 2);
	o.self = 3;
	o.cluster_id = CLUSTER;
	o.listen_addr = f.members[0].addr;
	o.members = f.members;
	o.n_members = 2;
	ck_assert_int_eq(
	    rnet_start(&f.loop, &o, NULL, NULL, NULL, &n, err, sizeof(err)),
	    RAFT_EINVAL);
	ck_assert_str_eq(err, "node 3 is not a member");

	o.self = 1;
	o.listen_addr = "nonsense";
	ck_assert_int_eq(
	    rnet_start(&f.loop, &o, NULL, NULL, NULL, &n, err, sizeof(err)),
	    RAFT_EINVAL);
	ck_assert_str_eq(err, "bad listen address \"nonsense\"");

	node_start(&f, 1);
	o.self = 2;
	o.listen_addr = f.members[0].addr; /* node 1's, now in use */
	ck_assert_int_eq(
	    rnet_start(&f.loop, &o, NULL, NULL, NULL, &n, err, sizeof(err)),
	    RAFT_EIO);
	ck_assert_msg(strstr(err, "cannot listen for peers on") != NULL &&
			  strstr(err, "address already in use") != NULL,
		      "%s", err);
	ck_assert_ptr_null(n);
	fx_fini(&f);
}
END_TEST

static Suite *net_suite(void)
{
	Suite *s = suite_create("net");
	TCase *tc = tcase_create("transport");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_two_transports_exchange_messages_both_ways);
	tcase_add_test(tc, test_burst_of_messages_arrives_in_order);
	tcase_add_test(tc, test_host_names_and_ipv6_addresses_connect);
	tcase_add_test(
	    tc, test_bad_handshakes_are_refused_and_good_peer_still_served);
	tcase_add_test(
	    tc, test_transport_of_other_cluster_is_refused_and_logged_once);
	tcase_add_test(tc, test_bad_input_closes_only_that_connection);
	tcase_add_test(tc, test_reconnects_after_peer_restart);
	tcase_add_test(tc, test_send_to_dead_peer_queues_nothing);
	tcase_add_test(tc, test_queue_to_stalled_peer_stays_within_bound);
	tcase_add_test(tc, test_message_above_max_frame_is_too_big);
	tcase_add_test(tc, test_close_from_inside_recv_callback);
	tcase_add_test(tc, test_silent_connections_are_closed);
	tcase_add_test(tc, test_dial_to_silent_listener_times_out_and_retries);
	tcase_add_test(tc, test_dialler_refuses_answer_from_wrong_node);
	tcase_add_test(tc, test_new_connection_from_peer_replaces_old_one);
	tcase_add_test(tc, test_start_ignores_default_sigpipe);
	tcase_add_test(tc, test_start_refuses_bad_options);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(net_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
