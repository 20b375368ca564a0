/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a host without a certificate sends to POST /api/v1/enroll, and what
 * an admin sends to POST /api/v1/join-tokens (console/api/enroll_request.c),
 * then the CSR inside (common/pki_enroll.c, pki_csr_check): the input is the
 * request body.  Properties: an accepted enrollment has a token of the
 * handed-out form (16 and 64 lowercase hex digits) and a CSR of 1 to
 * PKI_CSR_MAX bytes without a NUL; a CSR that passes the check names one
 * valid host name; an accepted token request has a valid group, at most
 * JOIN_TOKEN_LABELS_MAX labels as a JSON object of strings and an expiry in
 * range; every refusal says why.
 */
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "api/enroll_request.h"
#include "fuzz_util.h"
#include "pki.h"
#include "pki_enroll.h"

static bool lower_hex(const char *s, size_t n)
{
	return strlen(s) == n && strspn(s, "0123456789abcdef") == n;
}

static void check_enroll(const uint8_t *data, size_t size)
{
	struct enroll_request r;
	struct enroll_why why;
	int rc;

	memset(&why, 0, sizeof(why));
	rc = enroll_request_parse((const char *)data, size, &r, &why);

	if (rc < 0 && why.msg[0] == '\0')
		fuzz_fail("enroll_request_parse: %d without a reason", rc);
	if (rc == 0) {
		struct pki_csr_info info;
		vigil_err err = {0};

		if (!lower_hex(r.id, JOIN_TOKEN_ID_HEX) ||
		    !lower_hex(r.secret, JOIN_TOKEN_SECRET_HEX))
			fuzz_fail("a token of another form was taken");
		if (r.csr == NULL || r.csr_len == 0 || r.csr_len > PKI_CSR_MAX ||
		    strlen(r.csr) != r.csr_len)
			fuzz_fail("a CSR of %zu bytes was taken", r.csr_len);
		rc = pki_csr_check(r.csr, r.csr_len, &info, &err);
		if (rc < 0 && err.msg[0] == '\0')
			fuzz_fail("pki_csr_check: %d without a reason", rc);
		if (rc == 0 && !pki_name_valid(info.cn))
			fuzz_fail("a CSR for '%s' passed", info.cn);
	}
	enroll_request_fini(&r);
}

static void check_token(const uint8_t *data, size_t size)
{
	struct join_token_request r;
	struct enroll_why why;
	int rc;

	memset(&why, 0, sizeof(why));
	rc = join_token_request_parse((const char *)data, size, &r, &why);

	if (rc < 0 && why.msg[0] == '\0')
		fuzz_fail("join_token_request_parse: %d without a reason", rc);
	if (rc == 0) {
		json_t *l = json_loads(r.labels_json, 0, NULL), *v;
		const char *k;

		if (!json_is_object(l) || json_object_size(l) > JOIN_TOKEN_LABELS_MAX + 1)
			fuzz_fail("labels '%s'", r.labels_json);
		json_object_foreach(l, k, v) if (!json_is_string(v)) fuzz_fail("label %s", k);
		if (r.group[0] != '\0' && !pki_name_valid(r.group))
			fuzz_fail("group '%s'", r.group);
		if (r.expires_s < JOIN_TOKEN_EXPIRES_MIN_S ||
		    r.expires_s > JOIN_TOKEN_EXPIRES_MAX_S)
			fuzz_fail("expires %lld", (long long)r.expires_s);
		json_decref(l);
	}
	join_token_request_fini(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_enroll(data, size);
	check_token(data, size);
	return 0;
}
