/* The kvd client library (lib/src/client) against scripted fake servers on
 * loopback: routing, leader hints, and what happens to a write whose
 * outcome is unknown. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libraft/client.h"
#include "net/frame.h"
#include "proto/kv.pb-c.h"

/* ---- Fake server ----------------------------------------------------------
 */

enum fake_mode {
	FAKE_ANSWER,	 /* serve from a one-key map; get answers key bytes
			    when the key was never put */
	FAKE_NOT_LEADER, /* answer `code` (default "not leader"), with hint
			    if set */
	FAKE_DROP,	 /* close the connection on the first request */
	FAKE_SILENT,	 /* never answer */
	FAKE_REVERSE,	 /* hold `batch` requests, answer them in reverse */
};

struct fake;

struct fake_conn {
	uv_tcp_t tcp;
	struct fake *f;
	struct rframe_reader reader;
	Kvpb__Request *held[64];
	size_t n_held;
	struct fake_conn *next;
};

struct fake {
	uv_loop_t *loop;
	uv_tcp_t server;
	char addr[64];
	enum fake_mode mode;
	char hint[64];
	int code;
	size_t batch;
	int received; /* requests decoded */
	int writes;   /* puts and deletes among them */
	struct fake_conn *conns;
	int open_handles;
};

static void fake_conn_closed_cb(uv_handle_t *h)
{
	struct fake_conn *fc = h->data;
	size_t i;

	for (i = 0; i < fc->n_held; i++)
		kvpb__request__free_unpacked(fc->held[i], NULL);
	rframe_reader_free(&fc->reader);
	fc->f->open_handles--;
	free(fc);
}

static void fake_conn_close(struct fake_conn *fc)
{
	struct fake_conn **p;

	for (p = &fc->f->conns; *p != NULL; p = &(*p)->next) {
		if (*p == fc) {
			*p = fc->next;
			break;
		}
	}
	uv_close((uv_handle_t *)&fc->tcp, fake_conn_closed_cb);
}

static void fake_write_cb(uv_write_t *w, int status)
{
	(void)status;
	free(w->data);
	free(w);
}

static void fake_send(struct fake_conn *fc, Kvpb__Response *m)
{
	uv_write_t *w = malloc(sizeof(*w));
	uint8_t *buf;
	size_t len;
	uv_buf_t b;

	ck_assert_ptr_nonnull(w);
	ck_assert_int_eq(rframe_pack(&m->base, KV_CLIENT_MAX_FRAME, &buf, &len),
			 0);
	w->data = buf;
	b = uv_buf_init((char *)buf, (unsigned)len);
	ck_assert_int_eq(
	    uv_write(w, (uv_stream_t *)&fc->tcp, &b, 1, fake_write_cb), 0);
}

static void fake_answer(struct fake_conn *fc, const Kvpb__Request *req)
{
	Kvpb__Response m = KVPB__RESPONSE__INIT;
	Kvpb__NodeStatus st = KVPB__NODE_STATUS__INIT;

	m.id = req->id;
	if (fc->f->mode == FAKE_NOT_LEADER &&
	    req->op_case != KVPB__REQUEST__OP_STATUS) {
		m.code = fc->f->code != 0 ? fc->f->code : RAFT_ENOTLEADER;
		m.leader_addr = fc->f->hint;
		m.leader_id = fc->f->hint[0] != '\0' ? 9 : 0;
	} else if (req->op_case == KVPB__REQUEST__OP_GET) {
		m.found = true;
		m.value = req->get->key;
	} else if (req->op_case == KVPB__REQUEST__OP_STATUS) {
		st.id = 42;
		st.role = "leader";
		m.status = &st;
	} else {
		m.mod_index = 7;
	}
	fake_send(fc, &m);
}

static void fake_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct fake_conn *fc = h->data;

	rframe_reader_alloc(&fc->reader, suggested, buf);
}

