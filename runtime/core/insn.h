/* insn — x86-64 instruction decoding and classification with Zydis.
 *
 * The only module that includes Zydis.  It answers three questions about
 * machine code at a probe site:
 *   - what is this instruction (length, class, operands the emulator needs);
 *   - is OFFSET an instruction boundary of a function (decode from its start);
 *   - can this instruction run at another address, and with which bytes
 *     (RIP-relative displacements fixed up), for out-of-line execution.
 */
#ifndef SP_INSN_H
#define SP_INSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sp_insn_class {
	SP_INSN_OTHER = 0,   /* nothing special: run it out of line */
	SP_INSN_NOP,         /* any nop form (90, 66 90, 0f 1f /0 …), endbr64, pause is not */
	SP_INSN_PUSH_REG,    /* push r64 (50+r, REX.B) */
	SP_INSN_POP_REG,     /* pop r64 */
	SP_INSN_MOV_REG_REG, /* mov r64,r64 or mov r32,r32 (zero-extends) */
	SP_INSN_JMP_REL,     /* jmp rel8/rel32 */
	SP_INSN_JCC_REL,     /* jcc rel8/rel32 */
	SP_INSN_JRCXZ,       /* jrcxz/jecxz rel8 */
	SP_INSN_LOOP,        /* loop/loope/loopne rel8 */
	SP_INSN_CALL_REL,    /* call rel32 */
	SP_INSN_RET,         /* ret, ret imm16 */
	SP_INSN_JMP_IND,     /* jmp r/m64 */
	SP_INSN_CALL_IND,    /* call r/m64 */
	SP_INSN_REFUSED,     /* cannot be probed at all (see why) */
};

/* GPR numbering used by the emulator: the field order of struct
 * selfprobe_regs (r15 = 0 … rdi = 14).  -1: none. */
enum sp_gpr {
	SP_R15, SP_R14, SP_R13, SP_R12, SP_RBP, SP_RBX, SP_R11, SP_R10, SP_R9, SP_R8,
	SP_RAX, SP_RCX, SP_RDX, SP_RSI, SP_RDI, SP_RSP = 17, SP_NOREG = -1,
};

/* A memory operand base + index*scale + disp (for indirect jmp/call). */
struct sp_memop {
	int base;            /* enum sp_gpr, SP_NOREG, or SP_RIP_BASE */
	int index;           /* enum sp_gpr or SP_NOREG */
	uint8_t scale;
	int64_t disp;
	bool fs, gs;         /* segment override */
};
#define SP_RIP_BASE 100

/* The longest x86-64 instruction the CPU accepts (longer ones fault, #GP):
 * what a decode is ever given, and the room a copy of one needs. */
#define SP_INSN_MAX_LEN 15

struct sp_insn {
	uint64_t addr;       /* runtime address it was decoded at */
	uint8_t len;
	uint8_t bytes[SP_INSN_MAX_LEN];
	enum sp_insn_class cls;
	const char *why;     /* SP_INSN_REFUSED, or why it cannot be relocated */
	/* operands for the emulated classes */
	int reg;             /* push/pop register; mov destination; jmp/call *reg */
	int reg2;            /* mov source */
	uint8_t opsize;      /* mov: 32 or 64; jrcxz/loop: address size (64 rcx, 32 ecx) */
	uint64_t target;     /* rel branches: absolute target */
	uint8_t cond;        /* jcc: the condition nibble (0x0 jo … 0xf jg); loop: 0 loop, 1 loope, 2 loopne */
	uint16_t ret_imm;    /* ret imm16 */
	bool ind_mem;        /* jmp/call through memory (mem valid) rather than a register */
	struct sp_memop mem;
	/* relocation */
	bool rip_relative;   /* has a RIP-relative memory operand */
	uint8_t disp_offset; /* byte offset and size of that displacement */
	uint8_t disp_size;
	bool relocatable;    /* can run out of line (after sp_insn_relocate) */
};

/* Decode one instruction at CODE (AVAIL bytes readable), as if at runtime
 * address ADDR.  0, or -EINVAL when the bytes do not decode. */
int sp_insn_decode(const uint8_t *code, size_t avail, uint64_t addr, struct sp_insn *out);

/* Bytes that execute INSN at NEW_ADDR with the same effect (RIP-relative
 * displacement adjusted).  Returns the length written into BUF, or -errno
 * with *WHY set (-ERANGE: displacement does not reach; -ENOTSUP: cannot run
 * out of line). */
int sp_insn_relocate(const struct sp_insn *insn, uint64_t new_addr,
		     uint8_t *buf, size_t buflen, const char **why);

/* Is OFF an instruction boundary in the function whose SIZE bytes start at
 * FUNC (runtime address ADDR)?  Decodes linearly from the start.  0, or
 * -EINVAL with *WHY ("offset 0x3 is inside the instruction at +0x1 …"). */
int sp_insn_boundary(const uint8_t *func, size_t size, uint64_t addr, size_t off,
		     char *why, size_t whylen);

/* Human-readable disassembly of INSN (Intel or AT&T: AT&T, like objdump). */
void sp_insn_format(const struct sp_insn *insn, char *buf, size_t len);

/* Fast facts for an object-wide sweep (btindex.c), from an instruction-only
 * decode: the length; a relative branch's target; the target of a
 * RIP-relative memory operand; whether it is an indirect jmp; immediates
 * (absolute values, for non-PIE code).  0, or -EINVAL when the bytes do
 * not decode.  Not thread-safe (a static decoder): registry lock held. */
struct sp_insn_scan {
	uint8_t len;
	bool branch;             /* rel jmp/jcc/call/loop/jrcxz: TARGET */
	uint64_t target;
	bool riprel;             /* a RIP-relative memory operand: RIP_TARGET */
	uint64_t rip_target;
	bool lea;                /* ... of a lea: the program holds RIP_TARGET */
	bool ind_jmp;            /* jmp r/m64 */
	uint8_t n_imm;
	uint64_t imm[2];         /* 32- and 64-bit immediates, sign-extended */
};
int sp_insn_scan(const uint8_t *code, size_t avail, uint64_t addr, struct sp_insn_scan *out);

/* Operands of the few instructions a jump-table dispatch is made of, for
 * the backward slice that finds a table and its bound.  Registers are
 * hardware numbers (rax 0 … r15 15, any width), -1 none; SP_RIP_BASE. */
enum sp_ops_kind {
	SP_OPS_OTHER, SP_OPS_LEA, SP_OPS_MOVSXD, SP_OPS_MOV, SP_OPS_ADD, SP_OPS_CMP,
	SP_OPS_AND, SP_OPS_JCC, SP_OPS_JMP,
};
struct sp_ops_operand {
	enum { SP_OPD_NONE, SP_OPD_REG, SP_OPD_MEM, SP_OPD_IMM } type;
	int reg;                 /* SP_OPD_REG */
	uint8_t size;            /* bits */
	int base, index;         /* SP_OPD_MEM */
	uint8_t scale;
	int64_t disp;            /* SP_OPD_MEM; SP_OPD_IMM: the value */
};
struct sp_insn_ops {
	enum sp_ops_kind kind;
	uint8_t len;
	struct sp_ops_operand op[2];
	uint8_t cond;            /* jcc: the condition nibble */
	uint64_t target;         /* jcc target; lea/mem RIP-relative: the address */
	uint16_t writes;         /* bit r: writes GPR r (any width) */
};
int sp_insn_ops(const uint8_t *code, size_t avail, uint64_t addr, struct sp_insn_ops *out);

#endif
