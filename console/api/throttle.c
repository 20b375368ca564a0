/* SPDX-License-Identifier: Apache-2.0 */
/* Failures per key in a window, in a bounded table (throttle.h). */
#include "api/throttle.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct throttle_entry {
	char key[THROTTLE_KEY_MAX];
	int64_t first; /* the window's first failure */
	int64_t last;  /* the last failure (eviction takes the oldest) */
	unsigned fails;
	bool used;
};

struct throttle {
	pthread_mutex_t lock; /* guards everything below */
	size_t max_keys;
	unsigned max_fails;
	int64_t window_s;
	const char *what;
	uint64_t refused, evicted;
	struct throttle_entry e[];
};

struct throttle *throttle_new(size_t max_keys, unsigned max_fails, int64_t window_s,
			      const char *what)
{
	struct throttle *t;

	if (max_keys == 0 || (t = calloc(1, sizeof(*t) + max_keys * sizeof(t->e[0]))) == NULL)
		return NULL;
	pthread_mutex_init(&t->lock, NULL);
	t->max_keys = max_keys;
	t->max_fails = max_fails;
	t->window_s = window_s;
	t->what = what;
	return t;
}

void throttle_free(struct throttle *t)
{
	if (t == NULL)
		return;
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* key's entry, or NULL.  Lock held. */
static struct throttle_entry *find(struct throttle *t, const char *key)
{
	for (size_t i = 0; i < t->max_keys; i++)
		if (t->e[i].used && strncmp(t->e[i].key, key, THROTTLE_KEY_MAX - 1) == 0)
			return &t->e[i];
	return NULL;
}

/* A slot for key: a free one, else the one that failed least recently.  Lock held. */
static struct throttle_entry *take(struct throttle *t, const char *key, int64_t now)
{
	struct throttle_entry *e = NULL;

	for (size_t i = 0; i < t->max_keys && (e == NULL || e->used); i++)
		if (e == NULL || !t->e[i].used || t->e[i].last < e->last)
			e = &t->e[i];
	if (e->used) {
		t->evicted++;
		if (t->evicted == 1 || t->evicted % 1000 == 0)
			log_warn(
			    "%s: %zu keys are remembered; the oldest dropped for room (%" PRIu64
			    " so far)",
			    t->what, t->max_keys, t->evicted);
	}
	*e = (struct throttle_entry){.first = now, .last = now, .used = true};
	snprintf(e->key, sizeof(e->key), "%s", key);
	return e;
}

int64_t throttle_begin(struct throttle *t, const char *const *keys, int n, int64_t now)
{
	int64_t wait = 0;
	struct throttle_entry *e;

	pthread_mutex_lock(&t->lock);
	for (int i = 0; i < n; i++) {
		if ((e = find(t, keys[i])) == NULL)
			continue;
		if (now - e->first >= t->window_s)
			e->used = false; /* its window has passed: a new one starts */
		else if (e->fails >= t->max_fails && e->first + t->window_s - now > wait)
			wait = e->first + t->window_s - now;
	}
	if (wait > 0) {
		t->refused++;
		pthread_mutex_unlock(&t->lock);
		return wait;
	}
	for (int i = 0; i < n; i++) {
		if ((e = find(t, keys[i])) == NULL)
			e = take(t, keys[i], now);
		e->fails++;
		e->last = now;
	}
	pthread_mutex_unlock(&t->lock);
	return 0;
}

void throttle_refund(struct throttle *t, const char *key)
{
	struct throttle_entry *e;

	pthread_mutex_lock(&t->lock);
	if ((e = find(t, key)) != NULL && e->fails > 0)
		e->fails--;
	pthread_mutex_unlock(&t->lock);
}

void throttle_forget(struct throttle *t, const char *key)
{
	struct throttle_entry *e;

	pthread_mutex_lock(&t->lock);
	if ((e = find(t, key)) != NULL)
		e->used = false;
	pthread_mutex_unlock(&t->lock);
}

void throttle_counts(struct throttle *t, uint64_t *ret_refused, uint64_t *ret_evicted)
{
	pthread_mutex_lock(&t->lock);
	*ret_refused = t->refused;
	*ret_evicted = t->evicted;
	pthread_mutex_unlock(&t->lock);
}
