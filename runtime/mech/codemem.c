/* codemem — see codemem.h. */
#include "codemem.h"
#include "procread.h"
#include "heap.h"
#include "log.h"
#include "patch.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHUNK_SIZE  (64u << 10)
#define MAX_CHUNKS  4096
#define REACH       ((uintptr_t)2 << 30)          /* rel32: ±2 GiB */
#define SLACK       ((uintptr_t)CHUNK_SIZE * 2)   /* keep whole chunks inside the reach */
#define LOW_LIMIT   ((uintptr_t)1 << 16)          /* never below mmap_min_addr */
#define HIGH_LIMIT  ((uintptr_t)0x7ffffffff000)

/* Bytes of a chunk below its used mark that no slot took: what a fitted
 * allocation skipped to reach an acceptable address.  Later allocations
 * fill them first, so that trampolines stay packed. */
#define HOLES     16
#define HOLE_MIN  64
struct hole {
	uint32_t lo, hi;    /* [lo, hi) offsets in the chunk; hi 0: none */
};

struct chunk {
	uintptr_t base;
	size_t used;
	struct hole holes[HOLES];
	uint32_t widest;    /* the largest hole's size: a slot bigger is not looked for */
	bool open;          /* still read+write, not executable (sp_codemem_seal) */
	bool dead;          /* could not be sealed: its code never runs */
};

static size_t round16(size_t v)
{
	return (v + 15) & ~(size_t)15;
}

static void widest_again(struct chunk *c)
{
	c->widest = 0;
	for (int i = 0; i < HOLES; i++)
		if (c->holes[i].hi - c->holes[i].lo > c->widest)
			c->widest = c->holes[i].hi - c->holes[i].lo;
}

/* Record [LO, HI) of C as a hole (lost if too small, or if every entry
 * holds a bigger one). */
static void add_hole(struct chunk *c, size_t lo, size_t hi)
{
	lo = round16(lo);
	if (hi < lo + HOLE_MIN)
		return;
	struct hole *h = NULL;
	for (int i = 0; i < HOLES; i++)
		if (!h || c->holes[i].hi - c->holes[i].lo < h->hi - h->lo)
			h = &c->holes[i];   /* an empty one (0 bytes) first */
	if (h->hi - h->lo < hi - lo)
		*h = (struct hole){ (uint32_t)lo, (uint32_t)hi };
	widest_again(c);
}

/* Take [AT, AT+SIZE) (offsets) out of hole H, keeping what is left on
 * either side. */
static void take_from_hole(struct chunk *c, struct hole *h, size_t at, size_t size)
{
	size_t lo = h->lo, hi = h->hi;
	*h = (struct hole){ 0, 0 };
	widest_again(c);
	add_hole(c, round16(at + size), hi);
	add_hole(c, lo, at);
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct chunk chunks[MAX_CHUNKS];
static _Atomic size_t n_chunks;

/* A chunk close enough to NEAR for a plain slot to fill one of its holes:
 * a fitted allocation may have mapped it far away (coexist.h), and code
 * spread over distant pages runs slower (page walks). */
#define CLOSE ((uintptr_t)16 << 20)
static bool close_to(uintptr_t near, uintptr_t base)
{
	return near && (base < near ? near - base : base - near) < CLOSE;
}

static bool reaches(uintptr_t near, uintptr_t lo, uintptr_t hi)
{
	if (near == 0)
		return true;
	uintptr_t a = lo < near ? near - lo : lo - near;
	uintptr_t b = hi < near ? near - hi : hi - near;
	return a < REACH - SLACK && b < REACH - SLACK;
}

/* Call GAP(CTX, LO, HI) for each free gap of the address space between
 * LOW_LIMIT and HIGH_LIMIT wide enough for a chunk (/proc/self/maps, in
 * address order).  False when the maps cannot be read. */
/* The mappings as /proc/self/maps gave them, kept while the patcher's
 * hold lasts and nothing is written (sp_patch_epoch: one attach), with
 * the chunks mapped meanwhile added: reading the maps for each new chunk
 * was 67 reads (~10 % of attaching libc:*).  A mapping someone else made
 * meanwhile is not seen, but a chunk is never mapped over anything
 * (map_at): that chunk fails, the maps are read again. */
static struct {
	uint64_t epoch;          /* 0: not kept */
	uintptr_t (*r)[2];
	size_t n, cap;
} seen;

static bool seen_add(uintptr_t lo, uintptr_t hi)
{
	if (seen.n == seen.cap) {
		size_t cap = seen.cap ? seen.cap * 2 : 256;
		uintptr_t(*r)[2] = sp_realloc(seen.r, cap * sizeof(*r));
		if (!r)
			return false;
		seen.r = r;
		seen.cap = cap;
	}
	size_t i = seen.n;
	while (i > 0 && seen.r[i - 1][0] > lo) {   /* kept in address order */
		seen.r[i][0] = seen.r[i - 1][0];
		seen.r[i][1] = seen.r[i - 1][1];
		i--;
	}
	seen.r[i][0] = lo;
	seen.r[i][1] = hi;
	seen.n++;
	return true;
}

static bool read_maps(void)
{
	seen.epoch = 0;
	seen.n = 0;
	struct sp_lines f;   /* not stdio: its FILE would be on the program's heap */
	if (sp_lines_open(&f, "/proc/self/maps") != 0)
		return false;
	char line[512];
	bool ok = true;
	while (ok && sp_lines_next(&f, line, sizeof(line))) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2)
			ok = seen_add(lo, hi);
	}
	sp_lines_close(&f);
	if (ok)
		seen.epoch = sp_patch_epoch();
	return ok;
}

