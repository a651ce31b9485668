/* bt_jit — see bt_jit.h for the code and why it is safe in a trampoline. */
#include "bt_jit.h"
#include "heap.h"
#include "rawsys.h"
#include "bt_jitplan.h"
#include "bt_shard.h"
#include "fastcount.h"
#include "log.h"
#include "shm.h"
#include "stripes.h"
#include "tramp.h"
#include "tstate.h"
#include "x86emit.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/auxv.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* pid as the code reads it: asked once, again in a fork child. */
static uint64_t jit_pid;
/* tid as the code reads it: 0 until the thread's first compiled block
 * that needs it asks the kernel (a syscall in the code itself: the block
 * cannot call C), again in a fork child; at its %fs offset */
static __thread uint64_t jit_tid __attribute__((tls_model("initial-exec")));
static int32_t tid_off;

/* ---- the code ---- */

#define ACC X86_R10    /* an expression's value */
#define TMP X86_R11    /* its right operand */
#define PARTS X86_RCX  /* this thread's parts, during the statements */

struct gen {
	struct x86e e;
	const struct bt_block *b;
	int depth;         /* 8-byte slots pushed since the entry */
	bool full;         /* r10, r11 and rax in use (the flags pushed); else
			    * only rdx is, the flags stay in rax */
	int32_t pbase;     /* added to every part offset: the part area's
			    * distance from the thread's counters */
	bool fail;
};

/* Jumps to one label, patched when it is placed. */
struct fixes {
	size_t at[64];
	int n;
};

static void fix_add(struct gen *g, struct fixes *f, size_t at)
{
	if (f->n == 64)
		g->fail = true;
	else
		f->at[f->n++] = at;
}

static void fix_here(struct gen *g, struct fixes *f)
{
	for (int i = 0; i < f->n; i++)
		x86_patch_rel32(&g->e, f->at[i], x86_here(&g->e));
	f->n = 0;
}

/* Offsets from rsp of what lies above the code's frame: the trampoline's
 * saved rdx and rcx, and the interrupted stack. */
static int32_t slot_rdx(const struct gen *g) { return 8 * g->depth; }
static int32_t slot_rcx(const struct gen *g) { return 8 * g->depth + 8; }
static int32_t interrupted_rsp(const struct gen *g) { return 8 * g->depth + 16 + 128; }

static void push(struct gen *g, int r) { x86_push(&g->e, r); g->depth++; }
static void pop(struct gen *g, int r) { x86_pop(&g->e, r); g->depth--; }

/* argN into R, from where the probed code has it (sp_ctx_arg's places). */
static void load_arg(struct gen *g, int n, int r)
{
	static const int8_t regs[] = { X86_RDI, X86_RSI, -1, -1, X86_R8, X86_R9 };
	if (n == 2)
		x86_mov_r64_m64(&g->e, r, x86_mem(X86_RSP, slot_rdx(g)));
	else if (n == 3)
		x86_mov_r64_m64(&g->e, r, x86_mem(X86_RSP, slot_rcx(g)));
	else if (n < 6)
		x86_mov_r64_r64(&g->e, r, regs[n]);
	else
		x86_mov_r64_m64(&g->e, r, x86_mem(X86_RSP, interrupted_rsp(g) + 8 * (1 + n - 6)));
}

static bool is_leaf(const struct bt_node *n)
{
	return n->kind == BN_INT || n->kind == BN_BUILTIN;
}

