/* SPDX-License-Identifier: Apache-2.0 */
/*
 * capture_bench: what the defender's capture costs the processes it watches.
 *
 * Runs syscall loops (exec, read-only open, write open, loopback connect) in
 * child processes, rounds without and with `vigil-defender --events-json`
 * running, and reports the median wall-time ratio per loop as in the design's
 * "Cost" table.  Then it checks that the defender delivers every event of a
 * generator paced to >= 100,000 events/s, and how much memory the defender
 * holds with 10,000 live processes.  It reports and does not gate: exit 0
 * whenever it could run, 1 when it could not, 2 on bad usage.  README.md next
 * to this file gives the defender's side of the contract.
 *
 * With --console the defender runs as the quick start runs it: connected to
 * a console with its private PostgreSQL on the same machine, learning on,
 * batches spooled and sent over mutual TLS; each run then also waits until
 * the console has every batch and reports what an event cost the
 * defender, the console and PostgreSQL in CPU (issue 15, "the cost of an
 * event, end to end").
 *
 * Every child is tracked by PID until it is reaped, and only those PIDs are
 * ever killed: every exit path (normal, error, SIGINT/SIGTERM/SIGHUP) SIGKILLs
 * and reaps them, and each child has PR_SET_PDEATHSIG in case the bench dies.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#ifdef VIGIL_HAVE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "floor.skel.h"
#endif
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define READY_TIMEOUT_MS     10000
#define MEM_READY_TIMEOUT_MS 30000 /* the defender may walk /proc for 10,000 processes first */
#define STOP_TIMEOUT_MS	     10000
#define RUN_TIMEOUT_MS	     120000
#define MAX_ROUNDS	     99
#define LINE_MAX_BYTES	     65536  /* longer lines are counted, their tail ignored */
#define RATE_TARGET	     100000 /* events/s the design delivers without drops */
#define RATE_OFFER	     110000 /* what the generator paces itself to: a margin over it */
#define RATE_WORKERS	     2
#define MEM_PROCS	     10000
#define MEM_BATCH	     500
#define MEM_TARGET_MIB	     32.0
#define MEM_CHILD_LIFE_S     900 /* a sleeper ends itself even if every cleanup failed */
#define TRACK_MAX	     (MEM_PROCS + 64)

struct opts {
	const char *defender;
	int rounds, quick, json;
	const char *only; /* comma-separated parts to run; NULL: all */
};

struct workload {
	const char *name;
	long count; /* iterations of one run: about 1.5-2 s on the project's 2-core machines */
	double target, console_target; /* capture alone; the quick start's pipeline (--console) */
	int (*fn)(long n);
};

/* One running defender and what its stdout said.  Owned by main; the reader thread fills it. */
struct defender {
	pid_t pid;
	int fd; /* read end of its stdout */
	pthread_t reader;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int ready, eof;				/* under mu */
	char *stats;				/* under mu: the last stats line, malloc'd */
	int stop;				/* atomic: asks the reader to quit */
	unsigned long long events;		/* atomic: event lines (not ready/stats) */
	pid_t gen[RATE_WORKERS];		/* atomic: rate generator pids, 0 = none */
	unsigned long long gen_file, gen_other; /* atomic: their file / other event lines */
	size_t len;
	char line[LINE_MAX_BYTES + 1];
};

/*
 * --console: the console the defender reports to, and what each with-run
 * cost the three processes (CPU seconds, summed over the rounds of a
 * workload) for how many events.
 */
struct pipeline_cost {
	double defender_s, console_s, pg_s;
	double idle_defender_s; /* the defender's idle CPU per second, summed over the runs */
	unsigned long long events;
	long hwm_kb; /* the defender's peak RSS, largest over the runs */
};

static bool g_console;
static char g_cdir[H_PATH], g_conf[H_PATH];
static struct h_pki g_pki;
static struct h_console g_con;
static struct pipeline_cost g_cost;

static pid_t g_parent;
static char g_tmpdir[] = "/tmp/vigil-bench.XXXXXX";
static char g_ratedir[RATE_WORKERS][64]; /* on tmpfs when there is one: ext4 creates cost 3x */
static volatile double *g_shared;	 /* MAP_SHARED: seconds each child's loop took */
static pid_t g_tracked[TRACK_MAX];	 /* our unreaped children: the only pids we kill */
static volatile int g_ntracked;
static struct defender g_def;
static FILE *g_out;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Remember a child so every exit path can kill it.  0, or -ENOSPC after killing it. */
static int track(pid_t pid)
{
	if (g_ntracked >= TRACK_MAX) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -ENOSPC;
	}
	g_tracked[g_ntracked++] = pid;
	return 0;
}

/* Forget a child; called before reaping it, so a reused pid is never killed. */
static void untrack(pid_t pid)
{
	for (int i = 0; i < g_ntracked; i++)
		if (g_tracked[i] == pid)
			g_tracked[i] = 0;
	while (g_ntracked > 0 && g_tracked[g_ntracked - 1] == 0)
		g_ntracked--;
}

/* Async-signal-safe: SIGKILL and reap every tracked child. */
static void reap_tracked(void)
{
	for (int i = 0; i < g_ntracked; i++)
		if (g_tracked[i] > 0)
			kill(g_tracked[i], SIGKILL);
	for (int i = g_ntracked - 1; i >= 0; i--) {
		pid_t pid = g_tracked[i];
		g_tracked[i] = 0;
		g_ntracked = i;
		while (pid > 0 && waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
}

/* Async-signal-safe (no opendir): empty a flat directory of ours and remove it. */
static void rm_dir(const char *path)
{
	char buf[4096];
	long n;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	for (int pass = 0; fd >= 0 && pass < 100000; pass++) {
		if ((n = (long)getdents64(fd, buf, sizeof(buf))) <= 0)
			break;
		for (long off = 0; off < n;) {
			struct dirent64 *e = (struct dirent64 *)(buf + off);
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				unlinkat(fd, e->d_name, 0);
			off += e->d_reclen;
		}
	}
	if (fd >= 0)
		close(fd);
	rmdir(path);
}

/* Every exit path, signals included: kill and reap our children, remove our directories. */
static void cleanup(void)
{
	if (getpid() != g_parent)
		return;
	reap_tracked();
	if (g_con.pid > 0) { /* ours: started by h_console_start */
		kill(g_con.pid, SIGTERM);
		while (waitpid(g_con.pid, NULL, 0) < 0 && errno == EINTR)
			;
		g_con.pid = 0;
	}
	for (int w = 0; w < RATE_WORKERS; w++)
		if (g_ratedir[w][0])
			rm_dir(g_ratedir[w]);
	rm_dir(g_tmpdir);
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* First thing in every forked child: default signals, die with the bench. */
static void child_reset(void)
{
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != g_parent)
		_exit(1);
}

/*
 * Wait up to timeout_ms for our child pid, SIGKILL it when it overstays, reap
 * it either way.  Returns 0 or -ETIMEDOUT; *ret_status is the wait status.
 */
static int wait_child(pid_t pid, int timeout_ms, int *ret_status)
{
	int rc = 0, st = 0, fd = (int)syscall(SYS_pidfd_open, pid, 0);
	double deadline = now_s() + timeout_ms / 1000.0;

	for (;;) {
		siginfo_t si = {0};
		struct pollfd p = {.fd = fd, .events = POLLIN};
		double left = deadline - now_s();

		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
		    si.si_pid == pid)
			break;
		if (left <= 0) {
			kill(pid, SIGKILL);
			rc = -ETIMEDOUT;
			break;
		}
		/* The pidfd wakes us at exit; without one (old kernel), look every 5 ms. */
		poll(&p, fd >= 0, fd >= 0 ? (int)(left * 1000) + 1 : 5);
	}
	if (fd >= 0)
		close(fd);
	untrack(pid);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	*ret_status = st;
	return rc;
}

static const char *status_str(int st, char *buf, size_t size)
{
	if (WIFEXITED(st))
		snprintf(buf, size, "exited with status %d", WEXITSTATUS(st));
	else
		snprintf(buf, size, "was killed by signal %d", WTERMSIG(st));
	return buf;
}

/* ---- workloads: each runs in a child the bench forks; 0 on success ---- */

static int wl_exec(long n)
{
	char *const argv[] = {"/bin/true", NULL}, *const envp[] = {NULL};

	for (long i = 0; i < n; i++) {
		int st;
		pid_t pid = fork();
		if (pid == 0) {
			execve("/bin/true", argv, envp);
			_exit(127);
		}
		if (pid < 0 || waitpid(pid, &st, 0) < 0 || st != 0)
			return -1;
	}
	return 0;
}

/* Read-only opens of one ordinary file: the kernel side should drop the repeats early. */
static int wl_open(long n)
{
	for (long i = 0; i < n; i++) {
		int fd = open("/etc/hostname", O_RDONLY);
		if (fd < 0)
			return -1;
		close(fd);
	}
	return 0;
}

/* Write opens that must all be delivered: 15 truncations, then an unlink and a fresh create. */
static int wl_open_write(long n)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/ow", g_tmpdir);
	for (long i = 0; i < n; i++) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0)
			return -1;
		close(fd);
		if ((i & 15) == 15 && unlink(path) < 0)
			return -1;
	}
	unlink(path);
	return 0;
}

