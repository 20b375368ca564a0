/* SPDX-License-Identifier: Apache-2.0 */
/* The console's users and sign-in sessions (see users.h). */
#include "store/users.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_priv.h"

/* A session's columns, in the order session_of reads them. */
#define SESSION_COLS "user_name, role, csrf, " TS_UTC("expires_at")

/* A user's columns for the API, in the order user_json reads them; never the hash. */
#define USER_COLS                                                                                  \
	"name, role, " TS_UTC("created_at") ", " TS_UTC("password_changed_at") ", " TS_UTC(        \
	    "last_login")

bool users_name_ok(const char *name)
{
	size_t len = strlen(name);

	return len >= 1 && len <= USER_NAME_MAX &&
	       strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
		   len;
}

bool users_role_ok(const char *role)
{
	return strcmp(role, "admin") == 0 || strcmp(role, "read") == 0;
}

/* Row row of res (USER_COLS from column 0) as a new object; NULL when out of memory. */
static json_t *user_json(const PGresult *res, int row)
{
	return json_pack("{s:s,s:s,s:o,s:o,s:o}", "name", PQgetvalue(res, row, 0), "role",
			 PQgetvalue(res, row, 1), "created_at", store_json_text(res, row, 2),
			 "password_changed_at", store_json_text(res, row, 3), "last_login",
			 store_json_text(res, row, 4));
}

int store_users_list(struct store *st, json_t **ret_users, vigil_err *err)
{
	static const char sql[] = "SELECT " USER_COLS " FROM users ORDER BY name";

	return store_rows_json(st, "listing users", sql, 0, NULL, user_json, ret_users, err);
}

int store_user_add(struct store *st, const char *name, const char *hash, const char *role,
		   json_t **ret_user, vigil_err *err)
{
	/*
	 * A name taken gives no row.  The second SELECT finds the row a first
	 * run of this statement wrote before its connection was lost: the hash
	 * has a random salt, so only that run can have stored the same one.
	 */
	static const char sql[] = "WITH ins AS (INSERT INTO users (name, password_hash, role)"
				  " VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING"
				  " RETURNING " USER_COLS ")"
				  " SELECT * FROM ins UNION ALL SELECT " USER_COLS
				  " FROM users WHERE name = $1 AND password_hash = $2"
				  " AND NOT EXISTS (SELECT 1 FROM ins)";
	const char *params[3] = {name, hash, role};
	PGresult *res = NULL;
	int rc;

	rc = store_query(st, "adding a user", sql, 3, params, &res, err);
	if (rc < 0)
		return rc;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return verr_set(err, -EEXIST, "there is a user '%s' already", name);
	}
	return store_one_row_json(res, user_json, ret_user, err, "no user '%s'", name);
}

int store_user_credentials(struct store *st, const char *name, char *hash, char *role,
			   vigil_err *err)
{
	static const char sql[] = "SELECT password_hash, role FROM users WHERE name = $1";
	const char *params[1] = {name};
	PGresult *res = NULL;
	int rc;

	rc = store_query(st, "reading a user", sql, 1, params, &res, err);
	if (rc < 0)
		return rc;
	if (PQntuples(res) == 0) {
		rc = verr_set(err, -ENOENT, "no user '%s'", name);
	} else if (strlen(PQgetvalue(res, 0, 0)) >= USER_HASH_MAX) {
		/* Not a hash this console wrote: no password matches it. */
		rc = verr_set(err, -ENOENT, "user '%s' has an unusable password hash", name);
	} else {
		snprintf(hash, USER_HASH_MAX, "%s", PQgetvalue(res, 0, 0));
		snprintf(role, USER_ROLE_MAX, "%s", PQgetvalue(res, 0, 1));
	}
	PQclear(res);
	return rc;
}

int store_user_update(struct store *st, const char *name, const char *hash, const char *role,
		      json_t **ret_user, vigil_err *err)
{
	/*
	 * One statement: the sessions go with the change, or neither happens.
	 * old is the row before the UPDATE (one snapshot per statement), to
	 * tell whether the role changed.
	 */
	static const char sql[] =
	    "WITH old AS (SELECT role FROM users WHERE name = $1),"
	    " upd AS (UPDATE users SET password_hash = coalesce($2::text, password_hash),"
	    " password_changed_at = CASE WHEN $2::text IS NULL THEN password_changed_at"
	    " ELSE now() END, role = coalesce($3::text, role) WHERE name = $1"
	    " RETURNING " USER_COLS "),"
	    " gone AS (DELETE FROM sessions WHERE user_name = $1 AND ($2::text IS NOT NULL"
	    " OR $3::text <> (SELECT role FROM old)))"
	    " SELECT * FROM upd";
	const char *params[3] = {name, hash, role};
	PGresult *res = NULL;
	int rc;

	rc = store_query(st, "changing a user", sql, 3, params, &res, err);
	if (rc < 0)
		return rc;
	return store_one_row_json(res, user_json, ret_user, err, "no user '%s'", name);
}

