/* Tests for reloc: every rewrite byte for byte (frida-gum style: expected
 * bytes with their disassembly), then real functions' windows relocated
 * into a buffer near this binary (rel32 forms) and one more than 4 GiB away
 * (absolute forms), run there, and compared with the originals. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "reloc.h"
#include "asm_fn.h"

/* ---------------------------------------------------------------------- */
/* Byte-exact rewrites, at made-up addresses                              */
/* ---------------------------------------------------------------------- */

#define SITE 0x401000ull
#define NEAR 0x402000ull            /* dest in reach of SITE */
#define FAR  0x7f0000001000ull      /* dest out of reach */

static struct sp_window w;
static struct sp_reloc_map map;
static uint8_t out[SP_RELOC_MAX];
static const char *reason;

/* A window from BYTES decoded at AT, as the planner would make it. */
static void window_of(uint64_t at, const uint8_t *bytes, size_t n)
{
	memset(&w, 0, sizeof(w));
	w.site = at;
	for (size_t off = 0; off < n; ) {
		struct sp_insn *in = &w.insns[w.n_insns++];
		cr_assert_eq(sp_insn_decode(bytes + off, n - off, at + off, in), 0,
			     "test bytes at +%zu do not decode", off);
		off += in->len;
		w.len += in->len;
	}
	enum sp_insn_class last = w.insns[w.n_insns - 1].cls;
	w.flow_ends = last == SP_INSN_RET || last == SP_INSN_JMP_REL;
}

static void hex(const uint8_t *b, size_t n, char *s)
{
	*s = '\0';
	for (size_t i = 0; i < n; i++)
		s += sprintf(s, "%02x ", b[i]);
}

/* Relocate to DEST and compare with WANT; on mismatch both are printed. */
static void expect_bytes(uint64_t dest, const uint8_t *want, size_t n)
{
	reason = NULL;
	memset(out, 0xaa, sizeof(out));
	int rc = sp_reloc_window(&w, dest, out, sizeof(out), &map, &reason);
	cr_assert_geq(rc, 0, "relocation failed: %d (%s)", rc, reason ? reason : "");
	char got_s[3 * SP_RELOC_MAX + 1], want_s[3 * SP_RELOC_MAX + 1];
	hex(out, (size_t)rc, got_s);
	hex(want, n, want_s);
	cr_expect_str_eq(got_s, want_s);
	cr_expect_eq(map.n, w.n_insns);
	for (int i = 0; i < map.n; i++)
		cr_expect_eq(map.orig_off[i], w.insns[i].addr - w.site);
}

static void expect_map(const uint16_t *new_off)
{
	for (int i = 0; i < map.n; i++)
		cr_expect_eq(map.new_off[i], new_off[i], "insn %d: new_off %u, want %u",
			     i, map.new_off[i], new_off[i]);
}

#define BYTES(...) (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ })
#define OFFS(...) ((const uint16_t[]){ __VA_ARGS__ })

Test(reloc_bytes, plain_copy_and_jump_back)
{
	window_of(SITE, BYTES(0x55,                       /* push %rbp */
			      0x48, 0x89, 0xe5,           /* mov %rsp,%rbp */
			      0x48, 0x83, 0xec, 0x10));   /* sub $0x10,%rsp */
	expect_bytes(NEAR, BYTES(
		0x55,
		0x48, 0x89, 0xe5,
		0x48, 0x83, 0xec, 0x10,
		0xe9, 0xfb, 0xef, 0xff, 0xff));           /* jmp 0x401008 */
	expect_map(OFFS(0, 1, 4));
	expect_bytes(FAR, BYTES(
		0x55,
		0x48, 0x89, 0xe5,
		0x48, 0x83, 0xec, 0x10,
		0xff, 0x25, 0x00, 0x00, 0x00, 0x00,       /* jmp *0(%rip) */
		0x08, 0x10, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00)); /* .quad 0x401008 */
	expect_map(OFFS(0, 1, 4));
}

