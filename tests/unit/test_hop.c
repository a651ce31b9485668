/* Tests for hop: the pad search (hop.h) and the hop's window (jmpplan's
 * first-instruction plan) on real assembled functions of this binary, with
 * its own symbol table for the extents.  Branch targets and claims come
 * from each test, so every rule is seen alone. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "analyze.h"
#include "asm_fn.h"
#include "elfsym.h"
#include "hop.h"
#include "jmpplan.h"

__asm__(
	".pushsection .text\n"
	FN(hp_first)
	"	ret\n"
	END(hp_first)

	/* a function, then 15 bytes of int3 fill (FN's alignment), then a
	 * function whose loop head is its byte 2: bytes 1-4 are a target */
	FN(hp_prev)
	"	ret\n"                          /* +0; fill +1..+15 */
	END(hp_prev)
	FN(hp_loop)
	"	mov %edi,%eax\n"                /* +0 89 f8 */
	"1:	add $1,%eax\n"                  /* +2 83 c0 01  <- loop head */
	"	cmp $10,%eax\n"                 /* +5 */
	"	jb 1b\n"                        /* +8 */
	"	ret\n"
	END(hp_loop)

	/* nop fill after an exit, then an endbr64 (code, not fill: an
	 * indirect branch may land there), then int3 fill */
	FN(hp_endbr_prev)
	"	ret\n"                          /* +0 */
	END(hp_endbr_prev)
	"	.byte 0x90, 0x90\n"             /* +1 fill */
	"	.byte 0xf3,0x0f,0x1e,0xfa\n"    /* +3 endbr64 */

	/* the function's last instruction falls through into the fill */
	FN(hp_falls)
	"	xor %eax,%eax\n"
	END(hp_falls)
	FN(hp_after_falls)
	"	mov %edi,%eax\n"                /* +0 89 f8 */
	"1:	add $1,%eax\n"                  /* +2 */
	"	jb 1b\n"
	"	ret\n"
	END(hp_after_falls)

	/* loop-alignment fill inside a function: a nested symbol ends before
	 * it (its last instruction an exit), but the outer extent covers it */
	FN(hp_outer)
	"	mov %edi,%eax\n"                /* +0 */
	"	test %eax,%eax\n"
	"	jne 2f\n"
	"hp_inner:\n"
	"	ret\n"
	"hp_inner_end:\n"
	"	.p2align 4, 0x90\n"             /* fill, inside hp_outer */
	"2:	add $1,%eax\n"
	"	cmp $10,%eax\n"
	"	jb 2b\n"
	"	ret\n"
	END(hp_outer)
	".type hp_inner,@function\n .size hp_inner, hp_inner_end - hp_inner\n"

	/* the same shape where the inner part falls through into the fill
	 * (executed loop alignment) and no outer symbol covers it */
	FN(hp_exec_head)
	"	mov %edi,%eax\n"
	"	add $1,%eax\n"
	END(hp_exec_head)
	"	.p2align 4, 0x90\n"
	"1:	add $1,%eax\n"
	"	cmp $10,%eax\n"
	"	jb 1b\n"
	"	ret\n"

	/* 160 bytes ending in ret: no fill after it (the next FN is aligned) */
	FN(hp_big)
	"	.rept 53\n add $1,%eax\n .endr\n"   /* 159 bytes */
	"	ret\n"
	END(hp_big)
	/* the site: its first instruction 2 bytes, a loop head at +2, and
	 * more than 129 bytes of code before its own end */
	FN(hp_far)
	"	mov %edi,%eax\n"                /* +0 */
	"1:	add $1,%eax\n"                  /* +2 */
	"	.rept 50\n add $1,%eax\n .endr\n"
	"	jb 1b\n"
	"	ret\n"
	END(hp_far)

	/* a one-byte first instruction */
	FN(hp_push)
	"	push %rbx\n"                    /* +0 53 */
	"1:	add $1,%eax\n"                  /* +1 */
	"	jb 1b\n"
	"	pop %rbx\n"
	"	ret\n"
	END(hp_push)

	/* a target inside the first instruction itself */
	FN(hp_inside_first)
	"	.byte 0xb8\n"                   /* +0 b8 imm32: mov $imm,%eax ... */
	"2:	.byte 0x90, 0x90, 0x90, 0x90\n" /* ... whose immediate is also a target */
	"	jb 2b\n"
	"	ret\n"
	END(hp_inside_first)

	/* two copies of the hp_loop shape, each behind 160 bytes that end
	 * flush with the function before it (no other fill in reach); the
	 * first's padding has its address taken (hp_taken below) */
	FN(hp_tk_big)
	"	.rept 53\n add $1,%eax\n .endr\n"
	"	ret\n"
	END(hp_tk_big)
	FN(hp_tk_prev)
	"	ret\n"
	END(hp_tk_prev)
	FN(hp_tk_loop)
	"	mov %edi,%eax\n"
	"1:	add $1,%eax\n"
	"	cmp $10,%eax\n"
	"	jb 1b\n"
	"	ret\n"
	END(hp_tk_loop)
	FN(hp_nt_big)
	"	.rept 53\n add $1,%eax\n .endr\n"
	"	ret\n"
	END(hp_nt_big)
	FN(hp_nt_prev)
	"	ret\n"
	END(hp_nt_prev)
	FN(hp_nt_loop)
	"	mov %edi,%eax\n"
	"1:	add $1,%eax\n"
	"	cmp $10,%eax\n"
	"	jb 1b\n"
	"	ret\n"
	END(hp_nt_loop)

	FN(hp_last)
	"	ret\n"
	END(hp_last)
	".popsection\n");

