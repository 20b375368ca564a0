/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The process table itself: the entry pool, process identity, the exec,
 * fork and exit handlers, expiry and sweeping, lookups and ancestry.  The
 * parts it is built from are in proctree_priv.h.
 */
#include "process/proctree.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "process/memacct.h"
#include "process/proctree_priv.h"

#define NIL	    UINT32_MAX /* no node: ends of the pool's lists */
#define CHUNK_SHIFT 8
#define CHUNK_NODES (1u << CHUNK_SHIFT)

struct proctree_node {
	struct proc_entry e; /* e.pid == 0: free */
	uint32_t prev, next; /* exited FIFO links; next also links the free list */
};

static uint64_t boottime_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_BOOTTIME, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- entry pool ---------------------------------------------------------- */

static struct proctree_node *node_at(const struct proctree *pt, uint32_t idx)
{
	return &pt->chunks[idx >> CHUNK_SHIFT][idx & (CHUNK_NODES - 1)];
}

static void exited_unlink(struct proctree *pt, uint32_t idx)
{
	struct proctree_node *n = node_at(pt, idx);

	if (n->prev != NIL)
		node_at(pt, n->prev)->next = n->next;
	else
		pt->exited_head = n->next;
	if (n->next != NIL)
		node_at(pt, n->next)->prev = n->prev;
	else
		pt->exited_tail = n->prev;
	n->prev = n->next = NIL;
}

static void exited_append(struct proctree *pt, uint32_t idx)
{
	struct proctree_node *n = node_at(pt, idx);

	n->next = NIL;
	n->prev = pt->exited_tail;
	if (pt->exited_tail != NIL)
		node_at(pt, pt->exited_tail)->next = idx;
	else
		pt->exited_head = idx;
	pt->exited_tail = idx;
}

static void mark_exited(struct proctree *pt, uint32_t idx, int32_t code, uint64_t ts_ns)
{
	struct proc_entry *e = &node_at(pt, idx)->e;

	pt->gen++;
	e->exit_code = code;
	e->exit_ns = ts_ns;
	if (e->flags & PROC_F_EXITED)
		return;
	e->flags |= PROC_F_EXITED;
	pt->st.live--;
	pt->st.exited++;
	exited_append(pt, idx);
}

/* Drop an entry entirely: strings, map slot, exited list; back to the free list. */
static void node_drop(struct proctree *pt, uint32_t idx)
{
	struct proctree_node *n = node_at(pt, idx);

	pt->gen++;
	if (n->e.flags & PROC_F_EXITED) {
		exited_unlink(pt, idx);
		pt->st.exited--;
	} else {
		pt->st.live--;
	}
	pidmap_remove(&pt->pids, n->e.pid);
	proctree_entry_put_strings(&pt->strs, &n->e);
	memset(&n->e, 0, sizeof(n->e));
	n->next = pt->free_head;
	n->prev = NIL;
	pt->free_head = idx;
	pt->st.entries--;
}

/*
 * Whose process an entry is, for eviction: the login uid when the process
 * belongs to a login session (set at login, not changeable without
 * CAP_AUDIT_CONTROL, kept across user namespaces and setuid), else the uid.
 * Bit 32 keeps the two apart.
 */
static uint64_t owner_key(const struct proc_entry *e)
{
	return e->loginuid != UINT32_MAX ? (1ull << 32) | e->loginuid : e->uid;
}

static bool evictable(const struct proc_entry *e)
{
	return e->pid != 0 && e->pid != 1 && !(e->flags & (PROC_F_EXITED | PROC_F_KTHREAD));
}

#define OWNER_SLOTS 1024 /* distinct owners counted; more is an attack in itself */

/*
 * The table is full of live processes.  Whoever filled it owns the most
 * entries: drop a slice (1/16, at least 1, at most 256) of that owner's, so
 * that a user who forks to fill the table evicts their own processes, never
 * the services the table is for.  Owners are login uids where there is one,
 * so spreading the flood over the uids of a user namespace does not help.
 * Kernel threads and init are never dropped.  One pass to count, one to
 * drop, amortized over the slice.  Returns how many were dropped (counted
 * as evicted_live).
 */
