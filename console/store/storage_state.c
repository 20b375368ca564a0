/* SPDX-License-Identifier: Apache-2.0 */
/* Whether the database's disk takes data (storage_state.h). */
#include "store/storage_state.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct storage_status status;
static json_t *retention_settings, *retention_run;

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void storage_state_full(const char *detail)
{
	pthread_mutex_lock(&lock);
	if (status.state != STORAGE_FULL) {
		status.state = STORAGE_FULL;
		status.since_ms = wall_ms();
		status.refused = 0;
		status.full_for_ms = 0;
		status.changes++;
	}
	snprintf(status.detail, sizeof(status.detail), "%s",
		 detail != NULL ? detail : "no space left on the database's disk");
	pthread_mutex_unlock(&lock);
}

void storage_state_ok(void)
{
	pthread_mutex_lock(&lock);
	if (status.state == STORAGE_FULL) {
		int64_t now = wall_ms();

		status.full_for_ms = now - status.since_ms;
		status.state = STORAGE_OK;
		status.since_ms = now;
		status.changes++;
	}
	pthread_mutex_unlock(&lock);
}

void storage_state_refused(void)
{
	pthread_mutex_lock(&lock);
	if (status.state == STORAGE_FULL)
		status.refused++;
	pthread_mutex_unlock(&lock);
}

bool storage_state_is_full(void)
{
	bool full;

	pthread_mutex_lock(&lock);
	full = status.state == STORAGE_FULL;
	pthread_mutex_unlock(&lock);
	return full;
}

void storage_state_get(struct storage_status *ret_status)
{
	pthread_mutex_lock(&lock);
	*ret_status = status;
	pthread_mutex_unlock(&lock);
}

/* ms since 1970 as RFC 3339 UTC with milliseconds. */
static json_t *json_time(int64_t ms)
{
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;
	char text[96];

	gmtime_r(&sec, &tm);
	snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	return json_string(text);
}

json_t *storage_state_json(void)
{
	struct storage_status s;
	json_t *o;

	storage_state_get(&s);
	o = json_pack("{s:s,s:I}", "state", s.state == STORAGE_FULL ? "full" : "ok",
		      "batches_refused", (json_int_t)s.refused);
	if (o == NULL)
		return NULL;
	json_object_set_new(o, "since", s.since_ms > 0 ? json_time(s.since_ms) : json_null());
	json_object_set_new(o, "detail",
			    s.state == STORAGE_FULL ? json_string(s.detail) : json_null());
	return o;
}

void storage_state_set_retention_settings(json_t *settings)
{
	pthread_mutex_lock(&lock);
	json_decref(retention_settings);
	retention_settings = settings;
	pthread_mutex_unlock(&lock);
}

void storage_state_set_retention_run(json_t *run)
{
	pthread_mutex_lock(&lock);
	json_decref(retention_run);
	retention_run = run;
	pthread_mutex_unlock(&lock);
}

json_t *storage_state_retention(void)
{
	json_t *o;

	pthread_mutex_lock(&lock);
	/* Deep copies: the objects may be replaced while the caller dumps them. */
	o = json_pack("{s:o,s:o}", "settings",
		      retention_settings != NULL ? json_deep_copy(retention_settings) : json_null(),
		      "last_run",
		      retention_run != NULL ? json_deep_copy(retention_run) : json_null());
	pthread_mutex_unlock(&lock);
	return o;
}
