/* bt_parts — where a bpftrace program's per-thread map parts live
 * (bt_shard.h): a keyed map's, given here when the program is activated,
 * and a compiled block's (bt_jit.c's region); under the launcher, in its
 * shared file, with their places noted in the process's section (shm.h),
 * so that the launcher merges a killed process's maps exactly as the
 * process would have (cli/run.c).
 */
#ifndef SP_BT_PARTS_H
#define SP_BT_PARTS_H

#include "bt.h"

/* Parts for P's keyed maps that may be split (bt_jit_map_shardable), after
 * the tables were given their places (M->shared_at): their place (a range
 * of the launcher's file, or private memory), each part mapped at its
 * thread's first update (btpartmem.h).  A map that gets none (its part too
 * large, no memory, no room in the file) keeps updating its table. */
void sp_bt_parts_give(struct bt_program *p);
/* Note P's compiled blocks' parts and "ran" byte in the section (after
 * bt_jit_block; a no-op without the launcher). */
void sp_bt_parts_note(struct bt_program *p);
/* In a fork child: P's parts start again from zero, in the child's own
 * memory (its section's range of the file, or private): a keyed map's
 * parent's parts unmapped, never written, the child's mapped as its
 * thread updates the map. */
void sp_bt_parts_atfork_child(struct bt_program *p);

#endif