static uint32_t evict_top_owner(struct proctree *pt)
{
	struct {
		uint64_t key;
		uint32_t n;
	} owners[OWNER_SLOTS]; /* 16 KiB of stack, once per slice */
	uint64_t top_key = 0;
	uint32_t top_n = 0, want, dropped = 0;

	memset(owners, 0, sizeof(owners));
	for (uint32_t idx = 0; idx < pt->nused; idx++) {
		const struct proc_entry *e = &node_at(pt, idx)->e;
		uint64_t key;
		size_t h;

		if (!evictable(e))
			continue;
		key = owner_key(e) + 1; /* 0 marks a free slot */
		h = (size_t)((key * 0x9e3779b97f4a7c15ull) >> 54) % OWNER_SLOTS;
		for (size_t probe = 0; probe < OWNER_SLOTS; probe++, h = (h + 1) % OWNER_SLOTS) {
			if (owners[h].key == 0)
				owners[h].key = key;
			if (owners[h].key == key) {
				if (++owners[h].n > top_n) {
					top_n = owners[h].n;
					top_key = key;
				}
				break;
			}
		}
	}
	if (top_n == 0)
		return 0;
	want = top_n / 16 < 1 ? 1 : top_n / 16 > 256 ? 256 : top_n / 16;
	for (uint32_t step = 0; step < pt->nused && dropped < want; step++) {
		uint32_t idx = (pt->evict_cursor + step) % pt->nused;
		const struct proc_entry *e = &node_at(pt, idx)->e;

		if (evictable(e) && owner_key(e) + 1 == top_key) {
			node_drop(pt, idx);
			dropped++;
			pt->evict_cursor = idx + 1;
		}
	}
	pt->st.evicted_live += dropped;
	return dropped;
}

/*
 * A free pool index.  When the table is full: the oldest exited entry makes
 * room, else a slice of the biggest owner's live entries.
 */
static uint32_t node_alloc(struct proctree *pt)
{
	uint32_t idx;

	if (pt->free_head == NIL && pt->nused == pt->max) {
		if (pt->exited_head != NIL) {
			node_drop(pt, pt->exited_head);
			pt->st.evicted_exited++;
		} else if (evict_top_owner(pt) == 0) {
			pt->st.table_full_drops++;
			return NIL;
		}
	}
	if (pt->free_head != NIL) {
		idx = pt->free_head;
		pt->free_head = node_at(pt, idx)->next;
	} else {
		if ((pt->nused & (CHUNK_NODES - 1)) == 0) {
			struct proctree_node *c =
			    memacct_zalloc(&pt->st.bytes, CHUNK_NODES * sizeof(*c));

			if (c == NULL)
				return NIL;
			pt->chunks[pt->nchunks++] = c;
		}
		idx = pt->nused++;
	}
	node_at(pt, idx)->prev = node_at(pt, idx)->next = NIL;
	return idx;
}

/* ---- identity ------------------------------------------------------------ */

/*
 * Whether start times a and b name the same process.  0 is "unknown" and
 * matches anything; a coarse (tick-precision, floored) time matches a precise
 * one inside its tick.
 */
static bool start_match(const struct proctree *pt, uint64_t a, bool a_coarse, uint64_t b,
			bool b_coarse)
{
	if (a == 0 || b == 0 || a == b)
		return true;
	if (a_coarse && !b_coarse)
		return b >= a && b - a < pt->proc.tick_ns;
	if (b_coarse && !a_coarse)
		return a >= b && a - b < pt->proc.tick_ns;
	return false;
}

static bool entry_is(const struct proctree *pt, const struct proc_entry *e, uint64_t start,
		     bool coarse)
{
	return start_match(pt, e->start_ns, (e->flags & PROC_F_START_COARSE) != 0, start, coarse);
}

