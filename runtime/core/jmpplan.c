/* jmpplan — can a probe site take the 5-byte jmp, and with which window?
 *
 * Two passes over read-only code, both pure (no allocation, no state):
 *
 *   1. the window: decode from the site until the 5 bytes the jmp overwrites
 *      are covered by whole instructions, or until a ret/jmp that is the
 *      function's last instruction (then the rest of the 5 bytes must be
 *      padding below LIMIT: nothing can run there);
 *   2. the function: decode it linearly from its start (the kernel's
 *      optprobe can_optimize() does the same) to check that the site is an
 *      instruction boundary, that no direct branch lands inside the bytes
 *      the jmp overwrites.  Indirect jumps are the object index's business
 *      (btindex.h: jump tables and taken addresses; decide.c asks it).
 *
 * The window is decoded first so the function scan knows the span to guard,
 * but the scan's refusals are reported first: a site that is not on a
 * boundary decodes into nonsense, and "not a boundary" is the true reason.
 *
 * Reasons are static strings, each naming its rule with a fixed phrase that
 * tests and users can match ("branch target inside the jmp window", ...).
 */
#include <errno.h>
#include <string.h>

#include "jmpplan.h"

/* Does the thread's flow stop after INSN (nothing falls through)? */
static bool ends_flow(const struct sp_insn *in)
{
	return in->cls == SP_INSN_RET || in->cls == SP_INSN_JMP_REL || in->cls == SP_INSN_JMP_IND;
}

static bool is_direct_branch(const struct sp_insn *in)
{
	switch (in->cls) {
	case SP_INSN_JMP_REL:
	case SP_INSN_JCC_REL:
	case SP_INSN_CALL_REL:
	case SP_INSN_JRCXZ:
	case SP_INSN_LOOP:
		return true;
	default:
		return false;
	}
}

/* Can window instruction IN (LAST: the window's last) move to a trampoline?
 * reloc.c rewrites branches and copies the rest; this mirrors its rules. */
static const char *unrelocatable(const struct sp_insn *in, bool last)
{
	switch (in->cls) {
	case SP_INSN_JMP_REL:
	case SP_INSN_JCC_REL:
	case SP_INSN_RET:
		return NULL;
	case SP_INSN_CALL_REL:
		/* its return address must be the first byte after the window */
		return last ? NULL : "call inside the jmp window (not its last instruction)";
	case SP_INSN_JRCXZ:
	case SP_INSN_LOOP:
		return "jrcxz/loop in the jmp window cannot be relocated (rel8 only)";
	case SP_INSN_JMP_IND:
		/* copied as it is (a RIP-relative operand adjusted): it reads
		 * its absolute target wherever it runs, and ends the flow */
		return last ? NULL : "indirect jmp in the jmp window (not its last instruction)";
	case SP_INSN_CALL_IND:
		return "indirect call in the jmp window cannot be relocated";
	case SP_INSN_REFUSED:
		return "instruction in the jmp window cannot be relocated (refused: trap, far transfer or TSX)";
	default:
		return in->relocatable ? NULL :
		       "instruction in the jmp window cannot be relocated (not position independent)";
	}
}

/* Bytes [FROM, TO) after a function's last instruction: all padding (int3,
 * nop of any length) and all below LIMIT?  The jmp overwrites them. */
static const char *check_padding(uintptr_t from, uintptr_t to, uintptr_t limit, uintptr_t end)
{
	if (to > limit || to > end)
		return "window runs past the end of the function into the next symbol";
	uintptr_t p = from;
	while (p < to) {
		if (*(const uint8_t *)p == 0xcc) {          /* int3 fill */
			p++;
			continue;
		}
		struct sp_insn in;
		/* a nop must itself end below LIMIT: it is padding, not code */
		if (sp_insn_decode((const uint8_t *)p, limit - p, p, &in) < 0 ||
		    in.cls != SP_INSN_NOP)
			return "window runs past the end of the function into bytes that are not padding";
		p += in.len;
	}
	return NULL;
}

static void add_insn(struct sp_window *w, const struct sp_insn *in)
{
	w->insns[w->n_insns++] = *in;
	w->len += in->len;
}

/* Unknown extent: only a single instruction that covers the jmp by itself,
 * since nothing can be said about branches into its neighbours. */
