/* x86emit — see x86emit.h for why a writer of our own. */
#include "x86emit.h"

#include <string.h>

void x86_bytes(struct x86e *e, const void *p, size_t n)
{
	if (e->len + n > e->cap) {
		e->overflow = 1;
		return;
	}
	if (n == 1)   /* most opcodes: no call */
		e->buf[e->len] = *(const uint8_t *)p;
	else
		memcpy(e->buf + e->len, p, n);
	e->len += n;
}

/* Fixed sizes written in place (x86_bytes' memcpy of a variable length is
 * a call per byte: a trampoline is a few hundred of them, and emitting
 * `libc:*`'s 3600 was ~2 % of its attach). */
#define PUT(e, v)                                                        \
	do {                                                             \
		if ((e)->len + sizeof(v) > (e)->cap) {                  \
			(e)->overflow = 1;                               \
			return;                                          \
		}                                                        \
		memcpy((e)->buf + (e)->len, &(v), sizeof(v));            \
		(e)->len += sizeof(v);                                   \
	} while (0)

void x86_u8(struct x86e *e, uint8_t v) { PUT(e, v); }
void x86_u32(struct x86e *e, uint32_t v) { PUT(e, v); }
void x86_u64(struct x86e *e, uint64_t v) { PUT(e, v); }

/* ---- encoding helpers ---- */

static bool fits8(int32_t v) { return v >= -128 && v <= 127; }

/* REX with W, and R/X/B from REG (ModRM.reg), INDEX and BASE (ModRM.rm or
 * SIB.base); emitted only when some bit is set, or FORCE (byte registers
 * spl/bpl/sil/dil need an empty REX). */
static void rex(struct x86e *e, bool w, int reg, int index, int base, bool force)
{
	uint8_t r = (uint8_t)(0x40 | (w ? 8 : 0) | (reg >= 8 ? 4 : 0) | (index >= 8 ? 2 : 0) | (base >= 8 ? 1 : 0));
	if (r != 0x40 || force)
		x86_u8(e, r);
}

static void prefix_mem(struct x86e *e, bool w, int reg, struct x86m m)
{
	if (m.fs)
		x86_u8(e, 0x64);
	rex(e, w, reg, m.index, m.base, false);
}

/* ModRM (and SIB, displacement) for REG and memory operand M. */
static void modrm_mem(struct x86e *e, int reg, struct x86m m)
{
	uint8_t r = (uint8_t)((reg & 7) << 3);
	if (m.base == X86_NOREG) {   /* [disp32] through a SIB without base or index */
		x86_u8(e, r | 0x04);
		x86_u8(e, 0x25);
		x86_u32(e, (uint32_t)m.disp);
		return;
	}
	bool sib = (m.base & 7) == 4 || m.index != X86_NOREG;
	uint8_t mod;
	if (m.disp == 0 && (m.base & 7) != 5 && !m.d32)
		mod = 0;
	else if (fits8(m.disp) && !m.d32)
		mod = 1;
	else
		mod = 2;
	x86_u8(e, (uint8_t)(mod << 6) | r | (sib ? 4 : (m.base & 7)));
	if (sib) {
		uint8_t ss = m.scale == 8 ? 3 : m.scale == 4 ? 2 : m.scale == 2 ? 1 : 0;
		uint8_t idx = m.index == X86_NOREG ? 4 : (uint8_t)(m.index & 7);
		x86_u8(e, (uint8_t)(ss << 6 | idx << 3 | (m.base & 7)));
	}
	if (mod == 1)
		x86_u8(e, (uint8_t)(int8_t)m.disp);
	else if (mod == 2)
		x86_u32(e, (uint32_t)m.disp);
}

static void modrm_reg(struct x86e *e, int reg, int rm)
{
	x86_u8(e, (uint8_t)(0xc0 | (reg & 7) << 3 | (rm & 7)));
}

/* op with a register (REG field) and a memory operand */
static void op_m(struct x86e *e, bool w, const uint8_t *op, size_t n, int reg, struct x86m m)
{
	prefix_mem(e, w, reg, m);
	x86_bytes(e, op, n);
	modrm_mem(e, reg, m);
}

/* op with two registers: REG in ModRM.reg, RM in ModRM.rm */
static void op_rr(struct x86e *e, bool w, const uint8_t *op, size_t n, int reg, int rm)
{
	rex(e, w, reg, X86_NOREG, rm, false);
	x86_bytes(e, op, n);
	modrm_reg(e, reg, rm);
}

#define OP(...) (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ })

/* ---- stack, flags, misc ---- */

void x86_push(struct x86e *e, int r)
{
	rex(e, false, X86_NOREG, X86_NOREG, r, false);
	x86_u8(e, (uint8_t)(0x50 + (r & 7)));
}

void x86_pop(struct x86e *e, int r)
{
	rex(e, false, X86_NOREG, X86_NOREG, r, false);
	x86_u8(e, (uint8_t)(0x58 + (r & 7)));
}

