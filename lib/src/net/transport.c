/* The TCP transport between Raft peers. Overview, happy path and failure
 * modes are in transport.h; the wire format in docs/protocol.md.
 *
 * An outbound peer connection moves through these states:
 *
 *         peer_dial_cb     peer_resolved_cb      peer_connected_cb
 *   IDLE ------------> RESOLVING -----> CONNECTING -----> HANDSHAKING
 *    ^ ^  (numeric address: straight to CONNECTING)           |
 *    | |                       | fails         fails |        | answer ok
 *    | +-- peer_schedule() ----+                     v        v
 *    +---- peer_closed_cb --- CLOSING <---------- peer_fail <-- UP
 *                                                         fails
 *
 *   IDLE         no handle; the backoff timer is armed.
 *   RESOLVING    uv_getaddrinfo is running; no tcp handle.
 *   CONNECTING   the tcp handle is open and uv_tcp_connect in flight.
 *   HANDSHAKING  our Handshake is queued or written; waiting for the answer.
 *   UP           rnet_send() queues frames; the only state that accepts
 *                messages. Reported to rnet_peer_cb on entry and on exit.
 *   CLOSING      uv_close() is in flight; peer_closed_cb frees the queue's
 *                last buffers and arms the timer (or finishes rnet_close).
 *
 * Inbound connections (struct conn) are simpler: the first frame must be an
 * acceptable Handshake, which is answered; every later frame is a Message
 * handed to rnet_recv_cb. Any fault closes the connection.
 *
 * Invariants:
 *   1. p->q_bytes is the sum of the lengths of p->q[0 .. p->q_len) and never
 *      exceeds max_queue_bytes;
 *   2. p->q[0 .. p->w_n) are being written by p->write; they are freed only
 *      in peer_write_cb;
 *   3. n->pending counts open handles and running uv_getaddrinfo requests;
 *      rnet_close() finishes when it drops to 0.
 */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include "net/frame.h"
#include "net/transport.h"
#include "proto/raft.pb-c.h"

/* The handshake answer is small; anything bigger is a broken peer. */
#define HANDSHAKE_MAX_FRAME 4096

/* Buffers handed to one uv_write; IOV_MAX is 1024 on Linux. */
#define MAX_WRITE_BUFS 256

#define KEEPALIVE_DELAY_S 10

enum peer_state {
	PEER_IDLE,
	PEER_RESOLVING,
	PEER_CONNECTING,
	PEER_HANDSHAKING,
	PEER_UP,
	PEER_CLOSING,
};

struct peer {
	struct rnet *net;
	raft_id id;
	char addr[sizeof(((struct raft_member *)0)->addr)];
	enum peer_state state;
	uv_timer_t timer;
	uv_getaddrinfo_t gai;
	uv_tcp_t tcp;
	uv_connect_t connect;
	struct rframe_reader reader; /* the handshake answer */

	uv_buf_t *q; /* encoded frames, oldest first */
	size_t q_len, q_cap;
	size_t q_bytes;
	uv_write_t write;
	size_t w_n; /* frames at the front of q being written */

	unsigned backoff_ms;
	uint64_t dialled_at;		 /* loop time the connect started */
	const char *fail_reason;	 /* for peer_deferred_fail_cb */
	char client_addr[RNET_ADDR_MAX]; /* "" when none advertised */
	char refusal[128]; /* the last refusal logged, to log each once */
#ifdef RNET_FAULT_HOOKS
	uv_buf_t held;	  /* a frame held back, to be sent out of order */
	uint64_t held_at; /* loop time it was held */
#endif
};

/* An inbound connection. */
struct conn {
	struct rnet *net;
	struct conn *prev, *next;
	uv_tcp_t tcp;
	struct rframe_reader reader;
	raft_id peer; /* 0 until the handshake is accepted */
	bool closing;
	bool refused; /* close once the refusal is written */
	uv_write_t write;
	uint8_t *answer;      /* the handshake answer being written */
	uint64_t accepted_at; /* loop time */
	char remote[RNET_ADDR_MAX];
};

struct rnet {
	uv_loop_t *loop;
	raft_id self;
	uint64_t cluster_id;
	size_t max_frame;
	size_t max_queue_bytes;
	unsigned reconnect_min_ms, reconnect_max_ms;
	unsigned handshake_timeout_ms, send_timeout_ms;
	uint64_t rng;
	raft_log_fn log;
	void *log_data;
	rnet_recv_cb recv;
	rnet_peer_cb peer_cb;
	void *data;

	char client_addr[RNET_ADDR_MAX];
	char bound_addr[RNET_ADDR_MAX];
	uv_tcp_t listener;
	uv_timer_t sweep; /* enforces handshake_timeout_ms */
	struct peer *peers;
	size_t n_peers;
	struct conn *conns;
	unsigned n_unhandshaken; /* inbound connections with peer 0 */

	struct raft_entry *scratch; /* entries of the message being received */
	size_t scratch_cap;

	bool closing;
	unsigned pending;
	void (*close_cb)(void *arg);
	void *close_arg;
#ifdef RNET_FAULT_HOOKS
	struct net_faults {
		unsigned reorder_pct, dup_pct; /* 0 when off */
		uint64_t rng;
		uint64_t held, held_timeout, dups, dropped;
	} faults;
#endif
};

static void netlog(struct rnet *n, enum raft_log_level level, const char *fmt,
		   ...)
{
	char line[512];
	va_list ap;

	if (n->log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	n->log(n->log_data, level, line);
}

static void set_err(char *errmsg, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errmsg == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errmsg, errlen, fmt, ap);
	va_end(ap);
}

