/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The rehearsal of a rule end to end: a real vigil-console with its private
 * PostgreSQL, events and audits written into its database as ingest writes
 * them (the bodies as vigil-defender --events-json prints them), the API
 * over real HTTPS and the vigilctl binary.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "harness.h"

static char dir[H_PATH];
static struct h_pki pki;
static struct h_console con;

static void setup(void)
{
	h_tmpdir(dir);
	h_pki_make(dir, &pki);
	h_console_start(&con, dir, &pki, NULL);
}

static void teardown(void)
{
	if (con.pid > 0)
		h_console_kill(&con, SIGTERM);
	if (!getenv("VIGIL_KEEP_TEST_DIRS"))
		h_rmrf(dir);
}

TestSuite(rehearse_api, .init = setup, .fini = teardown, .timeout = 240);
TestSuite(rehearse_vigilctl, .init = setup, .fini = teardown, .timeout = 240);

/* ---- the database, as the console's ingest leaves it ---- */

static void exec_sql(const char *sql, int n, const char *const *params)
{
	PGconn *db = h_db(&con);
	PGresult *r = PQexecParams(db, sql, n, NULL, params, NULL, NULL, 0);

	cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s: %s", sql, PQerrorMessage(db));
	PQclear(r);
	PQfinish(db);
}

static void host(const char *id, const char *labels)
{
	exec_sql("INSERT INTO hosts (host_id, hostname, labels) VALUES ($1, $1, $2::jsonb)", 2,
		 (const char *const[]){id, labels});
}

/* An event of type on host, ago before now ("1 hour"), body its JSON. */
static void event(const char *host_id, const char *type, const char *ago, int pid, const char *body)
{
	static int seq;
	char s[16], p[16];

	snprintf(s, sizeof(s), "%d", ++seq);
	snprintf(p, sizeof(p), "%d", pid);
	exec_sql("INSERT INTO events (host_id, seq, idx, type, ts, pid, ppid, uid, comm, body)"
		 " VALUES ($1, $2::bigint, 0, $3, now() - $4::interval, $5::integer, 1, 0, 'x',"
		 " $6::json)",
		 6, (const char *const[]){host_id, s, type, ago, p, body});
}

/* An exec of path by a process of service (NULL: interactive, of user alice). */
static void exec_of(const char *host_id, const char *service, const char *path, const char *ago,
		    int pid)
{
	char body[1024];

	if (service != NULL)
		snprintf(body, sizeof(body),
			 "{\"type\":\"exec\",\"pid\":%d,\"comm\":\"x\",\"filename\":\"%s\","
			 "\"argv\":[\"x\"],\"class\":\"service\",\"service\":\"%s\","
			 "\"class_reason\":\"under %s\",\"user\":\"www-data\",\"exe\":\"%s\"}",
			 pid, path, service, service, path);
	else
		snprintf(body, sizeof(body),
			 "{\"type\":\"exec\",\"pid\":%d,\"comm\":\"x\",\"filename\":\"%s\","
			 "\"argv\":[\"x\"],\"tty\":\"pts0\",\"class\":\"interactive\","
			 "\"class_reason\":\"controlling terminal\",\"user\":\"alice\","
			 "\"exe\":\"%s\"}",
			 pid, path, path);
	event(host_id, "exec", ago, pid, body);
}

/*
 * An audit as learning_store writes it: a model's deviation, or an act a
 * rule refused (denied_*), with the effect applied; service NULL: a person's.
 */
static void audit(const char *host_id, const char *service, const char *kind, const char *ago,
		  const char *object, const char *raw, const char *chain_exe, const char *effect)
{
	char detail[1024];

	snprintf(detail, sizeof(detail),
		 "{\"object\":\"%s\",\"raw\":\"%s\",\"expected\":\"\",\"pid\":777,"
		 "\"chain\":[{\"pid\":777,\"comm\":\"x\",\"exe\":\"%s\"},"
		 "{\"pid\":1,\"comm\":\"nginx\",\"exe\":\"/usr/sbin/nginx\"}]}",
		 object, raw, chain_exe);
	exec_sql("INSERT INTO audits (host_id, ts, kind, severity, summary, detail, service, exe,"
		 " effect) VALUES ($1, now() - $2::interval, $3, 'high', 'an audit', $4::jsonb, $5,"
		 " '/usr/sbin/nginx', $6)",
		 6, (const char *const[]){host_id, ago, kind, detail, service, effect});
}

static void deviation(const char *host_id, const char *service, const char *kind, const char *ago,
		      const char *object, const char *raw, const char *chain_exe)
{
	audit(host_id, service, kind, ago, object, raw, chain_exe, "alert");
}

