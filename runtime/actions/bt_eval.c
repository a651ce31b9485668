/* bt_eval — run a compiled block on a hit (see bt.h).
 *
 * Runs as a probe handler, through the guard (a fault disables the probe,
 * never the process).  Built -mgeneral-regs-only: a block the compiler
 * marked fast (integers only: no string, no printf, no libc string
 * function reached) runs on the jmp path with the interrupted code's
 * vector registers still live, so nothing it reaches may touch them —
 * keys are built with word stores, arguments read from the saved
 * registers, the clock read as latency.c reads it.  Any other block runs
 * after the vector state was saved (bt_run.c), where libc is fine.  The
 * tree it walks
 * was resolved at compile time: integers and fixed 64-byte strings on the
 * stack, map keys built in a stack buffer, no allocation (print() of a
 * whole map is the exception: it sorts).  The thread is marked as the
 * runtime's while a block runs: what it calls (clock_gettime, write) is
 * not counted as the application's.
 */
#include "bt.h"
#include "heap.h"
#include "bt_shard.h"
#include "btpartmem.h"
#include "ctx.h"
#include "dispatch.h"
#include "probe.h"
#include "stack.h"
#include "tstate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <sched.h>

struct frame {
	struct selfprobe_ctx *ctx;
	struct bt_block *blk;
	int64_t iv[BT_MAX_VARS];
	char sv[BT_MAX_VARS][BT_STR];
	bool stop;
};

/* pid and tid, asked once (a system call each) and kept until a fork:
 * the child's thread has another id (bt_eval_atfork_child). */
static _Atomic pid_t cached_pid;
static _Atomic unsigned fork_gen = 1;
static __thread pid_t cached_tid __attribute__((tls_model("initial-exec")));
static __thread unsigned cached_tid_gen __attribute__((tls_model("initial-exec")));

void bt_eval_atfork_child(void)
{
	atomic_store(&cached_pid, 0);
	atomic_fetch_add(&fork_gen, 1);
}

static pid_t my_pid(void)
{
	pid_t p = atomic_load_explicit(&cached_pid, memory_order_relaxed);
	if (!p)
		atomic_store_explicit(&cached_pid, p = getpid(), memory_order_relaxed);
	return p;
}

static pid_t my_tid(void)
{
	unsigned gen = atomic_load_explicit(&fork_gen, memory_order_relaxed);
	if (cached_tid_gen != gen) {
		cached_tid = gettid();
		cached_tid_gen = gen;
	}
	return cached_tid;
}

static int64_t eval_int(struct frame *F, struct bt_node *n);
static void eval_str(struct frame *F, struct bt_node *n, char out[BT_STR]);
static void eval_key(struct frame *F, struct bt_node *n, unsigned char *key);

/* NUL-terminated copy of at most N bytes at ADDR of this process's memory
 * (bpftrace 0.17's str(x, n): n bytes, the NUL not counted; at most
 * BT_STR - 1), stopping at an unreadable page. */
static void read_str(uintptr_t addr, size_t n, char out[BT_STR])
{
	memset(out, 0, BT_STR);
	if (n > BT_STR - 1)
		n = BT_STR - 1;
	if (!addr || n < 1)
		return;
	size_t want = n, got = 0;
	while (got < want) {
		uintptr_t a = addr + got;
		size_t in_page = 4096 - (a & 4095), k = want - got < in_page ? want - got : in_page;
		struct iovec local = { out + got, k }, remote = { (void *)a, k };
		ssize_t r = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
		if (r <= 0)
			break;
		if (memchr(out + got, 0, (size_t)r))
			break;
		got += (size_t)r;
	}
	out[BT_STR - 1] = 0;
	size_t len = strnlen(out, want);
	memset(out + len, 0, BT_STR - len);   /* keys compare whole buffers */
}

