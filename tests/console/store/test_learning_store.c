/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Learning data through store_ingest, and operator commands, against a real
 * PostgreSQL.  Same fixture as test_store.c: one initdb per program (PRE_ALL
 * hook), each test starts its own server on it, empties schema public and
 * migrates; a lock file serializes tests that share the cluster.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "store/audit_queries.h"
#include "store/host_commands.h"
#include "store/ingest.h"
#include "store/learning_queries.h"
#include "pgfixture.h"
#include "store/store.h"
#include "storefixture.h"

/* 2024-11-28T13:20:00Z and an hour later, in ms and ns. */
#define T0_MS 1732800000000ull
#define T1_MS 1732803600000ull
#define T0_NS (T0_MS * 1000000ull)

const char pgfix_state_name[] = "state";

TestSuite(learning_store, .init = storefix_setup, .fini = storefix_teardown, .timeout = 60);

static struct ingest_result ingest(const char *host, uint64_t seq, const struct ingest_batch *b)
{
	struct ingest_result res;
	vigil_err err = {0};

	cr_assert_eq(store_ingest(fx.st, host, seq, b, &res, &err), 0, "store_ingest: %s", err.msg);
	return res;
}

/* A batch as the defender sends it while a person works and a service is learned. */
static const struct store_activity act_ls = {
    .session = 4242, .user = "alice", .tty = "pts/0", .summary = "ls -la /etc"};
static const struct store_activity act_cat = {
    .session = 4242, .user = "alice", .tty = "pts/0", .summary = "cat /etc/passwd (read)"};
static const struct store_chain_link chain[] = {{.pid = 900, .comm = "foo", .exe = "/usr/sbin/foo"},
						{.pid = 1, .comm = "init", .exe = "/sbin/init"}};
static const struct store_model_entry entries1[] = {
    {.exe = "/usr/sbin/foo",
     .kind = "program",
     .pattern = "/bin/true",
     .first_seen_ms = T0_MS,
     .last_seen_ms = T0_MS + 5000,
     .count = 3},
    {.exe = "/usr/sbin/foo",
     .kind = "write",
     .pattern = "/var/lib/foo/*.tmp",
     .first_seen_ms = T0_MS,
     .last_seen_ms = T0_MS + 1000,
     .count = 7},
    {.exe = "/usr/sbin/foo",
     .kind = "listen",
     .pattern = "tcp:8080",
     .first_seen_ms = T0_MS + 10,
     .last_seen_ms = T0_MS + 10,
     .count = 1},
};

static void first_batch(struct store_event ev[3], struct store_deviation dev[2],
			struct store_model_delta *delta, struct ingest_batch *b)
{
	ev[0] = (struct store_event){.type = 1,
				     .ts_ns = T0_NS + 123456789,
				     .pid = 5000,
				     .ppid = 4242,
				     .uid = 1000,
				     .comm = "ls",
				     .json = "{\"type\":\"exec\",\"argv\":[\"ls\",\"-la\"]}",
				     .activity = &act_ls};
	ev[1] = (struct store_event){.type = 4,
				     .ts_ns = T0_NS + 2000000000ull,
				     .pid = 5001,
				     .ppid = 4242,
				     .uid = 1000,
				     .comm = "cat",
				     .json = "{\"type\":\"file\",\"path\":\"/etc/passwd\"}",
				     .activity = &act_cat};
	ev[2] = (struct store_event){.type = 1,
				     .ts_ns = T0_NS,
				     .pid = 900,
				     .ppid = 1,
				     .uid = 0,
				     .comm = "foo",
				     .json = "{\"type\":\"exec\"}"};
	dev[0] = (struct store_deviation){.ts_ns = T0_NS + 999000,
					  .service = "exe:/usr/sbin/foo",
					  .exe = "/usr/sbin/foo",
					  .kind = "new_program",
					  .object = "/bin/sh",
					  .raw = "/bin/sh",
					  .expected = "/bin/true",
					  .severity = "high",
					  .pid = 900,
					  .chain = chain,
					  .nchain = 2};
	dev[1] = (struct store_deviation){.ts_ns = T0_NS + 5,
					  .service = "exe:/usr/sbin/foo",
					  .exe = "/usr/sbin/foo",
					  .kind = "new_write",
					  .object = "/etc/*",
					  .raw = "/etc/shadow",
					  .severity = "medium",
					  .pid = 901};
	*delta = (struct store_model_delta){.service = "exe:/usr/sbin/foo",
					    .state = "learning",
					    .learning_since_ms = T0_MS,
					    .learn_drops = 2,
					    .note = "held back: 2 events lost while learning",
					    .entries = entries1,
					    .nentries = 3};
	*b = (struct ingest_batch){.events = ev,
				   .nevents = 3,
				   .deviations = dev,
				   .ndeviations = 2,
				   .deltas = delta,
				   .ndeltas = 1};
}

