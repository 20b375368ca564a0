/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_RETENTION_H
#define VIGIL_CONSOLE_RETENTION_H

/*
 * What the console's database keeps, and for how long (migration 13;
 * docs/operations.md, "Retention").
 *
 * Events are stored in chunks (one row per batch and UTC day) in
 * event_chunks, partitioned by day: event_chunks_YYYYMMDD holds the chunks
 * whose first event is on that day, event_chunks_default whatever no day's
 * partition covers.  A run of retention_run:
 *
 *   1. creates the partitions of today and the next ahead_days days, and of
 *      every day within the retention that has chunks in the default
 *      partition (moving them there in the same transaction);
 *   2. drops, whole, each day's partition whose day ended more than
 *      events_days ago, deletes the default partition's chunks that old, and
 *      empties events_legacy (the pre-13 table) once its newest event is;
 *   3. while the events take more than events_max_bytes (when set), drops
 *      the oldest data first: events_legacy, then days' partitions, oldest
 *      first, never today's;
 *   4. deletes audits and batches (the delivery ledger) older than
 *      audits_days and activity older than activity_days, in DELETEs of
 *      delete_batch rows each, for at most delete_budget_ms per run (the
 *      rest waits for the next run): no long locks, no long transaction.
 *
 * Every drop of events commits with an events_expired audit (host_id "",
 * the console's own) saying what went and why: the partition or table,
 * its time range, events, chunks and bytes, and the reason ("age" or
 * "size") with the setting that decided.  Models, rules and the other
 * tables are kept.
 *
 * DDL (CREATE, ATTACH, DROP, TRUNCATE) waits at most lock_timeout_ms for
 * its lock (a DROP needs the events table exclusively for an instant, and
 * would otherwise queue every batch behind a long reader); a step that
 * cannot get it is skipped and named in the report, and the next run
 * tries again.  Consoles sharing a database take turns: a run that finds
 * another console's run under way does nothing (report.busy).  Table names
 * and bounds in DDL are built from day numbers only, never from input.
 *
 * A struct retention is used by one thread at a time (the console's
 * maintenance thread); it borrows the store (whose lock serializes the
 * connection) for its lifetime.
 */

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "store/store.h"

#define RETENTION_EVENTS_DAYS_DEFAULT	14
#define RETENTION_AUDITS_DAYS_DEFAULT	365
#define RETENTION_ACTIVITY_DAYS_DEFAULT 90
#define RETENTION_AHEAD_DAYS_DEFAULT	2
#define RETENTION_DELETE_BATCH_DEFAULT	5000
#define RETENTION_DELETE_BUDGET_MS	20000
#define RETENTION_LOCK_TIMEOUT_MS	1000
/* Days any retention may be set to: about 100 years. */
#define RETENTION_DAYS_MAX 36500

struct retention_opts {
	int events_days;	  /* 1..RETENTION_DAYS_MAX */
	int64_t events_max_bytes; /* 0: no ceiling */
	int audits_days;	  /* 1..RETENTION_DAYS_MAX */
	int activity_days;	  /* 1..RETENTION_DAYS_MAX */
	int ahead_days;		  /* 0..31; 0 means the default */
	int delete_batch;	  /* 0 means the default */
	int delete_budget_ms;	  /* 0 means the default */
	int lock_timeout_ms;	  /* 0 means the default */
};

/* What one run did (and found). */
struct retention_report {
	bool busy; /* another console was running retention: nothing done */
	int partitions_created;
	int64_t default_moved; /* chunks moved out of the default partition */
	/* Dropped for their age / for the size ceiling (counted per reason). */
	int partitions_dropped[2];
	int64_t events_dropped[2], bytes_dropped[2];
	bool legacy_emptied;
	int64_t events_bytes; /* what the events take after the run (all partitions + legacy) */
	bool over_ceiling;    /* still over events_max_bytes: only today's events are left */
	int64_t audits_deleted, activity_deleted, batches_deleted;
	bool deletes_unfinished; /* the delete budget ran out; the next run goes on */
	int skipped;		 /* steps that could not get their lock */
	char skipped_what[200];	 /* the first of them */
	int64_t ms;		 /* how long the run took */
};

enum { RETENTION_AGE = 0, RETENTION_SIZE = 1 };

struct retention;

/*
 * A retention runner on st with opts (copied).  Returns NULL with errno
 * (EINVAL: a setting out of range, ENOMEM) and err set.
 */
struct retention *retention_new(struct store *st, const struct retention_opts *opts,
				vigil_err *err);

/* Free r (not the store).  Accepts NULL. */
void retention_free(struct retention *r);

/*
 * One run, as described above.  *ret_report is filled also when a step
 * failed (what was done before it); returns 0, or the negative errno of
 * the first failure (-ECONNRESET: the database is unreachable; -ENOSPC:
 * its disk is full) with err set.  Steps after a failure are not tried.
 */
int retention_run(struct retention *r, struct retention_report *ret_report, vigil_err *err);

/*
 * Only step 1: the partitions of today and the days ahead (the console
 * runs it before it serves, so that the first batches find their day).
 * ret_created (may be NULL) gets how many were created.
 */
int retention_partitions_ensure(struct retention *r, int *ret_created, vigil_err *err);

/*
 * What the events take now, as a new JSON object (caller json_decref's
 * it): {"bytes", "partitions" (days' partitions), "oldest_day",
 * "newest_day" ("YYYY-MM-DD" or null), "default_bytes", "legacy_bytes"}.
 */
int store_events_storage(struct store *st, json_t **ret_storage, vigil_err *err);

/* bytes as a person reads them ("1.5 GiB", "512 bytes"), for logs and audit summaries. */
void retention_bytes_text(int64_t bytes, char out[32]);

#endif