Test(reloc_bytes, nop5)
{
	window_of(SITE, BYTES(0x0f, 0x1f, 0x44, 0x00, 0x00));   /* nopl 0(%rax,%rax,1) */
	expect_bytes(NEAR, BYTES(
		0x0f, 0x1f, 0x44, 0x00, 0x00,
		0xe9, 0xfb, 0xef, 0xff, 0xff));           /* jmp 0x401005 */
}

Test(reloc_bytes, jmp_rel8)
{
	window_of(SITE, BYTES(0x31, 0xc0,                 /* xor %eax,%eax */
			      0x01, 0xf8,                 /* add %edi,%eax */
			      0xeb, 0x10));               /* jmp 0x401016 */
	cr_assert(w.flow_ends);
	expect_bytes(NEAR, BYTES(
		0x31, 0xc0,
		0x01, 0xf8,
		0xe9, 0x0d, 0xf0, 0xff, 0xff));           /* jmp 0x401016; no jump back */
	expect_map(OFFS(0, 2, 4));
	expect_bytes(FAR, BYTES(
		0x31, 0xc0,
		0x01, 0xf8,
		0xff, 0x25, 0x00, 0x00, 0x00, 0x00,       /* jmp *0(%rip) */
		0x16, 0x10, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00));
}

Test(reloc_bytes, jmp_rel32)
{
	window_of(SITE, BYTES(0xe9, 0x00, 0x01, 0x00, 0x00));   /* jmp 0x401105 */
	expect_bytes(NEAR, BYTES(0xe9, 0x00, 0xf1, 0xff, 0xff)); /* jmp 0x401105 */
	/* backwards, from a dest below the site */
	expect_bytes(SITE - 0x100, BYTES(0xe9, 0x00, 0x02, 0x00, 0x00));
}

Test(reloc_bytes, jcc_rel8)
{
	window_of(SITE, BYTES(0x85, 0xff,                 /* test %edi,%edi */
			      0x74, 0x20,                 /* je 0x401024 */
			      0x89, 0xf8));               /* mov %edi,%eax */
	cr_assert(!w.flow_ends);
	expect_bytes(NEAR, BYTES(
		0x85, 0xff,
		0x0f, 0x84, 0x1c, 0xf0, 0xff, 0xff,       /* je 0x401024 */
		0x89, 0xf8,
		0xe9, 0xf7, 0xef, 0xff, 0xff));           /* jmp 0x401006 */
	expect_map(OFFS(0, 2, 8));
	expect_bytes(FAR, BYTES(
		0x85, 0xff,
		0x75, 0x0e,                               /* jne .+16 (over the far jmp) */
		0xff, 0x25, 0x00, 0x00, 0x00, 0x00,       /* jmp *0(%rip) */
		0x24, 0x10, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00,   /* .quad 0x401024 */
		0x89, 0xf8,
		0xff, 0x25, 0x00, 0x00, 0x00, 0x00,
		0x06, 0x10, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00)); /* .quad 0x401006 */
	expect_map(OFFS(0, 2, 18));
}

Test(reloc_bytes, jcc_rel32)
{
	window_of(SITE, BYTES(0x0f, 0x8f, 0x00, 0x01, 0x00, 0x00));   /* jg 0x401106 */
	expect_bytes(NEAR, BYTES(
		0x0f, 0x8f, 0x00, 0xf1, 0xff, 0xff,       /* jg 0x401106 */
		0xe9, 0xfb, 0xef, 0xff, 0xff));           /* jmp 0x401006 */
}

/* Out of reach, every condition is inverted by its low bit: jo↔jno … jle↔jg. */
Test(reloc_bytes, jcc_inversion_all_conditions)
{
	for (uint8_t cc = 0; cc < 16; cc++) {
		uint8_t jcc[2] = { (uint8_t)(0x70 | cc), 0x40 };
		window_of(SITE, jcc, 2);
		memset(out, 0, sizeof(out));
		int rc = sp_reloc_window(&w, FAR, out, sizeof(out), &map, &reason);
		cr_assert_eq(rc, 2 + 14 + 14);
		cr_expect_eq(out[0], 0x70 | (cc ^ 1), "cc %x: %02x", cc, out[0]);
		cr_expect_eq(out[1], 14);
		uint64_t target;
		memcpy(&target, out + 8, 8);
		cr_expect_eq(target, SITE + 2 + 0x40);
	}
}

