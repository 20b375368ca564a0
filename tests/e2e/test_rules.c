/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rules end to end: a real vigil-console with its private PostgreSQL, its
 * rules API over real HTTPS with the API client vigilctl uses, and the
 * vigilctl binary itself.
 */
#include <criterion/criterion.h>

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

TestSuite(rules_api, .init = setup, .fini = teardown, .timeout = 240);
TestSuite(rules_vigilctl, .init = setup, .fini = teardown, .timeout = 300);

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

/*
 * method path with the console's token, sent once: every answer must
 * arrive.  A write carries a fresh Idempotency-Key, as vigilctl's do;
 * if_match (may be NULL) goes in If-Match.  Returns the status; *ret the body (may be NULL).
 */
static int req_key(const char *method, const char *path, const char *body, const char *if_match,
		   const char *key, json_t **ret)
{
	static unsigned counter;
	const char *headers[5] = {NULL};
	char fresh[48];
	int n = 0, status = -1;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		if (key == NULL) {
			snprintf(fresh, sizeof(fresh), "e2e-%lld-%u-%d", h_now_ms(), ++counter,
				 (int)getpid());
			key = fresh;
		}
		headers[n++] = "Idempotency-Key";
		headers[n++] = key;
	}
	if (if_match != NULL) {
		headers[n++] = "If-Match";
		headers[n++] = if_match;
	}
	status = h_api_request(&con, &pki, method, path, body, headers, con.token, ret);
	cr_assert_geq(status, 0, "%s %s: no answer", method, path);
	return status;
}

static int req(const char *method, const char *path, const char *body, json_t **ret)
{
	return req_key(method, path, body, NULL, NULL, ret);
}

/* The request must answer want; returns the body (caller decrefs). */
static json_t *ok(const char *method, const char *path, const char *body, int want)
{
	json_t *doc = NULL;
	int status = req(method, path, body, &doc);

	cr_assert_eq(status, want, "%s %s %s: %d, want %d: %s", method, path, body ? body : "",
		     status, want, doc != NULL ? json_dumps(doc, 0) : "(no JSON)");
	cr_assert_not_null(doc, "%s %s: no JSON body", method, path);
	return doc;
}

/* POST a rule; returns its id. */
static long long add_rule(const char *body)
{
	json_t *doc = ok("POST", "/api/v1/rules", body, 201);
	long long id = jint(json_object_get(doc, "rule"), "id");

	json_decref(doc);
	return id;
}

/* The names of the rule set in order, "a,b,c"; *ret_version its version. */
static const char *names(long long *ret_version)
{
	static char buf[8192];
	json_t *doc = ok("GET", "/api/v1/rules", NULL, 200), *r;
	size_t i, o = 0;

	buf[0] = '\0';
	json_array_foreach(json_object_get(doc, "rules"), i, r)
	{
		cr_expect_eq(jint(r, "position"), (long long)i + 1);
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s", i ? "," : "",
				      jstr(r, "name"));
	}
	if (ret_version != NULL)
		*ret_version = jint(doc, "version");
	json_decref(doc);
	return buf;
}

/* The request must be refused 400 naming rule (NULL: null), field and words of the reason. */
static void refused(const char *method, const char *path, const char *body, const char *rule,
		    const char *field, const char *reason)
{
	json_t *doc = NULL;
	int status = req(method, path, body, &doc);
	json_t *r = json_object_get(doc, "rule");

	cr_expect_eq(status, 400, "%s %s %s: %d", method, path, body, status);
	cr_assert_not_null(doc, "%s: no JSON", body);
	if (rule == NULL)
		cr_expect(json_is_null(r), "%s: rule is not null", body);
	else
		cr_expect_str_eq(jstr(doc, "rule"), rule, "%s", body);
	cr_expect_str_eq(jstr(doc, "field"), field, "%s: reason %s", body, jstr(doc, "reason"));
	cr_expect(strstr(jstr(doc, "reason"), reason) != NULL, "%s: reason '%s' lacks '%s'", body,
		  jstr(doc, "reason"), reason);
	json_decref(doc);
}

static const char shells_rule[] =
    "{\"name\":\"no-shells\",\"comment\":\"web servers start no shells\","
    "\"scope\":{\"hosts\":[\"web-*\"],\"labels\":[\"env=prod\"]},"
    "\"processes\":{\"deviation\":\"prevent\",\"deny\":{\"effect\":\"block\","
    "\"executables\":[\"any-shell\"]},\"allow\":{\"executables\":[\"/usr/sbin/nginx\"]}}}";
