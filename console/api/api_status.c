/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GET /api/v1/status: how this console's storage is doing.
 *
 *   {"storage": {"state": "ok"|"full", "since", "detail", "batches_refused",
 *                "events": {"bytes", "partitions", "oldest_day", "newest_day",
 *                           "default_bytes", "legacy_bytes"} | null,
 *                "events_error": null | why they could not be measured,
 *                "retention": {"settings": {...}, "last_run": {...}}}}
 *
 * The state is this console process's (store/storage_state.h); the events'
 * sizes are the database's, measured now (a quick catalog query).  A
 * database that cannot answer still gets a 200: the state is what an
 * operator needs most when the database is in trouble.
 */
#include "api/api_priv.h"
#include "store/retention.h"
#include "store/storage_state.h"

void api_handle_status(nng_aio *aio)
{
	static const char *const known[] = {NULL};
	json_t *storage, *events = NULL;
	vigil_err err = {0};
	struct api_query q;

	if (!api_begin(aio, known, &q))
		return;
	storage = storage_state_json();
	if (storage == NULL) {
		api_respond_error(aio, 500, "out of memory");
		return;
	}
	if (store_events_storage(api_store(aio), &events, &err) < 0) {
		json_object_set_new(storage, "events", json_null());
		json_object_set_new(storage, "events_error", json_string(err.msg));
	} else {
		json_object_set_new(storage, "events", events);
		json_object_set_new(storage, "events_error", json_null());
	}
	json_object_set_new(storage, "retention", storage_state_retention());
	api_respond_json(aio, 200, json_pack("{s:o}", "storage", storage));
}
