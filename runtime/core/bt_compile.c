/* bt_compile — check and resolve a parsed program once (see bt.h).
 *
 * Every name is looked up here and never again: builtins become an enum,
 * calls a function number, maps a pointer to their table (made here, with
 * the shape their first use gives them: keys, value kind), scratch
 * variables a slot.  Types are checked with bpftrace's rules for the
 * subset (integers signed only when both operands are; a string is never
 * a number).  Every refusal names the line, the column and the construct,
 * and happens before anything is attached.
 */
#include "bt.h"
#include "heap.h"
#include "bt_shard.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct comp {
	struct bt_program *p;
	struct bt_block *blk;
	int group;
	bool is_return;
	struct bt_error *err;
	jmp_buf fail;
};

__attribute__((format(printf, 3, 4), noreturn))
static void cfail(struct comp *C, const struct bt_node *n, const char *fmt, ...)
{
	va_list ap;
	C->err->line = n ? n->line : 1;
	C->err->col = n ? n->col : 1;
	va_start(ap, fmt);
	vsnprintf(C->err->msg, sizeof(C->err->msg), fmt, ap);
	va_end(ap);
	longjmp(C->fail, 1);
}

static const struct { const char *name; enum bt_fn fn; } fns[] = {
	{ "count", BF_COUNT }, { "sum", BF_SUM }, { "avg", BF_AVG }, { "min", BF_MIN }, { "max", BF_MAX },
	{ "stats", BF_STATS }, { "hist", BF_HIST }, { "lhist", BF_LHIST }, { "str", BF_STR },
	{ "printf", BF_PRINTF }, { "print", BF_PRINT }, { "clear", BF_CLEAR }, { "exit", BF_EXIT },
	{ "delete", BF_DELETE },
};

static const char *const mk_names[] = {
	[BM_NONE] = "none", [BM_INT] = "integer", [BM_STR] = "string", [BM_COUNT] = "count()",
	[BM_SUM] = "sum()", [BM_MIN] = "min()", [BM_MAX] = "max()", [BM_AVG] = "avg()",
	[BM_STATS] = "stats()", [BM_HIST] = "hist()", [BM_LHIST] = "lhist()", [BM_STACK] = "ustack",
};

static const char *type_name(enum bt_type t)
{
	return t == BT_STRT ? "string" : t == BT_STACKT ? "ustack" : "number";
}

/* ---- args.NAME: the runtime's resolver and the sites compiled for ---- */

static bt_args_fn args_resolver;
static const struct bt_args_site *args_sites;
static int n_args_sites;

void bt_set_args_resolver(bt_args_fn fn)
{
	args_resolver = fn;
}

void bt_set_args_sites(const struct bt_args_site *sites, int n)
{
	args_sites = sites;
	n_args_sites = n;
}

static struct bt_map *map_named(struct comp *C, const struct bt_node *n)
{
	struct bt_map **pp = &C->p->maps;
	for (; *pp; pp = &(*pp)->next) {
		int c = strcmp((*pp)->name, n->name);
		if (c == 0)
			return *pp;
		if (c > 0)
			break;
	}
	struct bt_map *m = sp_calloc(1, sizeof(*m));
	if (!m || !(m->name = sp_strdup(n->name))) {
		sp_free(m);
		cfail(C, n, "out of memory");
	}
	m->nkeys = -1;   /* unknown until its first use */
	m->shared_at = -1;
	m->next = *pp;
	*pp = m;
	C->p->nmaps++;
	return m;
}

static void expr(struct comp *C, struct bt_node *n);

static void want_int(struct comp *C, struct bt_node *n, const char *what)
{
	expr(C, n);
	if (n->type != BT_INT)
		cfail(C, n, "%s: a %s where a number is needed", what, n->type == BT_STACKT ? "ustack" : "string");
}

