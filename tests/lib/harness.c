/* SPDX-License-Identifier: Apache-2.0 */
#include "harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nng/protocol/reqrep0/req.h>

#include "cli/apiclient.h"
#include "fsutil.h"
#include "pki.h"
#include "pki_enroll.h"
#include "tls.h"

/* Debian's python3: the one python3-prometheus-client is packaged for. */
#define H_PROM_PYTHON "/usr/bin/python3"

long long h_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void h_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

long long h_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void h_tmpdir(char out[H_PATH])
{
	snprintf(out, H_PATH, "/tmp/vigil-t-XXXXXX");
	cr_assert_not_null(mkdtemp(out), "mkdtemp: %s", strerror(errno));
	chmod(out, 0755);
}

void h_bpf_pin_dir(const char *dir, char out[H_PATH])
{
	const char *base = strrchr(dir, '/');

	snprintf(out, H_PATH, "/sys/fs/bpf/%s", base != NULL ? base + 1 : dir);
}

void h_rmrf(const char *dir)
{
	char pins[H_PATH];
	char *argv[] = {"rm", "-rf", "--one-file-system", (char *)dir, NULL};
	pid_t pid;

	/* A defender killed and never restarted leaves its programs pinned: detach them. */
	h_bpf_pin_dir(dir, pins);
	if (strncmp(pins, "/sys/fs/bpf/vigil-t-", 20) == 0) {
		char *pargv[] = {"rm", "-rf", pins, NULL};
		if ((pid = fork()) == 0) {
			execvp("rm", pargv);
			_exit(127);
		}
		if (pid > 0)
			waitpid(pid, NULL, 0);
	}
	pid = fork();

	if (pid == 0) {
		execvp("rm", argv);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

const char *h_bin(const char *name)
{
	static char path[4][H_PATH];
	static int next;
	const char *build = getenv("VIGIL_BUILD_DIR");
	const char *sub = strcmp(name, "vigil-defender") == 0 ? "defender" : "console";
	char *out = path[next++ % 4];

	cr_assert_not_null(build, "VIGIL_BUILD_DIR is not set (run the tests with meson test)");
	snprintf(out, H_PATH, "%s/%s/%s", build, sub, name);
	return out;
}

int h_free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	cr_assert(fd >= 0);
	cr_assert(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	cr_assert(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

pid_t h_spawn(const char *log_path, char *const argv[])
{
	pid_t pid = fork();

	cr_assert(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		/*
		 * Nothing of the test's may live on in the daemon: a listening socket
		 * it inherited would keep a port the test closes (the network-cut
		 * test's forwarder) bound for as long as the daemon runs.
		 */
		close_range(3, ~0U, 0);
		/* Our own process group, so nothing we start outlives a crashed test by accident.
		 */
		setpgid(0, 0);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

bool h_exited(pid_t pid, int *ret_status)
{
	int st = 0;
	pid_t r = waitpid(pid, &st, WNOHANG);

	if (r == pid && ret_status != NULL)
		*ret_status = st;
	return r == pid;
}

int h_stop(pid_t pid, int sig, int timeout_ms)
{
	long long until = h_now_ms() + timeout_ms;
	int st = 0;

	if (pid <= 0)
		return -1;
	kill(pid, sig);
	while (h_now_ms() < until) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return st;
		h_sleep_ms(20);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return st;
}

int h_run(const char *log_path, int timeout_ms, char *const argv[])
{
	pid_t pid = h_spawn(log_path, argv);
	long long until = h_now_ms() + timeout_ms;
	int st;

	while (h_now_ms() < until) {
		if (h_exited(pid, &st))
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		h_sleep_ms(20);
	}
	h_stop(pid, SIGKILL, 1000);
	return -1;
}

char *h_slurp(const char *path)
{
	char *text = NULL;

	if (fs_read_file(path, 16 * 1024 * 1024, &text, NULL, NULL) < 0)
		return strdup("");
	return text;
}

void h_write_file(const char *dir, const char *name, const char *text, char out[H_PATH])
{
	vigil_err err = {0};

	snprintf(out, H_PATH, "%s/%s", dir, name);
	cr_assert_eq(fs_write_file(out, text, strlen(text), 0644, 0, &err), 0, "%s", err.msg);
}

json_t *h_load_result(const char *path, const char *log)
{
	json_error_t jerr;
	json_t *doc = json_load_file(path, 0, &jerr);

	if (doc == NULL) {
		char *text = h_slurp(log);
		cr_assert_fail("no result in %s (%s); the script said:\n%s", path, jerr.text, text);
	}
	return doc;
}

json_t *h_prom_parse(const char *dir, const char *text)
{
	static const char script[] =
	    "import json, sys\n"
	    "from prometheus_client.parser import text_string_to_metric_families\n"
	    "out = {}\n"
	    "for fam in text_string_to_metric_families(open(sys.argv[1]).read()):\n"
	    "    for s in fam.samples:\n"
	    "        out.setdefault(s.name, []).append({'labels': s.labels, 'value': s.value,\n"
	    "                                           'type': fam.type})\n"
	    "json.dump(out, open(sys.argv[2], 'w'))\n";
	char py[H_PATH], in[H_PATH], out[H_PATH], log[H_PATH];

	if (system(H_PROM_PYTHON " -c 'import prometheus_client' 2>/dev/null") != 0)
		cr_skip_test("python3-prometheus-client is not installed (deploy/install-deps.sh)");
	h_write_file(dir, "prom.py", script, py);
	h_write_file(dir, "metrics.txt", text, in);
	snprintf(out, sizeof(out), "%s/metrics.json", dir);
	snprintf(log, sizeof(log), "%s/prom.log", dir);
	unlink(out);
	char *argv[] = {H_PROM_PYTHON, py, in, out, NULL};
	cr_assert_eq(h_run(log, 30000, argv), 0, "the Prometheus parser refused the text:\n%s\n%s",
		     h_slurp(log), text);
	return h_load_result(out, log);
}

void h_pki_make(const char *dir, struct h_pki *pki)
{
	static const char *const dns[] = {"localhost"};
	static const char *const ips[] = {"127.0.0.1", "::1"};
	struct pki_issue_opts o = {
	    .cn = "console", .kind = PKI_SERVER, .dns = dns, .ndns = 1, .ips = ips, .nips = 2};
	vigil_err err = {0};

	snprintf(pki->dir, H_PATH, "%s/pki", dir);
	snprintf(pki->ca, H_PATH, "%s/ca.crt", pki->dir);
	snprintf(pki->console_cert, H_PATH, "%s/console.crt", pki->dir);
	snprintf(pki->console_key, H_PATH, "%s/console.key", pki->dir);
	snprintf(pki->host_cert, H_PATH, "%s/host-a.crt", pki->dir);
	snprintf(pki->host_key, H_PATH, "%s/host-a.key", pki->dir);
	cr_assert_eq(pki_ca_create(pki->dir, "Test CA", 30, &err), 0, "%s", err.msg);
	cr_assert_eq(pki_issue(pki->dir, &o, pki->console_cert, pki->console_key, &err), 0, "%s",
		     err.msg);
	h_pki_issue_client(pki, "host-a", 0, 0, pki->host_cert, pki->host_key);
}

void h_pki_issue_client(const struct h_pki *pki, const char *cn, time_t not_before,
			time_t not_after, char cert[H_PATH], char key[H_PATH])
{
	struct pki_issue_opts o = {.cn = cn,
				   .kind = PKI_CLIENT,
				   .not_before = not_before,
				   .not_after = not_after,
				   .days = 30};
	vigil_err err = {0};

	if (cert[0] == '\0')
		snprintf(cert, H_PATH, "%s/%s.crt", pki->dir, cn);
	if (key[0] == '\0')
		snprintf(key, H_PATH, "%s/%s.key", pki->dir, cn);
	cr_assert_eq(pki_issue(pki->dir, &o, cert, key, &err), 0, "%s", err.msg);
}

static void console_spawn(struct h_console *c, const struct h_pki *pki, const char *const *extra)
{
	char *argv[40];
	int n = 0;

	argv[n++] = (char *)h_bin("vigil-console");
	argv[n++] = "--state-dir";
	argv[n++] = c->state;
	argv[n++] = "--listen";
	argv[n++] = c->listen;
	argv[n++] = "--api";
	argv[n++] = c->api;
	argv[n++] = "--ca";
	argv[n++] = (char *)pki->ca;
	argv[n++] = "--cert";
	argv[n++] = (char *)pki->console_cert;
	argv[n++] = "--key";
	argv[n++] = (char *)pki->console_key;
	for (int i = 0; extra != NULL && extra[i] != NULL && n < 38; i++)
		argv[n++] = (char *)extra[i];
	argv[n] = NULL;
	c->pid = h_spawn(c->log, argv);
}

static void console_wait_ready(struct h_console *c, const struct h_pki *pki)
{
	long long until = h_now_ms() + 60000;
	char path[H_PATH];
	char *tok;
	int st;

	snprintf(path, sizeof(path), "%s/api-token", c->state);
	while (h_now_ms() < until) {
		if (h_exited(c->pid, &st)) {
			char *log = h_slurp(c->log);
			cr_assert_fail("vigil-console exited (status %d) while starting:\n%s", st,
				       log);
		}
		tok = h_slurp(path);
		snprintf(c->token, sizeof(c->token), "%.*s", (int)strcspn(tok, "\n"), tok);
		free(tok);
		if (c->token[0] != '\0' &&
		    h_api_get(c, pki, "/api/v1/hosts", c->token, NULL) == 200)
			return;
		h_sleep_ms(100);
	}
	char *log = h_slurp(c->log);
	cr_assert_fail("vigil-console not ready after 60 s:\n%s", log);
}

void h_console_spawn(struct h_console *c, const char *dir, const struct h_pki *pki,
		     const char *const *extra)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->state, H_PATH, "%s/console", dir);
	snprintf(c->log, H_PATH, "%s/console.log", dir);
	c->link_port = h_free_port();
	c->api_port = h_free_port();
	snprintf(c->listen, sizeof(c->listen), "tls+tcp://127.0.0.1:%d", c->link_port);
	snprintf(c->api, sizeof(c->api), "https://127.0.0.1:%d", c->api_port);
	console_spawn(c, pki, extra);
}

void h_console_start(struct h_console *c, const char *dir, const struct h_pki *pki,
		     const char *const *extra)
{
	h_console_spawn(c, dir, pki, extra);
	console_wait_ready(c, pki);
}

void h_console_restart(struct h_console *c, const struct h_pki *pki, const char *const *extra)
{
	console_spawn(c, pki, extra);
	console_wait_ready(c, pki);
}

void h_console_kill(struct h_console *c, int sig)
{
	h_stop(c->pid, sig, 15000);
	c->pid = 0;
}

int h_api_get(const struct h_console *c, const struct h_pki *pki, const char *path,
	      const char *token, json_t **ret_json)
{
	vigil_err err = {0};
	char *body = NULL;
	int status = 0;

	if (apiclient_get(c->api, path, token, pki->ca, &status, &body, &err) < 0)
		return -1;
	if (ret_json != NULL)
		*ret_json = json_loads(body, 0, NULL);
	free(body);
	return status;
}

json_t *h_api_host(const struct h_console *c, const struct h_pki *pki, const char *host_id)
{
	json_t *doc = NULL, *hosts, *h, *found = NULL;
	size_t i;

	if (h_api_get(c, pki, "/api/v1/hosts", c->token, &doc) != 200 || doc == NULL) {
		json_decref(doc);
		return NULL;
	}
	hosts = json_object_get(doc, "hosts");
	json_array_foreach(hosts, i, h)
	{
		json_t *id = json_object_get(h, "host_id");
		if (json_is_string(id) && strcmp(json_string_value(id), host_id) == 0) {
			found = json_incref(h);
			break;
		}
	}
	json_decref(doc);
	return found;
}

PGconn *h_db(const struct h_console *c)
{
	char sock[H_PATH];
	const char *keys[] = {"host", "port", "dbname", "user", NULL};
	const char *vals[] = {sock, "5432", "vigil", "vigil", NULL};
	PGconn *conn;

	snprintf(sock, sizeof(sock), "%s/postgres/run", c->state);
	conn = PQconnectdbParams(keys, vals, 0);
	cr_assert_eq(PQstatus(conn), CONNECTION_OK, "database: %s", PQerrorMessage(conn));
	return conn;
}

long long h_db_count(const struct h_console *c, const char *sql)
{
	PGconn *conn = h_db(c);
	PGresult *r = PQexec(conn, sql);
	long long v;

	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(conn));
	v = atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(conn);
	return v;
}

void h_defender_conf(const char *dir, const struct h_console *c, const char *ca, const char *cert,
		     const char *key, const char *extra, char out[H_PATH])
{
	char text[4096];
	vigil_err err = {0};
	static int seq;

	char pins[H_PATH];

	h_bpf_pin_dir(dir, pins);
	snprintf(out, H_PATH, "%s/defender-%d.conf", dir, ++seq);
	snprintf(text, sizeof(text),
		 "console = %s\nca = %s\ncert = %s\nkey = %s\nstate_dir = %s/defender-state\n"
		 "bpf_pin_dir = %s\nlabel = env=test\nlabel = role=e2e\n%s\n",
		 c->listen, ca, cert, key, dir, pins, extra != NULL ? extra : "");
	cr_assert_eq(fs_write_file(out, text, strlen(text), 0644, 0, &err), 0, "%s", err.msg);
}

int h_api_post(const struct h_console *c, const struct h_pki *pki, const char *path,
	       const char *token, json_t **ret_json)
{
	vigil_err err = {0};
	char *body = NULL;
	int status = 0;

	if (ret_json != NULL)
		*ret_json = NULL;
	if (apiclient_post(c->api, path, NULL, token, pki->ca, &status, &body, &err) < 0)
		return -1;
	if (ret_json != NULL)
		*ret_json = json_loads(body, 0, NULL);
	free(body);
	return status;
}

int h_api_request(const struct h_console *c, const struct h_pki *pki, const char *method,
		  const char *path, const char *body, const char *const *headers, const char *token,
		  json_t **ret_json)
{
	vigil_err err = {0};
	char *text = NULL;
	int status = 0;

	if (ret_json != NULL)
		*ret_json = NULL;
	if (apiclient_request(c->api, method, path, body, headers, token, pki->ca, &status, &text,
			      &err) < 0)
		return -1;
	if (ret_json != NULL)
		*ret_json = json_loads(text, 0, NULL);
	free(text);
	return status;
}

struct store *h_store(const struct h_console *c)
{
	char dsn[H_PATH + 64];
	vigil_err err = {0};
	struct store *st;

	snprintf(dsn, sizeof(dsn), "host=%s/postgres/run port=5432 dbname=vigil user=vigil",
		 c->state);
	st = store_open(dsn, &err);
	cr_assert_not_null(st, "store_open: %s", err.msg);
	return st;
}

void h_link_open(struct h_link *l, const struct h_console *c, const struct h_pki *pki,
		 const char *cert, const char *key)
{
	h_link_open_redial(l, c, pki, cert, key, 0);
}

Vigil__Reply *h_link_request(struct h_link *l, const Vigil__Envelope *env)
{
	Vigil__Reply *r;
	nng_msg *m;
	int rv;

	cr_assert_eq(nng_msg_alloc(&m, vigil__envelope__get_packed_size(env)), 0);
	vigil__envelope__pack(env, nng_msg_body(m));
	if ((rv = nng_sendmsg(l->sock, m, 0)) != 0) {
		nng_msg_free(m);
		cr_assert_fail("sending to the console: %s", nng_strerror(rv));
	}
	cr_assert_eq(rv = nng_recvmsg(l->sock, &m, 0), 0, "no reply from the console: %s",
		     nng_strerror(rv));
	r = vigil__reply__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
	nng_msg_free(m);
	cr_assert_not_null(r, "the console's reply does not unpack");
	return r;
}

void h_link_close(struct h_link *l)
{
	nng_close(l->sock);
	if (l->tls != NULL)
		nng_tls_config_free(l->tls);
	l->tls = NULL;
}

void h_link_open_redial(struct h_link *l, const struct h_console *c, const struct h_pki *pki,
			const char *cert, const char *key, int redial_ms)
{
	const struct tls_files files = {.ca = pki->ca, .cert = cert, .key = key};
	vigil_err err = {0};
	nng_dialer d;

	cr_assert_eq(tls_engine_install(&err), 0, "%s", err.msg);
	cr_assert_eq(tls_config_new(NNG_TLS_MODE_CLIENT, NNG_TLS_AUTH_MODE_REQUIRED, &files,
				    "127.0.0.1", &l->tls, &err),
		     0, "%s", err.msg);
	cr_assert_eq(nng_req0_open(&l->sock), 0);
	cr_assert_eq(nng_dialer_create(&d, l->sock, c->listen), 0);
	cr_assert_eq(nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, l->tls), 0);
	if (redial_ms > 0) {
		cr_assert_eq(nng_dialer_set_ms(d, NNG_OPT_RECONNMINT, redial_ms), 0);
		cr_assert_eq(nng_dialer_set_ms(d, NNG_OPT_RECONNMAXT, redial_ms), 0);
	}
	cr_assert_eq(nng_dialer_start(d, NNG_FLAG_NONBLOCK), 0);
	nng_socket_set_ms(l->sock, NNG_OPT_SENDTIMEO, 10000);
	nng_socket_set_ms(l->sock, NNG_OPT_RECVTIMEO, 10000);
}

Vigil__Reply *h_link_try_request(struct h_link *l, const Vigil__Envelope *env, int timeout_ms)
{
	Vigil__Reply *r;
	nng_msg *m;
	nng_ctx ctx;
	nng_aio *aio;
	long long deadline = h_now_ms() + timeout_ms;

	/* A context of its own: the socket's timeouts belong to h_link_request. */
	cr_assert_eq(nng_ctx_open(&ctx, l->sock), 0);
	cr_assert_eq(nng_aio_alloc(&aio, NULL, NULL), 0);
	nng_aio_set_timeout(aio, timeout_ms);
	cr_assert_eq(nng_msg_alloc(&m, vigil__envelope__get_packed_size(env)), 0);
	vigil__envelope__pack(env, nng_msg_body(m));
	nng_aio_set_msg(aio, m);
	nng_ctx_send(ctx, aio);
	nng_aio_wait(aio);
	if (nng_aio_result(aio) != 0) {
		nng_msg_free(nng_aio_get_msg(aio));
		r = NULL;
		goto out;
	}
	nng_aio_set_timeout(aio, deadline > h_now_ms() ? (nng_duration)(deadline - h_now_ms()) : 1);
	nng_ctx_recv(ctx, aio);
	nng_aio_wait(aio);
	if (nng_aio_result(aio) != 0) {
		r = NULL;
		goto out;
	}
	m = nng_aio_get_msg(aio);
	r = vigil__reply__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
	nng_msg_free(m);
	cr_assert_not_null(r, "the console's reply does not unpack");
out:
	nng_aio_free(aio);
	nng_ctx_close(ctx);
	return r;
}

pid_t h_pty_session(const char *commands, int timeout_ms)
{
	int master = posix_openpt(O_RDWR | O_NOCTTY);
	char buf[4096];
	pid_t pid;

	/* A container without /dev/pts: no terminal session can be made, and the test says so. */
	if (master < 0 && (errno == ENOENT || errno == ENXIO || errno == ENODEV))
		cr_skip_test("no pseudo-terminals on this host (posix_openpt: %s): an interactive"
			     " session cannot be started",
			     strerror(errno));
	cr_assert_geq(master, 0);
	cr_assert_eq(grantpt(master), 0);
	cr_assert_eq(unlockpt(master), 0);
	const char *slave = ptsname(master);
	cr_assert_not_null(slave);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		setsid();
		int fd = open(slave, O_RDWR);
		if (fd < 0 || ioctl(fd, TIOCSCTTY, 0) < 0)
			_exit(126);
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		close(master);
		execl("/bin/sh", "sh", "-i", NULL);
		_exit(127);
	}
	cr_assert_eq(write(master, commands, strlen(commands)), (ssize_t)strlen(commands));
	/* Keep the terminal drained until the shell exits. */
	for (long long until = h_now_ms() + timeout_ms; h_now_ms() < until;) {
		struct pollfd p = {.fd = master, .events = POLLIN};
		int st;

		if (poll(&p, 1, 100) > 0 && read(master, buf, sizeof(buf)) <= 0)
			break;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			close(master);
			return pid;
		}
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(master);
	return pid;
}

pid_t h_start_testsvc(const char *workdir, const int ports[4], const char *log, const char *cgroup)
{
	char bin[H_PATH], pidfile[H_PATH], p[4][16], procs[H_PATH + 32];
	pid_t mid;

	snprintf(bin, sizeof(bin), "%s/tests/vigil-testsvc", getenv("VIGIL_BUILD_DIR"));
	snprintf(pidfile, sizeof(pidfile), "%s/pid", workdir);
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", cgroup != NULL ? cgroup : "");
	for (int i = 0; i < 4; i++)
		snprintf(p[i], sizeof(p[i]), "%d", ports[i]);
	mid = fork();
	cr_assert_geq(mid, 0);
	if (mid == 0) {
		close_range(3, ~0U, 0); /* the test's sockets are not the service's */
		setsid();
		if (fork() != 0)
			_exit(0);
		/* Wait to be reparented, so the exec happens under init already. */
		for (int i = 0; i < 2000 && getppid() != 1; i++)
			usleep(1000);
		if (cgroup != NULL) {
			char me[32];
			int cfd = open(procs, O_WRONLY);

			snprintf(me, sizeof(me), "%d", (int)getpid());
			if (cfd < 0 || write(cfd, me, strlen(me)) < 0)
				_exit(126);
			close(cfd);
		}
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644),
		    nul = open("/dev/null", O_RDONLY);
		dup2(nul, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		execl(bin, "vigil-testsvc", workdir, p[0], p[1], p[2], p[3], NULL);
		_exit(127);
	}
	waitpid(mid, NULL, 0);
	for (long long until = h_now_ms() + 20000; h_now_ms() < until; h_sleep_ms(50)) {
		char *t = h_slurp(pidfile);
		pid_t pid = (pid_t)atoi(t);

		free(t);
		if (pid > 0)
			return pid;
	}
	cr_assert_fail("vigil-testsvc did not start (see %s)", log);
	return -1;
}

int h_vigilctl(const struct h_console *c, const struct h_pki *pki, const char *const *args,
	       const char *out)
{
	char tokfile[H_PATH];
	char *argv[48];
	int n = 0;

	snprintf(tokfile, sizeof(tokfile), "%s/api-token", c->state);
	unlink(out);
	argv[n++] = (char *)h_bin("vigilctl");
	argv[n++] = "--api";
	argv[n++] = (char *)c->api;
	argv[n++] = "--ca";
	argv[n++] = (char *)pki->ca;
	argv[n++] = "--token-file";
	argv[n++] = tokfile;
	for (; *args != NULL; args++) {
		cr_assert_lt(n, 47, "too many vigilctl arguments");
		argv[n++] = (char *)*args;
	}
	argv[n] = NULL;
	return h_run(out, 60000, argv);
}

int h_fixed_port(int *keep_fd)
{
	static int next;

	/* Below 32768 (the kernel's default ephemeral range starts there), apart per process. */
	if (next == 0)
		next = 20000 + (int)(getpid() % 1000) * 12;
	for (int tries = 0; tries < 2000; tries++) {
		int port = next++;
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
		    (keep_fd == NULL || listen(fd, 64) == 0)) {
			if (keep_fd != NULL)
				*keep_fd = fd;
			else
				close(fd);
			return port;
		}
		close(fd);
	}
	cr_assert_fail("no free port below the ephemeral range");
	return -1;
}

