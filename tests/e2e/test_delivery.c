/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Nothing lost between the kernel and PostgreSQL.  While a load generator
 * creates a known set of files (each one an auditable event), the link is
 * broken in each way the issue names: the console SIGKILLed for 30 s,
 * PostgreSQL stopped for 30 s, the defender SIGKILLed while batches are
 * unacknowledged, the network path cut for 30 s.  After each, every event is
 * in the database exactly once and the batch sequence has no hole.  A spool
 * forced too small produces a gap audit that accounts for every lost batch.
 *
 * VIGIL_FAULT_SECONDS shortens the outages for quick local runs.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "deliver/batch_frame.h"
#include "fsutil.h"
#include "harness.h"
#include "pg/pgembed.h"

static char dir[H_PATH], loaddir[H_PATH];
static struct h_pki pki;
static struct h_console con;
static pid_t defender_pid, gen_pid;
static struct pgembed *ext_pg;

static int outage_s(void)
{
	const char *s = getenv("VIGIL_FAULT_SECONDS");
	return s != NULL ? atoi(s) : 30;
}

static void setup(void)
{
	if (geteuid() != 0)
		cr_skip_test("delivery tests capture real events: they need root for BPF");
	h_tmpdir(dir);
	h_pki_make(dir, &pki);
	snprintf(loaddir, sizeof(loaddir), "%s/load", dir);
	mkdir(loaddir, 0755);
}

static void teardown(void)
{
	if (gen_pid > 0)
		h_stop(gen_pid, SIGKILL, 2000);
	if (defender_pid > 0)
		h_stop(defender_pid, SIGTERM, 10000);
	if (con.pid > 0) {
		kill(con.pid, SIGCONT);
		h_console_kill(&con, SIGTERM);
	}
	pgembed_stop(ext_pg);
	ext_pg = NULL;
	if (!getenv("VIGIL_KEEP_TEST_DIRS"))
		h_rmrf(dir);
}

TestSuite(delivery, .init = setup, .fini = teardown, .timeout = 400);

static pid_t start_defender(const char *console_url, const char *extra)
{
	char conf[H_PATH], text[4096], log[H_PATH];
	FILE *f;

	char pins[H_PATH];

	h_bpf_pin_dir(dir, pins);
	snprintf(conf, sizeof(conf), "%s/defender.conf", dir);
	snprintf(text, sizeof(text),
		 "console = %s\nca = %s\ncert = %s\nkey = %s\nstate_dir = %s/defender-state\n"
		 "bpf_pin_dir = %s\nheartbeat_interval_ms = 500\n%s\n",
		 console_url, pki.ca, pki.host_cert, pki.host_key, dir, pins, extra ? extra : "");
	f = fopen(conf, "w");
	fputs(text, f);
	fclose(f);
	snprintf(log, sizeof(log), "%s/defender.log", dir);
	char *argv[] = {(char *)h_bin("vigil-defender"), "--config", conf, NULL};
	pid_t pid = h_spawn(log, argv);
	/* Ready when it has registered (its log says so). */
	long long until = h_now_ms() + 30000;
	while (h_now_ms() < until) {
		char *t = h_slurp(log);
		int n = 0;
		for (char *p = t; (p = strstr(p, "BPF loaded")) != NULL; p++)
			n++;
		free(t);
		/* One "BPF loaded" line per start of this defender (the log is appended). */
		static int starts;
		if (n > starts) {
			starts = n;
			return pid;
		}
		h_sleep_ms(50);
	}
	cr_assert_fail("defender did not load its BPF programs");
	return -1;
}

/* Create files first..last-1 under loaddir at rate per second, in a child. */
static pid_t start_generator(int first, int last, int rate)
{
	pid_t pid = fork();

	cr_assert(pid >= 0);
	if (pid == 0) {
		char p[H_PATH];
		/* Not the forwarder's sockets: a copy here would keep its port bound through a cut.
		 */
		close_range(3, ~0U, 0);
		for (int i = first; i < last; i++) {
			snprintf(p, sizeof(p), "%s/f-%06d", loaddir, i);
			int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
			if (fd >= 0)
				close(fd);
			usleep(1000000 / rate);
		}
		_exit(0);
	}
	return pid;
}

