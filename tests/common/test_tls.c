/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Vigil's TLS engine over real loopback connections with real certificates:
 * the server learns the client's verified CN; wrong CA, wrong name, wrong
 * certificate purpose and missing certificates are refused.  Peers that
 * stall or send junk cannot hold the server's slots or slow its accepting,
 * and no operation is left waiting on a connection that can never move.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/http/http.h>

#include "fsutil.h"
#include "pki.h"
#include "pki_enroll.h"
#include "tls.h"

static char dir[256], other[256];

static void mk(const char *ca_dir, const char *cn, enum pki_kind kind, const char *dns,
	       const char *ip)
{
	char cert[512], key[512];
	const char *dnsv[] = {dns}, *ipv[] = {ip};
	struct pki_issue_opts o = {.cn = cn,
				   .kind = kind,
				   .dns = dnsv,
				   .ndns = dns ? 1 : 0,
				   .ips = ipv,
				   .nips = ip ? 1 : 0};
	vigil_err err = {0};

	snprintf(cert, sizeof(cert), "%s/%s.crt", ca_dir, cn);
	snprintf(key, sizeof(key), "%s/%s.key", ca_dir, cn);
	cr_assert_eq(pki_issue(ca_dir, &o, cert, key, &err), 0, "%s", err.msg);
}

static void setup(void)
{
	vigil_err err = {0};

	snprintf(dir, sizeof(dir), "/tmp/vigil-tls-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(other, sizeof(other), "%s/other", dir);
	cr_assert_eq(pki_ca_create(dir, "Test CA", 10, &err), 0, "%s", err.msg);
	cr_assert_eq(pki_ca_create(other, "Other CA", 10, &err), 0, "%s", err.msg);
	mk(dir, "server", PKI_SERVER, "console.test", "127.0.0.1");
	mk(dir, "host-1", PKI_CLIENT, NULL, NULL);
	mk(other, "host-2", PKI_CLIENT, NULL, NULL);
	cr_assert_eq(tls_engine_install(&err), 0, "%s", err.msg);
	cr_assert_str_eq(tls_engine_name(), "vigil-mbedtls");
}

static void teardown(void)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(tls, .init = setup, .fini = teardown, .timeout = 60);

static char *path(const char *d, const char *file)
{
	static char buf[8][512];
	static int n;
	char *b = buf[n++ % 8];
	snprintf(b, 512, "%s/%s", d, file);
	return b;
}

struct server {
	nng_socket sock;
	nng_tls_config *tls;
	char url[64];
	int port;
};

static void server_start(struct server *s, nng_tls_auth_mode auth)
{
	const struct tls_files f = {.ca = path(dir, "ca.crt"),
				    .cert = path(dir, "server.crt"),
				    .key = path(dir, "server.key")};
	nng_listener l;
	vigil_err err = {0};
	int port;

	cr_assert_eq(tls_config_new(NNG_TLS_MODE_SERVER, auth, &f, NULL, &s->tls, &err), 0, "%s",
		     err.msg);
	cr_assert_eq(nng_rep0_open(&s->sock), 0);
	snprintf(s->url, sizeof(s->url), "tls+tcp://127.0.0.1:0");
	cr_assert_eq(nng_listener_create(&l, s->sock, s->url), 0);
	cr_assert_eq(nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, s->tls), 0);
	cr_assert_eq(nng_listener_start(l, 0), 0);
	cr_assert_eq(nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port), 0);
	snprintf(s->url, sizeof(s->url), "tls+tcp://127.0.0.1:%d", port);
	s->port = port;
	nng_socket_set_ms(s->sock, NNG_OPT_RECVTIMEO, 1500);
}

static void server_stop(struct server *s)
{
	nng_close(s->sock);
	nng_tls_config_free(s->tls);
}

/*
 * Client sends "ping" with cert/key (may be NULL) checking the server as
 * server_name.  Returns whether the server received it; peer CN into cn.
 */
static bool exchange(struct server *s, const char *cert, const char *key, const char *server_name,
		     char *cn, size_t cnlen)
{
	const struct tls_files f = {.ca = path(dir, "ca.crt"), .cert = cert, .key = key};
	nng_tls_config *tls;
	nng_socket c;
	nng_dialer d;
	nng_msg *m;
	vigil_err err = {0};
	bool got;

	cr_assert_eq(tls_config_new(NNG_TLS_MODE_CLIENT, NNG_TLS_AUTH_MODE_REQUIRED, &f,
				    server_name, &tls, &err),
		     0, "%s", err.msg);
	cr_assert_eq(nng_req0_open(&c), 0);
	cr_assert_eq(nng_dialer_create(&d, c, s->url), 0);
	cr_assert_eq(nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls), 0);
	cr_assert_eq(nng_dialer_start(d, NNG_FLAG_NONBLOCK), 0);
	/* req waits for a connection to send on: a refused handshake means none comes. */
	nng_socket_set_ms(c, NNG_OPT_SENDTIMEO, 1500);
	got = nng_send(c, "ping", 5, 0) == 0 && nng_recvmsg(s->sock, &m, 0) == 0;
	cn[0] = '\0';
	if (got) {
		int rc = tls_pipe_peer_cn(nng_msg_get_pipe(m), cn, cnlen);
		if (rc < 0)
			snprintf(cn, cnlen, "<error %d>", rc);
		nng_msg_free(m);
	}
	nng_close(c);
	nng_tls_config_free(tls);
	return got;
}

