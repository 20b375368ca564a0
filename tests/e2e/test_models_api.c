/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The learning endpoints end to end: a real vigil-console with its private
 * PostgreSQL, fed over the real link (mutual TLS, protobuf) by a scripted
 * "defender" that speaks the protocol, read back over real HTTPS with the
 * API client vigilctl uses, and through the vigilctl binary itself.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

/* 2024-11-28T13:20:00Z and an hour later. */
#define T0_MS 1732800000000ull
#define T1_MS 1732803600000ull

static char dir[H_PATH];
static struct h_pki pki;
static struct h_console con;
static struct h_link link_a;

static void setup(void)
{
	h_tmpdir(dir);
	h_pki_make(dir, &pki);
	h_console_start(&con, dir, &pki, NULL);
	h_link_open(&link_a, &con, &pki, pki.host_cert, pki.host_key);
}

static void teardown(void)
{
	h_link_close(&link_a);
	if (con.pid > 0)
		h_console_kill(&con, SIGTERM);
	if (!getenv("VIGIL_KEEP_TEST_DIRS"))
		h_rmrf(dir);
}

TestSuite(models_api, .init = setup, .fini = teardown, .timeout = 240);

static const char *jstr(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_string(v) ? json_string_value(v) : "<not a string>";
}

static long long jint(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	cr_assert(json_is_integer(v), "%s is not an integer", k);
	return (long long)json_integer_value(v);
}

/* Send env as host-a; the reply must be OK.  Returns it (free with vigil__reply__free_unpacked). */
static Vigil__Reply *send_ok(Vigil__Envelope *env)
{
	Vigil__Reply *r = h_link_request(&link_a, env);

	cr_assert_eq(r->status, VIGIL__REPLY__STATUS__OK, "reply status %d: %s", r->status,
		     r->error);
	return r;
}

static void hello(void)
{
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Hello h = VIGIL__HELLO__INIT;

	h.hostname = "web-1";
	env.body_case = VIGIL__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	vigil__reply__free_unpacked(send_ok(&env), NULL);
}

/* A heartbeat listing done; returns the reply (its commands). */
static Vigil__Reply *heartbeat(uint64_t *done, size_t ndone)
{
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Heartbeat hb = VIGIL__HEARTBEAT__INIT;
	Vigil__Counter models = VIGIL__COUNTER__INIT, *counters[1] = {&models};

	/* The learner's counters travel with the capture counters. */
	models.name = "learn.models";
	models.value = 2;
	hb.n_counters = 1;
	hb.counters = counters;
	hb.commands_done = done;
	hb.n_commands_done = ndone;
	env.body_case = VIGIL__ENVELOPE__BODY_HEARTBEAT;
	env.heartbeat = &hb;
	return send_ok(&env);
}

/*
 * Batch 1 of host-a: a person's two commands (activity), a service's
 * deviation, the models of two services (nginx active, cron learning).
 */
static void seed(void)
{
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Batch b = VIGIL__BATCH__INIT;
	Vigil__Event ev[2] = {VIGIL__EVENT__INIT, VIGIL__EVENT__INIT};
	Vigil__Event *evp[2] = {&ev[0], &ev[1]};
	Vigil__Activity act[2] = {VIGIL__ACTIVITY__INIT, VIGIL__ACTIVITY__INIT};
	Vigil__Deviation dev = VIGIL__DEVIATION__INIT, *devp = &dev;
	Vigil__ChainLink link = VIGIL__CHAIN_LINK__INIT, *linkp = &link;
	Vigil__ModelEntry me[3] = {VIGIL__MODEL_ENTRY__INIT, VIGIL__MODEL_ENTRY__INIT,
				   VIGIL__MODEL_ENTRY__INIT};
	Vigil__ModelEntry *mep[3] = {&me[0], &me[1], &me[2]};
	Vigil__ModelDelta md[2] = {VIGIL__MODEL_DELTA__INIT, VIGIL__MODEL_DELTA__INIT};
	Vigil__ModelDelta *mdp[2] = {&md[0], &md[1]};
	static const char *const summaries[] = {"id", "cat /etc/shadow (read)"};

	hello();
	for (int i = 0; i < 2; i++) {
		act[i].session = 4242;
		act[i].user = "alice";
		act[i].tty = "pts/1";
		act[i].summary = (char *)summaries[i];
		ev[i].type = i == 0 ? 1 : 4;
		ev[i].ts_ns = (T0_MS + (uint64_t)i * 1000) * 1000000ull;
		ev[i].pid = 5000 + (uint32_t)i;
		ev[i].ppid = 4242;
		ev[i].uid = 1000;
		ev[i].comm = i == 0 ? "id" : "cat";
		ev[i].json = i == 0 ? "{\"type\":\"exec\",\"filename\":\"/usr/bin/id\"}"
				    : "{\"type\":\"file\",\"path\":\"/etc/shadow\"}";
		ev[i].activity = &act[i];
	}
	link.pid = 800;
	link.comm = "nginx";
	link.exe = "/usr/sbin/nginx";
	dev.ts_ns = T1_MS * 1000000ull;
	dev.service = "nginx.service";
	dev.exe = "/usr/sbin/nginx";
	dev.kind = "new_program";
	dev.object = "/bin/sh";
	dev.raw = "/bin/sh";
	dev.expected = "/usr/sbin/nginx";
	dev.severity = "high";
	dev.pid = 801;
	dev.n_chain = 1;
	dev.chain = &linkp;
	const char *pat[3][2] = {{"listen", "tcp:80"},
				 {"write", "/var/log/nginx/*.log"},
				 {"program", "/usr/sbin/nginx"}};
	for (int i = 0; i < 3; i++) {
		me[i].exe = i < 2 ? "/usr/sbin/nginx" : "/usr/sbin/nginx-reload";
		me[i].kind = (char *)pat[i][0];
		me[i].pattern = (char *)pat[i][1];
		me[i].first_seen_ms = T0_MS;
		me[i].last_seen_ms = T1_MS;
		me[i].count = 10 + (uint64_t)i;
	}
	md[0].service = "nginx.service";
	md[0].state = "active";
	md[0].learning_since_ms = T0_MS;
	md[0].active_since_ms = T1_MS;
	md[0].n_entries = 3;
	md[0].entries = mep;
	md[1].service = "cron.service";
	md[1].state = "learning";
	md[1].learning_since_ms = T1_MS;
	md[1].learn_drops = 3;
	md[1].note = "3 events lost while learning: promotion held back";
	b.n_events = 2;
	b.events = evp;
	b.n_deviations = 1;
	b.deviations = &devp;
	b.n_models = 2;
	b.models = mdp;
	env.seq = 1;
	env.body_case = VIGIL__ENVELOPE__BODY_BATCH;
	env.batch = &b;
	vigil__reply__free_unpacked(send_ok(&env), NULL);
}