static void wait_generator(void)
{
	int st;
	cr_assert_eq(waitpid(gen_pid, &st, 0), gen_pid);
	gen_pid = 0;
}

/* Query one number; -1 while the database cannot be reached. */
static long long db_value(const char *conninfo, const char *sql)
{
	PGconn *c = PQconnectdb(conninfo);
	long long v = -1;

	if (PQstatus(c) == CONNECTION_OK) {
		PGresult *r = PQexec(c, sql);
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
		    !PQgetisnull(r, 0, 0))
			v = atoll(PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	PQfinish(c);
	return v;
}

static char conninfo[H_PATH];

static void use_console_db(void)
{
	snprintf(conninfo, sizeof(conninfo),
		 "host=%s/postgres/run port=5432 dbname=vigil user=vigil", con.state);
}

/*
 * The barrier before "no late duplicate", "no hole", "the count stays":
 * everything the defender captured until now is in the database (or
 * counted as lost), as its heartbeats prove (h_wait_delivered).  conninfo
 * names the database the test reads, a console's private one or --db.
 */
static void wait_delivered(void)
{
	h_wait_delivered_dsn(conninfo, "host-a", h_wall_ms(), 60000);
}

/*
 * Whether the spool segment's bytes (len) hold needle in a record: frames
 * as defender/deliver/spool.h lays them out, each record's batch
 * decompressed when it was spooled compressed (batch_frame.h).
 */
static bool segment_holds(const uint8_t *seg, size_t len, const char *needle)
{
	size_t at = 0, nlen = strlen(needle);

	while (len - at >= 24 && memcmp(seg + at, "VSR1", 4) == 0) {
		uint32_t plen;
		struct batch_spooled sb;
		uint8_t *batch = NULL;
		bool found;

		memcpy(&plen, seg + at + 4, 4);
		if (plen > len - at - 24)
			break;
		if (!batch_spool_parse(seg + at + 24, plen, &sb))
			break;
		if (sb.compressed) {
			if (batch_spool_inflate(&sb, &batch) < 0)
				break;
			found = memmem(batch, sb.raw_len, needle, nlen) != NULL;
			free(batch);
		} else {
			found = memmem(sb.data, sb.data_len, needle, nlen) != NULL;
		}
		if (found)
			return true;
		at += 24 + plen;
	}
	return false;
}

/*
 * The spool under dir/defender-state holds file path's event: the
 * generator's last file is spooled, and every file before it (one process
 * creating them in order, read from the ring in order, spooled in order).
 * Each event carries its JSON, path and all.  Fails the test after
 * timeout_ms.
 */
static void wait_spooled(const char *path, int timeout_ms)
{
	char spool[H_PATH];

	snprintf(spool, sizeof(spool), "%s/defender-state/spool", dir);
	for (long long until = h_now_ms() + timeout_ms; h_now_ms() < until; h_sleep_ms(100)) {
		DIR *d = opendir(spool);
		struct dirent *e;
		bool found = false;

		while (d != NULL && !found && (e = readdir(d)) != NULL) {
			char seg[2 * H_PATH];

			if (strncmp(e->d_name, "seg-", 4) != 0)
				continue;
			snprintf(seg, sizeof(seg), "%s/%s", spool, e->d_name);
			char *text = NULL;
			size_t len = 0;
			vigil_err err = {0};
			if (fs_read_file(seg, 64 * 1024 * 1024, &text, &len, &err) == 0)
				found = segment_holds((const uint8_t *)text, len, path);
			free(text);
		}
		if (d != NULL)
			closedir(d);
		if (found)
			return;
	}
	cr_assert_fail("%s is not in the spool (%s) after %d ms", path, spool, timeout_ms);
}

static long long events_for_load(void)
{
	char sql[1024];
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM events WHERE type = 'file' AND body->>'op' = 'open'"
		 " AND body->>'path' LIKE '%s/f-%%'",
		 loaddir);
	return db_value(conninfo, sql);
}