static void builtin_str(struct frame *F, struct bt_node *n, char out[BT_STR])
{
	const struct sp_probe *p = F->ctx ? F->ctx->probe : NULL;   /* none in BEGIN, END, interval */
	memset(out, 0, BT_STR);
	switch (n->ival) {
	case BB_COMM:
		prctl(PR_GET_NAME, out, 0, 0, 0);
		break;
	case BB_FUNC:
		if (p && p->symbol) {
			const char *plus = strchr(p->symbol, '+');
			size_t len = plus ? (size_t)(plus - p->symbol) : strlen(p->symbol);
			memcpy(out, p->symbol, len < BT_STR - 1 ? len : BT_STR - 1);
		}
		break;
	case BB_PROBE:
		if (!F->ctx) {   /* BEGIN, END, interval: the probe as written */
			snprintf(out, BT_STR, "%s", F->blk->name);
			break;
		}
		snprintf(out, BT_STR, "%s:%s:%s", F->blk->is_return ? "uretprobe" : sp_kind_name(p->kind),
			 p->object ? p->object : "", p->symbol ? p->symbol : "");
		break;
	}
}

static void eval_str(struct frame *F, struct bt_node *n, char out[BT_STR])
{
	switch (n->kind) {
	case BN_STR:
		memset(out, 0, BT_STR);
		memcpy(out, n->name, n->slen);
		return;
	case BN_BUILTIN:
		builtin_str(F, n, out);
		return;
	case BN_VAR:
		memcpy(out, F->sv[n->ival], BT_STR);
		return;
	case BN_CALL:   /* str() */
		read_str((uintptr_t)eval_int(F, n->args[0]), n->nargs > 1 ? (size_t)eval_int(F, n->args[1]) : BT_STR, out);
		return;
	case BN_TERN:
		if (eval_int(F, n->a))
			eval_str(F, n->b, out);
		else
			eval_str(F, n->c, out);
		return;
	case BN_MAP: {
		_Alignas(8) unsigned char key[BT_KEY_MAX];
		eval_key(F, n, key);
		const uint64_t *v = bt_map_lookup(n->map, key, false);
		if (v)
			memcpy(out, v, BT_STR);
		else
			memset(out, 0, BT_STR);
		return;
	}
	default:
		memset(out, 0, BT_STR);
	}
}

/* ustack(N) into OUT (BT_STACK_BYTES(N)): the depth word, the frames from
 * the probe's context (the stack action's walker), zeros after. */
static void eval_stack(struct frame *F, struct bt_node *n, uint64_t *out)
{
	uintptr_t ips[BT_USTACK_MAX];
	int got = F->ctx ? sp_stack_walk(F->ctx, ips, n->depth) : 0;
	if (got < 0)
		got = 0;
	out[0] = (uint64_t)got;
	for (int i = 0; i < n->depth; i++)
		out[1 + i] = i < got ? ips[i] : 0;
}

/* The map element's key bytes into KEY (map->key_size of them). */
static void eval_key(struct frame *F, struct bt_node *n, unsigned char *key)
{
	size_t o = 0;
	for (size_t w = 0; w < n->map->key_size / 8; w++)   /* not memset: see the top */
		((uint64_t *)(void *)key)[w] = 0;
	for (int i = 0; i < n->nargs; i++) {
		if (n->map->key_type[i] == BT_STRT) {
			eval_str(F, n->args[i], (char *)key + o);
			o += BT_STR;
		} else if (n->map->key_type[i] == BT_STACKT) {
			eval_stack(F, n->args[i], (uint64_t *)(void *)(key + o));
			o += BT_STACK_BYTES(n->map->key_depth[i]);
		} else {
			*(uint64_t *)(void *)(key + o) = (uint64_t)eval_int(F, n->args[i]);
			o += 8;
		}
	}
}

