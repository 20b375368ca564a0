/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_EVENT_H
#define VIGIL_DEFENDER_EVENT_H

/*
 * Decoding capture records (bpf/events.h) into views whose strings are
 * length-checked against the record.  Nothing is copied: an event points into
 * the record it was decoded from and lives as long as that record.
 */

#include <stdbool.h>
#include <stddef.h>

#include "events.h"

struct ev_str {
	const char *p; /* NULL when absent */
	size_t len;    /* bytes before the terminating NUL (args: NULs inside) */
};

enum { EV_STR_MAX = 4 };

struct event {
	const struct ev_hdr *hdr;
	union {
		const struct ev_exec *exec;
		const struct ev_fork *fork;
		const struct ev_exit *exit;
		const struct ev_file *file;
		const struct ev_net *net;
	};
	/* exec: filename, args, cwd; file: path, path2, base, base2; net: unix_path */
	struct ev_str s[EV_STR_MAX];
};

/*
 * Check and decode one record of len bytes.  Returns 0, or -EBADMSG when the
 * record is shorter than its type needs, its strings overrun it, or a string
 * is not NUL-terminated.
 */
int event_decode(const void *rec, size_t len, struct event *ev);

/*
 * Join a directory (absolute) and a name the way the kernel would look it
 * up, lexically: "." and ".." and repeated slashes are folded; an absolute
 * name ignores base.  Writes a NUL-terminated absolute path into out; returns
 * its length, or -ENAMETOOLONG (out holds the truncated prefix).  Symlinks
 * are not resolved: the result is the name used, made absolute.
 */
long event_path_join(const char *base, size_t base_len, const char *name, size_t name_len,
		     char *out, size_t outlen);

#endif
