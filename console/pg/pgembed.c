/* SPDX-License-Identifier: Apache-2.0 */
#include "pg/pgembed.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "fsutil.h"
#include "pg/child.h"
#include "pg/pq_error.h"

#define PG_PORT		   "5432"
#define PG_SOCKET_NAME	   "/.s.PGSQL." PG_PORT
#define PG_BIN_GLOB	   "/usr/lib/postgresql/*/bin/postgres"
#define PG_RUN_AS	   "vigil-pg"
#define PG_DB		   "vigil"
#define PG_STOP_WAIT_MS	   10000
#define PG_INITDB_WAIT_MS  120000
#define PG_POLL_MS	   20
#define PG_SOCKET_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

struct pgembed {
	pid_t pid;
	char *dsn;
	char *state_dir; /* to start the server again when it dies */
};

/* Every path pgembed uses, absolute, computed once up front. */
struct pg_paths {
	char base[PATH_MAX]; /* state_dir/postgres */
	char data[PATH_MAX];
	char run[PATH_MAX];
	char version[PATH_MAX]; /* data/PG_VERSION: present once initdb has run */
	char pidfile[PATH_MAX];
	char initdb_log[PATH_MAX];
	char server_log[PATH_MAX];
	char bin_postgres[PATH_MAX];
	char bin_initdb[PATH_MAX];
	char dsn[2 * PATH_MAX];	      /* database vigil */
	char dsn_admin[2 * PATH_MAX]; /* database postgres, which always exists */
};

static int pg_path(char *buf, size_t size, vigil_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int pg_path(char *buf, size_t size, vigil_err *err, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size)
		return verr_set(err, -ENAMETOOLONG, "path too long under %.200s", buf);
	return 0;
}

/*
 * A libpq conninfo value in single quotes: backslash and quote escaped, so a
 * state directory with spaces or quotes in its name still works.
 */
static int pg_dsn_build(char *buf, size_t size, const char *host, const char *db, const char *extra,
			vigil_err *err)
{
	size_t o = 0;
	int n;

	n = snprintf(buf, size, "host='");
	if (n < 0 || (size_t)n >= size)
		goto toolong;
	o = (size_t)n;
	for (const char *p = host; *p != '\0'; p++) {
		if (o + 2 >= size)
			goto toolong;
		if (*p == '\'' || *p == '\\')
			buf[o++] = '\\';
		buf[o++] = *p;
	}
	n = snprintf(buf + o, size - o, "' port=" PG_PORT " dbname=%s user=vigil%s", db, extra);
	if (n < 0 || (size_t)n >= size - o)
		goto toolong;
	return 0;
toolong:
	return verr_set(err, -ENAMETOOLONG, "connection string for %s is too long", host);
}

/* The highest /usr/lib/postgresql/<major>/bin, or $VIGIL_PG_BINDIR. */
static int pg_find_bindir(struct pg_paths *p, vigil_err *err)
{
	const char *env = getenv("VIGIL_PG_BINDIR");
	char bindir[PATH_MAX];
	int rc;

	if (env != NULL && env[0] != '\0') {
		rc = pg_path(bindir, sizeof(bindir), err, "%s", env);
		if (rc < 0)
			return rc;
	} else {
		glob_t g;
		long best = -1, best_minor = -1;
		size_t best_i = 0;
		const size_t prefix = strlen("/usr/lib/postgresql/");

		if (glob(PG_BIN_GLOB, 0, NULL, &g) != 0)
			return verr_set(err, -ENOENT,
					"no PostgreSQL server found (%s); install postgresql or "
					"set VIGIL_PG_BINDIR",
					PG_BIN_GLOB);
		for (size_t i = 0; i < g.gl_pathc; i++) {
			char *end;
			long major = strtol(g.gl_pathv[i] + prefix, &end, 10), minor = 0;

			if (end == g.gl_pathv[i] + prefix)
				continue;
			/* Pre-10 majors were two numbers ("9.6"). */
			if (*end == '.')
				minor = strtol(end + 1, &end, 10);
			if (*end != '/')
				continue;
			if (major > best || (major == best && minor > best_minor)) {
				best = major;
				best_minor = minor;
				best_i = i;
			}
		}
		if (best < 0) {
			globfree(&g);
			return verr_set(err, -ENOENT, "no PostgreSQL server found (%s)",
					PG_BIN_GLOB);
		}
		rc = pg_path(bindir, sizeof(bindir), err, "%s", g.gl_pathv[best_i]);
		globfree(&g);
		if (rc < 0)
			return rc;
		/* Strip "/postgres". */
		*strrchr(bindir, '/') = '\0';
	}
	rc = pg_path(p->bin_postgres, sizeof(p->bin_postgres), err, "%s/postgres", bindir);
	if (rc == 0)
		rc = pg_path(p->bin_initdb, sizeof(p->bin_initdb), err, "%s/initdb", bindir);
	if (rc < 0)
		return rc;
	if (access(p->bin_postgres, X_OK) < 0)
		return verr_set(err, -errno, "cannot use PostgreSQL server %s: %s", p->bin_postgres,
				strerror(errno));
	if (access(p->bin_initdb, X_OK) < 0)
		return verr_set(err, -errno, "cannot use %s: %s", p->bin_initdb, strerror(errno));
	return 0;
}