Test(learning_store, batch_lands_in_every_table_with_its_values)
{
	struct store_event ev[3];
	struct store_deviation dev[2];
	struct store_model_delta delta;
	struct ingest_batch b;
	struct ingest_result r;

	first_batch(ev, dev, &delta, &b);
	r = ingest("host-a", 1, &b);
	cr_expect_eq(r.stored, 3);
	cr_expect_eq(r.activity, 2);
	cr_expect_eq(r.deviations, 2);
	cr_expect_eq(r.deltas, 1);
	cr_expect_eq(r.entries, 3);
	cr_expect_eq(r.malformed, 0);

	/* Activity: one row per interactive event, oldest first by id. */
	cr_expect_eq(storefix_qn("SELECT count(*) FROM activity"), 2);
	cr_expect_str_eq(
	    storefix_q1("SELECT concat_ws('|', host_id, to_char(ts AT TIME ZONE 'UTC',"
			" 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), session, username, tty, pid, type,"
			" summary, body->'argv'->>1) FROM activity ORDER BY id LIMIT 1"),
	    "host-a|2024-11-28T13:20:00.123456|4242|alice|pts/0|5000|exec|ls -la /etc|-la");
	cr_expect_str_eq(
	    storefix_q1("SELECT type || ' ' || summary FROM activity ORDER BY id DESC LIMIT 1"),
	    "file cat /etc/passwd (read)");

	/* Deviations: audits with the model's service and executable. */
	cr_expect_str_eq(
	    storefix_q1("SELECT concat_ws('|', host_id, kind, severity, service, exe, summary,"
			" to_char(ts AT TIME ZONE 'UTC', 'HH24:MI:SS.US')) FROM audits"
			" WHERE kind = 'new_program'"),
	    "host-a|new_program|high|exe:/usr/sbin/foo|/usr/sbin/foo|exe:/usr/sbin/foo:"
	    " /usr/sbin/foo started /bin/sh, not in its model|13:20:00.000999");
	cr_expect_str_eq(storefix_q1("SELECT detail::text FROM audits WHERE kind = 'new_program'"),
			 "{\"ts\": \"2024-11-28T13:20:00.000999000Z\", \"pid\": 900, \"raw\":"
			 " \"/bin/sh\", \"chain\": [{\"exe\": \"/usr/sbin/foo\", \"pid\": 900,"
			 " \"comm\": \"foo\"}, {\"exe\": \"/sbin/init\", \"pid\": 1, \"comm\":"
			 " \"init\"}], \"object\": \"/bin/sh\", \"expected\": \"/bin/true\"}");
	cr_expect_str_eq(storefix_q1("SELECT summary || '|' || (detail->>'expected') FROM audits"
				     " WHERE kind = 'new_write'"),
			 "exe:/usr/sbin/foo: /usr/sbin/foo wrote /etc/shadow, not in its model|");

	/* The model and its entries, by value. */
	cr_expect_str_eq(storefix_q1("SELECT concat_ws('|', host_id, service, state,"
				     " (extract(epoch FROM learning_since) * 1000)::bigint,"
				     " coalesce(active_since::text, 'null'), learn_drops, note,"
				     " updated_at IS NOT NULL) FROM models"),
			 "host-a|exe:/usr/sbin/foo|learning|1732800000000|null|2|held back: 2"
			 " events lost while learning|t");
	cr_expect_str_eq(storefix_q1("SELECT string_agg(concat_ws(',', exe, kind, pattern,"
				     " (extract(epoch FROM first_seen) * 1000)::bigint,"
				     " (extract(epoch FROM last_seen) * 1000)::bigint, count), ';'"
				     " ORDER BY kind) FROM model_entries"),
			 "/usr/sbin/foo,listen,tcp:8080,1732800000010,1732800000010,1;"
			 "/usr/sbin/foo,program,/bin/true,1732800000000,1732800005000,3;"
			 "/usr/sbin/foo,write,/var/lib/foo/*.tmp,1732800000000,1732800001000,7");
	cr_expect_eq(storefix_qn("SELECT count(*) FROM audits WHERE kind LIKE 'malformed%'"), 0);
}

/*
 * A read model: entries of kind read (a shape among them) are stored, a
 * new_read deviation becomes an audit that says what was read, and
 * accepting it queues an entry of kind read for the defender.
 */
Test(learning_store, a_read_model_and_its_deviations_are_stored_and_accepted)
{
	static const struct store_model_entry reads[] = {
	    {.exe = "/usr/sbin/foo",
	     .kind = "read",
	     .pattern = "/etc/foo/foo.conf",
	     .first_seen_ms = T0_MS,
	     .last_seen_ms = T0_MS,
	     .count = 1},
	    {.exe = "/usr/sbin/foo",
	     .kind = "read",
	     .pattern = "/var/lib/foo/cache/c-*.tmp",
	     .first_seen_ms = T0_MS,
	     .last_seen_ms = T0_MS + 1,
	     .count = 9},
	};
	const struct store_model_delta delta = {.service = "exe:/usr/sbin/foo",
						.state = "active",
						.learning_since_ms = T0_MS,
						.active_since_ms = T0_MS + 1000,
						.entries = reads,
						.nentries = 2};
	const struct store_deviation dev = {.ts_ns = T0_NS + 2000000000ull,
					    .service = "exe:/usr/sbin/foo",
					    .exe = "/usr/sbin/foo",
					    .kind = "new_read",
					    .object = "/home/alice/.aws/credentials",
					    .raw = "/home/alice/.aws/credentials",
					    .expected =
						"/etc/foo/foo.conf, /var/lib/foo/cache/c-*.tmp",
					    .severity = "high",
					    .pid = 900,
					    .chain = chain,
					    .nchain = 2};
	struct ingest_result r =
	    ingest("host-a", 1,
		   &(struct ingest_batch){
		       .deviations = &dev, .ndeviations = 1, .deltas = &delta, .ndeltas = 1});
	vigil_err err = {0};
	json_t *acc = NULL;

	cr_expect_eq(r.malformed, 0);
	cr_expect_eq(r.entries, 2);
	cr_expect_str_eq(
	    storefix_q1("SELECT string_agg(kind || ' ' || pattern, ';' ORDER BY pattern)"
			" FROM model_entries"),
	    "read /etc/foo/foo.conf;read /var/lib/foo/cache/c-*.tmp");
	cr_expect_str_eq(
	    storefix_q1("SELECT concat_ws('|', kind, severity, effect, summary) FROM audits"),
	    "new_read|high|alert|exe:/usr/sbin/foo: /usr/sbin/foo read"
	    " /home/alice/.aws/credentials, not in its model");
	cr_assert_eq(store_audit_accept(fx.st, storefix_qn("SELECT id FROM audits"), &acc, &err), 0,
		     "%s", err.msg);
	cr_expect_str_eq(json_string_value(json_object_get(acc, "kind")), "read");
	cr_expect_str_eq(json_string_value(json_object_get(acc, "pattern")),
			 "/home/alice/.aws/credentials");
	json_decref(acc);
	cr_expect_str_eq(storefix_q1("SELECT entry_kind || ' ' || pattern FROM commands"),
			 "read /home/alice/.aws/credentials");
}

/* Row counts and the model's update time, to compare before and after a resend. */
static const char *fingerprint(void)
{
	return storefix_q1("SELECT concat_ws('|', (SELECT count(*) FROM events),"
			   " (SELECT count(*) FROM activity), (SELECT count(*) FROM audits),"
			   " (SELECT count(*) FROM models), (SELECT string_agg(count::text, ','"
			   " ORDER BY kind) FROM model_entries), (SELECT updated_at FROM models))");
}

Test(learning_store, resent_batch_changes_nothing)
{
	struct store_event ev[3];
	struct store_deviation dev[2];
	struct store_model_delta delta;
	struct ingest_batch b;
	struct ingest_result r;
	char before[512];

	first_batch(ev, dev, &delta, &b);
	ingest("host-a", 7, &b);
	snprintf(before, sizeof(before), "%s", fingerprint());
	cr_expect(strncmp(before, "3|2|2|1|1,3,7|", 14) == 0, "%s", before);
	r = ingest("host-a", 7, &b);
	cr_expect_eq(r.duplicate, 1);
	cr_expect_eq(r.activity + r.deviations + r.deltas + r.entries, 0);
	cr_expect_str_eq(fingerprint(), before);
}

