/* Tests for emulate: every emulated class on a register set whose rsp
 * points into a real buffer; conditions, jrcxz and loop cross-checked
 * against the CPU executing the same instructions. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "emulate.h"
#include "insn.h"

#define SITE 0x401000ull

static uint64_t stack[64];
static struct selfprobe_regs regs;

static void reset(void)
{
	memset(stack, 0xa5, sizeof(stack));
	memset(&regs, 0, sizeof(regs));
	/* distinct values, so a wrong register shows */
	uint64_t *r = (uint64_t *)&regs;
	for (int i = 0; i < 15; i++)
		r[i] = 0x1000 + (uint64_t)i * 0x111;
	regs.rip = SITE;
	regs.eflags = 0x202;
	regs.rsp = (uintptr_t)&stack[32];
}

TestSuite(emulate, .init = reset);

static struct sp_insn dec(const uint8_t *b, size_t n)
{
	struct sp_insn in;
	cr_assert_eq(sp_insn_decode(b, n, regs.rip, &in), 0);
	cr_assert_eq(in.len, n, "test bytes are not one instruction");
	return in;
}
#define DEC(...) dec((const uint8_t[]){ __VA_ARGS__ }, sizeof((uint8_t[]){ __VA_ARGS__ }))

static void emulate_ok(const struct sp_insn *in)
{
	cr_assert(sp_emulate_can(in), "class %d not emulatable", in->cls);
	cr_assert_eq(sp_emulate(in, &regs, 0, 0), 0);
}

Test(emulate, nop_changes_only_rip)
{
	struct sp_insn in = DEC(0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00);
	struct selfprobe_regs before = regs;
	emulate_ok(&in);
	cr_expect_eq(regs.rip, SITE + 6);
	before.rip = regs.rip;
	cr_expect(memcmp(&before, &regs, sizeof(regs)) == 0);
	in = DEC(0xf3, 0x0f, 0x1e, 0xfa);
	emulate_ok(&in);
	cr_expect_eq(regs.rip, SITE + 10);
}

Test(emulate, push_pop)
{
	uint64_t sp0 = regs.rsp;
	struct sp_insn in = DEC(0x55);                 /* push %rbp */
	emulate_ok(&in);
	cr_expect_eq(regs.rsp, sp0 - 8);
	cr_expect_eq(stack[31], regs.rbp);
	cr_expect_eq(regs.rip, SITE + 1);

	in = DEC(0x41, 0x57);                          /* push %r15 */
	emulate_ok(&in);
	cr_expect_eq(stack[30], regs.r15);
	cr_expect_eq(regs.rip, SITE + 3);

	in = DEC(0x54);                                /* push %rsp: the old value */
	emulate_ok(&in);
	cr_expect_eq(stack[29], sp0 - 16);
	cr_expect_eq(regs.rsp, sp0 - 24);

	stack[29] = 0xabcdef;
	in = DEC(0x5b);                                /* pop %rbx */
	emulate_ok(&in);
	cr_expect_eq(regs.rbx, 0xabcdef);
	cr_expect_eq(regs.rsp, sp0 - 16);

	in = DEC(0x41, 0x5c);                          /* pop %r12 */
	emulate_ok(&in);
	cr_expect_eq(regs.r12, regs.r15);
	cr_expect_eq(regs.rsp, sp0 - 8);
	cr_expect_eq(regs.rip, SITE + 7);
}

Test(emulate, mov_reg_reg)
{
	struct sp_insn in = DEC(0x48, 0x89, 0xe5);     /* mov %rsp,%rbp */
	emulate_ok(&in);
	cr_expect_eq(regs.rbp, regs.rsp);
	cr_expect_eq(regs.rip, SITE + 3);

	regs.rdi = 0xffffffff87654321ull;
	regs.rax = 0xdeadbeefdeadbeefull;
	in = DEC(0x89, 0xf8);                          /* mov %edi,%eax: zero-extends */
	emulate_ok(&in);
	cr_expect_eq(regs.rax, 0x87654321ull);

	in = DEC(0x4c, 0x89, 0xc7);                    /* mov %r8,%rdi */
	emulate_ok(&in);
	cr_expect_eq(regs.rdi, regs.r8);
	cr_expect_eq(regs.rip, SITE + 8);
}