static int pg_paths_init(struct pg_paths *p, const char *state_dir, vigil_err *err)
{
	char abs[PATH_MAX];
	size_t len, sock_len;
	int rc;

	if (state_dir[0] == '/') {
		rc = pg_path(abs, sizeof(abs), err, "%s", state_dir);
	} else {
		char cwd[PATH_MAX];

		if (getcwd(cwd, sizeof(cwd)) == NULL)
			return verr_set(err, -errno, "cannot resolve state directory %s: %s",
					state_dir, strerror(errno));
		rc = pg_path(abs, sizeof(abs), err, "%s/%s", cwd, state_dir);
	}
	if (rc < 0)
		return rc;
	len = strlen(abs);
	while (len > 1 && abs[len - 1] == '/')
		abs[--len] = '\0';
	if (len == 1)
		len = 0; /* state_dir "/" */

	rc = pg_path(p->base, sizeof(p->base), err, "%.*s/postgres", (int)len, abs);
	if (rc < 0)
		return rc;
	{
		/* In order: a later entry may build on an earlier one. */
		const struct {
			char *out;
			const char *dir;
			const char *leaf;
		} sub[] = {
		    {p->data, p->base, "data"},
		    {p->run, p->base, "run"},
		    {p->version, p->data, "PG_VERSION"},
		    {p->pidfile, p->data, "postmaster.pid"},
		    {p->initdb_log, p->base, "initdb.log"},
		    {p->server_log, p->base, "server.log"},
		};

		for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
			rc = pg_path(sub[i].out, PATH_MAX, err, "%s/%s", sub[i].dir, sub[i].leaf);
			if (rc < 0)
				return rc;
		}
	}

	/* The server would only say so in its log; say it before creating anything. */
	sock_len = strlen(p->run) + strlen(PG_SOCKET_NAME);
	if (sock_len > PG_SOCKET_PATH_MAX)
		return verr_set(err, -ENAMETOOLONG,
				"PostgreSQL socket path %s%s would be %zu bytes, more than the "
				"%zu a Unix socket allows; use a shorter state directory",
				p->run, PG_SOCKET_NAME, sock_len, PG_SOCKET_PATH_MAX);

	if ((rc = pg_dsn_build(p->dsn, sizeof(p->dsn), p->run, PG_DB, "", err)) < 0 ||
	    (rc = pg_dsn_build(p->dsn_admin, sizeof(p->dsn_admin), p->run, "postgres",
			       " connect_timeout=5", err)) < 0)
		return rc;
	return 0;
}

/* Who the server runs as: ourselves, or (when we are root) the postgres user. */
static int pg_user_init(struct child_user *u, vigil_err *err)
{
	struct passwd *pw;

	u->drop = geteuid() == 0;
	u->uid = geteuid();
	u->gid = getegid();
	u->name = PG_RUN_AS;
	if (!u->drop)
		return 0;
	errno = 0;
	pw = getpwnam(PG_RUN_AS);
	if (pw == NULL)
		return verr_set(
		    err, errno != 0 ? -errno : -ENOENT,
		    "running as root, but there is no \"" PG_RUN_AS
		    "\" user to run PostgreSQL as (initdb refuses root, and the "
		    "distribution's shared postgres user is not ours to use); create it "
		    "(deploy/install-deps.sh does: useradd --system --user-group "
		    "--no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin " PG_RUN_AS
		    ") or run the console unprivileged");
	if (pw->pw_uid == 0)
		return verr_set(err, -EPERM,
				"user \"" PG_RUN_AS "\" is root; refusing to run "
				"PostgreSQL as root");
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	return 0;
}

