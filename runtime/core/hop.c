/* hop — see hop.h for the patch and the proof that the pad is never run.
 *
 * The search, pure (reads the facts, allocates nothing):
 *   for each function S with a known size whose end E is near the site
 *   (the symbols just before and inside the reach), in address order:
 *     - S decodes from its start to exactly E and its last instruction ends
 *       its flow (ret, jmp, ud2): nothing falls through into E;
 *     - from E, the run of fill bytes (int3, nops that are not endbr),
 *       stopping at the first other byte or symbol start;
 *     - the first 5-byte slot [P, P+5) of the run in reach such that
 *       [E, P+5) holds no branch target or taken address (a thread landing
 *       in the run before P would slide into the pad), is covered by no
 *       symbol, and [P, P+5) is claimed by no other site.
 */
#include "hop.h"
#include "heap.h"
#include "insn.h"
#include "scanmemo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char NO_PAD[] = "no unused padding within ±127 bytes for a hop (a 2-byte jmp to a 5-byte jmp)";
static const char NO_PAD_GO[] =
	"no unused padding within ±127 bytes for a hop (a 2-byte jmp to a 5-byte jmp), and no carrier "
	"while goroutines may run: a goroutine parked by asynchronous preemption inside its run would "
	"resume inside its jmp";

/* The candidate functions: every symbol starting before the reach's end,
 * walking back until a few start before where a run could begin.  *FIRST
 * and *END: the index range [first, end) of e->syms. */
static void candidates(const struct sp_elf *e, uintptr_t bias, uintptr_t site, size_t *first,
		       size_t *end)
{
	uint64_t reach_hi = site + SP_HOP_REACH_FWD - bias;
	uint64_t run_lo = site - SP_HOP_REACH_BACK - SP_HOP_RUN_MAX - bias;
	size_t i = sp_elf_upper(e, reach_hi);
	*end = i;
	int before = 0;
	while (i > 0 && before < 4) {
		i--;
		if (e->syms[i].value < run_lo)
			before++;
	}
	*first = i;
}

/* The .eh_frame extents whose end could start a run in reach: those ending
 * in [run_lo, reach_hi] (disjoint and sorted: their ends are sorted too). */
static void ext_candidates(const struct sp_elf *e, uintptr_t bias, uintptr_t site, size_t *first,
			   size_t *end)
{
	uint64_t reach_hi = site + SP_HOP_REACH_FWD - bias;
	uint64_t run_lo = site - SP_HOP_REACH_BACK - SP_HOP_RUN_MAX - bias;
	size_t i = sp_elf_ext_upper(e, reach_hi);
	*end = i;
	while (i > 0 && e->ext[i - 1].hi >= run_lo)
		i--;
	*first = i;
}

void sp_hop_range(const struct sp_elf *elf, uintptr_t bias, uintptr_t site, uintptr_t text_lo,
		  uintptr_t text_hi, uintptr_t *lo, uintptr_t *hi)
{
	size_t first, end;
	candidates(elf, bias, site, &first, &end);
	uintptr_t l = site > SP_HOP_REACH_BACK + SP_HOP_RUN_MAX ? site - SP_HOP_REACH_BACK - SP_HOP_RUN_MAX : 0;
	for (size_t i = first; i < end; i++) {
		const struct sp_sym *s = &elf->syms[i];
		uintptr_t start = bias + s->value;
		if (s->size && start + s->size >= l && start < l)
			l = start;
	}
	ext_candidates(elf, bias, site, &first, &end);
	for (size_t i = first; i < end; i++)
		if (bias + elf->ext[i].lo < l)
			l = bias + elf->ext[i].lo;
	/* a nop at the end of the reach may be as long as any instruction */
	uintptr_t h = site + SP_HOP_SPAN + SP_INSN_MAX_LEN;
	*lo = l < text_lo ? text_lo : l;
	*hi = h > text_hi ? text_hi : h;
}

static bool in_image(const struct sp_hop_facts *f, uintptr_t lo, uintptr_t hi)
{
	return lo >= f->lo && hi <= f->lo + f->len && lo <= hi;
}

/* Does S's code end its flow exactly at its end?  Decoded from its start:
 * the boundary of the last instruction is only known that way. */
