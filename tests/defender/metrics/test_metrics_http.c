/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The metrics port's HTTP responder over real loopback sockets: what it
 * answers to good and hostile requests, that a client that sends nothing
 * holds it for the request deadline at most, and that a stop is prompt.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "metrics/metrics_http.h"
#include "prom.h"

static struct metrics_http *srv;
static int scrapes;

static void test_collect(struct prom_buf *b, void *arg)
{
	(void)arg;
	scrapes++;
	prom_family(b, "vigil_test_up", "gauge", "A test family");
	prom_sample(b, "vigil_test_up", NULL, 1);
}

static void setup(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	vigil_err err = {0};

	scrapes = 0;
	cr_assert_eq(prom_register(test_collect, NULL), 0);
	srv = metrics_http_start((struct sockaddr *)&sin, sizeof(sin), &err);
	cr_assert_not_null(srv, "%s", err.msg);
	cr_assert_gt(metrics_http_port(srv), 0);
}

static void teardown(void)
{
	metrics_http_stop(srv);
	srv = NULL;
	prom_unregister(test_collect, NULL);
}

TestSuite(metrics_http, .init = setup, .fini = teardown, .timeout = 60);

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int dial(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons(metrics_http_port(srv)),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0, "connect: %s",
		     strerror(errno));
	return fd;
}

/* Everything the server sends until it closes (at most 10 s); caller frees. */
static char *read_all(int fd)
{
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap);
	long long until = now_ms() + 10000;

	cr_assert_not_null(buf);
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		ssize_t n;

		cr_assert_gt(poll(&p, 1, (int)(until - now_ms())), 0, "the server did not close");
		n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
		cr_assert_lt(len, cap - 1);
	}
	buf[len] = '\0';
	return buf;
}

