/* test_usdt — USDT notes and argument specs.
 *
 *   parse:  a table of every operand form, good and bad, field by field;
 *   eval:   register sets and local buffers with known contents;
 *   live:   probes compiled into this very file (gcc -O2, -O0 and hand-written
 *           notes), trapped with int3 written through /proc/self/mem, their
 *           arguments evaluated from the trap's registers and compared with
 *           what the C code passed: the parser against real compiler output;
 *   read:   the notes of sp_usdt_target, libsp_usdt_lib.so and python3.11;
 *   corrupt: the target's note section damaged in chosen and random ways.
 */
#include <criterion/criterion.h>

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <link.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sdt.h>
#include <sys/stat.h>
#include <ucontext.h>
#include <unistd.h>

#include "insn.h"
#include "usdt.h"

#ifndef TEST_BIN_DIR
#define TEST_BIN_DIR "/tmp/build-usdt/bin"
#endif
#define TARGET TEST_BIN_DIR "/../tests/sp_usdt_target"
#define TARGET_LIB TEST_BIN_DIR "/../tests/libsp_usdt_lib.so"
#define PYTHON "/usr/bin/python3.11"
#ifndef FUZZ_ITERS
#define FUZZ_ITERS 1500      /* note corruptions per run; more by -DFUZZ_ITERS=… */
#endif

/* ---- symbol lookup for the parser ---------------------------------------- */

static int table_lookup(const char *sym, void *ctx, uint64_t *addr)
{
	static const struct { const char *name; uint64_t addr; } syms[] = {
		{ "g_var", 0x1000 }, { "g_arr", 0x2000 }, { "sym.0", 0x3000 },
		{ "_Z3foov", 0x4000 }, { "a$b", 0x5000 },
	};

	(void)ctx;
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		if (strcmp(syms[i].name, sym) == 0) {
			*addr = syms[i].addr;
			return 0;
		}
	}
	return -ENOENT;
}

/* ---- parse: the table ---------------------------------------------------- */

#define N (-1)     /* no register */

struct pcase {
	const char *spec;
	enum sp_usdt_arg_kind kind;
	int size;
	int64_t value;
	int reg, shift, bytes;
	int index, scale;
	int64_t disp;
};

static const struct pcase good[] = {
	/* registers */
	{ "-4@%eax",  SP_USDT_REG, -4, 0, SP_RAX, 0, 4, N, 0, 0 },
	{ "8@%rdi",   SP_USDT_REG,  8, 0, SP_RDI, 0, 8, N, 0, 0 },
	{ "-1@%al",   SP_USDT_REG, -1, 0, SP_RAX, 0, 1, N, 0, 0 },
	{ "1@%ah",    SP_USDT_REG,  1, 0, SP_RAX, 8, 1, N, 0, 0 },
	{ "-1@%bh",   SP_USDT_REG, -1, 0, SP_RBX, 8, 1, N, 0, 0 },
	{ "1@%ch",    SP_USDT_REG,  1, 0, SP_RCX, 8, 1, N, 0, 0 },
	{ "1@%dh",    SP_USDT_REG,  1, 0, SP_RDX, 8, 1, N, 0, 0 },
	{ "2@%ax",    SP_USDT_REG,  2, 0, SP_RAX, 0, 2, N, 0, 0 },
	{ "-2@%si",   SP_USDT_REG, -2, 0, SP_RSI, 0, 2, N, 0, 0 },
	{ "-4@%r8d",  SP_USDT_REG, -4, 0, SP_R8,  0, 4, N, 0, 0 },
	{ "2@%r8w",   SP_USDT_REG,  2, 0, SP_R8,  0, 2, N, 0, 0 },
	{ "1@%r8b",   SP_USDT_REG,  1, 0, SP_R8,  0, 1, N, 0, 0 },
	{ "-8@%r15",  SP_USDT_REG, -8, 0, SP_R15, 0, 8, N, 0, 0 },
	{ "-4@%r12d", SP_USDT_REG, -4, 0, SP_R12, 0, 4, N, 0, 0 },
	{ "1@%r13l",  SP_USDT_REG,  1, 0, SP_R13, 0, 1, N, 0, 0 },
	{ "1@%sil",   SP_USDT_REG,  1, 0, SP_RSI, 0, 1, N, 0, 0 },
	{ "-1@%dil",  SP_USDT_REG, -1, 0, SP_RDI, 0, 1, N, 0, 0 },
	{ "1@%spl",   SP_USDT_REG,  1, 0, SP_RSP, 0, 1, N, 0, 0 },
	{ "1@%bpl",   SP_USDT_REG,  1, 0, SP_RBP, 0, 1, N, 0, 0 },
	{ "8@%rsp",   SP_USDT_REG,  8, 0, SP_RSP, 0, 8, N, 0, 0 },
	{ "-4@%esp",  SP_USDT_REG, -4, 0, SP_RSP, 0, 4, N, 0, 0 },
	{ "8@%rbp",   SP_USDT_REG,  8, 0, SP_RBP, 0, 8, N, 0, 0 },
	/* constants */
	{ "4@$5",     SP_USDT_CONST,  4, 5, N, 0, 0, N, 0, 0 },
	{ "-4@$-3",   SP_USDT_CONST, -4, -3, N, 0, 0, N, 0, 0 },
	{ "8@$0x10",  SP_USDT_CONST,  8, 16, N, 0, 0, N, 0, 0 },
	{ "2@$-1",    SP_USDT_CONST,  2, -1, N, 0, 0, N, 0, 0 },
	{ "-8@$-9223372036854775808", SP_USDT_CONST, -8, INT64_MIN, N, 0, 0, N, 0, 0 },
	{ "8@$18446744073709551615",  SP_USDT_CONST,  8, -1, N, 0, 0, N, 0, 0 },
	{ "4@$g_var", SP_USDT_CONST,  4, 0x1000, N, 0, 0, N, 0, 0 },
	/* memory */
	{ "8@-8(%rbp)",          SP_USDT_MEM,  8, 0, SP_RBP, 0, 0, N, 1, -8 },
	{ "4@8(%rsp)",           SP_USDT_MEM,  4, 0, SP_RSP, 0, 0, N, 1, 8 },
	{ "8@(%rax)",            SP_USDT_MEM,  8, 0, SP_RAX, 0, 0, N, 1, 0 },
	{ "8@(%rax,%rbx,8)",     SP_USDT_MEM,  8, 0, SP_RAX, 0, 0, SP_RBX, 8, 0 },
	{ "8@-16(%rax,%rcx,4)",  SP_USDT_MEM,  8, 0, SP_RAX, 0, 0, SP_RCX, 4, -16 },
	{ "8@(,%rax,8)",         SP_USDT_MEM,  8, 0, N, 0, 0, SP_RAX, 8, 0 },
	{ "8@(%rax,%rbx)",       SP_USDT_MEM,  8, 0, SP_RAX, 0, 0, SP_RBX, 1, 0 },
	{ "-2@(%r12,%r13,2)",    SP_USDT_MEM, -2, 0, SP_R12, 0, 0, SP_R13, 2, 0 },
	{ "8@0x10(%r13)",        SP_USDT_MEM,  8, 0, SP_R13, 0, 0, N, 1, 16 },
	{ "8@-0x10(%r13)",       SP_USDT_MEM,  8, 0, SP_R13, 0, 0, N, 1, -16 },
	{ "-1@2(%rsp,%rbp,1)",   SP_USDT_MEM, -1, 0, SP_RSP, 0, 0, SP_RBP, 1, 2 },
	{ "8@16(%rip)",          SP_USDT_MEM,  8, 0, SP_RIP_BASE, 0, 0, N, 1, 16 },
	{ "-4@-4(%rip)",         SP_USDT_MEM, -4, 0, SP_RIP_BASE, 0, 0, N, 1, -4 },
	{ "8@g_arr(,%rax,8)",    SP_USDT_MEM,  8, 0, N, 0, 0, SP_RAX, 8, 0x2000 },
	{ "4@g_var+4(%rbx)",     SP_USDT_MEM,  4, 0, SP_RBX, 0, 0, N, 1, 0x1004 },
	/* symbols (rip-relative: the symbol itself) and absolute addresses */
	{ "8@g_var(%rip)",       SP_USDT_ABS,  8, 0x1000, N, 0, 0, N, 0, 0 },
	{ "8@g_var+16(%rip)",    SP_USDT_ABS,  8, 0x1010, N, 0, 0, N, 0, 0 },
	{ "8@g_var-8(%rip)",     SP_USDT_ABS,  8, 0xff8, N, 0, 0, N, 0, 0 },
	{ "-8@16+g_arr(%rip)",   SP_USDT_ABS, -8, 0x2010, N, 0, 0, N, 0, 0 },
	{ "-8@-8+g_arr(%rip)",   SP_USDT_ABS, -8, 0x1ff8, N, 0, 0, N, 0, 0 },
	{ "8@sym.0(%rip)",       SP_USDT_ABS,  8, 0x3000, N, 0, 0, N, 0, 0 },
	{ "1@_Z3foov(%rip)",     SP_USDT_ABS,  1, 0x4000, N, 0, 0, N, 0, 0 },
	{ "2@a$b(%rip)",         SP_USDT_ABS,  2, 0x5000, N, 0, 0, N, 0, 0 },
	{ "-8@0x7fff0000",       SP_USDT_ABS, -8, 0x7fff0000, N, 0, 0, N, 0, 0 },
	{ "4@g_var",             SP_USDT_ABS,  4, 0x1000, N, 0, 0, N, 0, 0 },
};

