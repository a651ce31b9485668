/* tramp — see tramp.h for the code it generates and why. */
#include "tramp.h"
#include "heap.h"
#include "golang_stack.h"
#include "coexist.h"
#include "codemem.h"
#include "dispatch.h"
#include "fastcount.h"
#include "foreign.h"
#include "patch.h"
#include "probe.h"
#include "site.h"
#include "sigatomic.h"
#include "tstate.h"
#include "uret.h"
#include "x86emit.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* The code is written with x86emit's named emitters; the bytes each
 * produces are in the comment beside it, AT&T syntax. */

/* The stack the trampoline leaves below the interrupted rsp before it
 * writes anything: the SysV red zone. */
#define RED_ZONE 128
/* The flags popfq must restore itself: sahf and the adc for OF (below)
 * cannot set TF (bit 8), DF (bit 10) or AC (bit 18). */
#define EFLAGS_TF 0x100
#define EFLAGS_DF 0x400
#define EFLAGS_AC 0x40000
#define EFLAGS_OF_BIT 11
/* The lean path's frame, from %rbp up: the saved rbp, the lean registers,
 * rax, the flags, the red zone; the interrupted rsp is above it. */
#define LEAN_FRAME(n_regs) (8 * (1 + (n_regs) + 1 + 1) + RED_ZONE)
/* The full path's frame, a struct selfprobe_regs: its fields from rip up
 * are made room for before the registers are pushed under them. */
#define REGS_SIZE ((int32_t)sizeof(struct selfprobe_regs))
#define REGS_RIP ((int32_t)offsetof(struct selfprobe_regs, rip))
#define REGS_EFLAGS ((int32_t)offsetof(struct selfprobe_regs, eflags))
#define REGS_RSP ((int32_t)offsetof(struct selfprobe_regs, rsp))

/* pop r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi */
static void pop_all(struct x86e *e)
{
	static const int8_t order[] = { X86_R15, X86_R14, X86_R13, X86_R12, X86_RBP, X86_RBX, X86_R11, X86_R10,
					X86_R9, X86_R8, X86_RAX, X86_RCX, X86_RDX, X86_RSI, X86_RDI };
	for (size_t i = 0; i < sizeof(order); i++)
		x86_pop(e, order[i]);
}

/* ---- the inline count (fastcount.h) ---- */

struct fast_fix {
	size_t arm, start, post;        /* offsets of the sequence's labels */
	size_t jc_at, jclear_at, jown_at;   /* jmps to the C path, to fill (jown_at: 0 on a Go site) */
	size_t desc_lea_at;             /* the rel32 of lea desc(%rip) */
	size_t fast_off_at;             /* the imm64 &site->fast_off */
	size_t desc_at, abort_at;       /* the rseq descriptor, the abort handler */
};

/* The sequence, up to where the relocated window follows; its jmps into
 * the C path are filled by emit_fast_exit, the descriptor's lea by
 * emit_fast_tail. */