void x86_push_m64(struct x86e *e, struct x86m m) { op_m(e, false, OP(0xff), 6, m); }
void x86_pushfq(struct x86e *e) { x86_u8(e, 0x9c); }
void x86_popfq(struct x86e *e) { x86_u8(e, 0x9d); }
void x86_lahf(struct x86e *e) { x86_u8(e, 0x9f); }
void x86_sahf(struct x86e *e) { x86_u8(e, 0x9e); }
void x86_cld(struct x86e *e) { x86_u8(e, 0xfc); }
void x86_int3(struct x86e *e) { x86_u8(e, 0xcc); }
void x86_ret(struct x86e *e) { x86_u8(e, 0xc3); }
void x86_syscall(struct x86e *e) { x86_bytes(e, OP(0x0f, 0x05)); }

/* ---- moves ---- */

void x86_mov_r64_imm64(struct x86e *e, int r, uint64_t v)
{
	rex(e, true, X86_NOREG, X86_NOREG, r, false);
	x86_u8(e, (uint8_t)(0xb8 + (r & 7)));
	x86_u64(e, v);
}

void x86_mov_r32_imm32(struct x86e *e, int r, uint32_t v)
{
	rex(e, false, X86_NOREG, X86_NOREG, r, false);
	x86_u8(e, (uint8_t)(0xb8 + (r & 7)));
	x86_u32(e, v);
}

void x86_mov_r64_r64(struct x86e *e, int dst, int src) { op_rr(e, true, OP(0x89), src, dst); }
void x86_mov_r64_m64(struct x86e *e, int dst, struct x86m m) { op_m(e, true, OP(0x8b), dst, m); }
void x86_mov_r32_m32(struct x86e *e, int dst, struct x86m m) { op_m(e, false, OP(0x8b), dst, m); }
void x86_mov_m64_r64(struct x86e *e, struct x86m m, int src) { op_m(e, true, OP(0x89), src, m); }

void x86_mov_m64_imm32(struct x86e *e, struct x86m m, int32_t v)
{
	op_m(e, true, OP(0xc7), 0, m);
	x86_u32(e, (uint32_t)v);
}

void x86_mov_m8_imm8(struct x86e *e, struct x86m m, uint8_t v)
{
	op_m(e, false, OP(0xc6), 0, m);
	x86_u8(e, v);
}

void x86_movzx_r32_m8(struct x86e *e, int dst, struct x86m m) { op_m(e, false, OP(0x0f, 0xb6), dst, m); }

void x86_movzx_r32_r8(struct x86e *e, int dst, int src)
{
	rex(e, false, dst, X86_NOREG, src, src >= 4 && src < 8);
	x86_bytes(e, OP(0x0f, 0xb6));
	modrm_reg(e, dst, src);
}

void x86_lea(struct x86e *e, int dst, struct x86m m) { op_m(e, true, OP(0x8d), dst, m); }

/* ---- arithmetic and logic ---- */

void x86_alu_r64_r64(struct x86e *e, enum x86_alu op, int dst, int src)
{
	op_rr(e, true, OP((uint8_t)(op << 3 | 1)), src, dst);
}

void x86_alu_r64_imm32(struct x86e *e, enum x86_alu op, int dst, int32_t v)
{
	rex(e, true, X86_NOREG, X86_NOREG, dst, false);
	if (fits8(v)) {
		x86_u8(e, 0x83);
		modrm_reg(e, op, dst);
		x86_u8(e, (uint8_t)(int8_t)v);
	} else {
		x86_u8(e, 0x81);
		modrm_reg(e, op, dst);
		x86_u32(e, (uint32_t)v);
	}
}

void x86_alu_m64_r64(struct x86e *e, enum x86_alu op, struct x86m m, int src)
{
	op_m(e, true, OP((uint8_t)(op << 3 | 1)), src, m);
}

void x86_alu_r64_m64(struct x86e *e, enum x86_alu op, int dst, struct x86m m)
{
	op_m(e, true, OP((uint8_t)(op << 3 | 3)), dst, m);
}

void x86_adc_al_imm8(struct x86e *e, uint8_t v)
{
	x86_u8(e, 0x14);
	x86_u8(e, v);
}

void x86_add_al_imm8(struct x86e *e, uint8_t v)
{
	x86_u8(e, 0x04);
	x86_u8(e, v);
}

void x86_cmp_m8_imm8(struct x86e *e, struct x86m m, uint8_t v)
{
	op_m(e, false, OP(0x80), 7, m);
	x86_u8(e, v);
}

void x86_test_r64_r64(struct x86e *e, int a, int b) { op_rr(e, true, OP(0x85), b, a); }
void x86_test_r32_r32(struct x86e *e, int a, int b) { op_rr(e, false, OP(0x85), b, a); }

void x86_test_m32_imm32(struct x86e *e, struct x86m m, uint32_t v)
{
	op_m(e, false, OP(0xf7), 0, m);
	x86_u32(e, v);
}

void x86_bt_m32_imm8(struct x86e *e, struct x86m m, uint8_t bit)
{
	op_m(e, false, OP(0x0f, 0xba), 4, m);
	x86_u8(e, bit);
}

