/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audits endpoints, one tree handler (nng matches paths by prefix):
 *
 *   GET /api/v1/audits?host=&kind=&service=&rule=&effect=&severity=&image=&container=
 *                      &since=&until=&limit=&before_id=
 *   GET  /api/v1/audits/summary?host=&since=&until=
 *   GET  /api/v1/audits/{id}
 *   POST /api/v1/audits/{id}/accept
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "api/api_priv.h"
#include "log.h"
#include "rules/rule.h"
#include "store/audit_queries.h"
#include "store/host_commands.h"

#define AUDITS_PATH "/api/v1/audits"

/*
 * The rule= filter: a rule's name as the rules have it (rules/rule.h), so a
 * typo is a 400 rather than an empty list.  false with q's fault set.
 */
static bool audits_rule_ok(struct api_query *q, const char *rule)
{
	char why[128];

	if (rule == NULL || rule_check_name(rule, why, sizeof(why)))
		return true;
	snprintf(q->bad, sizeof(q->bad), "rule");
	snprintf(q->why, sizeof(q->why), "is not a rule name: %s", why);
	return false;
}

static void audits_list(nng_aio *aio)
{
	static const char *const known[] = {"host",	 "kind",  "service",   "rule",	"effect",
					    "severity",	 "image", "container", "since", "until",
					    "before_id", "limit", NULL};
	static const char *const effects[] = {"alert", "prevent", "block", NULL};
	static const char *const severities[] = {"low", "medium", "high", NULL};
	struct audit_filter f = {0};
	json_t *audits = NULL;
	vigil_err err = {0};
	struct api_query q;
	int rc;

	if (!api_read_query(aio, known, &q))
		return;
	f.host_id = api_query_get(&q, "host");
	f.kind = api_query_get(&q, "kind");
	f.service = api_query_get(&q, "service");
	f.rule = api_query_get(&q, "rule");
	f.image = api_query_get(&q, "image");
	f.container = api_query_get(&q, "container");
	if (!audits_rule_ok(&q, f.rule) || api_query_word(&q, "effect", effects, &f.effect) < 0 ||
	    api_query_word(&q, "severity", severities, &f.severity) < 0 ||
	    api_query_time(&q, "since", &f.since) < 0 ||
	    api_query_time(&q, "until", &f.until) < 0 ||
	    api_query_page(&q, &f.before_id, &f.limit) < 0) {
		api_respond_bad_param(aio, &q);
		return;
	}
	rc = store_audits_list(api_store(aio), &f, &audits, &err);
	if (rc < 0) {
		api_respond_store_error(aio, rc, "GET " AUDITS_PATH, err.msg);
		return;
	}
	api_respond_json(aio, 200, json_pack("{s:o}", "audits", audits));
}

static void audits_summary(nng_aio *aio)
{
	static const char *const known[] = {"host", "since", "until", NULL};
	struct audit_filter f = {0};
	json_t *summary = NULL;
	vigil_err err = {0};
	struct api_query q;
	int rc;

	if (!api_read_query(aio, known, &q))
		return;
	f.host_id = api_query_get(&q, "host");
	if (api_query_time(&q, "since", &f.since) < 0 ||
	    api_query_time(&q, "until", &f.until) < 0) {
		api_respond_bad_param(aio, &q);
		return;
	}
	rc = store_audits_summary(api_store(aio), &f, &summary, &err);
	if (rc == -ERANGE) {
		api_respond_json(aio, 400,
				 json_pack("{s:s,s:s}", "error",
					   "parameter 'since' must be before 'until'", "parameter",
					   "since"));
		return;
	}
	if (rc < 0) {
		api_respond_store_error(aio, rc, "GET " AUDITS_PATH "/summary", err.msg);
		return;
	}
	api_respond_json(aio, 200, summary);
}

static void audit_get(nng_aio *aio, int64_t id)
{
	static const char *const known[] = {NULL};
	json_t *audit = NULL;
	vigil_err err = {0};
	struct api_query q;
	int rc;

	if (!api_read_query(aio, known, &q))
		return;
	rc = store_audit_get(api_store(aio), id, &audit, &err);
	if (rc == -ENOENT) {
		api_respond_error(aio, 404, "no such audit");
		return;
	}
	if (rc < 0) {
		api_respond_store_error(aio, rc, "GET " AUDITS_PATH "/{id}", err.msg);
		return;
	}
	api_respond_json(aio, 200, audit);
}

static void audit_accept(nng_aio *aio, int64_t id)
{
	static const char *const known[] = {NULL};
	json_t *cmd = NULL;
	vigil_err err = {0};
	struct api_query q;
	int rc;

	if (!api_read_query(aio, known, &q))
		return;
	rc = store_audit_accept(api_store(aio), id, &cmd, &err);
	if (rc == -ENOENT) {
		api_respond_error(aio, 404, "no such audit");
		return;
	}
	if (rc == -EPERM) {
		api_respond_error(aio, 409, err.msg);
		return;
	}
	if (rc < 0) {
		api_respond_store_error(aio, rc, "POST " AUDITS_PATH "/{id}/accept", err.msg);
		return;
	}
	log_info("audit %" PRId64 " accepted into the model of %s on %s as command %lld%s", id,
		 json_string_value(json_object_get(cmd, "service")),
		 json_string_value(json_object_get(cmd, "host")),
		 (long long)json_integer_value(json_object_get(cmd, "command_id")),
		 json_is_true(json_object_get(cmd, "already_pending")) ? " (already pending)" : "");
	/* 202: queued; the defender takes it with its next heartbeat. */
	api_respond_json(aio, 202, cmd);
}

void api_handle_audits(nng_aio *aio)
{
	const char *method = nng_http_req_get_method(nng_aio_get_input(aio, 0));
	char buf[256];
	const char *rest = api_subpath(aio, AUDITS_PATH, buf, sizeof(buf)), *slash;
	bool get = api_method_get(aio);
	int64_t id;

	if (rest == NULL)
		return;
	if (rest[0] == '\0' || strcmp(rest, "/") == 0 || strcmp(rest, "/summary") == 0) {
		if (!get)
			api_respond_not_allowed(aio, "GET, HEAD", "use GET on this endpoint");
		else if (strcmp(rest, "/summary") == 0)
			audits_summary(aio);
		else
			audits_list(aio);
		return;
	}
	rest++; /* past '/' */
	slash = strchr(rest, '/');
	if (!api_query_parse_id(rest, slash != NULL ? (size_t)(slash - rest) : strlen(rest), &id)) {
		api_respond_error(aio, 400, "audit id must be a positive integer");
		return;
	}
	if (slash == NULL || strcmp(slash, "/") == 0) {
		if (get)
			audit_get(aio, id);
		else
			api_respond_not_allowed(aio, "GET, HEAD",
						"use GET on " AUDITS_PATH "/{id}");
	} else if (strcmp(slash, "/accept") == 0) {
		if (strcmp(method, "POST") == 0)
			audit_accept(aio, id);
		else
			api_respond_not_allowed(aio, "POST",
						"use POST on " AUDITS_PATH "/{id}/accept");
	} else {
		api_respond_error(aio, 404, "no such API endpoint");
	}
}
