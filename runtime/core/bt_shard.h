/* bt_shard — a map's per-thread parts, for blocks compiled to native code
 * (bt_jit.c): each thread adds to its own words with plain one-instruction
 * read-modify-writes (no lock prefix, no shared cache line, and no window
 * for a signal handler's hit between a load and a store), and whoever
 * prints the map first folds what the parts gained since the last fold
 * into the shared table (bt_map.c), where the evaluator's updates are.
 *
 * Part i of map M lies at base + i * stride + off: [touched][value words],
 * the value words laid out as the table's (count, sum, min/max as the
 * table keeps them, avg/stats' count and sum, hist/lhist buckets).  The
 * parts are indexed like the runtime's counter stripes (one per thread
 * while it lives, given to the next thread after; tstate.h), so a thread's
 * part is its stripe's address plus a constant.  Sums fold by difference
 * (each part's value at the last fold is kept), min and max by taking the
 * larger, which needs no history.  Only maps the program never reads back
 * are split (bt_jitplan.h): nothing but a print sees a map's value.
 */
#ifndef SP_BT_SHARD_H
#define SP_BT_SHARD_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "bt.h"

struct bt_shards {
	unsigned char *base;     /* part 0 of this map */
	size_t stride;           /* bytes from one part to the next */
	int n;                   /* parts */
	uint64_t *folded;        /* n * (1 + val_words): each part at the last fold */
	atomic_flag busy;        /* a fold in progress (a concurrent print skips it) */
};

/* Give M its parts: N of them at BASE + i * STRIDE, zero.  0 or -errno. */
int bt_shards_attach(struct bt_map *m, unsigned char *base, size_t stride, int n);
/* Fold what the parts gained into M's table (any thread; not in a signal
 * handler that interrupted a fold of the same map: that one is skipped). */
void bt_map_sync(struct bt_map *m);
/* Forget the parts' contents (a fork child, alone: its counts start again). */
void bt_shards_reset(struct bt_map *m);
/* Free M's parts bookkeeping (the parts' memory is the region's). */
void bt_shards_free(struct bt_map *m);

#endif