/* web-01 (env=prod) and db-01: execs in and out of the window, of a service and a person. */
static void fleet(void)
{
	host("web-01", "{\"env\":\"prod\"}");
	host("db-01", "{\"env\":\"prod\"}");
	exec_of("web-01", "unit:nginx.service", "/usr/bin/nc.openbsd", "1 hour", 4242);
	exec_of("web-01", "unit:nginx.service", "/usr/sbin/nginx", "50 minutes", 4243);
	exec_of("web-01", NULL, "/usr/bin/nc.openbsd", "2 hours", 5151);
	exec_of("web-01", "unit:nginx.service", "/usr/bin/nc.openbsd", "3 days", 4244);
	exec_of("db-01", "unit:postgresql.service", "/usr/bin/nc.openbsd", "1 hour", 6161);
}

/* ---- the API ---- */

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

static int post(const char *path, const char *body, json_t **ret)
{
	const char *headers[] = {"Idempotency-Key", NULL, NULL};
	char key[48];
	static unsigned n;
	int status;

	snprintf(key, sizeof(key), "rehearse-%lld-%u-%d", h_now_ms(), ++n, (int)getpid());
	headers[1] = key;
	status = h_api_request(&con, &pki, "POST", path, body, headers, con.token, ret);
	cr_assert_geq(status, 0, "POST %s: no answer", path);
	return status;
}

/* POST a rule; its id. */
static long long add_rule(const char *body)
{
	json_t *doc = NULL;
	int status = post("/api/v1/rules", body, &doc);
	long long id;

	cr_assert_eq(status, 201, "add %s: %d %s", body, status, doc ? json_dumps(doc, 0) : "");
	id = jint(json_object_get(doc, "rule"), "id");
	json_decref(doc);
	return id;
}

/* The rehearsal of body, which must answer 200. */
static json_t *rehearse(const char *body)
{
	json_t *doc = NULL;
	int status = post("/api/v1/rules/rehearse", body, &doc);

	cr_assert_eq(status, 200, "rehearse %s: %d %s", body, status,
		     doc ? json_dumps(doc, 0) : "(no JSON)");
	cr_assert(json_is_false(json_object_get(doc, "truncated")), "truncated: %s",
		  json_dumps(json_object_get(doc, "truncated_why"), 0));
	return doc;
}

static long long total(json_t *doc, const char *effect)
{
	return jint(json_object_get(doc, "totals"), effect);
}

/* The group of host, service (NULL: interactive), category, effect and source, or NULL. */
static json_t *group(json_t *doc, const char *h, const char *service, const char *category,
		     const char *effect, const char *source)
{
	json_t *g;
	size_t i;

	json_array_foreach(json_object_get(doc, "groups"), i, g)
	{
		json_t *s = json_object_get(g, "service");

		if (strcmp(jstr(g, "host"), h) == 0 &&
		    (service == NULL ? json_is_null(s)
				     : strcmp(jstr(g, "service"), service) == 0) &&
		    strcmp(jstr(g, "category"), category) == 0 &&
		    strcmp(jstr(g, "effect"), effect) == 0 &&
		    strcmp(jstr(g, "source"), source) == 0)
			return g;
	}
	return NULL;
}

static const char no_nc[] = "{\"name\":\"no-nc\",\"scope\":{\"hosts\":[\"web-*\"]},"
			    "\"processes\":{\"deny\":{\"effect\":\"prevent\","
			    "\"executables\":[\"/usr/bin/nc*\"]}}}";

Test(rehearse_api, a_prevent_rule_reports_the_execs_of_the_window_it_would_have_refused)
{
	char body[1024];
	json_t *doc, *g, *s;

	fleet();
	snprintf(body, sizeof(body), "{\"rule\":%s}", no_nc);
	doc = rehearse(body);
	cr_expect_eq(total(doc, "prevent"), 2, "%s", json_dumps(doc, 0));
	cr_expect_eq(total(doc, "block"), 0);
	cr_expect_eq(total(doc, "alert"), 0);
	cr_expect_eq(jint(doc, "hosts_in_scope"), 1);
	/* web-01's three execs of the last 24 h; not the older one, not db-01's. */
	cr_expect_eq(jint(doc, "events_scanned"), 3);
	cr_expect_eq(jint(json_object_get(doc, "rule"), "position"), 1);
	g = group(doc, "web-01", "unit:nginx.service", "processes", "prevent", "deny");
	cr_assert_not_null(g, "%s", json_dumps(doc, 0));
	cr_expect_eq(jint(g, "count"), 1);
	s = json_array_get(json_object_get(g, "samples"), 0);
	cr_expect_str_eq(jstr(s, "what"), "/usr/bin/nc.openbsd");
	cr_expect_str_eq(jstr(s, "act"), "exec");
	cr_expect_str_eq(jstr(s, "entry"), "/usr/bin/nc*");
	cr_expect_eq(jint(s, "pid"), 4242);
	/* The person's nc too: deny lists apply to interactive sessions. */
	g = group(doc, "web-01", NULL, "processes", "prevent", "deny");
	cr_assert_not_null(g, "%s", json_dumps(doc, 0));
	cr_expect_str_eq(jstr(g, "user"), "alice");
	cr_expect_eq(jint(json_array_get(json_object_get(g, "samples"), 0), "pid"), 5151);
	json_decref(doc);

	/* A week back reaches the 3-day-old exec too; --host narrows to db-01: nothing there. */
	snprintf(body, sizeof(body), "{\"rule\":%s,\"since\":\"7d\"}", no_nc);
	doc = rehearse(body);
	cr_expect_eq(total(doc, "prevent"), 3);
	json_decref(doc);
	snprintf(body, sizeof(body), "{\"rule\":%s,\"hosts\":[\"db-*\"]}", no_nc);
	doc = rehearse(body);
	cr_expect_eq(total(doc, "prevent"), 0);
	cr_expect_eq(jint(doc, "hosts_in_scope"), 0);
	json_decref(doc);
}

