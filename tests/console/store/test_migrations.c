/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Versioned migrations against a real PostgreSQL.
 *
 * The fixture is storefixture.h's, as in test_store.c: initdb once per
 * program in PRE_ALL, each test starts its own server on that data directory
 * with an empty schema public.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "store/migrations.h"
#include "pg/pgembed.h"
#include "pgfixture.h"
#include "store/store.h"
#include "storefixture.h"

/* Set by the PRE_ALL hook for the test processes (criterion re-executes them). */
#define START_MS 20000

/* A quote and a backslash in the path: quoting must hold all the way to initdb. */
const char pgfix_state_name[] = "it's a \\state dir";

/* The shared state directory, once this test holds the cluster's lock. */
static const char *shared_state(void)
{
	return pgfix_state(&fx.lock_fd);
}

/*
 * The schema as text: every column and every index of schema public, ordered,
 * so two dumps compare byte for byte.  Caller frees.
 */
static char *schema_dump(void)
{
	static const char *const queries[] = {
	    "SELECT table_name, column_name, ordinal_position::text, data_type, is_nullable,"
	    " coalesce(column_default, '<none>') FROM information_schema.columns"
	    " WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
	    "SELECT tablename, indexname, indexdef FROM pg_indexes"
	    " WHERE schemaname = 'public' ORDER BY tablename, indexname",
	};
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	cr_assert_not_null(out);
	for (size_t q = 0; q < sizeof(queries) / sizeof(queries[0]); q++) {
		PGresult *res = storefix_exec(queries[q], 0, NULL);

		for (int r = 0; r < PQntuples(res); r++) {
			for (int c = 0; c < PQnfields(res); c++)
				fprintf(out, "%s%s", c > 0 ? "|" : "", PQgetvalue(res, r, c));
			fputc('\n', out);
		}
		fputs("--\n", out);
		PQclear(res);
	}
	fclose(out);
	return buf;
}

TestSuite(migrations, .init = storefix_setup_empty, .fini = storefix_teardown, .timeout = 60);

Test(migrations, compiled_in_versions_are_contiguous)
{
	const struct migration *ms;
	size_t n;

	ms = migrations_get(&n);
	cr_assert_gt(n, 0);
	for (size_t i = 0; i < n; i++) {
		cr_expect_eq(ms[i].version, (int)i + 1, "migration %zu has version %d", i,
			     ms[i].version);
		cr_expect(ms[i].name != NULL && ms[i].name[0] != '\0');
		cr_expect(ms[i].sql != NULL && ms[i].sql[0] != '\0');
		/* store_migrate owns the transaction. */
		cr_expect_null(strcasestr(ms[i].sql, "COMMIT"), "migration %d commits",
			       ms[i].version);
	}
	cr_expect_eq(store_schema_version_latest(), ms[n - 1].version);
	cr_expect_eq(migrations_latest(), ms[n - 1].version);
}

Test(migrations, applied_once_then_nothing_changes)
{
	const struct migration *ms;
	vigil_err err = {0};
	char *before, *after;
	PGresult *res;
	size_t n;
	int applied = -1;

	ms = migrations_get(&n);
	fx.st = store_open(pgembed_dsn(fx.pg), &err);
	cr_assert_not_null(fx.st, "%s", err.msg);
	cr_assert_eq(store_migrate(fx.st, &applied, &err), 0, "%s", err.msg);
	cr_expect_eq(applied, (int)n);
	before = schema_dump();
	cr_expect_not_null(strstr(before, "hosts|host_id|1|text|NO"), "%s", before);

	applied = -1;
	cr_assert_eq(store_migrate(fx.st, &applied, &err), 0, "%s", err.msg);
	cr_expect_eq(applied, 0);
	/* A console opening its own connection sees the same. */
	store_close(fx.st);
	fx.st = store_open(pgembed_dsn(fx.pg), &err);
	cr_assert_not_null(fx.st, "%s", err.msg);
	applied = -1;
	cr_assert_eq(store_migrate(fx.st, NULL, &err), 0, "%s", err.msg);
	cr_assert_eq(store_migrate(fx.st, &applied, &err), 0, "%s", err.msg);
	cr_expect_eq(applied, 0);
	after = schema_dump();
	cr_expect_str_eq(after, before);

	res = storefix_exec("SELECT version, name, applied_at IS NOT NULL FROM schema_migrations"
			    " ORDER BY version",
			    0, NULL);
	cr_assert_eq(PQntuples(res), (int)n);
	for (int i = 0; i < (int)n; i++) {
		cr_expect_eq(atoi(PQgetvalue(res, i, 0)), ms[i].version);
		cr_expect_str_eq(PQgetvalue(res, i, 1), ms[i].name);
		cr_expect_str_eq(PQgetvalue(res, i, 2), "t");
	}
	PQclear(res);
	free(before);
	free(after);
}

