/* btindex — see btindex.h. */
#include "btindex.h"
#include "insn.h"
#include "site.h"

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
