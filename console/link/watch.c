/* SPDX-License-Identifier: Apache-2.0 */
/* Held rule-set watches (watch.h). */
#include "link/watch.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "log.h"
#include "wire_limits.h"

#define LABELS_MAX 32

struct watch {
	struct watchers *owner;
	nng_ctx ctx;
	nng_aio *aio;
	struct watch_hold h;
	uint64_t deadline_ms;
	bool push; /* due because a newer set is there (not its deadline) */
	struct watch *next;
};

struct watchers {
	struct rules_push *rp;
	watch_reply_fn reply;
	void *reply_ctx;
	pthread_mutex_t lock; /* guards parked, nparked, done */
	struct watch *parked, *done;
	size_t nparked;
	atomic_size_t sending; /* answers in flight: their callbacks still to come */
	atomic_bool stop;
	pthread_t thread;
	bool running;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void watch_free(struct watch *w)
{
	nng_ctx_close(w->ctx);
	nng_aio_free(w->aio);
	free(w->h.labels_json);
	free(w);
}

/* nng's callback once an answer went (or failed): freed by the thread, not here. */
static void on_sent(void *arg)
{
	struct watch *w = arg;
	struct watchers *ws = w->owner;

	if (nng_aio_result(w->aio) != 0)
		nng_msg_free(nng_aio_get_msg(w->aio));
	pthread_mutex_lock(&ws->lock);
	w->next = ws->done;
	ws->done = w;
	pthread_mutex_unlock(&ws->lock);
	atomic_fetch_sub(&ws->sending, 1);
}

size_t link_labels_from_json(const char *text, struct store_label *labels, size_t max,
			     json_t **ret_obj)
{
	json_t *obj = text != NULL ? json_loads(text, 0, NULL) : NULL, *v;
	const char *k;
	size_t n = 0;

	*ret_obj = obj;
	if (!json_is_object(obj))
		return 0;
	json_object_foreach(obj, k, v)
	{
		if (n == max || !json_is_string(v))
			break;
		labels[n].key = k;
		labels[n].value = json_string_value(v);
		n++;
	}
	return n;
}

/* Answer w: with the set held now when there is one for it, else empty. */
static void answer(struct watchers *ws, struct watch *w, bool with_set)
{
	struct store_label labels[LABELS_MAX];
	struct rules_compiled set = {0};
	bool have = false;
	json_t *lobj = NULL;
	nng_msg *m;

	if (with_set && ws->rp != NULL) {
		size_t n = link_labels_from_json(w->h.labels_json, labels, LABELS_MAX, &lobj);

		have = rules_push_compile(ws->rp, w->h.host_id, labels, n, &set) == 0 &&
		       set.bytes + set.n * 8 < VIGIL_MSG_MAX / 2;
		if (!have)
			rules_compiled_fini(&set);
	}
	m = ws->reply(w->h.seq, have ? &set : NULL, ws->reply_ctx);
	if (have) {
		log_debug("rule set version %lld pushed to host %s (it holds %lld)",
			  (long long)set.version, w->h.host_id, (long long)w->h.held);
		rules_compiled_fini(&set);
	}
	json_decref(lobj);
	if (m == NULL) {
		watch_free(w); /* out of memory: the defender's watch times out and comes again */
		return;
	}
	atomic_fetch_add(&ws->sending, 1);
	nng_aio_set_msg(w->aio, m);
	nng_ctx_send(w->ctx, w->aio);
}

/* Take out of the list what is due now (returned); *ret_done gets the answered ones to free. */
static struct watch *take_due(struct watchers *ws, int64_t version, uint64_t now, bool all,
			      struct watch **ret_done)
{
	struct watch *due = NULL, **pp;

