/* btindex — see btindex.h. */
#include "btindex.h"
#include "insn.h"
#include "objcache.h"
#include "site.h"

#include <elf.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>

struct sp_btindex {
	char *path;
	uintptr_t bias;
	uintptr_t *targets;       /* sorted, unique */
	size_t n, cap;
	struct sp_btindex *next;
};

static struct sp_btindex *cache;   /* registry lock held by callers */

static int push(struct sp_btindex *x, uintptr_t t)
{
	if (x->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 4096;
		uintptr_t *n = realloc(x->targets, cap * sizeof(*n));
		if (!n)
			return -1;
		x->targets = n;
		x->cap = cap;
	}
	x->targets[x->n++] = t;
	return 0;
}

static int cmp(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
	return x < y ? -1 : x > y;
}

/* Sweep [lo, hi), restarting at each symbol start in SYMS (runtime addresses,
 * sorted) so a byte of data cannot shift the decode past the next function. */
static int sweep(struct sp_btindex *x, uintptr_t lo, uintptr_t hi, const uintptr_t *starts, size_t n_starts)
{
	/* decode a pristine copy: our own patches may already be in the text */
	uint8_t *copy = malloc(hi - lo);
	if (!copy)
		return -1;
	sp_site_pristine(lo, hi - lo, copy);
	int rc = 0;
	size_t s = 0;
	uintptr_t pc = lo;
	while (pc < hi) {
		while (s < n_starts && starts[s] <= pc)
			s++;
		uintptr_t stop = s < n_starts && starts[s] < hi ? starts[s] : hi;
		size_t avail = hi - pc < 15 ? hi - pc : 15;
		uint8_t len;
		uint64_t target;
		int br = sp_insn_branch(copy + (pc - lo), avail, pc, &len, &target);
		if (br < 0 || len == 0) {
			pc++;    /* undecodable byte (padding, data): step over it */
			continue;
		}
		if (br == 1 && push(x, (uintptr_t)target) != 0) {
			rc = -1;
			goto out;
		}
		pc += len;
		if (pc > stop && stop < hi)
			pc = stop;   /* decoded across a symbol start: resynchronise there */
	}
out:
	free(copy);
	return rc;
}

/* The on-disk cache (objcache.h): the index is a function of the text's
 * bytes, its layout and the symbol starts, all relative to the bias.  The
 * bytes are named by the object's GNU build ID, read from its mapped notes
 * (what is running, not what is on disk now): hashing them instead means
 * reading the whole text, a page fault per page, a third of a small
 * process's attach.  Without a build ID, the bytes themselves. */
#define CACHE_KIND "btindex"

struct build_id {
	const struct sp_object *obj;
	const uint8_t *id;
	size_t len;
};

static int find_build_id(struct dl_phdr_info *info, size_t size, void *v)
{
	(void)size;
	struct build_id *b = v;
	if (info->dlpi_addr != b->obj->bias || !b->obj->n_text)
		return 0;
	bool same = false;   /* the object whose text this is, not another at bias 0 */
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		same |= ph->p_type == PT_LOAD && info->dlpi_addr + ph->p_vaddr == b->obj->text[0].start;
	}
	for (int i = 0; same && i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr), *end = p + ph->p_memsz;
		while (p + sizeof(ElfW(Nhdr)) <= end) {
			const ElfW(Nhdr) *n = (const ElfW(Nhdr) *)p;
			const uint8_t *name = p + sizeof(*n);
			const uint8_t *desc = name + ((n->n_namesz + 3) & ~3u);
			if (desc + n->n_descsz > end)
				break;
			if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 && memcmp(name, "GNU", 4) == 0 &&
			    n->n_descsz >= 8) {
				b->id = desc;
				b->len = n->n_descsz;
				return 1;
			}
			p = desc + ((n->n_descsz + 3) & ~3u);
		}
	}
	return same;
}

