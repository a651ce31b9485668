/* The jmp fast path through the public API, in-process, on asm functions of
 * this binary whose bytes are chosen for each rule:
 *
 *   - every unsafe case of the design lands on int3 with its reason, and the
 *     safe ones take the jmp (the JSON report's "mode" and "reason");
 *   - live state survives a mid-function jmp probe whose handler clobbers
 *     what it can (memcpy, printf, explicit vector writes, MXCSR): the red
 *     zone, xmm/ymm/zmm and opmask registers, flags (DF included), all GPRs;
 *   - handlers change registers at a jmp site (fast path) and move rip/rsp
 *     (slow path through the trampoline's int3);
 *   - 2 threads hammer a function while it is attached and detached 10,000
 *     times: exact counts while attached, no handler after detach returns;
 *   - the stack a hit needs, measured on a 64 KiB thread stack.
 *
 * Criterion runs every test in its own process, so each starts with no
 * sites: a site's path is chosen when it is created.
 */
#include <criterion/criterion.h>

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fastcount.h"
#include "foreign.h"
#include "patch.h"
#include "selfprobe.h"
#include "unit.h"

/* ------------------------------------------------------------------ asm
 *
 * NOP5 is the 5-byte nop `nopl 0x0(%rax,%rax,1)`: a site that is one
 * instruction covering the whole jmp.  Each group is one asm block so its
 * functions stay adjacent (the "short function" cases depend on what
 * follows them).  Offsets of mid-function sites are exported as data
 * (jt_off_*), not as symbols, so they do not split the functions.
 */
#define NOP5 ".byte 0x0f, 0x1f, 0x44, 0x00, 0x00\n"
#define FUNC(n) ".globl " #n "\n.type " #n ", @function\n" #n ":\n"
#define END(n) ".size " #n ", . - " #n "\n"

uint64_t jt_safe(uint64_t a);            /* nop5 entry             → a + 1 */
uint64_t jt_prologue(uint64_t a);        /* push rbp; mov rsp,rbp  → a + 2 */
uint64_t jt_branch_in(uint64_t a, uint64_t n); /* loop back into bytes 3.. → a + n (n >= 1) */
uint64_t jt_xfn(uint64_t a);             /* → a + 2; jt_xfn_entry jumps into its window */
uint64_t jt_xfn_entry(uint64_t a);       /* → a + 12 */
uint64_t jt_jtab(uint64_t a);            /* a jump table → 10 + (a & 3) */
uint64_t jt_jtab_in(uint64_t a);         /* a jump table, case 0 at +4 → 20 + (a & 3) */
uint64_t jt_short(uint64_t a);           /* 4 bytes, then jt_short_next → a */
uint64_t jt_short_next(uint64_t a);      /* → a + 3 */
uint64_t jt_short_np(uint64_t a);        /* 4 bytes, then non-padding bytes → a */
uint64_t jt_short_pad(uint64_t a);       /* 4 bytes, then int3 padding → a */
uint64_t jt_short_nop(uint64_t a);       /* 4 bytes, then nop padding → a */
uint64_t jt_call_entry(uint64_t a);      /* call at entry → 2a + 1 (+ garbage if ret addr off) */
uint64_t jt_call_push(uint64_t a);       /* push; call → 2a + 1 (likewise) */
uint64_t jt_icall(uint64_t a, uint64_t (*f)(uint64_t)); /* call *%rsi at entry → f(a) + 1 */
uint64_t jt_double(uint64_t a);          /* → 2a */
uint64_t jt_mid(uint64_t a);             /* +3: two 4-byte adds (a window of 2) → a + 3 */
uint64_t jt_mid5(uint64_t a);            /* +3: nop5 → a + 4 */
uint64_t jt_mid_movabs(uint64_t a);      /* +3: movabs → a + 5 */
uint64_t jt_ovl(uint64_t a);             /* push; nop5 (+1); ... → a + 7 */
uint64_t jt_nosize5(uint64_t a);         /* no .size, nop5 entry → a + 1 */
uint64_t jt_nosize3(uint64_t a);         /* no .size, 3-byte entry → a + 1 */

