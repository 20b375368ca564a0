/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_MIGRATIONS_H
#define VIGIL_CONSOLE_MIGRATIONS_H

/*
 * The console's schema as versioned SQL migrations, compiled in.
 *
 * Versions start at 1 and grow by one; a migration, once released, is never
 * edited (a change is a new migration).  Each one's SQL runs inside one
 * transaction opened by store_migrate, so it must not contain BEGIN/COMMIT or
 * statements that cannot run in a transaction (CREATE INDEX CONCURRENTLY).
 * Everything here is constant and static: no ownership, no locking.
 */

#include <stddef.h>

struct migration {
	int version;
	const char *name;
	const char *sql;
};

/*
 * The table that records applied migrations; store_migrate runs this
 * (idempotent, IF NOT EXISTS) before looking at any version.
 */
extern const char migrations_bootstrap_sql[];

/* All migrations in version order; *ret_count gets how many. Static storage. */
const struct migration *migrations_get(size_t *ret_count);

/* The newest version compiled in. */
int migrations_latest(void);

#endif