/*
 * Loopback TCP connect + accept + close, the listener in the same process: a
 * loopback handshake completes inside connect(), so accept() does not block
 * (if it ever did, the run's timeout kills this child).
 */
static int wl_connect(long n)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 128) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &alen) < 0)
		return -1;
	for (long i = 0; i < n; i++) {
		int s = -1, c = socket(AF_INET, SOCK_STREAM, 0);
		if (c >= 0 && connect(c, (struct sockaddr *)&a, sizeof(a)) == 0)
			s = accept(l, NULL, NULL);
		if (s >= 0)
			close(s);
		if (c >= 0)
			close(c);
		if (s < 0)
			return -1;
	}
	return 0;
}

/* A syscall the defender does not watch: what its hook on every syscall's exit taxes it. */
static int wl_getppid(long n)
{
	for (long i = 0; i < n; i++)
		if (syscall(SYS_getppid) < 0)
			return -1;
	return 0;
}

static const struct workload workloads[] = {
    {"exec", 2000, 1.05, 1.05, wl_exec},
    {"open", 500000, 1.15, 1.15, wl_open},
    {"open-write", 160000, 1.15, 1.15, wl_open_write},
    {"connect", 25000, 1.05, 1.10, wl_connect},
    /* No target: what every unwatched syscall on the host pays. */
    {"getppid", 4000000, 0, 0, wl_getppid},
};

/* One run of w in a fresh child; *ret_s is the loop's wall time as the child measured it. */
static int run_workload(const struct workload *w, long n, double *ret_s)
{
	char buf[64];
	int st, rc;
	pid_t pid = fork();

	if (pid == 0) {
		child_reset();
		double t0 = now_s();
		rc = w->fn(n);
		g_shared[0] = now_s() - t0;
		_exit(rc ? 1 : 0);
	}
	if (pid < 0 || track(pid) < 0)
		return -1;
	rc = wait_child(pid, RUN_TIMEOUT_MS, &st);
	if (rc < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "capture_bench: a %s run failed: %s\n", w->name,
			rc < 0 ? "timed out, killed" : status_str(st, buf, sizeof(buf)));
		return -1;
	}
	*ret_s = g_shared[0];
	return 0;
}

/* ---- the defender: start, drain its stdout, stop ---- */

static void reader_line(struct defender *d, char *s, size_t n)
{
	size_t head = n < 64 ? n : 64;
	int ready = memmem(s, head, "\"type\":\"ready\"", 14) != NULL;
	const char *p;
	long pid;

	s[n] = '\0';
	if (g_console) { /* its log: ready once the console has its hello */
		if (strstr(s, "registered with the console")) {
			pthread_mutex_lock(&d->mu);
			d->ready = 1;
			pthread_cond_broadcast(&d->cv);
			pthread_mutex_unlock(&d->mu);
		} else if (strstr(s, " warn") || strstr(s, " error")) {
			fprintf(stderr, "capture_bench: defender: %s\n", s);
		}
		return;
	}
	if (ready || memmem(s, head, "\"type\":\"stats\"", 14)) {
		pthread_mutex_lock(&d->mu);
		if (ready) {
			d->ready = 1;
			pthread_cond_broadcast(&d->cv);
		} else {
			free(d->stats);
			d->stats = strdup(s);
		}
		pthread_mutex_unlock(&d->mu);
		return;
	}
	__atomic_add_fetch(&d->events, 1, __ATOMIC_RELAXED);
	if (!__atomic_load_n(&d->gen[0], __ATOMIC_ACQUIRE) || !(p = strstr(s, "\"pid\":")))
		return;
	pid = strtol(p + 6, NULL, 10);
	for (int i = 0; i < RATE_WORKERS; i++)
		if (pid > 0 && __atomic_load_n(&d->gen[i], __ATOMIC_RELAXED) == pid)
			__atomic_add_fetch(strstr(s, "\"type\":\"file\"") ? &d->gen_file
									  : &d->gen_other,
					   1, __ATOMIC_RELAXED);
}

/* Drains the defender's stdout until EOF or d->stop, so the defender never blocks on it. */
static void *reader_main(void *arg)
{
	static char buf[1 << 16];
	struct defender *d = arg;

	while (!__atomic_load_n(&d->stop, __ATOMIC_ACQUIRE)) {
		struct pollfd p = {.fd = d->fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, 100) <= 0)
			continue;
		if ((n = read(d->fd, buf, sizeof(buf))) < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (char *s = buf, *end = buf + n; s < end;) {
			char *nl = memchr(s, '\n', (size_t)(end - s));
			size_t k = (size_t)((nl ? nl : end) - s);
			if (k > LINE_MAX_BYTES - d->len)
				k = LINE_MAX_BYTES - d->len;
			memcpy(d->line + d->len, s, k);
			d->len += k;
			if (!nl)
				break;
			reader_line(d, d->line, d->len);
			d->len = 0;
			s = nl + 1;
		}
	}
	pthread_mutex_lock(&d->mu);
	d->eof = 1;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

/* Wait up to ms for *flag (under d->mu) or EOF; returns the flag. */
static int defender_wait(struct defender *d, const int *flag, int ms)
{
	struct timespec dl;
	int v;

	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += ms / 1000 + (dl.tv_nsec + (ms % 1000) * 1000000L) / 1000000000L;
	dl.tv_nsec = (dl.tv_nsec + (ms % 1000) * 1000000L) % 1000000000L;
	pthread_mutex_lock(&d->mu);
	while (!*flag && !d->eof && pthread_cond_timedwait(&d->cv, &d->mu, &dl) != ETIMEDOUT)
		;
	v = *flag;
	pthread_mutex_unlock(&d->mu);
	return v;
}

/* After the defender is reaped: give the reader 2 s to reach EOF, then stop it anyway. */
static void defender_join(struct defender *d)
{
	defender_wait(d, &d->eof, 2000);
	__atomic_store_n(&d->stop, 1, __ATOMIC_RELEASE);
	pthread_join(d->reader, NULL);
	close(d->fd);
	d->pid = 0;
}

/* One more argument for the defender (--defender-arg, --rules100), or NULL. */
static const char *defender_arg;

/*
 * A 100-rule set as a busy fleet might hold (--rules100): one rule that
 * prevents deviations from the models of one service (so every exec on the
 * host is held for a decision), 98 rules for other services with exec, file
 * and network deny lists, and a host-wide rule with 64 denied networks that
 * every connect of the loops is checked against.  None names what the
 * loops do: this measures the cost of holding and deciding, not of refusing.
 */
static int write_rules100(const char *path, bool with_model)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return -1;
	fprintf(f, "{\"format\": \"vigil-rules/1\", \"version\": 1, \"rules\": [\n");
	fprintf(f,
		" {\"name\": \"cron-model-only\", \"scope\": {\"services\":"
		" [\"cron.service\"]}, \"processes\": {\"deviation\": \"%s\"}},\n",
		with_model ? "prevent" : "alert");
	for (int i = 0; i < 98; i++)
		fprintf(f,
			" {\"name\": \"svc-%d\", \"scope\": {\"services\": [\"svc-%d.service\"]},"
			" \"processes\": {\"deny\": {\"effect\": \"prevent\", \"executables\":"
			" [\"/usr/bin/nc\", \"/usr/bin/ncat\", \"/usr/bin/socat\"]}},"
			" \"files\": {\"deny\": {\"effect\": \"prevent\", \"read\":"
			" [\"/etc/shadow\", \"/etc/gshadow\"], \"write\": [\"/etc/cron.d/*\","
			" \"/etc/sudoers\"]}}, \"network\": {\"deny\": {\"effect\": \"block\","
			" \"connect\": [\"198.51.100.%d/32:3333\"], \"listen\": [\"tcp:%d\"]}}},\n",
			i, i, i + 1, 40000 + i);
	fprintf(f, " {\"name\": \"host-wide\", \"network\": {\"deny\": {\"effect\":"
		   " \"prevent\", \"connect\": [");
	for (int i = 0; i < 64; i++)
		fprintf(f, "%s\"203.0.%d.0/24:%d\"", i ? ", " : "", i, 1000 + i);
	fprintf(f, "]}}, \"files\": {\"deny\": {\"effect\": \"prevent\","
		   " \"write\": [\"/etc/passwd\", \"/etc/group\"]}}}\n]}\n");
	return fclose(f) == 0 ? 0 : -1;
}

