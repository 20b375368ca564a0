/* SPDX-License-Identifier: Apache-2.0 */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "store/migrations.h"

/* Hello fields come from the network: bounded and valid UTF-8, or refused. */
#define STORE_FIELD_MAX	 256
#define STORE_LABELS_MAX 64

/*
 * Serializes store_migrate between consoles sharing one database; an arbitrary
 * constant ("VIGL") that other advisory-lock users of the database must avoid.
 */
#define STORE_MIGRATE_LOCK "1447642956"

#include "store/store_priv.h"

static void store_notice_ignore(void *arg, const char *message)
{
	/* Library code never logs; libpq would print notices to stderr. */
	(void)arg;
	(void)message;
}

/* A libpq message (multi-line, trailing newline) as one line in buf. */
static const char *store_flat(const char *msg, char *buf, size_t size)
{
	size_t o = 0;

	if (msg == NULL)
		msg = "";
	for (const char *c = msg; *c != '\0' && o + 1 < size; c++) {
		if (*c == '\n' || *c == '\t' || *c == '\r') {
			if (o > 0 && buf[o - 1] != ' ')
				buf[o++] = ' ';
		} else {
			buf[o++] = *c;
		}
	}
	while (o > 0 && buf[o - 1] == ' ')
		o--;
	buf[o] = '\0';
	return buf;
}

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
			store_flat(PQerrorMessage(conn), msg, sizeof(msg)));
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
	return verr_set(
	    err, code, "%s failed on %s: %s (SQLSTATE %s)", what, where,
	    store_flat(primary != NULL ? primary : PQresultErrorMessage(res), msg, sizeof(msg)),
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
	PQsetNoticeProcessor(st->conn, store_notice_ignore, NULL);
	if (PQstatus(st->conn) != CONNECTION_OK) {
		char where[300], msg[300];

		store_where(st->conn, where, sizeof(where));
		verr_set(err, -ECONNREFUSED, "cannot connect to %s: %s", where,
			 store_flat(PQerrorMessage(st->conn), msg, sizeof(msg)));
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

int store_schema_version_latest(void)
{
	return migrations_latest();
}

/* Roll back whatever transaction a failed migration step left open. */
static void store_rollback(struct store *st)
{
	if (PQstatus(st->conn) == CONNECTION_OK && PQtransactionStatus(st->conn) != PQTRANS_IDLE)
		PQclear(PQexec(st->conn, "ROLLBACK"));
}

/* Apply one migration unless another console already did; *ret_done 1 if applied now. */
static int store_migrate_one(struct store *st, const struct migration *m, int *ret_done,
			     vigil_err *err)
{
	char version[16], what[128];
	const char *params[2] = {version, m->name};
	PGresult *res = NULL;
	int rc;

	snprintf(version, sizeof(version), "%d", m->version);
	snprintf(what, sizeof(what), "migration %d (%s)", m->version, m->name);
	*ret_done = 0;
	/* A fresh connection holds no transaction: BEGIN alone may be retried. */
	rc = store_cmd(st, what, "BEGIN", 0, NULL, true, err);
	if (rc < 0)
		return rc;
	rc = store_exec(st, what, "SELECT pg_advisory_xact_lock(" STORE_MIGRATE_LOCK ")", 0, NULL,
			PGRES_TUPLES_OK, false, &res, err);
	PQclear(res);
	res = NULL;
	if (rc < 0)
		goto fail;
	rc = store_exec(st, what, "SELECT 1 FROM schema_migrations WHERE version = $1", 1, params,
			PGRES_TUPLES_OK, false, &res, err);
	if (rc < 0)
		goto fail;
	if (PQntuples(res) > 0) {
		PQclear(res);
		return store_cmd(st, what, "COMMIT", 0, NULL, false, err);
	}
	PQclear(res);
	/* Constant, compiled-in text; may hold several statements. */
	res = PQexec(st->conn, m->sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		rc = PQstatus(st->conn) == CONNECTION_BAD ? store_err_down(st->conn, what, err)
							  : store_err_sql(st->conn, res, what, err);
		PQclear(res);
		goto fail;
	}
	PQclear(res);
	rc = store_cmd(st, what, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2,
		       params, false, err);
	if (rc < 0)
		goto fail;
	rc = store_cmd(st, what, "COMMIT", 0, NULL, false, err);
	if (rc < 0)
		goto fail;
	*ret_done = 1;
	return 0;
fail:
	store_rollback(st);
	return rc;
}

int store_migrate(struct store *st, int *ret_applied, vigil_err *err)
{
	const struct migration *ms;
	size_t n;
	int rc, applied = 0;

	ms = migrations_get(&n);
	pthread_mutex_lock(&st->lock);
	/* Under the same lock, so two consoles cannot race on CREATE TABLE. */
	rc = store_cmd(st, "migrating the schema", "BEGIN", 0, NULL, true, err);
	if (rc < 0)
		goto out;
	{
		PGresult *res = NULL;

		rc = store_exec(st, "migrating the schema",
				"SELECT pg_advisory_xact_lock(" STORE_MIGRATE_LOCK ")", 0, NULL,
				PGRES_TUPLES_OK, false, &res, err);
		PQclear(res);
	}
	if (rc == 0)
		rc = store_cmd(st, "creating schema_migrations", migrations_bootstrap_sql, 0, NULL,
			       false, err);
	if (rc == 0)
		rc = store_cmd(st, "creating schema_migrations", "COMMIT", 0, NULL, false, err);
	if (rc < 0) {
		store_rollback(st);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		int done;

		rc = store_migrate_one(st, &ms[i], &done, err);
		if (rc < 0)
			goto out;
		applied += done;
	}
out:
	pthread_mutex_unlock(&st->lock);
	if (rc == 0 && ret_applied != NULL)
		*ret_applied = applied;
	return rc;
}

bool store_utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p != '\0') {
		unsigned c = *p;
		size_t len;
		uint32_t cp;

		if (c < 0x80) {
			p++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			cp = c & 0x07;
		} else {
			return false;
		}
		for (size_t i = 1; i < len; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		p += len;
	}
	return true;
}

/* NULL is "" unless required; anything else must be bounded UTF-8. */
static int store_check_field(const char *name, const char *value, bool required, vigil_err *err)
{
	size_t len;

	if (value == NULL) {
		if (required)
			return verr_set(err, -EINVAL, "hello field %s is missing", name);
		return 0;
	}
	len = strlen(value);
	if (required && len == 0)
		return verr_set(err, -EINVAL, "hello field %s is empty", name);
	if (len > STORE_FIELD_MAX)
		return verr_set(err, -EINVAL,
				"hello field %s is %zu bytes, more than the %d allowed", name, len,
				STORE_FIELD_MAX);
	if (!store_utf8_valid(value))
		return verr_set(err, -EINVAL, "hello field %s is not valid UTF-8", name);
	return 0;
}

static const char *store_or_empty(const char *s)
{
	return s != NULL ? s : "";
}

/* The labels as compact JSON text (caller frees), keys sorted. */
static int store_labels_json(const struct store_hello *hello, char **ret_json, vigil_err *err)
{
	json_t *obj;
	char *text;
	int rc;

	if (hello->nlabels > STORE_LABELS_MAX)
		return verr_set(err, -EINVAL, "hello has %zu labels, more than the %d allowed",
				hello->nlabels, STORE_LABELS_MAX);
	if (hello->nlabels > 0 && hello->labels == NULL)
		return verr_set(err, -EINVAL, "hello labels missing");
	for (size_t i = 0; i < hello->nlabels; i++) {
		char field[48];

		snprintf(field, sizeof(field), "labels[%zu].key", i);
		rc = store_check_field(field, hello->labels[i].key, true, err);
		if (rc < 0)
			return rc;
		snprintf(field, sizeof(field), "labels[%zu].value", i);
		rc = store_check_field(field, hello->labels[i].value, false, err);
		if (rc < 0)
			return rc;
	}
	obj = json_object();
	if (obj == NULL)
		return verr_set(err, -ENOMEM, "out of memory building labels");
	for (size_t i = 0; i < hello->nlabels; i++) {
		json_t *v = json_string(store_or_empty(hello->labels[i].value));

		/* A repeated key keeps its last value. */
		if (v == NULL || json_object_set_new(obj, hello->labels[i].key, v) < 0) {
			json_decref(obj);
			return verr_set(err, -ENOMEM, "out of memory building labels");
		}
	}
	text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(obj);
	if (text == NULL)
		return verr_set(err, -ENOMEM, "out of memory building labels");
	*ret_json = text;
	return 0;
}

int store_host_hello(struct store *st, const struct store_hello *hello, vigil_err *err)
{
	static const char sql[] =
	    "INSERT INTO hosts (host_id, hostname, kernel, os, defender_version, bpf_status,"
	    " labels, connected, first_seen, last_seen, disconnected_at)"
	    " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, true, now(), now(), NULL)"
	    " ON CONFLICT (host_id) DO UPDATE SET"
	    " hostname = EXCLUDED.hostname, kernel = EXCLUDED.kernel, os = EXCLUDED.os,"
	    " defender_version = EXCLUDED.defender_version, bpf_status = EXCLUDED.bpf_status,"
	    " labels = EXCLUDED.labels, connected = true, last_seen = now(),"
	    " disconnected_at = NULL";
	const char *params[7];
	char *labels = NULL;
	int rc;

	if (hello == NULL)
		return verr_set(err, -EINVAL, "no hello given");
	if ((rc = store_check_field("host_id", hello->host_id, true, err)) < 0 ||
	    (rc = store_check_field("hostname", hello->hostname, true, err)) < 0 ||
	    (rc = store_check_field("kernel", hello->kernel, false, err)) < 0 ||
	    (rc = store_check_field("os", hello->os, false, err)) < 0 ||
	    (rc = store_check_field("defender_version", hello->defender_version, false, err)) < 0 ||
	    (rc = store_check_field("bpf_status", hello->bpf_status, false, err)) < 0)
		return rc;
	rc = store_labels_json(hello, &labels, err);
	if (rc < 0)
		return rc;
	params[0] = hello->host_id;
	params[1] = hello->hostname;
	params[2] = store_or_empty(hello->kernel);
	params[3] = store_or_empty(hello->os);
	params[4] = store_or_empty(hello->defender_version);
	params[5] = store_or_empty(hello->bpf_status);
	params[6] = labels;
	pthread_mutex_lock(&st->lock);
	rc = store_cmd(st, "recording the hello of a host", sql, 7, params, true, err);
	pthread_mutex_unlock(&st->lock);
	free(labels);
	return rc;
}

int store_host_heartbeat(struct store *st, const char *host_id, const struct store_heartbeat *hb,
			 vigil_err *err)
{
	static const char sql[] = "UPDATE hosts SET last_seen = now(), connected = true,"
				  " disconnected_at = NULL, exec_count = $2::bigint,"
				  " capture = COALESCE($3::jsonb, capture)"
				  " WHERE host_id = $1 RETURNING 1";
	char count[24];
	const char *params[3] = {host_id, count, hb != NULL ? hb->capture_json : NULL};
	PGresult *res = NULL;
	int rc;

	if (hb == NULL)
		return verr_set(err, -EINVAL, "no heartbeat given");
	rc = store_check_field("host_id", host_id, true, err);
	if (rc < 0)
		return rc;
	if (hb->exec_count > (uint64_t)INT64_MAX)
		return verr_set(err, -EINVAL, "heartbeat exec_count %" PRIu64 " is out of range",
				hb->exec_count);
	snprintf(count, sizeof(count), "%" PRIu64, hb->exec_count);
	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "recording a heartbeat", sql, 3, params, PGRES_TUPLES_OK, true, &res,
			err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	if (PQntuples(res) == 0)
		rc = verr_set(err, -ENOENT, "heartbeat from host %s, which never said hello",
			      host_id);
	PQclear(res);
	return rc;
}

int store_hosts_mark_stale(struct store *st, int timeout_ms, int *ret_count, vigil_err *err)
{
	/* make_interval takes seconds; the parameter is timeout_ms / 1000. */
	/*
	 * A silent defender may have been killed by an attacker: each host marked
	 * disconnected gets an audit in the same statement.
	 */
	static const char sql[] =
	    "WITH stale AS (UPDATE hosts SET connected = false, disconnected_at = now()"
	    " WHERE connected AND last_seen < now() - make_interval(secs => $1::double precision)"
	    " RETURNING host_id, last_seen)"
	    " INSERT INTO audits (host_id, kind, severity, summary, detail)"
	    " SELECT host_id, 'defender_silent', 'high',"
	    " 'defender stopped reporting: no heartbeat for ' || $1 || ' s',"
	    " jsonb_build_object('last_seen', last_seen) FROM stale";
	char secs[32];
	const char *params[1] = {secs};
	PGresult *res = NULL;
	int rc;

	if (timeout_ms < 0)
		return verr_set(err, -EINVAL, "stale timeout %d ms is negative", timeout_ms);
	snprintf(secs, sizeof(secs), "%d.%03d", timeout_ms / 1000, timeout_ms % 1000);
	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "marking stale hosts disconnected", sql, 1, params, PGRES_COMMAND_OK,
			true, &res, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	if (ret_count != NULL)
		*ret_count = atoi(PQcmdTuples(res));
	PQclear(res);
	return 0;
}

/* One hosts row (columns as selected in store_hosts_list) as a new object. */
static json_t *store_host_json(const PGresult *res, int row)
{
	static const char *const text_cols[] = {"host_id", "hostname",	       "kernel",
						"os",	   "defender_version", "bpf_status"};
	json_t *obj = json_object(), *labels;
	json_error_t jerr;
	int c = 0;

	if (obj == NULL)
		return NULL;
	for (; c < 6; c++) {
		if (json_object_set_new(obj, text_cols[c], json_string(PQgetvalue(res, row, c))) <
		    0)
			goto fail;
	}
	labels = json_loads(PQgetvalue(res, row, 6), 0, &jerr);
	if (labels == NULL || json_object_set_new(obj, "labels", labels) < 0)
		goto fail;
	if (json_object_set_new(obj, "exec_count",
				json_integer(strtoll(PQgetvalue(res, row, 7), NULL, 10))) < 0 ||
	    json_object_set_new(obj, "first_seen", json_string(PQgetvalue(res, row, 8))) < 0 ||
	    json_object_set_new(obj, "last_seen", json_string(PQgetvalue(res, row, 9))) < 0 ||
	    json_object_set_new(obj, "connected",
				json_boolean(strcmp(PQgetvalue(res, row, 10), "t") == 0)) < 0 ||
	    json_object_set_new(obj, "disconnected_at",
				PQgetisnull(res, row, 11)
				    ? json_null()
				    : json_string(PQgetvalue(res, row, 11))) < 0)
		goto fail;
	json_t *capture = json_loads(PQgetvalue(res, row, 12), 0, &jerr);
	if (capture == NULL || json_object_set_new(obj, "capture", capture) < 0)
		goto fail;
	return obj;
fail:
	json_decref(obj);
	return NULL;
}

int store_hosts_list(struct store *st, json_t **ret_hosts, vigil_err *err)
{
	/* COLLATE "C": byte order, the same on every database whatever its locale. */
	static const char sql[] =
	    "SELECT host_id, hostname, kernel, os, defender_version, bpf_status,"
	    " labels::text, exec_count, " TS_UTC("first_seen") ", " TS_UTC(
		"last_seen") ","
			     " connected, " TS_UTC(
				 "disconnected_at") ", capture::text"
						    " FROM hosts ORDER BY host_id COLLATE \"C\"";
	PGresult *res = NULL;
	json_t *hosts;
	int rc, n;

	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "listing hosts", sql, 0, NULL, PGRES_TUPLES_OK, true, &res, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	hosts = json_array();
	if (hosts == NULL) {
		PQclear(res);
		return verr_set(err, -ENOMEM, "out of memory listing hosts");
	}
	n = PQntuples(res);
	for (int i = 0; i < n; i++) {
		json_t *h = store_host_json(res, i);

		if (h == NULL || json_array_append_new(hosts, h) < 0) {
			rc =
			    verr_set(err, -EIO,
				     "cannot build the JSON of host %s (out of memory or bad text)",
				     PQgetvalue(res, i, 0));
			PQclear(res);
			json_decref(hosts);
			return rc;
		}
	}
	PQclear(res);
	*ret_hosts = hosts;
	return 0;
}
