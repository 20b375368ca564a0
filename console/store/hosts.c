/* SPDX-License-Identifier: Apache-2.0 */
/* The fleet: hosts' hellos and heartbeats, stale hosts, the host list. */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "store/store_priv.h"
#include "utf8.h"

/* Hello fields come from the network: bounded and valid UTF-8, or refused. */
#define STORE_FIELD_MAX	 256
#define STORE_LABELS_MAX 64

/* NULL is "" unless required; anything else must be bounded UTF-8. */
static int store_check_field(const char *name, const char *value, bool required, vigil_err *err)
{
	size_t len;

	if (value == NULL) {
		if (required)
			return verr_set(err, -EINVAL, "hello field %s is missing", name);
		return 0;
	}
	len = strlen(value);
	if (required && len == 0)
		return verr_set(err, -EINVAL, "hello field %s is empty", name);
	if (len > STORE_FIELD_MAX)
		return verr_set(err, -EINVAL,
				"hello field %s is %zu bytes, more than the %d allowed", name, len,
				STORE_FIELD_MAX);
	if (!utf8_valid(value, len))
		return verr_set(err, -EINVAL, "hello field %s is not valid UTF-8", name);
	return 0;
}

static const char *store_or_empty(const char *s)
{
	return s != NULL ? s : "";
}

/* The labels as compact JSON text (caller frees), keys sorted. */
static int store_labels_json(const struct store_hello *hello, char **ret_json, vigil_err *err)
{
	json_t *obj;
	char *text;
	int rc;

	if (hello->nlabels > STORE_LABELS_MAX)
		return verr_set(err, -EINVAL, "hello has %zu labels, more than the %d allowed",
				hello->nlabels, STORE_LABELS_MAX);
	if (hello->nlabels > 0 && hello->labels == NULL)
		return verr_set(err, -EINVAL, "hello labels missing");
	for (size_t i = 0; i < hello->nlabels; i++) {
		char field[48];

		snprintf(field, sizeof(field), "labels[%zu].key", i);
		rc = store_check_field(field, hello->labels[i].key, true, err);
		if (rc < 0)
			return rc;
		snprintf(field, sizeof(field), "labels[%zu].value", i);
		rc = store_check_field(field, hello->labels[i].value, false, err);
		if (rc < 0)
			return rc;
	}
	obj = json_object();
	if (obj == NULL)
		return verr_set(err, -ENOMEM, "out of memory building labels");
	for (size_t i = 0; i < hello->nlabels; i++) {
		json_t *v = json_string(store_or_empty(hello->labels[i].value));

		/* A repeated key keeps its last value. */
		if (v == NULL || json_object_set_new(obj, hello->labels[i].key, v) < 0) {
			json_decref(obj);
			return verr_set(err, -ENOMEM, "out of memory building labels");
		}
	}
	text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(obj);
	if (text == NULL)
		return verr_set(err, -ENOMEM, "out of memory building labels");
	*ret_json = text;
	return 0;
}

int store_host_hello(struct store *st, const struct store_hello *hello, vigil_err *err)
{
	static const char sql[] =
	    "INSERT INTO hosts (host_id, hostname, kernel, os, defender_version, bpf_status,"
	    " labels, connected, first_seen, last_seen, disconnected_at)"
	    " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, true, now(), now(), NULL)"
	    " ON CONFLICT (host_id) DO UPDATE SET"
	    " hostname = EXCLUDED.hostname, kernel = EXCLUDED.kernel, os = EXCLUDED.os,"
	    " defender_version = EXCLUDED.defender_version, bpf_status = EXCLUDED.bpf_status,"
	    " labels = EXCLUDED.labels, connected = true, last_seen = now(),"
	    " disconnected_at = NULL";
	const char *params[7];
	char *labels = NULL;
	int rc;

	if (hello == NULL)
		return verr_set(err, -EINVAL, "no hello given");
	if ((rc = store_check_field("host_id", hello->host_id, true, err)) < 0 ||
	    (rc = store_check_field("hostname", hello->hostname, true, err)) < 0 ||
	    (rc = store_check_field("kernel", hello->kernel, false, err)) < 0 ||
	    (rc = store_check_field("os", hello->os, false, err)) < 0 ||
	    (rc = store_check_field("defender_version", hello->defender_version, false, err)) < 0 ||
	    (rc = store_check_field("bpf_status", hello->bpf_status, false, err)) < 0)
		return rc;
	rc = store_labels_json(hello, &labels, err);
	if (rc < 0)
		return rc;
	params[0] = hello->host_id;
	params[1] = hello->hostname;
	params[2] = store_or_empty(hello->kernel);
	params[3] = store_or_empty(hello->os);
	params[4] = store_or_empty(hello->defender_version);
	params[5] = store_or_empty(hello->bpf_status);
	params[6] = labels;
	pthread_mutex_lock(&st->lock);
	rc = store_cmd(st, "recording the hello of a host", sql, 7, params, true, err);
	pthread_mutex_unlock(&st->lock);
	free(labels);
	return rc;
}

