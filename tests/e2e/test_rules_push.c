/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rule sets from the API to the defenders, end to end: a real vigil-console
 * with PostgreSQL (two of them on one database in one test), real
 * vigil-defenders over mutual TLS, the API over HTTPS.  A defender
 * acknowledges a version by reporting it in its heartbeat; /api/v1/hosts
 * shows what each host enforces and whether it lags.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "harness.h"

static char dir[H_PATH];
static struct h_pki pki;
static struct h_console con, con_b;
static pid_t defender_pid;

static void setup(void)
{
	h_tmpdir(dir);
	h_pki_make(dir, &pki);
}

static void teardown(void)
{
	if (defender_pid > 0)
		h_stop(defender_pid, SIGTERM, 5000);
	if (con_b.pid > 0)
		h_console_kill(&con_b, SIGTERM);
	if (con.pid > 0)
		h_console_kill(&con, SIGTERM);
	if (!getenv("VIGIL_KEEP_TEST_DIRS"))
		h_rmrf(dir);
}

TestSuite(rules_push, .init = setup, .fini = teardown, .timeout = 300);

static const char *defender_log(void)
{
	static char log[H_PATH];

	snprintf(log, sizeof(log), "%s/defender.log", dir);
	return log;
}

static const char *state_file(void)
{
	static char path[H_PATH];

	snprintf(path, sizeof(path), "%s/defender-state/rules.json", dir);
	return path;
}

static pid_t start_defender(const struct h_console *c)
{
	char conf[H_PATH];
	char *argv[] = {(char *)h_bin("vigil-defender"), "--config", conf, NULL};

	h_defender_conf(dir, c, pki.ca, pki.host_cert, pki.host_key, NULL, conf);
	return h_spawn(defender_log(), argv);
}

/* method path body on c's API, sent once; the status must be want; returns the body. */
static json_t *api(const struct h_console *c, const char *method, const char *path,
		   const char *body, int want)
{
	json_t *doc = NULL;
	int status = h_api_request(c, &pki, method, path, body, NULL, c->token, &doc);

	cr_assert_eq(status, want, "%s %s: %d, want %d: %s", method, path, status, want,
		     doc != NULL ? json_dumps(doc, 0) : "(no JSON)");
	cr_assert_not_null(doc);
	return doc;
}

/* POST a rule through c; returns the new version, *ret_id the rule's id. */
static long long add_rule(const struct h_console *c, const char *body, long long *ret_id)
{
	json_t *doc = api(c, "POST", "/api/v1/rules", body, 201);
	long long v = json_integer_value(json_object_get(doc, "version"));

	if (ret_id != NULL)
		*ret_id = json_integer_value(json_object_get(json_object_get(doc, "rule"), "id"));
	json_decref(doc);
	return v;
}

static long long delete_rule(const struct h_console *c, long long id)
{
	char path[64];
	json_t *doc;
	long long v;

	snprintf(path, sizeof(path), "/api/v1/rules/%lld", id);
	doc = api(c, "DELETE", path, NULL, 200);
	v = json_integer_value(json_object_get(doc, "version"));
	json_decref(doc);
	return v;
}

/*
 * Wait until c's /api/v1/hosts says host_id enforces version (and so does
 * not lag); returns the host's "rules" object (caller decrefs), NULL after
 * timeout_ms.
 */
static json_t *wait_enforced(const struct h_console *c, const char *host_id, long long version,
			     int timeout_ms)
{
	long long until = h_now_ms() + timeout_ms;

	do {
		json_t *h = h_api_host(c, &pki, host_id);
		json_t *r = json_object_get(h, "rules");

		if (json_integer_value(json_object_get(r, "version")) == version &&
		    json_is_integer(json_object_get(r, "version")) &&
		    !json_is_true(json_object_get(r, "lagging"))) {
			json_incref(r);
			json_decref(h);
			return r;
		}
		json_decref(h);
		h_sleep_ms(20);
	} while (h_now_ms() < until);
	return NULL;
}

/* The host's "rules" object now (caller decrefs). */
static json_t *host_rules(const struct h_console *c, const char *host_id)
{
	json_t *h = h_api_host(c, &pki, host_id), *r;

	cr_assert_not_null(h, "no host %s", host_id);
	r = json_incref(json_object_get(h, "rules"));
	json_decref(h);
	cr_assert(json_is_object(r), "host %s has no rules object", host_id);
	return r;
}

