/* btpartmem — a keyed bpftrace map's per-thread parts (bt_shard.h), each
 * mapped when a thread on its stripe first updates the map, not all of
 * them when the program is attached: a process holds address space for
 * the parts its threads used (a keyed hist()'s part is 4 MiB), so that a
 * program run under RLIMIT_AS (`ulimit -v`) keeps what it has unprobed
 * (issue 13).  Where the parts come from (the launcher's file or private
 * zeroes) and how many a map has is bt_parts.c's (engine), at attach.
 *
 * A part that cannot be mapped (out of address space, the file out of
 * reach) is marked refused: its stripe's threads update the map's table,
 * atomically, as a thread without a part does (nothing lost), and no hit
 * tries the system call again until a fork child starts afresh. */
#ifndef SP_BTPARTMEM_H
#define SP_BTPARTMEM_H

#include <stdbool.h>
#include <stdint.h>

#include "bt_shard.h"

/* Part I of S, mapped now if it was not (S made by bt_shards_attach_lazy;
 * other shapes: bt_shard_part).  Signal-safe (raw system calls, the
 * pointer published by compare and swap: a signal's hit on the same
 * stripe may map it too, one mapping goes).  NULL: refused. */
unsigned char *sp_btpart(struct bt_shards *s, int i);
/* In a fork child, alone: every part the parent mapped unmapped (never
 * written: under the launcher they are the parent's file pages) and
 * forgotten, refusals too; the child's parts are mapped at their first
 * update from FILE_OFF (its own range of the file; 0: private), or, not
 * KEEP, it has none (its threads update the table). */
void sp_btpart_atfork_child(struct bt_shards *s, uint64_t file_off, bool keep);

#endif
