/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_LISTENER_H
#define VIGIL_CONSOLE_LISTENER_H

/*
 * The defenders' endpoint: an nng rep socket on tls+tcp:// with client
 * certificates REQUIRED.  Each request is bound to the CN of the certificate
 * its connection presented (tls_pipe_peer_cn), never to anything inside it.
 *
 * Lifecycle: listener_bind (claims the port, so a port in use fails before
 * anything else starts), listener_serve (starts worker threads that answer
 * requests using st), listener_stop.
 *
 * Connections: established connections (TLS handshake and SP negotiation
 * done) are capped per certificate CN and in total (struct listener_opts).
 * One over a cap is closed as it arrives (nng's ADD_PRE pipe event), before
 * it can send anything; refusals are counted by reason (listener_stats) and
 * logged at most every LISTENER_REFUSAL_LOG_MS.  At a certificate's cap, a
 * connection of it that sent nothing for the idle limit gives way to the
 * newcomer instead (a crashed host leaves such connections behind; TCP
 * keepalive, which the listener turns on, ends them only after hours).
 * Connections still in their handshake are the TLS engine's to bound
 * (tls_limits in tls.h).
 *
 * Threading: the listener's own workers and nng's callback threads share
 * it; every call here is from the thread that owns it (main), except
 * listener_stats_get, which any thread may call while it runs.
 */

#include <stdint.h>

#include "error.h"
#include "wire_limits.h"
#include "store/store.h"

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

/*
 * Largest request handled; protobuf-c never sees more (upstream #796).  A
 * larger one is answered REFUSED with both sizes ("batch too large (N > M
 * bytes)"), and a batch is audited as batch_refused: the defender drops it
 * and reports it lost instead of resending it for ever.
 */
#define LISTENER_MSG_MAX VIGIL_MSG_MAX

/*
 * What nng receives at most (NNG_OPT_RECVMAXSZ, which counts rep's 4-byte
 * request id too): the largest batch a defender's spool can hold
 * (SPOOL_RECORD_MAX, 4 MiB, in defender/deliver/spool.h) framed in its
 * Envelope (at most 33 bytes), with room to spare.  Up to here a message
 * gets an answer; past it nng closes the connection without one (1.5.2 has
 * no other way).  Memory: nng allocates a message whole once its length
 * has arrived, and a connection holds one message until a worker takes
 * it, so the worst case is (established connections + LISTENER_WORKERS) x
 * LISTENER_RECV_MAX: 4 MiB per connection (docs/operations.md, "Link
 * limits").
 */
#define LISTENER_RECV_MAX (4u * 1024 * 1024 + 64)
#define LISTENER_WORKERS  8

/* A normal defender holds one connection; a reconnect briefly overlaps the old one. */
#define LISTENER_CONNS_PER_CERT_DEFAULT 8
#define LISTENER_CONNS_PER_CERT_MAX	1024
#define LISTENER_CONNS_MAX_DEFAULT	4096
#define LISTENER_CONNS_MAX_MAX		65536 /* CONN_LIMIT_TOTAL_MAX */
/* A refusal is logged at most this often (the first one at once); all are counted. */
#define LISTENER_REFUSAL_LOG_MS 10000
/*
 * The idle limit: LISTENER_IDLE_HEARTBEATS heartbeat intervals, at least
 * LISTENER_IDLE_MIN_MS.  A defender heartbeats every interval and drops a
 * connection whose heartbeat goes unanswered for 5 s.
 */
#define LISTENER_IDLE_MIN_MS	 15000
#define LISTENER_IDLE_HEARTBEATS 3

struct listener_opts {
	/* Established connections per certificate CN; 0: the default.  At most conns_max. */
	unsigned conns_per_cert;
	/* Established connections in all; 0: the default.  Keep it under the descriptor limit. */
	unsigned conns_max;
};

/* Why a connection was closed as it arrived (a silent one giving way is not a refusal). */
enum listener_refusal {
	LISTENER_REFUSED_PER_CERT,    /* its certificate had conns_per_cert established */
	LISTENER_REFUSED_TOTAL,	      /* conns_max were established */
	LISTENER_REFUSED_NO_IDENTITY, /* no verified certificate CN (cannot happen with REQUIRED) */
	LISTENER_REFUSED_NO_MEMORY,   /* no memory to count it */
	LISTENER_REFUSED_NREASONS,
};

/* What the listener did since listener_bind (a snapshot). */
struct listener_stats {
	uint64_t conns;	       /* established now */
	uint64_t conns_peak;   /* most established at once */
	uint64_t certs;	       /* certificates with a connection now */
	uint64_t evicted_idle; /* silent connections closed for a newcomer at their cap */
	uint64_t accepted;     /* connections admitted */
	uint64_t refused[LISTENER_REFUSED_NREASONS];
	uint64_t oversize; /* requests over LISTENER_MSG_MAX answered REFUSED */
};

struct listener;

/*
 * Bind url with tls (held, not owned) and the default options.  err names
 * the address on failure.
 */
struct listener *listener_bind(const char *url, nng_tls_config *tls, vigil_err *err);

/*
 * As listener_bind, with opts (NULL: the defaults).  An option out of range
 * (over its _MAX, or conns_per_cert over conns_max) fails with -EINVAL.
 */
struct listener *listener_bind_opts(const char *url, nng_tls_config *tls,
				    const struct listener_opts *opts, vigil_err *err);

/*
 * Start answering requests with LISTENER_WORKERS threads, worker i using
 * stores[i % nstores] (not owned; they must outlive the listener), so
 * batches from different defenders commit in parallel, and
 * soft_stores[i % nstores] for heartbeats (connections that commit without
 * waiting for the WAL's fsync: soft state only).
 * heartbeat_interval_ms is told to every defender.
 */
int listener_serve(struct listener *l, struct store **stores, struct store **soft_stores,
		   int nstores, int heartbeat_interval_ms, vigil_err *err);

struct rules_push;

/*
 * Send rule sets from rp (not owned; it must outlive the listener) with the
 * replies to hellos and heartbeats of defenders that hold an older version
 * than rp's (link/rules_push.h), and record what each says it holds
 * (store/host_rules.h).  Before listener_serve; without it no set is sent.
 */
void listener_set_rules(struct listener *l, struct rules_push *rp);

struct revocation;
struct link_renew;

/*
 * Refuse connections and requests of certificates r holds revoked, and
 * tell r of every established connection so that it can close those of a
 * host revoked later (link/revocation.h; r not owned, it must outlive the
 * listener).  Answer renewals (Envelope.renew) with renew (link/renew.h;
 * NULL: refused, not set up).  Before listener_serve.
 */
void listener_set_revocation(struct listener *l, struct revocation *r,
			     const struct link_renew *renew);

/* The counters so far; safe from any thread while l lives. */
void listener_stats_get(struct listener *l, struct listener_stats *ret);

/*
 * Close the socket, join the workers, log what the link did (the counters
 * above and the TLS engine's, tls_stats), free l.  Accepts NULL.
 */
void listener_stop(struct listener *l);

#endif
