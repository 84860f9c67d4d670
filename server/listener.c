/* kvd's client listener. See listener.h.
 *
 * Happy path: a client connects; each frame it sends decodes to a Request,
 * which becomes one store call (kv_store_get/put/del/status) carrying the
 * request id; the store's callback packs a Response with that id into the
 * connection's answer buffer. Once per loop turn, before the loop waits
 * for I/O, every connection with answers gets one write for all of them
 * (one write(2) for many answers under load). Many requests may be in the
 * store at once per connection, and their answers go out in the order they
 * complete.
 *
 * Failure modes, each closing that connection with one log line while
 * every other connection carries on:
 *   - a frame whose length exceeds the limit (before reading its body);
 *   - a frame that does not decode, or a Request with no known op;
 *   - a truncated frame at the end of the stream;
 *   - a client that does not read its answers: once more than max_queue
 *     bytes of answers (each counted with its bookkeeping, so that many
 *     small answers are bounded as well as a few large ones) wait to be
 *     written, the connection is closed.
 * Requests still in the store when their connection closes complete
 * normally; their answers are dropped. A client that keeps max_inflight
 * requests in the store is not read from until some complete.
 *
 * A follower answers writes, and linearizable reads unless follower reads
 * are on, with RAFT_ENOTLEADER and the leader's id and client address; it
 * proposes nothing. Serializable reads are answered by any node.
 *
 * Errors a request can get without a closed connection: RAFT_EINVAL (empty
 * key), RAFT_ETOOBIG (key or value over the store's limits),
 * RAFT_ENOTLEADER (see above), RAFT_EBUSY, RAFT_EUNAVAIL (shutting down or
 * failed; nothing done), and whatever the store's callbacks report.
 *
 * Listener states:
 *
 *     accepting --(kvd_listener_drain)--> draining: the listening socket
 *         is closed, so the kernel refuses new connections; requests on
 *         open connections are answered RAFT_EUNAVAIL
 *     accepting or draining --(kvd_listener_close)--> closing: the
 *         listening socket closes if still open; connections flush and
 *         close --(every connection and handle closed)--> freed
 *
 * Connection states:
 *
 *     open --(bad input, queue overflow, EOF, read error)--> closing
 *     open --(kvd_listener_close)--> flushing --(flushed or 1 s)--> closing
 *     closing --(handle closed and no request left in the store)--> freed
 */
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "libraft/client.h"
#include "listener.h"
#include "log.h"
#include "net/frame.h"
#include "proto/kv.pb-c.h"

#define FLUSH_TIMEOUT_MS 1000

struct kvd_conn {
	struct kvd_listener *l;
	uv_tcp_t tcp;
	uv_shutdown_t shutdown;
	struct rframe_reader reader;
	char remote[RAFT_ADDR_MAX];
	unsigned refs;	  /* the handle, plus one per request in the store */
	size_t inflight;  /* requests in the store */
	size_t out_bytes; /* answers handed to libuv, not yet written, with
			     costs */
	uint8_t *out;	  /* answers packed since the last flush */
	size_t out_len, out_cap;
	bool dirty; /* on the listener's dirty list (holding a reference) */
	struct kvd_conn *dirty_next;
	bool closing;
	bool paused; /* reading stopped: too many requests in flight */
	struct kvd_conn *prev, *next;
};

/* A request in the store. */
struct kvd_req {
	struct kvd_conn *conn;
	uint64_t id;
	bool acked; /* answered already (only in the early-ack bug build) */
};

/* Deliberately broken builds, made by `make kvd-bugs` and used only to
 * prove that jepsen-lite catches real bugs; a normal build has neither.
 *   KVD_BUG_LOCAL_READS  linearizable reads are served from the local state
 *                        machine, on any node, without ReadIndex;
 *   KVD_BUG_EARLY_ACK    a write is acknowledged as soon as it is proposed,
 *                        before it is durable anywhere or committed. */
