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
	json_t *audit;

	if (api_item_fetch(aio, id, store_audit_get, "no such audit", "GET " AUDITS_PATH "/{id}",
			   &audit))
		api_respond_json(aio, 200, audit);
}

static void audit_accept(nng_aio *aio, int64_t id)
{
	json_t *cmd;

	/* -EPERM (409): an audit no model entry can come from. */
	if (!api_item_fetch(aio, id, store_audit_accept, "no such audit",
			    "POST " AUDITS_PATH "/{id}/accept", &cmd))
		return;
	api_respond_queued(aio, cmd, "audit %" PRId64 " accepted into the model of %s on %s", id,
			   json_string_value(json_object_get(cmd, "service")),
			   json_string_value(json_object_get(cmd, "host")));
}

static const struct api_item_route audit_routes[] = {
    {"", .get = audit_get, .allow = "GET, HEAD", .refused = "use GET on " AUDITS_PATH "/{id}"},
    {"/accept", .post = audit_accept, .allow = "POST",
     .refused = "use POST on " AUDITS_PATH "/{id}/accept"},
    {0},
};

void api_handle_audits(nng_aio *aio)
{
	char buf[256];
	const char *rest = api_subpath(aio, AUDITS_PATH, buf, sizeof(buf));

	if (rest == NULL)
		return;
	if (rest[0] == '\0' || strcmp(rest, "/") == 0 || strcmp(rest, "/summary") == 0) {
		if (!api_method_get(aio))
			api_respond_not_allowed(aio, "GET, HEAD", "use GET on this endpoint");
		else if (strcmp(rest, "/summary") == 0)
			audits_summary(aio);
		else
			audits_list(aio);
		return;
	}
	api_route_item(aio, rest + 1, "audit id must be a positive integer", audit_routes);
}
