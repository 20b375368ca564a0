/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rules parsed, checked and written back (console/rules): every reason a rule
 * is refused, the field each refusal names, the canonical form and its round
 * trip, and whole rule sets.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "rules/rule.h"
#include "rules/rule_values.h"
#include "rules/rule_set.h"

/* A rule using every field, as an operator might write it. */
static const char full_rule[] =
    "{\"name\": \"web: no shells\", \"enabled\": false, \"comment\": \"line 1\\n\\tline 2\","
    " \"scope\": {\"hosts\": [\"web-*\", \"db-[0-9]\"], \"labels\": [\"env=prod\", \"tier=\"],"
    "  \"services\": [\"nginx.service\", \"exe:/usr/sbin/*\"],"
    "  \"images\": [\"docker.io/library/nginx:*\"]},"
    " \"processes\": {\"deviation\": \"prevent\", \"deny\": {\"effect\": \"block\","
    "  \"executables\": [\"any-shell\", \"/usr/bin/nc*\"]},"
    "  \"allow\": {\"executables\": [\"/usr/sbin/nginx\", \"any-interpreter\"]}},"
    " \"network\": {\"deviation\": \"disabled\", \"deny\": {\"effect\": \"prevent\","
    "  \"listen\": [22, \"tcp:0080\", \"udp:53\", \"8000-8100\"],"
    "  \"connect\": [\"10.0.0.0/8\", \"10.0.0.0/8:22\", \"[2001:0db8::/32]:443\","
    "   \"0.0.0.0/0:25-26\", \"1.2.3.4\", \"2001:db8::1\", \"[::/0]\"]},"
    "  \"allow\": {\"listen\": [\"tcp:443\"], \"connect\": [\"192.168.0.0/16:53\"]}},"
    " \"files\": {\"deny\": {\"effect\": \"alert\", \"read\": [\"/etc/shadow\"],"
    "  \"write\": [\"/etc/cron.d/*\", \"/var/**/x.[ch]\", \"/tmp/\\\\[literal\\\\]\"]},"
    "  \"allow\": {\"read\": [], \"write\": [\"/etc/cron.d/keep\"]}}}";

/* Its canonical form: defaults written out, ports and networks normalized, key order fixed. */
static const char full_canonical[] =
    "{\"name\":\"web: no shells\",\"enabled\":false,\"comment\":\"line 1\\n\\tline 2\","
    "\"scope\":{\"hosts\":[\"web-*\",\"db-[0-9]\"],\"labels\":[\"env=prod\",\"tier=\"],"
    "\"services\":[\"nginx.service\",\"exe:/usr/sbin/*\"],"
    "\"images\":[\"docker.io/library/nginx:*\"]},"
    "\"processes\":{\"deviation\":\"prevent\",\"deny\":{\"effect\":\"block\","
    "\"executables\":[\"any-shell\",\"/usr/bin/nc*\"]},"
    "\"allow\":{\"executables\":[\"/usr/sbin/nginx\",\"any-interpreter\"]}},"
    "\"network\":{\"deviation\":\"disabled\",\"deny\":{\"effect\":\"prevent\","
    "\"listen\":[\"22\",\"tcp:80\",\"udp:53\",\"8000-8100\"],"
    "\"connect\":[\"10.0.0.0/8\",\"10.0.0.0/8:22\",\"[2001:db8::/32]:443\","
    "\"0.0.0.0/0:25-26\",\"1.2.3.4/32\",\"2001:db8::1/128\",\"::/0\"]},"
    "\"allow\":{\"listen\":[\"tcp:443\"],\"connect\":[\"192.168.0.0/16:53\"]}},"
    "\"files\":{\"deviation\":\"alert\",\"deny\":{\"effect\":\"alert\",\"read\":[\"/etc/shadow\"],"
    "\"write\":[\"/etc/cron.d/*\",\"/var/**/x.[ch]\",\"/tmp/\\\\[literal\\\\]\"]},"
    "\"allow\":{\"read\":[],\"write\":[\"/etc/cron.d/keep\"]}}}";

static char *canonical_of(const char *json)
{
	struct rule r;
	struct rule_error err;
	char *text = NULL;
	size_t len;

	cr_assert_eq(rule_parse(json, strlen(json), &r, &err), 0, "refused: %s: %s: %s", err.rule,
		     err.field, err.reason);
	cr_assert_eq(rule_serialize(&r, &text, &len), 0);
	cr_assert_eq(strlen(text), len);
	rule_fini(&r);
	return text;
}