/* chown name (under dir parent) and everything below it, without following symlinks. */
static int pg_chown_at(int parent, const char *name, const char *top, const struct child_user *u,
		       int depth, vigil_err *err)
{
	struct stat st;
	struct dirent *de;
	DIR *d;
	int fd, rc = 0;

	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return verr_set(err, -errno, "cannot stat %s under %s: %s", name, top,
				strerror(errno));
	if ((st.st_uid != u->uid || st.st_gid != u->gid) &&
	    fchownat(parent, name, u->uid, u->gid, AT_SYMLINK_NOFOLLOW) < 0)
		return verr_set(err, -errno, "cannot give %s under %s to user " PG_RUN_AS ": %s",
				name, top, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return 0;
	if (depth > 64)
		return verr_set(err, -ELOOP, "directories nested too deep under %s", top);
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return verr_set(err, -errno, "cannot open %s under %s: %s", name, top,
				strerror(errno));
	d = fdopendir(fd);
	if (d == NULL) {
		rc = verr_set(err, -errno, "cannot read %s under %s: %s", name, top,
			      strerror(errno));
		close(fd);
		return rc;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		rc = pg_chown_at(dirfd(d), de->d_name, top, u, depth + 1, err);
		if (rc < 0)
			break;
	}
	closedir(d);
	return rc;
}

static int pg_dirs_prepare(const struct pg_paths *p, const struct child_user *u, vigil_err *err)
{
	const char *dirs[] = {p->base, p->data, p->run};
	int rc;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		rc = fs_mkdir_p(dirs[i], 0700, err);
		if (rc < 0)
			return rc;
		/* The server refuses a data directory group/world can read; the run
		 * directory's mode is what keeps other users off the trust socket. */
		if (chmod(dirs[i], 0700) < 0)
			return verr_set(err, -errno, "cannot chmod %s: %s", dirs[i],
					strerror(errno));
	}
	if (u->drop)
		return pg_chown_at(AT_FDCWD, p->base, p->base, u, 0, err);
	return 0;
}

/* Is pid a live (not zombie) process named postgres? */
static bool pg_pid_is_postgres(pid_t pid)
{
	char path[64], buf[512];
	const char *open_paren, *close_paren;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	open_paren = strchr(buf, '(');
	close_paren = strrchr(buf, ')');
	if (open_paren == NULL || close_paren == NULL || close_paren[1] != ' ')
		return false;
	if (close_paren - open_paren - 1 != (ptrdiff_t)strlen("postgres") ||
	    strncmp(open_paren + 1, "postgres", strlen("postgres")) != 0)
		return false;
	return close_paren[2] != 'Z' && close_paren[2] != 'X';
}

/*
 * A server left by a console that died (SIGKILL) gets SIGINT through its death
 * signal and needs a moment to shut down; wait for it rather than fail.  A pid
 * that is not a postgres process (reused after a reboot) is left for the
 * server's own stale-lock check.
 */
