/* SPDX-License-Identifier: Apache-2.0 */
/* The database's side of GET /metrics (metrics_store.h). */
#include "store/metrics_store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_priv.h"

/* A counter of the capture JSON as text, "0" unless it is a number (hostile input, checked). */
#define CAPTURE_NUM(path)                                                                          \
	"CASE WHEN jsonb_typeof(capture #> '" path "') = 'number'"                                 \
	" THEN capture #>> '" path "' ELSE '0' END"

static uint64_t num(const PGresult *res, int row, int col)
{
	const char *s = PQgetvalue(res, row, col);
	double d;

	/* Sums come as numeric text; counters are integers up to INT64_MAX each. */
	if (s[0] == '-' || (d = strtod(s, NULL)) < 0)
		return 0;
	return d >= 18446744073709551615.0 ? UINT64_MAX : strtoull(s, NULL, 10);
}

int metrics_store_hosts(struct store *st, struct metrics_hosts *ret, vigil_err *err)
{
	/* clang-format off */
	static const char sql[] =
	    "SELECT host_id, connected,"
	    " coalesce(rules_version, 0) < (SELECT version FROM rule_set),"
	    " CASE WHEN jsonb_typeof(capture -> 'drops') = 'object' THEN"
	    " (SELECT coalesce(sum((value #>> '{}')::numeric), 0) FROM jsonb_each(capture -> 'drops')"
	    " WHERE jsonb_typeof(value) = 'number')::text ELSE '0' END,"
	    " jsonb_typeof(capture -> 'delivery') = 'object',"
	    " " CAPTURE_NUM("{delivery,spool_pending}") ","
	    " " CAPTURE_NUM("{delivery,spool_bytes}") ","
	    " " CAPTURE_NUM("{delivery,spool_dropped}") ","
	    " (SELECT version FROM rule_set)"
	    " FROM hosts ORDER BY host_id COLLATE \"C\"";
	/* clang-format on */
	static const char version_sql[] = "SELECT version FROM rule_set";
	PGresult *res = NULL;
	int rc, n;

	memset(ret, 0, sizeof(*ret));
	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "reading the hosts for /metrics", sql, 0, NULL, PGRES_TUPLES_OK, true,
			&res, err);
	if (rc == 0 && PQntuples(res) == 0) {
		PQclear(res);
		res = NULL;
		rc = store_exec(st, "reading the rule set's version", version_sql, 0, NULL,
				PGRES_TUPLES_OK, true, &res, err);
		if (rc == 0 && PQntuples(res) == 1)
			ret->rules_version = (int64_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		pthread_mutex_unlock(&st->lock);
		PQclear(res);
		return rc;
	}
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	n = PQntuples(res);
	ret->hosts = calloc((size_t)n, sizeof(*ret->hosts));
	if (ret->hosts == NULL) {
		PQclear(res);
		return verr_set(err, -ENOMEM, "out of memory reading the hosts");
	}
	for (int i = 0; i < n; i++) {
		struct metrics_host *h = &ret->hosts[i];

		snprintf(h->host_id, sizeof(h->host_id), "%s", PQgetvalue(res, i, 0));
		h->connected = strcmp(PQgetvalue(res, i, 1), "t") == 0;
		h->lagging = strcmp(PQgetvalue(res, i, 2), "t") == 0;
		h->lost = num(res, i, 3);
		h->has_delivery = strcmp(PQgetvalue(res, i, 4), "t") == 0;
		h->spool_pending = num(res, i, 5);
		h->spool_bytes = num(res, i, 6);
		h->spool_dropped = num(res, i, 7);
	}
	ret->n = (size_t)n;
	ret->rules_version = (int64_t)strtoll(PQgetvalue(res, 0, 8), NULL, 10);
	PQclear(res);
	return 0;
}

void metrics_hosts_fini(struct metrics_hosts *h)
{
	free(h->hosts);
	h->hosts = NULL;
	h->n = 0;
}

int metrics_store_audit_counts(struct store *st, bool full, uint64_t from,
			       struct metrics_audit_count **ret, size_t *ret_n, uint64_t *ret_xmin,
			       vigil_err *err)
{
	/* One row (the bound, no counts) when nothing is counted. */
	static const char full_sql[] =
	    "WITH x AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS m)"
	    " SELECT x.m::text, a.kind, a.severity, a.n FROM x LEFT JOIN LATERAL"
	    " (SELECT kind, severity, count(*) AS n FROM audits WHERE tx IS NULL OR tx < x.m"
	    " GROUP BY 1, 2) a ON true";
	static const char incr_sql[] =
	    "WITH x AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS m)"
	    " SELECT x.m::text, a.kind, a.severity, a.n FROM x LEFT JOIN LATERAL"
	    " (SELECT kind, severity, count(*) AS n FROM audits WHERE tx >= $1::xid8"
	    " AND tx < x.m GROUP BY 1, 2) a ON true";
	char fromtext[24];
	const char *params[1] = {fromtext};
	struct metrics_audit_count *rows;
	PGresult *res = NULL;
	size_t n = 0;
	int rc;

	snprintf(fromtext, sizeof(fromtext), "%" PRIu64, from);
	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "counting audits for /metrics", full ? full_sql : incr_sql,
			full ? 0 : 1, full ? NULL : params, PGRES_TUPLES_OK, true, &res, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	rows = calloc((size_t)PQntuples(res) + 1, sizeof(*rows));
	if (rows == NULL) {
		PQclear(res);
		return verr_set(err, -ENOMEM, "out of memory counting audits");
	}
	for (int i = 0; i < PQntuples(res); i++) {
		if (PQgetisnull(res, i, 1))
			continue;
		snprintf(rows[n].kind, sizeof(rows[n].kind), "%s", PQgetvalue(res, i, 1));
		snprintf(rows[n].severity, sizeof(rows[n].severity), "%s", PQgetvalue(res, i, 2));
		rows[n].n = (int64_t)strtoll(PQgetvalue(res, i, 3), NULL, 10);
		n++;
	}
	*ret_xmin = PQntuples(res) > 0 ? strtoull(PQgetvalue(res, 0, 0), NULL, 10) : from;
	PQclear(res);
	*ret = rows;
	*ret_n = n;
	return 0;
}
