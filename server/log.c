/* kvd's leveled key=value log on stderr. See log.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static enum raft_log_level min_level = RAFT_LOG_INFO;

static const char *level_name(enum raft_log_level level)
{
	switch (level) {
	case RAFT_LOG_DEBUG:
		return "debug";
	case RAFT_LOG_INFO:
		return "info";
	case RAFT_LOG_WARN:
		return "warn";
	case RAFT_LOG_ERROR:
		return "error";
	}
	return "info";
}

void kvd_log_set_level(enum raft_log_level level)
{
	min_level = level;
}

int kvd_log_parse_level(const char *s, enum raft_log_level *level)
{
	static const enum raft_log_level all[] = {
	    RAFT_LOG_DEBUG, RAFT_LOG_INFO, RAFT_LOG_WARN, RAFT_LOG_ERROR};
	size_t i;

	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (strcmp(s, level_name(all[i])) == 0) {
			*level = all[i];
			return 0;
		}
	}
	return -1;
}

const char *kvd_log_quote(char *buf, size_t len, const char *s)
{
	size_t o = 0;

	if (len < 3) {
		if (len > 0)
			buf[0] = '\0';
		return buf;
	}
	buf[o++] = '"';
	for (; *s != '\0' && o + 3 < len; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)ch;
		} else if (ch < 0x20 || ch == 0x7f) {
			buf[o++] = '?';
		} else {
			buf[o++] = (char)ch;
		}
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/* Write the "ts=... level=..." prefix and the rest as one write, so that
 * lines from several threads never interleave. */
static void emit(enum raft_log_level level, const char *rest)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
		     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s %s\n",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
		     level_name(level), rest);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return; /* nowhere left to report it */
}

void kvd_log(enum raft_log_level level, const char *msg, const char *fields,
	     ...)
{
	char rest[1536], q[512];
	size_t o;
	va_list ap;

	if (level < min_level)
		return;
	o = (size_t)snprintf(rest, sizeof(rest), "msg=%s",
			     kvd_log_quote(q, sizeof(q), msg));
	if (fields != NULL && o + 1 < sizeof(rest)) {
		rest[o++] = ' ';
		va_start(ap, fields);
		vsnprintf(rest + o, sizeof(rest) - o, fields, ap);
		va_end(ap);
	}
	emit(level, rest);
}

void kvd_log_hook(void *data, enum raft_log_level level, const char *line)
{
	(void)data;
	if (level >= min_level)
		emit(level, line);
}