/* GET path with the console's token; asserts the status, returns the body (caller decrefs). */
static json_t *get(const char *path, int want)
{
	json_t *doc = NULL;
	int status = h_api_get(&con, &pki, path, con.token, &doc);

	cr_assert_eq(status, want, "GET %s: %d, want %d", path, status, want);
	cr_assert_not_null(doc, "GET %s: no JSON body", path);
	return doc;
}

/* GET path must be 400 naming param. */
static void bad_param(const char *path, const char *param)
{
	json_t *doc = get(path, 400);

	cr_expect_str_eq(jstr(doc, "parameter"), param, "GET %s", path);
	cr_expect(strstr(jstr(doc, "error"), param) != NULL, "GET %s: %s", path,
		  jstr(doc, "error"));
	json_decref(doc);
}

/*
 * POST path.  The API client never repeats a POST (nng 1.5's client loses
 * some answers); this test may, since every POST here is either refused or
 * a relearn, which is returned rather than queued twice while pending.
 */
static int post(const char *path, const char *token, json_t **ret)
{
	int status = -1;

	for (int i = 0; i < 3 && status < 0; i++)
		status = h_api_post(&con, &pki, path, token, ret);
	return status;
}

static int post_relearn(long long id, json_t **ret)
{
	char path[64];

	snprintf(path, sizeof(path), "/api/v1/models/%lld/relearn", id);
	return post(path, con.token, ret);
}

