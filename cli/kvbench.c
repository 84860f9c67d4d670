/* kvbench: the load generator of a kvd cluster.
 *
 * N client loops share M connections (struct kv_client each) on one libuv
 * loop. Each loop sends one request, waits for its answer, records the
 * latency and sends the next, so N is the number of requests in flight.
 * Flags, key layout and the one-line report follow the etcd benchmark tool
 * (kvbench-etcd) so that lines from both compare field by field.
 *
 * Life of a run:
 *
 *     setup    find the leader (--target-leader), open M clients, write
 *              the key that get reads
 *     warm-up  max(--warmup, M) requests, untimed, one at a time on each
 *              connection, so that every connection is open
 *     run      N loops until --total requests were started or --duration
 *              passed; every answer's latency is kept
 *     drain    loops stop once their last answer is in; the clock stops
 *              with the last answer; clients close
 *
 * Failure modes: a request that fails is counted in errors and its latency
 * dropped; the loop goes on (as the etcd tool does). The first few error
 * messages are printed on stderr. A request the client refuses at once
 * (never sent) stops the run. Setup failures exit 3.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cliutil.h"
#include "libraft/client.h"
#include "libraft/kv.h"

#define KVBENCH_VERSION "0.1.0"

#define MAX_CONNS	   4096
#define MAX_CLIENTS	   100000
#define MAX_SHOWN_ERRORS   5
#define PROGRESS_AFTER_MS  2000 /* quiet for runs shorter than this */
#define PROGRESS_PERIOD_MS 1000
#define SETUP_TIMEOUT_MS   10000

enum kvbench_exit {
	EXIT_OK = 0,
	EXIT_NOREQUESTS = 1, /* no request succeeded */
	EXIT_USAGE = 2,
	EXIT_SETUP = 3, /* the cluster could not be reached or prepared */
};

enum bench_op { OP_PUT, OP_GET, OP_MIXED };

struct bench_opts {
	const char *endpoints;
	unsigned conns;
	unsigned clients;
	uint64_t total;
	unsigned duration_ms; /* 0: run --total requests */
	unsigned key_size;
	unsigned val_size;
	uint64_t key_space;
	bool seq;
	const char *key; /* get: the key read */
	bool serializable;
	bool target_leader;
	unsigned warmup;
	unsigned timeout_ms;
	double read_ratio; /* mixed: share of gets */
	bool json;
	bool quiet;
	enum bench_op op;
	const char *op_name;
};

struct bench;

/* One client loop: one request in flight at a time. */
struct bench_worker {
	struct bench *b;
	struct kv_client *conn;
	uint64_t sent_ns; /* when the request in flight was submitted */
	bool is_get;	  /* the request in flight */
	bool warmup;	  /* the request in flight is untimed */
	uint64_t warm_left;
	uint8_t *key;
};

enum bench_phase { PHASE_SETUP, PHASE_WARMUP, PHASE_RUN, PHASE_DONE };

struct bench {
	struct bench_opts o;
	uv_loop_t loop;
	struct cli_list eps;
	struct kv_client **conns;
	struct bench_worker *workers;
	uint8_t *value;
	enum bench_phase phase;
	unsigned active; /* workers with a request in flight */
	uint64_t next;	 /* requests started in the run phase */
	uint64_t errors;
	uint64_t not_found; /* gets of a missing key (mixed); successes */
	uint64_t *samples;  /* latency of each success, ns */
	size_t n_samples;
	size_t cap_samples;
	uint64_t start_ns;
	uint64_t end_ns;
	uint64_t deadline_ns;
	uint64_t rng;
	unsigned shown_errors;
	bool fatal;
	uv_timer_t progress;
	uint64_t progress_last_n;
	uint64_t progress_last_ns;
	unsigned closing;
};

