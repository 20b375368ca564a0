/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_API_PRIV_H
#define VIGIL_CONSOLE_API_PRIV_H

/*
 * What the API's modules (api.c, api_models.c, api_activity.c) share.  A
 * handler runs on an nng thread; it answers through the api_respond_*
 * functions exactly once, and they take ownership of the JSON given.
 */

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "api/api.h"
#include "api/api_query.h"

struct api {
	nng_http_server *srv;
	struct store *st; /* not owned; its own lock serializes the handlers' queries */
	char token[API_TOKEN_LEN + 1];
};

/* The api a handler was registered with. */
struct api *api_of(nng_aio *aio);

/* Finish aio with a JSON response; body is consumed (json_decref). */
void api_respond_json(nng_aio *aio, uint16_t status, json_t *body);

/* {"error": msg} with status. */
void api_respond_error(nng_aio *aio, uint16_t status, const char *msg);

/* 400 {"error": "parameter 'p': why", "parameter": p} from a failed api_query_* call. */
void api_respond_bad_param(nng_aio *aio, const struct api_query *q);

/* 400 for a database refusal of input, 503 for anything else (logged with what). */
void api_respond_store_error(nng_aio *aio, int rc, const char *what, const char *msg);

/*
 * The checks a handler starts with.  Each returns false when it has answered
 * (the handler then returns at once), true to go on.
 *   api_auth:  401 without the right bearer token.
 *   api_query: 400 when the query has unknown or malformed parameters; q filled.
 *   api_begin: both, in that order (401 before anything else).
 */
bool api_auth(nng_aio *aio);
bool api_read_query(nng_aio *aio, const char *const *known, struct api_query *q);
bool api_begin(nng_aio *aio, const char *const *known, struct api_query *q);

/* The request's path without its query, copied into buf; NULL when too long. */
const char *api_path(nng_aio *aio, char *buf, size_t len);

/* Handlers of the learning endpoints (api_models.c, api_activity.c). */
void api_handle_models(nng_aio *aio);
void api_handle_activity(nng_aio *aio);

#endif
