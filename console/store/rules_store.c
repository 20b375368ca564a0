/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The rules and their versions in PostgreSQL (rules_store.h).  Every write
 * is one transaction: lock rule_set, check, change rules, write the version
 * row with the snapshot, NOTIFY, COMMIT.  Statements inside a transaction are
 * never retried (store_exec's retry is for autocommit statements); a lost
 * connection fails the write, which the database rolled back.
 */
#include "store/rules_store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules/rule.h"
#include "store/store_priv.h"

/* A rule row as the API shows it: its body with "id" and "position", as text. */
#define RULE_JSON_SQL "(body || jsonb_build_object('id', id, 'position', position))::text"

#define STR_(x) #x
#define STR(x)	STR_(x)

void rules_outcome_fini(struct rules_outcome *out)
{
	if (out == NULL)
		return;
	json_decref(out->rule);
	json_decref(out->result);
	memset(out, 0, sizeof(*out));
}

static int64_t int_at(const PGresult *res, int row, int col)
{
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* Text of a (possibly NULL) column as a new JSON value; JSON null for SQL NULL. */
static json_t *json_at(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return json_null();
	return json_loads(PQgetvalue(res, row, col), 0, NULL);
}

/* End the transaction the failed write left open (the database discards it anyway). */
static void tx_rollback(struct store *st)
{
	if (PQstatus(st->conn) == CONNECTION_OK && PQtransactionStatus(st->conn) != PQTRANS_IDLE)
		PQclear(PQexec(st->conn, "ROLLBACK"));
}

/*
 * BEGIN and lock the rule set; *ret_version the version it is at.  Later
 * statements of the transaction see every change committed before the lock
 * was granted (READ COMMITTED takes a snapshot per statement).
 */
static int rules_lock(struct store *st, const char *what, int64_t *ret_version, vigil_err *err)
{
	PGresult *res = NULL;
	int rc;

	/* A fresh connection holds no transaction: BEGIN alone may be retried. */
	rc = store_cmd(st, what, "BEGIN", 0, NULL, true, err);
	if (rc < 0)
		return rc;
	rc = store_exec(st, what, "SELECT version FROM rule_set FOR UPDATE", 0, NULL,
			PGRES_TUPLES_OK, false, &res, err);
	if (rc < 0)
		return rc;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return verr_set(err, -EIO, "%s: the database has no rule_set row", what);
	}
	*ret_version = int_at(res, 0, 0);
	PQclear(res);
	return 0;
}

/*
 * Whether w->request_id already made a change: 1 and out filled (the rule
 * after it, or before it for a delete) when it did, 0 when not.
 */
static int rules_replay(struct store *st, const char *what, const char *kind, int64_t rule_id,
			const struct rules_write *w, struct rules_outcome *out, vigil_err *err)
{
	static const char sql[] = "SELECT version, kind, rule_id, coalesce(after, before)::text"
				  " FROM rule_versions WHERE request_id = $1";
	const char *params[1] = {w->request_id};
	PGresult *res = NULL;
	int rc;

	if (w->request_id == NULL)
		return 0;
	rc = store_exec(st, what, sql, 1, params, PGRES_TUPLES_OK, false, &res, err);
	if (rc < 0)
		return rc;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return 0;
	}
	if (strcmp(PQgetvalue(res, 0, 1), kind) != 0 ||
	    (rule_id > 0 && (PQgetisnull(res, 0, 2) || int_at(res, 0, 2) != rule_id))) {
		rc = verr_set(err, -EALREADY,
			      "the request id was already used for another change (version %s)",
			      PQgetvalue(res, 0, 0));
		PQclear(res);
		return rc;
	}
	out->version = int_at(res, 0, 0);
	out->replayed = true;
	out->rule = json_at(res, 0, 3);
	PQclear(res);
	return out->rule != NULL ? 1 : verr_set(err, -ENOMEM, "%s: out of memory", what);
}

static int check_expected(const struct rules_write *w, int64_t current, struct rules_outcome *out,
			  vigil_err *err)
{
	if (w->expected_version < 0 || w->expected_version == current)
		return 0;
	out->version = current;
	return verr_set(err, -ESTALE,
			"the rule set is at version %" PRId64 ", not %" PRId64
			" as expected: it changed meanwhile; look again and retry",
			current, w->expected_version);
}

/* What one change writes into its version row. */
struct change {
	const char *kind; /* add, edit, delete, move, import */
	int64_t rule_id;  /* 0: none */
	char text[512];
	const char *before, *after; /* the rule as JSON text, or NULL */
};

/*
 * The end of every change: the version row with the snapshot, the rule
 * set's version, the old snapshot dropped, NOTIFY, COMMIT.
 */
