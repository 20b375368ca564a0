/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_CONN_LIMIT_H
#define VIGIL_CONSOLE_CONN_LIMIT_H

/*
 * Established connections counted per identity (a certificate's CN) and in
 * total, so that one host, or one stolen certificate, cannot take every
 * descriptor and worker the console has.  The listener feeds it from nng's
 * pipe callbacks: conn_limit_add when a connection arrives (it is refused
 * when over a cap), conn_limit_remove when it goes.
 *
 * Silent connections give way: when an identity is at its cap, the one of
 * its connections silent longest (no conn_limit_touch) is given up for the
 * newcomer if it has been silent for idle_ms.  A host that crashed, or lost
 * its network for longer than its kernel retries a FIN, leaves a connection
 * the console never hears the end of (nng 1.5.2 has no idle timeout, and
 * TCP keepalive takes two hours); without this, a few of those would lock
 * the host out for good.  A live defender is never silent that long: it
 * heartbeats.
 *
 * Order: nng 1.5.2 promises no order between the callbacks of one pipe
 * (docs/link-analysis.md section 4): the remove of a connection closed
 * while its add was still running can come first.  A remove for an id not
 * counted is remembered (the last CONN_LIMIT_TOMBSTONES of them) and the
 * add that follows it counts nothing (CONN_LIMIT_GONE).  A remove for an id
 * that was refused, or never added, changes nothing.
 *
 * Memory: bounded by the total cap: a connection table of 2 x total slots
 * (24 bytes each) allocated up front, at most `total` identities (about
 * 150 bytes each; an identity leaves with its last connection), and the
 * tombstone ring.  4096 connections: 192 KiB + at most 600 KiB.
 *
 * Threading: every call takes the table's own mutex; callers need no lock.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONN_LIMIT_TOTAL_MAX  65536
#define CONN_LIMIT_KEY_MAX    128 /* longest identity, NUL included; longer ones are cut */
#define CONN_LIMIT_TOMBSTONES 64

enum conn_limit_verdict {
	CONN_LIMIT_ADMITTED, /* counted */
	CONN_LIMIT_PER_KEY,  /* refused: the identity has per_key connections */
	CONN_LIMIT_TOTAL,    /* refused: total connections are established */
	CONN_LIMIT_GONE,     /* not counted: the connection was removed already */
	CONN_LIMIT_NOMEM,    /* refused: no memory for a new identity */
};

struct conn_limit;

/*
 * A table admitting per_key connections per identity and total in all
 * (1 <= per_key <= total <= CONN_LIMIT_TOTAL_MAX).  Free it with
 * conn_limit_free.  NULL with errno EINVAL or ENOMEM.
 */
struct conn_limit *conn_limit_new(unsigned per_key, unsigned total);

/* Accepts NULL. */
void conn_limit_free(struct conn_limit *cl);

/*
 * Connection id (nonzero, unique while it lives) of identity key arrives at
 * now_ms (any monotonic clock): count it unless a cap says no.  At the
 * identity's cap, its connection silent longest gives way if silent for
 * idle_ms or more: it is uncounted, and its id goes to *ret_evicted (0:
 * none) for the caller to close.  *ret_key_conns gets the identity's
 * connections: after the add when admitted, at the refusal when refused.
 * Both out-parameters may be NULL.
 */
enum conn_limit_verdict conn_limit_add(struct conn_limit *cl, uint32_t id, const char *key,
				       uint64_t now_ms, uint64_t idle_ms, unsigned *ret_key_conns,
				       uint32_t *ret_evicted);

/* Connection id was heard from at now_ms (a request).  Ids not counted are ignored. */
void conn_limit_touch(struct conn_limit *cl, uint32_t id, uint64_t now_ms);

/* Connection id is gone; returns whether it was counted (and now is not). */
bool conn_limit_remove(struct conn_limit *cl, uint32_t id);

struct conn_limit_counts {
	unsigned conns;	  /* established now */
	unsigned peak;	  /* most established at once */
	unsigned keys;	  /* identities with a connection now */
	uint64_t evicted; /* silent connections given up for a newcomer */
};

void conn_limit_counts(struct conn_limit *cl, struct conn_limit_counts *ret);

#endif
