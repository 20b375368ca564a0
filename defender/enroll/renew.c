/* SPDX-License-Identifier: Apache-2.0 */
/* Renewing the host's certificate before it expires (renew.h). */
#include "enroll/renew.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "enroll/identity.h"
#include "fsutil.h"
#include "log.h"
#include "pki_enroll.h"
#include "tls.h"
#include "vigil.pb-c.h"

struct renewer {
	const struct defender_config *cfg;
	struct uplink *up;
	struct uplink_chan *chan;
	pthread_t thread;
	pthread_mutex_t lock; /* stop, with wake */
	pthread_cond_t wake;
	bool stop;
	uint64_t seq;
};

/* t as "2026-12-05T10:00:00Z" in buf (32 bytes), for the log. */
static const char *utc(time_t t, char buf[32])
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, 32, "%lld", (long long)t);
	return buf;
}

/* Sleep up to secs, waking early for a stop; returns whether to stop. */
static bool nap(struct renewer *r, time_t secs)
{
	struct timespec until;
	bool stop;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += secs > 0 ? secs : 1;
	pthread_mutex_lock(&r->lock);
	while (!r->stop && pthread_cond_timedwait(&r->wake, &r->lock, &until) != ETIMEDOUT)
		;
	stop = r->stop;
	pthread_mutex_unlock(&r->lock);
	return stop;
}

/* What the certificate file says now. */
static int cert_read(const char *path, struct pki_cert_info *ret, vigil_err *err)
{
	char *pem = NULL;
	size_t len;
	int rc;

	if ((rc = fs_read_file(path, TLS_PEM_MAX, &pem, &len, err)) < 0)
		return rc;
	rc = pki_cert_info(pem, len, ret, err);
	free(pem);
	return rc;
}

/* Check the answer to a renewal against our CA file, name and new key. */
static int answer_check(const struct renewer *r, const Vigil__Renewed *rn, const char *cn,
			const char *key, vigil_err *err)
{
	struct pki_cert_info ours, theirs;
	char *ca = NULL;
	size_t len;
	int rc;

	if (rn == NULL || rn->certificate == NULL || rn->certificate[0] == '\0' || rn->ca == NULL)
		return verr_set(err, -EPROTO, "the console's answer has no certificate");
	if ((rc = fs_read_file(r->cfg->ca, TLS_PEM_MAX, &ca, &len, err)) < 0)
		return rc;
	/* The CA stays what it is: a renewal is no way to bring in another one. */
	rc = pki_cert_info(ca, len, &ours, err);
	if (rc == 0)
		rc = pki_cert_info(rn->ca, strlen(rn->ca), &theirs, err);
	if (rc == 0 && strcmp(ours.sha256, theirs.sha256) != 0)
		rc = verr_set(err, -EPROTO,
			      "the console signed with another CA (SHA-256 %s) than %s (%s)",
			      theirs.sha256, r->cfg->ca, ours.sha256);
	if (rc == 0)
		rc = pki_identity_check(ca, rn->certificate, key, cn, err);
	free(ca);
	return rc;
}

/* One renewal of the certificate described by cur.  0, or why not. */
static int renew_once(struct renewer *r, const struct pki_cert_info *cur, vigil_err *err)
{
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Renew req = VIGIL__RENEW__INIT;
	Vigil__Reply *reply = NULL;
	struct pki_cert_info fresh;
	char *key = NULL, *csr = NULL, until[32];
	int rc;

	if ((rc = pki_csr_new(cur->cn, &key, &csr, err)) < 0)
		return rc;
	req.csr = csr;
	env.seq = ++r->seq;
	env.body_case = VIGIL__ENVELOPE__BODY_RENEW;
	env.renew = &req;
	if ((rc = uplink_request(r->chan, &env, NULL, 0, RENEW_TIMEOUT_MS, &reply, err)) < 0)
		goto out;
	if (reply->status != VIGIL__REPLY__STATUS__OK) {
		rc = verr_set(
		    err, reply->status == VIGIL__REPLY__STATUS__REFUSED ? -EACCES : -EAGAIN,
		    "the console %s the renewal: %s",
		    reply->status == VIGIL__REPLY__STATUS__REFUSED ? "refused" : "could not make",
		    reply->error != NULL && reply->error[0] != '\0' ? reply->error
								    : "no reason given");
		goto out;
	}
	if ((rc = answer_check(r, reply->renewed, cur->cn, key, err)) < 0 ||
	    (rc = identity_write(r->cfg->cert, r->cfg->key, reply->renewed->certificate, key, false,
				 err)) < 0)
		goto out;
	if (pki_cert_info(reply->renewed->certificate, strlen(reply->renewed->certificate), &fresh,
			  err) < 0)
		fresh = (struct pki_cert_info){0};
	log_info("renewal: certificate %s replaces %s (valid until %s); dialing the consoles"
		 " again with it",
		 fresh.serial, cur->serial, utc(fresh.not_after, until));
	if ((rc = uplink_reload(r->up, r->cfg, err)) < 0)
		/* The files are in place: a restart uses them; the old connections go on meanwhile.
		 */
		log_error("renewal: the new certificate is in %s, but the uplink cannot use it"
			  " until a restart: %s",
			  r->cfg->cert, err->msg);
	rc = 0;
out:
	if (reply != NULL)
		vigil__reply__free_unpacked(reply, NULL);
	pki_secret_free(key);
	free(csr);
	return rc;
}