/* A map element's keys: same count and types as its first use. */
static void map_keys(struct comp *C, struct bt_node *n)
{
	struct bt_map *m = n->map = map_named(C, n);
	if (n->nargs > BT_MAX_KEYS)
		cfail(C, n, "map %s: more than %d keys", m->name, BT_MAX_KEYS);
	for (int i = 0; i < n->nargs; i++) {
		expr(C, n->args[i]);
		if (n->args[i]->type == BT_NONE)
			cfail(C, n->args[i], "map %s: key %d has no value", m->name, i + 1);
	}
	if (m->nkeys < 0) {
		m->nkeys = n->nargs;
		m->key_size = 0;
		for (int i = 0; i < n->nargs; i++) {
			m->key_type[i] = n->args[i]->type;
			m->key_depth[i] = n->args[i]->depth;
			m->key_size += n->args[i]->type == BT_STRT ? BT_STR :
				       n->args[i]->type == BT_STACKT ? BT_STACK_BYTES(n->args[i]->depth) : 8;
		}
		if (m->key_size > BT_KEY_MAX)
			cfail(C, n, "map %s: its keys take more than %d bytes", m->name, (int)BT_KEY_MAX);
		return;
	}
	if (m->nkeys != n->nargs)
		cfail(C, n, "map %s: used with %d key%s here, %d before", m->name, n->nargs,
		      n->nargs == 1 ? "" : "s", m->nkeys);
	for (int i = 0; i < n->nargs; i++) {
		if (m->key_type[i] != n->args[i]->type)
			cfail(C, n->args[i], "map %s: key %d is a %s here, a %s before", m->name, i + 1,
			      type_name(n->args[i]->type), type_name(m->key_type[i]));
		if (m->key_type[i] == BT_STACKT && m->key_depth[i] != n->args[i]->depth)
			cfail(C, n->args[i], "map %s: key %d is ustack(%d) here, ustack(%d) before", m->name, i + 1,
			      n->args[i]->depth, m->key_depth[i]);
	}
}

/* The map's value kind is set by its first assignment; later ones agree. */
static void map_kind(struct comp *C, struct bt_node *at, struct bt_map *m, enum bt_mk mk, bool sign)
{
	if (m->mk == BM_NONE) {
		m->mk = mk;
		m->val_signed = sign;
		return;
	}
	bool ints = (m->mk == BM_INT || m->mk == BM_COUNT) && (mk == BM_INT || mk == BM_COUNT);
	if (m->mk != mk && !ints)
		cfail(C, at, "map %s: used with two different types (%s, then %s)", m->name, mk_names[m->mk],
		      mk_names[mk]);
}

static int lookup_fn(const char *name)
{
	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++)
		if (strcmp(fns[i].name, name) == 0)
			return (int)fns[i].fn;
	return -1;
}

/* What a BEGIN, END or interval block has no value for: the probe's. */
static void not_special(struct comp *C, struct bt_node *n, const char *what)
{
	if (C->blk->special != BT_PROBE_HIT)
		cfail(C, n, "%s: no probe hit in a %s block (no arguments, return value or stack)", what,
		      C->blk->special == BT_BEGIN ? "BEGIN" : C->blk->special == BT_END ? "END" : "interval");
}

/* ustack, ustack(N): the frames kept. */
static void ustack(struct comp *C, struct bt_node *n)
{
	not_special(C, n, "ustack");
	n->depth = BT_USTACK_MAX;
	if (n->kind == BN_CALL) {
		if (n->nargs != 1 || n->args[0]->kind != BN_INT)
			cfail(C, n, "ustack(): takes one integer literal, the frames to keep (ustack(5))");
		if (n->args[0]->ival < 1 || n->args[0]->ival > BT_USTACK_MAX)
			cfail(C, n->args[0], "ustack(): frames from 1 to %d", BT_USTACK_MAX);
		n->depth = (int)n->args[0]->ival;
		n->kind = BN_BUILTIN;   /* a value like the bare builtin */
		bt_node_free(n->args[0]);
		sp_free(n->args);
		n->args = NULL;
		n->nargs = 0;
	}
	n->ival = BB_USTACK;
	n->type = BT_STACKT;
	n->is_signed = false;
}

