/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vigil-defender: the host daemon.  This file only reads the options and
 * the configuration and wires the stages together: capture (kernel → ring),
 * the pipeline thread (process tree → learning → spool), delivery to the
 * consoles, and the session (hello, heartbeats, commands) on this thread.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/capture.h"
#include "config/defender_config.h"
#include "deliver/delivery.h"
#include "deliver/hostinfo.h"
#include "deliver/uplink.h"
#include "enroll/enroll.h"
#include "enroll/identity.h"
#include "enroll/renew.h"
#include "fsutil.h"
#include "log.h"
#include "metrics/metrics.h"
#include "output/standalone.h"
#include "pipeline.h"
#include "enforce/enforcer.h"
#include "rules/rulebook.h"
#include "sdnotify.h"
#include "session.h"
#include "tls.h"

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/*
 * A stop ends the daemon within 5 s whatever its link is doing.  SIGTERM and
 * SIGINT are blocked in every thread and taken by one thread, which can do
 * what a signal handler cannot: end the requests under way (the session's,
 * a diagnosis dial) instead of letting them run out their timeouts.  If the
 * rest still takes too long, it says so and exits: the spool and the pinned
 * capture are built to survive a kill, so nothing is lost, and the log names
 * the stop that hung.
 */
#define STOP_DEADLINE_MS 4500

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct session *live_session; /* under live_lock */
static struct uplink *live_uplink;   /* under live_lock */

static void set_live(struct session *sess, struct uplink *up)
{
	pthread_mutex_lock(&live_lock);
	live_session = sess;
	live_uplink = up;
	pthread_mutex_unlock(&live_lock);
}

static void *stopper_main(void *arg)
{
	const sigset_t *set = arg;
	struct timespec deadline = {STOP_DEADLINE_MS / 1000, (STOP_DEADLINE_MS % 1000) * 1000000L};
	int sig = 0;

	if (sigwait(set, &sig) != 0)
		return NULL;
	/* The service manager hears of the stop when it begins, not when it ends. */
	sdnotify_stopping("stopping: flushing what was captured into the spool");
	pthread_mutex_lock(&live_lock);
	if (live_session != NULL)
		session_abort(live_session);
	if (live_uplink != NULL)
		uplink_abort(live_uplink);
	stop_requested = 1;
	pthread_mutex_unlock(&live_lock);
	while (nanosleep(&deadline, &deadline) < 0 && errno == EINTR)
		;
	log_error("stop (%s) did not finish within %d ms: exiting now; the spool and the"
		  " pinned capture are kept for the next start",
		  strsignal(sig), STOP_DEADLINE_MS);
	_exit(1);
}

