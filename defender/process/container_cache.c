/* SPDX-License-Identifier: Apache-2.0 */
/* Container metadata from the runtimes' state, cached (container_cache.h). */
#include "process/container_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "process/memacct.h"

#define NIL UINT32_MAX

enum entry_state {
	ENTRY_MISSING = 0, /* found nowhere yet: retried */
	ENTRY_PARTIAL,	   /* found, but no image recorded: retried, the rest is answered */
	ENTRY_FOUND,	   /* complete: kept until evicted */
};

struct container_cache_entry {
	struct container_meta meta; /* meta.id is the key */
	uint64_t retry_ms;	    /* MISSING, PARTIAL: when to look again */
	uint32_t backoff_ms;
	uint32_t prev, next; /* LRU, most recent first */
	uint32_t hnext;	     /* hash chain */
	uint8_t state;	     /* enum entry_state */
};

/* Where each runtime keeps its state, relative to the root. */
#define DOCKER_DIR	 "var/lib/docker/containers/"
#define STORAGE_DIR	 "var/lib/containers/storage/overlay-containers/"
#define STORAGE_RUN_DIR	 "run/containers/storage/overlay-containers/"
#define CONTAINERD_TASKS "run/containerd/io.containerd.runtime.v2.task"

/* ---- the process's shared table (container_cache.h: "Threads that must not read files") ---- */

static struct {
	pthread_mutex_t lock;
	struct container_meta v[CONTAINER_CACHE_SHARED_MAX];
	uint32_t n, next; /* entries used; the one to replace next when full */
} shared = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Put m in the shared table; true when that pushed another container out. */
static bool shared_publish(const struct container_meta *m)
{
	bool evicted = false;
	uint32_t i;

	pthread_mutex_lock(&shared.lock);
	for (i = 0; i < shared.n; i++)
		if (memcmp(shared.v[i].id, m->id, CONTAINER_ID_LEN) == 0)
			break;
	if (i == shared.n) {
		if (shared.n < CONTAINER_CACHE_SHARED_MAX) {
			shared.n++;
		} else {
			i = shared.next;
			shared.next = (shared.next + 1) % CONTAINER_CACHE_SHARED_MAX;
			evicted = true;
		}
	}
	shared.v[i] = *m;
	pthread_mutex_unlock(&shared.lock);
	return evicted;
}

static bool shared_find(const char *id, struct container_meta *out)
{
	bool found = false;

	pthread_mutex_lock(&shared.lock);
	for (uint32_t i = 0; i < shared.n && !found; i++)
		if (memcmp(shared.v[i].id, id, CONTAINER_ID_LEN) == 0) {
			*out = shared.v[i];
			found = true;
		}
	pthread_mutex_unlock(&shared.lock);
	return found;
}

int container_cache_init(struct container_cache *c, const char *root, uint32_t max, unsigned flags,
			 uint64_t *bytes)
{
	size_t rl;

	memset(c, 0, sizeof(*c));
	c->flags = flags;
	c->bytes = bytes != NULL ? bytes : &c->heap;
	c->max = max == 0			   ? CONTAINER_CACHE_MAX_DEFAULT
		 : max > CONTAINER_CACHE_MAX_LIMIT ? CONTAINER_CACHE_MAX_LIMIT
						   : max;
	c->head = c->tail = NIL;
	for (c->nbuckets = 16; c->nbuckets < c->max * 2;)
		c->nbuckets *= 2;
	if (root == NULL || root[0] == '\0')
		root = "/";
	rl = strlen(root);
	/* Exactly the string's size: container_cache_fini gives back strlen + 1. */
	c->root = memacct_alloc(c->bytes, rl + (root[rl - 1] != '/') + 1);
	if (c->root != NULL) {
		memcpy(c->root, root, rl + 1);
		if (root[rl - 1] != '/')
			memcpy(c->root + rl, "/", 2);
	}
	c->entries = memacct_zalloc(c->bytes, (size_t)c->max * sizeof(*c->entries));
	c->buckets = memacct_alloc(c->bytes, (size_t)c->nbuckets * sizeof(*c->buckets));
	if (c->root == NULL || c->entries == NULL || c->buckets == NULL) {
		container_cache_fini(c);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < c->nbuckets; i++)
		c->buckets[i] = NIL;
	return 0;
}