/* splitmix64: jitter only, so any decent mixer will do. */
static uint64_t net_rand(struct rnet *n)
{
	uint64_t z = (n->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

#ifdef RNET_FAULT_HOOKS
/* Fault hooks of test builds (-DRNET_FAULT_HOOKS, never in a normal
 * build): message reordering and duplication between peers, which TCP
 * alone never shows the receiver.
 *
 * Read once at rnet_start from the environment:
 *   RNET_FAULT_REORDER_PCT  0..100: chance that an outgoing message is held
 *                           back and sent right after the next message to
 *                           the same peer, or on the first sweep tick once
 *                           it has waited FAULT_HOLD_MS;
 *   RNET_FAULT_DUP_PCT      0..100: chance that a frame is queued twice;
 *   RNET_FAULT_SEED         seed of the fault choices (default 1).
 * At most one frame per peer is held, so memory stays bounded; a held
 * frame is lost only where its queue would be (the connection fails).
 * The counters are logged when the transport closes. */
#define FAULT_HOLD_MS 20

static unsigned fault_pct(const char *name)
{
	const char *v = getenv(name);
	char *end;
	unsigned long x;

	if (v == NULL || *v == '\0')
		return 0;
	errno = 0;
	x = strtoul(v, &end, 10);
	if (errno != 0 || *end != '\0' || x > 100)
		return 0;
	return (unsigned)x;
}

static void faults_init(struct rnet *n)
{
	struct net_faults *f = &n->faults;
	const char *seed = getenv("RNET_FAULT_SEED");

	f->reorder_pct = fault_pct("RNET_FAULT_REORDER_PCT");
	f->dup_pct = fault_pct("RNET_FAULT_DUP_PCT");
	f->rng = (seed != NULL ? strtoull(seed, NULL, 10) : 1) ^
		 (n->self * 0x9e3779b97f4a7c15ull);
	if (f->rng == 0)
		f->rng = 1;
	netlog(n, RAFT_LOG_WARN,
	       "msg=\"transport fault hooks active\" reorder_pct=%u "
	       "dup_pct=%u hold_ms=%d",
	       f->reorder_pct, f->dup_pct, FAULT_HOLD_MS);
}

/* True with probability pct percent (xorshift64). */
static bool fault_roll(struct rnet *n, unsigned pct)
{
	uint64_t x = n->faults.rng;

	if (pct == 0)
		return false;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	n->faults.rng = x;
	return x % 100 < pct;
}

static void faults_log(struct rnet *n)
{
	struct net_faults *f = &n->faults;

	netlog(n, RAFT_LOG_WARN,
	       "msg=\"transport fault counters\" held=%" PRIu64
	       " sent_after_next=%" PRIu64 " sent_after_wait=%" PRIu64
	       " held_dropped=%" PRIu64 " duplicated=%" PRIu64,
	       f->held, f->held - f->held_timeout - f->dropped, f->held_timeout,
	       f->dropped, f->dups);
}
#endif

/* Split "host:port" or "[v6]:port". Returns false if it does not parse. */
static bool split_addr(const char *addr, char *host, size_t hostlen, int *port)
{
	const char *colon = strrchr(addr, ':');
	const char *h = addr;
	size_t len;
	char *end;
	long v;

	if (colon == NULL || colon[1] == '\0')
		return false;
	len = (size_t)(colon - addr);
	if (len >= 2 && addr[0] == '[' && addr[len - 1] == ']') {
		h = addr + 1;
		len -= 2;
	}
	if (len == 0 || len >= hostlen)
		return false;
	v = strtol(colon + 1, &end, 10);
	if (*end != '\0' || v < 0 || v > 65535)
		return false;
	memcpy(host, h, len);
	host[len] = '\0';
	*port = (int)v;
	return true;
}

/* A numeric address, or false. */
static bool numeric_addr(const char *host, int port,
			 struct sockaddr_storage *sa)
{
	memset(sa, 0, sizeof(*sa));
	if (uv_ip4_addr(host, port, (struct sockaddr_in *)sa) == 0)
		return true;
	return uv_ip6_addr(host, port, (struct sockaddr_in6 *)sa) == 0;
}

static void format_sockaddr(const struct sockaddr *sa, char *out, size_t len)
{
	char ip[64] = "?";
	int port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		uv_ip4_name(in, ip, sizeof(ip));
		port = ntohs(in->sin_port);
		snprintf(out, len, "%s:%d", ip, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 =
		    (const struct sockaddr_in6 *)sa;
		uv_ip6_name(in6, ip, sizeof(ip));
		port = ntohs(in6->sin6_port);
		snprintf(out, len, "[%s]:%d", ip, port);
	} else {
		snprintf(out, len, "?");
	}
}

static struct peer *find_peer(struct rnet *n, raft_id id)
{
	size_t i;

	for (i = 0; i < n->n_peers; i++)
		if (n->peers[i].id == id)
			return &n->peers[i];
	return NULL;
}

/* Copy a peer's advertised client address, if it fits and is printable. */
static bool valid_client_addr(const char *s)
{
	size_t i, len = s != NULL ? strlen(s) : 0;

	if (len >= RNET_ADDR_MAX)
		return false;
	for (i = 0; i < len; i++)
		if (s[i] <= ' ' || s[i] > '~' || s[i] == '"' || s[i] == '\\')
			return false;
	return true;
}

/* Copy a peer-supplied string for a log line: quotes, backslashes and
 * non-printable bytes become '?', so that it cannot forge log fields. */
static void copy_printable(char *dst, size_t len, const char *src)
{
	size_t i;

	for (i = 0; i + 1 < len && src[i] != '\0'; i++) {
		char c = src[i];
		bool plain = c >= ' ' && c <= '~' && c != '"' && c != '\\';
		dst[i] = plain ? c : '?';
	}
	dst[i] = '\0';
}

/* Last step of rnet_close(): everything is closed. */
static void net_maybe_finish(struct rnet *n)
{
	void (*cb)(void *arg);
	void *arg;
	size_t i;

	if (!n->closing || n->pending > 0)
		return;
	cb = n->close_cb;
	arg = n->close_arg;
	for (i = 0; i < n->n_peers; i++) {
		free(n->peers[i].q);
#ifdef RNET_FAULT_HOOKS
		free(n->peers[i].held.base);
#endif
	}
	free(n->peers);
	free(n->scratch);
	free(n);
	if (cb != NULL)
		cb(arg);
}

/* Encode our Handshake, as dialler or acceptor (with error when refusing). */
static int handshake_pack(struct rnet *n, const char *error, uint8_t **out,
			  size_t *len)
{
	Raftpb__Handshake hs = RAFTPB__HANDSHAKE__INIT;

	hs.magic = RNET_MAGIC;
	hs.version = RNET_PROTOCOL_VERSION;
	hs.cluster_id = n->cluster_id;
	hs.node_id = n->self;
	hs.client_addr = n->client_addr;
	if (error != NULL)
		hs.error = (char *)error;
	return rframe_pack(&hs.base, HANDSHAKE_MAX_FRAME, out, len);
}

/* What is wrong with a received Handshake, or NULL. */
static const char *handshake_check(struct rnet *n, const Raftpb__Handshake *hs)
{
	if (hs->magic != RNET_MAGIC)
		return "bad magic";
	if (hs->version != RNET_PROTOCOL_VERSION)
		return "unsupported protocol version";
	if (hs->cluster_id != n->cluster_id)
		return "wrong cluster id";
	if (hs->node_id == n->self)
		return "own node id";
	if (find_peer(n, hs->node_id) == NULL)
		return "unknown node id";
	if (!valid_client_addr(hs->client_addr))
		return "bad client address";
	return NULL;
}

/* ---- outbound connections ---------------------------------------------- */

static void peer_flush(struct peer *p);
static void peer_fail(struct peer *p, enum raft_log_level level,
		      const char *reason);

static void peer_dial_cb(uv_timer_t *t);

/* Dial again in delay_ms. */
static void peer_schedule(struct peer *p, unsigned delay_ms)
{
	p->state = PEER_IDLE;
	uv_timer_start(&p->timer, peer_dial_cb, delay_ms, 0);
}

/* The next delay: backoff_ms less up to half of it (jitter, so that peers
 * do not dial in lockstep); backoff_ms doubles up to the maximum. */
static unsigned peer_next_backoff(struct peer *p)
{
	struct rnet *n = p->net;
	unsigned b = p->backoff_ms;
	unsigned delay = b / 2 + (unsigned)(net_rand(n) % (b / 2 + 1));

	p->backoff_ms =
	    b >= n->reconnect_max_ms / 2 ? n->reconnect_max_ms : b * 2;
	return delay;
}

/* Free every queued frame that is not being written. */
static void peer_drop_queue(struct peer *p)
{
	size_t i;

	for (i = p->w_n; i < p->q_len; i++) {
		p->q_bytes -= p->q[i].len;
		free(p->q[i].base);
	}
	p->q_len = p->w_n;
#ifdef RNET_FAULT_HOOKS
	if (p->held.base != NULL) {
		free(p->held.base);
		p->held = uv_buf_init(NULL, 0);
		p->net->faults.dropped++;
	}
#endif
}

static void peer_closed_cb(uv_handle_t *h)
{
	struct peer *p = h->data;
	struct rnet *n = p->net;

	assert(p->w_n == 0 && p->q_len == 0 && p->q_bytes == 0);
	rframe_reader_free(&p->reader);
	n->pending--;
	if (n->closing) {
		net_maybe_finish(n);
		return;
	}
	peer_schedule(p, peer_next_backoff(p));
}

/* Tear the connection down. Logs the transition once: at info when an UP
 * connection is lost, at warn for a new kind of refusal, else at debug. */
static void peer_fail(struct peer *p, enum raft_log_level level,
		      const char *reason)
{
	struct rnet *n = p->net;
	bool was_up = p->state == PEER_UP;

	assert(p->state == PEER_CONNECTING || p->state == PEER_HANDSHAKING ||
	       p->state == PEER_UP);
	p->state = PEER_CLOSING;
	peer_drop_queue(p);
	uv_close((uv_handle_t *)&p->tcp, peer_closed_cb);

	if (was_up) {
		netlog(n, RAFT_LOG_INFO,
		       "msg=\"peer disconnected\" peer=%" PRIu64
		       " addr=%s reason=\"%s\"",
		       p->id, p->addr, reason);
		if (n->peer_cb != NULL && !n->closing)
			n->peer_cb(n->data, p->id, false,
				   p->client_addr[0] ? p->client_addr : NULL);
	} else if (level >= RAFT_LOG_WARN &&
		   strncmp(p->refusal, reason, sizeof(p->refusal)) != 0) {
		snprintf(p->refusal, sizeof(p->refusal), "%s", reason);
		netlog(n, level,
		       "msg=\"peer handshake failed\" peer=%" PRIu64
		       " addr=%s reason=\"%s\"",
		       p->id, p->addr, reason);
	} else {
		netlog(n, RAFT_LOG_DEBUG,
		       "msg=\"dial failed\" peer=%" PRIu64
		       " addr=%s reason=\"%s\"",
		       p->id, p->addr, reason);
	}
}

static void peer_write_cb(uv_write_t *req, int status)
{
	struct peer *p = req->data;
	size_t i;

	for (i = 0; i < p->w_n; i++) {
		p->q_bytes -= p->q[i].len;
		free(p->q[i].base);
	}
	memmove(p->q, p->q + p->w_n, (p->q_len - p->w_n) * sizeof(*p->q));
	p->q_len -= p->w_n;
	p->w_n = 0;

	if (p->state != PEER_HANDSHAKING && p->state != PEER_UP) {
		/* Closing: the rest of the queue is already dropped. */
		return;
	}
	if (status < 0) {
		peer_fail(p, RAFT_LOG_DEBUG, uv_strerror(status));
		return;
	}
	peer_flush(p);
}

static void peer_deferred_fail_cb(uv_timer_t *t)
{
	struct peer *p = t->data;

	if (p->state == PEER_HANDSHAKING || p->state == PEER_UP)
		peer_fail(p, RAFT_LOG_DEBUG, p->fail_reason);
}

/* Start one vectored write of everything queued, if none is running. */
static void peer_flush(struct peer *p)
{
	size_t n = p->q_len < MAX_WRITE_BUFS ? p->q_len : MAX_WRITE_BUFS;
	int rv;

	if (p->w_n > 0 || n == 0)
		return;
	p->w_n = n;
	p->write.data = p;
	rv = uv_write(&p->write, (uv_stream_t *)&p->tcp, p->q, (unsigned)n,
		      peer_write_cb);
	if (rv != 0) {
		/* Fail from the loop, not from inside rnet_send(), so that
		 * rnet_peer_cb never runs within a call into the transport. */
		p->w_n = 0;
		p->fail_reason = uv_strerror(rv);
		uv_timer_start(&p->timer, peer_deferred_fail_cb, 0, 0);
	}
}

/* Append a frame (ownership passes to the queue) and start writing. */
static int peer_enqueue(struct peer *p, uint8_t *frame, size_t len)
{
	if (p->q_len == p->q_cap) {
		size_t cap = p->q_cap > 0 ? p->q_cap * 2 : 16;
		uv_buf_t *q = realloc(p->q, cap * sizeof(*q));
		if (q == NULL) {
			free(frame);
			return RAFT_ENOMEM;
		}
		p->q = q;
		p->q_cap = cap;
	}
	p->q[p->q_len++] = uv_buf_init((char *)frame, (unsigned)len);
	p->q_bytes += len;
	peer_flush(p);
	return RAFT_OK;
}

#ifdef RNET_FAULT_HOOKS
/* Queue the frame held back, if any. */
static int peer_release_held(struct peer *p)
{
	uv_buf_t h = p->held;

	if (h.base == NULL)
		return RAFT_OK;
	p->held = uv_buf_init(NULL, 0);
	return peer_enqueue(p, (uint8_t *)h.base, h.len);
}

/* peer_enqueue with the fault hooks: a frame may be held back until the
 * next one is queued (which releases it right after itself), and may be
 * queued twice. */
static int peer_send_frame(struct peer *p, uint8_t *frame, size_t len)
{
	struct rnet *n = p->net;
	uint8_t *copy = NULL;
	int rc;

	if (fault_roll(n, n->faults.dup_pct)) {
		copy = malloc(len);
		if (copy != NULL) {
			memcpy(copy, frame, len);
			n->faults.dups++;
		}
	}
	if (p->held.base == NULL && fault_roll(n, n->faults.reorder_pct)) {
		p->held = uv_buf_init((char *)frame, (unsigned)len);
		p->held_at = uv_now(n->loop);
		n->faults.held++;
		rc = RAFT_OK;
	} else {
		rc = peer_enqueue(p, frame, len);
		if (rc == RAFT_OK && peer_release_held(p) != RAFT_OK)
			n->faults.dropped++;
	}
	if (copy != NULL) {
		if (rc != RAFT_OK)
			free(copy);
		else if (peer_enqueue(p, copy, len) != RAFT_OK)
			n->faults.dups--;
	}
	return rc;
}
#endif

/* The acceptor's answer to our Handshake. */
static void peer_handle_answer(struct peer *p, const uint8_t *buf, size_t len)
{
	struct rnet *n = p->net;
	Raftpb__Handshake *hs = raftpb__handshake__unpack(NULL, len, buf);
	char reason[160];

	if (hs == NULL) {
		peer_fail(p, RAFT_LOG_WARN, "undecodable handshake answer");
		return;
	}
	if (hs->error != NULL && hs->error[0] != '\0') {
		copy_printable(reason, sizeof(reason), hs->error);
		goto refused;
	}
	if (hs->magic != RNET_MAGIC || hs->version != RNET_PROTOCOL_VERSION) {
		snprintf(reason, sizeof(reason),
			 "answered with protocol version %" PRIu32,
			 hs->version);
		goto refused;
	}
	if (hs->cluster_id != n->cluster_id) {
		snprintf(reason, sizeof(reason),
			 "answered with cluster id %" PRIu64, hs->cluster_id);
		goto refused;
	}
	if (hs->node_id != p->id) {
		snprintf(reason, sizeof(reason), "answered as node %" PRIu64,
			 hs->node_id);
		goto refused;
	}
	if (!valid_client_addr(hs->client_addr)) {
		snprintf(reason, sizeof(reason), "bad client address");
		goto refused;
	}

	snprintf(p->client_addr, sizeof(p->client_addr), "%s",
		 hs->client_addr != NULL ? hs->client_addr : "");
	raftpb__handshake__free_unpacked(hs, NULL);
	p->state = PEER_UP;
	p->backoff_ms = n->reconnect_min_ms;
	p->refusal[0] = '\0';
	netlog(n, RAFT_LOG_INFO,
	       "msg=\"peer connected\" peer=%" PRIu64 " addr=%s client_addr=%s",
	       p->id, p->addr, p->client_addr[0] ? p->client_addr : "-");
	if (n->peer_cb != NULL)
		n->peer_cb(n->data, p->id, true,
			   p->client_addr[0] ? p->client_addr : NULL);
	return;

refused:
	raftpb__handshake__free_unpacked(hs, NULL);
	peer_fail(p, RAFT_LOG_WARN, reason);
}

static void peer_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct peer *p = h->data;

	rframe_reader_alloc(&p->reader, suggested, buf);
}

static void peer_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct peer *p = s->data;
	const uint8_t *frame;
	size_t len;
	int rc;

	if (nread == 0)
		return;
	if (nread < 0) {
		peer_fail(p, RAFT_LOG_DEBUG,
			  nread == UV_EOF ? "closed by peer"
					  : uv_strerror((int)nread));
		return;
	}
	rframe_reader_commit(&p->reader, (size_t)nread);
	rc = rframe_reader_next(&p->reader, &frame, &len);
	if (rc == 0)
		return;
	if (rc < 0) {
		peer_fail(p, RAFT_LOG_WARN, "oversize handshake answer");
		return;
	}
	if (p->state != PEER_HANDSHAKING) {
		/* The acceptor never sends after its answer. */
		peer_fail(p, RAFT_LOG_WARN, "unexpected frame from acceptor");
		return;
	}
	peer_handle_answer(p, frame, len);
	if (p->state == PEER_UP && rframe_reader_pending(&p->reader) > 0)
		peer_fail(p, RAFT_LOG_WARN, "unexpected frame from acceptor");
}

