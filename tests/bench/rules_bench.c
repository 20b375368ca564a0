/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rule-set propagation benchmark: how long a rule change made through the
 * API takes to be acknowledged by every connected defender, for fleets of 1,
 * 100 and 1000 simulated defenders speaking the real protocol over real
 * mutual TLS to a real vigil-console with its private PostgreSQL.
 *
 * A simulated defender is what defender/session.c is on the wire: a hello
 * (labels, RulesState{version held, protocol 1}), then a heartbeat
 * (counters, RulesState) every interval after the last reply, and, when a
 * reply carries a newer RuleSet, the acknowledging heartbeat at once.  Each
 * has its own client certificate (CN bench-NNNN), req socket and TLS
 * connection; all of them live in this process as nng aios with callbacks,
 * and the naps between heartbeats are one thread's timer heap.  What the
 * simulator costs in CPU is printed next to what the console and its
 * PostgreSQL cost.
 *
 * Measured per change and defender: from the moment PUT /api/v1/rules/{id}
 * returned (the new version committed and announced) to the moment this
 * defender received the console's OK to the heartbeat that reported the new
 * version.  The console records that version (hosts.rules_version,
 * store_host_rules_report) before it answers, so that moment is the ack as
 * the console holds it; /api/v1/hosts is read after each change to check
 * that it shows the version for every defender.
 *
 * The helpers (PKI, console start, API, link) are the integration suites'
 * (tests/lib/harness.c), linked with tests/lib/harness_standalone.c.
 *
 * With watches (the default, as the defender does it), a defender holds a
 * rule-set watch the console answers as soon as a newer set is there; the
 * set is in force when it arrives (the defender applies it before its next
 * watch, which the console records as the acknowledgement).  What is then
 * measured per defender is the moment the set arrived; that the console
 * recorded every acknowledgement is read from /api/v1/hosts, polled, as
 * "all recorded".  --no-watch measures the heartbeat-only way.
 *
 *   rules_bench [--fleet LIST] [--rounds N] [--heartbeat-ms N] [--no-watch] [--keep]
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "harness.h"
#include "wire_limits.h"

#define FLEET_MAX	   1000
#define FLEETS_MAX	   8
#define WAVE		   100	 /* simulated defenders connecting at once */
#define REQUEST_TIMEOUT_MS 5000	 /* the defender's, per send and per receive */
#define RESEND_MS	   2000	 /* NNG_OPT_REQ_RESENDTIME, as defender/deliver/uplink.c */
#define ROUND_TIMEOUT_MS   30000 /* a change not acknowledged by all by then is reported */
#define WATCH_TIMEOUT_MS   35000 /* a watch is held up to 25 s (console/link/watch.h) */
#define API_BASELINE_N	   20
#define RTT_BASELINE_N	   200

enum sim_state { SIM_SEND, SIM_RECV, SIM_NAP };

/*
 * One simulated defender.  Everything but the atomics belongs to whoever
 * moves it on: its aio's callback while a request is in flight (nng runs
 * one callback of an aio at a time), the nap thread while it naps.  Main
 * reads t_set and t_ack after it has seen acked reach the version
 * (release/acquire).
 */
struct sim {
	char cn[32];
	char cert[H_PATH], key[H_PATH];
	struct h_link link;
	nng_ctx ctx;
	nng_aio *aio;
	bool open;
	enum sim_state state;
	bool registered, report_now, spread, sent_hello;
	uint64_t seq;
	atomic_int_fast64_t held; /* the version it holds (the watch and heartbeat callbacks) */
	/* The rule-set watch (Envelope.watch), as defender/session.c keeps one outstanding. */
	nng_ctx wctx;
	nng_aio *waio;
	enum { W_SEND, W_RECV, W_SLEEP } wstate;
	bool watching;
	uint64_t wseq;
	int64_t reported; /* the version the request in flight reports */
	double t_send;	  /* when the request in flight was sent */
	int64_t set_version;
	double t_set; /* when the reply carrying set_version arrived */
	double t_ack; /* when the OK to the heartbeat reporting acked arrived */
	atomic_int_fast64_t acked;
	atomic_bool hello_ok;
};

static struct sim sims[FLEET_MAX];
static int nsims;
static char dir[H_PATH];
static struct h_pki pki;
static struct h_console con;
static int interval_ms = 1000;
/* Sets arrive by watch (the defender's way); --no-watch: by heartbeat replies only. */
static bool use_watch = true;
static bool keep_dir, cleaned;
static volatile sig_atomic_t interrupted;
static atomic_bool stopping;

/* The change being measured: when its PUT returned (ns, monotonic) and its version. */
static atomic_int_fast64_t g_t0_ns, g_target;
/* The latest send time after g_t0 (ns after it) of a heartbeat answered without the set. */
static atomic_int_fast64_t g_stale_ns;
static atomic_uint_fast64_t n_timeouts, n_send_errors, n_not_ok, n_hello_required, n_hellos;

/* Heartbeat round trips (ms) while recording. */
static pthread_mutex_t rtt_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool rtt_recording;
static double *rtts;
static size_t nrtts, rtts_cap;

/* The counters a real defender's heartbeat carries (names as session.c makes them). */
static const char *const counter_names[] = {
    "delivered.exec",
    "delivered.fork",
    "delivered.exit",
    "delivered.file",
    "delivered.net",
    "drops.ringbuf_full",
    "drops.scratch",
    "drops.path_truncated",
    "drops.args_truncated",
    "filtered.self",
    "filtered.read_repeat",
    "filtered.read_failed",
    "user.malformed",
    "delivery.batches_spooled",
    "delivery.batches_acked",
    "delivery.batches_refused",
    "delivery.resends",
    "delivery.spool_bytes",
    "delivery.spool_pending",
    "delivery.spool_dropped",
    "delivery.append_errors",
    "delivery.oversize",
    "learn.models",
    "learn.entries",
    "learn.learned",
    "learn.deviations",
    "learn.deviations_repeated",
    "learn.folds",
    "learn.over_bounds",
    "learn.activity",
    "learn.unplaced",
    "learn.rewritten",
    "learn.save_errors",
    "learn.load_errors",
    "process.evicted_live",
    "process.evicted_exited",
    "process.table_full_drops",
    "process.entries",
};
#define NCOUNTERS (sizeof(counter_names) / sizeof(counter_names[0]))
static Vigil__Counter counters[NCOUNTERS];
static Vigil__Counter *counter_ptrs[NCOUNTERS];

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void atomic_max(atomic_int_fast64_t *a, int64_t v)
{
	int64_t cur = atomic_load(a);

	while (v > cur && !atomic_compare_exchange_weak(a, &cur, v))
		;
}