/* Adopt a precise start time for an entry that only had a coarse one. */
static void entry_refine_start(struct proc_entry *e, uint64_t start, bool coarse)
{
	if (start == 0 || coarse)
		return;
	if (e->start_ns == 0 || (e->flags & PROC_F_START_COARSE)) {
		e->start_ns = start;
		e->flags &= ~(uint32_t)PROC_F_START_COARSE;
	}
}

/*
 * The node to store (pid, start) in.  *ret_fresh says whether it is new
 * (zeroed but for pid): a missing pid gets a new node, an entry of another
 * process under the same pid is cleared (a pid reuse).  NULL when the table
 * is full of live entries or out of memory.
 */
static struct proctree_node *node_for(struct proctree *pt, uint32_t pid, uint64_t start,
				      bool coarse, bool *ret_fresh)
{
	uint32_t idx = pidmap_find(&pt->pids, pid);
	struct proctree_node *n;

	/* Callers change what they get (fresh or not). */
	pt->gen++;
	if (idx != PIDMAP_NONE) {
		n = node_at(pt, idx);
		if (entry_is(pt, &n->e, start, coarse)) {
			*ret_fresh = false;
			return n;
		}
		pt->st.replaced++;
		if (n->e.flags & PROC_F_EXITED) {
			exited_unlink(pt, idx);
			pt->st.exited--;
			pt->st.live++;
		}
		proctree_entry_put_strings(&pt->strs, &n->e);
		memset(&n->e, 0, sizeof(n->e));
		n->e.pid = pid;
		*ret_fresh = true;
		return n;
	}
	idx = node_alloc(pt);
	if (idx == NIL)
		return NULL;
	if (pidmap_insert(&pt->pids, pid, idx) != 0) {
		n = node_at(pt, idx);
		n->next = pt->free_head;
		pt->free_head = idx;
		return NULL;
	}
	n = node_at(pt, idx);
	memset(&n->e, 0, sizeof(n->e));
	n->e.pid = pid;
	pt->st.entries++;
	pt->st.live++;
	*ret_fresh = true;
	return n;
}

/*
 * Store a /proc snapshot (its references move into the tree).  A known entry
 * of the same process is refreshed but keeps what /proc cannot tell: the
 * precise start time, cgroup id, exit state and how it was first learned.
 */
static struct proctree_node *commit_snapshot(struct proctree *pt, struct proc_entry *s, bool zombie,
					     uint8_t source)
{
	bool fresh;
	struct proctree_node *n = node_for(pt, s->pid, s->start_ns, true, &fresh);
	struct proc_entry *e;

	if (n == NULL) {
		proctree_entry_put_strings(&pt->strs, s);
		return NULL;
	}
	e = &n->e;
	if (!fresh) {
		uint32_t keep = e->flags & (PROC_F_EXITED | PROC_F_EXE_DELETED | PROC_F_EXE_MEMFD);

		if (!(e->flags & PROC_F_START_COARSE)) {
			s->start_ns = e->start_ns;
			s->flags &= ~(uint32_t)PROC_F_START_COARSE;
		}
		s->cgroup_id = e->cgroup_id;
		s->exit_ns = e->exit_ns;
		s->exit_code = e->exit_code;
		s->source = e->source;
		s->flags |= keep;
		proctree_entry_put_strings(&pt->strs, e);
	} else {
		s->source = source;
	}
	*e = *s;
	if (zombie && !(e->flags & PROC_F_EXITED))
		mark_exited(pt, pidmap_find(&pt->pids, e->pid), -1, boottime_ns());
	return n;
}

/* ---- lifecycle ------------------------------------------------------------- */

struct proctree *proctree_new(const struct proctree_limits *lim)
{
	struct proctree_limits d = {0};
	struct proctree *pt;

