/* The cluster file: a node's own id, its cluster id and member list, stored
 * in its data directory at the first start so that a later start with
 * another member list (a typo in --peers, a data directory copied from
 * another cluster) or another id (node 3's directory started as node 2,
 * which would vote twice with node 3's log and vote: Raft paper 5.2 allows
 * one vote per term per server) is refused instead of splitting the cluster.
 *
 * Format, one item per line:
 *
 *     libraft-cluster 2
 *     self=<id>                    (the member this directory belongs to)
 *     cluster_id=<decimal>
 *     member=<id> <host:port>      (one line per member)
 *
 * Numbers are decimal digits with nothing after them but blanks; each of
 * self= and cluster_id= appears once. Version 1 files lack self= and are
 * refused with a message saying how to add it.
 *
 * The cluster id is node_cluster_id() of the members unless the caller
 * chose one at the first start, and must then give it at every start: a
 * stored id that is neither is a sign of an edited file (a member line
 * changed by hand, a typo in the id), refused as damage like an unparsable
 * line, so that the member never runs with members its peers do not have.
 *
 * The file is written only after the log has been created (its first
 * segment file exists from the first open on, and the log never removes its
 * last one), so a directory with the file but without segment files has
 * lost its log: it is refused, as is the mirror case, a log without the
 * file.
 *
 * Happy path: the file is absent at the first start; once the node is
 * listening for peers it is written to DIR/cluster.tmp, fsynced, renamed
 * over DIR/cluster and the directory is fsynced, so a crash leaves either
 * no file or the whole file. Later starts read and check it.
 *
 * Failure modes: a write or sync error leaves no DIR/cluster (the next start
 * tries again); an unparsable file, a cluster id its members do not give and
 * a missing log are RAFT_ECORRUPT; a stale DIR/cluster.tmp from a crash is
 * overwritten.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/node.h"

#define CLUSTER_FILE	 "cluster"
#define CLUSTER_TMP	 "cluster.tmp"
#define CLUSTER_MAGIC	 "libraft-cluster 2"
#define CLUSTER_MAGIC_V1 "libraft-cluster 1"

void node_errf(char *errmsg, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errmsg == NULL || errlen == 0) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(errmsg, errlen, fmt, ap);
	va_end(ap);
}

static int cmp_member(const void *a, const void *b)
{
	const struct raft_member *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static void sort_members(struct raft_member *m, size_t n)
{
	qsort(m, n, sizeof(*m), cmp_member);
}

uint64_t node_cluster_id(const struct raft_member *members, size_t n)
{
	struct raft_member sorted[RAFT_MAX_PEERS];
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64 */
	char line[96];

	if (n > RAFT_MAX_PEERS) {
		n = RAFT_MAX_PEERS;
	}
	memcpy(sorted, members, n * sizeof(*members));
	sort_members(sorted, n);
	for (size_t i = 0; i < n; i++) {
		int len = snprintf(line, sizeof(line), "%" PRIu64 " %s\n",
				   sorted[i].id, sorted[i].addr);
		for (int j = 0; j < len && j < (int)sizeof(line); j++) {
			h ^= (unsigned char)line[j];
			h *= 0x100000001b3ull;
		}
	}
	return h == 0 ? 1 : h;
}

/* "1=a:1,2=b:2" for messages. */
static void format_members(const struct raft_member *m, size_t n, char *buf,
			   size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && off < len; i++) {
		int w = snprintf(buf + off, len - off, "%s%" PRIu64 "=%s",
				 i ? "," : "", m[i].id, m[i].addr);
		if (w < 0) {
			break;
		}
		off += (size_t)w;
	}
}

/* Members from the configuration: 1..RAFT_MAX_PEERS, ids non-zero and
 * unique, addresses non-empty, NUL-terminated and unique (two members on one
 * address would each reach the other's listener, or their own). */
