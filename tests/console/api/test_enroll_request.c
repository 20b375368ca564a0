/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Enrollment's request bodies (console/api/enroll_request.h): what a host
 * without a certificate sends, and what an admin sends to make a token.
 * Each refusal names the field and never quotes the token.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/enroll_request.h"
#include "pki_enroll.h"

#define ID     "0123456789abcdef"
#define SECRET "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define TOKEN  ID "." SECRET

static int parse(const char *body, struct enroll_request *r, struct enroll_why *why)
{
	memset(why, 0, sizeof(*why));
	return enroll_request_parse(body, strlen(body), r, why);
}

Test(enroll_request, a_token_and_a_csr_are_taken)
{
	struct enroll_request r;
	struct enroll_why why;

	cr_assert_eq(parse("{\"token\":\"" TOKEN "\",\"csr\":\"-----BEGIN X-----\"}", &r, &why), 0,
		     "%s", why.msg);
	cr_expect_str_eq(r.id, ID);
	cr_expect_str_eq(r.secret, SECRET);
	cr_expect_str_eq(r.csr, "-----BEGIN X-----");
	cr_expect_eq(r.csr_len, 17);
	enroll_request_fini(&r);
	cr_expect_eq(r.secret[0], '\0', "the secret is wiped");
}

static void refused(const char *body, const char *field, const char *words)
{
	struct enroll_request r;
	struct enroll_why why;

	cr_expect_eq(parse(body, &r, &why), -EINVAL, "%s", body);
	cr_expect_str_eq(why.field, field, "%s: field '%s'", body, why.field);
	cr_expect_not_null(strstr(why.msg, words), "%s: '%s' lacks '%s'", body, why.msg, words);
	cr_expect_null(strstr(why.msg, SECRET), "the token is never quoted");
	enroll_request_fini(&r);
}

Test(enroll_request, malformed_bodies_are_refused_naming_the_field)
{
	refused("", "", "JSON object");
	refused("[]", "", "JSON object");
	refused("{\"token\":\"" TOKEN "\"", "", "JSON object");
	refused("{\"csr\":\"x\"}", "token", "required");
	refused("{\"token\":\"" TOKEN "\"}", "csr", "required");
	refused("{\"token\":7,\"csr\":\"x\"}", "token", "must be a string");
	refused("{\"token\":\"" TOKEN "\",\"csr\":\"\"}", "csr", "1 to");
	/* jansson refuses U+0000 in text unless told: the body is no object then. */
	refused("{\"token\":\"" TOKEN "\",\"csr\":\"a\\u0000b\"}", "", "JSON object");
	refused("{\"token\":\"" TOKEN "\",\"csr\":\"x\",\"name\":\"y\"}", "",
		"unknown field 'name'");
	refused("{\"token\":\"" TOKEN "\",\"token\":\"" TOKEN "\",\"csr\":\"x\"}", "",
		"JSON object");
	/* Tokens of the wrong form: upper case, no dot, short, long. */
	refused("{\"token\":\"0123456789ABCDEF." SECRET "\",\"csr\":\"x\"}", "token", "not a join");
	refused("{\"token\":\"" ID SECRET "\",\"csr\":\"x\"}", "token", "not a join");
	refused("{\"token\":\"" ID "."
		"00\",\"csr\":\"x\"}",
		"token", "not a join");
	refused("{\"token\":\"" TOKEN "0\",\"csr\":\"x\"}", "token", "not a join");
}

