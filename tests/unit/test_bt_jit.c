/* test_bt_jit — bpftrace blocks compiled to native code (bt_jitplan.h,
 * bt_jit.h): which blocks are compiled and which stay with the evaluator
 * (and why); the code run as a trampoline runs it, on made-up register
 * states, gives the evaluator's maps byte for byte; every register, the
 * flags and the red zone come back as they were. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bt.h"
#include "heap.h"
#include "bt_unit.h"
#include "bt_jit.h"
#include "bt_jitplan.h"
#include "ctx.h"
#include "fastcount.h"
#include "spec.h"
#include "tstate.h"
#include "x86emit.h"

/* ---- what is compiled ---- */

static const struct {
	const char *text;
	int block;          /* which block of the program */
	const char *why;    /* NULL: compiled; else a piece of the reason */
} plan[] = {
	{ "uprobe:libc:malloc { @c = count(); }", 0, NULL },
	{ "uprobe:libc:malloc /arg0 > 4096/ { @c = count(); }", 0, NULL },
	{ "uprobe:libc:malloc { @h = hist(arg0); @l = lhist(arg1, 0, 64, 8); }", 0, NULL },
	{ "uprobe:libc:malloc { @s = sum(arg0); @a = min(arg1); @b = max(arg2); @v = avg(arg3); @t = stats(arg4); }", 0, NULL },
	{ "uprobe:libc:malloc /pid == pid && !(arg0 < 2) || arg1 != 3/ { @m++; @n--; @o += arg0 * 2; @p -= arg1 << 3; }", 0, NULL },
	{ "uprobe:libc:malloc { if (arg0 > 1) { @a = count(); } else { @b = sum(arg0 > 3 ? ~arg1 : -arg2); } }", 0, NULL },
	{ "uprobe:libc:malloc { @c = count(); print(@c); }", 0, "a call" },
	{ "uprobe:libc:malloc { @c = count(); } uprobe:libc:free { print(@c); }", 0, NULL },
	{ "uprobe:libc:malloc { @c[tid] = count(); }", 0, "a map with keys" },
	{ "uprobe:libc:malloc /arg0 % 2/ { @c = count(); }", 0, "/ or %" },
	{ "uprobe:libc:malloc /tid == 1/ { @c = count(); }", 0, NULL },
	{ "uprobe:libc:malloc /nsecs > 1/ { @c = count(); }", 0, "a builtin other than argN, pid and tid" },
	{ "uprobe:libc:malloc /comm == \"ls\"/ { @c = count(); }", 0, "string" },
	{ "uprobe:libc:malloc { @x = arg0; }", 0, "assign" },
	{ "uprobe:libc:malloc { $x = arg0; @c = sum($x); }", 0, "scratch variable" },
	{ "uprobe:libc:malloc { @c = count(); } uprobe:libc:free /@c > 3/ { @d = count(); }", 0, "reads" },
	{ "uprobe:libc:malloc { @c = count(); } uprobe:libc:free { clear(@c); }", 0, "clears" },
	{ "uprobe:libc:malloc { @c = count(); } uprobe:libc:free { exit(); }", 0, "exit()" },
	{ "uprobe:libc:malloc { @c = count(); } uretprobe:libc:malloc { @r = count(); }", 1, "uretprobe" },
	{ "uprobe:libc:malloc { @c = count(); } uretprobe:libc:malloc { @r = count(); }", 0, NULL },
	{ "uprobe:libc:malloc /arg0 << arg1/ { @c = count(); }", 0, "shift by a computed amount" },
	{ "uprobe:libc:malloc { @c = count(); delete(@c); }", 0, "delete" },
};

Test(bt_jit, the_subset_is_compiled_the_rest_falls_back)
{
	for (size_t i = 0; i < sizeof(plan) / sizeof(plan[0]); i++) {
		struct bt_program *p = compile(plan[i].text);
		const char *why = NULL;
		bool ok = bt_jit_eligible(p, &p->blocks[plan[i].block], &why);
		if (!plan[i].why)
			cr_expect(ok, "%s: block %d should be compiled (%s)", plan[i].text, plan[i].block, why ? why : "");
		else
			cr_expect(!ok && why && strstr(why, plan[i].why), "%s: block %d should not be compiled for %s (%s)",
				  plan[i].text, plan[i].block, plan[i].why, ok ? "compiled" : why);
		bt_program_release(p);
	}
}

/* ---- the code, run ---- */

/* A register state in hardware order (rsp unused), the flags, and the 16
 * words of the red zone as they were after the run. */
struct state {
	uint64_t r[16];
	uint64_t flags;
	uint64_t redzone[16];
};
static struct state in, out;

