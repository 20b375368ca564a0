/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The link under attack, with real daemons: a defender stops within 5 s of
 * SIGTERM whatever its link is doing (the console frozen mid-handshake,
 * frozen mid-batch, killed mid-batch), and a storm of connects, unverified
 * peers and console restarts leaves it connected again within its backoff
 * ceiling once the storm ends.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
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

#include <nng/protocol/reqrep0/rep.h>
#include "tls.h"

/* The defender's backoff ceiling (uplink.c: NNG_OPT_RECONNMAXT). */
#define BACKOFF_CEILING_MS 5000

static char dir[H_PATH], loaddir[H_PATH];
static struct h_pki pki;
static struct h_console con;
static pid_t defender_pid, load_pid;
static int frozen_fd = -1;
/* Connections the frozen listener took (never answered), and whether each sent anything. */
#define FROZEN_MAX 16
static int frozen_conns[FROZEN_MAX];
static bool frozen_sent[FROZEN_MAX];
static size_t nfrozen;

static void setup(void)
{
	if (geteuid() != 0)
		cr_skip_test("these tests run a real defender: they need root for BPF");
	h_tmpdir(dir);
	h_pki_make(dir, &pki);
	snprintf(loaddir, sizeof(loaddir), "%s/load", dir);
	mkdir(loaddir, 0755);
}

static void fake_stop(void);

static void teardown(void)
{
	fake_stop();
	if (load_pid > 0)
		h_stop(load_pid, SIGKILL, 2000);
	if (defender_pid > 0)
		h_stop(defender_pid, SIGKILL, 5000);
	if (con.pid > 0) {
		kill(con.pid, SIGCONT);
		h_console_kill(&con, SIGTERM);
	}
	if (frozen_fd >= 0)
		close(frozen_fd);
	for (size_t i = 0; i < nfrozen; i++)
		close(frozen_conns[i]);
	if (!getenv("VIGIL_KEEP_TEST_DIRS"))
		h_rmrf(dir);
}

TestSuite(hostile, .init = setup, .fini = teardown, .timeout = 300);

static void defender_log(char out[H_PATH])
{
	snprintf(out, H_PATH, "%s/defender.log", dir);
}

/* How often needle occurs in the defender's log. */
static int log_count(const char *needle)
{
	char log[H_PATH];
	int n = 0;

	defender_log(log);
	char *t = h_slurp(log);
	for (char *p = t; (p = strstr(p, needle)) != NULL; p++)
		n++;
	free(t);
	return n;
}

/* Start a defender for console URL url; waits until it loaded its BPF programs. */
static pid_t start_defender_at(const char *url)
{
	struct h_console target = {0};
	char conf[H_PATH], log[H_PATH];
	int before = log_count("BPF loaded");

	snprintf(target.listen, sizeof(target.listen), "%s", url);
	h_defender_conf(dir, &target, pki.ca, pki.host_cert, pki.host_key,
			"heartbeat_interval_ms = 500", conf);
	defender_log(log);
	char *argv[] = {(char *)h_bin("vigil-defender"), "--config", conf, NULL};
	pid_t pid = h_spawn(log, argv);
	for (long long until = h_now_ms() + 30000; h_now_ms() < until; h_sleep_ms(50))
		if (log_count("BPF loaded") > before)
			return pid;
	cr_assert_fail("the defender did not load its BPF programs");
	return -1;
}

/* Wait until the defender's log has more than n of needle; returns whether it did in time. */
static bool wait_log(const char *needle, int n, int timeout_ms)
{
	for (long long until = h_now_ms() + timeout_ms; h_now_ms() < until; h_sleep_ms(50))
		if (log_count(needle) > n)
			return true;
	return false;
}

/* SIGTERM the defender; returns how long it took to exit (ms), or -1 after 15 s (then killed). */
static long long sigterm_ms(void)
{
	long long t0 = h_now_ms();
	int st;

	cr_assert_eq(kill(defender_pid, SIGTERM), 0);
	while (!h_exited(defender_pid, &st)) {
		if (h_now_ms() - t0 > 15000) {
			h_stop(defender_pid, SIGKILL, 5000);
			defender_pid = 0;
			return -1;
		}
		h_sleep_ms(20);
	}
	defender_pid = 0;
	return h_now_ms() - t0;
}

