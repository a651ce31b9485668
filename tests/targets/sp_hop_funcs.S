/* sp_hop_funcs.S — the functions of sp_hop (e2e_hop.py): an entry whose
 * 5-byte window is blocked by a loop's back-edge into its byte 3, with
 * unused int3 padding after the function before it, so a probe there
 * takes a hop (a 2-byte jmp to a 5-byte jmp in that padding).
 *
 *   hop_loop(a)  → 3a for a >= 1       hop_prev(a) → a + 1
 *
 * hop_spacer (160 bytes, ending flush with hop_prev) keeps any other
 * padding out of the hop's ±127-byte reach before hop_prev, so the pad
 * can only be the fill between hop_prev and hop_loop.
 */
	.text
	.p2align 4, 0xcc
	.globl	hop_spacer
	.type	hop_spacer, @function
hop_spacer:
	.rept 53
	add	$1, %eax		/* 3 bytes each: 159 */
	.endr
	ret
	.size	hop_spacer, . - hop_spacer

	.p2align 4, 0xcc
	.globl	hop_prev
	.type	hop_prev, @function
hop_prev:
	lea	1(%rdi), %rax		/* 4 bytes */
	ret
	.size	hop_prev, . - hop_prev	/* then 11 bytes of int3 fill */

	.p2align 4, 0xcc
	.globl	hop_loop
	.type	hop_loop, @function
hop_loop:
	mov	%rdi, %rax		/* +0 48 89 f8 */
1:	add	$2, %rax		/* +3 48 83 c0 02: the back-edge lands here */
	sub	$1, %rdi
	jg	1b
	ret
	.size	hop_loop, . - hop_loop

	.section .note.GNU-stack, "", @progbits
