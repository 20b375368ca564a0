/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_API_H
#define VIGIL_CONSOLE_API_H

/*
 * The console's HTTPS REST API (nng's HTTP server over Vigil's TLS engine).
 * Every /api/ request needs "Authorization: Bearer <token>"; a missing or
 * wrong token gets 401 and no data.  Responses are JSON.
 *
 *   GET  /api/v1/hosts                     the fleet (store_hosts_list)
 *   GET  /api/v1/audits                    audits, filtered and paged
 *   GET  /api/v1/models                    models, filtered and paged
 *   GET  /api/v1/models/{id}               one model with its entries
 *   POST /api/v1/models/{id}/relearn       queue a relearn command (202)
 *   GET  /api/v1/activity                  interactive sessions' activity log
 *
 * Unknown or malformed query parameters get 400 {"error", "parameter"}.
 * docs/api.md has the fields.
 */

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "error.h"
#include "store/store.h"

/* API tokens are 64 hex characters (32 random bytes). */
#define API_TOKEN_LEN 64

struct api;

/*
 * Serve url (https://addr:port) with tls (held) answering from st (not
 * owned, must outlive the api).  token is copied.  err names the address.
 */
struct api *api_start(const char *url, nng_tls_config *tls, struct store *st, const char *token,
		      vigil_err *err);

void api_stop(struct api *api);

/*
 * Read the token from path, or create it (mode 0600, 32 random bytes as hex)
 * when missing.  buf must hold API_TOKEN_LEN + 1.
 */
int api_token_load_or_create(const char *path, char *buf, vigil_err *err);

#endif