/* Without this, a peer behind a partition holds the connection (and a
 * full queue) until TCP gives up retransmitting, about 15 minutes. */
static void peer_set_send_timeout(struct peer *p)
{
	unsigned ms = p->net->send_timeout_ms;
	uv_os_fd_t fd;

	if (uv_fileno((uv_handle_t *)&p->tcp, &fd) == 0)
		setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms));
}

static void peer_connected_cb(uv_connect_t *req, int status)
{
	struct peer *p = req->data;
	uint8_t *hs;
	size_t len;
	int rv;

	if (status == UV_ECANCELED)
		return; /* closed meanwhile */
	if (status < 0) {
		peer_fail(p, RAFT_LOG_DEBUG, uv_strerror(status));
		return;
	}
	p->state = PEER_HANDSHAKING;
	uv_tcp_nodelay(&p->tcp, 1);
	uv_tcp_keepalive(&p->tcp, 1, KEEPALIVE_DELAY_S);
	peer_set_send_timeout(p);
	rframe_reader_init(&p->reader, HANDSHAKE_MAX_FRAME);
	rv = uv_read_start((uv_stream_t *)&p->tcp, peer_alloc_cb, peer_read_cb);
	if (rv != 0) {
		peer_fail(p, RAFT_LOG_DEBUG, uv_strerror(rv));
		return;
	}
	if (handshake_pack(p->net, NULL, &hs, &len) != 0) {
		peer_fail(p, RAFT_LOG_ERROR, "out of memory");
		return;
	}
	if (peer_enqueue(p, hs, len) != 0)
		peer_fail(p, RAFT_LOG_ERROR, "out of memory");
}

