/* Helpers shared by kvctl and kvbench: durations, endpoint lists, JSON. */
#ifndef KV_CLIUTIL_H
#define KV_CLIUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Endpoints of the local cluster that `make cluster` starts. */
#define CLI_DEFAULT_ENDPOINTS "127.0.0.1:6001,127.0.0.1:6002,127.0.0.1:6003"

/* Parse a duration: a number with a unit (ms, s, m), e.g. "500ms", "2.5s";
 * a bare number means seconds. Returns 0, or -1 when s is not a positive
 * duration below a day. */
int cli_parse_duration_ms(const char *s, unsigned *ms);

/* A comma-separated list split into at most max entries. */
struct cli_list {
	char *buf; /* owns the strings */
	const char **items;
	size_t n;
};

/* Returns 0, or -1 with a message in err when an item is empty or there are
 * more than max. */
int cli_list_split(const char *s, size_t max, struct cli_list *l, char *err,
		   size_t errlen);
void cli_list_free(struct cli_list *l);

/* Check the form of a "HOST:PORT" or "[V6]:PORT" endpoint: a non-empty host
 * and a port 1..65535 in decimal. Returns 0, or -1 with a message in err.
 * Nothing is resolved. */
int cli_check_endpoint(const char *s, char *err, size_t errlen);

/* Write data as a quoted JSON string. Bytes that are not valid UTF-8 are
 * written as \u00XX escapes of the byte (lossy: use cli_json_base64 when
 * the exact bytes matter). */
void cli_json_string(FILE *f, const void *data, size_t len);

/* Write data base64-encoded (RFC 4648, with padding) as a quoted JSON
 * string. */
void cli_json_base64(FILE *f, const void *data, size_t len);

/* Whether data is valid UTF-8 without NUL bytes. */
bool cli_utf8_valid(const void *data, size_t len);

#endif /* KV_CLIUTIL_H */
