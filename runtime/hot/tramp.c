/* tramp — see tramp.h for the code it generates and why. */
#include "tramp.h"
#include "golang_args.h"
#include "coexist.h"
#include "codemem.h"
#include "dispatch.h"
#include "fastcount.h"
#include "patch.h"
#include "probe.h"
#include "site.h"
#include "sigatomic.h"
#include "tstate.h"
#include "uret.h"

#include <errno.h>
#include <string.h>

/* ---- a tiny emitter ---- */

struct emit {
	uint8_t *buf;
	size_t len, cap;
	int overflow;
};

static void bytes(struct emit *e, const void *p, size_t n)
{
	if (e->len + n > e->cap) {
		e->overflow = 1;
		return;
	}
	memcpy(e->buf + e->len, p, n);
	e->len += n;
}

#define EMIT(e, ...) do { static const uint8_t b_[] = { __VA_ARGS__ }; bytes((e), b_, sizeof(b_)); } while (0)

static void imm64(struct emit *e, uint64_t v) { bytes(e, &v, 8); }
static void imm32(struct emit *e, uint32_t v) { bytes(e, &v, 4); }

/* pop r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi */
static void pop_all(struct emit *e)
{
	EMIT(e, 0x41, 0x5f, 0x41, 0x5e, 0x41, 0x5d, 0x41, 0x5c, 0x5d, 0x5b, 0x41, 0x5b, 0x41, 0x5a,
	     0x41, 0x59, 0x41, 0x58, 0x58, 0x59, 0x5a, 0x5e, 0x5f);
}

/* The rel32 at AT (4 bytes) to jump to TO, both offsets in the code. */
static void patch_rel32(uint8_t *code, size_t at, size_t to)
{
	int32_t rel = (int32_t)((intptr_t)to - (intptr_t)(at + 4));
	memcpy(code + at, &rel, 4);
}

/* ---- the inline count (fastcount.h) ---- */

struct fast_fix {
	size_t arm, start, post;        /* offsets of the sequence's labels */
	size_t jc_at, jclear_at;        /* jmps to the C path, to fill */
	size_t desc_lea_at;             /* the rel32 of lea desc(%rip) */
};

static void fs_disp(struct emit *e, int32_t off) { imm32(e, (uint32_t)off); }

/* jrcxz's rel8 (just emitted opcode) back to TO. */
static void jrcxz_to(struct emit *e, size_t to)
{
	uint8_t rel = (uint8_t)(int8_t)((intptr_t)to - (intptr_t)(e->len + 1));
	bytes(e, &rel, 1);
}

/* The sequence, up to where the relocated window follows; its jmps into
 * the C path are filled by emit_fast_exit, the descriptor's lea by
 * emit_fast_tail. */
