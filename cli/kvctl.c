/* kvctl: the command-line client of a kvd cluster.
 *
 * Each invocation runs one command through the blocking client library
 * (libraft/client.h) and maps its outcome to an exit code a script can rely
 * on; see usage() and docs/man/kvctl.1.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cliutil.h"
#include "libraft/client.h"
#include "libraft/kv.h"

#define KVCTL_VERSION "0.1.0"

enum kvctl_exit {
	EXIT_OK = 0,
	EXIT_NOTFOUND = 1,
	EXIT_USAGE = 2,
	EXIT_UNAVAILABLE = 3,
	EXIT_UNKNOWN = 4,
	EXIT_REJECTED = 5,
};

struct kvctl_opts {
	const char *endpoints;
	const char *endpoints_from; /* "--endpoints" or "KVCTL_ENDPOINTS" */
	unsigned timeout_ms;
	bool json;
	bool serializable;
};

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: kvctl [OPTIONS] COMMAND [ARGS]\n"
	    "\n"
	    "Commands:\n"
	    "  get KEY          print the value of KEY (raw bytes) to stdout\n"
	    "  put KEY VALUE    set KEY to VALUE; VALUE '-' reads stdin\n"
	    "  del KEY          delete KEY\n"
	    "  status           ask every endpoint for its status (table)\n"
	    "\n"
	    "Options:\n"
	    "  --endpoints H:P,...  cluster client addresses (default: "
	    "$KVCTL_ENDPOINTS,\n"
	    "                       else %s)\n"
	    "  --timeout D          give up after D (e.g. 500ms, 5s; "
	    "default 5s)\n"
	    "  --json               print results, and errors from the "
	    "cluster, as JSON\n"
	    "                       on stdout (usage errors go to stderr "
	    "only)\n"
	    "  --serializable       get only: read the node's local copy "
	    "(may be stale,\n"
	    "                       works without a quorum)\n"
	    "  -h, --help           show this help\n"
	    "  --version            print the version\n"
	    "Use -- before a KEY or VALUE that starts with '-'.\n"
	    "\n"
	    "Exit codes:\n"
	    "  0  success\n"
	    "  1  key not found (get, del)\n"
	    "  2  usage error\n"
	    "  3  cluster unavailable or timed out (nothing was changed)\n"
	    "  4  outcome unknown: the write may or may not have been "
	    "applied\n"
	    "  5  rejected (by the server, or by the client's own limit "
	    "checks),\n"
	    "     e.g. key or value too large\n"
	    "status exits 0 when an endpoint answered and a leader is "
	    "known, else 3.\n",
	    CLI_DEFAULT_ENDPOINTS);
}

/* Read all of stdin, at most max bytes. Returns 0; 1 when stdin holds more
 * (nothing printed); or -1 with a message printed. */
static int read_stdin(size_t max, char **out, size_t *len)
{
	size_t cap = 64 * 1024, n = 0;
	char *buf = malloc(cap), *nbuf;
	size_t r;

	if (buf == NULL)
		goto err_nomem;
	for (;;) {
		if (n == cap) {
			if (cap > max)
				goto err_big;
			cap *= 2;
			nbuf = realloc(buf, cap);
			if (nbuf == NULL)
				goto err_nomem;
			buf = nbuf;
		}
		r = fread(buf + n, 1, cap - n, stdin);
		n += r;
		if (r == 0)
			break;
	}
	if (ferror(stdin)) {
		perror("kvctl: reading stdin");
		free(buf);
		return -1;
	}
	if (n > max)
		goto err_big;
	*out = buf;
	*len = n;
	return 0;

err_big:
	free(buf);
	return 1;

err_nomem:
	free(buf);
	fprintf(stderr, "kvctl: out of memory\n");
	return -1;
}

/* Map a reply to an exit code, printing errors (text on stderr; JSON on
 * stdout too with --json). */
static int reply_exit(const struct kvctl_opts *o, const char *cmd,
		      const struct kv_client_reply *r)
{
	int code;

	if (r->rc == RAFT_OK)
		return EXIT_OK;
	if (r->rc == RAFT_ENOTFOUND)
		code = EXIT_NOTFOUND;
	else if (r->unknown)
		code = EXIT_UNKNOWN;
	else if (r->rc == RAFT_EUNAVAIL || r->rc == RAFT_ETIMEDOUT ||
		 r->rc == RAFT_ESHUTDOWN || r->rc == RAFT_ENOTLEADER ||
		 r->rc == RAFT_ELEADERLOST)
		code = EXIT_UNAVAILABLE;
	else if (r->rc == RAFT_EINVAL)
		code = EXIT_USAGE;
	else
		code = EXIT_REJECTED;

	if (code == EXIT_NOTFOUND)
		fprintf(stderr, "kvctl: %s: key not found\n", cmd);
	else
		fprintf(stderr, "kvctl: %s: %s%s%s\n", cmd,
			code == EXIT_REJECTED ? "rejected: " : "", r->error,
			code == EXIT_UNKNOWN ? " (outcome unknown)" : "");
	if (o->json) {
		printf("{\"ok\":false,\"code\":%d,\"error\":", r->rc);
		cli_json_string(stdout, r->error, strlen(r->error));
		printf(",\"unknown\":%s,\"exit\":%d}\n",
		       r->unknown ? "true" : "false", code);
	}
	return code;
}

