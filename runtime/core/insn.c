/* insn — x86-64 instruction decoding and classification with Zydis.
 *
 * The only file that includes Zydis.  Everything above it sees a struct
 * sp_insn: a class, the operands the emulator needs, and what relocation
 * needs (where the RIP-relative displacement sits).
 *
 * Classification policy, one case at a time (the kernel's good_insns_64 in
 * spirit: every refusal names its reason):
 *   - emulated classes (nop, push/pop r64, mov reg,reg, relative branches,
 *     near ret, indirect jmp/call) are recognised from the decoded mnemonic
 *     and operands, never from raw opcode bytes alone, so prefixes (REX, bnd,
 *     notrack, segment) are handled by Zydis;
 *   - relative branches are emulated, never relocated: their target is
 *     relative to where they run;
 *   - a call (relative or indirect) cannot run out of line either: it would
 *     push the slot's return address;
 *   - REFUSED: instructions whose whole point is to trap or leave the
 *     thread's normal flow (int3, int n, ud*, hlt, far transfers, iret,
 *     sysenter) and TSX, whose abort path is a relative target into the
 *     original code and which a trap aborts anyway;
 *   - anything else runs out of line, with a RIP-relative displacement
 *     rewritten for the new address (frida-gum's habit: copy verbatim,
 *     patch only the displacement at raw.disp.offset).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <Zydis/Zydis.h>

#include "insn.h"

/* Hardware register number (Zydis id: rax 0 … r15 15) → enum sp_gpr. */
static const int hw_to_gpr[16] = {
	SP_RAX, SP_RCX, SP_RDX, SP_RBX, SP_RSP, SP_RBP, SP_RSI, SP_RDI,
	SP_R8, SP_R9, SP_R10, SP_R11, SP_R12, SP_R13, SP_R14, SP_R15,
};

/* A 64-bit (or, when ALLOW32, 32-bit) GPR as enum sp_gpr; SP_NOREG otherwise. */
static int gpr_of(ZydisRegister r, bool allow32)
{
	ZydisRegisterClass c = ZydisRegisterGetClass(r);
	if (c != ZYDIS_REGCLASS_GPR64 && !(allow32 && c == ZYDIS_REGCLASS_GPR32))
		return SP_NOREG;
	ZyanI8 id = ZydisRegisterGetId(r);
	if (id < 0 || id > 15)
		return SP_NOREG;
	return hw_to_gpr[id];
}

static int decode_raw(const uint8_t *code, size_t avail,
		      ZydisDecodedInstruction *in, ZydisDecodedOperand *ops)
{
	ZydisDecoder dec;
	if (ZYAN_FAILED(ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64,
					 ZYDIS_STACK_WIDTH_64)))
		return -EINVAL;
	if (ZYAN_FAILED(ZydisDecoderDecodeFull(&dec, code, avail, in, ops)))
		return -EINVAL;
	return 0;
}

/* Why an instruction cannot be probed at all, or NULL. */
static const char *refusal(const ZydisDecodedInstruction *in)
{
	switch (in->mnemonic) {
	case ZYDIS_MNEMONIC_INT3:
		return "int3: already a breakpoint (a debugger or another probe tool?)";
	case ZYDIS_MNEMONIC_INT:
	case ZYDIS_MNEMONIC_INT1:
	case ZYDIS_MNEMONIC_INTO:
		return "software interrupt: traps into the kernel by design";
	case ZYDIS_MNEMONIC_UD0:
	case ZYDIS_MNEMONIC_UD1:
	case ZYDIS_MNEMONIC_UD2:
		return "ud0/ud1/ud2: deliberately undefined, raises SIGILL";
	case ZYDIS_MNEMONIC_HLT:
		return "hlt: privileged, faults in user mode";
	case ZYDIS_MNEMONIC_IRET:
	case ZYDIS_MNEMONIC_IRETD:
	case ZYDIS_MNEMONIC_IRETQ:
		return "iret: interrupt return changes cs/ss/rflags";
	case ZYDIS_MNEMONIC_SYSENTER:
	case ZYDIS_MNEMONIC_SYSEXIT:
	case ZYDIS_MNEMONIC_SYSRET:
		return "sysenter/sysexit/sysret: not a 64-bit user-mode transfer";
	case ZYDIS_MNEMONIC_XBEGIN:
	case ZYDIS_MNEMONIC_XABORT:
	case ZYDIS_MNEMONIC_XEND:
		return "TSX transaction (xbegin/xabort/xend): a trap aborts it";
	default:
		break;
	}
	if (in->meta.branch_type == ZYDIS_BRANCH_TYPE_FAR)
		return "far jmp/call/ret: changes the code segment";
	return NULL;
}

