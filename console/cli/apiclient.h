/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_APICLIENT_H
#define VIGIL_CONSOLE_APICLIENT_H

/*
 * A small HTTPS client for the console's API, used by vigilctl and the tests.
 * The console's certificate is verified against ca_file and the URL's host.
 */

#include "error.h"

/* Responses larger than this are refused. */
#define APICLIENT_BODY_MAX (64 * 1024 * 1024)

/*
 * GET base_url + path with "Authorization: Bearer token" (token may be NULL:
 * no header), sent once: the console writes every answer whole before it
 * closes the connection, so nothing here needs repeating.  On success
 * *ret_status is the HTTP status and *ret_body a new NUL-terminated copy of
 * the body (caller frees).  Transport and TLS failures return a negative
 * errno with err naming the URL: -EPROTO when the connection was lost (or
 * timed out, after 15 s) without a whole answer.
 */
int apiclient_get(const char *base_url, const char *path, const char *token, const char *ca_file,
		  int *ret_status, char **ret_body, vigil_err *err);

/*
 * POST body (JSON text; NULL sends "{}") to base_url + path, otherwise as
 * apiclient_get.  When the connection was lost without an answer it returns
 * -EPROTO with err saying the request may have been carried out; the caller
 * must check before sending it again (a POST may not be idempotent).
 */
int apiclient_post(const char *base_url, const char *path, const char *body, const char *token,
		   const char *ca_file, int *ret_status, char **ret_body, vigil_err *err);

/*
 * Any method (GET, POST, PUT, DELETE) with body (JSON text, or NULL for
 * none) and extra headers (NULL, or name, value, ..., NULL), otherwise as
 * apiclient_post: sent once, -EPROTO when the connection was lost without
 * an answer (a write may have been carried out).
 */
int apiclient_request(const char *base_url, const char *method, const char *path, const char *body,
		      const char *const *headers, const char *token, const char *ca_file,
		      int *ret_status, char **ret_body, vigil_err *err);

#endif
