/* test_x86emit — the code writer's encodings against the assembler's
 * (GNU as 2.40 assembled each line of the table once; the bytes are
 * pasted here), its jumps and its overflow. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "x86emit.h"

struct enc {
	const char *att;
	size_t n;
	uint8_t b[16];
};

static const struct enc table[] = {
	{ "push %rax", 1, { 0x50 } },
	{ "push %r12", 2, { 0x41, 0x54 } },
	{ "pop %r15", 2, { 0x41, 0x5f } },
	{ "pop %rdi", 1, { 0x5f } },
	{ "pushq 0x80(%rsp)", 7, { 0xff, 0xb4, 0x24, 0x80, 0x00, 0x00, 0x00 } },
	{ "pushfq", 1, { 0x9c } },
	{ "popfq", 1, { 0x9d } },
	{ "lahf", 1, { 0x9f } },
	{ "sahf", 1, { 0x9e } },
	{ "cld", 1, { 0xfc } },
	{ "int3", 1, { 0xcc } },
	{ "ret", 1, { 0xc3 } },
	{ "syscall", 2, { 0x0f, 0x05 } },
	{ "movabs $0x1122334455667788,%rax", 10, { 0x48, 0xb8, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11 } },
	{ "movabs $0x1122334455667788,%r11", 10, { 0x49, 0xbb, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11 } },
	{ "mov $0x1f,%edx", 5, { 0xba, 0x1f, 0x00, 0x00, 0x00 } },
	{ "mov $0x1f,%r11d", 6, { 0x41, 0xbb, 0x1f, 0x00, 0x00, 0x00 } },
	{ "mov %rax,%rdi", 3, { 0x48, 0x89, 0xc7 } },
	{ "mov %r10,%r11", 3, { 0x4d, 0x89, 0xd3 } },
	{ "mov %rsp,%rbp", 3, { 0x48, 0x89, 0xe5 } },
	{ "mov (%rcx),%rdx", 3, { 0x48, 0x8b, 0x11 } },
	{ "mov 0x10(%rsp),%r10", 5, { 0x4c, 0x8b, 0x54, 0x24, 0x10 } },
	{ "mov 0x0(%rbp),%rax", 4, { 0x48, 0x8b, 0x45, 0x00 } },
	{ "mov 0x8(%r13),%rax", 4, { 0x49, 0x8b, 0x45, 0x08 } },
	{ "mov (%r12),%rax", 4, { 0x49, 0x8b, 0x04, 0x24 } },
	{ "mov %fs:0x12345678,%rcx", 9, { 0x64, 0x48, 0x8b, 0x0c, 0x25, 0x78, 0x56, 0x34, 0x12 } },
	{ "mov %fs:-0x40,%ecx", 8, { 0x64, 0x8b, 0x0c, 0x25, 0xc0, 0xff, 0xff, 0xff } },
	{ "mov (%rcx),%ecx", 2, { 0x8b, 0x09 } },
	{ "mov %rcx,%fs:0x20", 9, { 0x64, 0x48, 0x89, 0x0c, 0x25, 0x20, 0x00, 0x00, 0x00 } },
	{ "mov %rax,0x80(%rsp)", 8, { 0x48, 0x89, 0x84, 0x24, 0x80, 0x00, 0x00, 0x00 } },
	{ "mov %r10,0x100(%rcx,%rdx,8)", 8, { 0x4c, 0x89, 0x94, 0xd1, 0x00, 0x01, 0x00, 0x00 } },
	{ "movq $0x0,%fs:0x28", 13, { 0x64, 0x48, 0xc7, 0x04, 0x25, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 } },
	{ "movq $-1,0x8(%rax)", 8, { 0x48, 0xc7, 0x40, 0x08, 0xff, 0xff, 0xff, 0xff } },
	{ "movb $0x1,(%rdx)", 3, { 0xc6, 0x02, 0x01 } },
	{ "movzbl 0x8(%rsp),%eax", 5, { 0x0f, 0xb6, 0x44, 0x24, 0x08 } },
	{ "movzbl (%rdx),%ecx", 3, { 0x0f, 0xb6, 0x0a } },
	{ "movzbl %r10b,%r10d", 4, { 0x45, 0x0f, 0xb6, 0xd2 } },
	{ "movzbl %sil,%eax", 4, { 0x40, 0x0f, 0xb6, 0xc6 } },
	{ "lea -0x18(%rsp),%rsp", 5, { 0x48, 0x8d, 0x64, 0x24, 0xe8 } },
	{ "lea 0x1(%rdx),%rdx", 4, { 0x48, 0x8d, 0x52, 0x01 } },
	{ "lea (%rdx,%rcx,1),%rcx", 4, { 0x48, 0x8d, 0x0c, 0x0a } },
	{ "lea 0xd8(%rbp),%rsi", 7, { 0x48, 0x8d, 0xb5, 0xd8, 0x00, 0x00, 0x00 } },
	{ "add %rdx,%rcx", 3, { 0x48, 0x01, 0xd1 } },
	{ "sub %r11,%r10", 3, { 0x4d, 0x29, 0xda } },
	{ "cmp %r11,%r10", 3, { 0x4d, 0x39, 0xda } },
	{ "xor %eax,%eax", 2, { 0x31, 0xc0 } },
	{ "and $0xfffffffffffffff0,%rsp", 4, { 0x48, 0x83, 0xe4, 0xf0 } },
	{ "cmp $0x1000,%r10", 7, { 0x49, 0x81, 0xfa, 0x00, 0x10, 0x00, 0x00 } },
	{ "add $0x7,%rdi", 4, { 0x48, 0x83, 0xc7, 0x07 } },
	{ "add %r10,0x18(%rcx)", 4, { 0x4c, 0x01, 0x51, 0x18 } },
	{ "cmp 0x8(%rcx),%r10", 4, { 0x4c, 0x3b, 0x51, 0x08 } },
	{ "adc $0x7f,%al", 2, { 0x14, 0x7f } },
	{ "add $0x7f,%al", 2, { 0x04, 0x7f } },
	{ "cmpb $0x0,(%rdx)", 3, { 0x80, 0x3a, 0x00 } },
	{ "test %r10,%r10", 3, { 0x4d, 0x85, 0xd2 } },
	{ "test %eax,%eax", 2, { 0x85, 0xc0 } },
	{ "testl $0x40500,0x8(%rsp)", 8, { 0xf7, 0x44, 0x24, 0x08, 0x00, 0x05, 0x04, 0x00 } },
	{ "btl $0xb,0x8(%rsp)", 6, { 0x0f, 0xba, 0x64, 0x24, 0x08, 0x0b } },
	{ "incq 0x10(%rcx)", 4, { 0x48, 0xff, 0x41, 0x10 } },
	{ "decq (%rcx)", 3, { 0x48, 0xff, 0x09 } },
	{ "lock incq 0x10(%rcx,%rdx,8)", 6, { 0xf0, 0x48, 0xff, 0x44, 0xd1, 0x10 } },
	{ "neg %r10", 3, { 0x49, 0xf7, 0xda } },
	{ "not %rax", 3, { 0x48, 0xf7, 0xd0 } },
	{ "imul %r11,%r10", 4, { 0x4d, 0x0f, 0xaf, 0xd3 } },
	{ "div %r11", 3, { 0x49, 0xf7, 0xf3 } },
	{ "shl $0x8,%eax", 3, { 0xc1, 0xe0, 0x08 } },
	{ "shl $0x3,%r10", 4, { 0x49, 0xc1, 0xe2, 0x03 } },
	{ "shr $0x3,%rax", 4, { 0x48, 0xc1, 0xe8, 0x03 } },
	{ "sar $0x3f,%r10", 4, { 0x49, 0xc1, 0xfa, 0x3f } },
	{ "bsr %r10,%rdx", 4, { 0x49, 0x0f, 0xbd, 0xd2 } },
	{ "seta %r10b", 4, { 0x41, 0x0f, 0x97, 0xc2 } },
	{ "setne %al", 3, { 0x0f, 0x95, 0xc0 } },
	{ "seto %sil", 4, { 0x40, 0x0f, 0x90, 0xc6 } },
	{ "cmova %r11,%rdx", 4, { 0x49, 0x0f, 0x47, 0xd3 } },
	{ "cmpxchg %r10,0x8(%rcx)", 5, { 0x4c, 0x0f, 0xb1, 0x51, 0x08 } },
	{ "call *%rax", 2, { 0xff, 0xd0 } },
	{ "call *%r11", 3, { 0x41, 0xff, 0xd3 } },
};

static void emit_one(struct x86e *e, int i)
{
	switch (i) {
	case 0: x86_push(e, X86_RAX); break;
	case 1: x86_push(e, X86_R12); break;
	case 2: x86_pop(e, X86_R15); break;
	case 3: x86_pop(e, X86_RDI); break;
	case 4: x86_push_m64(e, x86_mem(X86_RSP, 0x80)); break;
	case 5: x86_pushfq(e); break;
	case 6: x86_popfq(e); break;
	case 7: x86_lahf(e); break;
	case 8: x86_sahf(e); break;
	case 9: x86_cld(e); break;
	case 10: x86_int3(e); break;
	case 11: x86_ret(e); break;
	case 12: x86_syscall(e); break;
	case 13: x86_mov_r64_imm64(e, X86_RAX, 0x1122334455667788ull); break;
	case 14: x86_mov_r64_imm64(e, X86_R11, 0x1122334455667788ull); break;
	case 15: x86_mov_r32_imm32(e, X86_RDX, 0x1f); break;
	case 16: x86_mov_r32_imm32(e, X86_R11, 0x1f); break;
	case 17: x86_mov_r64_r64(e, X86_RDI, X86_RAX); break;
	case 18: x86_mov_r64_r64(e, X86_R11, X86_R10); break;
	case 19: x86_mov_r64_r64(e, X86_RBP, X86_RSP); break;
	case 20: x86_mov_r64_m64(e, X86_RDX, x86_mem(X86_RCX, 0)); break;
	case 21: x86_mov_r64_m64(e, X86_R10, x86_mem(X86_RSP, 0x10)); break;
	case 22: x86_mov_r64_m64(e, X86_RAX, x86_mem(X86_RBP, 0)); break;
	case 23: x86_mov_r64_m64(e, X86_RAX, x86_mem(X86_R13, 8)); break;
	case 24: x86_mov_r64_m64(e, X86_RAX, x86_mem(X86_R12, 0)); break;
	case 25: x86_mov_r64_m64(e, X86_RCX, x86_fs(0x12345678)); break;
	case 26: x86_mov_r32_m32(e, X86_RCX, x86_fs(-0x40)); break;
	case 27: x86_mov_r32_m32(e, X86_RCX, x86_mem(X86_RCX, 0)); break;
	case 28: x86_mov_m64_r64(e, x86_fs(0x20), X86_RCX); break;
	case 29: x86_mov_m64_r64(e, x86_mem(X86_RSP, 0x80), X86_RAX); break;
	case 30: x86_mov_m64_r64(e, x86_mem_idx(X86_RCX, X86_RDX, 8, 0x100), X86_R10); break;
	case 31: x86_mov_m64_imm32(e, x86_fs(0x28), 0); break;
	case 32: x86_mov_m64_imm32(e, x86_mem(X86_RAX, 8), -1); break;
	case 33: x86_mov_m8_imm8(e, x86_mem(X86_RDX, 0), 1); break;
	case 34: x86_movzx_r32_m8(e, X86_RAX, x86_mem(X86_RSP, 8)); break;
	case 35: x86_movzx_r32_m8(e, X86_RCX, x86_mem(X86_RDX, 0)); break;
	case 36: x86_movzx_r32_r8(e, X86_R10, X86_R10); break;
	case 37: x86_movzx_r32_r8(e, X86_RAX, X86_RSI); break;
	case 38: x86_lea(e, X86_RSP, x86_mem(X86_RSP, -0x18)); break;
	case 39: x86_lea(e, X86_RDX, x86_mem(X86_RDX, 1)); break;
	case 40: x86_lea(e, X86_RCX, x86_mem_idx(X86_RDX, X86_RCX, 1, 0)); break;
	case 41: x86_lea(e, X86_RSI, x86_mem(X86_RBP, 216)); break;
	case 42: x86_alu_r64_r64(e, X86_ADD, X86_RCX, X86_RDX); break;
	case 43: x86_alu_r64_r64(e, X86_SUB, X86_R10, X86_R11); break;
	case 44: x86_alu_r64_r64(e, X86_CMP, X86_R10, X86_R11); break;
	case 45: x86_bytes(e, "\x31\xc0", 2); break;
	case 46: x86_alu_r64_imm32(e, X86_AND, X86_RSP, -16); break;
	case 47: x86_alu_r64_imm32(e, X86_CMP, X86_R10, 0x1000); break;
	case 48: x86_alu_r64_imm32(e, X86_ADD, X86_RDI, 7); break;
	case 49: x86_alu_m64_r64(e, X86_ADD, x86_mem(X86_RCX, 0x18), X86_R10); break;
	case 50: x86_alu_r64_m64(e, X86_CMP, X86_R10, x86_mem(X86_RCX, 8)); break;
	case 51: x86_adc_al_imm8(e, 0x7f); break;
	case 52: x86_add_al_imm8(e, 0x7f); break;
	case 53: x86_cmp_m8_imm8(e, x86_mem(X86_RDX, 0), 0); break;
	case 54: x86_test_r64_r64(e, X86_R10, X86_R10); break;
	case 55: x86_test_r32_r32(e, X86_RAX, X86_RAX); break;
	case 56: x86_test_m32_imm32(e, x86_mem(X86_RSP, 8), 0x40500); break;
	case 57: x86_bt_m32_imm8(e, x86_mem(X86_RSP, 8), 11); break;
	case 58: x86_inc_m64(e, x86_mem(X86_RCX, 0x10)); break;
	case 59: x86_dec_m64(e, x86_mem(X86_RCX, 0)); break;
	case 60: x86_lock_inc_m64(e, x86_mem_idx(X86_RCX, X86_RDX, 8, 0x10)); break;
	case 61: x86_neg_r64(e, X86_R10); break;
	case 62: x86_not_r64(e, X86_RAX); break;
	case 63: x86_imul_r64_r64(e, X86_R10, X86_R11); break;
	case 64: x86_div_r64(e, X86_R11); break;
	case 65: x86_shl_r32_imm8(e, X86_RAX, 8); break;
	case 66: x86_shift_r64_imm8(e, X86_SHL, X86_R10, 3); break;
	case 67: x86_shift_r64_imm8(e, X86_SHR, X86_RAX, 3); break;
	case 68: x86_shift_r64_imm8(e, X86_SAR, X86_R10, 63); break;
	case 69: x86_bsr_r64_r64(e, X86_RDX, X86_R10); break;
	case 70: x86_setcc_r8(e, X86_CC_A, X86_R10); break;
	case 71: x86_setcc_r8(e, X86_CC_NE, X86_RAX); break;
	case 72: x86_setcc_r8(e, X86_CC_O, X86_RSI); break;
	case 73: x86_cmovcc_r64_r64(e, X86_CC_A, X86_RDX, X86_R11); break;
	case 74: x86_cmpxchg_m64_r64(e, x86_mem(X86_RCX, 8), X86_R10); break;
	case 75: x86_call_r64(e, X86_RAX); break;
	case 76: x86_call_r64(e, X86_R11); break;
	}
}

Test(x86emit, encodings_match_the_assembler)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		uint8_t buf[32];
		struct x86e e = { buf, 0, sizeof(buf), 0 };
		emit_one(&e, (int)i);
		char got[100] = "", want[100] = "";
		for (size_t k = 0; k < e.len; k++)
			sprintf(got + 3 * k, "%02x ", buf[k]);
		for (size_t k = 0; k < table[i].n; k++)
			sprintf(want + 3 * k, "%02x ", table[i].b[k]);
		cr_expect(e.len == table[i].n && memcmp(buf, table[i].b, e.len) == 0, "%s: got %s, want %s",
			  table[i].att, got, want);
	}
}

Test(x86emit, forced_disp32_and_fixed_forms)
{
	uint8_t buf[64];
	struct x86e e = { buf, 0, sizeof(buf), 0 };
	x86_lea(&e, X86_RSP, x86_mem32(X86_RSP, -0x80));   /* the trampoline's first instruction */
	static const uint8_t lea[] = { 0x48, 0x8d, 0xa4, 0x24, 0x80, 0xff, 0xff, 0xff };
	cr_assert_eq(e.len, sizeof(lea));
	cr_assert(memcmp(buf, lea, sizeof(lea)) == 0);
	e.len = 0;
	x86_cmp_m8_imm8(&e, x86_mem32(X86_RAX, 0x10), 0);   /* cmpb $0,0x10(%rax), disp32 */
	static const uint8_t cmpb[] = { 0x80, 0xb8, 0x10, 0x00, 0x00, 0x00, 0x00 };
	cr_assert_eq(e.len, sizeof(cmpb));
	cr_assert(memcmp(buf, cmpb, sizeof(cmpb)) == 0);
	e.len = 0;
	x86_ud1_rip_sig(&e, 0x53053053);
	static const uint8_t ud1[] = { 0x0f, 0xb9, 0x3d, 0x53, 0x30, 0x05, 0x53 };
	cr_assert(e.len == sizeof(ud1) && memcmp(buf, ud1, sizeof(ud1)) == 0);
}