static void fake_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct fake_conn *fc = s->data;
	struct fake *f = fc->f;
	const uint8_t *p;
	size_t len;
	size_t i;

	(void)buf;
	if (nread < 0) {
		fake_conn_close(fc);
		return;
	}
	rframe_reader_commit(&fc->reader, (size_t)nread);
	while (rframe_reader_next(&fc->reader, &p, &len) == 1) {
		Kvpb__Request *req = kvpb__request__unpack(NULL, len, p);

		ck_assert_ptr_nonnull(req);
		f->received++;
		if (req->op_case == KVPB__REQUEST__OP_PUT ||
		    req->op_case == KVPB__REQUEST__OP_DEL)
			f->writes++;
		switch (f->mode) {
		case FAKE_DROP:
			kvpb__request__free_unpacked(req, NULL);
			fake_conn_close(fc);
			return;
		case FAKE_SILENT:
			kvpb__request__free_unpacked(req, NULL);
			break;
		case FAKE_REVERSE:
			ck_assert_uint_lt(fc->n_held, 64);
			fc->held[fc->n_held++] = req;
			if (fc->n_held < f->batch)
				break;
			for (i = fc->n_held; i > 0; i--) {
				fake_answer(fc, fc->held[i - 1]);
				kvpb__request__free_unpacked(fc->held[i - 1],
							     NULL);
			}
			fc->n_held = 0;
			break;
		default:
			fake_answer(fc, req);
			kvpb__request__free_unpacked(req, NULL);
		}
	}
}

static void fake_connection_cb(uv_stream_t *server, int status)
{
	struct fake *f = server->data;
	struct fake_conn *fc = calloc(1, sizeof(*fc));

	ck_assert_int_eq(status, 0);
	ck_assert_ptr_nonnull(fc);
	fc->f = f;
	rframe_reader_init(&fc->reader, KV_CLIENT_MAX_FRAME);
	uv_tcp_init(f->loop, &fc->tcp);
	fc->tcp.data = fc;
	f->open_handles++;
	ck_assert_int_eq(uv_accept(server, (uv_stream_t *)&fc->tcp), 0);
	fc->next = f->conns;
	f->conns = fc;
	uv_read_start((uv_stream_t *)&fc->tcp, fake_alloc_cb, fake_read_cb);
}

/* Listen on an ephemeral loopback port. */
static void fake_start(struct fake *f, uv_loop_t *loop, enum fake_mode mode)
{
	struct sockaddr_in sa;
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	memset(f, 0, sizeof(*f));
	f->loop = loop;
	f->mode = mode;
	uv_tcp_init(loop, &f->server);
	f->server.data = f;
	f->open_handles = 1;
	uv_ip4_addr("127.0.0.1", 0, &sa);
	ck_assert_int_eq(uv_tcp_bind(&f->server, (struct sockaddr *)&sa, 0), 0);
	ck_assert_int_eq(
	    uv_listen((uv_stream_t *)&f->server, 16, fake_connection_cb), 0);
	ck_assert_int_eq(
	    uv_tcp_getsockname(&f->server, (struct sockaddr *)&ss, &len), 0);
	snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d",
		 ntohs(((struct sockaddr_in *)&ss)->sin_port));
}

static void fake_server_closed_cb(uv_handle_t *h)
{
	struct fake *f = h->data;

	f->open_handles--;
}

static void fake_stop(struct fake *f)
{
	while (f->conns != NULL)
		fake_conn_close(f->conns);
	uv_close((uv_handle_t *)&f->server, fake_server_closed_cb);
}

/* An address nobody listens on: a port just bound and released. */
static void refused_addr(uv_loop_t *loop, char *out, size_t len)
{
	struct fake f;

	fake_start(&f, loop, FAKE_ANSWER);
	snprintf(out, len, "%s", f.addr);
	fake_stop(&f);
	uv_run(loop, UV_RUN_DEFAULT);
}