Test(learning_store, later_deltas_remove_update_and_reset_entries)
{
	struct store_event ev[3];
	struct store_deviation dev[2];
	struct store_model_delta delta;
	struct ingest_batch b;
	const struct store_model_entry entries2[] = {
	    /* Folded into a wider pattern: removed. */
	    {.exe = "/usr/sbin/foo",
	     .kind = "write",
	     .pattern = "/var/lib/foo/*.tmp",
	     .removed = true},
	    {.exe = "/usr/sbin/foo",
	     .kind = "write",
	     .pattern = "/var/lib/foo/*",
	     .first_seen_ms = T0_MS,
	     .last_seen_ms = T1_MS,
	     .count = 9},
	    /* Current values, not increments; the last of a repeated key wins. */
	    {.exe = "/usr/sbin/foo",
	     .kind = "program",
	     .pattern = "/bin/true",
	     .first_seen_ms = T0_MS,
	     .last_seen_ms = T1_MS,
	     .count = 4},
	    {.exe = "/usr/sbin/foo",
	     .kind = "program",
	     .pattern = "/bin/true",
	     .first_seen_ms = T0_MS,
	     .last_seen_ms = T1_MS,
	     .count = 5},
	    /* Removing what is not there is no error. */
	    {.exe = "/usr/sbin/bar",
	     .kind = "connect",
	     .pattern = "10.0.0.0/8:443",
	     .removed = true},
	};
	const struct store_model_delta promote = {.service = "exe:/usr/sbin/foo",
						  .state = "active",
						  .learning_since_ms = T0_MS,
						  .active_since_ms = T1_MS,
						  .entries = entries2,
						  .nentries = 5};
	const struct store_model_entry entries3[] = {{.exe = "/usr/sbin/foo",
						      .kind = "program",
						      .pattern = "/bin/sh",
						      .first_seen_ms = T1_MS,
						      .last_seen_ms = T1_MS,
						      .count = 1}};
	const struct store_model_delta relearn = {.service = "exe:/usr/sbin/foo",
						  .state = "learning",
						  .learning_since_ms = T1_MS,
						  .reset = true,
						  .entries = entries3,
						  .nentries = 1};
	struct ingest_result r;

	first_batch(ev, dev, &delta, &b);
	ingest("host-a", 1, &b);
	r = ingest("host-a", 2, &(struct ingest_batch){.deltas = &promote, .ndeltas = 1});
	cr_expect_eq(r.deltas, 1);
	cr_expect_eq(r.malformed, 0);
	cr_expect_str_eq(storefix_q1("SELECT string_agg(concat_ws(',', kind, pattern, count,"
				     " (extract(epoch FROM last_seen) * 1000)::bigint), ';'"
				     " ORDER BY kind, pattern) FROM model_entries"),
			 "listen,tcp:8080,1,1732800000010;program,/bin/true,5,1732803600000;"
			 "write,/var/lib/foo/*,9,1732803600000");
	cr_expect_str_eq(
	    storefix_q1("SELECT state || '|' || (extract(epoch FROM active_since) * 1000)::bigint"
			" || '|' || learn_drops || '|' || note FROM models"),
	    "active|1732803600000|0|");

	r = ingest("host-a", 3, &(struct ingest_batch){.deltas = &relearn, .ndeltas = 1});
	cr_expect_eq(r.entries, 1);
	cr_expect_str_eq(
	    storefix_q1("SELECT string_agg(kind || ',' || pattern || ',' || count, ';')"
			" FROM model_entries"),
	    "program,/bin/sh,1");
	cr_expect_str_eq(
	    storefix_q1("SELECT state || '|' || coalesce(active_since::text, 'null') || '|' ||"
			" (extract(epoch FROM learning_since) * 1000)::bigint FROM models"),
	    "learning|null|1732803600000");
	cr_expect_eq(storefix_qn("SELECT count(*) FROM models"), 1, "a delta made a second model");
}

Test(learning_store, malformed_items_are_left_out_and_audited_once)
{
	static char long_service[600];
	static struct store_chain_link many_links[65];
	static struct store_model_entry too_many[20001];
	const struct store_deviation good = {.ts_ns = T0_NS,
					     .service = "nginx.service",
					     .exe = "/usr/sbin/nginx",
					     .kind = "new_listen",
					     .object = "tcp:4444",
					     .severity = "high",
					     .pid = 77};
	struct store_deviation dev[6] = {good, good, good, good, good, good};
	const struct store_model_entry mixed[] = {
	    {.exe = "/usr/sbin/nginx", .kind = "exec", .pattern = "/bin/sh", .count = 1},
	    {.exe = "/usr/sbin/nginx", .kind = "listen", .pattern = "tcp:80", .count = 2},
	};
	struct store_model_delta deltas[3] = {
	    {.service = "nginx.service", .state = "promoted"},
	    {.service = "nginx.service",
	     .state = "learning",
	     .entries = too_many,
	     .nentries = 20001},
	    {.service = "nginx.service", .state = "learning", .entries = mixed, .nentries = 2},
	};
	const struct store_activity bad_user = {.session = 1, .user = "\xff\xfe", .tty = ""};
	const struct store_event ev = {.type = 1,
				       .ts_ns = T0_NS,
				       .pid = 10,
				       .comm = "sh",
				       .json = "{}",
				       .activity = &bad_user};
	struct ingest_result r;

	memset(long_service, 's', 513);
	for (size_t i = 0; i < 65; i++)
		many_links[i] = (struct store_chain_link){.pid = 1, .comm = "x", .exe = "/x"};
	for (size_t i = 0; i < 20001; i++)
		too_many[i] =
		    (struct store_model_entry){.exe = "/e", .kind = "write", .pattern = "/p"};
	dev[0].kind = "new_thing";
	dev[1].severity = "urgent";
	dev[2].service = long_service;
	dev[3].exe = "/usr/sbin/\xc3\x28nginx";
	dev[4].chain = many_links;
	dev[4].nchain = 65;
	r = ingest("host-a", 1,
		   &(struct ingest_batch){.events = &ev,
					  .nevents = 1,
					  .deviations = dev,
					  .ndeviations = 6,
					  .deltas = deltas,
					  .ndeltas = 3});
	cr_expect_eq(r.stored, 1, "the event of a bad activity must be kept");
	cr_expect_eq(r.activity, 0);
	cr_expect_eq(r.deviations, 1);
	cr_expect_eq(r.deltas, 1);
	cr_expect_eq(r.entries, 1);
	/* 5 deviations, 2 deltas, 1 entry, 1 activity. */
	cr_expect_eq(r.malformed, 9);

	cr_expect_eq(storefix_qn("SELECT count(*) FROM events"), 1);
	cr_expect_eq(storefix_qn("SELECT count(*) FROM activity"), 0);
	cr_expect_eq(storefix_qn("SELECT count(*) FROM audits WHERE kind = 'new_listen'"), 1);
	cr_expect_str_eq(
	    storefix_q1("SELECT string_agg(kind || ',' || pattern, ';') FROM model_entries"),
	    "listen,tcp:80");
	cr_expect_eq(storefix_qn("SELECT count(*) FROM audits WHERE kind = 'malformed_input'"), 1);
	cr_expect_str_eq(storefix_q1("SELECT severity || '|' || summary FROM audits"
				     " WHERE kind = 'malformed_input'"),
			 "medium|9 malformed item(s) in batch 1 were left out; first:"
			 " event[0].activity.user is not valid UTF-8");
	cr_expect_str_eq(storefix_q1("SELECT detail->>'seq' || '|' || (detail->>'count') || '|' ||"
				     " string_agg(p->>'field' || ' ' || (p->>'why'), '; ')"
				     " FROM audits, jsonb_array_elements(detail->'problems') p"
				     " WHERE kind = 'malformed_input' GROUP BY detail"),
			 "1|9|event[0].activity.user is not valid UTF-8; deviation[0].kind is not"
			 " new_program, new_write, sensitive_read, new_listen, new_peer,"
			 " new_client, new_read, rewritten_argument, denied_program, denied_read,"
			 " denied_write, denied_connect or denied_listen;"
			 " deviation[1].severity is not low, medium or high;"
			 " deviation[2].service is longer than 512 bytes; deviation[3].exe is not"
			 " valid UTF-8; deviation[4].chain has more than 64 links;"
			 " model[0].state is not learning or active; model[1].entries has more"
			 " than 20000 entries; model[2].entries[0].kind is not program, write,"
			 " sensitive_read, listen, connect, accept or read");
}

