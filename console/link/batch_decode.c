/* SPDX-License-Identifier: Apache-2.0 */
/* Protobuf batches to the store's structs: pointers into the message, bounded arrays. */
#include "link/batch_decode.h"
#include "link/pb_arena.h"

#include <errno.h>
#include <lz4.h>
#include <stdlib.h>
#include <string.h>

#include "store/learning_store.h"
#include "wire_limits.h"

void batch_decode_free(struct batch_decode *w)
{
	free(w->events);
	free(w->activity);
	free(w->gaps);
	free(w->deviations);
	free(w->links);
	free(w->deltas);
	free(w->entries);
	memset(w, 0, sizeof(*w));
}

/* calloc that gives a non-NULL pointer for n == 0 too, so NULL means out of memory. */
static void *alloc_n(size_t n, size_t size)
{
	return calloc(n > 0 ? n : 1, size);
}

static void convert_events(const Vigil__Batch *pb, struct batch_decode *w)
{
	for (size_t i = 0; i < pb->n_events; i++) {
		const Vigil__Event *e = pb->events[i];
		const Vigil__Activity *a = e->activity;

		w->events[i] = (struct store_event){.type = e->type,
						    .ts_ns = e->ts_ns,
						    .pid = e->pid,
						    .ppid = e->ppid,
						    .uid = e->uid,
						    .comm = e->comm,
						    .json = e->json};
		if (a != NULL) {
			w->activity[i] = (struct store_activity){.session = a->session,
								 .user = a->user,
								 .tty = a->tty,
								 .summary = a->summary};
			w->events[i].activity = &w->activity[i];
		}
	}
	for (size_t i = 0; i < pb->n_gaps; i++)
		w->gaps[i] = (struct store_gap){.first_seq = pb->gaps[i]->first_seq,
						.last_seq = pb->gaps[i]->last_seq,
						.count = pb->gaps[i]->count,
						.reason = pb->gaps[i]->reason};
}

static void convert_deviations(const Vigil__Batch *pb, struct batch_decode *w)
{
	size_t l = 0;

	for (size_t i = 0; i < pb->n_deviations; i++) {
		const Vigil__Deviation *d = pb->deviations[i];
		struct store_deviation *sd = &w->deviations[i];

		*sd = (struct store_deviation){.ts_ns = d->ts_ns,
					       .service = d->service,
					       .exe = d->exe,
					       .kind = d->kind,
					       .object = d->object,
					       .raw = d->raw,
					       .expected = d->expected,
					       .severity = d->severity,
					       .pid = d->pid,
					       .nchain = d->n_chain,
					       .rule = d->rule,
					       .effect = d->effect,
					       .wanted = d->wanted,
					       .why = d->why,
					       .container_id = d->container_id,
					       .container_name = d->container_name,
					       .container_image = d->container_image,
					       .container_runtime = d->container_runtime};
		if (d->n_chain > LEARN_CHAIN_MAX)
			continue; /* left out by the store, with chain NULL */
		sd->chain = &w->links[l];
		for (size_t j = 0; j < d->n_chain; j++, l++)
			w->links[l] = (struct store_chain_link){.pid = d->chain[j]->pid,
								.comm = d->chain[j]->comm,
								.exe = d->chain[j]->exe};
	}
}

static void convert_deltas(const Vigil__Batch *pb, struct batch_decode *w)
{
	size_t k = 0;

	for (size_t i = 0; i < pb->n_models; i++) {
		const Vigil__ModelDelta *d = pb->models[i];
		struct store_model_delta *sd = &w->deltas[i];

		*sd = (struct store_model_delta){.service = d->service,
						 .state = d->state,
						 .learning_since_ms = d->learning_since_ms,
						 .active_since_ms = d->active_since_ms,
						 .learn_until_ms = d->learn_until_ms,
						 .learn_drops = d->learn_drops,
						 .note = d->note,
						 .reset = d->reset,
						 .nentries = d->n_entries};
		if (d->n_entries > LEARN_DELTA_ENTRIES_MAX)
			continue;
		sd->entries = &w->entries[k];
		for (size_t j = 0; j < d->n_entries; j++, k++) {
			const Vigil__ModelEntry *e = d->entries[j];

			w->entries[k] =
			    (struct store_model_entry){.exe = e->exe,
						       .kind = e->kind,
						       .pattern = e->pattern,
						       .first_seen_ms = e->first_seen_ms,
						       .last_seen_ms = e->last_seen_ms,
						       .count = e->count,
						       .removed = e->removed};
		}
	}
}

