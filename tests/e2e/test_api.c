/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTPS API under load and under a stuck database, end to end: a real
 * vigil-console with its private PostgreSQL, asked by the clients operators
 * use (Python's urllib, a raw TLS socket, vigilctl), all of which send
 * "Connection: close".  Every answer must arrive whole; a query stuck on a
 * lock must end with the timeout error and must not stall the defenders'
 * link.  The Python clients are small scripts written into the test's
 * directory.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fsutil.h"
#include "harness.h"

static char dir[H_PATH];
static struct h_pki pki;
static struct h_console con;
static struct h_link link_a;
static PGconn *locker;	 /* holds a lock on audits in the stuck-database test */
static pid_t python_pid; /* a client running in the background */

static void setup(void)
{
	h_tmpdir(dir);
	h_pki_make(dir, &pki);
	h_console_start(&con, dir, &pki, NULL);
	h_link_open(&link_a, &con, &pki, pki.host_cert, pki.host_key);
}

static void teardown(void)
{
	if (python_pid > 0)
		h_stop(python_pid, SIGKILL, 5000);
	python_pid = 0;
	if (locker != NULL)
		PQfinish(locker);
	locker = NULL;
	h_link_close(&link_a);
	if (con.pid > 0)
		h_console_kill(&con, SIGTERM);
	if (!getenv("VIGIL_KEEP_TEST_DIRS"))
		h_rmrf(dir);
}

TestSuite(api, .init = setup, .fini = teardown, .timeout = 400);

/* Run sql on the console's database; it must succeed. */
static void db_exec(const char *sql)
{
	PGconn *c = h_db(&con);
	PGresult *r = PQexec(c, sql);

	cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
		  "%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
}

/*
 * n audits of host-a, each about detail_pad + 300 bytes of JSON in the
 * API's answer, so that /api/v1/audits?limit=1000 is large.
 */
static void seed_audits(int n, int detail_pad)
{
	char sql[1024];

	snprintf(
	    sql, sizeof(sql),
	    "INSERT INTO audits (host_id, kind, severity, summary, detail)"
	    " SELECT 'host-a', 'test_bulk', 'low', 'bulk audit ' || g || ' ' || repeat('s', 100),"
	    " jsonb_build_object('n', g, 'pad', repeat('d', %d))"
	    " FROM generate_series(1, %d) g",
	    detail_pad, n);
	db_exec(sql);
}

static long long jint(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	cr_assert(json_is_integer(v), "%s is not an integer", k);
	return (long long)json_integer_value(v);
}

/* urllib, as operators' scripts use it: a new connection and "Connection: close" per request. */
static const char many_py[] =
    "import json, ssl, sys, time, urllib.request\n"
    "base, ca, token, n, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), "
    "sys.argv[5]\n"
    "paths = sys.argv[6:]\n"
    "ctx = ssl.create_default_context(cafile=ca)\n"
    "whole, bad, t0 = 0, [], time.monotonic()\n"
    "for i in range(n):\n"
    "    path = paths[i % len(paths)]\n"
    "    req = urllib.request.Request(base + path, headers={'Authorization': 'Bearer ' + "
    "token})\n"
    "    try:\n"
    "        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:\n"
    "            body = r.read()\n"
    "            cl = int(r.headers['Content-Length'])\n"
    "            json.loads(body)\n"
    "            if r.status != 200 or len(body) != cl:\n"
    "                raise ValueError('status %d, %d of %d bytes' % (r.status, len(body), cl))\n"
    "            whole += 1\n"
    "    except Exception as e:\n"
    "        bad.append(('%s (request %d): %s: %s' % (path, i, type(e).__name__, e))[:300])\n"
    "json.dump({'whole': whole, 'bad': len(bad), 'first': bad[:5],\n"
    "           'ms': int((time.monotonic() - t0) * 1000)}, open(out, 'w'))\n";

Test(api, urllib_gets_every_answer_whole)
{
	char script[H_PATH], out[H_PATH], log[H_PATH], n[16];
	json_t *doc;

	seed_audits(1000, 150);
	h_write_file(dir, "many.py", many_py, script);
	snprintf(out, sizeof(out), "%s/many.json", dir);
	snprintf(log, sizeof(log), "%s/many.log", dir);
	snprintf(n, sizeof(n), "%d", 2000);
	char *argv[] = {"/usr/bin/python3",
			script,
			con.api,
			pki.ca,
			con.token,
			n,
			out,
			"/api/v1/hosts",
			"/api/v1/audits?limit=1000",
			NULL};
	cr_assert_eq(h_run(log, 360000, argv), 0, "many.py failed:\n%s", h_slurp(log));
	doc = h_load_result(out, log);
	json_t *first = json_object_get(doc, "first");
	char *why = json_dumps(first, JSON_INDENT(1));
	cr_log_info("urllib: %lld/2000 whole in %lld ms", jint(doc, "whole"), jint(doc, "ms"));
	cr_expect_eq(jint(doc, "whole"), 2000, "%lld of 2000 answers cut or lost, e.g. %s",
		     jint(doc, "bad"), why);
	free(why);
	json_decref(doc);
}

/*
 * A raw TLS client that reads 1 KiB every 3 ms through a small receive
 * buffer: rounds answers of each path given (path rounds ...).  After the
 * last round of the first path it keeps the connection open, reading until
 * the server closes: the server's wait for the client is bounded.
 */
static const char slow_py[] =
    "import json, socket, ssl, sys, time\n"
    "host, port, ca, token, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], "
    "sys.argv[5]\n"
    "plan = [(sys.argv[i], int(sys.argv[i + 1])) for i in range(6, len(sys.argv), 2)]\n"
    "ctx = ssl.create_default_context(cafile=ca)\n"
    "res = []\n"
    "for p, (path, rounds) in enumerate(plan):\n"
    "  for rnd in range(rounds):\n"
    "    wait_close = p == 0 and rnd == rounds - 1\n"
    "    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
    "    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)\n"
    "    raw.settimeout(30)\n"
    "    raw.connect((host, port))\n"
    "    s = ctx.wrap_socket(raw, server_hostname=host)\n"
    "    s.sendall(('GET %s HTTP/1.1\\r\\nHost: %s:%d\\r\\nAuthorization: Bearer %s\\r\\n'\n"
    "               'Connection: close\\r\\n\\r\\n' % (path, host, port, token)).encode())\n"
    "    buf, err, head, cl, body = b'', None, b'', -1, b''\n"
    "    try:\n"
    "        while b'\\r\\n\\r\\n' not in buf:\n"
    "            chunk = s.recv(1024)\n"
    "            if not chunk:\n"
    "                break\n"
    "            buf += chunk\n"
    "            time.sleep(0.003)\n"
    "        head, _, body = buf.partition(b'\\r\\n\\r\\n')\n"
    "        for line in head.split(b'\\r\\n')[1:]:\n"
    "            k, _, v = line.partition(b':')\n"
    "            if k.strip().lower() == b'content-length':\n"
    "                cl = int(v)\n"
    "        while len(body) < cl:\n"
    "            chunk = s.recv(1024)\n"
    "            if not chunk:\n"
    "                break\n"
    "            body += chunk\n"
    "            time.sleep(0.003)\n"
    "    except (ssl.SSLError, OSError) as e:\n"
    "        err = '%s: %s' % (type(e).__name__, e)\n"
    "    try:\n"
    "        json.loads(body)\n"
    "    except Exception as e:\n"
    "        err = err or '%s: %s' % (type(e).__name__, e)\n"
    "    eof_ms = -1\n"
    "    if wait_close:\n"
    "        t = time.monotonic()\n"
    "        try:\n"
    "            while s.recv(1024):\n"
    "                pass\n"
    "        except (ssl.SSLError, OSError):\n"
    "            pass\n"
    "        eof_ms = int((time.monotonic() - t) * 1000)\n"
    "    s.close()\n"
    "    res.append({'path': path, 'status': head.split(b'\\r\\n')[0].decode(errors='replace'),\n"
    "                'content_length': cl, 'got': len(body), 'error': err, 'eof_ms': eof_ms})\n"
    "json.dump(res, open(out, 'w'))\n";

/*
 * Large answers (several TLS records) and small ones (the headers and the
 * body in separate records), read slowly: each arrives whole.
 */
Test(api, a_slow_reader_gets_whole_answers)
{
	char script[H_PATH], out[H_PATH], log[H_PATH], port[16];
	const char *large = "/api/v1/audits?limit=1000";
	int whole = 0, large_whole = 0;
	json_t *doc, *r;
	size_t i;

	seed_audits(1000, 150);
	h_write_file(dir, "slow.py", slow_py, script);
	snprintf(out, sizeof(out), "%s/slow.json", dir);
	snprintf(log, sizeof(log), "%s/slow.log", dir);
	snprintf(port, sizeof(port), "%d", con.api_port);
	char *argv[] = {"/usr/bin/python3", script, "127.0.0.1",     port,  pki.ca, con.token, out,
			(char *)large,	    "4",    "/api/v1/hosts", "150", NULL};
	cr_assert_eq(h_run(log, 240000, argv), 0, "slow.py failed:\n%s", h_slurp(log));
	doc = h_load_result(out, log);
	cr_assert_eq(json_array_size(doc), 154);
	json_array_foreach(doc, i, r)
	{
		const char *path = json_string_value(json_object_get(r, "path"));
		json_t *e = json_object_get(r, "error");
		bool ok = strcmp(json_string_value(json_object_get(r, "status")),
				 "HTTP/1.1 200 OK") == 0 &&
			  jint(r, "got") == jint(r, "content_length") && json_is_null(e);

		cr_expect(ok, "round %zu (%s): %s, %lld of %lld bytes (%s)", i, path,
			  json_string_value(json_object_get(r, "status")), jint(r, "got"),
			  jint(r, "content_length"), json_is_string(e) ? json_string_value(e) : "");
		whole += ok;
		if (strcmp(path, large) == 0) {
			cr_expect_gt(jint(r, "content_length"), 300 * 1024);
			large_whole += ok;
		}
	}
	cr_log_info("slow reader: %d/154 whole (%d/4 large of %lld bytes); the server closed "
		    "an idle client after %lld ms",
		    whole, large_whole, jint(json_array_get(doc, 0), "content_length"),
		    jint(json_array_get(doc, 3), "eof_ms"));
	/* A client that never closes is closed by the server after its bounded linger. */
	cr_expect_lt(jint(json_array_get(doc, 3), "eof_ms"), 15000);
	json_decref(doc);
}

/*
 * Many urllib requests at once; one JSON line per answer, written as each
 * arrives.  The first `impatient` clients give up after a second (and close
 * their connection before the console answers).
 */
static const char burst_py[] =
    "import json, ssl, sys, threading, time, urllib.request, urllib.error\n"
    "base, ca, token, path, n, impatient, out = sys.argv[1], sys.argv[2], sys.argv[3], "
    "sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]\n"
    "ctx = ssl.create_default_context(cafile=ca)\n"
    "lock, f = threading.Lock(), open(out, 'w')\n"
    "def one(i):\n"
    "    t, rec = time.monotonic(), {'i': i, 'impatient': i < impatient}\n"
    "    req = urllib.request.Request(base + path, headers={'Authorization': 'Bearer ' + "
    "token})\n"
    "    try:\n"
    "        with urllib.request.urlopen(req, context=ctx, timeout=1 if i < impatient else "
    "120) as r:\n"
    "            rec.update(status=r.status, body=r.read().decode(), "
    "retry_after=r.headers.get('Retry-After'))\n"
    "    except urllib.error.HTTPError as e:\n"
    "        rec.update(status=e.code, body=e.read().decode(), "
    "retry_after=e.headers.get('Retry-After'))\n"
    "    except Exception as e:\n"
    "        rec.update(status=-1, body='%s: %s' % (type(e).__name__, e))\n"
    "    rec['ms'] = int((time.monotonic() - t) * 1000)\n"
    "    with lock:\n"
    "        f.write(json.dumps(rec) + '\\n')\n"
    "        f.flush()\n"
    "threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]\n"
    "for t in threads:\n"
    "    t.start()\n"
    "for t in threads:\n"
    "    t.join()\n";

/* The answers burst.py has written so far, as a JSON array (caller decrefs). */
static json_t *burst_answers(const char *path)
{
	char *text = h_slurp(path), *line, *save = NULL;
	json_t *arr = json_array();

	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		json_t *o = json_loads(line, 0, NULL);
		if (o != NULL)
			json_array_append_new(arr, o);
	}
	free(text);
	return arr;
}

