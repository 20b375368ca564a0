/* SPDX-License-Identifier: Apache-2.0 */
/* Read-side queries for the API: audits. */
#include "store/audit_queries.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_priv.h"

/*
 * The columns audit_json reads.  effect is set on deviations only
 * (migration 10), so wanted and why are read from the detail of those
 * alone: other audits' detail has keys of its own.
 */
#define AUDIT_COLUMNS                                                                              \
	"id, host_id, " TS_UTC("ts") ", kind, severity, summary, detail::text, service, exe,"      \
				     " rule, effect,"                                              \
				     " CASE WHEN effect IS NOT NULL THEN detail->>'wanted' END,"   \
				     " CASE WHEN effect IS NOT NULL THEN detail->>'why' END,"      \
				     " container_id, container_name, container_image,"             \
				     " container_runtime"

/*
 * The audit's container (migration 16), from columns c..c+3: {id, name,
 * image, runtime}, each null when not known; null outside containers.
 */
static json_t *container_json(const PGresult *res, int i, int c)
{
	if (PQgetisnull(res, i, c))
		return json_null();
	return json_pack("{s:s,s:o,s:o,s:o}", "id", PQgetvalue(res, i, c), "name",
			 store_json_text(res, i, c + 1), "image", store_json_text(res, i, c + 2),
			 "runtime", store_json_text(res, i, c + 3));
}

/* Row i's audit from AUDIT_COLUMNS starting at column c. */
static json_t *audit_json_at(const PGresult *res, int i, int c)
{
	json_t *detail = json_loads(PQgetvalue(res, i, c + 6), 0, NULL);

	return json_pack(
	    "{s:I,s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "id",
	    (json_int_t)strtoll(PQgetvalue(res, i, c), NULL, 10), "host_id",
	    PQgetvalue(res, i, c + 1), "ts", PQgetvalue(res, i, c + 2), "kind",
	    PQgetvalue(res, i, c + 3), "severity", PQgetvalue(res, i, c + 4), "summary",
	    PQgetvalue(res, i, c + 5), "detail", detail ? detail : json_object(), "service",
	    store_json_text(res, i, c + 7), "exe", store_json_text(res, i, c + 8), "rule",
	    store_json_text(res, i, c + 9), "effect", store_json_text(res, i, c + 10), "wanted",
	    store_json_text(res, i, c + 11), "why", store_json_text(res, i, c + 12), "container",
	    container_json(res, i, c + 13));
}

static json_t *audit_json(const PGresult *res, int i)
{
	return audit_json_at(res, i, 0);
}