Test(usdt_parse, every_good_form)
{
	char err[256];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const struct pcase *c = &good[i];
		struct sp_usdt_arg a[SP_USDT_MAX_ARGS];
		int rc;

		err[0] = '\0';
		rc = sp_usdt_parse_args(c->spec, a, SP_USDT_MAX_ARGS, table_lookup, NULL,
					err, sizeof(err));
		cr_assert_eq(rc, 1, "'%s': rc %d (%s)", c->spec, rc, err);
		cr_expect_eq(a[0].kind, c->kind, "'%s': kind %d", c->spec, a[0].kind);
		cr_expect_eq(a[0].size, c->size, "'%s': size %d", c->spec, a[0].size);
		cr_expect_eq(a[0].value, c->value, "'%s': value %ld", c->spec, (long)a[0].value);
		cr_expect_eq(a[0].reg, c->reg, "'%s': reg %d", c->spec, a[0].reg);
		cr_expect_eq(a[0].reg_shift, c->shift, "'%s': shift %d", c->spec, a[0].reg_shift);
		cr_expect_eq(a[0].reg_bytes, c->bytes, "'%s': bytes %d", c->spec, a[0].reg_bytes);
		cr_expect_eq(a[0].index, c->index, "'%s': index %d", c->spec, a[0].index);
		cr_expect_eq(a[0].scale, c->scale, "'%s': scale %d", c->spec, a[0].scale);
		cr_expect_eq(a[0].disp, c->disp, "'%s': disp %ld", c->spec, (long)a[0].disp);
	}
}

static const char *const bad[] = {
	"4@%xyz", "3@%eax", "16@%rax", "0@%eax", "-0@%eax", "4@%eax,", "4%eax", "@%eax",
	"%eax", "4@", "4@$", "4@$abc", "4@$--3", "8@$0x", "4@@%eax", "4@%eaxx", "4@%%eax",
	"8@(%rax", "8@(%rax,%rbx,3)", "8@(%rax,%rsp,2)", "8@(%rip,%rax,1)", "8@%rip",
	"8@(%eax)", "8@(,%eax,8)", "8@()", "8@(,)", "8@-8(%rbp)x", "8@-8(%rbp))",
	"8@99999999999999999999(%rax)", "4@$18446744073709551616", "4@%r16d", "4@%r7",
	"4@%r08", "4@%r8q", "8@nosuch(%rip)", "8@g_var+(%rip)", "8@(,%rax,8", "8@1(,,8)",
	"8@(%rax,%rbx,0)", "8@(%rax,%rbx,16)", "x@%eax", "4@eax", "4 @%eax",
	"8@g_var(%rax", "8@-(%rbp)", "8@%fs:0x28",
	/* floats: sys/sdt.h's f suffix, vector registers */
	"2f@%ax", "1f@%al", "8ff@%rax", "f@%rax", "8@%xmm0", "8f@%xmm16", "8f@%xmm", "8f@%xmm01",
	"8f@%xmmx", "4f@%xmm1x", "16f@%xmm0",
};

Test(usdt_parse, every_bad_form)
{
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sp_usdt_arg a[SP_USDT_MAX_ARGS];
		int rc;

		err[0] = '\0';
		rc = sp_usdt_parse_args(bad[i], a, SP_USDT_MAX_ARGS, table_lookup, NULL,
					err, sizeof(err));
		cr_expect_eq(rc, -EINVAL, "'%s' gave %d (kind %d)", bad[i], rc, a[0].kind);
		cr_expect(strstr(err, "usdt: argument") != NULL, "'%s': message '%s'", bad[i], err);
	}
}

Test(usdt_parse, message_quotes_the_argument)
{
	struct sp_usdt_arg a[SP_USDT_MAX_ARGS];
	char err[256];

	cr_assert_eq(sp_usdt_parse_args("8@%rax -4@%exx 4@$1", a, 12, NULL, NULL, err,
					sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "argument 2 \"-4@%exx\"") != NULL, "%s", err);
	cr_expect(strstr(err, "unknown register") != NULL, "%s", err);
}

Test(usdt_parse, symbol_needs_lookup)
{
	struct sp_usdt_arg a[SP_USDT_MAX_ARGS];
	char err[256];

	cr_expect_eq(sp_usdt_parse_args("8@g_var(%rip)", a, 12, NULL, NULL, err, sizeof(err)),
		     -EINVAL);
	cr_expect(strstr(err, "g_var") != NULL, "%s", err);
	cr_expect_eq(sp_usdt_parse_args("8@nosuch(%rip)", a, 12, table_lookup, NULL, err,
					sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "symbol not found") != NULL, "%s", err);
}

