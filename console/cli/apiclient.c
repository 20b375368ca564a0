/* SPDX-License-Identifier: Apache-2.0 */
#include "cli/apiclient.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "tls.h"

/*
 * How long one request may take.  Longer than the console's default query
 * timeout (10 s), so that a slow query comes back as the console's 504
 * rather than as a timeout here.
 */
#define APICLIENT_TIMEOUT_MS 15000

/* Failures after which no (whole) answer came: the request may have been carried out. */
static bool lost(int rv)
{
	return rv == NNG_ECONNSHUT || rv == NNG_ETIMEDOUT || rv == NNG_ECONNRESET ||
	       rv == NNG_ECLOSED;
}

/*
 * One request, sent once.  The console writes every answer whole before it
 * closes the connection (nng's client asks it to close after each), so a
 * lost answer is a real failure, reported, never retried here.
 */
static int request(const char *base_url, const char *path, const char *method, const char *body,
		   const char *const *headers, const char *token, const char *ca_file,
		   int *ret_status, char **ret_body, vigil_err *err)
{
	char full[2048], auth[512];
	const struct tls_files files = {.ca = ca_file};
	bool get = strcmp(method, "GET") == 0;
	nng_url *url = NULL;
	nng_http_client *client = NULL;
	nng_http_req *req = NULL;
	nng_http_res *res = NULL;
	nng_tls_config *tls = NULL;
	nng_aio *aio = NULL;
	void *data;
	size_t len;
	int rv, rc;

	if ((rc = tls_engine_install(err)) < 0)
		return rc;
	if (snprintf(full, sizeof(full), "%s%s", base_url, path) >= (int)sizeof(full))
		return verr_set(err, -ENAMETOOLONG, "URL too long");
	if ((rv = nng_url_parse(&url, full)) != 0 || strcmp(url->u_scheme, "https") != 0) {
		rc = verr_set(err, -EINVAL, "'%s' is not an https:// URL", base_url);
		goto out;
	}
	if ((rc = tls_config_new(NNG_TLS_MODE_CLIENT, NNG_TLS_AUTH_MODE_REQUIRED, &files,
				 url->u_hostname, &tls, err)) < 0)
		goto out;
	if ((rv = nng_http_client_alloc(&client, url)) != 0 ||
	    (rv = nng_http_client_set_tls(client, tls)) != 0 ||
	    (rv = nng_http_req_alloc(&req, url)) != 0 ||
	    (rv = nng_http_req_set_method(req, method)) != 0 ||
	    (body != NULL &&
	     ((rv = nng_http_req_copy_data(req, body, strlen(body))) != 0 ||
	      (rv = nng_http_req_set_header(req, "Content-Type", "application/json")) != 0)) ||
	    (rv = nng_http_res_alloc(&res)) != 0 || (rv = nng_aio_alloc(&aio, NULL, NULL)) != 0) {
		rc = verr_set(err, -ENOMEM, "cannot set up a request to %s: %s", base_url,
			      nng_strerror(rv));
		goto out;
	}
	if (token != NULL) {
		if (snprintf(auth, sizeof(auth), "Bearer %s", token) >= (int)sizeof(auth)) {
			rc = verr_set(err, -EINVAL, "API token too long");
			goto out;
		}
		nng_http_req_set_header(req, "Authorization", auth);
	}
	for (size_t i = 0; headers != NULL && headers[i] != NULL && headers[i + 1] != NULL;
	     i += 2) {
		if ((rv = nng_http_req_set_header(req, headers[i], headers[i + 1])) != 0) {
			rc = verr_set(err, -ENOMEM, "cannot set up a request to %s: %s", base_url,
				      nng_strerror(rv));
			goto out;
		}
	}
	nng_aio_set_timeout(aio, APICLIENT_TIMEOUT_MS);
	nng_http_client_transact(client, req, res, aio);
	nng_aio_wait(aio);
	rv = nng_aio_result(aio);
	/*
	 * Refused connections and certificates fail before the request is
	 * written; a connection lost later may have carried it.
	 */
	if (rv != 0 && lost(rv)) {
		rc = verr_set(err, -EPROTO,
			      "sent %s %s to the console API at %s but got no answer (%s)%s",
			      method, path, base_url, nng_strerror(rv),
			      get ? "" : ": it may have been carried out");
		goto out;
	}
	if (rv != 0) {
		rc =
		    verr_set(err, rv == NNG_EPEERAUTH ? -EACCES : -ECONNREFUSED,
			     "cannot reach the console API at %s: %s", base_url,
			     rv == NNG_EPEERAUTH ? "its certificate was rejected (wrong CA or name)"
						 : nng_strerror(rv));
		goto out;
	}
	nng_http_res_get_data(res, &data, &len);
	if (len > APICLIENT_BODY_MAX) {
		rc = verr_set(err, -EFBIG, "response from %s too large", base_url);
		goto out;
	}
	*ret_body = malloc(len + 1);
	if (*ret_body == NULL) {
		rc = verr_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (len > 0) /* a HEAD answer has no body, and data may be NULL */
		memcpy(*ret_body, data, len);
	(*ret_body)[len] = '\0';
	*ret_status = nng_http_res_get_status(res);
	rc = 0;
out:
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

int apiclient_get(const char *base_url, const char *path, const char *token, const char *ca_file,
		  int *ret_status, char **ret_body, vigil_err *err)
{
	return request(base_url, path, "GET", NULL, NULL, token, ca_file, ret_status, ret_body,
		       err);
}

int apiclient_post(const char *base_url, const char *path, const char *body, const char *token,
		   const char *ca_file, int *ret_status, char **ret_body, vigil_err *err)
{
	return request(base_url, path, "POST", body != NULL ? body : "{}", NULL, token, ca_file,
		       ret_status, ret_body, err);
}

int apiclient_request(const char *base_url, const char *method, const char *path, const char *body,
		      const char *const *headers, const char *token, const char *ca_file,
		      int *ret_status, char **ret_body, vigil_err *err)
{
	return request(base_url, path, method, body, headers, token, ca_file, ret_status, ret_body,
		       err);
}
