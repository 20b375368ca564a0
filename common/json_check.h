/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_COMMON_JSON_CHECK_H
#define VIGIL_COMMON_JSON_CHECK_H
/*
 * Whether text is one JSON object that PostgreSQL's json type takes and can
 * read back, checked without building anything.  The console stores event
 * bodies as text (migration 17) and its readers cast them to json: a body
 * this lets through must never make a read fail, so the check is PostgreSQL's
 * json input, made stricter where reading would still fail:
 *
 *   - RFC 8259 syntax: whitespace is space, tab, CR and LF; numbers as
 *     -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?; literals true, false,
 *     null; nothing after the value.
 *   - Strings: no control character below U+0020 unescaped; escapes
 *     \" \\ \/ \b \f \n \r \t \uXXXX; a \u escape of a surrogate must be a
 *     high one followed at once by a low one (PostgreSQL refuses lone
 *     halves); \u0000 is refused (json accepts it, but ->> and the jsonb
 *     cast then fail on that value).
 *   - Bytes: valid UTF-8 (no overlongs, surrogates or values past
 *     U+10FFFF), no NUL.
 *   - Nesting at most JSON_CHECK_DEPTH deep.
 *
 * Duplicate keys are allowed, as the json type allows them.
 */
#include <stdbool.h>
#include <stddef.h>

#define JSON_CHECK_DEPTH 64

/* Whether the len bytes at s are one JSON object as above. */
bool json_check_object(const char *s, size_t len);

#endif