#define DECL(name) extern const uint8_t name[], name##_end[]
DECL(hp_first); DECL(hp_prev); DECL(hp_loop); DECL(hp_endbr_prev); DECL(hp_falls);
DECL(hp_after_falls); DECL(hp_outer); DECL(hp_exec_head); DECL(hp_big); DECL(hp_far);
DECL(hp_push); DECL(hp_inside_first); DECL(hp_last);
extern const uint8_t hp_inner_end[];
DECL(hp_tk_prev);

/* The padding after hp_tk_prev, as a pointer in data: an R_X86_64_RELATIVE
 * relocation makes it a taken address (an indirect jump could go there). */
const void *const hp_taken = hp_tk_prev_end + 2;

static struct sp_elf *elf;
static uintptr_t bias;

static void setup(void)
{
	char err[256];
	cr_assert_eq(sp_elf_open("/proc/self/exe", &elf, err, sizeof(err)), 0, "%s", err);
	const struct sp_sym *s = sp_elf_lookup(elf, "hp_prev");
	cr_assert(s, "no symbol hp_prev in the test binary");
	bias = (uintptr_t)hp_prev - s->value;
}

static void teardown(void)
{
	sp_elf_close(elf);
}

TestSuite(hop, .init = setup, .fini = teardown);

/* The test's branch targets and claims. */
static uintptr_t targets[4], claims[4][2];
static int n_targets, n_claims;

static bool reached(const void *ctx, uintptr_t lo, uintptr_t hi)
{
	(void)ctx;
	for (int i = 0; i < n_targets; i++)
		if (targets[i] >= lo && targets[i] < hi)
			return true;
	return false;
}

static bool claimed(const void *ctx, uintptr_t lo, uintptr_t hi)
{
	(void)ctx;
	for (int i = 0; i < n_claims; i++)
		if (claims[i][0] < hi && claims[i][1] > lo)
			return true;
	return false;
}

static const char *reason;

/* The pad search at SITE over the code of [TEXT_LO, TEXT_HI). */
static int find_in(const uint8_t *site, const uint8_t *text_lo, const uint8_t *text_hi, uintptr_t *pad)
{
	uintptr_t lo, hi;
	sp_hop_range(elf, bias, (uintptr_t)site, (uintptr_t)text_lo, (uintptr_t)text_hi, &lo, &hi);
	cr_assert(lo <= (uintptr_t)site && hi > (uintptr_t)site);
	struct sp_hop_facts f = { .code = (const uint8_t *)lo, .lo = lo, .len = hi - lo, .elf = elf,
				  .bias = bias, .reached = reached, .claimed = claimed };
	reason = NULL;
	*pad = 0;
	return sp_hop_find_pad(&f, (uintptr_t)site, pad, &reason);
}

static int find(const uint8_t *site, uintptr_t *pad)
{
	return find_in(site, hp_first, hp_last_end, pad);
}

/* hp_loop with only the fill after hp_prev before it in the image */
static int find_loop(uintptr_t *pad)
{
	return find_in(hp_loop, hp_prev, hp_loop_end, pad);
}

Test(hop, padding_between_functions)
{
	uintptr_t pad;
	n_targets = n_claims = 0;
	cr_assert_eq(find_loop(&pad), 0, "refused: %s", reason);
	/* the first 5 bytes of the int3 fill after hp_prev's ret */
	cr_expect_eq(pad, (uintptr_t)hp_prev_end, "pad %#lx, want hp_prev_end %#lx", pad,
		     (uintptr_t)hp_prev_end);
	cr_expect(pad >= (uintptr_t)hp_loop - SP_HOP_REACH_BACK);
}

