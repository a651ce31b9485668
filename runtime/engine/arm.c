/* arm — see arm.h for the protocol. */
#include "arm.h"
#include "heap.h"
#include "codemem.h"
#include "coexist.h"
#include "decide.h"
#include "emulate.h"
#include "memread.h"
#include "hop.h"
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
#include <sys/uio.h>
#include <unistd.h>

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
	/* the slot this site had before its object was unloaded, when in reach */
	uintptr_t slot = s->xol_slot;
	intptr_t d = (intptr_t)slot - (intptr_t)s->addr;
	if (slot && s->insn.rip_relative && d != (int32_t)d)
		slot = 0;
	if (!slot)
		slot = sp_codemem_alloc(s->addr, slot_size);
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
	s->xol = s->xol_slot = slot;
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

/* Put a hop's pad back once no thread can be between its two jumps: the
 * site no longer holds the rel8, so only a thread that took it just
 * before can be at the pad's first byte; the stop check moves it into the
 * trampoline, where the pad's jmp was taking it.  The stop window is the
 * pad preceded by one byte, so that the pad's first byte counts as inside
 * it (stopworld moves threads strictly after a window's first byte). */
static void release_pad(struct sp_site *s)
{
	/* a thread that did not answer once (all signals blocked, stopped)
	 * would make every later check wait its 2 s too: pads then stay */
	static bool unanswered;
	if (!s->hop || !s->pad_written || unanswered)
		return;
	static const struct sp_reloc_map to_entry = { .n = 1, .orig_off = { 1 }, .new_off = { 0 } };
	/* on the heap, and leaked when the check gives up: a late answer may
	 * still read it */
	struct sp_stop_window *w = sp_calloc(1, sizeof(*w));
	if (!w)
		return;
	*w = (struct sp_stop_window){ .site = s->pad - 1, .len = SP_HOP_PAD_LEN + 1,
				      .reloc = s->tramp.entry, .map = &to_entry };
	int rc = sp_stopworld_check(w, 1);
	unanswered = rc != 0;
	if (rc != 0 || w->busy) {
		sp_info("arm: hop pad at %#lx keeps its jmp (%s)", (unsigned long)s->pad,
			rc ? "a thread did not answer the stop check" : "a thread is blocked at it");
		if (rc == 0)
			sp_free(w);
		return;
	}
	sp_free(w);
	if (sp_patch_write(s->pad, s->pad_orig, SP_HOP_PAD_LEN) == 0) {
		sp_patch_sync();
		s->pad_written = false;
	}
}

/* The bytes a jmp arming writes from the site's address: 5, or a hop's 2
 * (the bytes after a hop's rel8 may be another site's). */
static size_t patch_len(const struct sp_site *s)
{
	return s->hop ? SP_HOP_LEN : SP_JMP_LEN;
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
	if (t->armed && (t->jmp || t->rel_written)) {
		uint8_t int3 = 0xcc;
		if (t->jmp && (rc = sp_patch_write(t->addr, &int3, 1)) != 0)
			return rc;
		sp_patch_sync();
		/* while the int3 stands its handler still enters the trampoline */
		if ((rc = sp_patch_write(t->addr + 1, t->orig + 1, patch_len(t) - 1)) != 0)
			return rc;
		sp_patch_sync();
		t->rel_written = false;
	}
	release_pad(t);
	t->tramp_ok = false;
	t->jmp_reason = "another probe site lies inside its jmp window";
	if (t->armed) {
		__atomic_store_n(&t->resume, t->int3_resume, __ATOMIC_RELEASE);
		t->jmp = false;
		t->reason = t->jmp_reason;
	}
	return 0;
}

static bool claimed(const void *ctx, uintptr_t lo, uintptr_t hi)
{
	(void)ctx;
	return sp_site_claimed(lo, hi);
}

/* The hop part of the decision (hop.h) for F, on a pristine copy of the
 * code around the site and its pad. */
