/* SPDX-License-Identifier: Apache-2.0 */
/* Read-side queries for the API: models, their entries, the activity log. */
#include "store/learning_queries.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_priv.h"

/*
 * The columns of a model as model_json reads them.  active_since is shown
 * only while the model is active: a model sent back to learning keeps the
 * old value in its row until the defender's next delta says otherwise.
 */
#define MODEL_COLUMNS                                                                              \
	"m.id, m.host_id, m.service, m.state, " TS_UTC(                                            \
	    "m.learning_since") ","                                                                \
				" CASE WHEN m.state = 'active' THEN " TS_UTC(                      \
				    "m.active_since") " END,"                                      \
						      " m.learn_drops, m.note,"                    \
						      " (SELECT count(*) FROM model_entries e "    \
						      "WHERE e.model_id = m.id),"                  \
						      " EXISTS (SELECT 1 FROM commands c WHERE "   \
						      "c.host_id = m.host_id"                      \
						      " AND c.service = m.service AND c.kind = "   \
						      "'relearn' AND c.acked_at IS NULL),"         \
						      " " TS_UTC("m.updated_at") ","               \
										 " CASE WHEN "     \
										 "m.state = "      \
										 "'learning' "     \
										 "THEN " TS_UTC(   \
										     "m.learn_"    \
										     "until") " E" \
											      "ND"