static void builtin(struct comp *C, struct bt_node *n)
{
	const char *s = n->name;
	n->type = BT_INT;
	n->is_signed = false;
	if ((strncmp(s, "arg", 3) == 0 && s[3] >= '0' && s[3] <= '9') || strcmp(s, "retval") == 0 ||
	    strcmp(s, "func") == 0)
		not_special(C, n, s);
	if (strncmp(s, "arg", 3) == 0 && s[3] >= '0' && s[3] <= '7' && s[4] == 0) {
		n->ival = BB_ARG0 + (s[3] - '0');
		/* unsigned, a note's too (bpftrace 0.17: a sum of a negative
		 * note argument prints as a large unsigned number) */
	}
	else if (strncmp(s, "arg", 3) == 0 && s[3] >= '0' && s[3] <= '9')
		cfail(C, n, "builtin '%s': arguments are arg0 to arg7", s);
	else if (strcmp(s, "retval") == 0) {
		if (!C->is_return)
			cfail(C, n, "builtin 'retval': only in uretprobe blocks");
		n->ival = BB_RETVAL;
	} else if (strcmp(s, "pid") == 0 || strcmp(s, "cpid") == 0)
		n->ival = BB_PID;   /* cpid: bpftrace's -c child, which is this process */
	else if (strcmp(s, "tid") == 0)
		n->ival = BB_TID;
	else if (strcmp(s, "nsecs") == 0)
		n->ival = BB_NSECS;
	else if (strcmp(s, "cpu") == 0)
		n->ival = BB_CPU;
	else if (strcmp(s, "comm") == 0) {
		n->ival = BB_COMM;
		n->type = BT_STRT;
	} else if (strcmp(s, "func") == 0) {
		n->ival = BB_FUNC;
		n->type = BT_STRT;
	} else if (strcmp(s, "probe") == 0) {
		n->ival = BB_PROBE;
		n->type = BT_STRT;
	} else if (strcmp(s, "ustack") == 0)
		ustack(C, n);
	else if (strcmp(s, "kstack") == 0)
		cfail(C, n, "builtin 'kstack': no kernel stacks in the process");
	else if (strcmp(s, "args") == 0)
		cfail(C, n, "builtin 'args': write args.NAME or args->NAME (a parameter)");
	else if (lookup_fn(s) >= 0)
		cfail(C, n, "'%s' is a function: write %s(...)", s, s);
	else
		cfail(C, n, "unknown builtin '%s'", s);
}

/* args.NAME: the parameter's register, from the function's DWARF, read
 * once here; on a hit it is argN. */
static void args_field(struct comp *C, struct bt_node *n)
{
	not_special(C, n, "args");
	if (C->blk->usdt)
		cfail(C, n, "args.%s: a USDT note's arguments are arg0..arg11, not named", n->name);
	const struct bt_args_site *site = C->group < n_args_sites ? &args_sites[C->group] : NULL;
	if (!args_resolver || !site)
		cfail(C, n, "args.%s: no DWARF reader here", n->name);
	if (!site->func)
		cfail(C, n, "args.%s: %s", n->name, site->why ? site->why : "no single function");
	char e[200] = "";
	int idx = 0;
	bool sgn = false;
	if (args_resolver(site->object, site->func, n->name, &idx, &sgn, e, sizeof(e)) != 0)
		cfail(C, n, "args.%s: %s", n->name, e);
	n->kind = BN_BUILTIN;
	n->ival = BB_ARG0 + idx;
	n->type = BT_INT;
	n->is_signed = sgn;
}