Test(reloc_bytes, call_pushes_original_return)
{
	window_of(SITE, BYTES(0x53,                       /* push %rbx */
			      0xe8, 0x00, 0x01, 0x00, 0x00));   /* call 0x401106 */
	expect_bytes(NEAR, BYTES(
		0x53,
		0x48, 0x8d, 0x64, 0x24, 0xf8,             /* lea -8(%rsp),%rsp */
		0xc7, 0x04, 0x24, 0x06, 0x10, 0x40, 0x00, /* movl $0x401006,(%rsp) */
		0xc7, 0x44, 0x24, 0x04, 0x00, 0x00, 0x00, 0x00, /* movl $0,4(%rsp) */
		0xe9, 0xec, 0xf0, 0xff, 0xff));           /* jmp 0x401106; the return is the way back */
	expect_map(OFFS(0, 1));
	expect_bytes(FAR, BYTES(
		0x53,
		0x48, 0x8d, 0x64, 0x24, 0xf8,
		0xc7, 0x04, 0x24, 0x06, 0x10, 0x40, 0x00,
		0xc7, 0x44, 0x24, 0x04, 0x00, 0x00, 0x00, 0x00,
		0xff, 0x25, 0x00, 0x00, 0x00, 0x00,       /* jmp *0(%rip) */
		0x06, 0x11, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00)); /* .quad 0x401106 */
}

Test(reloc_bytes, call_high_address)
{
	const uint64_t site = 0x7f1234560000ull;
	window_of(site, BYTES(0xe8, 0x00, 0x00, 0x00, 0x00));   /* call site+5 */
	expect_bytes(site + 0x1000, BYTES(
		0x48, 0x8d, 0x64, 0x24, 0xf8,             /* lea -8(%rsp),%rsp */
		0xc7, 0x04, 0x24, 0x05, 0x00, 0x56, 0x34, /* movl $0x34560005,(%rsp) */
		0xc7, 0x44, 0x24, 0x04, 0x12, 0x7f, 0x00, 0x00, /* movl $0x7f12,4(%rsp) */
		0xe9, 0xec, 0xef, 0xff, 0xff));           /* jmp site+5 */
}

Test(reloc_bytes, rip_relative)
{
	window_of(SITE, BYTES(0x48, 0x8b, 0x05, 0x10, 0x00, 0x00, 0x00)); /* mov 0x401017(%rip),%rax */
	expect_bytes(NEAR, BYTES(
		0x48, 0x8b, 0x05, 0x10, 0xf0, 0xff, 0xff, /* mov 0x401017(%rip),%rax */
		0xe9, 0xfb, 0xef, 0xff, 0xff));           /* jmp 0x401007 */
	reason = NULL;
	int rc = sp_reloc_window(&w, FAR, out, sizeof(out), &map, &reason);
	cr_expect_eq(rc, -ERANGE);
	cr_assert_not_null(reason);
	cr_expect_str_eq(reason, "RIP-relative operand out of reach of the trampoline");
}

Test(reloc_bytes, ret_ends_the_flow)
{
	window_of(SITE, BYTES(0x89, 0xf8,                 /* mov %edi,%eax */
			      0xc3));                     /* ret */
	cr_assert(w.flow_ends);
	expect_bytes(FAR, BYTES(0x89, 0xf8, 0xc3));
	window_of(SITE, BYTES(0xc2, 0x08, 0x00));         /* ret $8 */
	expect_bytes(NEAR, BYTES(0xc2, 0x08, 0x00));
}

static void expect_refused(const char *keyword)
{
	reason = NULL;
	int rc = sp_reloc_window(&w, NEAR, out, sizeof(out), &map, &reason);
	cr_expect_eq(rc, -ENOTSUP, "rc %d", rc);
	cr_assert_not_null(reason);
	cr_expect(strstr(reason, keyword) != NULL, "reason '%s' lacks '%s'", reason, keyword);
}

