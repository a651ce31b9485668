/* test_golang — Go's prologues, the RETs of a Go function, the refusals
 * (golang.h), on hand-made code. */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "arm.h"
#include "heap.h"
#include "golang_ret.h"
#include "golang_args.h"
#include "golang_exit.h"
#include "golang_stack.h"
#include "stripes_fill.h"
#include "tstate.h"

Test(golang, stack_check_forms)
{
	/* cmp 0x10(%r14),%rsp; jbe rel32 */
	static const uint8_t small[] = { 0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86, 1, 0, 0, 0, 0x48, 0x83, 0xec, 0x18 };
	cr_assert_eq(sp_go_stack_check_len(small, sizeof(small)), 10);
	/* cmp; jbe rel8 */
	static const uint8_t short_jbe[] = { 0x49, 0x3b, 0x66, 0x10, 0x76, 0x40, 0x55 };
	cr_assert_eq(sp_go_stack_check_len(short_jbe, sizeof(short_jbe)), 6);
	/* lea -0x80(%rsp),%r12; cmp 0x10(%r14),%r12; jbe rel32 */
	static const uint8_t lea8[] = { 0x4c, 0x8d, 0x64, 0x24, 0x80, 0x4d, 0x3b, 0x66, 0x10,
					0x0f, 0x86, 1, 0, 0, 0, 0x90 };
	cr_assert_eq(sp_go_stack_check_len(lea8, sizeof(lea8)), 15);
	/* lea -0xa8(%rsp),%r12 (disp32): 18 bytes, more than 16 */
	static const uint8_t lea32[] = { 0x4c, 0x8d, 0xa4, 0x24, 0x58, 0xff, 0xff, 0xff, 0x4d, 0x3b, 0x66, 0x10,
					 0x0f, 0x86, 1, 0, 0, 0, 0x90 };
	cr_assert_eq(sp_go_stack_check_len(lea32, sizeof(lea32)), 18);
	cr_assert_leq(18, SP_GO_CHECK_MAX);
	/* none: a nosplit leaf (add (%rax),%rbx ...), a cmp without its jbe, truncated */
	static const uint8_t leaf[] = { 0x48, 0x03, 0x18, 0x48, 0x89, 0x18, 0xc3 };
	cr_assert_eq(sp_go_stack_check_len(leaf, sizeof(leaf)), 0);
	static const uint8_t nojbe[] = { 0x49, 0x3b, 0x66, 0x10, 0x90, 0x90 };
	cr_assert_eq(sp_go_stack_check_len(nojbe, sizeof(nojbe)), 0);
	cr_assert_eq(sp_go_stack_check_len(small, 8), 0);
}

/* CODE copied to a heap block of exactly its size, so that a read past
 * the function's end is caught (ASan): a function there.  Free it with
 * fn_free. */
static struct sp_func_extent fn_of(const uint8_t *code, size_t n)
{
	uint8_t *p = malloc(n);
	cr_assert_not_null(p);
	memcpy(p, code, n);
	return (struct sp_func_extent){ .start = (uintptr_t)p, .size = n, .go_stack = true };
}

static void fn_free(struct sp_func_extent *fn)
{
	sp_free((void *)fn->start);
}

Test(golang, every_ret_found)
{
	/* cmp 0x10(%r14),%rsp; jbe +9 (to the morestack call);
	 * test %rax,%rax; je +1; ret; ret; call rel32; jmp back to the start */
	static const uint8_t code[] = { 0x49, 0x3b, 0x66, 0x10, 0x76, 0x07, 0x48, 0x85, 0xc0, 0x74, 0x01, 0xc3,
					0xc3, 0xe8, 0, 0, 0, 0, 0xeb, 0xec };
	struct sp_func_extent fn = fn_of(code, sizeof(code));
	struct sp_go_ret *rets;
	const char *why = NULL;
	long n = sp_go_ret_sites("main.f", &fn, &rets, &why);
	cr_assert_eq(n, 2, "%ld (%s)", n, why ? why : "");
	cr_assert(rets[0].site == fn.start + 11 && rets[0].at_ret && rets[0].adj == 0);
	cr_assert(rets[1].site == fn.start + 12 && rets[1].at_ret);
	sp_free(rets);
	fn_free(&fn);
}

