/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_COMMON_TLS_H
#define VIGIL_COMMON_TLS_H

/*
 * TLS for every nng connection Vigil makes (the defender link and the HTTPS
 * API), through Vigil's own nng TLS engine built on mbedTLS.
 *
 * Why our own engine: nng 1.5 (Debian 12) cannot tell a server which client
 * certificate a pipe presented, and the console must bind every message to
 * that certificate, never to an id inside the message.  The engine records
 * each connection's verified peer CN and hands it over when the pipe's
 * NNG_OPT_TLS_VERIFIED is read (tls_pipe_peer_cn).  It also pins TLS 1.2+
 * with ECDHE and AEAD suites only, and matches IP-address SANs, which
 * mbedTLS 2.28 does not.
 */

#include <stdbool.h>
#include <stddef.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "error.h"

/* Largest PEM file (certificate chain, key, CA bundle) we read: 1 MiB. */
#define TLS_PEM_MAX (1024 * 1024)

/*
 * Make Vigil's engine nng's TLS engine.  Call once at program start, before
 * any nng TLS configuration is created; calling again is a no-op.
 */
int tls_engine_install(vigil_err *err);

/* The installed engine's name ("vigil-mbedtls" once installed). */
const char *tls_engine_name(void);

struct tls_files {
	const char *ca;	  /* CA bundle that peers must chain to; NULL: no peer verification */
	const char *cert; /* our certificate (chain), PEM; NULL: none */
	const char *key;  /* our private key, PEM, unencrypted */
};

/*
 * A new nng TLS configuration (caller frees with nng_tls_config_free) from the
 * named files.  mode is NNG_TLS_MODE_SERVER or _CLIENT; auth is the peer
 * verification (REQUIRED for the defender link on both sides).  server_name,
 * for clients, is the name (DNS or IP) the server's certificate must carry;
 * NULL keeps nng's default (the URL's host).  A missing, unreadable or
 * unparsable file, or a key that does not match its certificate, fails with
 * err naming the file.
 */
int tls_config_new(nng_tls_mode mode, nng_tls_auth_mode auth, const struct tls_files *files,
		   const char *server_name, nng_tls_config **ret_cfg, vigil_err *err);

/*
 * The CN of the certificate the peer on pipe p presented and that verified
 * against our CA.  Returns 0 and fills buf, -EACCES when the peer is not
 * verified (or has no acceptable CN), or another negative errno.
 */
int tls_pipe_peer_cn(nng_pipe p, char *buf, size_t len);

#endif
