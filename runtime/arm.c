/* arm — see arm.h for the protocol. */
#include "arm.h"
#include "codemem.h"
#include "emulate.h"
#include "insn.h"
#include "jmpplan.h"
#include "log.h"
#include "patch.h"
#include "stopworld.h"
#include "tramp.h"
#include "trap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char INT3_FORCED[] = "UPROBE_MODE=int3";

/* How a trap at an int3-only site resumes: emulation when the instruction
 * allows, else an out-of-line copy followed by an absolute jump back. */
static int plan_resume(struct sp_site *s, const char **why)
{
	if (s->int3_ready)
		return 0;
	if (sp_emulate_can(&s->insn)) {
		s->int3_resume = SP_RESUME_EMULATE;
		s->int3_ready = true;
		return 0;
	}
	if (!s->insn.relocatable) {
		*why = s->insn.why ? s->insn.why : "instruction cannot run out of line";
		return -ENOTSUP;
	}
	uint8_t code[64];
	const size_t slot_size = 48;
	uintptr_t slot = sp_codemem_alloc(s->addr, slot_size);
	if (!slot && !s->insn.rip_relative)
		slot = sp_codemem_alloc(0, slot_size);
	if (!slot) {
		*why = "no code memory for the out-of-line copy";
		return -ENOMEM;
	}
	int n = sp_insn_relocate(&s->insn, slot, code, sizeof(code) - 14, why);
	if (n < 0)
		return n;
	/* jmp *0(%rip); .quad back */
	uint64_t back = s->addr + s->insn.len;
	code[n++] = 0xff;
	code[n++] = 0x25;
	memset(code + n, 0, 4);
	n += 4;
	memcpy(code + n, &back, 8);
	n += 8;
	int rc = sp_patch_write(slot, code, (size_t)n);
	if (rc) {
		*why = sp_patch_refusal() ? sp_patch_refusal() : "cannot write the out-of-line copy";
		return rc;
	}
	s->xol = slot;
	s->int3_resume = SP_RESUME_XOL;
	s->int3_ready = true;
	return 0;
}

/* The jmp site whose window holds ADDR after its first byte, if any. */
static struct sp_site *covering(uintptr_t addr)
{
	struct sp_site *t = sp_site_before(addr);
	if (t && t->tramp_ok && addr < t->addr + t->tramp.window_len)
		return t;
	return NULL;
}

/* T's window is about to hold another site: T goes back to a plain int3
 * (emulated or run out of line), as the kernel unoptimizes an optprobe.
 * Its trampoline stays for threads still inside it. */
static int demote(struct sp_site *t)
{
	const char *why = NULL;
	int rc = plan_resume(t, &why);
	if (rc)
		return rc;
	if (t->armed && t->jmp) {
		uint8_t int3 = 0xcc;
		if ((rc = sp_patch_write(t->addr, &int3, 1)) != 0)
			return rc;
		sp_patch_sync();
		/* while the int3 stands its handler still enters the trampoline */
		if ((rc = sp_patch_write(t->addr + 1, t->orig + 1, SP_JMP_LEN - 1)) != 0)
			return rc;
		sp_patch_sync();
	}
	t->tramp_ok = false;
	t->jmp_reason = "another probe site lies inside its jmp window";
	if (t->armed) {
		__atomic_store_n(&t->resume, t->int3_resume, __ATOMIC_RELEASE);
		t->jmp = false;
		t->reason = t->jmp_reason;
	}
	return 0;
}

/* The jmp plan on a pristine copy of the function: live text may hold our
 * own int3s and jmps. */
static int plan_on_pristine(uintptr_t site, size_t avail, const struct sp_func_extent *fn,
			    struct sp_window *w, const char **reason)
{
	uintptr_t lo, hi;
	sp_jmp_plan_range(fn->start, fn->size, site, avail, &lo, &hi);
	uint8_t *copy = malloc(hi - lo);
	if (!copy) {
		*reason = "out of memory";
		return -ENOMEM;
	}
	sp_site_pristine(lo, hi - lo, copy);
	int rc = sp_jmp_plan_image(copy, lo, hi - lo, fn->start, fn->size, site, fn->limit, w, reason);
	free(copy);
	return rc;
}