Test(golang, epilogue_sites)
{
	/* cmp; jbe; sub $0x18,%rsp; mov %rbp,0x10(%rsp); lea 0x10(%rsp),%rbp;
	 * test; je e2; mov 0x10(%rsp),%rbp; add $0x18,%rsp; ret;
	 * e2: mov 0x10(%rsp),%rbp; add $0x18,%rsp; ret; morestack: call; jmp start */
	static const uint8_t code[] = {
		0x49, 0x3b, 0x66, 0x10, 0x76, 0x2d,                   /* 0: cmp; jbe 0x33 */
		0x48, 0x83, 0xec, 0x18, 0x48, 0x89, 0x6c, 0x24, 0x10, /* 6: sub; mov %rbp,0x10(%rsp) */
		0x48, 0x8d, 0x6c, 0x24, 0x10,                         /* 15: lea */
		0x48, 0x85, 0xc0, 0x74, 0x0a,                         /* 20: test; je 35 */
		0x48, 0x8b, 0x6c, 0x24, 0x10, 0x48, 0x83, 0xc4, 0x18, 0xc3, /* 25: epilogue 1 */
		0x48, 0x8b, 0x6c, 0x24, 0x10, 0x48, 0x83, 0xc4, 0x18, 0xc3, /* 35: epilogue 2 */
		0x90, 0x90, 0x90, 0x90, 0x90, 0x90,                   /* 45 */
		0xe8, 0, 0, 0, 0, 0xeb, 0xc6,                         /* 51: call; jmp 0 */
	};
	struct sp_func_extent fn = fn_of(code, sizeof(code));
	struct sp_go_ret *rets;
	const char *why = NULL;
	long n = sp_go_ret_sites("main.e", &fn, &rets, &why);
	cr_assert_eq(n, 2, "%ld (%s)", n, why ? why : "");
	cr_assert(rets[0].site == fn.start + 25 && !rets[0].at_ret && rets[0].adj == 0x18,
		  "epilogue 1: the mov, rsp + 0x18 at the RET");
	cr_assert(rets[1].site == fn.start + 35 && !rets[1].at_ret && rets[1].adj == 0x18);
	sp_free(rets);
	/* a jump to an epilogue's add: that return would skip the mov, so
	 * its RET is the site */
	((uint8_t *)fn.start)[24] = 0x0f;   /* je 35 becomes je 40 */
	n = sp_go_ret_sites("main.e", &fn, &rets, &why);
	cr_assert_eq(n, 2, "%ld (%s)", n, why ? why : "");
	cr_assert(rets[0].site == fn.start + 25 && !rets[0].at_ret);
	cr_assert(rets[1].site == fn.start + 44 && rets[1].at_ret && rets[1].adj == 0);
	sp_free(rets);
	fn_free(&fn);
}

Test(golang, refusals)
{
	struct sp_go_ret *rets;
	const char *why;
	/* a tail jmp out of the function */
	static const uint8_t tail[] = { 0x48, 0x85, 0xc0, 0x74, 0x01, 0xc3, 0xe9, 0x00, 0x10, 0x00, 0x00 };
	struct sp_func_extent fn = fn_of(tail, sizeof(tail));
	cr_assert_eq(sp_go_ret_sites("main.g", &fn, &rets, &why), -1);
	cr_assert(strstr(why, "leaves the Go function"), "%s", why);
	/* an indirect jmp */
	static const uint8_t ind[] = { 0xff, 0xe0, 0xc3 };
	fn_free(&fn);
	fn = fn_of(ind, sizeof(ind));
	cr_assert_eq(sp_go_ret_sites("main.h", &fn, &rets, &why), -1);
	cr_assert(strstr(why, "indirect jump"), "%s", why);
	/* never returns */
	static const uint8_t loop[] = { 0x90, 0xeb, 0xfd };
	fn_free(&fn);
	fn = fn_of(loop, sizeof(loop));
	cr_assert_eq(sp_go_ret_sites("main.loop", &fn, &rets, &why), -1);
	cr_assert(strstr(why, "no RET"), "%s", why);
	/* assembly (ABI0): the goroutine is not in r14 */
	static const uint8_t ret[] = { 0xc3 };
	fn_free(&fn);
	fn = fn_of(ret, sizeof(ret));
	cr_assert_eq(sp_go_ret_sites("runtime.memeqbody.abi0", &fn, &rets, &why), -1);
	cr_assert(strstr(why, "ABI0"), "%s", why);
	fn_free(&fn);
}

/* ---- jump tables (Go 1.19's switches) ---- */

/* CODE (N bytes) in a heap block followed by its jump table: the COUNT
 * absolute entries start + AT[i] (where Go's tables are, relocated in a
 * PIE), addressed by the lea T(%rip),%rcx (48 8d 0d disp32) at LEA. */
