/* SPDX-License-Identifier: Apache-2.0 */
/* The child-process supervisor: spawn, report what failed before exec, wait, stop. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pg/child.h"

static char dir[64];
static char log_path[PATH_MAX];
static char env_path[] = "PATH=/usr/bin:/bin";
static char env_foo[] = "FOO=bar";
static char *envp[] = {env_path, env_foo, NULL};
static const struct child_user self = {.drop = false};

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/vigil-child-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(log_path, sizeof(log_path), "%s/child.log", dir);
}

static void teardown(void)
{
	unlink(log_path);
	rmdir(dir);
}

TestSuite(child, .init = setup, .fini = teardown, .timeout = 30);

/* Run sh -c script as user with its output to log_path; returns child_spawn's result. */
static int spawn_sh(const char *script, const struct child_user *user, const char *cwd,
		    int death_signal, pid_t *ret_pid, enum child_step *ret_step, vigil_err *err)
{
	char *const argv[] = {"/bin/sh", "-c", (char *)script, NULL};
	struct child_spec sp = {.path = "/bin/sh",
				.argv = argv,
				.envp = envp,
				.cwd = cwd,
				.user = user,
				.death_signal = death_signal};
	int rc;

	sp.out_fd = child_log_open(log_path, false, user, err);
	cr_assert_geq(sp.out_fd, 0, "%s", err->msg);
	rc = child_spawn(&sp, ret_pid, ret_step, err);
	close(sp.out_fd);
	return rc;
}

static void read_log(char *buf, size_t size)
{
	FILE *f = fopen(log_path, "r");
	size_t n;

	cr_assert_not_null(f);
	n = fread(buf, 1, size - 1, f);
	buf[n] = '\0';
	fclose(f);
}

Test(child, output_goes_to_the_log_and_the_exit_status_is_reported)
{
	vigil_err err = {0};
	char buf[256], how[64];
	int status;
	pid_t pid;

	cr_assert_eq(spawn_sh("echo out; echo err >&2; echo \"$FOO\"; cat; exit 3", &self, dir,
			      SIGTERM, &pid, NULL, &err),
		     0, "%s", err.msg);
	cr_assert_eq(child_wait(pid, child_now_ms() + 10000, &status), 0);
	child_status_text(status, how, sizeof(how));
	cr_expect_str_eq(how, "exit status 3");
	/* stdin is /dev/null (cat ends at once), the environment is exactly envp. */
	read_log(buf, sizeof(buf));
	cr_expect_str_eq(buf, "out\nerr\nbar\n");
	child_log_tail(log_path, buf, sizeof(buf));
	cr_expect_str_eq(buf, "out|err|bar");
}

Test(child, exec_failure_is_an_error_of_spawn)
{
	char *const argv[] = {"/nonexistent/program", NULL};
	struct child_spec sp = {.path = argv[0],
				.argv = argv,
				.envp = envp,
				.cwd = "/",
				.out_fd = 2,
				.user = &self,
				.death_signal = SIGTERM};
	enum child_step step = CHILD_STEP_NONE;
	vigil_err err = {0};
	pid_t pid = 0;

	cr_expect_eq(child_spawn(&sp, &pid, &step, &err), -ENOENT);
	cr_expect_eq(step, CHILD_STEP_EXEC);
	cr_expect_eq(pid, 0, "no pid on failure");
	cr_expect_not_null(strstr(err.msg, "/nonexistent/program: exec failed"), "%s", err.msg);
	/* The failed child was reaped. */
	cr_expect_eq(waitpid(-1, NULL, WNOHANG), -1);
	cr_expect_eq(errno, ECHILD);
}

Test(child, chdir_failure_names_the_step)
{
	enum child_step step = CHILD_STEP_NONE;
	vigil_err err = {0};
	pid_t pid;

	cr_expect_eq(spawn_sh("exit 0", &self, "/nonexistent/dir", 0, &pid, &step, &err), -ENOENT);
	cr_expect_eq(step, CHILD_STEP_CHDIR);
	cr_expect_not_null(strstr(err.msg, "chdir failed"), "%s", err.msg);
}

