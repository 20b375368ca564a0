/* SPDX-License-Identifier: Apache-2.0 */
#include "metrics/metrics_http.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "prom.h"

struct metrics_http {
	int lfd;
	int wake; /* eventfd: metrics_http_stop ends a wait at once */
	uint16_t port;
	pthread_t thread;
	atomic_bool stop;
	_Atomic uint64_t counts[METRICS_HTTP_NRESULTS];
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Wait until fd is ready for events or deadline passes; 1 ready, 0 timed out
 * or stopping (the caller gives the connection up either way).
 */
static int wait_fd(struct metrics_http *m, int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p[2] = {{fd, events, 0}, {m->wake, POLLIN, 0}};
		int64_t left = deadline - now_ms();
		int n;

		if (left <= 0 || atomic_load(&m->stop))
			return 0;
		n = poll(p, 2, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || (p[1].revents & POLLIN))
			return 0;
		return 1;
	}
}

/* The end of the request's head ("\r\n\r\n", or bare "\n\n"), or NULL. */
static const char *head_end(const char *buf, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (buf[i] == '\n' && buf[i + 1] == '\n')
			return buf + i + 2;
		if (i + 3 < len && memcmp(buf + i, "\r\n\r\n", 4) == 0)
			return buf + i + 4;
	}
	return NULL;
}

/*
 * Read the request's head into buf (NUL-terminated).  Returns its length,
 * -E2BIG when it does not fit, -ETIMEDOUT when it did not come whole in
 * time, -ECONNRESET when the client went away first.
 */
static int read_head(struct metrics_http *m, int fd, char *buf, size_t size)
{
	int64_t deadline = now_ms() + METRICS_HTTP_REQUEST_MS;
	size_t len = 0;

	while (head_end(buf, len) == NULL) {
		ssize_t n;

		if (len == size - 1)
			return -E2BIG;
		if (!wait_fd(m, fd, POLLIN, deadline))
			return -ETIMEDOUT;
		n = recv(fd, buf + len, size - 1 - len, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return -ECONNRESET;
		len += (size_t)n;
		buf[len] = '\0';
	}
	return (int)len;
}

/*
 * What the request line asks: METHOD SP TARGET SP HTTP/1.x.  Sets *head for
 * HEAD (no body in the answer).
 */
static enum metrics_http_result route(const char *req, bool *head)
{
	const char *sp1 = strchr(req, ' '), *sp2, *eol;
	size_t mlen, tlen;

	eol = strpbrk(req, "\r\n");
	if (sp1 == NULL || eol == NULL || sp1 > eol)
		return METRICS_HTTP_BAD;
	sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
	if (sp2 == NULL || (size_t)(eol - sp2 - 1) != 8 ||
	    (memcmp(sp2 + 1, "HTTP/1.1", 8) != 0 && memcmp(sp2 + 1, "HTTP/1.0", 8) != 0))
		return METRICS_HTTP_BAD;
	mlen = (size_t)(sp1 - req);
	tlen = (size_t)(sp2 - sp1 - 1);
	if (mlen == 0 || tlen == 0 || sp1[1] != '/')
		return METRICS_HTTP_BAD;
	for (size_t i = 0; i < mlen; i++)
		if (req[i] < 'A' || req[i] > 'Z')
			return METRICS_HTTP_BAD;
	*head = mlen == 4 && memcmp(req, "HEAD", 4) == 0;
	if (!*head && !(mlen == 3 && memcmp(req, "GET", 3) == 0))
		return METRICS_HTTP_BAD_METHOD;
	/* The query string is Prometheus' business (it may add one); the path is ours. */
	if ((tlen == 8 || (tlen > 8 && sp1[9] == '?')) && memcmp(sp1 + 1, "/metrics", 8) == 0)
		return METRICS_HTTP_OK;
	return METRICS_HTTP_NOT_FOUND;
}

/* Send all of buf by the deadline; false when the client did not take it. */
static bool send_all(struct metrics_http *m, int fd, const char *buf, size_t len, int64_t deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (!wait_fd(m, fd, POLLOUT, deadline))
				return false;
			continue;
		}
		if (n <= 0)
			return false;
		buf += n;
		len -= (size_t)n;
	}
	return true;
}