__asm__(
	".text\n"
	".p2align 4\n"
	FUNC(jt_safe)
	NOP5
	"lea 1(%rdi), %rax\n"
	"ret\n"
	END(jt_safe)

	".p2align 4\n"
	FUNC(jt_prologue)
	"push %rbp\n"
	"mov %rsp, %rbp\n"
	"lea 2(%rdi), %rax\n"
	"pop %rbp\n"
	"ret\n"
	END(jt_prologue)

	/* the loop's jne goes back to +3, inside the window [0, 7) */
	".p2align 4\n"
	FUNC(jt_branch_in)
	"mov %rdi, %rax\n"              /* 3 bytes */
	"1: add $1, %rax\n"             /* 4 bytes, at +3 */
	"sub $1, %rsi\n"
	"jnz 1b\n"
	"ret\n"
	END(jt_branch_in)

	/* jt_xfn's own code has no branch at all; jt_xfn_entry, another
	 * function, jumps to jt_xfn+3 */
	".p2align 4\n"
	FUNC(jt_xfn)
	"mov %rdi, %rax\n"
	".Ljt_xfn_mid:\n"
	"add $2, %rax\n"
	"ret\n"
	END(jt_xfn)
	".p2align 4\n"
	FUNC(jt_xfn_entry)
	"lea 10(%rdi), %rax\n"
	"jmp .Ljt_xfn_mid\n"
	END(jt_xfn_entry)

	/* a 7-byte first instruction (safe alone), then a jump table */
	".p2align 4\n"
	FUNC(jt_jtab)
	"lea .Ljt_table(%rip), %rcx\n"
	"and $3, %edi\n"
	"movslq (%rcx,%rdi,4), %rax\n"
	"add %rcx, %rax\n"
	"jmp *%rax\n"
	".Ljt_j0: mov $10, %eax\n ret\n"
	".Ljt_j1: mov $11, %eax\n ret\n"
	".Ljt_j2: mov $12, %eax\n ret\n"
	".Ljt_j3: mov $13, %eax\n ret\n"
	END(jt_jtab)
	".section .rodata\n"
	".p2align 2\n"
	".Ljt_table: .long .Ljt_j0 - .Ljt_table, .Ljt_j1 - .Ljt_table, "
	".Ljt_j2 - .Ljt_table, .Ljt_j3 - .Ljt_table\n"
	".text\n"

	/* a jump table whose case 0 lands at +4, inside the entry's window */
	".p2align 4\n"
	FUNC(jt_jtab_in)
	"mov %edi, %eax\n"                    /* +0: 2 bytes */
	"jmp .Ljti_disp\n"                    /* +2: 2 bytes */
	".Ljti_j0: mov $20, %eax\n ret\n"      /* +4: case 0 */
	".Ljti_disp: and $3, %eax\n"
	"lea .Ljti_table(%rip), %rcx\n"
	"movslq (%rcx,%rax,4), %rax\n"
	"add %rcx, %rax\n"
	"jmp *%rax\n"
	".Ljti_j1: mov $21, %eax\n ret\n"
	".Ljti_j2: mov $22, %eax\n ret\n"
	".Ljti_j3: mov $23, %eax\n ret\n"
	END(jt_jtab_in)
	".section .rodata\n"
	".p2align 2\n"
	".Ljti_table: .long .Ljti_j0 - .Ljti_table, .Ljti_j1 - .Ljti_table, "
	".Ljti_j2 - .Ljti_table, .Ljti_j3 - .Ljti_table\n"
	".text\n"

	/* 4 bytes, and the next function right after: no padding */
	".p2align 4\n"
	FUNC(jt_short)
	"mov %rdi, %rax\n"
	"ret\n"
	END(jt_short)
	FUNC(jt_short_next)
	"lea 3(%rdi), %rax\n"
	"ret\n"
	END(jt_short_next)

	/* 4 bytes, then bytes of no symbol that are not padding (a mov) */
	".p2align 4\n"
	FUNC(jt_short_np)
	"mov %rdi, %rax\n"
	"ret\n"
	END(jt_short_np)
	".byte 0x48, 0x89, 0xf8\n"
	".fill 9, 1, 0xcc\n"

	/* 4 bytes, then int3 fill up to the next symbol */
	".p2align 4\n"
	FUNC(jt_short_pad)
	"mov %rdi, %rax\n"
	"ret\n"
	END(jt_short_pad)
	".fill 12, 1, 0xcc\n"

	/* 4 bytes, then multi-byte nops up to the next symbol */
	".p2align 4\n"
	FUNC(jt_short_nop)
	"mov %rdi, %rax\n"
	"ret\n"
	END(jt_short_nop)
	".byte 0x0f, 0x1f, 0x40, 0x00\n"              /* nopl 0x0(%rax) */
	".byte 0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00\n"  /* nopw 0x0(%rax,%rax,1) */
	".byte 0x0f, 0x1f, 0x00\n"                    /* nopl (%rax) */
	".byte 0x90\n"

	/* a call at the entry (5 bytes: the window's only instruction) */
	".p2align 4\n"
	FUNC(jt_call_entry)
	"call jt_call_helper\n"
	"add $1, %rax\n"
	"ret\n"
	END(jt_call_entry)
	FUNC(jt_call_helper)             /* 2a, plus the error of its return address */
	"lea (%rdi,%rdi), %rax\n"
	"mov (%rsp), %rcx\n"
	"lea jt_call_entry+5(%rip), %rdx\n"
	"sub %rdx, %rcx\n"
	"add %rcx, %rax\n"
	"ret\n"
	END(jt_call_helper)

	/* push; call: a window of two instructions, the call last */
	".p2align 4\n"
	FUNC(jt_call_push)
	"push %rbp\n"
	"call jt_call_helper2\n"
	"pop %rbp\n"
	"add $1, %rax\n"
	"ret\n"
	END(jt_call_push)
	FUNC(jt_call_helper2)
	"lea (%rdi,%rdi), %rax\n"
	"mov (%rsp), %rcx\n"
	"lea jt_call_push+6(%rip), %rdx\n"
	"sub %rdx, %rcx\n"
	"add %rcx, %rax\n"
	"ret\n"
	END(jt_call_helper2)

	/* an indirect call in the window */
	".p2align 4\n"
	FUNC(jt_icall)
	"call *%rsi\n"
	"add $1, %rax\n"
	"ret\n"
	END(jt_icall)
	FUNC(jt_double)
	"lea (%rdi,%rdi), %rax\n"
	"ret\n"
	END(jt_double)

	/* +3: add, add (a mid-function window of two instructions) */
	".p2align 4\n"
	FUNC(jt_mid)
	"mov %rdi, %rax\n"
	".Ljt_mid_site:\n"
	"add $1, %rax\n"
	"add $2, %rax\n"
	"ret\n"
	END(jt_mid)

	/* +3: one 5-byte instruction */
	".p2align 4\n"
	FUNC(jt_mid5)
	"mov %rdi, %rax\n"
	NOP5
	"add $4, %rax\n"
	"ret\n"
	END(jt_mid5)

	/* +3: a 10-byte movabs */
	".p2align 4\n"
	FUNC(jt_mid_movabs)
	"mov %rdi, %rax\n"
	"movabs $5, %rcx\n"
	"add %rcx, %rax\n"
	"ret\n"
	END(jt_mid_movabs)

	/* entry window push + nop5 (6 bytes); +1 is the nop5, a site of its own */
	".p2align 4\n"
	FUNC(jt_ovl)
	"push %rbp\n"
	NOP5
	"mov %rdi, %rax\n"
	"add $7, %rax\n"
	"pop %rbp\n"
	"ret\n"
	END(jt_ovl)

	/* no .size: the extent is unknown */
	".p2align 4\n"
	".globl jt_nosize5\n.type jt_nosize5, @function\njt_nosize5:\n"
	NOP5
	"lea 1(%rdi), %rax\n"
	"ret\n"
	".p2align 4\n"
	".globl jt_nosize3\n.type jt_nosize3, @function\njt_nosize3:\n"
	"mov %rdi, %rax\n"
	"add $1, %rax\n"
	"ret\n"
	".p2align 4\n"
);

/* ---- live state across a mid-function site (all sites are one NOP5) ---- */

/* () → the number of red-zone quadwords (-128..-8 below rsp) that changed
 * between before and after the site. */
uint64_t jt_redzone(void);
/* xmm0-15 (+ MXCSR) loaded from IN (16*16 bytes, then the MXCSR value at
 * +256), stored to OUT after the site in the same layout. */
void jt_xmm(const void *in, void *out);
/* ymm0-15: 16*32 bytes. */
void jt_ymm(const void *in, void *out);
/* zmm0-31 (32*64 bytes) and k1-k7 (7*8 bytes after them). */
void jt_zmm(const void *in, void *out);
/* GPRs and flags: IN[0..14] = rax rbx rcx rdx rsi rdi rbp r8..r15, IN[15] =
 * flags; OUT the same after the site, OUT[16] = rsp at the site. */
void jt_gprs(const uint64_t *in, uint64_t *out);

extern const uint64_t jt_off_redzone, jt_off_xmm, jt_off_ymm, jt_off_zmm, jt_off_gprs;

