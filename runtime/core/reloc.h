/* reloc — move a window of instructions to a trampoline so that they run
 * there with the effect they had at home.
 *
 * Rewrite only what must change (frida-gum's habit): bytes are copied as
 * they are, except
 *   - RIP-relative operands: displacement recomputed for the new address
 *     (-ERANGE when it no longer reaches: the caller needs nearer memory);
 *   - jmp rel8/rel32 → jmp rel32 to the same target (or `jmp *0(%rip); .quad`
 *     when the target is out of rel32 reach);
 *   - jcc rel8/rel32 → jcc rel32 (0f 8x), or an inverted jcc over an
 *     absolute jump when out of reach;
 *   - call rel32 → push of the ORIGINAL return address (so returns and
 *     unwinders see the caller's code, not the trampoline) then a jmp to the
 *     target: `lea -8(%rsp),%rsp; movl $lo,(%rsp); movl $hi,4(%rsp); jmp`
 *     (lea and mov leave the flags alone, as call does);
 * and refused (-ENOTSUP, *REASON): indirect call, loop/jrcxz, anything
 * sp_insn marks not relocatable.  After the copy comes a jump back to the
 * first byte after the window, unless the window's flow ends (ret/jmp).
 */
#ifndef SP_RELOC_H
#define SP_RELOC_H

#include <stddef.h>
#include <stdint.h>

#include "jmpplan.h"

/* Where each window instruction went: the original offset from the site
 * and the offset in the relocated copy (for moving a thread's PC). */
struct sp_reloc_map {
	uint8_t n;
	uint8_t orig_off[SP_WINDOW_MAX];
	uint16_t new_off[SP_WINDOW_MAX];
};

/* Worst-case bytes sp_reloc_window writes for one window. */
#define SP_RELOC_MAX 160

/* Write the relocated window, to run at DEST, into BUF.  Returns the bytes
 * written or a negative errno with *REASON. */
int sp_reloc_window(const struct sp_window *w, uintptr_t dest, uint8_t *buf, size_t buflen,
		    struct sp_reloc_map *map, const char **reason);

#endif
