/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTPS API's connection limits, end to end: a real vigil-console with
 * its private PostgreSQL and a short idle limit, and clients over real TLS.
 * Hundreds of connections that finish the TLS handshake and then say
 * nothing, one that trickles its request a byte at a time, and one that
 * sits idle after an answer are closed by the console at the idle limit,
 * while clients that send their requests in time keep getting whole answers
 * (the positive controls: a limit that cut everybody, or a test that only
 * timed out, would fail them).  A request the console is still answering is
 * never idle.  Connections over the cap per source address or in all are
 * closed at once, and the console logs all of it counted, a line at a time,
 * never a line per connection.
 *
 * The clients come from several loopback addresses (127.0.1.x, 127.0.2.x:
 * Linux routes all of 127/8 to lo), so that the per-address cap can be
 * told from the total one.  The options are vigil-console's
 * --api-idle-timeout-ms, --api-conns-per-addr and --api-conns-max.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
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
static PGconn *locker; /* holds a lock on audits while a query must wait */

static void setup(void)
{
	h_tmpdir(dir);
	h_pki_make(dir, &pki);
}

static void teardown(void)
{
	if (locker != NULL)
		PQfinish(locker);
	locker = NULL;
	if (con.pid > 0)
		h_console_kill(&con, SIGTERM);
	if (!getenv("VIGIL_KEEP_TEST_DIRS"))
		h_rmrf(dir);
}

TestSuite(api_idle, .init = setup, .fini = teardown, .timeout = 240);

/*
 * Start the console with extra options.  The options are the console's
 * (console/main.c); a console that does not know them says so here rather
 * than in a 60 s wait for an API that never comes.
 */
static void console_start(const char *const *extra)
{
	char help[H_PATH];
	char *argv[] = {(char *)h_bin("vigil-console"), "--help", NULL};

	snprintf(help, sizeof(help), "%s/console-help.txt", dir);
	cr_assert_eq(h_run(help, 10000, argv), 0, "vigil-console --help failed");
	char *text = h_slurp(help);
	bool known = strstr(text, "--api-idle-timeout-ms") != NULL &&
		     strstr(text, "--api-conns-per-addr") != NULL &&
		     strstr(text, "--api-conns-max") != NULL;
	free(text);
	cr_assert(known, "vigil-console does not take --api-idle-timeout-ms, --api-conns-per-addr"
			 " and --api-conns-max (console/main.c sets struct api_opts from them)");
	h_console_start(&con, dir, &pki, extra);
}

/* o[k] as an integer; -1 when absent or null (a time that never came). */
static long long jint(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s != NULL ? s : "";
}

/* How many lines of the console's log contain needle. */
static int log_lines(const char *needle)
{
	char *text = h_slurp(con.log), *line, *save = NULL;
	int n = 0;

	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
		n += strstr(line, needle) != NULL;
	free(text);
	return n;
}

/* The first line of the console's log containing needle, copied into out ("" when none). */
static void log_line(const char *needle, char *out, size_t len)
{
	char *text = h_slurp(con.log), *line, *save = NULL;

	out[0] = '\0';
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
		if (strstr(line, needle) != NULL) {
			snprintf(out, len, "%s", line);
			break;
		}
	free(text);
}

/* Wait up to ms for a log line containing needle; returns whether one came. */
static bool wait_log(const char *needle, int ms)
{
	for (long long until = h_now_ms() + ms; h_now_ms() < until; h_sleep_ms(100))
		if (log_lines(needle) > 0)
			return true;
	return false;
}

/* The number after needle in the console's last line containing it; -1 when none. */
static long long log_number_after(const char *line_needle, const char *needle)
{
	char line[2048];
	const char *p;

	log_line(line_needle, line, sizeof(line));
	if ((p = strstr(line, needle)) == NULL)
		return -1;
	return atoll(p + strlen(needle));
}

/* SIGTERM the console (it logs its API totals as it stops); it must stop cleanly. */
static void console_stop(void)
{
	int st = h_stop(con.pid, SIGTERM, 20000);

	con.pid = 0;
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "vigil-console did not stop cleanly (wait status %#x):\n%s", st,
		  h_slurp(con.log));
}

/* ---- idle connections ---- */

