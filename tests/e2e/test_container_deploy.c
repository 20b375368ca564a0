/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The container images as deployed (docs/deploy.md, "Containers"), under
 * podman on this host.  deploy/containers/build.sh builds them from this
 * tree (its Debian 12 base, made with debootstrap, is kept between runs;
 * the images of a run are removed after it).
 *
 * The defender image, run with exactly the privileges the documentation
 * lists (the host's PID and cgroup namespaces, the capability list, bpffs,
 * tracefs and the cgroup tree) and mounted as the Kubernetes DaemonSet
 * mounts it, enrolls with a join token made with vigilctl, keeps and
 * renews its identity in a directory of the host's, and reports to a real
 * console on the host: a program run on the host, in a terminal session, is
 * in the console's activity log with the host's pids.  A new container on
 * the same directory (a restarted pod), with the token revoked and the
 * first certificate expired, comes back with the renewed identity.
 *
 * The console image runs unprivileged (uid 10001) with its private
 * PostgreSQL in a volume and takes a defender's hello over mutual TLS.
 * Everything is named vigil-test-deploy-* and removed by name.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "harness.h"
#include "pki_enroll.h"

#define PREFIX "localhost/vigil-test-deploy-"
/* podman's records of its containers on this host, mounted read only into the defender's. */
#define PODMAN_STATE "/var/lib/containers/storage/overlay-containers"
#define DEFENDER_CT  "vigil-test-deploy-defender"
#define CONSOLE_CT   "vigil-test-deploy-console"
#define HOST	     "host-a"
#define NODE	     "deploy-node-1" /* the name the defender image enrolls as */
/* Where deploy/k8s/defender-daemonset.yaml mounts what the defender reads and keeps. */
#define CT_CONF	    "/etc/vigil/defender.conf"
#define CT_CA_DIR   "/etc/vigil/console-ca"
#define CT_JOIN_DIR "/etc/vigil/join"
#define CT_STATE    "/var/lib/vigil/defender"
#define PODMAN	    "/usr/bin/podman" /* Debian's; h_run takes a path */

static char dir[H_PATH];
static struct h_pki pki;
static struct h_console con;
static char run_opts[256];

/* argv run to completion with its output in dir/name.log; the exit code. */
static int run_logged(const char *name, int timeout_ms, char *const argv[])
{
	char log[H_PATH];

	snprintf(log, sizeof(log), "%s/%s.log", dir, name);
	return h_run(log, timeout_ms, argv);
}

static char *log_of(const char *name)
{
	char log[H_PATH];

	snprintf(log, sizeof(log), "%s/%s.log", dir, name);
	return h_slurp(log);
}

/* podman rm -f by exact name; absent is fine. */
static void podman_remove_containers(void)
{
	char *rm[] = {PODMAN, "rm", "-f", "--ignore", DEFENDER_CT, CONSOLE_CT, NULL};

	run_logged("podman-rm", 60000, rm);
}

/*
 * After the last test, the run's images go (by name); the base stays, the
 * cache build.sh keeps until its inputs change.  In the runner's process:
 * the tests' own directories are gone by then.
 */
ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	(void)stats;
	if (system("podman --version >/dev/null 2>&1") != 0)
		return;
	if (system("podman rmi --ignore " PREFIX "defender:latest " PREFIX "defender:" VIGIL_VERSION
		   " " PREFIX "console:latest " PREFIX "console:" VIGIL_VERSION
		   " >/dev/null 2>&1") != 0)
		fprintf(stderr, "container_deploy: could not remove the test images\n");
}