__asm__(
	".text\n"
	".p2align 4\n"
	FUNC(jt_redzone)
	"movabs $0x5a5a0000a5a50000, %rax\n"
	"xor %ecx, %ecx\n"
	"1: mov %rax, -128(%rsp,%rcx,8)\n"
	"add $0x10001, %rax\n"
	"inc %ecx\n"
	"cmp $16, %ecx\n"
	"jne 1b\n"
	".Ljt_rz_site:\n"
	NOP5
	"movabs $0x5a5a0000a5a50000, %rdx\n"
	"xor %ecx, %ecx\n"
	"xor %eax, %eax\n"
	"2: cmp %rdx, -128(%rsp,%rcx,8)\n"
	"je 3f\n"
	"inc %eax\n"
	"3: add $0x10001, %rdx\n"
	"inc %ecx\n"
	"cmp $16, %ecx\n"
	"jne 2b\n"
	"ret\n"
	END(jt_redzone)

	".p2align 4\n"
	FUNC(jt_xmm)
	"movdqu 0(%rdi), %xmm0\n movdqu 16(%rdi), %xmm1\n movdqu 32(%rdi), %xmm2\n"
	"movdqu 48(%rdi), %xmm3\n movdqu 64(%rdi), %xmm4\n movdqu 80(%rdi), %xmm5\n"
	"movdqu 96(%rdi), %xmm6\n movdqu 112(%rdi), %xmm7\n movdqu 128(%rdi), %xmm8\n"
	"movdqu 144(%rdi), %xmm9\n movdqu 160(%rdi), %xmm10\n movdqu 176(%rdi), %xmm11\n"
	"movdqu 192(%rdi), %xmm12\n movdqu 208(%rdi), %xmm13\n movdqu 224(%rdi), %xmm14\n"
	"movdqu 240(%rdi), %xmm15\n"
	"ldmxcsr 256(%rdi)\n"
	".Ljt_xmm_site:\n"
	NOP5
	"stmxcsr 256(%rsi)\n"
	"movdqu %xmm0, 0(%rsi)\n movdqu %xmm1, 16(%rsi)\n movdqu %xmm2, 32(%rsi)\n"
	"movdqu %xmm3, 48(%rsi)\n movdqu %xmm4, 64(%rsi)\n movdqu %xmm5, 80(%rsi)\n"
	"movdqu %xmm6, 96(%rsi)\n movdqu %xmm7, 112(%rsi)\n movdqu %xmm8, 128(%rsi)\n"
	"movdqu %xmm9, 144(%rsi)\n movdqu %xmm10, 160(%rsi)\n movdqu %xmm11, 176(%rsi)\n"
	"movdqu %xmm12, 192(%rsi)\n movdqu %xmm13, 208(%rsi)\n movdqu %xmm14, 224(%rsi)\n"
	"movdqu %xmm15, 240(%rsi)\n"
	"movl $0x1f80, -4(%rsp)\n"       /* the caller's MXCSR back: default */
	"ldmxcsr -4(%rsp)\n"
	"ret\n"
	END(jt_xmm)

	".p2align 4\n"
	FUNC(jt_ymm)
	"vmovdqu 0(%rdi), %ymm0\n vmovdqu 32(%rdi), %ymm1\n vmovdqu 64(%rdi), %ymm2\n"
	"vmovdqu 96(%rdi), %ymm3\n vmovdqu 128(%rdi), %ymm4\n vmovdqu 160(%rdi), %ymm5\n"
	"vmovdqu 192(%rdi), %ymm6\n vmovdqu 224(%rdi), %ymm7\n vmovdqu 256(%rdi), %ymm8\n"
	"vmovdqu 288(%rdi), %ymm9\n vmovdqu 320(%rdi), %ymm10\n vmovdqu 352(%rdi), %ymm11\n"
	"vmovdqu 384(%rdi), %ymm12\n vmovdqu 416(%rdi), %ymm13\n vmovdqu 448(%rdi), %ymm14\n"
	"vmovdqu 480(%rdi), %ymm15\n"
	".Ljt_ymm_site:\n"
	NOP5
	"vmovdqu %ymm0, 0(%rsi)\n vmovdqu %ymm1, 32(%rsi)\n vmovdqu %ymm2, 64(%rsi)\n"
	"vmovdqu %ymm3, 96(%rsi)\n vmovdqu %ymm4, 128(%rsi)\n vmovdqu %ymm5, 160(%rsi)\n"
	"vmovdqu %ymm6, 192(%rsi)\n vmovdqu %ymm7, 224(%rsi)\n vmovdqu %ymm8, 256(%rsi)\n"
	"vmovdqu %ymm9, 288(%rsi)\n vmovdqu %ymm10, 320(%rsi)\n vmovdqu %ymm11, 352(%rsi)\n"
	"vmovdqu %ymm12, 384(%rsi)\n vmovdqu %ymm13, 416(%rsi)\n vmovdqu %ymm14, 448(%rsi)\n"
	"vmovdqu %ymm15, 480(%rsi)\n"
	"vzeroupper\n"
	"ret\n"
	END(jt_ymm)

	".p2align 4\n"
	FUNC(jt_zmm)
	".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n"
	"vmovdqu64 \\n*64(%rdi), %zmm\\n\n"
	".endr\n"
	".irp n, 1,2,3,4,5,6,7\n"
	"kmovq 2048+(\\n-1)*8(%rdi), %k\\n\n"
	".endr\n"
	".Ljt_zmm_site:\n"
	NOP5
	".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n"
	"vmovdqu64 %zmm\\n, \\n*64(%rsi)\n"
	".endr\n"
	".irp n, 1,2,3,4,5,6,7\n"
	"kmovq %k\\n, 2048+(\\n-1)*8(%rsi)\n"
	".endr\n"
	"vzeroupper\n"
	"ret\n"
	END(jt_zmm)

	".p2align 4\n"
	FUNC(jt_gprs)
	"push %rbx\n push %rbp\n push %r12\n push %r13\n push %r14\n push %r15\n"
	"push %rsi\n"                    /* OUT, at (%rsp) */
	"pushq 120(%rdi)\n"
	"popfq\n"                        /* movs below keep these flags */
	"mov 0(%rdi), %rax\n mov 8(%rdi), %rbx\n mov 16(%rdi), %rcx\n mov 24(%rdi), %rdx\n"
	"mov 32(%rdi), %rsi\n mov 48(%rdi), %rbp\n mov 56(%rdi), %r8\n mov 64(%rdi), %r9\n"
	"mov 72(%rdi), %r10\n mov 80(%rdi), %r11\n mov 88(%rdi), %r12\n mov 96(%rdi), %r13\n"
	"mov 104(%rdi), %r14\n mov 112(%rdi), %r15\n"
	"mov 40(%rdi), %rdi\n"
	".Ljt_gprs_site:\n"
	NOP5
	"pushfq\n"
	"push %rdi\n"
	"mov 16(%rsp), %rdi\n"
	"mov %rax, 0(%rdi)\n mov %rbx, 8(%rdi)\n mov %rcx, 16(%rdi)\n mov %rdx, 24(%rdi)\n"
	"mov %rsi, 32(%rdi)\n mov %rbp, 48(%rdi)\n mov %r8, 56(%rdi)\n mov %r9, 64(%rdi)\n"
	"mov %r10, 72(%rdi)\n mov %r11, 80(%rdi)\n mov %r12, 88(%rdi)\n mov %r13, 96(%rdi)\n"
	"mov %r14, 104(%rdi)\n mov %r15, 112(%rdi)\n"
	"pop %rax\n mov %rax, 40(%rdi)\n"
	"pop %rax\n mov %rax, 120(%rdi)\n"
	"mov %rsp, 128(%rdi)\n"          /* = rsp at the site */
	"cld\n"
	"pop %rsi\n"
	"pop %r15\n pop %r14\n pop %r13\n pop %r12\n pop %rbp\n pop %rbx\n"
	"ret\n"
	END(jt_gprs)

	".section .rodata\n"
	".p2align 3\n"
	"jt_off_redzone: .quad .Ljt_rz_site - jt_redzone\n"
	"jt_off_xmm: .quad .Ljt_xmm_site - jt_xmm\n"
	"jt_off_ymm: .quad .Ljt_ymm_site - jt_ymm\n"
	"jt_off_zmm: .quad .Ljt_zmm_site - jt_zmm\n"
	"jt_off_gprs: .quad .Ljt_gprs_site - jt_gprs\n"
	".text\n"
);

/* ---- register writes (4), the hammer (5) ---- */

uint64_t jt_skipme(uint64_t a);          /* nop5; counts its runs → a + 100 */
uint64_t jt_argme(uint64_t a);           /* nop5 → a + 100 */
uint64_t jt_alt(uint64_t a);             /* → a + 7 */
uint64_t jt_flagme(uint64_t a);          /* test; +2 nop5; je → a ? 1 : 2 */
uint64_t jt_hammer(uint64_t a);          /* push; mov; lea (an 8-byte window) → a + 5 */
extern uint64_t jt_skip_runs;

__asm__(
	".text\n"
	".p2align 4\n"
	FUNC(jt_skipme)
	NOP5
	"addq $1, jt_skip_runs(%rip)\n"
	"lea 100(%rdi), %rax\n"
	"ret\n"
	END(jt_skipme)

	".p2align 4\n"
	FUNC(jt_argme)
	NOP5
	"lea 100(%rdi), %rax\n"
	"ret\n"
	END(jt_argme)

	".p2align 4\n"
	FUNC(jt_alt)
	"lea 7(%rdi), %rax\n"
	"ret\n"
	END(jt_alt)

	".p2align 4\n"
	FUNC(jt_flagme)
	"test %edi, %edi\n"
	NOP5                              /* +2: flags of the test are live */
	"je 1f\n"
	"mov $1, %eax\n"
	"ret\n"
	"1: mov $2, %eax\n"
	"ret\n"
	END(jt_flagme)

	".p2align 4\n"
	FUNC(jt_hammer)
	"push %rbp\n"
	"mov %rsp, %rbp\n"
	"lea 5(%rdi), %rax\n"
	"pop %rbp\n"
	"ret\n"
	END(jt_hammer)

	".data\n"
	".p2align 3\n"
	".globl jt_skip_runs\n"
	"jt_skip_runs: .quad 0\n"
	".text\n"
);

/* ------------------------------------------------------------- helpers */

/* The report entry (last one) whose "symbol" is SYM: mode, reason (empty
 * for null), hits.  Fails the test when there is none. */
struct entry {
	char mode[8];
	char patch[8];
	char reason[256];
	long hits, missed;
};


static const char *field(const char *obj, const char *end, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	const char *p = strstr(obj, pat);
	return p && p < end ? p + strlen(pat) : NULL;
}

