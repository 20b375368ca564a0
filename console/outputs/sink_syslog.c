/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The syslog sink: RFC 5424 messages (syslog_format.h) over TCP with
 * octet-counting framing (RFC 6587), or over TLS (RFC 5425) through
 * Vigil's TLS engine (common/tls.h: the receiver's certificate must chain
 * to ca= and carry the target's name or server_name=; TLS 1.2, ECDHE,
 * AEAD), as nng streams.
 *
 * A batch is gathered and written in one go; every write must finish
 * within SINK_IO_TIMEOUT_MS (a receiver that stops reading counts as down
 * then).  Syslog has no acknowledgement: a receive is kept pending on the
 * connection, so a receiver that closes or resets is noticed at once, and
 * a batch counts as delivered only once the connection outlived it by
 * SYSLOG_CONFIRM_MS (sink.h); otherwise it is sent again on a new
 * connection.  What a receiver's kernel had taken when its host died is
 * beyond any sender's knowledge (docs/outputs.md).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "outputs/sink.h"
#include "outputs/syslog_format.h"
#include "tls.h"

#define SYSLOG_CONFIRM_MS 1000
/* A batch's messages are gathered up to this and written in one go. */
#define SYSLOG_BUF_MAX (256 * 1024)

struct syslog {
	nng_stream_dialer *dialer;
	nng_tls_config *tls;
	nng_stream *stream;
	nng_aio *aio;	/* dial and send, waited for */
	nng_aio *rxaio; /* the pending receive that notices a close; one per connection */
	char rxbuf[256];
	atomic_bool dead;
	char *buf;
	size_t len;
};

static void rx_done(void *arg)
{
	struct sink *s = arg;
	struct syslog *l = s->priv;
	nng_iov iov = {.iov_buf = l->rxbuf, .iov_len = sizeof(l->rxbuf)};

	if (nng_aio_result(l->rxaio) != 0) {
		atomic_store(&l->dead, true);
		return;
	}
	/* A receiver has nothing to say; read on, for the close. */
	nng_aio_set_iov(l->rxaio, 1, &iov);
	nng_stream_recv(l->stream, l->rxaio);
}

/* A failed nng operation as a sentence. */
static int io_err(struct sink *s, const char *what, int rv, vigil_err *err)
{
	const char *why = nng_strerror(rv);

	if (rv == NNG_EPEERAUTH || rv == NNG_ECRYPTO)
		why = "TLS failed: the receiver's certificate was rejected (it must chain to the"
		      " configured ca and name the target) or it refused ours";
	else if (rv == NNG_ETIMEDOUT)
		why = "no progress within 10 s (the receiver is not reading)";
	return verr_set(err, rv == NNG_ETIMEDOUT ? -ETIMEDOUT : -ECONNRESET, "%s %s: %s", what,
			s->conf->where, why);
}

static void syslog_close(struct sink *s)
{
	struct syslog *l = s->priv;

	if (l->stream != NULL) {
		/* The pending receive ends with the close; a stopped aio is done for good. */
		nng_stream_close(l->stream);
		nng_aio_stop(l->rxaio);
		nng_aio_free(l->rxaio);
		l->rxaio = NULL;
		nng_stream_free(l->stream);
		l->stream = NULL;
	}
	l->len = 0;
}

static int syslog_open(struct sink *s, vigil_err *err)
{
	struct syslog *l = s->priv;
	nng_iov iov = {.iov_buf = l->rxbuf, .iov_len = sizeof(l->rxbuf)};
	int rv;

	/* A receiver may close a connection that stayed idle: a new one, quietly. */
	if (l->stream != NULL && atomic_load(&l->dead))
		syslog_close(s);
	if (l->stream != NULL)
		return 0;
	nng_aio_set_timeout(l->aio, SINK_IO_TIMEOUT_MS);
	nng_stream_dialer_dial(l->dialer, l->aio);
	nng_aio_wait(l->aio);
	if ((rv = nng_aio_result(l->aio)) != 0)
		return io_err(s, "cannot connect to", rv, err);
	l->stream = nng_aio_get_output(l->aio, 0);
	if ((rv = nng_aio_alloc(&l->rxaio, rx_done, s)) != 0) {
		nng_stream_free(l->stream);
		l->stream = NULL;
		return verr_set(err, -ENOMEM, "out of memory");
	}
	(void)nng_stream_set_bool(l->stream, NNG_OPT_TCP_KEEPALIVE, true);
	atomic_store(&l->dead, false);
	nng_aio_set_iov(l->rxaio, 1, &iov);
	nng_stream_recv(l->stream, l->rxaio);
	return 0;
}