Test(hop, pieces_encode_the_two_jumps)
{
	uint8_t site[2], pad[5];
	sp_hop_site_bytes(0x1000, 0x1000 - 126, site);
	cr_expect(site[0] == 0xeb && site[1] == 0x80, "%02x %02x", site[0], site[1]);   /* rel8 -128 */
	sp_hop_site_bytes(0x1000, 0x1000 + 129, site);
	cr_expect(site[0] == 0xeb && site[1] == 0x7f, "%02x %02x", site[0], site[1]);   /* rel8 +127 */
	sp_hop_pad_bytes(0x2000, 0x3005, pad);
	int32_t rel;
	memcpy(&rel, pad + 1, 4);
	cr_expect(pad[0] == 0xe9 && rel == 0x1000, "%02x rel %d", pad[0], rel);
}

Test(hop, claimed_padding_is_not_shared)
{
	uintptr_t pad, first = (uintptr_t)hp_prev_end;
	n_targets = 0;
	n_claims = 1;
	claims[0][0] = first;
	claims[0][1] = first + 5;
	cr_assert_eq(find_loop(&pad), 0, "refused: %s", reason);
	cr_expect_eq(pad, first + 5, "pad %#lx, want the next free slot %#lx", pad, first + 5);
	/* a claim on one byte of a slot moves the pad past it */
	claims[0][0] = first + 4;
	claims[0][1] = first + 5;
	cr_assert_eq(find_loop(&pad), 0);
	cr_expect_eq(pad, first + 5);
	/* the whole 15-byte fill claimed: the next run in reach is used,
	 * never an overlap */
	claims[0][0] = first;
	claims[0][1] = (uintptr_t)hp_loop;
	int rc = find_loop(&pad);
	cr_expect(rc != 0 || pad >= (uintptr_t)hp_loop, "pad %#lx overlaps the claim", pad);
	n_claims = 0;
}

Test(hop, branch_target_in_the_run_before_the_pad)
{
	uintptr_t pad, first = (uintptr_t)hp_prev_end;
	n_claims = 0;
	n_targets = 1;
	targets[0] = first + 2;    /* a thread landing here slides into any pad after it */
	int rc = find_loop(&pad);
	cr_expect(rc != 0 || pad < first || pad >= (uintptr_t)hp_loop,
		  "pad %#lx in the run after a branch target", pad);
	/* a target after the pad's end does not matter */
	targets[0] = first + 5;
	cr_assert_eq(find_loop(&pad), 0, "refused: %s", reason);
	cr_expect_eq(pad, first);
	n_targets = 0;
}

Test(hop, endbr_is_not_fill)
{
	/* the run after hp_endbr_prev's ret is 2 nops, then an endbr64: too
	 * short, and the int3 fill after the endbr is not after an exit */
	uintptr_t pad;
	n_targets = n_claims = 0;
	cr_expect_eq(find_in(hp_falls, hp_endbr_prev, hp_falls_end, &pad), -ENOSPC,
		     "pad %#lx (endbr64 at %p)", pad, (void *)(hp_endbr_prev + 3));
}

Test(hop, fall_through_into_fill_is_refused)
{
	/* only the fill after hp_falls (whose last instruction falls
	 * through) is in the image: it is executed */
	uintptr_t pad;
	n_targets = n_claims = 0;
	cr_expect_eq(find_in(hp_after_falls, hp_falls, hp_after_falls_end, &pad), -ENOSPC,
		     "pad %#lx after a fall-through", pad);
	cr_expect(reason && strstr(reason, "no unused padding"), "%s", reason);
}

Test(hop, loop_alignment_inside_a_function_is_refused)
{
	/* hp_inner ends with ret, then fill: but hp_outer's extent covers it */
	uintptr_t pad;
	n_targets = n_claims = 0;
	cr_expect_eq(find_in(hp_outer, hp_outer, hp_outer_end, &pad), -ENOSPC,
		     "pad %#lx inside hp_outer (loop alignment)", pad);
	/* executed loop alignment (the code before it falls through) */
	cr_expect_eq(find_in(hp_exec_head, hp_exec_head, hp_big, &pad), -ENOSPC,
		     "pad %#lx in executed loop alignment", pad);
}

