/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_TESTS_HARNESS_H
#define VIGIL_TESTS_HARNESS_H

/*
 * What the integration suites share: temporary directories, a PKI made with
 * the real pki module, and the real daemons started as child processes with
 * their logs kept for the failure message.  Everything a test starts is
 * stopped by the test (by PID) and its directory removed.
 */

#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "pki_enroll.h"
#include "store/store.h"
#include "vigil.pb-c.h"

#define H_PATH 512

/* New empty directory under /tmp (short, so Unix socket paths fit). */
void h_tmpdir(char out[H_PATH]);
/* Remove dir, and the BPF pins of defenders configured with h_bpf_pin_dir(dir). */
void h_rmrf(const char *dir);
/* A defender's bpf_pin_dir for test dir: /sys/fs/bpf/<its name>, never the host's own. */
void h_bpf_pin_dir(const char *dir, char out[H_PATH]);

/* Path of a built program: "vigil-console", "vigil-defender", "vigilctl". */
const char *h_bin(const char *name);

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int h_free_port(void);

/* Start argv (argv[0] a path) with stdout+stderr appended to log_path. */
pid_t h_spawn(const char *log_path, char *const argv[]);

/* Send sig to pid and reap it (SIGKILL after timeout_ms); returns the wait status. */
int h_stop(pid_t pid, int sig, int timeout_ms);

/* Whether pid has exited (reaping it); *ret_status gets its wait status. */
bool h_exited(pid_t pid, int *ret_status);

/* Run argv to completion (at most timeout_ms); output into log_path.  Returns exit code, -1 on
 * signal/timeout. */
int h_run(const char *log_path, int timeout_ms, char *const argv[]);

/* Whole file as a new string ("" if unreadable); caller frees. */
char *h_slurp(const char *path);

/* Write text to dir/name (mode 0644); the path goes into out.  Fails the test on error. */
void h_write_file(const char *dir, const char *name, const char *text, char out[H_PATH]);

/*
 * The JSON document in path (the result file a script wrote); fails the test
 * when absent or not JSON, showing what the script logged in log.
 */
json_t *h_load_result(const char *path, const char *log);

/*
 * The samples of a Prometheus text exposition as python3-prometheus-client's
 * parser reads it, run in dir (its files prom.py, metrics.txt, metrics.json
 * and prom.log are left there): {name: [{labels, value, type}]}, caller
 * decrefs.  Skips the test when the parser is not installed, fails it when
 * the parser refuses the text.
 */
json_t *h_prom_parse(const char *dir, const char *text);

long long h_now_ms(void);
void h_sleep_ms(int ms);
/* The wall clock (CLOCK_REALTIME) in ms: what the console's timestamps (its now()) compare to. */
long long h_wall_ms(void);

/* PKI fixture: a CA, the console's certificate, and one for host "host-a". */
struct h_pki {
	char dir[H_PATH];
	char ca[H_PATH];
	char console_cert[H_PATH], console_key[H_PATH];
	char host_cert[H_PATH], host_key[H_PATH];
};
void h_pki_make(const char *dir, struct h_pki *pki);

/* Issue a client certificate for cn into pki->dir (valid, or with explicit validity). */
void h_pki_issue_client(const struct h_pki *pki, const char *cn, time_t not_before,
			time_t not_after, char cert[H_PATH], char key[H_PATH]);

/* What the certificate file at path says (fails the test when it cannot be read). */
struct pki_cert_info h_cert_file(const char *path);

/* A console running with its private PostgreSQL under dir/console. */
struct h_console {
	char state[H_PATH];
	char log[H_PATH];
	char listen[128];
	char api[128];
	char token[128];
	pid_t pid;
	int link_port, api_port;
};

/*
 * Start vigil-console with pki, extra arguments (NULL-terminated, may be
 * NULL), and wait until its API answers (fails the test after 60 s).
 */
void h_console_start(struct h_console *c, const char *dir, const struct h_pki *pki,
		     const char *const *extra);
/* The same start without the wait (c->token is not read): a test that waits on its own signal. */
void h_console_spawn(struct h_console *c, const char *dir, const struct h_pki *pki,
		     const char *const *extra);