static int check_members(const struct raft_member *m, size_t n, char *errmsg,
			 size_t errlen)
{
	if (n == 0 || n > RAFT_MAX_PEERS) {
		node_errf(errmsg, errlen,
			  "a cluster has 1 to %d members; the configuration "
			  "lists %zu",
			  RAFT_MAX_PEERS, n);
		return RAFT_EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (m[i].id == 0) {
			node_errf(errmsg, errlen, "member id 0 is reserved");
			return RAFT_EINVAL;
		}
		if (memchr(m[i].addr, '\0', sizeof(m[i].addr)) == NULL ||
		    m[i].addr[0] == '\0' || strchr(m[i].addr, ' ') ||
		    strchr(m[i].addr, '\n')) {
			node_errf(errmsg, errlen,
				  "member %" PRIu64 " has no valid address",
				  m[i].id);
			return RAFT_EINVAL;
		}
		for (size_t j = 0; j < i; j++) {
			if (m[j].id == m[i].id) {
				node_errf(errmsg, errlen,
					  "member %" PRIu64 " is listed twice",
					  m[i].id);
				return RAFT_EINVAL;
			}
			if (strcmp(m[j].addr, m[i].addr) == 0) {
				node_errf(errmsg, errlen,
					  "members %" PRIu64 " and %" PRIu64
					  " have the same address %s; every "
					  "member needs its own",
					  m[j].id, m[i].id, m[i].addr);
				return RAFT_EINVAL;
			}
		}
	}
	return RAFT_OK;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	int rc = 0;

	if (fd < 0) {
		return -1;
	}
	if (fsync(fd) != 0) {
		rc = -1;
	}
	close(fd);
	return rc;
}

int node_cluster_store(const char *dir, const struct node_cluster *c,
		       char *errmsg, size_t errlen)
{
	char tmp[4096], path[4096];
	FILE *f;
	int rc = RAFT_EIO;

	snprintf(tmp, sizeof(tmp), "%s/%s", dir, CLUSTER_TMP);
	snprintf(path, sizeof(path), "%s/%s", dir, CLUSTER_FILE);
	f = fopen(tmp, "w");
	if (f == NULL) {
		node_errf(errmsg, errlen, "cannot create %s: %s", tmp,
			  strerror(errno));
		return errno == ENOSPC ? RAFT_ENOSPC : RAFT_EIO;
	}
	fprintf(f, "%s\nself=%" PRIu64 "\ncluster_id=%" PRIu64 "\n",
		CLUSTER_MAGIC, c->self, c->cluster_id);
	for (size_t i = 0; i < c->n_members; i++) {
		fprintf(f, "member=%" PRIu64 " %s\n", c->members[i].id,
			c->members[i].addr);
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		node_errf(errmsg, errlen, "cannot write %s: %s", tmp,
			  strerror(errno));
		rc = errno == ENOSPC ? RAFT_ENOSPC : RAFT_EIO;
		goto err_file;
	}
	if (fclose(f) != 0) {
		f = NULL;
		node_errf(errmsg, errlen, "cannot write %s: %s", tmp,
			  strerror(errno));
		goto err_tmp;
	}
	f = NULL;
	if (rename(tmp, path) != 0 || fsync_dir(dir) != 0) {
		node_errf(errmsg, errlen, "cannot install %s: %s", path,
			  strerror(errno));
		goto err_tmp;
	}
	return RAFT_OK;

err_file:
	fclose(f);
err_tmp:
	unlink(tmp);
	return rc;
}

static bool has_member(const struct raft_member *m, size_t n, raft_id id)
{
	for (size_t i = 0; i < n; i++) {
		if (m[i].id == id) {
			return true;
		}
	}
	return false;
}

/* The advice never includes an empty data directory: a member that restarts
 * empty has forgotten its vote and its log, which the cluster counts on (a
 * second vote in a term, or a committed entry lost from a majority). Every
 * member's file holds the same members and cluster id; only self= differs.
 * Returns RAFT_ECORRUPT. */
static int damaged(const char *path, const char *why, char *errmsg,
		   size_t errlen)
{
	node_errf(errmsg, errlen,
		  "%s is damaged (%s); restore it from a backup of this "
		  "data directory, or copy the cluster file of another member "
		  "and set its self= line to this member's id; never start "
		  "this member on an empty data directory (it would forget "
		  "its votes and log)",
		  path, why);
	return RAFT_ECORRUPT;
}

static const char *skip_blanks(const char *p)
{
	while (isspace((unsigned char)*p)) {
		p++;
	}
	return p;
}

/* A decimal number at *p, moving *p past it: digits only (strtoull() alone
 * would take blanks and a sign first), and no more than 64 bits. */
static bool parse_number(const char **p, uint64_t *out)
{
	char *end;

	if (!isdigit((unsigned char)**p)) {
		return false;
	}
	errno = 0;
	*out = strtoull(*p, &end, 10);
	if (errno == ERANGE) {
		return false;
	}
	*p = end;
	return true;
}

/* "<key><number>", nothing after the number but blanks. */
static bool parse_number_line(const char *line, const char *key, uint64_t *out)
{
	size_t len = strlen(key);

	if (strncmp(line, key, len) != 0) {
		return false;
	}
	line += len;
	return parse_number(&line, out) && *skip_blanks(line) == '\0';
}