/* The defender's cached file: its version, and its rules' names as "a,b". */
static long long cached(char *names, size_t len)
{
	char *text = h_slurp(state_file());
	json_t *doc = json_loads(text, 0, NULL), *r;
	long long v;
	size_t i, o = 0;

	free(text);
	names[0] = '\0';
	if (doc == NULL)
		return -1;
	v = json_integer_value(json_object_get(doc, "version"));
	json_array_foreach(json_object_get(doc, "rules"), i, r) o +=
	    (size_t)snprintf(names + o, len - o, "%s%s", i ? "," : "",
			     json_string_value(json_object_get(r, "name")));
	json_decref(doc);
	return v;
}

/* A defender for host-a on c, connected and holding version (0: none yet). */
static void defender_up(const struct h_console *c, long long version)
{
	json_t *r;

	defender_pid = start_defender(c);
	r = wait_enforced(c, "host-a", version, 30000);
	cr_assert_not_null(r, "host-a does not enforce version %lld; defender log:\n%s", version,
			   h_slurp(defender_log()));
	json_decref(r);
}

static const char rule_cron[] = "{\"name\":\"cron-ro\",\"scope\":{\"hosts\":[\"host-*\"]},"
				"\"files\":{\"deny\":{\"effect\":\"block\",\"write\":"
				"[\"/etc/cron.d/*\"]}}}";

Test(rules_push, a_rule_added_through_the_api_reaches_a_connected_defender_within_2s)
{
	char names[256];
	long long v, id, t0, ms;
	json_t *r;

	h_console_start(&con, dir, &pki, NULL);
	defender_up(&con, 0);

	t0 = h_now_ms();
	v = add_rule(&con, rule_cron, &id);
	cr_assert_eq(v, 1);
	r = wait_enforced(&con, "host-a", v, 2000);
	ms = h_now_ms() - t0;
	cr_assert_not_null(r,
			   "version %lld not acknowledged within 2 s; console log:\n%s\n"
			   "defender log:\n%s",
			   v, h_slurp(con.log), h_slurp(defender_log()));
	cr_log_info("API write to acknowledgement in /api/v1/hosts: %lld ms", ms);
	cr_expect_eq(json_integer_value(json_object_get(r, "current")), v);
	cr_expect(json_is_null(json_object_get(r, "why")));
	cr_expect(json_is_string(json_object_get(r, "acknowledged_at")));
	cr_expect(json_is_null(json_object_get(r, "refused")));
	json_decref(r);
	cr_expect_eq(cached(names, sizeof(names)), v);
	cr_expect_str_eq(names, "cron-ro");
	cr_expect(strstr(h_slurp(defender_log()), "took rule set version 1 (1 rule(s) for this"
						  " host, of 1)") != NULL,
		  "defender log:\n%s", h_slurp(defender_log()));

	/* Deleting the rule is the next version, with no rules, everywhere. */
	t0 = h_now_ms();
	v = delete_rule(&con, id);
	cr_assert_eq(v, 2);
	r = wait_enforced(&con, "host-a", v, 2000);
	cr_assert_not_null(r, "version %lld (the delete) not acknowledged within 2 s", v);
	cr_log_info("delete to acknowledgement: %lld ms", h_now_ms() - t0);
	json_decref(r);
	cr_expect_eq(cached(names, sizeof(names)), 2);
	cr_expect_str_eq(names, "");

	/* vigilctl hosts shows the version enforced. */
	char log[H_PATH], api_url[160];
	snprintf(log, sizeof(log), "%s/vigilctl.log", dir);
	snprintf(api_url, sizeof(api_url), "%s", con.api);
	char tokfile[H_PATH];
	snprintf(tokfile, sizeof(tokfile), "%s/api-token", con.state);
	char *argv[] = {(char *)h_bin("vigilctl"),
			"--api",
			api_url,
			"--ca",
			pki.ca,
			"--token-file",
			tokfile,
			"hosts",
			NULL};
	cr_assert_eq(h_run(log, 10000, argv), 0, "%s", h_slurp(log));
	char *out = h_slurp(log);
	cr_expect(strstr(out, "RULES") != NULL, "%s", out);
	cr_expect(strstr(out, " 2 ") != NULL, "%s", out);
	free(out);
}