static void peer_connect(struct peer *p, const struct sockaddr *sa)
{
	struct rnet *n = p->net;
	int rv;

	rv = uv_tcp_init(n->loop, &p->tcp);
	if (rv != 0) {
		netlog(n, RAFT_LOG_ERROR,
		       "msg=\"cannot create socket\" peer=%" PRIu64
		       " reason=\"%s\"",
		       p->id, uv_strerror(rv));
		peer_schedule(p, peer_next_backoff(p));
		return;
	}
	n->pending++;
	p->tcp.data = p;
	p->connect.data = p;
	p->state = PEER_CONNECTING;
	p->dialled_at = uv_now(n->loop);
	rv = uv_tcp_connect(&p->connect, &p->tcp, sa, peer_connected_cb);
	if (rv != 0)
		peer_fail(p, RAFT_LOG_DEBUG, uv_strerror(rv));
}

static void peer_resolved_cb(uv_getaddrinfo_t *req, int status,
			     struct addrinfo *res)
{
	struct peer *p = req->data;
	struct rnet *n = p->net;

	n->pending--;
	if (n->closing) {
		uv_freeaddrinfo(res);
		net_maybe_finish(n);
		return;
	}
	if (status < 0 || res == NULL) {
		netlog(n, RAFT_LOG_DEBUG,
		       "msg=\"dial failed\" peer=%" PRIu64
		       " addr=%s reason=\"%s\"",
		       p->id, p->addr, uv_strerror(status));
		uv_freeaddrinfo(res);
		peer_schedule(p, peer_next_backoff(p));
		return;
	}
	/* TODO(net): only the first address is tried; a host name that
	 * resolves to several should fall through them on failure. */
	peer_connect(p, res->ai_addr);
	uv_freeaddrinfo(res);
}