static int count_status(json_t *answers, int status)
{
	json_t *a;
	size_t i;
	int n = 0;

	json_array_foreach(answers, i, a) n +=
	    json_integer_value(json_object_get(a, "status")) == status;
	return n;
}

/* One request of the defenders' protocol; returns how long its reply took (ms). */
static long long link_round_trip(Vigil__Envelope *env)
{
	long long t0 = h_now_ms();
	Vigil__Reply *r = h_link_request(&link_a, env);
	long long ms = h_now_ms() - t0;

	cr_assert_eq(r->status, VIGIL__REPLY__STATUS__OK, "reply status %d: %s", r->status,
		     r->error);
	vigil__reply__free_unpacked(r, NULL);
	return ms;
}

static long long hello(void)
{
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Hello h = VIGIL__HELLO__INIT;

	h.hostname = "web-1";
	env.body_case = VIGIL__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	return link_round_trip(&env);
}

static long long heartbeat(void)
{
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Heartbeat hb = VIGIL__HEARTBEAT__INIT;

	env.body_case = VIGIL__ENVELOPE__BODY_HEARTBEAT;
	env.heartbeat = &hb;
	return link_round_trip(&env);
}

Test(api, a_stuck_query_times_out_and_never_stalls_the_defenders)
{
	char script[H_PATH], out[H_PATH], log[H_PATH];
	const int n = 64;
	json_t *answers = NULL, *a;
	long long worst = 0, t0;
	PGresult *r;
	size_t i;

	hello();
	seed_audits(10, 10);
	/* Another client holds audits: the API's query waits for its lock. */
	locker = h_db(&con);
	r = PQexec(locker, "BEGIN; LOCK TABLE audits IN ACCESS EXCLUSIVE MODE");
	cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(locker));
	PQclear(r);

	h_write_file(dir, "burst.py", burst_py, script);
	snprintf(out, sizeof(out), "%s/burst.jsonl", dir);
	snprintf(log, sizeof(log), "%s/burst.log", dir);
	char count[16];
	snprintf(count, sizeof(count), "%d", n);
	char *argv[] = {"/usr/bin/python3",	  script, con.api, pki.ca, con.token,
			"/api/v1/audits?limit=5", count,  "4",	   out,	   NULL};
	t0 = h_now_ms();
	python_pid = h_spawn(log, argv);
	h_sleep_ms(3000);

	/* With the API stuck, the link still answers at once. */
	for (int k = 0; k < 5; k++) {
		long long ms = k == 0 ? hello() : heartbeat();
		worst = ms > worst ? ms : worst;
	}
	cr_log_info("defender requests while the API is stuck: slowest %lld ms", worst);
	cr_expect_lt(worst, 2000, "a defender request took %lld ms while the API was stuck", worst);

	/* Requests beyond the API's workers and queue are refused at once, with Retry-After. */
	answers = burst_answers(out);
	int refused = count_status(answers, 503);
	cr_expect_gt(refused, 0, "none of %d requests was refused while the API was full", n);
	json_array_foreach(answers, i, a)
	{
		if (json_integer_value(json_object_get(a, "status")) != 503)
			continue;
		cr_expect(json_is_string(json_object_get(a, "retry_after")),
			  "503 without Retry-After");
		json_t *body = json_loads(json_string_value(json_object_get(a, "body")), 0, NULL);
		cr_expect(json_is_string(json_object_get(body, "error")), "503 body: %s",
			  json_string_value(json_object_get(a, "body")));
		json_decref(body);
	}
	json_decref(answers);

	/* The stuck queries end with the timeout error. */
	answers = NULL;
	while (h_now_ms() - t0 < 40000) {
		json_decref(answers);
		answers = burst_answers(out);
		if (count_status(answers, 504) > 0)
			break;
		h_sleep_ms(200);
	}
	cr_assert_gt(count_status(answers, 504), 0, "no query timed out in 40 s:\n%s",
		     h_slurp(log));
	json_array_foreach(answers, i, a)
	{
		if (json_integer_value(json_object_get(a, "status")) != 504)
			continue;
		json_t *body = json_loads(json_string_value(json_object_get(a, "body")), 0, NULL);
		const char *msg = json_string_value(json_object_get(body, "error"));
		cr_expect(msg != NULL && strstr(msg, "timed out") != NULL, "504 body: %s",
			  json_string_value(json_object_get(a, "body")));
		cr_expect_geq(json_integer_value(json_object_get(a, "ms")), 9000,
			      "timed out after %lld ms",
			      (long long)json_integer_value(json_object_get(a, "ms")));
		json_decref(body);
	}
	json_decref(answers);

	/* The lock goes: everything still waiting is answered. */
	r = PQexec(locker, "ROLLBACK");
	PQclear(r);
	for (int st = 0; !h_exited(python_pid, &st) && h_now_ms() - t0 < 90000;)
		h_sleep_ms(100);
	python_pid = 0;
	answers = burst_answers(out);
	cr_assert_eq(json_array_size(answers), (size_t)n, "%zu of %d answered:\n%s",
		     json_array_size(answers), n, h_slurp(log));
	json_array_foreach(answers, i, a)
	{
		int st = (int)json_integer_value(json_object_get(a, "status"));
		bool impatient = json_is_true(json_object_get(a, "impatient"));
		cr_expect(st == 200 || st == 503 || st == 504 || (impatient && st == -1),
			  "request %zu: %d %s", i, st,
			  json_string_value(json_object_get(a, "body")));
	}
	cr_log_info("%d requests: %d answered 200, %d refused (503), %d timed out (504)", n,
		    count_status(answers, 200), count_status(answers, 503),
		    count_status(answers, 504));
	cr_expect_gt(count_status(answers, 200), 0);
	json_decref(answers);
	cr_expect_lt(heartbeat(), 2000);

	/*
	 * Nothing is left stuck, not even the answers to the clients that gave
	 * up: the console stops by itself, at once.
	 */
	h_link_close(&link_a);
	t0 = h_now_ms();
	int st = h_stop(con.pid, SIGTERM, 20000);
	con.pid = 0;
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "vigil-console did not stop by itself (wait status %#x):\n%s", st,
		  h_slurp(con.log));
	cr_expect_lt(h_now_ms() - t0, 10000, "vigil-console took %lld ms to stop", h_now_ms() - t0);
}

