/* fuzz_objdata — the object data reader (objdata.h) on mutated ELF files:
 * the loaded segments, the relocations (RELA, REL, RELR) and the data
 * words the address-taken scan reads.
 *
 * The input is an ELF file (seeds: gen_seeds.sh's), opened with
 * sp_elf_open (segments), then sp_objdata_open.  Files whose segments
 * would load more than 64 MiB are skipped (objdata reads what a file
 * loads; the fuzzer's memory limit is not a finding).  Properties: no
 * crash, leak or UB; every relocation target has its phrase; every read
 * the reader grants lies in a loaded segment and is repeatable; a read
 * beyond the end of what is loaded is refused.
 */
#include "fuzz_common.h"
#include "elfsym.h"
#include "objdata.h"

#define CHECK(...) FUZZ_CHECK("fuzz_objdata", __VA_ARGS__)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	sp_elf_set_debug_root("/nonexistent-selfprobe-fuzz");
	fuzz_file_init("fuzz_objdata");
	return 0;
}

struct seen {
	const struct sp_objdata *d;
	size_t relocs, words;
};

static void on_reloc(void *ctx, uint64_t vaddr, const char *how)
{
	struct seen *s = ctx;
	(void)vaddr;
	CHECK(how && how[0], "a relocation target without its phrase");
	s->relocs++;
}

static void on_word(void *ctx, uint64_t vaddr, uint64_t value)
{
	struct seen *s = ctx;
	uint64_t again;
	CHECK((vaddr & 7) == 0, "word at %#lx is not 8-byte aligned", (unsigned long)vaddr);
	CHECK(sp_objdata_read(s->d, vaddr, 8, &again) && again == value,
	      "word at %#lx: %#lx, read back differently", (unsigned long)vaddr, (unsigned long)value);
	s->words++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_file_load(data, size);
	struct sp_elf *e = NULL;
	char err[256];
	if (sp_elf_open(fuzz_path, &e, err, sizeof(err)) != 0)
		return 0;
	uint64_t total = 0;
	for (size_t i = 0; i < e->n_segs; i++)
		total += e->segs[i].memsz < (1ull << 33) ? e->segs[i].memsz : (1ull << 33);
	if (total > (64u << 20)) {
		sp_elf_close(e);
		return 0;
	}
	struct sp_objdata *d = sp_objdata_open(fuzz_path, e);
	if (d) {
		struct seen s = { .d = d };
		(void)sp_objdata_relocs(d, on_reloc, &s);
		sp_objdata_words(d, on_word, &s);
		(void)sp_objdata_separate_rodata(d);
		for (size_t i = 0; i < e->n_segs; i++) {
			const struct sp_segment *g = &e->segs[i];
			uint8_t b[16];
			uint64_t probe[4] = { g->vaddr, g->vaddr + g->memsz / 2, g->vaddr + g->memsz - 1,
					      g->vaddr + g->memsz };
			for (int k = 0; k < 4; k++) {
				(void)sp_objdata_is_data(d, probe[k]);
				if (sp_objdata_read(d, probe[k], sizeof(b), b)) {
					uint8_t again[16];
					CHECK(sp_objdata_read(d, probe[k], sizeof(again), again) &&
					      memcmp(b, again, sizeof(b)) == 0, "a read is not repeatable");
				}
			}
			/* never past the top of the address space */
			CHECK(!sp_objdata_read(d, UINT64_MAX - 3, 8, b), "a read wrapping the address space");
		}
		sp_objdata_close(d);
	}
	sp_elf_close(e);
	return 0;
}
