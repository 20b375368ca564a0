/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The outputs end to end (docs/outputs.md): a real vigil-console with its
 * private PostgreSQL, fed audits over the real link by a scripted
 * "defender" (no defender, no BPF), delivering them to real receivers:
 * rsyslogd from Debian (imtcp, plain and gtls, parsed with mmpstrucdata),
 * a local HTTPS server (python3's http.server in ssl), a file; and
 * GET /metrics read by a real Prometheus parser (python3-prometheus-client).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/apiclient.h"
#include "harness.h"

#define PYTHON	 "/usr/bin/python3" /* Debian's, for the webhook receiver */
#define RSYSLOGD "/usr/sbin/rsyslogd"

static char dir[H_PATH];
static struct h_pki pki;
static struct h_console con;
static struct h_link link_a;
static bool link_open;
static uint64_t seq;
static char outputs_path[H_PATH];
static pid_t helpers[4];
static int nhelpers;

static void setup(void)
{
	h_tmpdir(dir);
	h_pki_make(dir, &pki);
	seq = 0;
	nhelpers = 0;
	link_open = false;
}

static void teardown(void)
{
	if (link_open)
		h_link_close(&link_a);
	if (con.pid > 0)
		h_console_kill(&con, SIGTERM);
	for (int i = 0; i < nhelpers; i++)
		if (helpers[i] > 0)
			h_stop(helpers[i], SIGTERM, 5000);
	if (!getenv("VIGIL_KEEP_TEST_DIRS"))
		h_rmrf(dir);
}

TestSuite(outputs, .init = setup, .fini = teardown, .timeout = 300);

static pid_t keep_helper(pid_t pid)
{
	cr_assert_lt(nhelpers, 4);
	helpers[nhelpers++] = pid;
	return pid;
}

static Vigil__Reply *send_ok(Vigil__Envelope *env)
{
	Vigil__Reply *r = h_link_request(&link_a, env);

	cr_assert_eq(r->status, VIGIL__REPLY__STATUS__OK, "reply status %d: %s", r->status,
		     r->error);
	return r;
}

static void hello(void)
{
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Hello h = VIGIL__HELLO__INIT;

	h.hostname = "web-1";
	env.body_case = VIGIL__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	vigil__reply__free_unpacked(send_ok(&env), NULL);
}

/*
 * The console's options: the outputs file, and a host timeout long enough
 * that no defender_silent audit comes between the ones a test counts.
 */
#define CONSOLE_ARGS "--outputs", outputs_path, "--host-timeout-ms", "600000"

/* Write the outputs file, start the console with it, open the link, say hello. */
static void start_console(const char *outputs)
{
	const char *extra[] = {CONSOLE_ARGS, NULL};

	h_write_file(dir, "outputs.conf", outputs, outputs_path);
	h_console_start(&con, dir, &pki, extra);
	h_link_open(&link_a, &con, &pki, pki.host_cert, pki.host_key);
	link_open = true;
	hello();
}

static void restart_console(void)
{
	const char *extra[] = {CONSOLE_ARGS, NULL};

	h_link_close(&link_a);
	link_open = false;
	h_console_kill(&con, SIGTERM);
	h_console_restart(&con, &pki, extra);
	h_link_open(&link_a, &con, &pki, pki.host_cert, pki.host_key);
	link_open = true;
	hello();
}

struct dev {
	const char *kind, *severity, *exe, *object;
};

/* One batch of n deviations; returns how long the console took to acknowledge it (ms). */
static long long send_devs(const struct dev *d, size_t n)
{
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Batch b = VIGIL__BATCH__INIT;
	Vigil__Deviation *devs = calloc(n, sizeof(*devs));
	Vigil__Deviation **ptrs = calloc(n, sizeof(*ptrs));
	struct timespec now;
	long long t0;

	cr_assert(devs != NULL && ptrs != NULL);
	/* Now: retention deletes audits by this time (a year old would go at the next start). */
	clock_gettime(CLOCK_REALTIME, &now);
	for (size_t i = 0; i < n; i++) {
		vigil__deviation__init(&devs[i]);
		devs[i].ts_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec + i;
		devs[i].service = "nginx.service";
		devs[i].exe = (char *)(d[i].exe != NULL ? d[i].exe : "/usr/sbin/nginx");
		devs[i].kind = (char *)d[i].kind;
		devs[i].object = (char *)d[i].object;
		devs[i].raw = (char *)d[i].object;
		devs[i].expected = "/usr/sbin/nginx";
		devs[i].severity = (char *)d[i].severity;
		devs[i].pid = 801;
		ptrs[i] = &devs[i];
	}
	b.n_deviations = n;
	b.deviations = ptrs;
	env.seq = ++seq;
	env.body_case = VIGIL__ENVELOPE__BODY_BATCH;
	env.batch = &b;
	t0 = h_now_ms();
	vigil__reply__free_unpacked(send_ok(&env), NULL);
	t0 = h_now_ms() - t0;
	free(devs);
	free(ptrs);
	return t0;
}

/* n deviations of kind/severity, objects named "/srv/<tag>-<i>". */
static long long send_many(size_t n, const char *kind, const char *severity, const char *tag)
{
	struct dev *d = calloc(n, sizeof(*d));
	char(*obj)[64] = calloc(n, 64);
	long long ms;

	for (size_t i = 0; i < n; i++) {
		snprintf(obj[i], 64, "/srv/%s-%zu", tag, i);
		d[i] = (struct dev){.kind = kind, .severity = severity, .object = obj[i]};
	}
	ms = send_devs(d, n);
	free(d);
	free(obj);
	return ms;
}

static long long db_count(const char *sql)
{
	return h_db_count(&con, sql);
}

/* Wait until sql counts want (or more, with at_least) within ms; returns the last count. */
static long long wait_count(const char *sql, long long want, int ms)
{
	long long until = h_now_ms() + ms, n = -1;

	while (h_now_ms() < until) {
		if ((n = db_count(sql)) >= want)
			return n;
		h_sleep_ms(200);
	}
	return n;
}

/* Whether the console's log has needle, waiting up to ms. */
static bool log_has(const char *needle, int ms)
{
	long long until = h_now_ms() + ms;

	do {
		char *log = h_slurp(con.log);
		bool found = strstr(log, needle) != NULL;

		free(log);
		if (found)
			return true;
		h_sleep_ms(200);
	} while (h_now_ms() < until);
	return false;
}

/* The audits of kind from the API, oldest first (caller decrefs). */
static json_t *api_audits(const char *kind)
{
	char path[256];
	json_t *doc = NULL, *list, *rev = json_array();
	int status;

	snprintf(path, sizeof(path), "/api/v1/audits?limit=1000%s%s", kind ? "&kind=" : "",
		 kind ? kind : "");
	status = h_api_get(&con, &pki, path, con.token, &doc);
	cr_assert_eq(status, 200, "GET %s: %d", path, status);
	list = json_object_get(doc, "audits");
	for (size_t i = json_array_size(list); i > 0; i--)
		json_array_append(rev, json_array_get(list, i - 1));
	json_decref(doc);
	return rev;
}

/* Each line of path parsed as JSON, in an array (a line that does not parse fails the test). */
static json_t *read_jsonl(const char *path)
{
	char *text = h_slurp(path), *save = NULL;
	json_t *arr = json_array();

	for (char *line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		json_error_t jerr;
		json_t *o = json_loads(line, 0, &jerr);

		cr_assert_not_null(o, "%s: a line is not JSON (%s): %s", path, jerr.text, line);
		json_array_append_new(arr, o);
	}
	free(text);
	return arr;
}

static bool port_open(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;

	close(fd);
	return ok;
}

static void wait_port(int port, const char *what, const char *log)
{
	long long until = h_now_ms() + 20000;

	while (h_now_ms() < until) {
		if (port_open(port))
			return;
		h_sleep_ms(100);
	}
	char *text = h_slurp(log);
	cr_assert_fail("%s is not listening on port %d after 20 s:\n%s", what, port, text);
}

/* ---- rsyslog ---- */

/*
 * rsyslogd (Debian's) with a private configuration: an imtcp listener on
 * 127.0.0.1:port (gtls with cert and key when cert is not NULL) writing
 * every message as one JSON line with its RFC 5424 fields as rsyslog
 * parsed them, and the structured data as mmpstrucdata parsed it.
 */
static pid_t start_rsyslog(const char *name, int port, const char *cert, const char *key,
			   char out[H_PATH])
{
	char conf[4096], path[H_PATH], work[H_PATH], log[H_PATH], pidf[H_PATH], tls[1024] = "";

	if (access(RSYSLOGD, X_OK) != 0)
		H_SKIP(teardown,
		       "rsyslogd is not installed (apt-get install rsyslog rsyslog-gnutls;"
		       " deploy/install-deps.sh does)");
	snprintf(work, sizeof(work), "%s/%s-work", dir, name);
	mkdir(work, 0700);
	snprintf(out, H_PATH, "%s/%s.jsonl", dir, name);
	snprintf(log, sizeof(log), "%s/%s.log", dir, name);
	snprintf(pidf, sizeof(pidf), "%s/%s.pid", dir, name);
	if (cert != NULL) {
		if (access("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so", R_OK) != 0)
			H_SKIP(teardown, "rsyslog's gtls driver is not installed (apt-get install"
					 " rsyslog-gnutls)");
		snprintf(
		    tls, sizeof(tls),
		    "global(DefaultNetstreamDriverCAFile=\"%s\" "
		    "DefaultNetstreamDriverCertFile=\"%s\" DefaultNetstreamDriverKeyFile=\"%s\")\n",
		    pki.ca, cert, key);
	}
	snprintf(conf, sizeof(conf),
		 "global(workDirectory=\"%s\")\n%s"
		 "module(load=\"imtcp\"%s)\n"
		 "module(load=\"mmpstrucdata\")\n"
		 "input(type=\"imtcp\" port=\"%d\" address=\"127.0.0.1\" ruleset=\"r\")\n"
		 "template(name=\"vj\" type=\"list\" option.jsonf=\"on\") {\n"
		 " property(outname=\"pri\" name=\"pri\" format=\"jsonf\")\n"
		 " property(outname=\"ts\" name=\"timereported\" dateFormat=\"rfc3339\""
		 " format=\"jsonf\")\n"
		 " property(outname=\"host\" name=\"hostname\" format=\"jsonf\")\n"
		 " property(outname=\"app\" name=\"app-name\" format=\"jsonf\")\n"
		 " property(outname=\"msgid\" name=\"msgid\" format=\"jsonf\")\n"
		 " property(outname=\"msg\" name=\"msg\" format=\"jsonf\")\n"
		 " property(outname=\"sd\" name=\"$!\" format=\"jsonf\")\n"
		 "}\n"
		 "ruleset(name=\"r\") {\n"
		 " action(type=\"mmpstrucdata\")\n"
		 " action(type=\"omfile\" file=\"%s\" template=\"vj\")\n"
		 "}\n",
		 work, tls,
		 cert != NULL ? " StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" "
				"StreamDriver.AuthMode=\"anon\""
			      : "",
		 port, out);
	char cname[64];
	snprintf(cname, sizeof(cname), "%s.conf", name);
	h_write_file(dir, cname, conf, path);
	char *argv[] = {RSYSLOGD, "-n", "-f", path, "-i", pidf, NULL};
	pid_t pid = keep_helper(h_spawn(log, argv));
	wait_port(port, "rsyslogd", log);
	return pid;
}

/* The SD params of one rsyslog line, as mmpstrucdata parsed them (borrowed from line). */
static json_t *rs_params(json_t *line)
{
	json_t *sd = json_loads(json_string_value(json_object_get(line, "sd")), 0, NULL);
	json_t *params;

	cr_assert_not_null(sd, "rsyslog did not parse the structured data");
	params = json_object_get(json_object_get(sd, "rfc5424-sd"), "vigil@32473");
	cr_assert_not_null(params, "no vigil@32473 element in %s",
			   json_string_value(json_object_get(line, "sd")));
	json_incref(params);
	json_decref(sd);
	json_object_set_new(line, "_params", params);
	return params;
}

static const char *jstr(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : "<absent>";
}

/* The rsyslog lines (waiting until there are want, up to ms). */
static json_t *rs_wait(const char *out, size_t want, int ms)
{
	long long until = h_now_ms() + ms;
	json_t *lines = NULL;

	do {
		json_decref(lines);
		lines = read_jsonl(out);
		if (json_array_size(lines) >= want)
			break;
		h_sleep_ms(200);
	} while (h_now_ms() < until);
	return lines;
}

Test(outputs, syslog_over_tcp_is_rfc5424_with_escaped_values)
{
	char out[H_PATH], conf[512];
	int port = h_free_port();
	static const char weird[] = "/opt/we]ird\"name\\x";
	const struct dev d[3] = {
	    {"new_program", "high", NULL, "/bin/sh"},
	    {"new_write", "medium", weird, "/var/tmp/a]b\"c\\d"},
	    {"new_peer", "low", NULL, "10.0.0.9:4444"},
	};

	start_rsyslog("rs", port, NULL, NULL, out);
	snprintf(conf, sizeof(conf), "output = siem syslog tcp://127.0.0.1:%d\n", port);
	start_console(conf);
	send_devs(d, 3);
	json_t *lines = rs_wait(out, 3, 20000);
	cr_assert_eq(json_array_size(lines), 3, "rsyslog got %zu message(s):\n%s",
		     json_array_size(lines), h_slurp(out));
	json_t *audits = api_audits(NULL);
	cr_assert_eq(json_array_size(audits), 3);
	for (size_t i = 0; i < 3; i++) {
		json_t *line = json_array_get(lines, i), *a = json_array_get(audits, i);
		json_t *p = rs_params(line);
		char id[24], pri[8];
		const char *msg = jstr(line, "msg");
		static const int sev[3] = {2, 4, 5}; /* high crit, medium warning, low notice */

		snprintf(id, sizeof(id), "%lld",
			 (long long)json_integer_value(json_object_get(a, "id")));
		snprintf(pri, sizeof(pri), "%d", 10 * 8 + sev[i]); /* facility authpriv */
		cr_expect_str_eq(jstr(line, "pri"), pri);
		cr_expect_str_eq(jstr(line, "host"), "host-a"); /* the certificate's CN */
		cr_expect_str_eq(jstr(line, "app"), "vigil");
		cr_expect_str_eq(jstr(line, "msgid"), d[i].kind);
		cr_expect_str_eq(jstr(line, "ts"), jstr(a, "ts"));
		cr_expect_str_eq(jstr(p, "id"), id);
		cr_expect_str_eq(jstr(p, "host"), "host-a");
		cr_expect_str_eq(jstr(p, "kind"), d[i].kind);
		cr_expect_str_eq(jstr(p, "severity"), d[i].severity);
		cr_expect_str_eq(jstr(p, "service"), "nginx.service");
		cr_expect_str_eq(jstr(p, "exe"), jstr(a, "exe"));
		cr_expect_str_eq(jstr(p, "effect"), "alert");
		/* MSG: the summary after its BOM, the ], " and \ of a hostile name intact. */
		if (strncmp(msg, "\xef\xbb\xbf", 3) == 0)
			msg += 3;
		cr_expect_str_eq(msg, jstr(a, "summary"));
	}
	cr_expect_str_eq(jstr(json_object_get(json_array_get(lines, 1), "_params"), "exe"), weird);
	cr_expect(strstr(jstr(json_array_get(audits, 1), "summary"), "a]b\"c\\d") != NULL);
	json_decref(lines);
	json_decref(audits);
	cr_expect_eq(
	    wait_count("SELECT delivered FROM output_cursors WHERE sink = 'siem'", 3, 5000), 3);
}

Test(outputs, syslog_over_tls_verifies_the_receiver)
{
	char out[H_PATH], conf[2048], other[H_PATH];
	struct h_pki pki2;
	int port = h_free_port();

	/* Another CA, which the receiver's certificate does not chain to. */
	snprintf(other, sizeof(other), "%s/other", dir);
	mkdir(other, 0755);
	h_pki_make(other, &pki2);
	start_rsyslog("rstls", port, pki.console_cert, pki.console_key, out);
	/* good: the right CA (the positive control); wrong: another CA, facility local1. */
	snprintf(conf, sizeof(conf),
		 "output = good syslog tls://127.0.0.1:%d ca=%s\n"
		 "output = wrong syslog tls://127.0.0.1:%d ca=%s facility=local1\n",
		 port, pki.ca, port, pki2.ca);
	start_console(conf);
	send_many(4, "new_program", "high", "tls");
	json_t *lines = rs_wait(out, 4, 20000);
	cr_assert_eq(json_array_size(lines), 4, "rsyslog got %zu message(s) over TLS:\n%s",
		     json_array_size(lines), h_slurp(out));
	char failed[256];
	/* nng's TLS stream shakes hands with the first write. */
	snprintf(failed, sizeof(failed),
		 "output wrong (syslog 127.0.0.1:%d) failed: cannot write to 127.0.0.1:%d: TLS"
		 " failed: the receiver's certificate was rejected",
		 port, port);
	cr_assert(log_has(failed, 10000), "no refusal of the receiver:\n%s", h_slurp(con.log));
	h_sleep_ms(2000);
	json_decref(lines);
	lines = read_jsonl(out);
	cr_expect_eq(json_array_size(lines), 4, "the receiver with the wrong CA got audits");
	for (size_t i = 0; i < json_array_size(lines); i++)
		cr_expect_str_eq(jstr(json_array_get(lines, i), "pri"), "82"); /* authpriv, crit */
	json_decref(lines);
	cr_expect_eq(db_count("SELECT delivered FROM output_cursors WHERE sink = 'wrong'"), 0);
	cr_expect_eq(db_count("SELECT delivered FROM output_cursors WHERE sink = 'good'"), 4);
}

/* ---- webhooks ---- */

/*
 * An HTTP(S) server (python3's http.server, in ssl when cert is given)
 * that logs every request as a JSON line to log and answers by plan:
 * "PATH=S,S,...;PATH=..." the statuses of a path's first requests (503
 * with Retry-After: 1), 200 after them.
 */
static pid_t start_webhook(int port, bool tls, const char *plan, char log[H_PATH])
{
	static const char script[] =
	    "import http.server, json, ssl, sys, threading, time\n"
	    "port, cert, key, log, plan = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4],"
	    " sys.argv[5]\n"
	    "plans = {}\n"
	    "for part in filter(None, plan.split(';')):\n"
	    "    path, _, codes = part.partition('=')\n"
	    "    plans[path] = [int(c) for c in codes.split(',') if c]\n"
	    "lock = threading.Lock()\n"
	    "count = {}\n"
	    "class H(http.server.BaseHTTPRequestHandler):\n"
	    "    protocol_version = 'HTTP/1.1'\n"
	    "    def log_message(self, *a):\n"
	    "        pass\n"
	    "    def do_POST(self):\n"
	    "        body = self.rfile.read(int(self.headers.get('Content-Length', '0')))\n"
	    "        with lock:\n"
	    "            i = count.get(self.path, 0)\n"
	    "            count[self.path] = i + 1\n"
	    "            p = plans.get(self.path, [])\n"
	    "            status = p[i] if i < len(p) else 200\n"
	    "            rec = {'n': i, 't': time.time(), 'path': self.path, 'status': status,\n"
	    "                   'id': self.headers.get('X-Vigil-Audit-Id'),\n"
	    "                   'ctype': self.headers.get('Content-Type'),\n"
	    "                   'body': body.decode('utf-8', 'replace')}\n"
	    "            with open(log, 'a') as f:\n"
	    "                f.write(json.dumps(rec) + '\\n')\n"
	    "        out = b'{\"ok\": true}'\n"
	    "        self.send_response(status)\n"
	    "        if status == 503:\n"
	    "            self.send_header('Retry-After', '1')\n"
	    "        self.send_header('Content-Type', 'application/json')\n"
	    "        self.send_header('Content-Length', str(len(out)))\n"
	    "        self.end_headers()\n"
	    "        self.wfile.write(out)\n"
	    "srv = http.server.ThreadingHTTPServer(('127.0.0.1', port), H)\n"
	    "if cert:\n"
	    "    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
	    "    ctx.load_cert_chain(cert, key)\n"
	    "    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)\n"
	    "srv.serve_forever()\n";
	char path[H_PATH], slog[H_PATH], portarg[16];

	if (access(PYTHON, X_OK) != 0)
		H_SKIP(teardown, "%s is not installed", PYTHON);
	h_write_file(dir, "webhook.py", script, path);
	snprintf(log, H_PATH, "%s/webhook-requests.jsonl", dir);
	snprintf(slog, sizeof(slog), "%s/webhook.log", dir);
	snprintf(portarg, sizeof(portarg), "%d", port);
	char *argv[] = {
	    PYTHON, path,	  portarg, tls ? pki.console_cert : "", tls ? pki.console_key : "",
	    log,    (char *)plan, NULL};
	pid_t pid = keep_helper(h_spawn(slog, argv));
	wait_port(port, "the webhook server", slog);
	return pid;
}

/* The requests the server logged for path (all with NULL), in order. */
static json_t *hook_requests(const char *log, const char *path)
{
	json_t *all = read_jsonl(log), *out = json_array(), *r;
	size_t i;

	json_array_foreach(all, i, r)
	{
		if (path == NULL || strcmp(jstr(r, "path"), path) == 0)
			json_array_append(out, r);
	}
	json_decref(all);
	return out;
}

/* Wait until path got want requests answered 200 (up to ms); returns the 200-answered ones. */
static json_t *hook_wait_ok(const char *log, const char *path, size_t want, int ms)
{
	long long until = h_now_ms() + ms;
	json_t *ok = NULL;

	do {
		json_t *all = hook_requests(log, path), *r;
		size_t i;

		json_decref(ok);
		ok = json_array();
		json_array_foreach(all, i, r)
		{
			if (json_integer_value(json_object_get(r, "status")) == 200)
				json_array_append(ok, r);
		}
		json_decref(all);
		if (json_array_size(ok) >= want)
			break;
		h_sleep_ms(200);
	} while (h_now_ms() < until);
	return ok;
}

Test(outputs, webhook_retries_after_503_and_delivers_each_audit_once_in_order)
{
	char log[H_PATH], conf[2048];
	int port = h_free_port();
	static const char obj_mention[] = "/srv/<!channel> & co";

	start_webhook(port, true, "/json=503;/slack=", log);
	snprintf(conf, sizeof(conf),
		 "output = hook webhook https://127.0.0.1:%d/json ca=%s\n"
		 "output = chat webhook https://127.0.0.1:%d/slack?token=s3cret ca=%s format=slack"
		 " min_severity=medium\n",
		 port, pki.ca, port, pki.ca);
	start_console(conf);
	send_many(4, "new_program", "high", "hook");
	const struct dev mention = {"new_write", "low", NULL, obj_mention};
	send_devs(&mention, 1);

	json_t *ok = hook_wait_ok(log, "/json", 5, 30000);
	json_t *audits = api_audits(NULL);
	cr_assert_eq(json_array_size(ok), 5, "the json hook got %zu audit(s)", json_array_size(ok));
	/* Each audit once, in order, with its id in the header and the body. */
	for (size_t i = 0; i < 5; i++) {
		json_t *r = json_array_get(ok, i), *a = json_array_get(audits, i);
		json_t *body = json_loads(jstr(r, "body"), 0, NULL);
		char id[24];

		snprintf(id, sizeof(id), "%lld",
			 (long long)json_integer_value(json_object_get(a, "id")));
		cr_expect_str_eq(jstr(r, "id"), id);
		cr_expect_str_eq(jstr(r, "ctype"), "application/json");
		cr_assert_not_null(body);
		cr_expect(json_equal(body, a), "the body is not the API's audit object: %s",
			  jstr(r, "body"));
		json_decref(body);
	}
	/* The first request got 503 + Retry-After: 1; the retry waited for it. */
	json_t *all = hook_requests(log, "/json");
	cr_assert_geq(json_array_size(all), 6);
	json_t *first = json_array_get(all, 0), *second = json_array_get(all, 1);
	cr_expect_eq(json_integer_value(json_object_get(first, "status")), 503);
	cr_expect_str_eq(jstr(first, "id"), jstr(second, "id"));
	double gap = json_real_value(json_object_get(second, "t")) -
		     json_real_value(json_object_get(first, "t"));
	cr_expect_geq(gap, 0.9, "retried %.2f s after a Retry-After of 1 s", gap);
	cr_expect_eq(json_array_size(all), 6, "%zu requests for 5 audits and one 503",
		     json_array_size(all));
	json_decref(all);

	/* Slack: the medium-and-up audits only, as a line, a host's <!channel> made harmless. */
	json_t *slack = hook_wait_ok(log, "/slack?token=s3cret", 4, 20000);
	cr_assert_eq(json_array_size(slack), 4, "slack got %zu", json_array_size(slack));
	h_sleep_ms(1500);
	json_decref(slack);
	slack = hook_requests(log, "/slack?token=s3cret");
	cr_expect_eq(json_array_size(slack), 4, "the low audit went to a min_severity=medium hook");
	json_t *body = json_loads(jstr(json_array_get(slack, 0), "body"), 0, NULL);
	cr_assert_not_null(body);
	cr_expect_eq(json_object_size(body), 1);
	cr_expect(strncmp(jstr(body, "text"), "*HIGH* new_program on host-a: ", 30) == 0, "%s",
		  jstr(body, "text"));
	json_decref(body);
	json_decref(slack);

	/* The low one's mention, in a json hook's body as sent, escaped nowhere else. */
	cr_expect(strstr(jstr(json_array_get(ok, 4), "body"), "<!channel>") != NULL);
	char *clog = h_slurp(con.log);
	cr_expect(strstr(clog, "s3cret") == NULL, "the console logged a webhook URL's secret");
	free(clog);
	json_decref(ok);
	json_decref(audits);
}

Test(outputs, slack_text_escapes_mentions)
{
	char log[H_PATH], conf[1024];
	int port = h_free_port();
	const struct dev d = {"new_write", "high", NULL, "/srv/<!channel> & <@U123>"};

	start_webhook(port, false, "", log);
	snprintf(conf, sizeof(conf), "output = chat webhook http://127.0.0.1:%d/s format=slack\n",
		 port);
	start_console(conf);
	send_devs(&d, 1);
	json_t *ok = hook_wait_ok(log, "/s", 1, 20000);
	cr_assert_eq(json_array_size(ok), 1);
	json_t *body = json_loads(jstr(json_array_get(ok, 0), "body"), 0, NULL);
	const char *text = jstr(body, "text");
	cr_expect(strstr(text, "<!channel>") == NULL && strstr(text, "<@U123>") == NULL, "%s",
		  text);
	cr_expect(strstr(text, "&lt;!channel&gt; &amp; &lt;@U123&gt;") != NULL, "%s", text);
	json_decref(body);
	json_decref(ok);
}

Test(outputs, webhook_refusal_is_audited_and_the_cursor_moves_on)
{
	char log[H_PATH], conf[1024];
	int port = h_free_port();

	start_webhook(port, true, "/h=400", log);
	snprintf(conf, sizeof(conf), "output = hook webhook https://127.0.0.1:%d/h ca=%s\n", port,
		 pki.ca);
	start_console(conf);
	send_many(3, "new_program", "high", "refused");
	json_t *audits = api_audits("new_program");
	long long first = json_integer_value(json_object_get(json_array_get(audits, 0), "id"));
	long long last = json_integer_value(json_object_get(json_array_get(audits, 2), "id"));

	/* The first is refused for good (400): reported, not retried; the others delivered. */
	cr_assert_eq(
	    wait_count("SELECT count(*) FROM audits WHERE kind = 'output_dropped'", 1, 20000), 1,
	    "no output_dropped audit:\n%s", h_slurp(con.log));
	json_t *drops = api_audits("output_dropped");
	json_t *d = json_array_get(drops, 0), *detail = json_object_get(d, "detail");
	cr_expect_str_eq(jstr(d, "severity"), "high");
	cr_expect_str_eq(jstr(d, "host_id"), "");
	cr_expect_str_eq(jstr(detail, "sink"), "hook");
	cr_expect_str_eq(jstr(detail, "reason"), "refused");
	cr_expect_eq(json_integer_value(json_object_get(detail, "count")), 1);
	cr_expect_eq(json_integer_value(json_object_get(detail, "first_id")), first);
	cr_expect(strstr(jstr(detail, "why"), "HTTP 400") != NULL, "%s", jstr(detail, "why"));
	cr_expect(log_has("refused for good and dropped", 1000));
	/* 2 and 3 delivered, then the output_dropped audit itself. */
	json_t *ok = hook_wait_ok(log, "/h", 3, 20000);
	cr_assert_eq(json_array_size(ok), 3);
	char id[24];
	snprintf(id, sizeof(id), "%lld", last);
	cr_expect_str_eq(jstr(json_array_get(ok, 1), "id"), id);
	cr_expect(strstr(jstr(json_array_get(ok, 2), "body"), "output_dropped") != NULL);
	json_t *all = hook_requests(log, "/h");
	cr_expect_eq(json_array_size(all), 4, "the refused audit was sent again");
	json_decref(all);
	cr_expect_geq(db_count("SELECT last_id FROM output_cursors WHERE sink = 'hook'"), last);
	cr_expect_eq(db_count("SELECT dropped FROM output_cursors WHERE sink = 'hook'"), 1);
	json_decref(ok);
	json_decref(drops);
	json_decref(audits);
}

/*
 * Without Retry-After a failing receiver is tried again after 1 s, 2 s, 4 s,
 * ... (doubling up to 60 s), each wait drawn between half and all of it
 * (outputs.c, failed(); docs/outputs.md, "Delivery").  Three 500s, then
 * 200: the gaps between the attempts must fall in [0.5, 1], [1, 2] and
 * [2, 4] s (plus the time an attempt takes), and not all at the top of
 * their window, which is where waits without jitter would put them (drawn
 * waits all land in the top 2% less than once in 10,000 runs).  The 60 s
 * ceiling takes seven failures (over 30 s of waiting) to reach: not here.
 */
Test(outputs, webhook_backoff_without_retry_after_doubles_with_jitter)
{
	char log[H_PATH], conf[1024];
	int port = h_free_port();
	const double slack = 0.5; /* an attempt's own time on a loaded runner, at most */

	start_webhook(port, false, "/w=500,500,500", log);
	snprintf(conf, sizeof(conf), "output = hook webhook http://127.0.0.1:%d/w\n", port);
	start_console(conf);
	send_many(1, "new_program", "high", "backoff");
	json_t *ok = hook_wait_ok(log, "/w", 1, 15000);
	cr_assert_eq(json_array_size(ok), 1, "not delivered after three 500s:\n%s",
		     h_slurp(con.log));
	json_decref(ok);
	json_t *all = hook_requests(log, "/w");
	cr_assert_eq(json_array_size(all), 4, "%zu attempts for three 500s and a 200",
		     json_array_size(all));
	bool all_at_top = true;
	for (size_t i = 1; i < 4; i++) {
		json_t *prev = json_array_get(all, i - 1), *r = json_array_get(all, i);
		double gap = json_real_value(json_object_get(r, "t")) -
			     json_real_value(json_object_get(prev, "t"));
		double full = (double)(1u << (i - 1)); /* 1, 2, 4 s */

		cr_expect_eq(json_integer_value(json_object_get(prev, "status")), 500);
		cr_expect_str_eq(jstr(r, "id"), jstr(prev, "id"), "attempt %zu is of another audit",
				 i + 1);
		cr_expect_geq(gap, full / 2, "attempt %zu: %.3f s after the last, under %.1f s",
			      i + 1, gap, full / 2);
		cr_expect_leq(gap, full + slack, "attempt %zu: %.3f s after the last, over %.1f s",
			      i + 1, gap, full);
		cr_log_info("backoff: gap %zu %.3f s, in [%.1f, %.1f]", i, gap, full / 2, full);
		if ((gap - full / 2) / (full / 2) < 0.98)
			all_at_top = false;
	}
	cr_expect(!all_at_top, "every wait was the whole of its window: no jitter");
	cr_expect_eq(json_integer_value(json_object_get(json_array_get(all, 3), "status")), 200);
	json_decref(all);
	/* Server errors are failures to retry, never drops. */
	cr_expect_eq(db_count("SELECT count(*) FROM audits WHERE kind = 'output_dropped'"), 0);
}

/* ---- JSON lines ---- */

Test(outputs, jsonl_survives_rotation_without_losing_a_line)
{
	char conf[1024], file[H_PATH], rotated[H_PATH];

	snprintf(file, sizeof(file), "%s/audits.jsonl", dir);
	snprintf(rotated, sizeof(rotated), "%s/audits.jsonl.1", dir);
	snprintf(conf, sizeof(conf), "output = archive jsonl %s\n", file);
	start_console(conf);
	send_many(5, "new_program", "high", "before");
	long long until = h_now_ms() + 20000;
	json_t *lines = NULL;
	while (h_now_ms() < until) {
		json_decref(lines);
		lines = read_jsonl(file);
		if (json_array_size(lines) >= 5)
			break;
		h_sleep_ms(100);
	}
	cr_assert_eq(json_array_size(lines), 5);
	struct stat st;
	cr_assert_eq(stat(file, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0640);
	json_decref(lines);
	/* logrotate's way: rename, then (here) nothing: the console makes the new file. */
	cr_assert_eq(rename(file, rotated), 0);
	for (int i = 0; i < 5; i++)
		send_many(2, "new_write", "medium", i % 2 ? "after-a" : "after-b");
	/* SIGHUP (logrotate's postrotate) does not end the console. */
	cr_assert_eq(kill(con.pid, SIGHUP), 0);
	send_many(3, "new_peer", "low", "after-hup");
	until = h_now_ms() + 20000;
	lines = NULL;
	while (h_now_ms() < until) {
		json_decref(lines);
		lines = read_jsonl(file);
		if (json_array_size(lines) >= 13)
			break;
		h_sleep_ms(100);
	}
	json_t *old = read_jsonl(rotated), *audits = api_audits(NULL);
	int status;
	cr_expect(!h_exited(con.pid, &status), "SIGHUP ended the console");
	cr_assert_eq(json_array_size(old) + json_array_size(lines), json_array_size(audits),
		     "%zu + %zu lines for %zu audits", json_array_size(old), json_array_size(lines),
		     json_array_size(audits));
	/* Every audit once, in order, as the API has it, across both files. */
	for (size_t i = 0; i < json_array_size(audits); i++) {
		json_t *l = i < json_array_size(old)
				? json_array_get(old, i)
				: json_array_get(lines, i - json_array_size(old));
		cr_expect(json_equal(l, json_array_get(audits, i)), "line %zu differs", i);
	}
	json_decref(old);
	json_decref(lines);
	json_decref(audits);
}

/* ---- metrics, read as a scraper does ---- */

/* GET /metrics as text. */
static int get_metrics(const char *token, char **ret_body)
{
	vigil_err err = {0};
	int status = 0;

	cr_assert_eq(apiclient_get(con.api, "/metrics", token, pki.ca, &status, ret_body, &err), 0,
		     "%s", err.msg);
	return status;
}

/* The value of name{labels} (labels: k, v, ..., NULL must all match); -1 when absent. */
static double sample(json_t *m, const char *name, const char *const *labels)
{
	json_t *s;
	size_t i;

	json_array_foreach(json_object_get(m, name), i, s)
	{
		json_t *l = json_object_get(s, "labels");
		bool match = true;

		for (int k = 0; labels != NULL && labels[k] != NULL; k += 2)
			if (strcmp(jstr(l, labels[k]), labels[k + 1]) != 0)
				match = false;
		if (match)
			return json_number_value(json_object_get(s, "value"));
	}
	return -1;
}

/* GET /metrics with the console's token, parsed (caller decrefs). */
static json_t *scrape(void)
{
	char *body = NULL;
	json_t *m;

	cr_assert_eq(get_metrics(con.token, &body), 200);
	m = h_prom_parse(dir, body);
	free(body);
	return m;
}

/* ---- restart, bounds, a stuck receiver ---- */

Test(outputs, restart_while_the_sink_is_down_delivers_everything_once)
{
	char log[H_PATH], conf[1024], failed[128];
	int port = h_free_port();

	snprintf(conf, sizeof(conf), "output = hook webhook https://127.0.0.1:%d/r ca=%s\n", port,
		 pki.ca);
	snprintf(log, sizeof(log), "%s/webhook-requests.jsonl", dir);
	snprintf(failed, sizeof(failed), "output hook (webhook 127.0.0.1:%d) failed", port);
	start_console(conf);
	send_many(5, "new_program", "high", "first");
	cr_assert(log_has(failed, 15000), "the sink did not fail:\n%s", h_slurp(con.log));
	restart_console();
	send_many(5, "new_write", "medium", "second");
	start_webhook(port, true, "", log);
	json_t *ok = hook_wait_ok(log, "/r", 10, 60000);
	json_t *audits = api_audits(NULL);
	cr_assert_eq(json_array_size(ok), 10, "delivered %zu of 10:\n%s", json_array_size(ok),
		     h_slurp(con.log));
	h_sleep_ms(1000);
	json_decref(ok);
	ok = hook_requests(log, "/r");
	cr_expect_eq(json_array_size(ok), 10, "%zu requests for 10 audits (none twice)",
		     json_array_size(ok));
	for (size_t i = 0; i < 10 && i < json_array_size(ok); i++) {
		char id[24];

		snprintf(id, sizeof(id), "%lld",
			 (long long)json_integer_value(
			     json_object_get(json_array_get(audits, i), "id")));
		cr_expect_str_eq(jstr(json_array_get(ok, i), "id"), id);
	}
	json_decref(ok);
	json_decref(audits);
}

Test(outputs, backlog_over_its_bound_is_skipped_and_audited)
{
	char log[H_PATH], conf[1024];
	int port = h_free_port();

	snprintf(conf, sizeof(conf),
		 "output = hook webhook http://127.0.0.1:%d/b max_backlog=100\n", port);
	snprintf(log, sizeof(log), "%s/webhook-requests.jsonl", dir);
	start_console(conf);
	send_many(80, "new_program", "high", "a");
	send_many(80, "new_program", "high", "b");
	cr_assert_eq(
	    wait_count("SELECT count(*) FROM audits WHERE kind = 'output_dropped'", 1, 20000), 1,
	    "no output_dropped:\n%s", h_slurp(con.log));
	/*
	 * What a scraper sees while the sink is down, within 2 s of the skip
	 * (the next measure of the backlog is 5 s away): the 110 dropped, the
	 * 50 left (51 with the output_dropped audit, once measured again).
	 */
	const char *const hook[] = {"sink", "hook", "kind", "webhook", NULL};
	json_t *m = NULL;
	for (long long until = h_now_ms() + 2000; h_now_ms() < until; h_sleep_ms(100)) {
		json_decref(m);
		m = scrape();
		if (sample(m, "vigil_output_backlog", hook) > 0)
			break;
	}
	cr_expect_eq(sample(m, "vigil_output_dropped_total", hook), 110);
	cr_expect(sample(m, "vigil_output_backlog", hook) == 50 ||
		      sample(m, "vigil_output_backlog", hook) == 51,
		  "backlog %.0f while the sink is down, 50 (or 51) expected",
		  sample(m, "vigil_output_backlog", hook));
	cr_expect_eq(sample(m, "vigil_output_up", hook), 0);
	cr_expect_gt(sample(m, "vigil_output_failures_total", hook), 0);
	cr_expect_eq(sample(m, "vigil_output_delivered_total", hook), 0);
	json_decref(m);
	json_t *drops = api_audits("output_dropped");
	json_t *detail = json_object_get(json_array_get(drops, 0), "detail");
	json_t *audits = api_audits("new_program");
	cr_expect_str_eq(jstr(detail, "reason"), "backlog");
	cr_expect_eq(json_integer_value(json_object_get(detail, "count")), 110,
		     "skipped %lld of 160 (down to half of 100)",
		     (long long)json_integer_value(json_object_get(detail, "count")));
	cr_expect_eq(json_integer_value(json_object_get(detail, "first_id")),
		     json_integer_value(json_object_get(json_array_get(audits, 0), "id")));
	cr_expect(log_has("skipped 110 audit(s)", 1000));
	/* The receiver comes back: the newest 50, then the report. */
	start_webhook(port, false, "", log);
	json_t *ok = hook_wait_ok(log, "/b", 51, 60000);
	cr_assert_geq(json_array_size(ok), 51);
	for (size_t i = 0; i < 50; i++)
		cr_expect_eq(
		    json_integer_value(json_object_get(json_array_get(audits, 110 + i), "id")),
		    atoll(jstr(json_array_get(ok, i), "id")));
	cr_expect(strstr(jstr(json_array_get(ok, 50), "body"), "output_dropped") != NULL);
	json_decref(ok);
	json_decref(audits);
	json_decref(drops);
}

/*
 * max_age counts from when the console stored an audit (audits.stored_at),
 * and 1m is its least value: the test ages its first audits in the
 * database instead of waiting a minute.  The sink is down (nothing
 * listens), so they wait; at the next look at its bounds (every 5 s) the
 * ones older than max_age are skipped, the fresh ones after them kept,
 * and an output_dropped audit says which and why.
 */
Test(outputs, audits_older_than_max_age_are_skipped_and_audited)
{
	char conf[1024], sql[256];
	int port = h_free_port();

	snprintf(conf, sizeof(conf), "output = hook webhook http://127.0.0.1:%d/a max_age=1m\n",
		 port);
	start_console(conf);
	send_many(5, "new_program", "high", "old");
	json_t *old = api_audits("new_program");
	cr_assert_eq(json_array_size(old), 5);
	long long first = json_integer_value(json_object_get(json_array_get(old, 0), "id"));
	long long last = json_integer_value(json_object_get(json_array_get(old, 4), "id"));
	json_decref(old);
	snprintf(sql, sizeof(sql),
		 "UPDATE audits SET stored_at = now() - interval '2 minutes'"
		 " WHERE id BETWEEN %lld AND %lld",
		 first, last);
	PGconn *db = h_db(&con);
	PGresult *res = PQexec(db, sql);
	cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(db));
	cr_assert_str_eq(PQcmdTuples(res), "5");
	PQclear(res);
	PQfinish(db);
	send_many(3, "new_write", "medium", "fresh");

	cr_assert_eq(
	    wait_count("SELECT count(*) FROM audits WHERE kind = 'output_dropped'", 1, 15000), 1,
	    "no output_dropped:\n%s", h_slurp(con.log));
	json_t *drops = api_audits("output_dropped");
	json_t *d = json_array_get(drops, 0), *detail = json_object_get(d, "detail");
	cr_expect_str_eq(jstr(d, "severity"), "high");
	cr_expect_str_eq(jstr(d, "host_id"), "");
	cr_expect_str_eq(jstr(detail, "sink"), "hook");
	cr_expect_str_eq(jstr(detail, "sink_kind"), "webhook");
	cr_expect_str_eq(jstr(detail, "reason"), "age");
	cr_expect_eq(json_integer_value(json_object_get(detail, "count")), 5,
		     "skipped %lld: the aged 5 only, not the fresh 3",
		     (long long)json_integer_value(json_object_get(detail, "count")));
	cr_expect_eq(json_integer_value(json_object_get(detail, "first_id")), first);
	cr_expect_eq(json_integer_value(json_object_get(detail, "last_id")), last);
	cr_expect(strstr(jstr(detail, "why"), "longer than its max_age of 60 s") != NULL, "%s",
		  jstr(detail, "why"));
	cr_expect(log_has("skipped 5 audit(s)", 1000), "no log line:\n%s", h_slurp(con.log));
	/* The position passed the aged ones only: the fresh ones still wait for the receiver. */
	cr_expect_eq(db_count("SELECT last_id FROM output_cursors WHERE sink = 'hook'"), last);
	cr_expect_eq(db_count("SELECT dropped FROM output_cursors WHERE sink = 'hook'"), 5);
	cr_expect_eq(db_count("SELECT delivered FROM output_cursors WHERE sink = 'hook'"), 0);
	json_decref(drops);
}

Test(outputs, a_receiver_that_never_reads_does_not_slow_ingestion)
{
	char conf[1024], big[3000];
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), small = 4096, port;
	long long worst = 0, total = 0;
	const int batches = 60, per = 50;

	/* Accepts TCP (the kernel's backlog does) and never reads a byte. */
	cr_assert(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	cr_assert_eq(listen(fd, 16), 0);
	port = ntohs(sa.sin_port);
	snprintf(conf, sizeof(conf), "output = stuck syslog tcp://127.0.0.1:%d\n", port);
	start_console(conf);
	memset(big, 'x', sizeof(big) - 1);
	big[0] = '/';
	big[sizeof(big) - 1] = '\0';
	for (int b = 0; b < batches; b++) {
		struct dev d[50];
		char obj[50][3100];

		for (int i = 0; i < per; i++) {
			snprintf(obj[i], sizeof(obj[i]), "%s-%d-%d", big, b, i);
			d[i] = (struct dev){"new_write", "high", NULL, obj[i]};
		}
		long long ms = send_devs(d, per);
		total += ms;
		if (ms > worst)
			worst = ms;
	}
	cr_log_info("%d batches of %d audits (~%zu bytes each as syslog) acknowledged in %lld ms"
		    " on average, %lld ms at worst, while the receiver read nothing",
		    batches, per, sizeof(big) + 500, total / batches, worst);
	fprintf(stderr,
		"outputs: stuck receiver: batch of %d audits acknowledged in %lld ms on average,"
		" %lld ms at worst\n",
		per, total / batches, worst);
	cr_expect_lt(worst, 2000, "a batch waited %lld ms", worst);
	cr_expect_eq(db_count("SELECT count(*) FROM audits WHERE kind = 'new_write'"),
		     batches * per);
	/* The sink itself gave up on the receiver, and keeps the audits. */
	cr_expect(log_has("no progress within 10 s (the receiver is not reading)", 40000),
		  "the sink's write never timed out:\n%s", h_slurp(con.log));
	cr_expect_lt(db_count("SELECT delivered FROM output_cursors WHERE sink = 'stuck'"),
		     batches * per);
	close(fd);
}

/* ---- metrics ---- */

/*
 * A heartbeat with drops and spool counters, and when rules is not NULL the
 * rule set the host says it holds (an acknowledgement of that version).
 */
static void heartbeat_with_drops(const Vigil__RulesState *rules)
{
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Heartbeat hb = VIGIL__HEARTBEAT__INIT;
	Vigil__Counter c[4] = {VIGIL__COUNTER__INIT, VIGIL__COUNTER__INIT, VIGIL__COUNTER__INIT,
			       VIGIL__COUNTER__INIT};
	Vigil__Counter *cp[4] = {&c[0], &c[1], &c[2], &c[3]};

	c[0].name = "drops.ringbuf_full";
	c[0].value = 7;
	c[1].name = "drops.path_fault";
	c[1].value = 5;
	c[2].name = "delivery.spool_pending";
	c[2].value = 3;
	c[3].name = "delivery.spool_bytes";
	c[3].value = 4096;
	hb.n_counters = 4;
	hb.counters = cp;
	hb.rules = (Vigil__RulesState *)rules;
	env.body_case = VIGIL__ENVELOPE__BODY_HEARTBEAT;
	env.heartbeat = &hb;
	vigil__reply__free_unpacked(send_ok(&env), NULL);
}

/* One batch of n file events (no deviations), as a defender spools them. */
static void send_events(int n)
{
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Batch b = VIGIL__BATCH__INIT;
	Vigil__Event *evs = calloc((size_t)n, sizeof(*evs));
	Vigil__Event **evp = calloc((size_t)n, sizeof(*evp));
	char(*json)[256] = calloc((size_t)n, sizeof(*json));
	struct timespec now;

	cr_assert(evs != NULL && evp != NULL && json != NULL);
	clock_gettime(CLOCK_REALTIME, &now);
	for (int i = 0; i < n; i++) {
		vigil__event__init(&evs[i]);
		evs[i].type = 4;
		evs[i].ts_ns =
		    (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec + (uint64_t)i;
		evs[i].pid = 801;
		evs[i].ppid = 1;
		evs[i].uid = 33;
		evs[i].comm = "nginx";
		snprintf(json[i], sizeof(json[i]),
			 "{\"type\":\"file\",\"pid\":801,\"op\":\"open\",\"path\":\"/srv/ev-%d\","
			 "\"write\":false,\"result\":3,\"exe\":\"/usr/sbin/nginx\"}",
			 i);
		evs[i].json = json[i];
		evp[i] = &evs[i];
	}
	b.n_events = (size_t)n;
	b.events = evp;
	env.seq = ++seq;
	env.body_case = VIGIL__ENVELOPE__BODY_BATCH;
	env.batch = &b;
	vigil__reply__free_unpacked(send_ok(&env), NULL);
	free(evs);
	free(evp);
	free(json);
}

Test(outputs, metrics_need_the_token_and_parse_as_prometheus_text)
{
	char conf[1024], file[H_PATH];
	char *body = NULL;
	json_t *m = NULL, *doc = NULL;
	const int nevents = 7;
	const char *const connected[] = {"state", "connected", NULL};
	const char *const disconnected[] = {"state", "disconnected", NULL};

	snprintf(file, sizeof(file), "%s/m.jsonl", dir);
	snprintf(conf, sizeof(conf), "output = archive jsonl %s\n", file);
	start_console(conf);
	/* Before anything is sent: the counts to compare with, and no rule set to lag behind. */
	m = scrape();
	double events0 = sample(m, "vigil_events_ingested_total", NULL);
	cr_assert_geq(events0, 0, "no vigil_events_ingested_total");
	cr_expect_eq(sample(m, "vigil_rules_version", NULL), 0);
	cr_expect_eq(sample(m, "vigil_hosts_rules_lagging", connected), 0);
	json_decref(m);
	m = NULL;

	send_many(3, "new_program", "high", "m");
	send_many(2, "new_write", "medium", "m");
	send_events(nevents);
	heartbeat_with_drops(NULL);
	/* A new rule set (version 1) that the host, which reported no rule set, does not hold. */
	int status = h_api_request(&con, &pki, "POST", "/api/v1/rules",
				   "{\"name\":\"m-rule\",\"scope\":{\"hosts\":[\"host-*\"]},"
				   "\"files\":{}}",
				   NULL, con.token, &doc);
	cr_assert_eq(status, 201, "POST /api/v1/rules: %d", status);
	long long version = json_integer_value(json_object_get(doc, "version"));
	json_decref(doc);
	cr_assert_gt(version, 0);

	cr_expect_eq(get_metrics(NULL, &body), 401);
	free(body);
	cr_expect_eq(get_metrics("0123456789abcdef0123456789abcdef", &body), 401);
	free(body);
	/* The audits are counted every 5 s: wait for the count and the sink. */
	long long until = h_now_ms() + 30000, t0, best = 1000000;
	while (h_now_ms() < until) {
		t0 = h_now_ms();
		cr_assert_eq(get_metrics(con.token, &body), 200);
		if (h_now_ms() - t0 < best)
			best = h_now_ms() - t0;
		json_decref(m);
		m = h_prom_parse(dir, body);
		free(body);
		if (sample(m, "vigil_audits_total",
			   (const char *const[]){"kind", "new_program", "severity", "high",
						 NULL}) == 3 &&
		    sample(m, "vigil_output_delivered_total",
			   (const char *const[]){"sink", "archive", NULL}) == 5)
			break;
		h_sleep_ms(500);
	}
	fprintf(stderr, "outputs: GET /metrics answered in %lld ms at best (one host)\n", best);
	cr_expect_eq(sample(m, "vigil_hosts", connected), 1);
	cr_expect_eq(sample(m, "vigil_hosts", disconnected), 0);
	cr_expect_eq(sample(m, "vigil_audits_total",
			    (const char *const[]){"kind", "new_program", "severity", "high", NULL}),
		     3);
	cr_expect_eq(sample(m, "vigil_audits_total",
			    (const char *const[]){"kind", "new_write", "severity", "medium", NULL}),
		     2);
	cr_expect_eq(
	    sample(m, "vigil_events_lost_total", (const char *const[]){"host", "host-a", NULL}),
	    12);
	cr_expect_eq(
	    sample(m, "vigil_spool_pending_batches", (const char *const[]){"host", "host-a", NULL}),
	    3);
	cr_expect_eq(sample(m, "vigil_spool_bytes", (const char *const[]){"host", "host-a", NULL}),
		     4096);
	cr_expect_eq(sample(m, "vigil_output_delivered_total",
			    (const char *const[]){"sink", "archive", "kind", "jsonl", NULL}),
		     5);
	cr_expect_eq(
	    sample(m, "vigil_output_backlog", (const char *const[]){"sink", "archive", NULL}), 0);
	cr_expect_eq(
	    sample(m, "vigil_output_dropped_total", (const char *const[]){"sink", "archive", NULL}),
	    0);
	cr_expect_eq(sample(m, "vigil_output_up", (const char *const[]){"sink", "archive", NULL}),
		     1);
	cr_expect_eq(
	    sample(m, "vigil_output_active", (const char *const[]){"sink", "archive", NULL}), 1);
	cr_expect_eq(sample(m, "vigil_batches_ingested_total",
			    (const char *const[]){"result", "stored", NULL}),
		     3);
	cr_expect_eq(sample(m, "vigil_link_connections", NULL), 1);
	cr_expect_eq(sample(m, "vigil_database_up", NULL), 1);
	/* Each event of the batch, once: deviations are audits, not events. */
	cr_expect_eq(sample(m, "vigil_events_ingested_total", NULL) - events0, nevents,
		     "vigil_events_ingested_total went from %.0f to %.0f for %d events", events0,
		     sample(m, "vigil_events_ingested_total", NULL), nevents);
	/* The host holds no rule set (none reported): one connected host lags behind. */
	cr_expect_eq(sample(m, "vigil_rules_version", NULL), (double)version);
	cr_expect_eq(sample(m, "vigil_hosts_rules_lagging", connected), 1);
	cr_expect_eq(sample(m, "vigil_hosts_rules_lagging", disconnected), 0);
	json_decref(m);

	/* It reports the new version (what a defender does once it applied it): no longer. */
	Vigil__RulesState rs = VIGIL__RULES_STATE__INIT;
	rs.version = (uint64_t)version;
	rs.protocol = 1;
	heartbeat_with_drops(&rs);
	m = scrape();
	cr_expect_eq(sample(m, "vigil_hosts_rules_lagging", connected), 0,
		     "a host that acknowledged version %lld still counts as lagging", version);
	cr_expect_eq(sample(m, "vigil_hosts_rules_lagging", disconnected), 0);
	cr_expect_eq(sample(m, "vigil_rules_version", NULL), (double)version);
	json_decref(m);
}

Test(outputs, a_bad_outputs_file_is_refused_naming_its_line)
{
	char path[H_PATH], log[H_PATH], state[H_PATH];
	const char *text =
	    "# sinks\n"
	    "output = siem syslog tcp://127.0.0.1:6514\n"
	    "output = hook webhook https://hooks.example/T/secret-token colour=red\n";

	h_write_file(dir, "bad.conf", text, path);
	snprintf(log, sizeof(log), "%s/bad.log", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	char *argv[] = {(char *)h_bin("vigil-console"),
			"--state-dir",
			state,
			"--outputs",
			path,
			"--api",
			"https://127.0.0.1:1",
			"--listen",
			"tls+tcp://127.0.0.1:1",
			NULL};
	int rc = h_run(log, 30000, argv);
	char *out = h_slurp(log);
	char want[H_PATH + 64];

	snprintf(want, sizeof(want), "%s:3: output hook: unknown option 'colour'", path);
	cr_expect_eq(rc, 1, "exit %d:\n%s", rc, out);
	cr_expect(strstr(out, want) != NULL, "%s", out);
	cr_expect(strstr(out, "secret-token") == NULL, "the webhook's URL was logged:\n%s", out);
	free(out);
}