static bool ends_with_exit(const struct sp_hop_facts *f, uintptr_t start, uintptr_t end)
{
	if (!in_image(f, start, end) || start == end)
		return false;
	struct sp_insn in = { 0 };
	uintptr_t p = start;
	while (p < end) {
		const uint8_t *b = f->code + (p - f->lo);
		if (sp_insn_decode(b, end - p, p, &in) != 0)
			return false;
		p += in.len;
	}
	if (p != end)
		return false;
	if (in.cls == SP_INSN_RET || in.cls == SP_INSN_JMP_REL || in.cls == SP_INSN_JMP_IND)
		return true;
	return in.len == 2 && in.bytes[0] == 0x0f && in.bytes[1] == 0x0b;   /* ud2 */
}

/* Length of the fill item at P (an int3 byte, or a nop that is not an
 * endbr), below LIMIT; 0 when P holds something else. */
static size_t fill_len(const struct sp_hop_facts *f, uintptr_t p, uintptr_t limit)
{
	const uint8_t *b = f->code + (p - f->lo);
	if (*b == 0xcc)
		return 1;
	struct sp_insn in;
	if (sp_insn_decode(b, limit - p, p, &in) != 0 || in.cls != SP_INSN_NOP)
		return 0;
	/* endbr64/endbr32 (f3 0f 1e fa/fb) decode as nops but mark where an
	 * indirect branch may land: code, not fill */
	if (in.len == 4 && b[0] == 0xf3 && b[1] == 0x0f && b[2] == 0x1e && (b[3] & 0xfe) == 0xfa)
		return 0;
	return in.len;
}

/* Is any byte of [LO, HI) inside a function (a symbol's extent or an
 * .eh_frame one), or a function's start? */
static bool covered(const struct sp_hop_facts *f, uintptr_t lo, uintptr_t hi)
{
	return sp_elf_covers(f->elf, lo - f->bias, hi - f->bias);
}

/* The first usable pad in the run that starts at E, or 0. */
static uintptr_t pad_after(const struct sp_hop_facts *f, uintptr_t site, uintptr_t e)
{
	uintptr_t reach_lo = site > SP_HOP_REACH_BACK ? site - SP_HOP_REACH_BACK : 0;
	uintptr_t reach_hi = site + SP_HOP_REACH_FWD;   /* the last pad start */
	uint64_t next = sp_elf_next_start(f->elf, e - f->bias - 1);
	uintptr_t limit = f->lo + f->len;
	if (next && f->bias + next < limit)
		limit = f->bias + next;
	uintptr_t run_end = e;
	while (run_end < limit) {
		size_t n = fill_len(f, run_end, limit);
		if (!n)
			break;
		run_end += n;
	}
	for (uintptr_t p = e > reach_lo ? e : reach_lo; p <= reach_hi && p + SP_HOP_PAD_LEN <= run_end; p++) {
		/* both only grow with P: the first failure ends the run */
		if (f->reached(f->reached_ctx, e, p + SP_HOP_PAD_LEN) || covered(f, e, p + SP_HOP_PAD_LEN))
			return 0;
		if (f->claimed && f->claimed(f->claimed_ctx, p, p + SP_HOP_PAD_LEN))
			continue;
		return p;
	}
	return 0;
}

int sp_hop_find_pad(const struct sp_hop_facts *f, uintptr_t site, uintptr_t *pad,
		    const char **reason)
{
	size_t first, end;
	candidates(f->elf, f->bias, site, &first, &end);
	uintptr_t run_lo = site - SP_HOP_REACH_BACK - SP_HOP_RUN_MAX;
	for (size_t i = first; i < end; i++) {
		const struct sp_sym *s = &f->elf->syms[i];
		uintptr_t start = f->bias + s->value, e = start + s->size;
		if (!s->size || e < run_lo || e > site + SP_HOP_REACH_FWD)
			continue;
		/* an alias at the same address with the same size: done already */
		if (i > first && s[-1].value == s->value && s[-1].size == s->size)
			continue;
		if (!ends_with_exit(f, start, e))
			continue;
		uintptr_t p = pad_after(f, site, e);
		if (p) {
			*pad = p;
			return 0;
		}
	}
	/* the .eh_frame extents: the same proof for functions whose symbol is
	 * gone (a file stripped to .dynsym keeps its FDEs) */
	ext_candidates(f->elf, f->bias, site, &first, &end);
	for (size_t i = first; i < end; i++) {
		uintptr_t start = f->bias + f->elf->ext[i].lo, e = f->bias + f->elf->ext[i].hi;
		if (e < run_lo || e > site + SP_HOP_REACH_FWD || !ends_with_exit(f, start, e))
			continue;
		uintptr_t p = pad_after(f, site, e);
		if (p) {
			*pad = p;
			return 0;
		}
	}
	*reason = NO_PAD;
	return -ENOSPC;
}