Test(rules_push, a_change_is_pushed_to_a_held_watch_well_before_the_next_heartbeat)
{
	char conf[H_PATH];
	char *argv[] = {(char *)h_bin("vigil-defender"), "--config", conf, NULL};
	long long v, t0, ms;
	json_t *r;

	h_console_start(&con, dir, &pki, NULL);
	/* Heartbeats every 20 s: only the watch can bring the set sooner. */
	h_defender_conf(dir, &con, pki.ca, pki.host_cert, pki.host_key,
			"heartbeat_interval_ms = 20000", conf);
	defender_pid = h_spawn(defender_log(), argv);
	r = wait_enforced(&con, "host-a", 0, 30000);
	cr_assert_not_null(r, "the defender did not connect; log:\n%s", h_slurp(defender_log()));
	json_decref(r);
	h_sleep_ms(500); /* its watch is held now */
	t0 = h_now_ms();
	v = add_rule(&con, rule_cron, NULL);
	r = wait_enforced(&con, "host-a", v, 3000);
	ms = h_now_ms() - t0;
	cr_assert_not_null(r, "version %lld not acknowledged within 3 s with 20 s heartbeats", v);
	json_decref(r);
	cr_log_info("pushed and acknowledged in %lld ms (heartbeats every 20 s)", ms);
	char names[256];
	cr_expect_eq(cached(names, sizeof(names)), v);
}

Test(rules_push, a_host_outside_the_scope_gets_the_version_without_the_rule)
{
	char names[256];
	json_t *r;
	long long v;

	h_console_start(&con, dir, &pki, NULL);
	defender_up(&con, 0);

	/* Not for host-a (its id, then its labels env=test, role=e2e). */
	add_rule(&con, "{\"name\":\"web-only\",\"scope\":{\"hosts\":[\"web-*\"]},\"files\":{}}",
		 NULL);
	v = add_rule(&con,
		     "{\"name\":\"prod-only\",\"scope\":{\"labels\":[\"env=prod\"]},\"files\":{}}",
		     NULL);
	r = wait_enforced(&con, "host-a", v, 3000);
	cr_assert_not_null(r, "version %lld not acknowledged; defender log:\n%s", v,
			   h_slurp(defender_log()));
	json_decref(r);
	cr_expect_eq(cached(names, sizeof(names)), v);
	cr_expect_str_eq(names, "", "rules outside host-a's scope reached it: %s", names);

	/* In scope by label: this one (and only this one) is sent. */
	v = add_rule(&con,
		     "{\"name\":\"test-env\",\"scope\":{\"labels\":[\"env=test\",\"role=e2e\"]},"
		     "\"network\":{\"deny\":{\"connect\":[\"198.51.100.0/24:3333\"]}}}",
		     NULL);
	r = wait_enforced(&con, "host-a", v, 3000);
	cr_assert_not_null(r);
	json_decref(r);
	cr_expect_eq(cached(names, sizeof(names)), v);
	cr_expect_str_eq(names, "test-env");
	cr_expect(strstr(h_slurp(defender_log()), "(1 rule(s) for this host, of 3)") != NULL);
}

Test(rules_push, a_defender_restarted_with_the_console_down_loads_its_cached_set)
{
	char names[256];
	long long v;
	json_t *r;

	h_console_start(&con, dir, &pki, NULL);
	defender_up(&con, 0);
	v = add_rule(&con, rule_cron, NULL);
	r = wait_enforced(&con, "host-a", v, 3000);
	cr_assert_not_null(r);
	json_decref(r);

	h_stop(defender_pid, SIGTERM, 5000);
	defender_pid = 0;
	h_console_kill(&con, SIGTERM);
	unlink(defender_log());

	/* No console: the cached set is in force from the start. */
	defender_pid = start_defender(&con);
	long long until = h_now_ms() + 10000;
	char *log = NULL;
	do {
		free(log);
		h_sleep_ms(100);
		log = h_slurp(defender_log());
	} while (strstr(log, "rules: loaded") == NULL && h_now_ms() < until);
	cr_expect(strstr(log, "rules: loaded the cached rule set version 1 (1 rule(s))") != NULL,
		  "defender log:\n%s", log);
	free(log);
	cr_expect_eq(cached(names, sizeof(names)), v);

	/* The console comes back and hears the version in the hello. */
	h_console_restart(&con, &pki, NULL);
	r = wait_enforced(&con, "host-a", v, 15000);
	cr_assert_not_null(r, "defender log:\n%s", h_slurp(defender_log()));
	json_decref(r);
	until = h_now_ms() + 10000;
	while (strstr(h_slurp(con.log), "rule set 1) registered") == NULL && h_now_ms() < until)
		h_sleep_ms(100);
	cr_expect(strstr(h_slurp(con.log), "rule set 1) registered") != NULL, "console log:\n%s",
		  h_slurp(con.log));
}

