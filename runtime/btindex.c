/* btindex — see btindex.h. */
#include "btindex.h"
#include "insn.h"
#include "site.h"

#include <stdlib.h>
#include <string.h>

/* A sorted set of addresses, each with what put it there. */
struct addrset {
	uintptr_t *a;
	const char **how;            /* NULL for the direct targets */
	size_t n, cap;
};

struct unknown_jump {
	uintptr_t jmp, func_lo, func_hi;
	const char *why;
};

struct sp_btindex {
	char *path;                  /* the live cache's key (NULL: built by a caller) */
	uintptr_t bias;
	struct addrset direct;
	struct addrset taken;
	bool taken_unknown;          /* relocations could not be read */
	const char *taken_why;
	struct unknown_jump *unknown;
	size_t n_unknown, cap_unknown;
	size_t tables, table_entries;
	struct sp_btindex *next;
};

static struct sp_btindex *cache;   /* registry lock held by callers */

static int set_push(struct addrset *s, uintptr_t t, const char *how)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4096;
		uintptr_t *n = realloc(s->a, cap * sizeof(*n));
		if (!n)
			return -1;
		s->a = n;
		const char **h = realloc(s->how, cap * sizeof(*h));
		if (!h)
			return -1;
		s->how = h;
		s->cap = cap;
	}
	s->how[s->n] = how;
	s->a[s->n++] = t;
	return 0;
}

static struct addrset *sort_set;
static int cmp_idx(const void *a, const void *b)
{
	uintptr_t x = sort_set->a[*(const size_t *)a], y = sort_set->a[*(const size_t *)b];
	return x < y ? -1 : x > y;
}

/* Sort and dedupe, keeping the first phrase of each address. */
static int set_finish(struct addrset *s)
{
	if (s->n == 0)
		return 0;
	size_t *ix = malloc(s->n * sizeof(*ix));
	uintptr_t *a = malloc(s->n * sizeof(*a));
	const char **h = malloc(s->n * sizeof(*h));
	if (!ix || !a || !h) {
		free(ix);
		free(a);
		free(h);
		return -1;
	}
	for (size_t i = 0; i < s->n; i++)
		ix[i] = i;
	sort_set = s;
	qsort(ix, s->n, sizeof(*ix), cmp_idx);   /* registry lock / single CLI thread */
	size_t k = 0;
	for (size_t i = 0; i < s->n; i++) {
		uintptr_t v = s->a[ix[i]];
		if (k && a[k - 1] == v)
			continue;
		a[k] = v;
		h[k++] = s->how[ix[i]];
	}
	free(ix);
	free(s->a);
	free(s->how);
	s->a = a;
	s->how = h;
	s->n = k;
	return 0;
}

/* Index of the first element > LO. */
static size_t first_above(const struct addrset *s, uintptr_t lo)
{
	size_t a = 0, b = s->n;
	while (a < b) {
		size_t m = (a + b) / 2;
		if (s->a[m] <= lo)
			a = m + 1;
		else
			b = m;
	}
	return a;
}

/* Sweep one text range, restarting at each symbol start in STARTS (runtime
 * addresses, sorted) so a byte of data cannot shift the decode past the
 * next function. */
static int sweep(struct sp_btindex *x, uintptr_t lo, uintptr_t hi, const uint8_t *code,
		 const uintptr_t *starts, size_t n_starts)
{
	size_t s = 0;
	uintptr_t pc = lo;
	while (pc < hi) {
		while (s < n_starts && starts[s] <= pc)
			s++;
		uintptr_t stop = s < n_starts && starts[s] < hi ? starts[s] : hi;
		size_t avail = hi - pc < 15 ? hi - pc : 15;
		uint8_t len;
		uint64_t target;
		int br = sp_insn_branch(code + (pc - lo), avail, pc, &len, &target);
		if (br < 0 || len == 0) {
			pc++;    /* undecodable byte (padding, data): step over it */
			continue;
		}
		if (br == 1 && set_push(&x->direct, (uintptr_t)target, NULL) != 0)
			return -1;
		pc += len;
		if (pc > stop && stop < hi)
			pc = stop;   /* decoded across a symbol start: resynchronise there */
	}
	return 0;
}

