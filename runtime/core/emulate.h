/* emulate — run a decoded probe-site instruction on a saved register set.
 *
 * The int3 path's cheapest way to resume: instead of executing the displaced
 * instruction, apply its effect to the interrupted thread's registers (and
 * stack, for push/call).  Async-signal-safe: no allocation, no locks.
 * Emulated classes: nop, push/pop r64, mov reg,reg, jmp/jcc/jrcxz/loop rel,
 * call rel32, ret [imm16], jmp/call through a register or memory.
 */
#ifndef SP_EMULATE_H
#define SP_EMULATE_H

#include <stdbool.h>
#include "insn.h"
#include "selfprobe.h"

/* Can INSN be emulated by sp_emulate? */
bool sp_emulate_can(const struct sp_insn *insn);

/* Apply INSN (decoded at regs->rip) to REGS: registers, rip, and the memory
 * at rsp for push/pop/call/ret.  FSBASE/GSBASE are passed for segment-prefixed
 * memory operands.  0, or -ENOTSUP when INSN is not emulated. */
int sp_emulate(const struct sp_insn *insn, struct selfprobe_regs *regs,
	       uint64_t fsbase, uint64_t gsbase);

/* Does the jcc condition COND (0x0 … 0xf) hold for EFLAGS? */
bool sp_emulate_cond(uint8_t cond, uint64_t eflags);

#endif
