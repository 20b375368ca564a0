/* SPDX-License-Identifier: Apache-2.0 */
#include "process/proctree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
 * Layout.
 *
 * Entries live in a pool of fixed-size chunks that is allocated as the table
 * fills and never moves, so pointers handed out stay put until the entry is
 * dropped.  A pid → pool index map (open addressing, linear probing,
 * backward-shift deletion, no tombstones) finds them.  Exited entries are
 * also on a FIFO list in exit order: the grace-period expiry and the
 * make-room eviction both take from its head.  Strings are interned with
 * reference counts in a chained hash.  Everything is counted in pt->bytes.
 */

#define NIL		UINT32_MAX
#define CHUNK_SHIFT	8
#define CHUNK_NODES	(1u << CHUNK_SHIFT)
#define HT_MIN		1024u
#define STR_BUCKETS_MIN 1024u
#define SCRATCH_LEN	16384 /* /proc reads and getpwuid_r */
#define STAT_READ_MAX	4096  /* a stat line is ~400 bytes; comm is at most 64 */
#define STATUS_READ_MAX 4096  /* Tgid/Uid/Gid are in the first lines */
#define PATH_BUF	4096
#define CGCACHE_SLOTS	256
#define PW_BUF_MAX	(1u << 20)
#define PF_KTHREAD	0x00200000u

struct pt_str {
	struct pt_str *next; /* hash chain */
	uint32_t hash;
	uint32_t refs;
	uint32_t len;
	char s[]; /* len bytes, then a NUL */
};

struct pt_node {
	struct proc_entry e; /* e.pid == 0: free */
	uint32_t prev, next; /* exited FIFO links; next also links the free list */
};

struct pt_slot {
	uint32_t pid; /* 0: empty */
	uint32_t idx;
};

struct pt_user {
	uint32_t uid;
	uint16_t prev, next; /* LRU, most recent first */
	uint16_t hnext;	     /* hash chain */
	char *name;
};
#define U_NIL 0xffffu

struct pt_cgcache {
	uint64_t id;
	const char *path; /* referenced */
	const char *cid;  /* referenced, may be NULL */
};

struct proctree {
	uint32_t max;
	uint32_t args_max;
	uint64_t grace_ns;
	uint64_t tick_ns;
	char *proc_root;

	/* entry pool */
	struct pt_node **chunks;
	uint32_t nchunks;
	uint32_t nused; /* pool high-water mark */
	uint32_t free_head;
	uint32_t exited_head, exited_tail;
	uint32_t sweep_cursor;
	uint64_t gen; /* bumped by every change to any entry: see proctree_generation */

	/* pid map */
	struct pt_slot *slots;
	uint32_t nslots, nslots_max, count;

	/* interned strings */
	struct pt_str **sbuckets;
	uint32_t nsbuckets;

	/* users, LRU */
	struct pt_user users[PROCTREE_USER_CACHE];
	uint16_t ubuckets[PROCTREE_USER_CACHE];
	uint16_t nusers, ulru_head, ulru_tail;

	/* cgroup v2 id → path, learned from /proc reads */
	struct pt_cgcache cgcache[CGCACHE_SLOTS];
	bool cg_hybrid; /* v1 hierarchies seen: cgroup ids do not name v1 paths */

	char *scratch;
	char *pathbuf;

	struct proctree_stats st;
};

/* ---- memory accounting ------------------------------------------------- */

/*
 * What a malloc of n bytes costs with glibc: an 8-byte header and 16-byte
 * rounding; whole pages above the mmap threshold.
 */
static uint64_t heap_cost(size_t n)
{
	size_t c;

	if (n >= (size_t)128 * 1024)
		return ((n + 16 + 4095) & ~(size_t)4095);
	c = (n + 8 + 15) & ~(size_t)15;
	return c < 32 ? 32 : c;
}

static void *pt_alloc(struct proctree *pt, size_t n)
{
	void *p = malloc(n);

	if (p != NULL)
		pt->st.bytes += heap_cost(n);
	return p;
}

static void *pt_zalloc(struct proctree *pt, size_t n)
{
	void *p = calloc(1, n);

	if (p != NULL)
		pt->st.bytes += heap_cost(n);
	return p;
}

static void pt_release(struct proctree *pt, void *p, size_t n)
{
	if (p == NULL)
		return;
	pt->st.bytes -= heap_cost(n);
	free(p);
}

static uint64_t boottime_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_BOOTTIME, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- interned strings --------------------------------------------------- */

static uint32_t hash_bytes(const char *p, size_t len)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a 64 */

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)p[i];
		h *= 1099511628211ull;
	}
	return (uint32_t)(h ^ (h >> 32));
}

static struct pt_str *str_hdr(const char *s)
{
	return (struct pt_str *)(void *)(s - offsetof(struct pt_str, s));
}

static size_t str_cost(uint32_t len)
{
	return sizeof(struct pt_str) + len + 1;
}

static void str_rehash(struct proctree *pt)
{
	uint32_t nb = pt->nsbuckets * 2;
	struct pt_str **b = pt_zalloc(pt, nb * sizeof(*b));

	if (b == NULL)
		return; /* longer chains, still correct */
	for (uint32_t i = 0; i < pt->nsbuckets; i++) {
		struct pt_str *s = pt->sbuckets[i], *next;

		for (; s != NULL; s = next) {
			next = s->next;
			s->next = b[s->hash & (nb - 1)];
			b[s->hash & (nb - 1)] = s;
		}
	}
	pt_release(pt, pt->sbuckets, pt->nsbuckets * sizeof(*b));
	pt->sbuckets = b;
	pt->nsbuckets = nb;
}