/* What the rules decided, on deviations of a model and of deny lists. */
static void rules_batch(struct store_deviation dev[5])
{
	const struct store_deviation base = {.ts_ns = T0_NS,
					     .service = "nginx.service",
					     .exe = "/usr/sbin/nginx",
					     .severity = "high",
					     .pid = 77};

	for (int i = 0; i < 5; i++)
		dev[i] = base;
	/* A deny list stopped it. */
	dev[0].kind = "denied_program";
	dev[0].object = "/bin/sh";
	dev[0].raw = "/bin/sh";
	dev[0].rule = "web-no-shells";
	dev[0].effect = "prevent";
	dev[0].why = "/bin/*sh";
	/* A person's shell, no service: the host could only alert. */
	dev[1].kind = "denied_connect";
	dev[1].service = "";
	dev[1].exe = "/usr/bin/nc";
	dev[1].object = "10.0.0.9:4444";
	dev[1].rule = "no-egress";
	dev[1].effect = "alert";
	dev[1].wanted = "prevent";
	dev[1].why = "cgroup-sock: no cgroup v2 on this host";
	/* A model's deviation a rule blocks. */
	dev[2].kind = "new_write";
	dev[2].object = "/etc/*";
	dev[2].raw = "/etc/shadow";
	dev[2].rule = "strict-web";
	dev[2].effect = "block";
	/* A defender from before rules: no rule, no effect. */
	dev[3].kind = "new_program";
	dev[3].object = "/usr/bin/id";
	/* Killed for reading, wanted as it was. */
	dev[4].kind = "denied_read";
	dev[4].object = "/etc/ssh/*_key";
	dev[4].raw = "/etc/ssh/ssh_host_ed25519_key";
	dev[4].rule = "keys";
	dev[4].effect = "block";
}

/* store_audits_list with f; the array (caller decrefs). */
static json_t *audits(const struct audit_filter *f)
{
	vigil_err err = {0};
	json_t *a = NULL;

	cr_assert_eq(store_audits_list(fx.st, f, &a, &err), 0, "%s", err.msg);
	return a;
}

static const char *jtext(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : json_is_null(v) ? "<null>" : "<absent>";
}

Test(learning_store, a_rules_decision_is_stored_with_its_rule_effect_and_why)
{
	struct store_deviation dev[5];
	struct ingest_result r;
	vigil_err err = {0};
	json_t *a, *row;

	rules_batch(dev);
	r = ingest("host-a", 1, &(struct ingest_batch){.deviations = dev, .ndeviations = 5});
	cr_expect_eq(r.deviations, 5);
	cr_expect_eq(r.malformed, 0);
	cr_expect_str_eq(
	    storefix_q1(
		"SELECT string_agg(concat_ws('|', kind, coalesce(service, '<null>'),"
		" coalesce(rule, '<null>'), effect, summary), E'\\n' ORDER BY id) FROM audits"),
	    "denied_program|nginx.service|web-no-shells|prevent|nginx.service: /usr/sbin/nginx"
	    " was prevented from starting /bin/sh (rule \"web-no-shells\")\n"
	    "denied_connect|<null>|no-egress|alert|/usr/bin/nc connected to 10.0.0.9:4444,"
	    " on a deny list (rule \"no-egress\", wanted prevent)\n"
	    "new_write|nginx.service|strict-web|block|nginx.service: /usr/sbin/nginx was killed"
	    " for writing /etc/shadow, not in its model (rule \"strict-web\")\n"
	    "new_program|nginx.service|<null>|alert|nginx.service: /usr/sbin/nginx started"
	    " /usr/bin/id, not in its model\n"
	    "denied_read|nginx.service|keys|block|nginx.service: /usr/sbin/nginx was killed for"
	    " reading /etc/ssh/ssh_host_ed25519_key (rule \"keys\")");
	/* wanted and why in the detail, only when said. */
	cr_expect_str_eq(
	    storefix_q1("SELECT string_agg(coalesce(detail->>'wanted', '-') || '|' ||"
			" coalesce(detail->>'why', '-'), ';' ORDER BY id) FROM audits"),
	    "-|/bin/*sh;prevent|cgroup-sock: no cgroup v2 on this host;-|-;-|-;-|-");

	/* The list: every field, and the filters. */
	store_batch_refused(fx.st, "host-a", 0, 9, "too large", &err);
	a = audits(&(struct audit_filter){0});
	cr_assert_eq(json_array_size(a), 6);
	row = json_array_get(a, 0); /* newest first: not a deviation, whatever its detail says */
	cr_expect_str_eq(jtext(row, "kind"), "batch_refused");
	cr_expect_str_eq(jtext(json_object_get(row, "detail"), "why"), "too large");
	cr_expect_str_eq(jtext(row, "effect"), "<null>");
	cr_expect_str_eq(jtext(row, "rule"), "<null>");
	cr_expect_str_eq(jtext(row, "wanted"), "<null>");
	cr_expect_str_eq(jtext(row, "why"), "<null>");
	row = json_array_get(a, 4);
	cr_expect_str_eq(jtext(row, "kind"), "denied_connect");
	cr_expect_str_eq(jtext(row, "service"), "<null>");
	cr_expect_str_eq(jtext(row, "rule"), "no-egress");
	cr_expect_str_eq(jtext(row, "effect"), "alert");
	cr_expect_str_eq(jtext(row, "wanted"), "prevent");
	cr_expect_str_eq(jtext(row, "why"), "cgroup-sock: no cgroup v2 on this host");
	row = json_array_get(a, 2);
	cr_expect_str_eq(jtext(row, "kind"), "new_program");
	cr_expect_str_eq(jtext(row, "effect"), "alert");
	cr_expect_str_eq(jtext(row, "rule"), "<null>");
	cr_expect_str_eq(jtext(row, "why"), "<null>");
	json_decref(a);

	a = audits(&(struct audit_filter){.rule = "web-no-shells"});
	cr_assert_eq(json_array_size(a), 1);
	cr_expect_str_eq(jtext(json_array_get(a, 0), "why"), "/bin/*sh");
	json_decref(a);
	a = audits(&(struct audit_filter){.effect = "block"});
	cr_assert_eq(json_array_size(a), 2);
	cr_expect_str_eq(jtext(json_array_get(a, 0), "rule"), "keys");
	cr_expect_str_eq(jtext(json_array_get(a, 1), "rule"), "strict-web");
	json_decref(a);
	a = audits(&(struct audit_filter){.effect = "alert"});
	cr_expect_eq(json_array_size(a), 2, "alerts are deviations only");
	json_decref(a);
	a = audits(&(struct audit_filter){.effect = "block", .rule = "keys", .host_id = "host-b"});
	cr_expect_eq(json_array_size(a), 0);
	json_decref(a);
	a = audits(&(struct audit_filter){.rule = "nope"});
	cr_expect_eq(json_array_size(a), 0);
	json_decref(a);
}