/* A literal or builtin into R (no other register touched). */
static void load_leaf(struct gen *g, const struct bt_node *n, int r)
{
	if (n->kind == BN_INT)
		x86_mov_r64_imm64(&g->e, r, (uint64_t)n->ival);
	else if (n->ival == BB_TID) {
		/* full mode only (direct_cmp leaves tid out): rax is free, the
		 * flags are pushed; syscall clobbers rcx (the parts) and r11 */
		struct x86e *e = &g->e;
		x86_mov_r64_m64(e, r, x86_fs(tid_off));
		x86_test_r64_r64(e, r, r);
		size_t jhave = x86_jcc_rel32(e, X86_CC_NE);
		push(g, PARTS);
		push(g, TMP);
		x86_mov_r32_imm32(e, X86_RAX, 186);   /* SYS_gettid */
		x86_syscall(e);
		pop(g, TMP);
		pop(g, PARTS);
		x86_mov_r64_r64(e, r, X86_RAX);
		x86_mov_m64_r64(e, x86_fs(tid_off), r);
		x86_patch_rel32(e, jhave, x86_here(e));
	} else if (n->ival == BB_PID) {
		x86_mov_r64_imm64(&g->e, r, (uintptr_t)&jit_pid);
		x86_mov_r64_m64(&g->e, r, x86_mem(r, 0));
	} else
		load_arg(g, (int)(n->ival - BB_ARG0), r);
}

/* ACC = ACC != 0 */
static void to_bool(struct gen *g)
{
	x86_test_r64_r64(&g->e, ACC, ACC);
	x86_setcc_r8(&g->e, X86_CC_NE, ACC);
	x86_movzx_r32_r8(&g->e, ACC, ACC);
}

static void expr(struct gen *g, const struct bt_node *n);

/* Right operand into TMP, ACC kept. */
static void right(struct gen *g, const struct bt_node *b)
{
	if (is_leaf(b)) {
		load_leaf(g, b, TMP);
		return;
	}
	push(g, ACC);
	expr(g, b);
	x86_mov_r64_r64(&g->e, TMP, ACC);
	pop(g, ACC);
}

static enum x86_cc cmp_cc(int op, bool sgn)
{
	switch (op) {
	case BT_OP_EQ: return X86_CC_E;
	case BT_OP_NE: return X86_CC_NE;
	case '<': return sgn ? X86_CC_L : X86_CC_B;
	case '>': return sgn ? X86_CC_G : X86_CC_A;
	case BT_OP_LE: return sgn ? X86_CC_LE : X86_CC_BE;
	default: return sgn ? X86_CC_GE : X86_CC_AE;   /* BT_OP_GE */
	}
}

/* N's value into ACC: bt_eval.c's eval_int and binop, instruction for
 * instruction (64-bit wrap-around, signedness from the compiler). */
static void expr(struct gen *g, const struct bt_node *n)
{
	struct x86e *e = &g->e;
	switch (n->kind) {
	case BN_INT:
	case BN_BUILTIN:
		load_leaf(g, n, ACC);
		return;
	case BN_UN:
		expr(g, n->a);
		if (n->op == '!') {
			x86_test_r64_r64(e, ACC, ACC);
			x86_setcc_r8(e, X86_CC_E, ACC);
			x86_movzx_r32_r8(e, ACC, ACC);
		} else if (n->op == '-')
			x86_neg_r64(e, ACC);
		else
			x86_not_r64(e, ACC);
		return;
	case BN_TERN: {
		expr(g, n->a);
		x86_test_r64_r64(e, ACC, ACC);
		size_t jelse = x86_jcc_rel32(e, X86_CC_E);
		expr(g, n->b);
		size_t jend = x86_jmp_rel32(e);
		x86_patch_rel32(e, jelse, x86_here(e));
		expr(g, n->c);
		x86_patch_rel32(e, jend, x86_here(e));
		return;
	}
	case BN_BIN:
		break;
	default:
		g->fail = true;
		return;
	}
	expr(g, n->a);
	if (n->op == BT_OP_SHL || n->op == BT_OP_SHR) {
		uint8_t k = (uint8_t)(n->b->ival & 63);
		x86_shift_r64_imm8(e, n->op == BT_OP_SHL ? X86_SHL : n->is_signed ? X86_SAR : X86_SHR, ACC, k);
		return;
	}
	if (n->op == BT_OP_AND || n->op == BT_OP_OR) {
		/* no side effects in the subset: both sides, no short cut */
		to_bool(g);
		push(g, ACC);
		expr(g, n->b);
		to_bool(g);
		pop(g, TMP);
		x86_alu_r64_r64(e, n->op == BT_OP_AND ? X86_AND : X86_OR, ACC, TMP);
		return;
	}
	right(g, n->b);
	switch (n->op) {
	case '+': x86_alu_r64_r64(e, X86_ADD, ACC, TMP); return;
	case '-': x86_alu_r64_r64(e, X86_SUB, ACC, TMP); return;
	case '*': x86_imul_r64_r64(e, ACC, TMP); return;
	case '&': x86_alu_r64_r64(e, X86_AND, ACC, TMP); return;
	case '|': x86_alu_r64_r64(e, X86_OR, ACC, TMP); return;
	case '^': x86_alu_r64_r64(e, X86_XOR, ACC, TMP); return;
	case '<': case '>': case BT_OP_LE: case BT_OP_GE: case BT_OP_EQ: case BT_OP_NE:
		x86_alu_r64_r64(e, X86_CMP, ACC, TMP);
		x86_setcc_r8(e, cmp_cc(n->op, n->is_signed), ACC);
		x86_movzx_r32_r8(e, ACC, ACC);
		return;
	default:
		g->fail = true;
	}
}

