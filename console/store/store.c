/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's connection and the statement helpers its modules share
 * (store_priv.h): open/close, reconnect, run a statement, translate libpq's
 * failures.  The migration runner is in migrate.c, the host queries in
 * hosts.c.
 */
#include "store/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "pg/pq_error.h"
#include "store/storage_state.h"
#include "store/store_priv.h"

/* "database vigil on /run/x port 5432": which server, never the password. */
static void store_where(PGconn *conn, char *buf, size_t size)
{
	const char *db = PQdb(conn), *host = PQhost(conn), *port = PQport(conn);

	snprintf(buf, size, "database %s on %s port %s", db != NULL && db[0] != '\0' ? db : "?",
		 host != NULL && host[0] != '\0' ? host : "the default socket",
		 port != NULL && port[0] != '\0' ? port : "5432");
}

int store_err_down(PGconn *conn, const char *what, vigil_err *err)
{
	char where[300], msg[300];

	store_where(conn, where, sizeof(where));
	return verr_set(err, -ECONNRESET, "%s: %s is unreachable: %s", what, where,
			pq_error_flat(PQerrorMessage(conn), msg, sizeof(msg)));
}

/* Translate a failed result into a negative errno and a sentence. */
int store_err_sql(PGconn *conn, const PGresult *res, const char *what, vigil_err *err)
{
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char where[300], msg[300];
	int code = -EIO;

	if (res == NULL)
		return verr_set(err, -ENOMEM, "%s: out of memory", what);
	if (state != NULL) {
		if (strncmp(state, "22", 2) == 0) /* data exception */
			code = -EINVAL;
		else if (strncmp(state, "23", 2) == 0) /* integrity constraint */
			code = -EEXIST;
		else if (strncmp(state, "40", 2) == 0) /* serialization, deadlock */
			code = -EAGAIN;
		else if (strncmp(state, "53", 2) == 0) /* insufficient resources */
			code = -ENOSPC;
	}
	store_where(conn, where, sizeof(where));
	pq_error_flat(primary != NULL ? primary : PQresultErrorMessage(res), msg, sizeof(msg));
	/* disk_full: the console stops taking batches until one commits again. */
	if (state != NULL && strcmp(state, "53100") == 0)
		storage_state_full(msg);
	return verr_set(err, code, "%s failed on %s: %s (SQLSTATE %s)", what, where, msg,
			state != NULL ? state : "none");
}

/* Reconnect once when the connection is known to be down. */
int store_ensure(struct store *st, const char *what, vigil_err *err)
{
	if (PQstatus(st->conn) == CONNECTION_OK)
		return 0;
	PQreset(st->conn);
	if (PQstatus(st->conn) == CONNECTION_OK)
		return 0;
	return store_err_down(st->conn, what, err);
}

/*
 * Run one parameterized statement expecting status expect; *ret_res (caller
 * clears) is set only on success.  With retry, a statement that failed because
 * the connection went bad is retried once on a fresh connection, so only
 * idempotent statements may pass retry (all of this module's autocommit ones are).
 */
int store_exec(struct store *st, const char *what, const char *sql, int nparams,
	       const char *const *params, ExecStatusType expect, bool retry, PGresult **ret_res,
	       vigil_err *err)
{
	bool reset = false;
	PGresult *res;
	int rc;

	if (PQstatus(st->conn) != CONNECTION_OK) {
		if (!retry)
			return store_err_down(st->conn, what, err);
		reset = true;
		rc = store_ensure(st, what, err);
		if (rc < 0)
			return rc;
	}
	for (;;) {
		res = PQexecParams(st->conn, sql, nparams, NULL, params, NULL, NULL, 0);
		if (res != NULL && PQresultStatus(res) == expect) {
			*ret_res = res;
			return 0;
		}
		/*
		 * A server error has an SQLSTATE.  Without one the failure was on our
		 * side of the socket: libpq may still say CONNECTION_OK after a write
		 * to a server that is gone (measured: "server closed the connection
		 * unexpectedly" after PostgreSQL restarted), so treat it as a lost
		 * connection and reconnect.
		 */
		bool lost = PQstatus(st->conn) == CONNECTION_BAD || res == NULL ||
			    PQresultErrorField(res, PG_DIAG_SQLSTATE) == NULL;
		if (!lost) {
			rc = store_err_sql(st->conn, res, what, err);
			PQclear(res);
			return rc;
		}
		PQclear(res);
		if (!retry || reset)
			return store_err_down(st->conn, what, err);
		reset = true;
		PQreset(st->conn);
		if (PQstatus(st->conn) != CONNECTION_OK)
			return store_err_down(st->conn, what, err);
	}
}