Test(usdt_parse, several_and_whitespace)
{
	struct sp_usdt_arg a[SP_USDT_MAX_ARGS];
	char err[256];

	cr_assert_eq(sp_usdt_parse_args("-4@%edi 8@-8(%rbp) 4@$5", a, 12, NULL, NULL, err,
					sizeof(err)), 3, "%s", err);
	cr_expect_eq(a[0].kind, SP_USDT_REG);
	cr_expect_eq(a[0].reg, SP_RDI);
	cr_expect_eq(a[1].kind, SP_USDT_MEM);
	cr_expect_eq(a[1].disp, -8);
	cr_expect_eq(a[2].kind, SP_USDT_CONST);
	cr_expect_eq(a[2].value, 5);
	cr_expect_eq(sp_usdt_parse_args("  8@%rax \t  -4@%edx  ", a, 12, NULL, NULL, err,
					sizeof(err)), 2);
	cr_expect_eq(a[1].reg, SP_RDX);
	cr_expect_eq(sp_usdt_parse_args("", a, 12, NULL, NULL, err, sizeof(err)), 0);
	cr_expect_eq(sp_usdt_parse_args("   ", a, 12, NULL, NULL, err, sizeof(err)), 0);
	cr_expect_eq(sp_usdt_parse_args(NULL, a, 12, NULL, NULL, err, sizeof(err)), 0);
}

Test(usdt_parse, at_most_twelve)
{
	struct sp_usdt_arg a[SP_USDT_MAX_ARGS + 1];
	char spec[512] = "", err[256];

	for (int i = 0; i < 12; i++)
		snprintf(spec + strlen(spec), sizeof(spec) - strlen(spec), "-4@$%d ", -i);
	cr_assert_eq(sp_usdt_parse_args(spec, a, 12, NULL, NULL, err, sizeof(err)), 12, "%s", err);
	cr_expect_eq(a[11].value, -11);
	strcat(spec, "8@%rax");
	cr_expect_eq(sp_usdt_parse_args(spec, a, 13, NULL, NULL, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "more than 12") != NULL, "%s", err);
	/* MAX bounds the caller's array. */
	cr_expect_eq(sp_usdt_parse_args("1@$1 1@$2 1@$3", a, 2, NULL, NULL, err, sizeof(err)),
		     -EINVAL);
	cr_expect_eq(sp_usdt_parse_args("1@$1 1@$2", a, 2, NULL, NULL, err, sizeof(err)), 2);
}

/* ---- eval ---------------------------------------------------------------- */

static int64_t ev(const char *spec, const struct selfprobe_regs *r, uint64_t rip_next,
		  sp_usdt_lookup_fn lookup, void *ctx)
{
	struct sp_usdt_arg a[SP_USDT_MAX_ARGS];
	char err[256];
	int rc = sp_usdt_parse_args(spec, a, SP_USDT_MAX_ARGS, lookup, ctx, err, sizeof(err));

	cr_assert_eq(rc, 1, "'%s': %d %s", spec, rc, err);
	return sp_usdt_eval(&a[0], r, rip_next, NULL);
}

#define EV(spec, want) \
	cr_expect_eq(ev(spec, &r, rip_next, lookup_local, NULL), (int64_t)(want), \
		     "%s = %ld, want %ld", spec, (long)ev(spec, &r, rip_next, lookup_local, NULL), \
		     (long)(int64_t)(want))

static uint8_t ebuf[64] __attribute__((aligned(16)));

static int lookup_local(const char *sym, void *ctx, uint64_t *addr)
{
	(void)ctx;
	if (strcmp(sym, "ebuf") != 0)
		return -ENOENT;
	*addr = (uintptr_t)ebuf;
	return 0;
}

static void fill_buf(void)
{
	int64_t neg = -2;
	uint64_t big = 0x8899aabbccddeeffull;

	memset(ebuf, 0, sizeof(ebuf));
	memcpy(ebuf, &big, 8);          /* 0: ff ee dd cc bb aa 99 88 */
	memcpy(ebuf + 8, &neg, 8);      /* 8: fe ff ff ff ff ff ff ff */
	ebuf[16] = 0x7f;                /* 16: 7f 00 … */
	ebuf[33] = 0x80;                /* 33: unaligned 80 */
}

Test(usdt_eval, registers)
{
	struct selfprobe_regs r;
	uint64_t rip_next = 0;

	memset(&r, 0, sizeof(r));
	r.rax = 0x11223344556680feull;  /* ah 0x80, al 0xfe */
	r.rbx = 0xffffffff80000000ull;
	r.rcx = 0x000000007fffffffull;
	r.rdx = 0x1234;
	r.rsi = 0xfffffffffffffffeull;
	r.rdi = 5;
	r.r8 = 0x8000;
	r.r15 = 0xdeadbeefcafef00dull;
	r.rsp = 0x7ffc0000ff80ull;
	r.rbp = 0x7f;
	r.rip = 0x401000;
	r.eflags = 0x246;

	EV("8@%rax", 0x11223344556680feull);
	EV("4@%eax", 0x556680fe);
	EV("-4@%eax", 0x556680fe);
	EV("2@%ax", 0x80fe);
	EV("-2@%ax", (int16_t)0x80fe);
	EV("1@%al", 0xfe);
	EV("-1@%al", -2);
	EV("1@%ah", 0x80);
	EV("-1@%ah", -128);
	EV("-4@%ebx", INT32_MIN);
	EV("4@%ebx", 0x80000000u);
	EV("-8@%rbx", (int64_t)0xffffffff80000000ull);
	EV("-4@%ecx", INT32_MAX);
	EV("1@%dh", 0x12);
	EV("1@%dl", 0x34);
	EV("-8@%rsi", -2);
	EV("-1@%sil", -2);
	EV("2@%si", 0xfffe);
	EV("8@%rdi", 5);
	EV("-1@%dil", 5);
	EV("2@%r8w", 0x8000);
	EV("-2@%r8w", INT16_MIN);
	EV("1@%r8b", 0);
	EV("8@%r15", 0xdeadbeefcafef00dull);
	EV("-4@%r15d", (int32_t)0xcafef00d);
	EV("8@%rsp", 0x7ffc0000ff80ull);
	EV("1@%spl", 0x80);
	EV("-1@%spl", -128);
	EV("-1@%bpl", 0x7f);
	/* A wider size than the register: the register's width, zero-extended. */
	EV("8@%eax", 0x556680fe);
	EV("-8@%al", 0xfe);
}

Test(usdt_eval, constants)
{
	struct selfprobe_regs r;
	uint64_t rip_next = 0;

	memset(&r, 0, sizeof(r));
	EV("4@$5", 5);
	EV("-4@$-3", -3);
	EV("1@$-1", 255);
	EV("-1@$255", -1);
	EV("2@$-1", 65535);
	EV("-2@$65535", -1);
	EV("4@$-1", 4294967295u);
	EV("-4@$-2147483648", INT32_MIN);
	EV("8@$-1", -1);
	EV("-8@$9223372036854775807", INT64_MAX);
	EV("8@$0x10", 16);
	EV("4@$ebuf", (uint32_t)(uintptr_t)ebuf);
}