Test(enroll_request, oversize_bodies_and_csrs_are_refused)
{
	struct enroll_request r;
	struct enroll_why why;
	size_t n = ENROLL_BODY_MAX + 1;
	char *big = malloc(n + 1), *body;

	memset(big, ' ', n);
	big[n] = '\0';
	cr_expect_eq(enroll_request_parse(big, n, &r, &why), -E2BIG);
	enroll_request_fini(&r);
	free(big);
	/* A CSR over PKI_CSR_MAX within a body under the cap. */
	body = malloc(PKI_CSR_MAX + 200);
	n = (size_t)snprintf(body, 200, "{\"token\":\"" TOKEN "\",\"csr\":\"");
	memset(body + n, 'A', PKI_CSR_MAX + 1);
	strcpy(body + n + PKI_CSR_MAX + 1, "\"}");
	cr_expect_eq(parse(body, &r, &why), -EINVAL);
	cr_expect_str_eq(why.field, "csr");
	enroll_request_fini(&r);
	free(body);
}

static int tparse(const char *body, struct join_token_request *r, struct enroll_why *why)
{
	memset(why, 0, sizeof(*why));
	return join_token_request_parse(body, strlen(body), r, why);
}

Test(enroll_request, join_token_requests_default_and_carry_labels_and_group)
{
	struct join_token_request r;
	struct enroll_why why;
	json_t *l;

	cr_assert_eq(tparse("", &r, &why), 0, "%s", why.msg);
	cr_expect(!r.reusable);
	cr_expect_eq(r.expires_s, JOIN_TOKEN_EXPIRES_DEFAULT_S);
	cr_expect_str_eq(r.labels_json, "{}");
	join_token_request_fini(&r);
	cr_assert_eq(tparse("{\"reusable\":true,\"group\":\"web\",\"labels\":{\"env\":\"prod\"},"
			    "\"expires_in_s\":60}",
			    &r, &why),
		     0, "%s", why.msg);
	cr_expect(r.reusable);
	cr_expect_str_eq(r.group, "web");
	cr_expect_eq(r.expires_s, 60);
	l = json_loads(r.labels_json, 0, NULL);
	cr_expect_str_eq(json_string_value(json_object_get(l, "env")), "prod");
	cr_expect_str_eq(json_string_value(json_object_get(l, "group")), "web",
			 "the group is a label of its hosts");
	json_decref(l);
	join_token_request_fini(&r);
}

static void trefused(const char *body, const char *field, const char *words)
{
	struct join_token_request r;
	struct enroll_why why;

	cr_expect_eq(tparse(body, &r, &why), -EINVAL, "%s", body);
	cr_expect_str_eq(why.field, field, "%s: field '%s'", body, why.field);
	cr_expect_not_null(strstr(why.msg, words), "%s: '%s' lacks '%s'", body, why.msg, words);
	join_token_request_fini(&r);
}

Test(enroll_request, bad_join_token_requests_are_refused_naming_the_field)
{
	trefused("{\"reusable\":1}", "reusable", "true or false");
	trefused("{\"group\":\"a b\"}", "group", "[A-Za-z0-9._-]");
	trefused("{\"expires_in_s\":0}", "expires_in_s", "from 1");
	trefused("{\"expires_in_s\":7776001}", "expires_in_s", "90 days");
	trefused("{\"expires_in_s\":\"1h\"}", "expires_in_s", "integer");
	trefused("{\"labels\":[]}", "labels", "object");
	trefused("{\"labels\":{\"a b\":\"x\"}}", "labels", "key");
	trefused("{\"labels\":{\"a\":1}}", "labels", "text");
	trefused("{\"labels\":{\"a\":\"x\\ny\"}}", "labels", "control");
	trefused("{\"group\":\"g\",\"labels\":{\"group\":\"h\"}}", "labels", "'group'");
	trefused("{\"labels\":{\"a0\":\"\",\"a1\":\"\",\"a2\":\"\",\"a3\":\"\",\"a4\":\"\","
		 "\"a5\":\"\",\"a6\":\"\",\"a7\":\"\",\"a8\":\"\",\"a9\":\"\",\"b0\":\"\","
		 "\"b1\":\"\",\"b2\":\"\",\"b3\":\"\",\"b4\":\"\",\"b5\":\"\",\"b6\":\"\"}}",
		 "labels", "at most 16");
	trefused("{\"name\":\"x\"}", "", "unknown field");
}
