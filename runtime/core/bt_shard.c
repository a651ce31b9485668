/* bt_shard — see bt_shard.h. */
#include "bt_shard.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

int bt_shards_attach(struct bt_map *m, unsigned char *base, size_t stride, int n)
{
	struct bt_shards *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->folded = calloc((size_t)n * (1 + m->val_words), sizeof(uint64_t));
	if (!s->folded) {
		free(s);
		return -ENOMEM;
	}
	s->base = base;
	s->stride = stride;
	s->n = n;
	atomic_flag_clear(&s->busy);
	m->shards = s;
	return 0;
}

static const _Atomic uint64_t *part(const struct bt_shards *s, int i)
{
	return (const _Atomic uint64_t *)(const void *)(s->base + (size_t)i * s->stride);
}

static void store_larger(uint64_t *v, uint64_t x)
{
	_Atomic uint64_t *cur = (_Atomic uint64_t *)v;
	uint64_t old = atomic_load_explicit(cur, memory_order_relaxed);
	while ((int64_t)x >= (int64_t)old && !atomic_compare_exchange_weak(cur, &old, x))
		;
}

void bt_map_sync(struct bt_map *m)
{
	struct bt_shards *s = m->shards;
	if (!s || atomic_flag_test_and_set(&s->busy))
		return;
	size_t w = m->val_words;
	bool larger = m->mk == BM_MIN || m->mk == BM_MAX;
	static const uint64_t nokey[1] = { 0 };
	for (int i = 0; i < s->n; i++) {
		const _Atomic uint64_t *p = part(s, i);
		uint64_t *f = s->folded + (size_t)i * (1 + w);
		/* its owner may be adding meanwhile: what is read now is
		 * folded now, the rest at the next fold */
		bool any = atomic_load_explicit(&p[0], memory_order_relaxed) != f[0];
		for (size_t k = 0; k < w && !any; k++)
			any = atomic_load_explicit(&p[1 + k], memory_order_relaxed) != f[1 + k];
		if (!any)
			continue;
		uint64_t *v = bt_map_lookup(m, nokey, true);
		if (!v)
			break;   /* cannot happen for a one-slot map; counted as dropped */
		f[0] = atomic_load_explicit(&p[0], memory_order_relaxed);
		for (size_t k = 0; k < w; k++) {
			uint64_t now = atomic_load_explicit(&p[1 + k], memory_order_relaxed);
			if (larger)
				store_larger(&v[k], now);
			else if (now != f[1 + k])
				atomic_fetch_add_explicit((_Atomic uint64_t *)&v[k], now - f[1 + k], memory_order_relaxed);
			f[1 + k] = now;
		}
	}
	atomic_flag_clear(&s->busy);
}

void bt_shards_free(struct bt_map *m)
{
	if (!m->shards)
		return;
	free(m->shards->folded);
	free(m->shards);
	m->shards = NULL;
}

void bt_shards_reset(struct bt_map *m)
{
	struct bt_shards *s = m->shards;
	if (!s)
		return;
	size_t w = m->val_words;
	for (int i = 0; i < s->n; i++) {
		_Atomic uint64_t *p = (_Atomic uint64_t *)(void *)(s->base + (size_t)i * s->stride);
		/* only parts some thread wrote: the others stay untouched pages */
		for (size_t k = 0; k <= w; k++)
			if (atomic_load_explicit(&p[k], memory_order_relaxed))
				atomic_store_explicit(&p[k], 0, memory_order_relaxed);
	}
	for (size_t k = 0; k < (size_t)s->n * (1 + w); k++)
		s->folded[k] = 0;
}
