/* emulate — run a decoded probe-site instruction on a saved register set.
 *
 * Called from the SIGTRAP handler: no allocation, no stdio, no locks.  Every
 * case reads what it needs before it writes anything, so instructions that
 * use rsp both as an operand and implicitly (push %rsp, call *8(%rsp)) see
 * the value the CPU would: the one before the instruction.
 *
 * Memory accesses (push/pop/call/ret/indirect through memory) go straight to
 * the interrupted thread's stack and data: the caller is that thread.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "emulate.h"

#define FL_CF (1u << 0)
#define FL_PF (1u << 2)
#define FL_ZF (1u << 6)
#define FL_SF (1u << 7)
#define FL_OF (1u << 11)

/* enum sp_gpr → field of struct selfprobe_regs. */
static const size_t gpr_off[18] = {
	[SP_R15] = offsetof(struct selfprobe_regs, r15),
	[SP_R14] = offsetof(struct selfprobe_regs, r14),
	[SP_R13] = offsetof(struct selfprobe_regs, r13),
	[SP_R12] = offsetof(struct selfprobe_regs, r12),
	[SP_RBP] = offsetof(struct selfprobe_regs, rbp),
	[SP_RBX] = offsetof(struct selfprobe_regs, rbx),
	[SP_R11] = offsetof(struct selfprobe_regs, r11),
	[SP_R10] = offsetof(struct selfprobe_regs, r10),
	[SP_R9]  = offsetof(struct selfprobe_regs, r9),
	[SP_R8]  = offsetof(struct selfprobe_regs, r8),
	[SP_RAX] = offsetof(struct selfprobe_regs, rax),
	[SP_RCX] = offsetof(struct selfprobe_regs, rcx),
	[SP_RDX] = offsetof(struct selfprobe_regs, rdx),
	[SP_RSI] = offsetof(struct selfprobe_regs, rsi),
	[SP_RDI] = offsetof(struct selfprobe_regs, rdi),
	[15]     = offsetof(struct selfprobe_regs, rip),
	[16]     = offsetof(struct selfprobe_regs, eflags),
	[SP_RSP] = offsetof(struct selfprobe_regs, rsp),
};

static uint64_t *gpr(struct selfprobe_regs *r, int i)
{
	return (uint64_t *)((char *)r + gpr_off[i]);
}

static bool valid_gpr(int i)
{
	return (i >= SP_R15 && i <= SP_RDI) || i == SP_RSP;
}

static uint64_t load64(uint64_t addr)
{
	uint64_t v;
	memcpy(&v, (const void *)(uintptr_t)addr, 8);
	return v;
}

static void push64(struct selfprobe_regs *r, uint64_t v)
{
	r->rsp -= 8;
	memcpy((void *)(uintptr_t)r->rsp, &v, 8);
}

static uint64_t pop64(struct selfprobe_regs *r)
{
	uint64_t v = load64(r->rsp);
	r->rsp += 8;
	return v;
}

bool sp_emulate_cond(uint8_t cond, uint64_t eflags)
{
	bool cf = eflags & FL_CF, pf = eflags & FL_PF, zf = eflags & FL_ZF;
	bool sf = eflags & FL_SF, of = eflags & FL_OF;
	bool base;

	/* even conditions are the positive forms; odd ones their negation */
	switch ((cond & 0xf) >> 1) {
	case 0: base = of; break;                   /* jo  / jno */
	case 1: base = cf; break;                   /* jb  / jae */
	case 2: base = zf; break;                   /* je  / jne */
	case 3: base = cf || zf; break;             /* jbe / ja  */
	case 4: base = sf; break;                   /* js  / jns */
	case 5: base = pf; break;                   /* jp  / jnp */
	case 6: base = sf != of; break;             /* jl  / jge */
	default: base = zf || sf != of; break;      /* jle / jg  */
	}
	return base ^ (cond & 1);
}