	if (lim == NULL)
		lim = &d;
	if (lim->args_max > PROCTREE_ARGS_MAX || lim->max_entries > PROCTREE_MAX_ENTRIES_LIMIT) {
		errno = EINVAL;
		return NULL;
	}
	pt = calloc(1, sizeof(*pt));
	if (pt == NULL)
		return NULL;
	pt->st.bytes = memacct_cost(sizeof(*pt));
	pt->max = lim->max_entries ? lim->max_entries : PROCTREE_MAX_ENTRIES_DEFAULT;
	pt->grace_ns = lim->exit_grace_ns ? lim->exit_grace_ns : PROCTREE_GRACE_NS_DEFAULT;
	pt->free_head = pt->exited_head = pt->exited_tail = NIL;
	pt->st.max = pt->max;
	usercache_init(&pt->users, &pt->st.bytes);

	pt->chunks = memacct_zalloc(&pt->st.bytes, ((pt->max + CHUNK_NODES - 1) / CHUNK_NODES) *
						       sizeof(*pt->chunks));
	if (pt->chunks == NULL || pidmap_init(&pt->pids, pt->max, &pt->st.bytes) != 0 ||
	    intern_init(&pt->strs, &pt->st.bytes) != 0 ||
	    procfs_init(&pt->proc, lim->proc_root ? lim->proc_root : "/proc",
			lim->args_max ? lim->args_max : PROCTREE_ARGS_DEFAULT,
			&pt->st.bytes) != 0 ||
	    container_cache_init(&pt->ctrs, lim->container_root, 0, 0, &pt->st.bytes) != 0) {
		proctree_free(pt);
		errno = ENOMEM;
		return NULL;
	}
	return pt;
}

void proctree_free(struct proctree *pt)
{
	if (pt == NULL)
		return;
	for (uint32_t i = 0; i < pt->nchunks; i++)
		free(pt->chunks[i]);
	free(pt->chunks);
	usercache_fini(&pt->users);
	cgcache_fini(&pt->cgroups, &pt->strs);
	intern_fini(&pt->strs); /* the entries' strings too */
	pidmap_fini(&pt->pids);
	procfs_fini(&pt->proc);
	container_cache_fini(&pt->ctrs);
	free(pt);
}

int proctree_seed(struct proctree *pt, vigil_err *err)
{
	DIR *d = opendir(pt->proc.root);
	struct dirent *de;
	int r;

	if (d == NULL)
		return verr_set(err, -errno, "cannot list %s: %s", pt->proc.root, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		struct proc_entry s;
		uint32_t pid;
		bool zombie = false;

		if (!procfs_parse_pid(de->d_name, &pid))
			continue;
		/* Vanished, a thread, garbage: skip.  Only memory stops the walk. */
		r = procfs_load(&pt->proc, &pt->strs, pid, &s, &zombie);
		if (r == -ENOMEM) {
			closedir(d);
			return verr_set(err, -ENOMEM, "out of memory seeding from %s",
					pt->proc.root);
		}
		if (r == 0 && commit_snapshot(pt, &s, zombie, PROC_SRC_SEED) != NULL)
			pt->st.seeded++;
	}
	closedir(d);
	return 0;
}

/* ---- events ---------------------------------------------------------------- */

/*
 * Intern an event string: p up to its first NUL or len bytes.  Absent (NULL,
 * 0 or "") stays NULL.  Returns 0 or -ENOMEM.
 */
static int exec_string(struct proctree *pt, const char *p, size_t len, const char **ret)
{
	*ret = NULL;
	if (p == NULL || len == 0)
		return 0;
	len = strnlen(p, len);
	if (len == 0)
		return 0;
	*ret = intern_get(&pt->strs, p, len);
	return *ret != NULL ? 0 : -ENOMEM;
}

static void take_cgroup(struct proc_entry *dst, const char *path, const char *cid)
{
	dst->cgroup = intern_ref(path);
	dst->container_id = intern_ref(cid);
}

/*
 * The cgroup path for an exec'ing process.  On cgroup v2 hosts the id names
 * the cgroup, so a known id (cache, own entry, parent) avoids reading /proc.
 * On hybrid hosts the path that matters is often a v1 one the id does not
 * name (a container moved in v1 only), so /proc is read there unless the id
 * is cached (a path below the v2 root).  When the process is already gone,
 * the old path is the best guess.
 */