/*
 * The positive control of a refusal: a good client (host-1, checking the
 * server as 127.0.0.1) is answered by the same server within the same
 * timeout, so the refusal just seen was the handshake's doing, not a slow
 * or dead server.
 */
static void expect_server_answers(struct server *s)
{
	char cn[80];

	cr_expect(exchange(s, path(dir, "host-1.crt"), path(dir, "host-1.key"), "127.0.0.1", cn,
			   sizeof(cn)),
		  "the positive control failed: a good client was not answered either");
}

Test(tls, server_learns_the_verified_client_cn)
{
	struct server s;
	char cn[80];

	server_start(&s, NNG_TLS_AUTH_MODE_REQUIRED);
	cr_assert(exchange(&s, path(dir, "host-1.crt"), path(dir, "host-1.key"), "127.0.0.1", cn,
			   sizeof(cn)));
	cr_expect_str_eq(cn, "host-1");
	/* And by DNS name, through the certificate's dNSName SAN. */
	cr_assert(exchange(&s, path(dir, "host-1.crt"), path(dir, "host-1.key"), "console.test", cn,
			   sizeof(cn)));
	cr_expect_str_eq(cn, "host-1");
	server_stop(&s);
}

Test(tls, client_certificate_from_another_ca_is_refused)
{
	struct server s;
	char cn[80];

	server_start(&s, NNG_TLS_AUTH_MODE_REQUIRED);
	cr_expect_not(exchange(&s, path(other, "host-2.crt"), path(other, "host-2.key"),
			       "127.0.0.1", cn, sizeof(cn)));
	expect_server_answers(&s);
	server_stop(&s);
}

Test(tls, missing_client_certificate_is_refused)
{
	struct server s;
	char cn[80];

	server_start(&s, NNG_TLS_AUTH_MODE_REQUIRED);
	cr_expect_not(exchange(&s, NULL, NULL, "127.0.0.1", cn, sizeof(cn)));
	expect_server_answers(&s);
	server_stop(&s);
}

Test(tls, server_certificate_used_as_client_certificate_is_refused)
{
	struct server s;
	char cn[80];

	/* Right CA, but extendedKeyUsage says serverAuth only. */
	server_start(&s, NNG_TLS_AUTH_MODE_REQUIRED);
	cr_expect_not(exchange(&s, path(dir, "server.crt"), path(dir, "server.key"), "127.0.0.1",
			       cn, sizeof(cn)));
	expect_server_answers(&s);
	server_stop(&s);
}

Test(tls, client_refuses_a_server_with_the_wrong_name_or_ip)
{
	struct server s;
	char cn[80];

	server_start(&s, NNG_TLS_AUTH_MODE_REQUIRED);
	cr_expect_not(exchange(&s, path(dir, "host-1.crt"), path(dir, "host-1.key"),
			       "impostor.test", cn, sizeof(cn)));
	cr_expect_not(exchange(&s, path(dir, "host-1.crt"), path(dir, "host-1.key"), "127.0.0.2",
			       cn, sizeof(cn)));
	expect_server_answers(&s);
	server_stop(&s);
}

Test(tls, unverified_peer_has_no_identity)
{
	struct server s;
	char cn[80];

	/* Auth NONE (as the HTTPS API uses): the data flows but no identity is claimed. */
	server_start(&s, NNG_TLS_AUTH_MODE_NONE);
	cr_assert(exchange(&s, path(dir, "host-1.crt"), path(dir, "host-1.key"), "127.0.0.1", cn,
			   sizeof(cn)));
	cr_expect_str_eq(cn, "<error -13>"); /* -EACCES */
	server_stop(&s);
}

/* The peer check of the link (tls_config_set_peer_check): refuses host-3 only, and notes what it
 * saw. */
static char seen_serial[TLS_SERIAL_HEX_MAX + 1];

static bool refuse_host3(const char *cn, const char *serial, void *arg)
{
	(void)arg;
	if (strcmp(cn, "host-3") == 0)
		snprintf(seen_serial, sizeof(seen_serial), "%s", serial);
	return strcmp(cn, "host-3") == 0;
}

