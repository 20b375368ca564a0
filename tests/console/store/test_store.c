/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store and pgembed against a real PostgreSQL.
 *
 * initdb runs once per program (PRE_ALL hook, in criterion's runner process)
 * into one state directory, whose name holds a quote, a backslash and a space
 * so every test also exercises the DSN's quoting.  Each test then starts its
 * own server on that data directory (~0.1 s; the server is a child of the
 * test's process, so PR_SET_PDEATHSIG cleans up after a crashed test), empties
 * schema public, and stops the server when done.  A lock file serializes
 * tests that share the cluster, whatever --jobs says.  Copying a template per
 * test was tried: ~1300 files take 1.5 s to copy here.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "fsutil.h"
#include "pg/pgembed.h"
#include "pgfixture.h"
#include "store/host_rules.h"
#include "store/store.h"
#include "storefixture.h"

extern char **environ;

/* Set by the PRE_ALL hook for the test processes (criterion re-executes them). */
#define START_MS 20000

/* One more than store.c accepts. */
#define STORE_TEST_MANY_LABELS 65

static int run_cmd(char *const argv[])
{
	pid_t pid;
	int status;

	if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
		return -1;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void rm_rf(const char *path)
{
	char *const argv[] = {"rm", "-rf", (char *)path, NULL};

	run_cmd(argv);
}

/* A new empty directory under /tmp the postgres user can traverse. */
static void make_tmpdir(char *buf, size_t size)
{
	cr_assert(size > 24);
	snprintf(buf, size, "/tmp/vigil-pgtest-XXXXXX");
	cr_assert_not_null(mkdtemp(buf), "mkdtemp: %s", strerror(errno));
	cr_assert_eq(chmod(buf, 0711), 0);
}

/* A quote and a backslash in the path: quoting must hold all the way to initdb. */
const char pgfix_state_name[] = "it's a \\state dir";

/* A test's scratch directory (besides what fx holds), removed by teardown. */
static char scratch_dir[128];

/* The shared state directory, once this test holds the cluster's lock. */
static const char *shared_state(void)
{
	return pgfix_state(&fx.lock_fd);
}

static PGconn *sql_connect(void)
{
	PGconn *c = PQconnectdb(pgembed_dsn(fx.pg));

	cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
	return c;
}

static void teardown(void)
{
	storefix_teardown();
	if (scratch_dir[0] != '\0')
		rm_rf(scratch_dir);
	scratch_dir[0] = '\0';
}

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static struct store_hello hello_for(const char *host_id)
{
	static const struct store_label labels[] = {{"env", "prod"}, {"team", "blue"}};

	return (struct store_hello){
	    .host_id = host_id,
	    .hostname = "web-1.example.com",
	    .kernel = "6.18.0-vigil",
	    .os = "Debian GNU/Linux 12 (bookworm)",
	    .defender_version = "0.1.0",
	    .bpf_status = "exec_count loaded",
	    .labels = labels,
	    .nlabels = 2,
	};
}

/* The host object with host_id from store_hosts_list (a new reference), or NULL. */
static json_t *list_host(const char *host_id)
{
	vigil_err err = {0};
	json_t *hosts = NULL, *h, *found = NULL;
	size_t i;

	cr_assert_eq(store_hosts_list(fx.st, &hosts, &err), 0, "%s", err.msg);
	cr_assert(json_is_array(hosts));
	json_array_foreach(hosts, i, h)
	{
		if (strcmp(json_string_value(json_object_get(h, "host_id")), host_id) == 0)
			found = json_incref(h);
	}
	json_decref(hosts);
	return found;
}

static const char *jstr(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	cr_assert(json_is_string(v), "%s is not a string", key);
	return json_string_value(v);
}

static size_t host_count(void)
{
	vigil_err err = {0};
	json_t *hosts = NULL;
	size_t n;

	cr_assert_eq(store_hosts_list(fx.st, &hosts, &err), 0, "%s", err.msg);
	n = json_array_size(hosts);
	json_decref(hosts);
	return n;
}

static bool is_rfc3339_utc(const char *s)
{
	regex_t re;
	bool ok;

	cr_assert_eq(regcomp(&re,
			     "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}Z$",
			     REG_EXTENDED | REG_NOSUB),
		     0);
	ok = regexec(&re, s, 0, NULL, 0) == 0;
	regfree(&re);
	return ok;
}

/* Seconds between an RFC 3339 UTC timestamp and now. */
static double age_s(const char *ts)
{
	struct tm tm = {0};

	cr_assert_not_null(strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm), "bad timestamp %s", ts);
	return difftime(time(NULL), timegm(&tm));
}

TestSuite(store, .init = storefix_setup, .fini = teardown, .timeout = 60);

Test(store, hello_inserts_host_with_labels)
{
	struct store_hello h = hello_for("host-a");
	vigil_err err = {0};
	json_t *host, *labels;

	cr_assert_eq(store_host_hello(fx.st, &h, &err), 0, "%s", err.msg);
	host = list_host("host-a");
	cr_assert_not_null(host);
	cr_expect_str_eq(jstr(host, "hostname"), "web-1.example.com");
	cr_expect_str_eq(jstr(host, "kernel"), "6.18.0-vigil");
	cr_expect_str_eq(jstr(host, "os"), "Debian GNU/Linux 12 (bookworm)");
	cr_expect_str_eq(jstr(host, "defender_version"), "0.1.0");
	cr_expect_str_eq(jstr(host, "bpf_status"), "exec_count loaded");
	cr_expect(json_is_true(json_object_get(host, "connected")));
	labels = json_object_get(host, "labels");
	cr_assert(json_is_object(labels));
	cr_expect_eq(json_object_size(labels), 2);
	cr_expect_str_eq(jstr(labels, "env"), "prod");
	cr_expect_str_eq(jstr(labels, "team"), "blue");
	json_decref(host);
}

Test(store, second_hello_updates_fields_keeps_first_seen)
{
	static const struct store_label labels2[] = {{"env", "staging"}};
	struct store_hello h = hello_for("host-a");
	vigil_err err = {0};
	json_t *before, *after;

	cr_assert_eq(store_host_hello(fx.st, &h, &err), 0, "%s", err.msg);
	before = list_host("host-a");
	sleep_ms(20);
	h.hostname = "web-1-renamed";
	h.kernel = "6.19.0";
	h.os = "";
	h.defender_version = "0.2.0";
	h.bpf_status = "exec_count failed: EPERM";
	h.labels = labels2;
	h.nlabels = 1;
	cr_assert_eq(store_host_hello(fx.st, &h, &err), 0, "%s", err.msg);
	after = list_host("host-a");
	cr_assert_eq(host_count(), 1);
	cr_expect_str_eq(jstr(after, "hostname"), "web-1-renamed");
	cr_expect_str_eq(jstr(after, "kernel"), "6.19.0");
	cr_expect_str_eq(jstr(after, "os"), "");
	cr_expect_str_eq(jstr(after, "defender_version"), "0.2.0");
	cr_expect_str_eq(jstr(after, "bpf_status"), "exec_count failed: EPERM");
	cr_expect_eq(json_object_size(json_object_get(after, "labels")), 1);
	cr_expect_str_eq(jstr(json_object_get(after, "labels"), "env"), "staging");
	cr_expect_str_eq(jstr(after, "first_seen"), jstr(before, "first_seen"));
	cr_expect(strcmp(jstr(after, "last_seen"), jstr(before, "last_seen")) > 0,
		  "last_seen %s did not move past %s", jstr(after, "last_seen"),
		  jstr(before, "last_seen"));
	json_decref(before);
	json_decref(after);
}

Test(store, heartbeat_from_unknown_host_is_enoent)
{
	struct store_heartbeat hb = {.exec_count = 7};
	vigil_err err = {0};

	cr_assert_eq(store_host_heartbeat(fx.st, "never-said-hello", &hb, &err), -ENOENT);
	cr_expect_not_null(strstr(err.msg, "never-said-hello"), "%s", err.msg);
	cr_expect_eq(host_count(), 0);
}

Test(store, heartbeat_updates_last_seen_and_exec_count)
{
	struct store_hello h = hello_for("host-a");
	struct store_heartbeat hb = {.exec_count = 12345};
	vigil_err err = {0};
	json_t *before, *after;

	cr_assert_eq(store_host_hello(fx.st, &h, &err), 0, "%s", err.msg);
	before = list_host("host-a");
	cr_expect_eq(json_integer_value(json_object_get(before, "exec_count")), 0);
	sleep_ms(20);
	cr_assert_eq(store_host_heartbeat(fx.st, "host-a", &hb, &err), 0, "%s", err.msg);
	after = list_host("host-a");
	cr_expect_eq(json_integer_value(json_object_get(after, "exec_count")), 12345);
	cr_expect(strcmp(jstr(after, "last_seen"), jstr(before, "last_seen")) > 0);
	cr_expect_str_eq(jstr(after, "first_seen"), jstr(before, "first_seen"));
	json_decref(before);
	json_decref(after);

	/* The whole bigint range round-trips; beyond it is refused, not wrapped. */
	hb.exec_count = INT64_MAX;
	cr_assert_eq(store_host_heartbeat(fx.st, "host-a", &hb, &err), 0, "%s", err.msg);
	after = list_host("host-a");
	cr_expect_eq(json_integer_value(json_object_get(after, "exec_count")), INT64_MAX);
	json_decref(after);
	hb.exec_count = (uint64_t)INT64_MAX + 1;
	cr_expect_eq(store_host_heartbeat(fx.st, "host-a", &hb, &err), -EINVAL);
}

Test(store, mark_stale_disconnects_and_heartbeat_reconnects)
{
	struct store_hello h = hello_for("host-a");
	struct store_heartbeat hb = {.exec_count = 1};
	vigil_err err = {0};
	json_t *host;
	int n = -1;

	cr_assert_eq(store_host_hello(fx.st, &h, &err), 0, "%s", err.msg);
	host = list_host("host-a");
	cr_expect(json_is_null(json_object_get(host, "disconnected_at")));
	json_decref(host);
	sleep_ms(20);
	cr_assert_eq(store_hosts_mark_stale(fx.st, 1, &n, &err), 0, "%s", err.msg);
	cr_expect_eq(n, 1);
	host = list_host("host-a");
	cr_expect(json_is_false(json_object_get(host, "connected")));
	cr_expect(is_rfc3339_utc(jstr(host, "disconnected_at")));
	json_decref(host);

	/* Already disconnected hosts are not counted again. */
	cr_assert_eq(store_hosts_mark_stale(fx.st, 1, &n, &err), 0, "%s", err.msg);
	cr_expect_eq(n, 0);

	cr_assert_eq(store_host_heartbeat(fx.st, "host-a", &hb, &err), 0, "%s", err.msg);
	host = list_host("host-a");
	cr_expect(json_is_true(json_object_get(host, "connected")));
	cr_expect(json_is_null(json_object_get(host, "disconnected_at")));
	json_decref(host);
}

Test(store, mark_stale_timeout_is_in_milliseconds)
{
	struct store_hello h = hello_for("host-a");
	const char *params[1] = {"host-a"};
	vigil_err err = {0};
	int n = -1;

	cr_assert_eq(store_host_hello(fx.st, &h, &err), 0, "%s", err.msg);
	PQclear(storefix_exec("UPDATE hosts SET last_seen = now() - interval '30 seconds'"
			      " WHERE host_id = $1",
			      1, params));
	cr_assert_eq(store_hosts_mark_stale(fx.st, 60000, &n, &err), 0, "%s", err.msg);
	cr_expect_eq(n, 0, "a host seen 30 s ago is not stale after 60000 ms");
	cr_assert_eq(store_hosts_mark_stale(fx.st, 10000, &n, &err), 0, "%s", err.msg);
	cr_expect_eq(n, 1, "a host seen 30 s ago is stale after 10000 ms");
	cr_expect_eq(store_hosts_mark_stale(fx.st, -1, NULL, &err), -EINVAL);
}

Test(store, hosts_list_has_every_field_with_the_right_value)
{
	static const char *const keys[] = {
	    "host_id",	  "hostname",	     "kernel",	   "os",	 "defender_version",
	    "bpf_status", "labels",	     "exec_count", "first_seen", "last_seen",
	    "connected",  "disconnected_at", "capture",	   "rules",
	};
	struct store_hello h = hello_for("host-b");
	struct store_heartbeat hb = {.exec_count = 42,
				     .capture_json = "{\"drops\":{\"ringbuf_full\":3}}"};
	vigil_err err = {0};
	json_t *hosts = NULL, *a, *b;

	cr_assert_eq(store_host_hello(fx.st, &h, &err), 0, "%s", err.msg);
	h = hello_for("host-a");
	h.hostname = "db-1";
	h.nlabels = 0;
	cr_assert_eq(store_host_hello(fx.st, &h, &err), 0, "%s", err.msg);
	cr_assert_eq(store_host_heartbeat(fx.st, "host-b", &hb, &err), 0, "%s", err.msg);

	cr_assert_eq(store_hosts_list(fx.st, &hosts, &err), 0, "%s", err.msg);
	cr_assert_eq(json_array_size(hosts), 2);
	a = json_array_get(hosts, 0);
	b = json_array_get(hosts, 1);
	/* Ordered by host_id. */
	cr_expect_str_eq(jstr(a, "host_id"), "host-a");
	cr_expect_str_eq(jstr(b, "host_id"), "host-b");
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		cr_expect_not_null(json_object_get(b, keys[i]), "missing %s", keys[i]);
	cr_expect_eq(json_object_size(b), sizeof(keys) / sizeof(keys[0]));

	cr_expect_eq(json_integer_value(json_object_get(
			 json_object_get(json_object_get(b, "capture"), "drops"), "ringbuf_full")),
		     3, "capture counters from the heartbeat not stored");
	cr_expect_eq(json_object_size(json_object_get(a, "capture")), 0);
	cr_expect_str_eq(jstr(a, "hostname"), "db-1");
	cr_expect(json_is_object(json_object_get(a, "labels")));
	cr_expect_eq(json_object_size(json_object_get(a, "labels")), 0);
	cr_expect_eq(json_integer_value(json_object_get(a, "exec_count")), 0);
	cr_expect_eq(json_integer_value(json_object_get(b, "exec_count")), 42);
	cr_expect(json_is_integer(json_object_get(b, "exec_count")));
	cr_expect(json_is_true(json_object_get(b, "connected")));
	cr_expect(json_is_null(json_object_get(b, "disconnected_at")));
	cr_expect_str_eq(jstr(json_object_get(b, "labels"), "team"), "blue");
	cr_expect(is_rfc3339_utc(jstr(b, "first_seen")), "%s", jstr(b, "first_seen"));
	cr_expect(is_rfc3339_utc(jstr(b, "last_seen")), "%s", jstr(b, "last_seen"));
	/* UTC, not the server's or the test's local time. */
	cr_expect(age_s(jstr(b, "first_seen")) > -5 && age_s(jstr(b, "first_seen")) < 60,
		  "first_seen %s is not now in UTC", jstr(b, "first_seen"));
	json_decref(hosts);
}

Test(store, hostile_input_is_stored_verbatim_or_refused)
{
	static const char evil_key[] = "k\"'); DELETE FROM hosts; --\\";
	static const char evil_value[] = "\"\\'$1;\u00fcn\u00ef \u2014 \U0001F6E1\t\x01";
	static const char evil_id[] = "x'); DROP TABLE hosts; --";
	struct store_label labels[] = {{evil_key, evil_value}, {"ok", "fine"}};
	struct store_label bad_labels[] = {{"ok", "fine"}, {"k", "\xc3\x28"}};
	struct store_label many[STORE_TEST_MANY_LABELS];
	struct store_hello h = hello_for(evil_id);
	char big[10 * 1024 + 1], max[258];
	vigil_err err = {0};
	json_t *host;

	h.labels = labels;
	h.nlabels = 2;
	cr_assert_eq(store_host_hello(fx.st, &h, &err), 0, "%s", err.msg);
	host = list_host(evil_id);
	cr_assert_not_null(host);
	cr_expect_str_eq(jstr(json_object_get(host, "labels"), evil_key), evil_value);
	cr_expect_str_eq(jstr(json_object_get(host, "labels"), "ok"), "fine");
	json_decref(host);

	/* Invalid UTF-8: a lone continuation, an overlong '/', a surrogate, a truncation. */
	h = hello_for("host-bad");
	h.hostname = "\xff\xfe";
	cr_expect_eq(store_host_hello(fx.st, &h, &err), -EINVAL);
	cr_expect_not_null(strstr(err.msg, "hostname"), "%s", err.msg);
	h = hello_for("host-bad");
	h.os = "\xc0\xaf";
	cr_expect_eq(store_host_hello(fx.st, &h, &err), -EINVAL);
	cr_expect_not_null(strstr(err.msg, "os"), "%s", err.msg);
	h = hello_for("host-bad");
	h.kernel = "6.1\xed\xa0\x80";
	cr_expect_eq(store_host_hello(fx.st, &h, &err), -EINVAL);
	cr_expect_not_null(strstr(err.msg, "kernel"), "%s", err.msg);
	h = hello_for("host-bad");
	h.bpf_status = "ok\xe2\x82";
	cr_expect_eq(store_host_hello(fx.st, &h, &err), -EINVAL);
	cr_expect_not_null(strstr(err.msg, "bpf_status"), "%s", err.msg);
	h = hello_for("host-bad");
	h.labels = bad_labels;
	h.nlabels = 2;
	cr_expect_eq(store_host_hello(fx.st, &h, &err), -EINVAL);
	cr_expect_not_null(strstr(err.msg, "labels[1].value"), "%s", err.msg);
	h = hello_for("\x80host");
	cr_expect_eq(store_host_hello(fx.st, &h, &err), -EINVAL);
	cr_expect_not_null(strstr(err.msg, "host_id"), "%s", err.msg);

	/* 10 KB is refused; 256 bytes is the most a field may hold, and it is kept whole. */
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	h = hello_for("host-bad");
	h.defender_version = big;
	cr_expect_eq(store_host_hello(fx.st, &h, &err), -EINVAL);
	cr_expect_not_null(strstr(err.msg, "defender_version"), "%s", err.msg);
	memset(max, 'B', sizeof(max) - 1);
	max[sizeof(max) - 1] = '\0';
	h.defender_version = max;
	cr_expect_eq(store_host_hello(fx.st, &h, &err), -EINVAL);
	max[sizeof(max) - 2] = '\0';
	h = hello_for("host-max");
	h.defender_version = max;
	cr_assert_eq(store_host_hello(fx.st, &h, &err), 0, "%s", err.msg);
	host = list_host("host-max");
	cr_expect_str_eq(jstr(host, "defender_version"), max);
	json_decref(host);

	/* Missing required fields and too many labels. */
	h = hello_for("host-bad");
	h.hostname = NULL;
	cr_expect_eq(store_host_hello(fx.st, &h, &err), -EINVAL);
	h = hello_for("");
	cr_expect_eq(store_host_hello(fx.st, &h, &err), -EINVAL);
	for (size_t i = 0; i < STORE_TEST_MANY_LABELS; i++)
		many[i] = (struct store_label){"k", "v"};
	h = hello_for("host-bad");
	h.labels = many;
	h.nlabels = STORE_TEST_MANY_LABELS;
	cr_expect_eq(store_host_hello(fx.st, &h, &err), -EINVAL);

	/* Nothing refused was stored, and the table survived. */
	cr_expect_eq(host_count(), 2);
	cr_expect_null(list_host("host-bad"));
}

Test(store, reconnects_after_server_restart)
{
	struct store_hello h = hello_for("host-a");
	struct store_heartbeat hb = {.exec_count = 3};
	vigil_err err = {0};
	json_t *host;
	int rc;

	cr_assert_eq(store_host_hello(fx.st, &h, &err), 0, "%s", err.msg);
	PQfinish(fx.sql);
	fx.sql = NULL;
	pgembed_stop(fx.pg);
	fx.pg = NULL;

	rc = store_host_heartbeat(fx.st, "host-a", &hb, &err);
	cr_expect_eq(rc, -ECONNRESET, "%d: %s", rc, err.msg);
	cr_expect_not_null(strstr(err.msg, "database vigil"), "%s", err.msg);
	cr_expect_not_null(strstr(err.msg, shared_state()), "%s", err.msg);

	fx.pg = pgembed_start(shared_state(), START_MS, &err);
	cr_assert_not_null(fx.pg, "restart: %s", err.msg);
	/* The same store object works again, without reopening. */
	cr_assert_eq(store_host_heartbeat(fx.st, "host-a", &hb, &err), 0, "%s", err.msg);
	host = list_host("host-a");
	cr_assert_not_null(host);
	cr_expect_eq(json_integer_value(json_object_get(host, "exec_count")), 3);
	json_decref(host);
}

Test(store, restart_between_calls_costs_no_failure)
{
	struct store_hello h = hello_for("host-a");
	vigil_err err = {0};
	int n = -1;

	cr_assert_eq(store_host_hello(fx.st, &h, &err), 0, "%s", err.msg);
	PQfinish(fx.sql);
	fx.sql = NULL;
	pgembed_stop(fx.pg);
	fx.pg = pgembed_start(shared_state(), START_MS, &err);
	cr_assert_not_null(fx.pg, "restart: %s", err.msg);
	/* The dead connection is noticed on use, reset, and the statement retried. */
	cr_expect_eq(store_hosts_mark_stale(fx.st, 60000, &n, &err), 0, "%s", err.msg);
	cr_expect_eq(host_count(), 1);
}

#define THREADS	       4
#define OPS_PER_THREAD 50

static void *hammer(void *arg)
{
	char id[32];
	struct store_hello h;
	struct store_heartbeat hb = {0};
	vigil_err err = {0};
	intptr_t failures = 0;

	snprintf(id, sizeof(id), "host-%d", (int)(intptr_t)arg);
	h = hello_for(id);
	failures += store_host_hello(fx.st, &h, &err) != 0;
	for (int i = 0; i < OPS_PER_THREAD; i++) {
		hb.exec_count = (uint64_t)i;
		failures += store_host_heartbeat(fx.st, id, &hb, &err) != 0;
	}
	return (void *)failures;
}

Test(store, one_store_many_threads)
{
	pthread_t t[THREADS];
	void *failures;

	for (intptr_t i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, hammer, (void *)i), 0);
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], &failures);
		cr_expect_eq((intptr_t)failures, 0);
	}
	cr_expect_eq(host_count(), THREADS);
}

