/* SPDX-License-Identifier: Apache-2.0 */
#include "process/enrich.h"

#include <string.h>

static uint32_t exec_flags(const struct ev_exec *e)
{
	uint32_t f = 0;

	if (e->hdr.flags & EVF_TRUNC_ARGS)
		f |= PROC_F_ARGS_TRUNC;
	if (e->hdr.flags & EVF_TRUNC_PATH)
		f |= PROC_F_PATH_TRUNC;
	if (e->exe_flags & EXE_DELETED)
		f |= PROC_F_EXE_DELETED;
	if (e->exe_flags & EXE_MEMFD)
		f |= PROC_F_EXE_MEMFD;
	return f;
}

/* Update pt from ev (exec, fork, exit); other events change nothing. */
static void enrich_apply(struct proctree *pt, const struct event *ev)
{
	const struct ev_hdr *h = ev->hdr;

	switch (h->type) {
	case EV_EXEC: {
		const struct ev_exec *e = ev->exec;
		struct proctree_exec x = {
		    .pid = h->pid,
		    .ppid = h->ppid,
		    .start_ns = e->start_ns,
		    .uid = h->uid,
		    .euid = h->euid,
		    .gid = h->gid,
		    .sid = e->sid,
		    .loginuid = e->loginuid,
		    .cgroup_id = h->cgroup_id,
		    .flags = exec_flags(e),
		    .comm = h->comm,
		    .filename = ev->s[0].p,
		    .filename_len = ev->s[0].p ? ev->s[0].len + 1 : 0,
		    .args = ev->s[1].p,
		    .args_len = ev->s[1].p ? ev->s[1].len + 1 : 0,
		    .cwd = (h->flags & EVF_NO_CWD) ? NULL : ev->s[2].p,
		    .cwd_len = ev->s[2].p ? ev->s[2].len + 1 : 0,
		    .tty = e->tty,
		};
		/* -ENOSPC and friends are counted in the tree's stats. */
		(void)proctree_on_exec(pt, &x);
		break;
	}
	case EV_FORK:
		(void)proctree_on_fork(pt, h->pid, ev->fork->child_pid, ev->fork->child_start_ns);
		break;
	case EV_EXIT:
		(void)proctree_on_exit(pt, h->pid, ev->exit->start_ns, (int32_t)ev->exit->exit_code,
				       h->ts_ns);
		break;
	}
}

/* en from ev's ancestry chain (chain[0] is its process; ctr its container, or NULL). */
static void describe_chain(const struct proc_entry *const *chain, size_t n,
			   const struct container_meta *ctr, struct event_enrich *en,
			   struct enrich_scratch *scratch)
{
	/* A copy: the cache may evict its entry before the next event reuses this description. */
	if (ctr != NULL) {
		scratch->ctr = *ctr;
		en->container_name = scratch->ctr.name;
		en->container_image = scratch->ctr.image;
		en->container_runtime = container_runtime_name(scratch->ctr.runtime);
	}
	classify(chain, n, ctr != NULL ? &scratch->ctr : NULL, &scratch->cls);
	en->cls = scratch->cls.cls == CLASS_INTERACTIVE ? "interactive" : "service";
	en->service = scratch->cls.service;
	en->class_reason = scratch->cls.why;
	en->exe = chain[0]->exe;
	en->tty = chain[0]->tty;
	en->cgroup = chain[0]->cgroup;
	en->container_id = chain[0]->container_id;
	for (size_t i = 1; i < n && en->nancestry < EVENT_ANCESTRY_MAX; i++) {
		en->ancestry[en->nancestry].pid = chain[i]->pid;
		en->ancestry[en->nancestry].comm = chain[i]->comm;
		en->ancestry[en->nancestry].exe = chain[i]->exe;
		en->nancestry++;
	}
}

/* Deep enough to reach init from any real process tree, for classification. */
#define CHAIN_MAX 64

void enrich_describe(struct proctree *pt, const struct event *ev, struct event_enrich *en,
		     struct enrich_scratch *scratch)
{
	const struct proc_entry *chain[CHAIN_MAX];
	const char *user;
	size_t n;

	/* The user name first: looking it up does not move tree entries, ancestry may. */
	user = proctree_user_name(pt, ev->hdr->uid);
	/* The rendered description holds the user name: the same uid too. */
	if (scratch->last.valid && scratch->last.pid == ev->hdr->pid &&
	    scratch->last.uid == ev->hdr->uid && scratch->last.gen == proctree_generation(pt) &&
	    scratch->last.cgen == proctree_container_generation(pt)) {
		*en = scratch->last.en;
		en->user = user;
		return;
	}
	memset(en, 0, sizeof(*en));
	en->user = user;
	scratch->last.valid = false;
	n = proctree_ancestry(pt, ev->hdr->pid, chain, CHAIN_MAX);
	if (n > 0)
		describe_chain(chain, n, proctree_container(pt, chain[0]), en, scratch);
	en->json_len =
	    event_json_enrich_render(en, scratch->json, sizeof(scratch->json), &en->json_lossy);
	en->json = en->json_len > 0 ? scratch->json : NULL;
	/* After the walk: lazy loads during it change the generation. */
	scratch->last.en = *en;
	scratch->last.pid = ev->hdr->pid;
	scratch->last.uid = ev->hdr->uid;
	scratch->last.gen = proctree_generation(pt);
	scratch->last.cgen = proctree_container_generation(pt);
	scratch->last.valid = true;
}

void enrich_begin(struct proctree *pt, const struct event *ev)
{
	if (ev->hdr->type != EV_EXIT)
		enrich_apply(pt, ev);
}

void enrich_end(struct proctree *pt, const struct event *ev)
{
	if (ev->hdr->type == EV_EXIT)
		enrich_apply(pt, ev);
}

bool enrich_descends_from(struct proctree *pt, uint32_t pid, uint32_t ancestor_pid)
{
	const struct proc_entry *chain[64];
	size_t n;

	if (pid == ancestor_pid)
		return true;
	n = proctree_ancestry(pt, pid, chain, 64);
	for (size_t i = 1; i < n; i++)
		if (chain[i]->pid == ancestor_pid)
			return true;
	return false;
}