/* The private database's conninfo of console c. */
static void console_dsn(const struct h_console *c, char out[H_PATH + 64])
{
	snprintf(out, H_PATH + 64, "host=%s/postgres/run port=5432 dbname=vigil user=vigil",
		 c->state);
}

/* What one stored heartbeat said of delivery. */
struct delivered {
	long long seen_ms; /* hosts.last_seen: when the console stored it */
	long long spooled, pending;
	long long lost; /* batches dropped from the spool or refused by a console */
};

static bool delivered_read(PGconn *db, const char *host_id, struct delivered *out)
{
	static const char sql[] =
	    "SELECT (extract(epoch FROM last_seen) * 1000)::bigint,"
	    " (capture->'delivery'->>'batches_spooled')::bigint,"
	    " (capture->'delivery'->>'spool_pending')::bigint,"
	    " coalesce((capture->'delivery'->>'spool_dropped')::bigint, 0)"
	    " + coalesce((capture->'delivery'->>'batches_refused')::bigint, 0)"
	    " FROM hosts WHERE host_id = $1";
	const char *params[1] = {host_id};
	PGresult *r = PQexecParams(db, sql, 1, NULL, params, NULL, NULL, 0);
	bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
		  !PQgetisnull(r, 0, 0) && !PQgetisnull(r, 0, 1) && !PQgetisnull(r, 0, 2);

	if (ok) {
		out->seen_ms = atoll(PQgetvalue(r, 0, 0));
		out->spooled = atoll(PQgetvalue(r, 0, 1));
		out->pending = atoll(PQgetvalue(r, 0, 2));
		out->lost = atoll(PQgetvalue(r, 0, 3));
	}
	PQclear(r);
	return ok;
}

