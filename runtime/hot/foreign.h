/* foreign — a task that runs with a thread's TLS without being that thread.
 *
 * A raw clone(CLONE_VM) without CLONE_SETTLS keeps its creator's thread
 * pointer, so every __thread variable it reads is its creator's, sp_tls
 * included: LeakSanitizer's stop-the-world tracer, posix_spawn's child, a
 * hand-made runtime's workers.  A hit of such a task counted with the
 * thread's unlocked adds and in its rseq area, pushed onto its shadow
 * stack and published in its dispatch record would race with the thread
 * (lost counts, a return swapped on the wrong task's record).  Its hits
 * are told apart and counted on their own: in the shared stripe with
 * atomic adds (hits), and `missed` for a probe that would run a handler
 * or see the return (dispatch.c).  A thread of the process is always
 * itself.
 *
 * How.  A thread's hits run on its own stack, whose range is learnt at its
 * first hit (the main thread's [stack], another's the mapping that holds
 * its static TLS: taskstack.h): a hit on it is the thread's, one compare
 * (the trampoline makes it without touching the flags, fastcount.h).  A
 * hit off it (a handler on an alternate signal stack, a coroutine's stack,
 * a task of another's) asks the kernel the one thing a task of another's
 * cannot share: the robust-futex list head the task registered.  glibc
 * registers &self->robust_head for every thread it starts and again in a
 * fork child, at a fixed offset in struct pthread, which starts at the
 * thread pointer (%fs:0, the psABI's TCB); the kernel gives a new task
 * none (clone), so a task is the TLS's thread exactly when its head is
 * that TLS's.  One system call (get_robust_list), only off the stack,
 * and only where whose it is matters: a plain count off the thread's stack
 * (a coroutine's hits) is made without thread state, whoever the task is
 * (tramp.c).
 * A vfork child runs on its parent's stack: it is taken for its thread,
 * and tstate/uret have their own rules for it.
 *
 * Where glibc registered no list (a kernel or sandbox without
 * set_robust_list), nothing tells the tasks apart: every task is taken for
 * its TLS's thread, as before this existed (sp_foreign_known says so). */
#ifndef SP_FOREIGN_H
#define SP_FOREIGN_H

#include <stdbool.h>
#include <stdint.h>

#include "tstate.h"

/* Before the first probe is armed, from a thread started by glibc (the
 * engine's first attach); again is nothing. */
void sp_foreign_init(void);
/* Whether tasks can be told apart here (the robust list is registered). */
bool sp_foreign_known(void);

static inline uintptr_t sp_foreign_sp(void)
{
	uintptr_t sp;
	__asm__ volatile("mov %%rsp, %0" : "=r"(sp));
	return sp;
}

/* Off the stack learnt (or none learnt yet): ask the kernel. */
bool sp_foreign_slow(uintptr_t sp);

/* Is the calling task on the stack learnt for its sp_tls's thread (so it
 * is that thread)?  No question asked: false also before it is learnt. */
static inline bool sp_foreign_on_own_stack(void)
{
	uintptr_t sp = sp_foreign_sp();
	return sp >= sp_tls.own_lo && sp < sp_tls.own_hi;
}

/* Is the calling task not the thread whose sp_tls it sees? */
static inline bool sp_foreign(void)
{
	if (__builtin_expect(sp_foreign_on_own_stack(), 1))
		return false;
	return sp_foreign_slow(sp_foreign_sp());
}

/* Hits made by tasks of another's so far. */
uint64_t sp_foreign_hits(void);
/* Count one (dispatch.c, tramp.c). */
void sp_foreign_count(void);

#endif