/* ---- Options --------------------------------------------------------------
 */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: kvbench [OPTIONS] put|get|mixed\n"
		"\n"
		"Load generator for a kvd cluster. CLIENTS loops share CONNS "
		"connections;\n"
		"each loop waits for its answer before sending its next "
		"request.\n"
		"\n"
		"Workloads:\n"
		"  put     write VAL-SIZE-byte values (keys: --seq or "
		"--key-space)\n"
		"  get     read --key (written once before the run); alias "
		"'range'\n"
		"  mixed   gets (share --read-ratio) and puts over the key "
		"space\n"
		"\n"
		"Options (also accepted with one dash and as --flag=value):\n"
		"  --endpoints H:P,...  cluster client addresses (default %s)\n"
		"  --conns N            connections (default 1)\n"
		"  --clients N          requests in flight (default 1)\n"
		"  --total N            requests in the timed run (default "
		"10000)\n"
		"  --duration D         run for D (e.g. 30s) instead of "
		"--total\n"
		"  --key-size N         key bytes (default 8; 1..%d)\n"
		"  --val-size N         value bytes (default 256; 0..%d)\n"
		"  --seq                put: key i for request i\n"
		"  --key-space N        distinct keys otherwise (default 1)\n"
		"  --key K              get: the key read (default k)\n"
		"  --serializable       gets read the node's local copy\n"
		"  --consistency l|s    the same as the etcd tool's flag\n"
		"  --read-ratio R       mixed: share of gets, 0..1 (default "
		"0.5)\n"
		"  --target-leader      send everything to the leader\n"
		"  --warmup N           untimed requests first (default 100; "
		"at least one\n"
		"                       per connection)\n"
		"  --timeout D          per request (default 30s)\n"
		"  --json               print the result as JSON\n"
		"  --quiet              no progress lines on stderr\n"
		"  -h, --help           show this help\n"
		"  --version            print the version\n"
		"\n"
		"Output: one line, the format of the etcd tool kvbench-etcd:\n"
		"  OP conns= clients= key= val= consistency= leaderOnly= n= "
		"errors= time=\n"
		"  QPS= lat(ms): mean= sd= min= p50= p90= p99= p99.9= max=\n"
		"Latencies are taken from every successful request (sorted "
		"samples).\n"
		"Exit: 0 done, 1 no request succeeded, 2 usage, 3 setup "
		"failed.\n",
		CLI_DEFAULT_ENDPOINTS, KV_MAX_KEY, KV_MAX_VALUE);
}

/* Parse an unsigned integer in [min, max]. */
static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s[0] == '-' || s[0] == '\0')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_uint(const char *flag, const char *s, unsigned min,
		      unsigned max, unsigned *out)
{
	uint64_t v;

	if (parse_u64(s, min, max, &v) != 0) {
		fprintf(stderr,
			"kvbench: --%s '%s': want a whole number from %u to "
			"%u\n",
			flag, s, min, max);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

static int parse_ratio(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end != '\0' || errno != 0 || !(v >= 0 && v <= 1)) {
		fprintf(stderr,
			"kvbench: --read-ratio '%s': want a number from 0 to "
			"1\n",
			s);
		return -1;
	}
	*out = v;
	return 0;
}

enum {
	OPT_ENDPOINTS = 256,
	OPT_CONNS,
	OPT_CLIENTS,
	OPT_TOTAL,
	OPT_DURATION,
	OPT_KEY_SIZE,
	OPT_VAL_SIZE,
	OPT_SEQ,
	OPT_KEY_SPACE,
	OPT_KEY,
	OPT_SER,
	OPT_CONSISTENCY,
	OPT_RATIO,
	OPT_LEADER,
	OPT_WARMUP,
	OPT_TIMEOUT,
	OPT_JSON,
	OPT_QUIET,
	OPT_VERSION,
};

static const struct option longopts[] = {
    {"endpoints", required_argument, NULL, OPT_ENDPOINTS},
    {"conns", required_argument, NULL, OPT_CONNS},
    {"clients", required_argument, NULL, OPT_CLIENTS},
    {"total", required_argument, NULL, OPT_TOTAL},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"key-size", required_argument, NULL, OPT_KEY_SIZE},
    {"val-size", required_argument, NULL, OPT_VAL_SIZE},
    {"seq", no_argument, NULL, OPT_SEQ},
    {"key-space", required_argument, NULL, OPT_KEY_SPACE},
    {"key-space-size", required_argument, NULL, OPT_KEY_SPACE},
    {"key", required_argument, NULL, OPT_KEY},
    {"serializable", no_argument, NULL, OPT_SER},
    {"consistency", required_argument, NULL, OPT_CONSISTENCY},
    {"read-ratio", required_argument, NULL, OPT_RATIO},
    {"target-leader", no_argument, NULL, OPT_LEADER},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"json", no_argument, NULL, OPT_JSON},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