static void decide_hop(const struct sp_object *obj, const struct sp_site_facts *f,
		       const struct sp_func_extent *fn, struct sp_verdict *v)
{
	uintptr_t tlo = 0, thi = 0, lo, hi;
	for (int i = 0; i < obj->n_text; i++)
		if (f->site >= obj->text[i].start && f->site < obj->text[i].end) {
			tlo = obj->text[i].start;
			thi = obj->text[i].end;
		}
	if (!fn->elf || !thi)
		return;
	struct sp_hop_site hs = { .site = f->site, .func = f->func, .func_size = f->func_size,
				  .limit = f->limit, .idx = f->idx };
	sp_hop_plan_range(fn->elf, obj->bias, &hs, f->avail, tlo, thi, &lo, &hi);
	uint8_t *copy = sp_malloc(hi - lo);
	if (!copy)
		return;
	sp_site_pristine(lo, hi - lo, copy);
	struct sp_hop_facts hf = { .code = copy, .lo = lo, .len = hi - lo, .elf = fn->elf,
				   .bias = obj->bias, .claimed = claimed };
	sp_hop_decide(f, &hf, v);
	sp_free(copy);
}

/* The verdict for ADDR, on a pristine copy of its code (live text may hold
 * our own int3s and jmps).  -ENOMEM when no copy could be made. */
static int decide_live(const struct sp_object *obj, uintptr_t addr, size_t avail,
		       const struct sp_func_extent *fn, const uint8_t *head, size_t head_len,
		       struct sp_verdict *v)
{
	struct sp_site *next = sp_site_after(addr);
	struct sp_site_facts f = {
		.site = addr, .bias = obj->bias, .avail = avail,
		.func = fn->start, .func_size = fn->size, .limit = fn->limit,
		.idx = fn->bt, .landing_pads = fn->landing_pads, .hazard = fn->hazard,
		.go_site = fn->go_stack,
		.live = true, .tramp_addr = 0, .next_site = next ? next->addr : 0,
		.go_running = fn->go_running,
	};
	/* the decision this object's code had in an earlier process
	 * (sitememo.h): the site's first bytes are read, not its function */
	uint8_t own[SP_DECIDE_REPLAY_BYTES];
	if (sp_decide_can_replay(&f)) {
		f.code_len = avail < sizeof(own) ? avail : sizeof(own);
		if (!head || head_len < f.code_len) {
			sp_site_pristine(addr, f.code_len, own);
			head = own;
		}
		f.code = head;
		f.code_lo = addr;
		if (sp_decide_replay(&f, v) == 0)
			goto decided;
	}
	uintptr_t lo, hi;
	sp_decide_range(fn->start, fn->size, addr, avail, &lo, &hi);
	uint8_t *copy = sp_malloc(hi - lo);
	if (!copy)
		return -ENOMEM;
	sp_site_pristine(lo, hi - lo, copy);
	f.code = copy;
	f.code_lo = lo;
	f.code_len = hi - lo;
	sp_decide(&f, v);
	sp_decide_remember(&f, v);
	sp_free(copy);
decided:
	if (sp_hop_candidate(v))
		decide_hop(obj, &f, fn, v);
	return 0;
}

/* A verdict's reason, kept for the life of the site (sites are never freed;
 * a reason naming an address lives in the verdict's own storage). */
static const char *keep(const struct sp_verdict *v, const char *reason)
{
	if (!reason || reason < v->text || reason >= v->text + sizeof(v->text))
		return reason;
	char *c = sp_strdup(reason);
	return c ? c : "(reason lost: out of memory)";
}

/* The carrier at AT (LEN bytes) for a hop's pad (hop.h): a site of its
 * own, with a bare trampoline, armed with its jmp in a batch of its own
 * before the pad is written (from then on its bytes 5-9 are never run).
 * NULL with *WHY when it cannot be; it is then not left armed. */