static struct sp_func_extent fn_with_table(const uint8_t *code, size_t n, size_t lea, const size_t *at,
					   size_t count)
{
	size_t tab = (n + 7) & ~(size_t)7;
	uint8_t *p = malloc(tab + 8 * count);
	cr_assert_not_null(p);
	memcpy(p, code, n);
	cr_assert(memcmp(p + lea, "\x48\x8d\x0d", 3) == 0, "the lea at %zu", lea);
	int32_t disp = (int32_t)(tab - (lea + 7));
	memcpy(p + lea + 3, &disp, 4);
	for (size_t i = 0; i < count; i++) {
		uint64_t e = (uintptr_t)p + at[i];
		memcpy(p + tab + 8 * i, &e, 8);
	}
	return (struct sp_func_extent){ .start = (uintptr_t)p, .size = n, .go_stack = true };
}

/* main.Pick of tests/go/sp_go's kind, as go1.19 builds it: a nosplit leaf
 * switch of 9 cases, cmp $8,%rax; ja; lea main.Pick.jump3(%rip),%rcx;
 * jmp *(%rcx,%rax,8); each case mov $v,%eax; ret */
static const uint8_t go_pick[] = {
	0x48, 0x83, 0xf8, 0x08, 0x77, 0x41,             /* 0: cmp $8,%rax; ja 0x47 */
	0x48, 0x8d, 0x0d, 0, 0, 0, 0, 0xff, 0x24, 0xc1, /* 6: lea T(%rip),%rcx; jmp *(%rcx,%rax,8) */
	0xb8, 0x0b, 0, 0, 0, 0xc3, 0xb8, 0x17, 0, 0, 0, 0xc3, 0xb8, 0x25, 0, 0, 0, 0xc3, /* 0x10 */
	0xb8, 0x29, 0, 0, 0, 0xc3, 0xb8, 0x3b, 0, 0, 0, 0xc3, 0xb8, 0x3d, 0, 0, 0, 0xc3, /* 0x22 */
	0xb8, 0x49, 0, 0, 0, 0xc3, 0xb8, 0x59, 0, 0, 0, 0x90, 0xc3,                       /* 0x34 */
	0xb8, 0x61, 0, 0, 0, 0xc3,                                                         /* 0x41 */
	0x48, 0xc7, 0xc0, 0xff, 0xff, 0xff, 0xff, 0xc3,                                   /* 0x47 */
};
static const size_t go_pick_cases[] = { 0x10, 0x16, 0x1c, 0x22, 0x28, 0x2e, 0x34, 0x3a, 0x41 };

Test(golang, go_jump_table_read)
{
	struct sp_func_extent fn = fn_with_table(go_pick, sizeof(go_pick), 6, go_pick_cases, 9);
	struct sp_go_ret *rets;
	const char *why = NULL;
	long n = sp_go_ret_sites("main.Pick", &fn, &rets, &why);
	cr_assert_eq(n, 10, "%ld (%s)", n, why ? why : "");
	static const size_t ret_at[] = { 0x15, 0x1b, 0x21, 0x27, 0x2d, 0x33, 0x39, 0x40, 0x46, 0x4e };
	for (int i = 0; i < 10; i++)
		cr_assert(rets[i].site == fn.start + ret_at[i] && rets[i].at_ret, "RET %d", i);
	sp_free(rets);
	fn_free(&fn);
}

/* main.Pick's CODE with the table CASES (9 entries) is refused, the
 * reason holding WANT. */
static void pick_refused(const uint8_t *code, const size_t *cases, const char *want)
{
	struct sp_go_ret *rets;
	const char *why = NULL;
	struct sp_func_extent fn = fn_with_table(code, sizeof(go_pick), 6, cases, 9);
	cr_assert_eq(sp_go_ret_sites("main.Pick", &fn, &rets, &why), -1);
	cr_assert(strstr(why, want), "%s (wanted: %s)", why, want);
	fn_free(&fn);
}

