/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "process/enrich.h"
#include "process/proctree.h"
#include "process/procfs.h"

#define ID64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define ID63 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde"

/* ---- helpers --------------------------------------------------------------- */

static char *slurp(const char *path, size_t *ret_len)
{
	static char buf[65536];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	cr_assert(n >= 0);
	buf[n] = '\0';
	*ret_len = (size_t)n;
	return buf;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void rm_tree(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *make_tmpdir(void)
{
	char tmpl[] = "/tmp/vigil-pt-XXXXXX";

	cr_assert_not_null(mkdtemp(tmpl));
	return strdup(tmpl);
}

static void fake_write(const char *root, unsigned pid, const char *name, const void *data,
		       size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%u", root, pid);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%u/%s", root, pid, name);
	f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	cr_assert_eq(fwrite(data, 1, len, f), len);
	fclose(f);
}

static void fake_str(const char *root, unsigned pid, const char *name, const char *s)
{
	fake_write(root, pid, name, s, strlen(s));
}

static void fake_link(const char *root, unsigned pid, const char *name, const char *target)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%u/%s", root, pid, name);
	cr_assert_eq(symlink(target, path), 0, "%s: %s", path, strerror(errno));
}

/* A plausible /proc/<pid>: stat, status, loginuid, cgroup; exe/cwd/cmdline left to the caller. */
static void fake_proc(const char *root, unsigned pid, unsigned ppid, const char *comm,
		      unsigned long long start_ticks, unsigned uid, const char *cgroup)
{
	char buf[1024];

	snprintf(buf, sizeof(buf),
		 "%u (%s) S %u %u %u 34819 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 %llu 1000 "
		 "50 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0\n",
		 pid, comm, ppid, pid, pid, start_ticks);
	fake_str(root, pid, "stat", buf);
	snprintf(buf, sizeof(buf),
		 "Name:\tx\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t%u\nNgid:\t0\nPid:\t%u\n"
		 "PPid:\t%u\nTracerPid:\t0\nUid:\t%u\t%u\t%u\t%u\nGid:\t%u\t%u\t%u\t%u\n",
		 pid, pid, ppid, uid, uid + 1, uid, uid, uid + 2, uid + 2, uid + 2, uid + 2);
	fake_str(root, pid, "status", buf);
	fake_str(root, pid, "loginuid", "1000");
	fake_str(root, pid, "cgroup", cgroup);
}

static struct proctree *tree_at(const char *root, uint32_t max)
{
	struct proctree_limits lim = {.max_entries = max, .proc_root = root};
	struct proctree *pt = proctree_new(&lim);

	cr_assert_not_null(pt);
	return pt;
}

static int exec_ev(struct proctree *pt, uint32_t pid, uint32_t ppid, uint64_t start,
		   const char *exe, const char *args, size_t args_len)
{
	struct proctree_exec ev = {
	    .pid = pid,
	    .ppid = ppid,
	    .start_ns = start,
	    .uid = 1000,
	    .euid = 1000,
	    .gid = 100,
	    .sid = ppid,
	    .loginuid = 1000,
	    .comm = "cmd",
	    .filename = exe,
	    .filename_len = exe ? strlen(exe) + 1 : 0,
	    .args = args,
	    .args_len = args_len,
	    .cwd = "/srv",
	    .cwd_len = 5,
	    .tty = "pts1",
	};

	return proctree_on_exec(pt, &ev);
}

static void stats(struct proctree *pt, struct proctree_stats *st)
{
	proctree_stats(pt, st);
}

/* ---- pure parsers ------------------------------------------------------------ */

Test(proctree, parse_stat_comm_with_parens_spaces_and_newline)
{
	const char line[] = "4242 (a) (b c\n)) x) R 7 4242 99 34817 -1 4194560 1 2 3 4 5 6 -7 -8 "
			    "-100 -20 3 0 178540 3133440 351 18446744073709551615 1 2\n";
	struct proctree_stat st;

	cr_assert_eq(proctree_parse_stat(line, sizeof(line) - 1, &st), 0);
	cr_expect_eq(st.pid, 4242);
	cr_expect_str_eq(st.comm, "a) (b c\n)) x"); /* 12 bytes: fits in 15 */
	cr_expect_eq(st.state, 'R');
	cr_expect_eq(st.ppid, 7);
	cr_expect_eq(st.sid, 99);
	cr_expect_eq(st.tty_nr, 34817);
	cr_expect_eq(st.kflags, 4194560);
	cr_expect_eq(st.start_ticks, 178540);
}

Test(proctree, parse_stat_cuts_long_comm_and_rejects_garbage)
{
	const char lng[] = "9 (kworker/u16:2-events_unbound) I 2 0 0 0 -1 69238880 0 0 0 0 0 0 0 "
			   "0 20 0 1 0 77 0 0\n";
	struct proctree_stat st;

	cr_assert_eq(proctree_parse_stat(lng, sizeof(lng) - 1, &st), 0);
	cr_expect_str_eq(st.comm, "kworker/u16:2-e");
	cr_expect(st.kflags & 0x00200000);
	cr_expect_eq(st.start_ticks, 77);

	cr_expect_lt(proctree_parse_stat("", 0, &st), 0);
	cr_expect_lt(proctree_parse_stat("12 (x", 5, &st), 0);
	cr_expect_lt(proctree_parse_stat("12 x) S 1", 9, &st), 0);
	cr_expect_lt(proctree_parse_stat("0 (x) S 1 1 1 0", 15, &st), 0);
	/* Cut before starttime (field 22). */
	cr_expect_lt(proctree_parse_stat("5 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0", 46, &st),
		     0);
	/* Not NUL-terminated: the parser must stop at len. */
	char nonul[] = {'7', ' ', '(', 'x', ')', ' ', 'S'};
	cr_expect_lt(proctree_parse_stat(nonul, sizeof(nonul), &st), 0);
	cr_expect_lt(proctree_parse_stat("99999999999 (x) S", 17, &st), 0);
}

Test(proctree, parse_stat_of_this_process)
{
	struct proctree_stat st;
	size_t len;
	char *buf = slurp("/proc/self/stat", &len);

	cr_assert_eq(proctree_parse_stat(buf, len, &st), 0);
	cr_expect_eq(st.pid, (uint32_t)getpid());
	cr_expect_eq(st.ppid, (uint32_t)getppid());
	cr_expect_eq(st.sid, (uint32_t)getsid(0));
	cr_expect_gt(st.start_ticks, 0);
}

Test(proctree, container_id_each_runtime)
{
	static const char *const ok[] = {
	    "/docker/" ID64,
	    "/system.slice/docker-" ID64 ".scope",
	    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice/"
	    "cri-containerd-" ID64 ".scope",
	    "/kubepods/besteffort/pod0f6c2a1e-9e1b-4f7e-bd2a-1c3e5f7a9b0d/" ID64,
	    "/kubepods/" ID64,
	    "/machine.slice/libpod-" ID64 ".scope",
	    "/machine.slice/libpod-" ID64 ".scope/container",
	    "/libpod_parent/libpod-" ID64,
	    "/kubepods.slice/kubepods-burstable.slice/crio-" ID64 ".scope",
	    "/kubepods/burstable/pod1/crio-" ID64,
	    "/docker/" ID64 "/",
	};
	char out[PROCTREE_CONTAINER_ID_LEN + 1];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		cr_expect_eq(proctree_container_id(ok[i], out), 64, "%s", ok[i]);
		cr_expect_str_eq(out, ID64, "%s", ok[i]);
	}
	/* Docker in docker: the innermost container. */
	cr_expect_eq(proctree_container_id("/docker/" ID64 "/docker/"
					   "fedcba9876543210fedcba9876543210fedcba9876543210fedcb"
					   "a9876543210",
					   out),
		     64);
	cr_expect_str_eq(out, "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210");
}

