/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Network rules enforced in the kernel: cgroup socket programs on connect
 * and bind, attached at the root of the cgroup tree, deciding from tables
 * the defender compiles from its rule set (defender/enforce/netplan.c).
 *
 * A process belongs to a policy: the policy of the closest of its cgroups
 * that the defender listed (a service's unit cgroup), else policy 0, the
 * host's.  A policy is a run of entries in net_entries: allow entries win
 * over deny entries, whatever their order (docs/rules.md).  A denied call
 * returns EPERM.  Block also kills: the program cannot signal (cgroup
 * programs have no bpf_send_signal), so it leaves a verdict for the thread,
 * and sys_exit, which runs when the same call returns, reads it, puts it in
 * the call's event (EVF_DENIED, ev_net.verdict) and sends SIGKILL before the
 * caller runs another instruction.  A verdict older than a second is stale
 * (a thread the sys_exit program never saw) and ignored.
 *
 * Never: the defender itself (its link to the consoles) and PID 1.
 */
#ifndef VIGIL_BPF_LIB_GUARD_H
#define VIGIL_BPF_LIB_GUARD_H

#include "events.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GUARD_NET_ENTRIES);
	__type(key, __u32);
	__type(value, struct guard_net_entry);
} net_entries SEC(".maps");

/*
 * Two tables, so that a new one is written while the old one decides:
 * [0] and [1] describe each half of net_entries, [2].gen says which is in
 * force (0 or 1), written last with one store.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, struct guard_net_conf);
} net_conf SEC(".maps");

/* cgroup id -> policy in each table (1..GUARD_NET_POLICIES-1; 0: the host's). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GUARD_NET_CGROUPS);
	__type(key, __u64);
	__type(value, struct guard_cgroup_policy);
} net_cgroups SEC(".maps");

/* pid_tgid -> what a cgroup program decided for the call in flight. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct guard_verdict);
} net_verdicts SEC(".maps");

#define GUARD_VERDICT_TTL_NS 1000000000ull

static __always_inline __u32 guard_policy(__u32 table)
{
	__u64 cg = bpf_get_current_cgroup_id();
	struct guard_cgroup_policy *pol = bpf_map_lookup_elem(&net_cgroups, &cg);

	/* A service's processes may sit in cgroups below its unit's. */
	for (int level = GUARD_CGROUP_DEPTH; !pol && level >= 1; level--) {
		cg = bpf_get_current_ancestor_cgroup_id(level);
		if (cg)
			pol = bpf_map_lookup_elem(&net_cgroups, &cg);
	}
	return pol ? pol->policy[table & 1] : 0;
}

static __always_inline bool addr_in(const struct guard_net_entry *e, const __u8 *addr)
{
	int left = e->prefix;

#pragma unroll
	for (int i = 0; i < 16; i++) {
		__u8 mask = left >= 8 ? 0xff : left <= 0 ? 0 : (0xff00 >> left) & 0xff;

		if ((addr[i] ^ e->addr[i]) & mask)
			return false;
		left -= 8;
	}
	return true;
}

/* One decision in progress, for guard_entry (bpf_loop's callback). */
struct guard_scan {
	const __u8 *addr;
	__u32 first;
	__u32 deny; /* the first deny entry that matched, plus one */
	__u16 port;
	__u8 op, family, proto;
	__u8 allow, block;
};

static long guard_entry(__u32 i, void *ctx)
{
	struct guard_scan *sc = ctx;
	const struct guard_net_entry *e;
	__u32 k = sc->first + i;

	e = bpf_map_lookup_elem(&net_entries, &k);
	if (!e)
		return 1;
	if (e->op != sc->op || e->family != sc->family || (e->proto && e->proto != sc->proto))
		return 0;
	if (e->port_hi && (sc->port < e->port_lo || sc->port > e->port_hi))
		return 0;
	if (sc->op == GUARD_OP_CONNECT && !addr_in(e, sc->addr))
		return 0;
	if (e->allow) {
		sc->allow = 1;
		return 1; /* an allow entry decides: stop */
	}
	if (!sc->deny) {
		sc->deny = k + 1;
		sc->block = e->block;
	}
	return 0;
}

