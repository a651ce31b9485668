/* sigframes — where each thread's running signal handlers will resume.
 *
 * A handler of the application that interrupted a thread keeps the
 * interrupted context in its signal frame, and sigreturn resumes there.  If
 * that PC lies inside bytes 1–4 of a window about to become a jmp, the
 * thread resumes in the middle of the new instruction once the handler
 * returns — however long after the patch.  The stop-check (stopworld.h)
 * sees only a thread's current PC, which is inside the handler.
 *
 * So the wrapper that runs every application handler (sigwrap.h) records
 * the frame's ucontext for its thread for as long as the handler runs, and
 * the stop-check reads them: a recorded frame whose PC lies inside a window
 * marks that window busy, and the site keeps its int3 (exact whatever
 * bytes 1–4 are).  The frame is never rewritten: a handler that left by
 * siglongjmp leaves its record behind, which then reads stale stack
 * memory (read with process_vm_readv, so an unmapped one cannot fault) and
 * at worst keeps a site on int3.  Records are per thread in a fixed table
 * keyed by thread id, readable by the patching thread for threads blocked
 * in a system call (which are not signalled).  A thread with more frames
 * than a record holds (or no free record) is marked unknown: every window
 * is busy for it.
 */
#ifndef SP_SIGFRAMES_H
#define SP_SIGFRAMES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* From the wrapper, before and after the application's handler (signal
 * context).  Push returns the token to give back to pop. */
int sp_sigframes_push(void *uc);
void sp_sigframes_pop(int token);

/* Does any recorded frame of thread TID (0: the calling thread) resume at a
 * PC for which INSIDE returns true?  INSIDE is called with the PC and CTX;
 * a thread whose frames are unknown answers true with PC 0. */
bool sp_sigframes_any(pid_t tid, bool (*inside)(uintptr_t pc, void *ctx), void *ctx);

/* Whether thread TID, blocked with its stack pointer at SP on its stack
 * [LO, HI) (its armed alternate stack [ALO, AHI), or 0, 0), may be running
 * a handler of the application: a recorded frame that is not dead, or
 * frames that are unknown.  Dead: below SP on the thread's stack, or on the
 * alternate stack while SP is not (a handler left by a jump). */
bool sp_sigframes_live(pid_t tid, uintptr_t sp, uintptr_t lo, uintptr_t hi, uintptr_t alo, uintptr_t ahi);

#endif