Test(store_open, no_server_names_the_host, .timeout = 30)
{
	char dir[64], dsn[256];
	vigil_err err = {0};
	struct store *st;

	make_tmpdir(dir, sizeof(dir));
	snprintf(dsn, sizeof(dsn), "host=%s dbname=vigil user=vigil", dir);
	errno = 0;
	st = store_open(dsn, &err);
	cr_expect_null(st);
	cr_expect_neq(errno, 0);
	cr_expect_lt(err.code, 0);
	cr_expect_not_null(strstr(err.msg, dir), "%s", err.msg);
	cr_expect_not_null(strstr(err.msg, "vigil"), "%s", err.msg);
	store_close(st);
	rm_rf(dir);
}

Test(store_open, bad_dsn_does_not_echo_the_password, .timeout = 30)
{
	vigil_err err = {0};
	struct store *st;

	st = store_open("host=/nowhere password=sekrit oops", &err);
	cr_expect_null(st);
	cr_expect_eq(err.code, -EINVAL);
	cr_expect_null(strstr(err.msg, "sekrit"), "%s", err.msg);

	st = store_open("host=/nowhere/at/all user=u password=sekrit", &err);
	cr_expect_null(st);
	cr_expect_not_null(strstr(err.msg, "/nowhere/at/all"), "%s", err.msg);
	cr_expect_null(strstr(err.msg, "sekrit"), "%s", err.msg);
}

