/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_HOST_RULES_H
#define VIGIL_CONSOLE_HOST_RULES_H

/*
 * What each host's defender holds of the rule set (migration 9, columns of
 * hosts): rules_protocol (0: a defender that does not take rule sets),
 * rules_version (the version it enforces, as its last hello or heartbeat
 * said) and rules_acked_at (when that changed), and the last version
 * refused for it: rules_refused_version, rules_refused_reason and
 * rules_refused_by ('defender': it did not take it; 'console': the set
 * compiled for it was too large to send).  /api/v1/hosts shows them
 * (store_hosts_list: "rules").
 *
 * A defender's refusal stands until it reports another or takes a newer
 * version; a console's until the host holds that version or a newer one.
 *
 * Locking: every function takes the store's lock; any thread may call.
 */

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "store/store.h"

/* A refusal reason is kept to this many bytes (a defender's is cut, not refused). */
#define HOST_RULES_REASON_MAX 512

/* What a hello or heartbeat said (Vigil__RulesState). */
struct store_rules_report {
	uint32_t protocol;	    /* 1 */
	uint64_t version;	    /* held; 0: none */
	uint64_t refused_version;   /* 0: nothing refused */
	const char *refused_reason; /* NULL: "" */
};

/* The host as the console needs it to compile its rule set. */
struct store_host_rules {
	char *labels_json;	 /* the hello's labels, a JSON object's text; caller frees */
	int64_t refused_version; /* 0: none */
	bool refused_by_console; /* the refusal was the console's (too large) */
};

/*
 * Record r for host_id in one statement and return what compiling needs
 * into *ret (set only on success).  Versions over INT64_MAX are -EINVAL; a
 * reason that is not valid UTF-8 is stored as a note saying so, a long one
 * is cut.  -ENOENT when the host has never said hello.
 */
int store_host_rules_report(struct store *st, const char *host_id,
			    const struct store_rules_report *r, struct store_host_rules *ret,
			    vigil_err *err);

/*
 * The console could not send version to host_id (reason says why): store
 * the refusal.  *ret_new (may be NULL) says whether it was not stored
 * already (so the caller logs it once).
 */
int store_host_rules_refuse(struct store *st, const char *host_id, int64_t version,
			    const char *reason, bool *ret_new, vigil_err *err);

/* The rule set's current version (0 before any change) into *ret_version. */
int store_rules_current_version(struct store *st, int64_t *ret_version, vigil_err *err);

#endif
