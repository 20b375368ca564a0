/* SPDX-License-Identifier: Apache-2.0 */
/* GET /api/v1/activity?host=&user=&session=&since=&until=&limit=&before_id= */
#include <errno.h>
#include <stdint.h>

#include "api/api_priv.h"
#include "store/learning_queries.h"

void api_handle_activity(nng_aio *aio)
{
	static const char *const known[] = {"host",  "user",  "session",   "since",
					    "until", "limit", "before_id", NULL};
	struct activity_filter f = {.session = -1};
	json_t *rows = NULL;
	vigil_err err = {0};
	struct api_query q;
	int rc;

	if (!api_begin(aio, known, &q))
		return;
	f.host_id = api_query_get(&q, "host");
	f.user = api_query_get(&q, "user");
	/* A session is the pid of its root process: an integer column. */
	if (api_query_int(&q, "session", 0, INT32_MAX, &f.session) < 0 ||
	    api_query_time(&q, "since", &f.since) < 0 ||
	    api_query_time(&q, "until", &f.until) < 0 ||
	    api_query_page(&q, &f.before_id, &f.limit) < 0) {
		api_respond_bad_param(aio, &q);
		return;
	}
	rc = store_activity_list(api_store(aio), &f, &rows, &err);
	if (rc < 0) {
		api_respond_store_error(aio, rc, "GET /api/v1/activity", err.msg);
		return;
	}
	api_respond_json(aio, 200, json_pack("{s:o}", "activity", rows));
}