static int var_slot(struct comp *C, struct bt_node *n, enum bt_type t, bool define)
{
	struct bt_program *p = C->p;
	for (int i = 0; i < p->nvars; i++)
		if (strcmp(p->var_names[i], n->name) == 0) {
			if (define && t != p->var_type[i])
				cfail(C, n, "variable %s: assigned a %s here, a %s before", n->name,
				      t == BT_STRT ? "string" : "number", p->var_type[i] == BT_STRT ? "string" : "number");
			return i;
		}
	if (!define)
		cfail(C, n, "variable %s: used before any assignment", n->name);
	if (p->nvars == BT_MAX_VARS)
		cfail(C, n, "variable %s: more than %d scratch variables", n->name, BT_MAX_VARS);
	if (!(p->var_names[p->nvars] = sp_strdup(n->name)))
		cfail(C, n, "out of memory");
	p->var_type[p->nvars] = t;
	return p->nvars++;
}

static void call(struct comp *C, struct bt_node *n, bool stmt)
{
	int fn = lookup_fn(n->name);
	if (fn < 0) {
		if (strcmp(n->name, "ustack") == 0) {
			if (stmt)
				cfail(C, n, "ustack(): a value, not a statement");
			ustack(C, n);
			return;
		}
		if (strcmp(n->name, "kstack") == 0)
			cfail(C, n, "'kstack()': no kernel stacks in the process");
		cfail(C, n, "unknown function '%s()'", n->name);
	}
	n->fn = fn;
	switch (fn) {
	case BF_COUNT: case BF_SUM: case BF_AVG: case BF_MIN: case BF_MAX: case BF_STATS: case BF_HIST:
	case BF_LHIST:
		cfail(C, n, "%s(): only as a map's value (@m = %s(...))", n->name, n->name);
	case BF_STR:
		if (n->nargs < 1 || n->nargs > 2)
			cfail(C, n, "str(): takes 1 or 2 arguments (an address, a length)");
		for (int i = 0; i < n->nargs; i++)
			want_int(C, n->args[i], "str()");
		n->type = BT_STRT;
		return;
	case BF_PRINTF: {
		if (!stmt)
			cfail(C, n, "printf(): a statement, not a value");
		if (n->nargs < 1 || n->args[0]->kind != BN_STR)
			cfail(C, n, "printf(): the first argument must be a string literal");
		if (n->nargs - 1 > BT_MAX_ARGS)
			cfail(C, n, "printf(): more than %d arguments", BT_MAX_ARGS);
		char e[200];
		if (bt_fmt_parse(n->args[0]->name, n->args[0]->slen, &n->fmt, e, sizeof(e)) != 0)
			cfail(C, n->args[0], "printf(): %s", e);
		int conv = 0;
		for (int i = 0; i < n->fmt->n; i++)
			conv += n->fmt->p[i].conv != 0;
		if (conv != n->nargs - 1)
			cfail(C, n, "printf(): the format has %d conversion%s and %d argument%s follow%s", conv,
			      conv == 1 ? "" : "s", n->nargs - 1, n->nargs == 2 ? "" : "s", n->nargs == 2 ? "s" : "");
		int k = 1;
		for (int i = 0; i < n->fmt->n; i++) {
			if (!n->fmt->p[i].conv)
				continue;
			struct bt_node *a = n->args[k++];
			expr(C, a);
			bool s = n->fmt->p[i].conv == 's';
			if (a->type == BT_STACKT)   /* symbolising takes the loader's lock: not in a handler */
				cfail(C, a, "printf(): a ustack is printed only as a map key or value (@[ustack] = count())");
			if (s && a->type != BT_STRT && a->type != BT_INT)
				cfail(C, a, "printf(): %%s needs a value");
			if (!s && a->type != BT_INT)
				cfail(C, a, "printf(): %%%c: a string where a number is needed", n->fmt->p[i].conv);
		}
		n->type = BT_NONE;
		return;
	}
	case BF_PRINT: case BF_CLEAR:
		if (!stmt)
			cfail(C, n, "%s(): a statement, not a value", n->name);
		if (n->nargs != 1 || n->args[0]->kind != BN_MAP || n->args[0]->nargs)
			cfail(C, n, "%s(): takes one map (@m)", n->name);
		n->map = map_named(C, n->args[0]);
		n->type = BT_NONE;
		return;
	case BF_EXIT:
		if (!stmt || n->nargs)
			cfail(C, n, "exit(): a statement without arguments");
		n->type = BT_NONE;
		return;
	case BF_DELETE:
		cfail(C, n, "delete(): a statement: delete(@m[k])");
	}
}

