/* SPDX-License-Identifier: Apache-2.0 */
/* Join tokens, signed certificates and revoked hosts (enroll_store.h). */
#include "store/enroll_store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_priv.h"

/*
 * Enrollments of one name take this advisory lock (with the name's hash as
 * the second key) for their transaction: an arbitrary constant, next to the
 * migrations' ("VIGL", migrate.c).
 */
#define ENROLL_NAME_LOCK "1447642957"

/* A token's columns for the API, in the order token_json reads them; never the hash. */
#define TOKEN_COLS                                                                                 \
	"id, reusable, group_name, labels::text, " TS_UTC("created_at") ", created_by, " TS_UTC(   \
	    "expires_at") ", uses, " TS_UTC("last_used_at") ", " TS_UTC("revoked_at") ","          \
										      " CASE "     \
										      "WHEN "      \
										      "revoked_"   \
										      "at IS NOT " \
										      "NULL THEN " \
										      "'revoked'"  \
										      " WHEN NOT " \
										      "reusable "  \
										      "AND uses "  \
										      "> 0 THEN "  \
										      "'used'"     \
										      " WHEN "     \
										      "expires_"   \
										      "at <= "     \
										      "now() "     \
										      "THEN "      \
										      "'expired' " \
										      "ELSE "      \
										      "'active' "  \
										      "END"

/* Row row of res (TOKEN_COLS from column 0) as a new object; NULL when out of memory. */
static json_t *token_json(const PGresult *res, int row)
{
	json_t *labels = json_loads(PQgetvalue(res, row, 3), 0, NULL);

	if (labels == NULL)
		labels = json_object();
	return json_pack("{s:s,s:b,s:o,s:o,s:o,s:s,s:o,s:I,s:o,s:o,s:s}", "id",
			 PQgetvalue(res, row, 0), "reusable",
			 strcmp(PQgetvalue(res, row, 1), "t") == 0, "group",
			 store_json_text(res, row, 2), "labels", labels, "created_at",
			 store_json_text(res, row, 4), "created_by", PQgetvalue(res, row, 5),
			 "expires_at", store_json_text(res, row, 6), "uses",
			 (json_int_t)strtoll(PQgetvalue(res, row, 7), NULL, 10), "last_used_at",
			 store_json_text(res, row, 8), "revoked_at", store_json_text(res, row, 9),
			 "state", PQgetvalue(res, row, 10));
}

int store_join_token_create(struct store *st, const struct store_join_token_new *t,
			    json_t **ret_token, vigil_err *err)
{
	/*
	 * An id taken gives no row; the second SELECT finds the row a first
	 * run wrote before its connection was lost (only it has this hash).
	 */
	static const char sql[] =
	    "WITH gone AS (DELETE FROM join_tokens WHERE expires_at < now() - interval '30 days'),"
	    " ins AS (INSERT INTO join_tokens (id, hash, reusable, group_name, labels, created_by,"
	    " expires_at) VALUES ($1, $2, $3::boolean, $4, $5::jsonb, $6,"
	    " now() + make_interval(secs => $7::bigint)) ON CONFLICT (id) DO NOTHING"
	    " RETURNING " TOKEN_COLS ")"
	    " SELECT * FROM ins UNION ALL SELECT " TOKEN_COLS " FROM join_tokens"
	    " WHERE id = $1 AND hash = $2 AND NOT EXISTS (SELECT 1 FROM ins)";
	char secs[24];
	const char *params[7] = {t->id,	   t->hash,	   t->reusable ? "true" : "false",
				 t->group, t->labels_json, t->created_by,
				 secs};
	PGresult *res = NULL;
	int rc;

	if (t->expires_s <= 0)
		return verr_set(err, -EINVAL, "a join token must expire in the future");
	snprintf(secs, sizeof(secs), "%" PRId64, t->expires_s);
	rc = store_query(st, "creating a join token", sql, 7, params, &res, err);
	if (rc < 0)
		return rc;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return verr_set(err, -EEXIST, "join token id %s is taken; make another", t->id);
	}
	return store_one_row_json(res, token_json, ret_token, err, "no join token '%s'", t->id);
}