Test(rule, canonical_form_fills_defaults_and_normalizes)
{
	char *text = canonical_of(full_rule);

	cr_expect_str_eq(text, full_canonical);
	free(text);
}

Test(rule, canonical_form_parses_back_to_itself)
{
	char *once = canonical_of(full_rule), *twice = canonical_of(once);

	cr_expect_str_eq(twice, once);
	free(once);
	free(twice);
}

Test(rule, parsed_values_are_what_the_text_says)
{
	struct rule r;
	struct rule_error err;

	cr_assert_eq(rule_parse(full_rule, strlen(full_rule), &r, &err), 0, "%s", err.reason);
	cr_expect_str_eq(r.name, "web: no shells");
	cr_expect_not(r.enabled);
	cr_expect_eq(r.processes.deviation, RULE_EFFECT_PREVENT);
	cr_expect_eq(r.processes.deny_effect, RULE_EFFECT_BLOCK);
	cr_expect_eq(r.network.deviation, RULE_EFFECT_DISABLED);
	cr_expect_eq(r.files.deviation, RULE_EFFECT_ALERT);
	cr_assert_eq(r.network.deny.listen.n, 4);
	cr_expect_eq(r.network.deny.listen.v[0].proto, RULE_PROTO_ANY);
	cr_expect_eq(r.network.deny.listen.v[1].proto, RULE_PROTO_TCP);
	cr_expect_eq(r.network.deny.listen.v[1].lo, 80);
	cr_expect_eq(r.network.deny.listen.v[3].lo, 8000);
	cr_expect_eq(r.network.deny.listen.v[3].hi, 8100);
	cr_assert_eq(r.network.deny.connect.n, 7);
	cr_expect_eq(r.network.deny.connect.v[1].family, AF_INET);
	cr_expect_eq(r.network.deny.connect.v[1].prefix, 8);
	cr_expect_eq(r.network.deny.connect.v[1].addr[0], 10);
	cr_expect_eq(r.network.deny.connect.v[1].port_lo, 22);
	cr_expect_eq(r.network.deny.connect.v[2].family, AF_INET6);
	cr_expect_eq(r.network.deny.connect.v[2].port_hi, 443);
	cr_expect_eq(r.network.deny.connect.v[3].port_lo, 25);
	cr_expect_eq(r.network.deny.connect.v[3].port_hi, 26);
	cr_expect_eq(r.network.deny.connect.v[0].port_lo, 0, "no port: every port");
	cr_expect_eq(r.scope.labels.n, 2);
	cr_expect_eq(r.id, 0);
	cr_expect_eq(r.position, 0);
	rule_fini(&r);
}

Test(rule, an_absent_section_stays_absent_and_an_empty_one_gets_defaults)
{
	char *text = canonical_of("{\"name\":\"x\",\"files\":{}}");

	cr_expect_str_eq(text,
			 "{\"name\":\"x\",\"enabled\":true,\"comment\":\"\","
			 "\"scope\":{\"hosts\":[],\"labels\":[],\"services\":[],\"images\":[]},"
			 "\"files\":{\"deviation\":\"alert\",\"deny\":{\"effect\":\"alert\","
			 "\"read\":[],\"write\":[]},\"allow\":{\"read\":[],\"write\":[]}}}");
	free(text);
}

Test(rule, id_and_position_come_first_in_the_api_form)
{
	struct rule r;
	struct rule_error err;
	const char *in = "{\"position\":3,\"name\":\"x\",\"id\":42,\"network\":{}}";
	json_t *o;
	char *text, *stored;
	size_t len;

	cr_assert_eq(rule_parse(in, strlen(in), &r, &err), 0, "%s", err.reason);
	cr_expect_eq(r.id, 42);
	cr_expect_eq(r.position, 3);
	o = rule_to_json(&r);
	text = json_dumps(o, JSON_COMPACT);
	cr_expect_eq(strncmp(text, "{\"id\":42,\"position\":3,\"name\":\"x\",", 33), 0, "%s", text);
	/* What the console stores has neither. */
	cr_assert_eq(rule_serialize(&r, &stored, &len), 0);
	cr_expect_null(strstr(stored, "\"id\""));
	cr_expect_null(strstr(stored, "\"position\""));
	free(text);
	free(stored);
	json_decref(o);
	rule_fini(&r);
}

/* One refusal: the input, the rule it must name ("" for none), the field, words of the reason. */
struct refusal {
	const char *json;
	const char *rule;
	const char *field;
	const char *reason;
};

