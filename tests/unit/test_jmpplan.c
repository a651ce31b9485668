/* Tests for jmpplan: every rule decided on real assembled functions.
 *
 * Each jp_* function below is laid out by hand (byte offsets in comments)
 * so a test can put the site anywhere and know what the window must be. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "jmpplan.h"
#include "asm_fn.h"


__asm__(
	".pushsection .data\n"
	"jp_data: .long 42\n"
	".popsection\n"
	".pushsection .text\n"
	FN(jp_prologue)
	"	push %rbp\n"                    /* +0  55 */
	"	mov %rsp,%rbp\n"                /* +1  48 89 e5 */
	"	mov %edi,%eax\n"                /* +4  89 f8 */
	"	add $1,%eax\n"                  /* +6  83 c0 01 */
	"	pop %rbp\n"                     /* +9  5d */
	"	ret\n"                          /* +10 c3 */
	END(jp_prologue)

	FN(jp_loop)
	"	xor %eax,%eax\n"                /* +0  31 c0 */
	"1:	add $1,%eax\n"                  /* +2  83 c0 01   <- loop head */
	"	cmp $10,%eax\n"                 /* +5  83 f8 0a */
	"	jne 1b\n"                       /* +8  75 f8 */
	"	ret\n"                          /* +10 */
	END(jp_loop)

	/* a call (never executed) back into bytes 1..4 */
	FN(jp_calltgt)
	"	push %rbp\n"                    /* +0 */
	"1:	mov %rsp,%rbp\n"                /* +1 */
	"	pop %rbp\n"
	"	ret\n"
	"	call 1b\n"
	"	ret\n"
	END(jp_calltgt)

	/* a jump table (never executed) */
	FN(jp_jtab)
	"	mov %edi,%eax\n"
	"	lea jp_data(%rip),%rcx\n"
	"	jmp *(%rcx,%rax,8)\n"
	"	mov $1,%eax\n"
	"	ret\n"
	END(jp_jtab)

	FN(jp_jreg)
	"	lea 5(%rdi),%rax\n"
	"	jmp *%rax\n"
	END(jp_jreg)

	/* ret, then int3 fill up to the next function */
	FN(jp_ret_cc)
	"	ret\n"
	END(jp_ret_cc)
	".p2align 4, 0xcc\n"

	/* xor; ret, then a 10-byte nop (the window's tail covers 2 of its bytes) */
	FN(jp_ret_nop)
	"	xor %eax,%eax\n"                /* +0 31 c0 */
	"	ret\n"                          /* +2 c3 */
	END(jp_ret_nop)
	"	.byte 0x66,0x2e,0x0f,0x1f,0x84,0,0,0,0,0\n"
	"	.p2align 4, 0x90\n"

	/* ret, and the next function right after it */
	FN(jp_ret_tight)
	"	ret\n"
	END(jp_ret_tight)
	".globl jp_ret_next\n .hidden jp_ret_next\n"
	"jp_ret_next:\n"
	"	ret\n"

	/* ret, then bytes that are not padding (add %al,(%rax)) */
	FN(jp_ret_junk)
	"	ret\n"
	END(jp_ret_junk)
	"	.byte 0,0,0,0,0,0\n"

	/* the function's last instruction falls through into padding */
	FN(jp_falls)
	"	xor %eax,%eax\n"
	END(jp_falls)
	".p2align 4, 0xcc\n"

	FN(jp_nop5)
	"	.byte 0x0f,0x1f,0x44,0,0\n"     /* +0 nopl 0(%rax,%rax,1) (gas would drop the disp8) */
	"	ret\n"
	END(jp_nop5)

	FN(jp_helper)
	"	ret\n"
	END(jp_helper)

	FN(jp_call_last)
	"	push %rbx\n"                    /* +0 53 */
	"	call jp_helper\n"               /* +1 e8 .. */
	"	pop %rbx\n"
	"	ret\n"
	END(jp_call_last)

	FN(jp_call_first)
	"	call jp_helper\n"               /* +0 e8 .. */
	"	ret\n"
	END(jp_call_first)

	FN(jp_jrcxz)
	"	jrcxz 1f\n"                     /* +0 e3 05 */
	"	mov $1,%eax\n"                  /* +2 b8 01 00 00 00 */
	"1:	ret\n"                          /* +7 */
	END(jp_jrcxz)

	FN(jp_icall)
	"	call *%rax\n"                   /* +0 ff d0 */
	"	mov $1,%eax\n"
	"	ret\n"
	END(jp_icall)

	FN(jp_ud2)
	"	ud2\n"
	"	nop\n nop\n nop\n"
	END(jp_ud2)

	FN(jp_rip)
	"	mov jp_data(%rip),%eax\n"       /* +0 8b 05 rel32 */
	"	ret\n"
	END(jp_rip)

	FN(jp_bad)
	".byte 0x0f,0x1f,0x44,0,0\n"       /* nopl 0(%rax,%rax,1) */
	"	.byte 0x06\n"                   /* push %es: invalid in 64-bit mode */
	"	ret\n"
	END(jp_bad)

	/* an early ret inside the window with code after it (a branch target) */
	FN(jp_ret_mid)
	"	test %edi,%edi\n"               /* +0 85 ff */
	"	jne 1f\n"                       /* +2 75 01 */
	"	ret\n"                          /* +4 c3 */
	"1:	mov %edi,%eax\n"                /* +5 */
	"	ret\n"
	END(jp_ret_mid)

	/* an early ret and dead code after it: the window goes on */
	FN(jp_ret_dead)
	"	xor %eax,%eax\n"                /* +0 31 c0 */
	"	ret\n"                          /* +2 c3 */
	"	mov %edi,%eax\n"                /* +3 89 f8 */
	"	ret\n"                          /* +5 */
	END(jp_ret_dead)

	".p2align 4, 0xcc\n"
	"jp_text_end:\n"
	".fill 64,1,0xcc\n"
	".popsection\n");

