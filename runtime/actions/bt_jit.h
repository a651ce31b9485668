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
 * Where it runs.  A site armed for such a block has the block's code in
 * its trampoline, right after the inline count's commit (tramp.h):
 *
 *     <inline count: the probe's hit, rseq-protected>; movq $0,%fs:rseq_cs
 *     <the block's code, falling through at its end>
 *     pop %rdx; pop %rcx; lea 128(%rsp),%rsp; <the relocated window>
 *
 * No call, no pointer load: copying the bytes in instead of calling them
 * took the compiled count from 3.4 to ~2.5 ns a hit (bench/README).  The
 * registry turns the site's inline count on only while the block's probe
 * is the site's only one (probevec.c sp_probevec_replace); any other hit, a
 * thread's first (no stripe yet), the runtime's own calls and every int3
 * hit take the C path and the evaluator, as before.  Both add to the same
 * map (bt_shard.h).
 *
 * The code, with the red zone and the two registers the count saved
 * above it:
 *
 *     push %rax; lahf; seto %al                 the flags, without pushfq/popfq
 *     [push %rax; push %r10; push %r11]         only when it computes values
 *     mov %fs:fast,%rcx                         this thread's stripe; its parts
 *                                               are at a constant displacement
 *     movb $1,ran(%rcx)                         the program ran (per thread)
 *     <predicate as compare-and-branch>; jcc out
 *     <statements: incq/addq/cmpxchg on the parts, no lock prefix>
 *  out: [pop …]; add $0x7f,%al; sahf; pop %rax
 *
 * Arguments are read where the probed code left them: rdi, rsi, r8, r9 in
 * place, rdx and rcx from their slots, arg6/arg7 from the interrupted
 * stack; tid from a per-thread cache a syscall fills the first time.
 * Every write is below the red zone (pushes from the trampoline's frame)
 * or to the thread's own parts: one read-modify-write instruction each,
 * so a signal handler's hit in between loses nothing.  Flags come back
 * with sahf and an add for OF; DF, TF and AC are never changed.
 * Why per-thread parts and not per-CPU: a thread's stripe is already
 * exclusive (tstate.h), found with one %fs load, and needs no rseq
 * restart; per-CPU words would need one for every update.
 */
#ifndef SP_BT_JIT_H
#define SP_BT_JIT_H

#include "bt.h"

/* Compile block B (once; later calls return at once) when bt_jitplan.h
 * allows it and the inline count is on: B->native (position-independent
 * bytes for a trampoline to copy, at most SP_INLINE_MAX) is then set, and
 * the maps it updates have their per-thread parts.  SELFPROBE_BTJIT=0 turns it
 * off (the evaluator runs every block, for the tests and the bench).  The
 * counter stripes must exist (sp_tstate_init). */
void bt_jit_block(struct bt_block *b);

/* Did a compiled block of P run in this process (since the last fork)? */
bool bt_jit_ran(const struct bt_program *p);

/* Under the launcher (shm.h) the parts live in its shared file: the file
 * offset of M's part 0 (bt_shard.h), or of P's "ran" byte in part 0 (the
 * next parts SP_CHUNK_BYTES on).  0, or -1 (private memory, or M has no
 * compiled blocks' parts). */
#include <stdint.h>
int bt_jit_part_file(const struct bt_map *m, uint64_t *off);
int bt_jit_ran_file(const struct bt_program *p, uint64_t *off);

/* In a fork child: pid changed (the parts start again from zero with the
 * stripes' memory). */
void bt_jit_atfork_child(void);

#endif