/* ---- carriers (hop.h) ---- */

static bool plain(const struct sp_insn *in)
{
	switch (in->cls) {
	case SP_INSN_OTHER:
	case SP_INSN_NOP:
	case SP_INSN_PUSH_REG:
	case SP_INSN_POP_REG:
	case SP_INSN_MOV_REG_REG:
		return in->relocatable;
	default:
		return false;   /* a transfer, or refused */
	}
}

/* The length of the carrier starting at C in a function ending at END, or
 * 0: every condition of hop.h checked. */
static uint8_t carrier_at(const struct sp_hop_facts *f, uintptr_t site, size_t first_len, uintptr_t c,
			  uintptr_t end)
{
	uintptr_t p = c;
	int n = 0;
	while (p < c + SP_HOP_CARRIER_MIN) {
		struct sp_insn in;
		if (n == SP_HOP_CARRIER_INSNS || !in_image(f, p, end) ||
		    sp_insn_decode(f->code + (p - f->lo), end - p, p, &in) != 0 || !plain(&in))
			return 0;
		p += in.len;
		n++;
	}
	uintptr_t pad = c + SP_JMP_LEN;
	if (p > end || p - c > SP_HOP_CARRIER_MAX)
		return 0;
	if (pad + SP_HOP_REACH_BACK < site || pad > site + SP_HOP_REACH_FWD)
		return 0;
	if (c < site + first_len && p > site)                 /* the hop's own instruction */
		return 0;
	uint64_t next = sp_elf_next_start(f->elf, c - f->bias);
	if (next && f->bias + next < p)                       /* a function starts inside */
		return 0;
	if (f->reached(f->reached_ctx, c + 1, p))              /* something lands inside */
		return 0;
	if (f->claimed && f->claimed(f->claimed_ctx, c, p))   /* another site's bytes */
		return 0;
	return (uint8_t)(p - c);
}

/* The first carrier in function [START, END) (decoded from START, past its
 * entry window), or 0. */
static uintptr_t carrier_in(const struct sp_hop_facts *f, uintptr_t site, size_t first_len,
			    uintptr_t start, uintptr_t end, uint8_t *len)
{
	uintptr_t lo = site > SP_HOP_REACH_BACK + SP_JMP_LEN ? site - SP_HOP_REACH_BACK - SP_JMP_LEN : 0;
	uintptr_t hi = site + SP_HOP_REACH_FWD - SP_JMP_LEN;  /* the last carrier start */
	if (start >= end || end <= lo || start > hi || !in_image(f, start, end))
		return 0;
	uintptr_t p = start, entry_end = 0;
	while (p < end && p <= hi) {
		struct sp_insn in;
		if (sp_insn_decode(f->code + (p - f->lo), end - p, p, &in) != 0)
			return 0;   /* does not decode: no boundary is known after this */
		/* past the entry's own window: a probe there may come later */
		if (entry_end && p >= lo && (*len = carrier_at(f, site, first_len, p, end)) != 0)
			return p;
		p += in.len;
		if (!entry_end && p >= start + SP_JMP_LEN)
			entry_end = p;
	}
	return 0;
}

