/* kvd's flags and config file. One table of keys drives both, and the help
 * text, so that a key works the same way in either place. */
#include <errno.h>
#include <getopt.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <ini.h>

#include "config.h"
#include "log.h"

#define DEFAULT_MAX_CLIENTS	1024
#define DEFAULT_CLIENT_QUEUE_MB 32

typedef int (*key_setter)(struct kvd_config *cfg, const char *val, char *err,
			  size_t errlen);

struct key {
	const char *name;
	const char *metavar; /* NULL: a flag without a value */
	const char *help;
	key_setter set;
};

/* ---- Value parsers ------------------------------------------------------ */

static int parse_uint(const char *val, unsigned long long min,
		      unsigned long long max, unsigned long long *out)
{
	char *end;
	unsigned long long v;

	if (val[0] == '\0' || val[0] == '-')
		return -1;
	errno = 0;
	v = strtoull(val, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* host:port with a port in 1..65535 and a non-empty host. */
static int check_addr(const char *val, char *err, size_t errlen)
{
	const char *colon = strrchr(val, ':');
	unsigned long long port;

	if (strlen(val) >= RAFT_ADDR_MAX) {
		snprintf(err, errlen, "'%s' is longer than %d bytes", val,
			 RAFT_ADDR_MAX - 1);
		return -1;
	}
	if (colon == NULL || colon == val ||
	    parse_uint(colon + 1, 1, 65535, &port) != 0) {
		snprintf(err, errlen, "'%s' is not HOST:PORT", val);
		return -1;
	}
	return 0;
}

/* The host part of HOST:PORT (colon at end), without IPv6 brackets. */
static void unbracket(char *out, size_t cap, const char *addr, const char *end)
{
	if (end - addr >= 2 && addr[0] == '[' && end[-1] == ']')
		snprintf(out, cap, "%.*s", (int)(end - addr - 2), addr + 1);
	else
		snprintf(out, cap, "%.*s", (int)(end - addr), addr);
}

/* The socket addresses HOST:PORT resolves to here (freeaddrinfo() them),
 * or NULL if it does not resolve: the transport reports such a name when
 * it dials. */
static struct addrinfo *resolve(const char *addr)
{
	struct addrinfo hints, *res = NULL;
	char host[RAFT_ADDR_MAX];
	const char *colon = strrchr(addr, ':');

	if (colon == NULL)
		return NULL;
	unbracket(host, sizeof(host), addr, colon);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
		return NULL;
	return res;
}

/* Whether two HOST:PORT texts name the same socket address once resolved
 * ("localhost:7001" and "127.0.0.1:7001", say). Names that do not resolve
 * here are taken as different. */
static bool same_endpoint(const char *a, const char *b)
{
	const char *pa = strrchr(a, ':'), *pb = strrchr(b, ':');
	struct addrinfo *ra, *rb;
	bool same = false;

	if (pa == NULL || pb == NULL || strcmp(pa, pb) != 0)
		return false;
	ra = resolve(a);
	rb = ra != NULL ? resolve(b) : NULL;
	for (struct addrinfo *x = rb != NULL ? ra : NULL; x != NULL && !same;
	     x = x->ai_next)
		for (struct addrinfo *y = rb; y != NULL && !same;
		     y = y->ai_next)
			same =
			    x->ai_addrlen == y->ai_addrlen &&
			    memcmp(x->ai_addr, y->ai_addr, x->ai_addrlen) == 0;
	if (ra != NULL)
		freeaddrinfo(ra);
	if (rb != NULL)
		freeaddrinfo(rb);
	return same;
}

/* Whether HOST:PORT names the wildcard address (0.0.0.0, ::, ::ffff:0.0.0.0
 * or a name that resolves to one of them): fine to listen on, but the
 * members dial each other at these addresses, and a dial to the wildcard
 * reaches the dialling machine itself. */
static bool is_wildcard(const char *addr)
{
	static const unsigned char v4any[16] = {[10] = 0xff, [11] = 0xff};
	struct addrinfo *res = resolve(addr);
	bool any = false;

	for (struct addrinfo *x = res; x != NULL && !any; x = x->ai_next) {
		if (x->ai_family == AF_INET) {
			const struct sockaddr_in *in = (void *)x->ai_addr;
			any = in->sin_addr.s_addr == htonl(INADDR_ANY);
		} else if (x->ai_family == AF_INET6) {
			const struct sockaddr_in6 *in6 = (void *)x->ai_addr;
			any = IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr) ||
			      memcmp(&in6->sin6_addr, v4any, 16) == 0;
		}
	}
	if (res != NULL)
		freeaddrinfo(res);
	return any;
}

static int parse_bool(const char *val, bool *out)
{
	if (strcmp(val, "true") == 0 || strcmp(val, "yes") == 0 ||
	    strcmp(val, "1") == 0 || strcmp(val, "on") == 0) {
		*out = true;
		return 0;
	}
	if (strcmp(val, "false") == 0 || strcmp(val, "no") == 0 ||
	    strcmp(val, "0") == 0 || strcmp(val, "off") == 0) {
		*out = false;
		return 0;
	}
	return -1;
}

/* ---- Setters ------------------------------------------------------------ */

static int set_id(struct kvd_config *cfg, const char *val, char *err,
		  size_t errlen)
{
	unsigned long long v;

	if (parse_uint(val, 1, UINT64_MAX, &v) != 0) {
		snprintf(err, errlen, "'%s' is not a node id (1 or more)", val);
		return -1;
	}
	cfg->id = v;
	return 0;
}

static int set_data_dir(struct kvd_config *cfg, const char *val, char *err,
			size_t errlen)
{
	if (val[0] == '\0' || strlen(val) >= sizeof(cfg->data_dir)) {
		snprintf(err, errlen, "want a directory path");
		return -1;
	}
	snprintf(cfg->data_dir, sizeof(cfg->data_dir), "%s", val);
	return 0;
}

static int set_peer_addr(struct kvd_config *cfg, const char *val, char *err,
			 size_t errlen)
{
	if (check_addr(val, err, errlen) != 0)
		return -1;
	snprintf(cfg->peer_addr, sizeof(cfg->peer_addr), "%s", val);
	return 0;
}

static int set_client_addr(struct kvd_config *cfg, const char *val, char *err,
			   size_t errlen)
{
	if (check_addr(val, err, errlen) != 0)
		return -1;
	snprintf(cfg->client_addr, sizeof(cfg->client_addr), "%s", val);
	return 0;
}

/* "1=HOST:PORT,2=HOST:PORT,...": ids unique and non-zero. */
static int set_peers(struct kvd_config *cfg, const char *val, char *err,
		     size_t errlen)
{
	struct raft_member m[RAFT_MAX_PEERS];
	char item[RAFT_ADDR_MAX + 32];
	const char *p = val;
	unsigned long long id;
	size_t n = 0, i;

	while (*p != '\0') {
		const char *comma = strchr(p, ',');
		size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		char *eq;

		if (n == RAFT_MAX_PEERS) {
			snprintf(err, errlen, "more than %d members",
				 RAFT_MAX_PEERS);
			return -1;
		}
		if (len == 0 || len >= sizeof(item)) {
			snprintf(err, errlen, "'%s': want ID=HOST:PORT,...",
				 val);
			return -1;
		}
		memcpy(item, p, len);
		item[len] = '\0';
		eq = strchr(item, '=');
		if (eq == NULL) {
			snprintf(err, errlen, "'%s': want ID=HOST:PORT", item);
			return -1;
		}
		*eq = '\0';
		if (parse_uint(item, 1, UINT64_MAX, &id) != 0) {
			snprintf(err, errlen, "'%s' is not a node id", item);
			return -1;
		}
		m[n].id = id;
		if (check_addr(eq + 1, err, errlen) != 0)
			return -1;
		if (is_wildcard(eq + 1)) {
			snprintf(err, errlen,
				 "member %llu's address %s is the wildcard "
				 "address: the members dial each other at "
				 "these addresses, so give the one the "
				 "others reach it at",
				 (unsigned long long)id, eq + 1);
			return -1;
		}
		snprintf(m[n].addr, sizeof(m[n].addr), "%s", eq + 1);
		for (i = 0; i < n; i++) {
			if (m[i].id == m[n].id) {
				snprintf(err, errlen,
					 "member %llu appears twice",
					 (unsigned long long)m[n].id);
				return -1;
			}
			if (strcmp(m[i].addr, m[n].addr) == 0) {
				snprintf(err, errlen,
					 "members %llu and %llu have the same "
					 "address %s; every member needs its "
					 "own",
					 (unsigned long long)m[i].id,
					 (unsigned long long)m[n].id,
					 m[n].addr);
				return -1;
			}
			if (same_endpoint(m[i].addr, m[n].addr)) {
				snprintf(err, errlen,
					 "members %llu and %llu have the same "
					 "address (%s and %s name one host and "
					 "port); every member needs its own",
					 (unsigned long long)m[i].id,
					 (unsigned long long)m[n].id, m[i].addr,
					 m[n].addr);
				return -1;
			}
		}
		n++;
		p += len;
		if (*p == ',')
			p++;
	}
	if (n == 0) {
		snprintf(err, errlen, "want ID=HOST:PORT,...");
		return -1;
	}
	memcpy(cfg->members, m, n * sizeof(m[0]));
	cfg->n_members = n;
	return 0;
}

static int set_ticks(unsigned *out, const char *val, unsigned long long max,
		     char *err, size_t errlen)
{
	unsigned long long v;

	if (parse_uint(val, 1, max, &v) != 0) {
		snprintf(err, errlen, "'%s': want a whole number 1..%llu", val,
			 max);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

static int set_tick_ms(struct kvd_config *cfg, const char *val, char *err,
		       size_t errlen)
{
	return set_ticks(&cfg->tick_ms, val, 10000, err, errlen);
}

static int set_election_ticks(struct kvd_config *cfg, const char *val,
			      char *err, size_t errlen)
{
	return set_ticks(&cfg->election_ticks, val, 1000, err, errlen);
}

static int set_heartbeat_ticks(struct kvd_config *cfg, const char *val,
			       char *err, size_t errlen)
{
	return set_ticks(&cfg->heartbeat_ticks, val, 1000, err, errlen);
}

static int set_log_level(struct kvd_config *cfg, const char *val, char *err,
			 size_t errlen)
{
	if (kvd_log_parse_level(val, &cfg->log_level) != 0) {
		snprintf(err, errlen, "'%s': want debug, info, warn or error",
			 val);
		return -1;
	}
	return 0;
}

static int set_max_clients(struct kvd_config *cfg, const char *val, char *err,
			   size_t errlen)
{
	return set_ticks(&cfg->max_clients, val, 1000000, err, errlen);
}

static int set_client_queue(struct kvd_config *cfg, const char *val, char *err,
			    size_t errlen)
{
	unsigned mb;

	if (set_ticks(&mb, val, 4096, err, errlen) != 0)
		return -1;
	if (mb < 4) {
		snprintf(err, errlen,
			 "'%s': want at least 4 (two largest answers)", val);
		return -1;
	}
	cfg->max_client_queue = (size_t)mb * 1024 * 1024;
	return 0;
}

static int set_no_sync(struct kvd_config *cfg, const char *val, char *err,
		       size_t errlen)
{
	if (val == NULL) {
		cfg->no_sync = true;
		return 0;
	}
	if (parse_bool(val, &cfg->no_sync) != 0) {
		snprintf(err, errlen, "'%s': want true or false", val);
		return -1;
	}
	return 0;
}

static int set_no_direct_io(struct kvd_config *cfg, const char *val, char *err,
			    size_t errlen)
{
	if (val == NULL) {
		cfg->no_direct_io = true;
		return 0;
	}
	if (parse_bool(val, &cfg->no_direct_io) != 0) {
		snprintf(err, errlen, "'%s': want true or false", val);
		return -1;
	}
	return 0;
}

static int set_follower_reads(struct kvd_config *cfg, const char *val,
			      char *err, size_t errlen)
{
	if (val == NULL) {
		cfg->follower_reads = true;
		return 0;
	}
	if (parse_bool(val, &cfg->follower_reads) != 0) {
		snprintf(err, errlen, "'%s': want true or false", val);
		return -1;
	}
	return 0;
}

static const struct key keys[] = {
    {"id", "N", "this node's id, one of the ids in --peers", set_id},
    {"data-dir", "DIR",
     "where the log and the store live (created if "
     "missing)",
     set_data_dir},
    {"peer-addr", "HOST:PORT",
     "listen for peers here (default: this id's address in --peers)",
     set_peer_addr},
    {"client-addr", "HOST:PORT", "listen for clients here (required)",
     set_client_addr},
    {"peers", "ID=HOST:PORT,...", "every member and its peer address",
     set_peers},
    {"tick-ms", "MS", "length of one tick (default 50)", set_tick_ms},
    {"election-ticks", "N",
     "election timeout in ticks, randomized up to twice (default 10)",
     set_election_ticks},
    {"heartbeat-ticks", "N", "heartbeat interval in ticks (default 1)",
     set_heartbeat_ticks},
    {"log-level", "LEVEL", "debug, info, warn or error (default info)",
     set_log_level},
    {"max-clients", "N", "client connections at once (default 1024)",
     set_max_clients},
    {"max-client-queue-mb", "MB",
     "answers queued for a client that does not read them before it is "
     "disconnected (default 32)",
     set_client_queue},
    {"follower-reads", NULL,
     "serve linearizable reads on followers too (ReadIndex through the "
     "leader) instead of redirecting them to the leader",
     set_follower_reads},
    {"no-direct-io", NULL,
     "write the Raft log through its worker thread with write and "
     "fdatasync, never with O_DIRECT from the event loop (for fault "
     "injection tools that intercept those calls; slower, as durable)",
     set_no_direct_io},
    {"unsafe-no-sync", NULL,
     "skip fdatasync: loses acknowledged writes on power loss "
     "(benchmarks only)",
     set_no_sync},
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

/* getopt values: keys by index from KEY_BASE, then the extra flags. */
enum { KEY_BASE = 256, OPT_CONFIG = 512, OPT_HELP, OPT_VERSION };

/* Print "  lhs  help" with help wrapped to 80 columns under column 30. */
static void usage_line(FILE *f, const char *lhs, const char *help)
{
	const int col = 30, width = 80;
	int pos;

	pos = fprintf(f, "  %s", lhs);
	while (*help != '\0') {
		int len = 0, take = 0;

		/* Take as many words as fit. */
		while (help[len] != '\0') {
			int w = len;
			while (help[w] == ' ')
				w++;
			while (help[w] != '\0' && help[w] != ' ')
				w++;
			if (take > 0 && col + w > width)
				break;
			len = take = w;
		}
		if (pos >= col - 1) {
			fputc('\n', f);
			pos = 0;
		}
		fprintf(f, "%*s%.*s\n", col - pos, "", take, help);
		pos = 0;
		help += take;
		while (*help == ' ')
			help++;
	}
}

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "Usage: kvd [--config FILE] [OPTIONS]\n"
		   "\n"
		   "Runs one member of a Raft-replicated key-value store.\n"
		   "\n"
		   "Options (also keys of the INI file, without the "
		   "dashes):\n");
	for (i = 0; i < N_KEYS; i++) {
		char lhs[64];
		snprintf(lhs, sizeof(lhs), "--%s%s%s", keys[i].name,
			 keys[i].metavar != NULL ? " " : "",
			 keys[i].metavar != NULL ? keys[i].metavar : "");
		usage_line(f, lhs, keys[i].help);
	}
	usage_line(f, "--config FILE", "read keys from an INI file first");
	usage_line(f, "-h, --help", "show this help");
	usage_line(f, "--version", "print the version");
	fprintf(f, "\n"
		   "Example:\n"
		   "  kvd --id 1 --data-dir /var/lib/kvd --client-addr "
		   "127.0.0.1:6001 \\\n"
		   "      --peers "
		   "1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003\n"
		   "\n"
		   "SIGTERM or SIGINT shuts down cleanly. Exit codes: 0 clean "
		   "shutdown, 1 runtime\nfailure, 2 bad flags or "
		   "configuration.\n");
}

static const struct key *key_find(const char *name)
{
	char norm[64];
	size_t i;

	/* data_dir and data-dir are the same key. */
	snprintf(norm, sizeof(norm), "%s", name);
	for (i = 0; norm[i] != '\0'; i++)
		if (norm[i] == '_')
			norm[i] = '-';
	for (i = 0; i < N_KEYS; i++)
		if (strcmp(keys[i].name, norm) == 0)
			return &keys[i];
	return NULL;
}

/* ---- The INI file ------------------------------------------------------- */

struct ini_state {
	struct kvd_config *cfg;
	const char *path;
	bool failed;
};

static int ini_handler_cb(void *user, const char *section, const char *name,
			  const char *value)
{
	struct ini_state *st = user;
	const struct key *k;
	char err[256];

	if (st->failed)
		return 0;
	if (section[0] != '\0' && strcmp(section, "kvd") != 0) {
		fprintf(stderr,
			"kvd: %s: unknown section [%s] (keys go at "
			"the top or under [kvd])\n",
			st->path, section);
		st->failed = true;
		return 0;
	}
	k = key_find(name);
	if (k == NULL) {
		fprintf(stderr, "kvd: %s: unknown key '%s'\n", st->path, name);
		st->failed = true;
		return 0;
	}
	if (k->set(st->cfg, value, err, sizeof(err)) != 0) {
		fprintf(stderr, "kvd: %s: %s: %s\n", st->path, name, err);
		st->failed = true;
		return 0;
	}
	return 1;
}

static int load_file(struct kvd_config *cfg, const char *path)
{
	struct ini_state st = {cfg, path, false};
	int rv = ini_parse(path, ini_handler_cb, &st);

	if (rv == -1) {
		fprintf(stderr, "kvd: --config %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	if (rv == -2) {
		fprintf(stderr, "kvd: --config %s: out of memory\n", path);
		return -1;
	}
	if (rv > 0 && !st.failed)
		fprintf(stderr, "kvd: %s:%d: not a KEY = VALUE line\n", path,
			rv);
	return rv == 0 && !st.failed ? 0 : -1;
}

/* ---- Flags -------------------------------------------------------------- */

static void build_longopts(struct option *o)
{
	size_t i;

	for (i = 0; i < N_KEYS; i++) {
		o[i].name = keys[i].name;
		o[i].has_arg = keys[i].metavar != NULL ? required_argument
						       : optional_argument;
		o[i].flag = NULL;
		o[i].val = KEY_BASE + (int)i;
	}
	o[i++] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
	o[i++] = (struct option){"help", no_argument, NULL, OPT_HELP};
	o[i++] = (struct option){"version", no_argument, NULL, OPT_VERSION};
	o[i] = (struct option){NULL, 0, NULL, 0};
}

static void report_bad_flag(char **argv, int c)
{
	if (c == ':')
		fprintf(stderr, "kvd: option '%s' needs a value\n",
			argv[optind - 1]);
	else if (optopt != 0 && optopt < KEY_BASE)
		fprintf(stderr, "kvd: unknown option '-%c'\n", optopt);
	else
		fprintf(stderr, "kvd: unknown option '%s'\n", argv[optind - 1]);
	fprintf(stderr, "Try 'kvd --help'.\n");
}

/* The heartbeat interval must be shorter than the election timeout. The
 * message names the setting that was given, the one to change; with both
 * given, both. */
static int check_ticks(const struct kvd_config *cfg)
{
	struct raft_node_config defaults;
	unsigned election, heartbeat;

	raft_node_config_init(&defaults);
	election =
	    cfg->election_ticks ? cfg->election_ticks : defaults.election_ticks;
	heartbeat = cfg->heartbeat_ticks ? cfg->heartbeat_ticks
					 : defaults.heartbeat_ticks;
	if (heartbeat < election)
		return 0;
	if (cfg->heartbeat_ticks == 0)
		fprintf(stderr,
			"kvd: --election-ticks: %u must be greater than "
			"--heartbeat-ticks, which is %u by default (the "
			"default --election-ticks is %u)\n",
			election, heartbeat, defaults.election_ticks);
	else if (cfg->election_ticks == 0)
		fprintf(stderr,
			"kvd: --heartbeat-ticks: %u must be less than "
			"--election-ticks, which is %u by default (the "
			"default --heartbeat-ticks is %u)\n",
			heartbeat, election, defaults.heartbeat_ticks);
	else
		fprintf(stderr,
			"kvd: --heartbeat-ticks %u must be less than "
			"--election-ticks %u (defaults: heartbeat %u, "
			"election %u)\n",
			heartbeat, election, defaults.heartbeat_ticks,
			defaults.election_ticks);
	return -1;
}

/* Check what no single key can: required keys, and how they fit. */
static int validate(struct kvd_config *cfg)
{
	const struct raft_member *self = NULL;
	size_t i;

	if (cfg->id == 0 || cfg->data_dir[0] == '\0' || cfg->n_members == 0 ||
	    cfg->client_addr[0] == '\0') {
		fprintf(stderr, "kvd: missing %s\nTry 'kvd --help'.\n",
			cfg->id == 0		   ? "--id"
			: cfg->data_dir[0] == '\0' ? "--data-dir"
			: cfg->n_members == 0	   ? "--peers"
						   : "--client-addr");
		return -1;
	}
	for (i = 0; i < cfg->n_members; i++)
		if (cfg->members[i].id == cfg->id)
			self = &cfg->members[i];
	if (self == NULL) {
		fprintf(stderr,
			"kvd: --id %llu is not one of the ids in "
			"--peers\n",
			(unsigned long long)cfg->id);
		return -1;
	}
	if (cfg->peer_addr[0] == '\0') {
		snprintf(cfg->peer_addr, sizeof(cfg->peer_addr), "%s",
			 self->addr);
	} else if (strcmp(strrchr(cfg->peer_addr, ':'),
			  strrchr(self->addr, ':')) != 0) {
		/* Peers dial the address in --peers; a listener elsewhere
		 * would never be reached. The host may differ (0.0.0.0, a
		 * name for the same interface); the port may not. */
		fprintf(stderr,
			"kvd: --peer-addr %s does not match this node's entry "
			"in --peers (%llu=%s); the ports must be the same\n",
			cfg->peer_addr, (unsigned long long)cfg->id,
			self->addr);
		return -1;
	}
	if (check_ticks(cfg) != 0)
		return -1;
	if (strcmp(cfg->peer_addr, cfg->client_addr) == 0) {
		fprintf(stderr,
			"kvd: --peer-addr and --client-addr are both "
			"%s; they need different ports\n",
			cfg->client_addr);
		return -1;
	}
	return 0;
}

enum kvd_config_result kvd_config_parse(int argc, char **argv,
					struct kvd_config *cfg)
{
	struct option longopts[N_KEYS + 4];
	const char *config_file = NULL;
	char err[256];
	int c;

	memset(cfg, 0, sizeof(*cfg));
	cfg->log_level = RAFT_LOG_INFO;
	cfg->max_clients = DEFAULT_MAX_CLIENTS;
	cfg->max_client_queue = (size_t)DEFAULT_CLIENT_QUEUE_MB * 1024 * 1024;
	build_longopts(longopts);
	opterr = 0;

	/* Pass 1: --help, --version, --config and bad flags. */
	optind = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == OPT_HELP || c == 'h') {
			usage(stdout);
			return KVD_CONFIG_DONE;
		}
		if (c == OPT_VERSION) {
			printf("kvd %s\n", KVD_VERSION);
			return KVD_CONFIG_DONE;
		}
		if (c == OPT_CONFIG) {
			config_file = optarg;
		} else if (c == '?' || c == ':') {
			report_bad_flag(argv, c);
			return KVD_CONFIG_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr,
			"kvd: unexpected argument '%s'\n"
			"Try 'kvd --help'.\n",
			argv[optind]);
		return KVD_CONFIG_USAGE;
	}
	if (config_file != NULL && load_file(cfg, config_file) != 0)
		return KVD_CONFIG_USAGE;

	/* Pass 2: flags override the file. */
	optind = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		const struct key *k;

		if (c < KEY_BASE || c >= KEY_BASE + (int)N_KEYS)
			continue;
		k = &keys[c - KEY_BASE];
		if (k->set(cfg, optarg, err, sizeof(err)) != 0) {
			fprintf(stderr, "kvd: --%s: %s\n", k->name, err);
			return KVD_CONFIG_USAGE;
		}
	}
	return validate(cfg) == 0 ? KVD_CONFIG_RUN : KVD_CONFIG_USAGE;
}
