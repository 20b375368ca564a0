/* SPDX-License-Identifier: Apache-2.0 */
/* Read-side queries for the API: audits. */
#include "store/audit_queries.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_priv.h"

int store_audits_list(struct store *st, const struct audit_filter *f, json_t **ret, vigil_err *err)
{
	/*
	 * Every filter is a parameter; an absent one is NULL and matches all.
	 * Paging goes backwards by id (newest first): pass the last id seen.
	 * effect is set on deviations only (migration 10), so wanted and why
	 * are read from the detail of those alone: other audits' detail has
	 * keys of its own.
	 */
	static const char sql[] = "SELECT id, host_id, " TS_UTC(
	    "ts") ", kind, severity, summary, detail::text,"
		  " service, exe, rule, effect,"
		  " CASE WHEN effect IS NOT NULL THEN detail->>'wanted' END,"
		  " CASE WHEN effect IS NOT NULL THEN detail->>'why' END FROM audits"
		  " WHERE ($1::text IS NULL OR host_id = $1)"
		  " AND ($2::text IS NULL OR kind = $2)"
		  " AND ($3::timestamptz IS NULL OR ts >= $3::timestamptz)"
		  " AND ($4::timestamptz IS NULL OR ts < $4::timestamptz)"
		  " AND ($5::bigint IS NULL OR id < $5::bigint)"
		  " AND ($7::text IS NULL OR service = $7)"
		  " AND ($8::text IS NULL OR rule = $8)"
		  " AND ($9::text IS NULL OR effect = $9)"
		  " ORDER BY id DESC LIMIT $6::integer";
	char before[24], limit[16];
	const char *params[9] = {
	    f->host_id, f->kind,    f->since, f->until, f->before_id > 0 ? before : NULL,
	    limit,	f->service, f->rule,  f->effect};
	PGresult *res = NULL;
	json_t *arr;
	int rc;

	snprintf(before, sizeof(before), "%" PRId64, f->before_id);
	snprintf(limit, sizeof(limit), "%d", f->limit > 0 && f->limit <= 1000 ? f->limit : 100);
	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "listing audits", sql, 9, params, PGRES_TUPLES_OK, true, &res, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	arr = json_array();
	for (int i = 0; arr != NULL && i < PQntuples(res); i++) {
		json_t *detail = json_loads(PQgetvalue(res, i, 6), 0, NULL);
		json_t *o = json_pack(
		    "{s:I,s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "id",
		    (json_int_t)strtoll(PQgetvalue(res, i, 0), NULL, 10), "host_id",
		    PQgetvalue(res, i, 1), "ts", PQgetvalue(res, i, 2), "kind",
		    PQgetvalue(res, i, 3), "severity", PQgetvalue(res, i, 4), "summary",
		    PQgetvalue(res, i, 5), "detail", detail ? detail : json_object(), "service",
		    store_json_text(res, i, 7), "exe", store_json_text(res, i, 8), "rule",
		    store_json_text(res, i, 9), "effect", store_json_text(res, i, 10), "wanted",
		    store_json_text(res, i, 11), "why", store_json_text(res, i, 12));
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
