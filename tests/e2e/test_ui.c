/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The operators' web UI end to end: a real console (PostgreSQL behind it)
 * serving the UI, a real defender on this host that learned a test service
 * and has an interactive session in its activity log, and Debian's Chromium
 * driven by tests/ui/ui_e2e.mjs (playwright-core): sign in, the fleet, a
 * model, a session found by its command text, a rule made in the dialog
 * (first refused at its field) that the host then enforces, the program it
 * names refused with EPERM and its audit arriving live, the audit's detail,
 * a phone's screen, sign-out, a read-only user.  The script writes a
 * screenshot of every page to docs/ui/ and prints each page's load time.
 *
 * Node, Chromium and tests/ui/node_modules come from tests/ui/install.sh
 * (tests/run.sh runs it): when one is missing the test fails and says so,
 * since the test command installs them.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define HOST	       "host-a"
#define LEARN_WINDOW_S 6

static char dir[H_PATH], svcdir[H_PATH];
static struct h_pki pki;
static struct h_console con;
static pid_t defender_pid, svc_pid;
static int peer_fd = -1;

/* Whether this kernel lets the defender hold execs (it runs as root here). */
static bool have_fanotify_perm(void)
{
	int fd = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC, O_RDONLY);
	bool ok =
	    fd >= 0 && fanotify_mark(fd, FAN_MARK_ADD, FAN_OPEN_EXEC_PERM, AT_FDCWD, "/") == 0;

	if (fd >= 0)
		close(fd);
	return ok;
}

static void setup(void)
{
	if (geteuid() != 0)
		cr_skip_test("the UI test runs a defender: it needs root (BPF, fanotify)");
	if (!have_fanotify_perm())
		cr_skip_test("this kernel has no fanotify permission events: no rule can prevent"
			     " the program the test forbids");
	h_need_browser();
	h_tmpdir(dir);
	h_pki_make(dir, &pki);
	h_console_start(&con, dir, &pki, NULL);
}

static void teardown(void)
{
	if (svc_pid > 0)
		kill(svc_pid, SIGTERM); /* not our child (it was double-forked): no wait */
	if (defender_pid > 0)
		h_stop(defender_pid, SIGTERM, 10000);
	if (con.pid > 0)
		h_console_kill(&con, SIGTERM);
	if (peer_fd >= 0)
		close(peer_fd);
	if (!getenv("VIGIL_KEEP_TEST_DIRS") && dir[0] != '\0')
		h_rmrf(dir);
}

TestSuite(ui, .init = setup, .fini = teardown, .timeout = 420);

static const char *defender_log(void)
{
	static char log[H_PATH];

	snprintf(log, sizeof(log), "%s/defender.log", dir);
	return log;
}

static void start_defender(void)
{
	char conf[H_PATH], extra[128];
	char *argv[] = {(char *)h_bin("vigil-defender"), "--config", conf, NULL};

	snprintf(extra, sizeof(extra), "heartbeat_interval_ms = 500\nlearn_window = %ds\n",
		 LEARN_WINDOW_S);
	h_defender_conf(dir, &con, pki.ca, pki.host_cert, pki.host_key, extra, conf);
	defender_pid = h_spawn(defender_log(), argv);
	for (long long until = h_now_ms() + 30000; h_now_ms() < until; h_sleep_ms(50)) {
		char *t = h_slurp(defender_log());
		bool up = strstr(t, "registered with the console") != NULL;

		free(t);
		if (up)
			return;
	}
	cr_assert_fail("the defender did not register with the console:\n%s",
		       h_slurp(defender_log()));
}

/* Connect to the service: it accepts from a new client port each time. */
static void be_client(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "%s", strerror(errno));
	close(fd);
}

/* Accept and drop what the service's connects left in the peer's queue. */
static void drain_peer(void)
{
	int c;

	fcntl(peer_fd, F_SETFL, fcntl(peer_fd, F_GETFL) | O_NONBLOCK);
	while ((c = accept(peer_fd, NULL, NULL)) >= 0)
		close(c);
}

/* The service's model from the models list; NULL until it is there (caller decrefs). */
static json_t *testsvc_model(void)
{
	json_t *body = NULL, *m, *found = NULL;
	size_t i;

	if (h_api_get(&con, &pki, "/api/v1/models?host=" HOST "&limit=1000", con.token, &body) !=
	    200) {
		json_decref(body);
		return NULL;
	}
	json_array_foreach(json_object_get(body, "models"), i, m)
	{
		const char *svc = json_string_value(json_object_get(m, "service"));

		if (svc != NULL && strstr(svc, "vigil-testsvc") != NULL)
			found = json_incref(m);
	}
	json_decref(body);
	return found;
}

/*
 * vigil-testsvc learned: its routine a few times while its model learns,
 * then until the model is active.  Returns the service's name.
 */
