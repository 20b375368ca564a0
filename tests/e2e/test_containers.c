/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Containers end to end: real podman containers, real kernel, real defender,
 * console and PostgreSQL.  Two images are built here from a busybox-static
 * root filesystem with `podman import` (no registry).  Three containers run
 * a small service loop: two of image A, one of image B.
 *
 *   - The two containers of image A share one model, "container:<image A>",
 *     which both teach; image B has a model of its own.  Neither is the
 *     runtime's (conmon's) model.
 *   - Once the models are active, a shell the service starts inside a
 *     container of A is a deviation, audited with the container's name,
 *     image and runtime (API and database).
 *   - A rule scoped to image B ("processes.deviation: prevent") stops B's
 *     shell before it runs and audits it under the rule; A's shell, at the
 *     same moment, runs and is audited with no rule.
 *   - `podman exec -it` into a container of A, on a real terminal, is an
 *     interactive session: logged with the container's name and image,
 *     never learned, never audited.
 *
 * Containers are named vigil-test-<pid>-*, images localhost/vigil-test-<pid>-*;
 * all are removed at the end.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define HOST	       "host-a"
#define LEARN_WINDOW_S 8
#define PODMAN	       "/usr/bin/podman"
#define BUSYBOX	       "/bin/busybox"
#define DOCKERD	       "/usr/sbin/dockerd" /* Debian's docker.io (tests/e2e/install-docker.sh) */
#define DOCKER	       "/usr/bin/docker"

static char dir[H_PATH];
static struct h_pki pki;
static struct h_console con;
static pid_t defender_pid;

/* Names, made unique per run. */
static char image_a[128], image_b[128];
static char ctr_a1[64], ctr_a2[64], ctr_b1[64], ctr_b2[64];
static bool images_made, containers_made;
/*
 * Docker: the host's own daemon when one answers on its usual socket, else
 * one started here for the test (dockerd_pid) with no network set-up.
 */
static char docker_host[H_PATH + 16], docker_image[128], ctr_d1[64], ctr_d2[64];
static pid_t dockerd_pid;
static bool docker_image_made, docker_containers_made;
/* What this host's podman needs to run a container (see probe_run). */
static const char *run_extra[8]; /* NULL after the last (start_container) */
static size_t nrun_extra;

/* Run argv (NULL-terminated) with its output in dir/name.log; its exit code. */
static int run(const char *name, int timeout_ms, char *const argv[])
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

static void docker_teardown(void)
{
	if (docker_containers_made) {
		char *const rm[] = {DOCKER, "-H", docker_host, "rm", "-f", ctr_d1, ctr_d2, NULL};
		run("docker-rm", 60000, rm);
	}
	if (docker_image_made) {
		char *const rmi[] = {DOCKER, "-H", docker_host, "rmi", "-f", docker_image, NULL};
		run("docker-rmi", 60000, rmi);
	}
	if (dockerd_pid > 0)
		h_stop(dockerd_pid, SIGTERM, 30000);
}

static void teardown(void)
{
	docker_teardown();
	if (containers_made) {
		char *const rm[] = {PODMAN, "rm",   "-f",   "-i",   "-t", "0",
				    ctr_a1, ctr_a2, ctr_b1, ctr_b2, NULL};
		run("podman-rm", 60000, rm);
	}
	if (images_made) {
		char *const rmi[] = {PODMAN, "rmi", "-f", "-i", image_a, image_b, NULL};
		run("podman-rmi", 60000, rmi);
	}
	if (defender_pid > 0)
		h_stop(defender_pid, SIGTERM, 10000);
	if (con.pid > 0)
		h_console_kill(&con, SIGTERM);
	if (dir[0] != '\0' && !getenv("VIGIL_KEEP_TEST_DIRS"))
		h_rmrf(dir);
}

/*
 * A root filesystem of busybox-static: /bin/busybox, and /bin/sh a copy of
 * it (a program of its own, as a shell is in a real image), as a tarball.
 */
