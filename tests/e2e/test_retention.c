/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Data that lasts and costs little (store/retention.h, store/storage_state.h),
 * end to end: a real vigil-console with its private PostgreSQL, batches sent
 * over the real link (a simulated defender: h_link), retention run by the
 * console itself (at start and every --retention-interval-s).
 *
 *   - events past the retention are dropped a day's partition at a time,
 *     recent days kept, with an events_expired audit per day saying what
 *     went; events older than the oldest partition wait in the default
 *     partition until their day gets one;
 *   - over --events-max-bytes the oldest days go first, never today's;
 *   - audits, batch records and activity are deleted by their own, longer
 *     retention, in bounded batches;
 *   - the database's disk full (the state directory on a small tmpfs): the
 *     console answers RETRY and acknowledges nothing, says so once in its
 *     log and in GET /api/v1/status; space freed, the same batches are
 *     stored, none lost, none twice.  Both ways a full disk shows: a
 *     statement that cannot extend a file (SQLSTATE 53100), and a WAL that
 *     cannot grow (PostgreSQL stops, and the console starts it again once
 *     there is room).
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define HOST   "host-a"
#define DAY_S  86400LL
#define DAY_NS (DAY_S * 1000000000LL)

static char dir[H_PATH], mnt[H_PATH], fill[H_PATH];
static struct h_pki pki;
static struct h_console con;
static struct h_link link_a;
static bool link_open, mounted;

static void setup(void)
{
	h_tmpdir(dir);
	h_pki_make(dir, &pki);
	mounted = false;
	link_open = false;
	fill[0] = '\0';
}

static void teardown(void)
{
	if (fill[0] != '\0')
		unlink(fill);
	if (link_open)
		h_link_close(&link_a);
	if (con.pid > 0)
		h_console_kill(&con, SIGTERM);
	if (mounted && umount(mnt) < 0)
		umount2(mnt, MNT_DETACH);
	if (!getenv("VIGIL_KEEP_TEST_DIRS"))
		h_rmrf(dir);
}

TestSuite(retention, .init = setup, .fini = teardown, .timeout = 300);

/* Today as days since 1970 (UTC), as the console counts its partitions. */
static long long today(void)
{
	return (long long)time(NULL) / DAY_S;
}

/* "event_chunks_YYYYMMDD" of day. */
static void part_name(long long day, char out[64])
{
	time_t t = (time_t)(day * DAY_S);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, 64, "event_chunks_%04d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday);
}

static bool part_exists(long long day)
{
	char name[64], sql[256];

	part_name(day, name);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_class WHERE relname = '%s'", name);
	return h_db_count(&con, sql) == 1;
}

static long long events_of_seq(long long seq)
{
	char sql[160];

	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM events WHERE host_id = '" HOST "' AND seq = %lld", seq);
	return h_db_count(&con, sql);
}

static void hello(void)
{
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Hello h = VIGIL__HELLO__INIT;

	h.hostname = HOST;
	env.seq = 1;
	env.body_case = VIGIL__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	Vigil__Reply *r = h_link_request(&link_a, &env);
	cr_assert_eq(r->status, VIGIL__REPLY__STATUS__OK, "hello: %s", r->error);
	vigil__reply__free_unpacked(r, NULL);
}

static void link_up(void)
{
	h_link_open(&link_a, &con, &pki, pki.host_cert, pki.host_key);
	link_open = true;
	hello();
}

/*
 * Batch seq of n file events at noon of day (days since 1970), each with a
 * body of about 300 bytes that differs from the others; the console's
 * answer (free it).  NULL when none came within timeout_ms.
 */
