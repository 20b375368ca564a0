/* SPDX-License-Identifier: Apache-2.0 */
/* Certificate renewal over the link (renew.h). */
#include "link/renew.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "store/enroll_store.h"

static nng_msg *reply(uint64_t seq, Vigil__Reply__Status status, const char *error,
		      int heartbeat_interval_ms, Vigil__Renewed *renewed)
{
	Vigil__Reply r = VIGIL__REPLY__INIT;
	nng_msg *m;

	r.seq = seq;
	r.status = status;
	r.error = (char *)(error != NULL ? error : "");
	r.heartbeat_interval_ms = (uint32_t)heartbeat_interval_ms;
	r.renewed = renewed;
	if (nng_msg_alloc(&m, vigil__reply__get_packed_size(&r)) != 0)
		return NULL;
	vigil__reply__pack(&r, nng_msg_body(m));
	return m;
}

nng_msg *link_renew_handle(const struct link_renew *rn, struct store *st,
			   const struct tls_peer *peer, const Vigil__Envelope *env,
			   int heartbeat_interval_ms)
{
	const char *csr = env->renew->csr != NULL ? env->renew->csr : "";
	Vigil__Renewed renewed = VIGIL__RENEWED__INIT;
	struct pki_signed sg = {0};
	vigil_err err = {0};
	time_t nb, na;
	nng_msg *m;
	int rc;

	if (rn == NULL)
		return reply(env->seq, VIGIL__REPLY__STATUS__REFUSED,
			     "certificate renewal is not set up on this console"
			     " (vigil-console --enroll-ca-dir)",
			     heartbeat_interval_ms, NULL);
	pki_host_validity(rn->cert_secs, &nb, &na);
	rc = pki_signer_sign(rn->signer, csr, strlen(csr), peer->cn, nb, na, &sg, &err);
	if (rc < 0) {
		log_warn("renewal of host %s refused: %s", peer->cn, err.msg);
		return reply(env->seq,
			     rc == -EINVAL || rc == -E2BIG ? VIGIL__REPLY__STATUS__REFUSED
							   : VIGIL__REPLY__STATUS__RETRY,
			     err.msg, heartbeat_interval_ms, NULL);
	}
	const struct store_renewal r = {.host_id = peer->cn,
					.old_serial = peer->serial,
					.serial = sg.serial,
					.not_after = sg.not_after,
					.min_interval_s = pki_renew_min_interval(rn->cert_secs)};
	rc = store_renew_commit(st, &r, &err);
	if (rc < 0) {
		pki_signed_fini(&sg);
		if (rc == -EPERM || rc == -EAGAIN) {
			log_warn("renewal of host %s (certificate %s) refused: %s", peer->cn,
				 peer->serial, err.msg);
			return reply(env->seq, VIGIL__REPLY__STATUS__REFUSED, err.msg,
				     heartbeat_interval_ms, NULL);
		}
		log_warn("renewal of host %s not recorded: %s", peer->cn, err.msg);
		return reply(env->seq, VIGIL__REPLY__STATUS__RETRY, "database unavailable; retry",
			     heartbeat_interval_ms, NULL);
	}
	log_info("host %s renewed its certificate: %s replaces %s, valid for %lld s", peer->cn,
		 sg.serial, peer->serial, (long long)rn->cert_secs);
	renewed.certificate = sg.cert_pem;
	renewed.ca = (char *)pki_signer_ca_pem(rn->signer);
	m = reply(env->seq, VIGIL__REPLY__STATUS__OK, NULL, heartbeat_interval_ms, &renewed);
	pki_signed_fini(&sg);
	return m;
}