/* Block the stop signals in this thread and every thread it starts; one thread takes them. */
static int stopper_start(vigil_err *err)
{
	static sigset_t set;
	static bool running; /* an enrollment starts it before the configuration is read */
	pthread_t t;
	int rc;

	if (running)
		return 0;
	running = true;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if ((rc = pthread_sigmask(SIG_BLOCK, &set, NULL)) != 0 ||
	    (rc = pthread_create(&t, NULL, stopper_main, &set)) != 0)
		return verr_set(err, -rc, "cannot set up the stop signals: %s", strerror(rc));
	pthread_detach(t);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: vigil-defender --config FILE [--log-level debug|info|warn|error] [--check]\n"
	    "       vigil-defender --events-json [--types exec,fork,exit,file,net] [--pid PID]\n"
	    "                      [--descendants] [--comm NAME] [--ringbuf-kb N] [--all-reads]\n"
	    "                      [--no-open-copy] [--stats-interval-ms N] [--rules FILE]\n"
	    "  --config FILE        the defender's configuration (console URLs, certificates)\n"
	    "  --check              validate the configuration and certificates, then exit\n"
	    "  --events-json        no console: print captured events as JSON lines on stdout\n"
	    "  --types LIST         only these event types\n"
	    "  --pid PID            only this process (--descendants: and the processes it forks)\n"
	    "  --comm NAME          only processes with this command name\n"
	    "  --ringbuf-kb N       kernel ring buffer size, a power of two (default 8192)\n"
	    "  --all-reads          report every read-only open, not the first per process and "
	    "file\n"
	    "  --rules FILE         enforce this rule set file (vigilctl rules export) without a\n"
	    "                       console; decisions are printed as enforcement lines\n"
	    "  --no-open-copy       read a failed open's path when the call returns, not as it\n"
	    "                       enters (cheaper; config: copy_open_args = false)\n"
	    "  --stats-interval-ms N  print a stats line this often (default: only at the end)\n"
	    "       vigil-defender --enroll TOKEN --console HOST:PORT (--ca FILE | --ca-sha256 "
	    "HEX)\n"
	    "                      [--name NAME] [--config FILE | --state-dir DIR]\n"
	    "  --enroll TOKEN       join the console with this join token (vigilctl enroll token\n"
	    "                       create), then run; --enroll-token-file FILE reads it from "
	    "FILE.\n"
	    "                       Already enrolled: the token is not used (docs/operations.md)\n"
	    "  --console HOST:PORT  the console's API, where the host enrolls\n"
	    "  --ca FILE            trust the console by this CA; or --ca-sha256 HEX: by the\n"
	    "                       SHA-256 of its CA's certificate, as vigilctl prints it\n"
	    "  --name NAME          this host's name in the console (default: its hostname)\n"
	    "  --state-dir DIR      without --config: where the identity and a configuration\n"
	    "                       are written (default " ENROLL_DEFAULT_STATE_DIR ")\n");
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
	    {"no-open-copy", no_argument, NULL, 'O'},
	    {"rules", required_argument, NULL, 'R'},
	    {"stats-interval-ms", required_argument, NULL, 's'},
	    {"enroll", required_argument, NULL, 'e' + 256},
	    {"enroll-token-file", required_argument, NULL, 'f' + 256},
	    {"console", required_argument, NULL, 'C' + 256},
	    {"ca", required_argument, NULL, 'a' + 256},
	    {"ca-sha256", required_argument, NULL, 'A' + 256},
	    {"name", required_argument, NULL, 'n' + 256},
	    {"state-dir", required_argument, NULL, 'S' + 256},
	    {0},
	};
	struct defender_config cfg = {0};
	struct hostinfo host;
	char bpf_status[600];
	struct uplink *up = NULL;
	struct capture *cap = NULL;
	struct delivery *dl = NULL;
	struct pipeline *pipe = NULL;
	struct session *sess = NULL;
	struct renewer *renewer = NULL;
	struct enroll_opts eo = {0};
	char enrolled_conf[PATH_MAX];
	bool enrolling;
	struct rulebook *rules = NULL;
	struct enforcer *enf = NULL;
	struct metrics *metrics = NULL;
	struct standalone_opts es = {.capture = CAPTURE_OPTS_DEFAULT};
	const char *config_path = NULL;
	int log_level = -1, check = 0, events_json = 0, opt, rc;
	uint32_t u;
	vigil_err err = {0};

	/*
	 * Batches, their compressed and framed copies and spool reads are
	 * buffers of up to a few MiB that live for a moment.  glibc would raise
	 * its mmap threshold to their size after the first is freed and keep
	 * them in per-thread arenas from then on: 20-30 MiB of resident memory
	 * that only fragments.  A fixed threshold hands them back on free; two
	 * arenas are plenty for threads that mostly wait.
	 */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	mallopt(M_ARENA_MAX, 2);
	/* Before any thread: the manager's address is taken, and kept from children. */
	sdnotify_init();
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
			if (standalone_parse_types(optarg, &es.type_mask) < 0) {
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
		case 'R':
			es.rules_file = optarg;
			break;
		case 'O':
			es.capture.copy_open_args = false;
			break;
		case 's':
			if (parse_u32("--stats-interval-ms", optarg, 0, 86400000, &u) < 0)
				return 2;
			es.stats_interval_ms = (int)u;
			break;
		case 'e' + 256:
			eo.token = optarg;
			break;
		case 'f' + 256:
			eo.token_file = optarg;
			break;
		case 'C' + 256:
			eo.console = optarg;
			break;
		case 'a' + 256:
			eo.ca_file = optarg;
			break;
		case 'A' + 256:
			eo.ca_sha256 = optarg;
			break;
		case 'n' + 256:
			eo.name = optarg;
			break;
		case 'S' + 256:
			eo.state_dir = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	enrolling = eo.token != NULL || eo.token_file != NULL;
	if (!enrolling && (eo.console != NULL || eo.ca_file != NULL || eo.ca_sha256 != NULL ||
			   eo.name != NULL || eo.state_dir != NULL)) {
		fprintf(stderr,
			"vigil-defender: --console, --ca, --ca-sha256, --name and --state-dir"
			" are for --enroll\n");
		return 2;
	}
	if (enrolling && (events_json || check || (config_path != NULL && eo.state_dir != NULL))) {
		fprintf(stderr,
			"vigil-defender: --enroll does not go with --events-json, --check, or"
			" --state-dir with --config\n");
		return 2;
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
		return standalone_run(&es, &stop_requested);
	}
	if (enrolling) {
		/* The stop signals before nng starts threads; the log before the first line. */
		log_init("vigil-defender", log_level >= 0 ? log_level : LOG_LVL_INFO);
		eo.config = config_path;
		if (stopper_start(&err) < 0 ||
		    enroll_ensure(&eo, enrolled_conf, sizeof(enrolled_conf), NULL, &err) < 0) {
			log_error("enroll: %s", err.msg);
			return 1;
		}
		config_path = enrolled_conf;
	}
	if (config_path == NULL) {
		usage(stderr);
		return 2;
	}
	if (defender_config_load(config_path, &cfg, &err) < 0) {
		fprintf(stderr, "vigil-defender: %s\n", err.msg);
		return 2;
	}
	log_init("vigil-defender", log_level >= 0 ? log_level : cfg.log_level);
	rc = 1;
	/* Before anything starts a thread (nng does, from the next call on). */
	if (stopper_start(&err) < 0) {
		log_error("%s", err.msg);
		goto out;
	}
	if (tls_engine_install(&err) < 0) {
		log_error("%s", err.msg);
		goto out;
	}
	if (fs_mkdir_p(cfg.state_dir, 0700, &err) < 0) {
		log_error("state_dir: %s", err.msg);
		goto out;
	}
	/* A renewal a crash cut short: back to a key and a certificate that match. */
	{
		char what[PATH_MAX + 200];
		int added = 0;

		if (identity_recover(cfg.cert, cfg.key, what, sizeof(what), &err) < 0) {
			log_error("identity: %s", err.msg);
			goto out;
		}
		if (what[0] != '\0')
			log_warn("identity: %s", what);
		if (identity_labels_merge(&cfg, &added, &err) < 0)
			log_warn("identity: %s", err.msg);
		else if (added > 0)
			log_info(
			    "identity: %d label(s) from the join token this host enrolled with",
			    added);
	}
	/*
	 * The last rule set a console sent, before any connection: it is the
	 * one in force from the first second, with or without a console.
	 */
	if (!check) {
		char why[RULEBOOK_WHY_MAX];
		enum rulebook_load load;

		if ((rules = rulebook_open(cfg.state_dir, &load, why, sizeof(why))) == NULL) {
			log_error("rules: out of memory");
			goto out;
		}
		const struct ruleset *rs = rulebook_get(rules);
		if (load == RULEBOOK_LOAD_OK)
			log_info("rules: loaded the cached rule set version %lld (%zu rule(s)) from"
				 " %s/" RULEBOOK_FILE,
				 (long long)rs->version, rs->set.n, cfg.state_dir);
		else if (load == RULEBOOK_LOAD_REFUSED)
			log_warn("rules: refused the cached rule set %s/" RULEBOOK_FILE ": %s;"
				 " starting with no rules (version 0) until a console sends one",
				 cfg.state_dir, why);
		else
			log_info("rules: no cached rule set; starting with no rules (version 0)");
		ruleset_put(rs);
	}
	up = uplink_open(&cfg, &err);
	if (up == NULL) {
		log_error("%s", err.msg);
		goto out;
	}
	if (check) {
		printf("vigil-defender: %s is valid; certificates load\n", config_path);
		rc = 0;
		goto out;
	}
	hostinfo_read(&host);
	struct capture_opts copts = CAPTURE_OPTS_DEFAULT;
	copts.ringbuf_bytes = (size_t)cfg.ringbuf_kb * 1024;
	copts.filter_read_repeat = copts.filter_failed_reads = !cfg.all_reads;
	copts.pin_dir = cfg.bpf_pin_dir;
	copts.copy_open_args = cfg.copy_open_args;
	cap = capture_start(&copts, &err);
	if (cap != NULL) {
		snprintf(bpf_status, sizeof(bpf_status), "loaded: %s", capture_describe(cap));
		log_info("BPF %s", bpf_status);
		if (capture_took_over(cap))
			log_warn("took over the capture a previous defender left running in %s: "
				 "reading on from what it had spooled",
				 cfg.bpf_pin_dir);
	} else {
		snprintf(bpf_status, sizeof(bpf_status), "not loaded: %s", err.msg);
		log_warn("BPF %s; running without kernel capture", bpf_status);
	}

	signal(SIGPIPE, SIG_IGN);

	/* The cached rule set is in force before any console is reached. */
	struct enforcer_opts eopts = {
	    .cap = cap, .fanotify = cfg.enforce_fanotify, .answer_ms = cfg.enforce_answer_ms};
	if ((enf = enforcer_start(&eopts, &err)) == NULL) {
		log_error("enforcement: %s", err.msg);
		goto out;
	}
	{
		const struct ruleset *held = rulebook_get(rules);

		enforcer_apply(enf, held);
		ruleset_put(held);
	}

	log_info("vigil-defender %s starting: host %s, %zu console(s), first %s", VIGIL_VERSION,
		 host.hostname, cfg.nconsoles, cfg.consoles[0]);
	if (cap != NULL) {
		char spool_dir[4096], model_dir[4096];
		struct delivery_opts dopts = {.spool_dir = spool_dir,
					      .spool_max_bytes = (uint64_t)cfg.spool_max_kb * 1024,
					      .window = cfg.send_window};
		struct pipeline_opts popts = {
		    .model_dir = model_dir, .limits = MODEL_LIMITS_DEFAULT, .enforcer = enf};

		snprintf(spool_dir, sizeof(spool_dir), "%s/spool", cfg.state_dir);
		snprintf(model_dir, sizeof(model_dir), "%s/models", cfg.state_dir);
		if ((dl = delivery_start(&dopts, up, &err)) == NULL) {
			log_error("spool: %s", err.msg);
			goto out;
		}
		popts.limits.learn_window_ms = (uint64_t)cfg.learn_window_s * 1000;
		if (!cfg.learning)
			popts.limits.max_models =
			    0; /* activity is still logged; no service is modelled */
		if ((pipe = pipeline_start(&popts, cap, dl, &err)) == NULL) {
			log_error("%s", err.msg);
			goto out;
		}
	}
	struct session_parts parts = {.cfg = &cfg,
				      .host = &host,
				      .up = up,
				      .cap = cap,
				      .dl = dl,
				      .pipe = pipe,
				      .bpf_status = bpf_status,
				      .rules = rules,
				      .enf = enf};
	if ((sess = session_new(&parts, &err)) == NULL) {
		log_error("%s", err.msg);
		goto out;
	}
	if (cfg.metrics_listen != NULL) {
		if ((metrics = metrics_start((const struct sockaddr *)&cfg.metrics_addr,
					     cfg.metrics_addr_len, &parts, &err)) == NULL) {
			log_error("metrics_listen %s: %s", cfg.metrics_listen, err.msg);
			goto out;
		}
		log_info("metrics on http://%s/metrics", cfg.metrics_listen);
	}
	if (cfg.renew && (renewer = renewer_start(&cfg, up, &err)) == NULL) {
		log_error("%s", err.msg);
		goto out;
	}
	set_live(sess, up);
	/*
	 * Ready: capture attached (or known to be absent, said in the status),
	 * the spool and the uplink started; the console is dialed from here on
	 * and may be away, which the defender rides out on its own.
	 */
	{
		char status[sizeof(bpf_status) + 128];

		snprintf(status, sizeof(status), "%s; %zu console(s), first %s",
			 cap != NULL ? "capturing" : "running WITHOUT kernel capture",
			 cfg.nconsoles, cfg.consoles[0]);
		sdnotify_ready(status);
	}
	session_run(sess, &stop_requested);
	set_live(NULL, NULL);
	renewer_stop(renewer);
	renewer = NULL;
	metrics_stop(metrics);
	metrics = NULL;
	/* Models: what changed goes into the spool, and to disk (and enforcement's audits). */
	pipeline_stop(pipe);
	pipe = NULL;
	enforcer_stop(enf);
	enf = NULL;
	/* What was captured is flushed into the spool: the next start sends it. */
	delivery_stop(dl);
	dl = NULL;
	log_info("stopping");
	rc = 0;
out:
	metrics_stop(metrics);
	renewer_stop(renewer);
	session_free(sess);
	pipeline_stop(pipe);
	enforcer_stop(enf);
	delivery_stop(dl);
	uplink_close(up);
	capture_stop(cap);
	rulebook_free(rules);
	defender_config_fini(&cfg);
	return rc;
}