/*
 * The crowd, all at once, against an API with an idle limit of idle_ms:
 *  - silent: n connections from n_addrs addresses (127.0.1.x) that finish
 *    the TLS handshake and send nothing; each is watched until the server
 *    closes it (EOF, close_notify or reset: anything else is "data");
 *  - slowloris: a request whose header trickles in a byte every 250 ms;
 *  - keepalive: one request answered on a keep-alive connection, then
 *    silence;
 *  - control: one connection sending a request each time 0.6 idle_ms has
 *    passed since the last answer, three times (it outlives idle_ms);
 *  - normal: a fresh connection and request every 200 ms, throughout.
 * Times are ms since the script started.
 */
static const char crowd_py[] =
    "import json, select, socket, ssl, sys, threading, time\n"
    "host, port, ca, token = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]\n"
    "idle_ms, n, n_addrs, out = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), "
    "sys.argv[8]\n"
    "ctx = ssl.create_default_context(cafile=ca)\n"
    "t0 = time.monotonic()\n"
    "done = threading.Event()\n"
    "def ms():\n"
    "    return int((time.monotonic() - t0) * 1000)\n"
    "def dial(src):\n"
    "    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
    "    raw.bind((src, 0))\n"
    "    raw.settimeout(10)\n"
    "    raw.connect((host, port))\n"
    "    return ctx.wrap_socket(raw, server_hostname=host)\n"
    "REQ = 'GET /api/v1/hosts HTTP/1.1\\r\\nHost: %s:%d\\r\\nAuthorization: Bearer %s\\r\\n' "
    "% (host, port, token)\n"
    "def ask(s, close=False):\n"
    "    s.settimeout(10)\n"
    "    s.sendall((REQ + ('Connection: close\\r\\n' if close else '') + '\\r\\n').encode())\n"
    "    buf = b''\n"
    "    while b'\\r\\n\\r\\n' not in buf:\n"
    "        c = s.recv(4096)\n"
    "        if not c:\n"
    "            raise EOFError('closed in the headers')\n"
    "        buf += c\n"
    "    head, _, body = buf.partition(b'\\r\\n\\r\\n')\n"
    "    cl = 0\n"
    "    for line in head.split(b'\\r\\n')[1:]:\n"
    "        k, _, v = line.partition(b':')\n"
    "        if k.strip().lower() == b'content-length':\n"
    "            cl = int(v)\n"
    "    while len(body) < cl:\n"
    "        c = s.recv(4096)\n"
    "        if not c:\n"
    "            raise EOFError('closed in the body')\n"
    "        body += c\n"
    "    json.loads(body)\n"
    "    return int(head.split(b' ')[1])\n"
    "def closed_now(s):\n"
    "    s.settimeout(0)\n"
    "    try:\n"
    "        d = s.recv(1)\n"
    "    except (ssl.SSLWantReadError, BlockingIOError):\n"
    "        return None\n"
    "    except (ssl.SSLError, OSError):\n"
    "        return 'reset'\n"
    "    return 'eof' if d == b'' else 'data'\n"
    "lock, watched, keep = threading.Lock(), {}, []\n"
    "def watch(s, rec):\n"
    "    with lock:\n"
    "        watched[s.fileno()] = (s, rec)\n"
    "        keep.append(s)\n"
    "def watcher():\n"
    "    p, reg = select.poll(), set()\n"
    "    while not done.is_set():\n"
    "        with lock:\n"
    "            for fd in watched:\n"
    "                if fd not in reg:\n"
    "                    p.register(fd, select.POLLIN)\n"
    "                    reg.add(fd)\n"
    "        for fd, ev in p.poll(20):\n"
    "            with lock:\n"
    "                s, rec = watched[fd]\n"
    "            how = closed_now(s)\n"
    "            if how is None:\n"
    "                continue\n"
    "            rec['closed_ms'], rec['how'] = ms(), how\n"
    "            p.unregister(fd)\n"
    "            reg.discard(fd)\n"
    "            with lock:\n"
    "                del watched[fd]\n"
    "slow, ka, ctl, normal = {}, {}, {'status': []}, {'status': [], 'ms': [], 'errors': []}\n"
    "def slowloris():\n"
    "    slow['start_ms'] = ms()\n"
    "    s = dial('127.0.0.1')\n"
    "    slow['ready_ms'] = ms()\n"
    "    s.sendall(('GET /api/v1/hosts HTTP/1.1\\r\\nHost: %s:%d\\r\\nX-Slow: ' % (host, "
    "port)).encode())\n"
    "    sent = 0\n"
    "    while ms() - slow['start_ms'] < 4 * idle_ms:\n"
    "        r, _, _ = select.select([s], [], [], 0.25)\n"
    "        how = closed_now(s) if r else None\n"
    "        if how is None:\n"
    "            s.settimeout(5)\n"
    "            try:\n"
    "                s.sendall(b'a')\n"
    "                sent += 1\n"
    "                continue\n"
    "            except (ssl.SSLError, OSError):\n"
    "                how = 'send failed'\n"
    "        slow['closed_ms'], slow['how'] = ms(), how\n"
    "        break\n"
    "    slow['bytes'] = sent\n"
    "    keep.append(s)\n"
    "def keepalive():\n"
    "    ka['start_ms'] = ms()\n"
    "    s = dial('127.0.0.1')\n"
    "    ka['status'] = ask(s)\n"
    "    ka['answer_ms'] = ms()\n"
    "    watch(s, ka)\n"
    "def control():\n"
    "    ctl['start_ms'] = ms()\n"
    "    s = dial('127.0.0.1')\n"
    "    for k in range(3):\n"
    "        time.sleep(0.6 * idle_ms / 1000)\n"
    "        try:\n"
    "            ctl['status'].append(ask(s))\n"
    "        except Exception as e:\n"
    "            ctl['error'] = '%s: %s' % (type(e).__name__, e)\n"
    "            break\n"
    "    ctl['end_ms'] = ms()\n"
    "    s.close()\n"
    "def normal_client():\n"
    "    while not done.is_set():\n"
    "        t = time.monotonic()\n"
    "        try:\n"
    "            s = dial('127.0.0.1')\n"
    "            st = ask(s, close=True)\n"
    "            s.close()\n"
    "        except Exception as e:\n"
    "            st = -1\n"
    "            normal['errors'].append('%s: %s' % (type(e).__name__, e))\n"
    "        normal['status'].append(st)\n"
    "        normal['ms'].append(int((time.monotonic() - t) * 1000))\n"
    "        time.sleep(0.2)\n"
    "threads = [threading.Thread(target=f) for f in (slowloris, keepalive, control)]\n"
    "bg = [threading.Thread(target=f) for f in (watcher, normal_client)]\n"
    "for t in threads + bg:\n"
    "    t.start()\n"
    "silent = []\n"
    "for i in range(n):\n"
    "    rec = {'src': '127.0.1.%d' % (1 + i % n_addrs), 'start_ms': ms()}\n"
    "    try:\n"
    "        s = dial(rec['src'])\n"
    "        rec['ready_ms'] = ms()\n"
    "        watch(s, rec)\n"
    "    except Exception as e:\n"
    "        rec['error'] = '%s: %s' % (type(e).__name__, e)\n"
    "    silent.append(rec)\n"
    "for t in threads:\n"
    "    t.join()\n"
    "until = ms() + idle_ms + 10000\n"
    "while ms() < until and any('closed_ms' not in r for r in silent + [ka] if 'error' not in r):\n"
    "    time.sleep(0.05)\n"
    "done.set()\n"
    "for t in bg:\n"
    "    t.join()\n"
    "json.dump({'silent': silent, 'slowloris': slow, 'keepalive': ka, 'control': ctl,\n"
    "           'normal': normal, 'end_ms': ms()}, open(out, 'w'))\n";