static int64_t builtin_int(struct frame *F, struct bt_node *n)
{
	struct selfprobe_ctx *ctx = F->ctx;
	switch (n->ival) {
	case BB_RETVAL:
		return (int64_t)ctx->regs->rax;
	case BB_PID:
		return my_pid();
	case BB_TID:
		return my_tid();
	case BB_NSECS: {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	}
	case BB_CPU: {
		int c = sched_getcpu();
		return c < 0 ? 0 : c;
	}
	default:
		if (n->ival >= BB_ARG0 && n->ival <= BB_ARG7 && F->blk->usdt) {
			int64_t v = 0;   /* a note without that argument: 0 */
			selfprobe_usdt_arg(ctx, (int)(n->ival - BB_ARG0), &v);
			return v;
		}
		if (n->ival >= BB_ARG0 && n->ival <= BB_ARG7)
			return (int64_t)sp_ctx_arg(ctx->regs, (int)(n->ival - BB_ARG0));
		return 0;
	}
}

static int64_t binop(int op, bool sgn, int64_t a, int64_t b)
{
	uint64_t ua = (uint64_t)a, ub = (uint64_t)b;
	switch (op) {
	case '+': return (int64_t)(ua + ub);
	case '-': return (int64_t)(ua - ub);
	case '*': return (int64_t)(ua * ub);
	case '/':
		if (!b)
			return 0;   /* bpf's division by zero */
		if (sgn)
			return b == -1 ? (int64_t)(0 - ua) : a / b;
		return (int64_t)(ua / ub);
	case '%':
		if (!b)
			return a;
		if (sgn)
			return b == -1 ? 0 : a % b;
		return (int64_t)(ua % ub);
	case '&': return a & b;
	case '|': return a | b;
	case '^': return a ^ b;
	case BT_OP_SHL: return (int64_t)(ua << (ub & 63));
	case BT_OP_SHR: return sgn ? a >> (ub & 63) : (int64_t)(ua >> (ub & 63));
	case '<': return sgn ? a < b : ua < ub;
	case '>': return sgn ? a > b : ua > ub;
	case BT_OP_LE: return sgn ? a <= b : ua <= ub;
	case BT_OP_GE: return sgn ? a >= b : ua >= ub;
	}
	return 0;
}

static int64_t eval_int(struct frame *F, struct bt_node *n)
{
	switch (n->kind) {
	case BN_INT:
		return n->ival;
	case BN_BUILTIN:
		return builtin_int(F, n);
	case BN_VAR:
		return F->iv[n->ival];
	case BN_MAP: {
		_Alignas(8) unsigned char key[BT_KEY_MAX];
		eval_key(F, n, key);
		const uint64_t *v = bt_map_lookup(n->map, key, false);
		if (!v)
			return 0;
		if (n->map->mk == BM_MIN)
			return v[0] ? (int64_t)(0xffffffffull - v[0]) : 0;
		return (int64_t)v[0];
	}
	case BN_UN: {
		int64_t a = eval_int(F, n->a);
		return n->op == '!' ? !a : n->op == '-' ? (int64_t)(0 - (uint64_t)a) : ~a;
	}
	case BN_TERN:
		return eval_int(F, n->a) ? eval_int(F, n->b) : eval_int(F, n->c);
	case BN_BIN:
		if (n->op == BT_OP_AND)
			return eval_int(F, n->a) && eval_int(F, n->b);
		if (n->op == BT_OP_OR)
			return eval_int(F, n->a) || eval_int(F, n->b);
		if (n->op == BT_OP_EQ || n->op == BT_OP_NE) {
			bool eq;
			if (n->a->type == BT_STRT) {
				char a[BT_STR], b[BT_STR];
				eval_str(F, n->a, a);
				eval_str(F, n->b, b);
				eq = strncmp(a, b, BT_STR) == 0;
			} else
				eq = eval_int(F, n->a) == eval_int(F, n->b);
			return n->op == BT_OP_EQ ? eq : !eq;
		}
		return binop(n->op, n->is_signed, eval_int(F, n->a), eval_int(F, n->b));
	default:
		return 0;
	}
}

/* bpftrace 0.17's min and max: the larger (signed) of the word and X is
 * kept, the word starting at 0; min keeps 0xffffffff - value (its output
 * turns it back), so both are one word and a missing key needs no flag. */
