/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_API_PRIV_H
#define VIGIL_CONSOLE_API_PRIV_H

/*
 * What the API's modules (api.c, api_models.c, api_activity.c, api_rules.c,
 * api_auth.c, api_item.c) share.  A
 * handler runs on one of the API's workers (api_pool.h), never on nng's
 * threads; it answers through the api_respond_* functions exactly once, and
 * they take ownership of the JSON given.
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "api/api.h"
#include "api/api_auth.h"
#include "api/api_enroll.h"
#include "api/api_limits.h"
#include "api/api_linger.h"
#include "api/api_pool.h"
#include "api/api_query.h"

/* Answers larger than this are refused whole (500), never sent cut. */
#define API_BODY_MAX (16u * 1024 * 1024)

struct api {
	nng_http_server *srv;
	struct api_pool *pool;	   /* the workers and their database connections */
	struct api_linger *linger; /* answers to requests that asked to close */
	struct api_limits *limits; /* idle connections closed, caps per address and in all */
	struct api_auth *auth;	   /* sign-ins, sessions, the throttle (api_auth.h) */
	struct api_enroll *enroll; /* join tokens, enrollment, revocation (api_enroll.h) */
	int query_timeout_ms;
	char token[API_TOKEN_LEN + 1];
	atomic_uint_fast64_t over_cap; /* answers refused for API_BODY_MAX */
	atomic_uint_fast64_t timeouts; /* queries cancelled by the statement timeout */
};

/* The api a handler was registered with. */
struct api *api_of(nng_aio *aio);

/* In a handler: the store of the worker running it (its own connection, with the timeout). */
struct store *api_store(nng_aio *aio);

/* Finish aio with a JSON response; body is consumed (json_decref). */
void api_respond_json(nng_aio *aio, uint16_t status, json_t *body);

/*
 * api_respond_json with extra headers (NULL, or name, value, ..., NULL:
 * Set-Cookie, Retry-After), which must not repeat the ones every answer
 * has (Content-Type, Cache-Control; WWW-Authenticate on 401, Retry-After
 * on 503).
 */
void api_respond_headers(nng_aio *aio, uint16_t status, json_t *body, const char *const *extra);

/* {"error": msg} with status. */
void api_respond_error(nng_aio *aio, uint16_t status, const char *msg);

/* 405 {"error": msg} with "Allow: allow". */
void api_respond_not_allowed(nng_aio *aio, const char *allow, const char *msg);

/* 400 {"error": "parameter 'p': why", "parameter": p} from a failed api_query_* call. */
void api_respond_bad_param(nng_aio *aio, const struct api_query *q);

/*
 * 400 for a database refusal of input, 504 for a query cancelled by the
 * statement timeout, 503 for anything else (logged with what).
 */
void api_respond_store_error(nng_aio *aio, int rc, const char *what, const char *msg);

/*
 * After a store call that returned rc with message msg: true when it
 * succeeded; else answered (404 with missing, or msg when missing is NULL,
 * for -ENOENT; api_respond_store_error with what otherwise) and false.
 */
bool api_store_done(nng_aio *aio, int rc, const char *missing, const char *what, const char *msg);

/*
 * The checks a handler starts with.  Each returns false when it has answered
 * (the handler then returns at once), true to go on.
 *   api_auth:  401 without the right bearer token or a live session's cookie;
 *              403 for a session's request other than GET/HEAD without its
 *              X-CSRF-Token, or of a "read" user (api_auth.h).
 *   api_query: 400 when the query has unknown or malformed parameters; q filled.
 *   api_begin: api_auth, then 405 unless GET or HEAD, then api_query.
 */
bool api_auth(nng_aio *aio);

/*
 * Who the handler's request was authorized as, once api_auth returned
 * true in this handler (kept per worker thread; a handler runs on one
 * worker from start to end).
 */
const struct api_caller *api_caller(nng_aio *aio);
bool api_read_query(nng_aio *aio, const char *const *known, struct api_query *q);
bool api_begin(nng_aio *aio, const char *const *known, struct api_query *q);

/*
 * The request's source address: for logs into text, and as throttles count
 * it (IPv6: its /64) into key; both TLS_ADDR_TEXT (api_auth.c).
 */
void api_peer_addr(nng_aio *aio, char *text, char *key);

/* The request's path without its query, copied into buf; NULL when too long. */
const char *api_path(nng_aio *aio, char *buf, size_t len);

/*
 * For a handler of a tree of paths under prefix: api_auth, then the path
 * (into buf) past prefix ("" or "/..."), or NULL after answering 401 or 404.
 */
const char *api_subpath(nng_aio *aio, const char *prefix, char *buf, size_t len);

/* Whether the request's method is GET or HEAD (HEAD: the GET's headers, no body). */
bool api_method_get(nng_aio *aio);

/* A handler of one item named by id in its path ({prefix}/{id}[/{action}]). */
typedef void (*api_item_handler)(nng_aio *aio, int64_t id);

/*
 * One action on an item: its path past the id ("" for {prefix}/{id} itself,
 * else "/accept", ...; NULL ends a table), its handler per method (NULL:
 * not allowed there), and the 405 that answers the others.
 */
struct api_item_route {
	const char *action;
	api_item_handler get; /* GET and HEAD */
	api_item_handler post, put, del;
	const char *allow;   /* the 405's Allow header: "GET, HEAD" */
	const char *refused; /* the 405's message: "use GET on /api/v1/models/{id}" */
};

/*
 * For a tree handler, the paths that name an item: rest is what follows
 * "{prefix}/" ("{id}" or "{id}/{action}"; "{id}/" is "{id}").  400
 * {"error": bad_id} when the id is not a positive integer, 404 when no row
 * of routes (ended by a row with action NULL) has the action, 405 when the
 * row has no handler for the method; else the row's handler answers (api_item_handler).
 */
void api_route_item(nng_aio *aio, const char *rest, const char *bad_id,
		    const struct api_item_route *routes);

/*
 * A store call for the item id: 0 with the item in *ret (the caller owns
 * it), -ENOENT when there is none, -EPERM when the item refuses the
 * action, or another store error; err says why.
 */
typedef int (*api_item_fn)(struct store *st, int64_t id, json_t **ret, vigil_err *err);

/*
 * In an item's handler that takes no query parameters: the item id through
 * fn on the worker's store.  true with the item in *ret (the caller owns it
 * and answers); false after answering: 400 for a query parameter, 404
 * {"error": missing} (fn's message when missing is NULL) for -ENOENT, 409
 * {"error": fn's message} for -EPERM, api_respond_store_error (what) for
 * any other failure.
 */
bool api_item_fetch(nng_aio *aio, int64_t id, api_item_fn fn, const char *missing, const char *what,
		    json_t **ret);

/*
 * 202 with cmd (consumed), a command queued for a defender as
 * host_commands.h returns it, after logging "<fmt ...> as command N", with
 * " (already pending)" when an equal command was queued already.
 */
void api_respond_queued(nng_aio *aio, json_t *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Handler of the audits endpoints (api_audits.c). */
void api_handle_audits(nng_aio *aio);

/* Handlers of the learning endpoints (api_models.c, api_activity.c). */
void api_handle_models(nng_aio *aio);
void api_handle_activity(nng_aio *aio);

/* Handler of the rules endpoints (api_rules.c). */
void api_handle_rules(nng_aio *aio);

/* Handler of GET /api/v1/status: the storage state and retention (api_status.c). */
void api_handle_status(nng_aio *aio);

/* Handler of GET /metrics: Prometheus' text format (api_metrics.c, docs/outputs.md). */
void api_handle_metrics(nng_aio *aio);

#endif