Test(models_api, models_list_detail_and_their_errors)
{
	json_t *doc, *models, *m, *sec;
	char path[128];

	seed();
	doc = get("/api/v1/models", 200);
	models = json_object_get(doc, "models");
	cr_assert_eq(json_array_size(models), 2);
	/* Newest id first: cron was the second delta. */
	m = json_array_get(models, 0);
	cr_expect_str_eq(jstr(m, "host"), "host-a");
	cr_expect_str_eq(jstr(m, "service"), "cron.service");
	cr_expect_str_eq(jstr(m, "state"), "learning");
	cr_expect_str_eq(jstr(m, "learning_since"), "2024-11-28T14:20:00.000000Z");
	cr_expect(json_is_null(json_object_get(m, "active_since")));
	cr_expect_eq(jint(m, "learn_drops"), 3);
	cr_expect_str_eq(jstr(m, "note"), "3 events lost while learning: promotion held back");
	cr_expect_eq(jint(m, "entries"), 0);
	cr_expect(json_is_false(json_object_get(m, "relearn_pending")));
	cr_expect_eq(strlen(jstr(m, "updated_at")), 27);
	m = json_array_get(models, 1);
	long long nginx = jint(m, "id");
	cr_expect_str_eq(jstr(m, "service"), "nginx.service");
	cr_expect_str_eq(jstr(m, "active_since"), "2024-11-28T14:20:00.000000Z");
	cr_expect_eq(jint(m, "entries"), 3);
	long long cron = jint(json_array_get(models, 0), "id");
	json_decref(doc);

	/* Filters and paging. */
	doc = get("/api/v1/models?state=active&host=host-a", 200);
	cr_expect_eq(json_array_size(json_object_get(doc, "models")), 1);
	cr_expect_eq(jint(json_array_get(json_object_get(doc, "models"), 0), "id"), nginx);
	json_decref(doc);
	doc = get("/api/v1/models?host=host-b", 200);
	cr_expect_eq(json_array_size(json_object_get(doc, "models")), 0);
	json_decref(doc);
	doc = get("/api/v1/models?service=cron.service&host=", 200);
	cr_expect_eq(json_array_size(json_object_get(doc, "models")), 1);
	json_decref(doc);
	snprintf(path, sizeof(path), "/api/v1/models?limit=1&before_id=%lld", cron);
	doc = get(path, 200);
	cr_expect_eq(json_array_size(json_object_get(doc, "models")), 1);
	cr_expect_eq(jint(json_array_get(json_object_get(doc, "models"), 0), "id"), nginx);
	json_decref(doc);

	/* One model: sections by exe, entries by kind then pattern. */
	snprintf(path, sizeof(path), "/api/v1/models/%lld", nginx);
	doc = get(path, 200);
	cr_expect_str_eq(jstr(doc, "service"), "nginx.service");
	cr_expect_eq(jint(doc, "entries"), 3);
	cr_assert_eq(json_array_size(json_object_get(doc, "sections")), 2);
	sec = json_array_get(json_object_get(doc, "sections"), 0);
	cr_expect_str_eq(jstr(sec, "exe"), "/usr/sbin/nginx");
	cr_assert_eq(json_array_size(json_object_get(sec, "entries")), 2);
	m = json_array_get(json_object_get(sec, "entries"), 0);
	cr_expect_str_eq(jstr(m, "kind"), "listen");
	cr_expect_str_eq(jstr(m, "pattern"), "tcp:80");
	cr_expect_str_eq(jstr(m, "first_seen"), "2024-11-28T13:20:00.000000Z");
	cr_expect_str_eq(jstr(m, "last_seen"), "2024-11-28T14:20:00.000000Z");
	cr_expect_eq(jint(m, "count"), 10);
	cr_expect_str_eq(jstr(json_array_get(json_object_get(sec, "entries"), 1), "kind"), "write");
	sec = json_array_get(json_object_get(doc, "sections"), 1);
	cr_expect_str_eq(jstr(sec, "exe"), "/usr/sbin/nginx-reload");
	json_decref(doc);

	/* What is wrong is named. */
	bad_param("/api/v1/models?limit=0", "limit");
	bad_param("/api/v1/models?limit=ten", "limit");
	bad_param("/api/v1/models?state=sleeping", "state");
	bad_param("/api/v1/models?before_id=-1", "before_id");
	bad_param("/api/v1/models?hots=host-a", "hots");
	bad_param("/api/v1/models?host=a&host=b", "host");
	bad_param("/api/v1/models?host=%00", "host");
	doc = get("/api/v1/models/abc", 400);
	cr_expect(strstr(jstr(doc, "error"), "model id") != NULL);
	json_decref(doc);
	json_decref(get("/api/v1/models/0", 400));
	json_decref(get("/api/v1/models/99999999", 404));
	json_decref(get("/api/v1/models/1/entries", 404));
	cr_expect_eq(h_api_get(&con, &pki, "/api/v1/models", NULL, NULL), 401);
	cr_expect_eq(h_api_get(&con, &pki, "/api/v1/models/1", "0000", NULL), 401);
}

Test(models_api, relearn_queues_a_command_the_defender_gets_and_acknowledges)
{
	json_t *doc = NULL, *m;
	Vigil__Reply *r;
	char path[64];
	long long nginx;

	seed();
	doc = get("/api/v1/models?service=nginx.service", 200);
	nginx = jint(json_array_get(json_object_get(doc, "models"), 0), "id");
	json_decref(doc);

	cr_assert_eq(post_relearn(nginx, &doc), 202);
	long long cmd = jint(doc, "command_id");
	cr_expect_str_eq(jstr(doc, "host"), "host-a");
	cr_expect_str_eq(jstr(doc, "service"), "nginx.service");
	json_decref(doc);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM commands WHERE kind = 'relearn'"
				      " AND host_id = 'host-a' AND service = 'nginx.service'"
				      " AND acked_at IS NULL"),
		     1);
	snprintf(path, sizeof(path), "/api/v1/models/%lld", nginx);
	doc = get(path, 200);
	cr_expect(json_is_true(json_object_get(doc, "relearn_pending")));
	json_decref(doc);
	/* Asked again while pending: the same command, not a second relearn. */
	cr_assert_eq(post_relearn(nginx, &doc), 202);
	cr_expect_eq(jint(doc, "command_id"), cmd);
	cr_expect(json_is_true(json_object_get(doc, "already_pending")));
	json_decref(doc);

	/* The next heartbeat carries it, until the defender says it is done. */
	r = heartbeat(NULL, 0);
	cr_assert_eq(r->n_commands, 1);
	cr_expect_eq(r->commands[0]->id, (uint64_t)cmd);
	cr_expect_str_eq(r->commands[0]->kind, "relearn");
	cr_expect_str_eq(r->commands[0]->service, "nginx.service");
	vigil__reply__free_unpacked(r, NULL);
	uint64_t done = (uint64_t)cmd;
	r = heartbeat(&done, 1);
	cr_expect_eq(r->n_commands, 0);
	vigil__reply__free_unpacked(r, NULL);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM commands WHERE acked_at IS NOT NULL"),
		     1);
	doc = get(path, 200);
	cr_expect(json_is_false(json_object_get(doc, "relearn_pending")));
	json_decref(doc);
	doc = h_api_host(&con, &pki, "host-a");
	cr_expect_eq(json_integer_value(json_object_get(
			 json_object_get(json_object_get(doc, "capture"), "learn"), "models")),
		     2);
	json_decref(doc);

	/* Errors: unknown model, wrong method, no token. */
	m = NULL;
	cr_expect_eq(post_relearn(99999999, &m), 404);
	json_decref(m);
	cr_expect_eq(post(path, con.token, NULL), 405);
	snprintf(path, sizeof(path), "/api/v1/models/%lld/relearn", nginx);
	cr_expect_eq(post(path, NULL, NULL), 401);
	cr_expect_eq(h_api_get(&con, &pki, path, con.token, NULL), 405);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM commands"), 1);
}