static struct sp_site *arm_carrier(uintptr_t at, uint8_t len, const char **why)
{
	if (sp_site_lookup(at) || sp_site_pad_overlaps(at, at + len)) {
		*why = "its carrier's bytes were taken meanwhile";
		return NULL;
	}
	struct sp_site *c = sp_calloc(1, sizeof(*c));
	if (!c) {
		*why = "out of memory";
		return NULL;
	}
	uint8_t code[SP_HOP_CARRIER_MAX + SP_INSN_MAX_LEN];
	sp_site_pristine(at, len, code);
	struct sp_window w = { .site = at };
	for (size_t off = 0; off < len; off += w.insns[w.n_insns++].len)
		if (w.n_insns == SP_WINDOW_MAX ||
		    sp_insn_decode(code + off, len - off, at + off, &w.insns[w.n_insns]) != 0) {
			*why = "its carrier does not decode";
			sp_free(c);
			return NULL;
		}
	w.len = len;
	c->addr = at;
	c->is_carrier = true;
	c->insn = w.insns[0];
	sp_site_pristine(at, SP_JMP_LEN, c->orig);
	if (sp_tramp_build_bare(c, &w, &c->tramp, why) != 0) {
		sp_free(c);
		return NULL;
	}
	c->jmp_tried = c->tramp_ok = c->want_jmp = true;
	if (sp_site_insert(c) != 0) {
		*why = "out of memory";
		sp_free(c);   /* its trampoline memory stays unused */
		return NULL;
	}
	int rc;
	sp_arm_batch(&c, 1, &rc);
	if (rc != 0 || !c->jmp) {
		/* an int3 there would trap on every run of that code: give the
		 * bytes back, keep the (dead) site out of the tables */
		if (c->armed)
			sp_arm_disarm(c);
		sp_site_forget(c);
		*why = "its carrier could not take its jmp";
		return NULL;
	}
	return c;
}

/* The jmp path as verdict V has it (the 5-byte jmp, or a hop): the
 * trampoline when it allows the jmp.  On refusal s->jmp_reason says why. */
static bool take_jmp(struct sp_site *s, const struct sp_verdict *v)
{
	const char *reason = NULL;
	s->jmp_tried = true;
	if (v->path != SP_PATH_JMP5 && v->path != SP_PATH_HOP) {
		s->jmp_reason = keep(v, v->reason);
		return false;
	}
	bool hop = v->path == SP_PATH_HOP;
	if (sp_site_pad_overlaps(s->addr, s->addr + (hop ? SP_HOP_LEN : SP_JMP_LEN))) {
		s->jmp_reason = "its jmp would overwrite padding another probe's hop uses (its pad, or the carrier holding it)";
		return false;
	}
	s->guard_entry = !hop;
	if (sp_tramp_build(s, &v->w, &s->tramp, &reason) != 0) {
		s->jmp_reason = reason;
		return false;
	}
	if (hop) {
		intptr_t d = (intptr_t)s->tramp.entry - (intptr_t)(v->hop_pad + SP_HOP_PAD_LEN);
		if (d != (int32_t)d) {
			s->jmp_reason = "the trampoline is out of the hop pad's rel32 reach";
			return false;
		}
		if (v->hop_carrier && !s->carrier &&
		    !(s->carrier = arm_carrier(v->hop_carrier, v->hop_carrier_len, &reason))) {
			s->jmp_reason = reason;
			return false;
		}
		/* the pad is claimed from here on, for the site's life */
		s->pad = v->hop_pad;
		sp_site_pristine(s->pad, SP_HOP_PAD_LEN, s->pad_orig);
		s->hop = true;
		s->jmp_reason = keep(v, v->reason);   /* why not the 5-byte jmp, if said */
	}
	s->tramp_ok = true;
	return true;
}

/* Make S ready to be armed the way WANT_JMP asks: the jmp when it is (or,
 * decided now, turns out) safe, else the int3 path.  V: a fresh verdict,
 * or NULL to decide now if needed. */