int store_join_tokens_list(struct store *st, json_t **ret_tokens, vigil_err *err)
{
	static const char sql[] = "SELECT " TOKEN_COLS " FROM join_tokens"
				  " ORDER BY created_at DESC, id LIMIT 1000";

	_Static_assert(JOIN_TOKENS_LIST_MAX == 1000, "the LIMIT above");
	return store_rows_json(st, "listing join tokens", sql, 0, NULL, token_json, ret_tokens,
			       err);
}

int store_join_token_revoke(struct store *st, const char *id, json_t **ret_token, vigil_err *err)
{
	static const char sql[] = "UPDATE join_tokens SET revoked_at = COALESCE(revoked_at, now())"
				  " WHERE id = $1 RETURNING " TOKEN_COLS;
	const char *params[1] = {id};
	PGresult *res = NULL;
	int rc;

	rc = store_query(st, "revoking a join token", sql, 1, params, &res, err);
	if (rc < 0)
		return rc;
	return store_one_row_json(res, token_json, ret_token, err, "no join token '%s'", id);
}

int store_join_token_get(struct store *st, const char *id, struct store_join_token *ret,
			 vigil_err *err)
{
	static const char sql[] = "SELECT hash, reusable, revoked_at IS NOT NULL,"
				  " expires_at <= now(), NOT reusable AND uses > 0, labels::text,"
				  " COALESCE(group_name, '') FROM join_tokens WHERE id = $1";
	const char *params[1] = {id};
	PGresult *res = NULL;
	int rc;

	memset(ret, 0, sizeof(*ret));
	rc = store_query(st, "reading a join token", sql, 1, params, &res, err);
	if (rc < 0)
		return rc;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return verr_set(err, -ENOENT, "no join token '%s'", id);
	}
	snprintf(ret->hash, sizeof(ret->hash), "%s", PQgetvalue(res, 0, 0));
	ret->reusable = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	ret->revoked = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
	ret->expired = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
	ret->used = strcmp(PQgetvalue(res, 0, 4), "t") == 0;
	ret->labels_json = strdup(PQgetvalue(res, 0, 5));
	snprintf(ret->group, sizeof(ret->group), "%s", PQgetvalue(res, 0, 6));
	PQclear(res);
	if (ret->labels_json == NULL)
		return verr_set(err, -ENOMEM, "out of memory");
	return 0;
}

void store_join_token_fini(struct store_join_token *t)
{
	free(t->labels_json);
	t->labels_json = NULL;
}

/* End the transaction a failure left open (the database discards it anyway). */
static void tx_rollback(struct store *st)
{
	if (PQstatus(st->conn) == CONNECTION_OK && PQtransactionStatus(st->conn) != PQTRANS_IDLE)
		PQclear(PQexec(st->conn, "ROLLBACK"));
}

/* BEGIN and take the name's lock: enrollments and renewals of one name go one at a time. */
static int name_lock(struct store *st, const char *what, const char *host_id, vigil_err *err)
{
	const char *params[1] = {host_id};
	PGresult *res = NULL;
	int rc;

	/* A fresh connection holds no transaction: BEGIN alone may be retried. */
	if ((rc = store_cmd(st, what, "BEGIN", 0, NULL, true, err)) < 0)
		return rc;
	rc =
	    store_exec(st, what, "SELECT pg_advisory_xact_lock(" ENROLL_NAME_LOCK ", hashtext($1))",
		       1, params, PGRES_TUPLES_OK, false, &res, err);
	PQclear(res);
	return rc;
}

