// SPDX-License-Identifier: GPL-2.0
/*
 * The smallest useful program: count process execs on the host.  It proves
 * the build chain (vmlinux.h -> clang -target bpf -> skeleton) and that the
 * defender can load and attach programs on this kernel.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "exec_count.h"

/* The defender's own tgid, set before load: its execs are not counted. */
const volatile __u32 self_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EXEC_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} exec_counters SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&exec_counters, &which);

	/* A per-CPU array lookup of an in-range key cannot fail; the check is for the verifier. */
	if (v)
		*v += 1;
}

/*
 * A raw tracepoint: attached by name through the bpf() syscall, so it works
 * without tracefs mounted (it isn't on every host), and costs less per event.
 */
SEC("raw_tracepoint/sched_process_exec")
int handle_exec(void *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	(void)ctx;
	if (self_tgid && tgid == self_tgid) {
		count(EXEC_COUNTER_FILTERED);
		return 0;
	}
	count(EXEC_COUNTER_EXECS);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