/* Every file of the load exactly once, and batches 1..max without a hole. */
static void expect_exactly_once(int n)
{
	char sql[1024];
	long long until = h_now_ms() + 90000, got = -1;

	while (h_now_ms() < until && (got = events_for_load()) < n)
		h_sleep_ms(250);
	/* The generator has finished: a duplicate of any of its files would be stored by now. */
	wait_delivered();
	got = events_for_load();
	if (got != n) {
		char log[H_PATH];
		snprintf(log, sizeof(log), "%s/defender.log", dir);
		char *text = h_slurp(log);
		size_t len = strlen(text);
		cr_log_error("defender log (last 3000 bytes):\n%s",
			     len > 3000 ? text + len - 3000 : text);
		free(text);
	}
	cr_expect_eq(got, n, "%lld events stored for %d files", got, n);
	snprintf(sql, sizeof(sql),
		 "SELECT count(DISTINCT body->>'path') FROM events WHERE type = 'file' AND"
		 " body->>'op' = 'open' AND body->>'path' LIKE '%s/f-%%'",
		 loaddir);
	cr_expect_eq(db_value(conninfo, sql), n, "distinct paths");
	/*
	 * One statement, one snapshot: the defender goes on sending batches of
	 * what else happens on the host, and a count and a max read apart
	 * straddled one (CI: "batches 1..54 with 53 stored" with 1..53 all
	 * acknowledged, so stored, before either was read).
	 */
	long long holes = db_value(conninfo, "SELECT max(seq) - count(*) FROM batches"
					     " WHERE host_id = 'host-a'");
	long long nb = db_value(conninfo, "SELECT count(*) FROM batches WHERE host_id = 'host-a'");
	long long mn = db_value(conninfo, "SELECT min(seq) FROM batches WHERE host_id = 'host-a'");
	cr_expect_eq(mn, 1, "first batch seq");
	cr_expect_eq(holes, 0, "%lld seq(s) missing among the batches stored (%lld)", holes, nb);
	cr_expect_eq(db_value(conninfo, "SELECT count(*) FROM audits WHERE kind = 'delivery_gap'"),
		     0, "a gap was reported where nothing should be lost");
	cr_log_info("%d events exactly once in %lld batches", n, nb);
}

/* Wait (at most 90 s) until n files of the load are stored; returns how many are. */
static long long wait_events(long long n)
{
	long long until = h_now_ms() + 90000, got = -1;

	while (h_now_ms() < until && (got = events_for_load()) < n)
		h_sleep_ms(250);
	return got;
}

/*
 * The defender's state directory is wiped (a re-imaged host, a container
 * without a volume, an operator clearing a stuck spool): the new defender
 * numbers its batches from 1 again, in a new delivery stream.  Before
 * streams, the console took those batches for duplicates of the old ones,
 * acknowledged them and stored nothing.  Now everything after the restart
 * is stored exactly once, and the reset is audited once.
 */
Test(delivery, a_defender_whose_state_was_wiped_is_a_new_stream_not_duplicates)
{
	char state[H_PATH], sql[1024];

	h_console_start(&con, dir, &pki, NULL);
	use_console_db();
	defender_pid = start_defender(con.listen, NULL);
	gen_pid = start_generator(0, 100, 100);
	wait_generator();
	cr_assert_eq(wait_events(100), 100, "the first defender's events");
	h_stop(defender_pid, SIGTERM, 10000);
	defender_pid = 0;
	snprintf(state, sizeof(state), "%s/defender-state", dir);
	h_rmrf(state);
	defender_pid = start_defender(con.listen, NULL);
	gen_pid = start_generator(100, 400, 100);
	wait_generator();
	cr_expect_eq(wait_events(400), 400, "every file, before and after the reset");
	wait_delivered(); /* a late duplicate would be stored by now */
	cr_expect_eq(events_for_load(), 400, "exactly once");
	snprintf(sql, sizeof(sql),
		 "SELECT count(DISTINCT body->>'path') FROM events WHERE type = 'file' AND"
		 " body->>'op' = 'open' AND body->>'path' LIKE '%s/f-%%'",
		 loaddir);
	cr_expect_eq(db_value(conninfo, sql), 400, "distinct paths");
	cr_expect_eq(db_value(conninfo, "SELECT count(*) FROM delivery_streams"
					" WHERE host_id = 'host-a'"),
		     2, "two streams");
	cr_expect_eq(db_value(conninfo, "SELECT count(*) FROM batches"
					" WHERE host_id = 'host-a' AND seq = 1"),
		     2, "batch 1 of each stream");
	/* The new stream: batches 1..max without a hole. */
	const char *newest = "(SELECT incarnation FROM delivery_streams WHERE host_id = 'host-a'"
			     " ORDER BY first_seen DESC LIMIT 1)";
	snprintf(sql, sizeof(sql),
		 "SELECT max(seq) - count(*) FROM batches WHERE host_id = 'host-a'"
		 " AND incarnation = %s",
		 newest);
	cr_expect_eq(db_value(conninfo, sql), 0, "a hole in the new stream");
	cr_expect_eq(db_value(conninfo, "SELECT count(*) FROM audits WHERE host_id = 'host-a'"
					" AND kind = 'defender_reset'"),
		     1, "the reset is audited once");
	cr_expect_eq(db_value(conninfo, "SELECT (detail->>'old_batches_missing')::bigint"
					" FROM audits WHERE kind = 'defender_reset'"),
		     0, "the old stream had delivered everything");
	cr_expect_eq(db_value(conninfo, "SELECT count(*) FROM audits WHERE kind = 'delivery_gap'"),
		     0);
}