Test(usdt_eval, memory)
{
	struct selfprobe_regs r;
	uint64_t rip_next = 0;

	fill_buf();
	memset(&r, 0, sizeof(r));
	r.rbp = (uintptr_t)ebuf + 16;
	r.rsp = (uintptr_t)ebuf;
	r.rax = (uintptr_t)ebuf;
	r.rbx = 1;
	r.rcx = (uintptr_t)ebuf / 8;    /* (,%rcx,8): ebuf is 16-aligned */
	r.r12 = 2;

	EV("8@(%rax)", 0x8899aabbccddeeffull);
	EV("-8@(%rax)", (int64_t)0x8899aabbccddeeffull);
	EV("4@(%rax)", 0xccddeeff);
	EV("-4@(%rax)", (int32_t)0xccddeeff);
	EV("2@(%rax)", 0xeeff);
	EV("-2@(%rax)", (int16_t)0xeeff);
	EV("1@(%rax)", 0xff);
	EV("-1@(%rax)", -1);
	EV("-8@-8(%rbp)", -2);
	EV("8@-8(%rbp)", -2);
	EV("4@-8(%rbp)", 0xfffffffe);
	EV("-4@-8(%rbp)", -2);
	EV("1@(%rbp)", 0x7f);
	EV("-1@(%rbp)", 0x7f);
	EV("4@8(%rsp)", 0xfffffffe);
	EV("-8@(%rax,%rbx,8)", -2);
	EV("-1@(%rax,%r12,8)", 0x7f);       /* ebuf + 2*8 */
	EV("-1@-16(%rax,%r12,8)", -1);      /* ebuf + 2*8 - 16 */
	EV("-2@1(%rax,%rbx,1)", (int16_t)0xccdd);   /* unaligned: bytes 2, 3 */
	EV("1@33(%rax)", 0x80);
	EV("-1@33(%rax)", -128);
	EV("8@(,%rcx,8)", 0x8899aabbccddeeffull);
	EV("-8@8(,%rcx,8)", -2);
	EV("1@(%rsp,%rbx,4)", 0xbb);
	/* Symbols: %rip-relative to themselves, or a displacement. */
	EV("-8@ebuf(%rip)", (int64_t)0x8899aabbccddeeffull);
	EV("-8@ebuf+8(%rip)", -2);
	EV("-8@8+ebuf(%rip)", -2);
	EV("1@ebuf+16(%rip)", 0x7f);
	EV("-8@ebuf(,%rbx,8)", -2);
	EV("4@ebuf", 0xccddeeff);
}

Test(usdt_eval, rip_relative)
{
	struct selfprobe_regs r;
	uint64_t rip_next = (uintptr_t)ebuf + 8;

	fill_buf();
	memset(&r, 0, sizeof(r));
	r.rip = 0x1234;                     /* the site: not the base of (%rip) */
	EV("-8@(%rip)", -2);
	EV("8@-8(%rip)", 0x8899aabbccddeeffull);
	EV("-1@8(%rip)", 0x7f);
	EV("-1@25(%rip)", -128);
}

/* ---- live: probes in this file, trapped --------------------------------- */

/* Globals the probes read (non-static: their names are the asm names). */
int8_t ut_i8 = -100;
uint16_t ut_u16 = 60000;
int32_t ut_i32 = -2000000000;
uint64_t ut_u64 = 0xfedcba9876543210ull;
int64_t ut_arr[8] = { 10, -20, 30, -40, 50, -60, 70, -80 };
int64_t hand_mem[4] __attribute__((aligned(8))) = { -3, 0x0102030405060708, -9, 0 };

struct urec {
	int8_t a;
	uint8_t b;
	int16_t c;
	uint16_t d;
	int32_t e;
	int64_t g;
};

static int lookup_self(const char *sym, void *ctx, uint64_t *addr)
{
	static const struct { const char *name; void *addr; } syms[] = {
		{ "ut_i8", &ut_i8 }, { "ut_u16", &ut_u16 }, { "ut_i32", &ut_i32 },
		{ "ut_u64", &ut_u64 }, { "ut_arr", ut_arr }, { "hand_mem", hand_mem },
	};

	(void)ctx;
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		if (strcmp(syms[i].name, sym) == 0) {
			*addr = (uintptr_t)syms[i].addr;
			return 0;
		}
	}
	return -ENOENT;
}

#define O2 __attribute__((noinline, noipa, optimize("O2")))
#define O0 __attribute__((noinline, noipa, optimize("O0")))

O2 void ut_o2_regs(int8_t a, uint8_t b, int16_t c, uint16_t d, int32_t e, uint32_t f)
{
	STAP_PROBE6(utest, o2_regs, a, b, c, d, e, f);
}

O2 void ut_o2_mem(const struct urec *r, int i, int64_t x, uint64_t y)
{
	STAP_PROBE10(utest, o2_mem, r->a, r->b, r->c, r->d, r->e, r->g, ut_arr[i], ut_arr[3], x, y);
}

O2 void ut_o2_glob(void)
{
	STAP_PROBE5(utest, o2_glob, ut_i8, ut_u16, ut_i32, ut_u64, ut_arr[5]);
}

O2 void ut_o2_stack(void)
{
	volatile int16_t a = -12345;
	volatile uint32_t b = 3000000000u;
	volatile int64_t c = -77;

	STAP_PROBE4(utest, o2_stack, a, b, c, (int8_t)-1);
}

O0 void ut_o0(int8_t a, uint16_t b, int32_t c, int64_t d, uint64_t e)
{
	STAP_PROBE7(utest, o0, a, b, c, d, e, ut_arr[1], (uint8_t)200);
}

/* Hand-written notes for the forms compilers rarely pick: %ah, (,%rcx,8),
 * %r8w/%r8b, index*scale, and a true %rip-relative operand (data placed
 * right after the site, where rip_next points). */
#define HAND_NOTE(name, args)                                                \
	"990: nop\n\t"                                                       \
	".pushsection .note.stapsdt,\"?\",\"note\"\n\t"                      \
	".balign 4\n\t"                                                      \
	".4byte 992f-991f, 994f-993f, 3\n"                                   \
	"991: .asciz \"stapsdt\"\n"                                          \
	"992: .balign 4\n"                                                   \
	"993: .8byte 990b, _.stapsdt.base, 0\n\t"                            \
	".asciz \"utest\"\n\t.asciz \"" name "\"\n\t.asciz \"" args "\"\n"   \
	"994: .balign 4\n\t"                                                 \
	".popsection\n\t" _SDT_ASM_BASE