void h_wait_delivered_dsn(const char *conninfo, const char *host_id, long long since_wall_ms,
			  int timeout_ms)
{
	PGconn *db = PQconnectdb(conninfo);
	struct delivered hb, first = {0}, last = {0};
	long long start = h_now_ms(), until = start + timeout_ms, prev_seen = -1;
	bool armed = false, have_first = false;
	int counted = 0;

	for (; h_now_ms() < until; h_sleep_ms(50)) {
		if (PQstatus(db) != CONNECTION_OK)
			PQreset(db); /* the database may be restarting: try again */
		if (!delivered_read(db, host_id, &hb) || hb.seen_ms == prev_seen)
			continue;
		prev_seen = hb.seen_ms;
		/* Counters taken after an earlier heartbeat was stored late enough. */
		if (armed) {
			/* The first such, or again after a restart (its counters start at 0). */
			if (!have_first || hb.spooled < first.spooled) {
				first = hb;
				have_first = true;
			}
			last = hb;
			counted++;
			if (hb.pending + (hb.lost - first.lost) <= hb.spooled - first.spooled) {
				/* stderr: the benchmarks link this without criterion's log. */
				fprintf(stderr,
					"harness: %s delivered what it captured before %lld,"
					" seen after %lld ms (%d heartbeat(s); spooled %lld, then"
					" %lld, pending %lld)\n",
					host_id, since_wall_ms, h_now_ms() - start, counted,
					first.spooled, hb.spooled, hb.pending);
				PQfinish(db);
				return;
			}
		}
		if (hb.seen_ms >= since_wall_ms + H_DELIVERY_SETTLE_MS)
			armed = true;
	}
	PQfinish(db);
	cr_assert_fail("%s's defender did not deliver what it captured before %lld within %d ms:"
		       " %d heartbeat(s) counted after %lld (last stored at %lld); first: spooled"
		       " %lld; last: spooled %lld, pending %lld, lost %lld since",
		       host_id, since_wall_ms, timeout_ms, counted,
		       since_wall_ms + H_DELIVERY_SETTLE_MS, prev_seen, first.spooled, last.spooled,
		       last.pending, last.lost - first.lost);
}

