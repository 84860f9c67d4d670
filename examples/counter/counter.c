/* counter: a replicated counter on libraft's node API (libraft/node.h).
 *
 * Run three copies, one per member; they elect a leader among themselves.
 * Each reads commands on stdin and answers one line per command on stdout:
 *
 *     add N     add N (may be negative) to the counter; on the leader only
 *     get       print the counter, linearizably; on any member
 *     status    print this member's role, term, leader and log indexes
 *
 * End of input, SIGINT or SIGTERM closes the node and exits.
 *
 * The program brings its own state machine (struct raft_fsm): a signed
 * 64-bit value and the index of the last entry applied to it, kept in
 * DATA_DIR/counter and replaced atomically (write, fsync, rename) after
 * every batch of entries. A command entry is the amount to add, as 8 bytes
 * big-endian.
 *
 * Build: cc counter.c -o counter $(pkg-config --cflags --libs libraft)
 * Run:   counter ID DATA_DIR 1=127.0.0.1:24001,2=127.0.0.1:24002,...
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libraft/node.h>

/* The state machine. apply runs on a libuv worker thread while the loop
 * thread may read the value for a get, hence the atomic. */
struct counter {
	char dir[PATH_MAX];
	char path[PATH_MAX];
	char tmp[PATH_MAX];
	_Atomic int64_t value;
	raft_index applied; /* written only by apply once the node runs */
};

/* The program: one node, its state machine, and stdin. */
struct app {
	uv_loop_t *loop;
	struct raft_node *node;
	struct counter counter;
	struct raft_fsm fsm;
	union {
		uv_stream_t stream;
		uv_pipe_t pipe;
		uv_tty_t tty;
	} in;
	uv_signal_t sigint;
	uv_signal_t sigterm;
	bool in_open;
	char line[256];
	size_t len;
	bool closing;
	int exit_code;
};

/* One "add" waiting for its entry to be applied. */
struct add_req {
	int64_t delta;
};

static void encode_delta(int64_t delta, uint8_t buf[8])
{
	uint64_t u = (uint64_t)delta;

	for (int i = 7; i >= 0; i--) {
		buf[i] = (uint8_t)(u & 0xff);
		u >>= 8;
	}
}

static int decode_delta(const void *data, size_t len, int64_t *delta)
{
	const uint8_t *p = data;
	uint64_t u = 0;

	if (len != 8)
		return -1;
	for (int i = 0; i < 8; i++)
		u = (u << 8) | p[i];
	*delta = (int64_t)u;
	return 0;
}

/* Read DATA_DIR/counter, if a previous run left one. */
static int counter_load(struct counter *c, const char *dir)
{
	FILE *f;
	uint64_t index;
	int64_t value;
	int n;

	snprintf(c->dir, sizeof(c->dir), "%s", dir);
	snprintf(c->path, sizeof(c->path), "%s/counter", dir);
	snprintf(c->tmp, sizeof(c->tmp), "%s/counter.tmp", dir);
	atomic_store(&c->value, 0);
	c->applied = 0;
	f = fopen(c->path, "r");
	if (f == NULL)
		return errno == ENOENT ? 0 : -1;
	n = fscanf(f, "%" SCNu64 " %" SCNd64, &index, &value);
	fclose(f);
	if (n != 2) {
		fprintf(stderr, "%s: not a counter file\n", c->path);
		return -1;
	}
	c->applied = index;
	atomic_store(&c->value, value);
	return 0;
}

