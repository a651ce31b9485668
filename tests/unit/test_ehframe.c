/* Tests for ehframe (function extents from .eh_frame) and their use: the
 * parser on hand-made section images (encodings, 64-bit lengths, broken
 * entries), the extents elfsym reads from the fixture library stripped and
 * not, and the hop's pad search on a code image of this binary whose
 * symbol table has lost the function before the padding (as a file
 * stripped to .dynsym has): with that function's FDE the pad is proved
 * again, without it it is not. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "asm_fn.h"
#include "ehframe.h"
#include "elfsym.h"
#include "hop.h"

/* ---- the parser on section images ---- */

struct got {
	uint64_t lo[16], hi[16];
	int n;
};

static int collect(void *ctx, uint64_t lo, uint64_t hi)
{
	struct got *g = ctx;
	if (g->n < 16) {
		g->lo[g->n] = lo;
		g->hi[g->n] = hi;
	}
	g->n++;
	return 0;
}

/* A byte image built entry by entry. */
struct img {
	uint8_t b[512];
	size_t n;
};

static void put(struct img *m, const void *p, size_t n)
{
	cr_assert(m->n + n <= sizeof(m->b));
	memcpy(m->b + m->n, p, n);
	m->n += n;
}
static void u8(struct img *m, uint8_t v) { put(m, &v, 1); }
static void u32(struct img *m, uint32_t v) { put(m, &v, 4); }
static void u64(struct img *m, uint64_t v) { put(m, &v, 8); }

/* A CIE with augmentation AUG ("zR" with FDE encoding ENC, "" for none,
 * anything else as given with ENC as its one data byte); its offset. */
static size_t cie(struct img *m, const char *aug, uint8_t enc)
{
	size_t at = m->n;
	size_t alen = strlen(aug) + 1;
	size_t body = 4 + 1 + alen + 3 + (aug[0] == 'z' ? 2 : 0);
	u32(m, (uint32_t)body);
	u32(m, 0);                 /* CIE id */
	u8(m, 1);                  /* version */
	put(m, aug, alen);
	u8(m, 1);                  /* code alignment */
	u8(m, 0x78);               /* data alignment -8 */
	u8(m, 16);                 /* return address register */
	if (aug[0] == 'z') {
		u8(m, 1);          /* augmentation data length */
		u8(m, enc);
	}
	return at;
}

/* An FDE for CIE_AT with LO/RANGE as 4-byte pc-relative (PCREL4) or
 * 8-byte absolute values; its offset. */
static size_t fde(struct img *m, size_t cie_at, uint64_t vaddr, uint64_t lo, uint64_t range, bool pcrel4)
{
	size_t at = m->n;
	u32(m, pcrel4 ? 4 + 4 + 4 + 1 : 4 + 8 + 8 + 1);
	u32(m, (uint32_t)(m->n - cie_at));   /* back from this field to the CIE */
	if (pcrel4) {
		uint64_t field = vaddr + m->n;
		u32(m, (uint32_t)(int32_t)(lo - field));
		u32(m, (uint32_t)range);
	} else {
		u64(m, lo);
		u64(m, range);
	}
	u8(m, 0);                  /* augmentation data length (z) / padding */
	return at;
}

#define VADDR 0x400000ull

Test(ehframe, pcrel_sdata4_fdes)
{
	struct img m = { 0 };
	size_t c = cie(&m, "zR", 0x1b);     /* pcrel | sdata4: gcc's */
	fde(&m, c, VADDR, 0x401000, 0x40, true);
	fde(&m, c, VADDR, 0x3ff000, 0x10, true);   /* below the section: negative offset */
	u32(&m, 0);                             /* terminator */
	struct got g = { 0 };
	cr_assert_eq(sp_ehframe_walk(m.b, m.n, VADDR, collect, &g), 0);
	cr_assert_eq(g.n, 2);
	cr_expect(g.lo[0] == 0x401000 && g.hi[0] == 0x401040, "%#lx..%#lx", g.lo[0], g.hi[0]);
	cr_expect(g.lo[1] == 0x3ff000 && g.hi[1] == 0x3ff010, "%#lx..%#lx", g.lo[1], g.hi[1]);
}

