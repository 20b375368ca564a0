/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_RULES_SCOPE_H
#define VIGIL_CONSOLE_RULES_SCOPE_H

/*
 * Which rules of the set go to a host: the part of a rule's scope the
 * console can decide per host.  Pure: no I/O, no allocation.
 *
 *   hosts     a glob (fnmatch: '*', '?', "[...]", "[!...]", '\' escapes) that
 *             the host's id (its certificate CN) matches; any of the list
 *   labels    "key=value": every one must be among the labels the host's
 *             defender said in its hello
 *   services, images
 *             cannot be decided per host (a host runs many services): such
 *             a rule goes to every host its hosts and labels match, and the
 *             defender matches services itself
 *
 * An empty list matches everything; a disabled rule matches nothing (it is
 * kept in the set, not sent).
 */

#include <stdbool.h>
#include <stddef.h>

#include "rules/rule.h"
#include "store/store.h"

/* Whether rule r goes to host host_id with labels (n of them; a key once). */
bool rules_scope_matches_host(const struct rule *r, const char *host_id,
			      const struct store_label *labels, size_t nlabels);

#endif
