/* Tests for insn: classification table, boundaries on a real assembled
 * function, RIP-relative relocation executed for real next to the data. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "insn.h"

#define ADDR 0x401000ull

/* ---------------------------------------------------------------------- */
/* Classification table                                                   */
/* ---------------------------------------------------------------------- */

struct tcase {
	const char *name;
	uint8_t b[15];
	uint8_t n;               /* bytes given (and expected length unless len) */
	uint8_t len;             /* expected length when the bytes run past it */
	enum sp_insn_class cls;
	bool reloc;              /* expected relocatable */
	int reg, reg2;           /* push/pop/mov/jmp *reg */
	uint8_t opsize;          /* mov; jrcxz/loop address size */
	uint64_t target;         /* relative branches */
	uint8_t cond;            /* jcc, loop */
	uint16_t ret_imm;
	bool ind_mem;
	struct sp_memop mem;
	bool riprel;
	uint8_t disp_off;
	const char *why;         /* substring of ->why, when set */
};

#define B(...) .b = { __VA_ARGS__ }, .n = sizeof((uint8_t[]){ __VA_ARGS__ })
#define MEM(b_, i_, s_, d_) .ind_mem = true, .mem = { .base = (b_), .index = (i_), .scale = (s_), .disp = (d_) }

static const struct tcase cases[] = {
	/* nops */
	{ "nop",            B(0x90), .cls = SP_INSN_NOP, .reloc = true },
	{ "xchg %ax,%ax",   B(0x66, 0x90), .cls = SP_INSN_NOP, .reloc = true },
	{ "nopl (%rax)",    B(0x0f, 0x1f, 0x00), .cls = SP_INSN_NOP, .reloc = true },
	{ "nopl 0(%rax,%rax)", B(0x0f, 0x1f, 0x44, 0x00, 0x00), .cls = SP_INSN_NOP, .reloc = true },
	{ "nopw cs:0(%rax,%rax)", B(0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00),
	  .cls = SP_INSN_NOP, .reloc = true },
	{ "endbr64",        B(0xf3, 0x0f, 0x1e, 0xfa), .cls = SP_INSN_NOP, .reloc = true },
	{ "endbr32",        B(0xf3, 0x0f, 0x1e, 0xfb), .cls = SP_INSN_NOP, .reloc = true },
	{ "pause is not a nop", B(0xf3, 0x90), .cls = SP_INSN_OTHER, .reloc = true },
	{ "xchg %r8d,%eax is not a nop", B(0x41, 0x90), .cls = SP_INSN_OTHER, .reloc = true },
	/* push / pop */
	{ "push %rbp",      B(0x55), .cls = SP_INSN_PUSH_REG, .reloc = true, .reg = SP_RBP },
	{ "push %r15",      B(0x41, 0x57), .cls = SP_INSN_PUSH_REG, .reloc = true, .reg = SP_R15 },
	{ "push %rsp",      B(0x54), .cls = SP_INSN_PUSH_REG, .reloc = true, .reg = SP_RSP },
	{ "push $1",        B(0x6a, 0x01), .cls = SP_INSN_OTHER, .reloc = true },
	{ "push %fs",       B(0x0f, 0xa0), .cls = SP_INSN_OTHER, .reloc = true },
	{ "push %ax",       B(0x66, 0x50), .cls = SP_INSN_OTHER, .reloc = true },
	{ "push 0x10(%rip)", B(0xff, 0x35, 0x10, 0x00, 0x00, 0x00), .cls = SP_INSN_OTHER,
	  .reloc = true, .riprel = true, .disp_off = 2 },
	{ "pop %rbp",       B(0x5d), .cls = SP_INSN_POP_REG, .reloc = true, .reg = SP_RBP },
	{ "pop %r12",       B(0x41, 0x5c), .cls = SP_INSN_POP_REG, .reloc = true, .reg = SP_R12 },
	{ "pop %rsp",       B(0x5c), .cls = SP_INSN_OTHER, .reloc = true },
	/* mov reg,reg */
	{ "mov %rsp,%rbp",  B(0x48, 0x89, 0xe5), .cls = SP_INSN_MOV_REG_REG, .reloc = true,
	  .reg = SP_RBP, .reg2 = SP_RSP, .opsize = 64 },
	{ "mov %rdi,%rbx",  B(0x48, 0x89, 0xfb), .cls = SP_INSN_MOV_REG_REG, .reloc = true,
	  .reg = SP_RBX, .reg2 = SP_RDI, .opsize = 64 },
	{ "mov %r8,%rdi",   B(0x4c, 0x89, 0xc7), .cls = SP_INSN_MOV_REG_REG, .reloc = true,
	  .reg = SP_RDI, .reg2 = SP_R8, .opsize = 64 },
	{ "mov %rcx,%rax (8b)", B(0x48, 0x8b, 0xc1), .cls = SP_INSN_MOV_REG_REG, .reloc = true,
	  .reg = SP_RAX, .reg2 = SP_RCX, .opsize = 64 },
	{ "mov %edi,%eax",  B(0x89, 0xf8), .cls = SP_INSN_MOV_REG_REG, .reloc = true,
	  .reg = SP_RAX, .reg2 = SP_RDI, .opsize = 32 },
	{ "mov %r9d,%esp",  B(0x44, 0x89, 0xcc), .cls = SP_INSN_MOV_REG_REG, .reloc = true,
	  .reg = SP_RSP, .reg2 = SP_R9, .opsize = 32 },
	{ "mov %cx,%ax",    B(0x66, 0x89, 0xc8), .cls = SP_INSN_OTHER, .reloc = true },
	{ "mov %cl,%al",    B(0x88, 0xc8), .cls = SP_INSN_OTHER, .reloc = true },
	{ "mov %rax,(%rdi)", B(0x48, 0x89, 0x07), .cls = SP_INSN_OTHER, .reloc = true },
	{ "mov $1,%rax",    B(0x48, 0xc7, 0xc0, 0x01, 0x00, 0x00, 0x00), .cls = SP_INSN_OTHER, .reloc = true },
	/* relative jumps */
	{ "jmp rel8",       B(0xeb, 0x10), .cls = SP_INSN_JMP_REL, .target = ADDR + 0x12,
	  .why = "relative branch: emulated" },
	{ "jmp rel8 self",  B(0xeb, 0xfe), .cls = SP_INSN_JMP_REL, .target = ADDR },
	{ "jmp rel32",      B(0xe9, 0x00, 0x01, 0x00, 0x00), .cls = SP_INSN_JMP_REL, .target = ADDR + 0x105 },
	{ "jmp rel32 back", B(0xe9, 0x00, 0xff, 0xff, 0xff), .cls = SP_INSN_JMP_REL,
	  .target = ADDR + 5 - 0x100 },
	{ "je rel8",        B(0x74, 0x05), .cls = SP_INSN_JCC_REL, .cond = 0x4, .target = ADDR + 7 },
	{ "jg rel8 back",   B(0x7f, 0xf0), .cls = SP_INSN_JCC_REL, .cond = 0xf, .target = ADDR + 2 - 16 },
	{ "jo rel8",        B(0x70, 0x00), .cls = SP_INSN_JCC_REL, .cond = 0x0, .target = ADDR + 2 },
	{ "jne rel32",      B(0x0f, 0x85, 0x10, 0x00, 0x00, 0x00), .cls = SP_INSN_JCC_REL,
	  .cond = 0x5, .target = ADDR + 0x16 },
	{ "jp rel32",       B(0x0f, 0x8a, 0xfa, 0xff, 0xff, 0xff), .cls = SP_INSN_JCC_REL,
	  .cond = 0xa, .target = ADDR },
	{ "jrcxz",          B(0xe3, 0x05), .cls = SP_INSN_JRCXZ, .opsize = 64, .target = ADDR + 7 },
	{ "jecxz",          B(0x67, 0xe3, 0x05), .cls = SP_INSN_JRCXZ, .opsize = 32, .target = ADDR + 8 },
	{ "loop",           B(0xe2, 0xfe), .cls = SP_INSN_LOOP, .cond = 0, .opsize = 64, .target = ADDR },
	{ "loope",          B(0xe1, 0x10), .cls = SP_INSN_LOOP, .cond = 1, .opsize = 64, .target = ADDR + 0x12 },
	{ "loopne",         B(0xe0, 0x10), .cls = SP_INSN_LOOP, .cond = 2, .opsize = 64, .target = ADDR + 0x12 },
	{ "loop ecx",       B(0x67, 0xe2, 0xfe), .cls = SP_INSN_LOOP, .cond = 0, .opsize = 32, .target = ADDR + 1 },
	{ "jmp rel32 with 66", B(0x66, 0xe9, 0x00, 0x01, 0x00, 0x00), .len = 0,
	  .cls = SP_INSN_REFUSED, .why = "Intel and AMD disagree" },
	/* calls and returns */
	{ "call rel32",     B(0xe8, 0x00, 0x00, 0x00, 0x00), .cls = SP_INSN_CALL_REL, .target = ADDR + 5,
	  .why = "relative branch: emulated" },
	{ "call self",      B(0xe8, 0xfb, 0xff, 0xff, 0xff), .cls = SP_INSN_CALL_REL, .target = ADDR },
	{ "ret",            B(0xc3), .cls = SP_INSN_RET, .reloc = true },
	{ "ret $8",         B(0xc2, 0x08, 0x00), .cls = SP_INSN_RET, .reloc = true, .ret_imm = 8 },
	{ "bnd ret",        B(0xf2, 0xc3), .cls = SP_INSN_RET, .reloc = true },
	{ "rep ret",        B(0xf3, 0xc3), .cls = SP_INSN_RET, .reloc = true },
	{ "lret",           B(0xcb), .cls = SP_INSN_REFUSED, .why = "far" },
	{ "lret $4",        B(0xca, 0x04, 0x00), .cls = SP_INSN_REFUSED, .why = "far" },
	{ "retw",           B(0x66, 0xc3), .cls = SP_INSN_REFUSED, .why = "Intel and AMD disagree" },
	/* indirect */
	{ "jmp *%rax",      B(0xff, 0xe0), .cls = SP_INSN_JMP_IND, .reloc = true, .reg = SP_RAX },
	{ "jmp *%r11",      B(0x41, 0xff, 0xe3), .cls = SP_INSN_JMP_IND, .reloc = true, .reg = SP_R11 },
	{ "notrack jmp *%rax", B(0x3e, 0xff, 0xe0), .cls = SP_INSN_JMP_IND, .reloc = true, .reg = SP_RAX },
	{ "jmp *0x10(%rip)", B(0xff, 0x25, 0x10, 0x00, 0x00, 0x00), .cls = SP_INSN_JMP_IND,
	  .reloc = true, MEM(SP_RIP_BASE, SP_NOREG, 0, 0x10), .riprel = true, .disp_off = 2 },
	{ "bnd jmp *0x10(%rip)", B(0xf2, 0xff, 0x25, 0x10, 0x00, 0x00, 0x00), .cls = SP_INSN_JMP_IND,
	  .reloc = true, MEM(SP_RIP_BASE, SP_NOREG, 0, 0x10), .riprel = true, .disp_off = 3 },
	{ "jmp *0x1000(,%rax,8)", B(0xff, 0x24, 0xc5, 0x00, 0x10, 0x00, 0x00), .cls = SP_INSN_JMP_IND,
	  .reloc = true, MEM(SP_NOREG, SP_RAX, 8, 0x1000) },
	{ "jmp *%fs:0x28",  B(0x64, 0xff, 0x24, 0x25, 0x28, 0x00, 0x00, 0x00), .cls = SP_INSN_JMP_IND,
	  .reloc = true, .ind_mem = true, .mem = { .base = SP_NOREG, .index = SP_NOREG, .disp = 0x28, .fs = true } },
	{ "jmp *%gs:(%rdi)", B(0x65, 0xff, 0x27), .cls = SP_INSN_JMP_IND,
	  .reloc = true, .ind_mem = true, .mem = { .base = SP_RDI, .index = SP_NOREG, .gs = true } },
	{ "call *%rax",     B(0xff, 0xd0), .cls = SP_INSN_CALL_IND, .reg = SP_RAX, .why = "indirect call" },
	{ "call *-0x10(%rip)", B(0xff, 0x15, 0xf0, 0xff, 0xff, 0xff), .cls = SP_INSN_CALL_IND,
	  MEM(SP_RIP_BASE, SP_NOREG, 0, -0x10), .riprel = true, .disp_off = 2 },
	{ "call *0x8(%rsp)", B(0xff, 0x54, 0x24, 0x08), .cls = SP_INSN_CALL_IND,
	  MEM(SP_RSP, SP_NOREG, 0, 8) },
	{ "call *0x10(%r13,%rax,8)", B(0x41, 0xff, 0x54, 0xc5, 0x10), .cls = SP_INSN_CALL_IND,
	  MEM(SP_R13, SP_RAX, 8, 0x10) },
	{ "call *(%r12,%r9,4)", B(0x43, 0xff, 0x14, 0x8c), .cls = SP_INSN_CALL_IND,
	  MEM(SP_R12, SP_R9, 4, 0) },
	{ "66 jmp *%rax",   B(0x66, 0xff, 0xe0), .cls = SP_INSN_REFUSED, .why = "Intel and AMD disagree" },
	{ "66 call rel",    B(0x66, 0xe8, 0x00, 0x00, 0x00, 0x00), .cls = SP_INSN_REFUSED,
	  .why = "Intel and AMD disagree" },
	{ "call *(%eax)",   B(0x67, 0xff, 0x10), .cls = SP_INSN_REFUSED, .why = "address-size" },
	/* refused */
	{ "int3",           B(0xcc), .cls = SP_INSN_REFUSED, .why = "int3" },
	{ "int $0x80",      B(0xcd, 0x80), .cls = SP_INSN_REFUSED, .why = "interrupt" },
	{ "int1",           B(0xf1), .cls = SP_INSN_REFUSED, .why = "interrupt" },
	{ "ud2",            B(0x0f, 0x0b), .cls = SP_INSN_REFUSED, .why = "ud2" },
	{ "ud1",            B(0x0f, 0xb9, 0xc0), .cls = SP_INSN_REFUSED, .why = "undefined" },
	{ "ud0",            B(0x0f, 0xff, 0xc0), .cls = SP_INSN_REFUSED, .why = "undefined" },
	{ "hlt",            B(0xf4), .cls = SP_INSN_REFUSED, .why = "hlt" },
	{ "ljmp *(%rax)",   B(0xff, 0x28), .cls = SP_INSN_REFUSED, .why = "far" },
	{ "lcall *(%rax)",  B(0xff, 0x18), .cls = SP_INSN_REFUSED, .why = "far" },
	{ "iretq",          B(0x48, 0xcf), .cls = SP_INSN_REFUSED, .why = "iret" },
	{ "iret",           B(0xcf), .cls = SP_INSN_REFUSED, .why = "iret" },
	{ "sysenter",       B(0x0f, 0x34), .cls = SP_INSN_REFUSED, .why = "sysenter" },
	{ "xbegin",         B(0xc7, 0xf8, 0x00, 0x00, 0x00, 0x00), .cls = SP_INSN_REFUSED, .why = "TSX" },
	{ "xabort",         B(0xc6, 0xf8, 0x00), .cls = SP_INSN_REFUSED, .why = "TSX" },
	{ "xend",           B(0x0f, 0x01, 0xd5), .cls = SP_INSN_REFUSED, .why = "TSX" },
	/* other: runs out of line */
	{ "syscall",        B(0x0f, 0x05), .cls = SP_INSN_OTHER, .reloc = true },
	{ "lock cmpxchg %rcx,(%rdi)", B(0xf0, 0x48, 0x0f, 0xb1, 0x0f), .cls = SP_INSN_OTHER, .reloc = true },
	{ "sub $0x18,%rsp", B(0x48, 0x83, 0xec, 0x18), .cls = SP_INSN_OTHER, .reloc = true },
	{ "mov 0x10(%rip),%rax", B(0x48, 0x8b, 0x05, 0x10, 0x00, 0x00, 0x00), .cls = SP_INSN_OTHER,
	  .reloc = true, .riprel = true, .disp_off = 3 },
	{ "lea -0x20(%rip),%rdi", B(0x48, 0x8d, 0x3d, 0xe0, 0xff, 0xff, 0xff), .cls = SP_INSN_OTHER,
	  .reloc = true, .riprel = true, .disp_off = 3 },
	{ "cmpq $0,x(%rip)", B(0x48, 0x83, 0x3d, 0x78, 0x56, 0x34, 0x12, 0x00), .cls = SP_INSN_OTHER,
	  .reloc = true, .riprel = true, .disp_off = 3 },
	{ "movaps x(%rip),%xmm0", B(0x0f, 0x28, 0x05, 0x00, 0x01, 0x00, 0x00), .cls = SP_INSN_OTHER,
	  .reloc = true, .riprel = true, .disp_off = 3 },
	{ "vbroadcastss x(%rip),%xmm0", B(0xc4, 0xe2, 0x79, 0x18, 0x05, 0x00, 0x01, 0x00, 0x00),
	  .cls = SP_INSN_OTHER, .reloc = true, .riprel = true, .disp_off = 5 },
	{ "mov x(%eip),%eax", B(0x67, 0x8b, 0x05, 0x00, 0x01, 0x00, 0x00), .cls = SP_INSN_OTHER,
	  .riprel = true, .disp_off = 3, .why = "EIP-relative" },
	/* extra bytes after the instruction are not part of it */
	{ "nop then junk",  B(0x90, 0xff, 0xff, 0xff), .len = 1, .cls = SP_INSN_NOP, .reloc = true },
};