/*
 * A TCP relay in front of the API that counts connections: a client that
 * retried would show more connections than runs.
 */
struct relay {
	int lfd, port, target;
	int conns, active;
	pthread_mutex_t lk;
	pthread_t thr;
	volatile int stop;
};

struct relay_pair {
	struct relay *r;
	int a, b;
};

/* Copy both ways until both sides have closed; a side's EOF is passed on as a half-close. */
static void *relay_pipe(void *arg)
{
	struct relay_pair *p = arg;
	struct pollfd pf[2] = {{.fd = p->a, .events = POLLIN}, {.fd = p->b, .events = POLLIN}};
	char buf[65536];
	int open = 2;

	while (open > 0 && poll(pf, 2, 30000) > 0) {
		for (int k = 0; k < 2; k++) {
			if (pf[k].fd < 0 || pf[k].revents == 0)
				continue;
			ssize_t n = read(pf[k].fd, buf, sizeof(buf));
			if (n <= 0) {
				shutdown(k == 0 ? p->b : p->a, SHUT_WR);
				pf[k].fd = -1;
				open--;
				continue;
			}
			for (ssize_t off = 0; off < n;) {
				ssize_t w =
				    write(k == 0 ? p->b : p->a, buf + off, (size_t)(n - off));
				if (w <= 0)
					break;
				off += w;
			}
		}
	}
	close(p->a);
	close(p->b);
	pthread_mutex_lock(&p->r->lk);
	p->r->active--;
	pthread_mutex_unlock(&p->r->lk);
	free(p);
	return NULL;
}