/* ---- conditions as jumps ---- */

static bool is_cmp(int op)
{
	return op == '<' || op == '>' || op == BT_OP_LE || op == BT_OP_GE || op == BT_OP_EQ || op == BT_OP_NE;
}

static bool imm32_ok(const struct bt_node *n)
{
	return n->kind == BN_INT && n->ival == (int32_t)n->ival;
}

/* argN the probed code still has in a register (rdi, rsi, r8, r9), or -1. */
static int arg_reg(const struct bt_node *n)
{
	static const int8_t regs[] = { X86_RDI, X86_RSI, -1, -1, X86_R8, X86_R9, -1, -1 };
	if (n->kind != BN_BUILTIN || n->ival < BB_ARG0 || n->ival > BB_ARG7)
		return -1;
	return regs[n->ival - BB_ARG0];
}

/* Can A CMP B be one cmp with rdx as the only scratch: one side a leaf
 * (into rdx unless it is in a register), the other a 32-bit literal or an
 * argument in a register. */
static bool direct_cmp(const struct bt_node *a, const struct bt_node *b)
{
	if (!is_leaf(a) || !is_leaf(b))
		return false;
	if ((a->kind == BN_BUILTIN && a->ival == BB_TID) || (b->kind == BN_BUILTIN && b->ival == BB_TID))
		return false;   /* its first read is a syscall: full mode */
	return imm32_ok(b) || arg_reg(b) >= 0 || imm32_ok(a) || arg_reg(a) >= 0;
}

/* Is N a condition branch_if writes without r10/r11? */
static bool direct_cond(const struct bt_node *n)
{
	if (n->kind == BN_INT)
		return true;
	if (n->kind == BN_UN && n->op == '!')
		return direct_cond(n->a);
	if (n->kind == BN_BIN && (n->op == BT_OP_AND || n->op == BT_OP_OR))
		return direct_cond(n->a) && direct_cond(n->b);
	if (n->kind == BN_BIN && is_cmp(n->op))
		return direct_cmp(n->a, n->b);
	return false;
}

static enum x86_cc swap_cc(enum x86_cc cc)
{
	switch (cc) {
	case X86_CC_L: return X86_CC_G;
	case X86_CC_G: return X86_CC_L;
	case X86_CC_LE: return X86_CC_GE;
	case X86_CC_GE: return X86_CC_LE;
	case X86_CC_B: return X86_CC_A;
	case X86_CC_A: return X86_CC_B;
	case X86_CC_BE: return X86_CC_AE;
	case X86_CC_AE: return X86_CC_BE;
	default: return cc;
	}
}

