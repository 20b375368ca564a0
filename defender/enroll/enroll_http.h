/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_ENROLL_HTTP_H
#define VIGIL_DEFENDER_ENROLL_HTTP_H

/*
 * The defender's HTTPS client for enrollment: one JSON request to the
 * console's API, sent once, answered within ENROLL_HTTP_TIMEOUT_MS, with
 * an answer of at most ENROLL_HTTP_BODY_MAX bytes (read after its headers
 * say its length, so a hostile server cannot make us hold more).  Used by
 * one thread at a time; nothing here logs.
 */

#include <jansson.h>

#include "error.h"

#define ENROLL_HTTP_TIMEOUT_MS 15000
#define ENROLL_HTTP_BODY_MAX   (64 * 1024)

/*
 * method path on base_url ("https://host:port") with body (JSON text, or
 * NULL for none).  The server's certificate is verified against ca_file
 * and server_name; ca_file NULL verifies nothing (only for fetching a CA
 * whose SHA-256 the caller then checks).  *ret_status gets the HTTP status
 * and *ret_json the answer parsed (NULL when it is not JSON; caller
 * decrefs).  Transport and TLS failures return a negative errno with err
 * naming the URL: -EACCES when the server's certificate was refused.
 */
int enroll_http(const char *base_url, const char *method, const char *path, const char *body,
		const char *ca_file, const char *server_name, int *ret_status, json_t **ret_json,
		vigil_err *err);

#endif
