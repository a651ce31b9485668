/* btparts — a killed process's bpftrace map parts, for the launcher: the
 * per-thread parts (bt_shard.h) its section notes (shm.h), mapped read-only
 * and given to the maps of the program compiled here again, so that
 * printing them merges table and parts as the process would have. */
#ifndef SP_CLI_BTPARTS_H
#define SP_CLI_BTPARTS_H

#include <stdbool.h>

#include "bt.h"
#include "shm.h"

struct sp_btparts {
	void *at[SP_SHM_BT_MAPS];
	size_t len[SP_SHM_BT_MAPS];
};

/* Did a block of S's process run (evaluated, or compiled: its "ran"
 * bytes)?  FD: the shared file. */
bool sp_btparts_ran(int fd, const struct sp_shm_section *s);
/* Give P's maps (in the section's map order) their parts from FD.  0, or
 * -1 (a part that cannot be mapped: what was mapped stays in *OUT). */
int sp_btparts_map(int fd, const struct sp_shm_section *s, struct bt_program *p, struct sp_btparts *out);
/* Unmap them (before the program is freed). */
void sp_btparts_unmap(struct bt_program *p, struct sp_btparts *parts);

#endif