/* A file creator in a child, until killed: events for the defender to batch. */
static pid_t start_load(void)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char p[H_PATH];
		close_range(3, ~0U, 0);
		for (unsigned i = 0;; i++) {
			snprintf(p, sizeof(p), "%s/f-%u", loaddir, i % 1000);
			int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			if (fd >= 0)
				close(fd);
			usleep(500);
		}
	}
	return pid;
}

static void expect_clean_stop(long long ms, const char *what)
{
	cr_expect_geq(ms, 0, "%s: the defender did not stop within 15 s", what);
	cr_expect_leq(ms, 5000, "%s: the defender took %lld ms to stop", what, ms);
	cr_expect_eq(log_count("did not finish within"), 0,
		     "%s: the stop hung and the deadline ended it", what);
	cr_expect_eq(log_count("stopping"), 1, "%s: the defender logged its stop", what);
	cr_log_info("%s: stopped in %lld ms", what, ms);
}

/*
 * A TCP listener on 127.0.0.1 that accepts and never answers (frozen_take
 * accepts what the kernel has accepted, to see what arrives).
 */
static int frozen_listener(int *ret_port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(fd, 64), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	cr_assert_eq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
	*ret_port = ntohs(a.sin_port);
	return fd;
}

/*
 * Take what reached the frozen listener: accept its connections (and keep
 * them, unanswered: to the peer nothing changes), read what each sent.
 * Returns how many connections have sent something: a TLS client hello,
 * the first thing a client sends.
 */
