/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_RENEW_H
#define VIGIL_DEFENDER_RENEW_H

/*
 * The renewal thread: renews the host's certificate at two thirds of its
 * lifetime, over the link its current certificate authenticates
 * (Envelope.renew; docs/operations.md, "Enrolling hosts"), so a host never
 * has to be enrolled again while it keeps in touch.
 *
 * Each renewal makes a new P-256 key (the old one is not reused), sends a
 * request for the certificate's CN, checks the answer (signed by the same
 * CA, for that name, for the new key), puts key and certificate in place
 * as a pair (identity.h), and has the uplink dial again with them
 * (uplink_reload): the old connections close, what was in flight is sent
 * again, and the spool delivers on, so nothing is lost.  A refusal or no
 * answer is retried, sooner as the expiry nears; an expired certificate
 * cannot be renewed (the host must enroll again), which is logged.
 *
 * Ownership: the renewer borrows cfg and up (they must outlive it) and
 * owns its request channel and thread.  It logs what it does.
 */

#include "config/defender_config.h"
#include "deliver/uplink.h"
#include "error.h"

/* How long a renewal waits for the console's answer. */
#define RENEW_TIMEOUT_MS 10000
/* The longest the thread sleeps before it looks at the certificate again. */
#define RENEW_CHECK_MAX_S 60

struct renewer;

/* Start renewing cfg's certificate through up.  NULL with err set. */
struct renewer *renewer_start(const struct defender_config *cfg, struct uplink *up, vigil_err *err);

/* For a stop, from another thread: end the request under way at once. */
void renewer_abort(struct renewer *r);

/* Stop the thread and free.  Accepts NULL. */
void renewer_stop(struct renewer *r);

#endif