void x86_inc_m64(struct x86e *e, struct x86m m) { op_m(e, true, OP(0xff), 0, m); }
void x86_dec_m64(struct x86e *e, struct x86m m) { op_m(e, true, OP(0xff), 1, m); }

void x86_lock_inc_m64(struct x86e *e, struct x86m m)
{
	x86_u8(e, 0xf0);
	x86_inc_m64(e, m);
}

void x86_neg_r64(struct x86e *e, int r) { op_rr(e, true, OP(0xf7), 3, r); }
void x86_not_r64(struct x86e *e, int r) { op_rr(e, true, OP(0xf7), 2, r); }

void x86_bswap_r64(struct x86e *e, int r)
{
	rex(e, true, X86_NOREG, X86_NOREG, r, false);
	x86_bytes(e, OP(0x0f, (uint8_t)(0xc8 + (r & 7))));
}
void x86_imul_r64_r64(struct x86e *e, int dst, int src) { op_rr(e, true, OP(0x0f, 0xaf), dst, src); }
void x86_div_r64(struct x86e *e, int r) { op_rr(e, true, OP(0xf7), 6, r); }

void x86_shl_r32_imm8(struct x86e *e, int r, uint8_t n)
{
	op_rr(e, false, OP(0xc1), 4, r);
	x86_u8(e, n);
}

void x86_shift_r64_imm8(struct x86e *e, enum x86_shift op, int r, uint8_t n)
{
	op_rr(e, true, OP(0xc1), op, r);
	x86_u8(e, n);
}

void x86_bsr_r64_r64(struct x86e *e, int dst, int src) { op_rr(e, true, OP(0x0f, 0xbd), dst, src); }

void x86_setcc_r8(struct x86e *e, enum x86_cc cc, int r)
{
	rex(e, false, X86_NOREG, X86_NOREG, r, r >= 4 && r < 8);
	x86_bytes(e, OP(0x0f, (uint8_t)(0x90 | cc)));
	modrm_reg(e, 0, r);
}

void x86_cmovcc_r64_r64(struct x86e *e, enum x86_cc cc, int dst, int src)
{
	op_rr(e, true, OP(0x0f, (uint8_t)(0x40 | cc)), dst, src);
}

void x86_cmpxchg_m64_r64(struct x86e *e, struct x86m m, int src) { op_m(e, true, OP(0x0f, 0xb1), src, m); }

/* ---- control flow ---- */

size_t x86_jmp_rel32(struct x86e *e)
{
	x86_u8(e, 0xe9);
	size_t at = e->len;
	x86_u32(e, 0);
	return at;
}

size_t x86_jmp_rel8(struct x86e *e)
{
	x86_u8(e, 0xeb);
	size_t at = e->len;
	x86_u8(e, 0);
	return at;
}

size_t x86_jcc_rel32(struct x86e *e, enum x86_cc cc)
{
	x86_bytes(e, OP(0x0f, (uint8_t)(0x80 | cc)));
	size_t at = e->len;
	x86_u32(e, 0);
	return at;
}

size_t x86_jcc_rel8(struct x86e *e, enum x86_cc cc)
{
	x86_u8(e, (uint8_t)(0x70 | cc));
	size_t at = e->len;
	x86_u8(e, 0);
	return at;
}

size_t x86_jrcxz(struct x86e *e)
{
	x86_u8(e, 0xe3);
	size_t at = e->len;
	x86_u8(e, 0);
	return at;
}

void x86_jrcxz_to(struct x86e *e, size_t to)
{
	size_t at = x86_jrcxz(e);
	x86_patch_rel8(e, at, to);
}

void x86_jmp_to(struct x86e *e, size_t to)
{
	intptr_t rel8 = (intptr_t)to - (intptr_t)(e->len + 2);
	if (rel8 >= -128 && rel8 <= 127)
		x86_patch_rel8(e, x86_jmp_rel8(e), to);
	else
		x86_patch_rel32(e, x86_jmp_rel32(e), to);
}

void x86_call_r64(struct x86e *e, int r) { op_rr(e, false, OP(0xff), 2, r); }

void x86_ud1_rip_sig(struct x86e *e, uint32_t sig)
{
	x86_bytes(e, OP(0x0f, 0xb9, 0x3d));
	x86_u32(e, sig);
}

void x86_patch_rel32(struct x86e *e, size_t at, size_t to)
{
	if (e->overflow || at + 4 > e->len)
		return;
	int32_t rel = (int32_t)((intptr_t)to - (intptr_t)(at + 4));
	memcpy(e->buf + at, &rel, 4);
}

void x86_patch_rel8(struct x86e *e, size_t at, size_t to)
{
	if (e->overflow || at + 1 > e->len)
		return;
	intptr_t rel = (intptr_t)to - (intptr_t)(at + 1);
	if (rel < -128 || rel > 127) {
		e->overflow = 1;
		return;
	}
	e->buf[at] = (uint8_t)(int8_t)rel;
}