/* Restart on the same state and ports. */
void h_console_restart(struct h_console *c, const struct h_pki *pki, const char *const *extra);
void h_console_kill(struct h_console *c, int sig);

/* GET path on the console API; returns the HTTP status, *ret_json the parsed body (may be NULL). */
int h_api_get(const struct h_console *c, const struct h_pki *pki, const char *path,
	      const char *token, json_t **ret_json);

/* The host object for host_id from GET /api/v1/hosts, or NULL (caller decrefs). */
json_t *h_api_host(const struct h_console *c, const struct h_pki *pki, const char *host_id);

/* libpq connection to the console's private database. */
PGconn *h_db(const struct h_console *c);
/* SELECT that returns one integer. */
long long h_db_count(const struct h_console *c, const char *sql);

/* A defender configuration file; returns its path in out. */
void h_defender_conf(const char *dir, const struct h_console *c, const char *ca, const char *cert,
		     const char *key, const char *extra, char out[H_PATH]);

/*
 * POST path (empty JSON body) on the console API, sent once (apiclient_post);
 * returns the HTTP status or -1 when no answer came, *ret_json the parsed body.
 */
int h_api_post(const struct h_console *c, const struct h_pki *pki, const char *path,
	       const char *token, json_t **ret_json);

/*
 * method path on the console API with body (JSON text, or NULL for none)
 * and extra headers (NULL, or name, value, ..., NULL), sent once
 * (apiclient_request); returns the HTTP status or -1 when no answer came,
 * *ret_json the parsed body (may be NULL).
 */
int h_api_request(const struct h_console *c, const struct h_pki *pki, const char *method,
		  const char *path, const char *body, const char *const *headers, const char *token,
		  json_t **ret_json);

/*
 * vigilctl with c's API options (--api, --ca, --token-file: the console's
 * own token) and args (NULL-terminated); its output in out (a file, cut
 * first), its exit code returned (-1 when it ran over 60 s).
 */
int h_vigilctl(const struct h_console *c, const struct h_pki *pki, const char *const *args,
	       const char *out);

/*
 * A loopback TCP port below the ephemeral range (so a model learns it as
 * itself, not as "ephemeral"), free now; with a listener on it in *keep_fd
 * when keep_fd is not NULL.  Ports differ per process and per call.
 */
int h_fixed_port(int *keep_fd);

/* A store (the console's own module) on the console's private database; store_close it. */
struct store *h_store(const struct h_console *c);

/*
 * A defender's side of the link without a defender: a req socket over mutual
 * TLS to the console with cert/key.  h_link_request sends env and returns the
 * console's reply (vigil__reply__free_unpacked it); it fails the test when
 * no reply comes within 10 s.
 */
struct h_link {
	nng_socket sock;
	nng_tls_config *tls;
};
void h_link_open(struct h_link *l, const struct h_console *c, const struct h_pki *pki,
		 const char *cert, const char *key);
Vigil__Reply *h_link_request(struct h_link *l, const Vigil__Envelope *env);
void h_link_close(struct h_link *l);

/*
 * As h_link_open, with the dialer's redial interval fixed at redial_ms (0: nng's default): nng
 * redials a connection the console closed after a random delay below it, so
 * a long one keeps a refused connection away most of the time.
 */
void h_link_open_redial(struct h_link *l, const struct h_console *c, const struct h_pki *pki,
			const char *cert, const char *key, int redial_ms);

/*
 * As h_link_request, but NULL (not a failed test) when the console has not
 * answered within timeout_ms: no connection to send on, or no reply.
 * Safe to call on different links from different threads.
 */
Vigil__Reply *h_link_try_request(struct h_link *l, const Vigil__Envelope *env, int timeout_ms);

/*
 * Start vigil-testsvc (tests/e2e/testsvc.c) on workdir with its four ports
 * as a daemon does: fork, new session, fork again, wait to be re-parented to
 * init, stdout and stderr to log; in the cgroup whose directory is cgroup
 * first when not NULL.  Returns its pid (from workdir/pid; fails the test
 * after 20 s).
 */
