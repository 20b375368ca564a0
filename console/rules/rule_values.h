/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_RULE_VALUES_H
#define VIGIL_CONSOLE_RULE_VALUES_H

/*
 * The checks of a rule's single values (rule_values.c), for rule.c.  Each
 * returns true when the value is acceptable, else false with why (whylen >
 * 0) saying what is wrong in words that read after the quoted value ("is
 * not an absolute path ...").  Pure, no allocation.  The ones callers
 * outside the rules module need are declared in rule.h.
 */

#include <stdbool.h>
#include <stddef.h>

#include "rules/rule.h"

enum rule_text_kind {
	RULE_TEXT_NAME,	     /* no controls, no invisible or direction-changing characters */
	RULE_TEXT_LINE,	     /* no controls, no direction-changing characters */
	RULE_TEXT_MULTILINE, /* as LINE, and newlines and tabs are allowed */
};

/* Valid UTF-8 without the characters kind excludes. */
bool rule_text_check(const char *s, enum rule_text_kind kind, char *why, size_t whylen);

enum rule_glob_kind {
	RULE_GLOB_PATH,	   /* absolute, normalized; '*' stays inside a name, '**' spans names */
	RULE_GLOB_HOST,	   /* host ids: letters, digits, '.', '_', '-' and glob characters */
	RULE_GLOB_SERVICE, /* service names ("nginx.service", "exe:/usr/sbin/foo") */
	RULE_GLOB_IMAGE,   /* container images ("docker.io/library/nginx:*") */
};

/*
 * A glob of kind: 1..RULE_GLOB_MAX bytes, its text acceptable, brackets
 * balanced ('[' ... ']', "[!...]", ranges ASCII and in order), no lone
 * trailing '\'.
 */
bool rule_check_glob(const char *s, enum rule_glob_kind kind, char *why, size_t whylen);

/*
 * An image glob in the form images are matched in (containers' images are
 * normalized as Docker does, docs/events.md): "nginx:*" is
 * "docker.io/library/nginx:*", "bitnami/redis" "docker.io/bitnami/redis:latest";
 * a glob with a registry ("quay.io/x/...", "localhost/app:1") or whose first
 * part is a pattern (a '*' first) stays as written.  Normalizing again
 * changes nothing.  Into out (cap bytes); false when it does not fit.
 */
bool rule_image_glob_normalize(const char *s, char *out, size_t cap);

/* "key=value" (key 1..63 bytes without spaces, value 0..255 bytes); *ret_keylen on success. */
bool rule_check_label(const char *s, size_t *ret_keylen, char *why, size_t whylen);

#endif