static Vigil__Reply *send_events(long long seq, long long day, int n, int timeout_ms)
{
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Batch b = VIGIL__BATCH__INIT;
	Vigil__Event *evs = calloc((size_t)n, sizeof(*evs));
	Vigil__Event **evp = calloc((size_t)n, sizeof(*evp));
	char(*json)[400] = calloc((size_t)n, sizeof(*json));
	Vigil__Reply *r;

	cr_assert(evs != NULL && evp != NULL && json != NULL);
	for (int i = 0; i < n; i++) {
		vigil__event__init(&evs[i]);
		evs[i].type = 4;
		evs[i].ts_ns = (uint64_t)(day * DAY_NS + DAY_NS / 2 + (long long)i * 1000000);
		evs[i].pid = 4000 + (uint32_t)i % 50;
		evs[i].ppid = 1;
		evs[i].uid = 33;
		evs[i].comm = "php-fpm8.2";
		snprintf(json[i], sizeof(json[i]),
			 "{\"type\":\"file\",\"pid\":%u,\"op\":\"open\",\"path\":\"/var/lib/php/"
			 "sessions/sess_%lld_%d_%08x\",\"flags\":[\"O_WRONLY\",\"O_CREAT\"],"
			 "\"write\":true,\"mode\":\"0600\",\"result\":%d,\"class\":\"service\","
			 "\"service\":\"unit:php8.2-fpm.service\",\"user\":\"www-data\","
			 "\"exe\":\"/usr/sbin/php-fpm8.2\"}",
			 evs[i].pid, seq, i, (unsigned)(seq * 2654435761u + (unsigned)i * 40503u),
			 3 + i % 40);
		evs[i].json = json[i];
		evp[i] = &evs[i];
	}
	b.n_events = (size_t)n;
	b.events = evp;
	env.seq = (uint64_t)seq;
	env.incarnation = 77;
	env.body_case = VIGIL__ENVELOPE__BODY_BATCH;
	env.batch = &b;
	r = h_link_try_request(&link_a, &env, timeout_ms);
	free(evs);
	free(evp);
	free(json);
	return r;
}

/* send_events that must be stored. */
static void store_events(long long seq, long long day, int n)
{
	Vigil__Reply *r = send_events(seq, day, n, 20000);

	cr_assert_not_null(r, "batch %lld: no answer", seq);
	cr_assert_eq(r->status, VIGIL__REPLY__STATUS__OK, "batch %lld: %s", seq, r->error);
	vigil__reply__free_unpacked(r, NULL);
}

/* Wait (at most timeout_ms) until sql counts want; returns the last count. */
static long long wait_count(const char *sql, long long want, int timeout_ms)
{
	long long until = h_now_ms() + timeout_ms, v;

	while ((v = h_db_count(&con, sql)) != want && h_now_ms() < until)
		h_sleep_ms(200);
	return v;
}

