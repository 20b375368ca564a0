/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Capture against the real kernel: each event kind is produced by a real
 * process this test forks, and found in the output of a real
 * `vigil-defender --events-json` with the right pid, paths, flags,
 * addresses and result.  Needs root (BPF); skips with the reason otherwise.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static char dir[H_PATH], out_path[H_PATH];
static pid_t defender;
static json_t *events; /* every line the defender printed, after stop_defender() */

static void setup(void)
{
	if (geteuid() != 0)
		cr_skip_test("capture needs root to load BPF programs");
	h_tmpdir(dir);
	snprintf(out_path, sizeof(out_path), "%s/events.jsonl", dir);
	events = json_array();
}

static void teardown(void)
{
	if (defender > 0)
		h_stop(defender, SIGKILL, 2000);
	json_decref(events);
	if (dir[0] && !getenv("VIGIL_KEEP_TEST_DIRS"))
		h_rmrf(dir);
}

TestSuite(capture, .init = setup, .fini = teardown, .timeout = 120);

/* Start the defender with extra args and wait for its ready line. */
static void start_defender(const char *const *extra)
{
	char *argv[16];
	int n = 0;
	long long until = h_now_ms() + 30000;

	argv[n++] = (char *)h_bin("vigil-defender");
	argv[n++] = "--events-json";
	for (int i = 0; extra && extra[i] && n < 14; i++)
		argv[n++] = (char *)extra[i];
	argv[n] = NULL;
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, 1);
		close(fd);
		execv(argv[0], argv);
		_exit(127);
	}
	defender = pid;
	while (h_now_ms() < until) {
		char *text = h_slurp(out_path);
		bool ready = strstr(text, "\"type\":\"ready\"") != NULL;
		free(text);
		if (ready)
			return;
		int st;
		cr_assert_not(h_exited(defender, &st), "defender exited (%d) before ready", st);
		h_sleep_ms(20);
	}
	cr_assert_fail("defender not ready in 30 s");
}

/* Stop the defender (it drains and prints stats) and load every line. */
static void stop_defender(void)
{
	h_sleep_ms(300); /* let the last events cross the ring */
	h_stop(defender, SIGTERM, 10000);
	defender = 0;
	FILE *f = fopen(out_path, "r");
	char *line = NULL;
	size_t cap = 0;
	cr_assert_not_null(f);
	while (getline(&line, &cap, f) > 0) {
		json_error_t jerr;
		json_t *ev = json_loads(line, 0, &jerr);
		cr_assert_not_null(ev, "invalid JSON line (%s): %s", jerr.text, line);
		json_array_append_new(events, ev);
	}
	free(line);
	fclose(f);
}

static const char *s_(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_string(v) ? json_string_value(v) : "";
}