static void setup(void)
{
	char cmd[H_PATH * 2];

	if (geteuid() != 0)
		cr_skip_test("the defender container loads BPF programs: this test needs root");
	if (system("podman --version >/dev/null 2>&1") != 0)
		cr_skip_test("podman is not installed (deploy/install-deps.sh installs it)");
	h_tmpdir(dir);
	chmod(dir, 0755); /* the console's uid 10001 reaches its volume below it */
	h_pki_make(dir, &pki);
	podman_remove_containers();

	/*
	 * The images of this tree, from its release build (tests/run.sh makes
	 * build/; VIGIL_CONTAINER_BUILD_DIR names another).
	 */
	const char *src = getenv("VIGIL_SOURCE_DIR");
	const char *rel = getenv("VIGIL_CONTAINER_BUILD_DIR");
	char build[H_PATH], script[H_PATH];
	cr_assert_not_null(src, "VIGIL_SOURCE_DIR is not set (meson test sets it)");
	snprintf(build, sizeof(build), "%s/build", src);
	snprintf(script, sizeof(script), "%s/deploy/containers/build.sh", src);
	setenv("VIGIL_IMAGE_PREFIX", PREFIX, 1);
	setenv("VIGIL_BUILD_DIR", rel != NULL ? rel : build, 1);
	long long t0 = h_now_ms();
	char *argv[] = {script, NULL};
	cr_assert_eq(run_logged("build", 900000, argv), 0, "build.sh failed:\n%s", log_of("build"));
	fprintf(stderr, "container_deploy: images built in %lld ms\n", h_now_ms() - t0);

	/* What makes a container start on this host (none on most). */
	snprintf(cmd, sizeof(cmd), "%s/deploy/containers/podman-opts.sh", src);
	char *oargv[] = {cmd, PREFIX "base:bookworm", NULL};
	cr_assert_eq(run_logged("podman-opts", 60000, oargv), 0, "%s", log_of("podman-opts"));
	char *opts = log_of("podman-opts");
	snprintf(run_opts, sizeof(run_opts), "%s", opts);
	run_opts[strcspn(run_opts, "\n")] = '\0';
	free(opts);
}

static void teardown(void)
{
	char *logs[] = {PODMAN, "logs", DEFENDER_CT, NULL};

	if (dir[0] == '\0')
		return;
	run_logged("defender-container", 10000, logs);
	podman_remove_containers();
	if (con.pid > 0)
		h_console_kill(&con, SIGTERM);
	if (!getenv("VIGIL_KEEP_TEST_DIRS"))
		h_rmrf(dir);
	dir[0] = '\0';
}

TestSuite(container_deploy, .init = setup, .fini = teardown, .timeout = 900);

/* podman run -d with this host's options, then args; fails the test when it does not start. */
static void podman_run(const char *name, const char *args)
{
	char cmd[4096], log[H_PATH];

	snprintf(log, sizeof(log), "%s/%s-run.log", dir, name);
	snprintf(cmd, sizeof(cmd), "podman run -d --name %s %s %s >%s 2>&1", name, run_opts, args,
		 log);
	cr_assert_eq(system(cmd), 0, "%s\n%s", cmd, h_slurp(log));
}

static char *container_logs(const char *name)
{
	char *argv[] = {PODMAN, "logs", (char *)name, NULL};

	run_logged("logs", 10000, argv);
	return log_of("logs");
}

