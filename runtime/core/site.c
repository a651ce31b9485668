/* site — the address → site table; see site.h. */
#include "site.h"
#include "heap.h"
#include "memread.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
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
	size_t i = hash(s->addr) & t->mask, tomb = SIZE_MAX;
	for (;; i = (i + 1) & t->mask) {
		uintptr_t k = atomic_load_explicit(&t->slots[i].key, memory_order_relaxed);
		if (k == s->addr) {          /* a forgotten site's slot: reuse it */
			atomic_store_explicit(&t->slots[i].site, s, memory_order_release);
			return;
		}
		if (k && !atomic_load_explicit(&t->slots[i].site, memory_order_relaxed) && tomb == SIZE_MAX)
			tomb = i;            /* a forgotten site of another address */
		if (!k)
			break;
	}
	if (tomb != SIZE_MAX) {
		/* reused for this address: a reader still looking for the old
		 * one sees the key change when it checks it again (lookup), so
		 * reloaded objects do not grow the table */
		atomic_store_explicit(&t->slots[tomb].key, s->addr, memory_order_release);
		atomic_store_explicit(&t->slots[tomb].site, s, memory_order_release);
		return;
	}
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
		if (k == addr) {
			struct sp_site *site = atomic_load_explicit(&t->slots[i].site, memory_order_acquire);
			if (atomic_load_explicit(&t->slots[i].key, memory_order_acquire) == addr)
				return site;
			continue;   /* the slot went to another address meanwhile (put) */
		}
		if (k == 0)
			return NULL;
	}
}

/* Every site, sorted by address, for the ordered queries, and their
 * addresses beside them: the binary search reads those, not a site each
 * (a cache miss per step, ~2 % of attaching libc:*, whose decisions and
 * batch scans search once per site). */
static struct sp_site **by_addr;
static uintptr_t *addr_of;
static size_t n_by_addr, cap_by_addr;

static size_t lower_bound(uintptr_t a)
{
	size_t lo = 0, hi = n_by_addr;
	while (lo < hi) {
		size_t m = (lo + hi) / 2;
		if (addr_of[m] < a)
			lo = m + 1;
		else
			hi = m;
	}
	return lo;
}

