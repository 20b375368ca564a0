/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_COMMON_KVCONF_H
#define VIGIL_COMMON_KVCONF_H

/*
 * The configuration file format: one "key = value" per line, '#' starts a
 * comment line, blank lines are ignored, a key may repeat (lists), a value
 * may be wrapped in double quotes to keep leading/trailing spaces.  Keys are
 * [a-z0-9_]; values are UTF-8 without control characters.
 *
 * Limits: KVCONF_MAX_BYTES per file, KVCONF_MAX_ENTRIES entries, values up to
 * KVCONF_MAX_VALUE bytes.  Errors name the source and line.
 */

#include <stddef.h>

#include "error.h"

#define KVCONF_MAX_BYTES   (64 * 1024)
#define KVCONF_MAX_ENTRIES 512
#define KVCONF_MAX_KEY	   64
#define KVCONF_MAX_VALUE   4096

struct kvconf_entry {
	char *key;
	char *value;
	int line;
};

struct kvconf {
	struct kvconf_entry *entries;
	size_t n;
	char *source; /* file name (or "<string>") for messages */
};

/* Parse text (len bytes, need not be NUL-terminated).  *ret is freed with kvconf_free. */
int kvconf_parse(const char *text, size_t len, const char *source, struct kvconf **ret,
		 vigil_err *err);

/* Read and parse a file. */
int kvconf_load(const char *path, struct kvconf **ret, vigil_err *err);

/* Free; accepts NULL. */
void kvconf_free(struct kvconf *conf);

#endif