/* How many times needle is in text. */
static int count_in(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* The defender container's log once what is in it more than n times (fails after 60 s). */
static char *wait_log_count(const char *what, int n)
{
	char *logs = NULL;

	for (long long until = h_now_ms() + 60000; h_now_ms() < until; h_sleep_ms(250)) {
		free(logs);
		logs = container_logs(DEFENDER_CT);
		if (count_in(logs, what) > n)
			return logs;
	}
	cr_assert_fail("no new \"%s\" in the defender's log:\n%s", what, logs);
	return NULL;
}

/* The stored exec events whose argv holds marker, as text (for a failure's message). */
static char *exec_of_marker(const char *marker)
{
	PGconn *db = h_db(&con);
	const char *params[] = {marker};
	PGresult *r =
	    PQexecParams(db,
			 "SELECT coalesce(string_agg(body::text, E'\\n'), '(none)') FROM"
			 " events WHERE type = 'exec' AND body::text LIKE '%' || $1 || '%'",
			 1, NULL, params, NULL, NULL, 0);
	char *text =
	    strdup(PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : PQerrorMessage(db));

	PQclear(r);
	PQfinish(db);
	return text;
}

Test(container_deploy, the_defender_image_enrolls_with_a_join_token_and_captures_the_host)
{
	char node[H_PATH], conf[H_PATH], cadir[H_PATH], joindir[H_PATH], state[H_PATH],
	    tokfile[H_PATH], out[H_PATH], text[2048], args[4096], pins[H_PATH], marker[H_PATH],
	    commands[H_PATH + 64], path[256], cert[H_PATH + 32], key[H_PATH + 32], sql[512];
	json_t *host = NULL, *body = NULL, *row, *tok;
	struct pki_cert_info first, now;
	bool up = false, found = false;
	vigil_err err = {0};
	struct stat st;
	size_t i;

	/*
	 * A console that signs enrollments, with 30 s certificates: the
	 * defender renews at two thirds, while this test runs.
	 */
	const char *console_args[] = {"--enroll-ca-dir", pki.dir, "--host-cert-seconds", "30",
				      NULL};
	h_console_start(&con, dir, &pki, console_args);

	/* The join token, as docs/deploy.md makes the Secret's: vigilctl, reusable, expiring. */
	snprintf(out, sizeof(out), "%s/token.json", dir);
	const char *create[] = {"enroll", "token",     "create", "--reusable", "--group",
				"nodes",  "--expires", "30m",	 "--json",     NULL};
	cr_assert_eq(h_vigilctl(&con, &pki, create, out), 0, "vigilctl enroll token create: %s",
		     h_slurp(out));
	tok = json_load_file(out, 0, NULL);
	cr_assert(json_is_string(json_object_get(tok, "token")), "%s", h_slurp(out));

	/*
	 * What the DaemonSet mounts, at the same paths in the container: the
	 * configuration (ConfigMap), the console's CA (ConfigMap), the token
	 * (Secret), and the state directory, a directory of the host's
	 * (hostPath) where the identity is made and renewed.  No certificate.
	 */
	snprintf(node, sizeof(node), "%s/node", dir);
	snprintf(cadir, sizeof(cadir), "%s/console-ca", node);
	snprintf(joindir, sizeof(joindir), "%s/join", node);
	snprintf(state, sizeof(state), "%s/state", node);
	snprintf(text, sizeof(text), "mkdir -p %s %s && cp %s %s/ca.crt && mkdir -m 0700 %s", cadir,
		 joindir, pki.ca, cadir, state);
	cr_assert_eq(system(text), 0, "%s", text);
	snprintf(tokfile, sizeof(tokfile), "%s/token", joindir);
	snprintf(text, sizeof(text), "%s\n", json_string_value(json_object_get(tok, "token")));
	cr_assert_eq(fs_write_file(tokfile, text, strlen(text), 0400, 1, &err), 0, "%s", err.msg);
	h_bpf_pin_dir(dir, pins);
	snprintf(text, sizeof(text),
		 "console = %s\nca = " CT_CA_DIR "/ca.crt\ncert = " CT_STATE "/identity/host.crt\n"
		 "key = " CT_STATE "/identity/host.key\nstate_dir = " CT_STATE "\n"
		 "bpf_pin_dir = %s\nlabel = platform=container\nheartbeat_interval_ms = 500\n",
		 con.listen, pins);
	h_write_file(node, "defender.conf", text, conf);
	snprintf(cert, sizeof(cert), "%s/identity/host.crt", state);
	snprintf(key, sizeof(key), "%s/identity/host.key", state);

	/*
	 * The privileges docs/deploy.md lists, no more: the host's PID, cgroup
	 * and UTS namespaces, the capability list, the kernel's filesystems the
	 * defender uses and, read only, the runtime's records of its containers.
	 * Then the DaemonSet's arguments.
	 */
	snprintf(args, sizeof(args),
		 "--pid=host --cgroupns=host --uts=host --network=host"
		 " --cap-drop=all"
		 " --cap-add=BPF,PERFMON,NET_ADMIN,SYS_ADMIN,SYS_PTRACE,DAC_READ_SEARCH,KILL"
		 " -v /sys/fs/bpf:/sys/fs/bpf -v /sys/kernel/tracing:/sys/kernel/tracing"
		 " -v /sys/fs/cgroup:/sys/fs/cgroup:ro -v " PODMAN_STATE ":" PODMAN_STATE ":ro"
		 " -v %s:" CT_CONF ":ro -v %s:" CT_CA_DIR ":ro"
		 " -v %s:" CT_JOIN_DIR ":ro -v %s:" CT_STATE " %sdefender:%s"
		 " --config " CT_CONF " --enroll-token-file " CT_JOIN_DIR "/token"
		 " --console 127.0.0.1:%d --ca " CT_CA_DIR "/ca.crt --name " NODE,
		 conf, cadir, joindir, state, PREFIX, VIGIL_VERSION, con.api_port);
	long long t0 = h_now_ms();
	podman_run(DEFENDER_CT, args);

	/* Enrolled and registered, with its BPF programs loaded, from inside the container. */
	for (long long until = h_now_ms() + 60000; h_now_ms() < until && !up; h_sleep_ms(250)) {
		json_decref(host);
		host = h_api_host(&con, &pki, NODE);
		up = host != NULL && json_is_true(json_object_get(host, "connected"));
	}
	cr_assert(up, "the containerized defender never enrolled and registered:\n%s\nconsole:\n%s",
		  container_logs(DEFENDER_CT), h_slurp(con.log));
	fprintf(stderr,
		"container_deploy: defender enrolled and registered %lld ms after podman run\n",
		h_now_ms() - t0);
	const char *bpf = json_string_value(json_object_get(host, "bpf_status"));
	cr_assert(bpf != NULL && strncmp(bpf, "loaded", 6) == 0, "bpf_status: %s\n%s", bpf,
		  container_logs(DEFENDER_CT));
	char hostname[256] = "";
	gethostname(hostname, sizeof(hostname) - 1);
	cr_expect_str_eq(json_string_value(json_object_get(host, "hostname")), hostname,
			 "--uts=host: the hello names the host, not the container");
	cr_expect_str_eq(
	    json_string_value(json_object_get(json_object_get(host, "labels"), "group")), "nodes",
	    "the token's group reaches the console");
	json_decref(host);

	/* Its key was made in the host's directory, and its certificate is the console's record. */
	cr_assert_eq(stat(key, &st), 0, "no key in the state directory on the host");
	cr_expect_eq(st.st_mode & 0777, 0600, "key mode %o", st.st_mode & 0777);
	first = h_cert_file(cert);
	cr_expect_str_eq(first.cn, NODE);
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM host_certs WHERE host_id = '" NODE "' AND serial = '%s'"
		 " AND via = 'enroll' AND token_id = '%s'",
		 first.serial, json_string_value(json_object_get(tok, "id")));
	cr_expect_eq(h_db_count(&con, sql), 1, "no record of certificate %s", first.serial);

	/* A program of the host's, run in a terminal session there. */
	snprintf(marker, sizeof(marker), "%s/vigil-container-marker-%d", dir, (int)getpid());
	char cp[2 * H_PATH];
	snprintf(cp, sizeof(cp), "cp /bin/echo %s", marker);
	cr_assert_eq(system(cp), 0);
	snprintf(commands, sizeof(commands), "%s seen-from-the-container\nexit\n", marker);
	pid_t sh = h_pty_session(commands, 20000);

	snprintf(path, sizeof(path), "/api/v1/activity?host=" NODE "&q=vigil-container-marker-%d",
		 (int)getpid());
	for (long long until = h_now_ms() + 30000; h_now_ms() < until && !found; h_sleep_ms(250)) {
		json_decref(body);
		body = NULL;
		if (h_api_get(&con, &pki, path, con.token, &body) != 200)
			continue;
		json_array_foreach(json_object_get(body, "activity"), i, row)
		{
			const char *summary = json_string_value(json_object_get(row, "summary"));
			const char *type = json_string_value(json_object_get(row, "type"));

			if (summary == NULL || type == NULL || strcmp(type, "exec") != 0 ||
			    strstr(summary, marker) == NULL)
				continue;
			found = true;
			cr_expect(strstr(summary, "seen-from-the-container") != NULL, "%s",
				  summary);
			cr_expect_eq(json_integer_value(json_object_get(row, "session")), sh,
				     "the session is the host's pid of the shell (--pid=host)");
		}
	}
	cr_assert(found, "the host's program is not in the console's activity:\n%s\n%s",
		  body != NULL ? json_dumps(body, JSON_INDENT(1)) : "(no answer)",
		  container_logs(DEFENDER_CT));
	json_decref(body);

	/*
	 * A container on the host, seen from the defender's own container: its
	 * runtime's records are mounted in (read only), so the exec inside is
	 * known by the container's image, as a defender on the host knows it.
	 */
	char ctr_cmd[1024], ctr_sql[512];
	snprintf(ctr_cmd, sizeof(ctr_cmd),
		 "podman run --rm --network=none %s --entrypoint /bin/sh " PREFIX
		 "base:bookworm -c '/bin/true vigil-ctr-in-%d; sleep 2' >%s/host-ctr.log 2>&1",
		 run_opts, (int)getpid(), dir);
	cr_assert_eq(system(ctr_cmd), 0, "%s", log_of("host-ctr"));
	snprintf(ctr_sql, sizeof(ctr_sql),
		 "SELECT count(*) FROM events WHERE host_id = '" NODE "' AND type = 'exec'"
		 " AND body->>'filename' = '/usr/bin/true'"
		 " AND body->'argv'->>1 = 'vigil-ctr-in-%d'"
		 " AND body->>'container_image' = '" PREFIX "base:bookworm'"
		 " AND body->>'container_runtime' = 'podman'",
		 (int)getpid());
	for (long long until = h_now_ms() + 20000; h_db_count(&con, ctr_sql) < 1; h_sleep_ms(250))
		cr_assert_lt(h_now_ms(), until,
			     "the host's container is not known by its image from the defender's"
			     " container: %s\n%s",
			     exec_of_marker("vigil-ctr-in-"), container_logs(DEFENDER_CT));

	/* The renewal lands in the host's directory, before the first certificate expires. */
	do {
		h_sleep_ms(250);
		now = h_cert_file(cert);
	} while (strcmp(now.serial, first.serial) == 0 && h_wall_ms() < first.not_after * 1000LL);
	cr_assert_str_neq(now.serial, first.serial, "no renewal in %s before expiry:\n%s", cert,
			  container_logs(DEFENDER_CT));
	fprintf(stderr, "container_deploy: renewed %lld s before expiry\n",
		(long long)(first.not_after - time(NULL)));
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM host_certs WHERE host_id = '" NODE "' AND via = 'renew'"
		 " AND renewed_from = '%s'",
		 first.serial);
	cr_expect_eq(h_db_count(&con, sql), 1);

	/* A stop ends it cleanly, its pinned capture with it. */
	char *stop[] = {PODMAN, "stop", "-t", "10", DEFENDER_CT, NULL};
	cr_assert_eq(run_logged("podman-stop", 30000, stop), 0, "%s", log_of("podman-stop"));
	char *logs = container_logs(DEFENDER_CT);
	cr_expect(strstr(logs, "stopping") != NULL, "%s", logs);
	free(logs);
	char pinned[H_PATH + 16];
	snprintf(pinned, sizeof(pinned), "%s/links", pins);
	cr_expect(stat(pins, &st) != 0 || stat(pinned, &st) != 0,
		  "a stopped defender leaves nothing pinned in %s", pins);

	/*
	 * A new container on the same host directory, as a restarted pod: the
	 * identity is the one kept there, renewed.  The token is revoked first
	 * and the first certificate left to expire, so that only the renewed
	 * identity can bring it back.
	 */
	const char *revoke[] = {"enroll", "token", "revoke",
				json_string_value(json_object_get(tok, "id")), NULL};
	cr_assert_eq(h_vigilctl(&con, &pki, revoke, out), 0, "%s", h_slurp(out));
	while (time(NULL) <= first.not_after + 1)
		h_sleep_ms(200);
	podman_remove_containers();
	podman_run(DEFENDER_CT, args);
	logs = wait_log_count("registered with the console", 0);
	cr_expect(strstr(logs, "already enrolled") != NULL, "%s", logs);
	free(logs);
	cr_expect_str_neq(h_cert_file(cert).serial, first.serial, "the renewed identity");
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM host_certs WHERE host_id = '" NODE "' AND via = 'enroll'");
	cr_expect_eq(h_db_count(&con, sql), 1, "enrolled once");
	up = false;
	for (long long until = h_now_ms() + 20000; h_now_ms() < until && !up; h_sleep_ms(250)) {
		host = h_api_host(&con, &pki, NODE);
		up = host != NULL && json_is_true(json_object_get(host, "connected"));
		json_decref(host);
	}
	cr_expect(up, "not connected again after the restart:\n%s\nconsole:\n%s",
		  container_logs(DEFENDER_CT), h_slurp(con.log));
	json_decref(tok);
}