/* Jump to F when N's truth is WHEN; fall through otherwise. */
static void branch_if(struct gen *g, const struct bt_node *n, bool when, struct fixes *f)
{
	struct x86e *e = &g->e;
	if (n->kind == BN_INT) {
		if ((n->ival != 0) == when)
			fix_add(g, f, x86_jmp_rel32(e));
		return;
	}
	if (n->kind == BN_UN && n->op == '!') {
		branch_if(g, n->a, !when, f);
		return;
	}
	if (n->kind == BN_BIN && (n->op == BT_OP_AND || n->op == BT_OP_OR)) {
		/* a && b is false when either is; a || b true when either is */
		bool decisive = n->op == BT_OP_OR;
		if (when == decisive) {
			branch_if(g, n->a, when, f);
			branch_if(g, n->b, when, f);
		} else {
			struct fixes skip = { .n = 0 };
			branch_if(g, n->a, decisive, &skip);
			branch_if(g, n->b, when, f);
			fix_here(g, &skip);
		}
		return;
	}
	if (n->kind == BN_BIN && is_cmp(n->op) && direct_cmp(n->a, n->b)) {
		const struct bt_node *a = n->a, *b = n->b;
		enum x86_cc cc = cmp_cc(n->op, n->is_signed);
		if (!(imm32_ok(b) || arg_reg(b) >= 0)) {   /* the simple side on the right */
			const struct bt_node *t = a;
			a = b;
			b = t;
			cc = swap_cc(cc);
		}
		int ra = arg_reg(a);
		if (ra < 0) {
			load_leaf(g, a, X86_RDX);
			ra = X86_RDX;
		}
		if (imm32_ok(b))
			x86_alu_r64_imm32(e, X86_CMP, ra, (int32_t)b->ival);
		else
			x86_alu_r64_r64(e, X86_CMP, ra, arg_reg(b));
		fix_add(g, f, x86_jcc_rel32(e, when ? cc : (enum x86_cc)(cc ^ 1)));
		return;
	}
	expr(g, n);   /* full mode: the value, then its truth */
	x86_test_r64_r64(e, ACC, ACC);
	fix_add(g, f, x86_jcc_rel32(e, when ? X86_CC_NE : X86_CC_E));
}

/* Does block B need r10, r11 and rax (values, not only jumps)? */
static bool stmts_need_full(const struct bt_node *blk);

static bool stmt_needs_full(const struct bt_node *s)
{
	switch (s->kind) {
	case BN_EXPR:
		return stmts_need_full(s);
	case BN_IF:
		return !direct_cond(s->a) || stmts_need_full(s->b) || (s->c && stmts_need_full(s->c));
	case BN_INCR:
		return false;
	case BN_ASSIGN:
		return !(s->b->kind == BN_CALL && s->b->fn == BF_COUNT && s->op == '=');
	default:
		return true;
	}
}

static bool stmts_need_full(const struct bt_node *blk)
{
	for (int i = 0; i < blk->nargs; i++)
		if (stmt_needs_full(blk->args[i]))
			return true;
	return false;
}

static void stmts(struct gen *g, const struct bt_node *blk);

/* Word K of a map's value in its part at PARTS (the touched word is at MOFF). */
static struct x86m part_word(const struct gen *g, int k, int32_t moff)
{
	return x86_mem(PARTS, g->pbase + moff + 8 + 8 * k);
}

/* The offset of M's part from PARTS: where bt_jit_block placed it. */
static int32_t part_off(const struct bt_map *m);

/* store_larger (bt_eval.c) on the part's word at W with ACC: an unlocked
 * cmpxchg loop, each try one instruction (rax is free: the flags are
 * pushed). */
static void store_larger(struct gen *g, struct x86m w)
{
	struct x86e *e = &g->e;
	x86_mov_r64_m64(e, X86_RAX, w);
	size_t again = x86_here(e);
	x86_alu_r64_r64(e, X86_CMP, ACC, X86_RAX);
	size_t jdone = x86_jcc_rel8(e, X86_CC_L);            /* x < old: kept */
	x86_cmpxchg_m64_r64(e, w, ACC);
	size_t jretry = x86_jcc_rel8(e, X86_CC_NE);          /* rax = the newer value */
	x86_patch_rel8(e, jretry, again);
	x86_patch_rel8(e, jdone, x86_here(e));
}

static void touched(struct gen *g, int32_t moff)
{
	x86_mov_m8_imm8(&g->e, x86_mem(PARTS, g->pbase + moff), 1);
}