int sp_hop_find_carrier(const struct sp_hop_facts *f, uintptr_t site, size_t first_len, uintptr_t *at,
			uint8_t *len)
{
	const struct sp_elf *e = f->elf;
	uintptr_t lo = site > SP_HOP_REACH_BACK + SP_JMP_LEN ? site - SP_HOP_REACH_BACK - SP_JMP_LEN : 0;
	/* the functions with a known size that reach into the carrier range
	 * and start in the image, in address order: symbols, then .eh_frame
	 * extents */
	size_t end = sp_elf_upper(e, site + SP_HOP_REACH_FWD - f->bias), first = end;
	while (first > 0 && f->bias + e->syms[first - 1].value >= f->lo)
		first--;
	for (size_t i = first; i < end; i++) {
		const struct sp_sym *s = &e->syms[i];
		uintptr_t start = f->bias + s->value;
		if (!s->size || start + s->size <= lo || (i > first && s[-1].value == s->value))
			continue;
		uintptr_t c = carrier_in(f, site, first_len, start, start + s->size, len);
		if (c) {
			*at = c;
			return 0;
		}
	}
	size_t xend = sp_elf_ext_upper(e, site + SP_HOP_REACH_FWD - f->bias), x = xend;
	while (x > 0 && f->bias + e->ext[x - 1].lo >= f->lo)
		x--;
	for (; x < xend; x++) {
		uintptr_t start = f->bias + e->ext[x].lo, fend = f->bias + e->ext[x].hi;
		if (fend <= lo)
			continue;
		uintptr_t c = carrier_in(f, site, first_len, start, fend, len);
		if (c) {
			*at = c;
			return 0;
		}
	}
	return -ENOSPC;
}

void sp_hop_site_bytes(uintptr_t site, uintptr_t pad, uint8_t out[2])
{
	out[0] = 0xeb;
	out[1] = (uint8_t)(int8_t)((intptr_t)pad - (intptr_t)(site + 2));
}

void sp_hop_pad_bytes(uintptr_t pad, uintptr_t tramp, uint8_t out[SP_HOP_PAD_LEN])
{
	int32_t rel = (int32_t)((intptr_t)tramp - (intptr_t)(pad + SP_HOP_PAD_LEN));
	out[0] = 0xe9;
	memcpy(out + 1, &rel, 4);
}

void sp_hop_plan_range(const struct sp_elf *elf, uintptr_t bias, const struct sp_hop_site *s,
		       size_t avail, uintptr_t text_lo, uintptr_t text_hi, uintptr_t *lo, uintptr_t *hi)
{
	uintptr_t plo, phi;
	sp_jmp_plan_range(s->func, s->func_size, s->site, avail, &plo, &phi);
	sp_hop_range(elf, bias, s->site, text_lo, text_hi, lo, hi);
	if (plo < *lo)
		*lo = plo;
	if (phi > *hi)
		*hi = phi;
}

/* Direct targets and taken addresses in [LO, HI); an unknown taken set
 * counts as reached. */
static bool idx_reached(const void *ctx, uintptr_t lo, uintptr_t hi)
{
	uintptr_t t;
	const char *how;
	return sp_btindex_any_inside(ctx, lo - 1, hi) || sp_btindex_taken_inside(ctx, lo - 1, hi, &t, &how);
}

int sp_hop_plan(const struct sp_hop_facts *f, const struct sp_hop_site *s, struct sp_window *w,
		uintptr_t *pad, uintptr_t *carrier, uint8_t *carrier_len, const char **reason)
{
	*carrier = 0;
	*carrier_len = 0;
	uintptr_t lo, hi;
	if (!s->idx) {
		*reason = "the object's branch targets could not be indexed";
		return -ENOTSUP;
	}
	sp_jmp_plan_range(s->func, s->func_size, s->site, f->lo + f->len - s->site, &lo, &hi);
	if (lo < f->lo || hi > f->lo + f->len) {
		*reason = "function does not decode: it runs past the end of the text mapping";
		return -EINVAL;
	}
	/* the whole function's decode, kept per object like the jmp plan's
	 * (scanmemo.h): libc:*'s few hop candidates include memcpy's, ~2 %
	 * of attaching it again in every process */
	struct sp_scanmemo *m = sp_btindex_memo(s->idx);
	struct sp_scan_memo memo = { m, sp_scanmemo_get, sp_scanmemo_put };
	int rc = sp_jmp_plan_first_image_memo(f->code + (lo - f->lo), lo, hi - lo, s->func, s->func_size,
					      s->site, s->limit, w, reason, m ? &memo : NULL);
	if (rc)
		return rc;
	struct sp_hop_facts g = *f;
	g.reached = idx_reached;
	g.reached_ctx = s->idx;
	if (idx_reached(s->idx, s->site + 1, s->site + w->len)) {
		*reason = "control may enter the first instruction after its first byte";
		return -ENOTSUP;
	}
	const char *no_pad;
	if (sp_hop_find_pad(&g, s->site, pad, &no_pad) == 0)
		return 0;
	/* no padding in reach: a carrier's bytes 5-9 */
	if (!f->no_carrier && sp_hop_find_carrier(&g, s->site, w->len, carrier, carrier_len) == 0) {
		*pad = *carrier + SP_JMP_LEN;
		return 0;
	}
	*reason = f->no_carrier && no_pad == NO_PAD ? NO_PAD_GO : no_pad;
	return -ENOSPC;
}