/* One option; returns 0, 1 to exit 0 (help, version) or -1 (usage). */
static int parse_opt(struct bench_opts *o, int c, const char *arg,
		     bool *have_total)
{
	uint64_t v;

	switch (c) {
	case OPT_ENDPOINTS:
		o->endpoints = arg;
		return 0;
	case OPT_CONNS:
		return parse_uint("conns", arg, 1, MAX_CONNS, &o->conns);
	case OPT_CLIENTS:
		return parse_uint("clients", arg, 1, MAX_CLIENTS, &o->clients);
	case OPT_TOTAL:
		if (parse_u64(arg, 1, UINT32_MAX, &v) != 0) {
			fprintf(stderr,
				"kvbench: --total '%s': want a whole number "
				"from 1 to %u\n",
				arg, UINT32_MAX);
			return -1;
		}
		o->total = v;
		*have_total = true;
		return 0;
	case OPT_DURATION:
		if (cli_parse_duration_ms(arg, &o->duration_ms) != 0) {
			fprintf(stderr,
				"kvbench: --duration '%s': want a duration "
				"such as 500ms, 30s or 2m\n",
				arg);
			return -1;
		}
		return 0;
	case OPT_KEY_SIZE:
		return parse_uint("key-size", arg, 1, KV_MAX_KEY, &o->key_size);
	case OPT_VAL_SIZE:
		return parse_uint("val-size", arg, 0, KV_MAX_VALUE,
				  &o->val_size);
	case OPT_SEQ:
		o->seq = true;
		return 0;
	case OPT_KEY_SPACE:
		if (parse_u64(arg, 1, UINT64_MAX, &o->key_space) != 0) {
			fprintf(stderr,
				"kvbench: --key-space '%s': want a whole "
				"number of at least 1\n",
				arg);
			return -1;
		}
		return 0;
	case OPT_KEY:
		if (arg[0] == '\0' || strlen(arg) > KV_MAX_KEY) {
			fprintf(stderr,
				"kvbench: --key: want 1 to %d bytes, got "
				"%zu\n",
				KV_MAX_KEY, strlen(arg));
			return -1;
		}
		o->key = arg;
		return 0;
	case OPT_SER:
		o->serializable = true;
		return 0;
	case OPT_CONSISTENCY:
		if (strcmp(arg, "l") != 0 && strcmp(arg, "s") != 0) {
			fprintf(stderr,
				"kvbench: --consistency '%s': want l "
				"(linearizable) or s (serializable)\n",
				arg);
			return -1;
		}
		o->serializable = arg[0] == 's';
		return 0;
	case OPT_RATIO:
		return parse_ratio(arg, &o->read_ratio);
	case OPT_LEADER:
		o->target_leader = true;
		return 0;
	case OPT_WARMUP:
		return parse_uint("warmup", arg, 0, 10000000, &o->warmup);
	case OPT_TIMEOUT:
		if (cli_parse_duration_ms(arg, &o->timeout_ms) != 0) {
			fprintf(stderr,
				"kvbench: --timeout '%s': want a duration "
				"such as 500ms or 5s\n",
				arg);
			return -1;
		}
		return 0;
	case OPT_JSON:
		o->json = true;
		return 0;
	case OPT_QUIET:
		o->quiet = true;
		return 0;
	case 'h':
		usage(stdout);
		return 1;
	case OPT_VERSION:
		printf("kvbench %s\n", KVBENCH_VERSION);
		return 1;
	default:
		return -1;
	}
}

/* Fill o from argv; returns 0 to run, 1 to exit 0, or -1 (usage error,
 * printed). */
