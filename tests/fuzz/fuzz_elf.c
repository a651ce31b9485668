/* fuzz_elf — the ELF symbol reader (with its .eh_frame extents) and the
 * stapsdt note reader on mutated files, and the start-up cache's symbol
 * decoder (sp_elf_unflatten: an entry of kind elfsym, symcache.h) on the
 * same bytes and on the flat copy of every file that reads: a round trip
 * gives what was read, a mutated or cut copy is refused with a reason or
 * consistent.
 *
 * The input is written to a memfd and read through /proc/self/fd/N, the
 * path form both readers take.  Properties: no crash, leak or UB; every
 * failure has a message; what is returned is consistent (symbols sorted,
 * names present, segment arrays sized; notes with provider, name and
 * argument strings), and the lookups work on what was read.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "elfsym.h"
#include "usdt.h"

#define CHECK(c, ...) do { if (!(c)) { fprintf(stderr, "fuzz_elf: " __VA_ARGS__); \
	fputc('\n', stderr); abort(); } } while (0)

static int memfd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	/* never read the machine's debug files: a fuzzed build-id could match */
	sp_elf_set_debug_root("/nonexistent-selfprobe-fuzz");
	memfd = memfd_create("fuzz_elf", MFD_CLOEXEC);
	if (memfd < 0) {
		perror("memfd_create");
		abort();
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	return 0;
}

static void load(const uint8_t *data, size_t size)
{
	CHECK(ftruncate(memfd, 0) == 0, "ftruncate: %s", strerror(errno));
	size_t done = 0;
	while (done < size) {
		ssize_t n = pwrite(memfd, data + done, size - done, (off_t)done);
		CHECK(n > 0, "pwrite: %s", strerror(errno));
		done += (size_t)n;
	}
}

static void check_elf(const struct sp_elf *e)
{
	CHECK(e->path, "no path");
	for (size_t i = 0; i < e->n_syms; i++) {
		CHECK(e->syms[i].name, "symbol %zu without a name", i);
		if (i)
			CHECK(e->syms[i - 1].value <= e->syms[i].value, "symbols not sorted at %zu", i);
	}
	for (size_t i = 0; i < e->n_segs; i++)
		(void)e->segs[i].vaddr;   /* ASan: the array holds n_segs */
	/* .eh_frame extents: sorted, disjoint, non-empty, each in an
	 * executable segment, and found again by the lookups */
	for (size_t i = 0; i < e->n_ext; i++) {
		const struct sp_extent *x = &e->ext[i];
		CHECK(x->lo < x->hi, "extent %zu empty", i);
		CHECK(i == 0 || e->ext[i - 1].hi <= x->lo, "extents %zu and %zu overlap or are unsorted", i - 1, i);
		CHECK(sp_elf_vaddr_is_text(e, x->lo) && sp_elf_vaddr_is_text(e, x->hi - 1),
		      "extent %zu outside the text", i);
		uint64_t lo, hi;
		CHECK(sp_elf_extent(e, x->hi - 1, &lo, &hi) && lo == x->lo && hi == x->hi,
		      "extent %zu not found by its last byte", i);
		CHECK(sp_elf_fde_size(e, x->lo) == x->hi - x->lo, "extent %zu: wrong size by its start", i);
		CHECK(sp_elf_next_start(e, x->lo) == 0 || sp_elf_next_start(e, x->lo) > x->lo,
		      "next start at or below %zu's start", i);
		CHECK(sp_elf_covers(e, x->lo, x->lo + 1), "extent %zu does not cover its start", i);
	}
	const struct sp_sym **m = NULL;
	long n = sp_elf_match(e, "*", &m);
	CHECK(n >= 0 && (size_t)n <= e->n_syms, "match * gives %ld of %zu", n, e->n_syms);
	for (long i = 0; i < n; i++) {
		const struct sp_sym *s = sp_elf_lookup(e, m[i]->name);
		CHECK(s, "match * found '%s', lookup does not", m[i]->name);
		uint64_t off;
		if (m[i]->size) {
			const struct sp_sym *c = sp_elf_containing(e, m[i]->value);
			CHECK(c, "no symbol contains the start of '%s'", m[i]->name);
		}
		(void)sp_elf_vaddr_to_offset(e, m[i]->value, &off);
		(void)sp_elf_vaddr_is_text(e, m[i]->value);
	}
	free(m);
}