Test(rehearse_api, a_rule_outside_the_window_or_the_scope_reports_nothing)
{
	char body[1024];
	json_t *doc;

	fleet();
	/* The window ends before the newest exec and starts after the oldest. */
	snprintf(body, sizeof(body), "{\"rule\":%s,\"since\":\"48h\",\"until\":\"3h\"}", no_nc);
	doc = rehearse(body);
	cr_expect_eq(total(doc, "prevent"), 0, "%s", json_dumps(doc, 0));
	cr_expect_eq(json_array_size(json_object_get(doc, "groups")), 0);
	json_decref(doc);
	/* Hosts that are not there, labels no host has, a service that is not nginx. */
	doc =
	    rehearse("{\"rule\":{\"name\":\"r\",\"scope\":{\"hosts\":[\"mail-*\"]},"
		     "\"processes\":{\"deny\":{\"effect\":\"block\",\"executables\":[\"/**\"]}}}}");
	cr_expect_eq(total(doc, "block"), 0);
	cr_expect_eq(jint(doc, "hosts_in_scope"), 0);
	json_decref(doc);
	doc =
	    rehearse("{\"rule\":{\"name\":\"r\",\"scope\":{\"labels\":[\"env=dev\"]},"
		     "\"processes\":{\"deny\":{\"effect\":\"block\",\"executables\":[\"/**\"]}}}}");
	cr_expect_eq(total(doc, "block"), 0);
	json_decref(doc);
	/* A services list leaves interactive processes out, and nginx is not apache2. */
	doc =
	    rehearse("{\"rule\":{\"name\":\"r\",\"scope\":{\"services\":[\"apache2.service\"]},"
		     "\"processes\":{\"deny\":{\"effect\":\"block\",\"executables\":[\"/**\"]}}}}");
	cr_expect_eq(total(doc, "block"), 0, "%s", json_dumps(doc, 0));
	json_decref(doc);
	/* Same, with nginx: its two execs of the window, nothing of alice's or db-01's. */
	doc =
	    rehearse("{\"rule\":{\"name\":\"r\",\"scope\":{\"services\":[\"nginx.service\"]},"
		     "\"processes\":{\"deny\":{\"effect\":\"block\",\"executables\":[\"/**\"]}}}}");
	cr_expect_eq(total(doc, "block"), 2, "%s", json_dumps(doc, 0));
	json_decref(doc);
}

Test(rehearse_api, an_earlier_rule_that_decides_masks_the_rule)
{
	char body[1024];
	long long first;
	json_t *doc, *m;

	fleet();
	/* Decides processes for web hosts (deviations alerted, nothing denied). */
	first = add_rule("{\"name\":\"web-processes\",\"scope\":{\"hosts\":[\"web-*\"]},"
			 "\"processes\":{\"deviation\":\"alert\"}}");
	add_rule("{\"name\":\"web-files\",\"scope\":{\"hosts\":[\"web-*\"]},"
		 "\"files\":{\"deny\":{\"write\":[\"/etc/**\"]}}}");
	snprintf(body, sizeof(body), "{\"rule\":%s}", no_nc);
	doc = rehearse(body);
	cr_expect_eq(jint(json_object_get(doc, "rule"), "position"), 3);
	cr_expect_eq(total(doc, "prevent"), 0, "%s", json_dumps(doc, 0));
	m = json_array_get(json_object_get(doc, "masked_by"), 0);
	cr_assert_not_null(m, "%s", json_dumps(doc, 0));
	cr_expect_str_eq(jstr(m, "name"), "web-processes");
	cr_expect_eq(jint(m, "rule_id"), first);
	cr_expect_eq(jint(m, "position"), 1);
	cr_expect_eq(jint(m, "count"), 2);
	cr_expect_eq(json_array_size(json_object_get(doc, "masked_by")), 1);
	json_decref(doc);

	/* Put first, it decides. */
	snprintf(body, sizeof(body), "{\"rule\":%.*s,\"position\":1}}", (int)strlen(no_nc) - 1,
		 no_nc);
	doc = rehearse(body);
	cr_expect_eq(total(doc, "prevent"), 2, "%s", json_dumps(doc, 0));
	cr_expect_eq(json_array_size(json_object_get(doc, "masked_by")), 0);
	json_decref(doc);

	/* An edit of the first rule rehearses in its place: it decides. */
	snprintf(body, sizeof(body), "{\"rule_id\":%lld,\"rule\":%s}", first, no_nc);
	doc = rehearse(body);
	cr_expect_eq(total(doc, "prevent"), 2, "%s", json_dumps(doc, 0));
	cr_expect_eq(jint(json_object_get(doc, "rule"), "id"), first);
	cr_expect_eq(jint(json_object_get(doc, "rule"), "position"), 1);
	json_decref(doc);

	/* The stored rule as it is denies nothing. */
	snprintf(body, sizeof(body), "{\"rule_id\":%lld}", first);
	doc = rehearse(body);
	cr_expect_eq(total(doc, "prevent") + total(doc, "block") + total(doc, "alert"), 0);
	cr_expect_str_eq(jstr(json_object_get(doc, "rule"), "name"), "web-processes");
	json_decref(doc);
}

