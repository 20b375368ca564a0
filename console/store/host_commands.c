/* SPDX-License-Identifier: Apache-2.0 */
/* Operator commands for defenders: queued by the API, handed out in heartbeat replies. */
#include "store/host_commands.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_priv.h"

/* The ids as a bigint[] literal "{1,2,3}" (caller frees); ids past INT64_MAX are no ids of ours. */
static char *id_array(const uint64_t *ids, size_t n)
{
	char *text = malloc(n * 21 + 3), *p = text;

	if (text == NULL)
		return NULL;
	*p++ = '{';
	for (size_t i = 0; i < n; i++) {
		if (ids[i] == 0 || ids[i] > (uint64_t)INT64_MAX)
			continue;
		p += sprintf(p, "%s%" PRIu64, p[-1] == '{' ? "" : ",", ids[i]);
	}
	*p++ = '}';
	*p = '\0';
	return text;
}

int store_commands_sync(struct store *st, const char *host_id, const uint64_t *done, size_t ndone,
			struct store_command *out, size_t max, size_t *ret_n, vigil_err *err)
{
	/*
	 * The SELECT sees the table as it was before the UPDATE (one snapshot
	 * per statement), hence "NOT IN acked".  host_id in the UPDATE: a host
	 * can only acknowledge its own commands.
	 */
	static const char sql[] =
	    "WITH acked AS (UPDATE commands SET acked_at = now() WHERE host_id = $1"
	    " AND acked_at IS NULL AND id = ANY ($2::bigint[]) RETURNING id)"
	    " SELECT id, kind, service, coalesce(exe, ''), coalesce(entry_kind, ''),"
	    " coalesce(pattern, '') FROM commands WHERE host_id = $1 AND acked_at IS NULL"
	    " AND id NOT IN (SELECT id FROM acked) ORDER BY id LIMIT $3::integer";
	char limit[16], *ids;
	const char *params[3] = {host_id, NULL, limit};
	PGresult *res = NULL;
	int rc, n;

	*ret_n = 0;
	if (ndone > COMMANDS_DONE_MAX)
		ndone = COMMANDS_DONE_MAX; /* the rest are listed again in later heartbeats */
	if ((ids = id_array(done, ndone)) == NULL)
		return verr_set(err, -ENOMEM, "out of memory");
	params[1] = ids;
	snprintf(limit, sizeof(limit), "%zu", max);
	pthread_mutex_lock(&st->lock);
	rc =
	    store_exec(st, "exchanging commands", sql, 3, params, PGRES_TUPLES_OK, true, &res, err);
	pthread_mutex_unlock(&st->lock);
	free(ids);
	if (rc < 0)
		return rc;
	n = PQntuples(res);
	for (int i = 0; i < n && (size_t)i < max; i++) {
		out[i].id = strtoull(PQgetvalue(res, i, 0), NULL, 10);
		snprintf(out[i].kind, sizeof(out[i].kind), "%s", PQgetvalue(res, i, 1));
		snprintf(out[i].service, sizeof(out[i].service), "%s", PQgetvalue(res, i, 2));
		snprintf(out[i].exe, sizeof(out[i].exe), "%s", PQgetvalue(res, i, 3));
		snprintf(out[i].entry_kind, sizeof(out[i].entry_kind), "%s", PQgetvalue(res, i, 4));
		snprintf(out[i].pattern, sizeof(out[i].pattern), "%s", PQgetvalue(res, i, 5));
		(*ret_n)++;
	}
	PQclear(res);
	return 0;
}

int store_model_relearn(struct store *st, int64_t model_id, json_t **ret, vigil_err *err)
{
	/*
	 * One statement, so it is idempotent and may be retried after a lost
	 * connection: a second run finds the command the first one queued.
	 */
	static const char sql[] =
	    "WITH m AS (SELECT host_id, service FROM models WHERE id = $1::bigint),"
	    " pending AS (SELECT c.id FROM commands c JOIN m ON c.host_id = m.host_id"
	    " AND c.service = m.service WHERE c.kind = 'relearn' AND c.acked_at IS NULL"
	    " ORDER BY c.id LIMIT 1),"
	    " ins AS (INSERT INTO commands (host_id, kind, service) SELECT host_id, 'relearn',"
	    " service FROM m WHERE NOT EXISTS (SELECT 1 FROM pending) RETURNING id)"
	    " SELECT coalesce((SELECT id FROM ins), (SELECT id FROM pending)), m.host_id,"
	    " m.service, EXISTS (SELECT 1 FROM pending) FROM m";
	char id[24];
	const char *params[1] = {id};
	PGresult *res = NULL;
	int rc;

	snprintf(id, sizeof(id), "%" PRId64, model_id);
	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "queueing a relearn", sql, 1, params, PGRES_TUPLES_OK, true, &res, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return verr_set(err, -ENOENT, "no model %" PRId64, model_id);
	}
	*ret = json_pack("{s:I,s:s,s:s,s:b}", "command_id",
			 (json_int_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10), "host",
			 PQgetvalue(res, 0, 1), "service", PQgetvalue(res, 0, 2), "already_pending",
			 strcmp(PQgetvalue(res, 0, 3), "t") == 0);
	PQclear(res);
	return *ret != NULL ? 0 : verr_set(err, -ENOMEM, "out of memory");
}