Test(learning_store, a_bad_rules_field_leaves_its_deviation_out_and_the_rest_in)
{
	static char long_why[4098];
	struct store_deviation dev[5], bad[7];
	struct ingest_result r;

	rules_batch(dev);
	memset(long_why, 'w', 4097);
	for (int i = 0; i < 7; i++)
		bad[i] = dev[0];
	bad[0].effect = "kill";
	bad[1].wanted = "deny";
	bad[2].why = long_why;
	bad[3].rule = "web\xff";
	bad[4].rule = "web-no-shells ";
	bad[5].kind = "new_program"; /* a model's deviation has a service */
	bad[5].service = "";
	bad[6].effect = "Prevent";
	struct store_deviation all[8] = {bad[0], bad[1], bad[2], bad[3],
					 bad[4], bad[5], bad[6], dev[1]};

	r = ingest("host-a", 1, &(struct ingest_batch){.deviations = all, .ndeviations = 8});
	cr_expect_eq(r.deviations, 1);
	cr_expect_eq(r.malformed, 7);
	cr_expect_str_eq(
	    storefix_q1("SELECT kind || '|' || rule FROM audits WHERE kind <> 'malformed_input'"),
	    "denied_connect|no-egress");
	cr_expect_str_eq(
	    storefix_q1("SELECT string_agg(p->>'field' || ' ' || (p->>'why'), '; ')"
			" FROM audits, jsonb_array_elements(detail->'problems') p"
			" WHERE kind = 'malformed_input'"),
	    "deviation[0].effect is not alert, prevent, block or empty;"
	    " deviation[1].wanted is not alert, prevent, block or empty;"
	    " deviation[2].why is longer than 4096 bytes; deviation[3].rule is not valid UTF-8;"
	    " deviation[4].rule starts or ends with a space;"
	    " deviation[5].service is missing or empty;"
	    " deviation[6].effect is not alert, prevent, block or empty");
}

#define CID "ac4d34bdcef49b4b6f0f9c8092a290e11a240855750c08bcfc14c42d48438e70"

/* A deviation in a container: its container stored with it, listed and filtered by image. */
Test(learning_store, a_deviations_container_is_stored_and_listed)
{
	struct store_deviation dev[5], bad[6];
	struct ingest_result r;
	json_t *a, *c;

	rules_batch(dev);
	dev[3].service = "container:localhost/app:1";
	dev[3].container_id = CID;
	dev[3].container_name = "web-1";
	dev[3].container_image = "localhost/app:1";
	dev[3].container_runtime = "podman";
	/* Known by id only: its runtime's state was not found. */
	dev[4].container_id = CID;
	for (int i = 0; i < 6; i++)
		bad[i] = dev[3];
	bad[0].container_id = "AC4D";
	bad[1].container_name = "web 1";
	bad[2].container_image = "localhost/\xc3\xa9:1";
	bad[3].container_runtime = "lxc";
	bad[4].container_id = "";
	bad[5].container_image =
	    "localhost/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:1";
	struct store_deviation all[11] = {dev[0], dev[1], dev[2], dev[3], dev[4], bad[0],
					  bad[1], bad[2], bad[3], bad[4], bad[5]};

	r = ingest("host-a", 1, &(struct ingest_batch){.deviations = all, .ndeviations = 11});
	cr_expect_eq(r.deviations, 5);
	cr_expect_eq(r.malformed, 6);
	cr_expect_str_eq(
	    storefix_q1("SELECT string_agg(p->>'field' || ' ' || (p->>'why'), '; ')"
			" FROM audits, jsonb_array_elements(detail->'problems') p"
			" WHERE kind = 'malformed_input'"),
	    "deviation[5].container_id is not 64 lowercase hex digits;"
	    " deviation[6].container_name is not printable ASCII without spaces;"
	    " deviation[7].container_image is not printable ASCII without spaces;"
	    " deviation[8].container_runtime is not docker, podman, containerd, cri-o or empty;"
	    " deviation[9].container_id is missing: the container has a name;"
	    " deviation[10].container_image is longer than 255 bytes");
	cr_expect_str_eq(
	    storefix_q1("SELECT string_agg(coalesce(container_name, '-') || '|' ||"
			" coalesce(container_image, '-') || '|' || coalesce(container_runtime,"
			" '-') || '|' || coalesce(left(container_id, 4), '-'), ';' ORDER BY id)"
			" FROM audits WHERE kind <> 'malformed_input'"),
	    "-|-|-|-;-|-|-|-;-|-|-|-;web-1|localhost/app:1|podman|ac4d;-|-|-|ac4d");

	a = audits(&(struct audit_filter){.image = "localhost/app:1"});
	cr_assert_eq(json_array_size(a), 1);
	c = json_object_get(json_array_get(a, 0), "container");
	cr_expect_str_eq(jtext(c, "id"), CID);
	cr_expect_str_eq(jtext(c, "name"), "web-1");
	cr_expect_str_eq(jtext(c, "image"), "localhost/app:1");
	cr_expect_str_eq(jtext(c, "runtime"), "podman");
	cr_expect_str_eq(jtext(json_array_get(a, 0), "service"), "container:localhost/app:1");
	json_decref(a);
	a = audits(&(struct audit_filter){.container = "web-1"});
	cr_expect_eq(json_array_size(a), 1);
	json_decref(a);
	a = audits(&(struct audit_filter){.kind = "denied_read"});
	cr_assert_eq(json_array_size(a), 1);
	c = json_object_get(json_array_get(a, 0), "container");
	cr_expect_str_eq(jtext(c, "id"), CID);
	cr_expect_str_eq(jtext(c, "name"), "<null>", "not known: null, never \"\"");
	cr_expect_str_eq(jtext(c, "image"), "<null>");
	json_decref(a);
	a = audits(&(struct audit_filter){.kind = "new_write"});
	cr_expect(json_is_null(json_object_get(json_array_get(a, 0), "container")),
		  "outside containers: null");
	json_decref(a);
	a = audits(&(struct audit_filter){.image = "localhost/other:1"});
	cr_expect_eq(json_array_size(a), 0);
	json_decref(a);
}

