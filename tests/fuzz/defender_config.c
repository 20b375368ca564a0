/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The defender's configuration file (defender/config/defender_config.c): the
 * input is the file.  defender_config_parse reads it from memory; every input
 * also goes through defender_config_load, from a memfd opened by its
 * /proc/self/fd path (a regular file that never touches a disk), and both
 * must agree.  Properties of an accepted file: 1..DEFENDER_MAX_CONSOLES
 * tls+tcp URLs, ca, cert and key set, at most DEFENDER_MAX_LABELS labels,
 * every number inside its documented range, state_dir set, bpf_pin_dir an
 * absolute path unless "none".
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config/defender_config.h"
#include "fuzz_util.h"
#include "kvconf.h"
#include "log.h"

static int memfd = -1;
static char memfd_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	memfd = memfd_create("vigil-fuzz-config", MFD_CLOEXEC);
	if (memfd < 0)
		return -1;
	snprintf(memfd_path, sizeof(memfd_path), "/proc/self/fd/%d", memfd);
	return 0;
}

static void check_config(const struct defender_config *c)
{
	if (c->nconsoles < 1 || c->nconsoles > DEFENDER_MAX_CONSOLES)
		fuzz_fail("config: %zu consoles", c->nconsoles);
	for (size_t i = 0; i < c->nconsoles; i++)
		if (strncmp(c->consoles[i], "tls+tcp", 7) != 0)
			fuzz_fail("config: console '%s'", c->consoles[i]);
	if (c->ca == NULL || c->cert == NULL || c->key == NULL || c->state_dir == NULL)
		fuzz_fail("config: ca, cert, key or state_dir missing");
	if (c->nlabels > DEFENDER_MAX_LABELS)
		fuzz_fail("config: %zu labels", c->nlabels);
	for (size_t i = 0; i < c->nlabels; i++)
		if (c->labels[i].key[0] == '\0' || strlen(c->labels[i].key) > 63 ||
		    strlen(c->labels[i].value) > 255)
			fuzz_fail("config: label %zu", i);
	if (c->heartbeat_interval_ms < 100 || c->heartbeat_interval_ms > 600000)
		fuzz_fail("config: heartbeat_interval_ms %d", c->heartbeat_interval_ms);
	if (c->ringbuf_kb != 0 && (c->ringbuf_kb < 64 || (c->ringbuf_kb & (c->ringbuf_kb - 1))))
		fuzz_fail("config: ringbuf_kb %d", c->ringbuf_kb);
	if (c->spool_max_kb < 128)
		fuzz_fail("config: spool_max_kb %d", c->spool_max_kb);
	if (c->send_window < 1 || c->send_window > DEFENDER_SEND_WINDOW_MAX)
		fuzz_fail("config: send_window %d", c->send_window);
	if (c->log_level < LOG_LVL_DEBUG || c->log_level > LOG_LVL_ERROR)
		fuzz_fail("config: log_level %d", c->log_level);
	if (c->learn_window_s < 1 || c->learn_window_s > 90u * 86400)
		fuzz_fail("config: learn_window_s %u", c->learn_window_s);
	if ((c->bpf_pin_dir == NULL) != c->bpf_pin_none ||
	    (c->bpf_pin_dir != NULL && c->bpf_pin_dir[0] != '/'))
		fuzz_fail("config: bpf_pin_dir '%s', none %d",
			  c->bpf_pin_dir ? c->bpf_pin_dir : "(null)", c->bpf_pin_none);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct defender_config a, b;
	vigil_err ea = {0}, eb = {0};
	int ra, rb;

	/* Stepping around the known finding costs the spool_max_mb key its coverage. */
	if (fuzz_known("config-spool-max-mb-overflow") &&
	    memmem(data, size, "spool_max_mb", 12) != NULL)
		return -1;
	ra = defender_config_parse((const char *)data, size, memfd_path, &a, &ea);
	if (ra < 0 && ea.msg[0] == '\0')
		fuzz_fail("defender_config_parse: %d without a message", ra);
	if (ra == 0)
		check_config(&a);

	if (ftruncate(memfd, 0) < 0 || pwrite(memfd, data, size, 0) != (ssize_t)size)
		fuzz_fail("cannot write the memfd");
	rb = defender_config_load(memfd_path, &b, &eb);
	/* Over the size limit each says so in its own words. */
	if (ra != rb || (size <= KVCONF_MAX_BYTES && strcmp(ea.msg, eb.msg) != 0))
		fuzz_fail("parse (%d: %s) and load (%d: %s) disagree", ra, ea.msg, rb, eb.msg);
	if (ra == 0) {
		if (a.nconsoles != b.nconsoles || a.nlabels != b.nlabels ||
		    a.spool_max_kb != b.spool_max_kb || strcmp(a.key, b.key) != 0)
			fuzz_fail("parse and load read different configurations");
		defender_config_fini(&a);
		defender_config_fini(&b);
	}
	return 0;
}
