/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The walking skeleton end to end: real vigil-console with its private
 * PostgreSQL, real vigil-defender, real mutual TLS with certificates from the
 * pki module, on loopback.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "harness.h"
#include "tls.h"
#include "vigil.pb-c.h"

static char dir[H_PATH];
static struct h_pki pki;
static struct h_console con;
static pid_t defender_pid;

static void setup(void)
{
	h_tmpdir(dir);
	h_pki_make(dir, &pki);
}

static void teardown(void)
{
	if (defender_pid > 0)
		h_stop(defender_pid, SIGTERM, 5000);
	if (con.pid > 0)
		h_console_kill(&con, SIGTERM);
	/* Keep the logs of a failed run for whoever reads the report. */
	if (!getenv("VIGIL_KEEP_TEST_DIRS"))
		h_rmrf(dir);
}

TestSuite(link, .init = setup, .fini = teardown, .timeout = 240);

static const char *defender_log_path(void)
{
	static char log[H_PATH];

	snprintf(log, sizeof(log), "%s/defender.log", dir);
	return log;
}

static pid_t start_defender(const char *conf)
{
	char *argv[] = {(char *)h_bin("vigil-defender"), "--config", (char *)conf, NULL};

	return h_spawn(defender_log_path(), argv);
}

/* Wait until the host's "connected" equals want; returns the host object or NULL. */
static json_t *wait_connected(const char *host_id, bool want, int timeout_ms)
{
	long long until = h_now_ms() + timeout_ms;

	do {
		json_t *h = h_api_host(&con, &pki, host_id);
		if (h != NULL && json_is_true(json_object_get(h, "connected")) == want)
			return h;
		json_decref(h);
		h_sleep_ms(50);
	} while (h_now_ms() < until);
	return NULL;
}

static const char *jstr(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_string(v) ? json_string_value(v) : "";
}

Test(link, defender_with_valid_certificate_appears_connected_within_2s_of_its_hello)
{
	char conf[H_PATH];
	long long t0;
	json_t *h;

	h_console_start(&con, dir, &pki, NULL);
	h_defender_conf(dir, &con, pki.ca, pki.host_cert, pki.host_key, NULL, conf);
	t0 = h_now_ms();
	defender_pid = start_defender(conf);
	/*
	 * The defender says hello once its BPF programs are loaded: the
	 * kernel's verifier takes about a second here, more on a loaded machine
	 * (two defenders starting at once on two cores: 1.8 s), so that part is
	 * bounded loosely.  From the hello, the console and its API have 2 s.
	 */
	long long t_hello = 0;
	for (long long until = t0 + 30000; t_hello == 0; h_sleep_ms(20)) {
		char *log = h_slurp(defender_log_path());
		bool said = log != NULL && strstr(log, "registered with the console") != NULL;

		free(log);
		if (said)
			t_hello = h_now_ms();
		else
			cr_assert_lt(h_now_ms(), until,
				     "the defender did not register within 30 s; its log:\n%s",
				     h_slurp(defender_log_path()));
	}
	h = wait_connected("host-a", true, 2000);
	cr_assert_not_null(
	    h, "host-a not connected within 2 s of its hello (%lld ms); defender log:\n%s",
	    h_now_ms() - t_hello, h_slurp(defender_log_path()));
	cr_log_info("host-a connected %lld ms after the defender started, %lld ms after its hello",
		    h_now_ms() - t0, h_now_ms() - t_hello);

	char hostname[256];
	gethostname(hostname, sizeof(hostname));
	cr_expect_str_eq(jstr(h, "hostname"), hostname);
	cr_expect_str_eq(jstr(h, "defender_version"), VIGIL_VERSION);
	cr_expect_neq(strlen(jstr(h, "kernel")), 0);
	cr_expect_str_eq(jstr(json_object_get(h, "labels"), "env"), "test");
	cr_expect_str_eq(jstr(json_object_get(h, "labels"), "role"), "e2e");
	if (geteuid() == 0)
		cr_expect(strncmp(jstr(h, "bpf_status"), "loaded: capture", 15) == 0,
			  "bpf_status '%s'", jstr(h, "bpf_status"));
	json_decref(h);

	/* Heartbeats carry the capture counters, losses included, to the console. */
	if (geteuid() == 0) {
		long long until = h_now_ms() + 5000;
		json_t *drops = NULL;
		do {
			h = h_api_host(&con, &pki, "host-a");
			drops = json_object_get(json_object_get(h, "capture"), "drops");
			if (json_is_object(drops) && json_object_get(drops, "ringbuf_full") != NULL)
				break;
			json_decref(h);
			h = NULL;
			h_sleep_ms(100);
		} while (h_now_ms() < until);
		cr_assert_not_null(h, "no capture counters reached the console");
		cr_expect(json_is_integer(json_object_get(drops, "ringbuf_full")));
		cr_expect(json_is_integer(json_object_get(
		    json_object_get(json_object_get(h, "capture"), "delivered"), "exec")));
		json_decref(h);

		/* exec_count: the execs the kernel side saw, three of them ours. */
		h = h_api_host(&con, &pki, "host-a");
		cr_assert_not_null(h);
		long long before = json_integer_value(json_object_get(h, "exec_count"));
		json_decref(h);
		for (int i = 0; i < 3; i++)
			cr_assert_eq(system("/bin/true"), 0);
		long long now = before;
		until = h_now_ms() + 5000;
		while (now < before + 3 && h_now_ms() < until) {
			h_sleep_ms(100);
			h = h_api_host(&con, &pki, "host-a");
			if (h != NULL)
				now = json_integer_value(json_object_get(h, "exec_count"));
			json_decref(h);
		}
		cr_expect_geq(now, before + 3, "exec_count %lld -> %lld after 3 execs", before,
			      now);
	}
}

