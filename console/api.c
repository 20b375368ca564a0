/* SPDX-License-Identifier: Apache-2.0 */
#include "api.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "fsutil.h"
#include "log.h"
#include "queries.h"

struct api {
	nng_http_server *srv;
	struct store *st;
	char token[API_TOKEN_LEN + 1];
};

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

/* Finish aio with a JSON response; body is consumed (json_decref). */
static void respond_json(nng_aio *aio, uint16_t status, json_t *body)
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

static void respond_error(nng_aio *aio, uint16_t status, const char *msg)
{
	respond_json(aio, status, json_pack("{s:s}", "error", msg));
}

static struct api *api_of(nng_aio *aio)
{
	return nng_http_handler_get_data(nng_aio_get_input(aio, 1));
}

static void handle_hosts(nng_aio *aio)
{
	nng_http_req *req = nng_aio_get_input(aio, 0);
	struct api *api = api_of(aio);
	json_t *hosts = NULL;
	vigil_err err = {0};

	if (!authorized(api, req)) {
		respond_error(aio, 401, "missing or wrong API token");
		return;
	}
	if (store_hosts_list(api->st, &hosts, &err) < 0) {
		log_warn("GET /api/v1/hosts: %s", err.msg);
		respond_error(aio, 503, "database unavailable; retry");
		return;
	}
	respond_json(aio, 200, json_pack("{s:o}", "hosts", hosts));
}

/* The value of query parameter name in uri, decoded into buf; NULL when absent or bad. */
static const char *query_param(const char *uri, const char *name, char *buf, size_t len)
{
	const char *q = strchr(uri, '?');
	size_t nlen = strlen(name);

	for (const char *p = q; p != NULL && *p != '\0'; p = strchr(p + 1, '&')) {
		const char *k = p + 1;
		if (strncmp(k, name, nlen) != 0 || k[nlen] != '=')
			continue;
		const char *v = k + nlen + 1;
		size_t o = 0;
		for (; *v != '\0' && *v != '&' && o + 1 < len; v++) {
			if (*v == '%' && v[1] && v[2]) {
				char hex[3] = {v[1], v[2], 0};
				char *end;
				long c = strtol(hex, &end, 16);
				if (*end != '\0' || c <= 0)
					return NULL;
				buf[o++] = (char)c;
				v += 2;
			} else {
				buf[o++] = *v == '+' ? ' ' : *v;
			}
		}
		if (*v != '\0' && *v != '&')
			return NULL; /* too long */
		buf[o] = '\0';
		return buf;
	}
	return NULL;
}

/* GET /api/v1/audits?host=&kind=&since=&until=&before_id=&limit= */
static void handle_audits(nng_aio *aio)
{
	nng_http_req *req = nng_aio_get_input(aio, 0);
	struct api *api = api_of(aio);
	const char *uri = nng_http_req_get_uri(req);
	char host[256], kind[64], since[64], until[64], before[32], limit[16];
	struct audit_filter f = {0};
	json_t *audits = NULL;
	vigil_err err = {0};
	int rc;

	if (!authorized(api, req)) {
		respond_error(aio, 401, "missing or wrong API token");
		return;
	}
	f.host_id = query_param(uri, "host", host, sizeof(host));
	f.kind = query_param(uri, "kind", kind, sizeof(kind));
	f.since = query_param(uri, "since", since, sizeof(since));
	f.until = query_param(uri, "until", until, sizeof(until));
	if (query_param(uri, "before_id", before, sizeof(before)))
		f.before_id = strtoll(before, NULL, 10);
	if (query_param(uri, "limit", limit, sizeof(limit))) {
		f.limit = atoi(limit);
		if (f.limit < 1 || f.limit > 1000) {
			respond_error(aio, 400, "limit must be from 1 to 1000");
			return;
		}
	}
	rc = store_audits_list(api->st, &f, &audits, &err);
	if (rc == -EINVAL) {
		respond_error(aio, 400, "bad filter: since/until must be RFC 3339 times");
		return;
	}
	if (rc < 0) {
		log_warn("GET /api/v1/audits: %s", err.msg);
		respond_error(aio, 503, "database unavailable; retry");
		return;
	}
	respond_json(aio, 200, json_pack("{s:o}", "audits", audits));
}

/* Everything else under /api/: 401 before 404, so probing reveals nothing. */
static void handle_api_fallback(nng_aio *aio)
{
	nng_http_req *req = nng_aio_get_input(aio, 0);

	if (!authorized(api_of(aio), req)) {
		respond_error(aio, 401, "missing or wrong API token");
		return;
	}
	respond_error(aio, 404, "no such API endpoint");
}

static int add_handler(struct api *api, const char *path, void (*cb)(nng_aio *), bool tree,
		       const char *method)
{
	nng_http_handler *h;
	int rv;

	if ((rv = nng_http_handler_alloc(&h, path, cb)) != 0)
		return rv;
	if ((rv = nng_http_handler_set_data(h, api, NULL)) != 0 ||
	    (method != NULL && (rv = nng_http_handler_set_method(h, method)) != 0) ||
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
		if (len < 32 || len > API_TOKEN_LEN || strspn(text, "0123456789abcdefABCDEF") != len) {
			free(text);
			return verr_set(err, -EINVAL,
					"API token file %s must hold 32 to 64 hex characters", path);
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
