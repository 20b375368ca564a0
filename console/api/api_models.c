/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The models endpoints, one tree handler for every method (nng 1.5 matches
 * paths by prefix only, so the id and the action are parsed here):
 *
 *   GET  /api/v1/models?host=&service=&state=&limit=&before_id=
 *   GET  /api/v1/models/{id}
 *   POST /api/v1/models/{id}/relearn
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "api/api_priv.h"
#include "store/host_commands.h"
#include "store/learning_queries.h"
#include "log.h"

#define MODELS_PATH "/api/v1/models"

static void models_list(nng_aio *aio)
{
	static const char *const known[] = {"host", "service", "state", "limit", "before_id", NULL};
	static const char *const states[] = {"learning", "active", NULL};
	struct model_filter f = {0};
	json_t *models = NULL;
	vigil_err err = {0};
	struct api_query q;
	int rc;

	if (!api_read_query(aio, known, &q))
		return;
	f.host_id = api_query_get(&q, "host");
	f.service = api_query_get(&q, "service");
	if (api_query_word(&q, "state", states, &f.state) < 0 ||
	    api_query_page(&q, &f.before_id, &f.limit) < 0) {
		api_respond_bad_param(aio, &q);
		return;
	}
	rc = store_models_list(api_store(aio), &f, &models, &err);
	if (rc < 0) {
		api_respond_store_error(aio, rc, "GET " MODELS_PATH, err.msg);
		return;
	}
	api_respond_json(aio, 200, json_pack("{s:o}", "models", models));
}

static void model_get(nng_aio *aio, int64_t id)
{
	static const char *const known[] = {NULL};
	json_t *model = NULL;
	vigil_err err = {0};
	struct api_query q;
	int rc;

	if (!api_read_query(aio, known, &q))
		return;
	rc = store_model_get(api_store(aio), id, &model, &err);
	if (rc == -ENOENT) {
		api_respond_error(aio, 404, "no such model");
		return;
	}
	if (rc < 0) {
		api_respond_store_error(aio, rc, "GET " MODELS_PATH "/{id}", err.msg);
		return;
	}
	api_respond_json(aio, 200, model);
}

static void model_relearn(nng_aio *aio, int64_t id)
{
	static const char *const known[] = {NULL};
	json_t *cmd = NULL;
	vigil_err err = {0};
	struct api_query q;
	int rc;

	if (!api_read_query(aio, known, &q))
		return;
	rc = store_model_relearn(api_store(aio), id, &cmd, &err);
	if (rc == -ENOENT) {
		api_respond_error(aio, 404, "no such model");
		return;
	}
	if (rc < 0) {
		api_respond_store_error(aio, rc, "POST " MODELS_PATH "/{id}/relearn", err.msg);
		return;
	}
	log_info("relearn of model %" PRId64 " (host %s, service %s) requested as command %lld%s",
		 id, json_string_value(json_object_get(cmd, "host")),
		 json_string_value(json_object_get(cmd, "service")),
		 (long long)json_integer_value(json_object_get(cmd, "command_id")),
		 json_is_true(json_object_get(cmd, "already_pending")) ? " (already pending)" : "");
	/* 202: queued; the defender carries it out at its next heartbeat. */
	api_respond_json(aio, 202, cmd);
}

void api_handle_models(nng_aio *aio)
{
	const char *method = nng_http_req_get_method(nng_aio_get_input(aio, 0));
	char buf[256];
	const char *rest = api_subpath(aio, MODELS_PATH, buf, sizeof(buf)), *slash;
	bool get = api_method_get(aio);
	int64_t id;

	if (rest == NULL)
		return;
	if (rest[0] == '\0' || strcmp(rest, "/") == 0) {
		if (get)
			models_list(aio);
		else
			api_respond_not_allowed(aio, "GET, HEAD", "use GET on " MODELS_PATH);
		return;
	}
	rest++; /* past '/' */
	slash = strchr(rest, '/');
	if (!api_query_parse_id(rest, slash != NULL ? (size_t)(slash - rest) : strlen(rest), &id)) {
		api_respond_error(aio, 400, "model id must be a positive integer");
		return;
	}
	if (slash == NULL || strcmp(slash, "/") == 0) {
		if (get)
			model_get(aio, id);
		else
			api_respond_not_allowed(aio, "GET, HEAD",
						"use GET on " MODELS_PATH "/{id}");
	} else if (strcmp(slash, "/relearn") == 0) {
		if (strcmp(method, "POST") == 0)
			model_relearn(aio, id);
		else
			api_respond_not_allowed(aio, "POST",
						"use POST on " MODELS_PATH "/{id}/relearn");
	} else {
		api_respond_error(aio, 404, "no such API endpoint");
	}
}
