// SPDX-License-Identifier: GPL-2.0
/*
 * The floor of syscall capture, for capture_bench: programs on the same two
 * raw tracepoints the defender uses (sys_enter, sys_exit) that do nothing.
 * Attaching any program there sends every syscall on the host through the
 * kernel's syscall-tracing slow path and the tracepoint dispatch; what the
 * defender costs beyond this is what its own programs and user space do.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("raw_tracepoint/sys_enter")
int floor_enter(void *ctx)
{
	(void)ctx;
	return 0;
}

SEC("raw_tracepoint/sys_exit")
int floor_exit(void *ctx)
{
	(void)ctx;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