Test(tls, a_peer_check_refuses_a_certificate_in_the_handshake_and_serials_are_reported)
{
	struct pki_cert_info info;
	struct server s;
	nng_tls_config *client;
	vigil_err err = {0};
	char cn[80], ca[512], *pem;
	size_t len;

	mk(dir, "host-3", PKI_CLIENT, NULL, NULL);
	server_start(&s, NNG_TLS_AUTH_MODE_REQUIRED);
	cr_assert_eq(tls_config_set_peer_check(s.tls, refuse_host3, NULL, &err), 0, "%s", err.msg);
	cr_expect_not(exchange(&s, path(dir, "host-3.crt"), path(dir, "host-3.key"), "127.0.0.1",
			       cn, sizeof(cn)),
		      "a refused certificate got through");
	/* The check saw host-3's serial as the certificate has it. */
	cr_assert_eq(fs_read_file(path(dir, "host-3.crt"), 65536, &pem, &len, &err), 0);
	cr_assert_eq(pki_cert_info(pem, len, &info, &err), 0, "%s", err.msg);
	free(pem);
	cr_expect_str_eq(seen_serial, info.serial);
	expect_server_answers(&s);
	server_stop(&s);
	/* A client has nobody to check (path()'s buffers rotate: the CA's is copied). */
	snprintf(ca, sizeof(ca), "%s", path(dir, "ca.crt"));
	const struct tls_files cf = {.ca = ca};
	cr_assert_eq(tls_config_new(NNG_TLS_MODE_CLIENT, NNG_TLS_AUTH_MODE_REQUIRED, &cf, NULL,
				    &client, &err),
		     0, "%s", err.msg);
	cr_expect_eq(tls_config_set_peer_check(client, refuse_host3, NULL, &err), -EINVAL);
	nng_tls_config_free(client);
}

Test(tls, config_errors_name_the_file)
{
	const struct tls_files missing = {.ca = "/nonexistent/ca.crt"};
	const struct tls_files mismatch = {.ca = path(dir, "ca.crt"),
					   .cert = path(dir, "server.crt"),
					   .key = path(dir, "host-1.key")};
	const struct tls_files notpem = {.ca = path(dir, "host-1.key")};
	nng_tls_config *cfg = NULL;
	vigil_err err = {0};

	cr_expect_lt(tls_config_new(NNG_TLS_MODE_CLIENT, NNG_TLS_AUTH_MODE_REQUIRED, &missing, NULL,
				    &cfg, &err),
		     0);
	cr_expect(strstr(err.msg, "/nonexistent/ca.crt") != NULL, "%s", err.msg);
	cr_expect_lt(tls_config_new(NNG_TLS_MODE_CLIENT, NNG_TLS_AUTH_MODE_REQUIRED, &mismatch,
				    NULL, &cfg, &err),
		     0);
	cr_expect(strstr(err.msg, "does not match") != NULL, "%s", err.msg);
	cr_expect_lt(tls_config_new(NNG_TLS_MODE_CLIENT, NNG_TLS_AUTH_MODE_REQUIRED, &notpem, NULL,
				    &cfg, &err),
		     0);
	cr_expect(strstr(err.msg, "host-1.key") != NULL, "%s", err.msg);
}

/* ---- peers that stall, send junk, or break the protocol ---- */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void set_limits(unsigned handshake_ms, unsigned per_addr)
{
	const struct tls_limits lim = {.handshake_ms = handshake_ms,
				       .handshakes_per_addr = per_addr};
	vigil_err err = {0};

	cr_assert_eq(tls_limits_set(&lim, &err), 0, "%s", err.msg);
}

/* A plain TCP connection to 127.0.0.1:port. */
static int tcp_connect(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert(fd >= 0, "socket: %s", strerror(errno));
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s",
		     strerror(errno));
	return fd;
}

/* Whether the peer closed fd (end of stream or reset) within ms; data on the way is dropped. */
static bool closed_within(int fd, int ms)
{
	long long end = now_ms() + ms;

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		long long left = end - now_ms();
		char buf[512];
		ssize_t n;
		int rc;

		rc = poll(&p, 1, left > 0 ? (int)left : 0);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return false;
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return true;
	}
}

/* Wait up to ms for the server connections in handshake to number n. */
static bool handshaking_becomes(uint64_t n, int ms)
{
	long long end = now_ms() + ms;
	struct tls_stats st;

	for (;;) {
		tls_stats_get(&st);
		if (st.handshaking == n)
			return true;
		if (now_ms() > end)
			return false;
		usleep(10000);
	}
}

/*
 * A fresh client with a valid certificate: dial, send "ping", and have the
 * server answer "pong".  Returns the milliseconds that took, or -1.
 */
static long long round_trip(struct server *s)
{
	const struct tls_files f = {.ca = path(dir, "ca.crt"),
				    .cert = path(dir, "host-1.crt"),
				    .key = path(dir, "host-1.key")};
	nng_tls_config *tls;
	nng_socket c;
	nng_dialer d;
	nng_msg *m = NULL;
	vigil_err err = {0};
	char buf[8];
	size_t len = sizeof(buf);
	long long t0 = now_ms(), took = -1;

	cr_assert_eq(tls_config_new(NNG_TLS_MODE_CLIENT, NNG_TLS_AUTH_MODE_REQUIRED, &f,
				    "127.0.0.1", &tls, &err),
		     0, "%s", err.msg);
	cr_assert_eq(nng_req0_open(&c), 0);
	nng_socket_set_ms(c, NNG_OPT_SENDTIMEO, 3000);
	nng_socket_set_ms(c, NNG_OPT_RECVTIMEO, 3000);
	cr_assert_eq(nng_dialer_create(&d, c, s->url), 0);
	cr_assert_eq(nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls), 0);
	cr_assert_eq(nng_dialer_start(d, NNG_FLAG_NONBLOCK), 0);
	if (nng_send(c, "ping", 5, 0) == 0 && nng_recvmsg(s->sock, &m, 0) == 0) {
		nng_msg_clear(m);
		if (nng_msg_append(m, "pong", 5) == 0 && nng_sendmsg(s->sock, m, 0) == 0) {
			m = NULL;
			if (nng_recv(c, buf, &len, 0) == 0 && len == 5 && strcmp(buf, "pong") == 0)
				took = now_ms() - t0;
		}
	}
	nng_msg_free(m);
	nng_close(c);
	nng_tls_config_free(tls);
	return took;
}

