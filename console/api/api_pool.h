/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_API_POOL_H
#define VIGIL_CONSOLE_API_POOL_H

/*
 * The API's own worker threads, so that no request ever runs its queries on
 * nng's shared callback threads (which also carry the defenders' link: a
 * handler blocked there stalls their handshakes and heartbeats).
 *
 * nng's HTTP server calls a handler on one of its threads; the handler only
 * queues the request here (api_pool_submit) and returns.  A worker runs it
 * with the worker's own database connection, which has a statement timeout,
 * and the handler answers through its aio as before.  The queue is bounded:
 * a request that finds it full is refused at once (the caller answers 503)
 * and counted.
 *
 * Locking: submit may be called from any thread; the pool locks itself.
 * Ownership: the pool owns its stores; the aios stay nng's.
 */

#include <stdint.h>

#include <nng/nng.h>

#include "error.h"

#define API_POOL_WORKERS_DEFAULT 4
#define API_POOL_WORKERS_MAX	 64
#define API_POOL_QUEUE_MAX	 32 /* requests waiting for a worker, beyond those running */

struct api_pool;

/* A request's handler, run on a worker; api_pool_store(aio) is that worker's store. */
typedef void (*api_pool_fn)(nng_aio *aio);

/*
 * Start nworkers (1..API_POOL_WORKERS_MAX) threads, each with its own
 * connection to dsn whose statements time out after timeout_ms.  NULL with
 * errno set and err naming the database when a connection fails.
 */
struct api_pool *api_pool_start(const char *dsn, int nworkers, int timeout_ms, vigil_err *err);

/*
 * Queue fn(aio) for a worker.  0, or -ENOSPC when the queue is full (counted;
 * nothing was queued, the caller answers).  The aio must stay valid until
 * fn has run, which api_pool_stop waits for.
 */
int api_pool_submit(struct api_pool *p, api_pool_fn fn, nng_aio *aio);

/* In fn: the store of the worker running it (valid until fn returns). */
struct store *api_pool_store(nng_aio *aio);

/* Requests refused because the queue was full, since the start. */
uint64_t api_pool_refused(struct api_pool *p);

/*
 * Run what is queued, then stop the workers and close their stores.  Call
 * after nng's server has stopped handing out requests.  Accepts NULL.
 */
void api_pool_stop(struct api_pool *p);

#endif