Test(models_api, activity_and_audits_by_service)
{
	json_t *doc, *rows, *a;

	seed();
	doc = get("/api/v1/activity", 200);
	rows = json_object_get(doc, "activity");
	cr_assert_eq(json_array_size(rows), 2);
	a = json_array_get(rows, 0); /* newest first */
	cr_expect_str_eq(jstr(a, "host"), "host-a");
	cr_expect_str_eq(jstr(a, "ts"), "2024-11-28T13:20:01.000000Z");
	cr_expect_eq(jint(a, "session"), 4242);
	cr_expect_str_eq(jstr(a, "user"), "alice");
	cr_expect_str_eq(jstr(a, "tty"), "pts/1");
	cr_expect_eq(jint(a, "pid"), 5001);
	cr_expect_str_eq(jstr(a, "type"), "file");
	cr_expect_str_eq(jstr(a, "summary"), "cat /etc/shadow (read)");
	cr_expect_str_eq(jstr(json_object_get(a, "event"), "path"), "/etc/shadow");
	cr_expect_gt(jint(a, "id"), jint(json_array_get(rows, 1), "id"));
	json_decref(doc);

	doc = get("/api/v1/activity?user=alice&session=4242&host=host-a"
		  "&since=2024-11-28T13:20:00.5Z&until=2024-11-28T15:20:00%2B01:00",
		  200);
	cr_expect_eq(json_array_size(json_object_get(doc, "activity")), 1);
	json_decref(doc);
	doc = get("/api/v1/activity?user=bob", 200);
	cr_expect_eq(json_array_size(json_object_get(doc, "activity")), 0);
	json_decref(doc);
	bad_param("/api/v1/activity?session=-1", "session");
	bad_param("/api/v1/activity?since=yesterday", "since");
	bad_param("/api/v1/activity?until=2024-13-01T00:00:00Z", "until");
	cr_expect_eq(h_api_get(&con, &pki, "/api/v1/activity", NULL, NULL), 401);

	doc = get("/api/v1/audits?service=nginx.service", 200);
	rows = json_object_get(doc, "audits");
	cr_assert_eq(json_array_size(rows), 1);
	a = json_array_get(rows, 0);
	cr_expect_str_eq(jstr(a, "kind"), "new_program");
	cr_expect_str_eq(jstr(a, "severity"), "high");
	cr_expect_str_eq(jstr(a, "service"), "nginx.service");
	cr_expect_str_eq(jstr(a, "exe"), "/usr/sbin/nginx");
	cr_expect_str_eq(jstr(a, "ts"), "2024-11-28T14:20:00.000000Z");
	cr_expect_str_eq(jstr(a, "summary"),
			 "nginx.service: /usr/sbin/nginx started /bin/sh, not in its model");
	cr_expect_str_eq(
	    jstr(json_array_get(json_object_get(json_object_get(a, "detail"), "chain"), 0), "comm"),
	    "nginx");
	json_decref(doc);
	doc = get("/api/v1/audits?service=cron.service", 200);
	cr_expect_eq(json_array_size(json_object_get(doc, "audits")), 0);
	json_decref(doc);
	bad_param("/api/v1/audits?limit=1001", "limit");
}