static int plan_unknown(uintptr_t site, size_t avail, uintptr_t limit,
			struct sp_window *w, const char **reason)
{
	struct sp_insn in;
	if (sp_insn_decode((const uint8_t *)site, avail, site, &in) < 0) {
		*reason = "instruction at the site does not decode";
		return -EINVAL;
	}
	if (in.len < SP_JMP_LEN) {
		*reason = "function size unknown and the first instruction is shorter than the 5-byte jmp";
		return -ENOTSUP;
	}
	if (limit && site + in.len > limit) {
		*reason = "window runs past the end of the function into the next symbol";
		return -ENOTSUP;
	}
	const char *why = unrelocatable(&in, true);
	if (why) {
		*reason = why;
		return -ENOTSUP;
	}
	add_insn(w, &in);
	w->flow_ends = ends_flow(&in);
	return 0;
}

/* Pass 1: the window's instructions, from SITE, inside [.., END): enough
 * to cover WANT bytes (SP_JMP_LEN; 1 for a hop's window, the first
 * instruction alone). */
static const char *plan_window(uintptr_t site, uintptr_t end, uintptr_t limit,
			       uintptr_t readable, uint8_t want, struct sp_window *w)
{
	uintptr_t p = site;
	while (w->len < want) {
		if (p >= end)
			return "window runs past the end of the function (its last instruction falls through)";
		struct sp_insn in;
		if (sp_insn_decode((const uint8_t *)p, end - p, p, &in) < 0)
			return "window does not decode";
		add_insn(w, &in);
		p += in.len;
		if (w->len < want && ends_flow(&in) && p == end) {
			/* the function ends here: the jmp's tail covers padding */
			const char *why = check_padding(p, site + SP_JMP_LEN, limit, readable);
			if (why)
				return why;
			break;
		}
	}
	w->flow_ends = ends_flow(&w->insns[w->n_insns - 1]);
	for (int i = 0; i < w->n_insns; i++) {
		const char *why = unrelocatable(&w->insns[i], i == w->n_insns - 1);
		if (why)
			return why;
	}
	return NULL;
}

/* Pass 2: the whole function.  A branch to SITE itself is fine (the jmp
 * starts there); one into (SITE, GUARD_END) would land inside the jmp. */
static int scan_function(uintptr_t func, uintptr_t end, uintptr_t site, uintptr_t guard_end)
{
	bool on_boundary = false, into_window = false;
	uintptr_t p = func;
	while (p < end) {
		struct sp_insn in;
		if (sp_insn_decode((const uint8_t *)p, end - p, p, &in) < 0)
			return SP_SCAN_NO_DECODE;
		if (p == site)
			on_boundary = true;
		if (is_direct_branch(&in) && in.target > site && in.target < guard_end)
			into_window = true;
		p += in.len;
	}
	/* boundary first: the other findings assume a correct decoding */
	if (!on_boundary)
		return SP_SCAN_NOT_BOUNDARY;
	if (into_window)
		return SP_SCAN_INTO_WINDOW;
	return SP_SCAN_OK;
}

static const char *const scan_reason[SP_SCAN_N] = {
	[SP_SCAN_OK] = NULL,
	[SP_SCAN_NO_DECODE] = "function does not decode (data in text, or a wrong ELF size)",
	[SP_SCAN_NOT_BOUNDARY] = "site is not on an instruction boundary",
	[SP_SCAN_INTO_WINDOW] = "branch target inside the jmp window",
};

/* scan_function through MEMO, which knows real addresses: the image is
 * DELTA bytes away from them. */
static const char *scan(uintptr_t func, uintptr_t end, uintptr_t site, uintptr_t guard_end,
			const struct sp_scan_memo *memo, intptr_t delta)
{
	int v;
	uintptr_t rf = func - (uintptr_t)delta, rs = site - (uintptr_t)delta, rg = guard_end - (uintptr_t)delta;
	if (memo && memo->get(memo->ctx, rf, end - func, rs, rg, &v) && v >= 0 && v < SP_SCAN_N)
		return scan_reason[v];
	v = scan_function(func, end, site, guard_end);
	if (memo)
		memo->put(memo->ctx, rf, end - func, rs, rg, v);
	return scan_reason[v];
}