static void make_rootfs_tar(char tar[H_PATH])
{
	char rootfs[H_PATH], path[H_PATH];

	snprintf(rootfs, sizeof(rootfs), "%s/rootfs", dir);
	snprintf(path, sizeof(path), "%s/bin", rootfs);
	cr_assert_eq(mkdir(rootfs, 0755), 0);
	cr_assert_eq(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/ctl", rootfs);
	cr_assert_eq(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/bin/busybox", rootfs);
	char *const cp1[] = {"/bin/cp", BUSYBOX, path, NULL};
	cr_assert_eq(run("cp", 10000, cp1), 0);
	snprintf(path, sizeof(path), "%s/bin/sh", rootfs);
	char *const cp2[] = {"/bin/cp", BUSYBOX, path, NULL};
	cr_assert_eq(run("cp", 10000, cp2), 0);
	snprintf(tar, H_PATH, "%s/rootfs.tar", dir);
	char *const mk[] = {"/bin/tar", "-C", rootfs, "-cf", tar, ".", NULL};
	cr_assert_eq(run("tar", 30000, mk), 0, "%s", log_of("tar"));
}

static void import_image(const char *tar, const char *name)
{
	char *const imp[] = {
	    PODMAN,	 "import",     "--change", "CMD [\"/bin/busybox\", \"true\"]",
	    (char *)tar, (char *)name, NULL};

	cr_assert_eq(run("podman-import", 120000, imp), 0, "podman import %s: %s", name,
		     log_of("podman-import"));
}

/*
 * Whether a container runs here as podman starts it by default; else with
 * runc and explicit limits (a host with hybrid cgroups, where crun refuses,
 * or one that may not raise the open-files limit).  Skips, saying why, when
 * neither does.
 */
static void probe_run(void)
{
	static const char *const fallback[] = {"--runtime",	   "runc",     "--ulimit",
					       "nofile=1024:1024", "--ulimit", "nproc=1024:1024"};
	char *argv[32];
	size_t n;

	for (int attempt = 0; attempt < 2; attempt++) {
		n = 0;
		argv[n++] = PODMAN;
		argv[n++] = "run";
		argv[n++] = "--rm";
		argv[n++] = "--network=none";
		argv[n++] = "--pull=never";
		nrun_extra = 0;
		if (attempt == 1)
			for (size_t i = 0; i < 6; i++)
				argv[n++] = (char *)(run_extra[nrun_extra++] = fallback[i]);
		argv[n++] = image_a;
		argv[n++] = BUSYBOX;
		argv[n++] = "true";
		argv[n] = NULL;
		if (run("podman-probe", 120000, argv) == 0)
			return;
	}
	H_SKIP(teardown, "podman cannot run a container on this host: %s", log_of("podman-probe"));
}

static void setup(void)
{
	char tar[H_PATH];

	if (geteuid() != 0)
		cr_skip_test("container tests capture real events and run podman: they need root");
	if (access(PODMAN, X_OK) != 0)
		cr_skip_test("podman is not installed (deploy/install-deps.sh installs it)");
	if (access(BUSYBOX, X_OK) != 0)
		cr_skip_test(
		    "busybox-static is not installed (deploy/install-deps.sh installs it)");
	h_tmpdir(dir);
	snprintf(image_a, sizeof(image_a), "localhost/vigil-test-%d-a:1", (int)getpid());
	snprintf(image_b, sizeof(image_b), "localhost/vigil-test-%d-b:1", (int)getpid());
	snprintf(ctr_a1, sizeof(ctr_a1), "vigil-test-%d-a1", (int)getpid());
	snprintf(ctr_a2, sizeof(ctr_a2), "vigil-test-%d-a2", (int)getpid());
	snprintf(ctr_b1, sizeof(ctr_b1), "vigil-test-%d-b1", (int)getpid());
	snprintf(ctr_b2, sizeof(ctr_b2), "vigil-test-%d-b2", (int)getpid());
	make_rootfs_tar(tar);
	images_made = true;
	import_image(tar, image_a);
	import_image(tar, image_b);
	probe_run();
	h_pki_make(dir, &pki);
	h_console_start(&con, dir, &pki, NULL);
}

TestSuite(containers, .init = setup, .fini = teardown, .timeout = 600);

static void start_defender(void)
{
	char conf[H_PATH], log[H_PATH], extra[128];

	snprintf(extra, sizeof(extra), "heartbeat_interval_ms = 500\nlearn_window = %ds\n",
		 LEARN_WINDOW_S);
	h_defender_conf(dir, &con, pki.ca, pki.host_cert, pki.host_key, extra, conf);
	snprintf(log, sizeof(log), "%s/defender.log", dir);
	char *argv[] = {(char *)h_bin("vigil-defender"), "--config", conf, NULL};
	defender_pid = h_spawn(log, argv);
	for (long long until = h_now_ms() + 30000; h_now_ms() < until; h_sleep_ms(50)) {
		char *t = h_slurp(log);
		bool up = strstr(t, "registered with the console") != NULL;

		free(t);
		if (up)
			return;
	}
	cr_assert_fail("the defender did not register with the console");
}

/*
 * The service every container runs: it says it is up (a file named by
 * WORD, so each container teaches its model something of its own), then
 * sleeps in a loop; the first time dir's "go" file exists it starts a shell
 * that leaves "shell-ran" behind.
 */
#define SERVICE_LOOP                                                                               \
	"echo up > /ctl/$WORD-up; ran=0; while :; do"                                              \
	" if [ $ran = 0 ] && [ -e /ctl/go ]; then ran=1; /bin/sh -c ': > /ctl/shell-ran'; fi;"     \
	" /bin/busybox sleep 0.2; done"

/* The host directory mounted as the container's /ctl. */
static void ctl_dir(const char *name, char out[H_PATH])
{
	snprintf(out, H_PATH, "%s/ctl-%s", dir, name);
}

/*
 * Run a container of image named name, detached, with its service loop; cli
 * is the runtime's command line before "run" (podman, or docker -H SOCKET),
 * extra (NULL-terminated) more options for it.
 */
static void start_container_with(const char *const *cli, const char *const *extra, const char *name,
				 const char *image, const char *word)
{
	char ctl[H_PATH], vol[H_PATH + 16], env[64], *argv[40];
	bool podman = strcmp(cli[0], PODMAN) == 0;
	size_t n = 0;

	ctl_dir(name, ctl);
	cr_assert_eq(mkdir(ctl, 0755), 0);
	snprintf(vol, sizeof(vol), "%s:/ctl", ctl);
	snprintf(env, sizeof(env), "WORD=%s", word);
	while (*cli != NULL)
		argv[n++] = (char *)*cli++;
	argv[n++] = "run";
	argv[n++] = "-d";
	argv[n++] = "--name";
	argv[n++] = (char *)name;
	argv[n++] = "--network=none";
	if (podman)
		argv[n++] = "--pull=never";
	argv[n++] = "-e";
	argv[n++] = env;
	argv[n++] = "-v";
	argv[n++] = vol;
	while (*extra != NULL)
		argv[n++] = (char *)*extra++;
	argv[n++] = (char *)image;
	argv[n++] = BUSYBOX;
	argv[n++] = "sh";
	argv[n++] = "-c";
	argv[n++] = SERVICE_LOOP;
	argv[n] = NULL;
	if (podman)
		containers_made = true;
	cr_assert_eq(run("container-run", 120000, argv), 0, "%s run %s: %s", argv[0], name,
		     log_of("container-run"));
}

static void start_container(const char *name, const char *image, const char *word)
{
	run_extra[nrun_extra] = NULL;
	start_container_with((const char *const[]){PODMAN, NULL}, run_extra, name, image, word);
}

/* Wait until dir/ctl-<name>/<file> exists (the container's service is that far). */
static void wait_ctl_file(const char *name, const char *file, int timeout_ms)
{
	char ctl[H_PATH], path[2 * H_PATH];

	ctl_dir(name, ctl);
	snprintf(path, sizeof(path), "%s/%s", ctl, file);
	for (long long until = h_now_ms() + timeout_ms; access(path, F_OK) != 0; h_sleep_ms(50))
		cr_assert_lt(h_now_ms(), until, "%s never appeared", path);
}

static bool ctl_file_exists(const char *name, const char *file)
{
	char ctl[H_PATH], path[2 * H_PATH];

	ctl_dir(name, ctl);
	snprintf(path, sizeof(path), "%s/%s", ctl, file);
	return access(path, F_OK) == 0;
}

static void touch_ctl_file(const char *name, const char *file)
{
	char ctl[H_PATH], out[H_PATH];

	ctl_dir(name, ctl);
	h_write_file(ctl, file, "", out);
}

/* The models whose service is exactly service, from GET /api/v1/models (a new array). */
static json_t *models_named(const char *service)
{
	json_t *body = NULL, *m, *found = json_array();
	size_t i;

	cr_assert_eq(
	    h_api_get(&con, &pki, "/api/v1/models?host=" HOST "&limit=1000", con.token, &body),
	    200);
	json_array_foreach(json_object_get(body, "models"), i, m)
	{
		const char *svc = json_string_value(json_object_get(m, "service"));

		if (svc != NULL && strcmp(svc, service) == 0)
			json_array_append(found, m);
	}
	json_decref(body);
	return found;
}

/* Wait until service's one model is active; its id. */
static long long wait_active(const char *service, int timeout_ms)
{
	for (long long until = h_now_ms() + timeout_ms; h_now_ms() < until; h_sleep_ms(250)) {
		json_t *ms = models_named(service);
		json_t *m = json_array_get(ms, 0);
		const char *state = json_string_value(json_object_get(m, "state"));
		long long id = json_integer_value(json_object_get(m, "id"));
		bool active = state != NULL && strcmp(state, "active") == 0;

		json_decref(ms);
		if (active)
			return id;
	}
	cr_assert_fail("the model of %s did not become active within %d ms", service, timeout_ms);
	return 0;
}

/* Whether model id has an entry of kind whose pattern is exactly pattern. */
static bool model_has(long long id, const char *kind, const char *pattern)
{
	char path[128];
	json_t *body = NULL, *sec, *e;
	size_t i, j;
	bool found = false;

	snprintf(path, sizeof(path), "/api/v1/models/%lld", id);
	cr_assert_eq(h_api_get(&con, &pki, path, con.token, &body), 200);
	json_array_foreach(json_object_get(body, "sections"), i, sec)
	{
		json_array_foreach(json_object_get(sec, "entries"), j, e)
		{
			const char *k = json_string_value(json_object_get(e, "kind"));
			const char *p = json_string_value(json_object_get(e, "pattern"));

			if (k && p && strcmp(k, kind) == 0 && strcmp(p, pattern) == 0)
				found = true;
		}
	}
	json_decref(body);
	return found;
}

/* count(*) of SQL with text parameters (NULL-terminated). */
static long long db_count(const char *sql, const char *const *params)
{
	PGconn *db = h_db(&con);
	int n = 0;
	long long v;

	while (params[n] != NULL)
		n++;
	PGresult *r = PQexecParams(db, sql, n, NULL, params, NULL, NULL, 0);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(db));
	v = atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(db);
	return v;
}

/* The newest audit of kind about container name, from GET /api/v1/audits; NULL if none yet. */
static json_t *audit_of(const char *kind, const char *container)
{
	char path[512];
	json_t *body = NULL, *a, *found = NULL;

	snprintf(path, sizeof(path), "/api/v1/audits?host=" HOST "&kind=%s&container=%s", kind,
		 container);
	if (h_api_get(&con, &pki, path, con.token, &body) != 200) {
		json_decref(body);
		return NULL;
	}
	a = json_array_get(json_object_get(body, "audits"), 0);
	if (a != NULL)
		found = json_incref(a);
	json_decref(body);
	return found;
}

static json_t *wait_audit(const char *kind, const char *container, int timeout_ms)
{
	for (long long until = h_now_ms() + timeout_ms; h_now_ms() < until; h_sleep_ms(200)) {
		json_t *a = audit_of(kind, container);

		if (a != NULL)
			return a;
	}
	cr_assert_fail("no %s audit about container %s within %d ms", kind, container, timeout_ms);
	return NULL;
}

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "(null)";
}