#define IDLE_MS	     3000
#define SILENT	     300
#define SILENT_ADDRS 10
/* How late after its limit a connection may be seen closed: the timer, the close, our poll. */
#define IDLE_MARGIN_MS 2500

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

Test(api_idle, silent_and_trickling_connections_are_closed_at_the_limit_while_clients_are_answered)
{
	const char *const extra[] = {"--api-idle-timeout-ms", "3000", NULL};
	char script[H_PATH], out[H_PATH], log[H_PATH], port[16], idle[16], n[16], addrs[16];
	static long long after[SILENT];
	int ok = 0, closed = 0, early = 0, late = 0, odd = 0;
	json_t *doc, *silent, *r;
	size_t i;

	console_start(extra);
	h_write_file(dir, "crowd.py", crowd_py, script);
	snprintf(out, sizeof(out), "%s/crowd.json", dir);
	snprintf(log, sizeof(log), "%s/crowd.log", dir);
	snprintf(port, sizeof(port), "%d", con.api_port);
	snprintf(idle, sizeof(idle), "%d", IDLE_MS);
	snprintf(n, sizeof(n), "%d", SILENT);
	snprintf(addrs, sizeof(addrs), "%d", SILENT_ADDRS);
	char *argv[] = {"/usr/bin/python3",
			script,
			"127.0.0.1",
			port,
			pki.ca,
			con.token,
			idle,
			n,
			addrs,
			out,
			NULL};
	cr_assert_eq(h_run(log, 180000, argv), 0, "crowd.py failed:\n%s", h_slurp(log));
	doc = h_load_result(out, log);

	/*
	 * Every silent connection finished its handshake, was held until its
	 * limit (the idle clock starts at accept, between start_ms and
	 * ready_ms) and was closed then, without a byte of data.
	 */
	silent = json_object_get(doc, "silent");
	cr_assert_eq(json_array_size(silent), (size_t)SILENT);
	json_array_foreach(silent, i, r)
	{
		long long c = jint(r, "closed_ms");

		if (jint(r, "ready_ms") < 0) {
			cr_expect_fail("silent connection %zu from %s: no TLS connection (%s)", i,
				       jstr(r, "src"), jstr(r, "error"));
			continue;
		}
		ok++;
		if (c < 0)
			continue;
		closed++;
		after[closed - 1] = c - jint(r, "start_ms");
		early += c < jint(r, "start_ms") + IDLE_MS - 100;
		late += c > jint(r, "ready_ms") + IDLE_MS + IDLE_MARGIN_MS;
		odd += strcmp(jstr(r, "how"), "eof") != 0 && strcmp(jstr(r, "how"), "reset") != 0;
	}
	cr_expect_eq(ok, SILENT, "%d of %d silent connections finished the TLS handshake", ok,
		     SILENT);
	cr_expect_eq(closed, ok, "the console closed %d of %d silent connections", closed, ok);
	cr_expect_eq(early, 0, "%d silent connections were closed before their idle limit", early);
	cr_expect_eq(late, 0, "%d silent connections were closed over %d ms after their limit",
		     late, IDLE_MARGIN_MS);
	cr_expect_eq(odd, 0, "%d silent connections got data, not a close", odd);
	if (closed > 0) {
		qsort(after, (size_t)closed, sizeof(after[0]), cmp_ll);
		cr_log_info("%d silent connections closed %lld..%lld ms after connecting (median "
			    "%lld; limit %d ms)",
			    closed, after[0], after[closed - 1], after[closed / 2], IDLE_MS);
	}

	/* The trickled request never completed: closed at the limit, while still trickling. */
	r = json_object_get(doc, "slowloris");
	cr_expect_geq(jint(r, "closed_ms"), 0, "the slowloris connection was never closed");
	cr_expect_geq(jint(r, "closed_ms"), jint(r, "start_ms") + IDLE_MS - 100,
		      "the slowloris connection was closed at %lld ms, before its limit",
		      jint(r, "closed_ms"));
	cr_expect_leq(jint(r, "closed_ms"), jint(r, "ready_ms") + IDLE_MS + IDLE_MARGIN_MS,
		      "the slowloris connection was closed at %lld ms (connected at %lld)",
		      jint(r, "closed_ms"), jint(r, "ready_ms"));
	cr_expect_geq(jint(r, "bytes"), IDLE_MS / 250 - 3,
		      "the slowloris sent only %lld bytes before the close", jint(r, "bytes"));
	cr_log_info("slowloris: %lld bytes trickled, closed %lld ms after connecting (%s)",
		    jint(r, "bytes"), jint(r, "closed_ms") - jint(r, "start_ms"), jstr(r, "how"));

	/* Idle after an answer: closed the limit after that answer. */
	r = json_object_get(doc, "keepalive");
	cr_expect_eq(jint(r, "status"), 200);
	cr_expect_geq(jint(r, "closed_ms"), jint(r, "answer_ms") + IDLE_MS - 100,
		      "the idle keep-alive connection was closed at %lld ms, answered at %lld",
		      jint(r, "closed_ms"), jint(r, "answer_ms"));
	cr_expect_leq(jint(r, "closed_ms"), jint(r, "answer_ms") + IDLE_MS + IDLE_MARGIN_MS,
		      "the idle keep-alive connection was closed at %lld ms, answered at %lld",
		      jint(r, "closed_ms"), jint(r, "answer_ms"));

	/*
	 * Positive controls: requests sent in time are answered, on a
	 * connection that lives well past the limit, and fresh clients are
	 * answered throughout.
	 */
	r = json_object_get(doc, "control");
	json_t *st = json_object_get(r, "status");
	cr_expect_eq(json_array_size(st), 3, "the control connection got %zu of 3 answers (%s)",
		     json_array_size(st), jstr(r, "error"));
	for (i = 0; i < json_array_size(st); i++)
		cr_expect_eq(json_integer_value(json_array_get(st, i)), 200);
	cr_expect_gt(jint(r, "end_ms") - jint(r, "start_ms"), IDLE_MS * 3 / 2,
		     "the control connection lived %lld ms",
		     jint(r, "end_ms") - jint(r, "start_ms"));

	r = json_object_get(doc, "normal");
	json_t *nst = json_object_get(r, "status"), *nms = json_object_get(r, "ms");
	size_t nn = json_array_size(nst);
	static long long lat[4096];
	int good = 0;

	cr_expect_geq(nn, 10, "only %zu normal requests", nn);
	for (i = 0; i < nn && i < 4096; i++) {
		good += json_integer_value(json_array_get(nst, i)) == 200;
		lat[i] = json_integer_value(json_array_get(nms, i));
	}
	cr_expect_eq(good, (int)nn, "%d of %zu normal requests answered 200; first error: %s", good,
		     nn, json_string_value(json_array_get(json_object_get(r, "errors"), 0)));
	if (nn > 0) {
		size_t m = nn < 4096 ? nn : 4096;

		qsort(lat, m, sizeof(lat[0]), cmp_ll);
		cr_log_info("normal client: %zu requests (new connection each), median %lld ms, "
			    "max %lld ms",
			    nn, lat[m / 2], lat[m - 1]);
		cr_expect_lt(lat[m - 1], 3000, "a normal request took %lld ms", lat[m - 1]);
	}
	json_decref(doc);

	/* The console said so: once (rate-limited), with an address, and in its totals. */
	cr_expect(wait_log("closed idle (no whole request within 3000 ms", 3000),
		  "the console logged no idle closes:\n%s", h_slurp(con.log));
	cr_expect_leq(log_lines("closed idle (no whole request"), 2,
		      "the console logged idle closes on %d lines",
		      log_lines("closed idle (no whole request"));
	char line[2048];
	log_line("closed idle (no whole request", line, sizeof(line));
	cr_expect(strstr(line, "the last from 127.0.") != NULL, "no address in: %s", line);
	console_stop();
	long long counted = log_number_after("API connections:", "API connections: ");
	cr_expect_geq(counted, closed + 2, "the console counted %lld idle closes, not %d", counted,
		      closed + 2);
	cr_log_info("console: %s", (log_line("API connections:", line, sizeof(line)), line));
}