static struct entry entry_of(const char *sym)
{
	char *buf = unit_report_json();
	char pat[160];
	snprintf(pat, sizeof(pat), "\"symbol\": \"%s\",", sym);
	const char *hit = NULL;
	for (const char *p = buf; (p = strstr(p, pat)); p++)
		hit = p;
	cr_assert_not_null(hit, "no report entry for %s:\n%s", sym, buf);
	const char *obj = hit;
	while (obj > buf && *obj != '{')
		obj--;
	const char *end = strchr(hit, '}');
	struct entry e = { .hits = -1, .missed = -1 };
	const char *m = field(obj, end, "mode"), *r = field(obj, end, "reason"), *pa = field(obj, end, "patch");
	const char *h = field(obj, end, "hits"), *x = field(obj, end, "missed");
	cr_assert(m && r && h && x && pa, "malformed entry for %s:\n%s", sym, buf);
	sscanf(m, "\"%7[^\"]\"", e.mode);
	sscanf(pa, "\"%7[^\"]\"", e.patch);
	if (*r == '"')
		sscanf(r, "\"%255[^\"]\"", e.reason);
	e.hits = strtol(h, NULL, 10);
	e.missed = strtol(x, NULL, 10);
	free(buf);
	return e;
}

static struct selfprobe_link *attach(const char *probe, selfprobe_handler_fn fn)
{
	struct selfprobe_link *l = selfprobe_attach(probe, fn, NULL);
	cr_assert_not_null(l, "attach %s: %s", probe, strerror(errno));
	return l;
}

static struct selfprobe_link *attach_off(const char *fn_name, uint64_t off, selfprobe_handler_fn fn)
{
	char spec[128];
	snprintf(spec, sizeof(spec), "uprobe:%s+%#lx", fn_name, (unsigned long)off);
	return attach(spec, fn);
}

static void expect_jmp(const char *sym, long hits)
{
	struct entry e = entry_of(sym);
	cr_expect_str_eq(e.mode, "jmp", "%s: mode %s, reason \"%s\"", sym, e.mode, e.reason);
	cr_expect_str_empty(e.reason, "%s: jmp with a reason \"%s\"", sym, e.reason);
	if (hits >= 0)
		cr_expect_eq(e.hits, hits, "%s: %ld hits, want %ld", sym, e.hits, hits);
}

/* The jmp path through a hop (hop.h): the 5-byte window was refused, the
 * first instruction alone is displaced. */
static void expect_hop(const char *sym, long hits)
{
	expect_jmp(sym, hits);
	struct entry e = entry_of(sym);
	cr_expect_str_eq(e.patch, "hop", "%s: patch %s, want hop", sym, e.patch);
}

static void expect_int3(const char *sym, const char *reason, long hits)
{
	struct entry e = entry_of(sym);
	cr_expect_str_eq(e.mode, "int3", "%s: mode %s, want int3 (%s)", sym, e.mode, reason);
	cr_expect(strstr(e.reason, reason), "%s: reason \"%s\", want \"%s\"", sym, e.reason, reason);
	if (hits >= 0)
		cr_expect_eq(e.hits, hits, "%s: %ld hits, want %ld", sym, e.hits, hits);
}

static void setup_auto(void)
{
	cr_assert_eq(selfprobe_set_mode("auto"), 0);
}

#define N 1000

/* Call F(i) N times checking WANT. */
#define CALL_N(f, want_expr) do {                                          \
	for (uint64_t i_ = 0; i_ < N; i_++) {                              \
		uint64_t a = i_;                                           \
		uint64_t got_ = (f);                                       \
		cr_assert_eq(got_, (uint64_t)(want_expr), #f " with a=%lu: %lu, want %lu", \
			     (unsigned long)a, (unsigned long)got_, (unsigned long)(want_expr)); \
	}                                                                  \
} while (0)

/* ============================================ 1. which path, and why */

TestSuite(path, .init = setup_auto);

Test(path, safe_entries_take_the_jmp)
{
	attach("uprobe:jt_safe", NULL);
	attach("uprobe:jt_prologue", NULL);
	CALL_N(jt_safe(a), a + 1);
	CALL_N(jt_prologue(a), a + 2);
	expect_jmp("jt_safe", N);
	expect_jmp("jt_prologue", N);
}

Test(path, branch_into_the_window_from_the_function_hops)
{
	attach("uprobe:jt_branch_in", NULL);
	CALL_N(jt_branch_in(a, 3), a + 3);
	/* the 5-byte window is refused ("branch target inside the jmp
	 * window"); the first instruction alone hops through padding */
	expect_hop("jt_branch_in", N);
}

Test(path, branch_into_the_window_from_another_function_hops)
{
	/* jt_xfn itself holds no branch: only the object-wide index sees it */
	attach("uprobe:jt_xfn", NULL);
	CALL_N(jt_xfn(a), a + 2);
	CALL_N(jt_xfn_entry(a), a + 12);   /* enters after the site: no hit */
	/* refused for the 5-byte window, a hop for the first instruction */
	expect_hop("jt_xfn", N);
}

Test(path, jump_table_proven)
{
	/* every entry of the table is read: none lands in the window */
	attach("uprobe:jt_jtab", NULL);
	CALL_N(jt_jtab(a), 10 + (a & 3));
	expect_jmp("jt_jtab", N);
}

Test(path, jump_table_entry_inside_the_window_hops)
{
	/* case 0 at +4 refuses the 5-byte window ("is a jump-table entry");
	 * the 2-byte first instruction alone hops through padding */
	attach("uprobe:jt_jtab_in", NULL);
	CALL_N(jt_jtab_in(a), 20 + (a & 3));
	expect_hop("jt_jtab_in", N);
}

Test(path, short_function_followed_by_another_hops)
{
	attach("uprobe:jt_short", NULL);
	CALL_N(jt_short(a), a);
	CALL_N(jt_short_next(a), a + 3);
	/* the 5-byte window would run into jt_short_next: a hop instead */
	expect_hop("jt_short", N);
}

/* A hop patches 2 bytes: its detach must not write the 3 after them,
 * which here are the next function's own jmp (it wrote the original
 * bytes over them, tearing jt_short_next's jmp). */
Test(path, a_hop_detached_leaves_the_next_functions_jmp)
{
	struct selfprobe_link *hop = attach("uprobe:jt_short", NULL);
	attach("uprobe:jt_short_next", NULL);
	CALL_N(jt_short(a), a);
	CALL_N(jt_short_next(a), a + 3);
	expect_hop("jt_short", N);
	expect_jmp("jt_short_next", N);
	uint8_t before[5];
	memcpy(before, (const void *)jt_short_next, 5);
	cr_assert_eq(before[0], 0xe9, "jt_short_next holds no jmp");
	cr_assert_eq(selfprobe_detach(hop), 0);
	cr_assert_eq(memcmp(before, (const void *)jt_short_next, 5), 0,
		     "detaching jt_short's hop changed jt_short_next's jmp");
	CALL_N(jt_short(a), a);
	CALL_N(jt_short_next(a), a + 3);
	expect_jmp("jt_short_next", 2 * N);
}

Test(path, short_function_followed_by_code_that_is_not_padding_hops)
{
	attach("uprobe:jt_short_np", NULL);
	CALL_N(jt_short_np(a), a);
	expect_hop("jt_short_np", N);
}

Test(path, short_function_followed_by_padding_takes_the_jmp)
{
	attach("uprobe:jt_short_pad", NULL);
	attach("uprobe:jt_short_nop", NULL);
	CALL_N(jt_short_pad(a), a);
	CALL_N(jt_short_nop(a), a);
	expect_jmp("jt_short_pad", N);
	expect_jmp("jt_short_nop", N);
}

Test(path, call_at_the_entry_takes_the_jmp)
{
	/* the helpers add the error of their return address to the result */
	attach("uprobe:jt_call_entry", NULL);
	attach("uprobe:jt_call_push", NULL);
	CALL_N(jt_call_entry(a), 2 * a + 1);
	CALL_N(jt_call_push(a), 2 * a + 1);
	expect_jmp("jt_call_entry", N);
	expect_jmp("jt_call_push", N);
}

Test(path, indirect_call_in_the_window)
{
	attach("uprobe:jt_icall", NULL);
	CALL_N(jt_icall(a, jt_double), 2 * a + 1);
	expect_int3("jt_icall", "indirect call in the jmp window", N);
}

