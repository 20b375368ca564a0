/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vigil-defender: the host daemon.  Loads the BPF programs, dials the
 * consoles over mutual TLS, says hello and sends heartbeats; when the console
 * goes away it keeps redialing with backoff and says hello again on return.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "capture.h"
#include "defender_config.h"
#include "delivery.h"
#include "enrich.h"
#include "event.h"
#include "event_json.h"
#include "eventstream.h"
#include "fsutil.h"
#include "hostinfo.h"
#include "learn.h"
#include "log.h"
#include "tls.h"
#include "uplink.h"
#include "vigil.pb-c.h"

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Sleep ms, waking early when a stop is requested. */
static void nap(int ms)
{
	uint64_t until = now_ms() + (uint64_t)ms;

	while (!stop_requested && now_ms() < until) {
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: vigil-defender --config FILE [--log-level debug|info|warn|error] [--check]\n"
	    "       vigil-defender --events-json [--types exec,fork,exit,file,net] [--pid PID]\n"
	    "                      [--descendants] [--comm NAME] [--ringbuf-kb N] [--all-reads]\n"
	    "                      [--stats-interval-ms N]\n"
	    "  --config FILE        the defender's configuration (console URLs, certificates)\n"
	    "  --check              validate the configuration and certificates, then exit\n"
	    "  --events-json        no console: print captured events as JSON lines on stdout\n"
	    "  --types LIST         only these event types\n"
	    "  --pid PID            only this process (--descendants: and the processes it forks)\n"
	    "  --comm NAME          only processes with this command name\n"
	    "  --ringbuf-kb N       kernel ring buffer size, a power of two (default 8192)\n"
	    "  --all-reads          report every read-only open, not the first per process and "
	    "file\n"
	    "  --stats-interval-ms N  print a stats line this often (default: only at the end)\n");
}

static int parse_u32(const char *opt, const char *s, uint32_t min, uint32_t max, uint32_t *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "vigil-defender: %s must be an integer from %u to %u, not '%s'\n",
			opt, min, max, s);
		return -1;
	}
	*ret = (uint32_t)v;
	return 0;
}

#define RELEARN_QUEUE_MAX 16
#define COMMANDS_DONE_MAX 32

struct defender {
	struct proctree *pt;   /* owned by the capture thread once it runs */
	struct learner *learn; /* the capture thread's */
	/* Relearn requests from the console, for the capture thread (which owns the models). */
	pthread_mutex_t relearn_lock;
	char *relearn[RELEARN_QUEUE_MAX];
	size_t nrelearn;
	/* Commands carried out and not yet seen acknowledged (main thread). */
	uint64_t done[COMMANDS_DONE_MAX];
	size_t ndone;
	struct enrich_scratch scratch; /* the capture thread's */
	struct delivery *dl;
	int64_t clock_offset;
	pthread_t capture_thread;
	bool capture_running;
	uint64_t capture_malformed;
	struct defender_config cfg;
	struct hostinfo host;
	struct capture *cap;
	char bpf_status[600];
	struct uplink *up;
	struct uplink_chan *chan; /* the main thread's: hello and heartbeats */
	uint64_t started_ms;
	uint64_t seq;
};

static int send_hello(struct defender *d, vigil_err *err)
{
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Hello hello = VIGIL__HELLO__INIT;
	Vigil__Label labels[DEFENDER_MAX_LABELS];
	Vigil__Label *label_ptrs[DEFENDER_MAX_LABELS];
	Vigil__Reply *reply;
	int rc;

	hello.hostname = d->host.hostname;
	hello.kernel = d->host.kernel;
	hello.os = d->host.os;
	hello.defender_version = VIGIL_VERSION;
	hello.bpf_status = d->bpf_status;
	for (size_t i = 0; i < d->cfg.nlabels; i++) {
		vigil__label__init(&labels[i]);
		labels[i].key = d->cfg.labels[i].key;
		labels[i].value = d->cfg.labels[i].value;
		label_ptrs[i] = &labels[i];
	}
	hello.n_labels = d->cfg.nlabels;
	hello.labels = label_ptrs;
	env.seq = ++d->seq;
	env.body_case = VIGIL__ENVELOPE__BODY_HELLO;
	env.hello = &hello;
	if ((rc = uplink_request(d->chan, &env, NULL, 0, 5000, &reply, err)) < 0)
		return rc;
	if (reply->status != VIGIL__REPLY__STATUS__OK)
		rc = verr_set(err, reply->status == VIGIL__REPLY__STATUS__RETRY ? -EAGAIN : -EPERM,
			      "console did not accept the hello: %s",
			      reply->error[0] ? reply->error : "no reason given");
	vigil__reply__free_unpacked(reply, NULL);
	return rc;
}