/*
 * A request the console is still answering is not idle: with the query held
 * by a lock for longer than the idle limit, the answer (504, after the query
 * timeout) still arrives on the same connection, and only then does the
 * connection's idle clock start.
 */
static const char waiting_py[] =
    "import json, socket, ssl, sys, time\n"
    "host, port, ca, token, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], "
    "sys.argv[5]\n"
    "ctx = ssl.create_default_context(cafile=ca)\n"
    "t0 = time.monotonic()\n"
    "def ms():\n"
    "    return int((time.monotonic() - t0) * 1000)\n"
    "res = {}\n"
    "s = ctx.wrap_socket(socket.create_connection((host, port), timeout=60), "
    "server_hostname=host)\n"
    "s.sendall(('GET /api/v1/audits?limit=5 HTTP/1.1\\r\\nHost: %s:%d\\r\\nAuthorization: "
    "Bearer %s\\r\\n\\r\\n' % (host, port, token)).encode())\n"
    "res['sent_ms'] = ms()\n"
    "buf = b''\n"
    "try:\n"
    "    while b'\\r\\n\\r\\n' not in buf:\n"
    "        c = s.recv(4096)\n"
    "        if not c:\n"
    "            break\n"
    "        buf += c\n"
    "    res['status'] = buf.split(b'\\r\\n')[0].decode(errors='replace')\n"
    "    res['answer_ms'] = ms()\n"
    "    while s.recv(4096):\n"
    "        pass\n"
    "    res['how'] = 'eof'\n"
    "except (ssl.SSLError, OSError) as e:\n"
    "    res['how'] = '%s: %s' % (type(e).__name__, e)\n"
    "res['closed_ms'] = ms()\n"
    "json.dump(res, open(out, 'w'))\n";