/*
 * A raw req client with the given TLS files sends a hello; returns true when
 * the console answered within timeout_ms.
 */
static bool raw_hello_answered(const char *cert, const char *key, int timeout_ms)
{
	const struct tls_files files = {.ca = pki.ca, .cert = cert, .key = key};
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Hello hello = VIGIL__HELLO__INIT;
	nng_tls_config *tls;
	nng_socket s;
	nng_dialer d;
	nng_msg *m;
	vigil_err err = {0};
	bool answered;

	cr_assert_eq(tls_engine_install(&err), 0, "%s", err.msg);
	cr_assert_eq(tls_config_new(NNG_TLS_MODE_CLIENT, NNG_TLS_AUTH_MODE_REQUIRED, &files,
				    "127.0.0.1", &tls, &err),
		     0, "%s", err.msg);
	cr_assert_eq(nng_req0_open(&s), 0);
	cr_assert_eq(nng_dialer_create(&d, s, con.listen), 0);
	cr_assert_eq(nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls), 0);
	cr_assert_eq(nng_dialer_start(d, NNG_FLAG_NONBLOCK), 0);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, timeout_ms);
	hello.hostname = "impostor";
	env.body_case = VIGIL__ENVELOPE__BODY_HELLO;
	env.hello = &hello;
	cr_assert_eq(nng_msg_alloc(&m, vigil__envelope__get_packed_size(&env)), 0);
	vigil__envelope__pack(&env, nng_msg_body(m));
	/* req waits for a connection to send on: a refused handshake means none comes. */
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, timeout_ms);
	if (nng_sendmsg(s, m, 0) != 0) {
		nng_msg_free(m);
		answered = false;
	} else {
		answered = nng_recvmsg(s, &m, 0) == 0;
		if (answered)
			nng_msg_free(m);
	}
	nng_close(s);
	nng_tls_config_free(tls);
	return answered;
}

