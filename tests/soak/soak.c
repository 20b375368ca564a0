/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The soak run (docs/reliability.md, "Soak"): a console with its private
 * PostgreSQL and a real defender on this host, under a steady load for
 * --minutes (default 30), while
 *
 *   - a load thread runs a numbered program (/bin/true vigil-soak-N), writes
 *     files and connects to a local listener, at a fixed rate;
 *   - an API reader asks for the fleet, the audits and the models every second;
 *   - every --restart-every seconds the console is restarted, or its
 *     PostgreSQL crashed (SIGQUIT: an immediate shutdown), in turn;
 *   - every 10 s a probe program is run and timed until its exec event is in
 *     the database (the delivery's end-to-end latency; the longest is the
 *     longest stall).
 *
 * At the end: every numbered program's exec must be stored once (events
 * lost must be 0, counted end to end, not from counters), and the report
 * gives RSS, descriptors and threads of both daemons after the warm-up and
 * at the end, the API's latencies and unavailability, the probes' latency,
 * and the defender's own loss counters.
 *
 *   soak [--minutes N] [--restart-every S] [--rate N]     (root; a release build)
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

extern char **environ;

static char dir[H_PATH], deflog[H_PATH];
static struct h_pki pki;
static struct h_console con;
static pid_t defender_pid;
static atomic_bool stop_load, stop_reader;
static atomic_long programs_run;
static int listen_fd = -1, listen_port;

static void cleanup(void)
{
	atomic_store(&stop_load, true);
	if (defender_pid > 0)
		h_stop(defender_pid, SIGTERM, 10000);
	if (con.pid > 0)
		h_console_kill(&con, SIGTERM);
	if (dir[0] != '\0' && !getenv("VIGIL_KEEP_TEST_DIRS"))
		h_rmrf(dir);
}

