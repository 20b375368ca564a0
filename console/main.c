/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vigil-console: the server.  Binds the defenders' mutual-TLS endpoint and the
 * HTTPS API first (so a port in use fails before anything else starts), then
 * opens the database (its private PostgreSQL under --state-dir, or --db),
 * applies migrations and serves.  A sweeper marks hosts whose heartbeats
 * stopped as disconnected and logs when the database's disk fills up and
 * when it takes data again; a maintenance thread runs retention at start
 * and every --retention-interval-s (store/retention.h).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "api/api_enroll.h"
#include "api/api_pool.h"
#include "fsutil.h"
#include "link/listener.h"
#include "link/renew.h"
#include "link/revocation.h"
#include "link/rules_push.h"
#include "log.h"
#include "outputs/output_conf.h"
#include "outputs/outputs.h"
#include "pg/pgembed.h"
#include "prom.h"
#include "sdnotify.h"
#include "store/retention.h"
#include "store/storage_state.h"
#include "store/store.h"
#include "tls.h"

#define DEFAULT_STATE_DIR "/var/lib/vigil/console"
#define DEFAULT_LISTEN	  "tls+tcp://0.0.0.0:7443"
#define DEFAULT_API	  "https://127.0.0.1:8443"
/* Retention runs this often (and at start). */
#define RETENTION_INTERVAL_S_DEFAULT 300
/* The private cluster's events may take this share of its filesystem unless told otherwise. */
#define EVENTS_MAX_PERCENT_DEFAULT 50

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* SIGHUP (logrotate's postrotate): the JSON lines outputs open their files again. */
static void on_hup_signal(int sig)
{
	(void)sig;
	outputs_reopen();
}

struct console_opts {
	const char *state_dir;
	const char *db;
	const char *listen;
	const char *api;
	const char *ca, *cert, *key;
	const char *token_file;
	const char *outputs_file;  /* NULL: no outputs */
	const char *enroll_ca_dir; /* NULL: no enrollment or renewal (api/api_enroll.h) */
	int64_t host_cert_secs;	   /* --host-cert-days, or --host-cert-seconds for tests */
	int heartbeat_interval_ms;
	int host_timeout_ms;
	int api_workers;
	int api_query_timeout_ms;
	int api_idle_timeout_ms; /* 0 (not given): the API's defaults */
	int api_conns_per_addr;
	int api_conns_max;
	int session_hours;
	int link_conns_per_cert; /* 0 (not given): the listener's defaults */
	int link_conns_max;
	struct retention_opts retention;
	int retention_interval_s;
	/* --events-max-bytes as given: -1 not given, else bytes (0: none) or a percentage. */
	int64_t events_max;
	bool events_max_percent;
	int log_level;
	char pki_ca[PATH_MAX], pki_cert[PATH_MAX], pki_key[PATH_MAX], token_path[PATH_MAX];
};

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: vigil-console [options]\n"
	    "  --state-dir DIR            state (private PostgreSQL, API token); default %s\n"
	    "  --db DSN                   use this PostgreSQL instead of a private one\n"
	    "  --listen URL               defenders' endpoint; default %s\n"
	    "  --api URL                  HTTPS API; default %s\n"
	    "  --ca FILE                  CA that defender certificates must chain to;\n"
	    "                             default STATE/pki/ca.crt\n"
	    "  --cert FILE --key FILE     the console's certificate; default "
	    "STATE/pki/console.{crt,key}\n"
	    "  --api-token-file FILE      bearer token for the API (created if missing);\n"
	    "                             default STATE/api-token\n"
	    "  --api-workers N            threads answering API requests, each with its own\n"
	    "                             database connection; default %d\n"
	    "  --api-query-timeout-ms N   an API query running longer is cancelled (504);\n"
	    "                             default %d\n"
	    "  --api-idle-timeout-ms N    an API connection is closed when it has not sent\n"
	    "                             a whole request N ms after connecting or after\n"
	    "                             its last answer; default %d\n"
	    "  --api-conns-per-addr N     API connections open at once per source address\n"
	    "                             (IPv6: per /64); default %d (at most the next)\n"
	    "  --api-conns-max N          API connections open at once in all; default %d\n"
	    "  --session-hours N          how long a web UI sign-in lasts (1 to %d); default "
	    "%d\n"
	    "  --link-conns-per-cert N    defender connections per certificate; default %d\n"
	    "  --link-conns-max N         defender connections in all; default %d\n"
	    "  --heartbeat-interval-ms N  how often defenders report; default 1000\n"
	    "  --host-timeout-ms N        silence after which a host is disconnected; default "
	    "10000\n"
	    "  --events-retention-days N  events are dropped, a day at a time, once N days\n"
	    "                             old; default %d\n"
	    "  --events-max-bytes SIZE    and, oldest first, while they take more than SIZE:\n"
	    "                             bytes, with K, M, G or T (powers of 1024), or N%%\n"
	    "                             of the private cluster's filesystem; 0: no ceiling;\n"
	    "                             default %d%% with the private cluster, none with --db\n"
	    "  --audits-retention-days N  audits (and the batch ledger) kept; default %d\n"
	    "  --activity-retention-days N\n"
	    "                             interactive activity kept; default %d\n"
	    "  --retention-interval-s N   how often retention runs (also at start); default %d\n"
	    "  --outputs FILE             send audits to syslog, JSON lines files and webhooks\n"
	    "                             (docs/outputs.md)\n"
	    "  --enroll-ca-dir DIR        enroll hosts with join tokens and renew their\n"
	    "                             certificates, signed by the CA in DIR (ca.crt, ca.key;\n"
	    "                             docs/operations.md, \"Enrolling hosts\")\n"
	    "  --host-cert-days N         lifetime of the certificates it signs (1 to 825);\n"
	    "                             default %d (--host-cert-seconds N: for tests)\n"
	    "  --log-level LEVEL          debug, info, warn or error\n",
	    DEFAULT_STATE_DIR, DEFAULT_LISTEN, DEFAULT_API, API_POOL_WORKERS_DEFAULT,
	    API_QUERY_TIMEOUT_MS_DEFAULT, API_IDLE_TIMEOUT_MS_DEFAULT, API_CONNS_PER_ADDR_DEFAULT,
	    API_CONNS_MAX_DEFAULT, API_SESSION_HOURS_MAX, API_SESSION_HOURS_DEFAULT,
	    LISTENER_CONNS_PER_CERT_DEFAULT, LISTENER_CONNS_MAX_DEFAULT,
	    RETENTION_EVENTS_DAYS_DEFAULT, EVENTS_MAX_PERCENT_DEFAULT,
	    RETENTION_AUDITS_DAYS_DEFAULT, RETENTION_ACTIVITY_DAYS_DEFAULT,
	    RETENTION_INTERVAL_S_DEFAULT, ENROLL_CERT_DAYS_DEFAULT);
}

