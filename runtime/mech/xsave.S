/* xsave.S — call a handler with the whole vector/FPU state preserved.
 *
 * The jmp path reaches C code without the kernel saving anything for us.
 * The trampoline and the dispatch code touch only general registers
 * (-mgeneral-regs-only); a handler is arbitrary C (memcpy, printf: AVX,
 * AVX-512), so around it the user state enabled in XCR0 (but AMX's tiles,
 * see xsave.c) is saved with
 * XSAVE (XSAVEC when the CPU has it: compacted, smaller, and it skips
 * components in their initial state) and restored with XRSTOR — at a
 * function entry and mid-function alike.  Without XSAVE, FXSAVE (x87, SSE).
 *
 *   int sp_call_preserving_vectors(int (*fn)(void *, void *, const void *area), void *ctx, void *data)
 *
 * sp_xsave_size / sp_xsave_kind are set once by sp_xsave_init() (C).
 */
	.text
	.globl	sp_call_preserving_vectors
	.hidden	sp_call_preserving_vectors
	.type	sp_call_preserving_vectors, @function
sp_call_preserving_vectors:
	.cfi_startproc
	push	%rbp
	.cfi_def_cfa_offset 16
	.cfi_offset %rbp, -16
	mov	%rsp, %rbp
	.cfi_def_cfa_register %rbp
	push	%rbx
	push	%r12
	push	%r13
	push	%r14
	.cfi_offset %rbx, -24
	.cfi_offset %r12, -32
	.cfi_offset %r13, -40
	.cfi_offset %r14, -48
	mov	%rdi, %r12			/* fn */
	mov	%rsi, %r13			/* ctx */
	mov	%rdx, %r14			/* data */
	mov	sp_xsave_size(%rip), %rbx
	sub	%rbx, %rsp
	and	$-64, %rsp
	/* zero the area's header (bytes 512..575): XSAVE leaves XCOMP_BV
	 * alone and XRSTOR faults on garbage there */
	xor	%eax, %eax
	mov	%rax, 512(%rsp)
	mov	%rax, 520(%rsp)
	mov	%rax, 528(%rsp)
	mov	%rax, 536(%rsp)
	mov	%rax, 544(%rsp)
	mov	%rax, 552(%rsp)
	mov	%rax, 560(%rsp)
	mov	%rax, 568(%rsp)
	mov	sp_xsave_kind(%rip), %ecx
	mov	sp_xsave_mask(%rip), %eax
	mov	sp_xsave_mask+4(%rip), %edx
	cmp	$2, %ecx
	je	1f
	cmp	$1, %ecx
	je	2f
	fxsave64 (%rsp)
	jmp	3f
1:	xsavec64 (%rsp)
	jmp	3f
2:	xsave64	(%rsp)
3:	mov	%r13, %rdi
	mov	%r14, %rsi
	mov	%rsp, %rdx			/* the saved state, for the handler's arguments */
	call	*%r12
	mov	%eax, %ebx			/* the handler's result */
	mov	sp_xsave_kind(%rip), %ecx
	mov	sp_xsave_mask(%rip), %eax
	mov	sp_xsave_mask+4(%rip), %edx
	test	%ecx, %ecx
	jz	4f
	xrstor64 (%rsp)
	jmp	5f
4:	fxrstor64 (%rsp)
5:	mov	%ebx, %eax
	lea	-32(%rbp), %rsp
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%rbx
	pop	%rbp
	.cfi_def_cfa %rsp, 8
	ret
	.cfi_endproc
	.size	sp_call_preserving_vectors, .-sp_call_preserving_vectors

	.section .note.GNU-stack,"",@progbits