/* Conditional jumps: the condition is the low nibble of 7x / 0f 8x. */
static bool is_jcc(ZydisMnemonic m)
{
	switch (m) {
	case ZYDIS_MNEMONIC_JO:  case ZYDIS_MNEMONIC_JNO:
	case ZYDIS_MNEMONIC_JB:  case ZYDIS_MNEMONIC_JNB:
	case ZYDIS_MNEMONIC_JZ:  case ZYDIS_MNEMONIC_JNZ:
	case ZYDIS_MNEMONIC_JBE: case ZYDIS_MNEMONIC_JNBE:
	case ZYDIS_MNEMONIC_JS:  case ZYDIS_MNEMONIC_JNS:
	case ZYDIS_MNEMONIC_JP:  case ZYDIS_MNEMONIC_JNP:
	case ZYDIS_MNEMONIC_JL:  case ZYDIS_MNEMONIC_JNL:
	case ZYDIS_MNEMONIC_JLE: case ZYDIS_MNEMONIC_JNLE:
		return true;
	default:
		return false;
	}
}

static void refuse(struct sp_insn *out, const char *why)
{
	out->cls = SP_INSN_REFUSED;
	out->why = why;
	out->relocatable = false;
}

/* A branch-relative immediate (ZYDIS_ATTRIB_IS_RELATIVE alone would also
 * match RIP-relative memory operands). */
static bool has_relative_imm(const ZydisDecodedInstruction *in,
			     const ZydisDecodedOperand *ops)
{
	for (int i = 0; i < in->operand_count; i++)
		if (ops[i].type == ZYDIS_OPERAND_TYPE_IMMEDIATE && ops[i].imm.is_relative)
			return true;
	return false;
}

/* Relative branches: jmp, jcc, jrcxz, loop, call rel32. */
static void classify_relative(const ZydisDecodedInstruction *in,
			      const ZydisDecodedOperand *ops, struct sp_insn *out)
{
	ZyanU64 target;
	if (ZYAN_FAILED(ZydisCalcAbsoluteAddress(in, &ops[0], out->addr, &target))) {
		refuse(out, "relative branch without a computable target");
		return;
	}
	out->target = target;
	out->relocatable = false;
	out->why = "relative branch: emulated";
	switch (in->mnemonic) {
	case ZYDIS_MNEMONIC_JMP:
		out->cls = SP_INSN_JMP_REL;
		break;
	case ZYDIS_MNEMONIC_CALL:
		out->cls = SP_INSN_CALL_REL;
		break;
	case ZYDIS_MNEMONIC_JRCXZ:
	case ZYDIS_MNEMONIC_JECXZ:
		out->cls = SP_INSN_JRCXZ;
		out->opsize = in->address_width;   /* rcx or ecx */
		break;
	case ZYDIS_MNEMONIC_LOOP:
	case ZYDIS_MNEMONIC_LOOPE:
	case ZYDIS_MNEMONIC_LOOPNE:
		out->cls = SP_INSN_LOOP;
		out->cond = in->mnemonic == ZYDIS_MNEMONIC_LOOP ? 0 :
			    in->mnemonic == ZYDIS_MNEMONIC_LOOPE ? 1 : 2;
		out->opsize = in->address_width;   /* rcx or ecx */
		break;
	default:
		if (is_jcc(in->mnemonic)) {
			out->cls = SP_INSN_JCC_REL;
			out->cond = in->opcode & 0xf;
		} else {
			/* a relative operand we do not know how to move */
			out->cls = SP_INSN_OTHER;
			out->why = "unknown relative operand: cannot run out of line";
		}
		break;
	}
}

