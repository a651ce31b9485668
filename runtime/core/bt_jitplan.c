/* bt_jitplan — see bt_jitplan.h for the subset and why. */
#include "bt_jitplan.h"

#include <stddef.h>

/* ---- maps: how the whole program uses them ---- */

/* Does tree N (any block, any position) use M in a way that needs its
 * value in one place: read in an expression, deleted, cleared, or
 * assigned a plain value? */
static bool map_needs_shared(const struct bt_node *n, const struct bt_map *m, bool stmt);

static bool args_need_shared(const struct bt_node *n, const struct bt_map *m)
{
	for (int i = 0; i < n->nargs; i++)
		if (n->args[i] && map_needs_shared(n->args[i], m, false))
			return true;
	return false;
}

static bool stmts_need_shared(const struct bt_node *blk, const struct bt_map *m)
{
	for (int i = 0; blk && i < blk->nargs; i++)
		if (map_needs_shared(blk->args[i], m, true))
			return true;
	return false;
}

static bool map_needs_shared(const struct bt_node *n, const struct bt_map *m, bool stmt)
{
	if (!n)
		return false;
	if (stmt) {
		switch (n->kind) {
		case BN_EXPR:
			if (!n->a)
				return stmts_need_shared(n, m);
			if (n->a->kind == BN_CALL && n->a->fn == BF_CLEAR)
				return n->a->map == m;
			if (n->a->kind == BN_CALL && n->a->fn == BF_PRINT)
				return false;   /* print() merges the threads' parts first */
			return map_needs_shared(n->a, m, false);
		case BN_ASSIGN:
			if (n->a->kind == BN_MAP && n->a->map == m) {
				const struct bt_node *r = n->b;
				bool agg = r->kind == BN_CALL && r->fn <= BF_LHIST && n->op == '=';
				if (!agg && n->op == '=')
					return true;   /* a plain value: the last writer wins */
				if (args_need_shared(n->a, m))
					return true;
				return agg ? args_need_shared(r, m) : map_needs_shared(r, m, false);
			}
			return map_needs_shared(n->a, m, false) || map_needs_shared(n->b, m, false);
		case BN_INCR:
			return n->a->kind == BN_MAP && args_need_shared(n->a, m);   /* @m++ only adds */
		case BN_IF:
			return map_needs_shared(n->a, m, false) || stmts_need_shared(n->b, m) || stmts_need_shared(n->c, m);
		case BN_DELETE:
			return n->a->map == m || args_need_shared(n->a, m);
		default:
			return true;
		}
	}
	if (n->kind == BN_MAP && n->map == m)
		return true;   /* read */
	if (n->kind == BN_CALL && (n->fn == BF_PRINT || n->fn == BF_CLEAR) && n->map == m)
		return n->fn == BF_CLEAR;
	if (map_needs_shared(n->a, m, false) || map_needs_shared(n->b, m, false) || map_needs_shared(n->c, m, false))
		return true;
	return args_need_shared(n, m);
}

bool bt_jit_map_shardable(const struct bt_program *p, const struct bt_map *m)
{
	switch (m->mk) {
	case BM_COUNT: case BM_SUM: case BM_MIN: case BM_MAX: case BM_AVG: case BM_STATS: case BM_HIST:
	case BM_LHIST: case BM_INT:
		break;
	default:
		return false;
	}
	for (int g = 0; g < p->nblocks; g++) {
		const struct bt_block *b = &p->blocks[g];
		if (map_needs_shared(b->pred, m, false) || stmts_need_shared(b->body, m))
			return false;
	}
	return true;
}

/* ---- blocks ---- */

static bool has_exit(const struct bt_node *n)
{
	if (!n)
		return false;
	if (n->kind == BN_CALL && n->fn == BF_EXIT)
		return true;
	if (has_exit(n->a) || has_exit(n->b) || has_exit(n->c))
		return true;
	for (int i = 0; i < n->nargs; i++)
		if (has_exit(n->args[i]))
			return true;
	return false;
}