Test(proctree, container_id_rejects_near_misses)
{
	static const char *const bad[] = {
	    "",
	    "/",
	    "/user.slice/user-0.slice/session-3.scope",
	    "/docker/" ID63,
	    "/docker/" ID64 "0",
	    "/docker/" ID63 "g",
	    "/docker/0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
	    "/system.slice/docker-" ID63 ".scope",
	    "/system.slice/docker-" ID64,	  /* systemd form needs .scope */
	    "/system.slice/docker-" ID64 ".scop", /* cut */
	    "/system.slice/docker-" ID64 ".scope.bak",
	    "/" ID64,		  /* bare id, not under docker or kubepods */
	    "/notdocker/" ID64,	  /* parent must be exactly "docker" */
	    "/process_api/" ID64, /* */
	    "/machine.slice/libpod-conmon-" ID64 ".scope",
	    "/system.slice/crio-conmon-" ID64 ".scope",
	    "/system.slice/containerd-" ID64 ".scope",
	    "/x/cri-containerd-" ID64 "-x.scope",
	    "/process_api/bacc6e9d54a7f8ec67e21b5b73478880",
	};
	char out[PROCTREE_CONTAINER_ID_LEN + 1];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		out[0] = 'x';
		cr_expect_eq(proctree_container_id(bad[i], out), 0, "%s", bad[i]);
		cr_expect_str_eq(out, "", "%s", bad[i]);
	}
	cr_expect_eq(proctree_container_id(NULL, out), 0);
}

static void expect_pick(const char *file, int want_kind, const char *want)
{
	size_t off = 0, len = 0;
	int kind = proctree_cgroup_pick(file, strlen(file), &off, &len);

	cr_expect_eq(kind, want_kind, "kind for %s", file);
	if (kind > 0) {
		cr_expect_eq(len, strlen(want), "%s", file);
		cr_expect(strncmp(file + off, want, len) == 0, "%.*s", (int)len, file + off);
	}
}

Test(proctree, cgroup_pick_v2_hybrid_and_junk)
{
	expect_pick("0::/system.slice/sshd.service\n", 2, "/system.slice/sshd.service");
	expect_pick("0::/\n", 2, "/");
	/* Hybrid, nothing in v2: the first v1 line with a real path. */
	expect_pick("9:name=systemd:/\n4:memory:/docker/" ID64 "\n3:cpu:/other\n0::/\n", 1,
		    "/docker/" ID64);
	/* Hybrid with a v2 path: v2 wins. */
	expect_pick("2:cpu:/a\n0::/system.slice/x.scope\n", 2, "/system.slice/x.scope");
	/* v1 only (no unified hierarchy). */
	expect_pick("2:cpu:/\n1:name=systemd:/init.scope\n", 1, "/init.scope");
	expect_pick("2:cpu:/\n1:memory:/\n", 1, "/");
	/* No trailing newline, junk lines. */
	expect_pick("garbage\n\n::\n0::/a b\n", 2, "/a b");
	expect_pick("", 0, NULL);
	expect_pick("nonsense\n1:cpu:relative\n", 0, NULL);
}

Test(proctree, tty_names_match_the_kernel)
{
	char out[32];

	proctree_tty_name(0, out);
	cr_expect_str_eq(out, "");
	proctree_tty_name((136 << 8) | 3, out);
	cr_expect_str_eq(out, "pts3");
	proctree_tty_name((137 << 8) | 4, out);
	cr_expect_str_eq(out, "pts260");
	proctree_tty_name((136 << 8) | 44 | (1u << 24), out); /* minor 4096 + 44 */
	cr_expect_str_eq(out, "pts4140");
	proctree_tty_name((4 << 8) | 1, out);
	cr_expect_str_eq(out, "tty1");
	proctree_tty_name((4 << 8) | 64, out);
	cr_expect_str_eq(out, "ttyS0");
	proctree_tty_name((5 << 8) | 1, out);
	cr_expect_str_eq(out, "console");
	proctree_tty_name((250 << 8) | 7, out);
	cr_expect_str_eq(out, "250:7");
}

/* ---- seeding from the real /proc --------------------------------------------- */

Test(proctree, seed_finds_this_process_and_its_parent)
{
	struct proctree *pt = proctree_new(NULL);
	const struct proc_entry *e, *p;
	struct proctree_stats st;
	vigil_err err = {0};
	char exe[4096], cwd[4096];
	ssize_t n;
	size_t clen, off, glen;
	char *cmd;

	cr_assert_not_null(pt);
	cr_assert_eq(proctree_seed(pt, &err), 0, "%s", err.msg);
	stats(pt, &st);
	cr_expect_gt(st.seeded, 2);
	cr_expect_eq(st.entries, st.seeded);
	cr_log_info("seeded %llu processes", (unsigned long long)st.seeded);

	e = proctree_peek(pt, (uint32_t)getpid());
	cr_assert_not_null(e);
	cr_expect_eq(e->source, PROC_SRC_SEED);
	cr_expect_eq(e->ppid, (uint32_t)getppid());
	cr_expect_eq(e->uid, getuid());
	cr_expect_eq(e->euid, geteuid());
	cr_expect_eq(e->gid, getgid());
	cr_expect_eq(e->sid, (uint32_t)getsid(0));
	cr_expect(e->flags & PROC_F_START_COARSE);
	cr_expect_not(e->flags & PROC_F_EXITED);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	cr_assert_gt(n, 0);
	exe[n] = '\0';
	cr_assert_not_null(e->exe);
	cr_expect_str_eq(e->exe, exe);
	cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
	cr_assert_not_null(e->cwd);
	cr_expect_str_eq(e->cwd, cwd);

	cmd = slurp("/proc/self/cmdline", &clen);
	if (clen > 0 && cmd[clen - 1] == '\0')
		clen--;
	if (clen > PROCTREE_ARGS_DEFAULT) {
		clen = PROCTREE_ARGS_DEFAULT;
		cr_expect(e->flags & PROC_F_ARGS_TRUNC);
	}
	cr_assert_eq(e->args_len, clen);
	cr_expect(memcmp(e->args, cmd, clen) == 0);
	cr_expect_eq(e->args[e->args_len], '\0');

	cmd = slurp("/proc/self/cgroup", &clen);
	cr_assert_gt(proctree_cgroup_pick(cmd, clen, &off, &glen), 0);
	cr_assert_not_null(e->cgroup);
	cr_expect(strlen(e->cgroup) == glen && memcmp(e->cgroup, cmd + off, glen) == 0, "cgroup %s",
		  e->cgroup);

	p = proctree_peek(pt, (uint32_t)getppid());
	cr_assert_not_null(p);
	cr_expect_eq(p->pid, (uint32_t)getppid());
	cr_expect_leq(p->start_ns, e->start_ns);
	cr_expect_str_eq(p->exe, exe); /* criterion's runner is this same program */

	/* Kernel threads: no exe, flagged. */
	e = proctree_peek(pt, 2);
	if (e != NULL && (e->flags & PROC_F_KTHREAD)) {
		cr_expect_null(e->exe);
		cr_expect_eq(e->args_len, 0);
	}
	proctree_free(pt);
}