/* jmp/call r/m64. */
static void classify_indirect(const ZydisDecodedInstruction *in,
			      const ZydisDecodedOperand *op, struct sp_insn *out)
{
	bool call = in->mnemonic == ZYDIS_MNEMONIC_CALL;
	if (op->type == ZYDIS_OPERAND_TYPE_REGISTER) {
		out->reg = gpr_of(op->reg.value, false);
		if (out->reg == SP_NOREG) {
			refuse(out, "indirect branch through a non-GPR register");
			return;
		}
	} else if (op->type == ZYDIS_OPERAND_TYPE_MEMORY) {
		if (in->address_width != 64) {
			refuse(out, "address-size prefix on an indirect branch");
			return;
		}
		out->ind_mem = true;
		out->mem.base = op->mem.base == ZYDIS_REGISTER_NONE ? SP_NOREG :
				op->mem.base == ZYDIS_REGISTER_RIP ? SP_RIP_BASE :
				gpr_of(op->mem.base, false);
		out->mem.index = op->mem.index == ZYDIS_REGISTER_NONE ? SP_NOREG :
				 gpr_of(op->mem.index, false);
		if ((op->mem.base != ZYDIS_REGISTER_NONE && out->mem.base == SP_NOREG) ||
		    (op->mem.index != ZYDIS_REGISTER_NONE && out->mem.index == SP_NOREG)) {
			refuse(out, "indirect branch with an unsupported address register");
			return;
		}
		out->mem.scale = op->mem.index == ZYDIS_REGISTER_NONE ? 0 : op->mem.scale;
		out->mem.disp = op->mem.disp.has_displacement ? op->mem.disp.value : 0;
		out->mem.fs = op->mem.segment == ZYDIS_REGISTER_FS;
		out->mem.gs = op->mem.segment == ZYDIS_REGISTER_GS;
	} else {
		refuse(out, "indirect branch with an unexpected operand");
		return;
	}
	out->cls = call ? SP_INSN_CALL_IND : SP_INSN_JMP_IND;
	if (call) {
		out->relocatable = false;
		out->why = "indirect call pushes the out-of-line return address: emulated";
	}
}

/* Everything that is neither refused nor a branch. */
static void classify_plain(const ZydisDecodedInstruction *in,
			   const ZydisDecodedOperand *ops, struct sp_insn *out)
{
	switch (in->mnemonic) {
	case ZYDIS_MNEMONIC_NOP:
	case ZYDIS_MNEMONIC_ENDBR64:
	case ZYDIS_MNEMONIC_ENDBR32:
		out->cls = SP_INSN_NOP;
		return;
	case ZYDIS_MNEMONIC_PUSH:
		/* push r64 only: not push imm, push m64, push fs/gs, push r16 */
		if (ops[0].type == ZYDIS_OPERAND_TYPE_REGISTER &&
		    (out->reg = gpr_of(ops[0].reg.value, false)) != SP_NOREG)
			out->cls = SP_INSN_PUSH_REG;
		return;
	case ZYDIS_MNEMONIC_POP:
		/* pop %rsp is left to run out of line: it is not worth a case */
		if (ops[0].type == ZYDIS_OPERAND_TYPE_REGISTER &&
		    (out->reg = gpr_of(ops[0].reg.value, false)) != SP_NOREG &&
		    out->reg != SP_RSP)
			out->cls = SP_INSN_POP_REG;
		return;
	case ZYDIS_MNEMONIC_MOV:
		if (ops[0].type == ZYDIS_OPERAND_TYPE_REGISTER &&
		    ops[1].type == ZYDIS_OPERAND_TYPE_REGISTER &&
		    ZydisRegisterGetClass(ops[0].reg.value) ==
		    ZydisRegisterGetClass(ops[1].reg.value)) {
			int d = gpr_of(ops[0].reg.value, true);
			int s = gpr_of(ops[1].reg.value, true);
			if (d != SP_NOREG && s != SP_NOREG) {
				out->cls = SP_INSN_MOV_REG_REG;
				out->reg = d;
				out->reg2 = s;
				out->opsize = ZydisRegisterGetClass(ops[0].reg.value) ==
					      ZYDIS_REGCLASS_GPR64 ? 64 : 32;
			}
		}
		return;
	default:
		return;
	}
}