Test(golang, go_jump_table_refused)
{
	/* an entry outside the function, or inside an instruction */
	size_t out[9], mid[9];
	memcpy(out, go_pick_cases, sizeof(out));
	memcpy(mid, go_pick_cases, sizeof(mid));
	out[4] = sizeof(go_pick) + 8;
	mid[4] = 0x29;
	pick_refused(go_pick, out, "outside the function or inside an instruction");
	pick_refused(go_pick, mid, "outside the function or inside an instruction");
	/* no bound: the cmp/ja made nops */
	uint8_t nobound[sizeof(go_pick)];
	memcpy(nobound, go_pick, sizeof(nobound));
	memset(nobound, 0x90, 6);
	pick_refused(nobound, go_pick_cases, "bound is not established");
	/* a branch to the ja: it would arrive with other flags (the bound
	 * starts at the cmp); the cmp's nops become jmp +0 (eb 00) onto it */
	uint8_t toja[sizeof(go_pick)];
	memcpy(toja, go_pick, sizeof(toja));
	memcpy(toja, "\x90\x90\xeb\x00", 4);
	pick_refused(toja, go_pick_cases, "bound is not established");
	/* the table's register set before a branch target: another path may
	 * bring another value (lea; jmp +0 to the jmp *) */
	static const uint8_t hoisted[] = { 0x48, 0x83, 0xf8, 0x01, 0x77, 0x0c, 0x48, 0x8d, 0x0d, 0, 0, 0, 0,
					   0xeb, 0x00, 0xff, 0x24, 0xc1, 0xc3 };
	static const size_t hoisted_cases[] = { 0x12, 0x12 };
	struct sp_go_ret *rets;
	const char *why = NULL;
	struct sp_func_extent fn = fn_with_table(hoisted, sizeof(hoisted), 6, hoisted_cases, 2);
	cr_assert_eq(sp_go_ret_sites("main.h", &fn, &rets, &why), -1);
	cr_assert(strstr(why, "not a jump table read here"), "%s", why);
	fn_free(&fn);
}

/* A function with a frame: cmp 0x10(%r14),%rsp; jbe; sub; mov %rbp; lea;
 * cmp $1,%rax; ja 51; lea T(%rip),%rcx; jmp *(%rcx,%rax,8);
 * 36: mov $1,%eax; 41: epilogue 1 (mov 0x10(%rsp),%rbp; add $0x18,%rsp;
 * ret); 51: epilogue 2; 61: call morestack; jmp 0 */
static const uint8_t go_framed[] = {
	0x49, 0x3b, 0x66, 0x10, 0x76, 0x37,                   /* 0 */
	0x48, 0x83, 0xec, 0x18, 0x48, 0x89, 0x6c, 0x24, 0x10, /* 6 */
	0x48, 0x8d, 0x6c, 0x24, 0x10,                         /* 15 */
	0x48, 0x83, 0xf8, 0x01, 0x77, 0x19,                   /* 20: cmp $1,%rax; ja 51 */
	0x48, 0x8d, 0x0d, 0, 0, 0, 0, 0xff, 0x24, 0xc1,       /* 26: lea; jmp * */
	0xb8, 0x01, 0, 0, 0,                                  /* 36 */
	0x48, 0x8b, 0x6c, 0x24, 0x10, 0x48, 0x83, 0xc4, 0x18, 0xc3, /* 41 */
	0x48, 0x8b, 0x6c, 0x24, 0x10, 0x48, 0x83, 0xc4, 0x18, 0xc3, /* 51 */
	0xe8, 0, 0, 0, 0, 0xeb, 0xbc,                         /* 61 */
};

Test(golang, go_jump_table_entries_are_targets)
{
	struct sp_go_ret *rets;
	const char *why = NULL;
	static const size_t cases[] = { 36, 51 };
	struct sp_func_extent fn = fn_with_table(go_framed, sizeof(go_framed), 26, cases, 2);
	long n = sp_go_ret_sites("main.f", &fn, &rets, &why);
	cr_assert_eq(n, 2, "%ld (%s)", n, why ? why : "");
	cr_assert(rets[0].site == fn.start + 41 && !rets[0].at_ret && rets[0].adj == 0x18);
	cr_assert(rets[1].site == fn.start + 51 && !rets[1].at_ret, "an entry on the mov: the window's start");
	sp_free(rets);
	fn_free(&fn);
	/* an entry on epilogue 1's add: that return skips the mov, its RET is the site */
	static const size_t to_add[] = { 46, 51 };
	fn = fn_with_table(go_framed, sizeof(go_framed), 26, to_add, 2);
	n = sp_go_ret_sites("main.f", &fn, &rets, &why);
	cr_assert_eq(n, 2, "%ld (%s)", n, why ? why : "");
	cr_assert(rets[0].site == fn.start + 50 && rets[0].at_ret && rets[0].adj == 0);
	cr_assert(rets[1].site == fn.start + 51 && !rets[1].at_ret);
	sp_free(rets);
	fn_free(&fn);
	/* an entry on the table's own ja: the bound found before no longer holds */
	static const size_t to_ja[] = { 36, 24 };
	fn = fn_with_table(go_framed, sizeof(go_framed), 26, to_ja, 2);
	cr_assert_eq(sp_go_ret_sites("main.f", &fn, &rets, &why), -1);
	cr_assert(strstr(why, "entered by another table's entry"), "%s", why);
	fn_free(&fn);
}

