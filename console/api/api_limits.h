/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_API_LIMITS_H
#define VIGIL_CONSOLE_API_LIMITS_H

/*
 * The HTTPS API's connection limits: idle connections closed, connections
 * over a cap per source address or in all refused at accept.  The TLS engine
 * enforces them (tls.h: tls_conn_limits, which says why there and how); this
 * module puts them on the API's TLS configuration and reports what they did:
 * the first closures or refusals within a second, then at most one line per
 * API_LIMITS_LOG_MS with the counts since the last line and the last
 * address, never a line per connection (a flood must not flood the log).
 *
 * Locking: start and stop from the API's owner; the report runs on an nng
 * timer (it never blocks), and api_limits_stats may be called from any
 * thread.
 */

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "error.h"
#include "tls.h"

/* How often the counters are looked at, and how often at most a report is logged. */
#define API_LIMITS_POLL_MS 1000
#define API_LIMITS_LOG_MS  60000

struct api_limits;

/*
 * Put lim on tls (a server configuration not serving yet; the limits stay
 * with it until it is freed) and start reporting.  Holds a reference on tls
 * until api_limits_stop.  NULL with err set (tls_conn_limits_set's errors).
 */
struct api_limits *api_limits_start(nng_tls_config *tls, const struct tls_conn_limits *lim,
				    vigil_err *err);

/* What the limits did so far (zeros when unknown). */
void api_limits_stats(struct api_limits *al, struct tls_conn_stats *ret);

/* The limits in force. */
const struct tls_conn_limits *api_limits_get(const struct api_limits *al);

/* Stop reporting and drop the reference on tls.  Accepts NULL. */
void api_limits_stop(struct api_limits *al);

#endif
