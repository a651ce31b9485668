/* sp_sigframe_funcs.S — the function of sp_sigframe: a nop, then two
 * pause instructions (slow: tens to hundreds of cycles) at bytes 1 and 3,
 * so a signal often interrupts a thread inside bytes 1–4 of the entry's
 * 5-byte window.   sf_target(a) → a + 1 */
	.text
	.p2align 4, 0xcc
	.globl	sf_target
	.type	sf_target, @function
sf_target:
	nop
	pause
	pause
	lea	1(%rdi), %rax
	ret
	.size	sf_target, . - sf_target

	.section .note.GNU-stack,"",@progbits