static bool command_done(const struct defender *d, uint64_t id)
{
	for (size_t i = 0; i < d->ndone; i++)
		if (d->done[i] == id)
			return true;
	return false;
}

/*
 * Carry out the console's commands once each.  The console resends a
 * command until a heartbeat lists it as done; one it no longer sends was
 * acknowledged and is forgotten here.
 */
static void run_commands(struct defender *d, const Vigil__Reply *reply)
{
	uint64_t still[COMMANDS_DONE_MAX];
	size_t nstill = 0;

	for (size_t i = 0; i < reply->n_commands && i < COMMANDS_DONE_MAX; i++) {
		const Vigil__Command *c = reply->commands[i];

		if (!command_done(d, c->id)) {
			if (strcmp(c->kind, "relearn") == 0 && c->service[0] != '\0') {
				char *svc = strdup(c->service);

				pthread_mutex_lock(&d->relearn_lock);
				if (svc != NULL && d->nrelearn < RELEARN_QUEUE_MAX) {
					d->relearn[d->nrelearn++] = svc;
					svc = NULL;
				}
				pthread_mutex_unlock(&d->relearn_lock);
				if (svc != NULL) {
					/* Not marked done: the console sends it again. */
					free(svc);
					continue;
				}
				log_info("console command %llu: relearn %s",
					 (unsigned long long)c->id, c->service);
			} else {
				log_warn("console command %llu: unknown kind '%s'; ignored",
					 (unsigned long long)c->id, c->kind);
			}
		}
		still[nstill++] = c->id;
	}
	memcpy(d->done, still, nstill * sizeof(still[0]));
	d->ndone = nstill;
}

