/* SPDX-License-Identifier: Apache-2.0 */
/* Network rules compiled for the kernel's guard (netplan.h). */
#include "enforce/netplan.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "process/classify.h"
#include "process/proctree.h"
#include "rules/rule_match.h"

static uint8_t guard_proto(enum rule_proto p)
{
	return p == RULE_PROTO_TCP ? GUARD_PROTO_TCP : p == RULE_PROTO_UDP ? GUARD_PROTO_UDP : 0;
}

/* Room for one more entry, or a shortfall for the section (once). */
static struct guard_net_entry *entry_add(struct netplan *p, const struct rule *r, uint32_t ri,
					 struct netplan_origin o, struct shortfalls *sf)
{
	if (p->n == NETPLAN_ENTRIES_MAX) {
		shortfall_add(sf, r->name, "network", r->network.deny_effect, RULE_EFFECT_ALERT,
			      "more than %d network entries in all: the rest are alerted",
			      NETPLAN_ENTRIES_MAX);
		return NULL;
	}
	o.rule = ri;
	p->origin[p->n] = o;
	memset(&p->entries[p->n], 0, sizeof(p->entries[p->n]));
	return &p->entries[p->n++];
}

static void add_listen(struct netplan *p, const struct rule *r, uint32_t ri,
		       const struct rule_ports *l, bool allow, bool block, struct shortfalls *sf)
{
	static const uint8_t families[] = {AF_INET, AF_INET6};

	for (size_t i = 0; i < l->n; i++)
		for (size_t f = 0; f < 2; f++) {
			struct netplan_origin o = {
			    .index = (uint16_t)i, .allow = allow, .listen = 1};
			struct guard_net_entry *e = entry_add(p, r, ri, o, sf);

			if (e == NULL)
				return;
			e->op = GUARD_OP_LISTEN;
			e->family = families[f];
			e->proto = guard_proto(l->v[i].proto);
			e->allow = allow;
			e->block = block;
			e->port_lo = l->v[i].lo;
			e->port_hi = l->v[i].hi;
		}
}

static void add_connect(struct netplan *p, const struct rule *r, uint32_t ri,
			const struct rule_nets *l, bool allow, bool block, struct shortfalls *sf)
{
	for (size_t i = 0; i < l->n; i++) {
		struct netplan_origin o = {.index = (uint16_t)i, .allow = allow, .listen = 0};
		struct guard_net_entry *e = entry_add(p, r, ri, o, sf);

		if (e == NULL)
			return;
		e->op = GUARD_OP_CONNECT;
		e->family = (uint8_t)l->v[i].family;
		e->prefix = l->v[i].prefix;
		e->allow = allow;
		e->block = block;
		e->port_lo = l->v[i].port_lo;
		e->port_hi = l->v[i].port_hi;
		memcpy(e->addr, l->v[i].addr, sizeof(e->addr));
	}
}

/* The policy of the rule at index ri (decider r), its entries appended; -1 when it needs none. */
static int policy_for(struct netplan *p, const struct rule *set, const struct rule *r,
		      const struct rule **policy_rules, struct shortfalls *sf)
{
	const struct rule_network *net;
	bool enforced;
	size_t start;
	uint32_t ri;

	if (r == NULL)
		return -1;
	for (size_t i = 0; i < p->npolicies; i++)
		if (policy_rules[i] == r)
			return (int)i;
	net = &r->network;
	enforced = net->deny_effect >= RULE_EFFECT_PREVENT &&
		   (net->deny.connect.n > 0 || net->deny.listen.n > 0);
	if (!enforced || p->npolicies == GUARD_NET_POLICIES)
		return -1;
	ri = (uint32_t)(r - set);
	start = p->n;
	add_connect(p, r, ri, &net->allow.connect, true, false, sf);
	add_listen(p, r, ri, &net->allow.listen, true, false, sf);
	add_connect(p, r, ri, &net->deny.connect, false, net->deny_effect == RULE_EFFECT_BLOCK, sf);
	add_listen(p, r, ri, &net->deny.listen, false, net->deny_effect == RULE_EFFECT_BLOCK, sf);
	policy_rules[p->npolicies] = r;
	p->first[p->npolicies] = (uint16_t)start;
	p->count[p->npolicies] = (uint16_t)(p->n - start);
	return (int)p->npolicies++;
}