bool sp_emulate_can(const struct sp_insn *insn)
{
	switch (insn->cls) {
	case SP_INSN_NOP:
	case SP_INSN_JMP_REL:
	case SP_INSN_JCC_REL:
	case SP_INSN_JRCXZ:
	case SP_INSN_LOOP:
	case SP_INSN_CALL_REL:
	case SP_INSN_RET:
		return true;
	case SP_INSN_PUSH_REG:
	case SP_INSN_POP_REG:
		return valid_gpr(insn->reg);
	case SP_INSN_MOV_REG_REG:
		return valid_gpr(insn->reg) && valid_gpr(insn->reg2) &&
		       (insn->opsize == 32 || insn->opsize == 64);
	case SP_INSN_JMP_IND:
	case SP_INSN_CALL_IND:
		if (!insn->ind_mem)
			return valid_gpr(insn->reg);
		return (insn->mem.base == SP_NOREG || insn->mem.base == SP_RIP_BASE ||
			valid_gpr(insn->mem.base)) &&
		       (insn->mem.index == SP_NOREG || valid_gpr(insn->mem.index));
	default:
		return false;
	}
}

/* Target of jmp/call r/m64, evaluated on the registers before the insn. */
static uint64_t indirect_target(const struct sp_insn *insn, struct selfprobe_regs *r,
				uint64_t next, uint64_t fsbase, uint64_t gsbase)
{
	if (!insn->ind_mem)
		return *gpr(r, insn->reg);
	const struct sp_memop *m = &insn->mem;
	uint64_t ea = (uint64_t)m->disp;
	if (m->base == SP_RIP_BASE)
		ea += next;
	else if (m->base != SP_NOREG)
		ea += *gpr(r, m->base);
	if (m->index != SP_NOREG)
		ea += *gpr(r, m->index) * m->scale;
	if (m->fs)
		ea += fsbase;
	if (m->gs)
		ea += gsbase;
	return load64(ea);
}

/* rcx or ecx, as the address size of jrcxz/loop says. */
static uint64_t count_reg(const struct sp_insn *insn, const struct selfprobe_regs *r)
{
	return insn->opsize == 32 ? (uint32_t)r->rcx : r->rcx;
}

int sp_emulate(const struct sp_insn *insn, struct selfprobe_regs *regs,
	       uint64_t fsbase, uint64_t gsbase)
{
	uint64_t next = regs->rip + insn->len;
	uint64_t v;

	if (!sp_emulate_can(insn))
		return -ENOTSUP;
	switch (insn->cls) {
	case SP_INSN_NOP:
		regs->rip = next;
		break;
	case SP_INSN_PUSH_REG:
		v = *gpr(regs, insn->reg);          /* push %rsp pushes the old rsp */
		push64(regs, v);
		regs->rip = next;
		break;
	case SP_INSN_POP_REG:
		v = pop64(regs);
		*gpr(regs, insn->reg) = v;
		regs->rip = next;
		break;
	case SP_INSN_MOV_REG_REG:
		v = *gpr(regs, insn->reg2);
		*gpr(regs, insn->reg) = insn->opsize == 32 ? (uint32_t)v : v;
		regs->rip = next;
		break;
	case SP_INSN_JMP_REL:
		regs->rip = insn->target;
		break;
	case SP_INSN_JCC_REL:
		regs->rip = sp_emulate_cond(insn->cond, regs->eflags) ? insn->target : next;
		break;
	case SP_INSN_JRCXZ:
		regs->rip = count_reg(insn, regs) == 0 ? insn->target : next;
		break;
	case SP_INSN_LOOP: {
		/* loop with a 32-bit count writes ecx, which zero-extends */
		uint64_t c = count_reg(insn, regs) - 1;
		if (insn->opsize == 32)
			c = (uint32_t)c;
		regs->rcx = c;
		bool zf = regs->eflags & FL_ZF;
		bool taken = c != 0 && (insn->cond == 0 || (insn->cond == 1 ? zf : !zf));
		regs->rip = taken ? insn->target : next;
		break;
	}
	case SP_INSN_CALL_REL:
		push64(regs, next);
		regs->rip = insn->target;
		break;
	case SP_INSN_RET:
		v = pop64(regs);
		regs->rsp += insn->ret_imm;
		regs->rip = v;
		break;
	case SP_INSN_JMP_IND:
		regs->rip = indirect_target(insn, regs, next, fsbase, gsbase);
		break;
	case SP_INSN_CALL_IND:
		v = indirect_target(insn, regs, next, fsbase, gsbase);
		push64(regs, next);
		regs->rip = v;
		break;
	default:
		return -ENOTSUP;
	}
	return 0;
}