Test(golang, runtime_functions_refused)
{
	/* a path that is not Go: only the name rules apply (no cgo question) */
	cr_assert_not_null(sp_go_refusal("/nonexistent", "runtime.goexit.abi0", false, NULL));
	cr_assert_not_null(sp_go_refusal("/nonexistent", "runtime.morestack_noctxt.abi0", false, NULL));
	cr_assert_not_null(sp_go_refusal("/nonexistent", "runtime.sigtramp.abi0", false, NULL));
	cr_assert_null(sp_go_refusal("/nonexistent", "runtime.mallocgc", false, NULL));
	cr_assert_null(sp_go_refusal("/nonexistent", "runtime.exitsyscall", false, NULL), "a prefix is not the name");
	cr_assert_null(sp_go_refusal("/nonexistent", "main.main", false, NULL));
}

Test(golang, register_abi)
{
	struct selfprobe_regs r = { .rax = 1, .rbx = 2, .rcx = 3, .rdi = 4, .rsi = 5, .r8 = 6, .r9 = 7,
				    .r10 = 8, .r11 = 9, .rdx = 99 };
	for (int i = 0; i < 9; i++)
		cr_assert_eq(sp_go_arg(&r, i), (uint64_t)i + 1);
	cr_assert_eq(sp_go_arg(&r, 9), 0);
}

Test(golang, objects)
{
	cr_assert(!sp_go_object("/proc/self/exe"), "this test is C");
	cr_assert(!sp_go_object("/nonexistent"));
}

/* ---- each thread's stack for the C calls from Go sites ---- */

/* The trampoline's entry (golang_stack.S) takes FN's arguments in rdi and
 * rsi and FN in rdx: a C call of three arguments, as a trampoline makes it. */
int go_tramp_call(void *a, void *b, int (*fn)(void *, void *)) __asm__("sp_go_tramp_call");
extern __thread uintptr_t sp_go_stack_base;

static int on_go_stack(void *a, void *b)
{
	uintptr_t here = (uintptr_t)__builtin_frame_address(0);
	*(uintptr_t *)a = here;
	(void)b;
	return 7;
}

static void *go_thread(void *arg)
{
	uintptr_t *got = arg;   /* [0]: a frame of FN's, [1]: the stack's base, [2]: its stripe */
	got[2] = (uintptr_t)sp_tstate_claim();   /* as a Go thread's first hit does: its key
						  * destructor runs at its end */
	cr_assert_eq(go_tramp_call(&got[0], NULL, on_go_stack), 7);
	got[1] = sp_go_stack_base;
	return NULL;
}

static void claim_only(void)
{
	sp_tstate_claim();
}

/* BEYOND: the thread is beyond the 128th, on the shared stripe. */
static void go_stack_goes(int beyond)
{
	cr_assert_eq(sp_tstate_init(), 0);
	struct stripes_fill fill;
	if (beyond)
		cr_assert(stripes_fill(&fill, claim_only, false), "%d threads did not take every exclusive stripe", fill.n);
	for (int round = 0; round < 3; round++) {
		uintptr_t got[3] = { 0, 0, 0 };
		pthread_t t;
		cr_assert_eq(pthread_create(&t, NULL, go_thread, got), 0);
		pthread_join(t, NULL);
		/* FN ran on the thread's stack for Go sites, mapped at its first call */
		cr_assert(got[1] != 0);
		cr_assert(got[0] > got[1] && got[0] < got[1] + SP_GO_STACK_SIZE, "FN's frame %#lx, stack %#lx",
			  (unsigned long)got[0], (unsigned long)got[1]);
		/* the thread has ended: its stack is unmapped (it stayed before) */
		errno = 0;
		cr_assert_eq(msync((void *)got[1], 4096, MS_ASYNC), -1, "round %d: the stack is still mapped",
			     round);
		cr_assert_eq(errno, ENOMEM);
		cr_assert(beyond ? got[2] == SP_SHARED_SLOT : got[2] < SP_EXCL_SLOTS, "stripe %lu",
			  (unsigned long)got[2]);
	}
	if (beyond)
		stripes_unfill(&fill);
}

Test(golang, a_threads_stack_for_go_sites_goes_with_it) { go_stack_goes(0); }
Test(golang, a_threads_stack_for_go_sites_goes_with_it_beyond_the_128th) { go_stack_goes(1); }