/*
 * Any user could blind a host's defender: 2,000 execs with a 4,000-byte
 * argument from an interactive session made batches whose activity lines
 * the size estimate left out, twice the console's 1 MiB limit.  The console
 * cut the connection at every attempt and the defender resent the same batch
 * forever.  Batches are now packed to their exact size: every exec arrives,
 * nothing is resent, no gap.
 */
Test(delivery, an_exec_storm_with_long_arguments_is_delivered_whole)
{
	char sql[512];
	long long got = -1;

	h_console_start(&con, dir, &pki, NULL);
	use_console_db();
	defender_pid = start_defender(con.listen, NULL);
	h_pty_session("a=$(printf '%04000d' 0); i=0; while [ $i -lt 2000 ]; do"
		      " /bin/true vigil-storm $a; i=$((i+1)); done; exit\n",
		      120000);
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM events WHERE type = 'exec' AND comm = 'true'"
		 " AND body::text LIKE '%%vigil-storm%%'");
	for (long long until = h_now_ms() + 60000; h_now_ms() < until; h_sleep_ms(500))
		if ((got = db_value(conninfo, sql)) >= 2000)
			break;
	/* The session has ended: a resent batch or a hole would show by now. */
	wait_delivered();
	got = db_value(conninfo, sql);
	cr_expect_eq(got, 2000, "every exec of the storm is stored once");
	cr_expect_gt(db_value(conninfo, "SELECT count(*) FROM activity WHERE host_id = 'host-a'"
					" AND summary LIKE '%vigil-storm%'"),
		     1999, "and its activity lines");
	cr_expect_eq(db_value(conninfo, "SELECT count(*) FROM audits WHERE kind = 'delivery_gap'"),
		     0);
	cr_expect_eq(db_value(conninfo, "SELECT max(seq) - count(*) FROM batches"
					" WHERE host_id = 'host-a'"),
		     0, "batches without a hole");
	/*
	 * After the console's first reply said it takes them, batches travel
	 * compressed (the counters come with the next heartbeat, every 500 ms).
	 */
	long long lz4 = 0, packed = 0, sent = 0;
	for (long long until = h_now_ms() + 5000; h_now_ms() < until && lz4 <= 0; h_sleep_ms(200)) {
		lz4 = db_value(conninfo, "SELECT (capture->'delivery'->>'batches_lz4')::bigint"
					 " FROM hosts WHERE host_id = 'host-a'");
		packed = db_value(conninfo, "SELECT (capture->'delivery'->>'batch_bytes')::bigint"
					    " FROM hosts WHERE host_id = 'host-a'");
		sent =
		    db_value(conninfo, "SELECT (capture->'delivery'->>'batch_bytes_sent')::bigint"
				       " FROM hosts WHERE host_id = 'host-a'");
	}
	cr_expect_gt(lz4, 0, "batches were sent compressed");
	cr_expect_lt(sent * 3, packed, "at under a third of their size (%lld of %lld bytes)", sent,
		     packed);
	char log[H_PATH];
	snprintf(log, sizeof(log), "%s/defender.log", dir);
	char *text = h_slurp(log);
	cr_expect_null(strstr(text, "not delivered"), "a batch was resent");
	cr_expect_null(strstr(text, "lost connection"), "the console cut the link");
	cr_expect_null(strstr(text, "oversize"), "something was too large to send");
	free(text);
}

