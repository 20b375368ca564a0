/* SPDX-License-Identifier: Apache-2.0 */
#include "process/cgcache.h"

#include <stddef.h>

_Static_assert(CGCACHE_SLOTS == 256, "cgcache_slot_of takes the hash's top 8 bits");

static size_t cgcache_slot_of(uint64_t id)
{
	return (size_t)((id * 0x9e3779b97f4a7c15ull) >> 56);
}

void cgcache_fini(struct cgcache *c, struct intern *strs)
{
	for (size_t i = 0; i < CGCACHE_SLOTS; i++) {
		intern_put(strs, c->slots[i].path);
		intern_put(strs, c->slots[i].cid);
		c->slots[i] = (struct cgcache_slot){0};
	}
}

void cgcache_put(struct cgcache *c, struct intern *strs, uint64_t id, const char *path,
		 const char *cid)
{
	struct cgcache_slot *s = &c->slots[cgcache_slot_of(id)];

	intern_put(strs, s->path);
	intern_put(strs, s->cid);
	s->id = id;
	s->path = intern_ref(path);
	s->cid = intern_ref(cid);
}

const struct cgcache_slot *cgcache_get(const struct cgcache *c, uint64_t id)
{
	const struct cgcache_slot *s = &c->slots[cgcache_slot_of(id)];

	return s->path != NULL && s->id == id ? s : NULL;
}