/* A histogram's count: in bucket FIRST + the index in REG, or, jumped to
 * from JA, in bucket A, from JB, in bucket B (the ends that the bucket
 * functions of bt_map.c treat apart). */
static void count_bucket(struct gen *g, int32_t moff, int reg, int first, size_t ja, int a, size_t jb, int b)
{
	struct x86e *e = &g->e;
	x86_inc_m64(e, x86_mem_idx(PARTS, reg, 8, g->pbase + moff + 8 + 8 * first));
	size_t jd1 = x86_jmp_rel32(e);
	x86_patch_rel32(e, ja, x86_here(e));
	x86_inc_m64(e, part_word(g, a, moff));
	size_t jd2 = x86_jmp_rel32(e);
	x86_patch_rel32(e, jb, x86_here(e));
	x86_inc_m64(e, part_word(g, b, moff));
	x86_patch_rel32(e, jd1, x86_here(e));
	x86_patch_rel32(e, jd2, x86_here(e));
}

static void hist(struct gen *g, int32_t moff)
{
	/* bt_hist_bucket: 0 below zero, 1 at zero, else 2 + floor(log2),
	 * values from 2^32 on in the last (33) */
	struct x86e *e = &g->e;
	x86_test_r64_r64(e, ACC, ACC);
	size_t jneg = x86_jcc_rel32(e, X86_CC_S);
	size_t jzero = x86_jcc_rel32(e, X86_CC_E);
	x86_bsr_r64_r64(e, X86_RDX, ACC);
	x86_mov_r32_imm32(e, TMP, 31);
	x86_alu_r64_r64(e, X86_CMP, X86_RDX, TMP);
	x86_cmovcc_r64_r64(e, X86_CC_A, X86_RDX, TMP);
	count_bucket(g, moff, X86_RDX, 2, jneg, 0, jzero, 1);
}

static void lhist(struct gen *g, const struct bt_map *m, int32_t moff)
{
	/* bt_lhist_bucket: 0 below min, 1 + (max - min) / step above max,
	 * else 1 + (v - min) / step, unsigned */
	struct x86e *e = &g->e;
	int64_t top = 1 + (int64_t)((uint64_t)(m->lmax - m->lmin) / (uint64_t)m->lstep);
	x86_mov_r64_imm64(e, TMP, (uint64_t)m->lmin);
	x86_alu_r64_r64(e, X86_CMP, ACC, TMP);
	size_t jlow = x86_jcc_rel32(e, X86_CC_L);
	x86_mov_r64_imm64(e, TMP, (uint64_t)m->lmax);
	x86_alu_r64_r64(e, X86_CMP, ACC, TMP);
	size_t jhigh = x86_jcc_rel32(e, X86_CC_G);
	x86_mov_r64_imm64(e, TMP, (uint64_t)m->lmin);
	x86_alu_r64_r64(e, X86_SUB, ACC, TMP);
	uint64_t step = (uint64_t)m->lstep;
	if ((step & (step - 1)) == 0) {
		x86_shift_r64_imm8(e, X86_SHR, ACC, (uint8_t)__builtin_ctzll(step));
	} else {
		x86_mov_r64_r64(e, X86_RAX, ACC);
		x86_alu_r64_r64(e, X86_XOR, X86_RDX, X86_RDX);
		x86_mov_r64_imm64(e, TMP, step);
		x86_div_r64(e, TMP);
		x86_mov_r64_r64(e, ACC, X86_RAX);
	}
	count_bucket(g, moff, ACC, 1, jlow, 0, jhigh, (int)top);
}

