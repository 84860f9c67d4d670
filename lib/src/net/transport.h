/* The TCP transport between Raft peers, on the caller's libuv loop.
 *
 * Connections: every node keeps one outbound connection to every other
 * member and sends only on it; it accepts inbound connections from the other
 * members and only receives on them. So each pair of nodes holds two TCP
 * connections, one per direction, and neither side ever has to decide which
 * of two crossing dials wins.
 *
 * Happy path: rnet_start() listens and dials every peer. The dialer writes a
 * Handshake frame (magic, protocol version, cluster id, its node id, its
 * client address); the acceptor checks it and answers with its own
 * Handshake. Once the dialer has checked the answer, the peer is connected
 * (rnet_peer_cb with connected true) and rnet_send() queues encoded Message
 * frames for it; queued frames leave in one vectored uv_write per batch.
 * The acceptor decodes every later frame and hands it to rnet_recv_cb.
 *
 * Failure modes:
 *   - a dial, write or read fails, or the peer closes: the outbound
 *     connection is dropped with everything queued on it (Raft retransmits),
 *     the peer is reported disconnected once, and it is dialled again after
 *     an exponential backoff with jitter;
 *   - a handshake with the wrong magic, protocol version or cluster id, an
 *     unknown node id or this node's own id is refused: the acceptor answers
 *     with the reason and closes, and logs one warning naming the peer;
 *   - garbage, a truncated frame, a length over max_frame, an undecodable
 *     message or one of an unknown type: that connection is closed with one
 *     log line; every other connection carries on;
 *   - a dial or an inbound connection that does not finish its handshake
 *     within handshake_timeout_ms is closed; beyond RNET_MAX_UNHANDSHAKEN
 *     such inbound connections, new ones are closed at once;
 *   - a slow or dead peer: its queue is bounded by max_queue_bytes; beyond
 *     that rnet_send() drops the message with RAFT_EBUSY. Nothing is queued
 *     for a peer that is not connected (RAFT_EUNAVAIL).
 *
 * The wire format is in docs/protocol.md and proto/raft.proto.
 */
#ifndef LIBRAFT_NET_TRANSPORT_H
#define LIBRAFT_NET_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "libraft/node.h"
#include "libraft/raft.h"

/* Handshake magic ("RAFT") and the protocol version this build speaks. */
#define RNET_MAGIC	      0x52414654u
#define RNET_PROTOCOL_VERSION 1u

#define RNET_DEFAULT_MAX_FRAME		  (64u * 1024 * 1024)
#define RNET_DEFAULT_MAX_QUEUE		  (64u * 1024 * 1024)
#define RNET_DEFAULT_RECONNECT_MIN_MS	  50
#define RNET_DEFAULT_RECONNECT_MAX_MS	  2000
#define RNET_DEFAULT_HANDSHAKE_TIMEOUT_MS 5000
#define RNET_DEFAULT_SEND_TIMEOUT_MS	  10000

/* Inbound connections still waiting for their handshake; more are closed at
 * once, so that a flood of idle connections holds little memory. */
#define RNET_MAX_UNHANDSHAKEN 64

/* Longest client address carried in a handshake, including the NUL. */
#define RNET_ADDR_MAX 64

struct rnet;

/* Zero means "default" for every size and delay. */
struct rnet_options {
	raft_id self;
	uint64_t cluster_id;
	const char *listen_addr; /* "host:port"; port 0 picks a free port */
	const char *client_addr; /* advertised to peers for redirects; may
				    be NULL */
	const struct raft_member *members; /* every voter, self included */
	size_t n_members;
	size_t max_frame;	/* default 64 MiB */
	size_t max_queue_bytes; /* per peer; default 64 MiB */
	unsigned reconnect_min_ms, reconnect_max_ms; /* default 50 / 2000 */
	uint64_t seed;				     /* backoff jitter */
	/* A dial, or an accepted connection, that has not completed its
	 * handshake after this long is closed. Default 5000. */
	unsigned handshake_timeout_ms;
	/* Data written to a peer and not acknowledged by its kernel for this
	 * long closes the connection (TCP_USER_TIMEOUT), so that a peer gone
	 * behind a partition is noticed. Default 10000. */
	unsigned send_timeout_ms;
	raft_log_fn log;
	void *log_data;
};

/* A message arrived. m and its entries (payloads included) are valid only
 * during the call; m->to is this node and m->from the handshaken peer. */
typedef void (*rnet_recv_cb)(void *data, const struct raft_msg *m);

/* The outbound connection to peer came up (connected true) or went down.
 * Called once per transition. peer_client_addr is the peer's last
 * advertised client address, or NULL; valid only during the call. */
typedef void (*rnet_peer_cb)(void *data, raft_id peer, bool connected,
			     const char *peer_client_addr);

/* Listen on o->listen_addr and start dialling every other member. o is
 * copied (strings and members included). Callbacks run on the loop thread,
 * never from inside a call into the transport, and may call rnet_send() and
 * rnet_close().
 *
 * If the process has left SIGPIPE at its default action, it is set to
 * ignored (and logged): libuv writes sockets with writev(), so otherwise a
 * peer that resets a connection could kill the process.
 *
 * Returns RAFT_OK, RAFT_EINVAL (bad options: self not a member, a member
 * twice, an address that does not parse, cluster_id 0), RAFT_EIO (could not
 * listen: the address is in use, ...) or RAFT_ENOMEM. errmsg, if not NULL,
 * says what was wrong. */
int rnet_start(uv_loop_t *loop, const struct rnet_options *o, rnet_recv_cb recv,
	       rnet_peer_cb peer, void *data, struct rnet **out, char *errmsg,
	       size_t errlen);

/* Encode m (payloads copied) and queue it for m->to. The wire carries this
 * node's id as the sender whatever m->from says.
 *
 * Returns RAFT_OK, RAFT_EUNAVAIL (m->to is not connected: dropped),
 * RAFT_EBUSY (m->to's queue is full: dropped), RAFT_ETOOBIG (the encoded
 * message exceeds max_frame or max_queue_bytes), RAFT_EINVAL (m->to is not
 * a peer, or m has a type or entry type outside the enums),
 * RAFT_ESHUTDOWN (rnet_close() was called) or RAFT_ENOMEM. A message that
 * was queued may still be lost if the connection fails: Raft retransmits. */
int rnet_send(struct rnet *n, const struct raft_msg *m);

/* The client address peer last advertised in a handshake (either
 * direction), or NULL if none. Valid until the next loop iteration. */
const char *rnet_peer_client_addr(struct rnet *n, raft_id peer);

/* The address the listener is bound to ("host:port"); useful with port 0. */
const char *rnet_listen_addr(struct rnet *n);

/* Whether the outbound connection to peer is up. */
bool rnet_peer_connected(struct rnet *n, raft_id peer);

/* Bytes queued or being written to peer; never above max_queue_bytes. */
size_t rnet_queued_bytes(struct rnet *n, raft_id peer);

/* Stop: close every handle and free everything. No callback other than cb
 * runs after this returns; cb(arg) runs on the loop once every handle is
 * closed (cb may be NULL). May be called from inside rnet_recv_cb or
 * rnet_peer_cb. */
void rnet_close(struct rnet *n, void (*cb)(void *arg), void *arg);

#endif /* LIBRAFT_NET_TRANSPORT_H */
