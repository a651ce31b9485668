/* reloc — move a jmp window's instructions to a trampoline.
 *
 * frida-gum's relocator habit: copy bytes verbatim and rewrite only what
 * depends on where the code runs.  Per instruction, at DEST + o:
 *
 *   jmp rel8/rel32   e9 rel32                         in reach of the target
 *                    ff 25 00 00 00 00 <abs64>        otherwise (jmp *0(%rip))
 *   jcc rel8/rel32   0f 8c rel32                      in reach
 *                    7c^1 0e; ff 25 00000000 <abs64>  otherwise: the inverted
 *                                                     jcc skips the 14-byte jump
 *   call rel32       48 8d 64 24 f8    lea -8(%rsp),%rsp
 *                    c7 04 24 <lo32>   movl $lo,(%rsp)
 *                    c7 44 24 04 <hi32> movl $hi,4(%rsp)
 *                    then a jmp to the target as above.  The pushed address
 *                    is the ORIGINAL return address, so the callee returns
 *                    into the function (right after the window: a call is
 *                    always the window's last instruction) and unwinders see
 *                    the caller's code; lea/mov leave the flags alone, as
 *                    call does.  No jump back follows: the return is it.
 *   RIP-relative     sp_insn_relocate: the displacement recomputed
 *   anything else    copied
 *
 * Then the jump back to SITE + LEN (e9, or ff 25 when out of reach), unless
 * the window's flow ends (ret/jmp) or its last instruction is a call.
 */
#include <errno.h>
#include <string.h>

#include "reloc.h"

#define JMP_ABS_LEN 14   /* ff 25 00 00 00 00 + 8-byte address */

struct out {
	uint8_t *buf;
	size_t len, cap;
	uintptr_t dest;          /* runtime address of buf[0] */
	const char *reason;
};

static bool room(struct out *o, size_t n)
{
	if (o->len + n <= o->cap)
		return true;
	o->reason = "relocation buffer too small";
	return false;
}