/* The ephemeral port range ([lo, hi]), as the kernel hands ports out. */
static void ephemeral_range(uint16_t *lo, uint16_t *hi)
{
	unsigned a = 32768, b = 60999;
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");

	if (f != NULL) {
		if (fscanf(f, "%5u %5u", &a, &b) != 2 || a == 0 || a > b || b > 65535) {
			a = 32768;
			b = 60999;
		}
		fclose(f);
	}
	*lo = (uint16_t)a;
	*hi = (uint16_t)b;
}

bool netplan_model_entry(const char *pattern, bool listen, struct guard_net_entry *out,
			 struct guard_net_entry *out6)
{
	const char *colon = strchr(pattern, ':'), *last = strrchr(pattern, ':');
	char addr[64], *slash;
	unsigned long port;
	uint8_t proto;
	int prefix;

	memset(out, 0, sizeof(*out));
	memset(out6, 0, sizeof(*out6));
	if (colon == NULL)
		return false;
	if (strncmp(pattern, "tcp:", 4) == 0)
		proto = GUARD_PROTO_TCP;
	else if (strncmp(pattern, "udp:", 4) == 0)
		proto = GUARD_PROTO_UDP;
	else
		return false; /* unix sockets are not guarded */
	out->allow = 1;
	out->proto = proto;
	if (listen) {
		out->op = GUARD_OP_LISTEN;
		if (strcmp(colon + 1, "ephemeral") == 0) {
			ephemeral_range(&out->port_lo, &out->port_hi);
		} else {
			port = strtoul(colon + 1, &slash, 10);
			if (*slash != '\0' || port == 0 || port > 65535)
				return false;
			out->port_lo = out->port_hi = (uint16_t)port;
		}
		out->family = AF_INET;
		*out6 = *out;
		out6->family = AF_INET6;
		return true;
	}
	/* proto:address[/prefix]:port, the address itself IPv4 or IPv6 (with colons). */
	if (last == colon || (size_t)(last - colon - 1) >= sizeof(addr))
		return false;
	port = strtoul(last + 1, &slash, 10);
	if (*slash != '\0' || port == 0 || port > 65535)
		return false;
	memcpy(addr, colon + 1, (size_t)(last - colon - 1));
	addr[last - colon - 1] = '\0';
	prefix = -1;
	if ((slash = strchr(addr, '/')) != NULL) {
		*slash = '\0';
		prefix = atoi(slash + 1);
	}
	out->op = GUARD_OP_CONNECT;
	out->port_lo = out->port_hi = (uint16_t)port;
	if (inet_pton(AF_INET, addr, out->addr) == 1) {
		out->family = AF_INET;
		out->prefix = (uint8_t)(prefix >= 0 && prefix <= 32 ? prefix : 32);
	} else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
		out->family = AF_INET6;
		out->prefix = (uint8_t)(prefix >= 0 && prefix <= 128 ? prefix : 128);
	} else {
		return false;
	}
	return true;
}

struct model_walk {
	struct netplan *p;
	const struct rule *r;
	uint32_t ri;
	bool listen;
	struct shortfalls *sf;
};

static void add_model_entry(const char *pattern, void *arg)
{
	struct model_walk *w = arg;
	struct guard_net_entry e, e6;
	struct netplan_origin o = {.allow = 1, .listen = w->listen, .model = 1};
	struct guard_net_entry *slot;

	if (!netplan_model_entry(pattern, w->listen, &e, &e6))
		return;
	if ((slot = entry_add(w->p, w->r, w->ri, o, w->sf)) == NULL)
		return;
	*slot = e;
	if (w->listen && (slot = entry_add(w->p, w->r, w->ri, o, w->sf)) != NULL)
		*slot = e6;
}