Test(api_idle, a_request_being_answered_is_never_idle)
{
	const char *const extra[] = {"--api-idle-timeout-ms", "2000", "--api-query-timeout-ms",
				     "6000", NULL};
	char script[H_PATH], out[H_PATH], log[H_PATH], port[16];
	PGresult *res;
	json_t *r;

	console_start(extra);
	locker = h_db(&con);
	res = PQexec(locker, "BEGIN; LOCK TABLE audits IN ACCESS EXCLUSIVE MODE");
	cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(locker));
	PQclear(res);

	h_write_file(dir, "waiting.py", waiting_py, script);
	snprintf(out, sizeof(out), "%s/waiting.json", dir);
	snprintf(log, sizeof(log), "%s/waiting.log", dir);
	snprintf(port, sizeof(port), "%d", con.api_port);
	char *argv[] = {"/usr/bin/python3", script, "127.0.0.1", port, pki.ca,
			con.token,	    out,    NULL};
	cr_assert_eq(h_run(log, 60000, argv), 0, "waiting.py failed:\n%s", h_slurp(log));
	res = PQexec(locker, "ROLLBACK");
	PQclear(res);
	r = h_load_result(out, log);
	cr_log_info("answered %s after %lld ms; closed %lld ms after the answer (%s)",
		    jstr(r, "status"), jint(r, "answer_ms") - jint(r, "sent_ms"),
		    jint(r, "closed_ms") - jint(r, "answer_ms"), jstr(r, "how"));
	cr_expect(strstr(jstr(r, "status"), " 504 ") != NULL,
		  "the request held over the idle limit got '%s', not its 504", jstr(r, "status"));
	cr_expect_geq(jint(r, "answer_ms") - jint(r, "sent_ms"), 5000);
	cr_expect_geq(jint(r, "closed_ms"), jint(r, "answer_ms") + 2000 - 100,
		      "closed %lld ms after the answer, before the idle limit",
		      jint(r, "closed_ms") - jint(r, "answer_ms"));
	cr_expect_leq(jint(r, "closed_ms"), jint(r, "answer_ms") + 2000 + IDLE_MARGIN_MS,
		      "closed %lld ms after the answer",
		      jint(r, "closed_ms") - jint(r, "answer_ms"));
	json_decref(r);
}