Test(link, refuses_missing_foreign_and_expired_client_certificates)
{
	char other_dir[H_PATH], foreign_cert[H_PATH] = "", foreign_key[H_PATH] = "";
	char expired_cert[H_PATH] = "", expired_key[H_PATH] = "";
	char good_cert[H_PATH] = "", good_key[H_PATH] = "";
	struct h_pki other;
	time_t now = time(NULL);

	h_console_start(&con, dir, &pki, NULL);

	/* A certificate from another CA, with a name the fleet knows. */
	snprintf(other_dir, sizeof(other_dir), "%s/other", dir);
	h_pki_make(other_dir, &other);
	h_pki_issue_client(&other, "host-b", 0, 0, foreign_cert, foreign_key);
	/* Signed by the right CA, expired yesterday. */
	h_pki_issue_client(&pki, "host-c", now - 10 * 86400, now - 86400, expired_cert,
			   expired_key);

	cr_expect_not(raw_hello_answered(NULL, NULL, 2000), "no client certificate was accepted");
	cr_expect_not(raw_hello_answered(foreign_cert, foreign_key, 2000),
		      "a certificate from another CA was accepted");
	cr_expect_not(raw_hello_answered(expired_cert, expired_key, 2000),
		      "an expired certificate was accepted");
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM hosts"), 0,
		     "a refused client left a row in hosts");

	/* The same client with a good certificate is answered: the refusals above were real. */
	h_pki_issue_client(&pki, "host-d", 0, 0, good_cert, good_key);
	cr_expect(raw_hello_answered(good_cert, good_key, 5000), "a valid certificate was refused");
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM hosts WHERE host_id = 'host-d'"), 1);
	/* Identity is the certificate's CN, not the hostname the client claimed. */
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM hosts WHERE host_id = 'impostor'"), 0);
}

Test(link, defender_reconnects_after_console_is_killed_and_restarted)
{
	char conf[H_PATH];
	json_t *h;

	h_console_start(&con, dir, &pki, NULL);
	h_defender_conf(dir, &con, pki.ca, pki.host_cert, pki.host_key, NULL, conf);
	defender_pid = start_defender(conf);
	h = wait_connected("host-a", true, 5000);
	cr_assert_not_null(h);
	json_decref(h);

	h_console_kill(&con, SIGKILL);
	h_sleep_ms(1500);
	h_console_restart(&con, &pki, NULL);
	long long t_restart = h_now_ms();
	/*
	 * The row still says connected (the timeout has not passed), so wait for
	 * proof of a new heartbeat: last_seen later than the restart.
	 */
	const char *fresh = "SELECT count(*) FROM hosts WHERE host_id = 'host-a' AND connected "
			    "AND last_seen > now() - interval '500 milliseconds'";
	h_sleep_ms(600);
	while (h_db_count(&con, fresh) == 0 && h_now_ms() - t_restart < 15000)
		h_sleep_ms(100);
	cr_assert_eq(h_db_count(&con, fresh), 1,
		     "defender did not heartbeat within 15 s of the restart; defender log:\n%s",
		     h_slurp(defender_log_path()));
	cr_log_info("defender back %lld ms after the console restarted", h_now_ms() - t_restart);
	cr_expect(strstr(h_slurp(con.log), "(0 migration(s) applied now)") != NULL,
		  "the restarted console re-applied migrations");
}

