/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_API_UI_H
#define VIGIL_CONSOLE_API_UI_H

/*
 * The operators' web UI, served by the API's HTTPS server: the files under
 * console/ui/, embedded into the binary at build time (console/ui/embed_gen.c
 * writes the table below; console/ui/meson.build lists the files).
 *
 *   GET /          index.html
 *   GET /ui/NAME   console/ui/NAME
 *
 * Answered at once on nng's thread (no database, no worker, no token: the
 * page itself holds no data; every /api/ call it makes is authorized).
 * GET and HEAD only (405 otherwise), 404 for any other path, 304 when
 * If-None-Match names the file's ETag.  Every answer carries the
 * Content-Security-Policy that allows scripts, styles and fonts from the
 * console only (no inline script or style attribute), and nosniff,
 * no-referrer, frame denial and HSTS headers.
 *
 * A keep-alive request (every browser's) gets its answer written in one
 * piece by this module (status line, headers and body in one write), not by
 * nng's server, which writes headers and body apart: with Nagle's algorithm
 * on nng's server sockets the second piece waits for the client's delayed
 * ACK, 40 ms per file (api_linger.h found the same).  A request that asks
 * to close gets nng's own answer, which nng may cut when it closes (as
 * for every nng answer; api_linger.h): browsers never ask that.
 */

#include <stddef.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

/* One embedded file; the table is static data, never freed. */
struct api_ui_file {
	const char *path;	  /* "/ui/js/core.js" */
	const char *content_type; /* "text/javascript; charset=utf-8" */
	const unsigned char *data;
	size_t len;
	const char *etag; /* "\"<16 hex digits>\"", a hash of the bytes */
};

/* Generated (ui_embed.c). */
extern const struct api_ui_file api_ui_files[];
extern const size_t api_ui_nfiles;

/*
 * Register the UI's handler (a tree at "/") on srv, before the server starts;
 * answers to requests that ask to close go through linger (the API's, which
 * must outlive the server).  More specific handlers ("/api") keep their
 * paths.  0, or an nng error code.
 */
struct api_linger;
int api_ui_add(nng_http_server *srv, struct api_linger *linger);

/* The embedded file served at path ("/" is index.html), or NULL. */
const struct api_ui_file *api_ui_find(const char *path);

#endif