static void expr(struct comp *C, struct bt_node *n)
{
	switch (n->kind) {
	case BN_INT:
		n->type = BT_INT;
		n->is_signed = true;
		return;
	case BN_STR:
		n->type = BT_STRT;
		if (n->slen >= BT_STR)
			cfail(C, n, "string literal: longer than %d bytes", BT_STR - 1);
		return;
	case BN_BUILTIN:
		builtin(C, n);
		return;
	case BN_ARGS:
		args_field(C, n);
		return;
	case BN_VAR:
		n->ival = var_slot(C, n, BT_NONE, false);
		n->type = C->p->var_type[n->ival];
		n->is_signed = true;
		return;
	case BN_MAP: {
		map_keys(C, n);
		struct bt_map *m = n->map;
		switch (m->mk) {
		case BM_NONE:   /* read before any assignment in the text: an integer map */
			map_kind(C, n, m, BM_INT, true);
			/* fallthrough */
		case BM_INT: case BM_COUNT: case BM_SUM: case BM_MIN: case BM_MAX:
			n->type = BT_INT;
			n->is_signed = m->val_signed;
			return;
		case BM_STR:
			n->type = BT_STRT;
			return;
		default:
			cfail(C, n, "map %s: a %s map cannot be read in an expression", m->name, mk_names[m->mk]);
		}
	}
	case BN_BIN: {
		if (n->op == BT_OP_EQ || n->op == BT_OP_NE) {
			expr(C, n->a);
			expr(C, n->b);
			if (n->a->type != n->b->type || n->a->type == BT_NONE || n->a->type == BT_STACKT)
				cfail(C, n, "'%s': compares a %s with a %s", bt_op_name(n->op), type_name(n->a->type),
				      type_name(n->b->type));
		} else {
			want_int(C, n->a, bt_op_name(n->op));
			want_int(C, n->b, bt_op_name(n->op));
		}
		n->type = BT_INT;
		n->is_signed = n->a->is_signed && n->b->is_signed;
		if (n->op == BT_OP_SHL || n->op == BT_OP_SHR)
			n->is_signed = n->a->is_signed;
		if (n->op == BT_OP_AND || n->op == BT_OP_OR)
			n->is_signed = false;
		return;
	}
	case BN_UN:
		want_int(C, n->a, bt_op_name(n->op));
		n->type = BT_INT;
		n->is_signed = n->op == '!' ? false : n->a->is_signed;
		return;
	case BN_TERN:
		want_int(C, n->a, "ternary condition");
		expr(C, n->b);
		expr(C, n->c);
		if (n->b->type != n->c->type || n->b->type == BT_NONE || n->b->type == BT_STACKT)
			cfail(C, n, "ternary: both branches must be numbers or both strings");
		n->type = n->b->type;
		n->is_signed = n->b->is_signed;
		return;
	case BN_CALL:
		call(C, n, false);
		return;
	default:
		cfail(C, n, "statement where a value is needed");
	}
}

