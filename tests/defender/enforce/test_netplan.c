/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Network rules compiled for the kernel's guard (defender/enforce/netplan):
 * which entries each policy gets, which cgroups get a policy of their own,
 * and what is reported as a shortfall instead of silently dropped.
 */
#include <criterion/criterion.h>

#include <string.h>
#include <sys/socket.h>

#include "enforce/netplan.h"
#include "rules/rule.h"

static struct netplan plan;
static struct shortfalls sf;

static struct rule parse(const char *json)
{
	struct rule r;
	struct rule_error err;

	cr_assert_eq(rule_parse(json, strlen(json), &r, &err), 0, "%s: %s", err.field, err.reason);
	return r;
}

Test(netplan, the_hosts_rule_is_policy_0_with_allow_entries_and_prevent_entries)
{
	struct rule set[1] = {
	    parse("{\"name\": \"pool\", \"network\": {\"deny\": {\"effect\": \"block\","
		  " \"connect\": [\"198.51.100.0/24:3333\"], \"listen\": [\"tcp:22\"]},"
		  " \"allow\": {\"connect\": [\"198.51.100.7\"]}}}")};

	memset(&sf, 0, sizeof(sf));
	netplan_build(set, 1, NULL, 0, NULL, NULL, &plan, &sf);
	cr_assert_eq(plan.npolicies, 1);
	cr_assert_eq(plan.first[0], 0);
	/* allow connect; deny connect; deny listen for IPv4 and IPv6 */
	cr_assert_eq(plan.count[0], 4);
	cr_assert_eq(plan.entries[0].allow, 1);
	cr_assert_eq(plan.entries[1].allow, 0);
	cr_assert_eq(plan.entries[1].block, 1);
	cr_assert_eq(plan.entries[1].prefix, 24);
	cr_assert_eq(plan.entries[1].port_lo, 3333);
	cr_assert_eq(plan.entries[2].op, GUARD_OP_LISTEN);
	cr_assert_eq(plan.entries[2].family, AF_INET);
	cr_assert_eq(plan.entries[3].family, AF_INET6);
	cr_assert_eq(plan.entries[3].proto, GUARD_PROTO_TCP);
	cr_assert_eq(plan.origin[1].rule, 0);
	cr_assert_eq(sf.n, 0);
	rule_fini(&set[0]);
}

Test(netplan, alert_rules_need_no_entries)
{
	struct rule set[1] = {parse("{\"name\": \"watch\", \"network\": {\"deny\": {\"effect\":"
				    " \"alert\", \"connect\": [\"10.0.0.0/8\"]}}}")};

	memset(&sf, 0, sizeof(sf));
	netplan_build(set, 1, NULL, 0, NULL, NULL, &plan, &sf);
	cr_assert_eq(plan.n, 0);
	cr_assert_eq(plan.count[0], 0);
	rule_fini(&set[0]);
}

Test(netplan, a_service_whose_own_rule_decides_gets_its_cgroup_placed)
{
	struct rule set[2] = {
	    parse("{\"name\": \"web\", \"scope\": {\"services\": [\"nginx.service\"]},"
		  " \"network\": {\"deny\": {\"effect\": \"prevent\", \"connect\": "
		  "[\"0.0.0.0/0:25\"]}}}"),
	    parse("{\"name\": \"all\", \"network\": {\"deny\": {\"effect\": \"prevent\","
		  " \"listen\": [\"23\"]}}}")};
	struct netplan_cgroup cgs[3] = {
	    {11, "unit:nginx.service"}, {12, "unit:cron.service"}, {13, "unit:nginx.service"}};

	memset(&sf, 0, sizeof(sf));
	netplan_build(set, 2, cgs, 3, NULL, NULL, &plan, &sf);
	cr_assert_eq(plan.npolicies, 2, "the host's rule, and nginx's");
	cr_assert_eq(plan.ncgroups, 2, "cron is decided by the host's rule: not listed");
	cr_assert_eq(plan.cgroups[0].id, 11);
	cr_assert_eq(plan.cgroups[0].policy, 1);
	cr_assert_eq(plan.cgroups[1].id, 13);
	cr_assert_eq(plan.cgroups[1].policy, 1, "one policy per rule, shared");
	cr_assert_eq(plan.count[1], 1);
	cr_assert_eq(plan.entries[plan.first[1]].port_lo, 25);
	rule_fini(&set[0]);
	rule_fini(&set[1]);
}