#ifdef KVD_BUG_LOCAL_READS
#define BUG_LOCAL_READS true
#else
#define BUG_LOCAL_READS false
#endif
#ifdef KVD_BUG_EARLY_ACK
#define BUG_EARLY_ACK true
#else
#define BUG_EARLY_ACK false
#endif

struct kvd_write {
	uv_write_t req;
	uint8_t *buf;
	size_t cost; /* counted against the connection's queue bound */
};

/* What a write costs beyond its bytes: the write request and the
 * allocator's overhead, so that many small writes are bounded too. */
#define ANSWER_OVERHEAD (sizeof(struct kvd_write) + 64)

struct kvd_listener {
	uv_loop_t *loop;
	struct kv_store *store;
	struct kvd_listener_options o;
	char addr[RAFT_ADDR_MAX];
	uv_tcp_t tcp;
	uv_timer_t flush_timer;
	uv_prepare_t flusher; /* writes what answers piled up, once per turn */
	struct kvd_conn *dirty; /* connections with answers to write */
	struct kvd_conn *conns; /* every connection not yet freed */
	size_t n_conns;
	unsigned open_handles;
	bool draining;
	bool tcp_closing; /* the listening socket is closed: no accepts */
	bool closing;
	bool timer_closing;
	void (*close_cb)(void *arg);
	void *close_arg;
};

static void conn_abort(struct kvd_conn *conn, enum raft_log_level level,
		       const char *reason, const char *fields, ...)
    __attribute__((format(printf, 4, 5)));
static void listener_maybe_free(struct kvd_listener *l);
static void conn_process(struct kvd_conn *conn);
static void listener_handle_closed_cb(uv_handle_t *h);
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* ---- Connection life ---------------------------------------------------- */

static void conn_unref(struct kvd_conn *conn)
{
	struct kvd_listener *l = conn->l;

	if (--conn->refs > 0)
		return;
	if (conn->prev != NULL)
		conn->prev->next = conn->next;
	else
		l->conns = conn->next;
	if (conn->next != NULL)
		conn->next->prev = conn->prev;
	l->n_conns--;
	rframe_reader_free(&conn->reader);
	free(conn->out);
	free(conn);
	listener_maybe_free(l);
}

static void conn_closed_cb(uv_handle_t *h)
{
	conn_unref(h->data);
}

static void conn_close(struct kvd_conn *conn)
{
	if (conn->closing)
		return;
	conn->closing = true;
	uv_close((uv_handle_t *)&conn->tcp, conn_closed_cb);
}

/* Close the connection because of what the client did: one log line. */
static void conn_abort(struct kvd_conn *conn, enum raft_log_level level,
		       const char *reason, const char *fields, ...)
{
	char extra[256] = "";
	va_list ap;

	if (conn->closing)
		return;
	if (fields != NULL) {
		va_start(ap, fields);
		vsnprintf(extra, sizeof(extra), fields, ap);
		va_end(ap);
	}
	kvd_log(level, "closing client connection",
		"remote=%s reason=\"%s\"%s%s", conn->remote, reason,
		extra[0] != '\0' ? " " : "", extra);
	conn_close(conn);
}

/* ---- Answers ------------------------------------------------------------ */

static void write_cb(uv_write_t *w, int status)
{
	struct kvd_write *wr = w->data;
	struct kvd_conn *conn = w->handle->data;

	conn->out_bytes -= wr->cost;
	free(wr->buf);
	free(wr);
	if (status < 0 && status != UV_ECANCELED && !conn->closing) {
		kvd_log(RAFT_LOG_DEBUG, "client write failed",
			"remote=%s error=\"%s\"", conn->remote,
			uv_strerror(status));
		conn_close(conn);
	}
}