#define DECL(name) extern const uint8_t name[], name##_end[]
DECL(jp_prologue); DECL(jp_loop); DECL(jp_calltgt); DECL(jp_jtab); DECL(jp_jreg);
DECL(jp_ret_cc); DECL(jp_ret_nop); DECL(jp_ret_tight); DECL(jp_ret_junk); DECL(jp_falls);
DECL(jp_nop5); DECL(jp_call_last); DECL(jp_call_first); DECL(jp_jrcxz); DECL(jp_icall);
DECL(jp_ud2); DECL(jp_rip); DECL(jp_bad); DECL(jp_ret_mid); DECL(jp_helper);
DECL(jp_ret_dead);
extern const uint8_t jp_ret_next[], jp_text_end[];

static struct sp_window w;
static const char *reason;

/* Plan at FN+OFF with FN's size (or 0 when !SIZED); LIMIT defaults to the
 * end of the test text. */
static int plan_lim(const uint8_t *fn, const uint8_t *end, size_t off, bool sized,
		    const uint8_t *limit)
{
	uintptr_t site = (uintptr_t)fn + off;
	reason = NULL;
	return sp_jmp_plan((uintptr_t)fn, sized ? (size_t)(end - fn) : 0, site,
			   (uintptr_t)jp_text_end + 64 - site,
			   (uintptr_t)(limit ? limit : jp_text_end), &w, &reason);
}

#define PLAN(name, off) plan_lim(name, name##_end, (off), true, NULL)
#define PLAN_UNSIZED(name) plan_lim(name, name##_end, 0, false, NULL)

static void expect_ok(int rc, uint8_t len, uint8_t n, bool flow_ends)
{
	cr_assert_eq(rc, 0, "refused: %s", reason ? reason : "(null)");
	cr_expect_eq(w.len, len, "len %u, want %u", w.len, len);
	cr_expect_eq(w.n_insns, n, "n_insns %u, want %u", w.n_insns, n);
	cr_expect_eq(w.flow_ends, flow_ends);
	uintptr_t at = w.site;
	for (int i = 0; i < w.n_insns; i++) {        /* consecutive, in order */
		cr_expect_eq(w.insns[i].addr, at);
		at += w.insns[i].len;
	}
}

static void expect_refused(int rc, const char *keyword)
{
	cr_assert_lt(rc, 0, "planned, expected a refusal with '%s'", keyword);
	cr_assert_not_null(reason);
	cr_expect(strstr(reason, keyword) != NULL, "reason '%s' lacks '%s'", reason, keyword);
}