static int parse_int(const char *opt, const char *s, int min, int max, int *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "vigil-console: %s must be an integer from %d to %d, not '%s'\n",
			opt, min, max, s);
		return -1;
	}
	*ret = (int)v;
	return 0;
}

/*
 * A size: bytes, or a number with K, M, G or T (powers of 1024; "G", "GB"
 * and "GiB" alike), or N% (1..100).  *ret_percent tells which.
 */
static int parse_size(const char *opt, const char *s, int64_t *ret, bool *ret_percent)
{
	static const char units[] = "KMGT";
	char *end;
	long long v;
	int shift = 0;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || v < 0)
		goto bad;
	*ret_percent = false;
	if (*end == '%' && end[1] == '\0') {
		if (v < 1 || v > 100)
			goto bad;
		*ret_percent = true;
		*ret = v;
		return 0;
	}
	if (*end != '\0') {
		const char *u = strchr(units, *end & ~0x20);

		if (u == NULL)
			goto bad;
		shift = 10 * (int)(u - units + 1);
		end++;
		if ((*end & ~0x20) == 'I' && (end[1] & ~0x20) == 'B')
			end += 2;
		else if ((*end & ~0x20) == 'B')
			end++;
		if (*end != '\0')
			goto bad;
	}
	if (v > (INT64_MAX >> shift))
		goto bad;
	*ret = (int64_t)v << shift;
	return 0;
bad:
	fprintf(stderr,
		"vigil-console: %s must be bytes (e.g. 53687091200 or 50G; 0: none) or a"
		" percentage from 1%% to 100%%, not '%s'\n",
		opt, s);
	return -1;
}