/* Hand what conn has packed to libuv in one write. */
static void conn_flush(struct kvd_conn *conn)
{
	struct kvd_write *wr;
	uv_buf_t buf;
	int rv;

	if (conn->closing || conn->out_len == 0)
		return;
	wr = malloc(sizeof(*wr));
	if (wr == NULL) {
		conn_abort(conn, RAFT_LOG_ERROR, "out of memory", NULL);
		return;
	}
	wr->req.data = wr;
	wr->buf = conn->out;
	wr->cost = conn->out_len + ANSWER_OVERHEAD;
	buf = uv_buf_init((char *)conn->out, (unsigned)conn->out_len);
	conn->out = NULL;
	conn->out_len = conn->out_cap = 0;
	rv = uv_write(&wr->req, (uv_stream_t *)&conn->tcp, &buf, 1, write_cb);
	if (rv != 0) {
		free(wr->buf);
		free(wr);
		kvd_log(RAFT_LOG_DEBUG, "client write failed",
			"remote=%s error=\"%s\"", conn->remote,
			uv_strerror(rv));
		conn_close(conn);
		return;
	}
	conn->out_bytes += wr->cost;
}

/* Once per loop turn, before the loop waits for I/O: one write per
 * connection for every answer produced since the last turn, whichever
 * phase of the loop produced it. */
static void flusher_cb(uv_prepare_t *p)
{
	struct kvd_listener *l = p->data;

	while (l->dirty != NULL) {
		struct kvd_conn *conn = l->dirty;

		l->dirty = conn->dirty_next;
		conn->dirty_next = NULL;
		conn->dirty = false;
		conn_flush(conn);
		conn_unref(conn);
	}
	uv_prepare_stop(p);
}

/* Make room for n more bytes in conn's answer buffer. */
static int conn_reserve(struct kvd_conn *conn, size_t n)
{
	size_t cap = conn->out_cap != 0 ? conn->out_cap : 4096;
	uint8_t *out;

	if (conn->out_len + n <= conn->out_cap)
		return 0;
	while (cap < conn->out_len + n)
		cap *= 2;
	out = realloc(conn->out, cap);
	if (out == NULL)
		return RAFT_ENOMEM;
	conn->out = out;
	conn->out_cap = cap;
	return 0;
}

/* Pack m into conn's answer buffer, unless the connection is closing; the
 * flusher writes it before the loop next waits. Answers count against the
 * connection's queue bound from here until they are written. */
static void conn_send(struct kvd_conn *conn, Kvpb__Response *m)
{
	struct kvd_listener *l = conn->l;
	size_t len = kvpb__response__get_packed_size(m);
	size_t queued;

	if (conn->closing)
		return;
	if (len > KV_CLIENT_MAX_FRAME) {
		conn_abort(conn, RAFT_LOG_ERROR, "answer exceeds frame limit",
			   "bytes=%zu", len);
		return;
	}
	if (conn_reserve(conn, RFRAME_HEADER + len) != 0) {
		conn_abort(conn, RAFT_LOG_ERROR, "out of memory", NULL);
		return;
	}
	rframe_header_put(conn->out + conn->out_len, (uint32_t)len);
	kvpb__response__pack(m, conn->out + conn->out_len + RFRAME_HEADER);
	conn->out_len += RFRAME_HEADER + len;
	if (!conn->dirty) {
		conn->dirty = true;
		conn->refs++;
		conn->dirty_next = l->dirty;
		l->dirty = conn;
		uv_prepare_start(&l->flusher, flusher_cb);
	}
	queued = conn->out_bytes + conn->out_len;
	if (queued > l->o.max_queue)
		conn_abort(
		    conn, RAFT_LOG_WARN, "client is not reading its answers",
		    "queued_bytes=%zu limit=%zu", queued, l->o.max_queue);
}

/* Answer with an error code and text. */
static void conn_send_error(struct kvd_conn *conn, uint64_t id, int code,
			    const char *error)
{
	Kvpb__Response m = KVPB__RESPONSE__INIT;

	m.id = id;
	m.code = code;
	m.error = (char *)error;
	conn_send(conn, &m);
}

