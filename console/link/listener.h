/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_LISTENER_H
#define VIGIL_CONSOLE_LISTENER_H

/*
 * The defenders' endpoint: an nng rep socket on tls+tcp:// with client
 * certificates REQUIRED.  Each request is bound to the CN of the certificate
 * its connection presented (tls_pipe_peer_cn), never to anything inside it.
 *
 * Lifecycle: listener_bind (claims the port, so a port in use fails before
 * anything else starts), listener_serve (starts worker threads that answer
 * requests using st), listener_stop.
 */

#include "error.h"
#include "wire_limits.h"
#include "store/store.h"

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

/* Largest request accepted; protobuf-c never sees more (upstream #796). */
#define LISTENER_MSG_MAX VIGIL_MSG_MAX
#define LISTENER_WORKERS 8

struct listener;

/* Bind url with tls (held, not owned).  err names the address on failure. */
struct listener *listener_bind(const char *url, nng_tls_config *tls, vigil_err *err);

/*
 * Start answering requests with LISTENER_WORKERS threads, worker i using
 * stores[i % nstores] (not owned; they must outlive the listener), so
 * batches from different defenders commit in parallel.
 * heartbeat_interval_ms is told to every defender.
 */
int listener_serve(struct listener *l, struct store **stores, int nstores,
		   int heartbeat_interval_ms, vigil_err *err);

/* Close the socket, join the workers, free l.  Accepts NULL. */
void listener_stop(struct listener *l);

#endif
