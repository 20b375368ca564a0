/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_PG_LISTEN_H
#define VIGIL_CONSOLE_PG_LISTEN_H

/*
 * A dedicated libpq connection that LISTENs on one channel, where a change
 * made through any console on the database is announced when it commits
 * (vigil_rules: a rule-set version; vigil_revoked: a host name).  Not a
 * struct store: it runs no statements but LISTEN, and waits in poll() on
 * its socket without holding anything another thread needs.
 *
 * A notification sent while the connection was down is lost: after every
 * (re)connection pg_listen_wait says PG_LISTEN_CONNECTED, and the caller
 * reads the current state from the database itself.
 *
 * Ownership and threads: one thread owns a pg_listen (open, wait, close).
 */

#include <stdint.h>

#include "error.h"

struct pg_listen;

enum pg_listen_event {
	PG_LISTEN_TIMEOUT = 0,	 /* nothing within the timeout */
	PG_LISTEN_NOTIFIED = 1,	 /* one or more notifications: *ret_number the highest */
	PG_LISTEN_CONNECTED = 2, /* (re)connected and listening: anything may have changed */
};

/*
 * Remember dsn (copied) and try to connect and LISTEN on channel once; a
 * failure here is not an error (pg_listen_wait retries).  channel, the
 * application name the server shows and what (for errors: "rule changes")
 * are kept by pointer: string constants.  NULL only when out of memory
 * (errno set).
 */
struct pg_listen *pg_listen_new(const char *dsn, const char *channel, const char *app_name,
				const char *what);

/*
 * Wait up to timeout_ms for a notification.  Returns an enum
 * pg_listen_event, or -ECONNRESET (err says why) when the connection is
 * down and could not be made again now (the next call tries again; the
 * caller sleeps between calls).  *ret_number (may be NULL): the highest
 * payload that is a non-negative number, 0 when none is.
 */
int pg_listen_wait(struct pg_listen *l, int timeout_ms, int64_t *ret_number, vigil_err *err);

/* Close and free.  Accepts NULL. */
void pg_listen_free(struct pg_listen *l);

#endif