static int pg_wait_previous(const struct pg_paths *p, int64_t deadline, vigil_err *err)
{
	char buf[32];
	ssize_t n;
	long pid;
	int fd;

	fd = open(p->pidfile, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	pid = strtol(buf, NULL, 10);
	if (pid <= 0 || pid > INT32_MAX)
		return 0;
	while (pg_pid_is_postgres((pid_t)pid)) {
		if (child_now_ms() >= deadline)
			return verr_set(err, -EBUSY,
					"data directory %s is still in use by PostgreSQL pid %ld "
					"(is another console running on this state directory?)",
					p->data, pid);
		child_sleep_ms(50);
	}
	return 0;
}

/*
 * Start one of the cluster's programs (argv[0], in the base directory, as u)
 * with its output appended to or replacing log.  Should the console die
 * without stopping it, it gets SIGINT: PostgreSQL's fast shutdown, and what
 * lets initdb remove what it created.
 */
static int pg_spawn(const struct pg_paths *p, const struct child_user *u, char *const argv[],
		    const char *log, bool append, pid_t *ret_pid, vigil_err *err)
{
	static char env_path[] = "PATH=/usr/bin:/bin";
	static char env_lang[] = "LANG=C.UTF-8";
	char *envp[] = {env_path, env_lang, NULL};
	struct child_spec sp = {.path = argv[0],
				.argv = argv,
				.envp = envp,
				.cwd = p->base,
				.user = u,
				.death_signal = SIGINT};
	enum child_step step;
	int rc;

	sp.out_fd = child_log_open(log, append, u, err);
	if (sp.out_fd < 0)
		return sp.out_fd;
	rc = child_spawn(&sp, ret_pid, &step, err);
	close(sp.out_fd);
	if (rc < 0 && step == CHILD_STEP_CHDIR && u->drop)
		return verr_set(err, rc,
				"user " PG_RUN_AS " cannot enter %s: %s (the state directory "
				"and every directory above it must be searchable by that user)",
				p->base, strerror(-rc));
	return rc;
}

static int pg_initdb(const struct pg_paths *p, const struct child_user *u, vigil_err *err)
{
	char *const argv[] = {
	    (char *)p->bin_initdb,
	    "-D",
	    (char *)p->data,
	    "-U",
	    "vigil",
	    /* Replaced before the first start (pg_auth_write); never trust. */
	    "--auth=peer",
	    "-E",
	    "UTF8",
	    "--locale=C.UTF-8",
	    "--no-instructions",
	    NULL,
	};
	char tail[300], how[64];
	pid_t pid;
	int rc, status;

	rc = pg_spawn(p, u, argv, p->initdb_log, false, &pid, err);
	if (rc < 0)
		return rc;
	rc = child_wait(pid, child_now_ms() + PG_INITDB_WAIT_MS, &status);
	if (rc == -ETIMEDOUT) {
		/* SIGINT lets initdb remove what it created. */
		child_kill_wait(pid, SIGINT, PG_STOP_WAIT_MS);
		return verr_set(err, -ETIMEDOUT, "initdb of %s took more than %d s; see %s",
				p->data, PG_INITDB_WAIT_MS / 1000, p->initdb_log);
	}
	if (rc < 0)
		return verr_set(err, rc, "cannot wait for initdb: %s", strerror(-rc));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	child_status_text(status, how, sizeof(how));
	child_log_tail(p->initdb_log, tail, sizeof(tail));
	return verr_set(err, -EIO, "initdb of %s failed (%s); see %s: %s", p->data, how,
			p->initdb_log, tail);
}

/* Create database vigil unless it exists. */
static int pg_ensure_db(const struct pg_paths *p, vigil_err *err)
{
	const char *params[1] = {PG_DB};
	PGresult *res = NULL;
	char msg[300];
	PGconn *c;
	int rc = 0;

	c = PQconnectdb(p->dsn_admin);
	if (c == NULL)
		return verr_set(err, -ENOMEM, "out of memory connecting to PostgreSQL");
	if (PQstatus(c) != CONNECTION_OK) {
		rc = verr_set(err, -ECONNREFUSED, "cannot connect to PostgreSQL at %s: %s", p->run,
			      pq_error_flat(PQerrorMessage(c), msg, sizeof(msg)));
		goto out;
	}
	PQsetNoticeProcessor(c, pq_error_notice_ignore, NULL);
	res = PQexecParams(c, "SELECT 1 FROM pg_database WHERE datname = $1", 1, NULL, params, NULL,
			   NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = verr_set(err, -EIO, "cannot list databases at %s: %s", p->run,
			      pq_error_flat(PQresultErrorMessage(res), msg, sizeof(msg)));
		goto out;
	}
	if (PQntuples(res) > 0)
		goto out;
	PQclear(res);
	/* An identifier cannot be a parameter; the name is a constant. */
	res = PQexec(c, "CREATE DATABASE " PG_DB);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		/* 42P04 duplicate_database: created meanwhile, fine. */
		if (state == NULL || strcmp(state, "42P04") != 0)
			rc = verr_set(err, -EIO, "cannot create database " PG_DB " at %s: %s",
				      p->run,
				      pq_error_flat(PQresultErrorMessage(res), msg, sizeof(msg)));
	}
out:
	PQclear(res);
	PQfinish(c);
	return rc;
}