static void peer_dial_cb(uv_timer_t *t)
{
	struct peer *p = t->data;
	struct rnet *n = p->net;
	struct sockaddr_storage sa;
	struct addrinfo hints;
	char host[sizeof(p->addr)], port[8];
	int iport, rv;

	/* Checked at start. */
	if (!split_addr(p->addr, host, sizeof(host), &iport))
		abort();
	if (numeric_addr(host, iport, &sa)) {
		peer_connect(p, (struct sockaddr *)&sa);
		return;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%d", iport);
	p->gai.data = p;
	p->state = PEER_RESOLVING;
	rv = uv_getaddrinfo(n->loop, &p->gai, peer_resolved_cb, host, port,
			    &hints);
	if (rv != 0) {
		peer_schedule(p, peer_next_backoff(p));
		return;
	}
	n->pending++;
}

/* ---- inbound connections ----------------------------------------------- */

static void conn_closed_cb(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct rnet *n = c->net;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		n->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	if (c->peer == 0)
		n->n_unhandshaken--;
	rframe_reader_free(&c->reader);
	free(c->answer);
	free(c);
	n->pending--;
	net_maybe_finish(n);
}

static void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
}

/* Close c for a protocol fault, with one log line. */
static void conn_reject(struct conn *c, const char *what, const char *detail)
{
	netlog(c->net, RAFT_LOG_WARN,
	       "msg=\"closed peer connection\" peer=%" PRIu64
	       " remote=%s reason=\"%s\"%s",
	       c->peer, c->remote, what, detail);
	conn_close(c);
}

static void conn_answer_written_cb(uv_write_t *req, int status)
{
	struct conn *c = req->data;

	free(c->answer);
	c->answer = NULL;
	if (status < 0 || c->refused)
		conn_close(c);
}

static void conn_answer(struct conn *c, const char *error)
{
	size_t len;
	uv_buf_t b;

	if (handshake_pack(c->net, error, &c->answer, &len) != 0) {
		conn_close(c);
		return;
	}
	b = uv_buf_init((char *)c->answer, (unsigned)len);
	c->write.data = c;
	if (uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1,
		     conn_answer_written_cb) != 0)
		conn_close(c);
}

static void conn_handle_handshake(struct conn *c, const uint8_t *buf,
				  size_t len)
{
	struct rnet *n = c->net;
	Raftpb__Handshake *hs = raftpb__handshake__unpack(NULL, len, buf);
	const char *why;
	struct peer *p;
	struct conn *o;

	if (hs == NULL) {
		conn_reject(c, "undecodable handshake", "");
		return;
	}
	why = handshake_check(n, hs);
	if (why != NULL) {
		netlog(n, RAFT_LOG_WARN,
		       "msg=\"refused peer\" peer=%" PRIu64
		       " remote=%s reason=\"%s\" cluster_id=%" PRIu64
		       " version=%" PRIu32,
		       hs->node_id, c->remote, why, hs->cluster_id,
		       hs->version);
		raftpb__handshake__free_unpacked(hs, NULL);
		c->refused = true;
		uv_read_stop((uv_stream_t *)&c->tcp);
		conn_answer(c, why);
		return;
	}
	c->peer = hs->node_id;
	n->n_unhandshaken--;
	c->reader.max_frame = n->max_frame;
	p = find_peer(n, c->peer);
	snprintf(p->client_addr, sizeof(p->client_addr), "%s",
		 hs->client_addr != NULL ? hs->client_addr : "");
	raftpb__handshake__free_unpacked(hs, NULL);

	/* A peer has one outbound connection: an older one from it is dead
	 * even if TCP has not noticed yet. */
	for (o = n->conns; o != NULL; o = o->next)
		if (o != c && o->peer == c->peer && !o->closing) {
			netlog(n, RAFT_LOG_DEBUG,
			       "msg=\"replaced peer connection\" peer=%" PRIu64
			       " remote=%s",
			       o->peer, o->remote);
			conn_close(o);
		}
	netlog(n, RAFT_LOG_DEBUG,
	       "msg=\"accepted peer\" peer=%" PRIu64 " remote=%s", c->peer,
	       c->remote);
	conn_answer(c, NULL);
}

/* Decode one Message and hand it over. */
static void conn_handle_message(struct conn *c, const uint8_t *buf, size_t len)
{
	struct rnet *n = c->net;
	Raftpb__Message *pm = raftpb__message__unpack(NULL, len, buf);
	struct raft_msg m;
	char detail[64];
	size_t i;

	if (pm == NULL) {
		conn_reject(c, "undecodable message", "");
		return;
	}
	if ((int)pm->type < RAFT_MSG_APPEND ||
	    (int)pm->type > RAFT_MSG_TIMEOUT_NOW) {
		snprintf(detail, sizeof(detail), " type=%d", (int)pm->type);
		conn_reject(c, "unknown message type", detail);
		goto out;
	}
	if (pm->from != c->peer || pm->to != n->self) {
		snprintf(detail, sizeof(detail),
			 " from=%" PRIu64 " to=%" PRIu64, pm->from, pm->to);
		conn_reject(c, "message not between handshaken nodes", detail);
		goto out;
	}
	if (pm->n_entries > n->scratch_cap) {
		struct raft_entry *e =
		    realloc(n->scratch, pm->n_entries * sizeof(*e));
		if (e == NULL) {
			conn_reject(c, "out of memory", "");
			goto out;
		}
		n->scratch = e;
		n->scratch_cap = pm->n_entries;
	}
	for (i = 0; i < pm->n_entries; i++) {
		const Raftpb__Entry *pe = pm->entries[i];
		if ((int)pe->type != RAFT_ENTRY_COMMAND &&
		    (int)pe->type != RAFT_ENTRY_NOOP) {
			snprintf(detail, sizeof(detail), " entry_type=%d",
				 (int)pe->type);
			conn_reject(c, "unknown entry type", detail);
			goto out;
		}
		n->scratch[i] = (struct raft_entry){
		    .term = pe->term,
		    .index = pe->index,
		    .type = (uint8_t)pe->type,
		    .data = pe->data.len > 0 ? pe->data.data : NULL,
		    .len = pe->data.len,
		};
	}
	m = (struct raft_msg){
	    .type = (enum raft_msg_type)pm->type,
	    .from = pm->from,
	    .to = pm->to,
	    .term = pm->term,
	    .index = pm->index,
	    .log_term = pm->log_term,
	    .commit = pm->commit,
	    .entries = pm->n_entries > 0 ? n->scratch : NULL,
	    .n_entries = pm->n_entries,
	    .reject = pm->reject,
	    .hint_index = pm->hint_index,
	    .hint_term = pm->hint_term,
	    .context = pm->context,
	};
	if (n->recv != NULL)
		n->recv(n->data, &m);
out:
	raftpb__message__free_unpacked(pm, NULL);
}

static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;

	rframe_reader_alloc(&c->reader, suggested, buf);
}