/* Audit a names its container: name, image, runtime and a full id. */
static void expect_container(json_t *a, const char *name, const char *image, const char *runtime)
{
	json_t *c = json_object_get(a, "container");

	cr_assert(json_is_object(c), "the audit names the container: %s", json_dumps(a, 0));
	cr_expect_str_eq(str(c, "name"), name);
	cr_expect_str_eq(str(c, "image"), image);
	cr_expect_str_eq(str(c, "runtime"), runtime);
	cr_expect_eq(strlen(str(c, "id")), 64u);
}

/* Put a rule in; wait until the defender enforces its version. */
static void add_rule(const char *rule)
{
	json_t *doc = NULL;

	cr_assert_eq(
	    h_api_request(&con, &pki, "POST", "/api/v1/rules", rule, NULL, con.token, &doc), 201,
	    "%s", doc != NULL ? json_dumps(doc, 0) : "");
	long long version = json_integer_value(json_object_get(doc, "version"));
	json_decref(doc);
	for (long long until = h_now_ms() + 15000;; h_sleep_ms(50)) {
		json_t *host = h_api_host(&con, &pki, HOST);
		bool held = json_integer_value(json_object_get(json_object_get(host, "rules"),
							       "version")) == version;

		json_decref(host);
		if (held)
			return;
		cr_assert_lt(h_now_ms(), until, "the defender did not take rule set %lld", version);
	}
}

