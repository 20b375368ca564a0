/* SPDX-License-Identifier: Apache-2.0 */
/* What each host's defender holds of the rule set (host_rules.h). */
#include "store/host_rules.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules/rule.h"
#include "store/store_priv.h"
#include "utf8.h"

static const char *const shortfall_sections[] = {"processes", "network", "files", NULL};
static const char *const shortfall_effects[] = {"alert", "prevent", "block", NULL};

static bool word_in(const char *const *set, const char *s)
{
	for (int i = 0; s != NULL && set[i] != NULL; i++)
		if (strcmp(set[i], s) == 0)
			return true;
	return false;
}

static const char *or_empty(const char *s)
{
	return s != NULL ? s : "";
}

/* Whether text field name of item prefix is acceptable; problems_add's it when not. */
static bool text_ok(struct ingest_problems *p, const char *prefix, const char *name, const char *s,
		    size_t max, bool required)
{
	char field[80], why[64];

	if (store_text_ok(s, max, required, why, sizeof(why)))
		return true;
	snprintf(field, sizeof(field), "%s.%s", prefix, name);
	problems_add(p, field, why);
	return false;
}

/* A list over its limit: refused whole, one problem. */
static void over_limit(struct ingest_problems *p, const char *list, size_t n, size_t max)
{
	char why[96];

	snprintf(why, sizeof(why), "has %zu entries, more than the %zu accepted", n, max);
	problems_add(p, list, why);
}

/*
 * The acceptable backends of r as a new JSON array into *ret, or NULL when
 * the list is refused whole; the rest go into p.  -ENOMEM.
 */
static int backends_json(const struct store_rules_report *r, struct ingest_problems *p,
			 json_t **ret)
{
	json_t *arr;

	*ret = NULL;
	if (r->nbackends > HOST_RULES_BACKENDS_MAX || (r->nbackends > 0 && r->backends == NULL)) {
		over_limit(p, "backends", r->nbackends, HOST_RULES_BACKENDS_MAX);
		return 0;
	}
	if ((arr = json_array()) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < r->nbackends; i++) {
		const struct store_enforce_backend *b = &r->backends[i];
		char prefix[48];

		snprintf(prefix, sizeof(prefix), "backends[%zu]", i);
		if (!text_ok(p, prefix, "name", b->name, HOST_RULES_NAME_MAX, true) ||
		    !text_ok(p, prefix, "detail", b->detail, HOST_RULES_TEXT_MAX, false))
			continue;
		if (json_array_append_new(arr, json_pack("{s:s,s:b,s:s}", "name", b->name,
							 "available", b->available, "detail",
							 or_empty(b->detail))) < 0) {
			json_decref(arr);
			return -ENOMEM;
		}
	}
	*ret = arr;
	return 0;
}

/* Whether shortfall s (index i) is acceptable; problems_add's it when not. */
static bool shortfall_ok(const struct store_rule_shortfall *s, size_t i, struct ingest_problems *p)
{
	char prefix[48], field[80], why[128];

	snprintf(prefix, sizeof(prefix), "shortfalls[%zu]", i);
	if (!text_ok(p, prefix, "rule", s->rule, RULE_NAME_MAX, true))
		return false;
	if (!rule_check_name(s->rule, why, sizeof(why))) {
		snprintf(field, sizeof(field), "%s.rule", prefix);
		problems_add(p, field, why);
		return false;
	}
	if (!word_in(shortfall_sections, s->section)) {
		snprintf(field, sizeof(field), "%s.section", prefix);
		problems_add(p, field, "is not processes, network or files");
		return false;
	}
	if (!word_in(shortfall_effects, s->wanted) || !word_in(shortfall_effects, s->applied)) {
		snprintf(field, sizeof(field), "%s.%s", prefix,
			 word_in(shortfall_effects, s->wanted) ? "applied" : "wanted");
		problems_add(p, field, "is not alert, prevent or block");
		return false;
	}
	return text_ok(p, prefix, "why", s->why, HOST_RULES_TEXT_MAX, false);
}

/* As backends_json, for the shortfalls. */
static int shortfalls_json(const struct store_rules_report *r, struct ingest_problems *p,
			   json_t **ret)
{
	json_t *arr;

	*ret = NULL;
	if (r->nshortfalls > HOST_RULES_SHORTFALLS_MAX ||
	    (r->nshortfalls > 0 && r->shortfalls == NULL)) {
		over_limit(p, "shortfalls", r->nshortfalls, HOST_RULES_SHORTFALLS_MAX);
		return 0;
	}
	if ((arr = json_array()) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < r->nshortfalls; i++) {
		const struct store_rule_shortfall *s = &r->shortfalls[i];

		if (!shortfall_ok(s, i, p))
			continue;
		if (json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:s}", "rule", s->rule,
							 "section", s->section, "wanted", s->wanted,
							 "applied", s->applied, "why",
							 or_empty(s->why))) < 0) {
			json_decref(arr);
			return -ENOMEM;
		}
	}
	*ret = arr;
	return 0;
}

/*
 * What the statement of store_host_rules_report takes of r's backends and
 * shortfalls: each list as JSON text (NULL: refused whole) and, when some
 * of it was left out, the problem (text for the column), the audit's
 * summary and its detail.  Everything allocated is freed by report_fini.
 */
