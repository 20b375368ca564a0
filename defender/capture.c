/* SPDX-License-Identifier: Apache-2.0 */
#include "capture.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const drop_names[DROP_REASON_MAX] = {
	[DROP_RINGBUF_FULL] = "ringbuf_full",	[DROP_SCRATCH] = "scratch",
	[DROP_PATH_TRUNCATED] = "path_truncated",
	[DROP_ARGS_TRUNCATED] = "args_truncated",
};
static const char *const filter_names[FILTER_REASON_MAX] = {
	[FILTER_SELF] = "self",
	[FILTER_READ_REPEAT] = "read_repeat",
	[FILTER_READ_FAILED] = "read_failed",
};
static const char *const type_names[EV_TYPE_MAX] = {
	[0] = "unknown", [EV_EXEC] = "exec", [EV_FORK] = "fork",
	[EV_EXIT] = "exit", [EV_FILE] = "file", [EV_NET] = "net",
};

const char *capture_drop_name(int r)
{
	return r >= 0 && r < DROP_REASON_MAX ? drop_names[r] : "unknown";
}

const char *capture_filter_name(int r)
{
	return r >= 0 && r < FILTER_REASON_MAX ? filter_names[r] : "unknown";
}

const char *capture_type_name(int t)
{
	return t > 0 && t < EV_TYPE_MAX ? type_names[t] : "unknown";
}

#ifdef VIGIL_HAVE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "capture.skel.h"

struct capture {
	struct capture_bpf *skel;
	struct ring_buffer *rb;
	size_t ringbuf_bytes;
	int ncpus;
	uint64_t *percpu; /* scratch for per-CPU lookups, ncpus long */
	uint64_t user_malformed;
	/* The current poll's callback, for the libbpf trampoline. */
	capture_record_fn fn;
	void *fn_ctx;
};

static int silent_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	/* libbpf's chatter would bypass our logger; errors come back as return codes. */
	(void)level;
	(void)fmt;
	(void)ap;
	return 0;
}

/* libbpf hands us each record; check it before anyone reads it. */
static int on_record(void *ctx, void *data, size_t len)
{
	struct capture *cap = ctx;
	const struct ev_hdr *h = data;

	if (len < sizeof(*h) || h->size != len || h->type == 0 || h->type >= EV_TYPE_MAX) {
		cap->user_malformed++;
		return 0;
	}
	return cap->fn(h, len, cap->fn_ctx);
}