static pid_t spawn_sleep(const char *cwd)
{
	int p[2], code = 0;
	pid_t pid;

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int e;

		if (chdir(cwd) == 0)
			execl("/usr/bin/sleep", "sleep", "30", (char *)NULL);
		e = errno;
		(void)!write(p[1], &e, sizeof(e));
		_exit(127);
	}
	close(p[1]);
	/* EOF without data: the close-on-exec end closed, so exec succeeded. */
	cr_assert_eq(read(p[0], &code, sizeof(code)), 0, "exec failed: %s", strerror(code));
	close(p[0]);
	return pid;
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

Test(proctree, seed_finds_child_spawned_before_with_ancestry_to_init)
{
	char *dir = make_tmpdir();
	pid_t child = spawn_sleep(dir);
	struct proctree *pt = proctree_new(NULL);
	const struct proc_entry *chain[64];
	const struct proc_entry *e;
	size_t n;

	cr_assert_not_null(pt);
	cr_assert_eq(proctree_seed(pt, NULL), 0);
	e = proctree_peek(pt, (uint32_t)child);
	cr_assert_not_null(e);
	cr_expect_str_eq(e->exe, "/usr/bin/sleep");
	cr_expect_str_eq(e->cwd, dir);
	cr_expect_str_eq(e->comm, "sleep");
	cr_assert_eq(e->args_len, 8);
	cr_expect(memcmp(e->args,
			 "sleep\0"
			 "30",
			 8) == 0);
	cr_expect_eq(e->ppid, (uint32_t)getpid());

	n = proctree_ancestry(pt, (uint32_t)child, chain, 64);
	cr_assert_geq(n, 3, "chain of %zu", n);
	cr_expect_eq(chain[0]->pid, (uint32_t)child);
	cr_expect_eq(chain[1]->pid, (uint32_t)getpid());
	cr_expect_eq(chain[2]->pid, (uint32_t)getppid());
	for (size_t i = 0; i + 1 < n; i++)
		cr_expect_eq(chain[i]->ppid, chain[i + 1]->pid, "link %zu", i);
	cr_expect_eq(chain[n - 1]->pid, 1, "chain ends at %u", chain[n - 1]->pid);
	for (size_t i = 0; i < n; i++)
		cr_log_info("ancestry[%zu] %u %s", i, chain[i]->pid, chain[i]->comm);

	/* A small out[] is respected. */
	cr_expect_eq(proctree_ancestry(pt, (uint32_t)child, chain, 2), 2);
	cr_expect_eq(proctree_ancestry(pt, (uint32_t)child, chain, 0), 0);

	reap(child);
	proctree_free(pt);
	rm_tree(dir);
	free(dir);
}

Test(proctree, lookup_miss_loads_lazily_and_counts)
{
	char *dir = make_tmpdir();
	pid_t child = spawn_sleep(dir);
	struct proctree *pt = proctree_new(NULL);
	const struct proc_entry *e;
	struct proctree_stats st;

	cr_assert_not_null(pt);
	e = proctree_get(pt, (uint32_t)child);
	cr_assert_not_null(e);
	cr_expect_eq(e->source, PROC_SRC_LAZY);
	cr_expect_str_eq(e->exe, "/usr/bin/sleep");
	cr_expect_eq(proctree_get(pt, (uint32_t)child), e); /* a hit now */
	stats(pt, &st);
	cr_expect_eq(st.lookup_misses, 1);
	cr_expect_eq(st.lazy_loads, 1);
	cr_expect_eq(st.entries, 1);

	/* A pid that does not exist: a counted miss, nothing stored. */
	cr_expect_null(proctree_get(pt, 0x7ffffff0));
	stats(pt, &st);
	cr_expect_eq(st.lookup_misses, 2);
	cr_expect_eq(st.lazy_loads, 1);

	cr_expect_null(proctree_get(pt, 0));
	reap(child);

	/* The sweep notices that the child is gone though no exit event came. */
	cr_expect_eq(proctree_sweep(pt, 1000, 10), 1);
	e = proctree_peek(pt, (uint32_t)child);
	cr_assert_not_null(e);
	cr_expect(e->flags & PROC_F_EXITED);
	stats(pt, &st);
	cr_expect_eq(st.stale_reaped, 1);
	cr_expect_eq(proctree_expire(pt, 1000 + PROCTREE_GRACE_NS_DEFAULT), 1);
	cr_expect_null(proctree_peek(pt, (uint32_t)child));
	proctree_free(pt);
	rm_tree(dir);
	free(dir);
}

static volatile pid_t thread_tid;

static void *thread_main(void *arg)
{
	(void)arg;
	thread_tid = gettid();
	pause();
	return NULL;
}

Test(proctree, thread_ids_are_not_loaded_as_processes)
{
	struct proctree *pt = proctree_new(NULL);
	pthread_t th;

	cr_assert_not_null(pt);
	cr_assert_eq(pthread_create(&th, NULL, thread_main, NULL), 0);
	while (thread_tid == 0)
		usleep(1000);
	cr_assert_neq(thread_tid, getpid());
	cr_expect_null(proctree_get(pt, (uint32_t)thread_tid));
	cr_expect_not_null(proctree_get(pt, (uint32_t)getpid()));
	pthread_cancel(th);
	pthread_join(th, NULL);
	proctree_free(pt);
}

/*
 * On the kernel's /proc a pid that is gone is answered without a path walk
 * (kill(pid, 0)); a zombie still opens, and a stand-in root is read as it is.
 */
Test(proctree, procfs_open_pid_tells_live_zombie_and_reaped_apart)
{
	char root[] = "/tmp/vigil-procfs-XXXXXX", sub[64];
	uint64_t bytes = 0;
	struct procfs pf;
	int fd, pipefd[2];
	pid_t pid;

	cr_assert_eq(pipe(pipefd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char c;

		close(pipefd[1]);
		(void)!read(pipefd[0], &c, 1); /* until the parent closes its end */
		_exit(0);
	}
	close(pipefd[0]);
	cr_assert_eq(procfs_init(&pf, "/proc", 64, &bytes), 0);
	cr_assert(pf.live_root);
	fd = procfs_open_pid(&pf, (uint32_t)pid);
	cr_assert_geq(fd, 0, "a live child: %s", strerror(-fd));
	close(fd);
	close(pipefd[1]); /* the child exits; not reaped yet: a zombie */
	for (int i = 0; i < 500; i++) {
		siginfo_t si = {0};

		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
		    si.si_pid == pid)
			break;
		usleep(2000);
	}
	fd = procfs_open_pid(&pf, (uint32_t)pid);
	cr_assert_geq(fd, 0, "a zombie is still there to read: %s", strerror(-fd));
	close(fd);
	cr_assert_eq(waitpid(pid, NULL, 0), pid);
	cr_assert_eq(procfs_open_pid(&pf, (uint32_t)pid), -ENOENT);
	procfs_fini(&pf);

	/* A stand-in root: its entries are what counts, not the kernel's processes. */
	cr_assert_not_null(mkdtemp(root));
	snprintf(sub, sizeof(sub), "%s/%d", root, (int)pid);
	cr_assert_eq(mkdir(sub, 0700), 0);
	cr_assert_eq(procfs_init(&pf, root, 64, &bytes), 0);
	cr_assert_not(pf.live_root);
	fd = procfs_open_pid(&pf, (uint32_t)pid);
	cr_assert_geq(fd, 0, "the stand-in entry of a reaped pid: %s", strerror(-fd));
	close(fd);
	procfs_fini(&pf);
	rmdir(sub);
	rmdir(root);
}

/* ---- events --------------------------------------------------------------- */