/* This binary has no exception landing pads (no .gcc_except_table): a
 * mid-function window of several instructions is as safe as an entry's. */
Test(path, mid_function_window_of_several_instructions_without_landing_pads)
{
	attach("uprobe:jt_mid+3", NULL);
	CALL_N(jt_mid(a), a + 3);
	expect_jmp("jt_mid+0x3", N);
}

/* The same shape in libsp_jmp_lp.so, which has a .gcc_except_table: the
 * unwinder could land inside the window, so it stays on int3. */
Test(path, mid_function_window_of_several_instructions_with_landing_pads)
{
	const char *lib = TEST_LIB_DIR "/libsp_jmp_lp.so";
	void *h = dlopen(lib, RTLD_NOW);
	cr_assert_not_null(h, "dlopen %s: %s (built by tests/targets)", lib, dlerror());
	uint64_t (*mid)(uint64_t) = (uint64_t (*)(uint64_t))dlsym(h, "jt_lp_mid");
	const uint64_t *off = dlsym(h, "jt_lp_off");
	cr_assert(mid && off);
	char spec[512];
	snprintf(spec, sizeof(spec), "uprobe:%s:jt_lp_mid+%#lx", lib, (unsigned long)*off);
	attach(spec, NULL);
	CALL_N(mid(a), a + 3);
	char sym[64];
	snprintf(sym, sizeof(sym), "jt_lp_mid+%#lx", (unsigned long)*off);
	expect_int3(sym, "mid-function window of several instructions", N);
	expect_int3(sym, "landing pads", N);
}

Test(path, mid_function_single_instruction_takes_the_jmp)
{
	attach("uprobe:jt_mid5+3", NULL);
	attach("uprobe:jt_mid_movabs+3", NULL);
	CALL_N(jt_mid5(a), a + 4);
	CALL_N(jt_mid_movabs(a), a + 5);
	expect_jmp("jt_mid5+0x3", N);
	expect_jmp("jt_mid_movabs+0x3", N);
}

Test(path, site_inside_a_jmp_window_demotes_it)
{
	attach("uprobe:jt_ovl", NULL);
	CALL_N(jt_ovl(a), a + 7);
	expect_jmp("jt_ovl", N);
	/* +1 is inside jt_ovl's window (push; nop5) */
	struct selfprobe_link *l = attach("uprobe:jt_ovl+1", NULL);
	CALL_N(jt_ovl(a), a + 7);
	expect_int3("jt_ovl", "another probe site lies inside its jmp window", 2 * N);
	expect_jmp("jt_ovl+0x1", N);
	cr_assert_eq(selfprobe_detach(l), 0);
	CALL_N(jt_ovl(a), a + 7);
	expect_int3("jt_ovl", "another probe site lies inside its jmp window", 3 * N);
}

/* Arming's step 4 (the jmp opcode) refused after step 3 wrote the
 * displacement: the site is an int3 followed by our rel32.  Taking it
 * away, by detach or by a demote, must put bytes 1-4 back too, not only
 * byte 0 (issue 15 item 6).  The refusal is injected into patch. */
static uintptr_t refused_at;

static bool refuse_jmp_opcode(uintptr_t addr, const void *bytes, size_t len)
{
	return addr == refused_at && len == 1 && *(const uint8_t *)bytes == 0xe9;
}

static struct selfprobe_link *attach_without_opcode(const char *probe, const void *fn,
						    uint8_t *before, size_t n)
{
	memcpy(before, fn, n);
	refused_at = (uintptr_t)fn;
	sp_patch_fail_for_test(refuse_jmp_opcode);
	struct selfprobe_link *l = attach(probe, NULL);
	sp_patch_fail_for_test(NULL);
	const uint8_t *p = fn;
	cr_assert_eq(p[0], 0xcc, "the site holds %02x, not the int3 of step 1", p[0]);
	cr_assert_neq(memcmp(p + 1, before + 1, 4), 0, "step 3 did not write the displacement");
	return l;
}

Test(path, a_jmp_whose_opcode_was_refused_detaches_all_its_bytes)
{
	uint8_t before[5];
	struct selfprobe_link *l = attach_without_opcode("uprobe:jt_safe", (const void *)jt_safe, before, 5);
	CALL_N(jt_safe(a), a + 1);
	cr_expect_eq(entry_of("jt_safe").hits, N);
	cr_assert_eq(selfprobe_detach(l), 0);
	cr_assert_eq(memcmp(before, (const void *)jt_safe, 5), 0, "detach left bytes 1-4 changed");
	CALL_N(jt_safe(a), a + 1);
}

static bool refuse_int3(uintptr_t addr, const void *bytes, size_t len)
{
	return addr == refused_at && len == 1 && *(const uint8_t *)bytes == 0xcc;
}

Test(path, a_jmp_whose_opcode_was_refused_demotes_with_all_its_bytes)
{
	uint8_t before[6];
	struct selfprobe_link *l = attach_without_opcode("uprobe:jt_ovl", (const void *)jt_ovl, before, 6);
	/* +1 is inside jt_ovl's window: jt_ovl goes back to a plain int3.
	 * The new site's own int3 is refused, so that what is seen after
	 * is what the demote left (the new site's detach would write the
	 * file's bytes over it) */
	refused_at = (uintptr_t)jt_ovl + 1;
	sp_patch_fail_for_test(refuse_int3);
	struct selfprobe_link *in = selfprobe_attach("uprobe:jt_ovl+1", NULL, NULL);
	sp_patch_fail_for_test(NULL);
	cr_assert_null(in, "the refused int3 at jt_ovl+1 attached");
	cr_assert_eq(memcmp(before + 1, (const uint8_t *)jt_ovl + 1, 4), 0, "the demote left bytes 1-4 changed");
	CALL_N(jt_ovl(a), a + 7);
	expect_int3("jt_ovl", "another probe site lies inside its jmp window", N);
	cr_assert_eq(selfprobe_detach(l), 0);
	cr_assert_eq(memcmp(before, (const void *)jt_ovl, 6), 0);
	CALL_N(jt_ovl(a), a + 7);
}

Test(path, site_whose_window_holds_a_probe_stays_int3)
{
	attach("uprobe:jt_ovl+1", NULL);
	attach("uprobe:jt_ovl", NULL);
	CALL_N(jt_ovl(a), a + 7);
	expect_jmp("jt_ovl+0x1", N);
	expect_int3("jt_ovl", "another probe site lies inside its jmp window", N);
}

Test(path, unknown_size_with_a_5_byte_instruction_takes_the_jmp)
{
	attach("uprobe:jt_nosize5", NULL);
	CALL_N(jt_nosize5(a), a + 1);
	expect_jmp("jt_nosize5", N);
}

Test(path, unknown_size_with_a_short_instruction)
{
	attach("uprobe:jt_nosize3", NULL);
	CALL_N(jt_nosize3(a), a + 1);
	expect_int3("jt_nosize3", "size unknown", N);
}

Test(path, mode_int3_is_always_int3)
{
	cr_assert_eq(selfprobe_set_mode("int3"), 0);
	attach("uprobe:jt_safe", NULL);
	attach("uprobe:jt_mid5+3", NULL);
	CALL_N(jt_safe(a), a + 1);
	CALL_N(jt_mid5(a), a + 4);
	expect_int3("jt_safe", "UPROBE_MODE=int3", N);
	expect_int3("jt_mid5+0x3", "UPROBE_MODE=int3", N);
}

Test(path, mode_jmp_takes_the_jmp_where_safe)
{
	cr_assert_eq(selfprobe_set_mode("jmp"), 0);
	attach("uprobe:jt_safe", NULL);
	attach("uprobe:jt_icall", NULL);
	CALL_N(jt_safe(a), a + 1);
	CALL_N(jt_icall(a, jt_double), 2 * a + 1);
	expect_jmp("jt_safe", N);
	expect_int3("jt_icall", "indirect call in the jmp window", N);
}

/* ==================================== 3. live state across the probe */

