/* tramp — the jmp path's per-site trampoline, generated at attach.
 *
 *   site:   jmp tramp                     (5 bytes; the rest of the window
 *                                          is never executed again)
 *   tramp:  lea -128(%rsp),%rsp           leave the red zone before any write
 *   fast:   the inline count (fastcount.h), when the process has rseq: a
 *           site whose only probe counts adds its hit with two scratch
 *           registers and no call, restores them and the stack, and runs
 *           straight into reloc below; any other site (or the runtime's own
 *           calls) leaves it for c_path, after reloc.
 *           A site armed for a compiled bpftrace block (site.h
 *           inline_code) has that block's code here, after the count's
 *           commit (bt_jit.h); there the count is on only while that
 *           block's probe is the site's only one.
 *           lea 128(%rsp),%rsp
 *   reloc:  <the displaced window, relocated>; jmp site+len
 *   c_path: pushfq; push %rax
 *           movabs $site,%rax; cmpb $0,has_handlers(%rax); jne full
 *   lean:   (count-only probes: no frame for handlers)
 *           push the other caller-saved registers; align; call
 *           sp_tramp_count(site, rsp); pop them; restore the flags with
 *           sahf and an adc for OF (popfq costs ~20 cycles; taken only
 *           when DF, TF or AC is set); pop %rax; lea 136(%rsp),%rsp;
 *           jmp reloc
 *   full:   pop %rax; popfq
 *           lea -24(%rsp),%rsp            (the full frame, as follows)
 *           (lea -24(%rsp),%rsp)          room for rip, eflags, rsp fields
 *           push rdi … r15                → a struct selfprobe_regs at A = %rsp
 *           pushfq; pop %rax; mov → A.eflags
 *           lea 272(%rsp),%rax; mov → A.rsp   (the interrupted rsp)
 *           movabs $site → A.rip
 *           cld                            C code assumes DF = 0
 *           mov %rsp,%rbx; and $-16,%rsp   align for the call (rbx survives it)
 *           call sp_tramp_dispatch(site, A)
 *           mov %rbx,%rsp
 *           test %eax,%eax; jnz slow
 *           push A.eflags; popfq           flags as the handlers left them
 *           pop r15 … rdi                  registers as the handlers left them
 *           lea 152(%rsp),%rsp             back to the interrupted rsp
 *           jmp reloc                      (without the inline count, c_path
 *                                          comes first and falls into reloc)
 *   slow:   pop r15 … rdi; int3            a handler moved rip or rsp: the
 *                                          SIGTRAP handler applies them (the
 *                                          only way to set rsp, rip and flags
 *                                          at once without writing near the
 *                                          interrupted stack)
 *   tail:   (with the inline count) its rseq abort handler and descriptor
 *
 * Written with x86emit's named emitters (mech/x86emit.h), never as hex.
 * Nothing is written at or above the interrupted rsp - 128.  Vector state
 * is not saved here: the dispatch C code is built with -mgeneral-regs-only,
 * and only a site with handlers pays for an XSAVE around them (xsave.S).
 */
#ifndef SP_TRAMP_H
#define SP_TRAMP_H

#include <stddef.h>
#include <stdint.h>

#include "jmpplan.h"
#include "reloc.h"
#include "selfprobe.h"

#include "site.h"

struct sp_site;


/* Generate the trampoline for SITE with window W into near code memory.
 * 0, or -errno with *REASON. */
int sp_tramp_build(struct sp_site *site, const struct sp_window *w, struct sp_tramp *out,
		   const char **reason);

/* What sp_tramp_build writes, as it must lie at BASE, into CODE (room for
 * SP_TRAMP_MAX bytes), nothing allocated or written to the process: its
 * length, or -errno with *REASON.  For the tests (test_tramp_emit.c). */
#define SP_INLINE_MAX 512   /* a probe's native code (site.h inline_code) */
#define SP_TRAMP_MAX (128 + 416 + SP_RELOC_MAX + 32 + 96 + SP_INLINE_MAX)
long sp_tramp_emit(struct sp_site *site, const struct sp_window *w, uintptr_t base, uint8_t *code,
		   struct sp_tramp *out, const char **reason);
/* The same, as sp_tramp_build makes it: a copy of the first trampoline
 * emitted for the site's shape, with what is the site's own written in
 * (tramp.c); byte for byte sp_tramp_emit's. */
long sp_tramp_emit_shaped(struct sp_site *site, const struct sp_window *w, uintptr_t base, uint8_t *code,
			  struct sp_tramp *out, const char **reason);

/* A carrier's trampoline (hop.h): W relocated, then the jump back; no
 * count, no frame (nothing of the site's is ever dispatched).  0, or
 * -errno with *REASON. */
int sp_tramp_build_bare(struct sp_site *site, const struct sp_window *w, struct sp_tramp *out,
			const char **reason);

/* Called by the trampoline (C ABI, general registers only).  Returns 0 to
 * resume normally, 1 when the handlers moved rip or rsp (slow path). */
int sp_tramp_dispatch(struct sp_site *site, struct selfprobe_regs *regs);

/* The lean path's call, when no probe of the site needs the full frame:
 * count, or (count-only uretprobes) swap the return address at RSP. */
void sp_tramp_count(struct sp_site *site, uintptr_t rsp);

/* The slow path's pending resume, consumed by the SIGTRAP handler at the
 * trampoline's int3 at INT3_ADDR, trapped with rsp AT_RSP.  Signal-safe; a
 * per-thread stack (signals nest). */
int sp_tramp_take_pending(uintptr_t int3_addr, uintptr_t at_rsp, uint64_t *rip, uint64_t *rsp,
			  uint64_t *eflags);

#endif
