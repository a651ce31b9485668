/* shmchunks — see shmchunks.h. */
#include "shmchunks.h"
#include "rawsys.h"

#include <stdatomic.h>
#include <stddef.h>

#define PAGE 4096u

/* Elements before chunk K. */
static uint64_t chunk_start(const struct sp_chunks *c, unsigned k)
{
	return (uint64_t)c->first * ((1ull << k) - 1);
}

/* The chunk that holds element I. */
static unsigned chunk_of(const struct sp_chunks *c, uint32_t i)
{
	return (unsigned)(63 - __builtin_clzll((uint64_t)(i / c->first) + 1));
}

/* Chunk K's mapping: from the page holding its first element (*LO, a file
 * offset) for *LEN bytes, to the end of the page holding its last. */
static void window(const struct sp_chunks *c, unsigned k, uint64_t *lo, uint64_t *len)
{
	uint64_t end = chunk_start(c, k + 1);
	if (end > c->cap)
		end = c->cap;
	*lo = (c->off + chunk_start(c, k) * c->elem) & ~(uint64_t)(PAGE - 1);
	*len = ((c->off + end * c->elem + PAGE - 1) & ~(uint64_t)(PAGE - 1)) - *lo;
}

static void *element(const struct sp_chunks *c, unsigned k, char *map, uint32_t i)
{
	uint64_t lo, len;
	window(c, k, &lo, &len);
	return map + (c->off + (uint64_t)i * c->elem - lo);
}

void sp_chunks_init(struct sp_chunks *c, uint64_t off, uint32_t elem, uint32_t cap, uint32_t first)
{
	c->off = off;
	c->elem = elem;
	c->cap = cap;
	if (first == 0)
		first = 1;
	while (chunk_start(&(struct sp_chunks){ .first = first }, SP_CHUNKS_MAX) < cap)
		first *= 2;
	c->first = first;
	for (unsigned k = 0; k < SP_CHUNKS_MAX; k++)
		atomic_store_explicit(&c->map[k], NULL, memory_order_relaxed);
}

void *sp_chunks_at(const struct sp_chunks *c, uint32_t i)
{
	if (i >= c->cap)
		return NULL;
	unsigned k = chunk_of(c, i);
	char *map = atomic_load_explicit(&c->map[k], memory_order_acquire);
	return map ? element(c, k, map, i) : NULL;
}

void *sp_chunks_take(struct sp_chunks *c, uint32_t i, int fd, int *err)
{
	*err = 0;
	if (i >= c->cap)
		return NULL;
	void *e = sp_chunks_at(c, i);
	if (e)
		return e;
	unsigned k = chunk_of(c, i);
	uint64_t lo, len;
	window(c, k, &lo, &len);
	long rc = sp_syscall6(SYS_mmap, 0, (long)len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (long)lo);
	if (sp_mapped(rc) == MAP_FAILED) {
		*err = (int)rc;
		return NULL;
	}
	char *map = (char *)rc;
	/* writers hold the registry lock; should two race, one mapping stays */
	char *none = NULL;
	if (!atomic_compare_exchange_strong_explicit(&c->map[k], &none, map, memory_order_acq_rel,
						     memory_order_acquire)) {
		sp_sys_munmap(map, len);
		map = none;
	}
	return element(c, k, map, i);
}

void sp_chunks_unmap(struct sp_chunks *c)
{
	for (unsigned k = 0; k < SP_CHUNKS_MAX; k++) {
		char *map = atomic_exchange(&c->map[k], NULL);
		if (map) {
			uint64_t lo, len;
			window(c, k, &lo, &len);
			sp_sys_munmap(map, len);
		}
	}
}
