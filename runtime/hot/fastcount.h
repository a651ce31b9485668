/* fastcount — the trampoline's inline count: a site whose only probe is a
 * plain count adds its hit without a call, without saving a register frame
 * and without touching the flags.
 *
 * The trampoline (tramp.h) runs, before anything else:
 *
 *           push %rcx; push %rdx
 *           mov %fs:runtime,%ecx; jrcxz own; jmp c_path   the runtime's own calls
 *   own:    mov %fs:own_neg_lo,%rcx; lea (%rsp,%rcx),%rcx  %rsp - lo ...
 *           bswap %rcx; movzbl %cl,%ecx                    ... its top byte: 0 when >= 0
 *           mov %fs:own_neg_hi,%rdx; lea (%rsp,%rdx),%rdx  %rsp - hi ...
 *           bswap %rdx; not %rdx; movzbl %dl,%edx          ... its top byte, inverted: 0 when < 0
 *           lea (%rcx,%rdx),%rcx; jrcxz arm; jmp c_path    off the thread's stack
 *   arm:    lea desc(%rip),%rcx; mov %rcx,%fs:rseq_cs     an rseq critical section
 *   start:  mov %fs:fast,%rcx; jrcxz c_clear              this thread's stripe
 *           mov %rcx,%rdx
 *           movabs $&site->fast_off,%rcx; mov (%rcx),%ecx; jrcxz c_clear
 *           lea (%rdx,%rcx),%rcx
 *           mov (%rcx),%rdx; lea 1(%rdx),%rdx
 *           mov %rdx,(%rcx)                                the commit
 *   post:   movq $0,%fs:rseq_cs
 *           pop %rdx; pop %rcx; lea 128(%rsp),%rsp; the relocated window
 *   c_clear: movq $0,%fs:rseq_cs; c_restore: pop %rdx; pop %rcx; c_path …
 *           (signature) abort: jmp arm
 *
 * The thread's own stack.  A task that runs with another thread's TLS (a
 * raw clone(CLONE_VM): foreign.h) must not count in that thread's stripe,
 * whose unlocked add its rseq area does not protect against the thread
 * itself.  A thread's hits on its own stack are its own: the sequence
 * runs only where %rsp lies in sp_tls's [own_lo, own_hi), checked without
 * a flag (the differences of user addresses fit in 48 bits, so their top
 * byte is 0x00 or 0xff); anywhere else, or before the range is learnt
 * (both 0: the second check fails), the C path asks.  Not on a Go site:
 * a goroutine's stack is never the thread's (foreign.h).
 *
 * Why rseq.  The count is a load, an add and a store on the thread's own
 * stripe (tstate.h), with the probe's offset read from the site.  Two
 * things could make it wrong, and the kernel's restartable sequences
 * remove both: a signal handler of the same thread that counts between the
 * load and the store (its hit would be lost), and a detach that frees the
 * probe's id between reading the offset and the store (the hit would land
 * on the next probe given that id).  The kernel restarts the sequence at
 * ABORT whenever the thread is preempted, migrated or interrupted by a
 * signal inside [start, post), and MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ
 * restarts it on every thread of the process at once: a detacher that has
 * cleared fast_off and run that fence knows no thread will still store to
 * the old offset.  No flag-changing instruction is used (jrcxz, lea, mov),
 * so nothing needs saving but the two scratch registers.
 *
 * The rseq area is glibc's (registered for every thread since 2.35;
 * __rseq_offset from the thread pointer); its signature for x86 is
 * RSEQ_SIG.  Where glibc registered none (glibc.pthread.rseq=0, an old
 * kernel) or the membarrier command is missing, the inline count is off and
 * every site takes the C path as before.  rseq_cs is cleared when the
 * sequence ends, so it never points into a trampoline that could go away.
 * As with any rseq code, a debugger single-stepping through the sequence
 * loops (each step's trap restarts it).
 */
#ifndef SP_FASTCOUNT_H
#define SP_FASTCOUNT_H

#include <stdbool.h>
#include <stdint.h>

#define SP_RSEQ_SIG 0x53053053u    /* glibc's RSEQ_SIG on x86 */

struct sp_fastcount {
	bool on;                    /* trampolines carry the inline count */
	int32_t tls_fast;           /* %fs offsets: sp_tls.fast */
	int32_t tls_runtime;        /*   sp_tls.runtime */
	int32_t tls_rseq_cs;        /*   glibc's struct rseq .rseq_cs */
	int32_t tls_own_neg_lo;     /*   sp_tls.own_neg_lo */
	int32_t tls_own_neg_hi;     /*   sp_tls.own_neg_hi */
};

extern struct sp_fastcount sp_fastcount __attribute__((visibility("hidden")));

/* Once, with the counters (after sp_tstate_init).  Decides sp_fastcount.on.
 * TLS_FAST, TLS_RUNTIME, OWN_NEG_LO, OWN_NEG_HI: this thread's sp_tls.fast,
 * .runtime, .own_neg_lo and .own_neg_hi (tstate.h, which calls this:
 * fastcount does not include it back). */
void sp_fastcount_init(const void *tls_fast, const void *tls_runtime, const void *own_neg_lo,
		       const void *own_neg_hi);
/* May this thread take the inline count (its rseq area is registered)? */
bool sp_fastcount_thread_ok(void);
/* Every thread's inline count in flight restarts (after a site's fast_off
 * changed, before the old probe's id is freed). */
void sp_fastcount_fence(void);
/* In a fork child: the membarrier registration is per process.  True when
 * the inline count is off from now on: the caller clears sp_tls.fast. */
bool sp_fastcount_atfork_child(void);

#endif
