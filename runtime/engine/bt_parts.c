/* bt_parts — see bt_parts.h. */
#include "bt_parts.h"
#include "bt_jit.h"
#include "bt_jitplan.h"
#include "bt_shard.h"
#include "log.h"
#include "shm.h"
#include "stripes.h"
#include "tstate.h"

#include <sys/mman.h>

/* A keyed map's parts, bytes at most (one part is every slot's words, 64
 * KiB for a count, 4 MiB for a hist): the threads on stripes past them
 * update the table, atomically, and nothing is lost. */
#define KEYED_BUDGET ((size_t)64 << 20)

/* BYTES at AT (NULL: anywhere): the launcher's file when there is one,
 * else private zeroes (MAP_NORESERVE: touched pages only).  The address,
 * with *OFF the file offset (0: private), or NULL. */
static void *back(void *at, size_t bytes, uint64_t *off)
{
	*off = 0;
	if (!at) {
		at = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (at == MAP_FAILED)
			return NULL;
	}
	uint64_t o;
	if (sp_shm_active() && sp_shm_bt_alloc(bytes, &o) == 0 && sp_shm_map_file(o, bytes, at) == at) {
		*off = o;
		return at;
	}
	/* private (a fork child's replaces its parent's file pages) */
	return sp_shm_map_stripes(-1, 0, bytes, at) == at ? at : NULL;
}

static void note_keyed(const struct bt_map *m, uint64_t off)
{
	if (off && m->shared_at >= 0)
		sp_shm_bt_parts((uint32_t)m->shared_at, off, m->shards->stride, (uint32_t)m->shards->n, true);
}

void sp_bt_parts_give(struct bt_program *p)
{
	for (struct bt_map *m = p->maps; m; m = m->next) {
		if (m->shards || m->nkeys <= 0 || !bt_jit_map_shardable(p, m))
			continue;
		size_t part = bt_shard_part_bytes(m, true);
		size_t n = KEYED_BUDGET / part < SP_EXCL_SLOTS ? KEYED_BUDGET / part : SP_EXCL_SLOTS;
		uint64_t off;
		void *at = n ? back(NULL, n * part, &off) : NULL;
		if (!at || bt_shards_attach(m, at, part, (int)n, true) != 0) {
			if (at)
				munmap(at, n * part);
			sp_debug("bpftrace map %s: one table (no memory for per-thread parts)", m->name);
			continue;
		}
		m->shards->n_used = sp_tstate_slots_used;
		if (sp_shm_active() && !off) {   /* parts the launcher could not read: the table only */
			bt_shards_free(m);
			munmap(at, n * part);
			sp_debug("bpftrace map %s: one table (no room in the shared file for per-thread parts)", m->name);
			continue;
		}
		note_keyed(m, off);
		sp_debug("bpftrace map %s: per-thread parts for %zu threads%s", m->name, n,
			 off ? ", in the launcher's file" : "");
	}
}

void sp_bt_parts_note(struct bt_program *p)
{
	uint64_t off;
	for (struct bt_map *m = p->maps; m; m = m->next)
		if (m->shards && !m->shards->keyed && m->shared_at >= 0 && bt_jit_part_file(m, &off) == 0)
			sp_shm_bt_parts((uint32_t)m->shared_at, off, SP_CHUNK_BYTES, (uint32_t)m->shards->n, false);
	if (bt_jit_ran_file(p, &off) == 0)
		sp_shm_bt_ran_at(off);
}

void sp_bt_parts_atfork_child(struct bt_program *p)
{
	for (struct bt_map *m = p->maps; m; m = m->next) {
		struct bt_shards *s = m->shards;
		if (!s)
			continue;
		if (!s->keyed) {   /* in the stripes' memory, mapped anew (stripemem.h) */
			bt_shards_reset(m);
			continue;
		}
		uint64_t off;
		if (back(s->base, (size_t)s->n * s->stride, &off))
			note_keyed(m, off);
		else   /* cannot happen (a fixed private mapping): zeroes at least */
			bt_shards_reset(m);
	}
	sp_bt_parts_note(p);
}
