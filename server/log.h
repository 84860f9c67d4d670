/* kvd's log: one line of key=value pairs per event on stderr,
 *
 *     ts=2026-12-03T14:30:00.123Z level=info msg="became leader" term=3
 *
 * at or above a minimum level. The same sink serves as libraft's log hook,
 * so the library's lines come out in the same shape. */
#ifndef KVD_LOG_H
#define KVD_LOG_H

#include <stddef.h>

#include "libraft/node.h"

/* Lines below level are dropped; default RAFT_LOG_INFO. */
void kvd_log_set_level(enum raft_log_level level);

/* Parse "debug", "info", "warn" or "error". Returns 0, or -1. */
int kvd_log_parse_level(const char *s, enum raft_log_level *level);

/* Log msg (quoted and escaped here) followed by fields, a printf format of
 * further key=value pairs (may be NULL). String values in fields that may
 * hold spaces or quotes should go through kvd_log_quote(). */
void kvd_log(enum raft_log_level level, const char *msg, const char *fields,
	     ...) __attribute__((format(printf, 3, 4)));

/* Write s into buf (size len) as a quoted, escaped log value; returns buf. */
const char *kvd_log_quote(char *buf, size_t len, const char *s);

/* libraft's log hook (struct raft_node_config's log). */
void kvd_log_hook(void *data, enum raft_log_level level, const char *line);

#endif /* KVD_LOG_H */
