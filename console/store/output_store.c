/* SPDX-License-Identifier: Apache-2.0 */
/* The outputs' cursors (output_store.h). */
#include "store/output_store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_priv.h"

/* The audits a reader may take: after a position, in order, their transactions over. */
#define AFTER_POS                                                                                  \
	"tx IS NOT NULL AND (tx, id) > ($1::xid8, $2::bigint)"                                     \
	" AND tx < pg_snapshot_xmin(pg_current_snapshot())"

#define LEASE "now() + make_interval(secs => 30)"
_Static_assert(OUTPUT_LEASE_S == 30, "LEASE says 30 s");

static void pos_text(struct audit_pos pos, char tx[24], char id[24])
{
	snprintf(tx, 24, "%" PRIu64, pos.tx);
	snprintf(id, 24, "%" PRId64, pos.id);
}

int output_store_claim(struct store *st, const char *sink, const char *kind, const char *owner,
		       struct audit_pos *ret_pos, vigil_err *err)
{
	/*
	 * A new sink starts where the audits stand now: every transaction
	 * below the snapshot's xmin is over (its audits are not for this sink),
	 * the ones from xmin on are read.
	 */
	static const char create[] = "INSERT INTO output_cursors (sink, kind, last_tx, last_id)"
				     " VALUES ($1, $2, pg_snapshot_xmin(pg_current_snapshot()), 0)"
				     " ON CONFLICT (sink) DO NOTHING";
	static const char take[] =
	    "UPDATE output_cursors SET owner = $3, kind = $2, lease_until = " LEASE ","
	    " updated_at = now() WHERE sink = $1 AND (owner IS NULL OR owner = $3"
	    " OR lease_until IS NULL OR lease_until < now())"
	    " RETURNING last_tx::text, last_id";
	static const char who[] =
	    "SELECT owner, " TS_UTC("lease_until") " FROM output_cursors WHERE sink = $1";
	const char *params[3] = {sink, kind, owner};
	PGresult *res = NULL;
	int rc;

	pthread_mutex_lock(&st->lock);
	if ((rc = store_cmd(st, "creating an output's cursor", create, 2, params, true, err)) < 0)
		goto out;
	if ((rc = store_exec(st, "claiming an output", take, 3, params, PGRES_TUPLES_OK, true, &res,
			     err)) < 0)
		goto out;
	if (PQntuples(res) == 1) {
		ret_pos->tx = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
		ret_pos->id = (int64_t)strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		goto out;
	}
	PQclear(res);
	res = NULL;
	if ((rc = store_exec(st, "reading an output's owner", who, 1, params, PGRES_TUPLES_OK, true,
			     &res, err)) < 0)
		goto out;
	rc = verr_set(err, -EBUSY, "output %s is delivered by console %s (its lease runs until %s)",
		      sink, PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "?",
		      PQntuples(res) == 1 ? PQgetvalue(res, 0, 1) : "?");
out:
	pthread_mutex_unlock(&st->lock);
	PQclear(res);
	return rc;
}

/* Caller holds the lock.  -EBUSY when owner does not hold sink. */
static int save_locked(struct store *st, const char *sink, const char *owner, struct audit_pos pos,
		       int64_t delivered, int64_t dropped, int64_t backlog, bool retry,
		       vigil_err *err)
{
	static const char sql[] =
	    "UPDATE output_cursors SET last_tx = $2::xid8, last_id = $3::bigint,"
	    " delivered = delivered + $4::bigint, dropped = dropped + $5::bigint,"
	    " backlog = coalesce($6::bigint, backlog), lease_until = " LEASE ", updated_at = now()"
	    " WHERE sink = $1 AND owner = $7";
	char tx[24], id[24], deliv[24], drop[24], back[24];
	const char *params[7] = {sink, tx, id, deliv, drop, backlog >= 0 ? back : NULL, owner};
	PGresult *res = NULL;
	int rc;

	pos_text(pos, tx, id);
	snprintf(deliv, sizeof(deliv), "%" PRId64, delivered);
	snprintf(drop, sizeof(drop), "%" PRId64, dropped);
	snprintf(back, sizeof(back), "%" PRId64, backlog);
	rc = store_exec(st, "saving an output's cursor", sql, 7, params, PGRES_COMMAND_OK, retry,
			&res, err);
	if (rc < 0)
		return rc;
	if (atoi(PQcmdTuples(res)) != 1)
		rc = verr_set(err, -EBUSY, "output %s: another console took it over", sink);
	PQclear(res);
	return rc;
}

