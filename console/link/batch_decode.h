/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_BATCH_DECODE_H
#define VIGIL_CONSOLE_BATCH_DECODE_H

/*
 * A defender's Batch (protobuf-c, unpacked from at most LISTENER_MSG_MAX
 * bytes) as the store's structs.  Nothing is copied: the store structs point
 * into the unpacked message, which must outlive the wire_batch.  Counts past
 * the per-item limits (chain links, entries per delta) are passed on with a
 * NULL array so the store reports the item as malformed instead of this
 * module allocating for it.
 */

#include "store/ingest.h"
#include "vigil.pb-c.h"

struct batch_decode {
	struct ingest_batch b; /* what to pass to store_ingest */
	struct store_event *events;
	struct store_activity *activity;
	struct store_gap *gaps;
	struct store_deviation *deviations;
	struct store_chain_link *links;
	struct store_model_delta *deltas;
	struct store_model_entry *entries;
};

/*
 * Fill w from pb.  Returns 0, -EINVAL when pb is over the batch limits
 * (*ret_why says which, for the refusal), or -ENOMEM.  On error w holds
 * nothing to free; on success free it with batch_decode_free.
 */
int batch_decode_pb(const Vigil__Batch *pb, struct batch_decode *w, const char **ret_why);

/*
 * The Batch an Envelope carries compressed (batch_lz4): decompressed to
 * exactly env->batch_size bytes, which may not exceed VIGIL_MSG_MAX (what an
 * uncompressed batch may be, so a small message cannot make the console
 * hold more), and unpacked.  From arena when it is not NULL (given back
 * with it), else from malloc (free it with vigil__batch__free_unpacked).
 * NULL with *ret_why set when it is malformed (refuse it), NULL with
 * *ret_why NULL when out of memory.
 */
struct pb_arena;
Vigil__Batch *batch_decode_lz4(const Vigil__Envelope *env, struct pb_arena *arena,
			       const char **ret_why);

/* Free what batch_decode_pb allocated (not the message).  Accepts a zeroed w. */
void batch_decode_free(struct batch_decode *w);

#endif
