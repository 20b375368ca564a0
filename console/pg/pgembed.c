/* SPDX-License-Identifier: Apache-2.0 */
#include "pg/pgembed.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
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
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "fsutil.h"

#define PG_PORT		   "5432"
#define PG_SOCKET_NAME	   "/.s.PGSQL." PG_PORT
#define PG_BIN_GLOB	   "/usr/lib/postgresql/*/bin/postgres"
#define PG_RUN_AS	   "postgres"
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

/* Who the server runs as: ourselves, or (when we are root) the postgres user. */
struct pg_user {
	bool drop;
	uid_t uid;
	gid_t gid;
};

struct pg_spawn {
	const char *path; /* absolute path of the binary */
	char *const *argv;
	const char *cwd;
	int out_fd; /* becomes stdout and stderr */
	const struct pg_user *user;
};

/* What the child reports through the exec pipe when it cannot exec. */
enum pg_step {
	PG_STEP_FD,
	PG_STEP_SETGROUPS,
	PG_STEP_SETGID,
	PG_STEP_SETUID,
	PG_STEP_PDEATHSIG,
	PG_STEP_SETSID,
	PG_STEP_CHDIR,
	PG_STEP_EXEC,
};

struct pg_child_fail {
	int step;
	int err;
};

static const char *const pg_step_names[] = {
    [PG_STEP_FD] = "setting up stdio",
    [PG_STEP_SETGROUPS] = "setgroups",
    [PG_STEP_SETGID] = "setgid",
    [PG_STEP_SETUID] = "setuid",
    [PG_STEP_PDEATHSIG] = "prctl(PR_SET_PDEATHSIG)",
    [PG_STEP_SETSID] = "setsid",
    [PG_STEP_CHDIR] = "chdir",
    [PG_STEP_EXEC] = "exec",
};

static int64_t pg_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pg_sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	/* An interrupted sleep is fine: every caller re-checks its deadline. */
	nanosleep(&ts, NULL);
}

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

static int pg_user_init(struct pg_user *u, vigil_err *err)
{
	struct passwd *pw;

	u->drop = geteuid() == 0;
	u->uid = geteuid();
	u->gid = getegid();
	if (!u->drop)
		return 0;
	errno = 0;
	pw = getpwnam(PG_RUN_AS);
	if (pw == NULL)
		return verr_set(err, errno != 0 ? -errno : -ENOENT,
				"running as root, but there is no \"" PG_RUN_AS
				"\" user to run PostgreSQL as (initdb refuses root); create "
				"that user or run the console unprivileged");
	if (pw->pw_uid == 0)
		return verr_set(err, -EPERM,
				"user \"" PG_RUN_AS "\" is root; refusing to run "
				"PostgreSQL as root");
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	return 0;
}

