/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_AUDIT_QUERIES_H
#define VIGIL_CONSOLE_AUDIT_QUERIES_H

#include <jansson.h>
#include <stdint.h>

#include "error.h"
#include "store/store.h"

/* Filters for audits; NULL / 0 fields match everything.  Times are RFC 3339 text. */
struct audit_filter {
	const char *host_id;
	const char *kind;
	const char *service;
	const char *rule;      /* the rule that decided a deviation */
	const char *effect;    /* alert, prevent or block (deviations only) */
	const char *severity;  /* low, medium, high */
	const char *image;     /* the process's container's image, exactly */
	const char *container; /* the process's container's name, exactly */
	const char *since;
	const char *until;
	int64_t before_id; /* paging: only audits older than this id */
	int limit;	   /* 1..1000, default 100 */
};

/*
 * Audits matching f, newest first, as a new JSON array (caller decrefs):
 * id, host_id, ts, kind, severity, summary, detail, service and exe (null
 * unless the audit is about a model's service; service is null too for a
 * process without one that a deny list stopped), and for deviations what
 * the rules decided: effect ("alert", "prevent" or "block"; null for audits
 * that are not deviations), rule (null: no rule decided), wanted (the
 * rule's effect when the host applied a lesser one, else null) and why
 * (the list entry that matched or why wanted was not applied, else null),
 * and container: the process's container as {id, name, image, runtime}
 * (each null when its runtime did not say), null outside containers and for
 * audits that are not deviations.  A malformed time in f is -EINVAL (the
 * database says which).
 */
int store_audits_list(struct store *st, const struct audit_filter *f, json_t **ret, vigil_err *err);

/* One audit, as store_audits_list has it; -ENOENT when there is none with id. */
int store_audit_get(struct store *st, int64_t id, json_t **ret, vigil_err *err);

/*
 * Audits over time, from f's since/until (default: the 24 hours up to now)
 * and host_id (the other fields are ignored): {since, until, bucket_s,
 * buckets: [{ts, low, medium, high}], hosts: [{host, total, buckets: [n,
 * ...]}]} in about 48 buckets of a round length (1 min to 7 days), the
 * hosts with audits in the window only, by host id.  -ERANGE when since is
 * not before until; -EINVAL for a time the database cannot read.
 */
int store_audits_summary(struct store *st, const struct audit_filter *f, json_t **ret,
			 vigil_err *err);

/*
 * A position in the order the outputs read audits (store/output_store.h):
 * the id of the transaction that stored the audit, then its id.
 */
struct audit_pos {
	uint64_t tx;
	int64_t id;
};

/* One audit read for the outputs: its position and its object as store_audits_list has it. */
struct audit_item {
	struct audit_pos pos;
	json_t *audit; /* owned by the item: json_decref */
};

/*
 * Up to max audits after pos in (tx, id) order, into items (the caller's
 * array of max; *ret_n filled, each audit to be decref'd), only those
 * whose transaction ended before the oldest one still running (the
 * snapshot's xmin): none can appear before them later.  Audits stored
 * before migration 14 (no tx) are never read.
 */
int store_audits_after(struct store *st, struct audit_pos pos, size_t max, struct audit_item *items,
		       size_t *ret_n, vigil_err *err);

#endif
