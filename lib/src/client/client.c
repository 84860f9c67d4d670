/* The asynchronous client of a kvd cluster (libraft/client.h).
 *
 * Happy path: a request is encoded once into a frame, gets an id and a
 * deadline, and is written on the connection to the current endpoint
 * (opened on first use). The answer frame carries the id; the request is
 * found among those sent on that connection and its callback runs.
 *
 * Failure modes:
 *   - "not leader", or "unavailable" (the node is shutting down), both
 *     answered before anything was proposed: routed again;
 *   - connect refused, failed or timed out: every request queued on the
 *     connection was never sent, so all are routed again; the current
 *     endpoint moves on;
 *   - the connection fails after requests were written: writes finish
 *     with RAFT_ELEADERLOST and unknown set (never re-sent); reads are
 *     routed again; status requests fail;
 *   - "not leader": the request was not carried out; it is routed again,
 *     to the hinted leader if there is one;
 *   - an answer that does not decode, or a frame above the limit: the
 *     connection is closed as failed (RAFT_EPROTO);
 *   - the deadline passes: the request finishes with RAFT_ETIMEDOUT when it
 *     was sent (unknown for a write), or RAFT_EUNAVAIL with the last
 *     routing failure when it was waiting. An answer that arrives later is
 *     dropped.
 *
 * Every live request sits on exactly one position list (a connection's
 * queued or sent list, or the client's waiting list) and on the client's
 * deadline list, ordered by deadline.
 */
#include <assert.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "libraft/client.h"
#include "net/frame.h"
#include "proto/kv.pb-c.h"

#define BACKOFF_MIN_MS 25
#define BACKOFF_MAX_MS 250

/* ---- Intrusive lists ---------------------------------------------------- */

struct kvc_link {
	struct kvc_link *prev;
	struct kvc_link *next;
};

#define KVC_CONTAINER(ptr, type, field)                                        \
	((type *)(void *)((char *)(ptr)-offsetof(type, field)))

static void link_init(struct kvc_link *head)
{
	head->prev = head->next = head;
}

static bool link_empty(const struct kvc_link *head)
{
	return head->next == head;
}

static void link_append(struct kvc_link *head, struct kvc_link *l)
{
	l->prev = head->prev;
	l->next = head;
	head->prev->next = l;
	head->prev = l;
}

static void link_insert_after(struct kvc_link *pos, struct kvc_link *l)
{
	l->prev = pos;
	l->next = pos->next;
	pos->next->prev = l;
	pos->next = l;
}

/* Unlinking twice is harmless: an unlinked node points at itself. */
static void link_remove(struct kvc_link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	l->prev = l->next = l;
}

/* Move every node of from to the end of to. */
static void link_move_all(struct kvc_link *from, struct kvc_link *to)
{
	while (!link_empty(from)) {
		struct kvc_link *l = from->next;
		link_remove(l);
		link_append(to, l);
	}
}

/* ---- Types -------------------------------------------------------------- */

/* An encoded request shared by the request and every write of it. */
struct kvc_frame {
	unsigned refs;
	size_t len;
	uint8_t *data;
};

enum kvc_op { KVC_GET, KVC_PUT, KVC_DEL, KVC_STATUS };

enum kvc_req_state {
	KVC_REQ_WAITING, /* on a connection's queued list or client waiting */
	KVC_REQ_SENT,	 /* written; on a connection's sent list */
};

struct kvc_conn;

struct kvc_req {
	struct kv_client *client;
	uint64_t id;
	enum kvc_op op;
	enum kvc_req_state state;
	size_t target; /* status: the endpoint asked */
	struct kvc_frame *frame;
	uint64_t deadline; /* loop time, ms */
	unsigned timeout_ms;
	struct kvc_conn *conn; /* while on its queued or sent list */
	int last_rc;	       /* the last routing failure, for the message */
	char last_err[160];
	kv_client_cb cb;
	void *arg;
	struct kvc_link pos; /* position list */
	struct kvc_link all; /* deadline list */
};

enum kvc_conn_state { KVC_CONNECTING, KVC_OPEN, KVC_CLOSING };

struct kvc_conn {
	struct kv_client *client;
	size_t ep;
	enum kvc_conn_state state;
	uv_tcp_t tcp;
	uv_connect_t connect;
	uv_timer_t timer;  /* connect deadline, or an immediate failure */
	int connect_error; /* set when uv_tcp_connect failed at once */
	unsigned open_handles;
	struct rframe_reader reader;
	struct kvc_link queued; /* waiting for the connect */
	struct kvc_link sent;	/* written, waiting for an answer */
	/* Frames sent since the last turn of the loop, written together by
	 * the client's flusher before the loop next waits. */
	struct kvc_frame **out;
	size_t n_out, out_cap;
	struct kvc_conn *dirty_next; /* on the client's dirty list */
	bool dirty;
};