/* ---- Client side ----------------------------------------------------------
 */

struct outcome {
	bool done;
	int rc;
	bool unknown;
	char value[64];
	size_t value_len;
	char endpoint[64];
	uint64_t status_id;
};

static void outcome_cb(void *arg, const struct kv_client_result *res)
{
	struct outcome *o = arg;

	ck_assert(!o->done);
	o->done = true;
	o->rc = res->rc;
	o->unknown = res->unknown;
	ck_assert_ptr_nonnull(res->error);
	ck_assert_uint_le(res->value_len, sizeof(o->value));
	if (res->value_len > 0)
		memcpy(o->value, res->value, res->value_len);
	o->value_len = res->value_len;
	snprintf(o->endpoint, sizeof(o->endpoint), "%s", res->endpoint);
	if (res->status != NULL)
		o->status_id = res->status->id;
}

static struct kv_client *client_new(uv_loop_t *loop, const char **eps, size_t n,
				    unsigned timeout_ms)
{
	struct kv_client_config cfg;
	struct kv_client *c;
	char err[128];

	kv_client_config_init(&cfg);
	cfg.endpoints = eps;
	cfg.n_endpoints = n;
	cfg.timeout_ms = timeout_ms;
	ck_assert_int_eq(kv_client_new(loop, &cfg, &c, err, sizeof(err)),
			 RAFT_OK);
	return c;
}

static void run_until(uv_loop_t *loop, const struct outcome *o, size_t n)
{
	size_t i;

	for (;;) {
		bool all = true;
		for (i = 0; i < n; i++)
			all = all && o[i].done;
		if (all)
			return;
		uv_run(loop, UV_RUN_ONCE);
	}
}

static bool closed;

static void closed_cb(void *arg)
{
	(void)arg;
	closed = true;
}

/* Close the client and the fakes; everything must be released. */
static void teardown(uv_loop_t *loop, struct kv_client *c, struct fake *f,
		     size_t n)
{
	size_t i;

	closed = false;
	kv_client_close(c, closed_cb, NULL);
	for (i = 0; i < n; i++)
		fake_stop(&f[i]);
	uv_run(loop, UV_RUN_DEFAULT);
	ck_assert(closed);
	for (i = 0; i < n; i++)
		ck_assert_int_eq(f[i].open_handles, 0);
	ck_assert_int_eq(uv_loop_close(loop), 0);
}

/* ---- Tests ------------------------------------------------------------------
 */

/* A put and a get on a healthy endpoint succeed and report that endpoint. */
START_TEST(test_put_and_get_succeed_on_a_healthy_endpoint)
{
	uv_loop_t loop;
	struct fake f;
	struct outcome o[2] = {0};
	struct kv_client *c;
	const char *eps[1];

	uv_loop_init(&loop);
	fake_start(&f, &loop, FAKE_ANSWER);
	eps[0] = f.addr;
	c = client_new(&loop, eps, 1, 2000);
	ck_assert_int_eq(kv_client_put(c, "k", 1, "v", 1, outcome_cb, &o[0]),
			 0);
	ck_assert_int_eq(kv_client_get(c, "key", 3, false, outcome_cb, &o[1]),
			 0);
	ck_assert_uint_eq(kv_client_inflight(c), 2);
	run_until(&loop, o, 2);
	ck_assert_int_eq(o[0].rc, RAFT_OK);
	ck_assert(!o[0].unknown);
	ck_assert_int_eq(o[1].rc, RAFT_OK);
	ck_assert_uint_eq(o[1].value_len, 3);
	ck_assert_mem_eq(o[1].value, "key", 3);
	ck_assert_str_eq(o[1].endpoint, f.addr);
	ck_assert_uint_eq(kv_client_inflight(c), 0);
	teardown(&loop, c, &f, 1);
}
END_TEST

/* A "not leader" answer naming the leader sends the write there, even when
 * that address was not among the configured endpoints. */