static int exec_cgroup(struct proctree *pt, const struct proctree_exec *ev,
		       const struct proc_entry *old, struct proc_entry *e)
{
	const struct proc_entry *parent = proctree_peek(pt, ev->ppid);
	const struct cgcache_slot *c;
	int dfd, kind = -ENOENT;

	/*
	 * The cache holds only ids whose path was picked from the v2 line
	 * (kind 2).  On a pure v2 host an id names one path; on a hybrid host
	 * that is a path below the v2 root, which the pick takes over any v1
	 * line, so the id names the path there too, also for a process already
	 * gone ("podman exec web true") whose parent, the runtime, sits outside
	 * the container.  An id seen only with the v2 root (the v1 lines
	 * decide) is never cached.
	 */
	if (ev->cgroup_id != 0 && (c = cgcache_get(&pt->cgroups, ev->cgroup_id)) != NULL) {
		take_cgroup(e, c->path, c->cid);
		return 0;
	}
	if (!pt->proc.cg_hybrid && ev->cgroup_id != 0) {
		if (old != NULL && old->cgroup != NULL && old->cgroup_id == ev->cgroup_id) {
			take_cgroup(e, old->cgroup, old->container_id);
			return 0;
		}
		if (parent != NULL && parent->cgroup != NULL &&
		    parent->cgroup_id == ev->cgroup_id) {
			take_cgroup(e, parent->cgroup, parent->container_id);
			return 0;
		}
	}
	dfd = procfs_open_pid(&pt->proc, ev->pid);
	if (dfd >= 0) {
		kind = procfs_read_cgroup(&pt->proc, &pt->strs, dfd, e);
		close(dfd);
	}
	if (kind == -ENOMEM)
		return kind;
	if (kind > 0) {
		if (kind == 2 && ev->cgroup_id != 0)
			cgcache_put(&pt->cgroups, &pt->strs, ev->cgroup_id, e->cgroup,
				    e->container_id);
		/* Learn the id of a parent seeded from /proc that shares the path. */
		if (parent != NULL && parent->cgroup == e->cgroup && parent->cgroup_id == 0)
			node_at(pt, pidmap_find(&pt->pids, parent->pid))->e.cgroup_id =
			    ev->cgroup_id;
		return 0;
	}
	/* Gone before it could be read, its id not cached: the best guesses. */
	if (old != NULL && old->cgroup != NULL)
		take_cgroup(e, old->cgroup, old->container_id);
	else if (parent != NULL && parent->cgroup != NULL)
		take_cgroup(e, parent->cgroup, parent->container_id);
	return 0;
}

