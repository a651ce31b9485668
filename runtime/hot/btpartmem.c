/* btpartmem — see btpartmem.h. */
#include "btpartmem.h"
#include "rawsys.h"
#include "shm.h"

#include <stdatomic.h>
#include <sys/mman.h>

unsigned char *sp_btpart(struct bt_shards *s, int i)
{
	if (!s->parts)
		return bt_shard_part(s, i);
	unsigned char *have = atomic_load_explicit(&s->parts[i], memory_order_acquire);
	if (!have) {
		bool file = s->file_off != 0;
		void *p = sp_shm_map_raw(file ? 0 : -1, file ? s->file_off + (uint64_t)i * s->stride : 0, s->stride,
					 NULL);
		unsigned char *want = p == MAP_FAILED ? BT_PART_REFUSED : p;
		/* whoever publishes first (a signal's hit on this stripe may
		 * have), the other's mapping goes */
		if (atomic_compare_exchange_strong_explicit(&s->parts[i], &have, want, memory_order_acq_rel,
							    memory_order_acquire))
			have = want;
		else if (p != MAP_FAILED)
			sp_sys_munmap(p, s->stride);
	}
	return have == BT_PART_REFUSED ? NULL : have;
}

void sp_btpart_atfork_child(struct bt_shards *s, uint64_t file_off, bool keep)
{
	if (!s->parts)
		return;
	/* no parts meanwhile: a signal's hit updates the table (the child's
	 * already), never a parent's part about to go */
	int n = s->n;
	s->n = 0;
	atomic_signal_fence(memory_order_seq_cst);
	for (int i = 0; i < n; i++) {
		unsigned char *a = atomic_exchange_explicit(&s->parts[i], NULL, memory_order_acq_rel);
		if (a && a != BT_PART_REFUSED)
			sp_sys_munmap(a, s->stride);
	}
	if (!keep)
		return;
	s->file_off = file_off;
	atomic_signal_fence(memory_order_seq_cst);
	s->n = n;
}