Test(rules_push, a_change_through_console_a_reaches_a_defender_connected_to_console_b)
{
	char dir_b[H_PATH], dsn[H_PATH + 64];
	long long v, t0;
	json_t *r;

	h_console_start(&con, dir, &pki, NULL);
	snprintf(dir_b, sizeof(dir_b), "%s/b", dir);
	cr_assert_eq(mkdir(dir_b, 0700), 0);
	snprintf(dsn, sizeof(dsn), "host=%s/postgres/run port=5432 dbname=vigil user=vigil",
		 con.state);
	const char *extra[] = {"--db", dsn, NULL};
	h_console_start(&con_b, dir_b, &pki, extra);
	defender_up(&con_b, 0);

	t0 = h_now_ms();
	v = add_rule(&con, rule_cron, NULL);
	r = wait_enforced(&con, "host-a", v, 2000);
	cr_assert_not_null(r,
			   "a change through console A did not reach the defender on B in"
			   " 2 s; B's log:\n%s",
			   h_slurp(con_b.log));
	cr_log_info("write on console A to acknowledgement through console B: %lld ms",
		    h_now_ms() - t0);
	json_decref(r);
	cr_expect(strstr(h_slurp(con_b.log), "rule set version 1 (1 rule(s)) is current") != NULL,
		  "B's log:\n%s", h_slurp(con_b.log));
}

Test(rules_push, a_corrupted_cached_file_is_refused_at_load_and_the_defender_starts_at_0)
{
	static const char junk[] = "{\"format\":\"vigil-rules/1\",\"version\":9,\"rules\":[{\"na";
	char sd[H_PATH], names[256];
	vigil_err err = {0};
	long long v;
	json_t *r;
	int st;

	h_console_start(&con, dir, &pki, NULL);
	snprintf(sd, sizeof(sd), "%s/defender-state", dir);
	cr_assert_eq(fs_mkdir_p(sd, 0700, &err), 0, "%s", err.msg);
	cr_assert_eq(fs_write_file(state_file(), junk, strlen(junk), 0600, 0, &err), 0);
	defender_up(&con, 0);
	cr_expect_not(h_exited(defender_pid, &st));
	char *log = h_slurp(defender_log());
	cr_expect(strstr(log, "rules: refused the cached rule set") != NULL &&
		      strstr(log, "not JSON") != NULL &&
		      strstr(log, "starting with no rules (version 0)") != NULL,
		  "defender log:\n%s", log);
	free(log);

	/* The next version replaces the bad file. */
	v = add_rule(&con, rule_cron, NULL);
	r = wait_enforced(&con, "host-a", v, 3000);
	cr_assert_not_null(r);
	json_decref(r);
	cr_expect_eq(cached(names, sizeof(names)), v);
}

/* A rule of about 42 KiB: 256 long write globs. */
static char *big_rule(int i)
{
	size_t len = 64 * 1024, o;
	char *b = malloc(len);

	cr_assert_not_null(b);
	o = (size_t)snprintf(b, len, "{\"name\":\"big-%d\",\"files\":{\"deny\":{\"write\":[", i);
	for (int k = 0; k < 256; k++)
		o += (size_t)snprintf(b + o, len - o, "%s\"/srv/%d/%0150d/*\"", k ? "," : "", i, k);
	snprintf(b + o, len - o, "]}}}");
	return b;
}

Test(rules_push, a_set_too_large_for_a_reply_is_refused_to_the_host_with_a_reason)
{
	long long v = 0, until;
	json_t *r = NULL;

	h_console_start(&con, dir, &pki, NULL);
	defender_up(&con, 0);
	/* 30 rules of ~42 KiB: over the 1 MiB a reply may carry. */
	for (int i = 0; i < 30; i++) {
		char *b = big_rule(i);
		v = add_rule(&con, b, NULL);
		free(b);
	}
	until = h_now_ms() + 10000;
	do {
		json_decref(r);
		h_sleep_ms(100);
		r = host_rules(&con, "host-a");
	} while (json_integer_value(json_object_get(json_object_get(r, "refused"), "version")) !=
		     v &&
		 h_now_ms() < until);
	json_t *ref = json_object_get(r, "refused");
	cr_assert(json_is_object(ref), "no refusal shown: %s", json_dumps(r, 0));
	cr_expect_eq(json_integer_value(json_object_get(ref, "version")), v);
	cr_expect_str_eq(json_string_value(json_object_get(ref, "by")), "console");
	cr_expect(strstr(json_string_value(json_object_get(ref, "reason")), "over the") != NULL);
	cr_expect(json_is_true(json_object_get(r, "lagging")));
	cr_expect_str_eq(json_string_value(json_object_get(r, "why")), "refused");
	cr_expect_lt(json_integer_value(json_object_get(r, "version")), v,
		     "a set over the limit must never be sent cut");
	json_decref(r);
	cr_expect(strstr(h_slurp(con.log), "not sent to host host-a") != NULL);
}