/*
 * The web UI's model page of model id, in Chromium (tests/ui/model_image.mjs):
 * it names image and links to that image's audits on the host.
 */
static void model_page_names_the_image(long long id, const char *image)
{
	char script[H_PATH], out[H_PATH], url[160], model[32], profile[H_PATH];
	const char *src = getenv("VIGIL_SOURCE_DIR");
	json_t *doc = NULL;
	int rc;

	h_need_browser();
	cr_assert_eq(
	    h_api_request(&con, &pki, "POST", "/api/v1/users",
			  "{\"name\": \"ctr-reader\", \"password\": \"read only but long\","
			  " \"role\": \"read\"}",
			  NULL, con.token, &doc),
	    201, "%s", doc != NULL ? json_dumps(doc, 0) : "");
	json_decref(doc);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d", con.api_port);
	snprintf(model, sizeof(model), "%lld", id);
	snprintf(profile, sizeof(profile), "%s/browser", dir);
	cr_assert_eq(mkdir(profile, 0700), 0);
	setenv("VIGIL_UI_URL", url, 1);
	setenv("VIGIL_UI_CERT", pki.console_cert, 1);
	setenv("VIGIL_UI_TMP", profile, 1);
	setenv("VIGIL_UI_USER", "ctr-reader", 1);
	setenv("VIGIL_UI_PASSWORD", "read only but long", 1);
	setenv("VIGIL_UI_HOST", HOST, 1);
	setenv("VIGIL_UI_MODEL", model, 1);
	setenv("VIGIL_UI_IMAGE", image, 1);
	snprintf(script, sizeof(script), "%s/tests/ui/model_image.mjs", src);
	snprintf(out, sizeof(out), "%s/model_image.log", dir);
	char *argv[] = {"/usr/bin/env", "node", script, NULL};
	rc = h_run(out, 120000, argv);
	cr_assert_eq(rc, 0, "the model page of %s (exit %d):\n%s", image, rc, h_slurp(out));
}

