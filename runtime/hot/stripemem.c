/* stripemem — see stripemem.h. */
#include "stripemem.h"
#include "rawsys.h"
#include "shm.h"

#include <errno.h>
#include <sys/mman.h>

char *_Atomic sp_stripe_base[SP_N_SLOTS];

/* Set at init: the chunks are the launcher's file's (shared >= 0), from
 * chunk0_off on. */
static int shared = -1;
static uint64_t chunk0_off;

static uint64_t chunk_off(int s)
{
	return chunk0_off + (uint64_t)s * SP_CHUNK_BYTES;
}

int sp_stripemem_init(void)
{
	if (sp_stripe(SP_SHARED_SLOT))
		return 0;
	shared = sp_shm_stripes(&chunk0_off);
	return sp_stripemem_map(SP_SHARED_SLOT) ? 0 : -ENOMEM;
}

char *sp_stripemem_map(int s)
{
	char *have = sp_stripe(s);
	if (have)
		return have;
	char *p = sp_shm_map_raw(shared, chunk_off(s), SP_CHUNK_BYTES, NULL);
	if (p == MAP_FAILED)
		return NULL;
	/* a claim maps only the stripe it took (its thread alone), but a
	 * signal's nested claim may take another and give it back: whoever
	 * publishes first, the other's mapping goes */
	char *want = p + SP_PART_BYTES;
	if (atomic_compare_exchange_strong_explicit(&sp_stripe_base[s], &have, want, memory_order_acq_rel,
						    memory_order_acquire))
		return want;
	sp_sys_munmap(p, SP_CHUNK_BYTES);
	return have;
}

bool sp_stripemem_file(uint64_t *off)
{
	*off = chunk0_off;
	return shared >= 0;
}

void sp_stripemem_atfork_child(int self)
{
	/* the child's own section (sp_shm_atfork_child made it), or private
	 * memory where it has none; never the parent's pages.  Only its one
	 * thread's stripe and the shared one are kept (mapped anew, zero):
	 * the others' threads stayed in the parent, and a later claim maps
	 * what it takes. */
	shared = sp_shm_stripes(&chunk0_off);
	for (int s = 0; s < SP_N_SLOTS; s++) {
		char *c = sp_stripe(s);
		if (!c)
			continue;
		void *at = sp_stripe_parts(c);
		if (s != self && s != SP_SHARED_SLOT) {
			atomic_store_explicit(&sp_stripe_base[s], NULL, memory_order_relaxed);
			sp_sys_munmap(at, SP_CHUNK_BYTES);
		} else if (sp_shm_map_raw(shared, chunk_off(s), SP_CHUNK_BYTES, at) == MAP_FAILED)
			sp_shm_map_raw(-1, 0, SP_CHUNK_BYTES, at);   /* private at a fixed address: cannot fail */
	}
}