__attribute__((noinline, noipa)) void ut_hand(void)
{
	__asm__ volatile(
		"mov $0x80fe, %%eax\n\t"
		"lea hand_mem(%%rip), %%rcx\n\t"
		"shr $3, %%rcx\n\t"
		"mov $-2, %%r8\n\t"
		"lea hand_mem(%%rip), %%rdx\n\t"
		"mov $1, %%esi\n\t"
		HAND_NOTE("hand", "1@%%ah -1@%%ah 1@%%al -1@%%al 2@%%ax -8@(,%%rcx,8) "
			  "-2@%%r8w 2@%%r8w 1@%%r8b -4@%%r8d 8@8(%%rdx,%%rsi,8) 8@2(%%rip)")
		"jmp 1f\n\t"
		".8byte 0x1122334455667788\n"
		"1:\n\t"
		"mov $2, %%esi\n\t"
		HAND_NOTE("hand2", "-8@hand_mem+8(%%rip) 8@8+hand_mem(%%rip) -4@hand_mem(%%rip) "
			  "4@$-1 -4@$0x7fffffff 8@hand_mem(,%%rsi,8)")
		::: "rax", "rcx", "rdx", "rsi", "r8", "memory");
}

struct live_site {
	uint64_t addr;
	char name[32];
	struct sp_usdt_arg args[SP_USDT_MAX_ARGS];
	int nargs;
	volatile int hits;
	int64_t vals[SP_USDT_MAX_ARGS];
};

static struct live_site live[32];
static int nlive;

static void regs_from(const ucontext_t *uc, struct selfprobe_regs *r)
{
	const greg_t *g = uc->uc_mcontext.gregs;

	r->r15 = g[REG_R15]; r->r14 = g[REG_R14]; r->r13 = g[REG_R13]; r->r12 = g[REG_R12];
	r->rbp = g[REG_RBP]; r->rbx = g[REG_RBX]; r->r11 = g[REG_R11]; r->r10 = g[REG_R10];
	r->r9 = g[REG_R9]; r->r8 = g[REG_R8]; r->rax = g[REG_RAX]; r->rcx = g[REG_RCX];
	r->rdx = g[REG_RDX]; r->rsi = g[REG_RSI]; r->rdi = g[REG_RDI];
	r->rip = g[REG_RIP] - 1; r->eflags = g[REG_EFL]; r->rsp = g[REG_RSP];
}

/* The site was a one-byte nop: after the int3 the pc is already where the
 * nop would have left it, so returning resumes the program exactly. */
static void on_trap(int sig, siginfo_t *si, void *ucv)
{
	const ucontext_t *uc = ucv;
	uint64_t pc = uc->uc_mcontext.gregs[REG_RIP] - 1;
	struct selfprobe_regs r;

	(void)sig;
	(void)si;
	regs_from(uc, &r);
	for (int i = 0; i < nlive; i++) {
		if (live[i].addr != pc)
			continue;
		for (int k = 0; k < live[i].nargs; k++)
			live[i].vals[k] = sp_usdt_eval(&live[i].args[k], &r, pc + 1, NULL);
		live[i].hits++;
		return;
	}
	abort();
}

static int first_bias(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	*(uint64_t *)data = info->dlpi_addr;
	return 1;   /* the first entry is the main program */
}

static void arm_self(void)
{
	struct sp_usdt_notes notes;
	struct sigaction sa;
	uint64_t bias = 0;
	char err[256];
	int fd;

	cr_assert_eq(sp_usdt_read("/proc/self/exe", &notes, err, sizeof(err)), 0, "%s", err);
	dl_iterate_phdr(first_bias, &bias);
	fd = open("/proc/self/mem", O_RDWR);
	cr_assert(fd >= 0);
	for (size_t i = 0; i < notes.n; i++) {
		struct live_site *s;
		uint8_t int3 = 0xcc;

		if (strcmp(notes.v[i].provider, "utest") != 0)
			continue;
		cr_assert(nlive < 32);
		s = &live[nlive++];
		s->addr = bias + notes.v[i].pc;
		snprintf(s->name, sizeof(s->name), "%s", notes.v[i].name);
		s->nargs = sp_usdt_parse_args(notes.v[i].args, s->args, SP_USDT_MAX_ARGS,
					      lookup_self, NULL, err, sizeof(err));
		cr_assert(s->nargs >= 0, "%s: %s", s->name, err);
		cr_assert_eq(*(const uint8_t *)(uintptr_t)s->addr, 0x90, "%s: no nop at the site",
			     s->name);
		cr_assert_eq(pwrite(fd, &int3, 1, (off_t)s->addr), 1);
	}
	close(fd);
	sp_usdt_free(&notes);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_trap;
	sa.sa_flags = SA_SIGINFO;
	cr_assert_eq(sigaction(SIGTRAP, &sa, NULL), 0);
}

static struct live_site *site(const char *name)
{
	for (int i = 0; i < nlive; i++)
		if (strcmp(live[i].name, name) == 0)
			return &live[i];
	cr_assert_fail("no note %s", name);
	return NULL;
}

static void check(const char *name, int n, const int64_t *want)
{
	struct live_site *s = site(name);

	cr_assert_eq(s->hits, 1, "%s: %d hits", name, s->hits);
	cr_assert_eq(s->nargs, n, "%s: %d args", name, s->nargs);
	for (int k = 0; k < n; k++)
		cr_expect_eq(s->vals[k], want[k], "%s arg %d: %ld, want %ld", name, k,
			     (long)s->vals[k], (long)want[k]);
}

#define CHECK(name, ...)                                                     \
	do {                                                                 \
		const int64_t w_[] = { __VA_ARGS__ };                        \
		check(name, (int)(sizeof(w_) / sizeof(w_[0])), w_);          \
	} while (0)

Test(usdt_live, compiler_and_hand_written_sites)
{
	struct urec rec = { -7, 201, -300, 65000, -70000, -5000000000LL };

	arm_self();
	ut_o2_regs(-128, 255, -32768, 65535, INT32_MIN, 4294967295u);
	CHECK("o2_regs", -128, 255, -32768, 65535, INT32_MIN, 4294967295LL);
	ut_o2_mem(&rec, 6, INT64_MIN, 0xf000000000000000ull);
	CHECK("o2_mem", -7, 201, -300, 65000, -70000, -5000000000LL, 70, -40, INT64_MIN,
	      (int64_t)0xf000000000000000ull);
	ut_o2_glob();
	CHECK("o2_glob", -100, 60000, -2000000000, (int64_t)0xfedcba9876543210ull, -60);
	ut_o2_stack();
	CHECK("o2_stack", -12345, 3000000000LL, -77, -1);
	ut_o0(-1, 65535, -123456, -9876543210LL, 0xffffffffffffff00ull);
	CHECK("o0", -1, 65535, -123456, -9876543210LL, (int64_t)0xffffffffffffff00ull, -20, 200);
	ut_hand();
	CHECK("hand", 0x80, -128, 0xfe, -2, 0x80fe, -3, -2, 65534, 254, -2, -9,
	      0x1122334455667788LL);
	CHECK("hand2", 0x0102030405060708LL, 0x0102030405060708LL, -3, 4294967295LL,
	      INT32_MAX, -9);
}

/* ---- reading notes ------------------------------------------------------- */