int store_audit_accept(struct store *st, int64_t audit_id, json_t **ret, vigil_err *err)
{
	/*
	 * One statement, idempotent like the relearn's.  The entry kind a
	 * model's deviation kind stands for; NULL for every other audit kind.
	 * The lengths are the link's own limits for model entries (what the
	 * defender will take back).
	 */
	static const char sql[] =
	    "WITH a AS (SELECT host_id, kind, service, exe, detail->>'object' AS object,"
	    " CASE kind WHEN 'new_program' THEN 'program' WHEN 'new_write' THEN 'write'"
	    " WHEN 'sensitive_read' THEN 'sensitive_read' WHEN 'new_listen' THEN 'listen'"
	    " WHEN 'new_peer' THEN 'connect' WHEN 'new_client' THEN 'accept'"
	    " WHEN 'new_read' THEN 'read' END AS entry_kind"
	    " FROM audits WHERE id = $1::bigint),"
	    " ok AS (SELECT * FROM a WHERE entry_kind IS NOT NULL AND coalesce(service, '') <> ''"
	    " AND coalesce(exe, '') <> '' AND coalesce(object, '') <> ''"
	    " AND octet_length(exe) <= 4096 AND octet_length(object) <= 4096),"
	    " pending AS (SELECT c.id FROM commands c JOIN ok ON c.host_id = ok.host_id"
	    " AND c.service = ok.service AND c.exe = ok.exe AND c.entry_kind = ok.entry_kind"
	    " AND c.pattern = ok.object WHERE c.kind = 'accept' AND c.acked_at IS NULL"
	    " ORDER BY c.id LIMIT 1),"
	    " ins AS (INSERT INTO commands (host_id, kind, service, exe, entry_kind, pattern)"
	    " SELECT host_id, 'accept', service, exe, entry_kind, object FROM ok"
	    " WHERE NOT EXISTS (SELECT 1 FROM pending) RETURNING id)"
	    " SELECT a.kind, a.entry_kind, a.host_id, a.service, a.exe, a.object,"
	    " coalesce((SELECT id FROM ins), (SELECT id FROM pending)),"
	    " EXISTS (SELECT 1 FROM pending) FROM a";
	char id[24];
	const char *params[1] = {id};
	PGresult *res = NULL;
	const char *kind;
	int rc;

	snprintf(id, sizeof(id), "%" PRId64, audit_id);
	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "queueing an accept", sql, 1, params, PGRES_TUPLES_OK, true, &res, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return verr_set(err, -ENOENT, "no audit %" PRId64, audit_id);
	}
	kind = PQgetvalue(res, 0, 0);
	if (PQgetisnull(res, 0, 1)) {
		rc = strncmp(kind, "denied_", 7) == 0
			 ? verr_set(err, -EPERM,
				    "audit %" PRId64 " (%s) is a rule's deny list at work, not a"
				    " model's deviation: change the rule instead",
				    audit_id, kind)
			 : verr_set(err, -EPERM,
				    "audit %" PRId64 " (%s) is not a deviation a model can take",
				    audit_id, kind);
		PQclear(res);
		return rc;
	}
	if (PQgetisnull(res, 0, 6)) {
		PQclear(res);
		return verr_set(err, -EPERM,
				"audit %" PRId64 " lacks the service, executable or object (or one"
				" is over 4096 bytes) a model entry needs",
				audit_id);
	}
	*ret = json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:b}", "command_id",
			 (json_int_t)strtoll(PQgetvalue(res, 0, 6), NULL, 10), "host",
			 PQgetvalue(res, 0, 2), "service", PQgetvalue(res, 0, 3), "exe",
			 PQgetvalue(res, 0, 4), "kind", PQgetvalue(res, 0, 1), "pattern",
			 PQgetvalue(res, 0, 5), "already_pending",
			 strcmp(PQgetvalue(res, 0, 7), "t") == 0);
	PQclear(res);
	return *ret != NULL ? 0 : verr_set(err, -ENOMEM, "out of memory");
}
