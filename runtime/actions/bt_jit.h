/* bt_jit — a bpftrace block compiled to native code, run in the jmp
 * path's trampoline instead of the handler call (issue 18's speed bar).
 *
 * Why.  A block run through the handler costs the trampoline's full
 * register frame, dispatch, the guard and the evaluator's tree walk: ~45
 * ns a hit, where the built-in count (the trampoline's inline count,
 * fastcount.h) costs ~1.  The common one-liners (`/arg0 > 4096/ { @c =
 * count(); }`, `{ @h = hist(arg0); }`) need none of that: a few registers,
 * a comparison and an add.  So the blocks of bt_jitplan.h's subset are
 * written as machine code (x86emit.h) when their program attaches.
 *
 * Where it runs.  A site armed for such a block gets a hook in its
 * trampoline right after the inline count's commit (tramp.h):
 *
 *     movabs $&site->inline_fn,%rcx; mov (%rcx),%rcx; jrcxz 1f; call *%rcx
 *  1: pop %rdx; pop %rcx; lea 128(%rsp),%rsp; <the relocated window>
 *
 * The registry sets inline_fn (and the inline count's fast_off, so the
 * probe's hits are counted as a plain count's) only while the block's
 * probe is the site's only one; any other hit, a thread's first (no
 * stripe yet), the runtime's own calls and every int3 hit take the C path
 * and the evaluator, as before.  Both add to the same map (bt_shard.h).
 *
 * The code, entered by that call with the red zone and the two saved
 * registers above it:
 *
 *     push %rax; lahf; seto %al; push %rax      the flags, without pushfq/popfq
 *     push %r10; push %r11                      the only registers it uses, with
 *                                               rax, rcx, rdx (already saved)
 *     cmpb $0,ran; jne 1f; movb $1,ran          the program ran in this process
 *  1: <predicate into r10>; test; jz out
 *     mov %fs:fast,%rcx; movabs $D,%rdx; add %rdx,%rcx   this thread's parts
 *     <statements: incq/addq/cmpxchg on the parts, no lock prefix>
 *  out: pop %r11; pop %r10; pop %rax; add $0x7f,%al; sahf; pop %rax; ret
 *
 * Arguments are read where the probed code left them: rdi, rsi, r8, r9 in
 * place, rdx and rcx from their slots, arg6/arg7 from the interrupted
 * stack.  Every write is below the red zone (pushes from the trampoline's
 * frame) or to the thread's own parts: one read-modify-write instruction
 * each, so a signal handler's hit in between loses nothing.  Flags come
 * back with sahf and an add for OF; DF, TF and AC are never changed.
 */
#ifndef SP_BT_JIT_H
#define SP_BT_JIT_H

#include "bt.h"

/* Compile block B (once; later calls return at once) when bt_jitplan.h
 * allows it and the inline count is on: B->native is then set, and the
 * maps it updates have their per-thread parts.  SELFPROBE_BTJIT=0 turns it
 * off (the evaluator runs every block, for the tests and the bench).  The
 * counter stripes must exist (sp_tstate_init). */
void bt_jit_block(struct bt_block *b);

/* Did a compiled block of P run in this process (since the last fork)? */
bool bt_jit_ran(const struct bt_program *p);

/* In a fork child: pid changed. */
void bt_jit_atfork_child(void);

#endif