/* One write of n frames. */
struct kvc_write {
	uv_write_t req;
	struct kvc_conn *conn;
	size_t n;
	struct kvc_frame *frames[];
};

struct kvc_endpoint {
	char name[KV_CLIENT_ADDR_MAX];
	struct sockaddr_storage addr;
};

struct kv_client {
	uv_loop_t *loop;
	struct kv_client_config cfg;
	struct kvc_endpoint eps[KV_CLIENT_MAX_ENDPOINTS];
	size_t n_eps;
	size_t n_configured;
	struct kvc_conn *conns[KV_CLIENT_MAX_ENDPOINTS];
	size_t n_conns; /* allocated, closing ones included */

	/* Routing: where requests go, and how long to wait after a whole
	 * round of failures. */
	size_t cur;
	size_t fails;
	unsigned backoff_ms;
	bool backing_off;

	uv_timer_t retry_timer;
	uv_timer_t deadline_timer;
	uv_prepare_t flusher;	 /* writes the dirty connections' frames */
	struct kvc_conn *dirty; /* connections with frames to write */
	unsigned open_handles;
	struct kvc_link waiting; /* routed while backing off */
	struct kvc_link all;	 /* every live request, by deadline */
	uint64_t next_id;
	size_t inflight;

	bool closing;
	void (*close_cb)(void *arg);
	void *close_arg;
};