static void emit_fast(struct x86e *e, const struct sp_site *site, struct fast_fix *fx)
{
	x86_push(e, X86_RCX);                                          /* push %rcx */
	x86_push(e, X86_RDX);                                          /* push %rdx */
	x86_mov_r32_m32(e, X86_RCX, x86_fs(sp_fastcount.tls_runtime)); /* mov %fs:runtime,%ecx */
	size_t jown = x86_jrcxz(e);                                    /* jrcxz own */
	fx->jc_at = x86_jmp_rel32(e);                                  /* jmp c_restore: the runtime's call */
	size_t to_clear = x86_here(e);
	fx->jclear_at = x86_jmp_rel32(e);                              /* jmp c_clear (jrcxz's reach) */
	x86_patch_rel8(e, jown, x86_here(e));
	size_t jarm = 0;
	if (!site->go_stack) {   /* on the thread's own stack (fastcount.h) */
		x86_mov_r64_m64(e, X86_RCX, x86_fs(sp_fastcount.tls_own_neg_lo)); /* mov %fs:own_neg_lo,%rcx */
		x86_lea(e, X86_RCX, x86_mem_idx(X86_RSP, X86_RCX, 1, 0));          /* lea (%rsp,%rcx),%rcx */
		x86_bswap_r64(e, X86_RCX);                                        /* bswap %rcx */
		x86_movzx_r32_r8(e, X86_RCX, X86_RCX);                            /* movzbl %cl,%ecx */
		x86_mov_r64_m64(e, X86_RDX, x86_fs(sp_fastcount.tls_own_neg_hi)); /* mov %fs:own_neg_hi,%rdx */
		x86_lea(e, X86_RDX, x86_mem_idx(X86_RSP, X86_RDX, 1, 0));          /* lea (%rsp,%rdx),%rdx */
		x86_bswap_r64(e, X86_RDX);                                        /* bswap %rdx */
		x86_not_r64(e, X86_RDX);                                          /* not %rdx */
		x86_movzx_r32_r8(e, X86_RDX, X86_RDX);                            /* movzbl %dl,%edx */
		x86_lea(e, X86_RCX, x86_mem_idx(X86_RCX, X86_RDX, 1, 0));          /* lea (%rcx,%rdx),%rcx */
		jarm = x86_jrcxz(e);                                              /* jrcxz arm */
		fx->jown_at = x86_jmp_rel32(e);                                   /* jmp c_restore: off it */
	}
	fx->arm = x86_here(e);
	if (jarm)
		x86_patch_rel8(e, jarm, fx->arm);
	/* lea desc(%rip),%rcx: its rel32 filled by emit_fast_tail */
	x86_bytes(e, (const uint8_t[]){ 0x48, 0x8d, 0x0d }, 3);
	fx->desc_lea_at = x86_here(e);
	x86_u32(e, 0);
	x86_mov_m64_r64(e, x86_fs(sp_fastcount.tls_rseq_cs), X86_RCX); /* mov %rcx,%fs:rseq_cs */
	fx->start = x86_here(e);
	x86_mov_r64_m64(e, X86_RCX, x86_fs(sp_fastcount.tls_fast));    /* mov %fs:fast,%rcx */
	x86_jrcxz_to(e, to_clear);                                     /* jrcxz → c_clear */
	x86_mov_r64_r64(e, X86_RDX, X86_RCX);                          /* mov %rcx,%rdx */
	x86_mov_r64_imm64(e, X86_RCX, (uintptr_t)&site->fast_off);     /* movabs $&fast_off,%rcx */
	fx->fast_off_at = x86_here(e) - 8;
	x86_mov_r32_m32(e, X86_RCX, x86_mem(X86_RCX, 0));              /* mov (%rcx),%ecx */
	x86_jrcxz_to(e, to_clear);                                     /* jrcxz → c_clear */
	x86_lea(e, X86_RCX, x86_mem_idx(X86_RDX, X86_RCX, 1, 0));      /* lea (%rdx,%rcx),%rcx */
	x86_mov_r64_m64(e, X86_RDX, x86_mem(X86_RCX, 0));              /* mov (%rcx),%rdx */
	x86_lea(e, X86_RDX, x86_mem(X86_RDX, 1));                      /* lea 1(%rdx),%rdx */
	x86_mov_m64_r64(e, x86_mem(X86_RCX, 0), X86_RDX);              /* mov %rdx,(%rcx): commit */
	fx->post = x86_here(e);
	x86_mov_m64_imm32(e, x86_fs(sp_fastcount.tls_rseq_cs), 0);     /* movq $0,%fs:rseq_cs */
	/* a probe's native code (bt_jit.h: position-independent, it falls
	 * through at its end), outside the critical section: it adds to the
	 * thread's own words with single instructions.  The count above runs
	 * only while that probe is the site's only one (probevec.c) */
	if (site->inline_code)
		x86_bytes(e, site->inline_code, site->inline_len);
	x86_pop(e, X86_RDX);                                           /* pop %rdx */
	x86_pop(e, X86_RCX);                                           /* pop %rcx */
	x86_lea(e, X86_RSP, x86_mem32(X86_RSP, RED_ZONE));             /* lea 0x80(%rsp),%rsp */
	/* the relocated window follows */
}

/* Right after the relocated window: the way from the sequence into the C
 * path, which the caller emits next. */
static void emit_fast_exit(struct x86e *e, struct fast_fix *fx)
{
	size_t c_clear = x86_here(e);
	x86_mov_m64_imm32(e, x86_fs(sp_fastcount.tls_rseq_cs), 0);     /* movq $0,%fs:rseq_cs */
	size_t c_restore = x86_here(e);
	x86_pop(e, X86_RDX);                                           /* pop %rdx */
	x86_pop(e, X86_RCX);                                           /* pop %rcx */
	if (e->overflow)
		return;
	x86_patch_rel32(e, fx->jc_at, c_restore);
	if (fx->jown_at)
		x86_patch_rel32(e, fx->jown_at, c_restore);
	x86_patch_rel32(e, fx->jclear_at, c_clear);
}

/* After the slow path's int3: the abort handler with its signature, and
 * the rseq descriptor, 32-byte aligned. */