/* chown name (under dir parent) and everything below it, without following symlinks. */
static int pg_chown_at(int parent, const char *name, const char *top, const struct pg_user *u,
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

static int pg_dirs_prepare(const struct pg_paths *p, const struct pg_user *u, vigil_err *err)
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

/*
 * Open a log file for a child; when the server runs as another user the file
 * must be theirs, since the server reopens nothing but writes to it.
 */
static int pg_log_open(const char *path, bool append, const struct pg_user *u, vigil_err *err)
{
	int fd, flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY;

	flags |= append ? O_APPEND : O_TRUNC;
	fd = open(path, flags, 0600);
	if (fd < 0)
		return verr_set(err, -errno, "cannot open %s: %s", path, strerror(errno));
	if (u->drop && fchown(fd, u->uid, u->gid) < 0) {
		int rc = verr_set(err, -errno, "cannot chown %s: %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	return fd;
}

/* The last few lines of a log, on one line, for an error message. */
static void pg_log_tail(const char *path, char *out, size_t size)
{
	char buf[1024];
	ssize_t n = 0;
	off_t end;
	int fd, lines = 0;
	char *start;
	size_t len;

	out[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return;
	end = lseek(fd, 0, SEEK_END);
	if (end > 0) {
		off_t from = end > (off_t)(sizeof(buf) - 1) ? end - (off_t)(sizeof(buf) - 1) : 0;
		n = pread(fd, buf, sizeof(buf) - 1, from);
	}
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	start = buf;
	for (ssize_t i = n - 1; i >= 0; i--) {
		if (buf[i] == '\n' && ++lines == 3) {
			start = buf + i + 1;
			break;
		}
	}
	for (char *c = start; *c != '\0'; c++) {
		if (*c == '\n')
			*c = '|';
		else if (!isprint((unsigned char)*c) && !((unsigned char)*c & 0x80))
			*c = ' ';
	}
	/* Keep the end, where the reason is; do not start inside a UTF-8 sequence. */
	len = strlen(start);
	if (len >= size) {
		start += len - (size - 1);
		while ((*start & 0xc0) == 0x80)
			start++;
		len = strlen(start);
	}
	memcpy(out, start, len + 1);
}

static void pg_status_text(int status, char *out, size_t size)
{
	if (WIFEXITED(status))
		snprintf(out, size, "exit status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(out, size, "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(out, size, "wait status %d", status);
}

static void pg_child_fail(int fd, enum pg_step step, int e) __attribute__((noreturn));

static void pg_child_fail(int fd, enum pg_step step, int e)
{
	struct pg_child_fail f = {.step = step, .err = e};
	ssize_t n;

	do
		n = write(fd, &f, sizeof(f));
	while (n < 0 && errno == EINTR);
	_exit(127);
}

/*
 * Between fork and exec: async-signal-safe calls only, since the console may
 * have other threads.  Anything that fails goes back through errfd.
 */
static void pg_child(const struct pg_spawn *sp, pid_t parent, int devnull, int errfd, int maxfd,
		     char *const envp[]) __attribute__((noreturn));

static void pg_child(const struct pg_spawn *sp, pid_t parent, int devnull, int errfd, int maxfd,
		     char *const envp[])
{
	struct sigaction dfl;
	sigset_t none;
	int in, out, ep;

	/* Handlers, ignored signals and the mask the console set must not reach
	 * the server: it has to see SIGINT/SIGTERM like any postmaster. */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++)
		sigaction(s, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	/* Move our fds above stdio first, in case the console closed its stdio. */
	ep = fcntl(errfd, F_DUPFD_CLOEXEC, 3);
	if (ep < 0)
		pg_child_fail(errfd, PG_STEP_FD, errno);
	in = fcntl(devnull, F_DUPFD_CLOEXEC, 3);
	out = fcntl(sp->out_fd, F_DUPFD_CLOEXEC, 3);
	if (in < 0 || out < 0)
		pg_child_fail(ep, PG_STEP_FD, errno);

	if (sp->user->drop) {
		gid_t gid = sp->user->gid;

		if (setgroups(1, &gid) < 0)
			pg_child_fail(ep, PG_STEP_SETGROUPS, errno);
		if (setgid(gid) < 0)
			pg_child_fail(ep, PG_STEP_SETGID, errno);
		if (setuid(sp->user->uid) < 0)
			pg_child_fail(ep, PG_STEP_SETUID, errno);
	}
	/* After the uid change: changing credentials clears the death signal. */
	if (prctl(PR_SET_PDEATHSIG, SIGINT) < 0)
		pg_child_fail(ep, PG_STEP_PDEATHSIG, errno);
	/* The console may have died before prctl took effect. */
	if (getppid() != parent)
		_exit(127);
	/* Its own session: a Ctrl-C on the console's terminal must not stop the
	 * database under a console that is still flushing to it. */
	if (setsid() < 0)
		pg_child_fail(ep, PG_STEP_SETSID, errno);
	if (chdir(sp->cwd) < 0)
		pg_child_fail(ep, PG_STEP_CHDIR, errno);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		pg_child_fail(ep, PG_STEP_FD, errno);
	/* Listening sockets and files the console opened without O_CLOEXEC. */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
		for (int fd = 3; fd < maxfd; fd++)
			fcntl(fd, F_SETFD, FD_CLOEXEC);
	}
	execve(sp->path, sp->argv, envp);
	pg_child_fail(ep, PG_STEP_EXEC, errno);
}

/* Start a child; 0 once it has exec'd, *ret_pid set. */
static int pg_spawn(const struct pg_spawn *sp, pid_t *ret_pid, vigil_err *err)
{
	static char env_path[] = "PATH=/usr/bin:/bin";
	static char env_lang[] = "LANG=C.UTF-8";
	char *envp[] = {env_path, env_lang, NULL};
	struct pg_child_fail f;
	struct rlimit rl;
	pid_t parent = getpid(), pid;
	int pfd[2], devnull, maxfd = 1024, rc;
	ssize_t n;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		maxfd = rl.rlim_cur > 65536 ? 65536 : (int)rl.rlim_cur;
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull < 0)
		return verr_set(err, -errno, "cannot open /dev/null: %s", strerror(errno));
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		rc = verr_set(err, -errno, "cannot create a pipe: %s", strerror(errno));
		close(devnull);
		return rc;
	}
	pid = fork();
	if (pid < 0) {
		rc = verr_set(err, -errno, "cannot fork for %s: %s", sp->path, strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		close(devnull);
		return rc;
	}
	if (pid == 0)
		pg_child(sp, parent, devnull, pfd[1], maxfd, envp);

	close(pfd[1]);
	close(devnull);
	/* EOF means exec closed the pipe: the program is running. */
	do
		n = read(pfd[0], &f, sizeof(f));
	while (n < 0 && errno == EINTR);
	close(pfd[0]);
	if (n != (ssize_t)sizeof(f)) {
		*ret_pid = pid;
		return 0;
	}
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (f.step == PG_STEP_CHDIR && sp->user->drop)
		return verr_set(err, -f.err,
				"user " PG_RUN_AS " cannot enter %s: %s (the state directory "
				"and every directory above it must be searchable by that user)",
				sp->cwd, strerror(f.err));
	return verr_set(err, -f.err, "cannot start %s%s: %s failed: %s", sp->path,
			sp->user->drop ? " as user " PG_RUN_AS : "", pg_step_names[f.step],
			strerror(f.err));
}

/* Reap pid before deadline: 0 (status in *ret_status), -ETIMEDOUT, or -errno. */
static int pg_wait_child(pid_t pid, int64_t deadline, int *ret_status)
{
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid) {
			if (ret_status != NULL)
				*ret_status = status;
			return 0;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (pg_now_ms() >= deadline)
			return -ETIMEDOUT;
		pg_sleep_ms(PG_POLL_MS);
	}
}

/* Send sig, wait up to wait_ms, then SIGKILL; the child is reaped either way. */
static void pg_kill_wait(pid_t pid, int sig, int wait_ms)
{
	kill(pid, sig);
	if (pg_wait_child(pid, pg_now_ms() + wait_ms, NULL) != -ETIMEDOUT)
		return;
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
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
		if (pg_now_ms() >= deadline)
			return verr_set(err, -EBUSY,
					"data directory %s is still in use by PostgreSQL pid %ld "
					"(is another console running on this state directory?)",
					p->data, pid);
		pg_sleep_ms(50);
	}
	return 0;
}

static int pg_initdb(const struct pg_paths *p, const struct pg_user *u, vigil_err *err)
{
	char *const argv[] = {
	    (char *)p->bin_initdb,
	    "-D",
	    (char *)p->data,
	    "-U",
	    "vigil",
	    "--auth=trust",
	    "-E",
	    "UTF8",
	    "--locale=C.UTF-8",
	    "--no-instructions",
	    NULL,
	};
	struct pg_spawn sp = {.path = p->bin_initdb, .argv = argv, .cwd = p->base, .user = u};
	char tail[300], how[64];
	pid_t pid;
	int fd, rc, status;

	fd = pg_log_open(p->initdb_log, false, u, err);
	if (fd < 0)
		return fd;
	sp.out_fd = fd;
	rc = pg_spawn(&sp, &pid, err);
	close(fd);
	if (rc < 0)
		return rc;
	rc = pg_wait_child(pid, pg_now_ms() + PG_INITDB_WAIT_MS, &status);
	if (rc == -ETIMEDOUT) {
		/* SIGINT lets initdb remove what it created. */
		pg_kill_wait(pid, SIGINT, PG_STOP_WAIT_MS);
		return verr_set(err, -ETIMEDOUT, "initdb of %s took more than %d s; see %s",
				p->data, PG_INITDB_WAIT_MS / 1000, p->initdb_log);
	}
	if (rc < 0)
		return verr_set(err, rc, "cannot wait for initdb: %s", strerror(-rc));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	pg_status_text(status, how, sizeof(how));
	pg_log_tail(p->initdb_log, tail, sizeof(tail));
	return verr_set(err, -EIO, "initdb of %s failed (%s); see %s: %s", p->data, how,
			p->initdb_log, tail);
}

/* A libpq message (multi-line, trailing newline) as one line. */
static const char *pg_flat(const char *msg, char *buf, size_t size)
{
	size_t o = 0;

	for (const char *c = msg; *c != '\0' && o + 1 < size; c++) {
		if (*c == '\n' || *c == '\t' || *c == '\r') {
			if (o > 0 && buf[o - 1] != ' ')
				buf[o++] = ' ';
		} else {
			buf[o++] = *c;
		}
	}
	while (o > 0 && buf[o - 1] == ' ')
		o--;
	buf[o] = '\0';
	return buf;
}

static void pg_notice_ignore(void *arg, const char *message)
{
	(void)arg;
	(void)message;
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
			      pg_flat(PQerrorMessage(c), msg, sizeof(msg)));
		goto out;
	}
	PQsetNoticeProcessor(c, pg_notice_ignore, NULL);
	res = PQexecParams(c, "SELECT 1 FROM pg_database WHERE datname = $1", 1, NULL, params, NULL,
			   NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = verr_set(err, -EIO, "cannot list databases at %s: %s", p->run,
			      pg_flat(PQresultErrorMessage(res), msg, sizeof(msg)));
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
				      p->run, pg_flat(PQresultErrorMessage(res), msg, sizeof(msg)));
	}