Test(proctree, fork_inherits_exec_replaces_exit_survives_grace)
{
	char *root = make_tmpdir();
	struct proctree *pt = tree_at(root, 0);
	const struct proc_entry *p, *c;
	struct proctree_stats st;
	const char bash_args[] = "-bash";
	const char ls_args[] = "ls\0-la\0/etc";

	cr_assert_eq(exec_ev(pt, 1000, 1, 5000, "/usr/bin/bash", bash_args, sizeof(bash_args)), 0);
	p = proctree_peek(pt, 1000);
	cr_assert_not_null(p);
	cr_expect_eq(p->source, PROC_SRC_EXEC);
	cr_expect_str_eq(p->exe, "/usr/bin/bash");
	cr_expect_eq(p->args_len, 5); /* the trailing NUL is not kept */
	cr_expect_str_eq(p->args, "-bash");
	cr_expect_str_eq(p->cwd, "/srv");
	cr_expect_str_eq(p->tty, "pts1");
	cr_expect_str_eq(p->comm, "cmd");
	cr_expect_eq(p->loginuid, 1000);
	cr_expect_null(p->cgroup); /* no /proc/1000 in this fake root */

	cr_assert_eq(proctree_on_fork(pt, 1000, 1001, 6000), 0);
	c = proctree_peek(pt, 1001);
	p = proctree_peek(pt, 1000);
	cr_assert_not_null(c);
	cr_expect_eq(c->source, PROC_SRC_FORK);
	cr_expect_eq(c->ppid, 1000);
	cr_expect_eq(c->start_ns, 6000);
	cr_expect_eq(c->exe, p->exe); /* the same interned string */
	cr_expect_eq(c->cwd, p->cwd);
	cr_expect_eq(c->tty, p->tty);
	cr_expect_eq(c->args, p->args);
	cr_expect_eq(c->uid, 1000);
	cr_expect_eq(c->sid, p->sid);
	cr_expect_str_eq(c->comm, "cmd");

	cr_assert_eq(exec_ev(pt, 1001, 1000, 6000, "/usr/bin/ls", ls_args, sizeof(ls_args)), 0);
	c = proctree_peek(pt, 1001);
	cr_expect_eq(c->source, PROC_SRC_FORK);
	cr_expect_str_eq(c->exe, "/usr/bin/ls");
	cr_expect_eq(c->args_len, sizeof(ls_args) - 1);
	cr_expect(memcmp(c->args, ls_args, sizeof(ls_args)) == 0);
	cr_expect_str_eq(proctree_peek(pt, 1000)->exe, "/usr/bin/bash");
	stats(pt, &st);
	cr_expect_eq(st.entries, 2);
	cr_expect_eq(st.replaced, 0);

	/* A late fork event for a child whose exec was seen changes nothing. */
	cr_assert_eq(proctree_on_fork(pt, 1000, 1001, 6000), 0);
	cr_expect_str_eq(proctree_peek(pt, 1001)->exe, "/usr/bin/ls");

	cr_assert_eq(proctree_on_exit(pt, 1001, 6000, 256, 10000000000ull), 0);
	c = proctree_peek(pt, 1001);
	cr_assert_not_null(c);
	cr_expect(c->flags & PROC_F_EXITED);
	cr_expect_eq(c->exit_code, 256);
	cr_expect_eq(c->exit_ns, 10000000000ull);
	stats(pt, &st);
	cr_expect_eq(st.live, 1);
	cr_expect_eq(st.exited, 1);

	/* Inside the grace period: still resolvable, with ancestry. */
	cr_expect_eq(proctree_expire(pt, 10000000000ull + PROCTREE_GRACE_NS_DEFAULT - 1), 0);
	cr_expect_not_null(proctree_peek(pt, 1001));
	{
		const struct proc_entry *chain[8];

		cr_expect_eq(proctree_ancestry(pt, 1001, chain, 8), 2);
	}
	cr_expect_eq(proctree_expire(pt, 10000000000ull + PROCTREE_GRACE_NS_DEFAULT), 1);
	cr_expect_null(proctree_peek(pt, 1001));
	stats(pt, &st);
	cr_expect_eq(st.expired, 1);
	cr_expect_eq(st.entries, 1);
	cr_expect_eq(st.exited, 0);

	/* Exit of something unknown: counted, harmless. */
	cr_expect_eq(proctree_on_exit(pt, 4444, 1, 0, 1), -ENOENT);
	cr_expect_eq(proctree_on_exit(pt, 1000, 4999, 0, 1), -ENOENT); /* other start */
	stats(pt, &st);
	cr_expect_eq(st.exit_unknown, 2);

	proctree_free(pt);
	rm_tree(root);
	free(root);
}

/*
 * enrich_describe keeps its last description: reused for the same process
 * while the tree is unchanged, made again once anything in it changed.
 */
Test(proctree, a_remembered_description_follows_changes_to_the_tree)
{
	char *root = make_tmpdir();
	struct proctree *pt = tree_at(root, 0);
	static struct enrich_scratch scratch;
	struct ev_hdr h = {.type = EV_FILE, .pid = 1001, .uid = 0};
	struct event ev = {.hdr = &h};
	struct event_enrich en;
	uint64_t gen;

	cr_assert_eq(exec_ev(pt, 1000, 1, 5000, "/usr/bin/bash", "bash", 5), 0);
	cr_assert_eq(proctree_on_fork(pt, 1000, 1001, 6000), 0);
	cr_assert_eq(exec_ev(pt, 1001, 1000, 6000, "/usr/bin/ls", "ls", 3), 0);

	enrich_describe(pt, &ev, &en, &scratch);
	cr_assert_eq(en.nancestry, 1);
	cr_expect_str_eq(en.exe, "/usr/bin/ls");
	cr_expect_str_eq(en.ancestry[0].exe, "/usr/bin/bash");
	gen = proctree_generation(pt);
	enrich_describe(pt, &ev, &en, &scratch);
	cr_expect_eq(proctree_generation(pt), gen, "describing a known process changed the tree");
	cr_expect_str_eq(en.ancestry[0].exe, "/usr/bin/bash");

	/* The parent execs another program: the child's ancestry must say so. */
	cr_assert_eq(exec_ev(pt, 1000, 1, 5000, "/usr/bin/zsh", "zsh", 4), 0);
	cr_expect_neq(proctree_generation(pt), gen);
	enrich_describe(pt, &ev, &en, &scratch);
	cr_expect_str_eq(en.ancestry[0].exe, "/usr/bin/zsh");

	/* Another process in between, then back: each described as itself. */
	h.pid = 1000;
	enrich_describe(pt, &ev, &en, &scratch);
	cr_expect_str_eq(en.exe, "/usr/bin/zsh");
	cr_expect_eq(en.nancestry, 0);
	h.pid = 1001;
	enrich_describe(pt, &ev, &en, &scratch);
	cr_expect_str_eq(en.exe, "/usr/bin/ls");

	/* Its exit is a change too. */
	gen = proctree_generation(pt);
	cr_assert_eq(proctree_on_exit(pt, 1001, 6000, 0, 1), 0);
	cr_expect_neq(proctree_generation(pt), gen);

	proctree_free(pt);
	rm_tree(root);
	free(root);
}