/* Deny what the model lacks: every peer, every port (after its allow entries). */
static void add_model_fence(struct netplan *p, const struct rule *r, uint32_t ri,
			    struct shortfalls *sf)
{
	static const uint8_t families[] = {AF_INET, AF_INET6};
	bool block = r->network.deviation == RULE_EFFECT_BLOCK;

	for (size_t f = 0; f < 2; f++)
		for (int listen = 0; listen < 2; listen++) {
			struct netplan_origin o = {.listen = (uint8_t)listen, .model = 1};
			struct guard_net_entry *e = entry_add(p, r, ri, o, sf);

			if (e == NULL)
				return;
			e->op = listen ? GUARD_OP_LISTEN : GUARD_OP_CONNECT;
			e->family = families[f];
			e->block = block;
			if (listen) {
				e->port_lo = 1;
				e->port_hi = 65535;
			}
		}
}

/*
 * A policy of service's own from its active model under rule r: -1 when the
 * service has no active model (the rule's lists then decide alone).
 */
static int model_policy(struct netplan *p, const struct rule *set, const struct rule *r,
			const char *service, netplan_model_fn model, void *ctx,
			struct shortfalls *sf)
{
	struct model_walk w = {.p = p, .r = r, .ri = (uint32_t)(r - set), .sf = sf};
	const struct rule_network *net = &r->network;
	size_t start = p->n;

	if (p->npolicies == GUARD_NET_POLICIES)
		return -1;
	add_connect(p, r, w.ri, &net->allow.connect, true, false, sf);
	add_listen(p, r, w.ri, &net->allow.listen, true, false, sf);
	w.listen = false;
	if (model(service, 0, add_model_entry, &w, ctx) < 0) {
		p->n = start; /* no active model: nothing of its own */
		return -1;
	}
	w.listen = true;
	model(service, 1, add_model_entry, &w, ctx);
	if (net->deny_effect >= RULE_EFFECT_PREVENT) {
		add_connect(p, r, w.ri, &net->deny.connect, false,
			    net->deny_effect == RULE_EFFECT_BLOCK, sf);
		add_listen(p, r, w.ri, &net->deny.listen, false,
			   net->deny_effect == RULE_EFFECT_BLOCK, sf);
	}
	add_model_fence(p, r, w.ri, sf);
	p->first[p->npolicies] = (uint16_t)start;
	p->count[p->npolicies] = (uint16_t)(p->n - start);
	return (int)p->npolicies++;
}

/* Say, once per rule, what of its network section the kernel cannot place. */
static void network_shortfalls(const struct rule *r, struct shortfalls *sf)
{
	const struct rule_network *net = &r->network;

	if (!r->enabled || !net->present)
		return;
	if (net->deviation >= RULE_EFFECT_PREVENT) {
		bool by_exe = r->scope.services.n == 0;

		for (size_t i = 0; i < r->scope.services.n && !by_exe; i++)
			by_exe = strncmp(r->scope.services.v[i], "exe:", 4) == 0;
		if (by_exe)
			shortfall_add(sf, r->name, "network", net->deviation, RULE_EFFECT_ALERT,
				      "network deviations of services without a unit cgroup"
				      " (known by executable) are alerted: the kernel tells"
				      " services apart by cgroup");
	}
	if (net->deny_effect < RULE_EFFECT_PREVENT)
		return;
	for (size_t i = 0; i < r->scope.services.n; i++)
		if (strncmp(r->scope.services.v[i], "exe:", 4) == 0)
			shortfall_add(sf, r->name, "network", net->deny_effect, RULE_EFFECT_ALERT,
				      "services named by executable (%.64s) have no cgroup of"
				      " their own: their network is alerted",
				      r->scope.services.v[i]);
}

