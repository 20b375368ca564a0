/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_STORAGE_STATE_H
#define VIGIL_CONSOLE_STORAGE_STATE_H

/*
 * Whether the database can take what the console is given, for this
 * console process: "ok", or "full" since a statement failed for want of
 * disk (SQLSTATE 53100, disk_full, seen by store_err_sql; or the private
 * cluster that cannot start for want of space, told by the sweeper) until
 * a batch with events commits again.  While full, batches are answered
 * RETRY (the defenders keep them in their spools; nothing is lost); the
 * sweeper logs the change once each way, the listener does not log each
 * refused batch, and GET /api/v1/status shows it (docs/operations.md,
 * "A full disk").
 *
 * Process-wide state behind an internal mutex: any thread may call these.
 * The module logs nothing.
 */

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

enum storage_condition {
	STORAGE_OK = 0,
	STORAGE_FULL = 1,
};

struct storage_status {
	enum storage_condition state;
	int64_t since_ms;    /* wall clock (ms since 1970) of the last change; 0: none yet */
	char detail[300];    /* full: the database's words ("could not extend file ...") */
	uint64_t changes;    /* bumped at every change of state: a reader notices each */
	uint64_t refused;    /* batches answered RETRY for it since it became full */
	int64_t full_for_ms; /* ok after full: how long it was full (for the log) */
};

/*
 * The disk is full: detail says what the database could not do (copied,
 * cut to fit).  A second call while full only updates the detail.
 */
void storage_state_full(const char *detail);

/* A batch with events committed: the database took new data again. */
void storage_state_ok(void);

/* One batch answered RETRY while full. */
void storage_state_refused(void);

/* Whether the state is full now. */
bool storage_state_is_full(void);

/* A copy of the state. */
void storage_state_get(struct storage_status *ret_status);

/*
 * The state as a new JSON object (NULL when out of memory):
 * {"state": "ok"|"full", "since": RFC 3339 UTC or null, "detail": text or
 * null, "batches_refused": n}.
 */
json_t *storage_state_json(void);

/*
 * What the console's retention does and did, for GET /api/v1/status: the
 * settings (main.c, once at start) and the last run's summary (the
 * maintenance thread, after each run), each a JSON object that the module
 * takes (json_decref's the one it replaces).  storage_state_retention
 * returns {"settings", "last_run"} as a new object (NULL members: not yet
 * known).
 */
void storage_state_set_retention_settings(json_t *settings);
void storage_state_set_retention_run(json_t *run);
json_t *storage_state_retention(void);

#endif