Test(proctree, pid_reuse_with_another_start_replaces)
{
	char *root = make_tmpdir();
	struct proctree *pt = tree_at(root, 0);
	const struct proc_entry *e;
	struct proctree_stats st;

	cr_assert_eq(exec_ev(pt, 500, 1, 1000, "/usr/bin/old", "old", 4), 0);
	cr_assert_eq(proctree_on_exit(pt, 500, 1000, 0, 2000), 0);
	/* Same pid, new process, inside the old one's grace period. */
	cr_assert_eq(exec_ev(pt, 500, 7, 3000, "/usr/bin/new", "new", 4), 0);
	e = proctree_peek(pt, 500);
	cr_assert_not_null(e);
	cr_expect_str_eq(e->exe, "/usr/bin/new");
	cr_expect_eq(e->start_ns, 3000);
	cr_expect_eq(e->ppid, 7);
	cr_expect_not(e->flags & PROC_F_EXITED);
	stats(pt, &st);
	cr_expect_eq(st.replaced, 1);
	cr_expect_eq(st.entries, 1);
	cr_expect_eq(st.live, 1);
	cr_expect_eq(st.exited, 0);
	cr_expect_eq(st.strings, 4); /* old exe/args released: new exe, args, cwd, tty */

	/* Fork of a reused pid replaces too. */
	cr_assert_eq(proctree_on_fork(pt, 500, 600, 4000), 0);
	cr_assert_eq(proctree_on_fork(pt, 500, 600, 9000), 0);
	cr_expect_eq(proctree_peek(pt, 600)->start_ns, 9000);
	stats(pt, &st);
	cr_expect_eq(st.replaced, 2);

	/* Nothing expires what was replaced. */
	cr_expect_eq(proctree_expire(pt, UINT64_MAX / 2), 0);
	cr_expect_not_null(proctree_peek(pt, 500));
	proctree_free(pt);
	rm_tree(root);
	free(root);
}

Test(proctree, coarse_seed_start_matches_precise_event_start)
{
	char *root = make_tmpdir();
	struct proctree *pt = tree_at(root, 0);
	const struct proc_entry *e;
	uint64_t tick = 1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK);
	struct proctree_stats st;

	fake_proc(root, 1, 0, "init", 1, 0, "0::/init.scope\n");
	fake_proc(root, 300, 1, "svc", 12345, 0, "0::/system.slice/svc.service\n");
	cr_assert_eq(proctree_seed(pt, NULL), 0);
	e = proctree_peek(pt, 300);
	cr_assert_not_null(e);
	cr_expect_eq(e->start_ns, 12345 * tick);
	cr_expect(e->flags & PROC_F_START_COARSE);

	/* The exec event knows the exact start, inside that tick: same process. */
	cr_assert_eq(exec_ev(pt, 300, 1, 12345 * tick + tick / 3, "/usr/sbin/svc", "svc", 4), 0);
	e = proctree_peek(pt, 300);
	cr_expect_eq(e->start_ns, 12345 * tick + tick / 3);
	cr_expect_not(e->flags & PROC_F_START_COARSE);
	cr_expect_eq(e->source, PROC_SRC_SEED);
	stats(pt, &st);
	cr_expect_eq(st.replaced, 0);

	/* One tick later is another process. */
	cr_assert_eq(exec_ev(pt, 300, 1, 12346 * tick + 1, "/usr/sbin/svc", "svc", 4), 0);
	stats(pt, &st);
	cr_expect_eq(st.replaced, 1);
	proctree_free(pt);
	rm_tree(root);
	free(root);
}

/* exec_ev for a process of owner uid / loginuid (UINT32_MAX: a service, no login). */
static int exec_as(struct proctree *pt, uint32_t pid, uint32_t uid, uint32_t loginuid)
{
	struct proctree_exec ev = {
	    .pid = pid,
	    .ppid = 1,
	    .start_ns = pid,
	    .uid = uid,
	    .euid = uid,
	    .gid = uid,
	    .sid = pid,
	    .loginuid = loginuid,
	    .comm = "cmd",
	    .filename = "/bin/x",
	    .filename_len = 7,
	};

	return proctree_on_exec(pt, &ev);
}

Test(proctree, table_bound_evicts_exited_first_then_the_biggest_owners_processes)
{
	char *root = make_tmpdir();
	struct proctree *pt = tree_at(root, 100);
	struct proctree_stats st;
	uint32_t pid;

	/* 40 service processes (uid 33, no login) and 60 of a logged-in user; 30 of those exit. */
	for (pid = 2; pid < 42; pid++)
		cr_assert_eq(exec_as(pt, pid, 33, UINT32_MAX), 0);
	for (pid = 42; pid < 102; pid++)
		cr_assert_eq(exec_as(pt, pid, 1000, 1000), 0);
	for (pid = 42; pid < 72; pid++)
		cr_assert_eq(proctree_on_exit(pt, pid, pid, 0, pid), 0);

	/*
	 * The user forks 1,000 more, spread over the uids of a user namespace:
	 * the exited go first (oldest first), then only the user's own live ones.
	 */
	for (pid = 1000; pid < 2000; pid++) {
		cr_assert_eq(exec_as(pt, pid, 100000 + pid, 1000), 0, "pid %u refused", pid);
		stats(pt, &st);
		cr_assert_leq(st.entries, 100);
		if (pid == 1000) {
			cr_expect_null(proctree_peek(pt, 42)); /* the oldest exited went first */
			cr_expect_not_null(proctree_peek(pt, 43));
		}
	}
	stats(pt, &st);
	/* A slice goes at a time (room for the next ones): every entry is accounted for. */
	cr_expect_leq(st.entries, 100);
	cr_expect_eq(st.evicted_exited, 30);
	cr_expect_geq(st.evicted_live, 1000 - 30);
	cr_expect_eq(st.entries, 100 + 1000 - 30 - st.evicted_live);
	cr_expect_eq(st.table_full_drops, 0);
	for (pid = 2; pid < 42; pid++)
		cr_expect_not_null(proctree_peek(pt, pid), "service process %u evicted", pid);
	cr_expect_not_null(proctree_peek(pt, 1999), "the newest is in");

	/* A service that starts now still gets its entry, and forks and lazy loads obey the bound.
	 */
	cr_expect_eq(exec_as(pt, 3000, 33, UINT32_MAX), 0);
	cr_expect_not_null(proctree_peek(pt, 3000));
	cr_expect_eq(proctree_on_fork(pt, 3000, 3001, 3001), 0);
	stats(pt, &st);
	cr_expect_leq(st.entries, 100);
	for (pid = 2; pid < 42; pid++)
		cr_expect_not_null(proctree_peek(pt, pid), "service process %u evicted", pid);
	proctree_free(pt);
	rm_tree(root);
	free(root);
}

Test(proctree, a_table_of_init_alone_refuses_and_counts)
{
	char *root = make_tmpdir();
	struct proctree *pt = tree_at(root, 1);
	struct proctree_stats st;

	cr_assert_eq(exec_as(pt, 1, 0, UINT32_MAX), 0);
	cr_expect_eq(exec_as(pt, 5, 1000, 1000), -ENOSPC, "init is never evicted");
	stats(pt, &st);
	cr_expect_eq(st.table_full_drops, 1);
	cr_expect_not_null(proctree_peek(pt, 1));
	proctree_free(pt);
	rm_tree(root);
	free(root);
}

