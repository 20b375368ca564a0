/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemons as a service manager and a scraper see them, end to end: a
 * real console (private PostgreSQL) and a real defender (real BPF capture),
 * each told $NOTIFY_SOCKET, a datagram socket this test reads as systemd
 * would: READY=1 comes once the console's API answers and its link port
 * accepts, and once the defender captures (checked the moment it arrives),
 * STOPPING=1 when a stop begins.  The defender's metrics port
 * (metrics_listen) is scraped and read by a real Prometheus parser
 * (python3-prometheus-client), and its exec counter follows the programs
 * this test runs.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static char dir[H_PATH];
static struct h_pki pki;
static struct h_console con;
static pid_t defender_pid;
static int notify_fd = -1;
static char notify_path[H_PATH];

static void setup(void)
{
	if (geteuid() != 0)
		cr_skip_test("the defender loads BPF programs: these tests need root");
	h_tmpdir(dir);
	h_pki_make(dir, &pki);
	defender_pid = 0;
	notify_fd = -1;
}

static void teardown(void)
{
	if (defender_pid > 0)
		h_stop(defender_pid, SIGTERM, 10000);
	if (con.pid > 0)
		h_console_kill(&con, SIGTERM);
	if (notify_fd >= 0)
		close(notify_fd);
	unsetenv("NOTIFY_SOCKET");
	if (!getenv("VIGIL_KEEP_TEST_DIRS"))
		h_rmrf(dir);
}

TestSuite(defender_metrics, .init = setup, .fini = teardown, .timeout = 240);

/* A service manager's notify socket in the test's directory; children inherit its name. */
static void notify_listen(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int one = 1;

	snprintf(notify_path, sizeof(notify_path), "%s/notify", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", notify_path);
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(notify_fd, 0);
	cr_assert_eq(setsockopt(notify_fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)), 0);
	cr_assert_eq(bind(notify_fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "%s", strerror(errno));
	setenv("NOTIFY_SOCKET", notify_path, 1);
}

/*
 * The next message from pid (others' are skipped, as NotifyAccess=main
 * skips them) within timeout_ms, into buf; false when none came.
 */
static bool notify_next(pid_t pid, char *buf, size_t len, int timeout_ms)
{
	for (long long until = h_now_ms() + timeout_ms; h_now_ms() < until;) {
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(struct ucred))];
		} ctl;
		struct iovec iov = {buf, len - 1};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = &ctl,
				    .msg_controllen = sizeof(ctl)};
		struct pollfd p = {notify_fd, POLLIN, 0};
		pid_t from = 0;
		ssize_t n;

		if (poll(&p, 1, (int)(until - h_now_ms())) <= 0)
			break;
		if ((n = recvmsg(notify_fd, &mh, MSG_DONTWAIT)) < 0)
			continue;
		buf[n] = '\0';
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
				struct ucred u;

				memcpy(&u, CMSG_DATA(c), sizeof(u));
				from = u.pid;
			}
		if (from == pid)
			return true;
	}
	return false;
}

/* Wait for a message from pid that starts with prefix; it goes into buf. */
static void notify_expect(pid_t pid, const char *prefix, char *buf, size_t len, int timeout_ms)
{
	long long until = h_now_ms() + timeout_ms;

	while (h_now_ms() < until)
		if (notify_next(pid, buf, len, (int)(until - h_now_ms())) &&
		    strncmp(buf, prefix, strlen(prefix)) == 0)
			return;
	cr_assert_fail("no '%s' from pid %d within %d ms", prefix, (int)pid, timeout_ms);
}

static void start_defender(const char *extra, bool wait_registered)
{
	char conf[H_PATH], log[H_PATH];

	h_defender_conf(dir, &con, pki.ca, pki.host_cert, pki.host_key, extra, conf);
	snprintf(log, sizeof(log), "%s/defender.log", dir);
	char *argv[] = {(char *)h_bin("vigil-defender"), "--config", conf, NULL};
	defender_pid = h_spawn(log, argv);
	for (long long until = h_now_ms() + 30000; wait_registered && h_now_ms() < until;
	     h_sleep_ms(50)) {
		char *t = h_slurp(log);
		bool up = strstr(t, "registered with the console") != NULL;

		free(t);
		if (up)
			return;
	}
	if (wait_registered)
		cr_assert_fail("the defender did not register:\n%s", h_slurp(log));
}