/* Send req on a new connection and return the whole answer. */
static char *exchange(const char *req, size_t len)
{
	int fd = dial();
	char *ans;

	cr_assert_eq(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
	ans = read_all(fd);
	close(fd);
	return ans;
}

static char *ask(const char *req)
{
	return exchange(req, strlen(req));
}

static void expect_status(const char *req, const char *status)
{
	char *ans = ask(req);

	cr_expect(strncmp(ans, status, strlen(status)) == 0, "%s -> %s", req, ans);
	cr_expect(strstr(ans, "Connection: close\r\n") != NULL);
	free(ans);
}

Test(metrics_http, get_metrics_answers_the_collectors_in_the_text_format)
{
	char *ans = ask("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n");
	const char *body = strstr(ans, "\r\n\r\n");

	cr_assert(strncmp(ans, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", ans);
	cr_expect(strstr(ans, "Content-Type: " PROM_CONTENT_TYPE "\r\n") != NULL, "%s", ans);
	cr_assert_not_null(body);
	body += 4;
	cr_expect_str_eq(body, "# HELP vigil_test_up A test family\n# TYPE vigil_test_up gauge\n"
			       "vigil_test_up 1\n");
	char want[64];
	snprintf(want, sizeof(want), "Content-Length: %zu\r\n", strlen(body));
	cr_expect(strstr(ans, want) != NULL, "%s", ans);
	free(ans);
	/* A query string is Prometheus' own; bare LF line ends are read too. */
	expect_status("GET /metrics?x=1 HTTP/1.0\n\n", "HTTP/1.1 200 OK");
}

Test(metrics_http, head_has_the_headers_and_no_body)
{
	char *ans = ask("HEAD /metrics HTTP/1.1\r\n\r\n");
	const char *end = strstr(ans, "\r\n\r\n");

	cr_assert(strncmp(ans, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", ans);
	cr_assert_not_null(end);
	cr_expect_str_eq(end + 4, "");
	free(ans);
}

Test(metrics_http, other_paths_methods_and_junk_are_refused_without_a_scrape)
{
	uint64_t c[METRICS_HTTP_NRESULTS];

	expect_status("GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 404");
	expect_status("GET /metricsx HTTP/1.1\r\n\r\n", "HTTP/1.1 404");
	expect_status("GET /metrics/../x HTTP/1.1\r\n\r\n", "HTTP/1.1 404");
	expect_status("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 405");
	expect_status("get /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 400");
	expect_status("GET /metrics HTTP/2.0\r\n\r\n", "HTTP/1.1 400");
	expect_status("GET metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 400");
	expect_status("GET  HTTP/1.1\r\n\r\n", "HTTP/1.1 400");
	expect_status("\r\n\r\n", "HTTP/1.1 400");
	/* A TLS ClientHello's first bytes (NULs inside), then line ends. */
	static const char tls[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n";
	char *ans = exchange(tls, sizeof(tls) - 1);
	cr_expect(strncmp(ans, "HTTP/1.1 400", 12) == 0, "%s", ans);
	free(ans);
	cr_expect_eq(scrapes, 0, "no collector ran for a refused request");
	metrics_http_counts(srv, c);
	cr_expect_eq(c[METRICS_HTTP_NOT_FOUND], 3);
	cr_expect_eq(c[METRICS_HTTP_BAD_METHOD], 1);
	cr_expect_eq(c[METRICS_HTTP_BAD], 6);
	cr_expect_eq(c[METRICS_HTTP_OK], 0);
}

Test(metrics_http, a_request_head_over_the_bound_gets_431)
{
	size_t len = METRICS_HTTP_REQUEST_MAX + 100;
	char *req = malloc(len);
	char *ans;

	cr_assert_not_null(req);
	memcpy(req, "GET /metrics HTTP/1.1\r\nX-Pad: ", 30);
	memset(req + 30, 'a', len - 30);
	ans = exchange(req, len);
	cr_expect(strncmp(ans, "HTTP/1.1 431", 12) == 0, "%.80s", ans);
	cr_expect_eq(scrapes, 0);
	free(ans);
	free(req);
}

Test(metrics_http, a_silent_client_is_dropped_at_the_deadline_and_others_are_served)
{
	int silent = dial();
	long long t0 = now_ms();
	char *ans;
	uint64_t c[METRICS_HTTP_NRESULTS];

	/* Queued behind the silent one, answered once the deadline ends it. */
	ans = ask("GET /metrics HTTP/1.1\r\n\r\n");
	long long waited = now_ms() - t0;
	cr_expect(strncmp(ans, "HTTP/1.1 200 OK", 15) == 0, "%s", ans);
	cr_expect_lt(waited, METRICS_HTTP_REQUEST_MS + 1500, "served after %lld ms", waited);
	free(ans);
	/* The silent one was closed without an answer. */
	ans = read_all(silent);
	cr_expect_str_eq(ans, "");
	free(ans);
	close(silent);
	metrics_http_counts(srv, c);
	cr_expect_eq(c[METRICS_HTTP_TIMEOUT], 1);
	cr_expect_eq(c[METRICS_HTTP_OK], 1);
}

Test(metrics_http, a_request_that_trickles_in_is_bounded_as_a_whole)
{
	int fd = dial();
	long long t0 = now_ms();
	char *ans;

	/* A byte every 300 ms: each read is quick, the whole is not. */
	for (int i = 0; i < 10; i++) {
		struct timespec ts = {0, 300 * 1000 * 1000};

		if (send(fd, "G", 1, MSG_NOSIGNAL) != 1)
			break;
		nanosleep(&ts, NULL);
	}
	ans = read_all(fd);
	cr_expect_str_eq(ans, "", "no answer to a request that never ended");
	cr_expect_lt(now_ms() - t0, METRICS_HTTP_REQUEST_MS + 1500);
	free(ans);
	close(fd);
}

Test(metrics_http, stop_is_prompt_with_a_client_connected)
{
	int fd = dial();
	long long t0;

	/* Give the server time to take the connection and wait for its request. */
	struct timespec ts = {0, 200 * 1000 * 1000};
	nanosleep(&ts, NULL);
	t0 = now_ms();
	metrics_http_stop(srv);
	srv = NULL;
	cr_expect_lt(now_ms() - t0, 500, "stop waited for the client");
	close(fd);
	/* teardown stops NULL: nothing left to do. */
}

Test(metrics_http, a_port_in_use_is_an_error_that_says_so)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons(metrics_http_port(srv)),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	vigil_err err = {0};

	cr_assert_null(metrics_http_start((struct sockaddr *)&sin, sizeof(sin), &err));
	cr_expect_eq(errno, EADDRINUSE);
	cr_expect(strstr(err.msg, "another process has the port") != NULL, "%s", err.msg);
}