static void emit_fast(struct emit *e, const struct sp_site *site, struct fast_fix *fx)
{
	EMIT(e, 0x51, 0x52);                                           /* push %rcx; push %rdx */
	EMIT(e, 0x64, 0x8b, 0x0c, 0x25); fs_disp(e, sp_fastcount.tls_runtime); /* mov %fs:runtime,%ecx */
	EMIT(e, 0xe3, 0x0a);                                           /* jrcxz arm */
	EMIT(e, 0xe9); fx->jc_at = e->len; imm32(e, 0);                /* jmp c_restore: the runtime's call */
	size_t to_clear = e->len;
	EMIT(e, 0xe9); fx->jclear_at = e->len; imm32(e, 0);            /* jmp c_clear (jrcxz's reach) */
	fx->arm = e->len;
	EMIT(e, 0x48, 0x8d, 0x0d); fx->desc_lea_at = e->len; imm32(e, 0); /* lea desc(%rip),%rcx */
	EMIT(e, 0x64, 0x48, 0x89, 0x0c, 0x25); fs_disp(e, sp_fastcount.tls_rseq_cs); /* mov %rcx,%fs:rseq_cs */
	fx->start = e->len;
	EMIT(e, 0x64, 0x48, 0x8b, 0x0c, 0x25); fs_disp(e, sp_fastcount.tls_fast); /* mov %fs:fast,%rcx */
	EMIT(e, 0xe3); jrcxz_to(e, to_clear);                          /* jrcxz → c_clear */
	EMIT(e, 0x48, 0x89, 0xca);                                     /* mov %rcx,%rdx */
	EMIT(e, 0x48, 0xb9); imm64(e, (uintptr_t)&site->fast_off);     /* movabs $&fast_off,%rcx */
	EMIT(e, 0x8b, 0x09);                                           /* mov (%rcx),%ecx */
	EMIT(e, 0xe3); jrcxz_to(e, to_clear);                          /* jrcxz → c_clear */
	EMIT(e, 0x48, 0x8d, 0x0c, 0x0a);                               /* lea (%rdx,%rcx),%rcx */
	EMIT(e, 0x48, 0x8b, 0x11);                                     /* mov (%rcx),%rdx */
	EMIT(e, 0x48, 0x8d, 0x52, 0x01);                               /* lea 1(%rdx),%rdx */
	EMIT(e, 0x48, 0x89, 0x11);                                     /* mov %rdx,(%rcx): commit */
	fx->post = e->len;
	EMIT(e, 0x64, 0x48, 0xc7, 0x04, 0x25); fs_disp(e, sp_fastcount.tls_rseq_cs);
	imm32(e, 0);                                                   /* movq $0,%fs:rseq_cs */
	EMIT(e, 0x5a, 0x59);                                           /* pop %rdx; pop %rcx */
	EMIT(e, 0x48, 0x8d, 0xa4, 0x24, 0x80, 0x00, 0x00, 0x00);       /* lea 0x80(%rsp),%rsp */
	/* the relocated window follows */
}

/* Right after the relocated window: the way from the sequence into the C
 * path, which the caller emits next. */
static void emit_fast_exit(struct emit *e, struct fast_fix *fx)
{
	size_t c_clear = e->len;
	EMIT(e, 0x64, 0x48, 0xc7, 0x04, 0x25); fs_disp(e, sp_fastcount.tls_rseq_cs);
	imm32(e, 0);                                                   /* movq $0,%fs:rseq_cs */
	size_t c_restore = e->len;
	EMIT(e, 0x5a, 0x59);                                           /* pop %rdx; pop %rcx */
	if (e->overflow)
		return;
	patch_rel32(e->buf, fx->jc_at, c_restore);
	patch_rel32(e->buf, fx->jclear_at, c_clear);
}

/* After the slow path's int3: the abort handler with its signature, and
 * the rseq descriptor, 32-byte aligned. */
static void emit_fast_tail(struct emit *e, uintptr_t base, struct fast_fix *fx)
{
	/* the signature before the abort address, as the operand of an
	 * instruction (ud1 sig(%rip),%edi) so that the bytes disassemble */
	EMIT(e, 0x0f, 0xb9, 0x3d); imm32(e, SP_RSEQ_SIG);
	size_t abort_at = e->len;
	EMIT(e, 0xe9); size_t ja = e->len; imm32(e, 0);                /* jmp arm: start over */
	while ((base + e->len) % 32)
		EMIT(e, 0xcc);
	size_t desc = e->len;
	struct {
		uint32_t version, flags;
		uint64_t start_ip, post_commit_offset, abort_ip;
	} d = { 0, 0, base + fx->start, fx->post - fx->start, base + abort_at };
	bytes(e, &d, sizeof(d));
	if (e->overflow)
		return;
	patch_rel32(e->buf, ja, fx->arm);
	patch_rel32(e->buf, fx->desc_lea_at, desc);
}

_Static_assert(offsetof(struct selfprobe_regs, r15) == 0, "regs layout");
_Static_assert(offsetof(struct selfprobe_regs, rdi) == 112, "regs layout");
_Static_assert(offsetof(struct selfprobe_regs, rip) == 0x78, "regs layout");
_Static_assert(offsetof(struct selfprobe_regs, eflags) == 0x80, "regs layout");
_Static_assert(offsetof(struct selfprobe_regs, rsp) == 0x88, "regs layout");

