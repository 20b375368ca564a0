/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Storage benchmark: what an event costs on the console's disk, and what
 * dropping old events costs.
 *
 * A real vigil-console with its private PostgreSQL takes N realistic events
 * (tests/bench/event_mix.c: the defender's own JSON writer, a busy host's
 * mix of exec, fork, exit, file and net events) from a simulated defender
 * over the real link, in batches of the defender's size, dated three days
 * ago (so that they fill one day's partition, which retention can drop).
 * Then, in the same run and on the same database:
 *
 *   - bytes per event as stored now (every partition of event_chunks and
 *     events_legacy: tables, TOAST, indexes: pg_total_relation_size);
 *   - the baseline: the same rows, read back through the events view, in a
 *     table of the layout before migration 13 (one row per event, json
 *     body, BRIN on ts: migrations 3 to 5), measured the same way;
 *   - the raw JSON bodies' bytes, for scale;
 *   - expiring those events: the old way (DELETE of the rows, then the
 *     VACUUM that gives their space back to the table) against the
 *     console's retention run that drops the day's partition (its own
 *     "ms", read from GET /api/v1/status after a restart with a 2-day
 *     retention).
 *
 *   storage_bench [--events N] [--batch N] [--keep]
 *
 * The helpers (PKI, console start, API, link) are the integration suites'
 * (tests/lib/harness.c), linked with tests/lib/harness_standalone.c.
 */
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "event_mix.h"
#include "harness.h"

#define HOST   "bench-host"
#define DAY_NS 86400000000000ULL
/* A batch is cut past this (the defender's: under VIGIL_MSG_MAX, 1 MiB, with room). */
#define BATCH_BYTES (1000u * 1000u)

static char dir[H_PATH];
static struct h_pki pki;
static struct h_console con;
static bool keep_dir, cleaned;

static void cleanup(void)
{
	cleaned = true;
	if (con.pid > 0)
		h_console_kill(&con, SIGTERM);
	if (dir[0] != '\0') {
		if (keep_dir)
			fprintf(stderr, "storage_bench: kept %s\n", dir);
		else
			h_rmrf(dir);
	}
}

static void cleanup_at_exit(void)
{
	if (!cleaned)
		cleanup();
}

/* VIGIL_BUILD_DIR for h_bin: the build directory this program was built in. */
static void build_dir_default(void)
{
	char exe[PATH_MAX];
	ssize_t n;

	if (getenv("VIGIL_BUILD_DIR") != NULL)
		return;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return;
	exe[n] = '\0';
	for (int up = 0; up < 3; up++) { /* <build>/tests/bench/storage_bench */
		char *slash = strrchr(exe, '/');

		if (slash == NULL)
			return;
		*slash = '\0';
	}
	setenv("VIGIL_BUILD_DIR", exe, 1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sql_ok(PGconn *db, const char *sql)
{
	PGresult *r = PQexec(db, sql);

	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "storage_bench: %s: %s\n", sql, PQerrorMessage(db));
		exit(1);
	}
	PQclear(r);
}

static long long sql_num(PGconn *db, const char *sql)
{
	PGresult *r = PQexec(db, sql);
	long long v;

	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		fprintf(stderr, "storage_bench: %s: %s\n", sql, PQerrorMessage(db));
		exit(1);
	}
	v = atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

/* Send n events in batches of batch, as seqs 1.., dated from start_ns; returns the seconds. */
static double send_all(struct h_link *l, long n, int batch, uint64_t start_ns)
{
	struct event_mix *m = malloc(sizeof(*m));
	Vigil__Event *evs = calloc((size_t)batch, sizeof(*evs));
	Vigil__Event **evp = calloc((size_t)batch, sizeof(*evp));
	char **bodies = calloc((size_t)batch, sizeof(*bodies));
	char(*comms)[16] = calloc((size_t)batch, sizeof(*comms));
	uint64_t seq = 1;
	double spent = 0;

	if (m == NULL || evs == NULL || evp == NULL || bodies == NULL || comms == NULL) {
		fprintf(stderr, "storage_bench: out of memory\n");
		exit(1);
	}
	/* One event every 2 ms: 200,000 events span under 7 minutes of one day. */
	event_mix_init(m, 42, start_ns, 2000000);
	for (long done = 0; done < n; seq++) {
		Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
		Vigil__Batch b = VIGIL__BATCH__INIT;
		int k = 0;
		size_t bytes = 0;

		/* Up to batch events, and under the console's 1 MiB, as the defender packs them. */
		while (k < batch && done + k < n && bytes < BATCH_BYTES) {
			struct event_mix_event e;
			int i = k++;

			event_mix_next(m, &e);
			vigil__event__init(&evs[i]);
			evs[i].type = e.type;
			evs[i].ts_ns = e.ts_ns;
			evs[i].pid = e.pid;
			evs[i].ppid = e.ppid;
			evs[i].uid = e.uid;
			snprintf(comms[i], sizeof(comms[i]), "%s", e.comm);
			evs[i].comm = comms[i];
			free(bodies[i]);
			bodies[i] = strdup(e.json);
			evs[i].json = bodies[i];
			evp[i] = &evs[i];
			bytes += vigil__event__get_packed_size(&evs[i]) + 4;
		}
		b.n_events = (size_t)k;
		b.events = evp;
		env.seq = seq;
		env.incarnation = 1;
		env.body_case = VIGIL__ENVELOPE__BODY_BATCH;
		env.batch = &b;
		double ts = now_s();
		Vigil__Reply *r;
		/* As the defender does: the same batch again while the console says RETRY. */
		for (int tries = 0;; tries++) {
			r = h_link_request(l, &env);
			if (r->status == VIGIL__REPLY__STATUS__OK)
				break;
			if (r->status != VIGIL__REPLY__STATUS__RETRY || tries == 20) {
				fprintf(stderr, "storage_bench: batch %" PRIu64 " not stored: %s\n",
					seq, r->error);
				exit(1);
			}
			vigil__reply__free_unpacked(r, NULL);
			usleep(100000);
		}
		spent += now_s() - ts;
		vigil__reply__free_unpacked(r, NULL);
		done += k;
	}
	for (int i = 0; i < batch; i++)
		free(bodies[i]);
	free(bodies);
	free(comms);
	free(evs);
	free(evp);
	free(m);
	return spent;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: storage_bench [--events N] [--batch N] [--keep]\n"
		   "  --events N   events to store, 1000..10000000 (default 200000)\n"
		   "  --batch N    events per batch, 1..10000 (default 2000, the defender's)\n"
		   "  --keep       keep the directory (PKI, console state and log)\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"events", required_argument, NULL, 'e'},
					     {"batch", required_argument, NULL, 'b'},
					     {"keep", no_argument, NULL, 'k'},
					     {"help", no_argument, NULL, 'h'},
					     {0}};
	long n = 200000;
	int batch = 2000, opt;
	struct h_link link;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'e':
			n = atol(optarg);
			break;
		case 'b':
			batch = atoi(optarg);
			break;
		case 'k':
			keep_dir = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || n < 1000 || n > 10000000 || batch < 1 || batch > 10000) {
		usage(stderr);
		return 2;
	}
	build_dir_default();
	signal(SIGPIPE, SIG_IGN);
	h_tmpdir(dir);
	atexit(cleanup_at_exit);
	h_pki_make(dir, &pki);
	const char *const keep30[] = {"--events-retention-days", "30", "--retention-interval-s",
				      "1", NULL};
	h_console_start(&con, dir, &pki, keep30);
	h_link_open(&link, &con, &pki, pki.host_cert, pki.host_key);
	{
		Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
		Vigil__Hello h = VIGIL__HELLO__INIT;

		h.hostname = HOST;
		env.seq = 1;
		env.body_case = VIGIL__ENVELOPE__BODY_HELLO;
		env.hello = &h;
		vigil__reply__free_unpacked(h_link_request(&link, &env), NULL);
	}
	/* Three days ago, 01:00 UTC: one day's partition, which a 2-day retention drops. */
	uint64_t day = (uint64_t)time(NULL) / 86400 - 3;
	double spent = send_all(&link, n, batch, day * DAY_NS + 3600ULL * 1000000000ULL);
	h_link_close(&link);
	printf("storage_bench: %ld events (tests/bench/event_mix.c) in batches of up to %d"
	       " (under 1 MB), one at a time over the link: %.0f events/s stored (send to"
	       " acknowledgement; an ASan build is slower)\n",
	       n, batch, (double)n / spent);

	PGconn *db = h_db(&con);
	/* Retention gives the day its partition (the events waited in the default). */
	double until = now_s() + 60;
	while (sql_num(db, "SELECT count(*) FROM event_chunks_default") > 0 && now_s() < until)
		sleep(1);
	sleep(2); /* the run that moved the last of them vacuums the default after its commit */
	sql_ok(db, "CHECKPOINT");
	long long stored = sql_num(db, "SELECT count(*) FROM events");
	long long chunks = sql_num(db, "SELECT count(*) FROM event_chunks");
	long long now_bytes = sql_num(db, "SELECT (SELECT sum(pg_total_relation_size(relid))"
					  " FROM pg_partition_tree('event_chunks'))"
					  " + pg_total_relation_size('events_legacy')");
	long long raw = sql_num(db, "SELECT sum(octet_length(body::text)) FROM events");
	/* The layout before migration 13 (migrations 3 to 5), filled with the same rows. */
	sql_ok(db, "CREATE TABLE bench_events_v12 (host_id text NOT NULL, seq bigint NOT NULL,"
		   " idx integer NOT NULL, type text NOT NULL, ts timestamptz NOT NULL,"
		   " pid integer NOT NULL, ppid integer NOT NULL, uid bigint NOT NULL,"
		   " comm text NOT NULL, body json NOT NULL)");
	sql_ok(db, "CREATE INDEX ON bench_events_v12 USING brin (ts)");
	sql_ok(db, "INSERT INTO bench_events_v12 SELECT host_id, seq, idx, type, ts, pid, ppid,"
		   " uid, comm, body FROM events ORDER BY seq, idx");
	sql_ok(db, "CHECKPOINT");
	long long old_bytes = sql_num(db, "SELECT pg_total_relation_size('bench_events_v12')");
	if (sql_num(db, "SELECT count(*) FROM bench_events_v12") != stored) {
		fprintf(stderr, "storage_bench: the baseline does not hold the same rows\n");
		return 1;
	}
	printf("stored %lld events in %lld chunk(s)\n", stored, chunks);
	{
		PGresult *r = PQexec(db, "SELECT relid::text, pg_total_relation_size(relid),"
					 " pg_relation_size(relid), (SELECT count(*) FROM"
					 " event_chunks c WHERE c.tableoid = relid)"
					 " FROM pg_partition_tree('event_chunks') WHERE isleaf"
					 " ORDER BY 1");

		for (int i = 0; i < PQntuples(r); i++)
			printf("  %-24s %10s bytes (heap %s), %s chunk(s)\n", PQgetvalue(r, i, 0),
			       PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3));
		PQclear(r);
	}
	printf("  before (one row per event, migrations 3-5): %10lld bytes, %6.1f bytes/event\n",
	       old_bytes, (double)old_bytes / (double)stored);
	printf("  now (chunks, migration 13):                 %10lld bytes, %6.1f bytes/event"
	       "  (%.3f x before)\n",
	       now_bytes, (double)now_bytes / (double)stored,
	       (double)now_bytes / (double)old_bytes);
	printf("  raw JSON bodies:                            %10lld bytes, %6.1f bytes/event"
	       "  (now %.3f x raw)\n",
	       raw, (double)raw / (double)stored, (double)now_bytes / (double)raw);

	/* Reading: a scan of every event's body, through the view and in the old table. */
	double t0 = now_s();
	long long a = sql_num(db, "SELECT count(*) FROM events WHERE type = 'file'"
				  " AND body->>'op' = 'open'");
	double t_new = now_s() - t0;
	t0 = now_s();
	long long b = sql_num(db, "SELECT count(*) FROM bench_events_v12 WHERE type = 'file'"
				  " AND body->>'op' = 'open'");
	double t_old = now_s() - t0;
	printf("reading every body (count of file opens, %lld = %lld): before %.0f ms, now %.0f ms"
	       " (through the events view)\n",
	       a, b, t_old * 1000, t_new * 1000);

	/* Expiring them the old way: DELETE, then the VACUUM that makes the space reusable. */
	t0 = now_s();
	sql_ok(db, "DELETE FROM bench_events_v12");
	double t_delete = now_s() - t0;
	t0 = now_s();
	sql_ok(db, "VACUUM bench_events_v12");
	double t_vacuum = now_s() - t0;
	sql_ok(db, "DROP TABLE bench_events_v12");
	PQfinish(db);

	/* The console's way: a retention run that drops the day. */
	h_console_kill(&con, SIGTERM);
	const char *const keep2[] = {"--events-retention-days", "2", "--retention-interval-s",
				     "3600", NULL};
	h_console_restart(&con, &pki, keep2);
	long long run_ms = -1, dropped = 0;
	until = now_s() + 60;
	while (now_s() < until) {
		json_t *doc = NULL, *run;

		if (h_api_get(&con, &pki, "/api/v1/status", con.token, &doc) == 200) {
			run = json_object_get(
			    json_object_get(json_object_get(doc, "storage"), "retention"),
			    "last_run");
			dropped = json_integer_value(json_object_get(
			    json_object_get(json_object_get(run, "dropped"), "age"), "events"));
			if (dropped > 0)
				run_ms = json_integer_value(json_object_get(run, "ms"));
		}
		json_decref(doc);
		if (run_ms >= 0)
			break;
		usleep(200000);
	}
	printf("expiring the %lld events:\n", stored);
	printf("  before: DELETE %.0f ms, then VACUUM %.0f ms (and the table keeps its size)\n",
	       t_delete * 1000, t_vacuum * 1000);
	printf("  now: a retention run that drops the day's partition: %lld ms (%lld events"
	       " dropped)\n",
	       run_ms, dropped);
	cleanup();
	return run_ms >= 0 ? 0 : 1;
}
