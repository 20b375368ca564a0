/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fanotify permission decisions against the real kernel (defender/enforce/
 * fanguard): a held open or exec is refused, allowed, or its caller killed
 * as the decision says; the defender's own threads are never held up; and a
 * decision that takes too long is answered "allow" by the watchdog within
 * the bound, counted and reported.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "enforce/fanguard.h"
#include "enforce/subject.h"

static char dir[256];
static atomic_int fail_opens;

static void setup(void)
{
	bool ex, op;
	char why[160];

	if (geteuid() != 0)
		cr_skip_test("fanotify permission events need root");
	fanguard_probe(&ex, &op, why, sizeof(why));
	if (!ex || !op)
		cr_skip_test("no fanotify permission events here: %s", why);
	snprintf(dir, sizeof(dir), "/tmp/vigil-fanguard-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[300];

	if (dir[0] == '\0')
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(fanguard, .init = setup, .fini = teardown, .timeout = 60);

/* Deny "*deny*", kill "*kill*", think for 2 s about "*slow*", allow the rest. */
static enum fan_answer decide(struct fan_request *rq, void *ctx)
{
	uint32_t ppid;

	(void)ctx;
	if (strstr(rq->path, "slow") != NULL) {
		struct timespec ts = {2, 0};

		nanosleep(&ts, NULL);
		return FAN_ANSWER_DENY; /* too late: the watchdog has allowed it */
	}
	if (strstr(rq->path, "kill") != NULL && subject_ids(rq->tid, &rq->tgid, &ppid) == 0)
		return FAN_ANSWER_KILL;
	return strstr(rq->path, "deny") != NULL ? FAN_ANSWER_DENY : FAN_ANSWER_ALLOW;
}

static void on_fail_open(const struct fan_request *rq, void *ctx)
{
	(void)rq;
	(void)ctx;
	atomic_fetch_add(&fail_opens, 1);
}

static char *file(const char *name)
{
	static char paths[8][512];
	static int next;
	char *p = paths[next++ % 8];
	int fd;

	snprintf(p, 512, "%s/%s", dir, name);
	fd = open(p, O_CREAT | O_WRONLY, 0755);
	cr_assert_geq(fd, 0);
	close(fd);
	return p;
}

/* In a child (the guard never holds its own process): the errno of open, 0 when it opened. */
static int child_open(const char *path, int *ret_status)
{
	int st;
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open(path, O_RDONLY);

		_exit(fd >= 0 ? 0 : errno);
	}
	waitpid(pid, &st, 0);
	if (ret_status != NULL)
		*ret_status = st;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static struct fanguard *start(unsigned answer_ms, struct fanguard_mark *marks, size_t n)
{
	vigil_err err;
	char why[256];
	struct fanguard *g = fanguard_start(decide, on_fail_open, NULL, answer_ms, &err);

	cr_assert_not_null(g, "%s", err.msg);
	cr_assert_eq(fanguard_set_marks(g, marks, n, why, sizeof(why)), 0, "%s", why);
	return g;
}

Test(fanguard, a_held_open_is_refused_allowed_or_killed_as_decided)
{
	struct fanguard_mark m = {.kind = FG_MARK_CHILDREN, .open = true};
	char *deny = file("deny.txt"), *ok = file("ok.txt"), *kill_me = file("kill.txt");
	struct fanguard_stats st;
	struct fanguard *g;
	int status;

	snprintf(m.path, sizeof(m.path), "%s", dir);
	g = start(500, &m, 1);
	cr_assert_eq(child_open(deny, NULL), EPERM);
	cr_assert_eq(child_open(ok, NULL), 0);
	child_open(kill_me, &status);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "status %#x", status);
	/* Our own process is never held, even for a file the decision denies. */
	int fd = open(deny, O_RDONLY);
	cr_assert_geq(fd, 0, "the guard held its own process: %s", strerror(errno));
	close(fd);
	fanguard_stats(g, &st);
	cr_assert_geq(st.denied, 2);
	cr_assert_eq(st.killed, 1);
	cr_assert_geq(st.own, 1);
	fanguard_stop(g);
	/* Once stopped, the marks are gone with the fd: the host is as before. */
	cr_assert_eq(child_open(deny, NULL), 0);
}

Test(fanguard, a_held_exec_is_refused_before_the_program_runs)
{
	struct fanguard_mark m = {.kind = FG_MARK_FILE, .exec = true};
	char prog[512], cmd[1200];
	int st;
	pid_t pid;

	snprintf(prog, sizeof(prog), "%s/deny-true", dir);
	snprintf(cmd, sizeof(cmd), "cp /usr/bin/true %s", prog);
	cr_assert_eq(system(cmd), 0);
	snprintf(m.path, sizeof(m.path), "%s", prog);
	struct fanguard *g = start(500, &m, 1);
	if ((pid = fork()) == 0) {
		execl(prog, prog, NULL);
		_exit(errno == EPERM ? 100 : 101);
	}
	waitpid(pid, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 100, "status %#x", st);
	fanguard_stop(g);
}

Test(fanguard, a_decision_past_the_bound_is_allowed_counted_and_reported)
{
	struct fanguard_mark m = {.kind = FG_MARK_CHILDREN, .open = true};
	char *slow = file("slow.txt");
	struct fanguard_stats st;
	struct timespec t0, t1;
	struct fanguard *g;
	long ms;

	snprintf(m.path, sizeof(m.path), "%s", dir);
	g = start(200, &m, 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(child_open(slow, NULL), 0, "the late decision was not allowed");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	cr_assert_lt(ms, 1500, "the open waited %ld ms for a 200 ms bound", ms);
	/* Meanwhile the listener is still thinking: new requests are let through too. */
	cr_assert_eq(child_open(file("ok.txt"), NULL), 0);
	fanguard_stats(g, &st);
	cr_assert_geq(st.fail_open, 1);
	cr_assert_geq(atomic_load(&fail_opens), 1);
	fanguard_stop(g);
}

/*
 * The watchdog sleeps once no batch has come for a second; the next held
 * call must wake it, or a slow decision would hold the caller for as long as
 * the decision takes.
 */
Test(fanguard, a_late_decision_after_an_idle_spell_is_still_allowed_within_the_bound)
{
	struct fanguard_mark m = {.kind = FG_MARK_CHILDREN, .open = true};
	char *slow = file("slow.txt"), *ok = file("ok.txt");
	struct timespec t0, t1, idle = {1, 500 * 1000000L};
	struct fanguard *g;
	long ms;

	snprintf(m.path, sizeof(m.path), "%s", dir);
	g = start(200, &m, 1);
	cr_assert_eq(child_open(ok, NULL), 0);
	nanosleep(&idle, NULL); /* longer than the watchdog keeps ticking after a batch */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(child_open(slow, NULL), 0, "the late decision was not allowed");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	cr_assert_lt(ms, 1500, "the open waited %ld ms for a 200 ms bound", ms);
	fanguard_stop(g);
}