static _Atomic long clobber_calls;
static FILE *devnull;
static char big_src[1 << 18], big_dst[1 << 18];
static uint64_t seen_rip, seen_rsp, seen_eflags;
static uint64_t seen_gprs[15];

__attribute__((target("avx"))) static void clobber_avx(void)
{
	__asm__ volatile(".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
			 "vpcmpeqb %%ymm\\n, %%ymm\\n, %%ymm\\n\n"
			 ".endr\n" ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
			 "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
}

__attribute__((target("avx512f,avx512bw"))) static void clobber_avx512(void)
{
	__asm__ volatile(".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n"
			 "vpternlogd $0xff, %%zmm\\n, %%zmm\\n, %%zmm\\n\n"
			 ".endr\n"
			 ".irp n, 1,2,3,4,5,6,7\n"
			 "kxnorq %%k\\n, %%k\\n, %%k\\n\n"
			 ".endr\n" ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
			 "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15",
			 "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23",
			 "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31",
			 "k1", "k2", "k3", "k4", "k5", "k6", "k7");
}

/* Everything a handler could reasonably do to the state it runs on. */
static int clobber_handler(struct selfprobe_ctx *ctx, void *data)
{
	(void)data;
	struct selfprobe_regs *r = selfprobe_regs(ctx);
	seen_rip = r->rip;
	seen_rsp = r->rsp;
	seen_eflags = r->eflags;
	uint64_t g[15] = { r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi, r->rbp, r->r8,
			   r->r9, r->r10, r->r11, r->r12, r->r13, r->r14, r->r15 };
	memcpy(seen_gprs, g, sizeof(g));
	long n = atomic_fetch_add(&clobber_calls, 1);
	memset(big_src, (int)n, sizeof(big_src));
	memcpy(big_dst, big_src, sizeof(big_dst));
	char buf[256];
	snprintf(buf, sizeof(buf), "%ld %f %g %.100s", n, n * 3.25, n / 7.0, big_dst + 100);
	fprintf(devnull, "%s %.3f\n", buf, (double)n * 1.5);
	fflush(devnull);
	unsigned mxcsr = 0x7f80;          /* round toward zero, flush to zero */
	__asm__ volatile("ldmxcsr %0" :: "m"(mxcsr));
	__asm__ volatile(".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
			 "pcmpeqb %%xmm\\n, %%xmm\\n\n"
			 ".endr\n" ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
			 "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
	if (__builtin_cpu_supports("avx"))
		clobber_avx();
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
		clobber_avx512();
	/* the C code after the handler must not see an odd MXCSR either; the
	 * runtime is expected to restore it with the vector state */
	return 0;
}

static void setup_live(void)
{
	setup_auto();
	devnull = fopen("/dev/null", "w");
	cr_assert_not_null(devnull);
	atomic_store(&clobber_calls, 0);
}

TestSuite(live, .init = setup_live);

Test(live, red_zone_survives_a_handler)
{
	attach_off("jt_redzone", jt_off_redzone, clobber_handler);
	for (int i = 0; i < 100; i++) {
		uint64_t changed = jt_redzone();
		cr_assert_eq(changed, 0, "call %d: %lu red-zone quadwords changed across the probe",
			     i, (unsigned long)changed);
	}
	cr_assert_eq(atomic_load(&clobber_calls), 100, "the handler did not run");
	char sym[64];
	snprintf(sym, sizeof(sym), "jt_redzone+%#lx", (unsigned long)jt_off_redzone);
	expect_jmp(sym, 100);
}

Test(live, red_zone_survives_count_only)
{
	attach_off("jt_redzone", jt_off_redzone, NULL);
	for (int i = 0; i < 100; i++)
		cr_assert_eq(jt_redzone(), 0);
	char sym[64];
	snprintf(sym, sizeof(sym), "jt_redzone+%#lx", (unsigned long)jt_off_redzone);
	expect_jmp(sym, 100);
}

static void fill_pattern(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 8));
}

static void vector_case(void (*fn)(const void *, void *), uint64_t off, const char *name,
			size_t nbytes, size_t reg_size, selfprobe_handler_fn handler)
{
	attach_off(name, off, handler);
	static uint8_t in[4096], out[4096];
	for (unsigned round = 0; round < 20; round++) {
		fill_pattern(in, nbytes, round);
		memset(out, 0, sizeof(out));
		fn(in, out);
		for (size_t i = 0; i < nbytes; i++)
			cr_assert_eq(out[i], in[i], "%s round %u: byte %zu (register %zu) is %#x, want %#x",
				     name, round, i, i / reg_size, out[i], in[i]);
	}
	if (handler)
		cr_assert_eq(atomic_load(&clobber_calls), 20, "the handler did not run");
	char sym[64];
	snprintf(sym, sizeof(sym), "%s+%#lx", name, (unsigned long)off);
	expect_jmp(sym, 20);
}

/* xmm0-15 and MXCSR (the in-image's MXCSR word is a valid non-default value:
 * round up, all exceptions masked). */
static void xmm_case(selfprobe_handler_fn handler)
{
	attach_off("jt_xmm", jt_off_xmm, handler);
	static uint8_t in[272], out[272];
	for (unsigned round = 0; round < 20; round++) {
		fill_pattern(in, 256, round);
		uint32_t mxcsr = 0x5f80;
		memcpy(in + 256, &mxcsr, 4);
		memset(out, 0, sizeof(out));
		jt_xmm(in, out);
		for (size_t i = 0; i < 256; i++)
			cr_assert_eq(out[i], in[i], "round %u: xmm%zu byte %zu is %#x, want %#x",
				     round, i / 16, i % 16, out[i], in[i]);
		uint32_t got;
		memcpy(&got, out + 256, 4);
		cr_assert_eq(got, mxcsr, "round %u: MXCSR %#x, want %#x", round, got, mxcsr);
	}
	char sym[64];
	snprintf(sym, sizeof(sym), "jt_xmm+%#lx", (unsigned long)jt_off_xmm);
	expect_jmp(sym, 20);
}

Test(live, xmm_and_mxcsr_survive_a_handler)
{
	xmm_case(clobber_handler);
	cr_assert_eq(atomic_load(&clobber_calls), 20, "the handler did not run");
}

Test(live, xmm_and_mxcsr_survive_count_only)
{
	xmm_case(NULL);
}

Test(live, ymm_survive_a_handler)
{
	if (!__builtin_cpu_supports("avx"))
		cr_skip_test("no AVX on this CPU: ymm registers not tested");
	vector_case(jt_ymm, jt_off_ymm, "jt_ymm", 16 * 32, 32, clobber_handler);
}

Test(live, zmm_and_opmasks_survive_a_handler)
{
	if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw"))
		cr_skip_test("no AVX-512F/BW on this CPU: zmm and k registers not tested");
	vector_case(jt_zmm, jt_off_zmm, "jt_zmm", 32 * 64 + 7 * 8, 64, clobber_handler);
}

/* Flags: CF PF AF ZF SF DF OF. */
#define FLAGS_MASK 0xcd5ul