static int rules_finish(struct store *st, const char *what, int64_t version,
			const struct change *ch, const struct rules_write *w,
			struct rules_outcome *out, vigil_err *err)
{
	static const char insert[] =
	    "INSERT INTO rule_versions (version, actor, kind, rule_id, change, before, after,"
	    " rules_count, snapshot, request_id)"
	    " SELECT $1::bigint, $2, $3, $4::bigint, $5, $6::jsonb, $7::jsonb, s.n, s.snap, $8"
	    " FROM (SELECT count(*)::integer AS n, coalesce(jsonb_agg(body ||"
	    " jsonb_build_object('id', id, 'position', position) ORDER BY position),"
	    " '[]'::jsonb) AS snap FROM rules) s"
	    " RETURNING rules_count, octet_length(snapshot::text)";
	char v[24], rid[24];
	const char *params[8] = {v,	    w->actor != NULL ? w->actor : "unknown",
				 ch->kind,  ch->rule_id > 0 ? rid : NULL,
				 ch->text,  ch->before,
				 ch->after, w->request_id};
	PGresult *res = NULL;
	int64_t n, size;
	int rc;

	snprintf(v, sizeof(v), "%" PRId64, version);
	snprintf(rid, sizeof(rid), "%" PRId64, ch->rule_id);
	rc = store_exec(st, what, insert, 8, params, PGRES_TUPLES_OK, false, &res, err);
	if (rc < 0)
		return rc;
	n = int_at(res, 0, 0);
	size = int_at(res, 0, 1);
	PQclear(res);
	if (n > RULES_MAX)
		return verr_set(err, -E2BIG,
				"the rule set would have %" PRId64 " rules, more than %d", n,
				RULES_MAX);
	if (size > RULES_SET_JSON_MAX)
		return verr_set(err, -E2BIG,
				"the rule set would be %" PRId64 " bytes of JSON, more than %d",
				size, RULES_SET_JSON_MAX);
	if ((rc =
		 store_cmd(st, what, "UPDATE rule_set SET version = $1::bigint, changed_at = now()",
			   1, params, false, err)) < 0 ||
	    (rc = store_cmd(st, what,
			    "UPDATE rule_versions SET snapshot = NULL"
			    " WHERE version = $1::bigint - " STR(RULES_SNAPSHOTS_KEPT),
			    1, params, false, err)) < 0)
		return rc;
	/* Sent in the transaction: PostgreSQL delivers it when, and only if, it commits. */
	rc = store_exec(st, what, "SELECT pg_notify('" RULES_NOTIFY_CHANNEL "', $1)", 1, params,
			PGRES_TUPLES_OK, false, &res, err);
	if (rc < 0)
		return rc;
	PQclear(res);
	rc = store_cmd(st, what, "COMMIT", 0, NULL, false, err);
	if (rc == 0)
		snprintf(out->change, sizeof(out->change), "%s", ch->text);
	return rc;
}

/*
 * Shift the rules between from and to by one and put rule id at to (one
 * statement; the deferred unique position holds at COMMIT).
 */
static int rules_shift(struct store *st, const char *what, const char *id, int from, int to,
		       vigil_err *err)
{
	static const char sql[] =
	    "UPDATE rules SET position = CASE WHEN id = $1::bigint THEN $3::integer"
	    " WHEN $3::integer < $2::integer THEN position + 1 ELSE position - 1 END"
	    " WHERE id = $1::bigint OR position BETWEEN least($2::integer, $3::integer)"
	    " AND greatest($2::integer, $3::integer)";
	char f[16], t[16];
	const char *params[3] = {id, f, t};

	snprintf(f, sizeof(f), "%d", from);
	snprintf(t, sizeof(t), "%d", to);
	return store_cmd(st, what, sql, 3, params, false, err);
}

/* The rule id as the API shows it, as text (into *ret_text, PQclear'd by the caller via res). */
static int rule_text(struct store *st, const char *what, const char *id, PGresult **ret_res,
		     vigil_err *err)
{
	const char *params[1] = {id};

	return store_exec(st, what, "SELECT " RULE_JSON_SQL " FROM rules WHERE id = $1::bigint", 1,
			  params, PGRES_TUPLES_OK, false, ret_res, err);
}

/* The common end of a write: out->rule from text, out->version. */
static int outcome_rule(struct rules_outcome *out, int64_t version, const char *text,
			vigil_err *err)
{
	out->version = version;
	out->rule = json_loads(text, 0, NULL);
	return out->rule != NULL ? 0 : verr_set(err, -ENOMEM, "out of memory reading a rule");
}