/* pgembed */

TestSuite(pgembed, .fini = teardown, .timeout = 60);

static void stat_file(const char *dir, const char *name, struct stat *st)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/postgres/%s", dir, name);
	cr_assert_eq(stat(path, st), 0, "stat %s: %s", path, strerror(errno));
}

Test(pgembed, second_start_reuses_the_data_directory, .init = storefix_setup_empty)
{
	struct stat log_before, log_after, ver;
	vigil_err err = {0};
	PGresult *res;

	stat_file(shared_state(), "initdb.log", &log_before);
	stat_file(shared_state(), "data/PG_VERSION", &ver);
	cr_expect_gt(log_before.st_size, 0);
	PQclear(storefix_exec("CREATE TABLE kept (v text)", 0, NULL));
	PQclear(storefix_exec("INSERT INTO kept VALUES ('still here')", 0, NULL));
	PQfinish(fx.sql);
	fx.sql = NULL;
	pgembed_stop(fx.pg);

	fx.pg = pgembed_start(shared_state(), START_MS, &err);
	cr_assert_not_null(fx.pg, "%s", err.msg);
	stat_file(shared_state(), "initdb.log", &log_after);
	cr_expect_eq(log_after.st_ino, log_before.st_ino, "initdb ran again");
	cr_expect_eq(log_after.st_size, log_before.st_size, "initdb ran again");
	cr_expect_eq(log_after.st_mtim.tv_sec, log_before.st_mtim.tv_sec, "initdb ran again");
	cr_expect_eq(log_after.st_mtim.tv_nsec, log_before.st_mtim.tv_nsec, "initdb ran again");
	fx.sql = sql_connect();
	res = storefix_exec("SELECT v FROM kept", 0, NULL);
	cr_assert_eq(PQntuples(res), 1);
	cr_expect_str_eq(PQgetvalue(res, 0, 0), "still here");
	PQclear(res);
}