static int parse_args(int argc, char **argv, struct bench_opts *o)
{
	bool have_total = false;
	int c, rv;

	memset(o, 0, sizeof(*o));
	o->endpoints = getenv("KVCTL_ENDPOINTS");
	if (o->endpoints == NULL || o->endpoints[0] == '\0')
		o->endpoints = CLI_DEFAULT_ENDPOINTS;
	o->conns = 1;
	o->clients = 1;
	o->total = 10000;
	o->key_size = 8;
	o->val_size = 256;
	o->key_space = 1;
	o->key = "k";
	o->warmup = 100;
	o->timeout_ms = 30000;
	o->read_ratio = 0.5;
	opterr = 0;
	while ((c = getopt_long_only(argc, argv, "h", longopts, NULL)) != -1) {
		if (c == '?' || c == ':') {
			if (optopt != 0 && optopt < 256)
				fprintf(stderr,
					"kvbench: unknown option '-%c'\n",
					optopt);
			else if (optopt != 0)
				fprintf(stderr,
					"kvbench: option '%s' needs a value\n",
					argv[optind - 1]);
			else
				fprintf(stderr,
					"kvbench: unknown option '%s'\n",
					argv[optind - 1]);
			fprintf(stderr, "Try 'kvbench --help'.\n");
			return -1;
		}
		rv = parse_opt(o, c, optarg, &have_total);
		if (rv != 0)
			return rv;
	}
	if (optind >= argc) {
		fprintf(stderr, "kvbench: missing workload: put, get or "
				"mixed\nTry 'kvbench --help'.\n");
		return -1;
	}
	if (argc - optind > 1) {
		fprintf(stderr, "kvbench: one workload only, got '%s' too\n",
			argv[optind + 1]);
		return -1;
	}
	o->op_name = argv[optind];
	if (strcmp(o->op_name, "put") == 0) {
		o->op = OP_PUT;
	} else if (strcmp(o->op_name, "get") == 0 ||
		   strcmp(o->op_name, "range") == 0) {
		o->op = OP_GET;
	} else if (strcmp(o->op_name, "mixed") == 0) {
		o->op = OP_MIXED;
	} else {
		fprintf(stderr,
			"kvbench: unknown workload '%s': want put, get or "
			"mixed\n",
			o->op_name);
		return -1;
	}
	if (have_total && o->duration_ms > 0) {
		fprintf(stderr, "kvbench: --total and --duration exclude each "
				"other\n");
		return -1;
	}
	if (o->seq && o->key_space > 1) {
		fprintf(stderr, "kvbench: --seq and --key-space exclude each "
				"other\n");
		return -1;
	}
	if (o->conns > o->clients) {
		fprintf(stderr,
			"kvbench: --conns %u is more than --clients %u: "
			"connections without a client would stay idle\n",
			o->conns, o->clients);
		return -1;
	}
	return 0;
}

/* ---- Keys and requests ----------------------------------------------------
 */

/* xorshift64*: the mixed workload's coin and key choice. */
static uint64_t rng_next(struct bench *b)
{
	b->rng ^= b->rng >> 12;
	b->rng ^= b->rng << 25;
	b->rng ^= b->rng >> 27;
	return b->rng * 2685821657736338717ull;
}

/* Key number n as the etcd tool lays it out: its 8 big-endian bytes,
 * truncated to the last key_size of them when shorter, zero-padded on the
 * right when longer. */
static void make_key(const struct bench_opts *o, uint64_t n, uint8_t *key)
{
	uint8_t be[8];
	unsigned i, len = o->key_size < 8 ? o->key_size : 8;

	if (!o->seq)
		n %= o->key_space;
	for (i = 0; i < 8; i++)
		be[i] = (uint8_t)(n >> (56 - 8 * i));
	memset(key, 0, o->key_size);
	memcpy(key, be + 8 - len, len);
}

static void worker_step(struct bench_worker *w);
static void bench_finish(struct bench *b);

static void record_error(struct bench *b, const struct bench_worker *w,
			 const struct kv_client_result *res)
{
	b->errors++;
	if (b->shown_errors >= MAX_SHOWN_ERRORS)
		return;
	b->shown_errors++;
	fprintf(stderr, "kvbench: %s failed: %s%s%s\n",
		w->is_get ? "get" : "put", res->error,
		res->unknown ? " (outcome unknown)" : "",
		b->shown_errors == MAX_SHOWN_ERRORS ? "; more errors not shown"
						    : "");
}

static int record_sample(struct bench *b, uint64_t ns)
{
	uint64_t *s;
	size_t cap;

	if (b->n_samples == b->cap_samples) {
		cap = b->cap_samples < 1024 ? 1024 : b->cap_samples * 2;
		s = realloc(b->samples, cap * sizeof(*s));
		if (s == NULL)
			return -1;
		b->samples = s;
		b->cap_samples = cap;
	}
	b->samples[b->n_samples++] = ns;
	return 0;
}