static int count_in(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

static long long stored_batches(void)
{
	return h_db_count(&con, "SELECT count(*) FROM batches WHERE host_id = '" HOST "'");
}

/* GET /api/v1/status's storage object (caller decrefs). */
static json_t *status_storage(void)
{
	json_t *doc = NULL;

	cr_assert_eq(h_api_get(&con, &pki, "/api/v1/status", con.token, &doc), 200);
	cr_assert_not_null(doc);
	json_t *s = json_incref(json_object_get(doc, "storage"));
	json_decref(doc);
	cr_assert(json_is_object(s), "no storage object in /api/v1/status");
	return s;
}

static const char *jstr(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : "";
}

/*
 * Events older than the retention go a day at a time; recent ones stay.
 * Batches for four past days and today: the past days have no partition at
 * first (only today's and the next days' are made ahead), so they wait in
 * the default partition until retention gives each day one (positive
 * control: every day present, every event readable).  Restarted with a
 * 5-day retention, the three days older than that are dropped, each with an
 * events_expired audit naming the day, its events and bytes; yesterday and
 * today are kept whole.  events_legacy (what migration 13 kept of the old
 * table) is emptied once its newest event is past the retention.
 */
Test(retention, events_past_the_retention_are_dropped_by_day_with_an_audit)
{
	const char *const keep30[] = {"--events-retention-days", "30", "--retention-interval-s",
				      "1", NULL};
	const char *const keep5[] = {"--events-retention-days", "5", "--retention-interval-s", "1",
				     NULL};
	const long long t = today(), days[] = {t - 10, t - 9, t - 8, t - 1, t};
	const int per = 300;

	h_console_start(&con, dir, &pki, keep30);
	link_up();
	for (int i = 0; i < 5; i++)
		store_events(i + 1, days[i], per);
	/* Events of before migration 13, 20 days old, in the table it kept. */
	PGconn *db = h_db(&con);
	PGresult *res = PQexec(db, "INSERT INTO events_legacy (host_id, seq, idx, type, ts, pid,"
				   " ppid, uid, comm, body) SELECT 'old-host', 1, g, 'exec',"
				   " now() - interval '20 days', 1, 0, 0, 'x', '{}'"
				   " FROM generate_series(0, 9) g");
	cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(db));
	PQclear(res);
	PQfinish(db);

	/* Positive control: retention gave every day its partition; nothing is lost. */
	cr_assert_eq(wait_count("SELECT count(*) FROM event_chunks_default", 0, 20000), 0,
		     "chunks still in the default partition; console log:\n%s", h_slurp(con.log));
	for (int i = 0; i < 5; i++) {
		cr_expect(part_exists(days[i]), "no partition for day %lld", days[i]);
		cr_expect_eq(events_of_seq(i + 1), per, "batch %d", i + 1);
	}
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM events"), 5 * per + 10);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM audits WHERE kind = 'events_expired'"),
		     0, "nothing is past a 30-day retention");

	h_console_kill(&con, SIGTERM);
	h_link_close(&link_a);
	link_open = false;
	h_console_restart(&con, &pki, keep5);
	cr_assert_eq(
	    wait_count("SELECT count(*) FROM audits WHERE kind = 'events_expired'", 4, 20000), 4,
	    "expected 3 days and events_legacy audited; console log:\n%s", h_slurp(con.log));
	for (int i = 0; i < 3; i++) {
		char name[64], sql[512];

		cr_expect(!part_exists(days[i]), "day %lld was kept", days[i]);
		cr_expect_eq(events_of_seq(i + 1), 0, "batch %d", i + 1);
		part_name(days[i], name);
		snprintf(
		    sql, sizeof(sql),
		    "SELECT count(*) FROM audits WHERE kind = 'events_expired' AND host_id = ''"
		    " AND detail->>'reason' = 'age' AND detail->>'dropped' = '%s'"
		    " AND (detail->>'events')::int = %d AND (detail->>'chunks')::int = 1"
		    " AND (detail->>'bytes')::bigint > 0"
		    " AND (detail->>'retention_days')::int = 5"
		    " AND (detail->>'from')::timestamptz >= to_timestamp(%lld)"
		    " AND (detail->>'to')::timestamptz < to_timestamp(%lld)"
		    " AND summary LIKE '%%past the 5-day retention%%'",
		    name, per, days[i] * DAY_S, (days[i] + 1) * DAY_S);
		cr_expect_eq(h_db_count(&con, sql), 1, "no audit of %s that says what went", name);
	}
	for (int i = 3; i < 5; i++) {
		cr_expect(part_exists(days[i]), "day %lld was dropped", days[i]);
		cr_expect_eq(events_of_seq(i + 1), per, "batch %d", i + 1);
	}
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM events_legacy"), 0);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM audits WHERE kind = 'events_expired'"
				      " AND detail->>'dropped' = 'events_legacy'"
				      " AND (detail->>'events')::int = 10"),
		     1);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM events"), 2 * per);
	/* The log says what retention did. */
	char *log = h_slurp(con.log);
	cr_expect(strstr(log, "past the 5-day retention") != NULL, "console log:\n%s", log);
	free(log);
	/* The status shows the settings and the last run. */
	json_t *s = status_storage();
	json_t *ret = json_object_get(s, "retention");
	cr_expect_eq(
	    json_integer_value(json_object_get(json_object_get(ret, "settings"), "events_days")),
	    5);
	cr_expect(json_is_object(json_object_get(ret, "last_run")));
	cr_expect_geq(json_integer_value(json_object_get(json_object_get(s, "events"), "bytes")),
		      1);
	json_decref(s);
}

/* Bytes of day's partition, as retention measures it. */
static long long part_bytes(long long day)
{
	char name[64], sql[160];

	part_name(day, name);
	snprintf(sql, sizeof(sql), "SELECT pg_total_relation_size('%s')", name);
	return h_db_count(&con, sql);
}

/*
 * Over the size ceiling, the oldest days go first, until the events fit:
 * six past days and today, then a ceiling that the events exceed by more
 * than the oldest day but less than the two oldest.  The two oldest days
 * are dropped (reason "size", with the ceiling in the audit), the rest kept,
 * today's partition never dropped, even under a ceiling it alone exceeds.
 */
