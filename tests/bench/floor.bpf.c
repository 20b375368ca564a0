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

char LICENSE[] SEC("license") = "GPL";
