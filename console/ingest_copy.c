/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bulk part of ingest: a batch's events and activity rows by COPY in
 * text format (measured in migration 4's comment: far faster than inserts).
 * Values are escaped for COPY; nothing of them is ever SQL.
 */
#include <errno.h>
#include <inttypes.h>
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

static void cb_row(struct copybuf *b, const char *host_id, uint64_t seq, size_t idx,
		   const struct store_event *e)
{
	char num[160];

	cb_text(b, host_id);
	snprintf(num, sizeof(num), "\t%" PRIu64 "\t%zu\t%s\t", seq, idx, type_name(e->type));
	cb_put(b, num, strlen(num));
	cb_ts(b, e->ts_ns);
	snprintf(num, sizeof(num), "\t%u\t%u\t%u\t", e->pid, e->ppid, e->uid);
	cb_put(b, num, strlen(num));
	cb_text(b, e->comm != NULL ? e->comm : "");
	cb_put(b, "\t", 1);
	cb_text(b, e->json != NULL ? e->json : "{}");
	cb_put(b, "\n", 1);
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

int ingest_copy_events(struct store *st, const char *host_id, uint64_t seq,
		       const struct store_event *events, size_t n, const bool *skip,
		       vigil_err *err)
{
	struct copybuf b = {0};

	for (size_t i = 0; i < n; i++)
		if (skip == NULL || !skip[i])
			cb_row(&b, host_id, seq, i, &events[i]);
	return copy_run(st,
			"COPY events (host_id, seq, idx, type, ts, pid, ppid, uid, comm, body)"
			" FROM STDIN",
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
	rc = copy_run(st,
		      "COPY activity (host_id, ts, session, username, tty, pid, type, summary, body)"
		      " FROM STDIN",
		      &b, "storing activity", err);
	if (rc == 0)
		*ret_n = rows;
	return rc;
}