/* ---- the C path: a call to sp_tramp_count or sp_tramp_dispatch ---- */

struct c_fix {
	size_t jfull_at, full_at;       /* the lean/full choice */
	size_t jreloc1_at, jreloc2_at;  /* the lean path's two jmps to reloc */
	size_t jnz_at;                  /* the full path's jnz slow */
	size_t jpopf_at, lean_popf;
};

/* call FN(%rdi, %rsi) (rax, rdx clobbered; both saved or free here); on a
 * Go site through sp_go_tramp_call, which runs it on a stack of the
 * thread's own: a goroutine stack may have under a kilobyte left. */
static void emit_call(struct emit *e, const struct sp_site *site, uintptr_t fn)
{
	if (site->go_stack) {
		EMIT(e, 0x48, 0xba); imm64(e, fn);                     /* movabs $fn,%rdx */
		fn = (uintptr_t)sp_go_tramp_call;
	}
	EMIT(e, 0x48, 0xb8); imm64(e, fn);                             /* movabs $fn,%rax */
	EMIT(e, 0xff, 0xd0);                                           /* call *%rax */
}

/* From "pushfq" (the red zone already left) to the full path's last lea,
 * which falls through: the caller puts the relocated window, or a jmp to
 * it, right after. */
static void emit_c_path(struct emit *e, const struct sp_site *site, struct c_fix *f)
{
	EMIT(e, 0x9c, 0x50);                                           /* pushfq; push %rax */
	EMIT(e, 0x48, 0xb8); imm64(e, (uintptr_t)site);                /* movabs $site_struct,%rax */
	EMIT(e, 0x80, 0xb8); imm32(e, (uint32_t)offsetof(struct sp_site, has_handlers));
	EMIT(e, 0x00);                                                 /* cmpb $0,has_handlers(%rax) */
	EMIT(e, 0x0f, 0x85); f->jfull_at = e->len; imm32(e, 0);        /* jne full */
	/* lean */
	EMIT(e, 0x51, 0x52, 0x56, 0x57,                                /* push rcx rdx rsi rdi */
	     0x41, 0x50, 0x41, 0x51, 0x41, 0x52, 0x41, 0x53);          /* push r8 r9 r10 r11 */
	EMIT(e, 0x55, 0x48, 0x89, 0xe5);                               /* push %rbp; mov %rsp,%rbp */
	EMIT(e, 0x48, 0x83, 0xe4, 0xf0);                               /* and $-16,%rsp */
	EMIT(e, 0xfc);                                                 /* cld */
	EMIT(e, 0x48, 0x89, 0xc7);                                     /* mov %rax,%rdi */
	EMIT(e, 0x48, 0x8d, 0xb5, 0xd8, 0x00, 0x00, 0x00);             /* lea 216(%rbp),%rsi: the site's rsp */
	emit_call(e, site, (uintptr_t)sp_tramp_count);                 /* call count */
	EMIT(e, 0x48, 0x89, 0xec, 0x5d);                               /* mov %rbp,%rsp; pop %rbp */
	EMIT(e, 0x41, 0x5b, 0x41, 0x5a, 0x41, 0x59, 0x41, 0x58,        /* pop r11 r10 r9 r8 */
	     0x5f, 0x5e, 0x5a, 0x59);                                  /* pop rdi rsi rdx rcx */
	/* flags from the slot at 8(%rsp), without popfq unless DF/TF/AC */
	EMIT(e, 0xf7, 0x44, 0x24, 0x08, 0x00, 0x05, 0x04, 0x00);       /* testl $0x40500,8(%rsp) */
	EMIT(e, 0x75); f->jpopf_at = e->len; EMIT(e, 0x00);            /* jnz lean_popf */
	EMIT(e, 0x0f, 0xb6, 0x44, 0x24, 0x08);                         /* movzbl 8(%rsp),%eax */
	EMIT(e, 0xc1, 0xe0, 0x08);                                     /* shl $8,%eax: ah = flags */
	EMIT(e, 0x0f, 0xba, 0x64, 0x24, 0x08, 0x0b);                   /* btl $11,8(%rsp): CF = OF */
	EMIT(e, 0x14, 0x7f);                                           /* adc $0x7f,%al: OF = CF */
	EMIT(e, 0x9e);                                                 /* sahf */
	EMIT(e, 0x58);                                                 /* pop %rax */
	EMIT(e, 0x48, 0x8d, 0xa4, 0x24, 0x88, 0x00, 0x00, 0x00);       /* lea 0x88(%rsp),%rsp */
	EMIT(e, 0xe9); f->jreloc1_at = e->len; imm32(e, 0);            /* jmp reloc */
	f->lean_popf = e->len;
	EMIT(e, 0x58, 0x9d);                                           /* pop %rax; popfq */
	EMIT(e, 0x48, 0x8d, 0xa4, 0x24, 0x80, 0x00, 0x00, 0x00);       /* lea 0x80(%rsp),%rsp */
	EMIT(e, 0xe9); f->jreloc2_at = e->len; imm32(e, 0);            /* jmp reloc */
	/* full */
	f->full_at = e->len;
	EMIT(e, 0x58, 0x9d);                                           /* pop %rax; popfq */
	EMIT(e, 0x48, 0x8d, 0x64, 0x24, 0xe8);                         /* lea -0x18(%rsp),%rsp */
	EMIT(e, 0x57, 0x56, 0x52, 0x51, 0x50,                          /* push rdi rsi rdx rcx rax */
	     0x41, 0x50, 0x41, 0x51, 0x41, 0x52, 0x41, 0x53,           /* push r8 r9 r10 r11 */
	     0x53, 0x55,                                               /* push rbx rbp */
	     0x41, 0x54, 0x41, 0x55, 0x41, 0x56, 0x41, 0x57);          /* push r12 r13 r14 r15 */
	EMIT(e, 0x9c, 0x58);                                           /* pushfq; pop %rax */
	EMIT(e, 0x48, 0x89, 0x84, 0x24, 0x80, 0x00, 0x00, 0x00);       /* mov %rax,0x80(%rsp) */
	EMIT(e, 0x48, 0x8d, 0x84, 0x24, 0x10, 0x01, 0x00, 0x00);       /* lea 0x110(%rsp),%rax */
	EMIT(e, 0x48, 0x89, 0x84, 0x24, 0x88, 0x00, 0x00, 0x00);       /* mov %rax,0x88(%rsp) */
	EMIT(e, 0x48, 0xb8); imm64(e, site->addr);                     /* movabs $site,%rax */
	EMIT(e, 0x48, 0x89, 0x44, 0x24, 0x78);                         /* mov %rax,0x78(%rsp) */
	EMIT(e, 0xfc);                                                 /* cld */
	EMIT(e, 0x48, 0x89, 0xe3);                                     /* mov %rsp,%rbx */
	EMIT(e, 0x48, 0x83, 0xe4, 0xf0);                               /* and $-16,%rsp */
	EMIT(e, 0x48, 0x89, 0xde);                                     /* mov %rbx,%rsi */
	EMIT(e, 0x48, 0xbf); imm64(e, (uintptr_t)site);                /* movabs $site_struct,%rdi */
	emit_call(e, site, (uintptr_t)sp_tramp_dispatch);              /* call dispatch */
	EMIT(e, 0x48, 0x89, 0xdc);                                     /* mov %rbx,%rsp */
	EMIT(e, 0x85, 0xc0);                                           /* test %eax,%eax */
	EMIT(e, 0x0f, 0x85); f->jnz_at = e->len; imm32(e, 0);          /* jnz slow */
	/* flags as the handlers left them: sahf + adc for OF, popfq only when
	 * DF, TF or AC is set (popfq costs ~20 cycles) */
	EMIT(e, 0xf7, 0x84, 0x24, 0x80, 0x00, 0x00, 0x00,
	     0x00, 0x05, 0x04, 0x00);                                  /* testl $0x40500,0x80(%rsp) */
	EMIT(e, 0x75); size_t jfpopf_at = e->len; EMIT(e, 0x00);       /* jnz full_popf */
	EMIT(e, 0x0f, 0xb6, 0x84, 0x24, 0x80, 0x00, 0x00, 0x00);       /* movzbl 0x80(%rsp),%eax */
	EMIT(e, 0xc1, 0xe0, 0x08);                                     /* shl $8,%eax */
	EMIT(e, 0x0f, 0xba, 0xa4, 0x24, 0x80, 0x00, 0x00, 0x00, 0x0b); /* btl $11,0x80(%rsp) */
	EMIT(e, 0x14, 0x7f);                                           /* adc $0x7f,%al */
	EMIT(e, 0x9e);                                                 /* sahf */
	EMIT(e, 0xeb); size_t jfdone_at = e->len; EMIT(e, 0x00);       /* jmp flags_done */
	size_t full_popf = e->len;
	EMIT(e, 0xff, 0xb4, 0x24, 0x80, 0x00, 0x00, 0x00);             /* push 0x80(%rsp) */
	EMIT(e, 0x9d);                                                 /* popfq */
	size_t flags_done = e->len;
	if (e->overflow)
		return;
	e->buf[jfpopf_at] = (uint8_t)(full_popf - (jfpopf_at + 1));
	e->buf[jfdone_at] = (uint8_t)(flags_done - (jfdone_at + 1));
	pop_all(e);
	EMIT(e, 0x48, 0x8d, 0xa4, 0x24, 0x98, 0x00, 0x00, 0x00);       /* lea 0x98(%rsp),%rsp */
}

