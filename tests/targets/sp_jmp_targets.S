/* sp_jmp_targets.S — libsp_jmp_lp.so, for test_jmp.c: a mid-function probe
 * site whose jmp window holds several instructions, in an object that has
 * exception landing pads (a .gcc_except_table section).  The unwinder
 * enters landing pads without any branch the runtime's index could see, so
 * such a window must stay on int3 there (tests/unit/test_jmp.c
 * path::mid_function_window_with_landing_pads); the same shape in an object
 * without the table may take the jmp.
 *
 *   jt_lp_mid(a) → a + 3;   jt_lp_off = 3, the site's offset
 */
	.text
	.p2align 4
	.globl	jt_lp_mid
	.type	jt_lp_mid, @function
jt_lp_mid:
	mov	%rdi, %rax
.Ljt_lp_site:
	add	$1, %rax		/* 4 bytes: the window needs the next one too */
	add	$2, %rax
	ret
	.size	jt_lp_mid, . - jt_lp_mid

	.section .rodata
	.p2align 3
	.globl	jt_lp_off
	.type	jt_lp_off, @object
jt_lp_off:
	.quad	.Ljt_lp_site - jt_lp_mid
	.size	jt_lp_off, 8

	/* an (empty) LSDA section: its presence is what the runtime looks at */
	.section .gcc_except_table, "a", @progbits
	.byte	0xff, 0xff, 0x01, 0x00

	.section .note.GNU-stack, "", @progbits
