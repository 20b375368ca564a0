/* SPDX-License-Identifier: Apache-2.0 */
/*
 * capture_bench: what the defender's capture costs the processes it watches.
 *
 * Runs syscall loops (exec, read-only open, write open, loopback connect) in
 * child processes, rounds without and with `vigil-defender --events-json`
 * running, and reports the median wall-time ratio per loop as in the design's
 * "Cost" table.  Then it checks that the defender delivers every event of a
 * generator pacing itself to >= 100,000 events/s, and how much memory the
 * defender holds with 10,000 live processes on the host.  It reports and does
 * not gate: exit 0 whenever it could run, 1 when it could not, 2 on bad usage.
 * README.md next to this file gives the defender's side of the contract.
 *
 * Every child is tracked by PID until reaped, and only those PIDs are ever
 * killed: on every exit path (normal, error, SIGINT/SIGTERM/SIGHUP) they get
 * SIGKILL, and each child also has PR_SET_PDEATHSIG in case the bench dies.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
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

#define READY_TIMEOUT_MS     10000
#define MEM_READY_TIMEOUT_MS 30000 /* the defender may walk /proc for 10,000 processes first */
#define STOP_TIMEOUT_MS	     10000
#define RUN_TIMEOUT_MS	     120000
#define LINE_MAX_BYTES	     65536  /* longer event lines are counted, their tail ignored */
#define RATE_TARGET	     100000 /* events/s the design promises to deliver without drops */
#define RATE_OFFER	     110000 /* what the generator paces itself to: a margin over the target */
#define RATE_WORKERS	     2
#define MEM_PROCS	     10000
#define MEM_BATCH	     500
#define MEM_TARGET_MIB	     32.0
#define MEM_CHILD_LIFE_S     900 /* a sleeper ends itself even if every cleanup failed */
#define TRACK_MAX	     (MEM_PROCS + 64)

struct opts {
	const char *defender;
	int rounds, quick, json;
};

struct workload {
	const char *name;
	long count; /* iterations of one run: about 1-2 s on the project's 2-core machines */
	double target;
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
	int stop;				/* atomic: ask the reader to quit */
	char *stats;				/* under mu: the last stats line, malloc'd */
	unsigned long long events;		/* atomic: event lines (not ready/stats) */
	pid_t gen[RATE_WORKERS];		/* atomic: generator pids, 0 when none */
	unsigned long long gen_file, gen_other; /* atomic: their file / other event lines */
	size_t len;
	char line[LINE_MAX_BYTES + 1];
};

static pid_t g_parent;
static char g_tmpdir[] = "/tmp/vigil-bench.XXXXXX";
/* One directory per rate worker, on tmpfs when there is one: ext4 creates cost 3x here. */
static char g_ratedir[RATE_WORKERS][64];
static volatile double *g_shared;  /* MAP_SHARED slots: seconds each child's loop took */
static pid_t g_tracked[TRACK_MAX]; /* our unreaped children: the only pids we kill */
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
	int i = g_ntracked;

	if (i >= TRACK_MAX)
		for (i = 0; i < TRACK_MAX && g_tracked[i]; i++)
			;
	if (i >= TRACK_MAX) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -ENOSPC;
	}
	g_tracked[i] = pid;
	if (i >= g_ntracked)
		g_ntracked = i + 1;
	return 0;
}

/* Forget a child; called before reaping it, so a reused pid is never killed. */
static void untrack(pid_t pid)
{
	for (int i = g_ntracked - 1; i >= 0; i--) {
		if (g_tracked[i] == pid) {
			g_tracked[i] = 0;
			while (g_ntracked > 0 && g_tracked[g_ntracked - 1] == 0)
				g_ntracked--;
			return;
		}
	}
}

/* Async-signal-safe: SIGKILL every tracked child. */
static void kill_tracked(void)
{
	for (int i = 0; i < g_ntracked; i++)
		if (g_tracked[i] > 0)
			kill(g_tracked[i], SIGKILL);
}