#define SILENT_PEERS 300

/*
 * Wait until the server has closed every fd (end of stream or reset), at
 * most until the absolute time end; closed_at[i] gets when each was seen
 * closed, -1 if never.  Returns how many were.
 */
static int wait_closed(const int *fds, long long *closed_at, int n, long long end)
{
	static struct pollfd p[SILENT_PEERS];
	int closed = 0;

	for (int i = 0; i < n; i++)
		closed_at[i] = -1;
	while (closed < n && now_ms() < end) {
		int np = 0, idx[SILENT_PEERS];

		for (int i = 0; i < n; i++)
			if (closed_at[i] < 0) {
				p[np] = (struct pollfd){.fd = fds[i], .events = POLLIN};
				idx[np++] = i;
			}
		if (poll(p, (nfds_t)np, 50) <= 0)
			continue;
		for (int j = 0; j < np; j++)
			if (p[j].revents != 0 && closed_within(p[j].fd, 0)) {
				closed_at[idx[j]] = now_ms();
				closed++;
			}
	}
	return closed;
}

Test(tls, silent_peers_are_dropped_at_the_deadline_while_real_clients_are_answered)
{
	static int fds[SILENT_PEERS];
	static long long connected_at[SILENT_PEERS], closed_at[SILENT_PEERS];
	const int deadline = 3000, margin = 3000;
	struct server s;
	struct tls_stats st;
	long long t0;
	int checked = 0, open = 0, closed, early = 0;

	/* The cap is set above the crowd here: all of it comes from 127.0.0.1. */
	set_limits(deadline, SILENT_PEERS + 10);
	server_start(&s, NNG_TLS_AUTH_MODE_REQUIRED);
	/* In batches nng's listen backlog (128) takes, or the kernel drops SYNs for a second. */
	for (int i = 0; i < SILENT_PEERS; i++) {
		fds[i] = tcp_connect(s.port);
		connected_at[i] = now_ms();
		if ((i + 1) % 50 == 0)
			(void)handshaking_becomes((uint64_t)i + 1, 2000);
	}
	t0 = now_ms();
	cr_assert_geq(round_trip(&s), 0,
		      "a real client is answered while %d silent peers are connected",
		      SILENT_PEERS);
	/* Positive control: the silent peers are held, not refused, until their deadline. */
	for (int i = 0; i < SILENT_PEERS; i++)
		if (now_ms() < connected_at[i] + deadline - 100) {
			checked++;
			open += !closed_within(fds[i], 0);
		}
	cr_expect_eq(open, checked, "%d of %d silent peers were dropped before their deadline",
		     checked - open, checked);
	cr_expect_gt(checked, SILENT_PEERS / 2, "only %d peers checked before their deadline",
		     checked);
	closed = wait_closed(fds, closed_at, SILENT_PEERS, t0 + deadline + margin);
	cr_expect_eq(closed, SILENT_PEERS, "the server dropped %d of %d silent peers in %d ms",
		     closed, SILENT_PEERS, deadline + margin);
	for (int i = 0; i < SILENT_PEERS; i++) {
		early += closed_at[i] >= 0 && closed_at[i] < connected_at[i] + deadline - 100;
		close(fds[i]);
	}
	cr_expect_eq(early, 0, "%d silent peers were dropped before their deadline", early);
	tls_stats_get(&st);
	cr_expect_geq(st.handshake_timeouts, SILENT_PEERS);
	cr_expect(handshaking_becomes(0, 3000), "their address slots are given back");
	/* And the server still serves. */
	cr_expect_geq(round_trip(&s), 0);
	server_stop(&s);
}

