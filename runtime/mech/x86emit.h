/* x86emit — a small x86-64 code writer for the code we generate at attach
 * time: the jmp path's trampolines (hot/tramp.c) and bpftrace blocks
 * compiled to native code (actions/bt_jit.c).
 *
 * Why not Zydis's encoder (libzydis-dev 4 is installed, and we link its
 * decoder): it always picks the shortest form of an instruction, and the
 * trampolines need fixed ones: rel32 jumps whose offsets are patched once
 * the targets are known, `lea -0x80(%rsp),%rsp` with a 32-bit displacement
 * (the trampoline's first instruction has been 8 bytes since it was
 * written, and the conversion to this writer had to be byte for byte),
 * `jrcxz`/`adc $imm8,%al` short forms.  The handful of instructions we need
 * is small enough to encode here, each named for what it does, each
 * checked against the assembler's bytes (tests/unit/test_x86emit.c).
 *
 * Writes never overflow the buffer: past its end they are dropped and
 * `overflow` is set, for the caller to check once at the end.
 * Registers are numbered as the hardware does (rax 0 … r15 15); operand
 * order is Intel's (destination first) in the names, AT&T in the comments.
 */
#ifndef SP_X86EMIT_H
#define SP_X86EMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum x86_reg {
	X86_RAX, X86_RCX, X86_RDX, X86_RBX, X86_RSP, X86_RBP, X86_RSI, X86_RDI,
	X86_R8, X86_R9, X86_R10, X86_R11, X86_R12, X86_R13, X86_R14, X86_R15,
	X86_NOREG = -1,
};

/* Condition codes (the low nibble of jcc/setcc/cmovcc). */
enum x86_cc {
	X86_CC_O, X86_CC_NO, X86_CC_B, X86_CC_AE, X86_CC_E, X86_CC_NE, X86_CC_BE, X86_CC_A,
	X86_CC_S, X86_CC_NS, X86_CC_P, X86_CC_NP, X86_CC_L, X86_CC_GE, X86_CC_LE, X86_CC_G,
};

struct x86e {
	uint8_t *buf;
	size_t len, cap;
	int overflow;
};

/* A memory operand: [base + index*scale + disp], optionally %fs-relative.
 * base X86_NOREG: an absolute disp32 (with %fs: a TLS offset).  d32 forces
 * a 32-bit displacement where 8 bits would do. */
struct x86m {
	int base, index, scale;
	int32_t disp;
	bool fs, d32;
};

static inline struct x86m x86_mem(int base, int32_t disp)
{
	return (struct x86m){ base, X86_NOREG, 1, disp, false, false };
}
static inline struct x86m x86_mem32(int base, int32_t disp)
{
	return (struct x86m){ base, X86_NOREG, 1, disp, false, true };
}
static inline struct x86m x86_mem_idx(int base, int index, int scale, int32_t disp)
{
	return (struct x86m){ base, index, scale, disp, false, false };
}
static inline struct x86m x86_fs(int32_t off)
{
	return (struct x86m){ X86_NOREG, X86_NOREG, 1, off, true, false };
}

/* raw data */
void x86_bytes(struct x86e *e, const void *p, size_t n);
void x86_u8(struct x86e *e, uint8_t v);
void x86_u32(struct x86e *e, uint32_t v);
void x86_u64(struct x86e *e, uint64_t v);

/* stack, flags, misc */
void x86_push(struct x86e *e, int r);
void x86_pop(struct x86e *e, int r);
void x86_push_m64(struct x86e *e, struct x86m m);   /* pushq m */
void x86_pushfq(struct x86e *e);
void x86_popfq(struct x86e *e);
void x86_lahf(struct x86e *e);
void x86_sahf(struct x86e *e);
void x86_cld(struct x86e *e);
void x86_int3(struct x86e *e);
void x86_ret(struct x86e *e);
void x86_syscall(struct x86e *e);

/* moves */
void x86_mov_r64_imm64(struct x86e *e, int r, uint64_t v);     /* movabs $v,%r */
void x86_mov_r32_imm32(struct x86e *e, int r, uint32_t v);     /* mov $v,%r32 (zero-extends) */
void x86_mov_r64_r64(struct x86e *e, int dst, int src);        /* mov %src,%dst */
void x86_mov_r64_m64(struct x86e *e, int dst, struct x86m m);  /* mov m,%dst */
void x86_mov_r32_m32(struct x86e *e, int dst, struct x86m m);  /* mov m,%dst32 */
void x86_mov_m64_r64(struct x86e *e, struct x86m m, int src);  /* mov %src,m */
void x86_mov_m64_imm32(struct x86e *e, struct x86m m, int32_t v);   /* movq $v,m */
void x86_mov_m8_imm8(struct x86e *e, struct x86m m, uint8_t v);     /* movb $v,m */
void x86_movzx_r32_m8(struct x86e *e, int dst, struct x86m m); /* movzbl m,%dst32 */
void x86_movzx_r32_r8(struct x86e *e, int dst, int src);       /* movzbl %src8,%dst32 */
void x86_lea(struct x86e *e, int dst, struct x86m m);          /* lea m,%dst */

