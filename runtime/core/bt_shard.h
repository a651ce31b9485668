/* bt_shard — a map's per-thread parts: each thread adds to its own words
 * with plain one-instruction read-modify-writes (no lock prefix, no shared
 * cache line, and no window for a signal handler's hit between a load and
 * a store); a print merges the table (bt_map.c, where hits without a part
 * add atomically) and every part into a private copy, and prints that.
 * Nothing is ever folded back: the table and the parts only grow, so a
 * reader that finds them in the launcher's shared file after a SIGKILL
 * (cli/run.c) merges them the same way and gets the same, exact, figures.
 *
 * Two shapes:
 *   - a compiled block's map without keys (bt_jit.c): part i, in the
 *     memory of stripe i (at(i) + off; the launcher's view: base + i *
 *     stride), is [touched][value words], the words laid out as
 *     the table's (count, sum, min/max as the table keeps them, avg/stats'
 *     count and sum, hist/lhist buckets);
 *   - a keyed map (the evaluator, bt_eval.c): part i holds, for every slot
 *     s of the table, the value words of s at s * val_words * 8: a key's
 *     slot is found in the shared table (inserted there once, at the key's
 *     first use), its words added in the thread's part, so a hit after a
 *     key's first use allocates nothing and writes no shared line.
 * The parts are indexed like the runtime's counter stripes (one per thread
 * while it lives, given to the next thread after; tstate.h); a thread
 * without one (no stripe, or past the parts a map was given, or a part
 * that could not be mapped) updates the table.  A keyed map's part is
 * mapped when a thread on its stripe first updates the map (btpartmem.h):
 * a process holds address space for the parts its threads used only
 * (issue 13: a program run under RLIMIT_AS must keep what it has
 * unprobed), and a reader skips the parts never mapped.  Only maps the program never reads back are split
 * (bt_jit_map_shardable, bt_jitplan.h): nothing but a print sees a value.
 */
#ifndef SP_BT_SHARD_H
#define SP_BT_SHARD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bt.h"

struct bt_shards {
	unsigned char *base;     /* part 0 of this map (NULL: at) */
	size_t stride;           /* bytes from one part to the next */
	/* Or the memory part i lies in, OFF bytes on (NULL: none, so it
	 * holds nothing): parts that are not evenly spaced in this process */
	unsigned char *(*at)(int part);
	size_t off;
	int n;                   /* parts */
	bool keyed;              /* every slot's words in each part (above) */
	int (*n_used)(void);     /* parts below it may hold values (NULL: n) */
	/* Or, keyed, each part mapped alone (btpartmem.h; NULL: all at base):
	 * part i's address once a thread on stripe i updated the map (NULL:
	 * none did, so it holds nothing; BT_PART_REFUSED: it could not be
	 * mapped, that stripe's threads update the table), mapped from
	 * file_off + i * stride in the launcher's file (the file range is
	 * reserved whole: the launcher reads part i there, cli/btparts.c), or
	 * private zeroes (file_off 0) */
	unsigned char *_Atomic *parts;
	uint64_t file_off;
};

#define BT_PART_REFUSED ((unsigned char *)1)

/* Bytes of one part of M in the KEYED shape (the other: 8 + its words). */
size_t bt_shard_part_bytes(const struct bt_map *m, bool keyed);
/* Give M its parts: N of them at BASE + i * STRIDE, zero.  0 or -errno. */
int bt_shards_attach(struct bt_map *m, unsigned char *base, size_t stride, int n, bool keyed);
/* The same, part i at AT(i) + OFF (not keyed). */
int bt_shards_attach_at(struct bt_map *m, unsigned char *(*at)(int part), size_t off, int n);
/* The same, keyed, N parts of STRIDE bytes, none mapped yet (parts above):
 * from the launcher's file at FILE_OFF (0: private). */
int bt_shards_attach_lazy(struct bt_map *m, size_t stride, int n, uint64_t file_off);
/* Part I of S (NULL: not there, or not mapped). */
static inline unsigned char *bt_shard_part(const struct bt_shards *s, int i)
{
	if (s->parts) {
		unsigned char *a = atomic_load_explicit(&s->parts[i], memory_order_acquire);
		return a == BT_PART_REFUSED ? NULL : a;
	}
	if (!s->at)
		return s->base + (size_t)i * s->stride;
	unsigned char *a = s->at(i);
	return a ? a + s->off : NULL;
}
/* Slot SLOT's value words in PART, a part of the keyed map M. */
static inline uint64_t *bt_shard_slot(const struct bt_map *m, unsigned char *part, size_t slot)
{
	return (uint64_t *)(void *)(part + slot * m->val_words * 8);
}
/* The same in part number PART (mapped). */
static inline uint64_t *bt_shard_words(const struct bt_map *m, int part, size_t slot)
{
	return bt_shard_slot(m, bt_shard_part(m->shards, part), slot);
}
/* What a print reads: a private copy of M's table with every part added
 * (M itself when it has no parts, or no memory for the copy).  Any thread;
 * concurrent hits land in this copy or the next. */
struct bt_map *bt_map_view(struct bt_map *m);
void bt_map_view_free(struct bt_map *m, struct bt_map *view);
/* Free M's parts bookkeeping (the parts' memory is the caller's). */
void bt_shards_free(struct bt_map *m);

#endif
