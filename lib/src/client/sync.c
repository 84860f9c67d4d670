/* The blocking client (libraft/client.h): a struct kv_client on a private
 * libuv loop that runs only while a call waits for its answer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libraft/client.h"

struct kv_client_sync {
	uv_loop_t loop;
	struct kv_client *client;
	size_t n_configured;
};

/* One call waiting for its answer. */
struct sync_wait {
	struct kv_client_reply *reply;
	bool done;
};

void kv_client_reply_free(struct kv_client_reply *r)
{
	free(r->value);
	r->value = NULL;
	r->value_len = 0;
}

static void reply_init(struct kv_client_reply *r)
{
	memset(r, 0, sizeof(*r));
}

/* Copy a result that lives only during its callback. */
static void reply_copy(struct kv_client_reply *r,
		       const struct kv_client_result *res)
{
	r->rc = res->rc;
	r->unknown = res->unknown;
	snprintf(r->error, sizeof(r->error), "%s", res->error);
	snprintf(r->endpoint, sizeof(r->endpoint), "%s", res->endpoint);
	r->create_index = res->create_index;
	r->mod_index = res->mod_index;
	r->version = res->version;
	if (res->value_len > 0) {
		r->value = malloc(res->value_len);
		if (r->value == NULL) {
			r->rc = RAFT_ENOMEM;
			snprintf(r->error, sizeof(r->error), "out of memory");
		} else {
			memcpy(r->value, res->value, res->value_len);
			r->value_len = res->value_len;
		}
	}
	if (res->status != NULL) {
		r->has_status = true;
		r->status = *res->status;
	}
}

static void sync_cb(void *arg, const struct kv_client_result *res)
{
	struct sync_wait *w = arg;

	reply_copy(w->reply, res);
	w->done = true;
}

/* Run the loop until every wait in w[0..n) is done. rv is what the submit
 * returned for each; a failed submit is recorded as the reply. */
static void sync_wait_all(struct kv_client_sync *s, struct sync_wait *w,
			  const int *rv, size_t n)
{
	size_t i, left = 0;

	for (i = 0; i < n; i++) {
		if (rv[i] != RAFT_OK) {
			w[i].reply->rc = rv[i];
			snprintf(w[i].reply->error, sizeof(w[i].reply->error),
				 "%s", raft_strerror(rv[i]));
			w[i].done = true;
		}
	}
	do {
		left = 0;
		for (i = 0; i < n; i++)
			left += !w[i].done;
		if (left > 0)
			uv_run(&s->loop, UV_RUN_ONCE);
	} while (left > 0);
}

int kv_client_sync_open(const struct kv_client_config *cfg,
			struct kv_client_sync **out, char *errmsg,
			size_t errlen)
{
	struct kv_client_sync *s = calloc(1, sizeof(*s));
	int rv;

	if (s == NULL) {
		snprintf(errmsg, errlen, "out of memory");
		return RAFT_ENOMEM;
	}
	rv = uv_loop_init(&s->loop);
	if (rv != 0) {
		snprintf(errmsg, errlen, "event loop: %s", uv_strerror(rv));
		free(s);
		return RAFT_ENOMEM;
	}
	rv = kv_client_new(&s->loop, cfg, &s->client, errmsg, errlen);
	if (rv != RAFT_OK) {
		uv_loop_close(&s->loop);
		free(s);
		return rv;
	}
	s->n_configured = cfg->n_endpoints;
	*out = s;
	return RAFT_OK;
}

void kv_client_sync_close(struct kv_client_sync *s)
{
	kv_client_close(s->client, NULL, NULL);
	uv_run(&s->loop, UV_RUN_DEFAULT);
	uv_loop_close(&s->loop);
	free(s);
}

int kv_client_sync_get(struct kv_client_sync *s, const void *key, size_t klen,
		       bool serializable, struct kv_client_reply *reply)
{
	struct sync_wait w = {reply, false};
	int rv;

	reply_init(reply);
	rv = kv_client_get(s->client, key, klen, serializable, sync_cb, &w);
	sync_wait_all(s, &w, &rv, 1);
	return reply->rc;
}

int kv_client_sync_put(struct kv_client_sync *s, const void *key, size_t klen,
		       const void *val, size_t vlen,
		       struct kv_client_reply *reply)
{
	struct sync_wait w = {reply, false};
	int rv;

	reply_init(reply);
	rv = kv_client_put(s->client, key, klen, val, vlen, sync_cb, &w);
	sync_wait_all(s, &w, &rv, 1);
	return reply->rc;
}

int kv_client_sync_del(struct kv_client_sync *s, const void *key, size_t klen,
		       struct kv_client_reply *reply)
{
	struct sync_wait w = {reply, false};
	int rv;

	reply_init(reply);
	rv = kv_client_del(s->client, key, klen, sync_cb, &w);
	sync_wait_all(s, &w, &rv, 1);
	return reply->rc;
}

int kv_client_sync_status_all(struct kv_client_sync *s,
			      struct kv_client_reply *replies)
{
	struct sync_wait w[KV_CLIENT_MAX_ENDPOINTS];
	int rv[KV_CLIENT_MAX_ENDPOINTS] = {0};
	size_t i, n = s->n_configured;

	for (i = 0; i < n; i++) {
		reply_init(&replies[i]);
		w[i].reply = &replies[i];
		w[i].done = false;
		rv[i] = kv_client_status(s->client, i, sync_cb, &w[i]);
	}
	sync_wait_all(s, w, rv, n);
	for (i = 0; i < n; i++)
		if (replies[i].rc == RAFT_OK)
			return RAFT_OK;
	return replies[0].rc;
}

size_t kv_client_sync_n_endpoints(const struct kv_client_sync *s)
{
	return s->n_configured;
}

const char *kv_client_sync_endpoint(const struct kv_client_sync *s, size_t ep)
{
	return ep < s->n_configured ? kv_client_endpoint(s->client, ep) : NULL;
}
