/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_METRICS_HTTP_H
#define VIGIL_DEFENDER_METRICS_HTTP_H

/*
 * The defender's metrics port: a minimal HTTP/1.1 responder for Prometheus.
 * GET (or HEAD) /metrics answers 200 with what the registered collectors
 * write (common/prom.h, prom_collect); any other path 404, any other method
 * 405, a request line it cannot read 400, a request whose head is over
 * METRICS_HTTP_REQUEST_MAX bytes 431.  Every answer closes its connection.
 *
 * One connection at a time on a thread of its own, so a scrape never runs
 * on the capture or the session threads and a client can hold at most one
 * slot for at most METRICS_HTTP_REQUEST_MS (to send its request) plus
 * METRICS_HTTP_SEND_MS (to take the answer); others wait in the listen
 * backlog meanwhile.  A scrape reads the stages' counters, which take their
 * own locks only for a copy.  Plain HTTP without a credential: bind it to
 * loopback, or to an address only the scraper reaches (docs/deploy.md).
 *
 * Ownership: the caller owns the handle; metrics_http_stop joins the thread
 * and closes every socket.  Nothing here logs: start reports why it failed,
 * and the counters say what the responder did.
 */

#include <stdint.h>
#include <sys/socket.h>

#include "error.h"

#define METRICS_HTTP_REQUEST_MAX 4096
#define METRICS_HTTP_REQUEST_MS	 2000
#define METRICS_HTTP_SEND_MS	 2000
/* The exposition's bound: far above the defender's few hundred lines. */
#define METRICS_HTTP_BODY_MAX (1024 * 1024)

struct metrics_http;

/* What the responder answered, by status; read with metrics_http_counts. */
enum metrics_http_result {
	METRICS_HTTP_OK,	 /* 200 */
	METRICS_HTTP_NOT_FOUND,	 /* 404 */
	METRICS_HTTP_BAD_METHOD, /* 405 */
	METRICS_HTTP_BAD,	 /* 400 */
	METRICS_HTTP_TOO_LARGE,	 /* 431 */
	METRICS_HTTP_TIMEOUT,	 /* no whole request in time: closed without an answer */
	METRICS_HTTP_NRESULTS,
};

/*
 * Bind addr (len bytes, AF_INET or AF_INET6) and serve.  Returns the
 * responder, or NULL with errno set and err saying what could not be bound
 * and why ("address in use").
 */
struct metrics_http *metrics_http_start(const struct sockaddr *addr, socklen_t len, vigil_err *err);

/* The port bound, in host order. */
uint16_t metrics_http_port(const struct metrics_http *m);

/* How many requests ended each way (any thread). */
void metrics_http_counts(const struct metrics_http *m, uint64_t out[METRICS_HTTP_NRESULTS]);

/* Stop serving, join the thread, close.  Accepts NULL. */
void metrics_http_stop(struct metrics_http *m);

#endif