static void store_larger(uint64_t *v, int64_t x)
{
	_Atomic uint64_t *cur = (_Atomic uint64_t *)v;
	uint64_t old = atomic_load_explicit(cur, memory_order_relaxed);
	while (x >= (int64_t)old && !atomic_compare_exchange_weak(cur, &old, (uint64_t)x))
		;
}

/* Where a hit adds to map M's value for KEY: this thread's own words in
 * the map's per-thread parts when it has them (a keyed map the program
 * never reads back, bt_shard.h: no shared line written), else the table's
 * (atomic adds).  NULL: the map is full (counted as dropped). */
struct target {
	uint64_t *v;
	bool own;
};

static struct target target(struct bt_map *m, const void *key)
{
	struct target t = { NULL, false };
	long i = bt_map_slot(m, key, true);
	if (i < 0)
		return t;
	struct bt_shards *s = m->shards;
	int part = sp_tls.slot - 1;   /* the thread's stripe: its part */
	/* mapped at the stripe's first update of the map (btpartmem.h);
	 * NULL: it could not be, the table instead */
	unsigned char *own = s && s->keyed && part >= 0 && part < s->n ? sp_btpart(s, part) : NULL;
	if (own) {
		t.v = bt_shard_slot(m, own, (size_t)i);
		t.own = true;
	} else
		t.v = bt_map_value(m, (size_t)i);
	return t;
}

static void add_to(struct target t, size_t k, uint64_t x)
{
	if (t.own)   /* one instruction: a signal handler's hit cannot split it */
		__asm__ volatile("addq %1, %0" : "+m"(t.v[k]) : "er"(x) : "cc");
	else
		atomic_fetch_add_explicit((_Atomic uint64_t *)&t.v[k], x, memory_order_relaxed);
}

static void assign_map(struct frame *F, struct bt_node *s)
{
	struct bt_node *lhs = s->a, *rhs = s->b;
	struct bt_map *m = lhs->map;
	_Alignas(8) unsigned char key[BT_KEY_MAX];
	int64_t x = 0;
	char sbuf[BT_STR];
	uint64_t stk[1 + BT_USTACK_MAX];
	/* the value first (it may read this very map), then the slot */
	bool agg = rhs->kind == BN_CALL && rhs->fn <= BF_LHIST && s->op == '=';
	if (agg) {
		if (rhs->nargs)
			x = eval_int(F, rhs->args[0]);
	} else if (m->mk == BM_STR)
		eval_str(F, rhs, sbuf);
	else if (m->mk == BM_STACK)
		eval_stack(F, rhs, stk);
	else
		x = eval_int(F, rhs);
	eval_key(F, lhs, key);
	struct target t = target(m, key);
	uint64_t *v = t.v;
	if (!v)
		return;   /* full: counted as dropped */
	if (!agg) {
		if (m->mk == BM_STR)
			memcpy(v, sbuf, BT_STR);
		else if (m->mk == BM_STACK)
			memcpy(v, stk, BT_STACK_BYTES(m->val_depth));
		else if (s->op == '=')
			atomic_store_explicit((_Atomic uint64_t *)v, (uint64_t)x, memory_order_relaxed);
		else
			add_to(t, 0, s->op == '+' ? (uint64_t)x : (uint64_t)0 - (uint64_t)x);
		return;
	}
	switch (rhs->fn) {
	case BF_COUNT: add_to(t, 0, 1); break;
	case BF_SUM: add_to(t, 0, (uint64_t)x); break;
	case BF_MIN: store_larger(v, (int64_t)(0xffffffffull - (uint64_t)x)); break;   /* wraps, as BPF's does */
	case BF_MAX: store_larger(v, x); break;
	case BF_AVG: case BF_STATS: add_to(t, 0, 1); add_to(t, 1, (uint64_t)x); break;
	case BF_HIST: add_to(t, (size_t)bt_hist_bucket(x), 1); break;
	case BF_LHIST: add_to(t, (size_t)bt_lhist_bucket(x, m->lmin, m->lmax, m->lstep), 1); break;
	}
}

