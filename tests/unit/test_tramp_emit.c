/* test_tramp_emit — the trampolines written with x86emit are byte for
 * byte what the hex EMITs wrote before the conversion (tramp_ref.inc, the
 * old emitter kept verbatim), for every shape: with and without the inline
 * count, a Go site's calls, windows that jump back or end the flow, bases
 * at every alignment the rseq descriptor pads for. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "codemem.h"
#include "dispatch.h"
#include "fastcount.h"
#include "golang_stack.h"
#include "insn.h"
#include "patch.h"
#include "probe.h"
#include "site.h"
#include "tramp.h"
#include "uret.h"

#include "tramp_ref.inc"

/* A window from BYTES decoded at AT, as the planner would make it. */
static void window_of(struct sp_window *w, uint64_t at, const uint8_t *bytes, size_t n)
{
	memset(w, 0, sizeof(*w));
	w->site = at;
	for (size_t off = 0; off < n;) {
		struct sp_insn *in = &w->insns[w->n_insns++];
		cr_assert_eq(sp_insn_decode(bytes + off, n - off, at + off, in), 0);
		off += in->len;
		w->len += in->len;
	}
	enum sp_insn_class last = w->insns[w->n_insns - 1].cls;
	w->flow_ends = last == SP_INSN_RET || last == SP_INSN_JMP_REL;
}

typedef long emit_fn(struct sp_site *site, const struct sp_window *w, uintptr_t base, uint8_t *code,
		     struct sp_tramp *out, const char **reason);

/* EMIT writes for SITE at BASE what REF (named REF_NAME) writes, byte for
 * byte, and says the same of it. */
static void same_as(emit_fn *emit, emit_fn *ref, const char *ref_name, struct sp_site *site,
		    const struct sp_window *w, uintptr_t base, const char *what)
{
	static uint8_t a[SP_TRAMP_MAX], b[SP_TRAMP_MAX];
	struct sp_tramp ta, tb;
	const char *ra = NULL, *rb = NULL;
	memset(a, 0x5a, sizeof(a));
	memset(b, 0x5a, sizeof(b));
	memset(&ta, 0, sizeof(ta));
	memset(&tb, 0, sizeof(tb));
	long la = emit(site, w, base, a, &ta, &ra);
	long lb = ref(site, w, base, b, &tb, &rb);
	cr_assert_eq(la, lb, "%s: length %ld, %s %ld", what, la, ref_name, lb);
	cr_assert_gt(la, 0, "%s: %s", what, ra ? ra : "");
	for (long i = 0; i < la; i++)
		cr_assert_eq(a[i], b[i], "%s: byte %ld is %02x, %s %02x", what, i, a[i], ref_name, b[i]);
	cr_assert_eq(ta.entry, tb.entry, "%s", what);
	cr_assert_eq(ta.reloc, tb.reloc, "%s", what);
	cr_assert_eq(ta.slow_int3, tb.slow_int3, "%s", what);
	cr_assert_eq(ta.window_len, tb.window_len, "%s", what);
	cr_assert_eq(memcmp(&ta.map, &tb.map, sizeof(ta.map)), 0, "%s: the relocation map differs", what);
}

static void same(struct sp_site *site, const struct sp_window *w, uintptr_t base, const char *what)
{
	same_as(sp_tramp_emit, ref_emit_at, "the reference's", site, w, base, what);
}