Test(child, descriptors_without_cloexec_do_not_reach_the_child)
{
	vigil_err err = {0};
	char buf[64];
	int status, fd;
	pid_t pid;

	fd = open("/dev/null", O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(dup2(fd, 50), 50);
	cr_assert_eq(spawn_sh("if [ -e /proc/self/fd/50 ]; then echo leaked; else echo closed; fi",
			      &self, dir, 0, &pid, NULL, &err),
		     0, "%s", err.msg);
	close(50);
	close(fd);
	cr_assert_eq(child_wait(pid, child_now_ms() + 10000, &status), 0);
	read_log(buf, sizeof(buf));
	cr_expect_str_eq(buf, "closed\n");
}

Test(child, wait_times_out_and_kill_wait_stops_and_reaps)
{
	vigil_err err = {0};
	int64_t start;
	pid_t pid;

	cr_assert_eq(spawn_sh("exec sleep 30", &self, dir, SIGTERM, &pid, NULL, &err), 0, "%s",
		     err.msg);
	cr_expect_eq(child_wait(pid, 0, NULL), -ETIMEDOUT, "0 only checks");
	start = child_now_ms();
	cr_expect_eq(child_wait(pid, start + 100, NULL), -ETIMEDOUT);
	cr_expect_geq(child_now_ms() - start, 100);
	child_kill_wait(pid, SIGTERM, 5000);
	cr_expect_eq(waitpid(pid, NULL, WNOHANG), -1, "already reaped");
	cr_expect_eq(errno, ECHILD);
}

Test(child, kill_wait_falls_back_to_sigkill)
{
	vigil_err err = {0};
	pid_t pid;

	/* The shell ignores SIGTERM and says so once it has; then it waits. */
	cr_assert_eq(
	    spawn_sh("trap '' TERM; echo ready; exec sleep 30", &self, dir, 0, &pid, NULL, &err), 0,
	    "%s", err.msg);
	for (int i = 0; i < 500; i++) {
		char buf[16];

		read_log(buf, sizeof(buf));
		if (strcmp(buf, "ready\n") == 0)
			break;
		child_sleep_ms(10);
	}
	child_kill_wait(pid, SIGTERM, 200);
	cr_expect_eq(waitpid(pid, NULL, WNOHANG), -1, "reaped after SIGKILL");
	cr_expect_eq(errno, ECHILD);
}

struct spawner {
	pid_t pid;
	int rc;
	vigil_err err;
};

static void *spawn_and_exit(void *arg)
{
	struct spawner *s = arg;

	s->rc = spawn_sh("exec sleep 30", &self, dir, SIGTERM, &s->pid, NULL, &s->err);
	return NULL;
}

Test(child, death_signal_fires_when_the_spawning_thread_exits)
{
	struct spawner s = {0};
	pthread_t t;
	int status = 0;

	cr_assert_eq(pthread_create(&t, NULL, spawn_and_exit, &s), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(s.rc, 0, "%s", s.err.msg);
	cr_assert_eq(child_wait(s.pid, child_now_ms() + 10000, &status), 0);
	cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "status %d", status);
}

Test(child, runs_as_the_user_it_is_given)
{
	struct child_user nobody = {.drop = true, .uid = 65534, .gid = 65534, .name = "nobody"};
	vigil_err err = {0};
	struct stat st;
	char buf[64];
	int status;
	pid_t pid;

	if (geteuid() != 0) {
		teardown(); /* a skipped test gets no .fini */
		cr_skip_test("needs root to change user");
	}
	cr_assert_eq(chmod(dir, 0711), 0);
	cr_assert_eq(spawn_sh("id -u; id -g; id -G", &nobody, dir, 0, &pid, NULL, &err), 0, "%s",
		     err.msg);
	cr_assert_eq(child_wait(pid, child_now_ms() + 10000, &status), 0);
	read_log(buf, sizeof(buf));
	cr_expect_str_eq(buf, "65534\n65534\n65534\n", "no supplementary groups");
	cr_assert_eq(stat(log_path, &st), 0);
	cr_expect_eq(st.st_uid, 65534, "the log is the user's");
}

Test(child, setuid_failure_names_the_user)
{
	struct child_user nobody = {.drop = true, .uid = 65534, .gid = 65534, .name = "nobody"};
	char *const argv[] = {"/bin/true", NULL};
	struct child_spec sp = {
	    .path = argv[0], .argv = argv, .envp = envp, .cwd = "/", .out_fd = 2, .user = &nobody};
	enum child_step step = CHILD_STEP_NONE;
	vigil_err err = {0};
	pid_t pid;

	if (geteuid() == 0) {
		teardown(); /* a skipped test gets no .fini */
		cr_skip_test("root may change user; this needs an unprivileged process");
	}
	cr_expect_eq(child_spawn(&sp, &pid, &step, &err), -EPERM);
	cr_expect_eq(step, CHILD_STEP_SETGROUPS);
	cr_expect_not_null(strstr(err.msg, "/bin/true as user nobody: setgroups failed"), "%s",
			   err.msg);
}

Test(child, status_text)
{
	char how[64];

	child_status_text(1 << 8, how, sizeof(how));
	cr_expect_str_eq(how, "exit status 1");
	child_status_text(SIGKILL, how, sizeof(how));
	cr_expect_str_eq(how, "killed by signal 9 (Killed)");
}

Test(child, log_tail_keeps_the_last_lines_on_one_line)
{
	char out[16];
	FILE *f = fopen(log_path, "w");

	cr_assert_not_null(f);
	fputs("one\ntwo\nthree\nfour\tfive\n\n", f);
	fclose(f);
	child_log_tail(log_path, out, sizeof(out));
	cr_expect_str_eq(out, "three|four five", "the last three lines, the end kept");
	child_log_tail(log_path, out, 6);
	cr_expect_str_eq(out, " five");
	f = fopen(log_path, "w");
	cr_assert_not_null(f);
	fputs("x\xc3\xa9\xc3\xa9", f); /* xéé */
	fclose(f);
	child_log_tail(log_path, out, 4);
	cr_expect_str_eq(out, "\xc3\xa9", "not cut inside a character");
	child_log_tail("/nonexistent/log", out, sizeof(out));
	cr_expect_str_eq(out, "");
}
