/* jtable — see jtable.h. */
#include "jtable.h"
#include "insn.h"

#include <stdbool.h>
#include <string.h>

#define MAX_SLICE 32

struct slice {
	int n;
	const struct sp_jt_insn *ins;
	struct sp_insn_ops ops[MAX_SLICE];
	bool ok[MAX_SLICE];
};

/* The last instruction before I that writes GPR R, or -1. */
static int def_before(const struct slice *s, int i, int r)
{
	if (r < 0)
		return -1;
	for (int j = i - 1; j >= 0; j--)
		if (!s->ok[j] || (s->ops[j].writes & (1u << r)))
			return s->ok[j] ? j : -1;
	return -1;
}

static bool is_reg(const struct sp_ops_operand *o, int r, int size)
{
	return o->type == SP_OPD_REG && o->reg == r && (!size || o->size == size);
}

/* lea T(%rip),%rR at J? */
static bool rip_lea(const struct slice *s, int j, int r, uintptr_t *t)
{
	if (j < 0 || s->ops[j].kind != SP_OPS_LEA || !is_reg(&s->ops[j].op[0], r, 64) ||
	    s->ops[j].op[1].type != SP_OPD_MEM || s->ops[j].op[1].base != SP_RIP_BASE ||
	    s->ops[j].op[1].index != -1)
		return false;
	*t = s->ops[j].target;
	return true;
}

/* The table of 8-byte entries operand M (of instruction I) reads: T(,%rI,8)
 * with T absolute, or (D)(%rB,%rI,8) with %rB set by lea T(%rip),%rB in
 * the line (Go's form, where T is a symbol main.f.jumpN).  False: neither. */
static bool abs_table(const struct slice *s, int i, const struct sp_ops_operand *m, uintptr_t *table)
{
	if (m->base == -1) {
		*table = (uintptr_t)m->disp;
		return true;
	}
	uintptr_t t;
	if (m->base == SP_RIP_BASE || m->base == m->index || !rip_lea(s, def_before(s, i, m->base), m->base, &t))
		return false;
	*table = t + (uintptr_t)m->disp;
	return true;
}

/* The number of values index register R can take at instruction I, from a
 * cmp/ja, cmp/jae or and before it; 0 when none is found.  *FROM: where
 * the bound starts to hold. */
static long bound_of(const struct slice *s, int i, int r, uintptr_t *from)
{
	for (int j = i - 1; j >= 0 && r >= 0; j--) {
		if (!s->ok[j])
			return 0;
		const struct sp_insn_ops *o = &s->ops[j];
		if (o->kind == SP_OPS_CMP && is_reg(&o->op[0], r, 0) && o->op[0].size >= 32 &&
		    o->op[1].type == SP_OPD_IMM && o->op[1].disp >= 0 && o->op[1].disp < 65536 &&
		    j + 1 < i && s->ok[j + 1] && s->ops[j + 1].kind == SP_OPS_JCC) {
			uint8_t c = s->ops[j + 1].cond;
			/* the cmp: a branch to its jcc would bring other flags */
			*from = s->ins[j].addr;
			if (c == 0x7)                /* ja: taken above N */
				return o->op[1].disp + 1;
			if (c == 0x3)                /* jae: taken at N and above */
				return o->op[1].disp;
			return 0;
		}
		if (!(o->writes & (1u << r)))
			continue;
		if (o->kind == SP_OPS_MOV && is_reg(&o->op[0], r, 0) && o->op[0].size >= 32 &&
		    o->op[1].type == SP_OPD_REG && o->op[1].size == o->op[0].size) {
			r = o->op[1].reg;            /* a copy: follow its source */
			continue;
		}
		if (o->kind == SP_OPS_AND && is_reg(&o->op[0], r, 0) && o->op[0].size >= 32 &&
		    o->op[1].type == SP_OPD_IMM && o->op[1].disp >= 0 && o->op[1].disp < 65536) {
			*from = s->ins[j].addr;
			return o->op[1].disp + 1;
		}
		return 0;                            /* redefined some other way */
	}
	return 0;
}