static const char miner_rule[] = "{\"name\":\"miner-pool\",\"network\":{\"deny\":{\"effect\":"
				 "\"prevent\",\"connect\":[\"203.0.113.0/24:3333\","
				 "\"[2001:db8::/32]:443\"]}}}";
static const char cron_rule[] =
    "{\"name\":\"cron-writes\",\"files\":{\"deny\":{\"effect\":"
    "\"block\",\"write\":[\"/etc/cron.d/*\"],\"read\":[\"/etc/shadow\"]}}}";

Test(rules_api, create_edit_move_delete_each_make_a_version)
{
	long long shells, miner, cron, v;
	char path[96], body[1024];
	json_t *doc, *r, *versions;

	cr_expect_str_eq(names(&v), "");
	cr_expect_eq(v, 0);
	doc = ok("POST", "/api/v1/rules", shells_rule, 201);
	r = json_object_get(doc, "rule");
	shells = jint(r, "id");
	cr_expect_eq(jint(doc, "version"), 1);
	cr_expect_eq(jint(r, "position"), 1);
	cr_expect(json_is_false(json_object_get(doc, "replayed")));
	/* Canonical: defaults written out. */
	cr_expect_str_eq(jstr(json_object_get(json_object_get(r, "processes"), "deny"), "effect"),
			 "block");
	cr_expect(json_is_true(json_object_get(r, "enabled")));
	cr_expect_eq(json_array_size(json_object_get(json_object_get(r, "scope"), "services")), 0);
	json_decref(doc);
	snprintf(body, sizeof(body), "%.*s,\"position\":1}", (int)strlen(miner_rule) - 1,
		 miner_rule);
	miner = add_rule(body);
	cron = add_rule(cron_rule);
	cr_expect_str_eq(names(&v), "miner-pool,no-shells,cron-writes");
	cr_expect_eq(v, 3);

	snprintf(path, sizeof(path), "/api/v1/rules/%lld", miner);
	doc = ok("GET", path, NULL, 200);
	cr_expect_eq(jint(doc, "version"), 3);
	r = json_object_get(doc, "rule");
	cr_expect_str_eq(jstr(r, "name"), "miner-pool");
	cr_expect_str_eq(
	    json_string_value(json_array_get(
		json_object_get(json_object_get(json_object_get(r, "network"), "deny"), "connect"),
		1)),
	    "[2001:db8::/32]:443");
	json_decref(doc);

	/* Edit: new comment, moved to the end in the same change. */
	snprintf(path, sizeof(path), "/api/v1/rules/%lld", shells);
	snprintf(body, sizeof(body),
		 "{\"name\":\"no-shells\",\"processes\":{},"
		 "\"comment\":\"edited\",\"position\":3}");
	doc = ok("PUT", path, body, 200);
	cr_expect_eq(jint(doc, "version"), 4);
	cr_expect_str_eq(jstr(json_object_get(doc, "rule"), "comment"), "edited");
	json_decref(doc);
	cr_expect_str_eq(names(NULL), "miner-pool,cron-writes,no-shells");
	/* The same again changes nothing. */
	doc = ok("PUT", path, body, 200);
	cr_expect(json_is_true(json_object_get(doc, "unchanged")));
	cr_expect_eq(jint(doc, "version"), 4);
	json_decref(doc);

	snprintf(path, sizeof(path), "/api/v1/rules/%lld/move", miner);
	doc = ok("POST", path, "{\"position\":3}", 200);
	cr_expect_eq(jint(doc, "version"), 5);
	cr_expect_eq(jint(json_object_get(doc, "rule"), "position"), 3);
	json_decref(doc);
	cr_expect_str_eq(names(NULL), "cron-writes,no-shells,miner-pool");

	snprintf(path, sizeof(path), "/api/v1/rules/%lld", cron);
	doc = ok("DELETE", path, NULL, 200);
	cr_expect_eq(jint(doc, "version"), 6);
	cr_expect_str_eq(jstr(json_object_get(doc, "deleted"), "name"), "cron-writes");
	json_decref(doc);
	doc = ok("GET", path, NULL, 404);
	cr_expect(strstr(jstr(doc, "error"), "no rule with id") != NULL, "%s", jstr(doc, "error"));
	json_decref(doc);
	cr_expect_str_eq(names(&v), "no-shells,miner-pool");
	cr_expect_eq(v, 6);

	/* Every change a version, dense, newest first, with what changed. */
	doc = ok("GET", "/api/v1/rules/versions", NULL, 200);
	cr_expect_eq(jint(doc, "version"), 6);
	versions = json_object_get(doc, "versions");
	cr_assert_eq(json_array_size(versions), 6);
	for (size_t i = 0; i < 6; i++) {
		cr_expect_eq(jint(json_array_get(versions, i), "version"), 6 - (long long)i);
		cr_expect_str_eq(jstr(json_array_get(versions, i), "actor"), "api-token");
	}
	cr_expect_str_eq(jstr(json_array_get(versions, 0), "change"),
			 "deleted rule \"cron-writes\" (was at 1)");
	cr_expect_str_eq(jstr(json_array_get(versions, 1), "change"),
			 "moved rule \"miner-pool\" from 1 to 3");
	cr_expect_str_eq(jstr(json_array_get(versions, 2), "change"),
			 "edited rule \"no-shells\" and moved it from 2 to 3");
	cr_expect_str_eq(jstr(json_array_get(versions, 5), "change"),
			 "added rule \"no-shells\" at 1");
	json_decref(doc);
	doc = ok("GET", "/api/v1/rules/versions?limit=2&before_id=5", NULL, 200);
	versions = json_object_get(doc, "versions");
	cr_assert_eq(json_array_size(versions), 2);
	cr_expect_eq(jint(json_array_get(versions, 0), "version"), 4);
	cr_expect_eq(jint(json_array_get(versions, 1), "version"), 3);
	json_decref(doc);
	doc = ok("GET", "/api/v1/rules/versions/3", NULL, 200);
	cr_expect_eq(json_array_size(json_object_get(doc, "rules")), 3);
	cr_expect_str_eq(jstr(json_array_get(json_object_get(doc, "rules"), 2), "name"),
			 "cron-writes");
	cr_expect_str_eq(jstr(json_object_get(doc, "after"), "name"), "cron-writes");
	cr_expect(json_is_null(json_object_get(doc, "before")));
	json_decref(doc);
	json_decref(ok("GET", "/api/v1/rules/versions/99", NULL, 404));
	json_decref(ok("GET", "/api/v1/rules/versions/0", NULL, 400));
	cr_expect_eq(req("HEAD", "/api/v1/rules", NULL, NULL), 200);
}

