/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_COMMON_SDNOTIFY_H
#define VIGIL_COMMON_SDNOTIFY_H

/*
 * The service manager's readiness protocol (sd_notify(3), Type=notify
 * units), spoken without libsystemd: one datagram of "KEY=VALUE" lines to
 * the AF_UNIX socket named by $NOTIFY_SOCKET, a path ("/run/systemd/notify")
 * or an abstract name ("@name": a leading NUL on the wire).  Not under a
 * manager ($NOTIFY_SOCKET unset), every call does nothing and says so (0).
 *
 * sdnotify_init takes the address once, at the start of main before any
 * thread exists, and removes $NOTIFY_SOCKET from the environment: children
 * the daemon starts (PostgreSQL is built with systemd support) must not
 * report on the daemon's behalf.  After it, the send functions are safe
 * from any thread (each opens its own socket).  Nothing here logs.
 */

#include <stddef.h>

/* The longest message sent: the manager reads one datagram of any size, but ours are short. */
#define SDNOTIFY_MSG_MAX 1024

/* Take $NOTIFY_SOCKET (and unset it).  Main thread, before other threads start. */
void sdnotify_init(void);

/* Whether sdnotify_init found a manager's socket. */
int sdnotify_enabled(void);

/*
 * Send state ("READY=1", "STATUS=...", several lines joined by '\n') to the
 * socket sdnotify_init took.  Returns 1 when sent, 0 when there is no
 * manager, or a negative errno (-EINVAL for an address that is neither a
 * path nor '@'-abstract, -ENAMETOOLONG when it does not fit sun_path, the
 * socket's errors otherwise).
 */
int sdnotify_send(const char *state);

/* The same to an explicit address (what sdnotify_send uses; tests call it directly). */
int sdnotify_send_to(const char *addr, const char *state);

/* "READY=1" with "STATUS=status" (status NULL: none); as sdnotify_send. */
int sdnotify_ready(const char *status);

/* "STOPPING=1" with "STATUS=status" (status NULL: none); as sdnotify_send. */
int sdnotify_stopping(const char *status);

/* "STATUS=" and the formatted text (cut at SDNOTIFY_MSG_MAX); as sdnotify_send. */
int sdnotify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