/* "member=<id> <host:port>", nothing after the address but blanks. */
static bool parse_member_line(const char *line, struct raft_member *m)
{
	const char *addr;
	size_t len = 0;

	if (strncmp(line, "member=", 7) != 0) {
		return false;
	}
	line += 7;
	if (!parse_number(&line, &m->id) || (*line != ' ' && *line != '\t')) {
		return false;
	}
	addr = skip_blanks(line);
	while (addr[len] != '\0' && !isspace((unsigned char)addr[len])) {
		len++;
	}
	if (len == 0 || len >= RAFT_ADDR_MAX ||
	    *skip_blanks(addr + len) != '\0') {
		return false;
	}
	memcpy(m->addr, addr, len);
	m->addr[len] = '\0';
	return true;
}

/* What is wrong with a parsed file as a whole, or NULL; why holds the
 * text. */
static const char *check_parsed(const struct node_cluster *c, bool have_self,
				bool have_id, char *why, size_t len)
{
	char problem[256];

	if (!have_self) {
		return "it has no self= line";
	}
	if (!have_id) {
		return "it has no cluster_id= line";
	}
	if (c->cluster_id == 0) {
		return "its cluster id is 0";
	}
	if (c->n_members == 0) {
		return "it has no member= line";
	}
	if (check_members(c->members, c->n_members, problem, sizeof(problem)) !=
	    RAFT_OK) {
		snprintf(why, len, "%s", problem);
		return why;
	}
	if (!has_member(c->members, c->n_members, c->self)) {
		snprintf(why, len, "self=%" PRIu64 " is not one of its members",
			 c->self);
		return why;
	}
	return NULL;
}

/* Parse DIR/cluster. Returns RAFT_OK, RAFT_ENOTFOUND (no file), RAFT_EIO or
 * RAFT_ECORRUPT. */
static int read_cluster(const char *path, struct node_cluster *c, char *errmsg,
			size_t errlen)
{
	char line[256], why[320];
	const char *problem;
	unsigned lineno = 0;
	bool have_id = false, have_self = false;
	FILE *f = fopen(path, "r");

	memset(c, 0, sizeof(*c));
	if (f == NULL) {
		if (errno == ENOENT) {
			return RAFT_ENOTFOUND;
		}
		node_errf(errmsg, errlen, "cannot open %s: %s", path,
			  strerror(errno));
		return RAFT_EIO;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *nl = strchr(line, '\n');

		lineno++;
		if (nl == NULL) {
			goto bad_line;
		}
		*nl = '\0';
		if (lineno == 1) {
			if (strcmp(line, CLUSTER_MAGIC_V1) == 0) {
				goto old;
			}
			if (strcmp(line, CLUSTER_MAGIC) != 0) {
				goto bad_line;
			}
		} else if (!have_self &&
			   parse_number_line(line, "self=", &c->self)) {
			have_self = true;
		} else if (!have_id && parse_number_line(line, "cluster_id=",
							 &c->cluster_id)) {
			have_id = true;
		} else if (c->n_members < RAFT_MAX_PEERS &&
			   parse_member_line(line, &c->members[c->n_members])) {
			c->n_members++;
		} else {
			goto bad_line;
		}
	}
	if (ferror(f)) {
		node_errf(errmsg, errlen, "cannot read %s: %s", path,
			  strerror(errno));
		fclose(f);
		return RAFT_EIO;
	}
	fclose(f);
	problem = lineno == 0
		      ? "it is empty"
		      : check_parsed(c, have_self, have_id, why, sizeof(why));
	return problem == NULL ? RAFT_OK
			       : damaged(path, problem, errmsg, errlen);

bad_line:
	fclose(f);
	snprintf(why, sizeof(why), "line %u", lineno);
	return damaged(path, why, errmsg, errlen);

old:
	fclose(f);
	node_errf(errmsg, errlen,
		  "%s was written by an older version and does not record "
		  "which member this data directory belongs to; if you are "
		  "sure which it is, replace its first line with '%s' and add "
		  "a line 'self=ID' with that member's id; never start this "
		  "member on an empty data directory (it would forget its "
		  "votes and log)",
		  path, CLUSTER_MAGIC);
	return RAFT_ECORRUPT;
}

static bool same_members(const struct raft_member *a, size_t na,
			 const struct raft_member *b, size_t nb)
{
	struct raft_member x[RAFT_MAX_PEERS], y[RAFT_MAX_PEERS];

	if (na != nb) {
		return false;
	}
	memcpy(x, a, na * sizeof(*a));
	memcpy(y, b, nb * sizeof(*b));
	sort_members(x, na);
	sort_members(y, nb);
	for (size_t i = 0; i < na; i++) {
		if (x[i].id != y[i].id || strcmp(x[i].addr, y[i].addr) != 0) {
			return false;
		}
	}
	return true;
}