static void rtt_add(double ms)
{
	pthread_mutex_lock(&rtt_lock);
	if (nrtts == rtts_cap) {
		size_t cap = rtts_cap ? rtts_cap * 2 : 4096;
		double *p = realloc(rtts, cap * sizeof(*p));

		if (p == NULL) {
			pthread_mutex_unlock(&rtt_lock);
			return;
		}
		rtts = p;
		rtts_cap = cap;
	}
	rtts[nrtts++] = ms;
	pthread_mutex_unlock(&rtt_lock);
}

/* CPU seconds (user + system) this process has used. */
static double self_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/*
 * CPU seconds (user + system) used so far by process root into *ret_root
 * and by its live descendants into *ret_desc: the console, and its
 * PostgreSQL (which runs in a session of its own, so not by process group).
 */
static void tree_cpu_s(pid_t root, double *ret_root, double *ret_desc)
{
	enum { PROCS_MAX = 8192 };
	static int pids[PROCS_MAX], ppids[PROCS_MAX];
	static unsigned long long ticks[PROCS_MAX];
	long tck = sysconf(_SC_CLK_TCK);
	unsigned long long own = 0, desc = 0;
	struct dirent *e;
	DIR *d = opendir("/proc");
	int n = 0;

	*ret_root = *ret_desc = NAN;
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL && n < PROCS_MAX) {
		char path[64], buf[1024], *p;
		unsigned long long ut, st;
		int ppid;
		FILE *f;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		p = fgets(buf, sizeof(buf), f);
		fclose(f);
		/* After the command's closing parenthesis: state ppid pgrp ... utime stime. */
		if (p == NULL || (p = strrchr(buf, ')')) == NULL ||
		    sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ppid,
			   &ut, &st) != 3)
			continue;
		pids[n] = atoi(e->d_name);
		ppids[n] = ppid;
		ticks[n++] = ut + st;
	}
	closedir(d);
	for (int i = 0; i < n; i++) {
		int up = pids[i], depth = 0;

		if (up == root) {
			own = ticks[i];
			continue;
		}
		/* Up the parents until root, init or a pid not seen. */
		while (up > 1 && up != root && depth++ < 64) {
			int k = 0;

			while (k < n && pids[k] != up)
				k++;
			up = k < n ? ppids[k] : 0;
		}
		if (up == root)
			desc += ticks[i];
	}
	*ret_root = (double)own / (double)(tck > 0 ? tck : 100);
	*ret_desc = (double)desc / (double)(tck > 0 ? tck : 100);
}

/* ---- the simulated defender (runs on nng's threads) ---- */

static void sim_send(struct sim *s);
static void watch_send(struct sim *s);

/*
 * The naps between heartbeats: one thread and a min-heap of deadlines, not
 * nng_sleep_aio.  nng 1.5.2 keeps every aio with a deadline on one list
 * that its expire thread walks at each wake-up; with hundreds of sleeping
 * defenders that walk cost this process more CPU than the console and its
 * database together (perf: nni_aio_expire_loop).  A sim in the heap has no
 * operation in flight: the thread that pops it owns it until its request
 * is queued.  Requests keep nng's deadline; few are in flight at a time.
 */
struct nap {
	double due;
	struct sim *s;
};
static struct nap naps[FLEET_MAX];
static size_t nnaps;
static pthread_mutex_t nap_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t nap_cond;
static pthread_t nap_thread;
static bool nap_started;

static void nap_swap(size_t a, size_t b)
{
	struct nap t = naps[a];

	naps[a] = naps[b];
	naps[b] = t;
}

static void sim_nap(struct sim *s, int ms)
{
	size_t i;

	s->state = SIM_NAP;
	pthread_mutex_lock(&nap_lock);
	i = nnaps++;
	naps[i] = (struct nap){.due = now_s() + ms / 1000.0, .s = s};
	for (; i > 0 && naps[(i - 1) / 2].due > naps[i].due; i = (i - 1) / 2)
		nap_swap(i, (i - 1) / 2);
	if (i == 0)
		pthread_cond_signal(&nap_cond);
	pthread_mutex_unlock(&nap_lock);
}

static void *nap_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&nap_lock);
	while (!atomic_load(&stopping)) {
		struct timespec ts;
		struct sim *s;
		double now = now_s();

		if (nnaps == 0) {
			pthread_cond_wait(&nap_cond, &nap_lock);
			continue;
		}
		if (naps[0].due > now) {
			ts.tv_sec = (time_t)naps[0].due;
			ts.tv_nsec = (long)((naps[0].due - (double)ts.tv_sec) * 1e9);
			pthread_cond_timedwait(&nap_cond, &nap_lock, &ts);
			continue;
		}
		s = naps[0].s;
		naps[0] = naps[--nnaps];
		for (size_t i = 0;;) {
			size_t l = 2 * i + 1, r = l + 1, m = i;

			if (l < nnaps && naps[l].due < naps[m].due)
				m = l;
			if (r < nnaps && naps[r].due < naps[m].due)
				m = r;
			if (m == i)
				break;
			nap_swap(i, m);
			i = m;
		}
		pthread_mutex_unlock(&nap_lock);
		sim_send(s);
		pthread_mutex_lock(&nap_lock);
	}
	pthread_mutex_unlock(&nap_lock);
	return NULL;
}