static size_t frozen_take(void)
{
	char buf[4096];
	size_t spoke = 0;
	int c;

	while (nfrozen < FROZEN_MAX && (c = accept4(frozen_fd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
		frozen_conns[nfrozen++] = c;
	for (size_t i = 0; i < nfrozen; i++) {
		if (recv(frozen_conns[i], buf, sizeof(buf), MSG_DONTWAIT) > 0)
			frozen_sent[i] = true;
		spoke += frozen_sent[i];
	}
	return spoke;
}

/*
 * Whether a connection to 127.0.0.1:port holds bytes its (stopped) owner has
 * not read: a request that waits on it.  From /proc/net/tcp, the local
 * end's receive queue.
 */
static bool unread_at(int port)
{
	FILE *f = fopen("/proc/net/tcp", "re");
	char line[512];
	bool found = false;

	while (f != NULL && !found && fgets(line, sizeof(line), f) != NULL) {
		unsigned lport, st;
		unsigned long txq, rxq;

		/* sl local_address rem_address st tx_queue:rx_queue ... */
		if (sscanf(line, " %*d: %*8x:%x %*8x:%*x %x %lx:%lx", &lport, &st, &txq, &rxq) ==
			4 &&
		    (int)lport == port && st == 1 /* ESTABLISHED */ && rxq > 0)
			found = true;
	}
	if (f != NULL)
		fclose(f);
	return found;
}

/* Whether every thread of pid is stopped (SIGSTOP): it reads nothing any more. */
static bool all_stopped(pid_t pid)
{
	char path[64];
	DIR *d;
	struct dirent *e;
	bool stopped = true;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	if ((d = opendir(path)) == NULL)
		return false;
	while (stopped && (e = readdir(d)) != NULL) {
		char stat[128], line[512];
		const char *paren;

		if (e->d_name[0] == '.')
			continue;
		snprintf(stat, sizeof(stat), "/proc/%d/task/%s/stat", (int)pid, e->d_name);
		FILE *f = fopen(stat, "re");
		if (f == NULL)
			continue; /* the thread ended */
		if (fgets(line, sizeof(line), f) != NULL && (paren = strrchr(line, ')')) != NULL)
			stopped = paren[2] == 'T' || paren[2] == 't';
		fclose(f);
		n++;
	}
	closedir(d);
	return stopped && n > 0;
}

Test(hostile, sigterm_stops_the_defender_while_its_console_is_frozen_mid_handshake)
{
	char url[128];
	int port;

	frozen_fd = frozen_listener(&port);
	snprintf(url, sizeof(url), "tls+tcp://127.0.0.1:%d", port);
	defender_pid = start_defender_at(url);
	/*
	 * Its first hello waits on a handshake the peer never answers (nng gives
	 * it 10 s); after 5 s without an answer its diagnosis dials a connection
	 * of its own and waits on that handshake too (3 s).  The stop comes
	 * then: once a second connection has sent its client hello.
	 */
	bool diagnosing = false;
	for (long long until = h_now_ms() + 15000; h_now_ms() < until && !diagnosing;
	     h_sleep_ms(20))
		diagnosing = frozen_take() >= 2;
	cr_assert(diagnosing,
		  "the defender's diagnosis never reached the frozen console (%zu"
		  " connection(s) spoke)",
		  frozen_take());
	expect_clean_stop(sigterm_ms(), "frozen mid-handshake");
}

Test(hostile, sigterm_stops_the_defender_while_its_console_is_frozen_mid_batch)
{
	h_console_start(&con, dir, &pki, NULL);
	defender_pid = start_defender_at(con.listen);
	cr_assert(wait_log("registered with the console", 0, 20000), "positive control");
	load_pid = start_load();
	h_sleep_ms(1500); /* pacing, not a barrier: the load keeps batches going */
	cr_assert_eq(kill(con.pid, SIGSTOP), 0);
	/*
	 * Requests now wait on the frozen console: once all its threads are
	 * stopped, its end of the link holds bytes it does not read (batches
	 * leave every 250 ms with the load, a heartbeat every 500 ms).
	 */
	bool waiting = false;
	for (long long until = h_now_ms() + 10000; h_now_ms() < until && !waiting; h_sleep_ms(20))
		waiting = all_stopped(con.pid) && unread_at(con.link_port);
	cr_assert(waiting, "nothing waits on the frozen console");
	expect_clean_stop(sigterm_ms(), "frozen mid-batch");
}

Test(hostile, sigterm_stops_the_defender_after_its_console_was_killed_mid_batch)
{
	h_console_start(&con, dir, &pki, NULL);
	defender_pid = start_defender_at(con.listen);
	cr_assert(wait_log("registered with the console", 0, 20000), "positive control");
	load_pid = start_load();
	h_sleep_ms(1500); /* pacing, not a barrier: the load keeps batches going */
	int lost = log_count("lost connection to console");
	h_console_kill(&con, SIGKILL);
	/* Stopped once it knows: its requests wait for a console it redials. */
	cr_assert(wait_log("lost connection to console", lost, 10000),
		  "the defender did not notice its console was killed");
	expect_clean_stop(sigterm_ms(), "killed mid-batch");
}

/* Connect to port and close at once, or after sending junk, count times as fast as it can. */
static void *storm_peers(void *arg)
{
	const int *port = arg;

	for (int i = 0; i < 400; i++) {
		struct sockaddr_in a = {.sin_family = AF_INET,
					.sin_port = htons((uint16_t)*port),
					.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0)
			continue;
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && i % 2 == 0)
			(void)!write(fd, "\x16\x03\x01\x00\x05junk!", 10);
		close(fd);
		usleep(5000);
	}
	return NULL;
}

Test(hostile, a_storm_leaves_the_defender_connected_again_within_its_backoff_ceiling)
{
	pthread_t peers;

	h_console_start(&con, dir, &pki, NULL);
	defender_pid = start_defender_at(con.listen);
	cr_assert(wait_log("registered with the console", 0, 20000), "positive control");
	load_pid = start_load();
	/* The storm: 400 unverified peers, and the console killed and restarted three times. */
	cr_assert_eq(pthread_create(&peers, NULL, storm_peers, &con.link_port), 0);
	for (int i = 0; i < 3; i++) {
		h_sleep_ms(700); /* pacing the storm, not a barrier */
		h_console_kill(&con, SIGKILL);
		h_sleep_ms(300); /* pacing the storm, not a barrier */
		h_console_restart(&con, &pki, NULL);
	}
	pthread_join(peers, NULL);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	long long end = h_now_ms(), end_wall = now.tv_sec * 1000LL + now.tv_nsec / 1000000;
	/*
	 * Once it ends: the last console hears from the defender (a hello or a
	 * heartbeat) within the backoff ceiling and a heartbeat interval.
	 */
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "SELECT coalesce(max((extract(epoch FROM last_seen) * 1000)::bigint), 0)"
		 " FROM hosts WHERE host_id = 'host-a' AND connected");
	long long seen = 0;
	while (h_now_ms() - end < BACKOFF_CEILING_MS + 2500 &&
	       (seen = h_db_count(&con, sql)) <= end_wall)
		h_sleep_ms(100);
	long long took = h_now_ms() - end;
	cr_expect_gt(seen, end_wall,
		     "the console did not hear from the defender within %d ms of"
		     " the storm's end",
		     BACKOFF_CEILING_MS + 2500);
	cr_log_info("the last console heard from the defender %lld ms after the storm", took);
	/* And it stays up: heard from again within 2 s (4 heartbeats), shown as connected. */
	long long later = seen;
	for (long long until = h_now_ms() + 2000; h_now_ms() < until && later <= seen;
	     h_sleep_ms(100))
		later = h_db_count(&con, sql);
	cr_expect_gt(later, seen, "heartbeats stopped after the storm");
	json_t *host = h_api_host(&con, &pki, "host-a");
	cr_assert_not_null(host);
	cr_expect(json_is_true(json_object_get(host, "connected")), "the host shows as connected");
	json_decref(host);
	expect_clean_stop(sigterm_ms(), "after the storm");
}

/* Whether text has a byte a terminal would act on (C0 but newline, DEL, or a C1 control). */
static bool has_terminal_control(const char *text)
{
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if ((*p < 0x20 && *p != '\n') || *p == 0x7f)
			return true;
		if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] < 0xa0)
			return true;
	}
	return false;
}