Test(proctree, ancestry_stops_on_cycles_reuse_and_missing_links)
{
	char *root = make_tmpdir();
	struct proctree *pt = tree_at(root, 0);
	const struct proc_entry *chain[16];
	size_t n;

	/* 1 <- 50 <- 51 */
	cr_assert_eq(exec_ev(pt, 1, 0, 1, "/sbin/init", NULL, 0), 0);
	cr_assert_eq(exec_ev(pt, 50, 1, 10, "/a", NULL, 0), 0);
	cr_assert_eq(exec_ev(pt, 51, 50, 20, "/b", NULL, 0), 0);
	n = proctree_ancestry(pt, 51, chain, 16);
	cr_assert_eq(n, 3);
	cr_expect_eq(chain[0]->pid, 51);
	cr_expect_eq(chain[1]->pid, 50);
	cr_expect_eq(chain[2]->pid, 1);

	/* An artificial cycle: 10 -> 11 -> 10 (same start, so only the cycle check stops it). */
	cr_assert_eq(exec_ev(pt, 10, 11, 5, "/c", NULL, 0), 0);
	cr_assert_eq(exec_ev(pt, 11, 10, 5, "/d", NULL, 0), 0);
	n = proctree_ancestry(pt, 10, chain, 16);
	cr_expect_eq(n, 2);
	/* A process its own parent. */
	cr_assert_eq(exec_ev(pt, 12, 12, 5, "/e", NULL, 0), 0);
	cr_expect_eq(proctree_ancestry(pt, 12, chain, 16), 1);

	/* A "parent" that started after the child is a reused pid: the chain stops. */
	cr_assert_eq(exec_ev(pt, 60, 61, 100, "/f", NULL, 0), 0);
	cr_assert_eq(exec_ev(pt, 61, 1, 200, "/g", NULL, 0), 0);
	cr_expect_eq(proctree_ancestry(pt, 60, chain, 16), 1);

	/* A missing parent (not in the tree, not in proc_root) ends it and is remembered. */
	cr_assert_eq(exec_ev(pt, 70, 71, 100, "/h", NULL, 0), 0);
	cr_expect_eq(proctree_ancestry(pt, 70, chain, 16), 1);
	cr_expect(proctree_peek(pt, 70)->flags & PROC_F_PARENT_GONE);
	{
		struct proctree_stats a, b;

		stats(pt, &a);
		cr_expect_eq(proctree_ancestry(pt, 70, chain, 16), 1);
		stats(pt, &b);
		cr_expect_eq(a.lookup_misses, b.lookup_misses, "no retry for a gone parent");
	}
	cr_expect_eq(proctree_ancestry(pt, 9999, chain, 16), 0);
	proctree_free(pt);
	rm_tree(root);
	free(root);
}

Test(proctree, fork_of_unknown_parent_is_incomplete)
{
	char *root = make_tmpdir();
	struct proctree *pt = tree_at(root, 0);
	const struct proc_entry *e;

	cr_assert_eq(proctree_on_fork(pt, 77, 78, 1234), 0);
	e = proctree_peek(pt, 78);
	cr_assert_not_null(e);
	cr_expect(e->flags & PROC_F_INCOMPLETE);
	cr_expect_eq(e->ppid, 77);
	cr_expect_eq(e->uid, UINT32_MAX); /* unknown, never "root" */
	cr_expect_eq(e->euid, UINT32_MAX);
	cr_expect_null(e->exe);
	/* Its exec fills it in. */
	cr_assert_eq(exec_ev(pt, 78, 77, 1234, "/usr/bin/id", "id", 3), 0);
	e = proctree_peek(pt, 78);
	cr_expect_not(e->flags & PROC_F_INCOMPLETE);
	cr_expect_eq(e->uid, 1000);
	cr_expect_eq(proctree_on_fork(pt, 1, 0, 1), -EINVAL);
	cr_expect_eq(exec_ev(pt, 0, 1, 1, "/x", NULL, 0), -EINVAL);
	proctree_free(pt);
	rm_tree(root);
	free(root);
}