static void check_case(const struct tcase *t)
{
	struct sp_insn in;
	uint8_t len = t->len ? t->len : t->n;
	int rc = sp_insn_decode(t->b, t->n, ADDR, &in);

	cr_assert_eq(rc, 0, "%s: decode rc %d", t->name, rc);
	cr_expect_eq(in.addr, ADDR, "%s: addr", t->name);
	if (t->cls != SP_INSN_REFUSED || t->len)
		cr_expect_eq(in.len, len, "%s: len %u, want %u", t->name, in.len, len);
	cr_expect_arr_eq(in.bytes, t->b, in.len, "%s: bytes", t->name);
	cr_expect_eq(in.cls, t->cls, "%s: class %d, want %d", t->name, in.cls, t->cls);
	cr_expect_eq(in.relocatable, t->reloc, "%s: relocatable %d", t->name, in.relocatable);
	cr_expect_eq(in.rip_relative, t->riprel, "%s: rip_relative", t->name);
	if (t->riprel) {
		cr_expect_eq(in.disp_offset, t->disp_off, "%s: disp_offset %u want %u",
			     t->name, in.disp_offset, t->disp_off);
		cr_expect_eq(in.disp_size, 4, "%s: disp_size %u", t->name, in.disp_size);
	}
	if (t->why) {
		cr_assert_not_null(in.why, "%s: why missing", t->name);
		cr_expect(strstr(in.why, t->why), "%s: why '%s' lacks '%s'", t->name, in.why, t->why);
	}
	if (t->cls == SP_INSN_REFUSED)
		cr_expect_not_null(in.why, "%s: refused without a reason", t->name);

	switch (t->cls) {
	case SP_INSN_PUSH_REG:
	case SP_INSN_POP_REG:
		cr_expect_eq(in.reg, t->reg, "%s: reg %d want %d", t->name, in.reg, t->reg);
		break;
	case SP_INSN_MOV_REG_REG:
		cr_expect_eq(in.reg, t->reg, "%s: dst %d want %d", t->name, in.reg, t->reg);
		cr_expect_eq(in.reg2, t->reg2, "%s: src %d want %d", t->name, in.reg2, t->reg2);
		cr_expect_eq(in.opsize, t->opsize, "%s: opsize %u", t->name, in.opsize);
		break;
	case SP_INSN_JMP_REL:
	case SP_INSN_CALL_REL:
	case SP_INSN_JCC_REL:
	case SP_INSN_JRCXZ:
	case SP_INSN_LOOP:
		cr_expect_eq(in.target, t->target, "%s: target %#lx want %#lx", t->name,
			     (unsigned long)in.target, (unsigned long)t->target);
		cr_expect_eq(in.cond, t->cond, "%s: cond %u want %u", t->name, in.cond, t->cond);
		if (t->cls == SP_INSN_JRCXZ || t->cls == SP_INSN_LOOP)
			cr_expect_eq(in.opsize, t->opsize, "%s: address size %u", t->name, in.opsize);
		cr_expect_not(in.relocatable, "%s: relative branch relocatable", t->name);
		break;
	case SP_INSN_RET:
		cr_expect_eq(in.ret_imm, t->ret_imm, "%s: ret_imm %u", t->name, in.ret_imm);
		break;
	case SP_INSN_JMP_IND:
	case SP_INSN_CALL_IND:
		cr_expect_eq(in.ind_mem, t->ind_mem, "%s: ind_mem", t->name);
		if (!t->ind_mem) {
			cr_expect_eq(in.reg, t->reg, "%s: reg %d want %d", t->name, in.reg, t->reg);
			break;
		}
		cr_expect_eq(in.mem.base, t->mem.base, "%s: base %d want %d", t->name,
			     in.mem.base, t->mem.base);
		cr_expect_eq(in.mem.index, t->mem.index, "%s: index %d want %d", t->name,
			     in.mem.index, t->mem.index);
		if (t->mem.index != SP_NOREG)
			cr_expect_eq(in.mem.scale, t->mem.scale, "%s: scale %u", t->name, in.mem.scale);
		cr_expect_eq(in.mem.disp, t->mem.disp, "%s: disp %ld want %ld", t->name,
			     (long)in.mem.disp, (long)t->mem.disp);
		cr_expect_eq(in.mem.fs, t->mem.fs, "%s: fs", t->name);
		cr_expect_eq(in.mem.gs, t->mem.gs, "%s: gs", t->name);
		break;
	default:
		break;
	}
}