/* A request over a limit the server would refuse: refused here without
 * sending, reported as the server's rejection would be. len 0: unknown
 * (what then says "... is"). */
static int local_reject(const struct kvctl_opts *o, const char *cmd,
			const char *what, size_t len, size_t limit)
{
	struct kv_client_reply r;
	int code;

	memset(&r, 0, sizeof(r));
	r.rc = RAFT_ETOOBIG;
	if (len == 0)
		snprintf(r.error, sizeof(r.error),
			 "%s over the %zu-byte limit (checked before sending)",
			 what, limit);
	else
		snprintf(r.error, sizeof(r.error),
			 "%s of %zu bytes is over the %zu-byte limit (checked "
			 "before sending)",
			 what, len, limit);
	code = reply_exit(o, cmd, &r);
	kv_client_reply_free(&r);
	return code;
}

static void print_write_json(const struct kv_client_reply *r)
{
	printf("{\"ok\":true,\"mod_index\":%llu,\"endpoint\":",
	       (unsigned long long)r->mod_index);
	cli_json_string(stdout, r->endpoint, strlen(r->endpoint));
	printf("}\n");
}

static int cmd_get(struct kv_client_sync *s, const struct kvctl_opts *o,
		   const char *key)
{
	struct kv_client_reply r;
	int code;

	kv_client_sync_get(s, key, strlen(key), o->serializable, &r);
	code = reply_exit(o, "get", &r);
	if (code == EXIT_OK && o->json) {
		printf("{\"ok\":true");
		if (cli_utf8_valid(key, strlen(key))) {
			printf(",\"key\":");
			cli_json_string(stdout, key, strlen(key));
		}
		printf(",\"key_base64\":");
		cli_json_base64(stdout, key, strlen(key));
		if (cli_utf8_valid(r.value, r.value_len)) {
			printf(",\"value\":");
			cli_json_string(stdout, r.value, r.value_len);
		}
		printf(",\"value_base64\":");
		cli_json_base64(stdout, r.value, r.value_len);
		printf(",\"endpoint\":");
		cli_json_string(stdout, r.endpoint, strlen(r.endpoint));
		printf(",\"create_index\":%llu,\"mod_index\":%llu,"
		       "\"version\":%llu}\n",
		       (unsigned long long)r.create_index,
		       (unsigned long long)r.mod_index,
		       (unsigned long long)r.version);
	} else if (code == EXIT_OK && r.value_len > 0) {
		if (fwrite(r.value, 1, r.value_len, stdout) != r.value_len) {
			perror("kvctl: writing stdout");
			code = EXIT_REJECTED;
		}
	}
	kv_client_reply_free(&r);
	return code;
}

static int cmd_put(struct kv_client_sync *s, const struct kvctl_opts *o,
		   const char *key, const char *value)
{
	struct kv_client_reply r;
	char *buf = NULL;
	size_t len;
	int code;

	if (strcmp(value, "-") == 0) {
		switch (read_stdin(KV_MAX_VALUE, &buf, &len)) {
		case 0:
			break;
		case 1:
			return local_reject(o, "put", "the value on stdin is",
					    0, KV_MAX_VALUE);
		default:
			return EXIT_REJECTED;
		}
		value = buf;
	} else {
		len = strlen(value);
		if (len > KV_MAX_VALUE) {
			code =
			    local_reject(o, "put", "value", len, KV_MAX_VALUE);
			goto out;
		}
	}
	kv_client_sync_put(s, key, strlen(key), value, len, &r);
	code = reply_exit(o, "put", &r);
	if (code == EXIT_OK && o->json)
		print_write_json(&r);
	kv_client_reply_free(&r);
out:
	free(buf);
	return code;
}

static int cmd_del(struct kv_client_sync *s, const struct kvctl_opts *o,
		   const char *key)
{
	struct kv_client_reply r;
	int code;

	kv_client_sync_del(s, key, strlen(key), &r);
	code = reply_exit(o, "del", &r);
	if (code == EXIT_OK && o->json)
		print_write_json(&r);
	kv_client_reply_free(&r);
	return code;
}

