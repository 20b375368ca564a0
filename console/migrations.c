/* SPDX-License-Identifier: Apache-2.0 */
#include "migrations.h"

const char migrations_bootstrap_sql[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
					" version int PRIMARY KEY,"
					" name text NOT NULL,"
					" applied_at timestamptz NOT NULL DEFAULT now()"
					")";

static const struct migration migrations[] = {
    {
	.version = 1,
	.name = "hosts",
	/* schema_migrations itself comes from migrations_bootstrap_sql. */
	.sql = "CREATE TABLE hosts ("
	       " host_id text PRIMARY KEY,"
	       " hostname text NOT NULL,"
	       " kernel text NOT NULL DEFAULT '',"
	       " os text NOT NULL DEFAULT '',"
	       " defender_version text NOT NULL DEFAULT '',"
	       " bpf_status text NOT NULL DEFAULT '',"
	       " labels jsonb NOT NULL DEFAULT '{}',"
	       " exec_count bigint NOT NULL DEFAULT 0,"
	       " first_seen timestamptz NOT NULL DEFAULT now(),"
	       " last_seen timestamptz NOT NULL DEFAULT now(),"
	       " connected boolean NOT NULL DEFAULT false,"
	       " disconnected_at timestamptz"
	       ");"
	       /* The fleet view and the stale sweep filter on these two. */
	       "CREATE INDEX hosts_connected_last_seen_idx ON hosts (connected, last_seen);",
    },
    {
	.version = 2,
	.name = "hosts_capture_counters",
	/* The defender's capture counters from its last heartbeat: losses must be visible. */
	.sql = "ALTER TABLE hosts ADD COLUMN capture jsonb NOT NULL DEFAULT '{}';",
    },
};

const struct migration *migrations_get(size_t *ret_count)
{
	*ret_count = sizeof(migrations) / sizeof(migrations[0]);
	return migrations;
}

int migrations_latest(void)
{
	/* The array cannot be empty in C; versions are in order. */
	return migrations[sizeof(migrations) / sizeof(migrations[0]) - 1].version;
}