void sp_btindex_free(struct sp_btindex *x)
{
	if (!x)
		return;
	free(x->path);
	free(x->direct.a);
	free(x->direct.how);
	free(x->taken.a);
	free(x->taken.how);
	free(x->unknown);
	free(x);
}

struct sp_btindex *sp_btindex_build(const struct sp_objcode *oc)
{
	const struct sp_elf *elf = oc->elf;
	struct sp_btindex *x = calloc(1, sizeof(*x));
	uintptr_t *starts = calloc(elf->n_syms + 1, sizeof(*starts));
	if (!x || !starts)
		goto fail;
	x->bias = oc->bias;
	size_t n_starts = 0;
	for (size_t i = 0; i < elf->n_syms; i++)
		starts[n_starts++] = oc->bias + elf->syms[i].value;   /* already sorted */
	for (int r = 0; r < oc->n_text; r++)
		if (sweep(x, oc->text[r].start, oc->text[r].end, oc->text[r].bytes, starts, n_starts) != 0)
			goto fail;
	free(starts);
	starts = NULL;
	if (set_finish(&x->direct) != 0 || set_finish(&x->taken) != 0)
		goto fail;
	return x;
fail:
	free(starts);
	sp_btindex_free(x);
	return NULL;
}

const struct sp_btindex *sp_btindex_get(const struct sp_object *obj, const struct sp_elf *elf)
{
	for (struct sp_btindex *c = cache; c; c = c->next)
		if (c->bias == obj->bias && strcmp(c->path, obj->path) == 0)
			return c;
	/* decode a pristine copy: our own patches may already be in the text */
	struct sp_objcode oc = { .elf = elf, .path = obj->path, .bias = obj->bias, .n_text = obj->n_text };
	struct sp_btindex *x = NULL;
	int r;
	for (r = 0; r < obj->n_text; r++) {
		size_t len = obj->text[r].end - obj->text[r].start;
		uint8_t *copy = malloc(len);
		if (!copy)
			goto out;
		sp_site_pristine(obj->text[r].start, len, copy);
		oc.text[r].start = obj->text[r].start;
		oc.text[r].end = obj->text[r].end;
		oc.text[r].bytes = copy;
	}
	x = sp_btindex_build(&oc);
	if (x && !(x->path = strdup(obj->path))) {
		sp_btindex_free(x);
		x = NULL;
	}
	if (x) {
		x->next = cache;
		cache = x;
	}
out:
	for (int i = 0; i < r; i++)
		free((void *)oc.text[i].bytes);
	return x;
}

bool sp_btindex_any_inside(const struct sp_btindex *idx, uintptr_t lo, uintptr_t hi)
{
	size_t a = first_above(&idx->direct, lo);
	return a < idx->direct.n && idx->direct.a[a] < hi;
}

bool sp_btindex_taken_inside(const struct sp_btindex *idx, uintptr_t lo, uintptr_t hi,
			     uintptr_t *addr, const char **how)
{
	if (idx->taken_unknown) {
		*addr = 0;
		*how = idx->taken_why;
		return true;
	}
	size_t a = first_above(&idx->taken, lo);
	if (a < idx->taken.n && idx->taken.a[a] < hi) {
		*addr = idx->taken.a[a];
		*how = idx->taken.how[a];
		return true;
	}
	return false;
}

bool sp_btindex_unknown_jump(const struct sp_btindex *idx, uintptr_t lo, uintptr_t hi,
			     uintptr_t *jmp, const char **why)
{
	for (size_t i = 0; i < idx->n_unknown; i++) {
		const struct unknown_jump *u = &idx->unknown[i];
		if (u->jmp >= lo && u->jmp < hi) {
			*jmp = u->jmp;
			*why = u->why;
			return true;
		}
	}
	return false;
}

void sp_btindex_stats(const struct sp_btindex *idx, struct sp_btindex_stats *st)
{
	st->direct = idx->direct.n;
	st->taken = idx->taken.n;
	st->tables = idx->tables;
	st->table_entries = idx->table_entries;
	st->unknown_tables = idx->n_unknown;
}