/* One row of booleans from sql into flags[0..n); 0 or a store error. */
static int flags_of(struct store *st, const char *what, const char *sql, int nparams,
		    const char *const *params, bool *flags, int n, vigil_err *err)
{
	PGresult *res = NULL;
	int rc;

	rc = store_exec(st, what, sql, nparams, params, PGRES_TUPLES_OK, false, &res, err);
	if (rc < 0)
		return rc;
	if (PQntuples(res) != 1 || PQnfields(res) != n) {
		PQclear(res);
		return verr_set(err, -EIO, "%s: unexpected answer from the database", what);
	}
	for (int i = 0; i < n; i++)
		flags[i] = strcmp(PQgetvalue(res, 0, i), "t") == 0;
	PQclear(res);
	return 0;
}

int store_enroll_commit(struct store *st, const struct store_enrollment *e, vigil_err *err)
{
	static const char what[] = "recording an enrollment";
	/*
	 * Taken: a live certificate the console signed, or a name heard from
	 * and never revoked.  A revocation after the token was made keeps the
	 * name from that token.
	 */
	static const char check[] =
	    "SELECT EXISTS (SELECT 1 FROM host_certs WHERE host_id = $1 AND revoked_at IS NULL"
	    " AND not_after > now()),"
	    " EXISTS (SELECT 1 FROM hosts WHERE host_id = $1)"
	    " AND NOT EXISTS (SELECT 1 FROM host_revocations WHERE host_id = $1),"
	    " COALESCE((SELECT revoked_at FROM host_revocations WHERE host_id = $1) >="
	    " (SELECT created_at FROM join_tokens WHERE id = $2), false)";
	/* The token's use: one statement, so that of two racing uses one finds uses = 1. */
	static const char consume[] = "UPDATE join_tokens SET uses = uses + 1, last_used_at = now()"
				      " WHERE id = $1 AND revoked_at IS NULL AND expires_at > now()"
				      " AND (reusable OR uses = 0)";
	static const char record[] =
	    "INSERT INTO host_certs (serial, host_id, not_after, via, token_id, address)"
	    " VALUES ($1, $2, to_timestamp($3::bigint), 'enroll', $4, $5)";
	char not_after[24];
	const char *pc[2] = {e->host_id, e->token_id}, *pt[1] = {e->token_id};
	const char *pr[5] = {e->serial, e->host_id, not_after, e->token_id, e->address};
	PGresult *res = NULL;
	bool f[3];
	int rc;

	snprintf(not_after, sizeof(not_after), "%lld", (long long)e->not_after);
	pthread_mutex_lock(&st->lock);
	if ((rc = name_lock(st, what, e->host_id, err)) < 0 ||
	    (rc = flags_of(st, what, check, 2, pc, f, 3, err)) < 0)
		goto out;
	if (f[0] || f[1]) {
		rc =
		    verr_set(err, -EEXIST,
			     "host name '%s' is taken by an enrolled or known host; revoke it first"
			     " (vigilctl hosts revoke %s) to enroll it again",
			     e->host_id, e->host_id);
		goto out;
	}
	if (f[2]) {
		rc = verr_set(err, -EPERM,
			      "host '%s' was revoked after this join token was made; enrolling it"
			      " again needs a join token made since",
			      e->host_id);
		goto out;
	}
	if ((rc = store_exec(st, what, consume, 1, pt, PGRES_COMMAND_OK, false, &res, err)) < 0)
		goto out;
	if (strcmp(PQcmdTuples(res), "1") != 0) {
		rc =
		    verr_set(err, -ESTALE, "the join token was used, expired or revoked meanwhile");
		goto out;
	}
	PQclear(res);
	res = NULL;
	if ((rc = store_cmd(st, what, record, 5, pr, false, err)) < 0 ||
	    (rc = store_cmd(st, what, "COMMIT", 0, NULL, false, err)) < 0)
		goto out;
out:
	PQclear(res);
	if (rc < 0)
		tx_rollback(st);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int store_renew_commit(struct store *st, const struct store_renewal *r, vigil_err *err)
{
	static const char what[] = "recording a renewal";
	/*
	 * Revoked: the name is, and this certificate is not one signed since;
	 * or this certificate itself is.  Too soon: the host got one lately.
	 */
	static const char check[] =
	    "SELECT (EXISTS (SELECT 1 FROM host_revocations WHERE host_id = $1)"
	    " AND NOT EXISTS (SELECT 1 FROM host_certs WHERE serial = $2 AND host_id = $1"
	    " AND revoked_at IS NULL))"
	    " OR EXISTS (SELECT 1 FROM host_certs WHERE serial = $2 AND revoked_at IS NOT NULL),"
	    " COALESCE((SELECT max(issued_at) FROM host_certs WHERE host_id = $1) >"
	    " now() - make_interval(secs => $3::bigint), false)";
	static const char prune[] = "DELETE FROM host_certs WHERE host_id = $1"
				    " AND not_after < now() - interval '1 day'";
	static const char record[] =
	    "INSERT INTO host_certs (serial, host_id, not_after, via, renewed_from)"
	    " VALUES ($1, $2, to_timestamp($3::bigint), 'renew', $4)";
	char not_after[24], interval[24];
	const char *pc[3] = {r->host_id, r->old_serial, interval}, *pp[1] = {r->host_id};
	const char *pr[4] = {r->serial, r->host_id, not_after, r->old_serial};
	bool f[2];
	int rc;

	snprintf(not_after, sizeof(not_after), "%lld", (long long)r->not_after);
	snprintf(interval, sizeof(interval), "%d", r->min_interval_s);
	pthread_mutex_lock(&st->lock);
	if ((rc = name_lock(st, what, r->host_id, err)) < 0 ||
	    (rc = flags_of(st, what, check, 3, pc, f, 2, err)) < 0)
		goto out;
	if (f[0]) {
		rc = verr_set(err, -EPERM, "host '%s' is revoked", r->host_id);
		goto out;
	}
	if (f[1]) {
		rc = verr_set(err, -EAGAIN,
			      "host '%s' got a certificate less than %d s ago; renew later",
			      r->host_id, r->min_interval_s);
		goto out;
	}
	if ((rc = store_cmd(st, what, prune, 1, pp, false, err)) < 0 ||
	    (rc = store_cmd(st, what, record, 4, pr, false, err)) < 0 ||
	    (rc = store_cmd(st, what, "COMMIT", 0, NULL, false, err)) < 0)
		goto out;
out:
	if (rc < 0)
		tx_rollback(st);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int store_host_revoke(struct store *st, const char *host_id, const char *actor,
		      json_t **ret_revoked, vigil_err *err)
{
	/*
	 * One statement: the marks, the name and the announcement commit
	 * together (NOTIFY goes out at commit).  A repeat after a lost
	 * connection revokes again, which changes nothing but the time.
	 */
	static const char sql[] =
	    "WITH known AS (SELECT EXISTS (SELECT 1 FROM hosts WHERE host_id = $1)"
	    " OR EXISTS (SELECT 1 FROM host_certs WHERE host_id = $1) AS yes),"
	    " c AS (UPDATE host_certs SET revoked_at = now() WHERE host_id = $1"
	    " AND revoked_at IS NULL AND (SELECT yes FROM known) RETURNING 1),"
	    " r AS (INSERT INTO host_revocations (host_id, revoked_at, revoked_by)"
	    " SELECT $1, now(), $2 WHERE (SELECT yes FROM known)"
	    " ON CONFLICT (host_id) DO UPDATE SET revoked_at = now(),"
	    " revoked_by = EXCLUDED.revoked_by RETURNING revoked_at),"
	    " n AS (SELECT pg_notify('" ENROLL_REVOKE_CHANNEL "', $1) FROM r)"
	    " SELECT " TS_UTC("(SELECT revoked_at FROM r)") ", (SELECT count(*) FROM c),"
							    " (SELECT count(*) FROM n) WHERE "
							    "(SELECT yes FROM known)";
	const char *params[2] = {host_id, actor};
	PGresult *res = NULL;
	int rc;

	rc = store_query(st, "revoking a host", sql, 2, params, &res, err);
	if (rc < 0)
		return rc;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return verr_set(err, -ENOENT, "no host '%s': it never enrolled nor connected",
				host_id);
	}
	if (ret_revoked != NULL &&
	    (*ret_revoked =
		 json_pack("{s:s,s:o,s:s,s:I}", "host", host_id, "revoked_at",
			   store_json_text(res, 0, 0), "revoked_by", actor, "certificates",
			   (json_int_t)strtoll(PQgetvalue(res, 0, 1), NULL, 10))) == NULL) {
		PQclear(res);
		return verr_set(err, -ENOMEM, "out of memory");
	}
	PQclear(res);
	return 0;
}

/* Row row of a revocations listing as a new object; NULL when out of memory. */
static json_t *revocation_json(const PGresult *res, int row)
{
	return json_pack("{s:s,s:o,s:s,s:I}", "host", PQgetvalue(res, row, 0), "revoked_at",
			 store_json_text(res, row, 1), "revoked_by", PQgetvalue(res, row, 2),
			 "certificates", (json_int_t)strtoll(PQgetvalue(res, row, 3), NULL, 10));
}

int store_revocations_list(struct store *st, json_t **ret_list, vigil_err *err)
{
	static const char sql[] = "SELECT r.host_id, " TS_UTC(
	    "r.revoked_at") ", r.revoked_by,"
			    " (SELECT count(*) FROM host_certs c WHERE c.host_id = r.host_id"
			    " AND c.revoked_at IS NULL AND c.not_after > now())"
			    " FROM host_revocations r ORDER BY r.revoked_at DESC, r.host_id LIMIT "
			    "10000";

	return store_rows_json(st, "listing revoked hosts", sql, 0, NULL, revocation_json, ret_list,
			       err);
}

void store_revoked_free(struct store_revoked *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(v[i].host_id);
		for (size_t k = 0; k < v[i].nserials; k++)
			free(v[i].serials[k]);
		free(v[i].serials);
	}
	free(v);
}