int proctree_on_exec(struct proctree *pt, const struct proctree_exec *ev)
{
	const uint32_t ev_flags =
	    PROC_F_ARGS_TRUNC | PROC_F_PATH_TRUNC | PROC_F_EXE_DELETED | PROC_F_EXE_MEMFD;
	struct proc_entry s = {0};
	const struct proc_entry *old = NULL;
	struct proctree_node *n;
	uint32_t idx;
	size_t alen = 0;
	bool fresh;
	int r;

	if (ev->pid == 0)
		return -EINVAL;
	pt->gen++;
	idx = pidmap_find(&pt->pids, ev->pid);
	if (idx != PIDMAP_NONE && entry_is(pt, &node_at(pt, idx)->e, ev->start_ns, false))
		old = &node_at(pt, idx)->e;

	/* Build the new contents first: failing here leaves the tree untouched. */
	s.flags = ev->flags & ev_flags;
	if (ev->comm != NULL)
		memcpy(s.comm, ev->comm, strnlen(ev->comm, PROCTREE_COMM_LEN - 1));
	if ((r = exec_string(pt, ev->filename, ev->filename_len, &s.exe)) != 0 ||
	    (r = exec_string(pt, ev->cwd, ev->cwd_len, &s.cwd)) != 0 ||
	    (r = exec_string(pt, ev->tty, ev->tty != NULL ? PROCTREE_TTY_LEN - 1 : 0, &s.tty)) != 0)
		goto fail;
	if (ev->args != NULL && ev->args_len > 0) {
		alen = ev->args_len;
		if (ev->args[alen - 1] == '\0')
			alen--;
		if (alen > pt->proc.args_max) {
			alen = pt->proc.args_max;
			s.flags |= PROC_F_ARGS_TRUNC;
		}
		if (alen > 0 && (s.args = intern_get(&pt->strs, ev->args, alen)) == NULL) {
			r = -ENOMEM;
			goto fail;
		}
		s.args_len = (uint16_t)alen;
	}
	if ((r = exec_cgroup(pt, ev, old, &s)) != 0)
		goto fail;

	n = node_for(pt, ev->pid, ev->start_ns, false, &fresh);
	if (n == NULL) {
		r = -ENOSPC;
		goto fail;
	}
	if (fresh) {
		n->e.ppid = ev->ppid;
		n->e.start_ns = ev->start_ns;
		n->e.source = PROC_SRC_EXEC;
	} else {
		entry_refine_start(&n->e, ev->start_ns, false);
		/* The kernel's word at exec: an orphan has been reparented (daemons double-fork).
		 */
		if (ev->ppid != 0)
			n->e.ppid = ev->ppid;
	}
	proctree_entry_put_strings(&pt->strs, &n->e);
	n->e.flags =
	    (n->e.flags & (PROC_F_EXITED | PROC_F_START_COARSE | PROC_F_PARENT_GONE)) | s.flags;
	n->e.uid = ev->uid;
	n->e.euid = ev->euid;
	n->e.gid = ev->gid;
	n->e.sid = ev->sid;
	n->e.loginuid = ev->loginuid;
	n->e.cgroup_id = ev->cgroup_id;
	memcpy(n->e.comm, s.comm, sizeof(s.comm));
	n->e.exe = s.exe;
	n->e.cwd = s.cwd;
	n->e.args = s.args;
	n->e.args_len = s.args_len;
	n->e.tty = s.tty;
	n->e.cgroup = s.cgroup;
	n->e.container_id = s.container_id;
	return 0;
fail:
	proctree_entry_put_strings(&pt->strs, &s);
	return r;
}

/* Nothing known but what the fork event says. */
static void entry_unknown(struct proc_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->uid = e->euid = e->gid = e->loginuid = UINT32_MAX;
	e->flags = PROC_F_INCOMPLETE;
}

int proctree_on_fork(struct proctree *pt, uint32_t parent_pid, uint32_t child_pid,
		     uint64_t child_start_ns)
{
	const struct proc_entry *parent;
	struct proc_entry s;
	struct proctree_node *n;
	uint32_t idx;
	bool fresh, zombie = false;

	if (child_pid == 0 || child_pid == parent_pid)
		return -EINVAL;
	pt->gen++;
	idx = pidmap_find(&pt->pids, child_pid);
	if (idx != PIDMAP_NONE && entry_is(pt, &node_at(pt, idx)->e, child_start_ns, false)) {
		/* Seen already (exec first, or seeded): newer than what the fork knows. */
		entry_refine_start(&node_at(pt, idx)->e, child_start_ns, false);
		return 0;
	}

	parent = parent_pid != 0 ? proctree_get(pt, parent_pid) : NULL;
	if (parent != NULL) {
		/* A referenced copy: storing the child may evict the parent if it exited. */
		s = *parent;
		proctree_entry_ref_strings(&s);
		s.flags &= PROC_F_KTHREAD | PROC_F_ARGS_TRUNC | PROC_F_PATH_TRUNC |
			   PROC_F_EXE_DELETED | PROC_F_EXE_MEMFD;
	} else if (procfs_load(&pt->proc, &pt->strs, child_pid, &s, &zombie) == 0) {
		if (!entry_is(pt, &s, child_start_ns, false)) {
			proctree_entry_put_strings(&pt->strs, &s); /* already another process */
			entry_unknown(&s);
		} else if (commit_snapshot(pt, &s, zombie, PROC_SRC_LAZY) != NULL) {
			pt->st.lazy_loads++;
			entry_refine_start(&node_at(pt, pidmap_find(&pt->pids, child_pid))->e,
					   child_start_ns, false);
			return 0;
		} else {
			return -ENOSPC;
		}
	} else {
		entry_unknown(&s);
	}
	s.pid = child_pid;
	s.ppid = parent_pid;
	s.start_ns = child_start_ns;
	s.exit_ns = 0;
	s.exit_code = 0;
	s.source = PROC_SRC_FORK;

	n = node_for(pt, child_pid, child_start_ns, false, &fresh);
	if (n == NULL || !fresh) {
		/* !fresh: the child appeared meanwhile (a lazy load); what is stored is newer. */
		proctree_entry_put_strings(&pt->strs, &s);
		return n == NULL ? -ENOSPC : 0;
	}
	n->e = s;
	return 0;
}