Test(emulate, jmp_call_ret)
{
	uint64_t sp0 = regs.rsp;
	struct sp_insn in = DEC(0xe9, 0x00, 0x01, 0x00, 0x00);  /* jmp .+0x105 */
	emulate_ok(&in);
	cr_expect_eq(regs.rip, SITE + 0x105);
	cr_expect_eq(regs.rsp, sp0);

	regs.rip = SITE;
	in = DEC(0xe8, 0xfb, 0xef, 0xff, 0xff);        /* call .-0x1000 */
	emulate_ok(&in);
	cr_expect_eq(regs.rip, SITE - 0x1000);
	cr_expect_eq(regs.rsp, sp0 - 8);
	cr_expect_eq(stack[31], SITE + 5);

	in = DEC(0xc3);                                /* ret */
	emulate_ok(&in);
	cr_expect_eq(regs.rip, SITE + 5);
	cr_expect_eq(regs.rsp, sp0);

	stack[32] = 0x5555;
	in = DEC(0xc2, 0x10, 0x00);                    /* ret $16 */
	emulate_ok(&in);
	cr_expect_eq(regs.rip, 0x5555);
	cr_expect_eq(regs.rsp, sp0 + 8 + 16);
}

/* ---------------------------------------------------------------------- */
/* Conditions against the CPU                                             */
/* ---------------------------------------------------------------------- */

static uint8_t *xpage;

static void map_x(void)
{
	reset();
	xpage = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(xpage, MAP_FAILED);
}

static void unmap_x(void)
{
	munmap(xpage, 4096);
}

TestSuite(cpu, .init = map_x, .fini = unmap_x);

static const uint64_t flag_bits[] = { 1u << 0, 1u << 2, 1u << 6, 1u << 7, 1u << 11 };

static uint64_t flags_combo(unsigned m)
{
	uint64_t f = 0x202;
	for (int b = 0; b < 5; b++)
		if (m & (1u << b))
			f |= flag_bits[b];
	return f;
}

/* Does the CPU take jCC with EFLAGS?  push %rdi; popf; jCC +3;
 * xor %eax,%eax; ret; mov $1,%eax; ret */
static bool cpu_jcc(uint8_t cc, uint64_t eflags)
{
	const uint8_t code[] = { 0x57, 0x9d, (uint8_t)(0x70 | cc), 0x03, 0x31, 0xc0, 0xc3,
				 0xb8, 0x01, 0x00, 0x00, 0x00, 0xc3 };
	memcpy(xpage, code, sizeof(code));
	__builtin___clear_cache((char *)xpage, (char *)xpage + sizeof(code));
	return ((int (*)(uint64_t))(uintptr_t)xpage)(eflags);
}

Test(cpu, jcc_all_conditions)
{
	int taken = 0, total = 0;
	for (uint8_t cc = 0; cc < 16; cc++) {
		for (unsigned m = 0; m < 32; m++) {
			uint64_t fl = flags_combo(m);
			bool want = cpu_jcc(cc, fl);
			cr_expect_eq(sp_emulate_cond(cc, fl), want, "cond %x flags %#lx", cc,
				     (unsigned long)fl);

			/* both encodings through sp_emulate */
			regs.rip = SITE;
			regs.eflags = fl;
			struct sp_insn s = DEC((uint8_t)(0x70 | cc), 0x10);
			emulate_ok(&s);
			cr_expect_eq(regs.rip, want ? SITE + 0x12 : SITE + 2, "jcc8 %x", cc);
			regs.rip = SITE;
			struct sp_insn l = DEC(0x0f, (uint8_t)(0x80 | cc), 0x00, 0xf0, 0xff, 0xff);
			emulate_ok(&l);
			cr_expect_eq(regs.rip, want ? SITE + 6 - 0x1000 : SITE + 6, "jcc32 %x", cc);
			taken += want;
			total++;
		}
	}
	/* each condition and its negation split the table in half */
	cr_expect_eq(taken * 2, total);
}

/* Independent truth table, from the SDM's definitions. */
Test(cpu, jcc_truth_table)
{
	enum { C = 1, P = 4, Z = 0x40, S = 0x80, O = 0x800 };
	cr_expect(sp_emulate_cond(0x0, O) && !sp_emulate_cond(0x0, 0));
	cr_expect(sp_emulate_cond(0x2, C) && sp_emulate_cond(0x3, Z));
	cr_expect(sp_emulate_cond(0x4, Z) && !sp_emulate_cond(0x5, Z));
	cr_expect(sp_emulate_cond(0x6, C) && sp_emulate_cond(0x6, Z) && !sp_emulate_cond(0x6, S));
	cr_expect(sp_emulate_cond(0x7, 0) && !sp_emulate_cond(0x7, Z));
	cr_expect(sp_emulate_cond(0x8, S) && sp_emulate_cond(0x9, O));
	cr_expect(sp_emulate_cond(0xa, P) && sp_emulate_cond(0xb, 0));
	cr_expect(sp_emulate_cond(0xc, S) && sp_emulate_cond(0xc, O) && !sp_emulate_cond(0xc, S | O));
	cr_expect(sp_emulate_cond(0xd, S | O) && !sp_emulate_cond(0xd, O));
	cr_expect(sp_emulate_cond(0xe, Z | S | O) && sp_emulate_cond(0xe, S) && !sp_emulate_cond(0xe, S | O));
	cr_expect(sp_emulate_cond(0xf, S | O) && !sp_emulate_cond(0xf, Z) && !sp_emulate_cond(0xf, O));
}