Test(jmpplan, prologue)
{
	expect_ok(PLAN(jp_prologue, 0), 6, 3, false);   /* push; mov; mov */
	cr_expect_eq(w.site, (uintptr_t)jp_prologue);
	cr_expect_eq(w.insns[0].cls, SP_INSN_PUSH_REG);
	cr_expect_eq(w.insns[1].cls, SP_INSN_MOV_REG_REG);
}

Test(jmpplan, site_inside_function)
{
	expect_ok(PLAN(jp_prologue, 1), 5, 2, false);   /* mov %rsp,%rbp; mov %edi,%eax */
	expect_ok(PLAN(jp_prologue, 4), 5, 2, false);   /* mov; add */
	expect_refused(PLAN(jp_prologue, 2), "instruction boundary");
	expect_refused(PLAN(jp_prologue, 5), "instruction boundary");
	/* the last 2 bytes: pop; ret ends the function, padding after */
	expect_ok(PLAN(jp_prologue, 9), 2, 2, true);
}

Test(jmpplan, branch_into_window)
{
	expect_refused(PLAN(jp_loop, 0), "branch target inside the jmp window");
	/* at the loop head the branch targets the site itself: fine */
	expect_ok(PLAN(jp_loop, 2), 6, 2, false);
	/* a call counts as a branch */
	expect_refused(PLAN(jp_calltgt, 0), "branch target inside the jmp window");
}

Test(jmpplan, indirect_jump)
{
	/* what an indirect jmp can reach is the object index's question
	 * (test_decide.c); the plan only refuses one inside the window */
	cr_expect_eq(PLAN(jp_jtab, 0), 0, "%s", reason);
	/* a tail call ending the window moves with it */
	expect_ok(PLAN(jp_jreg, 0), 6, 2, true);
}

Test(jmpplan, ret_then_padding)
{
	expect_ok(PLAN(jp_ret_cc, 0), 1, 1, true);
	cr_expect_eq(w.insns[0].cls, SP_INSN_RET);
	expect_ok(PLAN(jp_ret_nop, 0), 3, 2, true);     /* xor; ret; 2 bytes of nopw */
	/* the padding itself must end below LIMIT */
	expect_refused(plan_lim(jp_ret_cc, jp_ret_cc_end, 0, true, jp_ret_cc + 4),
		       "past the end of the function");
}

Test(jmpplan, ret_then_next_symbol)
{
	expect_refused(plan_lim(jp_ret_tight, jp_ret_tight_end, 0, true, jp_ret_next),
		       "window runs past the end of the function");
	expect_refused(PLAN(jp_ret_junk, 0), "not padding");
	expect_refused(PLAN(jp_falls, 0), "window runs past the end of the function");
}

Test(jmpplan, early_ret_inside_window)
{
	/* test; jne; ret: the jne targets +5, the first byte after the jmp */
	expect_ok(PLAN(jp_ret_mid, 0), 5, 3, true);
	/* a ret that does not end the function does not end the window */
	expect_ok(PLAN(jp_ret_dead, 0), 5, 3, false);
	cr_expect_eq(w.insns[1].cls, SP_INSN_RET);
	/* from +2: jne; ret; mov: the target +5 is inside (site, site+5) */
	expect_refused(PLAN(jp_ret_mid, 2), "branch target inside the jmp window");
}

Test(jmpplan, unknown_size)
{
	expect_ok(PLAN_UNSIZED(jp_nop5), 5, 1, false);
	cr_expect_eq(w.insns[0].cls, SP_INSN_NOP);
	expect_refused(PLAN_UNSIZED(jp_prologue), "function size unknown");
	expect_ok(PLAN_UNSIZED(jp_call_first), 5, 1, false);
	expect_ok(PLAN_UNSIZED(jp_rip), 6, 1, false);
	/* a single long instruction crossing the next symbol */
	expect_refused(plan_lim(jp_nop5, jp_nop5_end, 0, false, jp_nop5 + 3),
		       "past the end of the function");
}

Test(jmpplan, calls)
{
	expect_ok(PLAN(jp_call_last, 0), 6, 2, false);   /* push; call */
	cr_expect_eq(w.insns[1].cls, SP_INSN_CALL_REL);
	cr_expect_eq(w.insns[1].target, (uintptr_t)jp_helper);
	expect_ok(PLAN(jp_call_first, 0), 5, 1, false);
	/* an indirect call cannot move */
	expect_refused(PLAN(jp_icall, 0), "cannot be relocated");
	cr_expect(strstr(reason, "indirect call") != NULL, "%s", reason);
}

