/* SPDX-License-Identifier: Apache-2.0 */
/* One bounded HTTPS JSON request to the console's API (enroll_http.h). */
#include "enroll/enroll_http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "tls.h"

/* One step of the exchange on aio, within the time left; the nng result. */
static int step_wait(nng_aio *aio)
{
	nng_aio_wait(aio);
	return nng_aio_result(aio);
}

static int fail_rv(int rv, const char *base_url, const char *what, vigil_err *err)
{
	if (rv == NNG_EPEERAUTH)
		return verr_set(err, -EACCES,
				"the console at %s: its certificate was refused (not signed by the"
				" CA, or not for this name)",
				base_url);
	return verr_set(err, rv == NNG_ETIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED,
			"the console at %s: %s: %s", base_url, what, nng_strerror(rv));
}

int enroll_http(const char *base_url, const char *method, const char *path, const char *body,
		const char *ca_file, const char *server_name, int *ret_status, json_t **ret_json,
		vigil_err *err)
{
	const struct tls_files files = {.ca = ca_file};
	char full[1024];
	nng_url *url = NULL;
	nng_http_client *client = NULL;
	nng_http_conn *conn = NULL;
	nng_http_req *req = NULL;
	nng_http_res *res = NULL;
	nng_tls_config *tls = NULL;
	nng_aio *aio = NULL;
	const char *clen;
	char *data = NULL;
	unsigned long long n = 0;
	int rv, rc;

	*ret_json = NULL;
	if ((rc = tls_engine_install(err)) < 0)
		return rc;
	if (snprintf(full, sizeof(full), "%s%s", base_url, path) >= (int)sizeof(full))
		return verr_set(err, -ENAMETOOLONG, "URL too long: %s", base_url);
	if ((rv = nng_url_parse(&url, full)) != 0 || strcmp(url->u_scheme, "https") != 0) {
		rc = verr_set(err, -EINVAL, "'%s' is not an https:// URL", base_url);
		goto out;
	}
	if ((rc = tls_config_new(NNG_TLS_MODE_CLIENT,
				 ca_file != NULL ? NNG_TLS_AUTH_MODE_REQUIRED
						 : NNG_TLS_AUTH_MODE_NONE,
				 &files, server_name, &tls, err)) < 0)
		goto out;
	if ((rv = nng_http_client_alloc(&client, url)) != 0 ||
	    (rv = nng_http_client_set_tls(client, tls)) != 0 ||
	    (rv = nng_http_req_alloc(&req, url)) != 0 ||
	    (rv = nng_http_req_set_method(req, method)) != 0 ||
	    (rv = nng_http_req_set_header(req, "Connection", "close")) != 0 ||
	    (body != NULL &&
	     ((rv = nng_http_req_copy_data(req, body, strlen(body))) != 0 ||
	      (rv = nng_http_req_set_header(req, "Content-Type", "application/json")) != 0)) ||
	    (rv = nng_http_res_alloc(&res)) != 0 || (rv = nng_aio_alloc(&aio, NULL, NULL)) != 0) {
		rc = verr_set(err, -ENOMEM, "cannot set up a request to %s: %s", base_url,
			      nng_strerror(rv));
		goto out;
	}
	nng_aio_set_timeout(aio, ENROLL_HTTP_TIMEOUT_MS);
	nng_http_client_connect(client, aio);
	if ((rv = step_wait(aio)) != 0) {
		rc = fail_rv(rv, base_url, "cannot connect", err);
		goto out;
	}
	conn = nng_aio_get_output(aio, 0);
	nng_aio_set_timeout(aio, ENROLL_HTTP_TIMEOUT_MS);
	nng_http_conn_write_req(conn, req, aio);
	if ((rv = step_wait(aio)) != 0) {
		rc = fail_rv(rv, base_url, "cannot send the request", err);
		goto out;
	}
	/* The headers only: the body is read below, once its length is known to be small. */
	nng_aio_set_timeout(aio, ENROLL_HTTP_TIMEOUT_MS);
	nng_http_conn_read_res(conn, res, aio);
	if ((rv = step_wait(aio)) != 0) {
		rc = fail_rv(rv, base_url, "no answer", err);
		goto out;
	}
	clen = nng_http_res_get_header(res, "Content-Length");
	if (clen != NULL) {
		char *end;

		errno = 0;
		n = strtoull(clen, &end, 10);
		if (errno != 0 || end == clen || *end != '\0') {
			rc = verr_set(err, -EBADMSG, "the console at %s sent a bad Content-Length",
				      base_url);
			goto out;
		}
	}
	if (n > ENROLL_HTTP_BODY_MAX) {
		rc = verr_set(err, -EFBIG, "the console at %s sent %llu bytes, over the %d taken",
			      base_url, n, ENROLL_HTTP_BODY_MAX);
		goto out;
	}
	if (n > 0) {
		nng_iov iov;

		if ((data = malloc(n)) == NULL) {
			rc = verr_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		iov = (nng_iov){.iov_buf = data, .iov_len = n};
		nng_aio_set_iov(aio, 1, &iov);
		nng_aio_set_timeout(aio, ENROLL_HTTP_TIMEOUT_MS);
		nng_http_conn_read_all(conn, aio);
		if ((rv = step_wait(aio)) != 0) {
			rc = fail_rv(rv, base_url, "the answer was cut", err);
			goto out;
		}
		*ret_json = json_loadb(data, n, JSON_REJECT_DUPLICATES, NULL);
	}
	*ret_status = nng_http_res_get_status(res);
	rc = 0;
out:
	free(data);
	if (conn != NULL)
		nng_http_conn_close(conn);
	if (aio != NULL)
		nng_aio_free(aio);
	if (res != NULL)
		nng_http_res_free(res);
	if (req != NULL)
		nng_http_req_free(req);
	if (client != NULL)
		nng_http_client_free(client);
	if (tls != NULL)
		nng_tls_config_free(tls);
	if (url != NULL)
		nng_url_free(url);
	return rc;
}
