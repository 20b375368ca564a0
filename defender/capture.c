/* SPDX-License-Identifier: Apache-2.0 */
#include "capture.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef VIGIL_HAVE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "exec_count.h"
#include "exec_count.skel.h"

struct capture {
	struct exec_count *exec_skel;
	int ncpus;
	uint64_t *percpu; /* scratch for per-CPU lookups, ncpus long */
};

static int silent_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	/* libbpf's chatter would bypass our logger; errors come back as return codes. */
	(void)level;
	(void)fmt;
	(void)ap;
	return 0;
}

struct capture *capture_start(vigil_err *err)
{
	struct capture *cap;
	int rc;

	libbpf_set_print(silent_print);
	cap = calloc(1, sizeof(*cap));
	if (cap == NULL) {
		verr_set(err, -ENOMEM, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	cap->ncpus = libbpf_num_possible_cpus();
	if (cap->ncpus <= 0) {
		rc = verr_set(err, cap->ncpus < 0 ? cap->ncpus : -EINVAL,
			      "cannot count possible CPUs");
		goto fail;
	}
	cap->percpu = calloc((size_t)cap->ncpus, sizeof(uint64_t));
	if (cap->percpu == NULL) {
		rc = verr_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	cap->exec_skel = exec_count__open();
	if (cap->exec_skel == NULL) {
		rc = verr_set(err, -errno, "cannot open BPF program exec_count: %s",
			      strerror(errno));
		goto fail;
	}
	cap->exec_skel->rodata->self_tgid = (uint32_t)getpid();
	if ((rc = exec_count__load(cap->exec_skel)) < 0) {
		rc = verr_set(err, rc, "cannot load BPF program exec_count: %s%s", strerror(-rc),
			      geteuid() != 0 ? " (the defender must run as root)" : "");
		goto fail;
	}
	if ((rc = exec_count__attach(cap->exec_skel)) < 0) {
		rc = verr_set(err, rc,
			      "cannot attach exec_count to raw tracepoint sched_process_exec: %s",
			      strerror(-rc));
		goto fail;
	}
	return cap;
fail:
	capture_stop(cap);
	errno = -rc;
	return NULL;
}

uint64_t capture_exec_count(const struct capture *cap)
{
	uint32_t key = EXEC_COUNTER_EXECS;
	uint64_t sum = 0;

	if (bpf_map__lookup_elem(cap->exec_skel->maps.exec_counters, &key, sizeof(key),
				 cap->percpu, sizeof(uint64_t) * (size_t)cap->ncpus, 0) != 0)
		return 0;
	for (int i = 0; i < cap->ncpus; i++)
		sum += cap->percpu[i];
	return sum;
}

const char *capture_describe(const struct capture *cap)
{
	(void)cap;
	return "exec_count (raw tracepoint sched_process_exec)";
}

void capture_stop(struct capture *cap)
{
	if (cap == NULL)
		return;
	exec_count__destroy(cap->exec_skel);
	free(cap->percpu);
	free(cap);
}

#else /* !VIGIL_HAVE_BPF */

struct capture *capture_start(vigil_err *err)
{
	verr_set(err, -ENOTSUP, "this defender was built without BPF support (meson -Dbpf=disabled)");
	errno = ENOTSUP;
	return NULL;
}

uint64_t capture_exec_count(const struct capture *cap)
{
	(void)cap;
	return 0;
}

const char *capture_describe(const struct capture *cap)
{
	(void)cap;
	return "none";
}

void capture_stop(struct capture *cap)
{
	(void)cap;
}

#endif
