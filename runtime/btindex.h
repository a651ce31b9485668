/* btindex — every direct branch target of an object's text, for the jmp
 * path's safety rule.
 *
 * A window must not receive a branch into its bytes 1..len-1 from ANY code,
 * not just its own function: hand-written assembly jumps into the middle of
 * other functions (glibc's __mempcpy_* enter __memmove_* after its first
 * instruction; a foo.cold part jumps back into foo).  So once per object we
 * sweep its executable segments linearly, restarting at every known symbol
 * (so data between functions cannot desynchronise the sweep for long), and
 * keep the sorted set of rel8/rel32 jmp, jcc, call, loop and jrcxz targets.
 */
#ifndef SP_BTINDEX_H
#define SP_BTINDEX_H

#include <stdbool.h>
#include <stdint.h>

#include "elfsym.h"
#include "maps.h"

struct sp_btindex;

/* The index of OBJ (built on first use, cached by path and bias).  NULL on
 * allocation failure: callers then refuse the jmp path. */
const struct sp_btindex *sp_btindex_get(const struct sp_object *obj, const struct sp_elf *elf);

/* Is any branch target in (lo, hi) — strictly inside? */
bool sp_btindex_any_inside(const struct sp_btindex *idx, uintptr_t lo, uintptr_t hi);

#endif