int store_rule_add(struct store *st, const char *body, int position, const struct rules_write *w,
		   struct rules_outcome *out, vigil_err *err)
{
	static const char what[] = "adding a rule";
	static const char look[] = "SELECT count(*), (SELECT id FROM rules WHERE name ="
				   " ($1::jsonb ->> 'name')), $1::jsonb ->> 'name' FROM rules";
	static const char insert[] =
	    "INSERT INTO rules (body, position)"
	    " VALUES ($1::jsonb, $2::integer) RETURNING id, " RULE_JSON_SQL;
	struct change ch = {.kind = "add"};
	char pos[16], *after = NULL;
	const char *params[2] = {body, pos};
	PGresult *res = NULL;
	int64_t cur, n;
	int rc;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&st->lock);
	if ((rc = rules_lock(st, what, &cur, err)) < 0 ||
	    (rc = rules_replay(st, what, ch.kind, 0, w, out, err)) != 0 ||
	    (rc = check_expected(w, cur, out, err)) < 0)
		goto out;
	if ((rc = store_exec(st, what, look, 1, params, PGRES_TUPLES_OK, false, &res, err)) < 0)
		goto out;
	n = int_at(res, 0, 0);
	if (!PQgetisnull(res, 0, 1)) {
		out->conflict_id = int_at(res, 0, 1);
		rc = verr_set(err, -EEXIST, "a rule named \"%s\" already exists (id %" PRId64 ")",
			      PQgetvalue(res, 0, 2), out->conflict_id);
		goto out;
	}
	if (n >= RULES_MAX) {
		rc = verr_set(err, -E2BIG,
			      "the rule set has %" PRId64 " rules, the most it may have", n);
		goto out;
	}
	if (position == 0)
		position = (int)n + 1;
	if (position < 1 || position > n + 1) {
		out->count = (int)n;
		rc = verr_set(err, -ERANGE,
			      "position %d is past the end: the rule set has %" PRId64
			      " rules, so a new one goes at 1 to %" PRId64,
			      position, n, n + 1);
		goto out;
	}
	snprintf(ch.text, sizeof(ch.text), "added rule \"%s\" at %d", PQgetvalue(res, 0, 2),
		 position);
	PQclear(res);
	res = NULL;
	snprintf(pos, sizeof(pos), "%d", position);
	if ((rc = store_cmd(
		 st, what, "UPDATE rules SET position = position + 1 WHERE position >= $1::integer",
		 1, params + 1, false, err)) < 0 ||
	    (rc = store_exec(st, what, insert, 2, params, PGRES_TUPLES_OK, false, &res, err)) < 0)
		goto out;
	ch.rule_id = int_at(res, 0, 0);
	if ((after = strdup(PQgetvalue(res, 0, 1))) == NULL) {
		rc = verr_set(err, -ENOMEM, "%s: out of memory", what);
		goto out;
	}
	ch.after = after;
	if ((rc = rules_finish(st, what, cur + 1, &ch, w, out, err)) == 0)
		rc = outcome_rule(out, cur + 1, after, err);
out:
	PQclear(res);
	if (rc != 0 || PQtransactionStatus(st->conn) != PQTRANS_IDLE)
		tx_rollback(st);
	pthread_mutex_unlock(&st->lock);
	free(after);
	return rc > 0 ? 0 : rc;
}

/* The rule id before a change: its position, name, JSON text; whether body equals it. */
struct rule_before {
	int position;
	int count; /* rules in the set */
	int64_t conflict_id;
	char name[RULE_NAME_MAX + 4], new_name[RULE_NAME_MAX + 4];
	bool same_body;
	char *text;
};

static int rule_before_read(struct store *st, const char *what, const char *id, const char *body,
			    struct rule_before *b, vigil_err *err)
{
	static const char sql[] =
	    "SELECT position, name, " RULE_JSON_SQL ", ($2::jsonb IS NULL OR body = $2::jsonb),"
	    " (SELECT count(*) FROM rules),"
	    " (SELECT o.id FROM rules o WHERE o.name = ($2::jsonb ->> 'name') AND o.id <> "
	    "$1::bigint),"
	    " coalesce($2::jsonb ->> 'name', name)"
	    " FROM rules WHERE id = $1::bigint";
	const char *params[2] = {id, body};
	PGresult *res = NULL;
	int rc;

	rc = store_exec(st, what, sql, 2, params, PGRES_TUPLES_OK, false, &res, err);
	if (rc < 0)
		return rc;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return verr_set(err, -ENOENT, "no rule with id %s", id);
	}
	b->position = (int)int_at(res, 0, 0);
	snprintf(b->name, sizeof(b->name), "%s", PQgetvalue(res, 0, 1));
	b->text = strdup(PQgetvalue(res, 0, 2));
	b->same_body = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
	b->count = (int)int_at(res, 0, 4);
	b->conflict_id = PQgetisnull(res, 0, 5) ? 0 : int_at(res, 0, 5);
	snprintf(b->new_name, sizeof(b->new_name), "%s", PQgetvalue(res, 0, 6));
	PQclear(res);
	return b->text != NULL ? 0 : verr_set(err, -ENOMEM, "%s: out of memory", what);
}

