/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_STORE_H
#define VIGIL_CONSOLE_STORE_H

/*
 * The console's PostgreSQL storage (libpq).  All SQL is parameterized; nothing
 * is built from strings.  A store owns one connection guarded by an internal
 * mutex, so any thread may call it.  When the server goes away the next call
 * tries to reconnect once; failures return -ECONNRESET/-EIO with err filled,
 * and the caller retries later (a database that goes away is not fatal).
 * A statement that failed because the connection dropped is retried once on
 * the new connection, so every statement here is idempotent.  While the
 * database is unreachable a call may block for the connect timeout (5 s unless
 * the DSN sets connect_timeout) with the mutex held.
 *
 * Errors: -EINVAL for refused input (err names the field), -ENOENT, -ECONNRESET
 * (database unreachable), -EIO for other SQL failures (err has the SQLSTATE).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "error.h"

struct store;

struct store_label {
	const char *key;
	const char *value;
};

/* What a defender says about itself in its hello; host_id comes from its certificate. */
struct store_hello {
	const char *host_id;
	const char *hostname;
	const char *kernel;
	const char *os;
	const char *defender_version;
	const char *bpf_status; /* e.g. "exec_count loaded" or why not */
	const struct store_label *labels;
	size_t nlabels;
};

struct store_heartbeat {
	uint64_t exec_count; /* process execs counted by the kernel since the defender started */
	/*
	 * Capture counters as a JSON object (text), e.g.
	 * {"drops":{"ringbuf_full":0,...},"delivered":{...},"filtered":{...}};
	 * NULL keeps what is stored.  Built by the caller from checked input.
	 */
	const char *capture_json;
};

/*
 * Connect to dsn (connect timeout applies).  Returns NULL with errno set and
 * err naming the server/database when it cannot be reached.
 */
struct store *store_open(const char *dsn, vigil_err *err);

/* Close and free.  Accepts NULL. */
void store_close(struct store *st);

/*
 * Run every statement of st with the server setting name = value (libpq's
 * "options", kept across reconnects).  Values are the caller's constants,
 * never input.
 */
int store_set_option(struct store *st, const char *name, const char *value, vigil_err *err);

/*
 * Make every statement on st that runs longer than ms (> 0) fail with
 * SQLSTATE 57014 ("canceling statement due to statement timeout"; -EIO,
 * with the SQLSTATE in err).  The timeout goes into the connection's startup
 * options, so it outlives the reconnects: st reconnects once, here, with
 * them.  On failure st keeps its old connection (without the timeout).
 */
int store_set_statement_timeout(struct store *st, int ms, vigil_err *err);

/*
 * Apply the versioned migrations not yet applied, each in its own transaction,
 * serialized between consoles with an advisory lock.  Running it again changes
 * nothing.  ret_applied (may be NULL) gets how many were applied now.
 */
int store_migrate(struct store *st, int *ret_applied, vigil_err *err);

/* The newest migration version compiled in. */
int store_schema_version_latest(void);

/*
 * Insert or update the host from its hello; sets connected, last_seen = now(),
 * clears disconnected_at; first_seen and exec_count are kept on update.
 * Every string must be valid UTF-8 of at most 256 bytes (host_id and hostname
 * non-empty; NULL kernel/os/defender_version/bpf_status/label values mean "");
 * at most 64 labels, a repeated key keeps its last value.  -EINVAL otherwise.
 */
int store_host_hello(struct store *st, const struct store_hello *hello, vigil_err *err);

/*
 * Record a heartbeat: last_seen = now(), connected = true, disconnected_at
 * cleared, exec_count stored (above INT64_MAX is -EINVAL).  Returns -ENOENT
 * when the host has never said hello (the defender must send one).
 */
int store_host_heartbeat(struct store *st, const char *host_id, const struct store_heartbeat *hb,
			 vigil_err *err);

/*
 * Mark connected hosts whose last_seen is older than timeout_ms as
 * disconnected (disconnected_at = now()).  ret_count (may be NULL) gets how
 * many changed.
 */
int store_hosts_mark_stale(struct store *st, int timeout_ms, int *ret_count, vigil_err *err);

/*
 * The fleet as a new JSON array (caller json_decref's it), ordered by host_id;
 * each object: host_id, hostname, kernel, os, defender_version, bpf_status,
 * labels (object), exec_count, first_seen, last_seen (RFC 3339 UTC), connected,
 * disconnected_at (RFC 3339 UTC, or null while connected), capture (the
 * last heartbeat's counters) and rules: {version (null: never said),
 * current, acknowledged_at, lagging, why (null, "refused", "offline",
 * "unsupported", "pending"), refused ({version, reason, by} or null),
 * supported, backends ([{name, available, detail}], null: never said or
 * refused), shortfalls ([{rule, section, wanted, applied, why}], null
 * likewise), report_problem (what of those was left out and why, or null)}
 * (store/host_rules.h).
 */
int store_hosts_list(struct store *st, json_t **ret_hosts, vigil_err *err);

#endif