Test(learning_store, event_refused_by_the_database_takes_its_activity_with_it)
{
	const struct store_event ev[2] = {
	    {.type = 1,
	     .ts_ns = T0_NS,
	     .pid = 10,
	     .comm = "sh",
	     .json = "{not json",
	     .activity = &act_ls},
	    {.type = 1,
	     .ts_ns = T0_NS,
	     .pid = 11,
	     .comm = "id",
	     .json = "{}",
	     .activity = &act_cat},
	};
	struct ingest_result r;

	r = ingest("host-a", 1, &(struct ingest_batch){.events = ev, .nevents = 2});
	cr_expect_eq(r.stored, 1);
	cr_expect_eq(r.refused, 1);
	cr_expect_eq(r.activity, 1);
	cr_expect_str_eq(storefix_q1("SELECT string_agg(summary, ';') FROM activity"),
			 "cat /etc/passwd (read)");
	cr_expect_eq(storefix_qn("SELECT count(*) FROM audits WHERE kind = 'malformed_events'"
				 " AND (detail->>'count')::int = 1"),
		     1);
}

/*
 * Bodies are stored as text (migration 17) after the console's check: what
 * PostgreSQL's json would refuse (a lone surrogate) or could not read back
 * (\u0000), and what is no object, is left out and audited; the rest reads
 * back through the view as json.
 */
Test(learning_store, bodies_are_checked_as_json_and_stored_as_text)
{
	const struct store_event ev[4] = {
	    {.type = 1, .ts_ns = T0_NS, .pid = 10, .comm = "a", .json = "{\"a\":\"\\ud800\"}"},
	    {.type = 1, .ts_ns = T0_NS, .pid = 11, .comm = "b", .json = "{\"a\":\"\\u0000\"}"},
	    {.type = 1, .ts_ns = T0_NS, .pid = 12, .comm = "c", .json = "[1]"},
	    {.type = 4,
	     .ts_ns = T0_NS,
	     .pid = 13,
	     .comm = "d",
	     .json = "{\"path\":\"/x\",\"e\":\"\\u00e9\\ud83d\\ude00\"}"},
	};
	struct ingest_result r;

	r = ingest("host-a", 1, &(struct ingest_batch){.events = ev, .nevents = 4});
	cr_expect_eq(r.stored, 1);
	cr_expect_eq(r.refused, 3);
	cr_expect_eq(storefix_qn("SELECT count(*) FROM audits WHERE kind = 'malformed_events'"
				 " AND (detail->>'count')::int = 3"),
		     1);
	cr_expect_str_eq(storefix_q1("SELECT body->>'path' || ' ' || (body->>'e') || ' ' ||"
				     " pg_typeof(body) FROM events"),
			 "/x \u00e9\U0001F600 json");
	cr_expect_str_eq(storefix_q1("SELECT (e_text IS NOT NULL AND e_body IS NULL)::text"
				     " FROM event_chunks"),
			 "true", "written as text");
}

Test(learning_store, learning_data_the_database_refuses_does_not_cost_the_events)
{
	struct store_event ev[3];
	struct store_deviation dev[2];
	struct store_model_delta delta;
	struct ingest_batch b;
	struct ingest_result r;
	PGresult *res;

	/* A rule the checks in C do not know: refuses new_program audits with a data error. */
	res = PQexec(fx.sql, "ALTER TABLE audits ADD CONSTRAINT no_new_program"
			     " CHECK (kind <> 'new_program' OR summary::integer > 0)");
	cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
	first_batch(ev, dev, &delta, &b);
	r = ingest("host-a", 1, &b);
	cr_expect_eq(r.stored, 3);
	cr_expect_eq(r.activity + r.deviations + r.deltas + r.entries, 0);
	/* 2 activities, 2 deviations, 1 delta: left out together, in one line. */
	cr_expect_eq(r.malformed, 5);
	cr_expect_eq(storefix_qn("SELECT count(*) FROM events"), 3);
	cr_expect_eq(storefix_qn("SELECT count(*) FROM activity") +
			 storefix_qn("SELECT count(*) FROM models"),
		     0);
	cr_expect_str_eq(
	    storefix_q1("SELECT (detail->>'count') || '|' || (detail->'problems'->0->>'field')"
			" || '|' || jsonb_array_length(detail->'problems') FROM audits"
			" WHERE kind = 'malformed_input'"),
	    "5|batch|1");
	cr_expect(strstr(storefix_q1("SELECT summary FROM audits WHERE kind = 'malformed_input'"),
			 "the database refused the batch's learning data") != NULL);
}

/* Put a model for (host, service) in place; returns its id. */
static int64_t model_for(const char *host, const char *service, uint64_t seq)
{
	const struct store_model_delta d = {.service = service,
					    .state = "active",
					    .learning_since_ms = T0_MS,
					    .active_since_ms = T1_MS};

	ingest(host, seq, &(struct ingest_batch){.deltas = &d, .ndeltas = 1});
	/* Each call here makes a new model: the newest id is its. */
	return storefix_qn("SELECT max(id) FROM models");
}

static int64_t relearn(int64_t model, bool want_pending)
{
	vigil_err err = {0};
	json_t *r = NULL;
	int64_t id;

	cr_assert_eq(store_model_relearn(fx.st, model, &r, &err), 0, "%s", err.msg);
	cr_expect_eq(json_is_true(json_object_get(r, "already_pending")), want_pending);
	cr_expect_str_eq(json_string_value(json_object_get(r, "service")), "nginx.service");
	id = json_integer_value(json_object_get(r, "command_id"));
	json_decref(r);
	return id;
}

static size_t sync_cmds(const char *host, const uint64_t *done, size_t ndone,
			struct store_command out[COMMANDS_PER_REPLY])
{
	vigil_err err = {0};
	size_t n = 99;