void sp_jtable_find(const struct sp_jt_insn *ins, int n, struct sp_jtable *out)
{
	memset(out, 0, sizeof(*out));
	out->kind = SP_JT_NONE;
	if (n > MAX_SLICE) {
		ins += n - MAX_SLICE;
		n = MAX_SLICE;
	}
	struct slice s = { .n = n, .ins = ins };
	for (int i = 0; i < n; i++)
		s.ok[i] = sp_insn_ops(ins[i].code, ins[i].avail, ins[i].addr, &s.ops[i]) == 0;
	int jmp = n - 1;
	if (!s.ok[jmp] || s.ops[jmp].kind != SP_OPS_JMP)
		return;
	const struct sp_ops_operand *target = &s.ops[jmp].op[0];
	int load = -1, index = -1;
	if (target->type == SP_OPD_MEM) {
		/* jmp *T(,%rI,8): an absolute table (non-PIE); Go's, PIE or
		 * not: lea T(%rip),%rB ... jmp *(%rB,%rI,8) */
		if (target->index < 0 || target->scale != 8 ||
		    !abs_table(&s, jmp, target, &out->table))
			return;
		out->kind = SP_JT_ABS64;
		load = jmp;
		index = target->index;
	} else if (target->type == SP_OPD_REG && target->size == 64) {
		int x = target->reg;
		int d = def_before(&s, jmp, x);
		if (d < 0)
			return;
		const struct sp_insn_ops *o = &s.ops[d];
		if (o->kind == SP_OPS_MOV && o->op[1].type == SP_OPD_MEM && o->op[1].index >= 0 &&
		    o->op[1].scale == 8 && o->op[0].size == 64 && abs_table(&s, d, &o->op[1], &out->table)) {
			/* mov T(,%rI,8),%rX; jmp *%rX (or T in %rB: Go's) */
			out->kind = SP_JT_ABS64;
			load = d;
			index = o->op[1].index;
		} else if (o->kind == SP_OPS_ADD && is_reg(&o->op[0], x, 64) && o->op[1].type == SP_OPD_REG &&
			   o->op[1].size == 64) {
			/* add: one side a 32-bit offset loaded from the table, the
			 * other the address the offsets are from (the table's own
			 * for a switch; a label's for gcc's computed-goto tables) */
			int y = o->op[1].reg;
			int dx = def_before(&s, d, x), dy = def_before(&s, d, y);
			int sides[2][2] = { { dx, y }, { dy, x } };   /* {load, base register} */
			for (int k = 0; k < 2 && load < 0; k++) {
				int l = sides[k][0], br = sides[k][1];
				if (l < 0 || s.ops[l].kind != SP_OPS_MOVSXD || s.ops[l].op[0].size != 64 ||
				    s.ops[l].op[1].type != SP_OPD_MEM || s.ops[l].op[1].scale != 4 ||
				    s.ops[l].op[1].base < 0 || s.ops[l].op[1].base == SP_RIP_BASE ||
				    s.ops[l].op[1].index < 0)
					continue;
				load = l;
				index = s.ops[l].op[1].index;
				int tr = s.ops[l].op[1].base;
				int64_t disp = s.ops[l].op[1].disp;
				/* the base's value at the add, the table's at the load */
				int lb = def_before(&s, d, br), lt = def_before(&s, l, tr);
				uintptr_t tb, tt;
				bool base_ok = lb >= 0 && rip_lea(&s, lb, br, &tb);
				bool table_ok = lt >= 0 && rip_lea(&s, lt, tr, &tt);
				if (base_ok && table_ok) {
					out->kind = SP_JT_REL32;
					out->base = tb;
					out->table = tt + (uintptr_t)disp;
				} else if (lb < 0 && lt < 0 && br == tr && disp == 0) {
					/* one register set before the straight line,
					 * untouched in it: the table's address, from
					 * which its entries count */
					out->kind = SP_JT_REL32_ELSEWHERE;
					return;
				} else {
					out->kind = SP_JT_UNKNOWN;
					out->why = "a jump table whose address is not found before the jump";
					return;
				}
			}
			if (load < 0)
				return;
		} else {
			return;
		}
	} else {
		return;
	}
	out->count = bound_of(&s, load, index, &out->bound_from);
}

size_t sp_jtable_entry_size(const struct sp_jtable *jt)
{
	return jt->kind == SP_JT_REL32 ? 4 : jt->kind == SP_JT_ABS64 ? 8 : 0;
}

uintptr_t sp_jtable_entry_target(const struct sp_jtable *jt, uint64_t raw, uintptr_t bias)
{
	if (jt->kind == SP_JT_REL32)
		return jt->base + (uintptr_t)(intptr_t)(int32_t)(uint32_t)raw;
	return (uintptr_t)raw + bias;
}