static long long i_(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* First event of type (and op, when given) from pid; NULL when none. */
static json_t *find(const char *type, const char *op, pid_t pid, const char *path)
{
	size_t i;
	json_t *ev;

	json_array_foreach(events, i, ev)
	{
		if (strcmp(s_(ev, "type"), type) != 0 || i_(ev, "pid") != pid)
			continue;
		if (op && strcmp(s_(ev, "op"), op) != 0)
			continue;
		if (path && strcmp(s_(ev, "path"), path) != 0)
			continue;
		return ev;
	}
	return NULL;
}

/* Whether ev's "gaps" list names gap. */
static bool has_gap(json_t *ev, const char *gap)
{
	size_t i;
	json_t *g;

	json_array_foreach(json_object_get(ev, "gaps"), i,
			   g) if (!strcmp(json_string_value(g), gap)) return true;
	return false;
}

static json_t *stats(void)
{
	size_t i;
	json_t *ev, *last = NULL;

	json_array_foreach(events, i, ev) if (strcmp(s_(ev, "type"), "stats") == 0) last = ev;
	cr_assert_not_null(last, "no stats line");
	return last;
}

/* Run fn in a child process; returns its pid after it exited with 0. */
static pid_t in_child(void (*fn)(void *), void *arg)
{
	int st;
	pid_t pid = fork();

	cr_assert(pid >= 0);
	if (pid == 0) {
		fn(arg);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed: status %d", st);
	return pid;
}

/* ---- processes ---- */

static void do_exec_echo(void *arg)
{
	(void)arg;
	if (chdir(dir) != 0)
		_exit(3);
	execl("/bin/echo", "echo", "hello", "two words", (char *)NULL);
	_exit(4);
}

Test(capture, exec_has_path_argv_cwd_and_parent)
{
	start_defender(NULL);
	pid_t child = in_child(do_exec_echo, NULL);
	stop_defender();

	json_t *ev = find("exec", NULL, child, NULL);
	cr_assert_not_null(ev, "no exec event for pid %d", child);
	cr_expect_str_eq(s_(ev, "filename"), "/usr/bin/echo");
	cr_expect_eq(i_(ev, "ppid"), getpid());
	cr_expect_eq(i_(ev, "uid"), 0);
	cr_expect_str_eq(s_(ev, "cwd"), dir);
	json_t *argv = json_object_get(ev, "argv");
	cr_assert_eq(json_array_size(argv), 3);
	cr_expect_str_eq(json_string_value(json_array_get(argv, 2)), "two words");
	cr_expect_eq(i_(ev, "argc"), 3);
	cr_expect(json_is_false(json_object_get(ev, "exe_deleted")));

	json_t *fk = find("fork", NULL, getpid(), NULL);
	bool found = false;
	size_t i;
	json_array_foreach(events, i, fk) if (strcmp(s_(fk, "type"), "fork") == 0 &&
					      i_(fk, "child_pid") == child) found = true;
	cr_expect(found, "no fork event with child_pid %d", child);

	json_t *ex = find("exit", NULL, child, NULL);
	cr_assert_not_null(ex, "no exit event");
	cr_expect_eq(i_(ex, "exit_code"), 0);
}

/* Where the cgroup v2 hierarchy is mounted, in buf; false when it is not. */
static bool cgroup2_mount(char *buf, size_t cap)
{
	char src[256], mnt[4096], fs[64];
	bool found = false;
	FILE *f = fopen("/proc/self/mounts", "re");

	if (f == NULL)
		return false;
	while (!found && fscanf(f, "%255s %4095s %63s %*[^\n]", src, mnt, fs) == 3)
		if (strcmp(fs, "cgroup2") == 0 && (size_t)snprintf(buf, cap, "%s", mnt) < cap)
			found = true;
	fclose(f);
	return found;
}

struct as_other {
	char procs[H_PATH]; /* cgroup.procs of the cgroup to join */
};

static void do_exec_as_other_user_in_cgroup(void *arg)
{
	struct as_other *o = arg;
	int fd = open(o->procs, O_WRONLY);

	if (fd < 0 || write(fd, "0", 1) != 1 || setgid(2345) != 0 || setuid(1234) != 0)
		_exit(3);
	close(fd);
	execl("/bin/true", "true", (char *)NULL);
	_exit(4);
}

Test(capture, exec_has_the_processs_user_group_command_and_cgroup)
{
	char root[H_PATH], cg[H_PATH];
	struct as_other o;
	struct stat st;

	cr_assert(cgroup2_mount(root, sizeof(root)), "no cgroup v2 hierarchy mounted");
	snprintf(cg, sizeof(cg), "%s/vigil-test-%d", root, (int)getpid());
	cr_assert(mkdir(cg, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", cg, strerror(errno));
	cr_assert_eq(stat(cg, &st), 0);
	snprintf(o.procs, sizeof(o.procs), "%s/cgroup.procs", cg);

	start_defender(NULL);
	pid_t child = in_child(do_exec_as_other_user_in_cgroup, &o);
	stop_defender();
	rmdir(cg);

	json_t *ev = find("exec", NULL, child, NULL);
	cr_assert_not_null(ev, "no exec event for pid %d", child);
	cr_expect_eq(i_(ev, "uid"), 1234);
	cr_expect_eq(i_(ev, "euid"), 1234);
	cr_expect_eq(i_(ev, "gid"), 2345);
	cr_expect_str_eq(s_(ev, "comm"), "true");
	cr_expect_eq(i_(ev, "tid"), child);
	/* A cgroup v2 id is its directory's inode number. */
	cr_expect_eq((unsigned long long)i_(ev, "cgroup_id"), (unsigned long long)st.st_ino,
		     "cgroup_id %lld, want %llu", i_(ev, "cgroup_id"),
		     (unsigned long long)st.st_ino);
}

static void do_exit_7(void *arg)
{
	(void)arg;
	pid_t p = fork();
	if (p == 0)
		_exit(7);
	int st;
	waitpid(p, &st, 0);
	pid_t k = fork();
	if (k == 0) {
		pause();
		_exit(0);
	}
	kill(k, SIGKILL);
	waitpid(k, &st, 0);
	printf("%d %d\n", p, k);
	fflush(stdout);
}

Test(capture, exit_reports_code_and_signal)
{
	int fds[2];
	char buf[64] = {0};

	start_defender(NULL);
	cr_assert_eq(pipe(fds), 0);
	pid_t child = fork();
	if (child == 0) {
		dup2(fds[1], 1);
		do_exit_7(NULL);
		_exit(0);
	}
	close(fds[1]);
	cr_assert_gt(read(fds[0], buf, sizeof(buf) - 1), 0);
	waitpid(child, NULL, 0);
	stop_defender();
	int p = 0, k = 0;
	sscanf(buf, "%d %d", &p, &k);
	json_t *e7 = find("exit", NULL, p, NULL);
	cr_assert_not_null(e7);
	cr_expect_eq(i_(e7, "exit_code"), 7);
	json_t *e9 = find("exit", NULL, k, NULL);
	cr_assert_not_null(e9);
	cr_expect_eq(i_(e9, "signal"), 9);
}

static void do_exec_memfd_and_deleted(void *arg)
{
	(void)arg;
	char path[H_PATH];
	char buf[65536];
	int src = open("/bin/true", O_RDONLY);
	ssize_t n = read(src, buf, sizeof(buf));
	close(src);
	/* A deleted file: written, opened, unlinked, then executed through its fd. */
	snprintf(path, sizeof(path), "%s/gone", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0755);
	if (write(fd, buf, (size_t)n) != n)
		_exit(5);
	close(fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	unlink(path);
	pid_t p = fork();
	if (p == 0) {
		char *argv[] = {"gone", NULL}, *envp[] = {NULL};
		syscall(322 /* execveat */, fd, "", argv, envp, 0x1000 /* AT_EMPTY_PATH */);
		_exit(6);
	}
	int st;
	waitpid(p, &st, 0);
	/* A memfd: an executable that never touched a filesystem. */
	int mfd = memfd_create("payload", MFD_CLOEXEC);
	if (write(mfd, buf, (size_t)n) != n)
		_exit(7);
	p = fork();
	if (p == 0) {
		char *argv[] = {"payload", NULL}, *envp[] = {NULL};
		fexecve(mfd, argv, envp);
		_exit(8);
	}
	waitpid(p, &st, 0);
}

Test(capture, exec_of_deleted_file_and_memfd_is_recognisable)
{
	start_defender(NULL);
	pid_t child = in_child(do_exec_memfd_and_deleted, NULL);
	stop_defender();
	json_t *ev;
	size_t i;
	bool deleted = false, memfd = false;
	json_array_foreach(events, i, ev)
	{
		if (strcmp(s_(ev, "type"), "exec") != 0 || i_(ev, "ppid") != child)
			continue;
		if (json_is_true(json_object_get(ev, "exe_deleted")) &&
		    strstr(s_(ev, "filename"), "/gone") != NULL)
			deleted = true;
		if (json_is_true(json_object_get(ev, "exe_memfd")) &&
		    strstr(s_(ev, "filename"), "memfd:payload") != NULL)
			memfd = true;
	}
	cr_expect(deleted, "no exec of a deleted file flagged");
	cr_expect(memfd, "no memfd exec flagged");
}

static void do_exec_on_pty(void *arg)
{
	int master = -1, slave = -1;
	char name[64];
	(void)arg;
	if (openpty(&master, &slave, name, NULL, NULL) != 0)
		_exit(2);
	pid_t p = fork();
	if (p == 0) {
		setsid();
		ioctl(slave, TIOCSCTTY, 0);
		dup2(slave, 0);
		dup2(slave, 1);
		dup2(slave, 2);
		execl("/bin/true", "true", (char *)NULL);
		_exit(3);
	}
	int st;
	waitpid(p, &st, 0);
	/* Tell the parent which pts it was. */
	FILE *f = fopen(getenv("PTS_OUT"), "w");
	fprintf(f, "%s %d\n", name, p);
	fclose(f);
}

Test(capture, exec_under_a_terminal_has_its_tty_and_session)
{
	char info[H_PATH], name[64];
	int p = 0;

	snprintf(info, sizeof(info), "%s/pts", dir);
	setenv("PTS_OUT", info, 1);
	start_defender(NULL);
	in_child(do_exec_on_pty, NULL);
	stop_defender();
	char *text = h_slurp(info);
	cr_assert_eq(sscanf(text, "%63s %d", name, &p), 2);
	free(text);
	json_t *ev = find("exec", NULL, p, NULL);
	cr_assert_not_null(ev);
	/* /dev/pts/3 is the kernel's tty "pts3". */
	char want[64];
	snprintf(want, sizeof(want), "pts%s", name + strlen("/dev/pts/"));
	cr_expect_str_eq(s_(ev, "tty"), want);
	cr_expect_eq(i_(ev, "sid"), p, "a session leader's sid is its pid");
}

static void do_long_argv(void *arg)
{
	(void)arg;
	static char big[8192];
	memset(big, 'a', sizeof(big) - 1);
	execl("/bin/true", "true", big, (char *)NULL);
	_exit(2);
}

Test(capture, long_argv_is_marked_truncated)
{
	start_defender(NULL);
	pid_t child = in_child(do_long_argv, NULL);
	stop_defender();
	json_t *ev = find("exec", NULL, child, NULL);
	cr_assert_not_null(ev);
	json_t *tr = json_object_get(ev, "truncated");
	cr_assert(json_is_array(tr));
	cr_expect_str_eq(json_string_value(json_array_get(tr, 0)), "args");
	cr_expect_eq(i_(ev, "argc"), 2);
}

/* ---- files ---- */

static void do_files(void *arg)
{
	(void)arg;
	char p[H_PATH], q[H_PATH];
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);

	/* Relative to a directory fd, from another cwd. */
	if (chdir("/") != 0)
		_exit(2);
	int fd = openat(dfd, "rel.txt", O_WRONLY | O_CREAT | O_TRUNC, 0640);
	if (fd < 0 || write(fd, "x", 1) != 1)
		_exit(3);
	close(fd);
	snprintf(p, sizeof(p), "%s/rel.txt", dir);
	snprintf(q, sizeof(q), "%s/renamed.txt", dir);
	rename(p, q);
	chmod(q, 04755);
	if (chown(q, 1, 2) != 0)
		_exit(4);
	snprintf(p, sizeof(p), "%s/hard", dir);
	link(q, p);
	snprintf(p, sizeof(p), "%s/soft", dir);
	if (symlink("renamed.txt", p) != 0)
		_exit(5);
	snprintf(p, sizeof(p), "%s/d", dir);
	mkdir(p, 0700);
	if (truncate(q, 100) != 0)
		_exit(6);
	/* Relative to the cwd. */
	if (chdir(dir) != 0)
		_exit(7);
	unlink("hard");
	/* A name that is not UTF-8. */
	fd = open("\xff\xfe-bad", O_WRONLY | O_CREAT, 0600);
	close(fd);
	unlink("\xff\xfe-bad");
}

Test(capture, file_operations_have_absolute_paths_flags_and_results)
{
	char p[H_PATH], q[H_PATH];

	start_defender(NULL);
	pid_t c = in_child(do_files, NULL);
	stop_defender();
	snprintf(p, sizeof(p), "%s/rel.txt", dir);
	snprintf(q, sizeof(q), "%s/renamed.txt", dir);

	json_t *ev = find("file", "open", c, p);
	cr_assert_not_null(ev, "relative openat through a dirfd not reported as %s", p);
	cr_expect(json_is_true(json_object_get(ev, "write")));
	cr_expect_str_eq(s_(ev, "mode"), "0640");
	cr_expect_geq(i_(ev, "result"), 0);
	json_t *fl = json_object_get(ev, "flags");
	cr_expect_str_eq(json_string_value(json_array_get(fl, 0)), "O_WRONLY");

	ev = find("file", "rename", c, p);
	cr_assert_not_null(ev, "no rename");
	cr_expect_str_eq(s_(ev, "path2"), q);
	cr_expect_eq(i_(ev, "result"), 0);

	ev = find("file", "chmod", c, q);
	cr_assert_not_null(ev, "no chmod");
	cr_expect(json_is_true(json_object_get(ev, "setuid")), "setuid chmod not visible");
	cr_expect_str_eq(s_(ev, "mode"), "04755");

	ev = find("file", "chown", c, q);
	cr_assert_not_null(ev, "no chown");
	cr_expect_eq(i_(ev, "owner_uid"), 1);
	cr_expect_eq(i_(ev, "owner_gid"), 2);

	snprintf(p, sizeof(p), "%s/hard", dir);
	ev = find("file", "link", c, q);
	cr_assert_not_null(ev, "no link");
	cr_expect_str_eq(s_(ev, "path2"), p);

	snprintf(p, sizeof(p), "%s/soft", dir);
	ev = find("file", "symlink", c, p);
	cr_assert_not_null(ev, "no symlink");
	cr_expect_str_eq(s_(ev, "target"), "renamed.txt");

	snprintf(p, sizeof(p), "%s/d", dir);
	ev = find("file", "mkdir", c, p);
	cr_assert_not_null(ev, "no mkdir");
	cr_expect_str_eq(s_(ev, "mode"), "0700");

	ev = find("file", "truncate", c, q);
	cr_assert_not_null(ev, "no truncate");
	cr_expect_eq(i_(ev, "length"), 100);

	snprintf(p, sizeof(p), "%s/hard", dir);
	ev = find("file", "unlink", c, p);
	cr_assert_not_null(ev, "relative unlink not made absolute");
	cr_expect_str_eq(s_(ev, "path_as_given"), "hard");

	snprintf(p, sizeof(p), "%s/\\xff\\xfe-bad", dir);
	ev = find("file", "open", c, p);
	cr_assert_not_null(ev, "non-UTF-8 name not reported as %s", p);
	cr_expect(json_is_true(json_object_get(ev, "non_utf8")));

	/* Nobody rewrote anything: every path was copied as the call entered. */
	size_t i;
	json_array_foreach(events, i, ev)
	{
		if (i_(ev, "pid") != c || strcmp(s_(ev, "type"), "file") != 0)
			continue;
		cr_expect_null(json_object_get(ev, "rewritten_during_call"),
			       "%s %s marked rewritten", s_(ev, "op"), s_(ev, "path"));
		cr_expect(!has_gap(ev, "path_read_after_call"), "%s %s read after the call",
			  s_(ev, "op"), s_(ev, "path"));
	}
}

/* ---- arguments another thread rewrites while the call runs ---- */

/*
 * The attack: the kernel copies a path when the call starts; a second thread
 * then rewrites the buffer, so that whoever reads it after the call reports
 * a name the call never used.  Each test holds the call inside the kernel
 * after its copy (a FIFO with no reader, a full listen backlog, a page the
 * kernel must fault in) so that the rewrite lands there every time.
 */

/* Whether thread tid of this process sleeps inside syscall nr. */
static bool blocked_in(pid_t tid, long nr)
{
	char p[64], buf[64] = "";
	int fd;
	ssize_t n;

	snprintf(p, sizeof(p), "/proc/self/task/%d/syscall", (int)tid);
	if ((fd = open(p, O_RDONLY)) < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 && strtol(buf, NULL, 10) == nr;
}

struct rewrite {
	char *buf;	      /* what the call was given */
	const char *decoy;    /* what the other thread writes there */
	pid_t tid;	      /* the thread in the call */
	long nr;	      /* its syscall */
	int wake_fd;	      /* a listener to accept from, to let the call go on; -1: signal it */
	int uffd;	      /* or: a userfaultfd whose fault holds the call */
	size_t decoy_offset;  /* where in buf the decoy goes */
	const char *chdir_to; /* instead of rewriting buf: move the cwd here */
};

static void on_usr1(int sig)
{
	(void)sig;
}

/* The second thread: wait until the call is held, rewrite, let it go on. */
static void *rewriter(void *arg)
{
	struct rewrite *r = arg;

	while (!blocked_in(r->tid, r->nr))
		usleep(1000);
	if (r->chdir_to != NULL) {
		if (chdir(r->chdir_to) != 0)
			_exit(21);
	} else {
		strcpy(r->buf + r->decoy_offset, r->decoy);
	}
	if (r->wake_fd >= 0)
		close(accept(r->wake_fd, NULL, NULL));
	else
		syscall(SYS_tgkill, getpid(), r->tid, SIGUSR1);
	return NULL;
}

static void run_rewritten(struct rewrite *r, long (*call)(void *), void *arg, long *rc)
{
	pthread_t t;

	r->tid = (pid_t)syscall(SYS_gettid);
	if (pthread_create(&t, NULL, rewriter, r) != 0)
		_exit(20);
	*rc = call(arg);
	pthread_join(t, NULL);
}

static long openat_wronly(void *path)
{
	return syscall(SYS_openat, AT_FDCWD, path, O_WRONLY);
}

/* An open for writing, held by a FIFO with no reader, then cut short by a signal: it fails. */
static void do_open_rewritten(void *arg)
{
	struct sigaction sa = {.sa_handler = on_usr1}; /* no SA_RESTART: the open fails */
	struct rewrite r = {.decoy = arg, .nr = SYS_openat, .wake_fd = -1};
	long rc;

	r.buf = malloc(H_PATH);
	snprintf(r.buf, H_PATH, "%s/fifo0", dir);
	if (sigaction(SIGUSR1, &sa, NULL) != 0 || mkfifo(r.buf, 0600) != 0)
		_exit(2);
	run_rewritten(&r, openat_wronly, r.buf, &rc);
	if (rc != -1 || errno != EINTR)
		_exit(3);
}

Test(capture, a_failed_open_reports_the_path_the_call_was_given)
{
	char real[H_PATH], decoy[H_PATH];

	snprintf(real, sizeof(real), "%s/fifo0", dir);
	snprintf(decoy, sizeof(decoy), "%s/decoy", dir);
	start_defender(NULL);
	pid_t c = in_child(do_open_rewritten, decoy);
	stop_defender();
	cr_expect_null(find("file", "open", c, decoy), "the rewritten name was reported");
	json_t *ev = find("file", "open", c, real);
	cr_assert_not_null(ev, "the failed open of %s was not reported as such", real);
	cr_expect_lt(i_(ev, "result"), 0);
	cr_expect(json_is_true(json_object_get(ev, "rewritten_during_call")),
		  "the rewrite is not marked");
}

/* The same held open, by a relative name; the other thread moves the cwd instead. */
static void do_open_cwd_moved(void *arg)
{
	struct sigaction sa = {.sa_handler = on_usr1};
	struct rewrite r = {.nr = SYS_openat, .wake_fd = -1, .chdir_to = arg};
	long rc;

	r.buf = malloc(H_PATH);
	snprintf(r.buf, H_PATH, "fifo1");
	if (sigaction(SIGUSR1, &sa, NULL) != 0 || chdir(dir) != 0 || mkfifo(r.buf, 0600) != 0)
		_exit(2);
	run_rewritten(&r, openat_wronly, r.buf, &rc);
	if (rc != -1 || errno != EINTR)
		_exit(3);
}

Test(capture, a_cwd_moved_during_a_call_is_marked_not_misreported)
{
	char other[H_PATH], wrong[H_PATH];
	size_t i;
	json_t *ev, *open_ev = NULL;

	snprintf(other, sizeof(other), "%s/elsewhere", dir);
	snprintf(wrong, sizeof(wrong), "%s/fifo1", other);
	cr_assert_eq(mkdir(other, 0700), 0);
	start_defender(NULL);
	pid_t c = in_child(do_open_cwd_moved, other);
	stop_defender();
	cr_expect_null(find("file", "open", c, wrong), "reported relative to the new cwd");
	json_array_foreach(events, i, ev) if (i_(ev, "pid") == c && !strcmp(s_(ev, "op"), "open") &&
					      !strcmp(s_(ev, "path_as_given"), "fifo1")) open_ev =
	    ev;
	if (open_ev == NULL)
		json_array_foreach(events, i,
				   ev) if (i_(ev, "pid") == c && !strcmp(s_(ev, "op"), "open") &&
					   !strcmp(s_(ev, "path"), "fifo1")) open_ev = ev;
	cr_assert_not_null(open_ev, "the held open of fifo1 was not reported");
	cr_expect(json_is_true(json_object_get(open_ev, "rewritten_during_call")),
		  "the moved cwd is not marked");
	cr_expect(has_gap(open_ev, "directory_unresolved"), "the directory is not left out");
}

/* With copy_open_args off, the same failed open is read at exit, and says so. */
Test(capture, without_the_open_copy_a_failed_opens_late_read_is_marked)
{
	char real[H_PATH], decoy[H_PATH];
	size_t i;
	json_t *ev, *open_ev = NULL;

	snprintf(real, sizeof(real), "%s/fifo0", dir);
	snprintf(decoy, sizeof(decoy), "%s/decoy", dir);
	start_defender((const char *const[]){"--no-open-copy", NULL});
	pid_t c = in_child(do_open_rewritten, decoy);
	stop_defender();
	json_array_foreach(events, i, ev) if (i_(ev, "pid") == c && !strcmp(s_(ev, "op"), "open") &&
					      i_(ev, "result") < 0) open_ev = ev;
	cr_assert_not_null(open_ev, "the failed open was not reported");
	cr_expect(has_gap(open_ev, "path_read_after_call"),
		  "%s reported without the late-read mark", s_(open_ev, "path"));
}

static long connect_unix(void *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	return connect(fd, sa, sizeof(struct sockaddr_un));
}

/* A connect held by a full backlog (listen(0), one connection queued): it succeeds later. */
static void do_connect_rewritten(void *arg)
{
	struct sockaddr_un *sa = calloc(1, sizeof(*sa));
	struct rewrite r = {.decoy = arg, .nr = SYS_connect};
	int l = socket(AF_UNIX, SOCK_STREAM, 0), first = socket(AF_UNIX, SOCK_STREAM, 0);
	long rc;

	sa->sun_family = AF_UNIX;
	snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/sock0", dir);
	if (bind(l, (struct sockaddr *)sa, sizeof(*sa)) != 0 || listen(l, 0) != 0 ||
	    connect(first, (struct sockaddr *)sa, sizeof(*sa)) != 0)
		_exit(2);
	r.buf = (char *)sa;
	r.decoy_offset = offsetof(struct sockaddr_un, sun_path);
	r.wake_fd = l;
	run_rewritten(&r, connect_unix, sa, &rc);
	if (rc != 0)
		_exit(3);
}

Test(capture, a_unix_connect_reports_the_address_the_call_was_given)
{
	char real[H_PATH], decoy[H_PATH];
	size_t i;
	json_t *ev, *conn = NULL;

	snprintf(real, sizeof(real), "%s/sock0", dir);
	snprintf(decoy, sizeof(decoy), "%s/sockX", dir);
	start_defender(NULL);
	pid_t c = in_child(do_connect_rewritten, decoy);
	stop_defender();
	/* The second connect: the one the rewrite raced. */
	json_array_foreach(events, i, ev) if (i_(ev, "pid") == c &&
					      !strcmp(s_(ev, "type"), "net") &&
					      !strcmp(s_(ev, "op"), "connect")) conn = ev;
	cr_assert_not_null(conn, "no connect");
	cr_expect_str_eq(s_(conn, "unix_path"), real);
	cr_expect(json_is_true(json_object_get(conn, "rewritten_during_call")),
		  "the rewrite is not marked");
}

/*
 * Pages the kernel must fault in through a userfaultfd: a call that copies a
 * name from one waits, inside the kernel, until the pager thread fills it.
 */
struct pager {
	int uffd;
	char *base;
	long psz;
	int npages;
	const char *names[2]; /* what each page is filled with */
	int order[2];	      /* the pages in the order the kernel asked for them */
	char *rewrite;	      /* rewritten with decoy before the first page is filled */
	const char *decoy;
};

static int uffd_open(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	struct uffdio_api api = {.api = UFFD_API};

	if (fd >= 0 && ioctl(fd, UFFDIO_API, &api) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void pager_map(struct pager *p, int npages)
{
	p->psz = sysconf(_SC_PAGESIZE);
	p->npages = npages;
	p->uffd = uffd_open();
	p->base = mmap(NULL, (size_t)(p->psz * npages), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct uffdio_register reg = {
	    .range = {.start = (unsigned long)p->base, .len = (unsigned long)(p->psz * npages)},
	    .mode = UFFDIO_REGISTER_MODE_MISSING};
	if (p->base == MAP_FAILED || p->uffd < 0 || ioctl(p->uffd, UFFDIO_REGISTER, &reg) != 0)
		_exit(40);
}

static void *pager_run(void *arg)
{
	struct pager *p = arg;
	char *src = aligned_alloc((size_t)p->psz, (size_t)p->psz);

	for (int k = 0; k < p->npages; k++) {
		struct uffd_msg msg;

		if (read(p->uffd, &msg, sizeof(msg)) != sizeof(msg) ||
		    msg.event != UFFD_EVENT_PAGEFAULT)
			_exit(41);
		int idx = (int)((char *)(uintptr_t)msg.arg.pagefault.address - p->base) / p->psz;
		p->order[k] = idx;
		/* The kernel has copied whatever it copies before this page: rewrite it now. */
		if (k == 0 && p->rewrite != NULL)
			strcpy(p->rewrite, p->decoy);
		memset(src, 0, (size_t)p->psz);
		snprintf(src, (size_t)p->psz, "%s", p->names[idx]);
		struct uffdio_copy cp = {.dst = (unsigned long)(p->base + idx * p->psz),
					 .src = (unsigned long)src,
					 .len = (unsigned long)p->psz};
		if (ioctl(p->uffd, UFFDIO_COPY, &cp) != 0)
			_exit(42);
	}
	free(src);
	return NULL;
}

static int paged_rename(struct pager *p, const char *old, const char *new)
{
	pthread_t t;
	int rc;

	if (pthread_create(&t, NULL, pager_run, p) != 0)
		_exit(43);
	rc = rename(old, new);
	pthread_join(t, NULL);
	return rc;
}

/*
 * rename copies its two names in an order the compiler chose (they are the
 * arguments of one call).  Learn it with both names paged, then page only
 * the second one: the kernel has copied the first, which is in ordinary
 * memory (so its entry copy was made), when it waits for the second; the
 * pager rewrites the first just then.  arg: the directory's decoy name.
 */
static void do_rename_rewritten(void *arg)
{
	struct pager probe = {0}, held = {0};
	char *old = malloc(H_PATH), *new = malloc(H_PATH), *pa = malloc(H_PATH),
	     *pb = malloc(H_PATH);

	snprintf(pa, H_PATH, "%s/probeA", dir);
	snprintf(pb, H_PATH, "%s/probeB", dir);
	close(open(pa, O_WRONLY | O_CREAT, 0600));
	pager_map(&probe, 2);
	probe.names[0] = pa;
	probe.names[1] = pb;
	if (paged_rename(&probe, probe.base, probe.base + probe.psz) != 0)
		_exit(2);
	bool old_first = probe.order[0] == 0;

	snprintf(old, H_PATH, "%s/real0", dir);
	snprintf(new, H_PATH, "%s/moved", dir);
	close(open(old, O_WRONLY | O_CREAT, 0600));
	pager_map(&held, 1);
	held.names[0] = old_first ? new : old;
	held.rewrite = old_first ? old : new;
	held.decoy = arg;
	if (paged_rename(&held, old_first ? old : held.base, old_first ? held.base : new) != 0)
		_exit(3);
}

Test(capture, a_rename_reports_the_names_the_call_was_given)
{
	char real[H_PATH], decoy[H_PATH], moved[H_PATH];
	int probe = uffd_open();

	if (probe < 0)
		H_SKIP(teardown, "userfaultfd is not available here (%s): the call cannot be held",
		       strerror(errno));
	close(probe);
	snprintf(real, sizeof(real), "%s/real0", dir);
	snprintf(decoy, sizeof(decoy), "%s/decoy", dir);
	snprintf(moved, sizeof(moved), "%s/moved", dir);
	start_defender(NULL);
	pid_t c = in_child(do_rename_rewritten, decoy);
	stop_defender();
	cr_assert(access(moved, F_OK) == 0, "the rename did not happen");
	cr_expect_null(find("file", "rename", c, decoy), "the rewritten name was reported");
	json_t *ev = find("file", "rename", c, real);
	cr_assert_not_null(ev, "the rename of %s was not reported as such", real);
	cr_expect_str_eq(s_(ev, "path2"), moved);
	cr_expect(json_is_true(json_object_get(ev, "rewritten_during_call")),
		  "the rewrite is not marked");
	/* The paged name was not in memory when the call entered: read after it, and said so. */
	cr_expect(has_gap(ev, "path_read_after_call"), "the late read is not marked");
}

/* How many file events of pid name path. */
static size_t file_events(pid_t pid, const char *path)
{
	size_t i, n = 0;
	json_t *ev;

	json_array_foreach(events, i, ev) if (strcmp(s_(ev, "type"), "file") == 0 &&
					      i_(ev, "pid") == pid &&
					      strcmp(s_(ev, "path"), path) == 0) n++;
	return n;
}

static void do_reads(void *arg)
{
	(void)arg;
	for (int i = 0; i < 50; i++)
		close(open("/etc/hostname", O_RDONLY));
	close(open("/nonexistent/file", O_RDONLY));
}

Test(capture, repeated_reads_are_reported_once_and_counted)
{
	start_defender(NULL);
	pid_t c = in_child(do_reads, NULL);
	stop_defender();
	size_t n = file_events(c, "/etc/hostname");
	cr_expect_eq(n, 1, "read-only open of one file reported %zu times", n);
	json_t *f = json_object_get(stats(), "filtered");
	cr_expect_geq(json_integer_value(json_object_get(f, "read_repeat")), 49);
	cr_expect_geq(json_integer_value(json_object_get(f, "read_failed")), 1);
}

static void do_reads_then_exec(void *arg)
{
	(void)arg;
	for (int i = 0; i < 3; i++)
		close(open("/etc/hostname", O_RDONLY));
	int null = open("/dev/null", O_WRONLY);
	if (null < 0 || dup2(null, 1) < 0)
		_exit(1);
	execl("/bin/cat", "cat", "/etc/hostname", (char *)NULL);
	_exit(1);
}

/* A process that execs another program is judged as that program: its reads count afresh. */
Test(capture, a_read_after_exec_is_reported_again)
{
	start_defender(NULL);
	pid_t c = in_child(do_reads_then_exec, NULL);
	stop_defender();
	size_t n = file_events(c, "/etc/hostname");
	cr_expect_eq(n, 2, "reads before and after exec reported %zu times, want once each", n);
}

/* ---- network ---- */

struct net_result {
	int port4, port6, cport4, cport6;
};

/*
 * ia32 syscalls by int 0x80 from this 64-bit process, as a 32-bit program
 * makes them: other numbers, arguments in ebx/ecx/edx, pointers below 4 GiB.
 */
static long int80(long nr, long b, long c, long d)
{
	long ret;

	__asm__ volatile("int $0x80"
			 : "=a"(ret)
			 : "a"(nr), "b"(b), "c"(c), "d"(d)
			 : "memory", "r8", "r9", "r10", "r11");
	return ret;
}

#define I386_OPEN	5
#define I386_UNLINK	10
#define I386_CHMOD	15
#define I386_SOCKETCALL 102

static void do_ia32(void *arg)
{
	const char *d = arg;
	char *low = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
	if (low == MAP_FAILED)
		_exit(2);
	char *path = low;
	snprintf(path, 512, "%s/ia32.txt", d);
	long fd = int80(I386_OPEN, (long)path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		_exit(3);
	close((int)fd);
	snprintf(path + 512, 512, "%s/native.txt", d);
	int nfd = open(path + 512, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (nfd < 0)
		_exit(7);
	close(nfd);
	if (int80(I386_CHMOD, (long)path, 04755, 0) != 0 ||
	    int80(I386_UNLINK, (long)path, 0, 0) != 0)
		_exit(4);
	/* socket() and connect() through socketcall, the way i386 programs reach them. */
	uint32_t *args = (uint32_t *)(low + 1024);
	struct sockaddr_in *sa = (struct sockaddr_in *)(low + 2048);
	args[0] = AF_INET;
	args[1] = SOCK_STREAM;
	args[2] = 0;
	long s = int80(I386_SOCKETCALL, 1 /* SYS_SOCKET */, (long)args, 0);
	if (s < 0)
		_exit(5);
	*sa = (struct sockaddr_in){.sin_family = AF_INET,
				   .sin_port = htons(9), /* discard: nothing listens here */
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	args[0] = (uint32_t)s;
	args[1] = (uint32_t)(unsigned long)sa;
	args[2] = sizeof(*sa);
	if (int80(I386_SOCKETCALL, 3 /* SYS_CONNECT */, (long)args, 0) != -ECONNREFUSED)
		_exit(6);
}

/*
 * Whether this kernel takes int 0x80 from a 64-bit process: a kernel built
 * without CONFIG_IA32_EMULATION, or booted with ia32_emulation=0, answers it
 * with a general protection fault (SIGSEGV).  Tried in a child, which the
 * fault may kill.  NULL when it works, else why not.
 */
static const char *ia32_unavailable(void)
{
	int status;
	pid_t pid = fork();

	if (pid == 0)
		_exit(int80(20 /* i386 getpid */, 0, 0, 0) == (long)getpid() ? 0 : 1);
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return "cannot fork to probe int 0x80";
	if (WIFSIGNALED(status))
		return "int 0x80 faults here (no IA32 emulation in this kernel, or "
		       "ia32_emulation=0)";
	if (WEXITSTATUS(status) != 0)
		return "int 0x80 getpid did not return the pid";
	return NULL;
}

Test(capture, ia32_syscalls_are_decoded_not_missed)
{
	const char *why = ia32_unavailable();
	char p[H_PATH];

	if (why != NULL)
		H_SKIP(teardown, "%s", why);
	start_defender(NULL);
	pid_t c = in_child(do_ia32, dir);
	stop_defender();
	snprintf(p, sizeof(p), "%s/ia32.txt", dir);

	json_t *ev = find("file", "open", c, p);
	cr_assert_not_null(ev, "an int 0x80 open of %s was not reported", p);
	cr_expect_str_eq(s_(ev, "syscall_abi"), "ia32");
	cr_expect(json_is_true(json_object_get(ev, "write")));
	cr_expect_str_eq(s_(ev, "mode"), "0600");
	cr_expect_geq(i_(ev, "result"), 0);
	ev = find("file", "chmod", c, p);
	cr_assert_not_null(ev, "no ia32 chmod");
	cr_expect(json_is_true(json_object_get(ev, "setuid")));
	cr_expect_str_eq(s_(ev, "syscall_abi"), "ia32");
	ev = find("file", "unlink", c, p);
	cr_assert_not_null(ev, "no ia32 unlink");
	cr_expect_eq(i_(ev, "result"), 0);
	ev = find("net", "connect", c, NULL);
	cr_assert_not_null(ev, "no connect through socketcall");
	cr_expect_str_eq(s_(ev, "syscall_abi"), "ia32");
	cr_expect_eq(i_(ev, "result"), -ECONNREFUSED);
	cr_expect_eq(i_(json_object_get(ev, "remote"), "port"), 9);
	cr_expect_str_eq(s_(json_object_get(ev, "remote"), "addr"), "127.0.0.1");
	/* The same call from the native ABI carries no syscall_abi. */
	snprintf(p, sizeof(p), "%s/native.txt", dir);
	ev = find("file", "open", c, p);
	cr_assert_not_null(ev, "no native open");
	cr_expect_null(json_object_get(ev, "syscall_abi"));
}

/*
 * The x32 ABI: a 64-bit process's syscall with __X32_SYSCALL_BIT set in its
 * number.  Kernels built with CONFIG_X86_X32_ABI run it (Debian's with
 * syscall.x32=y); others answer ENOSYS.  Either way the call was made, and
 * the defender must report it, with what the kernel answered: numbers with
 * the bit were once taken for syscalls nobody watches, which made x32 a way
 * round capture wherever the kernel runs it.
 */
#define X32_SYSCALL_BIT 0x40000000L

static void do_x32(void *arg)
{
	const char *d = arg;
	char *low = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
	char res[H_PATH];
	long fd, rc;
	FILE *f;

	if (low == MAP_FAILED)
		_exit(2);
	/* In the low 4 GiB: the pointers of a real x32 program. */
	struct sockaddr_in *sa = (struct sockaddr_in *)(low + 2048);
	snprintf(low, 1024, "%s/x32.txt", d);
	fd = syscall(X32_SYSCALL_BIT | SYS_openat, AT_FDCWD, low, O_WRONLY | O_CREAT | O_TRUNC,
		     0600);
	fd = fd < 0 ? -errno : fd;
	int s = socket(AF_INET, SOCK_STREAM, 0);
	*sa = (struct sockaddr_in){.sin_family = AF_INET,
				   .sin_port = htons(9), /* discard: nothing listens here */
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	rc = syscall(X32_SYSCALL_BIT | SYS_connect, s, sa, sizeof(*sa));
	rc = rc < 0 ? -errno : rc;
	snprintf(res, sizeof(res), "%s/x32.results", d);
	if ((f = fopen(res, "w")) == NULL || fprintf(f, "%ld %ld\n", fd, rc) < 0 || fclose(f) != 0)
		_exit(3);
}

Test(capture, x32_syscalls_are_decoded_not_missed)
{
	char p[H_PATH], *results;
	long open_rc = 0, connect_rc = 0;
	json_t *ev;

	start_defender(NULL);
	pid_t c = in_child(do_x32, dir);
	stop_defender();
	snprintf(p, sizeof(p), "%s/x32.results", dir);
	results = h_slurp(p);
	cr_assert(results != NULL && sscanf(results, "%ld %ld", &open_rc, &connect_rc) == 2);
	free(results);
	snprintf(p, sizeof(p), "%s/x32.txt", dir);

	ev = find("file", "open", c, p);
	cr_assert_not_null(ev, "an x32 openat of %s (answered %ld) was not reported", p, open_rc);
	cr_expect_str_eq(s_(ev, "syscall_abi"), "x32");
	cr_expect_eq(i_(ev, "result"), open_rc);
	cr_expect(json_is_true(json_object_get(ev, "write")));
	ev = find("net", "connect", c, NULL);
	cr_assert_not_null(ev, "an x32 connect (answered %ld) was not reported", connect_rc);
	cr_expect_str_eq(s_(ev, "syscall_abi"), "x32");
	cr_expect_eq(i_(ev, "result"), connect_rc);
	cr_expect_eq(i_(json_object_get(ev, "remote"), "port"), 9);
}

static void do_net(void *arg)
{
	(void)arg;
	struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	socklen_t l;
	int s4 = socket(AF_INET, SOCK_STREAM, 0), s6 = socket(AF_INET6, SOCK_STREAM, 0);
	if (bind(s4, (void *)&a4, sizeof(a4)) || listen(s4, 4) ||
	    bind(s6, (void *)&a6, sizeof(a6)) || listen(s6, 4))
		_exit(2);
	l = sizeof(a4);
	getsockname(s4, (void *)&a4, &l);
	l = sizeof(a6);
	getsockname(s6, (void *)&a6, &l);
	int c4 = socket(AF_INET, SOCK_STREAM, 0), c6 = socket(AF_INET6, SOCK_STREAM, 0);
	if (connect(c4, (void *)&a4, sizeof(a4)) || connect(c6, (void *)&a6, sizeof(a6)))
		_exit(3);
	int x4 = accept(s4, NULL, NULL), x6 = accept(s6, NULL, NULL);
	if (x4 < 0 || x6 < 0)
		_exit(4);
	struct sockaddr_in cl4;
	struct sockaddr_in6 cl6;
	l = sizeof(cl4);
	getsockname(c4, (void *)&cl4, &l);
	l = sizeof(cl6);
	getsockname(c6, (void *)&cl6, &l);
	/* UDP connect, and a Unix socket by path. */
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in ud = {
	    .sin_family = AF_INET, .sin_port = htons(9), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (connect(u, (void *)&ud, sizeof(ud)))
		_exit(5);
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	snprintf(un.sun_path, sizeof(un.sun_path), "%s/sock", dir);
	int us = socket(AF_UNIX, SOCK_STREAM, 0);
	if (bind(us, (void *)&un, sizeof(un)) || listen(us, 1))
		_exit(6);
	int uc = socket(AF_UNIX, SOCK_STREAM, 0);
	if (connect(uc, (void *)&un, sizeof(un)))
		_exit(7);
	/* An abstract name, with the exact length the kernel is given. */
	struct sockaddr_un ab = {.sun_family = AF_UNIX};
	int alen =
	    snprintf(ab.sun_path + 1, sizeof(ab.sun_path) - 1, "vigil-test-%d", (int)getpid());
	socklen_t ablen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + alen);
	int as = socket(AF_UNIX, SOCK_STREAM, 0), ac = socket(AF_UNIX, SOCK_STREAM, 0);
	if (bind(as, (void *)&ab, ablen) || listen(as, 1) || connect(ac, (void *)&ab, ablen))
		_exit(8);
	FILE *f = fopen(getenv("NET_OUT"), "w");
	fprintf(f, "%d %d %d %d\n", ntohs(a4.sin_port), ntohs(a6.sin6_port), ntohs(cl4.sin_port),
		ntohs(cl6.sin6_port));
	fclose(f);
}

static json_t *ep(json_t *ev, const char *which)
{
	return json_object_get(ev, which);
}

Test(capture, ipv4_ipv6_udp_and_unix_socket_operations)
{
	char info[H_PATH], upath[H_PATH];
	int p4, p6, c4, c6;

	/* A host (or container) without IPv6 loopback cannot run the IPv6 half: say so. */
	struct sockaddr_in6 probe = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	int ps = socket(AF_INET6, SOCK_STREAM, 0);
	if (ps < 0 || bind(ps, (void *)&probe, sizeof(probe)) < 0) {
		int e = errno;
		if (ps >= 0)
			close(ps);
		H_SKIP(teardown,
		       "no IPv6 loopback on this host (%s): the IPv6 connect and accept"
		       " cannot be made",
		       strerror(e));
	}
	close(ps);
	snprintf(info, sizeof(info), "%s/net", dir);
	setenv("NET_OUT", info, 1);
	start_defender(NULL);
	pid_t c = in_child(do_net, NULL);
	stop_defender();
	char *text = h_slurp(info);
	cr_assert_eq(sscanf(text, "%d %d %d %d", &p4, &p6, &c4, &c6), 4);
	free(text);

	size_t i;
	json_t *ev, *conn4 = NULL, *conn6 = NULL, *acc4 = NULL, *acc6 = NULL, *lis4 = NULL,
		    *udp = NULL, *ubind = NULL, *uconn = NULL, *abind = NULL, *aconn = NULL;
	json_array_foreach(events, i, ev)
	{
		if (strcmp(s_(ev, "type"), "net") != 0 || i_(ev, "pid") != c)
			continue;
		const char *op = s_(ev, "op"), *fam = s_(ev, "family"), *proto = s_(ev, "proto");
		if (!strcmp(op, "connect") && !strcmp(fam, "inet") && !strcmp(proto, "tcp"))
			conn4 = ev;
		if (!strcmp(op, "connect") && !strcmp(fam, "inet6"))
			conn6 = ev;
		if (!strcmp(op, "accept") && !strcmp(fam, "inet"))
			acc4 = ev;
		if (!strcmp(op, "accept") && !strcmp(fam, "inet6"))
			acc6 = ev;
		if (!strcmp(op, "listen") && !strcmp(fam, "inet"))
			lis4 = ev;
		if (!strcmp(op, "connect") && !strcmp(proto, "udp"))
			udp = ev;
		bool abstract = s_(ev, "unix_path")[0] == '@';
		if (!strcmp(op, "bind") && !strcmp(fam, "unix"))
			*(abstract ? &abind : &ubind) = ev;
		if (!strcmp(op, "connect") && !strcmp(fam, "unix"))
			*(abstract ? &aconn : &uconn) = ev;
	}
	cr_assert_not_null(conn4, "no IPv4 connect");
	cr_expect_str_eq(s_(ep(conn4, "remote"), "addr"), "127.0.0.1");
	cr_expect_eq(i_(ep(conn4, "remote"), "port"), p4);
	cr_expect_eq(i_(conn4, "result"), 0);
	cr_assert_not_null(conn6, "no IPv6 connect");
	cr_expect_str_eq(s_(ep(conn6, "remote"), "addr"), "::1");
	cr_expect_eq(i_(ep(conn6, "remote"), "port"), p6);
	cr_assert_not_null(acc4, "no IPv4 accept");
	cr_expect_eq(i_(ep(acc4, "local"), "port"), p4);
	cr_expect_eq(i_(ep(acc4, "remote"), "port"), c4);
	cr_expect_str_eq(s_(ep(acc4, "remote"), "addr"), "127.0.0.1");
	cr_assert_not_null(acc6, "no IPv6 accept");
	cr_expect_str_eq(s_(ep(acc6, "remote"), "addr"), "::1");
	cr_expect_eq(i_(ep(acc6, "remote"), "port"), c6);
	cr_expect_eq(i_(ep(acc6, "local"), "port"), p6);
	cr_assert_not_null(lis4, "no listen");
	cr_expect_eq(i_(ep(lis4, "local"), "port"), p4);
	cr_expect_eq(i_(lis4, "backlog"), 4);
	cr_assert_not_null(udp, "no UDP connect");
	cr_expect_eq(i_(ep(udp, "remote"), "port"), 9);
	snprintf(upath, sizeof(upath), "%s/sock", dir);
	cr_assert_not_null(ubind, "no unix bind");
	cr_expect_str_eq(s_(ubind, "unix_path"), upath);
	cr_assert_not_null(uconn, "no unix connect");
	cr_expect_str_eq(s_(uconn, "unix_path"), upath);
	snprintf(upath, sizeof(upath), "@vigil-test-%d", (int)c);
	cr_assert_not_null(abind, "no bind of an abstract unix name");
	cr_expect_str_eq(s_(abind, "unix_path"), upath);
	cr_assert_not_null(aconn, "no connect to an abstract unix name");
	cr_expect_str_eq(s_(aconn, "unix_path"), upath);
	cr_expect_eq(i_(aconn, "result"), 0);
}

/* ---- loss ---- */

static void do_burst(void *arg)
{
	(void)arg;
	char p[H_PATH];
	for (int i = 0; i < 20000; i++) {
		snprintf(p, sizeof(p), "%s/burst-%d", dir, i % 64);
		int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		close(fd);
	}
}

Test(capture, a_ring_buffer_too_small_shows_drops_in_the_counters)
{
	/* 64 KiB of ring and a reader that is not reading: the ring must fill. */
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		execl(h_bin("vigil-defender"), "vigil-defender", "--events-json", "--ringbuf-kb",
		      "64", (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	defender = pid;
	char buf[65536];
	ssize_t n = read(fds[0], buf, sizeof(buf)); /* the ready line */
	cr_assert_gt(n, 0);
	pid_t c = in_child(do_burst, NULL);
	(void)c;
	kill(defender, SIGTERM);
	/* Now read everything; the last line is the stats. */
	size_t total = 0;
	char *all = malloc(64 << 20);
	while ((n = read(fds[0], all + total, (64 << 20) - total - 1)) > 0)
		total += (size_t)n;
	all[total] = '\0';
	waitpid(defender, NULL, 0);
	defender = 0;
	char *last = strstr(all, "{\"type\":\"stats\"");
	cr_assert_not_null(last, "no stats line");
	json_t *st = json_loads(last, JSON_DISABLE_EOF_CHECK, NULL);
	cr_assert_not_null(st);
	long long full =
	    json_integer_value(json_object_get(json_object_get(st, "drops"), "ringbuf_full"));
	long long file = json_integer_value(json_object_get(json_object_get(st, "events"), "file"));
	cr_expect_gt(full, 0, "a full 64 KiB ring lost nothing? delivered %lld", file);
	cr_log_info("small ring: %lld file events delivered, %lld counted as ringbuf_full", file,
		    full);
	json_decref(st);
	free(all);
	close(fds[0]);
}

/* ---- the process tree ---- */

Test(capture, a_process_started_before_the_defender_has_its_ancestry)
{
	int go[2];
	char path[H_PATH];

	cr_assert_eq(pipe(go), 0);
	snprintf(path, sizeof(path), "%s/from-old-process", dir);
	/* Parent (this test) -> middle -> worker, all before the defender starts. */
	pid_t middle = fork();
	if (middle == 0) {
		pid_t worker = fork();
		if (worker == 0) {
			char c;
			if (read(go[0], &c, 1) != 1)
				_exit(2);
			close(open(path, O_WRONLY | O_CREAT, 0600));
			_exit(0);
		}
		int st;
		waitpid(worker, &st, 0);
		_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 3);
	}
	close(go[0]);
	start_defender(NULL);
	cr_assert_eq(write(go[1], "g", 1), 1);
	int st;
	waitpid(middle, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	stop_defender();

	size_t i;
	json_t *ev, *found = NULL;
	json_array_foreach(events, i, ev) if (strcmp(s_(ev, "type"), "file") == 0 &&
					      strcmp(s_(ev, "path"), path) == 0) found = ev;
	cr_assert_not_null(found, "no event for the old process's open");
	cr_expect_eq(i_(found, "ppid"), middle);
	cr_expect_str_eq(s_(found, "user"), "root");
	char self_exe[H_PATH] = "";
	ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	cr_assert_gt(n, 0);
	self_exe[n] = '\0';
	cr_expect_str_eq(s_(found, "exe"), self_exe, "the seeded process's executable");
	json_t *anc = json_object_get(found, "ancestry");
	cr_assert(json_is_array(anc) && json_array_size(anc) >= 2, "no ancestry");
	cr_expect_eq(i_(json_array_get(anc, 0), "pid"), middle);
	cr_expect_eq(i_(json_array_get(anc, 1), "pid"), getpid());
	/* And the stats line reports the tree, seeded from /proc. */
	json_t *pt = json_object_get(stats(), "proctree");
	cr_expect_gt(json_integer_value(json_object_get(pt, "seeded")), 10);
}

Test(capture, pid_filter_with_descendants_follows_the_tree)
{
	char pidarg[16];

	snprintf(pidarg, sizeof(pidarg), "%d", getpid());
	const char *extra[] = {"--pid", pidarg, "--descendants", NULL};
	start_defender(extra);
	pid_t child = in_child(do_exec_echo, NULL);
	stop_defender();
	cr_expect_not_null(find("exec", NULL, child, NULL), "descendant's exec missing");
	size_t i;
	json_t *ev;
	json_array_foreach(events, i, ev)
	{
		const char *t = s_(ev, "type");
		if (!strcmp(t, "ready") || !strcmp(t, "stats"))
			continue;
		json_t *anc = json_object_get(ev, "ancestry");
		bool ours = i_(ev, "pid") == getpid();
		for (size_t k = 0; !ours && k < json_array_size(anc); k++)
			ours = i_(json_array_get(anc, k), "pid") == getpid();
		cr_expect(ours, "event from pid %lld, not a descendant", i_(ev, "pid"));
	}
}