	cr_assert_eq(
	    store_commands_sync(fx.st, host, done, ndone, out, COMMANDS_PER_REPLY, &n, &err), 0,
	    "%s", err.msg);
	return n;
}

Test(learning_store, commands_are_pending_per_host_until_acknowledged)
{
	struct store_command out[COMMANDS_PER_REPLY];
	int64_t ma = model_for("host-a", "nginx.service", 1);
	int64_t mb = model_for("host-b", "nginx.service", 1);
	vigil_err err = {0};
	json_t *r = NULL;

	cr_expect_eq(store_model_relearn(fx.st, 999999, &r, &err), -ENOENT);
	cr_expect_eq(sync_cmds("host-a", NULL, 0, out), 0);
	uint64_t ca = (uint64_t)relearn(ma, false);
	cr_expect_eq(relearn(ma, true), (int64_t)ca, "a second request queued a second command");
	uint64_t cb = (uint64_t)relearn(mb, false);
	cr_expect_neq(ca, cb);

	/* Each host gets its own command only, again and again until done. */
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(sync_cmds("host-a", NULL, 0, out), 1);
		cr_expect_eq(out[0].id, ca);
		cr_expect_str_eq(out[0].kind, "relearn");
		cr_expect_str_eq(out[0].service, "nginx.service");
	}
	/* A host cannot acknowledge another's command (nor one that does not exist). */
	uint64_t foreign[] = {cb, 123456789, UINT64_MAX};
	cr_expect_eq(sync_cmds("host-a", foreign, 3, out), 1);
	cr_expect_eq(storefix_qn("SELECT count(*) FROM commands WHERE acked_at IS NULL"), 2);
	/* Done: acknowledged, and not in this very reply any more. */
	cr_expect_eq(sync_cmds("host-a", &ca, 1, out), 0);
	cr_expect_eq(sync_cmds("host-a", &ca, 1, out), 0, "acknowledging twice is harmless");
	cr_expect_str_eq(
	    storefix_q1("SELECT string_agg(host_id || '=' || (acked_at IS NOT NULL), ','"
			" ORDER BY host_id) FROM commands"),
	    "host-a=true,host-b=false");
	cr_assert_eq(sync_cmds("host-b", NULL, 0, out), 1);
	cr_expect_eq(out[0].id, cb);
	/* After the relearn was carried out, a new request is a new command. */
	cr_expect_neq(relearn(ma, false), (int64_t)ca);
}

Test(learning_store, commands_come_oldest_first_at_most_16)
{
	struct store_command out[COMMANDS_PER_REPLY];
	char service[32];
	int64_t first = 0;

	for (int i = 0; i < 20; i++) {
		const struct store_model_delta d = {.service = service, .state = "active"};
		vigil_err err = {0};
		json_t *r = NULL;

		snprintf(service, sizeof(service), "svc-%02d", i);
		ingest("host-a", (uint64_t)i + 1,
		       &(struct ingest_batch){.deltas = &d, .ndeltas = 1});
		cr_assert_eq(
		    store_model_relearn(fx.st, storefix_qn("SELECT max(id) FROM models"), &r, &err),
		    0, "%s", err.msg);
		if (i == 0)
			first = json_integer_value(json_object_get(r, "command_id"));
		json_decref(r);
	}
	cr_assert_eq(sync_cmds("host-a", NULL, 0, out), 16);
	for (int i = 0; i < 16; i++) {
		snprintf(service, sizeof(service), "svc-%02d", i);
		cr_expect_eq(out[i].id, (uint64_t)(first + i));
		cr_expect_str_eq(out[i].service, service);
	}
}

Test(learning_store, model_get_sorts_sections_and_entries_bytewise)
{
	const struct store_model_entry e[] = {
	    {.exe = "/usr/bin/b", .kind = "write", .pattern = "/z", .count = 1},
	    {.exe = "/usr/bin/a", .kind = "write", .pattern = "/b", .count = 2},
	    {.exe = "/usr/bin/a", .kind = "listen", .pattern = "tcp:1", .count = 3},
	    {.exe = "/usr/bin/B", .kind = "program", .pattern = "/a", .first_seen_ms = T0_MS},
	    {.exe = "/usr/bin/a", .kind = "write", .pattern = "/a", .count = 4},
	};
	const struct store_model_delta d = {.service = "svc",
					    .state = "learning",
					    .learning_since_ms = T0_MS,
					    .learn_until_ms = T0_MS + 3600000,
					    .entries = e,
					    .nentries = 5};
	vigil_err err = {0};
	json_t *m = NULL;
	char *text;

	ingest("host-a", 1, &(struct ingest_batch){.deltas = &d, .ndeltas = 1});
	cr_assert_eq(store_model_get(fx.st, storefix_qn("SELECT id FROM models"), &m, &err), 0,
		     "%s", err.msg);
	json_object_del(m, "updated_at");
	json_object_del(m, "id");
	text = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
	cr_expect_str_eq(
	    text,
	    "{\"active_since\":null,\"entries\":5,\"host\":\"host-a\",\"learn_drops\":0,"
	    "\"learn_until\":\"2024-11-28T14:20:00.000000Z\","
	    "\"learning_since\":\"2024-11-28T13:20:00.000000Z\",\"note\":\"\","
	    "\"relearn_pending\":false,\"sections\":["
	    "{\"entries\":[{\"count\":0,\"first_seen\":\"2024-11-28T13:20:00.000000Z\","
	    "\"kind\":\"program\",\"last_seen\":null,\"pattern\":\"/a\"}],\"exe\":\"/usr/bin/B\"},"
	    "{\"entries\":[{\"count\":3,\"first_seen\":null,\"kind\":\"listen\",\"last_seen\":null,"
	    "\"pattern\":\"tcp:1\"},{\"count\":4,\"first_seen\":null,\"kind\":\"write\","
	    "\"last_seen\":null,\"pattern\":\"/a\"},{\"count\":2,\"first_seen\":null,\"kind\":"
	    "\"write\",\"last_seen\":null,\"pattern\":\"/b\"}],\"exe\":\"/usr/bin/a\"},"
	    "{\"entries\":[{\"count\":1,\"first_seen\":null,\"kind\":\"write\",\"last_seen\":null,"
	    "\"pattern\":\"/z\"}],\"exe\":\"/usr/bin/b\"}],"
	    "\"service\":\"svc\",\"state\":\"learning\",\"truncated\":false}");
	free(text);
	json_decref(m);
	cr_expect_eq(store_model_get(fx.st, 424242, &m, &err), -ENOENT);
}

