/* SPDX-License-Identifier: Apache-2.0 */
/* The API's worker threads and their bounded queue (see api_pool.h). */
#include "api/api_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

/* Input slot of a handler's aio that carries the worker's store (nng's server uses 0..2). */
#define POOL_STORE_INPUT 3

struct pool_job {
	api_pool_fn fn;
	nng_aio *aio;
};

struct pool_worker {
	struct api_pool *pool;
	struct store *st;
	pthread_t thread;
	bool started;
};

struct api_pool {
	pthread_mutex_t lock; /* guards the queue, stopping and refused */
	pthread_cond_t cv;    /* a job was queued, or stopping */
	struct pool_job queue[API_POOL_QUEUE_MAX];
	int head, len;
	bool stopping;
	uint64_t refused;
	int nworkers;
	struct pool_worker workers[];
};

static void *worker_main(void *arg)
{
	struct pool_worker *w = arg;
	struct api_pool *p = w->pool;

	for (;;) {
		struct pool_job job;

		pthread_mutex_lock(&p->lock);
		while (p->len == 0 && !p->stopping)
			pthread_cond_wait(&p->cv, &p->lock);
		if (p->len == 0) {
			/* Stopping, and nothing is left to answer. */
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		job = p->queue[p->head];
		p->head = (p->head + 1) % API_POOL_QUEUE_MAX;
		p->len--;
		pthread_mutex_unlock(&p->lock);
		nng_aio_set_input(job.aio, POOL_STORE_INPUT, w->st);
		job.fn(job.aio);
	}
}

struct api_pool *api_pool_start(const char *dsn, int nworkers, int timeout_ms, vigil_err *err)
{
	struct api_pool *p;
	int rc;

	if (nworkers < 1 || nworkers > API_POOL_WORKERS_MAX) {
		errno = EINVAL;
		verr_set(err, -EINVAL, "API workers must be 1 to %d, not %d", API_POOL_WORKERS_MAX,
			 nworkers);
		return NULL;
	}
	p = calloc(1, sizeof(*p) + (size_t)nworkers * sizeof(p->workers[0]));
	if (p == NULL) {
		errno = ENOMEM;
		verr_set(err, -ENOMEM, "out of memory starting the API workers");
		return NULL;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cv, NULL);
	for (int i = 0; i < nworkers; i++) {
		struct pool_worker *w = &p->workers[i];

		p->nworkers = i + 1;
		w->pool = p;
		if ((w->st = store_open(dsn, err)) == NULL) {
			rc = -errno;
			goto fail;
		}
		if ((rc = store_set_statement_timeout(w->st, timeout_ms, err)) < 0)
			goto fail;
		if ((rc = pthread_create(&w->thread, NULL, worker_main, w)) != 0) {
			rc = verr_set(err, -rc, "cannot start an API worker: %s", strerror(rc));
			goto fail;
		}
		w->started = true;
	}
	return p;
fail:
	api_pool_stop(p);
	errno = -rc;
	return NULL;
}

int api_pool_submit(struct api_pool *p, api_pool_fn fn, nng_aio *aio)
{
	int rc = 0;

	pthread_mutex_lock(&p->lock);
	if (p->len == API_POOL_QUEUE_MAX || p->stopping) {
		p->refused++;
		rc = -ENOSPC;
	} else {
		p->queue[(p->head + p->len) % API_POOL_QUEUE_MAX] = (struct pool_job){fn, aio};
		p->len++;
		pthread_cond_signal(&p->cv);
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}

struct store *api_pool_store(nng_aio *aio)
{
	return nng_aio_get_input(aio, POOL_STORE_INPUT);
}

uint64_t api_pool_refused(struct api_pool *p)
{
	uint64_t n;

	pthread_mutex_lock(&p->lock);
	n = p->refused;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void api_pool_stop(struct api_pool *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->nworkers; i++) {
		if (p->workers[i].started)
			pthread_join(p->workers[i].thread, NULL);
		store_close(p->workers[i].st);
	}
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