static int remember(struct sp_site *s)
{
	if (n_by_addr == cap_by_addr) {
		size_t cap = cap_by_addr ? cap_by_addr * 2 : 256;
		struct sp_site **n = sp_realloc(by_addr, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		by_addr = n;
		uintptr_t *a = sp_realloc(addr_of, cap * sizeof(*a));
		if (!a)
			return -ENOMEM;   /* BY_ADDR grown meanwhile: kept, harmless */
		addr_of = a;
		cap_by_addr = cap;
	}
	size_t i = lower_bound(s->addr);
	memmove(by_addr + i + 1, by_addr + i, (n_by_addr - i) * sizeof(*by_addr));
	memmove(addr_of + i + 1, addr_of + i, (n_by_addr - i) * sizeof(*addr_of));
	by_addr[i] = s;
	addr_of[i] = s->addr;
	n_by_addr++;
	return 0;
}

struct sp_site *sp_site_before(uintptr_t addr)
{
	size_t i = lower_bound(addr);
	return i ? by_addr[i - 1] : NULL;
}

struct sp_site *sp_site_after(uintptr_t addr)
{
	size_t i = lower_bound(addr + 1);
	return i < n_by_addr ? by_addr[i] : NULL;
}

static bool overlap(uintptr_t a, size_t alen, uintptr_t lo, uintptr_t hi)
{
	return a < hi && a + alen > lo;
}

/* Put back the original bytes of [A, A + N) that fall in [ADDR, ADDR + LEN). */
static void put_back(uint8_t *out, uintptr_t addr, size_t len, uintptr_t a, const uint8_t *orig, size_t n)
{
	for (size_t b = 0; b < n; b++)
		if (a + b >= addr && a + b < addr + len)
			out[a + b - addr] = orig[b];
}

bool sp_site_pristine(uintptr_t addr, size_t len, uint8_t *out)
{
	/* read without trusting that the code is still mapped (memread.h).
	 * Gone: int3 bytes, which no decision takes, and false, which the
	 * callers that can tell an unloaded object apart check first */
	bool there = sp_mem_read(addr, out, len);
	if (!there)
		memset(out, 0xcc, len);
	sp_site_restore(addr, len, out);
	return there;
}

void sp_site_restore(uintptr_t addr, size_t len, uint8_t *out)
{
	/* sites patch at most SP_JMP_LEN bytes from their address, and a
	 * hop's pad lies within SP_HOP_SPAN of it */
	uintptr_t from = addr > SP_HOP_SPAN ? addr - SP_HOP_SPAN : 0;
	for (size_t i = lower_bound(from); i < n_by_addr && by_addr[i]->addr < addr + len + SP_HOP_SPAN; i++) {
		const struct sp_site *s = by_addr[i];
		put_back(out, addr, len, s->addr, s->orig, SP_JMP_LEN);
		if (s->hop)
			put_back(out, addr, len, s->pad, s->pad_orig, SP_HOP_PAD_LEN);
	}
}

bool sp_site_pad_overlaps(uintptr_t lo, uintptr_t hi)
{
	uintptr_t from = lo > SP_HOP_SPAN ? lo - SP_HOP_SPAN : 0;
	for (size_t i = lower_bound(from); i < n_by_addr && by_addr[i]->addr < hi + SP_HOP_SPAN; i++) {
		const struct sp_site *s = by_addr[i];
		if (s->hop && overlap(s->pad, SP_HOP_PAD_LEN, lo, hi))
			return true;
		if (s->is_carrier && overlap(s->addr, s->tramp.window_len, lo, hi))
			return true;
	}
	return false;
}

bool sp_site_claimed(uintptr_t lo, uintptr_t hi)
{
	uintptr_t from = lo > SP_JMP_LEN ? lo - SP_JMP_LEN : 0;
	for (size_t i = lower_bound(from); i < n_by_addr && by_addr[i]->addr < hi; i++)
		if (overlap(by_addr[i]->addr, SP_JMP_LEN, lo, hi))
			return true;
	return sp_site_pad_overlaps(lo, hi);
}

int sp_site_insert(struct sp_site *site)
{
	if (remember(site) != 0)
		return -ENOMEM;
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

void sp_site_forget(struct sp_site *site)
{
	struct table *t = atomic_load(&current);
	for (size_t i = hash(site->addr) & t->mask; t; i = (i + 1) & t->mask) {
		uintptr_t k = atomic_load(&t->slots[i].key);
		if (k == site->addr) {
			if (atomic_load(&t->slots[i].site) == site)
				atomic_store(&t->slots[i].site, NULL);
			break;
		}
		if (!k)
			break;
	}
	size_t i = lower_bound(site->addr);
	if (i < n_by_addr && by_addr[i] == site) {
		memmove(by_addr + i, by_addr + i + 1, (n_by_addr - i - 1) * sizeof(*by_addr));
		memmove(addr_of + i, addr_of + i + 1, (n_by_addr - i - 1) * sizeof(*addr_of));
		n_by_addr--;
	}
}

/* ---- sites of unloaded objects, kept for the object's next load ---- */

struct retired {
	struct retired *next;
	char *object;
	uintptr_t vaddr;
	struct sp_site *site;
};
static struct retired *retired_sites;

void sp_site_retire(struct sp_site *site, const char *object, uintptr_t vaddr)
{
	struct retired *r = sp_malloc(sizeof(*r));
	char *o = sp_strdup(object);
	if (!r || !o) {
		sp_free(r);
		sp_free(o);
		return;   /* the site's memory simply stays unused */
	}
	*r = (struct retired){ retired_sites, o, vaddr, site };
	retired_sites = r;
}

struct sp_site *sp_site_revive(const char *object, uintptr_t vaddr, uintptr_t addr)
{
	for (struct retired **pr = &retired_sites; *pr; pr = &(*pr)->next) {
		struct retired *r = *pr;
		if (r->vaddr != vaddr || strcmp(r->object, object) != 0)
			continue;
		*pr = r->next;
		struct sp_site *s = r->site;
		sp_free(r->object);
		sp_free(r);
		/* everything starts afresh but the code memory it had */
		uintptr_t slot = s->tramp_slot, xol = s->xol_slot;
		size_t slot_size = s->tramp_slot_size;
		memset(s, 0, sizeof(*s));
		s->tramp_slot = slot;
		s->tramp_slot_size = slot_size;
		s->xol_slot = xol;
		s->addr = addr;
		return s;
	}
	return NULL;
}
