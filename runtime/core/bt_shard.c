/* bt_shard — see bt_shard.h. */
#include "bt_shard.h"
#include "heap.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

size_t bt_shard_part_bytes(const struct bt_map *m, bool keyed)
{
	if (!keyed)
		return 8 * (1 + m->val_words);
	return (m->cap * m->val_words * 8 + 4095) & ~(size_t)4095;
}

int bt_shards_attach(struct bt_map *m, unsigned char *base, size_t stride, int n, bool keyed)
{
	struct bt_shards *s = sp_calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->base = base;
	s->stride = stride;
	s->n = n;
	s->keyed = keyed;
	m->shards = s;
	return 0;
}

int bt_shards_attach_at(struct bt_map *m, unsigned char *(*at)(int part), size_t off, int n)
{
	int rc = bt_shards_attach(m, NULL, 0, n, false);
	if (rc == 0) {
		m->shards->at = at;
		m->shards->off = off;
	}
	return rc;
}

int bt_shards_attach_lazy(struct bt_map *m, size_t stride, int n, uint64_t file_off)
{
	unsigned char *_Atomic *parts = sp_calloc((size_t)n, sizeof(*parts));
	if (!parts)
		return -ENOMEM;
	int rc = bt_shards_attach(m, NULL, stride, n, true);
	if (rc != 0) {
		sp_free(parts);
		return rc;
	}
	m->shards->parts = parts;
	m->shards->file_off = file_off;
	return 0;
}

static int used_parts(const struct bt_shards *s)
{
	int n = s->n_used ? s->n_used() : s->n;
	return n < s->n ? n : s->n;
}

static uint64_t load(const uint64_t *w)
{
	return atomic_load_explicit((const _Atomic uint64_t *)w, memory_order_relaxed);
}

/* Add what FROM holds (W words) to TO: sums by adding, min and max
 * (kept as "the larger wins", bt_eval.c) by taking the larger. */
static void combine(const struct bt_map *m, uint64_t *to, const uint64_t *from, size_t w)
{
	bool larger = m->mk == BM_MIN || m->mk == BM_MAX;
	for (size_t k = 0; k < w; k++) {
		uint64_t x = load(&from[k]);
		if (!larger)
			to[k] += x;
		else if ((int64_t)x >= (int64_t)to[k])
			to[k] = x;
	}
}

static bool any_word(const uint64_t *w, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (load(&w[k]))
			return true;
	return false;
}

struct bt_map *bt_map_view(struct bt_map *m)
{
	struct bt_shards *s = m->shards;
	if (!s)
		return m;
	struct bt_map *v = sp_malloc(sizeof(*v));
	if (!v)
		return m;
	*v = *m;
	v->slots = NULL;
	v->shards = NULL;
	v->next = NULL;
	atomic_store(&v->used, 0);
	atomic_store(&v->dropped, atomic_load(&m->dropped));
	if (bt_map_alloc(v) != 0) {
		sp_free(v);
		return m;
	}
	size_t w = m->val_words;
	int n = used_parts(s);
	const unsigned char *key;
	const uint64_t *val;
	/* the table's live slots: the evaluator's updates and, keyed, every
	 * key any thread used (its words in the parts at the same slot) */
	for (long i = bt_map_next(m, 0, &key, &val); i >= 0; i = bt_map_next(m, (size_t)i + 1, &key, &val)) {
		uint64_t *to = bt_map_lookup(v, key, true);
		if (!to)
			break;
		combine(m, to, val, w);
		/* a part never mapped holds nothing (bt_shard.h) */
		for (int p = 0; s->keyed && p < n; p++) {
			unsigned char *part = bt_shard_part(s, p);
			if (part)
				combine(m, to, bt_shard_slot(m, part, (size_t)i), w);
		}
	}
	/* a map without keys: each part a thread touched (a count's word
	 * set, or its touched word) */
	static const uint64_t nokey[1] = { 0 };
	for (int p = 0; !s->keyed && p < n; p++) {
		const uint64_t *part = (const uint64_t *)(const void *)bt_shard_part(s, p);
		if (!part || !any_word(part, 1 + w))
			continue;
		uint64_t *to = bt_map_lookup(v, nokey, true);
		if (to)
			combine(m, to, part + 1, w);
	}
	return v;
}

void bt_map_view_free(struct bt_map *m, struct bt_map *view)
{
	if (!view || view == m)
		return;
	bt_map_free(view);
	sp_free(view);
}

void bt_shards_free(struct bt_map *m)
{
	if (m->shards)
		sp_free(m->shards->parts);
	sp_free(m->shards);
	m->shards = NULL;
}