/* Run vigilctl with args after the API options; *ret_exit its exit code, returns its output. */
static char *vigilctl_run(const char *const *args, int *ret_exit)
{
	char out[H_PATH], tokfile[H_PATH];
	char *argv[32];
	int n = 0, rc;

	snprintf(out, sizeof(out), "%s/vigilctl.out", dir);
	snprintf(tokfile, sizeof(tokfile), "%s/api-token", con.state);
	unlink(out);
	argv[n++] = (char *)h_bin("vigilctl");
	argv[n++] = "--api";
	argv[n++] = con.api;
	argv[n++] = "--ca";
	argv[n++] = pki.ca;
	argv[n++] = "--token-file";
	argv[n++] = tokfile;
	for (int i = 0; args[i] != NULL && n < 31; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	rc = h_run(out, 15000, argv);
	*ret_exit = rc;
	return h_slurp(out);
}

/* vigilctl_run that must exit with want_exit; returns the output (caller frees). */
static char *vigilctl(int want_exit, const char *const *args)
{
	int rc;
	char *text = vigilctl_run(args, &rc);

	cr_assert_eq(rc, want_exit, "vigilctl %s exited %d:\n%s", args[0], rc, text);
	return text;
}

Test(models_api, vigilctl_models_model_relearn_and_activity)
{
	char *text, id[24];
	json_t *doc;

	seed();
	doc = get("/api/v1/models?service=nginx.service", 200);
	snprintf(id, sizeof(id), "%lld",
		 jint(json_array_get(json_object_get(doc, "models"), 0), "id"));
	json_decref(doc);

	text = vigilctl(0, (const char *const[]){"models", NULL});
	cr_expect(strstr(text, "ID     HOST                 SERVICE") != NULL, "%s", text);
	cr_expect(strstr(text, "STATE     SINCE                ENTRIES  DROPS") != NULL, "%s",
		  text);
	cr_expect(strstr(text, "nginx.service                    active    "
			       "2024-11-28T14:20:00Z 3        0") != NULL,
		  "%s", text);
	cr_expect(strstr(text, "cron.service                     learning  "
			       "2024-11-28T14:20:00Z 0        3") != NULL,
		  "%s", text);
	cr_expect(strstr(text, "2 model(s)") != NULL, "%s", text);
	free(text);
	text = vigilctl(0, (const char *const[]){"models", "--host", "host-b", NULL});
	cr_expect(strstr(text, "0 model(s)") != NULL, "%s", text);
	free(text);
	text = vigilctl(0, (const char *const[]){"models", "--json", NULL});
	doc = json_loads(text, 0, NULL);
	cr_expect(json_is_array(doc) && json_array_size(doc) == 2, "%s", text);
	json_decref(doc);
	free(text);

	text = vigilctl(0, (const char *const[]){"model", id, NULL});
	cr_expect(strstr(text, "model ") != NULL &&
		      strstr(text, ": nginx.service on host-a") != NULL,
		  "%s", text);
	cr_expect(strstr(text, "state:       active since 2024-11-28T14:20:00Z (learning since "
			       "2024-11-28T13:20:00Z)") != NULL,
		  "%s", text);
	cr_expect(strstr(text, "\n/usr/sbin/nginx\n  listen\n    tcp:80 ") != NULL, "%s", text);
	cr_expect(strstr(text, "count 10       last seen 2024-11-28T14:20:00Z") != NULL, "%s",
		  text);
	cr_expect(strstr(text, "  write\n    /var/log/nginx/*.log") != NULL, "%s", text);
	cr_expect(strstr(text, "\n/usr/sbin/nginx-reload\n  program\n") != NULL, "%s", text);
	free(text);
	text = vigilctl(0, (const char *const[]){"model", id, "--json", NULL});
	doc = json_loads(text, 0, NULL);
	cr_expect_eq(json_array_size(json_object_get(doc, "sections")), 2, "%s", text);
	json_decref(doc);
	free(text);
	free(vigilctl(1, (const char *const[]){"model", "99999999", NULL}));
	free(vigilctl(2, (const char *const[]){"model", "nginx", NULL}));

	/*
	 * vigilctl sends a POST once; when nng's client lost the answer it says
	 * the relearn may have been queued, and asking again is then harmless.
	 */
	int rc;
	text = vigilctl_run((const char *const[]){"relearn", id, NULL}, &rc);
	if (rc == 1 && strstr(text, "may have been queued") != NULL) {
		free(text);
		text = vigilctl(0, (const char *const[]){"relearn", id, NULL});
	}
	cr_expect(strstr(text, "relearn of nginx.service on host-a queued (command ") != NULL ||
		      strstr(text, "already pending") != NULL,
		  "%s", text);
	free(text);
	text = vigilctl(0, (const char *const[]){"models", NULL});
	cr_expect(strstr(text, "active*") != NULL && strstr(text, "* relearn requested") != NULL,
		  "%s", text);
	free(text);

	text = vigilctl(0, (const char *const[]){"activity", "--user", "alice", NULL});
	cr_expect(strstr(text, "ID       TIME                 HOST                 USER") != NULL,
		  "%s", text);
	cr_expect(strstr(text, "2024-11-28T13:20:01Z host-a               alice        4242"
			       "     pts/1    file  cat /etc/shadow (read)") != NULL,
		  "%s", text);
	cr_expect(strstr(text, "2 activity row(s)") != NULL, "%s", text);
	free(text);
	text = vigilctl(0, (const char *const[]){"activity", "--session", "1", "--limit", "5",
						 "--host", "host-a", NULL});
	cr_expect(strstr(text, "0 activity row(s)") != NULL, "%s", text);
	free(text);
	text = vigilctl(1, (const char *const[]){"activity", "--session", "x", NULL});
	cr_expect(strstr(text, "400") != NULL && strstr(text, "session") != NULL, "%s", text);
	free(text);

	text = vigilctl(0, (const char *const[]){"audits", "--service", "nginx.service", NULL});
	cr_expect(strstr(text, "new_program") != NULL && strstr(text, "1 audit(s)") != NULL, "%s",
		  text);
	free(text);
}

Test(models_api, relearn_without_an_answer_says_it_may_have_been_queued)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	char api[64], out[H_PATH], tokfile[H_PATH];
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	long long t0;
	char *text;

	/* A server that takes the connection (the kernel does, from the backlog) and never answers.
	 */
	cr_assert(fd >= 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fd, 8), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	snprintf(api, sizeof(api), "https://127.0.0.1:%d", ntohs(sa.sin_port));
	snprintf(out, sizeof(out), "%s/relearn.out", dir);
	snprintf(tokfile, sizeof(tokfile), "%s/api-token", con.state);
	char *argv[] = {(char *)h_bin("vigilctl"),
			"--api",
			api,
			"--ca",
			pki.ca,
			"--token-file",
			tokfile,
			"relearn",
			"1",
			NULL};
	t0 = h_now_ms();
	/* 3: no answer came (docs/api.md, "vigilctl"). */
	cr_expect_eq(h_run(out, 30000, argv), 3);
	text = h_slurp(out);
	cr_expect(strstr(text, "may have been queued") != NULL, "vigilctl said:\n%s", text);
	/* Sent once: one timeout, not one per retry. */
	cr_expect_lt(h_now_ms() - t0, 20000);
	free(text);
	close(fd);
}