/* Run "vigilctl hosts [extra]" against the console; its output (caller frees). */
static char *vigilctl_hosts(const char *extra)
{
	char out[H_PATH], tokfile[H_PATH];
	char *argv[] = {(char *)h_bin("vigilctl"),
			"--api",
			con.api,
			"--ca",
			pki.ca,
			"--token-file",
			tokfile,
			"hosts",
			(char *)extra,
			NULL};

	snprintf(out, sizeof(out), "%s/vigilctl.out", dir);
	snprintf(tokfile, sizeof(tokfile), "%s/api-token", con.state);
	unlink(out); /* h_run appends */
	cr_assert_eq(h_run(out, 15000, argv), 0);
	return h_slurp(out);
}

/*
 * A host's own strings (hostname, OS, labels: whatever its hello says) with
 * terminal escapes must not act on the terminal of an operator running
 * vigilctl, nor forge lines in the console's log.
 */
Test(hostile, escapes_in_host_strings_reach_neither_vigilctl_nor_the_log_raw)
{
	static const char evil[] = "\x1b]0;owned\x07web\x1b[2J\xc2\x9b"
				   "31m\r\nforged line";
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Hello hello = VIGIL__HELLO__INIT;
	Vigil__Label label = VIGIL__LABEL__INIT, *labels[1] = {&label};
	struct h_link link;

	h_console_start(&con, dir, &pki, NULL);
	hello.hostname = (char *)evil;
	hello.os = (char *)evil;
	hello.kernel = "6.18";
	hello.defender_version = "0.1.0";
	label.key = "env";
	label.value = (char *)evil;
	hello.labels = labels;
	hello.n_labels = 1;
	env.seq = 1;
	env.body_case = VIGIL__ENVELOPE__BODY_HELLO;
	env.hello = &hello;
	h_link_open(&link, &con, &pki, pki.host_cert, pki.host_key);
	Vigil__Reply *r = h_link_request(&link, &env);
	cr_assert_eq(r->status, VIGIL__REPLY__STATUS__OK, "positive control: the hello is stored");
	vigil__reply__free_unpacked(r, NULL);
	h_link_close(&link);

	char *text = vigilctl_hosts(NULL);
	cr_expect(strstr(text, "\\x1b]0;owned\\x07web") != NULL, "the hostname, written out:\n%s",
		  text);
	cr_expect(strstr(text, "env=\\x1b]0;owned") != NULL, "the label, written out:\n%s", text);
	cr_expect_not(has_terminal_control(text), "vigilctl printed a control character");
	free(text);
	text = vigilctl_hosts("--json");
	cr_expect(strstr(text, "\\u001B]0;owned\\u0007web") != NULL,
		  "the JSON keeps the hostname:\n%s", text);
	cr_expect_not(has_terminal_control(text), "vigilctl --json printed a control character");
	free(text);
	/* The console logs the hostname when the host registers. */
	text = h_slurp(con.log);
	cr_expect(strstr(text, "\\x1b]0;owned") != NULL,
		  "positive control: the log names the host");
	cr_expect_not(has_terminal_control(text), "the console's log has a control character");
	free(text);
}

