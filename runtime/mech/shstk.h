/* shstk — return probes and hardware shadow stacks (Intel CET, AMD's
 * shadow stack; Linux user shadow stacks since 6.6, enabled by glibc 2.39+
 * for programs marked -mshstk).
 *
 * With a shadow stack, every RET compares the return address on the stack
 * with the copy the CPU keeps; a return probe swaps the one on the stack
 * for the return trampoline, so the RET faults (#CP, SIGSEGV).  The kernel
 * rewrites the shadow copy for its own uretprobes; user space cannot
 * without WRSS.  So in a process with a shadow stack, return probes
 * (uretprobe, usession, =latency) are refused with that reason (the
 * RET-site method, an entry probe on every RET of the function, would
 * serve them: not built).  Entry probes are unaffected: the jmp path and
 * the int3 path return by RET to the probed code's own addresses, and no
 * trampoline or pad is reached by an indirect branch (the site's jmp and
 * the hop's are direct; the trap handler resumes by sigreturn), so IBT's
 * ENDBR64 is never required of our code.
 *
 * The answer is the calling thread's (threads inherit it from their
 * creator; glibc enables it for the whole process at start-up):
 * arch_prctl(ARCH_SHSTK_STATUS), else /proc/self/status's
 * x86_Thread_features line.  The parsing and the choice are pure functions
 * so that a test can give them both answers on any machine.
 */
#ifndef SP_SHSTK_H
#define SP_SHSTK_H

#include <stdbool.h>

/* From arch_prctl(ARCH_SHSTK_STATUS): RC (0 or -errno) and the feature
 * bits it wrote.  *KNOWN: whether the kernel answered. */
bool sp_shstk_from_prctl(long rc, unsigned long features, bool *known);
/* From the text of /proc/self/status (NULL: unreadable). */
bool sp_shstk_from_status(const char *status);
/* Does this thread run with a shadow stack?  (Asked once, then cached.) */
bool sp_shstk_enabled(void);
/* Why return probes are refused with a shadow stack ENABLED; NULL: they
 * may swap return addresses. */
const char *sp_shstk_return_refusal(bool enabled);

#endif