Test(insn, classification_table)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_case(&cases[i]);
}

Test(insn, every_class_covered)
{
	bool seen[SP_INSN_REFUSED + 1] = { false };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		seen[cases[i].cls] = true;
	for (int c = 0; c <= SP_INSN_REFUSED; c++)
		cr_expect(seen[c], "class %d has no test case", c);
}

Test(insn, undecodable_bytes)
{
	struct sp_insn in;
	static const uint8_t push_es[] = { 0x06 };             /* invalid in 64-bit mode */
	static const uint8_t short_call[] = { 0xe8, 0x00, 0x00 }; /* truncated rel32 */
	static const uint8_t lock_nop[] = { 0xf0, 0x90 };      /* lock on a non-lockable insn */
	cr_expect_eq(sp_insn_decode(push_es, sizeof(push_es), ADDR, &in), -EINVAL);
	cr_expect_eq(sp_insn_decode(short_call, sizeof(short_call), ADDR, &in), -EINVAL);
	cr_expect_eq(sp_insn_decode(lock_nop, sizeof(lock_nop), ADDR, &in), -EINVAL);
	cr_expect_eq(sp_insn_decode(push_es, 0, ADDR, &in), -EINVAL);
}

Test(insn, format_att)
{
	struct sp_insn in;
	char buf[96];
	static const uint8_t mov[] = { 0x48, 0x89, 0xe5 };
	static const uint8_t jmp[] = { 0xeb, 0x10 };
	static const uint8_t load[] = { 0x48, 0x8b, 0x47, 0x08 };

	cr_assert_eq(sp_insn_decode(mov, sizeof(mov), ADDR, &in), 0);
	sp_insn_format(&in, buf, sizeof(buf));
	cr_expect(strstr(buf, "mov") && strstr(buf, "%rsp") && strstr(buf, "%rbp"), "got '%s'", buf);
	cr_expect(strstr(buf, "%rsp") < strstr(buf, "%rbp"), "not AT&T order: '%s'", buf);

	cr_assert_eq(sp_insn_decode(jmp, sizeof(jmp), ADDR, &in), 0);
	sp_insn_format(&in, buf, sizeof(buf));
	cr_expect(strstr(buf, "jmp") && strstr(buf, "401012"), "runtime address not used: '%s'", buf);

	cr_assert_eq(sp_insn_decode(load, sizeof(load), ADDR, &in), 0);
	sp_insn_format(&in, buf, sizeof(buf));
	cr_expect(strstr(buf, "0x08(%rdi)") || strstr(buf, "0x8(%rdi)"), "got '%s'", buf);

	sp_insn_format(&in, buf, 4);             /* truncation stays terminated */
	cr_expect_lt(strlen(buf), 4u);
}

