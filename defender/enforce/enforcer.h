/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_ENFORCER_H
#define VIGIL_DEFENDER_ENFORCER_H

/*
 * Rules made real on this host: each rule-set version the defender takes is
 * compiled for the kernel backends it has and put in force, and every
 * decision becomes an audit.
 *
 *   processes  exec deny lists and deviations from a service's model:
 *              fanotify exec permission (fanguard), decided in user space
 *   files      open deny lists: fanotify open permission on the named
 *              files and directories
 *   network    connect and bind deny lists: cgroup socket programs deciding
 *              in the kernel (netplan, bpf/lib/guard.h)
 *   block      the caller is killed: SIGKILL while fanotify holds it, or
 *              bpf_send_signal as its connect/bind returns
 *
 * alert needs no backend: the pipeline checks each event against the rules
 * (enforcer_check_event) and audits what a deny list names.  What a host
 * cannot deliver is applied as the next lesser effect and reported as a
 * shortfall, never silently.
 *
 * Threads: enforcer_apply from the session thread; the fanotify listener
 * and watchdog run inside; enforcer_take_audits, enforcer_check_event and
 * enforcer_deviation from the pipeline thread; enforcer_report from any.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capture/capture.h"
#include "enforce/shortfall.h"
#include "error.h"
#include "event/event.h"
#include "learn/learn.h"
#include "process/classify.h"
#include "process/enrich.h"
#include "rules/rule.h"
#include "rules/rulebook.h"
#include "vigil.pb-c.h"

#define ENFORCE_AUDITS_MAX 1024 /* held for the pipeline; past this, counted and dropped */

/* One decision worth an audit, until the pipeline sends it as a Deviation. */
struct enforce_audit {
	uint64_t ts_ns; /* wall clock */
	uint32_t pid;
	char kind[24]; /* denied_program, denied_read, ..., new_program, enforcement_failed_open */
	char service[160];
	char exe[1024];
	char object[1024];
	char rule[RULE_NAME_MAX + 1];
	enum rule_effect effect, wanted;
	char why[256];
	const char *severity; /* static */
};

struct enforcer_opts {
	struct capture *cap; /* NULL: no BPF (no network guard, no kernel kill) */
	unsigned answer_ms;  /* bound on a permission answer; 0: 250 */
	bool fanotify;	     /* false: no permission events (config enforce_files_execs) */
};

struct enforcer_stats {
	uint64_t audits_dropped;
	uint64_t fan_requests, fan_denied, fan_killed, fan_fail_open, fan_own, fan_errors;
	uint64_t fan_marks, fan_mark_errors;
	uint64_t net_entries, net_cgroups;
	uint64_t model_busy; /* deviation decisions allowed because the models stayed busy */
};

struct enforcer;

/* Probe the backends and start; never fails for a missing backend (reported instead). */
struct enforcer *enforcer_start(const struct enforcer_opts *opts, vigil_err *err);

/* The learner whose models decide deviations (set once, before rules arrive). */
void enforcer_set_learner(struct enforcer *e, struct learner *l);

/* Put rs in force (a reference is taken).  Session thread. */
void enforcer_apply(struct enforcer *e, const struct ruleset *rs);

/* Up to max audits waiting, oldest first; returns how many. */
size_t enforcer_take_audits(struct enforcer *e, struct enforce_audit *out, size_t max);

/*
 * The pipeline's check of one described event (a deny list's alert, an
 * act a rule wanted stopped that happened anyway, a network refusal the
 * kernel reported).  Returns true with *out filled when it is an audit.
 */
bool enforcer_check_event(struct enforcer *e, const struct event *ev, const struct event_enrich *en,
			  const struct classification *cls, struct enforce_audit *out);

/*
 * A deviation from a model (its service, the image of the process's
 * container, "" or NULL for none, and its kind) under the rules: false
 * when a rule disables such audits; else true with the rule's name, the
 * effect applied and wanted, and why, to put in the audit (rule, why: at
 * least RULE_NAME_MAX + 1 and 256 bytes).
 */
bool enforcer_deviation(struct enforcer *e, const char *service, const char *image,
			const char *kind, char *rule, enum rule_effect *ret_effect,
			enum rule_effect *ret_wanted, char *why, size_t whylen);

/* The storage a report points into: one per caller (each thread its own). */
struct enforcer_report_buf {
	Vigil__EnforceBackend backends[4], *backendp[4];
	Vigil__RuleShortfall sfs[SHORTFALLS_MAX], *sfp[SHORTFALLS_MAX];
	struct shortfalls sf;
};

/*
 * What this host can enforce and where the held rules ask for more, into
 * RulesState rs, pointing into buf (valid while buf is).  From any thread.
 */
void enforcer_report(struct enforcer *e, Vigil__RulesState *rs, struct enforcer_report_buf *buf);

void enforcer_stats(struct enforcer *e, struct enforcer_stats *out);

void enforcer_stop(struct enforcer *e);

#endif