/* A batch the console refuses for good is lost: an operator hears of it once, however resent. */
Test(hostile, a_batch_refused_for_good_is_audited_once)
{
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Hello hello = VIGIL__HELLO__INIT;
	Vigil__Batch batch = VIGIL__BATCH__INIT;
	Vigil__Gap gaps[65], *gp[65];
	struct h_link link;

	h_console_start(&con, dir, &pki, NULL);
	h_link_open(&link, &con, &pki, pki.host_cert, pki.host_key);
	hello.hostname = "host-a";
	env.seq = 1;
	env.body_case = VIGIL__ENVELOPE__BODY_HELLO;
	env.hello = &hello;
	Vigil__Reply *r = h_link_request(&link, &env);
	cr_assert_eq(r->status, VIGIL__REPLY__STATUS__OK);
	vigil__reply__free_unpacked(r, NULL);
	for (int i = 0; i < 65; i++) {
		vigil__gap__init(&gaps[i]);
		gaps[i].first_seq = gaps[i].last_seq = (uint64_t)i + 1;
		gaps[i].count = 1;
		gaps[i].reason = "spool_full";
		gp[i] = &gaps[i];
	}
	batch.n_gaps = 65; /* one over the console's limit */
	batch.gaps = gp;
	vigil__envelope__init(&env);
	env.seq = 5;
	env.incarnation = 42;
	env.body_case = VIGIL__ENVELOPE__BODY_BATCH;
	env.batch = &batch;
	for (int i = 0; i < 2; i++) {
		r = h_link_request(&link, &env);
		cr_expect_eq(r->status, VIGIL__REPLY__STATUS__REFUSED);
		vigil__reply__free_unpacked(r, NULL);
	}
	h_link_close(&link);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM audits WHERE kind = 'batch_refused'"
				      " AND host_id = 'host-a' AND detail->>'seq' = '5'"
				      " AND detail->>'incarnation' = '42'"),
		     1);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM batches"), 0, "nothing was stored");
}

/*
 * A console of the test's own that refuses every numbered batch for good
 * and records what the defender sends: how often each batch came, and the
 * gaps it reported.
 */
#define FAKE_SEQ_MAX  4096
#define FAKE_GAPS_MAX 256

struct fake_gap {
	uint64_t first, last, count;
	char reason[32];
};

static struct fake_console {
	nng_socket sock;
	nng_tls_config *tls;
	pthread_t thread;
	bool running;
	pthread_mutex_t lock;
	unsigned sent[FAKE_SEQ_MAX + 1]; /* times each batch seq arrived */
	uint64_t max_seq;
	struct fake_gap gaps[FAKE_GAPS_MAX];
	size_t ngaps;
	char marker[H_PATH]; /* a path to look for in the batches ("": none) */
	uint64_t marker_seq; /* the first batch that held it */
	/*
	 * The downgrade test: the console says it takes compressed batches
	 * (lz4_said) and takes every batch; once old is set it answers as a
	 * console from before compression: the flag gone, a compressed batch
	 * refused as an unknown kind, an uncompressed one taken.
	 */
	bool lz4_said, old;
	unsigned lz4_taken;			/* compressed batches taken while not old */
	unsigned lz4_refused[FAKE_SEQ_MAX + 1]; /* per seq: compressed, refused while old */
	unsigned raw_taken[FAKE_SEQ_MAX + 1];	/* per seq: uncompressed, taken while old */
} fake = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void fake_reply(nng_socket s, uint64_t seq, Vigil__Reply__Status status, const char *why,
		       bool lz4)
{
	Vigil__Reply r = VIGIL__REPLY__INIT;
	nng_msg *m;

	r.seq = seq;
	r.status = status;
	r.error = (char *)why;
	r.heartbeat_interval_ms = 500;
	r.batch_lz4 = lz4;
	if (nng_msg_alloc(&m, vigil__reply__get_packed_size(&r)) != 0)
		return;
	vigil__reply__pack(&r, nng_msg_body(m));
	if (nng_sendmsg(s, m, 0) != 0)
		nng_msg_free(m);
}