static int nap_start(void)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&nap_cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&nap_thread, NULL, nap_main, NULL) != 0)
		return -1;
	nap_started = true;
	return 0;
}

/* After an exchange: the acknowledging heartbeat at once, else the next after an interval. */
static void sim_next(struct sim *s)
{
	int ms = interval_ms;

	if (s->report_now) {
		s->report_now = false;
		sim_send(s);
		return;
	}
	/*
	 * The first wait after connecting is a random part of the interval:
	 * a fleet's defenders started at different times, so their heartbeats
	 * are spread over the interval, not in step by connection wave.
	 */
	if (s->spread) {
		s->spread = false;
		ms = (int)((unsigned)rand() % (unsigned)(interval_ms + 1));
	}
	sim_nap(s, ms);
}

static void sim_send(struct sim *s)
{
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Hello hello = VIGIL__HELLO__INIT;
	Vigil__Heartbeat hb = VIGIL__HEARTBEAT__INIT;
	Vigil__RulesState rs = VIGIL__RULES_STATE__INIT;
	Vigil__Label lab[2] = {VIGIL__LABEL__INIT, VIGIL__LABEL__INIT};
	Vigil__Label *labp[2] = {&lab[0], &lab[1]};
	nng_msg *m;

	rs.version = (uint64_t)atomic_load(&s->held);
	rs.protocol = 1;
	env.seq = ++s->seq;
	s->sent_hello = !s->registered;
	if (s->sent_hello) {
		hello.hostname = s->cn;
		hello.kernel = "6.1.0-bench";
		hello.os = "Debian GNU/Linux 12 (bookworm)";
		hello.defender_version = VIGIL_VERSION;
		hello.bpf_status = "not loaded (rules_bench)";
		lab[0].key = "env";
		lab[0].value = "bench";
		lab[1].key = "role";
		lab[1].value = "rules-bench";
		hello.n_labels = 2;
		hello.labels = labp;
		hello.rules = &rs;
		env.body_case = VIGIL__ENVELOPE__BODY_HELLO;
		env.hello = &hello;
		atomic_fetch_add(&n_hellos, 1);
	} else {
		hb.uptime_ms = s->seq * (uint64_t)interval_ms;
		hb.n_counters = NCOUNTERS;
		hb.counters = counter_ptrs;
		hb.rules = &rs;
		env.body_case = VIGIL__ENVELOPE__BODY_HEARTBEAT;
		env.heartbeat = &hb;
	}
	if (nng_msg_alloc(&m, vigil__envelope__get_packed_size(&env)) != 0) {
		atomic_fetch_add(&n_send_errors, 1);
		sim_nap(s, interval_ms);
		return;
	}
	vigil__envelope__pack(&env, nng_msg_body(m));
	s->reported = atomic_load(&s->held);
	s->state = SIM_SEND;
	s->t_send = now_s();
	nng_aio_set_msg(s->aio, m);
	nng_aio_set_timeout(s->aio, REQUEST_TIMEOUT_MS);
	nng_ctx_send(s->ctx, s->aio);
}

/* Send the watch: what the defender holds now (the next one is the acknowledgement). */
static void watch_send(struct sim *s)
{
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Watch w = VIGIL__WATCH__INIT;
	Vigil__RulesState rs = VIGIL__RULES_STATE__INIT;
	nng_msg *m;

	rs.version = (uint64_t)atomic_load(&s->held);
	rs.protocol = 1;
	w.rules = &rs;
	env.seq = ++s->wseq;
	env.body_case = VIGIL__ENVELOPE__BODY_WATCH;
	env.watch = &w;
	if (nng_msg_alloc(&m, vigil__envelope__get_packed_size(&env)) != 0) {
		atomic_fetch_add(&n_send_errors, 1);
		s->wstate = W_SLEEP;
		nng_sleep_aio(1000, s->waio);
		return;
	}
	vigil__envelope__pack(&env, nng_msg_body(m));
	s->wstate = W_SEND;
	nng_aio_set_msg(s->waio, m);
	nng_aio_set_timeout(s->waio, WATCH_TIMEOUT_MS);
	nng_ctx_send(s->wctx, s->waio);
}

/* A watch's answer: a newer set is in force on arrival (the defender applies it, then acks). */
static void watch_reply(struct sim *s)
{
	nng_msg *m = nng_aio_get_msg(s->waio);
	double t = now_s();
	Vigil__Reply *r = vigil__reply__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
	bool ok = r != NULL && r->status == VIGIL__REPLY__STATUS__OK;

	nng_msg_free(m);
	if (ok && r->rules != NULL && (int64_t)r->rules->version > atomic_load(&s->held)) {
		int64_t v = (int64_t)r->rules->version;

		atomic_store(&s->held, v);
		s->set_version = v;
		s->t_set = s->t_ack = t;
		atomic_store(&s->acked, v);
	}
	if (r != NULL)
		vigil__reply__free_unpacked(r, NULL);
	if (ok) {
		watch_send(s);
		return;
	}
	atomic_fetch_add(&n_not_ok, 1);
	s->wstate = W_SLEEP;
	nng_sleep_aio(1000, s->waio);
}

static void watch_cb(void *arg)
{
	struct sim *s = arg;
	int rv = nng_aio_result(s->waio);

	if (s->wstate == W_SEND && rv != 0)
		nng_msg_free(nng_aio_get_msg(s->waio));
	if (atomic_load(&stopping))
		return;
	switch (s->wstate) {
	case W_SEND:
		if (rv != 0) {
			atomic_fetch_add(&n_send_errors, 1);
			s->wstate = W_SLEEP;
			nng_sleep_aio(1000, s->waio);
			return;
		}
		s->wstate = W_RECV;
		nng_aio_set_timeout(s->waio, WATCH_TIMEOUT_MS);
		nng_ctx_recv(s->wctx, s->waio);
		return;
	case W_RECV:
		if (rv != 0) {
			atomic_fetch_add(&n_timeouts, 1);
			s->wstate = W_SLEEP;
			nng_sleep_aio(1000, s->waio);
			return;
		}
		watch_reply(s);
		return;
	case W_SLEEP:
		watch_send(s);
		return;
	}
}