Test(pgembed, socket_path_too_long_fails_cleanly)
{
	char dir[256];
	vigil_err err = {0};
	struct pgembed *pg;

	snprintf(dir, sizeof(dir), "/tmp/vigil-pgtest-%d-%s", (int)getpid(),
		 "a-state-directory-name-so-long-that-the-socket-path-cannot-fit");
	cr_assert_gt(strlen(dir) + strlen("/postgres/run/.s.PGSQL.5432"), 107);
	errno = 0;
	pg = pgembed_start(dir, START_MS, &err);
	cr_assert_null(pg);
	cr_expect_eq(errno, ENAMETOOLONG);
	cr_expect_eq(err.code, -ENAMETOOLONG);
	cr_expect_not_null(strstr(err.msg, ".s.PGSQL.5432"), "%s", err.msg);
	cr_expect_not_null(strstr(err.msg, "107"), "%s", err.msg);
	/* Refused before anything was created. */
	cr_expect_not(fs_exists(dir));
}

Test(pgembed, missing_binaries_fail_cleanly)
{
	vigil_err err = {0};

	make_tmpdir(scratch_dir, sizeof(scratch_dir));
	setenv("VIGIL_PG_BINDIR", "/nonexistent/pg/bin", 1);
	cr_expect_null(pgembed_start(scratch_dir, START_MS, &err));
	unsetenv("VIGIL_PG_BINDIR");
	cr_expect_lt(err.code, 0);
	cr_expect_not_null(strstr(err.msg, "/nonexistent/pg/bin/postgres"), "%s", err.msg);
}