int output_store_save(struct store *st, const char *sink, const char *owner, struct audit_pos pos,
		      int64_t delivered, int64_t backlog, vigil_err *err)
{
	int rc;

	pthread_mutex_lock(&st->lock);
	/* Idempotent: the same values again change nothing but the counts (at-least-once). */
	rc = save_locked(st, sink, owner, pos, delivered, 0, backlog, true, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int output_store_backlog(struct store *st, struct audit_pos pos, int64_t limit, int64_t *ret_count,
			 double *ret_age_s, vigil_err *err)
{
	static const char sql[] =
	    "SELECT count(*), coalesce(extract(epoch FROM now() - min(stored_at)), 0)"
	    " FROM (SELECT stored_at FROM audits WHERE " AFTER_POS
	    " ORDER BY tx, id LIMIT $3::bigint) s";
	char tx[24], id[24], lim[24];
	const char *params[3] = {tx, id, lim};
	PGresult *res = NULL;
	int rc;

	pos_text(pos, tx, id);
	snprintf(lim, sizeof(lim), "%" PRId64, limit > 0 ? limit : 1);
	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "measuring an output's backlog", sql, 3, params, PGRES_TUPLES_OK, true,
			&res, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	*ret_count = (int64_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	*ret_age_s = strtod(PQgetvalue(res, 0, 1), NULL);
	if (*ret_age_s < 0)
		*ret_age_s = 0; /* a clock set back */
	PQclear(res);
	return 0;
}

int output_store_skip_range(struct store *st, struct audit_pos pos, int64_t limit, double older_s,
			    struct audit_pos *ret_to, struct output_drop *ret_drop, vigil_err *err)
{
	/* clang-format off */
	static const char sql[] =
	    "WITH s AS (SELECT tx, id, stored_at FROM audits WHERE " AFTER_POS
	    " ORDER BY tx, id LIMIT $3::bigint),"
	    " last AS (SELECT tx, id FROM s WHERE $4::float8 IS NULL"
	    " OR stored_at < now() - make_interval(secs => $4::float8)"
	    " ORDER BY tx DESC, id DESC LIMIT 1)"
	    " SELECT count(s.id), min(s.id), max(s.id), (SELECT tx::text FROM last),"
	    " (SELECT id FROM last) FROM s WHERE (s.tx, s.id) <= (SELECT tx, id FROM last)";
	/* clang-format on */
	char tx[24], id[24], lim[24], age[32];
	const char *params[4] = {tx, id, lim, older_s >= 0 ? age : NULL};
	PGresult *res = NULL;
	int rc;

	pos_text(pos, tx, id);
	snprintf(lim, sizeof(lim), "%" PRId64, limit > 0 ? limit : 1);
	snprintf(age, sizeof(age), "%.3f", older_s);
	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "finding what an output skips", sql, 4, params, PGRES_TUPLES_OK, true,
			&res, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	*ret_to = pos;
	ret_drop->count = (int64_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	ret_drop->first_id = ret_drop->last_id = 0;
	if (ret_drop->count > 0 && !PQgetisnull(res, 0, 3)) {
		ret_drop->first_id = (int64_t)strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		ret_drop->last_id = (int64_t)strtoll(PQgetvalue(res, 0, 2), NULL, 10);
		ret_to->tx = strtoull(PQgetvalue(res, 0, 3), NULL, 10);
		ret_to->id = (int64_t)strtoll(PQgetvalue(res, 0, 4), NULL, 10);
	} else {
		ret_drop->count = 0;
	}
	PQclear(res);
	return 0;
}

int output_store_drop(struct store *st, const char *sink, const char *kind, const char *owner,
		      struct audit_pos to, int64_t delivered, const struct output_drop *d,
		      vigil_err *err)
{
	static const char sql[] =
	    "INSERT INTO audits (host_id, kind, severity, summary, detail)"
	    " VALUES ('', 'output_dropped', 'high', $1, jsonb_build_object('sink', $2::text,"
	    " 'sink_kind', $3::text, 'reason', $4::text, 'count', $5::bigint,"
	    " 'first_id', $6::bigint, 'last_id', $7::bigint, 'why', $8::text))";
	char summary[600], count[24], first[24], last[24], why[sizeof(d->why)];
	const char *params[8] = {summary, sink, kind, d->reason, count, first, last, why};
	int rc;

	/* The caller's text may be cut inside a character: the database takes UTF-8 only. */
	snprintf(why, sizeof(why), "%s", d->why);
	store_utf8_trim(why);
	snprintf(summary, sizeof(summary),
		 "output %s (%s) dropped %" PRId64 " audit(s), ids %" PRId64 " to %" PRId64 ": %s",
		 sink, kind, d->count, d->first_id, d->last_id, d->why);
	store_utf8_trim(summary);
	snprintf(count, sizeof(count), "%" PRId64, d->count);
	snprintf(first, sizeof(first), "%" PRId64, d->first_id);
	snprintf(last, sizeof(last), "%" PRId64, d->last_id);
	pthread_mutex_lock(&st->lock);
	if ((rc = store_cmd(st, "recording an output's drop", "BEGIN", 0, NULL, true, err)) < 0)
		goto out;
	if ((rc = save_locked(st, sink, owner, to, delivered, d->count, -1, false, err)) < 0 ||
	    (rc = store_cmd(st, "recording an output's drop", sql, 8, params, false, err)) < 0 ||
	    (rc = store_cmd(st, "recording an output's drop", "COMMIT", 0, NULL, false, err)) < 0) {
		if (PQstatus(st->conn) == CONNECTION_OK &&
		    PQtransactionStatus(st->conn) != PQTRANS_IDLE)
			PQclear(PQexec(st->conn, "ROLLBACK"));
	}
out:
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int output_store_release(struct store *st, const char *sink, const char *owner, vigil_err *err)
{
	static const char sql[] =
	    "UPDATE output_cursors SET lease_until = now(), updated_at = now()"
	    " WHERE sink = $1 AND owner = $2";
	const char *params[2] = {sink, owner};
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = store_cmd(st, "releasing an output", sql, 2, params, true, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int output_store_list(struct store *st, json_t **ret, vigil_err *err)
{
	static const char sql[] =
	    "SELECT sink, kind, delivered, dropped, backlog, owner,"
	    " coalesce(lease_until > now(), false) FROM output_cursors ORDER BY sink COLLATE \"C\"";
	PGresult *res = NULL;
	json_t *arr;
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "listing the outputs", sql, 0, NULL, PGRES_TUPLES_OK, true, &res, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	arr = json_array();
	for (int i = 0; arr != NULL && i < PQntuples(res); i++) {
		json_t *o = json_pack(
		    "{s:s,s:s,s:I,s:I,s:I,s:o,s:b}", "sink", PQgetvalue(res, i, 0), "kind",
		    PQgetvalue(res, i, 1), "delivered",
		    (json_int_t)strtoll(PQgetvalue(res, i, 2), NULL, 10), "dropped",
		    (json_int_t)strtoll(PQgetvalue(res, i, 3), NULL, 10), "backlog",
		    (json_int_t)strtoll(PQgetvalue(res, i, 4), NULL, 10), "owner",
		    store_json_text(res, i, 5), "active", strcmp(PQgetvalue(res, i, 6), "t") == 0);

		if (o == NULL || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	PQclear(res);
	if (arr == NULL)
		return verr_set(err, -ENOMEM, "out of memory listing the outputs");
	*ret = arr;
	return 0;
}
