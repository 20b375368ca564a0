/* SPDX-License-Identifier: Apache-2.0 */
/* The current rule set in memory, kept fresh by LISTEN vigil_rules (rules_push.h). */
#include "link/rules_push.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "link/rules_scope.h"
#include "log.h"
#include "rules/rule.h"
#include "store/host_rules.h"
#include "store/pg_listen.h"
#include "store/rules_store.h"

/* How long one wait on the LISTEN connection lasts: a stop is seen within it. */
#define RULES_PUSH_WAIT_MS 250
/* Between attempts to reconnect or to read the set again after a failure. */
#define RULES_PUSH_RETRY_MS 1000

struct rules_snapshot {
	atomic_int refs;
	int64_t version;
	size_t n;
	struct rule *rules;
	char **texts;
	size_t *lens;
};

struct rules_push {
	pthread_mutex_t lock; /* guards cur (the pointer; a snapshot never changes) */
	struct rules_snapshot *cur;
	atomic_int_fast64_t version;
	struct store *st; /* the thread's, for reading the set */
	struct pg_listen *listen;
	pthread_t thread;
	bool started;
	atomic_bool stop;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void snapshot_put(struct rules_snapshot *s)
{
	if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	for (size_t i = 0; i < s->n; i++) {
		rule_fini(&s->rules[i]);
		free(s->texts[i]);
	}
	free(s->rules);
	free(s->texts);
	free(s->lens);
	free(s);
}

/*
 * The rule set as store_rules_list gives it (rules with id and position) as
 * a new snapshot with one reference, each rule parsed again and written in
 * canonical form without id and position: what a defender gets.  NULL with
 * err when a stored rule does not parse (it was checked on the way in) or
 * out of memory.
 */
static struct rules_snapshot *snapshot_build(const json_t *rules, int64_t version, vigil_err *err)
{
	struct rules_snapshot *s = calloc(1, sizeof(*s));
	size_t n = json_array_size(rules);

	if (s == NULL)
		goto nomem;
	atomic_init(&s->refs, 1);
	s->version = version;
	if (n > 0 && ((s->rules = calloc(n, sizeof(*s->rules))) == NULL ||
		      (s->texts = calloc(n, sizeof(*s->texts))) == NULL ||
		      (s->lens = calloc(n, sizeof(*s->lens))) == NULL))
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		struct rule_error rerr;
		int rc;

		if (rule_from_json(json_array_get(rules, i), NULL, &s->rules[i], &rerr) < 0) {
			verr_set(err, -EINVAL,
				 "stored rule %zu of version %" PRId64 " does not parse: %s: %s",
				 i + 1, version, rerr.field, rerr.reason);
			snapshot_put(s);
			return NULL;
		}
		s->n++;
		if ((rc = rule_serialize(&s->rules[i], &s->texts[i], &s->lens[i])) < 0) {
			verr_set(err, rc, "stored rule %zu of version %" PRId64 ": %s", i + 1,
				 version, rc == -E2BIG ? "too large" : "out of memory");
			snapshot_put(s);
			return NULL;
		}
	}
	return s;
nomem:
	snapshot_put(s);
	verr_set(err, -ENOMEM, "out of memory");
	return NULL;
}

/* Read the set from the database and swap it in when it is not the one held. */
static int push_reload(struct rules_push *rp, vigil_err *err)
{
	struct rules_snapshot *s, *old;
	json_t *rules = NULL;
	int64_t version = 0;
	int rc;

	if ((rc = store_rules_list(rp->st, &rules, &version, err)) < 0)
		return rc;
	if (rp->cur != NULL && version == atomic_load(&rp->version)) {
		json_decref(rules);
		return 0;
	}
	s = snapshot_build(rules, version, err);
	json_decref(rules);
	if (s == NULL)
		return err->code;
	pthread_mutex_lock(&rp->lock);
	old = rp->cur;
	rp->cur = s;
	atomic_store(&rp->version, version);
	pthread_mutex_unlock(&rp->lock);
	if (old != NULL)
		log_info("rules: rule set version %" PRId64 " (%zu rule(s)) is current; defenders"
			 " holding an older one get it with their next heartbeat",
			 version, s->n);
	snapshot_put(old);
	return 0;
}

