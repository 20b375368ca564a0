/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Ingestion benchmark: simulated defenders speaking the real protocol over
 * mutual TLS push batches into a real vigil-console (with its private
 * PostgreSQL).  For 1, 10 and 100 defenders it prints the events committed
 * per second and the time from sending a batch to its acknowledgement (which
 * the console gives only after COMMIT), p50 and p99.  The baseline, measured
 * in the same run on the same database: COPY of the same rows straight into
 * the events' table (event_chunks, as the console writes them), the ceiling
 * of any ingest path.
 *
 *   ingest_bench [--seconds N] [--batch N] [--window N] [--console PATH]
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "cli/apiclient.h"
#include "fsutil.h"
#include "pki.h"
#include "tls.h"
#include "vigil.pb-c.h"

#define MAX_DEFENDERS 100

static char dir[256], console_bin[512], link_url[64], api_url[64];
static int seconds = 8, batch_events = 2000; /* the defender's batch size when busy */
/* Batches in flight per defender: the defender's send_window default. */
static int window = 4;
static pid_t console_pid;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, "ingest_bench: %s: %s\n", what, why);
	if (console_pid > 0) {
		kill(console_pid, SIGTERM);
		waitpid(console_pid, NULL, 0);
	}
	exit(1);
}

struct defender {
	int id;
	char cert[300], key[300];
	pthread_mutex_t lock; /* lat, events: the window's slots share them */
	double *lat;	      /* seconds per acknowledged batch */
	size_t nlat, cap;
	uint64_t events;
	atomic_uint_fast64_t failures;
	atomic_uint_fast64_t next_seq; /* the last seq handed out; kept across phases */
};

static atomic_bool running;
static uint8_t *batch_buf; /* one packed Batch, shared by all (read-only) */
static size_t batch_len;

static void make_batch(void)
{
	Vigil__Batch b = VIGIL__BATCH__INIT;
	Vigil__Event *evs = calloc((size_t)batch_events, sizeof(*evs));
	Vigil__Event **evp = calloc((size_t)batch_events, sizeof(*evp));
	static char json[512];
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(
	    json, sizeof(json),
	    "{\"type\":\"file\",\"op\":\"open\",\"path\":\"/var/lib/app/state/item-12345.json\","
	    "\"flags\":[\"O_WRONLY\",\"O_CREAT\",\"O_TRUNC\"],\"write\":true,\"mode\":\"0644\","
	    "\"result\":3,\"pid\":4242,\"ppid\":1,\"uid\":1000,\"comm\":\"app\","
	    "\"user\":\"app\",\"exe\":\"/usr/bin/app\"}");
	for (int i = 0; i < batch_events; i++) {
		vigil__event__init(&evs[i]);
		evs[i].type = 4;
		evs[i].ts_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
		evs[i].pid = 4242;
		evs[i].ppid = 1;
		evs[i].uid = 1000;
		evs[i].comm = "app";
		evs[i].json = json;
		evp[i] = &evs[i];
	}
	b.n_events = (size_t)batch_events;
	b.events = evp;
	batch_len = vigil__batch__get_packed_size(&b);
	batch_buf = malloc(batch_len);
	vigil__batch__pack(&b, batch_buf);
	free(evs);
	free(evp);
}

/*
 * Envelope{seq, batch} around the shared packed batch, framed by hand (as the
 * defender's sender does) so the simulated fleet spends no CPU re-encoding.
 */