static void *fake_main(void *arg)
{
	(void)arg;
	for (;;) {
		nng_msg *m;
		int rv = nng_recvmsg(fake.sock, &m, 0);

		if (rv == NNG_ECLOSED)
			break;
		if (rv != 0)
			continue;
		Vigil__Envelope *env =
		    vigil__envelope__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
		/* Batches come uncompressed: this console never said it takes lz4. */
		pthread_mutex_lock(&fake.lock);
		bool marked =
		    fake.marker[0] != '\0' && memmem(nng_msg_body(m), nng_msg_len(m), fake.marker,
						     strlen(fake.marker)) != NULL;
		pthread_mutex_unlock(&fake.lock);
		nng_msg_free(m);
		if (env == NULL) {
			fake_reply(fake.sock, 0, VIGIL__REPLY__STATUS__REFUSED, "malformed", false);
			continue;
		}
		Vigil__Reply__Status status = VIGIL__REPLY__STATUS__OK;
		const char *why = "";
		pthread_mutex_lock(&fake.lock);
		bool says_lz4 = fake.lz4_said && !fake.old;
		uint64_t s = env->seq <= FAKE_SEQ_MAX ? env->seq : 0;
		if (fake.lz4_said) { /* the downgrade test */
			/* Only an uncompressed batch the old console took counts as the marker's.
			 */
			if (marked && fake.marker_seq == 0 && fake.old &&
			    env->body_case == VIGIL__ENVELOPE__BODY_BATCH)
				fake.marker_seq = env->seq;
			if (env->body_case == VIGIL__ENVELOPE__BODY_BATCH_LZ4 && !fake.old) {
				fake.lz4_taken++;
			} else if (env->body_case == VIGIL__ENVELOPE__BODY_BATCH_LZ4) {
				fake.lz4_refused[s]++;
				status = VIGIL__REPLY__STATUS__REFUSED;
				why = "unknown message kind";
			} else if (env->body_case == VIGIL__ENVELOPE__BODY_BATCH && fake.old) {
				fake.raw_taken[s]++;
				for (size_t i = 0;
				     i < env->batch->n_gaps && fake.ngaps < FAKE_GAPS_MAX; i++)
					fake.ngaps++;
			}
		} else if (env->body_case == VIGIL__ENVELOPE__BODY_BATCH && env->seq != 0) {
			if (marked && fake.marker_seq == 0)
				fake.marker_seq = env->seq;
			if (env->seq <= FAKE_SEQ_MAX)
				fake.sent[env->seq]++;
			if (env->seq > fake.max_seq)
				fake.max_seq = env->seq;
			status = VIGIL__REPLY__STATUS__REFUSED;
			why = "batch too large (2000000 > 1048576 bytes)";
		} else if (env->body_case == VIGIL__ENVELOPE__BODY_BATCH) {
			for (size_t i = 0; i < env->batch->n_gaps && fake.ngaps < FAKE_GAPS_MAX;
			     i++) {
				const Vigil__Gap *g = env->batch->gaps[i];
				struct fake_gap *o = &fake.gaps[fake.ngaps++];
				*o = (struct fake_gap){g->first_seq, g->last_seq, g->count, ""};
				snprintf(o->reason, sizeof(o->reason), "%s", g->reason);
			}
		}
		pthread_mutex_unlock(&fake.lock);
		fake_reply(fake.sock, env->seq, status, why, says_lz4);
		vigil__envelope__free_unpacked(env, NULL);
	}
	return NULL;
}

static void fake_start(char url[128])
{
	const struct tls_files files = {
	    .ca = pki.ca, .cert = pki.console_cert, .key = pki.console_key};
	vigil_err err = {0};

	snprintf(url, 128, "tls+tcp://127.0.0.1:%d", h_free_port());
	cr_assert_eq(tls_engine_install(&err), 0, "%s", err.msg);
	cr_assert_eq(tls_config_new(NNG_TLS_MODE_SERVER, NNG_TLS_AUTH_MODE_REQUIRED, &files, NULL,
				    &fake.tls, &err),
		     0, "%s", err.msg);
	cr_assert_eq(nng_rep0_open(&fake.sock), 0);
	nng_listener nl;
	cr_assert_eq(nng_listener_create(&nl, fake.sock, url), 0);
	cr_assert_eq(nng_listener_set_ptr(nl, NNG_OPT_TLS_CONFIG, fake.tls), 0);
	cr_assert_eq(nng_listener_start(nl, 0), 0);
	cr_assert_eq(pthread_create(&fake.thread, NULL, fake_main, NULL), 0);
	fake.running = true;
}