Test(retention, over_the_size_ceiling_the_oldest_days_go_first)
{
	const char *const keep30[] = {"--events-retention-days", "30", "--retention-interval-s",
				      "1", NULL};
	const long long t = today();
	const int per = 2000;
	char ceiling[32];

	h_console_start(&con, dir, &pki, keep30);
	link_up();
	for (int i = 0; i < 7; i++)
		store_events(i + 1, t - 6 + i, per);
	cr_assert_eq(wait_count("SELECT count(*) FROM event_chunks_default", 0, 20000), 0);
	for (int i = 0; i < 7; i++)
		cr_assert(part_exists(t - 6 + i), "positive control: day %lld present", t - 6 + i);
	long long total = h_db_count(&con, "SELECT (SELECT sum(pg_total_relation_size(relid))"
					   " FROM pg_partition_tree('event_chunks'))"
					   " + pg_total_relation_size('events_legacy')");
	long long oldest = part_bytes(t - 6), second = part_bytes(t - 5);
	cr_log_info("events take %lld bytes; the oldest days %lld and %lld", total, oldest, second);
	snprintf(ceiling, sizeof(ceiling), "%lld", total - oldest - second / 2);

	h_console_kill(&con, SIGTERM);
	h_link_close(&link_a);
	link_open = false;
	const char *const capped[] = {"--events-retention-days",
				      "30",
				      "--events-max-bytes",
				      ceiling,
				      "--retention-interval-s",
				      "1",
				      NULL};
	h_console_restart(&con, &pki, capped);
	cr_assert_eq(wait_count("SELECT count(*) FROM audits WHERE kind = 'events_expired'"
				" AND detail->>'reason' = 'size'",
				2, 20000),
		     2, "console log:\n%s", h_slurp(con.log));
	h_sleep_ms(2500); /* two more runs: nothing more goes */
	cr_expect(!part_exists(t - 6) && !part_exists(t - 5), "the two oldest days were kept");
	for (int i = 2; i < 7; i++) {
		cr_expect(part_exists(t - 6 + i), "day %lld was dropped", t - 6 + i);
		cr_expect_eq(events_of_seq(i + 1), per);
	}
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM audits WHERE kind = 'events_expired'"
		 " AND detail->>'reason' = 'size' AND (detail->>'max_bytes')::bigint = %s"
		 " AND (detail->>'events')::int = %d AND severity = 'medium'",
		 ceiling, per);
	cr_expect_eq(h_db_count(&con, sql), 2);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM audits WHERE kind = 'events_expired'"),
		     2);

	/* A ceiling below what today alone takes: every past day goes, today stays. */
	h_console_kill(&con, SIGTERM);
	const char *const tiny[] = {"--events-retention-days",
				    "30",
				    "--events-max-bytes",
				    "1K",
				    "--retention-interval-s",
				    "1",
				    NULL};
	h_console_restart(&con, &pki, tiny);
	cr_expect_eq(wait_count("SELECT count(*) FROM events", per, 20000), per);
	cr_expect(part_exists(t), "today's partition was dropped");
	h_sleep_ms(1500);
	char *log = h_slurp(con.log);
	cr_expect(strstr(log, "over the 1.0 KiB ceiling, with only today's left") != NULL,
		  "console log:\n%s", log);
	free(log);
}

/*
 * Audits, batch records and activity have their own retention: rows past
 * it are deleted (more than one delete's batch of them, so the deletes
 * loop), rows within it kept; models and rules are never touched.
 */
Test(retention, audits_activity_and_batches_have_their_own_retention)
{
	const char *const opts[] = {"--audits-retention-days",
				    "365",
				    "--activity-retention-days",
				    "90",
				    "--retention-interval-s",
				    "1",
				    NULL};

	h_console_start(&con, dir, &pki, opts);
	link_up();
	store_events(1, today(), 10);
	PGconn *db = h_db(&con);
	static const char *const sql[] = {
	    "INSERT INTO audits (host_id, ts, stored_at, kind, severity, summary) SELECT 'h',"
	    " now() - interval '400 days', now() - interval '400 days', 'delivery_gap', 'high',"
	    " 'old' FROM generate_series(1, 12000)",
	    "INSERT INTO audits (host_id, ts, stored_at, kind, severity, summary) SELECT 'h',"
	    " now() - interval '300 days', now() - interval '300 days', 'delivery_gap', 'high',"
	    " 'recent' FROM generate_series(1, 7)",
	    /* A host's clock a year behind: an old ts, stored today, kept (a sink may want it). */
	    "INSERT INTO audits (host_id, ts, kind, severity, summary) SELECT 'h',"
	    " now() - interval '400 days', 'delivery_gap', 'high', 'skewed' FROM"
	    " generate_series(1, 3)",
	    "INSERT INTO activity (host_id, ts, session, username, type, summary) SELECT 'h',"
	    " now() - interval '100 days', 1, 'alice', 'exec', 'old' FROM"
	    " generate_series(1, 6000)",
	    "INSERT INTO activity (host_id, ts, session, username, type, summary) SELECT 'h',"
	    " now() - interval '80 days', 1, 'alice', 'exec', 'recent' FROM"
	    " generate_series(1, 5)",
	    "INSERT INTO batches (host_id, incarnation, seq, n_events, received_at) SELECT 'h', 1,"
	    " g, 1, now() - interval '400 days' FROM generate_series(1, 300) g",
	    "INSERT INTO models (host_id, service, state, updated_at) VALUES ('h', 'unit:x',"
	    " 'active', now() - interval '1000 days')",
	};
	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
		PGresult *res = PQexec(db, sql[i]);

		cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(db));
		PQclear(res);
	}
	PQfinish(db);
	cr_expect_eq(wait_count("SELECT count(*) FROM audits WHERE summary = 'old'", 0, 30000), 0,
		     "console log:\n%s", h_slurp(con.log));
	cr_expect_eq(wait_count("SELECT count(*) FROM activity WHERE summary = 'old'", 0, 30000),
		     0);
	cr_expect_eq(wait_count("SELECT count(*) FROM batches WHERE host_id = 'h'", 0, 30000), 0);
	/* Positive controls: what is within its retention stays. */
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM audits WHERE summary = 'recent'"), 7);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM audits WHERE summary = 'skewed'"), 3,
		     "audits are kept by when the console stored them, not by a host's clock");
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM activity WHERE summary = 'recent'"), 5);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM batches WHERE host_id = '" HOST "'"),
		     1);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM models WHERE host_id = 'h'"), 1);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM events"), 10);
	char *log = h_slurp(con.log);
	cr_expect(
	    strstr(log, "deleted 12000 audit(s), 6000 activity row(s) and 300 batch record(s)") !=
		NULL,
	    "console log:\n%s", log);
	free(log);
}