/*
 * Batch seq of host-a: what the rules decided.  A deny list prevented
 * nginx's shell; a person's nc was only alerted (the host could not
 * prevent); a model's deviation with no rule; one with an effect no
 * defender sends, which must be left out by name and cost nothing else.
 */
static void send_rule_deviations(uint64_t seq)
{
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Batch b = VIGIL__BATCH__INIT;
	Vigil__Deviation dev[4] = {VIGIL__DEVIATION__INIT, VIGIL__DEVIATION__INIT,
				   VIGIL__DEVIATION__INIT, VIGIL__DEVIATION__INIT};
	Vigil__Deviation *devp[4] = {&dev[0], &dev[1], &dev[2], &dev[3]};

	for (int i = 0; i < 4; i++) {
		dev[i].ts_ns = (T1_MS + (uint64_t)i) * 1000000ull;
		dev[i].service = "nginx.service";
		dev[i].exe = "/usr/sbin/nginx";
		dev[i].severity = "high";
		dev[i].pid = 801;
	}
	dev[0].kind = "denied_program";
	dev[0].object = "/bin/sh";
	dev[0].rule = "web-no-shells";
	dev[0].effect = "prevent";
	dev[0].why = "/bin/*sh";
	dev[1].kind = "denied_connect";
	dev[1].service = "";
	dev[1].exe = "/usr/bin/nc";
	dev[1].object = "10.0.0.9:4444";
	dev[1].rule = "no-egress";
	dev[1].effect = "alert";
	dev[1].wanted = "prevent";
	dev[1].why = "cgroup-sock: no cgroup v2";
	dev[2].kind = "new_program";
	dev[2].object = "/usr/bin/id";
	dev[3].kind = "denied_program";
	dev[3].object = "/bin/bash";
	dev[3].rule = "web-no-shells";
	dev[3].effect = "kill";
	b.n_deviations = 4;
	b.deviations = devp;
	env.seq = seq;
	env.body_case = VIGIL__ENVELOPE__BODY_BATCH;
	env.batch = &b;
	vigil__reply__free_unpacked(send_ok(&env), NULL);
}