Test(rehearse_api, an_allow_entry_wins_over_the_deny_lists)
{
	json_t *doc, *g;

	fleet();
	event("web-01", "exec", "10 minutes", 4245,
	      "{\"type\":\"exec\",\"filename\":\"/usr/bin/curl\",\"class\":\"service\","
	      "\"service\":\"unit:nginx.service\",\"exe\":\"/usr/bin/curl\"}");
	doc =
	    rehearse("{\"rule\":{\"name\":\"r\",\"scope\":{\"hosts\":[\"web-01\"]},"
		     "\"processes\":{\"deny\":{\"effect\":\"block\",\"executables\":[\"/usr/**\"]},"
		     "\"allow\":{\"executables\":[\"/usr/bin/nc.*\",\"/usr/sbin/nginx\"]}}}}");
	cr_expect_eq(total(doc, "block"), 1, "%s", json_dumps(doc, 0));
	g = group(doc, "web-01", "unit:nginx.service", "processes", "block", "deny");
	cr_assert_not_null(g, "%s", json_dumps(doc, 0));
	cr_expect_str_eq(jstr(json_array_get(json_object_get(g, "samples"), 0), "what"),
			 "/usr/bin/curl");
	json_decref(doc);
}

Test(rehearse_api, files_and_network_acts_are_read_from_their_events)
{
	json_t *doc, *g;

	host("web-01", "{}");
	event("web-01", "file", "5 minutes", 10,
	      "{\"type\":\"file\",\"op\":\"open\",\"path\":\"/etc/cron.d/evil\","
	      "\"flags\":[\"O_WRONLY\",\"O_CREAT\"],\"write\":true,\"class\":\"service\","
	      "\"service\":\"unit:nginx.service\",\"exe\":\"/usr/sbin/nginx\",\"result\":3}");
	/* A read of the same directory: the rule denies writes only. */
	event("web-01", "file", "5 minutes", 11,
	      "{\"type\":\"file\",\"op\":\"open\",\"path\":\"/etc/cron.d/job\","
	      "\"flags\":[\"O_RDONLY\"],\"write\":false,\"class\":\"service\","
	      "\"service\":\"unit:nginx.service\",\"exe\":\"/usr/sbin/nginx\",\"result\":3}");
	/* Rules hold opens: a rename into it is not one. */
	event("web-01", "file", "4 minutes", 12,
	      "{\"type\":\"file\",\"op\":\"rename\",\"path\":\"/tmp/x\","
	      "\"path2\":\"/etc/cron.d/other\",\"class\":\"service\","
	      "\"service\":\"unit:nginx.service\",\"exe\":\"/usr/sbin/nginx\",\"result\":0}");
	/* A write a rule in force refused (EPERM) was tried; one that failed on its own was not. */
	event("web-01", "file", "2 minutes", 19,
	      "{\"type\":\"file\",\"op\":\"open\",\"path\":\"/etc/cron.d/refused\","
	      "\"flags\":[\"O_WRONLY\"],\"write\":true,\"class\":\"service\","
	      "\"service\":\"unit:nginx.service\",\"exe\":\"/usr/sbin/nginx\",\"result\":-1}");
	event("web-01", "file", "2 minutes", 20,
	      "{\"type\":\"file\",\"op\":\"open\",\"path\":\"/etc/cron.d/missing\","
	      "\"flags\":[\"O_WRONLY\"],\"write\":true,\"class\":\"service\","
	      "\"service\":\"unit:nginx.service\",\"exe\":\"/usr/sbin/nginx\",\"result\":-2}");
	event("web-01", "net", "3 minutes", 13,
	      "{\"type\":\"net\",\"op\":\"connect\",\"family\":\"inet\",\"proto\":\"tcp\","
	      "\"local\":{\"addr\":\"10.0.0.5\",\"port\":40000},"
	      "\"remote\":{\"addr\":\"198.51.100.7\",\"port\":3333},\"class\":\"service\","
	      "\"service\":\"unit:nginx.service\",\"exe\":\"/usr/sbin/nginx\",\"result\":-115}");
	event("web-01", "net", "3 minutes", 14,
	      "{\"type\":\"net\",\"op\":\"listen\",\"family\":\"inet6\",\"proto\":\"tcp\","
	      "\"local\":{\"addr\":\"::\",\"port\":22},\"backlog\":128,\"class\":\"service\","
	      "\"service\":\"unit:nginx.service\",\"exe\":\"/usr/sbin/nginx\",\"result\":0}");
	/* A TCP bind is not a listen yet; a UDP one is how UDP serves. */
	event("web-01", "net", "3 minutes", 15,
	      "{\"type\":\"net\",\"op\":\"bind\",\"family\":\"inet\",\"proto\":\"tcp\","
	      "\"local\":{\"addr\":\"0.0.0.0\",\"port\":22},\"class\":\"service\","
	      "\"service\":\"unit:nginx.service\",\"exe\":\"/usr/sbin/nginx\",\"result\":0}");
	event("web-01", "net", "3 minutes", 16,
	      "{\"type\":\"net\",\"op\":\"bind\",\"family\":\"inet\",\"proto\":\"udp\","
	      "\"local\":{\"addr\":\"0.0.0.0\",\"port\":53},\"class\":\"service\","
	      "\"service\":\"unit:nginx.service\",\"exe\":\"/usr/sbin/nginx\",\"result\":0}");
	/* A TCP bind a rule in force refused never got to listen: the bind is the act. */
	event("web-01", "net", "3 minutes", 21,
	      "{\"type\":\"net\",\"op\":\"bind\",\"family\":\"inet\",\"proto\":\"tcp\","
	      "\"local\":{\"addr\":\"0.0.0.0\",\"port\":22},\"class\":\"service\","
	      "\"service\":\"unit:nginx.service\",\"exe\":\"/usr/sbin/nginx\",\"result\":-1}");
	/* A connect that failed on its own (ECONNREFUSED) was no act a rule holds. */
	event("web-01", "net", "3 minutes", 22,
	      "{\"type\":\"net\",\"op\":\"connect\",\"family\":\"inet\",\"proto\":\"tcp\","
	      "\"local\":{\"addr\":\"10.0.0.5\",\"port\":40001},"
	      "\"remote\":{\"addr\":\"198.51.100.7\",\"port\":3333},\"class\":\"service\","
	      "\"service\":\"unit:nginx.service\",\"exe\":\"/usr/sbin/nginx\",\"result\":-111}");
	/* A body that is not what a defender writes changes nothing and stops nothing. */
	event("web-01", "net", "3 minutes", 17, "[1,2,3]");
	event("web-01", "file", "3 minutes", 18,
	      "{\"op\":\"open\",\"write\":{\"x\":1},\"path\":7}");
	doc = rehearse(
	    "{\"rule\":{\"name\":\"r\","
	    "\"files\":{\"deny\":{\"effect\":\"block\",\"write\":[\"/etc/cron.d/*\"]}},"
	    "\"network\":{\"deny\":{\"effect\":\"prevent\","
	    "\"connect\":[\"198.51.100.0/24:3333\"],\"listen\":[\"tcp:22\",\"udp:53\"]}}}}");
	cr_expect_eq(jint(doc, "events_scanned"), 13, "%s", json_dumps(doc, 0));
	g = group(doc, "web-01", "unit:nginx.service", "files", "block", "deny");
	cr_assert_not_null(g, "%s", json_dumps(doc, 0));
	cr_expect_eq(jint(g, "count"), 2);
	/* Newest first: the refused write. */
	cr_expect_str_eq(jstr(json_array_get(json_object_get(g, "samples"), 0), "what"),
			 "/etc/cron.d/refused");
	cr_expect_str_eq(jstr(json_array_get(json_object_get(g, "samples"), 1), "what"),
			 "/etc/cron.d/evil");
	cr_expect_str_eq(jstr(json_array_get(json_object_get(g, "samples"), 0), "entry"),
			 "/etc/cron.d/*");
	g = group(doc, "web-01", "unit:nginx.service", "network", "prevent", "deny");
	cr_assert_not_null(g, "%s", json_dumps(doc, 0));
	cr_expect_eq(jint(g, "count"), 4, "%s", json_dumps(g, 0));
	cr_expect_eq(total(doc, "block"), 2);
	cr_expect_eq(total(doc, "prevent"), 4);
	json_decref(doc);
}

