/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_JSON_WRITER_H
#define VIGIL_DEFENDER_JSON_WRITER_H

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

#define JSON_WRITER_DEPTH 8

struct json_writer {
	char *buf;
	size_t cap;
	size_t len;
	bool overflow;
	int depth;
	bool after_key;
	bool lossy; /* a string written since json_writer_init held bytes that are not UTF-8 */
	bool first[JSON_WRITER_DEPTH];
};

void json_writer_init(struct json_writer *w, char *buf, size_t cap);
void json_writer_obj_begin(struct json_writer *w);
void json_writer_obj_end(struct json_writer *w);
void json_writer_arr_begin(struct json_writer *w);
void json_writer_arr_end(struct json_writer *w);
/*
 * A key in the current object; follow it with exactly one value.  Keys are
 * names the program chose (string constants), never data, and are written
 * without escaping; inline so that a constant key's length is folded.
 */
void json_writer_key_n(struct json_writer *w, const char *key, size_t len);
static inline void json_writer_key(struct json_writer *w, const char *key)
{
	json_writer_key_n(w, key, strlen(key));
}
void json_writer_str(struct json_writer *w, const char *s, size_t len);
void json_writer_cstr(struct json_writer *w, const char *s);
void json_writer_u64(struct json_writer *w, uint64_t v);
void json_writer_i64(struct json_writer *w, int64_t v);
void json_writer_bool(struct json_writer *w, bool v);
void json_writer_null(struct json_writer *w);
/* Pre-formatted JSON (a number or literal) the caller vouches for. */
void json_writer_raw(struct json_writer *w, const char *s);
/*
 * Pre-formatted members of the current object, each with its leading comma,
 * as written by another writer: appended as they are.
 */
void json_writer_append(struct json_writer *w, const char *s, size_t len);

#endif
