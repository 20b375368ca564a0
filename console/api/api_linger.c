/* SPDX-License-Identifier: Apache-2.0 */
/* Answers to "Connection: close" requests, closed only after the client (see api_linger.h). */
#include "api/api_linger.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One answer being written, then lingered over. */
struct linger_conn {
	struct api_linger *lg;
	nng_aio *handler;    /* the server's aio for the request, finished once, by end() */
	nng_http_conn *conn; /* valid until handler is finished (the server frees it later) */
	nng_aio *rd, *wr;    /* our read (the client's close) and write (the answer) */
	char *text;	     /* the whole answer */
	size_t len;
	char buf[1024];	  /* what the client sends after its request, dropped */
	int64_t deadline; /* monotonic ms: when we stop waiting for the client */
	bool rd_busy, wr_busy;
	bool written;	    /* the answer is written whole (into nng's TLS buffer) */
	bool client_closed; /* our read failed: the client closed (or the connection did) */
	bool finished;	    /* handler finished: nng's server closes conn, we touch it no more */
	bool on_done;	    /* moved from live to done */
	struct linger_conn *prev, *next; /* on live, then on done (next only) */
};

struct api_linger {
	pthread_mutex_t lock; /* guards everything here and in each linger_conn */
	pthread_cond_t cv;    /* a deadline moved, a connection is done, or stopping */
	pthread_t thread;
	struct linger_conn *live; /* answers not yet ended, or with an operation pending */
	struct linger_conn *done; /* ended with nothing pending: for the thread to free */
	bool stopping;
	struct api_linger_stats stats;
};

enum outcome { CLIENT_CLOSED, AT_DEADLINE, WRITE_FAILED };

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Caller holds the lock.  Once ended with nothing pending, hand c to the thread to free. */
static void check_done(struct linger_conn *c)
{
	struct api_linger *lg = c->lg;

	if (!c->finished || c->rd_busy || c->wr_busy || c->on_done)
		return;
	c->on_done = true;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		lg->live = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = NULL;
	c->next = lg->done;
	lg->done = c;
	pthread_cond_broadcast(&lg->cv);
}

/*
 * Caller holds the lock.  Finish the server's aio without a response: the
 * request "asked to close", so nng's server closes the connection
 * (http_sconn_cbdone -> http_sconn_close), closing the stream *before* it
 * waits for the connection's operations (http_sc_close_locked, then the
 * reaper).  That order matters: in nng 1.5.2 a TLS read queued after the
 * stream failed never completes and cannot be cancelled (tls_recv queues it
 * although tls_tcp_error closed the TCP aios; conn->closed is never set), so
 * nng_http_conn_close, which waits first and closes after, would hang on it.
 * Our pending read and write fail with the close and come back to us.
 */
static void end(struct linger_conn *c, enum outcome why)
{
	struct api_linger *lg = c->lg;

	if (c->finished)
		return;
	c->finished = true;
	c->conn = NULL;
	if (why == CLIENT_CLOSED)
		lg->stats.client_closed++;
	else if (why == AT_DEADLINE)
		lg->stats.at_deadline++;
	else
		lg->stats.write_failed++;
	nng_aio_set_output(c->handler, 0, NULL);
	nng_aio_finish(c->handler, 0);
	check_done(c);
}

/* Caller holds the lock, c not finished: read whatever the client sends, until it closes. */
static void read_more(struct linger_conn *c)
{
	nng_iov iov = {.iov_buf = c->buf, .iov_len = sizeof(c->buf)};

	c->rd_busy = true;
	nng_aio_set_iov(c->rd, 1, &iov);
	nng_http_conn_read(c->conn, c->rd);
}