int store_user_delete(struct store *st, const char *name, vigil_err *err)
{
	/* The sessions go by the foreign key (ON DELETE CASCADE), in this statement. */
	static const char sql[] = "DELETE FROM users WHERE name = $1 RETURNING name";
	const char *params[1] = {name};
	PGresult *res = NULL;
	int rc;

	rc = store_query(st, "deleting a user", sql, 1, params, &res, err);
	if (rc < 0)
		return rc;
	if (PQntuples(res) == 0)
		rc = verr_set(err, -ENOENT, "no user '%s'", name);
	PQclear(res);
	return rc;
}

/* Columns user_name, role, csrf, expires of a session row into *ret. */
static void session_of(const PGresult *res, struct store_session *ret)
{
	*ret = (struct store_session){.has_user = !PQgetisnull(res, 0, 0)};
	snprintf(ret->user, sizeof(ret->user), "%s", PQgetvalue(res, 0, 0));
	snprintf(ret->role, sizeof(ret->role), "%s", PQgetvalue(res, 0, 1));
	snprintf(ret->csrf, sizeof(ret->csrf), "%s", PQgetvalue(res, 0, 2));
	snprintf(ret->expires, sizeof(ret->expires), "%s", PQgetvalue(res, 0, 3));
}

int store_session_create(struct store *st, const char *key_hash, const char *user,
			 const char *hash_seen, const char *csrf, int hours,
			 struct store_session *ret, vigil_err *err)
{
	/*
	 * The user's row is updated (last_login) and read in one step: a
	 * password or role changed since the caller verified the password is
	 * seen here (the UPDATE waits for the change and reads the new row),
	 * and then no session is written.
	 */
	static const char sql_user[] =
	    "WITH gc AS (DELETE FROM sessions WHERE expires_at <= now()),"
	    " u AS (UPDATE users SET last_login = now() WHERE name = $2 AND password_hash = $3"
	    " RETURNING name, role)"
	    " INSERT INTO sessions (hash, user_name, role, csrf, expires_at)"
	    " SELECT $1, u.name, u.role, $4, now() + make_interval(hours => $5::integer) FROM u"
	    " RETURNING " SESSION_COLS;
	static const char sql_token[] =
	    "WITH gc AS (DELETE FROM sessions WHERE expires_at <= now())"
	    " INSERT INTO sessions (hash, user_name, role, csrf, expires_at)"
	    " VALUES ($1, NULL, 'admin', $2, now() + make_interval(hours => $3::integer))"
	    " RETURNING " SESSION_COLS;
	char h[16];
	const char *params_user[5] = {key_hash, user, hash_seen, csrf, h};
	const char *params_token[3] = {key_hash, csrf, h};
	PGresult *res = NULL;
	int rc;

	snprintf(h, sizeof(h), "%d", hours);
	pthread_mutex_lock(&st->lock);
	if (user != NULL)
		rc = store_exec(st, "starting a session", sql_user, 5, params_user, PGRES_TUPLES_OK,
				false, &res, err);
	else
		rc = store_exec(st, "starting a session", sql_token, 3, params_token,
				PGRES_TUPLES_OK, false, &res, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	if (PQntuples(res) == 0)
		rc = verr_set(err, -ENOENT, "user '%s' is gone or has a new password", user);
	else
		session_of(res, ret);
	PQclear(res);
	return rc;
}

int store_session_get(struct store *st, const char *key_hash, struct store_session *ret,
		      vigil_err *err)
{
	/*
	 * The UPDATE and the DELETE match no row in the common case (a live
	 * session seen within the minute), and then write nothing.
	 */
	static const char sql[] =
	    "WITH touch AS (UPDATE sessions SET last_seen = now() WHERE hash = $1"
	    " AND expires_at > now() AND last_seen < now() - interval '1 minute'),"
	    " gone AS (DELETE FROM sessions WHERE hash = $1 AND expires_at <= now())"
	    " SELECT " SESSION_COLS " FROM sessions WHERE hash = $1 AND expires_at > now()";
	const char *params[1] = {key_hash};
	PGresult *res = NULL;
	int rc;

	rc = store_query(st, "reading a session", sql, 1, params, &res, err);
	if (rc < 0)
		return rc;
	if (PQntuples(res) == 0)
		rc = verr_set(err, -ENOENT, "no such session, or it has expired");
	else
		session_of(res, ret);
	PQclear(res);
	return rc;
}

int store_session_delete(struct store *st, const char *key_hash, vigil_err *err)
{
	static const char sql[] = "DELETE FROM sessions WHERE hash = $1";
	const char *params[1] = {key_hash};
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = store_cmd(st, "ending a session", sql, 1, params, true, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}