static void conn_fail(struct kvc_conn *conn, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void route(struct kvc_req *req);

/* ---- Frames and requests ------------------------------------------------ */

static void frame_unref(struct kvc_frame *f)
{
	if (f != NULL && --f->refs == 0) {
		free(f->data);
		free(f);
	}
}

static void req_note(struct kvc_req *req, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Remember why the last attempt failed, for the final message. */
static void req_note(struct kvc_req *req, int rc, const char *fmt, ...)
{
	va_list ap;

	req->last_rc = rc;
	va_start(ap, fmt);
	vsnprintf(req->last_err, sizeof(req->last_err), fmt, ap);
	va_end(ap);
}

static bool req_is_write(const struct kvc_req *req)
{
	return req->op == KVC_PUT || req->op == KVC_DEL;
}

/* Call the request back and free it. res is filled by the caller except for
 * the fields set here. */
static void req_finish(struct kvc_req *req, struct kv_client_result *res)
{
	struct kv_client *c = req->client;
	const char *ep = "";

	if (req->conn != NULL)
		ep = c->eps[req->conn->ep].name;
	else if (req->op == KVC_STATUS)
		ep = c->eps[req->target].name;
	res->endpoint = ep;
	if (res->error == NULL)
		res->error = "";
	link_remove(&req->pos);
	link_remove(&req->all);
	req->conn = NULL;
	c->inflight--;
	req->cb(req->arg, res);
	frame_unref(req->frame);
	free(req);
}

/* Finish with an error and a formatted message. */
static void req_fail(struct kvc_req *req, int rc, bool unknown, const char *fmt,
		     ...) __attribute__((format(printf, 4, 5)));

static void req_fail(struct kvc_req *req, int rc, bool unknown, const char *fmt,
		     ...)
{
	struct kv_client_result res;
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memset(&res, 0, sizeof(res));
	res.rc = rc;
	res.unknown = unknown;
	res.error = msg;
	req_finish(req, &res);
}

/* ---- Endpoints ---------------------------------------------------------- */

/* Parse "host:port" (or "[v6]:port") and resolve it. */
static int endpoint_parse(const char *s, struct kvc_endpoint *ep, char *errmsg,
			  size_t errlen)
{
	char host[KV_CLIENT_ADDR_MAX];
	const char *colon = strrchr(s, ':');
	const char *port;
	struct addrinfo hints, *ai = NULL;
	size_t hlen;
	int rv;

	if (strlen(s) >= sizeof(ep->name) || colon == NULL || colon == s ||
	    colon[1] == '\0') {
		snprintf(errmsg, errlen, "endpoint '%s': want host:port", s);
		return RAFT_EINVAL;
	}
	hlen = (size_t)(colon - s);
	if (s[0] == '[' && hlen >= 2 && s[hlen - 1] == ']') {
		memcpy(host, s + 1, hlen - 2);
		host[hlen - 2] = '\0';
	} else {
		memcpy(host, s, hlen);
		host[hlen] = '\0';
	}
	port = colon + 1;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	rv = getaddrinfo(host, port, &hints, &ai);
	if (rv != 0) {
		snprintf(errmsg, errlen, "endpoint '%s': %s", s,
			 gai_strerror(rv));
		/* A name that does not exist is the caller's mistake; a name
		 * service that cannot answer now is an outage. */
		return rv == EAI_AGAIN || rv == EAI_FAIL || rv == EAI_SYSTEM ||
			       rv == EAI_MEMORY
			   ? RAFT_EUNAVAIL
			   : RAFT_EINVAL;
	}
	memcpy(&ep->addr, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	snprintf(ep->name, sizeof(ep->name), "%s", s);
	return RAFT_OK;
}

/* The index of the endpoint named addr, added if new; -1 if it cannot be. */
static int endpoint_find_or_add(struct kv_client *c, const char *addr)
{
	char err[128];
	size_t i;

	for (i = 0; i < c->n_eps; i++)
		if (strcmp(c->eps[i].name, addr) == 0)
			return (int)i;
	if (c->n_eps == KV_CLIENT_MAX_ENDPOINTS ||
	    endpoint_parse(addr, &c->eps[c->n_eps], err, sizeof(err)) != 0)
		return -1;
	return (int)c->n_eps++;
}

/* ---- Routing ----------------------------------------------------------------
 *
 * The current endpoint gets every request. Each failure there (refused
 * connection, lost connection, "not leader") moves it: to the hinted leader
 * if the answer named one, else to the next endpoint. After as many failures
 * in a row as there are endpoints, the client backs off: requests wait on
 * the waiting list until the retry timer fires. An answer that is not "not
 * leader" resets the count and the backoff. */

static void retry_cb(uv_timer_t *t)
{
	struct kv_client *c = t->data;
	struct kvc_link tmp;

	c->backing_off = false;
	link_init(&tmp);
	link_move_all(&c->waiting, &tmp);
	while (!link_empty(&tmp) && !c->closing) {
		struct kvc_req *req =
		    KVC_CONTAINER(tmp.next, struct kvc_req, pos);
		link_remove(&req->pos);
		route(req);
	}
}

/* A failure at endpoint ep; hint is the leader it named, or -1. */
static void routing_failed(struct kv_client *c, size_t ep, int hint)
{
	if (ep != c->cur || c->backing_off)
		return; /* already moved on */
	if (hint >= 0 && (size_t)hint != ep)
		c->cur = (size_t)hint;
	else
		c->cur = (c->cur + 1) % c->n_eps;
	if (++c->fails < c->n_eps)
		return;
	c->fails = 0;
	c->backing_off = true;
	uv_timer_start(&c->retry_timer, retry_cb, c->backoff_ms, 0);
	c->backoff_ms *= 2;
	if (c->backoff_ms > BACKOFF_MAX_MS)
		c->backoff_ms = BACKOFF_MAX_MS;
}

static void routing_succeeded(struct kv_client *c, size_t ep)
{
	if (ep != c->cur)
		return;
	c->fails = 0;
	c->backoff_ms = BACKOFF_MIN_MS;
}

/* ---- Connections -------------------------------------------------------- */

static void conn_closed_cb(uv_handle_t *h);

static void client_maybe_free(struct kv_client *c)
{
	void (*cb)(void *) = c->close_cb;
	void *arg = c->close_arg;

	if (!c->closing || c->open_handles > 0 || c->n_conns > 0)
		return;
	free(c);
	if (cb != NULL)
		cb(arg);
}

static void conn_closed_cb(uv_handle_t *h)
{
	struct kvc_conn *conn = h->data;
	struct kv_client *c = conn->client;

	if (--conn->open_handles > 0)
		return;
	rframe_reader_free(&conn->reader);
	free(conn);
	c->n_conns--;
	client_maybe_free(c);
}

/* Close the connection's handles; its requests must be gone already. */
static void conn_close(struct kvc_conn *conn)
{
	struct kv_client *c = conn->client;

	if (conn->state == KVC_CLOSING)
		return;
	assert(link_empty(&conn->queued) && link_empty(&conn->sent));
	conn->state = KVC_CLOSING;
	if (conn->dirty) {
		struct kvc_conn **pp = &c->dirty;

		while (*pp != conn)
			pp = &(*pp)->dirty_next;
		*pp = conn->dirty_next;
		conn->dirty = false;
	}
	for (size_t i = 0; i < conn->n_out; i++)
		frame_unref(conn->out[i]);
	free(conn->out);
	conn->out = NULL;
	conn->n_out = conn->out_cap = 0;
	if (c->conns[conn->ep] == conn)
		c->conns[conn->ep] = NULL;
	uv_close((uv_handle_t *)&conn->tcp, conn_closed_cb);
	uv_close((uv_handle_t *)&conn->timer, conn_closed_cb);
}

static void write_cb(uv_write_t *w, int status)
{
	struct kvc_write *wr = w->data;
	struct kvc_conn *conn = wr->conn;

	for (size_t i = 0; i < wr->n; i++)
		frame_unref(wr->frames[i]);
	free(wr);
	if (status < 0 && status != UV_ECANCELED && conn->state == KVC_OPEN)
		conn_fail(conn, RAFT_ELEADERLOST, "write to %s: %s",
			  conn->client->eps[conn->ep].name,
			  uv_strerror(status));
}

/* Write every frame conn gathered since the last turn in one write. */
static void conn_flush(struct kvc_conn *conn)
{
	size_t n = conn->n_out;
	struct kvc_write *wr;
	uv_buf_t bufs[64], *buf = bufs;
	int rv = UV_ENOMEM;

	if (n == 0 || conn->state != KVC_OPEN)
		return;
	wr = malloc(sizeof(*wr) + n * sizeof(wr->frames[0]));
	if (n > sizeof(bufs) / sizeof(bufs[0]))
		buf = malloc(n * sizeof(*buf));
	if (wr != NULL && buf != NULL) {
		wr->req.data = wr;
		wr->conn = conn;
		wr->n = n;
		for (size_t i = 0; i < n; i++) {
			wr->frames[i] = conn->out[i];
			buf[i] = uv_buf_init((char *)conn->out[i]->data,
					     (unsigned)conn->out[i]->len);
		}
		rv = uv_write(&wr->req, (uv_stream_t *)&conn->tcp, buf,
			      (unsigned)n, write_cb);
	}
	if (buf != bufs)
		free(buf);
	if (rv != 0) {
		free(wr);
		conn_fail(conn, RAFT_EUNAVAIL, "write to %s: %s",
			  conn->client->eps[conn->ep].name, uv_strerror(rv));
		return;
	}
	conn->n_out = 0; /* the write holds the references now */
}

/* Once per loop turn, before the loop waits for I/O: one write per
 * connection for every request sent since the last turn. */
static void flusher_cb(uv_prepare_t *p)
{
	struct kv_client *c = p->data;

	while (c->dirty != NULL) {
		struct kvc_conn *conn = c->dirty;

		c->dirty = conn->dirty_next;
		conn->dirty_next = NULL;
		conn->dirty = false;
		conn_flush(conn);
	}
	uv_prepare_stop(p);
}

/* Send req on an open connection: its frame joins the connection's next
 * write, and req moves to the sent list. */
static void conn_send(struct kvc_conn *conn, struct kvc_req *req)
{
	struct kv_client *c = conn->client;

	link_remove(&req->pos);
	req->conn = conn;
	if (conn->n_out == conn->out_cap) {
		size_t cap = conn->out_cap ? 2 * conn->out_cap : 16;
		struct kvc_frame **out =
		    realloc(conn->out, cap * sizeof(*out));

		if (out == NULL) {
			req_fail(req, RAFT_ENOMEM, false, "out of memory");
			return;
		}
		conn->out = out;
		conn->out_cap = cap;
	}
	conn->out[conn->n_out++] = req->frame;
	req->frame->refs++;
	if (!conn->dirty) {
		conn->dirty = true;
		conn->dirty_next = c->dirty;
		c->dirty = conn;
		uv_prepare_start(&c->flusher, flusher_cb);
	}
	req->state = KVC_REQ_SENT;
	link_append(&conn->sent, &req->pos);
}

/* The connection failed: route again what was never sent, finish or route
 * again what was, then close it. */
static void conn_fail(struct kvc_conn *conn, int rc, const char *fmt, ...)
{
	struct kv_client *c = conn->client;
	struct kvc_link unsent, sent;
	char msg[160];
	va_list ap;

	if (conn->state == KVC_CLOSING)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	link_init(&unsent);
	link_init(&sent);
	link_move_all(&conn->queued, &unsent);
	link_move_all(&conn->sent, &sent);
	conn_close(conn);
	routing_failed(c, conn->ep, -1);

	/* A callback may close the client: kv_client_close() then finishes
	 * every request through the deadline list, which also takes them off
	 * these local lists, and the loops end. */
	while (!link_empty(&sent)) {
		struct kvc_req *req =
		    KVC_CONTAINER(sent.next, struct kvc_req, pos);
		link_remove(&req->pos);
		if (req_is_write(req)) {
			req_fail(req, RAFT_ELEADERLOST, true,
				 "%s; the write may or may not have been "
				 "applied",
				 msg);
		} else if (req->op == KVC_STATUS) {
			req_fail(req, rc, false, "%s", msg);
		} else {
			req->conn = NULL;
			req_note(req, rc, "%s", msg);
			route(req);
		}
	}
	while (!link_empty(&unsent)) {
		struct kvc_req *req =
		    KVC_CONTAINER(unsent.next, struct kvc_req, pos);
		link_remove(&req->pos);
		if (req->op == KVC_STATUS) {
			req_fail(req, RAFT_EUNAVAIL, false, "%s", msg);
		} else {
			req->conn = NULL;
			req_note(req, RAFT_EUNAVAIL, "%s", msg);
			route(req);
		}
	}
}

static void conn_timer_cb(uv_timer_t *t)
{
	struct kvc_conn *conn = t->data;
	const char *name = conn->client->eps[conn->ep].name;

	if (conn->state != KVC_CONNECTING)
		return;
	if (conn->connect_error != 0)
		conn_fail(conn, RAFT_EUNAVAIL, "connect to %s: %s", name,
			  uv_strerror(conn->connect_error));
	else
		conn_fail(conn, RAFT_EUNAVAIL, "connect to %s: timed out",
			  name);
}

static void handle_response(struct kvc_conn *conn, const Kvpb__Response *m);

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct kvc_conn *conn = h->data;

	rframe_reader_alloc(&conn->reader, suggested, buf);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct kvc_conn *conn = s->data;
	const char *name = conn->client->eps[conn->ep].name;
	const uint8_t *payload;
	size_t len;
	int rv;

	(void)buf;
	if (nread == 0 || conn->state != KVC_OPEN)
		return;
	if (nread < 0) {
		conn_fail(conn, RAFT_ELEADERLOST, "connection to %s lost: %s",
			  name,
			  nread == UV_EOF ? "closed by the server"
					  : uv_strerror((int)nread));
		return;
	}
	rframe_reader_commit(&conn->reader, (size_t)nread);
	while (conn->state == KVC_OPEN &&
	       (rv = rframe_reader_next(&conn->reader, &payload, &len)) != 0) {
		Kvpb__Response *m;

		if (rv < 0) {
			conn_fail(conn, RAFT_EPROTO,
				  "%s sent a frame of %zu bytes (limit %u)",
				  name, len, KV_CLIENT_MAX_FRAME);
			return;
		}
		m = kvpb__response__unpack(NULL, len, payload);
		if (m == NULL) {
			conn_fail(conn, RAFT_EPROTO,
				  "%s sent an answer that does not decode",
				  name);
			return;
		}
		handle_response(conn, m);
		kvpb__response__free_unpacked(m, NULL);
	}
}

static void connect_cb(uv_connect_t *creq, int status)
{
	struct kvc_conn *conn = creq->data;
	const char *name = conn->client->eps[conn->ep].name;
	int rv;

	if (conn->state != KVC_CONNECTING)
		return; /* closed meanwhile (UV_ECANCELED) */
	uv_timer_stop(&conn->timer);
	if (status < 0) {
		conn_fail(conn, RAFT_EUNAVAIL, "connect to %s: %s", name,
			  uv_strerror(status));
		return;
	}
	uv_tcp_nodelay(&conn->tcp, 1);
	rv = uv_read_start((uv_stream_t *)&conn->tcp, alloc_cb, read_cb);
	if (rv != 0) {
		conn_fail(conn, RAFT_EUNAVAIL, "read from %s: %s", name,
			  uv_strerror(rv));
		return;
	}
	conn->state = KVC_OPEN;
	while (!link_empty(&conn->queued) && conn->state == KVC_OPEN) {
		struct kvc_req *req =
		    KVC_CONTAINER(conn->queued.next, struct kvc_req, pos);
		conn_send(conn, req);
	}
}

/* The open or opening connection to endpoint ep, created if needed; NULL
 * when out of memory. A connect that fails at once is reported from the
 * timer, so that callers never see requests routed under their feet. */
static struct kvc_conn *conn_get(struct kv_client *c, size_t ep)
{
	struct kvc_conn *conn = c->conns[ep];
	int rv;

	if (conn != NULL)
		return conn;
	conn = calloc(1, sizeof(*conn));
	if (conn == NULL)
		return NULL;
	conn->client = c;
	conn->ep = ep;
	conn->state = KVC_CONNECTING;
	link_init(&conn->queued);
	link_init(&conn->sent);
	rframe_reader_init(&conn->reader, KV_CLIENT_MAX_FRAME);
	uv_tcp_init(c->loop, &conn->tcp);
	uv_timer_init(c->loop, &conn->timer);
	conn->tcp.data = conn;
	conn->timer.data = conn;
	conn->connect.data = conn;
	conn->open_handles = 2;
	c->conns[ep] = conn;
	c->n_conns++;
	rv = uv_tcp_connect(&conn->connect, &conn->tcp,
			    (const struct sockaddr *)&c->eps[ep].addr,
			    connect_cb);
	if (rv != 0) {
		conn->connect_error = rv;
		uv_timer_start(&conn->timer, conn_timer_cb, 0, 0);
	} else {
		uv_timer_start(&conn->timer, conn_timer_cb,
			       c->cfg.connect_timeout_ms, 0);
	}
	return conn;
}

/* Put req on its way: onto the waiting list while backing off, else onto
 * the connection to its endpoint. */
static void route(struct kvc_req *req)
{
	struct kv_client *c = req->client;
	struct kvc_conn *conn;
	size_t ep = req->op == KVC_STATUS ? req->target : c->cur;

	req->state = KVC_REQ_WAITING;
	if (req->op != KVC_STATUS && c->backing_off) {
		link_append(&c->waiting, &req->pos);
		return;
	}
	conn = conn_get(c, ep);
	if (conn == NULL) {
		req_fail(req, RAFT_ENOMEM, false, "out of memory");
		return;
	}
	req->conn = conn;
	link_append(&conn->queued, &req->pos);
	if (conn->state == KVC_OPEN)
		conn_send(conn, req);
}

/* ---- Answers ------------------------------------------------------------ */

static struct kvc_req *conn_take(struct kvc_conn *conn, uint64_t id)
{
	struct kvc_link *l;

	/* Answers mostly come in order, so the match is usually first.
	 * TODO(client): index by id if clients keep thousands in flight on
	 * one connection with answers far out of order. */
	for (l = conn->sent.next; l != &conn->sent; l = l->next) {
		struct kvc_req *req = KVC_CONTAINER(l, struct kvc_req, pos);
		if (req->id == id) {
			link_remove(&req->pos);
			return req;
		}
	}
	return NULL;
}

static void copy_status(struct kv_client_node_status *st,
			const Kvpb__NodeStatus *m)
{
	size_t i;

	memset(st, 0, sizeof(*st));
	st->id = m->id;
	snprintf(st->role, sizeof(st->role), "%s", m->role);
	st->term = m->term;
	st->leader = m->leader;
	snprintf(st->leader_addr, sizeof(st->leader_addr), "%s",
		 m->leader_addr);
	st->commit = m->commit;
	st->applied = m->applied;
	st->last_index = m->last_index;
	st->failed = m->failed;
	for (i = 0; i < m->n_peers && i < RAFT_MAX_PEERS; i++) {
		st->peers[i].id = m->peers[i]->id;
		snprintf(st->peers[i].addr, sizeof(st->peers[i].addr), "%s",
			 m->peers[i]->addr);
		snprintf(st->peers[i].client_addr,
			 sizeof(st->peers[i].client_addr), "%s",
			 m->peers[i]->client_addr);
		st->peers[i].match = m->peers[i]->match;
		st->peers[i].connected = m->peers[i]->connected;
	}
	st->n_peers = i;
}

/* Whether a write answered with rc certainly did not take effect, or
 * certainly did. The server rejects these before proposing anything. */
static bool write_outcome_known(int rc)
{
	switch (rc) {
	case RAFT_OK:
	case RAFT_ENOTFOUND:
	case RAFT_ENOTLEADER:
	case RAFT_ETOOBIG:
	case RAFT_EINVAL:
	case RAFT_EBUSY:
		return true;
	}
	return false;
}

/* A read that failed with rc may be tried elsewhere. */
static bool read_retryable(int rc)
{
	return rc == RAFT_ENOTLEADER || rc == RAFT_ELEADERLOST ||
	       rc == RAFT_ESHUTDOWN;
}

static void handle_response(struct kvc_conn *conn, const Kvpb__Response *m)
{
	struct kv_client *c = conn->client;
	struct kvc_req *req = conn_take(conn, m->id);
	struct kv_client_node_status st;
	struct kv_client_result res;
	int hint = -1;

	if (req == NULL)
		return; /* timed out earlier */

	/* Refused before anything was proposed, or a read that may be
	 * repeated: try the leader, or another node. */
	if (req->op != KVC_STATUS &&
	    (m->code == RAFT_ENOTLEADER || m->code == RAFT_EUNAVAIL ||
	     (!req_is_write(req) && read_retryable(m->code)))) {
		if (m->leader_addr != NULL && m->leader_addr[0] != '\0')
			hint = endpoint_find_or_add(c, m->leader_addr);
		req->conn = NULL;
		req_note(req, m->code, "%s: %s", c->eps[conn->ep].name,
			 m->error != NULL && m->error[0] != '\0'
			     ? m->error
			     : raft_strerror(m->code));
		routing_failed(c, conn->ep, hint);
		route(req);
		return;
	}
	routing_succeeded(c, conn->ep);

	memset(&res, 0, sizeof(res));
	res.rc = m->code;
	res.error = m->error;
	if (m->code != RAFT_OK && (res.error == NULL || res.error[0] == '\0'))
		res.error = raft_strerror(m->code);
	res.unknown = req_is_write(req) && !write_outcome_known(m->code);
	res.value = m->value.data;
	res.value_len = m->value.len;
	res.create_index = m->create_index;
	res.mod_index = m->mod_index;
	res.version = m->version;
	if (req->op == KVC_STATUS && m->code == RAFT_OK) {
		if (m->status == NULL) {
			res.rc = RAFT_EPROTO;
			res.error = "status answer without a status";
		} else {
			copy_status(&st, m->status);
			res.status = &st;
		}
	}
	req_finish(req, &res);
}

/* ---- Deadlines ---------------------------------------------------------- */

static void deadline_cb(uv_timer_t *t);

static void deadline_arm(struct kv_client *c)
{
	struct kvc_req *head;
	uint64_t now = uv_now(c->loop);

	if (link_empty(&c->all)) {
		uv_timer_stop(&c->deadline_timer);
		return;
	}
	head = KVC_CONTAINER(c->all.next, struct kvc_req, all);
	uv_timer_start(&c->deadline_timer, deadline_cb,
		       head->deadline > now ? head->deadline - now : 0, 0);
}

static void req_expire(struct kvc_req *req)
{
	unsigned ms = req->timeout_ms;

	if (req->state == KVC_REQ_SENT) {
		bool unknown = req_is_write(req);
		req_fail(req, RAFT_ETIMEDOUT, unknown,
			 "no answer from %s within %u ms%s",
			 req->client->eps[req->conn->ep].name, ms,
			 unknown ? "; the write may or may not have been "
				   "applied"
				 : "");
	} else if (req->last_rc != 0) {
		req_fail(req, RAFT_EUNAVAIL, false,
			 "no leader reachable within %u ms (last: %s)", ms,
			 req->last_err);
	} else {
		req_fail(req, RAFT_ETIMEDOUT, false,
			 "not sent within %u ms (still connecting)", ms);
	}
}

static void deadline_cb(uv_timer_t *t)
{
	struct kv_client *c = t->data;
	uint64_t now = uv_now(c->loop);

	while (!link_empty(&c->all) && !c->closing) {
		struct kvc_req *req =
		    KVC_CONTAINER(c->all.next, struct kvc_req, all);
		if (req->deadline > now)
			break;
		req_expire(req);
	}
	if (!c->closing)
		deadline_arm(c);
}

/* ---- Public calls ------------------------------------------------------- */

void kv_client_config_init(struct kv_client_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->timeout_ms = 5000;
	cfg->connect_timeout_ms = 1000;
}

int kv_client_new(uv_loop_t *loop, const struct kv_client_config *cfg,
		  struct kv_client **out, char *errmsg, size_t errlen)
{
	struct kv_client *c;
	size_t i;
	int rv;

	if (cfg->n_endpoints == 0 ||
	    cfg->n_endpoints > KV_CLIENT_MAX_ENDPOINTS) {
		snprintf(errmsg, errlen, "want 1 to %d endpoints, got %zu",
			 KV_CLIENT_MAX_ENDPOINTS, cfg->n_endpoints);
		return RAFT_EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		snprintf(errmsg, errlen, "out of memory");
		return RAFT_ENOMEM;
	}
	for (i = 0; i < cfg->n_endpoints; i++) {
		rv = endpoint_parse(cfg->endpoints[i], &c->eps[i], errmsg,
				    errlen);
		if (rv != RAFT_OK) {
			free(c);
			return rv;
		}
	}
	c->loop = loop;
	c->cfg = *cfg;
	c->cfg.endpoints = NULL;
	if (c->cfg.timeout_ms == 0)
		c->cfg.timeout_ms = 5000;
	if (c->cfg.connect_timeout_ms == 0)
		c->cfg.connect_timeout_ms = 1000;
	c->n_eps = c->n_configured = cfg->n_endpoints;
	c->backoff_ms = BACKOFF_MIN_MS;
	c->next_id = 1;
	link_init(&c->waiting);
	link_init(&c->all);
	uv_timer_init(loop, &c->retry_timer);
	uv_timer_init(loop, &c->deadline_timer);
	uv_prepare_init(loop, &c->flusher);
	c->retry_timer.data = c;
	c->deadline_timer.data = c;
	c->flusher.data = c;
	c->open_handles = 3;
	*out = c;
	return RAFT_OK;
}

static void client_timer_closed_cb(uv_handle_t *h)
{
	struct kv_client *c = h->data;

	c->open_handles--;
	client_maybe_free(c);
}

void kv_client_close(struct kv_client *c, void (*cb)(void *arg), void *arg)
{
	size_t i;

	if (c->closing)
		return;
	c->closing = true;
	c->close_cb = cb;
	c->close_arg = arg;
	while (!link_empty(&c->all)) {
		struct kvc_req *req =
		    KVC_CONTAINER(c->all.next, struct kvc_req, all);
		bool unknown = req_is_write(req) && req->state == KVC_REQ_SENT;
		req_fail(req, RAFT_ESHUTDOWN, unknown,
			 "the client is closing%s",
			 unknown ? "; the write may or may not have been "
				   "applied"
				 : "");
	}
	for (i = 0; i < KV_CLIENT_MAX_ENDPOINTS; i++)
		if (c->conns[i] != NULL)
			conn_close(c->conns[i]);
	uv_close((uv_handle_t *)&c->retry_timer, client_timer_closed_cb);
	uv_close((uv_handle_t *)&c->deadline_timer, client_timer_closed_cb);
	uv_close((uv_handle_t *)&c->flusher, client_timer_closed_cb);
}

/* Encode m, create the request and route it. */
static int submit(struct kv_client *c, enum kvc_op op, size_t target,
		  Kvpb__Request *m, kv_client_cb cb, void *arg)
{
	struct kvc_req *req;
	struct kvc_link *pos;
	uint8_t *data;
	size_t len;
	int rv;

	if (c->closing)
		return RAFT_ESHUTDOWN;
	req = calloc(1, sizeof(*req));
	if (req == NULL)
		return RAFT_ENOMEM;
	req->frame = calloc(1, sizeof(*req->frame));
	if (req->frame == NULL) {
		rv = RAFT_ENOMEM;
		goto err_req;
	}
	m->id = c->next_id;
	rv = rframe_pack(&m->base, KV_CLIENT_MAX_FRAME, &data, &len);
	if (rv != 0)
		goto err_frame;
	req->frame->refs = 1;
	req->frame->data = data;
	req->frame->len = len;
	req->client = c;
	req->id = c->next_id++;
	req->op = op;
	req->target = target;
	req->cb = cb;
	req->arg = arg;
	req->timeout_ms = c->cfg.timeout_ms;
	req->deadline = uv_now(c->loop) + req->timeout_ms;
	link_init(&req->pos);

	/* Deadline order; usually the tail, as timeouts rarely change. */
	for (pos = c->all.prev; pos != &c->all; pos = pos->prev)
		if (KVC_CONTAINER(pos, struct kvc_req, all)->deadline <=
		    req->deadline)
			break;
	link_insert_after(pos, &req->all);
	if (c->all.next == &req->all)
		deadline_arm(c);
	c->inflight++;
	route(req);
	return RAFT_OK;

err_frame:
	free(req->frame);
err_req:
	free(req);
	return rv;
}

int kv_client_get(struct kv_client *c, const void *key, size_t klen,
		  bool serializable, kv_client_cb cb, void *arg)
{
	Kvpb__Request m = KVPB__REQUEST__INIT;
	Kvpb__GetRequest g = KVPB__GET_REQUEST__INIT;

	if (klen == 0)
		return RAFT_EINVAL;
	g.key.data = (uint8_t *)key;
	g.key.len = klen;
	g.serializable = serializable;
	m.op_case = KVPB__REQUEST__OP_GET;
	m.get = &g;
	return submit(c, KVC_GET, 0, &m, cb, arg);
}

int kv_client_put(struct kv_client *c, const void *key, size_t klen,
		  const void *val, size_t vlen, kv_client_cb cb, void *arg)
{
	Kvpb__Request m = KVPB__REQUEST__INIT;
	Kvpb__PutRequest p = KVPB__PUT_REQUEST__INIT;

	if (klen == 0)
		return RAFT_EINVAL;
	p.key.data = (uint8_t *)key;
	p.key.len = klen;
	p.value.data = (uint8_t *)val;
	p.value.len = vlen;
	m.op_case = KVPB__REQUEST__OP_PUT;
	m.put = &p;
	return submit(c, KVC_PUT, 0, &m, cb, arg);
}

int kv_client_del(struct kv_client *c, const void *key, size_t klen,
		  kv_client_cb cb, void *arg)
{
	Kvpb__Request m = KVPB__REQUEST__INIT;
	Kvpb__DeleteRequest d = KVPB__DELETE_REQUEST__INIT;

	if (klen == 0)
		return RAFT_EINVAL;
	d.key.data = (uint8_t *)key;
	d.key.len = klen;
	m.op_case = KVPB__REQUEST__OP_DEL;
	m.del = &d;
	return submit(c, KVC_DEL, 0, &m, cb, arg);
}

int kv_client_status(struct kv_client *c, size_t ep, kv_client_cb cb, void *arg)
{
	Kvpb__Request m = KVPB__REQUEST__INIT;
	Kvpb__StatusRequest s = KVPB__STATUS_REQUEST__INIT;

	if (ep >= c->n_eps)
		return RAFT_EINVAL;
	m.op_case = KVPB__REQUEST__OP_STATUS;
	m.status = &s;
	return submit(c, KVC_STATUS, ep, &m, cb, arg);
}

size_t kv_client_n_endpoints(const struct kv_client *c)
{
	return c->n_eps;
}

const char *kv_client_endpoint(const struct kv_client *c, size_t ep)
{
	return ep < c->n_eps ? c->eps[ep].name : NULL;
}

void kv_client_set_timeout(struct kv_client *c, unsigned timeout_ms)
{
	c->cfg.timeout_ms = timeout_ms != 0 ? timeout_ms : 5000;
}

size_t kv_client_inflight(const struct kv_client *c)
{
	return c->inflight;
}
