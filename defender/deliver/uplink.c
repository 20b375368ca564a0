/* SPDX-License-Identifier: Apache-2.0 */
#include "deliver/uplink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>

#include "log.h"
#include "tls.h"

/*
 * nng's pipe events for one pipe may come in any order and on any thread:
 * REM_POST follows every ADD_PRE, also when ADD_POST never came (the pipe
 * died while being added), and may run before or beside ADD_POST.  So the
 * open connections are a table keyed by pipe id, the count is derived from
 * it, and a removal that comes first leaves a tombstone that the late
 * ADD_POST finds (and then adds nothing).  Pipe ids are not reused while the
 * socket lives, so a tombstone never hides another pipe.
 */
#define PIPE_TOMBSTONES 32

struct uplink {
	nng_socket sock;
	bool sock_open;
	/* dialers and tls: replaced by uplink_reload (any thread), under dial_lock. */
	pthread_mutex_t dial_lock;
	size_t ndialers;
	nng_dialer dialers[DEFENDER_MAX_CONSOLES];
	nng_tls_config *tls[DEFENDER_MAX_CONSOLES];
	const char *urls[DEFENDER_MAX_CONSOLES];
	pthread_mutex_t pipes_lock;	  /* pipes, npipes, gone, ngone, pipes_untracked */
	nng_pipe pipes[UPLINK_PIPES_MAX]; /* open: added and not yet removed */
	size_t npipes;
	int gone[PIPE_TOMBSTONES]; /* removed before their ADD_POST, newest last */
	size_t ngone;
	uint64_t pipes_untracked; /* added while the table was full (not closable by id) */
	/* Stopping: no new diagnosis, and the one under way is cancelled (under pipes_lock). */
	bool aborted;
	/* Dialers uplink_reload closed (under pipes_lock): their connections end on purpose. */
	uint32_t retired[DEFENDER_MAX_CONSOLES];
	size_t nretired;
	nng_aio *diag_aio;
};

/* Whether the pipe was added; called with the lock held. */
static bool pipe_add_locked(struct uplink *up, nng_pipe p)
{
	int id = nng_pipe_id(p);

	for (size_t i = 0; i < up->ngone; i++) {
		if (up->gone[i] == id) {
			memmove(up->gone + i, up->gone + i + 1, (up->ngone - i - 1) * sizeof(id));
			up->ngone--;
			return false; /* already removed: nothing to add */
		}
	}
	if (up->npipes == UPLINK_PIPES_MAX) {
		up->pipes_untracked++;
		return false;
	}
	up->pipes[up->npipes++] = p;
	return true;
}

/* Whether the pipe was one of the open ones; called with the lock held. */
static bool pipe_remove_locked(struct uplink *up, nng_pipe p)
{
	int id = nng_pipe_id(p);

	for (size_t i = 0; i < up->npipes; i++) {
		if (nng_pipe_id(up->pipes[i]) == id) {
			up->pipes[i] = up->pipes[--up->npipes];
			return true;
		}
	}
	/* Before (or instead of) its ADD_POST: remember it, dropping the oldest. */
	if (up->ngone == PIPE_TOMBSTONES) {
		memmove(up->gone, up->gone + 1, (PIPE_TOMBSTONES - 1) * sizeof(id));
		up->ngone--;
	}
	up->gone[up->ngone++] = id;
	return false;
}

static void on_pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct uplink *up = arg;
	nng_sockaddr sa;
	char addr[64] = "console";
	bool counted, stopping, retired = false;

	if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) == 0 && sa.s_family == NNG_AF_INET) {
		const uint8_t *a = (const uint8_t *)&sa.s_in.sa_addr;
		snprintf(addr, sizeof(addr), "%u.%u.%u.%u:%u", a[0], a[1], a[2], a[3],
			 (unsigned)ntohs(sa.s_in.sa_port));
	}
	pthread_mutex_lock(&up->pipes_lock);
	counted = ev == NNG_PIPE_EV_ADD_POST ? pipe_add_locked(up, p) : pipe_remove_locked(up, p);
	stopping = up->aborted;
	for (size_t i = 0; i < up->nretired && !retired; i++)
		retired = up->retired[i] == (uint32_t)nng_dialer_id(nng_pipe_dialer(p));
	pthread_mutex_unlock(&up->pipes_lock);
	if (ev == NNG_PIPE_EV_ADD_POST && counted)
		log_info("connected to console %s (mutual TLS verified)", addr);
	else if (ev == NNG_PIPE_EV_REM_POST && counted && stopping)
		log_info("closed the connection to console %s on shutdown", addr);
	else if (ev == NNG_PIPE_EV_REM_POST && counted && retired)
		log_info("closed the connection to console %s made with the previous certificate",
			 addr);
	else if (ev == NNG_PIPE_EV_REM_POST && counted)
		log_warn("lost connection to console %s; redialing", addr);
}

