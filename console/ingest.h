/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_INGEST_H
#define VIGIL_CONSOLE_INGEST_H

/*
 * Committing defenders' batches: each (host, seq) is stored exactly once,
 * in one transaction with its events (COPY) and its gap audits, however
 * often the defender resends it.  The listener acknowledges a batch only
 * after store_ingest_batch returned 0 or 1.
 */

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "store.h"

/* Events and gaps beyond these are refused before they reach the database. */
#define INGEST_EVENTS_MAX 10000
#define INGEST_GAPS_MAX 64
#define INGEST_JSON_MAX (64 * 1024)

struct store_event {
	uint32_t type; /* enum ev_type */
	uint64_t ts_ns;
	uint32_t pid, ppid, uid;
	const char *comm;
	const char *json; /* the event as a JSON object */
};

struct store_gap {
	uint64_t first_seq, last_seq, count;
	const char *reason;
};

struct ingest_result {
	size_t stored;	 /* events written */
	size_t refused;	 /* events that were not valid JSON/UTF-8, left out and audited */
	int duplicate;	 /* 1: this (host, seq) was already committed; nothing written */
};

/*
 * Commit batch (host_id, seq).  Returns 0 (committed now, or already stored:
 * see res->duplicate), -EINVAL for a batch over the limits, -ECONNRESET when
 * the database is unreachable (the caller answers "retry"), or another
 * negative errno.  Events that the database refuses (bad JSON, bad UTF-8)
 * are left out and reported as one "malformed_events" audit, so one bad
 * event cannot block a host's delivery forever.
 */
int store_ingest_batch(struct store *st, const char *host_id, uint64_t seq,
		       const struct store_event *events, size_t nevents,
		       const struct store_gap *gaps, size_t ngaps, struct ingest_result *res,
		       vigil_err *err);

#endif