static json_int_t int_at(const PGresult *res, int row, int col)
{
	return (json_int_t)strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* An integer column as a JSON integer, or null when NULL. */
static json_t *int_or_null(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? json_null() : json_integer(int_at(res, row, col));
}

static json_t *model_json(const PGresult *res, int row)
{
	return json_pack("{s:I,s:s,s:s,s:s,s:o,s:o,s:I,s:s,s:I,s:b,s:s,s:o}", "id",
			 int_at(res, row, 0), "host", PQgetvalue(res, row, 1), "service",
			 PQgetvalue(res, row, 2), "state", PQgetvalue(res, row, 3),
			 "learning_since", store_json_text(res, row, 4), "active_since",
			 store_json_text(res, row, 5), "learn_drops", int_at(res, row, 6), "note",
			 PQgetvalue(res, row, 7), "entries", int_at(res, row, 8), "relearn_pending",
			 strcmp(PQgetvalue(res, row, 9), "t") == 0, "updated_at",
			 PQgetvalue(res, row, 10), "learn_until", store_json_text(res, row, 11));
}

/* Each row of res through to_json into a new array; NULL when out of memory. */
static json_t *rows_json(const PGresult *res, json_t *(*to_json)(const PGresult *, int))
{
	json_t *arr = json_array();

	for (int i = 0; arr != NULL && i < PQntuples(res); i++) {
		json_t *o = to_json(res, i);

		if (o == NULL || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	return arr;
}

static void limit_text(int limit, char buf[16])
{
	snprintf(buf, 16, "%d", limit > 0 && limit <= 1000 ? limit : 100);
}

int store_models_list(struct store *st, const struct model_filter *f, json_t **ret, vigil_err *err)
{
	static const char sql[] = "SELECT " MODEL_COLUMNS " FROM models m"
				  " WHERE ($1::text IS NULL OR m.host_id = $1)"
				  " AND ($2::text IS NULL OR m.service = $2)"
				  " AND ($3::text IS NULL OR m.state = $3)"
				  " AND ($4::bigint IS NULL OR m.id < $4::bigint)"
				  " ORDER BY m.id DESC LIMIT $5::integer";
	char before[24], limit[16];
	const char *params[5] = {f->host_id, f->service, f->state, f->before_id > 0 ? before : NULL,
				 limit};
	PGresult *res = NULL;
	int rc;

	snprintf(before, sizeof(before), "%" PRId64, f->before_id);
	limit_text(f->limit, limit);
	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "listing models", sql, 5, params, PGRES_TUPLES_OK, true, &res, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	*ret = rows_json(res, model_json);
	PQclear(res);
	return *ret != NULL ? 0 : verr_set(err, -ENOMEM, "out of memory listing models");
}

/* The entries of res (exe, kind, pattern, first_seen, last_seen, count) grouped per exe. */
static json_t *sections_json(const PGresult *res, int n)
{
	json_t *sections = json_array(), *entries = NULL;
	const char *exe = NULL;

	for (int i = 0; sections != NULL && i < n; i++) {
		json_t *e;

		if (exe == NULL || strcmp(exe, PQgetvalue(res, i, 0)) != 0) {
			json_t *sec =
			    json_pack("{s:s,s:[]}", "exe", PQgetvalue(res, i, 0), "entries");

			exe = PQgetvalue(res, i, 0);
			entries = json_object_get(sec, "entries");
			if (sec == NULL || json_array_append_new(sections, sec) < 0)
				goto fail;
		}
		e = json_pack("{s:s,s:s,s:o,s:o,s:o}", "kind", PQgetvalue(res, i, 1), "pattern",
			      PQgetvalue(res, i, 2), "first_seen", store_json_text(res, i, 3),
			      "last_seen", store_json_text(res, i, 4), "count",
			      int_or_null(res, i, 5));
		if (e == NULL || json_array_append_new(entries, e) < 0)
			goto fail;
	}
	return sections;
fail:
	json_decref(sections);
	return NULL;
}

/* The two reads of store_model_get, inside its transaction. */
static int model_read(struct store *st, const char *const *params, json_t **ret, vigil_err *err)
{
	static const char head[] = "SELECT " MODEL_COLUMNS " FROM models m WHERE m.id = $1::bigint";
	/* COLLATE "C": byte order, the same on every database whatever its locale. */
	static const char body[] = "SELECT exe, kind, pattern, " TS_UTC("first_seen") ", " TS_UTC(
	    "last_seen") ", count FROM model_entries WHERE model_id = $1::bigint"
			 " ORDER BY exe COLLATE \"C\", kind COLLATE \"C\", pattern COLLATE \"C\""
			 " LIMIT $2::integer";
	PGresult *res = NULL;
	json_t *model, *sections;
	int rc, n;

	rc = store_exec(st, "reading a model", head, 1, params, PGRES_TUPLES_OK, false, &res, err);
	if (rc < 0)
		return rc;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return verr_set(err, -ENOENT, "no model %s", params[0]);
	}
	model = model_json(res, 0);
	PQclear(res);
	rc = store_exec(st, "reading a model's entries", body, 2, params, PGRES_TUPLES_OK, false,
			&res, err);
	if (rc < 0) {
		json_decref(model);
		return rc;
	}
	n = PQntuples(res);
	sections = sections_json(res, n > MODEL_ENTRIES_SHOWN_MAX ? MODEL_ENTRIES_SHOWN_MAX : n);
	PQclear(res);
	if (model == NULL || sections == NULL ||
	    json_object_set_new(model, "sections", sections) < 0 ||
	    json_object_set_new(model, "truncated", json_boolean(n > MODEL_ENTRIES_SHOWN_MAX)) <
		0) {
		json_decref(model);
		return verr_set(err, -ENOMEM, "out of memory reading a model");
	}
	*ret = model;
	return 0;
}

int store_model_get(struct store *st, int64_t id, json_t **ret, vigil_err *err)
{
	char idtext[24], limit[16];
	const char *params[2] = {idtext, limit};
	int rc;

	snprintf(idtext, sizeof(idtext), "%" PRId64, id);
	snprintf(limit, sizeof(limit), "%d", MODEL_ENTRIES_SHOWN_MAX + 1);
	pthread_mutex_lock(&st->lock);
	/* A fresh connection holds no transaction: BEGIN alone may be retried. */
	rc = store_cmd(st, "reading a model", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0,
		       NULL, true, err);
	if (rc == 0) {
		rc = model_read(st, params, ret, err);
		/* Read-only: ending it either way changes nothing. */
		if (PQstatus(st->conn) == CONNECTION_OK)
			PQclear(PQexec(st->conn, rc == 0 ? "COMMIT" : "ROLLBACK"));
	}
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/*
 * text as an ILIKE pattern that matches it anywhere, its own % _ and \
 * escaped (the statement says ESCAPE '\'); NULL for NULL text or out of
 * memory.  The text stays a parameter: nothing of it reaches the SQL.
 */
static char *like_pattern(const char *text)
{
	char *out, *p;

	if (text == NULL || (out = malloc(strlen(text) * 2 + 3)) == NULL)
		return NULL;
	p = out;
	*p++ = '%';
	for (const char *t = text; *t != '\0'; t++) {
		if (*t == '%' || *t == '_' || *t == '\\')
			*p++ = '\\';
		*p++ = *t;
	}
	*p++ = '%';
	*p = '\0';
	return out;
}

static json_t *activity_json(const PGresult *res, int row)
{
	json_t *event = json_loads(PQgetvalue(res, row, 9), 0, NULL);

	return json_pack("{s:I,s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "id", int_at(res, row, 0),
			 "host", PQgetvalue(res, row, 1), "ts", PQgetvalue(res, row, 2), "session",
			 int_or_null(res, row, 3), "user", store_json_text(res, row, 4), "tty",
			 store_json_text(res, row, 5), "pid", int_or_null(res, row, 6), "type",
			 store_json_text(res, row, 7), "summary", store_json_text(res, row, 8),
			 "event", event != NULL ? event : json_null());
}

int store_activity_list(struct store *st, const struct activity_filter *f, json_t **ret,
			vigil_err *err)
{
	static const char sql[] = "SELECT id, host_id, " TS_UTC(
	    "ts") ", session, username, tty, pid, type, summary,"
		  " body::text FROM activity"
		  " WHERE ($1::text IS NULL OR host_id = $1)"
		  " AND ($2::text IS NULL OR username = $2)"
		  " AND ($3::integer IS NULL OR session = $3::integer)"
		  " AND ($4::timestamptz IS NULL OR ts >= $4::timestamptz)"
		  " AND ($5::timestamptz IS NULL OR ts < $5::timestamptz)"
		  " AND ($6::bigint IS NULL OR id < $6::bigint)"
		  " AND ($8::text IS NULL OR summary ILIKE $8 ESCAPE '\\')"
		  " ORDER BY id DESC LIMIT $7::integer";
	char session[24], before[24], limit[16];
	char *like = like_pattern(f->text);
	const char *params[8] = {f->host_id, f->user,  f->session >= 0 ? session : NULL,
				 f->since,   f->until, f->before_id > 0 ? before : NULL,
				 limit,	     like};
	PGresult *res = NULL;
	int rc;

	if (f->text != NULL && like == NULL)
		return verr_set(err, -ENOMEM, "out of memory");
	snprintf(session, sizeof(session), "%" PRId64, f->session);
	snprintf(before, sizeof(before), "%" PRId64, f->before_id);
	limit_text(f->limit, limit);
	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "listing activity", sql, 8, params, PGRES_TUPLES_OK, true, &res, err);
	pthread_mutex_unlock(&st->lock);
	free(like);
	if (rc < 0)
		return rc;
	*ret = rows_json(res, activity_json);
	PQclear(res);
	return *ret != NULL ? 0 : verr_set(err, -ENOMEM, "out of memory listing activity");
}

static json_t *session_json(const PGresult *res, int row)
{
	return json_pack("{s:s,s:I,s:o,s:o,s:s,s:s,s:I,s:I,s:I}", "host", PQgetvalue(res, row, 0),
			 "session", int_at(res, row, 1), "user", store_json_text(res, row, 2),
			 "tty", store_json_text(res, row, 3), "first_ts", PQgetvalue(res, row, 4),
			 "last_ts", PQgetvalue(res, row, 5), "commands", int_at(res, row, 6),
			 "events", int_at(res, row, 7), "last_id", int_at(res, row, 8));
}

int store_activity_sessions(struct store *st, const struct activity_filter *f, json_t **ret,
			    vigil_err *err)
{
	/*
	 * A session is (host, session); its user and tty are those of its
	 * first row (a session's rows share them but for su/sudo inside it,
	 * which the rows themselves show).
	 */
	static const char sql[] =
	    "SELECT host_id, session, (array_agg(username ORDER BY id))[1],"
	    " (array_agg(tty ORDER BY id))[1], " TS_UTC("min(ts)") ", " TS_UTC(
		"max(ts)") ", count(*) FILTER (WHERE type = 'exec'), count(*), max(id)"
			   " FROM activity WHERE session IS NOT NULL"
			   " AND ($1::text IS NULL OR host_id = $1)"
			   " AND ($2::text IS NULL OR username = $2)"
			   " AND ($3::timestamptz IS NULL OR ts >= $3::timestamptz)"
			   " AND ($4::timestamptz IS NULL OR ts < $4::timestamptz)"
			   " GROUP BY host_id, session"
			   " HAVING ($5::bigint IS NULL OR max(id) < $5::bigint)"
			   " AND ($6::text IS NULL OR bool_or(summary ILIKE $6 ESCAPE '\\'))"
			   " ORDER BY max(id) DESC LIMIT $7::integer";
	char before[24], limit[16];
	char *like = like_pattern(f->text);
	const char *params[7] = {
	    f->host_id, f->user, f->since, f->until, f->before_id > 0 ? before : NULL, like, limit};
	PGresult *res = NULL;
	int rc;

	if (f->text != NULL && like == NULL)
		return verr_set(err, -ENOMEM, "out of memory");
	snprintf(before, sizeof(before), "%" PRId64, f->before_id);
	limit_text(f->limit, limit);
	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "listing sessions", sql, 7, params, PGRES_TUPLES_OK, true, &res, err);
	pthread_mutex_unlock(&st->lock);
	free(like);
	if (rc < 0)
		return rc;
	*ret = rows_json(res, session_json);
	PQclear(res);
	return *ret != NULL ? 0 : verr_set(err, -ENOMEM, "out of memory listing sessions");
}