/* After a failed renewal, the wait before the next: sooner as the expiry nears. */
static time_t retry_after(time_t now, time_t not_after)
{
	time_t left = not_after - now, wait = left / 20;

	return wait < 1 ? 1 : wait > RENEW_CHECK_MAX_S ? RENEW_CHECK_MAX_S : wait;
}

static void *renew_main(void *arg)
{
	struct renewer *r = arg;
	char said[512] = "", when[32];

	for (;;) {
		struct pki_cert_info cur;
		vigil_err err = {0};
		time_t now, due;
		int rc;

		if ((rc = cert_read(r->cfg->cert, &cur, &err)) < 0 || cur.cn[0] == '\0') {
			if (strcmp(said, "read") != 0)
				log_warn("renewal: cannot read the certificate %s: %s",
					 r->cfg->cert,
					 rc < 0 ? err.msg : "it has no single host name");
			snprintf(said, sizeof(said), "read");
			if (nap(r, RENEW_CHECK_MAX_S))
				break;
			continue;
		}
		now = time(NULL);
		due = pki_renew_at(cur.not_before, cur.not_after);
		if (now < due) {
			said[0] = '\0';
			if (nap(r, due - now < RENEW_CHECK_MAX_S ? due - now : RENEW_CHECK_MAX_S))
				break;
			continue;
		}
		if (now >= cur.not_after) {
			if (strcmp(said, "expired") != 0)
				log_error(
				    "renewal: the certificate %s expired at %lld and cannot be"
				    " renewed: enroll this host again (docs/operations.md,"
				    " \"Enrolling hosts\")",
				    r->cfg->cert, (long long)cur.not_after);
			snprintf(said, sizeof(said), "expired");
			if (nap(r, RENEW_CHECK_MAX_S))
				break;
			continue;
		}
		rc = renew_once(r, &cur, &err);
		if (rc == -ECANCELED)
			break;
		if (rc < 0) {
			time_t wait = retry_after(now, cur.not_after);

			/* Once per reason: a console without renewal answers the same each time. */
			if (strcmp(said, err.msg) != 0)
				log_warn("renewal of certificate %s (expires at %s) failed, tried"
					 " again every %lld s or sooner: %s",
					 cur.serial, utc(cur.not_after, when), (long long)wait,
					 err.msg);
			snprintf(said, sizeof(said), "%s", err.msg);
			if (nap(r, wait))
				break;
			continue;
		}
		said[0] = '\0';
	}
	return NULL;
}

struct renewer *renewer_start(const struct defender_config *cfg, struct uplink *up, vigil_err *err)
{
	struct renewer *r = calloc(1, sizeof(*r));
	pthread_condattr_t ca;
	int rc;

	if (r == NULL) {
		verr_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	r->cfg = cfg;
	r->up = up;
	pthread_mutex_init(&r->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->wake, &ca);
	pthread_condattr_destroy(&ca);
	if ((r->chan = uplink_chan_open(up, err)) == NULL)
		goto fail;
	/* A renewal is not sent again by nng while it waits: the thread retries itself. */
	uplink_chan_set_resend(r->chan, RENEW_TIMEOUT_MS + 5000);
	if ((rc = pthread_create(&r->thread, NULL, renew_main, r)) != 0) {
		verr_set(err, -rc, "cannot start the renewal thread: %s", strerror(rc));
		goto fail;
	}
	return r;
fail:
	uplink_chan_close(r->chan);
	pthread_cond_destroy(&r->wake);
	pthread_mutex_destroy(&r->lock);
	free(r);
	return NULL;
}

void renewer_abort(struct renewer *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	r->stop = true;
	pthread_cond_broadcast(&r->wake);
	pthread_mutex_unlock(&r->lock);
	uplink_chan_abort(r->chan);
}

void renewer_stop(struct renewer *r)
{
	if (r == NULL)
		return;
	renewer_abort(r);
	pthread_join(r->thread, NULL);
	uplink_chan_close(r->chan);
	pthread_cond_destroy(&r->wake);
	pthread_mutex_destroy(&r->lock);
	free(r);
}
