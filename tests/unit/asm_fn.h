/* asm_fn — hand-laid assembler functions for the unit tests: FN(name)
 * opens one (16-byte aligned, int3 padding, hidden), END(name) closes it
 * with a NAME_end label, so a test knows where each function ends. */
#ifndef SP_ASM_FN_H
#define SP_ASM_FN_H

#define FN(name) ".p2align 4, 0xcc\n .globl " #name "\n .hidden " #name "\n" \
		 ".type " #name ",@function\n" #name ":\n"
#define END(name) #name "_end:\n .globl " #name "_end\n .hidden " #name "_end\n" \
		  ".size " #name ", .-" #name "\n"

#endif
