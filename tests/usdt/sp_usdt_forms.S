/* sp_usdt_forms.S — USDT sites in the forms libbpf's usdt.h can emit
 * (issue 19): sys/sdt.h's own assembler macro with _SDT_NOP redefined, so
 * each note is byte for byte what the header writes; only the site's
 * instruction differs.
 *   uf_nop5(a) → a + 1   a 5-byte nop (0f 1f 44 00 00)
 *   uf_pair(a) → a + 2   a 1-byte nop followed by a 10-byte nop (the pair
 *                        meant for the kernel's optimisation) */
#include <sys/sdt.h>

	.text

#define NOP5	.byte 0x0f, 0x1f, 0x44, 0x00, 0x00
#define NOP1_NOP10 nop; .byte 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00

#undef _SDT_NOP
#define _SDT_NOP NOP5
	.p2align 4
	.globl	uf_nop5
	.type	uf_nop5, @function
uf_nop5:
	STAP_PROBE1(forms, nop5, -8@%rdi)
	lea	1(%rdi), %rax
	ret
	.size	uf_nop5, . - uf_nop5

#undef _SDT_NOP
#define _SDT_NOP NOP1_NOP10
	.p2align 4
	.globl	uf_pair
	.type	uf_pair, @function
uf_pair:
	STAP_PROBE1(forms, pair, -8@%rdi)
	lea	2(%rdi), %rax
	ret
	.size	uf_pair, . - uf_pair

	.section .note.GNU-stack, "", @progbits