static void *relay_main(void *arg)
{
	struct relay *r = arg;

	while (!r->stop) {
		struct pollfd pf = {.fd = r->lfd, .events = POLLIN};
		struct sockaddr_in sa = {.sin_family = AF_INET,
					 .sin_port = htons((uint16_t)r->target),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		struct relay_pair *p;
		pthread_t t;
		int c, s;

		if (poll(&pf, 1, 100) <= 0)
			continue;
		if ((c = accept(r->lfd, NULL, NULL)) < 0)
			continue;
		s = socket(AF_INET, SOCK_STREAM, 0);
		if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			close(c);
			if (s >= 0)
				close(s);
			continue;
		}
		p = malloc(sizeof(*p));
		*p = (struct relay_pair){.r = r, .a = c, .b = s};
		pthread_mutex_lock(&r->lk);
		r->conns++;
		r->active++;
		pthread_mutex_unlock(&r->lk);
		if (pthread_create(&t, NULL, relay_pipe, p) == 0) {
			pthread_detach(t);
		} else {
			close(c);
			close(s);
			free(p);
			pthread_mutex_lock(&r->lk);
			r->active--;
			pthread_mutex_unlock(&r->lk);
		}
	}
	return NULL;
}

static void relay_start(struct relay *r, int target)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);

	memset(r, 0, sizeof(*r));
	r->target = target;
	pthread_mutex_init(&r->lk, NULL);
	r->lfd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert(r->lfd >= 0);
	cr_assert_eq(bind(r->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(r->lfd, 64), 0);
	cr_assert_eq(getsockname(r->lfd, (struct sockaddr *)&sa, &len), 0);
	r->port = ntohs(sa.sin_port);
	cr_assert_eq(pthread_create(&r->thr, NULL, relay_main, r), 0);
}