START_TEST(test_leader_hint_is_followed_to_a_new_endpoint)
{
	uv_loop_t loop;
	struct fake f[2];
	struct outcome o = {0};
	struct kv_client *c;
	const char *eps[1];

	uv_loop_init(&loop);
	fake_start(&f[0], &loop, FAKE_NOT_LEADER);
	fake_start(&f[1], &loop, FAKE_ANSWER);
	snprintf(f[0].hint, sizeof(f[0].hint), "%s", f[1].addr);
	eps[0] = f[0].addr;
	c = client_new(&loop, eps, 1, 2000);
	ck_assert_int_eq(kv_client_put(c, "k", 1, "v", 1, outcome_cb, &o), 0);
	run_until(&loop, &o, 1);
	ck_assert_int_eq(o.rc, RAFT_OK);
	ck_assert_str_eq(o.endpoint, f[1].addr);
	ck_assert_int_eq(f[0].writes, 1);
	ck_assert_int_eq(f[1].writes, 1);
	ck_assert_uint_eq(kv_client_n_endpoints(c), 2);
	ck_assert_str_eq(kv_client_endpoint(c, 1), f[1].addr);
	teardown(&loop, c, f, 2);
}
END_TEST

/* A node that answers "unavailable" (shutting down) proposed nothing: the
 * write goes to the next endpoint and succeeds there. */
START_TEST(test_unavailable_answer_moves_a_write_to_the_next_endpoint)
{
	uv_loop_t loop;
	struct fake f[2];
	struct outcome o = {0};
	struct kv_client *c;
	const char *eps[2];

	uv_loop_init(&loop);
	fake_start(&f[0], &loop, FAKE_NOT_LEADER);
	f[0].code = RAFT_EUNAVAIL;
	fake_start(&f[1], &loop, FAKE_ANSWER);
	eps[0] = f[0].addr;
	eps[1] = f[1].addr;
	c = client_new(&loop, eps, 2, 2000);
	ck_assert_int_eq(kv_client_put(c, "k", 1, "v", 1, outcome_cb, &o), 0);
	run_until(&loop, &o, 1);
	ck_assert_int_eq(o.rc, RAFT_OK);
	ck_assert(!o.unknown);
	ck_assert_int_eq(f[0].writes, 1);
	ck_assert_int_eq(f[1].writes, 1);
	teardown(&loop, c, f, 2);
}
END_TEST

/* A refused connection moves the request to the next endpoint. */
START_TEST(test_refused_endpoint_is_skipped)
{
	uv_loop_t loop;
	struct fake f;
	struct outcome o = {0};
	struct kv_client *c;
	char dead[64];
	const char *eps[2];

	uv_loop_init(&loop);
	refused_addr(&loop, dead, sizeof(dead));
	fake_start(&f, &loop, FAKE_ANSWER);
	eps[0] = dead;
	eps[1] = f.addr;
	c = client_new(&loop, eps, 2, 2000);
	ck_assert_int_eq(kv_client_put(c, "k", 1, "v", 1, outcome_cb, &o), 0);
	run_until(&loop, &o, 1);
	ck_assert_int_eq(o.rc, RAFT_OK);
	ck_assert_str_eq(o.endpoint, f.addr);
	teardown(&loop, c, &f, 1);
}
END_TEST

/* A write whose connection is lost after it was sent finishes as unknown
 * and is never sent to another endpoint. */
START_TEST(test_write_lost_after_sending_is_unknown_and_not_resent)
{
	uv_loop_t loop;
	struct fake f[2];
	struct outcome o = {0};
	struct kv_client *c;
	const char *eps[2];

	uv_loop_init(&loop);
	fake_start(&f[0], &loop, FAKE_DROP);
	fake_start(&f[1], &loop, FAKE_ANSWER);
	eps[0] = f[0].addr;
	eps[1] = f[1].addr;
	c = client_new(&loop, eps, 2, 2000);
	ck_assert_int_eq(kv_client_del(c, "k", 1, outcome_cb, &o), 0);
	run_until(&loop, &o, 1);
	ck_assert_int_eq(o.rc, RAFT_ELEADERLOST);
	ck_assert(o.unknown);
	ck_assert_int_eq(f[0].writes, 1);
	ck_assert_int_eq(f[1].writes, 0);
	teardown(&loop, c, f, 2);
}
END_TEST

