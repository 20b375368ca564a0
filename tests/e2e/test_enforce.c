/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rules enforced on this host, end to end: a rule made through a real
 * console's API (PostgreSQL behind it) reaches a real vigil-defender over
 * mutual TLS, which puts it in force in the kernel (fanotify permission
 * events, cgroup socket programs, SIGKILL); real processes then try what the
 * rule names.  Each enforcement must come back as an audit naming the rule
 * and the effect applied.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static char dir[H_PATH], bindir[H_PATH], forbidden[H_PATH], marker[H_PATH];
static struct h_pki pki;
static struct h_console con;
static pid_t defender_pid;
/* The network-model test's service and its cgroup: ended by teardown whatever happened. */
static pid_t unit_svc;
static char unit_cg[H_PATH];

static const char *defender_log(void)
{
	static char log[H_PATH];

	snprintf(log, sizeof(log), "%s/defender.log", dir);
	return log;
}

/* Whether this kernel lets the defender hold execs and opens (it runs as root here). */
static bool have_fanotify_perm(void)
{
	int fd = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC, O_RDONLY);
	bool ok = fd >= 0 && fanotify_mark(fd, FAN_MARK_ADD, FAN_OPEN_EXEC_PERM | FAN_OPEN_PERM,
					   AT_FDCWD, "/") == 0;

	if (fd >= 0)
		close(fd);
	return ok;
}

static void setup(void)
{
	char cmd[H_PATH * 3];

	if (geteuid() != 0)
		cr_skip_test("enforcement needs root (fanotify permission events, BPF)");
	if (!have_fanotify_perm())
		cr_skip_test("this kernel has no fanotify permission events");
	h_tmpdir(dir);
	h_pki_make(dir, &pki);
	snprintf(bindir, sizeof(bindir), "%s/bin", dir);
	mkdir(bindir, 0755);
	/* A program of our own to forbid: touch, which leaves a mark when it runs. */
	snprintf(forbidden, sizeof(forbidden), "%s/forbidden-touch", bindir);
	snprintf(marker, sizeof(marker), "%s/ran", dir);
	snprintf(cmd, sizeof(cmd), "cp /usr/bin/touch %s", forbidden);
	cr_assert_eq(system(cmd), 0);
	h_console_start(&con, dir, &pki, NULL);
}

static void teardown(void)
{
	if (unit_svc > 0)
		kill(unit_svc, SIGKILL);
	for (int i = 0; unit_cg[0] != '\0' && i < 50 && rmdir(unit_cg) != 0; i++)
		h_sleep_ms(100);
	if (defender_pid > 0)
		h_stop(defender_pid, SIGTERM, 5000);
	if (con.pid > 0)
		h_console_kill(&con, SIGTERM);
	if (!getenv("VIGIL_KEEP_TEST_DIRS") && dir[0] != '\0')
		h_rmrf(dir);
}

TestSuite(enforce, .init = setup, .fini = teardown, .timeout = 300);

static pid_t start_defender(void)
{
	char conf[H_PATH];
	char *argv[] = {(char *)h_bin("vigil-defender"), "--config", conf, NULL};

	h_defender_conf(dir, &con, pki.ca, pki.host_cert, pki.host_key,
			"heartbeat_interval_ms = 500", conf);
	return h_spawn(defender_log(), argv);
}

static json_t *api(const char *method, const char *path, const char *body, int want)
{
	json_t *doc = NULL;
	int status = h_api_request(&con, &pki, method, path, body, NULL, con.token, &doc);

	cr_assert_eq(status, want, "%s %s: %d, want %d: %s", method, path, status, want,
		     doc != NULL ? json_dumps(doc, 0) : "(no JSON)");
	return doc;
}

/* Add a rule; returns the new version, *ret_id its id. */
static long long add_rule(const char *body, long long *ret_id)
{
	json_t *doc = api("POST", "/api/v1/rules", body, 201);
	long long v = json_integer_value(json_object_get(doc, "version"));

	if (ret_id != NULL)
		*ret_id = json_integer_value(json_object_get(json_object_get(doc, "rule"), "id"));
	json_decref(doc);
	return v;
}