/* The host part of a tls+tcp:// URL, for the server-name check. */
static int url_host(const char *url, char *buf, size_t len, vigil_err *err)
{
	nng_url *u;
	int rv = nng_url_parse(&u, url);

	if (rv != 0)
		return verr_set(err, -EINVAL, "console URL '%s' is not valid: %s", url,
				nng_strerror(rv));
	if (u->u_hostname == NULL || u->u_hostname[0] == '\0' || u->u_port == NULL ||
	    u->u_port[0] == '\0' || strcmp(u->u_port, "0") == 0) {
		nng_url_free(u);
		return verr_set(err, -EINVAL, "console URL '%s' needs a host and a port", url);
	}
	snprintf(buf, len, "%s", u->u_hostname);
	nng_url_free(u);
	return 0;
}

/*
 * A TLS configuration from cfg's files for url and a dialer on up's socket
 * with it, started (non-blocking: a console down now is redialed in the
 * background).  On failure nothing is left behind.
 */
static int dial_one(struct uplink *up, const struct defender_config *cfg, const char *url,
		    nng_dialer *ret_dialer, nng_tls_config **ret_tls, vigil_err *err)
{
	const struct tls_files files = {.ca = cfg->ca, .cert = cfg->cert, .key = cfg->key};
	nng_tls_config *tls = NULL;
	nng_dialer d;
	char host[256];
	int rv, rc;

	if ((rc = url_host(url, host, sizeof(host), err)) < 0)
		return rc;
	if ((rc = tls_config_new(NNG_TLS_MODE_CLIENT, NNG_TLS_AUTH_MODE_REQUIRED, &files,
				 cfg->server_name != NULL ? cfg->server_name : host, &tls, err)) <
	    0)
		return rc;
	if ((rv = nng_dialer_create(&d, up->sock, url)) != 0) {
		nng_tls_config_free(tls);
		return verr_set(err, -EINVAL, "cannot dial console '%s': %s", url,
				nng_strerror(rv));
	}
	if ((rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls)) != 0) {
		nng_dialer_close(d);
		nng_tls_config_free(tls);
		return verr_set(err, -EINVAL, "cannot set TLS for '%s': %s", url, nng_strerror(rv));
	}
	if ((rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK)) != 0) {
		nng_dialer_close(d);
		nng_tls_config_free(tls);
		return verr_set(err, -EINVAL, "cannot start dialing '%s': %s", url,
				nng_strerror(rv));
	}
	*ret_dialer = d;
	*ret_tls = tls;
	return 0;
}

struct uplink *uplink_open(const struct defender_config *cfg, vigil_err *err)
{
	struct uplink *up;
	int rv, rc;

	up = calloc(1, sizeof(*up));
	if (up == NULL) {
		verr_set(err, -ENOMEM, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&up->pipes_lock, NULL);
	pthread_mutex_init(&up->dial_lock, NULL);
	if ((rv = nng_req0_open(&up->sock)) != 0) {
		rc = verr_set(err, -ENOMEM, "cannot open req socket: %s", nng_strerror(rv));
		goto fail;
	}
	up->sock_open = true;
	nng_socket_set_size(up->sock, NNG_OPT_RECVMAXSZ, UPLINK_REPLY_MAX);
	nng_socket_set_ms(up->sock, NNG_OPT_RECONNMINT, 100);
	nng_socket_set_ms(up->sock, NNG_OPT_RECONNMAXT, 5000);
	/* A request caught by a connection drop is resent on the next connection. */
	nng_socket_set_ms(up->sock, NNG_OPT_REQ_RESENDTIME, 2000);
	nng_pipe_notify(up->sock, NNG_PIPE_EV_ADD_POST, on_pipe_event, up);
	nng_pipe_notify(up->sock, NNG_PIPE_EV_REM_POST, on_pipe_event, up);

	for (size_t i = 0; i < cfg->nconsoles; i++) {
		if ((rc = dial_one(up, cfg, cfg->consoles[i], &up->dialers[i], &up->tls[i], err)) <
		    0)
			goto fail;
		up->urls[i] = cfg->consoles[i];
		up->ndialers++;
	}
	return up;
fail:
	uplink_close(up);
	errno = -rc;
	return NULL;
}

struct uplink_chan {
	nng_ctx ctx;
	nng_aio *aio;
	atomic_bool aborted; /* for good: every later request fails at once */
};

struct uplink_chan *uplink_chan_open(struct uplink *up, vigil_err *err)
{
	struct uplink_chan *ch = calloc(1, sizeof(*ch));
	int rv;

