/* kvd's configuration: command-line flags and an INI file with the same
 * keys. The file (--config FILE) is read first; flags override it. */
#ifndef KVD_CONFIG_H
#define KVD_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "libraft/node.h"

#define KVD_VERSION "0.1.0"

struct kvd_config {
	raft_id id;
	char data_dir[PATH_MAX];
	char peer_addr[RAFT_ADDR_MAX]; /* default: this id's entry in peers */
	char client_addr[RAFT_ADDR_MAX];
	struct raft_member members[RAFT_MAX_PEERS];
	size_t n_members;
	unsigned tick_ms;	  /* 0: the library's default */
	unsigned election_ticks;  /* 0: the library's default */
	unsigned heartbeat_ticks; /* 0: the library's default */
	enum raft_log_level log_level;
	unsigned max_clients;	 /* client connections at once */
	size_t max_client_queue; /* answer bytes queued per connection */
	bool follower_reads;	 /* serve linearizable reads on followers */
	bool no_sync;
	bool no_direct_io; /* log writes through the worker thread only */
};

enum kvd_config_result {
	KVD_CONFIG_RUN,	  /* cfg is complete and valid */
	KVD_CONFIG_DONE,  /* --help or --version was printed: exit 0 */
	KVD_CONFIG_USAGE, /* an error was printed to stderr: exit 2 */
};

enum kvd_config_result kvd_config_parse(int argc, char **argv,
					struct kvd_config *cfg);

#endif /* KVD_CONFIG_H */