static void stmt(struct gen *g, const struct bt_node *s)
{
	struct x86e *e = &g->e;
	switch (s->kind) {
	case BN_EXPR:   /* a nested block (else if) */
		stmts(g, s);
		return;
	case BN_IF: {
		struct fixes felse = { .n = 0 };
		branch_if(g, s->a, false, &felse);
		stmts(g, s->b);
		size_t jend = x86_jmp_rel32(e);
		fix_here(g, &felse);
		if (s->c)
			stmts(g, s->c);
		x86_patch_rel32(e, jend, x86_here(e));
		return;
	}
	case BN_INCR: {
		const struct bt_map *m = s->a->map;
		int32_t moff = part_off(m);
		if (s->op > 0)
			x86_inc_m64(e, part_word(g, 0, moff));
		else
			x86_dec_m64(e, part_word(g, 0, moff));
		touched(g, moff);
		return;
	}
	case BN_ASSIGN:
		break;
	default:
		g->fail = true;
		return;
	}
	const struct bt_map *m = s->a->map;
	const struct bt_node *r = s->b;
	int32_t moff = part_off(m);
	if (s->op == '+' || s->op == '-') {   /* @m += x, @m -= x */
		expr(g, r);
		if (s->op == '-')
			x86_neg_r64(e, ACC);
		x86_alu_m64_r64(e, X86_ADD, part_word(g, 0, moff), ACC);
		touched(g, moff);
		return;
	}
	if (r->fn != BF_COUNT)
		expr(g, r->args[0]);
	switch (r->fn) {
	case BF_COUNT:
		x86_inc_m64(e, part_word(g, 0, moff));
		return;
	case BF_SUM:
		x86_alu_m64_r64(e, X86_ADD, part_word(g, 0, moff), ACC);
		touched(g, moff);
		return;
	case BF_MIN:   /* kept as 0xffffffff - x, the larger wins (bt_eval.c) */
		x86_mov_r64_imm64(e, TMP, 0xffffffffull);
		x86_alu_r64_r64(e, X86_SUB, TMP, ACC);
		x86_mov_r64_r64(e, ACC, TMP);
		/* fallthrough */
	case BF_MAX:
		store_larger(g, part_word(g, 0, moff));
		touched(g, moff);
		return;
	case BF_AVG: case BF_STATS:
		x86_inc_m64(e, part_word(g, 0, moff));
		x86_alu_m64_r64(e, X86_ADD, part_word(g, 1, moff), ACC);
		return;
	case BF_HIST:
		hist(g, moff);
		return;
	case BF_LHIST:
		lhist(g, m, moff);
		return;
	default:
		g->fail = true;
	}
}

static void stmts(struct gen *g, const struct bt_node *blk)
{
	for (int i = 0; i < blk->nargs && !g->fail; i++)
		stmt(g, blk->args[i]);
}

/* ---- the parts' memory ---- */

/* Every split map's part for a thread lies in its counter stripe's
 * memory (stripes.h: SP_PART_BYTES right below the counters), so that a
 * block finds it at its thread's sp_tls.fast minus a constant, and the
 * parts come and go with the stripes (stripemem.h): bytes OFF to OFF + n
 * of each stripe's part area are one map's.  Under the launcher they are
 * its shared file's with the stripes, so that a killed process's parts
 * are read there (bt_shard.h). */

/* bytes of each part area given out; the first parts start away from a
 * page's first lines, where every stripe's first counters and many of the
 * runtime's page-aligned words lie (at offset 0 a count ran twice as slow:
 * L1 set conflicts) */
static size_t region_used = 0x300;
static pthread_mutex_t region_lock = PTHREAD_MUTEX_INITIALIZER;

/* Each program's "ran" word in the parts: a compiled block marks its
 * thread's, bt_run.c asks bt_jit_ran at exit (the shared flag would be a
 * cache line every thread writes). */
#define MAX_PROGS 64
static struct { const struct bt_program *p; size_t off; } rans[MAX_PROGS];
static int n_rans;

/* Stripe I's part area (NULL: its memory is not mapped: no thread ran there). */
static unsigned char *part_area(int i)
{
	char *c = sp_stripe(i);
	return c ? (unsigned char *)sp_stripe_parts(c) : NULL;
}

/* BYTES of every part, 64-aligned (region lock held): the offset, or -1. */
static long take(size_t bytes)
{
	if (region_used + bytes > SP_PART_BYTES)
		return -1;
	long off = (long)region_used;
	region_used += (bytes + 63) & ~(size_t)63;   /* a line of its own */
	return off;
}

