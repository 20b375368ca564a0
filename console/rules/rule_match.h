/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_RULE_MATCH_H
#define VIGIL_CONSOLE_RULE_MATCH_H

/*
 * What a rule set says about one act of one process: which rule decides,
 * and whether an entry of its allow or deny lists names the act.  Pure (no
 * I/O, no allocation), so the defender's enforcement and the console's
 * rehearsal of a rule over past events decide the same way.
 *
 * Which rule decides (docs/rules.md): for a category (processes, network,
 * files) the first enabled rule, in order, whose scope matches the process
 * and which has that section.  Here the scope's services and images are
 * matched; hosts and labels were matched by the console when it compiled the
 * set for the host (and are matched by the rehearsal for its host).
 *
 * Within the deciding section an allow entry wins over the deny lists and
 * over the deviation effect.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rules/rule.h"

enum rule_category {
	RULE_CAT_PROCESSES = 0,
	RULE_CAT_NETWORK,
	RULE_CAT_FILES,
};

/* "processes", "network", "files". */
const char *rule_category_name(enum rule_category c);

/*
 * The process a decision is about.  service: the model's name
 * ("unit:nginx.service", "exe:/usr/sbin/foo", "unit:cron.service/uid:0"),
 * NULL or "" for an interactive process (which only rules without a
 * services list match).  image: its container's image, NULL when none.
 */
struct rule_subject {
	const char *service;
	const char *image;
};

/* Whether r's services and images lists match s (an empty list matches all). */
bool rule_scope_matches_subject(const struct rule *r, const struct rule_subject *s);

/* The rule of set (n rules) that decides category c for s, or NULL (defaults). */
const struct rule *rule_decider(const struct rule *set, size_t n, enum rule_category c,
				const struct rule_subject *s);

/* What a section's lists say about an act. */
enum rule_list_verdict {
	RULE_LIST_NONE = 0, /* neither list names it: the deviation effect applies */
	RULE_LIST_ALLOW,    /* an allow entry names it */
	RULE_LIST_DENY,	    /* a deny entry names it (and no allow entry) */
};

/*
 * Each returns the verdict and, for ALLOW and DENY, the index of the entry
 * that matched in *ret_index (in the list that matched; may be NULL).
 */
enum rule_list_verdict rule_match_exec(const struct rule_processes *p, const char *path,
				       size_t *ret_index);
enum rule_list_verdict rule_match_file(const struct rule_files *f, const char *path, bool write,
				       size_t *ret_index);
/* family AF_INET/AF_INET6, addr in network order (4 or 16 bytes), port host order. */
enum rule_list_verdict rule_match_connect(const struct rule_network *n, int family,
					  const uint8_t *addr, uint16_t port, size_t *ret_index);
/* proto: RULE_PROTO_TCP or RULE_PROTO_UDP. */
enum rule_list_verdict rule_match_listen(const struct rule_network *n, enum rule_proto proto,
					 uint16_t port, size_t *ret_index);

/*
 * A path glob (docs/rules.md: '*', '?', "[...]" within one name, "**" as a
 * whole component spans names, '\' escapes) against an absolute path.
 */
bool rule_path_glob_match(const char *glob, const char *path);

/* Whether the last component of path names a shell / an interpreter (versioned names too). */
bool rule_is_shell(const char *path);
bool rule_is_interpreter(const char *path);

/* Whether one executables entry (a glob, "any-shell", "any-interpreter") names path. */
bool rule_exe_entry_matches(const char *entry, const char *path);

bool rule_port_matches(const struct rule_port *p, enum rule_proto proto, uint16_t port);
bool rule_net_matches(const struct rule_net *n, int family, const uint8_t *addr, uint16_t port);

#endif
