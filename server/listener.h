/* kvd's client listener: accepts client connections, decodes request
 * frames (proto/kv.proto), hands each request to the key-value store and
 * writes the answer back with the request's id. */
#ifndef KVD_LISTENER_H
#define KVD_LISTENER_H

#include <stddef.h>

#include <uv.h>

#include "libraft/kv.h"

struct kvd_listener;

struct kvd_listener_options {
	const char *addr;     /* "host:port" to listen on */
	unsigned max_clients; /* connections at once; more are refused */
	size_t max_queue;     /* answer bytes queued per connection */
	size_t max_inflight;  /* requests in the store per connection */
	bool follower_reads;  /* false: a follower redirects linearizable
				 reads to the leader, as it does writes */
};

/* Bind and listen. Returns RAFT_OK, RAFT_EINVAL (bad address) or RAFT_EIO
 * (cannot listen), with errmsg. */
int kvd_listener_start(uv_loop_t *loop, struct kv_store *store,
		       const struct kvd_listener_options *o,
		       struct kvd_listener **out, char *errmsg, size_t errlen);

/* Attach the store that requests go to. The listener may be started with
 * no store; it must get one before the loop runs. */
void kvd_listener_set_store(struct kvd_listener *l, struct kv_store *store);

/* Stop accepting connections and requests. The listening socket closes at
 * once, so the kernel refuses new connections (a client sees "connection
 * refused" before it has sent anything). Requests that arrive on open
 * connections from now on are answered RAFT_EUNAVAIL ("shutting down")
 * without touching the store. Answers to requests already in the store
 * still go out. Call this before closing the store. */
void kvd_listener_drain(struct kvd_listener *l);

/* Flush what is queued (for at most a second), close every connection and
 * free l; cb (may be NULL) runs when all is closed. Call after the store's
 * close callback, when no store callback can come any more. */
void kvd_listener_close(struct kvd_listener *l, void (*cb)(void *arg),
			void *arg);

#endif /* KVD_LISTENER_H */