Test(rehearse_api, a_deviation_effect_is_counted_from_the_audits)
{
	json_t *doc, *g, *s;

	host("web-01", "{}");
	deviation("web-01", "unit:nginx.service", "new_program", "1 hour", "/usr/bin/dash",
		  "sh -c id", "/usr/bin/dash");
	deviation("web-01", "unit:nginx.service", "new_peer", "1 hour", "tcp:10.1.2.3:443",
		  "tcp 10.1.2.3 port 443", "/usr/sbin/nginx");
	deviation("web-01", "unit:nginx.service", "new_peer", "1 hour", "tcp:192.0.2.1:25",
		  "tcp 192.0.2.1 port 25", "/usr/sbin/nginx");
	deviation("web-01", "unit:nginx.service", "new_write", "1 hour", "/var/www/x", "/var/www/x",
		  "/usr/sbin/nginx");
	deviation("web-01", "unit:nginx.service", "rewritten_argument", "1 hour", "/x", "/x",
		  "/usr/sbin/nginx");
	deviation("web-01", "unit:cron.service/uid:0", "new_program", "1 hour", "/usr/bin/dash",
		  "sh", "/usr/bin/dash");
	deviation("web-01", "unit:nginx.service", "new_program", "3 days", "/usr/bin/dash", "sh",
		  "/usr/bin/dash");
	doc = rehearse("{\"rule\":{\"name\":\"r\",\"scope\":{\"services\":[\"nginx.service\"]},"
		       "\"processes\":{\"deviation\":\"prevent\"},"
		       "\"network\":{\"deviation\":\"block\","
		       "\"allow\":{\"connect\":[\"10.0.0.0/8:443\"]}}}}");
	cr_expect_eq(total(doc, "prevent"), 1, "%s", json_dumps(doc, 0));
	cr_expect_eq(total(doc, "block"), 1);
	cr_expect_eq(total(doc, "alert"), 0);
	/* Both new_program (nginx's, cron's) and both new_peer; no files section: no new_write. */
	cr_expect_eq(jint(doc, "audits_scanned"), 4, "%s", json_dumps(doc, 0));
	g = group(doc, "web-01", "unit:nginx.service", "processes", "prevent", "deviation");
	cr_assert_not_null(g, "%s", json_dumps(doc, 0));
	s = json_array_get(json_object_get(g, "samples"), 0);
	cr_expect_str_eq(jstr(s, "kind"), "new_program");
	cr_expect_str_eq(jstr(s, "what"), "/usr/bin/dash");
	cr_expect_eq(jint(s, "pid"), 777);
	cr_expect_gt(jint(s, "audit_id"), 0);
	g = group(doc, "web-01", "unit:nginx.service", "network", "block", "deviation");
	cr_assert_not_null(g, "%s", json_dumps(doc, 0));
	cr_expect_str_eq(jstr(json_array_get(json_object_get(g, "samples"), 0), "what"),
			 "tcp 192.0.2.1 port 25");
	json_decref(doc);

	/* disabled: the deviations that would no longer be audited. */
	doc = rehearse("{\"rule\":{\"name\":\"r\",\"files\":{\"deviation\":\"disabled\"}}}");
	cr_expect_eq(total(doc, "disabled"), 1, "%s", json_dumps(doc, 0));
	json_decref(doc);
}