/* A read whose connection is lost is safe to repeat, and is answered by
 * the next endpoint. */
START_TEST(test_read_lost_after_sending_is_retried_elsewhere)
{
	uv_loop_t loop;
	struct fake f[2];
	struct outcome o = {0};
	struct kv_client *c;
	const char *eps[2];

	uv_loop_init(&loop);
	fake_start(&f[0], &loop, FAKE_DROP);
	fake_start(&f[1], &loop, FAKE_ANSWER);
	eps[0] = f[0].addr;
	eps[1] = f[1].addr;
	c = client_new(&loop, eps, 2, 2000);
	ck_assert_int_eq(kv_client_get(c, "k", 1, false, outcome_cb, &o), 0);
	run_until(&loop, &o, 1);
	ck_assert_int_eq(o.rc, RAFT_OK);
	ck_assert_str_eq(o.endpoint, f[1].addr);
	ck_assert_int_eq(f[0].received, 1);
	ck_assert_int_eq(f[1].received, 1);
	teardown(&loop, c, f, 2);
}
END_TEST

/* A sent write that gets no answer by its deadline is reported as timed
 * out with an unknown outcome; a read in the same spot is not unknown. */
START_TEST(test_unanswered_write_times_out_as_unknown)
{
	uv_loop_t loop;
	struct fake f;
	struct outcome o[2] = {0};
	struct kv_client *c;
	const char *eps[1];

	uv_loop_init(&loop);
	fake_start(&f, &loop, FAKE_SILENT);
	eps[0] = f.addr;
	c = client_new(&loop, eps, 1, 200);
	ck_assert_int_eq(kv_client_put(c, "k", 1, "v", 1, outcome_cb, &o[0]),
			 0);
	ck_assert_int_eq(kv_client_get(c, "k", 1, false, outcome_cb, &o[1]), 0);
	run_until(&loop, o, 2);
	ck_assert_int_eq(o[0].rc, RAFT_ETIMEDOUT);
	ck_assert(o[0].unknown);
	ck_assert_int_eq(o[1].rc, RAFT_ETIMEDOUT);
	ck_assert(!o[1].unknown);
	ck_assert_int_eq(f.writes, 1);
	teardown(&loop, c, &f, 1);
}
END_TEST

/* With no leader anywhere, a write is retried (with backoff) until its
 * deadline and then fails as unavailable: nothing was applied. */
START_TEST(test_no_leader_anywhere_fails_unavailable_at_the_deadline)
{
	uv_loop_t loop;
	struct fake f[2];
	struct outcome o = {0};
	struct kv_client *c;
	const char *eps[2];
	uint64_t start;

	uv_loop_init(&loop);
	fake_start(&f[0], &loop, FAKE_NOT_LEADER);
	fake_start(&f[1], &loop, FAKE_NOT_LEADER);
	eps[0] = f[0].addr;
	eps[1] = f[1].addr;
	c = client_new(&loop, eps, 2, 400);
	start = uv_now(&loop);
	ck_assert_int_eq(kv_client_put(c, "k", 1, "v", 1, outcome_cb, &o), 0);
	run_until(&loop, &o, 1);
	ck_assert_int_eq(o.rc, RAFT_EUNAVAIL);
	ck_assert(!o.unknown);
	ck_assert_uint_ge(uv_now(&loop) - start, 400);
	ck_assert_int_ge(f[0].writes + f[1].writes, 3);
	teardown(&loop, c, f, 2);
}
END_TEST