static void sim_reply(struct sim *s)
{
	nng_msg *m = nng_aio_get_msg(s->aio);
	double t = now_s();
	Vigil__Reply *r = vigil__reply__unpack(NULL, nng_msg_len(m), nng_msg_body(m));

	nng_msg_free(m);
	if (r == NULL) {
		atomic_fetch_add(&n_not_ok, 1);
		sim_nap(s, interval_ms);
		return;
	}
	if (!s->sent_hello && atomic_load(&rtt_recording))
		rtt_add((t - s->t_send) * 1000);
	switch (r->status) {
	case VIGIL__REPLY__STATUS__OK:
		if (s->sent_hello) {
			s->registered = true;
			atomic_store(&s->hello_ok, true);
		}
		if (s->sent_hello && use_watch && !s->watching) {
			s->watching = true;
			watch_send(s);
		}
		if (!use_watch && r->rules != NULL &&
		    (int64_t)r->rules->version > atomic_load(&s->held)) {
			atomic_store(&s->held, (int64_t)r->rules->version);
			s->set_version = (int64_t)r->rules->version;
			s->t_set = t;
			s->report_now = true;
		} else if (r->rules == NULL) {
			int64_t t0 = atomic_load(&g_t0_ns), sent = (int64_t)(s->t_send * 1e9);

			if (t0 != 0 && s->reported < atomic_load(&g_target) && sent > t0)
				atomic_max(&g_stale_ns, sent - t0);
		}
		if (!use_watch && !s->sent_hello && s->reported > atomic_load(&s->acked)) {
			s->t_ack = t;
			atomic_store(&s->acked, s->reported);
		}
		break;
	case VIGIL__REPLY__STATUS__HELLO_REQUIRED:
		atomic_fetch_add(&n_hello_required, 1);
		s->registered = false;
		s->report_now = true; /* say hello at once, as the defender does */
		break;
	default:
		atomic_fetch_add(&n_not_ok, 1);
	}
	vigil__reply__free_unpacked(r, NULL);
	sim_next(s);
}

static void sim_cb(void *arg)
{
	struct sim *s = arg;
	int rv = nng_aio_result(s->aio);

	if (s->state == SIM_SEND && rv != 0)
		nng_msg_free(nng_aio_get_msg(s->aio));
	if (atomic_load(&stopping))
		return;
	switch (s->state) {
	case SIM_SEND:
		if (rv != 0) {
			atomic_fetch_add(&n_send_errors, 1);
			s->registered = false;
			sim_nap(s, interval_ms);
			return;
		}
		s->state = SIM_RECV;
		nng_aio_set_timeout(s->aio, REQUEST_TIMEOUT_MS);
		nng_ctx_recv(s->ctx, s->aio);
		return;
	case SIM_RECV:
		if (rv != 0) {
			/* No answer in 5 s: hello again when one comes, as the defender does. */
			atomic_fetch_add(&n_timeouts, 1);
			s->registered = false;
			sim_nap(s, interval_ms);
			return;
		}
		sim_reply(s);
		return;
	case SIM_NAP: /* cannot happen: a nap is the nap thread's */
		return;
	}
}

/* ---- the fleet (main thread) ---- */

/* Connect simulated defenders until there are n, WAVE at a time; each says hello. */
static int fleet_grow(int n)
{
	while (nsims < n && !interrupted) {
		int from = nsims, to = nsims + WAVE < n ? nsims + WAVE : n;
		double until = now_s() + 60;

		for (int i = from; i < to; i++) {
			struct sim *s = &sims[i];

			h_link_open(&s->link, &con, &pki, s->cert, s->key);
			nng_socket_set_size(s->link.sock, NNG_OPT_RECVMAXSZ, VIGIL_MSG_MAX + 64);
			if (nng_ctx_open(&s->ctx, s->link.sock) != 0 ||
			    nng_aio_alloc(&s->aio, sim_cb, s) != 0) {
				fprintf(stderr,
					"rules_bench: cannot open a context: out of memory\n");
				return -1;
			}
			nng_ctx_set_ms(s->ctx, NNG_OPT_REQ_RESENDTIME, RESEND_MS);
			if (nng_ctx_open(&s->wctx, s->link.sock) != 0 ||
			    nng_aio_alloc(&s->waio, watch_cb, s) != 0) {
				fprintf(stderr,
					"rules_bench: cannot open a context: out of memory\n");
				return -1;
			}
			/* Held by the console on purpose: not to be sent again meanwhile. */
			nng_ctx_set_ms(s->wctx, NNG_OPT_REQ_RESENDTIME, WATCH_TIMEOUT_MS + 5000);
			s->open = true;
			s->spread = true;
			nsims++;
			sim_send(s);
		}
		for (int i = from; i < to; i++) {
			while (!atomic_load(&sims[i].hello_ok) && !interrupted) {
				if (now_s() > until) {
					fprintf(stderr,
						"rules_bench: %s had no answer to its hello in 60 s"
						" (console log: %s)\n",
						sims[i].cn, con.log);
					return -1;
				}
				h_sleep_ms(10);
			}
		}
	}
	return interrupted ? -1 : 0;
}

static void fleet_stop(void)
{
	pthread_mutex_lock(&nap_lock);
	atomic_store(&stopping, true);
	pthread_cond_broadcast(&nap_cond);
	pthread_mutex_unlock(&nap_lock);
	if (nap_started)
		pthread_join(nap_thread, NULL);
	nap_started = false;
	for (int i = 0; i < nsims; i++)
		if (sims[i].open) {
			nng_aio_stop(sims[i].aio);
			nng_aio_stop(sims[i].waio);
		}
	for (int i = 0; i < nsims; i++) {
		if (!sims[i].open)
			continue;
		nng_ctx_close(sims[i].ctx);
		nng_ctx_close(sims[i].wctx);
		h_link_close(&sims[i].link);
		nng_aio_free(sims[i].aio);
		nng_aio_free(sims[i].waio);
		sims[i].open = false;
	}
}