Test(proctree, exec_strings_are_bounded_bytes)
{
	char *root = make_tmpdir();
	struct proctree_limits lim = {.proc_root = root, .args_max = 64};
	struct proctree *pt = proctree_new(&lim);
	const char exe[] = "/tmp/\xff\xfe\n evil\0hidden";
	char big[5000];
	const char comm16[16] = {'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h',
				 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p'};
	const char tty[40] = "pts5";
	struct proctree_exec ev = {
	    .pid = 42,
	    .ppid = 1,
	    .start_ns = 9,
	    .comm = comm16,
	    .filename = exe,
	    .filename_len = sizeof(exe),
	    .args = big,
	    .args_len = sizeof(big),
	    .cwd = "/x\0/y",
	    .cwd_len = 5,
	    .tty = tty,
	    .flags = PROC_F_EXE_MEMFD | PROC_F_EXITED, /* EXITED is not the caller's to set */
	};
	const struct proc_entry *e;

	cr_assert_not_null(pt);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (i % 7) ? (char)('a' + i % 26) : '\0';
	cr_assert_eq(proctree_on_exec(pt, &ev), 0);
	e = proctree_peek(pt, 42);
	cr_assert_not_null(e);
	cr_expect_str_eq(e->exe, "/tmp/\xff\xfe\n evil");
	cr_expect_str_eq(e->cwd, "/x");
	cr_expect_str_eq(e->comm, "abcdefghijklmno");
	cr_expect_str_eq(e->tty, "pts5");
	cr_expect_eq(e->args_len, 64);
	cr_expect(memcmp(e->args, big, 64) == 0);
	cr_expect_eq(e->args[64], '\0');
	cr_expect(e->flags & PROC_F_ARGS_TRUNC);
	cr_expect(e->flags & PROC_F_EXE_MEMFD);
	cr_expect_not(e->flags & PROC_F_EXITED);

	/* Absent strings stay absent. */
	struct proctree_exec bare = {.pid = 43, .ppid = 1, .start_ns = 1, .tty = ""};
	cr_assert_eq(proctree_on_exec(pt, &bare), 0);
	e = proctree_peek(pt, 43);
	cr_expect_null(e->exe);
	cr_expect_null(e->args);
	cr_expect_null(e->cwd);
	cr_expect_null(e->tty);
	cr_expect_str_eq(e->comm, "");

	struct proctree_limits toobig = {.args_max = PROCTREE_ARGS_MAX + 1};
	cr_expect_null(proctree_new(&toobig));
	cr_expect_eq(errno, EINVAL);
	proctree_free(pt);
	proctree_free(NULL);
	rm_tree(root);
	free(root);
}

Test(proctree, hostile_fake_proc_tree)
{
	char *root = make_tmpdir();
	struct proctree *pt = tree_at(root, 0);
	const struct proc_entry *e;
	struct proctree_stats st;
	char huge[20000];
	vigil_err err = {0};

	/* pid 1, and 4242 with everything odd. */
	fake_proc(root, 1, 0, "init", 1, 0, "0::/\n");
	fake_proc(root, 4242, 1, "x) (y z\n) w", 500, 1000,
		  "12:name=systemd:/\n4:memory:/docker/" ID64 "\n1:cpu:/\n0::/\n");
	memset(huge, 'A', sizeof(huge));
	fake_write(root, 4242, "cmdline", huge, sizeof(huge));
	fake_link(root, 4242, "exe", "/opt/\xc3\x28\xff bin");
	fake_link(root, 4242, "cwd", "/home/u");
	/* A thread's directory (Tgid differs): skipped. */
	fake_proc(root, 4243, 1, "thr", 500, 0, "0::/\n");
	fake_str(root, 4243, "status", "Name:\tthr\nTgid:\t4242\nUid:\t0\t0\t0\t0\n");
	/* Garbage: skipped without harm. */
	fake_str(root, 4300, "stat", "4300 (no close paren S 1 2 3");
	fake_str(root, 4301, "stat", "");
	fake_str(root, 4302, "stat", "9999 (other) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0\n");
	/* A zombie. */
	fake_proc(root, 4400, 1, "zz", 600, 0, "0::/\n");
	{
		char zst[256];

		snprintf(zst, sizeof(zst),
			 "4400 (zz) Z 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 600 0 0\n");
		fake_str(root, 4400, "stat", zst);
	}
	/* Non-numeric entries are ignored. */
	mkdir(strcat(strcpy(huge, root), "/self"), 0755);

	cr_assert_eq(proctree_seed(pt, &err), 0, "%s", err.msg);
	stats(pt, &st);
	cr_expect_eq(st.seeded, 3, "seeded %llu", (unsigned long long)st.seeded);

	e = proctree_peek(pt, 4242);
	cr_assert_not_null(e);
	cr_expect_str_eq(e->comm, "x) (y z\n) w");
	cr_expect_eq(e->ppid, 1);
	cr_expect_eq(e->sid, 4242);
	cr_expect_eq(e->uid, 1000);
	cr_expect_eq(e->euid, 1001);
	cr_expect_eq(e->gid, 1002);
	cr_expect_eq(e->loginuid, 1000);
	cr_expect_str_eq(e->tty, "pts3"); /* 34819 */
	cr_expect_str_eq(e->exe, "/opt/\xc3\x28\xff bin");
	cr_expect_str_eq(e->cwd, "/home/u");
	cr_expect_eq(e->args_len, PROCTREE_ARGS_DEFAULT);
	cr_expect(e->flags & PROC_F_ARGS_TRUNC);
	cr_expect_str_eq(e->cgroup, "/docker/" ID64);
	cr_expect_str_eq(e->container_id, ID64);

	cr_expect_null(proctree_peek(pt, 4243));
	cr_expect_null(proctree_get(pt, 4243));
	cr_expect_null(proctree_peek(pt, 4300));
	cr_expect_null(proctree_peek(pt, 4302));

	e = proctree_peek(pt, 4400);
	cr_assert_not_null(e);
	cr_expect(e->flags & PROC_F_EXITED);

	e = proctree_peek(pt, 1);
	cr_assert_not_null(e);
	cr_expect_null(e->exe); /* no link: absent, not an error */
	cr_expect_str_eq(e->cgroup, "/");
	cr_expect_null(e->container_id);

	/* Seeding again refreshes, it does not duplicate. */
	cr_assert_eq(proctree_seed(pt, NULL), 0);
	stats(pt, &st);
	cr_expect_eq(st.entries, 3);
	cr_expect_eq(st.replaced, 0);

	/* A proc root that is not there is the one seeding error. */
	struct proctree_limits nolim = {.proc_root = "/nonexistent/proc"};
	struct proctree *none = proctree_new(&nolim);
	cr_expect_eq(proctree_seed(none, &err), -ENOENT);
	cr_expect(strstr(err.msg, "/nonexistent/proc") != NULL, "%s", err.msg);
	proctree_free(none);
	proctree_free(pt);
	rm_tree(root);
	free(root);
}

Test(proctree, sweep_marks_vanished_zombie_and_reused_pids)
{
	char *root = make_tmpdir();
	struct proctree *pt = tree_at(root, 0);
	struct proctree_stats st;
	char path[512];

	fake_proc(root, 1, 0, "init", 1, 0, "0::/\n");
	for (unsigned pid = 100; pid < 104; pid++)
		fake_proc(root, pid, 1, "w", 50, 0, "0::/\n");
	cr_assert_eq(proctree_seed(pt, NULL), 0);
	/* 100 vanishes, 101 is a zombie, 102 is another process now, 103 is fine. */
	snprintf(path, sizeof(path), "%s/100", root);
	rm_tree(path);
	fake_str(root, 101, "stat", "101 (w) Z 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 50 0\n");
	fake_proc(root, 102, 1, "w", 90, 0, "0::/\n");

	{
		size_t first = proctree_sweep(pt, 777, 2); /* bounded work per call */

		cr_expect_leq(first, 2);
		cr_expect_eq(first + proctree_sweep(pt, 777, 100), 3);
	}
	cr_expect_eq(proctree_sweep(pt, 777, 100), 0); /* nothing left to mark */
	stats(pt, &st);
	cr_expect_eq(st.stale_reaped, 3);
	cr_expect_eq(st.live, 2);
	cr_expect_eq(st.exited, 3);
	cr_expect_eq(proctree_peek(pt, 100)->exit_code, -1);
	cr_expect_eq(proctree_peek(pt, 100)->exit_ns, 777);
	cr_expect_not(proctree_peek(pt, 103)->flags & PROC_F_EXITED);
	cr_expect_eq(proctree_expire(pt, 777 + PROCTREE_GRACE_NS_DEFAULT), 3);
	/* The new process behind 102 loads on demand. */
	cr_expect_eq(proctree_get(pt, 102)->start_ns,
		     90 * (1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK)));
	proctree_free(pt);
	rm_tree(root);
	free(root);
}

Test(proctree, exec_cgroup_from_proc_then_cache)
{
	char *root = make_tmpdir();
	struct proctree *pt = tree_at(root, 0);
	struct proctree_exec ev = {.pid = 300, .ppid = 1, .start_ns = 1, .cgroup_id = 77};
	const struct proc_entry *a, *b;

	fake_str(root, 300, "cgroup", "0::/system.slice/docker-" ID64 ".scope\n");
	cr_assert_eq(proctree_on_exec(pt, &ev), 0);
	a = proctree_peek(pt, 300);
	cr_expect_str_eq(a->cgroup, "/system.slice/docker-" ID64 ".scope");
	cr_expect_str_eq(a->container_id, ID64);
	cr_expect_eq(a->cgroup_id, 77);

	/* Another process in that cgroup, already gone from /proc: the id resolves from the cache.
	 */
	ev.pid = 301;
	cr_assert_eq(proctree_on_exec(pt, &ev), 0);
	a = proctree_peek(pt, 300);
	b = proctree_peek(pt, 301);
	cr_expect_eq(b->cgroup, a->cgroup);
	cr_expect_eq(b->container_id, a->container_id);

	/* Unknown id, no /proc: inherit the parent's path as the best guess. */
	ev.pid = 302;
	ev.ppid = 300;
	ev.cgroup_id = 78;
	cr_assert_eq(proctree_on_exec(pt, &ev), 0);
	cr_expect_eq(proctree_peek(pt, 302)->cgroup, proctree_peek(pt, 300)->cgroup);
	proctree_free(pt);
	rm_tree(root);
	free(root);
}

/*
 * Process pid (parent ppid, started at start) execs in cgroup id; cgroup is
 * what its stand-in /proc/pid/cgroup says, NULL for a process gone before
 * /proc is read.  Returns its entry.
 */
static const struct proc_entry *exec_in(struct proctree *pt, const char *root, uint32_t pid,
					uint32_t ppid, uint64_t start, uint64_t id,
					const char *cgroup)
{
	struct proctree_exec ev = {.pid = pid, .ppid = ppid, .start_ns = start, .cgroup_id = id};

	if (cgroup != NULL)
		fake_str(root, pid, "cgroup", cgroup);
	cr_assert_eq(proctree_on_exec(pt, &ev), 0);
	return proctree_peek(pt, pid);
}

/*
 * A hybrid host (cgroup v1 hierarchies beside v2) reads /proc at every
 * exec; a short command in a container ("podman exec web true") is gone by
 * then.  Its v2 id, seen naming the container's v2 path, still places it
 * in the container, not in the runtime's cgroup its parent runs in.
 */
