/* sp_carrier_funcs.S — a hop whose pad is made in a carrier (hop.h):
 * cr_short is too short for a 5-byte jmp, and the code around it is packed
 * with no padding within reach, as python3.11's is; cr_host holds a
 * straight 12-byte run after its entry window that nothing enters, the one
 * carrier in reach (the spacers are chains of 2-byte jumps: every other
 * instruction is a branch target).
 *
 *   cr_host(a)  → a + 10        cr_short(a) → (uint32_t)(a + 1)
 *   cr_next(a)  → 2a            cr_spacer_lo(), cr_spacer_hi(): nothing */
	.text

#define SPACER .rept 70; jmp 1f; 1: ; .endr; ret

	.p2align 4, 0xcc
	.globl	cr_spacer_lo
	.type	cr_spacer_lo, @function
cr_spacer_lo:
	SPACER
	.size	cr_spacer_lo, . - cr_spacer_lo

	.globl	cr_host
	.type	cr_host, @function
cr_host:
	mov	%rdi, %rax		/* +0  3 bytes  } the entry's window */
	add	$1, %rax		/* +3  4 bytes  } */
	add	$2, %rax		/* +7  4 bytes: the carrier starts here */
	add	$3, %rax		/* +11 4 bytes */
	add	$4, %rax		/* +15 4 bytes: the carrier ends at +19 */
	ret
	.size	cr_host, . - cr_host

	.globl	cr_short
	.type	cr_short, @function
cr_short:
	lea	1(%rdi), %eax		/* 3 bytes: the hop's first instruction; 4 in all */
	ret
	.size	cr_short, . - cr_short

	.globl	cr_next
	.type	cr_next, @function
cr_next:
	lea	(%rdi,%rdi), %rax
	ret
	.size	cr_next, . - cr_next

	.globl	cr_spacer_hi
	.type	cr_spacer_hi, @function
cr_spacer_hi:
	SPACER
	.size	cr_spacer_hi, . - cr_spacer_hi

	.section .note.GNU-stack,"",@progbits
