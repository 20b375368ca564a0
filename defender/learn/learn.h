/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_LEARN_H
#define VIGIL_DEFENDER_LEARN_H

/*
 * Between an enriched event and the models: a service's event becomes
 * observations (program started, file written, file or sensitive file read,
 * port listened on, peer connected to or accepted from) that its model learns or
 * checks, and what an active model does not have becomes a deviation; an
 * interactive session's event becomes a line of its activity log instead.
 * Deviations and model changes leave through the sink (the spool, in the
 * daemon).  Runs on the capture thread.
 */

#include <stdbool.h>
#include <stdint.h>

#include "process/classify.h"
#include "event/event.h"
#include "event/event_json.h"
#include "learn/model.h"
#include "vigil.pb-c.h"

struct learn_sink {
	void (*deviation)(const Vigil__Deviation *d, void *ctx);
	void (*delta)(const Vigil__ModelDelta *d, void *ctx);
	void *ctx;
};

/* An interactive event's activity line; pb points into the struct. */
struct learn_activity {
	Vigil__Activity pb;
	char user[64];
	char tty[32];
	char summary[1024];
};

struct learn_stats {
	struct model_stats models;
	uint64_t observed;     /* observations checked against a model */
	uint64_t activity;     /* interactive events logged */
	uint64_t unplaced;     /* service events with no executable or path to place them */
	uint64_t reads_common; /* service reads left out as what every process reads */
	uint64_t rewritten;    /* service events whose argument was rewritten during the call */
	uint64_t relearns;
};

struct learner;

/* dir: where models are saved; NULL keeps them in memory. */
struct learner *learner_new(const struct model_limits *lim, const char *dir,
			    const struct learn_sink *sink, vigil_err *err);

/* Save, send what changed, free. */
void learner_free(struct learner *l);

/*
 * One event of a described process (cls is enrich's classification).
 * Returns true when the event is interactive activity: act is filled.
 */
bool learner_event(struct learner *l, const struct event *ev, const struct event_enrich *en,
		   const struct classification *cls, uint64_t now_ms, struct learn_activity *act);

/*
 * Often (after each poll): promote models, send changes every couple of
 * seconds, save now and then.  drops_total: the kernel's losses so far.
 */
void learner_tick(struct learner *l, uint64_t now_ms, uint64_t drops_total);

/* Put service's model back in learning.  -ENOENT when there is no such model. */
int learner_relearn(struct learner *l, const char *service, uint64_t now_ms);

/*
 * An operator accepted what a deviation reported (model_set_accept):
 * kind is the model entry kind's name, pattern the deviation's object.
 * 0, -EINVAL for an unknown kind, -ENOENT without the model, -ENOSPC.
 */
int learner_accept(struct learner *l, const char *service, const char *exe, const char *kind,
		   const char *pattern, uint64_t now_ms);

/*
 * Whether service's active model has program among those the executable
 * section starts (as the learner would record an exec of program by a child
 * of section): 1 yes (or not something models record), 0 no, -1 no active
 * model (or learning is off), -EBUSY when the models stayed busy for
 * wait_ms.  From any thread.
 */
int learner_program_known(struct learner *l, const char *service, const char *section,
			  const char *program, unsigned wait_ms);

/*
 * Each pattern of kind in service's active model (model_each), read under
 * the models' lock, waited for at most wait_ms: how many, -1 no active
 * model, -EBUSY.  From any thread.
 */
int learner_model_each(struct learner *l, const char *service, enum model_kind kind,
		       void (*fn)(const char *pattern, void *ctx), void *ctx, unsigned wait_ms);

/* Bumped whenever a model becomes active, relearns or is given an entry: what enforcement compiled
 * may be stale. */
uint64_t learner_generation(struct learner *l);

/*
 * The counters as of the last learner_tick (or learner_new): safe from any
 * thread.
 */
void learner_stats(struct learner *l, struct learn_stats *out);

#endif