/* A rule whose files.deny.write has n entries. */
static char *many_writes(int n)
{
	size_t cap = 64 + (size_t)n * 16, o;
	char *s = malloc(cap);

	o = (size_t)snprintf(s, cap, "{\"name\":\"long\",\"files\":{\"deny\":{\"write\":[");
	for (int i = 0; i < n; i++)
		o += (size_t)snprintf(s + o, cap - o, "%s\"/w%d\"", i ? "," : "", i);
	snprintf(s + o, cap - o, "]}}}");
	return s;
}

Test(rules_api, refusals_name_the_rule_the_field_and_the_reason)
{
	char path[96], *body;
	long long taken, v;
	json_t *doc;

	taken = add_rule("{\"name\":\"taken\",\"files\":{}}");
	refused("POST", "/api/v1/rules",
		"{\"name\":\"no-shells\",\"network\":{\"deny\":{\"connect\":[\"10.0.0.0/8\","
		"\"10.1.0.0/16\",\"10.0.0.0/33\"]}}}",
		"no-shells", "network.deny.connect[2]",
		"'10.0.0.0/33' is not a CIDR: prefix length over 32");
	refused("POST", "/api/v1/rules",
		"{\"name\":\"x\",\"processes\":{\"deny\":{\"effect\":\"kill\"}}}", "x",
		"processes.deny.effect", "'kill' is not an effect: use alert, prevent or block");
	refused("POST", "/api/v1/rules", "{\"name\":\"x\",\"files\":{},\"netwrok\":{}}", "x",
		"netwrok", "unknown field");
	refused("POST", "/api/v1/rules",
		"{\"name\":\"x\",\"files\":{\"deny\":{\"write\":[\"etc/cron.d/*\"]}}}", "x",
		"files.deny.write[0]", "is not an absolute path");
	refused("POST", "/api/v1/rules",
		"{\"name\":\"x\",\"files\":{\"allow\":{\"read\":[\"/etc/[cron\"]}}}", "x",
		"files.allow.read[0]", "unbalanced '['");
	refused("POST", "/api/v1/rules",
		"{\"name\":\"x\",\"network\":{\"deny\":{\"listen\":[22,65536]}}}", "x",
		"network.deny.listen[1]", "out of range: ports are 1 to 65535");
	refused("POST", "/api/v1/rules",
		"{\"name\":\"x\",\"network\":{\"allow\":{\"listen\":[\"9000-8000\"]}}}", "x",
		"network.allow.listen[0]", "inverted range");
	refused("POST", "/api/v1/rules",
		"{\"name\":\"x\",\"files\":{},\"scope\":{\"labels\":[\"env\"]}}", "x",
		"scope.labels[0]", "'env' is not key=value");
	body = many_writes(257);
	refused("POST", "/api/v1/rules", body, "long", "files.deny.write",
		"has 257 entries, more than 256");
	free(body);
	refused("POST", "/api/v1/rules", "{\"name\":\"taken\",\"network\":{}}", "taken", "name",
		"a rule named \"taken\" already exists");
	refused("POST", "/api/v1/rules", "{\"name\":\"x\",\"id\":5,\"files\":{}}", "x", "id",
		"is given by the console");
	refused("POST", "/api/v1/rules", "{\"name\":\"x\",", NULL, "", "not JSON");
	refused("POST", "/api/v1/rules", "{\"name\":\"x\",\"files\":{},\"position\":3}", "x",
		"position", "past the end");

	/* Unknown ids: 404 with a clear message, for every method. */
	doc = ok("GET", "/api/v1/rules/424242", NULL, 404);
	cr_expect_str_eq(jstr(doc, "error"), "no rule with id 424242");
	json_decref(doc);
	json_decref(ok("PUT", "/api/v1/rules/424242", "{\"name\":\"y\",\"files\":{}}", 404));
	json_decref(ok("DELETE", "/api/v1/rules/424242", NULL, 404));
	json_decref(ok("POST", "/api/v1/rules/424242/move", "{\"position\":1}", 404));
	snprintf(path, sizeof(path), "/api/v1/rules/%lld/move", taken);
	refused("POST", path, "{\"position\":2}", NULL, "position", "past the end");
	refused("POST", path, "{\"position\":1,\"where\":2}", NULL, "where", "unknown field");
	json_decref(ok("GET", "/api/v1/rules/abc", NULL, 400));
	json_decref(ok("GET", "/api/v1/rules/1/rename", NULL, 404));
	json_decref(ok("PATCH", "/api/v1/rules/1", NULL, 405));
	json_decref(ok("DELETE", "/api/v1/rules", NULL, 405));
	json_decref(ok("GET", "/api/v1/rules/import", NULL, 405));
	cr_expect_eq(h_api_request(&con, &pki, "POST", "/api/v1/rules", "{}", NULL, NULL, NULL),
		     401);
	cr_expect_eq(h_api_get(&con, &pki, "/api/v1/rules/versions", "0000", NULL), 401);

	/* The rule set moved on: 409 with the version it is at. */
	snprintf(path, sizeof(path), "/api/v1/rules/%lld", taken);
	doc = NULL;
	cr_expect_eq(req_key("DELETE", path, NULL, "\"0\"", NULL, &doc), 409);
	cr_expect_eq(jint(doc, "version"), 1);
	cr_expect(strstr(jstr(doc, "error"), "version 1, not 0") != NULL, "%s", jstr(doc, "error"));
	json_decref(doc);
	json_decref(ok("POST", "/api/v1/rules",
		       "{\"name\":\"y\",\"files\":{},\"expected_version\":0}", 409));
	/*
	 * A body over the API's 64 KiB is refused before it is read, by nng's
	 * HTTP server itself: 400 with nng's HTML page, not the API's JSON, and
	 * the connection closed at once.  A client still sending its body may
	 * see that close (a reset) instead of the answer, as with any server
	 * that stops reading an over-size request; which one it sees depends on
	 * how much of the body the kernel's buffers took.  Either way nothing
	 * is stored and the console answers the next request.
	 */
	body = many_writes(8000);
	cr_assert_gt(strlen(body), 64 * 1024);
	doc = NULL;
	int status =
	    h_api_request(&con, &pki, "POST", "/api/v1/rules", body, NULL, con.token, &doc);
	cr_expect(status == 400 || status < 0, "an over-size body answered %d", status);
	cr_expect_null(doc, "nng's own page is HTML");
	json_decref(doc);
	free(body);

	/* Nothing of it changed anything. */
	cr_expect_str_eq(names(&v), "taken");
	cr_expect_eq(v, 1);
	/* ... and the right version goes through. */
	doc = NULL;
	cr_expect_eq(req_key("DELETE", path, NULL, "\"1\"", NULL, &doc), 200);
	json_decref(doc);
}