Test(migrations, hosts_table_has_the_documented_shape)
{
	static const char *const want[] = {
	    "host_id|text|NO|<none>",
	    "hostname|text|NO|<none>",
	    "kernel|text|NO|''::text",
	    "os|text|NO|''::text",
	    "defender_version|text|NO|''::text",
	    "bpf_status|text|NO|''::text",
	    "labels|jsonb|NO|'{}'::jsonb",
	    "exec_count|bigint|NO|0",
	    "first_seen|timestamp with time zone|NO|now()",
	    "last_seen|timestamp with time zone|NO|now()",
	    "connected|boolean|NO|false",
	    "disconnected_at|timestamp with time zone|YES|<none>",
	    "capture|jsonb|NO|'{}'::jsonb",
	    "rules_protocol|integer|NO|0",
	    "rules_version|bigint|YES|<none>",
	    "rules_acked_at|timestamp with time zone|YES|<none>",
	    "rules_refused_version|bigint|YES|<none>",
	    "rules_refused_reason|text|YES|<none>",
	    "rules_refused_by|text|YES|<none>",
	    "enforce_backends|jsonb|YES|<none>",
	    "rule_shortfalls|jsonb|YES|<none>",
	    "rules_report_problem|text|YES|<none>",
	};
	vigil_err err = {0};
	PGresult *res;
	char row[256];

	fx.st = store_open(pgembed_dsn(fx.pg), &err);
	cr_assert_not_null(fx.st, "%s", err.msg);
	cr_assert_eq(store_migrate(fx.st, NULL, &err), 0, "%s", err.msg);
	res = storefix_exec("SELECT column_name, data_type, is_nullable,"
			    " coalesce(column_default, '<none>') FROM information_schema.columns"
			    " WHERE table_schema = 'public' AND table_name = 'hosts'"
			    " ORDER BY ordinal_position",
			    0, NULL);
	cr_assert_eq(PQntuples(res), (int)(sizeof(want) / sizeof(want[0])));
	for (int i = 0; i < PQntuples(res); i++) {
		snprintf(row, sizeof(row), "%s|%s|%s|%s", PQgetvalue(res, i, 0),
			 PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3));
		cr_expect_str_eq(row, want[i]);
	}
	PQclear(res);

	res = storefix_exec("SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'"
			    " AND tablename = 'hosts' AND indexdef LIKE '%(connected, last_seen)'",
			    0, NULL);
	cr_expect_eq(PQntuples(res), 1, "no index on hosts (connected, last_seen)");
	PQclear(res);
	res = storefix_exec("SELECT 1 FROM pg_indexes WHERE schemaname = 'public'"
			    " AND tablename = 'hosts' AND indexdef LIKE '%UNIQUE%(host_id)'",
			    0, NULL);
	cr_expect_eq(PQntuples(res), 1, "host_id is not the primary key");
	PQclear(res);
}

/* The first k compiled-in migrations applied and recorded by hand, as a console of then would. */
static void apply_first(const struct migration *ms, size_t k)
{
	PQclear(storefix_exec(migrations_bootstrap_sql, 0, NULL));
	for (size_t i = 0; i < k; i++) {
		char v[16];
		const char *params[2] = {v, ms[i].name};
		PGresult *res = PQexec(fx.sql, ms[i].sql);

		cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "migration %d: %s",
			     ms[i].version, PQresultErrorMessage(res));
		PQclear(res);
		snprintf(v, sizeof(v), "%d", ms[i].version);
		PQclear(storefix_exec(
		    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2, params));
	}
}

/*
 * Migration 10 on a database that holds audits: the deviations stored
 * before were all alerted (effect backfilled), other audits get no effect,
 * and the filters' indexes are there.
 */