static void worker_cb(void *arg, const struct kv_client_result *res)
{
	struct bench_worker *w = arg;
	struct bench *b = w->b;
	uint64_t ns = uv_hrtime() - w->sent_ns;
	bool ok =
	    res->rc == RAFT_OK || (w->is_get && res->rc == RAFT_ENOTFOUND);

	b->active--;
	if (res->rc == RAFT_ENOTFOUND && w->is_get && !w->warmup)
		b->not_found++;
	if (w->warmup) {
		if (!ok) {
			record_error(b, w, res);
			b->fatal = true;
		}
	} else if (!ok) {
		record_error(b, w, res);
	} else if (record_sample(b, ns) != 0) {
		fprintf(stderr, "kvbench: out of memory for samples\n");
		b->fatal = true;
	}
	if (res->rc == RAFT_ESHUTDOWN)
		return;
	worker_step(w);
}

/* Submit one request for key number n; returns a RAFT_* code. */
static int worker_submit(struct bench_worker *w, uint64_t n, bool is_get)
{
	struct bench *b = w->b;
	const struct bench_opts *o = &b->o;
	int rv;

	w->is_get = is_get;
	w->sent_ns = uv_hrtime();
	if (o->op == OP_GET) {
		rv = kv_client_get(w->conn, o->key, strlen(o->key),
				   o->serializable, worker_cb, w);
	} else {
		make_key(o, n, w->key);
		if (is_get)
			rv = kv_client_get(w->conn, w->key, o->key_size,
					   o->serializable, worker_cb, w);
		else
			rv = kv_client_put(w->conn, w->key, o->key_size,
					   b->value, o->val_size, worker_cb, w);
	}
	if (rv == RAFT_OK)
		b->active++;
	return rv;
}

/* The next request of this loop, or nothing when the phase is over. */
static void worker_step(struct bench_worker *w)
{
	struct bench *b = w->b;
	const struct bench_opts *o = &b->o;
	uint64_t n;
	bool is_get;
	int rv;

	if (b->fatal)
		goto idle;
	if (b->phase == PHASE_WARMUP) {
		if (w->warm_left == 0)
			goto idle;
		w->warm_left--;
		w->warmup = true;
		/* Keys far from the run's, as the etcd tool does. */
		n = ((uint64_t)1 << 40) + w->warm_left;
	} else {
		if (o->duration_ms > 0 ? uv_hrtime() >= b->deadline_ns
				       : b->next >= o->total)
			goto idle;
		n = ++b->next;
		w->warmup = false;
	}
	if (o->op == OP_MIXED) {
		is_get = (double)(rng_next(b) >> 11) / 9007199254740992.0 <
			 o->read_ratio;
		if (o->key_space > 1)
			n = rng_next(b) % o->key_space;
	} else {
		is_get = o->op == OP_GET;
	}
	rv = worker_submit(w, n, is_get);
	if (rv != RAFT_OK) {
		fprintf(stderr, "kvbench: the client refused a request: %s\n",
			raft_strerror(rv));
		b->fatal = true;
		goto idle;
	}
	return;

idle:
	if (b->active == 0)
		bench_finish(b);
}

/* ---- Phases ---------------------------------------------------------------
 */

static void progress_cb(uv_timer_t *t)
{
	struct bench *b = t->data;
	uint64_t now = uv_hrtime(), done = b->n_samples + b->errors;
	double el = (double)(now - b->start_ns) / 1e9;
	double dt = (double)(now - b->progress_last_ns) / 1e9;

	if (b->phase != PHASE_RUN || el * 1000 < PROGRESS_AFTER_MS)
		return;
	fprintf(stderr,
		"kvbench: %.1fs n=%" PRIu64 " errors=%" PRIu64
		" QPS(last %.1fs)=%.0f\n",
		el, done, b->errors, dt,
		(double)(done - b->progress_last_n) / dt);
	b->progress_last_n = done;
	b->progress_last_ns = now;
}

static void start_run(struct bench *b)
{
	unsigned i;

	b->phase = PHASE_RUN;
	b->start_ns = uv_hrtime();
	b->deadline_ns = b->start_ns + (uint64_t)b->o.duration_ms * 1000000;
	b->progress_last_ns = b->start_ns;
	if (!b->o.quiet)
		uv_timer_start(&b->progress, progress_cb, PROGRESS_PERIOD_MS,
			       PROGRESS_PERIOD_MS);
	for (i = 0; i < b->o.clients && !b->fatal; i++)
		worker_step(&b->workers[i]);
}

static void conn_closed_cb(void *arg)
{
	struct bench *b = arg;

	b->closing--;
}