/* Edit (body != NULL) and move (body == NULL, position > 0) share everything but the UPDATE. */
static int rule_change(struct store *st, const char *what, int64_t rule_id, const char *body,
		       int position, const struct rules_write *w, struct rules_outcome *out,
		       vigil_err *err)
{
	struct change ch = {.kind = body != NULL ? "edit" : "move", .rule_id = rule_id};
	struct rule_before b = {0};
	char id[24];
	const char *params[2] = {id, body};
	PGresult *res = NULL;
	int64_t cur;
	int rc, to;

	memset(out, 0, sizeof(*out));
	snprintf(id, sizeof(id), "%" PRId64, rule_id);
	pthread_mutex_lock(&st->lock);
	if ((rc = rules_lock(st, what, &cur, err)) < 0 ||
	    (rc = rules_replay(st, what, ch.kind, rule_id, w, out, err)) != 0 ||
	    (rc = check_expected(w, cur, out, err)) < 0 ||
	    (rc = rule_before_read(st, what, id, body, &b, err)) < 0)
		goto out;
	if (b.conflict_id > 0) {
		out->conflict_id = b.conflict_id;
		rc = verr_set(err, -EEXIST, "a rule named \"%s\" already exists (id %" PRId64 ")",
			      b.new_name, b.conflict_id);
		goto out;
	}
	to = position > 0 ? position : b.position;
	if (to > b.count) {
		out->count = b.count;
		rc = verr_set(err, -ERANGE,
			      "position %d is past the end: the rule set has %d rules (1 to %d)",
			      to, b.count, b.count);
		goto out;
	}
	if (b.same_body && to == b.position) {
		out->unchanged = true;
		rc = outcome_rule(out, cur, b.text, err);
		goto out;
	}
	if (body != NULL &&
	    (rc = store_cmd(st, what, "UPDATE rules SET body = $2::jsonb WHERE id = $1::bigint", 2,
			    params, false, err)) < 0)
		goto out;
	if (to != b.position && (rc = rules_shift(st, what, id, b.position, to, err)) < 0)
		goto out;
	if (body == NULL)
		snprintf(ch.text, sizeof(ch.text), "moved rule \"%s\" from %d to %d", b.name,
			 b.position, to);
	else
		snprintf(ch.text, sizeof(ch.text), "edited rule \"%s\"%s%s%s", b.new_name,
			 strcmp(b.name, b.new_name) != 0 ? " (renamed from \"" : "",
			 strcmp(b.name, b.new_name) != 0 ? b.name : "",
			 strcmp(b.name, b.new_name) != 0 ? "\")" : "");
	if (body != NULL && to != b.position) {
		size_t n = strlen(ch.text);

		snprintf(ch.text + n, sizeof(ch.text) - n, " and moved it from %d to %d",
			 b.position, to);
	}
	if ((rc = rule_text(st, what, id, &res, err)) < 0)
		goto out;
	ch.before = b.text;
	ch.after = PQgetvalue(res, 0, 0);
	if ((rc = rules_finish(st, what, cur + 1, &ch, w, out, err)) == 0)
		rc = outcome_rule(out, cur + 1, ch.after, err);
out:
	PQclear(res);
	if (rc != 0 || PQtransactionStatus(st->conn) != PQTRANS_IDLE)
		tx_rollback(st);
	pthread_mutex_unlock(&st->lock);
	free(b.text);
	return rc > 0 ? 0 : rc;
}

int store_rule_edit(struct store *st, int64_t id, const char *body, int position,
		    const struct rules_write *w, struct rules_outcome *out, vigil_err *err)
{
	return rule_change(st, "editing a rule", id, body, position, w, out, err);
}

int store_rule_move(struct store *st, int64_t id, int position, const struct rules_write *w,
		    struct rules_outcome *out, vigil_err *err)
{
	if (position < 1) {
		memset(out, 0, sizeof(*out));
		return verr_set(err, -ERANGE, "position %d is not a position (1, 2, ...)",
				position);
	}
	return rule_change(st, "moving a rule", id, NULL, position, w, out, err);
}

int store_rule_delete(struct store *st, int64_t rule_id, const struct rules_write *w,
		      struct rules_outcome *out, vigil_err *err)
{
	static const char what[] = "deleting a rule";
	static const char del[] = "DELETE FROM rules WHERE id = $1::bigint"
				  " RETURNING position, name, " RULE_JSON_SQL;
	struct change ch = {.kind = "delete", .rule_id = rule_id};
	char id[24], pos[16];
	const char *params[1] = {id}, *pparams[1] = {pos};
	PGresult *res = NULL;
	int64_t cur;
	int rc;