/* store_exec for statements whose result is only a status. */
int store_cmd(struct store *st, const char *what, const char *sql, int nparams,
	      const char *const *params, bool retry, vigil_err *err)
{
	PGresult *res = NULL;
	int rc;

	rc = store_exec(st, what, sql, nparams, params, PGRES_COMMAND_OK, retry, &res, err);
	PQclear(res);
	return rc;
}

int store_query(struct store *st, const char *what, const char *sql, int nparams,
		const char *const *params, PGresult **ret_res, vigil_err *err)
{
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, what, sql, nparams, params, PGRES_TUPLES_OK, true, ret_res, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

struct store *store_open(const char *dsn, vigil_err *err)
{
	/*
	 * Entries before the expanded dbname are defaults the DSN may override
	 * (an operator's own connect_timeout wins); client_encoding after it is
	 * forced, since everything here reads and writes UTF-8.  Nothing is
	 * pasted into the DSN string.
	 */
	const char *const keys[] = {"connect_timeout", "fallback_application_name", "dbname",
				    "client_encoding", NULL};
	const char *const values[] = {"5", "vigil-console", dsn, "UTF8", NULL};
	PQconninfoOption *opts;
	struct store *st;
	char *perr = NULL;
	int rc;

	if (dsn == NULL) {
		errno = EINVAL;
		verr_set(err, -EINVAL, "no database DSN given");
		return NULL;
	}
	/* Validate first: libpq's parse errors quote the DSN, which may hold a password. */
	opts = PQconninfoParse(dsn, &perr);
	if (opts == NULL) {
		PQfreemem(perr);
		errno = EINVAL;
		verr_set(err, -EINVAL,
			 "the database DSN is not a valid libpq connection string or URI");
		return NULL;
	}
	PQconninfoFree(opts);

	st = calloc(1, sizeof(*st));
	if (st == NULL) {
		errno = ENOMEM;
		verr_set(err, -ENOMEM, "out of memory opening the database");
		return NULL;
	}
	rc = pthread_mutex_init(&st->lock, NULL);
	if (rc != 0) {
		free(st);
		errno = rc;
		verr_set(err, -rc, "cannot create the store lock: %s", strerror(rc));
		return NULL;
	}
	st->conn = PQconnectdbParams(keys, values, 1);
	if (st->conn == NULL) {
		store_close(st);
		errno = ENOMEM;
		verr_set(err, -ENOMEM, "out of memory connecting to the database");
		return NULL;
	}
	PQsetNoticeProcessor(st->conn, pq_error_notice_ignore, NULL);
	if (PQstatus(st->conn) != CONNECTION_OK) {
		char where[300], msg[300];

		store_where(st->conn, where, sizeof(where));
		verr_set(err, -ECONNREFUSED, "cannot connect to %s: %s", where,
			 pq_error_flat(PQerrorMessage(st->conn), msg, sizeof(msg)));
		store_close(st);
		errno = ECONNREFUSED;
		return NULL;
	}
	return st;
}

void store_close(struct store *st)
{
	if (st == NULL)
		return;
	PQfinish(st->conn);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

int store_set_option(struct store *st, const char *name, const char *value, vigil_err *err)
{
	/*
	 * A SET would be lost at the next PQreset (store_exec's reconnect), which
	 * reuses only the connection's parameters: so reconnect with "-c
	 * name=value" added to its options (after the DSN's own, so it wins).
	 */
	PQconninfoOption *opts;
	const char **keys = NULL, **values = NULL;
	char options[1024];
	size_t n = 0, k = 0;
	PGconn *conn = NULL;
	int rc = 0;

	pthread_mutex_lock(&st->lock);
	opts = PQconninfo(st->conn);
	while (opts != NULL && opts[n].keyword != NULL)
		n++;
	keys = calloc(n + 2, sizeof(*keys));
	values = calloc(n + 2, sizeof(*values));
	if (opts == NULL || keys == NULL || values == NULL) {
		rc = verr_set(err, -ENOMEM, "out of memory setting %s", name);
		goto out;
	}
	snprintf(options, sizeof(options), "-c %s=%s", name, value);
	for (size_t i = 0; i < n; i++) {
		if (opts[i].val == NULL)
			continue;
		if (strcmp(opts[i].keyword, "options") == 0) {
			if (snprintf(options, sizeof(options), "%s -c %s=%s", opts[i].val, name,
				     value) >= (int)sizeof(options)) {
				rc = verr_set(err, -E2BIG, "the DSN's options are too long");
				goto out;
			}
			continue;
		}
		keys[k] = opts[i].keyword;
		values[k++] = opts[i].val;
	}
	keys[k] = "options";
	values[k] = options;
	conn = PQconnectdbParams(keys, values, 0);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		rc = conn == NULL ? verr_set(err, -ENOMEM, "out of memory reconnecting")
				  : store_err_down(conn, "reconnecting with a setting", err);
		PQfinish(conn);
		goto out;
	}
	PQsetNoticeProcessor(conn, pq_error_notice_ignore, NULL);
	PQfinish(st->conn);
	st->conn = conn;
out:
	pthread_mutex_unlock(&st->lock);
	PQconninfoFree(opts);
	free(keys);
	free(values);
	return rc;
}

int store_set_statement_timeout(struct store *st, int ms, vigil_err *err)
{
	char v[24];

	if (ms <= 0)
		return verr_set(err, -EINVAL, "statement timeout must be positive, not %d ms", ms);
	snprintf(v, sizeof(v), "%d", ms);
	return store_set_option(st, "statement_timeout", v, err);
}

json_t *store_json_text(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? json_null() : json_string(PQgetvalue(res, row, col));
}

int store_rows_json(struct store *st, const char *what, const char *sql, int nparams,
		    const char *const *params, store_row_fn row_fn, json_t **ret_rows,
		    vigil_err *err)
{
	PGresult *res = NULL;
	json_t *arr, *o;
	int rc;

	if ((rc = store_query(st, what, sql, nparams, params, &res, err)) < 0)
		return rc;
	if ((arr = json_array()) == NULL) {
		PQclear(res);
		return verr_set(err, -ENOMEM, "out of memory");
	}
	for (int i = 0; i < PQntuples(res); i++) {
		if ((o = row_fn(res, i)) == NULL || json_array_append_new(arr, o) != 0) {
			PQclear(res);
			json_decref(arr);
			return verr_set(err, -ENOMEM, "out of memory");
		}
	}
	PQclear(res);
	*ret_rows = arr;
	return 0;
}

int store_one_row_json(PGresult *res, store_row_fn row_fn, json_t **ret, vigil_err *err,
		       const char *missing_fmt, ...)
{
	char missing[sizeof(err->msg)];
	va_list ap;
	json_t *o;

	if (PQntuples(res) == 0) {
		PQclear(res);
		va_start(ap, missing_fmt);
		vsnprintf(missing, sizeof(missing), missing_fmt, ap);
		va_end(ap);
		return verr_set(err, -ENOENT, "%s", missing);
	}
	o = row_fn(res, 0);
	PQclear(res);
	if (o == NULL)
		return verr_set(err, -ENOMEM, "out of memory");
	*ret = o;
	return 0;
}