Test(models_api, audits_carry_the_rules_decision_and_filter_by_rule_and_effect)
{
	json_t *doc, *rows, *a;
	char *text;

	hello();
	send_rule_deviations(1);
	doc = get("/api/v1/audits", 200);
	rows = json_object_get(doc, "audits");
	cr_assert_eq(json_array_size(rows), 4, "3 deviations and the malformed_input audit");
	a = json_array_get(rows, 0);
	cr_expect_str_eq(jstr(a, "kind"), "malformed_input");
	cr_expect_str_eq(jstr(a, "summary"), "1 malformed item(s) in batch 1 were left out; first:"
					     " deviation[3].effect is not alert, prevent, block or"
					     " empty");
	cr_expect(json_is_null(json_object_get(a, "effect")), "not a deviation: no effect");
	cr_expect(json_is_null(json_object_get(a, "rule")));
	a = json_array_get(rows, 1);
	cr_expect_str_eq(jstr(a, "kind"), "new_program");
	cr_expect_str_eq(jstr(a, "effect"), "alert");
	cr_expect(json_is_null(json_object_get(a, "rule")));
	cr_expect(json_is_null(json_object_get(a, "wanted")));
	cr_expect(json_is_null(json_object_get(a, "why")));
	a = json_array_get(rows, 2);
	cr_expect_str_eq(jstr(a, "kind"), "denied_connect");
	cr_expect(json_is_null(json_object_get(a, "service")));
	cr_expect_str_eq(jstr(a, "exe"), "/usr/bin/nc");
	cr_expect_str_eq(jstr(a, "rule"), "no-egress");
	cr_expect_str_eq(jstr(a, "effect"), "alert");
	cr_expect_str_eq(jstr(a, "wanted"), "prevent");
	cr_expect_str_eq(jstr(a, "why"), "cgroup-sock: no cgroup v2");
	cr_expect_str_eq(jstr(a, "summary"), "/usr/bin/nc connected to 10.0.0.9:4444, on a deny"
					     " list (rule \"no-egress\", wanted prevent)");
	a = json_array_get(rows, 3);
	cr_expect_str_eq(jstr(a, "kind"), "denied_program");
	cr_expect_str_eq(jstr(a, "service"), "nginx.service");
	cr_expect_str_eq(jstr(a, "rule"), "web-no-shells");
	cr_expect_str_eq(jstr(a, "effect"), "prevent");
	cr_expect(json_is_null(json_object_get(a, "wanted")));
	cr_expect_str_eq(jstr(a, "why"), "/bin/*sh");
	cr_expect_str_eq(jstr(a, "summary"), "nginx.service: /usr/sbin/nginx was prevented from"
					     " starting /bin/sh (rule \"web-no-shells\")");
	json_decref(doc);

	/* The filters, alone and with the others. */
	doc = get("/api/v1/audits?rule=web-no-shells", 200);
	rows = json_object_get(doc, "audits");
	cr_assert_eq(json_array_size(rows), 1);
	cr_expect_str_eq(jstr(json_array_get(rows, 0), "effect"), "prevent");
	json_decref(doc);
	doc = get("/api/v1/audits?effect=alert&host=host-a", 200);
	cr_expect_eq(json_array_size(json_object_get(doc, "audits")), 2);
	json_decref(doc);
	doc = get("/api/v1/audits?effect=prevent&rule=no-egress", 200);
	cr_expect_eq(json_array_size(json_object_get(doc, "audits")), 0);
	json_decref(doc);
	doc = get("/api/v1/audits?effect=block", 200);
	cr_expect_eq(json_array_size(json_object_get(doc, "audits")), 0);
	json_decref(doc);
	doc = get("/api/v1/audits?rule=&effect=", 200);
	cr_expect_eq(json_array_size(json_object_get(doc, "audits")), 4, "empty is absent");
	json_decref(doc);
	bad_param("/api/v1/audits?effect=kill", "effect");
	bad_param("/api/v1/audits?effect=Prevent", "effect");
	bad_param("/api/v1/audits?rule=%20web", "rule");
	bad_param("/api/v1/audits?rule=web&rule=db", "rule");

	/* vigilctl: the columns, the filters, the JSON. */
	text = vigilctl(0, (const char *const[]){"audits", NULL});
	cr_expect(strstr(text, "KIND             SEVERITY EFFECT  RULE             IMAGE           "
			       "         SUMMARY") != NULL,
		  "%s", text);
	cr_expect(strstr(text, "denied_program   high     prevent web-no-shells    -               "
			       "         nginx.service: /usr/sbin/nginx was prevented from starting"
			       " /bin/sh") != NULL,
		  "%s", text);
	cr_expect(strstr(text, "malformed_input  medium   -       -                -               "
			       "         1 malformed") != NULL,
		  "%s", text);
	free(text);
	text = vigilctl(
	    0, (const char *const[]){"audits", "--rule", "no-egress", "--effect", "alert", NULL});
	cr_expect(strstr(text, "denied_connect") != NULL && strstr(text, "1 audit(s)") != NULL,
		  "%s", text);
	free(text);
	text = vigilctl(0, (const char *const[]){"audits", "--effect", "prevent", "--json", NULL});
	doc = json_loads(text, 0, NULL);
	cr_expect(json_is_array(doc) && json_array_size(doc) == 1, "%s", text);
	cr_expect_str_eq(jstr(json_array_get(doc, 0), "why"), "/bin/*sh");
	json_decref(doc);
	free(text);
	text = vigilctl(1, (const char *const[]){"audits", "--effect", "kill", NULL});
	cr_expect(strstr(text, "400") != NULL && strstr(text, "effect") != NULL, "%s", text);
	free(text);
}

/* A hello (rules protocol 1) saying what host-a can enforce and where it falls short. */
static void hello_enforce(const Vigil__RulesState *rs)
{
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Hello h = VIGIL__HELLO__INIT;

	h.hostname = "web-1";
	h.rules = (Vigil__RulesState *)rs;
	env.body_case = VIGIL__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	vigil__reply__free_unpacked(send_ok(&env), NULL);
}

static void heartbeat_enforce(const Vigil__RulesState *rs)
{
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Heartbeat hb = VIGIL__HEARTBEAT__INIT;

	hb.rules = (Vigil__RulesState *)rs;
	env.body_case = VIGIL__ENVELOPE__BODY_HEARTBEAT;
	env.heartbeat = &hb;
	vigil__reply__free_unpacked(send_ok(&env), NULL);
}

/* Occurrences of needle in the console's log. */
static int log_count(const char *needle)
{
	char *text = h_slurp(con.log), *p = text;
	int n = 0;

	while ((p = strstr(p, needle)) != NULL) {
		n++;
		p += strlen(needle);
	}
	free(text);
	return n;
}

