/* golang_stack — see golang_stack.h. */
#include "golang_stack.h"
#include "rawsys.h"

#include <stdint.h>

/* Each thread's stack for the trampolines' C calls from Go sites, mapped
 * at its first such call (golang_stack.S); a call nested in it (a signal
 * handler's hit) goes below the region the interrupted one holds. */
__thread uintptr_t sp_go_stack_base __attribute__((tls_model("initial-exec")));
__thread uintptr_t sp_go_stack_cur __attribute__((tls_model("initial-exec")));

void sp_go_stack_release(void)
{
	uintptr_t base = sp_go_stack_base;
	if (!base)
		return;
	/* no region first, then no stack: a hit between the two (a signal
	 * handler's) maps a fresh stack rather than use this one */
	__atomic_store_n(&sp_go_stack_cur, 0, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__atomic_store_n(&sp_go_stack_base, 0, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	sp_sys_munmap((void *)base, SP_GO_STACK_SIZE);
}
