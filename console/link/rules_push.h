/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_RULES_PUSH_H
#define VIGIL_CONSOLE_RULES_PUSH_H

/*
 * The current rule set, in memory, for the listener to compile per host.
 *
 * rules_push_start reads the current version and its rules from the
 * database, then starts a thread that LISTENs on vigil_rules on a libpq
 * connection of its own (store/pg_listen.h).  Every console on the
 * database hears every change, whichever console made it; on a
 * notification of a version newer than the one held, the thread reads the
 * rule set again (store_rules_list: the version and its rules in one
 * snapshot) and swaps it in.  When the LISTEN connection breaks, the
 * thread reconnects every second and reads the set again once it is back
 * (notifications sent meanwhile are lost); and every RULES_PUSH_CHECK_MS it
 * asks the database for the version anyway, so a change is never missed
 * for longer than that whatever happened to the connection.
 *
 * The set is held as a refcounted snapshot: the listener's workers take a
 * reference (rules_push_compile), compile from it without a lock, and let it
 * go (rules_compiled_fini) while the thread may already have swapped in a
 * newer one.  The thread logs (changes, connection lost and back).
 *
 * Ownership: main owns the rules_push (start, stop); rules_push_version
 * and rules_push_compile are safe from any thread in between.
 */

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "store/store.h"

/* How often the version is checked without a notification. */
#define RULES_PUSH_CHECK_MS 30000

struct rules_push;
struct rules_snapshot;

/* A rule set compiled for one host: the rules that go to it, in order. */
struct rules_compiled {
	int64_t version;
	size_t total;	    /* rules in the whole set */
	size_t n;	    /* rules for this host */
	const char **texts; /* n canonical JSON texts, owned by snap */
	size_t bytes;	    /* their lengths summed */
	struct rules_snapshot *snap;
};

/*
 * Read the current rule set from dsn's database (fails, with err, when it
 * cannot: the console is starting and its database answered a moment ago)
 * and start the LISTEN thread.  NULL with err set on failure.
 */
struct rules_push *rules_push_start(const char *dsn, vigil_err *err);

/* The version held now (0: no rule set was ever made). */
int64_t rules_push_version(struct rules_push *rp);

/*
 * Compile the set held now for host_id with labels (n of them) into *out
 * (rules_compiled_fini it): the rules rules_scope_matches_host lets through.
 * -ENOMEM.
 */
int rules_push_compile(struct rules_push *rp, const char *host_id, const struct store_label *labels,
		       size_t nlabels, struct rules_compiled *out);

/* Let go of c's snapshot and free its list; zeroes c.  Accepts a zeroed c. */
void rules_compiled_fini(struct rules_compiled *c);

/* Stop the thread and free everything.  Accepts NULL. */
void rules_push_stop(struct rules_push *rp);

#endif