static bool each_gap(void (*gap)(void *ctx, uintptr_t lo, uintptr_t hi), void *ctx)
{
	uint64_t e = sp_patch_epoch();
	if (!(e && e == seen.epoch) && !read_maps())
		return false;
	uintptr_t prev_end = LOW_LIMIT;
	for (size_t i = 0;; i++) {
		bool more = i < seen.n;
		uintptr_t lo = more ? seen.r[i][0] : HIGH_LIMIT, hi = more ? seen.r[i][1] : HIGH_LIMIT;
		if (lo > HIGH_LIMIT)
			lo = HIGH_LIMIT;
		if (lo > prev_end && lo - prev_end >= CHUNK_SIZE)
			gap(ctx, prev_end, lo);
		if (!more)
			break;
		if (hi > prev_end)
			prev_end = hi;
	}
	return true;
}

/* A new chunk's protection: an open one is written with stores until it
 * is sealed. */
static int chunk_prot(bool open)
{
	return open ? PROT_READ | PROT_WRITE : PROT_READ | PROT_EXEC;
}

/* Map a chunk at BASE exactly (never over anything).  BASE or 0. */
static uintptr_t map_at(uintptr_t base, bool open)
{
	if (!base)
		return 0;
	void *p = mmap((void *)base, CHUNK_SIZE, chunk_prot(open),
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == MAP_FAILED) {
		seen.epoch = 0;   /* taken meanwhile: the maps are read again */
		return 0;
	}
	if ((uintptr_t)p != base) {   /* old kernels ignore MAP_FIXED_NOREPLACE */
		munmap(p, CHUNK_SIZE);
		seen.epoch = 0;
		return 0;
	}
	if (seen.epoch && !seen_add(base, base + CHUNK_SIZE))
		seen.epoch = 0;
	return base;
}

struct nearest {
	uintptr_t near, best, best_dist;
	size_t size;                       /* fitted: the allocation's size */
	const struct sp_codemem_fit *fit;  /* NULL: a plain chunk */
	uintptr_t best_e;                  /* fitted: its address */
};

/* In the gap [LO, HI): the chunk nearest N->near, or (fitted) the chunk
 * holding the acceptable address nearest it from below and from above. */
