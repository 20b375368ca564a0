/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_ENRICH_H
#define VIGIL_DEFENDER_ENRICH_H

/*
 * Between capture and the process tree: keep the tree current from process
 * events, and describe an event's process (user, exe, cgroup, container and
 * what its runtime says of it, ancestry) for output.  Runs on the capture
 * thread, which owns the tree.
 */

#include <stdbool.h>
#include <stdint.h>

#include "event/event.h"
#include "event/event_json.h"
#include "process/classify.h"
#include "process/proctree.h"

/* Room for a rendered description; a larger one is written field by field each time. */
#define ENRICH_JSON_MAX 8192

/*
 * Scratch that enrich_describe fills and en points into; one per thread,
 * zeroed before first use.  It remembers the last description: the next
 * event of the same process, with the tree unchanged since, reuses it
 * instead of walking the ancestry and classifying again (a burst of one
 * process's events is the common case, and those two steps were a quarter
 * of the defender's time per event).
 */
struct enrich_scratch {
	struct classification cls;
	struct container_meta ctr; /* the described process's container (a copy: en points here) */
	struct {
		bool valid;
		uint32_t pid, uid;
		uint64_t gen;  /* proctree_generation when it was made */
		uint64_t cgen; /* proctree_container_generation when it was made */
		struct event_enrich en;
	} last;
	char json[ENRICH_JSON_MAX]; /* last.en rendered (en->json points here) */
};

/*
 * Fill en for ev's process, classification included.  The strings point into
 * pt and scratch and stay valid until the next call that changes either;
 * write the event out before that.
 */
void enrich_describe(struct proctree *pt, const struct event *ev, struct event_enrich *en,
		     struct enrich_scratch *scratch);

/*
 * Keep pt current around one event's use: enrich_begin before describing
 * and writing ev, enrich_end after.  An exec then describes the new program
 * and an exit the process as it was, and nothing the description points to
 * changes before the event is written.
 */
void enrich_begin(struct proctree *pt, const struct event *ev);
void enrich_end(struct proctree *pt, const struct event *ev);

/* Whether pid is ancestor_pid or descends from it, per pt. */
bool enrich_descends_from(struct proctree *pt, uint32_t pid, uint32_t ancestor_pid);

#endif
