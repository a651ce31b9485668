/* uret.S — where probed functions return to (see uret.h).
 *
 * Entered by the probed function's `ret`: %rsp is the caller's, rax/rdx and
 * xmm0/xmm1 (and st0) hold the return value, callee-saved registers hold the
 * caller's values.  Builds a struct selfprobe_regs below the red zone,
 * calls sp_uret_dispatch (which runs the return handlers, XSAVE'ing the
 * vector state around them, and writes the address to continue at into
 * the dead return-address slot at -8(%rsp)), restores the registers and
 * jumps there.  -8(%rsp) lies in the red zone, which signals never touch,
 * so nothing can overwrite it between the last two instructions.
 *
 * CFI: from the call to sp_uret_dispatch on, %rbx holds the frame; the
 * caller's rsp is %rbx+0x110 and its pc is the frame's rip field, which
 * sp_uret_dispatch fills before any handler runs: handlers that unwind see
 * the real caller.
 */
	.text
	.globl	sp_uret_trampoline
	.hidden	sp_uret_trampoline
	.type	sp_uret_trampoline, @function
	.p2align 4
	nop				/* unwinders look up pc-1 */
sp_uret_trampoline:
	.cfi_startproc simple
	.cfi_def_cfa %rsp, 0
	lea	-0x80(%rsp), %rsp
	.cfi_adjust_cfa_offset 0x80
	lea	-0x18(%rsp), %rsp
	.cfi_adjust_cfa_offset 0x18
	push	%rdi
	push	%rsi
	push	%rdx
	push	%rcx
	push	%rax
	push	%r8
	push	%r9
	push	%r10
	push	%r11
	push	%rbx
	push	%rbp
	push	%r12
	push	%r13
	push	%r14
	push	%r15
	.cfi_adjust_cfa_offset 0x78
	/* eflags: the status flags are dead at a return (not preserved across
	 * calls, DF clear), and pushfq is slow: a fixed value for handlers */
	movq	$0x202, 0x80(%rsp)
	lea	0x110(%rsp), %rax
	mov	%rax, 0x88(%rsp)		/* rsp: the caller's */
	movq	$0, 0x78(%rsp)			/* rip: filled by sp_uret_dispatch */
	cld
	mov	%rsp, %rbx
	.cfi_def_cfa %rbx, 0x110
	.cfi_offset %rip, -0x98
	.cfi_offset %rbx, -0xe8
	.cfi_offset %rbp, -0xf0
	.cfi_offset %r12, -0xf8
	.cfi_offset %r13, -0x100
	.cfi_offset %r14, -0x108
	.cfi_offset %r15, -0x110
	and	$-16, %rsp
	mov	%rbx, %rdi
	call	sp_uret_dispatch
	mov	%rbx, %rsp
	pop	%r15
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%rbp
	pop	%rbx
	pop	%r11
	pop	%r10
	pop	%r9
	pop	%r8
	pop	%rax
	pop	%rcx
	pop	%rdx
	pop	%rsi
	pop	%rdi
	lea	0x98(%rsp), %rsp
	jmp	*-8(%rsp)
	.cfi_endproc
	.size	sp_uret_trampoline, .-sp_uret_trampoline

	.section .note.GNU-stack,"",@progbits