Test(tls, handshakes_over_the_per_address_cap_are_refused_at_once)
{
	enum { CAP = 4, EXCESS = 3 };
	int held[CAP], excess[EXCESS];
	struct server s;
	struct tls_stats st;

	/* A deadline far away: whatever closes within a second was refused, not timed out. */
	set_limits(30000, CAP);
	server_start(&s, NNG_TLS_AUTH_MODE_REQUIRED);
	for (int i = 0; i < CAP; i++)
		held[i] = tcp_connect(s.port);
	cr_expect(handshaking_becomes(CAP, 3000), "the server counts %d handshakes from 127.0.0.1",
		  CAP);
	for (int i = 0; i < EXCESS; i++) {
		long long t0 = now_ms();

		excess[i] = tcp_connect(s.port);
		cr_expect(closed_within(excess[i], 1000),
			  "connection %d over the cap of %d is refused at once", i + 1, CAP);
		cr_expect_lt(now_ms() - t0, 1000);
	}
	/* Positive control: the ones under the cap are still held. */
	for (int i = 0; i < CAP; i++)
		cr_expect_not(closed_within(held[i], 0), "connection %d under the cap is kept",
			      i + 1);
	tls_stats_get(&st);
	cr_expect_geq(st.refused_addr_cap, EXCESS);
	/* A slot frees when one leaves: a real client from the same address then gets in. */
	close(held[0]);
	cr_expect(handshaking_becomes(CAP - 1, 3000));
	cr_expect_geq(round_trip(&s), 0, "a client fits in the freed slot");
	cr_expect(handshaking_becomes(CAP - 1, 3000), "a finished handshake gives its slot back");
	for (int i = 0; i < EXCESS; i++)
		close(excess[i]);
	for (int i = 1; i < CAP; i++)
		close(held[i]);
	cr_expect(handshaking_becomes(0, 3000));
	server_stop(&s);
}

/* Junk where a ClientHello belongs; returns once the server has dropped it. */
static void junk(int port)
{
	static const char req[] = "GET / HTTP/1.0\r\n\r\n"; /* HTTP to the TLS port */
	int fd = tcp_connect(port);

	cr_assert_eq(write(fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
	cr_assert(closed_within(fd, 3000), "positive control: the server drops junk");
	close(fd);
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

static long long median(long long *v, int n)
{
	qsort(v, (size_t)n, sizeof(v[0]), cmp_ll);
	return v[n / 2];
}

Test(tls, junk_instead_of_a_client_hello_costs_the_listener_no_accept_pause)
{
	enum { ROUNDS = 10, JUNK = 50 };
	long long base[ROUNDS], after[ROUNDS], mb, ma;
	struct server s;

	server_start(&s, NNG_TLS_AUTH_MODE_REQUIRED);
	for (int i = 0; i < ROUNDS; i++) {
		base[i] = round_trip(&s);
		cr_assert_geq(base[i], 0, "positive control: a good client is answered");
	}
	for (int i = 0; i < JUNK; i++)
		junk(s.port);
	/*
	 * Each junk connection right before a good one: nng's listener pauses
	 * accepting for 100 ms after an error it does not know as the peer's
	 * (core/listener.c:403-411), and the good client's pipe would wait it out.
	 */
	for (int i = 0; i < ROUNDS; i++) {
		junk(s.port);
		after[i] = round_trip(&s);
		cr_assert_geq(after[i], 0, "a good client is answered after junk");
	}
	mb = median(base, ROUNDS);
	ma = median(after, ROUNDS);
	cr_expect_lt(ma, mb + 40,
		     "a good client after junk waits %lld ms (median), %lld ms without", ma, mb);
	server_stop(&s);
}

/* A TCP server on 127.0.0.1 that accepts and never answers. */
struct frozen {
	int lfd, port;
};

static void frozen_start(struct frozen *f)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);

	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(f->lfd >= 0);
	cr_assert_eq(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(f->lfd, 16), 0);
	cr_assert_eq(getsockname(f->lfd, (struct sockaddr *)&a, &len), 0);
	f->port = ntohs(a.sin_port);
}

/* Accept one client and read the start of its ClientHello: proof its handshake is under way. */
static int frozen_accept(struct frozen *f)
{
	struct pollfd p = {.fd = f->lfd, .events = POLLIN};
	unsigned char b[512];
	int fd;

	cr_assert_eq(poll(&p, 1, 3000), 1, "the client connects");
	fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
	cr_assert(fd >= 0);
	p.fd = fd;
	cr_assert_eq(poll(&p, 1, 3000), 1, "the client starts its handshake");
	cr_assert_gt(recv(fd, b, sizeof(b), 0), 0);
	cr_assert_eq(b[0], 0x16, "a TLS handshake record");
	return fd;
}

/* One close call run on its own thread, so that a hang shows as a failure, not a stuck suite. */
struct closer {
	enum { CLOSE_HTTP_CONN, CLOSE_SOCKET, CLOSE_DIALER } what;
	nng_http_conn *conn;
	nng_socket sock;
	nng_dialer dialer;
	pthread_mutex_t lk;
	pthread_cond_t cv;
	bool done;
};

static void *closer_main(void *arg)
{
	struct closer *c = arg;

	switch (c->what) {
	case CLOSE_HTTP_CONN:
		nng_http_conn_close(c->conn);
		break;
	case CLOSE_SOCKET:
		nng_close(c->sock);
		break;
	case CLOSE_DIALER:
		nng_dialer_close(c->dialer);
		break;
	}
	pthread_mutex_lock(&c->lk);
	c->done = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->lk);
	return NULL;
}

