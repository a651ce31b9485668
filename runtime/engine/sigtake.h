/* sigtake — a runtime loaded late takes libc's signal entry points.
 *
 * Preloaded, the runtime's sigaction, signal, sigprocmask and
 * pthread_sigmask come first in symbol lookup (interpose/): the program's
 * own SIGTRAP, SIGSEGV … handlers are recorded and chained to, and no mask
 * ever blocks the runtime's signals.  Loaded by `selfprobe attach` into a
 * running process, it comes after libc, and the program's calls would go
 * straight to the kernel: a SIGTRAP handler installed later would receive
 * our int3 hits, a SIGTRAP blocked later would make the kernel kill the
 * process at the next hit.
 *
 * So while a session is attached, libc's own entry points lead into the
 * runtime: a 5-byte jmp at the entry of libc's __sigaction (= sigaction)
 * and pthread_sigmask, to the trap handler's entry functions (trap.h),
 * which do what glibc does with system calls of their own.  Why the entry
 * and not the GOT/PLT slots of every object: one place catches every way
 * in — the PLT of objects loaded before or after, a pointer the program
 * took with dlsym (RTLD_NEXT, RTLD_DEFAULT or a handle) or &sigaction
 * before the attach, and libc's internal callers, which never use a PLT
 * (signal, bsd_signal, sysv_signal, sigset, sigvec, siginterrupt,
 * sigignore call __sigaction; sigprocmask, sigblock, sigsetmask, sighold,
 * sigrelse, siglongjmp's mask restore call pthread_sigmask).  GOT rewriting
 * would miss the last three, must follow every dlopen, and a read-only
 * (RELRO) GOT must be made writable.  The entry jmp is armed and removed
 * as a probe's is (arm.h: int3 first, the stop check, every core synced),
 * on a site the one decision (decide.h) found safe for a jmp; while its
 * int3 stands the trap handler sends the thread to the same place.
 *
 * What stays out of reach: a raw rt_sigaction or rt_sigprocmask system
 * call (Go without cgo, a program's own assembly), libc's setcontext and
 * swapcontext (their mask is a raw system call), a libc other than the
 * one mapped (refused by attach), and a program that reads its handler
 * back with a raw system call while attached (it sees ours).  After the
 * detach the entry bytes are the file's again; once no site of ours is
 * left, a stop check round makes every thread take a trap raised before
 * the restore, and the program's own actions of the owned signals go back
 * to the kernel (sp_trap_uninstall); where that cannot be made sure, the
 * runtime's handlers stay and chain to the program's.  The next take
 * records any handler the program installed meanwhile as its own.
 */
#ifndef SP_SIGTAKE_H
#define SP_SIGTAKE_H

#include <stddef.h>

/* Lead libc's entry points into the runtime (idempotent).  0, or -errno
 * with the reason in ERR: nothing is left taken. */
int sp_sigtake_on(char *err, size_t errlen);
/* Give them back: the file's bytes again. */
void sp_sigtake_off(void);
/* Are they taken now? */
int sp_sigtake_active(void);

#endif
