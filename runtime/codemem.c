/* codemem — see codemem.h. */
#include "codemem.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHUNK_SIZE  (64u << 10)
#define MAX_CHUNKS  4096
#define REACH       ((uintptr_t)2 << 30)          /* rel32: ±2 GiB */
#define SLACK       ((uintptr_t)CHUNK_SIZE * 2)   /* keep whole chunks inside the reach */
#define LOW_LIMIT   ((uintptr_t)1 << 16)          /* never below mmap_min_addr */
#define HIGH_LIMIT  ((uintptr_t)0x7ffffffff000)

struct chunk {
	uintptr_t base;
	size_t used;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct chunk chunks[MAX_CHUNKS];
static _Atomic size_t n_chunks;

static bool reaches(uintptr_t near, uintptr_t lo, uintptr_t hi)
{
	if (near == 0)
		return true;
	uintptr_t a = lo < near ? near - lo : lo - near;
	uintptr_t b = hi < near ? near - hi : hi - near;
	return a < REACH - SLACK && b < REACH - SLACK;
}

/* Map one chunk in the free gap closest to NEAR (anywhere if NEAR is 0). */
static uintptr_t map_chunk(uintptr_t near)
{
	if (near == 0) {
		void *p = mmap(NULL, CHUNK_SIZE, PROT_READ | PROT_EXEC,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		return p == MAP_FAILED ? 0 : (uintptr_t)p;
	}
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return 0;
	uintptr_t prev_end = LOW_LIMIT, best = 0, best_dist = UINTPTR_MAX;
	char line[512];
	for (;;) {
		unsigned long lo = HIGH_LIMIT, hi = HIGH_LIMIT;
		bool more = fgets(line, sizeof(line), f) != NULL;
		if (more && sscanf(line, "%lx-%lx", &lo, &hi) != 2)
			continue;
		if (lo > HIGH_LIMIT)
			lo = HIGH_LIMIT;
		/* the gap [prev_end, lo): a candidate at each end, nearest to NEAR */
		if (lo > prev_end && lo - prev_end >= CHUNK_SIZE) {
			uintptr_t cand[2] = { prev_end, lo - CHUNK_SIZE };
			uintptr_t at = near & ~(uintptr_t)0xfff;   /* NEAR itself, page-aligned */
			if (at >= prev_end && at + CHUNK_SIZE <= lo)
				cand[0] = at;
			for (int i = 0; i < 2; i++) {
				uintptr_t c = cand[i];
				uintptr_t d = c < near ? near - c : c - near;
				if (reaches(near, c, c + CHUNK_SIZE) && d < best_dist) {
					best = c;
					best_dist = d;
				}
			}
		}
		if (!more)
			break;
		if (hi > prev_end)
			prev_end = hi;
	}
	fclose(f);
	if (!best)
		return 0;
	void *p = mmap((void *)best, CHUNK_SIZE, PROT_READ | PROT_EXEC,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == MAP_FAILED)
		return 0;
	if ((uintptr_t)p != best) {   /* old kernels ignore MAP_FIXED_NOREPLACE */
		munmap(p, CHUNK_SIZE);
		return 0;
	}
	return best;
}

uintptr_t sp_codemem_alloc(uintptr_t near, size_t size)
{
	size = (size + 15) & ~(size_t)15;
	if (size == 0 || size > CHUNK_SIZE)
		return 0;
	uintptr_t out = 0;
	pthread_mutex_lock(&lock);
	size_t n = atomic_load(&n_chunks);
	for (size_t i = 0; i < n; i++) {
		struct chunk *c = &chunks[i];
		if (c->used + size <= CHUNK_SIZE && reaches(near, c->base, c->base + CHUNK_SIZE)) {
			out = c->base + c->used;
			c->used += size;
			goto done;
		}
	}
	if (n == MAX_CHUNKS)
		goto done;
	for (int attempt = 0; attempt < 3 && !out; attempt++) {
		uintptr_t base = map_chunk(near);
		if (!base)
			continue;
		chunks[n] = (struct chunk){ .base = base, .used = size };
		atomic_store(&n_chunks, n + 1);
		out = base;
	}
done:
	pthread_mutex_unlock(&lock);
	return out;
}

void sp_codemem_trim(uintptr_t slot, size_t size, size_t used)
{
	size = (size + 15) & ~(size_t)15;
	used = (used + 15) & ~(size_t)15;
	pthread_mutex_lock(&lock);
	size_t n = atomic_load(&n_chunks);
	for (size_t i = 0; i < n; i++) {
		struct chunk *c = &chunks[i];
		if (used < size && c->base + c->used == slot + size) {
			c->used -= size - used;
			break;
		}
	}
	pthread_mutex_unlock(&lock);
}

int sp_codemem_owns(uintptr_t addr)
{
	size_t n = atomic_load(&n_chunks);
	for (size_t i = 0; i < n; i++)
		if (addr >= chunks[i].base && addr < chunks[i].base + CHUNK_SIZE)
			return 1;
	return 0;
}