static void answer(struct metrics_http *m, int fd, enum metrics_http_result r, bool head)
{
	static const char *const status[] = {
	    [METRICS_HTTP_OK] = "200 OK",
	    [METRICS_HTTP_NOT_FOUND] = "404 Not Found",
	    [METRICS_HTTP_BAD_METHOD] = "405 Method Not Allowed",
	    [METRICS_HTTP_BAD] = "400 Bad Request",
	    [METRICS_HTTP_TOO_LARGE] = "431 Request Header Fields Too Large",
	};
	int64_t deadline = now_ms() + METRICS_HTTP_SEND_MS;
	struct prom_buf b;
	const char *body;
	char hdr[512];
	size_t blen;
	int n;

	prom_buf_init(&b, METRICS_HTTP_BODY_MAX);
	if (r == METRICS_HTTP_OK) {
		prom_collect(&b);
		body = b.text != NULL ? b.text : "";
		blen = b.len;
	} else {
		body = r == METRICS_HTTP_NOT_FOUND    ? "only /metrics is served here\n"
		       : r == METRICS_HTTP_BAD_METHOD ? "only GET and HEAD\n"
						      : "bad request\n";
		blen = strlen(body);
	}
	n = snprintf(hdr, sizeof(hdr),
		     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		     "Cache-Control: no-store\r\n%sConnection: close\r\n\r\n",
		     status[r], r == METRICS_HTTP_OK ? PROM_CONTENT_TYPE : "text/plain", blen,
		     r == METRICS_HTTP_BAD_METHOD ? "Allow: GET, HEAD\r\n" : "");
	if (send_all(m, fd, hdr, (size_t)n, deadline) && !head)
		send_all(m, fd, body, blen, deadline);
	prom_buf_fini(&b);
}

/*
 * Close after the answer without losing it: a close with unread bytes
 * (a pipelined second request) would reset the connection and could cut
 * the answer short on the client.  Read what is left for a moment first.
 */
static void close_gently(struct metrics_http *m, int fd)
{
	int64_t deadline = now_ms() + 200;
	char sink[512];

	shutdown(fd, SHUT_WR);
	while (wait_fd(m, fd, POLLIN, deadline) && recv(fd, sink, sizeof(sink), 0) > 0)
		;
	close(fd);
}

static void serve(struct metrics_http *m, int fd)
{
	char buf[METRICS_HTTP_REQUEST_MAX + 1];
	enum metrics_http_result r;
	bool head = false;
	int len = read_head(m, fd, buf, sizeof(buf));

	if (len == -ETIMEDOUT || len == -ECONNRESET) {
		atomic_fetch_add(&m->counts[METRICS_HTTP_TIMEOUT], 1);
		close(fd);
		return;
	}
	r = len == -E2BIG ? METRICS_HTTP_TOO_LARGE : route(buf, &head);
	atomic_fetch_add(&m->counts[r], 1);
	answer(m, fd, r, head);
	close_gently(m, fd);
}

static void *serve_main(void *arg)
{
	struct metrics_http *m = arg;

	while (!atomic_load(&m->stop)) {
		struct pollfd p[2] = {{m->lfd, POLLIN, 0}, {m->wake, POLLIN, 0}};
		int fd;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents & POLLIN)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(m->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			/* Out of descriptors: do not spin on a connection we cannot take. */
			if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) {
				struct timespec ts = {0, 100 * 1000 * 1000};

				nanosleep(&ts, NULL);
			}
			continue;
		}
		serve(m, fd);
	}
	return NULL;
}

struct metrics_http *metrics_http_start(const struct sockaddr *addr, socklen_t len, vigil_err *err)
{
	struct metrics_http *m = calloc(1, sizeof(*m));
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	int one = 1, rc;

	if (m == NULL) {
		verr_set(err, -ENOMEM, "metrics: out of memory");
		errno = ENOMEM;
		return NULL;
	}
	m->lfd = m->wake = -1;
	if ((m->lfd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(m->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(m->lfd, addr, len) < 0 || listen(m->lfd, 16) < 0 ||
	    getsockname(m->lfd, (struct sockaddr *)&bound, &blen) < 0) {
		rc = errno;
		verr_set(err, -rc, "cannot listen for metrics: %s%s", strerror(rc),
			 rc == EADDRINUSE ? " (another process has the port)" : "");
		goto fail;
	}
	m->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
						    : ((struct sockaddr_in *)&bound)->sin_port);
	if ((m->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		rc = errno;
		verr_set(err, -rc, "metrics: eventfd: %s", strerror(rc));
		goto fail;
	}
	if ((rc = pthread_create(&m->thread, NULL, serve_main, m)) != 0) {
		verr_set(err, -rc, "metrics: cannot start its thread: %s", strerror(rc));
		goto fail;
	}
	return m;
fail:
	if (m->lfd >= 0)
		close(m->lfd);
	if (m->wake >= 0)
		close(m->wake);
	free(m);
	errno = rc;
	return NULL;
}

uint16_t metrics_http_port(const struct metrics_http *m)
{
	return m->port;
}

void metrics_http_counts(const struct metrics_http *m, uint64_t out[METRICS_HTTP_NRESULTS])
{
	for (int i = 0; i < METRICS_HTTP_NRESULTS; i++)
		out[i] = atomic_load(&m->counts[i]);
}

void metrics_http_stop(struct metrics_http *m)
{
	uint64_t one = 1;

	if (m == NULL)
		return;
	atomic_store(&m->stop, true);
	if (write(m->wake, &one, sizeof(one)) < 0) {
		/* An eventfd write fails only on overflow: it is already signalled. */
	}
	pthread_join(m->thread, NULL);
	close(m->lfd);
	close(m->wake);
	free(m);
}
