/* jtable — is this indirect jmp a jump table, where is it, how long?
 *
 * A backward slice over the straight-line instructions before the jmp
 * (the sweep hands them in), matching the forms gcc and clang emit:
 *
 *   PIC, 32-bit offsets from the table (a switch) or from a label (gcc's
 *   computed-goto tables, `&&l - &&base`):
 *       lea T(%rip),%rT ... movslq d(%rT,%rI,4),%rX; add %rB,%rX; jmp *%rX
 *       (%rB = %rT for a switch, else lea B(%rip),%rB; or add %rX,%rB)
 *   non-PIE, absolute entries:
 *       jmp *T(,%rI,8)          mov T(,%rI,8),%rX; jmp *%rX
 *   Go (1.19 on, PIE or not: absolute entries, relocated in a PIE):
 *       lea T(%rip),%rB ... jmp *(%rB,%rI,8)     (T: the symbol F.jumpN)
 *
 * and the index's bound: `cmp $N,%eI` (or %rI) right before `ja` (N+1
 * entries) or `jae` (N), or `and $M,%eI` (M+1), following the index back
 * through register copies.  The bound holds only if no branch enters
 * between the check and the jmp: the caller checks (bound_from, jmp]
 * against its direct targets (bound_from is the cmp, not its jcc: a branch
 * to the jcc brings flags of its own).
 *
 * Anything else is not a table (a tail call through the GOT or a register,
 * a method table, a computed goto): the taken-address set covers those.
 * A PIC dispatch whose table address is set up before the straight line
 * is REL32_ELSEWHERE when the entries sit at that address (gcc's and
 * clang's form), else UNKNOWN.  Pure: decodes the bytes it is given.
 */
#ifndef SP_JTABLE_H
#define SP_JTABLE_H

#include <stddef.h>
#include <stdint.h>

struct sp_jt_insn {
	uintptr_t addr;
	const uint8_t *code;     /* its bytes */
	size_t avail;            /* readable from CODE */
};

enum sp_jt_kind {
	SP_JT_NONE,              /* not a table */
	SP_JT_REL32,             /* PIC table, its address found */
	SP_JT_REL32_ELSEWHERE,   /* PIC table addressed by a register set up before
				  * the straight line (a lea hoisted out of a loop):
				  * entries at that address, which some RIP-relative
				  * lea of the object takes (btindex scans those) */
	SP_JT_ABS64,             /* non-PIE absolute table */
	SP_JT_UNKNOWN,
};

struct sp_jtable {
	enum sp_jt_kind kind;
	uintptr_t table;         /* address of entry 0 */
	uintptr_t base;          /* REL32: target = base + (int32_t)entry */
	long count;              /* entries; 0: no bound found */
	uintptr_t bound_from;    /* the bound's cmp/and: no branch may enter after it */
	const char *why;         /* UNKNOWN: what is missing (static) */
};

/* INS[0..N-1]: the instructions before the jmp, in order, then the jmp
 * (INS[N-1]), all in one straight line of one function. */
void sp_jtable_find(const struct sp_jt_insn *ins, int n, struct sp_jtable *out);

/* The size of JT's entries: 4 (REL32), 8 (ABS64), else 0. */
size_t sp_jtable_entry_size(const struct sp_jtable *jt);
/* Where an entry whose bytes read RAW (little-endian, zero-extended) sends
 * the jmp: REL32, base + the signed offset; ABS64, RAW + BIAS (BIAS: the
 * object's load bias when RAW comes from the file, 0 from memory). */
uintptr_t sp_jtable_entry_target(const struct sp_jtable *jt, uint64_t raw, uintptr_t bias);

#endif