static void status_json(struct kv_client_sync *s,
			const struct kv_client_reply *r, size_t n)
{
	size_t i, j;

	printf("[");
	for (i = 0; i < n; i++) {
		const struct kv_client_node_status *st = &r[i].status;
		const char *ep = kv_client_sync_endpoint(s, i);

		printf("%s{\"endpoint\":", i > 0 ? "," : "");
		cli_json_string(stdout, ep, strlen(ep));
		if (r[i].rc != RAFT_OK) {
			printf(",\"ok\":false,\"code\":%d,\"error\":", r[i].rc);
			cli_json_string(stdout, r[i].error, strlen(r[i].error));
			printf("}");
			continue;
		}
		printf(",\"ok\":true,\"id\":%llu,\"role\":\"%s\","
		       "\"term\":%llu,\"leader\":%llu,\"leader_addr\":",
		       (unsigned long long)st->id, st->role,
		       (unsigned long long)st->term,
		       (unsigned long long)st->leader);
		cli_json_string(stdout, st->leader_addr,
				strlen(st->leader_addr));
		printf(",\"commit\":%llu,\"applied\":%llu,"
		       "\"last_index\":%llu,\"peers\":[",
		       (unsigned long long)st->commit,
		       (unsigned long long)st->applied,
		       (unsigned long long)st->last_index);
		for (j = 0; j < st->n_peers; j++) {
			printf("%s{\"id\":%llu,\"addr\":", j > 0 ? "," : "",
			       (unsigned long long)st->peers[j].id);
			cli_json_string(stdout, st->peers[j].addr,
					strlen(st->peers[j].addr));
			printf(",\"client_addr\":");
			cli_json_string(stdout, st->peers[j].client_addr,
					strlen(st->peers[j].client_addr));
			printf(",\"match\":%llu,\"connected\":%s}",
			       (unsigned long long)st->peers[j].match,
			       st->peers[j].connected ? "true" : "false");
		}
		printf("]}");
	}
	printf("]\n");
}

static void status_table(struct kv_client_sync *s,
			 const struct kv_client_reply *r, size_t n)
{
	size_t i;

	printf("%-22s %4s %-12s %6s %6s %8s %8s\n", "ENDPOINT", "ID", "ROLE",
	       "TERM", "LEADER", "COMMIT", "APPLIED");
	for (i = 0; i < n; i++) {
		const struct kv_client_node_status *st = &r[i].status;

		if (r[i].rc != RAFT_OK) {
			printf("%-22s %4s %-12s (%s)\n",
			       kv_client_sync_endpoint(s, i), "-",
			       "unreachable", r[i].error);
			continue;
		}
		printf("%-22s %4llu %-12s %6llu %6llu %8llu %8llu\n",
		       kv_client_sync_endpoint(s, i),
		       (unsigned long long)st->id, st->role,
		       (unsigned long long)st->term,
		       (unsigned long long)st->leader,
		       (unsigned long long)st->commit,
		       (unsigned long long)st->applied);
	}
}

static int cmd_status(struct kv_client_sync *s, const struct kvctl_opts *o)
{
	struct kv_client_reply r[KV_CLIENT_MAX_ENDPOINTS];
	size_t i, n = kv_client_sync_n_endpoints(s);
	bool answered = false, leader = false;

	kv_client_sync_status_all(s, r);
	for (i = 0; i < n; i++) {
		if (r[i].rc != RAFT_OK || !r[i].has_status)
			continue;
		answered = true;
		leader = leader || r[i].status.leader != 0;
	}
	if (o->json)
		status_json(s, r, n);
	else
		status_table(s, r, n);
	for (i = 0; i < n; i++)
		kv_client_reply_free(&r[i]);
	if (!answered) {
		fprintf(stderr, "kvctl: status: no endpoint answered\n");
		return EXIT_UNAVAILABLE;
	}
	if (!leader) {
		fprintf(stderr, "kvctl: status: no leader known\n");
		return EXIT_UNAVAILABLE;
	}
	return EXIT_OK;
}

/* How many arguments each command takes. */
static int command_arity(const char *cmd)
{
	if (strcmp(cmd, "get") == 0 || strcmp(cmd, "del") == 0)
		return 1;
	if (strcmp(cmd, "put") == 0)
		return 2;
	if (strcmp(cmd, "status") == 0)
		return 0;
	return -1;
}