/* Start `path --events-json --stats-interval-ms 0`, wait for its ready line.  0 or -1. */
static int defender_start(struct defender *d, const char *path, int ready_ms)
{
	char buf[64];
	int p[2], st;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
		fprintf(stderr, "capture_bench: cannot start the defender: %s\n", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		child_reset();
		if (nul < 0 || dup2(nul, 0) < 0)
			_exit(127);
		if (g_console) { /* its log on the pipe; stdout (nothing) to /dev/null */
			if (dup2(p[1], 2) < 0 || dup2(nul, 1) < 0)
				_exit(127);
			execl(path, path, "--config", g_conf, defender_arg, (char *)NULL);
		}
		if (dup2(p[1], 1) < 0) /* stderr: ours */
			_exit(127);
		/* defender_arg NULL ends the list where it stands. */
		execl(path, path, "--events-json", "--stats-interval-ms", "0", defender_arg,
		      (char *)NULL);
		dprintf(2, "exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	close(p[1]);
	d->ready = d->eof = d->stop = 0;
	d->events = d->gen_file = d->gen_other = 0;
	memset(d->gen, 0, sizeof(d->gen));
	free(d->stats);
	d->stats = NULL;
	d->len = 0;
	d->pid = pid;
	d->fd = p[0];
	if (track(pid) < 0 || pthread_create(&d->reader, NULL, reader_main, d) != 0) {
		if (g_ntracked > 0 && g_tracked[g_ntracked - 1] == pid) /* else track() reaped it */
			wait_child(pid, 0, &st);
		close(p[0]);
		fprintf(stderr, "capture_bench: cannot watch the defender\n");
		return -1;
	}
	if (defender_wait(d, &d->ready, ready_ms))
		return 0;
	if (d->eof) {
		wait_child(pid, 2000, &st);
		fprintf(stderr, "capture_bench: %s %s before printing its ready line\n", path,
			status_str(st, buf, sizeof(buf)));
	} else {
		wait_child(pid, 0, &st);
		fprintf(stderr,
			"capture_bench: %s printed no {\"type\":\"ready\"} line in %d s; killed\n",
			path, ready_ms / 1000);
	}
	defender_join(d);
	return -1;
}

static void read_vm(pid_t pid, long *ret_hwm, long *ret_rss);

/* ---- --console: the console beside the defender, and what an event costs all three ---- */

#define CONSOLE_HOST	 "host-a" /* the CN of the harness's host certificate */
#define DRAIN_TIMEOUT_MS 120000
/* Fewer events than this in a loop's with-runs: their CPU is within the idle rate's noise. */
#define PER_EVENT_MIN_EVENTS 10000
#define DRAIN_HEARTBEATS     2 /* unchanged, empty spool: the console has everything */
#define IDLE_SAMPLE_US	     1000000
#define DRAIN_SETTLE_S	     1.0 /* ring poll 200 ms + batch 250 ms + flush tick, with slack */

/* A console with its private PostgreSQL, and the quick start's defender configuration for it. */
static void console_setup(void)
{
	FILE *f;

	h_tmpdir(g_cdir);
	h_pki_make(g_cdir, &g_pki);
	h_console_start(&g_con, g_cdir, &g_pki, NULL);
	snprintf(g_conf, sizeof(g_conf), "%s/defender.conf", g_cdir);
	if ((f = fopen(g_conf, "we")) == NULL) {
		fprintf(stderr, "capture_bench: %s: %s\n", g_conf, strerror(errno));
		exit(1);
	}
	/* deploy/quickstart.sh's file, on this console and state directory. */
	fprintf(f,
		"console = %s\nca = %s\ncert = %s\nkey = %s\nstate_dir = %s/defender\n"
		"label = env=bench\nlearn_window = 24h\n",
		g_con.listen, g_pki.ca, g_pki.host_cert, g_pki.host_key, g_cdir);
	if (fclose(f) != 0) {
		fprintf(stderr, "capture_bench: %s: %s\n", g_conf, strerror(errno));
		exit(1);
	}
}

/* At a normal exit (not on a signal: not async-signal-safe), after the console stopped. */
static void console_remove(void)
{
	if (g_con.pid > 0) {
		kill(g_con.pid, SIGTERM);
		while (waitpid(g_con.pid, NULL, 0) < 0 && errno == EINTR)
			;
		g_con.pid = 0;
	}
	if (g_cdir[0] != '\0')
		h_rmrf(g_cdir);
}

/*
 * CPU seconds of pid's live threads, from the scheduler's own count in
 * nanoseconds (/proc/PID/task/TID/schedstat): /proc/PID/stat counts in clock
 * ticks of 10 ms, and a defender spends 100-200 ms on a loop, so ticks made
 * its CPU per event vary by half from one run to the next.  -1 if gone.
 */
static double threads_cpu_s(pid_t pid)
{
	char path[64], line[128];
	unsigned long long ns, sum = 0;
	struct dirent *e;
	DIR *d;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.16s/schedstat", (int)pid, e->d_name);
		if ((f = fopen(path, "re")) == NULL)
			continue; /* the thread ended meanwhile */
		if (fgets(line, sizeof(line), f) != NULL && sscanf(line, "%llu", &ns) == 1)
			sum += ns;
		fclose(f);
	}
	closedir(d);
	return (double)sum / 1e9;
}

/*
 * CPU seconds of pid (its live threads; with the ticks of its reaped
 * children when children is set), -1 if gone.
 */
static double cpu_s(pid_t pid, bool children)
{
	char path[64], buf[1024], *p;
	unsigned long long cut, cst;
	double threads;
	FILE *f;
	int n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	n = fgets(buf, sizeof(buf), f) != NULL;
	fclose(f);
	/* After the command, which may hold spaces and parentheses: the last ')'. */
	if (!n || (p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %llu %llu", &cut,
		   &cst) != 2 ||
	    (threads = threads_cpu_s(pid)) < 0)
		return -1;
	return threads + (children ? (double)(cut + cst) / (double)sysconf(_SC_CLK_TCK) : 0);
}

static pid_t ppid_of(pid_t pid)
{
	char path[64], buf[512], *p;
	int ppid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "re")) == NULL)
		return 0;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')))
		sscanf(p + 2, "%*c %d", &ppid);
	fclose(f);
	return ppid;
}

/*
 * The console's PostgreSQL: its postmaster (a child of the console) with
 * the backends it has reaped, and its live backends.
 */
static double pg_cpu_s(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t pm[8];
	int npm = 0;
	double sum = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) && npm < 8) {
		pid_t pid = (pid_t)atoi(e->d_name);
		if (pid > 0 && ppid_of(pid) == g_con.pid)
			pm[npm++] = pid;
	}
	for (int i = 0; i < npm; i++) {
		double c = cpu_s(pm[i], true);
		sum += c > 0 ? c : 0;
	}
	rewinddir(d);
	while ((e = readdir(d))) {
		pid_t pid = (pid_t)atoi(e->d_name), pp = pid > 0 ? ppid_of(pid) : 0;
		for (int i = 0; i < npm; i++)
			if (pp == pm[i]) {
				double c = cpu_s(pid, false);
				sum += c > 0 ? c : 0;
			}
	}
	closedir(d);
	return sum;
}

