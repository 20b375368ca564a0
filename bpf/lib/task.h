/* SPDX-License-Identifier: GPL-2.0 */
/* Filling the common header from the current task. */
#ifndef VIGIL_BPF_LIB_TASK_H
#define VIGIL_BPF_LIB_TASK_H

#include "events.h"
#include "untrusted.h"

/*
 * task is the current task.  Its fields are read by plain loads rather than
 * through the bpf_get_current_* helpers: a helper call costs more than the
 * load it wraps, and this runs for every event.  The values are the ones
 * those helpers return (global pid numbers and ids, the subjective cred, the
 * default-hierarchy cgroup's id).
 */
static __always_inline void hdr_fill(struct ev_hdr *h, __u16 type, struct task_struct *task)
{
	struct task_struct *t = UNTRUSTED(struct task_struct, task);
	const struct cred *cred = t->cred;

	h->type = type;
	h->flags = 0;
	h->ts_ns = bpf_ktime_get_boot_ns();
	h->pid = t->tgid;
	h->tid = t->pid;
	h->ppid = t->real_parent->tgid;
	h->uid = cred->uid.val;
	h->gid = cred->gid.val;
	h->euid = cred->euid.val;
	h->cgroup_id = t->cgroups->dfl_cgrp->kn->id;
	__builtin_memcpy(h->comm, t->comm, sizeof(h->comm));
	h->comm[sizeof(h->comm) - 1] = '\0';
}

#endif