static void emit_fast_tail(struct x86e *e, uintptr_t base, struct fast_fix *fx)
{
	/* the signature before the abort address, as the operand of an
	 * instruction (ud1 sig(%rip),%edi) so that the bytes disassemble */
	x86_ud1_rip_sig(e, SP_RSEQ_SIG);
	size_t abort_at = fx->abort_at = x86_here(e);
	size_t ja = x86_jmp_rel32(e);                                  /* jmp arm: start over */
	while ((base + e->len) % 32 && !e->overflow)
		x86_int3(e);
	size_t desc = fx->desc_at = x86_here(e);
	struct {
		uint32_t version, flags;
		uint64_t start_ip, post_commit_offset, abort_ip;
	} d = { 0, 0, base + fx->start, fx->post - fx->start, base + abort_at };
	x86_bytes(e, &d, sizeof(d));
	if (e->overflow)
		return;
	x86_patch_rel32(e, ja, fx->arm);
	x86_patch_rel32(e, fx->desc_lea_at, desc);
}

_Static_assert(offsetof(struct selfprobe_regs, r15) == 0, "regs layout");
_Static_assert(offsetof(struct selfprobe_regs, rdi) == 112, "regs layout");
_Static_assert(offsetof(struct selfprobe_regs, rip) == 0x78, "regs layout");
_Static_assert(offsetof(struct selfprobe_regs, eflags) == 0x80, "regs layout");
_Static_assert(offsetof(struct selfprobe_regs, rsp) == 0x88, "regs layout");

/* ---- the C path: a call to sp_tramp_count or sp_tramp_dispatch ---- */

struct c_fix {
	size_t site_at[2], addr_at;     /* the imm64s $site_struct (twice) and $site */
	size_t jfull_at, full_at;       /* the lean/full choice */
	size_t jnz_at;                  /* jnz slow */
	size_t jreloc1_at, jreloc2_at;  /* the lean path's jmps to reloc */
	size_t jpopf_at, lean_popf;     /* the lean path's popfq */
};

/* A call of FN (rax is free: saved or free here); on a
 * Go site through sp_go_tramp_call, which runs it on a stack of the
 * thread's own: a goroutine stack may have under a kilobyte left. */
static void emit_call(struct x86e *e, const struct sp_site *site, uintptr_t fn)
{
	if (site->go_stack) {
		x86_mov_r64_imm64(e, X86_RDX, fn);                     /* movabs $fn,%rdx */
		fn = (uintptr_t)sp_go_tramp_call;
	}
	x86_mov_r64_imm64(e, X86_RAX, fn);                             /* movabs $fn,%rax */
	x86_call_r64(e, X86_RAX);                                      /* call *%rax */
}

/* Flags from the slot at M without popfq unless DF, TF or AC is set
 * (popfq costs ~20 cycles): sahf for SF ZF AF PF CF, an adc for OF.
 * Clobbers eax.  Jumps to the returned rel8 (to fill) for popfq. */
static size_t emit_flags_from(struct x86e *e, struct x86m m)
{
	x86_test_m32_imm32(e, m, EFLAGS_TF | EFLAGS_DF | EFLAGS_AC);    /* testl $0x40500,m */
	size_t jpopf = x86_jcc_rel8(e, X86_CC_NE);                     /* jnz popf */
	x86_movzx_r32_m8(e, X86_RAX, m);                               /* movzbl m,%eax */
	x86_shl_r32_imm8(e, X86_RAX, 8);                               /* shl $8,%eax: ah = flags */
	x86_bt_m32_imm8(e, m, EFLAGS_OF_BIT);                          /* btl $11,m: CF = OF */
	x86_adc_al_imm8(e, 0x7f);                                      /* adc $0x7f,%al: OF = CF */
	x86_sahf(e);                                                   /* sahf */
	return jpopf;
}

/* From "pushfq" (the red zone already left) to the full path's last lea,
 * which falls through: the caller puts the relocated window, or a jmp to
 * it, right after. */
