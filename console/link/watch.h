/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_WATCH_H
#define VIGIL_CONSOLE_WATCH_H

/*
 * Held rule-set watches (Envelope.watch): how a new rule-set version
 * reaches every connected defender at once instead of at its next
 * heartbeat.
 *
 * A defender keeps one watch outstanding.  A worker that finds nothing new
 * for it parks the request here (its nng context is handed over; the worker
 * opens another) and goes on.  The watch thread checks the version held by
 * rules_push every WATCH_POLL_MS: when it is newer than what a parked
 * defender holds (and not the version that defender refused), it compiles
 * the set for that host from the labels taken when the watch was parked and
 * answers with it; a set too large for a reply is answered empty instead,
 * and the defender's next watch meets a worker, which records the refusal.
 * A watch is answered empty after WATCH_HOLD_MS in any case (the defender
 * sends the next one), and at once when the console stops.
 *
 * Bounded: at most WATCH_MAX parked in all and WATCH_PER_HOST per host;
 * beyond that the worker answers "retry" and the defender waits a second.
 */

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <nng/nng.h>

#include "error.h"
#include "link/rules_push.h"

#define WATCH_HOLD_MS  25000
#define WATCH_POLL_MS  20
#define WATCH_MAX      16384
#define WATCH_PER_HOST 4

/* What a parked watch needs to be answered later. */
struct watch_hold {
	char host_id[128];
	uint64_t seq;
	int64_t held;	   /* the version the defender holds */
	int64_t refused;   /* the version the host refused (not sent again) */
	char *labels_json; /* the host's labels, for compiling; owned by the watch once parked */
};

/* The reply to a watch: OK, with set when not NULL (the listener's encoder). */
typedef nng_msg *(*watch_reply_fn)(uint64_t seq, const struct rules_compiled *set, void *ctx);

struct watchers;

/*
 * A host's labels from the hosts table's JSON object ({"env": "prod"}):
 * at most max into labels, pointing into *ret_obj (json_decref it after).
 */
size_t link_labels_from_json(const char *text, struct store_label *labels, size_t max,
			     json_t **ret_obj);

/* rp may be NULL (no rule sets: watches are only answered when they expire). */
struct watchers *watchers_start(struct rules_push *rp, watch_reply_fn reply, void *reply_ctx,
				vigil_err *err);

/*
 * Park the request received on ctx.  0: ctx and h->labels_json are the
 * watchers' now; -EBUSY over a bound, -ENOMEM: nothing was taken.
 */
int watchers_park(struct watchers *w, nng_ctx ctx, struct watch_hold *h);

/* Watches parked now. */
size_t watchers_parked(struct watchers *w);

/*
 * Answer every parked watch and free everything; after the socket is
 * closed (sends then fail at once).  Accepts NULL.
 */
void watchers_stop(struct watchers *w);

#endif