/* Note the RIP-relative memory operand, if any, and whether it can move. */
static void note_rip_relative(const ZydisDecodedInstruction *in,
			      const ZydisDecodedOperand *ops, struct sp_insn *out)
{
	for (int i = 0; i < in->operand_count; i++) {
		if (ops[i].type != ZYDIS_OPERAND_TYPE_MEMORY)
			continue;
		if (ops[i].mem.base == ZYDIS_REGISTER_RIP) {
			out->rip_relative = true;
			out->disp_offset = in->raw.disp.offset;
			out->disp_size = in->raw.disp.size / 8;
		} else if (ops[i].mem.base == ZYDIS_REGISTER_EIP) {
			out->rip_relative = true;
			out->disp_offset = in->raw.disp.offset;
			out->disp_size = in->raw.disp.size / 8;
			if (out->relocatable) {
				out->relocatable = false;
				out->why = "EIP-relative operand (address-size prefix): cannot move";
			}
		}
	}
}

int sp_insn_decode(const uint8_t *code, size_t avail, uint64_t addr, struct sp_insn *out)
{
	ZydisDecodedInstruction in;
	ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];

	memset(out, 0, sizeof(*out));
	out->addr = addr;
	out->reg = out->reg2 = SP_NOREG;
	out->mem.base = out->mem.index = SP_NOREG;
	if (decode_raw(code, avail, &in, ops) < 0)
		return -EINVAL;
	out->len = in.length;
	memcpy(out->bytes, code, in.length);
	out->cls = SP_INSN_OTHER;
	out->relocatable = true;

	const char *why = refusal(&in);
	if (why) {
		refuse(out, why);
	} else if (in.meta.branch_type != ZYDIS_BRANCH_TYPE_NONE &&
		   (in.attributes & ZYDIS_ATTRIB_HAS_OPERANDSIZE)) {
		/* A 66 prefix on a near branch (jmp, call, ret, jcc) is ignored
		 * by Intel and truncates to 16 bits on AMD: even the length
		 * differs.  Compilers never emit it. */
		why = "operand-size prefix on a near branch: Intel and AMD disagree";
		refuse(out, why);
	} else if (has_relative_imm(&in, ops)) {
		classify_relative(&in, ops, out);
	} else if ((in.mnemonic == ZYDIS_MNEMONIC_JMP || in.mnemonic == ZYDIS_MNEMONIC_CALL) &&
		   in.meta.branch_type == ZYDIS_BRANCH_TYPE_NEAR) {
		classify_indirect(&in, &ops[0], out);
	} else if (in.mnemonic == ZYDIS_MNEMONIC_RET) {
		/* far ret was refused above */
		out->cls = SP_INSN_RET;
		if (in.operand_count_visible > 0 &&
		    ops[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE)
			out->ret_imm = (uint16_t)ops[0].imm.value.u;
	} else {
		classify_plain(&in, ops, out);
	}
	note_rip_relative(&in, ops, out);
	return 0;
}

int sp_insn_relocate(const struct sp_insn *insn, uint64_t new_addr,
		     uint8_t *buf, size_t buflen, const char **why)
{
	if (!insn->relocatable) {
		*why = insn->why ? insn->why : "instruction cannot run out of line";
		return -ENOTSUP;
	}
	if (buflen < insn->len) {
		*why = "relocation buffer too small";
		return -ENOBUFS;
	}
	memcpy(buf, insn->bytes, insn->len);
	if (!insn->rip_relative)
		return insn->len;
	if (insn->disp_size != 4 || insn->disp_offset + 4 > insn->len) {
		*why = "RIP-relative operand without a 32-bit displacement";
		return -ENOTSUP;
	}
	int32_t old;
	memcpy(&old, insn->bytes + insn->disp_offset, 4);
	/* the same absolute address, seen from the end of the new copy */
	uint64_t target = insn->addr + insn->len + (int64_t)old;
	int64_t disp = (int64_t)(target - (new_addr + insn->len));
	if (disp < INT32_MIN || disp > INT32_MAX) {
		*why = "RIP-relative operand out of reach from the out-of-line slot";
		return -ERANGE;
	}
	int32_t d32 = (int32_t)disp;
	memcpy(buf + insn->disp_offset, &d32, 4);
	return insn->len;
}

