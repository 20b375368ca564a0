/* SPDX-License-Identifier: Apache-2.0 */
/* Enrollment's request bodies, parsed and checked (enroll_request.h). */
#include "api/enroll_request.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pki.h"
#include "pki_enroll.h"
#include "utf8.h"

static int refuse(struct enroll_why *why, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(struct enroll_why *why, const char *field, const char *fmt, ...)
{
	va_list ap;

	snprintf(why->field, sizeof(why->field), "%s", field);
	va_start(ap, fmt);
	vsnprintf(why->msg, sizeof(why->msg), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static bool lower_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

bool join_token_split(const char *text, size_t len, char id[JOIN_TOKEN_ID_HEX + 1],
		      char secret[JOIN_TOKEN_SECRET_HEX + 1])
{
	if (text == NULL || len != JOIN_TOKEN_LEN || text[JOIN_TOKEN_ID_HEX] != '.' ||
	    !lower_hex(text, JOIN_TOKEN_ID_HEX) ||
	    !lower_hex(text + JOIN_TOKEN_ID_HEX + 1, JOIN_TOKEN_SECRET_HEX))
		return false;
	if (id != NULL) {
		memcpy(id, text, JOIN_TOKEN_ID_HEX);
		id[JOIN_TOKEN_ID_HEX] = '\0';
	}
	if (secret != NULL) {
		memcpy(secret, text + JOIN_TOKEN_ID_HEX + 1, JOIN_TOKEN_SECRET_HEX);
		secret[JOIN_TOKEN_SECRET_HEX] = '\0';
	}
	return true;
}

/*
 * body as a JSON object whose fields are all in allowed, into *ret (caller
 * decrefs); an empty body reads as {} when empty_ok.
 */
static int object_of(const char *body, size_t len, const char *const *allowed, bool empty_ok,
		     json_t **ret, struct enroll_why *why)
{
	json_error_t jerr;
	const char *k;
	json_t *v;

	*ret = NULL;
	if (len == 0 && empty_ok) {
		*ret = json_object();
		return *ret != NULL ? 0 : refuse(why, "", "out of memory");
	}
	*ret = len > 0 ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
	if (!json_is_object(*ret)) {
		json_decref(*ret);
		*ret = NULL;
		return refuse(why, "", "the body must be a JSON object");
	}
	json_object_foreach(*ret, k, v)
	{
		bool known = false;

		for (size_t i = 0; allowed[i] != NULL && !known; i++)
			known = strcmp(k, allowed[i]) == 0;
		if (!known) {
			char name[80];

			/* Cut, and written out so that the answer stays UTF-8 and terminal-safe. */
			utf8_escape_controls(k, strnlen(k, 32), name, sizeof(name));
			refuse(why, "", "unknown field '%s'", name);
			json_decref(*ret);
			*ret = NULL;
			return -EINVAL;
		}
	}
	return 0;
}

/* A string field without U+0000 (its length into *ret_len), or NULL after refusing. */
static const char *string_of(json_t *obj, const char *name, size_t *ret_len, struct enroll_why *why)
{
	json_t *v = json_object_get(obj, name);

	if (v == NULL) {
		refuse(why, name, "'%s' is required", name);
		return NULL;
	}
	if (!json_is_string(v)) {
		refuse(why, name, "'%s' must be a string", name);
		return NULL;
	}
	if (strlen(json_string_value(v)) != json_string_length(v)) {
		refuse(why, name, "'%s' must not contain U+0000", name);
		return NULL;
	}
	*ret_len = json_string_length(v);
	return json_string_value(v);
}

int enroll_request_parse(const char *body, size_t len, struct enroll_request *ret,
			 struct enroll_why *why)
{
	static const char *const allowed[] = {"token", "csr", NULL};
	const char *token, *csr;
	size_t tlen = 0, clen = 0;
	json_t *o;
	int rc;

	memset(ret, 0, sizeof(*ret));
	if (len > ENROLL_BODY_MAX) {
		refuse(why, "", "the request is %zu bytes, over the %d taken", len,
		       ENROLL_BODY_MAX);
		return -E2BIG;
	}
	if ((rc = object_of(body, len, allowed, false, &o, why)) < 0)
		return rc;
	rc = -EINVAL;
	if ((token = string_of(o, "token", &tlen, why)) == NULL ||
	    (csr = string_of(o, "csr", &clen, why)) == NULL)
		goto out;
	/* Never quoted back: it may be someone's real token with a typo. */
	if (!join_token_split(token, tlen, ret->id, ret->secret)) {
		refuse(why, "token",
		       "'token' is not a join token (%d lowercase hex digits, '.', %d more)",
		       JOIN_TOKEN_ID_HEX, JOIN_TOKEN_SECRET_HEX);
		goto out;
	}
	if (clen == 0 || clen > PKI_CSR_MAX) {
		refuse(why, "csr", "'csr' must be a certificate request of 1 to %d bytes",
		       PKI_CSR_MAX);
		goto out;
	}
	if ((ret->csr = malloc(clen + 1)) == NULL) {
		refuse(why, "", "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	memcpy(ret->csr, csr, clen + 1);
	ret->csr_len = clen;
	rc = 0;
out:
	/* jansson keeps its copy of the secret in the object: gone with it (not wiped). */
	json_decref(o);
	return rc;
}

void enroll_request_fini(struct enroll_request *r)
{
	volatile char *p = r->secret;

	for (size_t i = 0; i < sizeof(r->secret); i++)
		p[i] = 0;
	free(r->csr);
	r->csr = NULL;
}

/* A label key: 1..63 of [A-Za-z0-9._-]. */
static bool label_key_ok(const char *k)
{
	size_t n = strlen(k);

	return n >= 1 && n <= JOIN_TOKEN_LABEL_KEY_MAX &&
	       strspn(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* A label value: UTF-8 of at most 255 bytes, no control characters. */
static bool label_value_ok(const char *v, size_t n)
{
	if (n > JOIN_TOKEN_LABEL_VALUE_MAX || strlen(v) != n || !utf8_valid(v, n))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return false;
	return true;
}

/* The labels (and group) as the compact JSON object the store keeps. */
static int labels_of(json_t *in, const char *group, char **ret, struct enroll_why *why)
{
	json_t *out = json_object(), *v;
	const char *k;

	if (out == NULL)
		return refuse(why, "", "out of memory");
	if (in != NULL && !json_is_object(in)) {
		json_decref(out);
		return refuse(why, "labels", "'labels' must be an object of strings");
	}
	if (in != NULL && json_object_size(in) > JOIN_TOKEN_LABELS_MAX) {
		json_decref(out);
		return refuse(why, "labels", "at most %d labels", JOIN_TOKEN_LABELS_MAX);
	}
	json_object_foreach(in, k, v)
	{
		if (!label_key_ok(k)) {
			json_decref(out);
			return refuse(why, "labels",
				      "a label's key must be 1..63 of [A-Za-z0-9._-]");
		}
		if (!json_is_string(v) ||
		    !label_value_ok(json_string_value(v), json_string_length(v))) {
			json_decref(out);
			return refuse(why, "labels",
				      "label '%s' must be text of at most 255 bytes without control"
				      " characters",
				      k);
		}
		if (group[0] != '\0' && strcmp(k, "group") == 0) {
			json_decref(out);
			return refuse(why, "labels",
				      "label 'group' is what 'group' sets: give one of them");
		}
		json_object_set(out, k, v);
	}
	if (group[0] != '\0')
		json_object_set_new(out, "group", json_string(group));
	*ret = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(out);
	return *ret != NULL ? 0 : refuse(why, "", "out of memory");
}

int join_token_request_parse(const char *body, size_t len, struct join_token_request *ret,
			     struct enroll_why *why)
{
	static const char *const allowed[] = {"reusable", "group", "labels", "expires_in_s", NULL};
	json_t *o, *v;
	int rc;

	memset(ret, 0, sizeof(*ret));
	ret->expires_s = JOIN_TOKEN_EXPIRES_DEFAULT_S;
	if (len > ENROLL_BODY_MAX)
		return refuse(why, "", "the request is %zu bytes, over the %d taken", len,
			      ENROLL_BODY_MAX);
	if ((rc = object_of(body, len, allowed, true, &o, why)) < 0)
		return rc;
	rc = -EINVAL;
	if ((v = json_object_get(o, "reusable")) != NULL) {
		if (!json_is_boolean(v)) {
			refuse(why, "reusable", "'reusable' must be true or false");
			goto out;
		}
		ret->reusable = json_is_true(v);
	}
	if ((v = json_object_get(o, "group")) != NULL) {
		if (!json_is_string(v) || !pki_name_valid(json_string_value(v)) ||
		    strlen(json_string_value(v)) != json_string_length(v)) {
			refuse(why, "group", "'group' must be 1..64 of [A-Za-z0-9._-]");
			goto out;
		}
		snprintf(ret->group, sizeof(ret->group), "%s", json_string_value(v));
	}
	if ((v = json_object_get(o, "expires_in_s")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < JOIN_TOKEN_EXPIRES_MIN_S ||
		    json_integer_value(v) > JOIN_TOKEN_EXPIRES_MAX_S) {
			refuse(why, "expires_in_s",
			       "'expires_in_s' must be an integer from %d to %d (90 days)",
			       JOIN_TOKEN_EXPIRES_MIN_S, JOIN_TOKEN_EXPIRES_MAX_S);
			goto out;
		}
		ret->expires_s = json_integer_value(v);
	}
	rc = labels_of(json_object_get(o, "labels"), ret->group, &ret->labels_json, why);
out:
	json_decref(o);
	return rc;
}

void join_token_request_fini(struct join_token_request *r)
{
	free(r->labels_json);
	r->labels_json = NULL;
}
