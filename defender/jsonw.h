/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_JSONW_H
#define VIGIL_DEFENDER_JSONW_H

/*
 * A small streaming JSON writer into a caller's fixed buffer: one event line
 * at a time, no allocation.  Strings from the kernel are bytes, not text:
 * valid UTF-8 is written as is (escaped where JSON needs it); a byte that is
 * not part of valid UTF-8 becomes the text \xNN (backslash, x, two hex
 * digits): \u00NN would silently mean another character.  (A name that
 * really contains the text \xNN reads the same; events flag names that had
 * invalid bytes, so the rare ambiguity is visible.)
 * When the buffer fills, the writer stops adding and sets overflow.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define JW_DEPTH 8

struct jsonw {
	char *buf;
	size_t cap;
	size_t len;
	bool overflow;
	int depth;
	bool after_key;
	bool lossy; /* a string written since jw_init held bytes that are not UTF-8 */
	bool first[JW_DEPTH];
};

void jw_init(struct jsonw *w, char *buf, size_t cap);
void jw_obj_begin(struct jsonw *w);
void jw_obj_end(struct jsonw *w);
void jw_arr_begin(struct jsonw *w);
void jw_arr_end(struct jsonw *w);
/*
 * A key in the current object; follow it with exactly one value.  Keys are
 * names the program chose (string constants), never data, and are written
 * without escaping; inline so that a constant key's length is folded.
 */
void jw_key_n(struct jsonw *w, const char *key, size_t len);
static inline void jw_key(struct jsonw *w, const char *key)
{
	jw_key_n(w, key, strlen(key));
}
void jw_str(struct jsonw *w, const char *s, size_t len);
void jw_cstr(struct jsonw *w, const char *s);
void jw_u64(struct jsonw *w, uint64_t v);
void jw_i64(struct jsonw *w, int64_t v);
void jw_bool(struct jsonw *w, bool v);
void jw_null(struct jsonw *w);
/* Pre-formatted JSON (a number or literal) the caller vouches for. */
void jw_raw(struct jsonw *w, const char *s);
/*
 * Pre-formatted members of the current object, each with its leading comma,
 * as written by another writer: appended as they are.
 */
void jw_append(struct jsonw *w, const char *s, size_t len);

#endif