/* Returns 0, -ENOENT when the console wants a hello first, or another error. */
static int send_heartbeat(struct defender *d, vigil_err *err)
{
	Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
	Vigil__Heartbeat hb = VIGIL__HEARTBEAT__INIT;
	Vigil__Reply *reply;
	int rc;

	Vigil__Counter counters[EV_TYPE_MAX + DROP_REASON_MAX + FILTER_REASON_MAX + 1 + 8 + 12];
	Vigil__Counter *counter_ptrs[sizeof(counters) / sizeof(counters[0])];
	char names[sizeof(counters) / sizeof(counters[0])][48];
	size_t n = 0;

	hb.exec_count = d->cap != NULL ? capture_exec_count(d->cap) : 0;
	hb.uptime_ms = now_ms() - d->started_ms;
	if (d->cap != NULL) {
		struct capture_counters c;

		capture_read_counters(d->cap, &c);
#define ADD_COUNTER(group, name_, val)                                                             \
	do {                                                                                       \
		vigil__counter__init(&counters[n]);                                                \
		snprintf(names[n], sizeof(names[n]), "%s.%s", group, name_);                       \
		counters[n].name = names[n];                                                       \
		counters[n].value = (val);                                                         \
		counter_ptrs[n] = &counters[n];                                                    \
		n++;                                                                               \
	} while (0)
		for (int i = 1; i < EV_TYPE_MAX; i++)
			ADD_COUNTER("delivered", capture_type_name(i), c.delivered[i]);
		for (int i = 0; i < DROP_REASON_MAX; i++)
			ADD_COUNTER("drops", capture_drop_name(i), c.drops[i]);
		for (int i = 0; i < FILTER_REASON_MAX; i++)
			ADD_COUNTER("filtered", capture_filter_name(i), c.filtered[i]);
		ADD_COUNTER("user", "malformed", c.user_malformed);
		if (d->dl != NULL) {
			struct delivery_stats ds;

			delivery_stats(d->dl, &ds);
			ADD_COUNTER("delivery", "batches_spooled", ds.batches_spooled);
			ADD_COUNTER("delivery", "batches_acked", ds.batches_acked);
			ADD_COUNTER("delivery", "batches_refused", ds.batches_refused);
			ADD_COUNTER("delivery", "resends", ds.resends);
			ADD_COUNTER("delivery", "spool_bytes", ds.spool_bytes);
			ADD_COUNTER("delivery", "spool_pending", ds.spool_pending);
			ADD_COUNTER("delivery", "spool_dropped", ds.spool_dropped);
			ADD_COUNTER("delivery", "append_errors", ds.append_errors);
		}
		if (d->learn != NULL) {
			struct learn_stats ls;

			learner_stats(d->learn, &ls);
			ADD_COUNTER("learn", "models", ls.models.models);
			ADD_COUNTER("learn", "entries", ls.models.entries);
			ADD_COUNTER("learn", "learned", ls.models.learned);
			ADD_COUNTER("learn", "deviations", ls.models.deviations);
			ADD_COUNTER("learn", "deviations_repeated", ls.models.deviations_repeated);
			ADD_COUNTER("learn", "folds", ls.models.folds);
			ADD_COUNTER("learn", "over_bounds",
				    ls.models.full_models + ls.models.full_sections +
					ls.models.full_entries);
			ADD_COUNTER("learn", "activity", ls.activity);
			ADD_COUNTER("learn", "unplaced", ls.unplaced);
			ADD_COUNTER("learn", "save_errors", ls.models.save_errors);
			ADD_COUNTER("learn", "load_errors", ls.models.load_errors);
		}
#undef ADD_COUNTER
		hb.n_counters = n;
		hb.counters = counter_ptrs;
	}
	hb.n_commands_done = d->ndone;
	hb.commands_done = d->done;
	env.seq = ++d->seq;
	env.body_case = VIGIL__ENVELOPE__BODY_HEARTBEAT;
	env.heartbeat = &hb;
	if ((rc = uplink_request(d->chan, &env, NULL, 0, 5000, &reply, err)) < 0)
		return rc;
	switch (reply->status) {
	case VIGIL__REPLY__STATUS__OK:
		run_commands(d, reply);
		rc = 0;
		break;
	case VIGIL__REPLY__STATUS__HELLO_REQUIRED:
		rc = -ENOENT;
		break;
	default:
		rc = verr_set(err, -EAGAIN, "console did not take the heartbeat: %s",
			      reply->error[0] ? reply->error : "no reason given");
	}
	vigil__reply__free_unpacked(reply, NULL);
	return rc;
}