Test(hop, padding_too_far)
{
	uintptr_t pad;
	n_targets = n_claims = 0;
	/* hp_big ends flush with hp_far: the nearest fill is before hp_big
	 * (160 bytes back) or after hp_far (more than 129 ahead) */
	cr_expect_eq(find(hp_far, &pad), -ENOSPC, "pad %#lx (site %p)", pad, (void *)hp_far);
	cr_expect(reason && strstr(reason, "±127"), "%s", reason);
}

/* ---- the hop's window: the first instruction alone ---- */

static struct sp_window w;

static int plan(const uint8_t *fn, const uint8_t *end, bool first)
{
	uintptr_t lo = (uintptr_t)fn, hi = (uintptr_t)end + 16;
	reason = NULL;
	return first ? sp_jmp_plan_first_image(fn, lo, hi - lo, lo, (size_t)(end - fn), lo, hi, &w, &reason)
		     : sp_jmp_plan_image(fn, lo, hi - lo, lo, (size_t)(end - fn), lo, hi, &w, &reason);
}

Test(hop, target_in_bytes_1_to_4_leaves_the_first_instruction)
{
	cr_expect_eq(plan(hp_loop, hp_loop_end, false), -ENOTSUP);
	cr_expect(reason && strstr(reason, "branch target inside the jmp window"), "%s", reason);
	cr_assert_eq(plan(hp_loop, hp_loop_end, true), 0, "refused: %s", reason);
	cr_expect_eq(w.len, 2);
	cr_expect_eq(w.n_insns, 1);
	cr_expect_eq(w.insns[0].addr, (uintptr_t)hp_loop);
}

Test(hop, target_inside_the_first_instruction_is_refused)
{
	cr_expect_eq(plan(hp_inside_first, hp_inside_first_end, true), -ENOTSUP);
	cr_expect(reason && strstr(reason, "branch target inside the jmp window"), "%s", reason);
}

Test(hop, one_byte_first_instruction_is_refused)
{
	cr_expect_eq(plan(hp_push, hp_push_end, true), -ENOTSUP);
	cr_expect(reason && strstr(reason, "shorter than the 2-byte hop"), "%s", reason);
}

Test(hop, refusal_names_both)
{
	const char *a = sp_hop_refusal("branch target inside the jmp window", "x");
	cr_expect_str_eq(a, "branch target inside the jmp window; hop: x");
	cr_expect_eq(sp_hop_refusal("branch target inside the jmp window", "x"), a, "not interned");
	cr_expect_str_eq(sp_hop_refusal("same", "same"), "same");
}

/* ---- the whole decision on this binary's file (analyze.h, decide.h): the
 * object's own index of direct targets and taken addresses ---- */

static const struct sp_an_site *analyze(struct sp_an_object *o, const char *name, struct sp_an_site *s)
{
	const struct sp_sym *sym = sp_elf_lookup(o->elf, name);
	cr_assert_not_null(sym, "no symbol %s", name);
	cr_assert_eq(sp_analyze_site(o, sym, sym->value, s), 0);
	return s;
}

Test(hop, decision_skips_padding_whose_address_is_taken)
{
	struct sp_an_object *o;
	char err[256];
	cr_assert_eq(sp_analyze_open("/proc/self/exe", &o, err, sizeof(err)), 0, "%s", err);
	cr_assert(hp_taken);   /* keep the pointer */
	struct sp_an_site s;
	/* control: the same shape, nothing points into its padding */
	analyze(o, "hp_nt_loop", &s);
	const struct sp_sym *prev = sp_elf_lookup(o->elf, "hp_nt_prev");
	cr_expect_eq(s.path, SP_PATH_HOP, "hp_nt_loop: path %s, reason %s", sp_path_name(s.path), s.reason);
	cr_expect_eq(s.pad, prev->value + 1, "hp_nt_loop: pad %#lx, want %#lx", (unsigned long)s.pad,
		     (unsigned long)(prev->value + 1));
	cr_expect_eq(s.w.n_insns, 1);
	cr_expect_eq(s.w.len, 2);
	/* the padding after hp_tk_prev holds a taken address: never a pad;
	 * the fill after hp_tk_loop's own end is the next in reach */
	analyze(o, "hp_tk_loop", &s);
	const struct sp_sym *loop = sp_elf_lookup(o->elf, "hp_tk_loop");
	cr_expect_eq(s.path, SP_PATH_HOP, "hp_tk_loop: path %s, reason %s", sp_path_name(s.path), s.reason);
	cr_expect_eq(s.pad, loop->value + loop->size, "hp_tk_loop: pad %#lx, want %#lx (after the taken fill)",
		     (unsigned long)s.pad, (unsigned long)(loop->value + loop->size));
	sp_analyze_close(o);
}