static void fix_c_path(uint8_t *code, const struct c_fix *f, size_t reloc_at, size_t slow_at)
{
	patch_rel32(code, f->jnz_at, slow_at);
	patch_rel32(code, f->jfull_at, f->full_at);
	patch_rel32(code, f->jreloc1_at, reloc_at);
	patch_rel32(code, f->jreloc2_at, reloc_at);
	code[f->jpopf_at] = (uint8_t)(f->lean_popf - (f->jpopf_at + 1));
}

/* The trampoline's size: the inline count, the C path, the relocated
 * window, the slow path and the rseq tail. */
#define TRAMP_MAX (128 + 416 + SP_RELOC_MAX + 32 + 96)   /* 416: a Go site's calls are longer */

/* Emit SITE's trampoline for window W as it must lie at BASE into CODE
 * (TRAMP_MAX bytes): its length, or -errno with *REASON. */
static long emit_at(struct sp_site *site, const struct sp_window *w, uintptr_t base, uint8_t *code,
		    struct sp_tramp *out, const char **reason)
{
	struct emit e = { code, 0, TRAMP_MAX, 0 };
	struct c_fix cf = { 0 };
	struct fast_fix fx = { 0 };
	bool fast = sp_fastcount.on;
	size_t jreloc3_at = 0;