static void emit_c_path(struct x86e *e, const struct sp_site *site, struct c_fix *f)
{
	static const int8_t lean_regs[] = { X86_RCX, X86_RDX, X86_RSI, X86_RDI, X86_R8, X86_R9, X86_R10, X86_R11 };
	x86_pushfq(e);                                                 /* pushfq */
	x86_push(e, X86_RAX);                                          /* push %rax */
	x86_mov_r64_imm64(e, X86_RAX, (uintptr_t)site);                /* movabs $site_struct,%rax */
	f->site_at[0] = x86_here(e) - 8;
	x86_cmp_m8_imm8(e, x86_mem32(X86_RAX, (int32_t)offsetof(struct sp_site, has_handlers)), 0);
	                                                               /* cmpb $0,has_handlers(%rax) */
	f->jfull_at = x86_jcc_rel32(e, X86_CC_NE);                     /* jne full */
	/* lean */
	for (size_t i = 0; i < sizeof(lean_regs); i++)
		x86_push(e, lean_regs[i]);                             /* push rcx rdx rsi rdi r8 r9 r10 r11 */
	x86_push(e, X86_RBP);                                          /* push %rbp */
	x86_mov_r64_r64(e, X86_RBP, X86_RSP);                          /* mov %rsp,%rbp */
	x86_alu_r64_imm32(e, X86_AND, X86_RSP, -16);                   /* and $-16,%rsp */
	x86_cld(e);                                                    /* cld */
	x86_mov_r64_r64(e, X86_RDI, X86_RAX);                          /* mov %rax,%rdi */
	x86_lea(e, X86_RSI, x86_mem(X86_RBP, LEAN_FRAME(sizeof(lean_regs))));
	                                                               /* lea 216(%rbp),%rsi: the site's rsp */
	emit_call(e, site, (uintptr_t)sp_tramp_count);                 /* call count */
	x86_mov_r64_r64(e, X86_RSP, X86_RBP);                          /* mov %rbp,%rsp */
	x86_pop(e, X86_RBP);                                           /* pop %rbp */
	for (size_t i = sizeof(lean_regs); i-- > 0;)
		x86_pop(e, lean_regs[i]);                              /* pop r11 r10 r9 r8 rdi rsi rdx rcx */
	/* flags from the slot at 8(%rsp) */
	f->jpopf_at = emit_flags_from(e, x86_mem(X86_RSP, 8));        /* jnz lean_popf */
	x86_pop(e, X86_RAX);                                           /* pop %rax */
	x86_lea(e, X86_RSP, x86_mem32(X86_RSP, 8 + RED_ZONE));         /* lea 0x88(%rsp),%rsp: flags, red zone */
	f->jreloc1_at = x86_jmp_rel32(e);                              /* jmp reloc */
	f->lean_popf = x86_here(e);
	x86_pop(e, X86_RAX);                                           /* pop %rax */
	x86_popfq(e);                                                  /* popfq */
	x86_lea(e, X86_RSP, x86_mem32(X86_RSP, RED_ZONE));             /* lea 0x80(%rsp),%rsp */
	f->jreloc2_at = x86_jmp_rel32(e);                              /* jmp reloc */
	/* full */
	f->full_at = x86_here(e);
	x86_pop(e, X86_RAX);                                           /* pop %rax */
	x86_popfq(e);                                                  /* popfq */
	x86_lea(e, X86_RSP, x86_mem(X86_RSP, REGS_RIP - REGS_SIZE));   /* lea -0x18(%rsp),%rsp: rip, eflags, rsp */
	static const int8_t full_regs[] = { X86_RDI, X86_RSI, X86_RDX, X86_RCX, X86_RAX, X86_R8, X86_R9, X86_R10,
					    X86_R11, X86_RBX, X86_RBP, X86_R12, X86_R13, X86_R14, X86_R15 };
	for (size_t i = 0; i < sizeof(full_regs); i++)
		x86_push(e, full_regs[i]);                             /* push rdi … r15 */
	x86_pushfq(e);                                                 /* pushfq */
	x86_pop(e, X86_RAX);                                           /* pop %rax */
	x86_mov_m64_r64(e, x86_mem(X86_RSP, REGS_EFLAGS), X86_RAX);    /* mov %rax,0x80(%rsp) */
	x86_lea(e, X86_RAX, x86_mem(X86_RSP, REGS_SIZE + RED_ZONE));   /* lea 0x110(%rsp),%rax */
	x86_mov_m64_r64(e, x86_mem(X86_RSP, REGS_RSP), X86_RAX);       /* mov %rax,0x88(%rsp) */
	x86_mov_r64_imm64(e, X86_RAX, site->addr);                     /* movabs $site,%rax */
	f->addr_at = x86_here(e) - 8;
	x86_mov_m64_r64(e, x86_mem(X86_RSP, REGS_RIP), X86_RAX);       /* mov %rax,0x78(%rsp) */
	x86_cld(e);                                                    /* cld */
	x86_mov_r64_r64(e, X86_RBX, X86_RSP);                          /* mov %rsp,%rbx */
	x86_alu_r64_imm32(e, X86_AND, X86_RSP, -16);                   /* and $-16,%rsp */
	x86_mov_r64_r64(e, X86_RSI, X86_RBX);                          /* mov %rbx,%rsi */
	x86_mov_r64_imm64(e, X86_RDI, (uintptr_t)site);                /* movabs $site_struct,%rdi */
	f->site_at[1] = x86_here(e) - 8;
	emit_call(e, site, (uintptr_t)sp_tramp_dispatch);              /* call dispatch */
	x86_mov_r64_r64(e, X86_RSP, X86_RBX);                          /* mov %rbx,%rsp */
	x86_test_r32_r32(e, X86_RAX, X86_RAX);                         /* test %eax,%eax */
	f->jnz_at = x86_jcc_rel32(e, X86_CC_NE);                       /* jnz slow */
	/* flags as the handlers left them */
	size_t jfpopf_at = emit_flags_from(e, x86_mem(X86_RSP, REGS_EFLAGS)); /* jnz full_popf */
	size_t jfdone_at = x86_jmp_rel8(e);                            /* jmp flags_done */
	size_t full_popf = x86_here(e);
	x86_push_m64(e, x86_mem(X86_RSP, REGS_EFLAGS));                /* push 0x80(%rsp) */
	x86_popfq(e);                                                  /* popfq */
	size_t flags_done = x86_here(e);
	if (e->overflow)
		return;
	x86_patch_rel8(e, jfpopf_at, full_popf);
	x86_patch_rel8(e, jfdone_at, flags_done);
	pop_all(e);
	x86_lea(e, X86_RSP, x86_mem32(X86_RSP, REGS_SIZE - REGS_RIP + RED_ZONE));
	                                                               /* lea 0x98(%rsp),%rsp: rip…rsp, red zone */
}