/* Split "a,b,c" (serials: hex, no commas inside) into e->serials; -ENOMEM. */
static int serials_split(const char *list, struct store_revoked *e)
{
	size_t n = list[0] != '\0' ? 1 : 0;

	for (const char *p = list; *p != '\0'; p++)
		n += *p == ',';
	if (n == 0)
		return 0;
	if ((e->serials = calloc(n, sizeof(*e->serials))) == NULL)
		return -ENOMEM;
	for (const char *p = list; e->nserials < n; p++) {
		size_t len = strcspn(p, ",");

		if ((e->serials[e->nserials] = strndup(p, len)) == NULL)
			return -ENOMEM;
		e->nserials++;
		p += len;
		if (*p == '\0')
			break;
	}
	return 0;
}

int store_revoked_load(struct store *st, struct store_revoked **ret, size_t *ret_n, vigil_err *err)
{
	static const char sql[] =
	    "SELECT r.host_id, COALESCE(string_agg(c.serial, ',' ORDER BY c.serial), '')"
	    " FROM host_revocations r LEFT JOIN host_certs c ON c.host_id = r.host_id"
	    " AND c.revoked_at IS NULL AND c.not_after > now() GROUP BY r.host_id";
	struct store_revoked *v;
	PGresult *res = NULL;
	size_t n;
	int rc;

	rc = store_query(st, "reading revoked hosts", sql, 0, NULL, &res, err);
	if (rc < 0)
		return rc;
	n = (size_t)PQntuples(res);
	if ((v = calloc(n > 0 ? n : 1, sizeof(*v))) == NULL) {
		PQclear(res);
		return verr_set(err, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		if ((v[i].host_id = strdup(PQgetvalue(res, (int)i, 0))) == NULL ||
		    serials_split(PQgetvalue(res, (int)i, 1), &v[i]) < 0) {
			PQclear(res);
			store_revoked_free(v, n);
			return verr_set(err, -ENOMEM, "out of memory");
		}
	}
	PQclear(res);
	*ret = v;
	*ret_n = n;
	return 0;
}
