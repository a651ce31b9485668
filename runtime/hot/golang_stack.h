/* golang_stack — each thread's stack for the trampolines' C calls from Go
 * sites: a goroutine's stack is small and may move, so those calls run on
 * a stack of the thread's own, mapped (NORESERVE) at its first such call by
 * golang_stack.S with raw system calls, and unmapped when the thread ends.
 * Included by the assembly too: its macros only, there. */
#ifndef SP_GOLANG_STACK_H
#define SP_GOLANG_STACK_H

#define SP_GO_STACK_SIZE (256 * 1024)   /* pages cost only when touched */
#define SP_GO_STACK_NEST (32 * 1024)    /* what one call takes (a nested one: the next below) */

#ifndef __ASSEMBLER__

/* The trampoline's call of FN(RDI, RSI) (passed in RDX) from a Go site,
 * on the thread's own stack for it; returns FN's eax. */
void sp_go_tramp_call(void);

/* Call FN on the private stack STACK_TOP (16-byte aligned). */
void sp_go_call_on_stack(void (*fn)(void), void *stack_top);

/* The calling thread ends (its key destructor, tstate.c): its stack for Go
 * sites is unmapped.  A Go site hit after this (a later destructor's, a
 * signal handler's) maps a new one. */
void sp_go_stack_release(void);

#endif
#endif