Test(containers, models_by_image_audits_with_the_container_and_rules_by_image)
{
	char service_a[160], service_b[160], rule[512], pattern[64];

	snprintf(service_a, sizeof(service_a), "container:%s", image_a);
	snprintf(service_b, sizeof(service_b), "container:%s", image_b);
	start_defender();

	/* Learning: three containers, two of image A, one of image B. */
	start_container(ctr_a1, image_a, "one");
	start_container(ctr_a2, image_a, "two");
	start_container(ctr_b1, image_b, "three");
	wait_ctl_file(ctr_a1, "one-up", 30000);
	wait_ctl_file(ctr_a2, "two-up", 30000);
	wait_ctl_file(ctr_b1, "three-up", 30000);
	long long model_a = wait_active(service_a, (LEARN_WINDOW_S + 30) * 1000);
	long long model_b = wait_active(service_b, (LEARN_WINDOW_S + 30) * 1000);

	/* One model per image, taught by every container of it. */
	json_t *ms = models_named(service_a);
	cr_assert_eq(json_array_size(ms), 1, "one model for image A");
	json_decref(ms);
	cr_assert_neq(model_a, model_b, "image B has a model of its own");
	cr_assert(model_has(model_a, "write", "/ctl/one-up"),
		  "container a1 taught image A's model");
	cr_assert(model_has(model_a, "write", "/ctl/two-up"), "container a2 taught the same model");
	cr_assert(model_has(model_a, "program", "/bin/busybox"), "the service's sleeps");
	cr_assert(model_has(model_b, "write", "/ctl/three-up"), "container b1 taught B's model");
	cr_assert(!model_has(model_b, "write", "/ctl/one-up"), "B's model is not A's");
	cr_assert(!model_has(model_a, "write", "/ctl/three-up"));
	const char *const one_up[] = {"/ctl/one-up", NULL};
	cr_assert_eq(db_count("SELECT count(DISTINCT model_id) FROM model_entries"
			      " WHERE pattern = $1",
			      one_up),
		     1, "no other model (the runtime's shim) learned what the container did");

	/*
	 * A rule for image B only: its model's deviations in processes are
	 * prevented.  Then both services start a shell at once.
	 */
	snprintf(
	    rule, sizeof(rule),
	    "{\"name\": \"vigil-test-img-b\", \"scope\": {\"images\":"
	    " [\"localhost/vigil-test-%d-b:*\"]}, \"processes\": {\"deviation\": \"prevent\"}}",
	    (int)getpid());
	add_rule(rule);
	touch_ctl_file(ctr_b1, "go");
	touch_ctl_file(ctr_a1, "go");

	/* A's shell: a deviation of image A's model, audited with its container, no rule. */
	json_t *a = wait_audit("new_program", ctr_a1, 30000);
	expect_container(a, ctr_a1, image_a, "podman");
	cr_expect_str_eq(str(a, "service"), service_a);
	cr_expect_str_eq(str(a, "exe"), "/bin/busybox", "the section: the service's program");
	cr_expect_str_eq(str(json_object_get(a, "detail"), "object"), "/bin/sh");
	cr_expect_str_eq(str(a, "severity"), "high");
	cr_expect_str_eq(str(a, "effect"), "alert");
	cr_expect(json_is_null(json_object_get(a, "rule")), "B's rule is not A's: %s",
		  json_dumps(a, 0));
	json_decref(a);
	wait_ctl_file(ctr_a1, "shell-ran", 15000);

	/* B's shell: refused before it ran, under the rule, audited with its container. */
	a = wait_audit("new_program", ctr_b1, 30000);
	expect_container(a, ctr_b1, image_b, "podman");
	cr_expect_str_eq(str(a, "service"), service_b);
	cr_expect_str_eq(str(a, "rule"), "vigil-test-img-b", "%s", json_dumps(a, 0));
	cr_expect_str_eq(str(a, "effect"), "prevent", "%s", json_dumps(a, 0));
	json_decref(a);
	cr_expect(!ctl_file_exists(ctr_b1, "shell-ran"), "B's shell never ran");

	/*
	 * A container of B started after the rule (its own filesystem, mounted
	 * since): its service runs as learned, its shell is stopped as well.
	 */
	start_container(ctr_b2, image_b, "four");
	wait_ctl_file(ctr_b2, "four-up", 30000);
	touch_ctl_file(ctr_b2, "go");
	a = wait_audit("new_program", ctr_b2, 30000);
	cr_expect_str_eq(str(a, "rule"), "vigil-test-img-b", "%s", json_dumps(a, 0));
	cr_expect_str_eq(str(a, "effect"), "prevent", "%s", json_dumps(a, 0));
	json_decref(a);
	cr_expect(!ctl_file_exists(ctr_b2, "shell-ran"), "b2's shell never ran");

	/* The API's image filter, and the database's columns. */
	char path[256];
	json_t *body = NULL;
	snprintf(path, sizeof(path), "/api/v1/audits?host=" HOST "&image=%s", image_b);
	cr_assert_eq(h_api_get(&con, &pki, path, con.token, &body), 200);
	cr_assert_geq(json_array_size(json_object_get(body, "audits")), 1);
	size_t i;
	json_array_foreach(json_object_get(body, "audits"), i, a) cr_expect_str_eq(
	    str(json_object_get(a, "container"), "image"), image_b, "only image B's audits");
	json_decref(body);
	/* vigilctl's image column and filter. */
	char out[H_PATH], *text;
	snprintf(out, sizeof(out), "%s/vigilctl.out", dir);
	cr_expect_eq(
	    h_vigilctl(&con, &pki,
		       (const char *const[]){"audits", "--host", HOST, "--image", image_b, NULL},
		       out),
	    0, "%s", h_slurp(out));
	text = h_slurp(out);
	cr_expect(text != NULL && strstr(text, "IMAGE") != NULL && strstr(text, image_b) != NULL &&
		      strstr(text, image_a) == NULL,
		  "%s", text);
	free(text);
	const char *const cols[] = {ctr_a1, image_a, NULL};
	cr_expect_eq(
	    db_count("SELECT count(*) FROM audits WHERE kind = 'new_program'"
		     " AND container_name = $1 AND container_image = $2"
		     " AND container_runtime = 'podman' AND container_id ~ '^[0-9a-f]{64}$'",
		     cols),
	    1);
	/* The shell's exec event carries them too (the JSON line --events-json writes). */
	const char *const ev[] = {ctr_a1, image_a, NULL};
	cr_expect_geq(db_count("SELECT count(*) FROM events WHERE type = 'exec'"
			       " AND body->>'container_name' = $1 AND body->>'container_image' = $2"
			       " AND body->>'filename' = '/bin/sh'",
			       ev),
		      1);
	snprintf(pattern, sizeof(pattern), "%s", "/bin/sh");
	cr_expect(!model_has(model_a, "program", pattern), "a deviation is not learned");
	model_page_names_the_image(model_a, image_a);

	/*
	 * Rehearsal reads the image of each act: a rule for image A, first,
	 * would have refused A's shell (its exec event) and says nothing of B's
	 * (their audits name image B).
	 */
	char req[1024];
	json_t *doc = NULL, *g;
	snprintf(req, sizeof(req),
		 "{\"rule\": {\"name\": \"rh-img-a\", \"position\": 1, \"scope\": {\"images\":"
		 " [\"localhost/vigil-test-%d-a:*\"]}, \"processes\": {\"deny\": {\"effect\":"
		 " \"prevent\", \"executables\": [\"/bin/sh\"]}}}, \"since\": \"1h\"}",
		 (int)getpid());
	cr_assert_eq(
	    h_api_request(&con, &pki, "POST", "/api/v1/rules/rehearse", req, NULL, con.token, &doc),
	    200, "%s", doc != NULL ? json_dumps(doc, 0) : "");
	bool saw_a = false;
	json_array_foreach(json_object_get(doc, "groups"), i, g)
	{
		const char *svc = str(g, "service");

		cr_expect_str_neq(svc, service_b, "image B's acts: %s", json_dumps(g, 0));
		if (strcmp(svc, service_a) == 0 && strcmp(str(g, "effect"), "prevent") == 0 &&
		    strcmp(str(g, "category"), "processes") == 0)
			saw_a = true;
	}
	cr_expect(saw_a, "image A's shell would have been refused: %s", json_dumps(doc, 0));
	cr_expect_eq(json_array_size(json_object_get(doc, "masked_by")), 0, "%s",
		     json_dumps(doc, 0));
	json_decref(doc);
}