static struct sp_usdt_note *find_note(struct sp_usdt_notes *ns, const char *prov,
				      const char *name, int nth)
{
	for (size_t i = 0; i < ns->n; i++)
		if (strcmp(ns->v[i].provider, prov) == 0 && strcmp(ns->v[i].name, name) == 0 &&
		    nth-- == 0)
			return &ns->v[i];
	return NULL;
}

static int any_lookup(const char *sym, void *ctx, uint64_t *addr)
{
	(void)sym;
	(void)ctx;
	*addr = 0x1000;
	return 0;
}

/* The section holding ELF address ADDR, by name, and the byte there. */
static int byte_at(const char *path, uint64_t addr, char *secname, size_t len, uint8_t *byte)
{
	int fd = open(path, O_RDONLY), rc = -1;
	Elf_Scn *scn = NULL;
	size_t shstrndx;
	GElf_Shdr sh;
	Elf *elf;

	elf_version(EV_CURRENT);
	elf = elf_begin(fd, ELF_C_READ, NULL);
	elf_getshdrstrndx(elf, &shstrndx);
	while ((scn = elf_nextscn(elf, scn))) {
		gelf_getshdr(scn, &sh);
		if (sh.sh_type == SHT_NOTE || !(sh.sh_flags & SHF_ALLOC) ||
		    addr < sh.sh_addr || addr >= sh.sh_addr + sh.sh_size)
			continue;
		snprintf(secname, len, "%s", elf_strptr(elf, shstrndx, sh.sh_name));
		*byte = 0;
		if (sh.sh_type != SHT_NOBITS)
			rc = pread(fd, byte, 1, (off_t)(sh.sh_offset + addr - sh.sh_addr)) == 1 ? 0 : -1;
		else
			rc = 0;
		break;
	}
	elf_end(elf);
	close(fd);
	return rc;
}