static void assign_map(struct comp *C, struct bt_node *s)
{
	struct bt_node *lhs = s->a, *rhs = s->b;
	map_keys(C, lhs);
	struct bt_map *m = lhs->map;
	if (rhs->kind == BN_CALL && s->op == '=') {
		int fn = lookup_fn(rhs->name);
		static const struct { int fn; enum bt_mk mk; int nargs; } aggs[] = {
			{ BF_COUNT, BM_COUNT, 0 }, { BF_SUM, BM_SUM, 1 }, { BF_AVG, BM_AVG, 1 }, { BF_MIN, BM_MIN, 1 },
			{ BF_MAX, BM_MAX, 1 }, { BF_STATS, BM_STATS, 1 }, { BF_HIST, BM_HIST, 1 }, { BF_LHIST, BM_LHIST, 4 },
		};
		for (size_t i = 0; i < sizeof(aggs) / sizeof(aggs[0]); i++) {
			if (aggs[i].fn != fn)
				continue;
			rhs->fn = fn;
			if (rhs->nargs != aggs[i].nargs)
				cfail(C, rhs, "%s(): takes %d argument%s", rhs->name, aggs[i].nargs, aggs[i].nargs == 1 ? "" : "s");
			for (int k = 0; k < rhs->nargs; k++)
				want_int(C, rhs->args[k], rhs->name);
			if (fn == BF_LHIST) {
				for (int k = 1; k < 4; k++)
					if (rhs->args[k]->kind != BN_INT)
						cfail(C, rhs->args[k], "lhist(): min, max and step must be integer literals");
				int64_t mn = rhs->args[1]->ival, mx = rhs->args[2]->ival, st = rhs->args[3]->ival;
				if (mn < 0 || mx <= mn || st <= 0 || (mx - mn) / st > 1000)
					cfail(C, rhs, "lhist(): needs 0 <= min < max, step > 0 and at most 1000 buckets");
				if (m->mk == BM_LHIST && (m->lmin != mn || m->lmax != mx || m->lstep != st))
					cfail(C, rhs, "map %s: lhist() with other bounds than before", m->name);
				m->lmin = mn;
				m->lmax = mx;
				m->lstep = st;
			}
			map_kind(C, lhs, m, aggs[i].mk, rhs->nargs ? rhs->args[0]->is_signed : false);
			s->kind = BN_ASSIGN;
			return;
		}
	}
	expr(C, rhs);
	if (rhs->type == BT_NONE)
		cfail(C, rhs, "assignment: the right side has no value");
	if (s->op != '=' && rhs->type != BT_INT)
		cfail(C, rhs, "'%c=': a string where a number is needed", s->op);
	if (s->op != '=' && m->mk == BM_NONE)
		map_kind(C, lhs, m, BM_INT, rhs->is_signed);
	if (rhs->type == BT_STACKT && s->op == '=') {
		if (m->mk == BM_STACK && m->val_depth != rhs->depth)
			cfail(C, rhs, "map %s: assigned ustack(%d) here, ustack(%d) before", m->name, rhs->depth,
			      m->val_depth);
		map_kind(C, lhs, m, BM_STACK, false);
		m->val_depth = rhs->depth;
		return;
	}
	if (rhs->type == BT_STACKT)
		cfail(C, rhs, "'%c=': a ustack where a number is needed", s->op);
	map_kind(C, lhs, m, rhs->type == BT_STRT ? BM_STR : BM_INT, rhs->is_signed);
	if (s->op != '=' && m->mk != BM_INT && m->mk != BM_COUNT)
		cfail(C, s, "'%c=' on map %s: it holds %s", s->op, m->name, mk_names[m->mk]);
}

static void statement(struct comp *C, struct bt_node *s);

static void stmts(struct comp *C, struct bt_node *blk)
{
	for (int i = 0; i < blk->nargs; i++)
		statement(C, blk->args[i]);
}