/*
 * Who may connect: nobody over TCP (the server listens on no address), and
 * over the Unix socket only the console's own OS user and the cluster's,
 * proven by the kernel (peer), as role vigil.  Written at every start, so a
 * cluster made by an older console (trust, the distribution's postgres user)
 * is closed too.  The files belong to the cluster's user, mode 0600.
 */
static int pg_auth_write(const struct pg_paths *p, const struct child_user *u, vigil_err *err)
{
	static const char hba[] =
	    "# Written by vigil-console at every start; edits are lost.\n"
	    "# Unix socket only, the peer's OS user mapped through pg_ident.conf.\n"
	    "local all all peer map=vigil\n";
	char path[PATH_MAX], ident[1024], self[256];
	struct passwd pw, *pwp = NULL;
	char pwbuf[4096];
	int n, rc;

	if (getpwuid_r(geteuid(), &pw, pwbuf, sizeof(pwbuf), &pwp) != 0 || pwp == NULL)
		return verr_set(err, -ENOENT, "the console's uid %u has no user name for pg_ident",
				(unsigned)geteuid());
	snprintf(self, sizeof(self), "%s", pw.pw_name);
	n = snprintf(ident, sizeof(ident),
		     "# Written by vigil-console at every start; edits are lost.\n"
		     "vigil %s vigil\n",
		     self);
	if (strcmp(self, u->name) != 0 && n > 0 && (size_t)n < sizeof(ident))
		n += snprintf(ident + n, sizeof(ident) - (size_t)n, "vigil %s vigil\n", u->name);
	if (n < 0 || (size_t)n >= sizeof(ident))
		return verr_set(err, -ENAMETOOLONG, "user names too long for pg_ident.conf");
	const struct {
		const char *name, *text;
		size_t len;
	} files[] = {{"pg_hba.conf", hba, sizeof(hba) - 1}, {"pg_ident.conf", ident, (size_t)n}};
	for (size_t i = 0; i < 2; i++) {
		if ((rc = pg_path(path, sizeof(path), err, "%s/%s", p->data, files[i].name)) < 0 ||
		    (rc = fs_write_file(path, files[i].text, files[i].len, 0600, 0, err)) < 0)
			return rc;
		if (u->drop && chown(path, u->uid, u->gid) < 0)
			return verr_set(err, -errno, "cannot give %s to user %s: %s", path, u->name,
					strerror(errno));
	}
	return 0;
}

static int pg_server_start(const struct pg_paths *p, const struct child_user *u, int64_t deadline,
			   int timeout_ms, pid_t *ret_pid, vigil_err *err)
{
	char *const argv[] = {
	    (char *)p->bin_postgres, "-D", (char *)p->data, "-k", (char *)p->run, "-c",
	    "listen_addresses=",     "-p", PG_PORT,	    NULL,
	};
	char tail[300], how[64];
	pid_t pid;
	int rc, status;

	rc = pg_spawn(p, u, argv, p->server_log, true, &pid, err);
	if (rc < 0)
		return rc;

	for (;;) {
		PGPing ping;

		rc = child_wait(pid, 0, &status);
		if (rc == 0) {
			child_status_text(status, how, sizeof(how));
			child_log_tail(p->server_log, tail, sizeof(tail));
			return verr_set(err, -EIO,
					"PostgreSQL exited during startup (%s); see %s: %s", how,
					p->server_log, tail);
		}
		if (rc != -ETIMEDOUT) {
			child_kill_wait(pid, SIGKILL, PG_STOP_WAIT_MS);
			return verr_set(err, rc, "cannot wait for PostgreSQL: %s", strerror(-rc));
		}
		ping = PQping(p->dsn_admin);
		if (ping == PQPING_OK)
			break;
		if (ping == PQPING_NO_ATTEMPT) {
			child_kill_wait(pid, SIGINT, PG_STOP_WAIT_MS);
			return verr_set(err, -EINVAL, "bad connection parameters for %s", p->run);
		}
		if (child_now_ms() >= deadline) {
			child_kill_wait(pid, SIGINT, PG_STOP_WAIT_MS);
			return verr_set(err, -ETIMEDOUT,
					"PostgreSQL did not accept connections on %s within %d ms; "
					"see %s",
					p->run, timeout_ms, p->server_log);
		}
		child_sleep_ms(PG_POLL_MS);
	}
	*ret_pid = pid;
	return 0;
}