Test(models_api, hosts_show_what_each_host_can_enforce_and_refuse_lists_over_the_limits)
{
	static Vigil__EnforceBackend many_b[17], *many_bp[17];
	static Vigil__RuleShortfall many_s[1025], *many_sp[1025];
	Vigil__RulesState rs = VIGIL__RULES_STATE__INIT;
	Vigil__EnforceBackend be[4], *bep[4] = {&be[0], &be[1], &be[2], &be[3]};
	Vigil__RuleShortfall sf = VIGIL__RULE_SHORTFALL__INIT, *sfp = &sf;
	static const char *const names[] = {"fanotify-exec", "fanotify-open", "cgroup-sock",
					    "bpf-signal"};
	json_t *h, *r;
	char *text;

	for (int i = 0; i < 4; i++) {
		vigil__enforce_backend__init(&be[i]);
		be[i].name = (char *)names[i];
		be[i].available = i != 2;
		be[i].detail = i == 2 ? "cgroup v1 only" : "";
	}
	sf.rule = "no-egress";
	sf.section = "network";
	sf.wanted = "prevent";
	sf.applied = "alert";
	sf.why = "cgroup-sock: cgroup v1 only";
	rs.protocol = 1;
	rs.n_backends = 4;
	rs.backends = bep;
	rs.n_shortfalls = 1;
	rs.shortfalls = &sfp;
	hello_enforce(&rs);

	h = h_api_host(&con, &pki, "host-a");
	cr_assert_not_null(h);
	r = json_object_get(h, "rules");
	cr_assert_eq(json_array_size(json_object_get(r, "backends")), 4);
	cr_expect_str_eq(jstr(json_array_get(json_object_get(r, "backends"), 2), "name"),
			 "cgroup-sock");
	cr_expect(json_is_false(
	    json_object_get(json_array_get(json_object_get(r, "backends"), 2), "available")));
	cr_expect_str_eq(jstr(json_array_get(json_object_get(r, "backends"), 2), "detail"),
			 "cgroup v1 only");
	cr_assert_eq(json_array_size(json_object_get(r, "shortfalls")), 1);
	cr_expect_str_eq(jstr(json_array_get(json_object_get(r, "shortfalls"), 0), "why"),
			 "cgroup-sock: cgroup v1 only");
	cr_expect(json_is_null(json_object_get(r, "report_problem")));
	json_decref(h);
	text = vigilctl(0, (const char *const[]){"hosts", NULL});
	cr_expect(strstr(text, "RULES            ENFORCE            LABELS") != NULL, "%s", text);
	cr_expect(strstr(text, " exec,open,kill ") != NULL, "%s", text);
	cr_expect(strstr(text, "host-a: rule \"no-egress\" (network) wants prevent, applies"
			       " alert: cgroup-sock: cgroup v1 only") != NULL,
		  "%s", text);
	free(text);
	text = vigilctl(0, (const char *const[]){"hosts", "--json", NULL});
	json_t *doc = json_loads(text, 0, NULL);
	cr_expect_eq(json_array_size(json_object_get(
			 json_object_get(json_array_get(doc, 0), "rules"), "shortfalls")),
		     1, "%s", text);
	json_decref(doc);
	free(text);

	/* A heartbeat over the limits: that list refused whole, said once in the log and audits. */
	for (int i = 0; i < 17; i++) {
		vigil__enforce_backend__init(&many_b[i]);
		many_b[i].name = "b";
		many_bp[i] = &many_b[i];
	}
	rs.n_backends = 17;
	rs.backends = many_bp;
	heartbeat_enforce(&rs);
	heartbeat_enforce(&rs);
	h = h_api_host(&con, &pki, "host-a");
	r = json_object_get(h, "rules");
	cr_expect(json_is_null(json_object_get(r, "backends")));
	cr_expect_eq(json_array_size(json_object_get(r, "shortfalls")), 1);
	cr_expect_str_eq(jstr(r, "report_problem"), "1 malformed item(s) left out; first: backends"
						    " has 17 entries, more than the 16 accepted");
	json_decref(h);
	cr_expect_eq(log_count("rule-set state of host host-a: 1 malformed item(s) left out"), 1,
		     "%s", h_slurp(con.log));
	text = vigilctl(0, (const char *const[]){"hosts", NULL});
	cr_expect(strstr(text, " ?                  ") != NULL, "%s", text);
	cr_expect(strstr(text,
			 "host-a: the console left out part of what the host can enforce:"
			 " 1 malformed item(s) left out; first: backends has 17 entries") != NULL,
		  "%s", text);
	free(text);

	for (int i = 0; i < 1025; i++) {
		many_s[i] = sf;
		many_sp[i] = &many_s[i];
	}
	rs.n_backends = 4;
	rs.backends = bep;
	rs.n_shortfalls = 1025;
	rs.shortfalls = many_sp;
	heartbeat_enforce(&rs);
	h = h_api_host(&con, &pki, "host-a");
	r = json_object_get(h, "rules");
	cr_expect_eq(json_array_size(json_object_get(r, "backends")), 4);
	cr_expect(json_is_null(json_object_get(r, "shortfalls")));
	cr_expect(strstr(jstr(r, "report_problem"), "shortfalls has 1025 entries") != NULL);
	json_decref(h);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM audits WHERE kind = 'malformed_input'"
				      " AND detail->>'source' = 'rules_state'"),
		     2);

	/* At the limit is fine, and a good report clears the problem. */
	rs.n_shortfalls = 1024;
	heartbeat_enforce(&rs);
	h = h_api_host(&con, &pki, "host-a");
	r = json_object_get(h, "rules");
	cr_expect_eq(json_array_size(json_object_get(r, "shortfalls")), 1024);
	cr_expect(json_is_null(json_object_get(r, "report_problem")));
	json_decref(h);
	text = vigilctl(0, (const char *const[]){"hosts", NULL});
	cr_expect(strstr(text, "host-a: ... and 1019 more shortfall(s) (vigilctl hosts --json)") !=
		      NULL,
		  "%s", text);
	free(text);
}