static int prepare(struct sp_site *s, const struct sp_object *obj, const struct sp_func_extent *fn,
		   bool want_jmp, const struct sp_verdict *v, const char **why)
{
	s->go_stack = fn->go_stack;
	/* the trampoline about to be built runs it; not on a goroutine's
	 * stack, which may have little room below the trampoline's frame */
	if (fn->inline_code && !s->jmp_tried && !fn->go_stack) {
		s->inline_code = fn->inline_code;
		s->inline_len = fn->inline_len;
	}
	/* a Go site whose jmp was decided before goroutines existed, armed
	 * again since they may (a detach, then a late attach): its window of
	 * several instructions is no longer safe (decide.h, check 5) */
	if (want_jmp && s->tramp_ok && !s->armed && fn->go_stack && fn->go_running && !s->hop &&
	    s->tramp.window_len > s->insn.len) {
		s->tramp_ok = false;
		s->jmp_reason = sp_decide_go_preempt;
	}
	if (want_jmp && !s->jmp_tried && fn->go_no_jmp) {
		s->jmp_tried = true;
		s->jmp_reason = fn->go_no_jmp;
	}
	if (want_jmp && !s->jmp_tried) {
		struct sp_verdict fresh;
		if (!v && decide_live(obj, s->addr, sp_maps_text_avail(obj, s->addr), fn, NULL, 0, &fresh) == 0)
			v = &fresh;
		if (v)
			take_jmp(s, v);
	}
	if (!(want_jmp && s->tramp_ok) && fn->int3_path_hazard) {
		*why = fn->int3_path_hazard;   /* the int3 path only: a jmp is fine */
		return -ENOTSUP;
	}
	if (!(want_jmp && s->tramp_ok) && plan_resume(s, why) != 0)
		return -ENOTSUP;
	s->want_jmp = want_jmp;
	return 0;
}

const char sp_arm_gone[] = "the code is gone (its object was unloaded)";

/* Live text around the sites of one attach, read a span at a time: a
 * read per site (a system call pinning its page, and getpid's) was most
 * of attaching libc:* once its decisions were stored, and an attach's
 * sites come in address order.  A span starts at a page and doubles while
 * the reads go on past its end (libc:*: ~40 reads instead of ~470; one
 * probe still reads one page).  What was read stays valid while the
 * attach's hold on the patcher lasts and nothing is written
 * (sp_patch_epoch); the registry lock keeps other attaches out. */
#define TEXT_SPAN_MIN 4096
#define TEXT_SPAN_MAX (64u << 10)
static struct {
	uint64_t epoch;
	uintptr_t lo, hi;
	size_t span;             /* the next read's length */
	uint8_t bytes[TEXT_SPAN_MAX];
} text_seen;

/* [ADDR, ADDR+LEN) of live text (AVAIL bytes readable from ADDR), read
 * safely (the object may be being unloaded): true, or false when gone. */
static bool read_text(uintptr_t addr, size_t len, size_t avail, uint8_t *out)
{
	uint64_t e = sp_patch_epoch();
	if (e && e == text_seen.epoch && addr >= text_seen.lo && addr + len <= text_seen.hi) {
		memcpy(out, text_seen.bytes + (addr - text_seen.lo), len);
		return true;
	}
	/* on past the span just read: the next one twice as long */
	bool onward = e && e == text_seen.epoch && addr >= text_seen.hi;
	size_t span = onward && text_seen.span < TEXT_SPAN_MAX ? text_seen.span * 2
		      : onward ? TEXT_SPAN_MAX : TEXT_SPAN_MIN;
	text_seen.epoch = 0;
	text_seen.span = span;
	size_t n = avail < span ? avail : span;
	if (e && n >= len && sp_patch_read(addr, text_seen.bytes, n) == 0) {
		text_seen.epoch = e;
		text_seen.lo = addr;
		text_seen.hi = addr + n;
		memcpy(out, text_seen.bytes, len);
		return true;
	}
	return sp_mem_read(addr, out, len);
}