static void relay_stop(struct relay *r)
{
	r->stop = 1;
	pthread_join(r->thr, NULL);
	close(r->lfd);
	for (int i = 0; i < 100; i++) {
		pthread_mutex_lock(&r->lk);
		int active = r->active;
		pthread_mutex_unlock(&r->lk);
		if (active == 0)
			break;
		h_sleep_ms(50);
	}
}

Test(api, vigilctl_gets_whole_answers_without_retrying)
{
	char api[64], out[H_PATH], tokfile[H_PATH];
	struct relay relay;
	const int runs = 200;
	int whole = 0, conns;
	long long t0;

	hello();
	seed_audits(1000, 150);
	relay_start(&relay, con.api_port);
	snprintf(api, sizeof(api), "https://127.0.0.1:%d", relay.port);
	snprintf(out, sizeof(out), "%s/vigilctl.out", dir);
	snprintf(tokfile, sizeof(tokfile), "%s/api-token", con.state);
	t0 = h_now_ms();
	for (int i = 0; i < runs; i++) {
		bool large = i % 2 == 1;
		char *argv[12] = {(char *)h_bin("vigilctl"),
				  "--api",
				  api,
				  "--ca",
				  pki.ca,
				  "--token-file",
				  tokfile};
		int k = 7;
		json_t *doc;
		char *text;
		int rc;

		if (large) {
			argv[k++] = "audits";
			argv[k++] = "--limit";
			argv[k++] = "1000";
		} else {
			argv[k++] = "hosts";
		}
		argv[k++] = "--json";
		argv[k] = NULL;
		unlink(out);
		rc = h_run(out, 30000, argv);
		text = h_slurp(out);
		doc = json_loads(text, 0, NULL);
		if (rc == 0 && json_is_array(doc) && json_array_size(doc) == (large ? 1000u : 1u))
			whole++;
		else
			cr_log_error("vigilctl run %d (%s) exited %d:\n%.300s", i,
				     large ? "audits" : "hosts", rc, text);
		json_decref(doc);
		free(text);
	}
	relay_stop(&relay);
	pthread_mutex_lock(&relay.lk);
	conns = relay.conns;
	pthread_mutex_unlock(&relay.lk);
	cr_log_info("vigilctl: %d/%d whole, %d connections, %lld ms", whole, runs, conns,
		    h_now_ms() - t0);
	cr_expect_eq(whole, runs, "%d of %d vigilctl runs got no whole answer", runs - whole, runs);
	cr_expect_eq(conns, runs, "%d connections for %d runs: vigilctl retried", conns, runs);
}

