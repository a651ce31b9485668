/* fuzz_btindex — the object index (btindex.h: direct targets, taken
 * addresses, jump tables) built from arbitrary bytes.
 *
 * Two inputs in one target:
 *   - an ELF file (it starts with the ELF magic): read with sp_elf_open
 *     (symbols, .eh_frame extents, segments); its executable segments'
 *     bytes, as objdata loads them, are the code; relocations, data and
 *     tables come from the file (objdata);
 *   - anything else: the bytes are the code of one text range at a
 *     PIE-like address, with a few symbol starts the input chooses, and
 *     no file (no relocations: every taken-address question is "unknown").
 * Properties: no crash, leak or UB; the queries answer consistently with
 * the stats (a set with no elements never reports one; an index without
 * readable relocations answers "unknown" with a reason); every unknown
 * jump and every direct target found lies where it should.
 */
#include "fuzz_common.h"
#include "btindex.h"
#include "elfsym.h"
#include "objdata.h"

#define CHECK(...) FUZZ_CHECK("fuzz_btindex", __VA_ARGS__)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	sp_elf_set_debug_root("/nonexistent-selfprobe-fuzz");
	fuzz_file_init("fuzz_btindex");
	return 0;
}

/* Queries over [LO, HI) of an index; consistency with its stats. */
static void query(const struct sp_btindex *x, uintptr_t lo, uintptr_t hi)
{
	struct sp_btindex_stats st;
	sp_btindex_stats(x, &st);
	CHECK(st.table_entries >= st.tables, "%zu tables with %zu entries", st.tables, st.table_entries);
	for (uintptr_t a = lo; a < hi && a < lo + 4096; a += 1 + (a & 7)) {
		bool any = sp_btindex_any_inside(x, a, a + 6);
		CHECK(!any || st.direct, "a direct target in an empty set");
		uintptr_t t;
		const char *how;
		if (sp_btindex_taken_inside(x, a, a + 6, &t, &how)) {
			CHECK(how && how[0], "a taken address without its phrase");
			CHECK(t == 0 || (t > a && t < a + 6), "taken %#lx outside (%#lx, %#lx)", (unsigned long)t,
			      (unsigned long)a, (unsigned long)(a + 6));
		}
		uintptr_t j;
		const char *why;
		if (sp_btindex_unknown_jump(x, a, a + 64, &j, &why)) {
			CHECK(st.unknown_tables, "an unknown jump in an empty list");
			CHECK(j >= a && j < a + 64 && why && why[0], "unknown jump %#lx for [%#lx, +64)",
			      (unsigned long)j, (unsigned long)a);
		}
	}
	char what[256];
	CHECK(sp_btindex_same(x, x, what, sizeof(what)), "an index differs from itself: %s", what);
}

static void from_elf(const uint8_t *data, size_t size)
{
	fuzz_file_load(data, size);
	struct sp_elf *e = NULL;
	char err[256];
	if (sp_elf_open(fuzz_path, &e, err, sizeof(err)) != 0)
		return;
	uint64_t total = 0;
	for (size_t i = 0; i < e->n_segs; i++)
		total += e->segs[i].memsz < (1ull << 33) ? e->segs[i].memsz : (1ull << 33);
	struct sp_objdata *d = total <= (16u << 20) ? sp_objdata_open(fuzz_path, e) : NULL;
	struct sp_objcode oc = { .elf = e, .path = fuzz_path, .bias = e->e_type == 3 ? 0x10000 : 0 };
	uint8_t *bytes[SP_MAX_TEXT_RANGES] = { 0 };
	for (size_t i = 0; d && i < e->n_segs && oc.n_text < SP_MAX_TEXT_RANGES; i++) {
		const struct sp_segment *g = &e->segs[i];
		if (!(g->flags & 1) || !g->memsz || g->memsz > (4u << 20) || g->vaddr + g->memsz < g->vaddr)
			continue;
		uint8_t *b = malloc(g->memsz);
		if (!b || !sp_objdata_read(d, g->vaddr, g->memsz, b)) {
			free(b);
			continue;
		}
		int r = oc.n_text;
		/* text ranges are disjoint in a process: skip overlapping ones */
		bool overlap = false;
		for (int k = 0; k < r; k++)
			overlap |= g->vaddr + oc.bias < oc.text[k].end && g->vaddr + g->memsz + oc.bias > oc.text[k].start;
		if (overlap) {
			free(b);
			continue;
		}
		bytes[r] = b;
		oc.text[r].start = g->vaddr + oc.bias;
		oc.text[r].end = g->vaddr + g->memsz + oc.bias;
		oc.text[r].bytes = b;
		oc.n_text++;
	}
	sp_objdata_close(d);
	if (oc.n_text) {
		struct sp_btindex *x = sp_btindex_build(&oc);
		if (x) {
			for (int r = 0; r < oc.n_text; r++)
				query(x, oc.text[r].start, oc.text[r].end);
			sp_btindex_free(x);
		}
	}
	for (int r = 0; r < SP_MAX_TEXT_RANGES; r++)
		free(bytes[r]);
	sp_elf_close(e);
}

static void from_code(const uint8_t *data, size_t size)
{
	/* the first bytes choose up to 4 symbol starts, the rest is code */
	size_t n_starts = size > 0 ? data[0] % 5 : 0;
	if (size < 1 + 2 * n_starts + 1)
		return;
	const uint8_t *code = data + 1 + 2 * n_starts;
	size_t len = size - 1 - 2 * n_starts;
	const uintptr_t base = 0x7f0000001000ull;
	struct sp_sym syms[4];
	for (size_t i = 0; i < n_starts; i++) {
		uint64_t off = (uint64_t)(data[1 + 2 * i] | data[2 + 2 * i] << 8) % len;
		syms[i] = (struct sp_sym){ .name = "f", .value = 0x1000 + off, .size = 0 };
	}
	/* sorted, as elfsym keeps them */
	for (size_t i = 1; i < n_starts; i++)
		for (size_t j = i; j > 0 && syms[j - 1].value > syms[j].value; j--) {
			struct sp_sym t = syms[j];
			syms[j] = syms[j - 1];
			syms[j - 1] = t;
		}
	struct sp_segment seg = { .vaddr = 0x1000, .memsz = len, .offset = 0, .filesz = len, .flags = 5 };
	struct sp_elf e = { .path = (char *)"fuzz", .e_type = 3, .syms = syms, .n_syms = n_starts,
			    .segs = &seg, .n_segs = 1 };
	struct sp_objcode oc = { .elf = &e, .path = NULL, .bias = base - 0x1000, .n_text = 1 };
	oc.text[0].start = base;
	oc.text[0].end = base + len;
	oc.text[0].bytes = code;
	struct sp_btindex *x = sp_btindex_build(&oc);
	if (!x)
		return;
	uintptr_t t;
	const char *how;
	CHECK(sp_btindex_taken_inside(x, base, base + 2, &t, &how) && t == 0 && how && how[0],
	      "no file read: the taken set must be unknown, with a reason");
	query(x, base, base + len);
	sp_btindex_free(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size >= 4 && memcmp(data, "\177ELF", 4) == 0)
		from_elf(data, size);
	else
		from_code(data, size);
	return 0;
}