Test(rehearse_api, a_bound_that_cuts_the_scan_short_is_said)
{
	char body[1024];
	json_t *doc = NULL;
	int status;

	fleet();
	snprintf(body, sizeof(body), "{\"rule\":%s,\"max_events\":2}", no_nc);
	status = post("/api/v1/rules/rehearse", body, &doc);
	cr_assert_eq(status, 200);
	cr_expect(json_is_true(json_object_get(doc, "truncated")), "%s", json_dumps(doc, 0));
	cr_expect_eq(jint(doc, "events_scanned"), 2);
	cr_expect(
	    strstr(json_string_value(json_array_get(json_object_get(doc, "truncated_why"), 0)),
		   "events: the window holds more than 2 events") != NULL,
	    "%s", json_dumps(doc, 0));
	json_decref(doc);
}

/* body must be refused 400 naming field, with words of the reason. */
static void refused(const char *body, const char *field, const char *reason)
{
	json_t *doc = NULL;
	int status = post("/api/v1/rules/rehearse", body, &doc);

	cr_expect_eq(status, 400, "%s: %d", body, status);
	cr_assert_not_null(doc, "%s: no JSON", body);
	cr_expect_str_eq(jstr(doc, "field"), field, "%s: %s", body, json_dumps(doc, 0));
	cr_expect(strstr(jstr(doc, "reason"), reason) != NULL, "%s: reason '%s' lacks '%s'", body,
		  jstr(doc, "reason"), reason);
	json_decref(doc);
}