/* Answer "not leader" with the leader this node knows of, if any. */
static void conn_send_not_leader(struct kvd_conn *conn, uint64_t id)
{
	Kvpb__Response m = KVPB__RESPONSE__INIT;
	struct raft_node_status st;
	char msg[128];

	memset(&st, 0, sizeof(st));
	kv_store_status(conn->l->store, &st);
	m.id = id;
	m.code = RAFT_ENOTLEADER;
	if (st.leader != 0)
		snprintf(msg, sizeof(msg), "not the leader; node %llu is",
			 (unsigned long long)st.leader);
	else
		snprintf(msg, sizeof(msg), "not the leader; no leader known");
	m.error = msg;
	m.leader_id = st.leader;
	m.leader_addr = st.leader_client_addr;
	conn_send(conn, &m);
}

/* A request is done with the store: resume reading if it was paused,
 * first with the frames already received. */
static void req_done(struct kvd_req *req)
{
	struct kvd_conn *conn = req->conn;

	free(req);
	conn->inflight--;
	if (conn->paused && !conn->closing && !conn->l->closing &&
	    conn->inflight <= conn->l->o.max_inflight / 2) {
		conn->paused = false;
		conn_process(conn);
		if (!conn->closing && !conn->paused &&
		    uv_read_start((uv_stream_t *)&conn->tcp, alloc_cb,
				  read_cb) != 0)
			conn_close(conn);
	}
	conn_unref(conn);
}

static void read_done_cb(void *arg, int status, const void *val, size_t vlen,
			 const struct kv_meta *meta)
{
	struct kvd_req *req = arg;
	Kvpb__Response m = KVPB__RESPONSE__INIT;

	m.id = req->id;
	m.code = status;
	if (status == RAFT_OK) {
		m.found = true;
		m.value.data = (uint8_t *)val;
		m.value.len = vlen;
		m.create_index = meta->create_index;
		m.mod_index = meta->mod_index;
		m.version = meta->version;
	} else if (status == RAFT_ENOTLEADER) {
		conn_send_not_leader(req->conn, req->id);
		req_done(req);
		return;
	} else {
		m.error = (char *)raft_strerror(status);
	}
	conn_send(req->conn, &m);
	req_done(req);
}

static void write_done_cb(void *arg, int status, uint64_t index)
{
	struct kvd_req *req = arg;
	Kvpb__Response m = KVPB__RESPONSE__INIT;

	if (req->acked) {
		req_done(req);
		return;
	}
	m.id = req->id;
	m.code = status;
	m.mod_index = index;
	if (status == RAFT_ELEADERLOST || status == RAFT_ESHUTDOWN)
		m.error = "leadership lost or node stopping before the write "
			  "was known to commit; it may or may not be applied";
	else if (status != RAFT_OK)
		m.error = (char *)raft_strerror(status);
	conn_send(req->conn, &m);
	req_done(req);
}

/* ---- Requests ----------------------------------------------------------- */

static void answer_status(struct kvd_conn *conn, uint64_t id)
{
	Kvpb__Response m = KVPB__RESPONSE__INIT;
	Kvpb__NodeStatus ns = KVPB__NODE_STATUS__INIT;
	Kvpb__PeerStatus ps[RAFT_MAX_PEERS], *pp[RAFT_MAX_PEERS];
	struct raft_node_status st;
	size_t i;
	int rv;

	memset(&st, 0, sizeof(st));
	rv = kv_store_status(conn->l->store, &st);
	if (rv != RAFT_OK) {
		conn_send_error(conn, id, RAFT_EUNAVAIL,
				"node is shutting down");
		return;
	}
	ns.id = st.id;
	ns.role = (char *)raft_role_name(st.role);
	ns.term = st.term;
	ns.leader = st.leader;
	ns.leader_addr = st.leader_client_addr;
	ns.commit = st.commit;
	ns.applied = st.applied;
	ns.last_index = st.last_index;
	ns.failed = st.failed;
	for (i = 0; i < st.n_peers && i < RAFT_MAX_PEERS; i++) {
		kvpb__peer_status__init(&ps[i]);
		ps[i].id = st.peers[i].id;
		ps[i].addr = st.peers[i].addr;
		ps[i].client_addr = st.peers[i].client_addr;
		ps[i].match = st.peers[i].match;
		ps[i].connected = st.peers[i].connected;
		pp[i] = &ps[i];
	}
	ns.n_peers = i;
	ns.peers = pp;
	m.id = id;
	m.status = &ns;
	conn_send(conn, &m);
}