static void nearest_in(void *v, uintptr_t lo, uintptr_t hi)
{
	struct nearest *n = v;
	uintptr_t near = n->near;
	if (!n->fit) {
		uintptr_t cand[2] = { lo, hi - CHUNK_SIZE };
		uintptr_t at = near & ~(uintptr_t)0xfff;   /* NEAR itself, page-aligned */
		if (at >= lo && at + CHUNK_SIZE <= hi)
			cand[0] = at;
		for (int i = 0; i < 2; i++) {
			uintptr_t c = cand[i];
			uintptr_t d = c < near ? near - c : c - near;
			if (reaches(near, c, c + CHUNK_SIZE) && d < n->best_dist) {
				n->best = c;
				n->best_dist = d;
			}
		}
		return;
	}
	uintptr_t ups = lo > near ? lo : near;
	uintptr_t downs = hi - n->size < near ? hi - n->size : near;
	uintptr_t cand[2] = { n->fit->next(ups, n->fit->ctx), n->fit->prev(downs, n->fit->ctx) };
	for (int i = 0; i < 2; i++) {
		uintptr_t e = cand[i];
		if (e == 0 || e == UINTPTR_MAX || e < lo || e + n->size > hi)
			continue;
		uintptr_t c = e & ~(uintptr_t)0xfff;
		if (c + CHUNK_SIZE > hi)
			c = (hi - CHUNK_SIZE) & ~(uintptr_t)0xfff;
		if (c < lo || e < c || e + n->size > c + CHUNK_SIZE)
			continue;
		uintptr_t d = e < near ? near - e : e - near;
		if (reaches(near, c, c + CHUNK_SIZE) && d < n->best_dist) {
			n->best = c;
			n->best_e = e;
			n->best_dist = d;
		}
	}
}

