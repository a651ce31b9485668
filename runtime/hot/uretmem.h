/* uretmem — the memory of the per-thread shadow stacks (uret.h), and when it
 * may be given back.
 *
 * A thread's shadow stack must outlive the thread's last return: glibc runs
 * the pthread key destructors from __nptl_deallocate_tsd, then still calls
 * functions (__libc_thread_freeres, free, madvise, ...) whose returns may be
 * probed, and __nptl_deallocate_tsd's own return is pending while the
 * destructors run.  So a thread never frees its own mapping: every mapping
 * is registered here with the thread id of its owner, and is unmapped by
 * another thread once the kernel says the owner is gone (tgkill(pid, tid, 0)
 * is ESRCH only after the thread stopped running user code).  Passes run at
 * thread exits (the key destructor), amortized: only when the table has
 * grown to twice what the last pass left, so a process that creates many
 * threads pays O(1) system calls per thread, and keeps at most about twice
 * its live threads' mappings.
 *
 * A child that shares the memory but not the thread (vfork, posix_spawn's
 * CLONE_VM child, on the parent's TLS) must not name itself the owner of the
 * parent thread's stack: it registers an owner-less mapping, which the
 * parent thread's destructor adopts (or which lives as long as the process).
 *
 * A stack grows by segments that never move (a signal handler may use an
 * entry between any two instructions): segment 0 is made with the record,
 * segment k >= 1 (twice segment k-1's size from k = 2) when the thread's
 * calls nest that deep, so that a thread holds address space for the depth
 * it reached, not for the deepest one allowed.
 *
 * Everything here uses raw system calls and atomics: it runs inside probed
 * calls, where libc's own functions may be probed.
 */
#ifndef SP_URETMEM_H
#define SP_URETMEM_H

#include <stddef.h>

#define SP_URETMEM_SEGS 9   /* a stack's segments at most */

/* Segment K's bytes, segment 0 having BYTES0: BYTES0 << (K - 1) from 1 on,
 * so that segments 0 to K hold BYTES0 << K. */
static inline size_t sp_uretmem_seg_bytes(size_t bytes0, int k)
{
	return k ? bytes0 << (k - 1) : bytes0;
}

/* Once, before the first allocation (not signal-safe). */
void sp_uretmem_prepare(void);

/* A new stack for the calling thread, its segment 0 of BYTES mapped
 * (MAP_NORESERVE); *OWNER receives its record (for sp_uretmem_exiting).
 * MAP_FAILED when out of memory or records. */
void *sp_uretmem_alloc(size_t bytes, int *owner);

/* Segment K (1 to SP_URETMEM_SEGS - 1) of record OWNER's stack, mapped if
 * it was not.  NULL when out of memory. */
void *sp_uretmem_segment(int owner, int k);

/* Unmap record OWNER's mappings now (never used). */
void sp_uretmem_free(int owner);

/* The calling thread is exiting (its key destructor runs): it owns record
 * OWNER from now on whatever thread registered it; dead threads' mappings
 * may be reclaimed.  OWNER's own mapping stays. */
void sp_uretmem_exiting(int owner);

/* In a fork child: only the calling thread (record OWNER, or -1) exists;
 * the other threads' copies are unmapped now. */
void sp_uretmem_atfork_child(int owner);

#endif
