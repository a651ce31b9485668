/* scanmemo — the jmp plan's whole-function decodes, kept on disk per
 * object (jmpplan.h sp_scan_memo).
 *
 * With the branch-target index cached, what was left of attaching
 * `uprobe:libc:*` was deciding each of libc's ~3600 sites: 45 % of the
 * process, almost all of it the plan decoding the whole function around
 * each site (is the site an instruction boundary, does a branch of the
 * function land in the window).  The same in every process: the verdict is
 * a function of the object's code and four addresses.
 *
 * Keyed like the index it rides on (btindex.h: the object's build ID, its
 * layout, its symbol starts, this runtime's build; no build ID, no memo),
 * records hold ELF-relative addresses, so a library loaded at another
 * address reuses them.  A process adds what it decided that was not there
 * and writes the merged table back (objcache.h: a temporary file renamed;
 * concurrent writers each write a whole table, the last one wins, a lost
 * record is only decoded again).  A table that does not decode (length,
 * order, a verdict out of range) is refused with its reason and rebuilt. */
#ifndef SP_SCANMEMO_H
#define SP_SCANMEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "objcache.h"

struct sp_scanmemo;

/* A memo for the object whose index is keyed OBJKEY, at BIAS. */
struct sp_scanmemo *sp_scanmemo_new(const struct sp_objcache_key *objkey, uintptr_t bias);
void sp_scanmemo_free(struct sp_scanmemo *m);

/* jmpplan.h's sp_scan_memo callbacks (CTX: the memo).  The stored table is
 * read at the first GET. */
bool sp_scanmemo_get(void *ctx, uintptr_t func, size_t size, uintptr_t site, uintptr_t guard_end,
		     int *verdict);
void sp_scanmemo_put(void *ctx, uintptr_t func, size_t size, uintptr_t site, uintptr_t guard_end,
		     int verdict);

/* Write the table back if this process added records. */
void sp_scanmemo_flush(struct sp_scanmemo *m);

/* Counters for tests: records read from disk, hits, records added. */
void sp_scanmemo_stats(const struct sp_scanmemo *m, size_t *loaded, size_t *hits, size_t *added);

#endif