/* The host's capture counters as the console last stored them (new ref), and when. */
static json_t *console_counters(PGconn *db, double *ret_seen)
{
	PGresult *r = PQexec(db, "SELECT capture::text, extract(epoch FROM last_seen)"
				 " FROM hosts WHERE host_id = '" CONSOLE_HOST "'");
	json_t *j = NULL;

	*ret_seen = 0;
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
		j = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
		*ret_seen = atof(PQgetvalue(r, 0, 1));
	}
	PQclear(r);
	return j;
}

static long long counter(json_t *c, const char *group, const char *key)
{
	json_t *v = json_object_get(json_object_get(c, group), key);
	return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

static unsigned long long delivered_sum(json_t *c)
{
	const char *k;
	json_t *v;
	unsigned long long n = 0;

	json_object_foreach(json_object_get(c, "delivered"), k, v)
	{
		if (json_is_integer(v) && json_integer_value(v) > 0)
			n += (unsigned long long)json_integer_value(v);
	}
	return n;
}

/*
 * A barrier, not a sleep: wait until heartbeats sent a settle after the run
 * ended say twice in a row that nothing is waiting in the spool and nothing
 * new was spooled in between (everything read from the ring is acknowledged
 * by the console).  Returns the last counters (new ref), NULL on timeout.
 */
static json_t *console_drained(double run_end_wall)
{
	PGconn *db = h_db(&g_con);
	json_t *last = NULL;
	long long spooled = -1;
	double seen_at = 0;
	int steady = 0;

	for (long long until = h_now_ms() + DRAIN_TIMEOUT_MS; h_now_ms() < until; h_sleep_ms(100)) {
		double seen;
		json_t *c = console_counters(db, &seen);
		/* After the run and a settle: its last events are read and batched by then. */
		if (c == NULL || seen <= run_end_wall + DRAIN_SETTLE_S || seen == seen_at) {
			json_decref(c);
			continue;
		}
		seen_at = seen;
		/* batches_acked may exceed batches_spooled: it counts the previous
		 * defender's last batches too, which this one sent from the spool. */
		long long sp = counter(c, "delivery", "batches_spooled");
		bool empty = counter(c, "delivery", "spool_pending") == 0;
		steady = empty && sp == spooled ? steady + 1 : 0;
		spooled = sp;
		json_decref(last);
		last = c;
		if (steady >= DRAIN_HEARTBEATS - 1 && empty)
			break;
	}
	PQfinish(db);
	if (steady < DRAIN_HEARTBEATS - 1) {
		char *text =
		    last ? json_dumps(json_object_get(last, "delivery"), JSON_COMPACT) : NULL;
		fprintf(stderr,
			"capture_bench: the console did not get every batch within %d s (last"
			" heartbeat's delivery counters: %s)\n",
			DRAIN_TIMEOUT_MS / 1000, text ? text : "none after the run");
		free(text);
		json_decref(last);
		return NULL;
	}
	return last;
}

static double wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * One with-run under --console: the loop, then the barrier; adds what the
 * run cost (the defender's CPU from the loop's start until the console had
 * everything, the console's and PostgreSQL's over the same span) to g_cost.
 * The counters the console holds become the defender's stats (new ref).
 */
/* CPU seconds per second each of the three spends over IDLE_SAMPLE_US of doing nothing. */
static void idle_rates(double *ret_d, double *ret_c, double *ret_p)
{
	double d0 = cpu_s(g_def.pid, false), c0 = cpu_s(g_con.pid, false), p0 = pg_cpu_s();
	double t0 = now_s(), span;

	nap_us(IDLE_SAMPLE_US);
	span = now_s() - t0;
	*ret_d = (cpu_s(g_def.pid, false) - d0) / span;
	*ret_c = (cpu_s(g_con.pid, false) - c0) / span;
	*ret_p = (pg_cpu_s() - p0) / span;
}

static double min2(double a, double b)
{
	return a < b ? a : b;
}

static int console_run(const struct workload *w, long n, double *ret_s, json_t **ret_stats)
{
	double d0, c0, p0, t0, di, ci, pi, di2, ci2, pi2, span;
	long hwm = -1, rss = -1;
	json_t *after;
	int rc;

	/*
	 * What the three spend idle (heartbeats, the console's sweeps) goes on
	 * through the loop and the wait for the barrier below, and is not the
	 * events' cost: it is reported on its own.  Sampled for a second before
	 * the loop and again after the barrier, and the lower of the two taken
	 * off, so that a defender still settling after its start (or anything
	 * else that happened to run in one window) cannot make an event look
	 * cheaper than it is.
	 */
	idle_rates(&di, &ci, &pi);
	d0 = cpu_s(g_def.pid, false), c0 = cpu_s(g_con.pid, false), p0 = pg_cpu_s();
	t0 = now_s();
	if ((rc = run_workload(w, n, ret_s)) != 0)
		return rc;
	if ((after = console_drained(wall_s())) == NULL)
		return -1;
	span = now_s() - t0; /* the loop and the wait after it */
	d0 = cpu_s(g_def.pid, false) - d0;
	c0 = cpu_s(g_con.pid, false) - c0;
	p0 = pg_cpu_s() - p0;
	idle_rates(&di2, &ci2, &pi2);
	di = min2(di, di2), ci = min2(ci, ci2), pi = min2(pi, pi2);
	g_cost.defender_s += d0 - di * span;
	g_cost.console_s += c0 - ci * span;
	g_cost.pg_s += p0 - pi * span;
	g_cost.idle_defender_s += di;
	/* This defender's, since it started a moment before the loop: the loop's and a few more. */
	g_cost.events += delivered_sum(after);
	read_vm(g_def.pid, &hwm, &rss);
	if (hwm > g_cost.hwm_kb)
		g_cost.hwm_kb = hwm;
	*ret_stats = after;
	return 0;
}

/* SIGTERM the defender, reap it (SIGKILL after 10 s), parse its stats line: new ref or NULL. */
static json_t *defender_stop(struct defender *d)
{
	json_error_t e;
	json_t *j = NULL;
	char buf[64];
	int st;

	kill(d->pid, SIGTERM);
	if (wait_child(d->pid, STOP_TIMEOUT_MS, &st) < 0)
		fprintf(stderr,
			"capture_bench: the defender did not exit in %d s after SIGTERM; killed\n",
			STOP_TIMEOUT_MS / 1000);
	else if (!WIFEXITED(st) || WEXITSTATUS(st))
		fprintf(stderr, "capture_bench: the defender %s on SIGTERM\n",
			status_str(st, buf, sizeof(buf)));
	defender_join(d);
	if (g_console) /* its counters are the console's (console_run) */
		return NULL;
	if (!d->stats)
		fprintf(stderr,
			"capture_bench: the defender printed no {\"type\":\"stats\"} line\n");
	else if (!(j = json_loads(d->stats, 0, &e)))
		fprintf(stderr, "capture_bench: bad stats line (%s): %.200s\n", e.text, d->stats);
	return j;
}

static long long stat_get(json_t *stats, const char *group, const char *key)
{
	json_t *v = json_object_get(json_object_get(stats, group), key);
	return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

/* Events lost (not delivered), -1 when the stats line does not say. */
static long long stats_lost(json_t *s)
{
	long long rb = stat_get(s, "drops", "ringbuf_full"), sc = stat_get(s, "drops", "scratch");
	return rb < 0 || sc < 0 ? -1 : rb + sc;
}

static void print_stats(json_t *s)
{
	if (!s) {
		fprintf(g_out, "            no stats line from the defender: drops unknown\n");
		return;
	}
	fprintf(g_out,
		"            drops: ringbuf_full %lld scratch %lld; cut: path %lld "
		"args %lld; filtered: self %lld read_repeat %lld read_failed %lld\n",
		stat_get(s, "drops", "ringbuf_full"), stat_get(s, "drops", "scratch"),
		stat_get(s, "drops", "path_truncated"), stat_get(s, "drops", "args_truncated"),
		stat_get(s, "filtered", "self"), stat_get(s, "filtered", "read_repeat"),
		stat_get(s, "filtered", "read_failed"));
}

static json_t *json_lost(long long lost)
{
	return lost < 0 ? json_null() : json_integer(lost);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(const double *v, int n, double *tmp)
{
	memcpy(tmp, v, (size_t)n * sizeof(*v));
	qsort(tmp, (size_t)n, sizeof(*tmp), cmp_double);
	return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

static json_t *json_doubles(const double *v, int n)
{
	json_t *a = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(a, json_real(v[i]));
	return a;
}

/* Add the counters of one defender session's stats line into sum (a new object on first use). */
static void stats_add(json_t **sum, json_t *s)
{
	const char *group;
	json_t *members;

	if (s == NULL)
		return;
	if (*sum == NULL) {
		*sum = json_deep_copy(s);
		return;
	}
	json_object_foreach(s, group, members)
	{
		const char *key;
		json_t *v, *into = json_object_get(*sum, group);

		if (!json_is_object(members) || !json_is_object(into))
			continue;
		json_object_foreach(members, key, v)
		{
			json_t *t = json_object_get(into, key);
			if (json_is_integer(v) && json_is_integer(t) && json_integer_value(t) >= 0)
				json_integer_set(t, json_integer_value(v) < 0
							? -1
							: json_integer_value(t) +
							      json_integer_value(v));
		}
	}
}

/* --per-syscall-floor: also measure the floor of per-syscall exit tracepoints. */
static bool g_per_syscall_floor;

/* The syscalls the defender's sys_exit handles (bpf/capture.bpf.c, watched()). */
static const char *const exit_syscalls[] = {
    "open",	"creat",     "openat",	"openat2", "unlink",  "unlinkat",  "rmdir", "rename",
    "renameat", "renameat2", "link",	"linkat",  "symlink", "symlinkat", "chmod", "fchmod",
    "fchmodat", "fchmodat2", "chown",	"fchown",  "lchown",  "fchownat",  "mkdir", "mkdirat",
    "truncate", "ftruncate", "connect", "accept",  "accept4", "bind",	   "listen"};
#define EXIT_SYSCALLS (sizeof(exit_syscalls) / sizeof(exit_syscalls[0]))

/*
 * One run with capture's floor attached (floor.bpf.c: an empty program on
 * sys_exit, or with per_syscall one on each watched syscall's
 * sys_exit_<name>) into *ret_s.  Returns 0, or 1 when there is no floor to
 * measure (built without BPF, or it cannot be attached: *ret_s is 0).
 */
static int run_floor_as(const struct workload *w, long n, bool per_syscall, double *ret_s)
{
	*ret_s = 0;
#ifdef VIGIL_HAVE_BPF
	struct floor_bpf *fl = floor_bpf__open();
	struct bpf_link *links[EXIT_SYSCALLS] = {0};
	int rc = 1;

	if (fl == NULL)
		return 1;
	bpf_program__set_autoattach(fl->progs.floor_exit, !per_syscall);
	if (floor_bpf__load(fl) != 0 || floor_bpf__attach(fl) != 0)
		goto out;
	for (size_t i = 0; per_syscall && i < EXIT_SYSCALLS; i++) {
		char tp[64];
		snprintf(tp, sizeof(tp), "sys_exit_%s", exit_syscalls[i]);
		/* A syscall this kernel does not have (NULL: not attached) is left out. */
		links[i] = bpf_program__attach_tracepoint(fl->progs.floor_exit_one, "syscalls", tp);
	}
	rc = run_workload(w, n, ret_s);
out:
	for (size_t i = 0; i < EXIT_SYSCALLS; i++)
		bpf_link__destroy(links[i]);
	floor_bpf__destroy(fl);
	return rc;
#else
	(void)w;
	(void)n;
	(void)per_syscall;
	return 1;
#endif
}

static int run_floor(const struct workload *w, long n, double *ret_s)
{
	return run_floor_as(w, n, false, ret_s);
}

/*
 * The defender's own time in the kernel, free of this VM's drift: BPF run-time
 * statistics (BPF_ENABLE_STATS: on while the returned fd is open, off again
 * when it closes, whatever happens to the bench) over one extra run.  They
 * add two clock reads to every program run, so that run is not one of the
 * timed ones.  The programs' own time only: the tracepoint dispatch around
 * them is what the floor measures.
 */
#define KPROGS_MAX 16

struct kprogs {
	int n;
	__u32 id[KPROGS_MAX];
	char name[KPROGS_MAX][BPF_OBJ_NAME_LEN];
	__u64 run_ns[KPROGS_MAX], runs[KPROGS_MAX];
};

#ifdef VIGIL_HAVE_BPF
/* Ids of the BPF programs loaded now, into ids (up to max); returns how many. */
static int prog_ids(__u32 *ids, int max)
{
	__u32 id = 0;
	int n = 0;

	while (n < max && bpf_prog_get_next_id(id, &id) == 0)
		ids[n++] = id;
	return n;
}

/* Fill k's counters for its programs (k->id); false when one is gone. */
static bool kprogs_read(struct kprogs *k)
{
	for (int i = 0; i < k->n; i++) {
		struct bpf_prog_info info = {0};
		__u32 len = sizeof(info);
		int fd = bpf_prog_get_fd_by_id(k->id[i]);

		if (fd < 0)
			return false;
		if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) {
			close(fd);
			return false;
		}
		close(fd);
		snprintf(k->name[i], sizeof(k->name[i]), "%s", info.name);
		k->run_ns[i] = info.run_time_ns;
		k->runs[i] = info.run_cnt;
	}
	return true;
}

/*
 * What the statistics themselves add to a program run: the run time of the
 * empty floor program over n iterations of w, per run (0 when unknown).
 */
static double stats_overhead_ns(const struct workload *w, long n)
{
	struct floor_bpf *fl = floor_bpf__open_and_load();
	struct bpf_prog_info a = {0}, b = {0};
	__u32 la = sizeof(a), lb = sizeof(b);
	double t, ns = 0;
	int fd, sfd = bpf_enable_stats(BPF_STATS_RUN_TIME);

	if (sfd >= 0 && fl != NULL && floor_bpf__attach(fl) == 0) {
		fd = bpf_program__fd(fl->progs.floor_exit);
		if (bpf_obj_get_info_by_fd(fd, &a, &la) == 0 && run_workload(w, n, &t) == 0 &&
		    bpf_obj_get_info_by_fd(fd, &b, &lb) == 0 && b.run_cnt > a.run_cnt)
			ns = (double)(b.run_time_ns - a.run_time_ns) /
			     (double)(b.run_cnt - a.run_cnt);
	}
	floor_bpf__destroy(fl);
	if (sfd >= 0)
		close(sfd);
	return ns;
}

/*
 * One run of w with a defender and run-time statistics on.  *ret_ns is the
 * defender's programs' time per loop iteration; the table goes to g_out.
 * Returns 0, or -1 when it could not be measured (said why).
 */
static int kernel_time(const struct workload *w, long n, const struct opts *o, double *ret_ns)
{
	static __u32 before[4096], after[4096];
	struct kprogs k0 = {0}, k1;
	int nb, na, sfd, rc;
	double t, total = 0, over;

	sfd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	if (sfd < 0) {
		fprintf(g_out, "            kernel time not measured: BPF_ENABLE_STATS: %s\n",
			strerror(errno));
		return -1;
	}
	nb = prog_ids(before, 4096);
	if (defender_start(&g_def, o->defender, READY_TIMEOUT_MS) < 0) {
		close(sfd);
		return -2;
	}
	/* The defender's programs: the ones that were not there before it started. */
	na = prog_ids(after, 4096);
	for (int i = 0; i < na && k0.n < KPROGS_MAX; i++) {
		bool old = false;
		for (int j = 0; j < nb && !old; j++)
			old = before[j] == after[i];
		if (!old)
			k0.id[k0.n++] = after[i];
	}
	k1 = k0;
	rc = kprogs_read(&k0) ? run_workload(w, n, &t) : -1;
	if (rc == 0 && !kprogs_read(&k1))
		rc = -1;
	json_decref(defender_stop(&g_def));
	close(sfd);
	if (rc != 0 || k0.n == 0) {
		fprintf(g_out, "            kernel time not measured: %s\n",
			k0.n == 0 ? "no programs of the defender found" : "a run failed");
		return -1;
	}
	over = stats_overhead_ns(w, n);
	fprintf(g_out,
		"            in the kernel (separate runs with BPF run-time stats, which"
		" add %.0f ns to each program run, taken off):\n            ",
		over);
	for (int i = 0; i < k1.n; i++) {
		__u64 runs = k1.runs[i] - k0.runs[i], ns = k1.run_ns[i] - k0.run_ns[i];
		double per_run = (double)ns / (double)(runs ? runs : 1) - over;
		if (runs == 0)
			continue;
		per_run = per_run > 0 ? per_run : 0;
		total += per_run * (double)runs;
		fprintf(g_out, " %s %.2f x %.0f ns;", k1.name[i], (double)runs / (double)n,
			per_run);
	}
	*ret_ns = total / (double)n;
	fprintf(g_out, " %.2f us per iteration\n", *ret_ns / 1000.0);
	return 0;
}
#endif

/*
 * One workload: r rounds, each a run with only capture's floor attached, a
 * run without the defender and a run with a defender started for it, back to
 * back; even rounds in that order, odd rounds the other way round.  This VM's
 * speed drifts by 10-40% within a minute, so the two runs of a pair must be
 * next to each other (the floor run is outside them), and alternating their
 * order cancels a steady drift instead of charging it to one side.
 */
static int bench_workload(const struct workload *w, const struct opts *o, json_t *rows)
{
	long n = o->quick ? w->count / 10 : w->count;
	int r = o->rounds, rc, nfloor = 0;
	double fl2[MAX_ROUNDS] = {0}, f2ratio[MAX_ROUNDS];
	int nfloor2 = 0;
	double wo[MAX_ROUNDS], wi[MAX_ROUNDS], fl[MAX_ROUNDS], ratio[MAX_ROUNDS],
	    fratio[MAX_ROUNDS], tmp[MAX_ROUNDS], with_total = 0, t, m_wo, m_wi, m_ratio,
						 m_floor = 0, evs, kns = 0;
	unsigned long long events = 0;
	long long lost;
	json_t *stats = NULL;
	double target = g_console ? w->console_target : w->target;

	fprintf(stderr, "capture_bench: %s: %d rounds of %ld without, floor, with\n", w->name, r,
		n);
	g_cost = (struct pipeline_cost){0};
	rc = run_workload(w, n / 10 + 1, &t); /* warm-up: page cache, dentries, TCP state */
	for (int i = 0; !rc && i < r; i++) {
		if (i % 2 == 0 && (rc = run_floor(w, n, &fl[i])) < 0)
			break;
		if (i % 2 == 0 && g_per_syscall_floor &&
		    (rc = run_floor_as(w, n, true, &fl2[i])) < 0)
			break;
		if (i % 2 == 0 && (rc = run_workload(w, n, &wo[i])) != 0)
			break;
		if (defender_start(&g_def, o->defender, READY_TIMEOUT_MS) < 0) {
			json_decref(stats);
			return -2;
		}
		json_t *one = NULL;
		if (g_console)
			rc = console_run(w, n, &wi[i], &one);
		else
			rc = run_workload(w, n, &wi[i]);
		json_t *own = defender_stop(&g_def);
		stats_add(&stats, own != NULL ? own : one);
		json_decref(own);
		json_decref(one);
		events += g_def.events;
		with_total += wi[i];
		if (!rc && i % 2 == 1 && (rc = run_workload(w, n, &wo[i])) == 0)
			rc = run_floor(w, n, &fl[i]);
		if (!rc && i % 2 == 1 && g_per_syscall_floor)
			rc = run_floor_as(w, n, true, &fl2[i]);
		rc = rc > 0 ? 0 : rc;
	}
	if (rc) {
		fprintf(g_out, "%-10s ERROR (a run failed, see stderr)\n", w->name);
		json_array_append_new(
		    rows, json_pack("{s:s, s:s}", "name", w->name, "error", "run failed"));
		json_decref(stats);
		return -1;
	}
	for (int i = 0; i < r; i++) {
		ratio[i] = wi[i] / wo[i];
		if (fl[i] > 0)
			fratio[nfloor++] = fl[i] / wo[i];
		if (fl2[i] > 0)
			f2ratio[nfloor2++] = fl2[i] / wo[i];
	}
	m_wo = median(wo, r, tmp);
	m_wi = median(wi, r, tmp);
	m_ratio = median(ratio, r, tmp);
	if (nfloor > 0)
		m_floor = median(fratio, nfloor, tmp);
	evs = (double)events / with_total;
	fprintf(g_out, "%-10s without %.2f s  with %.2f s  ratio %.3f (target <= %.2f)  %s\n",
		w->name, m_wo, m_wi, m_ratio, target,
		target <= 0	    ? "(no target)"
		: m_ratio <= target ? "PASS"
				    : "FAIL");
	if (nfloor > 0)
		fprintf(g_out,
			"            floor (an empty program on sys_exit) %.3f; the defender"
			" over the floor %.3f\n",
			m_floor, m_ratio / m_floor);
	else
		fprintf(g_out, "            floor not measured (no BPF in this build, or it could"
			       " not be attached)\n");
	if (nfloor2 > 0)
		fprintf(g_out,
			"            floor with an empty program on each watched syscall's"
			" sys_exit_<name> instead: %.3f\n",
			median(f2ratio, nfloor2, tmp));
	fprintf(g_out, "            pairs:");
	for (int i = 0; i < r; i++)
		fprintf(g_out, " %.3f", ratio[i]);
	fprintf(g_out, "\n");
#ifdef VIGIL_HAVE_BPF
	if (kernel_time(w, n, o, &kns) == -2) {
		json_decref(stats);
		return -2;
	}
	if (kns > 0)
		fprintf(g_out,
			"            that is %.1f%% of an iteration without the defender"
			" (%.2f us)\n",
			100.0 * kns / (m_wo * 1e9 / (double)n), m_wo * 1e6 / (double)n);
#endif
	if (g_console && g_cost.events < PER_EVENT_MIN_EVENTS) {
		events = g_cost.events;
		evs = (double)events / with_total;
		fprintf(g_out,
			"            CPU per event: not measured (%llu events: the idle rate"
			" taken off is most of what the three spent); the defender idle %.1f"
			" ms/s; its peak RSS %.1f MiB\n",
			events, g_cost.idle_defender_s * 1e3 / o->rounds, g_cost.hwm_kb / 1024.0);
	} else if (g_console) {
		events = g_cost.events;
		evs = (double)events / with_total;
		fprintf(
		    g_out,
		    "            CPU per event until the console had it, over each one's idle"
		    " rate: defender %.2f us (target <= 3), console %.2f us, PostgreSQL %.2f us;"
		    " the defender idle %.1f ms/s; its peak RSS %.1f MiB\n",
		    g_cost.defender_s * 1e6 / (double)(events ? events : 1),
		    g_cost.console_s * 1e6 / (double)(events ? events : 1),
		    g_cost.pg_s * 1e6 / (double)(events ? events : 1),
		    g_cost.idle_defender_s * 1e3 / o->rounds, g_cost.hwm_kb / 1024.0);
	}
	fprintf(g_out, "            delivered %llu events, %.0f ev/s over the with-runs\n", events,
		evs);
	print_stats(stats);
	lost = stats_lost(stats);
	json_t *row = json_pack(
	    "{s:s, s:I, s:o, s:o, s:o, s:o, s:f, s:f, s:f, s:f, s:b, s:I, s:f, s:o, s:o*, s:o}",
	    "name", w->name, "iterations", (json_int_t)n, "without_s", json_doubles(wo, r),
	    "with_s", json_doubles(wi, r), "floor_s",
	    nfloor > 0 ? json_doubles(fl, r) : json_null(), "floor_ratio",
	    nfloor > 0 ? json_real(m_floor) : json_null(), "without_median_s", m_wo,
	    "with_median_s", m_wi, "ratio", m_ratio, "target", target, "pass", m_ratio <= target,
	    "events", (json_int_t)events, "events_per_s", evs, "lost", json_lost(lost), "stats",
	    stats, "kernel_ns_per_iteration", kns > 0 ? json_real(kns) : json_null());
	if (g_console && row != NULL)
		json_object_set_new(
		    row, "pipeline",
		    json_pack("{s:f, s:f, s:f, s:f, s:f, s:f}", "defender_cpu_s", g_cost.defender_s,
			      "console_cpu_s", g_cost.console_s, "postgres_cpu_s", g_cost.pg_s,
			      "defender_us_per_event",
			      g_cost.defender_s * 1e6 / (double)(events ? events : 1),
			      "console_us_per_event",
			      g_cost.console_s * 1e6 / (double)(events ? events : 1),
			      "defender_peak_rss_mib", g_cost.hwm_kb / 1024.0));
	json_array_append_new(rows, row);
	return 0;
}

/* One rate generator: n create+close+unlink cycles on new names, paced to per_s cycles/s. */
static int rate_worker(int w, long n, double per_s)
{
	char path[128];
	double t0 = now_s();

	for (long done = 0; done < n;) {
		long due = (long)((now_s() - t0) * per_s) + 1;
		if (done >= due)
			nap_us(100); /* ahead of the pace: leave the CPU to the defender */
		for (; done < due && done < n; done++) {
			snprintf(path, sizeof(path), "%s/%ld", g_ratedir[w], done);
			int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			if (fd < 0 || close(fd) < 0 || unlink(path) < 0)
				return -1;
		}
	}
	g_shared[1 + w] = now_s() - t0;
	return 0;
}

static int bench_rate(const struct opts *o, json_t **ret)
{
	double per_s = RATE_OFFER / 2.0 / RATE_WORKERS, longest = 0, offered, pct;
	long n = (long)(per_s * (o->quick ? 1.0 : 5.0));
	unsigned long long expected = 2ULL * (unsigned long long)n * RATE_WORKERS, got, last = 0;
	int go[2] = {-1, -1}, st, failed = 0;
	const char *verdict, *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	char lost_s[24] = "?";
	long long lost;
	json_t *stats;

	for (int w = 0; w < RATE_WORKERS; w++) {
		snprintf(g_ratedir[w], sizeof(g_ratedir[w]), "%s/vigil-bench-rate.XXXXXX", base);
		if (!mkdtemp(g_ratedir[w])) {
			fprintf(stderr, "capture_bench: rate: mkdtemp: %s\n", strerror(errno));
			g_ratedir[w][0] = '\0';
			return -1;
		}
	}
	fprintf(stderr, "capture_bench: rate: %d workers x %ld create/unlink cycles in %s\n",
		RATE_WORKERS, n, base);
	if (defender_start(&g_def, o->defender, READY_TIMEOUT_MS) < 0)
		return -2;
	failed = pipe2(go, O_CLOEXEC) < 0;
	for (int w = 0; !failed && w < RATE_WORKERS; w++) {
		char c;
		pid_t pid = fork();
		if (pid == 0) {
			child_reset();
			close(go[1]);
			_exit(read(go[0], &c, 1) == 1 && rate_worker(w, n, per_s) == 0 ? 0 : 1);
		}
		if (pid < 0 || track(pid) < 0)
			failed = 1;
		else
			__atomic_store_n(&g_def.gen[w], pid, __ATOMIC_RELEASE);
	}
	/* The workers start together, once the reader knows their pids. */
	if (!failed && write(go[1], "gogo", RATE_WORKERS) != RATE_WORKERS)
		failed = 1;
	close(go[0]);
	close(go[1]); /* a worker still waiting reads EOF and exits */
	for (int w = 0; w < RATE_WORKERS && g_def.gen[w] > 0; w++) {
		if (wait_child(g_def.gen[w], RUN_TIMEOUT_MS, &st) < 0 || st != 0)
			failed = 1;
		else if (g_shared[1 + w] > longest)
			longest = g_shared[1 + w];
	}
	/* Let delivery catch up: until all arrived, nothing new for 1 s, or 10 s. */
	for (int i = 0, idle = 0; i < 100 && idle < 10; i++) {
		got = __atomic_load_n(&g_def.gen_file, __ATOMIC_RELAXED);
		if (got >= expected)
			break;
		idle = got == last ? idle + 1 : 0;
		last = got;
		nap_us(100000);
	}
	stats = defender_stop(&g_def);
	if (failed) {
		fprintf(g_out, "rate: ERROR (a generator failed)\n");
		json_decref(stats);
		*ret = json_pack("{s:s}", "error", "generator failed");
		return -1;
	}
	offered = (double)expected / longest;
	pct = 100.0 * (double)g_def.gen_file / (double)expected;
	if ((lost = stats_lost(stats)) >= 0)
		snprintf(lost_s, sizeof(lost_s), "%lld", lost);
	verdict = lost != 0 || g_def.gen_file != expected ? "FAIL"
		  : offered < RATE_TARGET		  ? "LOW-RATE (offered below the target)"
							  : "PASS";
	fprintf(g_out,
		"rate: %.0f ev/s offered, delivered %.2f%%, drops %s (target 0 drops at >= %d "
		"ev/s)  %s\n",
		offered, pct, lost_s, RATE_TARGET, verdict);
	fprintf(g_out,
		"            %llu file events expected from %d generator pids, %llu delivered "
		"(+%llu other events of theirs), %llu events in all\n",
		expected, RATE_WORKERS, g_def.gen_file, g_def.gen_other, g_def.events);
	print_stats(stats);
	*ret = json_pack("{s:f, s:I, s:I, s:I, s:f, s:o, s:s, s:o*}", "offered_per_s", offered,
			 "expected", (json_int_t)expected, "delivered", (json_int_t)g_def.gen_file,
			 "other_from_generators", (json_int_t)g_def.gen_other, "delivered_pct", pct,
			 "lost", json_lost(lost), "verdict", verdict, "stats", stats);
	return 0;
}

static long read_long(const char *path)
{
	long v = -1;
	FILE *f = fopen(path, "re");
	if (f && fscanf(f, "%ld", &v) != 1)
		v = -1;
	if (f)
		fclose(f);
	return v;
}

/* VmHWM and VmRSS of pid in kB, -1 where unreadable. */
static void read_vm(pid_t pid, long *ret_hwm, long *ret_rss)
{
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (!(f = fopen(path, "re")))
		return;
	while (fgets(line, sizeof(line), f)) {
		sscanf(line, "VmHWM: %ld", ret_hwm);
		sscanf(line, "VmRSS: %ld", ret_rss);
	}
	fclose(f);
}

static int bench_memory(const struct opts *o, json_t **ret)
{
	long pid_max = read_long("/proc/sys/kernel/pid_max"),
	     thr_max = read_long("/proc/sys/kernel/threads-max"), hwm = -1, rss = -1;
	rlim_t need = MEM_PROCS + 1000; /* the sleepers, and room for the host's own processes */
	struct rlimit rl;
	char why[160] = "";
	int spawned = 0, rc;
	json_t *stats = NULL;
	const char *verdict;

	if ((pid_max > 0 && pid_max < (long)need) || (thr_max > 0 && thr_max < (long)need))
		fprintf(stderr, "capture_bench: memory: pid_max %ld, threads-max %ld: under %lu\n",
			pid_max, thr_max, (unsigned long)need);
	if (getrlimit(RLIMIT_NPROC, &rl) == 0 && rl.rlim_cur < need) {
		rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need; /* INFINITY is the largest */
		if (setrlimit(RLIMIT_NPROC, &rl) < 0 || rl.rlim_cur < need)
			fprintf(stderr, "capture_bench: memory: RLIMIT_NPROC stays under %lu\n",
				(unsigned long)need);
	}
	fprintf(stderr, "capture_bench: memory: spawning %d sleeping processes\n", MEM_PROCS);
	for (; spawned < MEM_PROCS; spawned++) {
		pid_t pid = fork();
		if (pid == 0) {
			child_reset();
			alarm(MEM_CHILD_LIFE_S);
			for (;;) /* ends by our SIGKILL, our death (PDEATHSIG) or the alarm */
				pause();
		}
		if (pid < 0)
			snprintf(why, sizeof(why),
				 "the host could not hold %d: fork failed after %d: %s", MEM_PROCS,
				 spawned, strerror(errno));
		if (pid < 0 || track(pid) < 0)
			break;
		if (spawned % MEM_BATCH == MEM_BATCH - 1)
			nap_us(5000); /* let the batch reach pause() */
	}
	if (why[0])
		fprintf(stderr, "capture_bench: memory: %s\n", why);
	rc = defender_start(&g_def, o->defender, MEM_READY_TIMEOUT_MS);
	if (rc == 0) {
		nap_us(2000000); /* settle: its process table holds every process by now */
		read_vm(g_def.pid, &hwm, &rss);
		stats = defender_stop(&g_def);
	}
	reap_tracked(); /* only the sleepers are left: defender_stop reaped the defender */
	if (rc < 0)
		return -2;
	verdict = hwm < 0			  ? "ERROR (no VmHWM)"
		  : spawned < MEM_PROCS		  ? "INCOMPLETE"
		  : hwm / 1024.0 < MEM_TARGET_MIB ? "PASS"
						  : "FAIL";
	fprintf(g_out, "memory: peak %.1f MiB with %d live processes (target < %.0f MiB)  %s\n",
		hwm / 1024.0, spawned, MEM_TARGET_MIB, verdict);
	fprintf(g_out, "            rss %.1f MiB after a 2 s settle%s%s\n", rss / 1024.0,
		why[0] ? "; " : "", why);
	*ret = json_pack("{s:i, s:f, s:f, s:f, s:s, s:s, s:o*}", "processes", spawned, "peak_mib",
			 hwm / 1024.0, "rss_mib", rss / 1024.0, "target_mib", MEM_TARGET_MIB,
			 "verdict", verdict, "note", why, "stats", stats);
	return hwm < 0 ? -1 : 0;
}

/* Whether name is one element of the comma-separated list. */
static bool in_list(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; *p;) {
		size_t k = strcspn(p, ",");
		if (k == n && strncmp(p, name, n) == 0)
			return true;
		p += k + (p[k] == ',');
	}
	return false;
}

static bool wanted(const struct opts *o, const char *part)
{
	return o->only == NULL || in_list(o->only, part);
}

/* Every element of an --only list names a part; an unknown one is reported. */
static bool only_valid(const char *list)
{
	char buf[256];

	if (snprintf(buf, sizeof(buf), "%s", list) >= (int)sizeof(buf) || !*buf)
		return false;
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		bool known = strcmp(t, "rate") == 0 || strcmp(t, "memory") == 0;
		for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
			known = known || strcmp(t, workloads[i].name) == 0;
		if (!known) {
			fprintf(stderr, "capture_bench: --only: no part named '%s'\n", t);
			return false;
		}
	}
	return true;
}

static int usage(FILE *f, int rc)
{
	fprintf(f, "usage: capture_bench [--defender PATH] [--rounds N] [--only LIST] [--quick]"
		   " [--json]\n"
		   "  --defender PATH  the vigil-defender to measure (default\n"
		   "                   $VIGIL_BUILD_DIR/defender/vigil-defender, else\n"
		   "                   ./build/defender/vigil-defender)\n"
		   "  --rounds N       paired rounds per workload, 1..99 (default 11)\n"
		   "  --only LIST      run only these parts, comma-separated: exec, open,\n"
		   "                   open-write, connect, getppid, rate, memory (default all)\n"
		   "  --quick          loops a tenth as long, rate test 1 s: for development\n"
		   "  --json           one JSON object on stdout; the table goes to stderr\n"
		   "  --defender-arg A one more argument for the defender (e.g. --no-open-copy)\n"
		   "  --rules100       the defender enforces a 100-rule set (deviations prevented\n"
		   "                   for one service: every exec held) while it captures\n"
		   "  --rules100-lists the same set with that service's deviations alerted only:\n"
		   "                   what deny lists alone cost\n"
		   "  --console        the defender as the quick start runs it, connected to a\n"
		   "                   console and its PostgreSQL on this machine, learning on;\n"
		   "                   adds CPU per event of all three (no rate test)\n"
		   "  --per-syscall-floor  also the floor of an empty program on each watched\n"
		   "                   syscall's sys_exit_<name> tracepoint\n");
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {{"defender", required_argument, NULL, 'd'},
					      {"rounds", required_argument, NULL, 'r'},
					      {"quick", no_argument, NULL, 'q'},
					      {"json", no_argument, NULL, 'j'},
					      {"only", required_argument, NULL, 'o'},
					      {"help", no_argument, NULL, 'h'},
					      {"defender-arg", required_argument, NULL, 'a'},
					      {"rules100", no_argument, NULL, 'R'},
					      {"rules100-lists", no_argument, NULL, 'L'},
					      {"console", no_argument, NULL, 'C'},
					      {"per-syscall-floor", no_argument, NULL, 'P'},
					      {0}};
	static char defpath[4096];
	struct opts o = {.rounds = 11};
	const char *bd = getenv("VIGIL_BUILD_DIR");
	pthread_condattr_t ca;
	json_t *rows = json_array(), *rate = NULL, *mem = NULL, *top;
	char *end, *s;
	int c, rc = 0, rules100 = 0;
	static char rules_arg[4200];

	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		if (c == 'd')
			o.defender = optarg;
		else if (c == 'r' && ((o.rounds = (int)strtol(optarg, &end, 10)) < 1 ||
				      o.rounds > MAX_ROUNDS || *end))
			return usage(stderr, 2);
		else if (c == 'q' || c == 'j')
			*(c == 'q' ? &o.quick : &o.json) = 1;
		else if (c == 'o' && only_valid(optarg))
			o.only = optarg;
		else if (c == 'h')
			return usage(stdout, 0);
		else if (c == 'a')
			defender_arg = optarg;
		else if (c == 'R' || c == 'L')
			rules100 = c == 'R' ? 1 : 2;
		else if (c == 'C')
			g_console = true;
		else if (c == 'P')
			g_per_syscall_floor = true;
		else if (c != 'r')
			return usage(stderr, 2);
	}
	if (optind < argc)
		return usage(stderr, 2);
	if (!o.defender) {
		snprintf(defpath, sizeof(defpath), "%s/defender/vigil-defender",
			 bd ? bd : "./build");
		o.defender = defpath;
	}
	if (access(o.defender, X_OK) < 0) {
		fprintf(stderr,
			"capture_bench: no defender at %s (%s); build it or pass --defender\n",
			o.defender, strerror(errno));
		return 1;
	}
	g_out = o.json ? stderr : stdout;
	setvbuf(g_out, NULL, _IOLBF, 0);
	g_parent = getpid();
	g_shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (g_shared == MAP_FAILED || !mkdtemp(g_tmpdir)) {
		fprintf(stderr, "capture_bench: setup: %s\n", strerror(errno));
		return 1;
	}
	atexit(cleanup);
	if (g_console) {
		/* The harness finds the console next to the defender: BUILD/defender/... */
		static char build[4096];
		snprintf(build, sizeof(build), "%s", o.defender);
		for (int up = 0; up < 2 && strrchr(build, '/'); up++)
			*strrchr(build, '/') = '\0';
		if (bd == NULL && setenv("VIGIL_BUILD_DIR", build, 1) < 0)
			return 1;
		fprintf(stderr, "capture_bench: starting a console with its PostgreSQL\n");
		console_setup();
		atexit(console_remove); /* runs first: after cleanup() is registered */
	}
	if (rules100) {
		char path[4096];

		snprintf(path, sizeof(path), "%s/rules-100.json", g_tmpdir);
		if (defender_arg != NULL || write_rules100(path, rules100 == 1) < 0) {
			fprintf(stderr, "capture_bench: --rules100 %s\n",
				defender_arg != NULL ? "takes the place of --defender-arg"
						     : "could not write its rule file");
			return 2;
		}
		snprintf(rules_arg, sizeof(rules_arg), "--rules=%s", path);
		defender_arg = rules_arg;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	signal(SIGPIPE, SIG_IGN);
	pthread_mutex_init(&g_def.mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g_def.cv, &ca);

	fprintf(stderr, "capture_bench: defender %s, %d rounds%s\n", o.defender, o.rounds,
		o.quick ? ", quick" : "");
	for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]) && rc > -2; i++)
		if (wanted(&o, workloads[i].name) &&
		    (c = bench_workload(&workloads[i], &o, rows)) < rc)
			rc = c;
	/* The rate test counts the generators' events in the JSON lines: not with --console. */
	if (rc > -2 && !g_console && wanted(&o, "rate") && (c = bench_rate(&o, &rate)) < rc)
		rc = c;
	if (rc > -2 && wanted(&o, "memory") && (c = bench_memory(&o, &mem)) < rc)
		rc = c;
	if (rc == -2)
		fprintf(stderr, "capture_bench: stopped: the defender could not be started\n");
	top = json_pack("{s:s, s:s, s:b, s:b, s:i, s:o, s:o*, s:o*, s:b}", "bench", "capture",
			"defender", o.defender, "console", g_console, "quick", o.quick, "rounds",
			o.rounds, "workloads", rows, "rate", rate, "memory", mem, "complete",
			rc == 0);
	if (o.json && top && (s = json_dumps(top, JSON_COMPACT))) {
		printf("%s\n", s);
		free(s);
	}
	json_decref(top);
	return rc < 0 ? 1 : 0;
}