Test(api, an_answer_over_the_cap_is_a_clear_error_never_a_cut_body)
{
	json_t *doc = NULL;
	int status;

	/* 1000 audits of ~20 KiB: about 20 MiB of JSON, over the 16 MiB cap. */
	seed_audits(1000, 20000);
	status = h_api_get(&con, &pki, "/api/v1/audits?limit=1000", con.token, &doc);
	cr_assert_eq(status, 500, "GET of a ~20 MiB answer: %d", status);
	const char *msg = json_string_value(json_object_get(doc, "error"));
	cr_expect(msg != NULL && strstr(msg, "16 MiB") != NULL && strstr(msg, "limit") != NULL,
		  "error: %s", msg != NULL ? msg : "(none)");
	json_decref(doc);
	/* A page that fits is still served. */
	doc = NULL;
	cr_expect_eq(h_api_get(&con, &pki, "/api/v1/audits?limit=100", con.token, &doc), 200);
	cr_expect_eq(json_array_size(json_object_get(doc, "audits")), 100);
	json_decref(doc);
}

/* Requests nng would answer itself (unknown paths, wrong methods) get the API's JSON too. */
static const char odd_py[] =
    "import json, ssl, sys, urllib.request, urllib.error\n"
    "base, ca, token, out = sys.argv[1:5]\n"
    "ctx = ssl.create_default_context(cafile=ca)\n"
    "res = []\n"
    "for method, path in (('GET', '/api/v1/nothing'), ('POST', '/api/v1/hosts'), ('HEAD', "
    "'/api/v1/hosts'), ('DELETE', '/api/v1/audits')):\n"
    "    req = urllib.request.Request(base + path, method=method, data=b'{}' if method == "
    "'POST' else None,\n"
    "                                 headers={'Authorization': 'Bearer ' + token})\n"
    "    try:\n"
    "        r = urllib.request.urlopen(req, context=ctx, timeout=30)\n"
    "    except urllib.error.HTTPError as e:\n"
    "        r = e\n"
    "    body = r.read()\n"
    "    res.append({'method': method, 'path': path, 'status': r.status,\n"
    "                'type': r.headers.get('Content-Type'), 'length': "
    "r.headers.get('Content-Length'),\n"
    "                'body': body.decode(errors='replace')})\n"
    "json.dump(res, open(out, 'w'))\n";

