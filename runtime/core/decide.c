/* decide — see decide.h.  Pure: reads the facts, writes the verdict. */
#include "decide.h"
#include "scanmemo.h"
#include "sitememo.h"
#include "emulate.h"
#include "reloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char PLAN[] = "jmp window plan (function decode, branches, relocatable)";
static const char PADS[] = "landing pads (mid-function window)";
static const char DIRECT[] = "no branch from the object into the window";
static const char TABLES[] = "jump tables of the function bounded";
static const char TAKEN[] = "no jump-table entry or taken address inside the window";
static const char RELOC[] = "window relocates";
static const char OTHERS[] = "no other probe inside the window";
static const char OTHER_SITE[] = "another probe site lies inside its jmp window";
static const char PREEMPT[] = "no goroutine parked inside the window (Go's asynchronous preemption)";
const char sp_decide_go_preempt[] =
	"Go function attached while goroutines may run: one parked by asynchronous preemption at an "
	"instruction inside the jmp window (its saved pc is on its stack, where the stop-check does "
	"not look) would resume inside the jmp";

const char *sp_path_name(enum sp_path p)
{
	switch (p) {
	case SP_PATH_INT3: return "int3";
	case SP_PATH_JMP5: return "jmp5";
	case SP_PATH_HOP: return "hop";
	default: return "none";
	}
}

static void add(struct sp_verdict *v, const char *name, enum sp_check_result r, const char *detail)
{
	if (v->n_trail < SP_DECIDE_MAX_CHECKS)
		v->trail[v->n_trail++] = (struct sp_check){ name, r, detail };
}

/* A reason that names addresses, kept in the verdict's own storage. */
static const char *fmt(struct sp_verdict *v, const char *f, ...)
{
	size_t room = sizeof(v->text) - v->text_used;
	if (room < 2)
		return "(reason too long)";
	char *s = v->text + v->text_used;
	va_list ap;
	va_start(ap, f);
	int n = vsnprintf(s, room, f, ap);
	va_end(ap);
	v->text_used += (n < 0 ? 0 : (size_t)n >= room ? room - 1 : (size_t)n) + 1;
	return s;
}

void sp_decide_range(uintptr_t func, size_t func_size, uintptr_t site, size_t avail,
		     uintptr_t *lo, uintptr_t *hi)
{
	sp_jmp_plan_range(func, func_size, site, avail, lo, hi);
}

/* Which window bytes 1..7 receive control from somewhere: the hop's facts,
 * and the first one named in a refusal. */
static void window_targets(const struct sp_site_facts *f, struct sp_verdict *v)
{
	for (int i = 1; i < 8; i++) {
		uintptr_t a = f->site + (uintptr_t)i, t;
		const char *how;
		if (sp_btindex_any_inside(f->idx, a - 1, a + 1) ||
		    (sp_btindex_taken_inside(f->idx, a - 1, a + 1, &t, &how) && t == a))
			v->window_targets |= (uint8_t)(1u << i);
	}
}

/* Is a jmpplan refusal one a short hop could get around? */
static enum sp_block plan_block(const char *reason)
{
	if (strstr(reason, "branch target inside the jmp window"))
		return SP_BLOCK_TARGET;
	if (strncmp(reason, "window runs past the end of the function", 40) == 0)
		return SP_BLOCK_SHORT;
	return SP_BLOCK_OTHER;
}

