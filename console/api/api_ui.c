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

/*
 * The whole answer as one text (status line, headers, "Connection: close"
 * when close, body), malloc'd; NULL when out of memory.  A 304 has neither
 * body nor length.
 */
static char *ui_text(const struct ui_answer *a, bool close, size_t *ret_len)
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
	if (close)
		n += (size_t)snprintf(top + n, sizeof(top) - n, "Connection: close\r\n");
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

/*
 * Answer a request the way the API answers (api_linger.h): in one piece,
 * since nng's server writes headers and body as two TLS records and, with
 * Nagle's algorithm on (nng 1.5.2 sets no TCP_NODELAY on its server's
 * connections), the second waits for the browser's delayed ACK, 40 ms per
 * file; and a request that asked to close with a lingering close, since
 * nng's server would close before a slow client had the whole answer.
 */
static void ui_send(nng_aio *aio, const struct ui_answer *a)
{
	struct api_linger *linger = nng_http_handler_get_data(nng_aio_get_input(aio, 1));
	bool close = api_linger_wanted(aio);
	char *text;
	size_t len;

	if ((text = ui_text(a, close, &len)) == NULL)
		nng_aio_finish(aio, NNG_ENOMEM); /* nng's server closes the connection */
	else if (close)
		api_linger_answer(linger, aio, text, len);
	else
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

int api_ui_add(nng_http_server *srv, struct api_linger *linger)
{
	nng_http_handler *h;
	int rv;

	if ((rv = nng_http_handler_alloc(&h, "/", ui_handle)) != 0)
		return rv;
	if ((rv = nng_http_handler_set_data(h, linger, NULL)) != 0) {
		nng_http_handler_free(h);
		return rv;
	}
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