void netplan_build(const struct rule *set, size_t n, const struct netplan_cgroup *cgs, size_t ncg,
		   netplan_model_fn model, void *model_ctx, struct netplan *out,
		   struct shortfalls *sf)
{
	static const struct rule_subject nobody = {NULL, NULL};
	const struct rule *policy_rules[GUARD_NET_POLICIES] = {NULL};
	const struct rule *host = rule_decider(set, n, RULE_CAT_NETWORK, &nobody);

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < n; i++)
		network_shortfalls(&set[i], sf);
	/* Policy 0 always exists, empty when the host's rule enforces nothing. */
	if (policy_for(out, set, host, policy_rules, sf) < 0) {
		policy_rules[0] = host;
		out->npolicies = 1;
	}
	for (size_t i = 0; i < ncg && out->ncgroups < GUARD_NET_CGROUPS; i++) {
		struct rule_subject s = {cgs[i].service,
					 cgs[i].image[0] != '\0' ? cgs[i].image : NULL};
		const struct rule *r = rule_decider(set, n, RULE_CAT_NETWORK, &s);
		bool by_model =
		    r != NULL && r->network.deviation >= RULE_EFFECT_PREVENT && model != NULL;
		int pol = -1;

		if (r == host && !by_model)
			continue;
		if (by_model)
			pol = model_policy(out, set, r, cgs[i].service, model, model_ctx, sf);
		if (pol < 0 && r == host)
			continue;
		/* A service whose rule enforces nothing is let through: an empty policy. */
		if (pol < 0 && (pol = policy_for(out, set, r, policy_rules, sf)) < 0) {
			if (out->npolicies == GUARD_NET_POLICIES) {
				shortfall_add(sf, r != NULL ? r->name : "", "network",
					      RULE_EFFECT_PREVENT, RULE_EFFECT_ALERT,
					      "more than %d network policies on one host",
					      GUARD_NET_POLICIES);
				continue;
			}
			policy_rules[out->npolicies] = r;
			out->first[out->npolicies] = (uint16_t)out->n;
			pol = (int)out->npolicies++;
		}
		out->cgroups[out->ncgroups].id = cgs[i].id;
		out->cgroups[out->ncgroups++].policy = (uint32_t)pol;
	}
}

int netplan_load(const struct capture_guard *g, struct netplan *p, const struct netplan *prev,
		 uint32_t gen, vigil_err *err)
{
	uint32_t table = gen & 1, which = 2;
	struct guard_net_conf conf = {.gen = gen}, active = {.gen = table};
	uint32_t base = table * NETPLAN_ENTRIES_MAX;

	for (size_t i = 0; i < p->n; i++) {
		uint32_t k = base + (uint32_t)i;

		if (bpf_map_update_elem(g->entries_fd, &k, &p->entries[i], BPF_ANY) < 0)
			return verr_set(err, -errno, "cannot write network rule %zu: %s", i,
					strerror(errno));
	}
	for (size_t i = 0; i < p->npolicies; i++) {
		conf.first[i] = (uint16_t)(base + p->first[i]);
		conf.count[i] = p->count[i];
	}
	for (size_t i = 0; i < p->ncgroups; i++) {
		struct guard_cgroup_policy v = {{0, 0}};

		bpf_map_lookup_elem(g->cgroups_fd, &p->cgroups[i].id, &v);
		v.policy[table] = p->cgroups[i].policy;
		if (bpf_map_update_elem(g->cgroups_fd, &p->cgroups[i].id, &v, BPF_ANY) < 0)
			return verr_set(err, -errno, "cannot place cgroup %llu: %s",
					(unsigned long long)p->cgroups[i].id, strerror(errno));
	}
	/* Cgroups the new table no longer lists: back to the host's policy in it. */
	for (size_t i = 0; prev != NULL && i < prev->ncgroups; i++) {
		struct guard_cgroup_policy v;
		bool listed = false;

		for (size_t j = 0; j < p->ncgroups && !listed; j++)
			listed = p->cgroups[j].id == prev->cgroups[i].id;
		if (listed || bpf_map_lookup_elem(g->cgroups_fd, &prev->cgroups[i].id, &v) < 0)
			continue;
		v.policy[table] = 0;
		bpf_map_update_elem(g->cgroups_fd, &prev->cgroups[i].id, &v, BPF_ANY);
	}
	if (bpf_map_update_elem(g->conf_fd, &table, &conf, BPF_ANY) < 0 ||
	    bpf_map_update_elem(g->conf_fd, &which, &active, BPF_ANY) < 0)
		return verr_set(err, -errno, "cannot put the network rules in force: %s",
				strerror(errno));
	p->gen = gen;
	return 0;
}