Test(pgembed, unsearchable_state_dir_is_explained)
{
	vigil_err err = {0};

	if (geteuid() != 0)
		cr_skip_test("needs root (the server runs as user postgres only under root)");
	pgfix_need();
	make_tmpdir(scratch_dir, sizeof(scratch_dir));
	cr_assert_eq(chmod(scratch_dir, 0700), 0);
	errno = 0;
	cr_expect_null(pgembed_start(scratch_dir, START_MS, &err));
	cr_expect_eq(errno, EACCES);
	cr_expect_not_null(strstr(err.msg, "searchable"), "%s", err.msg);
	cr_expect_not_null(strstr(err.msg, scratch_dir), "%s", err.msg);
}

Test(pgembed, dsn_quotes_the_state_directory, .init = storefix_setup_empty)
{
	const char *dsn = pgembed_dsn(fx.pg);
	vigil_err err = {0};
	struct store *st;

	/* The shared state directory is named "it's a \state dir". */
	cr_assert_not_null(strchr(shared_state(), '\''));
	cr_expect_not_null(strstr(dsn, "it\\'s a \\\\state dir"), "%s", dsn);
	cr_expect_not_null(strstr(dsn, "dbname=vigil"), "%s", dsn);
	st = store_open(dsn, &err);
	cr_expect_not_null(st, "%s (dsn %s)", err.msg, dsn);
	store_close(st);
}

