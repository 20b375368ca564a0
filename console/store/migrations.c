/* SPDX-License-Identifier: Apache-2.0 */
#include "store/migrations.h"

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
    {
	.version = 3,
	.name = "batches_events_audits",
	/*
	 * batches: one row per (host, seq) ever committed, the idempotency key
	 * of delivery.  events: what defenders captured, keyed by their batch.
	 * audits: what an operator must look at (gaps, silent defenders, ...).
	 */
	.sql = "CREATE TABLE batches ("
	       " host_id text NOT NULL,"
	       " seq bigint NOT NULL,"
	       " n_events integer NOT NULL,"
	       " received_at timestamptz NOT NULL DEFAULT now(),"
	       " PRIMARY KEY (host_id, seq));"
	       "CREATE TABLE events ("
	       " host_id text NOT NULL,"
	       " seq bigint NOT NULL,"
	       " idx integer NOT NULL,"
	       " type text NOT NULL,"
	       " ts timestamptz NOT NULL,"
	       " pid integer NOT NULL,"
	       " ppid integer NOT NULL,"
	       " uid bigint NOT NULL,"
	       " comm text NOT NULL,"
	       " body jsonb NOT NULL,"
	       " PRIMARY KEY (host_id, seq, idx));"
	       "CREATE INDEX events_ts_idx ON events (ts);"
	       "CREATE TABLE audits ("
	       " id bigserial PRIMARY KEY,"
	       " host_id text NOT NULL,"
	       " ts timestamptz NOT NULL DEFAULT now(),"
	       " kind text NOT NULL,"
	       " severity text NOT NULL,"
	       " summary text NOT NULL,"
	       " detail jsonb NOT NULL DEFAULT '{}');"
	       "CREATE INDEX audits_host_ts_idx ON audits (host_id, ts);"
	       "CREATE INDEX audits_ts_idx ON audits (ts);",
    },
    {
	.version = 4,
	.name = "events_body_json",
	/*
	 * Ingest speed: jsonb converts every body on the way in.  Measured here
	 * with COPY of 200,000 typical events: jsonb 66k rows/s, json (still
	 * validated, still queryable with ->>) 118k rows/s; the ts index cost
	 * another ~15%.  Events are written once and read rarely.
	 */
	.sql = "ALTER TABLE events ALTER COLUMN body TYPE json USING body::json;"
	       "DROP INDEX events_ts_idx;",
    },
    {
	.version = 5,
	.name = "events_lean_indexes",
	/*
	 * The events primary key only repeated what batches (host_id, seq)
	 * already guarantees: a batch's events are written in the one
	 * transaction that claims the batch.  A BRIN index keeps time-range
	 * queries and retention cheap at a fraction of a B-tree's insert cost.
	 */
	.sql = "ALTER TABLE events DROP CONSTRAINT events_pkey;"
	       "CREATE INDEX events_ts_brin ON events USING brin (ts);",
    },
    {
	.version = 6,
	.name = "learning",
	/*
	 * models: one row per (host, service), its state as the defender last
	 * reported it; model_entries: the model's content, one row per
	 * (executable, kind, pattern), replaced by value from each delta.
	 * activity: the interactive sessions' log, one row per event.
	 * commands: operator requests for a defender (relearn), handed out in
	 * heartbeat replies until the defender says they are done; the partial
	 * index keeps that per-heartbeat lookup cheap however many are done.
	 * audits gain the model's service and executable so deviations can be
	 * filtered per service.
	 */
	.sql = "CREATE TABLE models ("
	       " id bigserial PRIMARY KEY,"
	       " host_id text NOT NULL,"
	       " service text NOT NULL,"
	       " state text NOT NULL,"
	       " learning_since timestamptz,"
	       " active_since timestamptz,"
	       " learn_drops bigint NOT NULL DEFAULT 0,"
	       " note text NOT NULL DEFAULT '',"
	       " updated_at timestamptz NOT NULL DEFAULT now(),"
	       " UNIQUE (host_id, service));"
	       "CREATE TABLE model_entries ("
	       " model_id bigint NOT NULL REFERENCES models (id) ON DELETE CASCADE,"
	       " exe text,"
	       " kind text,"
	       " pattern text,"
	       " first_seen timestamptz,"
	       " last_seen timestamptz,"
	       " count bigint,"
	       " PRIMARY KEY (model_id, exe, kind, pattern));"
	       "CREATE TABLE activity ("
	       " id bigserial PRIMARY KEY,"
	       " host_id text NOT NULL,"
	       " ts timestamptz NOT NULL,"
	       " session integer,"
	       " username text,"
	       " tty text,"
	       " pid integer,"
	       " type text,"
	       " summary text,"
	       " body json);"
	       "CREATE INDEX activity_host_ts_idx ON activity (host_id, ts);"
	       "CREATE INDEX activity_username_ts_idx ON activity (username, ts);"
	       "CREATE TABLE commands ("
	       " id bigserial PRIMARY KEY,"
	       " host_id text NOT NULL,"
	       " kind text NOT NULL,"
	       " service text NOT NULL,"
	       " created_at timestamptz DEFAULT now(),"
	       " acked_at timestamptz);"
	       "CREATE INDEX commands_pending_idx ON commands (host_id, id) WHERE acked_at IS NULL;"
	       "ALTER TABLE audits ADD COLUMN service text, ADD COLUMN exe text;"
	       "CREATE INDEX audits_host_service_ts_idx ON audits (host_id, service, ts);",
    },
    {
	.version = 7,
	.name = "delivery_streams",
	/*
	 * A defender's batches are numbered within its spool's incarnation (a
	 * random id given when the spool was created), so a defender whose state
	 * was lost, starting again at seq 1, is a new stream and never a run of
	 * "duplicates".  batches are keyed by (host, incarnation, seq); what was
	 * stored before has incarnation 0, which a defender from before keeps.
	 * delivery_streams: every stream a host has used, first one first; a new
	 * one after the first is audited (defender_reset).
	 */
	.sql = "ALTER TABLE batches ADD COLUMN incarnation bigint NOT NULL DEFAULT 0;"
	       "ALTER TABLE batches DROP CONSTRAINT batches_pkey;"
	       "ALTER TABLE batches ADD PRIMARY KEY (host_id, incarnation, seq);"
	       "CREATE TABLE delivery_streams ("
	       " host_id text NOT NULL,"
	       " incarnation bigint NOT NULL,"
	       " first_seen timestamptz NOT NULL DEFAULT now(),"
	       " PRIMARY KEY (host_id, incarnation));"
	       "INSERT INTO delivery_streams (host_id, incarnation, first_seen)"
	       " SELECT host_id, 0, min(received_at) FROM batches GROUP BY host_id;",
    },
    {
	.version = 8,
	.name = "rules",
	/*
	 * The operators' rules (store/rules_store.h).  rule_set: one row, the
	 * current version; every change locks it first, so changes from all
	 * consoles are serialized.  rules: the current set, each rule's
	 * canonical JSON in body (name derived from it), positions dense and
	 * unique (deferred: a shift moves many at once).  rule_versions: one row
	 * per change, with the whole ordered set (snapshot, dropped past the
	 * newest 1000) and the idempotency key of the request that made it.
	 * rule_imports: rule sets arriving in parts, until the last one.
	 */
	.sql = "CREATE TABLE rule_set ("
	       " singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),"
	       " version bigint NOT NULL DEFAULT 0,"
	       " changed_at timestamptz);"
	       "INSERT INTO rule_set DEFAULT VALUES;"
	       "CREATE TABLE rules ("
	       " id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	       " body jsonb NOT NULL CHECK (jsonb_typeof(body) = 'object'),"
	       " name text GENERATED ALWAYS AS (body ->> 'name') STORED,"
	       " position integer NOT NULL CHECK (position >= 1),"
	       " CONSTRAINT rules_name_key UNIQUE (name),"
	       " CONSTRAINT rules_position_key UNIQUE (position) DEFERRABLE INITIALLY DEFERRED,"
	       " CONSTRAINT rules_name_present CHECK (name IS NOT NULL));"
	       "CREATE TABLE rule_versions ("
	       " version bigint PRIMARY KEY CHECK (version >= 1),"
	       " created_at timestamptz NOT NULL DEFAULT now(),"
	       " actor text NOT NULL,"
	       " kind text NOT NULL,"
	       " rule_id bigint,"
	       " change text NOT NULL,"
	       " before jsonb,"
	       " after jsonb,"
	       " rules_count integer NOT NULL,"
	       " snapshot jsonb,"
	       " request_id text UNIQUE);"
	       "CREATE TABLE rule_imports ("
	       " key text PRIMARY KEY,"
	       " created_at timestamptz NOT NULL DEFAULT now(),"
	       " parts integer NOT NULL DEFAULT 0,"
	       " rules jsonb NOT NULL DEFAULT '[]',"
	       " result jsonb);",
    },
    {
	.version = 9,
	.name = "host_rules",
	/*
	 * What each host's defender says of its rule set (store/host_rules.h):
	 * rules_protocol 0 for a defender that does not take rule sets; the
	 * version it enforces and when that changed (its acknowledgement); the
	 * last version refused for it, why, and by whom ('defender': it did
	 * not take it; 'console': too large to send).
	 */
	.sql = "ALTER TABLE hosts ADD COLUMN rules_protocol integer NOT NULL DEFAULT 0,"
	       " ADD COLUMN rules_version bigint,"
	       " ADD COLUMN rules_acked_at timestamptz,"
	       " ADD COLUMN rules_refused_version bigint,"
	       " ADD COLUMN rules_refused_reason text,"
	       " ADD COLUMN rules_refused_by text"
	       " CHECK (rules_refused_by IN ('defender', 'console'));",
    },
    {
	.version = 10,
	.name = "rule_effects",
	/*
	 * What the rules decided and what hosts can enforce.  audits: a
	 * deviation's audit names the rule that decided (rule; NULL: none)
	 * and the effect applied (effect: alert, prevent or block; NULL for
	 * audits that are not deviations).  Every deviation stored before was
	 * alerted: backfilled, so effect alone tells deviations apart.  The
	 * partial indexes serve the audit list filtered by rule, and by the
	 * rare effects, newest first; alerts, the most rows, need none.
	 * hosts: what the defender says it can enforce (enforce_backends) and
	 * where it delivers less than its rules ask (rule_shortfalls), as
	 * jsonb arrays, NULL until said; rules_report_problem: why the console
	 * left (part of) them out, NULL when it took them whole.
	 */
	.sql = "ALTER TABLE audits ADD COLUMN rule text,"
	       " ADD COLUMN effect text CHECK (effect IN ('alert', 'prevent', 'block'));"
	       "UPDATE audits SET effect = 'alert' WHERE kind IN ('new_program', 'new_write',"
	       " 'sensitive_read', 'new_listen', 'new_peer', 'new_client', 'rewritten_argument');"
	       "CREATE INDEX audits_rule_id_idx ON audits (rule, id) WHERE rule IS NOT NULL;"
	       "CREATE INDEX audits_effect_id_idx ON audits (effect, id)"
	       " WHERE effect IN ('prevent', 'block');"
	       "ALTER TABLE hosts ADD COLUMN enforce_backends jsonb,"
	       " ADD COLUMN rule_shortfalls jsonb,"
	       " ADD COLUMN rules_report_problem text;",
    },
    {
	.version = 11,
	.name = "users_sessions",
	/*
	 * The console's users and their sign-in sessions (store/users.h).
	 * users: password_hash is an argon2id encoded string, never a
	 * password.  sessions: hash is the SHA-256 (hex) of the session
	 * cookie, so reading the table does not give live sessions; user_name
	 * is NULL for a session signed in with the API token; a user's rows
	 * go with the user (and follow a rename).  The index on expires_at
	 * serves the sweep of expired rows at sign-in.
	 */
	.sql = "CREATE TABLE users ("
	       " name text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9._-]{1,64}$'),"
	       " password_hash text NOT NULL,"
	       " role text NOT NULL CHECK (role IN ('admin', 'read')),"
	       " created_at timestamptz NOT NULL DEFAULT now(),"
	       " password_changed_at timestamptz NOT NULL DEFAULT now(),"
	       " last_login timestamptz);"
	       "CREATE TABLE sessions ("
	       " hash text PRIMARY KEY CHECK (hash ~ '^[0-9a-f]{64}$'),"
	       " user_name text REFERENCES users (name) ON DELETE CASCADE ON UPDATE CASCADE,"
	       " role text NOT NULL CHECK (role IN ('admin', 'read')),"
	       " csrf text NOT NULL,"
	       " created_at timestamptz NOT NULL DEFAULT now(),"
	       " expires_at timestamptz NOT NULL,"
	       " last_seen timestamptz NOT NULL DEFAULT now());"
	       "CREATE INDEX sessions_user_name_idx ON sessions (user_name);"
	       "CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);",
    },
    {
	.version = 12,
	.name = "accept_and_learn_until",
	/*
	 * commands: an "accept" command carries the model entry an operator
	 * accepted from an audit (exe, entry_kind, pattern; NULL for
	 * relearns).  models: learn_until, the end of a learning model's
	 * window as its defender says (NULL: active, or not said).  audits:
	 * the list filtered by severity, newest first (high is rare, so the
	 * index pays; the summary's time buckets read audits_ts_idx).
	 */
	.sql = "ALTER TABLE commands ADD COLUMN exe text, ADD COLUMN entry_kind text,"
	       " ADD COLUMN pattern text;"
	       "ALTER TABLE models ADD COLUMN learn_until timestamptz;"
	       "CREATE INDEX audits_severity_id_idx ON audits (severity, id);",
    },
    {
	.version = 13,
	.name = "events_partitioned_chunks",
	/*
	 * Events that last and cost little (store/retention.h).
	 *
	 * event_chunks: a batch's events of one UTC day in one row, each
	 * column an array with one element per event, partitioned by day
	 * (ts_first, the chunk's earliest event) so that retention drops a
	 * day whole (DROP TABLE, no DELETE, no VACUUM).  A row of one event
	 * (~700 bytes) is never compressed: PostgreSQL compresses only rows
	 * over ~2 KB.  A chunk of up to 10,000 events is, with lz4, per
	 * column: 689 -> 112 bytes an event on the storage benchmark's mix
	 * (docs/performance.md).  The default partition takes what no day's
	 * partition covers (a clock far ahead, a backlog older than the
	 * oldest day); the console creates each day's partition ahead and
	 * moves rows out of the default when their day gets one.
	 *
	 * events: a view with the old table's columns, one row per event,
	 * so that readers see what they saw.  Inserting into it (tools,
	 * tests) goes through a trigger that writes a chunk of one event;
	 * the console writes chunks by COPY.
	 *
	 * The old events table is kept as it is, renamed events_legacy, and
	 * read through the view; retention empties it whole (TRUNCATE) once
	 * its newest event is past the retention, or first when over the
	 * size ceiling.  Copying it into chunks would take minutes and twice
	 * its space inside this migration, on the very databases (a disk
	 * filling up) that need it; a rename takes neither.
	 *
	 * lz4 where the server has it (Debian's PostgreSQL 15 does);
	 * otherwise pglz, the default, stays (slower, about as small).
	 *
	 * Retention of the other tables deletes in bounded batches by time:
	 * activity and batches get the index that needs (audits have
	 * audits_ts_idx).
	 */
	.sql = "ALTER TABLE events RENAME TO events_legacy;"
	       "ALTER INDEX events_ts_brin RENAME TO events_legacy_ts_brin;"
	       "CREATE TABLE event_chunks ("
	       " host_id text NOT NULL,"
	       " seq bigint NOT NULL,"
	       " ts_first timestamptz NOT NULL,"
	       " ts_last timestamptz NOT NULL,"
	       " n integer NOT NULL CHECK (n >= 1),"
	       " e_idx integer[] NOT NULL,"
	       " e_type text[] NOT NULL,"
	       " e_ts timestamptz[] NOT NULL,"
	       " e_pid integer[] NOT NULL,"
	       " e_ppid integer[] NOT NULL,"
	       " e_uid bigint[] NOT NULL,"
	       " e_comm text[] NOT NULL,"
	       " e_body json[] NOT NULL"
	       ") PARTITION BY RANGE (ts_first);"
	       "DO $$ BEGIN"
	       " ALTER TABLE event_chunks ALTER COLUMN e_idx SET COMPRESSION lz4,"
	       " ALTER COLUMN e_type SET COMPRESSION lz4, ALTER COLUMN e_ts SET COMPRESSION lz4,"
	       " ALTER COLUMN e_pid SET COMPRESSION lz4, ALTER COLUMN e_ppid SET COMPRESSION lz4,"
	       " ALTER COLUMN e_uid SET COMPRESSION lz4, ALTER COLUMN e_comm SET COMPRESSION lz4,"
	       " ALTER COLUMN e_body SET COMPRESSION lz4;"
	       " EXCEPTION WHEN feature_not_supported THEN NULL;"
	       " END $$;"
	       "CREATE INDEX event_chunks_host_ts_idx ON event_chunks (host_id, ts_first);"
	       "CREATE TABLE event_chunks_default PARTITION OF event_chunks DEFAULT;"
	       "CREATE VIEW events AS"
	       " SELECT c.host_id, c.seq, e.idx, e.type, e.ts, e.pid, e.ppid, e.uid, e.comm, e.body"
	       " FROM event_chunks c CROSS JOIN LATERAL unnest(c.e_idx, c.e_type, c.e_ts, c.e_pid,"
	       " c.e_ppid, c.e_uid, c.e_comm, c.e_body)"
	       " AS e(idx, type, ts, pid, ppid, uid, comm, body)"
	       " UNION ALL"
	       " SELECT host_id, seq, idx, type, ts, pid, ppid, uid, comm, body FROM events_legacy;"
	       "CREATE FUNCTION events_insert_chunk() RETURNS trigger LANGUAGE plpgsql AS $$"
	       " BEGIN"
	       " IF NEW.host_id IS NULL OR NEW.seq IS NULL OR NEW.idx IS NULL OR NEW.type IS NULL"
	       " OR NEW.ts IS NULL OR NEW.pid IS NULL OR NEW.ppid IS NULL OR NEW.uid IS NULL"
	       " OR NEW.comm IS NULL OR NEW.body IS NULL THEN"
	       " RAISE EXCEPTION 'events: every column is required'"
	       " USING ERRCODE = 'not_null_violation';"
	       " END IF;"
	       " INSERT INTO event_chunks (host_id, seq, ts_first, ts_last, n, e_idx, e_type, e_ts,"
	       " e_pid, e_ppid, e_uid, e_comm, e_body) VALUES (NEW.host_id, NEW.seq, NEW.ts,"
	       " NEW.ts, 1, ARRAY[NEW.idx], ARRAY[NEW.type], ARRAY[NEW.ts], ARRAY[NEW.pid],"
	       " ARRAY[NEW.ppid], ARRAY[NEW.uid], ARRAY[NEW.comm], ARRAY[NEW.body]);"
	       " RETURN NEW;"
	       " END $$;"
	       "CREATE TRIGGER events_insert INSTEAD OF INSERT ON events"
	       " FOR EACH ROW EXECUTE FUNCTION events_insert_chunk();"
	       "CREATE INDEX activity_ts_idx ON activity (ts);"
	       "CREATE INDEX batches_received_at_idx ON batches (received_at);",
    },
    {
	.version = 14,
	.name = "outputs",
	/*
	 * The outputs (console/outputs/, docs/outputs.md) read audits in the
	 * order of the transactions that stored them: audits.tx is that
	 * transaction's id and (tx, id) the reading order.  Ids alone would
	 * lose audits: the ingest workers commit in parallel, so id 100 can
	 * commit after id 101 was read.  A reader takes only audits whose tx
	 * is below the oldest transaction still running (the snapshot's
	 * xmin), so nothing can appear before its position later (PgQ's
	 * design).  stored_at: when the row was stored, for a sink's age
	 * limit (audits.ts is the defender's clock, hostile).  Both are added
	 * without a default first, then given one: existing rows stay NULL
	 * (no rewrite of a large table) and are not delivered (a new sink
	 * starts at "now").
	 *
	 * output_cursors: one row per sink, its position (last_tx, last_id),
	 * what it delivered and dropped in all, its backlog as last measured,
	 * and the console delivering it (owner, a lease renewed while it
	 * runs, so that consoles sharing the database deliver each sink once).
	 */
	.sql = "ALTER TABLE audits ADD COLUMN tx xid8, ADD COLUMN stored_at timestamptz;"
	       "ALTER TABLE audits ALTER COLUMN tx SET DEFAULT pg_current_xact_id(),"
	       " ALTER COLUMN stored_at SET DEFAULT now();"
	       "CREATE INDEX audits_tx_id_idx ON audits (tx, id) WHERE tx IS NOT NULL;"
	       "CREATE TABLE output_cursors ("
	       " sink text PRIMARY KEY,"
	       " kind text NOT NULL,"
	       " last_tx xid8 NOT NULL,"
	       " last_id bigint NOT NULL,"
	       " delivered bigint NOT NULL DEFAULT 0,"
	       " dropped bigint NOT NULL DEFAULT 0,"
	       " backlog bigint NOT NULL DEFAULT 0,"
	       " owner text,"
	       " lease_until timestamptz,"
	       " created_at timestamptz NOT NULL DEFAULT now(),"
	       " updated_at timestamptz NOT NULL DEFAULT now());",
    },
    {
	.version = 15,
	.name = "enrollment",
	/*
	 * Enrollment, renewal and revocation of host certificates
	 * (store/enroll_store.h, docs/operations.md "Enrolling hosts").
	 *
	 * join_tokens: what a host presents to join.  hash is the SHA-256
	 * (hex) of the token's secret part, never the secret; id is the
	 * public part, shown in lists.  A one-time token (reusable false) is
	 * consumed by the first enrollment that commits (uses 0 -> 1 in one
	 * conditional UPDATE); a reusable one works until expires_at.
	 *
	 * host_certs: every certificate the console signed, by serial (lowercase
	 * hex, as the TLS engine reports it): for which host, until when, how
	 * (enroll with which token, or renew from which serial), and when it
	 * was revoked.
	 *
	 * host_revocations: a host revoked, by name, and when.  The link
	 * refuses every certificate of a revoked name except those signed
	 * after the revocation and not revoked themselves (a host enrolled
	 * again), so that certificates the console never recorded (issued by
	 * hand with vigilctl pki issue) are refused too.
	 */
	.sql = "CREATE TABLE join_tokens ("
	       " id text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),"
	       " hash text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),"
	       " reusable boolean NOT NULL,"
	       " group_name text CHECK (group_name ~ '^[A-Za-z0-9._-]{1,64}$'),"
	       " labels jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object'),"
	       " created_at timestamptz NOT NULL DEFAULT now(),"
	       " created_by text NOT NULL,"
	       " expires_at timestamptz NOT NULL,"
	       " uses integer NOT NULL DEFAULT 0,"
	       " last_used_at timestamptz,"
	       " revoked_at timestamptz);"
	       "CREATE TABLE host_certs ("
	       " serial text PRIMARY KEY CHECK (serial ~ '^[0-9a-f]{2,64}$'),"
	       " host_id text NOT NULL,"
	       " issued_at timestamptz NOT NULL DEFAULT now(),"
	       " not_after timestamptz NOT NULL,"
	       " via text NOT NULL CHECK (via IN ('enroll', 'renew')),"
	       " token_id text,"
	       " renewed_from text,"
	       " address text,"
	       " revoked_at timestamptz);"
	       "CREATE INDEX host_certs_host_id_idx ON host_certs (host_id, issued_at);"
	       "CREATE TABLE host_revocations ("
	       " host_id text PRIMARY KEY,"
	       " revoked_at timestamptz NOT NULL,"
	       " revoked_by text NOT NULL);",
    },
    {
	.version = 16,
	.name = "audit_containers",
	/*
	 * The container a deviation's process ran in (docs/learning.md,
	 * "Containers"): its id, and the name, image and runtime its runtime
	 * recorded; NULL for processes outside containers and for audits that
	 * are not deviations.  Added without defaults: no rewrite of a large
	 * table.  The index serves GET /api/v1/audits?image= (newest first).
	 */
	.sql = "ALTER TABLE audits ADD COLUMN container_id text, ADD COLUMN container_name text,"
	       " ADD COLUMN container_image text, ADD COLUMN container_runtime text;"
	       "CREATE INDEX audits_container_image_idx ON audits (container_image, id)"
	       " WHERE container_image IS NOT NULL;",
    },
    {
	.version = 17,
	.name = "event_bodies_text",
	/*
	 * Event bodies stored as text: e_text, one element per event, in the
	 * chunks written from now on; e_body (json) stays for the chunks
	 * written before, and a chunk has one or the other.  PostgreSQL checks
	 * a json value as it takes it, and that check was the largest part
	 * of its work per event (about 3 us of 5.7 us an event, measured on a
	 * chunk of 500 events like the defender's); the console checks each
	 * body instead (common/json_check.h: stricter than json, so the cast
	 * back to json on reading can never fail), before the COPY.
	 * Readers see no change: the events view gives json, cast from the
	 * text of one event only when its body is read.  Catalog changes
	 * only: no rewrite of stored chunks, whatever their number.
	 */
	.sql =
	    "ALTER TABLE event_chunks ADD COLUMN e_text text[];"
	    "ALTER TABLE event_chunks ALTER COLUMN e_body DROP NOT NULL;"
	    "DO $$ BEGIN"
	    " ALTER TABLE event_chunks ALTER COLUMN e_text SET COMPRESSION lz4;"
	    " EXCEPTION WHEN feature_not_supported THEN NULL;"
	    " END $$;"
	    "CREATE OR REPLACE VIEW events AS"
	    " SELECT c.host_id, c.seq, e.idx, e.type, e.ts, e.pid, e.ppid, e.uid, e.comm,"
	    " COALESCE(e.body, e.body_text::json) AS body"
	    " FROM event_chunks c CROSS JOIN LATERAL unnest(c.e_idx, c.e_type, c.e_ts, c.e_pid,"
	    " c.e_ppid, c.e_uid, c.e_comm, c.e_body, c.e_text)"
	    " AS e(idx, type, ts, pid, ppid, uid, comm, body, body_text)"
	    " UNION ALL"
	    " SELECT host_id, seq, idx, type, ts, pid, ppid, uid, comm, body FROM events_legacy;",
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