pid_t h_start_testsvc(const char *workdir, const int ports[4], const char *log, const char *cgroup);

/*
 * Skip the test once the suite's fixture has started something (a console,
 * a defender, containers, a directory): criterion runs no .fini after a skip,
 * in .init or in the test, so fini (the suite's own, safe to run on a partial
 * fixture) runs here first.
 */
#define H_SKIP(fini, ...)                                                                          \
	do {                                                                                       \
		fini();                                                                            \
		cr_skip_test(__VA_ARGS__);                                                         \
	} while (0)

/*
 * The browser tests' tools (Chromium, node, tests/ui/node_modules): the
 * test fails, naming what is missing, when one is (tests/ui/install.sh,
 * which the test command runs, installs them).
 */
void h_need_browser(void);

/*
 * Run commands in "sh -i" on a new pseudo-terminal (its controlling
 * terminal, so the defender sees an interactive session), keep the terminal
 * drained, and wait at most timeout_ms for the shell to exit (then kill it).
 * Returns the shell's pid (reaped).
 */
pid_t h_pty_session(const char *commands, int timeout_ms);

/*
 * A barrier on delivery, not a sleep: returns once everything host_id's
 * defender captured before since_wall_ms (h_wall_ms) is in the console's
 * database, or was counted as lost (dropped from its spool, refused by the
 * console), as its heartbeats prove; fails the test after timeout_ms with
 * the counters it saw.  After it, "no late duplicate", "no audit" and "the
 * count stays" can be asserted at once.
 *
 * How: the console stores each heartbeat's counters in hosts.capture and
 * its time in hosts.last_seen.  The defender sends a heartbeat only after
 * the previous one was answered, so one stored after another that was
 * stored at since_wall_ms + H_DELIVERY_SETTLE_MS or later holds counters
 * taken after that moment, when an event from before since_wall_ms is
 * spooled (read within the capture poll's 200 ms, batched within 250 ms at
 * ticks at most 200 ms apart: 650 ms; the rest is slack for a loaded
 * runner).  Its delivery.batches_spooled (S) marks the batches that hold
 * such events.  The spool releases batches in order (spool_pending counts
 * from the oldest unacknowledged one), so once a heartbeat shows
 *   spool_pending + (lost since) <= batches_spooled - S
 * none of the first S batches can still be waiting; on a quiet host that
 * is the first such heartbeat with spool_pending = 0 (batches_acked =
 * batches_spooled).  A busy host (other processes keep spooling) passes as
 * soon as the console has caught up with S, without ever being idle.
 *
 * Model changes leave the defender every 2 s at most: to wait for those of
 * activity before T, pass T + 2000.  A defender that says hello again while
 * this waits (a reconnect) moves last_seen without new counters: call it
 * while the link is up.
 */
#define H_DELIVERY_SETTLE_MS 1000
void h_wait_delivered(const struct h_console *c, const char *host_id, long long since_wall_ms,
		      int timeout_ms);
/* As h_wait_delivered, for a console on another database (its --db conninfo). */
void h_wait_delivered_dsn(const char *conninfo, const char *host_id, long long since_wall_ms,
			  int timeout_ms);

/*
 * A marker through the pipeline, not a sleep: create the new file path (an
 * absolute path; this process opens it O_CREAT|O_EXCL), wait until host_id's
 * event for it is stored, then until every batch of its stream up to the one
 * that holds it is stored or reported lost (batches may commit out of
 * order).  Fails the test after timeout_ms.
 *
 * The defender reads the kernel's ring in order and turns each event into
 * its deviations before the next, into batches numbered in that order.  So
 * whatever the kernel reported before this open (an act the test saw
 * finish before calling this, by any process) has been through the
 * defender, and a deviation it raised is stored as an audit.  Not model
 * changes (sent every 2 s, see h_wait_delivered).  Audits of the enforcer's
 * own decisions (fanotify, the network guard) are queued beside the ring
 * and join the batch being built at the capture loop's next pass (at most
 * 200 ms): in practice long before a marker made after the act was seen.
 */
void h_wait_marker(const struct h_console *c, const char *host_id, const char *path,
		   int timeout_ms);

#endif