int sp_insn_boundary(const uint8_t *func, size_t size, uint64_t addr, size_t off,
		     char *why, size_t whylen)
{
	if (off >= size) {
		snprintf(why, whylen, "offset +0x%zx is past the end of the function (size 0x%zx)",
			 off, size);
		return -EINVAL;
	}
	size_t pos = 0;
	while (pos < off) {
		struct sp_insn in;
		if (sp_insn_decode(func + pos, size - pos, addr + pos, &in) < 0) {
			snprintf(why, whylen, "bytes at +0x%zx do not decode", pos);
			return -EINVAL;
		}
		if (pos + in.len > off) {
			char text[96];
			sp_insn_format(&in, text, sizeof(text));
			snprintf(why, whylen,
				 "offset +0x%zx is inside the %u-byte instruction at +0x%zx (`%s`)",
				 off, in.len, pos, text);
			return -EINVAL;
		}
		pos += in.len;
	}
	return 0;
}

void sp_insn_format(const struct sp_insn *insn, char *buf, size_t len)
{
	ZydisDecodedInstruction in;
	ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
	ZydisFormatter fmt;

	if (len == 0)
		return;
	buf[0] = '\0';
	if (decode_raw(insn->bytes, insn->len, &in, ops) < 0 ||
	    ZYAN_FAILED(ZydisFormatterInit(&fmt, ZYDIS_FORMATTER_STYLE_ATT)) ||
	    ZYAN_FAILED(ZydisFormatterFormatInstruction(&fmt, &in, ops,
			in.operand_count_visible, buf, len, insn->addr, NULL)))
		snprintf(buf, len, "(bad)");
}

int sp_insn_scan(const uint8_t *code, size_t avail, uint64_t addr, struct sp_insn_scan *out)
{
	/* instruction-only decode (no operand decoding): the sweep of a whole
	 * object's text is dominated by this call */
	static ZydisDecoder dec;
	static int ready;
	if (!ready) {
		if (ZYAN_FAILED(ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64)))
			return -EINVAL;
		ready = 1;
	}
	ZydisDecodedInstruction in;
	if (ZYAN_FAILED(ZydisDecoderDecodeInstruction(&dec, NULL, code, avail, &in)))
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->len = in.length;
	bool rel_imm = false;
	for (int i = 0; i < 2; i++) {
		if (in.raw.imm[i].size == 0)
			continue;
		if (in.raw.imm[i].is_relative) {
			rel_imm = true;
			out->branch = true;
			out->target = addr + in.length + (uint64_t)in.raw.imm[i].value.s;
		} else if (in.raw.imm[i].size >= 32 && out->n_imm < 2) {
			out->imm[out->n_imm++] = in.raw.imm[i].is_signed ? (uint64_t)in.raw.imm[i].value.s
									  : in.raw.imm[i].value.u;
		}
	}
	/* a RIP-relative memory operand: mod 00, rm 101, no SIB */
	if (!rel_imm && (in.attributes & ZYDIS_ATTRIB_HAS_MODRM) && in.raw.modrm.mod == 0 &&
	    in.raw.modrm.rm == 5 && in.raw.disp.size == 32) {
		out->riprel = true;
		out->rip_target = addr + in.length + (uint64_t)in.raw.disp.value;
		out->lea = in.mnemonic == ZYDIS_MNEMONIC_LEA;
	}
	if (in.mnemonic == ZYDIS_MNEMONIC_JMP && !rel_imm && in.meta.branch_type == ZYDIS_BRANCH_TYPE_NEAR)
		out->ind_jmp = true;
	return 0;
}

