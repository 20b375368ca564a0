/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_TEST_STOREFIXTURE_H
#define VIGIL_TEST_STOREFIXTURE_H

#include <libpq-fe.h>

#include "pgfixture.h"

/*
 * The fixture of the store suites: the shared cluster of pgfixture.h, the
 * store under test on it, and a plain connection beside the store.
 *
 * One object per test program, fx, defined here: criterion's .init and
 * .fini take no argument, and it runs each test in its own process, so
 * a test owns fx from its .init to its .fini.  A test may stop, restart or
 * replace what fx holds; storefix_teardown closes whatever is left.
 */
struct storefix {
	int lock_fd;	    /* the cluster's lock (pgfix_state), -1 when not held */
	struct pgembed *pg; /* the running cluster, or NULL */
	struct store *st;   /* the store under test, or NULL */
	PGconn *sql;	    /* a plain connection for checks behind the store's back */
};

extern struct storefix fx;

/*
 * A TestSuite's .init: start the cluster, connect fx.sql and leave schema
 * public empty; fx.st stays NULL (no store, no migrations).
 */
void storefix_setup_empty(void);

/* A TestSuite's .init: as storefix_setup_empty, then open fx.st and migrate it. */
void storefix_setup(void);

/*
 * A TestSuite's .fini: close fx.st and fx.sql, stop the cluster and release
 * its lock (each only when set); fx is as initialized afterwards.
 */
void storefix_teardown(void);

/*
 * Run a parameterized statement (n params, as text) on fx.sql, failing the
 * test when it fails; the caller clears the result.
 */
PGresult *storefix_exec(const char *sql, int n, const char *const *params);

/* The one value of a one-row, one-column query on fx.sql, as text (pgfix_q1); static buffer. */
const char *storefix_q1(const char *sql);

/* The same value as a number (atoll). */
long long storefix_qn(const char *sql);

#endif