static void statement(struct comp *C, struct bt_node *s)
{
	switch (s->kind) {
	case BN_EXPR:
		if (!s->a) {   /* a nested block (else if) */
			stmts(C, s);
			return;
		}
		if (s->a->kind == BN_CALL) {
			call(C, s->a, true);
			return;
		}
		expr(C, s->a);   /* a value computed for nothing: allowed, as in bpftrace */
		return;
	case BN_ASSIGN:
		if (s->a->kind == BN_MAP) {
			assign_map(C, s);
			return;
		}
		expr(C, s->b);
		if (s->b->type == BT_NONE)
			cfail(C, s->b, "assignment: the right side has no value");
		if (s->op != '=' && s->b->type != BT_INT)
			cfail(C, s->b, "'%c=': a string where a number is needed", s->op);
		if (s->b->type == BT_STACKT)
			cfail(C, s->b, "variable %s: a ustack goes into a map (@s[tid] = ustack), not a scratch variable",
			      s->a->name);
		if (s->op != '=')   /* x += v reads x: it must exist */
			var_slot(C, s->a, BT_INT, false);
		s->a->ival = var_slot(C, s->a, s->b->type, true);
		s->a->type = s->b->type;
		return;
	case BN_INCR:
		if (s->a->kind == BN_MAP) {
			map_keys(C, s->a);
			map_kind(C, s, s->a->map, BM_INT, true);
			if (s->a->map->mk != BM_INT && s->a->map->mk != BM_COUNT)
				cfail(C, s, "'%s' on map %s: it holds %s", s->op > 0 ? "++" : "--", s->a->map->name,
				      mk_names[s->a->map->mk]);
		} else {
			s->a->ival = var_slot(C, s->a, BT_INT, false);
			if (C->p->var_type[s->a->ival] != BT_INT)
				cfail(C, s, "'%s' on variable %s: a string", s->op > 0 ? "++" : "--", s->a->name);
		}
		return;
	case BN_IF:
		want_int(C, s->a, "if condition");
		stmts(C, s->b);
		if (s->c)
			stmts(C, s->c);
		return;
	case BN_DELETE:
		map_keys(C, s->a);
		return;
	default:
		cfail(C, s, "a value where a statement is needed");
	}
}

/* A block is fast when nothing in it needs libc's string functions or
 * vector code: no string value anywhere, no printf/print/clear, no cpu
 * (sched_getcpu). */
static bool is_fast(const struct bt_node *n)
{
	if (!n)
		return true;
	if (n->type == BT_STRT || n->kind == BN_STR || n->type == BT_STACKT)   /* the walk: libunwind */
		return false;
	if (n->kind == BN_BUILTIN && (n->ival == BB_CPU || n->ival == BB_COMM || n->ival == BB_FUNC || n->ival == BB_PROBE))
		return false;
	if (n->kind == BN_CALL && n->ival && (n->fn == BF_PRINTF || n->fn == BF_PRINT || n->fn == BF_CLEAR || n->fn == BF_STR))
		return false;
	if (n->map && (n->map->mk == BM_STR || n->map->mk == BM_STACK))
		return false;
	if (n->map)
		for (int i = 0; i < n->map->nkeys; i++)
			if (n->map->key_type[i] != BT_INT)
				return false;
	if (!is_fast(n->a) || !is_fast(n->b) || !is_fast(n->c))
		return false;
	for (int i = 0; i < n->nargs; i++)
		if (!is_fast(n->args[i]))
			return false;
	return true;
}

int bt_compile(struct bt_ast *ast, const bool *is_return, const bool *is_usdt, struct bt_program **out,
	       struct bt_error *err)
{
	struct comp C = { .err = err };
	struct bt_program *p = sp_calloc(1, sizeof(*p));
	*out = NULL;
	memset(err, 0, sizeof(*err));
	if (!p) {
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		bt_ast_free(ast);
		return -1;
	}
	p->ast = *ast;
	memset(ast, 0, sizeof(*ast));
	p->refs = 1;
	p->out.id.fd = -1;
	C.p = p;
	if (setjmp(C.fail)) {
		bt_program_release(p);
		return -1;
	}
	if (!(p->blocks = sp_calloc((size_t)p->ast.ngroups, sizeof(*p->blocks))))
		cfail(&C, NULL, "out of memory");
	p->nblocks = p->ast.ngroups;
	for (int g = 0; g < p->ast.ngroups; g++) {
		struct bt_probe_ast *G = &p->ast.groups[g];
		struct bt_block *b = &p->blocks[g];
		char e[160];
		b->name = G->probes[0];
		for (int k = 0; k < G->nprobes; k++) {
			int64_t ns = 0;
			int sp = bt_special_probe(G->probes[k], &ns, e, sizeof(e));
			struct bt_node at = { .line = G->probe_line[k], .col = G->probe_col[k] };
			if (sp < 0)
				cfail(&C, &at, "probe '%.200s': %s", G->probes[k], e);
			if (k > 0 && (enum bt_special)sp != b->special)
				cfail(&C, &at, "probe '%.200s': BEGIN, END and interval each need a block of their own",
				      G->probes[k]);
			b->special = (enum bt_special)sp;
			b->interval_ns = ns;
		}
		if (b->special != BT_PROBE_HIT)
			p->has_special = true;
		b->prog = p;
		b->pred = G->pred;
		b->body = G->block;
		b->is_return = is_return[g];
		b->usdt = is_usdt && is_usdt[g];
		C.is_return = is_return[g];
		C.blk = b;
		C.group = g;
		if (G->pred)
			want_int(&C, G->pred, "predicate");
		stmts(&C, G->block);
	}
	for (struct bt_map *m = p->maps; m; m = m->next) {
		if (m->mk == BM_NONE)   /* only printed, cleared or deleted from */
			cfail(&C, NULL, "map %s: never assigned", m->name);
		if (m->nkeys < 0)
			m->nkeys = 0;
		if (bt_map_alloc(m) != 0)
			cfail(&C, NULL, "map %s: cannot reserve its memory", m->name);
	}
	for (int g = 0; g < p->nblocks; g++)   /* after every map's shape is known */
		/* a note's arguments are read by usdt.c, which may read the
		 * saved vector state: not on the fast path */
		p->blocks[g].fast = is_fast(p->blocks[g].pred) && is_fast(p->blocks[g].body) && !p->blocks[g].usdt;
	*out = p;
	return 0;
}

