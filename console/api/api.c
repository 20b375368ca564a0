/* SPDX-License-Identifier: Apache-2.0 */
#include "api/api.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "api/api_priv.h"
#include "api/api_ui.h"
#include "fsutil.h"
#include "log.h"
#include "store/store.h"

/* A route: the api and the handler its requests are queued for. */
struct api_route {
	struct api *api;
	api_pool_fn fn; /* NULL: answered at once on nng's thread (needs no database) */
};

/* json_dump_callback's sink: the text, up to API_BODY_MAX. */
struct body_buf {
	char *text;
	size_t len, cap;
	bool over;
};

static int body_append(const char *buf, size_t size, void *arg)
{
	struct body_buf *b = arg;

	if (size > API_BODY_MAX - b->len) {
		b->over = true;
		return -1;
	}
	if (b->len + size > b->cap) {
		size_t cap = b->cap > 0 ? b->cap : 64 * 1024;
		char *text;

		while (cap < b->len + size)
			cap *= 2;
		if (cap > API_BODY_MAX)
			cap = API_BODY_MAX;
		if ((text = realloc(b->text, cap)) == NULL)
			return -1;
		b->text = text;
		b->cap = cap;
	}
	memcpy(b->text + b->len, buf, size);
	b->len += size;
	return 0;
}

/* Room for an answer's headers: ours (5 pairs at most), the caller's extra ones, the NULL. */
#define ANSWER_EXTRA_MAX 4
#define ANSWER_HEADERS	 (2 * (5 + ANSWER_EXTRA_MAX) + 1)

/*
 * The headers of an answer with status (NULL-terminated name, value pairs),
 * extra (may be NULL; at most ANSWER_EXTRA_MAX pairs are taken) last.
 */
static int answer_headers(uint16_t status, const char *allow, const char *const *extra,
			  const char *h[ANSWER_HEADERS])
{
	int n = 0;

	h[n++] = "Content-Type";
	h[n++] = "application/json";
	h[n++] = "Cache-Control";
	h[n++] = "no-store";
	if (status == 401) {
		h[n++] = "WWW-Authenticate";
		h[n++] = "Bearer";
	}
	if (status == 503) {
		/* Busy, or the database away: both pass; a second is a fair pause. */
		h[n++] = "Retry-After";
		h[n++] = "1";
	}
	if (allow != NULL) {
		h[n++] = "Allow";
		h[n++] = allow;
	}
	for (int i = 0;
	     extra != NULL && extra[i] != NULL && extra[i + 1] != NULL && i < 2 * ANSWER_EXTRA_MAX;
	     i += 2) {
		h[n++] = extra[i];
		h[n++] = extra[i + 1];
	}
	h[n] = NULL;
	return n;
}

static const char *reason(uint16_t status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 429:
		return "Too Many Requests";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	default:
		return "Unknown";
	}
}

/*
 * The whole answer as one text, written in one piece (api_linger.h says
 * why): status line, headers, "Connection: close" when close, Content-Length,
 * then the body unless head.  NULL when out of memory.
 */
static char *answer_text(uint16_t status, const char *const *h, const struct body_buf *b, bool head,
			 bool close, size_t *ret_len)
{
	char top[1024];
	size_t n;
	char *text;

	n = (size_t)snprintf(top, sizeof(top), "HTTP/1.1 %u %s\r\n", status, reason(status));
	for (int i = 0; h[i] != NULL && n < sizeof(top); i += 2)
		n += (size_t)snprintf(top + n, sizeof(top) - n, "%s: %s\r\n", h[i], h[i + 1]);
	if (n < sizeof(top))
		n += (size_t)snprintf(top + n, sizeof(top) - n, "%sContent-Length: %zu\r\n\r\n",
				      close ? "Connection: close\r\n" : "", b->len);
	if (n >= sizeof(top) || (text = malloc(n + (head ? 0 : b->len))) == NULL)
		return NULL;
	memcpy(text, top, n);
	if (!head)
		memcpy(text + n, b->text, b->len);
	*ret_len = n + (head ? 0 : b->len);
	return text;
}

