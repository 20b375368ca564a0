/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_PIPELINE_H
#define VIGIL_DEFENDER_PIPELINE_H

/*
 * The defender's event pipeline, on a thread of its own so that capture
 * never waits on the network, only on the local disk.  Each ring record is
 *
 *   decoded (event/) → placed in the process tree and described, service or
 *   interactive (process/) → learned, checked against its model or logged as
 *   activity (learn/) → batched into the spool (deliver/)
 *
 * and between polls the thread carries out the console's relearns and
 * accepted entries, promotes models and sends their changes, hands the ring
 * back to the kernel up to what is spooled, and expires the process tree.
 *
 * Ownership: the pipeline owns the learner and the process tree; capture and
 * delivery are borrowed and must outlive pipeline_stop.  pipeline_relearn,
 * pipeline_accept and the stats functions may be called from any thread.
 */

#include "capture/capture.h"
#include "deliver/delivery.h"
#include "error.h"
#include "learn/learn.h"
#include "learn/model.h"
#include "process/proctree.h"

struct pipeline;

struct enforcer;

struct pipeline_opts {
	const char *model_dir; /* the models' files (created when missing) */
	struct model_limits limits;
	struct enforcer *enforcer; /* borrowed, may be NULL: audits its decisions, checks events */
};

/*
 * Load the models, seed the process tree from /proc (after capture is
 * attached, so what starts meanwhile waits in the ring) and start the
 * thread.  Returns NULL with err set.
 */
struct pipeline *pipeline_start(const struct pipeline_opts *opts, struct capture *cap,
				struct delivery *dl, vigil_err *err);

/*
 * Queue a relearn of service's model for the pipeline thread.  Returns 0,
 * -EBUSY when the queue is full or -ENOMEM (the console sends the command
 * again until it is acknowledged, so the caller just does not acknowledge).
 */
int pipeline_relearn(struct pipeline *p, const char *service);

/*
 * Queue an operator's acceptance of what a deviation reported into
 * service's model (learner_accept): exe the section, kind the entry kind's
 * name, pattern the deviation's object.  Errors as pipeline_relearn.
 */
int pipeline_accept(struct pipeline *p, const char *service, const char *exe, const char *kind,
		    const char *pattern);

/* The learner's counters (a snapshot refreshed at every upkeep). */
void pipeline_learn_stats(struct pipeline *p, struct learn_stats *ret_stats);

/* The process tree's counters (a snapshot refreshed at every poll). */
void pipeline_process_stats(struct pipeline *p, struct proctree_stats *ret_stats);

/* Records the ring held that did not decode (the capture's own count is separate). */
uint64_t pipeline_malformed(struct pipeline *p);

/*
 * Stop the thread, hand what the models changed to delivery (and save them),
 * free everything.  Accepts NULL.
 */
void pipeline_stop(struct pipeline *p);

#endif
