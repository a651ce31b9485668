/* codemem — executable memory for out-of-line copies and trampolines.
 *
 * Code must often sit within ±2 GiB of the text it serves (rel32 jumps,
 * RIP-relative operands moved out of line), so memory is carved from 64 KiB
 * chunks mapped read+exec into the address-space gap nearest the requested
 * address (/proc/self/maps, MAP_FIXED_NOREPLACE).  Chunks are never writable
 * and executable: code is written through sp_patch_write() (whose fallback
 * makes a page read-write, not executable, while it writes; a thread in
 * another slot of that page waits), and many slots share a chunk.
 * Slots are never freed while the process lives (a thread may still be
 * executing one); a trampoline keeps what it used (sp_codemem_trim), a few
 * hundred bytes a site, so that hot trampolines share cache lines and pages.
 * A fitted allocation (sp_codemem_alloc_fit: a trampoline whose entry must
 * give its jmp particular offset bytes, coexist.h) skips the bytes before
 * the first acceptable address: address space, never touched, so never
 * memory, but trampolines of a 2-4 byte first instruction lie apart.
 *
 * A batch's trampolines (nothing runs them before the batch's flush) are
 * written with plain stores instead: sp_codemem_alloc_open may give a slot
 * of an open chunk, mapped read+write (never executable), and
 * sp_codemem_seal makes every open chunk read+exec before anything leads
 * there.  Writing them through /proc/self/mem (a read and a write of each
 * span, pinning each page) was ~20 % of attaching `libc:*`.  A plain
 * allocation (code written through sp_patch_write may run at once) takes
 * slots of sealed chunks only, sealing an open one only when nothing else
 * is left.  Where mprotect will not make an open chunk executable (MDWE,
 * a seccomp filter, an LSM), it is mapped again read+exec in place, its
 * bytes written through the patcher, and no chunk is opened again.
 */
#ifndef SP_CODEMEM_H
#define SP_CODEMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Allocate SIZE bytes of code memory (16-byte aligned) whose every byte is
 * within ±(2 GiB - 64 KiB) of NEAR.  NEAR 0: anywhere.  0 on failure. */
uintptr_t sp_codemem_alloc(uintptr_t near, size_t size);

/* Allocate SIZE bytes whose first byte is an address FIT accepts, within
 * ±(2 GiB - 64 KiB) of NEAR: FIT->next(X) is the least acceptable address
 * >= X (UINTPTR_MAX: none), FIT->prev(X) the greatest <= X (0: none).  The
 * bytes skipped to get there are never used (address space, not memory).
 * Not 16-byte aligned.  0 on failure. */
struct sp_codemem_fit {
	uintptr_t (*next)(uintptr_t at, const void *ctx);
	uintptr_t (*prev)(uintptr_t at, const void *ctx);
	const void *ctx;
};
uintptr_t sp_codemem_alloc_fit(uintptr_t near, size_t size, const struct sp_codemem_fit *fit);

/* SLOT (SIZE bytes from sp_codemem_alloc or sp_codemem_alloc_fit) needs only USED bytes: give the
 * rest back if nothing was allocated after it. */
void sp_codemem_trim(uintptr_t slot, size_t size, size_t used);

/* As sp_codemem_alloc (FIT NULL) or sp_codemem_alloc_fit, for code that
 * nothing runs before the next sp_codemem_seal: the slot may be in an open
 * chunk (read+write, not executable). */
uintptr_t sp_codemem_alloc_open(uintptr_t near, size_t size, const struct sp_codemem_fit *fit);

/* Write LEN bytes at ADDR with stores when they lie in an open chunk: 0;
 * -1 when they do not (a sealed chunk: the caller writes them with
 * sp_patch_write or sp_patch_write_later). */
int sp_codemem_write(uintptr_t addr, const void *bytes, size_t len);

/* Make every open chunk read+exec: 0, or -EACCES when one could not be,
 * now or before (never used again; sp_codemem_runnable is false for its
 * slots: ask it for each). */
int sp_codemem_seal(void);

/* Can code at ADDR run (not in an open chunk)? */
bool sp_codemem_runnable(uintptr_t addr);

/* Is ADDR inside any code memory we mapped? (signal-safe) */
int sp_codemem_owns(uintptr_t addr);

#endif
