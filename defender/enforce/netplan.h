/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_NETPLAN_H
#define VIGIL_DEFENDER_NETPLAN_H

/*
 * The network rules compiled for the kernel's guard (bpf/lib/guard.h): for
 * each policy, a run of entries (allow entries and the prevent/block deny
 * entries of the section that decides), and which cgroups have a policy of
 * their own.
 *
 * Policy 0 is what decides for a process the kernel cannot place: the first
 * rule whose scope has no services or images (interactive sessions, and
 * services no rule names).  A service with a systemd unit has its own cgroup;
 * when a different rule decides for it, its cgroup gets that rule's policy.
 * A unit whose deciding rule prevents (or blocks) network deviations gets a
 * policy of its own from its active model: the model's peers and ports
 * allowed, then the rule's lists, then everything else denied.  What cannot
 * be placed in the kernel is a shortfall (alerted instead): services known
 * only by their executable ("exe:..."), container images, a table over its
 * size.
 *
 * netplan_build is pure; netplan_load writes a plan into the guard's maps
 * as the table not in force, then switches (one store), so a connect sees
 * either the old rules or the new ones, never a mix.
 */

#include <stddef.h>
#include <stdint.h>

#include "capture/capture.h"
#include "enforce/shortfall.h"
#include "error.h"
#include "events.h"
#include "process/container_cache.h"
#include "rules/rule.h"

#define NETPLAN_ENTRIES_MAX (GUARD_NET_ENTRIES / 2)

/*
 * A cgroup with a service of its own: a unit ("unit:<name>", as the models
 * name services), or a container ("container:<image>", image its image).
 */
struct netplan_cgroup {
	uint64_t id;
	char service[160];
	char image[CONTAINER_IMAGE_MAX + 1]; /* a container's; "" for a unit */
	/* a container's id (netplan_scan_cgroups), until netplan_name_containers names it */
	char container_id[CONTAINER_ID_LEN + 1];
};

/* Where an entry came from, to name it in an audit. */
struct netplan_origin {
	uint32_t rule;	/* index in the rule set */
	uint16_t index; /* in its list */
	uint8_t allow;	/* 1: network.allow (or the model's), 0: network.deny */
	uint8_t listen; /* 1: listen, 0: connect */
	uint8_t model;	/* 1: from the service's model, or the deny of what it lacks */
};

/*
 * The listen (listen = 1) or connect patterns of service's active model,
 * each to fn ("tcp:22", "tcp:ephemeral", "tcp:10.0.0.5:5432",
 * "tcp:10.0.0.0/24:5432", "udp:2001:db8::1:53"): how many, or < 0 when it
 * has no active model.
 */
typedef int (*netplan_model_fn)(const char *service, int listen,
				void (*fn)(const char *pattern, void *arg), void *arg, void *ctx);

struct netplan {
	struct guard_net_entry entries[NETPLAN_ENTRIES_MAX];
	struct netplan_origin origin[NETPLAN_ENTRIES_MAX];
	size_t n;
	uint16_t first[GUARD_NET_POLICIES], count[GUARD_NET_POLICIES];
	size_t npolicies;
	struct {
		uint64_t id;
		uint32_t policy;
	} cgroups[GUARD_NET_CGROUPS];
	size_t ncgroups;
	uint32_t gen; /* set by netplan_load */
};

/*
 * Compile set (n rules, in order) for this host with its unit cgroups (ncg
 * of them) into *out (zeroed first); what the kernel cannot do goes to sf.
 */
void netplan_build(const struct rule *set, size_t n, const struct netplan_cgroup *cgs, size_t ncg,
		   netplan_model_fn model, void *model_ctx, struct netplan *out,
		   struct shortfalls *sf);

/* A model's connect or listen pattern as an allow entry (false: not one the kernel checks). */
bool netplan_model_entry(const char *pattern, bool listen, struct guard_net_entry *out,
			 struct guard_net_entry *out6);

/*
 * Load p into the guard's maps as generation gen (from 1, one more than the
 * last) and put it in force.  prev: the plan in force (NULL: none), whose
 * cgroups no longer listed are cleared.
 */
int netplan_load(const struct capture_guard *g, struct netplan *p, const struct netplan *prev,
		 uint32_t gen, vigil_err *err);

/*
 * The unit and container cgroups under root (the cgroup v2 mount), at most
 * max of them, depth at most GUARD_CGROUP_DEPTH.  A container's comes with
 * its container_id and no service yet.  Returns how many.
 */
size_t netplan_scan_cgroups(const char *root, struct netplan_cgroup *out, size_t max);

/*
 * Name the containers among cgs (n of them) by their images, as ctrs knows
 * them at now_ms: "container:<image>", the service their models have.  A
 * container whose image is not known (yet: looked up again on a later scan)
 * is left out, its processes decided by the host's rule.  Returns how many
 * cgroups are left, in order.
 */
size_t netplan_name_containers(struct netplan_cgroup *cgs, size_t n, struct container_cache *ctrs,
			       uint64_t now_ms);

#endif