static long long delete_rule(long long id)
{
	char path[64];
	json_t *doc;
	long long v;

	snprintf(path, sizeof(path), "/api/v1/rules/%lld", id);
	doc = api("DELETE", path, NULL, 200);
	v = json_integer_value(json_object_get(doc, "version"));
	json_decref(doc);
	return v;
}

/* Wait until host-a enforces version (fails the test after timeout_ms). */
static void wait_enforced(long long version, int timeout_ms)
{
	for (long long until = h_now_ms() + timeout_ms; h_now_ms() < until; h_sleep_ms(20)) {
		json_t *h = h_api_host(&con, &pki, "host-a");
		json_t *r = json_object_get(h, "rules");
		bool done = json_is_integer(json_object_get(r, "version")) &&
			    json_integer_value(json_object_get(r, "version")) == version;

		json_decref(h);
		if (done)
			return;
	}
	cr_assert_fail("host-a does not enforce version %lld; defender log:\n%s", version,
		       h_slurp(defender_log()));
}

static void defender_up(void)
{
	defender_pid = start_defender();
	wait_enforced(0, 30000);
}

/* Skip (with the defender's reason) when this host cannot run the network guard. */
static void need_backend(const char *name)
{
	json_t *h = h_api_host(&con, &pki, "host-a"), *b;
	size_t i;

	json_array_foreach(json_object_get(json_object_get(h, "rules"), "backends"), i, b)
	{
		if (strcmp(json_string_value(json_object_get(b, "name")), name) != 0)
			continue;
		if (!json_is_true(json_object_get(b, "available"))) {
			char why[256];

			snprintf(why, sizeof(why), "%s is not available here: %s", name,
				 json_string_value(json_object_get(b, "detail")));
			json_decref(h);
			H_SKIP(teardown, "%s", why);
		}
	}
	json_decref(h);
}

/* Run argv[0] in a child; returns its wait status; errno of a failed exec is the exit code. */
static int try_exec(char *const argv[])
{
	int status;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		execv(argv[0], argv);
		_exit(errno == EPERM ? 100 : 101);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	return status;
}

/* Wait for an audit of kind with rule and effect (SQL on the console's database). */
static void wait_audit(const char *kind, const char *rule, const char *effect, const char *like)
{
	char sql[1024];

	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM audits WHERE host_id = 'host-a' AND kind = '%s'"
		 " AND rule = '%s' AND effect = '%s' AND summary LIKE '%%%s%%'",
		 kind, rule, effect, like);
	for (long long until = h_now_ms() + 15000; h_now_ms() < until; h_sleep_ms(100))
		if (h_db_count(&con, sql) > 0)
			return;
	cr_assert_fail("no %s audit by rule %s with effect %s about %s; defender log:\n%s", kind,
		       rule, effect, like, h_slurp(defender_log()));
}

/* A rule's JSON from a printf format (static storage). */
static char *rule_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *rule_text(const char *fmt, ...)
{
	static char text[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	return text;
}

Test(enforce, a_prevented_exec_fails_with_eperm_and_deleting_the_rule_lifts_it)
{
	char *argv[] = {forbidden, marker, NULL};
	long long id, v;
	int st;

	defender_up();
	v = add_rule(rule_text("{\"name\": \"no-touch\", \"processes\": {\"deny\": {\"effect\":"
			       " \"prevent\", \"executables\": [\"%s\"]}}}",
			       forbidden),
		     &id);
	wait_enforced(v, 5000);
	st = try_exec(argv);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 100,
		  "the exec was not refused with EPERM (status %#x)", st);
	cr_assert_neq(access(marker, F_OK), 0, "the forbidden program ran");
	wait_audit("denied_program", "no-touch", "prevent", "forbidden-touch");

	/* Live removal: no restart, the same defender. */
	wait_enforced(delete_rule(id), 5000);
	st = try_exec(argv);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x after the rule went", st);
	cr_assert_eq(access(marker, F_OK), 0, "the program did not run once allowed");
}