struct rcx_run { uint64_t rcx, taken; };

/* mov %rdi,%rcx; push %rsi; popf; INSN +6; xor %edx,%edx; mov %rcx,%rax;
 * ret; mov $1,%edx; mov %rcx,%rax; ret */
static struct rcx_run cpu_rcx(const uint8_t *insn, size_t n, uint64_t rcx, uint64_t eflags)
{
	uint8_t code[32];
	size_t k = 0;
	static const uint8_t head[] = { 0x48, 0x89, 0xf9, 0x56, 0x9d };
	static const uint8_t tail[] = { 0x31, 0xd2, 0x48, 0x89, 0xc8, 0xc3,
					0xba, 0x01, 0x00, 0x00, 0x00, 0x48, 0x89, 0xc8, 0xc3 };
	memcpy(code, head, sizeof(head));
	k = sizeof(head);
	memcpy(code + k, insn, n);
	k += n;
	code[k - 1] = 6;                               /* rel8 over the not-taken tail */
	memcpy(code + k, tail, sizeof(tail));
	k += sizeof(tail);
	memcpy(xpage, code, k);
	__builtin___clear_cache((char *)xpage, (char *)xpage + k);
	return ((struct rcx_run (*)(uint64_t, uint64_t))(uintptr_t)xpage)(rcx, eflags);
}

static void check_rcx_insn(const uint8_t *insn, size_t n)
{
	static const uint64_t counts[] = { 0, 1, 2, 0x100000000ull, 0x100000001ull,
					   0xffffffffull, 0xffffffff00000000ull, ~0ull };
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		for (int zf = 0; zf <= 1; zf++) {
			uint64_t fl = 0x202 | (zf ? 0x40 : 0);
			struct rcx_run want = cpu_rcx(insn, n, counts[i], fl);
			struct sp_insn in;
			uint8_t b[4];
			memcpy(b, insn, n);
			b[n - 1] = 6;
			cr_assert_eq(sp_insn_decode(b, n, SITE, &in), 0);
			regs.rip = SITE;
			regs.rcx = counts[i];
			regs.eflags = fl;
			emulate_ok(&in);
			cr_expect_eq(regs.rcx, want.rcx, "%02x%02x rcx %#lx zf %d: rcx %#lx, cpu %#lx",
				     insn[0], insn[1], (unsigned long)counts[i], zf,
				     (unsigned long)regs.rcx, (unsigned long)want.rcx);
			cr_expect_eq(regs.rip, want.taken ? SITE + n + 6 : SITE + n,
				     "%02x%02x rcx %#lx zf %d: taken %d", insn[0], insn[1],
				     (unsigned long)counts[i], zf, (int)want.taken);
		}
	}
}

Test(cpu, jrcxz_and_loop)
{
	check_rcx_insn((const uint8_t[]){ 0xe3, 0 }, 2);        /* jrcxz */
	check_rcx_insn((const uint8_t[]){ 0x67, 0xe3, 0 }, 3);  /* jecxz */
	check_rcx_insn((const uint8_t[]){ 0xe2, 0 }, 2);        /* loop */
	check_rcx_insn((const uint8_t[]){ 0xe1, 0 }, 2);        /* loope */
	check_rcx_insn((const uint8_t[]){ 0xe0, 0 }, 2);        /* loopne */
	check_rcx_insn((const uint8_t[]){ 0x67, 0xe2, 0 }, 3);  /* loop with ecx */
	check_rcx_insn((const uint8_t[]){ 0x67, 0xe1, 0 }, 3);
	check_rcx_insn((const uint8_t[]){ 0x67, 0xe0, 0 }, 3);
}

/* ---------------------------------------------------------------------- */
/* Indirect branches                                                      */
/* ---------------------------------------------------------------------- */