Test(containers, an_exec_with_a_terminal_into_a_container_is_an_interactive_session)
{
	char marker[64], commands[512];

	start_defender();
	start_container(ctr_a2, image_a, "two");
	wait_ctl_file(ctr_a2, "two-up", 30000);
	snprintf(marker, sizeof(marker), "vigil-ctr-marker-%d", (int)getpid());
	/* One line: podman reads the terminal while it runs, so "exit" must not wait there. */
	snprintf(commands, sizeof(commands), PODMAN " exec -it %s /bin/busybox echo %s; exit\n",
		 ctr_a2, marker);
	h_pty_session(commands, 60000);

	const char *const params[] = {marker, ctr_a2, image_a, NULL};
	static const char sql[] =
	    "SELECT count(*) FROM activity WHERE host_id = '" HOST "' AND type = 'exec'"
	    " AND summary LIKE '%' || $1 || '%' AND body->>'container_name' = $2"
	    " AND body->>'container_image' = $3 AND body->>'class' = 'interactive'"
	    " AND tty <> ''";
	for (long long until = h_now_ms() + 20000; db_count(sql, params) < 1; h_sleep_ms(250))
		cr_assert_lt(h_now_ms(), until,
			     "the command typed into the container is not in the activity log");
	const char *const m[] = {marker, NULL};
	cr_expect_eq(db_count("SELECT count(*) FROM audits WHERE detail::text LIKE"
			      " '%' || $1 || '%'",
			      m),
		     0, "a person's session is never a deviation");
	cr_expect_eq(db_count("SELECT count(*) FROM model_entries WHERE pattern LIKE"
			      " '%' || $1 || '%'",
			      m),
		     0, "nor learned");
}

/* Whether the Docker daemon at docker_host answers. */
static bool docker_answers(void)
{
	char *const version[] = {DOCKER, "-H", docker_host, "version", NULL};

	return run("docker-version", 10000, version) == 0;
}

/*
 * A Docker daemon to run containers on: the host's own when it answers,
 * else one started here with Docker's usual data root (the defender reads
 * the state there) and no bridge, iptables or masquerade rules: the test's
 * containers have no network.  Skips, saying why, without Docker.
 */
