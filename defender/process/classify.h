/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_CLASSIFY_H
#define VIGIL_DEFENDER_CLASSIFY_H

/*
 * System service or interactive session?  Services behave in patterns and
 * get a learned model; interactive sessions (a person on ssh, a console
 * login, su/sudo, a terminal multiplexer) are logged in full instead.
 *
 * Interactive: a controlling terminal; or a login session (the audit
 * loginuid is set by pam_loginuid at login) that is not a cron job; or an
 * sshd per-connection child, login, getty, su or sudo among the ancestors.
 * Everything else under init or a supervisor is a service, cron jobs
 * included (they are patterned, and modelled per owner: "<service>/uid:N").
 * A service's identity is its systemd unit
 * (from the cgroup path) where there is one, else its leader's executable:
 * the ancestor right below init (systemd is not PID 1 on every host).
 * The reason is recorded, so an operator can see why.
 *
 * Pure logic over a process-tree ancestry chain; no I/O.
 */

#include <stddef.h>
#include <stdint.h>

#include "process/proctree.h"

enum proc_class {
	CLASS_SERVICE = 1,
	CLASS_INTERACTIVE = 2,
};

struct classification {
	enum proc_class cls;
	uint32_t leader_pid; /* service: the leader; interactive: the session's root */
	/* "unit:nginx.service", "exe:/usr/sbin/nginx", a cron job's "unit:cron.service/uid:1000";
	 * "" when interactive */
	char service[160];
	char why[192];
};

/*
 * Classify chain[0] given its ancestry chain[0..n) (self first, then parent,
 * ..., as proctree_ancestry returns it).  n == 0 gives an unknown service.
 */
void classify(const struct proc_entry *const *chain, size_t n, struct classification *out);

/* The systemd unit at the end of a cgroup path ("cron.service"), or NULL. */
const char *classify_unit(const char *cgroup, size_t *ret_len);

#endif