struct pgembed *pgembed_start(const char *state_dir, int timeout_ms, vigil_err *err)
{
	struct pg_paths *p = NULL;
	struct pgembed *pg = NULL;
	struct child_user u;
	int64_t deadline;
	pid_t pid = 0;
	int rc;

	if (state_dir == NULL || state_dir[0] == '\0' || timeout_ms <= 0) {
		rc = verr_set(err, -EINVAL, "pgembed_start needs a state directory and a timeout");
		goto fail;
	}
	deadline = child_now_ms() + timeout_ms;
	p = calloc(1, sizeof(*p));
	pg = calloc(1, sizeof(*pg));
	if (p == NULL || pg == NULL) {
		rc = verr_set(err, -ENOMEM, "out of memory starting PostgreSQL");
		goto fail;
	}
	if ((rc = pg_paths_init(p, state_dir, err)) < 0 || (rc = pg_find_bindir(p, err)) < 0 ||
	    (rc = pg_user_init(&u, err)) < 0 || (rc = pg_dirs_prepare(p, &u, err)) < 0 ||
	    (rc = pg_wait_previous(p, deadline, err)) < 0)
		goto fail;
	if (!fs_exists(p->version) && (rc = pg_initdb(p, &u, err)) < 0)
		goto fail;
	if ((rc = pg_auth_write(p, &u, err)) < 0)
		goto fail;
	if ((rc = pg_server_start(p, &u, deadline, timeout_ms, &pid, err)) < 0)
		goto fail;
	if ((rc = pg_ensure_db(p, err)) < 0)
		goto fail;
	pg->dsn = strdup(p->dsn);
	if (pg->dsn == NULL) {
		rc = verr_set(err, -ENOMEM, "out of memory starting PostgreSQL");
		goto fail;
	}
	pg->state_dir = strdup(state_dir);
	if (pg->state_dir == NULL) {
		free(pg->dsn);
		rc = verr_set(err, -ENOMEM, "out of memory starting PostgreSQL");
		goto fail;
	}
	pg->pid = pid;
	free(p);
	return pg;
fail:
	if (pid > 0)
		child_kill_wait(pid, SIGINT, PG_STOP_WAIT_MS);
	free(p);
	free(pg);
	errno = -rc;
	return NULL;
}

const char *pgembed_dsn(const struct pgembed *pg)
{
	return pg->dsn;
}

void pgembed_stop(struct pgembed *pg)
{
	if (pg == NULL)
		return;
	/* SIGINT is PostgreSQL's fast shutdown: sessions end, a checkpoint is written. */
	if (pg->pid > 0)
		child_kill_wait(pg->pid, SIGINT, PG_STOP_WAIT_MS);
	free(pg->dsn);
	free(pg->state_dir);
	free(pg);
}

int pgembed_watch(struct pgembed *pg, int timeout_ms, vigil_err *err)
{
	struct pgembed *fresh;
	vigil_err why = {0};
	char how[64];
	int status;

	if (pg->pid > 0 && child_wait(pg->pid, 0, &status) == -ETIMEDOUT)
		return 0; /* still running */
	if (pg->pid > 0)
		child_status_text(status, how, sizeof(how));
	else
		snprintf(how, sizeof(how), "not running");
	pg->pid = 0;
	fresh = pgembed_start(pg->state_dir, timeout_ms, &why);
	if (fresh == NULL)
		return verr_set(err, why.code < 0 ? why.code : -EIO,
				"PostgreSQL stopped (%s); starting it again failed: %s", how,
				why.msg);
	/* Same state directory, so the same DSN: the store reconnects to it. */
	pg->pid = fresh->pid;
	fresh->pid = 0;
	pgembed_stop(fresh);
	if (err != NULL)
		snprintf(err->msg, sizeof(err->msg), "PostgreSQL stopped (%s); started it again",
			 how);
	return 1;
}