Test(reloc_bytes, refusals)
{
	window_of(SITE, BYTES(0xe3, 0x10, 0x90, 0x90, 0x90));   /* jrcxz; nop x3 */
	expect_refused("jrcxz");
	window_of(SITE, BYTES(0xe2, 0x10, 0x90, 0x90, 0x90));   /* loop */
	expect_refused("loop");
	window_of(SITE, BYTES(0xff, 0xd0, 0x90, 0x90, 0x90));   /* call *%rax */
	expect_refused("indirect call");
	window_of(SITE, BYTES(0x0f, 0x0b, 0x90, 0x90, 0x90));   /* ud2 */
	expect_refused("ud2");
	/* only a synthetic window can hold a call that is not last */
	window_of(SITE, BYTES(0xe8, 0x00, 0x00, 0x00, 0x00, 0x90));
	expect_refused("call inside the jmp window");
}

/* Every buffer shorter than the output fails cleanly; the exact size works. */
Test(reloc_bytes, buffer_too_small)
{
	window_of(SITE, BYTES(0x85, 0xff, 0x74, 0x20, 0x48, 0x8b, 0x05, 0x10, 0x00, 0x00, 0x00));
	int need = sp_reloc_window(&w, SITE + 0x7fff0000ull, out, sizeof(out), &map, &reason);
	cr_assert_gt(need, 0);
	for (int n = 0; n < need; n++) {
		reason = NULL;
		cr_expect_eq(sp_reloc_window(&w, SITE + 0x7fff0000ull, out, (size_t)n, &map, &reason),
			     -ENOBUFS, "buflen %d", n);
		cr_expect_not_null(reason);
	}
	cr_expect_eq(sp_reloc_window(&w, SITE + 0x7fff0000ull, out, (size_t)need, &map, &reason), need);
}

/* The worst case fits SP_RELOC_MAX: five jcc rel8 out of reach. */
Test(reloc_bytes, worst_case_fits)
{
	window_of(SITE, BYTES(0x74, 0x10, 0x75, 0x10, 0x76, 0x10, 0x77, 0x10, 0x78, 0x10));
	int rc = sp_reloc_window(&w, FAR, out, sizeof(out), &map, &reason);
	cr_expect_eq(rc, 4 * 16 + 16 + 14);
	cr_expect_leq(rc, SP_RELOC_MAX);
}

/* ---------------------------------------------------------------------- */
/* Relocated windows of real functions, executed                          */
/* ---------------------------------------------------------------------- */


__asm__(
	".pushsection .data\n"
	".globl rt_global\n .hidden rt_global\n"
	"rt_global: .long 0x1234\n"
	".globl rt_seen_ret\n .hidden rt_seen_ret\n"
	"rt_seen_ret: .quad 0\n"
	".popsection\n"
	".pushsection .text\n"
	/* 3x + 1; window: push; mov; lea (8 bytes) */
	FN(rt_prologue)
	"	push %rbp\n"
	"	mov %rsp,%rbp\n"
	"	lea 1(%rdi,%rdi,2),%eax\n"
	"	pop %rbp\n"
	"	ret\n"
	END(rt_prologue)
	/* rt_global + x; window: the RIP-relative load */
	FN(rt_rip)
	"	mov rt_global(%rip),%eax\n"
	"	add %edi,%eax\n"
	"	ret\n"
	END(rt_rip)
	/* x == 0 ? 100 : x + 7; window: test; je; lea */
	FN(rt_jcc)
	"	test %edi,%edi\n"
	"	je 1f\n"
	"	lea 7(%rdi),%eax\n"
	"	ret\n"
	"1:	mov $100,%eax\n"
	"	ret\n"
	END(rt_jcc)
	/* x + 2 + 5; window: lea; jmp rel8 (flow ends) */
	FN(rt_jmp8)
	"	lea 2(%rdi),%eax\n"
	"	jmp 1f\n"
	"	int3\n int3\n int3\n int3\n"
	"1:	add $5,%eax\n"
	"	ret\n"
	END(rt_jmp8)
	/* 2x + 100; window: push; call (last) */
	FN(rt_call)
	"	push %rbx\n"
	"	call rt_helper\n"
	".globl rt_call_ret\n .hidden rt_call_ret\n"
	"rt_call_ret:\n"
	"	pop %rbx\n"
	"	add $100,%eax\n"
	"	ret\n"
	END(rt_call)
	/* records its return address, returns 2x */
	FN(rt_helper)
	"	mov (%rsp),%rax\n"
	"	mov %rax,rt_seen_ret(%rip)\n"
	"	lea (%rdi,%rdi),%eax\n"
	"	ret\n"
	END(rt_helper)
	/* x + 7; window: nop5 */
	FN(rt_nop5)
	"	.byte 0x0f,0x1f,0x44,0,0\n"     /* nopl 0(%rax,%rax,1) */
	"	lea 7(%rdi),%eax\n"
	"	ret\n"
	END(rt_nop5)
	/* x; window: mov; ret, and int3 padding */
	FN(rt_ret)
	"	mov %edi,%eax\n"
	"	ret\n"
	END(rt_ret)
	".p2align 4, 0xcc\n"
	".globl rt_text_end\n .hidden rt_text_end\n"
	"rt_text_end:\n"
	".popsection\n");