Test(link, killed_defender_is_marked_disconnected_within_the_timeout)
{
	const char *extra[] = {"--host-timeout-ms", "2000", "--heartbeat-interval-ms", "500", NULL};
	char conf[H_PATH];
	json_t *h;

	h_console_start(&con, dir, &pki, extra);
	h_defender_conf(dir, &con, pki.ca, pki.host_cert, pki.host_key,
			"heartbeat_interval_ms = 500", conf);
	defender_pid = start_defender(conf);
	h = wait_connected("host-a", true, 5000);
	cr_assert_not_null(h);
	json_decref(h);

	long long t_kill = h_now_ms();
	h_stop(defender_pid, SIGKILL, 5000);
	defender_pid = 0;
	/* Timeout 2 s plus the sweeper's period (timeout/4) and one request. */
	h = wait_connected("host-a", false, 2000 + 500 + 1000);
	cr_assert_not_null(h, "host-a still connected %lld ms after its defender died",
			   h_now_ms() - t_kill);
	cr_expect_neq(strlen(jstr(h, "disconnected_at")), 0);
	cr_log_info("host-a disconnected %lld ms after kill (timeout 2000)", h_now_ms() - t_kill);
	json_decref(h);

	/* A defender that goes silent is an audit an operator sees. */
	json_t *doc = NULL;
	cr_assert_eq(h_api_get(&con, &pki, "/api/v1/audits?kind=defender_silent&host=host-a",
			       con.token, &doc),
		     200);
	json_t *audits = json_object_get(doc, "audits");
	cr_expect_eq(json_array_size(audits), 1, "defender_silent audits: %zu",
		     json_array_size(audits));
	cr_expect_str_eq(jstr(json_array_get(audits, 0), "severity"), "high");
	json_decref(doc);
}

Test(link, api_refuses_missing_and_wrong_tokens)
{
	json_t *doc = NULL;

	h_console_start(&con, dir, &pki, NULL);
	cr_expect_eq(h_api_get(&con, &pki, "/api/v1/hosts", NULL, &doc), 401);
	cr_expect_null(json_object_get(doc, "hosts"), "hosts leaked without a token");
	json_decref(doc);
	doc = NULL;
	cr_expect_eq(h_api_get(&con, &pki, "/api/v1/hosts",
			       "0000000000000000000000000000000000000000000000000000000000000000",
			       &doc),
		     401);
	cr_expect_null(json_object_get(doc, "hosts"));
	json_decref(doc);
	cr_expect_eq(h_api_get(&con, &pki, "/api/v1/nothing-here", NULL, NULL), 401);
	cr_expect_eq(h_api_get(&con, &pki, "/api/v1/nothing-here", con.token, NULL), 404);
	cr_expect_eq(h_api_get(&con, &pki, "/api/v1/hosts", con.token, NULL), 200);
}

Test(link, vigilctl_hosts_prints_table_and_json)
{
	char conf[H_PATH], out[H_PATH], tokfile[H_PATH];
	json_t *h;

	h_console_start(&con, dir, &pki, NULL);
	h_defender_conf(dir, &con, pki.ca, pki.host_cert, pki.host_key, NULL, conf);
	defender_pid = start_defender(conf);
	h = wait_connected("host-a", true, 5000);
	cr_assert_not_null(h);
	json_decref(h);

	snprintf(out, sizeof(out), "%s/vigilctl.out", dir);
	snprintf(tokfile, sizeof(tokfile), "%s/api-token", con.state);
	char *table[] = {(char *)h_bin("vigilctl"),
			 "--api",
			 con.api,
			 "--ca",
			 pki.ca,
			 "--token-file",
			 tokfile,
			 "hosts",
			 NULL};
	cr_assert_eq(h_run(out, 10000, table), 0, "%s", h_slurp(out));
	char *text = h_slurp(out);
	cr_expect(strstr(text, "HOST") != NULL && strstr(text, "host-a") != NULL &&
		      strstr(text, "connected") != NULL && strstr(text, "env=test") != NULL,
		  "table:\n%s", text);
	free(text);

	unlink(out);
	char *json_argv[] = {(char *)h_bin("vigilctl"),
			     "--api",
			     con.api,
			     "--ca",
			     pki.ca,
			     "--token-file",
			     tokfile,
			     "hosts",
			     "--json",
			     NULL};
	cr_assert_eq(h_run(out, 10000, json_argv), 0);
	text = h_slurp(out);
	json_t *doc = json_loads(text, 0, NULL);
	cr_assert(json_is_array(doc), "not a JSON array:\n%s", text);
	cr_expect_str_eq(jstr(json_array_get(doc, 0), "host_id"), "host-a");
	json_decref(doc);
	free(text);

	/* A wrong token is an error naming the status, with a non-zero exit. */
	unlink(out);
	char *bad_argv[] = {
	    (char *)h_bin("vigilctl"), "--api", con.api, "--ca", pki.ca, "--token-file",
	    conf /* not a token */,    "hosts", NULL};
	cr_expect_neq(h_run(out, 10000, bad_argv), 0);
	text = h_slurp(out);
	cr_expect(strstr(text, "401") != NULL, "vigilctl said:\n%s", text);
	free(text);
}