/* The store refused a request at once: answer why. */
static void answer_refusal(struct kvd_conn *conn, uint64_t id, int rv,
			   size_t klen, size_t vlen)
{
	char msg[160];

	switch (rv) {
	case RAFT_ENOTLEADER:
		conn_send_not_leader(conn, id);
		return;
	case RAFT_ETOOBIG:
		if (klen > KV_MAX_KEY)
			snprintf(msg, sizeof(msg),
				 "key of %zu bytes exceeds the limit of %d",
				 klen, KV_MAX_KEY);
		else
			snprintf(msg, sizeof(msg),
				 "value of %zu bytes exceeds the limit of %d",
				 vlen, KV_MAX_VALUE);
		conn_send_error(conn, id, rv, msg);
		return;
	case RAFT_ESHUTDOWN:
		/* Refused before anything was proposed: say so with a code
		 * that lets the client try another node. */
		conn_send_error(conn, id, RAFT_EUNAVAIL,
				"node is shutting down or has failed");
		return;
	case RAFT_EBUSY:
		conn_send_error(conn, id, rv,
				"too many requests in flight; retry later");
		return;
	}
	conn_send_error(conn, id, rv, raft_strerror(rv));
}

/* Whether this node leads now. A leadership lost right after the check
 * is harmless: the store's read still confirms leadership (ReadIndex). */
static bool is_leader(struct kv_store *s)
{
	struct raft_node_status st;

	memset(&st, 0, sizeof(st));
	return kv_store_status(s, &st) == RAFT_OK && st.role == RAFT_LEADER;
}

static void handle_request(struct kvd_conn *conn, const Kvpb__Request *m)
{
	struct kv_store *s = conn->l->store;
	const ProtobufCBinaryData *key = NULL;
	struct kvd_req *req;
	size_t vlen = 0;
	int rv;

	switch (m->op_case) {
	case KVPB__REQUEST__OP_STATUS:
		answer_status(conn, m->id);
		return;
	case KVPB__REQUEST__OP_GET:
		key = &m->get->key;
		break;
	case KVPB__REQUEST__OP_PUT:
		key = &m->put->key;
		vlen = m->put->value.len;
		break;
	case KVPB__REQUEST__OP_DEL:
		key = &m->del->key;
		break;
	default:
		conn_abort(conn, RAFT_LOG_WARN, "request with an unknown op",
			   "id=%llu", (unsigned long long)m->id);
		return;
	}
	if (conn->l->draining) {
		conn_send_error(conn, m->id, RAFT_EUNAVAIL,
				"node is shutting down");
		return;
	}
	if (key->len == 0) {
		conn_send_error(conn, m->id, RAFT_EINVAL, "empty key");
		return;
	}
	if (BUG_LOCAL_READS && m->op_case == KVPB__REQUEST__OP_GET)
		m->get->serializable = true;
	if (m->op_case == KVPB__REQUEST__OP_GET && !m->get->serializable &&
	    !conn->l->o.follower_reads && !is_leader(s)) {
		conn_send_not_leader(conn, m->id);
		return;
	}
	req = malloc(sizeof(*req));
	if (req == NULL) {
		conn_send_error(conn, m->id, RAFT_ENOMEM, "out of memory");
		return;
	}
	req->conn = conn;
	req->id = m->id;
	req->acked = false;
	/* The request holds the connection from here, so that a callback can
	 * never find it freed. */
	conn->refs++;
	conn->inflight++;
	switch (m->op_case) {
	case KVPB__REQUEST__OP_GET:
		rv = kv_store_get(s, key->data, key->len, m->get->serializable,
				  read_done_cb, req);
		break;
	case KVPB__REQUEST__OP_PUT:
		rv = kv_store_put(s, key->data, key->len, m->put->value.data,
				  vlen, write_done_cb, req);
		break;
	default:
		rv = kv_store_del(s, key->data, key->len, write_done_cb, req);
		break;
	}
	if (rv != RAFT_OK) {
		free(req);
		conn->inflight--;
		conn->refs--; /* the handle's reference remains */
		answer_refusal(conn, m->id, rv, key->len, vlen);
		return;
	}
	if (BUG_EARLY_ACK && m->op_case == KVPB__REQUEST__OP_PUT) {
		Kvpb__Response ack = KVPB__RESPONSE__INIT;

		ack.id = m->id;
		ack.code = RAFT_OK;
		conn_send(conn, &ack);
		req->acked = true;
	}
	if (conn->inflight >= conn->l->o.max_inflight && !conn->paused) {
		conn->paused = true;
		uv_read_stop((uv_stream_t *)&conn->tcp);
	}
}

