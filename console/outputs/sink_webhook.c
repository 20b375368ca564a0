/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The webhook sink: an HTTP(S) POST per audit, with nng's HTTP client
 * over Vigil's TLS engine (the receiver's certificate must chain to ca=,
 * by default the system's bundle, and name the URL's host or
 * server_name=).
 *
 *   format=json   the body is the audit object of the API (docs/api.md)
 *   format=slack  {"text": "..."}: a readable line for a Slack-compatible
 *                 incoming webhook (Slack, Mattermost, Rocket.Chat)
 *
 * Every request carries X-Vigil-Audit-Id (the audit's id): delivery is
 * at-least-once, and a receiver that must not see an audit twice drops
 * repeats by it.  Answers: 2xx delivered; 408, 429 and 5xx (and no answer
 * within SINK_IO_TIMEOUT_MS, or a connection that fails) mean retry later,
 * after Retry-After when the receiver sends one (seconds); any other
 * status (3xx: redirects are not followed; 4xx) refuses the audit for
 * good: SINK_REFUSED with the status, and the worker reports it.
 *
 * The connection is kept between requests when the receiver allows it
 * (HTTP/1.1, no "Connection: close", a body of known length up to
 * WEBHOOK_BODY_MAX, which is read and dropped); a kept connection that
 * turns out closed is retried once on a new one.  Answers are not
 * trusted: nng's own client (nng_http_client_transact) allocates whatever
 * Content-Length an answer claims, so the sink reads the headers itself
 * and never more than WEBHOOK_BODY_MAX of a body.
 *
 * The URL may carry a token (Slack's do): it is never logged, only the
 * host and port (output_conf.where).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <nng/supplemental/tls/tls.h>

#include "outputs/sink.h"
#include "tls.h"
#include "utf8.h"

#define WEBHOOK_BODY_MAX (64 * 1024)
/* A Retry-After further out than this is taken as this. */
#define WEBHOOK_RETRY_AFTER_MAX_S 600

struct webhook {
	nng_url *url;
	nng_http_client *client;
	nng_tls_config *tls;
	nng_http_conn *conn;
	bool conn_used; /* the connection carried a request before */
	nng_aio *aio;
	char body[WEBHOOK_BODY_MAX];
};

static int io_err(struct sink *s, const char *what, int rv, vigil_err *err)
{
	const char *why = nng_strerror(rv);

	if (rv == NNG_EPEERAUTH || rv == NNG_ECRYPTO)
		why = "TLS failed: the receiver's certificate was rejected (it must chain to the"
		      " configured ca and name the URL's host)";
	else if (rv == NNG_ETIMEDOUT)
		why = "no answer within 10 s";
	return verr_set(err, rv == NNG_ETIMEDOUT ? -ETIMEDOUT : -ECONNRESET, "%s %s: %s", what,
			s->conf->where, why);
}

static void webhook_close(struct sink *s)
{
	struct webhook *w = s->priv;

	if (w->conn != NULL)
		nng_http_conn_close(w->conn);
	w->conn = NULL;
}

static int webhook_open(struct sink *s, vigil_err *err)
{
	struct webhook *w = s->priv;
	int rv;

	if (w->conn != NULL)
		return 0;
	nng_aio_set_timeout(w->aio, SINK_IO_TIMEOUT_MS);
	nng_http_client_connect(w->client, w->aio);
	nng_aio_wait(w->aio);
	if ((rv = nng_aio_result(w->aio)) != 0)
		return io_err(s, "cannot connect to", rv, err);
	w->conn = nng_aio_get_output(w->aio, 0);
	w->conn_used = false;
	return 0;
}

/* Run one operation of the connection to its end. */
static int wait_op(struct webhook *w)
{
	nng_aio_wait(w->aio);
	return nng_aio_result(w->aio);
}

/* Seconds of a Retry-After header (delta-seconds only; an HTTP date counts as none), in ms. */
static int retry_after_ms(const char *v)
{
	long s;
	char *end;

	if (v == NULL)
		return 0;
	s = strtol(v, &end, 10);
	if (end == v || s < 0)
		return 0;
	if (s > WEBHOOK_RETRY_AFTER_MAX_S)
		s = WEBHOOK_RETRY_AFTER_MAX_S;
	return (int)s * 1000;
}

/*
 * After the headers of an answer: read and drop its body when that is
 * small and of known length, so the connection can carry the next request;
 * else close it.
 */
static void finish_answer(struct sink *s, nng_http_res *res)
{
	struct webhook *w = s->priv;
	const char *cl = nng_http_res_get_header(res, "Content-Length");
	const char *te = nng_http_res_get_header(res, "Transfer-Encoding");
	const char *conn = nng_http_res_get_header(res, "Connection");
	const char *ver = nng_http_res_get_version(res);
	char *end = NULL;
	unsigned long len = cl != NULL ? strtoul(cl, &end, 10) : 0;
	bool keep = cl != NULL && end != cl && *end == '\0' && len <= WEBHOOK_BODY_MAX &&
		    te == NULL && (conn == NULL || strcasestr(conn, "close") == NULL) &&
		    ver != NULL && strcmp(ver, "HTTP/1.1") == 0;

	if (keep && len > 0) {
		nng_iov iov = {.iov_buf = w->body, .iov_len = len};

		nng_aio_set_iov(w->aio, 1, &iov);
		nng_aio_set_timeout(w->aio, SINK_IO_TIMEOUT_MS);
		nng_http_conn_read_all(w->conn, w->aio);
		keep = wait_op(w) == 0;
	}
	if (!keep)
		webhook_close(s);
}

/* "*HIGH* new_program on web-1: summary (audit 7)", with &, < and > escaped for Slack. */
void sink_slack_text(const json_t *audit, char *out, size_t outlen)
{
	const char *sev = json_string_value(json_object_get(audit, "severity"));
	const char *kind = json_string_value(json_object_get(audit, "kind"));
	const char *host = json_string_value(json_object_get(audit, "host_id"));
	const char *summary = json_string_value(json_object_get(audit, "summary"));
	json_t *id = json_object_get(audit, "id");
	char raw[4096], upper[16];
	size_t n = 0;

	snprintf(upper, sizeof(upper), "%s", sev != NULL ? sev : "?");
	for (char *p = upper; *p != '\0'; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	snprintf(raw, sizeof(raw), "%s on %s: %s (audit %" JSON_INTEGER_FORMAT ")",
		 kind != NULL ? kind : "?", host != NULL && host[0] != '\0' ? host : "the console",
		 summary != NULL ? summary : "",
		 json_is_integer(id) ? json_integer_value(id) : (json_int_t)0);
	/*
	 * Slack reads <...> as links and mentions (<!channel>): a host must not
	 * be able to page everybody through a file name.  Its own escapes.
	 */
	n = (size_t)snprintf(out, outlen, "*%s* ", upper);
	for (size_t i = 0; raw[i] != '\0' && n < outlen; i++) {
		const char *rep = raw[i] == '&'	  ? "&amp;"
				  : raw[i] == '<' ? "&lt;"
				  : raw[i] == '>' ? "&gt;"
						  : NULL;
		size_t rl = rep != NULL ? strlen(rep) : 1;

		if (n + rl >= outlen)
			break;
		if (rep != NULL)
			memcpy(out + n, rep, rl);
		else
			out[n] = raw[i];
		n += rl;
	}
	/* A cut in the middle of a UTF-8 character is dropped. */
	while (n > 0 && ((unsigned char)out[n - 1] & 0xc0) == 0x80)
		n--;
	if (n > 0 && ((unsigned char)out[n - 1] & 0xc0) == 0xc0)
		n--;
	out[n < outlen ? n : outlen - 1] = '\0';
}

/* The body for audit (a new string, free it), or NULL when out of memory. */
static char *body_of(const struct sink *s, const json_t *audit)
{
	char text[4200];
	json_t *o;
	char *b;

	if (s->conf->format == OUTPUT_FORMAT_JSON)
		return json_dumps(audit, JSON_COMPACT);
	sink_slack_text(audit, text, sizeof(text));
	o = json_pack("{s:s}", "text", text);
	b = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return b;
}

/* One request on the open connection: the status, or a negative nng error. */
static int transact(struct sink *s, nng_http_req *req, nng_http_res *res)
{
	struct webhook *w = s->priv;
	int rv;

	w->conn_used = true;
	nng_aio_set_timeout(w->aio, SINK_IO_TIMEOUT_MS);
	nng_http_conn_write_req(w->conn, req, w->aio);
	if ((rv = wait_op(w)) != 0)
		return -rv;
	nng_aio_set_timeout(w->aio, SINK_IO_TIMEOUT_MS);
	nng_http_conn_read_res(w->conn, res, w->aio);
	if ((rv = wait_op(w)) != 0)
		return -rv;
	return nng_http_res_get_status(res);
}

static int webhook_send(struct sink *s, const json_t *audit, int *ret_retry_ms, vigil_err *err)
{
	struct webhook *w = s->priv;
	nng_http_req *req = NULL;
	nng_http_res *res = NULL;
	char idtext[24];
	char *body = body_of(s, audit);
	int rv, rc, status = 0;

	*ret_retry_ms = 0;
	snprintf(idtext, sizeof(idtext), "%" JSON_INTEGER_FORMAT,
		 json_integer_value(json_object_get(audit, "id")));
	if (body == NULL || (rv = nng_http_req_alloc(&req, w->url)) != 0 ||
	    (rv = nng_http_req_set_method(req, "POST")) != 0 ||
	    (rv = nng_http_req_set_header(req, "Content-Type", "application/json")) != 0 ||
	    (rv = nng_http_req_set_header(req, "User-Agent", "vigil-console/" VIGIL_VERSION)) !=
		0 ||
	    (rv = nng_http_req_set_header(req, "X-Vigil-Audit-Id", idtext)) != 0 ||
	    (rv = nng_http_req_copy_data(req, body, strlen(body))) != 0) {
		rc = verr_set(err, -ENOMEM, "out of memory building a request");
		goto out;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		bool reused;

		if ((rc = webhook_open(s, err)) < 0)
			goto out;
		reused = w->conn_used;
		nng_http_res_free(res);
		res = NULL;
		if ((rv = nng_http_res_alloc(&res)) != 0) {
			rc = verr_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		status = transact(s, req, res);
		if (status > 0)
			break;
		webhook_close(s);
		/* A kept connection the receiver had closed meanwhile: once more, on a new one. */
		if (reused && (status == -NNG_ECONNSHUT || status == -NNG_ECLOSED ||
			       status == -NNG_ECONNRESET))
			continue;
		rc = io_err(s, "no answer from", -status, err);
		goto out;
	}
	if (status <= 0) {
		rc = io_err(s, "no answer from", -status, err);
		goto out;
	}
	finish_answer(s, res);
	if (status >= 200 && status <= 299) {
		rc = 0;
	} else if (status == 408 || status == 429 || status >= 500) {
		*ret_retry_ms = retry_after_ms(nng_http_res_get_header(res, "Retry-After"));
		webhook_close(s);
		rc = verr_set(err, -EAGAIN, "%s answered %d%s", s->conf->where, status,
			      *ret_retry_ms > 0 ? " with Retry-After" : "");
	} else {
		const char *r = nng_http_res_get_reason(res);
		char reason[128];

		/* The receiver's words go into an audit and a log line: escaped, bounded. */
		utf8_escape_controls(r != NULL ? r : "", r != NULL ? strlen(r) : 0, reason,
				     sizeof(reason));
		verr_set(err, -EPERM, "%s refused it: HTTP %d %s", s->conf->where, status, reason);
		rc = SINK_REFUSED;
	}
out:
	nng_http_res_free(res);
	nng_http_req_free(req);
	free(body);
	return rc;
}

static void webhook_cancel(struct sink *s)
{
	struct webhook *w = s->priv;

	nng_aio_cancel(w->aio);
}

static void webhook_free(struct sink *s)
{
	struct webhook *w = s->priv;

	if (w == NULL)
		return;
	webhook_close(s);
	nng_aio_free(w->aio);
	if (w->client != NULL)
		nng_http_client_free(w->client);
	if (w->tls != NULL)
		nng_tls_config_free(w->tls);
	if (w->url != NULL)
		nng_url_free(w->url);
	free(w);
	s->priv = NULL;
}

static const struct sink_ops webhook_ops = {
    .open = webhook_open,
    .send = webhook_send,
    .close = webhook_close,
    .cancel = webhook_cancel,
    .free = webhook_free,
};

int sink_webhook_init(struct sink *s, vigil_err *err)
{
	const struct output_conf *c = s->conf;
	struct webhook *w = calloc(1, sizeof(*w));
	int rv, rc;

	if (w == NULL)
		return verr_set(err, -ENOMEM, "out of memory");
	s->priv = w;
	s->ops = &webhook_ops;
	if ((rv = nng_url_parse(&w->url, c->target)) != 0 ||
	    (rv = nng_aio_alloc(&w->aio, NULL, NULL)) != 0 ||
	    (rv = nng_http_client_alloc(&w->client, w->url)) != 0) {
		rc = verr_set(err, -EINVAL, "output %s: cannot set up requests to %s: %s", c->name,
			      c->where, nng_strerror(rv));
		goto fail;
	}
	if (c->tls) {
		const struct tls_files files = {.ca = c->ca};

		if ((rc = tls_config_new(NNG_TLS_MODE_CLIENT, NNG_TLS_AUTH_MODE_REQUIRED, &files,
					 c->server_name[0] != '\0' ? c->server_name
								   : w->url->u_hostname,
					 &w->tls, err)) < 0)
			goto fail;
		if ((rv = nng_http_client_set_tls(w->client, w->tls)) != 0) {
			rc = verr_set(err, -EINVAL, "output %s: cannot use TLS: %s", c->name,
				      nng_strerror(rv));
			goto fail;
		}
	}
	return 0;
fail:
	webhook_free(s);
	return rc;
}
