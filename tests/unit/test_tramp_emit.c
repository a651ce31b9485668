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
#include "golang_args.h"
#include "insn.h"
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

static void same(struct sp_site *site, const struct sp_window *w, uintptr_t base, const char *what)
{
	static uint8_t a[SP_TRAMP_MAX], b[SP_TRAMP_MAX];
	struct sp_tramp ta, tb;
	const char *ra = NULL, *rb = NULL;
	memset(a, 0x5a, sizeof(a));
	memset(b, 0x5a, sizeof(b));
	memset(&ta, 0, sizeof(ta));
	memset(&tb, 0, sizeof(tb));
	long la = sp_tramp_emit(site, w, base, a, &ta, &ra);
	long lb = ref_emit_at(site, w, base, b, &tb, &rb);
	cr_assert_eq(la, lb, "%s: length %ld, the reference %ld", what, la, lb);
	cr_assert_gt(la, 0, "%s: %s", what, ra ? ra : "");
	for (long i = 0; i < la; i++)
		cr_assert_eq(a[i], b[i], "%s: byte %ld is %02x, the reference's %02x", what, i, a[i], b[i]);
	cr_assert_eq(ta.entry, tb.entry);
	cr_assert_eq(ta.reloc, tb.reloc);
	cr_assert_eq(ta.slow_int3, tb.slow_int3);
	cr_assert_eq(ta.window_len, tb.window_len);
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
					struct sp_window w;
					window_of(&w, site.addr, wins[k].b, wins[k].n);
					char what[96];
					snprintf(what, sizeof(what), "fast %d, go %d, window %zu, base +%lu", fast, go, k,
						 (unsigned long)skew);
					same(&site, &w, 0x402000 + skew + 3, what);
				}
	sp_fastcount = saved;
}
