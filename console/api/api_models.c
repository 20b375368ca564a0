/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The models endpoints, one tree handler for every method (nng 1.5 matches
 * paths by prefix only, so the id and the action are parsed here, by
 * api_route_item):
 *
 *   GET  /api/v1/models?host=&service=&state=&limit=&before_id=
 *   GET  /api/v1/models/{id}
 *   POST /api/v1/models/{id}/relearn
 */
#include <inttypes.h>
#include <string.h>

#include "api/api_priv.h"
#include "store/host_commands.h"
#include "store/learning_queries.h"

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
	json_t *model;

	if (api_item_fetch(aio, id, store_model_get, "no such model", "GET " MODELS_PATH "/{id}",
			   &model))
		api_respond_json(aio, 200, model);
}

static void model_relearn(nng_aio *aio, int64_t id)
{
	json_t *cmd;

	if (!api_item_fetch(aio, id, store_model_relearn, "no such model",
			    "POST " MODELS_PATH "/{id}/relearn", &cmd))
		return;
	api_respond_queued(aio, cmd, "relearn of model %" PRId64 " (host %s, service %s) requested",
			   id, json_string_value(json_object_get(cmd, "host")),
			   json_string_value(json_object_get(cmd, "service")));
}

static const struct api_item_route model_routes[] = {
    {"", .get = model_get, .allow = "GET, HEAD", .refused = "use GET on " MODELS_PATH "/{id}"},
    {"/relearn", .post = model_relearn, .allow = "POST",
     .refused = "use POST on " MODELS_PATH "/{id}/relearn"},
    {0},
};

void api_handle_models(nng_aio *aio)
{
	char buf[256];
	const char *rest = api_subpath(aio, MODELS_PATH, buf, sizeof(buf));

	if (rest == NULL)
		return;
	if (rest[0] == '\0' || strcmp(rest, "/") == 0) {
		if (api_method_get(aio))
			models_list(aio);
		else
			api_respond_not_allowed(aio, "GET, HEAD", "use GET on " MODELS_PATH);
		return;
	}
	api_route_item(aio, rest + 1, "model id must be a positive integer", model_routes);
}