static void docker_start(void)
{
	char sock[H_PATH + 16], exec_root[H_PATH], pidfile[H_PATH], log[H_PATH];

	if (access(DOCKERD, X_OK) != 0 || access(DOCKER, X_OK) != 0)
		H_SKIP(teardown, "Docker is not installed (tests/e2e/install-docker.sh installs "
				 "Debian's docker.io)");
	snprintf(docker_host, sizeof(docker_host), "unix:///run/docker.sock");
	if (docker_answers())
		return;
	snprintf(sock, sizeof(sock), "unix://%s/docker.sock", dir);
	snprintf(exec_root, sizeof(exec_root), "%s/dx", dir);
	snprintf(pidfile, sizeof(pidfile), "%s/dockerd.pid", dir);
	snprintf(log, sizeof(log), "%s/dockerd.log", dir);
	char *const argv[] = {DOCKERD,
			      "--host",
			      sock,
			      "--exec-root",
			      exec_root,
			      "--pidfile",
			      pidfile,
			      "--bridge=none",
			      "--iptables=false",
			      "--ip6tables=false",
			      "--ip-masq=false",
			      NULL};
	snprintf(docker_host, sizeof(docker_host), "%s", sock);
	dockerd_pid = h_spawn(log, argv);
	for (long long until = h_now_ms() + 60000; !docker_answers(); h_sleep_ms(200)) {
		int status;

		cr_assert(!h_exited(dockerd_pid, &status), "dockerd exited: %s", h_slurp(log));
		cr_assert_lt(h_now_ms(), until, "dockerd did not answer within 60 s: %s",
			     h_slurp(log));
	}
}

/*
 * Docker, the most common runtime: two containers of one image imported
 * into Docker share the model Docker's own name for the image keys
 * ("docker.io/library/<name>", as Docker itself writes an unqualified name),
 * and a shell started inside one is audited with Docker's container name,
 * the image and runtime "docker" (read from config.v2.json).
 */
Test(containers, docker_containers_share_their_images_model_and_a_shell_is_audited_with_them)
{
	char tar[H_PATH], service[192], image_ref[160];

	docker_start();
	snprintf(docker_image, sizeof(docker_image), "vigil-test-%d-d:1", (int)getpid());
	snprintf(image_ref, sizeof(image_ref), "docker.io/library/%s", docker_image);
	snprintf(service, sizeof(service), "container:%s", image_ref);
	snprintf(ctr_d1, sizeof(ctr_d1), "vigil-test-%d-d1", (int)getpid());
	snprintf(ctr_d2, sizeof(ctr_d2), "vigil-test-%d-d2", (int)getpid());
	snprintf(tar, sizeof(tar), "%s/rootfs.tar", dir);
	char *const imp[] = {DOCKER,   "-H",	     docker_host,
			     "import", "--change",   "CMD [\"/bin/busybox\", \"true\"]",
			     tar,      docker_image, NULL};
	docker_image_made = true;
	cr_assert_eq(run("docker-import", 120000, imp), 0, "%s", log_of("docker-import"));

	start_defender();
	const char *const cli[] = {DOCKER, "-H", docker_host, NULL};
	docker_containers_made = true;
	const char *const none[] = {NULL};
	start_container_with(cli, none, ctr_d1, docker_image, "five");
	start_container_with(cli, none, ctr_d2, docker_image, "six");
	wait_ctl_file(ctr_d1, "five-up", 30000);
	wait_ctl_file(ctr_d2, "six-up", 30000);
	long long model = wait_active(service, (LEARN_WINDOW_S + 30) * 1000);
	json_t *ms = models_named(service);
	cr_assert_eq(json_array_size(ms), 1, "one model for the image");
	json_decref(ms);
	cr_assert(model_has(model, "write", "/ctl/five-up"), "d1 taught the image's model");
	cr_assert(model_has(model, "write", "/ctl/six-up"), "d2 taught the same model");
	const char *const five_up[] = {"/ctl/five-up", NULL};
	cr_assert_eq(db_count("SELECT count(DISTINCT model_id) FROM model_entries"
			      " WHERE pattern = $1",
			      five_up),
		     1, "no other model (containerd's shim) learned what the container did");

	touch_ctl_file(ctr_d1, "go");
	json_t *a = wait_audit("new_program", ctr_d1, 30000);
	expect_container(a, ctr_d1, image_ref, "docker");
	cr_expect_str_eq(str(a, "service"), service);
	cr_expect_str_eq(str(json_object_get(a, "detail"), "object"), "/bin/sh");
	json_decref(a);
	wait_ctl_file(ctr_d1, "shell-ran", 15000);
}

/*
 * podman under one OCI runtime: the container's programs are known by its
 * name and image, whichever runtime (runc, crun) made its cgroup.  Skips,
 * saying why, where the runtime cannot start a container on this host (crun
 * refuses a hybrid cgroup v1/v2 tree).
 */
