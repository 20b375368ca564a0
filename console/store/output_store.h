/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_OUTPUT_STORE_H
#define VIGIL_CONSOLE_OUTPUT_STORE_H

/*
 * Where each output sink is in the audits (console/outputs/, migration 14):
 * the table output_cursors, one row per sink.
 *
 * The database is the queue: a sink reads the audits after its cursor in
 * (tx, id) order (store_audits_after in audit_queries.h), hands them on,
 * and only then moves its cursor, so a sink that is down, or a console
 * that restarts, loses nothing: its backlog is the table.  A new sink
 * starts at the audits stored from its first run on.
 *
 * Consoles sharing one database deliver each sink once: a console claims a
 * sink's row with a lease (OUTPUT_LEASE_S, renewed by every save); another
 * console takes the row over only once the lease has run out.  owner names
 * the console ("host:/state/dir"), so a restarted console takes its own
 * row back at once.
 *
 * What a sink cannot deliver is never dropped silently: output_store_drop
 * moves the cursor past it and writes an output_dropped audit (host_id "",
 * the console's own) in one transaction.
 *
 * Same conventions as store.h (errors, locking: every call locks st).
 * Sink names are the caller's, checked (output_conf.h); nothing here logs.
 */

#include <stdint.h>

#include <jansson.h>

#include "error.h"
#include "store/audit_queries.h"
#include "store/store.h"

/* How long a claim lasts without a save; a console renews it far more often. */
#define OUTPUT_LEASE_S 30

/*
 * Claim sink (kind: "syslog", "jsonl", "webhook") for owner: create its row
 * at the current position when new, then take the lease unless another
 * owner holds one that has not run out (-EBUSY, err naming that owner and
 * until when).  *ret_pos: the cursor.
 */
int output_store_claim(struct store *st, const char *sink, const char *kind, const char *owner,
		       struct audit_pos *ret_pos, vigil_err *err);

/*
 * Save pos as sink's cursor, add delivered to its count, set its backlog
 * (unless negative) and renew owner's lease.  -EBUSY when owner no longer
 * holds the sink (another console took it over): stop delivering it.
 */
int output_store_save(struct store *st, const char *sink, const char *owner, struct audit_pos pos,
		      int64_t delivered, int64_t backlog, vigil_err *err);

/*
 * The backlog after pos: *ret_count audits (counted up to limit, so at most
 * limit) and how long ago the oldest of them was stored (*ret_age_s; 0
 * when none).
 */
int output_store_backlog(struct store *st, struct audit_pos pos, int64_t limit, int64_t *ret_count,
			 double *ret_age_s, vigil_err *err);

/* What a sink could not deliver, for its output_dropped audit. */
struct output_drop {
	const char *reason; /* "backlog", "age" or "refused" */
	int64_t count;
	int64_t first_id, last_id; /* the smallest and largest id among them */
	char why[400];		   /* a sentence: the limit, or the receiver's answer */
};

/*
 * Where to skip to: among the first limit audits after pos, through the
 * last one stored more than older_s seconds ago (older_s < 0: through the
 * last of the limit).  *ret_to: the position after them (pos when none);
 * ret_drop's count and ids filled (reason and why are the caller's).
 */
int output_store_skip_range(struct store *st, struct audit_pos pos, int64_t limit, double older_s,
			    struct audit_pos *ret_to, struct output_drop *ret_drop, vigil_err *err);

/*
 * In one transaction: move sink's cursor to to (adding delivered and
 * d->count to its counts) and write the output_dropped audit of d (kind of
 * the sink in its detail).  -EBUSY as output_store_save.
 */
int output_store_drop(struct store *st, const char *sink, const char *kind, const char *owner,
		      struct audit_pos to, int64_t delivered, const struct output_drop *d,
		      vigil_err *err);

/* Give up owner's lease on sink (at stop), so another console may take it at once. */
int output_store_release(struct store *st, const char *sink, const char *owner, vigil_err *err);

/*
 * Every sink's row as a new JSON array (caller decrefs), by name: {sink,
 * kind, delivered, dropped, backlog, owner (null: none), active (the lease
 * has not run out)}.
 */
int output_store_list(struct store *st, json_t **ret, vigil_err *err);

#endif