/* Paths outside /api/ are the web UI's (console/api/api_ui.c): its pages, or its 404. */
Test(api, every_answer_is_json_even_for_unknown_paths_and_methods)
{
	char script[H_PATH], out[H_PATH], log[H_PATH];
	json_t *doc, *r;
	size_t i;
	static const int want[] = {404, 405, 200, 405};

	h_write_file(dir, "odd.py", odd_py, script);
	snprintf(out, sizeof(out), "%s/odd.json", dir);
	snprintf(log, sizeof(log), "%s/odd.log", dir);
	char *argv[] = {"/usr/bin/python3", script, con.api, pki.ca, con.token, out, NULL};
	cr_assert_eq(h_run(log, 60000, argv), 0, "odd.py failed:\n%s", h_slurp(log));
	doc = h_load_result(out, log);
	cr_assert_eq(json_array_size(doc), 4);
	json_array_foreach(doc, i, r)
	{
		const char *method = json_string_value(json_object_get(r, "method"));
		const char *type = json_string_value(json_object_get(r, "type"));
		const char *body = json_string_value(json_object_get(r, "body"));

		cr_expect_eq(jint(r, "status"), want[i], "%s %s: %lld", method,
			     json_string_value(json_object_get(r, "path")), jint(r, "status"));
		cr_expect(type != NULL && strcmp(type, "application/json") == 0, "%s: type %s",
			  method, type != NULL ? type : "(none)");
		if (strcmp(method, "HEAD") == 0) {
			/* No body, but the length of the GET's. */
			cr_expect_str_eq(body, "");
			cr_expect(json_is_string(json_object_get(r, "length")) &&
				      atoi(json_string_value(json_object_get(r, "length"))) > 0,
				  "HEAD without Content-Length");
			continue;
		}
		json_t *j = json_loads(body, 0, NULL);
		cr_expect(json_is_string(json_object_get(j, "error")), "%s: body %s", method, body);
		json_decref(j);
	}
	json_decref(doc);
}