static void learn_testsvc(char service[H_PATH])
{
	int listen_port, ports[4];
	char path[H_PATH], log[H_PATH];

	snprintf(svcdir, sizeof(svcdir), "%s/svc", dir);
	cr_assert_eq(mkdir(svcdir, 0755), 0);
	snprintf(path, sizeof(path), "%s/log", svcdir);
	cr_assert_eq(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/state", svcdir);
	cr_assert_eq(mkdir(path, 0755), 0);
	h_write_file(svcdir, "testsvc.conf", "greeting = hello\n", path);
	listen_port = h_fixed_port(NULL);
	ports[0] = listen_port;
	ports[1] = h_fixed_port(&peer_fd);
	ports[2] = h_fixed_port(NULL);
	ports[3] = h_fixed_port(NULL);
	snprintf(log, sizeof(log), "%s/testsvc.log", dir);
	svc_pid = h_start_testsvc(svcdir, ports, log, NULL);
	for (long long until = h_now_ms() + (LEARN_WINDOW_S + 30) * 1000;; h_sleep_ms(300)) {
		json_t *m;

		cr_assert_eq(kill(svc_pid, SIGUSR1), 0);
		be_client(listen_port);
		drain_peer();
		m = testsvc_model();
		if (m != NULL &&
		    strcmp(json_string_value(json_object_get(m, "state")), "active") == 0 &&
		    json_integer_value(json_object_get(m, "entries")) > 0) {
			snprintf(service, H_PATH, "%s",
				 json_string_value(json_object_get(m, "service")));
			json_decref(m);
			return;
		}
		json_decref(m);
		cr_assert_lt(h_now_ms(), until, "the test service's model did not become active");
	}
}

/* An interactive session on a real terminal, and wait until its command is in the activity log. */
static void interactive_session(const char *marker)
{
	char commands[256], path[256];

	snprintf(commands, sizeof(commands), "/bin/echo %s\nexit\n", marker);
	h_pty_session(commands, 20000);
	snprintf(path, sizeof(path), "/api/v1/activity?host=" HOST "&q=%s&limit=10", marker);
	for (long long until = h_now_ms() + 20000; h_now_ms() < until; h_sleep_ms(250)) {
		json_t *body = NULL;
		bool seen = h_api_get(&con, &pki, path, con.token, &body) == 200 &&
			    json_array_size(json_object_get(body, "activity")) > 0;

		json_decref(body);
		if (seen)
			return;
	}
	cr_assert_fail("the interactive session never reached the activity log");
}

static void add_user(const char *name, const char *password, const char *role)
{
	char body[256];
	json_t *doc = NULL;
	int status;

	snprintf(body, sizeof(body), "{\"name\": \"%s\", \"password\": \"%s\", \"role\": \"%s\"}",
		 name, password, role);
	status = h_api_request(&con, &pki, "POST", "/api/v1/users", body, NULL, con.token, &doc);
	cr_assert_eq(status, 201, "POST /api/v1/users %s: %d %s", name, status,
		     doc != NULL ? json_dumps(doc, 0) : "");
	json_decref(doc);
}

Test(ui, an_operator_works_through_every_page_in_a_browser)
{
	char service[H_PATH], program[H_PATH], cmd[2 * H_PATH], marker[64], shots[H_PATH],
	    script[H_PATH], out[H_PATH], url[160], failshot[H_PATH];
	const char *src = getenv("VIGIL_SOURCE_DIR");
	int rc;

	/* The program the operator forbids: a copy of true, so that nothing else is touched. */
	snprintf(program, sizeof(program), "%s/ui-forbidden-true", dir);
	snprintf(cmd, sizeof(cmd), "cp /bin/true %s", program);
	cr_assert_eq(system(cmd), 0);
	snprintf(marker, sizeof(marker), "vigil-ui-marker-%d", (int)getpid());

	start_defender();
	learn_testsvc(service);
	interactive_session(marker);
	add_user("ui-admin", "correct horse battery", "admin");
	add_user("ui-reader", "read only but long", "read");

	snprintf(url, sizeof(url), "https://127.0.0.1:%d", con.api_port);
	snprintf(shots, sizeof(shots), "%s/docs/ui", src);
	snprintf(script, sizeof(script), "%s/tests/ui/ui_e2e.mjs", src);
	snprintf(out, sizeof(out), "%s/ui_e2e.log", dir);
	setenv("VIGIL_UI_URL", url, 1);
	setenv("VIGIL_UI_CA", pki.ca, 1);
	setenv("VIGIL_UI_CERT", pki.console_cert, 1);
	setenv("VIGIL_UI_USER", "ui-admin", 1);
	setenv("VIGIL_UI_PASSWORD", "correct horse battery", 1);
	setenv("VIGIL_UI_TOKEN", con.token, 1);
	setenv("VIGIL_UI_RO_USER", "ui-reader", 1);
	setenv("VIGIL_UI_RO_PASSWORD", "read only but long", 1);
	setenv("VIGIL_UI_HOST", HOST, 1);
	setenv("VIGIL_UI_SERVICE", service, 1);
	setenv("VIGIL_UI_PROGRAM", program, 1);
	setenv("VIGIL_UI_MARKER", marker, 1);
	setenv("VIGIL_UI_SHOTS", shots, 1);
	setenv("VIGIL_UI_TMP", dir, 1);
	/* Kept where meson keeps its logs: the test's directory is removed at its end. */
	snprintf(failshot, sizeof(failshot), "%s/meson-logs/ui-failure.png",
		 getenv("VIGIL_BUILD_DIR"));
	setenv("VIGIL_UI_FAILSHOT", failshot, 1);
	/* The script resolves playwright-core from tests/ui/node_modules (next to it). */
	char *argv[] = {"/usr/bin/env", "node", script, NULL};
	rc = h_run(out, 300000, argv);
	char *said = h_slurp(out);
	fprintf(stderr, "---- tests/ui/ui_e2e.mjs ----\n%s---- end (exit %d) ----\n", said, rc);
	cr_assert_eq(rc, 0, "the browser test failed (exit %d):\n%s\ndefender log (tail):\n%.4000s",
		     rc, said, h_slurp(defender_log()));
	free(said);
}