Test(x86emit, jumps_are_patched_to_their_targets)
{
	uint8_t buf[64];
	struct x86e e = { buf, 0, sizeof(buf), 0 };
	size_t top = x86_here(&e);
	size_t j32 = x86_jmp_rel32(&e);          /* e9 rel32 */
	size_t jcc = x86_jcc_rel32(&e, X86_CC_NE);   /* 0f 85 rel32 */
	size_t j8 = x86_jcc_rel8(&e, X86_CC_E);  /* 74 rel8 */
	x86_jrcxz_to(&e, top);                   /* e3 back to 0 */
	size_t target = x86_here(&e);
	x86_patch_rel32(&e, j32, target);
	x86_patch_rel32(&e, jcc, target);
	x86_patch_rel8(&e, j8, target);
	cr_assert_eq(buf[0], 0xe9);
	int32_t r;
	memcpy(&r, buf + j32, 4);
	cr_assert_eq((size_t)((intptr_t)j32 + 4 + r), target);
	cr_assert_eq(buf[5], 0x0f);
	cr_assert_eq(buf[6], 0x85);
	memcpy(&r, buf + jcc, 4);
	cr_assert_eq((size_t)((intptr_t)jcc + 4 + r), target);
	cr_assert_eq(buf[11], 0x74);
	cr_assert_eq((size_t)((intptr_t)j8 + 1 + (int8_t)buf[j8]), target);
	cr_assert_eq(buf[13], 0xe3);
	cr_assert_eq((int8_t)buf[14], -15);
	cr_assert_eq(e.overflow, 0);
	/* x86_jmp_to: short when it reaches */
	e.len = 0;
	x86_jmp_to(&e, 0);
	cr_assert_eq(e.len, 2);
	cr_assert_eq(buf[0], 0xeb);
	cr_assert_eq((int8_t)buf[1], -2);
}

Test(x86emit, overflow_is_flagged_never_written)
{
	uint8_t buf[16];
	memset(buf, 0xaa, sizeof(buf));
	struct x86e e = { buf, 0, 9, 0 };
	x86_mov_r64_imm64(&e, X86_RAX, 1);       /* 10 bytes: does not fit in 9 */
	cr_assert_eq(e.overflow, 1);
	cr_assert_eq(e.len, 2);                  /* REX and opcode went in, not the immediate */
	for (size_t i = 9; i < sizeof(buf); i++)
		cr_assert_eq(buf[i], 0xaa);
	/* a rel8 that cannot reach */
	uint8_t big[512];
	struct x86e f = { big, 0, sizeof(big), 0 };
	size_t j = x86_jcc_rel8(&f, X86_CC_E);
	f.len = 300;
	x86_patch_rel8(&f, j, 300);
	cr_assert_eq(f.overflow, 1);
}