static void fix_c_path(struct x86e *e, const struct c_fix *f, size_t reloc_at, size_t slow_at)
{
	x86_patch_rel32(e, f->jnz_at, slow_at);
	x86_patch_rel32(e, f->jfull_at, f->full_at);
	x86_patch_rel32(e, f->jreloc1_at, reloc_at);
	x86_patch_rel32(e, f->jreloc2_at, reloc_at);
	x86_patch_rel8(e, f->jpopf_at, f->lean_popf);
}

/* The trampoline's size: the inline count, the C path, the relocated
 * window, the slow path and the rseq tail. */
/* 416 of it: a Go site's calls are longer; the native code's room only
 * where there is some (what codemem is asked for stays what it was for
 * every other site, and so does where it finds room) */
#define TRAMP_MAX(site) (SP_TRAMP_MAX - SP_INLINE_MAX + (site)->inline_len)

/* Emit SITE's trampoline for window W as it must lie at BASE into CODE
 * (TRAMP_MAX bytes): its length, or -errno with *REASON. */
/* Where emit_at put what depends on the site and the base (offsets in
 * the code), for a shape's copy (below). */
struct emitted {
	size_t reloc_at, reloc_len, int3_at;
	struct c_fix cf;
	struct fast_fix fx;
};

static long emit_at_fix(struct sp_site *site, const struct sp_window *w, uintptr_t base, uint8_t *code,
			struct sp_tramp *out, const char **reason, struct emitted *em)
{
	struct x86e e = { code, 0, TRAMP_MAX(site), 0 };
	struct c_fix cf = { 0 };
	struct fast_fix fx = { 0 };
	bool fast = sp_fastcount.on;
	size_t jreloc3_at = 0;

	/* Layout, with the inline count: lea, the count, the relocated window
	 * (the hot path runs straight through), the C path, which jumps back
	 * to the window.  Without: lea, the C path falling into the window. */
	x86_lea(&e, X86_RSP, x86_mem32(X86_RSP, -RED_ZONE));           /* lea -0x80(%rsp),%rsp */
	if (fast)
		emit_fast(&e, site, &fx);
	else
		emit_c_path(&e, site, &cf);
	size_t reloc_at = e.len;
	if (e.overflow) {
		*reason = "trampoline prologue overflow";
		return -EINVAL;
	}
	int n = sp_reloc_window(w, base + reloc_at, code + reloc_at, SP_RELOC_MAX, &out->map, reason);
	if (n < 0)
		return n;
	e.len += (size_t)n;
	if (fast) {
		emit_fast_exit(&e, &fx);                               /* falls into the C path */
		emit_c_path(&e, site, &cf);
		jreloc3_at = x86_jmp_rel32(&e);                        /* jmp reloc */
	}
	size_t slow_at = e.len;
	pop_all(&e);
	size_t int3_at = e.len;
	x86_int3(&e);                                                  /* int3: slow path */
	if (fast)
		emit_fast_tail(&e, base, &fx);
	if (e.overflow) {
		*reason = "trampoline overflow";
		return -EINVAL;
	}
	fix_c_path(&e, &cf, reloc_at, slow_at);
	if (fast)
		x86_patch_rel32(&e, jreloc3_at, reloc_at);
	out->entry = base;
	out->reloc = base + reloc_at;
	out->slow_int3 = base + int3_at;
	out->window_len = w->len;
	*em = (struct emitted){ reloc_at, (size_t)n, int3_at, cf, fx };
	return (long)e.len;
}

static long emit_at(struct sp_site *site, const struct sp_window *w, uintptr_t base, uint8_t *code,
		    struct sp_tramp *out, const char **reason)
{
	struct emitted em;
	return emit_at_fix(site, w, base, code, out, reason, &em);
}

