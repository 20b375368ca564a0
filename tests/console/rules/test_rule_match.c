/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a rule set says about an act (console/rules/rule_match): path globs
 * with '**', shells and interpreters by name, networks and ports, which rule
 * decides for a service, and allow over deny.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#include "rules/rule.h"
#include "rules/rule_match.h"

Test(rule_match, path_globs_stay_within_names_and_globstar_spans_them)
{
	cr_assert(rule_path_glob_match("/etc/shadow", "/etc/shadow"));
	cr_assert(!rule_path_glob_match("/etc/shadow", "/etc/shadow-"));
	cr_assert(rule_path_glob_match("/etc/cron.d/*", "/etc/cron.d/job"));
	cr_assert(!rule_path_glob_match("/etc/cron.d/*", "/etc/cron.d/sub/job"));
	cr_assert(!rule_path_glob_match("/etc/cron.d/*", "/etc/cron.d"));
	cr_assert(rule_path_glob_match("/var/spool/cron/**", "/var/spool/cron/crontabs/root"));
	cr_assert(rule_path_glob_match("/var/spool/cron/**", "/var/spool/cron"));
	cr_assert(rule_path_glob_match("/home/**/.ssh/*", "/home/ann/.ssh/id_ed25519"));
	cr_assert(rule_path_glob_match("/home/**/.ssh/*", "/home/a/b/c/.ssh/authorized_keys"));
	cr_assert(!rule_path_glob_match("/home/**/.ssh/*", "/home/ann/.sshx/k"));
	cr_assert(rule_path_glob_match("/**/x.[ch]", "/a/b/x.c"));
	cr_assert(!rule_path_glob_match("/**/x.[ch]", "/a/b/x.o"));
	cr_assert(rule_path_glob_match("/tmp/[!a-c]?", "/tmp/dz"));
	cr_assert(!rule_path_glob_match("/tmp/[!a-c]?", "/tmp/bz"));
	cr_assert(rule_path_glob_match("/tmp/\\[literal\\]", "/tmp/[literal]"));
	cr_assert(!rule_path_glob_match("/tmp/\\*", "/tmp/x"));
	cr_assert(rule_path_glob_match("/tmp/?", "/tmp/\xc3\xa9"),
		  "? is one character, not a byte");
	cr_assert(rule_path_glob_match("/usr/bin/nc*", "/usr/bin/ncat"));
	cr_assert(rule_path_glob_match("/a/*b*c", "/a/xxbyybzzc"));
	cr_assert(!rule_path_glob_match("/etc/*", "etc/x"), "a relative path never matches");
}

Test(rule_match, globstar_backtracking_is_not_exponential)
{
	char path[4096];
	size_t n = 0;

	while (n + 3 < sizeof(path) - 8) {
		memcpy(path + n, "/a", 2);
		n += 2;
	}
	path[n] = '\0';
	/* Never matches: each '**' would try every split under naive backtracking. */
	cr_assert(!rule_path_glob_match("/**/a/**/a/**/a/**/a/**/b", path));
}

Test(rule_match, shells_and_interpreters_are_known_by_name_wherever_they_are)
{
	cr_assert(rule_is_shell("/bin/bash"));
	cr_assert(rule_is_shell("/tmp/copied/dash"));
	cr_assert(rule_is_shell("/bin/busybox"));
	cr_assert(!rule_is_shell("/usr/bin/bashful"));
	cr_assert(rule_is_interpreter("/usr/bin/python3.11"));
	cr_assert(rule_is_interpreter("/usr/bin/perl5.36.0"));
	cr_assert(!rule_is_interpreter("/usr/bin/python3-config"));
	cr_assert(rule_exe_entry_matches("any-shell", "/usr/bin/sh"));
	cr_assert(!rule_exe_entry_matches("any-interpreter", "/usr/bin/sh"));
	cr_assert(rule_exe_entry_matches("/usr/bin/*", "/usr/bin/sh"));
}

static struct rule parse(const char *json)
{
	struct rule r;
	struct rule_error err;

	cr_assert_eq(rule_parse(json, strlen(json), &r, &err), 0, "%s: %s", err.field, err.reason);
	return r;
}

