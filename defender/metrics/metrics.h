/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_METRICS_H
#define VIGIL_DEFENDER_METRICS_H

/*
 * The defender's counters as Prometheus metrics (metrics_listen in the
 * configuration; off unless given): what the heartbeats tell the console
 * (events by type, drops and filters by reason, the spool and batches, the
 * learner, the process tree, enforcement, the rule-set version) and the
 * process's resident memory, under vigil_defender_* (docs/deploy.md,
 * "Metrics").  Served by metrics_http on its own thread; every scrape reads
 * the stages afresh (their stats functions are safe from any thread).
 *
 * Ownership: the stages in parts are borrowed and must outlive
 * metrics_stop; the caller owns the handle.  Nothing here logs.
 */

#include <stdint.h>
#include <sys/socket.h>

#include "error.h"
#include "session.h"

struct metrics;

/*
 * Register the defender's collector and serve it on addr.  Returns NULL
 * with errno set and err saying why (the port is taken, ...).
 */
struct metrics *metrics_start(const struct sockaddr *addr, socklen_t len,
			      const struct session_parts *parts, vigil_err *err);

/* The port bound, in host order. */
uint16_t metrics_port(const struct metrics *m);

/* Stop serving and unregister (no collector runs once it returns).  Accepts NULL. */
void metrics_stop(struct metrics *m);

#endif
