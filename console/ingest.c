/* SPDX-License-Identifier: Apache-2.0 */
#include "ingest.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_priv.h"

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
		case '\\': esc = "\\\\"; break;
		case '\t': esc = "\\t"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		default: run++; continue;
		}
		cb_put(b, s + i - run, run);
		run = 0;
		cb_put(b, esc, 2);
	}
	cb_put(b, s + i - run, run);
}

static void cb_row(struct copybuf *b, const char *host_id, uint64_t seq, size_t idx,
		   const struct store_event *e)
{
	char num[160];
	time_t sec = (time_t)(e->ts_ns / 1000000000ull);
	struct tm tm;

	cb_text(b, host_id);
	snprintf(num, sizeof(num), "\t%" PRIu64 "\t%zu\t%s\t", seq, idx,
		 e->type < 6 ? type_names[e->type] : "unknown");
	cb_put(b, num, strlen(num));
	gmtime_r(&sec, &tm);
	snprintf(num, sizeof(num), "%04d-%02d-%02d %02d:%02d:%02d.%06u+00\t%u\t%u\t%u\t",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (unsigned)((e->ts_ns % 1000000000ull) / 1000), e->pid, e->ppid, e->uid);
	cb_put(b, num, strlen(num));
	cb_text(b, e->comm != NULL ? e->comm : "");
	cb_put(b, "\t", 1);
	cb_text(b, e->json != NULL ? e->json : "{}");
	cb_put(b, "\n", 1);
}

/* Whether the database will take this event: valid JSON object, UTF-8 comm. */
static bool event_acceptable(const struct store_event *e)
{
	json_error_t jerr;
	json_t *doc;

	if (e->json == NULL || strlen(e->json) > INGEST_JSON_MAX)
		return false;
	/* jansson checks UTF-8 as it parses; comm must be UTF-8 as well. */
	doc = json_loads(e->json, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(doc)) {
		json_decref(doc);
		return false;
	}
	json_decref(doc);
	json_t *c = json_string(e->comm != NULL ? e->comm : "");
	if (c == NULL)
		return false;
	json_decref(c);
	return true;
}

static int copy_events(struct store *st, const char *host_id, uint64_t seq,
		       const struct store_event *events, size_t n, const bool *skip,
		       vigil_err *err)
{
	struct copybuf b = {0};
	PGresult *res;
	int rc = 0;

	for (size_t i = 0; i < n; i++)
		if (skip == NULL || !skip[i])
			cb_row(&b, host_id, seq, i, &events[i]);
	if (b.oom) {
		free(b.p);
		return verr_set(err, -ENOMEM, "out of memory building a batch of %zu events", n);
	}
	res = PQexec(st->conn, "COPY events (host_id, seq, idx, type, ts, pid, ppid, uid, comm,"
			       " body) FROM STDIN");
	if (PQresultStatus(res) != PGRES_COPY_IN) {
		rc = PQstatus(st->conn) == CONNECTION_BAD
			     ? store_err_down(st->conn, "storing events", err)
			     : store_err_sql(st->conn, res, "storing events", err);
		PQclear(res);
		free(b.p);
		return rc;
	}
	PQclear(res);
	if ((b.len > 0 && PQputCopyData(st->conn, b.p, (int)b.len) != 1) ||
	    PQputCopyEnd(st->conn, NULL) != 1)
		rc = store_err_down(st->conn, "storing events", err);
	free(b.p);
	while ((res = PQgetResult(st->conn)) != NULL) {
		if (rc == 0 && PQresultStatus(res) != PGRES_COMMAND_OK)
			rc = PQstatus(st->conn) == CONNECTION_BAD
				     ? store_err_down(st->conn, "storing events", err)
				     : store_err_sql(st->conn, res, "storing events", err);
		PQclear(res);
	}
	return rc;
}

static int add_audit(struct store *st, const char *host_id, const char *kind, const char *severity,
		     const char *summary, json_t *detail, vigil_err *err)
{
	static const char sql[] = "INSERT INTO audits (host_id, kind, severity, summary, detail)"
				  " VALUES ($1, $2, $3, $4, $5::jsonb)";
	char *text = json_dumps(detail, JSON_COMPACT);
	const char *params[5] = {host_id, kind, severity, summary, text};
	int rc;

	json_decref(detail);
	if (text == NULL)
		return verr_set(err, -ENOMEM, "out of memory");
	rc = store_cmd(st, "recording an audit", sql, 5, params, false, err);
	free(text);
	return rc;
}

/*
 * Record gap reports, each (host, range, reason) once however often the
 * defender repeats it.  Caller holds the lock.
 */