#define CANARY 0x5a5a5a5a5a5a5a5aull

/* An executable function that loads IN, writes canaries in its red zone,
 * runs CODE as a trampoline does (rsp 128 lower, rcx and rdx pushed and
 * clobbered), and stores the registers, the flags and the red zone in
 * OUT. */
static void (*harness(const uint8_t *code, size_t len))(void)
{
	static uint8_t buf[8192];
	struct x86e e = { buf, 0, sizeof(buf), 0 };
	static const int8_t callee[] = { X86_RBX, X86_RBP, X86_R12, X86_R13, X86_R14, X86_R15 };
	for (size_t i = 0; i < sizeof(callee); i++)
		x86_push(&e, callee[i]);
	x86_mov_r64_imm64(&e, X86_RAX, (uintptr_t)&in.flags);
	x86_push_m64(&e, x86_mem(X86_RAX, 0));
	x86_popfq(&e);                                     /* from here on: movs only */
	x86_mov_r64_imm64(&e, X86_RAX, CANARY);
	for (int k = 1; k <= 16; k++)
		x86_mov_m64_r64(&e, x86_mem(X86_RSP, -8 * k), X86_RAX);
	x86_mov_r64_imm64(&e, X86_RAX, (uintptr_t)&in);
	for (int r = 1; r < 16; r++)
		if (r != X86_RSP)
			x86_mov_r64_m64(&e, r, x86_mem(X86_RAX, 8 * r));
	x86_mov_r64_m64(&e, X86_RAX, x86_mem(X86_RAX, 0));
	/* the trampoline */
	x86_lea(&e, X86_RSP, x86_mem32(X86_RSP, -0x80));
	x86_push(&e, X86_RCX);
	x86_push(&e, X86_RDX);
	x86_mov_r64_imm64(&e, X86_RCX, 0xdeadbeefdeadbeefull);
	x86_mov_r64_imm64(&e, X86_RDX, 0xfeedfacefeedfaceull);
	x86_bytes(&e, code, len);
	x86_pop(&e, X86_RDX);
	x86_pop(&e, X86_RCX);
	x86_lea(&e, X86_RSP, x86_mem32(X86_RSP, 0x80));
	/* below the red zone before anything is pushed */
	x86_lea(&e, X86_RSP, x86_mem32(X86_RSP, -0x100));
	x86_pushfq(&e);
	x86_push(&e, X86_RAX);
	x86_mov_r64_imm64(&e, X86_RAX, (uintptr_t)&out);
	for (int r = 1; r < 16; r++)
		if (r != X86_RSP)
			x86_mov_m64_r64(&e, x86_mem(X86_RAX, 8 * r), r);
	x86_pop(&e, X86_RBX);
	x86_mov_m64_r64(&e, x86_mem(X86_RAX, 0), X86_RBX);
	x86_pop(&e, X86_RBX);
	x86_mov_m64_r64(&e, x86_mem(X86_RAX, (int32_t)offsetof(struct state, flags)), X86_RBX);
	for (int k = 1; k <= 16; k++) {
		x86_mov_r64_m64(&e, X86_RBX, x86_mem(X86_RSP, 0x100 - 8 * k));
		x86_mov_m64_r64(&e, x86_mem(X86_RAX, (int32_t)(offsetof(struct state, redzone) + 8 * (k - 1))), X86_RBX);
	}
	x86_lea(&e, X86_RSP, x86_mem32(X86_RSP, 0x100));
	for (size_t i = sizeof(callee); i-- > 0;)
		x86_pop(&e, callee[i]);
	x86_ret(&e);
	cr_assert(!e.overflow);
	static void *page;
	if (!page)
		page = mmap(NULL, sizeof(buf), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert(page != MAP_FAILED);
	mprotect(page, sizeof(buf), PROT_READ | PROT_WRITE);
	memcpy(page, buf, e.len);
	mprotect(page, sizeof(buf), PROT_READ | PROT_EXEC);
	return (void (*)(void))page;
}

static bool ready(void)
{
	if (sp_tstate_init() != 0 || !sp_fastcount.on)
		return false;
	sp_tstate_stripe();
	return sp_tls.fast != NULL;
}

static const char *const programs[] = {
	"uprobe:libc:malloc { @c = count(); }",
	"uprobe:libc:malloc /arg0 > 4096/ { @c = count(); @d++; @e--; }",
	"uprobe:libc:malloc /arg0 >= 3 && arg1 != 7 || !(arg2 < arg3)/ "
	"{ @s = sum(arg0 * 3 - arg4); @mx = max(arg5); @mn = min(arg1); }",
	"uprobe:libc:malloc { @h = hist(arg0); @l = lhist(arg1, 0, 100, 10); @l3 = lhist(arg2, 5, 50, 7); }",
	"uprobe:libc:malloc { @a = avg(arg0); @st = stats(arg1 ^ arg2); "
	"if (arg0 & 1) { @odd += arg0; } else { @even -= arg1 >> 2; } @t = sum(arg3 > 10 ? arg3 << 1 : ~arg3); }",
	"uprobe:libc:malloc /(arg0 | arg1) == arg5 + 1 || arg4 <= -3/ { @p = sum(pid - pid + 1); @q = max(-arg0); }",
	"uprobe:libc:malloc /0x7fffffffffff > arg2/ { @big = count(); @sg = sum(-5 < 3); }",
	"uprobe:libc:malloc /tid != 0 && arg0 > 5/ { @t = sum(tid - tid + 1); @u = max(tid == tid); @w = sum(tid > arg1); }",
};

static const uint64_t values[] = {
	0, 1, 2, 3, 7, 10, 11, 64, 99, 100, 101, 4095, 4096, 4097, 1ull << 31, 1ull << 32, (1ull << 32) + 5,
	1ull << 63, (uint64_t)-1, (uint64_t)-3, (uint64_t)-4096, 0x123456789ull, 48, 49, 50, 51,
};
#define NV (sizeof(values) / sizeof(values[0]))

static const uint64_t flag_sets[] = { 0x202, 0x202 | 0x8d5, 0x202 | 0x1, 0x202 | 0x800, 0x202 | 0x40 | 0x4,
				      0x202 | 0x80 | 0x10 };

Test(bt_jit, compiled_blocks_give_the_evaluators_maps_and_leave_the_state_alone)
{
	if (!ready()) {
		cr_skip_test("SKIP: no inline count here (rseq not registered by glibc): nothing is compiled");
		return;
	}
	for (size_t pi = 0; pi < sizeof(programs) / sizeof(programs[0]); pi++) {
		struct bt_program *jit = compile(programs[pi]), *ref = compile(programs[pi]);
		struct bt_block *b = &jit->blocks[0];
		bt_jit_block(b);
		cr_assert_not_null(b->native, "%s: not compiled", programs[pi]);
		void (*run)(void) = harness(b->native, b->native_len);
		unsigned seed = 1;
		for (int n = 0; n < 600; n++) {
			struct selfprobe_regs regs;
			memset(&regs, 0, sizeof(regs));
			for (int r = 0; r < 16; r++) {
				seed = seed * 1103515245u + 12345u;
				in.r[r] = values[(seed >> 8) % NV] ^ ((uint64_t)r << 56);
			}
			/* the arguments from the table as they are (r << 56 made each
			 * register's value its own elsewhere) */
			static const int8_t argreg[] = { X86_RDI, X86_RSI, X86_RDX, X86_RCX, X86_R8, X86_R9 };
			for (int a = 0; a < 6; a++) {
				seed = seed * 1103515245u + 12345u;
				in.r[argreg[a]] = values[(seed >> 8) % NV];
			}
			in.flags = flag_sets[n % (sizeof(flag_sets) / sizeof(flag_sets[0]))];
			memset(&out, 0, sizeof(out));
			run();
			for (int r = 0; r < 16; r++)
				if (r != X86_RSP)
					cr_assert_eq(out.r[r], in.r[r], "%s: register %d changed", programs[pi], r);
			cr_assert_eq(out.flags & 0xcd5, in.flags & 0xcd5, "%s: flags %#lx came back %#lx", programs[pi],
				     (unsigned long)in.flags, (unsigned long)out.flags);
			for (int k = 0; k < 16; k++)
				cr_assert_eq(out.redzone[k], CANARY, "%s: red zone word %d written", programs[pi], k);
			regs.rdi = in.r[X86_RDI];
			regs.rsi = in.r[X86_RSI];
			regs.rdx = in.r[X86_RDX];
			regs.rcx = in.r[X86_RCX];
			regs.r8 = in.r[X86_R8];
			regs.r9 = in.r[X86_R9];
			struct selfprobe_ctx ctx = { .regs = &regs };
			bt_run(&ref->blocks[0], &ctx);
		}
		struct bt_buf a = { 0 }, c = { 0 };
		bt_print_all(&a, jit);
		bt_print_all(&c, ref);
		cr_expect(a.n == c.n && memcmp(a.p, c.p, a.n) == 0, "%s:\ncompiled:\n%.*s\nevaluator:\n%.*s", programs[pi],
			  (int)a.n, a.p, (int)c.n, c.p);
		sp_free(a.p);
		sp_free(c.p);
		bt_program_release(jit);
		bt_program_release(ref);
	}
}