int store_audits_list(struct store *st, const struct audit_filter *f, json_t **ret, vigil_err *err)
{
	/*
	 * Every filter is a parameter; an absent one is NULL and matches all.
	 * Paging goes backwards by id (newest first): pass the last id seen.
	 */
	static const char sql[] = "SELECT " AUDIT_COLUMNS " FROM audits"
				  " WHERE ($1::text IS NULL OR host_id = $1)"
				  " AND ($2::text IS NULL OR kind = $2)"
				  " AND ($3::timestamptz IS NULL OR ts >= $3::timestamptz)"
				  " AND ($4::timestamptz IS NULL OR ts < $4::timestamptz)"
				  " AND ($5::bigint IS NULL OR id < $5::bigint)"
				  " AND ($7::text IS NULL OR service = $7)"
				  " AND ($8::text IS NULL OR rule = $8)"
				  " AND ($9::text IS NULL OR effect = $9)"
				  " AND ($10::text IS NULL OR severity = $10)"
				  " AND ($11::text IS NULL OR container_image = $11)"
				  " AND ($12::text IS NULL OR container_name = $12)"
				  " ORDER BY id DESC LIMIT $6::integer";
	char before[24], limit[16];
	const char *params[12] = {
	    f->host_id, f->kind,     f->since, f->until,  f->before_id > 0 ? before : NULL,
	    limit,	f->service,  f->rule,  f->effect, f->severity,
	    f->image,	f->container};
	PGresult *res = NULL;
	json_t *arr;
	int rc;

	snprintf(before, sizeof(before), "%" PRId64, f->before_id);
	snprintf(limit, sizeof(limit), "%d", f->limit > 0 && f->limit <= 1000 ? f->limit : 100);
	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "listing audits", sql, 12, params, PGRES_TUPLES_OK, true, &res, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	arr = json_array();
	for (int i = 0; arr != NULL && i < PQntuples(res); i++) {
		json_t *o = audit_json(res, i);

		if (o == NULL || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	PQclear(res);
	if (arr == NULL)
		return verr_set(err, -ENOMEM, "out of memory listing audits");
	*ret = arr;
	return 0;
}

int store_audit_get(struct store *st, int64_t id, json_t **ret, vigil_err *err)
{
	static const char sql[] = "SELECT " AUDIT_COLUMNS " FROM audits WHERE id = $1::bigint";
	char idtext[24];
	const char *params[1] = {idtext};
	PGresult *res = NULL;
	int rc;

	snprintf(idtext, sizeof(idtext), "%" PRId64, id);
	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "reading an audit", sql, 1, params, PGRES_TUPLES_OK, true, &res, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return verr_set(err, -ENOENT, "no audit %" PRId64, id);
	}
	*ret = audit_json(res, 0);
	PQclear(res);
	return *ret != NULL ? 0 : verr_set(err, -ENOMEM, "out of memory");
}

/* Severities the summary counts, in the order of its buckets' keys. */
static const char *const summary_severities[] = {"low", "medium", "high"};
#define SUMMARY_SEVERITIES 3

static int severity_index(const char *sev)
{
	for (int i = 0; i < SUMMARY_SEVERITIES; i++)
		if (strcmp(sev, summary_severities[i]) == 0)
			return i;
	return -1;
}

/* The summary's JSON from its rows (see store_audits_summary); NULL when out of memory. */
static json_t *summary_json(const PGresult *res)
{
	json_t *starts = json_loads(PQgetvalue(res, 0, 3), 0, NULL);
	size_t nb = json_array_size(starts);
	json_t *buckets = json_array(), *hosts = json_array(), *host = NULL, *out = NULL;
	const char *host_id = NULL;

	if (starts == NULL || buckets == NULL || hosts == NULL)
		goto done;
	for (size_t b = 0; b < nb; b++)
		if (json_array_append_new(buckets, json_pack("{s:O,s:i,s:i,s:i}", "ts",
							     json_array_get(starts, b), "low", 0,
							     "medium", 0, "high", 0)) < 0)
			goto done;
	/* Rows come ordered by host: one host's counts follow each other. */
	for (int i = 0; i < PQntuples(res); i++) {
		long idx;
		json_int_t n;
		int sev;

		if (PQgetisnull(res, i, 4))
			continue; /* the window's row when it has no audits */
		idx = strtol(PQgetvalue(res, i, 4), NULL, 10);
		n = (json_int_t)strtoll(PQgetvalue(res, i, 7), NULL, 10);
		if (idx < 0 || (size_t)idx >= nb)
			continue;
		if (host_id == NULL || strcmp(host_id, PQgetvalue(res, i, 5)) != 0) {
			host = json_pack("{s:s,s:i,s:[]}", "host", PQgetvalue(res, i, 5), "total",
					 0, "buckets");
			if (host == NULL || json_array_append_new(hosts, host) < 0)
				goto done;
			for (size_t b = 0; b < nb; b++)
				json_array_append_new(json_object_get(host, "buckets"),
						      json_integer(0));
			host_id = PQgetvalue(res, i, 5);
		}
		json_t *slot = json_array_get(json_object_get(host, "buckets"), (size_t)idx);
		json_integer_set(slot, json_integer_value(slot) + n);
		json_t *total = json_object_get(host, "total");
		json_integer_set(total, json_integer_value(total) + n);
		if ((sev = severity_index(PQgetvalue(res, i, 6))) >= 0) {
			json_t *c = json_object_get(json_array_get(buckets, (size_t)idx),
						    summary_severities[sev]);
			json_integer_set(c, json_integer_value(c) + n);
		}
	}
	out = json_pack("{s:s,s:s,s:I,s:O,s:O}", "since", PQgetvalue(res, 0, 0), "until",
			PQgetvalue(res, 0, 1), "bucket_s",
			(json_int_t)strtoll(PQgetvalue(res, 0, 2), NULL, 10), "buckets", buckets,
			"hosts", hosts);
done:
	json_decref(starts);
	json_decref(buckets);
	json_decref(hosts);
	return out;
}

int store_audits_summary(struct store *st, const struct audit_filter *f, json_t **ret,
			 vigil_err *err)
{
	/*
	 * The window (default: the 24 hours up to now) in about 48 buckets of
	 * a round length; the bucket starts as one JSON array (NULL when the
	 * window is not forward: no series); then per host, bucket and
	 * severity the count.
	 */
	static const char sql[] =
	    "WITH w AS (SELECT coalesce($2::timestamptz, now()) AS u),"
	    " w2 AS (SELECT coalesce($1::timestamptz, u - interval '24 hours') AS s, u FROM w),"
	    " p AS (SELECT s, u, (SELECT coalesce(min(x), 604800) FROM unnest(ARRAY[60, 300,"
	    " 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800]) x"
	    " WHERE x * 48 >= extract(epoch FROM u - s)) AS step FROM w2)"
	    " SELECT " TS_UTC("p.s") ", " TS_UTC(
		"p.u") ", p.step,"
		       " (SELECT json_agg(" TS_UTC(
			   "g") ") FROM generate_series(p.s,"
				" p.u - interval '1 microsecond', make_interval(secs => p.step)) "
				"g)::text,"
				" a.idx, a.host_id, a.severity, a.n FROM p LEFT JOIN LATERAL"
				" (SELECT floor(extract(epoch FROM ts - p.s) / p.step)::integer AS "
				"idx, host_id,"
				" severity, count(*) AS n FROM audits WHERE ts >= p.s AND ts < p.u"
				" AND ($3::text IS NULL OR host_id = $3) GROUP BY 1, 2, 3) a ON "
				"true"
				" ORDER BY a.host_id, a.idx";
	const char *params[3] = {f->since, f->until, f->host_id};
	PGresult *res = NULL;
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "summing audits", sql, 3, params, PGRES_TUPLES_OK, true, &res, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	if (PQntuples(res) == 0 || PQgetisnull(res, 0, 3)) {
		PQclear(res);
		return verr_set(err, -ERANGE, "the window is empty: since must be before until");
	}
	*ret = summary_json(res);
	PQclear(res);
	return *ret != NULL ? 0 : verr_set(err, -ENOMEM, "out of memory summing audits");
}

int store_audits_after(struct store *st, struct audit_pos pos, size_t max, struct audit_item *items,
		       size_t *ret_n, vigil_err *err)
{
	/*
	 * The row comparison reads audits_tx_id_idx in order; the xmin bound
	 * leaves out what a running transaction might still be joined by.
	 * ORDER BY names the table's columns: a bare "tx" would be the output
	 * column, the text, and "1000" sorts before "999".
	 */
	static const char sql[] = "SELECT tx::text, " AUDIT_COLUMNS " FROM audits"
				  " WHERE tx IS NOT NULL AND (tx, id) > ($1::xid8, $2::bigint)"
				  " AND tx < pg_snapshot_xmin(pg_current_snapshot())"
				  " ORDER BY audits.tx, audits.id LIMIT $3::integer";
	char tx[24], id[24], limit[16];
	const char *params[3] = {tx, id, limit};
	PGresult *res = NULL;
	size_t n = 0;
	int rc;

	*ret_n = 0;
	if (max == 0 || max > 100000)
		return verr_set(err, -EINVAL, "reading audits: %zu at a time is out of range", max);
	snprintf(tx, sizeof(tx), "%" PRIu64, pos.tx);
	snprintf(id, sizeof(id), "%" PRId64, pos.id);
	snprintf(limit, sizeof(limit), "%zu", max);
	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "reading audits for the outputs", sql, 3, params, PGRES_TUPLES_OK, true,
			&res, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	for (int i = 0; i < PQntuples(res) && n < max; i++) {
		json_t *o = audit_json_at(res, i, 1);

		if (o == NULL) {
			for (size_t k = 0; k < n; k++)
				json_decref(items[k].audit);
			PQclear(res);
			return verr_set(err, -ENOMEM, "out of memory reading audits");
		}
		items[n].pos.tx = strtoull(PQgetvalue(res, i, 0), NULL, 10);
		items[n].pos.id = (int64_t)strtoll(PQgetvalue(res, i, 1), NULL, 10);
		items[n].audit = o;
		n++;
	}
	PQclear(res);
	*ret_n = n;
	return 0;
}