Test(link, console_survives_its_database_going_away)
{
	char conf[H_PATH], pidfile[H_PATH];
	json_t *h;
	int st;

	h_console_start(&con, dir, &pki, NULL);
	h_defender_conf(dir, &con, pki.ca, pki.host_cert, pki.host_key, NULL, conf);
	defender_pid = start_defender(conf);
	h = wait_connected("host-a", true, 5000);
	cr_assert_not_null(h);
	json_decref(h);

	/* PostgreSQL crashes: immediate shutdown of the server our console started. */
	snprintf(pidfile, sizeof(pidfile), "%s/postgres/data/postmaster.pid", con.state);
	char *text = h_slurp(pidfile);
	pid_t pg_pid = (pid_t)atoi(text);
	free(text);
	cr_assert_gt(pg_pid, 1);
	cr_assert_eq(kill(pg_pid, SIGQUIT), 0);
	long long t_crash = h_now_ms();

	const char *fresh = "SELECT count(*) FROM hosts WHERE host_id = 'host-a' AND connected "
			    "AND last_seen > now() - interval '500 milliseconds'";
	bool back = false;
	while (!back && h_now_ms() - t_crash < 30000) {
		h_sleep_ms(500);
		/* The database may be down right now: count only a successful query. */
		char sock[H_PATH];
		snprintf(sock, sizeof(sock),
			 "host=%s/postgres/run port=5432 dbname=vigil user=vigil", con.state);
		PGconn *c = PQconnectdb(sock);
		if (PQstatus(c) == CONNECTION_OK) {
			PGresult *r = PQexec(c, fresh);
			back =
			    PQresultStatus(r) == PGRES_TUPLES_OK && atoi(PQgetvalue(r, 0, 0)) == 1;
			PQclear(r);
		}
		PQfinish(c);
	}
	cr_assert(back, "heartbeats not stored 30 s after the database crashed; console log:\n%s",
		  h_slurp(con.log));
	cr_expect_not(h_exited(con.pid, &st), "the console exited when its database went away");
	cr_expect(strstr(h_slurp(con.log), "started it again") != NULL);
	cr_expect_eq(h_api_get(&con, &pki, "/api/v1/hosts", con.token, NULL), 200);
	cr_log_info("heartbeats stored again %lld ms after the database crashed",
		    h_now_ms() - t_crash);
}

/* The console's default cap on established connections per certificate (listener.h). */
#define CONNS_PER_CERT 8
#define FLOOD	       40

struct try_hello {
	pthread_t thread;
	struct h_link *link;
	int timeout_ms;
	bool answered;
};

static void *try_hello_main(void *arg)
{
	struct try_hello *t = arg;
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Hello hello = VIGIL__HELLO__INIT;

	hello.hostname = "flood";
	env.seq = 1;
	env.body_case = VIGIL__ENVELOPE__BODY_HELLO;
	env.hello = &hello;
	Vigil__Reply *r = h_link_try_request(t->link, &env, t->timeout_ms);
	t->answered = r != NULL && r->status == VIGIL__REPLY__STATUS__OK;
	if (r != NULL)
		vigil__reply__free_unpacked(r, NULL);
	return NULL;
}

/* A hello on each of the n links at once; how many the console answered within timeout_ms. */
static int hellos_answered(struct h_link *links, int n, int timeout_ms)
{
	struct try_hello t[FLOOD];
	int answered = 0;

	cr_assert_leq(n, FLOOD);
	for (int i = 0; i < n; i++) {
		t[i] = (struct try_hello){.link = &links[i], .timeout_ms = timeout_ms};
		cr_assert_eq(pthread_create(&t[i].thread, NULL, try_hello_main, &t[i]), 0);
	}
	for (int i = 0; i < n; i++) {
		pthread_join(t[i].thread, NULL);
		answered += t[i].answered;
	}
	return answered;
}