/* Try the jmp path: plan, safety against the whole object, trampoline.  On
 * refusal s->reason says why. */
static bool try_jmp(struct sp_site *s, size_t avail, const struct sp_func_extent *fn)
{
	struct sp_window w;
	const char *reason = NULL;
	s->jmp_tried = true;
	if (!fn->bt) {
		s->jmp_reason = "the object's branch targets could not be indexed";
		return false;
	}
	if (plan_on_pristine(s->addr, avail, fn, &w, &reason) != 0) {
		s->jmp_reason = reason;
		return false;
	}
	if (s->addr != fn->start && w.n_insns > 1 && fn->landing_pads) {
		/* exception landing pads are entered by the unwinder, not by a
		 * branch the index could see: in an object that has them, only
		 * a one-instruction window is safe mid-function */
		s->jmp_reason = "mid-function window of several instructions in an object with exception "
				"landing pads";
		return false;
	}
	if (sp_btindex_any_inside(fn->bt, s->addr, s->addr + w.len)) {
		s->jmp_reason = "branch target inside the jmp window (from elsewhere in the object)";
		return false;
	}
	struct sp_site *next = sp_site_after(s->addr);
	if (next && next->addr < s->addr + w.len) {
		s->jmp_reason = "another probe site lies inside its jmp window";
		return false;
	}
	if (sp_tramp_build(s, &w, &s->tramp, &reason) != 0) {
		s->jmp_reason = reason;
		return false;
	}
	s->tramp_ok = true;
	return true;
}

static size_t text_avail(const struct sp_object *obj, uintptr_t addr)
{
	for (int i = 0; i < obj->n_text; i++)
		if (addr >= obj->text[i].start && addr < obj->text[i].end)
			return obj->text[i].end - addr;
	return 0;
}

/* Make S ready to be armed the way WANT_JMP asks: the jmp when it is (or,
 * tried now, turns out) safe, else the int3 path. */
static int prepare(struct sp_site *s, const struct sp_object *obj, const struct sp_func_extent *fn,
		   bool want_jmp, const char **why)
{
	if (want_jmp && !s->jmp_tried)
		try_jmp(s, text_avail(obj, s->addr), fn);
	if (!(want_jmp && s->tramp_ok) && plan_resume(s, why) != 0)
		return -ENOTSUP;
	s->want_jmp = want_jmp;
	return 0;
}

struct sp_site *sp_arm_site(const struct sp_object *obj, uintptr_t addr,
			    const struct sp_func_extent *fn, bool want_jmp, const char **why)
{
	struct sp_site *s = sp_site_lookup(addr);
	if (s) {
		/* an armed site keeps its path; a new probe joins it */
		if (!s->armed && prepare(s, obj, fn, want_jmp, why) != 0)
			return NULL;
		return s;
	}
	size_t avail = text_avail(obj, addr);
	if (avail < SP_JMP_LEN) {
		*why = avail ? "the site is too close to the end of the text mapping"
			     : "address is not in the object's executable text";
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		*why = "out of memory";
		return NULL;
	}
	s->addr = addr;
	struct sp_site *t = covering(addr);
	if (t && demote(t) != 0) {
		*why = "inside the jmp window of another probe that cannot be moved back to int3";
		goto fail;
	}
	uint8_t code[15];
	size_t n = avail < sizeof(code) ? avail : sizeof(code);
	sp_site_pristine(addr, n, code);
	if (code[0] == 0xcc) {
		*why = "the site already holds an int3 (a debugger, a kernel uprobe or another tool?)";
		goto fail;
	}
	if (sp_insn_decode(code, n, addr, &s->insn) != 0) {
		*why = "the instruction at the site does not decode";
		goto fail;
	}
	if (s->insn.cls == SP_INSN_REFUSED) {
		*why = s->insn.why ? s->insn.why : "instruction cannot be probed";
		goto fail;
	}
	memcpy(s->orig, code, SP_JMP_LEN);
	if (prepare(s, obj, fn, want_jmp, why) != 0)
		goto fail;
	if (sp_site_insert(s) != 0) {
		*why = "out of memory";
		goto fail;
	}
	return s;
fail:
	free(s);
	return NULL;
}