/* Checks 4–10: NULL when the 5-byte jmp is safe, else why not. */
static const char *jmp_checks(const struct sp_site_facts *f, struct sp_verdict *v)
{
	const char *reason = NULL;
	if (!f->idx) {
		v->block = SP_BLOCK_OTHER;
		reason = "the object's branch targets could not be indexed";
		add(v, "branch-target index", SP_CHECK_FAIL, reason);
		return reason;
	}
	window_targets(f, v);
	uintptr_t lo, hi;
	sp_decide_range(f->func, f->func_size, f->site, f->avail, &lo, &hi);
	if (lo < f->code_lo || hi > f->code_lo + f->code_len) {
		v->block = SP_BLOCK_OTHER;
		reason = "function does not decode: it runs past the end of the text mapping";
		add(v, PLAN, SP_CHECK_FAIL, reason);
		return reason;
	}
	struct sp_scanmemo *m = sp_btindex_memo(f->idx);
	struct sp_scan_memo memo = { m, sp_scanmemo_get, sp_scanmemo_put };
	if (sp_jmp_plan_image_memo(f->code + (lo - f->code_lo), lo, hi - lo, f->func, f->func_size, f->site,
				   f->limit, &v->w, &reason, m ? &memo : NULL) != 0) {
		v->block = plan_block(reason);
		add(v, PLAN, SP_CHECK_FAIL, reason);
		return reason;
	}
	v->have_window = true;
	add(v, PLAN, SP_CHECK_PASS, NULL);
	uintptr_t end = f->site + v->w.len;

	if (f->site != f->func && v->w.n_insns > 1 && f->landing_pads) {
		/* exception landing pads are entered by the unwinder, not by a
		 * branch the index could see: in an object that has them, only
		 * a one-instruction window is safe mid-function */
		v->block = SP_BLOCK_TARGET;
		reason = "mid-function window of several instructions in an object with exception landing pads";
		add(v, PADS, SP_CHECK_FAIL, reason);
		return reason;
	}
	add(v, PADS, SP_CHECK_PASS, f->landing_pads ? "entry or one-instruction window" : "no .gcc_except_table");

	/* Go's asynchronous preemption parks a goroutine at nearly any
	 * instruction, its pc saved on the goroutine stack: only the first
	 * byte of a window is safe to resume at once goroutines exist */
	if (f->go_site && v->w.n_insns > 1) {
		if (f->live && f->go_running) {
			v->block = SP_BLOCK_TARGET;   /* a hop's one-instruction window would do */
			add(v, PREEMPT, SP_CHECK_FAIL, sp_decide_go_preempt);
			return sp_decide_go_preempt;
		}
		add(v, PREEMPT, f->live ? SP_CHECK_PASS : SP_CHECK_NOT_CHECKED,
		    f->live ? "the Go runtime has not started: no goroutine exists"
			    : "none at the preload's attach, before the Go runtime starts; an attach "
			      "once goroutines may run (the API, selfprobe attach, a library loaded "
			      "later) takes int3 for this window of several instructions");
	} else if (f->go_site) {
		add(v, PREEMPT, SP_CHECK_PASS, "one-instruction window");
	}

	if (sp_btindex_any_inside(f->idx, f->site, end)) {
		v->block = SP_BLOCK_TARGET;
		reason = "branch target inside the jmp window (from elsewhere in the object)";
		add(v, DIRECT, SP_CHECK_FAIL, reason);
		return reason;
	}
	add(v, DIRECT, SP_CHECK_PASS, NULL);

	/* an indirect jmp of the function whose table is unknown could reach
	 * any instruction of it, though never the inside of one: a window of
	 * one instruction is safe from it */
	uintptr_t jmp;
	const char *why;
	uintptr_t flo = f->func_size ? f->func : f->site, fhi = f->func_size ? f->func + f->func_size : end;
	if (v->w.n_insns > 1 && sp_btindex_unknown_jump(f->idx, flo, fhi, &jmp, &why)) {
		v->block = SP_BLOCK_TARGET;
		reason = fmt(v, "indirect jump at %#lx: %s (it could land in the window)",
			     (unsigned long)(jmp - f->bias), why);
		add(v, TABLES, SP_CHECK_FAIL, reason);
		return reason;
	}
	add(v, TABLES, SP_CHECK_PASS, NULL);

	/* an indirect transfer lands where the program's own instructions
	 * start: at the window's instructions after the first (a taken
	 * address inside an instruction is the program reading its code) */
	for (int i = 1; i < v->w.n_insns; i++) {
		uintptr_t a = (uintptr_t)v->w.insns[i].addr, t;
		const char *how;
		if (sp_btindex_taken_inside(f->idx, a - 1, a + 1, &t, &how)) {
			v->block = SP_BLOCK_TARGET;
			reason = t ? fmt(v, "indirect jump target inside the jmp window: %#lx is a %s",
					 (unsigned long)(t - f->bias), how)
				   : fmt(v, "the object's taken addresses are unknown (%s)", how);
			add(v, TAKEN, SP_CHECK_FAIL, reason);
			return reason;
		}
	}
	add(v, TAKEN, SP_CHECK_PASS, NULL);

	if (f->tramp_addr) {
		uint8_t buf[SP_RELOC_MAX];
		struct sp_reloc_map map;
		if (sp_reloc_window(&v->w, f->tramp_addr, buf, sizeof(buf), &map, &reason) < 0) {
			v->block = SP_BLOCK_OTHER;
			add(v, RELOC, SP_CHECK_FAIL, reason);
			return reason;
		}
		add(v, RELOC, SP_CHECK_PASS, NULL);
	} else {
		add(v, RELOC, SP_CHECK_NOT_CHECKED, "when the trampoline is built");
	}

	if (!f->live) {
		add(v, OTHERS, SP_CHECK_NOT_CHECKED, "depends on the other probes of a run");
		add(v, "trampoline page within +-2 GiB", SP_CHECK_NOT_CHECKED, "decided at attach time");
	} else if (f->next_site && f->next_site < end) {
		v->block = SP_BLOCK_TARGET;
		reason = OTHER_SITE;
		add(v, OTHERS, SP_CHECK_FAIL, reason);
		return reason;
	} else {
		add(v, OTHERS, SP_CHECK_PASS, NULL);
	}
	return NULL;
}