/* A batch of one small event as seq of stream incarnation; the console's answer (free it). */
static Vigil__Reply *send_small_batch(struct h_link *l, uint64_t incarnation, uint64_t seq)
{
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Batch b = VIGIL__BATCH__INIT;
	Vigil__Event ev = VIGIL__EVENT__INIT, *evp = &ev;

	ev.type = 4;
	ev.ts_ns = 1700000000000000000ull;
	ev.pid = 4242;
	ev.ppid = 1;
	ev.comm = "touch";
	ev.json = "{\"type\":\"file\",\"path\":\"/tmp/x\"}";
	b.n_events = 1;
	b.events = &evp;
	env.seq = seq;
	env.incarnation = incarnation;
	env.body_case = VIGIL__ENVELOPE__BODY_BATCH;
	env.batch = &b;
	return h_link_request(l, &env);
}

static const char *stop_summary(const char *log)
{
	const char *p = strstr(log, "link stopped:");
	return p != NULL ? p : "";
}

/*
 * A stolen or misused certificate opening connection after connection gets
 * the per-certificate cap and no more, while another host still connects
 * and delivers; connections that close give their slots back.
 */
Test(link, one_certificate_gets_only_its_connection_cap_and_others_still_deliver)
{
	struct h_link flood[FLOOD], again[CONNS_PER_CERT + 1], b;
	char b_cert[H_PATH] = "", b_key[H_PATH] = "";
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Hello hello = VIGIL__HELLO__INIT;

	h_console_start(&con, dir, &pki, NULL);
	h_pki_issue_client(&pki, "host-b", 0, 0, b_cert, b_key);

	/*
	 * 40 connections with host-a's certificate.  A refused one redials at a
	 * random point within a minute (nng's backoff), and is refused again.
	 */
	for (int i = 0; i < FLOOD; i++)
		h_link_open_redial(&flood[i], &con, &pki, pki.host_cert, pki.host_key, 60000);
	int answered = hellos_answered(flood, FLOOD, 5000);
	cr_log_info("%d of %d connections of one certificate answered", answered, FLOOD);
	cr_expect_eq(answered, CONNS_PER_CERT, "%d of %d connections of one certificate answered",
		     answered, FLOOD);

	/* Meanwhile another host connects and delivers. */
	h_link_open(&b, &con, &pki, b_cert, b_key);
	hello.hostname = "host-b";
	env.seq = 1;
	env.body_case = VIGIL__ENVELOPE__BODY_HELLO;
	env.hello = &hello;
	Vigil__Reply *r = h_link_request(&b, &env);
	cr_expect_eq(r->status, VIGIL__REPLY__STATUS__OK, "host-b's hello: %s", r->error);
	vigil__reply__free_unpacked(r, NULL);
	r = send_small_batch(&b, 77, 1);
	cr_expect_eq(r->status, VIGIL__REPLY__STATUS__OK, "host-b's batch: %s", r->error);
	vigil__reply__free_unpacked(r, NULL);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM batches WHERE host_id = 'host-b'"), 1,
		     "host-b's batch was stored");
	h_link_close(&b);

	/* The refusals are logged naming the certificate. */
	char *log = h_slurp(con.log);
	cr_expect(strstr(log, "certificate host-a") != NULL &&
		      strstr(log, "over the per-certificate cap") != NULL,
		  "no refusal naming host-a in the console's log:\n%s", log);
	free(log);

	/* Closed connections give their slots back: all of them, and the cap still holds. */
	for (int i = 0; i < FLOOD; i++)
		h_link_close(&flood[i]);
	for (int i = 0; i < CONNS_PER_CERT + 1; i++)
		h_link_open_redial(&again[i], &con, &pki, pki.host_cert, pki.host_key, 200);
	answered = hellos_answered(again, CONNS_PER_CERT + 1, 8000);
	cr_expect_eq(answered, CONNS_PER_CERT,
		     "after the flood closed, %d of %d new connections answered", answered,
		     CONNS_PER_CERT + 1);
	for (int i = 0; i < CONNS_PER_CERT + 1; i++)
		h_link_close(&again[i]);

	/* The counts, where the console reports its link: the line it logs when it stops. */
	h_console_kill(&con, SIGTERM);
	log = h_slurp(con.log);
	unsigned long long refused = 0;
	const char *sum = stop_summary(log);
	const char *at = strstr(sum, "refused ");
	cr_expect(at != NULL &&
		      sscanf(at, "refused %llu over the per-certificate cap", &refused) == 1,
		  "no link summary in the console's log:\n%s", log);
	cr_expect_geq(refused, FLOOD - CONNS_PER_CERT, "summary: %.400s", sum);
	cr_log_info("console's summary: %.*s", (int)strcspn(sum, "\n"), sum);
	free(log);
}

