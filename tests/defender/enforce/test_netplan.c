/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Network rules compiled for the kernel's guard (defender/enforce/netplan):
 * which entries each policy gets, which cgroups get a policy of their own,
 * and what is reported as a shortfall instead of silently dropped.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "enforce/netplan.h"
#include "process/classify.h"
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
	cr_assert_eq(sf.n, 2, "deviation, exe scope; an image's containers are placed: %zu", sf.n);
	cr_assert_str_eq(sf.v[0].rule, "by-exe");
	cr_assert_eq(sf.v[0].wanted, RULE_EFFECT_PREVENT);
	cr_assert_eq(sf.v[0].applied, RULE_EFFECT_ALERT);
	cr_assert_str_eq(sf.v[1].rule, "by-exe");
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

/* ---- containers' cgroups ---- */

#define ID_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ID_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

/* mkdir -p root/rel; its inode (a cgroup v2 directory's inode is its id). */
static uint64_t mkdirs(const char *root, const char *rel)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	for (char *s = path + strlen(root) + 1;; s++) {
		bool last = (s = strchr(s, '/')) == NULL;

		if (!last)
			*s = '\0';
		cr_assert(mkdir(path, 0755) == 0 || errno == EEXIST, "%s", path);
		if (last)
			break;
		*s = '/';
	}
	cr_assert_eq(stat(path, &st), 0);
	return st.st_ino;
}

Test(netplan, containers_cgroups_are_found_named_by_image_and_placed_by_image_rules)
{
	char root[] = "/tmp/vigil-netplan-XXXXXX", cg[64], path[512];
	struct netplan_cgroup cgs[8];
	struct container_cache ctrs;
	FILE *f;

	cr_assert_not_null(mkdtemp(root));
	snprintf(cg, sizeof(cg), "%s/cg", root);
	cr_assert_eq(mkdir(cg, 0755), 0);
	uint64_t cron = mkdirs(cg, "system.slice/cron.service");
	uint64_t a = mkdirs(cg, "docker/" ID_A);
	mkdirs(cg, "docker/" ID_A "/inner"); /* inside the container: not its own */
	mkdirs(cg, "machine.slice/libpod-" ID_B ".scope");
	mkdirs(cg, "machine.slice/libpod-conmon-" ID_B ".scope"); /* the monitor's */
	/* Docker's record of A, under a state root of the test's own. */
	mkdirs(root, "var/lib/docker/containers/" ID_A);
	snprintf(path, sizeof(path), "%s/var/lib/docker/containers/" ID_A "/config.v2.json", root);
	cr_assert_not_null(f = fopen(path, "w"));
	fputs("{\"ID\":\"" ID_A "\",\"Name\":\"/web\",\"Config\":{\"Image\":\"nginx:1.25\"}}", f);
	fclose(f);

	size_t n = netplan_scan_cgroups(cg, cgs, 8);
	cr_assert_eq(n, 3, "the unit and the two containers, not their insides or monitors: %zu",
		     n);
	size_t containers = 0;
	for (size_t i = 0; i < n; i++)
		if (cgs[i].container_id[0] != '\0') {
			containers++;
			cr_assert(strcmp(cgs[i].container_id, ID_A) == 0 ||
				      strcmp(cgs[i].container_id, ID_B) == 0,
				  "%s", cgs[i].container_id);
		}
	cr_assert_eq(containers, 2);

	/* B's runtime recorded nothing here: left out, decided as the host's. */
	cr_assert_eq(container_cache_init(&ctrs, root, 0, 0, NULL), 0);
	n = netplan_name_containers(cgs, n, &ctrs, 1000);
	cr_assert_eq(n, 2, "%zu", n);
	bool saw_cron = false, saw_a = false;
	for (size_t i = 0; i < n; i++) {
		if (cgs[i].id == cron) {
			saw_cron = true;
			cr_assert_str_eq(cgs[i].service, "unit:cron.service");
			cr_assert_str_eq(cgs[i].image, "");
		} else {
			saw_a = true;
			cr_assert_eq(cgs[i].id, a);
			cr_assert_str_eq(cgs[i].service, "container:docker.io/library/nginx:1.25");
			cr_assert_str_eq(cgs[i].image, "docker.io/library/nginx:1.25");
		}
	}
	cr_assert(saw_cron && saw_a);

	/* A rule for nginx's image places A's cgroup under its policy, and nothing else. */
	struct rule set[1] = {
	    parse("{\"name\": \"nginx-no-smtp\", \"scope\": {\"images\": [\"nginx:*\"]},"
		  " \"network\": {\"deny\": {\"effect\": \"prevent\", \"connect\": "
		  "[\"0.0.0.0/0:25\"]}}}")};
	memset(&sf, 0, sizeof(sf));
	netplan_build(set, 1, cgs, n, NULL, NULL, &plan, &sf);
	cr_assert_eq(sf.n, 0, "nothing left to alert only: %zu", sf.n);
	cr_assert_eq(plan.ncgroups, 1);
	cr_assert_eq(plan.cgroups[0].id, a);
	cr_assert_eq(plan.cgroups[0].policy, 1);
	cr_assert_eq(plan.count[1], 1);
	cr_assert_eq(plan.entries[plan.first[1]].port_lo, 25);
	cr_assert_eq(plan.count[0], 0, "the host's own policy is untouched");
	rule_fini(&set[0]);
	container_cache_fini(&ctrs);
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A long image gets the name its processes' models have (classify_container_service), not none. */
Test(netplan, a_container_of_a_long_image_is_named_as_its_models_are)
{
	char root[] = "/tmp/vigil-netplan-XXXXXX", path[512], image[256], text[1024], want[160];
	struct netplan_cgroup cgs[1] = {{.id = 7, .container_id = ID_A}};
	struct container_cache ctrs;
	FILE *f;

	cr_assert_not_null(mkdtemp(root));
	mkdirs(root, "var/lib/docker/containers/" ID_A);
	memset(image, 'x', 200);
	memcpy(image, "localhost/", 10);
	snprintf(image + 200, sizeof(image) - 200, ":1");
	snprintf(path, sizeof(path), "%s/var/lib/docker/containers/" ID_A "/config.v2.json", root);
	snprintf(text, sizeof(text),
		 "{\"ID\":\"" ID_A "\",\"Name\":\"/long\",\"Config\":{\"Image\":\"%s\"}}", image);
	cr_assert_not_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
	cr_assert_eq(container_cache_init(&ctrs, root, 0, 0, NULL), 0);
	cr_assert_eq(netplan_name_containers(cgs, 1, &ctrs, 1000), 1, "placed, not left out");
	classify_container_service(image, want);
	cr_assert_str_eq(cgs[0].service, want);
	cr_assert_str_eq(cgs[0].image, image);
	container_cache_fini(&ctrs);
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
