/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The activity endpoints (one tree handler):
 *
 *   GET /api/v1/activity?host=&user=&session=&q=&since=&until=&limit=&before_id=
 *   GET /api/v1/activity/sessions?host=&user=&q=&since=&until=&limit=&before_id=
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "api/api_priv.h"
#include "store/learning_queries.h"

#define ACTIVITY_PATH "/api/v1/activity"

/* The filters both share; with_session: session= too.  false after answering 400. */
static bool activity_filter_read(nng_aio *aio, struct api_query *q, bool with_session,
				 struct activity_filter *f)
{
	*f = (struct activity_filter){.session = -1};
	f->host_id = api_query_get(q, "host");
	f->user = api_query_get(q, "user");
	f->text = api_query_get(q, "q");
	/* A session is the pid of its root process: an integer column. */
	if ((with_session && api_query_int(q, "session", 0, INT32_MAX, &f->session) < 0) ||
	    api_query_time(q, "since", &f->since) < 0 ||
	    api_query_time(q, "until", &f->until) < 0 ||
	    api_query_page(q, &f->before_id, &f->limit) < 0) {
		api_respond_bad_param(aio, q);
		return false;
	}
	return true;
}

typedef int (*activity_query_fn)(struct store *st, const struct activity_filter *f, json_t **ret,
				 vigil_err *err);

/* Read the filters (session= when with_session), run query, answer {key: rows}. */
static void activity_answer(nng_aio *aio, const char *const *known, bool with_session,
			    activity_query_fn query, const char *key, const char *what)
{
	struct activity_filter f;
	json_t *rows = NULL;
	vigil_err err = {0};
	struct api_query q;
	int rc;

	if (!api_read_query(aio, known, &q) || !activity_filter_read(aio, &q, with_session, &f))
		return;
	if ((rc = query(api_store(aio), &f, &rows, &err)) < 0) {
		api_respond_store_error(aio, rc, what, err.msg);
		return;
	}
	api_respond_json(aio, 200, json_pack("{s:o}", key, rows));
}

void api_handle_activity(nng_aio *aio)
{
	char buf[256];
	const char *rest = api_subpath(aio, ACTIVITY_PATH, buf, sizeof(buf));

	if (rest == NULL)
		return;
	if (rest[0] != '\0' && strcmp(rest, "/") != 0 && strcmp(rest, "/sessions") != 0) {
		api_respond_error(aio, 404, "no such API endpoint");
		return;
	}
	if (!api_method_get(aio)) {
		api_respond_not_allowed(aio, "GET, HEAD", "use GET on this endpoint");
		return;
	}
	static const char *const list_known[] = {"host",  "user",  "session",	"q", "since",
						 "until", "limit", "before_id", NULL};
	static const char *const sessions_known[] = {"host",  "user",  "q",	    "since",
						     "until", "limit", "before_id", NULL};

	if (strcmp(rest, "/sessions") == 0)
		activity_answer(aio, sessions_known, false, store_activity_sessions, "sessions",
				"GET " ACTIVITY_PATH "/sessions");
	else
		activity_answer(aio, list_known, true, store_activity_list, "activity",
				"GET " ACTIVITY_PATH);
}