int proctree_on_exit(struct proctree *pt, uint32_t pid, uint64_t start_ns, int32_t exit_code,
		     uint64_t ts_ns)
{
	uint32_t idx = pid != 0 ? pidmap_find(&pt->pids, pid) : PIDMAP_NONE;

	pt->gen++;
	if (idx == PIDMAP_NONE || !entry_is(pt, &node_at(pt, idx)->e, start_ns, false)) {
		pt->st.exit_unknown++;
		return -ENOENT;
	}
	entry_refine_start(&node_at(pt, idx)->e, start_ns, false);
	mark_exited(pt, idx, exit_code, ts_ns);
	return 0;
}

size_t proctree_expire(struct proctree *pt, uint64_t now_ns)
{
	size_t dropped = 0;

	while (pt->exited_head != NIL) {
		const struct proc_entry *e = &node_at(pt, pt->exited_head)->e;

		if (e->exit_ns + pt->grace_ns > now_ns)
			break;
		node_drop(pt, pt->exited_head);
		pt->st.expired++;
		dropped++;
	}
	return dropped;
}

size_t proctree_sweep(struct proctree *pt, uint64_t now_ns, size_t max_checks)
{
	size_t marked = 0;

	for (size_t checked = 0; checked < max_checks && pt->nused > 0; checked++) {
		uint32_t idx = pt->sweep_cursor++ % pt->nused;
		struct proc_entry *e = &node_at(pt, idx)->e;
		struct proctree_stat st;
		bool gone;
		int r;

		if (pt->sweep_cursor >= pt->nused)
			pt->sweep_cursor = 0;
		if (e->pid == 0 || (e->flags & PROC_F_EXITED))
			continue;
		r = procfs_read_stat(&pt->proc, e->pid, &st);
		if (r == -ENOENT || r == -ESRCH)
			gone = true;
		else if (r < 0)
			gone = false; /* cannot tell: keep it */
		else
			gone = st.state == 'Z' || st.state == 'X' ||
			       !entry_is(pt, e, st.start_ticks * pt->proc.tick_ns, true);
		if (gone) {
			mark_exited(pt, idx, -1, now_ns);
			pt->st.stale_reaped++;
			marked++;
		}
	}
	return marked;
}

/* ---- lookups ------------------------------------------------------------------ */

const struct proc_entry *proctree_peek(const struct proctree *pt, uint32_t pid)
{
	uint32_t idx = pid != 0 ? pidmap_find(&pt->pids, pid) : PIDMAP_NONE;

	return idx != PIDMAP_NONE ? &node_at(pt, idx)->e : NULL;
}

/* The entry for pid, loaded from /proc on a miss; *ret_r says why not (-ENOENT: no such process).
 */
static const struct proc_entry *get_or_load(struct proctree *pt, uint32_t pid, int *ret_r)
{
	const struct proc_entry *e = proctree_peek(pt, pid);
	struct proc_entry s;
	struct proctree_node *n;
	bool zombie = false;

	*ret_r = 0;
	if (e != NULL)
		return e;
	*ret_r = -ENOENT;
	if (pid == 0)
		return NULL;
	pt->st.lookup_misses++;
	*ret_r = procfs_load(&pt->proc, &pt->strs, pid, &s, &zombie);
	if (*ret_r != 0)
		return NULL;
	n = commit_snapshot(pt, &s, zombie, PROC_SRC_LAZY);
	if (n == NULL) {
		*ret_r = -ENOSPC;
		return NULL;
	}
	pt->st.lazy_loads++;
	return &n->e;
}