Test(delivery, console_killed_for_a_while_loses_nothing)
{
	h_console_start(&con, dir, &pki, NULL);
	use_console_db();
	defender_pid = start_defender(con.listen, NULL);
	gen_pid = start_generator(0, 300, 100);
	h_sleep_ms(1000); /* pacing, not a barrier: the kill comes while the load runs */
	h_console_kill(&con, SIGKILL);
	h_sleep_ms(outage_s() * 1000); /* the outage itself, not a barrier */
	h_console_restart(&con, &pki, NULL);
	wait_generator();
	expect_exactly_once(300);
}

/* A PostgreSQL of the test's own under dir/extpg, as a console's --db; conninfo points at it. */
static void start_external_pg(char pgdir[H_PATH], char dsn[H_PATH])
{
	vigil_err err = {0};

	snprintf(pgdir, H_PATH, "%s/extpg", dir);
	mkdir(pgdir, 0755);
	ext_pg = pgembed_start(pgdir, 60000, &err);
	cr_assert_not_null(ext_pg, "%s", err.msg);
	snprintf(dsn, H_PATH, "%s", pgembed_dsn(ext_pg));
	snprintf(conninfo, sizeof(conninfo), "%s", dsn);
}

Test(delivery, postgres_stopped_for_a_while_loses_nothing)
{
	char pgdir[H_PATH], dsn[H_PATH];
	vigil_err err = {0};

	start_external_pg(pgdir, dsn);
	const char *extra[] = {"--db", dsn, NULL};
	h_console_start(&con, dir, &pki, extra);
	defender_pid = start_defender(con.listen, NULL);
	gen_pid = start_generator(0, 300, 100);
	h_sleep_ms(1000); /* pacing, not a barrier: the stop comes while the load runs */
	pgembed_stop(ext_pg);
	ext_pg = NULL;
	h_sleep_ms(outage_s() * 1000); /* the outage itself, not a barrier */
	ext_pg = pgembed_start(pgdir, 60000, &err);
	cr_assert_not_null(ext_pg, "%s", err.msg);
	wait_generator();
	expect_exactly_once(300);
	int st;
	cr_expect_not(h_exited(con.pid, &st), "the console died with its database");
}

Test(delivery, defender_killed_with_unacknowledged_batches_loses_nothing)
{
	h_console_start(&con, dir, &pki, NULL);
	use_console_db();
	defender_pid = start_defender(con.listen, NULL);
	/* Freeze the console so batches pile up unacknowledged in the spool. */
	cr_assert_eq(kill(con.pid, SIGSTOP), 0);
	gen_pid = start_generator(0, 200, 200);
	wait_generator();
	/* Killed only once the load is in the spool, unacknowledged: its last file is. */
	char last[H_PATH];
	snprintf(last, sizeof(last), "%s/f-%06d", loaddir, 199);
	wait_spooled(last, 20000);
	h_stop(defender_pid, SIGKILL, 5000);
	defender_pid = start_defender(con.listen, NULL);
	cr_assert_eq(kill(con.pid, SIGCONT), 0);
	gen_pid = start_generator(200, 300, 200);
	wait_generator();
	expect_exactly_once(300);
}

/*
 * Killed while the load runs, down for 2 s: the programs it pinned keep
 * capturing into the pinned ring, the new defender takes them over and
 * reads on from what the old one had spooled.  Nothing the load did while
 * no defender ran, and nothing the dead one held in memory, is missing.
 */