static void respond(nng_aio *aio, uint16_t status, json_t *body, const char *allow,
		    const char *const *extra)
{
	struct api *api = api_of(aio);
	bool head = strcmp(nng_http_req_get_method(nng_aio_get_input(aio, 0)), "HEAD") == 0;
	struct body_buf b = {0};
	const char *h[ANSWER_HEADERS];
	char *text;
	size_t len;
	bool close;
	int rv;

	rv = json_dump_callback(body, body_append, &b, JSON_COMPACT);
	json_decref(body);
	if (rv != 0 && b.over) {
		char path[256];
		char msg[200];

		free(b.text);
		atomic_fetch_add(&api->over_cap, 1);
		log_warn("%s %s: the answer is over %u MiB, refused",
			 nng_http_req_get_method(nng_aio_get_input(aio, 0)),
			 api_path(aio, path, sizeof(path)) != NULL ? path : "(long path)",
			 API_BODY_MAX >> 20);
		snprintf(msg, sizeof(msg),
			 "the answer would be larger than the API's %u MiB limit; ask for less"
			 " (a smaller limit, or narrower filters)",
			 API_BODY_MAX >> 20);
		respond(aio, 500, json_pack("{s:s}", "error", msg), NULL, NULL);
		return;
	}
	if (rv != 0) {
		free(b.text);
		nng_aio_finish(aio, NNG_ENOMEM); /* nng's server closes the connection */
		return;
	}
	answer_headers(status, allow, extra, h);
	close = api_linger_wanted(aio);
	text = answer_text(status, h, &b, head, close, &len);
	free(b.text);
	if (text == NULL)
		nng_aio_finish(aio, NNG_ENOMEM); /* nng's server closes the connection */
	else if (close)
		api_linger_answer(api->linger, aio, text, len);
	else
		api_send_whole(aio, text, len);
}

void api_respond_json(nng_aio *aio, uint16_t status, json_t *body)
{
	respond(aio, status, body, NULL, NULL);
}

void api_respond_headers(nng_aio *aio, uint16_t status, json_t *body, const char *const *extra)
{
	respond(aio, status, body, NULL, extra);
}

void api_respond_error(nng_aio *aio, uint16_t status, const char *msg)
{
	api_respond_json(aio, status, json_pack("{s:s}", "error", msg));
}

void api_respond_not_allowed(nng_aio *aio, const char *allow, const char *msg)
{
	respond(aio, 405, json_pack("{s:s}", "error", msg), allow, NULL);
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
	struct api *api = api_of(aio);
	char text[300];

	if (rc == -EINVAL) {
		api_respond_error(aio, 400, "the database refused a filter value");
		return;
	}
	log_warn("%s: %s", what, msg);
	/* The store names the SQLSTATE; 57014 is query_canceled, here by statement_timeout. */
	if (strstr(msg, "SQLSTATE 57014") != NULL) {
		atomic_fetch_add(&api->timeouts, 1);
		snprintf(text, sizeof(text),
			 "the query timed out after %d ms and was cancelled (the database is busy"
			 " or the query too broad); retry later, or narrow it",
			 api->query_timeout_ms);
		api_respond_json(
		    aio, 504,
		    json_pack("{s:s,s:i}", "error", text, "timeout_ms", api->query_timeout_ms));
		return;
	}
	api_respond_error(aio, 503, "database unavailable; retry");
}

bool api_store_done(nng_aio *aio, int rc, const char *missing, const char *what, const char *msg)
{
	if (rc == -ENOENT)
		api_respond_error(aio, 404, missing != NULL ? missing : msg);
	else if (rc < 0)
		api_respond_store_error(aio, rc, what, msg);
	return rc >= 0;
}

struct api *api_of(nng_aio *aio)
{
	struct api_route *r = nng_http_handler_get_data(nng_aio_get_input(aio, 1));

	return r->api;
}

struct store *api_store(nng_aio *aio)
{
	return api_pool_store(aio);
}

bool api_method_get(nng_aio *aio)
{
	const char *m = nng_http_req_get_method(nng_aio_get_input(aio, 0));

	return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
}