int batch_decode_pb(const Vigil__Batch *pb, struct batch_decode *w, const char **ret_why)
{
	size_t nlinks = 0, nentries = 0;

	memset(w, 0, sizeof(*w));
	if (pb->n_events > INGEST_EVENTS_MAX || pb->n_gaps > INGEST_GAPS_MAX ||
	    pb->n_deviations > INGEST_DEVIATIONS_MAX || pb->n_models > INGEST_DELTAS_MAX) {
		*ret_why = "batch over the limits (10000 events, 64 gaps, 10000 deviations,"
			   " 1024 model deltas)";
		return -EINVAL;
	}
	for (size_t i = 0; i < pb->n_deviations; i++)
		if (pb->deviations[i]->n_chain <= LEARN_CHAIN_MAX)
			nlinks += pb->deviations[i]->n_chain;
	for (size_t i = 0; i < pb->n_models; i++)
		if (pb->models[i]->n_entries <= LEARN_DELTA_ENTRIES_MAX)
			nentries += pb->models[i]->n_entries;
	if (nentries > INGEST_ENTRIES_MAX) {
		*ret_why = "batch over the limits (200000 model entries)";
		return -EINVAL;
	}
	w->events = alloc_n(pb->n_events, sizeof(*w->events));
	w->activity = alloc_n(pb->n_events, sizeof(*w->activity));
	w->gaps = alloc_n(pb->n_gaps, sizeof(*w->gaps));
	w->deviations = alloc_n(pb->n_deviations, sizeof(*w->deviations));
	w->links = alloc_n(nlinks, sizeof(*w->links));
	w->deltas = alloc_n(pb->n_models, sizeof(*w->deltas));
	w->entries = alloc_n(nentries, sizeof(*w->entries));
	if (w->events == NULL || w->activity == NULL || w->gaps == NULL || w->deviations == NULL ||
	    w->links == NULL || w->deltas == NULL || w->entries == NULL) {
		batch_decode_free(w);
		*ret_why = "console out of memory";
		return -ENOMEM;
	}
	convert_events(pb, w);
	convert_deviations(pb, w);
	convert_deltas(pb, w);
	w->b = (struct ingest_batch){.events = w->events,
				     .nevents = pb->n_events,
				     .gaps = w->gaps,
				     .ngaps = pb->n_gaps,
				     .deviations = w->deviations,
				     .ndeviations = pb->n_deviations,
				     .deltas = w->deltas,
				     .ndeltas = pb->n_models};
	return 0;
}

Vigil__Batch *batch_decode_lz4(const Vigil__Envelope *env, struct pb_arena *arena,
			       const char **ret_why)
{
	Vigil__Batch *b;
	char *raw;
	int n;

	*ret_why = NULL;
	if (env->batch_size == 0 || env->batch_size > VIGIL_MSG_MAX) {
		*ret_why = "compressed batch: batch_size missing or over the message limit";
		return NULL;
	}
	if (env->batch_lz4.len == 0 || env->batch_lz4.len > (size_t)LZ4_MAX_INPUT_SIZE) {
		*ret_why = "compressed batch: empty";
		return NULL;
	}
	raw = arena != NULL ? pb_arena_alloc(arena, env->batch_size) : malloc(env->batch_size);
	if (raw == NULL)
		return NULL;
	/* _safe: never writes past batch_size nor reads past the input, whatever it holds. */
	n = LZ4_decompress_safe((const char *)env->batch_lz4.data, raw, (int)env->batch_lz4.len,
				(int)env->batch_size);
	if (n < 0 || (uint32_t)n != env->batch_size) {
		if (arena == NULL)
			free(raw);
		*ret_why = "compressed batch: does not decompress to its batch_size";
		return NULL;
	}
	b = vigil__batch__unpack(pb_arena_allocator(arena), (size_t)n, (const uint8_t *)raw);
	if (arena == NULL)
		free(raw);
	if (b == NULL)
		*ret_why = "compressed batch: malformed once decompressed";
	return b;
}