	memset(out, 0, sizeof(*out));
	snprintf(id, sizeof(id), "%" PRId64, rule_id);
	pthread_mutex_lock(&st->lock);
	if ((rc = rules_lock(st, what, &cur, err)) < 0 ||
	    (rc = rules_replay(st, what, ch.kind, rule_id, w, out, err)) != 0 ||
	    (rc = check_expected(w, cur, out, err)) < 0 ||
	    (rc = store_exec(st, what, del, 1, params, PGRES_TUPLES_OK, false, &res, err)) < 0)
		goto out;
	if (PQntuples(res) == 0) {
		rc = verr_set(err, -ENOENT, "no rule with id %s", id);
		goto out;
	}
	snprintf(pos, sizeof(pos), "%s", PQgetvalue(res, 0, 0));
	snprintf(ch.text, sizeof(ch.text), "deleted rule \"%s\" (was at %s)", PQgetvalue(res, 0, 1),
		 pos);
	ch.before = PQgetvalue(res, 0, 2);
	if ((rc = store_cmd(st, what,
			    "UPDATE rules SET position = position - 1 WHERE position > $1::integer",
			    1, pparams, false, err)) < 0)
		goto out;
	if ((rc = rules_finish(st, what, cur + 1, &ch, w, out, err)) == 0)
		rc = outcome_rule(out, cur + 1, ch.before, err);
out:
	PQclear(res);
	if (rc != 0 || PQtransactionStatus(st->conn) != PQTRANS_IDLE)
		tx_rollback(st);
	pthread_mutex_unlock(&st->lock);
	return rc > 0 ? 0 : rc;
}

/* Record the import's result in its row (for a repeated last part). */
static int import_done(struct store *st, const char *what, const char *key,
		       const struct rules_outcome *out, vigil_err *err)
{
	char *text = json_dumps(out->result, JSON_COMPACT);
	const char *params[2] = {key, text};
	int rc;

	if (text == NULL)
		return verr_set(err, -ENOMEM, "%s: out of memory", what);
	rc = store_cmd(st, what,
		       "UPDATE rule_imports SET result = $2::jsonb, rules = '[]' WHERE key = $1", 2,
		       params, false, err);
	free(text);
	return rc;
}

/* The staged rules of import $1 as (r, ord), for the statements below. */
#define STAGED                                                                                     \
	"(SELECT x.r, x.ord::integer AS ord FROM rule_imports i,"                                  \
	" jsonb_array_elements(i.rules) WITH ORDINALITY AS x(r, ord) WHERE i.key = $1)"

/*
 * Apply import key (its row locked, all parts in): check names, count what
 * changes, replace the rule set, finish.  Returns 1 when nothing changed (no
 * version), 0 when applied.
 */
static int import_apply(struct store *st, const char *what, const char *key, int64_t cur,
			const struct rules_write *w, struct rules_outcome *out, vigil_err *err)
{
	static const char dups[] = "SELECT s.r ->> 'name', min(s.ord) - 1, max(s.ord) - 1"
				   " FROM " STAGED " s GROUP BY 1 HAVING count(*) > 1"
				   " ORDER BY 3 LIMIT 1";
	static const char diff[] =
	    "SELECT count(*) FILTER (WHERE o.name IS NULL),"
	    " count(*) FILTER (WHERE o.name IS NOT NULL AND n.name IS NOT NULL"
	    " AND (o.body <> n.r OR o.position <> n.ord)),"
	    " count(*) FILTER (WHERE n.name IS NULL),"
	    " count(n.name)"
	    " FROM (SELECT name, body, position FROM rules) o FULL JOIN"
	    " (SELECT s.r ->> 'name' AS name, s.r, s.ord FROM " STAGED " s) n ON o.name = n.name";
	static const char del[] =
	    "DELETE FROM rules WHERE name NOT IN (SELECT s.r ->> 'name' FROM " STAGED " s)";
	static const char upd[] = "UPDATE rules SET body = s.r, position = s.ord FROM " STAGED " s"
				  " WHERE rules.name = s.r ->> 'name'"
				  " AND (rules.body <> s.r OR rules.position <> s.ord)";
	static const char ins[] =
	    "INSERT INTO rules (body, position) SELECT s.r, s.ord FROM " STAGED
	    " s WHERE NOT EXISTS (SELECT 1 FROM rules o"
	    " WHERE o.name = s.r ->> 'name') ORDER BY s.ord";
	struct change ch = {.kind = "import"};
	const char *params[1] = {key};
	PGresult *res = NULL;
	int64_t added, changed, removed, total;
	int rc;

	if ((rc = store_exec(st, what, dups, 1, params, PGRES_TUPLES_OK, false, &res, err)) < 0)
		return rc;
	if (PQntuples(res) > 0) {
		snprintf(out->dup_name, sizeof(out->dup_name), "%s", PQgetvalue(res, 0, 0));
		out->dup_first = (size_t)int_at(res, 0, 1);
		out->dup_second = (size_t)int_at(res, 0, 2);
		rc = verr_set(err, -EEXIST, "rules[%zu] and rules[%zu] are both named \"%s\"",
			      out->dup_first, out->dup_second, out->dup_name);
		PQclear(res);
		return rc;
	}
	PQclear(res);
	if ((rc = store_exec(st, what, diff, 1, params, PGRES_TUPLES_OK, false, &res, err)) < 0)
		return rc;
	added = int_at(res, 0, 0);
	changed = int_at(res, 0, 1);
	removed = int_at(res, 0, 2);
	total = int_at(res, 0, 3);
	PQclear(res);
	out->result = json_pack("{s:I,s:b,s:I,s:I,s:I,s:I}", "version",
				(json_int_t)(added + changed + removed > 0 ? cur + 1 : cur),
				"unchanged", added + changed + removed == 0, "rules",
				(json_int_t)total, "added", (json_int_t)added, "changed",
				(json_int_t)changed, "removed", (json_int_t)removed);
	if (out->result == NULL)
		return verr_set(err, -ENOMEM, "%s: out of memory", what);
	if (added + changed + removed == 0) {
		out->unchanged = true;
		out->version = cur;
		return 1;
	}
	if ((rc = store_cmd(st, what, del, 1, params, false, err)) < 0 ||
	    (rc = store_cmd(st, what, upd, 1, params, false, err)) < 0 ||
	    (rc = store_cmd(st, what, ins, 1, params, false, err)) < 0 ||
	    (rc = import_done(st, what, key, out, err)) < 0)
		return rc;
	snprintf(ch.text, sizeof(ch.text),
		 "imported %" PRId64 " rules: %" PRId64 " added, %" PRId64 " changed, %" PRId64
		 " removed",
		 total, added, changed, removed);
	out->version = cur + 1;
	return rules_finish(st, what, cur + 1, &ch, w, out, err);
}