/* Called when no request is in flight and none will be started. */
static void bench_finish(struct bench *b)
{
	unsigned i;

	if (b->phase == PHASE_WARMUP && !b->fatal) {
		start_run(b);
		return;
	}
	if (b->phase == PHASE_DONE)
		return;
	if (b->phase == PHASE_RUN)
		b->end_ns = uv_hrtime();
	b->phase = PHASE_DONE;
	uv_timer_stop(&b->progress);
	uv_close((uv_handle_t *)&b->progress, NULL);
	for (i = 0; i < b->o.conns; i++) {
		if (b->conns[i] == NULL)
			continue;
		b->closing++;
		kv_client_close(b->conns[i], conn_closed_cb, b);
		b->conns[i] = NULL;
	}
}

/* ---- Setup ----------------------------------------------------------------
 */

struct setup_wait {
	bool done;
	int rc;
	char error[256];
	const char *endpoint;
	bool is_leader;
};

static void setup_cb(void *arg, const struct kv_client_result *res)
{
	struct setup_wait *sw = arg;

	sw->done = true;
	sw->rc = res->rc;
	snprintf(sw->error, sizeof(sw->error), "%s", res->error);
	sw->is_leader = res->status != NULL && res->status->leader != 0 &&
			res->status->id == res->status->leader;
}

static void setup_run(struct bench *b, struct setup_wait *sw)
{
	while (!sw->done)
		uv_run(&b->loop, UV_RUN_ONCE);
}

static void closed_flag_cb(void *arg)
{
	*(bool *)arg = true;
}

static int open_client(struct bench *b, const char *const *eps, size_t n,
		       unsigned timeout_ms, struct kv_client **out)
{
	struct kv_client_config cfg;
	char err[256];

	kv_client_config_init(&cfg);
	cfg.endpoints = eps;
	cfg.n_endpoints = n;
	cfg.timeout_ms = timeout_ms;
	if (kv_client_new(&b->loop, &cfg, out, err, sizeof(err)) != RAFT_OK) {
		fprintf(stderr, "kvbench: --endpoints: %s\n", err);
		return -1;
	}
	return 0;
}

/* Ask each endpoint for its status; returns the index of the one that is
 * the leader, or -1. */
static int find_leader(struct bench *b)
{
	struct kv_client *c;
	struct setup_wait sw;
	bool closed = false;
	int found = -1;
	size_t i;

	if (open_client(b, b->eps.items, b->eps.n, SETUP_TIMEOUT_MS, &c) != 0)
		return -1;
	for (i = 0; i < b->eps.n && found < 0; i++) {
		memset(&sw, 0, sizeof(sw));
		if (kv_client_status(c, i, setup_cb, &sw) != RAFT_OK)
			break;
		setup_run(b, &sw);
		if (sw.rc == RAFT_OK && sw.is_leader)
			found = (int)i;
		else if (sw.rc != RAFT_OK)
			fprintf(stderr, "kvbench: status of %s: %s\n",
				b->eps.items[i], sw.error);
	}
	kv_client_close(c, closed_flag_cb, &closed);
	while (!closed)
		uv_run(&b->loop, UV_RUN_ONCE);
	if (found < 0)
		fprintf(stderr, "kvbench: --target-leader: no endpoint says "
				"it is the leader\n");
	return found;
}

/* Open the connections: connection i starts at endpoint i mod n and
 * moves on from there, as the etcd tool rotates its endpoint list. */
static int open_conns(struct bench *b, int leader)
{
	const char *rot[KV_CLIENT_MAX_ENDPOINTS];
	size_t n = b->eps.n, j;
	unsigned i;

	b->conns = calloc(b->o.conns, sizeof(*b->conns));
	if (b->conns == NULL)
		return -1;
	for (i = 0; i < b->o.conns; i++) {
		if (leader >= 0) {
			rot[0] = b->eps.items[leader];
			n = 1;
		} else {
			for (j = 0; j < n; j++)
				rot[j] = b->eps.items[(i + j) % n];
		}
		if (open_client(b, rot, n, b->o.timeout_ms, &b->conns[i]) != 0)
			return -1;
	}
	return 0;
}