static void conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	struct rnet *n = c->net;
	const uint8_t *frame;
	char detail[64];
	size_t len;
	int rc;

	if (nread == 0)
		return;
	if (nread < 0) {
		size_t left = rframe_reader_pending(&c->reader);
		if (nread == UV_EOF && left > 0) {
			snprintf(detail, sizeof(detail), " bytes=%zu", left);
			conn_reject(c, "truncated frame", detail);
		} else if (nread == UV_EOF) {
			netlog(n, RAFT_LOG_DEBUG,
			       "msg=\"peer connection closed\" peer=%" PRIu64
			       " remote=%s",
			       c->peer, c->remote);
			conn_close(c);
		} else if (nread == UV_ENOBUFS) {
			conn_reject(c, "out of memory", "");
		} else {
			netlog(n, RAFT_LOG_DEBUG,
			       "msg=\"peer connection failed\" peer=%" PRIu64
			       " remote=%s reason=\"%s\"",
			       c->peer, c->remote, uv_strerror((int)nread));
			conn_close(c);
		}
		return;
	}
	rframe_reader_commit(&c->reader, (size_t)nread);
	while (!c->closing && !c->refused && !n->closing) {
		rc = rframe_reader_next(&c->reader, &frame, &len);
		if (rc == 0)
			break;
		if (rc < 0) {
			snprintf(detail, sizeof(detail), " length=%zu max=%zu",
				 len, c->reader.max_frame);
			conn_reject(c, "oversize frame", detail);
			break;
		}
		if (c->peer == 0)
			conn_handle_handshake(c, frame, len);
		else
			conn_handle_message(c, frame, len);
	}
}

static void net_accept_cb(uv_stream_t *server, int status)
{
	struct rnet *n = server->data;
	struct sockaddr_storage sa;
	int salen = sizeof(sa);
	struct conn *c;

	if (status < 0) {
		netlog(n, RAFT_LOG_WARN, "msg=\"accept failed\" reason=\"%s\"",
		       uv_strerror(status));
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		/* TODO(net): libuv stops accepting until uv_accept() is
		 * called, so running out of memory here stalls the listener;
		 * accepting into a preallocated spare would avoid that. */
		netlog(n, RAFT_LOG_ERROR,
		       "msg=\"accept failed\" "
		       "reason=\"out of memory\"");
		return;
	}
	c->net = n;
	c->tcp.data = c;
	c->accepted_at = uv_now(n->loop);
	uv_tcp_init(n->loop, &c->tcp);
	n->pending++;
	n->n_unhandshaken++;
	c->next = n->conns;
	if (n->conns != NULL)
		n->conns->prev = c;
	n->conns = c;
	/* Until the handshake is accepted, frames are tiny. */
	rframe_reader_init(&c->reader, HANDSHAKE_MAX_FRAME);
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		conn_close(c);
		return;
	}
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &salen) == 0)
		format_sockaddr((struct sockaddr *)&sa, c->remote,
				sizeof(c->remote));
	else
		snprintf(c->remote, sizeof(c->remote), "?");
	if (n->n_unhandshaken > RNET_MAX_UNHANDSHAKEN) {
		conn_reject(c, "too many connections awaiting a handshake", "");
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	uv_tcp_keepalive(&c->tcp, 1, KEEPALIVE_DELAY_S);
	if (uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb,
			  conn_read_cb) != 0)
		conn_close(c);
}

/* ---- handshake deadlines ----------------------------------------------- */

/* Close dials and inbound connections whose handshake is overdue. */
static void net_sweep_cb(uv_timer_t *t)
{
	struct rnet *n = t->data;
	uint64_t now = uv_now(n->loop);
	struct conn *c;
	size_t i;

	for (i = 0; i < n->n_peers; i++) {
		struct peer *p = &n->peers[i];
		if (p->state != PEER_CONNECTING && p->state != PEER_HANDSHAKING)
			continue;
		if (now - p->dialled_at < n->handshake_timeout_ms)
			continue;
		if (p->state == PEER_CONNECTING)
			peer_fail(p, RAFT_LOG_DEBUG, "connect timed out");
		else
			peer_fail(p, RAFT_LOG_WARN, "no handshake answer");
	}
#ifdef RNET_FAULT_HOOKS
	for (i = 0; i < n->n_peers; i++) {
		struct peer *p = &n->peers[i];
		if (p->state == PEER_UP && p->held.base != NULL &&
		    now - p->held_at >= FAULT_HOLD_MS) {
			n->faults.held_timeout++;
			if (peer_release_held(p) != RAFT_OK)
				n->faults.dropped++;
		}
	}
#endif
	for (c = n->conns; c != NULL; c = c->next) {
		if (c->peer != 0 || c->closing ||
		    now - c->accepted_at < n->handshake_timeout_ms)
			continue;
		if (c->refused)
			conn_close(c); /* the refusal was logged */
		else
			conn_reject(c, "handshake timed out", "");
	}
}

/* ---- public calls ------------------------------------------------------ */

static int net_check_options(const struct rnet_options *o, char *errmsg,
			     size_t errlen)
{
	char host[RNET_ADDR_MAX];
	bool self_found = false;
	size_t i, j;
	int port;

	if (o->self == 0 || o->cluster_id == 0) {
		set_err(errmsg, errlen, "node id and cluster id must be set");
		return RAFT_EINVAL;
	}
	if (o->listen_addr == NULL ||
	    !split_addr(o->listen_addr, host, sizeof(host), &port)) {
		set_err(errmsg, errlen, "bad listen address \"%s\"",
			o->listen_addr ? o->listen_addr : "(null)");
		return RAFT_EINVAL;
	}
	if (o->client_addr != NULL && !valid_client_addr(o->client_addr)) {
		set_err(errmsg, errlen, "bad client address \"%s\"",
			o->client_addr);
		return RAFT_EINVAL;
	}
	for (i = 0; i < o->n_members; i++) {
		const struct raft_member *m = &o->members[i];
		if (m->id == 0 ||
		    memchr(m->addr, '\0', sizeof(m->addr)) == NULL ||
		    !split_addr(m->addr, host, sizeof(host), &port)) {
			set_err(errmsg, errlen,
				"member %" PRIu64 ": bad id or address", m->id);
			return RAFT_EINVAL;
		}
		for (j = 0; j < i; j++)
			if (o->members[j].id == m->id) {
				set_err(errmsg, errlen,
					"member %" PRIu64 " listed twice",
					m->id);
				return RAFT_EINVAL;
			}
		if (m->id == o->self)
			self_found = true;
	}
	if (!self_found) {
		set_err(errmsg, errlen, "node %" PRIu64 " is not a member",
			o->self);
		return RAFT_EINVAL;
	}
	if (o->reconnect_min_ms > 0 && o->reconnect_max_ms > 0 &&
	    o->reconnect_min_ms > o->reconnect_max_ms) {
		set_err(errmsg, errlen, "reconnect_min_ms > reconnect_max_ms");
		return RAFT_EINVAL;
	}
	if (o->max_frame > UINT32_MAX - RFRAME_HEADER) {
		set_err(errmsg, errlen, "max_frame above 4 GiB");
		return RAFT_EINVAL;
	}
	return RAFT_OK;
}