/* A shorter timeout set on the client applies to the requests submitted
 * after it, which then expire before earlier ones. */
START_TEST(test_timeout_change_applies_to_later_requests)
{
	uv_loop_t loop;
	struct fake f;
	struct outcome o[2] = {0};
	struct kv_client *c;
	const char *eps[1];

	uv_loop_init(&loop);
	fake_start(&f, &loop, FAKE_SILENT);
	eps[0] = f.addr;
	c = client_new(&loop, eps, 1, 3000);
	ck_assert_int_eq(kv_client_get(c, "a", 1, false, outcome_cb, &o[0]), 0);
	kv_client_set_timeout(c, 100);
	ck_assert_int_eq(kv_client_get(c, "b", 1, false, outcome_cb, &o[1]), 0);
	run_until(&loop, &o[1], 1);
	ck_assert_int_eq(o[1].rc, RAFT_ETIMEDOUT);
	ck_assert(!o[0].done);
	teardown(&loop, c, &f, 1);
	ck_assert_int_eq(o[0].rc, RAFT_ESHUTDOWN);
}
END_TEST

/* Answers that come back in another order than the requests still reach
 * the request they belong to. */
START_TEST(test_answers_out_of_order_reach_their_requests)
{
	uv_loop_t loop;
	struct fake f;
	struct outcome o[8] = {0};
	struct kv_client *c;
	const char *eps[1];
	char key[8];
	size_t i;

	uv_loop_init(&loop);
	fake_start(&f, &loop, FAKE_REVERSE);
	f.batch = 8;
	eps[0] = f.addr;
	c = client_new(&loop, eps, 1, 2000);
	for (i = 0; i < 8; i++) {
		snprintf(key, sizeof(key), "key%zu", i);
		ck_assert_int_eq(
		    kv_client_get(c, key, strlen(key), true, outcome_cb, &o[i]),
		    0);
	}
	run_until(&loop, o, 8);
	for (i = 0; i < 8; i++) {
		snprintf(key, sizeof(key), "key%zu", i);
		ck_assert_int_eq(o[i].rc, RAFT_OK);
		ck_assert_uint_eq(o[i].value_len, strlen(key));
		ck_assert_mem_eq(o[i].value, key, strlen(key));
	}
	teardown(&loop, c, &f, 1);
}
END_TEST

/* Closing the client fails what is in flight: a sent write as unknown. */
START_TEST(test_close_fails_inflight_requests)
{
	uv_loop_t loop;
	struct fake f;
	struct outcome o[2] = {0};
	struct kv_client *c;
	const char *eps[1];

	uv_loop_init(&loop);
	fake_start(&f, &loop, FAKE_SILENT);
	eps[0] = f.addr;
	c = client_new(&loop, eps, 1, 5000);
	ck_assert_int_eq(kv_client_put(c, "k", 1, "v", 1, outcome_cb, &o[0]),
			 0);
	ck_assert_int_eq(kv_client_get(c, "k", 1, false, outcome_cb, &o[1]), 0);
	while (f.received < 2)
		uv_run(&loop, UV_RUN_ONCE);
	teardown(&loop, c, &f, 1);
	ck_assert(o[0].done && o[1].done);
	ck_assert_int_eq(o[0].rc, RAFT_ESHUTDOWN);
	ck_assert(o[0].unknown);
	ck_assert_int_eq(o[1].rc, RAFT_ESHUTDOWN);
	ck_assert(!o[1].unknown);
}
END_TEST