static void reap_tracked(void)
{
	kill_tracked();
	for (int i = g_ntracked - 1; i >= 0; i--) {
		pid_t pid = g_tracked[i];
		g_tracked[i] = 0;
		g_ntracked = i;
		if (pid > 0)
			while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
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
		double left = deadline - now_s();
		siginfo_t si = {0};

		if (left <= 0) {
			kill(pid, SIGKILL);
			rc = -ETIMEDOUT;
			break;
		}
		if (fd >= 0) {
			struct pollfd p = {.fd = fd, .events = POLLIN};
			if (poll(&p, 1, (int)(left * 1000) + 1) > 0)
				break;
		} else if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
			   si.si_pid == pid) {
			break;
		} else {
			nap_us(5000);
		}
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
		snprintf(buf, size, "killed by signal %d", WTERMSIG(st));
	return buf;
}

/* ---- workloads: each runs in a child the bench forks; 0 on success ---- */

static int wl_exec(long n)
{
	char *const argv[] = {"/bin/true", NULL}, *const envp[] = {NULL};

	for (long i = 0; i < n; i++) {
		int st;
		pid_t pid = fork();
		if (pid < 0)
			return -1;
		if (pid == 0) {
			execve("/bin/true", argv, envp);
			_exit(127);
		}
		if (waitpid(pid, &st, 0) < 0 || st != 0)
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

	snprintf(path, sizeof(path), "%s/ow.%d", g_tmpdir, (int)getpid());
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

/* Loopback TCP connect + accept + close, listener in the same process. */
static int wl_connect(long n)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int rc = -1, l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 128) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &alen) < 0)
		goto out;
	for (long i = 0; i < n; i++) {
		int s = -1, c = socket(AF_INET, SOCK_STREAM, 0);

		if (c >= 0 && connect(c, (struct sockaddr *)&a, sizeof(a)) == 0) {
			/* A loopback handshake completes inside connect(); wait only if it did not.
			 */
			for (int tries = 0; tries < 3 && s < 0; tries++) {
				struct pollfd p = {.fd = l, .events = POLLIN};
				s = accept4(l, NULL, NULL, 0);
				if (s < 0 && errno != EAGAIN)
					break;
				if (s < 0)
					poll(&p, 1, 1000);
			}
		}
		if (s >= 0)
			close(s);
		if (c >= 0)
			close(c);
		if (s < 0)
			goto out;
	}
	rc = 0;
out:
	if (l >= 0)
		close(l);
	return rc;
}

static const struct workload workloads[] = {
    {"exec", 2000, 1.05, wl_exec},
    {"open", 500000, 1.15, wl_open},
    {"open-write", 160000, 1.15, wl_open_write},
    {"connect", 25000, 1.05, wl_connect},
};

/* One run of w in a fresh child; *ret_s is the loop's wall time as the child measured it. */
static int run_workload(const struct workload *w, long n, double *ret_s)
{
	char buf[64];
	int st, rc;
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		child_reset();
		double t0 = now_s();
		rc = w->fn(n);
		g_shared[0] = now_s() - t0;
		_exit(rc ? 1 : 0);
	}
	if ((rc = track(pid)) < 0)
		return rc;
	rc = wait_child(pid, RUN_TIMEOUT_MS, &st);
	if (rc < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "capture_bench: %s run failed: %s\n", w->name,
			rc < 0 ? "timed out, killed" : status_str(st, buf, sizeof(buf)));
		return rc < 0 ? rc : -EIO;
	}
	*ret_s = g_shared[0];
	return 0;
}

/* ---- the defender: start, drain its stdout, stop ---- */