/* ---- caps ---- */

/* A TCP connection from src (a loopback address) to the API; never fails. */
static int connect_from(const char *src)
{
	struct sockaddr_in from = {.sin_family = AF_INET}, to = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert(fd >= 0, "socket: %s", strerror(errno));
	inet_pton(AF_INET, src, &from.sin_addr);
	inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
	to.sin_port = htons((uint16_t)con.api_port);
	cr_assert_eq(bind(fd, (struct sockaddr *)&from, sizeof(from)), 0, "bind %s: %s", src,
		     strerror(errno));
	cr_assert_eq(connect(fd, (struct sockaddr *)&to, sizeof(to)), 0, "connect from %s: %s", src,
		     strerror(errno));
	return fd;
}

/* Whether the server closed fd (end of stream or reset) within ms. */
static bool closed_within(int fd, int ms)
{
	long long end = h_now_ms() + ms;

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		long long left = end - h_now_ms();
		char buf[256];
		ssize_t n;
		int rc = poll(&p, 1, left > 0 ? (int)left : 0);

		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return false;
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return true;
	}
}

/* Open n connections from src, each held (not closed within hold_ms); fds into out. */
static void hold(const char *src, int n, int *out, int hold_ms)
{
	for (int i = 0; i < n; i++)
		out[i] = connect_from(src);
	for (int i = 0; i < n; i++)
		cr_assert(!closed_within(out[i], i == 0 ? hold_ms : 0),
			  "connection %d of %d from %s (under the caps) was closed", i + 1, n, src);
}