static int write_byte0(struct sp_site *s, uint8_t b)
{
	return sp_patch_write(s->addr, &b, 1);
}

static int cmp_window(const void *a, const void *b)
{
	const struct sp_stop_window *x = a, *y = b;
	return x->site < y->site ? -1 : x->site > y->site;
}

size_t sp_arm_batch(struct sp_site **sites, size_t n, int *rcs)
{
	size_t failed = 0, n_jmp = 0;
	int rc = sp_trap_install();
	for (size_t i = 0; i < n; i++) {
		struct sp_site *s = sites[i];
		rcs[i] = rc;
		if (rc == 0 && !s->armed) {
			bool use_jmp = s->want_jmp && s->tramp_ok;
			/* what a trap here must do, set before the int3 exists */
			s->resume = use_jmp ? SP_RESUME_TRAMP : s->int3_resume;
			s->reason = use_jmp ? NULL : s->want_jmp ? s->jmp_reason : INT3_FORCED;
			rcs[i] = write_byte0(s, 0xcc);                 /* step 1 */
			if (rcs[i] == 0 && use_jmp)
				n_jmp++;
		}
		failed += rcs[i] != 0;
	}
	sp_patch_sync();
	struct sp_stop_window *w = n_jmp ? calloc(n_jmp, sizeof(*w)) : NULL;
	size_t k = 0;
	for (size_t i = 0; w && i < n; i++) {
		struct sp_site *s = sites[i];
		if (rcs[i] == 0 && !s->armed && s->resume == SP_RESUME_TRAMP)
			w[k++] = (struct sp_stop_window){ .site = s->addr, .len = s->tramp.window_len,
							  .reloc = s->tramp.reloc, .map = &s->tramp.map };
	}
	sp_stopworld_sort(w, k, cmp_window);
	int stopped = k ? sp_stopworld_check(w, k) : 0;                /* step 2 */
	if (stopped != 0) {
		/* a late answer may still be reading the windows: they stay
		 * until the next check that gives up (stopworld ignores answers
		 * to a check older than the current one) */
		static struct sp_stop_window *retired;
		free(retired);
		retired = w;
		w = NULL;
	}
	size_t n_rel = 0;
	for (size_t i = 0; i < n; i++) {
		struct sp_site *s = sites[i];
		if (rcs[i] != 0 || s->armed)
			continue;
		s->armed = true;
		s->jmp = false;
		if (s->resume != SP_RESUME_TRAMP)
			continue;
		const struct sp_stop_window *sw = w ? sp_stopworld_find(w, k, s->addr) : NULL;
		bool busy = sw && sw->busy;
		if (stopped != 0 || busy) {
			s->reason = stopped != 0 ? "a thread did not answer the stop check: the site keeps its int3"
						 : "a thread was blocked inside the jmp window: the site keeps its int3";
			continue;
		}
		int32_t rel = (int32_t)((intptr_t)s->tramp.entry - (intptr_t)(s->addr + SP_JMP_LEN));
		if (sp_patch_write(s->addr + 1, &rel, 4) == 0) {       /* step 3 */
			s->jmp = true;
			n_rel++;
		}
	}
	if (n_rel) {
		sp_patch_sync();
		for (size_t i = 0; i < n; i++)                          /* step 4 */
			if (rcs[i] == 0 && sites[i]->jmp && write_byte0(sites[i], 0xe9) != 0)
				sites[i]->jmp = false;   /* the int3 stays: still correct */
		sp_patch_sync();
	}
	free(w);
	return failed;
}

int sp_arm_disarm(struct sp_site *s)
{
	if (!s->armed)
		return 0;
	int rc;
	if (s->jmp) {
		if ((rc = write_byte0(s, 0xcc)) != 0)
			return rc;
		sp_patch_sync();
		if ((rc = sp_patch_write(s->addr + 1, s->orig + 1, SP_JMP_LEN - 1)) != 0)
			return rc;
		sp_patch_sync();
	}
	if ((rc = write_byte0(s, s->orig[0])) != 0)
		return rc;
	sp_patch_sync();
	s->armed = false;
	return 0;
}