static void reader_line(struct defender *d, char *s, size_t n)
{
	size_t head = n < 64 ? n : 64;
	const char *p;
	long pid;

	s[n] = '\0';
	if (memmem(s, head, "\"type\":\"ready\"", 14)) {
		pthread_mutex_lock(&d->mu);
		d->ready = 1;
		pthread_cond_broadcast(&d->cv);
		pthread_mutex_unlock(&d->mu);
		return;
	}
	if (memmem(s, head, "\"type\":\"stats\"", 14)) {
		pthread_mutex_lock(&d->mu);
		free(d->stats);
		d->stats = strdup(s);
		pthread_mutex_unlock(&d->mu);
		return;
	}
	__atomic_add_fetch(&d->events, 1, __ATOMIC_RELAXED);
	if (!__atomic_load_n(&d->gen[0], __ATOMIC_RELAXED) || !(p = strstr(s, "\"pid\":")))
		return;
	pid = strtol(p + 6, NULL, 10);
	for (int i = 0; i < RATE_WORKERS; i++) {
		if (pid > 0 && __atomic_load_n(&d->gen[i], __ATOMIC_RELAXED) == pid) {
			if (strstr(s, "\"type\":\"file\""))
				__atomic_add_fetch(&d->gen_file, 1, __ATOMIC_RELAXED);
			else
				__atomic_add_fetch(&d->gen_other, 1, __ATOMIC_RELAXED);
		}
	}
}

