/* scanmemo — see scanmemo.h. */
#include "scanmemo.h"
#include "heap.h"
#include "sort.h"
#include "jmpplan.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KIND "scan"

/* One verdict.  Sorted by (site, func, size, guard); ELF-relative. */
struct rec {
	uint64_t site, func, size;
	uint32_t guard;          /* guard_end - site */
	uint32_t verdict;
};

struct sp_scanmemo {
	struct sp_objcache_key key;
	uintptr_t bias;
	bool read;               /* the stored table was looked for */
	const struct rec *v;     /* sorted: the stored table (mapped), then merged */
	size_t n;
	void *map;               /* the stored table's mapping (objcache.h), or NULL */
	size_t map_len;
	struct rec *own;         /* V when merged here (malloc'ed) */
	struct rec *fresh;       /* decided here, not yet stored */
	size_t n_fresh, cap_fresh;
	size_t loaded, hits, added;
};

static int cmp(const struct rec *a, const struct rec *b)
{
	if (a->site != b->site)
		return a->site < b->site ? -1 : 1;
	if (a->func != b->func)
		return a->func < b->func ? -1 : 1;
	if (a->size != b->size)
		return a->size < b->size ? -1 : 1;
	if (a->guard != b->guard)
		return a->guard < b->guard ? -1 : 1;
	return 0;
}

static int qcmp(const void *a, const void *b) { return cmp(a, b); }

struct sp_scanmemo *sp_scanmemo_new(const struct sp_objcache_key *objkey, uintptr_t bias)
{
	struct sp_scanmemo *m = sp_calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	sp_objcache_derive(KIND, objkey, &m->key);
	m->bias = bias;
	return m;
}

void sp_scanmemo_free(struct sp_scanmemo *m)
{
	if (!m)
		return;
	sp_objcache_release(m->map, m->map_len);
	sp_free(m->own);
	sp_free(m->fresh);
	sp_free(m);
}

/* The stored table, checked in place: whole records, strictly sorted (the
 * binary search's premise), verdicts in range.  NULL when fine, else why. */
static const char *check(const void *data, size_t len)
{
	if (len % sizeof(struct rec))
		return "not a whole number of records (truncated?)";
	const struct rec *v = data;   /* objcache payloads are 8-byte aligned */
	size_t n = len / sizeof(struct rec);
	for (size_t i = 0; i < n; i++) {
		if (v[i].verdict >= SP_SCAN_N || v[i].guard == 0 || v[i].guard > 64 ||
		    v[i].site < v[i].func || v[i].site - v[i].func >= v[i].size)
			return "a record out of range";
		if (i && cmp(&v[i - 1], &v[i]) >= 0)
			return "records out of order";
	}
	return NULL;
}

static void read_table(struct sp_scanmemo *m)
{
	m->read = true;
	size_t len;
	void *data = sp_objcache_load_checked(KIND, &m->key, &len, check);
	if (!data)
		return;
	m->map = data;
	m->map_len = len;
	m->v = data;
	m->n = m->loaded = len / sizeof(struct rec);
}

static struct rec make(const struct sp_scanmemo *m, uintptr_t func, size_t size, uintptr_t site,
		       uintptr_t guard_end)
{
	return (struct rec){ .site = site - m->bias, .func = func - m->bias, .size = size,
			     .guard = (uint32_t)(guard_end - site) };
}

bool sp_scanmemo_get(void *ctx, uintptr_t func, size_t size, uintptr_t site, uintptr_t guard_end,
		     int *verdict)
{
	struct sp_scanmemo *m = ctx;
	if (!m->read)
		read_table(m);
	struct rec k = make(m, func, size, site, guard_end);
	/* strictly sorted (checked, or merged here); bsearch's array may not
	 * be NULL, even empty */
	const struct rec *s = m->n ? bsearch(&k, m->v, m->n, sizeof(*m->v), qcmp) : NULL;
	if (!s)
		return false;
	*verdict = (int)s->verdict;
	m->hits++;
	return true;
}

void sp_scanmemo_put(void *ctx, uintptr_t func, size_t size, uintptr_t site, uintptr_t guard_end,
		     int verdict)
{
	struct sp_scanmemo *m = ctx;
	/* what a record cannot hold is simply not remembered */
	if (site < func || guard_end <= site || guard_end - site > 64 || verdict < 0 || verdict >= SP_SCAN_N)
		return;
	if (m->n_fresh == m->cap_fresh) {
		size_t cap = m->cap_fresh ? m->cap_fresh * 2 : 256;
		struct rec *f = sp_realloc(m->fresh, cap * sizeof(*f));
		if (!f)
			return;
		m->fresh = f;
		m->cap_fresh = cap;
	}
	struct rec r = make(m, func, size, site, guard_end);
	r.verdict = (uint32_t)verdict;
	m->fresh[m->n_fresh++] = r;
	m->added++;
}

void sp_scanmemo_flush(struct sp_scanmemo *m)
{
	if (!m || !m->n_fresh || !sp_objcache_enabled())
		return;
	size_t n = m->n + m->n_fresh;
	struct rec *v = sp_malloc(n * sizeof(*v));
	if (!v)
		return;
	if (m->n)
		memcpy(v, m->v, m->n * sizeof(*v));
	memcpy(v + m->n, m->fresh, m->n_fresh * sizeof(*v));
	sp_qsort(v, n, sizeof(*v), qcmp);
	size_t k = 0;   /* one record per key: the table must be strictly sorted */
	for (size_t i = 0; i < n; i++)
		if (!k || cmp(&v[k - 1], &v[i]) != 0)
			v[k++] = v[i];
	sp_free(m->own);
	m->own = v;
	m->v = v;
	m->n = k;
	m->n_fresh = 0;
	sp_objcache_store(KIND, &m->key, v, k * sizeof(*v));
}

void sp_scanmemo_stats(const struct sp_scanmemo *m, size_t *loaded, size_t *hits, size_t *added)
{
	*loaded = m ? m->loaded : 0;
	*hits = m ? m->hits : 0;
	*added = m ? m->added : 0;
}