/* Replace DATA_DIR/counter with (index, value), durably. */
static int counter_save(struct counter *c, raft_index index, int64_t value)
{
	char text[64];
	int len = snprintf(text, sizeof(text), "%" PRIu64 " %" PRId64 "\n",
			   (uint64_t)index, value);
	int rc = RAFT_EIO;
	int fd;

	fd = open(c->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return RAFT_EIO;
	if (write(fd, text, (size_t)len) != len || fsync(fd) != 0)
		goto out_close;
	if (rename(c->tmp, c->path) != 0)
		goto out_close;
	rc = RAFT_OK;
out_close:
	close(fd);
	if (rc == RAFT_OK) {
		/* The rename is durable once the directory is. */
		fd = open(c->dir, O_RDONLY | O_DIRECTORY);
		if (fd < 0 || fsync(fd) != 0)
			rc = RAFT_EIO;
		if (fd >= 0)
			close(fd);
	}
	return rc;
}

static int counter_applied(struct raft_fsm *fsm, raft_index *index)
{
	struct counter *c = fsm->data;

	*index = c->applied;
	return RAFT_OK;
}

/* Worker thread. Entries at or below the saved index were applied before a
 * restart and are skipped; no-ops only move the applied index. */
static int counter_apply(struct raft_fsm *fsm, const struct raft_entry *e,
			 size_t n, struct raft_fsm_result *results)
{
	struct counter *c = fsm->data;
	int64_t value = atomic_load(&c->value);
	raft_index last = c->applied;
	int64_t delta, sum;
	int rc;

	for (size_t i = 0; i < n; i++) {
		if (e[i].index <= c->applied)
			continue;
		last = e[i].index;
		if (e[i].type != RAFT_ENTRY_COMMAND)
			continue;
		if (decode_delta(e[i].data, e[i].len, &delta) != 0 ||
		    __builtin_add_overflow(value, delta, &sum)) {
			/* Refused; the value is unchanged. */
			results[i].rc = RAFT_EINVAL;
			continue;
		}
		value = sum;
		results[i].value = (uint64_t)value;
	}
	if (last == c->applied)
		return RAFT_OK;
	rc = counter_save(c, last, value);
	/* On failure the node stops; the file still holds the old state. */
	if (rc != RAFT_OK)
		return rc;
	c->applied = last;
	atomic_store(&c->value, value);
	return RAFT_OK;
}

static void on_added(void *arg, int status, raft_index index,
		     struct raft_fsm_result *result)
{
	struct add_req *req = arg;

	if (status != RAFT_OK)
		printf("add %" PRId64 ": error: %s\n", req->delta,
		       raft_strerror(status));
	else if (result->rc != RAFT_OK)
		printf("add %" PRId64 ": error: out of range\n", req->delta);
	else
		printf("add %" PRId64 ": ok, value %" PRId64
		       " at index %" PRIu64 "\n",
		       req->delta, (int64_t)result->value, (uint64_t)index);
	free(req);
}

static void on_read(void *arg, int status, raft_index index)
{
	struct app *app = arg;

	if (status != RAFT_OK)
		printf("get: error: %s\n", raft_strerror(status));
	else
		printf("get: value %" PRId64 " at index %" PRIu64 "\n",
		       atomic_load(&app->counter.value), (uint64_t)index);
}

static void print_not_leader(struct app *app, const char *cmd)
{
	struct raft_node_status st;

	raft_node_status(app->node, &st);
	if (st.leader == 0)
		printf("%s: error: not the leader; no leader known\n", cmd);
	else
		printf("%s: error: not the leader; the leader is %" PRIu64 "\n",
		       cmd, (uint64_t)st.leader);
}

static void cmd_add(struct app *app, const char *arg)
{
	struct add_req *req;
	uint8_t buf[8];
	char what[32];
	char *end;
	long long delta;
	int rc;

	errno = 0;
	delta = strtoll(arg, &end, 10);
	if (end == arg || *end != '\0' || errno != 0) {
		printf("add: error: expected a whole number, got '%s'\n", arg);
		return;
	}
	req = malloc(sizeof(*req));
	if (req == NULL) {
		printf("add: error: out of memory\n");
		return;
	}
	req->delta = delta;
	encode_delta(delta, buf);
	rc = raft_node_propose(app->node, buf, sizeof(buf), on_added, req);
	if (rc == RAFT_OK)
		return;
	snprintf(what, sizeof(what), "add %lld", delta);
	if (rc == RAFT_ENOTLEADER)
		print_not_leader(app, what);
	else
		printf("%s: error: %s\n", what, raft_strerror(rc));
	free(req);
}

static void cmd_get(struct app *app)
{
	int rc = raft_node_read(app->node, on_read, app);

	if (rc == RAFT_ENOTLEADER)
		print_not_leader(app, "get");
	else if (rc != RAFT_OK)
		printf("get: error: %s\n", raft_strerror(rc));
}

static void cmd_status(struct app *app)
{
	struct raft_node_status st;

	raft_node_status(app->node, &st);
	printf("status: id=%" PRIu64 " role=%s term=%" PRIu64 " leader=%" PRIu64
	       " commit=%" PRIu64 " applied=%" PRIu64 "%s\n",
	       (uint64_t)st.id, raft_role_name(st.role), (uint64_t)st.term,
	       (uint64_t)st.leader, (uint64_t)st.commit, (uint64_t)st.applied,
	       st.failed ? " failed" : "");
}

static void run_command(struct app *app, char *line)
{
	char *cmd = strtok(line, " \t\r");
	char *arg = strtok(NULL, " \t\r");

	if (cmd == NULL)
		return;
	if (strcmp(cmd, "add") == 0 && arg != NULL)
		cmd_add(app, arg);
	else if (strcmp(cmd, "get") == 0)
		cmd_get(app);
	else if (strcmp(cmd, "status") == 0)
		cmd_status(app);
	else
		printf("error: unknown command; try add N, get or status\n");
}

static void on_node_closed(void *arg)
{
	(void)arg;
	fprintf(stderr, "counter: closed\n");
}

/* Stop reading, close the node; the loop ends when everything is closed. */
static void shut_down(struct app *app)
{
	if (app->closing)
		return;
	app->closing = true;
	if (app->in_open)
		uv_close((uv_handle_t *)&app->in.stream, NULL);
	uv_close((uv_handle_t *)&app->sigint, NULL);
	uv_close((uv_handle_t *)&app->sigterm, NULL);
	raft_node_close(app->node, on_node_closed, app);
}

static void on_signal(uv_signal_t *sig, int signum)
{
	(void)signum;
	shut_down(sig->data);
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
	static char chunk[4096];

	(void)h;
	(void)size;
	*buf = uv_buf_init(chunk, sizeof(chunk));
}

/* Split input into lines; a line too long for the buffer is dropped. */
static void on_input(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct app *app = s->data;

	if (nread < 0) {
		shut_down(app);
		return;
	}
	for (ssize_t i = 0; i < nread && !app->closing; i++) {
		char ch = buf->base[i];

		if (ch != '\n') {
			if (app->len < sizeof(app->line) - 1)
				app->line[app->len] = ch;
			app->len++;
			continue;
		}
		if (app->len < sizeof(app->line)) {
			app->line[app->len] = '\0';
			run_command(app, app->line);
		} else {
			printf("error: line too long\n");
		}
		app->len = 0;
	}
}

static int open_stdin(struct app *app)
{
	int rc;

	switch (uv_guess_handle(STDIN_FILENO)) {
	case UV_TTY:
		rc = uv_tty_init(app->loop, &app->in.tty, STDIN_FILENO, 1);
		app->in_open = rc == 0;
		break;
	case UV_NAMED_PIPE:
		rc = uv_pipe_init(app->loop, &app->in.pipe, 0);
		app->in_open = rc == 0;
		if (rc == 0)
			rc = uv_pipe_open(&app->in.pipe, STDIN_FILENO);
		break;
	default:
		fprintf(stderr, "counter: stdin must be a terminal or a pipe "
				"(cat FILE | counter ...)\n");
		return -1;
	}
	if (rc == 0) {
		app->in.stream.data = app;
		rc = uv_read_start(&app->in.stream, on_alloc, on_input);
	}
	if (rc != 0)
		fprintf(stderr, "counter: stdin: %s\n", uv_strerror(rc));
	return rc == 0 ? 0 : -1;
}

static void on_log(void *data, enum raft_log_level level, const char *msg)
{
	(void)data;
	if (level >= RAFT_LOG_INFO)
		fprintf(stderr, "counter: %s\n", msg);
}

/* "1=host:port,2=host:port,..." into members. */
static int parse_members(char *list, struct raft_member *m, size_t *n)
{
	*n = 0;
	for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
		char *eq = strchr(tok, '=');
		char *end;

		if (*n == RAFT_MAX_PEERS || eq == NULL)
			return -1;
		m[*n].id = strtoull(tok, &end, 10);
		if (end != eq || m[*n].id == 0 ||
		    strlen(eq + 1) >= sizeof(m[*n].addr))
			return -1;
		strcpy(m[*n].addr, eq + 1);
		(*n)++;
	}
	return *n > 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct raft_member members[RAFT_MAX_PEERS];
	struct raft_node_config cfg;
	static struct app app;
	char errmsg[256] = "";
	size_t n_members;
	int rc;

	if (argc != 4 || parse_members(argv[3], members, &n_members) != 0) {
		fprintf(stderr, "usage: counter ID DATA_DIR "
				"1=HOST:PORT,2=HOST:PORT,3=HOST:PORT\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (mkdir(argv[2], 0755) != 0 && errno != EEXIST) {
		perror(argv[2]);
		return 1;
	}
	if (counter_load(&app.counter, argv[2]) != 0) {
		perror(app.counter.path);
		return 1;
	}
	app.fsm.data = &app.counter;
	app.fsm.applied = counter_applied;
	app.fsm.apply = counter_apply;

	raft_node_config_init(&cfg);
	cfg.id = strtoull(argv[1], NULL, 10);
	cfg.data_dir = argv[2];
	cfg.members = members;
	cfg.n_members = n_members;
	cfg.fsm = &app.fsm;
	cfg.log = on_log;

	app.loop = uv_default_loop();
	rc = raft_node_start(app.loop, &cfg, &app.node, errmsg, sizeof(errmsg));
	if (rc != RAFT_OK) {
		fprintf(stderr, "counter: %s: %s\n", raft_strerror(rc), errmsg);
		return 1;
	}
	uv_signal_init(app.loop, &app.sigint);
	uv_signal_init(app.loop, &app.sigterm);
	app.sigint.data = app.sigterm.data = &app;
	uv_signal_start(&app.sigint, on_signal, SIGINT);
	uv_signal_start(&app.sigterm, on_signal, SIGTERM);
	if (open_stdin(&app) != 0) {
		app.exit_code = 1;
		shut_down(&app);
	}

	uv_run(app.loop, UV_RUN_DEFAULT);
	uv_loop_close(app.loop);
	return app.exit_code;
}
