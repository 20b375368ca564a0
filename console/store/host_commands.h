/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_HOST_COMMANDS_H
#define VIGIL_CONSOLE_HOST_COMMANDS_H

/*
 * Operator commands for defenders.  A row in commands (kind "relearn" for a
 * model's service) is pending until its host lists the id in
 * Heartbeat.commands_done; every heartbeat reply carries the host's oldest
 * pending commands (Reply.commands), so a command survives lost replies,
 * defender restarts and console restarts.
 *
 * Locking: every function takes the store's lock; any thread may call.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "error.h"
#include "store/learning_store.h"
#include "store/store.h"

/* Commands handed out per heartbeat reply, and command ids taken per heartbeat. */
#define COMMANDS_PER_REPLY 16
#define COMMANDS_DONE_MAX  1024

struct store_command {
	uint64_t id;
	char kind[16];			     /* "relearn", "accept" */
	char service[LEARN_SERVICE_MAX + 1]; /* the model's service */
	/* accept: the entry to add to the model (section, entry kind, pattern); else "". */
	char exe[LEARN_PATH_MAX + 1];
	char entry_kind[16];
	char pattern[LEARN_PATH_MAX + 1];
};

/*
 * One heartbeat's command exchange for host_id, in one statement: mark the
 * host's commands listed in done (ids of other hosts' commands are ignored,
 * at most COMMANDS_DONE_MAX are taken) as acknowledged, then copy the host's
 * still pending commands, oldest first, at most max, into out.  *ret_n gets
 * how many.  Idempotent (safe to repeat after a lost reply).
 */
int store_commands_sync(struct store *st, const char *host_id, const uint64_t *done, size_t ndone,
			struct store_command *out, size_t max, size_t *ret_n, vigil_err *err);

/*
 * Ask the defender of model model_id to relearn it: a pending "relearn"
 * command for the model's host and service.  When one is already pending it
 * is returned instead of queueing a second (so an operator who repeats a
 * request whose answer was lost does not relearn twice).  *ret gets a new
 * object {"command_id", "host", "service", "already_pending"}.  -ENOENT for
 * an unknown model.
 */
int store_model_relearn(struct store *st, int64_t model_id, json_t **ret, vigil_err *err);

/*
 * Accept what audit audit_id reported into its service's model: a pending
 * "accept" command for the audit's host with the deviation's section (exe),
 * the model entry kind of its kind and its object as the pattern.  As with
 * relearn, an identical pending command is returned instead of a second.
 * *ret: {"command_id", "host", "service", "exe", "kind", "pattern",
 * "already_pending"}.  -ENOENT: no such audit; -EPERM with err saying why:
 * the audit is not a model's deviation that can be accepted (a deny list's,
 * a rewritten argument, a console audit, or one missing its service).
 */
int store_audit_accept(struct store *st, int64_t audit_id, json_t **ret, vigil_err *err);

#endif