	/* Layout, with the inline count: lea, the count, the relocated window
	 * (the hot path runs straight through), the C path, which jumps back
	 * to the window.  Without: lea, the C path falling into the window. */
	EMIT(&e, 0x48, 0x8d, 0xa4, 0x24, 0x80, 0xff, 0xff, 0xff);      /* lea -0x80(%rsp),%rsp */
	if (fast)
		emit_fast(&e, site, &fx);
	else
		emit_c_path(&e, site, &cf);
	size_t reloc_at = e.len;
	if (e.overflow) {
		*reason = "trampoline prologue overflow";
		return -EINVAL;
	}
	int n = sp_reloc_window(w, base + reloc_at, code + reloc_at, SP_RELOC_MAX, &out->map, reason);
	if (n < 0)
		return n;
	e.len += (size_t)n;
	if (fast) {
		emit_fast_exit(&e, &fx);                               /* falls into the C path */
		emit_c_path(&e, site, &cf);
		EMIT(&e, 0xe9); jreloc3_at = e.len; imm32(&e, 0);      /* jmp reloc */
	}
	size_t slow_at = e.len;
	pop_all(&e);
	size_t int3_at = e.len;
	EMIT(&e, 0xcc);                                                /* int3: slow path */
	if (fast)
		emit_fast_tail(&e, base, &fx);
	if (e.overflow) {
		*reason = "trampoline overflow";
		return -EINVAL;
	}
	fix_c_path(code, &cf, reloc_at, slow_at);
	if (fast)
		patch_rel32(code, jreloc3_at, reloc_at);
	out->entry = base;
	out->reloc = base + reloc_at;
	out->slow_int3 = base + int3_at;
	out->window_len = w->len;
	return (long)e.len;
}