Test(rules_api, a_write_sent_again_with_its_key_is_answered_not_repeated)
{
	const char *key = "e2e-repeat-0123456789";
	json_t *a = NULL, *b = NULL;
	long long v;

	cr_assert_eq(req_key("POST", "/api/v1/rules", cron_rule, NULL, key, &a), 201);
	cr_assert_eq(req_key("POST", "/api/v1/rules", cron_rule, NULL, key, &b), 201);
	cr_expect(json_is_false(json_object_get(a, "replayed")));
	cr_expect(json_is_true(json_object_get(b, "replayed")));
	cr_expect_eq(jint(json_object_get(a, "rule"), "id"),
		     jint(json_object_get(b, "rule"), "id"));
	cr_expect_eq(jint(b, "version"), 1);
	json_decref(a);
	json_decref(b);
	cr_expect_str_eq(names(&v), "cron-writes");
	cr_expect_eq(v, 1);
	/* The key of one change cannot be used for another. */
	cr_expect_eq(req_key("DELETE", "/api/v1/rules/1", NULL, NULL, key, NULL), 409);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM rule_versions"), 1);
}

Test(rules_api, every_version_is_notified_to_listeners_on_the_database)
{
	PGconn *db = h_db(&con);
	PGresult *res = PQexec(db, "LISTEN vigil_rules");
	PGnotify *n = NULL;
	long long until;

	cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(db));
	PQclear(res);
	add_rule(shells_rule);
	add_rule(miner_rule);
	for (int want = 1; want <= 2; want++) {
		char payload[16];

		until = h_now_ms() + 5000;
		while ((n = PQnotifies(db)) == NULL && h_now_ms() < until) {
			struct pollfd p = {.fd = PQsocket(db), .events = POLLIN};

			poll(&p, 1, 100);
			cr_assert_eq(PQconsumeInput(db), 1, "%s", PQerrorMessage(db));
		}
		cr_assert_not_null(n, "no notification for version %d", want);
		snprintf(payload, sizeof(payload), "%d", want);
		cr_expect_str_eq(n->relname, "vigil_rules");
		cr_expect_str_eq(n->extra, payload);
		PQfreemem(n);
	}
	PQfinish(db);
}

