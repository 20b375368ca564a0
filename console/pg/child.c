/* SPDX-License-Identifier: Apache-2.0 */
#include "pg/child.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHILD_POLL_MS 20

/* What the child reports through the exec pipe when it cannot exec. */
struct child_report {
	int step;
	int err;
};

static const char *const child_step_names[] = {
    [CHILD_STEP_NONE] = "starting",	  [CHILD_STEP_FD] = "setting up stdio",
    [CHILD_STEP_SETGROUPS] = "setgroups", [CHILD_STEP_SETGID] = "setgid",
    [CHILD_STEP_SETUID] = "setuid",	  [CHILD_STEP_PDEATHSIG] = "prctl(PR_SET_PDEATHSIG)",
    [CHILD_STEP_SETSID] = "setsid",	  [CHILD_STEP_CHDIR] = "chdir",
    [CHILD_STEP_EXEC] = "exec",
};

int64_t child_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void child_sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	/* An interrupted sleep is fine: every caller re-checks its deadline. */
	nanosleep(&ts, NULL);
}

int child_log_open(const char *path, bool append, const struct child_user *user, vigil_err *err)
{
	int fd, flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY;

	flags |= append ? O_APPEND : O_TRUNC;
	fd = open(path, flags, 0600);
	if (fd < 0)
		return verr_set(err, -errno, "cannot open %s: %s", path, strerror(errno));
	if (user->drop && fchown(fd, user->uid, user->gid) < 0) {
		int rc = verr_set(err, -errno, "cannot chown %s: %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	return fd;
}

void child_log_tail(const char *path, char *out, size_t size)
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

void child_status_text(int status, char *out, size_t size)
{
	if (WIFEXITED(status))
		snprintf(out, size, "exit status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(out, size, "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(out, size, "wait status %d", status);
}

static void child_fail(int fd, enum child_step step, int e) __attribute__((noreturn));

static void child_fail(int fd, enum child_step step, int e)
{
	struct child_report r = {.step = step, .err = e};
	ssize_t n;

	do
		n = write(fd, &r, sizeof(r));
	while (n < 0 && errno == EINTR);
	_exit(127);
}

/*
 * Between fork and exec: async-signal-safe calls only, since the caller may
 * have other threads.  Anything that fails goes back through errfd.
 */
static void child_run(const struct child_spec *sp, pid_t parent, int devnull, int errfd, int maxfd)
    __attribute__((noreturn));

static void child_run(const struct child_spec *sp, pid_t parent, int devnull, int errfd, int maxfd)
{
	struct sigaction dfl;
	sigset_t none;
	int in, out, ep;

	/* Handlers, ignored signals and the mask the parent set must not reach
	 * the program: it has to see SIGINT/SIGTERM like any daemon. */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++)
		sigaction(s, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	/* Move our fds above stdio first, in case the parent closed its stdio. */
	ep = fcntl(errfd, F_DUPFD_CLOEXEC, 3);
	if (ep < 0)
		child_fail(errfd, CHILD_STEP_FD, errno);
	in = fcntl(devnull, F_DUPFD_CLOEXEC, 3);
	out = fcntl(sp->out_fd, F_DUPFD_CLOEXEC, 3);
	if (in < 0 || out < 0)
		child_fail(ep, CHILD_STEP_FD, errno);

	if (sp->user->drop) {
		gid_t gid = sp->user->gid;

		if (setgroups(1, &gid) < 0)
			child_fail(ep, CHILD_STEP_SETGROUPS, errno);
		if (setgid(gid) < 0)
			child_fail(ep, CHILD_STEP_SETGID, errno);
		if (setuid(sp->user->uid) < 0)
			child_fail(ep, CHILD_STEP_SETUID, errno);
	}
	if (sp->death_signal != 0) {
		/* After the uid change: changing credentials clears the death signal. */
		if (prctl(PR_SET_PDEATHSIG, sp->death_signal) < 0)
			child_fail(ep, CHILD_STEP_PDEATHSIG, errno);
		/* The parent may have died before prctl took effect. */
		if (getppid() != parent)
			_exit(127);
	}
	/* Its own session: a Ctrl-C on the parent's terminal must not stop the
	 * child (a database, say) under a parent that is still using it. */
	if (setsid() < 0)
		child_fail(ep, CHILD_STEP_SETSID, errno);
	if (chdir(sp->cwd) < 0)
		child_fail(ep, CHILD_STEP_CHDIR, errno);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		child_fail(ep, CHILD_STEP_FD, errno);
	/* Listening sockets and files the parent opened without O_CLOEXEC. */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
		for (int fd = 3; fd < maxfd; fd++)
			fcntl(fd, F_SETFD, FD_CLOEXEC);
	}
	execve(sp->path, sp->argv, sp->envp);
	child_fail(ep, CHILD_STEP_EXEC, errno);
}

int child_spawn(const struct child_spec *spec, pid_t *ret_pid, enum child_step *ret_step,
		vigil_err *err)
{
	struct child_report r;
	struct rlimit rl;
	const char *as;
	pid_t parent = getpid(), pid;
	int pfd[2], devnull, maxfd = 1024, rc;
	ssize_t n;

	if (ret_step != NULL)
		*ret_step = CHILD_STEP_NONE;
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
		rc = verr_set(err, -errno, "cannot fork for %s: %s", spec->path, strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		close(devnull);
		return rc;
	}
	if (pid == 0)
		child_run(spec, parent, devnull, pfd[1], maxfd);

	close(pfd[1]);
	close(devnull);
	/* EOF means exec closed the pipe: the program is running. */
	do
		n = read(pfd[0], &r, sizeof(r));
	while (n < 0 && errno == EINTR);
	close(pfd[0]);
	if (n != (ssize_t)sizeof(r)) {
		*ret_pid = pid;
		return 0;
	}
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (ret_step != NULL)
		*ret_step = (enum child_step)r.step;
	as = spec->user->drop && spec->user->name != NULL ? spec->user->name : NULL;
	return verr_set(err, -r.err, "cannot start %s%s%s: %s failed: %s", spec->path,
			as != NULL ? " as user " : "", as != NULL ? as : "",
			child_step_names[r.step], strerror(r.err));
}

int child_wait(pid_t pid, int64_t deadline_ms, int *ret_status)
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
		if (child_now_ms() >= deadline_ms)
			return -ETIMEDOUT;
		child_sleep_ms(CHILD_POLL_MS);
	}
}

void child_kill_wait(pid_t pid, int sig, int wait_ms)
{
	kill(pid, sig);
	if (child_wait(pid, child_now_ms() + wait_ms, NULL) != -ETIMEDOUT)
		return;
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}
