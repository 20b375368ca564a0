/* SPDX-License-Identifier: Apache-2.0 */
#include "store/ingest_stats.h"

#include <stdatomic.h>

static atomic_uint_fast64_t batches, duplicates, events, refused, deviations, malformed;

void ingest_stats_add(const struct ingest_result *res)
{
	if (res->duplicate) {
		atomic_fetch_add_explicit(&duplicates, 1, memory_order_relaxed);
		return;
	}
	atomic_fetch_add_explicit(&batches, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&events, res->stored, memory_order_relaxed);
	atomic_fetch_add_explicit(&refused, res->refused, memory_order_relaxed);
	atomic_fetch_add_explicit(&deviations, res->deviations, memory_order_relaxed);
	atomic_fetch_add_explicit(&malformed, res->malformed, memory_order_relaxed);
}

void ingest_stats_get(struct ingest_stats *ret)
{
	ret->batches = atomic_load_explicit(&batches, memory_order_relaxed);
	ret->duplicates = atomic_load_explicit(&duplicates, memory_order_relaxed);
	ret->events = atomic_load_explicit(&events, memory_order_relaxed);
	ret->refused = atomic_load_explicit(&refused, memory_order_relaxed);
	ret->deviations = atomic_load_explicit(&deviations, memory_order_relaxed);
	ret->malformed = atomic_load_explicit(&malformed, memory_order_relaxed);
}