/* ---- a shape's trampoline, emitted once and copied ----
 *
 * Emitting was ~1 us a site, most of attaching libc:*'s trampolines once
 * the decisions were stored.  The code is the same for every site of one
 * shape (the inline count on or off, a Go site's calls or not, no native
 * code, the relocated window's length, the base's place in 32 bytes, which
 * the rseq descriptor pads to), but for what names the site (its struct
 * twice, its address, its fast_off), the relocated window and the
 * descriptor's absolute addresses: those are written into a copy of the
 * shape's first emission at the offsets it recorded.  test_tramp_emit
 * checks copies against fresh emissions, byte for byte. */
#define SHAPES 512   /* libc:* has ~190: relocated windows' lengths times the two 16-byte places */
/* The TLS offsets a shape's code was emitted with (sp_fastcount's). */
struct tls_offs {
	int32_t fast, runtime, rseq_cs, own_neg_lo, own_neg_hi;
};
struct shape {
	uint32_t key;            /* shape_key's */
	struct tls_offs tls;
	size_t len;
	struct emitted em;
	uint8_t code[SP_TRAMP_MAX - SP_INLINE_MAX];
};
static struct shape *shapes[SHAPES];   /* open addressing; allocated on first use */
/* where a kind's window goes (its length does not move it) */
static struct {
	bool known;
	struct tls_offs tls;
	size_t reloc_at;
} kinds[2][2];
static atomic_flag shapes_busy = ATOMIC_FLAG_INIT;

static uint32_t shape_key(bool fast, bool go, size_t reloc_len, uintptr_t base)
{
	return 1u | (uint32_t)fast << 1 | (uint32_t)go << 2 | (uint32_t)(base % 32) << 3 | (uint32_t)reloc_len << 8;
}

static struct tls_offs tls_now(void)
{
	return (struct tls_offs){ sp_fastcount.tls_fast, sp_fastcount.tls_runtime, sp_fastcount.tls_rseq_cs,
				  sp_fastcount.tls_own_neg_lo, sp_fastcount.tls_own_neg_hi };
}

static bool same_tls(struct tls_offs t)
{
	struct tls_offs now = tls_now();
	return __builtin_memcmp(&t, &now, sizeof(t)) == 0;
}

/* The slot for KEY: its shape, or the empty slot it would take (NULL
 * when the table is full). */
static struct shape **shape_slot(uint32_t key)
{
	for (uint32_t i = 0, h = key * 2654435761u; i < SHAPES; i++) {
		struct shape **sl = &shapes[(h + i) % SHAPES];
		if (!*sl || (*sl)->key == key)
			return sl;
	}
	return NULL;
}

static void put64(uint8_t *code, size_t at, uint64_t v)
{
	__builtin_memcpy(code + at, &v, 8);
}

long sp_tramp_emit_shaped(struct sp_site *site, const struct sp_window *w, uintptr_t base, uint8_t *code,
			  struct sp_tramp *out, const char **reason)
{
	bool fast = sp_fastcount.on, go = site->go_stack;
	if (site->inline_code || site->inline_len || atomic_flag_test_and_set(&shapes_busy))
		return emit_at(site, w, base, code, out, reason);
	uint8_t win[SP_RELOC_MAX];
	int n = -1;
	if (kinds[fast][go].known && same_tls(kinds[fast][go].tls)) {
		n = sp_reloc_window(w, base + kinds[fast][go].reloc_at, win, sizeof(win), &out->map, reason);
		if (n < 0) {
			atomic_flag_clear(&shapes_busy);
			return n;   /* as emit_at would: the same call, the same answer */
		}
	}
	struct shape **sl = n >= 0 ? shape_slot(shape_key(fast, go, (size_t)n, base)) : NULL;
	const struct shape *sh = sl && *sl && same_tls((*sl)->tls) ? *sl : NULL;
	long len;
	if (sh) {
		const struct emitted *em = &sh->em;
		__builtin_memcpy(code, sh->code, sh->len);
		__builtin_memcpy(code + em->reloc_at, win, em->reloc_len);
		put64(code, em->cf.site_at[0], (uintptr_t)site);
		put64(code, em->cf.site_at[1], (uintptr_t)site);
		put64(code, em->cf.addr_at, site->addr);
		if (fast) {
			put64(code, em->fx.fast_off_at, (uintptr_t)&site->fast_off);
			put64(code, em->fx.desc_at + 8, base + em->fx.start);      /* start_ip */
			put64(code, em->fx.desc_at + 24, base + em->fx.abort_at);  /* abort_ip */
		}
		out->entry = base;
		out->reloc = base + em->reloc_at;
		out->slow_int3 = base + em->int3_at;
		out->window_len = w->len;
		len = (long)sh->len;
	} else {
		struct emitted em;
		len = emit_at_fix(site, w, base, code, out, reason, &em);
		if (len > 0 && (size_t)len <= sizeof(sh->code)) {
			kinds[fast][go].known = true;
			kinds[fast][go].tls = tls_now();
			kinds[fast][go].reloc_at = em.reloc_at;
			uint32_t key = shape_key(fast, go, em.reloc_len, base);
			struct shape **to = shape_slot(key);
			if (to && !*to)
				*to = sp_malloc(sizeof(**to));
			if (to && *to) {
				**to = (struct shape){ key, tls_now(), (size_t)len, em, { 0 } };
				__builtin_memcpy((*to)->code, code, (size_t)len);
			}
		}
	}
	atomic_flag_clear(&shapes_busy);
	return len;
}