static int cache_key(const struct sp_object *obj, const uintptr_t *starts, size_t n_starts,
		     struct sp_objcache_key *key)
{
	if (!sp_objcache_enabled())
		return -1;
	struct sp_objcache_hasher hs;
	sp_objcache_begin(&hs, CACHE_KIND);
	struct build_id b = { obj, NULL, 0 };
	dl_iterate_phdr(find_build_id, &b);
	sp_objcache_feed(&hs, b.id ? "build-id" : "bytes", b.id ? 8 : 5);
	if (b.id)
		sp_objcache_feed(&hs, b.id, b.len);
	for (int r = 0; r < obj->n_text; r++) {
		uint64_t range[2] = { obj->text[r].start - obj->bias, obj->text[r].end - obj->bias };
		sp_objcache_feed(&hs, range, sizeof(range));
		if (b.id)
			continue;
		size_t len = obj->text[r].end - obj->text[r].start;
		uint8_t *copy = malloc(len);
		if (!copy)
			return -1;
		sp_site_pristine(obj->text[r].start, len, copy);
		sp_objcache_feed(&hs, copy, len);
		free(copy);
	}
	for (size_t i = 0; i < n_starts; i++) {
		uint64_t rel = starts[i] - obj->bias;
		sp_objcache_feed(&hs, &rel, sizeof(rel));
	}
	sp_objcache_done(&hs, key);
	return 0;
}

static bool cache_load(struct sp_btindex *x, const struct sp_objcache_key *key)
{
	size_t len;
	uint64_t *rel = sp_objcache_load(CACHE_KIND, key, &len);
	if (!rel)
		return false;
	size_t n = len / sizeof(*rel);
	bool ok = len % sizeof(*rel) == 0;
	for (size_t i = 1; ok && i < n; i++)
		ok = rel[i - 1] < rel[i];       /* sorted and unique, as built */
	if (!ok) {
		free(rel);
		return false;
	}
	for (size_t i = 0; i < n; i++)
		rel[i] += x->bias;
	x->targets = (uintptr_t *)rel;
	x->n = x->cap = n;
	return true;
}

static void cache_store(const struct sp_btindex *x, const struct sp_objcache_key *key)
{
	uint64_t *rel = malloc(x->n ? x->n * sizeof(*rel) : 1);
	if (!rel)
		return;
	for (size_t i = 0; i < x->n; i++)
		rel[i] = x->targets[i] - x->bias;
	sp_objcache_store(CACHE_KIND, key, rel, x->n * sizeof(*rel));
	free(rel);
}

const struct sp_btindex *sp_btindex_get(const struct sp_object *obj, const struct sp_elf *elf)
{
	for (struct sp_btindex *c = cache; c; c = c->next)
		if (c->bias == obj->bias && strcmp(c->path, obj->path) == 0)
			return c;
	struct sp_btindex *x = calloc(1, sizeof(*x));
	uintptr_t *starts = calloc(elf->n_syms + 1, sizeof(*starts));
	if (!x || !starts)
		goto fail;
	x->path = strdup(obj->path);
	x->bias = obj->bias;
	size_t n_starts = 0;
	for (size_t i = 0; i < elf->n_syms; i++)
		starts[n_starts++] = obj->bias + elf->syms[i].value;   /* already sorted */
	struct sp_objcache_key key;
	bool keyed = cache_key(obj, starts, n_starts, &key) == 0;
	if (keyed && cache_load(x, &key)) {
		free(starts);
		goto done;
	}
	for (int r = 0; r < obj->n_text; r++)
		if (sweep(x, obj->text[r].start, obj->text[r].end, starts, n_starts) != 0)
			goto fail;
	free(starts);
	qsort(x->targets, x->n, sizeof(*x->targets), cmp);
	size_t k = 0;
	for (size_t i = 0; i < x->n; i++)
		if (k == 0 || x->targets[k - 1] != x->targets[i])
			x->targets[k++] = x->targets[i];
	x->n = k;
	if (keyed)
		cache_store(x, &key);
done:
	x->next = cache;
	cache = x;
	return x;
fail:
	free(starts);
	if (x) {
		free(x->path);
		free(x->targets);
		free(x);
	}
	return NULL;
}

bool sp_btindex_any_inside(const struct sp_btindex *idx, uintptr_t lo, uintptr_t hi)
{
	size_t a = 0, b = idx->n;
	while (a < b) {           /* first target > lo */
		size_t m = (a + b) / 2;
		if (idx->targets[m] <= lo)
			a = m + 1;
		else
			b = m;
	}
	return a < idx->n && idx->targets[a] < hi;
}
