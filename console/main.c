/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vigil-console: the server.  Binds the defenders' mutual-TLS endpoint and the
 * HTTPS API first (so a port in use fails before anything else starts), then
 * opens the database (its private PostgreSQL under --state-dir, or --db),
 * applies migrations and serves.  A sweeper marks hosts whose heartbeats
 * stopped as disconnected.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "api/api_pool.h"
#include "fsutil.h"
#include "link/listener.h"
#include "link/rules_push.h"
#include "log.h"
#include "pg/pgembed.h"
#include "store/store.h"
#include "tls.h"

#define DEFAULT_STATE_DIR "/var/lib/vigil/console"
#define DEFAULT_LISTEN	  "tls+tcp://0.0.0.0:7443"
#define DEFAULT_API	  "https://127.0.0.1:8443"

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

struct console_opts {
	const char *state_dir;
	const char *db;
	const char *listen;
	const char *api;
	const char *ca, *cert, *key;
	const char *token_file;
	int heartbeat_interval_ms;
	int host_timeout_ms;
	int api_workers;
	int api_query_timeout_ms;
	int api_idle_timeout_ms; /* 0 (not given): the API's defaults */
	int api_conns_per_addr;
	int api_conns_max;
	int link_conns_per_cert; /* 0 (not given): the listener's defaults */
	int link_conns_max;
	int log_level;
	char pki_ca[PATH_MAX], pki_cert[PATH_MAX], pki_key[PATH_MAX], token_path[PATH_MAX];
};

static void usage(FILE *f)
{
	fprintf(f,
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
		"  --link-conns-per-cert N    defender connections per certificate; default %d\n"
		"  --link-conns-max N         defender connections in all; default %d\n"
		"  --heartbeat-interval-ms N  how often defenders report; default 1000\n"
		"  --host-timeout-ms N        silence after which a host is disconnected; default "
		"10000\n"
		"  --log-level LEVEL          debug, info, warn or error\n",
		DEFAULT_STATE_DIR, DEFAULT_LISTEN, DEFAULT_API, API_POOL_WORKERS_DEFAULT,
		API_QUERY_TIMEOUT_MS_DEFAULT, API_IDLE_TIMEOUT_MS_DEFAULT,
		API_CONNS_PER_ADDR_DEFAULT, API_CONNS_MAX_DEFAULT, LISTENER_CONNS_PER_CERT_DEFAULT,
		LISTENER_CONNS_MAX_DEFAULT);
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
	    {"link-conns-per-cert", required_argument, NULL, 'c' + 256},
	    {"link-conns-max", required_argument, NULL, 'm' + 256},
	    {"heartbeat-interval-ms", required_argument, NULL, 'H'},
	    {"host-timeout-ms", required_argument, NULL, 'T'},
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
	o->log_level = LOG_LVL_INFO;
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

static void nap_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/*
 * Until asked to stop: keep the private PostgreSQL (if any) running and mark
 * silent hosts disconnected.  Database errors are retried, never fatal.
 */
static void sweep_until_stopped(struct store *st, struct pgembed *pg, int host_timeout_ms)
{
	int period = host_timeout_ms / 4 < 1000 ? host_timeout_ms / 4 : 1000;
	bool db_down = false;
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
			if (rc > 0)
				log_warn("%s", err.msg);
			else
				log_error("%s", err.msg);
			verr_clear(&err);
		}
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

int main(int argc, char **argv)
{
	struct console_opts o = {0};
	nng_tls_config *link_tls = NULL, *api_tls = NULL;
	struct listener *lis = NULL;
	struct rules_push *rules = NULL;
	struct api *api = NULL;
	struct pgembed *pg = NULL;
	struct store *st_ingest[4] = {NULL}, *st_soft[4] = {NULL}, *st_api = NULL;
	const int ningest = 4;
	char token[API_TOKEN_LEN + 1];
	const char *dsn;
	struct sigaction sa = {0};
	vigil_err err = {0};
	int rc, applied = 0;

	if ((rc = parse_args(argc, argv, &o)) != 0)
		return rc;
	log_init("vigil-console", o.log_level);
	signal(SIGPIPE, SIG_IGN);
	sa.sa_handler = on_stop_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	rc = 1;

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
	if ((lis = listener_bind_opts(o.listen, link_tls, &lopts, &err)) == NULL) {
		log_error("%s", err.msg);
		goto out;
	}
	if (o.db != NULL) {
		dsn = o.db;
	} else {
		log_info("starting the private PostgreSQL under %s/postgres", o.state_dir);
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
	if (store_migrate(st_api, &applied, &err) < 0) {
		log_error("database migration: %s", err.msg);
		goto out;
	}
	log_info("database schema at version %d (%d migration(s) applied now)",
		 store_schema_version_latest(), applied);
	/* The API's workers open their own connections, with a statement timeout. */
	const struct api_opts api_opts = {.url = o.api,
					  .tls = api_tls,
					  .dsn = dsn,
					  .token = token,
					  .workers = o.api_workers,
					  .query_timeout_ms = o.api_query_timeout_ms,
					  .idle_timeout_ms = o.api_idle_timeout_ms,
					  .conns_per_addr = o.api_conns_per_addr,
					  .conns_max = o.api_conns_max};
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
	log_info("vigil-console %s ready: defenders on %s, API on %s (token in %s), TLS engine %s",
		 VIGIL_VERSION, o.listen, o.api, o.token_file, tls_engine_name());
	sweep_until_stopped(st_api, pg, o.host_timeout_ms);
	log_info("stopping");
	rc = 0;
out:
	api_stop(api);
	listener_stop(lis);
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