Test(proctree, hybrid_exec_of_a_gone_process_takes_its_cgroup_by_id)
{
	char *root = make_tmpdir();
	struct proctree *pt = tree_at(root, 0);
	const struct proc_entry *e;

	e = exec_in(pt, root, 400, 1, 1, 1317,
		    "4:memory:/libpod_parent/libpod-" ID64 "\n0::/libpod_parent/libpod-" ID64 "\n");
	cr_expect_str_eq(e->container_id, ID64);
	/* The runtime that starts the command, outside the container. */
	e = exec_in(pt, root, 500, 1, 2, 900,
		    "4:memory:/libpod_parent/conmon\n0::/libpod_parent/conmon\n");
	cr_expect_null(e->container_id);
	/* Its child execs in the container and is gone before /proc is read. */
	e = exec_in(pt, root, 501, 500, 3, 1317, NULL);
	cr_expect_str_eq(e->cgroup, "/libpod_parent/libpod-" ID64);
	cr_expect_str_eq(e->container_id, ID64);
	/* An id never seen: the parent's path stays the best guess. */
	e = exec_in(pt, root, 502, 500, 4, 4242, NULL);
	cr_expect_str_eq(e->cgroup, "/libpod_parent/conmon");
	proctree_free(pt);
	rm_tree(root);
	free(root);
}

/*
 * On a hybrid host an id once seen naming a path below the v2 root names it
 * for every process: /proc is not read again for it (here the stand-in /proc
 * says otherwise, which a real one cannot).  An id seen only with the v2 root
 * is not cached: the v1 lines decide, so /proc is read every time.
 */
Test(proctree, hybrid_exec_of_a_known_v2_cgroup_does_not_read_proc)
{
	char *root = make_tmpdir();
	struct proctree *pt = tree_at(root, 0);

	cr_expect_str_eq(exec_in(pt, root, 600, 1, 1, 55,
				 "9:name=systemd:/system.slice/web.service\n"
				 "0::/system.slice/web.service\n")
			     ->cgroup,
			 "/system.slice/web.service");
	cr_expect_str_eq(
	    exec_in(pt, root, 601, 1, 2, 55, "9:name=systemd:/elsewhere\n0::/elsewhere\n")->cgroup,
	    "/system.slice/web.service");
	/* The v2 root: each process's v1 line is read. */
	cr_expect_str_eq(exec_in(pt, root, 602, 1, 3, 1, "4:memory:/job-a\n0::/\n")->cgroup,
			 "/job-a");
	cr_expect_str_eq(exec_in(pt, root, 603, 1, 4, 1, "4:memory:/job-b\n0::/\n")->cgroup,
			 "/job-b");
	proctree_free(pt);
	rm_tree(root);
	free(root);
}

Test(proctree, user_names_cached_and_numeric_when_unknown)
{
	struct proctree *pt = proctree_new(NULL);
	const char *root, *unknown;
	struct proctree_stats st;

	cr_assert_not_null(pt);
	root = proctree_user_name(pt, 0);
	cr_expect_str_eq(root, "root");
	unknown = proctree_user_name(pt, 3999999999u);
	cr_expect_str_eq(unknown, "3999999999");
	cr_expect_eq(proctree_user_name(pt, 0), root); /* cached */
	stats(pt, &st);
	cr_expect_eq(st.user_names, 2);

	/* LRU: a name stays valid for the next PROCTREE_USER_CACHE - 1 lookups. */
	for (uint32_t u = 0; u < PROCTREE_USER_CACHE - 1; u++)
		proctree_user_name(pt, 2000000000u + u);
	cr_expect_str_eq(root, "root");
	/* Far more distinct uids than the cache holds: bounded. */
	for (uint32_t u = 0; u < 3 * PROCTREE_USER_CACHE; u++) {
		char want[16];

		snprintf(want, sizeof(want), "%u", 3000000000u + u);
		cr_expect_str_eq(proctree_user_name(pt, 3000000000u + u), want);
	}
	stats(pt, &st);
	cr_expect_eq(st.user_names, PROCTREE_USER_CACHE);
	cr_expect_str_eq(proctree_user_name(pt, 0), "root");
	proctree_free(pt);
}

/* ---- memory ------------------------------------------------------------------ */

/* Budget for 10,000 live processes: the proctree's share of the defender's 32 MiB. */
#define BUDGET_10K (4u << 20)

Test(proctree, memory_for_10000_processes_within_budget)
{
	static const char *const exes[] = {
	    "/usr/bin/bash",
	    "/usr/sbin/nginx",
	    "/usr/bin/python3.11",
	    "/usr/lib/postgresql/15/bin/postgres",
	    "/usr/bin/containerd-shim-runc-v2",
	    "/usr/sbin/sshd",
	    "/usr/bin/sleep",
	    "/usr/lib/systemd/systemd-journald",
	};
	static const char *const cwds[] = {"/", "/srv/app", "/var/lib/postgresql", "/root"};
	char *root = make_tmpdir();
	struct proctree_limits lim = {.proc_root = root};
	struct proctree *pt;
	struct proctree_stats st;
	struct mallinfo2 before = mallinfo2(), after;
	size_t heap;

	pt = proctree_new(&lim);
	cr_assert_not_null(pt);
	for (uint32_t i = 0; i < 10000; i++) {
		char args[128];
		int alen = snprintf(args, sizeof(args),
				    "%s%c--worker%c%u%c--config=/etc/app/worker-%u.conf",
				    strrchr(exes[i % 8], '/') + 1, 0, 0, i, 0, i % 97);
		struct proctree_exec ev = {
		    .pid = 10000 + i,
		    .ppid = 10000 + i / 2,
		    .start_ns = 1000000 + i,
		    .uid = i % 5,
		    .euid = i % 5,
		    .comm = "worker",
		    .filename = exes[i % 8],
		    .filename_len = strlen(exes[i % 8]),
		    .args = args,
		    .args_len = (size_t)alen + 1,
		    .cwd = cwds[i % 4],
		    .cwd_len = strlen(cwds[i % 4]),
		    .tty = i % 10 ? "" : "pts0",
		    .cgroup_id = 0,
		};
		cr_assert_eq(proctree_on_exec(pt, &ev), 0);
	}
	after = mallinfo2();
	stats(pt, &st);
	cr_expect_eq(st.live, 10000);
	heap = (after.uordblks + after.hblkhd) - (before.uordblks + before.hblkhd);
	cr_log_info("10,000 live entries: stats.bytes = %llu (%.1f KiB, %llu bytes/entry), "
		    "%llu distinct strings holding %llu bytes; malloc'd per mallinfo2: %zu; "
		    "sizeof(struct proc_entry) = %zu",
		    (unsigned long long)st.bytes, st.bytes / 1024.0,
		    (unsigned long long)(st.bytes / 10000), (unsigned long long)st.strings,
		    (unsigned long long)st.string_bytes, heap, sizeof(struct proc_entry));
	cr_expect_lt(st.bytes, BUDGET_10K, "%llu bytes", (unsigned long long)st.bytes);
	/* 8 exes + 4 cwds + 1 tty + 10,000 distinct args */
	cr_expect_eq(st.strings, 8 + 4 + 1 + 10000);
#if !defined(__SANITIZE_ADDRESS__)
	/* The estimate tracks what malloc really holds (mallinfo2 is meaningless under ASan). */
	cr_expect(heap > 0 && st.bytes > heap * 8 / 10 && st.bytes < heap * 12 / 10,
		  "estimate %llu vs malloc %zu", (unsigned long long)st.bytes, heap);
#endif
	/* Everything exits and expires: the string bytes go back. */
	for (uint32_t i = 0; i < 10000; i++)
		proctree_on_exit(pt, 10000 + i, 1000000 + i, 0, 1);
	cr_expect_eq(proctree_expire(pt, 1 + PROCTREE_GRACE_NS_DEFAULT), 10000);
	stats(pt, &st);
	cr_expect_eq(st.entries, 0);
	cr_expect_eq(st.strings, 0);
	cr_expect_eq(st.string_bytes, 0);
	proctree_free(pt);
	rm_tree(root);
	free(root);
}