/* A referenced interned copy of p[0..len), or NULL when out of memory. */
static const char *str_get(struct proctree *pt, const char *p, size_t len)
{
	uint32_t h = hash_bytes(p, len);
	struct pt_str *s;

	for (s = pt->sbuckets[h & (pt->nsbuckets - 1)]; s != NULL; s = s->next) {
		if (s->hash == h && s->len == len && memcmp(s->s, p, len) == 0) {
			s->refs++;
			return s->s;
		}
	}
	s = pt_alloc(pt, str_cost((uint32_t)len));
	if (s == NULL)
		return NULL;
	s->hash = h;
	s->refs = 1;
	s->len = (uint32_t)len;
	memcpy(s->s, p, len);
	s->s[len] = '\0';
	s->next = pt->sbuckets[h & (pt->nsbuckets - 1)];
	pt->sbuckets[h & (pt->nsbuckets - 1)] = s;
	pt->st.strings++;
	pt->st.string_bytes += len;
	if (pt->st.strings > pt->nsbuckets)
		str_rehash(pt);
	return s->s;
}

static const char *str_ref(const char *p)
{
	if (p != NULL)
		str_hdr(p)->refs++;
	return p;
}

static void str_put(struct proctree *pt, const char *p)
{
	struct pt_str *s, **pp;

	if (p == NULL)
		return;
	s = str_hdr(p);
	if (--s->refs > 0)
		return;
	for (pp = &pt->sbuckets[s->hash & (pt->nsbuckets - 1)]; *pp != s; pp = &(*pp)->next)
		;
	*pp = s->next;
	pt->st.strings--;
	pt->st.string_bytes -= s->len;
	pt_release(pt, s, str_cost(s->len));
}

/* Drop the references an entry holds and clear its string fields. */
static void entry_put_strings(struct proctree *pt, struct proc_entry *e)
{
	str_put(pt, e->exe);
	str_put(pt, e->cwd);
	str_put(pt, e->args);
	str_put(pt, e->tty);
	str_put(pt, e->cgroup);
	str_put(pt, e->container_id);
	e->exe = e->cwd = e->args = e->tty = e->cgroup = e->container_id = NULL;
	e->args_len = 0;
}

/* Take a reference on every string of e (a snapshot about to be stored twice). */
static void entry_ref_strings(struct proc_entry *e)
{
	str_ref(e->exe);
	str_ref(e->cwd);
	str_ref(e->args);
	str_ref(e->tty);
	str_ref(e->cgroup);
	str_ref(e->container_id);
}

/* ---- pid map ------------------------------------------------------------ */

/* Fibonacci hashing: the product's high half mixes every bit of the pid. */
static uint32_t pid_hash(uint32_t pid, uint32_t mask)
{
	return (uint32_t)(((uint64_t)pid * 0x9e3779b97f4a7c15ull) >> 32) & mask;
}

static uint32_t ht_find(const struct proctree *pt, uint32_t pid)
{
	uint32_t mask = pt->nslots - 1;

	for (uint32_t i = pid_hash(pid, mask);; i = (i + 1) & mask) {
		if (pt->slots[i].pid == pid)
			return pt->slots[i].idx;
		if (pt->slots[i].pid == 0)
			return NIL;
	}
}

static void ht_put(struct pt_slot *slots, uint32_t mask, uint32_t pid, uint32_t idx)
{
	uint32_t i = pid_hash(pid, mask);

	while (slots[i].pid != 0)
		i = (i + 1) & mask;
	slots[i].pid = pid;
	slots[i].idx = idx;
}

/* Insert a pid known to be absent.  Keeps the load at or below one half. */
static int ht_insert(struct proctree *pt, uint32_t pid, uint32_t idx)
{
	if ((pt->count + 1) * 2 > pt->nslots && pt->nslots < pt->nslots_max) {
		uint32_t n = pt->nslots * 2;
		struct pt_slot *s = pt_zalloc(pt, n * sizeof(*s));

		if (s != NULL) {
			for (uint32_t i = 0; i < pt->nslots; i++)
				if (pt->slots[i].pid != 0)
					ht_put(s, n - 1, pt->slots[i].pid, pt->slots[i].idx);
			pt_release(pt, pt->slots, pt->nslots * sizeof(*s));
			pt->slots = s;
			pt->nslots = n;
		}
	}
	if (pt->count + 1 >= pt->nslots)
		return -ENOMEM; /* could not grow; keep one slot empty so probes end */
	ht_put(pt->slots, pt->nslots - 1, pid, idx);
	pt->count++;
	return 0;
}

static void ht_remove(struct proctree *pt, uint32_t pid)
{
	uint32_t mask = pt->nslots - 1, i, j;

	for (i = pid_hash(pid, mask); pt->slots[i].pid != pid; i = (i + 1) & mask)
		if (pt->slots[i].pid == 0)
			return;
	/* Backward shift: move later members of the run into the hole when their home allows. */
	for (j = (i + 1) & mask; pt->slots[j].pid != 0; j = (j + 1) & mask) {
		uint32_t home = pid_hash(pt->slots[j].pid, mask);

		if (((j - home) & mask) >= ((j - i) & mask)) {
			pt->slots[i] = pt->slots[j];
			i = j;
		}
	}
	pt->slots[i].pid = 0;
	pt->count--;
}

/* ---- entry pool ---------------------------------------------------------- */

static struct pt_node *node_at(const struct proctree *pt, uint32_t idx)
{
	return &pt->chunks[idx >> CHUNK_SHIFT][idx & (CHUNK_NODES - 1)];
}

static void exited_unlink(struct proctree *pt, uint32_t idx)
{
	struct pt_node *n = node_at(pt, idx);

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
	struct pt_node *n = node_at(pt, idx);

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
	struct pt_node *n = node_at(pt, idx);

	pt->gen++;
	if (n->e.flags & PROC_F_EXITED) {
		exited_unlink(pt, idx);
		pt->st.exited--;
	} else {
		pt->st.live--;
	}
	ht_remove(pt, n->e.pid);
	entry_put_strings(pt, &n->e);
	memset(&n->e, 0, sizeof(n->e));
	n->next = pt->free_head;
	n->prev = NIL;
	pt->free_head = idx;
	pt->st.entries--;
}