Test(tramp_emit, byte_identical_to_the_hex_emitter)
{
	static const uint8_t prologue[] = { 0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10 };   /* push rbp; mov; sub */
	static const uint8_t nop_ret[] = { 0x90, 0xc3 };                                          /* flow ends */
	static const uint8_t call_rel[] = { 0xe8, 0x10, 0x20, 0x00, 0x00 };                       /* call rel32 */
	static const uint8_t lea_rip[] = { 0x48, 0x8d, 0x05, 0x00, 0x10, 0x00, 0x00 };            /* lea x(%rip),%rax */
	const struct { const uint8_t *b; size_t n; } wins[] = {
		{ prologue, sizeof(prologue) }, { nop_ret, sizeof(nop_ret) }, { call_rel, sizeof(call_rel) },
		{ lea_rip, sizeof(lea_rip) },
	};
	struct sp_fastcount saved = sp_fastcount;
	static struct sp_site site;
	for (int fast = 0; fast < 2; fast++)
		for (int go = 0; go < 2; go++)
			for (size_t k = 0; k < sizeof(wins) / sizeof(wins[0]); k++)
				for (uintptr_t skew = 0; skew < 64; skew += 8) {
					memset(&site, 0, sizeof(site));
					site.addr = 0x401000;
					site.go_stack = go;
					sp_fastcount.on = fast;
					sp_fastcount.tls_fast = -0x1a0;
					sp_fastcount.tls_runtime = -0x198;
					sp_fastcount.tls_rseq_cs = -0x60;
					sp_fastcount.tls_own_neg_lo = -0x58;
					sp_fastcount.tls_own_neg_hi = -0x50;
					struct sp_window w;
					window_of(&w, site.addr, wins[k].b, wins[k].n);
					char what[96];
					snprintf(what, sizeof(what), "fast %d, go %d, window %zu, base +%lu", fast, go, k,
						 (unsigned long)skew);
					same(&site, &w, 0x402000 + skew + 3, what);
				}
	sp_fastcount = saved;
}

/* ---- a trampoline that cannot be built gives its code memory back ---- */

static bool refuse_every_write(uintptr_t addr, const void *bytes, size_t len)
{
	(void)addr, (void)bytes, (void)len;
	return true;
}

/* sp_tramp_build for W fails (its write refused when REFUSE_WRITE) and the
 * next slot near the site is where the failed trampoline's was. */
static void build_fails_and_gives_back(const struct sp_window *w, bool refuse_write, const char *what)
{
	static struct sp_site site;
	memset(&site, 0, sizeof(site));
	site.addr = (uintptr_t)&build_fails_and_gives_back;
	uintptr_t next = sp_codemem_alloc(site.addr, 16);
	cr_assert_neq(next, 0);
	sp_codemem_trim(next, 16, 0);
	struct sp_tramp t;
	memset(&t, 0, sizeof(t));
	const char *why = NULL;
	if (refuse_write)
		sp_patch_fail_for_test(refuse_every_write);
	int rc = sp_tramp_build(&site, w, &t, &why);
	sp_patch_fail_for_test(NULL);
	cr_assert_lt(rc, 0, "%s: the trampoline was built", what);
	cr_assert_not_null(why, "%s: no reason", what);
	cr_assert_eq(site.tramp_slot, 0, "%s: the site keeps slot %#lx", what, (unsigned long)site.tramp_slot);
	uintptr_t again = sp_codemem_alloc(site.addr, 16);
	cr_assert_eq(again, next, "%s: the next slot is at %#lx, not at the failed trampoline's %#lx", what,
		     (unsigned long)again, (unsigned long)next);
	sp_codemem_trim(again, 16, 0);
}

Test(tramp_build, a_window_that_cannot_be_relocated_gives_the_slot_back)
{
	struct sp_window empty;
	memset(&empty, 0, sizeof(empty));   /* reloc refuses an empty window */
	build_fails_and_gives_back(&empty, false, "empty window");
}

Test(tramp_build, a_trampoline_whose_write_fails_gives_the_slot_back)
{
	static const uint8_t prologue[] = { 0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10 };
	struct sp_window w;
	window_of(&w, (uintptr_t)&build_fails_and_gives_back, prologue, sizeof(prologue));
	build_fails_and_gives_back(&w, true, "write refused");
}

/* ---- sp_tramp_build's copies of a shape's first trampoline ---- */

/* SITE's trampoline at BASE as sp_tramp_build makes it (a copy of its
 * shape's, when one was emitted) is what a fresh emission writes. */