/* ---------------------------------------------------------------------- */
/* Boundaries on a real function                                          */
/* ---------------------------------------------------------------------- */

__asm__(
	".pushsection .text\n"
	".globl ti_func\n .hidden ti_func\n .type ti_func,@function\n"
	"ti_func:\n"
	"	push %rbp\n"                   /* +0   55 */
	"	mov %rsp,%rbp\n"               /* +1   48 89 e5 */
	"	mov $0x12345678,%eax\n"        /* +4   b8 78 56 34 12 */
	"	lea 0x8(%rdi),%rax\n"          /* +9   48 8d 47 08 */
	"	.byte 0x66,0x0f,0x1f,0x44,0x00,0x00\n" /* +13  nopw 0(%rax,%rax) */
	"	pop %rbp\n"                    /* +19  5d */
	"	ret\n"                         /* +20  c3 */
	"ti_func_end:\n"
	".size ti_func, .-ti_func\n"
	".popsection\n");
extern const uint8_t ti_func[], ti_func_end[];

static const uint8_t ti_func_bytes[] = {
	0x55, 0x48, 0x89, 0xe5, 0xb8, 0x78, 0x56, 0x34, 0x12, 0x48, 0x8d, 0x47, 0x08,
	0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00, 0x5d, 0xc3,
};

