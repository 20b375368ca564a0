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
 *
 * What nng sees from the engine (nng 1.5.2 calls it again only when a TCP
 * operation it started completes, or when a new operation arrives):
 *  - NNG_EAGAIN only while such a TCP operation is in flight;
 *  - once a connection failed, the same error from every later call;
 *  - NNG_EPEERAUTH: the peer's certificate failed (missing, unverifiable,
 *    wrong name); NNG_ETIMEDOUT: the handshake deadline (see tls_limits);
 *  - server connections, any other failure: NNG_ECONNRESET (peer closed,
 *    transport failed) or NNG_ECONNABORTED (anything else, junk included).
 *    These are the errors after which an nng listener accepts again at
 *    once (core/listener.c:392-398); NNG_ECRYPTO or NNG_ECONNSHUT would cost
 *    everybody a 100 ms accept pause per bad peer.
 *  - client connections: NNG_ECONNSHUT (peer closed), NNG_ECONNRESET
 *    (transport failed), NNG_ECRYPTO (anything else, a server's fatal alert
 *    refusing our certificate included);
 *  - NNG_ECLOSED only after the connection was closed locally: nng's
 *    listener and dialer stop for good on it (core/listener.c:399,
 *    core/dialer.c:408), so a peer must never be able to cause it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "error.h"

/* Largest PEM file (certificate chain, key, CA bundle) we read: 1 MiB. */
#define TLS_PEM_MAX (1024 * 1024)

/*
 * Make Vigil's engine nng's TLS engine.  Call once at program start, before
 * any nng TLS configuration is created; calling again is a no-op.  Fails
 * with -ENOTSUP when the nng library loaded is not 1.5.x (see tls_limits).
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
 * Connections that have not finished their handshake.
 *
 * A peer that connects and stalls must not hold descriptors or handshake
 * slots: a connection must finish its TLS handshake within handshake_ms of
 * TCP connect/accept, whether or not anyone has used it yet, and a server
 * takes at most handshakes_per_addr connections still in handshake from one
 * source address.  Clients get the deadline too: a dial to a server frozen
 * mid-handshake fails with NNG_ETIMEDOUT (an SP dialer then redials), and
 * nng_http_conn_close(), which first waits for a write stuck in the
 * handshake (http_conn.c:681-687), returns.  The engine enforces both
 * itself, because nng 1.5.2 does not:
 * the SP transport's 10 s negotiation timeout (sp/transport/tls/tls.c:606)
 * is spent on an aio that nng's TLS layer cannot cancel while the handshake
 * waits on the other direction (tls_common.c:668-682), and its HTTP server
 * has no timeout at all.
 *
 * How, within nng 1.5.2's engine API:
 *  - The per-address cap is checked in the engine's conn init, which runs
 *    right after TCP accept with the peer address readable through the
 *    stream (NNG_OPT_REMADDR).  A connection over the cap fails init with
 *    NNG_ECONNABORTED: nng closes it at once and its listener goes on
 *    accepting without a pause (core/listener.c:392-398).  IPv6 peers are
 *    counted per /64, the block one host usually gets.
 *  - The deadline is an nng sleep aio per connection.  When it fires during
 *    the handshake, the engine latches NNG_ETIMEDOUT and queues a one-byte
 *    send and a one-byte recv on the connection's own stream: nng hands
 *    them to the engine behind whatever the owner has queued, so every
 *    queued aio (the SP negotiation, an HTTP read or write) fails with
 *    NNG_ETIMEDOUT and its owner closes the stream.  The deadline cannot
 *    simply close the stream: nng fails the queued aios with NNG_ECLOSED
 *    then (tls_common.c:736-746, 895-908), and an SP listener or dialer
 *    that sees NNG_ECLOSED from a negotiation stops accepting or redialing
 *    for good (core/listener.c:399-401, core/dialer.c:408-410).
 *  - Both rely on nng 1.5's layout in one place: the connection nng passes
 *    to the engine is its nng_stream (tls_common.c:56-57, 884-893).  The
 *    build refuses another nng minor version, and tls_engine_install()
 *    refuses another nng library at run time.
 * What the engine cannot do in nng 1.5.2: bound connections that finished
 * their handshake (for the link that is the pipe callbacks' job, per
 * certificate; the HTTPS API asks for no certificate, and nng's HTTP server
 * waits for a request for ever, so an idle limit there belongs to the API
 * server), or the total across all addresses (nftables "ct count").
 */
struct tls_limits {
	unsigned handshake_ms;	      /* 0: no deadline; at most TLS_HANDSHAKE_MS_MAX */
	unsigned handshakes_per_addr; /* server side; 0: no cap */
};

#define TLS_HANDSHAKE_MS_DEFAULT	10000
#define TLS_HANDSHAKE_MS_MAX		(24 * 3600 * 1000)
#define TLS_HANDSHAKES_PER_ADDR_DEFAULT 256
/* Distinct source addresses with handshakes in progress; more are refused (and counted). */
#define TLS_ADDRS_MAX 4096

/*
 * Set the limits for connections made or accepted from now on (those under
 * way keep theirs); the defaults above hold until then.  Process-wide:
 * call it once at program start.  Returns 0, or -EINVAL for a deadline over
 * TLS_HANDSHAKE_MS_MAX.
 */
int tls_limits_set(const struct tls_limits *lim, vigil_err *err);

/* The limits in force. */
void tls_limits_get(struct tls_limits *ret);

/* What the limits did since program start (process-wide, all configurations; a snapshot). */
struct tls_stats {
	uint64_t handshaking;	   /* server connections now in handshake (counted while capped) */
	uint64_t refused_addr_cap; /* server connections refused: their address was at the cap */
	uint64_t refused_addrs_full; /* ... refused: TLS_ADDRS_MAX addresses already in handshake */
	uint64_t handshake_timeouts; /* connections failed by the handshake deadline */
};

void tls_stats_get(struct tls_stats *ret);

/*
 * The CN of the certificate the peer on pipe p presented and that verified
 * against our CA.  Returns 0 and fills buf, -EACCES when the peer is not
 * verified (or has no acceptable CN), or another negative errno.
 */
int tls_pipe_peer_cn(nng_pipe p, char *buf, size_t len);

#endif