static bool power_of_two(size_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

struct capture *capture_start(const struct capture_opts *opts, vigil_err *err)
{
	struct capture *cap;
	size_t rb = opts->ringbuf_bytes ? opts->ringbuf_bytes : 8u << 20;
	int rc;

	if (!power_of_two(rb) || rb < 64 * 1024 || rb > (1u << 30)) {
		verr_set(err, -EINVAL, "ring buffer size %zu must be a power of two from 64 KiB to 1 GiB",
			 rb);
		errno = EINVAL;
		return NULL;
	}
	/* VIGIL_BPF_DEBUG=1 shows libbpf's and the verifier's own words, for bug reports. */
	if (getenv("VIGIL_BPF_DEBUG") == NULL)
		libbpf_set_print(silent_print);
	cap = calloc(1, sizeof(*cap));
	if (cap == NULL) {
		verr_set(err, -ENOMEM, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	cap->ringbuf_bytes = rb;
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

	cap->skel = capture_bpf__open();
	if (cap->skel == NULL) {
		rc = verr_set(err, -errno, "cannot open BPF program capture: %s", strerror(errno));
		goto fail;
	}
	cap->skel->rodata->self_tgid = (uint32_t)getpid();
	cap->skel->rodata->filter_read_repeat = opts->filter_read_repeat;
	cap->skel->rodata->filter_failed_reads = opts->filter_failed_reads;
	if ((rc = bpf_map__set_max_entries(cap->skel->maps.events, (uint32_t)rb)) < 0) {
		rc = verr_set(err, rc, "cannot size the ring buffer to %zu bytes: %s", rb,
			      strerror(-rc));
		goto fail;
	}
	if ((rc = capture_bpf__load(cap->skel)) < 0) {
		rc = verr_set(err, rc, "cannot load BPF program capture: %s%s", strerror(-rc),
			      geteuid() != 0 ? " (the defender must run as root)"
					     : " (the kernel's verifier refused it)");
		goto fail;
	}
	if ((rc = capture_bpf__attach(cap->skel)) < 0) {
		rc = verr_set(err, rc, "cannot attach the capture programs: %s", strerror(-rc));
		goto fail;
	}
	cap->rb = ring_buffer__new(bpf_map__fd(cap->skel->maps.events), on_record, cap, NULL);
	if (cap->rb == NULL) {
		rc = verr_set(err, -errno, "cannot open the ring buffer: %s", strerror(errno));
		goto fail;
	}
	return cap;
fail:
	capture_stop(cap);
	errno = -rc;
	return NULL;
}

int capture_poll(struct capture *cap, int timeout_ms, capture_record_fn fn, void *ctx)
{
	int n;

	cap->fn = fn;
	cap->fn_ctx = ctx;
	n = ring_buffer__poll(cap->rb, timeout_ms);
	if (n == -EINTR)
		n = 0;
	if (n < 0)
		return n;
	/*
	 * The kernel side wakes us only once plenty is waiting (see emit()); what
	 * arrived without a wakeup is read here, after the poll's timeout.
	 */
	int m = ring_buffer__consume(cap->rb);
	return m < 0 ? m : n + m;
}

static void sum_map(struct capture *cap, struct bpf_map *map, uint64_t *out, int n)
{
	for (int i = 0; i < n; i++) {
		uint32_t key = (uint32_t)i;

		out[i] = 0;
		if (bpf_map__lookup_elem(map, &key, sizeof(key), cap->percpu,
					 sizeof(uint64_t) * (size_t)cap->ncpus, 0) != 0)
			continue;
		for (int c = 0; c < cap->ncpus; c++)
			out[i] += cap->percpu[c];
	}
}

void capture_read_counters(struct capture *cap, struct capture_counters *out)
{
	sum_map(cap, cap->skel->maps.delivered, out->delivered, EV_TYPE_MAX);
	sum_map(cap, cap->skel->maps.drops, out->drops, DROP_REASON_MAX);
	sum_map(cap, cap->skel->maps.filtered, out->filtered, FILTER_REASON_MAX);
	out->user_malformed = cap->user_malformed;
}

uint64_t capture_exec_count(const struct capture *cap)
{
	uint32_t key = 0;
	uint64_t sum = 0;

	if (bpf_map__lookup_elem(cap->skel->maps.execs_seen, &key, sizeof(key),
				 cap->percpu, sizeof(uint64_t) * (size_t)cap->ncpus, 0) != 0)
		return 0;
	for (int i = 0; i < cap->ncpus; i++)
		sum += cap->percpu[i];
	return sum;
}

size_t capture_ringbuf_bytes(const struct capture *cap)
{
	return cap->ringbuf_bytes;
}

const char *capture_describe(const struct capture *cap)
{
	(void)cap;
	return "capture (raw tracepoints sched_process_exec/fork/exit, sys_exit)";
}

void capture_stop(struct capture *cap)
{
	if (cap == NULL)
		return;
	ring_buffer__free(cap->rb);
	capture_bpf__destroy(cap->skel);
	free(cap->percpu);
	free(cap);
}

#else /* !VIGIL_HAVE_BPF */

struct capture *capture_start(const struct capture_opts *opts, vigil_err *err)
{
	(void)opts;
	verr_set(err, -ENOTSUP, "this defender was built without BPF support (meson -Dbpf=disabled)");
	errno = ENOTSUP;
	return NULL;
}

int capture_poll(struct capture *cap, int timeout_ms, capture_record_fn fn, void *ctx)
{
	(void)cap;
	(void)timeout_ms;
	(void)fn;
	(void)ctx;
	return -ENOTSUP;
}

void capture_read_counters(struct capture *cap, struct capture_counters *out)
{
	(void)cap;
	memset(out, 0, sizeof(*out));
}

uint64_t capture_exec_count(const struct capture *cap)
{
	(void)cap;
	return 0;
}

size_t capture_ringbuf_bytes(const struct capture *cap)
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
