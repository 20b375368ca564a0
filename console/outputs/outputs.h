/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_OUTPUTS_H
#define VIGIL_CONSOLE_OUTPUTS_H

/*
 * The outputs: every audit, to the tools operators already watch (syslog,
 * a JSON lines file for a SIEM's agent, webhooks), docs/outputs.md.
 *
 * The database is the queue.  Each configured sink (output_conf.h) has a
 * thread of its own and a database connection of its own: it reads the
 * audits after its cursor (store/output_store.h), hands them to its sink
 * (sink.h) and moves its cursor once the sink took them, so:
 *  - ingestion never waits for a sink: audits are committed with their
 *    batch as before, and a sink only reads them later;
 *  - a sink that is down keeps its cursor: its backlog is the table; it
 *    is retried with exponential backoff (1 s doubling up to 60 s, each
 *    wait drawn between half and all of it; longer when a webhook says
 *    Retry-After), and logged once when it goes down, every minute while
 *    it stays down, once when it is back;
 *  - delivery is at-least-once across restarts: what was sent after the
 *    last saved cursor (one batch of OUTPUT_BATCH audits, or the last
 *    second of a syslog connection) may be sent again;
 *  - a sink's backlog is bounded: past max_backlog audits, or with its
 *    oldest audit older than max_age, the oldest are skipped (down to half
 *    of max_backlog) and an output_dropped audit says how many, which ids
 *    and why, with a log line; an audit a webhook refuses for good (4xx)
 *    is reported the same way (at most one such audit a minute per sink,
 *    so that a receiver refusing everything, its reports included, cannot
 *    make a storm).  Nothing is dropped silently.
 * Consoles sharing a database deliver each sink once (a lease per sink,
 * output_store.h).
 *
 * /metrics: the module registers a collector (common/prom.h) for what only
 * this process knows: vigil_output_up, vigil_output_active,
 * vigil_output_failures_total.
 *
 * Threading: outputs_start and _stop from the main thread, outputs_reopen
 * from anywhere (a signal handler); the workers own their sinks and stores.
 */

#include "error.h"
#include "outputs/output_conf.h"

/* Audits read and handed on at a time. */
#define OUTPUT_BATCH 256
/* How often a sink that is caught up looks for new audits. */
#define OUTPUT_POLL_MS 500

struct outputs;

struct outputs_opts {
	const struct output_confs *confs; /* copied */
	const char *dsn;		  /* each sink opens its own connection */
	const char *owner;		  /* this console, for the leases: "host:/state/dir" */
	const char *hostname;		  /* syslog's HOSTNAME for the console's own audits */
};

/*
 * Set up every sink (TLS files are read now: a missing CA fails here,
 * naming the output and the file), connect each to the database and start
 * its thread.  With no sinks, returns an empty (valid) outputs.  NULL with
 * err set.
 */
struct outputs *outputs_start(const struct outputs_opts *o, vigil_err *err);

/*
 * SIGHUP: file sinks open their path again before their next batch.
 * Async-signal-safe (one atomic increment): call it from the handler.
 */
void outputs_reopen(void);

/* How many times outputs_reopen was called (a sink compares it with the count it saw). */
unsigned outputs_reopen_count(void);

/*
 * Stop: ends any wait on a receiver at once, saves each sink's cursor and
 * gives up its lease, joins the threads, frees.  Accepts NULL.
 */
void outputs_stop(struct outputs *o);

#endif
