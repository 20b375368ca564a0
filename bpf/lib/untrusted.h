/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Reading kernel objects by plain loads instead of helper calls.
 *
 * bpf_rdonly_cast is a kfunc the verifier replaces by a register move: it
 * types a pointer as an untrusted kernel object of the given BTF type.  The
 * fields of such an object are then read by direct loads that the kernel
 * guards with an exception table (a bad pointer reads as 0, as a failed
 * bpf_probe_read_kernel would), at the cost of a load instead of a helper
 * call (~30 ns each on the syscall paths every watched syscall takes).
 * Pointers loaded from an untrusted object are untrusted objects in turn,
 * so chains like t->real_parent->tgid are plain loads all the way.  The
 * loads are CO-RE relocated like BPF_CORE_READ (vmlinux.h types carry
 * preserve_access_index).
 */
#ifndef VIGIL_BPF_LIB_UNTRUSTED_H
#define VIGIL_BPF_LIB_UNTRUSTED_H

#include <bpf/bpf_core_read.h>

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

/* p (any pointer or address) as an untrusted struct of type `type`. */
#define UNTRUSTED(type, p)                                                                         \
	((type *)bpf_rdonly_cast((const void *)(unsigned long)(p), bpf_core_type_id_kernel(type)))

#endif
