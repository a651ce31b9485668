/* ehframe — function extents from an object's .eh_frame.
 *
 * Every function gcc and clang compile (and every hand-written one with
 * .cfi_startproc/.cfi_endproc) has a Frame Description Entry whose
 * [initial_location, initial_location + address_range) is exactly its code
 * (one FDE per part: a foo.cold part has its own).  A file stripped to
 * .dynsym keeps .eh_frame (the unwinder needs it), so these extents are
 * what tells where a function without a symbol ends: the facts the hop's
 * padding proof (hop.h) and the jmp window's "next function" limit need.
 *
 * A small parser rather than libdw: elfutils' libdw is not a build
 * dependency (only libelf is), and the subset needed is small: the entry
 * framing, the CIE's augmentation ('z', 'R', 'P', 'L', 'S', 'B', 'G') and
 * the FDE's two pointer-encoded fields.  The section is untrusted input:
 * every read is bounds-checked; an entry that cannot be understood is
 * skipped (a missing extent only means fewer proofs, never a wrong one); a
 * framing that cannot be followed ends the walk.  Pure: no allocation.
 */
#ifndef SP_EHFRAME_H
#define SP_EHFRAME_H

#include <stddef.h>
#include <stdint.h>

/* Walk the .eh_frame image DATA[0, LEN) whose first byte is at ELF address
 * VADDR, calling FN(CTX, lo, hi) for each FDE's extent [lo, hi) with
 * lo < hi (FN returns 0 to go on; a negative value stops the walk and is
 * returned).  0 when the walk reached the end (or a zero terminator), 1
 * when the framing was malformed part-way (the extents reported before it
 * stand). */
int sp_ehframe_walk(const uint8_t *data, size_t len, uint64_t vaddr,
		    int (*fn)(void *ctx, uint64_t lo, uint64_t hi), void *ctx);

#endif
