/* hazard — sites where an int3 would break the application, and why.
 *
 * The int3 path needs SIGTRAP to be deliverable at the site: the kernel
 * kills a process whose int3 fires while SIGTRAP is blocked, and a trap on
 * the code that returns from a signal handler would recurse forever.  Most
 * such windows are in the application's hands (and our interposed
 * sigprocmask/sigaction keep SIGTRAP out of them); the ones inside libc
 * itself are listed here, with the reason each is dangerous.
 */
#ifndef SP_HAZARD_H
#define SP_HAZARD_H

#include <stdint.h>

/* Why an int3 at ADDR (in function SYMBOL of the object at OBJECT_PATH,
 * SYMBOL may be NULL) would break the process, or NULL when it is safe. */
const char *sp_hazard_int3(const char *object_path, const char *symbol, uintptr_t addr);

#endif