static void free_fmts(struct bt_node *n)
{
	if (!n)
		return;
	if (n->fmt) {
		bt_fmt_free(n->fmt);
		n->fmt = NULL;
	}
	free_fmts(n->a);
	free_fmts(n->b);
	free_fmts(n->c);
	for (int i = 0; i < n->nargs; i++)
		free_fmts(n->args[i]);
}

int bt_special_probe(const char *text, int64_t *interval_ns, char *err, size_t errlen)
{
	*interval_ns = 0;
	if (strcmp(text, "BEGIN") == 0)
		return BT_BEGIN;
	if (strcmp(text, "END") == 0)
		return BT_END;
	if (strncmp(text, "interval:", 9) != 0)
		return BT_PROBE_HIT;
	static const struct { const char *unit; int64_t ns; } units[] = {
		{ "s:", 1000000000 }, { "ms:", 1000000 }, { "us:", 1000 }, { "hz:", 0 },
	};
	const char *r = text + 9;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		size_t ul = strlen(units[i].unit);
		if (strncmp(r, units[i].unit, ul) != 0)
			continue;
		char *end;
		long long v = strtoll(r + ul, &end, 10);
		if (end == r + ul || *end || v <= 0 || v > 1000000000) {
			snprintf(err, errlen, "interval: expected a count from 1 after '%s'", units[i].unit);
			return -1;
		}
		*interval_ns = units[i].ns ? units[i].ns * v : 1000000000 / v;
		if (*interval_ns < 1000000) {   /* a thread's wake-ups, not a sampler */
			snprintf(err, errlen, "interval: at least 1 ms between runs in the process");
			return -1;
		}
		return BT_INTERVAL;
	}
	snprintf(err, errlen, "interval: expected interval:s:N, interval:ms:N, interval:us:N or interval:hz:N");
	return -1;
}

void bt_program_release(struct bt_program *p)
{
	if (!p || atomic_fetch_sub(&p->refs, 1) != 1)
		return;
	for (int g = 0; g < p->ast.ngroups; g++) {
		free_fmts(p->ast.groups[g].pred);
		free_fmts(p->ast.groups[g].block);
	}
	bt_ast_free(&p->ast);
	for (struct bt_map *m = p->maps, *nx; m; m = nx) {
		nx = m->next;
		bt_shards_free(m);
		bt_map_free(m);
		sp_free(m->name);
		sp_free(m);
	}
	for (int i = 0; i < p->nvars; i++)
		sp_free(p->var_names[i]);
	sp_free(p->blocks);
	sp_free(p);
}