/* Whether the close returned within ms (a hung one is left behind; the test process ends). */
static bool close_returns_within(struct closer *c, int ms)
{
	struct timespec until;
	pthread_t t;
	bool done;

	pthread_mutex_init(&c->lk, NULL);
	pthread_cond_init(&c->cv, NULL);
	c->done = false;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	cr_assert_eq(pthread_create(&t, NULL, closer_main, c), 0);
	pthread_mutex_lock(&c->lk);
	while (!c->done && pthread_cond_timedwait(&c->cv, &c->lk, &until) == 0)
		;
	done = c->done;
	pthread_mutex_unlock(&c->lk);
	if (done)
		pthread_join(t, NULL);
	else
		pthread_detach(t);
	return done;
}

static nng_tls_config *client_tls(void)
{
	const struct tls_files f = {.ca = path(dir, "ca.crt"),
				    .cert = path(dir, "host-1.crt"),
				    .key = path(dir, "host-1.key")};
	nng_tls_config *tls;
	vigil_err err = {0};

	cr_assert_eq(tls_config_new(NNG_TLS_MODE_CLIENT, NNG_TLS_AUTH_MODE_REQUIRED, &f,
				    "127.0.0.1", &tls, &err),
		     0, "%s", err.msg);
	return tls;
}

Test(tls, closing_while_the_server_is_frozen_mid_handshake_returns)
{
	static struct closer http_close, sock_close, dialer_close;
	const int deadline = 1000;
	struct frozen f;
	nng_tls_config *tls;
	char u[64];
	nng_url *url;
	nng_http_client *cli;
	nng_http_req *req;
	nng_aio *aio, *wr;
	nng_socket c1, c2;
	nng_dialer d1, d2;
	int fd[3];
	long long t0;

	set_limits(deadline, TLS_HANDSHAKES_PER_ADDR_DEFAULT);
	frozen_start(&f);
	tls = client_tls();

	/* HTTPS: the request write waits on the handshake, which waits on a read. */
	snprintf(u, sizeof(u), "https://127.0.0.1:%d/", f.port);
	cr_assert_eq(nng_url_parse(&url, u), 0);
	cr_assert_eq(nng_http_client_alloc(&cli, url), 0);
	cr_assert_eq(nng_http_client_set_tls(cli, tls), 0);
	cr_assert_eq(nng_aio_alloc(&aio, NULL, NULL), 0);
	cr_assert_eq(nng_aio_alloc(&wr, NULL, NULL), 0);
	nng_http_client_connect(cli, aio);
	nng_aio_wait(aio);
	cr_assert_eq(nng_aio_result(aio), 0);
	http_close.what = CLOSE_HTTP_CONN;
	http_close.conn = nng_aio_get_output(aio, 0);
	cr_assert_eq(nng_http_req_alloc(&req, url), 0);
	nng_http_conn_write_req(http_close.conn, req, wr);
	fd[0] = frozen_accept(&f);
	t0 = now_ms();
	/* nng stops the write before it closes the stream (http_conn.c:681-687). */
	cr_expect(close_returns_within(&http_close, deadline + 3000),
		  "nng_http_conn_close returns (after %lld ms still blocked)", now_ms() - t0);
	if (http_close.done) {
		nng_aio_wait(wr);
		cr_expect_neq(nng_aio_result(wr), 0, "the stalled write fails");
		nng_http_req_free(req);
	}

	/* SP: nng_close and nng_dialer_close on a req socket whose handshake is stalled. */
	cr_assert_eq(nng_req0_open(&c1), 0);
	cr_assert_eq(nng_req0_open(&c2), 0);
	snprintf(u, sizeof(u), "tls+tcp://127.0.0.1:%d", f.port);
	cr_assert_eq(nng_dialer_create(&d1, c1, u), 0);
	cr_assert_eq(nng_dialer_create(&d2, c2, u), 0);
	cr_assert_eq(nng_dialer_set_ptr(d1, NNG_OPT_TLS_CONFIG, tls), 0);
	cr_assert_eq(nng_dialer_set_ptr(d2, NNG_OPT_TLS_CONFIG, tls), 0);
	cr_assert_eq(nng_dialer_start(d1, NNG_FLAG_NONBLOCK), 0);
	fd[1] = frozen_accept(&f);
	sock_close.what = CLOSE_SOCKET;
	sock_close.sock = c1;
	cr_expect(close_returns_within(&sock_close, 3000), "nng_close returns");
	cr_assert_eq(nng_dialer_start(d2, NNG_FLAG_NONBLOCK), 0);
	fd[2] = frozen_accept(&f);
	dialer_close.what = CLOSE_DIALER;
	dialer_close.dialer = d2;
	cr_expect(close_returns_within(&dialer_close, 3000), "nng_dialer_close returns");
	nng_close(c2);

	for (int i = 0; i < 3; i++)
		close(fd[i]);
	close(f.lfd);
	nng_aio_free(aio);
	nng_aio_free(wr);
	nng_http_client_free(cli);
	nng_url_free(url);
	nng_tls_config_free(tls);
}

/*
 * A TLS server written straight on mbedTLS, to make the records a peer may
 * legally (or not) send: it completes a handshake, then sends one burst in a
 * single write and holds the connection open until the client leaves.
 */