/* What DIR/log holds, seen from its file names. */
struct log_files {
	bool dir;    /* DIR/log exists */
	bool meta;   /* the term and vote file: the node ran as a member (a
			first start that failed leaves at most an empty
			segment; entries never exist without it, the log
			refuses that) */
	size_t segs; /* segment files */
};

/* "<20 digits>.seg", as the log names its segments. */
static bool is_segment_name(const char *name)
{
	if (strlen(name) != 24 || strcmp(name + 20, ".seg") != 0) {
		return false;
	}
	for (int i = 0; i < 20; i++) {
		if (!isdigit((unsigned char)name[i])) {
			return false;
		}
	}
	return true;
}

static int scan_log(const char *dir, struct log_files *lf, char *errmsg,
		    size_t errlen)
{
	char path[4096];
	struct dirent *d;
	DIR *dp;

	memset(lf, 0, sizeof(*lf));
	snprintf(path, sizeof(path), "%s/log", dir);
	dp = opendir(path);
	if (dp == NULL) {
		if (errno == ENOENT) {
			return RAFT_OK;
		}
		node_errf(errmsg, errlen, "cannot read %s: %s", path,
			  strerror(errno));
		return RAFT_EIO;
	}
	lf->dir = true;
	while ((d = readdir(dp)) != NULL) {
		if (strcmp(d->d_name, "meta") == 0) {
			lf->meta = true;
		} else if (is_segment_name(d->d_name)) {
			lf->segs++;
		}
	}
	closedir(dp);
	return RAFT_OK;
}

/* A stored cluster file comes after the log's first segment file, and the
 * log never removes its last one: without any, this member's log is lost,
 * and starting it with an empty one would let it vote again in terms it
 * voted in and count as a copy of entries it no longer has. */
static int check_log_kept(const char *dir, const struct node_cluster *c,
			  const struct log_files *lf, char *errmsg,
			  size_t errlen)
{
	const char *what;

	if (lf->segs > 0) {
		return RAFT_OK;
	}
	what = !lf->dir	  ? "is missing"
	       : lf->meta ? "has its term and vote file but no segment files"
			  : "has no segment files and no term and vote file";
	node_errf(errmsg, errlen,
		  "%s/%s says this data directory belongs to member %" PRIu64
		  " of cluster %" PRIu64 ", but its Raft log (%s/log) %s: "
		  "the member's votes and log are lost; restore the whole data "
		  "directory from a backup taken while the node was stopped; "
		  "starting this member afresh (on an empty data directory, "
		  "or without its %s file) is unsafe: the cluster counts on "
		  "the votes and entries it has lost",
		  dir, CLUSTER_FILE, c->self, c->cluster_id, dir, what,
		  CLUSTER_FILE);
	return RAFT_ECORRUPT;
}

/* Unless the caller gives the cluster id (then checked against the stored
 * one), the stored id is the hash of the stored members: if not, the file
 * was edited, and the member would run with members its peers do not
 * have. */
static int check_cluster_id(const char *path,
			    const struct raft_node_config *cfg,
			    const struct node_cluster *c, char *errmsg,
			    size_t errlen)
{
	char have[1024], want[1024], why[2304];

	if (cfg->cluster_id != 0 ||
	    c->cluster_id == node_cluster_id(c->members, c->n_members)) {
		return RAFT_OK;
	}
	format_members(c->members, c->n_members, have, sizeof(have));
	if (cfg->n_members > 0 &&
	    node_cluster_id(cfg->members, cfg->n_members) == c->cluster_id) {
		format_members(cfg->members, cfg->n_members, want,
			       sizeof(want));
		snprintf(why, sizeof(why),
			 "its cluster id %" PRIu64 " is that of the members "
			 "given, %s, not of its member lines, %s: a member "
			 "line was changed",
			 c->cluster_id, want, have);
	} else {
		snprintf(why, sizeof(why),
			 "its cluster id %" PRIu64 " does not match its "
			 "members %s: the id or a member line was changed",
			 c->cluster_id, have);
	}
	return damaged(path, why, errmsg, errlen);
}

/* The stored members against those given. The advice to start with the
 * stored ones keeps the member's votes and log; an empty data directory is
 * mentioned only where there is no vote or entry to lose. */
