/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_RULES_LISTEN_H
#define VIGIL_CONSOLE_RULES_LISTEN_H

/*
 * A dedicated libpq connection that LISTENs on vigil_rules
 * (RULES_NOTIFY_CHANNEL), where every rule-set change on the database, made
 * through any console, announces its version when it commits.  Not a struct
 * store: it runs no statements but LISTEN, and waits in poll() on its
 * socket without holding anything another thread needs.
 *
 * A notification sent while the connection was down is lost: after every
 * (re)connection rules_listen_wait says RULES_LISTEN_CONNECTED, and the
 * caller reads the current version from the database itself.
 *
 * Ownership and threads: one thread owns a rules_listen (open, wait, close).
 */

#include <stdint.h>

#include "error.h"

struct rules_listen;

enum rules_listen_event {
	RULES_LISTEN_TIMEOUT = 0,   /* nothing within the timeout */
	RULES_LISTEN_NOTIFIED = 1,  /* one or more versions announced: *ret_version the highest */
	RULES_LISTEN_CONNECTED = 2, /* (re)connected and listening: anything may have changed */
};

/*
 * Remember dsn (copied) and try to connect and LISTEN once; a failure here
 * is not an error (rules_listen_wait retries).  NULL only when out of
 * memory (errno set).
 */
struct rules_listen *rules_listen_new(const char *dsn);

/*
 * Wait up to timeout_ms for a notification.  Returns an enum
 * rules_listen_event, or -ECONNRESET (err says why) when the connection is
 * down and could not be made again now (the next call tries again; the
 * caller sleeps between calls).  A payload that is not a version counts
 * as a notification of version 0 (the caller reloads all the same).
 */
int rules_listen_wait(struct rules_listen *l, int timeout_ms, int64_t *ret_version, vigil_err *err);

/* Close and free.  Accepts NULL. */
void rules_listen_free(struct rules_listen *l);

#endif