enum raw_burst {
	RAW_ALERT_THEN_DATA, /* a warning alert (no_renegotiation), then "hello" */
	RAW_BAD_MAC,	     /* "hello" with its authentication tag broken */
};

struct raw_server {
	enum raw_burst burst;
	int lfd, fd, port;
	pthread_t thr;
	bool corked;
	unsigned char out[4096];
	size_t out_len;
};

static int raw_send(void *ctx, const unsigned char *buf, size_t len)
{
	struct raw_server *r = ctx;
	ssize_t n;

	if (r->corked) {
		if (len > sizeof(r->out) - r->out_len)
			return MBEDTLS_ERR_NET_SEND_FAILED;
		memcpy(r->out + r->out_len, buf, len);
		r->out_len += len;
		return (int)len;
	}
	n = send(r->fd, buf, len, MSG_NOSIGNAL);
	return n < 0 ? MBEDTLS_ERR_NET_SEND_FAILED : (int)n;
}

static int raw_recv(void *ctx, unsigned char *buf, size_t len)
{
	struct raw_server *r = ctx;
	ssize_t n = recv(r->fd, buf, len, 0);

	return n < 0 ? MBEDTLS_ERR_NET_RECV_FAILED : (int)n;
}

/* No criterion asserts on this thread: it only serves, the test checks the client. */
static void *raw_main(void *arg)
{
	struct raw_server *r = arg;
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_ssl_config conf;
	mbedtls_ssl_context ssl;
	mbedtls_x509_crt crt;
	mbedtls_pk_context key;
	char b[512];
	int rv;

	mbedtls_entropy_init(&entropy);
	mbedtls_ctr_drbg_init(&drbg);
	mbedtls_ssl_config_init(&conf);
	mbedtls_ssl_init(&ssl);
	mbedtls_x509_crt_init(&crt);
	mbedtls_pk_init(&key);
	r->fd = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (r->fd < 0 ||
	    mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, NULL, 0) != 0 ||
	    mbedtls_x509_crt_parse_file(&crt, path(dir, "server.crt")) != 0 ||
	    mbedtls_pk_parse_keyfile(&key, path(dir, "server.key"), NULL) != 0 ||
	    mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
					MBEDTLS_SSL_PRESET_DEFAULT) != 0)
		goto out;
	mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &drbg);
	mbedtls_ssl_conf_authmode(&conf, MBEDTLS_SSL_VERIFY_NONE);
	if (mbedtls_ssl_conf_own_cert(&conf, &crt, &key) != 0 ||
	    mbedtls_ssl_setup(&ssl, &conf) != 0)
		goto out;
	mbedtls_ssl_set_bio(&ssl, r, raw_send, raw_recv, NULL);
	while ((rv = mbedtls_ssl_handshake(&ssl)) != 0)
		if (rv != MBEDTLS_ERR_SSL_WANT_READ && rv != MBEDTLS_ERR_SSL_WANT_WRITE)
			goto out;
	usleep(100000); /* the client is done with the handshake and waits for data */
	r->corked = true;
	if (r->burst == RAW_ALERT_THEN_DATA &&
	    mbedtls_ssl_send_alert_message(&ssl, MBEDTLS_SSL_ALERT_LEVEL_WARNING,
					   MBEDTLS_SSL_ALERT_MSG_NO_RENEGOTIATION) != 0)
		goto out;
	if (mbedtls_ssl_write(&ssl, (const unsigned char *)"hello", 5) != 5)
		goto out;
	if (r->burst == RAW_BAD_MAC)
		r->out[r->out_len - 1] ^= 0x01; /* the last byte of the AEAD tag */
	r->corked = false;
	/* One write: the client's one TCP read gets all of it. */
	if (send(r->fd, r->out, r->out_len, MSG_NOSIGNAL) != (ssize_t)r->out_len)
		goto out;
	while (recv(r->fd, b, sizeof(b), 0) > 0)
		;
out:
	if (r->fd >= 0)
		close(r->fd);
	mbedtls_ssl_free(&ssl);
	mbedtls_ssl_config_free(&conf);
	mbedtls_x509_crt_free(&crt);
	mbedtls_pk_free(&key);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&entropy);
	return NULL;
}

static void raw_start(struct raw_server *r, enum raw_burst burst)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);

	memset(r, 0, sizeof(*r));
	r->burst = burst;
	r->fd = -1;
	r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(r->lfd >= 0);
	cr_assert_eq(bind(r->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(r->lfd, 4), 0);
	cr_assert_eq(getsockname(r->lfd, (struct sockaddr *)&a, &len), 0);
	r->port = ntohs(a.sin_port);
	cr_assert_eq(pthread_create(&r->thr, NULL, raw_main, r), 0);
}

/* Call after the client has closed its stream: the server thread leaves when it sees that. */
static void raw_stop(struct raw_server *r)
{
	pthread_join(r->thr, NULL);
	close(r->lfd);
}

/* An aio whose completion a test can wait for with a bound. */
struct waiter {
	nng_aio *aio;
	pthread_mutex_t lk;
	pthread_cond_t cv;
	bool done;
};

