/* prefault — memory about to be filled, made present at once.
 *
 * A structure decoded from a start-up cache entry (libc's symbols and
 * branch-target index: ~600 KiB) lands in fresh malloc'ed memory, and each
 * 4 KiB page of it costs a page fault when first written: ~150 faults, the
 * largest part of an exec'ed child's attach once the work itself was
 * cached.  One MADV_POPULATE_WRITE (Linux 5.14) makes the whole range
 * present in one system call.  Best effort: an older kernel, or a range
 * too small to be worth a system call, is left to fault as before. */
#ifndef SP_PREFAULT_H
#define SP_PREFAULT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

static inline void sp_prefault(void *p, size_t len)
{
#ifdef MADV_POPULATE_WRITE
	const uintptr_t page = 4096;
	uintptr_t lo = ((uintptr_t)p + page - 1) & ~(page - 1), hi = ((uintptr_t)p + len) & ~(page - 1);
	if (p && hi > lo + 4 * page)
		madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
#else
	(void)p, (void)len;
#endif
}

#endif