/* A status request asks exactly the endpoint named, with no retry. */
START_TEST(test_status_asks_only_the_named_endpoint)
{
	uv_loop_t loop;
	struct fake f;
	struct outcome o[2] = {0};
	struct kv_client *c;
	char dead[64];
	const char *eps[2];

	uv_loop_init(&loop);
	refused_addr(&loop, dead, sizeof(dead));
	fake_start(&f, &loop, FAKE_ANSWER);
	eps[0] = dead;
	eps[1] = f.addr;
	c = client_new(&loop, eps, 2, 2000);
	ck_assert_int_eq(kv_client_status(c, 0, outcome_cb, &o[0]), 0);
	ck_assert_int_eq(kv_client_status(c, 1, outcome_cb, &o[1]), 0);
	ck_assert_int_eq(kv_client_status(c, 2, outcome_cb, NULL), RAFT_EINVAL);
	run_until(&loop, o, 2);
	ck_assert_int_eq(o[0].rc, RAFT_EUNAVAIL);
	ck_assert_str_eq(o[0].endpoint, dead);
	ck_assert_int_eq(o[1].rc, RAFT_OK);
	ck_assert_uint_eq(o[1].status_id, 42);
	ck_assert_int_eq(f.received, 1);
	teardown(&loop, c, &f, 1);
}
END_TEST

/* Bad arguments are refused at once, without a callback. */
START_TEST(test_bad_arguments_are_refused_at_once)
{
	uv_loop_t loop;
	struct kv_client_config cfg;
	struct kv_client *c;
	const char *bad[] = {"no-port"};
	const char *eps[] = {"127.0.0.1:1"};
	static char big[KV_CLIENT_MAX_FRAME + 1];
	char err[128];

	uv_loop_init(&loop);
	kv_client_config_init(&cfg);
	cfg.endpoints = bad;
	cfg.n_endpoints = 1;
	ck_assert_int_eq(kv_client_new(&loop, &cfg, &c, err, sizeof(err)),
			 RAFT_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "no-port"));
	cfg.n_endpoints = 0;
	ck_assert_int_eq(kv_client_new(&loop, &cfg, &c, err, sizeof(err)),
			 RAFT_EINVAL);
	cfg.endpoints = eps;
	cfg.n_endpoints = 1;
	ck_assert_int_eq(kv_client_new(&loop, &cfg, &c, err, sizeof(err)),
			 RAFT_OK);
	ck_assert_int_eq(kv_client_get(c, "", 0, false, outcome_cb, NULL),
			 RAFT_EINVAL);
	ck_assert_int_eq(
	    kv_client_put(c, "k", 1, big, sizeof(big), outcome_cb, NULL),
	    RAFT_ETOOBIG);
	ck_assert_uint_eq(kv_client_inflight(c), 0);
	kv_client_close(c, NULL, NULL);
	ck_assert_int_eq(kv_client_del(c, "k", 1, outcome_cb, NULL),
			 RAFT_ESHUTDOWN);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

static Suite *client_suite(void)
{
	Suite *s = suite_create("client");
	TCase *tc = tcase_create("client");

	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, test_put_and_get_succeed_on_a_healthy_endpoint);
	tcase_add_test(tc, test_leader_hint_is_followed_to_a_new_endpoint);
	tcase_add_test(tc, test_refused_endpoint_is_skipped);
	tcase_add_test(
	    tc, test_unavailable_answer_moves_a_write_to_the_next_endpoint);
	tcase_add_test(tc,
		       test_write_lost_after_sending_is_unknown_and_not_resent);
	tcase_add_test(tc, test_read_lost_after_sending_is_retried_elsewhere);
	tcase_add_test(tc, test_unanswered_write_times_out_as_unknown);
	tcase_add_test(
	    tc, test_no_leader_anywhere_fails_unavailable_at_the_deadline);
	tcase_add_test(tc, test_timeout_change_applies_to_later_requests);
	tcase_add_test(tc, test_answers_out_of_order_reach_their_requests);
	tcase_add_test(tc, test_close_fails_inflight_requests);
	tcase_add_test(tc, test_status_asks_only_the_named_endpoint);
	tcase_add_test(tc, test_bad_arguments_are_refused_at_once);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(client_suite());
	int failed;

	signal(SIGPIPE, SIG_IGN);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