/* Checks 1–3: the int3 path.  NULL when the site can take an int3, else
 * why not; *FATAL when nothing may be patched at all. */
static const char *int3_checks(const struct sp_site_facts *f, struct sp_verdict *v, bool *fatal)
{
	*fatal = true;
	const char *why = f->hazard;
	add(v, "int3 hazard", why ? SP_CHECK_FAIL : SP_CHECK_PASS, why);
	if (why)
		return why;
	if (f->site < f->code_lo || f->site >= f->code_lo + f->code_len) {
		why = "address is not in the object's executable text";
		add(v, "instruction decodes", SP_CHECK_FAIL, why);
		return why;
	}
	const uint8_t *code = f->code + (f->site - f->code_lo);
	size_t n = f->code_lo + f->code_len - f->site;
	if (n > f->avail)
		n = f->avail;
	if (n > SP_INSN_MAX_LEN)
		n = SP_INSN_MAX_LEN;
	if (code[0] == 0xcc) {
		why = "the site already holds an int3 (a debugger, a kernel uprobe or another tool?)";
		add(v, "site is not an int3 already", SP_CHECK_FAIL, why);
		return why;
	}
	if (sp_insn_decode(code, n, f->site, &v->insn) != 0) {
		why = "the instruction at the site does not decode";
		add(v, "instruction decodes", SP_CHECK_FAIL, why);
		return why;
	}
	if (v->insn.cls == SP_INSN_REFUSED) {
		why = v->insn.why ? v->insn.why : "instruction cannot be probed";
		add(v, "instruction decodes", SP_CHECK_FAIL, why);
		return why;
	}
	add(v, "instruction decodes", SP_CHECK_PASS, NULL);
	v->first_len = v->insn.len;
	*fatal = false;
	if (sp_emulate_can(&v->insn))
		v->resume = "emulated";
	else if (v->insn.relocatable)
		v->resume = "run out of line";
	else {
		why = v->insn.why ? v->insn.why : "instruction cannot run out of line";
		add(v, "int3 resume (emulate or out of line)", SP_CHECK_FAIL, why);
		return why;
	}
	add(v, "int3 resume (emulate or out of line)", SP_CHECK_PASS, v->resume);
	return NULL;
}

void sp_decide(const struct sp_site_facts *f, struct sp_verdict *v)
{
	memset(v, 0, sizeof(*v));
	bool fatal;
	const char *no_int3 = int3_checks(f, v, &fatal);
	if (fatal) {
		/* a hazard, an int3 already there, or no decode: nothing is patched */
		v->path = SP_PATH_NONE;
		v->reason = no_int3;
		v->block = SP_BLOCK_OTHER;
		return;
	}
	const char *no_jmp = jmp_checks(f, v);
	if (!no_jmp) {
		v->path = SP_PATH_JMP5;
		v->reason = NULL;
		v->block = SP_BLOCK_NONE;
	} else if (!no_int3) {
		/* item 3 of issue 14 (hop.c) plugs in here: v->block says whether
		 * a 2-byte jmp to padding could take the place of the int3 */
		v->path = SP_PATH_INT3;
		v->reason = no_jmp;
	} else {
		/* neither: the jmp's refusal is not the one that matters */
		v->path = SP_PATH_NONE;
		v->reason = no_int3;
	}
}

/* ---- the decision kept per object (sitememo.h) ---- */

_Static_assert(SP_SITEMEMO_INT3 == (int)SP_PATH_INT3 && SP_SITEMEMO_JMP5 == (int)SP_PATH_JMP5 &&
	       SP_SITEMEMO_BLOCK_NONE == (int)SP_BLOCK_NONE && SP_SITEMEMO_BLOCK_MAX == (int)SP_BLOCK_OTHER,
	       "sitememo.h numbers paths and blocks as decide.h does");

static const char REPLAYED[] = "decision stored for this object's code (UPROBE_CACHE)";

static struct sp_sitememo_key memo_key(const struct sp_site_facts *f)
{
	return (struct sp_sitememo_key){ .site = f->site, .func = f->func, .size = f->func_size,
					 .limit = f->limit, .avail = f->avail,
					 .landing_pads = f->landing_pads };
}