static void fake_stop(void)
{
	if (!fake.running)
		return;
	nng_close(fake.sock);
	pthread_join(fake.thread, NULL);
	nng_tls_config_free(fake.tls);
	fake.running = false;
}

/* How many of batches 1..upto the reported gaps cover.  Caller holds fake.lock. */
static uint64_t fake_covered(uint64_t upto)
{
	uint64_t covered = 0;

	for (uint64_t s = 1; s <= upto; s++)
		for (size_t i = 0; i < fake.ngaps; i++)
			if (fake.gaps[i].first <= s && s <= fake.gaps[i].last) {
				covered++;
				break;
			}
	return covered;
}

/*
 * What the defender does with a batch its console refuses for good (a
 * console of another version refusing a batch as too large, say): it never
 * sends that batch again, and reports it lost as a gap, so the stream's
 * account (stored + reported lost = last seq) still adds up.
 */
Test(hostile, a_batch_the_console_refuses_is_not_resent_and_is_reported_as_a_gap)
{
	char url[128];

	fake_start(url);
	defender_pid = start_defender_at(url);
	load_pid = start_load();
	for (long long until = h_now_ms() + 20000; h_now_ms() < until; h_sleep_ms(100)) {
		pthread_mutex_lock(&fake.lock);
		bool enough = fake.max_seq >= 3;
		pthread_mutex_unlock(&fake.lock);
		if (enough)
			break;
	}
	h_stop(load_pid, SIGKILL, 2000);
	load_pid = 0;
	/*
	 * The host's other processes keep the defender sending: take the
	 * batches refused by now and wait for their gap reports.  Every batch
	 * of the load's is among them once a marker made after the load ended
	 * has arrived: the defender reads the ring in order and numbers its
	 * batches in that order.
	 */
	char marker[H_PATH];
	snprintf(marker, sizeof(marker), "%s/marker", loaddir);
	pthread_mutex_lock(&fake.lock);
	snprintf(fake.marker, sizeof(fake.marker), "%s", marker);
	pthread_mutex_unlock(&fake.lock);
	int mfd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	cr_assert_geq(mfd, 0, "%s: %s", marker, strerror(errno));
	close(mfd);
	uint64_t marker_seq = 0;
	for (long long until = h_now_ms() + 20000; h_now_ms() < until && marker_seq == 0;
	     h_sleep_ms(50)) {
		pthread_mutex_lock(&fake.lock);
		marker_seq = fake.marker_seq;
		pthread_mutex_unlock(&fake.lock);
	}
	cr_assert_gt(marker_seq, 0, "the marker made after the load never reached the console");
	pthread_mutex_lock(&fake.lock);
	uint64_t upto = fake.max_seq, covered = 0;
	pthread_mutex_unlock(&fake.lock);
	cr_assert_geq(upto, 3, "positive control: the defender sent batches");
	for (long long until = h_now_ms() + 20000; h_now_ms() < until; h_sleep_ms(200)) {
		pthread_mutex_lock(&fake.lock);
		covered = fake_covered(upto);
		pthread_mutex_unlock(&fake.lock);
		if (covered == upto)
			break;
	}
	cr_expect_eq(covered, upto, "refused batches reported lost: %llu of %llu",
		     (unsigned long long)covered, (unsigned long long)upto);
	expect_clean_stop(sigterm_ms(), "after refused batches");

	/* Everything it said, now that it is quiet. */
	uint64_t counted = 0;
	bool reasons_ok = true;
	pthread_mutex_lock(&fake.lock);
	uint64_t all = fake.max_seq, all_covered = fake_covered(all);
	for (size_t i = 0; i < fake.ngaps; i++) {
		counted += fake.gaps[i].count;
		reasons_ok = reasons_ok && strcmp(fake.gaps[i].reason, "oversize") == 0;
		cr_expect_leq(fake.gaps[i].last, all, "a gap names batch %llu, never sent",
			      (unsigned long long)fake.gaps[i].last);
	}
	for (uint64_t s = 1; s <= all && s <= FAKE_SEQ_MAX; s++)
		cr_expect_eq(fake.sent[s], 1, "batch %llu was sent %u time(s)",
			     (unsigned long long)s, fake.sent[s]);
	pthread_mutex_unlock(&fake.lock);
	cr_log_info("%llu batch(es) refused, each sent once; gaps cover %llu and count %llu",
		    (unsigned long long)all, (unsigned long long)all_covered,
		    (unsigned long long)counted);
	cr_expect_eq(counted, all_covered, "the gaps count %llu batch(es), they cover %llu",
		     (unsigned long long)counted, (unsigned long long)all_covered);
	cr_expect(reasons_ok, "a gap's reason is not oversize");
	cr_expect_gt(log_count("refused batch"), 0, "the defender logged the refusal");
	fake_stop();
}