/* A server that exits during startup is reported with the end of its log. */
Test(pgembed, early_exit_is_reported_with_the_log)
{
	char conf[PATH_MAX], *saved = NULL;
	size_t saved_len = 0;
	vigil_err err = {0};
	struct pgembed *pg;
	int saved_errno;
	FILE *f;

	snprintf(conf, sizeof(conf), "%s/postgres/data/postgresql.auto.conf", shared_state());
	cr_assert_eq(fs_read_file(conf, 1 << 20, &saved, &saved_len, &err), 0, "%s", err.msg);
	f = fopen(conf, "a");
	cr_assert_not_null(f);
	fputs("shared_buffers = 'plenty'\n", f);
	fclose(f);
	errno = 0;
	pg = pgembed_start(shared_state(), START_MS, &err);
	saved_errno = errno;
	/* Put the shared cluster back before judging. */
	f = fopen(conf, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(saved, 1, saved_len, f), saved_len);
	fclose(f);
	free(saved);
	pgembed_stop(pg);

	cr_expect_null(pg);
	cr_expect_eq(saved_errno, EIO);
	cr_expect_not_null(strstr(err.msg, "exited during startup"), "%s", err.msg);
	cr_expect_not_null(strstr(err.msg, "server.log"), "%s", err.msg);
	cr_expect_not_null(strstr(err.msg, "shared_buffers"), "%s", err.msg);
}

/*
 * A console SIGKILLed with its server running: the server gets SIGINT from
 * its death signal and shuts down while the next console is already starting.
 */
