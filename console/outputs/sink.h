/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_SINK_H
#define VIGIL_CONSOLE_SINK_H

/*
 * What a sink is to its worker (outputs.c): a receiver of audits, one at
 * a time, in order.  The worker owns the sink and calls it from its own
 * thread only, except sink_ops.cancel, which outputs_stop calls from
 * another thread to end a wait at once.
 *
 *   open    connect (or open the file); called before sending when closed
 *   send    hand one audit on: 0 taken; SINK_REFUSED the receiver refused
 *           it for good (err says why; the worker reports it in an
 *           output_dropped audit and goes on); < 0 failed, retry later
 *           (*retry_after_ms set when the receiver said when)
 *   flush   for a buffered sink: write out what send took; 0 when it is
 *           all written
 *   alive   whether the connection is still up (NULL: it is)
 *   close   drop the connection (the next send opens again)
 *
 * Delivery: a non-buffered sink's audit is delivered once send returned 0
 * (the webhook's 2xx).  A buffered sink's are delivered once flush
 * returned 0 (jsonl: written and fsync'd) and, when confirm_ms is set,
 * once the connection was still alive confirm_ms later (syslog: no
 * acknowledgement exists; a receiver that closes or resets within that
 * time gets them again).  After a failure the worker goes back to the last
 * delivered audit.  No callback logs: they say what happened in err.
 */

#include <stdbool.h>

#include <jansson.h>

#include "error.h"
#include "outputs/output_conf.h"

#define SINK_REFUSED 1

/* How long one connect, write or answer may take before the sink counts as down. */
#define SINK_IO_TIMEOUT_MS 10000

struct sink;

struct sink_ops {
	bool buffered;
	unsigned confirm_ms;
	int (*open)(struct sink *s, vigil_err *err);
	int (*send)(struct sink *s, const json_t *audit, int *retry_after_ms, vigil_err *err);
	int (*flush)(struct sink *s, vigil_err *err);
	bool (*alive)(struct sink *s);
	void (*close)(struct sink *s);
	void (*cancel)(struct sink *s);
	void (*free)(struct sink *s);
};

struct sink {
	const struct sink_ops *ops;
	const struct output_conf *conf; /* the worker's, outlives the sink */
	char hostname[256];		/* the console's host name (syslog's HOSTNAME) */
	unsigned reopened;		/* outputs_reopen_count() when the sink last opened */
	void *priv;
};

/*
 * Make the sink of s->conf's kind (s->conf, s->hostname set by the
 * caller): its TLS configuration is read now, so a missing CA fails at
 * start.  -errno with err naming the file.
 */
int sink_syslog_init(struct sink *s, vigil_err *err);
int sink_jsonl_init(struct sink *s, vigil_err *err);
int sink_webhook_init(struct sink *s, vigil_err *err);

/* The Slack text of an audit into out (outlen > 0): "*HIGH* new_program on web-1: ..." */
void sink_slack_text(const json_t *audit, char *out, size_t outlen);

#endif
