/* SPDX-License-Identifier: Apache-2.0 */
/* What each host's defender holds of the rule set (host_rules.h). */
#include "store/host_rules.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_priv.h"
#include "utf8.h"

int store_host_rules_report(struct store *st, const char *host_id,
			    const struct store_rules_report *r, struct store_host_rules *ret,
			    vigil_err *err)
{
	/*
	 * SET sees the row as it was: the acknowledgement time moves only
	 * when the version does; a console's refusal outlives reports until
	 * the host holds that version.
	 */
	static const char sql[] =
	    "UPDATE hosts SET rules_protocol = $2::integer,"
	    " rules_acked_at = CASE WHEN rules_version IS DISTINCT FROM $3::bigint THEN now()"
	    " ELSE rules_acked_at END,"
	    " rules_version = $3::bigint,"
	    " rules_refused_version = CASE WHEN $4::bigint > 0 THEN $4::bigint"
	    " WHEN rules_refused_by = 'console' AND rules_refused_version > $3::bigint"
	    " THEN rules_refused_version END,"
	    " rules_refused_reason = CASE WHEN $4::bigint > 0 THEN $5"
	    " WHEN rules_refused_by = 'console' AND rules_refused_version > $3::bigint"
	    " THEN rules_refused_reason END,"
	    " rules_refused_by = CASE WHEN $4::bigint > 0 THEN 'defender'"
	    " WHEN rules_refused_by = 'console' AND rules_refused_version > $3::bigint"
	    " THEN 'console' END"
	    " WHERE host_id = $1"
	    " RETURNING labels::text, coalesce(rules_refused_version, 0),"
	    " coalesce(rules_refused_by, '')";
	char proto[16], version[24], refused[24], reason[HOST_RULES_REASON_MAX + 1];
	const char *params[5] = {host_id, proto, version, refused, reason};
	PGresult *res = NULL;
	int rc;

	if (r->version > (uint64_t)INT64_MAX || r->refused_version > (uint64_t)INT64_MAX)
		return verr_set(err, -EINVAL, "rule-set version out of range");
	snprintf(proto, sizeof(proto), "%" PRIu32, r->protocol);
	snprintf(version, sizeof(version), "%" PRIu64, r->version);
	snprintf(refused, sizeof(refused), "%" PRIu64, r->refused_version);
	snprintf(reason, sizeof(reason), "%s", r->refused_reason != NULL ? r->refused_reason : "");
	store_utf8_trim(reason);
	if (reason[0] == '\0' && r->refused_version > 0)
		snprintf(reason, sizeof(reason), "(the defender gave no valid reason)");
	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "recording a host's rule set", sql, 5, params, PGRES_TUPLES_OK, true,
			&res, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return verr_set(err, -ENOENT, "no host %s", host_id);
	}
	ret->labels_json = strdup(PQgetvalue(res, 0, 0));
	ret->refused_version = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	ret->refused_by_console = strcmp(PQgetvalue(res, 0, 2), "console") == 0;
	PQclear(res);
	if (ret->labels_json == NULL)
		return verr_set(err, -ENOMEM, "out of memory");
	return 0;
}

int store_host_rules_refuse(struct store *st, const char *host_id, int64_t version,
			    const char *reason, bool *ret_new, vigil_err *err)
{
	static const char sql[] =
	    "UPDATE hosts SET rules_refused_version = $2::bigint, rules_refused_reason = $3,"
	    " rules_refused_by = 'console' WHERE host_id = $1"
	    " AND (rules_refused_version IS DISTINCT FROM $2::bigint"
	    " OR rules_refused_by IS DISTINCT FROM 'console')";
	char v[24], why[HOST_RULES_REASON_MAX + 1];
	const char *params[3] = {host_id, v, why};
	PGresult *res = NULL;
	int rc;

	snprintf(v, sizeof(v), "%" PRId64, version);
	snprintf(why, sizeof(why), "%s", reason);
	store_utf8_trim(why);
	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "recording a rule set the console could not send", sql, 3, params,
			PGRES_COMMAND_OK, true, &res, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	if (ret_new != NULL)
		*ret_new = atoi(PQcmdTuples(res)) > 0;
	PQclear(res);
	return 0;
}

int store_rules_current_version(struct store *st, int64_t *ret_version, vigil_err *err)
{
	PGresult *res = NULL;
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "reading the rule set's version", "SELECT version FROM rule_set", 0,
			NULL, PGRES_TUPLES_OK, true, &res, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	*ret_version = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
	PQclear(res);
	return 0;
}