/* The capture thread's record handler: for now, keep the ring drained and check records. */
static int on_capture_record(const struct ev_hdr *rec, size_t len, void *ctx)
{
	struct defender *d = ctx;
	struct event ev;

	struct event_enrich en;

	if (event_decode(rec, len, &ev) < 0) {
		d->capture_malformed++;
		return 0;
	}
	enrich_begin(d->pt, &ev);
	enrich_describe(d->pt, &ev, &en, &d->scratch);
	uint64_t when_ms = (uint64_t)((int64_t)ev.hdr->ts_ns + d->clock_offset) / 1000000;
	struct learn_activity act;
	bool interactive = learner_event(d->learn, &ev, &en, &d->scratch.cls, when_ms, &act);
	delivery_add(d->dl, &ev, &en, interactive ? &act.pb : NULL, d->clock_offset,
		     capture_read_pos(d->cap));
	enrich_end(d->pt, &ev);
	return 0;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The kernel's losses so far (truncations are delivered, so they are not losses). */
static uint64_t capture_losses(struct capture *cap)
{
	struct capture_counters c;

	capture_read_counters(cap, &c);
	return c.drops[DROP_RINGBUF_FULL] + c.drops[DROP_SCRATCH];
}

/* The capture thread's share of the models' upkeep: relearn requests, promotion, deltas. */
static void learn_upkeep(struct defender *d)
{
	char *svc[RELEARN_QUEUE_MAX];
	size_t n;
	uint64_t now = wall_ms();

	pthread_mutex_lock(&d->relearn_lock);
	n = d->nrelearn;
	memcpy(svc, d->relearn, n * sizeof(svc[0]));
	d->nrelearn = 0;
	pthread_mutex_unlock(&d->relearn_lock);
	for (size_t i = 0; i < n; i++) {
		if (learner_relearn(d->learn, svc[i], now) == -ENOENT)
			log_warn("relearn %s: this host has no such model", svc[i]);
		free(svc[i]);
	}
	learner_tick(d->learn, now, capture_losses(d->cap));
}

static void learn_deviation(const Vigil__Deviation *dv, void *ctx)
{
	delivery_add_deviation(ctx, dv);
}

static void learn_delta(const Vigil__ModelDelta *md, void *ctx)
{
	delivery_add_model_delta(ctx, md);
}

/*
 * Capture must never wait on the network: it has its own thread, which only
 * drains the ring buffer; the uplink runs on the main thread.
 */
static void *capture_main(void *arg)
{
	struct defender *d = arg;

	while (!stop_requested) {
		int n = capture_poll(d->cap, 200, on_capture_record, d);
		struct timespec bt;

		clock_gettime(CLOCK_BOOTTIME, &bt);
		uint64_t now_ns = (uint64_t)bt.tv_sec * 1000000000ull + (uint64_t)bt.tv_nsec;

		learn_upkeep(d);
		uint64_t read = capture_read_pos(d->cap);
		delivery_tick(d->dl, read);
		/* Read but not spooled stays in the ring; spool early before it fills. */
		if (read - delivery_ring_safe(d->dl) > capture_ringbuf_bytes(d->cap) / 4)
			delivery_flush(d->dl);
		capture_commit(d->cap, delivery_ring_safe(d->dl));
		proctree_expire(d->pt, now_ns);
		/* Exits lost to ring drops would leave dead entries filling the table. */
		proctree_sweep(d->pt, now_ns, 200);
		if (n < 0) {
			log_error("capture stopped: ring buffer poll failed: %s", strerror(-n));
			break;
		}
	}
	return NULL;
}

static void run(struct defender *d)
{
	bool registered = false, reported_down = false;
	uint64_t last_diag = 0;
	vigil_err err;

	while (!stop_requested) {
		int rc;

		verr_clear(&err);
		if (!registered) {
			rc = send_hello(d, &err);
			if (rc == 0) {
				registered = true;
				reported_down = false;
				log_info("registered with the console (bpf: %s)", d->bpf_status);
			}
		} else {
			rc = send_heartbeat(d, &err);
			if (rc == -ENOENT) {
				registered = false;
				continue; /* say hello at once */
			}
		}
		if (rc == -ETIMEDOUT || rc == -EIO) {
			/* Say hello again when a console answers: it may be a new one. */
			registered = false;
			/*
			 * A heartbeat costs the console next to nothing: no answer over
			 * an open connection means the connection is dead, whatever
			 * nng believes (seen after network cuts).  Closing it makes
			 * the dialer dial again.
			 */
			if (rc == -ETIMEDOUT && uplink_connections(d->up) > 0) {
				int n = uplink_close_links(d->up);

				log_warn(
				    "no answer over %d open connection(s) to the console in 5 s; "
				    "closing them to dial again",
				    n);
			}
			if (!reported_down || now_ms() - last_diag > 60000) {
				char why[1024];

				uplink_diagnose(d->up, why, sizeof(why));
				log_warn("no console answers (%s); retrying with backoff", why);
				reported_down = true;
				last_diag = now_ms();
			}
		} else if (rc < 0) {
			log_warn("%s", err.msg);
		}
		nap(d->cfg.heartbeat_interval_ms);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"log-level", required_argument, NULL, 'l'},
	    {"check", no_argument, NULL, 'k'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {"events-json", no_argument, NULL, 'E'},
	    {"types", required_argument, NULL, 'y'},
	    {"pid", required_argument, NULL, 'p'},
	    {"descendants", no_argument, NULL, 'D'},
	    {"comm", required_argument, NULL, 'm'},
	    {"ringbuf-kb", required_argument, NULL, 'r'},
	    {"all-reads", no_argument, NULL, 'a'},
	    {"stats-interval-ms", required_argument, NULL, 's'},
	    {0},
	};
	struct defender d = {.relearn_lock = PTHREAD_MUTEX_INITIALIZER};
	struct eventstream_opts es = {.capture = CAPTURE_OPTS_DEFAULT};
	const char *config_path = NULL;
	int log_level = -1, check = 0, events_json = 0, opt, rc;
	uint32_t u;
	struct sigaction sa = {0};
	vigil_err err = {0};

	while ((opt = getopt_long(argc, argv, "c:l:kVh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'l':
			if ((log_level = log_level_parse(optarg)) < 0) {
				fprintf(stderr,
					"vigil-defender: --log-level must be debug, info, "
					"warn or error, not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'k':
			check = 1;
			break;
		case 'V':
			printf("vigil-defender %s\n", VIGIL_VERSION);
			return 0;
		case 'E':
			events_json = 1;
			break;
		case 'y':
			if (eventstream_parse_types(optarg, &es.type_mask) < 0) {
				fprintf(stderr,
					"vigil-defender: --types takes a list of exec, fork, "
					"exit, file, net; not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'p':
			if (parse_u32("--pid", optarg, 1, 1u << 22, &es.pid) < 0)
				return 2;
			break;
		case 'D':
			es.descendants = true;
			break;
		case 'm':
			es.comm = optarg;
			break;
		case 'r':
			if (parse_u32("--ringbuf-kb", optarg, 64, 1u << 20, &u) < 0)
				return 2;
			es.capture.ringbuf_bytes = (size_t)u * 1024;
			break;
		case 'a':
			es.capture.filter_read_repeat = false;
			es.capture.filter_failed_reads = false;
			break;
		case 's':
			if (parse_u32("--stats-interval-ms", optarg, 0, 86400000, &u) < 0)
				return 2;
			es.stats_interval_ms = (int)u;
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
		fprintf(stderr, "vigil-defender: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (events_json) {
		/* SA_RESTART: a stop must not cut a line in half; the poll wakes every 100 ms. */
		struct sigaction esa = {.sa_handler = on_stop_signal, .sa_flags = SA_RESTART};

		log_init("vigil-defender", log_level >= 0 ? log_level : LOG_LVL_INFO);
		sigaction(SIGTERM, &esa, NULL);
		sigaction(SIGINT, &esa, NULL);
		signal(SIGPIPE, SIG_IGN);
		return eventstream_run(&es, &stop_requested);
	}
	if (config_path == NULL) {
		usage(stderr);
		return 2;
	}
	if (defender_config_load(config_path, &d.cfg, &err) < 0) {
		fprintf(stderr, "vigil-defender: %s\n", err.msg);
		return 2;
	}
	log_init("vigil-defender", log_level >= 0 ? log_level : d.cfg.log_level);
	rc = 1;
	if (tls_engine_install(&err) < 0) {
		log_error("%s", err.msg);
		goto out;
	}
	if (fs_mkdir_p(d.cfg.state_dir, 0700, &err) < 0) {
		log_error("state_dir: %s", err.msg);
		goto out;
	}
	d.up = uplink_open(&d.cfg, &err);
	if (d.up == NULL) {
		log_error("%s", err.msg);
		goto out;
	}
	if ((d.chan = uplink_chan_open(d.up, &err)) == NULL) {
		log_error("%s", err.msg);
		goto out;
	}
	if (check) {
		printf("vigil-defender: %s is valid; certificates load\n", config_path);
		rc = 0;
		goto out;
	}
	hostinfo_read(&d.host);
	d.started_ms = now_ms();
	struct capture_opts copts = CAPTURE_OPTS_DEFAULT;
	copts.ringbuf_bytes = (size_t)d.cfg.ringbuf_kb * 1024;
	copts.filter_read_repeat = copts.filter_failed_reads = !d.cfg.all_reads;
	copts.pin_dir = d.cfg.bpf_pin_dir;
	d.cap = capture_start(&copts, &err);
	if (d.cap != NULL) {
		snprintf(d.bpf_status, sizeof(d.bpf_status), "loaded: %s", capture_describe(d.cap));
		log_info("BPF %s", d.bpf_status);
		if (capture_took_over(d.cap))
			log_warn("took over the capture a previous defender left running in %s: "
				 "reading on from what it had spooled",
				 d.cfg.bpf_pin_dir);
	} else {
		snprintf(d.bpf_status, sizeof(d.bpf_status), "not loaded: %s", err.msg);
		log_warn("BPF %s; running without kernel capture", d.bpf_status);
	}

	sa.sa_handler = on_stop_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	log_info("vigil-defender %s starting: host %s, %zu console(s), first %s", VIGIL_VERSION,
		 d.host.hostname, d.cfg.nconsoles, d.cfg.consoles[0]);
	if (d.cap != NULL) {
		char spool_dir[4096];
		struct delivery_opts dopts = {.spool_dir = spool_dir,
					      .spool_max_bytes =
						  (uint64_t)d.cfg.spool_max_kb * 1024,
					      .window = d.cfg.send_window};

		snprintf(spool_dir, sizeof(spool_dir), "%s/spool", d.cfg.state_dir);
		d.clock_offset = event_json_clock_offset();
		if ((d.dl = delivery_start(&dopts, d.up, &err)) == NULL) {
			log_error("spool: %s", err.msg);
			rc = 1;
			goto out;
		}
		char model_dir[4096];
		struct model_limits lim = MODEL_LIMITS_DEFAULT;
		struct learn_sink sink = {learn_deviation, learn_delta, d.dl};

		snprintf(model_dir, sizeof(model_dir), "%s/models", d.cfg.state_dir);
		lim.learn_window_ms = (uint64_t)d.cfg.learn_window_s * 1000;
		if (!d.cfg.learning)
			lim.max_models = 0; /* activity is still logged; no service is modelled */
		if ((d.learn = learner_new(&lim, model_dir, &sink, &err)) == NULL) {
			log_error("models: %s", err.msg);
			rc = 1;
			goto out;
		}
		/* Attach first, then seed: what starts meanwhile waits in the ring. */
		d.pt = proctree_new(NULL);
		if (d.pt == NULL || proctree_seed(d.pt, &err) < 0) {
			log_error("process tree: %s", d.pt ? err.msg : "out of memory");
			rc = 1;
			goto out;
		}
		if ((rc = pthread_create(&d.capture_thread, NULL, capture_main, &d)) != 0) {
			log_error("cannot start the capture thread: %s", strerror(rc));
			rc = 1;
			goto out;
		}
		d.capture_running = true;
	}
	run(&d);
	if (d.capture_running)
		pthread_join(d.capture_thread, NULL);
	/* Models: what changed goes into the spool, and to disk. */
	learner_free(d.learn);
	d.learn = NULL;
	/* What was captured is flushed into the spool: the next start sends it. */
	delivery_stop(d.dl);
	d.dl = NULL;
	log_info("stopping");
	rc = 0;
out:
	learner_free(d.learn);
	delivery_stop(d.dl);
	for (size_t i = 0; i < d.nrelearn; i++)
		free(d.relearn[i]);
	uplink_chan_close(d.chan);
	uplink_close(d.up);
	capture_stop(d.cap);
	proctree_free(d.pt);
	defender_config_fini(&d.cfg);
	return rc;
}