static atomic_int pipes_lost;

static void count_lost(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	(void)p;
	(void)ev;
	(void)arg;
	atomic_fetch_add(&pipes_lost, 1);
}

/*
 * Version skew: a defender whose limit is larger than this console's sends a
 * 2 MiB batch.  The console answers REFUSED naming both sizes (so the
 * defender drops the batch and reports it), audits it, and keeps the
 * connection: before, nng cut it without a word at every resend, for ever.
 */
Test(link, an_oversize_batch_is_refused_with_an_answer_not_a_dropped_connection)
{
	enum { PAD = 2 * 1024 * 1024 };
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Hello hello = VIGIL__HELLO__INIT;
	Vigil__Batch b = VIGIL__BATCH__INIT;
	Vigil__Event ev = VIGIL__EVENT__INIT, *evp = &ev;
	struct h_link l;
	char expect[96];

	h_console_start(&con, dir, &pki, NULL);
	h_link_open(&l, &con, &pki, pki.host_cert, pki.host_key);
	atomic_store(&pipes_lost, 0);
	/* REM_POST comes for every pipe, also one that connected before this line. */
	cr_assert_eq(nng_pipe_notify(l.sock, NNG_PIPE_EV_REM_POST, count_lost, NULL), 0);
	hello.hostname = "host-a";
	env.seq = 1;
	env.body_case = VIGIL__ENVELOPE__BODY_HELLO;
	env.hello = &hello;
	Vigil__Reply *r = h_link_request(&l, &env);
	cr_assert_eq(r->status, VIGIL__REPLY__STATUS__OK);
	vigil__reply__free_unpacked(r, NULL);

	char *json = malloc(PAD + 32);
	cr_assert_not_null(json);
	int n = snprintf(json, 32, "{\"type\":\"file\",\"pad\":\"");
	memset(json + n, 'a', PAD);
	strcpy(json + n + PAD, "\"}");
	ev.type = 4;
	ev.pid = 1;
	ev.comm = "big";
	ev.json = json;
	b.n_events = 1;
	b.events = &evp;
	vigil__envelope__init(&env);
	env.seq = 7;
	env.incarnation = 99;
	env.body_case = VIGIL__ENVELOPE__BODY_BATCH;
	env.batch = &b;
	size_t size = vigil__envelope__get_packed_size(&env);
	r = h_link_try_request(&l, &env, 10000);
	free(json);
	cr_assert_not_null(r,
			   "no answer to a %zu-byte batch within 10 s (the connection was"
			   " dropped %d time(s))",
			   size, atomic_load(&pipes_lost));
	cr_expect_eq(r->status, VIGIL__REPLY__STATUS__REFUSED);
	cr_expect_eq(r->seq, 7);
	snprintf(expect, sizeof(expect), "batch too large (%zu > %d bytes)", size, 1024 * 1024);
	cr_expect(strstr(r->error, expect) != NULL, "the reason '%s' lacks '%s'", r->error, expect);
	vigil__reply__free_unpacked(r, NULL);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM audits WHERE kind = 'batch_refused'"
				      " AND host_id = 'host-a' AND detail->>'seq' = '7'"
				      " AND detail->>'incarnation' = '99'"
				      " AND detail->>'why' LIKE 'batch too large (%'"),
		     1, "the refused batch is audited");

	/* Positive control, on the same connection: a normal batch is acknowledged. */
	r = send_small_batch(&l, 99, 8);
	cr_expect_eq(r->status, VIGIL__REPLY__STATUS__OK, "a normal batch: %s", r->error);
	vigil__reply__free_unpacked(r, NULL);
	cr_expect_eq(h_db_count(&con, "SELECT count(*) FROM batches WHERE host_id = 'host-a'"
				      " AND seq = 8"),
		     1);
	cr_expect_eq(atomic_load(&pipes_lost), 0, "the console dropped the connection %d time(s)",
		     atomic_load(&pipes_lost));
	h_link_close(&l);
}