/* Whether name, the last part of the cgroup path path, is a container's own: its id in cid. */
static bool container_cgroup(const char *path, const char *name,
			     char cid[PROCTREE_CONTAINER_ID_LEN + 1])
{
	return proctree_container_id(path, cid) > 0 && strstr(name, cid) != NULL;
}

/* path: dfd's path under the root ("" at the root), to tell containers' cgroups by. */
static void scan(int dfd, int depth, char path[PATH_MAX], struct netplan_cgroup *out, size_t max,
		 size_t *n)
{
	DIR *d = fdopendir(dfd);
	size_t plen = strlen(path);
	struct dirent *de;

	if (d == NULL) {
		close(dfd);
		return;
	}
	while (*n < max && (de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		struct stat st;
		int sub;

		if (de->d_type != DT_DIR || de->d_name[0] == '.' || plen + 1 + len >= PATH_MAX)
			continue;
		path[plen] = '/';
		memcpy(path + plen + 1, de->d_name, len + 1);
		struct netplan_cgroup *cg = &out[*n];
		bool unit = len > 8 && strcmp(de->d_name + len - 8, ".service") == 0 &&
			    len + 6 < sizeof(cg->service);

		/* A cgroup v2 directory's inode is its id: looked up for the kept ones only. */
		if ((unit || container_cgroup(path, de->d_name, cg->container_id)) &&
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			if (unit) {
				memset(cg, 0, sizeof(*cg));
				snprintf(cg->service, sizeof(cg->service), "unit:%.150s",
					 de->d_name);
			} else {
				cg->service[0] = cg->image[0] = '\0';
			}
			cg->id = st.st_ino;
			(*n)++;
		}
		if (depth < GUARD_CGROUP_DEPTH &&
		    (sub = openat(dirfd(d), de->d_name,
				  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) >= 0)
			scan(sub, depth + 1, path, out, max, n);
		path[plen] = '\0';
	}
	closedir(d);
}

size_t netplan_scan_cgroups(const char *root, struct netplan_cgroup *out, size_t max)
{
	char path[PATH_MAX] = "";
	size_t n = 0;
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0)
		scan(fd, 1, path, out, max, &n);
	return n;
}

size_t netplan_name_containers(struct netplan_cgroup *cgs, size_t n, struct container_cache *ctrs,
			       uint64_t now_ms)
{
	size_t kept = 0;

	for (size_t i = 0; i < n; i++) {
		struct netplan_cgroup *cg = &cgs[i];

		if (cg->container_id[0] != '\0') {
			const struct container_meta *m =
			    container_cache_get(ctrs, cg->container_id, NULL, now_ms);

			if (m == NULL || m->image[0] == '\0')
				continue;
			/* The name its processes' models have, a long image's included. */
			classify_container_service(m->image, cg->service);
			snprintf(cg->image, sizeof(cg->image), "%s", m->image);
		}
		if (kept != i)
			cgs[kept] = *cg;
		kept++;
	}
	return kept;
}