Test(insn, boundary_every_offset)
{
	static const size_t starts[] = { 0, 1, 4, 9, 13, 19, 20 };
	static const uint8_t lens[]  = { 1, 3, 5, 4, 6, 1, 1 };
	size_t size = (size_t)(ti_func_end - ti_func);
	uint64_t addr = (uintptr_t)ti_func;
	char why[256];

	cr_assert_eq(size, sizeof(ti_func_bytes));
	cr_assert_arr_eq(ti_func, ti_func_bytes, size, "assembler produced other bytes");

	for (size_t off = 0; off < size + 3; off++) {
		why[0] = '\0';
		int rc = sp_insn_boundary(ti_func, size, addr, off, why, sizeof(why));
		if (off >= size) {
			char want[128];
			snprintf(want, sizeof(want),
				 "offset +0x%zx is past the end of the function (size 0x%zx)", off, size);
			cr_expect_eq(rc, -EINVAL, "off %zu", off);
			cr_expect_str_eq(why, want);
			continue;
		}
		size_t k = 0;
		while (k + 1 < 7 && starts[k + 1] <= off)
			k++;
		if (starts[k] == off) {
			cr_expect_eq(rc, 0, "off %zu is a boundary: %s", off, why);
			continue;
		}
		char want[96];
		snprintf(want, sizeof(want), "offset +0x%zx is inside the %u-byte instruction at +0x%zx (`",
			 off, lens[k], starts[k]);
		cr_expect_eq(rc, -EINVAL, "off %zu is not a boundary", off);
		cr_expect(strncmp(why, want, strlen(want)) == 0, "off %zu: '%s', want prefix '%s'",
			  off, why, want);
	}
	/* the formatted instruction is in the message */
	sp_insn_boundary(ti_func, size, addr, 2, why, sizeof(why));
	cr_expect(strstr(why, "mov") && strstr(why, "%rsp") && strstr(why, "%rbp"), "'%s'", why);
	sp_insn_boundary(ti_func, size, addr, 6, why, sizeof(why));
	cr_expect(strstr(why, "$0x12345678"), "'%s'", why);
}