/* Drains the defender's stdout until EOF or d->stop, so the defender never blocks on it. */
static void *reader_main(void *arg)
{
	static char buf[1 << 16];
	struct defender *d = arg;

	while (!__atomic_load_n(&d->stop, __ATOMIC_ACQUIRE)) {
		struct pollfd p = {.fd = d->fd, .events = POLLIN};
		ssize_t n;
		char *s, *nl;

		if (poll(&p, 1, 100) <= 0)
			continue;
		n = read(d->fd, buf, sizeof(buf));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		for (s = buf; (nl = memchr(s, '\n', (size_t)(buf + n - s))); s = nl + 1) {
			size_t k = (size_t)(nl - s);
			if (d->len == 0) {
				reader_line(d, s, k); /* whole line in buf: parse in place */
				continue;
			}
			if (k > LINE_MAX_BYTES - d->len)
				k = LINE_MAX_BYTES - d->len;
			memcpy(d->line + d->len, s, k);
			reader_line(d, d->line, d->len + k);
			d->len = 0;
		}
		if (s < buf + n) { /* a partial line waits for the next read */
			size_t k = (size_t)(buf + n - s);
			if (k > LINE_MAX_BYTES - d->len)
				k = LINE_MAX_BYTES - d->len;
			memcpy(d->line + d->len, s, k);
			d->len += k;
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
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&d->mu);
	while (!*flag && !d->eof && pthread_cond_timedwait(&d->cv, &d->mu, &dl) != ETIMEDOUT)
		;
	v = *flag;
	pthread_mutex_unlock(&d->mu);
	return v;
}

/* After the defender is reaped: give the reader 2 s to see EOF, then stop it anyway. */
static void defender_join(struct defender *d)
{
	defender_wait(d, &d->eof, 2000);
	__atomic_store_n(&d->stop, 1, __ATOMIC_RELEASE);
	pthread_join(d->reader, NULL);
	close(d->fd);
	d->pid = 0;
}

static void defender_tail(void)
{
	char path[128], buf[2049];
	ssize_t n;
	off_t size;
	int fd;

	snprintf(path, sizeof(path), "%s/defender.err", g_tmpdir);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	n = pread(fd, buf, sizeof(buf) - 1, size > 2048 ? size - 2048 : 0);
	close(fd);
	if (n > 0) {
		buf[n] = '\0';
		fprintf(stderr, "--- defender stderr (last %zd bytes) ---\n%s%s---\n", n, buf,
			buf[n - 1] == '\n' ? "" : "\n");
	}
}

/* Start `path --events-json --stats-interval-ms 0` and wait for its ready line.  0 or -1. */
static int defender_start(struct defender *d, const char *path, int ready_ms)
{
	char errpath[128], buf[64];
	int p[2], errfd, st;
	pid_t pid;

	snprintf(errpath, sizeof(errpath), "%s/defender.err", g_tmpdir);
	errfd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (errfd < 0 || pipe2(p, O_CLOEXEC) < 0) {
		fprintf(stderr, "capture_bench: defender output: %s\n", strerror(errno));
		return -1;
	}
	d->ready = d->eof = d->stop = 0;
	d->events = d->gen_file = d->gen_other = 0;
	memset(d->gen, 0, sizeof(d->gen));
	free(d->stats);
	d->stats = NULL;
	d->len = 0;
	if ((pid = fork()) < 0) {
		fprintf(stderr, "capture_bench: fork: %s\n", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		child_reset();
		if (nul < 0 || dup2(nul, 0) < 0 || dup2(p[1], 1) < 0 || dup2(errfd, 2) < 0)
			_exit(127);
		execl(path, path, "--events-json", "--stats-interval-ms", "0", (char *)NULL);
		dprintf(2, "exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	close(p[1]);
	close(errfd);
	if (track(pid) < 0) {
		close(p[0]);
		return -1;
	}
	d->pid = pid;
	d->fd = p[0];
	if (pthread_create(&d->reader, NULL, reader_main, d) != 0) {
		wait_child(pid, 0, &st);
		close(p[0]);
		fprintf(stderr, "capture_bench: cannot start the reader thread\n");
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
		fprintf(
		    stderr,
		    "capture_bench: %s printed no {\"type\":\"ready\"} line within %d s; killed\n",
		    path, ready_ms / 1000);
	}
	defender_join(d);
	defender_tail();
	return -1;
}

/* SIGTERM the defender, reap it (killing it after 10 s), parse its stats line: new ref or NULL. */
static json_t *defender_stop(struct defender *d)
{
	json_error_t e;
	json_t *j;
	char buf[64];
	int st;

	kill(d->pid, SIGTERM);
	if (wait_child(d->pid, STOP_TIMEOUT_MS, &st) < 0)
		fprintf(stderr,
			"capture_bench: the defender did not exit within %d s of SIGTERM; killed\n",
			STOP_TIMEOUT_MS / 1000);
	else if (!WIFEXITED(st) || WEXITSTATUS(st))
		fprintf(stderr, "capture_bench: the defender %s on SIGTERM\n",
			status_str(st, buf, sizeof(buf)));
	defender_join(d);
	if (!d->stats) {
		fprintf(stderr,
			"capture_bench: the defender printed no {\"type\":\"stats\"} line\n");
		defender_tail();
		return NULL;
	}
	if (!(j = json_loads(d->stats, 0, &e)))
		fprintf(stderr, "capture_bench: cannot parse the stats line (%s): %.200s\n", e.text,
			d->stats);
	return j;
}

static long long stat_get(json_t *stats, const char *group, const char *key)
{
	json_t *v = json_object_get(json_object_get(stats, group), key);
	return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

/* Events lost (not delivered), or -1 when the stats line lacks them. */
static long long stats_lost(json_t *stats)
{
	long long a = stat_get(stats, "drops", "ringbuf_full"),
		  b = stat_get(stats, "drops", "scratch"),
		  c = stat_get(stats, "drops", "stash_full");
	return a < 0 || b < 0 || c < 0 ? -1 : a + b + c;
}

static const char *lost_str(long long lost, char buf[32])
{
	if (lost < 0)
		return "?";
	snprintf(buf, 32, "%lld", lost);
	return buf;
}

static json_t *lost_json(long long lost)
{
	return lost < 0 ? json_null() : json_integer(lost);
}

static void print_stats(json_t *stats)
{
	if (!stats) {
		fprintf(g_out, "            defender stats: none (no parsable stats line)\n");
		return;
	}
	fprintf(
	    g_out,
	    "            drops: ringbuf_full %lld, scratch %lld, stash_full %lld; cut: path %lld, "
	    "args %lld; filtered: self %lld, read_repeat %lld, read_only %lld\n",
	    stat_get(stats, "drops", "ringbuf_full"), stat_get(stats, "drops", "scratch"),
	    stat_get(stats, "drops", "stash_full"), stat_get(stats, "drops", "path_truncated"),
	    stat_get(stats, "drops", "args_truncated"), stat_get(stats, "filtered", "self"),
	    stat_get(stats, "filtered", "read_repeat"), stat_get(stats, "filtered", "read_only"));
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

/*
 * Without-runs are split around the one defender session (half before, half
 * after) so slow drift of the machine affects both sides alike.  Returns 0,
 * -1 when a run failed (reported, the bench goes on), -2 when the defender
 * could not start (the bench stops).
 */
static int bench_workload(const struct workload *w, const struct opts *o, json_t *rows)
{
	long n = o->quick ? w->count / 10 : w->count;
	int r = o->rounds, half = (r + 1) / 2, rc;
	double *wo = calloc((size_t)r * 4, sizeof(double)), *wi = wo + r, *ratio = wi + r,
	       *tmp = ratio + r, with_total = 0, t, m_wo, m_wi, m_ratio, evs;
	json_t *stats = NULL;
	char lost_s[32];

	fprintf(stderr, "capture_bench: %s: %d+%d runs of %ld\n", w->name, r, r, n);
	rc = run_workload(w, n / 10 + 1, &t); /* warm-up: page cache, dentries, TCP state */
	for (int i = 0; !rc && i < half; i++)
		rc = run_workload(w, n, &wo[i]);
	if (rc)
		goto fail;
	if (defender_start(&g_def, o->defender, READY_TIMEOUT_MS) < 0) {
		free(wo);
		return -2;
	}
	for (int i = 0; !rc && i < r; i++) {
		rc = run_workload(w, n, &wi[i]);
		with_total += wi[i];
	}
	stats = defender_stop(&g_def);
	evs = with_total > 0 ? (double)g_def.events / with_total : 0;
	for (int i = half; !rc && i < r; i++)
		rc = run_workload(w, n, &wo[i]);
	if (rc)
		goto fail;
	for (int i = 0; i < r; i++)
		ratio[i] = wi[i] / wo[i];
	m_wo = median(wo, r, tmp);
	m_wi = median(wi, r, tmp);
	m_ratio = median(ratio, r, tmp);
	fprintf(g_out, "%-10s without %.2f s  with %.2f s  ratio %.3f (target <= %.2f)  %s\n",
		w->name, m_wo, m_wi, m_ratio, w->target, m_ratio <= w->target ? "PASS" : "FAIL");
	fprintf(g_out,
		"            delivered %llu events, %.0f ev/s during the with-runs, lost %s\n",
		g_def.events, evs, lost_str(stats_lost(stats), lost_s));
	print_stats(stats);
	json_array_append_new(
	    rows,
	    json_pack("{s:s, s:I, s:o, s:o, s:f, s:f, s:f, s:f, s:b, s:I, s:f, s:o, s:o*}", "name",
		      w->name, "iterations", (json_int_t)n, "without_s", json_doubles(wo, r),
		      "with_s", json_doubles(wi, r), "without_median_s", m_wo, "with_median_s",
		      m_wi, "ratio", m_ratio, "target", w->target, "pass", m_ratio <= w->target,
		      "events", (json_int_t)g_def.events, "events_per_s", evs, "lost",
		      lost_json(stats_lost(stats)), "stats", stats));
	free(wo);
	return 0;
fail:
	fprintf(g_out, "%-10s ERROR (a run failed, see stderr)\n", w->name);
	json_array_append_new(rows,
			      json_pack("{s:s, s:s}", "name", w->name, "error", "run failed"));
	json_decref(stats);
	free(wo);
	return -1;
}

/* One rate generator: n create+close+unlink cycles on new names, paced to per_s cycles/s. */
static int rate_worker(int w, long n, double per_s)
{
	char path[128];
	double t0 = now_s();
	long done = 0;

	while (done < n) {
		long due = (long)((now_s() - t0) * per_s) + 1;
		if (due > n)
			due = n;
		if (done >= due)
			nap_us(100); /* ahead of the pace: give the CPU to the defender */
		for (; done < due; done++) {
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
	double secs = o->quick ? 1.0 : 5.0, per_s = RATE_OFFER / 2.0 / RATE_WORKERS, longest = 0;
	long n = (long)(per_s * secs);
	unsigned long long expected = 2ULL * (unsigned long long)n * RATE_WORKERS, got, last = 0;
	int go[2], st, failed = 0;
	json_t *stats;

	for (int w = 0; w < RATE_WORKERS; w++) {
		const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
		snprintf(g_ratedir[w], sizeof(g_ratedir[w]), "%s/vigil-bench-rate.XXXXXX", base);
		if (!mkdtemp(g_ratedir[w])) {
			fprintf(stderr, "capture_bench: rate: mkdtemp: %s\n", strerror(errno));
			g_ratedir[w][0] = '\0';
			return -1;
		}
	}
	fprintf(stderr, "capture_bench: rate: %d workers x %ld create/unlink cycles in %s\n",
		RATE_WORKERS, n, g_ratedir[0]);
	if (defender_start(&g_def, o->defender, READY_TIMEOUT_MS) < 0)
		return -2;
	if (pipe2(go, O_CLOEXEC) < 0) {
		fprintf(stderr, "capture_bench: rate: pipe: %s\n", strerror(errno));
		failed = 1;
		go[0] = go[1] = -1;
	}
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
	/* Workers start together, after their pids are known to the reader. */
	if (!failed && write(go[1], "gogo", RATE_WORKERS) != RATE_WORKERS)
		failed = 1;
	if (go[0] >= 0) {
		close(go[0]);
		close(go[1]); /* a worker still waiting reads EOF and exits */
	}
	for (int w = 0; w < RATE_WORKERS && g_def.gen[w] > 0; w++) {
		if (wait_child(g_def.gen[w], RUN_TIMEOUT_MS, &st) < 0 || st != 0)
			failed = 1;
		else if (g_shared[1 + w] > longest)
			longest = g_shared[1 + w];
	}
	/* Let delivery catch up: until all arrived, or nothing new for 1 s, or 10 s. */
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
		fprintf(stderr, "capture_bench: a rate generator failed\n");
		fprintf(g_out, "rate: ERROR (a generator failed, see stderr)\n");
		json_decref(stats);
		*ret = json_pack("{s:s}", "error", "generator failed");
		return -1;
	}
	double offered = longest > 0 ? (double)expected / longest : 0;
	double pct = 100.0 * (double)g_def.gen_file / (double)expected;
	long long lost = stats_lost(stats);
	const char *verdict = lost != 0 || g_def.gen_file != expected ? "FAIL"
			      : offered < RATE_TARGET ? "LOW-RATE (offered below target)"
						      : "PASS";
	char lost_s[32];
	fprintf(g_out,
		"rate: %.0f ev/s offered, delivered %.2f%%, drops %s (target 0 drops at >= %d "
		"ev/s)  %s\n",
		offered, pct, lost_str(lost, lost_s), RATE_TARGET, verdict);
	fprintf(g_out,
		"            %llu file events expected from %d generator pids, %llu delivered "
		"(+%llu other events from them), %llu events in all\n",
		expected, RATE_WORKERS, g_def.gen_file, g_def.gen_other, g_def.events);
	print_stats(stats);
	*ret = json_pack("{s:f, s:I, s:I, s:I, s:f, s:o, s:s, s:o*}", "offered_per_s", offered,
			 "expected", (json_int_t)expected, "delivered", (json_int_t)g_def.gen_file,
			 "other_from_generators", (json_int_t)g_def.gen_other, "delivered_pct", pct,
			 "lost", lost_json(lost), "verdict", verdict, "stats", stats);
	return 0;
}

static long read_long(const char *path)
{
	long v = -1;
	FILE *f = fopen(path, "re");
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/* VmHWM and VmRSS of pid in kB; 0 or -1. */
static int read_vm(pid_t pid, long *ret_hwm, long *ret_rss)
{
	char path[64], line[256];
	long hwm = -1, rss = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (!(f = fopen(path, "re")))
		return -1;
	while (fgets(line, sizeof(line), f)) {
		sscanf(line, "VmHWM: %ld", &hwm);
		sscanf(line, "VmRSS: %ld", &rss);
	}
	fclose(f);
	if (hwm < 0 || rss < 0)
		return -1;
	*ret_hwm = hwm;
	*ret_rss = rss;
	return 0;
}

static int bench_memory(const struct opts *o, json_t **ret)
{
	long pid_max = read_long("/proc/sys/kernel/pid_max"),
	     thr_max = read_long("/proc/sys/kernel/threads-max"), tasks = -1, hwm = -1, rss = -1,
	     need;
	struct rlimit rl;
	char why[160] = "";
	int spawned = 0, rc;
	FILE *f = fopen("/proc/loadavg", "re");
	json_t *stats = NULL;

	if (f) { /* "0.09 0.30 0.36 2/92 31795": 92 tasks on the host */
		if (fscanf(f, "%*f %*f %*f %*d/%ld", &tasks) != 1)
			tasks = -1;
		fclose(f);
	}
	need = MEM_PROCS + (tasks > 0 ? tasks : 0) + 100;
	if (pid_max > 0 && pid_max < need)
		fprintf(stderr, "capture_bench: memory: kernel.pid_max %ld < %ld needed\n", pid_max,
			need);
	if (thr_max > 0 && thr_max < need)
		fprintf(stderr, "capture_bench: memory: kernel.threads-max %ld < %ld needed\n",
			thr_max, need);
	if (getrlimit(RLIMIT_NPROC, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)need) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= (rlim_t)need
				  ? (rlim_t)need
				  : rl.rlim_max;
		if (setrlimit(RLIMIT_NPROC, &rl) < 0 || rl.rlim_cur < (rlim_t)need)
			fprintf(stderr, "capture_bench: memory: RLIMIT_NPROC stays %llu < %ld\n",
				(unsigned long long)rl.rlim_cur, need);
	}
	fprintf(stderr, "capture_bench: memory: spawning %d sleeping processes\n", MEM_PROCS);
	for (; spawned < MEM_PROCS; spawned++) {
		pid_t pid = fork();
		if (pid == 0) {
			child_reset();
			alarm(MEM_CHILD_LIFE_S);
			for (;;) /* ends by SIGKILL from the bench, its death, or the alarm */
				pause();
		}
		if (pid < 0) {
			snprintf(why, sizeof(why),
				 "the host could not hold %d: fork failed after %d: %s", MEM_PROCS,
				 spawned, strerror(errno));
			fprintf(stderr, "capture_bench: memory: %s\n", why);
			break;
		}
		if (track(pid) < 0)
			break;
		if (spawned % MEM_BATCH == MEM_BATCH - 1)
			nap_us(5000); /* let the batch reach pause() */
	}
	rc = defender_start(&g_def, o->defender, MEM_READY_TIMEOUT_MS);
	if (rc == 0) {
		nap_us(2000000); /* settle: its proctree sees every process by now */
		if (read_vm(g_def.pid, &hwm, &rss) < 0)
			fprintf(stderr, "capture_bench: memory: cannot read /proc/%d/status\n",
				(int)g_def.pid);
		stats = defender_stop(&g_def);
	}
	reap_tracked(); /* only the sleepers are left: the defender was reaped by defender_stop */
	if (rc < 0)
		return -2;
	double peak = hwm / 1024.0;
	fprintf(g_out, "memory: peak %.1f MiB with %d live processes (target < %.0f MiB)  %s\n",
		peak, spawned, MEM_TARGET_MIB,
		hwm < 0			? "ERROR"
		: spawned < MEM_PROCS	? "INCOMPLETE"
		: peak < MEM_TARGET_MIB ? "PASS"
					: "FAIL");
	fprintf(g_out, "            rss %.1f MiB after a 2 s settle%s%s\n", rss / 1024.0,
		why[0] ? "; " : "", why);
	*ret = json_pack("{s:i, s:f, s:f, s:f, s:b, s:s, s:o*}", "processes", spawned, "peak_mib",
			 peak, "rss_mib", rss / 1024.0, "target_mib", MEM_TARGET_MIB, "pass",
			 hwm >= 0 && spawned == MEM_PROCS && peak < MEM_TARGET_MIB, "note", why,
			 "stats", stats);
	return hwm < 0 ? -1 : 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: capture_bench [--defender PATH] [--rounds N] [--quick] [--json]\n"
		"  --defender PATH  vigil-defender to measure (default $VIGIL_BUILD_DIR/defender/"
		"vigil-defender,\n"
		"                   else ./build/defender/vigil-defender)\n"
		"  --rounds N       paired rounds per workload, 1..99 (default 7)\n"
		"  --quick          loops a tenth as long, rate test 1 s: for development\n"
		"  --json           one JSON object on stdout; the table goes to stderr\n");
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
	    {"defender", required_argument, NULL, 'd'}, {"rounds", required_argument, NULL, 'r'},
	    {"quick", no_argument, NULL, 'q'},		{"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},		{0}};
	struct opts o = {.rounds = 7};
	static char defpath[4096];
	pthread_condattr_t ca;
	json_t *rows = json_array(), *rate = NULL, *mem = NULL, *top;
	int c, rc = 0;
	char *end;

	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			o.defender = optarg;
			break;
		case 'r':
			o.rounds = (int)strtol(optarg, &end, 10);
			if (*end || o.rounds < 1 || o.rounds > 99) {
				usage(stderr);
				return 2;
			}
			break;
		case 'q':
			o.quick = 1;
			break;
		case 'j':
			o.json = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (!o.defender) {
		const char *bd = getenv("VIGIL_BUILD_DIR");
		snprintf(defpath, sizeof(defpath), "%s/defender/vigil-defender",
			 bd ? bd : "./build");
		o.defender = defpath;
	}
	if (access(o.defender, X_OK) < 0) {
		fprintf(stderr,
			"capture_bench: no defender at %s (%s); build it or pass --defender PATH\n",
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
	for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]) && rc > -2; i++) {
		int r = bench_workload(&workloads[i], &o, rows);
		rc = r < rc ? r : rc;
	}
	if (rc > -2) {
		int r = bench_rate(&o, &rate);
		rc = r < rc ? r : rc;
	}
	if (rc > -2) {
		int r = bench_memory(&o, &mem);
		rc = r < rc ? r : rc;
	}
	if (rc == -2)
		fprintf(stderr, "capture_bench: stopped: the defender could not be started\n");
	if (o.json) {
		char *s;
		top =
		    json_pack("{s:s, s:s, s:b, s:i, s:o, s:o*, s:o*, s:b}", "bench", "capture",
			      "defender", o.defender, "quick", o.quick, "rounds", o.rounds,
			      "workloads", rows, "rate", rate, "memory", mem, "complete", rc == 0);
		if (top && (s = json_dumps(top, JSON_COMPACT))) {
			printf("%s\n", s);
			free(s);
		}
		json_decref(top);
	} else {
		json_decref(rows);
		json_decref(rate);
		json_decref(mem);
	}
	return rc < 0 ? 1 : 0;
}