int store_host_heartbeat(struct store *st, const char *host_id, const struct store_heartbeat *hb,
			 vigil_err *err)
{
	static const char sql[] = "UPDATE hosts SET last_seen = now(), connected = true,"
				  " disconnected_at = NULL, exec_count = $2::bigint,"
				  " capture = COALESCE($3::jsonb, capture)"
				  " WHERE host_id = $1 RETURNING 1";
	char count[24];
	const char *params[3] = {host_id, count, hb != NULL ? hb->capture_json : NULL};
	PGresult *res = NULL;
	int rc;

	if (hb == NULL)
		return verr_set(err, -EINVAL, "no heartbeat given");
	rc = store_check_field("host_id", host_id, true, err);
	if (rc < 0)
		return rc;
	if (hb->exec_count > (uint64_t)INT64_MAX)
		return verr_set(err, -EINVAL, "heartbeat exec_count %" PRIu64 " is out of range",
				hb->exec_count);
	snprintf(count, sizeof(count), "%" PRIu64, hb->exec_count);
	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "recording a heartbeat", sql, 3, params, PGRES_TUPLES_OK, true, &res,
			err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	if (PQntuples(res) == 0)
		rc = verr_set(err, -ENOENT, "heartbeat from host %s, which never said hello",
			      host_id);
	PQclear(res);
	return rc;
}

int store_hosts_mark_stale(struct store *st, int timeout_ms, int *ret_count, vigil_err *err)
{
	/* make_interval takes seconds; the parameter is timeout_ms / 1000. */
	/*
	 * A silent defender may have been killed by an attacker: each host marked
	 * disconnected gets an audit in the same statement.
	 */
	static const char sql[] =
	    "WITH stale AS (UPDATE hosts SET connected = false, disconnected_at = now()"
	    " WHERE connected AND last_seen < now() - make_interval(secs => $1::double precision)"
	    " RETURNING host_id, last_seen)"
	    " INSERT INTO audits (host_id, kind, severity, summary, detail)"
	    " SELECT host_id, 'defender_silent', 'high',"
	    " 'defender stopped reporting: no heartbeat for ' || $1 || ' s',"
	    " jsonb_build_object('last_seen', last_seen) FROM stale";
	char secs[32];
	const char *params[1] = {secs};
	PGresult *res = NULL;
	int rc;

	if (timeout_ms < 0)
		return verr_set(err, -EINVAL, "stale timeout %d ms is negative", timeout_ms);
	snprintf(secs, sizeof(secs), "%d.%03d", timeout_ms / 1000, timeout_ms % 1000);
	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "marking stale hosts disconnected", sql, 1, params, PGRES_COMMAND_OK,
			true, &res, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	if (ret_count != NULL)
		*ret_count = atoi(PQcmdTuples(res));
	PQclear(res);
	return 0;
}

/* A jsonb column as a new JSON value; JSON null for NULL (NULL when bad or out of memory). */
static json_t *store_json_value(const PGresult *res, int row, int col)
{
	json_error_t jerr;

	if (PQgetisnull(res, row, col))
		return json_null();
	return json_loads(PQgetvalue(res, row, col), JSON_DECODE_ANY, &jerr);
}

/*
 * The "rules" object of a hosts row from column col on (rules_protocol,
 * rules_version, rules_acked_at, rules_refused_version, _reason, _by, the
 * current version, enforce_backends, rule_shortfalls, rules_report_problem):
 * what the host enforces and can enforce, whether it lags the current
 * version and why.  NULL when out of memory.
 */