Test(jmpplan, not_relocatable)
{
	expect_refused(PLAN(jp_jrcxz, 0), "cannot be relocated");
	cr_expect(strstr(reason, "jrcxz") != NULL, "%s", reason);
	expect_refused(PLAN(jp_ud2, 0), "cannot be relocated");
}

Test(jmpplan, rip_relative)
{
	expect_ok(PLAN(jp_rip, 0), 6, 1, false);
	cr_expect(w.insns[0].rip_relative);
	cr_expect(w.insns[0].relocatable);
}

Test(jmpplan, does_not_decode)
{
	expect_refused(PLAN(jp_bad, 0), "does not decode");
	/* the window alone would be fine: the whole function is checked */
	cr_expect_eq(plan_lim(jp_bad, jp_bad_end, 0, false, NULL), 0, "%s", reason);
}

Test(jmpplan, bad_arguments)
{
	expect_refused(plan_lim(jp_prologue, jp_prologue_end, 11, true, NULL), "outside");
	/* the function runs past what is readable */
	reason = NULL;
	int rc = sp_jmp_plan((uintptr_t)jp_prologue, 11, (uintptr_t)jp_prologue, 8,
			     (uintptr_t)jp_text_end, &w, &reason);
	expect_refused(rc, "does not decode");
}

/* ---- a hop's window plan takes the function's decode from the memo ---- */

struct rec_memo {
	int gets, puts, answer;       /* answer < 0: the memo does not know */
	uintptr_t func, site, guard_end;
	size_t size;
	int verdict;
};

static bool rec_get(void *ctx, uintptr_t func, size_t size, uintptr_t site, uintptr_t guard_end, int *verdict)
{
	struct rec_memo *m = ctx;
	(void)func, (void)size, (void)site, (void)guard_end;
	m->gets++;
	if (m->answer < 0)
		return false;
	*verdict = m->answer;
	return true;
}

static void rec_put(void *ctx, uintptr_t func, size_t size, uintptr_t site, uintptr_t guard_end, int verdict)
{
	struct rec_memo *m = ctx;
	m->puts++;
	m->func = func, m->size = size, m->site = site, m->guard_end = guard_end, m->verdict = verdict;
}

Test(jmpplan, first_instruction_plan_goes_through_the_memo)
{
	uintptr_t f = (uintptr_t)jp_prologue;
	struct sp_window w0, w1, w2;
	const char *r0 = NULL, *r1 = NULL, *r2 = NULL;
	/* mov %rsp,%rbp at +1: the hop's window is that instruction alone */
	int rc0 = sp_jmp_plan_first_image((const uint8_t *)f, f, 11, f, 11, f + 1, 0, &w0, &r0);
	struct rec_memo m = { .answer = -1 };
	struct sp_scan_memo memo = { &m, rec_get, rec_put };
	int rc1 = sp_jmp_plan_first_image_memo((const uint8_t *)f, f, 11, f, 11, f + 1, 0, &w1, &r1, &memo);
	cr_assert_eq(rc0, 0, "%s", r0 ? r0 : "");
	cr_assert_eq(rc1, rc0);
	cr_assert_eq(w1.len, 3);
	cr_assert_eq(w1.len, w0.len);
	/* asked, then told the verdict for exactly the scan's inputs */
	cr_assert_eq(m.gets, 1);
	cr_assert_eq(m.puts, 1);
	cr_assert_eq(m.func, f);
	cr_assert_eq(m.size, 11);
	cr_assert_eq(m.site, f + 1);
	cr_assert_eq(m.guard_end, f + 1 + 3);
	cr_assert_eq(m.verdict, SP_SCAN_OK);
	/* a stored verdict is the answer: not decoded again */
	struct rec_memo k = { .answer = SP_SCAN_NOT_BOUNDARY };
	memo.ctx = &k;
	int rc2 = sp_jmp_plan_first_image_memo((const uint8_t *)f, f, 11, f, 11, f + 1, 0, &w2, &r2, &memo);
	cr_assert_lt(rc2, 0);
	cr_assert(r2 && strstr(r2, "instruction boundary"), "%s", r2 ? r2 : "");
	cr_assert_eq(k.puts, 0);
}
