/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the tree handlers share for the paths below their collection that
 * name one item by id ({prefix}/{id}, {prefix}/{id}/{action}): the routing by
 * action and method, the fetch of the item with its error answers, and
 * the answer to an action queued for a defender (api_priv.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api/api_priv.h"
#include "log.h"

void api_route_item(nng_aio *aio, const char *rest, const char *bad_id,
		    const struct api_item_route *routes)
{
	const char *method = nng_http_req_get_method(nng_aio_get_input(aio, 0));
	const char *slash = strchr(rest, '/'), *action;
	const struct api_item_route *r;
	api_item_handler fn = NULL;
	int64_t id;

	if (!api_query_parse_id(rest, slash != NULL ? (size_t)(slash - rest) : strlen(rest), &id)) {
		api_respond_error(aio, 400, bad_id);
		return;
	}
	/* A trailing '/' names the item itself. */
	action = slash == NULL || strcmp(slash, "/") == 0 ? "" : slash;
	for (r = routes; r->action != NULL && strcmp(r->action, action) != 0; r++)
		;
	if (r->action == NULL) {
		api_respond_error(aio, 404, "no such API endpoint");
		return;
	}
	if (api_method_get(aio))
		fn = r->get;
	else if (strcmp(method, "POST") == 0)
		fn = r->post;
	else if (strcmp(method, "PUT") == 0)
		fn = r->put;
	else if (strcmp(method, "DELETE") == 0)
		fn = r->del;
	if (fn != NULL)
		fn(aio, id);
	else
		api_respond_not_allowed(aio, r->allow, r->refused);
}

bool api_item_fetch(nng_aio *aio, int64_t id, api_item_fn fn, const char *missing, const char *what,
		    json_t **ret)
{
	static const char *const known[] = {NULL};
	vigil_err err = {0};
	struct api_query q;
	json_t *item = NULL;
	int rc;

	if (!api_read_query(aio, known, &q))
		return false;
	rc = fn(api_store(aio), id, &item, &err);
	if (rc == -EPERM) {
		api_respond_error(aio, 409, err.msg);
		return false;
	}
	if (!api_store_done(aio, rc, missing, what, err.msg))
		return false;
	*ret = item;
	return true;
}

void api_respond_queued(nng_aio *aio, json_t *cmd, const char *fmt, ...)
{
	char what[2048]; /* log_msg's own line: nothing is cut here that it would keep */
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	log_info("%s as command %lld%s", what,
		 (long long)json_integer_value(json_object_get(cmd, "command_id")),
		 json_is_true(json_object_get(cmd, "already_pending")) ? " (already pending)" : "");
	/* 202: queued; the defender carries it out at its next heartbeat. */
	api_respond_json(aio, 202, cmd);
}