static void do_printf(struct frame *F, struct bt_node *n)
{
	int64_t vals[BT_MAX_ARGS];
	char strs[BT_MAX_ARGS][BT_STR];
	const char *sp[BT_MAX_ARGS];
	for (int i = 1; i < n->nargs; i++) {
		struct bt_node *a = n->args[i];
		sp[i - 1] = NULL;
		if (a->type == BT_STRT) {
			eval_str(F, a, strs[i - 1]);
			sp[i - 1] = strs[i - 1];
		} else
			vals[i - 1] = eval_int(F, a);
	}
	char out[1024];
	struct bt_buf b = { out, 0, sizeof(out), true };
	bt_format(&b, n->fmt, vals, sp);
	if (F->blk->prog->json) {   /* -f json: the line as a JSON string */
		char js[2048];
		struct bt_buf j = { js, 0, sizeof(js), true };
		bt_json_printf(&j, b.p, b.n);
		bt_output(F->blk->prog, j.p, j.n);
		return;
	}
	bt_output(F->blk->prog, b.p, b.n);
}

static void statements(struct frame *F, struct bt_node *blk);

static void statement(struct frame *F, struct bt_node *s)
{
	switch (s->kind) {
	case BN_EXPR:
		if (!s->a) {
			statements(F, s);
			return;
		}
		if (s->a->kind == BN_CALL) {
			struct bt_node *c = s->a;
			switch (c->fn) {
			case BF_PRINTF: do_printf(F, c); return;
			case BF_PRINT: {
				struct bt_buf b = { 0 };
				if (F->blk->prog->json)
					bt_print_map_json(&b, c->map);
				else
					bt_print_map(&b, c->map);
				bt_output(F->blk->prog, b.p, b.n);
				sp_free(b.p);
				return;
			}
			case BF_CLEAR: bt_map_clear(c->map); return;
			case BF_EXIT:
				atomic_store(&F->blk->prog->exited, true);
				F->stop = true;
				return;
			default: break;
			}
		}
		if (s->a->type == BT_STRT) {
			char tmp[BT_STR];
			eval_str(F, s->a, tmp);
		} else
			(void)eval_int(F, s->a);
		return;
	case BN_ASSIGN:
		if (s->a->kind == BN_MAP)
			assign_map(F, s);
		else if (s->a->type == BT_STRT)
			eval_str(F, s->b, F->sv[s->a->ival]);
		else if (s->op == '=')
			F->iv[s->a->ival] = eval_int(F, s->b);
		else
			F->iv[s->a->ival] += s->op == '+' ? eval_int(F, s->b) : -eval_int(F, s->b);
		return;
	case BN_INCR:
		if (s->a->kind == BN_MAP) {
			_Alignas(8) unsigned char key[BT_KEY_MAX];
			eval_key(F, s->a, key);
			struct target t = target(s->a->map, key);
			if (t.v)
				add_to(t, 0, (uint64_t)(int64_t)s->op);
		} else
			F->iv[s->a->ival] += s->op;
		return;
	case BN_IF:
		if (eval_int(F, s->a))
			statements(F, s->b);
		else if (s->c)
			statements(F, s->c);
		return;
	case BN_DELETE: {
		_Alignas(8) unsigned char key[BT_KEY_MAX];
		eval_key(F, s->a, key);
		bt_map_delete(s->a->map, key);
		return;
	}
	default:
		return;
	}
}

static void statements(struct frame *F, struct bt_node *blk)
{
	for (int i = 0; i < blk->nargs && !F->stop; i++)
		statement(F, blk->args[i]);
}

void bt_run(struct bt_block *b, struct selfprobe_ctx *ctx)
{
	struct frame F;
	F.ctx = ctx;
	F.blk = b;
	F.stop = false;
	/* scratch variables start at zero in each run, as in bpftrace; only
	 * the ones the program has are cleared */
	for (int i = 0; i < b->prog->nvars; i++) {
		F.iv[i] = 0;
		if (b->prog->var_type[i] == BT_STRT)
			memset(F.sv[i], 0, BT_STR);
	}
	if (b->pred && !eval_int(&F, b->pred))
		return;
	statements(&F, b->body);
}