#define DECL(name) extern const uint8_t name[], name##_end[]
DECL(rt_prologue); DECL(rt_rip); DECL(rt_jcc); DECL(rt_jmp8); DECL(rt_call); DECL(rt_nop5);
DECL(rt_ret);
extern const uint8_t rt_call_ret[], rt_text_end[];
extern uint64_t rt_seen_ret;

typedef int (*fn_t)(int);

#define PAGE 4096
static uint8_t *near_buf, *far_buf;

static intptr_t distance(const void *a, const void *b)
{
	return (intptr_t)((uintptr_t)a - (uintptr_t)b);
}

static void *map_at(uintptr_t hint)
{
	void *p = mmap((void *)hint, PAGE, PROT_READ | PROT_WRITE | PROT_EXEC,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* One RWX page within rel32 reach of this text but at least 64 MiB away
 * (so every displacement changes), one more than 4 GiB away. */
static void map_buffers(void)
{
	uintptr_t text = (uintptr_t)rt_prologue & ~(uintptr_t)(PAGE - 1);
	for (long k = 1; k < 24 && !near_buf; k++) {
		near_buf = map_at(text + (uintptr_t)(k * (64l << 20)));
		if (!near_buf)
			near_buf = map_at(text - (uintptr_t)(k * (64l << 20)));
	}
	cr_assert_not_null(near_buf, "no page near %#lx", (unsigned long)text);
	intptr_t d = distance(near_buf, rt_prologue);
	cr_assert(d > -(1l << 31) + (1l << 24) && d < (1l << 31) - (1l << 24),
		  "near buffer %p is not near %p", (void *)near_buf, (void *)rt_prologue);

	/* far: the other half of the user address space */
	uintptr_t far_hints[] = { 0x7e0000000000ull, 0x100000000000ull, 0x300000000000ull };
	for (size_t i = 0; i < sizeof(far_hints) / sizeof(*far_hints) && !far_buf; i++) {
		intptr_t fd = distance((void *)far_hints[i], rt_prologue);
		if (fd > (4l << 30) || fd < -(4l << 30))
			far_buf = map_at(far_hints[i]);
	}
	cr_assert_not_null(far_buf, "no page far from %#lx", (unsigned long)text);
	d = distance(far_buf, rt_prologue);
	cr_assert(d > (4l << 30) || d < -(4l << 30), "far buffer %p is within 4 GiB", (void *)far_buf);
}

static void unmap_buffers(void)
{
	if (near_buf)
		munmap(near_buf, PAGE);
	if (far_buf)
		munmap(far_buf, PAGE);
	near_buf = far_buf = NULL;
}

/* Plan FN's entry and relocate its window into BUF + 0x100. */
static fn_t relocate(const uint8_t *fn, const uint8_t *end, uint8_t *buf)
{
	reason = NULL;
	int rc = sp_jmp_plan((uintptr_t)fn, (size_t)(end - fn), (uintptr_t)fn,
			     (size_t)(rt_text_end - fn), (uintptr_t)rt_text_end, &w, &reason);
	cr_assert_eq(rc, 0, "plan: %s", reason ? reason : "");
	uint8_t *at = buf + 0x100;
	memset(buf, 0xcc, PAGE);                     /* stray jumps trap */
	rc = sp_reloc_window(&w, (uintptr_t)at, at, SP_RELOC_MAX, &map, &reason);
	cr_assert_gt(rc, 0, "reloc: %d (%s)", rc, reason ? reason : "");
	cr_assert_eq(map.n, w.n_insns);
	for (int i = 0; i < map.n; i++) {
		cr_expect_eq(map.orig_off[i], w.insns[i].addr - w.site);
		if (i > 0)
			cr_expect_gt(map.new_off[i], map.new_off[i - 1]);
	}
	cr_expect_eq(map.new_off[0], 0);
	__builtin___clear_cache((char *)at, (char *)at + rc);
	return (fn_t)(void *)at;
}

/* Run the relocated copy of FN (near and far) for each input; same result. */
static void expect_same(const uint8_t *fn, const uint8_t *end, const int *xs, size_t n)
{
	fn_t orig = (fn_t)(const void *)fn;
	uint8_t *bufs[2] = { near_buf, far_buf };
	for (int b = 0; b < 2; b++) {
		fn_t copy = relocate(fn, end, bufs[b]);
		for (size_t i = 0; i < n; i++)
			cr_expect_eq(copy(xs[i]), orig(xs[i]), "%s buffer, x=%d: %d != %d",
				     b ? "far" : "near", xs[i], copy(xs[i]), orig(xs[i]));
	}
}

static const int xs[] = { 0, 1, -1, 12345, 0x7fffffff };
#define SAME(name) expect_same(name, name##_end, xs, sizeof(xs) / sizeof(*xs))

TestSuite(reloc_run, .init = map_buffers, .fini = unmap_buffers, .timeout = 10);

Test(reloc_run, prologue)
{
	SAME(rt_prologue);
	cr_expect_eq(((fn_t)(const void *)rt_prologue)(5), 16);   /* the reference is right */
}

Test(reloc_run, rip_relative)
{
	fn_t copy = relocate(rt_rip, rt_rip_end, near_buf);
	cr_expect_eq(copy(1), 0x1235);
	cr_expect_eq(copy(-0x1234), 0);
	/* far: out of reach, refused */
	int rc = sp_reloc_window(&w, (uintptr_t)far_buf, far_buf, SP_RELOC_MAX, &map, &reason);
	cr_expect_eq(rc, -ERANGE);
}

Test(reloc_run, jcc_taken_and_not)
{
	SAME(rt_jcc);
	cr_expect_eq(((fn_t)(const void *)rt_jcc)(0), 100);
	cr_expect_eq(((fn_t)(const void *)rt_jcc)(3), 10);
}

Test(reloc_run, jmp_rel8)
{
	SAME(rt_jmp8);
	cr_expect(w.flow_ends);
}

Test(reloc_run, call_keeps_original_return_address)
{
	uint8_t *bufs[2] = { near_buf, far_buf };
	for (int b = 0; b < 2; b++) {
		fn_t copy = relocate(rt_call, rt_call_end, bufs[b]);
		rt_seen_ret = 0;
		cr_expect_eq(copy(21), 142, "%s", b ? "far" : "near");
		cr_expect_eq(rt_seen_ret, (uintptr_t)rt_call_ret,
			     "helper saw return address %#lx, want %p",
			     (unsigned long)rt_seen_ret, (void *)rt_call_ret);
	}
}

Test(reloc_run, nop5)
{
	SAME(rt_nop5);
}

Test(reloc_run, ret)
{
	SAME(rt_ret);
	cr_expect(w.flow_ends);
	cr_expect_eq(w.len, 3);
}