void container_cache_fini(struct container_cache *c)
{
	uint64_t sink = 0, *bytes = c->bytes != NULL && c->bytes != &c->heap ? c->bytes : &sink;

	if (c->root != NULL)
		memacct_free(bytes, c->root, strlen(c->root) + 1);
	memacct_free(bytes, c->entries, (size_t)c->max * sizeof(*c->entries));
	memacct_free(bytes, c->buckets, (size_t)c->nbuckets * sizeof(*c->buckets));
	memset(c, 0, sizeof(*c));
}

/* ---- reading state files ---- */

/*
 * The bytes of root/rel, at most cap, into a new buffer (caller frees) of
 * *ret_len bytes.  NULL with *ret_err: -ENOENT (no such file: not this
 * runtime's container), or -EINVAL / -EFBIG for what is not a regular file
 * or is over cap (counted as malformed by the caller).
 */
static char *read_state(struct container_cache *c, const char *rel, size_t cap, size_t *ret_len,
			int *ret_err)
{
	char path[PATH_MAX];
	struct stat st;
	char *buf = NULL;
	size_t got = 0, want;
	int fd;

	*ret_err = -ENOENT;
	if ((size_t)snprintf(path, sizeof(path), "%s%s", c->root, rel) >= sizeof(path))
		return NULL;
	/* No links followed, no waiting on a FIFO someone put there: this is the capture thread. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		*ret_err = errno == ENOENT || errno == ENOTDIR ? -ENOENT : -EINVAL;
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) {
		*ret_err = -EINVAL;
		goto out;
	}
	if ((uint64_t)st.st_size > cap) {
		*ret_err = -EFBIG;
		goto out;
	}
	want = (size_t)st.st_size;
	if ((buf = malloc(want)) == NULL) {
		*ret_err = -ENOMEM;
		goto out;
	}
	while (got < want) {
		ssize_t r = read(fd, buf + got, want - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	c->st.files_read++;
	c->st.bytes_read += got;
	*ret_len = got;
	*ret_err = 0;
out:
	close(fd);
	if (*ret_err != 0) {
		free(buf);
		buf = NULL;
	}
	return buf;
}

typedef int (*state_parser)(const char *buf, size_t len, const char *id,
			    struct container_meta *out);

/* Read rel and parse it for id into out: 0, -ENOENT (not there, or not listed), -EINVAL. */
static int parse_state(struct container_cache *c, const char *rel, size_t cap, state_parser parse,
		       const char *id, struct container_meta *out)
{
	size_t len = 0;
	int err, rc;
	char *buf = read_state(c, rel, cap, &len, &err);

	if (buf == NULL) {
		if (err != -ENOENT)
			c->st.malformed++;
		return err == -ENOENT ? -ENOENT : -EINVAL;
	}
	rc = parse(buf, len, id, out);
	free(buf);
	if (rc == -EINVAL)
		c->st.malformed++;
	return rc;
}

static int from_docker(struct container_cache *c, const char *id, struct container_meta *out)
{
	char rel[256];

	snprintf(rel, sizeof(rel), DOCKER_DIR "%s/config.v2.json", id);
	return parse_state(c, rel, CONTAINER_CACHE_FILE_MAX, container_parse_docker, id, out);
}

static int from_storage(struct container_cache *c, const char *id, struct container_meta *out)
{
	return parse_state(c, STORAGE_DIR "containers.json", CONTAINER_CACHE_STORAGE_MAX,
			   container_parse_storage, id, out);
}

/* The config.json CRI-O (and podman) keep in the container's userdata directory. */
static int from_userdata(struct container_cache *c, const char *id, struct container_meta *out)
{
	char rel[256];
	int rc;

	snprintf(rel, sizeof(rel), STORAGE_DIR "%s/userdata/config.json", id);
	rc = parse_state(c, rel, CONTAINER_CACHE_FILE_MAX, container_parse_oci, id, out);
	if (rc != -ENOENT)
		return rc;
	snprintf(rel, sizeof(rel), STORAGE_RUN_DIR "%s/userdata/config.json", id);
	return parse_state(c, rel, CONTAINER_CACHE_FILE_MAX, container_parse_oci, id, out);
}

/* Whether a directory entry can be a containerd namespace (and so part of a path). */
static bool namespace_name(const char *s)
{
	size_t n = strnlen(s, 65);

	if (n == 0 || n > 64 || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return false;
	return true;
}

/* The bundle of a containerd task: each namespace's directory, up to CONTAINER_CACHE_NAMESPACES. */
static int from_containerd(struct container_cache *c, const char *id, struct container_meta *out)
{
	char path[PATH_MAX], rel[512];
	struct dirent *de;
	unsigned tried = 0;
	int rc = -ENOENT;
	DIR *d;

	if ((size_t)snprintf(path, sizeof(path), "%s" CONTAINERD_TASKS, c->root) >= sizeof(path) ||
	    (d = opendir(path)) == NULL)
		return -ENOENT;
	while (rc == -ENOENT && tried < CONTAINER_CACHE_NAMESPACES && (de = readdir(d)) != NULL) {
		if (!namespace_name(de->d_name))
			continue;
		tried++;
		snprintf(rel, sizeof(rel), CONTAINERD_TASKS "/%s/%s/config.json", de->d_name, id);
		rc = parse_state(c, rel, CONTAINER_CACHE_FILE_MAX, container_parse_oci, id, out);
		if (rc == 0 && out->runtime == CONTAINER_RT_UNKNOWN)
			out->runtime = CONTAINER_RT_CONTAINERD; /* ctr, and Docker's own tasks */
	}
	closedir(d);
	return rc;
}

enum source {
	SRC_DOCKER,
	SRC_STORAGE,
	SRC_USERDATA,
	SRC_CONTAINERD,
	SRC_COUNT,
};

/* Every source, the ones hint suggests first. */
static void source_order(enum container_runtime hint, enum source order[SRC_COUNT])
{
	static const enum source first[][2] = {
	    [CONTAINER_RT_UNKNOWN] = {SRC_CONTAINERD, SRC_USERDATA},
	    [CONTAINER_RT_DOCKER] = {SRC_DOCKER, SRC_CONTAINERD},
	    [CONTAINER_RT_PODMAN] = {SRC_STORAGE, SRC_USERDATA},
	    [CONTAINER_RT_CONTAINERD] = {SRC_CONTAINERD, SRC_CONTAINERD},
	    [CONTAINER_RT_CRIO] = {SRC_USERDATA, SRC_STORAGE},
	};
	bool taken[SRC_COUNT] = {false};
	size_t n = 0;

	for (size_t i = 0; i < 2; i++)
		if (!taken[first[hint][i]]) {
			taken[first[hint][i]] = true;
			order[n++] = first[hint][i];
		}
	for (int s = 0; s < SRC_COUNT; s++)
		if (!taken[s])
			order[n++] = (enum source)s;
}

/*
 * Look id up in every source until its name and image are both known; what
 * one source lacks another may say (podman's config.json says podman,
 * containers.json the image).  Returns 0 when any source knows the
 * container, -ENOENT when none does.
 */
static int lookup(struct container_cache *c, const char *id, enum container_runtime hint,
		  struct container_meta *out)
{
	enum source order[SRC_COUNT];
	bool known = false;

	memset(out, 0, sizeof(*out));
	memcpy(out->id, id, CONTAINER_ID_LEN);
	if (hint > CONTAINER_RT_CRIO)
		hint = CONTAINER_RT_UNKNOWN;
	source_order(hint, order);
	for (size_t i = 0; i < SRC_COUNT && (out->name[0] == '\0' || out->image[0] == '\0'); i++) {
		struct container_meta m;
		int rc = -ENOENT;

		switch (order[i]) {
		case SRC_DOCKER:
			rc = from_docker(c, id, &m);
			break;
		case SRC_STORAGE:
			rc = from_storage(c, id, &m);
			break;
		case SRC_USERDATA:
			rc = from_userdata(c, id, &m);
			break;
		case SRC_CONTAINERD:
			rc = from_containerd(c, id, &m);
			break;
		case SRC_COUNT:
			break;
		}
		if (rc != 0)
			continue;
		known = true;
		if (out->runtime == CONTAINER_RT_UNKNOWN)
			out->runtime = m.runtime;
		if (out->name[0] == '\0')
			memcpy(out->name, m.name, sizeof(out->name));
		if (out->image[0] == '\0')
			memcpy(out->image, m.image, sizeof(out->image));
	}
	return known ? 0 : -ENOENT;
}

/* ---- the cache ---- */

/* The hash of an id: its first 16 hex digits are random already. */
static uint32_t bucket_of(const struct container_cache *c, const char *id)
{
	uint64_t k = 0;

	for (int i = 0; i < 16; i++)
		k = k << 4 | (uint64_t)(id[i] <= '9' ? id[i] - '0' : id[i] - 'a' + 10);
	return (uint32_t)((k * 0x9e3779b97f4a7c15ull) >> 32) & (c->nbuckets - 1);
}

static void lru_unlink(struct container_cache *c, uint32_t i)
{
	struct container_cache_entry *e = &c->entries[i];

	if (e->prev != NIL)
		c->entries[e->prev].next = e->next;
	else
		c->head = e->next;
	if (e->next != NIL)
		c->entries[e->next].prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NIL;
}

static void lru_push(struct container_cache *c, uint32_t i)
{
	struct container_cache_entry *e = &c->entries[i];

	e->prev = NIL;
	e->next = c->head;
	if (c->head != NIL)
		c->entries[c->head].prev = i;
	else
		c->tail = i;
	c->head = i;
}

static void hash_unlink(struct container_cache *c, uint32_t i)
{
	uint32_t *at = &c->buckets[bucket_of(c, c->entries[i].meta.id)];

	while (*at != NIL && *at != i)
		at = &c->entries[*at].hnext;
	if (*at == i)
		*at = c->entries[i].hnext;
}

/* A slot for a new entry: unused, or the least recently used one (evicted). */
static uint32_t entry_alloc(struct container_cache *c)
{
	uint32_t i;

	if (c->used < c->max) {
		i = c->used++;
		c->st.entries++;
		return i;
	}
	i = c->tail;
	lru_unlink(c, i);
	hash_unlink(c, i);
	if (c->entries[i].state != ENTRY_MISSING)
		c->gen++; /* a container that had an answer has none now */
	c->st.evicted++;
	return i;
}

/* Look e's container up (again) and set its state and next retry. */
static void entry_resolve(struct container_cache *c, struct container_cache_entry *e,
			  const char *cgroup, uint64_t now_ms)
{
	struct container_meta m;
	uint8_t before = e->state;
	int rc;

	if (c->flags & CONTAINER_CACHE_NO_IO)
		rc = shared_find(e->meta.id, &m) ? 0 : -ENOENT;
	else
		rc = lookup(c, e->meta.id, container_runtime_hint(cgroup), &m);
	if (rc == 0) {
		c->st.found++;
		if (!(c->flags & CONTAINER_CACHE_NO_IO) && shared_publish(&m))
			c->st.shared_evicted++;
		if (before == ENTRY_MISSING || memcmp(&m, &e->meta, sizeof(m)) != 0)
			c->gen++;
		e->meta = m;
		e->state = m.image[0] != '\0' ? ENTRY_FOUND : ENTRY_PARTIAL;
	} else {
		c->st.missed++;
		if (before != ENTRY_MISSING)
			c->gen++;
		e->state = ENTRY_MISSING;
	}
	if (e->state == ENTRY_FOUND)
		return;
	/* Asking the shared table costs no I/O: at the next lookup again. */
	if (c->flags & CONTAINER_CACHE_NO_IO) {
		e->retry_ms = now_ms;
		return;
	}
	/* Not (fully) known: again later, less and less often. */
	e->backoff_ms = e->backoff_ms == 0 ? CONTAINER_CACHE_RETRY_MIN_MS
			: e->backoff_ms >= CONTAINER_CACHE_RETRY_MAX_MS / 2
			    ? CONTAINER_CACHE_RETRY_MAX_MS
			    : e->backoff_ms * 2;
	e->retry_ms = now_ms + e->backoff_ms;
}

const struct container_meta *container_cache_get(struct container_cache *c, const char *id,
						 const char *cgroup, uint64_t now_ms)
{
	struct container_cache_entry *e;
	uint32_t b, i;

	if (c->entries == NULL || !container_id_valid(id))
		return NULL;
	b = bucket_of(c, id);
	for (i = c->buckets[b]; i != NIL; i = c->entries[i].hnext)
		if (memcmp(c->entries[i].meta.id, id, CONTAINER_ID_LEN) == 0)
			break;
	if (i == NIL) {
		i = entry_alloc(c);
		e = &c->entries[i];
		memset(e, 0, sizeof(*e));
		memcpy(e->meta.id, id, CONTAINER_ID_LEN);
		e->hnext = c->buckets[b];
		c->buckets[b] = i;
		lru_push(c, i);
		entry_resolve(c, e, cgroup, now_ms);
	} else {
		e = &c->entries[i];
		lru_unlink(c, i);
		lru_push(c, i);
		if (e->state != ENTRY_FOUND && now_ms >= e->retry_ms)
			entry_resolve(c, e, cgroup, now_ms);
	}
	return e->state != ENTRY_MISSING ? &e->meta : NULL;
}

uint64_t container_cache_generation(const struct container_cache *c)
{
	return c->gen;
}

void container_cache_stats(const struct container_cache *c, struct container_cache_stats *ret_stats)
{
	*ret_stats = c->st;
}
