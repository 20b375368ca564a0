/* SPDX-License-Identifier: Apache-2.0 */
#include "process/pidmap.h"

#include <errno.h>
#include <string.h>

#include "process/memacct.h"

/* Fibonacci hashing: the product's high half mixes every bit of the pid. */
static uint32_t pid_hash(uint32_t pid, uint32_t mask)
{
	return (uint32_t)(((uint64_t)pid * 0x9e3779b97f4a7c15ull) >> 32) & mask;
}

int pidmap_init(struct pidmap *m, uint32_t max_pids, uint64_t *bytes)
{
	memset(m, 0, sizeof(*m));
	m->bytes = bytes;
	m->nslots_max = PIDMAP_MIN;
	while (m->nslots_max < 2ull * max_pids && m->nslots_max < (1u << 31))
		m->nslots_max *= 2;
	m->slots = memacct_zalloc(bytes, PIDMAP_MIN * sizeof(*m->slots));
	if (m->slots == NULL)
		return -ENOMEM;
	m->nslots = PIDMAP_MIN;
	return 0;
}

void pidmap_fini(struct pidmap *m)
{
	memacct_free(m->bytes, m->slots, m->nslots * sizeof(*m->slots));
	m->slots = NULL;
	m->nslots = m->count = 0;
}

uint32_t pidmap_find(const struct pidmap *m, uint32_t pid)
{
	uint32_t mask = m->nslots - 1;

	for (uint32_t i = pid_hash(pid, mask);; i = (i + 1) & mask) {
		if (m->slots[i].pid == pid)
			return m->slots[i].idx;
		if (m->slots[i].pid == 0)
			return PIDMAP_NONE;
	}
}

static void slots_put(struct pidmap_slot *slots, uint32_t mask, uint32_t pid, uint32_t idx)
{
	uint32_t i = pid_hash(pid, mask);

	while (slots[i].pid != 0)
		i = (i + 1) & mask;
	slots[i].pid = pid;
	slots[i].idx = idx;
}

int pidmap_insert(struct pidmap *m, uint32_t pid, uint32_t idx)
{
	if ((m->count + 1) * 2 > m->nslots && m->nslots < m->nslots_max) {
		uint32_t n = m->nslots * 2;
		struct pidmap_slot *s = memacct_zalloc(m->bytes, n * sizeof(*s));

		if (s != NULL) {
			for (uint32_t i = 0; i < m->nslots; i++)
				if (m->slots[i].pid != 0)
					slots_put(s, n - 1, m->slots[i].pid, m->slots[i].idx);
			memacct_free(m->bytes, m->slots, m->nslots * sizeof(*s));
			m->slots = s;
			m->nslots = n;
		}
	}
	if (m->count + 1 >= m->nslots)
		return -ENOMEM; /* could not grow; keep one slot empty so probes end */
	slots_put(m->slots, m->nslots - 1, pid, idx);
	m->count++;
	return 0;
}

void pidmap_remove(struct pidmap *m, uint32_t pid)
{
	uint32_t mask = m->nslots - 1, i, j;

	for (i = pid_hash(pid, mask); m->slots[i].pid != pid; i = (i + 1) & mask)
		if (m->slots[i].pid == 0)
			return;
	/* Backward shift: move later members of the run into the hole when their home allows. */
	for (j = (i + 1) & mask; m->slots[j].pid != 0; j = (j + 1) & mask) {
		uint32_t home = pid_hash(m->slots[j].pid, mask);

		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->slots[i].pid = 0;
	m->count--;
}