static void known_under_runtime(const char *runtime)
{
	char *log, *probe[16];
	size_t n = 0;
	const char *const extra[] = {"--runtime", runtime,	     "--ulimit", "nofile=1024:1024",
				     "--ulimit",  "nproc=1024:1024", NULL};

	probe[n++] = PODMAN;
	probe[n++] = "run";
	probe[n++] = "--rm";
	probe[n++] = "--network=none";
	probe[n++] = "--pull=never";
	for (size_t i = 0; extra[i] != NULL; i++)
		probe[n++] = (char *)extra[i];
	probe[n++] = image_a;
	probe[n++] = BUSYBOX;
	probe[n++] = "true";
	probe[n] = NULL;
	if (run("runtime-probe", 120000, probe) != 0) {
		log = log_of("runtime-probe");
		H_SKIP(teardown, "podman --runtime %s cannot start a container on this host: %s",
		       runtime, log != NULL ? log : "(no output)");
	}
	start_defender();
	start_container_with((const char *const[]){PODMAN, NULL}, extra, ctr_a1, image_a, "rt");
	wait_ctl_file(ctr_a1, "rt-up", 30000);
	const char *const params[] = {ctr_a1, image_a, NULL};
	static const char sql[] = "SELECT count(*) FROM events WHERE type = 'exec'"
				  " AND body->>'container_name' = $1"
				  " AND body->>'container_image' = $2"
				  " AND body->>'container_runtime' = 'podman'"
				  " AND body->>'service' = 'container:' || $2";
	for (long long until = h_now_ms() + 30000; db_count(sql, params) < 1; h_sleep_ms(250))
		cr_assert_lt(h_now_ms(), until,
			     "no exec of container %s (runtime %s) with its name and image", ctr_a1,
			     runtime);
}

Test(containers, a_container_under_runc_is_known_by_name_and_image)
{
	known_under_runtime("runc");
}

Test(containers, a_container_under_crun_is_known_by_name_and_image)
{
	known_under_runtime("crun");
}

/* `nc 127.0.0.1 port` run inside container name: what it said (a new string). */
static char *nc_in(const char *name, int port)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), BUSYBOX " nc 127.0.0.1 %d </dev/null", port);
	char *const argv[] = {PODMAN, "exec", (char *)name, BUSYBOX, "sh", "-c", cmd, NULL};
	run("nc", 60000, argv);
	return log_of("nc");
}

/*
 * A network rule scoped to image B refuses, in the kernel, the connects of
 * B's containers (EPERM: "Operation not permitted") and audits them under
 * the rule with the container; A's containers, at the same moment, reach
 * the port and are refused only by its emptiness (no listener in their
 * network namespace: "Connection refused").  A container of B started after
 * the rule is placed at the enforcer's next scan of the cgroups (2 s).
 */
Test(containers, a_network_rule_for_one_image_refuses_its_containers_connects_only)
{
	char rule[512], *said;
	int port = 9;

	start_defender();
	start_container(ctr_a1, image_a, "na");
	start_container(ctr_b1, image_b, "nb");
	wait_ctl_file(ctr_a1, "na-up", 30000);
	wait_ctl_file(ctr_b1, "nb-up", 30000);
	said = nc_in(ctr_b1, port);
	cr_assert(said != NULL && strstr(said, "Connection refused") != NULL,
		  "before the rule B's connect is refused by the empty port: %s", said);
	free(said);

	snprintf(rule, sizeof(rule),
		 "{\"name\": \"vigil-test-net-b\", \"scope\": {\"images\":"
		 " [\"localhost/vigil-test-%d-b:*\"]}, \"network\": {\"deny\": {\"effect\":"
		 " \"prevent\", \"connect\": [\"127.0.0.1:%d\"]}}}",
		 (int)getpid(), port);
	add_rule(rule);
	said = nc_in(ctr_b1, port);
	cr_expect(said != NULL && strstr(said, "Operation not permitted") != NULL,
		  "B's connect is refused by the rule: %s", said);
	free(said);
	said = nc_in(ctr_a1, port);
	cr_expect(said != NULL && strstr(said, "Connection refused") != NULL,
		  "A's connect goes out: %s", said);
	free(said);
	json_t *a = wait_audit("denied_connect", ctr_b1, 15000);
	cr_expect_str_eq(str(a, "rule"), "vigil-test-net-b", "%s", json_dumps(a, 0));
	cr_expect_str_eq(str(a, "effect"), "prevent", "%s", json_dumps(a, 0));
	cr_expect_str_eq(str(json_object_get(a, "container"), "image"), image_b, "%s",
			 json_dumps(a, 0));
	json_decref(a);

	/* A container of B started since: placed within the scan's 2 s (and a margin). */
	start_container(ctr_b2, image_b, "nb2");
	wait_ctl_file(ctr_b2, "nb2-up", 30000);
	long long started = h_now_ms();
	for (;;) {
		said = nc_in(ctr_b2, port);
		bool refused = said != NULL && strstr(said, "Operation not permitted") != NULL;

		cr_assert(refused || (said != NULL && strstr(said, "Connection refused") != NULL),
			  "%s", said);
		free(said);
		if (refused)
			break;
		cr_assert_lt(h_now_ms() - started, 4000,
			     "a container of B started after the rule was not placed in 4 s");
		h_sleep_ms(100);
	}
}
