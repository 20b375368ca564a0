/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bulk part of ingest: a batch's events by COPY in binary format and its
 * activity rows by COPY in text format (COPY is far faster than inserts:
 * migration 4's comment).  Nothing of the values is ever SQL.
 *
 * Events go binary because they are the console's bulk: PostgreSQL then
 * reads each field by its length instead of scanning every byte of the
 * line for escapes, and takes integers and times as they are instead of
 * parsing text.  The text fields are still checked by PostgreSQL (UTF-8)
 * exactly as in text format; the bodies, text since migration 17, are
 * checked here as PostgreSQL's json would (common/json_check.h).  They go as
 * chunks (migration 13): one event_chunks row per batch and UTC day, each
 * column an array of the events' values, which PostgreSQL compresses.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json_check.h"
#include "store/store_priv.h"

static const char *const type_names[] = {"unknown", "exec", "fork", "exit", "file", "net"};

/* A growable COPY buffer, flushed to libpq in large pieces. */
struct copybuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void cb_put(struct copybuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 1 << 16;
		while (cap < b->len + n)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (p == NULL) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

/* COPY text format: backslash, tab, newline and carriage return are escaped. */
static void cb_text(struct copybuf *b, const char *s)
{
	size_t run = 0, i = 0;

	for (; s[i] != '\0'; i++) {
		const char *esc = NULL;
		switch (s[i]) {
		case '\\':
			esc = "\\\\";
			break;
		case '\t':
			esc = "\\t";
			break;
		case '\n':
			esc = "\\n";
			break;
		case '\r':
			esc = "\\r";
			break;
		default:
			run++;
			continue;
		}
		cb_put(b, s + i - run, run);
		run = 0;
		cb_put(b, esc, 2);
	}
	cb_put(b, s + i - run, run);
}

/* ts_ns as a timestamptz in COPY text, microseconds, UTC. */
static void cb_ts(struct copybuf *b, uint64_t ts_ns)
{
	char text[64];
	time_t sec = (time_t)(ts_ns / 1000000000ull);
	struct tm tm;

	gmtime_r(&sec, &tm);
	snprintf(text, sizeof(text), "%04d-%02d-%02d %02d:%02d:%02d.%06u+00", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (unsigned)((ts_ns % 1000000000ull) / 1000));
	cb_put(b, text, strlen(text));
}

static const char *type_name(uint32_t type)
{
	return type < 6 ? type_names[type] : "unknown";
}

/* An activity row: host_id, ts, session, username, tty, pid, type, summary, body. */
static void cb_activity_row(struct copybuf *b, const char *host_id, const struct store_event *e)
{
	const struct store_activity *a = e->activity;
	char num[64];

	cb_text(b, host_id);
	cb_put(b, "\t", 1);
	cb_ts(b, e->ts_ns);
	snprintf(num, sizeof(num), "\t%u\t", a->session);
	cb_put(b, num, strlen(num));
	cb_text(b, a->user != NULL ? a->user : "");
	cb_put(b, "\t", 1);
	cb_text(b, a->tty != NULL ? a->tty : "");
	snprintf(num, sizeof(num), "\t%u\t%s\t", e->pid, type_name(e->type));
	cb_put(b, num, strlen(num));
	cb_text(b, a->summary != NULL ? a->summary : "");
	cb_put(b, "\t", 1);
	cb_text(b, e->json != NULL ? e->json : "{}");
	cb_put(b, "\n", 1);
}

/* Run one COPY ... FROM STDIN with the rows in b (freed here). */
static int copy_run(struct store *st, const char *sql, struct copybuf *b, const char *what,
		    vigil_err *err)
{
	PGresult *res;
	int rc = 0;

	if (b->oom) {
		free(b->p);
		return verr_set(err, -ENOMEM, "%s: out of memory", what);
	}
	res = PQexec(st->conn, sql);
	if (PQresultStatus(res) != PGRES_COPY_IN) {
		rc = PQstatus(st->conn) == CONNECTION_BAD ? store_err_down(st->conn, what, err)
							  : store_err_sql(st->conn, res, what, err);
		PQclear(res);
		free(b->p);
		return rc;
	}
	PQclear(res);
	if ((b->len > 0 && PQputCopyData(st->conn, b->p, (int)b->len) != 1) ||
	    PQputCopyEnd(st->conn, NULL) != 1)
		rc = store_err_down(st->conn, what, err);
	free(b->p);
	while ((res = PQgetResult(st->conn)) != NULL) {
		if (rc == 0 && PQresultStatus(res) != PGRES_COMMAND_OK)
			rc = PQstatus(st->conn) == CONNECTION_BAD
				 ? store_err_down(st->conn, what, err)
				 : store_err_sql(st->conn, res, what, err);
		PQclear(res);
	}
	return rc;
}

/* Binary COPY: the signature, flags (no OIDs) and an empty header extension. */
static const char copy_bin_header[] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
#define COPY_BIN_HEADER_LEN (sizeof(copy_bin_header) - 1)
#define CHUNK_FIELDS	    13
/* timestamptz counts microseconds from 2000-01-01 00:00:00 UTC. */
#define PG_EPOCH_UNIX_US 946684800000000LL
#define DAY_US		 86400000000LL
/* Element types of the chunk's arrays (pg_type.oid, fixed since PostgreSQL 7). */
#define OID_INT8	20
#define OID_INT4	23
#define OID_TEXT	25
#define OID_TIMESTAMPTZ 1184

static void cb_i16(struct copybuf *b, int16_t v)
{
	uint16_t be = htobe16((uint16_t)v);
	cb_put(b, (const char *)&be, 2);
}

static void cb_i32(struct copybuf *b, int32_t v)
{
	uint32_t be = htobe32((uint32_t)v);
	cb_put(b, (const char *)&be, 4);
}

/* A field (or an array element): its length, then its bytes. */
static void cb_field_i32(struct copybuf *b, int32_t v)
{
	cb_i32(b, 4);
	cb_i32(b, v);
}

static void cb_field_i64(struct copybuf *b, int64_t v)
{
	uint64_t be = htobe64((uint64_t)v);
	cb_i32(b, 8);
	cb_put(b, (const char *)&be, 8);
}

static void cb_field_text(struct copybuf *b, const char *s)
{
	size_t n = strlen(s);

	/* INGEST_JSON_MAX and the protobuf limits keep every field far below 2 GiB. */
	cb_i32(b, (int32_t)n);
	cb_put(b, s, n);
}

/*
 * A one-dimensional array field without NULLs of n elements of type oid
 * (array_recv's format): the field's length is patched in by
 * cb_array_end, once its elements are written.  Returns where it goes.
 */
static size_t cb_array_begin(struct copybuf *b, uint32_t oid, size_t n)
{
	size_t at = b->len;

	cb_i32(b, 0); /* the field's length, patched */
	cb_i32(b, 1); /* dimensions */
	cb_i32(b, 0); /* flags: no NULLs */
	cb_i32(b, (int32_t)oid);
	cb_i32(b, (int32_t)n); /* elements (at most INGEST_EVENTS_MAX) */
	cb_i32(b, 1);	       /* lower bound */
	return at;
}

static void cb_array_end(struct copybuf *b, size_t at)
{
	uint32_t be;

	if (b->oom)
		return;
	/* One chunk holds at most INGEST_EVENTS_MAX events of INGEST_JSON_MAX: far below 2 GiB. */
	be = htobe32((uint32_t)(b->len - at - 4));
	memcpy(b->p + at, &be, 4);
}

/* An event's time as microseconds since the Unix epoch. */
static int64_t event_us(const struct store_event *e)
{
	return (int64_t)(e->ts_ns / 1000);
}

/* Which UTC day an event falls on: a chunk holds one day, its partition's. */
static int64_t event_day(const struct store_event *e)
{
	return event_us(e) / DAY_US;
}

/* An event kept for the COPY, with the day that decides its chunk. */
struct chunk_slot {
	int64_t day;
	size_t idx;
};

static int slot_cmp(const void *a, const void *b)
{
	const struct chunk_slot *x = a, *y = b;

	if (x->day != y->day)
		return x->day < y->day ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/*
 * One event_chunks row: the events of slots[0..n) (one day, in batch
 * order), each column an array with one element per event.
 */
static void cb_chunk_row(struct copybuf *b, const char *host_id, uint64_t seq,
			 const struct store_event *events, const struct chunk_slot *slots, size_t n)
{
	int64_t first = INT64_MAX, last = INT64_MIN;
	size_t at;

	for (size_t i = 0; i < n; i++) {
		int64_t us = event_us(&events[slots[i].idx]);

		first = us < first ? us : first;
		last = us > last ? us : last;
	}
	cb_i16(b, CHUNK_FIELDS);
	cb_field_text(b, host_id);
	cb_field_i64(b, (int64_t)seq);
	cb_field_i64(b, first - PG_EPOCH_UNIX_US);
	cb_field_i64(b, last - PG_EPOCH_UNIX_US);
	cb_field_i32(b, (int32_t)n);
	at = cb_array_begin(b, OID_INT4, n);
	for (size_t i = 0; i < n; i++)
		cb_field_i32(b, (int32_t)slots[i].idx);
	cb_array_end(b, at);
	at = cb_array_begin(b, OID_TEXT, n);
	for (size_t i = 0; i < n; i++)
		cb_field_text(b, type_name(events[slots[i].idx].type));
	cb_array_end(b, at);
	at = cb_array_begin(b, OID_TIMESTAMPTZ, n);
	for (size_t i = 0; i < n; i++)
		cb_field_i64(b, event_us(&events[slots[i].idx]) - PG_EPOCH_UNIX_US);
	cb_array_end(b, at);
	at = cb_array_begin(b, OID_INT4, n);
	for (size_t i = 0; i < n; i++)
		cb_field_i32(b, (int32_t)events[slots[i].idx].pid);
	cb_array_end(b, at);
	at = cb_array_begin(b, OID_INT4, n);
	for (size_t i = 0; i < n; i++)
		cb_field_i32(b, (int32_t)events[slots[i].idx].ppid);
	cb_array_end(b, at);
	at = cb_array_begin(b, OID_INT8, n);
	for (size_t i = 0; i < n; i++)
		cb_field_i64(b, (int64_t)events[slots[i].idx].uid);
	cb_array_end(b, at);
	at = cb_array_begin(b, OID_TEXT, n);
	for (size_t i = 0; i < n; i++) {
		const char *comm = events[slots[i].idx].comm;

		cb_field_text(b, comm != NULL ? comm : "");
	}
	cb_array_end(b, at);
	at = cb_array_begin(b, OID_TEXT, n);
	for (size_t i = 0; i < n; i++) {
		const char *json = events[slots[i].idx].json;

		cb_field_text(b, json != NULL ? json : "{}");
	}
	cb_array_end(b, at);
}

/*
 * The batch's events (those not in skip) as event_chunks rows, one per UTC
 * day they fall on (nearly always one: a batch spans at most a few
 * seconds).  pid and ppid are integer columns: a value past INT32_MAX is
 * refused here (-EINVAL) as the database would refuse it in text, so that
 * the caller leaves the event out instead of storing it wrapped.
 */
int ingest_copy_events(struct store *st, const char *host_id, uint64_t seq,
		       const struct store_event *events, size_t n, const bool *skip, vigil_err *err)
{
	struct copybuf b = {0};
	struct chunk_slot *slots;
	size_t kept = 0;

	slots = calloc(n > 0 ? n : 1, sizeof(*slots));
	if (slots == NULL)
		return verr_set(err, -ENOMEM, "storing events: out of memory");
	for (size_t i = 0; i < n; i++) {
		if (skip != NULL && skip[i])
			continue;
		if (events[i].pid > INT32_MAX || events[i].ppid > INT32_MAX) {
			free(slots);
			return verr_set(
			    err, -EINVAL,
			    "storing events: event %zu: pid %u or ppid %u is out of range", i,
			    events[i].pid, events[i].ppid);
		}
		/* Stored as text: the check PostgreSQL's json would have made (migration 17). */
		if (events[i].json != NULL &&
		    !json_check_object(events[i].json, strlen(events[i].json))) {
			free(slots);
			return verr_set(err, -EINVAL,
					"storing events: event %zu: its body is not a JSON object",
					i);
		}
		slots[kept].day = event_day(&events[i]);
		slots[kept++].idx = i;
	}
	/* Events of one day together, in batch order within it. */
	qsort(slots, kept, sizeof(*slots), slot_cmp);
	cb_put(&b, copy_bin_header, COPY_BIN_HEADER_LEN);
	for (size_t i = 0, j; i < kept; i = j) {
		for (j = i + 1; j < kept && slots[j].day == slots[i].day; j++)
			;
		cb_chunk_row(&b, host_id, seq, events, slots + i, j - i);
	}
	cb_i16(&b, -1);
	free(slots);
	return copy_run(
	    st,
	    "COPY event_chunks (host_id, seq, ts_first, ts_last, n, e_idx, e_type, e_ts,"
	    " e_pid, e_ppid, e_uid, e_comm, e_text) FROM STDIN (FORMAT binary)",
	    &b, "storing events", err);
}

/*
 * The activity rows of the events kept (skip), each checked first: a bad
 * activity is left out (listed in p), its event is kept.
 */
int ingest_copy_activity(struct store *st, const char *host_id, const struct store_event *events,
			 size_t n, const bool *skip, struct ingest_problems *p, size_t *ret_n,
			 vigil_err *err)
{
	struct copybuf b = {0};
	size_t rows = 0;
	int rc;

	for (size_t i = 0; i < n; i++) {
		if (events[i].activity == NULL || (skip != NULL && skip[i]) ||
		    !learning_activity_ok(events[i].activity, i, p))
			continue;
		cb_activity_row(&b, host_id, &events[i]);
		rows++;
	}
	if (rows == 0) {
		free(b.p);
		return 0;
	}
	rc =
	    copy_run(st,
		     "COPY activity (host_id, ts, session, username, tty, pid, type, summary, body)"
		     " FROM STDIN",
		     &b, "storing activity", err);
	if (rc == 0)
		*ret_n = rows;
	return rc;
}