Test(delivery, defender_killed_while_events_happen_loses_nothing)
{
	h_console_start(&con, dir, &pki, NULL);
	use_console_db();
	defender_pid = start_defender(con.listen, NULL);
	gen_pid = start_generator(0, 600, 100); /* 6 s of load */
	h_sleep_ms(2000); /* pacing, not a barrier: the kill comes while the load runs */
	h_stop(defender_pid, SIGKILL, 5000);
	h_sleep_ms(2000); /* the time without a defender, not a barrier */
	defender_pid = start_defender(con.listen, NULL);

	/* A second defender on the same pins is refused, and the first captures on. */
	char conf[H_PATH], log2[H_PATH], conftext[2048], pins[H_PATH];
	h_bpf_pin_dir(dir, pins);
	snprintf(conf, sizeof(conf), "%s/second.conf", dir);
	snprintf(log2, sizeof(log2), "%s/second.log", dir);
	snprintf(conftext, sizeof(conftext),
		 "console = %s\nca = %s\ncert = %s\nkey = %s\nstate_dir = %s/second-state\n"
		 "bpf_pin_dir = %s\n",
		 con.listen, pki.ca, pki.host_cert, pki.host_key, dir, pins);
	FILE *f = fopen(conf, "w");
	fputs(conftext, f);
	fclose(f);
	char *argv[] = {(char *)h_bin("vigil-defender"), "--config", conf, NULL};
	pid_t second = h_spawn(log2, argv);
	char *out = NULL;
	for (long long until = h_now_ms() + 10000; h_now_ms() < until; h_sleep_ms(100)) {
		free(out);
		out = h_slurp(log2);
		if (strstr(out, "another defender captures with bpf_pin_dir") != NULL)
			break;
	}
	cr_expect(strstr(out, "another defender captures with bpf_pin_dir") != NULL,
		  "second defender's log: %s", out);
	free(out);
	h_stop(second, SIGTERM, 10000);

	wait_generator();
	expect_exactly_once(600);
	char log[H_PATH];
	snprintf(log, sizeof(log), "%s/defender.log", dir);
	char *text = h_slurp(log);
	cr_expect(strstr(text, "took over") != NULL,
		  "the restarted defender did not say it took over");
	free(text);
}

/* ---- a TCP forwarder whose path we can cut ---- */

struct proxy {
	int port, target;
	atomic_bool cut, stop;
	pthread_t thread;
	/* What the forwarder is doing, for the failure message when a cut does not heal. */
	atomic_long loops, accepted, refused_full, connect_failed;
	atomic_int pairs;
};

/* The whole buffer, however many writes it takes (the peer may be slow). */
static bool write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, buf, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		buf += w;
		len -= (size_t)w;
	}
	return true;
}

