/* unwind_hooks — unwinders see real return addresses (unwind_hooks.c). */
#ifndef SP_UNWIND_HOOKS_H
#define SP_UNWIND_HOOKS_H

/* A return probe was attached: make sure thread cancellation's forced
 * unwind, which glibc calls in libgcc_s through a private pointer that no
 * interposer sees, restores the thread's return addresses first (an
 * internal probe on libgcc_s's own _Unwind_ForcedUnwind).  Registry lock
 * held.  Once armed, nothing more to do; until libgcc_s is loaded, tried
 * again at each call. */
void sp_unwind_hooks_arm(void);

#endif