const struct proc_entry *proctree_get(struct proctree *pt, uint32_t pid)
{
	int r;

	return get_or_load(pt, pid, &r);
}

/* Whether p can be c's parent: it must not have started after c (else the pid was reused). */
static bool parent_plausible(const struct proctree *pt, const struct proc_entry *p,
			     const struct proc_entry *c)
{
	uint64_t slack = ((p->flags | c->flags) & PROC_F_START_COARSE) ? pt->proc.tick_ns : 0;

	return p->start_ns == 0 || c->start_ns == 0 || p->start_ns <= c->start_ns + slack;
}

size_t proctree_ancestry(struct proctree *pt, uint32_t pid, const struct proc_entry **out,
			 size_t max)
{
	const struct proc_entry *e;
	uint32_t cur = pid;
	size_t n = 0;

	/* Pass 1: load missing links.  Loading may evict, so no pointers are kept. */
	for (size_t i = 0; i < max && cur != 0; i++) {
		uint32_t ppid, idx;
		int r;

		e = get_or_load(pt, cur, &r);
		if (e == NULL || e->pid == 1 || e->ppid == 0 || e->ppid == cur)
			break;
		ppid = e->ppid;
		if (proctree_peek(pt, ppid) == NULL) {
			if (e->flags & PROC_F_PARENT_GONE)
				break;
			if (get_or_load(pt, ppid, &r) == NULL) {
				/* Remember, so later events do not retry /proc for it. */
				idx = pidmap_find(&pt->pids, cur);
				if (r == -ENOENT && idx != PIDMAP_NONE)
					node_at(pt, idx)->e.flags |= PROC_F_PARENT_GONE;
				break;
			}
		}
		cur = ppid;
	}
	/* Pass 2: collect, without loading. */
	cur = pid;
	while (n < max && cur != 0 && (e = proctree_peek(pt, cur)) != NULL) {
		if (n > 0 && !parent_plausible(pt, e, out[n - 1]))
			break;
		for (size_t j = 0; j < n; j++)
			if (out[j] == e)
				return n; /* a cycle */
		out[n++] = e;
		if (e->pid == 1)
			break;
		cur = e->ppid;
	}
	return n;
}

/* ---- users, generation, counters ----------------------------------------------- */

const char *proctree_user_name(struct proctree *pt, uint32_t uid)
{
	/* The scratch is free between /proc reads; getpwuid_r needs a buffer. */
	return usercache_name(&pt->users, uid, pt->proc.scratch, PROCFS_SCRATCH_LEN);
}

uint64_t proctree_generation(const struct proctree *pt)
{
	return pt->gen;
}

void proctree_stats(const struct proctree *pt, struct proctree_stats *ret_stats)
{
	*ret_stats = pt->st;
	ret_stats->strings = pt->strs.count;
	ret_stats->string_bytes = pt->strs.payload;
	ret_stats->user_names = pt->users.count;
	ret_stats->containers = pt->ctrs.st.entries;
	ret_stats->containers_found = pt->ctrs.st.found;
	ret_stats->containers_missed = pt->ctrs.st.missed;
	ret_stats->containers_malformed = pt->ctrs.st.malformed;
	ret_stats->containers_evicted = pt->ctrs.st.evicted + pt->ctrs.st.shared_evicted;
}

static uint64_t monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const struct container_meta *proctree_container(struct proctree *pt, const struct proc_entry *e)
{
	if (e == NULL || e->container_id == NULL)
		return NULL;
	return container_cache_get(&pt->ctrs, e->container_id, e->cgroup, monotonic_ms());
}

uint64_t proctree_container_generation(const struct proctree *pt)
{
	return container_cache_generation(&pt->ctrs);
}
