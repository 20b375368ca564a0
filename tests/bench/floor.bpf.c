// SPDX-License-Identifier: GPL-2.0
/*
 * The floor of syscall capture, for capture_bench: a program on the same
 * raw tracepoint the defender uses for syscalls (sys_exit) that does
 * nothing.  Attaching any program there sends every syscall on the host
 * through the kernel's syscall-tracing slow path and the tracepoint
 * dispatch; what the defender costs beyond this is what its own programs
 * and user space do.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("raw_tracepoint/sys_exit")
int floor_exit(void *ctx)
{
	(void)ctx;
	return 0;
}

/*
 * The other way (--per-syscall-floor): an empty program on each watched
 * syscall's own sys_exit_<name> tracepoint, attached by the bench.  Those
 * cost only the calls watched, but the kernel does not fire them for ia32
 * syscalls, which the defender must see too (docs/performance.md).
 */
SEC("tracepoint")
int floor_exit_one(void *ctx)
{
	(void)ctx;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