Test(rehearse_api, bad_input_is_refused_naming_the_field)
{
	char body[1024];
	json_t *doc = NULL;

	refused("{\"rule\":{\"name\":\"r\",\"processes\":{\"deny\":{\"effect\":\"kill\"}}}}",
		"rule.processes.deny.effect", "is not an effect");
	refused("{\"rule\":{\"name\":\"r\"}}", "rule", "decides nothing");
	snprintf(body, sizeof(body), "{\"rule\":%s,\"since\":\"yesterday\"}", no_nc);
	refused(body, "since", "RFC 3339");
	snprintf(body, sizeof(body), "{\"rule\":%s,\"since\":\"2026-02-30T00:00:00Z\"}", no_nc);
	refused(body, "since", "RFC 3339");
	snprintf(body, sizeof(body), "{\"rule\":%s,\"until\":\"1h\",\"since\":\"30m\"}", no_nc);
	refused(body, "since", "not before until");
	snprintf(body, sizeof(body), "{\"rule\":%s,\"since\":\"40d\"}", no_nc);
	refused(body, "since", "longer than 31 days");
	snprintf(body, sizeof(body), "{\"rule\":%s,\"until\":7}", no_nc);
	refused(body, "until", "must be a string");
	refused("{\"rule_id\":999}", "rule_id", "no rule with id 999");
	refused("{\"rule_id\":0}", "rule_id", "the id of a stored rule");
	refused("{\"since\":\"24h\"}", "rule", "give the rule");
	snprintf(body, sizeof(body), "{\"rule\":%s,\"hosts\":\"web-*\"}", no_nc);
	refused(body, "hosts", "host globs");
	snprintf(body, sizeof(body), "{\"rule\":%s,\"hosts\":[\"web-*\",\"\"]}", no_nc);
	refused(body, "hosts[1]", "host glob");
	snprintf(body, sizeof(body), "{\"rule\":%s,\"max_events\":0}", no_nc);
	refused(body, "max_events", "from 1 to 1000000");
	snprintf(body, sizeof(body), "{\"rule\":%s,\"frobnicate\":1}", no_nc);
	refused(body, "frobnicate", "unknown field");
	refused("{\"rule\":{\"id\":4,\"name\":\"r\",\"files\":{}}}", "rule.id",
		"give \"rule_id\": 4");
	refused("{\"rule\":{\"name\":\"r\",\"files\":{},\"position\":3}}", "rule.position",
		"past the end");
	refused("not json", "", "not JSON");
	cr_expect_eq(
	    h_api_request(&con, &pki, "GET", "/api/v1/rules/rehearse", NULL, NULL, con.token, &doc),
	    405);
	json_decref(doc);
	doc = NULL;
	cr_expect_eq(h_api_request(&con, &pki, "POST", "/api/v1/rules/rehearse", "{}", NULL,
				   "0000000000000000000000000000000000000000", &doc),
		     401);
	json_decref(doc);
}

/* ---- vigilctl ---- */

/* vigilctl with args after the API options, which must exit with want; its output (caller frees).
 */