/* E's flat copy decodes to E; cut anywhere it is refused; a byte of it
 * changed (chosen by the input) gives a refusal with a reason or an
 * object the queries can walk. */
static void check_flat(const struct sp_elf *e, const uint8_t *data, size_t size)
{
	size_t len;
	uint8_t *flat = sp_elf_flatten(e, &len);
	if (!flat)
		return;
	char why[256];
	struct sp_elf *b = NULL;
	CHECK(sp_elf_unflatten(flat, len, e->path, &b, why, sizeof(why)) == 0, "round trip refused: %s", why);
	CHECK(b->n_syms == e->n_syms && b->n_segs == e->n_segs && b->n_ext == e->n_ext,
	      "round trip changed the counts");
	for (size_t i = 0; i < e->n_ext; i++)
		CHECK(b->ext[i].lo == e->ext[i].lo && b->ext[i].hi == e->ext[i].hi, "round trip changed extent %zu", i);
	for (size_t i = 0; i < e->n_syms; i++)
		CHECK(!strcmp(b->syms[i].name, e->syms[i].name) && b->syms[i].value == e->syms[i].value &&
		      b->syms[i].size == e->syms[i].size, "round trip changed symbol %zu", i);
	sp_elf_close(b);
	size_t cut = size ? data[0] * 131u % len : len / 2;
	CHECK(sp_elf_unflatten(flat, cut, e->path, &b, why, sizeof(why)) != 0 && why[0],
	      "a flat copy cut to %zu of %zu bytes was taken", cut, len);
	if (size >= 3) {
		flat[((size_t)data[1] << 8 | data[2]) % len] ^= (uint8_t)(data[size - 1] | 1);
		why[0] = '\0';
		if (sp_elf_unflatten(flat, len, e->path, &b, why, sizeof(why)) == 0) {
			check_elf(b);
			sp_elf_close(b);
		} else {
			CHECK(why[0], "a changed flat copy refused without a reason");
		}
	}
	free(flat);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	load(data, size);

	struct sp_elf *e = NULL;
	err[0] = '\0';
	int rc = sp_elf_open(path, &e, err, sizeof(err));
	if (rc == 0) {
		CHECK(e, "sp_elf_open: 0 without an object");
		check_elf(e);
		check_flat(e, data, size);
		sp_elf_close(e);
	} else {
		CHECK(rc < 0 && err[0], "sp_elf_open: %d without a message", rc);
	}

	/* the input itself as a cache entry's payload */
	struct sp_elf *u = NULL;
	err[0] = '\0';
	rc = sp_elf_unflatten(data, size, path, &u, err, sizeof(err));
	if (rc == 0) {
		check_elf(u);
		sp_elf_close(u);
	} else {
		CHECK(rc < 0 && err[0], "sp_elf_unflatten: %d without a reason", rc);
	}

	struct sp_usdt_notes notes = { 0 };
	err[0] = '\0';
	rc = sp_usdt_read(path, &notes, err, sizeof(err));
	if (rc == 0) {
		for (size_t i = 0; i < notes.n; i++) {
			const struct sp_usdt_note *no = &notes.v[i];
			CHECK(no->provider && no->name && no->args, "note %zu lacks a string", i);
			/* the runtime parses every note's arguments: so does the fuzzer */
			struct sp_usdt_arg a[SP_USDT_MAX_ARGS];
			char perr[128];
			(void)sp_usdt_parse_args(no->args, a, SP_USDT_MAX_ARGS, NULL, NULL,
						 perr, sizeof(perr));
		}
		sp_usdt_free(&notes);
	} else {
		CHECK(rc < 0 && err[0], "sp_usdt_read: %d without a message", rc);
	}

	uint64_t v;
	(void)sp_elf_find_any_symbol(path, "main", &v);
	return 0;
}
