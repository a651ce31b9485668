/* bt_parts — see bt_parts.h. */
#include "bt_parts.h"
#include "bt_jit.h"
#include "bt_jitplan.h"
#include "bt_shard.h"
#include "btpartmem.h"
#include "log.h"
#include "shm.h"
#include "stripes.h"
#include "tstate.h"

/* A keyed map's parts, n * part bytes at most (one part is every slot's
 * words: 64 KiB for a count, 4 MiB for a hist): a count gets a part for
 * every stripe, a hist for the first 15.  The parts are mapped one by one,
 * when a thread on the stripe first updates the map (btpartmem.h), so
 * this bound is no longer what a map costs at attach (nothing) but the
 * most its parts can take once every part is in use: the address space
 * next to the stripes' about 6.5 MiB a thread (a program under RLIMIT_AS
 * must keep what it has unprobed, issue 13), and, under the launcher, the
 * range of its shared file reserved at attach (the launcher reads part i
 * at a fixed stride from part 0, cli/btparts.c, so the range is reserved
 * whole; it costs nothing until written, but it is the whole run's
 * file's, about 1 GiB a process, shm.h).  The threads on stripes past the
 * parts update the table, atomically, and nothing is lost. */
#define KEYED_BUDGET ((size_t)64 << 20)

static void note_keyed(const struct bt_map *m, uint64_t off)
{
	if (off && m->shared_at >= 0)
		sp_shm_bt_parts((uint32_t)m->shared_at, off, m->shards->stride, (uint32_t)m->shards->n, true);
}

/* Where the N parts of BYTES go: 0 with *OFF (0: private memory; else
 * the launcher's file range), or -1: under the launcher without room in
 * its file (parts it could not read: the table only). */
static int place(size_t bytes, uint64_t *off)
{
	*off = 0;
	return !sp_shm_active() || sp_shm_bt_alloc(bytes, off) == 0 ? 0 : -1;
}

void sp_bt_parts_give(struct bt_program *p)
{
	for (struct bt_map *m = p->maps; m; m = m->next) {
		if (m->shards || m->nkeys <= 0 || !bt_jit_map_shardable(p, m))
			continue;
		size_t part = bt_shard_part_bytes(m, true);
		size_t n = KEYED_BUDGET / part < SP_EXCL_SLOTS ? KEYED_BUDGET / part : SP_EXCL_SLOTS;
		uint64_t off;
		if (!n || place(n * part, &off) != 0) {
			sp_debug("bpftrace map %s: one table (%s)", m->name,
				 n ? "no room in the shared file for per-thread parts" : "its part is too large");
			continue;
		}
		if (bt_shards_attach_lazy(m, part, (int)n, off) != 0) {
			sp_debug("bpftrace map %s: one table (no memory for per-thread parts)", m->name);
			continue;
		}
		m->shards->n_used = sp_tstate_slots_used;
		note_keyed(m, off);
		sp_debug("bpftrace map %s: per-thread parts for %zu threads, each mapped at its first update%s",
			 m->name, n, off ? ", in the launcher's file" : "");
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
		if (!s->keyed)   /* in the stripes' memory, mapped anew, zero (stripemem.h) */
			continue;
		/* the parent's parts go (never written: its file's pages under
		 * the launcher), the child's are mapped at their first update
		 * from its own range of the file, or private */
		uint64_t off;
		bool placed = place((size_t)s->n * s->stride, &off) == 0;
		/* not placed: parts the launcher could not read, the table only */
		sp_btpart_atfork_child(s, off, placed);
		if (placed)
			note_keyed(m, off);
	}
	sp_bt_parts_note(p);
}