static void gprs_case(selfprobe_handler_fn handler)
{
	attach_off("jt_gprs", jt_off_gprs, handler);
	static const char *names[15] = { "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8",
					 "r9", "r10", "r11", "r12", "r13", "r14", "r15" };
	/* all flags with DF (popfq), none, all but DF and OF alone (the lean
	 * count-only path restores these without popfq) */
	uint64_t flag_sets[4] = { 0x2 | FLAGS_MASK, 0x2, 0x2 | (FLAGS_MASK & ~0x400ul), 0x802 };
	for (int round = 0; round < 20; round++) {
		uint64_t in[16], out[17] = { 0 };
		for (int i = 0; i < 15; i++)
			in[i] = 0x0123456789abcdefull * (uint64_t)(i + 1) ^ (uint64_t)round << 56;
		in[15] = flag_sets[round & 3];
		jt_gprs(in, out);
		for (int i = 0; i < 15; i++)
			cr_assert_eq(out[i], in[i], "round %d: %s %#lx, want %#lx", round, names[i],
				     (unsigned long)out[i], (unsigned long)in[i]);
		cr_assert_eq(out[15] & FLAGS_MASK, in[15] & FLAGS_MASK, "round %d: flags %#lx, want %#lx",
			     round, (unsigned long)(out[15] & FLAGS_MASK), (unsigned long)(in[15] & FLAGS_MASK));
		if (handler) {
			/* the handler's view is the state at the site */
			for (int i = 0; i < 15; i++)
				cr_assert_eq(seen_gprs[i], in[i], "round %d: regs->%s %#lx, want %#lx", round,
					     names[i], (unsigned long)seen_gprs[i], (unsigned long)in[i]);
			cr_assert_eq(seen_rip, (uint64_t)(uintptr_t)jt_gprs + jt_off_gprs);
			cr_assert_eq(seen_rsp, out[16], "regs->rsp %#lx, rsp at the site %#lx",
				     (unsigned long)seen_rsp, (unsigned long)out[16]);
			cr_assert_eq(seen_eflags & FLAGS_MASK, in[15] & FLAGS_MASK, "regs->eflags %#lx",
				     (unsigned long)seen_eflags);
		}
	}
	char sym[64];
	snprintf(sym, sizeof(sym), "jt_gprs+%#lx", (unsigned long)jt_off_gprs);
	expect_jmp(sym, 20);
}

Test(live, gprs_and_flags_survive_a_handler)
{
	gprs_case(clobber_handler);
	cr_assert_eq(atomic_load(&clobber_calls), 20, "the handler did not run");
}

Test(live, gprs_and_flags_survive_count_only)
{
	gprs_case(NULL);
}

/* ===================================== 4. handlers change registers */

static int skip_handler(struct selfprobe_ctx *ctx, void *data)
{
	(void)data;
	struct selfprobe_regs *r = selfprobe_regs(ctx);
	r->rax = 42;
	r->rip = *(uint64_t *)r->rsp;     /* return to the caller */
	r->rsp += 8;
	return 0;
}

static int double_arg_handler(struct selfprobe_ctx *ctx, void *data)
{
	(void)data;
	selfprobe_regs(ctx)->rdi *= 2;
	return 0;
}

static int redirect_handler(struct selfprobe_ctx *ctx, void *data)
{
	(void)data;
	selfprobe_regs(ctx)->rip = (uint64_t)(uintptr_t)jt_alt;
	return 0;
}

static int toggle_zf_handler(struct selfprobe_ctx *ctx, void *data)
{
	(void)data;
	selfprobe_regs(ctx)->eflags ^= 0x40;
	return 0;
}

TestSuite(regs, .init = setup_auto);

Test(regs, skip_the_function_through_the_slow_path)
{
	attach("uprobe:jt_skipme", skip_handler);
	jt_skip_runs = 0;
	CALL_N(jt_skipme(a), 42);
	cr_assert_eq(jt_skip_runs, 0, "the skipped function ran %lu times", (unsigned long)jt_skip_runs);
	expect_jmp("jt_skipme", N);
}

Test(regs, change_an_argument_on_the_fast_path)
{
	attach("uprobe:jt_argme", double_arg_handler);
	CALL_N(jt_argme(a), 2 * a + 100);
	expect_jmp("jt_argme", N);
}

Test(regs, change_flags_mid_function)
{
	attach("uprobe:jt_flagme+2", toggle_zf_handler);
	CALL_N(jt_flagme(a), a ? 2 : 1);
	expect_jmp("jt_flagme+0x2", N);
}

Test(regs, redirect_rip_to_another_function)
{
	attach("uprobe:jt_argme", redirect_handler);
	CALL_N(jt_argme(a), a + 7);
	expect_jmp("jt_argme", N);
}

/* ============ 5. attach/detach up to 10,000 times under 2 hammers
 *
 * Each round waits for the hammers to be scheduled several times; on a
 * machine loaded by other work (two cores, ctest -j2 beside heavier tests)
 * a round took ten times its idle 1 ms and 10,000 of them outran the
 * timeout.  So the rounds stop at ROUNDS or, past MIN_ROUNDS, after
 * ROUND_BUDGET_S seconds: every round run is checked exactly, and a detach
 * that never returns still fails the test by its timeout. */

#define HAMMERS 2
#define ROUNDS 10000
#define MIN_ROUNDS 2000
#define ROUND_BUDGET_S 50

struct hammer_slot {
	_Atomic long calls;
	_Atomic unsigned acked;
	char pad[64 - sizeof(long) - sizeof(unsigned)];
};
static struct hammer_slot slots[HAMMERS] __attribute__((aligned(64)));
static _Atomic int h_run, h_quit;
static _Atomic unsigned h_gen;
static _Atomic long h_bad, h_hits;

static int hammer_handler(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx, (void)data;
	atomic_fetch_add_explicit(&h_hits, 1, memory_order_relaxed);
	return 0;
}