Test(rule_match, networks_ports_and_v4_mapped_peers)
{
	struct rule r = parse("{\"name\": \"n\", \"network\": {\"deny\": {\"effect\": \"prevent\","
			      " \"connect\": [\"198.51.100.0/24:3333\", \"[2001:db8::/32]:443\","
			      " \"10.0.0.0/9\"], \"listen\": [\"tcp:22\", \"8000-8100\"]},"
			      " \"allow\": {\"connect\": [\"198.51.100.7\"]}}}");
	uint8_t a4[4], a6[16];
	size_t i = 99;

	inet_pton(AF_INET, "198.51.100.9", a4);
	cr_assert_eq(rule_match_connect(&r.network, AF_INET, a4, 3333, &i), RULE_LIST_DENY);
	cr_assert_eq(i, 0);
	cr_assert_eq(rule_match_connect(&r.network, AF_INET, a4, 3334, NULL), RULE_LIST_NONE);
	inet_pton(AF_INET, "198.51.100.7", a4);
	cr_assert_eq(rule_match_connect(&r.network, AF_INET, a4, 3333, &i), RULE_LIST_ALLOW,
		     "an allow entry wins over a deny entry");
	inet_pton(AF_INET6, "::ffff:198.51.100.9", a6);
	cr_assert_eq(rule_match_connect(&r.network, AF_INET6, a6, 3333, NULL), RULE_LIST_DENY);
	inet_pton(AF_INET6, "2001:db8:1::5", a6);
	cr_assert_eq(rule_match_connect(&r.network, AF_INET6, a6, 443, &i), RULE_LIST_DENY);
	cr_assert_eq(i, 1);
	inet_pton(AF_INET, "10.127.255.255", a4);
	cr_assert_eq(rule_match_connect(&r.network, AF_INET, a4, 1, NULL), RULE_LIST_DENY);
	inet_pton(AF_INET, "10.128.0.0", a4);
	cr_assert_eq(rule_match_connect(&r.network, AF_INET, a4, 1, NULL), RULE_LIST_NONE,
		     "a /9 stops at its ninth bit");
	cr_assert_eq(rule_match_listen(&r.network, RULE_PROTO_TCP, 22, NULL), RULE_LIST_DENY);
	cr_assert_eq(rule_match_listen(&r.network, RULE_PROTO_UDP, 22, NULL), RULE_LIST_NONE);
	cr_assert_eq(rule_match_listen(&r.network, RULE_PROTO_UDP, 8050, &i), RULE_LIST_DENY);
	cr_assert_eq(i, 1);
	rule_fini(&r);
}

Test(rule_match, the_first_enabled_rule_with_the_section_whose_scope_matches_decides)
{
	struct rule set[4];
	struct rule_subject nginx = {"unit:nginx.service", NULL};
	struct rule_subject person = {NULL, NULL};
	struct rule_subject boxed = {"unit:app.service", "docker.io/library/nginx:1.25"};

	set[0] = parse("{\"name\": \"off\", \"enabled\": false, \"processes\": {}}");
	set[1] = parse("{\"name\": \"web\", \"scope\": {\"services\": [\"nginx.*\"]},"
		       " \"processes\": {\"deviation\": \"prevent\"}}");
	set[2] = parse("{\"name\": \"img\", \"scope\": {\"images\": [\"docker.io/library/*\"]},"
		       " \"files\": {}}");
	set[3] = parse("{\"name\": \"all\", \"processes\": {}, \"network\": {}}");
	cr_assert_str_eq(rule_decider(set, 4, RULE_CAT_PROCESSES, &nginx)->name, "web");
	cr_assert_str_eq(rule_decider(set, 4, RULE_CAT_NETWORK, &nginx)->name, "all");
	cr_assert_null(rule_decider(set, 4, RULE_CAT_FILES, &nginx));
	cr_assert_str_eq(rule_decider(set, 4, RULE_CAT_PROCESSES, &person)->name, "all",
			 "a rule scoped to services never matches an interactive process");
	cr_assert_str_eq(rule_decider(set, 4, RULE_CAT_FILES, &boxed)->name, "img");
	for (int i = 0; i < 4; i++)
		rule_fini(&set[i]);
}

/* A rule for an image, written as operators do, decides for that image's containers only. */
Test(rule_match, an_image_scope_decides_for_that_images_containers_only)
{
	struct rule set[1];
	struct rule_subject web = {"container:docker.io/library/nginx:1.25",
				   "docker.io/library/nginx:1.25"};
	struct rule_subject db = {"container:docker.io/library/postgres:15",
				  "docker.io/library/postgres:15"};
	struct rule_subject shell = {NULL, "docker.io/library/nginx:1.25"};
	struct rule_subject host = {"unit:nginx.service", NULL};

	set[0] = parse("{\"name\": \"web\", \"scope\": {\"images\": [\"nginx:*\"]},"
		       " \"processes\": {\"deviation\": \"prevent\"}}");
	cr_assert_not_null(rule_decider(set, 1, RULE_CAT_PROCESSES, &web));
	cr_assert_null(rule_decider(set, 1, RULE_CAT_PROCESSES, &db), "another image");
	cr_assert_not_null(rule_decider(set, 1, RULE_CAT_PROCESSES, &shell),
			   "a person's shell in such a container is in scope too");
	cr_assert_null(rule_decider(set, 1, RULE_CAT_PROCESSES, &host), "not in a container");
	rule_fini(&set[0]);
}

Test(rule_match, files_are_read_and_written_separately)
{
	struct rule r = parse("{\"name\": \"f\", \"files\": {\"deny\": {\"effect\": \"block\","
			      " \"read\": [\"/etc/shadow\"], \"write\": [\"/etc/cron.d/*\"]},"
			      " \"allow\": {\"write\": [\"/etc/cron.d/keep\"]}}}");

	cr_assert_eq(rule_match_file(&r.files, "/etc/shadow", false, NULL), RULE_LIST_DENY);
	cr_assert_eq(rule_match_file(&r.files, "/etc/shadow", true, NULL), RULE_LIST_NONE);
	cr_assert_eq(rule_match_file(&r.files, "/etc/cron.d/x", true, NULL), RULE_LIST_DENY);
	cr_assert_eq(rule_match_file(&r.files, "/etc/cron.d/x", false, NULL), RULE_LIST_NONE);
	cr_assert_eq(rule_match_file(&r.files, "/etc/cron.d/keep", true, NULL), RULE_LIST_ALLOW);
	rule_fini(&r);
}