static int store_gaps(struct store *st, const char *host_id, const struct store_gap *gaps,
		      size_t ngaps, vigil_err *err)
{
	static const char sql[] =
	    "INSERT INTO audits (host_id, kind, severity, summary, detail)"
	    " SELECT $1, 'delivery_gap', 'high', $2, jsonb_build_object('first_seq', $3::bigint,"
	    " 'last_seq', $4::bigint, 'count', $5::bigint, 'reason', $6::text)"
	    " WHERE NOT EXISTS (SELECT 1 FROM audits WHERE host_id = $1 AND kind = 'delivery_gap'"
	    " AND (detail->>'first_seq')::bigint = $3::bigint"
	    " AND (detail->>'last_seq')::bigint = $4::bigint AND detail->>'reason' = $6::text)";
	int rc = 0;

	for (size_t i = 0; i < ngaps && rc == 0; i++) {
		const struct store_gap *g = &gaps[i];
		char summary[256], first[24], last[24], count[24];
		const char *reason = g->reason ? g->reason : "unknown";
		const char *params[6] = {host_id, summary, first, last, count, reason};

		snprintf(summary, sizeof(summary),
			 "defender dropped %" PRIu64 " batch(es), seq %" PRIu64 "..%" PRIu64
			 " (%s): events in them are lost",
			 g->count, g->first_seq, g->last_seq, reason);
		snprintf(first, sizeof(first), "%" PRIu64, g->first_seq);
		snprintf(last, sizeof(last), "%" PRIu64, g->last_seq);
		snprintf(count, sizeof(count), "%" PRIu64, g->count);
		rc = store_cmd(st, "recording a delivery gap", sql, 6, params, true, err);
	}
	return rc;
}

/* One attempt at the whole transaction; skip marks events to leave out. */
static int ingest_once(struct store *st, const char *host_id, uint64_t seq,
		       const struct store_event *events, size_t n, const struct store_gap *gaps,
		       size_t ngaps, const bool *skip, size_t nskipped, struct ingest_result *res,
		       vigil_err *err)
{
	static const char claim[] = "INSERT INTO batches (host_id, seq, n_events) VALUES ($1,"
				    " $2::bigint, $3::integer) ON CONFLICT DO NOTHING RETURNING 1";
	char seqtext[24], ntext[24];
	const char *params[3] = {host_id, seqtext, ntext};
	PGresult *r = NULL;
	int rc;

	snprintf(seqtext, sizeof(seqtext), "%" PRIu64, seq);
	snprintf(ntext, sizeof(ntext), "%zu", n - nskipped);
	if ((rc = store_cmd(st, "starting a batch", "BEGIN", 0, NULL, true, err)) < 0)
		return rc;
	rc = store_exec(st, "claiming a batch", claim, 3, params, PGRES_TUPLES_OK, false, &r, err);
	if (rc < 0)
		goto rollback;
	if (PQntuples(r) == 0) {
		/* Committed before: a resend.  Acknowledge without writing twice. */
		PQclear(r);
		res->duplicate = 1;
		return store_cmd(st, "finishing a batch", "COMMIT", 0, NULL, false, err);
	}
	PQclear(r);
	if (n > nskipped && (rc = copy_events(st, host_id, seq, events, n, skip, err)) < 0)
		goto rollback;
	if (ngaps > 0 && (rc = store_gaps(st, host_id, gaps, ngaps, err)) < 0)
		goto rollback;
	if (nskipped > 0) {
		char summary[160];
		snprintf(summary, sizeof(summary),
			 "%zu event(s) in batch %" PRIu64 " were not valid JSON/UTF-8 and were left out",
			 nskipped, seq);
		rc = add_audit(st, host_id, "malformed_events", "medium", summary,
			       json_pack("{s:I,s:I}", "seq", (json_int_t)seq, "count",
					 (json_int_t)nskipped),
			       err);
		if (rc < 0)
			goto rollback;
	}
	if ((rc = store_cmd(st, "committing a batch", "COMMIT", 0, NULL, false, err)) < 0)
		return rc;
	res->stored = n - nskipped;
	res->refused = nskipped;
	return 0;
rollback:
	if (PQstatus(st->conn) == CONNECTION_OK) {
		PGresult *rb = PQexec(st->conn, "ROLLBACK");
		PQclear(rb);
	}
	return rc;
}

int store_ingest_batch(struct store *st, const char *host_id, uint64_t seq,
		       const struct store_event *events, size_t nevents,
		       const struct store_gap *gaps, size_t ngaps, struct ingest_result *res,
		       vigil_err *err)
{
	bool *skip = NULL;
	size_t nskipped = 0;
	int rc;

	memset(res, 0, sizeof(*res));
	if (nevents > INGEST_EVENTS_MAX || ngaps > INGEST_GAPS_MAX)
		return verr_set(err, -EINVAL, "batch of %zu events and %zu gaps is over the limits",
				nevents, ngaps);
	if (seq == 0) {
		/* Gap reports travel alone, outside the sequence (see delivery.c). */
		if (nevents > 0)
			return verr_set(err, -EINVAL, "events without a batch sequence number");
		pthread_mutex_lock(&st->lock);
		rc = store_gaps(st, host_id, gaps, ngaps, err);
		pthread_mutex_unlock(&st->lock);
		return rc;
	}
	if (seq > (uint64_t)INT64_MAX)
		return verr_set(err, -EINVAL, "batch sequence number %" PRIu64 " is out of range",
				seq);
	pthread_mutex_lock(&st->lock);
	rc = ingest_once(st, host_id, seq, events, nevents, gaps, ngaps, NULL, 0, res, err);
	if (rc == -EINVAL) {
		/* The database refused some event's data: find and leave out the bad ones. */
		skip = calloc(nevents ? nevents : 1, sizeof(bool));
		if (skip == NULL) {
			rc = verr_set(err, -ENOMEM, "out of memory");
		} else {
			for (size_t i = 0; i < nevents; i++)
				if (!event_acceptable(&events[i])) {
					skip[i] = true;
					nskipped++;
				}
			rc = ingest_once(st, host_id, seq, events, nevents, gaps, ngaps, skip,
					 nskipped, res, err);
		}
	}
	pthread_mutex_unlock(&st->lock);
	free(skip);
	return rc;
}