Test(insn, boundary_undecodable)
{
	static const uint8_t code[] = { 0x90, 0x06, 0x90, 0x90 };
	char why[128];
	cr_expect_eq(sp_insn_boundary(code, sizeof(code), ADDR, 1, why, sizeof(why)), 0);
	cr_expect_eq(sp_insn_boundary(code, sizeof(code), ADDR, 2, why, sizeof(why)), -EINVAL);
	cr_expect_str_eq(why, "bytes at +0x1 do not decode");
	/* an instruction cut by the end of the function does not decode either */
	static const uint8_t cut[] = { 0x90, 0xe8, 0x00, 0x00 };
	cr_expect_eq(sp_insn_boundary(cut, sizeof(cut), ADDR, 3, why, sizeof(why)), -EINVAL);
	cr_expect_str_eq(why, "bytes at +0x1 do not decode");
}

/* ---------------------------------------------------------------------- */
/* Relocation, executed                                                   */
/* ---------------------------------------------------------------------- */

/* Each ti_* function is "the instruction under test; ret".  The data lives
 * in this binary's .data, so the relocated copy must reach it from a buffer
 * mapped tens of MiB away. */
__asm__(
	".pushsection .data\n"
	".balign 16\n"
	"ti_data:  .quad 0x1122334455667788, 0x99aabbccddeeff00\n"
	"ti_zero:  .quad 0\n"
	".globl ti_store\n .hidden ti_store\n"
	"ti_store: .quad 0\n"
	".popsection\n"
	".pushsection .text\n"
#define FN(name) ".globl " #name "\n .hidden " #name "\n" #name ":\n"
	FN(ti_load)    "	mov ti_data(%rip),%rax\n	ret\n"
	FN(ti_load8)   "	mov ti_data+8(%rip),%rax\n	ret\n"
	FN(ti_lea)     "	lea ti_data(%rip),%rax\n	ret\n"
	FN(ti_cmp0)    "	cmpq $0,ti_zero(%rip)\n	ret\n"
	FN(ti_cmp7f)   "	cmpq $0x7f,ti_data(%rip)\n	ret\n"
	FN(ti_movaps)  "	movaps ti_data(%rip),%xmm0\n	ret\n"
	FN(ti_put)     "	mov %rdi,ti_store(%rip)\n	ret\n"
	FN(ti_addl)    "	addl $0x12345678,ti_store(%rip)\n	ret\n"
	/* call the function in rdi, return the flags it left */
	FN(ti_flags_of) "	call *%rdi\n	pushfq\n	pop %rax\n	ret\n"
#undef FN
	".popsection\n");