static char *vigilctl(int want, const char *const *args)
{
	char out[H_PATH], tokfile[H_PATH], *text;
	char *argv[40];
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
	for (int i = 0; args[i] != NULL && n < 39; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	rc = h_run(out, 60000, argv);
	text = h_slurp(out);
	cr_assert_eq(rc, want, "vigilctl rules %s exited %d, want %d:\n%s", args[1], rc, want,
		     text);
	return text;
}

#define EXPECT_IN(text, what) cr_expect(strstr(text, what) != NULL, "no '%s' in:\n%s", what, text)

Test(rehearse_vigilctl, rehearse_prints_a_table_and_exits_0)
{
	char yaml[H_PATH], bad[H_PATH], *t;
	json_t *doc;
	long long id;

	fleet();
	h_write_file(dir, "no-nc.yaml",
		     "name: no-nc\n"
		     "scope:\n"
		     "  hosts: [\"web-*\"]\n"
		     "processes:\n"
		     "  deny:\n"
		     "    effect: prevent\n"
		     "    executables: [\"/usr/bin/nc*\"]\n",
		     yaml);
	t = vigilctl(0, (const char *const[]){"rules", "rehearse", yaml, "--since", "24h", NULL});
	EXPECT_IN(t, "rehearsal of rule \"no-nc\" at position 1 of rule set version 0");
	EXPECT_IN(t, "HOST");
	EXPECT_IN(t, "unit:nginx.service");
	EXPECT_IN(t, "interactive: alice");
	EXPECT_IN(t, "prevent (deny)");
	EXPECT_IN(t, "pid 4242 exec /usr/bin/nc.openbsd");
	EXPECT_IN(t, "would have: 2 prevented, 0 blocked, 0 alerted");
	EXPECT_IN(t, "read 3 event(s)");
	free(t);
	t = vigilctl(
	    0, (const char *const[]){"rules", "rehearse", yaml, "--json", "--host", "db-*", NULL});
	doc = json_loads(t, 0, NULL);
	cr_assert_not_null(doc, "not JSON:\n%s", t);
	cr_expect_eq(jint(json_object_get(doc, "totals"), "prevent"), 0);
	json_decref(doc);
	free(t);

	/* A stored rule by id, and an edit of it from a file. */
	id = add_rule("{\"name\":\"web-processes\",\"scope\":{\"hosts\":[\"web-*\"]},"
		      "\"processes\":{\"deviation\":\"alert\"}}");
	char idtext[24];
	snprintf(idtext, sizeof(idtext), "%lld", id);
	t = vigilctl(0, (const char *const[]){"rules", "rehearse", "--id", idtext, NULL});
	EXPECT_IN(t, "would have: 0 prevented");
	free(t);
	t = vigilctl(0, (const char *const[]){"rules", "rehearse", "--id", idtext, yaml, NULL});
	EXPECT_IN(t, "would have: 2 prevented");
	free(t);
	t = vigilctl(0, (const char *const[]){"rules", "rehearse", yaml, NULL});
	EXPECT_IN(t, "masked: rule \"web-processes\"");
	free(t);

	/* Refusals: a bad file here (1), the console's (1), usage (2). */
	h_write_file(dir, "bad.yaml", "name: bad\nprocesses:\n  deny:\n    effect: kill\n", bad);
	t = vigilctl(1, (const char *const[]){"rules", "rehearse", bad, NULL});
	EXPECT_IN(t, "processes.deny.effect");
	free(t);
	t = vigilctl(
	    1, (const char *const[]){"rules", "rehearse", yaml, "--since", "yesterday", NULL});
	EXPECT_IN(t, "since");
	free(t);
	t = vigilctl(1, (const char *const[]){"rules", "rehearse", "--id", "999", NULL});
	EXPECT_IN(t, "no rule with id 999");
	free(t);
	free(vigilctl(2, (const char *const[]){"rules", "rehearse", NULL}));
	free(vigilctl(2, (const char *const[]){"rules", "rehearse", yaml, "--frob", NULL}));
	free(vigilctl(2, (const char *const[]){"rules", "rehearse", "--id", "x", NULL}));
	t = vigilctl(0, (const char *const[]){"rules", "rehearse", "--help", NULL});
	EXPECT_IN(t, "rehearse (FILE | --id N [FILE])");
	free(t);
}

Test(rehearse_api, a_disabled_rule_is_rehearsed_as_if_enabled)
{
	char body[1024];
	long long id;
	json_t *doc;

	fleet();
	snprintf(body, sizeof(body), "{\"enabled\":false,%s", no_nc + 1);
	id = add_rule(body);
	snprintf(body, sizeof(body), "{\"rule_id\":%lld}", id);
	doc = rehearse(body);
	cr_expect_eq(total(doc, "prevent"), 2, "%s", json_dumps(doc, 0));
	cr_expect(json_is_true(json_object_get(doc, "rehearsed_as_enabled")));
	cr_expect(json_is_false(json_object_get(json_object_get(doc, "rule"), "enabled")));
	cr_expect_eq(jint(json_object_get(doc, "rule"), "id"), id);
	json_decref(doc);
}

Test(rehearse_api, acts_a_rule_in_force_refused_are_read_from_their_audits)
{
	json_t *doc, *g, *s;

	host("web-01", "{}");
	/* Refused execs and reads left no event: their audits stand for them. */
	audit("web-01", "unit:nginx.service", "denied_program", "1 hour", "/usr/bin/nc.openbsd", "",
	      "/usr/sbin/nginx", "prevent");
	audit("web-01", NULL, "denied_program", "1 hour", "/usr/bin/nc.openbsd", "",
	      "/usr/bin/bash", "block");
	audit("web-01", "unit:nginx.service", "denied_read", "1 hour", "/etc/shadow", "",
	      "/usr/sbin/nginx", "prevent");
	/* A prevented deviation: no event either. */
	audit("web-01", "unit:nginx.service", "new_program", "1 hour", "/usr/bin/nc.traditional",
	      "", "", "prevent");
	/* Alerted: the exec happened, its event counts it (none here). */
	audit("web-01", "unit:nginx.service", "denied_program", "1 hour", "/usr/bin/nc.alerted", "",
	      "/usr/sbin/nginx", "alert");
	doc = rehearse("{\"rule\":{\"name\":\"r\",\"processes\":{\"deny\":{\"effect\":\"prevent\","
		       "\"executables\":[\"/usr/bin/nc*\"]}},"
		       "\"files\":{\"deny\":{\"effect\":\"block\",\"read\":[\"/etc/shadow\"]}}}}");
	cr_expect_eq(total(doc, "prevent"), 3, "%s", json_dumps(doc, 0));
	cr_expect_eq(total(doc, "block"), 1);
	cr_expect_eq(jint(doc, "audits_scanned"), 4, "%s", json_dumps(doc, 0));
	g = group(doc, "web-01", "unit:nginx.service", "processes", "prevent", "deny");
	cr_assert_not_null(g, "%s", json_dumps(doc, 0));
	cr_expect_eq(jint(g, "count"), 2);
	s = json_array_get(json_object_get(g, "samples"), 0);
	cr_expect_str_eq(jstr(s, "act"), "exec");
	cr_expect_str_eq(jstr(s, "entry"), "/usr/bin/nc*");
	cr_expect_gt(jint(s, "audit_id"), 0);
	g = group(doc, "web-01", NULL, "processes", "prevent", "deny");
	cr_assert_not_null(g, "%s", json_dumps(doc, 0));
	g = group(doc, "web-01", "unit:nginx.service", "files", "block", "deny");
	cr_assert_not_null(g, "%s", json_dumps(doc, 0));
	cr_expect_str_eq(jstr(json_array_get(json_object_get(g, "samples"), 0), "what"),
			 "/etc/shadow");
	json_decref(doc);

	/* A rule whose lists do not name them: only the deviation counts, with its effect. */
	doc = rehearse("{\"rule\":{\"name\":\"r\",\"processes\":{\"deviation\":\"block\"}}}");
	cr_expect_eq(total(doc, "block"), 1, "%s", json_dumps(doc, 0));
	cr_expect_eq(total(doc, "prevent"), 0);
	json_decref(doc);
}