out:
	PQclear(res);
	PQfinish(c);
	return rc;
}

static int pg_server_start(const struct pg_paths *p, const struct pg_user *u, int64_t deadline,
			   int timeout_ms, pid_t *ret_pid, vigil_err *err)
{
	char *const argv[] = {
	    (char *)p->bin_postgres, "-D", (char *)p->data, "-k", (char *)p->run, "-c",
	    "listen_addresses=",     "-p", PG_PORT,	    NULL,
	};
	struct pg_spawn sp = {.path = p->bin_postgres, .argv = argv, .cwd = p->base, .user = u};
	char tail[300], how[64];
	pid_t pid;
	int fd, rc, status;

	fd = pg_log_open(p->server_log, true, u, err);
	if (fd < 0)
		return fd;
	sp.out_fd = fd;
	rc = pg_spawn(&sp, &pid, err);
	close(fd);
	if (rc < 0)
		return rc;

	for (;;) {
		PGPing ping;

		rc = pg_wait_child(pid, 0, &status);
		if (rc == 0) {
			pg_status_text(status, how, sizeof(how));
			pg_log_tail(p->server_log, tail, sizeof(tail));
			return verr_set(err, -EIO,
					"PostgreSQL exited during startup (%s); see %s: %s", how,
					p->server_log, tail);
		}
		if (rc != -ETIMEDOUT) {
			pg_kill_wait(pid, SIGKILL, PG_STOP_WAIT_MS);
			return verr_set(err, rc, "cannot wait for PostgreSQL: %s", strerror(-rc));
		}
		ping = PQping(p->dsn_admin);
		if (ping == PQPING_OK)
			break;
		if (ping == PQPING_NO_ATTEMPT) {
			pg_kill_wait(pid, SIGINT, PG_STOP_WAIT_MS);
			return verr_set(err, -EINVAL, "bad connection parameters for %s", p->run);
		}
		if (pg_now_ms() >= deadline) {
			pg_kill_wait(pid, SIGINT, PG_STOP_WAIT_MS);
			return verr_set(err, -ETIMEDOUT,
					"PostgreSQL did not accept connections on %s within %d ms; "
					"see %s",
					p->run, timeout_ms, p->server_log);
		}
		pg_sleep_ms(PG_POLL_MS);
	}
	*ret_pid = pid;
	return 0;
}

struct pgembed *pgembed_start(const char *state_dir, int timeout_ms, vigil_err *err)
{
	struct pg_paths *p = NULL;
	struct pgembed *pg = NULL;
	struct pg_user u;
	int64_t deadline;
	pid_t pid = 0;
	int rc;

	if (state_dir == NULL || state_dir[0] == '\0' || timeout_ms <= 0) {
		rc = verr_set(err, -EINVAL, "pgembed_start needs a state directory and a timeout");
		goto fail;
	}
	deadline = pg_now_ms() + timeout_ms;
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
		pg_kill_wait(pid, SIGINT, PG_STOP_WAIT_MS);
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
		pg_kill_wait(pg->pid, SIGINT, PG_STOP_WAIT_MS);
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

	if (pg->pid > 0 && pg_wait_child(pg->pid, 0, &status) == -ETIMEDOUT)
		return 0; /* still running */
	if (pg->pid > 0)
		pg_status_text(status, how, sizeof(how));
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