static int parse_args(int argc, char **argv, struct console_opts *o)
{
	static const struct option opts[] = {
	    {"state-dir", required_argument, NULL, 's'},
	    {"db", required_argument, NULL, 'd'},
	    {"listen", required_argument, NULL, 'L'},
	    {"api", required_argument, NULL, 'A'},
	    {"ca", required_argument, NULL, 'C'},
	    {"cert", required_argument, NULL, 'c'},
	    {"key", required_argument, NULL, 'k'},
	    {"api-token-file", required_argument, NULL, 't'},
	    {"api-workers", required_argument, NULL, 'W'},
	    {"api-query-timeout-ms", required_argument, NULL, 'Q'},
	    {"api-idle-timeout-ms", required_argument, NULL, 'I'},
	    {"api-conns-per-addr", required_argument, NULL, 'P'},
	    {"api-conns-max", required_argument, NULL, 'M'},
	    {"session-hours", required_argument, NULL, 'S'},
	    {"link-conns-per-cert", required_argument, NULL, 'c' + 256},
	    {"link-conns-max", required_argument, NULL, 'm' + 256},
	    {"heartbeat-interval-ms", required_argument, NULL, 'H'},
	    {"host-timeout-ms", required_argument, NULL, 'T'},
	    {"events-retention-days", required_argument, NULL, 'e' + 256},
	    {"events-max-bytes", required_argument, NULL, 'b' + 256},
	    {"audits-retention-days", required_argument, NULL, 'a' + 256},
	    {"activity-retention-days", required_argument, NULL, 'y' + 256},
	    {"retention-interval-s", required_argument, NULL, 'i' + 256},
	    {"outputs", required_argument, NULL, 'o' + 256},
	    {"enroll-ca-dir", required_argument, NULL, 'E' + 256},
	    {"host-cert-days", required_argument, NULL, 'D' + 256},
	    {"host-cert-seconds", required_argument, NULL, 'S' + 256},
	    {"log-level", required_argument, NULL, 'l'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	int opt;

	o->state_dir = DEFAULT_STATE_DIR;
	o->listen = DEFAULT_LISTEN;
	o->api = DEFAULT_API;
	o->heartbeat_interval_ms = 1000;
	o->host_timeout_ms = 10000;
	o->api_workers = API_POOL_WORKERS_DEFAULT;
	o->api_query_timeout_ms = API_QUERY_TIMEOUT_MS_DEFAULT;
	o->session_hours = API_SESSION_HOURS_DEFAULT;
	o->retention.events_days = RETENTION_EVENTS_DAYS_DEFAULT;
	o->retention.audits_days = RETENTION_AUDITS_DAYS_DEFAULT;
	o->retention.activity_days = RETENTION_ACTIVITY_DAYS_DEFAULT;
	o->retention_interval_s = RETENTION_INTERVAL_S_DEFAULT;
	o->events_max = -1;
	o->log_level = LOG_LVL_INFO;
	o->host_cert_secs = (int64_t)ENROLL_CERT_DAYS_DEFAULT * 86400;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			o->state_dir = optarg;
			break;
		case 'd':
			o->db = optarg;
			break;
		case 'L':
			o->listen = optarg;
			break;
		case 'A':
			o->api = optarg;
			break;
		case 'C':
			o->ca = optarg;
			break;
		case 'c':
			o->cert = optarg;
			break;
		case 'k':
			o->key = optarg;
			break;
		case 't':
			o->token_file = optarg;
			break;
		case 'H':
			if (parse_int("--heartbeat-interval-ms", optarg, 100, 600000,
				      &o->heartbeat_interval_ms) < 0)
				return 2;
			break;
		case 'T':
			if (parse_int("--host-timeout-ms", optarg, 200, 86400000,
				      &o->host_timeout_ms) < 0)
				return 2;
			break;
		case 'W':
			if (parse_int("--api-workers", optarg, 1, API_POOL_WORKERS_MAX,
				      &o->api_workers) < 0)
				return 2;
			break;
		case 'Q':
			if (parse_int("--api-query-timeout-ms", optarg, 100, 3600000,
				      &o->api_query_timeout_ms) < 0)
				return 2;
			break;
		case 'I':
			if (parse_int("--api-idle-timeout-ms", optarg, API_IDLE_TIMEOUT_MS_MIN,
				      TLS_HANDSHAKE_MS_MAX, &o->api_idle_timeout_ms) < 0)
				return 2;
			break;
		case 'P':
			if (parse_int("--api-conns-per-addr", optarg, 1, TLS_CONNS_MAX,
				      &o->api_conns_per_addr) < 0)
				return 2;
			break;
		case 'c' + 256:
			if (parse_int("--link-conns-per-cert", optarg, 1,
				      LISTENER_CONNS_PER_CERT_MAX, &o->link_conns_per_cert) < 0)
				return 2;
			break;
		case 'm' + 256:
			if (parse_int("--link-conns-max", optarg, 1, LISTENER_CONNS_MAX_MAX,
				      &o->link_conns_max) < 0)
				return 2;
			break;
		case 'M':
			if (parse_int("--api-conns-max", optarg, 1, TLS_CONNS_MAX,
				      &o->api_conns_max) < 0)
				return 2;
			break;
		case 'S':
			if (parse_int("--session-hours", optarg, API_SESSION_HOURS_MIN,
				      API_SESSION_HOURS_MAX, &o->session_hours) < 0)
				return 2;
			break;
		case 'e' + 256:
			if (parse_int("--events-retention-days", optarg, 1, RETENTION_DAYS_MAX,
				      &o->retention.events_days) < 0)
				return 2;
			break;
		case 'b' + 256:
			if (parse_size("--events-max-bytes", optarg, &o->events_max,
				       &o->events_max_percent) < 0)
				return 2;
			break;
		case 'a' + 256:
			if (parse_int("--audits-retention-days", optarg, 1, RETENTION_DAYS_MAX,
				      &o->retention.audits_days) < 0)
				return 2;
			break;
		case 'y' + 256:
			if (parse_int("--activity-retention-days", optarg, 1, RETENTION_DAYS_MAX,
				      &o->retention.activity_days) < 0)
				return 2;
			break;
		case 'i' + 256:
			if (parse_int("--retention-interval-s", optarg, 1, 86400,
				      &o->retention_interval_s) < 0)
				return 2;
			break;
		case 'o' + 256:
			o->outputs_file = optarg;
			break;
		case 'E' + 256:
			o->enroll_ca_dir = optarg;
			break;
		case 'D' + 256:
		case 'S' + 256: {
			int v, days = opt == 'D' + 256;

			if (parse_int(days ? "--host-cert-days" : "--host-cert-seconds", optarg,
				      days ? 1 : ENROLL_CERT_SECS_MIN,
				      days ? ENROLL_CERT_SECS_MAX / 86400 : ENROLL_CERT_SECS_MAX,
				      &v) < 0)
				return 2;
			o->host_cert_secs = days ? (int64_t)v * 86400 : v;
			break;
		}
		case 'l':
			if ((o->log_level = log_level_parse(optarg)) < 0) {
				fprintf(stderr,
					"vigil-console: --log-level must be debug, info, "
					"warn or error, not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'V':
			printf("vigil-console %s\n", VIGIL_VERSION);
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "vigil-console: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (o->db != NULL && o->events_max_percent) {
		fprintf(stderr,
			"vigil-console: --events-max-bytes as a percentage needs the private"
			" cluster (no --db): the console cannot see the disk of another"
			" server\n");
		return 2;
	}
	if (o->host_timeout_ms <= o->heartbeat_interval_ms) {
		fprintf(stderr,
			"vigil-console: --host-timeout-ms (%d) must be longer than "
			"--heartbeat-interval-ms (%d)\n",
			o->host_timeout_ms, o->heartbeat_interval_ms);
		return 2;
	}
	snprintf(o->pki_ca, sizeof(o->pki_ca), "%s/pki/ca.crt", o->state_dir);
	snprintf(o->pki_cert, sizeof(o->pki_cert), "%s/pki/console.crt", o->state_dir);
	snprintf(o->pki_key, sizeof(o->pki_key), "%s/pki/console.key", o->state_dir);
	snprintf(o->token_path, sizeof(o->token_path), "%s/api-token", o->state_dir);
	if (o->ca == NULL)
		o->ca = o->pki_ca;
	if (o->cert == NULL)
		o->cert = o->pki_cert;
	if (o->key == NULL)
		o->key = o->pki_key;
	if (o->token_file == NULL)
		o->token_file = o->token_path;
	return 0;
}

/* The port of an nng URL ("tls+tcp://0.0.0.0:7443"), or 0. */
static int url_port(const char *url)
{
	nng_url *u;
	int port = 0;

	if (nng_url_parse(&u, url) == 0) {
		port = u->u_port != NULL ? atoi(u->u_port) : 0;
		nng_url_free(u);
	}
	return port;
}

static void nap_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/*
 * Say once each way when the database's disk fills up and takes data
 * again; *logged_full: what the log last said.  A full spell that began
 * and ended between two looks is still said, both ways.
 */
static void storage_log_changes(uint64_t *seen, bool *logged_full)
{
	struct storage_status s;

	storage_state_get(&s);
	if (s.changes == *seen)
		return;
	*seen = s.changes;
	if (!*logged_full)
		log_error("database disk full: %s; batches are answered RETRY and stay in the"
			  " defenders' spools until it has room again (GET /api/v1/status)",
			  s.detail);
	*logged_full = true;
	if (s.state == STORAGE_OK) {
		log_info("database disk takes data again after %" PRId64 " s full; %" PRIu64
			 " batch(es) were answered RETRY meanwhile",
			 s.full_for_ms / 1000, s.refused);
		*logged_full = false;
	}
}

/* The maintenance thread: retention at start and every interval, on its own connection. */
struct maint {
	pthread_t thread;
	bool started;
	atomic_bool stop; /* set by main before joining (the signal sets stop_requested) */
	struct store *st;
	struct retention *ret;
	struct retention_opts opts;
	int interval_s;
};

/* A run as JSON for GET /api/v1/status ("error": why it failed, or null). */
static json_t *retention_run_json(const struct retention_report *rep, const char *error)
{
	time_t now = time(NULL);
	struct tm tm;
	char at[64];

	gmtime_r(&now, &tm);
	strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_pack(
	    "{s:s,s:I,s:b,s:i,s:I,s:{s:{s:i,s:I,s:I},s:{s:i,s:I,s:I}},s:b,s:I,s:b,s:I,s:I,s:I,"
	    "s:b,s:i,s:o}",
	    "at", at, "ms", (json_int_t)rep->ms, "busy", rep->busy, "partitions_created",
	    rep->partitions_created, "default_moved", (json_int_t)rep->default_moved, "dropped",
	    "age", "partitions", rep->partitions_dropped[RETENTION_AGE], "events",
	    (json_int_t)rep->events_dropped[RETENTION_AGE], "bytes",
	    (json_int_t)rep->bytes_dropped[RETENTION_AGE], "size", "partitions",
	    rep->partitions_dropped[RETENTION_SIZE], "events",
	    (json_int_t)rep->events_dropped[RETENTION_SIZE], "bytes",
	    (json_int_t)rep->bytes_dropped[RETENTION_SIZE], "legacy_emptied", rep->legacy_emptied,
	    "events_bytes", (json_int_t)rep->events_bytes, "over_ceiling", rep->over_ceiling,
	    "audits_deleted", (json_int_t)rep->audits_deleted, "activity_deleted",
	    (json_int_t)rep->activity_deleted, "batches_deleted", (json_int_t)rep->batches_deleted,
	    "deletes_unfinished", rep->deletes_unfinished, "skipped", rep->skipped, "error",
	    error != NULL ? json_string(error) : json_null());
}

/* One line for a run that did something (debug for one that did not). */
static void retention_log(const struct maint *m, const struct retention_report *rep)
{
	char line[1024], a[32], b[32];
	size_t n = 0;

#define ADD(...)                                                                                   \
	do {                                                                                       \
		if (n < sizeof(line))                                                              \
			n += (size_t)snprintf(line + n, sizeof(line) - n, __VA_ARGS__);            \
	} while (0)
	if (rep->partitions_created > 0)
		ADD("; created %d day partition(s)", rep->partitions_created);
	if (rep->default_moved > 0)
		ADD("; moved %" PRId64 " chunk(s) out of the default partition",
		    rep->default_moved);
	if (rep->partitions_dropped[RETENTION_AGE] > 0 || rep->events_dropped[RETENTION_AGE] > 0) {
		retention_bytes_text(rep->bytes_dropped[RETENTION_AGE], a);
		ADD("; dropped %d day(s) and %" PRId64 " event(s) (%s) past the %d-day retention",
		    rep->partitions_dropped[RETENTION_AGE], rep->events_dropped[RETENTION_AGE], a,
		    m->opts.events_days);
	}
	if (rep->partitions_dropped[RETENTION_SIZE] > 0 ||
	    rep->events_dropped[RETENTION_SIZE] > 0) {
		retention_bytes_text(rep->bytes_dropped[RETENTION_SIZE], a);
		retention_bytes_text(m->opts.events_max_bytes, b);
		ADD("; dropped %d day(s) and %" PRId64 " event(s) (%s) over the %s ceiling",
		    rep->partitions_dropped[RETENTION_SIZE], rep->events_dropped[RETENTION_SIZE], a,
		    b);
	}
	if (rep->legacy_emptied)
		ADD("; emptied events_legacy (the events stored before migration 13)");
	if (rep->audits_deleted + rep->activity_deleted + rep->batches_deleted > 0)
		ADD("; deleted %" PRId64 " audit(s), %" PRId64 " activity row(s) and %" PRId64
		    " batch record(s) past their retention%s",
		    rep->audits_deleted, rep->activity_deleted, rep->batches_deleted,
		    rep->deletes_unfinished ? " (more at the next run)" : "");
	if (rep->skipped > 0)
		ADD("; %d step(s) did not get their lock in time (first: %s), tried again at the"
		    " next run",
		    rep->skipped, rep->skipped_what);
#undef ADD
	retention_bytes_text(rep->events_bytes, a);
	if (n > 0)
		log_info("retention: %s; events take %s; %" PRId64 " ms", line + 2, a, rep->ms);
	else
		log_debug("retention: nothing to do; events take %s; %" PRId64 " ms", a, rep->ms);
}

static void *maint_main(void *arg)
{
	struct maint *m = arg;
	bool failing = false, over = false;

	while (!stop_requested && !atomic_load(&m->stop)) {
		struct retention_report rep;
		vigil_err err = {0};
		int rc = retention_run(m->ret, &rep, &err);

		storage_state_set_retention_run(retention_run_json(&rep, rc < 0 ? err.msg : NULL));
		if (rc < 0) {
			if (!failing)
				log_warn("retention failed, tried again every %d s: %s",
					 m->interval_s, err.msg);
			failing = true;
		} else {
			if (failing)
				log_info("retention works again");
			failing = false;
			if (!rep.busy)
				retention_log(m, &rep);
			if (rep.over_ceiling && !over) {
				char a[32], b[32];

				retention_bytes_text(rep.events_bytes, a);
				retention_bytes_text(m->opts.events_max_bytes, b);
				log_warn(
				    "events take %s, over the %s ceiling, with only today's left:"
				    " lower --events-retention-days or raise"
				    " --events-max-bytes",
				    a, b);
			}
			over = rep.over_ceiling;
		}
		for (int i = 0; i < m->interval_s * 10 && !stop_requested && !atomic_load(&m->stop);
		     i++)
			nap_ms(100);
	}
	return NULL;
}

/*
 * The ceiling on what events take: as given, or as a share of the
 * filesystem that holds the private cluster (50% unless given), none with
 * --db unless given.
 */
static int events_ceiling(const struct console_opts *o, int64_t *ret_bytes, char *how,
			  size_t howlen, vigil_err *err)
{
	int64_t pct = o->events_max_percent ? o->events_max : EVENTS_MAX_PERCENT_DEFAULT;
	char data[PATH_MAX];
	struct statvfs sv;

	if (o->events_max >= 0 && !o->events_max_percent) {
		*ret_bytes = o->events_max;
		snprintf(how, howlen, "--events-max-bytes");
		return 0;
	}
	if (o->db != NULL) {
		*ret_bytes = 0;
		snprintf(how, howlen, "none with --db unless --events-max-bytes");
		return 0;
	}
	snprintf(data, sizeof(data), "%s/postgres/data", o->state_dir);
	if (statvfs(data, &sv) < 0)
		return verr_set(err, -errno, "cannot measure the filesystem of %s: %s", data,
				strerror(errno));
	*ret_bytes = (int64_t)((double)sv.f_blocks * (double)sv.f_frsize * (double)pct / 100.0);
	snprintf(how, howlen, "%" PRId64 "%% of the filesystem of %s%s", pct, data,
		 o->events_max_percent ? "" : " (the default)");
	return 0;
}

/*
 * The maintenance thread's connection and retention, its settings told to
 * the API, and today's partitions made before the first batch comes (a
 * failure there is not fatal: the default partition takes the events, and
 * the first run makes the partitions).
 */
static int maint_prepare(struct console_opts *o, const char *dsn, struct maint *m, vigil_err *err)
{
	char how[PATH_MAX + 64], size[32];
	int created = 0, rc;

	if ((rc = events_ceiling(o, &o->retention.events_max_bytes, how, sizeof(how), err)) < 0)
		return rc;
	m->opts = o->retention;
	m->interval_s = o->retention_interval_s;
	if ((m->st = store_open(dsn, err)) == NULL)
		return -errno;
	if ((m->ret = retention_new(m->st, &m->opts, err)) == NULL)
		return -errno;
	json_t *settings = json_pack(
	    "{s:i,s:o,s:s,s:i,s:i,s:i}", "events_days", m->opts.events_days, "events_max_bytes",
	    m->opts.events_max_bytes > 0 ? json_integer(m->opts.events_max_bytes) : json_null(),
	    "events_max_bytes_from", how, "audits_days", m->opts.audits_days, "activity_days",
	    m->opts.activity_days, "interval_s", m->interval_s);
	storage_state_set_retention_settings(settings);
	retention_bytes_text(m->opts.events_max_bytes, size);
	log_info("retention: events %d days, %s%s; audits %d days; activity %d days; every %d s",
		 m->opts.events_days, m->opts.events_max_bytes > 0 ? "at most " : "",
		 m->opts.events_max_bytes > 0 ? size : "no size ceiling", m->opts.audits_days,
		 m->opts.activity_days, m->interval_s);
	if (m->opts.events_max_bytes > 0)
		log_info("retention: the events' ceiling is %s", how);
	if (retention_partitions_ensure(m->ret, &created, err) < 0)
		log_warn(
		    "retention: today's partitions not made yet (the first run tries again): %s",
		    err->msg);
	else if (created > 0)
		log_info("retention: created %d day partition(s)", created);
	verr_clear(err);
	return 0;
}

/*
 * Until asked to stop: keep the private PostgreSQL (if any) running and mark
 * silent hosts disconnected.  Database errors are retried, never fatal.
 */
/*
 * Why the private cluster may not start: its filesystem has no room for a
 * WAL file (16 MiB).  Fills why and returns true when so.
 */
static bool pg_disk_full(const char *state_dir, char *why, size_t whylen)
{
	char data[PATH_MAX];
	struct statvfs sv;
	uint64_t avail;

	snprintf(data, sizeof(data), "%s/postgres/data", state_dir);
	if (statvfs(data, &sv) < 0)
		return false;
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (avail >= 16u * 1024 * 1024 + 1024 * 1024)
		return false;
	snprintf(why, whylen,
		 "the private PostgreSQL cannot write its WAL: %" PRIu64
		 " bytes free on the filesystem of %s (No space left on device)",
		 avail, data);
	return true;
}

static void sweep_until_stopped(struct store *st, struct pgembed *pg, const char *state_dir,
				int host_timeout_ms)
{
	int period = host_timeout_ms / 4 < 1000 ? host_timeout_ms / 4 : 1000;
	uint64_t storage_seen = 0;
	bool db_down = false, logged_full = false;
	struct timespec t0, now;

	/*
	 * After a console outage every host's last heartbeat is old: give the
	 * fleet one timeout to reconnect before calling anyone silent, or a
	 * console restart would raise an audit for every host.
	 */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!stop_requested) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		bool grace =
		    (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 <
		    host_timeout_ms;
		vigil_err err = {0};
		int n = 0, rc;

		if (pg != NULL && (rc = pgembed_watch(pg, 60000, &err)) != 0) {
			/*
			 * A cluster that cannot write its WAL stops (PANIC) and
			 * cannot start again until space returns: the disk is
			 * full, said once, not at every restart attempt.
			 */
			char why[PATH_MAX + 160];
			bool said = storage_state_is_full();
			bool nospace = strstr(err.msg, "No space left on device") != NULL;

			if (nospace)
				snprintf(why, sizeof(why), "%s", err.msg);
			else if (rc < 0)
				nospace = pg_disk_full(state_dir, why, sizeof(why));
			if (nospace)
				storage_state_full(why);
			if (said && nospace)
				log_debug("%s", err.msg);
			else if (rc > 0)
				log_warn("%s", err.msg);
			else
				log_error("%s", err.msg);
			verr_clear(&err);
		}
		storage_log_changes(&storage_seen, &logged_full);
		if (grace) {
			nap_ms(period);
			continue;
		}
		if (store_hosts_mark_stale(st, host_timeout_ms, &n, &err) < 0) {
			if (!db_down)
				log_warn("database unavailable, retrying: %s", err.msg);
			db_down = true;
		} else {
			if (db_down)
				log_info("database reachable again");
			db_down = false;
			if (n > 0)
				log_info("%d host(s) silent for %d ms marked disconnected", n,
					 host_timeout_ms);
		}
		nap_ms(period);
	}
}

/* /metrics: the defenders' link (link/listener.h), counted by this process. */
static void link_collect(struct prom_buf *b, void *arg)
{
	static const char *const reasons[LISTENER_REFUSED_NREASONS] = {
	    "per_certificate_cap", "total_cap", "no_identity", "no_memory"};
	struct listener_stats s;

	listener_stats_get(arg, &s);
	prom_family(b, "vigil_link_connections", "gauge", "Defender connections established now");
	prom_sample_u(b, "vigil_link_connections", NULL, s.conns);
	prom_family(b, "vigil_link_certificates", "gauge",
		    "Host certificates with a connection now");
	prom_sample_u(b, "vigil_link_certificates", NULL, s.certs);
	prom_family(b, "vigil_link_connections_admitted_total", "counter",
		    "Defender connections admitted since the console started");
	prom_sample_u(b, "vigil_link_connections_admitted_total", NULL, s.accepted);
	prom_family(b, "vigil_link_connections_refused_total", "counter",
		    "Defender connections closed as they arrived, by why (docs/operations.md,"
		    " \"Link limits\"); reason=given_up: silent ones closed for a newcomer");
	for (int i = 0; i < LISTENER_REFUSED_NREASONS; i++)
		prom_sample_u(b, "vigil_link_connections_refused_total",
			      (const char *const[]){"reason", reasons[i], NULL}, s.refused[i]);
	prom_sample_u(b, "vigil_link_connections_refused_total",
		      (const char *const[]){"reason", "given_up", NULL}, s.evicted_idle);
	prom_family(b, "vigil_link_oversize_total", "counter",
		    "Requests over the console's message limit answered REFUSED");
	prom_sample_u(b, "vigil_link_oversize_total", NULL, s.oversize);
}

/*
 * This console, for the outputs' leases: "host:/state/dir", so that a
 * restarted console takes its own sinks back at once.
 */
static void console_owner(const char *state_dir, char *host, size_t hostlen, char *out,
			  size_t outlen)
{
	char dir[PATH_MAX];

	if (gethostname(host, hostlen) < 0 || host[0] == '\0')
		snprintf(host, hostlen, "localhost");
	host[hostlen - 1] = '\0';
	if (realpath(state_dir, dir) == NULL)
		snprintf(dir, sizeof(dir), "%s", state_dir);
	snprintf(out, outlen, "%s:%s", host, dir);
}

int main(int argc, char **argv)
{
	struct console_opts o = {0};
	nng_tls_config *link_tls = NULL, *api_tls = NULL;
	struct listener *lis = NULL;
	struct rules_push *rules = NULL;
	struct revocation *revoked = NULL;
	struct pki_signer *signer = NULL;
	struct link_renew renew = {0};
	struct api *api = NULL;
	struct pgembed *pg = NULL;
	struct store *st_ingest[4] = {NULL}, *st_soft[4] = {NULL}, *st_api = NULL;
	struct maint maint = {0};
	struct output_confs outconfs = {0};
	struct outputs *outs = NULL;
	bool link_registered = false;
	char hostname[256], owner[PATH_MAX + 300];
	const int ningest = 4;
	char token[API_TOKEN_LEN + 1];
	const char *dsn;
	struct sigaction sa = {0};
	vigil_err err = {0};
	int rc, applied = 0;

	/* Before any thread: the manager's address is taken, and kept from children. */
	sdnotify_init();
	if ((rc = parse_args(argc, argv, &o)) != 0)
		return rc;
	log_init("vigil-console", o.log_level);
	signal(SIGPIPE, SIG_IGN);
	sa.sa_handler = on_stop_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* Never the default (the end of the process): logrotate sends it after a rotation. */
	sa.sa_handler = on_hup_signal;
	sigaction(SIGHUP, &sa, NULL);
	rc = 1;
	if (o.outputs_file != NULL && output_conf_load(o.outputs_file, &outconfs, &err) < 0) {
		log_error("outputs: %s", err.msg);
		goto out;
	}

	if (tls_engine_install(&err) < 0 || fs_mkdir_p(o.state_dir, 0711, &err) < 0 ||
	    api_token_load_or_create(o.token_file, token, &err) < 0) {
		log_error("%s", err.msg);
		goto out;
	}
	const struct tls_files link_files = {.ca = o.ca, .cert = o.cert, .key = o.key};
	const struct tls_files api_files = {.cert = o.cert, .key = o.key};
	if (tls_config_new(NNG_TLS_MODE_SERVER, NNG_TLS_AUTH_MODE_REQUIRED, &link_files, NULL,
			   &link_tls, &err) < 0 ||
	    tls_config_new(NNG_TLS_MODE_SERVER, NNG_TLS_AUTH_MODE_NONE, &api_files, NULL, &api_tls,
			   &err) < 0) {
		log_error("TLS: %s", err.msg);
		goto out;
	}
	const struct listener_opts lopts = {.conns_per_cert = (unsigned)o.link_conns_per_cert,
					    .conns_max = (unsigned)o.link_conns_max};
	/* Revoked hosts are refused from the link's first handshake (filled from the database
	 * below). */
	if ((revoked = revocation_new(o.link_conns_max > 0 ? (unsigned)o.link_conns_max
							   : LISTENER_CONNS_MAX_DEFAULT,
				      &err)) == NULL ||
	    tls_config_set_peer_check(link_tls, revocation_tls_check, revoked, &err) < 0) {
		log_error("revocations: %s", err.msg);
		goto out;
	}
	if (o.enroll_ca_dir != NULL) {
		if ((signer = pki_signer_open(o.enroll_ca_dir, &err)) == NULL) {
			log_error("enrollment: %s", err.msg);
			goto out;
		}
		renew = (struct link_renew){.signer = signer, .cert_secs = o.host_cert_secs};
		log_info("enrollment: hosts join with join tokens; certificates signed by the CA in"
			 " %s (SHA-256 %s) for %lld s",
			 o.enroll_ca_dir, pki_signer_ca_sha256(signer),
			 (long long)o.host_cert_secs);
	}
	if ((lis = listener_bind_opts(o.listen, link_tls, &lopts, &err)) == NULL) {
		log_error("%s", err.msg);
		goto out;
	}
	listener_set_revocation(lis, revoked, signer != NULL ? &renew : NULL);
	if (o.db != NULL) {
		dsn = o.db;
	} else {
		log_info("starting the private PostgreSQL under %s/postgres", o.state_dir);
		sdnotify_status("starting the private PostgreSQL under %s/postgres", o.state_dir);
		if ((pg = pgembed_start(o.state_dir, 60000, &err)) == NULL) {
			log_error("private PostgreSQL: %s", err.msg);
			goto out;
		}
		dsn = pgembed_dsn(pg);
	}
	for (int i = 0; i < ningest; i++) {
		if ((st_ingest[i] = store_open(dsn, &err)) == NULL ||
		    (st_soft[i] = store_open(dsn, &err)) == NULL ||
		    store_set_option(st_soft[i], "synchronous_commit", "off", &err) < 0) {
			log_error("database: %s", err.msg);
			goto out;
		}
	}
	if ((st_api = store_open(dsn, &err)) == NULL) {
		log_error("database: %s", err.msg);
		goto out;
	}
	sdnotify_status("applying database migrations");
	if (store_migrate(st_api, &applied, &err) < 0) {
		log_error("database migration: %s", err.msg);
		goto out;
	}
	log_info("database schema at version %d (%d migration(s) applied now)",
		 store_schema_version_latest(), applied);
	if (maint_prepare(&o, dsn, &maint, &err) < 0) {
		log_error("retention: %s", err.msg);
		goto out;
	}
	if (revocation_start(revoked, dsn, &err) < 0) {
		log_error("revocations: %s", err.msg);
		goto out;
	}
	/* The API's workers open their own connections, with a statement timeout. */
	const struct api_opts api_opts = {.url = o.api,
					  .tls = api_tls,
					  .dsn = dsn,
					  .token = token,
					  .workers = o.api_workers,
					  .query_timeout_ms = o.api_query_timeout_ms,
					  .idle_timeout_ms = o.api_idle_timeout_ms,
					  .conns_per_addr = o.api_conns_per_addr,
					  .conns_max = o.api_conns_max,
					  .session_hours = o.session_hours,
					  .enroll_signer = signer,
					  .host_cert_secs = o.host_cert_secs,
					  .link_port = url_port(o.listen)};
	if ((api = api_start(&api_opts, &err)) == NULL) {
		log_error("%s", err.msg);
		goto out;
	}
	/* The rule set defenders get: read now, then kept fresh by LISTEN vigil_rules. */
	if ((rules = rules_push_start(dsn, &err)) == NULL) {
		log_error("rules: %s", err.msg);
		goto out;
	}
	log_info("rules: rule set version %lld is current", (long long)rules_push_version(rules));
	listener_set_rules(lis, rules);
	if (listener_serve(lis, st_ingest, st_soft, ningest, o.heartbeat_interval_ms, &err) < 0) {
		log_error("%s", err.msg);
		goto out;
	}
	link_registered = prom_register(link_collect, lis) == 0;
	console_owner(o.state_dir, hostname, sizeof(hostname), owner, sizeof(owner));
	const struct outputs_opts oopts = {
	    .confs = &outconfs, .dsn = dsn, .owner = owner, .hostname = hostname};
	if ((outs = outputs_start(&oopts, &err)) == NULL) {
		log_error("outputs: %s", err.msg);
		goto out;
	}
	if (outconfs.n > 0)
		log_info("outputs: %zu sink(s) from %s", outconfs.n, o.outputs_file);
	log_info("vigil-console %s ready: defenders on %s, API on %s (token in %s), TLS engine %s",
		 VIGIL_VERSION, o.listen, o.api, o.token_file, tls_engine_name());
	if ((rc = pthread_create(&maint.thread, NULL, maint_main, &maint)) != 0) {
		log_error("retention: cannot start its thread: %s", strerror(rc));
		rc = 1;
		goto out;
	}
	maint.started = true;
	/* Ready: the database migrated, the link and the API listening and served. */
	{
		char status[512];

		snprintf(status, sizeof(status), "defenders on %s, API on %s", o.listen, o.api);
		sdnotify_ready(status);
	}
	sweep_until_stopped(st_api, pg, o.state_dir, o.host_timeout_ms);
	sdnotify_stopping("stopping");
	log_info("stopping");
	rc = 0;
out:
	outputs_stop(outs);
	output_confs_fini(&outconfs);
	if (maint.started) {
		atomic_store(&maint.stop, true);
		pthread_join(maint.thread, NULL);
	}
	retention_free(maint.ret);
	store_close(maint.st);
	api_stop(api);
	if (link_registered)
		prom_unregister(link_collect, lis);
	listener_stop(lis);
	revocation_stop(revoked);
	pki_signer_free(signer);
	rules_push_stop(rules);
	for (int i = 0; i < ningest; i++) {
		store_close(st_ingest[i]);
		store_close(st_soft[i]);
	}
	store_close(st_api);
	pgembed_stop(pg);
	if (link_tls != NULL)
		nng_tls_config_free(link_tls);
	if (api_tls != NULL)
		nng_tls_config_free(api_tls);
	return rc;
}