	pthread_mutex_lock(&ws->lock);
	for (pp = &ws->parked; *pp != NULL;) {
		struct watch *w = *pp;
		bool newer = version > w->h.held && version != w->h.refused;

		if (all || newer || now >= w->deadline_ms) {
			*pp = w->next;
			w->next = due;
			due = w;
			ws->nparked--;
			/* Remember why: the set goes only to those a newer one is for. */
			w->push = newer;
		} else {
			pp = &w->next;
		}
	}
	*ret_done = ws->done;
	ws->done = NULL;
	pthread_mutex_unlock(&ws->lock);
	return due;
}

static void *watch_main(void *arg)
{
	struct watchers *ws = arg;

	for (;;) {
		struct timespec ts = {0, WATCH_POLL_MS * 1000000L};
		bool stop = atomic_load(&ws->stop);
		int64_t version = ws->rp != NULL ? rules_push_version(ws->rp) : 0;
		struct watch *done, *due = take_due(ws, version, mono_ms(), stop, &done);

		while (done != NULL) {
			struct watch *next = done->next;

			watch_free(done);
			done = next;
		}
		while (due != NULL) {
			struct watch *next = due->next;
			answer(ws, due, due->push && !stop);
			due = next;
		}
		if (stop)
			break;
		nanosleep(&ts, NULL);
	}
	return NULL;
}

struct watchers *watchers_start(struct rules_push *rp, watch_reply_fn reply, void *reply_ctx,
				vigil_err *err)
{
	struct watchers *ws = calloc(1, sizeof(*ws));

	if (ws == NULL) {
		verr_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	ws->rp = rp;
	ws->reply = reply;
	ws->reply_ctx = reply_ctx;
	pthread_mutex_init(&ws->lock, NULL);
	if (pthread_create(&ws->thread, NULL, watch_main, ws) != 0) {
		pthread_mutex_destroy(&ws->lock);
		free(ws);
		verr_set(err, -EAGAIN, "cannot start the rule-set watch thread");
		return NULL;
	}
	ws->running = true;
	return ws;
}

int watchers_park(struct watchers *ws, nng_ctx ctx, struct watch_hold *h)
{
	struct watch *w = calloc(1, sizeof(*w));
	size_t same = 0;

	if (w == NULL || nng_aio_alloc(&w->aio, on_sent, w) != 0) {
		free(w);
		return -ENOMEM;
	}
	w->owner = ws;
	w->ctx = ctx;
	w->h = *h;
	w->deadline_ms = mono_ms() + WATCH_HOLD_MS;
	pthread_mutex_lock(&ws->lock);
	for (struct watch *p = ws->parked; p != NULL && same < WATCH_PER_HOST; p = p->next)
		same += strcmp(p->h.host_id, h->host_id) == 0;
	if (ws->nparked >= WATCH_MAX || same >= WATCH_PER_HOST || atomic_load(&ws->stop)) {
		pthread_mutex_unlock(&ws->lock);
		nng_aio_free(w->aio);
		free(w);
		return -EBUSY;
	}
	w->next = ws->parked;
	ws->parked = w;
	ws->nparked++;
	pthread_mutex_unlock(&ws->lock);
	h->labels_json = NULL; /* ours now */
	return 0;
}

size_t watchers_parked(struct watchers *ws)
{
	size_t n;

	pthread_mutex_lock(&ws->lock);
	n = ws->nparked;
	pthread_mutex_unlock(&ws->lock);
	return n;
}

void watchers_stop(struct watchers *ws)
{
	struct watch *done;

	if (ws == NULL)
		return;
	atomic_store(&ws->stop, true);
	if (ws->running)
		pthread_join(ws->thread, NULL);
	/* Answers sent last: the socket is closed, their callbacks come at once. */
	for (int i = 0; i < 5000 && atomic_load(&ws->sending) > 0; i++) {
		struct timespec ts = {0, 1000000L};

		nanosleep(&ts, NULL);
	}
	if (atomic_load(&ws->sending) > 0) {
		/* A callback still to come would find freed memory: keep it (we are exiting). */
		log_warn("%zu rule-set watch answer(s) never completed", atomic_load(&ws->sending));
		return;
	}
	done = ws->done;
	while (done != NULL) {
		struct watch *next = done->next;

		watch_free(done);
		done = next;
	}
	pthread_mutex_destroy(&ws->lock);
	free(ws);
}