/* Make the import's row if this is its first part (bounded), and lock it. */
static int import_row(struct store *st, const char *what, const struct rules_import_part *p,
		      PGresult **ret_res, vigil_err *err)
{
	static const char expire[] = "DELETE FROM rule_imports WHERE created_at < now() -"
				     " interval '" STR(RULES_IMPORT_EXPIRE_SEC) " seconds'";
	static const char busy[] = "SELECT count(*) FROM rule_imports WHERE result IS NULL"
				   " AND key <> $1";
	static const char make[] = "INSERT INTO rule_imports (key) VALUES ($1)"
				   " ON CONFLICT (key) DO NOTHING";
	static const char lock[] = "SELECT parts, result::text, jsonb_array_length(rules)"
				   " FROM rule_imports WHERE key = $1 FOR UPDATE";
	const char *params[1] = {p->key};
	PGresult *res = NULL;
	int rc;

	if ((rc = store_cmd(st, what, expire, 0, NULL, false, err)) < 0)
		return rc;
	if (p->part == 1) {
		if ((rc = store_exec(st, what, busy, 1, params, PGRES_TUPLES_OK, false, &res,
				     err)) < 0)
			return rc;
		if (int_at(res, 0, 0) >= RULES_IMPORTS_MAX) {
			PQclear(res);
			return verr_set(err, -ENOSPC,
					"%d imports are in progress, the most there may be; finish"
					" them, or wait %d s for them to expire",
					RULES_IMPORTS_MAX, RULES_IMPORT_EXPIRE_SEC);
		}
		PQclear(res);
		if ((rc = store_cmd(st, what, make, 1, params, false, err)) < 0)
			return rc;
	}
	if ((rc = store_exec(st, what, lock, 1, params, PGRES_TUPLES_OK, false, &res, err)) < 0)
		return rc;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return verr_set(err, -ENOENT,
				"no import %s: its first part never arrived, or it expired after"
				" %d s; start again from part 1",
				p->key, RULES_IMPORT_EXPIRE_SEC);
	}
	*ret_res = res;
	return 0;
}