Test(usdt_read, target)
{
	struct sp_usdt_notes ns;
	struct sp_usdt_arg a[SP_USDT_MAX_ARGS];
	char err[256], sec[64];
	uint64_t sems[32];
	uint8_t b;
	int rc;

	rc = sp_usdt_read(TARGET, &ns, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_eq(ns.n, 17, "%zu notes", ns.n);   /* args0..12, guarded, 3 x inlined */
	for (int i = 0; i <= 12; i++) {
		char name[16];
		struct sp_usdt_note *n;

		snprintf(name, sizeof(name), "args%d", i);
		n = find_note(&ns, "sptest", name, 0);
		cr_assert(n, "no sptest:%s", name);
		cr_expect_null(find_note(&ns, "sptest", name, 1), "two sptest:%s", name);
		rc = sp_usdt_parse_args(n->args, a, SP_USDT_MAX_ARGS, any_lookup, NULL, err,
					sizeof(err));
		cr_expect_eq(rc, i, "sptest:%s '%s': %d %s", name, n->args, rc, err);
		/* The site is sdt.h's nop in .text; the semaphore is in .probes. */
		cr_assert_eq(byte_at(TARGET, n->pc, sec, sizeof(sec), &b), 0);
		cr_expect_str_eq(sec, ".text", "%s: pc in %s", name, sec);
		cr_expect_eq(b, 0x90, "%s: byte %#x at pc", name, b);
		cr_assert_neq(n->semaphore, 0, "%s", name);
		cr_assert_eq(byte_at(TARGET, n->semaphore, sec, sizeof(sec), &b), 0);
		cr_expect_str_eq(sec, ".probes", "%s: semaphore in %s", name, sec);
		sems[i] = n->semaphore;
		for (int k = 0; k < i; k++)
			cr_expect_neq(sems[k], sems[i], "semaphores of args%d and args%d", k, i);
	}
	struct sp_usdt_note *g = find_note(&ns, "sptest", "guarded", 0);
	cr_assert(g);
	cr_expect_neq(g->semaphore, 0);
	cr_expect_str_eq(g->args, "-4@%edi");
	struct sp_usdt_note *in[3];
	for (int i = 0; i < 3; i++) {
		in[i] = find_note(&ns, "sptest", "inlined", i);
		cr_assert(in[i], "inlined copy %d", i);
		cr_expect_eq(sp_usdt_parse_args(in[i]->args, a, 12, NULL, NULL, err, sizeof(err)), 2);
		cr_expect_eq(in[i]->semaphore, in[0]->semaphore);
		cr_expect_eq(in[i]->base, in[0]->base);
	}
	cr_expect_neq(in[0]->pc, in[1]->pc);
	cr_expect_neq(in[1]->pc, in[2]->pc);
	cr_expect_neq(in[0]->pc, in[2]->pc);
	sp_usdt_free(&ns);
	cr_expect_eq(ns.n, 0);
	cr_expect_null(ns.v);
}

Test(usdt_read, shared_library_without_semaphore)
{
	struct sp_usdt_notes ns;
	char err[256];

	cr_assert_eq(sp_usdt_read(TARGET_LIB, &ns, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(ns.n, 1);
	cr_expect_str_eq(ns.v[0].provider, "sptest_lib");
	cr_expect_str_eq(ns.v[0].name, "fire");
	cr_expect_eq(ns.v[0].semaphore, 0);
	cr_expect_str_eq(ns.v[0].args, "-4@%edi -8@%rsi");
	cr_expect_neq(ns.v[0].pc, 0);
	sp_usdt_free(&ns);
}

Test(usdt_read, python)
{
	struct sp_usdt_notes ns;
	struct sp_usdt_arg a[SP_USDT_MAX_ARGS];
	struct sp_usdt_note *n;
	char err[256];

	if (access(PYTHON, R_OK) != 0)
		cr_skip_test(PYTHON " not installed");
	cr_assert_eq(sp_usdt_read(PYTHON, &ns, err, sizeof(err)), 0, "%s", err);
	cr_assert_gt(ns.n, 0);
	n = find_note(&ns, "python", "function__entry", 0);
	cr_assert(n, "no python:function__entry");
	cr_expect_neq(n->semaphore, 0);
	cr_expect_eq(sp_usdt_parse_args(n->args, a, 12, NULL, NULL, err, sizeof(err)), 3, "%s",
		     err);
	cr_assert(find_note(&ns, "python", "function__return", 0));
	for (size_t i = 0; i < ns.n; i++)
		cr_expect_geq(sp_usdt_parse_args(ns.v[i].args, a, 12, any_lookup, NULL, err,
						 sizeof(err)), 0, "%s:%s '%s': %s",
			      ns.v[i].provider, ns.v[i].name, ns.v[i].args, err);
	sp_usdt_free(&ns);
}

Test(usdt_read, missing_and_not_elf_and_no_notes)
{
	struct sp_usdt_notes ns;
	char err[256], path[] = "/tmp/usdt-notelf-XXXXXX";
	int fd;

	cr_expect_eq(sp_usdt_read("/nonexistent/usdt/x", &ns, err, sizeof(err)), -ENOENT);
	cr_expect(strstr(err, "/nonexistent/usdt/x") != NULL, "%s", err);
	cr_expect_eq(ns.n, 0);
	fd = mkstemp(path);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, "not an elf file\n", 16), 16);
	close(fd);
	cr_expect_eq(sp_usdt_read(path, &ns, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, path) != NULL, "%s", err);
	unlink(path);
	/* An ELF file without stapsdt notes. */
	cr_assert_eq(sp_usdt_read("/bin/true", &ns, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(ns.n, 0);
	sp_usdt_free(&ns);
}

/* ---- damaged copies of the target ---------------------------------------- */

struct image {
	uint8_t *buf;
	size_t len;
	size_t note_off, note_size;     /* .note.stapsdt in the file */
	size_t base_shdr;               /* file offset of .stapsdt.base's header */
};

static void load_image(struct image *im)
{
	int fd = open(TARGET, O_RDONLY);
	struct stat st;
	Elf_Scn *scn = NULL;
	size_t shstrndx, idx;
	GElf_Ehdr eh;
	GElf_Shdr sh;
	Elf *elf;

	cr_assert(fd >= 0, "%s", TARGET);
	fstat(fd, &st);
	im->len = (size_t)st.st_size;
	im->buf = malloc(im->len);
	cr_assert_eq(pread(fd, im->buf, im->len, 0), (ssize_t)im->len);
	elf_version(EV_CURRENT);
	elf = elf_begin(fd, ELF_C_READ, NULL);
	gelf_getehdr(elf, &eh);
	elf_getshdrstrndx(elf, &shstrndx);
	im->note_off = im->note_size = im->base_shdr = 0;
	while ((scn = elf_nextscn(elf, scn))) {
		const char *name;

		gelf_getshdr(scn, &sh);
		name = elf_strptr(elf, shstrndx, sh.sh_name);
		idx = elf_ndxscn(scn);
		if (strcmp(name, ".note.stapsdt") == 0) {
			im->note_off = sh.sh_offset;
			im->note_size = sh.sh_size;
		} else if (strcmp(name, ".stapsdt.base") == 0) {
			im->base_shdr = eh.e_shoff + idx * eh.e_shentsize;
		}
	}
	elf_end(elf);
	close(fd);
	cr_assert(im->note_off && im->note_size && im->base_shdr);
}

static char tmp_path[64];

static int read_image(const struct image *im, size_t len, struct sp_usdt_notes *ns,
		      char *err, size_t errlen)
{
	int fd, rc;

	snprintf(tmp_path, sizeof(tmp_path), "/tmp/usdt-corrupt-%d", (int)getpid());
	fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, im->buf, len), (ssize_t)len);
	close(fd);
	rc = sp_usdt_read(tmp_path, ns, err, errlen);
	unlink(tmp_path);
	return rc;
}

/* Note header words of the first note. */
static uint32_t *nhdr(struct image *im)
{
	return (uint32_t *)(im->buf + im->note_off);
}

static void expect_corrupt(struct image *im, size_t len, const char *what, const char *msg)
{
	struct sp_usdt_notes ns;
	char err[256] = "";
	int rc = read_image(im, len, &ns, err, sizeof(err));

	cr_expect_eq(rc, -EINVAL, "%s: rc %d", what, rc);
	cr_expect_eq(ns.n, 0, "%s", what);
	cr_expect(strstr(err, tmp_path) != NULL, "%s: '%s'", what, err);
	if (msg)
		cr_expect(strstr(err, msg) != NULL, "%s: '%s' lacks '%s'", what, err, msg);
}

Test(usdt_corrupt, chosen_damage)
{
	struct image im;
	uint32_t save[3];
	uint8_t *desc;
	uint32_t descsz;

	load_image(&im);
	memcpy(save, nhdr(&im), sizeof(save));
	descsz = save[1];
	desc = im.buf + im.note_off + 12 + ((save[0] + 3) & ~3u);

	nhdr(&im)[1] = 8;                          /* desc shorter than 3 addresses */
	expect_corrupt(&im, im.len, "short desc", "note 0");
	memcpy(nhdr(&im), save, sizeof(save));

	nhdr(&im)[1] = 26;                         /* desc ends inside the provider */
	expect_corrupt(&im, im.len, "cut provider", "provider string not terminated");
	memcpy(nhdr(&im), save, sizeof(save));

	desc[descsz - 1] = 'X';                    /* args string loses its NUL */
	expect_corrupt(&im, im.len, "missing NUL", "argument string not terminated");
	desc[descsz - 1] = '\0';

	desc[24] = '\0';                           /* empty provider */
	expect_corrupt(&im, im.len, "empty provider", "empty provider");
	free(im.buf);
	load_image(&im);

	nhdr(&im)[0] = 0xfffffff0;                 /* huge namesz */
	expect_corrupt(&im, im.len, "huge namesz", "does not fit");
	memcpy(nhdr(&im), save, sizeof(save));

	nhdr(&im)[1] = 0x7ffffff0;                 /* huge descsz */
	expect_corrupt(&im, im.len, "huge descsz", "does not fit");
	memcpy(nhdr(&im), save, sizeof(save));

	/* A later note damaged: its index is named. */
	{
		uint8_t *p = im.buf + im.note_off;
		uint32_t *h = (uint32_t *)(p + 12 + ((save[0] + 3) & ~3u) + ((descsz + 3) & ~3u));

		h[1] = 3;
		expect_corrupt(&im, im.len, "second note", "note 1");
	}
	free(im.buf);

	load_image(&im);                           /* file cut inside the notes */
	expect_corrupt(&im, im.note_off + im.note_size / 2, "truncated file", NULL);
	free(im.buf);
}

Test(usdt_corrupt, base_moved)
{
	struct image im;
	struct sp_usdt_notes orig, moved;
	char err[256];
	uint64_t addr;

	load_image(&im);
	cr_assert_eq(read_image(&im, im.len, &orig, err, sizeof(err)), 0, "%s", err);
	memcpy(&addr, im.buf + im.base_shdr + 16, 8);   /* Elf64_Shdr.sh_addr */
	cr_assert_eq(addr, orig.v[0].base);
	addr += 0x10000;                                  /* as if prelinked 64K up */
	memcpy(im.buf + im.base_shdr + 16, &addr, 8);
	cr_assert_eq(read_image(&im, im.len, &moved, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(moved.n, orig.n);
	for (size_t i = 0; i < orig.n; i++) {
		cr_expect_eq(moved.v[i].pc, orig.v[i].pc + 0x10000);
		cr_expect_eq(moved.v[i].semaphore, orig.v[i].semaphore + 0x10000);
		cr_expect_eq(moved.v[i].base, orig.v[i].base);
	}
	sp_usdt_free(&orig);
	sp_usdt_free(&moved);
	free(im.buf);
}

/* Random damage to the note section (sometimes a section header, sometimes
 * the file cut short):
 * every outcome is 0 with well-formed notes or -EINVAL, never a crash. */
Test(usdt_corrupt, fuzz, .timeout = 120)
{
	struct image im;
	struct sp_usdt_arg a[SP_USDT_MAX_ARGS];
	uint8_t *pristine;
	unsigned seed = 12345;
	int ok = 0, bad = 0;

	load_image(&im);
	pristine = malloc(im.len);
	memcpy(pristine, im.buf, im.len);
	for (int iter = 0; iter < FUZZ_ITERS; iter++) {
		struct sp_usdt_notes ns;
		char err[256];
		int flips = 1 + rand_r(&seed) % 4, rc;
		size_t len = im.len;

		memcpy(im.buf, pristine, im.len);
		for (int f = 0; f < flips; f++) {
			size_t at = im.note_off + (size_t)rand_r(&seed) % im.note_size;

			if (rand_r(&seed) % 8 == 0)   /* a section header word */
				at = im.base_shdr + (size_t)rand_r(&seed) % 64;
			im.buf[at] = (uint8_t)rand_r(&seed);
		}
		if (rand_r(&seed) % 16 == 0)          /* or a truncated file */
			len = (size_t)rand_r(&seed) % im.len;
		rc = read_image(&im, len, &ns, err, sizeof(err));
		cr_assert(rc == 0 || rc == -EINVAL, "iteration %d: rc %d", iter, rc);
		cr_assert(len == im.len || rc == -EINVAL, "truncated to %zu: rc %d", len, rc);
		if (rc < 0) {
			bad++;
			continue;
		}
		ok++;
		for (size_t i = 0; i < ns.n; i++) {
			cr_assert(ns.v[i].provider[0] && ns.v[i].name[0]);
			rc = sp_usdt_parse_args(ns.v[i].args, a, SP_USDT_MAX_ARGS, any_lookup,
						NULL, err, sizeof(err));
			cr_assert(rc == -EINVAL || (rc >= 0 && rc <= 12));
		}
		sp_usdt_free(&ns);
	}
	cr_expect_gt(bad, 0);
	cr_expect_gt(ok, 0);
	free(pristine);
	free(im.buf);
}

/* Random operand strings: in range or -EINVAL; whatever parses has fields a
 * well-formed argument can have. */
Test(usdt_parse, fuzz)
{
	static const char alpha[] = "%$(),@-+0123456789xabcdehilpqrsw _.";
	static const char *const seeds[] = {
		"-4@%eax", "8@-8(%rbp)", "8@(%rax,%rbx,8)", "8@(,%rax,8)", "8@g_var+16(%rip)",
		"-8@16+g_arr(%rip)", "4@$-3", "1@%ah", "2@%r8w",
	};
	unsigned seed = 777;
	char s[64], err[256];

	for (int iter = 0; iter < 200000; iter++) {
		struct sp_usdt_arg a[SP_USDT_MAX_ARGS];
		size_t len;
		int rc;

		if (iter % 2) {
			len = (size_t)rand_r(&seed) % 24;
			for (size_t i = 0; i < len; i++)
				s[i] = alpha[(size_t)rand_r(&seed) % (sizeof(alpha) - 1)];
			s[len] = '\0';
		} else {
			snprintf(s, sizeof(s), "%s", seeds[(size_t)rand_r(&seed) % 9]);
			len = strlen(s);
			for (int f = rand_r(&seed) % 3; f >= 0; f--)
				s[(size_t)rand_r(&seed) % len] = alpha[(size_t)rand_r(&seed) % (sizeof(alpha) - 1)];
		}
		rc = sp_usdt_parse_args(s, a, SP_USDT_MAX_ARGS, table_lookup, NULL, err, sizeof(err));
		cr_assert(rc == -EINVAL || (rc >= 0 && rc <= SP_USDT_MAX_ARGS), "'%s': %d", s, rc);
		for (int k = 0; k < rc; k++) {
			int sz = a[k].size < 0 ? -a[k].size : a[k].size;

			cr_assert(sz == 1 || sz == 2 || sz == 4 || sz == 8, "'%s'", s);
			if (a[k].kind == SP_USDT_REG)
				cr_assert(a[k].reg >= 0 && a[k].reg <= SP_RSP && a[k].reg != 15 &&
					  a[k].reg != 16, "'%s'", s);
			if (a[k].kind == SP_USDT_MEM)
				cr_assert(a[k].scale == 1 || a[k].scale == 2 || a[k].scale == 4 ||
					  a[k].scale == 8, "'%s'", s);
		}
	}
}

/* ---- float arguments (sys/sdt.h's "f", libbpf's vector registers) ---- */

Test(usdt_float, parse_and_eval)
{
	struct sp_usdt_arg a[SP_USDT_MAX_ARGS];
	char err[256];
	int n = sp_usdt_parse_args("8f@%rdx 4f@%eax -8f@%xmm3 4f@%xmm15 8f@8(%rsp)", a, SP_USDT_MAX_ARGS,
				   NULL, NULL, err, sizeof(err));
	cr_assert_eq(n, 5, "%d %s", n, err);
	cr_assert(a[0].is_float && a[0].size == 8 && a[0].kind == SP_USDT_REG);
	cr_assert(a[1].is_float && a[1].size == 4 && a[1].kind == SP_USDT_REG);
	cr_assert(a[2].is_float && a[2].size == 8 && a[2].kind == SP_USDT_XMM && a[2].reg == 3,
		  "a float's bits are not signed: -8f is 8f");
	cr_assert(a[3].is_float && a[3].size == 4 && a[3].kind == SP_USDT_XMM && a[3].reg == 15);
	cr_assert(a[4].is_float && a[4].kind == SP_USDT_MEM);

	double d = -2.75, m = 1e300;
	float f = 3.5f;
	struct selfprobe_regs r;
	memset(&r, 0, sizeof(r));
	memcpy(&r.rdx, &d, 8);
	uint32_t fb;
	memcpy(&fb, &f, 4);
	r.rax = 0xdeadbeef00000000ull | fb;      /* %eax: the low half only */
	double mem[2] = { 0, m };
	r.rsp = (uint64_t)(uintptr_t)mem;
	/* the vector state: FXSAVE's legacy layout, XMM0-15 at byte 160 */
	uint8_t fx[512] __attribute__((aligned(16)));
	memset(fx, 0xee, sizeof(fx));
	double x3 = 6.25;
	float x15 = -0.125f;
	memcpy(fx + 160 + 16 * 3, &x3, 8);
	memcpy(fx + 160 + 16 * 15, &x15, 4);

	cr_assert_eq(sp_usdt_float(&a[0], sp_usdt_eval(&a[0], &r, 0, fx)), d);
	cr_assert_eq(sp_usdt_float(&a[1], sp_usdt_eval(&a[1], &r, 0, fx)), (double)f);
	cr_assert_eq(sp_usdt_float(&a[2], sp_usdt_eval(&a[2], &r, 0, fx)), x3);
	cr_assert_eq(sp_usdt_float(&a[3], sp_usdt_eval(&a[3], &r, 0, fx)), (double)x15);
	cr_assert_eq(sp_usdt_float(&a[4], sp_usdt_eval(&a[4], &r, 0, fx)), m);
	cr_assert_eq(sp_usdt_eval(&a[2], &r, 0, NULL), 0, "no vector state: 0");
	cr_assert_eq((uint64_t)sp_usdt_eval(&a[1], &r, 0, fx), (uint64_t)fb, "bits zero-extended");
}
