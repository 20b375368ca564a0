/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_DEFENDER_CONTAINER_CACHE_H
#define VIGIL_DEFENDER_CONTAINER_CACHE_H

/*
 * Container id -> the container's runtime, name and image, read from the
 * runtimes' on-disk state (container_state.h says which files) the first
 * time a container is seen, then cached.
 *
 * Where it looks, under root ("/" but in tests):
 *   Docker      var/lib/docker/containers/<id>/config.v2.json
 *   podman      var/lib/containers/storage/overlay-containers/containers.json
 *   CRI-O       var/lib/containers/storage/overlay-containers/<id>/userdata/config.json,
 *               else run/containers/storage/... (the same file), then containers.json
 *   containerd  run/containerd/io.containerd.runtime.v2.task/<namespace>/<id>/config.json
 * in an order the cgroup path suggests (container_runtime_hint), every
 * source in the end: a container whose cgroup does not say (Kubernetes with
 * the cgroupfs driver) is still found.  Rootless podman and runtimes moved
 * to other roots (data-root, graphroot) are not: their containers are known
 * by id only.
 *
 * Cost on the caller's thread: a hit is a hash probe.  A miss reads at most
 * a few files, each opened without following links or blocking (a FIFO
 * planted there cannot stall the reader), refused unless a regular file,
 * and read only up to its cap (CONTAINER_CACHE_FILE_MAX, containers.json
 * CONTAINER_CACHE_STORAGE_MAX: it lists every container of the host).  A
 * container that is found nowhere, or whose files are malformed, is
 * remembered as a miss and looked up again after 1 s, then 2 s, 4 s, ... up
 * to a minute: never cached for good as unknown, never read on every event.
 *
 * Memory: bounded.  At most max entries (misses included); a new container
 * in a full cache evicts the least recently used one (counted).  A
 * container's name is read once: a renamed container keeps its old name
 * here until its entry is evicted.
 *
 * Threads that must not read files.  The enforcement listener answers the
 * kernel for held opens, and must never open a file itself (one under a
 * permission mark would wait for its own answer).  Its cache is made with
 * CONTAINER_CACHE_NO_IO: it reads nothing, and answers from what the caches
 * that do read files found, which they publish to one table shared by the
 * whole process (CONTAINER_CACHE_SHARED_MAX entries, the oldest replaced
 * first and counted in the publisher's shared_evicted, under its own mutex;
 * written only when a container is found, so rarely).  A container no
 * reader has looked up yet is unknown to it; it asks the table again at its
 * next lookup.
 *
 * Ownership: the cache owns its entries; a returned struct container_meta
 * stays valid until the next container_cache_get or container_cache_fini.
 * Threading: one thread owns a cache (the process tree's, or the
 * enforcement listener's own) and nothing in it locks; only the shared
 * table does.
 */

#include <stdbool.h>
#include <stdint.h>

#include "process/container_state.h"

#define CONTAINER_CACHE_MAX_DEFAULT  512
#define CONTAINER_CACHE_MAX_LIMIT    65536		 /* the largest max taken */
#define CONTAINER_CACHE_FILE_MAX     (2u * 1024 * 1024)	 /* one container's config file */
#define CONTAINER_CACHE_STORAGE_MAX  (16u * 1024 * 1024) /* containers.json, every container */
#define CONTAINER_CACHE_NAMESPACES   32			 /* containerd namespaces tried */
#define CONTAINER_CACHE_RETRY_MIN_MS 1000
#define CONTAINER_CACHE_RETRY_MAX_MS 60000
#define CONTAINER_CACHE_SHARED_MAX   512 /* the process's table of found containers */

/* container_cache_init flags */
#define CONTAINER_CACHE_NO_IO 1u /* read no file: answer from the shared table only */

struct container_cache_stats {
	uint64_t entries;	 /* containers cached (found and missed) */
	uint64_t found;		 /* lookups that read a container's metadata */
	uint64_t missed;	 /* lookups that found it nowhere (retried later) */
	uint64_t malformed;	 /* state files refused: not JSON of the shape, or over the cap */
	uint64_t evicted;	 /* entries dropped to make room */
	uint64_t shared_evicted; /* entries this cache's finds pushed out of the shared table */
	uint64_t files_read;	 /* state files read */
	uint64_t bytes_read;	 /* their bytes */
};

struct container_cache_entry;

struct container_cache {
	char *root; /* with a trailing '/'; owned */
	uint32_t max;
	unsigned flags;			       /* CONTAINER_CACHE_* */
	struct container_cache_entry *entries; /* max of them */
	uint32_t *buckets;		       /* nbuckets chain heads */
	uint32_t nbuckets;
	uint32_t used, head, tail; /* high-water mark; LRU ends, most recent first */
	uint64_t gen;		   /* bumped whenever an entry's answer changes */
	struct container_cache_stats st;
	uint64_t *bytes; /* the owner's heap counter (see memacct.h), not owned */
	uint64_t heap;	 /* the counter when the owner has none */
};

/*
 * Set up an empty cache of at most max entries (0: CONTAINER_CACHE_MAX_DEFAULT;
 * at most CONTAINER_CACHE_MAX_LIMIT) reading under root (NULL or "": "/";
 * copied), with flags (CONTAINER_CACHE_NO_IO or 0), counting its heap in
 * *bytes (may be NULL).  Returns 0 or -ENOMEM; container_cache_fini is safe
 * after either.
 */
int container_cache_init(struct container_cache *c, const char *root, uint32_t max, unsigned flags,
			 uint64_t *bytes);

/* Free everything; accepts a zeroed *c. */
void container_cache_fini(struct container_cache *c);

/*
 * The metadata of container id (64 lowercase hex) whose cgroup path is
 * cgroup (a hint, may be NULL), at now_ms (a monotonic clock, for the
 * retries): NULL for an id that is not one, or while the container is not
 * found (looked up again once its retry time has come).  A found container
 * may still have an empty name or image (its runtime did not record one).
 */
const struct container_meta *container_cache_get(struct container_cache *c, const char *id,
						 const char *cgroup, uint64_t now_ms);

/*
 * A number that changes whenever a lookup's answer changes (a container
 * found, a found one evicted): what was derived from earlier answers is
 * still right while it stays the same.
 */
uint64_t container_cache_generation(const struct container_cache *c);

void container_cache_stats(const struct container_cache *c,
			   struct container_cache_stats *ret_stats);

#endif