Test(enforce, a_blocked_exec_kills_the_caller_and_the_audit_says_block)
{
	char *argv[] = {forbidden, marker, NULL};
	int st;

	defender_up();
	wait_enforced(add_rule(rule_text("{\"name\": \"kill-touch\", \"processes\": {\"deny\":"
					 " {\"effect\": \"block\", \"executables\": [\"%s\"]}}}",
					 forbidden),
			       NULL),
		      5000);
	st = try_exec(argv);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "not killed (status %#x)", st);
	cr_assert_neq(access(marker, F_OK), 0, "the forbidden program ran");
	wait_audit("denied_program", "kill-touch", "block", "forbidden-touch");
}

static int tcp_listener(uint16_t *ret_port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0, "%s", strerror(errno));
	cr_assert_eq(listen(fd, 16), 0);
	getsockname(fd, (struct sockaddr *)&a, &len);
	*ret_port = ntohs(a.sin_port);
	return fd;
}

static int tcp_connect(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), rc;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
	close(fd);
	return rc == 0 ? 0 : errno;
}

static int tcp_bind(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1, rc;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	rc = bind(fd, (struct sockaddr *)&a, sizeof(a));
	close(fd);
	return rc == 0 ? 0 : errno;
}

Test(enforce, prevented_connect_and_bind_fail_with_eperm_and_are_audited)
{
	uint16_t port, other;
	int lfd = tcp_listener(&port), lfd2 = tcp_listener(&other);
	int free_port = h_free_port();
	char rule[512];

	defender_up();
	need_backend("cgroup-sock");
	snprintf(rule, sizeof(rule),
		 "{\"name\": \"no-peer\", \"network\": {\"deny\": {\"effect\": \"prevent\","
		 " \"connect\": [\"127.0.0.1:%u\"], \"listen\": [\"tcp:%d\"]}}}",
		 port, free_port);
	wait_enforced(add_rule(rule, NULL), 5000);
	cr_assert_eq(tcp_connect(port), EPERM, "connect to the denied peer was not refused");
	cr_assert_eq(tcp_connect(other), 0, "a connect to another port was refused");
	cr_assert_eq(tcp_bind((uint16_t)free_port), EPERM, "bind to the denied port was allowed");
	wait_audit("denied_connect", "no-peer", "prevent", "127.0.0.1");
	wait_audit("denied_listen", "no-peer", "prevent", "127.0.0.1");
	close(lfd);
	close(lfd2);
}

Test(enforce, a_blocked_connect_kills_the_caller_in_the_kernel)
{
	uint16_t port;
	int lfd = tcp_listener(&port), st;
	char rule[512];
	pid_t pid;

	defender_up();
	need_backend("cgroup-sock");
	need_backend("bpf-signal");
	snprintf(rule, sizeof(rule),
		 "{\"name\": \"kill-peer\", \"network\": {\"deny\": {\"effect\": \"block\","
		 " \"connect\": [\"127.0.0.1:%u\"]}}}",
		 port);
	wait_enforced(add_rule(rule, NULL), 5000);
	if ((pid = fork()) == 0) {
		tcp_connect(port);
		_exit(0); /* not reached when the block works */
	}
	waitpid(pid, &st, 0);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "not killed (status %#x)", st);
	wait_audit("denied_connect", "kill-peer", "block", "127.0.0.1");
	close(lfd);
}

Test(enforce, a_prevented_open_of_a_named_file_fails_while_its_neighbours_open)
{
	char secret[H_PATH], neighbour[H_PATH], rule[1024];
	int fd;

	snprintf(secret, sizeof(secret), "%s/secret.key", dir);
	snprintf(neighbour, sizeof(neighbour), "%s/public.txt", dir);
	h_write_file(dir, "secret.key", "s3cret\n", secret);
	h_write_file(dir, "public.txt", "hello\n", neighbour);
	defender_up();
	snprintf(rule, sizeof(rule),
		 "{\"name\": \"no-secret\", \"files\": {\"deny\": {\"effect\": \"prevent\","
		 " \"read\": [\"%s\"]}}}",
		 secret);
	wait_enforced(add_rule(rule, NULL), 5000);
	fd = open(secret, O_RDONLY);
	cr_assert(fd < 0 && errno == EPERM, "the denied read was not refused (fd %d, %s)", fd,
		  strerror(errno));
	fd = open(neighbour, O_RDONLY);
	cr_assert_geq(fd, 0, "a neighbour's open was refused: %s", strerror(errno));
	close(fd);
	/* Reads only: a write is not what the rule names. */
	fd = open(secret, O_WRONLY | O_APPEND);
	cr_assert_geq(fd, 0, "a write open was refused by a read rule: %s", strerror(errno));
	close(fd);
	wait_audit("denied_read", "no-secret", "prevent", "secret.key");
}