/* Paused hammers sleep on h_run (a futex) so the main thread gets a CPU. */
static void futex_wait(_Atomic int *addr, int val)
{
	syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake_all(_Atomic int *addr)
{
	syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

static void *hammer(void *arg)
{
	struct hammer_slot *me = arg;
	long calls = 0;
	for (;;) {
		if (!atomic_load(&h_run)) {
			/* every call counted so far has returned, handler included;
			 * a new pause (h_gen moved) before we saw the resume is
			 * acknowledged again */
			unsigned g = atomic_load(&h_gen);
			atomic_store(&me->acked, g);
			while (!atomic_load(&h_run) && atomic_load(&h_gen) == g) {
				if (atomic_load(&h_quit))
					return NULL;
				futex_wait(&h_run, 0);
			}
			continue;
		}
		uint64_t a = (uint64_t)calls & 0xffff;
		if (jt_hammer(a) != a + 5)
			atomic_fetch_add(&h_bad, 1);
		atomic_store_explicit(&me->calls, ++calls, memory_order_release);
		/* 2 hammers on 2 cores: let the main thread in when it wakes,
		 * not a time slice later */
		if ((calls & 63) == 0)
			sched_yield();
	}
}

/* The main thread waits by sleeping: yielding would let a spinning hammer
 * keep the CPU for a whole time slice. */
static void nap(void)
{
	struct timespec ts = { 0, 20000 };
	nanosleep(&ts, NULL);
}

static long total_calls(void)
{
	long n = 0;
	for (int i = 0; i < HAMMERS; i++)
		n += atomic_load(&slots[i].calls);
	return n;
}

static void h_pause(void)
{
	unsigned g = atomic_fetch_add(&h_gen, 1) + 1;
	atomic_store(&h_run, 0);
	futex_wake_all(&h_run);   /* a sleeper of an earlier pause re-acknowledges */
	for (int i = 0; i < HAMMERS; i++)
		while (atomic_load(&slots[i].acked) != g)
			nap();
}

static void h_resume(void)
{
	atomic_store(&h_run, 1);
	futex_wake_all(&h_run);
}

/* Let the hammers make at least MIN more calls. */
static void h_progress(long min)
{
	long want = total_calls() + min;
	while (total_calls() < want)
		nap();
}

Test(hammer, attach_detach_up_to_10000_times, .init = setup_auto, .timeout = 150)
{
	atomic_store(&h_run, 1);
	pthread_t t[HAMMERS];
	for (int i = 0; i < HAMMERS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, hammer, &slots[i]), 0);
	h_progress(1000);
	long exact_calls = 0, jmp_rounds = 0, checked_rounds = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rounds = 0;
	for (int round = 0; round < ROUNDS; round++, rounds++) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (round >= MIN_ROUNDS && t1.tv_sec - t0.tv_sec > ROUND_BUDGET_S)
			break;
		/* attach while they run */
		struct selfprobe_link *l = selfprobe_attach("uprobe:jt_hammer", hammer_handler, NULL);
		cr_assert_not_null(l, "round %d: attach: %s", round, strerror(errno));
		/* exact while attached: every call between two pauses is a hit */
		h_pause();
		long c0 = total_calls(), k0 = atomic_load(&h_hits);
		h_resume();
		h_progress(20);
		h_pause();
		long c1 = total_calls(), k1 = atomic_load(&h_hits);
		cr_assert_eq(k1 - k0, c1 - c0, "round %d: %ld hits for %ld calls while attached",
			     round, k1 - k0, c1 - c0);
		exact_calls += c1 - c0;
		if (round % 1000 == 0 || round == ROUNDS - 1) {
			struct entry e = entry_of("jt_hammer");
			jmp_rounds += !strcmp(e.mode, "jmp");
			checked_rounds++;
			cr_expect_str_eq(e.mode, "jmp", "round %d: jt_hammer on %s (%s)", round, e.mode, e.reason);
		}
		/* detach while they run: no handler call once it returns */
		h_resume();
		cr_assert_eq(selfprobe_detach(l), 0, "round %d: detach", round);
		long after = atomic_load(&h_hits);
		h_progress(20);
		cr_assert_eq(atomic_load(&h_hits), after, "round %d: %ld handler calls after detach returned",
			     round, atomic_load(&h_hits) - after);
		cr_assert_eq(atomic_load(&h_bad), 0, "round %d: jt_hammer returned a wrong value", round);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	atomic_store(&h_quit, 1);
	atomic_store(&h_run, 0);
	futex_wake_all(&h_run);
	for (int i = 0; i < HAMMERS; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(atomic_load(&h_bad), 0, "jt_hammer returned a wrong value");
	cr_assert_geq(exact_calls, 20L * rounds);
	printf("hammer: %d rounds in %.1f s, %ld calls checked exactly, %ld total calls, "
	       "jmp in %ld of %ld sampled rounds\n", rounds,
	       (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
	       exact_calls, total_calls(), jmp_rounds, checked_rounds);
	fflush(stdout);
}

/* ================================== 7. the stack a hit needs
 *
 * A jmp hit runs on the probed thread's own stack, below its red zone
 * (tramp.h): the trampoline first skips the 128-byte red zone, then
 *   - count-only sites (the lean path): flags and the caller-saved GPRs,
 *     aligned, and the counting call: about 100 bytes + sp_tramp_count;
 *   - sites with handlers: a struct selfprobe_regs (152 bytes; 272 with
 *     the red zone), aligned to 16, sp_tramp_dispatch and sp_dispatch's
 *     frames (general registers only), then sp_call_preserving_vectors'
 *     frame and an XSAVE area (XSAVEC: the components in use, up to the
 *     CPUID size: about 2.7 KiB with AVX-512) aligned to 64, then the
 *     handler's own frames;
 *   - on a thread's first hit, its per-thread counter set-up on top.
 * Measured on a 64 KiB thread stack of our own, filled with a pattern: the
 * deepest word touched below the caller's rsp, for the thread's first hit
 * and then, after refilling, over 100,000 more hits (the steady state),
 * scanned from inside the thread (its exit code would dirty the stack).
 * Printed; the steady state is bounded: count-only deeper than the red
 * zone (else the hit did not run the trampoline) and within 1 KiB; a
 * trivial handler deeper than the register frame and within 1 KiB + 4 KiB
 * (the XSAVE area).
 */

#define STACK_SIZE (64 * 1024)
#define STACK_FILL 0xa5a5a5a5a5a5a5a5ull
#define STACK_CALLS 100000

static _Atomic long stack_hits;

static int trivial_handler(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx, (void)data;
	atomic_fetch_add_explicit(&stack_hits, 1, memory_order_relaxed);
	return 0;
}

struct stack_run {
	volatile uint64_t *lo;   /* the stack's lowest word */
	uintptr_t sp;            /* rsp in the thread function, at its calls */
	uintptr_t first_low;     /* deepest word touched by the first call */
	uintptr_t steady_low;    /* ... by the other calls */
	uint64_t bad;
};

/* Deepest word not holding the pattern, scanning up from LO to HI. */
static uintptr_t deepest(volatile uint64_t *lo, uintptr_t hi)
{
	volatile uint64_t *p = lo;
	while ((uintptr_t)p < hi && *p == STACK_FILL)
		p++;
	return (uintptr_t)p;
}

static void *stack_thread(void *arg)
{
	struct stack_run *r = arg;
	uintptr_t sp;
	__asm__ volatile("mov %%rsp, %0" : "=r"(sp));
	r->sp = sp;
	/* a thread's first hits take the C path: they ask whose they are
	 * until its stack is looked up (foreign.h) */
	for (uint64_t i = 0; i <= SP_FOREIGN_ASKS; i++)
		r->bad += jt_safe(i) != i + 1;
	r->first_low = deepest(r->lo, sp);
	/* refill below us (the pattern loop calls nothing) and go on */
	for (volatile uint64_t *p = r->lo; (uintptr_t)p < sp - 64; p++)
		*p = STACK_FILL;
	for (uint64_t i = SP_FOREIGN_ASKS + 1; i < STACK_CALLS; i++)
		r->bad += jt_safe(i) != i + 1;
	r->steady_low = deepest(r->lo, sp);
	return NULL;
}

/* Bytes below the caller's rsp: the first call's, then the steady state's. */
static void stack_used(long *first, long *steady)
{
	uint64_t *stack = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	cr_assert_neq(stack, MAP_FAILED);
	for (size_t i = 0; i < STACK_SIZE / 8; i++)
		stack[i] = STACK_FILL;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	cr_assert_eq(pthread_attr_setstack(&attr, stack, STACK_SIZE), 0);
	struct stack_run r = { .lo = stack };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, &attr, stack_thread, &r), 0);
	pthread_join(t, NULL);
	pthread_attr_destroy(&attr);
	cr_assert_eq(r.bad, 0, "jt_safe returned wrong values on the small stack");
	cr_assert_gt(r.first_low, (uintptr_t)stack, "the whole 64 KiB stack was used");
	*first = (long)(r.sp - r.first_low);
	*steady = (long)(r.sp - r.steady_low);
	munmap(stack, STACK_SIZE);
}

Test(stack, a_hit_fits_a_small_stack, .init = setup_auto)
{
	long base_first, base, co_first, co, h_first, h;
	stack_used(&base_first, &base);
	struct selfprobe_link *l = attach("uprobe:jt_safe", NULL);
	stack_used(&co_first, &co);
	expect_jmp("jt_safe", STACK_CALLS);
	cr_assert_eq(selfprobe_detach(l), 0);
	attach("uprobe:jt_safe", trivial_handler);
	stack_used(&h_first, &h);
	cr_assert_eq(atomic_load(&stack_hits), STACK_CALLS);
	/* the same probe attached again (another handler): the same record,
	 * its hits added to the first attachment's */
	expect_jmp("jt_safe", 2 * STACK_CALLS);
	printf("stack below the caller's rsp, 64 KiB thread, %d calls of a jmp-probed function:\n"
	       "  unprobed:   %ld bytes\n"
	       "  count-only: %ld bytes a hit (%ld on the thread's first hits)\n"
	       "  handler:    %ld bytes a hit (%ld on the thread's first hits)\n",
	       STACK_CALLS, base, co, co_first, h, h_first);
	fflush(stdout);
	cr_assert_leq(base, 64, "unprobed: %ld bytes for a leaf call?", base);
	cr_assert_gt(co, 8 + 128 + 8, "count-only: %ld bytes: not below the red zone: did the hit "
		     "take the trampoline?", co);
	cr_assert_leq(co, 1024, "a count-only hit needs %ld bytes", co);
	/* the inline count (fastcount.h) saves two registers and calls
	 * nothing: exactly the return address, the red zone and 16 bytes */
	if (sp_fastcount.on)
		cr_assert_eq(co, 8 + 128 + 16, "count-only: %ld bytes a hit: the inline count was not "
			     "taken", co);
	else
		printf("the trampoline's inline count is off here (no rseq registered by glibc, or "
		       "no membarrier RSEQ): count-only hits took the C path\n");
	cr_assert_gt(h, 8 + 128 + 152, "handler: %ld bytes: less than the red zone and the register "
		     "frame: did the hit take the trampoline?", h);
	/* a register frame, the dispatch's C frames and the vector save
	 * (AMX's tiles excluded: xsave.c) */
	cr_assert_leq(h, 1024 + 4096, "a hit with a handler needs %ld bytes", h);
}