/* Run vigilctl with args after the API options (api: NULL for the console's). */
static char *vigilctl_api(const char *api, const char *const *args, int *ret_exit)
{
	char out[H_PATH], tokfile[H_PATH];
	char *argv[40];
	int n = 0;

	snprintf(out, sizeof(out), "%s/vigilctl.out", dir);
	snprintf(tokfile, sizeof(tokfile), "%s/api-token", con.state);
	unlink(out);
	argv[n++] = (char *)h_bin("vigilctl");
	argv[n++] = "--api";
	argv[n++] = (char *)(api != NULL ? api : con.api);
	argv[n++] = "--ca";
	argv[n++] = pki.ca;
	argv[n++] = "--token-file";
	argv[n++] = tokfile;
	for (int i = 0; args[i] != NULL && n < 39; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	*ret_exit = h_run(out, 60000, argv);
	return h_slurp(out);
}

/* vigilctl that must exit with want; returns its output (caller frees). */
static char *vigilctl(int want, const char *const *args)
{
	int rc;
	char *text = vigilctl_api(NULL, args, &rc);

	cr_assert_eq(rc, want, "vigilctl rules %s exited %d, want %d:\n%s", args[1], rc, want,
		     text);
	return text;
}

/* Write text to dir/name; the path in out. */
static void file(const char *name, const char *text, char out[H_PATH])
{
	vigil_err err = {0};

	snprintf(out, H_PATH, "%s/%s", dir, name);
	cr_assert_eq(fs_write_file(out, text, strlen(text), 0644, 0, &err), 0, "%s", err.msg);
}

#define EXPECT_IN(text, what) cr_expect(strstr(text, what) != NULL, "no '%s' in:\n%s", what, text)

Test(rules_vigilctl, add_show_edit_move_rm_with_their_exit_codes)
{
	char yaml[H_PATH], json[H_PATH], edited[H_PATH], bad[H_PATH], api[64], *t;
	json_t *doc;

	file("no-shells.yaml",
	     "# processes only\n"
	     "name: no-shells\n"
	     "comment: \"web servers\\nstart no shells\"\n"
	     "scope:\n  hosts: [web-*]\n  labels: [\"env=prod\"]\n"
	     "processes:\n  deviation: prevent\n  deny:\n    effect: block\n"
	     "    executables: [any-shell, /usr/bin/nc*]\n",
	     yaml);
	file("miner.json", miner_rule, json);
	t = vigilctl(0, (const char *const[]){"rules", "add", yaml, NULL});
	EXPECT_IN(t, "added rule \"no-shells\" as id 1 at position 1: rule set version 1");
	free(t);
	t = vigilctl(0, (const char *const[]){"rules", "add", json, "--position", "1", NULL});
	EXPECT_IN(t, "added rule \"miner-pool\" as id 2 at position 1: rule set version 2");
	free(t);
	t = vigilctl(0, (const char *const[]){"rules", "list", NULL});
	EXPECT_IN(t, "POS  ID     NAME");
	EXPECT_IN(t, "1    2      miner-pool               yes -                        "
		     "alert/prevent:2/0");
	EXPECT_IN(t, "2    1      no-shells                yes prevent/block:2/0");
	EXPECT_IN(t, "hosts=web-* labels=env=prod");
	EXPECT_IN(t, "rule set version 2: 2 rule(s)");
	free(t);
	t = vigilctl(0, (const char *const[]){"rules", "list", "--json", NULL});
	doc = json_loads(t, 0, NULL);
	cr_expect_eq(jint(doc, "version"), 2, "%s", t);
	cr_expect_eq(json_array_size(json_object_get(doc, "rules")), 2);
	json_decref(doc);
	free(t);

	/* show: YAML that reads back (it is what edit takes), or JSON. */
	t = vigilctl(0, (const char *const[]){"rules", "show", "1", NULL});
	EXPECT_IN(t, "# rule 1 at position 2 of rule set version 2\n");
	EXPECT_IN(t, "name: no-shells\n");
	EXPECT_IN(t, "comment: \"web servers\\nstart no shells\"\n");
	EXPECT_IN(t, "    - any-shell\n");
	free(t);
	t = vigilctl(0, (const char *const[]){"rules", "show", "1", "--json", NULL});
	doc = json_loads(t, 0, NULL);
	cr_expect_str_eq(jstr(doc, "name"), "no-shells", "%s", t);
	cr_expect_str_eq(jstr(doc, "comment"), "web servers\nstart no shells");
	json_decref(doc);
	/* Its JSON, edited, goes back with edit: the id matches, the place stays. */
	{
		char *e = strstr(t, "web servers\\nstart no shells");

		cr_assert_not_null(e, "%s", t);
		memcpy(e, "WEB", 3);
		file("edited.json", t, edited);
	}
	free(t);
	t = vigilctl(0, (const char *const[]){"rules", "edit", "1", edited, NULL});
	EXPECT_IN(t, "edited rule \"no-shells\" as id 1 at position 2: rule set version 3");
	free(t);
	t = vigilctl(0, (const char *const[]){"rules", "edit", "1", edited, NULL});
	EXPECT_IN(t, "nothing changed (rule set version 3)");
	free(t);
	t = vigilctl(1, (const char *const[]){"rules", "edit", "2", edited, NULL});
	EXPECT_IN(t, "is rule 1, not 2");
	free(t);
	t = vigilctl(0, (const char *const[]){"rules", "move", "1", "1", NULL});
	EXPECT_IN(t, "moved rule \"no-shells\" (id 1) to position 1: rule set version 4");
	free(t);

	/* Refused here, naming the rule and the field, before anything is sent. */
	file("bad.json",
	     "{\"name\":\"no-shells-2\",\"network\":{\"deny\":{\"connect\":[\"10.0.0.0/8\","
	     "\"10.1.0.0/16\",\"10.0.0.0/33\"]}}}",
	     bad);
	t = vigilctl(1, (const char *const[]){"rules", "add", bad, NULL});
	EXPECT_IN(t, "invalid rule \"no-shells-2\", network.deny.connect[2]: '10.0.0.0/33' is not"
		     " a CIDR: prefix length over 32");
	free(t);
	/* Refused by the console. */
	t = vigilctl(1, (const char *const[]){"rules", "add", json, NULL});
	EXPECT_IN(t, "refused (400): invalid rule \"miner-pool\", name: a rule named \"miner-pool\""
		     " already exists (id 2)");
	free(t);
	t = vigilctl(1, (const char *const[]){"rules", "show", "9999", NULL});
	EXPECT_IN(t, "refused (404): no rule with id 9999");
	free(t);
	t = vigilctl(1, (const char *const[]){"rules", "rm", "2", "--if-version", "3", NULL});
	EXPECT_IN(t, "refused (409)");
	EXPECT_IN(t, "(the rule set is at version 4)");
	free(t);
	t = vigilctl(0, (const char *const[]){"rules", "rm", "2", "--if-version", "4", NULL});
	EXPECT_IN(t, "deleted rule \"miner-pool\" (id 2, was at position 2): rule set version 5");
	free(t);

	/* Usage. */
	free(vigilctl(2, (const char *const[]){"rules", NULL}));
	free(vigilctl(2, (const char *const[]){"rules", "add", NULL}));
	free(vigilctl(2, (const char *const[]){"rules", "move", "1", NULL}));
	free(vigilctl(2, (const char *const[]){"rules", "move", "1", "0", NULL}));
	free(vigilctl(2, (const char *const[]){"rules", "show", "x", NULL}));
	free(vigilctl(2, (const char *const[]){"rules", "list", "--yaml", NULL}));
	free(vigilctl(2, (const char *const[]){"rules", "frobnicate", NULL}));
	t = vigilctl(0, (const char *const[]){"rules", "import", "--help", NULL});
	EXPECT_IN(t, "import FILE [--if-version V] [--check]");
	EXPECT_IN(t, "Exit codes: 0 done, 1 refused");
	free(t);

	/* No console there: 3. */
	{
		int rc;

		snprintf(api, sizeof(api), "https://127.0.0.1:%d", h_free_port());
		t = vigilctl_api(api, (const char *const[]){"rules", "list", NULL}, &rc);
		cr_expect_eq(rc, 3, "exit %d:\n%s", rc, t);
		EXPECT_IN(t, "cannot reach the console API");
		free(t);
	}

	t = vigilctl(0, (const char *const[]){"rules", "versions", NULL});
	EXPECT_IN(t, "VERSION  TIME                 ACTOR        RULES  CHANGE");
	EXPECT_IN(t, "api-token    1      deleted rule \"miner-pool\" (was at 2)");
	EXPECT_IN(t, "the rule set is at version 5");
	free(t);
	t = vigilctl(0, (const char *const[]){"rules", "version", "2", NULL});
	EXPECT_IN(t, "by api-token: added rule \"miner-pool\" at 1");
	EXPECT_IN(t, "  1    id 2      miner-pool\n  2    id 1      no-shells\n");
	free(t);
}

/* The "rules" of GET /api/v1/rules without ids (new ones after a delete and import). */
static json_t *rules_without_ids(void)
{
	json_t *doc = ok("GET", "/api/v1/rules", NULL, 200), *rules, *r;
	size_t i;

	rules = json_incref(json_object_get(doc, "rules"));
	json_decref(doc);
	json_array_foreach(rules, i, r) json_object_del(r, "id");
	return rules;
}

/* dir/name's "rules" (a JSON export). */
static json_t *exported_rules(const char *path)
{
	char *text = h_slurp(path);
	json_t *doc = json_loads(text, 0, NULL), *rules;

	cr_assert_not_null(doc, "%s: %s", path, text);
	free(text);
	rules = json_incref(json_object_get(doc, "rules"));
	json_decref(doc);
	return rules;
}

Test(rules_vigilctl, export_then_import_gives_the_same_rule_set)
{
	char set_json[H_PATH], set_yaml[H_PATH], again[H_PATH], empty[H_PATH], big[H_PATH], *t;
	json_t *before, *after, *file_a, *file_b;
	long long v;
	FILE *f;

	add_rule(shells_rule);
	add_rule(miner_rule);
	add_rule(cron_rule);
	/* Text a YAML reader would take for something else, and UTF-8. */
	add_rule("{\"name\":\"true\",\"enabled\":false,\"comment\":\"22\\n\\tnull: ~\","
		 "\"scope\":{\"services\":[\"exe:/usr/sbin/ü*\"],\"images\":[\"nginx:1.25\"]},"
		 "\"network\":{\"deviation\":\"disabled\",\"deny\":{\"listen\":[22,\"udp:53\","
		 "\"8000-8100\"]},\"allow\":{\"connect\":[\"0.0.0.0/0:25-26\",\"::/0\"]}}}");
	before = rules_without_ids();
	snprintf(set_json, sizeof(set_json), "%s/set.json", dir);
	snprintf(set_yaml, sizeof(set_yaml), "%s/set.yaml", dir);
	free(vigilctl(0, (const char *const[]){"rules", "export", set_json, NULL}));
	free(vigilctl(0, (const char *const[]){"rules", "export", set_yaml, NULL}));
	t = vigilctl(0, (const char *const[]){"rules", "export", "--yaml", NULL});
	EXPECT_IN(t, "format: vigil-rules/1\nversion: 4\nrules:\n- name: no-shells\n");
	EXPECT_IN(t, "- name: \"true\"\n  enabled: false\n");
	free(t);

	/* An empty set empties the rule set, in one version. */
	file("empty.json", "{\"rules\": []}", empty);
	t = vigilctl(0, (const char *const[]){"rules", "import", empty, NULL});
	EXPECT_IN(t, "imported 0 rule(s)");
	EXPECT_IN(t, "0 added, 0 changed, 4 removed: rule set version 5");
	free(t);
	cr_expect_str_eq(names(NULL), "");

	t = vigilctl(0, (const char *const[]){"rules", "import", set_json, NULL});
	EXPECT_IN(t, "4 added, 0 changed, 0 removed: rule set version 6");
	free(t);
	after = rules_without_ids();
	cr_expect(json_equal(before, after), "before: %s\nafter: %s", json_dumps(before, 0),
		  json_dumps(after, 0));
	json_decref(after);
	/* The YAML export is the same set: importing it changes nothing. */
	t = vigilctl(0, (const char *const[]){"rules", "import", set_yaml, NULL});
	EXPECT_IN(t, "nothing changed (rule set version 6)");
	free(t);
	snprintf(again, sizeof(again), "%s/again.json", dir);
	free(vigilctl(0, (const char *const[]){"rules", "export", again, NULL}));
	file_a = exported_rules(set_json);
	file_b = exported_rules(again);
	cr_expect(json_equal(file_a, file_b));
	json_decref(file_a);
	json_decref(file_b);
	json_decref(before);

	/* A set larger than one request goes in parts, still one version. */
	snprintf(big, sizeof(big), "%s/big.json", dir);
	f = fopen(big, "w");
	cr_assert_not_null(f);
	fprintf(f, "{\"rules\":[");
	for (int i = 0; i < 400; i++)
		fprintf(f,
			"%s{\"name\":\"r%03d\",\"comment\":\"%0300d\",\"files\":{\"deny\":"
			"{\"write\":[\"/etc/cron.d/f%d\"]}}}",
			i ? "," : "", i, 0, i);
	fprintf(f, "]}");
	fclose(f);
	t = vigilctl(0, (const char *const[]){"rules", "import", big, NULL});
	EXPECT_IN(t, "imported 400 rule(s)");
	EXPECT_IN(t, "400 added, 0 changed, 4 removed: rule set version 7");
	free(t);
	cr_expect_gt(h_db_count(&con, "SELECT parts FROM rule_imports ORDER BY created_at DESC"
				      " LIMIT 1"),
		     1, "the import came in one part");
	names(&v);
	cr_expect_eq(v, 7);
	t = vigilctl(0, (const char *const[]){"rules", "import", big, NULL});
	EXPECT_IN(t, "nothing changed (rule set version 7)");
	free(t);

	/* One bad rule anywhere: nothing imported, the rule named. */
	f = fopen(big, "w");
	cr_assert_not_null(f);
	fprintf(f, "rules:\n");
	for (int i = 0; i < 300; i++)
		fprintf(f, "  - name: s%03d\n    files:\n      deny:\n        write: [\"%s\"]\n", i,
			i == 250 ? "etc/x" : "/etc/x");
	fclose(f);
	snprintf(again, sizeof(again), "%s/big.yaml", dir);
	cr_assert_eq(rename(big, again), 0);
	t = vigilctl(1, (const char *const[]){"rules", "import", again, NULL});
	EXPECT_IN(t, "nothing imported: invalid rule \"s250\", rules[250].files.deny.write[0]:"
		     " 'etc/x' is not an absolute path");
	free(t);
	free(vigilctl(1, (const char *const[]){"rules", "import", again, "--check", NULL}));
	names(&v);
	cr_expect_eq(v, 7);
}