int store_rules_import(struct store *st, const struct rules_import_part *p,
		       const struct rules_write *w, struct rules_outcome *out, vigil_err *err)
{
	static const char what[] = "importing rules";
	static const char append[] =
	    "UPDATE rule_imports SET rules = rules || $2::jsonb, parts = $3::integer"
	    " WHERE key = $1 RETURNING jsonb_array_length(rules), octet_length(rules::text)";
	char part[16];
	const char *params[3] = {p->key, p->rules, part};
	PGresult *res = NULL;
	int64_t cur, staged, size;
	int rc, parts;

	memset(out, 0, sizeof(*out));
	snprintf(part, sizeof(part), "%d", p->part);
	if (p->part < 1)
		return verr_set(err, -EILSEQ, "part %d: parts are numbered from 1", p->part);
	pthread_mutex_lock(&st->lock);
	if ((rc = store_cmd(st, what, "BEGIN", 0, NULL, true, err)) < 0 ||
	    (rc = import_row(st, what, p, &res, err)) < 0)
		goto out;
	parts = (int)int_at(res, 0, 0);
	out->staged = (size_t)int_at(res, 0, 2);
	if (!PQgetisnull(res, 0, 1)) {
		/* Applied already: the last part again, its answer lost. */
		out->replayed = true;
		out->result = json_loads(PQgetvalue(res, 0, 1), 0, NULL);
		out->version = json_integer_value(json_object_get(out->result, "version"));
		rc = out->result != NULL ? 1 : verr_set(err, -ENOMEM, "%s: out of memory", what);
		goto out;
	}
	if (p->part == parts && !p->last) {
		out->replayed = true; /* this part again: it is already here */
		rc = 1;
		goto out;
	}
	if (p->part != parts + 1) {
		rc = verr_set(err, -EILSEQ,
			      "part %d of import %s is out of order: the console has parts 1 to %d",
			      p->part, p->key, parts);
		goto out;
	}
	PQclear(res);
	res = NULL;
	if ((rc = store_exec(st, what, append, 3, params, PGRES_TUPLES_OK, false, &res, err)) < 0)
		goto out;
	staged = int_at(res, 0, 0);
	size = int_at(res, 0, 1);
	out->staged = (size_t)staged;
	if (staged > RULES_MAX || size > RULES_SET_JSON_MAX) {
		rc = verr_set(err, -E2BIG,
			      "the import has %" PRId64 " rules in %" PRId64
			      " bytes, more than %d rules or %d bytes",
			      staged, size, RULES_MAX, RULES_SET_JSON_MAX);
		goto out;
	}
	if (!p->last) {
		rc = store_cmd(st, what, "COMMIT", 0, NULL, false, err);
		goto out;
	}
	/* The last part: the rule set's lock after the import's row, always in that order. */
	PQclear(res);
	res = NULL;
	if ((rc = store_exec(st, what, "SELECT version FROM rule_set FOR UPDATE", 0, NULL,
			     PGRES_TUPLES_OK, false, &res, err)) < 0)
		goto out;
	cur = int_at(res, 0, 0);
	if ((rc = check_expected(w, cur, out, err)) < 0 ||
	    (rc = import_apply(st, what, p->key, cur, w, out, err)) < 0)
		goto out;
	if (rc == 1 && (rc = import_done(st, what, p->key, out, err)) == 0)
		rc = store_cmd(st, what, "COMMIT", 0, NULL, false, err); /* nothing changed */
out:
	PQclear(res);
	if (rc != 0 || PQtransactionStatus(st->conn) != PQTRANS_IDLE)
		tx_rollback(st);
	pthread_mutex_unlock(&st->lock);
	return rc > 0 ? 0 : rc;
}

