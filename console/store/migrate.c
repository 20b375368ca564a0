/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The migration runner: applies the versioned SQL of migrations.c, each
 * version in its own transaction, serialized between consoles.
 */
#include "store/store.h"

#include <pthread.h>
#include <stdio.h>

#include <libpq-fe.h>

#include "store/migrations.h"
#include "store/store_priv.h"

/*
 * Serializes store_migrate between consoles sharing one database; an arbitrary
 * constant ("VIGL") that other advisory-lock users of the database must avoid.
 */
#define STORE_MIGRATE_LOCK "1447642956"

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