int sp_tramp_build(struct sp_site *site, const struct sp_window *w, struct sp_tramp *out,
		   const char **reason)
{
	uint8_t code[TRAMP_MAX];
	long len = -1;
	/* The entry is placed so that the jmp's offset bytes fault at once
	 * where a kernel uprobe placed over it makes the thread run them
	 * (coexist.h): at site+1, after the file's first byte restored by its
	 * removal, and at site+len of a first instruction shorter than the
	 * jmp, where it resumes each of its hits.  The fault handler can then
	 * prove what ran.  Where no such place is free, anywhere near: the jmp
	 * never depends on it.  A hop's entry is reached through its pad. */
	struct sp_coexist_fit cxf = { .site = site->addr, .len = site->insn.len };
	uintptr_t base = site->tramp_slot;
	/* the memory this site had before its object was unloaded, when the
	 * new trampoline fits there, its jumps reach and it is placed as
	 * above (a reload a whole number of pages away keeps that) */
	if (base && (!site->guard_entry || sp_coexist_next_entry(base, &cxf) == base)) {
		const char *why;
		len = emit_at(site, w, base, code, out, &why);
		intptr_t d = (intptr_t)base - (intptr_t)(site->addr + SP_JMP_LEN);
		if (len > (long)site->tramp_slot_size || d != (int32_t)d)
			len = -1;
	}
	if (len < 0) {
		struct sp_codemem_fit fit = { sp_coexist_next_entry, sp_coexist_prev_entry, &cxf };
		base = site->guard_entry ? sp_codemem_alloc_fit(site->addr, TRAMP_MAX, &fit) : 0;
		if (!base)
			base = sp_codemem_alloc(site->addr, TRAMP_MAX);
		if (!base) {
			*reason = "no free memory within ±2 GiB of the site for its trampoline";
			return -ENOMEM;
		}
		len = emit_at(site, w, base, code, out, reason);
		if (len < 0) {
			sp_codemem_trim(base, TRAMP_MAX, 0);
			return (int)len;
		}
		sp_codemem_trim(base, TRAMP_MAX, (size_t)len);
		site->tramp_slot = base;
		site->tramp_slot_size = (size_t)len;
	}
	/* nothing leads here before the site is armed: written with the
	 * batch's other trampolines (arm.c checks the outcome) */
	site->tramp_unwritten = false;
	int rc = sp_patch_write_later(base, code, (size_t)len, &site->tramp_unwritten);
	if (rc) {
		*reason = "cannot write the trampoline";
		return rc;
	}
	return 0;
}

int sp_tramp_build_bare(struct sp_site *site, const struct sp_window *w, struct sp_tramp *out,
			const char **reason)
{
	uint8_t code[SP_RELOC_MAX];
	uintptr_t base = sp_codemem_alloc(site->addr, SP_RELOC_MAX);
	if (!base) {
		*reason = "no free memory within ±2 GiB of the site for its trampoline";
		return -ENOMEM;
	}
	int n = sp_reloc_window(w, base, code, sizeof(code), &out->map, reason);
	if (n < 0 || sp_patch_write(base, code, (size_t)n) != 0) {
		sp_codemem_trim(base, SP_RELOC_MAX, 0);
		if (n >= 0)
			*reason = "cannot write the trampoline";
		return n < 0 ? n : -EIO;
	}
	sp_codemem_trim(base, SP_RELOC_MAX, (size_t)n);
	out->entry = out->reloc = base;
	out->slow_int3 = 0;
	out->window_len = w->len;
	return 0;
}