Test(migrations, rule_effects_backfill_the_deviations_stored_before)
{
	const struct migration *ms;
	vigil_err err = {0};
	PGresult *res;
	size_t n;
	int applied = -1;

	ms = migrations_get(&n);
	cr_assert_geq(n, 10);
	apply_first(ms, 9);
	PQclear(storefix_exec("INSERT INTO audits (host_id, kind, severity, summary, service, exe)"
			      " VALUES ('h', 'new_program', 'high', 'a', 'svc', '/x'),"
			      " ('h', 'rewritten_argument', 'high', 'b', 'svc', '/x'),"
			      " ('h', 'delivery_gap', 'high', 'c', NULL, NULL)",
			      0, NULL));
	fx.st = store_open(pgembed_dsn(fx.pg), &err);
	cr_assert_not_null(fx.st, "%s", err.msg);
	cr_assert_eq(store_migrate(fx.st, &applied, &err), 0, "%s", err.msg);
	cr_expect_eq(applied, (int)n - 9);
	res = storefix_exec("SELECT string_agg(kind || '=' || coalesce(effect, 'null') || '/' ||"
			    " coalesce(rule, 'null'), ',' ORDER BY id) FROM audits",
			    0, NULL);
	cr_expect_str_eq(
	    PQgetvalue(res, 0, 0),
	    "new_program=alert/null,rewritten_argument=alert/null,delivery_gap=null/null");
	PQclear(res);
	res = storefix_exec("SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes"
			    " WHERE tablename = 'audits' AND indexname IN ('audits_rule_id_idx',"
			    " 'audits_effect_id_idx')",
			    0, NULL);
	cr_expect_str_eq(PQgetvalue(res, 0, 0), "audits_effect_id_idx,audits_rule_id_idx");
	PQclear(res);
	/* Only the three effects: anything else is a bug the database refuses too. */
	res = PQexec(fx.sql, "UPDATE audits SET effect = 'kill'");
	cr_expect_eq(PQresultStatus(res), PGRES_FATAL_ERROR);
	PQclear(res);
}

/* One text of sql's single value (a new string). */
static char *sql_text(const char *sql)
{
	PGresult *res = storefix_exec(sql, 0, NULL);
	char *v = strdup(PQgetvalue(res, 0, 0));

	PQclear(res);
	return v;
}

/*
 * Migration 13 on a database that holds events: every row is kept (the old
 * table renamed events_legacy, not copied) and read through the events view
 * as before; events stored after it go into the partitioned chunks and read
 * back the same way, also when inserted through the view.
 */
Test(migrations, events_stored_before_13_are_kept_and_read_through_the_view)
{
	static const char rows[] =
	    "SELECT string_agg(concat_ws('|', host_id, seq, idx, type, ts, pid, ppid, uid, comm,"
	    " body::text), ',' ORDER BY host_id, seq, idx) FROM events";
	const struct migration *ms;
	vigil_err err = {0};
	PGresult *res;
	size_t n;
	int applied = -1;

	ms = migrations_get(&n);
	cr_assert_geq(n, 13);
	PQclear(storefix_exec("SET TimeZone = 'UTC'", 0, NULL));
	apply_first(ms, 12);
	PQclear(
	    storefix_exec("INSERT INTO events (host_id, seq, idx, type, ts, pid, ppid, uid, comm,"
			  " body) VALUES ('h', 1, 0, 'exec', '2026-11-01 10:00:00+00', 10, 1, 0,"
			  " 'sh', '{\"a\": 1}'), ('h', 1, 1, 'file', '2026-11-01 10:00:01+00', 10,"
			  " 1, 0, 'sh', '{\"path\":\"/x\"}'), ('g', 7, 0, 'net',"
			  " '2026-11-02 00:00:00+00', 11, 1, 1000, 'curl', '{}')",
			  0, NULL));
	char *before = sql_text(rows);

	fx.st = store_open(pgembed_dsn(fx.pg), &err);
	cr_assert_not_null(fx.st, "%s", err.msg);
	cr_assert_eq(store_migrate(fx.st, &applied, &err), 0, "%s", err.msg);
	cr_expect_eq(applied, (int)n - 12);
	char *after = sql_text(rows);
	cr_expect_str_eq(after, before, "the events read otherwise after migration 13");
	free(after);
	res = storefix_exec("SELECT (SELECT count(*) FROM events_legacy),"
			    " (SELECT relkind FROM pg_class WHERE relname = 'event_chunks'),"
			    " (SELECT count(*) FROM pg_inherits WHERE inhparent ="
			    " 'event_chunks'::regclass)",
			    0, NULL);
	cr_expect_str_eq(PQgetvalue(res, 0, 0), "3");
	cr_expect_str_eq(PQgetvalue(res, 0, 1), "p", "event_chunks is not partitioned");
	cr_expect_str_eq(PQgetvalue(res, 0, 2), "1", "only the default partition at first");
	PQclear(res);

	/* Inserted through the view: a chunk of one event, read back like the others. */
	PQclear(
	    storefix_exec("INSERT INTO events (host_id, seq, idx, type, ts, pid, ppid, uid, comm,"
			  " body) VALUES ('h', 2, 0, 'exit', '2026-12-01 00:00:00+00', 12, 1, 0,"
			  " 'sh', '{\"exit_code\": 0}')",
			  0, NULL));
	cr_expect_str_eq(sql_text("SELECT count(*) || '/' || sum(n) FROM event_chunks"), "1/1");
	after = sql_text(rows);
	cr_expect(strstr(after, "h|2|0|exit|2026-12-01 00:00:00+00|12|1|0|sh|{\"exit_code\": 0}") !=
		      NULL,
		  "%s", after);
	cr_expect_eq(strlen(after), strlen(before) + 1 +
					strlen("h|2|0|exit|2026-12-01 00:00:00+00|12|"
					       "1|0|sh|{\"exit_code\": 0}"));
	/* Every column is required, as it was in the table. */
	res = PQexec(fx.sql, "INSERT INTO events (host_id, seq, idx, type, ts, pid, ppid, uid,"
			     " comm, body) VALUES ('h', 3, 0, 'exit', now(), 1, 1, 0, NULL, '{}')");
	cr_expect_eq(PQresultStatus(res), PGRES_FATAL_ERROR);
	cr_expect_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "23502");
	PQclear(res);
	free(before);
	free(after);
}