/* A connection from src is refused: closed at once, before any byte was sent. */
static void expect_refused(const char *src, const char *why)
{
	long long t0 = h_now_ms();
	int fd = connect_from(src);

	cr_expect(closed_within(fd, 2000), "a connection from %s over %s was not closed", src, why);
	cr_expect_lt(h_now_ms() - t0, 1000, "refusing a connection from %s over %s took %lld ms",
		     src, why, h_now_ms() - t0);
	close(fd);
}

#define PER_ADDR 8
#define MAX	 20

Test(api_idle, connections_over_a_cap_are_closed_at_once_and_counted)
{
	const char *const extra[] = {"--api-conns-per-addr", "8", "--api-conns-max", "20", NULL};
	int a[PER_ADDR], b[PER_ADDR], c[MAX - 2 * PER_ADDR];
	char line[2048];

	console_start(extra);
	/* Held connections need no TLS to count: the caps count from accept on. */
	hold("127.0.2.1", PER_ADDR, a, 300);
	for (int i = 0; i < 3; i++)
		expect_refused("127.0.2.1", "its address's cap");
	/* Positive control: another address is still served, up to the total cap. */
	hold("127.0.2.2", PER_ADDR, b, 300);
	hold("127.0.2.3", MAX - 2 * PER_ADDR, c, 300);
	for (int i = 0; i < 2; i++)
		expect_refused("127.0.2.4", "the total cap");
	cr_expect_eq(h_api_get(&con, &pki, "/api/v1/hosts", con.token, NULL), -1,
		     "a request got through with %d connections open", MAX);

	/* Slots come back with the connections. */
	for (int i = 0; i < PER_ADDR; i++)
		close(b[i]);
	int status = -1;
	for (long long until = h_now_ms() + 5000; status != 200 && h_now_ms() < until;
	     h_sleep_ms(100))
		status = h_api_get(&con, &pki, "/api/v1/hosts", con.token, NULL);
	cr_expect_eq(status, 200, "the API did not answer once connections were closed");
	expect_refused("127.0.2.1", "its address's cap, still");
	close(a[0]);
	h_sleep_ms(500); /* nng frees the connection (and our count) on its reaper thread */
	a[0] = connect_from("127.0.2.1");
	cr_expect(!closed_within(a[0], 300), "a connection under the cap again was refused");

	/* One line for the lot, with an address; the totals as the console stops. */
	cr_expect(wait_log("refused at accept", 3000), "the console logged no refusal:\n%s",
		  h_slurp(con.log));
	cr_expect_eq(log_lines("refused at accept"), 1, "the console logged refusals on %d lines",
		     log_lines("refused at accept"));
	log_line("refused at accept", line, sizeof(line));
	cr_expect(strstr(line, "the last from 127.0.2.") != NULL, "no address in: %s", line);
	for (int i = 0; i < PER_ADDR; i++)
		close(a[i]);
	for (int i = 0; i < MAX - 2 * PER_ADDR; i++)
		close(c[i]);
	console_stop();
	/*
	 * 3 + 1 from 127.0.2.1 over its cap; 2 from 127.0.2.4 and our request
	 * over the total, and maybe a retry of ours that came before nng's
	 * reaper had freed the closed connections.
	 */
	log_line("API connections:", line, sizeof(line));
	cr_log_info("console: %s", line);
	const char *p = strstr(line, "ms), ");
	long long by_addr = -1, by_max = -1;
	cr_expect(p != NULL &&
		      sscanf(p,
			     "ms), %lld refused over the cap per address (8), %lld over the "
			     "cap in all (20)",
			     &by_addr, &by_max) == 2,
		  "no totals in: %s", line);
	cr_expect_eq(by_addr, 4, "the console counted %lld refused per address, not 4", by_addr);
	cr_expect_geq(by_max, 3, "the console counted %lld refused over the total, not 3+", by_max);
}