long sp_tramp_emit(struct sp_site *site, const struct sp_window *w, uintptr_t base, uint8_t *code,
		   struct sp_tramp *out, const char **reason)
{
	return emit_at(site, w, base, code, out, reason);
}

int sp_tramp_build(struct sp_site *site, const struct sp_window *w, struct sp_tramp *out,
		   const char **reason)
{
	uint8_t code[SP_TRAMP_MAX];
	long len = -1;
	/* The entry is placed so that the jmp's offset bytes fault at once
	 * where a kernel uprobe placed over it makes the thread run them
	 * (coexist.h): at site+1, after the file's first byte restored by its
	 * removal, and at site+len of a first instruction shorter than the
	 * jmp, where it resumes each of its hits.  The fault handler can then
	 * prove what ran.  Where no such place is free, anywhere near: the jmp
	 * never depends on it.  A hop's entry is reached through its pad. */
	struct sp_coexist_fit cxf = { .site = site->addr, .len = site->insn.len };
	uintptr_t base = site->tramp_slot;
	bool fresh = false;   /* BASE allocated here: given back if the build fails */
	/* the memory this site had before its object was unloaded, when the
	 * new trampoline fits there, its jumps reach and it is placed as
	 * above (a reload a whole number of pages away keeps that) */
	if (base && (!site->guard_entry || sp_coexist_next_entry(base, &cxf) == base)) {
		const char *why;
		len = sp_tramp_emit_shaped(site, w, base, code, out, &why);
		intptr_t d = (intptr_t)base - (intptr_t)(site->addr + SP_JMP_LEN);
		if (len > (long)site->tramp_slot_size || d != (int32_t)d)
			len = -1;
	}
	if (len < 0) {
		struct sp_codemem_fit fit = { sp_coexist_next_entry, sp_coexist_prev_entry, &cxf };
		base = site->guard_entry ? sp_codemem_alloc_open(site->addr, TRAMP_MAX(site), &fit) : 0;
		if (!base)
			base = sp_codemem_alloc_open(site->addr, TRAMP_MAX(site), NULL);
		if (!base) {
			*reason = "no free memory within ±2 GiB of the site for its trampoline";
			return -ENOMEM;
		}
		len = sp_tramp_emit_shaped(site, w, base, code, out, reason);
		if (len < 0) {
			sp_codemem_trim(base, TRAMP_MAX(site), 0);
			return (int)len;
		}
		sp_codemem_trim(base, TRAMP_MAX(site), (size_t)len);
		site->tramp_slot = base;
		site->tramp_slot_size = (size_t)len;
		fresh = true;
	}
	/* nothing leads here before the site is armed: stored now in an open
	 * chunk (sealed by the batch, codemem.h), else written with the
	 * batch's other trampolines (arm.c checks the outcome) */
	site->tramp_unwritten = false;
	if (sp_codemem_write(base, code, (size_t)len) == 0)
		return 0;
	int rc = sp_patch_write_later(base, code, (size_t)len, &site->tramp_unwritten);
	if (rc) {
		/* nothing leads there: a slot of the site's previous load
		 * stays the site's, a fresh one is given back */
		if (fresh) {
			sp_codemem_trim(base, site->tramp_slot_size, 0);
			site->tramp_slot = 0;
			site->tramp_slot_size = 0;
		}
		*reason = "cannot write the trampoline";
		return rc;
	}
	return 0;
}

int sp_tramp_build_bare(struct sp_site *site, const struct sp_window *w, struct sp_tramp *out,
			const char **reason)
{
	uint8_t code[SP_RELOC_MAX];
	uintptr_t base = sp_codemem_alloc(site->addr, SP_RELOC_MAX);
	if (!base) {
		*reason = "no free memory within ±2 GiB of the site for its trampoline";
		return -ENOMEM;
	}
	int n = sp_reloc_window(w, base, code, sizeof(code), &out->map, reason);
	if (n < 0 || sp_patch_write(base, code, (size_t)n) != 0) {
		sp_codemem_trim(base, SP_RELOC_MAX, 0);
		if (n >= 0)
			*reason = "cannot write the trampoline";
		return n < 0 ? n : -EIO;
	}
	sp_codemem_trim(base, SP_RELOC_MAX, (size_t)n);
	out->entry = out->reloc = base;
	out->slow_int3 = 0;
	out->window_len = w->len;
	return 0;
}