Test(emulate, indirect_register)
{
	uint64_t sp0 = regs.rsp;
	regs.rax = 0x7000;
	struct sp_insn in = DEC(0xff, 0xe0);           /* jmp *%rax */
	emulate_ok(&in);
	cr_expect_eq(regs.rip, 0x7000);
	cr_expect_eq(regs.rsp, sp0);

	regs.rip = SITE;
	regs.r11 = 0x8000;
	in = DEC(0x41, 0xff, 0xd3);                    /* call *%r11 */
	emulate_ok(&in);
	cr_expect_eq(regs.rip, 0x8000);
	cr_expect_eq(regs.rsp, sp0 - 8);
	cr_expect_eq(stack[31], SITE + 3);

	regs.rip = SITE;
	in = DEC(0xff, 0xd4);                          /* call *%rsp: the old rsp */
	emulate_ok(&in);
	cr_expect_eq(regs.rip, sp0 - 8);
}

Test(emulate, indirect_memory)
{
	static uint64_t table[4] = { 0x1111, 0x2222, 0x3333, 0x4444 };
	uint64_t sp0 = regs.rsp;

	/* jmp *0x10(%rip), with rip + len + disp == &table[2] */
	regs.rip = (uintptr_t)&table[2] - 6 - 0x10;
	struct sp_insn in = DEC(0xff, 0x25, 0x10, 0x00, 0x00, 0x00);
	emulate_ok(&in);
	cr_expect_eq(regs.rip, 0x3333);

	/* call *-0x10(%rip) */
	regs.rip = (uintptr_t)&table[1] - 6 + 0x10;
	uint64_t site = regs.rip;
	in = DEC(0xff, 0x15, 0xf0, 0xff, 0xff, 0xff);
	emulate_ok(&in);
	cr_expect_eq(regs.rip, 0x2222);
	cr_expect_eq(stack[31], site + 6);
	cr_expect_eq(regs.rsp, sp0 - 8);

	/* call *0x8(%rsp): the slot is read before the push */
	regs.rsp = sp0;
	regs.rip = SITE;
	stack[33] = 0x9999;
	in = DEC(0xff, 0x54, 0x24, 0x08);
	emulate_ok(&in);
	cr_expect_eq(regs.rip, 0x9999);
	cr_expect_eq(stack[31], SITE + 4);

	/* jmp *0x10(%r13,%rax,8) */
	regs.rip = SITE;
	regs.r13 = (uintptr_t)table - 0x10;
	regs.rax = 3;
	in = DEC(0x41, 0xff, 0x64, 0xc5, 0x10);
	emulate_ok(&in);
	cr_expect_eq(regs.rip, 0x4444);

	/* jmp *(%r12,%r9,4) with a negative index */
	regs.rip = SITE;
	regs.r12 = (uintptr_t)&table[2] + 8;
	regs.r9 = (uint64_t)-4;
	in = DEC(0x43, 0xff, 0x24, 0x8c);
	emulate_ok(&in);
	cr_expect_eq(regs.rip, 0x2222);

	/* jmp *%fs:0x28 and jmp *%gs:(%rdi): segment bases are added */
	regs.rip = SITE;
	in = DEC(0x64, 0xff, 0x24, 0x25, 0x28, 0x00, 0x00, 0x00);
	cr_assert_eq(sp_emulate(&in, &regs, (uintptr_t)table - 0x28, 0), 0);
	cr_expect_eq(regs.rip, 0x1111);
	regs.rip = SITE;
	regs.rdi = 16;
	in = DEC(0x65, 0xff, 0x27);
	cr_assert_eq(sp_emulate(&in, &regs, 0xdead0000, (uintptr_t)table), 0);
	cr_expect_eq(regs.rip, 0x3333);
}

Test(emulate, not_emulated)
{
	struct sp_insn in = DEC(0x48, 0x83, 0xec, 0x18);   /* sub $0x18,%rsp */
	struct selfprobe_regs before = regs;
	cr_expect_not(sp_emulate_can(&in));
	cr_expect_eq(sp_emulate(&in, &regs, 0, 0), -ENOTSUP);
	cr_expect(memcmp(&before, &regs, sizeof(regs)) == 0);

	in = DEC(0xcc);
	cr_expect_not(sp_emulate_can(&in));
	cr_expect_eq(sp_emulate(&in, &regs, 0, 0), -ENOTSUP);

	/* a corrupt operand is refused, not written through */
	in = DEC(0x55);
	in.reg = 15;                                   /* rip is no GPR */
	cr_expect_not(sp_emulate_can(&in));
	cr_expect_eq(sp_emulate(&in, &regs, 0, 0), -ENOTSUP);
	in.reg = 40;
	cr_expect_not(sp_emulate_can(&in));
}