static json_t *store_host_rules_json(const PGresult *res, int row, int col)
{
	bool connected = strcmp(PQgetvalue(res, row, 10), "t") == 0;
	int protocol = atoi(PQgetvalue(res, row, col));
	bool held = !PQgetisnull(res, row, col + 1);
	long long version = held ? strtoll(PQgetvalue(res, row, col + 1), NULL, 10) : 0;
	long long current = strtoll(PQgetvalue(res, row, col + 6), NULL, 10);
	bool refused = !PQgetisnull(res, row, col + 3);
	long long refused_version = refused ? strtoll(PQgetvalue(res, row, col + 3), NULL, 10) : 0;
	bool lagging = version < current;
	const char *why = NULL;
	json_t *obj, *ref = json_null();

	if (lagging) {
		if (refused && refused_version == current)
			why = "refused";
		else if (!connected)
			why = "offline";
		else if (protocol == 0)
			why = "unsupported";
		else
			why = "pending";
	}
	if (refused)
		ref = json_pack("{s:I,s:s,s:s}", "version", (json_int_t)refused_version, "reason",
				PQgetvalue(res, row, col + 4), "by", PQgetvalue(res, row, col + 5));
	if (ref == NULL)
		return NULL;
	obj = json_pack("{s:o,s:I,s:o,s:b,s:o,s:o,s:b,s:o,s:o,s:o}", "version",
			held ? json_integer(version) : json_null(), "current", (json_int_t)current,
			"acknowledged_at", store_json_text(res, row, col + 2), "lagging", lagging,
			"why", why != NULL ? json_string(why) : json_null(), "refused", ref,
			"supported", protocol > 0, "backends", store_json_value(res, row, col + 7),
			"shortfalls", store_json_value(res, row, col + 8), "report_problem",
			store_json_text(res, row, col + 9));
	return obj;
}

/* One hosts row (columns as selected in store_hosts_list) as a new object. */
static json_t *store_host_json(const PGresult *res, int row)
{
	static const char *const text_cols[] = {"host_id", "hostname",	       "kernel",
						"os",	   "defender_version", "bpf_status"};
	json_t *obj = json_object(), *labels;
	json_error_t jerr;
	int c = 0;

	if (obj == NULL)
		return NULL;
	for (; c < 6; c++) {
		if (json_object_set_new(obj, text_cols[c], json_string(PQgetvalue(res, row, c))) <
		    0)
			goto fail;
	}
	labels = json_loads(PQgetvalue(res, row, 6), 0, &jerr);
	if (labels == NULL || json_object_set_new(obj, "labels", labels) < 0)
		goto fail;
	if (json_object_set_new(obj, "exec_count",
				json_integer(strtoll(PQgetvalue(res, row, 7), NULL, 10))) < 0 ||
	    json_object_set_new(obj, "first_seen", json_string(PQgetvalue(res, row, 8))) < 0 ||
	    json_object_set_new(obj, "last_seen", json_string(PQgetvalue(res, row, 9))) < 0 ||
	    json_object_set_new(obj, "connected",
				json_boolean(strcmp(PQgetvalue(res, row, 10), "t") == 0)) < 0 ||
	    json_object_set_new(obj, "disconnected_at",
				PQgetisnull(res, row, 11)
				    ? json_null()
				    : json_string(PQgetvalue(res, row, 11))) < 0)
		goto fail;
	json_t *capture = json_loads(PQgetvalue(res, row, 12), 0, &jerr);
	if (capture == NULL || json_object_set_new(obj, "capture", capture) < 0)
		goto fail;
	json_t *rules = store_host_rules_json(res, row, 13);
	if (rules == NULL || json_object_set_new(obj, "rules", rules) < 0)
		goto fail;
	return obj;
fail:
	json_decref(obj);
	return NULL;
}

int store_hosts_list(struct store *st, json_t **ret_hosts, vigil_err *err)
{
	/*
	 * COLLATE "C": byte order, the same on every database whatever its
	 * locale.  Not formatted: clang-format cuts the statement at the macros.
	 */
	/* clang-format off */
	static const char sql[] =
	    "SELECT host_id, hostname, kernel, os, defender_version, bpf_status,"
	    " labels::text, exec_count, " TS_UTC("first_seen") ", " TS_UTC("last_seen") ","
	    " connected, " TS_UTC("disconnected_at") ", capture::text, rules_protocol,"
	    " rules_version, " TS_UTC("rules_acked_at") ", rules_refused_version,"
	    " rules_refused_reason, rules_refused_by, (SELECT version FROM rule_set),"
	    " enforce_backends::text, rule_shortfalls::text, rules_report_problem"
	    " FROM hosts ORDER BY host_id COLLATE \"C\"";
	/* clang-format on */
	PGresult *res = NULL;
	json_t *hosts;
	int rc, n;

	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "listing hosts", sql, 0, NULL, PGRES_TUPLES_OK, true, &res, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		return rc;
	hosts = json_array();
	if (hosts == NULL) {
		PQclear(res);
		return verr_set(err, -ENOMEM, "out of memory listing hosts");
	}
	n = PQntuples(res);
	for (int i = 0; i < n; i++) {
		json_t *h = store_host_json(res, i);

		if (h == NULL || json_array_append_new(hosts, h) < 0) {
			rc =
			    verr_set(err, -EIO,
				     "cannot build the JSON of host %s (out of memory or bad text)",
				     PQgetvalue(res, i, 0));
			PQclear(res);
			json_decref(hosts);
			return rc;
		}
	}
	PQclear(res);
	*ret_hosts = hosts;
	return 0;
}