static nng_msg *batch_msg(uint64_t seq)
{
	uint8_t hdr[24];
	size_t n = 0;
	nng_msg *m;

	hdr[n++] = 0x08; /* field 1, varint: seq */
	for (uint64_t v = seq;; v >>= 7) {
		hdr[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		if (v <= 0x7f)
			break;
	}
	hdr[n++] = 0x22; /* field 4, length-delimited: batch */
	for (uint64_t v = batch_len;; v >>= 7) {
		hdr[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		if (v <= 0x7f)
			break;
	}
	nng_msg_alloc(&m, 0);
	nng_msg_append(m, hdr, n);
	nng_msg_append(m, batch_buf, batch_len);
	return m;
}

/* Send m on ctx (through aio, owned by the caller) and wait for the reply's status. */
static int request(nng_ctx ctx, nng_aio *aio, nng_msg *m, Vigil__Reply__Status *st)
{
	Vigil__Reply *r;
	int rv;

	nng_aio_set_msg(aio, m);
	nng_aio_set_timeout(aio, 30000);
	nng_ctx_send(ctx, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0) {
		nng_msg_free(nng_aio_get_msg(aio));
		return rv;
	}
	nng_ctx_recv(ctx, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0)
		return rv;
	m = nng_aio_get_msg(aio);
	r = vigil__reply__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
	nng_msg_free(m);
	if (r == NULL)
		return NNG_EPROTO;
	*st = r->status;
	vigil__reply__free_unpacked(r, NULL);
	return 0;
}

/* One of a simulated defender's window slots: its own context, batches taken in seq order. */
struct slot {
	struct defender *d;
	nng_socket s;
	pthread_t th;
};

static void *slot_main(void *arg)
{
	struct slot *sl = arg;
	struct defender *d = sl->d;
	nng_ctx ctx;
	nng_aio *aio;
	Vigil__Reply__Status st;

	if (nng_ctx_open(&ctx, sl->s) != 0 || nng_aio_alloc(&aio, NULL, NULL) != 0)
		die("nng", "cannot open a context");
	nng_ctx_set_ms(ctx, NNG_OPT_REQ_RESENDTIME, 60000);
	while (atomic_load(&running)) {
		uint64_t seq = atomic_fetch_add(&d->next_seq, 1) + 1;
		double t0 = now_s();
		int rv;
		/* A failed batch is resent until it is stored, as the defender does. */
		while ((rv = request(ctx, aio, batch_msg(seq), &st)) != 0 ||
		       st != VIGIL__REPLY__STATUS__OK) {
			atomic_fetch_add(&d->failures, 1);
			if (!atomic_load(&running))
				break;
		}
		double t1 = now_s();
		if (rv != 0 || st != VIGIL__REPLY__STATUS__OK)
			break;
		pthread_mutex_lock(&d->lock);
		if (d->nlat == d->cap) {
			d->cap = d->cap ? d->cap * 2 : 1024;
			d->lat = realloc(d->lat, d->cap * sizeof(double));
		}
		d->lat[d->nlat++] = t1 - t0;
		d->events += (uint64_t)batch_events;
		pthread_mutex_unlock(&d->lock);
	}
	nng_ctx_close(ctx);
	nng_aio_free(aio);
	return NULL;
}

static void *defender_main(void *arg)
{
	struct defender *d = arg;
	char ca[300];
	struct tls_files f = {.ca = ca, .cert = d->cert, .key = d->key};
	nng_tls_config *tls;
	nng_socket s;
	nng_dialer dl;
	nng_ctx ctx;
	nng_aio *aio;
	vigil_err err = {0};
	Vigil__Reply__Status st;
	struct slot slots[16];

	snprintf(ca, sizeof(ca), "%s/pki/ca.crt", dir);
	if (tls_config_new(NNG_TLS_MODE_CLIENT, NNG_TLS_AUTH_MODE_REQUIRED, &f, "127.0.0.1", &tls,
			   &err) < 0)
		die("tls", err.msg);
	nng_req0_open(&s);
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 65536);
	nng_dialer_create(&dl, s, link_url);
	nng_dialer_set_ptr(dl, NNG_OPT_TLS_CONFIG, tls);
	if (nng_dialer_start(dl, 0) != 0)
		die("dial", link_url);
	/* Hello first, as a defender does. */
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Hello h = VIGIL__HELLO__INIT;
	h.hostname = "bench";
	env.body_case = VIGIL__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	nng_msg *m;
	nng_msg_alloc(&m, vigil__envelope__get_packed_size(&env));
	vigil__envelope__pack(&env, nng_msg_body(m));
	if (nng_ctx_open(&ctx, s) != 0 || nng_aio_alloc(&aio, NULL, NULL) != 0)
		die("nng", "cannot open a context");
	int rv = request(ctx, aio, m, &st);
	if (rv != 0 || st != VIGIL__REPLY__STATUS__OK) {
		char why[96];
		snprintf(why, sizeof(why), "%s (status %d)",
			 rv != 0 ? nng_strerror(rv) : "answered", (int)st);
		die("hello", why);
	}
	nng_ctx_close(ctx);
	nng_aio_free(aio);
	for (int i = 0; i < window; i++) {
		slots[i] = (struct slot){.d = d, .s = s};
		pthread_create(&slots[i].th, NULL, slot_main, &slots[i]);
	}
	for (int i = 0; i < window; i++)
		pthread_join(slots[i].th, NULL);
	nng_close(s);
	nng_tls_config_free(tls);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static struct defender defs[MAX_DEFENDERS];

static void run_phase(int n, double baseline)
{
	pthread_t th[MAX_DEFENDERS];
	double *all = NULL, t0, t1;
	size_t nall = 0;
	uint64_t events = 0, failures = 0;

	for (int i = 0; i < n; i++) {
		free(defs[i].lat);
		defs[i].lat = NULL;
		defs[i].nlat = defs[i].cap = 0;
		defs[i].events = 0;
		atomic_store(&defs[i].failures, 0);
	}
	atomic_store(&running, true);
	t0 = now_s();
	for (int i = 0; i < n; i++)
		pthread_create(&th[i], NULL, defender_main, &defs[i]);
	sleep((unsigned)seconds);
	atomic_store(&running, false);
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	t1 = now_s();
	for (int i = 0; i < n; i++) {
		all = realloc(all, (nall + defs[i].nlat) * sizeof(double));
		memcpy(all + nall, defs[i].lat, defs[i].nlat * sizeof(double));
		nall += defs[i].nlat;
		events += defs[i].events;
		failures += atomic_load(&defs[i].failures);
	}
	qsort(all, nall, sizeof(double), cmp_double);
	double rate = (double)events / (t1 - t0);
	printf("%3d defender(s): %9.0f events/s committed (%.2f x COPY alone), %zu batches of %d,"
	       " send->commit p50 %.1f ms p99 %.1f ms, %" PRIu64 " refused/retried%s\n",
	       n, rate, rate / baseline, nall, batch_events, nall ? all[nall / 2] * 1000 : 0.0,
	       nall ? all[(nall * 99) / 100] * 1000 : 0.0, failures,
	       rate >= 100000 ? "  (target >= 100000: PASS)" : "  (target >= 100000: FAIL)");
	fflush(stdout);
	free(all);
}

/* A growable buffer for one COPY row in binary. */
struct row {
	char *p;
	size_t n, cap;
};

static void row_put(struct row *r, const void *p, size_t l)
{
	if (r->n + l > r->cap) {
		r->cap = (r->n + l) * 2;
		r->p = realloc(r->p, r->cap);
		if (r->p == NULL)
			die("baseline", "out of memory");
	}
	memcpy(r->p + r->n, p, l);
	r->n += l;
}

static void row_i32(struct row *r, int32_t v)
{
	uint32_t be = htobe32((uint32_t)v);
	row_put(r, &be, 4);
}

static void row_i64(struct row *r, int64_t v)
{
	uint64_t be = htobe64((uint64_t)v);
	row_put(r, &be, 8);
}

/* A field of an array of n elements of type oid, each elem(i) appended by the caller. */
static size_t row_array_begin(struct row *r, uint32_t oid, int n)
{
	size_t at = r->n;

	row_i32(r, 0), row_i32(r, 1), row_i32(r, 0), row_i32(r, (int32_t)oid);
	row_i32(r, n), row_i32(r, 1);
	return at;
}

static void row_array_end(struct row *r, size_t at)
{
	uint32_t be = htobe32((uint32_t)(r->n - at - 4));
	memcpy(r->p + at, &be, 4);
}

/*
 * COPY the same rows straight into event_chunks, as the console writes them
 * (console/store/ingest_copy.c, migration 13): one chunk row of batch_events
 * events per batch, binary.  The ceiling of any ingest path.
 */
static double copy_baseline(void)
{
	char conninfo[400];
	snprintf(conninfo, sizeof(conninfo),
		 "host=%s/console/postgres/run port=5432 dbname=vigil user=vigil", dir);
	PGconn *c = PQconnectdb(conninfo);
	if (PQstatus(c) != CONNECTION_OK)
		die("baseline", PQerrorMessage(c));
	const int rows = 200000, per = batch_events;
	const char *json =
	    "{\"type\":\"file\",\"op\":\"open\",\"path\":\"/var/lib/app/state/item-12345.json\","
	    "\"flags\":[\"O_WRONLY\",\"O_CREAT\",\"O_TRUNC\"],\"write\":true,\"mode\":\"0644\","
	    "\"result\":3,\"pid\":4242,\"ppid\":1,\"uid\":1000,\"comm\":\"app\","
	    "\"user\":\"app\",\"exe\":\"/usr/bin/app\"}";
	const int64_t ts = 849139200000000LL; /* 2026-11-28 00:00:00 UTC */
	int32_t jl = (int32_t)strlen(json);
	struct row r = {0};
	int done = 0;
	double t0 = now_s();
	PQclear(PQexec(c, "BEGIN"));
	PGresult *res = PQexec(c, "COPY event_chunks (host_id, seq, ts_first, ts_last, n, e_idx,"
				  " e_type, e_ts, e_pid, e_ppid, e_uid, e_comm, e_body)"
				  " FROM STDIN (FORMAT binary)");
	if (PQresultStatus(res) != PGRES_COPY_IN)
		die("baseline COPY", PQerrorMessage(c));
	PQclear(res);
	PQputCopyData(c, "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0", 19);
	for (int seq = 1; done < rows; seq++) {
		int k = rows - done < per ? rows - done : per;
		uint16_t nf = htobe16(13);
		size_t at;

		r.n = 0;
		row_put(&r, &nf, 2);
		row_i32(&r, 8), row_put(&r, "baseline", 8);
		row_i32(&r, 8), row_i64(&r, seq);
		row_i32(&r, 8), row_i64(&r, ts);
		row_i32(&r, 8), row_i64(&r, ts);
		row_i32(&r, 4), row_i32(&r, k);
		at = row_array_begin(&r, 23, k);
		for (int i = 0; i < k; i++)
			row_i32(&r, 4), row_i32(&r, i);
		row_array_end(&r, at);
		at = row_array_begin(&r, 25, k);
		for (int i = 0; i < k; i++)
			row_i32(&r, 4), row_put(&r, "file", 4);
		row_array_end(&r, at);
		at = row_array_begin(&r, 1184, k);
		for (int i = 0; i < k; i++)
			row_i32(&r, 8), row_i64(&r, ts);
		row_array_end(&r, at);
		at = row_array_begin(&r, 23, k);
		for (int i = 0; i < k; i++)
			row_i32(&r, 4), row_i32(&r, 4242);
		row_array_end(&r, at);
		at = row_array_begin(&r, 23, k);
		for (int i = 0; i < k; i++)
			row_i32(&r, 4), row_i32(&r, 1);
		row_array_end(&r, at);
		at = row_array_begin(&r, 20, k);
		for (int i = 0; i < k; i++)
			row_i32(&r, 8), row_i64(&r, 1000);
		row_array_end(&r, at);
		at = row_array_begin(&r, 25, k);
		for (int i = 0; i < k; i++)
			row_i32(&r, 3), row_put(&r, "app", 3);
		row_array_end(&r, at);
		at = row_array_begin(&r, 114, k);
		for (int i = 0; i < k; i++)
			row_i32(&r, jl), row_put(&r, json, (size_t)jl);
		row_array_end(&r, at);
		PQputCopyData(c, r.p, (int)r.n);
		done += k;
	}
	free(r.p);
	PQputCopyData(c, "\377\377", 2);
	PQputCopyEnd(c, NULL);
	while ((res = PQgetResult(c)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			die("baseline COPY", PQresultErrorMessage(res));
		PQclear(res);
	}
	PQclear(PQexec(c, "COMMIT"));
	double rate = rows / (now_s() - t0);
	PQclear(PQexec(c, "DELETE FROM event_chunks WHERE host_id = 'baseline'"));
	PQfinish(c);
	printf("baseline: COPY alone %.0f rows/s (%d rows in chunks of %d, one transaction)\n",
	       rate, rows, per);
	return rate;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"seconds", required_argument, NULL, 's'},
					     {"batch", required_argument, NULL, 'b'},
					     {"console", required_argument, NULL, 'c'},
					     {"window", required_argument, NULL, 'w'},
					     {0}};
	vigil_err err = {0};
	int opt;

	const char *bd = getenv("VIGIL_BUILD_DIR");
	snprintf(console_bin, sizeof(console_bin), "%s/console/vigil-console", bd ? bd : "./build");
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 's')
			seconds = atoi(optarg);
		else if (opt == 'b')
			batch_events = atoi(optarg);
		else if (opt == 'w')
			window = atoi(optarg);
		else if (opt == 'c')
			snprintf(console_bin, sizeof(console_bin), "%s", optarg);
		else
			return 2;
	}
	if (seconds < 1 || batch_events < 1 || batch_events > 10000 || window < 1 || window > 16) {
		fprintf(stderr, "usage: ingest_bench [--seconds N] [--batch 1..10000] [--window "
				"1..16] [--console PATH]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof(dir), "/tmp/vigil-ingest-XXXXXX");
	if (mkdtemp(dir) == NULL)
		die("mkdtemp", strerror(errno));
	chmod(dir, 0755);
	/* PKI: CA, console, 100 defenders. */
	char pkidir[300];
	snprintf(pkidir, sizeof(pkidir), "%s/pki", dir);
	if (pki_ca_create(pkidir, "Bench CA", 2, &err) < 0)
		die("pki", err.msg);
	const char *ips[] = {"127.0.0.1"};
	struct pki_issue_opts so = {.cn = "console", .kind = PKI_SERVER, .ips = ips, .nips = 1};
	char cc[300], ck[300];
	snprintf(cc, sizeof(cc), "%s/console.crt", pkidir);
	snprintf(ck, sizeof(ck), "%s/console.key", pkidir);
	if (pki_issue(pkidir, &so, cc, ck, &err) < 0)
		die("pki", err.msg);
	for (int i = 0; i < MAX_DEFENDERS; i++) {
		char cn[32];
		snprintf(cn, sizeof(cn), "bench-%03d", i);
		struct pki_issue_opts co = {.cn = cn, .kind = PKI_CLIENT};
		defs[i].id = i;
		pthread_mutex_init(&defs[i].lock, NULL);
		snprintf(defs[i].cert, sizeof(defs[i].cert), "%s/%s.crt", pkidir, cn);
		snprintf(defs[i].key, sizeof(defs[i].key), "%s/%s.key", pkidir, cn);
		if (pki_issue(pkidir, &co, defs[i].cert, defs[i].key, &err) < 0)
			die("pki", err.msg);
	}
	/* The console, with its private PostgreSQL. */
	snprintf(link_url, sizeof(link_url), "tls+tcp://127.0.0.1:%d", 20000 + getpid() % 20000);
	snprintf(api_url, sizeof(api_url), "https://127.0.0.1:%d", 40000 + getpid() % 20000);
	char state[300], logp[300];
	snprintf(state, sizeof(state), "%s/console", dir);
	snprintf(logp, sizeof(logp), "%s/console.log", dir);
	char ca[300];
	snprintf(ca, sizeof(ca), "%s/ca.crt", pkidir);
	console_pid = fork();
	if (console_pid == 0) {
		int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, 1);
		dup2(fd, 2);
		execl(console_bin, "vigil-console", "--state-dir", state, "--listen", link_url,
		      "--api", api_url, "--ca", ca, "--cert", cc, "--key", ck, "--log-level",
		      "warn", (char *)NULL);
		_exit(127);
	}
	if (tls_engine_install(&err) < 0)
		die("tls", err.msg);
	/* Ready when the API answers (initdb takes a few seconds). */
	char tokpath[400], *tok = NULL;
	snprintf(tokpath, sizeof(tokpath), "%s/api-token", state);
	for (int i = 0; i < 600; i++) {
		int st = 0;
		char *body = NULL;
		if (waitpid(console_pid, &st, WNOHANG) == console_pid)
			die("console", "exited while starting; see its log in the bench directory");
		free(tok);
		tok = NULL;
		if (fs_read_file(tokpath, 4096, &tok, NULL, NULL) == 0) {
			tok[strcspn(tok, "\n")] = '\0';
			if (apiclient_get(api_url, "/api/v1/hosts", tok, ca, &st, &body, NULL) ==
				0 &&
			    st == 200) {
				free(body);
				break;
			}
			free(body);
		}
		usleep(100000);
	}
	free(tok);
	make_batch();
	printf("ingest_bench: batches of %d events (%zu bytes packed), %d in flight per defender,"
	       " %d s per phase\n",
	       batch_events, batch_len, window, seconds);
	double baseline = copy_baseline();
	run_phase(1, baseline);
	run_phase(10, baseline);
	run_phase(100, baseline);
	kill(console_pid, SIGTERM);
	waitpid(console_pid, NULL, 0);
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "ingest_bench: could not remove %s\n", dir);
	return 0;
}