/* ---- the API ---- */

static long long rule_id;
static int change_no;

/*
 * Change the rule (create it the first time), so that the rule set gets a
 * new version; *ret_s gets how long the request took.  Returns the version.
 */
static long long rule_change(double *ret_s)
{
	char body[512], path[64];
	json_t *doc = NULL;
	double t;
	int status, want = rule_id == 0 ? 201 : 200;
	long long v;

	change_no++;
	snprintf(body, sizeof(body),
		 "{\"name\":\"bench-propagation\",\"scope\":{\"hosts\":[\"bench-*\"]},"
		 "\"files\":{\"deny\":{\"write\":[\"/srv/bench/%d/*\"]}}}",
		 change_no);
	snprintf(path, sizeof(path), "/api/v1/rules/%lld", rule_id);
	t = now_s();
	status = h_api_request(&con, &pki, rule_id == 0 ? "POST" : "PUT",
			       rule_id == 0 ? "/api/v1/rules" : path, body, NULL, con.token, &doc);
	*ret_s = now_s() - t;
	if (status != want || doc == NULL) {
		char *text = doc != NULL ? json_dumps(doc, 0) : NULL;

		fprintf(stderr, "rules_bench: the rule change answered %d, not %d: %s\n", status,
			want, text != NULL ? text : "(no JSON)");
		free(text);
		json_decref(doc);
		return -1;
	}
	if (rule_id == 0)
		rule_id = json_integer_value(json_object_get(json_object_get(doc, "rule"), "id"));
	v = json_integer_value(json_object_get(doc, "version"));
	json_decref(doc);
	return v;
}

/* Hosts bench-0000..n-1 that /api/v1/hosts shows enforcing version, not lagging; -1: no list. */
static int hosts_enforcing(int n, long long version)
{
	json_t *doc = NULL, *h;
	size_t i;
	int count = 0;

	if (h_api_get(&con, &pki, "/api/v1/hosts", con.token, &doc) != 200 || doc == NULL) {
		json_decref(doc);
		return -1;
	}
	json_array_foreach(json_object_get(doc, "hosts"), i, h)
	{
		const char *id = json_string_value(json_object_get(h, "host_id"));
		json_t *r = json_object_get(h, "rules");
		int k;

		if (id == NULL || sscanf(id, "bench-%d", &k) != 1 || k < 0 || k >= n)
			continue;
		if (json_integer_value(json_object_get(r, "version")) == version &&
		    !json_is_true(json_object_get(r, "lagging")))
			count++;
	}
	json_decref(doc);
	return count;
}

/* ---- statistics ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The p-quantile (nearest rank) of v[0..n), which it sorts. */
static double pct(double *v, size_t n, double p)
{
	size_t k;

	if (n == 0)
		return NAN;
	qsort(v, n, sizeof(*v), cmp_double);
	k = (size_t)ceil(p * (double)n);
	return v[k > 0 ? k - 1 : 0];
}

/* ---- the phases ---- */

struct baseline {
	double api_p50, api_p99; /* ms, the rule change with no defender connected */
	double get_p50, get_p99; /* ms, GET of the rule: the same HTTPS round trip, no write */
	double rtt_p50, rtt_p99; /* ms, an idle heartbeat's round trip, one defender */
	double floor_p50, floor_p99;
};

static int measure_baseline(struct baseline *b)
{
	double api[API_BASELINE_N], get[API_BASELINE_N], rtt[RTT_BASELINE_N], d, period;
	char path[64];
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Hello hello = VIGIL__HELLO__INIT;
	Vigil__Heartbeat hb = VIGIL__HEARTBEAT__INIT;
	Vigil__RulesState rs = VIGIL__RULES_STATE__INIT;
	struct h_link l;
	Vigil__Reply *r;

	for (int i = 0; i < API_BASELINE_N && !interrupted; i++)
		if (rule_change(&api[i]) < 0)
			return -1;
		else
			api[i] *= 1000;
	snprintf(path, sizeof(path), "/api/v1/rules/%lld", rule_id);
	for (int i = 0; i < API_BASELINE_N && !interrupted; i++) {
		double t = now_s();
		int status = h_api_get(&con, &pki, path, con.token, NULL);

		get[i] = (now_s() - t) * 1000;
		if (status != 200) {
			fprintf(stderr, "rules_bench: GET %s answered %d\n", path, status);
			return -1;
		}
	}
	/* host-a (h_pki_make's host certificate): hello, then heartbeats back to back. */
	h_link_open(&l, &con, &pki, pki.host_cert, pki.host_key);
	rs.protocol = 1;
	hello.hostname = "host-a";
	hello.defender_version = VIGIL_VERSION;
	hello.rules = &rs;
	env.body_case = VIGIL__ENVELOPE__BODY_HELLO;
	env.hello = &hello;
	r = h_link_request(&l, &env);
	if (r->rules != NULL)
		rs.version = r->rules->version;
	vigil__reply__free_unpacked(r, NULL);
	hb.n_counters = NCOUNTERS;
	hb.counters = counter_ptrs;
	hb.rules = &rs;
	env.body_case = VIGIL__ENVELOPE__BODY_HEARTBEAT;
	env.heartbeat = &hb;
	for (int i = 0; i < RTT_BASELINE_N && !interrupted; i++) {
		double t = now_s();

		env.seq = (uint64_t)i + 2;
		r = h_link_request(&l, &env);
		rtt[i] = (now_s() - t) * 1000;
		if (r->status != VIGIL__REPLY__STATUS__OK) {
			fprintf(stderr, "rules_bench: baseline heartbeat answered status %d: %s\n",
				(int)r->status, r->error);
			vigil__reply__free_unpacked(r, NULL);
			h_link_close(&l);
			return -1;
		}
		vigil__reply__free_unpacked(r, NULL);
	}
	h_link_close(&l);
	if (interrupted)
		return -1;
	b->api_p50 = pct(api, API_BASELINE_N, 0.50);
	b->api_p99 = pct(api, API_BASELINE_N, 0.99);
	b->get_p50 = pct(get, API_BASELINE_N, 0.50);
	b->get_p99 = pct(get, API_BASELINE_N, 0.99);
	b->rtt_p50 = pct(rtt, RTT_BASELINE_N, 0.50);
	b->rtt_p99 = pct(rtt, RTT_BASELINE_N, 0.99);
	/*
	 * An instant console: a defender's next heartbeat after the change
	 * comes after a uniform part of its period (interval + round trip);
	 * the set comes back with it and the acknowledging heartbeat follows,
	 * two round trips in all.
	 */
	period = interval_ms + b->rtt_p50;
	d = 2 * b->rtt_p50;
	b->floor_p50 = 0.50 * period + d;
	b->floor_p99 = 0.99 * period + d;
	printf("baseline: the rule change (PUT) with no defender connected: p50 %.1f ms, p99 %.1f"
	       " ms (%d changes)\n",
	       b->api_p50, b->api_p99, API_BASELINE_N);
	printf("          GET of the same rule (the same new HTTPS connection, no write): p50 %.1f"
	       " ms, p99 %.1f ms\n",
	       b->get_p50, b->get_p99);
	printf("baseline: an idle heartbeat's round trip, one defender, back to back: p50 %.2f ms,"
	       " p99 %.2f ms (%d)\n",
	       b->rtt_p50, b->rtt_p99, RTT_BASELINE_N);
	printf("schedule floor (an instant console with these heartbeats: a uniform part of the"
	       " %d ms + round trip period, then two round trips): p50 %.0f ms, p99 %.0f ms\n",
	       interval_ms, b->floor_p50, b->floor_p99);
	fflush(stdout);
	return 0;
}