void h_wait_delivered(const struct h_console *c, const char *host_id, long long since_wall_ms,
		      int timeout_ms)
{
	char dsn[H_PATH + 64];

	console_dsn(c, dsn);
	h_wait_delivered_dsn(dsn, host_id, since_wall_ms, timeout_ms);
}

/* One number from sql with params (NULL for SQL NULL), or -1 when there is no row. */
static long long db_number(PGconn *db, const char *sql, int n, const char *const *params)
{
	PGresult *r = PQexecParams(db, sql, n, NULL, params, NULL, NULL, 0);
	long long v = -1;

	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(db));
	if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
		v = atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

void h_wait_marker(const struct h_console *c, const char *host_id, const char *path, int timeout_ms)
{
	/* Batches 1..seq of the stream not stored and in no reported gap. */
	static const char missing_sql[] =
	    "SELECT count(*) FROM generate_series(1, $2::bigint) AS g(seq)"
	    " WHERE NOT EXISTS (SELECT 1 FROM batches b WHERE b.host_id = $1"
	    " AND b.incarnation = $3::bigint AND b.seq = g.seq)"
	    " AND NOT EXISTS (SELECT 1 FROM audits a WHERE a.host_id = $1"
	    " AND a.kind = 'delivery_gap'"
	    " AND coalesce((a.detail->>'incarnation')::bigint, 0) = $3::bigint"
	    " AND g.seq BETWEEN (a.detail->>'first_seq')::bigint"
	    " AND (a.detail->>'last_seq')::bigint)";
	/* Among the batches received since (a second early: the clocks are the same one). */
	static const char find_sql[] =
	    "SELECT max(seq) FROM events WHERE host_id = $1 AND seq IN (SELECT seq FROM batches"
	    " WHERE host_id = $1 AND received_at >= to_timestamp($3::bigint / 1000.0 - 1))"
	    " AND type = 'file' AND body->>'path' = $2";
	long long start = h_now_ms(), until = start + timeout_ms, seq = -1, missing = -1;
	char seqtext[24], inctext[24], created[24];
	PGconn *db = h_db(c);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

	cr_assert_geq(fd, 0, "marker %s: %s", path, strerror(errno));
	close(fd);
	snprintf(created, sizeof(created), "%lld", h_wall_ms());
	for (; h_now_ms() < until && seq < 0; h_sleep_ms(100)) {
		const char *params[3] = {host_id, path, created};

		seq = db_number(db, find_sql, 3, params);
	}
	if (seq < 0) {
		PQfinish(db);
		cr_assert_fail("the marker %s was not stored within %d ms", path, timeout_ms);
	}
	snprintf(seqtext, sizeof(seqtext), "%lld", seq);
	const char *inc_params[2] = {host_id, seqtext};
	long long inc = db_number(db,
				  "SELECT incarnation FROM batches WHERE host_id = $1"
				  " AND seq = $2::bigint ORDER BY received_at DESC LIMIT 1",
				  2, inc_params);
	snprintf(inctext, sizeof(inctext), "%lld", inc);
	const char *params[3] = {host_id, seqtext, inctext};
	for (; h_now_ms() < until; h_sleep_ms(100)) {
		/* All stored (the usual case, cheap to count), or the rest in reported gaps. */
		if (db_number(db,
			      "SELECT $2::bigint - count(*) FROM batches WHERE host_id = $1"
			      " AND incarnation = $3::bigint AND seq <= $2::bigint",
			      3, params) == 0 ||
		    (missing = db_number(db, missing_sql, 3, params)) == 0) {
			missing = 0;
			break;
		}
	}
	PQfinish(db);
	cr_assert_eq(missing, 0,
		     "the marker %s is in batch %lld, but %lld batch(es) before it are still"
		     " missing after %d ms",
		     path, seq, missing, timeout_ms);
	fprintf(stderr, "harness: marker %s through after %lld ms (batch %lld)\n", path,
		h_now_ms() - start, seq);
}