/* A hello on l; whether the console answered it within timeout_ms. */
static bool hello_answered(struct h_link *l, int timeout_ms)
{
	struct try_hello t = {.link = l, .timeout_ms = timeout_ms};

	try_hello_main(&t);
	return t.answered;
}

/*
 * A host that crashed, or lost its network for long, leaves connections the
 * console never hears the end of; at the cap they would lock it out.  At its
 * certificate's cap, the connection silent longest gives way to a new one
 * once it has sent nothing for the idle limit (15 s with 1 s heartbeats),
 * and a connection in use never does.
 */
Test(link, a_silent_connection_gives_way_to_a_new_one_at_the_cap)
{
	struct h_link held[CONNS_PER_CERT], late;

	h_console_start(&con, dir, &pki, NULL);
	for (int i = 0; i < CONNS_PER_CERT; i++)
		h_link_open_redial(&held[i], &con, &pki, pki.host_cert, pki.host_key, 60000);
	cr_assert_eq(hellos_answered(held, CONNS_PER_CERT, 5000), CONNS_PER_CERT,
		     "positive control: the cap's worth of connections is answered");
	long long t_silent = h_now_ms(); /* held[last] says nothing from here on */

	/* While all of them are fresh, a new one is refused. */
	h_link_open_redial(&late, &con, &pki, pki.host_cert, pki.host_key, 500);
	cr_expect_not(hello_answered(&late, 3000), "a connection over the cap was answered");

	/* The others stay in use, past the idle limit of the silent one. */
	while (h_now_ms() - t_silent < 18000) {
		for (int i = 0; i < CONNS_PER_CERT - 1; i++)
			cr_expect(hello_answered(&held[i], 5000), "connection %d in use was lost",
				  i);
		h_sleep_ms(2000);
	}
	if (!hello_answered(&late, 20000)) {
		h_console_kill(&con, SIGTERM);
		char *log = h_slurp(con.log);
		cr_assert_fail("the new connection was not admitted in place of the silent one: %s",
			       stop_summary(log));
	}
	cr_expect_not(hello_answered(&held[CONNS_PER_CERT - 1], 2000),
		      "the silent connection was kept");
	for (int i = 0; i < CONNS_PER_CERT - 1; i++)
		cr_expect(hello_answered(&held[i], 5000), "connection %d in use was given up", i);
	char *log = h_slurp(con.log);
	cr_expect(strstr(log, "closed the one silent longest") != NULL,
		  "no line about the connection given up in the console's log");
	free(log);
	h_console_kill(&con, SIGTERM);
	log = h_slurp(con.log);
	cr_expect(strstr(log, "at once, 1 silent one(s) given up for a newcomer") != NULL,
		  "the stop summary does not count it:\n%s", stop_summary(log));
	free(log);
	for (int i = 0; i < CONNS_PER_CERT; i++)
		h_link_close(&held[i]);
	h_link_close(&late);
}
