/* patch — writing bytes into code that is mapped read+exec, and making
 * every core see them.
 *
 * Code is written through /proc/self/mem: the kernel's FOLL_FORCE write
 * copies-on-write the private page and leaves its protection as it was, so
 * no page is ever writable and executable at once and the application's own
 * view of its mappings never changes.
 *
 * Where /proc/self/mem cannot be written (no /proc,
 * proc_mem.force_override=never, a seccomp filter), the fallback still never
 * makes a page writable and executable: it takes the execute permission
 * away while it writes.  The protocol, one write at a time under the lock:
 *
 *   1. refuse up front what could not be undone: MDWE (PR_GET_MDWE), or any
 *      policy that refuses to make a page executable again (a scratch page
 *      is mprotect'ed to r-x once), or the exact restoring mprotect failing
 *      on the unchanged page (a seccomp filter on its arguments);
 *   2. block every asynchronous signal (raw rt_sigprocmask): a handler
 *      running on this thread could execute the pages being written;
 *   3. publish the window [lo, hi) and make the generation odd;
 *   4. mprotect(lo, RW), copy, mprotect(lo, original), all with inline
 *      `syscall` instructions and a volatile byte loop: libc's mprotect or
 *      memcpy may sit in the very page being written (a probe on libc), and
 *      this thread must execute nothing there while the page is not
 *      executable;
 *   5. make the generation even, wake the waiters (futex), restore the mask.
 *
 * Another thread executing in [lo, hi) meanwhile takes an instruction-fetch
 * fault (SIGSEGV, SEGV_ACCERR, the address in the window).  The runtime owns
 * SIGSEGV (trap.h); its handler asks sp_patch_on_fault() first, which waits
 * on the generation until the window closes and returns to the faulting
 * instruction: an instruction fetch that faulted had no effect, so running
 * it again is exact.  A fault seen just after a window closed is retried
 * once per generation (it may have been taken while the window was open);
 * a second fault at the same generation is the application's own.
 *
 * After a write, sp_patch_sync() makes every thread of the process
 * serialize its instruction stream (membarrier SYNC_CORE, registered once);
 * without membarrier the write is still correct for the patterns we use
 * (a single int3 byte) but may take effect on other cores a little later.
 */
#ifndef SP_PATCH_H
#define SP_PATCH_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Write LEN bytes at ADDR (code or any mapped page).  0 or -errno. */
int sp_patch_write(uintptr_t addr, const void *bytes, size_t len);

/* One piece of a batch of writes. */
struct sp_patch_piece {
	uintptr_t addr;
	const void *bytes;
	size_t len;
};

/* sp_patch_write of each of N pieces, RCS[i] its result.  Consecutive
 * pieces in ascending order, not overlapping, on neighbouring pages (each
 * page of the span holding some of them; up to 64 KiB) are written as one
 * span (the bytes between them read and written back unchanged, under the
 * writers' lock): a write per run of pages instead of per site, where each
 * costs a system call and a page copy in the kernel.  For code only the
 * runtime writes (an object's text, its padding): a byte between two
 * pieces that something else changed meanwhile would be put back. */
void sp_patch_write_many(const struct sp_patch_piece *pieces, size_t n, int *rcs);

/* Keep /proc/self/mem open across the writes of one batch (a hold, which
 * may nest) instead of opening it for each write; the last release closes
 * it (after sp_patch_flush_later).  No descriptor of ours stays open
 * between batches. */
void sp_patch_hold(void);
void sp_patch_release(void);

/* While a hold is open: a number that stays the same as long as nothing is
 * written (it changes at each write and at the first hold), so a reader
 * may keep what it read of code meanwhile; 0 without a hold. */
uint64_t sp_patch_epoch(void);
/* Read LEN bytes at ADDR through /proc/self/mem (an unmapped address is
 * an error, never a fault): 0, or -1. */
int sp_patch_read(uintptr_t addr, void *buf, size_t len);

/* Code that nothing can run yet (a trampoline built for a site that is not
 * armed: no int3 or jmp leads to it): while a hold is open the bytes are
 * copied aside and written at the next sp_patch_flush_later, together with
 * the others, a write per run of neighbouring pieces instead of one per
 * trampoline (3600 system calls of attaching libc:*, 7 % of a python
 * process).  Without a hold they are written now: 0 or -errno.  A write
 * that fails later sets *FAILED (it may be NULL): nothing may be sent
 * there.  Bytes written meanwhile over the same addresses
 * with sp_patch_write are overwritten at the flush: for fresh memory only. */
int sp_patch_write_later(uintptr_t addr, const void *bytes, size_t len, bool *failed);
/* Write what sp_patch_write_later kept: before anything can reach it (an
 * arming batch flushes first). */
void sp_patch_flush_later(void);

/* Why code cannot be written at all in this process (the fallback is
 * needed and refused: step 1 above), or NULL.  For probe errors. */
const char *sp_patch_refusal(void);

/* The fallback's fault handler (sp_trap_install, trap.h): registered by
 * the layers that patch (the registry's set-up, the API's exit hook)
 * before their first write, so that patch never calls up into the trap
 * handler.  Unregistered, the fallback is refused. */
void sp_patch_set_fault_handler(int (*install)(void));

/* For the tests: every write for which FAIL returns true fails with -EIO
 * and writes nothing, as one the kernel refused would (arming steps that
 * fail half-way, arm.h).  NULL: none fails. */
void sp_patch_fail_for_test(bool (*fail)(uintptr_t addr, const void *bytes, size_t len));

/* Serialize every core running a thread of this process. */
void sp_patch_sync(void);

/* From the fault handler (signal context): SIG with SI and the ucontext UC
 * is an instruction fetch from a page the fallback has taken the execute
 * permission from.  Waits until it has it again; true: return from the
 * handler to run the faulting instruction again.  False: not ours. */
bool sp_patch_on_fault(int sig, const siginfo_t *si, const void *uc);

/* Around fork (pthread_atfork): no window may be open while the address
 * space is copied (the child would have no writer to close it). */
void sp_patch_atfork_prepare(void);
void sp_patch_atfork_parent(void);

/* After fork, in the child: /proc/self/mem opened by the parent names the
 * parent's memory, so it must be reopened. */
void sp_patch_atfork_child(void);

#endif
