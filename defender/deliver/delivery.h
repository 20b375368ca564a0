/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_DELIVERY_H
#define VIGIL_DEFENDER_DELIVERY_H

/*
 * Reliable delivery of captured events to the console.
 *
 * The capture thread adds events; they are gathered into batches (by count,
 * by size, or after batch_ms, so a quiet host reports within a second) and
 * each batch is appended to the disk spool, which gives it its sequence
 * number.  Capture never waits on the network, only on the local disk.
 *
 * Up to `window` sender threads, each with its own request channel, take
 * the spooled batches in order and send them; each waits for the console's
 * acknowledgement (given only after the batch is committed in PostgreSQL,
 * stored once per (host, seq)), and on silence or "retry" backs off and
 * resends the same batch.  The spool is acknowledged up to the oldest batch
 * still in flight, so after a restart nothing unacknowledged is skipped:
 * delivery is at least once, and the database makes it exactly once.
 * Batches may commit out of order, except that a batch carrying model
 * deltas waits for every batch before it and holds back every batch after
 * it (a model's changes must apply in order).  Batches the spool had to drop
 * are reported as gaps, on their own, while no batch is in flight.
 *
 * Locking: one mutex guards the spool and the batch being built; the
 * capture thread calls delivery_add/delivery_tick, the sender thread is
 * internal.
 */

#include <stdbool.h>
#include <stdint.h>

#include "config/defender_config.h"
#include "error.h"
#include "event/event.h"
#include "event/event_json.h"
#include "deliver/uplink.h"
#include "vigil.pb-c.h"

struct delivery_opts {
	const char *spool_dir;
	uint64_t spool_max_bytes;
	int batch_max_events; /* 0: 2000 */
	int batch_ms;	      /* 0: 250 */
	int window;	      /* batches in flight at once, 1..DEFENDER_SEND_WINDOW_MAX */
};

struct delivery_stats {
	uint64_t events_added;
	uint64_t batches_spooled;
	uint64_t batches_spooled_lz4; /* of those, compressed before they were written */
	uint64_t batches_acked;
	uint64_t batches_refused; /* the console refused them for good: counted, logged */
	uint64_t resends;
	uint64_t spool_bytes;
	uint64_t spool_pending;
	uint64_t spool_dropped; /* batches the spool dropped (reported as gaps) */
	uint64_t append_errors;
	uint64_t oversize;	   /* events, deviations, model changes or spooled batches too large
				      for a console: not sent, logged (a spooled batch also as a gap) */
	uint64_t batches_lz4;	   /* batches sent compressed (the console takes them) */
	uint64_t batch_bytes;	   /* packed size of every batch framed for sending */
	uint64_t batch_bytes_sent; /* what those framings came to, compressed or not */
};

struct delivery;

/* Open the spool and start the sender thread on up (not owned). */
struct delivery *delivery_start(const struct delivery_opts *opts, struct uplink *up,
				vigil_err *err);

/*
 * Capture thread: add one event (ev with its description en, and act when it
 * is interactive activity; both copied).  ring_end: the kernel ring position
 * just after its record (capture_read_pos), see delivery_ring_safe.
 */
void delivery_add(struct delivery *dl, const struct event *ev, const struct event_enrich *en,
		  const Vigil__Activity *act, int64_t clock_offset_ns, uint64_t ring_end);

/* Capture thread: a deviation or a model change, into the same batches (copied). */
void delivery_add_deviation(struct delivery *dl, const Vigil__Deviation *d);
void delivery_add_model_delta(struct delivery *dl, const Vigil__ModelDelta *d);

/*
 * Capture thread, after each poll: flush a batch that has waited batch_ms.
 * ring_pos: how far the ring has been read (capture_read_pos).
 */
void delivery_tick(struct delivery *dl, uint64_t ring_pos);

/* Capture thread: spool the batch being built now (the ring is filling up). */
void delivery_flush(struct delivery *dl);

/*
 * The ring position up to which every event read is spooled (or was lost
 * and counted): the kernel may have the ring back up to here
 * (capture_commit).  What lies beyond is read again by the next defender
 * if this one is killed.
 */
uint64_t delivery_ring_safe(struct delivery *dl);

void delivery_stats(struct delivery *dl, struct delivery_stats *out);

/* Flush what is buffered into the spool, stop the senders, close the spool. */
void delivery_stop(struct delivery *dl);

#endif
