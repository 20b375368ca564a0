/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_METRICS_STORE_H
#define VIGIL_CONSOLE_METRICS_STORE_H

/*
 * The database's side of GET /metrics (api_metrics.c, docs/outputs.md):
 * the fleet's state and the hosts' last reported counters, and the audits
 * counted by kind and severity.  Same conventions as store.h.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "store/store.h"

/* One host as /metrics shows it (its last heartbeat's counters; 0 when never said). */
struct metrics_host {
	char host_id[72];
	bool connected;
	bool lagging;	   /* holds an older rule set than the current one */
	uint64_t lost;	   /* events its kernel side lost: the sum of capture.drops */
	bool has_delivery; /* its defender reports its spool */
	uint64_t spool_pending, spool_bytes, spool_dropped;
};

struct metrics_hosts {
	struct metrics_host *hosts; /* owned: metrics_hosts_fini */
	size_t n;
	int64_t rules_version; /* the current rule set's version */
};

/* Every host, by id (byte order). */
int metrics_store_hosts(struct store *st, struct metrics_hosts *ret, vigil_err *err);
void metrics_hosts_fini(struct metrics_hosts *h);

struct metrics_audit_count {
	char kind[64];
	char severity[16];
	int64_t n;
};

/*
 * Audits by kind and severity: with full, every audit whose transaction
 * ended (those before migration 14 included); else those stored by
 * transactions from from (the *ret_xmin of the previous call) up to the
 * oldest one running now.  *ret_xmin: that bound, the next call's from.
 * So successive calls count each audit once however transactions
 * interleave.  *ret (caller frees) has *ret_n rows.
 */
int metrics_store_audit_counts(struct store *st, bool full, uint64_t from,
			       struct metrics_audit_count **ret, size_t *ret_n, uint64_t *ret_xmin,
			       vigil_err *err);

#endif