/* Chunks written before 17 keep json bodies, those after hold text: the view reads both alike. */
Test(migrations, event_bodies_before_and_after_17_read_alike_through_the_view)
{
	static const char rows[] =
	    "SELECT string_agg(concat_ws('|', seq, idx, type, body->>'k', pg_typeof(body)), ','"
	    " ORDER BY seq, idx) FROM events";
	const struct migration *ms;
	vigil_err err = {0};
	size_t n;
	int applied = -1;

	ms = migrations_get(&n);
	cr_assert_geq(n, 17);
	apply_first(ms, 16);
	PQclear(storefix_exec("INSERT INTO event_chunks (host_id, seq, ts_first, ts_last, n, e_idx,"
			      " e_type, e_ts, e_pid, e_ppid, e_uid, e_comm, e_body) VALUES ('h', 1,"
			      " '2026-11-01', '2026-11-01', 2, '{0,1}', '{exec,file}',"
			      " '{2026-11-01,2026-11-01}', '{1,2}', '{0,1}', '{0,0}', '{a,b}',"
			      " ARRAY['{\"k\": \"old0\"}', '{\"k\": \"old1\"}']::json[])",
			      0, NULL));
	fx.st = store_open(pgembed_dsn(fx.pg), &err);
	cr_assert_not_null(fx.st, "%s", err.msg);
	cr_assert_eq(store_migrate(fx.st, &applied, &err), 0, "%s", err.msg);
	cr_expect_eq(applied, (int)n - 16);
	PQclear(storefix_exec("INSERT INTO event_chunks (host_id, seq, ts_first, ts_last, n, e_idx,"
			      " e_type, e_ts, e_pid, e_ppid, e_uid, e_comm, e_text) VALUES ('h', 2,"
			      " '2026-11-01', '2026-11-01', 2, '{0,1}', '{exec,file}',"
			      " '{2026-11-01,2026-11-01}', '{1,2}', '{0,1}', '{0,0}', '{a,b}',"
			      " ARRAY['{\"k\": \"new0\"}', '{\"k\": \"new1\"}'])",
			      0, NULL));
	char *got = sql_text(rows);
	cr_expect_str_eq(
	    got, "1|0|exec|old0|json,1|1|file|old1|json,2|0|exec|new0|json,2|1|file|new1|json");
	free(got);
	/* A query that reads no body never casts one: a chunk's other columns stand alone. */
	got = sql_text("SELECT count(*) FROM events WHERE type = 'exec'");
	cr_expect_str_eq(got, "2");
	free(got);
}

struct racer {
	const char *dsn;
	int rc;
	int applied;
	char msg[512];
};

static void *migrate_racer(void *arg)
{
	struct racer *r = arg;
	vigil_err err = {0};
	struct store *st = store_open(r->dsn, &err);

	r->rc = st != NULL ? store_migrate(st, &r->applied, &err) : -errno;
	snprintf(r->msg, sizeof(r->msg), "%s", err.msg);
	store_close(st);
	return NULL;
}