/* ---- Reading ------------------------------------------------------------ */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct kvd_conn *conn = h->data;

	rframe_reader_alloc(&conn->reader, suggested, buf);
}

/* Handle every complete frame received, until the connection closes or
 * pauses. */
static void conn_process(struct kvd_conn *conn)
{
	const uint8_t *payload;
	size_t len;
	int rv;

	while (!conn->closing && !conn->paused &&
	       (rv = rframe_reader_next(&conn->reader, &payload, &len)) != 0) {
		Kvpb__Request *m;

		if (rv < 0) {
			conn_abort(conn, RAFT_LOG_WARN, "frame too large",
				   "bytes=%zu limit=%u", len,
				   KV_CLIENT_MAX_FRAME);
			return;
		}
		m = kvpb__request__unpack(NULL, len, payload);
		if (m == NULL) {
			conn_abort(conn, RAFT_LOG_WARN,
				   "request does not decode", "bytes=%zu", len);
			return;
		}
		handle_request(conn, m);
		kvpb__request__free_unpacked(m, NULL);
	}
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct kvd_conn *conn = s->data;

	(void)buf;
	if (conn->closing || nread == 0)
		return;
	if (nread == UV_EOF) {
		size_t pending = rframe_reader_pending(&conn->reader);
		if (pending > 0)
			conn_abort(conn, RAFT_LOG_WARN, "truncated frame",
				   "pending_bytes=%zu", pending);
		else
			kvd_log(RAFT_LOG_DEBUG, "client disconnected",
				"remote=%s", conn->remote);
		conn_close(conn);
		return;
	}
	if (nread < 0) {
		kvd_log(RAFT_LOG_DEBUG, "client connection failed",
			"remote=%s error=\"%s\"", conn->remote,
			uv_strerror((int)nread));
		conn_close(conn);
		return;
	}
	rframe_reader_commit(&conn->reader, (size_t)nread);
	conn_process(conn);
}

/* ---- Accepting ---------------------------------------------------------- */

static void remote_name(uv_tcp_t *tcp, char *out, size_t len)
{
	struct sockaddr_storage ss;
	int sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;
			uv_ip4_name(a, host, sizeof(host));
			port = ntohs(a->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
			uv_ip6_name(a, host, sizeof(host));
			port = ntohs(a->sin6_port);
		}
	}
	snprintf(out, len, "%s:%d", host, port);
}

static void refused_closed_cb(uv_handle_t *h)
{
	free(h->data);
}