static int run_fleet(int n, int rounds, const struct baseline *b)
{
	size_t cap = (size_t)n * (size_t)rounds, nack = 0, nset = 0, ndelta = 0;
	double *ack = calloc(cap, sizeof(double)), *set = calloc(cap, sizeof(double));
	double *delta = calloc(cap, sizeof(double)), stale_ms = 0, api_max = 0, t_ramp = now_s();
	double recorded[1000], rec50[1000] = {0}, rec99[1000] = {0};
	size_t nrec = 0;
	double t_run = 0, cpu_self = 0, cpu_con = 0, cpu_pg = 0, c1, p1;
	uint64_t to0, se0, no0, hr0, he0;
	int missing = 0, shown_min = INT_MAX, rc = -1;

	if (ack == NULL || set == NULL || delta == NULL) {
		fprintf(stderr, "rules_bench: out of memory\n");
		goto out;
	}
	if (fleet_grow(n) < 0)
		goto out;
	t_ramp = now_s() - t_ramp;
	/* Two intervals for the newcomers' acknowledgements and spread first heartbeats. */
	h_sleep_ms(2 * interval_ms + 200);
	to0 = atomic_load(&n_timeouts);
	se0 = atomic_load(&n_send_errors);
	no0 = atomic_load(&n_not_ok);
	hr0 = atomic_load(&n_hello_required);
	he0 = atomic_load(&n_hellos);
	pthread_mutex_lock(&rtt_lock);
	nrtts = 0;
	pthread_mutex_unlock(&rtt_lock);
	atomic_store(&rtt_recording, true);
	atomic_store(&g_stale_ns, 0);
	t_run = now_s();
	cpu_self = self_cpu_s();
	tree_cpu_s(con.pid, &cpu_con, &cpu_pg);
	for (int r = 0; r < rounds && !interrupted; r++) {
		double api_s, t0, until;
		long long v;
		int shown, behind;

		/* A random moment relative to the heartbeats (it matters with one defender). */
		h_sleep_ms((int)((unsigned)rand() % (unsigned)(interval_ms + 1)));
		if ((v = rule_change(&api_s)) < 0)
			goto out;
		t0 = now_s();
		atomic_store(&g_t0_ns, (int64_t)(t0 * 1e9));
		atomic_store(&g_target, v);
		if (api_s * 1000 > api_max)
			api_max = api_s * 1000;
		until = t0 + ROUND_TIMEOUT_MS / 1000.0;
		do {
			behind = 0;
			for (int i = 0; i < n; i++)
				behind += atomic_load(&sims[i].acked) < v;
			if (behind > 0)
				h_sleep_ms(5);
		} while (behind > 0 && now_s() < until && !interrupted);
		for (int i = 0; i < n; i++) {
			struct sim *s = &sims[i];

			if (atomic_load(&s->acked) < v) {
				missing++;
				continue;
			}
			ack[nack++] = (s->t_ack - t0) * 1000;
			if (s->set_version == v) {
				set[nset++] = (s->t_set - t0) * 1000;
				delta[ndelta++] = (s->t_ack - s->t_set) * 1000;
			}
		}
		/*
		 * The console's record of every acknowledgement, read from its
		 * database every 10 ms (the API's host list at 1000 hosts takes
		 * longer than that to answer on a loaded console).
		 */
		char q[160];
		snprintf(q, sizeof(q),
			 "SELECT count(*) FROM hosts WHERE host_id LIKE 'bench-%%'"
			 " AND rules_version = %lld",
			 v);
		for (long long c = 0; c < n && now_s() < until && !interrupted; h_sleep_ms(10)) {
			c = h_db_count(&con, q);
			if (c * 2 >= n && rec50[nrec] == 0)
				rec50[nrec] = (now_s() - t0) * 1000;
			if (c * 100 >= 99LL * n && rec99[nrec] == 0)
				rec99[nrec] = (now_s() - t0) * 1000;
		}
		recorded[nrec++] = (now_s() - t0) * 1000;
		shown = hosts_enforcing(n, v);
		if (shown < shown_min)
			shown_min = shown;
	}
	atomic_store(&rtt_recording, false);
	stale_ms = (double)atomic_load(&g_stale_ns) / 1e6;
	t_run = now_s() - t_run;
	cpu_self = self_cpu_s() - cpu_self;
	tree_cpu_s(con.pid, &c1, &p1);
	cpu_con = c1 - cpu_con;
	cpu_pg = p1 - cpu_pg;
	if (interrupted)
		goto out;

	double p50 = pct(ack, nack, 0.50), p99 = pct(ack, nack, 0.99), max = pct(ack, nack, 1);
	bool target = n == 1000;
	pthread_mutex_lock(&rtt_lock);
	double hb50 = pct(rtts, nrtts, 0.50), hb99 = pct(rtts, nrtts, 0.99);
	size_t nhb = nrtts;
	pthread_mutex_unlock(&rtt_lock);

	/* With watches the console's record is the acknowledgement: the target is judged on it. */
	double judged = use_watch ? pct(rec99, nrec, 1) : p99;

	printf("%4d defender(s): %s p50 %.0f ms, p99 %.0f ms, max %.0f ms", n,
	       use_watch ? "set in force" : "ack", p50, p99, max);
	if (target)
		printf("  (target: acknowledged by 99%% within 1000 ms at 1000: %.0f ms, %s)",
		       judged, judged < 1000 && missing == 0 ? "PASS" : "FAIL");
	printf("\n                 p99 / schedule floor %.2f; p50 / floor %.2f\n",
	       p99 / b->floor_p99, p50 / b->floor_p50);
	printf("                 %d change(s), %zu acks, %d missing after %d s; /api/v1/hosts"
	       " showed the version for %d of %d hosts (fewest over the changes)\n",
	       rounds, nack, missing, ROUND_TIMEOUT_MS / 1000, shown_min == INT_MAX ? 0 : shown_min,
	       n);
	printf("                 acknowledgements recorded by the console (its hosts table, read"
	       " every 10 ms): half of the hosts by %.0f ms, 99%% by %.0f ms, all by %.0f ms"
	       " (medians over the changes; worst: %.0f, %.0f, %.0f ms)\n",
	       pct(rec50, nrec, 0.5), pct(rec99, nrec, 0.5), pct(recorded, nrec, 0.5),
	       pct(rec50, nrec, 1), pct(rec99, nrec, 1), pct(recorded, nrec, 1));
	printf("                 set received: p50 %.0f ms, p99 %.0f ms, earliest %.0f ms; set ->"
	       " ack (the acknowledging heartbeat's round trip): p50 %.1f ms, p99 %.1f ms\n",
	       pct(set, nset, 0.50), pct(set, nset, 0.99), pct(set, nset, 0),
	       pct(delta, ndelta, 0.50), pct(delta, ndelta, 0.99));
	printf("                 heartbeat round trip during the changes: p50 %.1f ms, p99 %.1f ms"
	       " (%zu heartbeats); the API change took at most %.0f ms\n",
	       hb50, hb99, nhb, api_max);
	printf("                 the old version was answered to heartbeats sent up to %.0f ms"
	       " after the change returned\n",
	       stale_ms);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	printf("                 CPU over the %.1f s of changes (%ld cores: %.0f core-s): console"
	       " %.1f s, its PostgreSQL %.1f s, this simulator %.1f s\n",
	       t_run, ncpu, (double)ncpu * t_run, cpu_con, cpu_pg, cpu_self);
	printf("                 connecting the fleet took %.1f s; since: %" PRIu64
	       " request timeouts, %" PRIu64 " send errors, %" PRIu64 " answers not OK, %" PRIu64
	       " HELLO_REQUIRED, %" PRIu64 " hellos\n",
	       t_ramp, atomic_load(&n_timeouts) - to0, atomic_load(&n_send_errors) - se0,
	       atomic_load(&n_not_ok) - no0, atomic_load(&n_hello_required) - hr0,
	       atomic_load(&n_hellos) - he0);
	fflush(stdout);
	rc = 0;
out:
	free(ack);
	free(set);
	free(delta);
	return rc;
}