struct sp_site *sp_arm_site(const struct sp_object *obj, uintptr_t addr,
			    const struct sp_func_extent *fn, bool want_jmp, const char **why)
{
	struct sp_site *s = sp_site_lookup(addr);
	struct sp_site *cover = covering(addr);
	if ((s && s->taken) || (cover && cover->taken)) {
		*why = "the runtime loaded by 'selfprobe attach' leads libc's signal entry point here into "
		       "its own (sigaction, pthread_sigmask): not probed while it does";
		return NULL;
	}
	if (s && s->is_carrier) {
		*why = "the address is inside the code another probe's hop moved out for its pad (a carrier)";
		return NULL;
	}
	if (s) {
		/* an armed site keeps its path; a new probe joins it.  One not
		 * armed holds the file's bytes, unless another tool's are there
		 * (coexist.h: a kernel uprobe's int3 or call, left by our detach):
		 * those stay, as on a site never probed.  Read safely: its
		 * object may be being unloaded (memread.h) */
		uint8_t b0;
		if (!sp_mem_read(addr, &b0, 1)) {
			*why = sp_arm_gone;
			return NULL;
		}
		if (!s->armed && b0 != s->orig[0] && !covering(addr) &&
		    !sp_site_pad_overlaps(addr, addr + 1)) {
			*why = "the site's first byte is another tool's now (a kernel uprobe's int3 or call?)";
			return NULL;
		}
		if (!s->armed && prepare(s, obj, fn, want_jmp, NULL, why) != 0)
			return NULL;
		return s;
	}
	size_t avail = sp_maps_text_avail(obj, addr);
	if (avail < SP_JMP_LEN) {
		*why = avail ? "the site is too close to the end of the text mapping"
			     : "address is not in the object's executable text";
		return NULL;
	}
	/* on the stack: a malloc and a free of 1.7 KiB per site, between the
	 * site's own allocations, were 5 % of attaching libc:* */
	struct sp_verdict verdict, *v = &verdict;
	/* the same function's site from the object's previous load, if any */
	s = sp_site_revive(obj->path, addr - obj->bias, addr);
	bool revived = s != NULL;
	if (!s)
		s = sp_calloc(1, sizeof(*s));
	if (!s) {
		*why = "out of memory";
		goto fail;
	}
	s->addr = addr;
	if (sp_site_pad_overlaps(addr, addr + 1)) {
		*why = "the address is padding another probe's hop uses (its pad, or the carrier holding it)";
		goto fail;
	}
	struct sp_site *t = covering(addr);
	if (t && demote(t) != 0) {
		*why = "inside the jmp window of another probe that cannot be moved back to int3";
		goto fail;
	}
	/* the site's first bytes, read once (safely: the object may be being
	 * unloaded) for the kernel's call, the stored decision and the
	 * site's original bytes: three reads a site were most of attaching
	 * libc:* once its decisions were stored */
	uint8_t head[SP_DECIDE_REPLAY_BYTES];
	size_t head_len = avail < sizeof(head) ? avail : sizeof(head);
	if (!read_text(addr, head_len, avail, head)) {
		*why = sp_arm_gone;
		goto fail;
	}
	if (sp_coexist_kernel_call(obj, addr, head)) {
		/* not a call of the program's: relocated, it would enter the
		 * kernel's trampoline from an address it has no probe for */
		*why = "the site holds a call into the kernel's uprobe trampoline (an optimized kernel uprobe)";
		goto fail;
	}
	sp_site_restore(addr, head_len, head);
	if (decide_live(obj, addr, avail, fn, head, head_len, v) != 0) {
		*why = "out of memory";
		goto fail;
	}
	if (v->path == SP_PATH_NONE) {
		/* a hazard, an int3 already there, an instruction that does not
		 * decode or cannot resume: nothing is patched */
		*why = keep(v, v->reason);
		goto fail;
	}
	s->insn = v->insn;
	memcpy(s->orig, head, SP_JMP_LEN);   /* avail >= SP_JMP_LEN: checked above */
	if (prepare(s, obj, fn, want_jmp, v, why) != 0)
		goto fail;
	if (sp_site_insert(s) != 0) {
		*why = "out of memory";
		/* its trampoline's pending write points into S */
		if (s->tramp_ok)
			sp_patch_flush_later();
		goto fail;
	}
	return s;
fail:
	/* a site of the object's previous load stays the site of its
	 * probes' records (they point at it): kept for the next load, never
	 * freed */
	if (revived)
		sp_site_retire(s, obj->path, addr - obj->bias);
	else
		sp_free(s);
	return NULL;
}

static int write_byte0(struct sp_site *s, uint8_t b)
{
	return sp_patch_write(s->addr, &b, 1);
}

/* Step 3 for S: the displacement after the opcode byte.  A hop's pad is
 * written first: nothing reaches it until the rel8 and its opcode exist
 * (the site holds an int3 now). */