Test(container_deploy, the_console_image_runs_unprivileged_with_its_own_postgresql)
{
	char state[H_PATH], pkidir[H_PATH], args[3072], cmd[2 * H_PATH + 128];
	char listen[128], api[128];
	int link_port = h_free_port(), api_port = h_free_port();

	/* Its volume and its certificates, readable by its own uid only. */
	snprintf(state, sizeof(state), "%s/console-volume", dir);
	snprintf(pkidir, sizeof(pkidir), "%s/console-pki", dir);
	snprintf(cmd, sizeof(cmd),
		 "mkdir -p %s %s && cp %s %s/ca.crt && cp %s %s/console.crt && cp %s %s/console.key"
		 " && chown -R 10001:10001 %s %s && chmod 0700 %s",
		 state, pkidir, pki.ca, pkidir, pki.console_cert, pkidir, pki.console_key, pkidir,
		 state, pkidir, state);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	snprintf(listen, sizeof(listen), "tls+tcp://127.0.0.1:%d", link_port);
	snprintf(api, sizeof(api), "https://127.0.0.1:%d", api_port);
	snprintf(args, sizeof(args),
		 "--network=host --cap-drop=all --security-opt no-new-privileges"
		 " -v %s:/var/lib/vigil/console -v %s:/etc/vigil/pki:ro %sconsole:%s"
		 " --state-dir /var/lib/vigil/console --listen %s --api %s"
		 " --ca /etc/vigil/pki/ca.crt --cert /etc/vigil/pki/console.crt"
		 " --key /etc/vigil/pki/console.key",
		 state, pkidir, PREFIX, VIGIL_VERSION, listen, api);
	podman_run(CONSOLE_CT, args);

	/* The harness's view of it: same state layout, its token, its ports. */
	memset(&con, 0, sizeof(con));
	snprintf(con.state, sizeof(con.state), "%s", state);
	snprintf(con.listen, sizeof(con.listen), "%s", listen);
	snprintf(con.api, sizeof(con.api), "%s", api);
	con.link_port = link_port;
	con.api_port = api_port;
	json_t *body = NULL;
	int status = -1;
	for (long long until = h_now_ms() + 120000; h_now_ms() < until && status != 200;
	     h_sleep_ms(500)) {
		char tpath[H_PATH + 16];
		char *token;

		snprintf(tpath, sizeof(tpath), "%s/api-token", state);
		token = h_slurp(tpath);
		token[strcspn(token, "\n")] = '\0';
		snprintf(con.token, sizeof(con.token), "%s", token);
		free(token);
		if (con.token[0] != '\0')
			status = h_api_get(&con, &pki, "/api/v1/status", con.token, &body);
	}
	cr_assert_eq(status, 200, "the console container's API never answered:\n%s",
		     container_logs(CONSOLE_CT));
	json_decref(body);

	/* Its processes, PostgreSQL's included, run as uid 10001. */
	snprintf(cmd, sizeof(cmd),
		 "podman top %s huser comm | awk 'NR>1' | tee %s/top.log | grep -v '^10001 ' | "
		 "grep -q . && exit 1; grep -q postgres %s/top.log",
		 CONSOLE_CT, dir, dir);
	char tlog[H_PATH + 16];
	snprintf(tlog, sizeof(tlog), "%s/top.log", dir);
	cr_expect_eq(system(cmd), 0, "processes not all uid 10001, or no PostgreSQL:\n%s",
		     h_slurp(tlog));

	/* A defender's hello over mutual TLS is taken and stored. */
	struct h_link l;
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Hello hello = VIGIL__HELLO__INIT;
	hello.hostname = "container-test";
	hello.kernel = "k";
	hello.os = "os";
	hello.defender_version = VIGIL_VERSION;
	hello.bpf_status = "loaded: test";
	env.seq = 1;
	env.body_case = VIGIL__ENVELOPE__BODY_HELLO;
	env.hello = &hello;
	h_link_open(&l, &con, &pki, pki.host_cert, pki.host_key);
	Vigil__Reply *r = h_link_request(&l, &env);
	cr_expect_eq(r->status, VIGIL__REPLY__STATUS__OK, "%s", r->error);
	vigil__reply__free_unpacked(r, NULL);
	h_link_close(&l);
	json_t *host = h_api_host(&con, &pki, HOST);
	cr_assert_not_null(host, "the hello's host is not in the console's database");
	cr_expect_str_eq(json_string_value(json_object_get(host, "hostname")), "container-test");
	json_decref(host);
	con.pid = 0; /* not a child of ours: teardown removes the container */
}
