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
 * Containers.  Every container on a host runs under its runtime's shim
 * (conmon, containerd-shim), whose leader is the same for all of them: by
 * the rule above they would share one model.  A process in a container is
 * classified on the part of its chain inside that container instead (the
 * shim, the runtime and whoever started them are outside), and a service
 * there is named by its container's image: "container:<image>", one model
 * for every container of one image on the host.  Its leader is the topmost
 * process of the chain in the container.  A controlling terminal, or a
 * session opener (sshd, login, su, sudo, tmux) inside the container, is
 * interactive as anywhere; the audit login uid is not looked at there: it
 * is not namespaced, and every process of a container started from a login
 * shell carries its starter's.  A container whose image is not known (yet)
 * is named by its leader's executable, "container:/usr/sbin/nginx" (image
 * references never start with '/').
 *
 * Pure logic over a process-tree ancestry chain; no I/O.
 */

#include <stddef.h>
#include <stdint.h>

#include "process/container_state.h"
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
	/* chain[0]'s container's image ("" outside a container, or unknown), for rule scopes */
	char image[CONTAINER_IMAGE_MAX + 1];
};

/*
 * Classify chain[0] given its ancestry chain[0..n) (self first, then parent,
 * ..., as proctree_ancestry returns it).  ctr: chain[0]'s container as its
 * runtime describes it (proctree_container), NULL when none or not known;
 * ignored unless it is chain[0]'s container.  n == 0 gives an unknown service.
 */
void classify(const struct proc_entry *const *chain, size_t n, const struct container_meta *ctr,
	      struct classification *out);

/* The service name of a container of image (see above), into out (160 bytes). */
void classify_container_service(const char *image, char out[160]);

/* The systemd unit at the end of a cgroup path ("cron.service"), or NULL. */
const char *classify_unit(const char *cgroup, size_t *ret_len);

#endif