Test(enforce, an_alert_only_rule_lets_the_act_happen_and_audits_it)
{
	char *argv[] = {forbidden, marker, NULL};
	int st;

	defender_up();
	wait_enforced(add_rule(rule_text("{\"name\": \"watch-touch\", \"processes\": {\"deny\":"
					 " {\"effect\": \"alert\", \"executables\": [\"%s\"]}}}",
					 forbidden),
			       NULL),
		      5000);
	st = try_exec(argv);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "an alert rule stopped it (%#x)", st);
	cr_assert_eq(access(marker, F_OK), 0, "the program did not run");
	wait_audit("denied_program", "watch-touch", "alert", "forbidden-touch");
}

Test(enforce, a_host_outside_the_scope_is_untouched)
{
	char *argv[] = {forbidden, marker, NULL};
	int st;

	defender_up();
	wait_enforced(add_rule(rule_text("{\"name\": \"elsewhere\", \"scope\": {\"hosts\":"
					 " [\"db-*\"]}, \"processes\": {\"deny\": {\"effect\":"
					 " \"prevent\", \"executables\": [\"%s\"]}}}",
					 forbidden),
			       NULL),
		      5000);
	st = try_exec(argv);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
}

Test(enforce, a_defender_restarted_without_a_console_enforces_its_cached_version)
{
	char *argv[] = {forbidden, marker, NULL};
	int st;

	defender_up();
	wait_enforced(add_rule(rule_text("{\"name\": \"cached\", \"processes\": {\"deny\":"
					 " {\"effect\": \"prevent\", \"executables\": [\"%s\"]}}}",
					 forbidden),
			       NULL),
		      5000);
	h_console_kill(&con, SIGTERM);
	h_stop(defender_pid, SIGTERM, 5000);
	defender_pid = start_defender();
	/* No console: wait for the defender's own word that the set is in force. */
	for (long long until = h_now_ms() + 20000; h_now_ms() < until; h_sleep_ms(50)) {
		char *log = h_slurp(defender_log());
		const char *first = strstr(log, "rule set 1 in force");
		bool again = first != NULL && strstr(first + 1, "rule set 1 in force") != NULL;

		free(log);
		if (again)
			break;
	}
	st = try_exec(argv);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 100,
		  "the restarted defender did not enforce its cached rule (status %#x)", st);
	cr_assert_neq(access(marker, F_OK), 0);
}

Test(enforce, a_sigkilled_defender_leaves_exec_open_and_connect_working)
{
	char *argv[] = {forbidden, marker, NULL}, secret[H_PATH], rule[2048];
	uint16_t port;
	int lfd = tcp_listener(&port), st, fd;

	snprintf(secret, sizeof(secret), "%s/secret.key", dir);
	h_write_file(dir, "secret.key", "s3cret\n", secret);
	defender_up();
	need_backend("cgroup-sock");
	snprintf(rule, sizeof(rule),
		 "{\"name\": \"all-three\", \"processes\": {\"deny\": {\"effect\": \"prevent\","
		 " \"executables\": [\"%s\"]}}, \"files\": {\"deny\": {\"effect\": \"prevent\","
		 " \"read\": [\"%s\"]}}, \"network\": {\"deny\": {\"effect\": \"prevent\","
		 " \"connect\": [\"127.0.0.1:%u\"]}}}",
		 forbidden, secret, port);
	wait_enforced(add_rule(rule, NULL), 5000);
	cr_assert_eq(tcp_connect(port), EPERM, "the rule was not in force before the kill");
	h_stop(defender_pid, SIGKILL, 5000);
	defender_pid = 0;
	st = try_exec(argv);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exec after the kill: status %#x", st);
	fd = open(secret, O_RDONLY);
	cr_assert_geq(fd, 0, "open after the kill: %s", strerror(errno));
	close(fd);
	cr_assert_eq(tcp_connect(port), 0, "connect after the kill: %s", strerror(errno));
	close(lfd);
}