typedef unsigned long long v2u64 __attribute__((vector_size(16)));
extern const uint8_t ti_load[], ti_load8[], ti_lea[], ti_cmp0[], ti_cmp7f[], ti_movaps[],
	ti_put[], ti_addl[];
extern uint64_t ti_store;
uint64_t ti_flags_of(const void *fn);

#define FLAGS_MASK 0x8d5ull /* CF PF AF ZF SF OF */

static uint8_t *xbuf;

/* An RWX page within reach of this binary's data, and at least 32 MiB
 * from it so every displacement has to change. */
static void map_near(void)
{
	uintptr_t near = (uintptr_t)&ti_store & ~(uintptr_t)0xfff;
	for (long k = 1; k < 64 && !xbuf; k++) {
		for (int sign = -1; sign <= 1; sign += 2) {
			uintptr_t hint = near + (uintptr_t)(sign * k * (32l << 20));
			void *p = mmap((void *)hint, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
			if (p == MAP_FAILED)
				continue;
			if ((uintptr_t)p == hint) {
				xbuf = p;
				break;
			}
			munmap(p, 4096);
		}
	}
	cr_assert_not_null(xbuf, "no RWX page near %#lx", (unsigned long)near);
	intptr_t dist = (intptr_t)((uintptr_t)xbuf - near);
	cr_assert(dist > -(1l << 30) && dist < (1l << 30) && (dist >= (32l << 20) || dist <= -(32l << 20)),
		  "buffer %p too far/near from data %#lx", (void *)xbuf, (unsigned long)near);
}

static void unmap_near(void)
{
	if (xbuf)
		munmap(xbuf, 4096);
	xbuf = NULL;
}

/* Relocate the first instruction of FN into xbuf + ret; check the bytes:
 * only the displacement changed, and it addresses the same target. */
static void *relocate_fn(const uint8_t *fn)
{
	struct sp_insn in;
	const char *why = NULL;
	uint64_t at = (uintptr_t)xbuf + 0x40;

	cr_assert_eq(sp_insn_decode(fn, 15, (uintptr_t)fn, &in), 0);
	cr_assert(in.rip_relative && in.relocatable);
	cr_assert_eq(fn[in.len], 0xc3, "test function is not 'insn; ret'");
	memset(xbuf, 0xcc, 4096);
	int n = sp_insn_relocate(&in, at, xbuf + 0x40, 15, &why);
	cr_assert_eq(n, in.len, "relocate: %d (%s)", n, why ? why : "");
	xbuf[0x40 + n] = 0xc3;

	int32_t od, nd;
	memcpy(&od, fn + in.disp_offset, 4);
	memcpy(&nd, xbuf + 0x40 + in.disp_offset, 4);
	cr_expect_eq((uintptr_t)fn + in.len + od, at + in.len + nd, "displacement misses");
	cr_expect_neq(od, nd);
	cr_expect_arr_eq(xbuf + 0x40, fn, in.disp_offset, "bytes before the displacement changed");
	cr_expect_arr_eq(xbuf + 0x40 + in.disp_offset + 4, fn + in.disp_offset + 4,
			 in.len - in.disp_offset - 4, "bytes after the displacement changed");
	__builtin___clear_cache((char *)xbuf, (char *)xbuf + 4096);
	return xbuf + 0x40;
}

TestSuite(reloc, .init = map_near, .fini = unmap_near);

Test(reloc, mov_load)
{
	typedef uint64_t (*fn_t)(void);
	fn_t orig = (fn_t)(uintptr_t)ti_load, moved = (fn_t)relocate_fn(ti_load);
	cr_expect_eq(orig(), 0x1122334455667788ull);
	cr_expect_eq(moved(), orig());
	orig = (fn_t)(uintptr_t)ti_load8;
	moved = (fn_t)relocate_fn(ti_load8);
	cr_expect_eq(moved(), 0x99aabbccddeeff00ull);
}

Test(reloc, lea)
{
	typedef uint64_t (*fn_t)(void);
	fn_t orig = (fn_t)(uintptr_t)ti_lea, moved = (fn_t)relocate_fn(ti_lea);
	cr_expect_eq(moved(), orig());
}

Test(reloc, cmp_imm_after_disp)
{
	uint64_t want0 = ti_flags_of(ti_cmp0) & FLAGS_MASK;
	uint64_t got0 = ti_flags_of(relocate_fn(ti_cmp0)) & FLAGS_MASK;
	cr_expect(want0 & 0x40, "cmp $0,0 should set ZF");
	cr_expect_eq(got0, want0);
	uint64_t want7 = ti_flags_of(ti_cmp7f) & FLAGS_MASK;
	uint64_t got7 = ti_flags_of(relocate_fn(ti_cmp7f)) & FLAGS_MASK;
	cr_expect_eq(got7, want7);
	cr_expect_neq(want0, want7);
}

Test(reloc, movaps)
{
	typedef v2u64 (*fn_t)(void);
	fn_t orig = (fn_t)(uintptr_t)ti_movaps, moved = (fn_t)relocate_fn(ti_movaps);
	v2u64 a = orig(), b = moved();
	cr_expect_eq(a[0], 0x1122334455667788ull);
	cr_expect_eq(a[1], 0x99aabbccddeeff00ull);
	cr_expect(a[0] == b[0] && a[1] == b[1]);
}

Test(reloc, stores)
{
	typedef void (*fn_t)(uint64_t);
	fn_t moved = (fn_t)relocate_fn(ti_put);
	ti_store = 0;
	moved(0xfeedface12345678ull);
	cr_expect_eq(ti_store, 0xfeedface12345678ull);

	ti_store = 1;
	((fn_t)(uintptr_t)ti_addl)(0);
	uint64_t want = ti_store;
	ti_store = 1;
	((fn_t)relocate_fn(ti_addl))(0);
	cr_expect_eq(ti_store, want);
	cr_expect_eq(want, 0x12345679ull);
}

Test(reloc, out_of_reach)
{
	struct sp_insn in;
	const char *why = NULL;
	uint8_t buf[16];
	cr_assert_eq(sp_insn_decode(ti_load, 15, (uintptr_t)ti_load, &in), 0);
	int rc = sp_insn_relocate(&in, 0x7f0000000000ull, buf, sizeof(buf), &why);
	cr_expect_eq(rc, -ERANGE);
	cr_expect_str_eq(why, "RIP-relative operand out of reach from the out-of-line slot");
	/* exactly at the edge: disp = INT32_MAX still fits, one more does not */
	static const uint8_t load[] = { 0x48, 0x8b, 0x05, 0x00, 0x00, 0x00, 0x00 };
	cr_assert_eq(sp_insn_decode(load, sizeof(load), 0x100000000ull, &in), 0);
	uint64_t target = 0x100000000ull + 7;
	cr_expect_eq(sp_insn_relocate(&in, target - 7 - 0x7fffffffll, buf, sizeof(buf), &why), 7);
	int32_t d;
	memcpy(&d, buf + 3, 4);
	cr_expect_eq(d, INT32_MAX);
	cr_expect_eq(sp_insn_relocate(&in, target - 7 - 0x80000000ll, buf, sizeof(buf), &why), -ERANGE);
	cr_expect_eq(sp_insn_relocate(&in, target - 7 + 0x80000000ll, buf, sizeof(buf), &why), 7);
	memcpy(&d, buf + 3, 4);
	cr_expect_eq(d, INT32_MIN);
	cr_expect_eq(sp_insn_relocate(&in, target - 7 + 0x80000001ll, buf, sizeof(buf), &why), -ERANGE);
}

Test(reloc, plain_and_refused)
{
	struct sp_insn in;
	const char *why = NULL;
	uint8_t buf[16];
	static const uint8_t sub[] = { 0x48, 0x83, 0xec, 0x18 };
	cr_assert_eq(sp_insn_decode(sub, sizeof(sub), ADDR, &in), 0);
	cr_expect_eq(sp_insn_relocate(&in, 0x7f0000000000ull, buf, sizeof(buf), &why), 4);
	cr_expect_arr_eq(buf, sub, 4);
	cr_expect_eq(sp_insn_relocate(&in, 0x7f0000000000ull, buf, 3, &why), -ENOBUFS);

	static const uint8_t call[] = { 0xe8, 0x00, 0x00, 0x00, 0x00 };
	cr_assert_eq(sp_insn_decode(call, sizeof(call), ADDR, &in), 0);
	cr_expect_eq(sp_insn_relocate(&in, ADDR + 0x100, buf, sizeof(buf), &why), -ENOTSUP);
	cr_expect_str_eq(why, "relative branch: emulated");

	static const uint8_t int3[] = { 0xcc };
	cr_assert_eq(sp_insn_decode(int3, sizeof(int3), ADDR, &in), 0);
	cr_expect_eq(sp_insn_relocate(&in, ADDR + 0x100, buf, sizeof(buf), &why), -ENOTSUP);
	cr_expect(strstr(why, "int3"));
}