static void connection_cb(uv_stream_t *server, int status)
{
	struct kvd_listener *l = server->data;
	struct kvd_conn *conn;
	int rv;

	if (status < 0) {
		kvd_log(RAFT_LOG_WARN, "accept failed", "error=\"%s\"",
			uv_strerror(status));
		return;
	}
	conn = calloc(1, sizeof(*conn));
	if (conn == NULL) {
		kvd_log(RAFT_LOG_ERROR, "out of memory accepting a client",
			NULL);
		return;
	}
	uv_tcp_init(l->loop, &conn->tcp);
	conn->tcp.data = conn;
	rv = uv_accept(server, (uv_stream_t *)&conn->tcp);
	if (rv == 0)
		remote_name(&conn->tcp, conn->remote, sizeof(conn->remote));
	if (rv != 0 || l->draining || l->n_conns >= l->o.max_clients) {
		/* Draining closes the listening socket, so a connection
		 * should not get here then; should one, it is refused. */
		/* TODO(kvd): rate-limit this line; a client that reconnects
		 * in a loop while the limit holds floods the log. */
		if (rv == 0 && l->draining)
			kvd_log(RAFT_LOG_WARN, "refusing client connection",
				"remote=%s reason=\"shutting down\"",
				conn->remote);
		else if (rv == 0)
			kvd_log(RAFT_LOG_WARN, "refusing client connection",
				"remote=%s reason=\"too many clients\" "
				"clients=%zu limit=%u",
				conn->remote, l->n_conns, l->o.max_clients);
		uv_close((uv_handle_t *)&conn->tcp, refused_closed_cb);
		return;
	}
	conn->l = l;
	conn->refs = 1;
	rframe_reader_init(&conn->reader, KV_CLIENT_MAX_FRAME);
	conn->next = l->conns;
	if (l->conns != NULL)
		l->conns->prev = conn;
	l->conns = conn;
	l->n_conns++;
	uv_tcp_nodelay(&conn->tcp, 1);
	kvd_log(RAFT_LOG_DEBUG, "client connected", "remote=%s clients=%zu",
		conn->remote, l->n_conns);
	rv = uv_read_start((uv_stream_t *)&conn->tcp, alloc_cb, read_cb);
	if (rv != 0)
		conn_abort(conn, RAFT_LOG_WARN, "cannot read", "error=\"%s\"",
			   uv_strerror(rv));
}

/* ---- Listener ----------------------------------------------------------- */