/* Events go into PostgreSQL by binary COPY: every value must land as sent. */
Test(learning_store, events_keep_every_value_through_copy)
{
	static const char body[] =
	    "{\"path\":\t\"/tmp/a\\\\b\\tc\",\n \"name\":\"\xc3\xbc\\u00e9\"}";
	const struct store_event ev[2] = {
	    {.type = 1,
	     .ts_ns = T0_NS + 123456789,
	     .pid = INT32_MAX,
	     .ppid = 0,
	     .uid = 4294967294u,
	     .comm = "a\tb\\c\nd \xc3\xbc",
	     .json = body},
	    {.type = 99, .ts_ns = 1000, .pid = 1, .ppid = 1, .uid = 0, .comm = "", .json = "{}"},
	};
	struct ingest_result r;

	r = ingest("host-a", 7, &(struct ingest_batch){.events = ev, .nevents = 2});
	cr_expect_eq(r.stored, 2);
	cr_expect_eq(r.refused, 0);
	cr_expect_str_eq(
	    storefix_q1(
		"SELECT string_agg(concat_ws('|', host_id, seq, idx, type,"
		" to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), pid, ppid, uid),"
		" ';' ORDER BY idx) FROM events"),
	    "host-a|7|0|exec|2024-11-28 13:20:00.123456|2147483647|0|4294967294;"
	    "host-a|7|1|unknown|1970-01-01 00:00:00.000001|1|1|0");
	cr_expect_str_eq(storefix_q1("SELECT comm FROM events WHERE idx = 0"),
			 "a\tb\\c\nd \xc3\xbc");
	cr_expect_str_eq(storefix_q1("SELECT body::text FROM events WHERE idx = 0"), body);
	cr_expect_str_eq(storefix_q1("SELECT body->>'path' FROM events WHERE idx = 0"),
			 "/tmp/a\\b\tc");
}

Test(learning_store, events_the_columns_cannot_hold_are_left_out_and_audited)
{
	const struct store_event ev[6] = {
	    {.type = 4, .ts_ns = T0_NS, .pid = 1, .comm = "ok", .json = "{}"},
	    {.type = 4, .ts_ns = T0_NS, .pid = 2147483648u, .comm = "big", .json = "{}"},
	    {.type = 4, .ts_ns = T0_NS, .pid = 3, .ppid = UINT32_MAX, .comm = "big", .json = "{}"},
	    {.type = 4, .ts_ns = T0_NS, .pid = 4, .comm = "\xc3\x28", .json = "{}"},
	    {.type = 4, .ts_ns = T0_NS, .pid = 5, .comm = "half", .json = "{\"a\":"},
	    {.type = 4, .ts_ns = T0_NS, .pid = 6, .comm = "ok", .json = "{\"b\":1}"},
	};
	struct ingest_result r;

	r = ingest("host-a", 1, &(struct ingest_batch){.events = ev, .nevents = 6});
	cr_expect_eq(r.stored, 2);
	cr_expect_eq(r.refused, 4);
	cr_expect_str_eq(
	    storefix_q1("SELECT string_agg(idx || ':' || pid, ',' ORDER BY idx) FROM events"),
	    "0:1,5:6");
	cr_expect_eq(storefix_qn("SELECT count(*) FROM audits WHERE kind = 'malformed_events'"
				 " AND (detail->>'count')::int = 4"),
		     1);
	cr_expect_eq(
	    storefix_qn("SELECT n_events FROM batches WHERE host_id = 'host-a' AND seq = 1"), 2);
}

/* One event batch of host's delivery stream incarnation, numbered seq. */
static struct ingest_result ingest_stream(const char *host, uint64_t incarnation, uint64_t seq)
{
	static const struct store_event ev = {
	    .type = 4, .ts_ns = T0_NS, .pid = 10, .ppid = 1, .uid = 0, .comm = "x", .json = "{}"};

	return ingest(
	    host, seq,
	    &(struct ingest_batch){.incarnation = incarnation, .events = &ev, .nevents = 1});
}

Test(learning_store, a_new_delivery_stream_is_stored_beside_the_old_and_its_reset_audited_once)
{
	/* A defender from before streams (0), then its state is lost: a new stream from seq 1. */
	for (uint64_t seq = 1; seq <= 5; seq++)
		cr_expect_eq(ingest_stream("host-a", 0, seq).new_stream, 0);
	cr_expect_eq(ingest_stream("host-a", 0, 3).duplicate, 1, "a resend is still a duplicate");
	struct ingest_result r = ingest_stream("host-a", 77, 1);
	cr_expect_eq(r.duplicate, 0, "seq 1 of a new stream is not a duplicate of the old seq 1");
	cr_expect_eq(r.stored, 1);
	cr_expect_eq(r.new_stream, 1);
	cr_expect_eq(ingest_stream("host-a", 77, 2).new_stream, 0);
	cr_expect_eq(ingest_stream("host-a", 77, 1).duplicate, 1);
	cr_expect_eq(storefix_qn("SELECT count(*) FROM events WHERE host_id = 'host-a'"), 7);
	cr_expect_eq(storefix_qn("SELECT count(*) FROM audits WHERE kind = 'defender_reset'"), 1);
	cr_expect_str_eq(
	    storefix_q1("SELECT concat_ws('|', severity, detail->>'incarnation',"
			" detail->>'old_incarnation', detail->>'old_last_seq',"
			" detail->>'old_batches_stored', detail->>'old_batches_missing')"
			" FROM audits WHERE kind = 'defender_reset'"),
	    "high|77|0|5|5|0");
	/* Another host's first stream is no reset; an old stream's late batch is stored too. */
	cr_expect_eq(ingest_stream("host-b", 77, 1).new_stream, 0);
	r = ingest_stream("host-a", 0, 9);
	cr_expect_eq(r.stored, 1, "a batch is never discarded unstored");
	cr_expect_eq(r.new_stream, 0);
	cr_expect_eq(storefix_qn("SELECT count(*) FROM audits WHERE kind = 'defender_reset'"), 1);
	/* A third stream reports what the second delivered: seqs 1 and 2, none missing. */
	ingest_stream("host-a", 78, 1);
	cr_expect_str_eq(storefix_q1("SELECT concat_ws('|', detail->>'old_incarnation',"
				     " detail->>'old_last_seq', detail->>'old_batches_missing')"
				     " FROM audits WHERE kind = 'defender_reset' AND"
				     " detail->>'incarnation' = '78'"),
			 "77|2|0");
}

Test(learning_store, a_stream_id_past_int64_is_refused)
{
	struct ingest_result res;
	vigil_err err = {0};
	const struct ingest_batch b = {.incarnation = (uint64_t)INT64_MAX + 1};

	cr_expect_eq(store_ingest(fx.st, "host-a", 1, &b, &res, &err), -EINVAL);
	cr_expect(strstr(err.msg, "stream") != NULL, "%s", err.msg);
	cr_expect_eq(storefix_qn("SELECT count(*) FROM batches"), 0);
}
