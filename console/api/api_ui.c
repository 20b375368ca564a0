/* SPDX-License-Identifier: Apache-2.0 */
/* The web UI's files, embedded at build time, served from nng's thread (api_ui.h). */
#include "api/api_ui.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_linger.h"

/*
 * What every answer of the UI carries.  The policy allows nothing from
 * outside the console and no inline script or style attribute, so a string
 * from the API that ever reached the page as markup could not run.
 */
static const char *const ui_headers[][2] = {
    {"Content-Security-Policy",
     "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
     " connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self';"
     " frame-ancestors 'none'"},
    {"X-Content-Type-Options", "nosniff"},
    {"Referrer-Policy", "no-referrer"},
    {"X-Frame-Options", "DENY"},
    {"Strict-Transport-Security", "max-age=31536000"},
    /* Revalidate every time (cheap: a 304), so a new console never runs yesterday's page. */
    {"Cache-Control", "no-cache"},
};

/* Request bodies are never wanted here; this bounds what nng reads of one. */
#define UI_BODY_MAX 4096

const struct api_ui_file *api_ui_find(const char *path)
{
	if (strcmp(path, "/") == 0)
		path = "/ui/index.html";
	for (size_t i = 0; i < api_ui_nfiles; i++)
		if (strcmp(api_ui_files[i].path, path) == 0)
			return &api_ui_files[i];
	return NULL;
}

/*
 * Whether an If-None-Match header names etag: "*", or a comma-separated list
 * of tags, weak ("W/") ones compared by their opaque part (RFC 9110 13.1.2).
 */
static bool etag_matches(const char *header, const char *etag)
{
	size_t n = strlen(etag);
	const char *p = header;

	while (*p != '\0') {
		size_t len;

		p += strspn(p, " \t,");
		if (*p == '*')
			return true;
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		len = strcspn(p, ",");
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == n && memcmp(p, etag, n) == 0)
			return true;
		p += strcspn(p, ",");
	}
	return false;
}

/* What one answer is; body is static (an embedded file or a literal). */
struct ui_answer {
	uint16_t status;
	const char *type;  /* Content-Type, or NULL */
	const char *etag;  /* or NULL */
	const char *allow; /* the Allow header of a 405, or NULL */
	const void *body;
	size_t len;
	bool head; /* HEAD: the GET's Content-Length, no body */
};

static const char *ui_reason(uint16_t status)
{
	switch (status) {
	case 200:
		return "OK";
	case 304:
		return "Not Modified";
	case 404:
		return "Not Found";
	default:
		return "Method Not Allowed";
	}
}

/* The answer for nng's server to write (a request that asked to close); NULL when out of memory. */
static nng_http_res *ui_res(const struct ui_answer *a)
{
	nng_http_res *res;
	int rv;

	if (nng_http_res_alloc(&res) != 0)
		return NULL;
	rv = nng_http_res_set_status(res, a->status);
	for (size_t i = 0; rv == 0 && i < sizeof(ui_headers) / sizeof(ui_headers[0]); i++)
		rv = nng_http_res_set_header(res, ui_headers[i][0], ui_headers[i][1]);
	if (rv == 0 && a->type != NULL)
		rv = nng_http_res_set_header(res, "Content-Type", a->type);
	if (rv == 0 && a->etag != NULL)
		rv = nng_http_res_set_header(res, "ETag", a->etag);
	if (rv == 0 && a->allow != NULL)
		rv = nng_http_res_set_header(res, "Allow", a->allow);
	/* The bytes are static: set, not copied.  nng drops a HEAD's body itself. */
	if (rv == 0 && a->status != 304)
		rv = nng_http_res_set_data(res, a->body, a->len);
	if (rv != 0) {
		nng_http_res_free(res);
		return NULL;
	}
	return res;
}

/*
 * The whole answer as one text (status line, headers, body), malloc'd; NULL
 * when out of memory.  A 304 has neither body nor length.
 */
