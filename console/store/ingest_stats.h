/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_INGEST_STATS_H
#define VIGIL_CONSOLE_INGEST_STATS_H

/*
 * What this console process stored from defenders since it started, for
 * GET /metrics (vigil_events_ingested_total, ...).  Process-wide atomic
 * counters: store_ingest adds each batch it committed; any thread reads.
 */

#include <stdint.h>

#include "store/ingest.h"

struct ingest_stats {
	uint64_t batches;    /* batches committed */
	uint64_t duplicates; /* batches that were stored before (a resend) */
	uint64_t events;     /* events stored */
	uint64_t refused;    /* events the database refused (audited as malformed_events) */
	uint64_t deviations; /* deviation audits written */
	uint64_t malformed;  /* items left out of batches (audited as malformed_input) */
};

/* Count one batch store_ingest returned 0 for. */
void ingest_stats_add(const struct ingest_result *res);

/* The counts so far. */
void ingest_stats_get(struct ingest_stats *ret);

#endif