/* A tmpfs of size MiB on dir/console, the console's state directory; false (skipped) if none. */
static void mount_state(int mib)
{
	char opts[64];

	if (geteuid() != 0)
		H_SKIP(teardown,
		       "a full disk needs a small filesystem: mounting a tmpfs needs root");
	snprintf(mnt, sizeof(mnt), "%s/console", dir);
	cr_assert_eq(mkdir(mnt, 0755), 0);
	snprintf(opts, sizeof(opts), "size=%dm,mode=0755", mib);
	if (mount("tmpfs", mnt, "tmpfs", 0, opts) < 0)
		H_SKIP(teardown, "cannot mount a tmpfs on %s: %s", mnt, strerror(errno));
	mounted = true;
}

/* Fill the state's filesystem: a file of zeros taking every byte there is. */
static void fill_disk(void)
{
	static char zeros[1 << 20];
	struct statvfs sv;
	int fd;

	snprintf(fill, sizeof(fill), "%s/fill", mnt);
	fd = open(fill, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	for (size_t chunk = sizeof(zeros); chunk >= 4096; chunk /= 2)
		while (write(fd, zeros, chunk) == (ssize_t)chunk)
			;
	close(fd);
	cr_assert_eq(statvfs(mnt, &sv), 0);
	cr_log_info("disk filled: %llu bytes free", (unsigned long long)sv.f_bavail * sv.f_frsize);
}

/*
 * Batches first..last on a full disk: each answered RETRY (nothing
 * acknowledged, nothing stored); the status says the disk is full, and
 * why.
 */
static void expect_refused(int first, int last, int per, long long stored_before)
{
	long long until = h_now_ms() + 30000;
	json_t *s;

	for (int seq = first; seq <= last; seq++) {
		Vigil__Reply *r = send_events(seq, today(), per, 30000);

		cr_assert_not_null(r, "batch %d: no answer from a console on a full disk", seq);
		cr_expect_eq(r->status, VIGIL__REPLY__STATUS__RETRY,
			     "batch %d on a full disk: status %d (%s)", seq, r->status, r->error);
		vigil__reply__free_unpacked(r, NULL);
	}
	/* The sweeper may take a second to see a cluster that cannot start. */
	for (;;) {
		s = status_storage();
		if (strcmp(jstr(s, "state"), "full") == 0 || h_now_ms() > until)
			break;
		json_decref(s);
		h_sleep_ms(250);
	}
	cr_expect_str_eq(jstr(s, "state"), "full", "console log:\n%s", h_slurp(con.log));
	cr_expect(strstr(jstr(s, "detail"), "No space left on device") != NULL ||
		      strstr(jstr(s, "detail"), "could not extend file") != NULL,
		  "detail: %s", jstr(s, "detail"));
	cr_expect_neq(jstr(s, "since")[0], '\0');
	char *text = json_dumps(s, JSON_COMPACT);
	cr_log_info("status while full: %s", text);
	free(text);
	json_decref(s);
	/* -1: the database is down, nothing to count (its restart shows what it holds). */
	if (stored_before >= 0)
		cr_expect_eq(stored_batches(), stored_before, "a batch was stored on a full disk");
}

/*
 * Space freed: batches first..last sent again as a defender does until each
 * is acknowledged; then every seq 1..last is stored once, every event once,
 * the status is ok again and the log says so, once.
 */
static void free_and_expect_stored(int first, int last, int per)
{
	long long until = h_now_ms() + 90000;
	Vigil__Reply *r;

	cr_assert_eq(unlink(fill), 0);
	fill[0] = '\0';
	for (int seq = first; seq <= last; seq++) {
		for (;;) {
			r = send_events(seq, today(), per, 10000);
			if (r != NULL && r->status == VIGIL__REPLY__STATUS__OK)
				break;
			cr_assert(
			    h_now_ms() < until,
			    "batch %d not stored within 90 s of space returning: %s; log:\n%s", seq,
			    r != NULL ? r->error : "no answer", h_slurp(con.log));
			if (r != NULL)
				vigil__reply__free_unpacked(r, NULL);
			h_sleep_ms(500);
		}
		vigil__reply__free_unpacked(r, NULL);
	}
	cr_expect_eq(stored_batches(), last);
	for (int seq = 1; seq <= last; seq++)
		cr_expect_eq(events_of_seq(seq), per, "batch %d: %lld events", seq,
			     events_of_seq(seq));
	cr_expect_eq(h_db_count(&con, "SELECT count(DISTINCT (seq, idx)) FROM events"),
		     (long long)last * per);
	json_t *s = status_storage();
	cr_expect_str_eq(jstr(s, "state"), "ok");
	json_decref(s);
	h_sleep_ms(1500); /* the sweeper logs within a second */
	char *log = h_slurp(con.log);
	cr_expect_eq(count_in(log, "database disk full"), 1, "said once, not per batch:\n%s", log);
	cr_expect_eq(count_in(log, "database disk takes data again"), 1, "log:\n%s", log);
	free(log);
}

/*
 * A full disk that a statement meets (SQLSTATE 53100: a table cannot be
 * extended).  Before filling, the WAL has had room to be recycled (a few
 * checkpoints after some traffic), as on any console that ran a while.
 * Batches 1..3 stored (positive control), the disk filled, 4..8 refused,
 * not one line per batch in the log, space freed, 4..8 stored.
 */
Test(retention, a_full_disk_answers_retry_then_stores_the_same_batches)
{
	const int per = 1000;

	mount_state(160);
	h_console_start(&con, dir, &pki, NULL);
	link_up();
	PGconn *db = h_db(&con);
	for (int i = 0; i < 4; i++) {
		PGresult *res = PQexec(db, "CREATE TABLE walfill AS SELECT repeat('x', 1000) FROM"
					   " generate_series(1, 20000); DROP TABLE walfill;"
					   " CHECKPOINT");
		cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(db));
		PQclear(res);
	}
	PQfinish(db);
	for (int seq = 1; seq <= 3; seq++)
		store_events(seq, today(), per);
	fill_disk();
	expect_refused(4, 8, per, 3);
	char *log = h_slurp(con.log);
	cr_expect_eq(count_in(log, "not stored"), 0, "a line per batch:\n%s", log);
	free(log);
	free_and_expect_stored(4, 8, per);
}

/*
 * A full disk that the WAL meets first: PostgreSQL cannot create its next
 * WAL file, stops (PANIC) and cannot start again while the disk is full.
 * The console answers RETRY meanwhile, says the disk is full, and starts
 * PostgreSQL again once space returns; no batch is lost or stored twice.
 */
Test(retention, a_wal_that_cannot_grow_stops_postgres_until_space_returns)
{
	const int per = 200;

	mount_state(160);
	h_console_start(&con, dir, &pki, NULL);
	link_up();
	for (int seq = 1; seq <= 3; seq++)
		store_events(seq, today(), per);
	fill_disk();
	/* Into a new WAL file, which cannot be made: the next write stops the server. */
	PGconn *db = h_db(&con);
	PQclear(PQexec(db, "SELECT pg_switch_wal()"));
	PQclear(PQexec(db, "CREATE TABLE walnext (a int)"));
	PQfinish(db);
	expect_refused(4, 8, per, -1);
	free_and_expect_stored(4, 8, per);
}