Test(netplan, what_the_kernel_cannot_place_is_a_shortfall)
{
	struct rule set[2] = {
	    parse("{\"name\": \"by-exe\", \"scope\": {\"services\": [\"exe:/usr/sbin/x\"]},"
		  " \"network\": {\"deviation\": \"prevent\", \"deny\": {\"effect\": \"prevent\","
		  " \"connect\": [\"10.0.0.0/8\"]}}}"),
	    parse("{\"name\": \"by-image\", \"scope\": {\"images\": [\"docker.io/*\"]},"
		  " \"network\": {\"deny\": {\"effect\": \"block\", \"connect\": "
		  "[\"10.0.0.0/8\"]}}}")};

	memset(&sf, 0, sizeof(sf));
	netplan_build(set, 2, NULL, 0, NULL, NULL, &plan, &sf);
	cr_assert_eq(sf.n, 3, "deviation, exe scope, image scope: %zu", sf.n);
	cr_assert_str_eq(sf.v[0].rule, "by-exe");
	cr_assert_eq(sf.v[0].wanted, RULE_EFFECT_PREVENT);
	cr_assert_eq(sf.v[0].applied, RULE_EFFECT_ALERT);
	cr_assert_str_eq(sf.v[2].rule, "by-image");
	rule_fini(&set[0]);
	rule_fini(&set[1]);
}

Test(netplan, a_models_peers_and_ports_become_allow_entries)
{
	struct guard_net_entry e, e6;

	cr_assert(netplan_model_entry("tcp:10.0.0.5:5432", false, &e, &e6));
	cr_assert_eq(e.op, GUARD_OP_CONNECT);
	cr_assert_eq(e.family, AF_INET);
	cr_assert_eq(e.prefix, 32);
	cr_assert_eq(e.port_lo, 5432);
	cr_assert_eq(e.allow, 1);
	cr_assert(netplan_model_entry("udp:10.0.0.0/24:53", false, &e, &e6));
	cr_assert_eq(e.prefix, 24);
	cr_assert_eq(e.proto, GUARD_PROTO_UDP);
	cr_assert(netplan_model_entry("tcp:2001:db8::1:443", false, &e, &e6));
	cr_assert_eq(e.family, AF_INET6);
	cr_assert_eq(e.port_lo, 443);
	cr_assert(netplan_model_entry("tcp:22", true, &e, &e6));
	cr_assert_eq(e.op, GUARD_OP_LISTEN);
	cr_assert_eq(e6.family, AF_INET6);
	cr_assert(netplan_model_entry("tcp:ephemeral", true, &e, &e6));
	cr_assert(e.port_lo > 1024 && e.port_hi >= e.port_lo);
	cr_assert_not(netplan_model_entry("unix:/run/x.sock", false, &e, &e6));
	cr_assert_not(netplan_model_entry("tcp:nonsense:1", false, &e, &e6));
	cr_assert_not(netplan_model_entry("tcp:10.0.0.1:0", false, &e, &e6));
}

/* A fake model for one unit: listens on 8080, talks to 127.0.0.1:5432. */
static int fake_model(const char *service, int listen, void (*fn)(const char *, void *), void *arg,
		      void *ctx)
{
	(void)ctx;
	if (strcmp(service, "unit:web.service") != 0)
		return -1;
	fn(listen ? "tcp:8080" : "tcp:127.0.0.1:5432", arg);
	return 1;
}

Test(netplan, a_unit_whose_rule_prevents_network_deviations_gets_its_model_and_a_fence)
{
	struct rule set[1] = {parse(
	    "{\"name\": \"web-net\", \"scope\": {\"services\":"
	    " [\"web.service\", \"idle.service\"]}, \"network\": {\"deviation\": \"block\"}}")};
	struct netplan_cgroup cgs[2] = {{21, "unit:web.service"}, {22, "unit:idle.service"}};
	size_t first, count, fence = 0;

	memset(&sf, 0, sizeof(sf));
	netplan_build(set, 1, cgs, 2, fake_model, NULL, &plan, &sf);
	cr_assert_eq(plan.ncgroups, 2);
	cr_assert_eq(plan.cgroups[0].policy, 1, "web gets a policy from its model");
	first = plan.first[1];
	count = plan.count[1];
	/* connect allow, listen allow x2 families, then the fence: 2 families x connect, listen */
	cr_assert_eq(count, 7);
	cr_assert(plan.entries[first].allow && plan.origin[first].model);
	for (size_t i = first; i < first + count; i++)
		if (!plan.entries[i].allow) {
			fence++;
			cr_assert(plan.origin[i].model);
			cr_assert_eq(plan.entries[i].block, 1,
				     "the rule's deviation effect: block");
		}
	cr_assert_eq(fence, 4);
	/* No active model: the rule's lists alone (none here), an empty policy. */
	cr_assert_eq(plan.count[plan.cgroups[1].policy], 0);
	rule_fini(&set[0]);
}
