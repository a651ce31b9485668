/* hazard — sites where an int3 would break the application, and why.
 *
 * The int3 path needs SIGTRAP to be deliverable at the site: the kernel
 * kills a process whose int3 fires while SIGTRAP is blocked, and a trap on
 * the code that returns from a signal handler would recurse forever.  Most
 * such windows are in the application's hands (and our interposed
 * sigprocmask/sigaction keep SIGTRAP out of them); the ones inside libc
 * itself are listed here, with the reason each is dangerous.
 *
 * A return probe swaps the return address in the stack slot at the
 * function's entry (uret.h).  That is wrong for a function that returns
 * twice (setjmp, vfork, getcontext), keeps its return address for a later
 * jump, returns only on failure on a stack that goes away (exec in a
 * posix_spawn child), or walks the stack from its own frame (the
 * unwinders): those are listed too, by name, with the reason.
 */
#ifndef SP_HAZARD_H
#define SP_HAZARD_H

#include <stdint.h>

/* Why an int3 at ADDR (in function SYMBOL of the object at OBJECT_PATH,
 * SYMBOL may be NULL) would break the process, or NULL when it is safe. */
const char *sp_hazard_int3(const char *object_path, const char *symbol, uintptr_t addr);

/* Why a site of SYMBOL must not stay on the int3 path (a jmp is allowed:
 * its write's int3 lasts microseconds), or NULL.  SYMBOL is a function's
 * name, an IFUNC's, or the name of one of its implementations (those of
 * the listed IFUNCs are matched by their "__NAME_<isa>" form). */
const char *sp_hazard_int3_path(const char *object_path, const char *symbol);

/* Why swapping the return address of function SYMBOL (any object: the
 * names are the C library's and the unwinder ABI's, reserved wherever they
 * are defined) would break the process, or NULL when a return probe is
 * safe there.  Entry probes on these functions stay allowed.  Also refuses
 * symbols that are not function entries (a compiler's .cold part). */
const char *sp_hazard_return(const char *symbol);

#endif