static void waiter_cb(void *arg)
{
	struct waiter *w = arg;

	pthread_mutex_lock(&w->lk);
	w->done = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->lk);
}

static void waiter_init(struct waiter *w)
{
	pthread_mutex_init(&w->lk, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->done = false;
	cr_assert_eq(nng_aio_alloc(&w->aio, waiter_cb, w), 0);
}

/* Wait up to ms for the aio; whether it finished. */
static bool waiter_wait(struct waiter *w, int ms)
{
	long long end = now_ms() + ms;
	bool done;

	pthread_mutex_lock(&w->lk);
	while (!w->done && now_ms() < end) {
		pthread_mutex_unlock(&w->lk);
		usleep(5000);
		pthread_mutex_lock(&w->lk);
	}
	done = w->done;
	pthread_mutex_unlock(&w->lk);
	return done;
}

/* Start a recv (or send) of len bytes on s and wait up to ms; the aio's result, or -1 still
 * pending. */
static int stream_io(nng_stream *s, struct waiter *w, bool send, void *buf, size_t len, int ms)
{
	nng_iov iov = {.iov_buf = buf, .iov_len = len};

	w->done = false;
	cr_assert_eq(nng_aio_set_iov(w->aio, 1, &iov), 0);
	if (send)
		nng_stream_send(s, w->aio);
	else
		nng_stream_recv(s, w->aio);
	return waiter_wait(w, ms) ? nng_aio_result(w->aio) : -1;
}

static nng_stream *stream_dial(int port, nng_tls_config *tls, nng_stream_dialer **ret_d)
{
	char u[64];
	nng_aio *aio;
	nng_stream *s;

	snprintf(u, sizeof(u), "tls+tcp://127.0.0.1:%d", port);
	cr_assert_eq(nng_stream_dialer_alloc(ret_d, u), 0);
	cr_assert_eq(nng_stream_dialer_set_ptr(*ret_d, NNG_OPT_TLS_CONFIG, tls), 0);
	cr_assert_eq(nng_aio_alloc(&aio, NULL, NULL), 0);
	nng_stream_dialer_dial(*ret_d, aio);
	nng_aio_wait(aio);
	cr_assert_eq(nng_aio_result(aio), 0);
	s = nng_aio_get_output(aio, 0);
	nng_aio_free(aio);
	return s;
}

/* Close s and make sure w's aio is done before anything is freed. */
static void stream_end(nng_stream *s, nng_stream_dialer *d, struct waiter *w)
{
	nng_stream_close(s);
	cr_expect(waiter_wait(w, 3000), "closing the stream finishes its aio");
	nng_aio_free(w->aio);
	nng_stream_free(s);
	nng_stream_dialer_free(d);
}

Test(tls, a_warning_alert_before_data_does_not_strand_a_read)
{
	struct raw_server r;
	struct waiter w;
	nng_stream_dialer *d;
	nng_tls_config *tls = client_tls();
	nng_stream *s;
	char buf[16] = {0};
	int rv;

	raw_start(&r, RAW_ALERT_THEN_DATA);
	waiter_init(&w);
	s = stream_dial(r.port, tls, &d);
	/*
	 * mbedTLS consumes the alert and says WANT_READ; "hello" already sits in
	 * nng's buffer, so nng starts no TCP read and would never call again.
	 */
	rv = stream_io(s, &w, false, buf, sizeof(buf), 3000);
	cr_expect_eq(rv, 0, "the read finishes with the data (result %d; -1: still waiting)", rv);
	cr_expect_str_eq(buf, "hello");
	/* After a local close, a read fails at once: nng has stopped its TCP aios. */
	if (rv == 0) {
		nng_stream_close(s);
		usleep(100000);
		rv = stream_io(s, &w, false, buf, sizeof(buf), 1000);
		cr_expect_eq(rv, NNG_ECLOSED, "a read after close fails (result %d)", rv);
	}
	stream_end(s, d, &w);
	raw_stop(&r);
	nng_tls_config_free(tls);
}

Test(tls, a_failed_connection_fails_every_later_call_at_once)
{
	struct raw_server r;
	struct waiter w;
	nng_stream_dialer *d;
	nng_tls_config *tls = client_tls();
	nng_stream *s;
	char buf[16];
	int first, rv;

	raw_start(&r, RAW_BAD_MAC);
	waiter_init(&w);
	s = stream_dial(r.port, tls, &d);
	first = stream_io(s, &w, false, buf, sizeof(buf), 3000);
	cr_assert_gt(first, 0, "positive control: the forged record fails the read (result %d)",
		     first);
	/* The server sends nothing more: a read that reached mbedTLS again would wait for ever. */
	rv = stream_io(s, &w, false, buf, sizeof(buf), 1000);
	cr_expect_eq(rv, first, "a second read fails the same way at once (result %d)", rv);
	if (rv == first) {
		rv = stream_io(s, &w, true, "more", 4, 1000);
		cr_expect_eq(rv, first, "and so does a write (result %d)", rv);
	}
	stream_end(s, d, &w);
	raw_stop(&r);
	nng_tls_config_free(tls);
}