Test(enforce, a_denied_program_stays_denied_under_another_name_and_through_the_loader)
{
	char alias[H_PATH], loader[] = "/lib64/ld-linux-x86-64.so.2";
	char *by_alias[] = {alias, marker, NULL}, *by_loader[] = {loader, forbidden, marker, NULL};
	int st;

	snprintf(alias, sizeof(alias), "%s/innocent", bindir);
	cr_assert_eq(link(forbidden, alias), 0, "%s", strerror(errno));
	defender_up();
	wait_enforced(add_rule(rule_text("{\"name\": \"no-touch\", \"processes\": {\"deny\":"
					 " {\"effect\": \"prevent\", \"executables\": [\"%s\"]}}}",
					 forbidden),
			       NULL),
		      5000);
	st = try_exec(by_alias);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 100, "a hard link ran it (status %#x)", st);
	if (access(loader, X_OK) == 0) {
		st = try_exec(by_loader);
		cr_assert(!(WIFEXITED(st) && WEXITSTATUS(st) == 0),
			  "the dynamic loader ran the denied program");
	}
	cr_assert_neq(access(marker, F_OK), 0, "the denied program ran");
	wait_audit("denied_program", "no-touch", "prevent", "innocent");
}

/* The host's "rules" object from /api/v1/hosts (caller decrefs). */
static json_t *host_rules(void)
{
	json_t *h = h_api_host(&con, &pki, "host-a");
	json_t *r = json_incref(json_object_get(h, "rules"));

	json_decref(h);
	return r;
}

static json_t *find_by(json_t *list, const char *key, const char *value)
{
	size_t i;
	json_t *x;

	json_array_foreach(list, i, x) if (json_is_string(json_object_get(x, key)) &&
					   strcmp(json_string_value(json_object_get(x, key)),
						  value) == 0) return x;
	return NULL;
}

Test(enforce, the_host_reports_its_backends_and_what_a_rule_asks_beyond_them)
{
	json_t *r, *b, *sf = NULL;

	defender_up();
	r = host_rules();
	b = find_by(json_object_get(r, "backends"), "name", "fanotify-exec");
	cr_assert_not_null(b, "no fanotify-exec backend reported: %s", json_dumps(r, 0));
	cr_assert(json_is_true(json_object_get(b, "available")));
	/* Reported either way; when unavailable, with the reason. */
	b = find_by(json_object_get(r, "backends"), "name", "cgroup-sock");
	cr_assert(b != NULL && (json_is_true(json_object_get(b, "available")) ||
				json_string_length(json_object_get(b, "detail")) > 0),
		  "cgroup-sock: %s", json_dumps(r, 0));
	json_decref(r);
	/* Opens under a glob across directories would need every open held: alerted instead. */
	wait_enforced(add_rule("{\"name\": \"deep\", \"files\": {\"deny\": {\"effect\":"
			       " \"prevent\", \"read\": [\"/srv/**/secret\"]}}}",
			       NULL),
		      5000);
	for (long long until = h_now_ms() + 5000; sf == NULL && h_now_ms() < until;
	     h_sleep_ms(100)) {
		r = host_rules();
		sf = json_incref(find_by(json_object_get(r, "shortfalls"), "rule", "deep"));
		json_decref(r);
	}
	cr_assert_not_null(sf, "the shortfall of rule deep was not reported");
	cr_assert_str_eq(json_string_value(json_object_get(sf, "wanted")), "prevent");
	cr_assert_str_eq(json_string_value(json_object_get(sf, "applied")), "alert");
	cr_assert(strstr(json_string_value(json_object_get(sf, "why")), "every open") != NULL,
		  "why: %s", json_string_value(json_object_get(sf, "why")));
	json_decref(sf);
}