void h_need_browser(void)
{
	const char *src = getenv("VIGIL_SOURCE_DIR");
	char mod[H_PATH];

	cr_assert_not_null(src, "VIGIL_SOURCE_DIR is not set (meson test sets it)");
	snprintf(mod, sizeof(mod), "%s/tests/ui/node_modules/playwright-core/package.json", src);
	if (access("/usr/bin/chromium", X_OK) != 0)
		cr_assert_fail("/usr/bin/chromium is missing: run tests/ui/install.sh (tests/run.sh"
			       " does)");
	if (system("command -v node >/dev/null 2>&1") != 0)
		cr_assert_fail("node is missing: run tests/ui/install.sh (tests/run.sh does)");
	if (access(mod, R_OK) != 0)
		cr_assert_fail("%s is missing: run tests/ui/install.sh, or npm ci --prefix"
			       " tests/ui (tests/run.sh does)",
			       mod);
}

struct pki_cert_info h_cert_file(const char *path)
{
	struct pki_cert_info info;
	vigil_err err = {0};
	char *pem = h_slurp(path);

	cr_assert_not_null(pem, "%s cannot be read", path);
	cr_assert_eq(pki_cert_info(pem, strlen(pem), &info, &err), 0, "%s: %s", path, err.msg);
	free(pem);
	return info;
}