/* What only this process knows, or a fact the record cannot stand for:
 * decided afresh, never stored. */
static bool memo_applies(const struct sp_site_facts *f)
{
	return f->idx && !f->hazard && !f->tramp_addr && !(f->go_site && f->go_running) &&
	       sp_btindex_sitememo(f->idx);
}

bool sp_decide_can_replay(const struct sp_site_facts *f)
{
	return memo_applies(f) && sp_sitememo_active(sp_btindex_sitememo(f->idx));
}

int sp_decide_replay(const struct sp_site_facts *f, struct sp_verdict *v)
{
	if (!memo_applies(f))
		return -1;
	struct sp_sitememo *m = sp_btindex_sitememo(f->idx);
	struct sp_sitememo_key k = memo_key(f);
	struct sp_sitememo_rec r;
	if (!sp_sitememo_get(m, &k, &r))
		return -1;
	memset(v, 0, sizeof(*v));
	/* the bytes the decision was made on are the process's now */
	size_t have = f->site >= f->code_lo && f->site < f->code_lo + f->code_len ?
		      f->code_lo + f->code_len - f->site : 0;
	const uint8_t *code = f->code + (f->site - f->code_lo);
	bool fatal;
	const char *no_int3;
	if (have < r.n_bytes || memcmp(code, r.bytes, r.n_bytes) != 0)
		goto stale;
	/* checks 1-3 as ever (one decode): the int3 path's facts */
	no_int3 = int3_checks(f, v, &fatal);
	if (fatal || v->first_len != r.first_len)
		goto stale;
	v->block = (enum sp_block)r.block;
	v->window_targets = r.window_targets;
	if (r.path == SP_SITEMEMO_JMP5) {
		/* the window decoded where it is, to the stored shape */
		struct sp_window *w = &v->w;
		w->site = f->site;
		w->insns[0] = v->insn;
		w->len = v->insn.len;
		for (w->n_insns = 1; w->n_insns < r.n_insns; w->n_insns++) {
			struct sp_insn *in = &w->insns[w->n_insns];
			if (w->len >= r.wlen ||
			    sp_insn_decode(code + w->len, r.n_bytes - w->len, f->site + w->len, in) != 0)
				goto stale;
			w->len += in->len;
		}
		if (w->len != r.wlen)
			goto stale;
		w->flow_ends = r.flow_ends;
		if (f->live && f->next_site && f->next_site < f->site + w->len) {
			/* another probe's site in the window: the live check */
			memset(v, 0, sizeof(*v));
			return -1;
		}
		v->have_window = true;
		v->path = SP_PATH_JMP5;
		v->reason = NULL;
		add(v, REPLAYED, SP_CHECK_PASS, NULL);
		return 0;
	}
	if (no_int3)
		goto stale;   /* the record said int3; this code cannot take it */
	v->path = SP_PATH_INT3;
	v->reason = fmt(v, "%s", r.reason);
	add(v, REPLAYED, SP_CHECK_FAIL, v->reason);
	return 0;
stale:
	sp_sitememo_stale(m);
	memset(v, 0, sizeof(*v));
	return -1;
}

void sp_decide_remember(const struct sp_site_facts *f, const struct sp_verdict *v)
{
	if (!memo_applies(f))
		return;
	struct sp_sitememo_rec r = { .path = (uint8_t)v->path, .block = (uint8_t)v->block,
				     .window_targets = v->window_targets, .first_len = v->first_len };
	if (v->path == SP_PATH_JMP5 && v->have_window) {
		r.n_insns = v->w.n_insns;
		r.wlen = v->w.len;
		r.flow_ends = v->w.flow_ends;
	} else if (v->path == SP_PATH_INT3 && v->reason && v->reason != OTHER_SITE) {
		r.reason = v->reason;
	} else {
		return;
	}
	size_t n = SP_JMP_LEN;
	if (r.wlen > n)
		n = r.wlen;
	if (r.first_len > n)
		n = r.first_len;
	size_t have = f->site >= f->code_lo && f->site < f->code_lo + f->code_len ?
		      f->code_lo + f->code_len - f->site : 0;
	if (n > have || n > SP_SITEMEMO_BYTES)
		return;
	r.n_bytes = (uint8_t)n;
	memcpy(r.bytes, f->code + (f->site - f->code_lo), n);
	struct sp_sitememo_key k = memo_key(f);
	sp_sitememo_put(sp_btindex_sitememo(f->idx), &k, &r);
}