static void expect_refused(const struct refusal *t)
{
	struct rule r;
	struct rule_error err;
	int rc = rule_parse(t->json, strlen(t->json), &r, &err);

	cr_expect_eq(rc, -EINVAL, "accepted: %s", t->json);
	if (rc == 0) {
		rule_fini(&r);
		return;
	}
	cr_expect_str_eq(err.rule, t->rule, "%s", t->json);
	cr_expect_str_eq(err.field, t->field, "%s (reason: %s)", t->json, err.reason);
	cr_expect(strstr(err.reason, t->reason) != NULL, "%s: reason '%s' lacks '%s'", t->json,
		  err.reason, t->reason);
	/* Nothing left to free, and a second fini is harmless. */
	rule_fini(&r);
}

#define R(body) "{\"name\":\"no-shells\"," body "}"

Test(rule, unknown_effects_are_refused)
{
	static const struct refusal t[] = {
	    {R("\"processes\":{\"deny\":{\"effect\":\"stop\"}}"), "no-shells",
	     "processes.deny.effect", "'stop' is not an effect: use alert, prevent or block"},
	    {R("\"processes\":{\"deny\":{\"effect\":\"disabled\"}}"), "no-shells",
	     "processes.deny.effect", "use alert, prevent or block"},
	    {R("\"network\":{\"deviation\":\"deny\"}"), "no-shells", "network.deviation",
	     "'deny' is not an effect: use disabled, alert, prevent or block"},
	    {R("\"files\":{\"deviation\":\"ALERT\"}"), "no-shells", "files.deviation",
	     "is not an effect"},
	    {R("\"files\":{\"deviation\":1}"), "no-shells", "files.deviation", "must be a string"},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		expect_refused(&t[i]);
}

Test(rule, unknown_fields_are_refused_at_every_level)
{
	static const struct refusal t[] = {
	    {R("\"proceses\":{}"), "no-shells", "proceses", "unknown field (a rule takes id,"},
	    {R("\"files\":{},\"scope\":{\"host\":[\"a\"]}"), "no-shells", "scope.host",
	     "unknown field (scope takes hosts, labels, services, images)"},
	    {R("\"network\":{\"deny\":{\"conect\":[\"10.0.0.0/8\"]}}"), "no-shells",
	     "network.deny.conect", "unknown field (network.deny takes effect, listen, connect)"},
	    {R("\"network\":{\"allow\":{\"effect\":\"alert\"}}"), "no-shells",
	     "network.allow.effect", "unknown field (network.allow takes listen, connect)"},
	    {R("\"files\":{\"deny\":{\"execute\":[]}}"), "no-shells", "files.deny.execute",
	     "unknown field"},
	    {R("\"processes\":{\"allowed\":{}}"), "no-shells", "processes.allowed",
	     "unknown field (processes takes deviation, deny, allow)"},
	    {R("\"processes\":[]"), "no-shells", "processes", "must be an object"},
	    {R("\"files\":{\"deny\":[]}"), "no-shells", "files.deny", "must be an object"},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		expect_refused(&t[i]);
}

Test(rule, bad_globs_are_refused)
{
	static const struct refusal t[] = {
	    {R("\"processes\":{\"deny\":{\"executables\":[\"/bin/sh\",\"/usr/bin/[a\"]}}"),
	     "no-shells", "processes.deny.executables[1]", "'/usr/bin/[a' has an unbalanced '['"},
	    {R("\"files\":{\"deny\":{\"read\":[\"etc/shadow\"]}}"), "no-shells",
	     "files.deny.read[0]", "'etc/shadow' is not an absolute path"},
	    {R("\"files\":{\"allow\":{\"write\":[\"/a/b]\"]}}"), "no-shells",
	     "files.allow.write[0]", "has a ']' without its '['"},
	    {R("\"files\":{\"deny\":{\"write\":[\"/a/b\\\\\"]}}"), "no-shells",
	     "files.deny.write[0]", "ends with a lone '\\'"},
	    {R("\"files\":{\"deny\":{\"write\":[\"/a/[z-a]\"]}}"), "no-shells",
	     "files.deny.write[0]", "inverted range 'z-a'"},
	    {R("\"files\":{\"deny\":{\"write\":[\"/a[/]b\"]}}"), "no-shells", "files.deny.write[0]",
	     "has '/' inside [...]"},
	    {R("\"files\":{\"deny\":{\"write\":[\"/a/x**\"]}}"), "no-shells", "files.deny.write[0]",
	     "'**' must be a whole component"},
	    {R("\"files\":{\"deny\":{\"write\":[\"/etc/cron.d/\"]}}"), "no-shells",
	     "files.deny.write[0]", "ends with '/'"},
	    {R("\"files\":{\"deny\":{\"write\":[\"/etc//cron.d\"]}}"), "no-shells",
	     "files.deny.write[0]", "empty component"},
	    {R("\"files\":{\"deny\":{\"write\":[\"/etc/../shadow\"]}}"), "no-shells",
	     "files.deny.write[0]", "'..' component"},
	    {R("\"files\":{\"deny\":{\"write\":[\"\"]}}"), "no-shells", "files.deny.write[0]",
	     "is empty"},
	    {R("\"files\":{\"deny\":{\"write\":[\"/a\\u0007b\"]}}"), "no-shells",
	     "files.deny.write[0]", "'/a\\x07b' has a control character"},
	    {R("\"files\":{\"deny\":{\"write\":[\"/a\\u202eb\"]}}"), "no-shells",
	     "files.deny.write[0]", "direction-changing character (U+202E)"},
	    {R("\"files\":{\"deny\":{\"write\":[5]}}"), "no-shells", "files.deny.write[0]",
	     "must be a string"},
	    {R("\"processes\":{\"deny\":{\"executables\":[\"bash\"]}}"), "no-shells",
	     "processes.deny.executables[0]",
	     "'bash' is not an absolute path, any-shell or any-interpreter"},
	    {R("\"processes\":{},\"scope\":{\"hosts\":[\"web 1\"]}"), "no-shells", "scope.hosts[0]",
	     "a character no host id has"},
	    {R("\"processes\":{},\"scope\":{\"hosts\":[\"web-[1\"]}"), "no-shells",
	     "scope.hosts[0]", "unbalanced '['"},
	    {R("\"processes\":{},\"scope\":{\"images\":[\"nginx :1\"]}"), "no-shells",
	     "scope.images[0]", "has a space"},
	    {R("\"processes\":{},\"scope\":{\"services\":[\"a]\"]}"), "no-shells",
	     "scope.services[0]", "without its '['"},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		expect_refused(&t[i]);
}

/* Containers' images are normalized as Docker does: a glob is kept in the same form. */
Test(rule, image_globs_are_kept_as_full_image_names)
{
	static const char *const cases[][2] = {
	    {"nginx", "docker.io/library/nginx:latest"},
	    {"nginx:*", "docker.io/library/nginx:*"},
	    {"bitnami/redis", "docker.io/bitnami/redis:latest"},
	    {"docker.io/nginx:1.25", "docker.io/library/nginx:1.25"},
	    {"index.docker.io/library/nginx:1", "docker.io/library/nginx:1"},
	    {"docker.io/*", "docker.io/*"},
	    {"docker.io/library/*", "docker.io/library/*"},
	    {"quay.io/app/*", "quay.io/app/*"},
	    {"localhost/vigil-test-*-b:*", "localhost/vigil-test-*-b:*"},
	    {"localhost:5000/app", "localhost:5000/app:latest"},
	    {"*", "*"},
	    {"*/nginx:*", "*/nginx:*"},
	    {"registry.k8s.io/pause@sha256:*", "registry.k8s.io/pause@sha256:*"},
	};
	char json[512], again[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rule r;
		struct rule_error err;

		snprintf(json, sizeof(json), R("\"processes\":{},\"scope\":{\"images\":[\"%s\"]}"),
			 cases[i][0]);
		cr_assert_eq(rule_parse(json, strlen(json), &r, &err), 0, "%s: %s", json,
			     err.reason);
		cr_expect_str_eq(r.scope.images.v[0], cases[i][1]);
		/* The canonical form is a fixed point. */
		cr_expect(rule_image_glob_normalize(cases[i][1], again, sizeof(again)));
		cr_expect_str_eq(again, cases[i][1]);
		rule_fini(&r);
	}
}

Test(rule, image_globs_that_could_never_match_are_refused)
{
	static const struct refusal t[] = {
	    {R("\"processes\":{},\"scope\":{\"images\":[\"ngïnx\"]}"), "no-shells",
	     "scope.images[0]", "a character no image name has"},
	    {R("\"processes\":{},\"scope\":{\"images\":[\"nginx;1\"]}"), "no-shells",
	     "scope.images[0]", "a character no image name has"},
	    {R("\"processes\":{},\"scope\":{\"images\":[\"nginx:[1\"]}"), "no-shells",
	     "scope.images[0]", "unbalanced '['"},
	    /* The same image twice, written two ways. */
	    {R("\"processes\":{},\"scope\":{\"images\":[\"nginx\","
	       "\"docker.io/library/nginx:latest\"]}"),
	     "no-shells", "scope.images[1]", "is also entry [0]"},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		expect_refused(&t[i]);
}

Test(rule, bad_networks_are_refused)
{
	static const struct refusal t[] = {
	    {R("\"network\":{\"deny\":{\"connect\":[\"10.0.0.0/8\",\"10.1.0.0/16\","
	       "\"10.0.0.0/33\"]}}"),
	     "no-shells", "network.deny.connect[2]",
	     "'10.0.0.0/33' is not a CIDR: prefix length over 32"},
	    {R("\"network\":{\"deny\":{\"connect\":[\"10.0.0.1/8\"]}}"), "no-shells",
	     "network.deny.connect[0]", "bits are set past the prefix (the network is 10.0.0.0/8)"},
	    {R("\"network\":{\"deny\":{\"connect\":[\"300.0.0.0/8\"]}}"), "no-shells",
	     "network.deny.connect[0]", "'300.0.0.0' is not an IPv4 address"},
	    {R("\"network\":{\"deny\":{\"connect\":[\"2001:db8::/129\"]}}"), "no-shells",
	     "network.deny.connect[0]", "prefix length over 128"},
	    {R("\"network\":{\"deny\":{\"connect\":[\"[10.0.0.0/8]:22\"]}}"), "no-shells",
	     "network.deny.connect[0]", "is not an IPv6 address"},
	    {R("\"network\":{\"deny\":{\"connect\":[\"[2001:db8::/32:443\"]}}"), "no-shells",
	     "network.deny.connect[0]", "without ']'"},
	    {R("\"network\":{\"deny\":{\"connect\":[\"10.0.0.0/x\"]}}"), "no-shells",
	     "network.deny.connect[0]", "prefix length is not a number"},
	    {R("\"network\":{\"deny\":{\"connect\":[\"example.com:443\"]}}"), "no-shells",
	     "network.deny.connect[0]", "is not an IPv4 address"},
	    {R("\"network\":{\"allow\":{\"connect\":[\"10.0.0.0/8:0\"]}}"), "no-shells",
	     "network.allow.connect[0]", "out of range: ports are 1 to 65535"},
	    {R("\"network\":{\"allow\":{\"connect\":[\"10.0.0.0/8:30-20\"]}}"), "no-shells",
	     "network.allow.connect[0]", "inverted range: 30 is above 20"},
	    {R("\"network\":{\"allow\":{\"connect\":[\"10.0.0.0/8:\"]}}"), "no-shells",
	     "network.allow.connect[0]", "is not a port or a range of ports"},
	    {R("\"network\":{\"allow\":{\"connect\":[\"10.0.0.0/8\",\"10.0.0.0/8\"]}}"),
	     "no-shells", "network.allow.connect[1]", "is also entry [0]"},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		expect_refused(&t[i]);
}

Test(rule, bad_ports_are_refused)
{
	static const struct refusal t[] = {
	    {R("\"network\":{\"deny\":{\"listen\":[22,70000]}}"), "no-shells",
	     "network.deny.listen[1]", "'70000' is out of range: ports are 1 to 65535"},
	    {R("\"network\":{\"deny\":{\"listen\":[0]}}"), "no-shells", "network.deny.listen[0]",
	     "out of range"},
	    {R("\"network\":{\"deny\":{\"listen\":[-5]}}"), "no-shells", "network.deny.listen[0]",
	     "is not a port"},
	    {R("\"network\":{\"deny\":{\"listen\":[\"9000-8000\"]}}"), "no-shells",
	     "network.deny.listen[0]", "'9000-8000' is an inverted range: 9000 is above 8000"},
	    {R("\"network\":{\"deny\":{\"listen\":[\"ftp:21\"]}}"), "no-shells",
	     "network.deny.listen[0]", "a protocol other than tcp: or udp:"},
	    {R("\"network\":{\"deny\":{\"listen\":[22.5]}}"), "no-shells", "network.deny.listen[0]",
	     "must be a port number or a string"},
	    {R("\"network\":{\"deny\":{\"listen\":[\"http\"]}}"), "no-shells",
	     "network.deny.listen[0]", "is not a port or a range of ports"},
	    {R("\"network\":{\"deny\":{\"listen\":[\"tcp:22\",\"tcp:22\"]}}"), "no-shells",
	     "network.deny.listen[1]", "is also entry [0]"},
	    {R("\"network\":{\"deny\":{\"listen\":\"22\"}}"), "no-shells", "network.deny.listen",
	     "must be a list"},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		expect_refused(&t[i]);
}

/* A rule whose files.deny.write has n entries "/pN" followed by pad bytes. */
static char *rule_with_writes(size_t n, size_t pad)
{
	size_t cap = 256 + n * (pad + 32);
	char *s = malloc(cap);
	size_t o;

	cr_assert_not_null(s);
	o = (size_t)snprintf(s, cap, "{\"name\":\"big\",\"files\":{\"deny\":{\"write\":[");
	for (size_t i = 0; i < n; i++) {
		o += (size_t)snprintf(s + o, cap - o, "%s\"/p%zu", i ? "," : "", i);
		for (size_t k = 0; k < pad; k++)
			s[o++] = 'x';
		s[o++] = '"';
	}
	snprintf(s + o, cap - o, "]}}}");
	return s;
}

Test(rule, overlong_lists_and_texts_are_refused)
{
	char *json = rule_with_writes(RULE_LIST_MAX + 1, 0), *json2, name[200], glob[5000];
	struct refusal t = {json, "big", "files.deny.write", "has 257 entries, more than 256"};
	struct rule r;
	struct rule_error err;

	expect_refused(&t);
	free(json);
	json = rule_with_writes(RULE_LIST_MAX, 0);
	cr_expect_eq(rule_parse(json, strlen(json), &r, &err), 0, "256 entries: %s", err.reason);
	rule_fini(&r);
	free(json);

	/* Within the input bound but over the canonical bound. */
	json = rule_with_writes(170, 300);
	cr_assert_lt(strlen(json), RULE_INPUT_MAX);
	t = (struct refusal){json, "big", "", "as canonical JSON, more than 49152"};
	expect_refused(&t);
	free(json);
	json = rule_with_writes(240, 300);
	cr_assert_gt(strlen(json), RULE_INPUT_MAX);
	t = (struct refusal){json, "", "", "more than 65536"};
	expect_refused(&t);
	free(json);

	memset(glob, 'a', sizeof(glob));
	glob[0] = '/';
	glob[RULE_GLOB_MAX + 1] = '\0';
	json2 = malloc(6000);
	snprintf(json2, 6000, R("\"files\":{\"deny\":{\"read\":[\"%s\"]}}"), glob);
	t = (struct refusal){json2, "no-shells", "files.deny.read[0]",
			     "is 4097 bytes, more than 4096"};
	expect_refused(&t);
	glob[RULE_GLOB_MAX] = '\0';
	snprintf(json2, 6000, R("\"files\":{\"deny\":{\"read\":[\"%s\"]}}"), glob);
	cr_expect_eq(rule_parse(json2, strlen(json2), &r, &err), 0, "4096 bytes: %s", err.reason);
	rule_fini(&r);

	memset(name, 'n', sizeof(name));
	name[RULE_NAME_MAX + 1] = '\0';
	snprintf(json2, 6000, "{\"name\":\"%s\",\"files\":{}}", name);
	t = (struct refusal){json2, "", "name", "is 129 bytes, more than 128"};
	expect_refused(&t);
	name[RULE_NAME_MAX] = '\0';
	snprintf(json2, 6000, "{\"name\":\"%s\",\"files\":{}}", name);
	cr_expect_eq(rule_parse(json2, strlen(json2), &r, &err), 0, "128 bytes: %s", err.reason);
	rule_fini(&r);
	free(json2);
}

Test(rule, bad_labels_are_refused)
{
	static const struct refusal t[] = {
	    {R("\"files\":{},\"scope\":{\"labels\":[\"env\"]}"), "no-shells", "scope.labels[0]",
	     "'env' is not key=value"},
	    {R("\"files\":{},\"scope\":{\"labels\":[\"=prod\"]}"), "no-shells", "scope.labels[0]",
	     "empty key"},
	    {R("\"files\":{},\"scope\":{\"labels\":[\"env=prod\",\"env=dev\"]}"), "no-shells",
	     "scope.labels[1]", "the key 'env' is also in entry [0]"},
	    {R("\"files\":{},\"scope\":{\"labels\":[\"my env=prod\"]}"), "no-shells",
	     "scope.labels[0]", "space in its key"},
	    {R("\"files\":{},\"scope\":{\"labels\":["
	       "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	       "aaaaaaaaaaaaaaa=1\"]}"),
	     "no-shells", "scope.labels[0]", "key of 64 bytes, more than 63"},
	    {R("\"files\":{},\"scope\":{\"labels\":[\"a=b\\u0001\"]}"), "no-shells",
	     "scope.labels[0]", "control character"},
	    {R("\"files\":{},\"scope\":{\"labels\":\"env=prod\"}"), "no-shells", "scope.labels",
	     "must be a list"},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		expect_refused(&t[i]);
}

Test(rule, bad_names_and_scalars_are_refused)
{
	static const struct refusal t[] = {
	    {"{\"files\":{}}", "", "name", "is missing"},
	    {"{\"name\":\"\",\"files\":{}}", "", "name", "is empty"},
	    {"{\"name\":7,\"files\":{}}", "", "name", "must be a string"},
	    {"{\"name\":\"a\\u0000b\",\"files\":{}}", "", "", "not JSON"},
	    {"{\"name\":\"a\\tb\",\"files\":{}}", "", "name", "control character (U+0009)"},
	    {"{\"name\":\"a\\u0085b\",\"files\":{}}", "", "name", "control character (U+0085)"},
	    {"{\"name\":\"a\\u200bb\",\"files\":{}}", "", "name", "invisible"},
	    {"{\"name\":\" a\",\"files\":{}}", "", "name", "starts or ends with a space"},
	    {"{\"name\":\"x\"}", "x", "", "decides nothing"},
	    {"{\"name\":\"x\",\"files\":{},\"enabled\":\"yes\"}", "x", "enabled",
	     "must be true or false"},
	    {"{\"name\":\"x\",\"files\":{},\"position\":0}", "x", "position", "from 1 to 1024"},
	    {"{\"name\":\"x\",\"files\":{},\"position\":1025}", "x", "position", "from 1 to 1024"},
	    {"{\"name\":\"x\",\"files\":{},\"id\":0}", "x", "id", "positive integer"},
	    {"{\"name\":\"x\",\"files\":{},\"comment\":null}", "x", "comment", "must be a string"},
	    {"{\"name\":\"x\",\"files\":{},\"comment\":\"a\\u001bb\"}", "x", "comment",
	     "control character"},
	    {"{\"name\":\"x\",\"files\":{},\"name\":\"y\"}", "", "", "duplicate object key"},
	    {"{\"name\":\"x\",", "", "", "not JSON"},
	    {"[]", "", "", "must be an object"},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		expect_refused(&t[i]);
}

Test(rule, a_quoted_value_is_cut_and_escaped)
{
	char json[512], long_path[200];
	struct refusal t;

	memset(long_path, 'a', sizeof(long_path));
	long_path[sizeof(long_path) - 1] = '\0';
	snprintf(json, sizeof(json), R("\"files\":{\"deny\":{\"read\":[\"%s\"]}}"), long_path);
	t = (struct refusal){
	    json, "no-shells", "files.deny.read[0]",
	    "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' is "
	    "not an absolute path"};
	expect_refused(&t);
}

Test(rule, single_values_parse_and_print_canonically)
{
	struct rule_port p;
	struct rule_net n;
	char why[256], text[80];

	cr_assert(rule_parse_port("udp:1-65535", &p, why, sizeof(why)), "%s", why);
	rule_port_text(&p, text, sizeof(text));
	cr_expect_str_eq(text, "udp:1-65535");
	cr_assert(rule_parse_net("[2001:DB8:0:0::/64]:8000-8100", &n, why, sizeof(why)), "%s", why);
	rule_net_text(&n, text, sizeof(text));
	cr_expect_str_eq(text, "[2001:db8::/64]:8000-8100");
	cr_assert(rule_parse_net("0.0.0.0/0", &n, why, sizeof(why)), "%s", why);
	rule_net_text(&n, text, sizeof(text));
	cr_expect_str_eq(text, "0.0.0.0/0");
	cr_expect_not(rule_parse_net("010.0.0.0/8", &n, why, sizeof(why)));
	cr_expect_not(rule_parse_net("10.0.0.0/008", &n, why, sizeof(why)));
	cr_expect(rule_check_path_glob("/", why, sizeof(why)));
	cr_expect(rule_check_path_glob("/home/**", why, sizeof(why)), "%s", why);
	cr_expect(rule_check_path_glob("/a/[]x]/b", why, sizeof(why)), "%s", why);
	cr_expect(rule_check_path_glob("/a/[!.]*", why, sizeof(why)), "%s", why);
	cr_expect_not(rule_check_path_glob("/a/[]", why, sizeof(why)));
	cr_expect(rule_check_name("web: no shells (prod) — ünïcode", why, sizeof(why)), "%s", why);
}

/* A rule set {"rules": [...]} from text; the parse result. */
static int set_parse(const char *text, struct rule_set *s, struct rule_error *err)
{
	json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	int rc;

	cr_assert_not_null(doc, "%s", text);
	rc = rule_set_from_json(doc, s, err);
	json_decref(doc);
	return rc;
}

Test(rule_set, export_form_round_trips)
{
	const char *in = "{\"format\":\"vigil-rules/1\",\"version\":7,\"rules\":["
			 "{\"id\":9,\"position\":1,\"name\":\"a\",\"files\":{}},"
			 "{\"name\":\"b\",\"network\":{\"deny\":{\"listen\":[22]}}}]}";
	struct rule_set s, s2;
	struct rule_error err;
	json_t *out, *out2;
	char *text;

	cr_assert_eq(set_parse(in, &s, &err), 0, "%s: %s", err.field, err.reason);
	cr_assert_eq(s.n, 2);
	cr_expect_eq(s.v[0].id, 0, "ids are each console's own");
	out = rule_set_to_json(&s, 7);
	text = json_dumps(out, JSON_COMPACT);
	cr_expect_eq(strncmp(text,
			     "{\"format\":\"vigil-rules/1\",\"version\":7,\"rules\":[{\"name\":"
			     "\"a\",",
			     53),
		     0, "%s", text);
	cr_expect_null(strstr(text, "\"id\""));
	cr_assert_eq(set_parse(text, &s2, &err), 0, "%s", err.reason);
	out2 = rule_set_to_json(&s2, 7);
	cr_expect(json_equal(out, out2));
	free(text);
	json_decref(out);
	json_decref(out2);
	rule_set_fini(&s);
	rule_set_fini(&s2);
}

Test(rule_set, refusals_name_the_rule_and_its_place)
{
	static const struct refusal t[] = {
	    {"{\"rules\":[{\"name\":\"a\",\"files\":{}},{\"name\":\"a\",\"files\":{}}]}", "a",
	     "rules[1].name", "is also the name of rules[0]"},
	    {"{\"rules\":[{\"name\":\"a\",\"files\":{}},{\"name\":\"b\",\"network\":{\"deny\":"
	     "{\"connect\":[\"10.0.0.0/33\"]}}}]}",
	     "b", "rules[1].network.deny.connect[0]", "prefix length over 32"},
	    {"{\"rules\":[{\"name\":\"a\",\"position\":2,\"files\":{}}]}", "a", "rules[0].position",
	     "is 2, but the rule is number 1"},
	    {"{\"format\":\"vigil-rules/2\",\"rules\":[]}", "", "format", "must be"},
	    {"{\"rule\":[]}", "", "", "unknown field"},
	    {"{\"version\":1}", "", "rules", "is missing"},
	    {"{\"rules\":{}}", "", "rules", "must be a list"},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct rule_set s;
		struct rule_error err;

		cr_expect_eq(set_parse(t[i].json, &s, &err), -EINVAL, "%s", t[i].json);
		cr_expect_str_eq(err.rule, t[i].rule, "%s", t[i].json);
		cr_expect_str_eq(err.field, t[i].field, "%s: %s", t[i].json, err.reason);
		cr_expect(strstr(err.reason, t[i].reason) != NULL, "%s: %s", t[i].json, err.reason);
	}
}

Test(rule_set, at_most_1024_rules)
{
	json_t *arr = json_array();
	struct rule_set s;
	struct rule_error err;
	char name[32];

	for (int i = 0; i <= RULES_MAX; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		json_array_append_new(arr, json_pack("{s:s,s:{}}", "name", name, "files"));
	}
	cr_expect_eq(rule_set_from_array(arr, "rules", 0, &s, &err), -EINVAL);
	cr_expect(strstr(err.reason, "1025 rules, more than 1024") != NULL, "%s", err.reason);
	json_array_remove(arr, 0);
	cr_assert_eq(rule_set_from_array(arr, "rules", 0, &s, &err), 0, "%s", err.reason);
	cr_expect_eq(s.n, RULES_MAX);
	rule_set_fini(&s);
	/* A part of a larger import counts what came before it. */
	cr_expect_eq(rule_set_from_array(arr, "rules", 1, &s, &err), -EINVAL);
	json_decref(arr);
}