/* Resolve (blocking: called once, at start), bind and listen on a socket
 * of our own, so that a failure leaves no libuv handle to close. Returns the
 * descriptor or a negative raft error. */
/* "cannot listen for peers on ADDR: address already in use": the system's
 * text for err, lower-cased at its start as in the rest of the message. */
static void set_listen_err(char *errmsg, size_t errlen, const char *addr,
			   int err)
{
	char why[128];

	snprintf(why, sizeof(why), "%s", strerror(err));
	why[0] = (char)tolower((unsigned char)why[0]);
	set_err(errmsg, errlen, "cannot listen for peers on %s: %s", addr, why);
}

static int net_listen_fd(const char *addr, char *errmsg, size_t errlen)
{
	struct sockaddr_storage sa;
	struct addrinfo hints, *res = NULL;
	char host[RNET_ADDR_MAX], port[8];
	socklen_t salen;
	int iport, rv, fd, one = 1;

	split_addr(addr, host, sizeof(host), &iport);
	if (!numeric_addr(host, iport, &sa)) {
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE;
		snprintf(port, sizeof(port), "%d", iport);
		rv = getaddrinfo(host, port, &hints, &res);
		if (rv != 0) {
			set_err(errmsg, errlen, "cannot resolve %s: %s", addr,
				gai_strerror(rv));
			return RAFT_EINVAL;
		}
		memcpy(&sa, res->ai_addr, res->ai_addrlen);
		freeaddrinfo(res);
	}
	salen = sa.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
					 : sizeof(struct sockaddr_in);
	fd =
	    socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&sa, salen) != 0 ||
	    listen(fd, 128) != 0)
		goto fail_fd;
	return fd;

fail_fd:
	rv = errno;
	close(fd);
	errno = rv;
fail:
	set_listen_err(errmsg, errlen, addr, errno);
	return RAFT_EIO;
}

/* libuv writes to sockets with writev(), so a write to a connection the peer
 * has reset raises SIGPIPE, whose default action kills the process. A peer
 * must never be able to do that: unless the program chose a disposition,
 * ignore the signal (the write then fails with EPIPE). */
static void net_ignore_sigpipe(struct rnet *n)
{
	struct sigaction old, ign;

	if (sigaction(SIGPIPE, NULL, &old) != 0 || old.sa_handler != SIG_DFL)
		return;
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	if (sigaction(SIGPIPE, &ign, NULL) == 0)
		netlog(n, RAFT_LOG_INFO,
		       "msg=\"ignoring SIGPIPE\" reason=\"a peer that resets "
		       "a connection must not kill the process\"");
}

/* The listener's and the sweep timer's close callback. */
static void net_listener_closed_cb(uv_handle_t *h)
{
	struct rnet *n = h->data;

	n->pending--;
	net_maybe_finish(n);
}

static void peer_timer_closed_cb(uv_handle_t *h)
{
	struct peer *p = h->data;

	p->net->pending--;
	net_maybe_finish(p->net);
}

int rnet_start(uv_loop_t *loop, const struct rnet_options *o, rnet_recv_cb recv,
	       rnet_peer_cb peer, void *data, struct rnet **out, char *errmsg,
	       size_t errlen)
{
	struct sockaddr_storage sa;
	int salen = sizeof(sa);
	struct rnet *n;
	uv_os_fd_t ofd;
	unsigned sweep_ms;
	size_t i, k;
	int rc, rv, fd;

	rc = net_check_options(o, errmsg, errlen);
	if (rc != RAFT_OK)
		return rc;
	n = calloc(1, sizeof(*n));
	if (n == NULL)
		goto oom;
	n->peers = calloc(o->n_members, sizeof(*n->peers));
	if (n->peers == NULL)
		goto oom_net;
	n->loop = loop;
	n->self = o->self;
	n->cluster_id = o->cluster_id;
	n->max_frame = o->max_frame ? o->max_frame : RNET_DEFAULT_MAX_FRAME;
	n->max_queue_bytes =
	    o->max_queue_bytes ? o->max_queue_bytes : RNET_DEFAULT_MAX_QUEUE;
	n->reconnect_min_ms = o->reconnect_min_ms
				  ? o->reconnect_min_ms
				  : RNET_DEFAULT_RECONNECT_MIN_MS;
	n->reconnect_max_ms = o->reconnect_max_ms
				  ? o->reconnect_max_ms
				  : RNET_DEFAULT_RECONNECT_MAX_MS;
	if (n->reconnect_max_ms < n->reconnect_min_ms)
		n->reconnect_max_ms = n->reconnect_min_ms;
	n->handshake_timeout_ms = o->handshake_timeout_ms
				      ? o->handshake_timeout_ms
				      : RNET_DEFAULT_HANDSHAKE_TIMEOUT_MS;
	n->send_timeout_ms = o->send_timeout_ms ? o->send_timeout_ms
						: RNET_DEFAULT_SEND_TIMEOUT_MS;
	n->rng = o->seed ^ (o->self * 0x9e3779b97f4a7c15ull);
	n->log = o->log;
	n->log_data = o->log_data;
	n->recv = recv;
	n->peer_cb = peer;
	n->data = data;
	if (o->client_addr != NULL)
		snprintf(n->client_addr, sizeof(n->client_addr), "%s",
			 o->client_addr);

	fd = net_listen_fd(o->listen_addr, errmsg, errlen);
	if (fd < 0) {
		rc = fd;
		goto err_peers;
	}
	uv_tcp_init(loop, &n->listener);
	n->listener.data = n;
	n->pending++;
	rv = uv_tcp_open(&n->listener, fd);
	if (rv == 0)
		rv = uv_listen((uv_stream_t *)&n->listener, 128, net_accept_cb);
	if (rv != 0) {
		/* Only the listener is open: everything is freed once it has
		 * closed, on the caller's next loop iteration. */
		if (uv_fileno((uv_handle_t *)&n->listener, &ofd) != 0)
			close(fd);
		set_listen_err(errmsg, errlen, o->listen_addr, -rv);
		n->closing = true;
		uv_close((uv_handle_t *)&n->listener, net_listener_closed_cb);
		return RAFT_EIO;
	}
	if (uv_tcp_getsockname(&n->listener, (struct sockaddr *)&sa, &salen) ==
	    0)
		format_sockaddr((struct sockaddr *)&sa, n->bound_addr,
				sizeof(n->bound_addr));

	net_ignore_sigpipe(n);
	uv_timer_init(loop, &n->sweep);
	n->sweep.data = n;
	n->pending++;
	sweep_ms = n->handshake_timeout_ms / 4;
	sweep_ms = sweep_ms < 10 ? 10 : sweep_ms > 1000 ? 1000 : sweep_ms;
#ifdef RNET_FAULT_HOOKS
	faults_init(n);
	if (n->faults.reorder_pct > 0 && sweep_ms > FAULT_HOLD_MS)
		sweep_ms = FAULT_HOLD_MS; /* bounds how long a frame is held */
#endif
	uv_timer_start(&n->sweep, net_sweep_cb, sweep_ms, sweep_ms);

	for (i = 0, k = 0; i < o->n_members; i++) {
		struct peer *p;
		if (o->members[i].id == o->self)
			continue;
		p = &n->peers[k++];
		p->net = n;
		p->id = o->members[i].id;
		memcpy(p->addr, o->members[i].addr, sizeof(p->addr));
		p->backoff_ms = n->reconnect_min_ms;
		uv_timer_init(loop, &p->timer);
		p->timer.data = p;
		n->pending++;
		peer_schedule(p, 0);
	}
	n->n_peers = k;
	netlog(n, RAFT_LOG_INFO,
	       "msg=\"peer transport listening\" addr=%s peers=%zu",
	       n->bound_addr, n->n_peers);
	*out = n;
	return RAFT_OK;

err_peers:
	free(n->peers);
	free(n);
	return rc;
oom_net:
	free(n);
oom:
	set_err(errmsg, errlen, "out of memory");
	return RAFT_ENOMEM;
}