/* A free pool index, evicting the oldest exited entry when the table is full. */
static uint32_t node_alloc(struct proctree *pt)
{
	uint32_t idx;

	if (pt->free_head == NIL && pt->nused == pt->max) {
		if (pt->exited_head == NIL) {
			pt->st.table_full_drops++;
			return NIL;
		}
		node_drop(pt, pt->exited_head);
		pt->st.evicted_exited++;
	}
	if (pt->free_head != NIL) {
		idx = pt->free_head;
		pt->free_head = node_at(pt, idx)->next;
	} else {
		if ((pt->nused & (CHUNK_NODES - 1)) == 0) {
			struct pt_node *c = pt_zalloc(pt, CHUNK_NODES * sizeof(*c));

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
		return b >= a && b - a < pt->tick_ns;
	if (b_coarse && !a_coarse)
		return a >= b && a - b < pt->tick_ns;
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
static struct pt_node *node_for(struct proctree *pt, uint32_t pid, uint64_t start, bool coarse,
				bool *ret_fresh)
{
	uint32_t idx = ht_find(pt, pid);
	struct pt_node *n;

	/* Callers change what they get (fresh or not). */
	pt->gen++;
	if (idx != NIL) {
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
		entry_put_strings(pt, &n->e);
		memset(&n->e, 0, sizeof(n->e));
		n->e.pid = pid;
		*ret_fresh = true;
		return n;
	}
	idx = node_alloc(pt);
	if (idx == NIL)
		return NULL;
	if (ht_insert(pt, pid, idx) != 0) {
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

/* ---- pure parsers ---------------------------------------------------------- */

/* Parse an unsigned decimal at *p (< end); leading '-' gives 0 and is consumed. */
static bool parse_u64(const char **p, const char *end, uint64_t *ret)
{
	const char *s = *p;
	uint64_t v = 0;
	bool neg = false;

	if (s < end && *s == '-') {
		neg = true;
		s++;
	}
	if (s >= end || *s < '0' || *s > '9')
		return false;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*p = s;
	*ret = neg ? 0 : v;
	return true;
}

int proctree_parse_stat(const char *line, size_t len, struct proctree_stat *ret_st)
{
	const char *end = line + len, *p = line, *open, *close;
	struct proctree_stat st = {0};
	uint64_t v;
	size_t clen;

	if (!parse_u64(&p, end, &v) || v == 0 || v > UINT32_MAX)
		return -EINVAL;
	st.pid = (uint32_t)v;
	if (end - p < 2 || p[0] != ' ' || p[1] != '(')
		return -EINVAL;
	open = p + 1;
	close = memrchr(open, ')', (size_t)(end - open));
	if (close == NULL)
		return -EINVAL;
	clen = (size_t)(close - open - 1);
	if (clen > PROCTREE_COMM_LEN - 1)
		clen = PROCTREE_COMM_LEN - 1;
	memcpy(st.comm, open + 1, clen);
	st.comm[clen] = '\0';

	/* Fields from 3 (state) on, space separated. */
	p = close + 1;
	for (int field = 3; field <= 22; field++) {
		if (p >= end || *p != ' ')
			return -EINVAL;
		p++;
		if (field == 3) {
			if (p >= end)
				return -EINVAL;
			st.state = *p++;
			continue;
		}
		if (!parse_u64(&p, end, &v))
			return -EINVAL;
		switch (field) {
		case 4:
			st.ppid = (uint32_t)v;
			break;
		case 6:
			st.sid = (uint32_t)v;
			break;
		case 7:
			st.tty_nr = (uint32_t)v;
			break;
		case 9:
			st.kflags = (uint32_t)v;
			break;
		case 22:
			st.start_ticks = v;
			break;
		default:
			break;
		}
	}
	*ret_st = st;
	return 0;
}

/* The path of one "hier:controllers:path" line, or false when malformed. */
static bool cgroup_line(const char *l, size_t n, bool *ret_v2, size_t *ret_off, size_t *ret_len)
{
	const char *c1 = memchr(l, ':', n), *c2;

	if (c1 == NULL)
		return false;
	c2 = memchr(c1 + 1, ':', n - (size_t)(c1 + 1 - l));
	if (c2 == NULL || c2 + 1 >= l + n || c2[1] != '/')
		return false;
	*ret_v2 = c1 - l == 1 && l[0] == '0' && c2 == c1 + 1;
	*ret_off = (size_t)(c2 + 1 - l);
	*ret_len = n - *ret_off;
	return true;
}

int proctree_cgroup_pick(const char *buf, size_t len, size_t *ret_off, size_t *ret_len)
{
	size_t pos = 0, v2_off = 0, v2_len = 0, v1_off = 0, v1_len = 0, root_off = 0;
	bool have_v2 = false, have_v1 = false, have_root = false;

	while (pos < len) {
		const char *l = buf + pos, *nl = memchr(l, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - l) : len - pos, off, plen;
		bool v2;

		if (cgroup_line(l, n, &v2, &off, &plen)) {
			bool root = plen == 1;

			if (v2 && !have_v2) {
				have_v2 = true;
				v2_off = pos + off;
				v2_len = plen;
			} else if (!v2 && !root && !have_v1) {
				have_v1 = true;
				v1_off = pos + off;
				v1_len = plen;
			}
			if (root && !have_root) {
				have_root = true;
				root_off = pos + off;
			}
		}
		pos += n + 1;
	}
	if (have_v2 && (v2_len > 1 || !have_v1)) {
		*ret_off = v2_off;
		*ret_len = v2_len;
		return 2;
	}
	if (have_v1) {
		*ret_off = v1_off;
		*ret_len = v1_len;
		return 1;
	}
	if (have_root) {
		*ret_off = root_off;
		*ret_len = 1;
		return 1;
	}
	return 0;
}

static bool is_hex64(const char *p, size_t n)
{
	if (n != PROCTREE_CONTAINER_ID_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	return true;
}

static bool has_prefix(const char *p, size_t n, const char *pre)
{
	size_t m = strlen(pre);

	return n >= m && memcmp(p, pre, m) == 0;
}

/* The id in one path component c[0..n), given the component before it. */
static const char *component_id(const char *c, size_t n, const char *parent, size_t parent_n,
				bool under_kubepods)
{
	static const struct {
		const char *prefix;
		bool scope_optional;
	} forms[] = {
	    {"docker-", false},
	    {"cri-containerd-", false},
	    {"crio-", true},
	    {"libpod-", true},
	};

	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		size_t pl = strlen(forms[i].prefix), rest;

		if (!has_prefix(c, n, forms[i].prefix))
			continue;
		rest = n - pl;
		if (rest == PROCTREE_CONTAINER_ID_LEN + 6 &&
		    memcmp(c + pl + PROCTREE_CONTAINER_ID_LEN, ".scope", 6) == 0)
			rest = PROCTREE_CONTAINER_ID_LEN;
		else if (!forms[i].scope_optional)
			continue;
		if (is_hex64(c + pl, rest))
			return c + pl;
	}
	if (is_hex64(c, n) && (under_kubepods || (parent != NULL && parent_n == 6 &&
						  memcmp(parent, "docker", 6) == 0)))
		return c;
	return NULL;
}

size_t proctree_container_id(const char *cgroup_path, char out[PROCTREE_CONTAINER_ID_LEN + 1])
{
	const char *p = cgroup_path, *parent = NULL, *found = NULL;
	size_t parent_n = 0;
	bool kube = false;

	out[0] = '\0';
	if (p == NULL)
		return 0;
	while (*p != '\0') {
		const char *c, *id;
		size_t n;

		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		c = p;
		while (*p != '\0' && *p != '/')
			p++;
		n = (size_t)(p - c);
		id = component_id(c, n, parent, parent_n, kube);
		if (id != NULL)
			found = id; /* the deepest wins: the innermost container */
		if (has_prefix(c, n, "kubepods"))
			kube = true;
		parent = c;
		parent_n = n;
	}
	if (found == NULL)
		return 0;
	memcpy(out, found, PROCTREE_CONTAINER_ID_LEN);
	out[PROCTREE_CONTAINER_ID_LEN] = '\0';
	return PROCTREE_CONTAINER_ID_LEN;
}

void proctree_tty_name(uint32_t tty_nr, char out[32])
{
	uint32_t major = (tty_nr >> 8) & 0xfff;
	uint32_t minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);

	if (tty_nr == 0)
		out[0] = '\0';
	else if (major >= 136 && major <= 143)
		snprintf(out, 32, "pts%u", (major - 136) * 256 + minor);
	else if (major == 4 && minor < 64)
		snprintf(out, 32, "tty%u", minor);
	else if (major == 4)
		snprintf(out, 32, "ttyS%u", minor - 64);
	else if (major == 5 && minor == 1)
		snprintf(out, 32, "console");
	else if (major == 188)
		snprintf(out, 32, "ttyUSB%u", minor);
	else if (major == 166)
		snprintf(out, 32, "ttyACM%u", minor);
	else if (major == 229)
		snprintf(out, 32, "hvc%u", minor);
	else
		snprintf(out, 32, "%u:%u", major, minor);
}

/* ---- reading /proc ------------------------------------------------------- */

/* Read at most cap bytes of dfd/name.  Returns the count or a negative errno. */
static ssize_t read_at(int dfd, const char *name, char *buf, size_t cap)
{
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	size_t got = 0;

	if (fd < 0)
		return -errno;
	while (got < cap) {
		ssize_t r = read(fd, buf + got, cap - got);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			close(fd);
			return r;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	return (ssize_t)got;
}

/* "Key:\tA\tB..." → first two numbers, for the first line starting with key. */
static bool status_field(const char *buf, size_t len, const char *key, uint32_t *a, uint32_t *b)
{
	size_t klen = strlen(key), pos = 0;

	while (pos < len) {
		const char *l = buf + pos, *nl = memchr(l, '\n', len - pos);
		const char *end = nl != NULL ? nl : buf + len;

		if ((size_t)(end - l) > klen && memcmp(l, key, klen) == 0) {
			const char *p = l + klen;
			uint64_t v;

			while (p < end && (*p == '\t' || *p == ' '))
				p++;
			if (!parse_u64(&p, end, &v) || v > UINT32_MAX)
				return false;
			*a = (uint32_t)v;
			if (b != NULL) {
				while (p < end && (*p == '\t' || *p == ' '))
					p++;
				if (!parse_u64(&p, end, &v) || v > UINT32_MAX)
					return false;
				*b = (uint32_t)v;
			}
			return true;
		}
		pos = (size_t)(end - buf) + 1;
	}
	return false;
}

/* Intern path and its container id into e->cgroup/e->container_id (which must be empty). */
static int entry_set_cgroup(struct proctree *pt, struct proc_entry *e, const char *path, size_t len)
{
	char cid[PROCTREE_CONTAINER_ID_LEN + 1];

	e->cgroup = str_get(pt, path, len);
	if (e->cgroup == NULL)
		return -ENOMEM;
	if (proctree_container_id(e->cgroup, cid) > 0) {
		e->container_id = str_get(pt, cid, PROCTREE_CONTAINER_ID_LEN);
		if (e->container_id == NULL)
			return -ENOMEM;
	}
	return 0;
}

/*
 * Read dfd/cgroup into e->cgroup/container_id.  Returns 2 (v2 path), 1 (v1
 * path), 0 (no path), or a negative errno.
 */
static int read_cgroup(struct proctree *pt, int dfd, struct proc_entry *e)
{
	ssize_t n = read_at(dfd, "cgroup", pt->scratch, SCRATCH_LEN);
	size_t off, len;
	int kind, r;

	if (n < 0)
		return (int)n;
	if ((size_t)n == SCRATCH_LEN) {
		/* Cut: ignore the partial last line. */
		char *nl = memrchr(pt->scratch, '\n', (size_t)n);

		n = nl != NULL ? nl - pt->scratch : 0;
	}
	if (n > 3 && memcmp(pt->scratch, "0::", 3) != 0)
		pt->cg_hybrid = true; /* pure v2 hosts have the one "0::" line */
	kind = proctree_cgroup_pick(pt->scratch, (size_t)n, &off, &len);
	if (kind == 0)
		return 0;
	r = entry_set_cgroup(pt, e, pt->scratch + off, len);
	return r < 0 ? r : kind;
}

static int open_pid_dir(const struct proctree *pt, uint32_t pid)
{
	char path[PATH_BUF];
	int fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/%u", pt->proc_root, pid) >= sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static const char *read_link(struct proctree *pt, int dfd, const char *name, uint32_t *flags)
{
	ssize_t n = readlinkat(dfd, name, pt->pathbuf, PATH_BUF);

	if (n <= 0)
		return NULL;
	if (n == PATH_BUF) {
		*flags |= PROC_F_PATH_TRUNC;
		n = PATH_BUF - 1;
	}
	return str_get(pt, pt->pathbuf, (size_t)n);
}

/*
 * Build a referenced snapshot of /proc/<pid> in *e.  All files are read
 * through one directory fd, so they describe one process even if the pid is
 * reused meanwhile (reads then fail instead of mixing two processes).
 * Returns 0, -ENOENT (gone), -ESRCH (a thread, not a leader), -EINVAL
 * (unparsable) or -ENOMEM.  *ret_zombie says whether it already exited.
 */
static int load_snapshot(struct proctree *pt, uint32_t pid, struct proc_entry *e, bool *ret_zombie)
{
	struct proctree_stat st;
	uint32_t tgid = 0, dummy;
	char tty[32];
	ssize_t n;
	uint64_t v;
	int dfd, r = 0;

	memset(e, 0, sizeof(*e));
	dfd = open_pid_dir(pt, pid);
	if (dfd < 0)
		return dfd;
	n = read_at(dfd, "stat", pt->scratch, STAT_READ_MAX);
	if (n < 0) {
		r = (int)n;
		goto out;
	}
	if (proctree_parse_stat(pt->scratch, (size_t)n, &st) != 0 || st.pid != pid) {
		r = -EINVAL;
		goto out;
	}
	e->pid = pid;
	e->ppid = st.ppid;
	e->sid = st.sid;
	e->start_ns = st.start_ticks * pt->tick_ns;
	e->flags = PROC_F_START_COARSE;
	if (st.kflags & PF_KTHREAD)
		e->flags |= PROC_F_KTHREAD;
	memcpy(e->comm, st.comm, sizeof(e->comm));
	e->uid = e->euid = e->gid = UINT32_MAX;
	e->loginuid = UINT32_MAX;
	*ret_zombie = st.state == 'Z' || st.state == 'X';

	n = read_at(dfd, "status", pt->scratch, STATUS_READ_MAX);
	if (n > 0) {
		status_field(pt->scratch, (size_t)n, "Tgid:", &tgid, NULL);
		status_field(pt->scratch, (size_t)n, "Uid:", &e->uid, &e->euid);
		status_field(pt->scratch, (size_t)n, "Gid:", &e->gid, &dummy);
	}
	if (tgid != 0 && tgid != pid) {
		r = -ESRCH;
		goto out;
	}
	n = read_at(dfd, "loginuid", pt->scratch, 32);
	if (n > 0) {
		const char *p = pt->scratch;

		if (parse_u64(&p, p + n, &v) && v <= UINT32_MAX)
			e->loginuid = (uint32_t)v;
	}
	proctree_tty_name(st.tty_nr, tty);
	if (tty[0] != '\0' && (e->tty = str_get(pt, tty, strlen(tty))) == NULL)
		goto nomem;

	e->exe = read_link(pt, dfd, "exe", &e->flags);
	e->cwd = read_link(pt, dfd, "cwd", &e->flags);
	n = read_at(dfd, "cmdline", pt->scratch, pt->args_max + 1);
	if (n > 0) {
		if ((size_t)n > pt->args_max) {
			n = pt->args_max;
			e->flags |= PROC_F_ARGS_TRUNC;
		} else if (pt->scratch[n - 1] == '\0') {
			n--;
		}
		e->args = str_get(pt, pt->scratch, (size_t)n);
		if (e->args == NULL)
			goto nomem;
		e->args_len = (uint16_t)n;
	}
	if (read_cgroup(pt, dfd, e) == -ENOMEM)
		goto nomem;
out:
	close(dfd);
	if (r != 0)
		entry_put_strings(pt, e);
	return r;
nomem:
	r = -ENOMEM;
	goto out;
}

/*
 * Store a /proc snapshot (its references move into the tree).  A known entry
 * of the same process is refreshed but keeps what /proc cannot tell: the
 * precise start time, cgroup id, exit state and how it was first learned.
 */
static struct pt_node *commit_snapshot(struct proctree *pt, struct proc_entry *s, bool zombie,
				       uint8_t source)
{
	bool fresh;
	struct pt_node *n = node_for(pt, s->pid, s->start_ns, true, &fresh);
	struct proc_entry *e;

	if (n == NULL) {
		entry_put_strings(pt, s);
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
		entry_put_strings(pt, e);
	} else {
		s->source = source;
	}
	*e = *s;
	if (zombie && !(e->flags & PROC_F_EXITED))
		mark_exited(pt, ht_find(pt, e->pid), -1, boottime_ns());
	return n;
}

/* ---- lifecycle ------------------------------------------------------------- */

struct proctree *proctree_new(const struct proctree_limits *lim)
{
	struct proctree_limits d = {0};
	struct proctree *pt;
	long hz;

	if (lim == NULL)
		lim = &d;
	if (lim->args_max > PROCTREE_ARGS_MAX || lim->max_entries > PROCTREE_MAX_ENTRIES_LIMIT) {
		errno = EINVAL;
		return NULL;
	}
	pt = calloc(1, sizeof(*pt));
	if (pt == NULL)
		return NULL;
	pt->st.bytes = heap_cost(sizeof(*pt));
	pt->max = lim->max_entries ? lim->max_entries : PROCTREE_MAX_ENTRIES_DEFAULT;
	pt->grace_ns = lim->exit_grace_ns ? lim->exit_grace_ns : PROCTREE_GRACE_NS_DEFAULT;
	pt->args_max = lim->args_max ? lim->args_max : PROCTREE_ARGS_DEFAULT;
	hz = sysconf(_SC_CLK_TCK);
	pt->tick_ns = 1000000000ull / (uint64_t)(hz > 0 ? hz : 100);
	pt->free_head = pt->exited_head = pt->exited_tail = NIL;
	pt->st.max = pt->max;
	pt->ulru_head = pt->ulru_tail = U_NIL;
	memset(pt->ubuckets, 0xff, sizeof(pt->ubuckets));

	pt->nslots_max = HT_MIN;
	while (pt->nslots_max < 2ull * pt->max && pt->nslots_max < (1u << 31))
		pt->nslots_max *= 2;
	pt->nslots = HT_MIN;
	pt->nsbuckets = STR_BUCKETS_MIN;

	const char *root = lim->proc_root ? lim->proc_root : "/proc";
	size_t rlen = strlen(root) + 1;

	pt->proc_root = pt_alloc(pt, rlen);
	pt->chunks =
	    pt_zalloc(pt, ((pt->max + CHUNK_NODES - 1) / CHUNK_NODES) * sizeof(*pt->chunks));
	pt->slots = pt_zalloc(pt, pt->nslots * sizeof(*pt->slots));
	pt->sbuckets = pt_zalloc(pt, pt->nsbuckets * sizeof(*pt->sbuckets));
	pt->scratch = pt_alloc(pt, SCRATCH_LEN);
	pt->pathbuf = pt_alloc(pt, PATH_BUF);
	if (pt->proc_root == NULL || pt->chunks == NULL || pt->slots == NULL ||
	    pt->sbuckets == NULL || pt->scratch == NULL || pt->pathbuf == NULL) {
		proctree_free(pt);
		errno = ENOMEM;
		return NULL;
	}
	memcpy(pt->proc_root, root, rlen);
	return pt;
}

void proctree_free(struct proctree *pt)
{
	if (pt == NULL)
		return;
	for (uint32_t i = 0; i < pt->nsbuckets && pt->sbuckets != NULL; i++) {
		struct pt_str *s = pt->sbuckets[i], *next;

		for (; s != NULL; s = next) {
			next = s->next;
			free(s);
		}
	}
	for (uint32_t i = 0; i < pt->nchunks; i++)
		free(pt->chunks[i]);
	for (uint16_t i = 0; i < pt->nusers; i++)
		free(pt->users[i].name);
	free(pt->chunks);
	free(pt->slots);
	free(pt->sbuckets);
	free(pt->scratch);
	free(pt->pathbuf);
	free(pt->proc_root);
	free(pt);
}

int proctree_seed(struct proctree *pt, vigil_err *err)
{
	DIR *d = opendir(pt->proc_root);
	struct dirent *de;
	int r;

	if (d == NULL)
		return verr_set(err, -errno, "cannot list %s: %s", pt->proc_root, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		struct proc_entry s;
		const char *p = de->d_name;
		uint64_t pid;
		bool zombie = false;

		if (!parse_u64(&p, p + strlen(p), &pid) || *p != '\0' || pid == 0 ||
		    pid > UINT32_MAX)
			continue;
		/* Vanished, a thread, garbage: skip.  Only memory stops the walk. */
		r = load_snapshot(pt, (uint32_t)pid, &s, &zombie);
		if (r == -ENOMEM) {
			closedir(d);
			return verr_set(err, -ENOMEM, "out of memory seeding from %s",
					pt->proc_root);
		}
		if (r == 0 && commit_snapshot(pt, &s, zombie, PROC_SRC_SEED) != NULL)
			pt->st.seeded++;
	}
	closedir(d);
	return 0;
}

/* ---- events ---------------------------------------------------------------- */

/* Intern a NUL-free string of at most len bytes; absent (NULL, 0 or "") stays NULL. */
static int intern_str(struct proctree *pt, const char *p, size_t len, const char **ret)
{
	*ret = NULL;
	if (p == NULL || len == 0)
		return 0;
	len = strnlen(p, len);
	if (len == 0)
		return 0;
	*ret = str_get(pt, p, len);
	return *ret != NULL ? 0 : -ENOMEM;
}

static void cgcache_put(struct proctree *pt, uint64_t id, const char *path, const char *cid)
{
	struct pt_cgcache *c = &pt->cgcache[(id * 0x9e3779b97f4a7c15ull) >> 56];

	str_put(pt, c->path);
	str_put(pt, c->cid);
	c->id = id;
	c->path = str_ref(path);
	c->cid = str_ref(cid);
}

static const struct pt_cgcache *cgcache_get(const struct proctree *pt, uint64_t id)
{
	const struct pt_cgcache *c = &pt->cgcache[(id * 0x9e3779b97f4a7c15ull) >> 56];

	return c->path != NULL && c->id == id ? c : NULL;
}

static void take_cgroup(struct proc_entry *dst, const char *path, const char *cid)
{
	dst->cgroup = str_ref(path);
	dst->container_id = str_ref(cid);
}

/*
 * The cgroup path for an exec'ing process.  On cgroup v2 hosts the id names
 * the cgroup, so a known id (own entry, cache, parent) avoids reading /proc.
 * On hybrid hosts the path that matters is often a v1 one the id does not
 * name (a container moved in v1 only), so /proc is always read there.  When
 * the process is already gone, the old path is the best guess.
 */
static int exec_cgroup(struct proctree *pt, const struct proctree_exec *ev,
		       const struct proc_entry *old, struct proc_entry *e)
{
	const struct proc_entry *parent = proctree_peek(pt, ev->ppid);
	const struct pt_cgcache *c;
	int dfd, kind = -ENOENT;

	if (!pt->cg_hybrid && ev->cgroup_id != 0) {
		if (old != NULL && old->cgroup != NULL && old->cgroup_id == ev->cgroup_id) {
			take_cgroup(e, old->cgroup, old->container_id);
			return 0;
		}
		if ((c = cgcache_get(pt, ev->cgroup_id)) != NULL) {
			take_cgroup(e, c->path, c->cid);
			return 0;
		}
		if (parent != NULL && parent->cgroup != NULL &&
		    parent->cgroup_id == ev->cgroup_id) {
			take_cgroup(e, parent->cgroup, parent->container_id);
			return 0;
		}
	}
	dfd = open_pid_dir(pt, ev->pid);
	if (dfd >= 0) {
		kind = read_cgroup(pt, dfd, e);
		close(dfd);
	}
	if (kind == -ENOMEM)
		return kind;
	if (kind > 0) {
		if (kind == 2 && ev->cgroup_id != 0)
			cgcache_put(pt, ev->cgroup_id, e->cgroup, e->container_id);
		/* Learn the id of a parent seeded from /proc that shares the path. */
		if (parent != NULL && parent->cgroup == e->cgroup && parent->cgroup_id == 0)
			node_at(pt, ht_find(pt, parent->pid))->e.cgroup_id = ev->cgroup_id;
		return 0;
	}
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
	struct pt_node *n;
	uint32_t idx;
	size_t alen = 0;
	bool fresh;
	int r;

	if (ev->pid == 0)
		return -EINVAL;
	pt->gen++;
	idx = ht_find(pt, ev->pid);
	if (idx != NIL && entry_is(pt, &node_at(pt, idx)->e, ev->start_ns, false))
		old = &node_at(pt, idx)->e;

	/* Build the new contents first: failing here leaves the tree untouched. */
	s.flags = ev->flags & ev_flags;
	if (ev->comm != NULL)
		memcpy(s.comm, ev->comm, strnlen(ev->comm, PROCTREE_COMM_LEN - 1));
	if ((r = intern_str(pt, ev->filename, ev->filename_len, &s.exe)) != 0 ||
	    (r = intern_str(pt, ev->cwd, ev->cwd_len, &s.cwd)) != 0 ||
	    (r = intern_str(pt, ev->tty, ev->tty != NULL ? PROCTREE_TTY_LEN - 1 : 0, &s.tty)) != 0)
		goto fail;
	if (ev->args != NULL && ev->args_len > 0) {
		alen = ev->args_len;
		if (ev->args[alen - 1] == '\0')
			alen--;
		if (alen > pt->args_max) {
			alen = pt->args_max;
			s.flags |= PROC_F_ARGS_TRUNC;
		}
		if (alen > 0 && (s.args = str_get(pt, ev->args, alen)) == NULL) {
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
	entry_put_strings(pt, &n->e);
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
	entry_put_strings(pt, &s);
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
	struct pt_node *n;
	uint32_t idx;
	bool fresh, zombie = false;

	if (child_pid == 0 || child_pid == parent_pid)
		return -EINVAL;
	pt->gen++;
	idx = ht_find(pt, child_pid);
	if (idx != NIL && entry_is(pt, &node_at(pt, idx)->e, child_start_ns, false)) {
		/* Seen already (exec first, or seeded): newer than what the fork knows. */
		entry_refine_start(&node_at(pt, idx)->e, child_start_ns, false);
		return 0;
	}

	parent = parent_pid != 0 ? proctree_get(pt, parent_pid) : NULL;
	if (parent != NULL) {
		/* A referenced copy: storing the child may evict the parent if it exited. */
		s = *parent;
		entry_ref_strings(&s);
		s.flags &= PROC_F_KTHREAD | PROC_F_ARGS_TRUNC | PROC_F_PATH_TRUNC |
			   PROC_F_EXE_DELETED | PROC_F_EXE_MEMFD;
	} else if (load_snapshot(pt, child_pid, &s, &zombie) == 0) {
		if (!entry_is(pt, &s, child_start_ns, false)) {
			entry_put_strings(pt, &s); /* already another process */
			entry_unknown(&s);
		} else if (commit_snapshot(pt, &s, zombie, PROC_SRC_LAZY) != NULL) {
			pt->st.lazy_loads++;
			entry_refine_start(&node_at(pt, ht_find(pt, child_pid))->e, child_start_ns,
					   false);
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
		entry_put_strings(pt, &s);
		return n == NULL ? -ENOSPC : 0;
	}
	n->e = s;
	return 0;
}

int proctree_on_exit(struct proctree *pt, uint32_t pid, uint64_t start_ns, int32_t exit_code,
		     uint64_t ts_ns)
{
	uint32_t idx = pid != 0 ? ht_find(pt, pid) : NIL;

	pt->gen++;
	if (idx == NIL || !entry_is(pt, &node_at(pt, idx)->e, start_ns, false)) {
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
		char path[PATH_BUF];
		bool gone;
		ssize_t n;

		if (pt->sweep_cursor >= pt->nused)
			pt->sweep_cursor = 0;
		if (e->pid == 0 || (e->flags & PROC_F_EXITED))
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%u/stat", pt->proc_root, e->pid) >=
		    sizeof(path))
			continue;
		n = read_at(AT_FDCWD, path, pt->scratch, STAT_READ_MAX);
		if (n == -ENOENT || n == -ESRCH)
			gone = true;
		else if (n < 0 || proctree_parse_stat(pt->scratch, (size_t)n, &st) != 0)
			gone = false; /* cannot tell: keep it */
		else
			gone = st.state == 'Z' || st.state == 'X' ||
			       !entry_is(pt, e, st.start_ticks * pt->tick_ns, true);
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
	uint32_t idx = pid != 0 ? ht_find(pt, pid) : NIL;

	return idx != NIL ? &node_at(pt, idx)->e : NULL;
}

/* The entry for pid, loaded from /proc on a miss; *ret_r says why not (-ENOENT: no such process).
 */
static const struct proc_entry *get_or_load(struct proctree *pt, uint32_t pid, int *ret_r)
{
	const struct proc_entry *e = proctree_peek(pt, pid);
	struct proc_entry s;
	struct pt_node *n;
	bool zombie = false;

	*ret_r = 0;
	if (e != NULL)
		return e;
	*ret_r = -ENOENT;
	if (pid == 0)
		return NULL;
	pt->st.lookup_misses++;
	*ret_r = load_snapshot(pt, pid, &s, &zombie);
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
	uint64_t slack = ((p->flags | c->flags) & PROC_F_START_COARSE) ? pt->tick_ns : 0;

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
				idx = ht_find(pt, cur);
				if (r == -ENOENT && idx != NIL)
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

/* ---- user names ---------------------------------------------------------------- */

static void ulru_unlink(struct proctree *pt, uint16_t i)
{
	struct pt_user *u = &pt->users[i];

	if (u->prev != U_NIL)
		pt->users[u->prev].next = u->next;
	else
		pt->ulru_head = u->next;
	if (u->next != U_NIL)
		pt->users[u->next].prev = u->prev;
	else
		pt->ulru_tail = u->prev;
}

static void ulru_push(struct proctree *pt, uint16_t i)
{
	struct pt_user *u = &pt->users[i];

	u->prev = U_NIL;
	u->next = pt->ulru_head;
	if (pt->ulru_head != U_NIL)
		pt->users[pt->ulru_head].prev = i;
	else
		pt->ulru_tail = i;
	pt->ulru_head = i;
}

static uint16_t uid_bucket(uint32_t uid)
{
	return (uint16_t)((uid * 0x9e3779b1u) >> 24) % PROCTREE_USER_CACHE;
}

/* A new malloc'd name for uid: its passwd name, or its number. */
static char *resolve_user(struct proctree *pt, uint32_t uid, size_t *ret_len)
{
	struct passwd pw, *res = NULL;
	char *buf = pt->scratch, *big = NULL, *name;
	size_t cap = SCRATCH_LEN, len;
	char num[16];
	const char *src;
	int r;

	for (;;) {
		r = getpwuid_r((uid_t)uid, &pw, buf, cap, &res);
		if (r != ERANGE || cap >= PW_BUF_MAX)
			break;
		cap *= 2;
		free(big);
		big = buf = malloc(cap);
		if (buf == NULL)
			break;
	}
	if (r == 0 && res != NULL && res->pw_name != NULL && res->pw_name[0] != '\0') {
		src = res->pw_name;
	} else {
		snprintf(num, sizeof(num), "%u", uid);
		src = num;
	}
	len = strlen(src);
	name = pt_alloc(pt, len + 1);
	if (name != NULL)
		memcpy(name, src, len + 1);
	free(big);
	*ret_len = len;
	return name;
}

uint64_t proctree_generation(const struct proctree *pt)
{
	return pt->gen;
}

const char *proctree_user_name(struct proctree *pt, uint32_t uid)
{
	uint16_t b = uid_bucket(uid), i, *pp;
	struct pt_user *u;
	size_t len;
	char *name;

	for (i = pt->ubuckets[b]; i != U_NIL; i = pt->users[i].hnext) {
		if (pt->users[i].uid == uid) {
			ulru_unlink(pt, i);
			ulru_push(pt, i);
			return pt->users[i].name;
		}
	}
	name = resolve_user(pt, uid, &len);
	if (name == NULL)
		return "?"; /* out of memory: a constant, so the contract holds */
	if (pt->nusers < PROCTREE_USER_CACHE) {
		i = pt->nusers++;
		pt->st.user_names++;
	} else {
		i = pt->ulru_tail;
		u = &pt->users[i];
		ulru_unlink(pt, i);
		for (pp = &pt->ubuckets[uid_bucket(u->uid)]; *pp != i; pp = &pt->users[*pp].hnext)
			;
		*pp = u->hnext;
		pt_release(pt, u->name, strlen(u->name) + 1);
	}
	u = &pt->users[i];
	u->uid = uid;
	u->name = name;
	u->hnext = pt->ubuckets[b];
	pt->ubuckets[b] = i;
	ulru_push(pt, i);
	return name;
}

void proctree_stats(const struct proctree *pt, struct proctree_stats *ret_stats)
{
	*ret_stats = pt->st;
}
