/* targets.S — the probed functions of bench-trigger.
 *
 * Written in assembly so that the first instruction of each function is
 * exactly what the benchmark's name says, whatever the compiler: the cost of
 * a probe depends on the instruction it displaces (the kernel emulates some,
 * single-steps others; we relocate or emulate).  Same shapes as the Linux
 * selftests' bench_trigger.c.  Functions are 16-byte aligned, so the bytes
 * after a short one are the assembler's nop padding, as after any function a
 * C compiler emits.
 */
#include <sys/sdt.h>

	.text

#define FUNC(name)			\
	.p2align 4;			\
	.globl name;			\
	.type name, @function;		\
name:

#define END(name)	.size name, .-name

/* nopl 0x0(%rax,%rax,1) with its zero disp8 kept: the assembler would
 * otherwise shorten the operand and give a 4-byte nop. */
#define NOP5	.byte 0x0f, 0x1f, 0x44, 0x00, 0x00

FUNC(uprobe_target_nop)
	nop
	ret
END(uprobe_target_nop)

FUNC(uprobe_target_push)
	push %rbp
	pop %rbp
	ret
END(uprobe_target_push)

FUNC(uprobe_target_ret)
	ret
END(uprobe_target_ret)

FUNC(uprobe_target_nop5)
	NOP5
	ret
END(uprobe_target_nop5)

/* A USDT site whose instruction is a 5-byte nop.  sys/sdt.h always emits a
 * 1-byte `nop` (its _SDT_NOP is not configurable), and `dtrace -G` only wraps
 * the same macro, so we reuse sdt.h's assembler form with _SDT_NOP redefined:
 * the note (.note.stapsdt, provider "bench", name "nop5", no semaphore, no
 * arguments) is exactly the one the C macro would write, only the site is
 * 0f 1f 44 00 00.  The macro is expanded after the redefinition, so the
 * commas inside the operand never reach a macro argument list. */
#undef _SDT_NOP
#define _SDT_NOP NOP5

FUNC(usdt_target_nop5)
	STAP_PROBE(bench, nop5)
	ret
END(usdt_target_nop5)

	.section .note.GNU-stack, "", @progbits