/* arithmetic and logic, 64-bit unless named otherwise */
enum x86_alu { X86_ADD = 0, X86_OR = 1, X86_ADC = 2, X86_SBB = 3, X86_AND = 4, X86_SUB = 5, X86_XOR = 6, X86_CMP = 7 };
void x86_alu_r64_r64(struct x86e *e, enum x86_alu op, int dst, int src);      /* op %src,%dst */
void x86_alu_r64_imm32(struct x86e *e, enum x86_alu op, int dst, int32_t v);  /* op $v,%dst (imm8 form when it fits) */
void x86_alu_m64_r64(struct x86e *e, enum x86_alu op, struct x86m m, int src);/* op %src,m */
void x86_alu_r64_m64(struct x86e *e, enum x86_alu op, int dst, struct x86m m);/* op m,%dst */
void x86_adc_al_imm8(struct x86e *e, uint8_t v);
void x86_add_al_imm8(struct x86e *e, uint8_t v);
void x86_cmp_m8_imm8(struct x86e *e, struct x86m m, uint8_t v);   /* cmpb $v,m */
void x86_test_r64_r64(struct x86e *e, int a, int b);
void x86_test_r32_r32(struct x86e *e, int a, int b);
void x86_test_m32_imm32(struct x86e *e, struct x86m m, uint32_t v); /* testl $v,m */
void x86_bt_m32_imm8(struct x86e *e, struct x86m m, uint8_t bit);  /* btl $bit,m */
void x86_inc_m64(struct x86e *e, struct x86m m);               /* incq m (no lock: one owner) */
void x86_dec_m64(struct x86e *e, struct x86m m);
void x86_lock_inc_m64(struct x86e *e, struct x86m m);          /* lock incq m */
void x86_neg_r64(struct x86e *e, int r);
void x86_not_r64(struct x86e *e, int r);
void x86_bswap_r64(struct x86e *e, int r);                     /* no flags touched */
void x86_imul_r64_r64(struct x86e *e, int dst, int src);
void x86_div_r64(struct x86e *e, int r);                       /* unsigned rdx:rax / r */
void x86_shl_r32_imm8(struct x86e *e, int r, uint8_t n);
enum x86_shift { X86_SHL = 4, X86_SHR = 5, X86_SAR = 7 };
void x86_shift_r64_imm8(struct x86e *e, enum x86_shift op, int r, uint8_t n);
void x86_bsr_r64_r64(struct x86e *e, int dst, int src);
void x86_setcc_r8(struct x86e *e, enum x86_cc cc, int r);      /* r8 of rax…r15 (REX for sil/dil…) */
void x86_cmovcc_r64_r64(struct x86e *e, enum x86_cc cc, int dst, int src);
void x86_cmpxchg_m64_r64(struct x86e *e, struct x86m m, int src);   /* no lock: one owner */

/* control flow.  The rel forms return the offset of their displacement in
 * the buffer, to patch once the target is known (x86_patch_rel32/8); the
 * _to forms take the target's offset when it is already emitted. */
size_t x86_jmp_rel32(struct x86e *e);
size_t x86_jmp_rel8(struct x86e *e);
size_t x86_jcc_rel32(struct x86e *e, enum x86_cc cc);
size_t x86_jcc_rel8(struct x86e *e, enum x86_cc cc);
size_t x86_jrcxz(struct x86e *e);
void x86_jrcxz_to(struct x86e *e, size_t to);
void x86_jmp_to(struct x86e *e, size_t to);                    /* rel8 when it reaches, else rel32 */
void x86_call_r64(struct x86e *e, int r);                      /* call *%r */
void x86_ud1_rip_sig(struct x86e *e, uint32_t sig);            /* ud1 sig(%rip),%edi: rseq's signature */

/* Make the rel32 (rel8) at AT jump to TO (offsets in the buffer).  A rel8
 * that cannot reach sets overflow. */
void x86_patch_rel32(struct x86e *e, size_t at, size_t to);
void x86_patch_rel8(struct x86e *e, size_t at, size_t to);
/* Here: the offset the next instruction will have. */
static inline size_t x86_here(const struct x86e *e) { return e->len; }

#endif