static int write_rel(struct sp_site *s)
{
	if (!s->hop) {
		int32_t rel = (int32_t)((intptr_t)s->tramp.entry - (intptr_t)(s->addr + SP_JMP_LEN));
		return sp_patch_write(s->addr + 1, &rel, 4);
	}
	uint8_t pad[SP_HOP_PAD_LEN], site[SP_HOP_LEN];
	sp_hop_pad_bytes(s->pad, s->tramp.entry, pad);
	sp_hop_site_bytes(s->addr, s->pad, site);
	if (!s->pad_written) {
		int rc = sp_patch_write(s->pad, pad, SP_HOP_PAD_LEN);
		if (rc)
			return rc;
		s->pad_written = true;
	}
	return sp_patch_write(s->addr + 1, site + 1, 1);
}

/* One step's writes over a batch of sites, made together
 * (sp_patch_write_many: a write per page, not per site).  Without memory
 * for it, each write is made at once instead. */
struct step {
	struct sp_patch_piece *piece;
	size_t *site;            /* the index in the batch each piece is for */
	int *rc;
	int32_t *rel;            /* step 3's displacements, one per site */
	size_t n;
};

static const uint8_t op_int3 = 0xcc, op_jmp5 = 0xe9, op_jmp8 = 0xeb;

static bool step_init(struct step *st, size_t n)
{
	*st = (struct step){ .piece = sp_calloc(n + 1, sizeof(*st->piece)), .site = sp_calloc(n + 1, sizeof(*st->site)),
			     .rc = sp_calloc(n + 1, sizeof(*st->rc)), .rel = sp_calloc(n + 1, sizeof(*st->rel)) };
	return st->piece && st->site && st->rc && st->rel;
}

static void step_free(struct step *st)
{
	sp_free(st->piece);
	sp_free(st->site);
	sp_free(st->rc);
	sp_free(st->rel);
}

/* Write LEN bytes at ADDR for site I of the batch: now (*RC gets the
 * result) when OK is false, else at step_flush. */
static void step_add(struct step *st, bool ok, size_t i, uintptr_t addr, const void *bytes, size_t len, int *rc)
{
	if (!ok) {
		*rc = sp_patch_write(addr, bytes, len);
		return;
	}
	st->piece[st->n] = (struct sp_patch_piece){ .addr = addr, .bytes = bytes, .len = len };
	st->site[st->n++] = i;
}

/* Make the writes; RCS[i] gets each site's result. */
static void step_flush(struct step *st, int *rcs)
{
	sp_patch_write_many(st->piece, st->n, st->rc);
	for (size_t k = 0; k < st->n; k++)
		rcs[st->site[k]] = st->rc[k];
	st->n = 0;
}

static int cmp_window(const void *a, const void *b)
{
	const struct sp_stop_window *x = a, *y = b;
	return x->site < y->site ? -1 : x->site > y->site;
}

/* S's trampoline was written later (tramp.c) and that write failed: the
 * int3 path instead.  0, or -errno when it has none either. */
static int tramp_lost(struct sp_site *s)
{
	const char *why = NULL;
	s->tramp_ok = false;
	s->jmp_reason = "cannot write the trampoline";
	return s->want_jmp && plan_resume(s, &why) != 0 ? -EIO : 0;
}

