/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_COMMON_ERROR_H
#define VIGIL_COMMON_ERROR_H

#include <stddef.h>

/*
 * A failure's explanation for the one place that reports it.
 *
 * Library code (common/, store, pki, ...) never logs: a function that fails
 * returns a negative errno and, when the caller passed a vigil_err, writes a
 * sentence naming what failed (file, field, address) and why.  The daemon logs
 * that sentence once, where the error stops.  Secrets never go into messages.
 *
 * "Does not fit" reads the same in every module:
 *   -ENAMETOOLONG  a result (path, name, pattern, text) too long for the
 *                  caller's buffer; the buffer holds a cut, NUL-terminated
 *                  prefix where the function says so
 *   -ENOSPC        a bounded table, queue or store is full (and the refusal
 *                  is counted by whoever owns the bound)
 *   -E2BIG         input over a count or size limit (too many entries, a
 *                  message too large), refused whole
 */
typedef struct vigil_err {
	int code; /* negative errno, 0 when nothing failed */
	char msg[512];
} vigil_err;

/*
 * Record a failure in err (which may be NULL) and return code, so that
 * "return verr_set(err, -ENOENT, "...", ...);" reads as one step.
 * code must be a negative errno.
 */
int verr_set(vigil_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Clear err (may be NULL). */
void verr_clear(vigil_err *err);

#endif