struct report_lists {
	char *backends, *shortfalls;
	char problem[HOST_RULES_REASON_MAX];
	char summary[HOST_RULES_REASON_MAX + 64];
	char *detail;
};

static void report_fini(struct report_lists *l)
{
	free(l->backends);
	free(l->shortfalls);
	free(l->detail);
}

static int report_lists(const struct store_rules_report *r, struct report_lists *l, vigil_err *err)
{
	struct ingest_problems p = {0};
	json_t *backends = NULL, *shortfalls = NULL, *detail;
	int rc;

	memset(l, 0, sizeof(*l));
	if ((rc = backends_json(r, &p, &backends)) < 0 ||
	    (rc = shortfalls_json(r, &p, &shortfalls)) < 0)
		goto out;
	rc = -ENOMEM;
	if ((backends != NULL && (l->backends = json_dumps(backends, JSON_COMPACT)) == NULL) ||
	    (shortfalls != NULL && (l->shortfalls = json_dumps(shortfalls, JSON_COMPACT)) == NULL))
		goto out;
	if (p.count > 0) {
		snprintf(l->problem, sizeof(l->problem),
			 "%zu malformed item(s) left out; first: %s", p.count, p.first);
		store_utf8_trim(l->problem);
		snprintf(l->summary, sizeof(l->summary),
			 "%zu malformed item(s) in the rule-set state (backends, shortfalls) were"
			 " left out; first: %s",
			 p.count, p.first);
		store_utf8_trim(l->summary);
		/* p.list is NULL only when out of memory: the count still says how many. */
		detail = json_pack("{s:s,s:I,s:o}", "source", "rules_state", "count",
				   (json_int_t)p.count, "problems",
				   p.list != NULL ? json_incref(p.list) : json_array());
		l->detail = detail != NULL ? json_dumps(detail, JSON_COMPACT) : NULL;
		json_decref(detail);
		if (l->detail == NULL)
			goto out;
	}
	rc = 0;
out:
	json_decref(backends);
	json_decref(shortfalls);
	problems_reset(&p);
	if (rc < 0) {
		report_fini(l);
		return verr_set(err, rc, "out of memory recording a host's rule set");
	}
	return 0;
}

int store_host_rules_report(struct store *st, const char *host_id,
			    const struct store_rules_report *r, struct store_host_rules *ret,
			    vigil_err *err)
{
	/*
	 * SET sees the row as it was: the acknowledgement time moves only
	 * when the version does; a console's refusal outlives reports until
	 * the host holds that version.  A list the same as stored is kept as
	 * it is (not written again on every heartbeat).  old locks the row
	 * and keeps the problem as it was, so a new one is audited once.
	 */
	static const char sql[] =
	    "WITH old AS (SELECT host_id AS old_host, rules_report_problem AS old_problem"
	    " FROM hosts WHERE host_id = $1 FOR UPDATE),"
	    " up AS (UPDATE hosts SET rules_protocol = $2::integer,"
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
	    " THEN 'console' END,"
	    " enforce_backends = CASE WHEN enforce_backends IS NOT DISTINCT FROM $6::jsonb"
	    " THEN enforce_backends ELSE $6::jsonb END,"
	    " rule_shortfalls = CASE WHEN rule_shortfalls IS NOT DISTINCT FROM $7::jsonb"
	    " THEN rule_shortfalls ELSE $7::jsonb END,"
	    " rules_report_problem = $8::text"
	    " FROM old WHERE host_id = old_host"
	    " RETURNING labels::text AS labels, coalesce(rules_refused_version, 0) AS refused,"
	    " coalesce(rules_refused_by, '') AS refused_by,"
	    " $8::text IS NOT NULL AND old_problem IS DISTINCT FROM $8::text AS new_problem),"
	    " audit AS (INSERT INTO audits (host_id, kind, severity, summary, detail)"
	    " SELECT $1, 'malformed_input', 'medium', $9::text, $10::jsonb FROM up"
	    " WHERE new_problem)"
	    " SELECT labels, refused, refused_by, new_problem FROM up";
	char proto[16], version[24], refused[24], reason[HOST_RULES_REASON_MAX + 1];
	struct report_lists l;
	const char *params[10] = {host_id, proto, version, refused, reason};
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
	if ((rc = report_lists(r, &l, err)) < 0)
		return rc;
	params[5] = l.backends;
	params[6] = l.shortfalls;
	params[7] = l.detail != NULL ? l.problem : NULL;
	params[8] = l.detail != NULL ? l.summary : NULL;
	params[9] = l.detail;
	pthread_mutex_lock(&st->lock);
	rc = store_exec(st, "recording a host's rule set", sql, 10, params, PGRES_TUPLES_OK, true,
			&res, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		goto out;
	if (PQntuples(res) != 1) {
		rc = verr_set(err, -ENOENT, "no host %s", host_id);
		goto out;
	}
	ret->labels_json = strdup(PQgetvalue(res, 0, 0));
	ret->refused_version = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	ret->refused_by_console = strcmp(PQgetvalue(res, 0, 2), "console") == 0;
	snprintf(ret->new_problem, sizeof(ret->new_problem), "%s",
		 strcmp(PQgetvalue(res, 0, 3), "t") == 0 ? l.problem : "");
	if (ret->labels_json == NULL)
		rc = verr_set(err, -ENOMEM, "out of memory");
out:
	PQclear(res);
	report_fini(&l);
	return rc;
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