/* One integer from sql on the console's database, or -1 while it is away (a restart). */
static long long db_try(const char *sql)
{
	char conninfo[H_PATH + 64];
	long long n = -1;
	PGconn *c;

	snprintf(conninfo, sizeof(conninfo),
		 "host=%s/postgres/run port=5432 dbname=vigil user=vigil connect_timeout=2",
		 con.state);
	c = PQconnectdb(conninfo);
	if (PQstatus(c) == CONNECTION_OK) {
		PGresult *r = PQexec(c, sql);

		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
			n = atoll(PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	PQfinish(c);
	return n;
}

/* Run /bin/true with arg, wait for it. */
static void run_true(const char *arg)
{
	char *argv[] = {"/bin/true", (char *)arg, NULL};
	pid_t pid;

	if (posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ) == 0)
		waitpid(pid, NULL, 0);
}

/* The steady load: per round a numbered program, 10 file writes, 2 connects. */
static void *load_main(void *arg)
{
	int rate = *(int *)arg;
	long long next = h_now_ms();
	char name[64], path[H_PATH];

	for (long n = 1; !atomic_load(&stop_load); n++) {
		snprintf(name, sizeof(name), "vigil-soak-%ld", n);
		run_true(name);
		atomic_store(&programs_run, n);
		for (int i = 0; i < 10; i++) {
			snprintf(path, sizeof(path), "%s/load/f-%ld", dir, (n * 10 + i) % 200);
			int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			if (fd >= 0)
				close(fd);
		}
		for (int i = 0; i < 2; i++) {
			struct sockaddr_in a = {.sin_family = AF_INET,
						.sin_port = htons((uint16_t)listen_port),
						.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
			int fd = socket(AF_INET, SOCK_STREAM, 0);

			if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
				int c = accept(listen_fd, NULL, NULL);
				if (c >= 0)
					close(c);
			}
			close(fd);
		}
		next += 1000 / rate;
		long long wait = next - h_now_ms();
		if (wait > 0)
			h_sleep_ms((int)wait);
	}
	return NULL;
}

struct reader_stats {
	long requests, failed;
	long long max_ms, unavailable_ms, longest_unavailable_ms;
	long long lat[4096];
	int nlat;
};
static struct reader_stats rs;

/* The API's readers: three listings a second; how long answers take and how long none came. */
static void *reader_main(void *arg)
{
	static const char *const paths[] = {"/api/v1/hosts", "/api/v1/audits?limit=100",
					    "/api/v1/models?limit=100"};
	long long down_since = 0;

	(void)arg;
	while (!atomic_load(&stop_reader)) {
		for (size_t i = 0; i < 3; i++) {
			long long t0 = h_now_ms(), ms;
			json_t *doc = NULL;
			int st = h_api_get(&con, &pki, paths[i], con.token, &doc);

			json_decref(doc);
			ms = h_now_ms() - t0;
			rs.requests++;
			if (st != 200) {
				rs.failed++;
				if (down_since == 0)
					down_since = t0;
				continue;
			}
			if (down_since != 0) {
				long long d = h_now_ms() - down_since;
				rs.unavailable_ms += d;
				if (d > rs.longest_unavailable_ms)
					rs.longest_unavailable_ms = d;
				down_since = 0;
			}
			if (ms > rs.max_ms)
				rs.max_ms = ms;
			if (rs.nlat < 4096)
				rs.lat[rs.nlat++] = ms;
		}
		h_sleep_ms(1000);
	}
	return NULL;
}

struct sample {
	long rss_kib, fds, threads;
	long anon_kib, file_kib, shmem_kib; /* what the RSS is made of (/proc/PID/status) */
};

/* The number after key in /proc/PID/status text, 0 when absent. */
static long status_field(const char *text, const char *key)
{
	const char *p = strstr(text, key);
	return p != NULL ? atol(p + strlen(key)) : 0;
}

static struct sample sample_of(pid_t pid)
{
	struct sample s = {0};
	char path[64], *text;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	text = h_slurp(path);
	s.rss_kib = status_field(text, "VmRSS:");
	s.anon_kib = status_field(text, "RssAnon:");
	s.file_kib = status_field(text, "RssFile:");
	s.shmem_kib = status_field(text, "RssShmem:");
	s.threads = status_field(text, "Threads:");
	free(text);
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "ls %s | wc -l", path);
	FILE *f = popen(cmd, "r");
	if (f != NULL) {
		if (fscanf(f, "%ld", &s.fds) != 1)
			s.fds = -1;
		pclose(f);
	}
	return s;
}

