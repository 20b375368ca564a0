/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_STORE_PRIV_H
#define VIGIL_CONSOLE_STORE_PRIV_H

/*
 * What the store's modules (store.c, migrate.c, hosts.c, ingest*.c,
 * learning_*.c, host_commands.c, audit_queries.c, retention.c) share: the connection and
 * its lock, the statement helpers with their reconnect and error translation
 * (store.c), and the checks of hostile input (learning_store.c; UTF-8 by
 * common/utf8.h).  Not for use outside those files.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "error.h"
#include "store/ingest.h"

/* A timestamptz column as RFC 3339 UTC text with microseconds, in SQL. */
#define TS_UTC(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* Delivery streams this connection has seen committed (ingest.c): a direct-mapped cache. */
#define STORE_STREAMS_KNOWN 256

struct store {
	pthread_mutex_t lock; /* held around every use of conn, and the fields below */
	PGconn *conn;
	/* (hash of host, incarnation) of streams known to be in delivery_streams; 0: empty. */
	struct {
		uint64_t host_hash, incarnation;
	} streams_known[STORE_STREAMS_KNOWN];
};

/* "<what>: database D on H is unreachable: <why>" as -ECONNRESET. */
int store_err_down(PGconn *conn, const char *what, vigil_err *err);

/* A failed statement as a negative errno from its SQLSTATE class (22: -EINVAL, ...). */
int store_err_sql(PGconn *conn, const PGresult *res, const char *what, vigil_err *err);

/* Reconnect when the connection is down.  Caller holds the lock. */
int store_ensure(struct store *st, const char *what, vigil_err *err);

/*
 * Run a parameterized statement expecting status expect; on a dead
 * connection reconnect and (with retry) run it once more.  Caller holds the
 * lock and PQclear's *ret_res.
 */
int store_exec(struct store *st, const char *what, const char *sql, int nparams,
	       const char *const *params, ExecStatusType expect, bool retry, PGresult **ret_res,
	       vigil_err *err);

/* store_exec for statements whose result is only a status. */
int store_cmd(struct store *st, const char *what, const char *sql, int nparams,
	      const char *const *params, bool retry, vigil_err *err);

/*
 * One statement on its own (autocommit) that returns rows: store_exec with
 * the retry, under the lock, which it takes and releases.  The caller
 * PQclear's *ret_res, set only on success.
 */
int store_query(struct store *st, const char *what, const char *sql, int nparams,
		const char *const *params, PGresult **ret_res, vigil_err *err);

/* Column col of row as a new JSON string, or JSON null when it is NULL (NULL when out of memory).
 */
json_t *store_json_text(const PGresult *res, int row, int col);

/* Row row of res as a new JSON value; NULL when out of memory. */
typedef json_t *(*store_row_fn)(const PGresult *res, int row);

/*
 * Under the lock: a parameterized read (retried once on a lost
 * connection), each row of its result through row_fn into a new array.
 * *ret_rows (caller json_decref's) is set only on success; -ENOMEM ("out of
 * memory") or store_exec's error otherwise.
 */
int store_rows_json(struct store *st, const char *what, const char *sql, int nparams,
		    const char *const *params, store_row_fn row_fn, json_t **ret_rows,
		    vigil_err *err);

/*
 * The one row a statement returned (its first): res (cleared here) through
 * row_fn into *ret (caller json_decref's), set only on success.  -ENOENT
 * with err from missing_fmt when res has no row, -ENOMEM ("out of memory").
 */
int store_one_row_json(PGresult *res, store_row_fn row_fn, json_t **ret, vigil_err *err,
		       const char *missing_fmt, ...) __attribute__((format(printf, 5, 6)));

/*
 * Make s valid UTF-8 in place: drop a character cut off at its end (by a
 * truncating snprintf); anything else invalid empties it.
 */
void store_utf8_trim(char *s);

/*
 * Whether s is acceptable as a text field of at most max bytes: valid UTF-8,
 * and not empty when required (NULL counts as "").  When not, why gets the
 * reason ("is longer than 512 bytes").
 */
bool store_text_ok(const char *s, size_t max, bool required, char *why, size_t whylen);

/* Problems listed in a malformed_input audit; the rest are only counted. */
#define PROBLEMS_LISTED_MAX 32

/* What was left out of one batch and why, for its malformed_input audit. */
struct ingest_problems {
	json_t *list;	 /* [{"field": "deviation[2].kind", "why": "..."}], created on first use */
	size_t count;	 /* items left out, listed or not */
	char first[256]; /* "field: why" of the first, for the audit's summary */
};

/*
 * Count one item left out; list it while the list is short.  field and why
 * are built by the caller from names and numbers, never from the input.
 */
void problems_add(struct ingest_problems *p, const char *field, const char *why);

/* Forget everything (before another attempt at the transaction). */
void problems_reset(struct ingest_problems *p);

/* Whether activity a (of event idx) may be stored; problems_add's it when not. */
bool learning_activity_ok(const struct store_activity *a, size_t idx, struct ingest_problems *p);

/*
 * Inside store_ingest's transaction (caller holds the lock), by COPY: the
 * events not marked in skip (may be NULL); the activity rows of those
 * events, each checked by learning_activity_ok first (*ret_n: rows written).
 */
int ingest_copy_events(struct store *st, const char *host_id, uint64_t seq,
		       const struct store_event *events, size_t n, const bool *skip,
		       vigil_err *err);
int ingest_copy_activity(struct store *st, const char *host_id, const struct store_event *events,
			 size_t n, const bool *skip, struct ingest_problems *p, size_t *ret_n,
			 vigil_err *err);

/*
 * Inside store_ingest's transaction (caller holds the lock): write the
 * acceptable deviations as audits / apply the acceptable deltas, listing the
 * others in p.  Any error leaves the transaction for the caller to roll back.
 */
int learning_store_deviations(struct store *st, const char *host_id,
			      const struct store_deviation *devs, size_t n,
			      struct ingest_problems *p, size_t *ret_stored, vigil_err *err);
int learning_store_deltas(struct store *st, const char *host_id,
			  const struct store_model_delta *deltas, size_t n,
			  struct ingest_problems *p, size_t *ret_deltas, size_t *ret_entries,
			  vigil_err *err);

#endif