/* ---- the slow path's pending resumes (per thread; signals nest) ----
 *
 * A resume is claimed with one unlocked xadd, filled, then published by
 * its int3 address; the int3 takes the one with its address and its rsp
 * (the frame the pops left), so a signal handler's own slow paths in
 * between, on this stack or a sigaltstack, never take or overwrite it.
 * One abandoned by a siglongjmp out of that window is never matched. */

#define PENDING_MAX 16
struct pending {
	uintptr_t int3;               /* 0: not published (or taken) */
	uintptr_t at_rsp;             /* rsp at the int3 */
	uint64_t rip, rsp, eflags;
};
static __thread struct pending pending[PENDING_MAX] __attribute__((tls_model("initial-exec")));
static __thread uint64_t n_pending __attribute__((tls_model("initial-exec")));

int sp_tramp_dispatch(struct sp_site *site, struct selfprobe_regs *regs)
{
	uint64_t rsp = regs->rsp;
	sp_dispatch(site, regs, NULL);
	if (__builtin_expect(regs->rip == site->addr && regs->rsp == rsp, 1))
		return 0;
	uint64_t i = sp_sig_xadd(&n_pending, 1);
	if (i >= PENDING_MAX) {
		/* nesting this deep is a runaway: resume as if unchanged */
		sp_sig_xadd(&n_pending, (uint64_t)-1);
		regs->rip = site->addr;
		regs->rsp = rsp;
		return 0;
	}
	struct pending *p = &pending[i];
	p->int3 = 0;
	/* rip unchanged but rsp moved: resume at the relocated window, since
	 * the site itself now jumps back here */
	p->rip = regs->rip == site->addr ? site->tramp.reloc : regs->rip;
	p->rsp = regs->rsp;
	p->eflags = regs->eflags;
	p->at_rsp = (uintptr_t)&regs->rip;   /* the trampoline pops r15 … rdi, then int3 */
	atomic_signal_fence(memory_order_seq_cst);
	p->int3 = site->tramp.slow_int3;
	return 1;
}

void sp_tramp_count(struct sp_site *site, uintptr_t rsp)
{
	if (!site->go_stack && !sp_foreign_on_own_stack()) {
		/* Off the thread's stack (a coroutine's, an alternate signal
		 * stack's, or a task of another's): a plain count needs no
		 * thread state, so no question to the kernel.  A return to
		 * swap, or the runtime's own call, needs to know whose. */
		struct sp_probe_vec *vec = atomic_load_explicit(&site->vec, memory_order_relaxed);
		bool plain = sp_tls.own_learnt && !sp_tls.runtime && !(vec && vec->only_returns);
		if (plain || sp_foreign_slow(sp_foreign_sp())) {   /* else asked: a task of another's */
			sp_dispatch_stateless(site);
			return;
		}
	}
	if (sp_tls.runtime)
		return;
	int stripe = sp_tstate_stripe();
	sp_tstate_enter(stripe);
	struct sp_probe_vec *vec = atomic_load_explicit(&site->vec, memory_order_consume);
	if (vec && vec->only_returns) {
		/* count-only uretprobes and sessions: the return is swapped */
		for (uint32_t i = 0; i < vec->n; i++)
			if (vec->p[i]->kind == SP_KIND_USESSION)
				sp_count_add(stripe, vec->p[i]->id, SP_HITS);   /* sessions count entries */
		if (sp_tls.inside || !sp_uret_push_counted(rsp, vec->p, vec->n))
			for (uint32_t i = 0; i < vec->n; i++)
				sp_count_add(stripe, vec->p[i]->id, SP_MISSED);
	} else
		for (uint32_t i = 0; vec && i < vec->n; i++)
			sp_count_add(stripe, vec->p[i]->id, SP_HITS);
	sp_tstate_leave(stripe);
}

int sp_tramp_take_pending(uintptr_t int3_addr, uintptr_t at_rsp, uint64_t *rip, uint64_t *rsp,
			  uint64_t *eflags)
{
	uint64_t n = n_pending;
	for (uint64_t j = n < PENDING_MAX ? n : PENDING_MAX; j-- > 0;) {
		struct pending *p = &pending[j];
		if (p->int3 != int3_addr || p->at_rsp != at_rsp)
			continue;
		*rip = p->rip;
		*rsp = p->rsp;
		*eflags = p->eflags;
		p->int3 = 0;
		/* it and any abandoned above it are gone, unless a signal
		 * handler moved the top meanwhile (it then put it back) */
		sp_sig_cas(&n_pending, n, j);
		return 1;
	}
	return 0;
}