/* Parts for M (region lock held).  0 or -1. */
static int give_parts(struct bt_map *m)
{
	if (m->shards)
		return 0;
	long off = take(8 * (1 + m->val_words));
	if (off < 0 || bt_shards_attach_at(m, part_area, (size_t)off, SP_EXCL_SLOTS) != 0)
		return -1;
	return 0;
}

static int32_t part_off(const struct bt_map *m)
{
	return (int32_t)m->shards->off;
}

/* P's "ran" word (region lock held): its offset, or -1. */
static long ran_word(const struct bt_program *p)
{
	for (int i = 0; i < n_rans; i++)
		if (rans[i].p == p)
			return (long)rans[i].off;
	if (n_rans == MAX_PROGS)
		return -1;
	long off = take(8);
	if (off >= 0)
		rans[n_rans++] = (typeof(rans[0])){ p, (size_t)off };
	return off;
}

/* Bytes OFF of part 0 in the launcher's file: 0, or -1 (private memory). */
static int part_file(size_t off, uint64_t *at)
{
	uint64_t chunk0;
	if (!sp_stripemem_file(&chunk0))
		return -1;
	*at = chunk0 + off;
	return 0;
}

int bt_jit_part_file(const struct bt_map *m, uint64_t *off)
{
	const struct bt_shards *s = m->shards;
	return s && s->at == part_area ? part_file(s->off, off) : -1;
}

int bt_jit_ran_file(const struct bt_program *p, uint64_t *off)
{
	int rc = -1;
	pthread_mutex_lock(&region_lock);
	for (int i = 0; i < n_rans && rc; i++)
		if (rans[i].p == p)
			rc = part_file(rans[i].off, off);
	pthread_mutex_unlock(&region_lock);
	return rc;
}

bool bt_jit_ran(const struct bt_program *p)
{
	bool ran = false;
	pthread_mutex_lock(&region_lock);
	for (int i = 0; i < n_rans && !ran; i++)
		if (rans[i].p == p)
			for (int k = 0; k < SP_EXCL_SLOTS && !ran; k++) {
				unsigned char *a = part_area(k);
				ran = a && a[rans[i].off] != 0;
			}
	pthread_mutex_unlock(&region_lock);
	return ran;
}

/* Every map B's statements update (the plan made sure they may be split). */
static int parts_for(struct bt_node *n)
{
	if (!n)
		return 0;
	if ((n->kind == BN_ASSIGN || n->kind == BN_INCR) && n->a->kind == BN_MAP && give_parts(n->a->map) != 0)
		return -1;
	if (n->kind == BN_ASSIGN || n->kind == BN_INCR)
		return 0;
	if (n->kind == BN_IF)
		return parts_for(n->b) || parts_for(n->c) ? -1 : 0;
	for (int i = 0; i < n->nargs; i++)
		if (parts_for(n->args[i]) != 0)
			return -1;
	return 0;
}

void bt_jit_atfork_child(void)
{
	if (jit_pid)
		jit_pid = (uint64_t)getpid();
	jit_tid = 0;   /* the child's only thread, another tid */
	/* the parts and "ran" words start again with the stripes' memory,
	 * mapped anew (sp_stripemem_atfork_child): under the launcher, in
	 * the child's own section */
}

/* ---- the block ---- */

/* B's code into BUF: its length, or 0 (outside the subset, too long).
 * B's parts exist; RAN: the program's ran word. */