static int run(const struct kvctl_opts *o, const char *cmd, char **args)
{
	struct kv_client_config cfg;
	struct kv_client_sync *s;
	struct cli_list eps;
	char err[256];
	int code;

	if (cli_list_split(o->endpoints, KV_CLIENT_MAX_ENDPOINTS, &eps, err,
			   sizeof(err)) != 0) {
		fprintf(stderr, "kvctl: %s %s\n", o->endpoints_from, err);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < eps.n; i++) {
		if (cli_check_endpoint(eps.items[i], err, sizeof(err)) != 0) {
			fprintf(stderr, "kvctl: %s %s\n", o->endpoints_from,
				err);
			cli_list_free(&eps);
			return EXIT_USAGE;
		}
	}
	kv_client_config_init(&cfg);
	cfg.endpoints = eps.items;
	cfg.n_endpoints = eps.n;
	cfg.timeout_ms = o->timeout_ms;
	if (cfg.connect_timeout_ms > o->timeout_ms)
		cfg.connect_timeout_ms = o->timeout_ms;
	code = kv_client_sync_open(&cfg, &s, err, sizeof(err));
	if (code != RAFT_OK) {
		fprintf(stderr, "kvctl: %s\n", err);
		cli_list_free(&eps);
		return code == RAFT_EUNAVAIL ? EXIT_UNAVAILABLE : EXIT_USAGE;
	}
	if (strcmp(cmd, "status") != 0 && strlen(args[0]) > KV_MAX_KEY)
		code = local_reject(o, cmd, "key", strlen(args[0]), KV_MAX_KEY);
	else if (strcmp(cmd, "get") == 0)
		code = cmd_get(s, o, args[0]);
	else if (strcmp(cmd, "put") == 0)
		code = cmd_put(s, o, args[0], args[1]);
	else if (strcmp(cmd, "del") == 0)
		code = cmd_del(s, o, args[0]);
	else
		code = cmd_status(s, o);
	kv_client_sync_close(s);
	cli_list_free(&eps);
	return code;
}

int main(int argc, char **argv)
{
	enum { OPT_ENDPOINTS = 256, OPT_TIMEOUT, OPT_JSON, OPT_SER, OPT_VER };
	static const struct option longopts[] = {
	    {"endpoints", required_argument, NULL, OPT_ENDPOINTS},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"json", no_argument, NULL, OPT_JSON},
	    {"serializable", no_argument, NULL, OPT_SER},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, OPT_VER},
	    {NULL, 0, NULL, 0},
	};
	struct kvctl_opts o = {0};
	const char *cmd;
	int c, arity;

	o.endpoints = getenv("KVCTL_ENDPOINTS");
	o.endpoints_from = "KVCTL_ENDPOINTS";
	if (o.endpoints == NULL || o.endpoints[0] == '\0') {
		o.endpoints = CLI_DEFAULT_ENDPOINTS;
		o.endpoints_from = "--endpoints";
	}
	o.timeout_ms = 5000;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_ENDPOINTS:
			o.endpoints = optarg;
			o.endpoints_from = "--endpoints";
			break;
		case OPT_TIMEOUT:
			if (cli_parse_duration_ms(optarg, &o.timeout_ms) != 0) {
				fprintf(stderr,
					"kvctl: --timeout '%s': want a "
					"duration such as 500ms or 5s\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_JSON:
			o.json = true;
			break;
		case OPT_SER:
			o.serializable = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case OPT_VER:
			printf("kvctl %s\n", KVCTL_VERSION);
			return EXIT_OK;
		default:
			if (optopt != 0 && optopt < 256)
				fprintf(stderr, "kvctl: unknown option '-%c'\n",
					optopt);
			else if (optopt != 0)
				fprintf(stderr,
					"kvctl: option '%s' needs a value\n",
					argv[optind - 1]);
			else
				fprintf(stderr, "kvctl: unknown option '%s'\n",
					argv[optind - 1]);
			fprintf(stderr, "Try 'kvctl --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "kvctl: missing command\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[optind++];
	arity = command_arity(cmd);
	if (arity < 0) {
		fprintf(stderr, "kvctl: unknown command '%s'\n", cmd);
		fprintf(stderr, "Try 'kvctl --help'.\n");
		return EXIT_USAGE;
	}
	if (argc - optind != arity) {
		fprintf(stderr, "kvctl: %s takes %d argument%s, got %d\n", cmd,
			arity, arity == 1 ? "" : "s", argc - optind);
		return EXIT_USAGE;
	}
	if (o.serializable && strcmp(cmd, "get") != 0) {
		fprintf(stderr,
			"kvctl: --serializable applies to get only, not %s\n",
			cmd);
		return EXIT_USAGE;
	}
	if (arity > 0 && argv[optind][0] == '\0') {
		fprintf(stderr, "kvctl: %s: the key must not be empty\n", cmd);
		return EXIT_USAGE;
	}
	/* A server that closes the connection must not kill us mid-write. */
	signal(SIGPIPE, SIG_IGN);
	return run(&o, cmd, argv + optind);
}