static char *ui_text(const struct ui_answer *a, size_t *ret_len)
{
	char top[1536];
	size_t n, body = a->head || a->status == 304 ? 0 : a->len;
	char *text;

	n = (size_t)snprintf(top, sizeof(top), "HTTP/1.1 %u %s\r\n", a->status,
			     ui_reason(a->status));
	for (size_t i = 0; i < sizeof(ui_headers) / sizeof(ui_headers[0]); i++)
		n += (size_t)snprintf(top + n, sizeof(top) - n, "%s: %s\r\n", ui_headers[i][0],
				      ui_headers[i][1]);
	if (a->type != NULL)
		n += (size_t)snprintf(top + n, sizeof(top) - n, "Content-Type: %s\r\n", a->type);
	if (a->etag != NULL)
		n += (size_t)snprintf(top + n, sizeof(top) - n, "ETag: %s\r\n", a->etag);
	if (a->allow != NULL)
		n += (size_t)snprintf(top + n, sizeof(top) - n, "Allow: %s\r\n", a->allow);
	if (a->status != 304)
		n += (size_t)snprintf(top + n, sizeof(top) - n, "Content-Length: %zu\r\n", a->len);
	n += (size_t)snprintf(top + n, sizeof(top) - n, "\r\n");
	if (n >= sizeof(top) || (text = malloc(n + body)) == NULL)
		return NULL;
	memcpy(text, top, n);
	memcpy(text + n, a->body, body);
	*ret_len = n + body;
	return text;
}

/* nng's own answer, for a request that asked to close: written by us, nng would close too soon. */
static void ui_send_nng(nng_aio *aio, const struct ui_answer *a)
{
	nng_http_res *res = ui_res(a);

	if (res == NULL) {
		nng_aio_finish(aio, NNG_ENOMEM); /* nng's server closes the connection */
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

/*
 * Answer a request.  A keep-alive request gets the answer written in one
 * piece by us: nng's server writes the headers and the body as two TLS
 * records, and with Nagle's algorithm on (nng 1.5.2 sets no TCP_NODELAY on
 * its server's connections) the second waits for the browser's delayed ACK,
 * 40 ms per file, a page's modules one after another on each connection
 * (api_linger.h has the same finding).
 */
static void ui_send(nng_aio *aio, const struct ui_answer *a)
{
	char *text;
	size_t len;

	if (api_linger_wanted(aio)) {
		ui_send_nng(aio, a);
		return;
	}
	if ((text = ui_text(a, &len)) == NULL) {
		nng_aio_finish(aio, NNG_ENOMEM); /* nng's server closes the connection */
		return;
	}
	api_send_whole(aio, text, len);
}

/* Every request under "/" that no other handler took: on nng's thread, never waits. */
static void ui_handle(nng_aio *aio)
{
	static const char not_found[] = "no such page\n", use_get[] = "use GET\n";
	nng_http_req *req = nng_aio_get_input(aio, 0);
	const char *method = nng_http_req_get_method(req);
	const char *uri = nng_http_req_get_uri(req);
	struct ui_answer a = {.head = strcmp(method, "HEAD") == 0};
	const struct api_ui_file *f = NULL;
	const char *inm;
	char path[256];
	size_t n = strcspn(uri, "?#");

	if (n < sizeof(path)) {
		memcpy(path, uri, n);
		path[n] = '\0';
		f = api_ui_find(path);
	}
	if (!a.head && strcmp(method, "GET") != 0) {
		a = (struct ui_answer){.status = 405,
				       .type = "text/plain; charset=utf-8",
				       .allow = "GET, HEAD",
				       .body = use_get,
				       .len = sizeof(use_get) - 1};
	} else if (f == NULL) {
		a.status = 404;
		a.type = "text/plain; charset=utf-8";
		a.body = not_found;
		a.len = sizeof(not_found) - 1;
	} else {
		inm = nng_http_req_get_header(req, "If-None-Match");
		a.status = inm != NULL && etag_matches(inm, f->etag) ? 304 : 200;
		a.type = f->content_type;
		a.etag = f->etag;
		a.body = f->data;
		a.len = f->len;
	}
	ui_send(aio, &a);
}

int api_ui_add(nng_http_server *srv)
{
	nng_http_handler *h;
	int rv;

	if ((rv = nng_http_handler_alloc(&h, "/", ui_handle)) != 0)
		return rv;
	/* Every method reaches ui_handle, so a POST gets our 405 with the UI's headers. */
	if ((rv = nng_http_handler_set_method(h, NULL)) != 0 ||
	    (rv = nng_http_handler_collect_body(h, true, UI_BODY_MAX)) != 0 ||
	    (rv = nng_http_handler_set_tree(h)) != 0 ||
	    (rv = nng_http_server_add_handler(srv, h)) != 0) {
		nng_http_handler_free(h);
		return rv;
	}
	return 0;
}
