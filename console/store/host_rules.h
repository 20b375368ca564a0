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
 * What the host can enforce (migration 10): enforce_backends, the kernel
 * backends it probed ([{name, available, detail}]), and rule_shortfalls,
 * where its rules ask for more than it delivers ([{rule, section, wanted,
 * applied, why}]), both jsonb arrays as its last report said them, NULL
 * before any.  They are hostile input, checked here: a list over its count
 * limit is refused whole (NULL: unknown), an entry that breaks the rules
 * below is left out; either way rules_report_problem says why (NULL when
 * all was taken), and the first report with a new problem is audited
 * (malformed_input) and returned so the caller logs it once.
 *   backends:   at most HOST_RULES_BACKENDS_MAX; name 1..64 bytes,
 *               detail <= 512 bytes.
 *   shortfalls: at most HOST_RULES_SHORTFALLS_MAX; rule a rule's name
 *               (rules/rule.h); section processes|network|files; wanted
 *               and applied alert|prevent|block; why <= 512 bytes.
 *   every string valid UTF-8.
 *
 * Locking: every function takes the store's lock; any thread may call.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "store/store.h"

/* A refusal reason is kept to this many bytes (a defender's is cut, not refused). */
#define HOST_RULES_REASON_MAX 512

#define HOST_RULES_BACKENDS_MAX	  16
#define HOST_RULES_SHORTFALLS_MAX 1024
#define HOST_RULES_NAME_MAX	  64  /* a backend's name */
#define HOST_RULES_TEXT_MAX	  512 /* a backend's detail, a shortfall's why */

/* One enforcement backend (Vigil__EnforceBackend); strings NULL: "". */
struct store_enforce_backend {
	const char *name; /* "fanotify-exec", "fanotify-open", "cgroup-sock", "bpf-signal" */
	bool available;
	const char *detail;
};

/* A rule section's effect the host cannot deliver as written (Vigil__RuleShortfall). */
struct store_rule_shortfall {
	const char *rule;
	const char *section; /* processes, network, files */
	const char *wanted;  /* prevent, block */
	const char *applied; /* alert, prevent */
	const char *why;
};

/*
 * What a hello or heartbeat said (Vigil__RulesState).  The arrays point
 * into the caller's message; a count over its limit comes with a NULL
 * array (the caller allocates nothing for it) and is refused here.
 */
struct store_rules_report {
	uint32_t protocol;	    /* 1 */
	uint64_t version;	    /* held; 0: none */
	uint64_t refused_version;   /* 0: nothing refused */
	const char *refused_reason; /* NULL: "" */
	const struct store_enforce_backend *backends;
	size_t nbackends;
	const struct store_rule_shortfall *shortfalls;
	size_t nshortfalls;
};

/* The host as the console needs it to compile its rule set. */
struct store_host_rules {
	char *labels_json;	 /* the hello's labels, a JSON object's text; caller frees */
	int64_t refused_version; /* 0: none */
	bool refused_by_console; /* the refusal was the console's (too large) */
	/*
	 * What of the backends and shortfalls was left out and why, when it
	 * differs from what the last report had left out (so it is logged
	 * once, as it was audited once); "" otherwise.
	 */
	char new_problem[HOST_RULES_REASON_MAX];
};

/*
 * Record r for host_id in one statement and return what compiling needs
 * into *ret (set only on success).  Versions over INT64_MAX are -EINVAL; a
 * reason that is not valid UTF-8 is stored as a note saying so, a long one
 * is cut.  Backends and shortfalls are checked as above; what breaks the
 * rules is left out, never a reason to refuse the rest.  -ENOENT when the
 * host has never said hello.
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
