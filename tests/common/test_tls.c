/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Vigil's TLS engine over real loopback connections with real certificates:
 * the server learns the client's verified CN; wrong CA, wrong name, wrong
 * certificate purpose and missing certificates are refused.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "pki.h"
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
	server_stop(&s);
}

Test(tls, missing_client_certificate_is_refused)
{
	struct server s;
	char cn[80];

	server_start(&s, NNG_TLS_AUTH_MODE_REQUIRED);
	cr_expect_not(exchange(&s, NULL, NULL, "127.0.0.1", cn, sizeof(cn)));
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
