/* taskstack — what another thread of this process is doing, read from
 * /proc without disturbing it: whether it is blocked in a system call (and
 * its user stack pointer and PC there), where its stack lies, whether it
 * still exists.
 *
 * A thread blocked in a system call is never signalled to ask (a signal
 * would cut short a sleep or a wait of the program's with EINTR): the
 * kernel's /proc/self/task/TID/syscall gives its registers.  A thread's
 * stack is the mapping glibc made for it, which also holds its static TLS
 * (any address of it identifies the mapping); the main thread's is the
 * kernel's [stack].  Raw system calls only: a probe on libc's open or read
 * must not count the runtime's reads.
 */
#ifndef SP_TASKSTACK_H
#define SP_TASKSTACK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* 0 with *SP and *PC when TID is blocked in a system call; -EAGAIN when it
 * runs (or is between a return to user space and its next call); another
 * -errno when it cannot be read. */
int sp_task_blocked(pid_t tid, uintptr_t *sp, uintptr_t *pc);

/* The stack of thread TID, [*LO, *HI): the main thread's [stack], another
 * thread's the mapping that holds TLS_ADDR (an address in its static TLS).
 * false when it cannot be found. */
bool sp_task_stack(pid_t tid, uintptr_t tls_addr, uintptr_t *lo, uintptr_t *hi);

/* Whether no thread TID exists in this process any more (a thread that
 * ended by a raw exit, with no key destructor). */
bool sp_task_gone(pid_t tid);
/* The same in process PID, the caller's, known: one system call, for a
 * scan of many threads. */
bool sp_task_gone_in(pid_t pid, pid_t tid);

#endif
