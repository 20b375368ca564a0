/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_TEST_PGFIXTURE_H
#define VIGIL_TEST_PGFIXTURE_H

#include <libpq-fe.h>

/*
 * One PostgreSQL test cluster per test binary, shared by its tests in turn.
 * This module's criterion hooks create it (pgfix_create) before the first
 * test and remove it (pgfix_remove) after the last: they are linked into
 * every binary that calls into this module, as every user of the cluster does.
 * A test's setup calls pgfix_state() before it starts the cluster.
 * Results travel in the environment (VIGIL_TEST_PG_*) because criterion
 * runs each test in its own process.
 */

/* The name of the state directory in the cluster's /tmp directory: each test binary defines it. */
extern const char pgfix_state_name[];

/* Create the cluster (initdb) under a new /tmp directory, in state_name below it. */
void pgfix_create(const char *state_name);

/* Remove what pgfix_create made. */
void pgfix_remove(void);

/* Skip the test when there is no PostgreSQL, fail it when the cluster could not be made. */
void pgfix_need(void);

/*
 * Skip the test when there is no PostgreSQL, fail it when there is but the
 * cluster could not be made; else take the cluster's lock (once per test,
 * into *lock_fd, which starts at -1) and return its state directory.
 */
const char *pgfix_state(int *lock_fd);

struct pgembed;

/*
 * For a suite's setup: start the cluster (pgfix_state's lock in *lock_fd),
 * connect *sql to it for checks behind the code's back, and leave its
 * public schema empty.  pgfix_db_close undoes all three (safe on what was
 * not set up).
 */
void pgfix_db_open(int *lock_fd, struct pgembed **pg, PGconn **sql);
void pgfix_db_close(int *lock_fd, struct pgembed **pg, PGconn **sql);

/* The one value of a one-row, one-column query on c, as text ("<null>" for NULL); static buffer. */
const char *pgfix_q1(PGconn *c, const char *sql);

#endif
