/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_COMMON_UTF8_H
#define VIGIL_COMMON_UTF8_H

/*
 * Text that leaves for the console must be valid UTF-8 (PostgreSQL text and
 * JSON refuse anything else), but paths, argv and comm are bytes.  Copy them
 * as UTF-8: every byte that is not part of a valid sequence becomes the four
 * characters \xNN, so nothing is hidden and two different names stay
 * different; a copy that does not fit is cut between characters.
 */

#include <stdbool.h>
#include <stddef.h>

/* Copy len bytes of in to out (outlen > 0) as above; returns the length written. */
size_t utf8_sanitize(const char *in, size_t len, char *out, size_t outlen);

/*
 * For a terminal or a log line: as utf8_sanitize, and every control
 * character is written out too, so text from a host cannot move the cursor,
 * recolour, retitle or forge lines: C0 controls and DEL as \xNN, C1 controls
 * (U+0080..U+009F, which some terminals obey) as \u00NN, and the
 * bidirectional formatting characters, which reorder what a line shows (a
 * name reading "exe.sh" that is "hs.exe"), as \uNNNN.  A backslash stays
 * a backslash (the rare ambiguity is the price of readable paths).
 */
size_t utf8_escape_controls(const char *in, size_t len, char *out, size_t outlen);

/* Length (1..4) of the valid UTF-8 sequence at s (n bytes available), or 0 when invalid. */
size_t utf8_char_len(const unsigned char *s, size_t n);

/* Whether len bytes of s are valid UTF-8 (no overlongs, surrogates or values past U+10FFFF). */
bool utf8_valid(const char *s, size_t len);

#endif
