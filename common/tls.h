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
 * What these limits do not do: bound connections that finished their
 * handshake (for the link that is the pipe callbacks' job, per
 * certificate; for the HTTPS API, which asks for no certificate, see
 * tls_conn_limits), or the total across all addresses (nftables "ct
 * count"; tls_conn_limits for one configuration).
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
 * Limits on the connections of one server configuration (the HTTPS API's).
 *
 * The handshake limits above end where the handshake does; nng 1.5.2's HTTP
 * server then waits for a request for ever: it queues the read at accept
 * (http_server.c:904, http_server_acccb) and after each answer (:397,
 * http_sconn_txdone), sets no timeout on any aio (neither http_server.c nor
 * http_conn.c calls nni_aio_set_timeout) and has no option for one.  Any
 * peer that can reach the port could hold descriptors and ~65 KiB of
 * buffers per connection for good.  These limits bound that, in the engine,
 * because the engine is the only code that sees every connection from its
 * accept on (nng's HTTP server tells its handlers about requests, never
 * about connections, and its TLS listener hands it a connection before the
 * handshake, tls_common.c:131-154):
 *
 *  - idle_ms: a connection fails with NNG_ETIMEDOUT, and its owner closes
 *    it, once its server has waited idle_ms on the peer: from the accept,
 *    or from the last time the server sent it data, whichever is later.
 *    "Waited on the peer" means a read is pending that the peer has not
 *    satisfied, or a write waits for the peer to take data.  So a peer must
 *    finish its handshake and its whole request (headers and body, however
 *    it trickles them) within idle_ms of connecting or of its last answer,
 *    and must keep taking an answer; while the server works on a request
 *    (no read pending: nng's HTTP server reads nothing while a handler
 *    runs), the clock fails nothing.  The handshake deadline of these
 *    connections is at most idle_ms (tls_limits).  The failure reaches
 *    nng's HTTP server as a failed read or write, after which it closes the
 *    connection (http_sconn_rxdone/_txdone -> http_sconn_close); the peer
 *    sees the TCP connection end (no close_notify: the connection failed).
 *  - conns_per_addr, conns_max: connections open at once (from accept until
 *    nng frees them, on its reaper shortly after the close; handshake
 *    included), per source address (IPv6 per /64, as for handshakes) and in
 *    all.  One over a cap fails at accept with
 *    NNG_ECONNABORTED, which nng's HTTP server answers by accepting the
 *    next one at once (http_server.c:878-882); the peer sees its connection
 *    closed before the handshake.
 *
 * What the limits did is counted per configuration (tls_conn_stats_get);
 * like the rest of common/, nothing here logs.
 */
struct tls_conn_limits {
	unsigned idle_ms;	 /* 0: no idle limit; at most TLS_HANDSHAKE_MS_MAX */
	unsigned conns_per_addr; /* 0: no per-address cap */
	unsigned conns_max;	 /* 1..TLS_CONNS_MAX */
};

#define TLS_CONNS_MAX 65536
/* Room for an address as text ("2001:db8:1:2::/64", IPv4 dotted). */
#define TLS_ADDR_TEXT 64

/*
 * Put lim on the connections cfg (NNG_TLS_MODE_SERVER, made with
 * tls_config_new) accepts from now on.  Call once, before cfg serves
 * anything; the limits stay with cfg until it is freed.  Returns 0, -EINVAL
 * for a client configuration or limits out of range, -EBUSY when cfg has
 * limits already, -ENOTSUP when cfg is not of Vigil's engine, -ENOMEM.
 */
int tls_conn_limits_set(nng_tls_config *cfg, const struct tls_conn_limits *lim, vigil_err *err);

/* What the limits of one configuration did so far (a snapshot). */
struct tls_conn_stats {
	uint64_t open;		       /* connections open now */
	uint64_t idle_closed;	       /* failed by idle_ms, handshake deadline included: */
	uint64_t idle_in_handshake;    /* ... of them still in the handshake */
	uint64_t refused_addr_cap;     /* refused at accept: their address was at conns_per_addr */
	uint64_t refused_conns_max;    /* ... conns_max connections were open */
	char last_idle[TLS_ADDR_TEXT]; /* the address of the last one failed idle ("" none) */
	char last_refused[TLS_ADDR_TEXT]; /* ... of the last one refused */
};

/*
 * Fill ret for cfg.  Returns 0, -ENOENT when cfg has no limits, -ENOTSUP
 * when it is not of Vigil's engine.  The caller holds a reference on cfg.
 */
int tls_conn_stats_get(nng_tls_config *cfg, struct tls_conn_stats *ret);

/*
 * The CN of the certificate the peer on pipe p presented and that verified
 * against our CA.  Returns 0 and fills buf, -EACCES when the peer is not
 * verified (or has no acceptable CN), -ENOTCONN when the pipe is gone, or
 * another negative errno.
 */
int tls_pipe_peer_cn(nng_pipe p, char *buf, size_t len);

/* A certificate serial as lowercase hex of its DER bytes; longer ones are cut to this. */
#define TLS_SERIAL_HEX_MAX 64

/* Who the peer of a pipe is: its verified certificate's CN and serial. */
struct tls_peer {
	char cn[65];
	char serial[TLS_SERIAL_HEX_MAX + 1];
};

/* As tls_pipe_peer_cn, with the certificate's serial too. */
int tls_pipe_peer(nng_pipe p, struct tls_peer *ret);

/*
 * A server's check of each client certificate, in the handshake: true
 * refuses it.  Called on nng's threads, during chain verification of the
 * client's leaf (CN and serial as tls_peer has them; only a certificate
 * with one acceptable CN is asked about); it must not block.
 */
typedef bool (*tls_peer_refuse_fn)(const char *cn, const char *serial, void *arg);

/*
 * Make cfg (a server configuration of Vigil's engine, with peer
 * verification) ask fn about every client certificate from now on: one
 * refused fails its handshake as revoked (the client gets a
 * certificate_revoked alert; the server's accept sees NNG_EPEERAUTH), so a
 * revoked host never gets as far as a connection.  For the defenders' link
 * (link/revocation.h).  Returns 0, -EINVAL for a client configuration,
 * -ENOTSUP when cfg is not of Vigil's engine.
 */
int tls_config_set_peer_check(nng_tls_config *cfg, tls_peer_refuse_fn fn, void *arg,
			      vigil_err *err);

#endif