static size_t emit(const struct bt_block *b, uint8_t *buf, size_t cap, long ran)
{
	struct gen g = { .e = { buf, 0, cap, 0 }, .b = b };
	struct x86e *e = &g.e;
	g.full = (b->pred && !direct_cond(b->pred)) || stmts_need_full(b->body);
	push(&g, X86_RAX);
	x86_lahf(e);                        /* ah = SF ZF AF PF CF */
	x86_setcc_r8(e, X86_CC_O, X86_RAX); /* al = OF */
	if (g.full) {
		push(&g, X86_RAX);          /* the flags, rax free */
		push(&g, ACC);
		push(&g, TMP);
	}
	x86_mov_r64_m64(e, PARTS, x86_fs(sp_fastcount.tls_fast));
	g.pbase = -(int32_t)SP_PART_BYTES;   /* the part area, below the counters */
	x86_mov_m8_imm8(e, x86_mem(PARTS, g.pbase + (int32_t)ran), 1);   /* this thread ran a block */
	struct fixes out = { .n = 0 };
	if (b->pred)
		branch_if(&g, b->pred, false, &out);
	stmts(&g, b->body);
	fix_here(&g, &out);
	if (g.full) {
		pop(&g, TMP);
		pop(&g, ACC);
		pop(&g, X86_RAX);
	}
	x86_add_al_imm8(e, 0x7f);           /* OF = al */
	x86_sahf(e);                        /* the rest from ah */
	pop(&g, X86_RAX);                   /* and on into the trampoline */
	if (g.fail || e->overflow || g.depth != 0)
		return 0;
	return e->len;
}

/* SELFPROBE_BTJIT=0?  The preload attaches in the first constructor,
 * before libc has set environ: then from the initial environment, as the
 * kernel keeps it (objcache.c reads its variable the same way). */
static bool jit_off(void)
{
	extern char **environ;
	if (getauxval(AT_SECURE))
		return false;
	if (environ) {
		const char *v = getenv("SELFPROBE_BTJIT");
		return v && strcmp(v, "0") == 0;
	}
	char buf[65536];
	int fd = open("/proc/self/environ", O_RDONLY | O_CLOEXEC);
	ssize_t len = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : 0;
	if (fd >= 0)
		close(fd);
	for (ssize_t i = 0; i < len;) {
		const char *v = buf + i;
		size_t n = strnlen(v, (size_t)(len - i));
		if (n == strlen("SELFPROBE_BTJIT=0") && memcmp(v, "SELFPROBE_BTJIT=0", n) == 0)
			return true;
		i += (ssize_t)n + 1;
	}
	return false;
}

static struct blob {
	struct blob *next;
	uint8_t code[];
} *blobs;

void bt_jit_block(struct bt_block *b)
{
	static pthread_mutex_t once = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&once);
	if (b->native_tried) {
		pthread_mutex_unlock(&once);
		return;
	}
	b->native_tried = true;
	const char *why = NULL;
	long ran = -1;
	if (jit_off())
		why = "SELFPROBE_BTJIT=0";
	else if (!sp_fastcount.on || !sp_stripe(SP_SHARED_SLOT))
		why = "the inline count is off (no rseq)";
	else if (!bt_jit_eligible(b->prog, b, &why))
		;
	else {
		pthread_mutex_lock(&region_lock);
		int rc = parts_for(b->body);
		ran = rc == 0 ? ran_word(b->prog) : -1;
		pthread_mutex_unlock(&region_lock);
		if (rc != 0 || ran < 0)
			why = "no memory for the maps' per-thread parts";
	}
	if (!why) {
		if (!jit_pid)
			jit_pid = (uint64_t)getpid();
		tid_off = (int32_t)((intptr_t)&jit_tid - (intptr_t)sp_thread_pointer());
		uint8_t buf[SP_INLINE_MAX];   /* a trampoline's room for it (tramp.h) */
		size_t n = emit(b, buf, sizeof(buf), ran);
		/* bytes a trampoline copies (tramp.c), never run from here;
		 * never freed (kept on a list): a site knows its copy by
		 * this address, which must not come back for another block */
		struct blob *bl = n ? sp_malloc(sizeof(*bl) + n) : NULL;
		if (!n)
			why = "its code is longer than a trampoline takes";
		else if (!bl)
			why = "out of memory";
		else {
			memcpy(bl->code, buf, n);
			bl->next = blobs;
			blobs = bl;
			b->native = bl->code;
			b->native_len = n;
		}
	}
	if (why)
		sp_debug("bpftrace block at line %d: the evaluator runs it (%s)", b->body ? b->body->line : 0, why);
	else
		sp_debug("bpftrace block at line %d: compiled to native code", b->body ? b->body->line : 0);
	pthread_mutex_unlock(&once);
}
