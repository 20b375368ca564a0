/* SPDX-License-Identifier: GPL-2.0 */
/* Filling the common header from the current task. */
#ifndef VIGIL_BPF_LIB_TASK_H
#define VIGIL_BPF_LIB_TASK_H

#include "events.h"
#include "untrusted.h"

static __always_inline void hdr_fill(struct ev_hdr *h, __u16 type, struct task_struct *task)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();

	h->type = type;
	h->flags = 0;
	h->ts_ns = bpf_ktime_get_boot_ns();
	h->pid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	struct task_struct *t = UNTRUSTED(struct task_struct, task);

	h->ppid = t->real_parent->tgid;
	h->uid = (__u32)uid_gid;
	h->gid = uid_gid >> 32;
	h->euid = t->cred->euid.val;
	h->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

#endif