static int resolve(const char *addr, struct sockaddr_storage *ss, char *errmsg,
		   size_t errlen)
{
	char host[RAFT_ADDR_MAX];
	const char *colon = strrchr(addr, ':');
	struct addrinfo hints, *ai = NULL;
	size_t hlen;
	int rv;

	if (colon == NULL || strlen(addr) >= sizeof(host)) {
		snprintf(errmsg, errlen, "client address '%s': want HOST:PORT",
			 addr);
		return RAFT_EINVAL;
	}
	hlen = (size_t)(colon - addr);
	if (addr[0] == '[' && hlen >= 2 && addr[hlen - 1] == ']') {
		memcpy(host, addr + 1, hlen - 2);
		host[hlen - 2] = '\0';
	} else {
		memcpy(host, addr, hlen);
		host[hlen] = '\0';
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rv = getaddrinfo(host[0] != '\0' ? host : NULL, colon + 1, &hints, &ai);
	if (rv != 0) {
		snprintf(errmsg, errlen, "client address '%s': %s", addr,
			 gai_strerror(rv));
		return RAFT_EINVAL;
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	return RAFT_OK;
}

int kvd_listener_start(uv_loop_t *loop, struct kv_store *store,
		       const struct kvd_listener_options *o,
		       struct kvd_listener **out, char *errmsg, size_t errlen)
{
	struct kvd_listener *l;
	struct sockaddr_storage ss;
	int rv;

	rv = resolve(o->addr, &ss, errmsg, errlen);
	if (rv != RAFT_OK)
		return rv;
	l = calloc(1, sizeof(*l));
	if (l == NULL) {
		snprintf(errmsg, errlen, "out of memory");
		return RAFT_ENOMEM;
	}
	l->loop = loop;
	l->store = store;
	l->o = *o;
	snprintf(l->addr, sizeof(l->addr), "%s", o->addr);
	l->o.addr = l->addr;
	uv_tcp_init(loop, &l->tcp);
	uv_timer_init(loop, &l->flush_timer);
	uv_prepare_init(loop, &l->flusher);
	l->tcp.data = l;
	l->flush_timer.data = l;
	l->flusher.data = l;
	l->open_handles = 3;
	rv = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss, 0);
	if (rv == 0)
		rv = uv_listen((uv_stream_t *)&l->tcp, 128, connection_cb);
	if (rv != 0) {
		snprintf(errmsg, errlen, "cannot listen for clients on %s: %s",
			 o->addr, uv_strerror(rv));
		/* The handles close, and l is freed, once the loop runs. */
		l->closing = true;
		l->timer_closing = true;
		l->tcp_closing = true;
		uv_close((uv_handle_t *)&l->tcp, listener_handle_closed_cb);
		uv_close((uv_handle_t *)&l->flush_timer,
			 listener_handle_closed_cb);
		uv_close((uv_handle_t *)&l->flusher, listener_handle_closed_cb);
		return RAFT_EIO;
	}
	*out = l;
	return RAFT_OK;
}

void kvd_listener_set_store(struct kvd_listener *l, struct kv_store *store)
{
	l->store = store;
}

/* Close the listening socket, once: the kernel then refuses new
 * connections (and resets any it completed that were not accepted yet),
 * so that a client sees "connection refused" before it sends anything. */
static void listener_stop_accepting(struct kvd_listener *l)
{
	if (l->tcp_closing)
		return;
	l->tcp_closing = true;
	uv_close((uv_handle_t *)&l->tcp, listener_handle_closed_cb);
}

void kvd_listener_drain(struct kvd_listener *l)
{
	l->draining = true;
	listener_stop_accepting(l);
}

static void listener_maybe_free(struct kvd_listener *l)
{
	void (*cb)(void *) = l->close_cb;
	void *arg = l->close_arg;

	if (!l->closing || l->n_conns > 0)
		return;
	if (!l->timer_closing) {
		/* Every connection is gone before the flush deadline. */
		l->timer_closing = true;
		uv_close((uv_handle_t *)&l->flush_timer,
			 listener_handle_closed_cb);
	}
	if (l->open_handles > 0)
		return;
	free(l);
	if (cb != NULL)
		cb(arg);
}

static void listener_handle_closed_cb(uv_handle_t *h)
{
	struct kvd_listener *l = h->data;

	l->open_handles--;
	listener_maybe_free(l);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
	(void)status;
	conn_close(req->data);
}

/* The flush deadline passed: close whatever is still open. */
static void flush_timer_cb(uv_timer_t *t)
{
	struct kvd_listener *l = t->data;
	struct kvd_conn *conn;

	for (conn = l->conns; conn != NULL; conn = conn->next)
		conn_close(conn);
}

void kvd_listener_close(struct kvd_listener *l, void (*cb)(void *arg),
			void *arg)
{
	struct kvd_conn *conn;

	l->draining = true;
	l->closing = true;
	l->close_cb = cb;
	l->close_arg = arg;
	/* The store is closed: no answer comes after these. */
	flusher_cb(&l->flusher);
	uv_close((uv_handle_t *)&l->flusher, listener_handle_closed_cb);
	listener_stop_accepting(l);
	for (conn = l->conns; conn != NULL; conn = conn->next) {
		if (conn->closing)
			continue;
		uv_read_stop((uv_stream_t *)&conn->tcp);
		conn->shutdown.data = conn;
		if (uv_shutdown(&conn->shutdown, (uv_stream_t *)&conn->tcp,
				shutdown_cb) != 0)
			conn_close(conn);
	}
	uv_timer_start(&l->flush_timer, flush_timer_cb, FLUSH_TIMEOUT_MS, 0);
	listener_maybe_free(l);
}
