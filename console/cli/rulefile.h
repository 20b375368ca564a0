/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_RULEFILE_H
#define VIGIL_CONSOLE_RULEFILE_H

/*
 * Rule files for vigilctl: JSON or YAML in, the same JSON value out, and a
 * JSON value written back as YAML that reads in as the same value.
 *
 * YAML is read with Debian's libyaml, as a small, safe subset that maps
 * one to one onto JSON: one document; mappings with scalar keys, each key
 * once; sequences; scalars.  A quoted scalar is a string; a plain one is
 * null (~, null, empty), a boolean (true, false, in YAML 1.2's three
 * spellings), an integer ([-+]digits that fit 64 bits), a number (decimal
 * with a fraction or exponent), or else a string (so "yes" stays a string,
 * and a rule that wants a boolean says so).  Anchors, aliases and tags other
 * than !!str are refused, and nesting is bounded (RULEFILE_DEPTH_MAX).
 *
 * Errors: -EINVAL with why saying where ("line 4: ..."), -ENOMEM, or the
 * errno of reading the file (why names it).  No globals; not thread-safe
 * per call only in that why is the caller's.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

/* Largest rule file read (a whole rule set with room for YAML's layout). */
#define RULEFILE_MAX	   (32 * 1024 * 1024)
#define RULEFILE_DEPTH_MAX 64

/*
 * Read path ("-": standard input) as JSON or YAML into *ret (caller
 * decrefs).  JSON when the name ends in ".json", YAML when it ends in
 * ".yaml" or ".yml"; otherwise JSON when the first character that is not
 * white space is '{' or '[', else YAML.  JSON keys are unique too.
 */
int rulefile_read(const char *path, json_t **ret, char *why, size_t whylen);

/* len bytes of YAML text as JSON into *ret (caller decrefs). */
int rulefile_yaml_parse(const char *text, size_t len, json_t **ret, char *why, size_t whylen);

/* Whether a plain YAML scalar text reads as something other than a string (see above). */
bool rulefile_plain_is_typed(const char *s, size_t len);

/* Write v as a YAML document to f: block style, strings quoted where plain would change them. */
int rulefile_yaml_write(FILE *f, const json_t *v, char *why, size_t whylen);

/* Whether path names a YAML file by its extension (".yaml", ".yml"). */
bool rulefile_is_yaml_name(const char *path);

#endif