static void shaped_is_fresh(struct sp_site *site, const struct sp_window *w, uintptr_t base, const char *what)
{
	same_as(sp_tramp_emit_shaped, sp_tramp_emit, "fresh", site, w, base, what);
}

Test(tramp_emit, a_shape_copied_for_another_site_is_byte_identical_to_a_fresh_emission)
{
	static const uint8_t prologue[] = { 0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10 };
	static const uint8_t nop_ret[] = { 0x90, 0xc3 };
	static const uint8_t call_rel[] = { 0xe8, 0x10, 0x20, 0x00, 0x00 };
	static const uint8_t lea_rip[] = { 0x48, 0x8d, 0x05, 0x00, 0x10, 0x00, 0x00 };
	static const uint8_t jcc_mov[] = { 0x74, 0x05, 0x48, 0x89, 0xf8, 0x90 };          /* je; mov; nop */
	const struct { const uint8_t *b; size_t n; } wins[] = {
		{ prologue, sizeof(prologue) }, { nop_ret, sizeof(nop_ret) }, { call_rel, sizeof(call_rel) },
		{ lea_rip, sizeof(lea_rip) }, { jcc_mov, sizeof(jcc_mov) },
	};
	struct sp_fastcount saved = sp_fastcount;
	static struct sp_site sites[3];
	/* every site of every shape twice over: the first emits (or takes
	 * an earlier site's shape), the others copy it with their own site,
	 * address, window and base written in */
	for (int round = 0; round < 2; round++)
		for (int fast = 0; fast < 2; fast++)
			for (int go = 0; go < 2; go++)
				for (size_t k = 0; k < sizeof(wins) / sizeof(wins[0]); k++)
					for (int s = 0; s < 3; s++)
						for (uintptr_t skew = 0; skew < 64; skew += 16) {
							struct sp_site *site = &sites[s];
							memset(site, 0, sizeof(*site));
							site->addr = 0x401000 + 0x1234 * (uintptr_t)s + 16 * k;
							site->go_stack = go;
							sp_fastcount.on = fast;
							sp_fastcount.tls_fast = -0x1a0;
							sp_fastcount.tls_runtime = -0x198;
							sp_fastcount.tls_rseq_cs = round ? -0x68 : -0x60;
							sp_fastcount.tls_own_neg_lo = round ? -0x48 : -0x58;
							sp_fastcount.tls_own_neg_hi = -0x50;
							struct sp_window w;
							window_of(&w, site->addr, wins[k].b, wins[k].n);
							char what[128];
							snprintf(what, sizeof(what),
								 "round %d, fast %d, go %d, window %zu, site %d, base +%lu",
								 round, fast, go, k, s, (unsigned long)skew);
							shaped_is_fresh(site, &w, 0x402000 + 0x10000 * (uintptr_t)s + skew,
									what);
						}
	sp_fastcount = saved;
}

Test(tramp_emit, a_site_with_native_code_is_emitted_afresh)
{
	static const uint8_t prologue[] = { 0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10 };
	static const uint8_t native[] = { 0x90, 0x90, 0x90 };
	struct sp_fastcount saved = sp_fastcount;
	static struct sp_site site;
	sp_fastcount.on = true;
	sp_fastcount.tls_fast = -0x1a0;
	sp_fastcount.tls_runtime = -0x198;
	sp_fastcount.tls_rseq_cs = -0x60;
	sp_fastcount.tls_own_neg_lo = -0x58;
	sp_fastcount.tls_own_neg_hi = -0x50;
	for (int i = 0; i < 3; i++) {
		memset(&site, 0, sizeof(site));
		site.addr = 0x401000;
		if (i) {
			site.inline_code = native;
			site.inline_len = (uint32_t)(sizeof(native) - (size_t)(i - 1));
		}
		struct sp_window w;
		window_of(&w, site.addr, prologue, sizeof(prologue));
		shaped_is_fresh(&site, &w, 0x402000, i ? "native code" : "no native code");
	}
	sp_fastcount = saved;
}