static int check_same_members(const char *dir, const char *path,
			      const struct raft_node_config *cfg,
			      const struct node_cluster *c,
			      const struct log_files *lf, char *errmsg,
			      size_t errlen)
{
	char have[1024], want[1024];

	if (cfg->n_members == 0 || same_members(c->members, c->n_members,
						cfg->members, cfg->n_members)) {
		return RAFT_OK;
	}
	format_members(c->members, c->n_members, have, sizeof(have));
	format_members(cfg->members, cfg->n_members, want, sizeof(want));
	if (lf->meta) {
		node_errf(errmsg, errlen,
			  "%s was initialised with members %s but the "
			  "configuration lists %s; membership changes are not "
			  "supported: start this member with the stored "
			  "members (the first list); if %s was edited, "
			  "restore it from a backup of this data directory, "
			  "or copy another member's and set its self= line "
			  "to %" PRIu64 "; never start this member on an "
			  "empty data directory (it would forget its votes "
			  "and log)",
			  dir, have, want, path, c->self);
	} else {
		node_errf(errmsg, errlen,
			  "%s was initialised with members %s but the "
			  "configuration lists %s; membership changes are not "
			  "supported: start this member with the stored "
			  "members (the first list); it holds no vote and no "
			  "entry yet, so if the cluster is being formed anew "
			  "with the listed members, an empty data directory "
			  "loses nothing of this member's",
			  dir, have, want);
	}
	return RAFT_EMISMATCH;
}

int node_cluster_load(const char *dir, const struct raft_node_config *cfg,
		      struct node_cluster *c, char *errmsg, size_t errlen)
{
	char path[4096];
	struct log_files lf;
	int rc;

	if (cfg->n_members > 0) {
		rc =
		    check_members(cfg->members, cfg->n_members, errmsg, errlen);
		if (rc != RAFT_OK) {
			return rc;
		}
		if (!has_member(cfg->members, cfg->n_members, cfg->id)) {
			node_errf(errmsg, errlen,
				  "node id %" PRIu64
				  " is not one of the cluster's members",
				  cfg->id);
			return RAFT_EINVAL;
		}
	}
	rc = scan_log(dir, &lf, errmsg, errlen);
	if (rc != RAFT_OK) {
		return rc;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, CLUSTER_FILE);
	rc = read_cluster(path, c, errmsg, errlen);
	if (rc == RAFT_ENOTFOUND && lf.meta) {
		/* Without the file nothing says whose log this is: taking it
		 * as a first start would let any id adopt another member's
		 * votes and entries. */
		node_errf(errmsg, errlen,
			  "%s holds a Raft log but no %s file, which names "
			  "the member it belongs to; restore %s from a backup "
			  "of this data directory (never start the directory "
			  "under another member's id)",
			  dir, CLUSTER_FILE, path);
		return RAFT_ECORRUPT;
	}
	if (rc == RAFT_ENOTFOUND) {
		/* First start: bootstrap from the configuration. */
		if (cfg->n_members == 0) {
			node_errf(errmsg, errlen,
				  "%s holds no cluster configuration; the "
				  "first start needs the member list",
				  dir);
			return RAFT_EINVAL;
		}
		c->self = cfg->id;
		c->n_members = cfg->n_members;
		memcpy(c->members, cfg->members,
		       cfg->n_members * sizeof(*cfg->members));
		c->cluster_id =
		    cfg->cluster_id != 0
			? cfg->cluster_id
			: node_cluster_id(cfg->members, cfg->n_members);
		c->fresh = true;
		return RAFT_OK;
	}
	if (rc != RAFT_OK) {
		return rc;
	}
	rc = check_log_kept(dir, c, &lf, errmsg, errlen);
	if (rc != RAFT_OK) {
		return rc;
	}
	rc = check_cluster_id(path, cfg, c, errmsg, errlen);
	if (rc != RAFT_OK) {
		return rc;
	}
	if (c->self != cfg->id) {
		node_errf(errmsg, errlen,
			  "data directory %s belongs to member %" PRIu64
			  ", not %" PRIu64
			  "; start each member on its own data directory "
			  "(a copy of another member's would vote twice)",
			  dir, c->self, cfg->id);
		return RAFT_EMISMATCH;
	}
	rc = check_same_members(dir, path, cfg, c, &lf, errmsg, errlen);
	if (rc != RAFT_OK) {
		return rc;
	}
	if (cfg->cluster_id != 0 && cfg->cluster_id != c->cluster_id) {
		node_errf(errmsg, errlen,
			  "%s belongs to cluster %" PRIu64
			  " but the configuration names cluster %" PRIu64
			  "; point this node at its own data directory",
			  dir, c->cluster_id, cfg->cluster_id);
		return RAFT_EMISMATCH;
	}
	return RAFT_OK;
}