/* Consoles starting together: the advisory lock lets exactly one apply each migration. */
Test(migrations, concurrent_consoles_apply_each_version_once)
{
	enum { RACERS = 4 };
	struct racer r[RACERS];
	pthread_t t[RACERS];
	size_t n;
	int total = 0;
	PGresult *res;

	migrations_get(&n);
	for (int i = 0; i < RACERS; i++) {
		r[i] = (struct racer){.dsn = pgembed_dsn(fx.pg), .applied = -1};
		cr_assert_eq(pthread_create(&t[i], NULL, migrate_racer, &r[i]), 0);
	}
	for (int i = 0; i < RACERS; i++) {
		pthread_join(t[i], NULL);
		cr_expect_eq(r[i].rc, 0, "racer %d: %s", i, r[i].msg);
		total += r[i].applied;
	}
	cr_expect_eq(total, (int)n);
	res = storefix_exec("SELECT count(*) FROM schema_migrations", 0, NULL);
	cr_expect_eq(atoi(PQgetvalue(res, 0, 0)), (int)n);
	PQclear(res);
}

/*
 * A migration that fails leaves no trace (no row, no half schema), the store
 * stays usable, and the next run applies it once the obstacle is gone.
 */
Test(migrations, failed_migration_rolls_back)
{
	vigil_err err = {0};
	json_t *hosts = NULL;
	PGresult *res;
	int applied = -1, rc;

	PQclear(storefix_exec("CREATE TABLE hosts (squatter int)", 0, NULL));
	fx.st = store_open(pgembed_dsn(fx.pg), &err);
	cr_assert_not_null(fx.st, "%s", err.msg);
	rc = store_migrate(fx.st, &applied, &err);
	cr_expect_lt(rc, 0);
	cr_expect_eq(applied, -1);
	cr_expect_not_null(strstr(err.msg, "migration 1 (hosts)"), "%s", err.msg);
	res = storefix_exec("SELECT count(*) FROM schema_migrations", 0, NULL);
	cr_expect_str_eq(PQgetvalue(res, 0, 0), "0");
	PQclear(res);
	res = storefix_exec(
	    "SELECT 1 FROM pg_indexes WHERE indexname = 'hosts_connected_last_seen_idx'", 0, NULL);
	cr_expect_eq(PQntuples(res), 0);
	PQclear(res);

	/* Not stuck in an aborted transaction: the next statement gets a real answer. */
	rc = store_hosts_list(fx.st, &hosts, &err);
	cr_expect_eq(rc, -EIO, "%d: %s", rc, err.msg);
	cr_expect_null(strstr(err.msg, "aborted"), "%s", err.msg);

	PQclear(storefix_exec("DROP TABLE hosts", 0, NULL));
	cr_assert_eq(store_migrate(fx.st, &applied, &err), 0, "%s", err.msg);
	cr_expect_eq(applied, store_schema_version_latest());
	cr_assert_eq(store_hosts_list(fx.st, &hosts, &err), 0, "%s", err.msg);
	cr_expect_eq(json_array_size(hosts), 0);
	json_decref(hosts);
}

Test(migrations, unreachable_database_is_reported)
{
	vigil_err err = {0};
	int rc, applied = -1;

	fx.st = store_open(pgembed_dsn(fx.pg), &err);
	cr_assert_not_null(fx.st, "%s", err.msg);
	PQfinish(fx.sql);
	fx.sql = NULL;
	pgembed_stop(fx.pg);
	fx.pg = NULL;
	rc = store_migrate(fx.st, NULL, &err);
	cr_expect_eq(rc, -ECONNRESET, "%d: %s", rc, err.msg);
	cr_expect_not_null(strstr(err.msg, "database vigil"), "%s", err.msg);

	/* Back up: the same store reconnects and migrates. */
	fx.pg = pgembed_start(shared_state(), START_MS, &err);
	cr_assert_not_null(fx.pg, "%s", err.msg);
	cr_assert_eq(store_migrate(fx.st, &applied, &err), 0, "%s", err.msg);
	cr_expect_eq(applied, store_schema_version_latest());
}

/* A server restarted between two calls costs the migration nothing. */
Test(migrations, restart_between_calls_is_transparent)
{
	vigil_err err = {0};
	int applied = -1;

	fx.st = store_open(pgembed_dsn(fx.pg), &err);
	cr_assert_not_null(fx.st, "%s", err.msg);
	PQfinish(fx.sql);
	fx.sql = NULL;
	pgembed_stop(fx.pg);
	fx.pg = pgembed_start(shared_state(), START_MS, &err);
	cr_assert_not_null(fx.pg, "%s", err.msg);
	cr_assert_eq(store_migrate(fx.st, &applied, &err), 0, "%s", err.msg);
	cr_expect_eq(applied, store_schema_version_latest());
}
