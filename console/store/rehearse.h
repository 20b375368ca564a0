/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_REHEARSE_H
#define VIGIL_CONSOLE_REHEARSE_H

/*
 * The rehearsal of a rule: what it would have alerted, prevented or blocked
 * over a past window, from the stored events and audits, per host and
 * service (docs/rules.md, "Rehearsal").  The rule is put in its place in
 * the current rule set (a new rule inserted, an edited one replacing the
 * stored one), and it only counts where it would decide: for a host in its
 * hosts and labels (rules_scope_matches_host), a category it has, and a
 * process its services match, when no earlier rule decides first
 * (rule_decider, one rule at a time, over the rules before it that go to
 * that host).
 *
 *   deny lists, from events (every process in scope, interactive included),
 *   the acts as the rules are enforced:
 *     exec            the executable (filename)              processes
 *     file            an open: a read or a write by its       files
 *                     flags (fanotify holds opens only)
 *     net             connect: the peer; listen (and a UDP    network
 *                     bind): the local port
 *   Attempts count: done, a connect in progress, or refused with EPERM (by
 *   a rule in force).  An exec or read that a rule in force refused left no
 *   event; its denied_program / denied_read audit (effect prevent or block)
 *   stands for it.
 *   deviation effect, from the deviation audits of services:
 *     new_program → processes; new_write, sensitive_read, new_read → files;
 *     new_listen, new_peer, new_client → network
 *
 * An allow entry wins: an act it names counts nowhere.  A deviation that a
 * deny entry names is counted once, from its event, with the deny effect
 * (or from its audit when it was refused and left no event).
 * rewritten_argument audits are not deviations from a model (they are
 * raised whatever it holds) and are left out.  Paths are matched as the
 * rule writes them: the console cannot resolve a host's symbolic links, as
 * the defender does (/bin/sh naming /usr/bin/dash on Debian).
 *
 * Events are read in SQL bounded by the window, the hosts in the rule's
 * scope and the event types it lists, through a cursor (FETCH by
 * REHEARSE_FETCH rows) inside one read-only transaction; matching is in C
 * (rules/rule_match.h).  Every bound that cuts the scan or the answer short
 * is said in the answer ("truncated", "truncated_why"), never silently.
 *
 * Locking: store_rehearse takes the store's lock for its transaction.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "error.h"
#include "rules/rule.h"
#include "store/store.h"

#define REHEARSE_WINDOW_DEFAULT_US (24LL * 3600 * 1000000)	/* the last 24 h */
#define REHEARSE_WINDOW_MAX_US	   (31LL * 24 * 3600 * 1000000) /* 31 days */
#define REHEARSE_ROWS_MAX	   1000000 /* events, and audits, read at most */
#define REHEARSE_BUDGET_MS	   8000	   /* scan time; under vigilctl's 15 s */
#define REHEARSE_FETCH		   2000	   /* rows per FETCH */
#define REHEARSE_GROUPS_MAX	   1000	   /* (host, service, category, effect) groups */
#define REHEARSE_SAMPLES	   5	   /* sample acts per group, the newest */
#define REHEARSE_TEXT_MAX	   512	   /* bytes of a sample's text, then "..." */
#define REHEARSE_HOST_GLOBS_MAX	   64
#define REHEARSE_HOSTS_MAX	   100000 /* hosts read from the hosts table */

struct rehearse_request {
	/* The rule rehearsed (the caller's; only read).  NULL: rule_id's stored rule. */
	const struct rule *rule;
	/* > 0: the stored rule that rule replaces (an edit), or is; 0: a new rule. */
	int64_t rule_id;
	/* 1..: its place in the set; 0: a new rule last, an edit where the stored rule is. */
	int position;
	int64_t since_us, until_us; /* the window [since, until), µs since the epoch */
	const char *const *hosts;   /* host id globs (fnmatch) narrowing the hosts; may be NULL */
	size_t nhosts;
	size_t rows_max; /* events and audits read at most, each; 0: REHEARSE_ROWS_MAX */
	int budget_ms;	 /* 0: REHEARSE_BUDGET_MS */
};

/*
 * Rehearse rq->rule.  *ret (set only on success, caller decrefs) is
 *
 *   {"version": V, "rule": RULE (canonical, with its id when stored and the
 *    position rehearsed), "rehearsed_as_enabled": bool, "since", "until",
 *    "hosts_in_scope": n,
 *    "totals": {"alert", "prevent", "block", "disabled"},
 *    "groups": [{"host", "service" (null: interactive), "user" (interactive),
 *                "category", "effect", "source" ("deny" or "deviation"),
 *                "count", "first", "last",
 *                "samples": [{"ts", "act", "what", "pid", "exe", "op" (files,
 *                             sockets), "entry" (the deny entry), "kind" and
 *                             "audit_id" (from an audit)}]}],
 *    "masked_by": [{"rule_id", "name", "position", "count"}],
 *    "events_scanned", "audits_scanned", "truncated", "truncated_why": [...]}
 *
 * A disabled rule is rehearsed as if enabled (rehearsed_as_enabled).
 * Errors: -ENOENT no rule rq->rule_id (err says so); -ERANGE a position
 * past the end (err says the range); -EIO a stored rule that does not
 * parse; store.h's.
 */
int store_rehearse(struct store *st, const struct rehearse_request *rq, json_t **ret,
		   vigil_err *err);

/*
 * The window of a rehearsal from since and until as given (each NULL or
 * "" for the default; RFC 3339, "2026-12-05T07:00:00Z", or a time before
 * now: "90s", "30m", "24h", "7d"; until also "now"), now_us the current
 * time.  Defaults: until now, since 24 h before until.  since must be
 * before until, at most 31 days apart.  0, or -EINVAL with *ret_field
 * ("since" or "until") and why (not quoting the input).
 */
int rehearse_window(const char *since, const char *until, int64_t now_us, int64_t *ret_since,
		    int64_t *ret_until, const char **ret_field, char *why, size_t whylen);

/* µs since the epoch as RFC 3339 UTC with microseconds into buf (40 bytes is enough). */
void rehearse_time_text(int64_t us, char *buf, size_t len);

#endif