/* On an nng thread: never blocks. */
static void rd_cb(void *arg)
{
	struct linger_conn *c = arg;
	int rv = nng_aio_result(c->rd);

	pthread_mutex_lock(&c->lg->lock);
	c->rd_busy = false;
	if (rv == 0 && !c->finished) {
		read_more(c); /* nothing is due after "close"; dropped */
	} else if (rv != 0) {
		/*
		 * The client closed (or the connection failed).  A client closes
		 * after it has read the whole answer, so nothing is left in our
		 * buffers (before that, it went away).  Wait for the write's
		 * callback if it is still on its way; the close fails the write
		 * if it was not done (nng's http_rd_cb closes the connection).
		 */
		c->client_closed = true;
		if (!c->wr_busy)
			end(c, CLIENT_CLOSED);
	}
	check_done(c);
	pthread_mutex_unlock(&c->lg->lock);
}

static void wr_cb(void *arg)
{
	struct linger_conn *c = arg;
	int rv = nng_aio_result(c->wr);

	pthread_mutex_lock(&c->lg->lock);
	c->wr_busy = false;
	if (c->client_closed) {
		/* Often the write's success, reported late as ECLOSED by the close. */
		end(c, CLIENT_CLOSED);
	} else if (rv != 0) {
		end(c, WRITE_FAILED);
	} else if (!c->finished) {
		/* Written into nng's TLS buffer: now wait for the client to close. */
		c->written = true;
		c->deadline = now_ms() + API_LINGER_MS;
		pthread_cond_broadcast(&c->lg->cv);
	}
	check_done(c);
	pthread_mutex_unlock(&c->lg->lock);
}

static void conn_free(struct linger_conn *c)
{
	/* Both wait for their callbacks to have returned; nothing is pending. */
	nng_aio_free(c->rd);
	nng_aio_free(c->wr);
	free(c->text);
	free(c);
}

/*
 * Ends the answers whose deadline passed (the only timer: aio timeouts on a
 * TLS stream are unreliable in nng 1.5.2) and frees the finished ones, until
 * stopped with none left.
 */
static void *linger_main(void *arg)
{
	struct api_linger *lg = arg;

	pthread_mutex_lock(&lg->lock);
	for (;;) {
		int64_t now = now_ms(), next = now + 1000;
		struct linger_conn *list;

		for (struct linger_conn *c = lg->live, *n; c != NULL; c = n) {
			n = c->next; /* end() may move c to done */
			if (c->finished)
				continue;
			if (lg->stopping || c->deadline <= now)
				end(c, c->written ? AT_DEADLINE : WRITE_FAILED);
			else if (c->deadline < next)
				next = c->deadline;
		}
		if (lg->done != NULL) {
			list = lg->done;
			lg->done = NULL;
			pthread_mutex_unlock(&lg->lock);
			while (list != NULL) {
				struct linger_conn *n = list->next;

				conn_free(list);
				list = n;
			}
			pthread_mutex_lock(&lg->lock);
			continue;
		}
		if (lg->stopping && lg->live == NULL)
			break;
		struct timespec until;

		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += (time_t)((next - now) / 1000);
		until.tv_nsec += (long)((next - now) % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&lg->cv, &lg->lock, &until);
	}
	pthread_mutex_unlock(&lg->lock);
	return NULL;
}

struct api_linger *api_linger_new(vigil_err *err)
{
	struct api_linger *lg = calloc(1, sizeof(*lg));
	pthread_condattr_t ca;
	int rc;

	if (lg == NULL) {
		verr_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&lg->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&lg->cv, &ca);
	pthread_condattr_destroy(&ca);
	if ((rc = pthread_create(&lg->thread, NULL, linger_main, lg)) != 0) {
		verr_set(err, -rc, "cannot start the API's linger thread: %s", strerror(rc));
		pthread_cond_destroy(&lg->cv);
		pthread_mutex_destroy(&lg->lock);
		free(lg);
		return NULL;
	}
	return lg;
}

bool api_linger_wanted(nng_aio *aio)
{
	nng_http_req *req = nng_aio_get_input(aio, 0);
	const char *version = nng_http_req_get_version(req);
	const char *conn = nng_http_req_get_header(req, "Connection");

	/* The same test as nng's server (http_sconn_rxdone), so we take exactly what it would
	 * close. */
	return version == NULL || strcmp(version, "HTTP/1.1") != 0 ||
	       (conn != NULL && strcasestr(conn, "close") != NULL);
}