/* get reads one key: write it first with a value of --val-size bytes. */
static int write_read_key(struct bench *b)
{
	struct setup_wait sw = {0};
	int rv;

	rv = kv_client_put(b->conns[0], b->o.key, strlen(b->o.key), b->value,
			   b->o.val_size, setup_cb, &sw);
	if (rv == RAFT_OK)
		setup_run(b, &sw);
	else
		snprintf(sw.error, sizeof(sw.error), "%s", raft_strerror(rv));
	if (rv != RAFT_OK || sw.rc != RAFT_OK) {
		fprintf(stderr, "kvbench: writing the key to read: %s\n",
			sw.error);
		return -1;
	}
	return 0;
}

static int setup(struct bench *b)
{
	char err[256];
	unsigned i, warm;
	int leader = -1;

	if (cli_list_split(b->o.endpoints, KV_CLIENT_MAX_ENDPOINTS, &b->eps,
			   err, sizeof(err)) != 0) {
		fprintf(stderr, "kvbench: --endpoints %s\n", err);
		return EXIT_USAGE;
	}
	b->value = malloc(b->o.val_size + 1);
	b->workers = calloc(b->o.clients, sizeof(*b->workers));
	if (b->value == NULL || b->workers == NULL)
		goto err_nomem;
	memset(b->value, 'v', b->o.val_size);
	if (b->o.target_leader && (leader = find_leader(b)) < 0)
		return EXIT_SETUP;
	if (open_conns(b, leader) != 0)
		return b->conns == NULL ? EXIT_SETUP : EXIT_USAGE;
	if (b->o.op == OP_GET && write_read_key(b) != 0)
		return EXIT_SETUP;
	/* Warm-up: at least one request per connection, spread evenly. */
	warm = b->o.warmup > b->o.conns ? b->o.warmup : b->o.conns;
	if (b->o.warmup == 0)
		warm = 0;
	for (i = 0; i < b->o.clients; i++) {
		struct bench_worker *w = &b->workers[i];

		w->b = b;
		w->conn = b->conns[i % b->o.conns];
		w->key = malloc(b->o.key_size);
		if (w->key == NULL)
			goto err_nomem;
		if (i < b->o.conns)
			w->warm_left =
			    warm / b->o.conns + (i < warm % b->o.conns);
	}
	if (b->o.duration_ms == 0) {
		b->samples = malloc(b->o.total * sizeof(*b->samples));
		if (b->samples == NULL)
			goto err_nomem;
		b->cap_samples = b->o.total;
	}
	return EXIT_OK;

err_nomem:
	fprintf(stderr, "kvbench: out of memory\n");
	return EXIT_SETUP;
}

/* ---- Report ---------------------------------------------------------------
 */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct bench_stats {
	double time_s, qps, mean, sd, min, p50, p90, p99, p999, max;
};

/* The q-quantile as the etcd tool takes it: sample floor(q * (n - 1)). */
static double quantile_ms(const struct bench *b, double q)
{
	size_t i = (size_t)(q * (double)(b->n_samples - 1));

	return (double)b->samples[i] / 1e6;
}

static void compute_stats(struct bench *b, struct bench_stats *s)
{
	double sum = 0, sq = 0, f, var;
	size_t i, n = b->n_samples;

	qsort(b->samples, n, sizeof(*b->samples), cmp_u64);
	for (i = 0; i < n; i++) {
		f = (double)b->samples[i] / 1e6;
		sum += f;
		sq += f * f;
	}
	s->time_s = (double)(b->end_ns - b->start_ns) / 1e9;
	s->qps = s->time_s > 0 ? (double)n / s->time_s : 0;
	s->mean = sum / (double)n;
	var = sq / (double)n - s->mean * s->mean;
	s->sd = var > 0 ? sqrt(var) : 0;
	s->min = quantile_ms(b, 0);
	s->p50 = quantile_ms(b, 0.5);
	s->p90 = quantile_ms(b, 0.9);
	s->p99 = quantile_ms(b, 0.99);
	s->p999 = quantile_ms(b, 0.999);
	s->max = quantile_ms(b, 1);
}

