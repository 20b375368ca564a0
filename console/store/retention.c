/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Retention of events (day partitions of event_chunks, dropped whole), of
 * audits, activity and the delivery ledger (bounded deletes): see
 * retention.h for what a run does and why.
 */
#include "store/retention.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "store/store_priv.h"

#define DAY_US 86400000000LL
/* Serializes retention runs between consoles on one database ("VIGR"). */
#define RETENTION_LOCK "1447643986"
/* Days' partitions a run considers at most (a century of days, far past any retention). */
#define PARTITIONS_MAX 40000

struct retention {
	struct store *st;
	struct retention_opts o;
	/* events_legacy: 1 known empty, 0 unknown; its newest event once read (it never grows). */
	int legacy_empty;
	bool legacy_known;
	int64_t legacy_newest_us;
	int64_t legacy_rows;
};

/* A day's partition found in the catalog. */
struct day_part {
	int64_t day; /* days since 1970-01-01 */
	char name[64];
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Floor division: days before 1970 are negative. */
static int64_t day_of_us(int64_t us)
{
	return us >= 0 ? us / DAY_US : -((-us + DAY_US - 1) / DAY_US);
}

static void day_tm(int64_t day, struct tm *tm)
{
	time_t t = (time_t)(day * 86400);

	gmtime_r(&t, tm);
}

/* "event_chunks_YYYYMMDD": the partition of day. */
static void day_name(int64_t day, char out[64])
{
	struct tm tm;

	day_tm(day, &tm);
	snprintf(out, 64, "event_chunks_%04d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday);
}

/* "YYYY-MM-DD". */
static void day_text(int64_t day, char out[48])
{
	struct tm tm;

	day_tm(day, &tm);
	snprintf(out, 48, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

/* "YYYY-MM-DD 00:00:00+00": where day starts, as a timestamptz literal. */
static void day_bound(int64_t day, char out[64])
{
	char d[48];

	day_text(day, d);
	snprintf(out, 64, "%s 00:00:00+00", d);
}

/* The day of a partition named by day_name; false for any other name. */
static bool day_parse(const char *name, int64_t *ret_day)
{
	static const char prefix[] = "event_chunks_";
	int y, m, d;
	char tail;
	struct tm tm = {0};

	if (strncmp(name, prefix, sizeof(prefix) - 1) != 0 || strlen(name) != sizeof(prefix) + 7 ||
	    sscanf(name + sizeof(prefix) - 1, "%4d%2d%2d%c", &y, &m, &d, &tail) != 3 || m < 1 ||
	    m > 12 || d < 1 || d > 31)
		return false;
	tm.tm_year = y - 1900;
	tm.tm_mon = m - 1;
	tm.tm_mday = d;
	*ret_day = day_of_us((int64_t)timegm(&tm) * 1000000);
	return true;
}

static void rollback(struct store *st)
{
	if (PQstatus(st->conn) == CONNECTION_OK && PQtransactionStatus(st->conn) != PQTRANS_IDLE)
		PQclear(PQexec(st->conn, "ROLLBACK"));
}

/*
 * A statement of DDL (constant text built by this file from day numbers).
 * A lock not had within lock_timeout (55P03), or a deadlock (40P01), is
 * -EAGAIN: the caller skips the step and the next run tries again.
 */
static int ddl(struct store *st, const char *what, const char *sql, vigil_err *err)
{
	PGresult *res = PQexec(st->conn, sql);
	const char *state;
	int rc = 0;

	if (PQresultStatus(res) == PGRES_COMMAND_OK) {
		PQclear(res);
		return 0;
	}
	state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	if (PQstatus(st->conn) == CONNECTION_BAD || state == NULL)
		rc = store_err_down(st->conn, what, err);
	else if (strcmp(state, "55P03") == 0 || strcmp(state, "40P01") == 0)
		rc = verr_set(err, -EAGAIN, "%s: its lock was not free (SQLSTATE %s)", what, state);
	else
		rc = store_err_sql(st->conn, res, what, err);
	PQclear(res);
	return rc;
}

/* BEGIN and a lock timeout for what follows in the transaction. */
static int begin(struct retention *r, const char *what, vigil_err *err)
{
	char sql[64];
	int rc;

	if ((rc = store_cmd(r->st, what, "BEGIN", 0, NULL, true, err)) < 0)
		return rc;
	snprintf(sql, sizeof(sql), "SET LOCAL lock_timeout = %d", r->o.lock_timeout_ms);
	if ((rc = store_cmd(r->st, what, sql, 0, NULL, false, err)) < 0)
		rollback(r->st);
	return rc;
}

/* Note a step skipped for its lock (rc -EAGAIN): the next run tries again. */
static void skipped(struct retention_report *rep, const char *what)
{
	if (rep->skipped++ == 0)
		snprintf(rep->skipped_what, sizeof(rep->skipped_what), "%s", what);
}

/* The database's clock: microseconds since 1970 (every console agrees on it). */
static int db_now_us(struct store *st, int64_t *ret_us, vigil_err *err)
{
	PGresult *res = NULL;
	int rc;

	rc = store_exec(st, "reading the database's clock",
			"SELECT (extract(epoch FROM now()) * 1000000)::bigint", 0, NULL,
			PGRES_TUPLES_OK, true, &res, err);
	if (rc == 0)
		*ret_us = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return rc;
}

/* The days' partitions, oldest first (*ret_parts: caller frees). */
static int list_days(struct store *st, struct day_part **ret_parts, size_t *ret_n, vigil_err *err)
{
	static const char sql[] = "SELECT c.relname FROM pg_inherits i JOIN pg_class c"
				  " ON c.oid = i.inhrelid"
				  " WHERE i.inhparent = 'event_chunks'::regclass ORDER BY 1";
	struct day_part *parts = NULL;
	PGresult *res = NULL;
	size_t n = 0;
	int rc, rows;

	rc = store_exec(st, "listing the events' partitions", sql, 0, NULL, PGRES_TUPLES_OK, true,
			&res, err);
	if (rc < 0)
		return rc;
	rows = PQntuples(res);
	if (rows > PARTITIONS_MAX)
		rows = PARTITIONS_MAX;
	parts = calloc((size_t)(rows > 0 ? rows : 1), sizeof(*parts));
	if (parts == NULL) {
		PQclear(res);
		return verr_set(err, -ENOMEM, "listing the events' partitions: out of memory");
	}
	for (int i = 0; i < rows; i++) {
		const char *name = PQgetvalue(res, i, 0);
		int64_t day;

		/* Names sort as days do; others (the default, an operator's own) are left alone. */
		if (!day_parse(name, &day))
			continue;
		parts[n].day = day;
		snprintf(parts[n].name, sizeof(parts[n].name), "%s", name);
		n++;
	}
	PQclear(res);
	*ret_parts = parts;
	*ret_n = n;
	return 0;
}

static bool has_day(const struct day_part *parts, size_t n, int64_t day)
{
	for (size_t i = 0; i < n; i++)
		if (parts[i].day == day)
			return true;
	return false;
}

/*
 * Create day's partition, moving its chunks out of the default partition,
 * in one transaction.  The CHECK constraint lets ATTACH skip scanning the
 * new table; ATTACH still scans the default (small) under its lock.
 * *ret_moved gets the chunks moved.
 */
static int create_day(struct retention *r, int64_t day, int64_t *ret_moved, vigil_err *err)
{
	char name[64], lo[64], hi[64], sql[1024], what[128];
	const char *params[2] = {lo, hi};
	PGresult *res = NULL;
	int rc;

	*ret_moved = 0;
	day_name(day, name);
	day_bound(day, lo);
	day_bound(day + 1, hi);
	snprintf(what, sizeof(what), "creating partition %s", name);
	if ((rc = begin(r, what, err)) < 0)
		return rc;
	snprintf(sql, sizeof(sql),
		 "CREATE TABLE %s (LIKE event_chunks INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
		 " INCLUDING STORAGE INCLUDING COMPRESSION, CONSTRAINT %s_day CHECK"
		 " (ts_first >= '%s' AND ts_first < '%s'))",
		 name, name, lo, hi);
	if ((rc = ddl(r->st, what, sql, err)) < 0)
		goto fail;
	snprintf(sql, sizeof(sql),
		 "WITH moved AS (DELETE FROM event_chunks_default WHERE ts_first >="
		 " $1::timestamptz AND ts_first < $2::timestamptz RETURNING *)"
		 " INSERT INTO %s SELECT * FROM moved",
		 name);
	rc = store_exec(r->st, what, sql, 2, params, PGRES_COMMAND_OK, false, &res, err);
	if (rc < 0)
		goto fail;
	*ret_moved = strtoll(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	snprintf(sql, sizeof(sql),
		 "ALTER TABLE event_chunks ATTACH PARTITION %s FOR VALUES FROM ('%s') TO ('%s')",
		 name, lo, hi);
	if ((rc = ddl(r->st, what, sql, err)) < 0)
		goto fail;
	if ((rc = store_cmd(r->st, what, "COMMIT", 0, NULL, false, err)) < 0)
		goto fail;
	return 0;
fail:
	rollback(r->st);
	*ret_moved = 0;
	return rc;
}

void retention_bytes_text(int64_t bytes, char out[32])
{
	static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)bytes;
	int u = 0;

	while (v >= 1024.0 && u < 4) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(out, 32, "%" PRId64 " bytes", bytes);
	else
		snprintf(out, 32, "%.1f %s", v, units[u]);
}

/* The events_expired audit of a drop, in the drop's transaction.  detail is consumed. */
static int audit_expired(struct store *st, int reason, const char *summary, json_t *detail,
			 vigil_err *err)
{
	static const char sql[] = "INSERT INTO audits (host_id, kind, severity, summary, detail)"
				  " VALUES ('', 'events_expired', $1, $2, $3::jsonb)";
	char *text = detail != NULL ? json_dumps(detail, JSON_COMPACT) : NULL;
	const char *params[3] = {reason == RETENTION_AGE ? "low" : "medium", summary, text};
	int rc;

	json_decref(detail);
	if (text == NULL)
		return verr_set(err, -ENOMEM, "recording expired events: out of memory");
	rc = store_cmd(st, "recording expired events", sql, 3, params, false, err);
	free(text);
	return rc;
}

/* What was dropped, for the audit and the report. */
struct dropped {
	const char *what; /* partition or table */
	char day[48];	  /* "" for the default partition or events_legacy */
	int64_t events, chunks, bytes;
	char from[40], to[40]; /* RFC 3339, "" when unknown */
};

/* Why, in the audit's words: the summary and the detail's reason fields. */
static int audit_drop(struct retention *r, int reason, const struct dropped *d,
		      int64_t total_before, vigil_err *err)
{
	char summary[512], size[32], total[32], ceiling[32], what[96];
	json_t *detail;

	retention_bytes_text(d->bytes, size);
	if (d->day[0] != '\0')
		snprintf(what, sizeof(what), "events of %s", d->day);
	else
		snprintf(what, sizeof(what), "events in %s", d->what);
	if (reason == RETENTION_AGE) {
		snprintf(summary, sizeof(summary),
			 "%s dropped: past the %d-day retention (%" PRId64 " events, %s)", what,
			 r->o.events_days, d->events, size);
	} else {
		retention_bytes_text(total_before, total);
		retention_bytes_text(r->o.events_max_bytes, ceiling);
		snprintf(summary, sizeof(summary),
			 "%s dropped before their retention: events took %s, over the %s ceiling"
			 " (%" PRId64 " events, %s)",
			 what, total, ceiling, d->events, size);
	}
	detail =
	    json_pack("{s:s,s:s,s:I,s:I,s:I}", "reason", reason == RETENTION_AGE ? "age" : "size",
		      "dropped", d->what, "events", (json_int_t)d->events, "chunks",
		      (json_int_t)d->chunks, "bytes", (json_int_t)d->bytes);
	if (detail == NULL)
		return verr_set(err, -ENOMEM, "recording expired events: out of memory");
	json_object_set_new(detail, "day", d->day[0] != '\0' ? json_string(d->day) : json_null());
	json_object_set_new(detail, "from",
			    d->from[0] != '\0' ? json_string(d->from) : json_null());
	json_object_set_new(detail, "to", d->to[0] != '\0' ? json_string(d->to) : json_null());
	if (reason == RETENTION_AGE) {
		json_object_set_new(detail, "retention_days", json_integer(r->o.events_days));
	} else {
		json_object_set_new(detail, "max_bytes", json_integer(r->o.events_max_bytes));
		json_object_set_new(detail, "bytes_before", json_integer(total_before));
	}
	return audit_expired(r->st, reason, summary, detail, err);
}

/* Fill d's counts from a row of (chunks, events, from, to, bytes). */
static void dropped_from(struct dropped *d, const PGresult *res)
{
	d->chunks = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	d->events = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	snprintf(d->from, sizeof(d->from), "%s", PQgetvalue(res, 0, 2));
	snprintf(d->to, sizeof(d->to), "%s", PQgetvalue(res, 0, 3));
	d->bytes = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
}

static void report_drop(struct retention_report *rep, int reason, const struct dropped *d)
{
	rep->events_dropped[reason] += d->events;
	rep->bytes_dropped[reason] += d->bytes;
}

/* Drop day's partition whole, with its audit, in one transaction. */
static int drop_day(struct retention *r, const struct day_part *p, int reason, int64_t total_before,
		    struct retention_report *rep, int64_t *ret_bytes, vigil_err *err)
{
	struct dropped d = {.what = p->name};
	char sql[512], what[128];
	PGresult *res = NULL;
	int rc;

	*ret_bytes = 0;
	day_text(p->day, d.day);
	snprintf(what, sizeof(what), "dropping partition %s", p->name);
	if ((rc = begin(r, what, err)) < 0)
		return rc;
	snprintf(sql, sizeof(sql),
		 "SELECT count(*), coalesce(sum(n), 0), coalesce(" TS_UTC(
		     "min(ts_first)") ", ''),"
				      " coalesce(" TS_UTC(
					  "max(ts_last)") ", ''), pg_total_relation_size('%s')"
							  " FROM %s",
		 p->name, p->name);
	if ((rc = store_exec(r->st, what, sql, 0, NULL, PGRES_TUPLES_OK, false, &res, err)) < 0)
		goto fail;
	dropped_from(&d, res);
	PQclear(res);
	snprintf(sql, sizeof(sql), "DROP TABLE %s", p->name);
	if ((rc = ddl(r->st, what, sql, err)) < 0 ||
	    (rc = audit_drop(r, reason, &d, total_before, err)) < 0 ||
	    (rc = store_cmd(r->st, what, "COMMIT", 0, NULL, false, err)) < 0)
		goto fail;
	rep->partitions_dropped[reason]++;
	report_drop(rep, reason, &d);
	*ret_bytes = d.bytes;
	return 0;
fail:
	rollback(r->st);
	return rc;
}

/*
 * Give the default partition's emptied space back (VACUUM truncates its
 * empty tail), so that what the events take counts no dead chunks.  Its
 * own statement: VACUUM cannot run in a transaction.
 */
static int vacuum_default(struct retention *r, vigil_err *err)
{
	return store_cmd(r->st, "vacuuming the default partition", "VACUUM event_chunks_default", 0,
			 NULL, true, err);
}

/* The default partition's chunks past the retention, deleted with their audit. */
static int expire_default(struct retention *r, struct retention_report *rep, vigil_err *err)
{
	static const char sql[] =
	    "WITH d AS (DELETE FROM event_chunks_default WHERE ts_last <"
	    " now() - make_interval(days => $1::int) RETURNING n, ts_first, ts_last,"
	    " pg_column_size(event_chunks_default.*) AS b)"
	    " SELECT count(*), coalesce(sum(n), 0), coalesce(" TS_UTC(
		"min(ts_first)") ", ''),"
				 " coalesce(" TS_UTC(
				     "max(ts_last)") ", ''), coalesce(sum(b), 0) FROM d";
	struct dropped d = {.what = "event_chunks_default"};
	char days[16];
	const char *params[1] = {days};
	PGresult *res = NULL;
	int rc;

	snprintf(days, sizeof(days), "%d", r->o.events_days);
	if ((rc = begin(r, "expiring the default partition", err)) < 0)
		return rc;
	rc = store_exec(r->st, "expiring the default partition", sql, 1, params, PGRES_TUPLES_OK,
			false, &res, err);
	if (rc < 0)
		goto fail;
	dropped_from(&d, res);
	PQclear(res);
	if (d.chunks > 0 && (rc = audit_drop(r, RETENTION_AGE, &d, 0, err)) < 0)
		goto fail;
	if ((rc = store_cmd(r->st, "expiring the default partition", "COMMIT", 0, NULL, false,
			    err)) < 0)
		goto fail;
	report_drop(rep, RETENTION_AGE, &d);
	return d.chunks > 0 ? vacuum_default(r, err) : 0;
fail:
	rollback(r->st);
	return rc;
}

/* What events_legacy holds: read once (nothing writes to it since migration 13). */
static int legacy_probe(struct retention *r, vigil_err *err)
{
	PGresult *res = NULL;
	int rc;

	if (r->legacy_known)
		return 0;
	rc = store_exec(
	    r->st, "reading events_legacy",
	    "SELECT count(*), coalesce((extract(epoch FROM max(ts)) * 1000000)::bigint, 0)"
	    " FROM (SELECT ts FROM events_legacy) l",
	    0, NULL, PGRES_TUPLES_OK, true, &res, err);
	if (rc < 0)
		return rc;
	r->legacy_rows = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	r->legacy_newest_us = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	r->legacy_empty = r->legacy_rows == 0;
	r->legacy_known = true;
	PQclear(res);
	return 0;
}

/* Empty events_legacy whole (TRUNCATE), with its audit. */
static int drop_legacy(struct retention *r, int reason, int64_t total_before,
		       struct retention_report *rep, int64_t *ret_bytes, vigil_err *err)
{
	struct dropped d = {.what = "events_legacy"};
	PGresult *res = NULL;
	int rc;

	*ret_bytes = 0;
	if ((rc = begin(r, "emptying events_legacy", err)) < 0)
		return rc;
	rc = store_exec(
	    r->st, "emptying events_legacy",
	    "SELECT count(*), count(*), coalesce(" TS_UTC(
		"min(ts)") ", ''),"
			   " coalesce(" TS_UTC("max(ts)") ", ''),"
							  " pg_total_relation_size('events_legacy')"
							  " FROM events_legacy",
	    0, NULL, PGRES_TUPLES_OK, false, &res, err);
	if (rc < 0)
		goto fail;
	dropped_from(&d, res);
	d.chunks = 0;
	PQclear(res);
	if ((rc = ddl(r->st, "emptying events_legacy", "TRUNCATE events_legacy", err)) < 0 ||
	    (rc = audit_drop(r, reason, &d, total_before, err)) < 0 ||
	    (rc = store_cmd(r->st, "emptying events_legacy", "COMMIT", 0, NULL, false, err)) < 0)
		goto fail;
	r->legacy_empty = 1;
	r->legacy_rows = 0;
	rep->legacy_emptied = true;
	report_drop(rep, reason, &d);
	*ret_bytes = d.bytes;
	return 0;
fail:
	rollback(r->st);
	return rc;
}

/* Bytes of every events partition (default included) and of events_legacy. */
static int events_bytes(struct store *st, int64_t *ret_bytes, vigil_err *err)
{
	PGresult *res = NULL;
	int rc;

	rc = store_exec(st, "measuring the events",
			"SELECT (SELECT coalesce(sum(pg_total_relation_size(relid)), 0)"
			" FROM pg_partition_tree('event_chunks'))"
			" + pg_total_relation_size('events_legacy')",
			0, NULL, PGRES_TUPLES_OK, true, &res, err);
	if (rc == 0)
		*ret_bytes = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return rc;
}

/* Step 1, under the caller's lock and with the run's clock. */
static int ensure_days(struct retention *r, int64_t now_us, struct retention_report *rep,
		       vigil_err *err)
{
	int64_t today = day_of_us(now_us), oldest = today - r->o.events_days;
	struct day_part *parts = NULL;
	int64_t *want = NULL;
	PGresult *res = NULL;
	size_t n = 0, nwant = 0;
	int rc, rows;

	if ((rc = list_days(r->st, &parts, &n, err)) < 0)
		return rc;
	/* Days with chunks in the default partition, within the retention. */
	rc = store_exec(r->st, "reading the default partition's days",
			"SELECT DISTINCT floor(extract(epoch FROM ts_first) / 86400)::bigint"
			" FROM event_chunks_default",
			0, NULL, PGRES_TUPLES_OK, true, &res, err);
	if (rc < 0)
		goto out;
	rows = PQntuples(res);
	want = calloc((size_t)rows + (size_t)r->o.ahead_days + 1, sizeof(*want));
	if (want == NULL) {
		rc = verr_set(err, -ENOMEM, "creating the events' partitions: out of memory");
		goto out;
	}
	for (int64_t d = today; d <= today + r->o.ahead_days; d++)
		want[nwant++] = d;
	for (int i = 0; i < rows; i++) {
		int64_t d = strtoll(PQgetvalue(res, i, 0), NULL, 10);

		if (d >= oldest && d < today)
			want[nwant++] = d;
	}
	for (size_t i = 0; i < nwant; i++) {
		int64_t moved;
		char name[64];

		if (has_day(parts, n, want[i]))
			continue;
		day_name(want[i], name);
		rc = create_day(r, want[i], &moved, err);
		if (rc == -EAGAIN) {
			skipped(rep, name);
			rc = 0;
			continue;
		}
		if (rc < 0)
			goto out;
		rep->partitions_created++;
		rep->default_moved += moved;
	}
	if (rep->default_moved > 0)
		rc = vacuum_default(r, err);
out:
	PQclear(res);
	free(parts);
	free(want);
	return rc;
}

/* Step 2: by age. */
static int drop_by_age(struct retention *r, int64_t now_us, struct retention_report *rep,
		       vigil_err *err)
{
	int64_t cutoff_us = now_us - (int64_t)r->o.events_days * DAY_US, bytes;
	struct day_part *parts = NULL;
	size_t n = 0;
	int rc;

	if ((rc = list_days(r->st, &parts, &n, err)) < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		/* The whole day must be past the retention. */
		if ((parts[i].day + 1) * DAY_US > cutoff_us)
			continue;
		rc = drop_day(r, &parts[i], RETENTION_AGE, 0, rep, &bytes, err);
		if (rc == -EAGAIN) {
			skipped(rep, parts[i].name);
			rc = 0;
		}
	}
	free(parts);
	if (rc == 0)
		rc = expire_default(r, rep, err);
	if (rc == -EAGAIN) {
		skipped(rep, "event_chunks_default");
		rc = 0;
	}
	if (rc == 0)
		rc = legacy_probe(r, err);
	if (rc == 0 && !r->legacy_empty && r->legacy_newest_us < cutoff_us) {
		rc = drop_legacy(r, RETENTION_AGE, 0, rep, &bytes, err);
		if (rc == -EAGAIN) {
			skipped(rep, "events_legacy");
			rc = 0;
		}
	}
	return rc;
}

/* Step 3: the size ceiling, oldest first, never today's partition. */
static int drop_by_size(struct retention *r, int64_t now_us, struct retention_report *rep,
			vigil_err *err)
{
	int64_t today = day_of_us(now_us), total = 0, bytes;
	struct day_part *parts = NULL;
	size_t n = 0, next = 0;
	int rc;

	if ((rc = events_bytes(r->st, &total, err)) < 0)
		return rc;
	rep->events_bytes = total;
	if (r->o.events_max_bytes <= 0 || total <= r->o.events_max_bytes)
		return 0;
	if ((rc = legacy_probe(r, err)) < 0)
		return rc;
	if (!r->legacy_empty) {
		rc = drop_legacy(r, RETENTION_SIZE, total, rep, &bytes, err);
		if (rc == -EAGAIN) {
			skipped(rep, "events_legacy");
			rc = 0;
		}
		if (rc < 0)
			return rc;
		if ((rc = events_bytes(r->st, &total, err)) < 0)
			return rc;
	}
	if ((rc = list_days(r->st, &parts, &n, err)) < 0)
		return rc;
	while (total > r->o.events_max_bytes && next < n && parts[next].day < today) {
		rc = drop_day(r, &parts[next], RETENTION_SIZE, total, rep, &bytes, err);
		if (rc == -EAGAIN) {
			skipped(rep, parts[next].name);
			rc = 0;
		}
		if (rc < 0)
			break;
		next++;
		/* Measured again: a drop frees its files at commit. */
		if ((rc = events_bytes(r->st, &total, err)) < 0)
			break;
	}
	free(parts);
	rep->events_bytes = total;
	rep->over_ceiling = rc == 0 && total > r->o.events_max_bytes;
	return rc;
}

/*
 * DELETE sql ($1: days, $2: rows per statement) until it deletes fewer
 * than a batch or the deadline passes; each statement commits on its own.
 */
static int delete_old(struct retention *r, const char *what, const char *sql, int days,
		      int64_t deadline_ms, int64_t *ret_n, bool *ret_unfinished, vigil_err *err)
{
	char d[16], b[16];
	const char *params[2] = {d, b};
	int rc;

	snprintf(d, sizeof(d), "%d", days);
	snprintf(b, sizeof(b), "%d", r->o.delete_batch);
	for (;;) {
		PGresult *res = NULL;
		int64_t n;

		rc = store_exec(r->st, what, sql, 2, params, PGRES_COMMAND_OK, true, &res, err);
		if (rc < 0)
			return rc;
		n = strtoll(PQcmdTuples(res), NULL, 10);
		PQclear(res);
		*ret_n += n;
		if (n < r->o.delete_batch)
			return 0;
		if (mono_ms() >= deadline_ms) {
			*ret_unfinished = true;
			return 0;
		}
	}
}

/* Step 4. */
static int delete_others(struct retention *r, struct retention_report *rep, vigil_err *err)
{
	int64_t deadline = mono_ms() + r->o.delete_budget_ms;
	int rc;

	rc = delete_old(r, "deleting old audits",
			"DELETE FROM audits WHERE id IN (SELECT id FROM audits WHERE ts <"
			" now() - make_interval(days => $1::int) AND (stored_at IS NULL OR"
			" stored_at < now() - make_interval(days => $1::int)) LIMIT $2::int)",
			r->o.audits_days, deadline, &rep->audits_deleted, &rep->deletes_unfinished,
			err);
	if (rc == 0 && !rep->deletes_unfinished)
		rc = delete_old(
		    r, "deleting old activity",
		    "DELETE FROM activity WHERE id IN (SELECT id FROM activity WHERE ts <"
		    " now() - make_interval(days => $1::int) LIMIT $2::int)",
		    r->o.activity_days, deadline, &rep->activity_deleted, &rep->deletes_unfinished,
		    err);
	if (rc == 0 && !rep->deletes_unfinished)
		rc = delete_old(
		    r, "deleting old batches",
		    "DELETE FROM batches WHERE ctid = ANY (ARRAY(SELECT ctid FROM batches"
		    " WHERE received_at < now() - make_interval(days => $1::int)"
		    " LIMIT $2::int))",
		    r->o.audits_days, deadline, &rep->batches_deleted, &rep->deletes_unfinished,
		    err);
	return rc;
}

/* One console at a time: a session advisory lock, tried, never waited for. */
static int run_lock(struct retention *r, bool *ret_got, vigil_err *err)
{
	PGresult *res = NULL;
	int rc;

	rc = store_exec(r->st, "starting retention",
			"SELECT pg_try_advisory_lock(" RETENTION_LOCK ")", 0, NULL, PGRES_TUPLES_OK,
			true, &res, err);
	if (rc == 0)
		*ret_got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return rc;
}

static void run_unlock(struct retention *r)
{
	/* Gone with the session anyway when the connection was lost meanwhile. */
	rollback(r->st);
	if (PQstatus(r->st->conn) == CONNECTION_OK)
		PQclear(PQexec(r->st->conn, "SELECT pg_advisory_unlock(" RETENTION_LOCK ")"));
}

struct retention *retention_new(struct store *st, const struct retention_opts *opts, vigil_err *err)
{
	struct retention *r;
	struct retention_opts o = *opts;

	if (o.ahead_days == 0)
		o.ahead_days = RETENTION_AHEAD_DAYS_DEFAULT;
	if (o.delete_batch == 0)
		o.delete_batch = RETENTION_DELETE_BATCH_DEFAULT;
	if (o.delete_budget_ms == 0)
		o.delete_budget_ms = RETENTION_DELETE_BUDGET_MS;
	if (o.lock_timeout_ms == 0)
		o.lock_timeout_ms = RETENTION_LOCK_TIMEOUT_MS;
	if (st == NULL || o.events_days < 1 || o.events_days > RETENTION_DAYS_MAX ||
	    o.audits_days < 1 || o.audits_days > RETENTION_DAYS_MAX || o.activity_days < 1 ||
	    o.activity_days > RETENTION_DAYS_MAX || o.ahead_days < 0 || o.ahead_days > 31 ||
	    o.events_max_bytes < 0 || o.delete_batch < 1 || o.delete_budget_ms < 1 ||
	    o.lock_timeout_ms < 1) {
		errno = EINVAL;
		verr_set(err, -EINVAL, "a retention setting is out of range");
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		errno = ENOMEM;
		verr_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	r->st = st;
	r->o = o;
	return r;
}

void retention_free(struct retention *r)
{
	free(r);
}

int retention_partitions_ensure(struct retention *r, int *ret_created, vigil_err *err)
{
	struct retention_report rep = {0};
	bool got = false;
	int64_t now_us = 0;
	int rc;

	pthread_mutex_lock(&r->st->lock);
	rc = run_lock(r, &got, err);
	if (rc == 0 && got) {
		rc = db_now_us(r->st, &now_us, err);
		if (rc == 0)
			rc = ensure_days(r, now_us, &rep, err);
		run_unlock(r);
	}
	pthread_mutex_unlock(&r->st->lock);
	if (rc == 0 && ret_created != NULL)
		*ret_created = rep.partitions_created;
	return rc;
}

int retention_run(struct retention *r, struct retention_report *ret_report, vigil_err *err)
{
	int64_t t0 = mono_ms(), now_us = 0;
	bool got = false;
	int rc;

	memset(ret_report, 0, sizeof(*ret_report));
	pthread_mutex_lock(&r->st->lock);
	rc = run_lock(r, &got, err);
	if (rc == 0 && !got)
		ret_report->busy = true;
	if (rc == 0 && got) {
		rc = db_now_us(r->st, &now_us, err);
		if (rc == 0)
			rc = ensure_days(r, now_us, ret_report, err);
		if (rc == 0)
			rc = drop_by_age(r, now_us, ret_report, err);
		if (rc == 0)
			rc = drop_by_size(r, now_us, ret_report, err);
		if (rc == 0)
			rc = delete_others(r, ret_report, err);
		run_unlock(r);
	}
	pthread_mutex_unlock(&r->st->lock);
	ret_report->ms = mono_ms() - t0;
	return rc;
}

int store_events_storage(struct store *st, json_t **ret_storage, vigil_err *err)
{
	struct day_part *parts = NULL;
	PGresult *res = NULL;
	char oldest[48], newest[48];
	json_t *o;
	size_t n = 0;
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "measuring the events",
			"SELECT (SELECT coalesce(sum(pg_total_relation_size(relid)), 0)"
			" FROM pg_partition_tree('event_chunks')),"
			" pg_total_relation_size('event_chunks_default'),"
			" pg_total_relation_size('events_legacy')",
			0, NULL, PGRES_TUPLES_OK, true, &res, err);
	if (rc == 0)
		rc = list_days(st, &parts, &n, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0) {
		PQclear(res);
		return rc;
	}
	int64_t chunks = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	int64_t def = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	int64_t legacy = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	PQclear(res);
	if (n > 0) {
		day_text(parts[0].day, oldest);
		day_text(parts[n - 1].day, newest);
	}
	o = json_pack("{s:I,s:I,s:I,s:I}", "bytes", (json_int_t)(chunks + legacy), "partitions",
		      (json_int_t)n, "default_bytes", (json_int_t)def, "legacy_bytes",
		      (json_int_t)legacy);
	if (o != NULL) {
		json_object_set_new(o, "oldest_day", n > 0 ? json_string(oldest) : json_null());
		json_object_set_new(o, "newest_day", n > 0 ? json_string(newest) : json_null());
	}
	free(parts);
	if (o == NULL)
		return verr_set(err, -ENOMEM, "out of memory");
	*ret_storage = o;
	return 0;
}