static void *proxy_main(void *arg)
{
	struct proxy *p = arg;
	int lfd = -1, pairs[256][2], npairs = 0;

	while (!atomic_load(&p->stop)) {
		atomic_fetch_add(&p->loops, 1);
		atomic_store(&p->pairs, npairs);
		if (atomic_load(&p->cut)) {
			/* The path is down: every connection dies, nothing is accepted. */
			for (int i = 0; i < npairs; i++) {
				close(pairs[i][0]);
				close(pairs[i][1]);
			}
			npairs = 0;
			if (lfd >= 0)
				close(lfd);
			lfd = -1;
			h_sleep_ms(50);
			continue;
		}
		if (lfd < 0) {
			struct sockaddr_in sa = {.sin_family = AF_INET,
						 .sin_port = htons(p->port),
						 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
			int one = 1;
			lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (bind(lfd, (void *)&sa, sizeof(sa)) != 0 || listen(lfd, 16) != 0) {
				close(lfd);
				lfd = -1;
				h_sleep_ms(50);
				continue;
			}
		}
		struct pollfd fds[513];
		int n = 0;
		fds[n++] = (struct pollfd){.fd = lfd, .events = POLLIN};
		for (int i = 0; i < npairs; i++) {
			fds[n++] = (struct pollfd){.fd = pairs[i][0], .events = POLLIN};
			fds[n++] = (struct pollfd){.fd = pairs[i][1], .events = POLLIN};
		}
		int polled = npairs; /* pairs accepted below were not polled yet */
		if (poll(fds, (nfds_t)n, 50) <= 0)
			continue;
		if ((fds[0].revents & POLLIN) && npairs >= 256)
			atomic_fetch_add(&p->refused_full, 1);
		if ((fds[0].revents & POLLIN) && npairs < 256) {
			int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (c >= 0) /* accept4 only to not block; the pair itself uses timeouts */
				fcntl(c, F_SETFL, fcntl(c, F_GETFL) & ~O_NONBLOCK);
			struct sockaddr_in ta = {.sin_family = AF_INET,
						 .sin_port = htons(p->target),
						 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
			int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			/* Nothing in the forwarder may block for long: a stuck forwarder is a cut
			 * that never heals. */
			struct timeval tv = {.tv_sec = 2};
			setsockopt(t, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
			setsockopt(t, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			if (c >= 0) {
				setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
				setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			}
			if (c >= 0 && connect(t, (void *)&ta, sizeof(ta)) == 0) {
				atomic_fetch_add(&p->accepted, 1);
				pairs[npairs][0] = c;
				pairs[npairs][1] = t;
				npairs++;
			} else {
				if (c >= 0) {
					atomic_fetch_add(&p->connect_failed, 1);
					close(c);
				}
				close(t);
			}
		}
		for (int i = 0; i < polled && i < npairs; i++) {
			for (int side = 0; side < 2; side++) {
				struct pollfd *pf = &fds[1 + 2 * i + side];
				char buf[65536];
				if (!(pf->revents & (POLLIN | POLLHUP | POLLERR)))
					continue;
				ssize_t r = read(pairs[i][side], buf, sizeof(buf));
				if (r <= 0 || !write_all(pairs[i][1 - side], buf, (size_t)r)) {
					close(pairs[i][0]);
					close(pairs[i][1]);
					pairs[i][0] = pairs[npairs - 1][0];
					pairs[i][1] = pairs[npairs - 1][1];
					npairs--;
					polled =
					    0; /* indexes moved: poll again before reading more */
					break;
				}
			}
		}
	}
	for (int i = 0; i < npairs; i++) {
		close(pairs[i][0]);
		close(pairs[i][1]);
	}
	if (lfd >= 0)
		close(lfd);
	return NULL;
}

Test(delivery, network_path_cut_for_a_while_loses_nothing)
{
	static struct proxy px;
	char url[64];

	/*
	 * This test was flaky (about 1 run in 8) for two reasons, both fixed:
	 * the defender inherited the forwarder's listening socket, which kept
	 * the port bound after the cut; and a pipe whose far end vanished was
	 * never noticed as closed, so the req socket never redialed (the
	 * defender now closes connections its heartbeats get no answer over).
	 */
	signal(SIGPIPE, SIG_IGN); /* the forwarder writes to sockets that may have closed */
	h_console_start(&con, dir, &pki, NULL);
	use_console_db();
	px.port = h_free_port();
	px.target = con.link_port;
	cr_assert_eq(pthread_create(&px.thread, NULL, proxy_main, &px), 0);
	snprintf(url, sizeof(url), "tls+tcp://127.0.0.1:%d", px.port);
	defender_pid = start_defender(url, NULL);
	gen_pid = start_generator(0, 300, 100);
	h_sleep_ms(1000); /* pacing, not a barrier: the cut comes while the load runs */
	atomic_store(&px.cut, true);
	/* The issue gives no length for this cut; 5 s spans several redial attempts. */
	h_sleep_ms((outage_s() < 5 ? outage_s() : 5) * 1000); /* the cut itself, not a barrier */
	atomic_store(&px.cut, false);
	long accepted_at_heal = atomic_load(&px.accepted);
	long long healed = h_wall_ms();
	/*
	 * After the cut heals, the defender must be back within a few redial
	 * periods: the console stores a heartbeat (or hello) after the heal.
	 */
	char sql[256];
	bool back = false;
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM hosts WHERE host_id = 'host-a'"
		 " AND last_seen > to_timestamp(%lld / 1000.0)",
		 healed);
	for (long long until = h_now_ms() + 40000; h_now_ms() < until && !back; h_sleep_ms(250))
		back = db_value(conninfo, sql) == 1;
	if (!back) {
		char cmd[256];
		long loops = atomic_load(&px.loops);

		h_sleep_ms(1000); /* a measurement (the forwarder's loops in 1 s), not a barrier */
		fprintf(stderr,
			"cut did not heal: forwarder loops %ld -> %ld in 1 s, pairs %d, "
			"accepted %ld (at heal %ld), accept refused as full %ld, "
			"console connect failed %ld\n",
			loops, atomic_load(&px.loops), atomic_load(&px.pairs),
			atomic_load(&px.accepted), accepted_at_heal, atomic_load(&px.refused_full),
			atomic_load(&px.connect_failed));
		snprintf(cmd, sizeof(cmd), "ss -tanp | grep -E ':(%d|%d) ' 1>&2", px.port,
			 con.link_port);
		if (system(cmd) != 0)
			fprintf(stderr, "(ss found nothing)\n");
		cr_assert_fail("the defender did not come back within 40 s of the cut healing");
	}
	wait_generator();
	expect_exactly_once(300);
	atomic_store(&px.stop, true);
	pthread_join(px.thread, NULL);
}

Test(delivery, spool_too_small_reports_a_gap_with_the_right_count)
{
	/* No console at first: everything goes to a 128 KiB spool, which must drop. */
	int port = h_free_port();
	char url[64];

	snprintf(url, sizeof(url), "tls+tcp://127.0.0.1:%d", port);
	defender_pid = start_defender(url, "spool_max_kb = 128");
	gen_pid = start_generator(0, 1500, 500);
	wait_generator();
	/*
	 * Pacing, not a barrier: the console comes after the load, which has
	 * overflowed the spool by then (600 KB of events into 128 KiB); the
	 * account below holds whenever it comes.  (Not wait_spooled: the host's
	 * other batches may push the load's last one out of so small a spool.)
	 */
	h_sleep_ms(1000);
	/* Now a console on that port. */
	memset(&con, 0, sizeof(con));
	snprintf(con.state, H_PATH, "%s/console", dir);
	snprintf(con.log, H_PATH, "%s/console.log", dir);
	con.link_port = port;
	con.api_port = h_free_port();
	snprintf(con.listen, sizeof(con.listen), "%s", url);
	snprintf(con.api, sizeof(con.api), "https://127.0.0.1:%d", con.api_port);
	h_console_restart(&con, &pki, NULL);
	use_console_db();

	long long until = h_now_ms() + 60000, gaps = 0;
	while (h_now_ms() < until &&
	       (gaps = db_value(conninfo, "SELECT count(*) FROM audits WHERE kind ="
					  " 'delivery_gap'")) <= 0)
		h_sleep_ms(250);
	cr_assert_gt(gaps, 0, "no gap audit; defender log:\n%s", "(see test dir)");
	wait_delivered(); /* the rest of the spool drains */
	long long lost = db_value(conninfo, "SELECT sum((detail->>'count')::bigint) FROM audits"
					    " WHERE kind = 'delivery_gap'");
	/* One statement, one snapshot (expect_exactly_once says why). */
	long long missing = db_value(conninfo, "SELECT max(seq) - count(*) FROM batches");
	long long stored = db_value(conninfo, "SELECT count(*) FROM batches");
	cr_expect_gt(lost, 0);
	/* Every seq is either stored or accounted for as lost. */
	cr_expect_eq(missing, lost, "%lld seq(s) not stored, %lld reported lost", missing, lost);
	long long events = events_for_load();
	cr_expect_lt(events, 1500, "a 128 KiB spool kept everything?");
	cr_log_info(
	    "small spool: %lld batches stored, %lld reported lost, %lld of 1500 events kept",
	    stored, lost, events);
}

Test(delivery, fails_over_between_consoles_sharing_a_database)
{
	char pgdir[H_PATH], dsn[H_PATH], bdir[H_PATH], cfg_extra[256];
	struct h_console b;

	start_external_pg(pgdir, dsn);
	const char *extra[] = {"--db", dsn, NULL};
	h_console_start(&con, dir, &pki, extra);
	snprintf(bdir, sizeof(bdir), "%s/b", dir);
	mkdir(bdir, 0755);
	h_console_start(&b, bdir, &pki, extra);
	/* Two endpoints in the defender's configuration: the first, and the other as a second line.
	 */
	snprintf(cfg_extra, sizeof(cfg_extra), "console = %s", b.listen);
	defender_pid = start_defender(con.listen, cfg_extra);
	gen_pid = start_generator(0, 300, 100);
	h_sleep_ms(1000); /* pacing, not a barrier: the kill comes while the load runs */
	h_console_kill(&con, SIGKILL); /* the first console is gone for good */
	wait_generator();
	expect_exactly_once(300);
	h_console_kill(&b, SIGTERM);
}