static void nap(struct rules_push *rp, int ms)
{
	uint64_t until = mono_ms() + (uint64_t)ms;

	while (!atomic_load(&rp->stop) && mono_ms() < until) {
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

static void *push_main(void *arg)
{
	struct rules_push *rp = arg;
	uint64_t last_check = mono_ms();
	bool down = false, reload_due = false;

	while (!atomic_load(&rp->stop)) {
		vigil_err err = {0};
		int64_t announced = 0, have;
		int ev = pg_listen_wait(rp->listen, RULES_PUSH_WAIT_MS, &announced, &err);

		if (ev < 0) {
			if (!down)
				log_warn(
				    "rules: not listening for rule changes (%s); retrying every"
				    " %d ms",
				    err.msg, RULES_PUSH_RETRY_MS);
			down = true;
			nap(rp, RULES_PUSH_RETRY_MS);
			continue;
		}
		if (ev == PG_LISTEN_CONNECTED) {
			if (down)
				log_info("rules: listening for rule changes again");
			down = false;
			reload_due = true; /* what was announced meanwhile is lost */
		}
		have = atomic_load(&rp->version);
		if (ev == PG_LISTEN_NOTIFIED && (announced == 0 || announced > have))
			reload_due = true;
		if (!reload_due && mono_ms() - last_check >= RULES_PUSH_CHECK_MS) {
			int64_t v = have;

			last_check = mono_ms();
			if (store_rules_current_version(rp->st, &v, &err) == 0 && v != have) {
				log_warn("rules: version %" PRId64 " was not announced to this"
					 " console (it holds %" PRId64 "); reading it",
					 v, have);
				reload_due = true;
			}
		}
		if (reload_due) {
			verr_clear(&err);
			if (push_reload(rp, &err) == 0) {
				reload_due = false;
				last_check = mono_ms();
			} else {
				log_warn("rules: cannot read the rule set (%s); retrying in %d ms",
					 err.msg, RULES_PUSH_RETRY_MS);
				nap(rp, RULES_PUSH_RETRY_MS);
			}
		}
	}
	return NULL;
}

struct rules_push *rules_push_start(const char *dsn, vigil_err *err)
{
	struct rules_push *rp = calloc(1, sizeof(*rp));
	int rc;

	if (rp == NULL) {
		verr_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&rp->lock, NULL);
	atomic_init(&rp->stop, false);
	/* LISTEN before the first read: a change in between is then announced, not missed. */
	if ((rp->listen = pg_listen_new(dsn, RULES_NOTIFY_CHANNEL, "vigil-console-rules",
					"rule changes")) == NULL) {
		verr_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	if ((rp->st = store_open(dsn, err)) == NULL || push_reload(rp, err) < 0)
		goto fail;
	if ((rc = pthread_create(&rp->thread, NULL, push_main, rp)) != 0) {
		verr_set(err, -rc, "cannot start the rules thread: %s", strerror(rc));
		goto fail;
	}
	rp->started = true;
	return rp;
fail:
	rules_push_stop(rp);
	return NULL;
}

int64_t rules_push_version(struct rules_push *rp)
{
	return atomic_load(&rp->version);
}

int rules_push_compile(struct rules_push *rp, const char *host_id, const struct store_label *labels,
		       size_t nlabels, struct rules_compiled *out)
{
	struct rules_snapshot *s;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&rp->lock);
	s = rp->cur;
	atomic_fetch_add(&s->refs, 1);
	pthread_mutex_unlock(&rp->lock);
	out->snap = s;
	out->version = s->version;
	out->total = s->n;
	if (s->n > 0 && (out->texts = calloc(s->n, sizeof(*out->texts))) == NULL) {
		rules_compiled_fini(out);
		return -ENOMEM;
	}
	for (size_t i = 0; i < s->n; i++) {
		if (!rules_scope_matches_host(&s->rules[i], host_id, labels, nlabels))
			continue;
		out->texts[out->n++] = s->texts[i];
		out->bytes += s->lens[i];
	}
	return 0;
}

void rules_compiled_fini(struct rules_compiled *c)
{
	free(c->texts);
	snapshot_put(c->snap);
	memset(c, 0, sizeof(*c));
}

void rules_push_stop(struct rules_push *rp)
{
	if (rp == NULL)
		return;
	atomic_store(&rp->stop, true);
	if (rp->started)
		pthread_join(rp->thread, NULL);
	pg_listen_free(rp->listen);
	store_close(rp->st);
	snapshot_put(rp->cur);
	pthread_mutex_destroy(&rp->lock);
	free(rp);
}
