/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_API_ENROLL_H
#define VIGIL_CONSOLE_API_ENROLL_H

/*
 * Enrollment's part of the API (api_enroll.c; docs/api.md, "Enrollment"):
 * join tokens, hosts joining with them, and revoking hosts.  Its state is
 * the CA it signs with (not owned; NULL: enrollment is not set up and its
 * endpoints answer 503), the lifetime of the certificates it signs, the
 * link's port (told to enrolled hosts) and the throttle of failed
 * enrollments, which locks itself.
 */

#include <stdint.h>

#include <nng/nng.h>

#include "error.h"
#include "pki_enroll.h"

/* Failed enrollments from one address (IPv6: its /64) in the window, before 429. */
#define ENROLL_FAILS_MAX    20
#define ENROLL_WINDOW_S	    300
#define ENROLL_THROTTLE_MAX 4096 /* addresses remembered; the oldest failure goes first */

/* A host certificate's lifetime: 10 s (tests) to 825 days; 90 days unless told. */
#define ENROLL_CERT_SECS_MIN	 10
#define ENROLL_CERT_SECS_MAX	 (825 * 86400)
#define ENROLL_CERT_DAYS_DEFAULT 90

struct api_enroll;

/*
 * New state: sign with signer (NULL: not set up) for cert_secs
 * (ENROLL_CERT_SECS_MIN.._MAX), telling hosts the link is on link_port.
 * NULL with err set.
 */
struct api_enroll *api_enroll_new(struct pki_signer *signer, int64_t cert_secs, int link_port,
				  vigil_err *err);

/* Free (logs what the throttle did).  Accepts NULL. */
void api_enroll_free(struct api_enroll *e);

/* Handlers, on the API's workers: /api/v1/join-tokens[/{id}], /api/v1/enroll[/ca],
 * /api/v1/revocations. */
void api_handle_join_tokens(nng_aio *aio);
void api_handle_enroll(nng_aio *aio);
void api_handle_revocations(nng_aio *aio);

#endif
