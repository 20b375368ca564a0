/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_PGEMBED_H
#define VIGIL_CONSOLE_PGEMBED_H

/*
 * The console's private PostgreSQL cluster, used when no DSN is given.
 *
 * Layout under state_dir: postgres/data (the cluster, created by initdb on
 * first start) and postgres/run (the Unix socket; no TCP listener at all).
 * When the caller is root, initdb and postgres run as the unprivileged
 * "vigil-pg" user (initdb refuses root; the distribution's shared postgres
 * user is not used, so nothing else running as it can reach this cluster);
 * the directories are owned by it.  Clients authenticate by peer identity on
 * the Unix socket: only the console's OS user and vigil-pg, as role vigil
 * (pg_hba.conf and pg_ident.conf are rewritten at every start).
 * The server is a child of the console: it is stopped by pgembed_stop and,
 * should the console die without stopping it, it gets SIGINT (fast shutdown)
 * through PR_SET_PDEATHSIG, so a restarted console finds its data free.
 *
 * Not thread-safe; one owner (the console's main thread).
 *
 * Process rules for the caller: initdb and the server are children reaped
 * with waitpid(<their pid>), so the process must not set SIGCHLD to SIG_IGN
 * nor reap every child (waitpid(-1, ...)) while a cluster runs.  The death
 * signal fires when the *thread* that called pgembed_start exits, so call it
 * from a thread that lives as long as the server (the main thread).  The
 * server runs in its own session (a terminal's Ctrl-C does not reach it) with
 * default signal handlers, an empty signal mask and no inherited descriptors.
 * As root, the state directory and every directory above it must be
 * searchable by user vigil-pg.
 */

#include "error.h"

struct pgembed;

/*
 * Create (initdb, if missing) and start the cluster under state_dir, wait until
 * it accepts connections (at most timeout_ms, which also bounds waiting for the
 * server of a previous console to let go of the data directory; initdb, on
 * first start only, has its own 120 s bound), and make sure database "vigil"
 * exists.  Returns the running cluster, or NULL with errno set and err filled
 * (which binary or directory failed and why; the server log path on failure).
 */
struct pgembed *pgembed_start(const char *state_dir, int timeout_ms, vigil_err *err);

/* libpq connection string for database "vigil"; owned by pg, valid until pgembed_stop. */
const char *pgembed_dsn(const struct pgembed *pg);

/*
 * Supervise: when the server has exited (crash, OOM kill, an operator's
 * kill), start it again on the same data.  Returns 0 when it was running, 1
 * when it was restarted (err says why it had stopped), or a negative errno
 * when the restart failed (err explains; call again later).  Main thread only.
 */
int pgembed_watch(struct pgembed *pg, int timeout_ms, vigil_err *err);

/* Stop the server (fast shutdown), wait for it, free pg.  Accepts NULL. */
void pgembed_stop(struct pgembed *pg);

#endif