/* A counter of the defender's last heartbeat as the console has it, -1 when not known. */
static long long host_counter(json_t *host, const char *group, const char *key)
{
	json_t *v = json_object_get(json_object_get(json_object_get(host, "capture"), group), key);
	return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

/*
 * Once a minute: the defender's RSS and what it is made of, beside the
 * sizes of its bounded tables (models, process tree), so that growth can be
 * laid at the door of what grew.
 */
static void print_defender_sample(long long since_start_ms)
{
	struct sample s = sample_of(defender_pid);
	json_t *host = h_api_host(&con, &pki, "host-a");

	printf("soak: %lld s: defender RSS %ld KiB (anon %ld, file %ld, shmem %ld), models %lld"
	       " entries in %lld, processes %lld, spool %lld bytes\n",
	       since_start_ms / 1000, s.rss_kib, s.anon_kib, s.file_kib, s.shmem_kib,
	       host_counter(host, "learn", "entries"), host_counter(host, "learn", "models"),
	       host_counter(host, "process", "entries"),
	       host_counter(host, "delivery", "spool_bytes"));
	fflush(stdout);
	json_decref(host);
}

/* The console's PostgreSQL server (its postmaster), or 0. */
static pid_t postgres_pid(void)
{
	char path[H_PATH], *text;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/postgres/data/postmaster.pid", con.state);
	text = h_slurp(path);
	pid = (pid_t)atoi(text);
	free(text);
	return pid;
}

static void start_defender(void)
{
	char conf[H_PATH];
	char *argv[] = {(char *)h_bin("vigil-defender"), "--config", conf, NULL};

	h_defender_conf(dir, &con, pki.ca, pki.host_cert, pki.host_key, NULL, conf);
	snprintf(deflog, sizeof(deflog), "%s/defender.log", dir);
	defender_pid = h_spawn(deflog, argv);
	for (long long until = h_now_ms() + 30000; h_now_ms() < until; h_sleep_ms(100)) {
		char *t = h_slurp(deflog);
		bool up = strstr(t, "registered with the console") != NULL;

		free(t);
		if (up)
			return;
	}
	fprintf(stderr, "soak: the defender did not register:\n%s\n", h_slurp(deflog));
	exit(1);
}

/* Stored exec events of /bin/true whose arguments hold text, in chunks since t0 (epoch s). */
static long long stored_with(const char *like, long long t0)
{
	char sql[1024];

	snprintf(sql, sizeof(sql),
		 "SELECT count(DISTINCT substring(e.body FROM '%s[0-9]+'))"
		 " FROM event_chunks c, unnest(c.e_type, c.e_comm, COALESCE(c.e_text,"
		 " c.e_body::text[])) AS e(type, comm, body)"
		 " WHERE c.ts_last >= to_timestamp(%lld) AND e.type = 'exec' AND e.comm = 'true'"
		 " AND e.body LIKE '%%%s%%'",
		 like, t0, like);
	return db_try(sql);
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

static long long pct(long long *v, int n, int p)
{
	if (n == 0)
		return -1;
	qsort(v, (size_t)n, sizeof(v[0]), cmp_ll);
	return v[(n - 1) * p / 100];
}

int main(int argc, char **argv)
{
	int minutes = 30, restart_every = 300, rate = 20, restarts = 0, nprobe = 0;
	long long probe_ms[1024], t0_epoch = time(NULL), start, warm_end;
	pthread_t load, reader;
	char path[H_PATH];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--minutes") == 0 && i + 1 < argc)
			minutes = atoi(argv[++i]);
		else if (strcmp(argv[i], "--restart-every") == 0 && i + 1 < argc)
			restart_every = atoi(argv[++i]);
		else if (strcmp(argv[i], "--rate") == 0 && i + 1 < argc)
			rate = atoi(argv[++i]);
		else {
			fprintf(stderr,
				"usage: soak [--minutes N] [--restart-every S] [--rate N]\n");
			return 2;
		}
	}
	if (minutes < 1 || restart_every < 30 || rate < 1 || rate > 500) {
		fprintf(stderr, "soak: --minutes >= 1, --restart-every >= 30, --rate 1..500\n");
		return 2;
	}
	if (getenv("VIGIL_BUILD_DIR") == NULL) {
		fprintf(stderr, "soak: set VIGIL_BUILD_DIR (and VIGIL_SOURCE_DIR)\n");
		return 2;
	}
	h_tmpdir(dir);
	atexit(cleanup);
	snprintf(path, sizeof(path), "%s/load", dir);
	mkdir(path, 0700);
	h_pki_make(dir, &pki);
	h_console_start(&con, dir, &pki, NULL);
	start_defender();
	listen_port = h_fixed_port(&listen_fd);

	printf(
	    "soak: %d min, a restart every %d s, %d rounds/s (a program, 10 writes, 2 connects)\n",
	    minutes, restart_every, rate);
	fflush(stdout);
	pthread_create(&load, NULL, load_main, &rate);
	pthread_create(&reader, NULL, reader_main, NULL);
	start = h_now_ms();
	h_sleep_ms(60000 < minutes * 60000 / 4 ? 60000 : minutes * 60000 / 4);
	warm_end = h_now_ms();
	struct sample def0 = sample_of(defender_pid), con0 = sample_of(con.pid);

	for (long long next_restart = start + restart_every * 1000LL, next_sample = h_now_ms(),
		       end = start + minutes * 60000LL;
	     h_now_ms() < end;) {
		char probe[64];
		long long t = h_now_ms();

		if (t >= next_sample) {
			print_defender_sample(t - start);
			next_sample += 60000;
		}
		if (t >= next_restart) {
			if (restarts % 2 == 0) {
				h_console_kill(&con, SIGTERM);
				h_console_restart(&con, &pki, NULL);
				printf("soak: %.0f s: console restarted\n", (t - start) / 1000.0);
			} else {
				pid_t pg = postgres_pid();
				if (pg > 1)
					kill(pg, SIGQUIT);
				printf("soak: %.0f s: PostgreSQL crashed (SIGQUIT %d)\n",
				       (t - start) / 1000.0, (int)pg);
			}
			fflush(stdout);
			restarts++;
			next_restart += restart_every * 1000LL;
		}
		/* A probe: from its exec to its event in the database. */
		snprintf(probe, sizeof(probe), "vigil-soak-probe-%d-", nprobe);
		long long p0 = h_now_ms();
		char arg[80];
		snprintf(arg, sizeof(arg), "%s1", probe);
		run_true(arg);
		while (stored_with(probe, t0_epoch) < 1 && h_now_ms() - p0 < 300000)
			h_sleep_ms(100);
		if (nprobe < 1024)
			probe_ms[nprobe++] = h_now_ms() - p0;
		long long rest = 10000 - (h_now_ms() - t);
		if (rest > 0)
			h_sleep_ms((int)rest);
	}

	atomic_store(&stop_load, true);
	pthread_join(load, NULL);
	long ran = atomic_load(&programs_run);
	struct sample def1 = sample_of(defender_pid), con1 = sample_of(con.pid);
	/* The barrier: a last program, then everything before it is stored or lost. */
	long long b0 = h_now_ms(), stored = -1;
	run_true("vigil-soak-barrier-1");
	while (stored_with("vigil-soak-barrier-", t0_epoch) < 1 && h_now_ms() - b0 < 300000)
		h_sleep_ms(200);
	stored = stored_with("vigil-soak-", t0_epoch);
	atomic_store(&stop_reader, true);
	pthread_join(reader, NULL);

	json_t *host = h_api_host(&con, &pki, "host-a");
	json_t *drops = json_object_get(json_object_get(host, "capture"), "drops");
	long long gaps = db_try("SELECT count(*) FROM audits WHERE kind = 'delivery_gap'");
	/* The pattern wants digits right after "vigil-soak-": probes and the barrier are not
	 * counted. */
	long long numbered = stored;

	printf("\n| what | value |\n|---|---|\n");
	printf("| run | %.1f min, %d restarts (console and PostgreSQL in turn), %ld programs |\n",
	       (h_now_ms() - start) / 60000.0, restarts, ran);
	printf("| programs stored / run | %lld / %ld: **%lld lost** |\n", numbered, ran,
	       ran - numbered);
	printf("| delivery gaps audited | %lld |\n", gaps);
	printf("| defender drops (kernel side) | %s |\n",
	       drops != NULL ? json_dumps(drops, JSON_COMPACT) : "(not said)");
	printf("| probe exec → stored, p50 / p99 / max ms | %lld / %lld / %lld (%d probes) |\n",
	       pct(probe_ms, nprobe, 50), pct(probe_ms, nprobe, 99), pct(probe_ms, nprobe, 100),
	       nprobe);
	printf("| API answers p50 / p99 / max ms | %lld / %lld / %lld (%ld requests, %ld without"
	       " an answer) |\n",
	       pct(rs.lat, rs.nlat, 50), pct(rs.lat, rs.nlat, 99), rs.max_ms, rs.requests,
	       rs.failed);
	printf("| API unavailable | %lld ms in all, longest %lld ms |\n", rs.unavailable_ms,
	       rs.longest_unavailable_ms);
	printf("| defender RSS / fds / threads after %.0f s warm-up → end | %ld KiB / %ld / %ld →"
	       " %ld KiB / %ld / %ld |\n",
	       (warm_end - start) / 1000.0, def0.rss_kib, def0.fds, def0.threads, def1.rss_kib,
	       def1.fds, def1.threads);
	printf("| console RSS / fds / threads (after its last restart) | %ld KiB / %ld / %ld → %ld"
	       " KiB / %ld / %ld |\n",
	       con0.rss_kib, con0.fds, con0.threads, con1.rss_kib, con1.fds, con1.threads);
	json_decref(host);
	return ran == numbered ? 0 : 1;
}
