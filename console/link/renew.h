/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_RENEW_H
#define VIGIL_CONSOLE_RENEW_H

/*
 * Renewal of a host's certificate over the defenders' link
 * (Envelope.renew, docs/operations.md "Enrolling hosts").
 *
 * Why the link: a renewing host already holds a certificate, and the link
 * is where the console authenticates certificates (mutual TLS, REQUIRED)
 * and keeps them honest (revocation.h: a revoked one never gets a request
 * through).  The API's port asks for no client certificate (browsers would
 * prompt for one), so it could not tell who renews.  The certificate is
 * signed for the CN of the connection's certificate, never for a name in
 * the message, and recorded (store_renew_commit) before it is answered.
 *
 * Threads: link_renew_handle runs on the listener's workers; the
 * link_renew is read-only once made (the signer locks itself).
 */

#include <stdint.h>

#include <nng/nng.h>

#include "pki_enroll.h"
#include "store/store.h"
#include "tls.h"
#include "vigil.pb-c.h"

/* What renewals (and enrollments, api_enroll.c) sign with: owned by main. */
struct link_renew {
	struct pki_signer *signer; /* the console's CA */
	int64_t cert_secs;	   /* a host certificate's lifetime */
};

/*
 * Answer env (a Renew) from peer on the worker's store: OK with the new
 * certificate and the CA, REFUSED with why (renewal not set up here, a bad
 * CSR, a revoked host, renewed too recently), RETRY when the database
 * could not record it.  rn NULL: not set up.  Logs once per outcome.
 * Returns the reply (NULL when out of memory).
 */
nng_msg *link_renew_handle(const struct link_renew *rn, struct store *st,
			   const struct tls_peer *peer, const Vigil__Envelope *env,
			   int heartbeat_interval_ms);

#endif