Test(ehframe, absolute_pointers_and_64bit_length)
{
	struct img m = { 0 };
	size_t c = cie(&m, "", 0);          /* no augmentation: absptr */
	fde(&m, c, VADDR, 0x500000, 0x123, false);
	/* the same FDE with a 64-bit length */
	size_t at = m.n;
	u32(&m, 0xffffffffu);
	u64(&m, 4 + 8 + 8);
	u32(&m, (uint32_t)(m.n - c));
	u64(&m, 0x600000);
	u64(&m, 0x20);
	(void)at;
	struct got g = { 0 };
	cr_assert_eq(sp_ehframe_walk(m.b, m.n, VADDR, collect, &g), 0);
	cr_assert_eq(g.n, 2);
	cr_expect(g.lo[0] == 0x500000 && g.hi[0] == 0x500123);
	cr_expect(g.lo[1] == 0x600000 && g.hi[1] == 0x600020);
}

Test(ehframe, entries_not_understood_are_skipped)
{
	struct img m = { 0 };
	size_t good = cie(&m, "zR", 0x1b);
	size_t unknown = cie(&m, "zXR", 0x1b);     /* X: its data cannot be skipped */
	size_t indirect = cie(&m, "zR", 0x9b);     /* indirect | pcrel | sdata4 */
	fde(&m, unknown, VADDR, 0x401000, 0x10, true);
	fde(&m, indirect, VADDR, 0x402000, 0x10, true);
	fde(&m, good, VADDR, 0x403000, 0, true);   /* empty */
	/* a CIE pointer reaching before the section */
	u32(&m, 13);
	u32(&m, (uint32_t)(m.n + 100));
	u32(&m, 0);
	u32(&m, 0x10);
	u8(&m, 0);
	/* a "CIE" pointer at an FDE */
	size_t f = fde(&m, good, VADDR, 0x404000, 0x10, true);
	fde(&m, f, VADDR, 0x405000, 0x10, true);
	struct got g = { 0 };
	cr_assert_eq(sp_ehframe_walk(m.b, m.n, VADDR, collect, &g), 0);
	cr_assert_eq(g.n, 1, "%d extents", g.n);
	cr_expect_eq(g.lo[0], 0x404000);
}

Test(ehframe, broken_framing_stops_the_walk)
{
	struct img m = { 0 };
	size_t c = cie(&m, "zR", 0x1b);
	fde(&m, c, VADDR, 0x401000, 0x10, true);
	u32(&m, 0x1000);                          /* runs past the section */
	u32(&m, 0);
	struct got g = { 0 };
	cr_expect_eq(sp_ehframe_walk(m.b, m.n, VADDR, collect, &g), 1);
	cr_expect_eq(g.n, 1, "the extent before the break stands");
	/* every truncation of a good image: no crash, no extent invented */
	struct img full = { 0 };
	c = cie(&full, "zR", 0x1b);
	fde(&full, c, VADDR, 0x401000, 0x10, true);
	for (size_t n = 0; n < full.n; n++) {
		uint8_t *copy = malloc(n ? n : 1);
		memcpy(copy, full.b, n);
		struct got h = { 0 };
		(void)sp_ehframe_walk(copy, n, VADDR, collect, &h);
		cr_expect_eq(h.n, 0, "%zu bytes gave %d extents", n, h.n);
		free(copy);
	}
}

/* ---- elfsym's extents on a real library ---- */

#define FIXTURE TEST_LIB_DIR "/libsp_fixture.so"
#define FIXTURE_STRIPPED TEST_LIB_DIR "/libsp_fixture_stripped.so"