/* Who the request a worker is answering was authorized as (api_caller). */
static _Thread_local struct api_caller caller;

bool api_auth(nng_aio *aio)
{
	return api_auth_request(aio, &caller);
}

const struct api_caller *api_caller(nng_aio *aio)
{
	(void)aio;
	return &caller;
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
	if (!api_auth(aio))
		return false;
	if (!api_method_get(aio)) {
		api_respond_not_allowed(aio, "GET, HEAD", "use GET on this endpoint");
		return false;
	}
	return api_read_query(aio, known, q);
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

const char *api_subpath(nng_aio *aio, const char *prefix, char *buf, size_t len)
{
	const char *path;

	/* Auth first, for every path and method: nothing is revealed without a token. */
	if (!api_auth(aio))
		return NULL;
	path = api_path(aio, buf, len);
	if (path == NULL || strncmp(path, prefix, strlen(prefix)) != 0) {
		api_respond_error(aio, 404, "no such API endpoint");
		return NULL;
	}
	return path + strlen(prefix);
}

static void handle_hosts(nng_aio *aio)
{
	static const char *const known[] = {NULL};
	json_t *hosts = NULL;
	vigil_err err = {0};
	struct api_query q;
	int rc;

	if (!api_begin(aio, known, &q))
		return;
	if ((rc = store_hosts_list(api_store(aio), &hosts, &err)) < 0) {
		api_respond_store_error(aio, rc, "GET /api/v1/hosts", err.msg);
		return;
	}
	api_respond_json(aio, 200, json_pack("{s:o}", "hosts", hosts));
}

/* Everything else: 401 before 404, so probing reveals nothing.  On a worker (a cookie). */
static void handle_fallback(nng_aio *aio)
{
	if (api_auth(aio))
		api_respond_error(aio, 404, "no such API endpoint");
}

/*
 * Every request arrives here, on one of nng's threads, which must never
 * wait: queue it for a worker, or answer 503 at once when the queue is full.
 * The fallback needs a worker (and its database) only to look a session
 * cookie up; with the token, a wrong one or none it answers here.
 */
static void route_request(nng_aio *aio)
{
	struct api_route *r = nng_http_handler_get_data(nng_aio_get_input(aio, 1));
	api_pool_fn fn = r->fn;
	uint64_t refused;

	if (fn == NULL) {
		switch (api_auth_cred(r->api->token, nng_aio_get_input(aio, 0))) {
		case API_CRED_TOKEN:
			api_respond_error(aio, 404, "no such API endpoint");
			return;
		case API_CRED_COOKIE:
			fn = handle_fallback;
			break;
		default:
			api_respond_error(aio, 401, API_AUTH_401);
			return;
		}
	}
	if (api_pool_submit(r->api->pool, fn, aio) == 0)
		return;
	refused = api_pool_refused(r->api->pool);
	if (refused == 1 || refused % 100 == 0)
		log_warn("API busy: every worker is answering and %d requests wait; %" PRIu64
			 " request(s) refused with 503 so far",
			 API_POOL_QUEUE_MAX, refused);
	api_respond_error(aio, 503,
			  "the API is busy (all workers are answering and the queue is"
			  " full); retry shortly");
}

/*
 * Serve path (and with tree, everything below it), every method (the
 * handlers check it, so that even a wrong method gets the API's JSON rather
 * than nng's HTML page).  fn runs on a worker; NULL answers with
 * handle_fallback.  Request bodies are read up to 64 KiB; nothing here takes
 * more.
 */
static int add_handler(struct api *api, const char *path, api_pool_fn fn, bool tree)
{
	struct api_route *r = malloc(sizeof(*r));
	nng_http_handler *h;
	int rv;

	if (r == NULL)
		return NNG_ENOMEM;
	*r = (struct api_route){.api = api, .fn = fn};
	if ((rv = nng_http_handler_alloc(&h, path, route_request)) != 0) {
		free(r);
		return rv;
	}
	if ((rv = nng_http_handler_set_data(h, r, free)) != 0) {
		free(r);
		nng_http_handler_free(h);
		return rv;
	}
	if ((rv = nng_http_handler_set_method(h, NULL)) != 0 ||
	    (rv = nng_http_handler_collect_body(h, true, 64 * 1024)) != 0 ||
	    (tree && (rv = nng_http_handler_set_tree(h)) != 0) ||
	    (rv = nng_http_server_add_handler(api->srv, h)) != 0) {
		nng_http_handler_free(h); /* frees r */
		return rv;
	}
	return 0;
}

/* o's connection limits, defaults filled in; -EINVAL with err naming the one out of range. */
static int limits_of(const struct api_opts *o, struct tls_conn_limits *ret, vigil_err *err)
{
	int idle = o->idle_timeout_ms != 0 ? o->idle_timeout_ms : API_IDLE_TIMEOUT_MS_DEFAULT;
	int max = o->conns_max != 0 ? o->conns_max : API_CONNS_MAX_DEFAULT;
	int per_addr = o->conns_per_addr != 0 ? o->conns_per_addr : API_CONNS_PER_ADDR_DEFAULT;

	/* A smaller total cap takes the default per-address cap down with it. */
	if (o->conns_per_addr == 0 && per_addr > max)
		per_addr = max;
	if (idle < API_IDLE_TIMEOUT_MS_MIN || idle > TLS_HANDSHAKE_MS_MAX)
		return verr_set(err, -EINVAL, "API idle timeout %d ms is not from %d to %d ms",
				idle, API_IDLE_TIMEOUT_MS_MIN, TLS_HANDSHAKE_MS_MAX);
	if (max < 1 || max > TLS_CONNS_MAX)
		return verr_set(err, -EINVAL, "API connection cap %d is not from 1 to %d", max,
				TLS_CONNS_MAX);
	if (per_addr < 1 || per_addr > max)
		return verr_set(err, -EINVAL,
				"API connection cap per address %d is not from 1 to the total cap"
				" (%d)",
				per_addr, max);
	*ret = (struct tls_conn_limits){.idle_ms = (unsigned)idle,
					.conns_per_addr = (unsigned)per_addr,
					.conns_max = (unsigned)max};
	return 0;
}

struct api *api_start(const struct api_opts *o, vigil_err *err)
{
	struct api *api = calloc(1, sizeof(*api));
	struct tls_conn_limits lim;
	nng_url *u = NULL;
	int rv;

	if (api == NULL) {
		verr_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	api->query_timeout_ms = o->query_timeout_ms;
	snprintf(api->token, sizeof(api->token), "%s", o->token);
	if ((rv = nng_url_parse(&u, o->url)) != 0 || strcmp(u->u_scheme, "https") != 0) {
		verr_set(err, -EINVAL, "API address '%s' must be an https:// URL", o->url);
		goto fail;
	}
	if (limits_of(o, &lim, err) < 0)
		goto fail;
	if ((api->linger = api_linger_new(err)) == NULL)
		goto fail;
	if ((api->auth =
		 api_auth_new(o->session_hours != 0 ? o->session_hours : API_SESSION_HOURS_DEFAULT,
			      err)) == NULL)
		goto fail;
	if ((api->enroll =
		 api_enroll_new(o->enroll_signer, o->host_cert_secs, o->link_port, err)) == NULL)
		goto fail;
	if ((api->pool = api_pool_start(o->dsn, o->workers, o->query_timeout_ms, err)) == NULL)
		goto fail;
	if ((rv = nng_http_server_hold(&api->srv, u)) != 0) {
		verr_set(err, -EINVAL, "cannot create the API server on %s: %s", o->url,
			 nng_strerror(rv));
		goto fail;
	}
	/* Before the server has the configuration: its first connection is limited. */
	if ((api->limits = api_limits_start(o->tls, &lim, err)) == NULL)
		goto fail;
	if ((rv = nng_http_server_set_tls(api->srv, o->tls)) != 0 ||
	    (rv = add_handler(api, "/api/v1/hosts", handle_hosts, false)) != 0 ||
	    (rv = add_handler(api, "/api/v1/audits", api_handle_audits, true)) != 0 ||
	    (rv = add_handler(api, "/api/v1/activity", api_handle_activity, true)) != 0 ||
	    (rv = add_handler(api, "/api/v1/models", api_handle_models, true)) != 0 ||
	    (rv = add_handler(api, "/api/v1/rules", api_handle_rules, true)) != 0 ||
	    (rv = add_handler(api, "/api/v1/session", api_handle_session, false)) != 0 ||
	    (rv = add_handler(api, "/api/v1/users", api_handle_users, true)) != 0 ||
	    (rv = add_handler(api, "/api/v1/status", api_handle_status, false)) != 0 ||
	    (rv = add_handler(api, "/api/v1/join-tokens", api_handle_join_tokens, true)) != 0 ||
	    (rv = add_handler(api, "/api/v1/enroll", api_handle_enroll, true)) != 0 ||
	    (rv = add_handler(api, "/api/v1/revocations", api_handle_revocations, true)) != 0 ||
	    (rv = add_handler(api, "/metrics", api_handle_metrics, false)) != 0 ||
	    (rv = add_handler(api, "/api", NULL, true)) != 0 ||
	    (rv = api_ui_add(api->srv, api->linger)) != 0) {
		verr_set(err, -ENOMEM, "cannot set up the API on %s: %s", o->url, nng_strerror(rv));
		goto fail;
	}
	if ((rv = nng_http_server_start(api->srv)) != 0) {
		verr_set(err, rv == NNG_EADDRINUSE ? -EADDRINUSE : -EINVAL,
			 "cannot serve the API on %s: %s%s", o->url, nng_strerror(rv),
			 rv == NNG_EADDRINUSE ? " (another process has the port)" : "");
		goto fail;
	}
	nng_url_free(u);
	return api;
fail:
	if (api->srv != NULL)
		nng_http_server_release(api->srv);
	api_pool_stop(api->pool);
	api_linger_free(api->linger);
	api_limits_stop(api->limits);
	api_auth_free(api->auth);
	api_enroll_free(api->enroll);
	if (u != NULL)
		nng_url_free(u);
	free(api);
	return NULL;
}

void api_stop(struct api *api)
{
	struct api_linger_stats ls;
	struct tls_conn_stats cs;
	uint64_t refused;

	if (api == NULL)
		return;
	/*
	 * The server waits for the requests handed out (their aios), which the
	 * workers still answer; then nothing new comes, and the pool and the
	 * lingering connections can go.
	 */
	nng_http_server_stop(api->srv);
	refused = api_pool_refused(api->pool);
	api_pool_stop(api->pool);
	api_linger_stats(api->linger, &ls);
	api_linger_free(api->linger);
	nng_http_server_release(api->srv);
	log_info("API stopped: %" PRIu64 " answer(s) to \"Connection: close\" requests closed after"
		 " the client, %" PRIu64 " after the linger, %" PRIu64
		 " on a failed or stalled write, %" PRIu64 " dropped (out of memory); %" PRIu64
		 " request(s) refused busy, %" PRIu64 " query timeout(s), %" PRIu64
		 " answer(s) over %u MiB",
		 ls.client_closed, ls.at_deadline, ls.write_failed, ls.dropped, refused,
		 (uint64_t)atomic_load(&api->timeouts), (uint64_t)atomic_load(&api->over_cap),
		 API_BODY_MAX >> 20);
	api_limits_stats(api->limits, &cs);
	log_info("API connections: %" PRIu64 " closed idle (%" PRIu64
		 " of them in the TLS handshake; limit %u ms), %" PRIu64
		 " refused over the cap per address (%u), %" PRIu64 " over the cap in all (%u)",
		 cs.idle_closed, cs.idle_in_handshake, api_limits_get(api->limits)->idle_ms,
		 cs.refused_addr_cap, api_limits_get(api->limits)->conns_per_addr,
		 cs.refused_conns_max, api_limits_get(api->limits)->conns_max);
	api_limits_stop(api->limits);
	api_auth_free(api->auth);
	api_enroll_free(api->enroll);
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