/*
 * The decision for an op (GUARD_OP_*) to addr:port (family AF_INET with the
 * first 4 bytes, or AF_INET6); proto: GUARD_PROTO_TCP/UDP.  Returns 1 to let
 * it happen, 0 to refuse it.
 */
static __always_inline int guard_decide(__u8 op, __u8 family, __u8 proto, const __u8 *addr,
					__u16 port)
{
	__u64 id = bpf_get_current_pid_tgid();
	const struct guard_net_conf *conf, *active;
	struct guard_scan sc = {
	    .addr = addr, .port = port, .op = op, .family = family, .proto = proto};
	struct guard_verdict v = {};
	__u32 which = 2, table, pol, count;

	if ((self_tgid && (id >> 32) == self_tgid) || (id >> 32) == 1)
		return 1;
	active = bpf_map_lookup_elem(&net_conf, &which);
	if (!active)
		return 1;
	table = active->gen & 1;
	conf = bpf_map_lookup_elem(&net_conf, &table);
	if (!conf)
		return 1;
	pol = guard_policy(table);
	if (pol >= GUARD_NET_POLICIES)
		return 1;
	/* A policy's entries are one run of the table. */
	sc.first = conf->first[pol];
	count = conf->count[pol];
	if (count == 0)
		return 1;
	bpf_loop(count, guard_entry, &sc, 0);
	if (sc.allow || !sc.deny)
		return 1;
	v.entry = sc.deny - 1;
	v.gen = conf->gen;
	v.block = sc.block;
	v.ts_ns = bpf_ktime_get_ns();
	bpf_map_update_elem(&net_verdicts, &id, &v, BPF_ANY);
	return 0;
}

static __always_inline __u8 sock_proto(struct bpf_sock_addr *ctx)
{
	return ctx->type == 1 /* SOCK_STREAM */	 ? GUARD_PROTO_TCP
	       : ctx->type == 2 /* SOCK_DGRAM */ ? GUARD_PROTO_UDP
						 : 0;
}

static __always_inline int guard_sock(struct bpf_sock_addr *ctx, __u8 op, bool v6)
{
	__u8 addr[16] = {};
	__u16 port = bpf_ntohs((__u16)ctx->user_port);

	if (v6) {
		__u32 *w = (__u32 *)addr;

		w[0] = ctx->user_ip6[0];
		w[1] = ctx->user_ip6[1];
		w[2] = ctx->user_ip6[2];
		w[3] = ctx->user_ip6[3];
		/* An IPv4 peer reached through an IPv6 socket is an IPv4 peer. */
		if (w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0xffff)) {
			w[0] = w[3];
			return guard_decide(op, AF_INET, sock_proto(ctx), addr, port);
		}
		return guard_decide(op, AF_INET6, sock_proto(ctx), addr, port);
	}
	*(__u32 *)addr = ctx->user_ip4;
	return guard_decide(op, AF_INET, sock_proto(ctx), addr, port);
}

SEC("cgroup/connect4")
int guard_connect4(struct bpf_sock_addr *ctx)
{
	return guard_sock(ctx, GUARD_OP_CONNECT, false);
}

SEC("cgroup/connect6")
int guard_connect6(struct bpf_sock_addr *ctx)
{
	return guard_sock(ctx, GUARD_OP_CONNECT, true);
}

SEC("cgroup/bind4")
int guard_bind4(struct bpf_sock_addr *ctx)
{
	return guard_sock(ctx, GUARD_OP_LISTEN, false);
}

SEC("cgroup/bind6")
int guard_bind6(struct bpf_sock_addr *ctx)
{
	return guard_sock(ctx, GUARD_OP_LISTEN, true);
}

/*
 * At sys_exit of connect or bind: the verdict a cgroup program left for this
 * call, if any (taken out of the map); kills the caller when it says block.
 */
static __always_inline bool guard_take_verdict(struct guard_verdict *out)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct guard_verdict *v = bpf_map_lookup_elem(&net_verdicts, &id);

	if (!v)
		return false;
	*out = *v;
	bpf_map_delete_elem(&net_verdicts, &id);
	if (bpf_ktime_get_ns() - out->ts_ns > GUARD_VERDICT_TTL_NS)
		return false;
	if (out->block)
		bpf_send_signal(9 /* SIGKILL */);
	return true;
}

#endif