static int syslog_flush(struct sink *s, vigil_err *err)
{
	struct syslog *l = s->priv;
	size_t off = 0;
	int rv;

	if (l->len == 0)
		return 0;
	if (l->stream == NULL || atomic_load(&l->dead)) {
		l->len = 0;
		return verr_set(err, -ECONNRESET, "the receiver at %s closed the connection",
				s->conf->where);
	}
	while (off < l->len) {
		nng_iov iov = {.iov_buf = l->buf + off, .iov_len = l->len - off};

		nng_aio_set_iov(l->aio, 1, &iov);
		nng_aio_set_timeout(l->aio, SINK_IO_TIMEOUT_MS);
		nng_stream_send(l->stream, l->aio);
		nng_aio_wait(l->aio);
		if ((rv = nng_aio_result(l->aio)) != 0) {
			l->len = 0;
			return io_err(s, "cannot write to", rv, err);
		}
		off += nng_aio_count(l->aio);
	}
	l->len = 0;
	return 0;
}

static int syslog_send(struct sink *s, const json_t *audit, int *retry_after_ms, vigil_err *err)
{
	struct syslog *l = s->priv;
	const struct syslog_opts o = {
	    .facility = s->conf->facility, .hostname = s->hostname, .sd_id = s->conf->sd_id};
	size_t n;
	int rc;

	(void)retry_after_ms;
	if (l->len + SYSLOG_FRAME_MAX > SYSLOG_BUF_MAX && (rc = syslog_flush(s, err)) < 0)
		return rc;
	n = syslog_format(audit, &o, l->buf + l->len, SYSLOG_BUF_MAX - l->len);
	if (n == 0)
		return verr_set(err, -ENOSPC, "an audit did not fit a syslog message");
	l->len += n;
	return 0;
}

static bool syslog_alive(struct sink *s)
{
	struct syslog *l = s->priv;

	return l->stream != NULL && !atomic_load(&l->dead);
}

static void syslog_cancel(struct sink *s)
{
	struct syslog *l = s->priv;

	nng_aio_cancel(l->aio);
}

static void syslog_free(struct sink *s)
{
	struct syslog *l = s->priv;

	if (l == NULL)
		return;
	syslog_close(s);
	nng_aio_free(l->aio);
	if (l->dialer != NULL)
		nng_stream_dialer_free(l->dialer);
	if (l->tls != NULL)
		nng_tls_config_free(l->tls);
	free(l->buf);
	free(l);
	s->priv = NULL;
}

static const struct sink_ops syslog_ops = {
    .buffered = true,
    .confirm_ms = SYSLOG_CONFIRM_MS,
    .open = syslog_open,
    .send = syslog_send,
    .flush = syslog_flush,
    .alive = syslog_alive,
    .close = syslog_close,
    .cancel = syslog_cancel,
    .free = syslog_free,
};

int sink_syslog_init(struct sink *s, vigil_err *err)
{
	const struct output_conf *c = s->conf;
	struct syslog *l = calloc(1, sizeof(*l));
	int rv, rc;

	if (l == NULL || (l->buf = malloc(SYSLOG_BUF_MAX)) == NULL) {
		free(l);
		return verr_set(err, -ENOMEM, "out of memory");
	}
	s->priv = l;
	s->ops = &syslog_ops;
	if ((rv = nng_aio_alloc(&l->aio, NULL, NULL)) != 0 ||
	    (rv = nng_stream_dialer_alloc(&l->dialer, c->url)) != 0) {
		rc = verr_set(err, -ENOMEM, "output %s: cannot set up a connection to %s: %s",
			      c->name, c->where, nng_strerror(rv));
		goto fail;
	}
	if (c->tls) {
		const struct tls_files files = {.ca = c->ca,
						.cert = c->cert[0] != '\0' ? c->cert : NULL,
						.key = c->key[0] != '\0' ? c->key : NULL};
		char host[sizeof(c->where)];

		snprintf(host, sizeof(host), "%s", c->where);
		/* The name the receiver's certificate must carry: server_name, else the target's.
		 */
		char *colon = strrchr(host, ':');
		if (colon != NULL)
			*colon = '\0';
		if (host[0] == '[') {
			memmove(host, host + 1, strlen(host));
			host[strcspn(host, "]")] = '\0';
		}
		if ((rc = tls_config_new(NNG_TLS_MODE_CLIENT, NNG_TLS_AUTH_MODE_REQUIRED, &files,
					 c->server_name[0] != '\0' ? c->server_name : host, &l->tls,
					 err)) < 0)
			goto fail;
		if ((rv = nng_stream_dialer_set_ptr(l->dialer, NNG_OPT_TLS_CONFIG, l->tls)) != 0) {
			rc = verr_set(err, -EINVAL, "output %s: cannot use TLS: %s", c->name,
				      nng_strerror(rv));
			goto fail;
		}
	}
	return 0;
fail:
	syslog_free(s);
	return rc;
}