/* GET /metrics on 127.0.0.1:port with curl-free plain sockets; returns the body (caller frees). */
static char *scrape(int port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
	size_t cap = 1 << 20, len = 0;
	char *buf = malloc(cap);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ssize_t n;

	cr_assert_not_null(buf);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0, "metrics port: %s",
		     strerror(errno));
	cr_assert_eq(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(req) - 1);
	while ((n = recv(fd, buf + len, cap - 1 - len, 0)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	cr_assert(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "%.200s", buf);
	char *body = strstr(buf, "\r\n\r\n");
	cr_assert_not_null(body);
	memmove(buf, body + 4, strlen(body + 4) + 1);
	return buf;
}

/* The value of name{label=value} (label NULL: the first sample); -1 when absent. */
static double sample(json_t *m, const char *name, const char *label, const char *value,
		     const char **ret_type)
{
	json_t *s;
	size_t i;

	json_array_foreach(json_object_get(m, name), i, s)
	{
		const char *v =
		    label != NULL
			? json_string_value(json_object_get(json_object_get(s, "labels"), label))
			: NULL;

		if (label == NULL || (v != NULL && strcmp(v, value) == 0)) {
			if (ret_type != NULL)
				*ret_type = json_string_value(json_object_get(s, "type"));
			return json_number_value(json_object_get(s, "value"));
		}
	}
	return -1;
}

/* Whether a TCP connection to 127.0.0.1:port is accepted now (one attempt). */
static bool port_accepts(int port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;

	if (fd >= 0)
		close(fd);
	return ok;
}

/*
 * READY=1 is checked at the moment it arrives, each check made once with no
 * wait before it: a READY=1 sent before the daemon serves fails here.
 * Console: its API answers (authorized) and its link port accepts.
 * Defender: its metrics port answers with capture loaded, and a file it
 * opens just after READY=1 reaches the console as an event (capture was
 * attached by then, or the open would be missed).
 */
Test(defender_metrics, ready_is_sent_when_each_daemon_serves_and_stopping_when_it_stops)
{
	char msg[1024], log[H_PATH], extra[128], marker[H_PATH];
	json_t *body = NULL;
	int mport = h_free_port();

	notify_listen();
	h_console_spawn(&con, dir, &pki, NULL);
	/* A first start: initdb and every migration come before READY=1. */
	notify_expect(con.pid, "READY=1", msg, sizeof(msg), 60000);
	{
		char path[H_PATH], *tok;

		snprintf(path, sizeof(path), "%s/api-token", con.state);
		tok = h_slurp(path);
		snprintf(con.token, sizeof(con.token), "%.*s", (int)strcspn(tok, "\n"), tok);
		free(tok);
	}
	int status = h_api_get(&con, &pki, "/api/v1/hosts", con.token, &body);
	bool link = port_accepts(con.link_port);
	cr_expect_eq(status, 200, "READY=1, and GET /api/v1/hosts answered %d:\n%s", status,
		     h_slurp(con.log));
	cr_expect(link, "READY=1, and the link port %d refuses connections", con.link_port);
	cr_expect(strstr(msg, "STATUS=defenders on ") != NULL, "%s", msg);
	json_decref(body);

	snprintf(extra, sizeof(extra), "metrics_listen = 127.0.0.1:%d", mport);
	start_defender(extra, false);
	notify_expect(defender_pid, "READY=1", msg, sizeof(msg), 30000);
	char *text = scrape(mport); /* one attempt: it fails the test if the port is not served */
	json_t *m = h_prom_parse(dir, text);
	free(text);
	cr_expect_eq(sample(m, "vigil_defender_capture_loaded", NULL, NULL, NULL), 1,
		     "READY=1 before capture was loaded");
	json_decref(m);
	snprintf(marker, sizeof(marker), "%s/ready-marker", dir);
	h_wait_marker(&con, "host-a", marker, 30000);
	snprintf(log, sizeof(log), "%s/defender.log", dir);
	char *t = h_slurp(log);
	cr_expect(strstr(msg, "STATUS=capturing; 1 console(s)") != NULL, "%s\n%s", msg, t);
	cr_expect(strstr(t, "BPF loaded") != NULL, "READY=1 only once capture is attached:\n%s", t);
	free(t);

	cr_assert_eq(kill(defender_pid, SIGTERM), 0);
	notify_expect(defender_pid, "STOPPING=1", msg, sizeof(msg), 5000);
	int st = h_stop(defender_pid, SIGTERM, 10000);
	defender_pid = 0;
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the defender ended cleanly");

	cr_assert_eq(kill(con.pid, SIGTERM), 0);
	notify_expect(con.pid, "STOPPING=1", msg, sizeof(msg), 10000);
	h_console_kill(&con, SIGTERM);
	con.pid = 0;
}

Test(defender_metrics, the_port_is_scraped_as_prometheus_text_and_counts_programs)
{
	char extra[128], marker[H_PATH], script[2 * H_PATH + 64];
	const char *type = NULL;
	json_t *m;
	char *text;
	int port = h_free_port();
	const int runs = 40;

	h_console_start(&con, dir, &pki, NULL);
	snprintf(extra, sizeof(extra), "heartbeat_interval_ms = 500\nmetrics_listen = 127.0.0.1:%d",
		 port);
	start_defender(extra, true);

	text = scrape(port);
	m = h_prom_parse(dir, text);
	free(text);
	double execs0 = sample(m, "vigil_defender_events_total", "type", "exec", &type);
	cr_assert_geq(execs0, 0, "events by type are there:\n%s", json_dumps(m, 0));
	cr_expect_str_eq(type, "counter");
	cr_expect_eq(sample(m, "vigil_defender_capture_loaded", NULL, NULL, &type), 1);
	cr_expect_str_eq(type, "gauge");
	cr_expect_eq(sample(m, "vigil_defender_info", "version", "0.1.0", NULL), 1);
	cr_expect_geq(
	    sample(m, "vigil_defender_events_dropped_total", "reason", "ringbuf_full", NULL), 0);
	cr_expect_geq(sample(m, "vigil_defender_spool_pending_batches", NULL, NULL, &type), 0);
	cr_expect_str_eq(type, "gauge");
	cr_expect_eq(sample(m, "vigil_defender_rules_version", NULL, NULL, NULL), 0);
	cr_expect_eq(sample(m, "vigil_defender_console_connections", NULL, NULL, NULL), 1);
	cr_expect_gt(sample(m, "process_resident_memory_bytes", NULL, NULL, NULL), 1 << 20,
		     "RSS in bytes");
	double execs_seen0 = sample(m, "vigil_defender_execs_total", NULL, NULL, NULL);
	json_decref(m);

	/* Programs of our own: a copy of true under a name of its own, run 40 times. */
	snprintf(marker, sizeof(marker), "%s/vigil-metrics-marker", dir);
	snprintf(script, sizeof(script),
		 "cp /bin/true %s && i=0; while [ $i -lt %d ]; do %s; i=$((i+1)); done", marker,
		 runs, marker);
	cr_assert_eq(system(script), 0);

	double execs1 = -1, acked = -1, execs_seen1 = -1;
	for (long long until = h_now_ms() + 20000; h_now_ms() < until; h_sleep_ms(250)) {
		text = scrape(port);
		m = h_prom_parse(dir, text);
		free(text);
		execs1 = sample(m, "vigil_defender_events_total", "type", "exec", NULL);
		execs_seen1 = sample(m, "vigil_defender_execs_total", NULL, NULL, NULL);
		acked = sample(m, "vigil_defender_batches_total", "result", "acked", NULL);
		json_decref(m);
		if (execs1 >= execs0 + runs && acked > 0)
			break;
	}
	cr_expect_geq(execs1, execs0 + runs, "exec events %.0f then %.0f after %d programs", execs0,
		      execs1, runs);
	cr_expect_geq(execs_seen1, execs_seen0 + runs);
	cr_expect_gt(acked, 0, "the console acknowledged batches");
}