/*
 * A console replaced by one from before compression while the defender
 * sends it compressed batches: the old console refuses them as an unknown
 * kind, and the defender must send each again uncompressed, not drop it.
 */
Test(hostile, a_console_from_before_compression_gets_the_batches_uncompressed_not_lost)
{
	char url[128], marker[H_PATH];

	pthread_mutex_lock(&fake.lock);
	fake.lz4_said = true;
	pthread_mutex_unlock(&fake.lock);
	fake_start(url);
	defender_pid = start_defender_at(url);
	load_pid = start_load();
	unsigned taken = 0;
	for (long long until = h_now_ms() + 20000; h_now_ms() < until && taken == 0;
	     h_sleep_ms(50)) {
		pthread_mutex_lock(&fake.lock);
		taken = fake.lz4_taken;
		pthread_mutex_unlock(&fake.lock);
	}
	cr_assert_gt(taken, 0, "positive control: the defender sent compressed batches");

	/* The downgrade; then a marker, which only an uncompressed batch shows in plain text. */
	pthread_mutex_lock(&fake.lock);
	fake.old = true;
	snprintf(marker, sizeof(marker), "%s/marker-old-console", loaddir);
	snprintf(fake.marker, sizeof(fake.marker), "%s", marker);
	pthread_mutex_unlock(&fake.lock);
	int mfd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	cr_assert_geq(mfd, 0, "%s: %s", marker, strerror(errno));
	close(mfd);
	uint64_t marker_seq = 0;
	for (long long until = h_now_ms() + 20000; h_now_ms() < until && marker_seq == 0;
	     h_sleep_ms(50)) {
		pthread_mutex_lock(&fake.lock);
		marker_seq = fake.marker_seq;
		pthread_mutex_unlock(&fake.lock);
	}
	cr_assert_gt(marker_seq, 0, "the marker never reached the old console uncompressed");
	h_stop(load_pid, SIGKILL, 2000);
	load_pid = 0;

	unsigned refused = 0, resent = 0;
	pthread_mutex_lock(&fake.lock);
	for (uint64_t s = 1; s <= FAKE_SEQ_MAX; s++) {
		if (fake.lz4_refused[s] == 0)
			continue;
		refused++;
		resent += fake.raw_taken[s] > 0;
		cr_expect_gt(fake.raw_taken[s], 0,
			     "batch %llu, refused compressed, never came uncompressed",
			     (unsigned long long)s);
	}
	size_t ngaps = fake.ngaps;
	pthread_mutex_unlock(&fake.lock);
	cr_expect_gt(refused, 0,
		     "the old console refused compressed batches (the downgrade"
		     " happened with batches in flight)");
	cr_expect_eq(ngaps, 0, "a gap was reported: a refused batch was dropped");
	cr_expect_gt(log_count("sent again as it is"), 0, "the defender said why it resent");
	cr_log_info("%u batch(es) refused compressed by the old console, %u sent again whole",
		    refused, resent);
	expect_clean_stop(sigterm_ms(), "after the downgrade");
	fake_stop();
	pthread_mutex_lock(&fake.lock);
	fake.lz4_said = fake.old = false;
	pthread_mutex_unlock(&fake.lock);
}