size_t sp_arm_batch(struct sp_site **sites, size_t n, int *rcs)
{
	size_t failed = 0, n_jmp = 0;
	int rc = sp_trap_install();
	struct step st;
	bool batched = step_init(&st, n);
	sp_patch_flush_later();   /* the trampolines, before anything leads there */
	bool sealed = sp_codemem_seal() == 0;
	for (size_t i = 0; i < n; i++) {
		struct sp_site *s = sites[i];
		rcs[i] = rc;
		if (rc == 0 && !s->armed && s->tramp_ok &&
		    (s->tramp_unwritten || (!sealed && (!sp_codemem_runnable(s->tramp.entry) ||
						    !sp_codemem_runnable(s->tramp.reloc)))))
			rcs[i] = tramp_lost(s);
		if (rcs[i] == 0 && !s->armed) {
			bool use_jmp = s->want_jmp && s->tramp_ok;
			/* what a trap here must do, set before the int3 exists (a
			 * taken site's int3 leads where its jmp would, sigtake.h) */
			s->resume = use_jmp || s->taken ? SP_RESUME_TRAMP : s->int3_resume;
			s->reason = use_jmp ? (s->hop ? s->jmp_reason : NULL)
					    : s->want_jmp ? s->jmp_reason : INT3_FORCED;
			step_add(&st, batched, i, s->addr, &op_int3, 1, &rcs[i]);   /* step 1 */
		}
	}
	step_flush(&st, rcs);
	for (size_t i = 0; i < n; i++) {
		struct sp_site *s = sites[i];
		if (rc == 0 && !s->armed && rcs[i] == 0 && s->want_jmp && s->tramp_ok)
			n_jmp++;
		failed += rcs[i] != 0;
	}
	sp_patch_sync();
	struct sp_stop_window *w = n_jmp ? sp_calloc(n_jmp, sizeof(*w)) : NULL;
	size_t k = 0;
	for (size_t i = 0; w && i < n; i++) {
		struct sp_site *s = sites[i];
		if (rcs[i] == 0 && !s->armed && s->resume == SP_RESUME_TRAMP && s->tramp_ok)
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
		sp_free(retired);
		retired = w;
		w = NULL;
	}
	size_t n_rel = 0;
	/* step 3's result for each site: 1 not tried, else 0 or -errno */
	int *rel_rc = batched ? sp_calloc(n + 1, sizeof(*rel_rc)) : NULL;
	for (size_t i = 0; i < n; i++) {
		struct sp_site *s = sites[i];
		if (rel_rc)
			rel_rc[i] = 1;
		if (rcs[i] != 0 || s->armed)
			continue;
		s->armed = true;
		s->jmp = false;
		if (s->resume != SP_RESUME_TRAMP || !s->tramp_ok)
			continue;   /* an int3 site (a taken one's leads to its entry) */
		const struct sp_stop_window *sw = w ? sp_stopworld_find(w, k, s->addr) : NULL;
		bool busy = sw && sw->busy;
		if (stopped != 0 || busy) {
			s->reason = stopped != 0 ? "a thread did not answer the stop check: the site keeps its int3"
				    : sw->busy == SP_STOP_BUSY_FRAME
					? "a signal handler will resume a thread inside the jmp window: the site keeps its int3"
					: "a thread was blocked inside the jmp window: the site keeps its int3";
			continue;
		}
		s->rel_written = true;
		if (rel_rc && !s->hop) {                                  /* step 3 */
			st.rel[i] = (int32_t)((intptr_t)s->tramp.entry - (intptr_t)(s->addr + SP_JMP_LEN));
			step_add(&st, true, i, s->addr + 1, &st.rel[i], 4, NULL);
		} else if (write_rel(s) == 0) {   /* a hop writes its pad first: alone */
			s->jmp = true;
			n_rel++;
		}
	}
	if (rel_rc) {
		step_flush(&st, rel_rc);
		for (size_t i = 0; i < n; i++)
			if (rel_rc[i] == 0 && !sites[i]->jmp) {
				sites[i]->jmp = true;
				n_rel++;
			}
		sp_free(rel_rc);
	}
	if (n_rel) {
		sp_patch_sync();
		int *op_rc = batched ? sp_calloc(n + 1, sizeof(*op_rc)) : NULL;
		for (size_t i = 0; i < n; i++) {                        /* step 4 */
			if (rcs[i] != 0 || !sites[i]->jmp)
				continue;
			int now = 0;
			step_add(&st, op_rc != NULL, i, sites[i]->addr, sites[i]->hop ? &op_jmp8 : &op_jmp5, 1, &now);
			if (now != 0)
				sites[i]->jmp = false;   /* the int3 stays: still correct */
		}
		if (op_rc) {
			step_flush(&st, op_rc);
			for (size_t i = 0; i < n; i++)
				if (rcs[i] == 0 && sites[i]->jmp && op_rc[i] != 0)
					sites[i]->jmp = false;
			sp_free(op_rc);
		}
		sp_patch_sync();
	}
	step_free(&st);
	sp_free(w);
	return failed;
}