/* An integer expression the code writer handles. */
static bool expr_ok(const struct bt_node *n, const char **why)
{
	switch (n->kind) {
	case BN_INT:
		return true;
	case BN_BUILTIN:
		if ((n->ival >= BB_ARG0 && n->ival <= BB_ARG7) || n->ival == BB_PID || n->ival == BB_TID)
			return true;
		*why = "a builtin other than argN, pid and tid";
		return false;
	case BN_UN:
		return expr_ok(n->a, why);
	case BN_TERN:
		return expr_ok(n->a, why) && expr_ok(n->b, why) && expr_ok(n->c, why);
	case BN_BIN:
		if (n->a->type != BT_INT || n->b->type != BT_INT) {
			*why = "a string comparison";
			return false;
		}
		switch (n->op) {
		case '+': case '-': case '*': case '&': case '|': case '^': case '<': case '>':
		case BT_OP_LE: case BT_OP_GE: case BT_OP_EQ: case BT_OP_NE: case BT_OP_AND: case BT_OP_OR:
			return expr_ok(n->a, why) && expr_ok(n->b, why);
		case BT_OP_SHL: case BT_OP_SHR:
			if (n->b->kind != BN_INT) {
				*why = "a shift by a computed amount";
				return false;
			}
			return expr_ok(n->a, why);
		default:
			*why = "/ or %";
			return false;
		}
	case BN_MAP:
		*why = "a map read";
		return false;
	case BN_VAR:
		*why = "a scratch variable";
		return false;
	default:
		*why = "a call or string value";
		return false;
	}
}

static bool stmts_ok(const struct bt_program *p, const struct bt_node *blk, const char **why);

static bool map_update_ok(const struct bt_program *p, const struct bt_node *lhs, const char **why)
{
	if (lhs->kind != BN_MAP || lhs->nargs) {
		*why = "a map with keys";
		return false;
	}
	if (!bt_jit_map_shardable(p, lhs->map)) {
		*why = "a map the program reads, clears, deletes from or assigns";
		return false;
	}
	return true;
}

static bool stmt_ok(const struct bt_program *p, const struct bt_node *s, const char **why)
{
	switch (s->kind) {
	case BN_EXPR:
		if (!s->a)
			return stmts_ok(p, s, why);
		*why = "a call or expression statement";
		return false;
	case BN_ASSIGN: {
		if (s->a->kind != BN_MAP) {
			*why = "a scratch variable";
			return false;
		}
		if (!map_update_ok(p, s->a, why))
			return false;
		const struct bt_node *r = s->b;
		if (r->kind == BN_CALL && r->fn <= BF_LHIST && s->op == '=')
			return r->fn == BF_COUNT || expr_ok(r->args[0], why);
		if (s->op == '+' || s->op == '-')
			return expr_ok(r, why);
		*why = "a plain assignment";
		return false;
	}
	case BN_INCR:
		if (s->a->kind != BN_MAP) {
			*why = "a scratch variable";
			return false;
		}
		return map_update_ok(p, s->a, why);
	case BN_IF:
		return expr_ok(s->a, why) && stmts_ok(p, s->b, why) && (!s->c || stmts_ok(p, s->c, why));
	default:
		*why = "delete()";
		return false;
	}
}

static bool stmts_ok(const struct bt_program *p, const struct bt_node *blk, const char **why)
{
	for (int i = 0; i < blk->nargs; i++)
		if (!stmt_ok(p, blk->args[i], why))
			return false;
	return true;
}

bool bt_jit_eligible(const struct bt_program *p, const struct bt_block *b, const char **why)
{
	const char *dummy;
	if (!why)
		why = &dummy;
	if (b->is_return) {
		*why = "a uretprobe block (it runs in the return trampoline)";
		return false;
	}
	if (b->usdt) {
		*why = "a usdt block (its arguments come from the note)";
		return false;
	}
	for (int g = 0; g < p->nblocks; g++)
		if (has_exit(p->blocks[g].pred) || has_exit(p->blocks[g].body)) {
			*why = "the program calls exit()";
			return false;
		}
	if (b->pred && !expr_ok(b->pred, why))
		return false;
	return stmts_ok(p, b->body, why);
}