bool sp_hop_candidate(const struct sp_verdict *v)
{
	return v->path != SP_PATH_JMP5 && v->path != SP_PATH_HOP &&
	       (v->block == SP_BLOCK_TARGET || v->block == SP_BLOCK_SHORT) && v->first_len >= SP_HOP_LEN;
}

static const char HOP_CHECK[] = "hop (2-byte jmp to a 5-byte jmp in unused padding)";

bool sp_hop_decide(const struct sp_site_facts *f, const struct sp_hop_facts *hf, struct sp_verdict *v)
{
	if (!sp_hop_candidate(v))
		return false;
	struct sp_hop_site hs = { .site = f->site, .func = f->func, .func_size = f->func_size,
				  .limit = f->limit, .idx = f->idx };
	struct sp_window w;
	const char *why = NULL;
	uintptr_t pad = 0, carrier = 0;
	uint8_t carrier_len = 0;
	/* a carrier is a jmp over several instructions: none in a Go object
	 * once goroutines may be parked in its code (check 5's rule, for the
	 * pad), whether the site is a Go function's or a cgo C function's */
	struct sp_hop_facts g = *hf;
	g.no_carrier = hf->no_carrier || (f->live && f->go_running);
	if (sp_hop_plan(&g, &hs, &w, &pad, &carrier, &carrier_len, &why) == 0 && f->live && f->next_site &&
	    f->next_site < f->site + w.len)
		why = "another probe site lies inside its first instruction";
	if (v->n_trail < SP_DECIDE_MAX_CHECKS)
		v->trail[v->n_trail++] = (struct sp_check){ HOP_CHECK, why ? SP_CHECK_FAIL : SP_CHECK_PASS,
							    why ? why : "the first instruction alone is displaced" };
	if (why) {
		if (v->path == SP_PATH_INT3)
			v->reason = sp_hop_refusal(v->reason, why);
		return false;
	}
	v->path = SP_PATH_HOP;
	v->hop_pad = pad;
	v->hop_carrier = carrier;
	v->hop_carrier_len = carrier_len;
	if (carrier && v->n_trail < SP_DECIDE_MAX_CHECKS)
		v->trail[v->n_trail++] = (struct sp_check){ "hop's pad", SP_CHECK_PASS,
							    "in a carrier: a straight run near it, moved out by "
							    "its own jmp" };
	/* the report says why a Go site's hop stands where its 5-byte jmp
	 * would have been safe before goroutines existed (decide.h) */
	v->reason = v->reason == sp_decide_go_preempt ? sp_decide_go_preempt : NULL;
	v->w = w;
	v->have_window = true;
	return true;
}

struct refusal {
	char *text;
	struct refusal *next;
};
static struct refusal *refusals;

const char *sp_hop_refusal(const char *why5, const char *why_hop)
{
	if (!why_hop || why_hop == why5 || strcmp(why_hop, why5) == 0)
		return why5;
	char *text = sp_asprintf("%s; hop: %s", why5, why_hop);
	if (!text)
		return why5;
	/* by content: a reason may live in a verdict's own storage */
	for (struct refusal *r = refusals; r; r = r->next)
		if (strcmp(r->text, text) == 0) {
			sp_free(text);
			return r->text;
		}
	struct refusal *r = sp_calloc(1, sizeof(*r));
	if (!r) {
		sp_free(text);
		return why5;
	}
	r->text = text;
	r->next = refusals;
	refusals = r;
	return r->text;
}