/* ---- network deviations from a service's model ---- */

/* Where the cgroup v2 tree is mounted (out, len); false when there is none. */
static bool cgroup2_root(char *out, size_t len)
{
	char line[4096], mnt[2048], type[64];
	FILE *f = fopen("/proc/self/mountinfo", "re");
	bool found = false;

	while (f != NULL && !found && fgets(line, sizeof(line), f) != NULL) {
		const char *sep = strstr(line, " - ");

		found = sep != NULL && sscanf(line, "%*s %*s %*s %*s %2047s", mnt) == 1 &&
			sscanf(sep + 3, "%63s", type) == 1 && strcmp(type, "cgroup2") == 0 &&
			snprintf(out, len, "%s", mnt) < (int)len;
	}
	if (f != NULL)
		fclose(f);
	return found;
}

/* A loopback TCP listener on a port of ours (returned in *port), or -1. */
static int listener_on(uint16_t *port)
{
	return tcp_listener(port);
}

/* Accept and drop what waits on listener fd; returns how many connections there were. */
static unsigned accept_all(int fd)
{
	unsigned n = 0;
	int c;

	while ((c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		close(c);
		n++;
	}
	return n;
}

/* The state of host-a's model of service, "" when there is none yet. */
static void model_state(const char *service, char *out, size_t len)
{
	json_t *body = NULL, *m;
	size_t i;

	out[0] = '\0';
	if (h_api_get(&con, &pki, "/api/v1/models?host=host-a&limit=500", con.token, &body) != 200)
		return;
	json_array_foreach(
	    json_object_get(body, "models"), i,
	    m) if (strcmp(json_string_value(json_object_get(m, "service")), service) == 0)
	    snprintf(out, len, "%s", json_string_value(json_object_get(m, "state")));
	json_decref(body);
}

Test(enforce, a_units_network_deviation_from_its_model_is_prevented_in_the_kernel)
{
	char root[1024], cg[H_PATH], svcdir[H_PATH], sub[H_PATH], conf[H_PATH], state[32];
	char *argv[] = {(char *)h_bin("vigil-defender"), "--config", conf, NULL};
	uint16_t peer, new_peer, listen_port, new_listen;
	int lpeer = listener_on(&peer), lnew = listener_on(&new_peer), ports[4];
	int lp = listener_on(&listen_port), nl = listener_on(&new_listen);
	pid_t svc;

	if (!cgroup2_root(root, sizeof(root)))
		H_SKIP(teardown, "no cgroup v2 tree mounted");
	/* Ports the service will take: free them (they stay ours until it starts). */
	close(lp);
	close(nl);
	snprintf(cg, sizeof(cg), "%s/vigil-nettest-%d.service", root, (int)getpid());
	cr_assert(mkdir(cg, 0755) == 0 || errno == EEXIST, "%s: %s", cg, strerror(errno));
	snprintf(svcdir, sizeof(svcdir), "%s/svc", dir);
	mkdir(svcdir, 0755);
	snprintf(sub, sizeof(sub), "%s/log", svcdir);
	mkdir(sub, 0755);
	snprintf(sub, sizeof(sub), "%s/state", svcdir);
	mkdir(sub, 0755);
	h_write_file(svcdir, "testsvc.conf", "greeting = hello\n", sub);
	h_defender_conf(dir, &con, pki.ca, pki.host_cert, pki.host_key,
			"heartbeat_interval_ms = 500\nlearn_window = 6s", conf);
	defender_pid = h_spawn(defender_log(), argv);
	wait_enforced(0, 30000);
	need_backend("cgroup-sock");
	ports[0] = listen_port;
	ports[1] = peer;
	ports[2] = new_listen;
	ports[3] = new_peer;
	snprintf(unit_cg, sizeof(unit_cg), "%s", cg);
	char svclog[H_PATH];
	snprintf(svclog, sizeof(svclog), "%s/testsvc.log", dir);
	svc = unit_svc = h_start_testsvc(svcdir, ports, svclog, cg);
	char service[128];
	snprintf(service, sizeof(service), "unit:vigil-nettest-%d.service", (int)getpid());
	/*
	 * Learn its routine (a connect to its peer, its last act), until the
	 * model is active; the peer listener's queue is emptied as it goes.
	 */
	cr_assert_eq(fcntl(lpeer, F_SETFL, fcntl(lpeer, F_GETFL) | O_NONBLOCK), 0);
	for (long long until = h_now_ms() + 40000;; h_sleep_ms(300)) {
		cr_assert_eq(kill(svc, SIGUSR1), 0);
		accept_all(lpeer);
		model_state(service, state, sizeof(state));
		if (strcmp(state, "active") == 0)
			break;
		cr_assert_lt(h_now_ms(), until, "the model of %s is %s; defender log:\n%s", service,
			     state[0] ? state : "absent", h_slurp(defender_log()));
	}
	char rule[512];
	snprintf(
	    rule, sizeof(rule),
	    "{\"name\": \"net-model\", \"scope\": {\"services\": [\"vigil-nettest-%d.service\"]},"
	    " \"network\": {\"deviation\": \"prevent\"}}",
	    (int)getpid());
	wait_enforced(add_rule(rule, NULL), 5000);
	/*
	 * The rule's placement follows the model (at once, or at a rescan every
	 * 2 s): wait until the host says the model's network entries are in the
	 * kernel (a service without an active model gets none).
	 */
	long long entries = 0;
	for (long long until = h_now_ms() + 15000; h_now_ms() < until && entries <= 0;
	     h_sleep_ms(100))
		entries = h_db_count(&con, "SELECT coalesce((capture->'enforce'->>'net_entries')"
					   "::bigint, 0) FROM hosts WHERE host_id = 'host-a'");
	cr_assert_gt(entries, 0, "the model's network entries were never placed; defender log:\n%s",
		     h_slurp(defender_log()));
	/*
	 * Its routine still works: the peer is in its model.  The routine ends
	 * with its connect to the peer: once that arrives (allowed, not
	 * refused), the service must still live.  The learning's routines were
	 * asked seconds ago: what they left in the queue goes first.
	 */
	accept_all(lpeer);
	cr_assert_eq(kill(svc, SIGUSR1), 0);
	bool connected = false;
	for (long long until = h_now_ms() + 15000; h_now_ms() < until && !connected; h_sleep_ms(20))
		connected = accept_all(lpeer) > 0;
	cr_assert(connected, "the routine's connect to its peer did not arrive; testsvc log:\n%s",
		  h_slurp(svclog));
	cr_assert_eq(kill(svc, 0), 0, "the service died doing its routine");
	/*
	 * Its misbehaviour: its listening port is ephemeral like the one it
	 * learned (the model holds "tcp:ephemeral"), but its new peer is not in
	 * the model: that connect is refused in the kernel, and audited.
	 */
	cr_assert_eq(kill(svc, SIGUSR2), 0);
	wait_audit("new_peer", "net-model", "prevent", "");
	char want[64], log[H_PATH];
	snprintf(want, sizeof(want), "connect to %d: Operation not permitted", new_peer);
	snprintf(log, sizeof(log), "%s/testsvc.log", dir);
	for (long long until = h_now_ms() + 5000;
	     h_now_ms() < until && strstr(h_slurp(log), want) == NULL; h_sleep_ms(100))
		;
	char *text = h_slurp(log);
	cr_assert(strstr(text, want) != NULL, "testsvc log:\n%s", text);
	/*
	 * (A connect of its routine may be cut short by the test's signals:
	 * EINTR, not a refusal.)  Not a race: the service runs the routines
	 * asked before the misbehaviour first and logs as it goes, so their
	 * lines are all in the log once the misbehaviour's is.
	 */
	snprintf(want, sizeof(want), "connect to %d: Operation not permitted", peer);
	cr_assert(strstr(text, want) == NULL, "its known peer was refused too:\n%s", text);
	free(text);
	close(lpeer);
	close(lnew);
}
