/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The check of stored event bodies (common/json_check.c): the input is a
 * body.  Property: whatever it accepts, jansson (a full parser, which
 * refuses lone surrogates, \u0000 and invalid UTF-8 as PostgreSQL does)
 * decodes as one object; so no accepted body can make a read of the
 * database fail.  Except numbers past a double's range: jansson refuses
 * them, PostgreSQL's json keeps a number as its text, whatever its size.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "json_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t err;
	json_t *doc;

	if (!json_check_object((const char *)data, size))
		return 0;
	doc = json_loadb((const char *)data, size, JSON_DECODE_INT_AS_REAL, &err);
	if (doc == NULL && strstr(err.text, "real number overflow") != NULL)
		return 0;
	if (!json_is_object(doc))
		fuzz_fail("json_check: accepted what jansson refuses (%s at %d): %.*s", err.text,
			  err.position, (int)(size < 200 ? size : 200), (const char *)data);
	json_decref(doc);
	return 0;
}