void api_linger_answer(struct api_linger *lg, nng_aio *aio, char *text, size_t len)
{
	struct linger_conn *c = calloc(1, sizeof(*c));
	nng_iov iov = {.iov_buf = text, .iov_len = len};

	if (c == NULL || nng_aio_alloc(&c->rd, rd_cb, c) != 0 ||
	    nng_aio_alloc(&c->wr, wr_cb, c) != 0) {
		if (c != NULL) {
			nng_aio_free(c->rd);
			nng_aio_free(c->wr);
		}
		free(c);
		free(text);
		pthread_mutex_lock(&lg->lock);
		lg->stats.dropped++;
		pthread_mutex_unlock(&lg->lock);
		nng_aio_finish(aio, NNG_ENOMEM); /* nng's server closes the connection */
		return;
	}
	c->lg = lg;
	c->handler = aio;
	c->conn = nng_aio_get_input(aio, 2);
	c->text = text;
	c->len = len;
	c->deadline = now_ms() + API_LINGER_WRITE_MS;
	pthread_mutex_lock(&lg->lock);
	c->next = lg->live;
	if (lg->live != NULL)
		lg->live->prev = c;
	lg->live = c;
	/*
	 * The read goes first, so that it is queued before the client can have
	 * the answer and close: a close that nng's TLS layer sees with no read
	 * queued fails the stream, and a read queued after that never returns
	 * (see end()); it would then wait for the deadline.
	 */
	read_more(c);
	c->wr_busy = true;
	nng_aio_set_iov(c->wr, 1, &iov);
	nng_http_conn_write_all(c->conn, c->wr);
	pthread_cond_broadcast(&lg->cv);
	pthread_mutex_unlock(&lg->lock);
}

/* A keep-alive answer being written by api_send_whole: freed by its write's callback. */
struct whole_write {
	nng_aio *handler; /* the request's aio: finished once the write is */
	nng_aio *wr;
	char *text;
};

static void whole_write_done(void *arg)
{
	struct whole_write *w = arg;

	/* No response set: nng's server takes it as answered; an error closes the connection. */
	nng_aio_finish(w->handler, nng_aio_result(w->wr));
	free(w->text);
	nng_aio_reap(w->wr); /* not nng_aio_free: we are in its callback */
	free(w);
}

void api_send_whole(nng_aio *aio, char *text, size_t len)
{
	struct whole_write *w = calloc(1, sizeof(*w));
	nng_iov iov = {.iov_buf = text, .iov_len = len};

	if (w == NULL || nng_aio_alloc(&w->wr, whole_write_done, w) != 0) {
		free(w);
		free(text);
		nng_aio_finish(aio, NNG_ENOMEM); /* nng's server closes the connection */
		return;
	}
	w->handler = aio;
	w->text = text;
	nng_aio_set_timeout(w->wr, API_LINGER_WRITE_MS);
	nng_aio_set_iov(w->wr, 1, &iov);
	nng_http_conn_write_all(nng_aio_get_input(aio, 2), w->wr);
}

void api_linger_stats(struct api_linger *lg, struct api_linger_stats *ret)
{
	pthread_mutex_lock(&lg->lock);
	*ret = lg->stats;
	pthread_mutex_unlock(&lg->lock);
}

void api_linger_free(struct api_linger *lg)
{
	if (lg == NULL)
		return;
	pthread_mutex_lock(&lg->lock);
	lg->stopping = true;
	pthread_cond_broadcast(&lg->cv);
	pthread_mutex_unlock(&lg->lock);
	pthread_join(lg->thread, NULL);
	pthread_cond_destroy(&lg->cv);
	pthread_mutex_destroy(&lg->lock);
	free(lg);
}