/* ---- the program ---- */

/* The console's warnings and errors: how many, and the first few. */
static void console_log_report(void)
{
	char *text = h_slurp(con.log), *line, *save = NULL;
	int n = 0;

	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		if (strstr(line, " warn: ") == NULL && strstr(line, " error: ") == NULL)
			continue;
		if (n++ < 5)
			printf("  console: %s\n", line);
	}
	printf("console log: %d warning or error line(s)%s\n", n,
	       n > 5 ? ", the first 5 above" : "");
	free(text);
}

static void cleanup(void)
{
	if (cleaned)
		return;
	cleaned = true;
	if (con.pid > 0)
		h_console_kill(&con, SIGTERM);
	if (dir[0] != '\0') {
		if (keep_dir)
			fprintf(stderr, "rules_bench: kept %s (console log: %s)\n", dir, con.log);
		else
			h_rmrf(dir);
	}
}

/* On exit through a failed harness assertion: the fleet's nng threads still run. */
static void cleanup_at_exit(void)
{
	if (cleaned)
		return;
	cleanup();
	fflush(NULL);
	_exit(1);
}

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* VIGIL_BUILD_DIR for h_bin: the build directory this program was built in. */
static void build_dir_default(void)
{
	char exe[PATH_MAX];
	ssize_t n;

	if (getenv("VIGIL_BUILD_DIR") != NULL)
		return;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return;
	exe[n] = '\0';
	for (int up = 0; up < 3; up++) { /* <build>/tests/bench/rules_bench */
		char *slash = strrchr(exe, '/');

		if (slash == NULL)
			return;
		*slash = '\0';
	}
	setenv("VIGIL_BUILD_DIR", exe, 1);
}

