/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_REVOKE_LISTEN_H
#define VIGIL_CONSOLE_REVOKE_LISTEN_H

/*
 * A dedicated libpq connection that LISTENs on vigil_revoked
 * (ENROLL_REVOKE_CHANNEL), where every host revocation on the database,
 * made through any console, announces the host's name when it commits
 * (store/enroll_store.h).  As store/rules_listen.h for rules: not a struct
 * store, it waits in poll() on its socket and holds nothing another thread
 * needs.
 *
 * A notification sent while the connection was down is lost: after every
 * (re)connection revoke_listen_wait says REVOKE_LISTEN_CONNECTED, and the
 * caller reads the revoked set from the database itself.
 *
 * Ownership and threads: one thread owns a revoke_listen (new, wait, free).
 */

#include "error.h"

struct revoke_listen;

enum revoke_listen_event {
	REVOKE_LISTEN_TIMEOUT = 0,   /* nothing within the timeout */
	REVOKE_LISTEN_NOTIFIED = 1,  /* one or more revocations announced */
	REVOKE_LISTEN_CONNECTED = 2, /* (re)connected and listening: anything may have changed */
};

/*
 * Remember dsn (copied) and try to connect and LISTEN once; a failure here
 * is not an error (revoke_listen_wait retries).  NULL only when out of
 * memory (errno set).
 */
struct revoke_listen *revoke_listen_new(const char *dsn);

/*
 * Wait up to timeout_ms for a notification.  Returns an enum
 * revoke_listen_event, or -ECONNRESET (err says why) when the connection is
 * down and could not be made again now (the next call tries again; the
 * caller sleeps between calls).
 */
int revoke_listen_wait(struct revoke_listen *l, int timeout_ms, vigil_err *err);

/* Close and free.  Accepts NULL. */
void revoke_listen_free(struct revoke_listen *l);

#endif