/* Fill pm from m, pointing at m's payloads; pe and pp have m->n_entries
 * slots. */
static void msg_to_pb(const struct rnet *n, const struct raft_msg *m,
		      Raftpb__Message *pm, Raftpb__Entry *pe,
		      Raftpb__Entry **pp)
{
	size_t i;

	raftpb__message__init(pm);
	pm->type = (Raftpb__MessageType)m->type;
	pm->from = n->self;
	pm->to = m->to;
	pm->term = m->term;
	pm->index = m->index;
	pm->log_term = m->log_term;
	pm->commit = m->commit;
	pm->reject = m->reject;
	pm->hint_index = m->hint_index;
	pm->hint_term = m->hint_term;
	pm->context = m->context;
	pm->n_entries = m->n_entries;
	pm->entries = pp;
	for (i = 0; i < m->n_entries; i++) {
		const struct raft_entry *e = &m->entries[i];
		raftpb__entry__init(&pe[i]);
		pe[i].term = e->term;
		pe[i].index = e->index;
		pe[i].type = (Raftpb__EntryType)e->type;
		pe[i].data.data = e->data;
		pe[i].data.len = e->len;
		pp[i] = &pe[i];
	}
}

/* What a receiver would accept (see conn_handle_message). */
static bool msg_valid(const struct raft_msg *m)
{
	size_t i;

	if ((int)m->type < RAFT_MSG_APPEND ||
	    (int)m->type > RAFT_MSG_TIMEOUT_NOW)
		return false;
	if (m->n_entries > 0 && m->entries == NULL)
		return false;
	for (i = 0; i < m->n_entries; i++) {
		const struct raft_entry *e = &m->entries[i];
		if (e->type != RAFT_ENTRY_COMMAND && e->type != RAFT_ENTRY_NOOP)
			return false;
		if (e->len > 0 && e->data == NULL)
			return false;
	}
	return true;
}

int rnet_send(struct rnet *n, const struct raft_msg *m)
{
	Raftpb__Entry pe_small[8], *pp_small[8];
	Raftpb__Entry *pe = pe_small, **pp = pp_small;
	Raftpb__Message pm;
	struct peer *p;
	uint8_t *frame;
	size_t plen, flen;
	int rc;

	if (n->closing)
		return RAFT_ESHUTDOWN;
	p = find_peer(n, m->to);
	if (p == NULL)
		return RAFT_EINVAL;
	if (!msg_valid(m))
		return RAFT_EINVAL;
	if (p->state != PEER_UP)
		return RAFT_EUNAVAIL;
	if (m->n_entries > 8) {
		pe = malloc(m->n_entries * sizeof(*pe));
		pp = malloc(m->n_entries * sizeof(*pp));
		if (pe == NULL || pp == NULL) {
			rc = RAFT_ENOMEM;
			goto out;
		}
	}
	msg_to_pb(n, m, &pm, pe, pp);

	plen = raftpb__message__get_packed_size(&pm);
	flen = RFRAME_HEADER + plen;
	if (plen > n->max_frame || flen > n->max_queue_bytes) {
		rc = RAFT_ETOOBIG;
		goto out;
	}
#ifdef RNET_FAULT_HOOKS
	if (p->q_bytes + p->held.len + 2 * flen > n->max_queue_bytes) {
#else
	if (p->q_bytes + flen > n->max_queue_bytes) {
#endif
		rc = RAFT_EBUSY;
		goto out;
	}
	frame = malloc(flen);
	if (frame == NULL) {
		rc = RAFT_ENOMEM;
		goto out;
	}
	rframe_header_put(frame, (uint32_t)plen);
	raftpb__message__pack(&pm, frame + RFRAME_HEADER);
#ifdef RNET_FAULT_HOOKS
	rc = peer_send_frame(p, frame, flen);
#else
	rc = peer_enqueue(p, frame, flen);
#endif
out:
	if (pe != pe_small) {
		free(pe);
		free(pp);
	}
	return rc;
}

const char *rnet_peer_client_addr(struct rnet *n, raft_id peer)
{
	struct peer *p = find_peer(n, peer);

	return p != NULL && p->client_addr[0] != '\0' ? p->client_addr : NULL;
}

const char *rnet_listen_addr(struct rnet *n)
{
	return n->bound_addr;
}

bool rnet_peer_connected(struct rnet *n, raft_id peer)
{
	struct peer *p = find_peer(n, peer);

	return p != NULL && p->state == PEER_UP;
}

size_t rnet_queued_bytes(struct rnet *n, raft_id peer)
{
	struct peer *p = find_peer(n, peer);

	return p != NULL ? p->q_bytes : 0;
}

void rnet_close(struct rnet *n, void (*cb)(void *arg), void *arg)
{
	struct conn *c;
	size_t i;

	assert(!n->closing);
#ifdef RNET_FAULT_HOOKS
	faults_log(n);
#endif
	n->closing = true;
	n->close_cb = cb;
	n->close_arg = arg;
	uv_close((uv_handle_t *)&n->listener, net_listener_closed_cb);
	uv_close((uv_handle_t *)&n->sweep, net_listener_closed_cb);
	for (i = 0; i < n->n_peers; i++) {
		struct peer *p = &n->peers[i];
		uv_close((uv_handle_t *)&p->timer, peer_timer_closed_cb);
		switch (p->state) {
		case PEER_RESOLVING:
			uv_cancel((uv_req_t *)&p->gai);
			break;
		case PEER_CONNECTING:
		case PEER_HANDSHAKING:
		case PEER_UP:
			p->state = PEER_CLOSING;
			peer_drop_queue(p);
			uv_close((uv_handle_t *)&p->tcp, peer_closed_cb);
			break;
		case PEER_IDLE:
		case PEER_CLOSING:
			break;
		}
	}
	for (c = n->conns; c != NULL; c = c->next)
		conn_close(c);
}
