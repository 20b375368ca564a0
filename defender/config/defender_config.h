/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_CONFIG_H
#define VIGIL_DEFENDER_CONFIG_H

/*
 * The defender's configuration file (common/kvconf.h format):
 *
 *   console = tls+tcp://console.example:7443   # repeat for fail-over, up to 8
 *   ca      = /etc/vigil/ca.crt
 *   cert    = /etc/vigil/host.crt               # its CN is this host's identity
 *   key     = /etc/vigil/host.key
 *   server_name = console.example               # optional: name the console cert must carry
 *   label   = env=prod                          # repeat; key=value
 *   state_dir = /var/lib/vigil/defender
 *   heartbeat_interval_ms = 1000
 *   log_level = info
 *   ringbuf_kb = 8192                           # kernel ring buffer, a power of two
 *   all_reads = false          # true: every read-only open, not the first
 *                              # per process and file
 *   copy_open_args = true      # false: opens' paths are not copied as the
 *                              # call enters (cheaper; see docs/events.md)
 *   spool_max_mb = 256         # disk spool for batches not yet acknowledged
 *   send_window = 4            # batches in flight to the console (1..16)
 *   bpf_pin_dir = /sys/fs/bpf/vigil   # capture outlives a killed defender;
 *                                     # none: off
 *   enforce_fanotify = true    # false: exec and open rules are alerted only
 *   enforce_answer_ms = 250    # a held exec or open is allowed after this
 *                              # long undecided (10..5000; counted, audited)
 *   learning = true            # learn a model per service, report deviations
 *   learn_window = 24h         # how long a new model learns (s, m, h, d)
 *   renew = true               # renew the certificate at 2/3 of its lifetime
 *                              # over the link (docs/operations.md, "Enrolling hosts")
 *   metrics_listen = 127.0.0.1:9464   # Prometheus text on GET /metrics, plain
 *                              # HTTP, no credential; IPv4 or [IPv6]:port;
 *                              # absent (the default): no metrics port
 *
 * Unknown keys are errors (a typo must not silently drop a setting).
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "error.h"

#define DEFENDER_MAX_CONSOLES	 8
#define DEFENDER_MAX_LABELS	 32
#define DEFENDER_SEND_WINDOW_MAX 16
/*
 * One batch in flight at a time leaves the console idle while the last
 * acknowledgement travels back and the next batch is read; four kept the
 * console busy in tests/bench/ingest_bench (docs/performance.md).
 */
#define DEFENDER_SEND_WINDOW_DEFAULT 4

struct defender_label {
	char *key;
	char *value;
};

struct defender_config {
	char *consoles[DEFENDER_MAX_CONSOLES];
	size_t nconsoles;
	char *ca;
	char *cert;
	char *key;
	char *server_name; /* NULL: each console URL's host */
	struct defender_label labels[DEFENDER_MAX_LABELS];
	size_t nlabels;
	char *state_dir;
	int heartbeat_interval_ms;
	int log_level; /* enum log_level */
	int ringbuf_kb;
	bool all_reads;
	bool copy_open_args;   /* copy opens' paths at entry (stash_args on the open family) */
	bool enforce_fanotify; /* exec and open permission events for the rules */
	int enforce_answer_ms; /* the bound on one permission answer */
	int spool_max_kb;      /* spool_max_mb, or spool_max_kb for tests */
	int send_window;
	char *bpf_pin_dir; /* NULL: capture ends with the process */
	bool bpf_pin_none; /* bpf_pin_dir = none was given */
	bool learning;
	unsigned learn_window_s;
	bool renew; /* renew the certificate over the link before it expires (enroll/renew.h) */
	char *metrics_listen; /* as written ("127.0.0.1:9464"); NULL: no metrics port */
	struct sockaddr_storage metrics_addr; /* metrics_listen parsed, when set */
	socklen_t metrics_addr_len;
};

/* Load and validate path into cfg (zeroed first).  Free with defender_config_fini. */
int defender_config_load(const char *path, struct defender_config *cfg, vigil_err *err);

/* Parse from memory; source names it in messages. */
int defender_config_parse(const char *text, size_t len, const char *source,
			  struct defender_config *cfg, vigil_err *err);

void defender_config_fini(struct defender_config *cfg);

#endif