void sp_arm_disarm_batch(struct sp_site **sites, size_t n)
{
	/* sp_arm_disarm's three steps, each over every site, written together
	 * (a write per page) and then one sync: a site sees the same order
	 * (int3 over the jmp, the original displacement, the original first
	 * byte), and 10,000 sites cost three SYNC_CORE barriers instead of
	 * 30,000.  A site whose write fails stops there, still correct (an
	 * int3, or its jmp), and stays armed. */
	struct step st;
	int *rc = sp_calloc(n + 1, sizeof(*rc));
	if (!rc || !step_init(&st, n)) {
		if (rc)
			step_free(&st);
		sp_free(rc);
		for (size_t i = 0; i < n; i++)
			sp_arm_disarm(sites[i]);
		return;
	}
	bool any_jmp = false;
	for (size_t i = 0; i < n; i++) {
		rc[i] = sites[i]->armed ? 0 : 1;
		/* a jmp whose first byte another tool owns now (coexist.h): not
		 * through the three steps, whose last would erase it.  Only the
		 * sites whose bytes another tool ever changed are read again:
		 * the scan just before this batch marks them */
		if (rc[i] == 0 && sites[i]->jmp && atomic_load(&sites[i]->foreign) &&
		    sp_coexist_disarm(sites[i]) <= 0) {
			if (!sites[i]->armed)
				release_pad(sites[i]);
			rc[i] = 1;
			continue;
		}
		if (rc[i] == 0 && (sites[i]->jmp || sites[i]->rel_written)) {
			if (sites[i]->jmp)
				step_add(&st, true, i, sites[i]->addr, &op_int3, 1, NULL);
			any_jmp = true;
		}
	}
	if (any_jmp) {
		step_flush(&st, rc);
		sp_patch_sync();
		for (size_t i = 0; i < n; i++)
			if (rc[i] == 0 && (sites[i]->jmp || sites[i]->rel_written))
				step_add(&st, true, i, sites[i]->addr + 1, sites[i]->orig + 1, patch_len(sites[i]) - 1,
					 NULL);
		step_flush(&st, rc);
		sp_patch_sync();
		for (size_t i = 0; i < n; i++)
			if (rc[i] == 0)
				sites[i]->rel_written = false;
	}
	bool any = false;
	for (size_t i = 0; i < n; i++)
		if (rc[i] == 0) {
			step_add(&st, true, i, sites[i]->addr, &sites[i]->orig[0], 1, NULL);
			any = true;
		}
	step_flush(&st, rc);
	if (any)
		sp_patch_sync();
	for (size_t i = 0; i < n; i++)
		if (rc[i] == 0) {
			sites[i]->armed = false;
			release_pad(sites[i]);
		}
	step_free(&st);
	sp_free(rc);
}

int sp_arm_disarm(struct sp_site *s)
{
	if (!s->armed)
		return 0;
	int rc;
	uint8_t b0;
	if (!sp_mem_read(s->addr, &b0, 1)) {
		/* unmapped under us: nothing of ours is left to take away (the
		 * loader's notification forgets the site) */
		s->armed = false;
		return 0;
	}
	if (s->jmp && (rc = sp_coexist_disarm(s)) <= 0) {
		/* another tool's int3 or call, or the file's byte, over our jmp
		 * (coexist.h): what is ours went back, the first byte stays */
		if (rc == 0)
			release_pad(s);
		return rc;
	}
	if (!s->jmp && b0 != 0xcc) {
		/* our int3 was replaced (a kernel uprobe's removal): nothing of
		 * ours is left to take away */
		atomic_fetch_or(&s->foreign, SP_FOREIGN_RESTORED);
		s->armed = false;
		return 0;
	}
	if (s->jmp || s->rel_written) {
		if (s->jmp && (rc = write_byte0(s, 0xcc)) != 0)
			return rc;
		sp_patch_sync();
		if ((rc = sp_patch_write(s->addr + 1, s->orig + 1, patch_len(s) - 1)) != 0)
			return rc;
		sp_patch_sync();
		s->rel_written = false;
	}
	if ((rc = write_byte0(s, s->orig[0])) != 0)
		return rc;
	sp_patch_sync();
	s->armed = false;
	release_pad(s);
	return 0;
}
