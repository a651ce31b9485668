/* site — the address → site table; see site.h. */
#include "site.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

struct slot {
	_Atomic uintptr_t key;
	struct sp_site *_Atomic site;
};

struct table {
	size_t mask;
	size_t used;
	struct slot slots[];
};

static struct table *_Atomic current;

static size_t hash(uintptr_t a)
{
	a ^= a >> 33;
	a *= 0xff51afd7ed558ccdull;
	a ^= a >> 33;
	return (size_t)a;
}

/* Tables come from mmap, not malloc: never freed, never handed back. */
static struct table *new_table(size_t cap)
{
	size_t bytes = sizeof(struct table) + cap * sizeof(struct slot);
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	struct table *t = p;
	t->mask = cap - 1;
	return t;
}

static void put(struct table *t, struct sp_site *s)
{
	size_t i = hash(s->addr) & t->mask;
	while (atomic_load_explicit(&t->slots[i].key, memory_order_relaxed))
		i = (i + 1) & t->mask;
	atomic_store_explicit(&t->slots[i].site, s, memory_order_relaxed);
	atomic_store_explicit(&t->slots[i].key, s->addr, memory_order_release);
	t->used++;
}

struct sp_site *sp_site_lookup(uintptr_t addr)
{
	struct table *t = atomic_load_explicit(&current, memory_order_acquire);
	if (!t || !addr)
		return NULL;
	for (size_t i = hash(addr) & t->mask;; i = (i + 1) & t->mask) {
		uintptr_t k = atomic_load_explicit(&t->slots[i].key, memory_order_acquire);
		if (k == addr)
			return atomic_load_explicit(&t->slots[i].site, memory_order_relaxed);
		if (k == 0)
			return NULL;
	}
}

int sp_site_insert(struct sp_site *site)
{
	struct table *t = atomic_load(&current);
	if (!t || (t->used + 1) * 2 > t->mask + 1) {
		size_t cap = t ? (t->mask + 1) * 2 : 1024;
		struct table *n = new_table(cap);
		if (!n)
			return -ENOMEM;
		if (t)
			for (size_t i = 0; i <= t->mask; i++) {
				struct sp_site *s = atomic_load(&t->slots[i].site);
				if (atomic_load(&t->slots[i].key) && s)
					put(n, s);
			}
		atomic_store_explicit(&current, n, memory_order_release);
		t = n;
	}
	put(t, site);
	return 0;
}