/* Map one chunk in the free gap closest to NEAR (anywhere if NEAR is 0). */
static uintptr_t map_chunk(uintptr_t near, bool open)
{
	if (near == 0) {
		void *p = mmap(NULL, CHUNK_SIZE, chunk_prot(open), MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		return p == MAP_FAILED ? 0 : (uintptr_t)p;
	}
	struct nearest n = { .near = near, .best_dist = UINTPTR_MAX };
	return each_gap(nearest_in, &n) ? map_at(n.best, open) : 0;
}

/* Once mprotect has refused to make an open chunk executable (MDWE's
 * PR_MDWE_REFUSE_EXEC_GAIN, a seccomp filter or an LSM), no chunk is
 * opened again: every slot is written through the patcher, as before. */
static bool open_refused;

/* C's code, where mprotect would not make it executable: a new read+exec
 * mapping in its place (allowed wherever a chunk could be mapped at all),
 * its bytes written back through the patcher (lock held).  Nothing runs
 * there yet: the chunk was open. */
static bool remap_sealed(struct chunk *c)
{
	size_t len = c->used;
	uint8_t *copy = sp_malloc(len ? len : 1);
	if (!copy)
		return false;
	memcpy(copy, (void *)c->base, len);
	void *p = mmap((void *)c->base, CHUNK_SIZE, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		       -1, 0);
	bool ok = p == (void *)c->base && (len == 0 || sp_patch_write(c->base, copy, len) == 0);
	sp_free(copy);
	return ok;
}

/* Make open chunk C read+exec (lock held).  False when it cannot be: the
 * chunk is then never used again (its slots' code cannot run, and
 * sp_codemem_runnable says so). */
static bool seal(struct chunk *c)
{
	if (!c->open)
		return true;
	if (mprotect((void *)c->base, CHUNK_SIZE, PROT_READ | PROT_EXEC) == 0) {
		c->open = false;
		return true;
	}
	open_refused = true;
	if (remap_sealed(c)) {
		c->open = false;
		return true;
	}
	/* never used again, and never stored into: it may be read+exec now */
	c->open = false;
	c->dead = true;
	c->used = CHUNK_SIZE;
	memset(c->holes, 0, sizeof(c->holes));
	c->widest = 0;
	return false;
}

/* Which chunks a pass of an allocation looks at.  An open request (code
 * sealed before it runs) fills open chunks, then a sealed chunk's room
 * (written through the patcher, as before), and only then maps a new open
 * chunk: a process attaching one probe at a time fills its chunks as
 * densely as before instead of mapping one per batch (MAX_CHUNKS).  A
 * plain request (code that may run as soon as it is written) takes sealed
 * chunks, maps a new one, and only then seals an open chunk to use it. */
enum pass { SEALED, OPEN, SEAL };

static bool in_pass(struct chunk *c, enum pass p)
{
	switch (p) {
	case SEALED: return !c->open;
	case OPEN: return c->open;
	default: return c->open && seal(c);
	}
}

/* A slot of SIZE (rounded) near NEAR in an existing chunk of pass P (lock
 * held), or 0. */
static uintptr_t take(uintptr_t near, size_t size, enum pass p)
{
	size_t n = atomic_load(&n_chunks);
	for (size_t i = 0; i < n; i++) {
		struct chunk *c = &chunks[i];
		if (c->widest < size || !close_to(near, c->base) || !in_pass(c, p))
			continue;
		for (int j = 0; j < HOLES; j++) {
			struct hole *h = &c->holes[j];
			if (h->hi && round16(h->lo) + size <= h->hi) {
				size_t at = round16(h->lo);
				take_from_hole(c, h, at, size);
				return c->base + at;
			}
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct chunk *c = &chunks[i];
		if (c->used + size <= CHUNK_SIZE && reaches(near, c->base, c->base + CHUNK_SIZE) && in_pass(c, p)) {
			c->used += size;
			return c->base + c->used - size;
		}
	}
	return 0;
}

/* A slot of SIZE at the start of a new chunk near NEAR (lock held), or 0. */
static uintptr_t take_new(uintptr_t near, size_t size, bool open)
{
	size_t n = atomic_load(&n_chunks);
	if (n == MAX_CHUNKS)
		return 0;
	for (int attempt = 0; attempt < 3; attempt++) {
		uintptr_t base = map_chunk(near, open);
		if (!base)
			continue;
		chunks[n] = (struct chunk){ .base = base, .used = size, .open = open };
		atomic_store(&n_chunks, n + 1);
		return base;
	}
	return 0;
}

static uintptr_t alloc(uintptr_t near, size_t size, bool open)
{
	size = (size + 15) & ~(size_t)15;
	if (size == 0 || size > CHUNK_SIZE)
		return 0;
	pthread_mutex_lock(&lock);
	open = open && !open_refused;
	uintptr_t out = take(near, size, open ? OPEN : SEALED);
	if (!out && open)
		out = take(near, size, SEALED);
	if (!out)
		out = take_new(near, size, open);
	if (!out && !open)
		out = take(near, size, SEAL);
	pthread_mutex_unlock(&lock);
	return out;
}

/* A chunk for an allocation FIT accepts, in the free gap that lets it be
 * closest to NEAR: *ENTRY gets the address, the chunk's base is returned
 * (0: none). */
static uintptr_t map_chunk_fit(uintptr_t near, size_t size, const struct sp_codemem_fit *fit,
			       uintptr_t *entry, bool open)
{
	struct nearest n = { .near = near, .best_dist = UINTPTR_MAX, .size = size, .fit = fit };
	if (!each_gap(nearest_in, &n) || !map_at(n.best, open))
		return 0;
	*entry = n.best_e;
	return n.best;
}

/* As take, for an address FIT accepts. */
static uintptr_t take_fit(uintptr_t near, size_t size, const struct sp_codemem_fit *fit, enum pass p)
{
	size_t n = atomic_load(&n_chunks);
	for (size_t i = 0; i < n; i++) {
		struct chunk *c = &chunks[i];
		if (c->widest < size || !reaches(near, c->base, c->base + CHUNK_SIZE) || !in_pass(c, p))
			continue;
		for (int j = 0; j < HOLES; j++) {
			struct hole *h = &c->holes[j];
			/* too small for SIZE wherever FIT puts it: not asked
			 * (16 holes of every chunk in reach, per trampoline) */
			if (h->hi < h->lo + size)
				continue;
			uintptr_t e = fit->next(c->base + h->lo, fit->ctx);
			if (e != UINTPTR_MAX && e >= c->base + h->lo && e + size <= c->base + h->hi) {
				take_from_hole(c, h, e - c->base, size);
				return e;
			}
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct chunk *c = &chunks[i];
		if (c->used + size > CHUNK_SIZE || !reaches(near, c->base, c->base + CHUNK_SIZE) || !in_pass(c, p))
			continue;
		uintptr_t e = fit->next(c->base + c->used, fit->ctx);
		if (e != UINTPTR_MAX && e >= c->base + c->used && e + size <= c->base + CHUNK_SIZE) {
			add_hole(c, c->used, e - c->base);
			c->used = round16(e + size - c->base);
			return e;
		}
	}
	return 0;
}

/* As take_new, for an address FIT accepts. */
static uintptr_t take_new_fit(uintptr_t near, size_t size, const struct sp_codemem_fit *fit, bool open)
{
	size_t n = atomic_load(&n_chunks);
	if (n == MAX_CHUNKS)
		return 0;
	for (int attempt = 0; attempt < 3; attempt++) {
		uintptr_t e = 0, base = map_chunk_fit(near, size, fit, &e, open);
		if (!base)
			continue;
		chunks[n] = (struct chunk){ .base = base, .used = round16(e + size - base), .open = open };
		add_hole(&chunks[n], 0, e - base);
		atomic_store(&n_chunks, n + 1);
		return e;
	}
	return 0;
}

static uintptr_t alloc_fit(uintptr_t near, size_t size, const struct sp_codemem_fit *fit, bool open)
{
	if (size == 0 || size > CHUNK_SIZE || near == 0)
		return 0;
	pthread_mutex_lock(&lock);
	open = open && !open_refused;
	uintptr_t out = take_fit(near, size, fit, open ? OPEN : SEALED);
	if (!out && open)
		out = take_fit(near, size, fit, SEALED);
	if (!out)
		out = take_new_fit(near, size, fit, open);
	if (!out && !open)
		out = take_fit(near, size, fit, SEAL);
	pthread_mutex_unlock(&lock);
	return out;
}

uintptr_t sp_codemem_alloc(uintptr_t near, size_t size)
{
	return alloc(near, size, false);
}

uintptr_t sp_codemem_alloc_fit(uintptr_t near, size_t size, const struct sp_codemem_fit *fit)
{
	return alloc_fit(near, size, fit, false);
}

uintptr_t sp_codemem_alloc_open(uintptr_t near, size_t size, const struct sp_codemem_fit *fit)
{
	return fit ? alloc_fit(near, size, fit, true) : alloc(near, size, true);
}

/* The chunk holding [ADDR, ADDR+LEN), or NULL (lock held). */
static struct chunk *chunk_of(uintptr_t addr, size_t len)
{
	size_t n = atomic_load(&n_chunks);
	for (size_t i = 0; i < n; i++)
		if (addr >= chunks[i].base && len <= CHUNK_SIZE && addr - chunks[i].base <= CHUNK_SIZE - len)
			return &chunks[i];
	return NULL;
}

int sp_codemem_write(uintptr_t addr, const void *bytes, size_t len)
{
	int rc = -1;
	pthread_mutex_lock(&lock);
	struct chunk *c = chunk_of(addr, len);
	if (c && c->open) {
		/* under the lock: a plain request seals the chunk only after */
		memcpy((void *)addr, bytes, len);
		rc = 0;
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

int sp_codemem_seal(void)
{
	int rc = 0;
	pthread_mutex_lock(&lock);
	size_t n = atomic_load(&n_chunks);
	/* a chunk that died here or earlier (a plain request's last resort
	 * seals too): the caller asks sp_codemem_runnable for each slot */
	for (size_t i = 0; i < n; i++)
		if (!seal(&chunks[i]) || chunks[i].dead)
			rc = -EACCES;
	pthread_mutex_unlock(&lock);
	return rc;
}

bool sp_codemem_runnable(uintptr_t addr)
{
	pthread_mutex_lock(&lock);
	struct chunk *c = chunk_of(addr, 1);
	bool ok = !c || (!c->open && !c->dead);
	pthread_mutex_unlock(&lock);
	return ok;
}

void sp_codemem_trim(uintptr_t slot, size_t size, size_t used)
{
	/* the chunk's end of use, as either allocation left it (a fitted
	 * slot need not start 16-byte aligned) */
	pthread_mutex_lock(&lock);
	size_t n = atomic_load(&n_chunks);
	for (size_t i = 0; i < n; i++) {
		struct chunk *c = &chunks[i];
		if (slot < c->base || slot >= c->base + CHUNK_SIZE)
			continue;
		size_t off = slot - c->base;
		if (used >= size)
			break;
		if (c->used == round16(off + size)) {          /* the chunk's tail */
			c->used = round16(off + used);
			break;
		}
		for (int j = 0; j < HOLES; j++)                 /* taken from a hole */
			if (c->holes[j].hi && c->holes[j].lo == round16(off + size)) {
				c->holes[j].lo = (uint32_t)round16(off + used);
				widest_again(c);
				break;
			}
		break;
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