/* ---- the slow path's pending resumes (per thread; signals nest) ----
 *
 * A resume is claimed with one unlocked xadd, filled, then published by
 * its int3 address; the int3 takes the one with its address and its rsp
 * (the frame the pops left), so a signal handler's own slow paths in
 * between, on this stack or a sigaltstack, never take or overwrite it.
 * One abandoned by a siglongjmp out of that window is never matched. */

#define PENDING_MAX 16
struct pending {
	uintptr_t int3;               /* 0: not published (or taken) */
	uintptr_t at_rsp;             /* rsp at the int3 */
	uint64_t rip, rsp, eflags;
};
static __thread struct pending pending[PENDING_MAX] __attribute__((tls_model("initial-exec")));
static __thread uint64_t n_pending __attribute__((tls_model("initial-exec")));

int sp_tramp_dispatch(struct sp_site *site, struct selfprobe_regs *regs)
{
	uint64_t rsp = regs->rsp;
	sp_dispatch(site, regs, NULL);
	if (__builtin_expect(regs->rip == site->addr && regs->rsp == rsp, 1))
		return 0;
	uint64_t i = sp_sig_xadd(&n_pending, 1);
	if (i >= PENDING_MAX) {
		/* nesting this deep is a runaway: resume as if unchanged */
		sp_sig_xadd(&n_pending, (uint64_t)-1);
		regs->rip = site->addr;
		regs->rsp = rsp;
		return 0;
	}
	struct pending *p = &pending[i];
	p->int3 = 0;
	/* rip unchanged but rsp moved: resume at the relocated window, since
	 * the site itself now jumps back here */
	p->rip = regs->rip == site->addr ? site->tramp.reloc : regs->rip;
	p->rsp = regs->rsp;
	p->eflags = regs->eflags;
	p->at_rsp = (uintptr_t)&regs->rip;   /* the trampoline pops r15 … rdi, then int3 */
	atomic_signal_fence(memory_order_seq_cst);
	p->int3 = site->tramp.slow_int3;
	return 1;
}

void sp_tramp_count(struct sp_site *site, uintptr_t rsp)
{
	if (sp_tls.runtime)
		return;
	int stripe = sp_tstate_stripe();
	sp_tstate_enter(stripe);
	struct sp_probe_vec *vec = atomic_load_explicit(&site->vec, memory_order_consume);
	if (vec && vec->only_returns) {
		/* count-only uretprobes and sessions: the return is swapped */
		for (uint32_t i = 0; i < vec->n; i++)
			if (vec->p[i]->kind == SP_KIND_USESSION)
				sp_count_add(stripe, vec->p[i]->id, SP_HITS);   /* sessions count entries */
		if (sp_tls.inside || !sp_uret_push_counted(rsp, vec->p, vec->n))
			for (uint32_t i = 0; i < vec->n; i++)
				sp_count_add(stripe, vec->p[i]->id, SP_MISSED);
	} else
		for (uint32_t i = 0; vec && i < vec->n; i++)
			sp_count_add(stripe, vec->p[i]->id, SP_HITS);
	sp_tstate_leave(stripe);
}

int sp_tramp_take_pending(uintptr_t int3_addr, uintptr_t at_rsp, uint64_t *rip, uint64_t *rsp,
			  uint64_t *eflags)
{
	uint64_t n = n_pending;
	for (uint64_t j = n < PENDING_MAX ? n : PENDING_MAX; j-- > 0;) {
		struct pending *p = &pending[j];
		if (p->int3 != int3_addr || p->at_rsp != at_rsp)
			continue;
		*rip = p->rip;
		*rsp = p->rsp;
		*eflags = p->eflags;
		p->int3 = 0;
		/* it and any abandoned above it are gone, unless a signal
		 * handler moved the top meanwhile (it then put it back) */
		sp_sig_cas(&n_pending, n, j);
		return 1;
	}
	return 0;
}
