/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_STORE_PRIV_H
#define VIGIL_CONSOLE_STORE_PRIV_H

/*
 * What the store's modules (store.c, ingest.c, queries.c) share: the
 * connection and its lock, and the statement helpers with their reconnect
 * and error translation.  Not for use outside console/store*.c, ingest.c.
 */

#include <pthread.h>
#include <stdbool.h>

#include <libpq-fe.h>

#include "error.h"

/* A timestamptz column as RFC 3339 UTC text with microseconds, in SQL. */
#define TS_UTC(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

struct store {
	pthread_mutex_t lock; /* held around every use of conn */
	PGconn *conn;
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

#endif