/* Hardware number of a GPR of any width, or -1. */
static int hw_of(ZydisRegister r)
{
	switch (ZydisRegisterGetClass(r)) {
	case ZYDIS_REGCLASS_GPR64:
	case ZYDIS_REGCLASS_GPR32:
	case ZYDIS_REGCLASS_GPR16:
		break;
	case ZYDIS_REGCLASS_GPR8: {
		/* ah/ch/dh/bh are ids 4..7 of the legacy byte registers */
		ZydisRegister l = ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LONG_64, r);
		return l == ZYDIS_REGISTER_NONE ? -1 : ZydisRegisterGetId(l);
	}
	default:
		return -1;
	}
	ZyanI8 id = ZydisRegisterGetId(r);
	return id >= 0 && id < 16 ? id : -1;
}

int sp_insn_ops(const uint8_t *code, size_t avail, uint64_t addr, struct sp_insn_ops *out)
{
	ZydisDecodedInstruction in;
	ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
	memset(out, 0, sizeof(*out));
	if (decode_raw(code, avail, &in, ops) < 0)
		return -EINVAL;
	out->len = in.length;
	switch (in.mnemonic) {
	case ZYDIS_MNEMONIC_LEA: out->kind = SP_OPS_LEA; break;
	case ZYDIS_MNEMONIC_MOVSXD: out->kind = SP_OPS_MOVSXD; break;
	case ZYDIS_MNEMONIC_MOV: out->kind = SP_OPS_MOV; break;
	case ZYDIS_MNEMONIC_ADD: out->kind = SP_OPS_ADD; break;
	case ZYDIS_MNEMONIC_CMP: out->kind = SP_OPS_CMP; break;
	case ZYDIS_MNEMONIC_AND: out->kind = SP_OPS_AND; break;
	case ZYDIS_MNEMONIC_JMP: out->kind = SP_OPS_JMP; break;
	default:
		out->kind = is_jcc(in.mnemonic) ? SP_OPS_JCC : SP_OPS_OTHER;
		break;
	}
	if (out->kind == SP_OPS_JCC)
		out->cond = in.opcode & 0xf;
	int k = 0;
	for (int i = 0; i < in.operand_count; i++) {
		const ZydisDecodedOperand *o = &ops[i];
		if (o->type == ZYDIS_OPERAND_TYPE_REGISTER && (o->actions & ZYDIS_OPERAND_ACTION_MASK_WRITE)) {
			int r = hw_of(o->reg.value);
			if (r >= 0)
				out->writes |= (uint16_t)(1u << r);
		}
		if (o->visibility != ZYDIS_OPERAND_VISIBILITY_EXPLICIT || k == 2)
			continue;
		struct sp_ops_operand *d = &out->op[k++];
		d->size = (uint8_t)o->size;
		if (o->type == ZYDIS_OPERAND_TYPE_REGISTER) {
			d->type = SP_OPD_REG;
			d->reg = hw_of(o->reg.value);
		} else if (o->type == ZYDIS_OPERAND_TYPE_MEMORY) {
			d->type = SP_OPD_MEM;
			d->base = o->mem.base == ZYDIS_REGISTER_NONE ? -1 :
				  o->mem.base == ZYDIS_REGISTER_RIP ? SP_RIP_BASE : hw_of(o->mem.base);
			d->index = o->mem.index == ZYDIS_REGISTER_NONE ? -1 : hw_of(o->mem.index);
			d->scale = o->mem.scale;
			d->disp = o->mem.disp.has_displacement ? o->mem.disp.value : 0;
			if (d->base == SP_RIP_BASE)
				out->target = addr + in.length + (uint64_t)d->disp;
			if (o->mem.segment == ZYDIS_REGISTER_FS || o->mem.segment == ZYDIS_REGISTER_GS)
				d->type = SP_OPD_NONE;   /* not a table in this object */
		} else if (o->type == ZYDIS_OPERAND_TYPE_IMMEDIATE) {
			d->type = SP_OPD_IMM;
			d->disp = o->imm.is_signed ? o->imm.value.s : (int64_t)o->imm.value.u;
			if (o->imm.is_relative)
				out->target = addr + in.length + (uint64_t)o->imm.value.s;
		}
	}
	return 0;
}