Test(pgembed, waits_for_the_server_of_a_killed_console)
{
	vigil_err err = {0};
	const char *state;
	int pfd[2], status;
	pid_t child;
	char c;

	state = shared_state();
	cr_assert_eq(pipe(pfd), 0);
	child = fork();
	cr_assert_geq(child, 0);
	if (child == 0) {
		struct pgembed *pg;

		close(pfd[0]);
		pg = pgembed_start(state, START_MS, &err);
		c = pg != NULL ? 'y' : 'n';
		if (write(pfd[1], &c, 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(pfd[1]);
	cr_assert_eq(read(pfd[0], &c, 1), 1);
	close(pfd[0]);
	cr_assert_eq(c, 'y', "the first console could not start its server");
	kill(child, SIGKILL);
	waitpid(child, &status, 0);

	fx.pg = pgembed_start(state, START_MS, &err);
	cr_assert_not_null(fx.pg, "%s", err.msg);
	fx.sql = sql_connect();
	PQclear(storefix_exec("SELECT 1", 0, NULL));
}

/* Whether OS user name can open a session on dsn (tried in a child that becomes that user). */
static bool connects_as(const char *name, const char *dsn)
{
	struct passwd *pw = getpwnam(name);
	pid_t pid;
	int st;

	cr_assert_not_null(pw, "no user %s on this machine", name);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
			_exit(3);
		PGconn *c = PQconnectdb(dsn);
		_exit(PQstatus(c) == CONNECTION_OK ? 0 : 1);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 3, "could not become %s", name);
	return WEXITSTATUS(st) == 0;
}

/*
 * The private cluster runs as its own user and lets in only the console's
 * OS user: not the distribution's shared postgres user (whatever else runs
 * as it), not any other local user, and never by trust.
 */
Test(pgembed, only_the_consoles_own_user_may_connect, .init = storefix_setup_empty)
{
	char path[PATH_MAX];
	struct stat st;

	if (geteuid() != 0)
		cr_skip_test("needs root (the cluster runs as vigil-pg only under root)");
	snprintf(path, sizeof(path), "%s/postgres/data", shared_state());
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_uid, getpwnam("vigil-pg")->pw_uid, "the data belongs to vigil-pg");
	snprintf(path, sizeof(path), "%s/postgres/data/pg_hba.conf", shared_state());
	char *hba = NULL;
	size_t len = 0;
	cr_assert_eq(fs_read_file(path, 1 << 16, &hba, &len, NULL), 0);
	cr_expect_not_null(strstr(hba, "local all all peer map=vigil"), "%s", hba);
	cr_expect_null(strstr(hba, "trust"), "%s", hba);
	cr_expect_null(strstr(hba, "host "), "no TCP entries: %s", hba);
	free(hba);
	cr_expect(connects_as("root", pgembed_dsn(fx.pg)), "positive control: the console's user");
	if (getpwnam("postgres") != NULL)
		cr_expect_not(connects_as("postgres", pgembed_dsn(fx.pg)),
			      "the distribution's postgres user got in");
	cr_expect_not(connects_as("nobody", pgembed_dsn(fx.pg)), "another local user got in");
}

/* The "rules" object of host_id in the host list (caller decrefs). */
static json_t *rules_of(const char *host_id)
{
	vigil_err err = {0};
	json_t *hosts = NULL, *h, *r = NULL;
	size_t i;

	cr_assert_eq(store_hosts_list(fx.st, &hosts, &err), 0, "%s", err.msg);
	json_array_foreach(hosts, i, h) if (strcmp(jstr(h, "host_id"), host_id) == 0) r =
	    json_incref(json_object_get(h, "rules"));
	json_decref(hosts);
	cr_assert_not_null(r);
	return r;
}

Test(store, host_rules_record_what_a_defender_holds_and_refusals)
{
	struct store_hello h = hello_for("host-r");
	struct store_rules_report rep = {.protocol = 1, .version = 0};
	struct store_host_rules hr = {0};
	vigil_err err = {0};
	bool is_new = false;
	json_t *r;

	cr_assert_eq(store_host_rules_report(fx.st, "nobody", &rep, &hr, &err), -ENOENT);
	cr_assert_eq(store_host_hello(fx.st, &h, &err), 0, "%s", err.msg);
	r = rules_of("host-r");
	cr_expect(json_is_null(json_object_get(r, "version")), "never said: null");
	cr_expect_not(json_is_true(json_object_get(r, "supported")));
	json_decref(r);

	cr_assert_eq(store_host_rules_report(fx.st, "host-r", &rep, &hr, &err), 0, "%s", err.msg);
	cr_expect_str_eq(hr.labels_json, "{\"env\": \"prod\", \"team\": \"blue\"}");
	free(hr.labels_json);
	cr_expect_eq(hr.refused_version, 0);

	/* The console refuses version 3 (too large): stored once, kept while the host holds less.
	 */
	cr_assert_eq(store_host_rules_refuse(fx.st, "host-r", 3, "too big", &is_new, &err), 0);
	cr_expect(is_new);
	cr_assert_eq(store_host_rules_refuse(fx.st, "host-r", 3, "too big", &is_new, &err), 0);
	cr_expect_not(is_new);
	rep.version = 2;
	cr_assert_eq(store_host_rules_report(fx.st, "host-r", &rep, &hr, &err), 0, "%s", err.msg);
	free(hr.labels_json);
	cr_expect_eq(hr.refused_version, 3);
	cr_expect(hr.refused_by_console);
	r = rules_of("host-r");
	cr_expect_eq(json_integer_value(json_object_get(r, "version")), 2);
	cr_expect_str_eq(jstr(json_object_get(r, "refused"), "by"), "console");
	cr_expect_str_eq(jstr(json_object_get(r, "refused"), "reason"), "too big");
	cr_expect(json_is_true(json_object_get(r, "supported")));
	cr_expect(json_is_string(json_object_get(r, "acknowledged_at")));
	json_decref(r);

	/* The defender refuses 4: its refusal replaces the console's. */
	rep.refused_version = 4;
	rep.refused_reason = "bad JSON in rule 1";
	cr_assert_eq(store_host_rules_report(fx.st, "host-r", &rep, &hr, &err), 0, "%s", err.msg);
	free(hr.labels_json);
	cr_expect_eq(hr.refused_version, 4);
	cr_expect_not(hr.refused_by_console);

	/* It takes 5 and says nothing refused: the refusal is gone. */
	rep.version = 5;
	rep.refused_version = 0;
	rep.refused_reason = "";
	cr_assert_eq(store_host_rules_report(fx.st, "host-r", &rep, &hr, &err), 0, "%s", err.msg);
	free(hr.labels_json);
	cr_expect_eq(hr.refused_version, 0);
	r = rules_of("host-r");
	cr_expect_eq(json_integer_value(json_object_get(r, "version")), 5);
	cr_expect(json_is_null(json_object_get(r, "refused")));
	json_decref(r);

	rep.version = (uint64_t)INT64_MAX + 1;
	cr_expect_eq(store_host_rules_report(fx.st, "host-r", &rep, &hr, &err), -EINVAL);
}

/* The count of rows of sql (one integer) on the plain connection. */
static long long sql_count(const char *sql)
{
	PGresult *res = storefix_exec(sql, 0, NULL);
	long long n = atoll(PQgetvalue(res, 0, 0));

	PQclear(res);
	return n;
}

/* store_host_rules_report of rep for host_id, which must succeed; *hr's labels freed. */
static void report(const char *host_id, const struct store_rules_report *rep,
		   struct store_host_rules *hr)
{
	vigil_err err = {0};

	*hr = (struct store_host_rules){0};
	cr_assert_eq(store_host_rules_report(fx.st, host_id, rep, hr, &err), 0, "%s", err.msg);
	free(hr->labels_json);
	hr->labels_json = NULL;
}

Test(store, host_rules_keep_what_a_host_can_enforce_and_leave_out_what_breaks_the_rules)
{
	static struct store_enforce_backend many_backends[HOST_RULES_BACKENDS_MAX + 1];
	static struct store_rule_shortfall many_shortfalls[HOST_RULES_SHORTFALLS_MAX + 1];
	const struct store_enforce_backend backends[] = {
	    {.name = "fanotify-exec", .available = true, .detail = "execs of every mount"},
	    {.name = "fanotify-open", .available = true},
	    {.name = "cgroup-sock", .available = false, .detail = "cgroup v1 only"},
	    {.name = "bpf-signal", .available = true, .detail = ""},
	};
	const struct store_rule_shortfall shortfalls[] = {
	    {.rule = "web-no-shells",
	     .section = "processes",
	     .wanted = "block",
	     .applied = "prevent",
	     .why = "bpf-signal: kernel without bpf_send_signal"},
	    {.rule = "egress", .section = "network", .wanted = "prevent", .applied = "alert"},
	};
	struct store_hello h = hello_for("host-e");
	struct store_rules_report rep = {.protocol = 1,
					 .backends = backends,
					 .nbackends = 4,
					 .shortfalls = shortfalls,
					 .nshortfalls = 2};
	struct store_host_rules hr;
	vigil_err err = {0};
	json_t *r;
	char *text;

	cr_assert_eq(store_host_hello(fx.st, &h, &err), 0, "%s", err.msg);
	r = rules_of("host-e");
	cr_expect(json_is_null(json_object_get(r, "backends")), "never said: null");
	cr_expect(json_is_null(json_object_get(r, "shortfalls")));
	cr_expect(json_is_null(json_object_get(r, "report_problem")));
	json_decref(r);

	report("host-e", &rep, &hr);
	cr_expect_str_eq(hr.new_problem, "");
	r = rules_of("host-e");
	text = json_dumps(json_object_get(r, "backends"), JSON_COMPACT | JSON_SORT_KEYS);
	cr_expect_str_eq(text, "[{\"available\":true,\"detail\":\"execs of every mount\","
			       "\"name\":\"fanotify-exec\"},{\"available\":true,\"detail\":\"\","
			       "\"name\":\"fanotify-open\"},{\"available\":false,\"detail\":"
			       "\"cgroup v1 only\",\"name\":\"cgroup-sock\"},{\"available\":true,"
			       "\"detail\":\"\",\"name\":\"bpf-signal\"}]");
	free(text);
	text = json_dumps(json_object_get(r, "shortfalls"), JSON_COMPACT | JSON_SORT_KEYS);
	cr_expect_str_eq(text,
			 "[{\"applied\":\"prevent\",\"rule\":\"web-no-shells\",\"section\":"
			 "\"processes\",\"wanted\":\"block\",\"why\":\"bpf-signal: kernel "
			 "without bpf_send_signal\"},{\"applied\":\"alert\",\"rule\":\"egress\","
			 "\"section\":\"network\",\"wanted\":\"prevent\",\"why\":\"\"}]");
	free(text);
	cr_expect(json_is_null(json_object_get(r, "report_problem")));
	json_decref(r);
	/* The same report again (each heartbeat): nothing new, the stored lists as they were. */
	report("host-e", &rep, &hr);
	cr_expect_str_eq(hr.new_problem, "");
	cr_expect_eq(sql_count("SELECT count(*) FROM audits"), 0);

	/* Over the limits: the list refused whole (unknown), audited and returned once. */
	for (size_t i = 0; i <= HOST_RULES_BACKENDS_MAX; i++)
		many_backends[i] = (struct store_enforce_backend){.name = "b", .available = true};
	rep.backends = many_backends;
	rep.nbackends = HOST_RULES_BACKENDS_MAX + 1;
	report("host-e", &rep, &hr);
	cr_expect_str_eq(hr.new_problem, "1 malformed item(s) left out; first: backends has 17"
					 " entries, more than the 16 accepted");
	r = rules_of("host-e");
	cr_expect(json_is_null(json_object_get(r, "backends")));
	cr_expect_eq(json_array_size(json_object_get(r, "shortfalls")), 2,
		     "the other list is kept");
	cr_expect_str_eq(jstr(r, "report_problem"), hr.new_problem);
	json_decref(r);
	report("host-e", &rep, &hr);
	cr_expect_str_eq(hr.new_problem, "", "the same problem is said once");
	cr_expect_eq(sql_count("SELECT count(*) FROM audits WHERE host_id = 'host-e'"
			       " AND kind = 'malformed_input' AND severity = 'medium'"
			       " AND detail->>'source' = 'rules_state'"
			       " AND (detail->>'count')::int = 1"
			       " AND detail->'problems'->0->>'field' = 'backends'"
			       " AND summary LIKE '1 malformed item(s) in the rule-set state%'"),
		     1);
	for (size_t i = 0; i <= HOST_RULES_SHORTFALLS_MAX; i++)
		many_shortfalls[i] = shortfalls[0];
	rep.backends = backends;
	rep.nbackends = 4;
	rep.shortfalls = many_shortfalls;
	rep.nshortfalls = HOST_RULES_SHORTFALLS_MAX + 1;
	report("host-e", &rep, &hr);
	cr_expect_str_eq(hr.new_problem, "1 malformed item(s) left out; first: shortfalls has 1025"
					 " entries, more than the 1024 accepted");
	r = rules_of("host-e");
	cr_expect_eq(json_array_size(json_object_get(r, "backends")), 4);
	cr_expect(json_is_null(json_object_get(r, "shortfalls")));
	json_decref(r);

	/* Entries that break the rules are left out, each named; the good ones kept. */
	const struct store_rule_shortfall mixed[] = {
	    shortfalls[0],
	    {.rule = "x", .section = "processes", .wanted = "kill", .applied = "alert"},
	    {.rule = "x", .section = "disks", .wanted = "block", .applied = "alert"},
	    {.rule = " x", .section = "files", .wanted = "block", .applied = "alert"},
	    {.rule = "x", .section = "files", .wanted = "block", .applied = "alert", .why = "\xff"},
	    {.rule = "", .section = "files", .wanted = "block", .applied = "alert"},
	    {.rule = "x", .section = "files", .wanted = "block", .applied = "stop"},
	};
	const struct store_enforce_backend bad_backends[] = {
	    backends[0],
	    {.name = "", .available = true},
	    {.name = "fanotify-open", .detail = "\xc3\x28"},
	};
	rep.shortfalls = mixed;
	rep.nshortfalls = 7;
	rep.backends = bad_backends;
	rep.nbackends = 3;
	report("host-e", &rep, &hr);
	cr_expect_str_eq(hr.new_problem, "8 malformed item(s) left out; first: backends[1].name is"
					 " missing or empty");
	r = rules_of("host-e");
	cr_expect_eq(json_array_size(json_object_get(r, "backends")), 1);
	cr_expect_eq(json_array_size(json_object_get(r, "shortfalls")), 1);
	cr_expect_str_eq(jstr(json_array_get(json_object_get(r, "shortfalls"), 0), "rule"),
			 "web-no-shells");
	json_decref(r);
	PGresult *res =
	    storefix_exec("SELECT string_agg(p->>'field' || ' ' || (p->>'why'), '; ')"
			  " FROM audits, jsonb_array_elements(detail->'problems') p"
			  " WHERE kind = 'malformed_input' AND (detail->>'count')::int = 8",
			  0, NULL);
	cr_expect_str_eq(PQgetvalue(res, 0, 0),
			 "backends[1].name is missing or empty; backends[2].detail is not valid"
			 " UTF-8; shortfalls[1].wanted is not alert, prevent or block;"
			 " shortfalls[2].section is not processes, network or files;"
			 " shortfalls[3].rule starts or ends with a space; shortfalls[4].why is"
			 " not valid UTF-8; shortfalls[5].rule is missing or empty;"
			 " shortfalls[6].applied is not alert, prevent or block");
	PQclear(res);

	/* A good report again: the problem is gone. */
	rep = (struct store_rules_report){.protocol = 1, .backends = backends, .nbackends = 4};
	report("host-e", &rep, &hr);
	r = rules_of("host-e");
	cr_expect(json_is_null(json_object_get(r, "report_problem")));
	cr_expect_eq(json_array_size(json_object_get(r, "shortfalls")), 0);
	cr_expect(json_is_array(json_object_get(r, "shortfalls")), "said none: []");
	json_decref(r);
	cr_expect_eq(sql_count("SELECT count(*) FROM audits WHERE kind = 'malformed_input'"), 3);
}