static int plan(uintptr_t func, size_t func_size, uintptr_t site, size_t avail,
		uintptr_t limit, uint8_t want, struct sp_window *w, const char **reason,
		const struct sp_scan_memo *memo, intptr_t delta)
{
	memset(w, 0, sizeof(*w));
	w->site = site;
	if (func_size == 0 && want == SP_JMP_LEN)
		return plan_unknown(site, avail, limit, w, reason);
	if (func_size == 0) {
		*reason = "function size unknown";
		return -ENOTSUP;
	}

	uintptr_t end = func + func_size, readable = site + avail;
	if (site < func || site >= end) {
		*reason = "site is outside the function";
		return -EINVAL;
	}
	if (end > readable) {
		*reason = "function does not decode: it runs past the end of the text mapping";
		return -EINVAL;
	}
	const char *why_window = plan_window(site, end, limit ? limit : readable, readable, want, w);
	uintptr_t guard_end = site + (w->len > want ? w->len : want);
	const char *why = scan(func, end, site, guard_end, memo, delta);
	if (!why)
		why = why_window;
	if (why) {
		*reason = why;
		return -ENOTSUP;
	}
	return 0;
}

int sp_jmp_plan(uintptr_t func, size_t func_size, uintptr_t site, size_t avail,
		uintptr_t limit, struct sp_window *w, const char **reason)
{
	return plan(func, func_size, site, avail, limit, SP_JMP_LEN, w, reason, NULL, 0);
}

void sp_jmp_plan_range(uintptr_t func, size_t func_size, uintptr_t site, size_t avail,
		       uintptr_t *lo, uintptr_t *hi)
{
	/* the whole function (its branches), and enough after the site for a
	 * window and its padding */
	*lo = func ? func : site;
	*hi = site + (avail < 32 ? avail : 32);
	if (func && func + func_size > *hi)
		*hi = func + func_size;
	if (*hi > site + avail)
		*hi = site + avail;
}

static int plan_image(const uint8_t *code, uintptr_t lo, size_t len, uintptr_t func,
		      size_t func_size, uintptr_t site, uintptr_t limit, uint8_t want,
		      struct sp_window *w, const char **reason, const struct sp_scan_memo *memo)
{
	/* plan on the image at its own address: relative branches keep their
	 * meaning within it; then decode the window again where it really is */
	intptr_t delta = (intptr_t)(uintptr_t)code - (intptr_t)lo;
	int rc = plan(func ? func + delta : 0, func_size, site + delta,
		      lo + len - site, limit ? limit + delta : 0, want, w, reason, memo, delta);
	for (int i = 0; rc == 0 && i < w->n_insns; i++) {
		struct sp_insn *in = &w->insns[i];
		uint8_t bytes[SP_INSN_MAX_LEN];
		uint8_t n = in->len;
		memcpy(bytes, in->bytes, n);
		if (sp_insn_decode(bytes, n, in->addr - delta, in) != 0) {
			*reason = "window instruction does not decode at its address";
			rc = -EINVAL;
		}
	}
	w->site = site;
	return rc;
}

int sp_jmp_plan_image(const uint8_t *code, uintptr_t lo, size_t len, uintptr_t func,
		      size_t func_size, uintptr_t site, uintptr_t limit, struct sp_window *w,
		      const char **reason)
{
	return plan_image(code, lo, len, func, func_size, site, limit, SP_JMP_LEN, w, reason, NULL);
}

int sp_jmp_plan_image_memo(const uint8_t *code, uintptr_t lo, size_t len, uintptr_t func,
			   size_t func_size, uintptr_t site, uintptr_t limit, struct sp_window *w,
			   const char **reason, const struct sp_scan_memo *memo)
{
	return plan_image(code, lo, len, func, func_size, site, limit, SP_JMP_LEN, w, reason, memo);
}

int sp_jmp_plan_first_image(const uint8_t *code, uintptr_t lo, size_t len, uintptr_t func,
			    size_t func_size, uintptr_t site, uintptr_t limit, struct sp_window *w,
			    const char **reason)
{
	return sp_jmp_plan_first_image_memo(code, lo, len, func, func_size, site, limit, w, reason, NULL);
}

int sp_jmp_plan_first_image_memo(const uint8_t *code, uintptr_t lo, size_t len, uintptr_t func,
				 size_t func_size, uintptr_t site, uintptr_t limit, struct sp_window *w,
				 const char **reason, const struct sp_scan_memo *memo)
{
	int rc = plan_image(code, lo, len, func, func_size, site, limit, 1, w, reason, memo);
	if (rc == 0 && w->len < SP_HOP_LEN) {
		*reason = "first instruction is shorter than the 2-byte hop";
		rc = -ENOTSUP;
	}
	return rc;
}