static int parse_fleet(const char *arg, int *fleet, int *nfleet)
{
	char buf[128], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", arg);
	*nfleet = 0;
	for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		char *end;
		long v = strtol(t, &end, 10);

		if (*end != '\0' || v < 1 || v > FLEET_MAX || *nfleet == FLEETS_MAX)
			return -1;
		fleet[(*nfleet)++] = (int)v;
	}
	return *nfleet > 0 ? 0 : -1;
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: rules_bench [--fleet LIST] [--rounds N] [--heartbeat-ms N] [--no-watch] "
	    "[--keep]\n"
	    "  --fleet LIST       fleet sizes, comma-separated, 1..%d (default 1,100,1000)\n"
	    "  --rounds N         rule changes per fleet size (default 40 for fewer than 10\n"
	    "                     defenders, 10 below 500, 5 from 500)\n"
	    "  --heartbeat-ms N   the defenders' heartbeat interval, 100..10000, also given to "
	    "the\n"
	    "                     console (default 1000, the defender's and console's default)\n"
	    "  --no-watch         sets by heartbeat replies only, no held watch (the way before\n"
	    "                     watches: p99 is about one heartbeat interval)\n"
	    "  --keep             keep the directory (PKI, console state and log)\n",
	    FLEET_MAX);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"fleet", required_argument, NULL, 'f'},
					     {"rounds", required_argument, NULL, 'r'},
					     {"heartbeat-ms", required_argument, NULL, 'H'},
					     {"keep", no_argument, NULL, 'k'},
					     {"no-watch", no_argument, NULL, 'W'},
					     {"help", no_argument, NULL, 'h'},
					     {0}};
	int fleet[FLEETS_MAX] = {1, 100, 1000}, nfleet = 3, rounds = 0, maxn = 0, opt, rc = 1;
	char hb_arg[16], timeout_arg[16], conns_arg[16];
	struct sigaction sa = {.sa_handler = on_signal};
	struct baseline b;
	struct rlimit rl;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			if (parse_fleet(optarg, fleet, &nfleet) < 0) {
				usage(stderr);
				return 2;
			}
			break;
		case 'r':
			rounds = atoi(optarg);
			if (rounds < 1 || rounds > 1000) {
				usage(stderr);
				return 2;
			}
			break;
		case 'H':
			interval_ms = atoi(optarg);
			if (interval_ms < 100 || interval_ms > 10000) {
				usage(stderr);
				return 2;
			}
			break;
		case 'k':
			keep_dir = true;
			break;
		case 'W':
			use_watch = false;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	qsort(fleet, (size_t)nfleet, sizeof(int), cmp_int);
	maxn = fleet[nfleet - 1];
	build_dir_default();
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* Two descriptors per defender here, as many in the console (which inherits this). */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	srand((unsigned)getpid());
	for (size_t i = 0; i < NCOUNTERS; i++) {
		vigil__counter__init(&counters[i]);
		counters[i].name = (char *)counter_names[i];
		counters[i].value = 1000 + i;
		counter_ptrs[i] = &counters[i];
	}

	h_tmpdir(dir);
	atexit(cleanup_at_exit);
	h_pki_make(dir, &pki);
	for (int i = 0; i < maxn && !interrupted; i++) {
		snprintf(sims[i].cn, sizeof(sims[i].cn), "bench-%04d", i);
		h_pki_issue_client(&pki, sims[i].cn, 0, 0, sims[i].cert, sims[i].key);
	}
	/*
	 * The console's limits, explicit: its defaults, which suit 1000
	 * defenders with one certificate each (8 connections per certificate,
	 * 4096 in all; a host is disconnected after 10 heartbeats unheard).
	 */
	snprintf(hb_arg, sizeof(hb_arg), "%d", interval_ms);
	snprintf(timeout_arg, sizeof(timeout_arg), "%d", 10 * interval_ms);
	snprintf(conns_arg, sizeof(conns_arg), "%d", maxn + 64 > 4096 ? maxn + 64 : 4096);
	const char *extra[] = {"--heartbeat-interval-ms",
			       hb_arg,
			       "--host-timeout-ms",
			       timeout_arg,
			       "--link-conns-per-cert",
			       "8",
			       "--link-conns-max",
			       conns_arg,
			       NULL};
	if (!interrupted)
		h_console_start(&con, dir, &pki, extra);
	if (interrupted)
		goto out;
	printf("rules_bench: rule-set propagation through %s with its private PostgreSQL;\n"
	       "  console flags --heartbeat-interval-ms %s --host-timeout-ms %s"
	       " --link-conns-per-cert 8 --link-conns-max %s\n",
	       h_bin("vigil-console"), hb_arg, timeout_arg, conns_arg);
	if (use_watch)
		printf("measured: from PUT /api/v1/rules/{id} returning (new version committed) to"
		       " each simulated defender receiving the new set in the answer to its held"
		       " watch (in force from then: the defender applies it before its next watch,"
		       " which the console records as the acknowledgement); defenders also"
		       " heartbeat every %d ms (defender/session.c)\n",
		       interval_ms);
	else
		printf("measured: from PUT /api/v1/rules/{id} returning (new version committed) to"
		       " each simulated defender receiving the console's OK to the heartbeat that"
		       " reported the new version (recorded in hosts before the OK is sent);"
		       " defenders heartbeat every %d ms after the last reply and acknowledge a new"
		       " set at once, without watches\n",
		       interval_ms);
	double load[3];
	if (getloadavg(load, 3) == 3)
		printf("machine: %ld cores, load average %.2f %.2f %.2f at the start (others' work"
		       " shares the cores: indicative numbers)\n",
		       sysconf(_SC_NPROCESSORS_ONLN), load[0], load[1], load[2]);
	fflush(stdout);
	if (nap_start() < 0) {
		fprintf(stderr, "rules_bench: cannot start a thread\n");
		goto out;
	}
	if (measure_baseline(&b) < 0)
		goto out;
	for (int f = 0; f < nfleet; f++) {
		int n = fleet[f], r = rounds;

		if (f > 0 && n == fleet[f - 1])
			continue;
		if (r == 0)
			r = n < 10 ? 40 : n < 500 ? 10 : 5;
		if (run_fleet(n, r, &b) < 0)
			goto out;
	}
	console_log_report();
	rc = 0;
out:
	if (interrupted)
		fprintf(stderr, "rules_bench: interrupted\n");
	fleet_stop();
	cleanup();
	free(rtts);
	return rc;
}
