/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_REVOCATION_H
#define VIGIL_CONSOLE_REVOCATION_H

/*
 * Revoked hosts, held in memory for the defenders' link, so that a revoked
 * host is refused at once (docs/operations.md, "Enrolling hosts"):
 *
 *  - in the TLS handshake (tls_config_set_peer_check): a new connection of
 *    a revoked certificate never gets established;
 *  - on every request (revocation_refused, from the listener): belt and
 *    braces for a connection that was up when the set changed;
 *  - and at the change itself: every established connection the listener
 *    tracks (revocation_track) is looked at again, and those of revoked
 *    certificates are closed.
 *
 * What is revoked: a name, with the certificates of it that are good again
 * (signed for it since the revocation and not revoked themselves: a host
 * enrolled again).  Every other certificate of that name is refused,
 * whoever issued it (store/enroll_store.h).
 *
 * Freshness: the set is read from the database at start, and again on
 * every NOTIFY vigil_revoked (any console's revocation, at its commit) on a
 * connection of its own, and every REVOCATION_POLL_MS whatever the
 * notifications did (a LISTEN connection that broke loses them).  Measured
 * here: a revocation closes the host's connections within tens of
 * milliseconds (docs/operations.md has the number).
 *
 * Memory: the set holds the revoked names (about 100 bytes each, plus their
 * good serials), at most REVOCATION_NAMES_MAX: past that the set is not
 * swapped in, said in the log, and the previous one stays (a database with
 * that many revoked hosts needs a look).  The tracker holds one 4-byte slot
 * per established connection (twice the cap, allocated up front).
 *
 * Threads: revocation_refused, _track and _untrack from any thread (nng's
 * callbacks, the listener's workers); start and stop from main.  The
 * thread logs what it does (revocations seen, connections closed, the
 * database lost and back).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "store/enroll_store.h"

#define REVOCATION_POLL_MS   5000
#define REVOCATION_NAMES_MAX (1 << 20)

/* ---- the set (pure; for the thread below and the unit tests) ---- */

struct revoked_set;

/*
 * A set from the database's list (store_revoked_load), copied.  NULL when
 * out of memory or over REVOCATION_NAMES_MAX (errno ENOMEM or E2BIG).
 */
struct revoked_set *revoked_set_new(const struct store_revoked *v, size_t n);

/* Accepts NULL. */
void revoked_set_free(struct revoked_set *s);

/* Whether the certificate cn/serial is refused by s (NULL: nothing is). */
bool revoked_set_refuses(const struct revoked_set *s, const char *cn, const char *serial);

/* Revoked names in s. */
size_t revoked_set_count(const struct revoked_set *s);

/* A hash of the set's content: two sets with the same one hold the same. */
uint64_t revoked_set_digest(const struct revoked_set *s);

/* ---- the live set and the connections it cuts ---- */

struct revocation;

/*
 * A revocation holding nothing yet (it refuses no one), so that the link
 * can use it from its first connection; conns_max bounds the connections
 * tracked (the listener's cap).  NULL with err set.
 */
struct revocation *revocation_new(unsigned conns_max, vigil_err *err);

/*
 * Read the set from dsn's database (failing, with err, when it cannot: the
 * console is starting and its database answered a moment ago), close the
 * tracked connections it revokes, and start the thread that keeps it
 * fresh.  Once; revocation_stop frees r whether or not this succeeded.
 */
int revocation_start(struct revocation *r, const char *dsn, vigil_err *err);

/* Whether the certificate cn/serial is revoked now.  Any thread; never blocks for long. */
bool revocation_refused(struct revocation *r, const char *cn, const char *serial);

/*
 * An established connection (nng pipe id) to look at again when the set
 * changes.  -ENOSPC when the tracker is full (the caller refuses the
 * connection: it could not be cut off).
 */
int revocation_track(struct revocation *r, uint32_t pipe_id);

/* The connection is gone (an id not tracked is ignored). */
void revocation_untrack(struct revocation *r, uint32_t pipe_id);

/* What revocation did since start (a snapshot). */
struct revocation_stats {
	uint64_t names;		     /* revoked names held now */
	uint64_t reloads;	     /* times the set was read */
	uint64_t closed;	     /* established connections closed by a revocation */
	uint64_t refused_handshakes; /* handshakes refused (tls peer check) */
	uint64_t refused_requests;   /* connections and requests refused after the handshake */
};
void revocation_stats_get(struct revocation *r, struct revocation_stats *ret);

/* The listener counts a connection or request it refused as revoked. */
void revocation_count_request(struct revocation *r);

/*
 * tls_peer_refuse_fn for the link's TLS configuration (arg: the
 * revocation): counts and refuses revoked certificates in the handshake.
 */
bool revocation_tls_check(const char *cn, const char *serial, void *arg);

/* Stop the thread, free everything (logs the counts).  Accepts NULL. */
void revocation_stop(struct revocation *r);

#endif