static void put(struct out *o, const void *p, size_t n)
{
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

static void put8(struct out *o, uint8_t b)
{
	put(o, &b, 1);
}

static void put32(struct out *o, uint32_t v)
{
	put(o, &v, 4);
}

/* rel32 from the end of an instruction of INSN_LEN bytes written at the
 * current position to TARGET, if it reaches. */
static bool rel32_to(const struct out *o, size_t insn_len, uint64_t target, int32_t *rel)
{
	int64_t d = (int64_t)(target - (o->dest + o->len + insn_len));
	if (d < INT32_MIN || d > INT32_MAX)
		return false;
	*rel = (int32_t)d;
	return true;
}

/* jmp *0(%rip); .quad TARGET — reaches anywhere, clobbers nothing. */
static int emit_jmp_abs(struct out *o, uint64_t target)
{
	static const uint8_t op[6] = { 0xff, 0x25, 0, 0, 0, 0 };
	if (!room(o, JMP_ABS_LEN))
		return -ENOBUFS;
	put(o, op, sizeof(op));
	put(o, &target, 8);
	return 0;
}

static int emit_jmp(struct out *o, uint64_t target)
{
	int32_t rel;
	if (!rel32_to(o, 5, target, &rel))
		return emit_jmp_abs(o, target);
	if (!room(o, 5))
		return -ENOBUFS;
	put8(o, 0xe9);
	put32(o, (uint32_t)rel);
	return 0;
}

static int emit_jcc(struct out *o, uint8_t cond, uint64_t target)
{
	int32_t rel;
	if (rel32_to(o, 6, target, &rel)) {
		if (!room(o, 6))
			return -ENOBUFS;
		put8(o, 0x0f);
		put8(o, 0x80 | cond);
		put32(o, (uint32_t)rel);
		return 0;
	}
	/* the inverted condition (the low bit flips it) skips the far jump */
	if (!room(o, 2 + JMP_ABS_LEN))
		return -ENOBUFS;
	put8(o, 0x70 | (cond ^ 1));
	put8(o, JMP_ABS_LEN);
	return emit_jmp_abs(o, target);
}

/* Push the original return address RET without touching the flags, then
 * jump to the callee. */
static int emit_call(struct out *o, uint64_t ret, uint64_t target)
{
	static const uint8_t lea[5] = { 0x48, 0x8d, 0x64, 0x24, 0xf8 };  /* lea -8(%rsp),%rsp */
	static const uint8_t mov_lo[3] = { 0xc7, 0x04, 0x24 };           /* movl $imm,(%rsp) */
	static const uint8_t mov_hi[4] = { 0xc7, 0x44, 0x24, 0x04 };     /* movl $imm,4(%rsp) */
	if (!room(o, sizeof(lea) + sizeof(mov_lo) + 4 + sizeof(mov_hi) + 4))
		return -ENOBUFS;
	put(o, lea, sizeof(lea));
	put(o, mov_lo, sizeof(mov_lo));
	put32(o, (uint32_t)ret);
	put(o, mov_hi, sizeof(mov_hi));
	put32(o, (uint32_t)(ret >> 32));
	return emit_jmp(o, target);
}

/* Copy IN, RIP-relative displacement fixed for its new place. */
static int emit_copy(struct out *o, const struct sp_insn *in)
{
	const char *why = NULL;
	int n = sp_insn_relocate(in, o->dest + o->len, o->buf + o->len, o->cap - o->len, &why);
	if (n == -ERANGE)
		o->reason = "RIP-relative operand out of reach of the trampoline";
	else if (n < 0)
		o->reason = why ? why : "instruction cannot be relocated";
	else
		o->len += (size_t)n;
	return n < 0 ? n : 0;
}

static int emit_one(struct out *o, const struct sp_insn *in)
{
	switch (in->cls) {
	case SP_INSN_JMP_REL:
		return emit_jmp(o, in->target);
	case SP_INSN_JCC_REL:
		return emit_jcc(o, in->cond, in->target);
	case SP_INSN_CALL_REL:
		return emit_call(o, in->addr + in->len, in->target);
	case SP_INSN_JRCXZ:
	case SP_INSN_LOOP:
		o->reason = "jrcxz/loop cannot be relocated (rel8 only)";
		return -ENOTSUP;
	case SP_INSN_CALL_IND:
		o->reason = "indirect call cannot be relocated";
		return -ENOTSUP;
	default:
		/* plain instructions, ret, indirect jmp; refused ones fail here */
		return emit_copy(o, in);
	}
}

int sp_reloc_window(const struct sp_window *w, uintptr_t dest, uint8_t *buf, size_t buflen,
		    struct sp_reloc_map *map, const char **reason)
{
	struct out o = { .buf = buf, .cap = buflen, .dest = dest };
	int rc = 0;

	if (w->n_insns == 0 || w->n_insns > SP_WINDOW_MAX) {
		*reason = "empty jmp window";
		return -EINVAL;
	}
	map->n = 0;
	for (int i = 0; i < w->n_insns && rc == 0; i++) {
		const struct sp_insn *in = &w->insns[i];
		if (in->cls == SP_INSN_CALL_REL && i != w->n_insns - 1) {
			o.reason = "call inside the jmp window (not its last instruction)";
			rc = -ENOTSUP;
			break;
		}
		map->orig_off[i] = (uint8_t)(in->addr - w->site);
		map->new_off[i] = (uint16_t)o.len;
		map->n = (uint8_t)(i + 1);
		rc = emit_one(&o, in);
	}
	const struct sp_insn *last = &w->insns[w->n_insns - 1];
	if (rc == 0 && !w->flow_ends && last->cls != SP_INSN_CALL_REL)
		rc = emit_jmp(&o, w->site + w->len);
	if (rc < 0) {
		*reason = o.reason;
		return rc;
	}
	return (int)o.len;
}