	if (ch == NULL) {
		verr_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	if ((rv = nng_ctx_open(&ch->ctx, up->sock)) != 0) {
		verr_set(err, -ENOMEM, "cannot open a request context: %s", nng_strerror(rv));
		free(ch);
		return NULL;
	}
	if ((rv = nng_aio_alloc(&ch->aio, NULL, NULL)) != 0) {
		verr_set(err, -ENOMEM, "out of memory");
		nng_ctx_close(ch->ctx);
		free(ch);
		return NULL;
	}
	/* A request caught by a connection drop is resent on the next connection. */
	nng_ctx_set_ms(ch->ctx, NNG_OPT_REQ_RESENDTIME, 2000);
	return ch;
}

void uplink_chan_set_resend(struct uplink_chan *ch, int ms)
{
	nng_ctx_set_ms(ch->ctx, NNG_OPT_REQ_RESENDTIME, ms);
}

void uplink_chan_abort(struct uplink_chan *ch)
{
	atomic_store(&ch->aborted, true);
	nng_aio_cancel(ch->aio);
}

void uplink_chan_close(struct uplink_chan *ch)
{
	if (ch == NULL)
		return;
	nng_aio_free(ch->aio);
	nng_ctx_close(ch->ctx);
	free(ch);
}

static int request_errno(int rv)
{
	return rv == NNG_ETIMEDOUT ? -ETIMEDOUT : rv == NNG_ECANCELED ? -ECANCELED : -EIO;
}

int uplink_request(struct uplink_chan *ch, const Vigil__Envelope *env, const void *data, size_t len,
		   int timeout_ms, Vigil__Reply **ret_reply, vigil_err *err)
{
	Vigil__Reply *reply;
	nng_msg *msg;
	int rv;

	if (atomic_load(&ch->aborted))
		return verr_set(err, -ECANCELED, "stopping");
	if (env != NULL)
		len = vigil__envelope__get_packed_size(env);
	if ((rv = nng_msg_alloc(&msg, len)) != 0)
		return verr_set(err, -ENOMEM, "out of memory");
	if (env != NULL)
		vigil__envelope__pack(env, nng_msg_body(msg));
	else
		memcpy(nng_msg_body(msg), data, len);
	nng_aio_set_msg(ch->aio, msg);
	nng_aio_set_timeout(ch->aio, timeout_ms);
	nng_ctx_send(ch->ctx, ch->aio);
	/* An abort between the check above and the send must not wait out the timeout. */
	if (atomic_load(&ch->aborted))
		nng_aio_cancel(ch->aio);
	nng_aio_wait(ch->aio);
	if ((rv = nng_aio_result(ch->aio)) != 0) {
		nng_msg_free(nng_aio_get_msg(ch->aio));
		return verr_set(err, request_errno(rv), "cannot send to console: %s",
				nng_strerror(rv));
	}
	nng_aio_set_timeout(ch->aio, timeout_ms);
	nng_ctx_recv(ch->ctx, ch->aio);
	if (atomic_load(&ch->aborted))
		nng_aio_cancel(ch->aio);
	nng_aio_wait(ch->aio);
	if ((rv = nng_aio_result(ch->aio)) != 0)
		return verr_set(err, request_errno(rv), "no reply from any console: %s",
				nng_strerror(rv));
	msg = nng_aio_get_msg(ch->aio);
	reply = vigil__reply__unpack(NULL, nng_msg_len(msg), nng_msg_body(msg));
	nng_msg_free(msg);
	if (reply == NULL)
		return verr_set(err, -EBADMSG, "console sent a malformed reply");
	*ret_reply = reply;
	return 0;
}

int uplink_close_links(struct uplink *up)
{
	nng_pipe pipes[UPLINK_PIPES_MAX];
	size_t n;

	pthread_mutex_lock(&up->pipes_lock);
	n = up->npipes;
	memcpy(pipes, up->pipes, n * sizeof(pipes[0]));
	pthread_mutex_unlock(&up->pipes_lock);
	/* The pipe-removal callback takes each out of the list; the dialers redial. */
	for (size_t i = 0; i < n; i++)
		nng_pipe_close(pipes[i]);
	return (int)n;
}

int uplink_connections(struct uplink *up)
{
	size_t n;

	pthread_mutex_lock(&up->pipes_lock);
	n = up->npipes;
	pthread_mutex_unlock(&up->pipes_lock);
	return (int)n;
}

int uplink_reload(struct uplink *up, const struct defender_config *cfg, vigil_err *err)
{
	nng_dialer fresh[DEFENDER_MAX_CONSOLES], old[DEFENDER_MAX_CONSOLES];
	nng_tls_config *fresh_tls[DEFENDER_MAX_CONSOLES], *old_tls[DEFENDER_MAX_CONSOLES];
	size_t n = up->ndialers;
	int rc;

	/* The new dialers first, so that a connection with the new certificate is on its way. */
	for (size_t i = 0; i < n; i++) {
		if ((rc = dial_one(up, cfg, up->urls[i], &fresh[i], &fresh_tls[i], err)) < 0) {
			while (i-- > 0) {
				nng_dialer_close(fresh[i]);
				nng_tls_config_free(fresh_tls[i]);
			}
			return rc;
		}
	}
	pthread_mutex_lock(&up->dial_lock);
	memcpy(old, up->dialers, n * sizeof(old[0]));
	memcpy(old_tls, up->tls, n * sizeof(old_tls[0]));
	memcpy(up->dialers, fresh, n * sizeof(fresh[0]));
	memcpy(up->tls, fresh_tls, n * sizeof(fresh_tls[0]));
	pthread_mutex_unlock(&up->dial_lock);
	pthread_mutex_lock(&up->pipes_lock);
	for (size_t i = 0; i < n; i++)
		up->retired[i] = (uint32_t)nng_dialer_id(old[i]);
	up->nretired = n;
	pthread_mutex_unlock(&up->pipes_lock);
	/*
	 * Closing a dialer closes its connections; a request in flight on one
	 * is sent again on the next (req resends), and the spool's batches
	 * wait for their acknowledgement as after any lost connection.
	 */
	for (size_t i = 0; i < n; i++) {
		nng_dialer_close(old[i]);
		nng_tls_config_free(old_tls[i]);
	}
	return 0;
}

void uplink_diagnose(struct uplink *up, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < up->ndialers && off < len; i++) {
		nng_stream_dialer *d = NULL;
		nng_tls_config *tls;
		nng_aio *aio = NULL;
		int rv;

		/* Held: a renewal may replace it meanwhile (uplink_reload). */
		pthread_mutex_lock(&up->dial_lock);
		tls = up->tls[i];
		nng_tls_config_hold(tls);
		pthread_mutex_unlock(&up->dial_lock);
		rv = nng_stream_dialer_alloc(&d, up->urls[i]);
		if (rv == 0)
			rv = nng_stream_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls);
		if (rv == 0)
			rv = nng_aio_alloc(&aio, NULL, NULL);
		if (rv == 0) {
			/* uplink_abort cancels what is under way here. */
			pthread_mutex_lock(&up->pipes_lock);
			if (up->aborted)
				rv = NNG_ECANCELED;
			else
				up->diag_aio = aio;
			pthread_mutex_unlock(&up->pipes_lock);
		}
		if (rv == 0) {
			nng_aio_set_timeout(aio, 3000);
			nng_stream_dialer_dial(d, aio);
			nng_aio_wait(aio);
			rv = nng_aio_result(aio);
		}
		if (rv == 0) {
			/*
			 * The TLS handshake runs on first I/O: read the console's
			 * protocol header to find out whether it accepts us.
			 */
			nng_stream *s = nng_aio_get_output(aio, 0);
			uint8_t hdr[8];
			nng_iov iov = {.iov_buf = hdr, .iov_len = sizeof(hdr)};

			nng_aio_set_iov(aio, 1, &iov);
			nng_aio_set_timeout(aio, 3000);
			nng_stream_recv(s, aio);
			nng_aio_wait(aio);
			rv = nng_aio_result(aio);
			nng_stream_free(s);
		}
		pthread_mutex_lock(&up->pipes_lock);
		up->diag_aio = NULL;
		pthread_mutex_unlock(&up->pipes_lock);
		off += (size_t)snprintf(
		    buf + off, len - off, "%s%s: %s", i ? "; " : "", up->urls[i],
		    rv == 0		  ? "TLS handshake succeeds (console busy?)"
		    : rv == NNG_EPEERAUTH ? "the console's certificate was rejected (CA, name "
					    "or validity)"
		    : rv == NNG_ECRYPTO	  ? "TLS handshake failed (the console may have "
					    "refused this host's certificate)"
					  : nng_strerror(rv));
		nng_aio_free(aio);
		nng_stream_dialer_free(d);
		nng_tls_config_free(tls);
	}
}

void uplink_abort(struct uplink *up)
{
	pthread_mutex_lock(&up->pipes_lock);
	up->aborted = true;
	if (up->diag_aio != NULL)
		nng_aio_cancel(up->diag_aio);
	pthread_mutex_unlock(&up->pipes_lock);
}

void uplink_close(struct uplink *up)
{
	if (up == NULL)
		return;
	/* The pipes closed now are ours: no "lost connection" for them. */
	pthread_mutex_lock(&up->pipes_lock);
	up->aborted = true;
	pthread_mutex_unlock(&up->pipes_lock);
	if (up->sock_open)
		nng_close(up->sock);
	for (size_t i = 0; i < DEFENDER_MAX_CONSOLES; i++)
		if (up->tls[i] != NULL)
			nng_tls_config_free(up->tls[i]);
	pthread_mutex_destroy(&up->pipes_lock);
	pthread_mutex_destroy(&up->dial_lock);
	free(up);
}