/* Each row's column 0 (JSON text) into a new array; NULL when out of memory. */
static json_t *rows_json(const PGresult *res, int col, int from)
{
	json_t *arr = json_array();

	for (int i = from; arr != NULL && i < PQntuples(res); i++) {
		json_t *o;

		if (PQgetisnull(res, i, col))
			continue;
		o = json_loads(PQgetvalue(res, i, col), 0, NULL);
		if (o == NULL || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	return arr;
}

int store_rules_list(struct store *st, json_t **ret_rules, int64_t *ret_version, vigil_err *err)
{
	/* One statement, one snapshot: the version and the rules agree. */
	static const char sql[] = "SELECT s.version, " RULE_JSON_SQL " FROM rule_set s"
				  " LEFT JOIN rules ON true ORDER BY position";
	PGresult *res = NULL;
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "listing rules", sql, 0, NULL, PGRES_TUPLES_OK, true, &res, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return verr_set(err, -EIO, "listing rules: the database has no rule_set row");
	}
	*ret_version = int_at(res, 0, 0);
	*ret_rules = rows_json(res, 1, 0);
	PQclear(res);
	return *ret_rules != NULL ? 0 : verr_set(err, -ENOMEM, "out of memory listing rules");
}

int store_rule_get(struct store *st, int64_t id, json_t **ret_rule, int64_t *ret_version,
		   vigil_err *err)
{
	static const char sql[] = "SELECT s.version, " RULE_JSON_SQL " FROM rule_set s"
				  " LEFT JOIN rules ON rules.id = $1::bigint";
	char idtext[24];
	const char *params[1] = {idtext};
	PGresult *res = NULL;
	int rc;

	snprintf(idtext, sizeof(idtext), "%" PRId64, id);
	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "reading a rule", sql, 1, params, PGRES_TUPLES_OK, true, &res, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	if (PQntuples(res) == 0 || PQgetisnull(res, 0, 1)) {
		PQclear(res);
		return verr_set(err, -ENOENT, "no rule with id %" PRId64, id);
	}
	*ret_version = int_at(res, 0, 0);
	*ret_rule = json_loads(PQgetvalue(res, 0, 1), 0, NULL);
	PQclear(res);
	return *ret_rule != NULL ? 0 : verr_set(err, -ENOMEM, "out of memory reading a rule");
}

/* The columns of a version row as version_json reads them. */
#define VERSION_COLUMNS                                                                            \
	"version, " TS_UTC("created_at") ", actor, kind, rule_id, change, rules_count,"            \
					 " snapshot IS NOT NULL"

/* The VERSION_COLUMNS of row, starting at column c, as a new object. */
static json_t *version_json(const PGresult *res, int row, int c)
{
	return json_pack(
	    "{s:I,s:s,s:s,s:s,s:o,s:s,s:I,s:b}", "version", (json_int_t)int_at(res, row, c),
	    "created_at", PQgetvalue(res, row, c + 1), "actor", PQgetvalue(res, row, c + 2), "kind",
	    PQgetvalue(res, row, c + 3), "rule_id",
	    PQgetisnull(res, row, c + 4) ? json_null() : json_integer(int_at(res, row, c + 4)),
	    "change", PQgetvalue(res, row, c + 5), "count", (json_int_t)int_at(res, row, c + 6),
	    "snapshot_kept", strcmp(PQgetvalue(res, row, c + 7), "t") == 0);
}

int store_rule_versions_list(struct store *st, int64_t before, int limit, json_t **ret,
			     int64_t *ret_version, vigil_err *err)
{
	/* The current version rides along as a row of its own (version 0 never exists). */
	static const char sql[] =
	    "SELECT * FROM (SELECT 0 AS o, version, NULL, NULL, NULL, NULL::bigint, NULL, 0, false"
	    " FROM rule_set) cur UNION ALL"
	    " SELECT * FROM (SELECT 1, " VERSION_COLUMNS " FROM rule_versions"
	    " WHERE ($1::bigint IS NULL OR version < $1::bigint)"
	    " ORDER BY version DESC LIMIT $2::integer) v ORDER BY 1, 2 DESC";
	char b[24], l[16];
	const char *params[2] = {before > 0 ? b : NULL, l};
	PGresult *res = NULL;
	json_t *arr;
	int rc;

	snprintf(b, sizeof(b), "%" PRId64, before);
	snprintf(l, sizeof(l), "%d", limit > 0 && limit <= 1000 ? limit : 100);
	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "listing rule versions", sql, 2, params, PGRES_TUPLES_OK, true, &res,
			err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	if (PQntuples(res) == 0 || strcmp(PQgetvalue(res, 0, 0), "0") != 0) {
		PQclear(res);
		return verr_set(err, -EIO,
				"listing rule versions: the database has no rule_set row");
	}
	*ret_version = int_at(res, 0, 1);
	arr = json_array();
	for (int i = 1; arr != NULL && i < PQntuples(res); i++) {
		json_t *o = version_json(res, i, 1); /* past the marker column */

		if (o == NULL || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	PQclear(res);
	*ret = arr;
	return arr != NULL ? 0 : verr_set(err, -ENOMEM, "out of memory listing rule versions");
}

int store_rule_version_get(struct store *st, int64_t version, json_t **ret, vigil_err *err)
{
	static const char sql[] = "SELECT " VERSION_COLUMNS ", before::text, after::text,"
				  " snapshot::text FROM rule_versions WHERE version = $1::bigint";
	char v[24];
	const char *params[1] = {v};
	PGresult *res = NULL;
	json_t *o, *before, *after, *rules;
	int rc;

	snprintf(v, sizeof(v), "%" PRId64, version);
	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "reading a rule version", sql, 1, params, PGRES_TUPLES_OK, true, &res,
			err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return verr_set(err, -ENOENT, "no rule set version %" PRId64, version);
	}
	o = version_json(res, 0, 0);
	before = json_at(res, 0, 8);
	after = json_at(res, 0, 9);
	rules = json_at(res, 0, 10);
	PQclear(res);
	rc = o == NULL || before == NULL || after == NULL || rules == NULL ||
	     json_object_set(o, "before", before) < 0 || json_object_set(o, "after", after) < 0 ||
	     json_object_set(o, "rules", rules) < 0;
	json_decref(before);
	json_decref(after);
	json_decref(rules);
	if (rc != 0) {
		json_decref(o);
		return verr_set(err, -ENOMEM, "out of memory reading a rule version");
	}
	*ret = o;
	return 0;
}