Test(ehframe, fixture_extents_match_its_symbols_stripped_or_not)
{
	char err[256];
	struct sp_elf *e, *s;
	cr_assert_eq(sp_elf_open(FIXTURE, &e, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(sp_elf_open(FIXTURE_STRIPPED, &s, err, sizeof(err)), 0, "%s", err);
	cr_assert(e->has_symtab && !s->has_symtab);
	cr_assert_gt(e->n_ext, 0);
	/* stripping keeps .eh_frame: the same extents */
	cr_assert_eq(e->n_ext, s->n_ext);
	cr_expect(memcmp(e->ext, s->ext, e->n_ext * sizeof(*e->ext)) == 0);
	for (size_t i = 1; i < e->n_ext; i++)
		cr_expect(e->ext[i - 1].hi <= e->ext[i].lo, "extents %zu and %zu overlap", i - 1, i);
	/* every sized function of the C fixture has its FDE, exactly */
	size_t checked = 0;
	for (size_t i = 0; i < e->n_syms; i++) {
		const struct sp_sym *y = &e->syms[i];
		if (!y->size || y->is_ifunc || strstr(y->name, ".cold"))
			continue;
		uint64_t lo, hi;
		cr_expect(sp_elf_extent(e, y->value, &lo, &hi), "%s has no extent", y->name);
		cr_expect(lo == y->value && hi == y->value + y->size, "%s: %#lx+%lu, extent %#lx..%#lx",
			  y->name, y->value, y->size, lo, hi);
		checked++;
	}
	cr_expect_gt(checked, 5);
	/* the stripped file's static functions start where its extents say */
	const struct sp_sym *loc = NULL;
	for (size_t i = 0; i < e->n_syms && !loc; i++)
		if (!e->syms[i].is_global && e->syms[i].size && !sp_elf_lookup(s, e->syms[i].name))
			loc = &e->syms[i];
	if (loc) {
		uint64_t lo, hi;
		cr_expect(sp_elf_extent(s, loc->value, &lo, &hi) && lo == loc->value,
			  "stripped: no extent for the local %s", loc->name);
		cr_expect_eq(sp_elf_next_start(s, loc->value - 1), loc->value,
			     "stripped: the next function after %#lx is not the local %s", loc->value - 1,
			     loc->name);
		/* a site inside it (a USDT note's) gets the function's extent */
		uint64_t fs = 0, fz = 0;
		cr_expect(!sp_elf_containing(s, loc->value + 1), "stripped: a symbol still covers %s", loc->name);
		cr_expect(sp_elf_func_extent(s, loc->value + 1, &fs, &fz) && fs == loc->value && fz == loc->size,
			  "stripped: %s+1 is in %#lx+%lu", loc->name, fs, fz);
		cr_expect_eq(sp_elf_fde_size(s, loc->value), loc->size);
		cr_expect_eq(sp_elf_fde_size(s, loc->value + 1), 0, "only an extent's start has its size");
	}
	cr_expect(loc, "the fixture has no local function for the stripped checks");
	sp_elf_close(e);
	sp_elf_close(s);
}

/* ---- the hop's pad search with extents for symbols a strip removed ---- */

/* eh_prev has an FDE (.cfi_startproc): it ends with ret and 15 bytes of
 * int3 fill follow; eh_loop's loop head is its byte 2 (the hop's case);
 * eh_big keeps every other fill out of reach before eh_prev. */
__asm__(
	".pushsection .text\n"
	FN(eh_big)
	"	.rept 53\n add $1,%eax\n .endr\n"
	"	ret\n"
	END(eh_big)
	FN(eh_prev)
	"	.cfi_startproc\n"
	"	ret\n"
	"	.cfi_endproc\n"
	END(eh_prev)
	FN(eh_loop)
	"	mov %edi,%eax\n"                /* +0 89 f8 */
	"1:	add $1,%eax\n"                  /* +2: the back-edge lands here */
	"	cmp $10,%eax\n"
	"	jb 1b\n"
	"	ret\n"
	END(eh_loop)
	".popsection\n");

extern const uint8_t eh_big[], eh_prev[], eh_prev_end[], eh_loop[], eh_loop_end[];

static bool none(const void *ctx, uintptr_t lo, uintptr_t hi)
{
	(void)ctx, (void)lo, (void)hi;
	return false;
}

/* The pad search at eh_loop over [eh_big, eh_loop_end) with E's facts. */
static int find_pad(const struct sp_elf *e, uintptr_t bias, uintptr_t *pad, const char **why)
{
	uintptr_t lo, hi;
	sp_hop_range(e, bias, (uintptr_t)eh_loop, (uintptr_t)eh_big, (uintptr_t)eh_loop_end, &lo, &hi);
	struct sp_hop_facts f = { .code = (const uint8_t *)lo, .lo = lo, .len = hi - lo, .elf = e,
				  .bias = bias, .reached = none };
	*pad = 0;
	return sp_hop_find_pad(&f, (uintptr_t)eh_loop, pad, why);
}

Test(ehframe, hop_pad_after_a_function_known_only_by_its_fde)
{
	char err[256];
	struct sp_elf *e;
	cr_assert_eq(sp_elf_open("/proc/self/exe", &e, err, sizeof(err)), 0, "%s", err);
	const struct sp_sym *p = sp_elf_lookup(e, "eh_prev");
	cr_assert(p);
	uintptr_t bias = (uintptr_t)eh_prev - p->value;
	uint64_t lo, hi;
	cr_assert(sp_elf_extent(e, p->value, &lo, &hi), "no FDE for eh_prev");
	cr_assert(lo == p->value && hi == p->value + 1, "eh_prev's FDE %#lx..%#lx", lo, hi);

	/* the file as a strip leaves it: eh_prev's symbol gone */
	struct sp_elf stripped = *e;
	struct sp_sym *syms = calloc(e->n_syms, sizeof(*syms));
	size_t n = 0;
	for (size_t i = 0; i < e->n_syms; i++)
		if (strcmp(e->syms[i].name, "eh_prev") != 0 && strcmp(e->syms[i].name, "eh_prev_end") != 0)
			syms[n++] = e->syms[i];
	stripped.syms = syms;
	stripped.n_syms = n;

	uintptr_t pad;
	const char *why = NULL;
	cr_assert_eq(find_pad(e, bias, &pad, &why), 0, "with the symbol: %s", why);
	cr_expect_eq(pad, (uintptr_t)eh_prev_end);
	cr_assert_eq(find_pad(&stripped, bias, &pad, &why), 0, "stripped, with the FDE: %s", why);
	cr_expect_eq(pad, (uintptr_t)eh_prev_end, "stripped: pad %#lx", pad);

	/* and without the FDE either, nothing says where eh_prev ends */
	struct sp_elf bare = stripped;
	bare.ext = NULL;
	bare.n_ext = 0;
	cr_expect_eq(find_pad(&bare, bias, &pad, &why), -ENOSPC, "no extent, pad %#lx", pad);

	/* an FDE claiming the fill (a function running over it) blocks it */
	struct sp_extent *wide = malloc((e->n_ext + 1) * sizeof(*wide));
	size_t k = 0;
	for (size_t i = 0; i < e->n_ext; i++)
		wide[k++] = e->ext[i].lo == p->value
				    ? (struct sp_extent){ p->value, p->value + (uint64_t)(eh_loop - eh_prev) }
				    : e->ext[i];
	struct sp_elf covered = stripped;
	covered.ext = wide;
	covered.n_ext = k;
	cr_expect_eq(find_pad(&covered, bias, &pad, &why), -ENOSPC, "fill inside an FDE, pad %#lx", pad);
	free(wide);
	free(syms);
	sp_elf_close(e);
}