static void report(struct bench *b)
{
	const struct bench_opts *o = &b->o;
	struct bench_stats s;
	char extra[64] = "";

	compute_stats(b, &s);
	if (o->op == OP_MIXED)
		snprintf(extra, sizeof(extra),
			 " readRatio=%.2f notFound=%" PRIu64, o->read_ratio,
			 b->not_found);
	if (!o->json) {
		printf("%s conns=%u clients=%u key=%uB val=%uB "
		       "consistency=%s leaderOnly=%s n=%zu errors=%" PRIu64
		       " time=%.2fs  QPS=%.0f  lat(ms): mean=%.3f sd=%.3f "
		       "min=%.3f p50=%.3f p90=%.3f p99=%.3f p99.9=%.3f "
		       "max=%.3f%s\n",
		       o->op_name, o->conns, o->clients, o->key_size,
		       o->val_size, o->serializable ? "s" : "l",
		       o->target_leader ? "true" : "false", b->n_samples,
		       b->errors, s.time_s, s.qps, s.mean, s.sd, s.min, s.p50,
		       s.p90, s.p99, s.p999, s.max, extra);
		return;
	}
	printf("{\"op\":\"%s\",\"conns\":%u,\"clients\":%u,\"key_size\":%u,"
	       "\"val_size\":%u,\"consistency\":\"%s\",\"leader_only\":%s,",
	       o->op_name, o->conns, o->clients, o->key_size, o->val_size,
	       o->serializable ? "s" : "l",
	       o->target_leader ? "true" : "false");
	if (o->op == OP_MIXED)
		printf("\"read_ratio\":%.4f,\"not_found\":%" PRIu64 ",",
		       o->read_ratio, b->not_found);
	printf("\"n\":%zu,\"errors\":%" PRIu64 ",\"time_s\":%.4f,"
	       "\"qps\":%.1f,\"lat_ms\":{\"mean\":%.4f,\"sd\":%.4f,"
	       "\"min\":%.4f,\"p50\":%.4f,\"p90\":%.4f,\"p99\":%.4f,"
	       "\"p99.9\":%.4f,\"max\":%.4f}}\n",
	       b->n_samples, b->errors, s.time_s, s.qps, s.mean, s.sd, s.min,
	       s.p50, s.p90, s.p99, s.p999, s.max);
}

/* ---- Main -----------------------------------------------------------------
 */

static void bench_free(struct bench *b)
{
	unsigned i;

	for (i = 0; b->conns != NULL && i < b->o.conns; i++) {
		if (b->conns[i] == NULL)
			continue;
		b->closing++;
		kv_client_close(b->conns[i], conn_closed_cb, b);
	}
	if (!uv_is_closing((uv_handle_t *)&b->progress))
		uv_close((uv_handle_t *)&b->progress, NULL);
	uv_run(&b->loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&b->loop) != 0)
		fprintf(stderr, "kvbench: handles left open at exit\n");
	for (i = 0; b->workers != NULL && i < b->o.clients; i++)
		free(b->workers[i].key);
	free(b->workers);
	free(b->conns);
	free(b->samples);
	free(b->value);
	cli_list_free(&b->eps);
}

int main(int argc, char **argv)
{
	struct bench b;
	unsigned i;
	int code, rv;

	memset(&b, 0, sizeof(b));
	rv = parse_args(argc, argv, &b.o);
	if (rv != 0)
		return rv > 0 ? EXIT_OK : EXIT_USAGE;
	/* A server that closes a connection must not kill us mid-write. */
	signal(SIGPIPE, SIG_IGN);
	if (uv_loop_init(&b.loop) != 0) {
		fprintf(stderr, "kvbench: cannot create the event loop\n");
		return EXIT_SETUP;
	}
	uv_timer_init(&b.loop, &b.progress);
	b.progress.data = &b;
	b.rng = 0x9e3779b97f4a7c15ull ^ uv_hrtime();
	b.phase = PHASE_SETUP;
	code = setup(&b);
	if (code != EXIT_OK)
		goto out;

	/* Only loops with warm-up requests start here: one with none would
	 * end the phase while others are still to start. */
	b.phase = PHASE_WARMUP;
	for (i = 0; i < b.o.conns && !b.fatal; i++)
		if (b.workers[i].warm_left > 0)
			worker_step(&b.workers[i]);
	if (b.active == 0)
		bench_finish(&b);
	uv_run(&b.loop, UV_RUN_DEFAULT);

	if (b.end_ns == 0) {
		fprintf(stderr, "kvbench: stopped during the warm-up\n");
		code = EXIT_SETUP;
	} else if (b.n_samples == 0) {
		printf("no successful requests, errors: %" PRIu64 "\n",
		       b.errors);
		code = EXIT_NOREQUESTS;
	} else {
		report(&b);
		code = b.fatal ? EXIT_SETUP : EXIT_OK;
	}
out:
	bench_free(&b);
	return code;
}
