/* sp_hop_lib.S — libsp_hop_lib.so (e2e_hop_stripped.py): sp_hop_funcs.S's
 * shape in a shared library whose function before the padding is LOCAL
 * (no .dynsym entry), with CFI as compilers emit it.  Its stripped copy
 * (objcopy --strip-all) keeps only .dynsym: where hopl_prev ends is then
 * known from its .eh_frame FDE alone, and the hop at hopl_loop must still
 * be proved.
 *
 *   hopl_loop(a) → 3a for a >= 1
 *
 * hopl_spacer (160 bytes, ending flush with hopl_prev) keeps any other
 * padding out of the hop's reach before hopl_prev.
 */
	.text
	.p2align 4, 0xcc
	.globl	hopl_spacer
	.type	hopl_spacer, @function
hopl_spacer:
	.cfi_startproc
	.rept 53
	add	$1, %eax		/* 3 bytes each: 159 */
	.endr
	ret
	.cfi_endproc
	.size	hopl_spacer, . - hopl_spacer

	.p2align 4, 0xcc
	.type	hopl_prev, @function	/* local: gone from a stripped file */
hopl_prev:
	.cfi_startproc
	lea	1(%rdi), %rax		/* 4 bytes */
	ret
	.cfi_endproc
	.size	hopl_prev, . - hopl_prev	/* then 11 bytes of int3 fill */

	.p2align 4, 0xcc
	.globl	hopl_loop
	.type	hopl_loop, @function
hopl_loop:
	.cfi_startproc
	mov	%rdi, %rax		/* +0 48 89 f8 */
1:	add	$2, %rax		/* +3: the back-edge lands here */
	sub	$1, %rdi
	jg	1b
	ret
	.cfi_endproc
	.size	hopl_loop, . - hopl_loop

	.section .note.GNU-stack, "", @progbits
