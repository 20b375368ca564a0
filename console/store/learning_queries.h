/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_LEARNING_QUERIES_H
#define VIGIL_CONSOLE_LEARNING_QUERIES_H

/*
 * Read side of the learning data for the API: models and the activity log.
 * Results are new JSON values the caller json_decref's; times are RFC 3339
 * UTC text with microseconds.  Every filter is a parameter; NULL / 0 fields
 * match everything.  Each function takes the store's lock.
 */

#include <jansson.h>
#include <stdint.h>

#include "error.h"
#include "store/store.h"

/* Entries returned by store_model_get; a larger model says "truncated": true. */
#define MODEL_ENTRIES_SHOWN_MAX 100000

struct model_filter {
	const char *host_id;
	const char *service;
	const char *state;
	int64_t before_id; /* paging: only models with a smaller id */
	int limit;	   /* 1..1000, default 100 */
};

/*
 * Models matching f, newest id first: an array of {id, host, service, state,
 * learning_since, active_since (null unless active), learn_drops, note,
 * entries (how many), relearn_pending, updated_at}.
 */
int store_models_list(struct store *st, const struct model_filter *f, json_t **ret, vigil_err *err);

/*
 * One model: the fields of store_models_list plus "sections": [{exe,
 * entries: [{kind, pattern, first_seen, last_seen, count}]}], sections by
 * exe and entries by kind then pattern (byte order), and "truncated".
 * -ENOENT for an unknown id.  Read in one snapshot, so the count and the
 * sections agree.
 */
int store_model_get(struct store *st, int64_t id, json_t **ret, vigil_err *err);

struct activity_filter {
	const char *host_id;
	const char *user;
	int64_t session; /* -1: any */
	const char *since, *until;
	const char *text; /* rows whose summary holds it, any case; NULL: all */
	int64_t before_id;
	int limit; /* 1..1000, default 100 */
};

/*
 * Activity rows matching f, newest first: [{id, host, ts, session, user,
 * tty, pid, type, summary, event}], event being the captured event's JSON.
 * -EINVAL for a time the database cannot read.
 */
int store_activity_list(struct store *st, const struct activity_filter *f, json_t **ret,
			vigil_err *err);

/*
 * The sessions of the activity rows matching f (host, user, since, until;
 * text: sessions with at least one such row; session ignored), the one
 * with the newest row first: [{host, session, user, tty, first_ts,
 * last_ts, commands (exec rows), events, last_id}] — counts over the rows
 * in the window.  Paging: before_id is the last_id of the previous page.
 */
int store_activity_sessions(struct store *st, const struct activity_filter *f, json_t **ret,
			    vigil_err *err);

#endif
