/* SPDX-License-Identifier: Apache-2.0 */
#include "api/api.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "api/api_priv.h"
#include "fsutil.h"
#include "log.h"
#include "store/audit_queries.h"

/* Compare without leaking through timing how much of the token matched. */
static bool token_equal(const char *given, const char *want)
{
	size_t n = strlen(want), g = strlen(given);
	unsigned char diff = g != n;

	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)((i < g ? given[i] : 0) ^ want[i]);
	return diff == 0;
}

static bool authorized(const struct api *api, nng_http_req *req)
{
	const char *h = nng_http_req_get_header(req, "Authorization");

	if (h == NULL || strncmp(h, "Bearer ", 7) != 0)
		return false;
	return token_equal(h + 7, api->token);
}

void api_respond_json(nng_aio *aio, uint16_t status, json_t *body)
{
	nng_http_res *res = NULL;
	char *text = json_dumps(body, JSON_COMPACT);
	int rv;

	json_decref(body);
	if (text == NULL || (rv = nng_http_res_alloc(&res)) != 0 ||
	    (rv = nng_http_res_set_status(res, status)) != 0 ||
	    (rv = nng_http_res_set_header(res, "Content-Type", "application/json")) != 0 ||
	    (rv = nng_http_res_set_header(res, "Cache-Control", "no-store")) != 0 ||
	    (status == 401 &&
	     (rv = nng_http_res_set_header(res, "WWW-Authenticate", "Bearer")) != 0) ||
	    (rv = nng_http_res_copy_data(res, text, strlen(text))) != 0) {
		free(text);
		nng_http_res_free(res);
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	free(text);
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

void api_respond_error(nng_aio *aio, uint16_t status, const char *msg)
{
	api_respond_json(aio, status, json_pack("{s:s}", "error", msg));
}

void api_respond_bad_param(nng_aio *aio, const struct api_query *q)
{
	char msg[300];

	if (q->bad[0] == '\0')
		snprintf(msg, sizeof(msg), "query string: %s", q->why);
	else
		snprintf(msg, sizeof(msg), "parameter '%s' %s", q->bad, q->why);
	api_respond_json(aio, 400, json_pack("{s:s,s:s}", "error", msg, "parameter", q->bad));
}

void api_respond_store_error(nng_aio *aio, int rc, const char *what, const char *msg)
{
	if (rc == -EINVAL) {
		api_respond_error(aio, 400, "the database refused a filter value");
		return;
	}
	log_warn("%s: %s", what, msg);
	api_respond_error(aio, 503, "database unavailable; retry");
}

struct api *api_of(nng_aio *aio)
{
	return nng_http_handler_get_data(nng_aio_get_input(aio, 1));
}

bool api_auth(nng_aio *aio)
{
	if (authorized(api_of(aio), nng_aio_get_input(aio, 0)))
		return true;
	api_respond_error(aio, 401, "missing or wrong API token");
	return false;
}

bool api_read_query(nng_aio *aio, const char *const *known, struct api_query *q)
{
	if (api_query_parse(nng_http_req_get_uri(nng_aio_get_input(aio, 0)), known, q) == 0)
		return true;
	api_respond_bad_param(aio, q);
	return false;
}

bool api_begin(nng_aio *aio, const char *const *known, struct api_query *q)
{
	return api_auth(aio) && api_read_query(aio, known, q);
}

const char *api_path(nng_aio *aio, char *buf, size_t len)
{
	const char *uri = nng_http_req_get_uri(nng_aio_get_input(aio, 0));
	size_t n = strcspn(uri, "?");

	if (n >= len)
		return NULL;
	memcpy(buf, uri, n);
	buf[n] = '\0';
	return buf;
}

static void handle_hosts(nng_aio *aio)
{
	static const char *const known[] = {NULL};
	struct api *api = api_of(aio);
	json_t *hosts = NULL;
	vigil_err err = {0};
	struct api_query q;

	if (!api_begin(aio, known, &q))
		return;
	if (store_hosts_list(api->st, &hosts, &err) < 0) {
		log_warn("GET /api/v1/hosts: %s", err.msg);
		api_respond_error(aio, 503, "database unavailable; retry");
		return;
	}
	api_respond_json(aio, 200, json_pack("{s:o}", "hosts", hosts));
}

/* GET /api/v1/audits?host=&kind=&service=&since=&until=&before_id=&limit= */
static void handle_audits(nng_aio *aio)
{
	static const char *const known[] = {"host",  "kind",	  "service", "since",
					    "until", "before_id", "limit",   NULL};
	struct api *api = api_of(aio);
	struct audit_filter f = {0};
	json_t *audits = NULL;
	vigil_err err = {0};
	struct api_query q;
	int rc;

	if (!api_begin(aio, known, &q))
		return;
	f.host_id = api_query_get(&q, "host");
	f.kind = api_query_get(&q, "kind");
	f.service = api_query_get(&q, "service");
	if (api_query_time(&q, "since", &f.since) < 0 ||
	    api_query_time(&q, "until", &f.until) < 0 ||
	    api_query_page(&q, &f.before_id, &f.limit) < 0) {
		api_respond_bad_param(aio, &q);
		return;
	}
	rc = store_audits_list(api->st, &f, &audits, &err);
	if (rc < 0) {
		api_respond_store_error(aio, rc, "GET /api/v1/audits", err.msg);
		return;
	}
	api_respond_json(aio, 200, json_pack("{s:o}", "audits", audits));
}

/* Everything else under /api/: 401 before 404, so probing reveals nothing. */
static void handle_api_fallback(nng_aio *aio)
{
	nng_http_req *req = nng_aio_get_input(aio, 0);

	if (!authorized(api_of(aio), req)) {
		api_respond_error(aio, 401, "missing or wrong API token");
		return;
	}
	api_respond_error(aio, 404, "no such API endpoint");
}

/*
 * Serve path (and with tree, everything below it) with cb for method, or
 * for every method when method is NULL (cb then checks it).  Request bodies
 * are read up to 64 KiB; nothing here takes more.
 */
static int add_handler(struct api *api, const char *path, void (*cb)(nng_aio *), bool tree,
		       const char *method)
{
	nng_http_handler *h;
	int rv;

	if ((rv = nng_http_handler_alloc(&h, path, cb)) != 0)
		return rv;
	if ((rv = nng_http_handler_set_data(h, api, NULL)) != 0 ||
	    (rv = nng_http_handler_set_method(h, method)) != 0 ||
	    (rv = nng_http_handler_collect_body(h, true, 64 * 1024)) != 0 ||
	    (tree && (rv = nng_http_handler_set_tree(h)) != 0) ||
	    (rv = nng_http_server_add_handler(api->srv, h)) != 0) {
		nng_http_handler_free(h);
		return rv;
	}
	return 0;
}

struct api *api_start(const char *url, nng_tls_config *tls, struct store *st, const char *token,
		      vigil_err *err)
{
	struct api *api = calloc(1, sizeof(*api));
	nng_url *u = NULL;
	int rv;

	if (api == NULL) {
		verr_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	api->st = st;
	snprintf(api->token, sizeof(api->token), "%s", token);
	if ((rv = nng_url_parse(&u, url)) != 0 || strcmp(u->u_scheme, "https") != 0) {
		verr_set(err, -EINVAL, "API address '%s' must be an https:// URL", url);
		goto fail;
	}
	if ((rv = nng_http_server_hold(&api->srv, u)) != 0) {
		verr_set(err, -EINVAL, "cannot create the API server on %s: %s", url,
			 nng_strerror(rv));
		goto fail;
	}
	if ((rv = nng_http_server_set_tls(api->srv, tls)) != 0 ||
	    (rv = add_handler(api, "/api/v1/hosts", handle_hosts, false, "GET")) != 0 ||
	    (rv = add_handler(api, "/api/v1/audits", handle_audits, false, "GET")) != 0 ||
	    (rv = add_handler(api, "/api/v1/activity", api_handle_activity, false, "GET")) != 0 ||
	    (rv = add_handler(api, "/api/v1/models", api_handle_models, true, NULL)) != 0 ||
	    (rv = add_handler(api, "/api", handle_api_fallback, true, NULL)) != 0) {
		verr_set(err, -ENOMEM, "cannot set up the API on %s: %s", url, nng_strerror(rv));
		goto fail;
	}
	if ((rv = nng_http_server_start(api->srv)) != 0) {
		verr_set(err, rv == NNG_EADDRINUSE ? -EADDRINUSE : -EINVAL,
			 "cannot serve the API on %s: %s%s", url, nng_strerror(rv),
			 rv == NNG_EADDRINUSE ? " (another process has the port)" : "");
		goto fail;
	}
	nng_url_free(u);
	return api;
fail:
	if (api->srv != NULL)
		nng_http_server_release(api->srv);
	if (u != NULL)
		nng_url_free(u);
	free(api);
	return NULL;
}

void api_stop(struct api *api)
{
	if (api == NULL)
		return;
	nng_http_server_stop(api->srv);
	nng_http_server_release(api->srv);
	free(api);
}

int api_token_load_or_create(const char *path, char *buf, vigil_err *err)
{
	unsigned char raw[API_TOKEN_LEN / 2];
	char *text = NULL;
	size_t len;
	int rc;

	rc = fs_read_file(path, 4096, &text, &len, err);
	if (rc == 0) {
		while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
			text[--len] = '\0';
		if (len < 32 || len > API_TOKEN_LEN ||
		    strspn(text, "0123456789abcdefABCDEF") != len) {
			free(text);
			return verr_set(err, -EINVAL,
					"API token file %s must hold 32 to 64 hex characters",
					path);
		}
		memcpy(buf, text, len + 1);
		free(text);
		return 0;
	}
	if (rc != -ENOENT)
		return rc;
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return verr_set(err, -EIO, "cannot get random bytes for the API token");
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(buf + 2 * i, 3, "%02x", raw[i]);
	buf[API_TOKEN_LEN] = '\n';
	rc = fs_write_file(path, buf, API_TOKEN_LEN + 1, 0600, 1, err);
	buf[API_TOKEN_LEN] = '\0';
	return rc;
}
